#!/bin/sh
# Checks client/ringlog.h as a user's compiler meets it: its enum rl_error is exactly the broker's
# list (common/err.h), and it compiles cleanly as C99 and as C++20 (-Wall -Wextra -Werror, with
# every error code, the delivery status and the statistics used), and beside common/err.h in
# either order; and Doxygen renders it (make docs). Run from the source root (make test does).
set -u
CC=${CC:-cc}
CXX=${CXX:-c++}
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

# 1. The public codes are the broker's, name for name and number for number.
if out=$(sh tools/gen_errors.sh --check 2>&1); then ok "enum rl_error equals common/err.h"
else bad "$out"; fi

tmp=$(mktemp -d /tmp/ringlog-hdr.XXXXXX)
cat > "$tmp/use.c" <<'PROG'
#include "ringlog.h"
#include <stdio.h>
static void on_delivery(void *ctx, const struct rl_delivery *d)
{
    (void)ctx;
    if (d->status == RL_DELIVERY_POSSIBLY_PERSISTED || d->error == RL_E_TIMED_OUT)
        printf("%s\n", d->error_message);
}
static void on_log(void *ctx, int level, const char *message)
{
    (void)ctx;
    if (level >= RL_LOGLEVEL_WARN)
        printf("%s\n", message);
}
int main(void)
{
    enum rl_error e = RL_E_BROKER_UNAVAILABLE;
    static struct rl_producer_stats st;
    struct rl_conf *c = rl_conf_new();
    rl_conf_set_delivery_cb(c, on_delivery, NULL);
    rl_conf_set_log_cb(c, on_log, NULL);
    printf("%d %d %d %lu %d\n", (int)e, rl_error_is_retriable(e), rl_error_is_fatal(e),
           (unsigned long)st.queued_records, RL_TIMEOUT_INFINITE);
    rl_conf_destroy(c);
    return 0;
}
PROG
cp "$tmp/use.c" "$tmp/use.cc"

# 2. C99, pedantic.
if $CC -std=c99 -Wall -Wextra -Werror -pedantic -I client -c -o "$tmp/c99.o" "$tmp/use.c" \
       2>"$tmp/c99.log"; then ok "compiles as C99 (-Wall -Wextra -Werror -pedantic)"
else bad "C99: $(cat "$tmp/c99.log")"; fi

# 3. C++20.
if $CXX -std=c++20 -Wall -Wextra -Werror -I client -c -o "$tmp/cxx.o" "$tmp/use.cc" \
       2>"$tmp/cxx.log"; then ok "compiles as C++20 (-Wall -Wextra -Werror)"
else bad "C++20: $(cat "$tmp/cxx.log")"; fi

# 4. Beside the broker's own header, in either order (one enum, no redefinition).
printf '#include "common/err.h"\n#include "client/ringlog.h"\nint x = RL_E_FULL;\n' > "$tmp/a.c"
printf '#include "client/ringlog.h"\n#include "common/err.h"\nint x = RL_E_FULL;\n' > "$tmp/b.c"
if $CC -std=c17 -Wall -Werror -I. -c -o "$tmp/a.o" "$tmp/a.c" 2>"$tmp/ab.log" &&
   $CC -std=c17 -Wall -Werror -I. -c -o "$tmp/b.o" "$tmp/b.c" 2>>"$tmp/ab.log"; then
    ok "ringlog.h and common/err.h together, either order"
else bad "with common/err.h: $(cat "$tmp/ab.log")"; fi

# 5. make docs: Doxygen renders the header's comments into a reference page (as make docs runs
# it, into a scratch directory).
if ! command -v doxygen >/dev/null 2>&1; then bad "doxygen is missing (tools/deps.sh installs it)"
elif (cat docs/Doxyfile; echo "OUTPUT_DIRECTORY = $tmp/docs") | doxygen - >"$tmp/dox.log" 2>&1 &&
     page="$tmp/docs/html/ringlog_8h.html" && [ -f "$page" ] &&
     grep -q 'Blocks at most max.block.ms' "$page" && grep -q 'RL_DELIVERY_POSSIBLY_PERSISTED' "$page" &&
     grep -q 'Timeouts: every timeout_ms argument' "$page"; then
    ok "doxygen renders ringlog.h ($(ls "$tmp/docs/html" | grep -c 'html$') pages)"
else bad "doxygen: $(tail -5 "$tmp/dox.log")"; fi
rm -rf "$tmp"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
