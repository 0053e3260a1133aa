# tap.sh - a few helpers for TAP test scripts (sourced).
#   plan N; ok DESC CMD...; fails DESC CMD...; is DESC GOT WANT; skip_all REASON
tap_n=0
tap_failed=0
plan() { echo "1..$1"; }
ok() {
    local desc=$1; shift
    tap_n=$((tap_n + 1))
    if "$@" >/tmp/tap.$$ 2>&1; then echo "ok $tap_n - $desc"
    else echo "not ok $tap_n - $desc"; sed 's/^/# /' /tmp/tap.$$; tap_failed=1; fi
    rm -f /tmp/tap.$$
}
fails() {
    local desc=$1; shift
    tap_n=$((tap_n + 1))
    if "$@" >/tmp/tap.$$ 2>&1; then echo "not ok $tap_n - $desc (it succeeded)"; sed 's/^/# /' /tmp/tap.$$; tap_failed=1
    else echo "ok $tap_n - $desc"; fi
    rm -f /tmp/tap.$$
}
is() {
    tap_n=$((tap_n + 1))
    if [ "$2" = "$3" ]; then echo "ok $tap_n - $1"
    else echo "not ok $tap_n - $1"; echo "#   got: '$2'"; echo "#  want: '$3'"; tap_failed=1; fi
}
skip_all() { echo "1..0 # SKIP $1"; echo "SKIP: $1" >&2; exit 0; }
