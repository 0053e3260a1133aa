/*
 * keeper.c - a device's keeper: the process that outlives its workers.
 *
 * It holds, in memory of its own that every worker maps (a memfd, mapped
 * shared before the worker is forked), the handshake machine and the
 * driver's kept state (grant references, ports, ring indices), plus the
 * descriptors the broker handed over for the device; and it (re)starts the
 * worker.  A worker that dies for any reason but the end of its device is
 * started again at once, and the new one resumes from what the keeper
 * holds (worker.c); one that keeps dying before it serves is started again
 * after a growing pause, and given up after KEEP_MAX_FAILS tries.  The
 * keeper itself touches neither XenStore nor the device: it cannot be
 * confused by a peer, and it ends when its worker ends with WORKER_DONE
 * (the device was removed or closed) or when told to stop (SIGTERM, which
 * it passes on to the worker so that the device is closed; a worker that
 * has not ended KEEP_KILL_MS later is killed).
 *
 * The event channel: a port bound through a handle dies with the process
 * that bound it, and a libbhplat handle cannot be shared with a child (as
 * Xen's cannot).  So the keeper holds the binding as the frontend's port
 * number, and a new worker binds it again: the hypervisor turns the
 * frontend's port back to unbound when the dead worker's end closes, and
 * the frontend keeps the same port and the same eventfd throughout
 * (hv/evtchn.c), so it sees nothing.
 *
 * An upgrade (handover.h): the keeper also listens on a socket of its own,
 * where a worker-only process from another binary asks for the device.
 * The keeper offers its layout; on TAKE it tells the current worker to stop
 * at a clean point (SIGUSR1: between two passes of its loop, never inside
 * one; WORKER_HANDED), then passes the memfd of its state, its stderr and
 * the broker's fds by SCM_RIGHTS, and watches that worker through the
 * connection instead of waitpid.  A refusal, garbage or a peer that goes
 * away before TAKE costs nothing: the current worker was never told.
 * Only the workers are replaced so: the keeper and the main process are
 * the part of bulkhead-drvdom that must not exec (they hold the state),
 * and they do little - a keeper parses only these fixed-size messages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drvdom.h"
#include "handover.h"

#define KEEP_MAX_FAILS 8     /* workers in a row that die before serving */
#define KEEP_KILL_MS 10000   /* after SIGTERM: the worker's own grace (5 s) and as much again */
#define HO_REPLY_MS    30000 /* for a new worker's TAKE or REFUSE */
#define HO_STOP_MS     30000 /* for the old worker to stop at a clean point, then SIGKILL */

static bool stop_asked;

/* The current worker: a child of ours (pidfd), or a worker-only process (conn). */
struct cur {
    pid_t pid;
    int pidfd; /* forked: readable when it ended */
    int conn;  /* adopted: its handover connection; -1 for a forked worker */
};

/* What the keeper's own descriptors are, for a forked worker to close. */
static int keeper_fds[3] = {-1, -1, -1}; /* signalfd, listening socket, memfd */

static void klog(const struct devref *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void klog(const struct devref *r, const char *fmt, ...)
{
    char name[80];
    va_list ap;

    devref_name(r, name, sizeof(name));
    va_start(ap, fmt);
    vlogline(name, fmt, ap);
    va_end(ap);
}

/* The child of a fork(2) from a process with other threads: a clean slate. */
static void fresh_process(const char *comm)
{
    struct sigaction sa = {.sa_handler = SIG_DFL};
    sigset_t none;

    int keep = drvdom_opener_fd(); /* Xen: how a keeper gets its disk (opener.c) */

    if (keep >= 3) {
        close_range(3, (unsigned int)keep - 1, 0);
        close_range((unsigned int)keep + 1, ~0u, 0);
    } else {
        close_range(3, ~0u, 0);
    }
    sigemptyset(&none);
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &sa, NULL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_IGN);
    drvdom_confine_sigsys(); /* a denied call must still say which */
    prctl(PR_SET_NAME, comm);
}

static struct keep *keep_map(const struct bhdrv *drv, size_t *size, int *memfd)
{
    long page = sysconf(_SC_PAGESIZE);
    struct keep *k;
    int fd;

    *size = (sizeof(*k) + drv->kept_size + (size_t)page - 1) & ~((size_t)page - 1);
    if ((fd = memfd_create("bulkhead-keep", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0)
        return NULL;
    if (ftruncate(fd, (off_t)*size) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        close(fd);
        return NULL;
    }
    k = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (k == MAP_FAILED) {
        close(fd);
        return NULL;
    }
    /* Forked workers inherit the mapping; the fd is for a worker-only process (GO). */
    *memfd = fd;
    k->magic = KEEP_MAGIC;
    k->version = KEEP_VERSION;
    k->header_size = sizeof(*k);
    k->kept_size = (uint32_t)drv->kept_size;
    snprintf(k->drv_name, sizeof(k->drv_name), "%s", drv->name);
    return k;
}

static int start_worker(const struct devref *r, const struct bhdrv *drv, struct keep *k,
                        struct cur *c)
{
    char comm[16];
    sigset_t none;
    pid_t pid;

    k->serving = 0;
    c->conn = -1;
    c->pidfd = -1;
    fflush(stderr);
    if ((pid = fork()) != 0) {
        c->pid = pid;
        if (pid < 0)
            return -1;
        if ((c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0) {
            klog(r, "keeper: pidfd_open: %s (Linux 5.3 or later is needed)", strerror(errno));
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return -1;
        }
        return 0;
    }
    snprintf(comm, sizeof(comm), "bhw-%u-%u", r->frontend_domid, r->devid);
    prctl(PR_SET_NAME, comm);
    /* A worker never outlives its keeper: the state it runs on is the keeper's. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(WORKER_FAILED);
    for (unsigned int i = 0; i < 3; i++)
        if (keeper_fds[i] >= 0)
            close(keeper_fds[i]);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    _exit(worker_main(r, drv, k, &k->acq, -1));
}

/*
 * Reads one message from a connection, waiting up to ms (-1: no limit).
 * While it waits, the serving worker's end (watch: its pidfd or connection,
 * -1 for none) cuts it short with ECANCELED: a newcomer that says nothing
 * never delays the restart of a worker that died.
 */
static int ho_read(int fd, int ms, unsigned int allowed, struct ho_msg *m, char *why, size_t whylen,
                   int watch)
{
    unsigned char buf[sizeof(*m) + 1];
    struct pollfd pf[2] = {{.fd = fd, .events = POLLIN}, {.fd = watch, .events = POLLIN}};
    ssize_t n;
    int rc;

    while ((rc = poll(pf, 2, ms)) < 0 && errno == EINTR)
        ;
    if (rc == 0) {
        snprintf(why, whylen, "no answer in %d ms", ms);
        errno = ETIMEDOUT;
        return -1;
    }
    if (pf[1].revents && !pf[0].revents) {
        snprintf(why, whylen, "nothing before the serving worker ended");
        errno = ECANCELED;
        return -1;
    }
    /* SOCK_SEQPACKET: one message per read; a longer one reads as one byte too long. */
    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) < 0 && errno == EINTR)
        ;
    if (n == 0) {
        snprintf(why, whylen, "the connection closed");
        errno = ECONNRESET;
        return -1;
    }
    if (n < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return -1;
    }
    return ho_check(buf, (size_t)n, allowed, m, why, whylen);
}

static int ho_send(int fd, const struct ho_msg *m, const int *fds, unsigned int nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * HO_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof(*m)};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    if (nfds > 0) {
        struct cmsghdr *cm;
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(*m) ? 0 : -1;
}

/*
 * Waits for the current worker to end, up to ms (-1: no limit); its status
 * as waitpid encodes it.  An adopted worker's is what its EXIT said, or a
 * SIGKILL's if it closed without one (or sent anything else: then it is
 * killed).  -1 on timeout.
 */
static int wait_cur(const struct devref *r, struct cur *c, int ms)
{
    struct pollfd pf = {.fd = c->conn >= 0 ? c->conn : c->pidfd, .events = POLLIN};
    int status = -1, rc;

    while ((rc = poll(&pf, 1, ms)) < 0 && errno == EINTR)
        ;
    if (rc == 0)
        return -1;
    if (c->conn < 0) {
        while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
            ;
        close(c->pidfd);
        c->pidfd = -1;
        return status;
    }
    for (;;) {
        struct ho_msg m;
        char why[200];
        if (ho_read(c->conn, -1, HO_BIT(HO_EXIT), &m, why, sizeof(why), -1) == 0) {
            status = (int)m.status << 8;
            continue; /* the close follows it */
        }
        if (errno != ECONNRESET) {
            klog(r, "keeper: worker %d sent %s: taken as dead", (int)c->pid, why);
            kill(c->pid, SIGKILL);
        }
        break;
    }
    close(c->conn);
    c->conn = -1;
    return status < 0 ? SIGKILL : status;
}

static void describe(int status, char *buf, size_t size)
{
    if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
}

/*
 * A newcomer on the handover socket.  Returns 1 when it now serves the
 * device (c is it), 0 when the current worker serves on, 2 when the current
 * worker, told to stop, ended with the device instead (*status), or -1 when
 * it stopped and the newcomer went away: the keeper forks a worker again.
 */
static int handover(const struct devref *r, const struct bhdrv *drv, struct keep *k, size_t size,
                    int lfd, struct cur *c, int *status)
{
    struct ho_msg m = {.magic = HO_MAGIC, .proto = HO_PROTO, .type = HO_OFFER};
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    char why[200], how[96];
    int fds[HO_MAX_FDS];
    unsigned int nfds = 0;
    int conn, st;

    if ((conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
        return 0;
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || cred.uid != getuid()) {
        klog(r,
             "keeper: handover socket: a connection from another user: closed; worker %d "
             "serves on",
             (int)c->pid);
        close(conn);
        return 0;
    }
    m.layout = KEEP_VERSION;
    m.header_size = sizeof(struct keep);
    m.kept_size = (uint32_t)drv->kept_size;
    m.map_size = (uint32_t)size;
    m.frontend_domid = r->frontend_domid;
    m.devid = r->devid;
    m.backend_domid = r->backend_domid;
    snprintf(m.backend_kind, sizeof(m.backend_kind), "%s", r->backend_kind);
    snprintf(m.drv, sizeof(m.drv), "%s", drv->name);
    if (ho_send(conn, &m, NULL, 0) != 0 ||
        ho_read(conn, HO_REPLY_MS, HO_BIT(HO_TAKE) | HO_BIT(HO_REFUSE), &m, why, sizeof(why),
                c->conn >= 0 ? c->conn : c->pidfd) != 0) {
        if (errno != ECONNRESET && errno != EPIPE)
            klog(r, "keeper: handover socket: pid %d sent %s: ignored; worker %d serves on",
                 (int)cred.pid, why, (int)c->pid);
        close(conn);
        return 0;
    }
    if (m.type == HO_REFUSE) {
        klog(r, "keeper: pid %d refused the device: %s; worker %d serves on", (int)cred.pid, m.text,
             (int)c->pid);
        close(conn);
        return 0;
    }
    if (m.layout != KEEP_VERSION || m.header_size != sizeof(struct keep) ||
        m.kept_size != drv->kept_size || strcmp(m.drv, drv->name) != 0) {
        klog(r,
             "keeper: pid %d would take layout %u (%u + %u bytes, %s), not ours (%u): "
             "refused; worker %d serves on",
             (int)cred.pid, m.layout, m.header_size, m.kept_size, m.drv, KEEP_VERSION, (int)c->pid);
        close(conn);
        return 0;
    }
    klog(r, "keeper: handing the device over from worker %d to pid %d", (int)c->pid, (int)cred.pid);
    kill(c->pid, SIGUSR1);
    if ((st = wait_cur(r, c, HO_STOP_MS)) == -1) {
        klog(r,
             "keeper: worker %d did not stop in %d ms: killing it (what it had in flight "
             "is in the kept state)",
             (int)c->pid, HO_STOP_MS);
        kill(c->pid, SIGKILL);
        st = wait_cur(r, c, -1);
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == WORKER_DONE) {
        close(conn);
        *status = st;
        return 2;
    }
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == WORKER_HANDED)) {
        describe(st, how, sizeof(how));
        klog(r, "keeper: worker %d %s instead of stopping: handing over anyway", (int)c->pid, how);
    }
    k->restarts++;
    k->serving = 0;
    fds[nfds++] = keeper_fds[2];
    fds[nfds++] = STDERR_FILENO;
    for (unsigned int i = 0; i < k->acq.nfds && nfds < HO_MAX_FDS; i++)
        fds[nfds++] = k->acq.fds[i];
    m = (struct ho_msg){.magic = HO_MAGIC, .proto = HO_PROTO, .type = HO_GO, .nfds = nfds};
    if (ho_send(conn, &m, fds, nfds) != 0) {
        klog(r, "keeper: pid %d went away before taking the device: %s", (int)cred.pid,
             strerror(errno));
        close(conn);
        k->restarts--; /* the keeper's loop counts the worker it forks instead */
        return -1;
    }
    c->pid = cred.pid;
    c->conn = conn;
    c->pidfd = -1;
    klog(r, "keeper: pid %d serves the device as worker %u", (int)cred.pid, k->restarts + 1);
    return 1;
}

/* The abstract socket a new worker finds this keeper at; -1 (logged) if none. */
static int listen_handover(const struct devref *r)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    socklen_t len;
    int fd;

    if (ho_sock_name(sa.sun_path + 1, sizeof(sa.sun_path) - 1, r->backend_domid, r->backend_kind,
                     r->frontend_domid, r->devid) != 0)
        return -1;
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1));
    if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, len) != 0 || listen(fd, 4) != 0) {
        klog(r,
             "keeper: cannot listen on @%s: %s (the device cannot be upgraded; is another "
             "keeper serving it?)",
             sa.sun_path + 1, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* A pause of 100 ms doubling up to 5 s, cut short by a stop request. */
static void backoff(unsigned int fails)
{
    long ms = 100L << (fails < 6 ? fails : 6);
    struct timespec ts;

    if (ms > 5000)
        ms = 5000;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    if (!stop_asked)
        nanosleep(&ts, NULL);
}

void keeper_main(const struct devref *r, const struct bhdrv *drv)
{
    unsigned int fails = 0;
    char comm[16], how[96];
    struct cur c = {.pid = -1, .pidfd = -1, .conn = -1};
    struct timespec stop_at = {0};
    bool killed = false;
    struct keep *k;
    sigset_t set;
    size_t size;
    int memfd = -1;

    snprintf(comm, sizeof(comm), "bhk-%u-%u", r->frontend_domid, r->devid);
    fresh_process(comm);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if ((keeper_fds[0] = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        klog(r, "keeper: cannot make a signalfd: %s", strerror(errno));
        _exit(1);
    }
    if ((k = keep_map(drv, &size, &memfd)) == NULL) {
        klog(r, "keeper: cannot make its state memory: %s (check the domain's memory limit)",
             strerror(errno));
        _exit(1);
    }
    keeper_fds[2] = memfd;
    for (unsigned int i = 0; i < BHDEV_MAX_FDS; i++)
        k->acq.fds[i] = -1;
    if (drv->acquire != NULL) {
        struct bhxb_dev id = {.kind = drv->frontend_kind,
                              .backend_kind = r->backend_kind,
                              .domid = r->frontend_domid,
                              .backend_domid = r->backend_domid,
                              .devid = r->devid};
        if (drv->acquire(&id, &k->acq) != 0)
            klog(r, "keeper: the broker did not give the device: %s", k->acq.why);
        else if (k->acq.nfds > 0)
            klog(r, "keeper: holds %u fd%s from the broker", k->acq.nfds,
                 k->acq.nfds == 1 ? "" : "s");
    }
    keeper_fds[1] = listen_handover(r);
    while (!stop_asked) {
        int status = -1;
        bool running = start_worker(r, drv, k, &c) == 0;
        if (!running)
            klog(r, "keeper: cannot fork a worker: %s (raise the domain's process limit)",
                 strerror(errno));
        while (running) {
            struct pollfd pf[3] = {{.fd = keeper_fds[0], .events = POLLIN},
                                   {.fd = c.conn >= 0 ? c.conn : c.pidfd, .events = POLLIN},
                                   {.fd = stop_asked ? -1 : keeper_fds[1], .events = POLLIN}};
            struct signalfd_siginfo si;
            int timeout = -1;
            if (stop_asked && !killed) {
                timeout = KEEP_KILL_MS - ms_since(&stop_at);
                if (timeout <= 0) {
                    /* Stuck where no signal it reads can reach it: the device goes anyway. */
                    klog(r, "keeper: worker %d did not end within %d ms of being told to stop: "
                         "killing it", (int)c.pid, KEEP_KILL_MS);
                    kill(c.pid, SIGKILL);
                    killed = true;
                    timeout = -1;
                }
            }
            if (poll(pf, 3, timeout) < 0 && errno != EINTR)
                break;
            if (pf[0].revents)
                while (read(keeper_fds[0], &si, sizeof(si)) == (ssize_t)sizeof(si))
                    if (!stop_asked) {
                        stop_asked = true;
                        clock_gettime(CLOCK_MONOTONIC, &stop_at);
                        kill(c.pid, SIGTERM); /* the worker closes the device */
                    }
            if (pf[1].revents) {
                status = wait_cur(r, &c, 0);
                running = false;
            } else if (pf[2].revents) {
                int rc = handover(r, drv, k, size, keeper_fds[1], &c, &status);
                if (rc == 2 || rc < 0)
                    running = false;
                else if (rc == 1)
                    fails = 0;
            }
        }
        if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == WORKER_DONE)
            _exit(0);
        if (stop_asked)
            break;
        if (status == -1)
            status = WORKER_FAILED << 8;
        fails = k->serving ? 0 : fails + 1;
        if (fails >= KEEP_MAX_FAILS) {
            klog(r,
                 "keeper: %u workers in a row died before serving: giving the device up "
                 "(see the lines above for why)",
                 fails);
            _exit(1);
        }
        k->restarts++;
        describe(status, how, sizeof(how));
        klog(r, "keeper: worker %d %s: starting worker %u from the kept state", (int)c.pid, how,
             k->restarts + 1);
        if (fails > 0)
            backoff(fails - 1);
    }
    _exit(0);
}
