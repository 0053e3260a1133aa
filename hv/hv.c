/*
 * hv.c - bulkhead-hv: the simulated hypervisor.  Options, the state
 * directory, the listening socket, and the one event loop.
 *
 *   bulkhead-hv [--state-dir DIR] [--uid-base N] [--ro-dir DIR]... [--ready-fd FD]
 *
 * It runs as root, in the foreground (`bulkhead up` starts it in the
 * background and waits for --ready-fd to say "ok"), and logs one line per
 * event to DIR/hv.log.  SIGTERM or an HVW_OP_STOP destroys every domain and
 * exits.  Started as "bulkhead-hv --domain-init ..." it is a domain's pid 1.
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
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "dombuild.h"
#include "hv.h"

#define HV_DEFAULT_STATE_DIR "/run/bulkhead"
#define HV_MAX_RO_DIRS 16

void hv_log(struct hv *hv, const char *fmt, ...)
{
    char ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;

    if (hv->log == NULL)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(hv->log, "%s.%03ldZ ", ts, now.tv_nsec / 1000000);
    va_start(ap, fmt);
    vfprintf(hv->log, fmt, ap);
    va_end(ap);
    fputc('\n', hv->log);
    fflush(hv->log);
}

struct hv_dom *hv_dom_find(struct hv *hv, uint16_t domid)
{
    for (struct hv_dom *d = hv->doms; d != NULL; d = d->next)
        if (d->domid == domid)
            return d;
    return NULL;
}

struct hv_dom *hv_dom_by_uid(struct hv *hv, uid_t uid)
{
    for (struct hv_dom *d = hv->doms; d != NULL; d = d->next)
        if (d->uid == uid && d->state != HVW_DOM_DYING)
            return d;
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: bulkhead-hv [--state-dir DIR] [--uid-base N] [--ro-dir DIR]... "
                    "[--ready-fd FD]\n");
    exit(2);
}

static int open_state(struct hv *hv, char *err, size_t errlen)
{
    char path[300];

    if (mkdir(hv->state_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create state directory %s: %s", hv->state_dir,
                 strerror(errno));
        return -1;
    }
    /* Root only: dom0's control socket and logs live here. */
    if (chmod(hv->state_dir, 0700) != 0) {
        snprintf(err, errlen, "cannot chmod %s: %s", hv->state_dir, strerror(errno));
        return -1;
    }
    if (daemon_lock(hv->state_dir, "hv", "bulkhead-hv", err, errlen) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/hv.log", hv->state_dir);
    if ((hv->log = fopen(path, "ae")) == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int open_socket(struct hv *hv, char *err, size_t errlen)
{
    int one = 1;

    snprintf(hv->sock_path, sizeof(hv->sock_path), "%s/hv.sock", hv->state_dir);
    if ((hv->listen_fd = daemon_listen(hv->sock_path, SOCK_SEQPACKET, err, errlen)) < 0)
        return -1;
    /* Accepted sockets inherit it: each message then carries its sender's pid. */
    if (setsockopt(hv->listen_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0) {
        snprintf(err, errlen, "cannot set SO_PASSCRED on %s: %s", hv->sock_path, strerror(errno));
        return -1;
    }
    return 0;
}

static int add_dom0(struct hv *hv)
{
    struct hv_dom *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return -1;
    d->domid = 0;
    snprintf(d->name, sizeof(d->name), "Domain-0");
    d->pidfd = -1;
    d->state = HVW_DOM_RUNNING;
    d->vcpus = (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    d->max_grant_frames = HV_DEFAULT_GRANT_FRAMES;
    d->max_evtchn_ports = HV_DEFAULT_EVTCHN_PORTS;
    if (gnttab_dom_init(d) != 0 || evtchn_dom_init(d) != 0) {
        free(d);
        return -1;
    }
    hv->doms = d;
    return 0;
}

static int setup(struct hv *hv, char *err, size_t errlen)
{
    struct epoll_event ev = {.events = EPOLLIN};

    if (geteuid() != 0) {
        snprintf(err, errlen, "bulkhead-hv must run as root (it builds namespaces and hands out "
                              "pages): run it with sudo");
        return -1;
    }
    if (open_state(hv, err, errlen) != 0 || open_socket(hv, err, errlen) != 0)
        return -1;
    if (gnttab_init() != 0) {
        snprintf(err, errlen, "cannot raise the open-file limit: %s", strerror(errno));
        return -1;
    }
    /* Our own binary, for the domains' pid 1 (fexecve: no path needed inside). */
    if ((hv->exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC)) < 0) {
        snprintf(err, errlen, "cannot open /proc/self/exe: %s", strerror(errno));
        return -1;
    }
    hv->sigfd = daemon_signalfd(SIGTERM, SIGINT, SIGHUP, 0);
    hv->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (hv->sigfd < 0 || hv->epfd < 0) {
        snprintf(err, errlen, "cannot set up the event loop: %s", strerror(errno));
        return -1;
    }
    ev.data.fd = hv->listen_fd;
    epoll_ctl(hv->epfd, EPOLL_CTL_ADD, hv->listen_fd, &ev);
    ev.data.fd = hv->sigfd;
    epoll_ctl(hv->epfd, EPOLL_CTL_ADD, hv->sigfd, &ev);
    if (add_dom0(hv) != 0) {
        snprintf(err, errlen, "cannot set up dom0: %s", strerror(errno));
        return -1;
    }
    if (broker_init(hv) != 0) {
        snprintf(err, errlen, "cannot set up the broker: %s", strerror(errno));
        return -1;
    }
    hv->next_domid = 1;
    return 0;
}

/* A new connection: its domain is whoever its uid says, or nobody. */
static void accept_one(struct hv *hv)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    struct hv_dom *d;
    int fd, one = 1;

    fd = accept4(hv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0) {
        close(fd);
        return;
    }
    d = hv_dom_by_uid(hv, cred.uid);
    if (d == NULL || d->state == HVW_DOM_DYING) {
        hv_log(hv, "refused a connection from uid %u pid %d: not a live domain", cred.uid,
               cred.pid);
        close(fd);
        return;
    }
    if (conn_new(hv, fd, d) == NULL)
        close(fd);
}

static void on_signal(struct hv *hv)
{
    struct signalfd_siginfo si;

    while (read(hv->sigfd, &si, sizeof(si)) == sizeof(si)) {
        hv_log(hv, "signal %u: stopping", si.ssi_signo);
        hv->stopping = true;
    }
}

static void dispatch_fd(struct hv *hv, int fd)
{
    if (fd == hv->listen_fd) {
        accept_one(hv);
        return;
    }
    if (fd == hv->sigfd) {
        on_signal(hv);
        return;
    }
    for (struct hv_conn *c = hv->conns; c != NULL; c = c->next)
        if (c->fd == fd) {
            conn_serve(hv, c);
            return;
        }
    for (struct hv_dom *d = hv->doms; d != NULL; d = d->next)
        if (d->pidfd == fd) {
            domain_reap(hv, d);
            return;
        }
    /* A stale event for an fd closed earlier in this batch. */
}

static void shutdown_all(struct hv *hv)
{
    struct hv_dom *d;

    while ((d = hv->doms->next) != NULL)
        domain_destroy(hv, d);
    while (hv->conns != NULL)
        conn_close(hv, hv->conns);
    gnttab_dom_release(hv, hv->doms);
    evtchn_dom_release(hv, hv->doms);
    free(hv->doms);
    hv->doms = NULL;
    framestore_shutdown(hv);
    broker_shutdown(hv);
    cgroup_cleanup(hv);
    unlink(hv->sock_path);
    hv_log(hv, "stopped");
}

static int run(struct hv *hv)
{
    struct epoll_event evs[32];

    while (!hv->stopping) {
        int n = epoll_wait(hv->epfd, evs, 32, -1);
        if (n < 0 && errno != EINTR) {
            hv_log(hv, "epoll_wait: %s", strerror(errno));
            return 1;
        }
        for (int i = 0; i < n && !hv->stopping; i++)
            dispatch_fd(hv, evs[i].data.fd);
    }
    shutdown_all(hv);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"uid-base", required_argument, NULL, 'u'},
        {"ro-dir", required_argument, NULL, 'r'},
        {"ready-fd", required_argument, NULL, 'R'},
        {NULL, 0, NULL, 0},
    };
    static char *ro_dirs[HV_MAX_RO_DIRS + 1];
    struct hv hv = {.listen_fd = -1, .epfd = -1, .sigfd = -1, .exe_fd = -1};
    const char *dir = getenv("BULKHEAD_STATE_DIR");
    char err[512], *end;
    int c, nro = 0, ready_fd = -1;
    unsigned long base = 0;

    if (argc > 1 && strcmp(argv[1], "--domain-init") == 0)
        return dominit_main(argc - 1, argv + 1);
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            dir = optarg;
            break;
        case 'u':
            base = strtoul(optarg, &end, 10);
            if (*end != '\0' || base < 65536 || base > 4000000000ul)
                usage();
            break;
        case 'r':
            if (nro == HV_MAX_RO_DIRS || optarg[0] != '/')
                usage();
            ro_dirs[nro++] = optarg;
            break;
        case 'R':
            ready_fd = atoi(optarg);
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();
    snprintf(hv.state_dir, sizeof(hv.state_dir), "%s", dir ? dir : HV_DEFAULT_STATE_DIR);
    hv.ro_dirs = ro_dirs;
    /*
     * Each instance takes a uid block of its own (from its state directory's
     * name unless given), so that parallel instances never share a domain uid.
     */
    if (base == 0) {
        unsigned int h = 5381;
        for (const char *p = hv.state_dir; *p; p++)
            h = h * 33 + (unsigned char)*p;
        base = 1000000000ul + (h % 32768) * 65536ul;
    }
    hv.uid_base = (uid_t)base;
    if (setup(&hv, err, sizeof(err)) != 0) {
        fprintf(stderr, "bulkhead-hv: %s\n", err);
        if (ready_fd >= 0) {
            char msg[600];
            snprintf(msg, sizeof(msg), "%s\n", err);
            daemon_ready(ready_fd, msg);
        }
        return 1;
    }
    hv_log(&hv, "started: state %s, uid base %u, pid %d", hv.state_dir, (unsigned)hv.uid_base,
           (int)getpid());
    daemon_ready(ready_fd, "ok\n");
    return run(&hv);
}
