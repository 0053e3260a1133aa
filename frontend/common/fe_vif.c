/*
 * fe_vif.c - the guest runtime's vif frontend: libbhnetfront (frontend/net)
 * between the rings and eth<devid>, the TAP dom0's broker makes in this
 * guest's network namespace (with the vif's registered MAC - the one in our
 * "mac" key, which the backend's anti-spoofing checks - and mtu, and up).
 * The TAP is kept across reconnects, so that the interface and what the
 * guest's stack holds on it outlive a backend; its offloads follow what
 * each backend offers.  Event driven in the runtime's loop: the TAP fds are
 * polled (for input only while the TX ring has room) beside the ports.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bhbroker.h"
#include "bhnetfront.h"
#include "front.h"

#define VIF_HDRSZ 12 /* the broker's default virtio_net_hdr (with num_buffers) */

struct vif_front {
    bhnetfront *nf;
    uint32_t nf_backend_domid; /* the backend nf was made for */
    char nf_backend[BHXB_PATH_MAX];
    int tap[BHBROKER_MAX_QUEUES];
    unsigned int ntap;
    bool no_tap; /* no TAP registered: a socket pair stands in, frames go nowhere */
    int sink;    /* its other end */
    bool broke;
    char why[256];
};

static void vif_broken(void *arg, const char *why)
{
    struct vif_front *v = arg;

    v->broke = true;
    snprintf(v->why, sizeof(v->why), "%s", why);
}

/* After a library call: a lie it caught fails the device (error node, Closing). */
static void vif_check(struct bhfront *f, struct vif_front *v)
{
    if (v->broke) {
        v->broke = false;
        bhfront_fail(f, EPROTO, "the backend broke the vif's protocol: %s (fix or restart the backend)",
                     v->why);
    }
}

/* eth<devid> in this guest's network namespace, once per device. */
static int vif_tap(struct bhfront *f, struct vif_front *v, char *why, size_t len)
{
    int sp[2];

    if (v->ntap > 0)
        return 0;
    if (bhbroker_tap(f->domid, f->devid, BHBROKER_TAP_CSUM | BHBROKER_TAP_TSO4 | BHBROKER_TAP_TSO6,
                     v->tap, &v->ntap) != 0) {
        if (errno != ENOENT) {
            snprintf(why, len, "cannot get eth%u from dom0's broker: %s", f->devid,
                     strerror(errno));
            return -1;
        }
        /* The vif still connects (a backend's test needs no interface); frames are dropped. */
        bhfront_log(f, "no eth%u: the toolstack registered no TAP for this vif; frames are dropped",
                    f->devid);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) != 0) {
            snprintf(why, len, "cannot make a socket pair: %s", strerror(errno));
            return -1;
        }
        v->tap[0] = sp[0];
        v->sink = sp[1];
        v->ntap = 1;
        v->no_tap = true;
        return 0;
    }
    for (unsigned int i = 0; i < v->ntap; i++)
        fcntl(v->tap[i], F_SETFL, fcntl(v->tap[i], F_GETFL) | O_NONBLOCK);
    bhfront_log(f, "eth%u: %u queue%s", f->devid, v->ntap, v->ntap == 1 ? "" : "s");
    return 0;
}

static void vif_release(struct bhfront *f)
{
    struct vif_front *v = f->priv;

    bhnetfront_free(v->nf);
    v->nf = NULL;
    for (unsigned int i = 0; i < v->ntap; i++)
        close(v->tap[i]);
    if (v->no_tap)
        close(v->sink);
    v->ntap = 0;
}

/*
 * The TAP hands us GSO and partial checksums only of the kinds this backend
 * takes, and spreads the stack's frames only over the queues that have a
 * ring pair: the others are detached (a backend may offer fewer queues than
 * the TAP has), so no frame waits on an fd nobody reads.
 */
static void vif_offloads(struct bhfront *f, struct vif_front *v, const struct bhnetfront_info *in)
{
    unsigned long off = TUN_F_CSUM;

    if (v->no_tap)
        return;
    for (unsigned int q = 0; q < v->ntap && v->ntap > 1; q++) {
        struct ifreq ifr;

        memset(&ifr, 0, sizeof(ifr));
        ifr.ifr_flags = q < in->queues ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
        /* EINVAL: already so. */
        if (ioctl(v->tap[q], TUNSETQUEUE, &ifr) != 0 && errno != EINVAL)
            bhfront_log(f, "eth%u: cannot %s queue %u: %s", f->devid,
                        q < in->queues ? "attach" : "detach", q, strerror(errno));
    }
    if (in->gso_tcpv4)
        off |= TUN_F_TSO4;
    if (in->gso_tcpv6)
        off |= TUN_F_TSO6;
    if (ioctl(v->tap[0], TUNSETOFFLOAD, off) != 0)
        bhfront_log(f, "eth%u: cannot set the offloads: %s", f->devid, strerror(errno));
}

static int vif_publish(struct bhfront *f, char *why, size_t len)
{
    struct vif_front *v = f->priv;
    struct bhnetfront_info in;
    unsigned int np = 0;

    if (vif_tap(f, v, why, len) != 0)
        return -1;
    /*
     * A device re-homed to a rebuilt driver domain (bulkhead restart) has
     * another backend: the library is made again for it, the TAP kept.
     */
    if (v->nf != NULL &&
        (v->nf_backend_domid != f->backend_domid || strcmp(v->nf_backend, f->backend) != 0)) {
        bhnetfront_free(v->nf);
        v->nf = NULL;
        v->broke = false;
    }
    if (v->nf == NULL) {
        struct bhnetfront_cfg cfg = {
            .xs = f->xs,
            .gntshr = f->gntshr,
            .evtchn = f->evtchn,
            .dir = f->dir,
            .backend = f->backend,
            .backend_domid = f->backend_domid,
            .tap = v->tap,
            .ntap = v->ntap,
            .hdrsz = VIF_HDRSZ,
            .broken = vif_broken,
            .arg = v,
        };

        if ((v->nf = bhnetfront_new(&cfg)) == NULL) {
            snprintf(why, len, "cannot set up the netfront: %s", strerror(errno));
            return -1;
        }
        v->nf_backend_domid = f->backend_domid;
        snprintf(v->nf_backend, sizeof(v->nf_backend), "%s", f->backend);
    }
    if (bhnetfront_publish(v->nf, why, len) != 0)
        return -1;
    for (unsigned int q = 0; q < bhnetfront_queues(v->nf); q++) {
        int tx = bhnetfront_port(v->nf, q, false), rx = bhnetfront_port(v->nf, q, true);

        f->ports[np++] = (uint32_t)tx;
        if (rx != tx)
            f->ports[np++] = (uint32_t)rx;
    }
    if (bhnetfront_ctrl_port(v->nf) >= 0)
        f->ports[np++] = (uint32_t)bhnetfront_ctrl_port(v->nf);
    bhnetfront_get_info(v->nf, &in);
    vif_offloads(f, v, &in);
    bhfront_log(f, "published %u queue%s (backend offers %u)%s%s%s%s%s", in.queues,
                in.queues == 1 ? "" : "s", in.backend_max_queues, in.split ? ", split events" : "",
                in.sg ? ", sg" : "", in.gso_tcpv4 ? ", gso-tcpv4" : "",
                in.gso_tcpv6 ? ", gso-tcpv6" : "", in.ctrl ? ", control ring" : "");
    return 0;
}

/*
 * eth<devid> as the toolstack describes the vif in our directory: its mac
 * (what the backend's anti-spoofing lets through) and mtu, and up.  The
 * broker made it so; this holds it so across whatever changed it since.
 */
static int vif_link(struct bhfront *f, struct vif_front *v, char *why, size_t len)
{
    char mac[32] = "";
    unsigned int mtu = 0, b[6];
    const char *bad = NULL;
    struct bhxb_key k[] = {{"mac", BHXB_STR, mac, sizeof(mac), false, 0},
                           {"mtu", BHXB_UINT, &mtu, 0, false, 65535}};
    struct ifreq ifr;
    int s, rc = -1;

    if (v->no_tap)
        return 0;
    if (bhxb_read_keys(f->xs, f->dir, k, 2, &bad) != 0) {
        snprintf(why, len, "our key %s: %s (the toolstack writes it)", bad, strerror(errno));
        return -1;
    }
    if ((s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
        snprintf(why, len, "cannot open a socket to set eth%u up: %s", f->devid, strerror(errno));
        return -1;
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth%u", f->devid);
    if (mac[0] != '\0') {
        if (sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) {
            snprintf(why, len, "our mac key \"%s\" is not xx:xx:xx:xx:xx:xx (fix the vif spec)", mac);
            goto out;
        }
        ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
        for (int i = 0; i < 6; i++)
            ifr.ifr_hwaddr.sa_data[i] = (char)b[i];
        if (ioctl(s, SIOCSIFHWADDR, &ifr) != 0) {
            snprintf(why, len, "cannot give eth%u the mac %s: %s", f->devid, mac, strerror(errno));
            goto out;
        }
    }
    if (mtu != 0) {
        ifr.ifr_mtu = (int)mtu;
        if (ioctl(s, SIOCSIFMTU, &ifr) != 0) {
            snprintf(why, len, "cannot give eth%u the mtu %u: %s (68..65521)", f->devid, mtu,
                     strerror(errno));
            goto out;
        }
    }
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0 ||
        (!(ifr.ifr_flags & IFF_UP) && (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr)) != 0)) {
        snprintf(why, len, "cannot bring eth%u up: %s", f->devid, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    close(s);
    return rc;
}

static int vif_connect(struct bhfront *f, char *why, size_t len)
{
    struct vif_front *v = f->priv;

    if (bhnetfront_connect(v->nf, why, len) != 0 || vif_link(f, v, why, len) != 0)
        return -1;
    bhfront_log(f, "connected");
    return 0;
}

static void vif_disconnect(struct bhfront *f)
{
    struct vif_front *v = f->priv;

    if (v->nf != NULL)
        bhnetfront_disconnect(v->nf);
    /* The library unbound them. */
    memset(f->ports, 0, sizeof(f->ports));
}

static void vif_kick(struct bhfront *f)
{
    struct vif_front *v = f->priv;

    if (v->nf == NULL)
        return;
    bhnetfront_kick(v->nf);
    vif_check(f, v);
}

static unsigned int vif_pollfds(struct bhfront *f, struct pollfd *pf, unsigned int max)
{
    struct vif_front *v = f->priv;
    unsigned int n = 0;

    if (v->nf == NULL || v->no_tap || bhnetfront_broken(v->nf))
        return 0;
    for (unsigned int q = 0; q < bhnetfront_queues(v->nf) && n < max; q++)
        if (bhnetfront_tx_room(v->nf, q))
            pf[n++] = (struct pollfd){.fd = v->tap[q], .events = POLLIN};
    return n;
}

static void vif_ready(struct bhfront *f, const struct pollfd *pf, unsigned int n)
{
    struct vif_front *v = f->priv;

    for (unsigned int i = 0; i < n && v->nf != NULL; i++)
        for (unsigned int q = 0; q < v->ntap; q++)
            if (pf[i].revents && pf[i].fd == v->tap[q])
                bhnetfront_tap_ready(v->nf, q);
    vif_check(f, v);
}

const struct bhfrontdrv netfront_tap = {
    .name = "netfront",
    .kind = "vif",
    .priv_size = sizeof(struct vif_front),
    .publish = vif_publish,
    .connect = vif_connect,
    .kick = vif_kick,
    .disconnect = vif_disconnect,
    .release = vif_release,
    .pollfds = vif_pollfds,
    .ready = vif_ready,
};
