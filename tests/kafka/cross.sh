#!/bin/sh
# cross.sh: one log, two protocols. Records produced natively (ringlog produce) are read by
# kcat; records produced by kcat are read by ringlog consume; offsets committed by a Kafka
# group consumer show in ringlog group describe, and offsets committed by a native group
# consumer are what a Kafka admin client (kafka-python) fetches for that group.
set -eu
B=$KAFKA_BOOTSTRAP
R="$RINGLOG --brokers $RINGLOG_BROKERS"
T="cross-$$"
fail() { echo "cross.sh: $*" >&2; exit 1; }
$R topic create "$T" --partitions 1
printf 'native-1\nnative-2\n' | $R produce "$T" --partition 0
got=$(kcat -b "$B" -C -t "$T" -p 0 -o beginning -e -q -f '%s\n' | tr '\n' ' ')
[ "$got" = "native-1 native-2 " ] || fail "kcat read: $got"
printf 'kafka-1\nkafka-2\n' | kcat -b "$B" -P -t "$T" -p 0
got=$($R consume "$T" --partition 0 --from 2 --count 2 --idle-exit-ms 10000 | tr '\n' ' ')
[ "$got" = "kafka-1 kafka-2 " ] || fail "ringlog consume read: $got"
timeout 60 kcat -b "$B" -G "xg-$$" -X auto.offset.reset=earliest -e -q "$T" > /dev/null
$R group describe "xg-$$" | grep -q "4" || fail "committed offset 4 not shown by group describe"
$R consume "$T" --group "ng-$$" --from earliest --count 3 --idle-exit-ms 10000 > /dev/null
got=$(/usr/bin/python3 -c 'import sys
from kafka.admin import KafkaAdminClient
a = KafkaAdminClient(bootstrap_servers=sys.argv[1])
print(sorted((tp.partition, om.offset) for tp, om in a.list_consumer_group_offsets(sys.argv[2]).items()))
a.close()' "$B" "ng-$$")
[ "$got" = "[(0, 3)]" ] || fail "a Kafka client fetched the native group's offsets as $got"
echo "cross ok"
