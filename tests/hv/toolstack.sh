#!/bin/bash
# toolstack.sh - bulkhead up/down/env/create/list/exec/destroy as a user
# runs them, and a guest's confinement seen from inside through exec.
set -u
. "${srcdir:-.}/tests/hv/tap.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root (namespaces)"
B="${abs_top_builddir:-$PWD}/toolstack/bulkhead"
export BULKHEAD_STATE_DIR=$(mktemp -d /tmp/bh-ts-XXXXXX)
ex=${srcdir:-.}/examples
trap '"$B" down >/dev/null 2>&1; rm -rf "$BULKHEAD_STATE_DIR"' EXIT
plan 54

ok "up starts the simulation" "$B" up
is "up again is a no-op" "$("$B" up)" "bulkhead: already up in $BULKHEAD_STATE_DIR"
is "env prints the socket" "$("$B" env | grep -c BULKHEAD_HV_SOCKET)" "1"
ok "create a guest from an xl config" "$B" create "$ex/guest1.cfg"
sed "s|/var/lib/bulkhead/images|$BULKHEAD_STATE_DIR/missing|" "$ex/drvdom.cfg" >"$BULKHEAD_STATE_DIR/nostore.cfg"
out=$("$B" create "$BULKHEAD_STATE_DIR/nostore.cfg" 2>&1)
is "a driver domain whose storage is missing is refused in one line naming the fix" "$(echo "$out" | wc -l) $(echo "$out" | grep -c "bulkhead_storage $BULKHEAD_STATE_DIR/missing: No such file or directory: create it")" "1 1"
mkdir -p "$BULKHEAD_STATE_DIR/images"
sed "s|/var/lib/bulkhead/images|$BULKHEAD_STATE_DIR/images|" "$ex/drvdom.cfg" >"$BULKHEAD_STATE_DIR/drvdom.cfg"
ok "create a driver domain" "$B" create "$BULKHEAD_STATE_DIR/drvdom.cfg"
out=$("$B" create "$ex/guest1.cfg" 2>&1)
is "a duplicate name is refused in one line naming the fix" "$(echo "$out" | wc -l) $(echo "$out" | grep -c 'destroy it or rename')" "1 1"
is "list shows both" "$("$B" list | awk 'NR>1{print $1}' | sort | tr '\n' ' ')" "Domain-0 drvdom guest1 "
json=$("$B" list --json)
is "list --json has domid, name, state and pid" "$(echo "$json" | grep -c '"domid": [0-9]*, "name": "guest1", "state": "running", "pid": [1-9]')" "1"
gpid=$(echo "$json" | sed -n 's/.*"name": "guest1", "state": "running", "pid": \([0-9]*\).*/\1/p')
gid=$(echo "$json" | sed -n 's/.*"domid": \([0-9]*\), "name": "guest1".*/\1/p')

# XenStore, as libxl lays a domain out, from dom0 and from the guest.
eval "$("$B" env)"
is "env gives XENSTORED_PATH" "$XENSTORED_PATH" "$BULKHEAD_STATE_DIR/xenstored.sock"
is "dom0's network is a namespace of its own" "$(stat -f -c %T "$BULKHEAD_DOM0_NETNS") $([ "$(stat -L -c %i "$BULKHEAD_DOM0_NETNS")" != "$(stat -L -c %i /proc/self/ns/net)" ] && echo not-the-hosts)" "nsfs not-the-hosts"
is "... holding its loopback and the driver domain's uplink, up" "$(nsenter --net="$BULKHEAD_DOM0_NETNS" ip -o link | awk '{sub(/@.*/, ":", $2); print $2, ($3 ~ /UP/ ? "up" : "down")}' | tr '\n' ';')" "lo: up;up-drvdom: up;"
is "dom0 reads the guest's name" "$(xenstore-read /local/domain/$gid/name)" "guest1"
is "the guest's root is dom0's, readable by it" "$(xenstore-ls -p /local/domain/$gid | grep '^name ' | sed 's/.*(//')" "n0,r$gid)"
is "the guest reads its own name, relatively" "$("$B" exec guest1 -- xenstore-read name)" "guest1"
is "the guest writes its data/" "$("$B" exec guest1 -- sh -c 'xenstore-write data/x hi && xenstore-read data/x')" "hi"
fails "the guest cannot rename itself" "$B" exec guest1 -- xenstore-write name evil
fails "the guest cannot read dom0's nodes" "$B" exec guest1 -- xenstore-read /local/domain/0/name

# Confinement, from inside the guest.
is "root inside" "$("$B" exec guest1 -- id -u)" "0"
guid=$(stat -c %u /proc/$gpid)
ok "a non-zero uid of its own outside ($guid)" test "$guid" -gt 0
fails "cannot read the host's /etc/shadow" "$B" exec guest1 -- cat /etc/shadow
fails "cannot write to /etc" "$B" exec guest1 -- touch /etc/bulkhead-test
fails "cannot write to /usr" "$B" exec guest1 -- sh -c 'echo x > /usr/bulkhead-test'
ok "writes to its own /tmp" "$B" exec guest1 -- sh -c 'echo x > /tmp/mine && test -s /tmp/mine'
fails "the file is not on the host" test -e /tmp/mine
fails "cannot see the state directory" "$B" exec guest1 -- ls "$BULKHEAD_STATE_DIR"
fails "cannot see /root" "$B" exec guest1 -- ls /root/.
np=$("$B" exec guest1 -- sh -c 'ls -d /proc/[0-9]* | wc -l')
ok "few processes ($np), not the host's" test "$np" -lt 10
is "its pid 1 is its init" "$("$B" exec guest1 -- cat /proc/1/comm)" "$(cat /proc/$gpid/comm)"
is "only the loopback link" "$("$B" exec guest1 -- ip -o link | awk -F': ' '{print $2}' | tr '\n' ' ')" "lo "
is "hostname is the domain name" "$("$B" exec guest1 -- hostname)" "guest1"
is "no_new_privs" "$("$B" exec guest1 -- grep NoNewPrivs /proc/self/status | awk '{print $2}')" "1"
is "the exit status passes through" "$("$B" exec guest1 -- sh -c 'exit 7'; echo $?)" "7"
is "stdin passes through" "$(echo hello | "$B" exec guest1 -- cat)" "hello"
ok "what it leaves running lives on" "$B" exec guest1 -- sh -c 'sleep 1000 >/dev/null 2>&1 &'
ok "... and is still there" "$B" exec guest1 -- sh -c 'ls /proc/*/comm | xargs cat | grep -q sleep'
fails "exec is refused for a driver domain" "$B" exec drvdom -- true
ok "destroy the guest" "$B" destroy guest1
fails "its XenStore nodes went with it" xenstore-exists /local/domain/$gid
is "no process of its uid is left" "$(ps -e -o uid= | grep -cw "$guid")" "0"
ok "pause a domain" "$B" pause drvdom
is "list says paused" "$("$B" list | awk '$1=="drvdom"{print $5}')" "paused"
ok "unpause it" "$B" unpause drvdom
is "list says running" "$("$B" list | awk '$1=="drvdom"{print $5}')" "running"

# A crashed daemon takes its domains with it, and up starts afresh.
ok "create the guest again" "$B" create "$ex/guest1.cfg"
gpid=$("$B" list --json | sed -n 's/.*"name": "guest1", "state": "running", "pid": \([0-9]*\).*/\1/p')
guid=$(stat -c %u /proc/$gpid)
kill -9 "$(cat "$BULKHEAD_STATE_DIR/hv.pid")"
for i in $(seq 50); do [ "$(ps -e -o uid= | grep -cw "$guid")" = 0 ] && break; sleep 0.1; done
is "the crashed daemon's domains are gone" "$(ps -e -o uid= | grep -cw "$guid")" "0"
fails "list says the simulation is down" "$B" list
ok "up after a crash" "$B" up
is "a fresh start: only dom0" "$("$B" list | awk 'NR>1{print $1}' | tr '\n' ' ')" "Domain-0 "
ok "down" "$B" down
is "down again is a no-op" "$("$B" down)" "bulkhead: already down in $BULKHEAD_STATE_DIR"
fails "down left no socket" test -e "$BULKHEAD_STATE_DIR/hv.sock"
fails "down took dom0's network namespace" test -e "$BULKHEAD_STATE_DIR/netns/dom0"
is "... and left no mount" "$(grep -c "$BULKHEAD_STATE_DIR" /proc/self/mountinfo)" "0"
exit 0
