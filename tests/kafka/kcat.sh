#!/bin/sh
# kcat.sh: kcat (librdkafka 2.0.2) against the Kafka listener: -L lists the topic with its
# partitions; -P produces keyed records with headers; -C reads them back from the beginning and
# from an offset; -G consumes as a group member from the committed start.
set -eu
B=$KAFKA_BOOTSTRAP
T="kcat-$$"
fail() { echo "kcat.sh: $*" >&2; exit 1; }
$RINGLOG --brokers "$RINGLOG_BROKERS" topic create "$T" --partitions 3
kcat -b "$B" -L -t "$T" | grep -q "topic \"$T\" with 3 partitions" || fail "-L does not show $T"
kcat -b "$B" -L | grep -q "broker .* at $B" || fail "-L does not list the broker at $B"
printf 'k1:v1\nk2:v2\nk3:v3\n' | kcat -b "$B" -P -t "$T" -p 0 -K: -H trace=abc \
    -X enable.idempotence=true
got=$(kcat -b "$B" -C -t "$T" -p 0 -o beginning -e -q -f '%k=%s %h\n')
want=$(printf 'k1=v1 trace=abc\nk2=v2 trace=abc\nk3=v3 trace=abc')
[ "$got" = "$want" ] || fail "-C from beginning gave: $got"
got=$(kcat -b "$B" -C -t "$T" -p 0 -o 2 -e -q -f '%o:%s\n')
[ "$got" = "2:v3" ] || fail "-C -o 2 gave: $got"
seq 1 30 | kcat -b "$B" -P -t "$T"
got=$(timeout 60 kcat -b "$B" -G "g-$$" -X auto.offset.reset=earliest -e -q -f '%s\n' "$T" |
      sort -n | tr '\n' ' ')
# sort -n puts lines without a number (v1..v3, value 0) first
want="v1 v2 v3 $(seq 1 30 | tr '\n' ' ')"
[ "$got" = "$want" ] || fail "-G gave: $got"
echo "kcat ok"
