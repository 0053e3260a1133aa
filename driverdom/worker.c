/*
 * worker.c - a device's worker: the backend side of the XenBus handshake
 * (bhxb_machine) driving one driver's callbacks, and the device's event
 * loop (XenStore watches, the event channel, SIGTERM).
 *
 * The machine lives in the keeper's memory (struct keep): the first worker
 * starts it at Initialising; a later one finds it where the last one left
 * it, asks the driver to resume if the device is attached (ring mapped,
 * port bound), and otherwise simply steps on.  Either way it writes nothing
 * the frontend has not already seen unless the handshake itself moves.
 *
 * A worker stops at a clean point when its keeper hands the device over
 * to a worker from another binary (keeper.c, SIGUSR1): at the top of its
 * loop, between two passes, with nothing half done and every index and
 * in-flight request in the kept state; it writes nothing, unmaps and
 * unbinds by ending, and exits WORKER_HANDED.  The new worker resumes as
 * a restarted one does.
 *
 * Inputs of every step are read again from the store, never taken from the
 * watch event that woke us (events coalesce and repeat): our state node
 * (gone: the toolstack removed the device), our online key (0: the
 * toolstack detaches it), and the frontend's state node, parsed strictly
 * (garbage: the device fails).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "drvdom.h"

#define STOP_GRACE_MS 5000 /* on SIGTERM: how long the frontend gets to close with us */

struct worker {
    struct bhdev dev;
    struct keep *k;
    bhxb_watches *watches;
    struct bhplat_logger logger;
    int sigfd;
    int keeper_fd; /* a worker-only process's connection to its keeper; -1 if forked */
    bool dirty;    /* something changed: step the machine */
    bool handing;  /* SIGUSR1: stop at a clean point, for a new worker to take over */
    bool orphaned; /* the keeper's connection closed: the keeper is gone */
    bool stopping; /* SIGTERM: close the device and end */
    bool gone;     /* the device was removed: end */
};

#define W(d) ((struct worker *)(d))

/* ---- the machine's callbacks ---- */

static int cb_publish(void *arg, char *why, size_t len)
{
    struct bhdev *d = arg;

    return d->drv->probe ? d->drv->probe(d, why, len) : 0;
}

static int cb_connect(void *arg, char *why, size_t len)
{
    struct bhdev *d = arg;

    return d->drv->connect ? d->drv->connect(d, why, len) : 0;
}

static void cb_disconnect(void *arg)
{
    struct bhdev *d = arg;

    if (d->drv->disconnect)
        d->drv->disconnect(d);
}

static void cb_fatal(void *arg, const char *why)
{
    struct bhdev *d = arg;
    int err = d->err ? d->err : EPROTO;

    bhdev_log(d, "device failed: %s", why);
    if (bhxb_dev_fatal(d->xs, d->paths.backend, err, "%s", why) != 0 && errno != ENOENT)
        bhdev_log(d, "cannot write the error node: %s", strerror(errno));
}

/* How long a Xen driver domain's worker leaves a Closed, offline device's directory to libxl. */
#define REMOVE_GRACE_MS 2000

static void cb_remove(void *arg)
{
    struct bhdev *d = arg;

    /*
     * On Xen this daemon takes xl devd's place, and libxl in dom0 finishes
     * a detach (xl block-detach, network-detach, a guest's destroy) only
     * once the driver domain has removed the backend directory: it waits
     * LIBXL_DESTROY_TIMEOUT (10 s) for that and then fails the detach.  So
     * once the toolstack took the device offline and we are Closed, the
     * directory goes, as devd removes it after its hotplug teardown.  Not at
     * once: libxl first waits for our Closed, and reads the state node when
     * its watch fires; a state node already removed by then is "backend
     * wanted state 6 but it was removed" to libxl, and the detach fails
     * (seen under emulation).  devd's hotplug scripts leave libxl that time;
     * we leave it REMOVE_GRACE_MS, well inside libxl's 10 s.  In the
     * simulation bulkhead's toolstack removes the directory itself.
     */
    if (!d->machine->view.online && d->id.backend_domid != 0 &&
        drv_own_targets(d->id.backend_domid)) {
        struct timespec grace = {REMOVE_GRACE_MS / 1000, (REMOVE_GRACE_MS % 1000) * 1000000L};

        while (nanosleep(&grace, &grace) != 0 && errno == EINTR)
            ;
        if (!xs_rm(d->xs, XBT_NULL, d->paths.backend) && errno != ENOENT)
            bhdev_log(d, "cannot remove the backend directory %s: %s (libxl's detach will time out)",
                      d->paths.backend, strerror(errno));
    }
    W(arg)->gone = true;
}

static int cb_set_state(void *arg, XenbusState state)
{
    struct bhdev *d = arg;

    if (bhxb_switch_state(d->xs, d->paths.backend, state) != 0)
        return -1;
    bhdev_log(d, "%s -> %s", bhxb_state_name(d->machine->view.ours), bhxb_state_name(state));
    return 0;
}

static const struct bhxb_driver machine_ops = {
    .publish = cb_publish,
    .connect = cb_connect,
    .disconnect = cb_disconnect,
    .fatal = cb_fatal,
    .remove = cb_remove,
    .set_state = cb_set_state,
};

/* ---- stepping ---- */

void worker_step(struct bhdev *d)
{
    struct worker *w = W(d);
    struct bhxb_machine *m = d->machine;
    int own = bhxb_read_state(d->xs, d->paths.backend);
    int peer;

    if (own == XenbusStateUnknown) {
        /* Our directory is gone: the toolstack removed the device under us. */
        bhdev_log(d, "the device directory was removed: closing");
        cb_disconnect(d);
        w->gone = true;
        return;
    }
    if ((peer = bhxb_read_state(d->xs, d->paths.frontend)) == -2 || own == -2) {
        /*
         * Xen's xenstored answers a read under a destroyed domain's
         * directory with EACCES, not ENOENT (it judges by the nearest
         * node left, /local/domain, which only dom0 reads): the guest is
         * gone, and the toolstack removes our directory next.
         */
        if (own != -2 && errno == EACCES)
            bhdev_log(d, "cannot read the frontend's state: %s (its domain is gone, or it "
                      "closed its directory to us; waiting for the toolstack to remove the device)",
                      strerror(errno));
        else
            bhdev_log(d, "cannot read the device's state: %s (is the XenStore daemon up? "
                      "bulkhead-xenstored in the simulation, xenstored on Xen)", strerror(errno));
        return;
    }
    m->view.online = !w->stopping && bhxb_read_online(d->xs, d->paths.backend);
    m->view.ready = true;
    if (bhxb_machine_step(m, peer, &machine_ops, d) < 0) {
        if (errno == ENOENT) {
            cb_disconnect(d);
            w->gone = true;
        } else {
            bhdev_log(d, "cannot write our state: %s", strerror(errno));
        }
    }
    if (m->removed)
        w->gone = true;
}

void bhdev_fail(struct bhdev *d, int err, const char *fmt, ...)
{
    struct bhxb_machine *m = d->machine;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(m->why, sizeof(m->why), fmt, ap);
    va_end(ap);
    d->err = err ? err : EPROTO;
    m->view.error = true;
    worker_step(d);
}

static void on_watch(void *arg, const char *path)
{
    (void)path;
    W(arg)->dirty = true;
}

/* Every port that fired: the driver looks at its rings, then the port is live again. */
static void on_event(struct worker *w)
{
    int port;

    while ((port = bhevtchn_pending(w->dev.evtchn)) >= 0) {
        if (w->dev.drv->kick && !w->dev.machine->view.error)
            w->dev.drv->kick(&w->dev);
        bhevtchn_unmask(w->dev.evtchn, (uint32_t)port);
    }
}

static void on_signal(struct worker *w)
{
    struct signalfd_siginfo si;

    while (read(w->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGUSR1) {
            /* Only the keeper hands over; a stop already asked for goes on. */
            if (!w->stopping && !w->handing) {
                bhdev_log(&w->dev, "handing the device over: stopping at a clean point");
                w->handing = true;
            }
            continue;
        }
        if (!w->stopping) {
            bhdev_log(&w->dev, "stopping: closing the device");
            w->stopping = true;
            w->dirty = true;
        }
    }
}

/* ---- set-up ---- */

static void plat_log_line(struct bhplat_logger *l, const char *line)
{
    struct worker *w = (struct worker *)((char *)l - offsetof(struct worker, logger));

    bhdev_log(&w->dev, "%s", line);
}

/*
 * The toolstack's backend directory names its frontend: it must be the one
 * the layout puts there, or we would serve a device to the wrong domain.
 */
static int check_layout(struct bhdev *d)
{
    char fe[BHXB_PATH_MAX] = "";
    const char *bad = NULL;
    struct bhxb_key k = {"frontend", BHXB_STR, fe, sizeof(fe), true, 0};

    if (bhxb_read_keys(d->xs, d->paths.backend, &k, 1, &bad) != 0) {
        bhdev_fail(d, errno,
                   "the backend directory has no usable 'frontend' key (%s): the "
                   "toolstack must write libxl's device layout",
                   strerror(errno));
        return -1;
    }
    if (strcmp(fe, d->paths.frontend) != 0) {
        bhdev_fail(d, EINVAL,
                   "the backend names frontend %s, not %s: the toolstack must write "
                   "libxl's device layout",
                   fe, d->paths.frontend);
        return -1;
    }
    return 0;
}

static int open_handles(struct worker *w, const struct devref *r)
{
    struct bhdev *d = &w->dev;

    if ((w->sigfd = daemon_signalfd(SIGTERM, SIGINT, SIGUSR1, 0)) < 0) {
        bhdev_log(d, "cannot make a signalfd: %s", strerror(errno));
        return -1;
    }
    if ((d->xs = xs_open(0)) == NULL) {
        bhdev_log(d,
                  "cannot reach XenStore: %s (set XENSTORED_PATH to bulkhead-xenstored's "
                  "socket)",
                  strerror(errno));
        return -1;
    }
    w->logger.log = plat_log_line;
    if ((d->gnttab = bhgnttab_open(&w->logger, 0)) == NULL ||
        (d->evtchn = bhevtchn_open(&w->logger, 0)) == NULL) {
        bhdev_log(d,
                  "cannot open the grant table or event channels: %s (set "
                  "BULKHEAD_HV_SOCKET to bulkhead-hv's socket)",
                  strerror(errno));
        return -1;
    }
    if ((w->watches = bhxb_watches_new(d->xs)) == NULL ||
        bhxb_watch_add(w->watches, d->paths.backend, on_watch, w) < 0 ||
        bhxb_watch_add(w->watches, d->paths.frontend, on_watch, w) < 0) {
        bhdev_log(d, "cannot watch the device: %s", strerror(errno));
        return -1;
    }
    (void)r;
    return 0;
}

static int init_dev(struct worker *w, const struct devref *r, const struct bhdrv *drv,
                    struct keep *k, const struct bhacquired *acq)
{
    struct bhdev *d = &w->dev;

    d->drv = drv;
    d->id = (struct bhxb_dev){.kind = drv->frontend_kind,
                              .backend_kind = r->backend_kind,
                              .domid = r->frontend_domid,
                              .backend_domid = r->backend_domid,
                              .devid = r->devid};
    d->kept = k->drv;
    d->machine = &k->machine;
    d->fds = acq->fds;
    d->nfds = acq->nfds;
    d->acq = acq;
    d->restarts = k->restarts;
    w->k = k;
    w->sigfd = -1;
    if (bhxb_dev_paths(&d->id, &d->paths) != 0) {
        logline("%s %u/%u: no paths for this kind: %s", r->backend_kind, r->frontend_domid,
                r->devid, strerror(errno));
        return -1;
    }
    if (drv->priv_size > 0 && (d->priv = calloc(1, drv->priv_size)) == NULL)
        return -1;
    return 0;
}

/* A worker after the first: reattach what the dead one had attached. */
static void resume(struct worker *w)
{
    struct bhdev *d = &w->dev;
    XenbusState s = d->machine->view.ours;
    char why[160] = "";

    if (s != XenbusStateConnected && s != XenbusStateReconfiguring) {
        bhdev_log(d, "worker %u resumes the handshake at %s", d->restarts + 1, bhxb_state_name(s));
        return;
    }
    if (d->machine->view.error)
        return;
    if (d->drv->resume == NULL) {
        bhdev_fail(d, EIO, "the driver cannot resume a connected device after its worker died");
        return;
    }
    if (d->drv->resume(d, why, sizeof(why)) != 0) {
        bhdev_fail(d, d->err ? d->err : EIO, "resume failed: %s", why[0] ? why : "no reason");
        return;
    }
    bhdev_log(d, "worker %u resumed at %s from the keeper's state", d->restarts + 1,
              bhxb_state_name(s));
}

static void run(struct worker *w)
{
    struct bhdev *d = &w->dev;
    struct timespec stop_at = {0}, ticked;
    bool ticking = d->drv->tick != NULL && d->drv->tick_ms > 0;

    clock_gettime(CLOCK_MONOTONIC, &ticked);

    while (!w->gone) {
        struct pollfd pf[5] = {{.fd = w->sigfd, .events = POLLIN},
                               {.fd = bhxb_watches_fd(w->watches), .events = POLLIN},
                               {.fd = bhevtchn_fd(d->evtchn), .events = POLLIN},
                               {.fd = -1, .events = POLLIN},
                               {.fd = w->keeper_fd, .events = POLLIN}};
        int timeout = -1;
        /* The clean point: the last pass finished; the next one is the new worker's. */
        if (w->handing || w->orphaned)
            break;
        if (w->stopping) {
            if (d->machine->view.ours == XenbusStateClosed)
                break;
            timeout = STOP_GRACE_MS - ms_since(&stop_at);
            if (timeout <= 0) {
                bhdev_log(d, "the frontend did not close in %d ms: closing without it",
                          STOP_GRACE_MS);
                cb_disconnect(d);
                bhxb_switch_state(d->xs, d->paths.backend, XenbusStateClosed);
                break;
            }
        }
        if (ticking && !d->machine->view.error) {
            int left = (int)d->drv->tick_ms - ms_since(&ticked);
            if (left <= 0) {
                d->drv->tick(d);
                clock_gettime(CLOCK_MONOTONIC, &ticked);
                left = (int)d->drv->tick_ms;
            }
            if (timeout < 0 || left < timeout)
                timeout = left;
        }
        if (d->drv->pollfd != NULL && !d->machine->view.error)
            pf[3].fd = d->drv->pollfd(d);
        if (poll(pf, 5, timeout) < 0 && errno != EINTR) {
            bhdev_log(d, "poll: %s", strerror(errno));
            break;
        }
        if (pf[0].revents) {
            on_signal(w);
            clock_gettime(CLOCK_MONOTONIC, &stop_at);
        }
        if (pf[4].revents) {
            /* The keeper sends nothing after GO: anything here is its end. */
            bhdev_log(d, "the keeper's connection closed: the keeper is gone, and so is its "
                         "state: ending");
            w->orphaned = true;
            continue;
        }
        if (pf[1].revents)
            bhxb_watches_dispatch(w->watches);
        if (pf[2].revents)
            on_event(w);
        if (pf[3].fd >= 0 && pf[3].revents && d->drv->ready && !d->machine->view.error)
            d->drv->ready(d);
        if (w->dirty) {
            w->dirty = false;
            worker_step(d);
        }
    }
}

/*
 * Where dom0's block-list and network-list find this worker: a node in the
 * domain's own data/ (private to it and dom0; nothing a frontend can see),
 *   /local/domain/<self>/data/bulkhead-worker/<backend-kind>-<frontend>-<devid>
 * holding the pid as this domain sees it.  One flat node per device, so
 * that its removal leaves nothing behind.
 */
static void worker_pid_path(const struct bhdev *d, char *buf, size_t size)
{
    snprintf(buf, size, "/local/domain/%u/data/bulkhead-worker/%s-%u-%u", d->id.backend_domid,
             d->id.backend_kind, d->id.domid, d->id.devid);
}

static void worker_pid_publish(const struct bhdev *d)
{
    char path[BHXB_PATH_MAX], pid[16];
    int n = snprintf(pid, sizeof(pid), "%d", (int)getpid());

    worker_pid_path(d, path, sizeof(path));
    if (!xs_write(d->xs, XBT_NULL, path, pid, (unsigned int)n))
        bhdev_log(d, "cannot write %s: %s (block-list will not show this worker)", path,
                  strerror(errno));
}

static void worker_pid_remove(const struct bhdev *d)
{
    char path[BHXB_PATH_MAX];

    worker_pid_path(d, path, sizeof(path));
    xs_rm(d->xs, XBT_NULL, path);
}

/*
 * The seam where a worker, forked by its keeper or started by an upgrade,
 * goes from setting up to serving: its handles are open, and it has not
 * read a byte the frontend wrote.  The sandbox (drvdom_confine, being
 * written apart) is to be called from here, so that both kinds of worker
 * are confined alike.  Until then it names the process as its keeper names
 * a forked worker (the tools find workers by that name) and takes
 * no_new_privs, which a worker never needs to be without.
 */
int worker_enter_service(struct bhdev *d)
{
    char comm[16];

    snprintf(comm, sizeof(comm), "bhw-%u-%u", d->id.domid, d->id.devid);
    prctl(PR_SET_NAME, comm);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        bhdev_log(d, "cannot set no_new_privs: %s", strerror(errno));
        return -1;
    }
    /*
     * Fail closed: in a driver domain a worker serves only confined, forked
     * by a confined keeper or started by a confined --upgrade (confine.c).
     */
    if (!drvdom_confined() && bhplat_domid() > 0) {
        bhdev_log(d, "not confined in a driver domain: refusing to serve");
        return -1;
    }
    return 0;
}

int worker_main(const struct devref *r, const struct bhdrv *drv, struct keep *k,
                const struct bhacquired *acq, int keeper_fd)
{
    struct worker w = {0};
    int rc = WORKER_FAILED;

    w.keeper_fd = keeper_fd;
    if (init_dev(&w, r, drv, k, acq) != 0 || open_handles(&w, r) != 0 ||
        worker_enter_service(&w.dev) != 0)
        goto out;
    if (!k->started) {
        bhxb_machine_init(&k->machine, BHXB_BACKEND);
        k->machine.view.ready = true;
        k->started = 1;
        check_layout(&w.dev); /* a wrong layout fails the device, not the worker */
        if (k->acq.err != 0)
            bhdev_fail(&w.dev, k->acq.err, "dom0's broker did not give this device: %s",
                       k->acq.why);
    } else {
        resume(&w);
    }
    k->serving = 1;
    worker_pid_publish(&w.dev);
    run(&w);
    if (w.handing || w.orphaned) {
        /* The next worker publishes its pid over ours; the device stays as it is. */
        rc = w.handing ? WORKER_HANDED : WORKER_FAILED;
        goto out;
    }
    worker_pid_remove(&w.dev);
    rc = WORKER_DONE;
out:
    bhxb_watches_free(w.watches);
    if (w.dev.evtchn != NULL)
        bhevtchn_close(w.dev.evtchn);
    if (w.dev.gnttab != NULL)
        bhgnttab_close(w.dev.gnttab);
    if (w.dev.xs != NULL)
        xs_close(w.dev.xs);
    free(w.dev.priv);
    return rc;
}
