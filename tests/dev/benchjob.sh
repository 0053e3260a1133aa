#!/bin/bash
# benchjob.sh - the main job end to end: `bulkhead bench --quick` brings the
# simulation up, runs every fio and iperf3 row, and writes results.json (every
# expected row, its values and ratios numbers above 0: no timing is judged)
# and chart.png; afterwards no domain, daemon, mount, network namespace or
# state directory is left.  A bad option is refused in one line, exit 2.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
for p in fio nbdkit iperf3 ethtool gnuplot python3; do
    command -v $p >/dev/null || skip_all "needs $p (scripts/install-deps installs it)"
done
B="${abs_top_builddir:-$PWD}/toolstack/bulkhead"
T=$(mktemp -d /var/tmp/bh-bj-XXXXXX)
# The bench makes its work and state directories under $TMPDIR: here, so
# that what it leaves behind is plain to see.
export TMPDIR=$T/tmp
mkdir -p "$TMPDIR"
trap 'rm -rf "$T"' EXIT
plan 12

out=$("$B" bench --bogus 2>&1)
is "an unknown option: one line" "$(echo "$out" | wc -l) $(echo "$out" | grep -c "unknown option '--bogus'")" "1 1"
"$B" bench --seconds 0 >/dev/null 2>&1
is "--seconds 0: exit 2" "$?" "2"
out=$("$B" bench --only disk 2>&1)
is "--only disk: one line naming blk and net, exit 2" "$(echo "$out" | wc -l) $(echo "$out" | grep -c 'blk or net')" "1 1"

"$B" bench --quick --output "$T/out" >"$T/log" 2>&1
rc=$?
is "bulkhead bench --quick runs end to end" "$rc" "0"
[ "$rc" -eq 0 ] || sed 's/^/# /' "$T/log"

ok "results.json: every row, values and ratios numbers above 0" python3 - "$T/out/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
want = {
    ("blk", "4k-randread-qd1"), ("blk", "4k-randread-qd32"), ("blk", "1m-read"), ("blk", "1m-write"),
    ("net", "tcp"), ("net", "tcp-nogso"), ("net", "udp64"),
}
paths = {"blk": {"direct", "nbdkit", "drv", "dom0"}, "net": {"veth", "drv", "dom0"}}
ratios = {"blk": {"drv/direct", "dom0/direct", "drv/nbdkit", "drv/dom0"},
          "net": {"drv/veth", "dom0/veth", "drv/dom0"}}
bad = []
assert r["schema"] == "bulkhead-bench/1", r["schema"]
assert r["suites"] == ["blk", "net"] and r["quick"] is True and r["seconds"] == 1, r
got = {(x["suite"], x["job"]) for x in r["rows"]}
if got != want:
    bad.append("rows %s, want %s" % (sorted(got), sorted(want)))
for x in r["rows"]:
    s = x["suite"]
    if set(x["values"]) != paths[s] or set(x["ratios"]) != ratios[s]:
        bad.append("%s: keys %s %s" % (x["job"], sorted(x["values"]), sorted(x["ratios"])))
    for k, v in list(x["values"].items()) + list(x["ratios"].items()):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            bad.append("%s %s = %r" % (x["job"], k, v))
    if x["better"] not in ("higher", "lower") or not x["unit"] or not x["label"]:
        bad.append("%s: better/unit/label" % x["job"])
if not (r["tcb"] is not None or r.get("tcb_note")):
    bad.append("neither tcb nor tcb_note")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
is "chart.png: a PNG, not empty" \
    "$(head -c 8 "$T/out/chart.png" | od -An -tx1 | tr -d ' \n') $([ -s "$T/out/chart.png" ] && echo nonempty)" \
    "89504e470d0a1a0a nonempty"
ok "table.txt: the table of ratios" grep -q 'drv/direct' "$T/out/table.txt"
ok "progress: a line per step, what runs and for how long" \
    grep -q '^\[ *[0-9]*s\] blk 4k-randread-qd32 on drv: fio randread bs=4k depth=32 for 1 s$' "$T/log"
if "$B" --help | grep -q '^  tcb'; then
    ok "the TCB reports are in results.json" python3 -c \
        'import json, sys; sys.exit(json.load(open(sys.argv[1]))["tcb"] is None)' "$T/out/results.json"
else
    ok "no tcb command: said so" grep -q '^tcb: not available in this build$' "$T/log"
fi

# What the runs used, as results.json names it: nothing of it may be left.
state=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["state_dir"])' "$T/out/results.json")
# The domains' uids: bulkhead's block for that state directory (cmd_up.c's uid_base).
base=$(python3 -c '
import sys
h = 5381
for c in sys.argv[1].encode():
    h = (h * 33 + c) & 0xffffffff
print(1000000000 + (h % 32768) * 65536)' "$state")
is "no work or state directory left" "$(ls -A "$TMPDIR")" ""
is "no mount, daemon or domain process left" \
    "$(grep -c "$T" /proc/self/mountinfo) $(pgrep -f -- "$T" | wc -l) $(ps -eo uid= | awk -v b="$base" '$1 >= b && $1 < b + 65536' | wc -l)" \
    "0 0 0"
# The run's own namespaces, by name: other runs on the machine may have theirs.
netns=$(python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["veth_netns"]))' "$T/out/results.json")
is "no veth namespace left ($netns)" "$(for n in $netns; do ip netns list | grep -c "^$n\b"; done | tr '\n' ' ')" "0 0 "
exit $tap_failed
