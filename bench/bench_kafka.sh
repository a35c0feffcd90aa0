#!/bin/sh
# bench_kafka.sh (`make bench-kafka`): Kafka clients against ringlog, beside ringlog's own
# client, in one run on this machine. First `ringlog bench` on the native protocol (its own
# broker: closed-loop produce maximum of 1 KiB incompressible records, acks=1, 8 partitions;
# catch-up consume of that log from its start); then a ringlogd with the Kafka listener, a
# topic with the same settings, and librdkafka (bench_kafka_rd: acks=all, idempotence,
# linger.ms=5, batch.size 1 MiB) producing for the same time and reading it all back from the
# beginning. Prints
#   kafka: produce P MB/s = R of native, consume C MB/s = S of native
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
ss=[socket.socket() for _ in range(2)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')
set -- $ports
"$BUILD/bin/ringlogd" --data-dir "$work/kafka-data" --listen "127.0.0.1:$1" --http off \
    --kafka-listen "127.0.0.1:$2" --ready-file "$work/ready" > "$work/ringlogd.log" 2>&1 &
pid=$!
i=0
while ! grep -q '^kafka=' "$work/ready" 2>/dev/null; do
    i=$((i + 1))
    [ $i -le 300 ] && kill -0 "$pid" 2>/dev/null || { tail "$work/ringlogd.log"; exit 1; }
    sleep 0.1
done
"$BUILD/bin/ringlog" --brokers "127.0.0.1:$1" topic create bench-kafka \
    --partitions "$PARTITIONS" --config flush.policy=batch > /dev/null
out=$("$BUILD/bench/bench_kafka_rd" "127.0.0.1:$2" bench-kafka "$PARTITIONS" "$SECONDS_EACH")
echo "$out"
kafka_p=$(echo "$out" | sed -E 's/^kafka-bench: produce ([0-9.]+) MB\/s.*/\1/')
kafka_c=$(echo "$out" | sed -E 's/.*consume ([0-9.]+) MB\/s.*/\1/')
awk -v kp="$kafka_p" -v np="$native_p" -v kc="$kafka_c" -v nc="$native_c" 'BEGIN {
    printf "kafka: produce %.0f MB/s = %.2f of native, consume %.0f MB/s = %.2f of native\n",
           kp, (np > 0 ? kp / np : 0), kc, (nc > 0 ? kc / nc : 0) }'
