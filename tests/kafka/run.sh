#!/bin/sh
# run.sh: the Kafka client tests. Real Kafka clients from Debian 12 (kcat, librdkafka,
# confluent-kafka, kafka-python, Go's sarama) and kafkajs from npm, against a real ringlogd's
# Kafka listener on 127.0.0.1. Each test is a program that exits 0 when what it names held;
# the last line is "N passed, N failed" (tests/run-tests.sh reads it).
# Usage: tests/kafka/run.sh [TEST ...]   (BUILD=build by default; all tests without arguments)
# Waits for `ringlogd --kafka-listen`: until the listener exists every test fails at start-up.
set -u
BUILD=${BUILD:-build}
here=$(cd "$(dirname "$0")" && pwd)
KAFKA_WORK=$(mktemp -d /tmp/ringlog-kafka.XXXXXX)
export BUILD KAFKA_WORK
trap 'sh "$here/broker.sh" stop; rm -rf "$KAFKA_WORK"' EXIT INT TERM

tests=${*:-"kcat.sh rdkafka_idem_group confluent.py kafka_python.py kafkajs.js sarama cross.sh codecs.sh restart.py"}
pass=0; fail=0
if ! sh "$here/broker.sh" start; then
    echo "0 passed, 1 failed"
    exit 1
fi
KAFKA_BOOTSTRAP=$(sed -n 's/^kafka=//p' "$KAFKA_WORK/ready")
RINGLOG_BROKERS=$(sed -n 's/^native=//p' "$KAFKA_WORK/ready")
RINGLOG="$BUILD/bin/ringlog"
BROKER_CTL="sh $here/broker.sh"
export KAFKA_BOOTSTRAP RINGLOG_BROKERS RINGLOG BROKER_CTL

for t in $tests; do
    log="$KAFKA_WORK/$t.log"
    case "$t" in
    *.sh) cmd="sh $here/$t" ;;
    *.py) cmd="/usr/bin/python3 $here/$t" ;;
    *.js) cmd="env NODE_PATH=$BUILD/kafka-npm/node_modules node $here/$t" ;;
    sarama) cmd="$BUILD/tests/kafka/sarama_group" ;;
    *) cmd="$BUILD/tests/kafka/$t" ;;
    esac
    start=$(date +%s)
    if timeout 300 $cmd > "$log" 2>&1; then
        pass=$((pass + 1)); echo "ok    $t ($(( $(date +%s) - start ))s)"
    else
        fail=$((fail + 1)); echo "FAIL  $t ($(( $(date +%s) - start ))s); last lines:"
        tail -n 20 "$log" | sed 's/^/      | /'
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
