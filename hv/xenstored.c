/*
 * xenstored.c - bulkhead-xenstored: the XenStore daemon of the simulation.
 * Options, the state directory, the sockets, the link to bulkhead-hv and
 * the one event loop.
 *
 *   bulkhead-xenstored [--state-dir DIR] [--ready-fd FD] [--quota NAME=N]...
 *
 * It runs as root, in the foreground, beside bulkhead-hv in the same state
 * directory: it serves DIR/xenstored.sock (a stream socket, as libxenstore
 * expects: XENSTORED_PATH), learns from DIR/hv.sock which uid is which
 * domain and when a domain dies, and logs one line per event to
 * DIR/xenstored.log.  SIGTERM or SIGINT stops it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "hvwire.h"
#include "daemon.h"
#include "xenstored.h"

#define XSD_DEFAULT_STATE_DIR "/run/bulkhead"
#define XS_DOM_SNDBUF         8192
#define TOK_LISTEN            ((uint64_t)1) /* epoll tokens below any pointer */
#define TOK_SIGNAL            ((uint64_t)2)
#define TOK_HV                ((uint64_t)3)

struct uid_map {
    uint32_t uid;
    uint16_t domid;
};

struct env {
    struct xsd d;
    char state_dir[256];
    char sock_path[300];
    int listen_fd, epfd, sigfd;
    int hv_fd;    /* blocking calls: DOM_LIST */
    int hv_ev_fd; /* DOM_WATCH events */
    uint32_t hv_seq;
    struct uid_map *map;
    size_t nmap;
    bool stopping;
    int rc;
};

/* ---- bulkhead-hv ---- */

static int hv_connect(struct env *e, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {5, 0};
    int fd;

    if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%.*s/hv.sock",
                         (int)(sizeof(sa.sun_path) - 8), e->state_dir) >= sizeof(sa.sun_path) ||
        strlen(e->state_dir) + 8 >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "state directory path too long for a socket: %.200s", e->state_dir);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(err, errlen, "cannot reach bulkhead-hv at %s: %s: start it first ('bulkhead up')",
                 sa.sun_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* bulkhead-hv answers at once; a hung one must not hang us for good. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* One request and its reply on a blocking channel; returns the reply's err or -1. */
static int hv_call(struct env *e, int fd, uint16_t op, void *out, size_t cap, size_t *got)
{
    static uint8_t buf[HVW_MAX_MSG];
    struct hvw_hdr h = {.magic = HVW_MAGIC, .op = op, .seq = ++e->hv_seq};
    ssize_t n;

    if (send(fd, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h))
        return -1;
    do
        n = recv(fd, buf, sizeof(buf), 0);
    while (n >= (ssize_t)sizeof(h) && (memcpy(&h, buf, sizeof(h)), !(h.flags & HVW_F_REPLY)));
    if (n < (ssize_t)sizeof(h) || h.magic != HVW_MAGIC || h.seq != e->hv_seq)
        return -1;
    if (got != NULL)
        *got = (size_t)n - sizeof(h) < cap ? (size_t)n - sizeof(h) : cap;
    if (out != NULL)
        memcpy(out, buf + sizeof(h), got ? *got : 0);
    return h.err;
}

/* Who is who: bulkhead-hv's domain table, uid -> domid. */
static int map_refresh(struct env *e)
{
    static uint8_t buf[HVW_MAX_MSG];
    const struct hvw_dom_list_rsp *l = (const void *)buf;
    struct uid_map *m;
    size_t got = 0;
    uint32_t n;

    if (hv_call(e, e->hv_fd, HVW_OP_DOM_LIST, buf, sizeof(buf), &got) != 0 || got < 8)
        return -1;
    n = l->count;
    if (n > (got - 8) / sizeof(struct hvw_dominfo) || (m = calloc(n + 1, sizeof(*m))) == NULL)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        struct hvw_dominfo di;
        memcpy(&di, buf + 8 + i * sizeof(di), sizeof(di));
        m[i].uid = di.uid;
        m[i].domid = di.domid;
    }
    free(e->map);
    e->map = m;
    e->nmap = n;
    return 0;
}

static int map_domid(struct env *e, uint32_t uid, bool refresh)
{
    for (size_t i = 0; i < e->nmap; i++)
        if (e->map[i].uid == uid)
            return e->map[i].domid;
    if (refresh && map_refresh(e) == 0)
        return map_domid(e, uid, false);
    return -1;
}

static bool domain_exists(struct xsd *d, uint16_t domid)
{
    struct env *e = d->env;

    map_refresh(e);
    for (size_t i = 0; i < e->nmap; i++)
        if (e->map[i].domid == domid)
            return true;
    return false;
}

static void on_hv_event(struct env *e)
{
    uint8_t buf[sizeof(struct hvw_hdr) + sizeof(struct hvw_dominfo)];
    struct hvw_dominfo di;
    struct hvw_hdr h;
    ssize_t n = recv(e->hv_ev_fd, buf, sizeof(buf), MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        xsd_log(&e->d, "bulkhead-hv went away (its channel closed): stopping");
        e->stopping = true;
        e->rc = 1;
        return;
    }
    memcpy(&h, buf, sizeof(h));
    if ((size_t)n < sizeof(buf) || h.op != HVW_EV_DOMAIN || !(h.flags & HVW_F_EVENT))
        return;
    memcpy(&di, buf + sizeof(h), sizeof(di));
    map_refresh(e);
    if (di.state == HVW_DOM_GONE)
        xsd_domain_died(&e->d, di.domid, true);
    else if (di.state == HVW_DOM_SHUTDOWN || di.state == HVW_DOM_DYING)
        xsd_domain_died(&e->d, di.domid, false);
}

/* ---- connections ---- */

static void conn_arm(struct env *e, struct xs_conn *c)
{
    struct epoll_event ev = {.data.ptr = c};

    ev.events = (xsd_conn_may_read(&e->d, c) ? EPOLLIN : 0) | (c->out ? EPOLLOUT : 0);
    if (c->dead || ev.events == c->ev_mask)
        return;
    if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->ev_mask = ev.events;
}

static void conn_flush(struct env *e, struct xs_conn *c)
{
    while (c->out != NULL && !c->dead) {
        ssize_t n = send(c->fd, c->out->data + c->out_off, c->out->len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) {
            xsd_conn_kill(&e->d, c, n < 0 ? strerror(errno) : "cannot write");
            return;
        }
        xsd_conn_wrote(&e->d, c, (size_t)n);
    }
    conn_arm(e, c);
}

static void conn_output(struct xsd *d, struct xs_conn *c)
{
    conn_flush(d->env, c);
}

static void conn_read(struct env *e, struct xs_conn *c)
{
    uint8_t buf[XENSTORE_PAYLOAD_MAX + sizeof(struct xsd_sockmsg)];

    /* A bounded turn, so that one busy client does not starve the others. */
    for (unsigned int i = 0; i < 2 * XS_MSGS_PER_TURN && xsd_conn_may_read(&e->d, c); i++) {
        ssize_t n = recv(c->fd, buf, xsd_conn_want(c), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) {
            xsd_conn_kill(&e->d, c, n < 0 ? strerror(errno) : "closed by its peer");
            return;
        }
        xsd_conn_input(&e->d, c, buf, (size_t)n);
    }
    conn_arm(e, c);
}

static void accept_one(struct env *e)
{
    struct epoll_event ev = {.events = EPOLLIN};
    struct ucred cred;
    socklen_t len = sizeof(cred);
    struct xs_conn *c;
    int fd, domid;

    if ((fd = accept4(e->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0)
        return;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        close(fd);
        return;
    }
    domid = cred.uid == 0 ? 0 : map_domid(e, cred.uid, true);
    if (domid < 0) {
        xsd_log(&e->d, "refused a connection from uid %u pid %d: not a domain", cred.uid, cred.pid);
        close(fd);
        return;
    }
    if ((c = xsd_conn_new(&e->d, fd, (uint16_t)domid)) == NULL) {
        xsd_log(&e->d, "refused a connection from domain %d (pid %d): %s", domid, cred.pid,
                errno == EACCES   ? "not introduced (dom0 must INTRODUCE it first)"
                : errno == EDQUOT ? "over its connection quota"
                                  : strerror(errno));
        close(fd);
        return;
    }
    /*
     * A small send buffer for a domain, so that replies it leaves unread
     * soon stay in our queue, where the outstanding quota counts them
     * (on Xen the 1 KiB ring does this).  Dom0 keeps the default.
     */
    if (domid != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &(int){XS_DOM_SNDBUF}, sizeof(int));
    ev.data.ptr = c;
    c->ev_mask = EPOLLIN;
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        xsd_conn_free(&e->d, c);
        close(fd);
        return;
    }
    xsd_log(&e->d, "connection %llu from domain %d (pid %d)", (unsigned long long)c->id, domid,
            cred.pid);
}

/* Dead connections go once no event of the batch can name them any more. */
static void sweep(struct env *e)
{
    struct xs_conn *c, *next;

    for (c = e->d.conns; c != NULL; c = next) {
        next = c->next;
        if (c->dead) {
            epoll_ctl(e->epfd, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
            xsd_conn_free(&e->d, c);
        }
    }
}

/* ---- set-up ---- */

static void usage(void)
{
    fprintf(stderr, "usage: bulkhead-xenstored [--state-dir DIR] [--ready-fd FD] "
                    "[--quota NAME=N]...\n");
    exit(2);
}

static int open_state(struct env *e, char *err, size_t errlen)
{
    int fd;

    /* bulkhead-hv made it 0700; only create it when it is not there yet. */
    if (mkdir(e->state_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create state directory %s: %s", e->state_dir,
                 strerror(errno));
        return -1;
    }
    if (daemon_lock(e->state_dir, "xenstored", "bulkhead-xenstored", err, errlen) != 0)
        return -1;
    snprintf(e->d.log_path, sizeof(e->d.log_path), "%s/xenstored.log", e->state_dir);
    if ((fd = open(e->d.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
        (e->d.log = fdopen(fd, "a")) == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", e->d.log_path, strerror(errno));
        return -1;
    }
    return 0;
}

static int open_socket(struct env *e, char *err, size_t errlen)
{
    /* A stream socket: libxenstore speaks the wire protocol over one. */
    snprintf(e->sock_path, sizeof(e->sock_path), "%s/xenstored.sock", e->state_dir);
    e->listen_fd = daemon_listen(e->sock_path, SOCK_STREAM, err, errlen);
    return e->listen_fd < 0 ? -1 : 0;
}

static int open_hv(struct env *e, char *err, size_t errlen)
{
    if ((e->hv_fd = hv_connect(e, err, errlen)) < 0 ||
        (e->hv_ev_fd = hv_connect(e, err, errlen)) < 0)
        return -1;
    if (hv_call(e, e->hv_ev_fd, HVW_OP_DOM_WATCH, NULL, 0, NULL) != 0 || map_refresh(e) != 0) {
        snprintf(err, errlen,
                 "bulkhead-hv at %s/hv.sock refused dom0's requests: run "
                 "bulkhead-xenstored as root",
                 e->state_dir);
        return -1;
    }
    return 0;
}

static int add_fd(struct env *e, int fd, uint64_t tok)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tok};

    return epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static const struct xsd_ops env_ops = {
    .domain_exists = domain_exists,
    .conn_output = conn_output,
};

static int setup(struct env *e, char *err, size_t errlen)
{
    struct rlimit rl;
    sigset_t set;

    if (geteuid() != 0) {
        snprintf(err, errlen,
                 "bulkhead-xenstored must run as root (dom0 is uid 0): run it with "
                 "sudo");
        return -1;
    }
    /* A connection is an fd: take every one we may have. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (open_state(e, err, errlen) != 0 || open_hv(e, err, errlen) != 0 ||
        open_socket(e, err, errlen) != 0)
        return -1;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    e->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->sigfd < 0 || e->epfd < 0 || add_fd(e, e->listen_fd, TOK_LISTEN) != 0 ||
        add_fd(e, e->sigfd, TOK_SIGNAL) != 0 || add_fd(e, e->hv_ev_fd, TOK_HV) != 0) {
        snprintf(err, errlen, "cannot set up the event loop: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- the loop ---- */

static void on_signal(struct env *e)
{
    struct signalfd_siginfo si;

    while (read(e->sigfd, &si, sizeof(si)) == sizeof(si)) {
        xsd_log(&e->d, "signal %u: stopping", si.ssi_signo);
        e->stopping = true;
    }
}

static void dispatch(struct env *e, const struct epoll_event *ev)
{
    struct xs_conn *c;

    if (ev->data.u64 == TOK_LISTEN)
        accept_one(e);
    else if (ev->data.u64 == TOK_SIGNAL)
        on_signal(e);
    else if (ev->data.u64 == TOK_HV)
        on_hv_event(e);
    else if (!(c = ev->data.ptr)->dead) {
        if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_flush(e, c);
        if (!c->dead && (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            conn_read(e, c);
    }
}

static int run(struct env *e)
{
    struct epoll_event evs[64];

    while (!e->stopping) {
        int n = epoll_wait(e->epfd, evs, 64, -1);
        if (n < 0 && errno != EINTR) {
            xsd_log(&e->d, "epoll_wait: %s", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n && !e->stopping; i++)
            dispatch(e, &evs[i]);
        sweep(e);
    }
    return e->rc;
}

static void teardown(struct env *e)
{
    for (struct xs_conn *c = e->d.conns; c != NULL; c = c->next)
        close(c->fd);
    if (e->sock_path[0] != '\0')
        unlink(e->sock_path);
    xsd_log(&e->d, "stopped");
    if (e->d.log != NULL)
        fclose(e->d.log);
    e->d.log = NULL;
    xsd_fini(&e->d);
    free(e->map);
    for (int *fd[] = {&e->listen_fd, &e->epfd, &e->sigfd, &e->hv_fd, &e->hv_ev_fd, NULL}, **p = fd;
         *p != NULL; p++)
        if (**p >= 0)
            close(**p);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"ready-fd", required_argument, NULL, 'R'},
        {"quota", required_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    static struct env e = {.listen_fd = -1, .epfd = -1, .sigfd = -1, .hv_fd = -1, .hv_ev_fd = -1};
    const char *dir = getenv("BULKHEAD_STATE_DIR");
    char err[600], msg[640], *q[XSQ_COUNT * 4];
    int c, ready_fd = -1, nq = 0, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            dir = optarg;
            break;
        case 'R':
            ready_fd = atoi(optarg);
            break;
        case 'q':
            if (nq == (int)(sizeof(q) / sizeof(q[0])) || strchr(optarg, '=') == NULL)
                usage();
            q[nq++] = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();
    snprintf(e.state_dir, sizeof(e.state_dir), "%s", dir ? dir : XSD_DEFAULT_STATE_DIR);
    if (xsd_init(&e.d, &env_ops, &e) != 0) {
        fprintf(stderr, "bulkhead-xenstored: out of memory\n");
        return 1;
    }
    for (int i = 0; i < nq; i++) {
        char *eq = strchr(q[i], '=');
        *eq = '\0';
        if (xsd_quota_set(&e.d, q[i], eq + 1) != 0) {
            fprintf(stderr,
                    "bulkhead-xenstored: --quota %s=%s: give a known name (nodes, watches,"
                    " transactions, outstanding, transaction-nodes, permissions, "
                    "node-size, path-max, connections) and a number >= 1\n",
                    q[i], eq + 1);
            return 2;
        }
    }
    if (setup(&e, err, sizeof(err)) != 0) {
        fprintf(stderr, "bulkhead-xenstored: %s\n", err);
        snprintf(msg, sizeof(msg), "%s\n", err);
        daemon_ready(ready_fd, msg);
        teardown(&e);
        return 1;
    }
    xsd_log(&e.d, "started: state %s, socket %s, pid %d", e.state_dir, e.sock_path, (int)getpid());
    daemon_ready(ready_fd, "ok\n");
    rc = run(&e);
    teardown(&e);
    return rc;
}
