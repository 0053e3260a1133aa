# lib.sh - what the tests/dev scripts share (sourced; needs $B, the bulkhead CLI).

# The measurement and wait helpers `bulkhead bench` and `make bench` use.
# shellcheck source=../../toolstack/benchlib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../toolstack/benchlib.sh"

# vbd_uri GUEST VDEV: the NBD URI of GUEST's vbd VDEV (bl_vbd_uri: waits up
# to 30 s for the guest to publish it; empty if it never came).
vbd_uri() { bl_vbd_uri "$@"; }
