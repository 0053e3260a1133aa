#!/bin/bash
# bench.sh - `bulkhead bench`, the main job: brings the simulation up in a
# state directory of its own (or uses a running one, --running), creates the
# driver domain and guests of examples/ (their /var/lib/bulkhead paths moved
# into a work directory of this run), runs fio through the driver domain,
# through stock-dom0 placement, through nbdkit's file plugin and straight on
# the image, and iperf3 through the driver domain, through dom0 placement and
# over a veth pair, prints the table of ratios and the TCB reports, writes
# results.json and chart.png to the output directory, and tears it all down,
# on Ctrl-C or a failure too.  bulkhead(1), BENCH, documents the options and
# the JSON schema.
#
# Run by the bulkhead command (cmd_bench.c), which sets BULKHEAD (itself),
# BULKHEAD_STATE_DIR and BULKHEAD_BENCH_EXAMPLES; benchlib.sh lies beside
# this script (the source tree's toolstack/, or $(pkgdatadir) installed).
set -u
ME="bulkhead bench"
B=${BULKHEAD:-}
EX=${BULKHEAD_BENCH_EXAMPLES:-}
if [ -z "$B" ] || [ -z "$EX" ]; then
    echo "$ME: run this as 'bulkhead bench', which says where bulkhead and examples/ are" >&2
    exit 2
fi
# shellcheck source=benchlib.sh
. "$(dirname "$0")/benchlib.sh"

usage() {
    cat <<EOF
usage: bulkhead bench [--seconds N] [--size SIZE] [--quick] [--output DIR]
                      [--only blk|net] [--keep] [--running]
  --seconds N     each fio job and iperf3 run lasts N seconds (default 5)
  --size SIZE     each disk image holds SIZE bytes, fio's K/M/G suffixes (default 512M)
  --quick         a short run (1 s per job, 64M images), for tests
  --output DIR    where results.json, chart.png and the table go
                  (default ./bulkhead-bench-YYYYmmdd-HHMMSS)
  --only blk|net  only the block or only the network benchmark
  --keep          leave the simulation, domains and work directory up at the end
  --running       use the simulation already up in the state directory
                  (--state-dir, \$BULKHEAD_STATE_DIR) instead of one of its own
EOF
}
bad() { echo "$ME: $*; see 'bulkhead bench --help'" >&2; exit 2; }

SECS='' SIZE='' QUICK=0 OUT='' ONLY='' KEEP=0 RUNNING=0
while [ $# -gt 0 ]; do
    case $1 in
    --seconds | --size | --output | --only)
        [ $# -ge 2 ] || bad "$1 needs a value"
        opt=$1 val=$2
        shift 2 ;;
    --seconds=* | --size=* | --output=* | --only=*)
        opt=${1%%=*} val=${1#*=}
        shift ;;
    --quick) QUICK=1; shift; continue ;;
    --keep) KEEP=1; shift; continue ;;
    --running) RUNNING=1; shift; continue ;;
    -h | --help) usage; exit 0 ;;
    *) bad "unknown option '$1'" ;;
    esac
    case $opt in
    --seconds)
        [[ $val =~ ^[1-9][0-9]{0,3}$ ]] || bad "--seconds takes a whole number of seconds from 1 to 9999, not '$val'"
        SECS=$val ;;
    --size)
        [[ $val =~ ^[1-9][0-9]*[KMG]?$ ]] || bad "--size takes a size such as 64M or 1G, not '$val'"
        SIZE=$val ;;
    --output)
        [ -n "$val" ] || bad "--output needs a directory"
        OUT=$val ;;
    --only)
        case $val in blk | net) ONLY=$val ;; *) bad "--only takes blk or net, not '$val'" ;; esac ;;
    esac
done
# --quick sets short defaults; --seconds and --size still win.
if [ "$QUICK" -eq 1 ]; then SECS=${SECS:-1} SIZE=${SIZE:-64M}; fi
SECS=${SECS:-5} SIZE=${SIZE:-512M}
OUT=${OUT:-$PWD/bulkhead-bench-$(date -u +%Y%m%d-%H%M%S)}
DO_BLK=1 DO_NET=1
[ "$ONLY" = net ] && DO_BLK=0
[ "$ONLY" = blk ] && DO_NET=0

[ "$(id -u)" -eq 0 ] || { echo "$ME: needs root (the simulation makes namespaces)" >&2; exit 1; }
need="gnuplot ss"
[ $DO_BLK -eq 1 ] && need="$need fio nbdkit"
[ $DO_NET -eq 1 ] && need="$need iperf3 ethtool"
for p in $need; do
    command -v "$p" >/dev/null ||
        { echo "$ME: needs $p: run scripts/install-deps (or apt-get install the package with it)" >&2; exit 1; }
done
for f in drvdom.cfg guest-drv.cfg; do
    [ -r "$EX/$f" ] || { echo "$ME: $EX/$f is missing: reinstall Bulkhead, or run from its build tree" >&2; exit 1; }
done
mkdir -p "$OUT" 2>/dev/null && [ -w "$OUT" ] ||
    { echo "$ME: cannot write to the output directory $OUT: name another with --output" >&2; exit 1; }
OUT=$(cd "$OUT" && pwd)

T0=$SECONDS
# One line per step: the time since the start, what runs, and for how long.
step() { printf '[%4ds] %s\n' $((SECONDS - T0)) "$*"; }

# The work directory holds the images (on disk, not tmpfs: /var/tmp unless
# $TMPDIR says otherwise) and, unless --running, the state directory.
W=$(mktemp -d "${TMPDIR:-/var/tmp}/bh-bench-XXXXXX") ||
    { echo "$ME: cannot make a work directory in ${TMPDIR:-/var/tmp}" >&2; exit 1; }
if [ $RUNNING -eq 1 ]; then
    STATE=${BULKHEAD_STATE_DIR:-/run/bulkhead}
else
    STATE=$W/s
fi
export BULKHEAD_STATE_DIR=$STATE
NA=bhbench-a-$$ NB=bhbench-b-$$
DOMS=() NBDPID='' TORN=0

teardown() {
    [ $TORN -eq 1 ] && return
    TORN=1
    trap - INT TERM
    if [ -n "$NBDPID" ]; then kill "$NBDPID" 2>/dev/null; wait "$NBDPID" 2>/dev/null; fi
    if [ $KEEP -eq 1 ]; then
        # With --running, the simulation is the user's: only our domains go.
        local undo="$B down"
        [ $RUNNING -eq 1 ] && undo="for d in ${DOMS[*]}; do $B destroy \$d; done"
        step "kept (--keep): state directory $STATE, work directory $W, veth namespaces $NA $NB;" \
            "tear down with: export BULKHEAD_STATE_DIR=$STATE; $undo; ip netns del $NA; ip netns del $NB; rm -rf $W"
        return
    fi
    step "tearing down"
    local i
    if [ $RUNNING -eq 1 ]; then
        for ((i = ${#DOMS[@]} - 1; i >= 0; i--)); do "$B" destroy "${DOMS[i]}" >/dev/null 2>&1; done
    else
        "$B" down >/dev/null 2>&1
    fi
    bl_veth_down "$NA" "$NB"
    rm -rf "$W"
}
trap teardown EXIT
# Ctrl-C or a kill: tear down (the EXIT trap) and say so in the status.
trap 'echo; step "interrupted"; exit 130' INT
trap 'step "terminated"; exit 143' TERM

fail() { echo "$ME: $*" >&2; exit 1; }

step "bulkhead bench: ${SECS} s per job, ${SIZE} images, output in $OUT, work directory $W"
if [ $RUNNING -eq 1 ]; then
    "$B" list >/dev/null 2>&1 || fail "--running: no simulation is up in $STATE: start it with 'bulkhead up', or drop --running"
    for d in drvdom guest-drv bench-peer bench-d0a bench-d0b; do
        "$B" list --json | grep -q "\"name\": \"$d\"" &&
            fail "--running: a domain named $d exists in $STATE: destroy it, or drop --running"
    done
    step "using the simulation up in $STATE"
else
    step "bringing the simulation up in $STATE"
    "$B" up >/dev/null || fail "the simulation did not come up (see the line above)"
fi

# The examples' storage, moved into the work directory: the same configs,
# their paths under /var/lib/bulkhead replaced.  Images are written whole, so
# that reads reach the disk and not a sparse file's holes.
mkdir -p "$W/images" "$W/dom0"
relocate() { sed "s|/var/lib/bulkhead|$W|g" "$1" >"$2"; }
relocate "$EX/drvdom.cfg" "$W/drvdom.cfg"
relocate "$EX/guest-drv.cfg" "$W/guest-drv.cfg"
IMG=$W/images/guest-drv.img IMG0=$W/dom0/guest-drv-b.img
if [ $DO_BLK -eq 1 ]; then
    step "writing the two $SIZE images (fio, sequential 1 MiB writes)"
    for i in "$IMG" "$IMG0"; do
        fio --name=fill --filename="$i" --size="$SIZE" --rw=write --bs=1M --ioengine=psync \
            >/dev/null 2>&1 || fail "cannot write the image $i (is ${TMPDIR:-/var/tmp} full?)"
    done
else
    truncate -s "$SIZE" "$IMG" "$IMG0"
fi

create() { # file name
    local t=$SECONDS
    "$B" create "$1" >"$W/create.out" 2>&1 || { cat "$W/create.out" >&2; fail "cannot create $2 from $1"; }
    DOMS+=("$2")
    step "created $2 from $3 ($((SECONDS - t)) s)"
}
create "$W/drvdom.cfg" drvdom examples/drvdom.cfg
create "$W/guest-drv.cfg" guest-drv examples/guest-drv.cfg

# The libvirt XML guest of examples/, where this build's create reads domain
# XML (create -n accepts it): it joins the run as guest-drv's network peer
# through the driver domain when its first vif is served there and answers a
# ping.  Otherwise (no such create, a failed create, another setup of its
# vif) bench-peer, an xl config written here, plays that part: the run does
# not depend on it.
PEER='' XMLGUEST=''
if [ $DO_NET -eq 1 ] && [ -r "$EX/guest-xml.xml" ]; then
    relocate "$EX/guest-xml.xml" "$W/guest-xml.xml"
    if "$B" create -n "$W/guest-xml.xml" >/dev/null 2>"$W/dry.out"; then
        xname=$(sed -n 's|.*<name>\(.*\)</name>.*|\1|p' "$W/guest-xml.xml" | head -1)
        # Its disks' images, where the XML names files, made like the others.
        for t in $(sed -n "s|.*<source file=['\"]\\([^'\"]*\\)['\"].*|\\1|p" "$W/guest-xml.xml"); do
            [ -e "$t" ] || { mkdir -p "$(dirname "$t")" && truncate -s "$SIZE" "$t"; }
        done
        t=$SECONDS
        if [ -n "$xname" ] && "$B" create "$W/guest-xml.xml" >"$W/create.out" 2>&1; then
            DOMS+=("$xname")
            XMLGUEST=$xname
            step "created $xname from examples/guest-xml.xml (libvirt XML, $((SECONDS - t)) s)"
            "$B" network-list "$xname" --json | grep -q '"devid": 0, "backend": "drvdom"' && PEER=$xname
        else
            step "examples/guest-xml.xml: create failed ($(head -1 "$W/create.out")); bench-peer instead"
        fi
    else
        step "examples/guest-xml.xml: create -n refused it ($(head -1 "$W/dry.out")); bench-peer instead"
    fi
fi
vifguest() { # name mac-byte bridge [backend]
    printf 'name = "%s"\nvcpus = 2\nmemory = 256\nvif = [ "mac=00:16:3e:5b:00:%s, bridge=%s%s" ]\n' \
        "$1" "$2" "$3" "${4:+, backend=$4}"
}
if [ $DO_NET -eq 1 ]; then
    # Stock-dom0 placement: two guests whose vifs dom0 serves, on a bridge
    # in dom0's network namespace.
    vifguest bench-d0a 03 bhbench0 >"$W/bench-d0a.cfg"
    vifguest bench-d0b 04 bhbench0 >"$W/bench-d0b.cfg"
    create "$W/bench-d0a.cfg" bench-d0a "an xl config (vif served by dom0)"
    create "$W/bench-d0b.cfg" bench-d0b "an xl config (vif served by dom0)"
fi

ROWS=()   # one JSON object per row
FAILED=0
TABLE=$W/table.txt
: >"$TABLE"
# The table is gathered in table.txt, shown once it is whole.
say() { echo "$*" >>"$TABLE"; }

# row SUITE JOB LABEL METRIC UNIT "PATH=VALUE..." "OURS/BASE..."
record() {
    local suite=$1 job=$2 label=$3 metric=$4 unit=$5 vals=$6 pairs=$7 kv p v r vj rj better=higher
    [ "$metric" = lat ] && better=lower
    declare -A val
    vj=
    for kv in $vals; do
        p=${kv%%=*} v=${kv#*=}
        val[$p]=$v
        vj+="${vj:+, }\"$p\": $v"
        awk -v v="$v" 'BEGIN {exit !(v > 0)}' || { FAILED=$((FAILED + 1)); echo "$ME: $suite $job on $p measured nothing" >&2; }
    done
    rj=
    local line
    line=$(printf '%-28s' "$label ($unit)")
    for kv in $vals; do line+=$(printf ' %9s' "${kv#*=}"); done
    for p in $pairs; do
        r=$(bl_ratio "$metric" "${val[${p%/*}]}" "${val[${p#*/}]}")
        rj+="${rj:+, }\"$p\": $r"
        line+=$(printf ' %11s' "$r")
    done
    say "$line"
    ROWS+=("{\"suite\": \"$suite\", \"job\": \"$job\", \"label\": \"$label\", \"unit\": \"$unit\", \"better\": \"$better\", \"values\": {$vj}, \"ratios\": {$rj}}")
}
header() { # label paths pairs
    local line p
    line=$(printf '%-28s' "$1")
    for p in $2; do line+=$(printf ' %9s' "$p"); done
    for p in $3; do line+=$(printf ' %11s' "$p"); done
    say ""
    say "$line"
}

if [ $DO_BLK -eq 1 ]; then
    URI_DRV=$(bl_vbd_uri guest-drv xvda) URI_D0=$(bl_vbd_uri guest-drv xvdb)
    [ -n "$URI_DRV" ] && [ -n "$URI_D0" ] || fail "guest-drv's disks published no NBD URI within 30 s"
    nbdkit -f -U "$W/nbdkit.sock" file "$IMG" 2>"$W/nbdkit.err" &
    NBDPID=$!
    for i in $(seq 100); do [ -S "$W/nbdkit.sock" ] && break; sleep 0.1; done
    [ -S "$W/nbdkit.sock" ] || fail "nbdkit's file plugin did not start: $(head -1 "$W/nbdkit.err")"
    BLK_PATHS="direct nbdkit drv dom0"
    BLK_PAIRS="drv/direct dom0/direct drv/nbdkit drv/dom0"
    blkjob() { # path rw bs qd -> "iops lat bw"
        case $1 in
        direct) bl_fio "" "$2" "$3" "$4" "$SECS" "$SIZE" --ioengine=io_uring --direct=1 --filename="$IMG" ;;
        nbdkit) bl_fio "" "$2" "$3" "$4" "$SECS" "$SIZE" --ioengine=nbd --uri="nbd+unix:///?socket=$W/nbdkit.sock" ;;
        drv) bl_fio "$B exec guest-drv --" "$2" "$3" "$4" "$SECS" "$SIZE" --ioengine=nbd --uri="$URI_DRV" ;;
        dom0) bl_fio "$B exec guest-drv --" "$2" "$3" "$4" "$SECS" "$SIZE" --ioengine=nbd --uri="$URI_D0" ;;
        esac
    }
    BLKROWS=()
    blkrow() { # job label metric unit rw bs qd
        local vals='' p v col
        case $3 in iops) col=1 ;; lat) col=2 ;; *) col=3 ;; esac
        for p in $BLK_PATHS; do
            step "blk $1 on $p: fio $5 bs=$6 depth=$7 for $SECS s"
            v=$(blkjob "$p" "$5" "$6" "$7" | cut -d' ' -f$col)
            vals+=" $p=$v"
        done
        BLKROWS+=("$1|$2|$3|$4|$vals")
    }
    blkrow 4k-randread-qd1 "4K randread QD1 latency" lat us randread 4k 1
    blkrow 4k-randread-qd32 "4K randread QD32" iops IOPS randread 4k 32
    blkrow 1m-read "1M sequential read" bw MB/s read 1M 8
    blkrow 1m-write "1M sequential write" bw MB/s write 1M 8
fi

if [ $DO_NET -eq 1 ]; then
    step "making the veth baseline (namespaces $NA and $NB)"
    bl_veth_up "$NA" "$NB" || fail "cannot make the veth pair between $NA and $NB"
    addr() { "$B" exec "$1" -- ip addr add "$2"/24 dev eth0 || fail "cannot give $1's eth0 an address"; }
    addr guest-drv 10.78.0.1
    if [ -n "$PEER" ]; then
        addr "$PEER" 10.78.0.2
        if ! "$B" exec guest-drv -- ping -c 1 -W 5 10.78.0.2 >/dev/null 2>&1; then
            step "$PEER (examples/guest-xml.xml) does not answer through the driver domain; bench-peer instead"
            "$B" exec "$PEER" -- ip addr flush dev eth0
            PEER=
        fi
    fi
    if [ -z "$PEER" ]; then
        vifguest bench-peer 02 xenbr0 drvdom >"$W/bench-peer.cfg"
        create "$W/bench-peer.cfg" bench-peer "an xl config (guest-drv's network peer)"
        PEER=bench-peer
        addr bench-peer 10.78.0.2
    fi
    addr bench-d0a 10.78.1.1
    addr bench-d0b 10.78.1.2
    NET_PATHS="veth drv dom0"
    NET_PAIRS="drv/veth dom0/veth drv/dom0"
    netrun() { # path [iperf3 args]
        local p=$1
        shift
        case $p in
        veth) bl_iperf "ip netns exec $NB" "ip netns exec $NA" 10.77.0.2 "$SECS" "$@" ;;
        drv) bl_iperf "$B exec $PEER --" "$B exec guest-drv --" 10.78.0.2 "$SECS" "$@" ;;
        dom0) bl_iperf "$B exec bench-d0b --" "$B exec bench-d0a --" 10.78.1.2 "$SECS" "$@" ;;
        esac
    }
    NETROWS=()
    netrow() { # job label metric unit [iperf3 args]
        local vals='' p v
        for p in $NET_PATHS; do
            step "net $1 on $p: iperf3 ${*:5} for $SECS s"
            v=$(netrun "$p" "${@:5}")
            vals+=" $p=$v"
        done
        NETROWS+=("$1|$2|$3|$4|$vals")
    }
    netrow tcp "TCP with offloads" bw Mbit/s
    bl_offloads off "$NA" "$NB" "$B" guest-drv "$PEER" bench-d0a bench-d0b
    netrow tcp-nogso "TCP without GSO/TSO" bw Mbit/s
    bl_offloads on "$NA" "$NB" "$B" guest-drv "$PEER" bench-d0a bench-d0b
    netrow udp64 "UDP 64-byte packets" pps pkt/s -u -b 0 -l 64
fi

# The table: values, then ratios against each baseline (higher is better;
# latency as baseline/ours).
say "Bulkhead bench: ${SECS} s per job, ${SIZE} images ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs)"
if [ $DO_BLK -eq 1 ]; then
    header "block (fio)" "$BLK_PATHS" "$BLK_PAIRS"
    for r in "${BLKROWS[@]}"; do
        IFS='|' read -r job label metric unit vals <<<"$r"
        record blk "$job" "$label" "$metric" "$unit" "$vals" "$BLK_PAIRS"
    done
fi
if [ $DO_NET -eq 1 ]; then
    header "network (iperf3)" "$NET_PATHS" "$NET_PAIRS"
    for r in "${NETROWS[@]}"; do
        IFS='|' read -r job label metric unit vals <<<"$r"
        record net "$job" "$label" "$metric" "$unit" "$vals" "$NET_PAIRS"
    done
fi
say "(drv: the driver domain serves the device; dom0: stock-dom0 placement; direct: io_uring"
say " with O_DIRECT on the image; nbdkit: its file plugin on the same image; veth: a plain veth"
say " pair.  Ratios: higher is better, latency as baseline/ours; measured in this run.)"
echo
cat "$TABLE"

# The TCB reports, from `bulkhead tcb` where this build has it.
echo
TCB_JSON=null TCB_NOTE=
if "$B" --help 2>/dev/null | grep -q '^  tcb'; then
    step "bulkhead tcb"
    if "$B" tcb >"$W/tcb.txt" 2>"$W/tcb.err" && "$B" tcb --json >"$W/tcb.json" 2>>"$W/tcb.err"; then
        cat "$W/tcb.txt"
        cp "$W/tcb.txt" "$OUT/tcb.txt"
        if ! command -v python3 >/dev/null ||
            python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$W/tcb.json" 2>/dev/null; then
            TCB_JSON=$(cat "$W/tcb.json")
            cp "$W/tcb.json" "$OUT/tcb.json"
        else
            TCB_NOTE="bulkhead tcb --json printed no valid JSON"
        fi
    else
        TCB_NOTE="bulkhead tcb failed: $(head -1 "$W/tcb.err" 2>/dev/null)"
    fi
else
    TCB_NOTE="not available in this build"
fi
[ -n "$TCB_NOTE" ] && echo "tcb: $TCB_NOTE"
cp "$TABLE" "$OUT/table.txt"

# results.json (schema bulkhead-bench/1, bulkhead(1)).
jstr() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
{
    printf '{\n  "schema": "bulkhead-bench/1",\n'
    printf '  "date": "%s",\n  "host": "%s",\n  "cpus": %d,\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(jstr "$(uname -srm)")" "$(nproc)"
    printf '  "seconds": %d,\n  "size": "%s",\n  "quick": %s,\n' "$SECS" "$SIZE" \
        "$([ $QUICK -eq 1 ] && echo true || echo false)"
    printf '  "state_dir": "%s",\n  "work_dir": "%s",\n  "kept": %s,\n' "$(jstr "$STATE")" "$(jstr "$W")" \
        "$([ $KEEP -eq 1 ] && echo true || echo false)"
    printf '  "veth_netns": ["%s", "%s"],\n' "$NA" "$NB"
    printf '  "net_peer": %s,\n  "xml_guest": %s,\n' "$([ -n "$PEER" ] && echo "\"$(jstr "$PEER")\"" || echo null)" \
        "$([ -n "$XMLGUEST" ] && echo "\"$(jstr "$XMLGUEST")\"" || echo null)"
    printf '  "suites": [%s],\n' "$( ([ $DO_BLK -eq 1 ] && printf '"blk"'; [ $DO_BLK -eq 1 ] && [ $DO_NET -eq 1 ] && printf ', '; [ $DO_NET -eq 1 ] && printf '"net"') )"
    printf '  "rows": [\n'
    for i in "${!ROWS[@]}"; do printf '    %s%s\n' "${ROWS[i]}" "$([ "$i" -lt $((${#ROWS[@]} - 1)) ] && echo ,)"; done
    printf '  ],\n  "tcb": %s' "$TCB_JSON"
    [ -n "$TCB_NOTE" ] && printf ',\n  "tcb_note": "%s"' "$(jstr "$TCB_NOTE")"
    printf '\n}\n'
} >"$OUT/results.json"

# chart.png: each row's ratio for the driver domain and for dom0 placement
# against the row's baseline (direct I/O, or the veth pair).
{
    for r in "${ROWS[@]}"; do
        s=$(echo "$r" | sed -n 's/.*"suite": "\([a-z]*\)".*/\1/p')
        l=$(echo "$r" | sed -n 's/.*"label": "\([^"]*\)".*/\1/p')
        base=direct; [ "$s" = net ] && base=veth
        d=$(echo "$r" | sed -n "s|.*\"drv/$base\": \\([0-9.]*\\).*|\\1|p")
        z=$(echo "$r" | sed -n "s|.*\"dom0/$base\": \\([0-9.]*\\).*|\\1|p")
        printf '"%s: %s" %s %s\n' "$s" "$l" "${d:-0}" "${z:-0}"
    done
} >"$W/chart.dat"
term="pngcairo size 1100,600 font 'sans,10'"
gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 || term="png size 1100,600"
gnuplot >"$W/gnuplot.err" 2>&1 <<EOF || fail "gnuplot could not draw the chart: $(head -1 "$W/gnuplot.err")"
set terminal $term
set output "$OUT/chart.png"
set title "Bulkhead bench: ratio to the baseline (direct I/O for blk, veth for net), higher is better"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:*]
set ylabel "ratio"
set xtics rotate by -25 scale 0
set key top right
set grid ytics
plot "$W/chart.dat" using 2:xtic(1) title "driver domain", "" using 3 title "stock dom0 placement", \
     1 with lines dashtype 2 lc rgb "black" title "baseline"
EOF
step "wrote $OUT/results.json, $OUT/chart.png and $OUT/table.txt"
[ $FAILED -eq 0 ] || fail "$FAILED measurement(s) gave nothing (see the lines above)"
step "done in $((SECONDS - T0)) s"
