#!/bin/sh
# cross.sh: one log, two protocols. Records produced natively (ringlog produce) are read by
# kcat; records produced by kcat are read by ringlog consume; offsets committed by a Kafka
# group consumer show in ringlog group describe.
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
echo "cross ok"
