/*
 * tapfloor - the network path's floors, for bench_net.sh: what moving
 * frames between a guest's TAP and a TAP on the driver domain's bridge
 * costs in userspace with nothing of ours in it.
 *
 *   tapfloor relay GUEST-TAP BRIDGE-TAP
 *       one process reads each TAP and writes what it read to the other:
 *       the least any userspace path between two TAPs costs (two copies a
 *       frame and a side, one process).
 *   tapfloor split GUEST-TAP BRIDGE-TAP
 *       two processes, one on each TAP, joined by two shared-memory rings
 *       (one a direction) and eventfd kicks that a side asks for only
 *       when it is about to sleep: a frame is read from a TAP straight
 *       into a ring slot and written to the other TAP straight from it.
 *       That is the split driver's model - netfront and netback, a ring
 *       between them - with the same copies and process hops as ours and
 *       none of its checks, grants, or XenStore.
 *   tapfloor pages GUEST-TAP BRIDGE-TAP
 *       split, with each frame in 4 KiB pages as io/netif.h carries it (a
 *       slot a page: a 64 KiB frame is 17 of them) and the vnet header
 *       apart, read with readv and written with writev as netfront and
 *       netback do: the model with the protocol's layout.
 *
 * Each mode makes its two TAPs (vnet headers, checksum and TSO offloads, as
 * the broker makes a vif's and a guest's), say "ready" on stdout, and run
 * until killed; the caller moves the TAPs into its namespaces.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hv.h"

#define SLOTS    256
#define FRAME    (12 + 65536) /* a vnet header and the largest GSO frame */
#define HDR_SIZE 12           /* struct virtio_net_hdr_mrg_rxbuf, as the broker's TAPs */
#define PAGE     4096
#define PAGES    17 /* a 64 KiB frame in 4 KiB pages, one more than 16 as netif's chains */

struct ring {
    uint32_t prod, cons;
    uint32_t cons_sleeps; /* the consumer is about to sleep: kick it after a push */
    uint32_t prod_sleeps; /* the producer found it full: kick it after a pop */
    uint32_t len[SLOTS];
    uint8_t hdr[SLOTS][HDR_SIZE];   /* pages mode: the vnet header */
    uint8_t slot[SLOTS][PAGES * PAGE]; /* a frame, or (pages mode) its pages */
};

static bool paged; /* tapfloor pages */

static void die(const char *what)
{
    fprintf(stderr, "tapfloor: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* A TAP as the broker makes one (tun_open_queues: multi-queue, vnet headers), one queue. */
static int make_tap(const char *name)
{
    int fd, hs = HDR_SIZE;

    if (strlen(name) >= IFNAMSIZ) {
        fprintf(stderr, "tapfloor: %s: a TAP's name is at most %d characters\n", name, IFNAMSIZ - 1);
        exit(1);
    }
    if ((errno = tun_open_queues(name, 1, &fd)) != 0)
        die(name); /* needs root and the tun module */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
        die("O_NONBLOCK");
    if (ioctl(fd, TUNSETVNETHDRSZ, &hs) < 0 ||
        ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0)
        die("the TAP's offloads");
    return fd;
}

/* A TAP's write takes a whole frame or fails; a failed one is a drop, as on a NIC. */
static void put(int tap, const void *f, size_t len)
{
    if (write(tap, f, len) < 0 && errno != EAGAIN && errno != ENOBUFS && errno != EINVAL)
        die("write to a TAP");
}

static void relay(int a, int b)
{
    static uint8_t buf[FRAME];
    int fd[2] = {a, b};

    for (;;) {
        struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};

        if (poll(p, 2, -1) < 0 && errno != EINTR)
            die("poll");
        for (int i = 0; i < 2; i++) {
            ssize_t r;

            /* Up to 64 frames a side a pass, as netback's budget. */
            for (int k = 0; k < 64 && (r = read(fd[i], buf, sizeof(buf))) > 0; k++)
                put(fd[!i], buf, (size_t)r);
        }
    }
}

/* A ring slot's frame to the TAP, whole or (pages mode) a header and pages. */
static void put_slot(int tap, struct ring *r, uint32_t c)
{
    struct iovec iov[1 + PAGES];
    size_t left = r->len[c];
    int n = 0;

    if (!paged) {
        put(tap, r->slot[c], left);
        return;
    }
    iov[n++] = (struct iovec){r->hdr[c], HDR_SIZE};
    left -= HDR_SIZE;
    for (size_t off = 0; left > 0; off += PAGE) {
        size_t l = left < PAGE ? left : PAGE;

        iov[n++] = (struct iovec){r->slot[c] + off, l};
        left -= l;
    }
    if (writev(tap, iov, n) < 0 && errno != EAGAIN && errno != ENOBUFS && errno != EINVAL)
        die("write to a TAP");
}

/* A frame from the TAP into a ring slot: its length, or <= 0 as read(2). */
static ssize_t get_slot(int tap, struct ring *r, uint32_t p)
{
    struct iovec iov[1 + PAGES];

    if (!paged)
        return read(tap, r->slot[p], FRAME);
    iov[0] = (struct iovec){r->hdr[p], HDR_SIZE};
    for (int k = 0; k < PAGES; k++)
        iov[1 + k] = (struct iovec){r->slot[p] + (size_t)k * PAGE, PAGE};
    return readv(tap, iov, 1 + PAGES);
}

static void kick(int efd)
{
    uint64_t one = 1;

    if (write(efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        die("eventfd");
}

static uint32_t load(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* An index moved on (a slot filled or freed), and the peer kicked if it sleeps on it. */
static void publish(uint32_t *idx, uint32_t *sleeps, int theirs)
{
    store(idx, *idx + 1);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (load(sleeps)) {
        store(sleeps, 0);
        kick(theirs);
    }
}

/*
 * One side: frames from `in` to its TAP, frames from its TAP to `out`;
 * `mine` is the eventfd the other side kicks, `theirs` the one it sleeps
 * on.  A side that will sleep says so in the rings (cons_sleeps on in,
 * prod_sleeps on out when out is full), then looks once more, as Xen's
 * event indices work: a kick costs a system call only when it wakes.
 */
static void side(int tap, struct ring *out, struct ring *in, int mine, int theirs)
{
    for (;;) {
        bool moved = false, full;

        for (int k = 0; k < 64 && in->cons != load(&in->prod); k++) {
            uint32_t c = in->cons % SLOTS;

            put_slot(tap, in, c);
            publish(&in->cons, &in->prod_sleeps, theirs);
            moved = true;
        }
        for (int k = 0; k < 64 && out->prod - load(&out->cons) < SLOTS; k++) {
            uint32_t p = out->prod % SLOTS;
            ssize_t r = get_slot(tap, out, p);

            if (r <= 0 || (paged && r < HDR_SIZE))
                break;
            out->len[p] = (uint32_t)r;
            publish(&out->prod, &out->cons_sleeps, theirs);
            moved = true;
        }
        if (moved)
            continue;
        store(&in->cons_sleeps, 1);
        full = out->prod - load(&out->cons) >= SLOTS;
        if (full)
            store(&out->prod_sleeps, 1);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (in->cons == load(&in->prod) && !(full && out->prod - load(&out->cons) < SLOTS)) {
            struct pollfd p[2] = {{mine, POLLIN, 0}, {tap, full ? 0 : POLLIN, 0}};
            uint64_t v;

            if (poll(p, 2, -1) < 0 && errno != EINTR)
                die("poll");
            if ((p[0].revents & POLLIN) && read(mine, &v, sizeof(v)) < 0 && errno != EAGAIN)
                die("eventfd");
        }
        store(&in->cons_sleeps, 0);
    }
}

static pid_t back_pid;

/* Killed: the back goes first and is waited for (no zombie left to an init that reaps none). */
static void on_term(int sig)
{
    (void)sig;
    kill(back_pid, SIGTERM);
    waitpid(back_pid, NULL, 0);
    _exit(0);
}

static void split(int guest, int bridge)
{
    struct ring *up = mmap(NULL, sizeof(*up), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct ring *down = mmap(NULL, sizeof(*down), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int efront = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), eback = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pid_t pid;

    if (up == MAP_FAILED || down == MAP_FAILED)
        die("the rings");
    if (efront < 0 || eback < 0)
        die("eventfd");
    if ((pid = fork()) < 0)
        die("fork");
    if (pid == 0) { /* the back: frames up to the bridge's TAP, frames from it down */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() == 1)
            exit(0);
        close(guest);
        side(bridge, down, up, eback, efront);
    }
    back_pid = pid;
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    close(bridge);
    side(guest, up, down, efront, eback);
}

int main(int argc, char **argv)
{
    int guest, bridge;

    if (argc != 4 || (strcmp(argv[1], "relay") != 0 && strcmp(argv[1], "split") != 0 &&
                      strcmp(argv[1], "pages") != 0)) {
        fprintf(stderr, "usage: tapfloor relay|split|pages GUEST-TAP BRIDGE-TAP\n");
        return 2;
    }
    guest = make_tap(argv[2]);
    bridge = make_tap(argv[3]);
    printf("ready\n");
    fflush(stdout);
    paged = strcmp(argv[1], "pages") == 0;
    if (strcmp(argv[1], "relay") == 0)
        relay(guest, bridge);
    else
        split(guest, bridge);
    return 0;
}
