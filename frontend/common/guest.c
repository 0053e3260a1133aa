/*
 * guest.c - bulkhead-guest, the runtime of a simulated guest: the
 * frontend half of every device the toolstack gave the domain, then its
 * workload.
 *
 *   bulkhead-guest [--wait SECONDS] [--devices N] [--vbd-queues N]
 *                  [--vbd-persistent 0|1] [-- PROGRAM [ARG]...]
 *
 * It watches /local/domain/<self>/device, starts a frontend for each
 * <kind>/<devid> of a kind it has a driver for (vbd, vif), and runs the
 * frontend side of the handshake for it (bhxb_machine): Initialised once
 * the backend waits, Connected once it connected, Closed when it closes,
 * and Initialising again when it comes back (a reconnect).  A vbd is run
 * by a process of its own instead (fe_vbd.c: nbdkit with the blkfront
 * plugin, which owns its handshake since it maps the ring); the runtime
 * supervises that process.  Once every device present at start is
 * Connected or failed (or after --wait seconds, 60 by default), it runs
 * PROGRAM, and exits with PROGRAM's status after closing its devices;
 * without PROGRAM it serves until SIGTERM or SIGINT, then closes its
 * devices and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "front.h"

#define CLOSE_GRACE_MS 5000    /* how long the backends get to close with us */

#define BOOT_XS_WAIT_MS 15000 /* for the toolstack to introduce us */

static const char *progname = "bulkhead-guest";
/* A driver failed its device from a kick or its fds: the next turn steps the machines. */
static bool fail_pending;

struct guest {
    struct xs_handle *xs;
    bhxb_watches *watches;
    bhgntshr_handle *gntshr;
    bhevtchn_handle *evtchn;
    uint32_t domid;
    char devices[64]; /* /local/domain/<self>/device */
    struct bhfront *fronts;
    int sigfd;
    bool dirty, stopping;
    char **workload;
    pid_t workload_pid;
    int workload_status;
    bool workload_done;
    unsigned int expect; /* --devices: how many the toolstack is writing */
};

static void vlog(const char *prefix, const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s[%d]: %s%s", progname, (int)getpid(),
                     prefix ? prefix : "", prefix ? ": " : "");

    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "%s\n", line);
}

static void glog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void glog(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(NULL, fmt, ap);
    va_end(ap);
}

void bhfront_log(const struct bhfront *f, const char *fmt, ...)
{
    char name[48];
    va_list ap;

    snprintf(name, sizeof(name), "%s %u", f->drv->kind, f->devid);
    va_start(ap, fmt);
    vlog(name, fmt, ap);
    va_end(ap);
}

/* ---- helpers for frontends ---- */

void *bhfront_share(struct bhfront *f, unsigned int count, uint32_t *refs, char *why, size_t whylen)
{
    void *p;

    if (count == 0 || count > BHFRONT_MAX_RING) {
        snprintf(why, whylen, "a ring of %u pages", count);
        return NULL;
    }
    if ((p = bhgntshr_share_pages(f->gntshr, f->backend_domid, (int)count, refs, 1)) == NULL)
        snprintf(why, whylen, "cannot grant %u page(s) to domain %u: %s", count, f->backend_domid,
                 strerror(errno));
    return p;
}

void bhfront_unshare(struct bhfront *f, void *addr, unsigned int count)
{
    if (addr != NULL && bhgntshr_unshare(f->gntshr, addr, count) != 0)
        bhfront_log(f, "unshare: %s", strerror(errno));
}

int bhfront_evtchn_alloc(struct bhfront *f, char *why, size_t whylen)
{
    size_t i;
    int port;

    for (i = 0; i < BHFRONT_MAX_PORTS && f->ports[i] != 0; i++)
        ;
    if (i == BHFRONT_MAX_PORTS) {
        snprintf(why, whylen, "more than %d event channels for one device", BHFRONT_MAX_PORTS);
        return -1;
    }
    if ((port = bhevtchn_bind_unbound_port(f->evtchn, f->backend_domid)) < 0) {
        snprintf(why, whylen, "cannot allocate an event channel for domain %u: %s",
                 f->backend_domid, strerror(errno));
        return -1;
    }
    f->ports[i] = (uint32_t)port;
    return port;
}

void bhfront_evtchn_close(struct bhfront *f, uint32_t port)
{
    for (size_t i = 0; i < BHFRONT_MAX_PORTS; i++)
        if (f->ports[i] == port) {
            f->ports[i] = 0;
            if (bhevtchn_unbind(f->evtchn, port) != 0)
                bhfront_log(f, "close port %u: %s", port, strerror(errno));
        }
}

/* ---- the handshake ---- */

static void cb_disconnect(void *arg)
{
    struct bhfront *f = arg;

    f->drv->disconnect(f);
}

static int cb_publish(void *arg, char *why, size_t len)
{
    struct bhfront *f = arg;

    cb_disconnect(f); /* a reconnect starts from nothing */
    if (f->drv->publish(f, why, len) == 0)
        return 0;
    cb_disconnect(f); /* nothing half-published stays granted */
    return -1;
}

static int cb_connect(void *arg, char *why, size_t len)
{
    struct bhfront *f = arg;

    return f->drv->connect ? f->drv->connect(f, why, len) : 0;
}

static void cb_fatal(void *arg, const char *why)
{
    struct bhfront *f = arg;

    bhfront_log(f, "device failed: %s", why);
    if (bhxb_dev_fatal(f->xs, f->dir, f->err ? f->err : EPROTO, "%s", why) != 0 && errno != ENOENT)
        bhfront_log(f, "cannot write the error node: %s", strerror(errno));
}

static int cb_set_state(void *arg, XenbusState state)
{
    struct bhfront *f = arg;

    if (bhxb_switch_state(f->xs, f->dir, state) != 0)
        return -1;
    bhfront_log(f, "%s -> %s", bhxb_state_name(f->machine.view.ours), bhxb_state_name(state));
    return 0;
}

static const struct bhxb_driver machine_ops = {
    .publish = cb_publish,
    .connect = cb_connect,
    .disconnect = cb_disconnect,
    .fatal = cb_fatal,
    .set_state = cb_set_state,
};

/*
 * A device run by a process of its own: supervise it, and follow its
 * state in the store (the process writes it) for settling and shutdown.
 */
static bool front_supervise(struct guest *g, struct bhfront *f)
{
    char why[200];
    int state = bhxb_read_state(g->xs, f->dir);

    if (state == XenbusStateUnknown)
        return false;
    if (!f->machine.view.error && f->drv->supervise(f, g->stopping, why, sizeof(why)) != 0) {
        bhfront_log(f, "device failed: %s", why);
        f->machine.view.error = true;
        if (bhxb_dev_fatal(g->xs, f->dir, EPROTO, "%s", why) != 0 && errno != ENOENT)
            bhfront_log(f, "cannot write the error node: %s", strerror(errno));
        state = bhxb_read_state(g->xs, f->dir);
    }
    if (state >= 0 && state != (int)f->machine.view.ours)
        bhfront_log(f, "%s -> %s", bhxb_state_name(f->machine.view.ours), bhxb_state_name(state));
    f->machine.view.ours = state >= 0 ? (XenbusState)state : f->machine.view.ours;
    /* An error node written by the process counts as failed, as our own does. */
    if (!f->machine.view.error && state >= XenbusStateClosing && g->stopping == false) {
        char err[8];

        f->machine.view.error = bhxb_read_error(g->xs, f->dir, err, sizeof(err)) == 0;
    }
    return true;
}

static void front_rehome(struct guest *g, struct bhfront *f);

/* Returns false when our directory is gone: the device was removed. */
static bool front_step(struct guest *g, struct bhfront *f)
{
    /* A device whose backend could not be named fails at once: no peer to wait for. */
    int peer;

    if (f->drv->supervise != NULL)
        return front_supervise(g, f);
    front_rehome(g, f);
    peer = f->backend[0] ? bhxb_read_state(g->xs, f->backend) : XenbusStateUnknown;
    if (bhxb_read_state(g->xs, f->dir) == XenbusStateUnknown)
        return false;
    if (peer == -2) {
        bhfront_log(f, "cannot read the backend's state: %s", strerror(errno));
        return true;
    }
    f->machine.view.online = !g->stopping;
    f->machine.view.ready = true;
    f->machine.view.peer_online = bhxb_peer_online(g->xs, f->backend);
    if (bhxb_machine_step(&f->machine, peer, &machine_ops, f) < 0)
        return errno != ENOENT;
    return true;
}

void bhfront_fail(struct bhfront *f, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(f->machine.why, sizeof(f->machine.why), fmt, ap);
    va_end(ap);
    f->err = err ? err : EPROTO;
    f->machine.view.error = true;
    fail_pending = true;
}

/* ---- devices ---- */

static void on_watch(void *arg, const char *path)
{
    (void)path;
    ((struct guest *)arg)->dirty = true;
}

/*
 * Our device directory names its backend; the toolstack wrote it, but our
 * own directory is writable by us, so it is parsed like any other value:
 * backend-id a domain id, backend exactly libxl's path for this device.
 * 0 with path and *bid; -1 with errno and a reason in why.
 */
static int read_backend(struct guest *g, struct bhfront *f, char *path, size_t size,
                        unsigned int *bid, char *why, size_t whylen)
{
    char want[BHXB_PATH_MAX], kind[33];
    unsigned int fe, devid;
    const char *bad = NULL;
    struct bhxb_key k[] = {
        {"backend", BHXB_STR, path, size, true, 0},
        {"backend-id", BHXB_UINT, bid, 0, true, BHXB_DOMID_MAX},
    };
    int n = 0;

    if (bhxb_read_keys(g->xs, f->dir, k, 2, &bad) != 0) {
        snprintf(why, whylen, "key %s: %s (the toolstack must write libxl's device layout)", bad,
                 strerror(errno));
        return -1;
    }
    if (sscanf(path, "/local/domain/%*u/backend/%32[a-z0-9-]/%u/%u%n", kind, &fe, &devid, &n) !=
            3 ||
        (snprintf(want, sizeof(want), "/local/domain/%u/backend/%s/%u/%u", *bid, kind, g->domid,
                  f->devid),
         strcmp(want, path) != 0)) {
        snprintf(why, whylen, "key backend is '%s', not libxl's path for this device", path);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static int front_backend(struct guest *g, struct bhfront *f)
{
    char path[BHXB_PATH_MAX] = "", why[400];
    unsigned int bid = 0;

    if (read_backend(g, f, path, sizeof(path), &bid, why, sizeof(why)) != 0) {
        bhfront_fail(f, errno, "%s", why);
        return -1;
    }
    f->backend_domid = bid;
    snprintf(f->backend, sizeof(f->backend), "%s", path);
    return 0;
}

/*
 * Our `backend` node names another backend than the one we serve: the
 * toolstack re-homed the device to a driver domain built again with a new
 * id (bulkhead restart), having written the new backend directory first.
 * The old connection ends, we go Closed, then Initialising against the new
 * backend: the next steps grant the rings to the new domain and connect.
 * What outlives a connection (a vif's eth TAP, its addresses) stays.
 */
static void front_rehome(struct guest *g, struct bhfront *f)
{
    char path[BHXB_PATH_MAX] = "", why[400];
    unsigned int bid = 0;

    if (f->backend[0] == '\0' || g->stopping || f->machine.view.error)
        return;
    if (read_backend(g, f, path, sizeof(path), &bid, why, sizeof(why)) != 0) {
        if (errno != ENOENT) /* ENOENT: our directory is going, the device with it */
            bhfront_fail(f, errno, "%s", why);
        return;
    }
    if (strcmp(path, f->backend) == 0 && bid == f->backend_domid)
        return;
    bhfront_log(f, "re-homed: backend %s (domain %u), was %s", path, bid, f->backend);
    f->drv->disconnect(f);
    if (f->machine.view.ours != XenbusStateClosed && cb_set_state(f, XenbusStateClosed) == 0)
        f->machine.view.ours = XenbusStateClosed;
    if (f->watch_id >= 0)
        bhxb_watch_remove(g->watches, f->watch_id);
    f->backend_domid = bid;
    snprintf(f->backend, sizeof(f->backend), "%s", path);
    bhxb_machine_init(&f->machine, BHXB_FRONTEND);
    if (cb_set_state(f, XenbusStateInitialising) != 0)
        bhfront_log(f, "cannot write state Initialising: %s", strerror(errno));
    if ((f->watch_id = bhxb_watch_add(g->watches, f->backend, on_watch, g)) < 0)
        bhfront_fail(f, errno, "cannot watch the backend %s: %s", f->backend, strerror(errno));
}

static void front_add(struct guest *g, const struct bhfrontdrv *drv, uint32_t devid)
{
    struct bhfront *f = calloc(1, sizeof(*f));

    if (f == NULL || (drv->priv_size && (f->priv = calloc(1, drv->priv_size)) == NULL)) {
        glog("%s %u: out of memory: the device is not started", drv->kind, devid);
        free(f);
        return;
    }
    f->drv = drv;
    f->xs = g->xs;
    f->gntshr = g->gntshr;
    f->evtchn = g->evtchn;
    f->domid = g->domid;
    f->devid = devid;
    f->watch_id = -1;
    f->seen = true;
    snprintf(f->dir, sizeof(f->dir), "%s/%s/%u", g->devices, drv->kind, devid);
    bhxb_machine_init(&f->machine, BHXB_FRONTEND);
    if (front_backend(g, f) == 0 &&
        (f->watch_id = bhxb_watch_add(g->watches, f->backend, on_watch, g)) < 0)
        bhfront_fail(f, errno, "cannot watch the backend %s: %s", f->backend, strerror(errno));
    f->next = g->fronts;
    g->fronts = f;
    bhfront_log(f, "frontend started (%s), backend %s", drv->name,
                f->backend[0] ? f->backend : "unknown");
}

static void front_free(struct guest *g, struct bhfront *f)
{
    f->drv->disconnect(f);
    if (f->drv->release != NULL)
        f->drv->release(f);
    if (f->watch_id >= 0)
        bhxb_watch_remove(g->watches, f->watch_id);
    bhfront_log(f, "removed");
    free(f->priv);
    free(f);
}

static struct bhfront *front_find(struct guest *g, const char *kind, uint32_t devid)
{
    for (struct bhfront *f = g->fronts; f != NULL; f = f->next)
        if (f->devid == devid && strcmp(f->drv->kind, kind) == 0)
            return f;
    return NULL;
}

static void scan(struct guest *g)
{
    unsigned int nk, nd;
    char **kinds = xs_directory(g->xs, XBT_NULL, g->devices, &nk), path[BHXB_PATH_MAX];

    for (struct bhfront *f = g->fronts; f != NULL; f = f->next)
        f->seen = false;
    for (unsigned int i = 0; kinds != NULL && i < nk; i++) {
        const struct bhfrontdrv *drv = bhfrontdrv_find(kinds[i]);
        char **devs;
        if (drv == NULL)
            continue;
        snprintf(path, sizeof(path), "%s/%s", g->devices, kinds[i]);
        devs = xs_directory(g->xs, XBT_NULL, path, &nd);
        for (unsigned int j = 0; devs != NULL && j < nd; j++) {
            uint64_t devid;
            struct bhfront *f;
            if (bhxb_parse_u64(devs[j], strlen(devs[j]), 0, UINT32_MAX, &devid) != 0)
                continue;
            if ((f = front_find(g, kinds[i], (uint32_t)devid)) != NULL)
                f->seen = true;
            else if (!g->stopping)
                front_add(g, drv, (uint32_t)devid);
        }
        free(devs);
    }
    free(kinds);
}

/* Steps every device; frees those whose directory is gone. */
static void step_all(struct guest *g)
{
    scan(g);
    for (struct bhfront **pp = &g->fronts; *pp != NULL;) {
        struct bhfront *f = *pp;
        if (!f->seen || !front_step(g, f)) {
            *pp = f->next;
            front_free(g, f);
        } else {
            pp = &f->next;
        }
    }
}

static void on_event(struct guest *g)
{
    int port;

    while ((port = bhevtchn_pending(g->evtchn)) >= 0) {
        for (struct bhfront *f = g->fronts; f != NULL; f = f->next)
            for (size_t i = 0; i < BHFRONT_MAX_PORTS; i++)
                if (f->ports[i] == (uint32_t)port && f->drv->kick)
                    f->drv->kick(f);
        bhevtchn_unmask(g->evtchn, (uint32_t)port);
    }
}

/* ---- the workload ---- */

/*
 * Every device is Connected or failed - and, with --devices N, at least N
 * are there: the domain runs before `bulkhead create` has written them.
 */
static bool devices_settled(const struct guest *g)
{
    unsigned int n = 0;

    for (const struct bhfront *f = g->fronts; f != NULL; f = f->next, n++)
        if (f->machine.view.ours != XenbusStateConnected && !f->machine.view.error)
            return false;
    return n >= g->expect;
}

static void start_workload(struct guest *g)
{
    pid_t pid;

    fflush(stderr);
    if ((pid = fork()) < 0) {
        glog("cannot fork the workload: %s (raise the domain's process limit)", strerror(errno));
        g->workload_done = true;
        g->workload_status = 127 << 8;
        g->stopping = g->dirty = true;
        return;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        close_range(3, ~0u, 0);
        execvp(g->workload[0], g->workload);
        fprintf(stderr, "%s: cannot run %s: %s (is it in the domain's PATH?)\n", progname,
                g->workload[0], strerror(errno));
        _exit(127);
    }
    g->workload_pid = pid;
    glog("workload %s started (pid %d)", g->workload[0], (int)pid);
}

static void on_signal(struct guest *g)
{
    struct signalfd_siginfo si;
    int status;

    while (read(g->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD)
            g->dirty = true; /* a device's own process may have died: its driver reaps it */
        if (si.ssi_signo != SIGCHLD) {
            if (!g->stopping)
                glog("signal %u: closing every device", si.ssi_signo);
            if (g->workload_pid > 0 && !g->workload_done)
                kill(g->workload_pid, (int)si.ssi_signo);
            g->stopping = g->dirty = true;
        }
    }
    while (g->workload_pid > 0 && !g->workload_done &&
           waitpid(g->workload_pid, &status, WNOHANG) == g->workload_pid) {
        g->workload_done = true;
        g->workload_status = status;
        glog("workload ended with status %d: closing every device", status);
        g->stopping = g->dirty = true;
    }
}

/* ---- set-up and main loop ---- */

static int setup(struct guest *g)
{
    if ((g->sigfd = daemon_signalfd(SIGCHLD, SIGTERM, SIGINT, 0)) < 0) {
        glog("cannot make a signalfd: %s", strerror(errno));
        return -1;
    }
    if ((g->xs = bhxb_open_domain(BOOT_XS_WAIT_MS)) == NULL) {
        glog("cannot reach XenStore: %s (set XENSTORED_PATH to bulkhead-xenstored's socket, as "
             "`bulkhead create` does)",
             strerror(errno));
        return -1;
    }
    if (bhxb_learn_domid(g->xs, bhplat_domid(), &g->domid) != 0) {
        glog("cannot learn this domain's id: neither bulkhead-hv (set BULKHEAD_HV_SOCKET) nor "
             "XenStore's 'domid' answered; run it in a domain made by `bulkhead create`");
        return -1;
    }
    if ((g->gntshr = bhgntshr_open(NULL, 0)) == NULL ||
        (g->evtchn = bhevtchn_open(NULL, 0)) == NULL) {
        glog("cannot open the grant table or event channels: %s (set BULKHEAD_HV_SOCKET to "
             "bulkhead-hv's socket)",
             strerror(errno));
        return -1;
    }
    snprintf(g->devices, sizeof(g->devices), "/local/domain/%u/device", g->domid);
    if ((g->watches = bhxb_watches_new(g->xs)) == NULL ||
        bhxb_watch_add(g->watches, g->devices, on_watch, g) < 0) {
        glog("cannot watch %s: %s (does this domain own its home in XenStore?)", g->devices,
             strerror(errno));
        return -1;
    }
    return 0;
}

static bool all_closed(const struct guest *g)
{
    for (const struct bhfront *f = g->fronts; f != NULL; f = f->next)
        if (f->machine.view.ours != XenbusStateClosed)
            return false;
    return true;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

#define GUEST_MAX_FDS 64 /* the runtime's 3, then the drivers' own (a vif: a TAP fd per queue) */

/* The drivers' fds after the runtime's three, and their count: owner[i] is pf[i]'s device. */
static unsigned int driver_fds(struct guest *g, struct pollfd *pf, struct bhfront **owner)
{
    unsigned int n = 0;

    for (struct bhfront *f = g->fronts; f != NULL; f = f->next) {
        unsigned int k = 0;

        if (f->drv->pollfds != NULL && !f->machine.view.error)
            k = f->drv->pollfds(f, pf + n, GUEST_MAX_FDS - 3 - n);
        for (unsigned int i = 0; i < k; i++)
            owner[n + i] = f;
        n += k;
    }
    return n;
}

/* Each device's ready() with its own entries (they are contiguous). */
static void drivers_ready(struct pollfd *pf, struct bhfront **owner, unsigned int n)
{
    for (unsigned int i = 0; i < n;) {
        unsigned int j = i;
        bool any = false;

        while (j < n && owner[j] == owner[i])
            any |= pf[j++].revents != 0;
        if (any)
            owner[i]->drv->ready(owner[i], pf + i, j - i);
        i = j;
    }
}

static void run(struct guest *g, long wait_ms)
{
    long started = now_ms(), stop_at = -1;

    g->dirty = true;
    for (;;) {
        struct pollfd pf[GUEST_MAX_FDS] = {{.fd = g->sigfd, .events = POLLIN},
                                           {.fd = bhxb_watches_fd(g->watches), .events = POLLIN},
                                           {.fd = bhevtchn_fd(g->evtchn), .events = POLLIN}};
        struct bhfront *owner[GUEST_MAX_FDS];
        unsigned int nd;
        long timeout = -1;
        if (fail_pending) {
            fail_pending = false;
            g->dirty = true;
        }
        if (g->dirty) {
            g->dirty = false;
            step_all(g);
        }
        if (g->stopping) {
            if (stop_at < 0)
                stop_at = now_ms() + CLOSE_GRACE_MS;
            if (all_closed(g) || now_ms() >= stop_at)
                return;
            timeout = stop_at - now_ms();
        } else if (g->workload != NULL && g->workload_pid == 0) {
            if (devices_settled(g) || now_ms() - started >= wait_ms) {
                if (!devices_settled(g))
                    glog("devices not connected after %ld s: starting the workload anyway",
                         wait_ms / 1000);
                start_workload(g);
            } else {
                timeout = wait_ms - (now_ms() - started);
            }
        }
        nd = driver_fds(g, pf + 3, owner);
        if (poll(pf, 3 + nd, (int)timeout) < 0 && errno != EINTR) {
            glog("poll: %s", strerror(errno));
            return;
        }
        if (pf[0].revents)
            on_signal(g);
        if (pf[1].revents)
            bhxb_watches_dispatch(g->watches);
        if (pf[2].revents)
            on_event(g);
        /* Devices are freed only in step_all, at the top: every owner is alive. */
        drivers_ready(pf + 3, owner, nd);
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [--wait SECONDS] [--devices N] [--vbd-queues N] [--vbd-persistent 0|1]\n"
            "       [-- PROGRAM [ARG]...]\n"
            "Runs the frontends of this domain's devices, then PROGRAM.  See "
            "bulkhead-guest(8).\n",
            progname);
}

int main(int argc, char **argv)
{
    struct guest g = {.sigfd = -1};
    long wait_s = 60;
    int i, rc = 1;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            g.workload = argv[i + 1] ? argv + i + 1 : NULL;
            break;
        } else if (strcmp(argv[i], "--devices") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end != '\0' || end == argv[i] || n < 0 || n > 4096) {
                fprintf(stderr, "%s: --devices %s: give a count, 0 to 4096\n", progname, argv[i]);
                return 2;
            }
            g.expect = (unsigned int)n;
        } else if (strcmp(argv[i], "--vbd-queues") == 0 && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end != '\0' || end == argv[i] || n < 1 || n > 16) {
                fprintf(stderr, "%s: --vbd-queues %s: give a count, 1 to 16\n", progname, argv[i]);
                return 2;
            }
            fe_vbd_queues = (unsigned int)n;
        } else if (strcmp(argv[i], "--vbd-persistent") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "0") != 0 && strcmp(argv[i], "1") != 0) {
                fprintf(stderr, "%s: --vbd-persistent %s: give 0 or 1\n", progname, argv[i]);
                return 2;
            }
            fe_vbd_persistent = argv[i][0] == '1';
        } else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
            char *end;
            wait_s = strtol(argv[++i], &end, 10);
            if (*end != '\0' || wait_s < 0 || wait_s > 86400) {
                fprintf(stderr, "%s: --wait %s: give a number of seconds, 0 to 86400\n", progname,
                        argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "%s: unexpected argument '%s': put the workload after --\n", progname,
                    argv[i]);
            usage(stderr);
            return 2;
        }
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    if (setup(&g) != 0)
        goto out;
    glog("domain %u: serving %s", g.domid, g.devices);
    run(&g, wait_s * 1000);
    if (!all_closed(&g))
        glog("some devices did not close in time: leaving them");
    rc = 0;
    if (g.workload_done)
        rc = WIFEXITED(g.workload_status) ? WEXITSTATUS(g.workload_status)
                                          : 128 + WTERMSIG(g.workload_status);
out:
    while (g.fronts != NULL) {
        struct bhfront *f = g.fronts;
        g.fronts = f->next;
        front_free(&g, f);
    }
    bhxb_watches_free(g.watches);
    if (g.evtchn != NULL)
        bhevtchn_close(g.evtchn);
    if (g.gntshr != NULL)
        bhgntshr_close(g.gntshr);
    if (g.xs != NULL)
        xs_close(g.xs);
    return rc;
}
