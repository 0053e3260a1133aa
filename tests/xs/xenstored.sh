#!/bin/bash
# xenstored.sh - bulkhead-xenstored as an administrator meets it: start-up
# and its refusals, the real xenstore-utils from dom0 with their output
# asserted, xenstore-control, and Xen's own test-xenstore when installed.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (dom0 is uid 0)"
top="${abs_top_builddir:-$PWD}"
HV="$top/hv/bulkhead-hv"
XSD="$top/hv/bulkhead-xenstored"
S=$(mktemp -d /tmp/bh-xs-XXXXXX)
export XENSTORED_PATH="$S/xenstored.sock"
hvpid=
xspid=
trap '[ -n "$xspid" ] && kill "$xspid" 2>/dev/null; [ -n "$hvpid" ] && kill "$hvpid" 2>/dev/null; wait; rm -rf "$S"' EXIT
# Xen's tools that Debian keeps out of PATH (xen-utils-4.17), wherever they are.
xtool() {
    for d in "${XEN_TOOLS_DIR:-}" /usr/lib/xen-4.17/bin /opt/xen-utils-4.17/usr/lib/xen-4.17/bin; do
        [ -n "$d" ] && [ -x "$d/$1" ] && { echo "$d/$1"; return 0; }
    done
    return 1
}
# Starts the daemon (pid in xspid); its word on the ready fd in $S/ready.
start_xsd() {
    rm -f "$S/ready"
    "$XSD" --state-dir "$S" --ready-fd 3 "$@" 3>"$S/ready" >/dev/null 2>"$S/xsd.err" &
    xspid=$!
    for i in $(seq 100); do [ -s "$S/ready" ] && break; sleep 0.05; done
}
plan 26

start_xsd
is "without bulkhead-hv it refuses to start, naming the fix" \
   "$(grep -c "cannot reach bulkhead-hv at $S/hv.sock: .*start it first" "$S/ready")" "1"
wait "$xspid"; is "... and exits 1" "$?" "1"
xspid=

"$HV" --state-dir "$S" </dev/null >/dev/null 2>&1 &
hvpid=$!
for i in $(seq 100); do [ -S "$S/hv.sock" ] && break; sleep 0.05; done
start_xsd
is "with bulkhead-hv it serves" "$(cat "$S/ready")" "ok"
first=$xspid
start_xsd
is "a second one on the same directory is refused in one line" \
   "$(grep -c "^a bulkhead-xenstored (pid $first) already serves $S: run 'bulkhead down' first$" "$S/ready")" "1"
wait "$xspid"
xspid=$first
out=$("$XSD" --state-dir "$S" --quota bogus=1 2>&1)
is "an unknown quota is refused, naming the known ones" "$(echo "$out" | grep -c 'give a known name (nodes, watches')" "1"

ok "xenstore-write" xenstore-write /vm/a/name guest /vm/a/mem 512
is "xenstore-read" "$(xenstore-read /vm/a/name /vm/a/mem | tr '\n' ' ')" "guest 512 "
is "xenstore-ls" "$(xenstore-ls /vm)" 'a = ""
 name = "guest"
 mem = "512"'
is "xenstore-list" "$(xenstore-list /vm/a | tr '\n' ' ')" "name mem "
ok "xenstore-exists, there" xenstore-exists /vm/a/mem
fails "xenstore-exists, not there" xenstore-exists /vm/a/nothing
ok "xenstore-chmod" xenstore-chmod /vm/a/mem n3 r4 b5
is "xenstore-ls -p shows the permissions" "$(xenstore-ls -p /vm/a | grep mem | sed 's/.*(//')" "n3,r4,b5)"
fails "a malformed permission is refused" xenstore-chmod /vm/a/mem q3
( sleep 0.5; xenstore-write /vm/a/state 1; xenstore-rm /vm/a ) &
is "xenstore-watch: once at once, then each change, then each removed node" \
   "$(timeout 5 xenstore-watch -n 6 /vm/a | tr '\n' ' ')" \
   "/vm/a /vm/a/state /vm/a/name /vm/a/mem /vm/a/state /vm/a "
wait $!
fails "xenstore-rm took the subtree" xenstore-read /vm/a/name

if ctl=$(xtool xenstore-control); then
    is "xenstore-control quota" "$("$ctl" quota | grep -c 'nodes            :     1000 Nodes per domain')" "1"
    ok "xenstore-control quota set" "$ctl" quota set watches 64
    is "... and it shows" "$("$ctl" quota | grep -c 'watches          :       64')" "1"
    ok "xenstore-control quota-soft set" "$ctl" quota-soft set memory 1048576
    is "... and it shows" "$("$ctl" quota-soft | grep -c 'memory           :  1048576 Total Xenstore memory per domain (warning level)')" "1"
    ok "xenstore-control log on" "$ctl" log on
    ok "xenstore-control print" "$ctl" print hello-from-the-test
else
    for i in 1 2 3 4 5 6 7; do echo "ok $((tap_n += 1)) # SKIP xenstore-control not installed (xen-utils-4.17)"; done
fi
if t=$(xtool test-xenstore); then
    ok "Xen's own test-xenstore passes" "$t" -i 3
else
    echo "ok $((tap_n += 1)) # SKIP test-xenstore not installed (xen-utils-4.17)"
fi
kill "$xspid"; wait "$xspid"
is "SIGTERM stops it cleanly" "$?" "0"
xspid=
is "it logged one line per event" "$(grep -c 'started: state\|connection 1 from domain 0\|signal 15: stopping' "$S/xenstored.log")" "3"
exit $tap_failed
