/*
 * fuzz_vifspec.c - a vif spec from anywhere, through vifspec_parse, and
 * its script and ip through vifspec_script and vifspec_routed_ips.
 * Invariants: no crash, any refusal is one non-empty line, and what is
 * accepted is within the ranges vifspec.h promises (so that devplan may
 * write it as is): mtu 68..65535, a unicast non-zero mac, interface names
 * Linux accepts, a rate of at least one byte per interval; a routed vif's
 * addresses are 1..VIFSPEC_ROUTED_MAX distinct unicast IPv4 host addresses.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "vifspec.h"

static void check_routed(const struct vifspec *v)
{
    uint32_t ip[VIFSPEC_ROUTED_MAX];
    unsigned int n = 99;
    char err[512];
    bool routed;

    if (vifspec_script(v->script, &routed, err, sizeof(err)) != 0)
        FUZZ_ASSERT(err[0] != '\0' && strchr(err, '\n') == NULL);
    if (vifspec_routed_ips(v->ip, ip, &n, err, sizeof(err)) != 0) {
        FUZZ_ASSERT(err[0] != '\0' && strchr(err, '\n') == NULL);
        return;
    }
    FUZZ_ASSERT(n >= 1 && n <= VIFSPEC_ROUTED_MAX);
    for (unsigned int i = 0; i < n; i++) {
        uint32_t h = ntohl(ip[i]);
        FUZZ_ASSERT(h >> 24 != 0 && h >> 24 != 127 && h >> 28 < 14);
        for (unsigned int j = 0; j < i; j++)
            FUZZ_ASSERT(ip[j] != ip[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vifspec v;
    char err[512], *spec;

    if (size > 8192 || (spec = malloc(size + 1)) == NULL)
        return 0;
    memcpy(spec, data, size);
    spec[size] = '\0'; /* a config string ends at its first NUL */
    if (vifspec_parse(spec, &v, err, sizeof(err)) != 0) {
        FUZZ_ASSERT(err[0] != '\0');
        FUZZ_ASSERT(strchr(err, '\n') == NULL);
    } else {
        FUZZ_ASSERT(v.mtu >= 68 && v.mtu <= 65535);
        FUZZ_ASSERT(v.devid >= -1 && v.devid <= VIFSPEC_DEVID_MAX);
        FUZZ_ASSERT(v.trusted >= -1 && v.trusted <= 1);
        FUZZ_ASSERT(!v.has_mac || ((v.mac[0] & 1) == 0 && (v.mac[0] | v.mac[1] | v.mac[2] |
                                                           v.mac[3] | v.mac[4] | v.mac[5]) != 0));
        FUZZ_ASSERT(v.bridge[0] == '\0' || vifspec_ifname_ok(v.bridge));
        FUZZ_ASSERT(v.vifname[0] == '\0' || vifspec_ifname_ok(v.vifname));
        FUZZ_ASSERT(v.gatewaydev[0] == '\0' || vifspec_ifname_ok(v.gatewaydev));
        FUZZ_ASSERT(!v.has_rate || (v.rate_bytes > 0 && v.rate_usecs > 0));
        for (const char *s = v.ip; *s; s++)
            FUZZ_ASSERT((unsigned char)*s >= 0x20 && *s != ',');
        check_routed(&v);
    }
    free(spec);
    return 0;
}
