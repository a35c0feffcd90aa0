#!/bin/bash
# run-cluster: three ringlogd nodes on 127.0.0.1 as one cluster (`make run-cluster`): native
# listeners 9400/9410/9420, HTTP 9401/9411/9421, Kafka listeners 9402/9412/9422 (each broker's
# Kafka Metadata lists all three), data in data/node-1..3, each log line prefixed
# by its node. Ctrl-C (or SIGTERM) stops all three cleanly.
#   usage: tools/run-cluster.sh [path/to/ringlogd]
set -u
RINGLOGD=${1:-build/bin/ringlogd}
VOTERS=1@127.0.0.1:9400,2@127.0.0.1:9410,3@127.0.0.1:9420
PIDS=""
stop() {
    trap - INT TERM
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
    wait
    exit 0
}
trap stop INT TERM
for i in 1 2 3; do
    port=$((9400 + (i - 1) * 10))
    mkdir -p "data/node-$i"
    "$RINGLOGD" --node-id "$i" --listen "127.0.0.1:$port" --http "127.0.0.1:$((port + 1))" \
        --data-dir "data/node-$i" --voters "$VOTERS" --kafka-listen "127.0.0.1:$((port + 2))" \
        > >(sed -u "s/^/[node $i] /") 2>&1 &
    PIDS="$PIDS $!"
done
echo "cluster of 3 on 127.0.0.1:9400,127.0.0.1:9410,127.0.0.1:9420 (Kafka clients:" \
     "127.0.0.1:9402,9412,9422); try: ringlog --brokers 127.0.0.1:9410 cluster status" \
     "  (Ctrl-C stops all)"
wait
