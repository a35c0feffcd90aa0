#!/bin/sh
# Checks the shared libringlog as a user meets it: it exports the rl_ API and nothing else, it
# resolves all its own dependencies, and a program built against client/ringlog.h and linked
# with it runs. Run from the source root with BUILD set (make test does both).
set -u
BUILD=${BUILD:-build}
SO="$BUILD/lib/libringlog.so"
CC=${CC:-cc}
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
if [ ! -e "$SO" ] || [ ! -e "$SO.0" ]; then
    echo "FAIL $SO or $SO.0 is missing"; echo "0 passed, 1 failed"; exit 1
fi

# 1. Only rl_ symbols are exported (the version node RINGLOG_0 aside).
others=$(nm -D --defined-only "$SO" | awk '{print $3}' | sed 's/@.*//' | grep -v '^RINGLOG_0$' |
         grep -v '^rl_')
count=$(nm -D --defined-only "$SO" | awk '{print $3}' | grep -c '^rl_')
if [ -z "$others" ] && [ "$count" -ge 30 ]; then ok "exports: $count rl_ symbols, nothing else"
else bad "exports: unexpected symbols: $others (rl_: $count)"; fi

# 2. Every symbol it uses resolves against its declared dependencies (-z defs held).
if ! deps=$(ldd -r "$SO" 2>&1) || echo "$deps" | grep -q 'undefined symbol\|not found'; then
    bad "dependencies of $SO: $deps"
else ok "no undefined symbols"; fi

# 3. A program using only the public header links against the .so and runs.
tmp=$(mktemp -d /tmp/ringlog-so.XXXXXX)
cat > "$tmp/prog.c" <<'PROG'
#include "ringlog.h"
#include <stdio.h>
#include <string.h>
int main(void)
{
    struct rl_conf *c = rl_conf_new();
    char buf[64], err[128];
    int bad = rl_conf_set(c, "acks", "maybe", err, sizeof(err)) == 0;
    rl_conf_get(c, "acks", buf, sizeof(buf));
    printf("%s %s %s\n", rl_version(), buf, rl_error_name(-5305));
    rl_conf_destroy(c);
    return bad || strcmp(buf, "1") != 0;
}
PROG
sodir=$(cd "$BUILD/lib" && pwd)
# A sanitizer build of the library (make test-asan) needs its runtime in the program too.
san=""
nm -D "$SO.0" | grep -q '__asan_init' && san="-fsanitize=address,undefined"
# Linked by path, so the static archive beside it cannot stand in; loaded through its soname.
if $CC -std=c17 -Wall -Werror $san -I client -o "$tmp/prog" "$tmp/prog.c" "$sodir/libringlog.so" \
       -Wl,-rpath,"$sodir" 2>"$tmp/cc.log" && ldd "$tmp/prog" | grep -q 'libringlog.so.0' &&
   out=$("$tmp/prog") && [ "$out" = "0.1.0 1 UNKNOWN_TOPIC" ]; then
    ok "a program links against it and runs"
else bad "program against $SO: $(cat "$tmp/cc.log") ${out:-}"; fi
rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
