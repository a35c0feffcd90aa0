#!/bin/sh
# run.sh: the Kafka client tests. Real Kafka clients from Debian 12 (kcat, librdkafka,
# confluent-kafka, kafka-python, Go's sarama) and kafkajs from npm, against a real ringlogd's
# Kafka listener on 127.0.0.1. Each test is a program that exits 0 when what it names held;
# the last line is "N passed, N failed" (tests/run-tests.sh reads it).
# Usage: tests/kafka/run.sh [TEST ...]   (BUILD=build by default; all tests without arguments)
# A test whose client is not installed is reported as skipped, naming the package to install
# (tools/deps.sh installs them all); every other outcome is pass or fail.
set -u
BUILD=${BUILD:-build}
here=$(cd "$(dirname "$0")" && pwd)
KAFKA_WORK=$(mktemp -d /tmp/ringlog-kafka.XXXXXX)
export BUILD KAFKA_WORK
trap 'sh "$here/broker.sh" stop; rm -rf "$KAFKA_WORK"' EXIT INT TERM

tests=${*:-"bad_frames.py kcat.sh rdkafka_idem_group confluent.py kafka_python.py admin.py kafkajs.js sarama cross.sh codecs.sh restart.py cluster_meta.py control_cluster.py autocreate_off.py autocreate.py autocreate_cluster.py"}
pass=0; fail=0; skip=0

# Prints why test $1 cannot run here (its client is missing), or nothing when it can.
missing() {
    case "$1" in
    kcat.sh|codecs.sh)
        command -v kcat >/dev/null 2>&1 || echo "kcat is not installed (apt-get install kcat)" ;;
    cross.sh)
        command -v kcat >/dev/null 2>&1 || echo "kcat is not installed (apt-get install kcat)"
        /usr/bin/python3 -c 'import kafka' 2>/dev/null ||
            echo "kafka-python is not installed (apt-get install python3-kafka)" ;;
    confluent.py|restart.py)
        /usr/bin/python3 -c 'import confluent_kafka' 2>/dev/null ||
            echo "confluent-kafka for Python is not installed (apt-get install python3-confluent-kafka)" ;;
    bad_frames.py)
        [ -x /usr/bin/python3 ] || echo "/usr/bin/python3 is not installed (apt-get install python3)" ;;
    kafka_python.py|admin.py|cluster_meta.py|autocreate_off.py)
        /usr/bin/python3 -c 'import kafka' 2>/dev/null ||
            echo "kafka-python is not installed (apt-get install python3-kafka)" ;;
    control_cluster.py)
        command -v kcat >/dev/null 2>&1 || echo "kcat is not installed (apt-get install kcat)"
        /usr/bin/python3 -c 'import confluent_kafka' 2>/dev/null ||
            echo "confluent-kafka for Python is not installed (apt-get install python3-confluent-kafka)"
        /usr/bin/python3 -c 'import kafka' 2>/dev/null ||
            echo "kafka-python is not installed (apt-get install python3-kafka)" ;;
    autocreate.py|autocreate_cluster.py)
        command -v kcat >/dev/null 2>&1 || echo "kcat is not installed (apt-get install kcat)"
        /usr/bin/python3 -c 'import kafka' 2>/dev/null ||
            echo "kafka-python is not installed (apt-get install python3-kafka)" ;;
    kafkajs.js)
        [ -f "$BUILD/kafka-npm/node_modules/kafkajs/package.json" ] ||
            echo "kafkajs is not installed (make kafka-client-tests installs it from npm)" ;;
    sarama)
        [ -x "$BUILD/tests/kafka/sarama_group" ] ||
            echo "the sarama test is not built (golang-github-shopify-sarama-dev; make kafka-client-tests)" ;;
    *)
        [ -x "$BUILD/tests/kafka/$1" ] ||
            echo "$BUILD/tests/kafka/$1 is not built (librdkafka-dev missing? make kafka-client-tests)" ;;
    esac
}
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
    why=$(missing "$t")
    if [ -n "$why" ]; then
        skip=$((skip + 1)); echo "skip  $t: $why"
        continue
    fi
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
# The broker stops cleanly (SIGTERM); a sanitizer report in its log (make test-asan) fails the run.
sh "$here/broker.sh" stop
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$KAFKA_WORK/ringlogd.log"; then
    fail=$((fail + 1)); echo "FAIL  ringlogd reported sanitizer errors:"
    grep -E -A20 'AddressSanitizer|LeakSanitizer|runtime error:' "$KAFKA_WORK/ringlogd.log" |
        head -n 60 | sed 's/^/      | /'
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
