#!/bin/sh
# Installs the Debian package of a tool the benchmark reports need, when it is missing:
#   sh bench/tools.sh gnuplot   (gnuplot-nox: the plots of make bench-report)
#   sh bench/tools.sh perf      (linux-perf: the profiles of make bench-profile)
# Kept out of tools/deps.sh on purpose: make and make test never need them.
set -eu
tool=$1
case "$tool" in
    gnuplot) deb=gnuplot-nox ;;
    perf) deb=linux-perf ;;
    *) echo "bench/tools.sh: unknown tool $tool (gnuplot or perf)" >&2; exit 2 ;;
esac
command -v "$tool" >/dev/null 2>&1 && exit 0
echo "bench: installing $deb for $tool" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "bench: not root and no sudo; install $deb" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -qq "$deb" >&2; then
    $SUDO apt-get update -qq >&2
    $SUDO apt-get install -y -qq "$deb" >&2
fi
command -v "$tool" >/dev/null 2>&1 || { echo "bench: $deb installed but $tool is not on PATH" >&2; exit 1; }
