#!/bin/sh
# Checks libringlog as a user meets it: the shared object and the static archive export the rl_
# API and nothing else (the same names), the shared object needs only what a client uses and
# resolves all of it, and programs built against client/ringlog.h and linked with either run. Run from the source root with BUILD set (make test does both).
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

# 1b. The static archive exports the very same names (its internals are localized), and neither
# library drags in what a client never uses (liburing, the Kafka listener's codecs).
A="$BUILD/lib/libringlog.a"
nm -D --defined-only "$SO" | awk '{print $3}' | sed 's/@.*//' | grep -v '^RINGLOG_0$' | sort \
    > /tmp/ringlog-so-syms.$$
nm -g --defined-only "$A" 2>/dev/null | awk 'NF == 3 {print $3}' | sort > /tmp/ringlog-a-syms.$$
acount=$(wc -l < /tmp/ringlog-a-syms.$$)
if [ "$acount" -eq "$count" ] && cmp -s /tmp/ringlog-so-syms.$$ /tmp/ringlog-a-syms.$$; then
    ok "libringlog.a exports the same $acount rl_ symbols as the .so"
else bad "libringlog.a exports $acount symbols, the .so $count: \
$(diff /tmp/ringlog-so-syms.$$ /tmp/ringlog-a-syms.$$ | head -10)"; fi
rm -f /tmp/ringlog-so-syms.$$ /tmp/ringlog-a-syms.$$
needed=$(readelf -d "$SO.0" | grep NEEDED)
if echo "$needed" | grep -q 'uring\|snappy\|lz4\|libz\.'; then bad "the .so needs: $needed"
else ok "the .so needs only $(echo "$needed" | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"; fi

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
    return bad || strcmp(buf, "all") != 0;
}
PROG
sodir=$(cd "$BUILD/lib" && pwd)
# A sanitizer build of the library (make test-asan) needs its runtime in the program too.
san=""
nm -D "$SO.0" | grep -q '__asan_init' && san="-fsanitize=address,undefined"
# Linked by path, so the static archive beside it cannot stand in; loaded through its soname.
if $CC -std=c17 -Wall -Werror $san -I client -o "$tmp/prog" "$tmp/prog.c" "$sodir/libringlog.so" \
       -Wl,-rpath,"$sodir" 2>"$tmp/cc.log" && ldd "$tmp/prog" | grep -q 'libringlog.so.0' &&
   out=$("$tmp/prog") && [ "$out" = "0.1.0 all UNKNOWN_TOPIC" ]; then
    ok "a program links against it and runs"
else bad "program against $SO: $(cat "$tmp/cc.log") ${out:-}"; fi

# 4. A program linked with the static archive runs, and may define names the library uses
# inside (batch_builder_create, rl_log_write) without a clash: they are not exported.
cat > "$tmp/static.c" <<'PROG'
#include "ringlog.h"
#include <stdio.h>
int batch_builder_create(void);
int batch_builder_create(void) { return 7; }
void rl_log_write(void);
void rl_log_write(void) {}
int main(void)
{
    struct rl_conf *c = rl_conf_new();
    char buf[8];
    int rc = rl_conf_get(c, "compression", buf, sizeof(buf));
    printf("%d %s %d\n", rc, buf, batch_builder_create());
    rl_conf_destroy(c);
    return 0;
}
PROG
deps=$(sed -n 's/^CLIENT_DEPS_LIBS := //p' "$BUILD/deps.mk")
if $CC -std=c17 -Wall -Werror $san -I client -o "$tmp/static" "$tmp/static.c" "$A" $deps \
       2>"$tmp/cc2.log" && out=$("$tmp/static") && [ "$out" = "0 none 7" ]; then
    ok "a program links the static archive, defines internal names of its own, and runs"
else bad "program against $A: $(cat "$tmp/cc2.log") ${out:-}"; fi
rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
