/*
 * vifplug.c - a vif's TAP in a Xen driver domain, made as Xen's vif-bridge
 * hotplug script plugs a vif.  On Xen there is no broker: the kernel
 * netback's vif<domid>.<devid> would be put on its bridge by vif-bridge,
 * run by `xl devd`; bulkhead-drvdom serves the vif from a TAP of that name
 * instead, and its opener (opener.c), which runs unconfined with
 * CAP_NET_ADMIN, makes it here and passes the queues' fds to the keeper.
 *
 * What vif-bridge does, and so what we do: the bridge must exist (the
 * script fails "Could not find bridge device" otherwise; it never makes
 * one), the port takes fe:ff:ff:ff:ff:ff so that the bridge never takes
 * the port's address as its own, the mtu is the backend's mtu= or else the
 * bridge's, and the port is brought up on the bridge.  The TAP is not
 * persistent: when the keeper closes the last queue's fd (the device is
 * gone), the kernel removes it, bridge port and all, as vif-bridge's
 * "offline" would.
 *
 * The names come from this domain's backend directory, which only dom0 and
 * this domain can write; they are still checked as hostile strings, since
 * they become interface names and TUNSETIFF would expand a "%d" in one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/if.h>
#include <linux/if_tun.h>

#include "drv.h"
#include "hv.h"

#define VIF_MTU_MIN 68
#define VIF_MTU_MAX 65535

/* The backend's end of every vif, as Xen's scripts and the simulation's broker set it. */
static const uint8_t port_mac[6] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff};

/* An interface name we accept: 1..IFNAMSIZ-1 of [A-Za-z0-9_.-], neither "." nor "..". */
/* A key's value fit to quote in a one-line message: at most 40 bytes, '?' for what is not printable. */
static const char *shown(const char *v, char buf[44])
{
    size_t i = 0;

    for (; v[i] != '\0' && i < 40; i++)
        buf[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
    buf[i] = '\0';
    return buf;
}

int vifplug_spec(uint32_t domid, uint32_t devid, const char *vifname, const char *bridge,
                 const char *mtu, const char *script, unsigned int queues, struct vifplug *s,
                 char *why, size_t len)
{
    const char *base;
    char b[44];

    memset(s, 0, sizeof(*s));
    if (queues == 0 || queues > BHDEV_MAX_FDS) {
        snprintf(why, len, "vif %u/%u: %u queues asked: give 1..%u", domid, devid, queues,
                 BHDEV_MAX_FDS);
        errno = EINVAL;
        return -1;
    }
    s->queues = queues;
    /* libxl writes the full path of its default, .../vif-bridge; what counts is the name. */
    base = script != NULL ? strrchr(script, '/') : NULL;
    base = base != NULL ? base + 1 : script;
    if (base != NULL && strcmp(base, "vif-route") == 0) {
        snprintf(why, len,
                 "vif %u/%u: routed vifs (script=vif-route) are not served on Xen yet: give the "
                 "vif bridge= instead",
                 domid, devid);
        errno = EOPNOTSUPP;
        return -1;
    }
    if (base != NULL && base[0] != '\0' && strcmp(base, "vif-bridge") != 0) {
        snprintf(why, len,
                 "vif %u/%u: script %s is not run: bulkhead-drvdom plugs vifs as vif-bridge "
                 "does (leave script= out)",
                 domid, devid, shown(script, b));
        errno = EOPNOTSUPP;
        return -1;
    }
    if (vifname != NULL && vifname[0] != '\0') {
        if (!nl_ifname_ok(vifname)) {
            snprintf(why, len,
                     "vif %u/%u: backend key vifname '%s' is no interface name: give 1..%d "
                     "of A-Z a-z 0-9 _ . -",
                     domid, devid, shown(vifname, b), IFNAMSIZ - 1);
            errno = EINVAL;
            return -1;
        }
        snprintf(s->name, sizeof(s->name), "%s", vifname);
    } else {
        /* Xen's own name for the backend's interface: vif<domid>.<devid>. */
        if (snprintf(s->name, sizeof(s->name), "vif%u.%u", domid, devid) >= (int)sizeof(s->name)) {
            snprintf(why, len, "vif %u/%u: vif%u.%u is too long for an interface name: give "
                               "the vif a vifname=",
                     domid, devid, domid, devid);
            errno = EINVAL;
            return -1;
        }
    }
    if (bridge == NULL || bridge[0] == '\0')
        bridge = "xenbr0"; /* libxl's default, and vif-bridge's */
    if (!nl_ifname_ok(bridge)) {
        snprintf(why, len,
                 "vif %u/%u: backend key bridge '%s' is no interface name: give 1..%d of "
                 "A-Z a-z 0-9 _ . -",
                 domid, devid, shown(bridge, b), IFNAMSIZ - 1);
        errno = EINVAL;
        return -1;
    }
    snprintf(s->bridge, sizeof(s->bridge), "%s", bridge);
    if (mtu != NULL && mtu[0] != '\0') {
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(mtu, &end, 10);
        if (mtu[0] < '0' || mtu[0] > '9' || *end != '\0' || errno != 0 || v < VIF_MTU_MIN ||
            v > VIF_MTU_MAX) {
            snprintf(why, len, "vif %u/%u: backend key mtu '%s': write %u..%u", domid, devid,
                     shown(mtu, b), VIF_MTU_MIN, VIF_MTU_MAX);
            errno = EINVAL;
            return -1;
        }
        s->mtu = (unsigned int)v;
    }
    return 0;
}

static void close_fds(int *fds, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

/* The TAP's queues: one fd each, the device made by the first. 0, or -1 with errno. */
static int tap_open(const char *name, unsigned int n, int *fds)
{
    int hdr = 12; /* virtio_net_hdr_mrg_rxbuf, as the broker's TAPs have (bhbroker.h) */
    int err;

    if ((err = tun_open_queues(name, n, fds)) != 0) {
        errno = err;
        return -1;
    }
    /* The device's, not a queue's: through the first fd.  net.c narrows the offloads at connect. */
    if (ioctl(fds[0], TUNSETVNETHDRSZ, &hdr) != 0 ||
        ioctl(fds[0], TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) != 0)
        return -1;
    return 0;
}

int vifplug_make(const struct vifplug *s, int *fds, char *why, size_t len)
{
    struct nl_link br, tap;
    int nl, err = 0;

    for (unsigned int i = 0; i < s->queues; i++)
        fds[i] = -1;
    if ((nl = nl_open(-1)) < 0) {
        err = errno;
        snprintf(why, len, "%s: cannot open rtnetlink: %s", s->name, strerror(err));
        goto out;
    }
    if (nl_link_get(nl, s->bridge, &br) != 0) {
        err = errno;
        if (err == ENODEV)
            snprintf(why, len,
                     "%s: bridge %s does not exist in the driver domain: make it (ip link add %s "
                     "type bridge) or name another in the vif's bridge=",
                     s->name, s->bridge, s->bridge);
        else
            snprintf(why, len, "%s: cannot look bridge %s up: %s", s->name, s->bridge,
                     strerror(err));
        goto out;
    }
    if (strcmp(br.kind, "bridge") != 0) {
        err = EINVAL;
        snprintf(why, len, "%s: %s is a link but no bridge: name a bridge in the vif's bridge=",
                 s->name, s->bridge);
        goto out;
    }
    /*
     * A multi-queue TAP of that name would take our fds as more queues of
     * its own: whatever holds it (a device not yet gone) keeps it.
     */
    if (nl_link_get(nl, s->name, &tap) == 0) {
        err = EEXIST;
        snprintf(why, len, "%s: the interface exists already: the vif's earlier TAP is still held, "
                           "or another link took the name (give the vif another vifname=)",
                 s->name);
        goto out;
    }
    if (tap_open(s->name, s->queues, fds) != 0) {
        err = errno;
        snprintf(why, len, "%s: cannot make the TAP from /dev/net/tun: %s (is tun loaded?)",
                 s->name, strerror(err));
        goto out;
    }
    if (nl_link_get(nl, s->name, &tap) != 0 ||
        nl_link_set(nl, tap.ifindex, s->mtu != 0 ? s->mtu : br.mtu, br.ifindex, port_mac,
                    true) != 0) {
        err = errno;
        snprintf(why, len, "%s: cannot set its mtu and address, put it on %s and bring it up: %s",
                 s->name, s->bridge, strerror(err));
        goto out;
    }
out:
    if (nl >= 0)
        close(nl);
    if (err != 0) {
        close_fds(fds, s->queues); /* the TAP goes with its last fd: nothing is left behind */
        errno = err;
        return -1;
    }
    return 0;
}
