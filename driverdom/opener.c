/*
 * opener.c - a Xen driver domain's disks, opened for its confined daemon.
 *
 * In the simulation a driver domain is given its disks by dom0's broker
 * as file descriptors; it never opens storage by name, and confine.c
 * takes the file system away before anything is served.  On Xen the
 * storage is this domain's own (a loop device, an LV, an image file), and
 * the names are what dom0's toolstack wrote in the backend directory
 * ("params").  So before confining itself the daemon forks this opener,
 * which keeps the file system and does one thing: given a device (backend
 * kind, frontend domain, device id) it reads that device's params and mode
 * from this domain's backend directory in XenStore, which only dom0 and
 * this domain can write, opens the target, and passes the descriptor back.
 * A target that is a unix socket is an NBD server's (an nbdkit or qemu-nbd
 * in this domain): the answer is a fresh connection to it, flagged NBD,
 * and a worker asks again for each queue's own connection.  A worker asks
 * too for a cdrom's new medium, which its keeper does not hold.
 * A keeper asks, as it asks dom0's broker in the simulation; a confined
 * process that was taken over can get nothing but the disks dom0 assigned.
 *
 * A vif's TAP is made here too (vifplug.c), as Xen's vif-bridge hotplug
 * script would plug the kernel netback's vif: this process keeps
 * CAP_NET_ADMIN and /dev/net/tun, the confined daemon has neither.  It
 * takes the names (vifname, bridge) and the mtu from the same backend
 * directory, and answers with one fd per queue.
 *
 * Each request carries a fresh socket of the asker's (SCM_RIGHTS) and the
 * answer goes back on it alone, so that keepers asking at once never read
 * each other's answers through the one shared socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/un.h>
#include <unistd.h>

#include <xenstore.h>

#include "drvdom.h"

struct open_req {
    char kind[16]; /* the backend kind: vbd, qdisk, vbd3; vif for a TAP */
    uint32_t domid, devid;
    uint32_t queues; /* vif: the most TAP queues the asker takes */
};

struct open_rsp {
    int32_t err; /* 0, or the errno */
    uint32_t readonly;
    uint32_t nbd; /* the fd is a socket connected to the disk's NBD server */
    uint64_t size;
    char why[160];
};

static int opener_fd = -1;

int drvdom_opener_fd(void)
{
    return opener_fd;
}

/* Sends buf and, with it, the nfds (0..BHDEV_MAX_FDS) descriptors fds. */
static int send_fds(int sock, const void *buf, size_t len, const int *fds, unsigned int nfds)
{
    char cbuf[CMSG_SPACE(sizeof(int) * BHDEV_MAX_FDS)] = {0};
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};

    if (nfds > 0) {
        m.msg_control = cbuf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    return sendmsg(sock, &m, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static int send_fd(int sock, const void *buf, size_t len, int fd)
{
    return send_fds(sock, buf, len, &fd, fd >= 0 ? 1 : 0);
}

/*
 * Receives exactly len bytes and at most max (1..BHDEV_MAX_FDS)
 * descriptors into fds, their number in *nfds.  Anything else - more fds,
 * a short or long message - closes whatever came and fails.
 */
static int recv_fds(int sock, void *buf, size_t len, int *fds, unsigned int max,
                    unsigned int *nfds)
{
    char cbuf[CMSG_SPACE(sizeof(int) * BHDEV_MAX_FDS)];
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    unsigned int got = 0;
    bool extra = false;

    for (struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&m) : NULL; c != NULL;
         c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len < CMSG_LEN(0))
            continue;
        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (got < max) {
                fds[got++] = fd;
            } else {
                close(fd); /* more than we take: refused, and not leaked */
                extra = true;
            }
        }
    }
    *nfds = got;
    if (n != (ssize_t)len || extra || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        int err = n == 0 ? ENOTCONN : n < 0 ? errno : EPROTO;
        for (unsigned int i = 0; i < got; i++)
            close(fds[i]);
        *nfds = 0;
        errno = err;
        return -1;
    }
    return 0;
}

/* Receives exactly len bytes and at most one descriptor (*fd, -1 if none). */
static int recv_fd(int sock, void *buf, size_t len, int *fd)
{
    unsigned int n;

    *fd = -1;
    if (recv_fds(sock, buf, len, fd, 1, &n) != 0)
        return -1;
    if (n == 0)
        *fd = -1;
    return 0;
}

/* "nbd+unix:///?socket=" (libnbd's URI of the default export over a unix socket) */
#define NBD_UNIX_URI "nbd+unix:///?socket="

/* s for a one-line message: at most 80 bytes of it, a byte not printable shown as '?'. */
static const char *shown(const char *s, char *buf, size_t len)
{
    size_t i;

    for (i = 0; s[i] != '\0' && i + 1 < len && i < 80; i++)
        buf[i] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
    buf[i] = '\0';
    return buf;
}

/*
 * The path a params names, or NULL with why: the target after qdisk's
 * "aio:"/"raw:" format, or the socket of an nbd+unix URI.  Other URIs (TCP,
 * TLS, a named export, query parameters beyond socket=) are refused: the
 * engine speaks NBD to the default export over a unix socket only.
 */
const char *drvdom_target_path(const char *params, char *why, size_t len)
{
    const char *t = params;
    char sb[96];

    if (strncmp(t, "aio:", 4) == 0 || strncmp(t, "raw:", 4) == 0)
        t += 4;
    if (strncmp(t, NBD_UNIX_URI, strlen(NBD_UNIX_URI)) == 0) {
        t += strlen(NBD_UNIX_URI);
        if (t[0] == '/' && strpbrk(t, "&%#?") == NULL)
            return t;
    } else if (strncmp(t, "nbd", 3) != 0 || strchr(t, ':') == NULL) {
        if (t[0] != '\0')
            return t;
        snprintf(why, len, "params '%s' names no target", shown(params, sb, sizeof(sb)));
        errno = ENOENT;
        return NULL;
    }
    snprintf(why, len,
             "params '%s' is refused: an NBD disk is params=PATH of the server's unix socket "
             "or " NBD_UNIX_URI "PATH (absolute, unencoded)",
             shown(params, sb, sizeof(sb)));
    errno = EINVAL;
    return NULL;
}

int drvdom_open_target(const char *params, bool readonly, uint64_t *size, bool *nbd, char *why,
                       size_t len)
{
    const char *target = drvdom_target_path(params, why, len);
    struct stat st;
    char sb[96];
    int fd;

    *size = 0;
    *nbd = false;
    if (target == NULL)
        return -1;
    if (stat(target, &st) == 0 && S_ISSOCK(st.st_mode)) {
        /* An NBD server's socket: a connection of its own for the asker (one per queue). */
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        size_t n = strlen(target);

        if (n >= sizeof(sa.sun_path)) {
            snprintf(why, len, "target %s...: a socket path past %zu bytes",
                     shown(target, sb, sizeof(sb)), sizeof(sa.sun_path) - 1);
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(sa.sun_path, target, n);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            int err = errno;

            snprintf(why, len, "cannot reach the NBD server at %s: %s (is it running?)",
                     shown(target, sb, sizeof(sb)),
                     strerror(err));
            if (fd >= 0)
                close(fd);
            errno = err;
            return -1;
        }
        *nbd = true;
        return fd;
    }
    /* O_NONBLOCK: a fifo must not hang the opener before fstat refuses it. */
    fd = open(target, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int err = errno;

        snprintf(why, len, "target %s: %s", shown(target, sb, sizeof(sb)), strerror(err));
        errno = err;
        return -1;
    }
    if (fstat(fd, &st) != 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
        snprintf(why, len,
                 "target %s is neither a file, a block device nor an NBD server's unix socket",
                 shown(target, sb, sizeof(sb)));
        close(fd);
        errno = EINVAL;
        return -1;
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0 ||
        (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, size) != 0)) {
        int err = errno;

        snprintf(why, len, "target %s: %s", shown(target, sb, sizeof(sb)), strerror(err));
        close(fd);
        errno = err;
        return -1;
    }
    if (S_ISREG(st.st_mode))
        *size = (uint64_t)st.st_size;
    return fd;
}

/* One request: the device's target from XenStore, opened; the descriptor or -1 with r->err. */
static int open_target(struct xs_handle *xs, unsigned int self, const struct open_req *q,
                       struct open_rsp *r)
{
    char path[256], *params = NULL, *mode = NULL;
    unsigned int len;
    bool nbd;
    int fd = -1;

    if (memchr(q->kind, '\0', sizeof(q->kind)) == NULL ||
        (strcmp(q->kind, "vbd") != 0 && strcmp(q->kind, "qdisk") != 0 &&
         strcmp(q->kind, "vbd3") != 0)) {
        r->err = EINVAL;
        snprintf(r->why, sizeof(r->why), "no disk of backend kind '%.15s'", q->kind);
        return -1;
    }
    snprintf(path, sizeof(path), "/local/domain/%u/backend/%s/%u/%u/params", self, q->kind,
             q->domid, q->devid);
    params = xs_read(xs, XBT_NULL, path, &len);
    snprintf(path, sizeof(path), "/local/domain/%u/backend/%s/%u/%u/mode", self, q->kind, q->domid,
             q->devid);
    mode = xs_read(xs, XBT_NULL, path, &len);
    if (params == NULL || params[0] == '\0') {
        r->err = ENOENT; /* an empty drive, or a device already gone: probe decides */
        snprintf(r->why, sizeof(r->why), "no params for %s %u/%u", q->kind, q->domid, q->devid);
        goto out;
    }
    r->readonly = mode != NULL && strcmp(mode, "r") == 0;
    fd = drvdom_open_target(params, r->readonly != 0, &r->size, &nbd, r->why, sizeof(r->why));
    if (fd < 0)
        r->err = errno;
    r->nbd = nbd;
out:
    free(params);
    free(mode);
    return fd;
}

/* A backend key of vif domid/devid in this domain's directory: malloc'd, or NULL. */
static char *vif_key(struct xs_handle *xs, unsigned int self, const struct open_req *q,
                     const char *key)
{
    char path[256];

    snprintf(path, sizeof(path), "/local/domain/%u/backend/vif/%u/%u/%s", self, q->domid,
             q->devid, key);
    return xs_read(xs, XBT_NULL, path, NULL);
}

/*
 * A vif's TAP, plugged as vif-bridge would plug it, from what dom0 wrote
 * in this domain's backend directory: the number of queue fds, or -1 with
 * r->err and r->why.
 */
static int open_tap(struct xs_handle *xs, unsigned int self, const struct open_req *q,
                    struct open_rsp *r, int *fds)
{
    char *fe = vif_key(xs, self, q, "frontend-id"), *vifname = vif_key(xs, self, q, "vifname"),
         *bridge = vif_key(xs, self, q, "bridge"), *mtu = vif_key(xs, self, q, "mtu"),
         *script = vif_key(xs, self, q, "script");
    /* Linux's netback offers a queue per CPU (xenvif_max_queues): so do we, up to the asker's. */
    unsigned int cpus = get_nprocs() > 0 ? (unsigned int)get_nprocs() : 1,
                 queues = q->queues < cpus ? q->queues : cpus;
    struct vifplug s;
    int n = -1;

    if (fe == NULL) {
        r->err = ENOENT; /* a device already gone: the keeper ends */
        snprintf(r->why, sizeof(r->why), "no vif %u/%u in this domain's backend directory",
                 q->domid, q->devid);
    } else if (vifplug_spec(q->domid, q->devid, vifname, bridge, mtu, script, queues, &s, r->why,
                            sizeof(r->why)) != 0 ||
               vifplug_make(&s, fds, r->why, sizeof(r->why)) != 0) {
        r->err = errno;
    } else {
        n = (int)s.queues;
    }
    free(fe);
    free(vifname);
    free(bridge);
    free(mtu);
    free(script);
    return n;
}

static void opener_main(int sock)
{
    struct xs_handle *xs = xs_open(0);
    int self = bhplat_domid();

    prctl(PR_SET_NAME, "bh-opener");
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* its daemon gone, there is no one to serve */
    if (xs == NULL || self <= 0) {
        logline("opener: cannot reach XenStore: %s: no disk can be opened", strerror(errno));
        _exit(1);
    }
    for (;;) {
        struct open_req q;
        struct open_rsp r;
        int reply, fd;

        if (recv_fd(sock, &q, sizeof(q), &reply) != 0) {
            if (errno == ENOTCONN || errno == EBADF)
                break; /* the daemon and its keepers are gone: every end closed */
            continue;  /* a malformed request: its asker hears nothing, others go on */
        }
        if (reply < 0)
            continue;
        memset(&r, 0, sizeof(r));
        if (memchr(q.kind, '\0', sizeof(q.kind)) != NULL && strcmp(q.kind, "vif") == 0) {
            int fds[BHDEV_MAX_FDS];
            int n = open_tap(xs, (unsigned int)self, &q, &r, fds);

            send_fds(reply, &r, sizeof(r), fds, n > 0 ? (unsigned int)n : 0);
            for (int i = 0; i < n; i++)
                close(fds[i]);
            if (n > 0)
                logline("opener: TAP for vif %u/%u made, %d queue%s", q.domid, q.devid, n,
                        n > 1 ? "s" : "");
            close(reply);
            continue;
        }
        fd = open_target(xs, (unsigned int)self, &q, &r);
        send_fd(reply, &r, sizeof(r), fd);
        if (fd >= 0)
            close(fd);
        close(reply);
    }
    xs_close(xs);
    _exit(0);
}

int drvdom_opener_start(char *why, size_t len)
{
    int sv[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(why, len, "cannot make the opener's socket: %s", strerror(errno));
        return -1;
    }
    if ((pid = fork()) < 0) {
        snprintf(why, len, "cannot fork the opener: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        /* Nothing of the daemon's but its log: a ready-fd pipe sees EOF when the daemon goes. */
        if (sv[1] > 3)
            close_range(3, (unsigned int)sv[1] - 1, 0);
        close_range((unsigned int)sv[1] + 1, ~0u, 0);
        opener_main(sv[1]);
    }
    close(sv[1]);
    opener_fd = sv[0];
    return 0;
}

/*
 * One question to the opener, on a fresh socket of ours that goes with it:
 * its answer in r, the fds it passed (up to max) in fds.  Returns how many
 * fds came, or -1 with why and errno, every fd closed, when the opener
 * could not be asked or said no.
 */
static int ask(const struct open_req *q, struct open_rsp *r, int *fds, unsigned int max,
               char *why, size_t len)
{
    unsigned int n = 0;
    int sv[2], rc = -1;

    if (opener_fd < 0) {
        snprintf(why, len,
                 "no opener: bulkhead-drvdom on Xen starts one before it confines itself");
        errno = ENOTCONN;
        return -1;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(why, len, "cannot ask the opener: %s", strerror(errno));
        return -1;
    }
    if (send_fd(opener_fd, q, sizeof(*q), sv[1]) != 0) {
        snprintf(why, len, "cannot ask the opener: %s (is bh-opener running?)", strerror(errno));
        goto out;
    }
    close(sv[1]);
    sv[1] = -1;
    if (recv_fds(sv[0], r, sizeof(*r), fds, max, &n) != 0) {
        snprintf(why, len, "the opener did not answer (is bh-opener running?)");
        errno = EPROTO;
        goto out;
    }
    r->why[sizeof(r->why) - 1] = '\0';
    if (r->err != 0 || n == 0) {
        for (unsigned int i = 0; i < n; i++)
            close(fds[i]);
        snprintf(why, len, "%s", r->err != 0 ? r->why : "the opener sent nothing");
        errno = r->err != 0 ? r->err : EPROTO;
        goto out;
    }
    rc = (int)n;
out:
    close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    return rc;
}

int drvdom_opener_disk(const char *kind, uint32_t domid, uint32_t devid, uint64_t *size, bool *ro,
                       bool *nbd, char *why, size_t len)
{
    struct open_req q = {.domid = domid, .devid = devid};
    struct open_rsp r;
    int fd;

    snprintf(q.kind, sizeof(q.kind), "%s", kind);
    if (ask(&q, &r, &fd, 1, why, len) < 0)
        return -1;
    *size = r.size;
    *ro = r.readonly != 0;
    *nbd = r.nbd != 0;
    return fd;
}

int drvdom_opener_tap(uint32_t domid, uint32_t devid, unsigned int max_queues, int *fds,
                      char *why, size_t len)
{
    struct open_req q = {.domid = domid, .devid = devid, .queues = max_queues};
    struct open_rsp r;

    if (max_queues == 0 || max_queues > BHDEV_MAX_FDS) {
        snprintf(why, len, "%u TAP queues asked: 1..%u", max_queues, BHDEV_MAX_FDS);
        errno = EINVAL;
        return -1;
    }
    snprintf(q.kind, sizeof(q.kind), "vif");
    return ask(&q, &r, fds, max_queues, why, len);
}
