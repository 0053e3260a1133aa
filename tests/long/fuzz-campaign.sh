#!/bin/bash
# fuzz-campaign.sh - fuzzes every target in tests/fuzz with libFuzzer (under
# ASan and UBSan) for FUZZ_SECONDS each (default 20: what fits make
# check-long's budget; run it by hand with more, e.g. FUZZ_SECONDS=120).
#
# It configures and builds its own clang build (FUZZ_BUILD, default
# <builddir>/build-fuzz-campaign; an existing one is reused and brought up
# to date), and starts each target from its seed corpus tests/fuzz/corpus/NAME
# and from what earlier campaigns in this build folder learnt
# (<builddir>/fuzz-corpus/NAME, where new inputs go: the source tree is
# only read).  FUZZ_KEEP=1 then merges into the seed corpus the inputs that
# reach code the seeds do not (libFuzzer's -merge=1, which keeps the
# smallest input per feature), for a developer to review and commit; make
# check replays whatever the seed corpus holds.  A finding (a crash, a
# sanitizer report, a leak, a timeout) fails its target; the input is kept
# as fuzz-findings/NAME-* in the build folder, and the TAP line says how to
# replay it.  FUZZ_TARGETS="a b" limits the campaign to those targets.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
top_srcdir=$(cd "${srcdir:-.}" && pwd)
top_builddir=${abs_top_builddir:-$PWD}
command -v clang >/dev/null || skip_all "needs clang (apt-get install clang libclang-rt-14-dev)"
secs=${FUZZ_SECONDS:-20}
keep=${FUZZ_KEEP:-0}
fb=${FUZZ_BUILD:-$top_builddir/build-fuzz-campaign}
findings=$top_builddir/fuzz-findings
# Makefile.am's FUZZ_TARGETS lines, continuation lines joined first.
targets=${FUZZ_TARGETS:-$(sed -e ':a' -e '/\\$/{N;s/\\\n//;ba' -e '}' "$top_srcdir/Makefile.am" |
    sed -n 's/^FUZZ_TARGETS += //p' | tr '\n\t' '  ')}
# shellcheck disable=SC2086
set -- $targets
plan $(($# + 1))

build() {
    mkdir -p "$fb" && cd "$fb" || return 1
    if [ ! -f Makefile ]; then
        "$top_srcdir/configure" CC=clang --enable-fuzzing --enable-sanitizers >configure.out 2>&1 ||
            { tail -20 configure.out; return 1; }
    fi
    local progs=""
    for t in "$@"; do progs="$progs tests/fuzz/fuzz_$t"; done
    # shellcheck disable=SC2086
    nice -n 5 make -j"$(nproc)" $progs >make.out 2>&1 || { tail -40 make.out; return 1; }
}
if ! ok "the clang fuzz build in $fb" build "$@"; then
    for t in "$@"; do
        tap_n=$((tap_n + 1))
        echo "not ok $tap_n - fuzz_$t: not built"
    done
    exit 1
fi

mkdir -p "$findings"
W=$(mktemp -d /tmp/bh-fuzz-XXXXXX)
trap 'rm -rf "$W"' EXIT
export LSAN_OPTIONS=suppressions=$top_srcdir/tests/fuzz/lsan.supp
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# fuzz NAME: the campaign on one target; its output in $W/NAME.out.
fuzz() {
    local t=$1 bin=$fb/tests/fuzz/fuzz_$1 seeds=$top_srcdir/tests/fuzz/corpus/$1
    local new=$top_builddir/fuzz-corpus/$1 before after
    mkdir -p "$new"
    # New inputs go to $new; the seeds are read, never written, by the run.
    # -timeout: an input that takes 10 s is a hang, a finding.
    if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$findings/$t-" "$new" "$seeds" >"$W/$t.out" 2>&1; then
        tail -40 "$W/$t.out"
        echo "replay: $bin $(ls -t "$findings/$t-"* 2>/dev/null | head -1)"
        return 1
    fi
    grep -E 'stat::(number_of_executed_units|new_units_added)' "$W/$t.out"
    [ "$keep" = 1 ] || return 0
    before=$(ls "$seeds" | wc -l)
    "$bin" -merge=1 -timeout=10 "$seeds" "$new" >"$W/$t.merge" 2>&1 ||
        { tail -20 "$W/$t.merge"; return 1; }
    after=$(ls "$seeds" | wc -l)
    echo "corpus $seeds: $before -> $after inputs"
}
for t in "$@"; do
    ok "fuzz_$t for ${secs}s: no finding" fuzz "$t"
done
exit $tap_failed
