/*
 * framestore.c - where grant frames live while they are granted.
 *
 * Every frame is a one-page memfd, and something must hold it open between
 * the grant and the last map.  The daemon cannot hold them all itself: a
 * domain may have 32768 grants, and the open-file limit is a hard 20000 on
 * machines where even root lacks CAP_SYS_RESOURCE.  So frames are kept by
 * store processes, children of the daemon that do nothing but hold fds:
 * each takes a batch of fds over a socketpair and answers with the numbers
 * they got, and closes the ones it is told to.  The daemon never needs the
 * fd back: it opens /proc/STORE/fd/N, which gives a new open file
 * description of the same page, read-only or writable as the mapping asks.
 * New stores start as the full ones fill up.
 *
 * Stores trust only the daemon (their one socket), hold no other resource,
 * and die with it (PR_SET_PDEATHSIG).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hv.h"

#define FS_MARGIN 64 /* fds a store keeps free for its socket and a batch in flight */

enum { FS_PUT = 1, FS_DROP = 2 };

struct fs_msg {
    uint32_t op;
    uint32_t count;
    int32_t fds[HVW_MAX_FDS]; /* FS_DROP: the numbers to close */
};

struct fs_store {
    pid_t pid;
    int sock;
    unsigned int held;
    unsigned int cap;
};

static struct fs_store *stores;
static unsigned int nstores;

/* ---- the store process ---- */

static void store_put(int sock, struct msghdr *m, uint8_t *held, size_t maxfd)
{
    struct fs_msg reply = {.op = FS_PUT};

    for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm != NULL; cm = CMSG_NXTHDR(m, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n && reply.count < HVW_MAX_FDS; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (fd >= 0 && (size_t)fd < maxfd)
                held[fd] = 1;
            reply.fds[reply.count++] = fd;
        }
    }
    if (send(sock, &reply, sizeof(reply), MSG_NOSIGNAL) < 0)
        _exit(1);
}

static void store_drop(const struct fs_msg *msg, uint8_t *held, size_t maxfd)
{
    for (uint32_t i = 0; i < msg->count && i < HVW_MAX_FDS; i++) {
        int fd = msg->fds[i];
        /* Only what we were given: never our own socket. */
        if (fd >= 0 && (size_t)fd < maxfd && held[fd]) {
            held[fd] = 0;
            close(fd);
        }
    }
}

static void store_main(int sock, size_t maxfd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * HVW_MAX_FDS)];
        struct cmsghdr align;
    } u;
    uint8_t *held = calloc(maxfd, 1);
    struct fs_msg msg;

    if (held == NULL)
        _exit(1);
    for (;;) {
        struct iovec iov = {&msg, sizeof(msg)};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                           .msg_controllen = sizeof(u.buf)};
        ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
        if (n <= 0)
            _exit(0); /* the daemon is gone: so are we, and the frames we held */
        if (msg.op == FS_PUT)
            store_put(sock, &m, held, maxfd);
        else if (msg.op == FS_DROP)
            store_drop(&msg, held, maxfd);
    }
}

static int store_start(struct hv *hv, struct fs_store *s)
{
    struct rlimit rl;
    int sv[2];
    pid_t parent = getpid();

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((s->pid = fork()) < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(0);
        /* Nothing of the daemon's but our socket. */
        if (dup2(sv[1], 3) < 0)
            _exit(1);
        close_range(4, ~0u, 0);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        store_main(3, rl.rlim_cur);
    }
    close(sv[1]);
    s->sock = sv[0];
    s->held = 0;
    s->cap = rl.rlim_max > FS_MARGIN * 2 ? (unsigned int)(rl.rlim_max - FS_MARGIN) : 64;
    hv_log(hv, "framestore: store %u started, pid %d, room for %u frames", nstores, (int)s->pid,
           s->cap);
    return 0;
}

/* A store with room for n more frames, started if need be. */
static int store_with_room(struct hv *hv, unsigned int n)
{
    struct fs_store *grown;

    for (unsigned int i = 0; i < nstores; i++)
        if (stores[i].pid > 0 && stores[i].held + n <= stores[i].cap)
            return (int)i;
    if ((grown = realloc(stores, (nstores + 1) * sizeof(*stores))) == NULL)
        return -1;
    stores = grown;
    if (store_start(hv, &stores[nstores]) != 0)
        return -1;
    return (int)nstores++;
}

int framestore_put(struct hv *hv, const int *fds, unsigned int n, struct hv_frame *out)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * HVW_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct fs_msg msg = {.op = FS_PUT, .count = n}, reply;
    struct iovec iov = {&msg, sizeof(msg)};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr *cm;
    int s;

    if (n == 0 || n > HVW_MAX_FDS || (s = store_with_room(hv, n)) < 0) {
        errno = n == 0 || n > HVW_MAX_FDS ? EINVAL : ENOMEM;
        return -1;
    }
    memset(&u, 0, sizeof(u));
    cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
    if (sendmsg(stores[s].sock, &m, MSG_NOSIGNAL) < 0 ||
        recv(stores[s].sock, &reply, sizeof(reply), 0) != sizeof(reply) || reply.count != n) {
        hv_log(hv, "framestore: store %d failed: %s", s, strerror(errno));
        errno = EIO;
        return -1;
    }
    for (unsigned int i = 0; i < n; i++) {
        out[i].store = (uint16_t)s;
        out[i].fd = reply.fds[i];
    }
    stores[s].held += n;
    return 0;
}

int framestore_open(struct hv *hv, const struct hv_frame *f, int flags)
{
    char path[64];

    (void)hv;
    if (f->store >= nstores || stores[f->store].pid <= 0) {
        errno = EIO;
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)stores[f->store].pid, f->fd);
    return open(path, flags | O_CLOEXEC);
}

void framestore_drop(struct hv *hv, const struct hv_frame *f)
{
    struct fs_msg msg = {.op = FS_DROP, .count = 1};

    if (f->store >= nstores || stores[f->store].pid <= 0)
        return;
    msg.fds[0] = f->fd;
    if (send(stores[f->store].sock, &msg, sizeof(msg), MSG_NOSIGNAL) < 0) {
        if (hv != NULL)
            hv_log(hv, "framestore: cannot drop a frame in store %u: %s", f->store,
                   strerror(errno));
    } else {
        stores[f->store].held--;
    }
}

unsigned int framestore_count(void)
{
    unsigned int n = 0;

    for (unsigned int i = 0; i < nstores; i++)
        n += stores[i].held;
    return n;
}

unsigned int framestore_nstores(void)
{
    unsigned int n = 0;

    for (unsigned int i = 0; i < nstores; i++)
        n += stores[i].pid > 0;
    return n;
}

void framestore_shutdown(struct hv *hv)
{
    if (nstores == 0)
        return;
    for (unsigned int i = 0; i < nstores; i++) {
        if (stores[i].pid <= 0)
            continue;
        close(stores[i].sock);
        waitpid(stores[i].pid, NULL, 0);
    }
    hv_log(hv, "framestore: %u store(s) stopped", nstores);
    free(stores);
    stores = NULL;
    nstores = 0;
}
