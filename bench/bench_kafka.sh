#!/bin/sh
# bench_kafka.sh (`make bench-kafka`): Kafka clients against ringlog, beside ringlog's own
# client, in one run on this machine. First `ringlog bench` on the native protocol (its own
# broker: closed-loop produce maximum of 1 KiB incompressible records, acks=1, 8 partitions;
# catch-up consume of that log from its start); then a ringlogd with the Kafka listener, a
# topic with the same settings, and librdkafka (bench_kafka_rd: acks=all, idempotence,
# linger.ms=5, batch.size 1 MiB) producing for the same time and reading it all back from the
# beginning. Prints
#   kafka: produce P MB/s = R of native, consume C MB/s = S of native
#   kafka: produce CPU per GB: broker B core-s (native N, Xx), client C core-s (libringlog L, Yx)
# Environment: BUILD (build), SECONDS_EACH (10), PARTITIONS (8).
set -eu
BUILD=${BUILD:-build}
SECONDS_EACH=${SECONDS_EACH:-10}
PARTITIONS=${PARTITIONS:-8}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ringlog-bench-kafka.XXXXXX")
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "bench-kafka: native: ringlog bench (${SECONDS_EACH} s phases)"
"$BUILD/bin/ringlog" bench --ringlogd "$BUILD/bin/ringlogd" --dir "$work" \
    --max-seconds "$SECONDS_EACH" --seconds "$SECONDS_EACH" --partitions "$PARTITIONS" \
    --disk-mb 512 --loopback-mb 1024 --tail-mb 128 > "$work/native.txt" 2>&1 ||
    { tail -n 20 "$work/native.txt"; exit 1; }
line=$(grep '^bench: produce' "$work/native.txt" | tail -n 1)
echo "$line"
native_p=$(echo "$line" | sed -E 's/^bench: produce ([0-9.]+) MB\/s.*/\1/')
native_c=$(echo "$line" | sed -E 's/.*catch-up ([0-9.]+) MB\/s.*/\1/')

echo "bench-kafka: Kafka: librdkafka against ringlogd --kafka-listen"
ports=$(/usr/bin/python3 -c 'import socket
ss=[socket.socket() for _ in range(3)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')
set -- $ports
# The broker is set up as `ringlog bench` sets up its own (cli_bench.c bench_run): a tail cache
# of 256 MiB (its size for --tail-mb 128) faulted in before the clock starts. Without that the
# first touches of the cache's fresh pages (the kernel zeroing them: 58 % of the broker's CPU in
# a perf profile of this phase) were measured as Kafka produce work and not as native.
"$BUILD/bin/ringlogd" --data-dir "$work/kafka-data" --listen "127.0.0.1:$1" \
    --http "127.0.0.1:$3" --kafka-listen "127.0.0.1:$2" --ready-file "$work/ready" \
    --set retention.check.interval.ms=1000 --set tail.cache.bytes=268435456 \
    --set tail.cache.prefault=1 > "$work/ringlogd.log" 2>&1 &
pid=$!
i=0
while ! grep -q '^kafka=' "$work/ready" 2>/dev/null; do
    i=$((i + 1))
    [ $i -le 300 ] && kill -0 "$pid" 2>/dev/null || { tail "$work/ringlogd.log"; exit 1; }
    sleep 0.1
done
# Waits (up to 120 s, as ringlog bench does) for the prefault to cover the cache.
/usr/bin/python3 - "$3" <<'PY' || true
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/metrics"
def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return -1.0
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    done = metric(text, "ringlog_tail_cache_prefaulted_bytes")
    budget = metric(text, "ringlog_tail_cache_budget_bytes")
    if budget <= 0 or done >= budget:
        sys.exit(0)
    time.sleep(0.05)
print("bench-kafka: the tail cache was not faulted in within 120 s; going on")
PY
"$BUILD/bin/ringlog" --brokers "127.0.0.1:$1" topic create bench-kafka \
    --partitions "$PARTITIONS" --config flush.policy=batch > /dev/null
out=$("$BUILD/bench/bench_kafka_rd" "127.0.0.1:$2" bench-kafka "$PARTITIONS" "$SECONDS_EACH" \
      "$pid")
echo "$out"
kafka_p=$(echo "$out" | sed -nE 's/^kafka-bench: produce ([0-9.]+) MB\/s.*/\1/p')
kafka_c=$(echo "$out" | sed -nE 's/^kafka-bench: .*consume ([0-9.]+) MB\/s.*/\1/p')
# CPU per GB of records produced, which host noise moves far less than MB/s: the broker's on
# each protocol (what the Kafka listener costs beyond native) and each client's (librdkafka
# against libringlog), from the produce phases of both runs.
cpu=$(echo "$out" | sed -nE 's/^kafka-bench-cpu: produce client ([0-9.]+) broker ([-0-9.]+) cores.*/\1 \2/p')
ncpu=$(grep '^max (closed loop)' "$work/native.txt" |
       sed -nE 's/.*CPU: client ([0-9.]+), broker ([0-9.]+) cores.*/\1 \2/p')
awk -v kp="$kafka_p" -v np="$native_p" -v kc="$kafka_c" -v nc="$native_c" \
    -v cpu="$cpu" -v ncpu="$ncpu" 'BEGIN {
    printf "kafka: produce %.0f MB/s = %.2f of native, consume %.0f MB/s = %.2f of native\n",
           kp, (np > 0 ? kp / np : 0), kc, (nc > 0 ? kc / nc : 0)
    split(cpu, k, " "); split(ncpu, n, " ")
    if (kp > 0 && np > 0 && k[2] >= 0 && n[2] > 0)
        printf "kafka: produce CPU per GB: broker %.2f core-s (native %.2f, %.2fx), client %.2f " \
               "core-s (libringlog %.2f, %.2fx)\n", k[2] * 1000 / kp, n[2] * 1000 / np,
               (k[2] / kp) / (n[2] / np), k[1] * 1000 / kp, n[1] * 1000 / np,
               (k[1] / kp) / (n[1] / np) }'
