#!/bin/bash
# conformance.sh - libvirt's own xl/XML pairs (tests/conformance/, from
# libvirt's tests/xlconfigdata): for each pair, `bulkhead create -n` of the
# .cfg and of the .xml must give the same device writes, or, for a pair
# the simulation cannot run (HVM, PVH), the same one-line refusal, which
# is also kept as tests/conformance/NAME.refusal (the file's name written
# FILE).  A pair that plans must plan at least what libvirt's test says it
# describes: its JSON is kept as NAME.json too, so that both halves cannot
# drift together.  Needs no running simulation.
# To regenerate after a deliberate change: BULKHEAD_GOLDEN_UPDATE=1.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
B="${abs_top_builddir:-$PWD}/toolstack/bulkhead"
dir="${srcdir:-.}/tests/conformance"
export BULKHEAD_STATE_DIR=$(mktemp -d /tmp/bh-conform-XXXXXX)
trap 'rm -rf "$BULKHEAD_STATE_DIR"' EXIT

# One half: "RC:stdout" with the file's name in messages written FILE.
run() {
    local out rc
    out=$("$B" create -n --stable-macs "$dir/$1" 2>&1)
    rc=$?
    printf '%s:%s' "$rc" "$(printf '%s' "$out" | sed "s|$dir/$1|FILE|g")"
}

pairs=$(ls "$dir"/*.cfg | sed 's|.*/||; s|\.cfg$||')
plan $(($(echo "$pairs" | wc -l) * 2))
for name in $pairs; do
    cfg=$(run "$name.cfg")
    xml=$(run "$name.xml")
    is "$name: the .cfg and the .xml give the same result" "$xml" "$cfg"
    if [ -n "${BULKHEAD_GOLDEN_UPDATE:-}" ]; then
        rm -f "$dir/$name.refusal" "$dir/$name.json"
        case $cfg in
        0:*) echo "${cfg#0:}" >"$dir/$name.json" ;;
        *) echo "${cfg#*:}" >"$dir/$name.refusal" ;;
        esac
    fi
    if [ -f "$dir/$name.refusal" ]; then
        is "$name is refused in one line, as $name.refusal" "$cfg" "1:$(cat "$dir/$name.refusal")"
    else
        is "$name plans as $name.json" "$cfg" "0:$(cat "$dir/$name.json" 2>/dev/null)"
    fi
done
[ $tap_failed -eq 0 ]
