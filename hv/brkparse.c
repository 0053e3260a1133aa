/*
 * brkparse.c - the broker's requests, checked: sizes, pads, strings, ranges.
 * Apart from broker.c and brknet.c, which act on them, so that everything a
 * broker request can hold is fuzzed on its own (tests/fuzz/fuzz_hv_broker.c).
 *
 * Each parser copies the payload out of the (hostile) buffer first and
 * checks the copy; it returns 0, or EINVAL with *why saying what is wrong in
 * a few words, for hv.log.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "hv.h"

#define BRK_MTU_MIN     68u
#define BRK_TAP_MTU_MAX 65521u /* the tun driver's largest */

/* A string field: NUL-terminated within, and nothing but zeros after the NUL. */
static bool field_ok(const char *f, size_t max)
{
    size_t n = strnlen(f, max);

    if (n == max)
        return false;
    for (size_t i = n; i < max; i++)
        if (f[i] != '\0')
            return false;
    return true;
}

bool brk_path_ok(const char *f, size_t max)
{
    size_t n;

    if (!field_ok(f, max) || f[0] != '/')
        return false;
    n = strlen(f);
    if (n < 2 || f[n - 1] == '/')
        return false;
    /* Every component between slashes: not empty, not ".", not "..". */
    for (const char *c = f + 1; c <= f + n;) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c += len + 1;
    }
    return true;
}

bool brk_ifname_ok(const char *f, size_t max, bool empty_ok)
{
    if (!field_ok(f, max))
        return false;
    if (f[0] == '\0')
        return empty_ok;
    return nl_ifname_ok(f);
}

/* The fixed-size payload into out, or EINVAL. */
static int take(const uint8_t *p, size_t len, void *out, size_t size, const char **why)
{
    if (len != size) {
        *why = "payload of the wrong size";
        return EINVAL;
    }
    memcpy(out, p, size);
    return 0;
}

static int bad(const char **why, const char *what)
{
    *why = what;
    return EINVAL;
}

int brk_parse_storage(const uint8_t *p, size_t len, struct hvw_brk_storage_req *r, const char **why)
{
    static const char zero[HVW_PATH_MAX];

    if (take(p, len, r, sizeof(*r), why) != 0)
        return EINVAL;
    if (r->pad != 0)
        return bad(why, "pad not zero");
    if (r->domid == 0 || r->domid > HVW_DOMID_MAX)
        return bad(why, "storage is for a driver domain, not dom0 or a reserved id");
    if (r->count > HVW_BRK_MAX_DIRS)
        return bad(why, "too many storage directories");
    for (unsigned int i = 0; i < HVW_BRK_MAX_DIRS; i++) {
        if (i >= r->count) {
            if (memcmp(r->dirs[i], zero, HVW_PATH_MAX) != 0)
                return bad(why, "unused directory slot not zero");
        } else if (!brk_path_ok(r->dirs[i], HVW_PATH_MAX)) {
            return bad(why, "storage directory not an absolute canonical path");
        }
    }
    return 0;
}

/*
 * dom0 gets no device, and serves disks with its own rights; but a vif it
 * serves still needs the guest's eth TAP, made in the guest's namespace,
 * and its own end, made in dom0's (never the host's).
 */
static int ends_ok(uint16_t backend, uint16_t frontend, bool dom0_backend_ok, const char **why)
{
    if (frontend == 0 || (backend == 0 && !dom0_backend_ok))
        return bad(why, "dom0 serves disks with its own rights and gets no device through the "
                        "broker");
    if (backend > HVW_DOMID_MAX || frontend > HVW_DOMID_MAX)
        return bad(why, "reserved domid");
    if (backend == frontend)
        return bad(why, "a domain cannot be its own backend");
    return 0;
}

int brk_parse_disk_reg(const uint8_t *p, size_t len, struct hvw_brk_disk_reg *r, const char **why)
{
    if (take(p, len, r, sizeof(*r), why) != 0)
        return EINVAL;
    if (r->pad != 0)
        return bad(why, "pad not zero");
    if (ends_ok(r->backend, r->frontend, false, why) != 0)
        return EINVAL;
    if ((r->flags & ~(HVW_BRK_RO | HVW_BRK_NBD)) != 0)
        return bad(why, "unknown disk flags");
    if (!brk_path_ok(r->path, HVW_PATH_MAX))
        return bad(why, "disk path not an absolute canonical path");
    if ((r->flags & HVW_BRK_NBD) && strlen(r->path) >= 108)
        return bad(why, "NBD socket path longer than a unix socket address takes");
    return 0;
}

static bool mac_ok(const uint8_t *mac)
{
    static const uint8_t zero[6];

    return (mac[0] & 1) == 0 && memcmp(mac, zero, 6) != 0;
}

static const uint32_t zero_ips[HVW_BRK_MAX_IPS];

/* A host address a route may point at a guest: not "this network", loopback, multicast or broadcast. */
static bool host_ip_ok(uint32_t ip_be)
{
    uint32_t a = ntohl(ip_be);

    return (a >> 24) != 0 && (a >> 24) != 127 && (a >> 28) < 14;
}

static int routed_ok(const struct hvw_brk_vif_reg *r, const char **why)
{
    if (r->bridge[0] != '\0')
        return bad(why, "a routed vif on a bridge");
    if (!brk_ifname_ok(r->gatewaydev, sizeof(r->gatewaydev), false))
        return bad(why, "routed vif's gatewaydev not an interface name");
    if (r->nip < 1 || r->nip > HVW_BRK_MAX_IPS)
        return bad(why, "routed vif's address count not within 1..8");
    for (unsigned int i = 0; i < HVW_BRK_MAX_IPS; i++) {
        if (i >= r->nip) {
            if (r->ip[i] != 0)
                return bad(why, "routed vif's unused addresses not zero");
            continue;
        }
        if (!host_ip_ok(r->ip[i]))
            return bad(why, "routed vif's address not a unicast host address");
        for (unsigned int j = 0; j < i; j++)
            if (r->ip[j] == r->ip[i])
                return bad(why, "routed vif's address given twice");
    }
    return 0;
}

int brk_parse_vif_reg(const uint8_t *p, size_t len, struct hvw_brk_vif_reg *r, const char **why)
{
    if (take(p, len, r, sizeof(*r), why) != 0)
        return EINVAL;
    if (r->pad != 0 || r->pad2 != 0)
        return bad(why, "pad not zero");
    if (ends_ok(r->backend, r->frontend, true, why) != 0)
        return EINVAL;
    if (r->devid > 65535)
        return bad(why, "vif devid above 65535");
    if (r->queues < 1 || r->queues > HVW_BRK_MAX_QUEUES)
        return bad(why, "queues not within 1..8");
    if (r->mtu < BRK_MTU_MIN || r->mtu > BRK_TAP_MTU_MAX)
        return bad(why, "mtu not within 68..65521");
    if (!mac_ok(r->mac))
        return bad(why, "mac zero or multicast");
    if (!brk_ifname_ok(r->bridge, sizeof(r->bridge), true))
        return bad(why, "bridge not an interface name");
    if (!brk_ifname_ok(r->vifname, sizeof(r->vifname), true))
        return bad(why, "vifname not an interface name");
    if ((r->flags & ~HVW_BRK_VIF_ROUTED) != 0)
        return bad(why, "unknown vif flags");
    if (r->flags & HVW_BRK_VIF_ROUTED)
        return routed_ok(r, why);
    if (r->nip != 0 || !brk_ifname_ok(r->gatewaydev, sizeof(r->gatewaydev), true) ||
        r->gatewaydev[0] != '\0' || memcmp(r->ip, zero_ips, sizeof(zero_ips)) != 0)
        return bad(why, "gatewaydev or addresses given for a bridged vif");
    return 0;
}

int brk_parse_unreg(const uint8_t *p, size_t len, struct hvw_brk_unreg_req *r, const char **why)
{
    if (take(p, len, r, sizeof(*r), why) != 0)
        return EINVAL;
    if (r->pad != 0)
        return bad(why, "pad not zero");
    if (r->kind != HVW_BRK_KIND_DISK && r->kind != HVW_BRK_KIND_VIF)
        return bad(why, "unknown device kind");
    return 0;
}

int brk_parse_tap(const uint8_t *p, size_t len, struct hvw_brk_tap_req *r, const char **why)
{
    const uint32_t tso = HVW_BRK_TAP_TSO4 | HVW_BRK_TAP_TSO6;

    if (take(p, len, r, sizeof(*r), why) != 0)
        return EINVAL;
    if (r->pad != 0)
        return bad(why, "pad not zero");
    if (r->vnet_hdr_sz != 10 && r->vnet_hdr_sz != 12)
        return bad(why, "vnet header size not 10 or 12");
    if ((r->offload & ~(HVW_BRK_TAP_CSUM | tso)) != 0)
        return bad(why, "unknown offload flags");
    if ((r->offload & tso) && !(r->offload & HVW_BRK_TAP_CSUM))
        return bad(why, "TSO without checksum offload");
    return 0;
}

int brk_parse_open(const uint8_t *p, size_t len, bool nbd, struct hvw_brk_open_req *r,
                   const char **why)
{
    if (take(p, len, r, sizeof(*r), why) != 0)
        return EINVAL;
    if (r->pad != 0 || r->pad2 != 0)
        return bad(why, "pad not zero");
    if ((r->flags & ~(nbd ? 0u : HVW_BRK_DIRECT)) != 0)
        return bad(why, "unknown open flags");
    return 0;
}

int brk_parse_bridge(const uint8_t *p, size_t len, struct hvw_brk_bridge_req *r, const char **why)
{
    if (take(p, len, r, sizeof(*r), why) != 0)
        return EINVAL;
    if (r->pad != 0)
        return bad(why, "pad not zero");
    if (r->mtu != 0 && r->mtu < BRK_MTU_MIN)
        return bad(why, "mtu below 68");
    if (!brk_ifname_ok(r->name, sizeof(r->name), false))
        return bad(why, "bridge not an interface name");
    if (r->pad2[0] != 0 || r->pad2[1] != 0 || r->pad2[2] != 0)
        return bad(why, "pad not zero");
    if (r->addr == 0 ? r->prefix != 0 : !host_ip_ok(r->addr) || r->prefix < 1 || r->prefix > 32)
        return bad(why, "bridge address not a unicast host address with a prefix of 1..32");
    return 0;
}

int brk_parse_uplink(const uint8_t *p, size_t len, struct hvw_brk_uplink_req *r, const char **why)
{
    if (take(p, len, r, sizeof(*r), why) != 0)
        return EINVAL;
    if (r->pad != 0)
        return bad(why, "pad not zero");
    if (r->mtu != 0 && r->mtu < BRK_MTU_MIN)
        return bad(why, "mtu below 68");
    if (!brk_ifname_ok(r->bridge, sizeof(r->bridge), false) ||
        !brk_ifname_ok(r->name, sizeof(r->name), false) ||
        !brk_ifname_ok(r->peer, sizeof(r->peer), false))
        return bad(why, "bridge, name or peer not an interface name");
    if (strcmp(r->bridge, r->name) == 0)
        return bad(why, "the uplink cannot be named as its bridge");
    if (!brk_path_ok(r->netns, sizeof(r->netns)))
        return bad(why, "netns not an absolute canonical path");
    return 0;
}
