#!/bin/bash
# examples.sh - golden `bulkhead create -n` output for every file in
# examples/ (xl configs and libvirt XML): NAME.cfg or NAME.xml plans as
# tests/golden/examples/NAME.json, with drvdom.cfg's driver domain as id 1
# and the guests as id 2.  Needs no running simulation.
# To regenerate after a deliberate change: BULKHEAD_GOLDEN_UPDATE=1.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
B="${abs_top_builddir:-$PWD}/toolstack/bulkhead"
ex="${srcdir:-.}/examples"
dir="${srcdir:-.}/tests/golden/examples"
export BULKHEAD_STATE_DIR=$(mktemp -d /tmp/bh-golden-ex-XXXXXX)
trap 'rm -rf "$BULKHEAD_STATE_DIR"' EXIT

files=$(ls "$ex"/*.cfg "$ex"/*.xml)
plan $(echo "$files" | wc -l)
for f in $files; do
    name=$(basename "$f"); name=${name%.*}
    out=$("$B" create -n --stable-macs --domid 2 --backend drvdom=1 \
        --backend-config "$ex/drvdom.cfg" "$f" 2>&1)
    rc=$?
    [ -n "${BULKHEAD_GOLDEN_UPDATE:-}" ] && echo "$out" >"$dir/$name.json"
    is "examples/$(basename "$f") plans as $name.json" "$rc:$out" "0:$(cat "$dir/$name.json" 2>/dev/null)"
done
[ $tap_failed -eq 0 ]
