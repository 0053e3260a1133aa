/*
 * hvbroker.c - the toolstack's calls to the broker in bulkhead-hv: what a
 * driver domain serves (storage, disks, vifs) and the network plumbing
 * (bridges, uplinks).  Each returns as hvc_call does: 0, a positive errno
 * (from the daemon, or EINVAL / ENAMETOOLONG for an argument that does not
 * fit the wire), or -1 for a broken channel.  The daemon logs why it
 * refused in hv.log.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "toolstack.h"

/* Copies s into a zeroed field of size max; false if it does not fit. */
static bool put(char *field, size_t max, const char *s)
{
    size_t n = s ? strlen(s) : 0;

    memset(field, 0, max);
    if (n >= max)
        return false;
    if (n > 0)
        memcpy(field, s, n);
    return true;
}

int hvc_brk_storage(struct hvc *h, uint16_t domid, const char *const *dirs, unsigned int n)
{
    struct hvw_brk_storage_req r;

    memset(&r, 0, sizeof(r));
    if (n > HVW_BRK_MAX_DIRS)
        return EINVAL;
    r.domid = domid;
    r.count = (uint16_t)n;
    for (unsigned int i = 0; i < n; i++)
        if (!put(r.dirs[i], sizeof(r.dirs[i]), dirs[i]))
            return ENAMETOOLONG;
    return hvc_call(h, HVW_OP_BRK_STORAGE, &r, sizeof(r), NULL, 0, NULL);
}

int hvc_brk_disk(struct hvc *h, uint16_t backend, uint16_t frontend, uint32_t devid, uint32_t flags,
                 const char *path)
{
    struct hvw_brk_disk_reg r;

    memset(&r, 0, sizeof(r));
    r.backend = backend;
    r.frontend = frontend;
    r.devid = devid;
    r.flags = flags;
    if (!put(r.path, sizeof(r.path), path))
        return ENAMETOOLONG;
    return hvc_call(h, HVW_OP_BRK_REG_DISK, &r, sizeof(r), NULL, 0, NULL);
}

int hvc_brk_vif(struct hvc *h, uint16_t backend, uint16_t frontend, uint32_t devid,
                unsigned int queues, unsigned int mtu, const uint8_t mac[6], const char *bridge)
{
    return hvc_brk_vif_more(h, backend, frontend, devid, queues, mtu, mac, bridge, NULL);
}

int hvc_brk_vif_more(struct hvc *h, uint16_t backend, uint16_t frontend, uint32_t devid,
                     unsigned int queues, unsigned int mtu, const uint8_t mac[6],
                     const char *bridge, const struct hvc_vif_more *x)
{
    struct hvw_brk_vif_reg r;

    memset(&r, 0, sizeof(r));
    if (queues > 0xffff || mtu > 0xffff)
        return EINVAL;
    r.backend = backend;
    r.frontend = frontend;
    r.devid = devid;
    r.queues = (uint16_t)queues;
    r.mtu = (uint16_t)mtu;
    memcpy(r.mac, mac, 6);
    if (!put(r.bridge, sizeof(r.bridge), bridge))
        return ENAMETOOLONG;
    if (x != NULL) {
        if (!put(r.vifname, sizeof(r.vifname), x->vifname ? x->vifname : ""))
            return ENAMETOOLONG;
        if (x->routed) {
            if (x->nip > HVW_BRK_MAX_IPS)
                return EINVAL;
            r.flags = HVW_BRK_VIF_ROUTED;
            r.nip = x->nip;
            memcpy(r.ip, x->ip, sizeof(uint32_t) * x->nip);
            if (!put(r.gatewaydev, sizeof(r.gatewaydev), x->gatewaydev ? x->gatewaydev : ""))
                return ENAMETOOLONG;
        }
    }
    return hvc_call(h, HVW_OP_BRK_REG_VIF, &r, sizeof(r), NULL, 0, NULL);
}

int hvc_brk_unreg(struct hvc *h, uint8_t kind, uint16_t frontend, uint32_t devid)
{
    struct hvw_brk_unreg_req r = {.frontend = frontend, .kind = kind, .devid = devid};

    return hvc_call(h, HVW_OP_BRK_UNREG, &r, sizeof(r), NULL, 0, NULL);
}

int hvc_brk_bridge(struct hvc *h, uint16_t domid, const char *name, unsigned int mtu)
{
    return hvc_brk_bridge_addr(h, domid, name, mtu, 0, 0);
}

int hvc_brk_bridge_addr(struct hvc *h, uint16_t domid, const char *name, unsigned int mtu,
                        uint32_t addr, unsigned int prefix)
{
    struct hvw_brk_bridge_req r;

    memset(&r, 0, sizeof(r));
    if (mtu > 0xffff || prefix > 0xff)
        return EINVAL;
    r.domid = domid;
    r.mtu = (uint16_t)mtu;
    r.addr = addr;
    r.prefix = (uint8_t)prefix;
    if (!put(r.name, sizeof(r.name), name))
        return ENAMETOOLONG;
    return hvc_call(h, HVW_OP_BRK_BRIDGE, &r, sizeof(r), NULL, 0, NULL);
}

int hvc_brk_uplink(struct hvc *h, uint16_t domid, const char *bridge, const char *name,
                   const char *peer, const char *netns, unsigned int mtu)
{
    struct hvw_brk_uplink_req r;

    memset(&r, 0, sizeof(r));
    if (mtu > 0xffff)
        return EINVAL;
    r.domid = domid;
    r.mtu = (uint16_t)mtu;
    if (!put(r.bridge, sizeof(r.bridge), bridge) || !put(r.name, sizeof(r.name), name) ||
        !put(r.peer, sizeof(r.peer), peer) || !put(r.netns, sizeof(r.netns), netns))
        return ENAMETOOLONG;
    return hvc_call(h, HVW_OP_BRK_UPLINK, &r, sizeof(r), NULL, 0, NULL);
}
