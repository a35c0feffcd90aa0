#!/bin/sh
# Installs the Debian packages ringlog builds on, when pkg-config cannot find them, then prints
# the make variables DEPS_CFLAGS and DEPS_LIBS. Progress goes to stderr; stdout is the fragment.
# Does nothing but print when everything is present, so it is safe to run on every build.
set -eu

PKGS="liburing libxxhash libzstd libprotobuf-c criterion zlib snappy liblz4"
DEBS="pkg-config liburing-dev libxxhash-dev libzstd-dev libprotobuf-c-dev protobuf-c-compiler libcriterion-dev"
# The Kafka listener converts the codecs Kafka clients use (gzip, snappy, lz4) on produce.
DEBS="$DEBS zlib1g-dev libsnappy-dev liblz4-dev"

have_all() {
    command -v pkg-config >/dev/null 2>&1 || return 1
    command -v protoc-c >/dev/null 2>&1 || return 1
    pkg-config --exists $PKGS 2>/dev/null
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
    have_all || { echo "deps: packages installed but pkg-config still cannot find: $PKGS" >&2; exit 1; }
fi

echo "DEPS_CFLAGS := $(pkg-config --cflags $PKGS)"
echo "DEPS_LIBS := $(pkg-config --libs liburing libxxhash libzstd libprotobuf-c zlib snappy liblz4) -lpthread -lm"
echo "CRITERION_LIBS := $(pkg-config --libs criterion)"
