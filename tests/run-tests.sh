#!/bin/sh
# Runs every test program given on the command line and sums their tallies into one closing
# line "N passed, N failed[, N skipped]". A Criterion program reports through its "Synthesis"
# line, and its skips (cr_skip_test, which the Synthesis line leaves out) through the TAP report
# Criterion writes when CRITERION_OUTPUTS asks for one ($BUILD/test-logs/<name>.tap); every
# other test program prints its own "N passed, N failed[, N skipped]" line. A program
# that prints neither counts as one test, judged by its exit status; so does one that exits
# non-zero after printing a clean tally (a crash after the summary is still a failure).
# Each program's full output goes to $BUILD/test-logs/<name>.log and is shown when it fails.
#
# A program fails, by name, when it:
#   - reports a failure, crashes, or exits non-zero;
#   - runs no test at all ("0 passed, 0 failed", "Tested: 0"): a suite that checks nothing
#     must not pass;
#   - runs longer than TEST_TIMEOUT seconds (default 600; `make test TEST_TIMEOUT=N`): it is
#     sent SIGTERM, then SIGKILL 10 s later, with every process it started, and the run goes on
#     with the next program;
#   - is missing or not executable.
#
# One seed for every random test: RINGLOG_SEED (`make test SEED=N`), else one drawn here for the
# whole run. It is printed first and with every failure, with the command that replays it; tests
# read it through tests/lib/tl_seed.h. RINGLOG_TEST_SEED and RL_TEST_SEED get the same value for
# the suites that still read those names.
set -u
BUILD=${BUILD:-build}
TEST_TIMEOUT=${TEST_TIMEOUT:-600}
logs="$BUILD/test-logs"
mkdir -p "$logs"
if [ -z "${RINGLOG_SEED:-}" ]; then
    RINGLOG_SEED=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
fi
RINGLOG_TEST_SEED=${RINGLOG_TEST_SEED:-$RINGLOG_SEED}
RL_TEST_SEED=${RL_TEST_SEED:-$RINGLOG_SEED}
export RINGLOG_SEED RINGLOG_TEST_SEED RL_TEST_SEED
echo "seed $RINGLOG_SEED for every random test (replay this run: make test SEED=$RINGLOG_SEED)"

total_pass=0; total_fail=0; total_skip=0; failed_suites=""
for t in "$@"; do
    name=$(basename "$t")
    log="$logs/$name.log"
    why=""
    start=$(date +%s)
    tap="$logs/$name.tap"
    rm -f "$tap"
    if [ -x "$t" ]; then
        CRITERION_OUTPUTS="tap:$tap" timeout -k 10 "$TEST_TIMEOUT" "$t" >"$log" 2>&1
        rc=$?
    else
        echo "$t: no such test program (not built?)" >"$log"
        rc=127
        why="not built"
    fi
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 124 ] || { [ $rc -eq 137 ] && [ $secs -ge "$TEST_TIMEOUT" ]; }; then
        why="timed out after ${secs}s (TEST_TIMEOUT=$TEST_TIMEOUT)"
    fi
    p=0; f=0; s=0
    synth=$(grep -a 'Synthesis: Tested:' "$log" | tail -n 1)
    plain=$(grep -aE '^([A-Za-z_-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -n "$why" ]; then
        :
    elif [ -n "$synth" ]; then
        p=$(echo "$synth" | sed -E 's/.*Passing: ([0-9]+).*/\1/')
        f=$(echo "$synth" | sed -E 's/.*Failing: ([0-9]+).*/\1/')
        c=$(echo "$synth" | sed -E 's/.*Crashing: ([0-9]+).*/\1/')
        f=$((f + c))
        s=$(grep -ac '# SKIP' "$tap" 2>/dev/null || true)
        s=${s:-0}
    elif [ -n "$plain" ]; then
        p=$(echo "$plain" | sed -E 's/^([A-Za-z_-]+: )?([0-9]+) passed.*/\2/')
        f=$(echo "$plain" | sed -E 's/.* ([0-9]+) failed.*/\1/')
        s=$(echo "$plain" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+' || echo 0)
    elif [ $rc -eq 0 ]; then
        p=1
    fi
    if [ -z "$why" ] && [ $rc -eq 0 ] && [ $((p + f + s)) -eq 0 ]; then
        why="no tests ran"
    fi
    if [ -n "$why" ] || { [ $rc -ne 0 ] && [ "$f" -eq 0 ]; }; then f=$((f + 1)); fi
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); total_skip=$((total_skip + s))
    if [ "$f" -ne 0 ]; then
        echo "FAIL  $name: $p passed, $f failed (exit $rc, ${secs}s${why:+; $why}); log $log"
        tail -n 40 "$log" | sed 's/^/      | /'
        echo "      replay: RINGLOG_SEED=$RINGLOG_SEED $t"
        failed_suites="$failed_suites $name"
    else
        echo "ok    $name: $p passed, $s skipped (${secs}s)"
    fi
done
[ -n "$failed_suites" ] && echo "failed suites:$failed_suites (seed $RINGLOG_SEED)"
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
