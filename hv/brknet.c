/*
 * brknet.c - the broker's network side: TAPs for vifs, made in the calling
 * domain's network namespace and handed over as fds, and dom0's plumbing
 * (bridges, veth uplinks) in a driver domain's namespace.
 *
 * A namespace is always a domain's: found through a process of the domain
 * (its uid checked after the namespace is opened, so that a recycled pid
 * cannot lend us someone else's), and refused if it is the host's own.
 * Nothing here is ever created in the daemon's namespace.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/nsfs.h>

#include "hv.h"

/* Xen's hotplug scripts give the backend's end this address, so the bridge never takes it. */
static const uint8_t backend_mac[6] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff};

/* The real uid of the process whose /proc directory is dfd; -1 if it is gone. */
static long proc_uid(int dfd)
{
    char buf[4096], *p;
    ssize_t n;
    int fd = openat(dfd, "status", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    if ((p = strstr(buf, "\nUid:")) == NULL)
        return -1;
    return strtol(p + 5, NULL, 10);
}

/*
 * The network namespace of process `pid`, which must run as `uid`: an fd,
 * or -1 with errno (ESRCH: not that domain's; EPERM: the host's own).
 */
static int proc_netns(pid_t pid, uid_t uid)
{
    char path[64];
    int dfd, nsfd;

    if (pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/%d", (int)pid);
    if ((dfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -1;
    nsfd = openat(dfd, "ns/net", O_RDONLY | O_CLOEXEC);
    /* Checked after: the uid of the very process whose namespace we hold. */
    if (nsfd >= 0 && proc_uid(dfd) != (long)uid) {
        close(nsfd);
        nsfd = -1;
        errno = ESRCH;
    }
    close(dfd);
    if (nsfd >= 0 && netns_is_host(nsfd) != 0) {
        close(nsfd);
        errno = EPERM;
        return -1;
    }
    return nsfd;
}

/* The bridge `name` in nl's namespace, made and brought up if missing: its ifindex, or -errno. */
static int bridge_ensure(int nl, const char *name, unsigned int mtu)
{
    struct nl_link l;

    if (nl_link_get(nl, name, &l) != 0) {
        if (errno != ENODEV)
            return -errno;
        if (nl_bridge_add(nl, name) != 0 && errno != EEXIST)
            return -errno;
        if (nl_link_get(nl, name, &l) != 0)
            return -errno;
    }
    if (strcmp(l.kind, "bridge") != 0)
        return -EEXIST;
    if (nl_link_set(nl, l.ifindex, mtu, 0, NULL, true) != 0)
        return -errno;
    return l.ifindex;
}

/* ---- TAPs ---- */

/* Opens the n queues of TAP `name` inside nsfd's namespace: 0 or an errno. */
static int tap_queues(int nsfd, const char *name, unsigned int n, int *fds)
{
    int err;

    for (unsigned int i = 0; i < n; i++)
        fds[i] = -1;
    if (netns_enter(nsfd) != 0)
        return errno;
    /* The tun device takes the namespace of the process that opens it: this one. */
    err = tun_open_queues(name, n, fds);
    netns_leave();
    return err;
}

static void close_all(int *fds, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

struct tap_spec {
    char name[IFNAMSIZ];
    const struct hvw_brk_vif_reg *vif;
    const uint8_t *mac;
    const char *bridge; /* NULL: none */
    bool routed;        /* the backend's end of a routed vif */
    unsigned int vnet_hdr_sz, offload;
};

/* Writes "1" to the sysctl at path (under /proc/sys/net) as nsfd's namespace sees it: 0 or errno. */
static int sysctl_on(int nsfd, const char *path)
{
    int fd, err = 0;

    if (netns_enter(nsfd) != 0)
        return errno;
    /* /proc/sys/net shows the namespace of whoever opens it: open it from inside. */
    if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0 || write(fd, "1\n", 2) != 2)
        err = errno;
    if (fd >= 0)
        close(fd);
    netns_leave();
    return err;
}

/*
 * A routed vif's TAP (ifindex, named t->name) set up as Xen's vif-route
 * sets up a vif: gatewaydev's IPv4 address on it as a /32, proxy ARP on,
 * a /32 route to each of the guest's addresses through it from that
 * address.  Then what network-route does once: forwarding on, and proxy
 * ARP on gatewaydev, so that its side of the network finds the guests.
 * Everything on the TAP goes with it; the two sysctls stay, harmlessly.
 */
static int tap_route(int nsfd, int nl, const struct tap_spec *t, int ifindex, const char **why)
{
    const struct hvw_brk_vif_reg *v = t->vif;
    char path[96];
    struct nl_link g;
    uint32_t main_ip;
    int err;

    if (nl_link_get(nl, v->gatewaydev, &g) != 0) {
        *why = "its gatewaydev is no link in the driver domain: name an existing one in "
               "gatewaydev= (default: the domain's bulkhead_uplink bridge)";
        return errno;
    }
    if (nl_addr4_get(nl, g.ifindex, &main_ip) != 0) {
        *why = "its gatewaydev has no IPv4 address: give the driver domain's config "
               "bulkhead_uplink_address = \"ADDRESS/PREFIX\" (or the link an address from dom0)";
        return errno;
    }
    if (nl_addr4_add(nl, ifindex, main_ip, 32) != 0) {
        *why = "cannot give the TAP gatewaydev's address";
        return errno;
    }
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/proxy_arp", t->name);
    if ((err = sysctl_on(nsfd, path)) != 0) {
        *why = "cannot turn proxy ARP on for the TAP";
        return err;
    }
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/proxy_arp", v->gatewaydev);
    if ((err = sysctl_on(nsfd, path)) != 0 ||
        (err = sysctl_on(nsfd, "/proc/sys/net/ipv4/ip_forward")) != 0) {
        *why = "cannot turn forwarding, or proxy ARP on gatewaydev, on";
        return err;
    }
    for (unsigned int i = 0; i < v->nip; i++)
        if (nl_route4_add(nl, v->ip[i], ifindex, main_ip) != 0) {
            *why = "cannot route a guest address to the TAP (does another route claim it?)";
            return errno;
        }
    return 0;
}

/* Makes the TAP in nsfd's namespace: fds[] and *ifindex, or an errno with *why. */
static int tap_make(int nsfd, const struct tap_spec *t, int *fds, int *ifindex, const char **why)
{
    unsigned int n = t->vif->queues, off = 0;
    int nl, err = 0, br = 0, hdr = (int)t->vnet_hdr_sz;
    struct nl_link l;

    if ((nl = nl_open(nsfd)) < 0) {
        *why = "cannot open rtnetlink in the domain's namespace";
        return errno;
    }
    if (nl_link_get(nl, t->name, &l) == 0) {
        *why = "the interface exists already: close the fds held for it first";
        err = EEXIST;
    } else if ((err = tap_queues(nsfd, t->name, n, fds)) != 0) {
        *why = "cannot create the TAP";
    }
    if (t->offload & HVW_BRK_TAP_CSUM)
        off |= TUN_F_CSUM;
    if (t->offload & HVW_BRK_TAP_TSO4)
        off |= TUN_F_TSO4;
    if (t->offload & HVW_BRK_TAP_TSO6)
        off |= TUN_F_TSO6;
    /* Both are the device's, not a queue's: set through the first fd. */
    if (err == 0 && (ioctl(fds[0], TUNSETVNETHDRSZ, &hdr) != 0 ||
                     ioctl(fds[0], TUNSETOFFLOAD, (unsigned long)off) != 0)) {
        err = errno;
        *why = "cannot set the vnet header size or the offloads";
    }
    if (err == 0 && nl_link_get(nl, t->name, &l) != 0) {
        err = errno;
        *why = "the TAP vanished";
    }
    if (err == 0 && t->bridge != NULL && (br = bridge_ensure(nl, t->bridge, 0)) < 0) {
        err = -br;
        *why = "cannot make the bridge (is the name taken by another kind of link?)";
    }
    if (err == 0 && nl_link_set(nl, l.ifindex, t->vif->mtu, br, t->mac, true) != 0) {
        err = errno;
        *why = "cannot set the TAP's mtu, address or bridge, or bring it up";
    }
    if (err == 0 && t->routed)
        err = tap_route(nsfd, nl, t, l.ifindex, why);
    close(nl);
    if (err != 0) {
        if (err != EEXIST)
            close_all(fds, n); /* a TAP whose last fd closes is gone: nothing is left */
        return err;
    }
    *ifindex = l.ifindex;
    return 0;
}

int brknet_tap(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_brk_tap_rsp *out = (struct hvw_brk_tap_rsp *)rsp->p;
    const struct hv_dom *caller = req->conn->dom;
    struct hvw_brk_tap_req r;
    struct tap_spec t;
    const char *why;
    int err, nsfd, ifindex = 0, fds[HVW_BRK_MAX_QUEUES];

    if ((err = brk_parse_tap(req->p, req->len, &r, &why)) != 0)
        return broker_refuse(hv, req, err, "%s", why);
    memset(&t, 0, sizeof(t));
    if ((t.vif = broker_find_vif(hv, r.frontend, r.devid)) == NULL)
        return broker_refuse(hv, req, ENOENT, "no vif %u/%u is registered: dom0 registers it",
                             r.frontend, r.devid);
    if (caller->domid == t.vif->backend) {
        if (t.vif->vifname[0])
            snprintf(t.name, sizeof(t.name), "%s", t.vif->vifname);
        else
            snprintf(t.name, sizeof(t.name), "vif%u.%u", r.frontend, r.devid);
        t.mac = backend_mac;
        t.bridge = t.vif->bridge[0] ? t.vif->bridge : NULL;
        t.routed = (t.vif->flags & HVW_BRK_VIF_ROUTED) != 0;
    } else if (caller->domid == t.vif->frontend) {
        snprintf(t.name, sizeof(t.name), "eth%u", r.devid);
        t.mac = t.vif->mac;
    } else {
        return broker_refuse(hv, req, EPERM,
                             "vif %u/%u is served by domain %u: this domain is neither its "
                             "backend nor its guest",
                             r.frontend, r.devid, t.vif->backend);
    }
    t.vnet_hdr_sz = r.vnet_hdr_sz;
    t.offload = r.offload;
    if ((nsfd = proc_netns(req->pid, caller->uid)) < 0)
        return broker_refuse(hv, req, EPERM, "cannot find the calling process's own network: %s",
                             strerror(errno));
    err = tap_make(nsfd, &t, fds, &ifindex, &why);
    close(nsfd);
    if (err != 0)
        return broker_refuse(hv, req, err, "%s: %s", t.name, why);
    memset(out, 0, sizeof(*out));
    out->queues = t.vif->queues;
    out->ifindex = (uint32_t)ifindex;
    memcpy(out->name, t.name, sizeof(out->name));
    rsp->len = sizeof(*out);
    memcpy(rsp->fds, fds, sizeof(int) * t.vif->queues);
    rsp->nfds = t.vif->queues;
    hv_log(hv, "broker: domain %u has TAP %s, %u queues", caller->domid, t.name, out->queues);
    return 0;
}

/* ---- dom0's plumbing ---- */

/* Domain domid's network namespace for dom0's ops: an fd, or -1 with a refusal in *err. */
static int dom_netns(struct hv *hv, struct hv_req *req, uint16_t domid, int *err)
{
    struct hv_dom *d = hv_dom_find(hv, domid);
    int nsfd;

    if (domid == 0) {
        *err = broker_refuse(hv, req, EPERM, "the broker never plumbs the host's own network");
        return -1;
    }
    if (d == NULL || !(d->state == HVW_DOM_RUNNING || d->state == HVW_DOM_PAUSED)) {
        *err = broker_refuse(hv, req, ESRCH, "no live domain %u", domid);
        return -1;
    }
    if ((nsfd = proc_netns(d->pid, d->uid)) < 0)
        *err = broker_refuse(hv, req, errno, "cannot find domain %u's network: %s", domid,
                             strerror(errno));
    return nsfd;
}

int brknet_bridge(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_brk_bridge_req r;
    const char *why;
    int err = 0, nsfd, nl, br;

    (void)rsp;
    if ((err = brk_parse_bridge(req->p, req->len, &r, &why)) != 0)
        return broker_refuse(hv, req, err, "%s", why);
    if ((nsfd = dom_netns(hv, req, r.domid, &err)) < 0)
        return err;
    nl = nl_open(nsfd);
    close(nsfd);
    if (nl < 0)
        return broker_refuse(hv, req, errno, "cannot open rtnetlink in domain %u", r.domid);
    br = bridge_ensure(nl, r.name, r.mtu);
    /* Asked again (a second vif, a restart): an address it has already is kept. */
    if (br > 0 && r.addr != 0 && nl_addr4_add(nl, br, r.addr, r.prefix) != 0 && errno != EEXIST)
        err = errno;
    close(nl);
    if (br < 0)
        return broker_refuse(hv, req, -br, "cannot make bridge %s in domain %u: %s", r.name,
                             r.domid, strerror(-br));
    if (err != 0)
        return broker_refuse(hv, req, err, "cannot give bridge %s in domain %u its address: %s",
                             r.name, r.domid, strerror(err));
    hv_log(hv, "broker: bridge %s up in domain %u", r.name, r.domid);
    return 0;
}

/* The network namespace file at path, if it is one and not the host's: an fd, or -errno. */
static int netns_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK), r;

    if (fd < 0)
        return -errno;
    if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
        close(fd);
        return -EINVAL;
    }
    if ((r = netns_is_host(fd)) != 0) {
        close(fd);
        return r < 0 ? -EIO : -EPERM;
    }
    return fd;
}

/* Brings link `name` up in nsfd's namespace, enslaved to master if > 0; 0 or an errno. */
static int link_up(int nsfd, const char *name, int master)
{
    struct nl_link l;
    int nl = nl_open(nsfd), err = 0;

    if (nl < 0)
        return errno;
    if (nl_link_get(nl, name, &l) != 0 || nl_link_set(nl, l.ifindex, 0, master, NULL, true) != 0)
        err = errno;
    close(nl);
    return err;
}

static int uplink_make(int dns, int tns, const struct hvw_brk_uplink_req *r, const char **why)
{
    struct nl_link l;
    int nl = nl_open(dns), br, err = 0;
    bool made = false;

    if (nl < 0) {
        *why = "cannot open rtnetlink in the domain";
        return errno;
    }
    if ((br = bridge_ensure(nl, r->bridge, 0)) < 0) {
        *why = "cannot make the bridge (is the name taken by another kind of link?)";
        err = -br;
    } else if (nl_veth_add(nl, r->name, r->peer, tns, r->mtu) != 0) {
        *why = "cannot make the veth pair (does a link of either name exist?)";
        err = errno;
    } else if ((made = true, err = link_up(dns, r->name, br)) != 0) {
        *why = "cannot enslave the domain's end or bring it up";
    } else if ((err = link_up(tns, r->peer, 0)) != 0) {
        *why = "cannot bring the peer up";
    }
    /* Half-made: the pair goes, both ends at once. */
    if (err != 0 && made && nl_link_get(nl, r->name, &l) == 0)
        nl_link_del(nl, l.ifindex);
    close(nl);
    return err;
}

int brknet_uplink(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_brk_uplink_req r;
    const char *why;
    int err = 0, dns, tns;

    (void)rsp;
    if ((err = brk_parse_uplink(req->p, req->len, &r, &why)) != 0)
        return broker_refuse(hv, req, err, "%s", why);
    if ((tns = netns_file(r.netns)) < 0)
        return broker_refuse(hv, req, -tns,
                             "%s is no network namespace other than the host's: give a "
                             "namespace file such as a bind mount of /proc/PID/ns/net",
                             r.netns);
    if ((dns = dom_netns(hv, req, r.domid, &err)) < 0) {
        close(tns);
        return err;
    }
    err = uplink_make(dns, tns, &r, &why);
    close(dns);
    close(tns);
    if (err != 0)
        return broker_refuse(hv, req, err, "%s/%s in domain %u: %s", r.bridge, r.name, r.domid,
                             why);
    hv_log(hv, "broker: uplink %s on %s in domain %u, peer %s in %s", r.name, r.bridge, r.domid,
           r.peer, r.netns);
    return 0;
}
