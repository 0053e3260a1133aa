/*
 * engine.c - netback's data path for one queue: TX chains from the ring to
 * the TAP, frames from the TAP into the RX ring's buffers.  Every request is
 * copied once (libbhring) and validated (tx.c, rx.c) before it is acted on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bhnetback.h"

#define BUDGET 64u /* chains or frames per ring per bhnet_run: the other ring gets its turn */

/* Linux's XENVIF_RX_QUEUE_BYTES is half an RX ring of pages; ours, in frames and bytes. */
#define BACKLOG_FRAMES 128
#define BACKLOG_BYTES  (128u * 4096u)

struct backlog_ent {
    struct bhnet_rxmeta m;
    uint8_t frame[];
};

struct bhnet {
    struct bhnet_opts o;
    struct bhring tx, rx;
    struct bhnet_kept *k; /* o.kept, or own */
    struct bhnet_kept own;
    bool broken;
    char why[200];
    /* RX: one frame held while buffers are short (the requests taken for it are in k). */
    bool have_frame;
    struct bhnet_rxmeta m;
    const uint8_t *frame;
    uint64_t short_since; /* ns: when the held frame first found too few buffers; 0: not */
    bool stalled;         /* XSA-392: frames from the TAP are dropped until buffers come */
    /*
     * Frames other queues steered here while this one's buffers were short
     * (Linux's per-queue rx_queue): served, in order, before the TAP is
     * read again; bounded by BACKLOG_FRAMES and BACKLOG_BYTES.  The frame
     * held (have_frame) may be the head's: from_backlog says so.
     */
    struct backlog_ent *backlog[BACKLOG_FRAMES];
    unsigned int bl_head, bl_n;
    size_t bl_bytes;
    bool from_backlog;
    /* The frame held lies in the RX requests' pages (BHNET_RX_PLACE), not in rxbuf. */
    bool placed;
    /*
     * The last frame read went to another queue: the next, likely of the
     * same flow, is read into rxbuf (placed, it would be gathered first).
     */
    bool steered_away;
    /* TX credit (rate=), as Linux's netback: a window of credit_usec refills credit_bytes. */
    int64_t credit;       /* bytes left in this window; may go below 0 by one frame */
    uint64_t window;      /* ns: when this window started */
    bool throttled;
    _Alignas(16) uint8_t txbuf[12 + BHNET_FRAME_MAX]; /* a virtio_net_hdr is written at the start */
    _Alignas(16) uint8_t rxbuf[12 + BHNET_FRAME_MAX];
};

static uint64_t now_ns(void);

struct bhnet *bhnet_open(const struct bhnet_opts *o, char *why, size_t whylen)
{
    struct bhnet *n;

    if (o->page == NULL || o->fd < 0 || (o->hdrsz != 10 && o->hdrsz != 12)) {
        snprintf(why, whylen, "netback engine: a page function, a TAP fd and a 10- or 12-byte vnet header are needed");
        errno = EINVAL;
        return NULL;
    }
    if ((n = calloc(1, sizeof(*n))) == NULL) {
        snprintf(why, whylen, "netback engine: out of memory");
        return NULL;
    }
    n->o = *o;
    n->k = o->kept != NULL ? o->kept : &n->own;
    if (bhring_attach(&n->tx, &bhring_netif_tx, BHRING_BACK, o->tx_ring, o->tx_order, 0, false) != 0 ||
        bhring_attach(&n->rx, &bhring_netif_rx, BHRING_BACK, o->rx_ring, o->rx_order, 0, false) != 0) {
        snprintf(why, whylen, "netback engine: rings not attachable (unaligned or order > 4)");
        free(n);
        errno = EINVAL;
        return NULL;
    }
    if (!n->k->valid) {
        memset(n->k, 0, sizeof(*n->k));
        n->k->valid = 1;
    } else if (n->k->txq.n > BHNET_TX_MAX_REQS || n->k->nreq > BHNET_RX_MAX_REQS ||
               n->k->nmcast > BHNET_MCAST_MAX || bhring_restore(&n->tx, &n->k->tx) != 0 ||
               bhring_restore(&n->rx, &n->k->rx) != 0) {
        snprintf(why, whylen, "netback engine: the kept state is not a ring's");
        free(n);
        errno = EINVAL;
        return NULL;
    }
    n->credit = (int64_t)o->credit_bytes;
    n->window = now_ns(); /* the first window starts now, full (Linux's credit_window_start) */
    return n;
}

static uint64_t now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Both rings' private indices into the kept state: after every chain and frame. */
static void save(struct bhnet *n)
{
    bhring_save(&n->tx, &n->k->tx);
    bhring_save(&n->rx, &n->k->rx);
}

/* RX: a frame waits for buffers (held, or steered here): their posting must wake us. */
static bool rx_waits(const struct bhnet *n)
{
    return n->have_frame || n->bl_n > 0;
}

bool bhnet_wants_fd(const struct bhnet *n)
{
    return (!n->have_frame && n->bl_n == 0) || n->stalled;
}

/* The backlog's head is done with (delivered or dropped). */
static void backlog_pop(struct bhnet *n)
{
    struct backlog_ent *e = n->backlog[n->bl_head];

    n->bl_bytes -= e->m.len;
    free(e);
    n->backlog[n->bl_head] = NULL;
    n->bl_head = (n->bl_head + 1) % BACKLOG_FRAMES;
    n->bl_n--;
    n->from_backlog = false;
}

/* The frame held is gone (delivered or dropped): a backlog one is freed. */
static void frame_done(struct bhnet *n)
{
    n->have_frame = false;
    n->placed = false;
    if (n->from_backlog)
        backlog_pop(n);
}

/* A steered frame kept for later: false (dropped) when the backlog is full. */
static bool backlog_push(struct bhnet *n, const struct bhnet_rxmeta *m, const uint8_t *frame)
{
    struct backlog_ent *e;

    if (n->bl_n == BACKLOG_FRAMES || n->bl_bytes + m->len > BACKLOG_BYTES ||
        (e = malloc(sizeof(*e) + m->len)) == NULL)
        return false;
    e->m = *m;
    memcpy(e->frame, frame, m->len);
    n->backlog[(n->bl_head + n->bl_n) % BACKLOG_FRAMES] = e;
    n->bl_n++;
    n->bl_bytes += m->len;
    if (n->short_since == 0)
        n->short_since = now_ns(); /* the stall clock runs for it as for a held frame */
    return true;
}

uint64_t bhnet_wait_usec(const struct bhnet *n)
{
    uint64_t t = now_ns(), w = 0, end;

    if (n->throttled) {
        end = n->window + (uint64_t)n->o.credit_usec * 1000u;
        w = end > t ? (end - t + 999) / 1000 : 1;
    }
    if ((n->have_frame || n->bl_n > 0) && !n->stalled && n->short_since != 0 &&
        n->o.rx_stall_ms > 0) {
        uint64_t s;

        end = n->short_since + (uint64_t)n->o.rx_stall_ms * 1000000u;
        s = end > t ? (end - t + 999) / 1000 : 1;
        if (w == 0 || s < w)
            w = s;
    }
    return w;
}

/*
 * TX credit (Linux's tx_credit_exceeded): a frame goes while credit is
 * left, and takes its length off (a frame larger than what is left still
 * goes, putting the window in debt: no frame is ever too large to send);
 * a new window tops credit up by credit_bytes, to at most credit_bytes.
 * false: wait for the next window (bhnet_wait_usec says when).
 */
static bool tx_credit_ok(struct bhnet *n)
{
    uint64_t t;

    if (n->o.credit_bytes == 0 || n->o.credit_usec == 0 || n->credit > 0)
        return true;
    t = now_ns();
    if (t - n->window >= (uint64_t)n->o.credit_usec * 1000u) {
        n->window = t;
        n->credit += (int64_t)n->o.credit_bytes;
        if (n->credit > (int64_t)n->o.credit_bytes)
            n->credit = (int64_t)n->o.credit_bytes;
    }
    if (n->credit > 0) {
        n->throttled = false;
        return true;
    }
    if (!n->throttled)
        n->k->st.tx_throttled++;
    n->throttled = true;
    return false;
}

void bhnet_close(struct bhnet *n)
{
    if (n == NULL)
        return;
    while (n->bl_n > 0)
        backlog_pop(n);
    free(n);
}

const struct bhnet_stats *bhnet_get_stats(const struct bhnet *n)
{
    return &n->k->st;
}

void bhnet_set_mcast(struct bhnet *n, bool on)
{
    n->o.tx.mcast = on;
}

bool bhnet_mcast_has(const struct bhnet *n, const uint8_t addr[6])
{
    for (unsigned int i = 0; i < n->k->nmcast; i++)
        if (memcmp(n->k->mcast[i], addr, 6) == 0)
            return true;
    return false;
}

static int16_t mcast_apply(struct bhnet *n, const struct bhnet_txpkt *pkt)
{
    unsigned int i;

    for (i = 0; i < n->k->nmcast && memcmp(n->k->mcast[i], pkt->mcast, 6) != 0; i++)
        ;
    if (pkt->kind == BHNET_TX_MCAST_DEL) {
        if (i < n->k->nmcast)
            memcpy(n->k->mcast[i], n->k->mcast[--n->k->nmcast], 6);
        return NETIF_RSP_OKAY;
    }
    if (i < n->k->nmcast)
        return NETIF_RSP_OKAY;
    if (n->k->nmcast == BHNET_MCAST_MAX)
        return NETIF_RSP_ERROR;
    memcpy(n->k->mcast[n->k->nmcast++], pkt->mcast, 6);
    return NETIF_RSP_OKAY;
}

static int fail(struct bhnet *n, struct bhring *r, const char *msg, char *why, size_t whylen)
{
    if (!bhring_broken(r))
        bhring_break(r, "%s", msg);
    n->broken = true;
    snprintf(n->why, sizeof(n->why), "%s", bhring_error(r));
    snprintf(why, whylen, "%s", n->why);
    return -1;
}

/* One TX chain: 1 done, 0 nothing more for now, -1 a lie. */
static int tx_one(struct bhnet *n, char *why, size_t whylen)
{
    struct netif_tx_response rsp[BHNET_TX_MAX_REQS];
    struct bhnet_txpkt pkt;
    char msg[200] = "";
    int16_t status = NETIF_RSP_OKAY;
    unsigned int nr;
    bool filtered = false;
    int r;

    /* Out of credit: the chain stays on the ring (a partial one in k->txq). */
    if (!tx_credit_ok(n))
        return 0;
    switch (bhnet_tx_take(&n->tx, &n->o.tx, &n->k->txq, &pkt, msg, sizeof(msg))) {
    case BHNET_MORE:
        return 0;
    case BHNET_LIE:
        return fail(n, &n->tx, msg, why, whylen);
    case BHNET_DROP:
        status = NETIF_RSP_ERROR;
        break;
    case BHNET_GO:
        if (pkt.kind != BHNET_TX_PACKET)
            status = mcast_apply(n, &pkt);
        /* A frame the TAP cannot take now (EAGAIN) or at all is dropped
         * and answered as such: the frontend's slots are never held. */
        else if ((r = bhnet_tx_to_fd_kept(n->o.fd, n->o.hdrsz, &pkt, n->o.page, n->o.epoch,
                                          n->o.ctx, n->o.filter, n->txbuf, msg, sizeof(msg))) == 2)
            filtered = true; /* answered OKAY, counted apart: not sent */
        else if (r != 0)
            status = NETIF_RSP_ERROR;
        break;
    }
    if (pkt.kind == BHNET_TX_PACKET && n->o.credit_bytes != 0)
        n->credit -= (int64_t)pkt.len;
    if (pkt.kind == BHNET_TX_PACKET) {
        if (filtered)
            n->k->st.tx_filtered++;
        else if (status == NETIF_RSP_OKAY)
            n->k->st.tx_packets++;
        else
            n->k->st.tx_dropped++;
    }
    nr = bhnet_tx_responses(&pkt, status, rsp);
    for (unsigned int i = 0; i < nr; i++)
        if (bhring_back_put(&n->tx, &rsp[i]) != 0)
            return fail(n, &n->tx, "TX response without a request (engine bug)", why, whylen);
    save(n);
    return 1;
}

static void rx_answer(struct bhnet *n, const struct netif_rx_response *rsp, unsigned int used)
{
    for (unsigned int i = 0; i < used; i++)
        bhring_back_put(&n->rx, &rsp[i]); /* each answers a request we hold: cannot fail */
    n->k->nreq -= used;
    memmove(n->k->req, n->k->req + used, n->k->nreq * sizeof(n->k->req[0]));
    save(n);
}

/*
 * The held frame found too few RX buffers.  Holding it (and reading no
 * more) leaves later frames in the kernel's TAP queue, bounded.  After
 * rx_stall_ms with no buffers the queue is stalled, as Linux's
 * rx_stall_timeout turns the carrier off: the frame is dropped and so is
 * every frame read while buffers stay short, so that neither we nor the
 * kernel queue hold a frontend's traffic for it (XSA-392).  The first
 * buffer posted ends the stall.
 */
static int rx_short(struct bhnet *n)
{
    uint64_t t = now_ns();

    if (n->short_since == 0)
        n->short_since = t;
    if (!n->stalled && n->o.rx_stall_ms > 0 &&
        t - n->short_since >= (uint64_t)n->o.rx_stall_ms * 1000000u) {
        n->stalled = true;
        n->k->st.rx_stalls++;
    }
    if (!n->stalled)
        return 0; /* no buffers: hold this frame, read no more */
    frame_done(n);
    n->k->st.rx_dropped++;
    return 1;
}

/* Responses become the frontend's at the push: the data pages are unmapped first (unpage). */
static int push(struct bhnet *n, struct bhring *r)
{
    if (n->o.unpage != NULL)
        n->o.unpage(n->o.ctx);
    return bhring_back_push(r);
}

/*
 * Reads a frame from the TAP straight into the frontend's buffers: with
 * kept pages (epoch) and BHNET_RX_MAX_REQS requests held - enough for any
 * frame - each data chunk goes to the page BHNET_RX_PLACE gives it, read
 * in one readv; bhnet_rx_deliver_placed moves what its layout puts
 * elsewhere.  Returns as bhnet_rx_from_fd (n->frame: the first chunk, the
 * headers), 3 when it cannot (too few buffers posted, a page that does
 * not map, an eviction): read into rxbuf instead; -2 with msg for a lie
 * met taking the requests.
 */
static int rx_read_placed(struct bhnet *n, char *msg, size_t msglen)
{
    struct iovec iov[2 + BHNET_RX_MAX_DATA];
    uint64_t e;
    ssize_t r;
    int g;

    if (n->o.epoch == NULL)
        return 3;
    while (n->k->nreq < BHNET_RX_MAX_REQS) {
        if ((g = bhring_back_get(&n->rx, &n->k->req[n->k->nreq])) < 0) {
            snprintf(msg, msglen, "%s", bhring_error(&n->rx));
            return -2;
        }
        if (g == 0)
            return 3;
        if (bhnet_rx_check_req(&n->k->req[n->k->nreq], &n->o.rx, msg, msglen) != BHNET_GO)
            return -2;
        n->k->nreq++;
        save(n);
    }
    e = n->o.epoch(n->o.ctx);
    iov[0] = (struct iovec){n->rxbuf, n->o.hdrsz};
    for (unsigned int k = 0; k < BHNET_RX_MAX_DATA; k++) {
        void *pg = n->o.page(n->o.ctx, n->k->req[BHNET_RX_PLACE(k)].gref, true);

        if (pg == NULL)
            return 3;
        iov[1 + k] = (struct iovec){pg, BHNET_PAGE};
    }
    if (n->o.epoch(n->o.ctx) != e)
        return 3;
    /* One byte past the largest frame a frontend takes: a longer one shows as longer. */
    iov[1 + BHNET_RX_MAX_DATA] = (struct iovec){n->rxbuf + 16, 1};
    do
        r = readv(n->o.fd, iov, 2 + BHNET_RX_MAX_DATA);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    n->frame = iov[1].iov_base;
    if ((size_t)r < n->o.hdrsz) {
        snprintf(msg, msglen, "frame of %zd bytes from the TAP: a runt", r);
        return 2;
    }
    if ((r = bhnet_rx_meta(n->rxbuf, n->o.hdrsz, (size_t)r - n->o.hdrsz, &n->m, msg, msglen)) == 1)
        n->placed = true;
    return (int)r;
}

/* A placed frame gathered into rxbuf (to be handed to another queue): 0, or -1 (drop it). */
static int rx_gather(struct bhnet *n)
{
    uint8_t *f = n->rxbuf + n->o.hdrsz;

    for (uint32_t off = 0; off < n->m.len; off += BHNET_PAGE) {
        unsigned int k = off / BHNET_PAGE;
        const uint8_t *pg = n->o.page(n->o.ctx, n->k->req[BHNET_RX_PLACE(k)].gref, true);

        if (pg == NULL)
            return -1;
        memcpy(f + off, pg, n->m.len - off < BHNET_PAGE ? n->m.len - off : BHNET_PAGE);
    }
    n->frame = f;
    n->placed = false;
    return 0;
}

/* One RX frame: 1 done (delivered or dropped), 0 waiting, -1 a lie. */
static int rx_one(struct bhnet *n, char *why, size_t whylen)
{
    struct netif_rx_response rsp[BHNET_RX_MAX_REQS];
    unsigned int need, used;
    char msg[200] = "";
    int r;

    if (!n->have_frame && n->bl_n > 0) { /* steered here earlier: first */
        struct backlog_ent *e = n->backlog[n->bl_head];

        n->m = e->m;
        n->frame = e->frame;
        n->have_frame = n->from_backlog = true;
    }
    if (!n->have_frame) {
        n->placed = false;
        if (n->stalled || n->steered_away || (r = rx_read_placed(n, msg, sizeof(msg))) == 3)
            r = bhnet_rx_from_fd(n->o.fd, n->o.hdrsz, n->rxbuf, &n->m, &n->frame, msg, sizeof(msg));
        if (r == -2)
            return fail(n, &n->rx, msg, why, whylen);
        if (r == 0 || r < 0)
            return 0; /* nothing waiting, or a read error the next wake-up retries */
        if (r == 2) {
            n->placed = false;
            n->k->st.rx_dropped++;
            return 1;
        }
        /* Multicast control: a group the frontend did not add is not its (Linux's mcast_match). */
        if (n->o.tx.mcast && (n->frame[0] & 1) != 0 &&
            memcmp(n->frame, "\xff\xff\xff\xff\xff\xff", 6) != 0 && !bhnet_mcast_has(n, n->frame)) {
            n->placed = false;
            n->k->st.rx_dropped++;
            return 1;
        }
        /* Another queue's, by the control ring's hash: it is delivered there, or dropped. */
        if (n->o.steer != NULL) {
            size_t have = n->placed && n->m.len > BHNET_PAGE ? BHNET_PAGE : n->m.len;
            int s = n->o.steer(n->o.ctx, &n->m, n->frame, have);

            if (s == 2 && have < n->m.len) {
                if (rx_gather(n) != 0) {
                    n->k->st.rx_dropped++;
                    return 1;
                }
                s = n->o.steer(n->o.ctx, &n->m, n->frame, n->m.len);
            }
            n->steered_away = s == 0;
            if (s == 0) {
                n->placed = false;
                return 1;
            }
        }
        n->have_frame = true;
    }
    need = bhnet_rx_slots(&n->o.rx, &n->m);
    while (need > 0 && n->k->nreq < need) {
        if ((r = bhring_back_get(&n->rx, &n->k->req[n->k->nreq])) < 0)
            return fail(n, &n->rx, bhring_error(&n->rx), why, whylen);
        if (r == 0)
            return rx_short(n);
        if (bhnet_rx_check_req(&n->k->req[n->k->nreq], &n->o.rx, msg, sizeof(msg)) != BHNET_GO)
            return fail(n, &n->rx, msg, why, whylen);
        n->k->nreq++;
        save(n);
    }
    n->short_since = 0;
    n->stalled = false;
    if (n->placed)
        r = bhnet_rx_deliver_placed(&n->o.rx, &n->m, n->k->req, n->k->nreq, n->o.page, n->o.epoch,
                                    n->o.ctx, rsp, &used);
    else
        r = bhnet_rx_deliver(&n->o.rx, &n->m, n->frame, n->k->req, n->k->nreq, n->o.page,
                             n->o.ctx, rsp, &used);
    frame_done(n);
    if (r != 0) {
        n->k->st.rx_dropped++;
        rx_answer(n, rsp, used); /* EFAULT answers one buffer with an error; EINVAL none */
        return 1;
    }
    n->k->st.rx_packets++;
    rx_answer(n, rsp, used);
    return 1;
}

int bhnet_rx_push(struct bhnet *n, const struct bhnet_rxmeta *m, const uint8_t *frame,
                  int *notify, char *why, size_t whylen)
{
    struct netif_rx_response rsp[BHNET_RX_MAX_REQS];
    unsigned int need, used;
    char msg[200] = "";
    int r;

    *notify = 0;
    if (n->broken) {
        snprintf(why, whylen, "%s", n->why);
        return -1;
    }
    /*
     * Frames waiting for buffers (held, or steered here before) go first
     * if buffers have come (this queue's event may not have been served
     * yet); while they still wait this one joins the backlog behind them.
     * A stalled queue drops it unless buffers have come, as it does its
     * own TAP's frames.
     */
    while ((n->have_frame || n->bl_n > 0) && (r = rx_one(n, why, whylen)) != 0)
        if (r < 0)
            return -1;
    need = bhnet_rx_slots(&n->o.rx, m);
    if (need == 0)
        goto dropped;
    if (n->have_frame || n->bl_n > 0)
        goto wait;
    while (n->k->nreq < need) {
        if ((r = bhring_back_get(&n->rx, &n->k->req[n->k->nreq])) < 0)
            return fail(n, &n->rx, bhring_error(&n->rx), why, whylen);
        if (r == 0 && n->stalled)
            goto dropped;
        if (r == 0) /* buffers short: the requests taken stay, the frame waits behind them */
            goto wait;
        if (bhnet_rx_check_req(&n->k->req[n->k->nreq], &n->o.rx, msg, sizeof(msg)) != BHNET_GO)
            return fail(n, &n->rx, msg, why, whylen);
        n->k->nreq++;
        save(n);
    }
    n->short_since = 0;
    n->stalled = false;
    r = bhnet_rx_deliver(&n->o.rx, m, frame, n->k->req, n->k->nreq, n->o.page, n->o.ctx, rsp, &used);
    if (r != 0)
        n->k->st.rx_dropped++;
    else
        n->k->st.rx_packets++;
    rx_answer(n, rsp, used);
    *notify = push(n, &n->rx) == 1 ? BHNET_NOTIFY_RX : 0;
    return r == 0 ? 1 : 0;
wait:
    if (backlog_push(n, m, frame)) {
        /* Buffers posted from now on must wake this queue (its own run arms it only while waiting). */
        while (rx_waits(n)) {
            if ((r = bhring_back_final_check(&n->rx)) < 0)
                return fail(n, &n->rx, bhring_error(&n->rx), why, whylen);
            if (r == 0)
                break;
            while (rx_waits(n) && (r = rx_one(n, why, whylen)) == 1)
                ;
            if (r < 0)
                return -1;
        }
        *notify = push(n, &n->rx) == 1 ? BHNET_NOTIFY_RX : 0;
        return 2;
    }
dropped:
    n->k->st.rx_dropped++;
    *notify = push(n, &n->rx) == 1 ? BHNET_NOTIFY_RX : 0;
    return 0;
}

/*
 * Runs one direction up to its budget.  Idle, it arms the ring's event
 * (final check); requests that arrived meanwhile get one more try, but a
 * try that moves nothing (RX: buffers posted while no frame waits) ends
 * the round.  RX's event is armed only while a frame waits for buffers,
 * as Linux's netback asks for them only when short: idle, the TAP wakes
 * us, and the frontend's refills of a ring with room cost no wake-up.
 * Returns the notify bit or 0, BHNET_AGAIN if the budget ran out, -1 on a
 * lie.
 */
static int drain(struct bhnet *n, struct bhring *ring, int (*one)(struct bhnet *, char *, size_t),
                 int bit, char *why, size_t whylen)
{
    unsigned int k = 0;
    int r, f, again = BHNET_AGAIN;

    while (k < BUDGET) {
        if ((r = one(n, why, whylen)) < 0)
            return -1;
        if (r == 0) {
            if (ring == &n->rx && !rx_waits(n)) {
                again = 0;
                break;
            }
            if ((f = bhring_back_final_check(ring)) < 0)
                return fail(n, ring, bhring_error(ring), why, whylen);
            if (f == 0 || (r = one(n, why, whylen)) == 0) {
                again = 0;
                break;
            }
            if (r < 0)
                return -1;
        }
        k++;
    }
    return again | (push(n, ring) == 1 ? bit : 0);
}

int bhnet_run(struct bhnet *n, char *why, size_t whylen)
{
    int tx, rx;

    if (n->broken) {
        snprintf(why, whylen, "%s", n->why);
        return -1;
    }
    if ((tx = drain(n, &n->tx, tx_one, BHNET_NOTIFY_TX, why, whylen)) < 0)
        return -1;
    if ((rx = drain(n, &n->rx, rx_one, BHNET_NOTIFY_RX, why, whylen)) < 0)
        return -1;
    return tx | rx;
}
