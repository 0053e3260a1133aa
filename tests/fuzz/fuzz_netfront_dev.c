/*
 * fuzz_netfront_dev.c - libbhnetfront's device (frontend/net/netfront.c and
 * rsp.c, compiled in) under a hostile backend and whatever its TAP holds.
 *
 * The platform and the store are plain memory here (granted pages are
 * malloc'd, the backend's offer comes from the input), the TAP a socket
 * pair.  Input: a configuration byte (sg, GSO, split event channels, two
 * queues, trusted, a control ring), then a script of steps: a frame with
 * any virtio_net_hdr into a TAP queue; a raw TX or RX response (its id
 * near the request's or not, any status, offset, flags; an extra-info
 * slot) at rsp_prod; a control response (its id the next one or not, any
 * type, status and data) then a kick; rsp_prod moved anywhere; a kick; a
 * reconnect; the TAP drained.
 * Invariants: no access outside what was allocated (ASan), a frame on the
 * TAP is never longer than the slots allowed, a broken device takes
 * nothing from its TAP, the process lives.
 */
#include <errno.h>
#include <linux/virtio_net.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bhnetfront.h"
#include "bhxenbus.h"
#include "fuzz.h"

#define PAGE  4096u
#define HDRSZ 12u
#define ENTS  256u

/* ---- the platform and the store, in memory ---- */

static uint8_t cfg;
static uint32_t next_ref = 1;
static int next_port = 1;
/* one-page shares in order: tx, rx of each queue, then the control ring */
static void *rings[2 * BHNETFRONT_MAX_QUEUES + 1];
static unsigned int nrings;

void *bhgntshr_share_pages(bhgntshr_handle *h, uint32_t domid, int count, bh_grant_ref_t *refs,
                           int writable)
{
    void *p = aligned_alloc(PAGE, (size_t)count * PAGE);

    (void)h, (void)domid, (void)writable;
    if (p == NULL)
        return NULL;
    memset(p, 0, (size_t)count * PAGE);
    for (int i = 0; i < count; i++)
        refs[i] = next_ref++;
    if (count == 1 && nrings < 2 * BHNETFRONT_MAX_QUEUES + 1)
        rings[nrings++] = p;
    return p;
}

int bhgntshr_unshare(bhgntshr_handle *h, void *start, uint32_t count)
{
    (void)h, (void)count;
    for (unsigned int i = 0; i < nrings; i++)
        if (rings[i] == start)
            rings[i] = NULL;
    free(start);
    return 0;
}

bh_evtchn_port_or_error_t bhevtchn_bind_unbound_port(bhevtchn_handle *h, uint32_t domid)
{
    (void)h, (void)domid;
    return next_port++;
}

int bhevtchn_unbind(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    (void)h, (void)port;
    return 0;
}

int bhevtchn_notify(bhevtchn_handle *h, bh_evtchn_port_t port)
{
    (void)h, (void)port;
    return 0;
}

bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path)
{
    (void)h, (void)t, (void)path;
    return true;
}

int bhxb_write_keys(struct xs_handle *xs, const char *dir, const struct bhxb_key *keys, size_t n)
{
    (void)xs, (void)dir, (void)keys, (void)n;
    return 0;
}

int bhxb_read_keys(struct xs_handle *xs, const char *dir, const struct bhxb_key *keys, size_t n,
                   const char **bad)
{
    (void)xs, (void)dir, (void)bad;
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[i].name;
        unsigned long v = 0;

        if (strcmp(k, "feature-sg") == 0)
            v = cfg & 1;
        else if (strcmp(k, "feature-gso-tcpv4") == 0 || strcmp(k, "feature-gso-tcpv6") == 0)
            v = (cfg >> 1) & 1;
        else if (strcmp(k, "feature-split-event-channels") == 0)
            v = (cfg >> 2) & 1;
        else if (strcmp(k, "multi-queue-max-queues") == 0)
            v = (cfg >> 3) & 1 ? 2 : 1;
        else if (strcmp(k, "trusted") == 0)
            v = (cfg >> 4) & 1;
        else if (strcmp(k, "feature-ctrl-ring") == 0)
            v = (cfg >> 5) & 1;
        else if (strcmp(k, "feature-rx-copy") == 0 || strcmp(k, "feature-ipv6-csum-offload") == 0)
            v = 1;
        else
            continue;
        if (keys[i].type == BHXB_BOOL)
            *(bool *)keys[i].ptr = v != 0;
        else if (keys[i].type == BHXB_UINT)
            *(unsigned int *)keys[i].ptr = (unsigned int)v;
    }
    return 0;
}

/* ---- the backend, raw ---- */

static volatile uint32_t *idx(void *ring, unsigned int off)
{
    return (volatile uint32_t *)((uint8_t *)ring + off);
}

static uint8_t *slot(void *ring, uint32_t i, size_t ent)
{
    return (uint8_t *)ring + 64 + (size_t)(i % ENTS) * ent;
}

static int reconnect(bhnetfront *n)
{
    char why[256];

    nrings = 0;
    if (bhnetfront_publish(n, why, sizeof(why)) != 0)
        return -1;
    return bhnetfront_connect(n, why, sizeof(why));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[HDRSZ + 70000];
    struct fuzz_in in = {data, size};
    static char dummy;
    int sp[2][2] = {{-1, -1}, {-1, -1}}, tap[2];
    struct bhnetfront_cfg c = {.xs = (struct xs_handle *)&dummy,
                               .gntshr = (bhgntshr_handle *)&dummy,
                               .evtchn = (bhevtchn_handle *)&dummy,
                               .dir = "/fe",
                               .backend = "/be",
                               .backend_domid = 1,
                               .hdrsz = HDRSZ};
    bhnetfront *n = NULL;
    unsigned int steps = 0;

    cfg = fuzz_u8(&in);
    for (int q = 0; q < 2; q++) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sp[q]) != 0)
            goto out;
        tap[q] = sp[q][0];
    }
    c.tap = tap;
    c.ntap = 2;
    if ((n = bhnetfront_new(&c)) == NULL || reconnect(n) != 0)
        goto out;
    while (in.n > 0 && steps++ < 512) {
        uint8_t op = fuzz_u8(&in);
        unsigned int q = (op >> 4) & 1, nq = bhnetfront_queues(n);
        void *tx, *rx;

        q = nq > 0 ? q % nq : 0;
        tx = rings[2 * q];
        rx = rings[2 * q + 1];
        switch (op & 7) {
        case 0: { /* a frame from the guest's stack */
            struct virtio_net_hdr h = {0};
            size_t len = ((size_t)fuzz_u8(&in) << 8 | fuzz_u8(&in)) % 20000;

            h.flags = fuzz_u8(&in);
            h.gso_type = fuzz_u8(&in);
            h.gso_size = (uint16_t)(fuzz_u8(&in) << 8 | fuzz_u8(&in));
            h.csum_start = (uint16_t)(fuzz_u8(&in) << 4);
            h.csum_offset = fuzz_u8(&in);
            memset(buf, 0, HDRSZ);
            memcpy(buf, &h, sizeof(h));
            for (size_t i = 0; i < len; i++)
                buf[HDRSZ + i] = (uint8_t)(i * 7);
            if (write(sp[q][1], buf, HDRSZ + len) < 0)
                break;
            bhnetfront_tap_ready(n, q);
            break;
        }
        case 1: { /* a TX response at rsp_prod, for the request there or not */
            struct netif_tx_request r;
            struct netif_tx_response rsp;
            uint32_t p;

            if (tx == NULL)
                break;
            p = *idx(tx, 8);
            memcpy(&r, slot(tx, p, 12), sizeof(r));
            rsp.id = r.id ^ (uint16_t)(fuzz_u8(&in) & 0x81);
            rsp.status = (int16_t)((int8_t)fuzz_u8(&in) % 3);
            memcpy(slot(tx, p, 12), &rsp, sizeof(rsp));
            *idx(tx, 8) = p + 1;
            break;
        }
        case 2: { /* an RX response at rsp_prod: data with any fields, or an extra */
            struct netif_rx_request r;
            struct netif_rx_response rsp;
            uint32_t p;

            if (rx == NULL)
                break;
            p = *idx(rx, 8);
            memcpy(&r, slot(rx, p, 8), sizeof(r));
            if (op & 8) {
                uint8_t raw[8];

                for (int i = 0; i < 8; i++)
                    raw[i] = fuzz_u8(&in);
                memcpy(slot(rx, p, 8), raw, 8);
            } else {
                rsp.id = r.id ^ (uint16_t)(fuzz_u8(&in) & 0x41);
                rsp.offset = (uint16_t)(fuzz_u8(&in) << 5);
                rsp.flags = fuzz_u8(&in) & 0x3f;
                rsp.status = (int16_t)(fuzz_u8(&in) << 5 | fuzz_u8(&in));
                memcpy(slot(rx, p, 8), &rsp, sizeof(rsp));
            }
            *idx(rx, 8) = p + 1;
            break;
        }
        case 3: /* rsp_prod anywhere */
            if (tx != NULL && rx != NULL)
                *idx(op & 8 ? rx : tx, 8) += fuzz_u8(&in) * (op & 0x20 ? 3u : 1u);
            break;
        case 4:
            bhnetfront_kick(n);
            break;
        case 5: { /* a control response at rsp_prod (ours are ids 1, 2, ... in order), a kick */
            void *cr = (cfg & 0x20) && nq > 0 ? rings[2 * nq] : NULL;
            struct xen_netif_ctrl_response rsp;
            uint32_t p;

            if (cr != NULL) {
                p = *idx(cr, 8);
                rsp.id = (uint16_t)((p + 1) ^ (fuzz_u8(&in) & 0x83u));
                rsp.type = fuzz_u8(&in);
                rsp.status = fuzz_u8(&in) % 5;
                rsp.data = fuzz_u32(&in);
                memcpy((uint8_t *)cr + 64 + (size_t)(p % 128) * 16, &rsp, sizeof(rsp));
                *idx(cr, 8) = p + 1;
            }
            bhnetfront_kick(n);
            break;
        }
        case 6:
            if (reconnect(n) != 0)
                goto out;
            break;
        default: /* the guest's stack reads eth */
            for (;;) {
                ssize_t r = read(sp[q][1], buf, sizeof(buf));

                if (r < 0)
                    break;
                FUZZ_ASSERT((size_t)r >= HDRSZ &&
                            (size_t)r <= HDRSZ + XEN_NETIF_NR_SLOTS_MIN * PAGE);
            }
            break;
        }
        if (bhnetfront_broken(n))
            for (unsigned int i = 0; i < bhnetfront_queues(n); i++)
                FUZZ_ASSERT(!bhnetfront_tx_room(n, i));
    }
out:
    bhnetfront_free(n);
    for (int q = 0; q < 2; q++)
        if (sp[q][0] >= 0) {
            close(sp[q][0]);
            close(sp[q][1]);
        }
    nrings = 0;
    return 0;
}
