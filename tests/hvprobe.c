/*
 * hvprobe.c - a test tool that runs inside a simulated domain and drives
 * the platform seam (libbhplat) and the raw hypercall channel, one command
 * per line on stdin, one reply per line on stdout:
 *
 *   ok [values...]            the command did what it says
 *   err ERRNO-NAME [detail]   it failed, with errno's symbolic name
 *
 * Slots name mappings made earlier (share, map) and fds kept from raw
 * hypercalls (rawmap, rawshare).  Used by check_hv; not installed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bhplat.h"
#include "hvwire.h"

#define MAX_SLOTS 64
#define MAX_ARGS 80

struct slot {
    void *addr;
    uint32_t pages;
    int shared; /* 1: from share (unshare it), 0: from map (unmap it) */
    int fd;     /* raw slots: the fd the daemon gave */
};

static struct slot slots[MAX_SLOTS];
static bhgntshr_handle *gs;
static bhgnttab_handle *gt;
static bhevtchn_handle *ev;

static const char *ename(int e)
{
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case E2BIG: return "E2BIG";
    case ENOSYS: return "ENOSYS";
    case EBADMSG: return "EBADMSG";
    case EPROTO: return "EPROTO";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    default: return "EOTHER";
    }
}

static void reply_err(int e, const char *detail)
{
    printf("err %s%s%s\n", ename(e), detail ? " " : "", detail ? detail : "");
}

static int new_slot(void *addr, uint32_t pages, int shared, int fd)
{
    for (int i = 0; i < MAX_SLOTS; i++)
        if (slots[i].addr == NULL && slots[i].fd <= 0) {
            slots[i] = (struct slot){addr, pages, shared, fd};
            return i;
        }
    return -1;
}

static struct slot *get_slot(const char *s)
{
    int i = atoi(s);

    return i >= 0 && i < MAX_SLOTS && (slots[i].addr || slots[i].fd > 0) ? &slots[i] : NULL;
}

/* ---- the raw channel: for what the seam would never send ---- */

static int raw_open(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const char *path = getenv("BULKHEAD_HV_SOCKET");
    int fd;

    if (path == NULL || strlen(path) >= sizeof(sa.sun_path)) {
        errno = EINVAL;
        return -1;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/*
 * Sends `len` bytes (optionally with one fd attached) and reads the reply:
 * returns the reply's err (0..), -1 with errno when the channel failed.
 * Received fds go to fds_out (up to *nfds).
 */
static int raw_call(int fd, const void *msg, size_t len, int send_fd, uint8_t *rbuf, size_t *rlen,
                    int *fds_out, int *nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * HVW_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct iovec iov = {(void *)msg, len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    struct hvw_hdr h;
    ssize_t n;
    int got = 0;

    memset(&u, 0, sizeof(u));
    if (send_fd >= 0) {
        struct cmsghdr *cm;
        m.msg_control = u.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int));
        cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &send_fd, sizeof(int));
    }
    if (sendmsg(fd, &m, MSG_NOSIGNAL) < 0)
        return -1;
    iov.iov_base = rbuf;
    iov.iov_len = HVW_MAX_MSG;
    m = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                        .msg_controllen = sizeof(u.buf)};
    n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
    if (n < (ssize_t)sizeof(h)) {
        errno = n < 0 ? errno : ECONNRESET;
        return -1;
    }
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
        if (cm->cmsg_type == SCM_RIGHTS) {
            int cnt = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < cnt; i++) {
                int f;
                memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                if (fds_out && nfds && got < *nfds)
                    fds_out[got++] = f;
                else
                    close(f);
            }
        }
    if (nfds)
        *nfds = got;
    memcpy(&h, rbuf, sizeof(h));
    if (rlen)
        *rlen = (size_t)n - sizeof(h);
    memmove(rbuf, rbuf + sizeof(h), (size_t)n - sizeof(h));
    return h.err;
}

static size_t hexdecode(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;

    while (hex[0] && hex[1] && n < cap) {
        unsigned int b;
        if (sscanf(hex, "%2x", &b) != 1)
            break;
        out[n++] = (uint8_t)b;
        hex += 2;
    }
    return n;
}

/* raw HEX [repeat-to-length]: a message of our own making; prints the reply's err. */
static void cmd_raw(int argc, char **argv)
{
    static uint8_t msg[HVW_MAX_MSG * 2], rbuf[HVW_MAX_MSG];
    size_t len = hexdecode(argv[1], msg, sizeof(msg)), total = len;
    int fd = raw_open(), r;

    if (argc > 2 && len > 0) {
        total = strtoul(argv[2], NULL, 10);
        if (total > sizeof(msg))
            total = sizeof(msg);
        for (size_t i = len; i < total; i++)
            msg[i] = msg[i % len];
    }
    if (fd < 0) {
        reply_err(errno, "connect");
        return;
    }
    r = raw_call(fd, msg, total, -1, rbuf, NULL, NULL, NULL);
    if (r < 0)
        reply_err(errno, "channel");
    else
        printf("ok %s\n", r == 0 ? "0" : ename(r));
    close(fd);
}

/* rawfds: a HELLO carrying an fd, which no request may. */
static void cmd_rawfds(void)
{
    static uint8_t rbuf[HVW_MAX_MSG];
    struct hvw_hdr h = {.magic = HVW_MAGIC, .op = HVW_OP_HELLO, .seq = 1};
    int fd = raw_open(), r;

    if (fd < 0) {
        reply_err(errno, "connect");
        return;
    }
    r = raw_call(fd, &h, sizeof(h), 0, rbuf, NULL, NULL, NULL);
    if (r < 0)
        reply_err(errno, "channel");
    else
        printf("ok %s\n", r == 0 ? "0" : ename(r));
    close(fd);
}

/* rawmap DOMID rw|ro REF: the fd itself, to try what a hostile mapper would. */
static void cmd_rawmap(char **argv)
{
    static uint8_t buf[64], rbuf[HVW_MAX_MSG];
    struct hvw_hdr h = {.magic = HVW_MAGIC, .op = HVW_OP_GNT_MAP, .seq = 1};
    struct hvw_gnt_map_req r = {.domid = (uint16_t)atoi(argv[1]),
                                .writable = strcmp(argv[2], "rw") == 0, .count = 1};
    uint32_t ref = (uint32_t)strtoul(argv[3], NULL, 10);
    int fd = raw_open(), fds[1], nfds = 1, rc, s;

    if (fd < 0) {
        reply_err(errno, "connect");
        return;
    }
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), &r, sizeof(r));
    memcpy(buf + sizeof(h) + sizeof(r), &ref, sizeof(ref));
    rc = raw_call(fd, buf, sizeof(h) + sizeof(r) + sizeof(ref), -1, rbuf, NULL, fds, &nfds);
    if (rc != 0 || nfds != 1) {
        reply_err(rc > 0 ? rc : errno, "map");
        close(fd);
        return;
    }
    /* The channel stays open: the mapping is counted against it. */
    s = new_slot(NULL, 1, 0, fds[0]);
    printf("ok %d\n", s);
}

static void cmd_fdtry(const char *what, char **argv)
{
    struct slot *s = get_slot(argv[1]);
    char path[64];
    void *p;
    int fd;

    if (s == NULL || s->fd <= 0) {
        reply_err(EINVAL, "no such fd slot");
        return;
    }
    if (strcmp(what, "fdwrite") == 0) {
        p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
        if (p == MAP_FAILED) {
            reply_err(errno, "mmap");
            return;
        }
        ((volatile char *)p)[0] = 'W';
        munmap(p, 4096);
        printf("ok\n");
    } else if (strcmp(what, "fdmprotect") == 0) {
        p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, s->fd, 0);
        if (p == MAP_FAILED) {
            reply_err(errno, "mmap");
            return;
        }
        if (mprotect(p, 4096, PROT_READ | PROT_WRITE) != 0)
            reply_err(errno, "mprotect");
        else
            printf("ok\n");
        munmap(p, 4096);
    } else if (strcmp(what, "fdreopen") == 0) {
        snprintf(path, sizeof(path), "/proc/self/fd/%d", s->fd);
        if ((fd = open(path, O_RDWR)) < 0) {
            reply_err(errno, "open");
            return;
        }
        close(fd);
        printf("ok\n");
    } else { /* fdtrunc */
        if (ftruncate(s->fd, 0) != 0 && ftruncate(s->fd, 8192) != 0)
            reply_err(errno, "ftruncate");
        else
            printf("ok\n");
    }
}

/* rawshare DOMID rw|ro: share one page through the raw channel, keep its fd. */
static void cmd_rawshare(char **argv)
{
    static uint8_t buf[64], rbuf[HVW_MAX_MSG];
    struct hvw_hdr h = {.magic = HVW_MAGIC, .op = HVW_OP_GNT_SHARE, .seq = 1};
    struct hvw_gnt_share_req r = {.domid = (uint16_t)atoi(argv[1]),
                                  .writable = strcmp(argv[2], "rw") == 0, .count = 1};
    int fd = raw_open(), fds[1], nfds = 1, rc;
    uint32_t ref;
    size_t rlen;

    if (fd < 0) {
        reply_err(errno, "connect");
        return;
    }
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), &r, sizeof(r));
    rc = raw_call(fd, buf, sizeof(h) + sizeof(r), -1, rbuf, &rlen, fds, &nfds);
    if (rc != 0 || nfds != 1 || rlen < 8) {
        reply_err(rc > 0 ? rc : errno, "share");
        close(fd);
        return;
    }
    memcpy(&ref, rbuf + 4, sizeof(ref));
    printf("ok %d %u\n", new_slot(NULL, 1, 1, fds[0]), ref);
}

/* rawend REF: GNT_END on one reference; prints its status. */
static void cmd_rawend(char **argv)
{
    static uint8_t buf[64], rbuf[HVW_MAX_MSG];
    struct hvw_hdr h = {.magic = HVW_MAGIC, .op = HVW_OP_GNT_END, .seq = 1};
    uint32_t count = 1, ref = (uint32_t)strtoul(argv[1], NULL, 10);
    int32_t st;
    int fd = raw_open(), rc;
    size_t rlen;

    if (fd < 0) {
        reply_err(errno, "connect");
        return;
    }
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), &count, 4);
    memcpy(buf + sizeof(h) + 4, &ref, 4);
    rc = raw_call(fd, buf, sizeof(h) + 8, -1, rbuf, &rlen, NULL, NULL);
    close(fd);
    if (rc != 0 || rlen < 8) {
        reply_err(rc > 0 ? rc : errno, "end");
        return;
    }
    memcpy(&st, rbuf + 4, 4);
    printf("ok %s\n", st == 0 ? "0" : ename(st));
}

/* ---- through the seam ---- */

static void cmd_share(char **argv)
{
    uint32_t domid = (uint32_t)atoi(argv[1]), n = (uint32_t)atoi(argv[2]);
    bh_grant_ref_t *refs = calloc(n ? n : 1, sizeof(*refs));
    void *p = refs ? bhgntshr_share_pages(gs, domid, (int)n, refs, strcmp(argv[3], "rw") == 0)
                   : NULL;

    if (p == NULL) {
        reply_err(errno, "share");
        free(refs);
        return;
    }
    printf("ok %d", new_slot(p, n, 1, 0));
    for (uint32_t i = 0; i < n && i < 64; i++)
        printf(" %u", refs[i]);
    printf("\n");
    free(refs);
}

static void cmd_map(int argc, char **argv)
{
    uint32_t domid = (uint32_t)atoi(argv[1]), n = (uint32_t)(argc - 3);
    bh_grant_ref_t refs[MAX_ARGS];
    int prot = strcmp(argv[2], "rw") == 0 ? PROT_READ | PROT_WRITE : PROT_READ;
    void *p;

    for (uint32_t i = 0; i < n; i++)
        refs[i] = (bh_grant_ref_t)strtoul(argv[3 + i], NULL, 10);
    p = bhgnttab_map_domain_grant_refs(gt, n, domid, refs, prot);
    if (p == NULL) {
        reply_err(errno, "map");
        return;
    }
    printf("ok %d\n", new_slot(p, n, 0, 0));
}

/* mapsplit DOMID rw|ro REF...: each reference a set of its own, in one bhgnttab_map_many. */
static void cmd_mapsplit(int argc, char **argv)
{
    uint32_t domid = (uint32_t)atoi(argv[1]), n = (uint32_t)(argc - 3), counts[MAX_ARGS];
    bh_grant_ref_t refs[MAX_ARGS];
    int prot = strcmp(argv[2], "rw") == 0 ? PROT_READ | PROT_WRITE : PROT_READ;
    void *addrs[MAX_ARGS];

    for (uint32_t i = 0; i < n; i++) {
        refs[i] = (bh_grant_ref_t)strtoul(argv[3 + i], NULL, 10);
        counts[i] = 1;
    }
    if (bhgnttab_map_many(gt, n, domid, counts, refs, prot, addrs) != 0) {
        reply_err(errno, "map_many");
        return;
    }
    printf("ok");
    for (uint32_t i = 0; i < n; i++)
        printf(" %d", new_slot(addrs[i], 1, 0, 0));
    printf("\n");
}

/* unmapmany SLOT...: the mapped slots in one bhgnttab_unmap_many. */
static void cmd_unmapmany(int argc, char **argv)
{
    uint32_t n = (uint32_t)(argc - 1), counts[MAX_ARGS];
    void *addrs[MAX_ARGS];
    struct slot *s[MAX_ARGS];

    for (uint32_t i = 0; i < n; i++) {
        if ((s[i] = get_slot(argv[1 + i])) == NULL || s[i]->addr == NULL || s[i]->shared) {
            reply_err(EINVAL, "no such mapped slot");
            return;
        }
        addrs[i] = s[i]->addr;
        counts[i] = s[i]->pages;
    }
    if (bhgnttab_unmap_many(gt, n, addrs, counts) != 0) {
        reply_err(errno, "unmap_many");
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        memset(s[i], 0, sizeof(*s[i]));
    printf("ok\n");
}

static void cmd_poke_peek(int poke, char **argv)
{
    struct slot *s = get_slot(argv[1]);
    size_t off = strtoul(argv[2], NULL, 10);

    if (s == NULL || s->addr == NULL || off >= (size_t)s->pages * 4096) {
        reply_err(EINVAL, "no such slot or offset");
        return;
    }
    if (poke) {
        ((volatile uint8_t *)s->addr)[off] = (uint8_t)atoi(argv[3]);
        printf("ok\n");
    } else {
        printf("ok %u\n", ((volatile uint8_t *)s->addr)[off]);
    }
}

static void cmd_release(char **argv)
{
    struct slot *s = get_slot(argv[1]);
    int r;

    if (s == NULL) {
        reply_err(EINVAL, "no such slot");
        return;
    }
    if (s->addr != NULL)
        r = s->shared ? bhgntshr_unshare(gs, s->addr, s->pages) : bhgnttab_unmap(gt, s->addr,
                                                                                 s->pages);
    else
        r = close(s->fd);
    if (r != 0) {
        reply_err(errno, "release");
        return;
    }
    memset(s, 0, sizeof(*s));
    printf("ok\n");
}

/* sharemany DOMID N: as many single-page grants as asked; how many it got. */
static void cmd_sharemany(char **argv)
{
    uint32_t domid = (uint32_t)atoi(argv[1]), n = (uint32_t)atoi(argv[2]), got = 0;
    bh_grant_ref_t refs[64];

    while (got < n) {
        uint32_t batch = n - got > 64 ? 64 : n - got;
        if (bhgntshr_share_pages(gs, domid, (int)batch, refs, 1) == NULL) {
            printf("err %s %u\n", ename(errno), got);
            return;
        }
        got += batch;
    }
    printf("ok %u\n", got);
}

static void cmd_copy(char **argv)
{
    /* copyto DOMID REF OFF BYTE | copyfrom DOMID REF OFF */
    bhgnttab_grant_copy_segment_t seg;
    uint8_t local = argv[4] ? (uint8_t)atoi(argv[4]) : 0;
    int to = strcmp(argv[0], "copyto") == 0;

    memset(&seg, 0, sizeof(seg));
    seg.len = 1;
    if (to) {
        seg.source.virt = &local;
        seg.dest.foreign.domid = (uint16_t)atoi(argv[1]);
        seg.dest.foreign.ref = (uint32_t)strtoul(argv[2], NULL, 10);
        seg.dest.foreign.offset = (uint16_t)atoi(argv[3]);
        seg.flags = 2; /* GNTCOPY_dest_gref */
    } else {
        seg.dest.virt = &local;
        seg.source.foreign.domid = (uint16_t)atoi(argv[1]);
        seg.source.foreign.ref = (uint32_t)strtoul(argv[2], NULL, 10);
        seg.source.foreign.offset = (uint16_t)atoi(argv[3]);
        seg.flags = 1; /* GNTCOPY_source_gref */
    }
    if (bhgnttab_grant_copy(gt, 1, &seg) != 0) {
        reply_err(errno, "copy");
        return;
    }
    printf("ok %d %u\n", seg.status, local);
}

static void cmd_wait(char **argv)
{
    struct pollfd p = {.fd = bhevtchn_fd(ev), .events = POLLIN};
    int port;

    if (poll(&p, 1, atoi(argv[1])) != 1) {
        reply_err(ETIMEDOUT, NULL);
        return;
    }
    if ((port = bhevtchn_pending(ev)) < 0) {
        reply_err(errno, "pending");
        return;
    }
    bhevtchn_unmask(ev, (bh_evtchn_port_t)port);
    printf("ok %d\n", port);
}

static void cmd_evt(int argc, char **argv)
{
    int r;

    if (strcmp(argv[0], "evt_unbound") == 0)
        r = bhevtchn_bind_unbound_port(ev, (uint32_t)atoi(argv[1]));
    else if (strcmp(argv[0], "evt_bind") == 0 && argc > 2)
        r = bhevtchn_bind_interdomain(ev, (uint32_t)atoi(argv[1]), (uint32_t)atoi(argv[2]));
    else if (strcmp(argv[0], "notify") == 0)
        r = bhevtchn_notify(ev, (uint32_t)atoi(argv[1]));
    else
        r = bhevtchn_unbind(ev, (uint32_t)atoi(argv[1]));
    if (r < 0)
        reply_err(errno, argv[0]);
    else
        printf("ok %d\n", r);
}

static int need(int argc, int n)
{
    if (argc >= n)
        return 1;
    reply_err(EINVAL, "too few arguments");
    return 0;
}

static void run(int argc, char **argv)
{
    const char *c = argv[0];

    if (strcmp(c, "hello") == 0)
        printf("ok %d\n", bhplat_domid());
    else if (strcmp(c, "share") == 0 && need(argc, 4))
        cmd_share(argv);
    else if (strcmp(c, "map") == 0 && need(argc, 4))
        cmd_map(argc, argv);
    else if (strcmp(c, "mapsplit") == 0 && need(argc, 4))
        cmd_mapsplit(argc, argv);
    else if (strcmp(c, "unmapmany") == 0 && need(argc, 2))
        cmd_unmapmany(argc, argv);
    else if ((strcmp(c, "poke") == 0 && need(argc, 4)) || (strcmp(c, "peek") == 0 && need(argc, 3)))
        cmd_poke_peek(c[1] == 'o', argv);
    else if ((strcmp(c, "unshare") == 0 || strcmp(c, "unmap") == 0 || strcmp(c, "close") == 0) &&
             need(argc, 2))
        cmd_release(argv);
    else if (strcmp(c, "sharemany") == 0 && need(argc, 3))
        cmd_sharemany(argv);
    else if ((strcmp(c, "copyto") == 0 && need(argc, 5)) ||
             (strcmp(c, "copyfrom") == 0 && need(argc, 4)))
        cmd_copy(argv);
    else if (strcmp(c, "rawmap") == 0 && need(argc, 4))
        cmd_rawmap(argv);
    else if (strcmp(c, "rawshare") == 0 && need(argc, 3))
        cmd_rawshare(argv);
    else if (strcmp(c, "rawend") == 0 && need(argc, 2))
        cmd_rawend(argv);
    else if ((strcmp(c, "fdwrite") == 0 || strcmp(c, "fdreopen") == 0 ||
              strcmp(c, "fdtrunc") == 0 || strcmp(c, "fdmprotect") == 0) &&
             need(argc, 2))
        cmd_fdtry(c, argv);
    else if (strcmp(c, "raw") == 0 && need(argc, 2))
        cmd_raw(argc, argv);
    else if (strcmp(c, "rawfds") == 0)
        cmd_rawfds();
    else if (strcmp(c, "wait") == 0 && need(argc, 2))
        cmd_wait(argv);
    else if ((strncmp(c, "evt_", 4) == 0 || strcmp(c, "notify") == 0 ||
              strcmp(c, "unbind") == 0) &&
             need(argc, 2))
        cmd_evt(argc, argv);
    else if (argc >= 1 && strcmp(c, "uid") == 0)
        printf("ok %u\n", (unsigned)getuid());
    else
        reply_err(EINVAL, "unknown command");
}

int main(void)
{
    char line[8192], *argv[MAX_ARGS + 1];

    setvbuf(stdout, NULL, _IOLBF, 0);
    gs = bhgntshr_open(NULL, 0);
    gt = bhgnttab_open(NULL, 0);
    ev = bhevtchn_open(NULL, 0);
    if (gs == NULL || gt == NULL || ev == NULL) {
        printf("err %s open\n", ename(errno));
        return 1;
    }
    while (fgets(line, sizeof(line), stdin) != NULL) {
        int argc = 0;
        for (char *t = strtok(line, " \t\n"); t && argc < MAX_ARGS; t = strtok(NULL, " \t\n"))
            argv[argc++] = t;
        argv[argc] = NULL;
        if (argc == 0)
            continue;
        if (strcmp(argv[0], "exit") == 0)
            break;
        run(argc, argv);
    }
    bhevtchn_close(ev);
    bhgnttab_close(gt);
    bhgntshr_close(gs);
    return 0;
}
