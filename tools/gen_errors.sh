#!/bin/sh
# Prints the `enum rl_error` block of client/ringlog.h from common/err.h, the single list of
# ringlog's error codes (the broker sends exactly these numbers). `--check` compares the block
# in client/ringlog.h with a fresh one and fails naming the difference; `--write` rewrites it.
# Run from the source root. The block sits between the BEGIN/END marker lines in ringlog.h.
set -eu
CPP=${CPP:-cpp}
HDR=client/ringlog.h
BEGIN='/* BEGIN rl_error: generated from common/err.h by tools/gen_errors.sh; do not edit */'
END='/* END rl_error */'

gen() {
    printf '#include "common/err.h"\n#define X(n, v, m) @@ n v m\n@START@ RL_ERROR_LIST(X)\n' |
        $CPP -P -I. - | tr '\n' ' ' | sed 's/.*@START@//' | sed 's/@@/\n/g' | sed '/^ *$/d' |
        sed 's/" *"//g' | awk '
        BEGIN { print "enum rl_error {" }
        {
            name = $1; num = $2
            msg = $0; sub(/^ *[A-Z_0-9]+ +-?[0-9]+ +"/, "", msg); sub(/" *$/, "", msg)
            gsub(/\\"/, "\"", msg)
            line = sprintf("    RL_E_%s = %s, /**<", name, num)
            n = split(msg, w, " ")
            for (i = 1; i <= n; i++) {
                if (length(line) + 1 + length(w[i]) > 96) { print line; line = "        " w[i] }
                else line = line " " w[i]
            }
            print line " */"
        }
        END { print "};" }'
}

block() {
    awk -v b="$BEGIN" -v e="$END" '$0 == e { on = 0 } on { print } $0 == b { on = 1 }' "$HDR"
}

case "${1:-}" in
--check)
    tmp=$(mktemp); gen > "$tmp"
    if block | cmp -s - "$tmp"; then echo "ok   $HDR's enum rl_error matches common/err.h"; rm -f "$tmp"; exit 0; fi
    echo "FAIL $HDR's enum rl_error differs from common/err.h (run: sh tools/gen_errors.sh --write):"
    block | diff - "$tmp" | head -20; rm -f "$tmp"; exit 1 ;;
--write)
    tmp=$(mktemp); gen > "$tmp.blk"
    awk -v b="$BEGIN" -v e="$END" -v f="$tmp.blk" '
        $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
        $0 == e { skip = 0 }
        !skip { print }' "$HDR" > "$tmp" && mv "$tmp" "$HDR"; rm -f "$tmp.blk" ;;
*) gen ;;
esac
