# lib.sh - what the tests/dev and tests/long scripts share (sourced; sim_begin
# sets $B, the bulkhead CLI, which the rest needs).

# The measurement and wait helpers `bulkhead bench` and `make bench` use.
# shellcheck source=../../toolstack/benchlib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../toolstack/benchlib.sh"

# sim_begin TAG: a simulation of the script's own.  Sets top (the build
# folder), B (its bulkhead), BULKHEAD_STATE_DIR and W (a work folder) under
# /tmp, and bg="" (pids to kill at the end).  On exit - a TERM or INT too (a
# timeout's): the script ends through the same cleanup - it touches
# "$W/stop" (a loop's signal to end), kills $bg, runs sim_undo if the script
# defines one, brings the simulation down and removes both folders.
sim_begin() {
    top=${abs_top_builddir:-$PWD}
    B="$top/toolstack/bulkhead"
    export BULKHEAD_STATE_DIR
    BULKHEAD_STATE_DIR=$(mktemp -d "/tmp/bh-$1-XXXXXX")
    W=$(mktemp -d "/tmp/bh-$1w-XXXXXX")
    bg=""
    trap sim_end EXIT
    trap 'exit 143' TERM INT
}
sim_end() {
    touch "$W/stop" 2>/dev/null
    # shellcheck disable=SC2086
    [ -z "$bg" ] || kill $bg 2>/dev/null
    ! declare -F sim_undo >/dev/null || sim_undo
    "$B" down >/dev/null 2>&1
    rm -rf "$BULKHEAD_STATE_DIR" "$W"
}

# vbd_uri GUEST VDEV: the NBD URI of GUEST's vbd VDEV (bl_vbd_uri: waits up
# to 30 s for the guest to publish it; empty if it never came).
vbd_uri() { bl_vbd_uri "$@"; }

# A TCP stream of seeded random bytes from guest FROM to guest TO, with the
# length and md5 taken at both ends (the guests have python3; each has a
# /tmp of its own, so the programs go in as arguments).
#
# stream_start FROM TO TO_IP PORT [BYTES]: the receiver in TO, then the
# sender in FROM, retried until it connects (the receiver listens once it
# runs).  The sender goes on until stream_stop (or BYTES were sent).  The
# two ends' "LENGTH MD5" lines go to $W/stream-PORT.recv and .send.
# stream_wait PORT [SECONDS]: waits for both ends (at most SECONDS, default
# 300: a bound against a hang; then they are killed).
# stream_stop FROM PORT [SECONDS]: tells the sender to finish, then waits.
# stream_same PORT: true when both ends saw the same nonzero length and md5.
stream_start() {
    local from=$1 to=$2 ip=$3 port=$4 limit=${5:-$((64 << 30))} i j
    "$B" exec "$to" -- python3 -c '
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1)
c, _ = s.accept(); h = hashlib.md5(); n = 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    h.update(b); n += len(b)
print(n, h.hexdigest())' "$port" >"$W/stream-$port.recv" 2>&1 &
    eval "stream_recv_$port=$!"
    : >"$W/stream-$port.send"
    for i in $(seq 100); do
        "$B" exec "$from" -- python3 -c '
import hashlib, os, random, socket, sys
port, limit = int(sys.argv[2]), int(sys.argv[3])
r = random.Random(port); h = hashlib.md5(); n = 0
s = socket.create_connection((sys.argv[1], port))
print("connected", flush=True)
while not os.path.exists("/tmp/stop-stream-%d" % port) and n < limit:
    b = r.randbytes(min(1 << 18, limit - n)); h.update(b); s.sendall(b); n += len(b)
s.shutdown(socket.SHUT_WR); s.recv(1); print(n, h.hexdigest())' "$ip" "$port" "$limit" \
            >"$W/stream-$port.send" 2>&1 &
        eval "stream_send_$port=$!"
        for j in $(seq 50); do
            grep -q connected "$W/stream-$port.send" && return 0
            kill -0 "$(eval echo "\$stream_send_$port")" 2>/dev/null || break
            sleep 0.1
        done
        grep -q connected "$W/stream-$port.send" && return 0
        wait "$(eval echo "\$stream_send_$port")"
    done
    echo "the stream $from -> $to:$port never connected: $(cat "$W/stream-$port.send")"
    return 1
}
stream_stop() {
    "$B" exec "$1" -- touch "/tmp/stop-stream-$2"
    stream_wait "$2" "${3:-300}"
}
stream_wait() {
    local port=$1 secs=${2:-300} p
    for p in "$(eval echo "\$stream_send_$port")" "$(eval echo "\$stream_recv_$port")"; do
        [ -n "$p" ] || continue
        timeout "$secs" tail --pid="$p" -f /dev/null || kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    return 0
}
stream_same() {
    local r s
    r=$(grep -x '[1-9][0-9]* [0-9a-f]\{32\}' "$W/stream-$1.recv")
    s=$(grep -x '[1-9][0-9]* [0-9a-f]\{32\}' "$W/stream-$1.send")
    [ -n "$r" ] && [ "$r" = "$s" ] && return 0
    echo "receiver: '$(tail -2 "$W/stream-$1.recv")', sender: '$(tail -2 "$W/stream-$1.send")'"
    return 1
}
