/*
 * check_netfront.c - libbhnetfront against a fake netback written here with
 * libbhring and the hostile harness's simulation (tests/hostile.h): the
 * test plays the driver domain (it maps the guest's grants with its own
 * identity) and the guest's TAP (a SOCK_SEQPACKET pair, framed as a TAP
 * with IFF_VNET_HDR: a virtio_net_hdr, then the frame).  Everything runs in
 * this thread in lock step, so every assertion is exact.  Covered: the keys
 * against a backend offering the basics and one offering everything
 * (sg, GSO, split event channels, multi-queue); a frame from the TAP on the
 * TX ring (slots, flags, GSO extra, bytes, trusted=0 clearing); a frame
 * from the RX ring on the TAP (chains, GSO, checksum flags); lies (unknown
 * TX id, RX slot out of its page, endless more_data, rsp_prod overflow)
 * that break that vif only, while another keeps moving frames; the
 * control ring; the netif feature space pairwise (a covering array over
 * sg, GSO v4/v6, IPv6 checksum offload, 1/2 queues, split event channels,
 * the control ring, trusted 0/1 and 1500/9000-byte frames), with no
 * rx-copy refused apart; and a kernel TAP as the broker makes it, in a
 * network namespace of the test's.
 * Needs root (the simulation).
 */
#define _GNU_SOURCE
#include "config.h"

#include <check.h>
#include <errno.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bhnetback.h"
#include "bhnetfront.h"
#include "hostile.h"

#define HDRSZ 12
#define PG    4096u

static struct hst_sim sim;
static struct hst_domain guest, drv;
static struct hst_id gid, did;

/* ---- the fake netback, one per vif ---- */

struct fq {
    struct bhring tx, rx;
    void *txsh, *rxsh;
    int txport, rxport; /* ours (the backend's), bound to the frontend's */
};

struct fake {
    struct bhxb_dev dev;
    struct bhxb_layout *lay;
    struct hst_end end; /* its dir and peer_dir, and hst_set */
    unsigned int nq;
    bool split;
    struct fq q[BHNETFRONT_MAX_QUEUES];
    /* the guest's side */
    bhnetfront *nf;
    int sp[BHNETFRONT_MAX_QUEUES][2]; /* [q][0] the frontend's "TAP", [q][1] ours */
    char broken[256];
    /* the last TX packet taken */
    struct netif_tx_request slot[32];
    unsigned int nslots;
    bool has_gso;
    struct netif_extra_info gso;
    uint8_t frame[80000];
    size_t flen;
    uint8_t tail[PG]; /* the last data page of the frame, as mapped */
};

static struct fake fk[2];

static void on_broken(void *arg, const char *why)
{
    snprintf(((struct fake *)arg)->broken, sizeof(fk[0].broken), "%s", why);
}

static void setup(void)
{
    char err[512];

    ck_assert_msg(hst_sim_start(&sim, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(hst_sim_domain(&sim, "guest", 0, &guest), 0);
    ck_assert_int_eq(hst_sim_domain(&sim, "drv", HST_DOM_DRIVER, &drv), 0);
    ck_assert_int_eq(hst_id_open(&gid, guest.uid), 0);
    ck_assert_int_eq(hst_id_open(&did, drv.uid), 0);
    memset(fk, 0, sizeof(fk));
}

static void fake_close(struct fake *f)
{
    for (unsigned int i = 0; i < f->nq; i++) {
        struct fq *q = &f->q[i];

        if (q->txsh != NULL)
            bhgnttab_unmap(did.gt, q->txsh, 1);
        if (q->rxsh != NULL)
            bhgnttab_unmap(did.gt, q->rxsh, 1);
        if (q->rxport >= 0 && q->rxport != q->txport)
            bhevtchn_unbind(did.ev, (uint32_t)q->rxport);
        if (q->txport >= 0)
            bhevtchn_unbind(did.ev, (uint32_t)q->txport);
        memset(q, 0, sizeof(*q));
        q->txport = q->rxport = -1;
    }
    f->nq = 0;
}

static void teardown(void)
{
    for (int i = 0; i < 2; i++) {
        bhnetfront_free(fk[i].nf);
        fake_close(&fk[i]);
        for (int q = 0; q < BHNETFRONT_MAX_QUEUES; q++)
            if (fk[i].sp[q][0] > 0) {
                close(fk[i].sp[q][0]);
                close(fk[i].sp[q][1]);
            }
        bhxb_layout_free(fk[i].lay);
    }
    hst_id_close(&did);
    hst_id_close(&gid);
    hst_sim_stop(&sim);
}

/* A key of the frontend's directory as dom0 reads it, "(none)" if missing. */
static const char *fkey(struct fake *f, const char *name)
{
    static char v[128];
    char path[400], *s;
    unsigned int len;

    snprintf(path, sizeof(path), "%s/%s", f->end.peer_dir, name);
    if ((s = xs_read(sim.xs, XBT_NULL, path, &len)) == NULL)
        return "(none)";
    snprintf(v, sizeof(v), "%.*s", (int)len, s);
    free(s);
    return v;
}

static unsigned int fkey_uint(struct fake *f, const char *name)
{
    const char *v = fkey(f, name);

    ck_assert_msg(strcmp(v, "(none)") != 0, "frontend key %s missing", name);
    return (unsigned int)strtoul(v, NULL, 10);
}

/* What the backend does at the frontend's Initialised: map every queue's rings, bind its ports. */
static void fake_connect(struct fake *f)
{
    const char *mq = fkey(f, "multi-queue-num-queues");

    f->nq = strcmp(mq, "(none)") == 0 ? 1 : (unsigned int)atoi(mq);
    ck_assert_uint_le(f->nq, BHNETFRONT_MAX_QUEUES);
    for (unsigned int i = 0; i < f->nq; i++) {
        struct fq *q = &f->q[i];
        char pre[16] = "", k[64];

        if (f->nq > 1)
            snprintf(pre, sizeof(pre), "queue-%u/", i);
        snprintf(k, sizeof(k), "%stx-ring-ref", pre);
        q->txsh = bhgnttab_map_grant_ref(did.gt, guest.domid, fkey_uint(f, k), PROT_READ | PROT_WRITE);
        snprintf(k, sizeof(k), "%srx-ring-ref", pre);
        q->rxsh = bhgnttab_map_grant_ref(did.gt, guest.domid, fkey_uint(f, k), PROT_READ | PROT_WRITE);
        ck_assert_ptr_nonnull(q->txsh);
        ck_assert_ptr_nonnull(q->rxsh);
        ck_assert_int_eq(bhring_attach(&q->tx, &bhring_netif_tx, BHRING_BACK, q->txsh, 0, 0, false), 0);
        ck_assert_int_eq(bhring_attach(&q->rx, &bhring_netif_rx, BHRING_BACK, q->rxsh, 0, 0, false), 0);
        if (f->split) {
            snprintf(k, sizeof(k), "%sevent-channel-tx", pre);
            q->txport = bhevtchn_bind_interdomain(did.ev, guest.domid, fkey_uint(f, k));
            snprintf(k, sizeof(k), "%sevent-channel-rx", pre);
            q->rxport = bhevtchn_bind_interdomain(did.ev, guest.domid, fkey_uint(f, k));
        } else {
            snprintf(k, sizeof(k), "%sevent-channel", pre);
            q->txport = q->rxport = bhevtchn_bind_interdomain(did.ev, guest.domid, fkey_uint(f, k));
        }
        ck_assert_int_ge(q->txport, 0);
        ck_assert_int_ge(q->rxport, 0);
    }
}

enum offer { BASIC, FULL, FULL_CTRL /* and feature-ctrl-ring */, ROW /* as cur_row says */ };

static const unsigned char *cur_row;
static void offer_row(struct fake *f); /* the pairwise table's offer, below */

/* Both ends of vif devid up to Connected: the backend's offer, the frontend's ntap queues. */
static int real_tap = -1; /* a kernel TAP instead of the socket pair of queue 0 */

static void attach(struct fake *f, uint32_t devid, enum offer offer, unsigned int ntap, int trusted)
{
    struct bhnetfront_cfg cfg = {0};
    int tap[BHNETFRONT_MAX_QUEUES];
    char why[256], path[300];

    f->dev = (struct bhxb_dev){"vif", NULL, guest.domid, drv.domid, devid};
    f->lay = hst_layout(sim.xs, &f->dev);
    ck_assert_ptr_nonnull(f->lay);
    ck_assert_int_eq(hst_back_init(&f->end, &did, HST_NETIF, &f->dev), 0);
    ck_assert_int_eq(hst_back_publish(&f->end), 0);
    if (offer == ROW) {
        offer_row(f);
    } else if (offer == BASIC) {
        ck_assert_int_eq(hst_rm(&f->end, "feature-sg"), 0);
        ck_assert_int_eq(hst_rm(&f->end, "multi-queue-max-queues"), 0);
    } else {
        ck_assert_int_eq(hst_set(&f->end, "feature-gso-tcpv4", "1"), 0);
        ck_assert_int_eq(hst_set(&f->end, "feature-gso-tcpv6", "1"), 0);
        ck_assert_int_eq(hst_set(&f->end, "feature-ipv6-csum-offload", "1"), 0);
        ck_assert_int_eq(hst_set(&f->end, "feature-split-event-channels", "1"), 0);
        ck_assert_int_eq(hst_set(&f->end, "multi-queue-max-queues", "4"), 0);
        f->split = true;
        if (offer == FULL_CTRL)
            ck_assert_int_eq(hst_set(&f->end, "feature-ctrl-ring", "1"), 0);
    }
    if (trusted >= 0) {
        snprintf(path, sizeof(path), "%s/trusted", f->end.peer_dir);
        ck_assert(xs_write(sim.xs, XBT_NULL, path, trusted ? "1" : "0", 1));
    }
    for (unsigned int q = 0; q < ntap; q++) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, f->sp[q]), 0);
        tap[q] = f->sp[q][0];
    }
    if (real_tap >= 0)
        tap[0] = real_tap;
    cfg.xs = gid.xs;
    cfg.gntshr = gid.gs;
    cfg.evtchn = gid.ev;
    cfg.dir = f->end.peer_dir;
    cfg.backend = f->end.dir;
    cfg.backend_domid = drv.domid;
    cfg.tap = tap;
    cfg.ntap = ntap;
    cfg.hdrsz = HDRSZ;
    cfg.broken = on_broken;
    cfg.arg = f;
    f->nf = bhnetfront_new(&cfg);
    ck_assert_ptr_nonnull(f->nf);
    ck_assert_msg(bhnetfront_publish(f->nf, why, sizeof(why)) == 0, "%s", why);
    fake_connect(f);
    ck_assert_msg(bhnetfront_connect(f->nf, why, sizeof(why)) == 0, "%s", why);
}

/* The guest's turn: take its events, then consume. */
static void guest_turn(struct fake *f)
{
    int p;

    while ((p = bhevtchn_pending(gid.ev)) >= 0)
        bhevtchn_unmask(gid.ev, (uint32_t)p);
    bhnetfront_kick(f->nf);
}

static void fake_events(void)
{
    int p;

    while ((p = bhevtchn_pending(did.ev)) >= 0)
        bhevtchn_unmask(did.ev, (uint32_t)p);
}

/*
 * Takes one TX packet off queue qi (its slots into f->slot, its bytes into
 * f->frame) and answers every slot honestly.  Returns its data slots, 0
 * when the ring holds none.
 */
static unsigned int fake_tx(struct fake *f, unsigned int qi)
{
    struct fq *q = &f->q[qi];
    union {
        struct netif_tx_request r;
        struct netif_extra_info ex;
    } s;
    struct netif_tx_response rsp;
    bool more = true;
    size_t total = 0;

    fake_events();
    f->nslots = 0;
    f->flen = 0;
    f->has_gso = false;
    while (more) {
        uint8_t *pg;
        size_t len;

        if (bhring_back_get(&q->tx, &s) != 1) {
            ck_assert_uint_eq(f->nslots, 0); /* a chain is pushed whole */
            return 0;
        }
        f->slot[f->nslots] = s.r;
        len = f->nslots == 0 ? 0 : s.r.size;
        more = s.r.flags & NETTXF_more_data;
        if (f->nslots == 0) {
            total = s.r.size;
            len = total < PG ? total : PG;
        }
        ck_assert_uint_le(s.r.offset + len, PG);
        pg = bhgnttab_map_grant_ref(did.gt, guest.domid, s.r.gref, PROT_READ);
        ck_assert_ptr_nonnull(pg);
        memcpy(f->frame + f->flen, pg + s.r.offset, len);
        memcpy(f->tail, pg, PG);
        bhgnttab_unmap(did.gt, pg, 1);
        f->flen += len;
        rsp = (struct netif_tx_response){.id = s.r.id, .status = NETIF_RSP_OKAY};
        ck_assert_int_eq(bhring_back_put(&q->tx, &rsp), 0);
        if (f->nslots++ == 0 && (s.r.flags & NETTXF_extra_info)) {
            ck_assert_int_eq(bhring_back_get(&q->tx, &s), 1);
            f->gso = s.ex;
            f->has_gso = true;
            rsp = (struct netif_tx_response){.id = 0, .status = NETIF_RSP_NULL};
            ck_assert_int_eq(bhring_back_put(&q->tx, &rsp), 0);
        }
    }
    ck_assert_uint_eq(f->flen, total);
    if (bhring_back_push(&q->tx) == 1)
        bhevtchn_notify(did.ev, (uint32_t)q->txport);
    return f->nslots;
}

/*
 * Delivers a frame on queue qi's RX ring as netback does: up to a page a
 * slot, flags on the first, a GSO extra after it when gso_size.  Returns
 * the RX requests it used.
 */
static unsigned int fake_rx(struct fake *f, unsigned int qi, const uint8_t *frame, size_t len,
                            uint16_t flags, uint8_t gso_type, uint16_t gso_size)
{
    struct fq *q = &f->q[qi];
    struct netif_rx_request req;
    union {
        struct netif_rx_response r;
        struct netif_extra_info ex;
    } s;
    size_t off = 0;
    unsigned int used = 0;

    fake_events();
    do {
        size_t chunk = len - off < PG ? len - off : PG;
        uint8_t *pg;

        ck_assert_int_eq(bhring_back_get(&q->rx, &req), 1);
        used++;
        pg = bhgnttab_map_grant_ref(did.gt, guest.domid, req.gref, PROT_READ | PROT_WRITE);
        ck_assert_ptr_nonnull(pg);
        memcpy(pg, frame + off, chunk);
        bhgnttab_unmap(did.gt, pg, 1);
        memset(&s, 0, sizeof(s));
        s.r.id = req.id;
        s.r.offset = 0;
        s.r.status = (int16_t)chunk;
        s.r.flags = (uint16_t)((off == 0 ? flags : 0) | (off + chunk < len ? NETRXF_more_data : 0) |
                               (off == 0 && gso_size ? NETRXF_extra_info : 0));
        ck_assert_int_eq(bhring_back_put(&q->rx, &s), 0);
        if (off == 0 && gso_size) {
            ck_assert_int_eq(bhring_back_get(&q->rx, &req), 1);
            used++;
            memset(&s, 0, sizeof(s));
            s.ex.type = XEN_NETIF_EXTRA_TYPE_GSO;
            s.ex.u.gso.type = gso_type;
            s.ex.u.gso.size = gso_size;
            ck_assert_int_eq(bhring_back_put(&q->rx, &s), 0);
        }
        off += chunk;
    } while (off < len);
    if (bhring_back_push(&q->rx) == 1)
        bhevtchn_notify(did.ev, (uint32_t)q->rxport);
    return used;
}

/* Ethernet + IPv4 (or IPv6) + TCP with a payload: len bytes in all. */
static size_t tcp_frame(uint8_t *b, size_t len, bool v6)
{
    size_t l4 = v6 ? 54 : 34;

    memset(b, 0, 64);
    memcpy(b, "\x00\x16\x3e\x00\x00\x01\x00\x16\x3e\x00\x00\x02", 12);
    if (v6) {
        b[12] = 0x86, b[13] = 0xdd;
        b[14] = 0x60;
        b[14 + 6] = 6; /* next header: TCP */
        b[14 + 7] = 64;
    } else {
        b[12] = 0x08, b[13] = 0x00;
        b[14] = 0x45;
        b[14 + 8] = 64;
        b[14 + 9] = 6;
    }
    b[l4 + 12] = 5 << 4; /* doff */
    for (size_t i = l4 + 20; i < len; i++)
        b[i] = (uint8_t)(i * 13 + 1);
    return len;
}

/* Writes hdr + frame to the frontend's TAP end of queue q, and has it read. */
static void tap_send(struct fake *f, unsigned int q, const struct virtio_net_hdr *h,
                     const uint8_t *frame, size_t len)
{
    static uint8_t buf[HDRSZ + 70000];

    memset(buf, 0, HDRSZ);
    memcpy(buf, h, sizeof(*h));
    memcpy(buf + HDRSZ, frame, len);
    ck_assert_int_eq(write(f->sp[q][1], buf, HDRSZ + len), (ssize_t)(HDRSZ + len));
    bhnetfront_tap_ready(f->nf, q);
}

/* Reads what the frontend wrote to its TAP of queue q: the frame's length, -1 if none. */
static ssize_t tap_recv(struct fake *f, unsigned int q, struct virtio_net_hdr *h, uint8_t *frame)
{
    static uint8_t buf[HDRSZ + 80000];
    ssize_t r = read(f->sp[q][1], buf, sizeof(buf));

    if (r < 0)
        return -1;
    ck_assert_int_ge(r, HDRSZ);
    memcpy(h, buf, sizeof(*h));
    memcpy(frame, buf + HDRSZ, (size_t)r - HDRSZ);
    return r - HDRSZ;
}

/* ---- tests ---- */

static uint8_t fr[70000], got[80000];

START_TEST(test_basic_backend)
{
    struct bhnetfront_info in;
    struct virtio_net_hdr h = {0};
    unsigned int posted = 0;
    struct netif_rx_request req;

    attach(&fk[0], 0, BASIC, 1, -1);
    ck_assert_int_eq(bhnetfront_get_info(fk[0].nf, &in), 0);
    ck_assert_uint_eq(in.queues, 1);
    ck_assert(!in.split && !in.sg && !in.gso_tcpv4 && !in.gso_tcpv6);
    ck_assert(in.trusted);
    ck_assert_str_ne(fkey(&fk[0], "tx-ring-ref"), "(none)");
    ck_assert_str_ne(fkey(&fk[0], "rx-ring-ref"), "(none)");
    ck_assert_str_ne(fkey(&fk[0], "event-channel"), "(none)");
    ck_assert_str_eq(fkey(&fk[0], "event-channel-tx"), "(none)");
    ck_assert_str_eq(fkey(&fk[0], "multi-queue-num-queues"), "(none)");
    ck_assert_str_eq(fkey(&fk[0], "request-rx-copy"), "1");
    ck_assert_str_eq(fkey(&fk[0], "feature-rx-notify"), "1");
    ck_assert_str_eq(fkey(&fk[0], "feature-sg"), "1");
    ck_assert_str_eq(fkey(&fk[0], "feature-gso-tcpv4"), "(none)");
    ck_assert_str_eq(fkey(&fk[0], "feature-gso-tcpv6"), "(none)");

    /* A frame from the TAP: one slot, its checksum left as it is. */
    tcp_frame(fr, 60, false);
    tap_send(&fk[0], 0, &h, fr, 60);
    ck_assert_uint_eq(fake_tx(&fk[0], 0), 1);
    ck_assert_uint_eq(fk[0].slot[0].size, 60);
    ck_assert_uint_eq(fk[0].slot[0].flags, 0);
    ck_assert_mem_eq(fk[0].frame, fr, 60);
    guest_turn(&fk[0]);
    ck_assert_uint_eq(bhnetfront_get_stats(fk[0].nf)->tx_frames, 1);
    /* A partial IPv4 checksum goes blank: netif's default offload. */
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.csum_start = 34;
    h.csum_offset = 16;
    tap_send(&fk[0], 0, &h, fr, 60);
    ck_assert_uint_eq(fake_tx(&fk[0], 0), 1);
    ck_assert_uint_eq(fk[0].slot[0].flags, NETTXF_csum_blank | NETTXF_data_validated);
    /* Larger than a slot without feature-sg: dropped, nothing on the ring. */
    h.flags = 0;
    tcp_frame(fr, 5000, false);
    tap_send(&fk[0], 0, &h, fr, 5000);
    ck_assert_uint_eq(fake_tx(&fk[0], 0), 0);
    ck_assert_uint_eq(bhnetfront_get_stats(fk[0].nf)->tx_dropped, 1);

    /* Every RX buffer is posted, each page with its own id. */
    fake_events();
    while (bhring_back_get(&fk[0].q[0].rx, &req) == 1) {
        ck_assert_uint_eq(req.id, posted);
        posted++;
        if (posted == 255)
            break;
    }
    ck_assert_uint_eq(posted, 255);
    /* answered so the test can use the last one */
    for (unsigned int i = 0; i < 255; i++) {
        struct netif_rx_response r = {.id = (uint16_t)i, .status = NETIF_RSP_DROPPED};
        ck_assert_int_eq(bhring_back_put(&fk[0].q[0].rx, &r), 0);
    }
    bhring_back_push(&fk[0].q[0].rx);
    guest_turn(&fk[0]);
    ck_assert_uint_eq(bhnetfront_get_stats(fk[0].nf)->rx_dropped, 255);
    ck_assert_str_eq(fk[0].broken, "");

    /* A frame on the RX ring reaches the TAP, its data_validated as DATA_VALID. */
    tcp_frame(fr, 100, false);
    ck_assert_uint_eq(fake_rx(&fk[0], 0, fr, 100, NETRXF_data_validated, 0, 0), 1);
    guest_turn(&fk[0]);
    ck_assert_int_eq(tap_recv(&fk[0], 0, &h, got), 100);
    ck_assert_uint_eq(h.flags, VIRTIO_NET_HDR_F_DATA_VALID);
    ck_assert_uint_eq(h.gso_type, VIRTIO_NET_HDR_GSO_NONE);
    ck_assert_mem_eq(got, fr, 100);
    ck_assert_uint_eq(bhnetfront_get_stats(fk[0].nf)->rx_frames, 1);
}
END_TEST

START_TEST(test_full_backend_multiqueue)
{
    struct bhnetfront_info in;
    struct virtio_net_hdr h = {0};

    attach(&fk[0], 0, FULL, 2, -1);
    ck_assert_int_eq(bhnetfront_get_info(fk[0].nf, &in), 0);
    ck_assert_uint_eq(in.queues, 2); /* 4 offered, 2 TAP queues */
    ck_assert_uint_eq(in.backend_max_queues, 4);
    ck_assert(in.split && in.sg && in.gso_tcpv4 && in.gso_tcpv6 && in.ipv6_csum);
    ck_assert_str_eq(fkey(&fk[0], "multi-queue-num-queues"), "2");
    ck_assert_str_eq(fkey(&fk[0], "tx-ring-ref"), "(none)");
    ck_assert_str_eq(fkey(&fk[0], "event-channel"), "(none)");
    ck_assert_str_ne(fkey(&fk[0], "queue-1/event-channel-rx"), "(none)");
    ck_assert_str_eq(fkey(&fk[0], "queue-1/event-channel"), "(none)");
    ck_assert_str_eq(fkey(&fk[0], "feature-gso-tcpv4"), "1");
    ck_assert_str_eq(fkey(&fk[0], "feature-gso-tcpv6"), "1");
    ck_assert_str_eq(fkey(&fk[0], "feature-ipv6-csum-offload"), "1");
    ck_assert_int_ne(bhnetfront_port(fk[0].nf, 1, false), bhnetfront_port(fk[0].nf, 1, true));

    /* Each TAP queue feeds its own ring, and each RX ring its own TAP queue. */
    for (unsigned int q = 0; q < 2; q++) {
        tcp_frame(fr, 200 + q, false);
        tap_send(&fk[0], q, &h, fr, 200 + q);
    }
    for (unsigned int q = 0; q < 2; q++) {
        ck_assert_uint_eq(fake_tx(&fk[0], q), 1);
        ck_assert_uint_eq(fk[0].flen, 200 + q);
        ck_assert_uint_eq(fake_tx(&fk[0], q), 0);
    }
    for (unsigned int q = 0; q < 2; q++) {
        tcp_frame(fr, 300 + q, false);
        fake_rx(&fk[0], q, fr, 300 + q, 0, 0, 0);
    }
    guest_turn(&fk[0]);
    for (unsigned int q = 0; q < 2; q++) {
        ck_assert_int_eq(tap_recv(&fk[0], q, &h, got), 300 + q);
        ck_assert_int_eq(tap_recv(&fk[0], q, &h, got), -1);
    }
    ck_assert_uint_eq(bhnetfront_get_stats(fk[0].nf)->tx_frames, 2);
}
END_TEST

/* GSO from the TAP: a GSO extra after the first slot, the frame over chained pages. */
START_TEST(test_tx_gso)
{
    struct virtio_net_hdr h = {0};

    attach(&fk[0], 0, FULL, 1, 0);
    tcp_frame(fr, 10000, false);
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.csum_start = 34;
    h.csum_offset = 16;
    h.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
    h.gso_size = 1448;
    h.hdr_len = 54;
    tap_send(&fk[0], 0, &h, fr, 10000);
    ck_assert_uint_eq(fake_tx(&fk[0], 0), 3);
    ck_assert_uint_eq(fk[0].slot[0].size, 10000);
    ck_assert_uint_eq(fk[0].slot[0].flags, NETTXF_csum_blank | NETTXF_data_validated |
                                               NETTXF_more_data | NETTXF_extra_info);
    ck_assert_uint_eq(fk[0].slot[1].size, 4096);
    ck_assert_uint_eq(fk[0].slot[1].flags, NETTXF_more_data);
    ck_assert_uint_eq(fk[0].slot[2].size, 10000 - 8192);
    ck_assert_uint_eq(fk[0].slot[2].flags, 0);
    ck_assert(fk[0].has_gso);
    ck_assert_uint_eq(fk[0].gso.type, XEN_NETIF_EXTRA_TYPE_GSO);
    ck_assert_uint_eq(fk[0].gso.u.gso.type, XEN_NETIF_GSO_TYPE_TCPV4);
    ck_assert_uint_eq(fk[0].gso.u.gso.size, 1448);
    ck_assert_mem_eq(fk[0].frame, fr, 10000);
    /* trusted=0: the last page's tail is cleared, it held nothing else */
    for (unsigned int i = 10000 - 8192; i < PG; i++)
        ck_assert_uint_eq(fk[0].tail[i], 0);
    guest_turn(&fk[0]);
    ck_assert_uint_eq(bhnetfront_get_stats(fk[0].nf)->tx_frames, 1);
    ck_assert_str_eq(fk[0].broken, "");
    /* UDP fragmentation offload has no netif form: dropped */
    h.gso_type = VIRTIO_NET_HDR_GSO_UDP;
    tap_send(&fk[0], 0, &h, fr, 10000);
    ck_assert_uint_eq(fake_tx(&fk[0], 0), 0);
    ck_assert_uint_eq(bhnetfront_get_stats(fk[0].nf)->tx_dropped, 1);
}
END_TEST

/* GSO to the TAP: the extra becomes gso fields, csum_blank NEEDS_CSUM at the TCP header. */
START_TEST(test_rx_gso)
{
    struct virtio_net_hdr h;

    attach(&fk[0], 0, FULL, 1, -1);
    tcp_frame(fr, 9000, true);
    ck_assert_uint_eq(fake_rx(&fk[0], 0, fr, 9000, NETRXF_csum_blank | NETRXF_data_validated,
                              XEN_NETIF_GSO_TYPE_TCPV6, 1400),
                      4);
    guest_turn(&fk[0]);
    ck_assert_int_eq(tap_recv(&fk[0], 0, &h, got), 9000);
    ck_assert_uint_eq(h.flags, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    ck_assert_uint_eq(h.csum_start, 54);
    ck_assert_uint_eq(h.csum_offset, 16);
    ck_assert_uint_eq(h.gso_type, VIRTIO_NET_HDR_GSO_TCPV6);
    ck_assert_uint_eq(h.gso_size, 1400);
    ck_assert_uint_eq(h.hdr_len, 74);
    ck_assert_mem_eq(got, fr, 9000);
    ck_assert_str_eq(fk[0].broken, "");
}
END_TEST

enum lie { UNKNOWN_TX_ID, RX_BAD_OFFSET, RX_ENDLESS_MORE, RX_PROD_OVERFLOW, LIES };

/* Each lie breaks vif 0 with a reason; vif 1, on the same backend domain, keeps moving frames. */
START_TEST(test_lies_break_only_the_vif)
{
    static const char *const expect[LIES] = {"not in flight", "crosses the page", "more than",
                                             "RX ring"};
    struct virtio_net_hdr h = {0};
    struct fq *q;
    enum lie lie = (enum lie)_i;

    attach(&fk[0], 0, FULL, 1, -1);
    attach(&fk[1], 1, FULL, 1, -1);
    q = &fk[0].q[0];
    fake_events();
    switch (lie) {
    case UNKNOWN_TX_ID: {
        struct netif_tx_request r;
        struct netif_tx_response rsp;

        tcp_frame(fr, 80, false);
        tap_send(&fk[0], 0, &h, fr, 80);
        ck_assert_int_eq(bhring_back_get(&q->tx, &r), 1);
        rsp = (struct netif_tx_response){.id = (uint16_t)(r.id ^ 0x5a5a), .status = NETIF_RSP_OKAY};
        bhring_back_put(&q->tx, &rsp);
        bhring_back_push(&q->tx);
        break;
    }
    case RX_BAD_OFFSET: {
        struct netif_rx_request req;
        struct netif_rx_response r;

        ck_assert_int_eq(bhring_back_get(&q->rx, &req), 1);
        r = (struct netif_rx_response){.id = req.id, .offset = 4000, .status = 200};
        bhring_back_put(&q->rx, &r);
        bhring_back_push(&q->rx);
        break;
    }
    case RX_ENDLESS_MORE:
        for (unsigned int i = 0; i < 64; i++) {
            struct netif_rx_request req;
            struct netif_rx_response r;

            ck_assert_int_eq(bhring_back_get(&q->rx, &req), 1);
            r = (struct netif_rx_response){.id = req.id, .status = 100, .flags = NETRXF_more_data};
            bhring_back_put(&q->rx, &r);
        }
        bhring_back_push(&q->rx);
        break;
    case RX_PROD_OVERFLOW: {
        volatile uint32_t *prod = (volatile uint32_t *)((uint8_t *)q->rxsh + HST_RSP_PROD);

        __atomic_store_n(prod, 256u + 1u + 256u, __ATOMIC_RELEASE);
        break;
    }
    default:
        break;
    }
    guest_turn(&fk[0]);
    ck_assert(bhnetfront_broken(fk[0].nf));
    ck_assert_msg(strstr(fk[0].broken, expect[lie]) != NULL, "lie %d: \"%s\"", lie, fk[0].broken);
    ck_assert_str_eq(bhnetfront_error(fk[0].nf), fk[0].broken);
    /* Broken: it takes nothing more from its TAP. */
    ck_assert(!bhnetfront_tx_room(fk[0].nf, 0));

    /* The other vif is untouched. */
    tcp_frame(fr, 120, false);
    tap_send(&fk[1], 0, &h, fr, 120);
    ck_assert_uint_eq(fake_tx(&fk[1], 0), 1);
    ck_assert_mem_eq(fk[1].frame, fr, 120);
    fake_rx(&fk[1], 0, fr, 120, 0, 0, 0);
    guest_turn(&fk[1]);
    ck_assert_int_eq(tap_recv(&fk[1], 0, &h, got), 120);
    ck_assert(!bhnetfront_broken(fk[1].nf));
    ck_assert_str_eq(fk[1].broken, "");
}
END_TEST

/* The fake backend's view of a control request's page: read-only, as netback maps it. */
static void *ctrl_page(void *ctx, uint32_t gref, bool writable)
{
    (void)ctx;
    (void)writable;
    return bhgnttab_map_grant_ref(did.gt, guest.domid, gref, PROT_READ);
}

static void ctrl_unpage(void *ctx, void *p)
{
    (void)ctx;
    bhgnttab_unmap(did.gt, p, 1);
}

/*
 * With feature-ctrl-ring offered, netfront gives a control ring and, at
 * connect, chooses Toeplitz over addresses and TCP ports, the RSS key and
 * a table spreading flows over its queues; netback's own consumer serves
 * it here.  Then a response that answers no request breaks the vif.
 */
START_TEST(test_ctrl_ring)
{
    static const uint8_t rsskey[8] = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2};
    struct bhnetfront_info in;
    struct bhnet_hash h = {0};
    struct bhring r;
    struct xen_netif_ctrl_response rsp = {.id = 77, .status = 0};
    unsigned int refused;
    char why[256];
    void *sh;
    int port;

    attach(&fk[0], 0, FULL_CTRL, 2, -1);
    ck_assert_int_eq(bhnetfront_get_info(fk[0].nf, &in), 0);
    ck_assert(in.ctrl);
    ck_assert_int_ge(bhnetfront_ctrl_port(fk[0].nf), 0);
    ck_assert_ptr_nonnull(sh = bhgnttab_map_grant_ref(did.gt, guest.domid,
                                                      fkey_uint(&fk[0], "ctrl-ring-ref"),
                                                      PROT_READ | PROT_WRITE));
    ck_assert_int_ge(port = bhevtchn_bind_interdomain(did.ev, guest.domid,
                                                      fkey_uint(&fk[0], "event-channel-ctrl")),
                     0);
    ck_assert_int_eq(bhring_attach(&r, &bhring_netif_ctrl, BHRING_BACK, sh, 0, 0, false), 0);
    ck_assert_int_eq(bhnet_ctrl_serve(&r, &h, 2, ctrl_page, ctrl_unpage, NULL, &refused, why,
                                      sizeof(why)),
                     5);
    ck_assert_uint_eq(refused, 0);
    ck_assert_int_ge(bhring_back_push(&r), 0);
    ck_assert_uint_eq(h.alg, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ);
    ck_assert_uint_eq(h.flags, 0xf);
    ck_assert_mem_eq(h.key, rsskey, sizeof(rsskey));
    ck_assert_uint_eq(h.size, 128);
    for (unsigned int i = 0; i < 128; i++)
        ck_assert_uint_eq(h.mapping[i], i % 2);
    guest_turn(&fk[0]);
    ck_assert(!bhnetfront_broken(fk[0].nf));
    ck_assert_uint_eq(bhnetfront_get_stats(fk[0].nf)->ctrl_done, 5);
    ck_assert_uint_eq(bhnetfront_get_stats(fk[0].nf)->ctrl_refused, 0);

    /* A sixth response, answering nothing: a lie (the ring says so before we look at it). */
    ((struct xen_netif_ctrl_response *)((uint8_t *)sh + 64))[5 % 128] = rsp;
    __atomic_store_n((volatile uint32_t *)((uint8_t *)sh + HST_RSP_PROD), 6u, __ATOMIC_RELEASE);
    guest_turn(&fk[0]);
    ck_assert(bhnetfront_broken(fk[0].nf));
    ck_assert_msg(strstr(fk[0].broken, "control") != NULL, "\"%s\"", fk[0].broken);
    bhevtchn_unbind(did.ev, (uint32_t)port);
    bhgnttab_unmap(did.gt, sh, 1);
}
END_TEST

/* A backend without feature-ctrl-ring gets no control ring keys. */
START_TEST(test_no_ctrl_ring)
{
    struct bhnetfront_info in;

    attach(&fk[0], 0, FULL, 1, -1);
    ck_assert_int_eq(bhnetfront_get_info(fk[0].nf, &in), 0);
    ck_assert(!in.ctrl);
    ck_assert_int_eq(bhnetfront_ctrl_port(fk[0].nf), -1);
    ck_assert_str_eq(fkey(&fk[0], "ctrl-ring-ref"), "(none)");
    ck_assert_str_eq(fkey(&fk[0], "event-channel-ctrl"), "(none)");
}
END_TEST

/* ---- the netif feature space, pairwise ---- */

/*
 * The backend's offer and the guest's settings, each a factor of two
 * levels; the table is a pairwise covering array over them (any two
 * factors meet in all four combinations in some row: 8 rows, not 2^9),
 * which test_pairwise_table_covers_every_pair checks, as check_blkfront's
 * does.  Found by a greedy search (each row the random candidate covering
 * the most pairs left).  rx-copy is no factor: without it there is no
 * connection at all, whatever else is offered (test_no_rx_copy).
 * feature-rx-notify is the frontend's to write, always (check_drvdom
 * checks netback refusing a frontend without it); IPv4 checksum offload
 * is implied by netif.h.
 */
enum nfactor {
    N_SG,     /* backend offers feature-sg */
    N_GSO4,   /* feature-gso-tcpv4 */
    N_GSO6,   /* feature-gso-tcpv6 */
    N_CSUM6,  /* feature-ipv6-csum-offload */
    N_QUEUES, /* multi-queue-max-queues: 1, 2 (the guest's TAP has 2) */
    N_SPLIT,  /* feature-split-event-channels */
    N_CTRL,   /* feature-ctrl-ring */
    N_TRUST,  /* the toolstack's trusted key: 0, 1 */
    N_JUMBO,  /* frames of 1514 bytes (mtu 1500) or 9014 (mtu 9000) */
    NNFACTORS
};

static const unsigned char npairwise[][NNFACTORS] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 1}, {0, 0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 1, 1, 0, 1, 1, 0, 0},
    {0, 1, 0, 0, 1, 0, 0, 1, 1}, {1, 0, 1, 0, 0, 0, 0, 1, 1}, {1, 1, 0, 1, 1, 1, 0, 0, 0},
    {0, 0, 0, 0, 1, 1, 1, 0, 1}, {0, 1, 0, 1, 0, 0, 1, 1, 0},
};
#define NNROWS ((int)(sizeof(npairwise) / sizeof(npairwise[0])))

START_TEST(test_pairwise_table_covers_every_pair)
{
    for (unsigned int f = 0; f < NNFACTORS; f++)
        for (unsigned int g = f + 1; g < NNFACTORS; g++)
            for (unsigned int a = 0; a < 2; a++)
                for (unsigned int b = 0; b < 2; b++) {
                    bool met = false;

                    for (int r = 0; r < NNROWS && !met; r++)
                        met = npairwise[r][f] == a && npairwise[r][g] == b;
                    ck_assert_msg(met, "no row has factor %u at %u with factor %u at %u", f, a, g,
                                  b);
                }
    for (int r = 0; r < NNROWS; r++)
        for (unsigned int f = 0; f < NNFACTORS; f++)
            ck_assert_uint_lt(npairwise[r][f], 2);
}
END_TEST

static void offer_row(struct fake *f)
{
    static const char *const keys[] = {"feature-sg", "feature-gso-tcpv4", "feature-gso-tcpv6",
                                       "feature-ipv6-csum-offload"};

    for (unsigned int k = 0; k < 4; k++)
        ck_assert_int_eq(cur_row[k] ? hst_set(&f->end, keys[k], "1") : hst_rm(&f->end, keys[k]), 0);
    ck_assert_int_eq(hst_set(&f->end, "multi-queue-max-queues", "%u", cur_row[N_QUEUES] ? 2 : 1), 0);
    if (cur_row[N_SPLIT])
        ck_assert_int_eq(hst_set(&f->end, "feature-split-event-channels", "1"), 0);
    if (cur_row[N_CTRL])
        ck_assert_int_eq(hst_set(&f->end, "feature-ctrl-ring", "1"), 0);
    f->split = cur_row[N_SPLIT];
}

/* Whether a frontend key is there, "1" for a flag. */
static bool fhas(struct fake *f, const char *name)
{
    return strcmp(fkey(f, name), "(none)") != 0;
}

/*
 * One row: the backend offers what it says, netfront connects, and what it
 * negotiated and wrote is exactly what both sides allow; then on every
 * queue a frame of the row's size goes out (chained slots with sg,
 * dropped and counted without: one slot is a page), a GSO frame goes with
 * its extra or is dropped as the offer says, an IPv6 frame needing a
 * checksum goes csum_blank or checksummed, and a frame comes in; trusted=0
 * clears the last page's tail; with a control ring, the hash settings land.
 */
START_TEST(test_pairwise_handshake)
{
    const unsigned char *row = cur_row = npairwise[_i];
    struct fake *f = &fk[0];
    unsigned int nq = row[N_QUEUES] ? 2 : 1, want_slots;
    size_t len = row[N_JUMBO] ? 9014 : 1514, last;
    bool sg = row[N_SG], g4 = row[N_GSO4] && sg, g6 = row[N_GSO6] && sg;
    struct bhnetfront_info in;
    uint64_t dropped = 0;
    char k[64];

    attach(f, 0, ROW, 2, row[N_TRUST]);
    ck_assert_int_eq(bhnetfront_get_info(f->nf, &in), 0);
    ck_assert_uint_eq(in.queues, nq);
    ck_assert_uint_eq(in.backend_max_queues, nq);
    ck_assert_int_eq(in.split, row[N_SPLIT]);
    ck_assert_int_eq(in.sg, sg);
    ck_assert_int_eq(in.gso_tcpv4, g4);
    ck_assert_int_eq(in.gso_tcpv6, g6);
    ck_assert_int_eq(in.ipv6_csum, row[N_CSUM6]);
    ck_assert_int_eq(in.trusted, row[N_TRUST]);
    ck_assert_int_eq(in.ctrl, row[N_CTRL]);
    /*
     * Written: nothing the backend did not offer.  GSO on RX is asked for
     * as offered, sg or not (we take chains on RX: feature-sg is ours);
     * GSO on TX (g4, g6 above) needs the backend's sg too.
     */
    ck_assert_int_eq(fhas(f, "feature-gso-tcpv4"), row[N_GSO4]);
    ck_assert_int_eq(fhas(f, "feature-gso-tcpv6"), row[N_GSO6]);
    ck_assert_str_eq(fkey(f, "feature-sg"), "1"); /* we take chains on RX whatever the offer */
    ck_assert_str_eq(fkey(f, "feature-rx-notify"), "1");
    ck_assert_str_eq(fkey(f, "request-rx-copy"), "1");
    ck_assert_int_eq(fhas(f, "multi-queue-num-queues"), nq > 1);
    snprintf(k, sizeof(k), "%sevent-channel-tx", nq > 1 ? "queue-0/" : "");
    ck_assert_int_eq(fhas(f, k), row[N_SPLIT]);
    snprintf(k, sizeof(k), "%sevent-channel", nq > 1 ? "queue-1/" : "");
    ck_assert_int_eq(fhas(f, k), !row[N_SPLIT]);
    ck_assert_int_eq(fhas(f, "ctrl-ring-ref"), row[N_CTRL]);
    ck_assert_int_eq(fhas(f, "event-channel-ctrl"), row[N_CTRL]);
    if (row[N_CTRL]) {
        struct bhnet_hash h = {0};
        struct bhring r;
        unsigned int refused;
        char why[256];
        void *sh = bhgnttab_map_grant_ref(did.gt, guest.domid, fkey_uint(f, "ctrl-ring-ref"),
                                          PROT_READ | PROT_WRITE);
        int port = bhevtchn_bind_interdomain(did.ev, guest.domid,
                                             fkey_uint(f, "event-channel-ctrl"));

        ck_assert_ptr_nonnull(sh);
        ck_assert_int_ge(port, 0);
        ck_assert_int_eq(bhring_attach(&r, &bhring_netif_ctrl, BHRING_BACK, sh, 0, 0, false), 0);
        ck_assert_int_eq(bhnet_ctrl_serve(&r, &h, nq, ctrl_page, ctrl_unpage, NULL, &refused,
                                          why, sizeof(why)),
                         5);
        ck_assert_uint_eq(refused, 0);
        for (unsigned int i = 0; i < 128; i++)
            ck_assert_uint_eq(h.mapping[i], i % nq);
        bhring_back_push(&r);
        guest_turn(f);
        ck_assert_uint_eq(bhnetfront_get_stats(f->nf)->ctrl_done, 5);
        bhevtchn_unbind(did.ev, (uint32_t)port);
        bhgnttab_unmap(did.gt, sh, 1);
    }

    want_slots = (unsigned int)((len + PG - 1) / PG);
    last = len - (size_t)(want_slots - 1) * PG;
    for (unsigned int q = 0; q < nq; q++) {
        struct virtio_net_hdr h = {0};

        /* A plain frame of the row's size. */
        tcp_frame(fr, len, false);
        tap_send(f, q, &h, fr, len);
        if (want_slots > 1 && !sg) {
            ck_assert_uint_eq(fake_tx(f, q), 0);
            ck_assert_uint_eq(bhnetfront_get_stats(f->nf)->tx_dropped, ++dropped);
        } else {
            ck_assert_uint_eq(fake_tx(f, q), want_slots);
            ck_assert_uint_eq(f->flen, len);
            ck_assert_mem_eq(f->frame, fr, len);
            if (!row[N_TRUST])
                for (size_t i = last; i < PG; i++)
                    ck_assert_uint_eq(f->tail[i], 0);
        }
        /* A TCPv4 GSO frame: with its extra where offered, dropped where not. */
        tcp_frame(fr, 6000, false);
        h = (struct virtio_net_hdr){.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 34,
                                    .csum_offset = 16, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
                                    .gso_size = 1448, .hdr_len = 54};
        tap_send(f, q, &h, fr, 6000);
        if (g4) {
            ck_assert_uint_eq(fake_tx(f, q), 2);
            ck_assert(f->has_gso);
            ck_assert_uint_eq(f->gso.u.gso.type, XEN_NETIF_GSO_TYPE_TCPV4);
        } else {
            ck_assert_uint_eq(fake_tx(f, q), 0);
            ck_assert_uint_eq(bhnetfront_get_stats(f->nf)->tx_dropped, ++dropped);
        }
        /* An IPv6 TCP frame with its checksum to fill: left to the backend only if offered. */
        tcp_frame(fr, 200, true);
        h = (struct virtio_net_hdr){.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .csum_start = 54,
                                    .csum_offset = 16};
        tap_send(f, q, &h, fr, 200);
        ck_assert_uint_eq(fake_tx(f, q), 1);
        ck_assert_int_eq((f->slot[0].flags & NETTXF_csum_blank) != 0, row[N_CSUM6]);
        ck_assert_uint_ne(f->slot[0].flags & NETTXF_data_validated, 0);
        /* In: a frame of the row's size on this queue's RX ring comes out of its TAP queue. */
        tcp_frame(fr, len, false);
        ck_assert_uint_eq(fake_rx(f, q, fr, len, 0, 0, 0), want_slots);
        guest_turn(f);
        ck_assert_int_eq(tap_recv(f, q, &h, got), (ssize_t)len);
        ck_assert_mem_eq(got, fr, len);
    }
    guest_turn(f);
    ck_assert_str_eq(f->broken, "");
    ck_assert(!bhnetfront_broken(f->nf));
}
END_TEST

/* No feature-rx-copy: no connection, whatever else is offered, and the reason says so. */
START_TEST(test_no_rx_copy)
{
    static const unsigned char all[NNFACTORS] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    struct fake *f = &fk[0];
    struct bhnetfront_cfg cfg = {0};
    int tap[2];
    char why[256];

    cur_row = _i ? all : npairwise[1];
    f->dev = (struct bhxb_dev){"vif", NULL, guest.domid, drv.domid, 0};
    ck_assert_ptr_nonnull(f->lay = hst_layout(sim.xs, &f->dev));
    ck_assert_int_eq(hst_back_init(&f->end, &did, HST_NETIF, &f->dev), 0);
    ck_assert_int_eq(hst_back_publish(&f->end), 0);
    offer_row(f);
    ck_assert_int_eq(hst_rm(&f->end, "feature-rx-copy"), 0);
    for (unsigned int q = 0; q < 2; q++) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, f->sp[q]), 0);
        tap[q] = f->sp[q][0];
    }
    cfg = (struct bhnetfront_cfg){.xs = gid.xs, .gntshr = gid.gs, .evtchn = gid.ev,
                                  .dir = f->end.peer_dir, .backend = f->end.dir,
                                  .backend_domid = drv.domid, .tap = tap, .ntap = 2,
                                  .hdrsz = HDRSZ, .broken = on_broken, .arg = f};
    ck_assert_ptr_nonnull(f->nf = bhnetfront_new(&cfg));
    ck_assert_msg(bhnetfront_publish(f->nf, why, sizeof(why)) == 0, "%s", why);
    ck_assert_int_eq(bhnetfront_connect(f->nf, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, "feature-rx-copy") != NULL, "%s", why);
}
END_TEST

/* A new connection after a lie starts clean: new rings, frames move again. */
START_TEST(test_reconnect_after_lie)
{
    struct virtio_net_hdr h = {0};
    struct netif_rx_request req;
    struct netif_rx_response r;
    char why[256];

    attach(&fk[0], 0, BASIC, 1, -1);
    fake_events();
    ck_assert_int_eq(bhring_back_get(&fk[0].q[0].rx, &req), 1);
    r = (struct netif_rx_response){.id = (uint16_t)(req.id + 1), .status = 60};
    bhring_back_put(&fk[0].q[0].rx, &r);
    bhring_back_push(&fk[0].q[0].rx);
    guest_turn(&fk[0]);
    ck_assert(bhnetfront_broken(fk[0].nf));
    fake_close(&fk[0]);
    ck_assert_msg(bhnetfront_publish(fk[0].nf, why, sizeof(why)) == 0, "%s", why);
    fake_connect(&fk[0]);
    ck_assert_msg(bhnetfront_connect(fk[0].nf, why, sizeof(why)) == 0, "%s", why);
    ck_assert(!bhnetfront_broken(fk[0].nf));
    tcp_frame(fr, 70, false);
    fake_rx(&fk[0], 0, fr, 70, 0, 0, 0);
    guest_turn(&fk[0]);
    ck_assert_int_eq(tap_recv(&fk[0], 0, &h, got), 70);
    ck_assert_mem_eq(got, fr, 70);
}
END_TEST

/*
 * A kernel TAP made as the broker makes eth<devid> (IFF_VNET_HDR, a
 * 12-byte header, CSUM and TSO offloads), in a network namespace of this
 * test's own: the kernel takes the GSO frame the frontend writes (it
 * refuses a virtio_net_hdr that does not describe the frame), and a frame
 * sent on the interface reaches the TX ring.
 */
START_TEST(test_kernel_tap)
{
    struct ifreq ifr;
    struct sockaddr_ll ll;
    int hdr = HDRSZ, s, pk;
    bool seen = false;

    ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
    real_tap = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    ck_assert_msg(real_tap >= 0, "/dev/net/tun: %s", strerror(errno));
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
    ck_assert_int_eq(ioctl(real_tap, TUNSETIFF, &ifr), 0);
    ck_assert_int_eq(ioctl(real_tap, TUNSETVNETHDRSZ, &hdr), 0);
    s = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    ck_assert_int_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
    ck_assert_int_eq(ioctl(s, SIOCGIFINDEX, &ifr), 0);
    close(s);
    attach(&fk[0], 0, FULL, 1, -1);
    /* TSO only as the backend offers it: the frontend's user sets it from the info (fe_vif.c). */
    ck_assert_int_eq(ioctl(real_tap, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6), 0);

    /* RX: a GSO frame over three slots, written to the kernel whole. */
    tcp_frame(fr, 9000, false);
    fr[14 + 2] = (uint8_t)((9000 - 14) >> 8); /* the IPv4 total length */
    fr[14 + 3] = (uint8_t)(9000 - 14);
    fake_rx(&fk[0], 0, fr, 9000, NETRXF_csum_blank | NETRXF_data_validated,
            XEN_NETIF_GSO_TYPE_TCPV4, 1400);
    guest_turn(&fk[0]);
    ck_assert_uint_eq(bhnetfront_get_stats(fk[0].nf)->rx_dropped, 0);
    ck_assert_uint_eq(bhnetfront_get_stats(fk[0].nf)->rx_frames, 1);

    /* TX: a frame sent on eth0 through a packet socket, on the ring (the kernel may send its own too). */
    pk = socket(AF_PACKET, SOCK_RAW, 0);
    ck_assert_int_ge(pk, 0);
    memset(&ll, 0, sizeof(ll));
    ll.sll_family = AF_PACKET;
    ll.sll_ifindex = ifr.ifr_ifindex;
    ll.sll_halen = 6;
    memset(fr, 0, 200);
    memcpy(fr, "\x00\x16\x3e\x00\x00\x09\x00\x16\x3e\x00\x00\x08\x88\xb5", 14);
    for (unsigned int i = 14; i < 200; i++)
        fr[i] = (uint8_t)i;
    ck_assert_int_eq(sendto(pk, fr, 200, 0, (struct sockaddr *)&ll, sizeof(ll)), 200);
    close(pk);
    for (int i = 0; i < 64 && !seen; i++) {
        bhnetfront_tap_ready(fk[0].nf, 0);
        while (!seen && fake_tx(&fk[0], 0) > 0)
            seen = fk[0].flen == 200 && memcmp(fk[0].frame, fr, 200) == 0;
        guest_turn(&fk[0]);
    }
    ck_assert(seen);
    close(real_tap);
    real_tap = -1;
}
END_TEST

/*
 * bulkhead-guest itself in the guest domain, two vifs served by this test
 * (no TAP registered: the runtime stands a socket pair in).  A lying RX
 * response on vif 0 fails vif 0 (error node naming the lie, Closing); vif 1
 * stays Connected and the runtime lives.
 */
START_TEST(test_guest_runtime_lie)
{
    struct hst_end be[2];
    struct bhxb_layout *lay[2];
    char bin[512], why[512], err[512];
    char *argv[] = {bin, NULL};
    struct netif_rx_response lie = {.id = 77, .status = 60};
    pid_t pid;
    int status;

    snprintf(bin, sizeof(bin), "%s/frontend/common/bulkhead-guest", test_builddir());
    for (unsigned int i = 0; i < 2; i++) {
        struct bhxb_dev d = {"vif", NULL, guest.domid, drv.domid, i};

        lay[i] = hst_layout(sim.xs, &d);
        ck_assert_ptr_nonnull(lay[i]);
        ck_assert_int_eq(hst_back_init(&be[i], &did, HST_NETIF, &d), 0);
        ck_assert_int_eq(hst_back_publish(&be[i]), 0);
        ck_assert_int_eq(hst_state(&be[i], XenbusStateInitWait), 0);
    }
    pid = hst_sim_spawn(&guest, argv, -1);
    ck_assert_int_gt(pid, 0);
    for (unsigned int i = 0; i < 2; i++) {
        ck_assert_msg(hst_wait(sim.xs, be[i].peer_dir, HST_STATE(XenbusStateInitialised), true,
                               HST_TIMEOUT_MS, why, sizeof(why)) == XenbusStateInitialised,
                      "%s", why);
        ck_assert_msg(hst_back_connect(&be[i]) == 0, "%s", be[i].why);
        ck_assert_int_eq(hst_state(&be[i], XenbusStateConnected), 0);
        ck_assert_msg(hst_wait(sim.xs, be[i].peer_dir, HST_STATE(XenbusStateConnected), true,
                               HST_TIMEOUT_MS, why, sizeof(why)) == XenbusStateConnected,
                      "%s", why);
    }
    /* The guest posted its RX buffers: slot 0 holds id 0, answered as 77. */
    ck_assert_int_eq(hst_produce(&be[0], 1, &lie, sizeof(lie), 1, true), 0);
    ck_assert_msg(hst_wait(sim.xs, be[0].peer_dir, 0, true, HST_TIMEOUT_MS, why, sizeof(why)) ==
                      HST_ERROR,
                  "%s", why);
    ck_assert_int_eq(hst_read_error(sim.xs, be[0].peer_dir, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "names id 77") != NULL, "%s", err);
    ck_assert_msg(hst_wait(sim.xs, be[0].peer_dir, HST_STATE(XenbusStateClosing), false,
                           HST_TIMEOUT_MS, why, sizeof(why)) == XenbusStateClosing,
                  "%s", why);
    ck_assert_int_eq(hst_read_state(sim.xs, be[1].peer_dir), XenbusStateConnected);
    ck_assert_int_eq(hst_read_error(sim.xs, be[1].peer_dir, err, sizeof(err)), -1);
    ck_assert_int_eq(waitpid(pid, &status, WNOHANG), 0);
    for (unsigned int i = 0; i < 2; i++) {
        hst_end_close(&be[i]);
        bhxb_layout_free(lay[i]);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("netfront");
    TCase *tc = tcase_create("netfront");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_basic_backend);
    tcase_add_test(tc, test_full_backend_multiqueue);
    tcase_add_test(tc, test_tx_gso);
    tcase_add_test(tc, test_rx_gso);
    tcase_add_loop_test(tc, test_lies_break_only_the_vif, 0, LIES);
    tcase_add_test(tc, test_reconnect_after_lie);
    tcase_add_test(tc, test_ctrl_ring);
    tcase_add_test(tc, test_no_ctrl_ring);
    tcase_add_test(tc, test_pairwise_table_covers_every_pair);
    tcase_add_loop_test(tc, test_pairwise_handshake, 0, NNROWS);
    tcase_add_loop_test(tc, test_no_rx_copy, 0, 2);
    tcase_add_test(tc, test_guest_runtime_lie);
    if (access("/dev/net/tun", R_OK | W_OK) == 0)
        tcase_add_test(tc, test_kernel_tap);
    else
        fprintf(stderr, "check_netfront: no /dev/net/tun: the kernel TAP test is skipped\n");
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    if (geteuid() != 0) {
        fprintf(stderr, "check_netfront: the simulation needs root: skipped\n");
        return 77;
    }
    sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
