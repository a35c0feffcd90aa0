#!/bin/sh
# run-seeds.sh: long simulator runs in resumable chunks, at the lowest CPU priority.
#
#   tests/sim/run-seeds.sh BIN VOTERS FIRST COUNT [CHUNK] [OUTDIR]
#
# Runs seeds [FIRST, FIRST+COUNT) of BIN (a copy of build/tests/sim/test_sim, so rebuilding the
# tree does not change a run in progress) with --count 1 (every seed runs; failures are
# counted and the first ten of each chunk listed with their replay seeds), CHUNK seeds per
# process (default 10000). Each chunk writes OUTDIR/vVOTERS-FIRST.log (default OUTDIR:
# the directory holding BIN); a chunk whose log already ends in a tally is skipped, so the same
# command resumes an interrupted run. The closing line sums every chunk of this VOTERS value.
# For the glue mode, BIN is a copy of build/tests/sim/test_sim_glue; give it an OUTDIR of its
# own, as its logs are named like the plain runs'.
set -eu
[ $# -ge 4 ] || { echo "usage: $0 BIN VOTERS FIRST COUNT [CHUNK] [OUTDIR]" >&2; exit 2; }
bin=$1 voters=$2 first=$3 count=$4 chunk=${5:-10000} out=${6:-$(dirname "$bin")}
mkdir -p "$out"
end=$((first + count))
s=$first
while [ "$s" -lt "$end" ]; do
    n=$chunk
    [ $((s + n)) -le "$end" ] || n=$((end - s))
    log="$out/v$voters-$s.log"
    if ! grep -q ' passed, [0-9]* failed' "$log" 2>/dev/null; then
        nice -n 19 "$bin" --voters "$voters" --first "$s" --seeds "$n" --count 1 >"$log.tmp" 2>&1 ||
            true
        mv "$log.tmp" "$log"
    fi
    s=$((s + n))
done
# Sum the chunks: "V voters: F of N seeds failed a check".
cat "$out"/v"$voters"-*.log | awk -v v="$voters" '
    $2 == "voters:" && $4 == "of" { failed += $3; ran += $5 }
    /^seed [0-9]+: / { print "  " $0 }
    END { printf "%s voters: %d seeds run, %d failed a check\n", v, ran, failed }'
