#!/bin/sh
# broker.sh: starts, kills and restarts the ringlogd the Kafka client tests talk to, keeping its
# ports and data across restarts (so clients can reconnect to the same address).
# Usage: broker.sh start|kill|restart|stop   with KAFKA_WORK set (the runner sets it).
#   start: picks free ports once (kept in $KAFKA_WORK/ports), starts ringlogd, waits for its
#          ready file (30 s deadline); kill: SIGKILL; restart: kill + start; stop: SIGTERM.
set -eu
: "${KAFKA_WORK:?}"
BUILD=${BUILD:-build}
ports="$KAFKA_WORK/ports"

# Three free ports below the kernel's ephemeral range, as kcluster.py free_ports picks them: a
# restart reuses them, and an ephemeral port could meanwhile be some connection's source port.
free_ports() {
    /usr/bin/python3 - <<'PY'
import random, socket
try:
    high = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    high = 32768
high = high if high > 27000 else 65535
held = []
while len(held) < 3:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.SystemRandom().randrange(26000, high)))
        held.append(s)
    except OSError:
        s.close()
print(*(s.getsockname()[1] for s in held))
PY
}

start() {
    [ -s "$ports" ] || free_ports > "$ports"
    read -r native http kafka < "$ports"
    rm -f "$KAFKA_WORK/ready"
    "$BUILD/bin/ringlogd" --data-dir "$KAFKA_WORK/data" --listen "127.0.0.1:$native" \
        --http "127.0.0.1:$http" --kafka-listen "127.0.0.1:$kafka" \
        --ready-file "$KAFKA_WORK/ready" --set group.initial.rebalance.delay.ms=200 \
        >> "$KAFKA_WORK/ringlogd.log" 2>&1 &
    echo $! > "$KAFKA_WORK/pid"
    i=0
    while ! grep -q '^kafka=' "$KAFKA_WORK/ready" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 "$(cat "$KAFKA_WORK/pid")" 2>/dev/null; then
            echo "broker.sh: ringlogd did not report a Kafka listener within 30 s" >&2
            tail -n 20 "$KAFKA_WORK/ringlogd.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

signal() {
    pid=$(cat "$KAFKA_WORK/pid" 2>/dev/null || true)
    [ -n "$pid" ] || return 0
    kill "-$1" "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    rm -f "$KAFKA_WORK/pid"
}

case "${1:-}" in
start) start ;;
kill) signal KILL ;;
restart) signal KILL; start ;;
stop) signal TERM ;;
*) echo "usage: broker.sh start|kill|restart|stop" >&2; exit 2 ;;
esac
