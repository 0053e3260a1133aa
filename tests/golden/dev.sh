#!/bin/bash
# dev.sh - golden files for `bulkhead create -n`: each tests/golden/dev/NAME.cfg
# (an xl config) or NAME.xml (a libvirt domain) is planned and its output compared with NAME.json (the XenStore nodes) or,
# for a config that must be refused, its one-line message with NAME.err.
# A line "# args: ..." in the .cfg (for an .xml, the file NAME.args) adds options (@DIR@ is this folder);
# every run has --stable-macs, so that default macs do not change.
# Needs no running simulation (an empty state directory keeps it so).
# To regenerate after a deliberate change: BULKHEAD_GOLDEN_UPDATE=1.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
B="${abs_top_builddir:-$PWD}/toolstack/bulkhead"
dir="${srcdir:-.}/tests/golden/dev"
export BULKHEAD_STATE_DIR=$(mktemp -d /tmp/bh-golden-XXXXXX)
trap 'rm -rf "$BULKHEAD_STATE_DIR"' EXIT

cfgs=$(ls "$dir"/*.cfg "$dir"/*.xml | grep -v '/drv[a-z0-9]*\.cfg$')
plan $(echo "$cfgs" | wc -l)
for cfg in $cfgs; do
    name=$(basename "$cfg"); name=${name%.*}
    args=$(sed -n 's/^# args: //p' "$cfg" | sed "s|@DIR@|$dir|g")
    [ -f "$dir/$name.args" ] && args=$(sed "s|@DIR@|$dir|g" "$dir/$name.args")
    # shellcheck disable=SC2086
    out=$("$B" create -n --stable-macs $args "$cfg" 2>"$BULKHEAD_STATE_DIR/err")
    rc=$?
    err=$(sed "s|$dir/||g" "$BULKHEAD_STATE_DIR/err")
    if [ -n "${BULKHEAD_GOLDEN_UPDATE:-}" ]; then
        if [ -f "$dir/$name.err" ]; then echo "$err" >"$dir/$name.err"; else echo "$out" >"$dir/$name.json"; fi
    fi
    if [ -f "$dir/$name.err" ]; then
        is "$name is refused in one line" "$rc:$err" "1:$(cat "$dir/$name.err")"
    else
        is "$name plans as $name.json" "$rc:$out" "0:$(cat "$dir/$name.json")"
    fi
done
[ $tap_failed -eq 0 ]
