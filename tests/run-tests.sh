#!/bin/sh
# Runs every test program given on the command line and sums their tallies into one closing
# line "N passed, N failed[, N skipped]". A Criterion program reports through its "Synthesis"
# line; every other test program prints its own "N passed, N failed[, N skipped]" line. A program
# that prints neither counts as one test, judged by its exit status; so does one that exits
# non-zero after printing a clean tally (a crash after the summary is still a failure).
# Each program's full output goes to $BUILD/test-logs/<name>.log and is shown when it fails.
set -u
BUILD=${BUILD:-build}
logs="$BUILD/test-logs"
mkdir -p "$logs"
total_pass=0; total_fail=0; total_skip=0; failed_suites=""
for t in "$@"; do
    name=$(basename "$t")
    log="$logs/$name.log"
    start=$(date +%s)
    "$t" >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    p=0; f=0; s=0
    synth=$(grep -a 'Synthesis: Tested:' "$log" | tail -n 1)
    plain=$(grep -aE '^([A-Za-z_-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -n "$synth" ]; then
        p=$(echo "$synth" | sed -E 's/.*Passing: ([0-9]+).*/\1/')
        f=$(echo "$synth" | sed -E 's/.*Failing: ([0-9]+).*/\1/')
        c=$(echo "$synth" | sed -E 's/.*Crashing: ([0-9]+).*/\1/')
        f=$((f + c))
        s=$(grep -ac '\[SKIP\]' "$log" || true)
    elif [ -n "$plain" ]; then
        p=$(echo "$plain" | sed -E 's/^([A-Za-z_-]+: )?([0-9]+) passed.*/\2/')
        f=$(echo "$plain" | sed -E 's/.* ([0-9]+) failed.*/\1/')
        s=$(echo "$plain" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+' || echo 0)
    elif [ $rc -eq 0 ]; then
        p=1
    fi
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); total_skip=$((total_skip + s))
    if [ "$f" -ne 0 ]; then
        echo "FAIL  $name: $p passed, $f failed (exit $rc, ${secs}s); log $log"
        tail -n 40 "$log" | sed 's/^/      | /'
        failed_suites="$failed_suites $name"
    else
        echo "ok    $name: $p passed, $s skipped (${secs}s)"
    fi
done
[ -n "$failed_suites" ] && echo "failed suites:$failed_suites"
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
