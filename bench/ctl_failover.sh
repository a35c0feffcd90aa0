#!/bin/bash
# ctl_failover: how long the cluster cannot change metadata after its controller leader dies.
# Starts three ringlogd voters on 127.0.0.1 (fresh data directories under a temporary
# directory), then ROUNDS times: SIGKILLs the node every voter names as controller leader, and
# measures from the kill until `ringlog topic create` through a surviving node succeeds (tried
# again every 10 ms while it fails: each try is a new process, a few ms, counted in the time);
# then restarts the killed node and waits until all three agree on a leader again. Prints each
# round and the median and max in ms.
#   usage: bench/ctl_failover.sh [ROUNDS] [ELECTION_TIMEOUT_MS]   (defaults 20 and 1000)
#   environment: RINGLOGD, RINGLOG (default build/bin/ringlogd, build/bin/ringlog), KEEP=1
#   keeps the temporary directory (node logs) for a look afterwards.
set -u
ROUNDS=${1:-20}
ELECTION_MS=${2:-1000}
RINGLOGD=${RINGLOGD:-build/bin/ringlogd}
RINGLOG=${RINGLOG:-build/bin/ringlog}
[ -x "$RINGLOGD" ] && [ -x "$RINGLOG" ] || { echo "build first (make -j2)" >&2; exit 2; }
DIR=$(mktemp -d /tmp/ringlog-ctl-failover-XXXXXX)
# Six free ports (native and HTTP per node), as the kernel hands them out: fixed ones collide
# with whatever else runs on the machine.
read -r -a FREE <<< "$(python3 -c '
import socket
s = [socket.socket() for _ in range(6)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')"
[ "${#FREE[@]}" = 6 ] || { echo "cannot pick free ports (python3)" >&2; exit 2; }
declare -a PID PORT HTTP
for i in 1 2 3; do PORT[$i]=${FREE[$((i - 1))]}; HTTP[$i]=${FREE[$((i + 2))]}; done
VOTERS="1@127.0.0.1:${PORT[1]},2@127.0.0.1:${PORT[2]},3@127.0.0.1:${PORT[3]}"

cleanup() {
    for i in 1 2 3; do
        [ -n "${PID[$i]:-}" ] && kill -TERM "${PID[$i]}" 2>/dev/null
    done
    wait 2>/dev/null
    [ "${KEEP:-0}" = 1 ] && echo "logs in $DIR" >&2 || rm -rf "$DIR"
}
trap cleanup EXIT

start_node() {
    local i=$1
    mkdir -p "$DIR/node-$i"
    "$RINGLOGD" --node-id "$i" --listen "127.0.0.1:${PORT[$i]}" \
        --http "127.0.0.1:${HTTP[$i]}" --data-dir "$DIR/node-$i" --voters "$VOTERS" \
        --set "election.timeout.ms=$ELECTION_MS" >> "$DIR/node-$i.log" 2>&1 &
    PID[$i]=$!
}

# The leader node $1 names in GET /v1/cluster (0: none or no answer).
leader_of() {
    local body
    body=$(curl -s -m 1 "http://127.0.0.1:${HTTP[$1]}/v1/cluster") || { echo 0; return; }
    local l=${body#*\"leader\":}
    l=${l%%[!0-9]*}
    echo "${l:-0}"
}

# Waits (30 s at most) until the three nodes name one leader; prints it.
wait_agreed() {
    local until=$(($(date +%s) + 30)) a b c
    while [ "$(date +%s)" -le "$until" ]; do
        a=$(leader_of 1); b=$(leader_of 2); c=$(leader_of 3)
        if [ "$a" != 0 ] && [ "$a" = "$b" ] && [ "$b" = "$c" ]; then
            echo "$a"
            return 0
        fi
        sleep 0.05 # poll interval; the deadline above bounds the wait
    done
    echo 0
    return 1
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

for i in 1 2 3; do start_node "$i"; done
L=$(wait_agreed) || { echo "no leader within 30 s (logs: KEEP=1)" >&2; exit 1; }
TIMES=()
for r in $(seq 1 "$ROUNDS"); do
    L=$(wait_agreed) || { echo "round $r: no agreed leader" >&2; exit 1; }
    S=$((L % 3 + 1)) # a survivor to ask
    t0=$(now_ms)
    kill -KILL "${PID[$L]}"
    wait "${PID[$L]}" 2>/dev/null
    until "$RINGLOG" --brokers "127.0.0.1:${PORT[$S]}" -X request.timeout.ms=3000 \
        topic create "failover-$r" --partitions 1 > /dev/null 2>&1; do
        [ $(($(now_ms) - t0)) -gt 30000 ] && { echo "round $r: no creation in 30 s" >&2; exit 1; }
        sleep 0.01 # retry interval of a client that keeps trying; counted in the time
    done
    ms=$(($(now_ms) - t0))
    TIMES+=("$ms")
    echo "round $r: leader node $L killed; topic created through node $S after $ms ms"
    start_node "$L"
done
wait_agreed > /dev/null
SORTED=($(printf '%s\n' "${TIMES[@]}" | sort -n))
n=${#SORTED[@]}
if [ $((n % 2)) = 1 ]; then
    MEDIAN=${SORTED[$((n / 2))]}
else
    MEDIAN=$(((SORTED[n / 2 - 1] + SORTED[n / 2]) / 2))
fi
echo "controller failover (SIGKILL of the leader -> next topic created), $n rounds," \
     "election.timeout.ms=$ELECTION_MS: median $MEDIAN ms, max ${SORTED[$((n - 1))]} ms"
