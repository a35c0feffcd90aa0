#!/bin/sh
# leader_replays.sh: how much log each new leader replayed to rebuild its producer state, from
# the logs of a test's brokers. Usage:
#   tools/leader_replays.sh DIR build/tests/fault/test_fault_cluster [ringlogd]
# runs the test with every ringlogd's output also copied to DIR/ringlogd.PID.log (the tests
# remove their brokers' directories), then prints, per new leader, the producer-state replay
# logged after its "leader of P in term T" line, and a summary.
set -eu
dir=$1
test_prog=$2
real=${3:-$(dirname "$0")/../build/bin/ringlogd}
mkdir -p "$dir"
wrap="$dir/ringlogd-wrap.sh"
cat > "$wrap" <<WRAP
#!/bin/bash
exec "$(realpath "$real")" "\$@" > >(tee -a "$(realpath "$dir")/ringlogd.\$\$.log") 2>&1
WRAP
chmod +x "$wrap"
RINGLOGD=$wrap "$test_prog" | tail -2
awk '
/leader of [^ ]+ in term/ {
    for (i = 1; i <= NF; i++) if ($i == "of") { p = $(i + 1); t = $(i + 4) }
    waiting[FILENAME SUBSEP p] = t; next
}
/producer state (loaded|brought up to date)/ {
    p = ""; for (i = 1; i <= NF; i++) if ($i ~ /:$/ && p == "") p = substr($i, 1, length($i) - 1)
    k = FILENAME SUBSEP p
    if (!(k in waiting)) next
    match($0, /offsets [0-9]+\.\.[0-9]+/); split(substr($0, RSTART + 8, RLENGTH - 8), r, /\.\./)
    n = r[2] - r[1]; printf "%s term %s: offsets %s..%s (%d)\n", p, waiting[k], r[1], r[2], n
    delete waiting[k]; cnt++; sum += n; if (n > max) max = n
}
END { printf "leader replays: %d, offsets replayed: max %d, total %d\n", cnt, max, sum }
' "$dir"/ringlogd.*.log
