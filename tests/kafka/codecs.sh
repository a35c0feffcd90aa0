#!/bin/sh
# codecs.sh: records produced by librdkafka (kcat) with gzip, snappy, lz4 and zstd are read back
# by librdkafka and by ringlog consume, unchanged.
set -eu
B=$KAFKA_BOOTSTRAP
R="$RINGLOG --brokers $RINGLOG_BROKERS"
fail() { echo "codecs.sh: $*" >&2; exit 1; }
for c in gzip snappy lz4 zstd; do
    T="codec-$c-$$"
    $R topic create "$T" --partitions 1
    seq 1 500 | sed "s/^/$c-record-/" | kcat -b "$B" -P -t "$T" -p 0 -X compression.codec=$c \
        -X linger.ms=50
    want=$(seq 1 500 | sed "s/^/$c-record-/" | md5sum)
    got=$(kcat -b "$B" -C -t "$T" -p 0 -o beginning -e -q -f '%s\n' | md5sum)
    [ "$got" = "$want" ] || fail "$c: kcat read back something else"
    got=$($R consume "$T" --partition 0 --from earliest --count 500 --idle-exit-ms 10000 |
          md5sum)
    [ "$got" = "$want" ] || fail "$c: ringlog consume read back something else"
done
echo "codecs ok"
