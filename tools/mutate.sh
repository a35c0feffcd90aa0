#!/bin/sh
# mutate: plants one-line bugs in a copy of the tree, one at a time, and checks that the test
# suites named for each one catch it (`make mutate`; the list and its format are in
# tests/mutate/mutations.list).
#
#   tools/mutate.sh [-l LIST] [NAME ...]     NAMEs run only those mutants (default: all)
#
# Environment (the Makefile passes them): MUTATE_TESTS, the test programs make test runs
# ($(TESTS)); MUTATE_DEPS, what they need besides themselves ($(TEST_DEPS)); BUILD, the build
# directory whose objects seed the copy (default build); MUTATE_TIMEOUT, seconds per suite run
# (default 300).
#
# How: the working tree (tracked and untracked files, uncommitted changes included) is mirrored
# into $BUILD/mutate/tree, whose own build/ is seeded once from $BUILD (objects and all, mtimes
# kept) so the first build there is incremental. Every run re-syncs the mirror, copying only
# files whose content changed (with a fresh mtime, so make rebuilds what depends on them). Then:
#   1. every entry is checked before anything runs: its file exists, its `from` text occurs
#      exactly once in it, its suites are test programs of make test; any problem fails the run
#      (so the list cannot rot silently when code moves);
#   2. the suites the list names are built and run unmutated in the mirror: all must pass;
#   3. each mutant in turn: the text is replaced, the suites rebuilt (incrementally), and run one
#      by one with a timeout until one fails ("caught by SUITE") or none does ("SURVIVED"); a
#      mutant that does not build is "BROKEN"; the file is then restored (fresh mtime).
# Prints one line per mutant and a summary; exits non-zero if any mutant survived, broke the
# build or could not be applied, or if the unmutated suites fail. Runs in sequence (-j2 builds).
set -u

LIST=tests/mutate/mutations.list
if [ "${1:-}" = "-l" ]; then
    LIST=$2
    shift 2
fi
BUILD=${BUILD:-build}
MUTATE_TIMEOUT=${MUTATE_TIMEOUT:-300}
MUTATE_TESTS=${MUTATE_TESTS:?set MUTATE_TESTS to the test programs (make mutate does)}
MUTATE_DEPS=${MUTATE_DEPS:-}
ROOT=$(pwd)
case "$BUILD" in
/*) WORK="$BUILD/mutate/tree" ;;
*) WORK="$ROOT/$BUILD/mutate/tree" ;;
esac
MBUILD=build # the mirror's own build directory, whatever $BUILD is
SEP=$(printf '\037') # a field separator `read` does not collapse (tabs would: an empty "to")

die() {
    echo "mutate: $*" >&2
    exit 2
}

[ -f "$LIST" ] || die "no mutation list $LIST"
command -v perl >/dev/null || die "perl is needed to apply mutations"

# --- parse the list into one line per mutant: name SEP file SEP from SEP to SEP suites -------
PARSED="$BUILD/mutate/parsed.txt"
mkdir -p "$BUILD/mutate"
perl -ne '
    BEGIN { $n = 0; $bad = 0 }
    sub flush {
        return unless defined $m{mutant};
        for my $k (qw(file from to caught-by)) {
            if (!defined $m{$k}) {
                print STDERR "$ARGV: mutant $m{mutant} (line $m{line}) has no \"$k\" line\n";
                $bad = 1;
            }
        }
        for my $k (keys %m) {
            if ($k ne "line" && $m{$k} =~ /[\t\037]/) {
                print STDERR "$ARGV: mutant $m{mutant}: tabs are not allowed\n";
                $bad = 1;
            }
        }
        if ($seen{$m{mutant}}++) {
            print STDERR "$ARGV: mutant name $m{mutant} is used twice\n";
            $bad = 1;
        }
        print join("\037", $m{mutant}, $m{file}, $m{from}, $m{to}, $m{"caught-by"}), "\n";
        %m = ();
    }
    chomp;
    next if /^\s*(#|$)/;
    if (/^(mutant|file|from|to|caught-by)(?:[ ]+(.*))?$/) {
        my ($k, $v) = ($1, defined $2 ? $2 : "");
        if ($k eq "mutant") { flush(); $m{line} = $.; }
        elsif (!defined $m{mutant}) {
            print STDERR "$ARGV:$.: \"$k\" before any \"mutant\" line\n"; $bad = 1; next;
        }
        if (defined $m{$k}) { print STDERR "$ARGV:$.: a second \"$k\" line\n"; $bad = 1; }
        $m{$k} = $v;
    } else {
        print STDERR "$ARGV:$.: not a list line: $_\n";
        $bad = 1;
    }
    END { flush(); exit $bad }
' "$LIST" >"$PARSED" || die "the list $LIST is malformed (see above)"

# Only the mutants named on the command line, if any.
if [ $# -gt 0 ]; then
    for want in "$@"; do
        cut -d "$SEP" -f1 "$PARSED" | grep -qx -- "$want" || die "no mutant named $want in $LIST"
    done
    printf '%s\n' "$@" >"$BUILD/mutate/wanted"
    awk -F "$SEP" 'NR == FNR { w[$0] = 1; next } ($1 in w)' "$BUILD/mutate/wanted" "$PARSED" \
        >"$PARSED.sel" && mv "$PARSED.sel" "$PARSED"
fi
[ -s "$PARSED" ] || die "no mutants to run"

# The path of a suite's program in the mirror, from its name and MUTATE_TESTS.
suite_path() {
    for p in $MUTATE_TESTS; do
        if [ "$(basename "$p")" = "$1" ]; then
            echo "$MBUILD/${p#"$BUILD"/}"
            return 0
        fi
    done
    return 1
}

# Occurrences of the text in $FROM in file $1 (non-overlapping).
count_in() {
    FROM="$FROM" perl -0777 -ne '$c = 0; $p = 0; $f = $ENV{FROM};
        while (($i = index($_, $f, $p)) >= 0) { $c++; $p = $i + length $f } print $c' "$1"
}

# --- 1. check every entry against the working tree -------------------------------------------
problems=0
all_suites=""
while IFS="$SEP" read -r name file from to suites; do
    if [ ! -f "$file" ]; then
        echo "mutate: $name: no file $file" >&2
        problems=$((problems + 1))
        continue
    fi
    [ -n "$from" ] || { echo "mutate: $name: empty \"from\" text" >&2; problems=$((problems + 1)); }
    [ "$from" != "$to" ] || { echo "mutate: $name: \"to\" equals \"from\"" >&2;
                              problems=$((problems + 1)); }
    n=$(FROM="$from" count_in "$file")
    if [ "$n" != 1 ]; then
        echo "mutate: $name: the \"from\" text occurs $n times in $file (must be exactly once):" \
             "$from" >&2
        problems=$((problems + 1))
    fi
    [ -n "$suites" ] || { echo "mutate: $name: no suites" >&2; problems=$((problems + 1)); }
    for s in $suites; do
        if ! suite_path "$s" >/dev/null; then
            echo "mutate: $name: $s is not a test program of make test" >&2
            problems=$((problems + 1))
        fi
        case " $all_suites " in *" $s "*) ;; *) all_suites="$all_suites $s" ;; esac
    done
done <"$PARSED"
[ "$problems" -eq 0 ] || die "$problems problem(s) in $LIST; fix the entries above"

# --- the mirror -------------------------------------------------------------------------------
git ls-files -co --exclude-standard >"$BUILD/mutate/files.all" || die "not a git checkout"
while read -r f; do [ -f "$f" ] && echo "$f"; done <"$BUILD/mutate/files.all" >"$BUILD/mutate/files"
if [ ! -d "$WORK/$MBUILD" ]; then
    echo "mutate: seeding $WORK from the working tree and $BUILD (first run)"
    rm -rf "$WORK"
    mkdir -p "$WORK"
    tar -cf - -T "$BUILD/mutate/files" | tar -xf - -C "$WORK" || die "cannot copy the tree"
    mkdir -p "$WORK/$MBUILD"
    (cd "$BUILD" && tar -cf - --exclude=./mutate --exclude=./asan --exclude=./fuzz \
        --exclude=./test-logs .) | tar -xf - -C "$WORK/$MBUILD" || die "cannot copy $BUILD"
else
    # Content changes only; a changed file gets a fresh mtime so make rebuilds after it.
    while read -r f; do
        if ! cmp -s "$f" "$WORK/$f"; then
            mkdir -p "$WORK/$(dirname "$f")"
            cp "$f" "$WORK/$f"
        fi
    done <"$BUILD/mutate/files"
    (cd "$WORK" && find . -path "./$MBUILD" -prune -o -type f -print | sed 's|^\./||') |
        sort >"$BUILD/mutate/mirror-files"
    sort "$BUILD/mutate/files" | comm -13 - "$BUILD/mutate/mirror-files" |
        while read -r f; do rm -f "$WORK/$f"; done
fi

# Builds, in the mirror, the programs of the suites named in $1 (and what suites need).
build_suites() {
    t=""
    for s in $1; do t="$t $(suite_path "$s")"; done
    deps=""
    for d in $MUTATE_DEPS; do deps="$deps $MBUILD/${d#"$BUILD"/}"; done
    (cd "$WORK" && nice make -j2 --no-print-directory BUILD="$MBUILD" $t $deps) \
        >"$WORK/$MBUILD/mutate-build.log" 2>&1
}
# Runs one suite in the mirror; returns its status.
run_suite() {
    (cd "$WORK" && BUILD="$MBUILD" TEST_TIMEOUT="$MUTATE_TIMEOUT" \
        sh tests/run-tests.sh "$(suite_path "$1")") >"$WORK/$MBUILD/mutate-run.log" 2>&1
}

# --- 2. the unmutated suites pass -------------------------------------------------------------
echo "mutate: building and running the unmutated suites:$all_suites"
build_suites "$all_suites" ||
    { tail -n 30 "$WORK/$MBUILD/mutate-build.log"; die "the unmutated tree does not build"; }
for s in $all_suites; do
    if ! run_suite "$s"; then
        tail -n 40 "$WORK/$MBUILD/mutate-run.log"
        die "$s fails without any mutation; fix it first (a failing suite catches nothing)"
    fi
done

# --- 3. each mutant ---------------------------------------------------------------------------
total=0; caught=0; bad=""
while IFS="$SEP" read -r name file from to suites; do
    total=$((total + 1))
    start=$(date +%s)
    FROM="$from" TO="$to" perl -0777 -i -pe '$i = index($_, $ENV{FROM});
        die "not found\n" if $i < 0; substr($_, $i, length $ENV{FROM}) = $ENV{TO}' \
        "$WORK/$file" || die "$name: cannot apply to $WORK/$file"
    verdict=""
    if ! build_suites "$suites" </dev/null; then
        verdict="BROKEN    $name: does not build (log $WORK/$MBUILD/mutate-build.log)"
    else
        for s in $suites; do
            if ! run_suite "$s" </dev/null; then
                verdict="caught    $name by $s"
                break
            fi
        done
    fi
    cp "$file" "$WORK/$file" # the original back, with a fresh mtime
    secs=$(( $(date +%s) - start ))
    case "$verdict" in
    caught*) caught=$((caught + 1)); echo "$verdict (${secs}s)" ;;
    BROKEN*) bad="$bad $name"; echo "$verdict" ;;
    *) bad="$bad $name"; echo "SURVIVED  $name: $suites all passed with $file changed (${secs}s)" ;;
    esac
done <"$PARSED"

# Leave the mirror's objects unmutated for the next run (the restored files are rebuilt now).
build_suites "$all_suites" </dev/null || true
echo "mutate: $caught of $total mutants caught${bad:+; not caught:$bad}"
[ -z "$bad" ]
