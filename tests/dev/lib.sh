# lib.sh - what the tests/dev scripts share (sourced; needs $B, the bulkhead CLI).

# vbd_uri GUEST VDEV: the NBD URI of GUEST's vbd VDEV, as block-list shows it.
# The guest publishes it once its nbdkit serves the vbd, just after
# Connected: wait for it, up to 30 s; empty if it never came.
vbd_uri() {
    local u i
    for i in $(seq 300); do
        u=$("$B" block-list "$1" --json |
            sed -n "s/.*\"vdev\": \"$2\".*\"uri\": \"\\([^\"]*\\)\".*/\\1/p")
        [ -n "$u" ] && break
        sleep 0.1
    done
    echo "$u"
}
