#!/bin/sh
# Installs the Debian packages ringlog builds on, when pkg-config cannot find them, then prints
# the make variables DEPS_CFLAGS and DEPS_LIBS. Progress goes to stderr; stdout is the fragment.
# Does nothing but print when everything is present, so it is safe to run on every build.
set -eu

PKGS="liburing libxxhash libzstd libprotobuf-c criterion zlib snappy liblz4"
DEBS="pkg-config liburing-dev libxxhash-dev libzstd-dev libprotobuf-c-dev protobuf-c-compiler libcriterion-dev"
# The Kafka listener converts the codecs Kafka clients use (gzip, snappy, lz4) on produce.
DEBS="$DEBS zlib1g-dev libsnappy-dev liblz4-dev"
# Kafka client tests (tests/kafka/): Debian 12's Kafka clients as users run them: kcat and
# librdkafka (C), confluent-kafka and kafka-python (with its codec modules), Go with sarama.
# kafkajs comes from npm into build/ when those tests run (never committed). The Python
# modules are Debian's, so the tests run /usr/bin/python3, whatever python3 is first on PATH.
KAFKA_TEST_DEBS="kcat librdkafka-dev python3-confluent-kafka python3-kafka python3-zstandard \
python3-lz4 python3-snappy golang-go golang-github-shopify-sarama-dev"
DEBS="$DEBS $KAFKA_TEST_DEBS"
command -v npm >/dev/null 2>&1 || DEBS="$DEBS npm"

# make docs renders client/ringlog.h with Doxygen.
DEBS="$DEBS doxygen"

# The fault tests (tests/fault) build network namespaces with ip and tc (iproute2) and make
# partitions with nft (nftables).
DEBS="$DEBS iproute2 nftables"

have_all() {
    command -v pkg-config >/dev/null 2>&1 || return 1
    command -v protoc-c >/dev/null 2>&1 || return 1
    pkg-config --exists $PKGS 2>/dev/null || return 1
    have_fault_tools || return 1
    command -v doxygen >/dev/null 2>&1 || return 1
    have_kafka_clients
}

have_fault_tools() {
    for tool in ip tc nft; do
        command -v $tool >/dev/null 2>&1 || [ -x /usr/sbin/$tool ] || [ -x /sbin/$tool ] || return 1
    done
}

have_kafka_clients() {
    command -v kcat >/dev/null 2>&1 && command -v go >/dev/null 2>&1 &&
        command -v npm >/dev/null 2>&1 && pkg-config --exists rdkafka 2>/dev/null &&
        [ -d /usr/share/gocode/src/github.com/Shopify/sarama ] &&
        /usr/bin/python3 -c 'import confluent_kafka, kafka, zstandard, lz4, snappy' 2>/dev/null
}

if ! have_all; then
    echo "deps: installing missing Debian packages: $DEBS" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "deps: not root and no sudo; install: $DEBS" >&2; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y -qq $DEBS >&2; then
        $SUDO apt-get update -qq >&2
        $SUDO apt-get install -y -qq $DEBS >&2
    fi
    have_all || { echo "deps: packages installed but still missing: pkg-config $PKGS, ip/tc/nft, or a Kafka client (kcat, go + sarama, npm, rdkafka, /usr/bin/python3 modules)" >&2; exit 1; }
fi

echo "DEPS_CFLAGS := $(pkg-config --cflags $PKGS)"
echo "DEPS_LIBS := $(pkg-config --libs liburing libxxhash libzstd libprotobuf-c zlib snappy liblz4) -lpthread -lm"
# What libringlog itself links: the client needs no liburing and none of the Kafka codecs.
echo "CLIENT_DEPS_LIBS := $(pkg-config --libs libxxhash libzstd libprotobuf-c) -lpthread -lm"
echo "CRITERION_LIBS := $(pkg-config --libs criterion)"
echo "RDKAFKA_LIBS := $(pkg-config --libs rdkafka)"
