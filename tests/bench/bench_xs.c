/*
 * bench_xs.c - bulkhead-xenstored's costs, beside a baseline measured in
 * the same run where one makes sense:
 *   - reads and writes per second through the real libxenstore, with 1 and
 *     with 8 client processes, beside request/response round trips of a
 *     bare unix-socket echo server (the floor any socket daemon sits on);
 *   - watch-event fan-out: one write, 1000 watchers on 1000 connections,
 *     time until every one of them has its event;
 *   - memory per 100,000 nodes: the daemon's resident-set growth, and the
 *     tree library's own heap (no baseline: it is a size).
 * It starts a bulkhead-hv and a bulkhead-xenstored of its own, as dom0.
 *
 * Usage: bench_xs [-s SECONDS_PER_RATE]   (root)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#include "testutil.h"
#include "xenstored.h"

static struct test_hv hv;
static pid_t xsd_pid;
static char sock[200];
static double secs = 1.0;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_xs: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void xsd_start(void)
{
    char bin[1024], ready[16], msg[256] = "";
    int p[2];
    ssize_t n;

    snprintf(bin, sizeof(bin), "%s/hv/bulkhead-xenstored", test_builddir());
    if (pipe(p) != 0)
        die("pipe");
    if ((xsd_pid = fork()) == 0) {
        close(p[0]);
        snprintf(ready, sizeof(ready), "%d", p[1]);
        execl(bin, "bulkhead-xenstored", "--state-dir", hv.state, "--ready-fd", ready,
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    n = read(p[0], msg, sizeof(msg) - 1);
    msg[n > 0 ? n : 0] = '\0';
    close(p[0]);
    if (strcmp(msg, "ok\n") != 0) {
        fprintf(stderr, "bench_xs: %s did not start: %s\n", bin, msg);
        exit(1);
    }
    snprintf(sock, sizeof(sock), "%s/xenstored.sock", hv.state);
    setenv("XENSTORED_PATH", sock, 1);
}

/* ---- rates ---- */

/* Operations per second of one client for `secs`: read or write of /bench/k. */
static double client_rate(bool write)
{
    struct xs_handle *h = xs_open(0);
    double t0, t;
    long n = 0;
    unsigned int len;

    if (h == NULL)
        die("xs_open");
    t0 = now();
    do {
        for (int i = 0; i < 100; i++, n++) {
            if (write) {
                if (!xs_write(h, XBT_NULL, "/bench/k", "value", 5))
                    die("xs_write");
            } else {
                free(xs_read(h, XBT_NULL, "/bench/k", &len));
            }
        }
    } while ((t = now() - t0) < secs);
    xs_close(h);
    return n / t;
}

/* Reaps the n children in pids (not the daemon, also our child). */
static void reap(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        waitpid(pids[i], NULL, 0);
}

/* The same with `clients` processes at once; the sum of their rates. */
static double rate(int clients, bool writes)
{
    pid_t pids[64];
    int p[2];
    double sum = 0, r;

    if (pipe(p) != 0)
        die("pipe");
    for (int i = 0; i < clients; i++)
        if ((pids[i] = fork()) == 0) {
            r = client_rate(writes);
            if (write(p[1], &r, sizeof(r)) != sizeof(r))
                _exit(1);
            _exit(0);
        }
    close(p[1]);
    while (read(p[0], &r, sizeof(r)) == sizeof(r))
        sum += r;
    close(p[0]);
    reap(pids, clients);
    return sum;
}

/* Request/response round trips per second against a bare echo process, same sizes. */
static double echo_rate(int clients)
{
    pid_t pids[64];
    int p[2];
    double sum = 0, r;

    if (pipe(p) != 0)
        die("pipe");
    for (int i = 0; i < clients; i++)
        if ((pids[i] = fork()) == 0) {
            int sv[2];
            char buf[64] = "";
            long n = 0;
            double t0, t;
            if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
                _exit(1);
            if (fork() == 0) {
                close(sv[0]);
                while (read(sv[1], buf, 30) == 30 && write(sv[1], buf, 20) == 20)
                    ;
                _exit(0);
            }
            close(sv[1]);
            t0 = now();
            do
                for (int k = 0; k < 100; k++, n++)
                    if (write(sv[0], buf, 30) != 30 || read(sv[0], buf, 20) != 20)
                        _exit(1);
            while ((t = now() - t0) < secs);
            close(sv[0]);
            wait(NULL);
            r = n / t;
            if (write(p[1], &r, sizeof(r)) != sizeof(r))
                _exit(1);
            _exit(0);
        }
    close(p[1]);
    while (read(p[0], &r, sizeof(r)) == sizeof(r))
        sum += r;
    close(p[0]);
    reap(pids, clients);
    return sum;
}

/* ---- fan-out ---- */

static int raw_conn(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("connect");
    return fd;
}

/* Reads what is there; returns how many whole WATCH_EVENT messages (small ones). */
static int drain(int fd)
{
    char buf[4096];
    ssize_t n;
    int events = 0;

    /* Events are small and whole: each read here gets whole messages. */
    while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
        for (ssize_t off = 0; off + 16 <= n;) {
            struct xsd_sockmsg h;
            memcpy(&h, buf + off, sizeof(h));
            events += h.type == XS_WATCH_EVENT;
            off += 16 + h.len;
        }
    return events;
}

/* Milliseconds from one write to 1000 watchers all holding their event (median of rounds). */
static double fanout(int watchers, int rounds)
{
    struct xs_handle *h = xs_open(0);
    int *fds = calloc((size_t)watchers, sizeof(int)), ep = epoll_create1(0);
    struct epoll_event evs[256];
    double *t = calloc((size_t)rounds, sizeof(double));
    char msg[64] = "/fan\0tok";
    struct xsd_sockmsg hd = {XS_WATCH, 1, 0, 9};

    if (h == NULL || fds == NULL || t == NULL || ep < 0)
        die("fan-out set-up");
    for (int i = 0; i < watchers; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        fds[i] = raw_conn();
        if (send(fds[i], &hd, sizeof(hd), 0) != sizeof(hd) || send(fds[i], msg, 9, 0) != 9)
            die("watch");
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    /* The OK and the initial event of each. */
    for (int got = 0; got < watchers;) {
        int n = epoll_wait(ep, evs, 256, 5000);
        if (n <= 0)
            die("initial events");
        for (int i = 0; i < n; i++)
            got += drain(fds[evs[i].data.u32]);
    }
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        int got = 0;
        if (!xs_write(h, XBT_NULL, "/fan/x", "1", 1))
            die("xs_write");
        while (got < watchers) {
            int n = epoll_wait(ep, evs, 256, 5000);
            if (n <= 0)
                die("fan-out events");
            for (int i = 0; i < n; i++)
                got += drain(fds[evs[i].data.u32]);
        }
        t[r] = (now() - t0) * 1e3;
    }
    for (int i = 0; i < watchers; i++)
        close(fds[i]);
    close(ep);
    xs_close(h);
    double m = test_median(t, rounds);
    free(t);
    free(fds);
    return m;
}

/* ---- memory ---- */

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* The daemon's resident growth for 100,000 nodes written through libxenstore, in KiB. */
static long daemon_kb_per_100k(void)
{
    struct xs_handle *h = xs_open(0);
    char path[96];
    long before = rss_kb(xsd_pid);

    for (int i = 0; i < 100000; i++) {
        snprintf(path, sizeof(path), "/local/domain/%d/device/vif/%d/state", 1 + i / 1000,
                 i % 1000);
        if (!xs_write(h, XBT_NULL, path, "4", 1))
            die("xs_write");
    }
    xs_close(h);
    return rss_kb(xsd_pid) - before;
}

/* The tree library's heap for 100,000 such nodes (plus their parents), in bytes per node. */
static double library_bytes_per_node(size_t *nodes)
{
    static const unsigned int q[XSQ_COUNT];
    const struct xs_who dom0 = {0, XS_NO_TARGET, true, q};
    struct xs_store *st = xs_store_new();
    struct xs_view v = {st, NULL, NULL, NULL};
    struct mallinfo2 m0 = mallinfo2(), m1;
    char path[96];

    for (int i = 0; i < 100000; i++) {
        snprintf(path, sizeof(path), "/local/domain/%d/device/vif/%d/state", 1 + i / 1000,
                 i % 1000);
        if (xs_op_write(&v, &dom0, path, "4", 1) != 0)
            die("xs_op_write");
    }
    m1 = mallinfo2();
    *nodes = xs_store_count(st);
    xs_store_free(st);
    return (double)(m1.uordblks - m0.uordblks) / (double)*nodes;
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    double r1, w1, r8, w8, e1, e8, fan;
    size_t nodes;
    int c;

    while ((c = getopt(argc, argv, "s:")) != -1) {
        if (c != 's' || (secs = atof(optarg)) <= 0 || secs > 60) {
            fprintf(stderr, "usage: bench_xs [-s SECONDS(0..60)]\n");
            return 2;
        }
    }
    if (geteuid() != 0) {
        fprintf(stderr, "bench_xs: needs root (it starts a bulkhead-hv)\n");
        return 1;
    }
    /* 1000 watchers: fds for us and for the daemon, which inherits the limit. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    char err[512];
    if (test_hv_start(&hv, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_xs: %s\n", err);
        return 1;
    }
    xsd_start();
    e1 = echo_rate(1);
    r1 = rate(1, false);
    w1 = rate(1, true);
    e8 = echo_rate(8);
    r8 = rate(8, false);
    w8 = rate(8, true);
    fan = fanout(1000, 21);
    long kb = daemon_kb_per_100k();
    double bpn = library_bytes_per_node(&nodes);

    printf("%-48s %12s %12s %8s\n", "operation", "xenstored", "baseline", "ratio");
    printf("%-48s %12.0f %12.0f %8.2f\n", "reads/s, 1 client (vs unix-socket echo)", r1, e1,
           r1 / e1);
    printf("%-48s %12.0f %12.0f %8.2f\n", "writes/s, 1 client (vs unix-socket echo)", w1, e1,
           w1 / e1);
    printf("%-48s %12.0f %12.0f %8.2f\n", "reads/s, 8 clients (vs unix-socket echo)", r8, e8,
           r8 / e8);
    printf("%-48s %12.0f %12.0f %8.2f\n", "writes/s, 8 clients (vs unix-socket echo)", w8, e8,
           w8 / e8);
    printf("%-48s %12.2f %12s %8s\n", "watch fan-out to 1000 watchers, ms (median)", fan, "-", "-");
    printf("%-48s %12.0f %12s %8s\n", "watch events delivered/s in fan-out", 1000 / (fan / 1e3),
           "-", "-");
    printf("%-48s %12.1f %12s %8s\n", "daemon RSS growth per 100,000 nodes, MiB", kb / 1024.0, "-",
           "-");
    printf("%-48s %12.0f %12s %8s\n", "tree heap per node, bytes", bpn, "-", "-");
    printf("(%zu nodes: 100,000 leaves and their parents)\n", nodes);
    kill(xsd_pid, SIGTERM);
    waitpid(xsd_pid, NULL, 0);
    test_hv_stop(&hv);
    return 0;
}
