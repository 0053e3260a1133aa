/*
 * nbd.c - blkback's NBD storage: a blkif request served by an NBD server
 * (qemu-nbd for qcow2/vhd/qed, nbdkit, anything a broker's socket reaches)
 * through libnbd's asynchronous API, reading and writing straight into the
 * request's mapped granted pages.
 *
 * NBD reorders freely and a flush covers only the writes answered before
 * it was sent, so a flush or barrier (io/blkif.h: after everything before
 * it) waits here until every earlier command is answered, sends its data
 * (if any) and only then the flush; requests that come after it wait
 * behind it.  libnbd's callbacks run with the handle locked: they only
 * record, and the commands they unblock are sent once it has returned.
 *
 * Pages mapped for the request alone are contiguous: one command each way.
 * Persistently mapped pages are not, and one NBD command per 4 KiB page
 * would cap a 1 MiB request at the server's small-request rate; such a
 * request goes through a bounce buffer of its own instead (a copy costs a
 * fraction of a round trip), within BOUNCE_CAP bytes for all requests at
 * once, past which it is sent page by page.
 *
 * The socket is watched through an epoll fd of our own, so that the engine
 * keeps its one contract with its caller (an fd that is readable when
 * bhblk_run has work): it asks for POLLOUT only while libnbd has something
 * to send.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "nbd.h"

#define TRIM_CHUNK (1ull << 30) /* an NBD command's length is 32 bits */
#define BOUNCE_CAP (32u << 20)  /* bounce buffers in use at once, all requests */

struct nreq {
    struct bhnbd *n;
    uint64_t off, len;
    const struct iovec *iov;
    unsigned int niov;
    unsigned int left; /* commands sent and not answered */
    uint8_t op;
    bool flushing; /* a barrier whose data is written: its flush is out */
    bool failed;
    uint8_t *bounce; /* the data, contiguous, while its command is out */
};

struct bhnbd {
    struct nbd_handle *h;
    int sock; /* libnbd's; watched by ep */
    int ep;
    uint32_t events; /* what ep is asked for now */
    struct bhblk_nbd_info info;
    struct nreq req[BHBLK_MAX_SLOTS];
    unsigned int queue[BHBLK_MAX_SLOTS], qhead, qlen; /* requests not sent yet, in order */
    unsigned int done[BHBLK_MAX_SLOTS], ndone;        /* answered, for the engine */
    unsigned int ncmds;                               /* commands in flight */
    size_t bounced;                                   /* bytes of bounce buffers in use */
    int barrier;                                      /* the flush or barrier being served, -1 */
    bool dead;
    bool break_flush; /* BULKHEAD_TEST_BREAK_FLUSH: ack flushes unsent (tests only) */
    char why[160];
};

static bool is_barrier(uint8_t op)
{
    return op == BLKIF_OP_FLUSH_DISKCACHE || op == BLKIF_OP_WRITE_BARRIER;
}

/* Under libnbd's lock: only records.  Returns 1: the command is retired. */
static int on_reply(void *arg, int *error)
{
    struct nreq *r = arg;

    r->n->ncmds--;
    r->left--;
    if (*error != 0)
        r->failed = true;
    if (r->left == 0)
        r->n->done[r->n->ndone++] = (unsigned int)(r - r->n->req);
    return 1;
}

static void lost(struct bhnbd *n);

static bool send_one(struct bhnbd *n, struct nreq *r, int64_t c)
{
    if (c < 0) {
        r->failed = true;
        if (nbd_aio_is_dead(n->h) || nbd_aio_is_closed(n->h))
            lost(n); /* a send that met a closed socket */
        return false;
    }
    r->left++;
    n->ncmds++;
    return true;
}

/* Whether r's data go through a bounce buffer (written ones copied into it). */
static bool bounce(struct bhnbd *n, struct nreq *r)
{
    size_t len = 0, off = 0;
    unsigned int runs = 0;

    for (unsigned int k = 0; k < r->niov; k++) {
        if (k == 0 || (uint8_t *)r->iov[k].iov_base !=
                          (uint8_t *)r->iov[k - 1].iov_base + r->iov[k - 1].iov_len)
            runs++;
        len += r->iov[k].iov_len;
    }
    if (runs < 2 || len != r->len || n->bounced + len > BOUNCE_CAP ||
        (r->bounce = malloc(len)) == NULL)
        return false;
    n->bounced += len;
    for (unsigned int k = 0; r->op != BLKIF_OP_READ && k < r->niov; k++) {
        memcpy(r->bounce + off, r->iov[k].iov_base, r->iov[k].iov_len);
        off += r->iov[k].iov_len;
    }
    return true;
}

/* The request's data phase is over: a read's bounce is copied out to its pages. */
static void unbounce(struct bhnbd *n, struct nreq *r)
{
    size_t off = 0;

    if (r->bounce == NULL)
        return;
    for (unsigned int k = 0; r->op == BLKIF_OP_READ && !r->failed && k < r->niov; k++) {
        memcpy(r->iov[k].iov_base, r->bounce + off, r->iov[k].iov_len);
        off += r->iov[k].iov_len;
    }
    free(r->bounce);
    r->bounce = NULL;
    n->bounced -= r->len;
}

/* The commands of one request (its data, or its flush once the data is written). */
static void send_req(struct bhnbd *n, unsigned int tag)
{
    struct nreq *r = &n->req[tag];
    nbd_completion_callback cb = {.callback = on_reply, .user_data = r};
    uint64_t off = r->off;

    /* r->left stays above 0 while sending: a reply cannot finish the request meanwhile. */
    r->left++;
    if (r->flushing) {
        send_one(n, r, nbd_aio_flush(n->h, cb, 0));
    } else if (r->op == BLKIF_OP_DISCARD) {
        for (uint64_t done = 0; done < r->len && !r->failed;) {
            uint64_t len = r->len - done < TRIM_CHUNK ? r->len - done : TRIM_CHUNK;
            if (send_one(n, r, nbd_aio_trim(n->h, len, off + done, cb, 0)))
                done += len;
        }
    } else if (bounce(n, r)) {
        if (r->op == BLKIF_OP_READ)
            send_one(n, r, nbd_aio_pread(n->h, r->bounce, r->len, off, cb, 0));
        else
            send_one(n, r, nbd_aio_pwrite(n->h, r->bounce, r->len, off, cb, 0));
    } else {
        /* Pages mapped contiguously make one command; others one per run. */
        for (unsigned int k = 0; k < r->niov && !r->failed;) {
            uint8_t *base = r->iov[k].iov_base;
            size_t len = r->iov[k].iov_len;
            int64_t c;
            while (++k < r->niov && (uint8_t *)r->iov[k].iov_base == base + len)
                len += r->iov[k].iov_len;
            if (r->op == BLKIF_OP_READ)
                c = nbd_aio_pread(n->h, base, len, off, cb, 0);
            else
                c = nbd_aio_pwrite(n->h, base, len, off, cb, 0);
            if (send_one(n, r, c))
                off += len;
        }
    }
    if (--r->left == 0)
        n->done[n->ndone++] = tag;
}

/* Sends what may go now: everything up to the next flush, which waits for the ring to drain. */
static void dispatch(struct bhnbd *n)
{
    while (n->qlen > 0 && n->barrier < 0) {
        unsigned int tag = n->queue[n->qhead];
        if (is_barrier(n->req[tag].op)) {
            if (n->ncmds > 0)
                return;
            n->barrier = (int)tag;
        }
        n->qhead = (n->qhead + 1) % BHBLK_MAX_SLOTS;
        n->qlen--;
        send_req(n, tag);
    }
}

/* Asks epoll for what libnbd waits for; once the server is gone, for nothing. */
static void watch(struct bhnbd *n)
{
    uint32_t ev = EPOLLIN;
    struct epoll_event e;

    if (n->dead) {
        if (n->events != 0)
            epoll_ctl(n->ep, EPOLL_CTL_DEL, n->sock, NULL);
        n->events = 0;
        return;
    }
    if (nbd_aio_get_direction(n->h) & LIBNBD_AIO_DIRECTION_WRITE)
        ev |= EPOLLOUT;
    if (ev == n->events)
        return;
    e = (struct epoll_event){.events = ev};
    if (epoll_ctl(n->ep, n->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, n->sock, &e) == 0)
        n->events = ev;
}

static void lost(struct bhnbd *n)
{
    const char *e = nbd_get_error();

    if (!n->dead)
        snprintf(n->why, sizeof(n->why), "the NBD server is gone: %s",
                 e != NULL ? e : "it closed the connection");
    n->dead = true;
}

/* Moves the socket: what the server sent is read, what waits is written. */
static void pump(struct bhnbd *n)
{
    struct pollfd p = {.fd = n->sock, .events = POLLIN};

    if (!n->dead && (nbd_aio_is_dead(n->h) || nbd_aio_is_closed(n->h)))
        lost(n);
    if (n->dead)
        return;
    if (nbd_aio_get_direction(n->h) & LIBNBD_AIO_DIRECTION_WRITE)
        p.events |= POLLOUT;
    if (poll(&p, 1, 0) <= 0)
        return;
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && nbd_aio_notify_read(n->h) != 0)
        lost(n);
    if (!n->dead && (p.revents & POLLOUT) && nbd_aio_notify_write(n->h) != 0)
        lost(n);
    if (!n->dead && nbd_aio_is_dead(n->h))
        lost(n);
}

int bhnbd_submit(struct bhnbd *n, unsigned int tag, uint8_t op, uint64_t off, uint64_t len,
                 const struct iovec *iov, unsigned int niov)
{
    struct nreq *r;

    if (tag >= BHBLK_MAX_SLOTS) {
        errno = EINVAL;
        return -1;
    }
    r = &n->req[tag];
    *r = (struct nreq){.n = n, .off = off, .len = len, .iov = iov, .niov = niov, .op = op};
    if (n->dead || (is_barrier(op) && !n->info.flush)) {
        r->failed = true;
        n->done[n->ndone++] = tag;
        return 0;
    }
    n->queue[(n->qhead + n->qlen++) % BHBLK_MAX_SLOTS] = tag;
    dispatch(n);
    watch(n);
    return 0;
}

unsigned int bhnbd_reap(struct bhnbd *n, void (*done)(void *arg, unsigned int tag, int16_t status),
                        void *arg)
{
    unsigned int count = 0;

    for (;;) {
        pump(n);
        while (n->ndone > 0) {
            unsigned int tag = n->done[--n->ndone];
            struct nreq *r = &n->req[tag];
            unbounce(n, r);
            if (r->op == BLKIF_OP_WRITE_BARRIER || r->op == BLKIF_OP_FLUSH_DISKCACHE) {
                if (!r->failed && !r->flushing && n->info.flush && !n->break_flush) {
                    r->flushing = true; /* its data is written: now the flush */
                    send_req(n, tag);
                    continue;
                }
                if ((int)tag == n->barrier)
                    n->barrier = -1;
            }
            done(arg, tag,
                 !r->failed                                        ? BLKIF_RSP_OKAY
                 : is_barrier(r->op) && !n->info.flush && !n->dead ? BLKIF_RSP_EOPNOTSUPP
                                                                   : BLKIF_RSP_ERROR);
            count++;
        }
        if (n->dead) {
            /* Nothing queued will ever be sent: each fails. */
            while (n->qlen > 0) {
                n->req[n->queue[n->qhead]].failed = true;
                n->done[n->ndone++] = n->queue[n->qhead];
                n->qhead = (n->qhead + 1) % BHBLK_MAX_SLOTS;
                n->qlen--;
            }
        } else {
            dispatch(n);
        }
        if (n->ndone == 0)
            break;
    }
    watch(n);
    return count;
}

/*
 * Connects over sock (taken, closed on failure too): the handshake, then
 * the export's size and flags.  libnbd wants a non-blocking socket.
 */
struct bhnbd *bhnbd_open(int sock, char *why, size_t len)
{
    struct bhnbd *n = calloc(1, sizeof(*n));
    int64_t size;

    if (n == NULL) {
        close(sock);
        snprintf(why, len, "out of memory");
        errno = ENOMEM;
        return NULL;
    }
    n->barrier = -1;
    n->ep = epoll_create1(EPOLL_CLOEXEC);
    if (n->ep < 0 || (n->h = nbd_create()) == NULL) {
        snprintf(why, len, "cannot make an NBD handle: %s",
                 n->ep < 0 ? strerror(errno) : nbd_get_error());
        close(sock);
        goto fail;
    }
    fcntl(sock, F_SETFL, fcntl(sock, F_GETFL) | O_NONBLOCK);
    if (nbd_connect_socket(n->h, sock) != 0) {
        snprintf(why, len, "NBD handshake: %s", nbd_get_error());
        goto fail;
    }
    n->sock = sock;
    if ((size = nbd_get_size(n->h)) < 0) {
        snprintf(why, len, "NBD export size: %s", nbd_get_error());
        goto fail;
    }
    n->info.size = (uint64_t)size;
    n->info.readonly = nbd_is_read_only(n->h) == 1;
    n->info.flush = nbd_can_flush(n->h) == 1;
    n->info.trim = nbd_can_trim(n->h) == 1;
    n->info.fua = nbd_can_fua(n->h) == 1;
    /*
     * A deliberately broken blkback for tests/long/check_durability: it
     * answers a flush OKAY without sending it, so that the test proves it
     * catches exactly that lie.  Never set it anywhere else.
     */
    n->break_flush = getenv("BULKHEAD_TEST_BREAK_FLUSH") != NULL;
    watch(n);
    return n;
fail:
    bhnbd_close(n);
    errno = EIO;
    return NULL;
}

void bhnbd_close(struct bhnbd *n)
{
    if (n == NULL)
        return;
    /* Closes the socket; no reply lands in a buffer after this. */
    if (n->h != NULL)
        nbd_close(n->h);
    for (unsigned int i = 0; i < BHBLK_MAX_SLOTS; i++)
        free(n->req[i].bounce);
    if (n->ep >= 0)
        close(n->ep);
    free(n);
}

const struct bhblk_nbd_info *bhnbd_info(const struct bhnbd *n)
{
    return &n->info;
}

int bhnbd_fd(const struct bhnbd *n)
{
    return n->ep;
}

const char *bhnbd_error(const struct bhnbd *n)
{
    return n->dead ? n->why : NULL;
}

bool bhnbd_pending(const struct bhnbd *n)
{
    return n->ndone > 0;
}
