/*
 * attach.c - the whole device for a process that owns it (the nbdkit
 * plugin): XenStore and platform handles, the frontend's XenBus machine
 * and one event thread for watches and the event channel.
 *
 * The event thread is the only user of the XenStore handle and of the
 * machine once bhblkfront_open returns; submitters only touch the
 * library handle.  A lie caught by a submitter's poll reaches the thread
 * through the wake eventfd, and the thread fails the device (error node,
 * Closing) with the machine.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "private.h"

#define DOMID_MAX 0x7fefu

struct bhblkfront_dev {
    struct xs_handle *xs;
    bhgntshr_handle *gs;
    bhevtchn_handle *ev;
    bhxb_watches *w;
    struct bhxb_machine m;
    bhblkfront *blk;
    uint32_t domid, backend_domid, devid;
    char dir[BHXB_PATH_MAX], backend[BHXB_PATH_MAX];
    int backend_watch; /* on backend's directory, which moves with a re-homed device */
    int wakefd;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu; /* below */
    pthread_cond_t cv;
    XenbusState ours;
    bool failed, stop, broken, force; /* force: stop now, closed or not */
    char broken_why[200];
};

/* ---- the machine's driver ---- */

static int cb_publish(void *arg, char *why, size_t len)
{
    return bhblkfront_publish(((bhblkfront_dev *)arg)->blk, why, len);
}

static int cb_connect(void *arg, char *why, size_t len)
{
    return bhblkfront_connect(((bhblkfront_dev *)arg)->blk, why, len);
}

static void cb_disconnect(void *arg)
{
    bhblkfront_disconnect(((bhblkfront_dev *)arg)->blk);
}

static void cb_fatal(void *arg, const char *why)
{
    bhblkfront_dev *d = arg;

    bhxb_dev_fatal(d->xs, d->dir, EPROTO, "%s", why);
    pthread_mutex_lock(&d->mu);
    d->failed = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static int cb_set_state(void *arg, XenbusState state)
{
    bhblkfront_dev *d = arg;

    if (bhxb_switch_state(d->xs, d->dir, state) != 0)
        return -1;
    pthread_mutex_lock(&d->mu);
    d->ours = state;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

static const struct bhxb_driver ops = {
    .publish = cb_publish,
    .connect = cb_connect,
    .disconnect = cb_disconnect,
    .fatal = cb_fatal,
    .set_state = cb_set_state,
};

static void on_broken(void *arg, const char *why);

/* Feeds the machine the backend's state as it is now (event thread). */
static void step(bhblkfront_dev *d)
{
    int peer = bhxb_read_state(d->xs, d->backend);
    bool stop, broken, resize;
    char why[sizeof(d->m.why)];

    if (peer == -2)
        return;
    /*
     * Connected seen again while connected: the backend rewrote its state
     * with a new size (online resize).  A bogus one breaks the device.
     */
    pthread_mutex_lock(&d->mu);
    resize = peer == XenbusStateConnected && d->ours == XenbusStateConnected && !d->broken;
    pthread_mutex_unlock(&d->mu);
    if (resize && bhblkfront_refresh(d->blk, why, sizeof(why)) < 0)
        on_broken(d, why);
    pthread_mutex_lock(&d->mu);
    stop = d->stop;
    broken = d->broken;
    memcpy(why, d->broken_why, sizeof(why) - 1); /* cut to the machine's line */
    why[sizeof(why) - 1] = '\0';
    pthread_mutex_unlock(&d->mu);
    if (broken && !d->m.view.error) {
        snprintf(d->m.why, sizeof(d->m.why), "%s", why);
        d->m.view.error = true;
    }
    d->m.view.online = !stop;
    d->m.view.ready = true;
    d->m.view.peer_online = bhxb_peer_online(d->xs, d->backend);
    bhxb_machine_step(&d->m, peer, &ops, d);
}

static void on_watch(void *arg, const char *path)
{
    (void)path;
    step(arg);
}

static void on_broken(void *arg, const char *why)
{
    bhblkfront_dev *d = arg;
    uint64_t one = 1;

    pthread_mutex_lock(&d->mu);
    d->broken = true;
    snprintf(d->broken_why, sizeof(d->broken_why), "%s", why);
    pthread_mutex_unlock(&d->mu);
    if (write(d->wakefd, &one, sizeof(one)) < 0) {
        /* the counter cannot overflow from one writer per break: nothing to do */
    }
}

static void *event_thread(void *arg)
{
    bhblkfront_dev *d = arg;
    struct pollfd p[3] = {
        {.fd = bhxb_watches_fd(d->w), .events = POLLIN},
        {.fd = bhevtchn_fd(d->ev), .events = POLLIN},
        {.fd = d->wakefd, .events = POLLIN},
    };

    for (;;) {
        uint64_t v;
        bool stop;

        if (poll(p, 3, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents & POLLIN) {
            blk_take_events(d->blk);
            bhblkfront_kick(d->blk);
        }
        if (p[0].revents & POLLIN)
            bhxb_watches_dispatch(d->w);
        if (p[2].revents & POLLIN) {
            if (read(d->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                break;
            step(d);
        }
        pthread_mutex_lock(&d->mu);
        stop = d->force || (d->stop && (d->ours == XenbusStateClosed || d->failed));
        pthread_mutex_unlock(&d->mu);
        if (stop)
            break;
    }
    return NULL;
}

/* ---- open and close ---- */

/*
 * Our backend, as our directory names it: backend and backend-id.  Our own
 * directory is writable by us: the backend path is checked like any value.
 */
static int read_backend(bhblkfront_dev *d, char *backend, size_t size, uint32_t *domid, char *why,
                        size_t len)
{
    char want[BHXB_PATH_MAX];
    unsigned int bid = 0;
    const char *bad = NULL;
    struct bhxb_key k[] = {
        {"backend", BHXB_STR, backend, size, true, 0},
        {"backend-id", BHXB_UINT, &bid, 0, true, DOMID_MAX},
    };

    if (bhxb_read_keys(d->xs, d->dir, k, 2, &bad) != 0) {
        snprintf(why, len, "%s/%s: %s (the toolstack writes libxl's device layout)", d->dir, bad,
                 strerror(errno));
        return -1;
    }
    snprintf(want, sizeof(want), "/local/domain/%u/backend/", bid);
    if (strncmp(backend, want, strlen(want)) != 0) {
        snprintf(why, len, "%s/backend is '%s', not a backend of domain %u", d->dir, backend, bid);
        errno = EPROTO;
        return -1;
    }
    *domid = bid;
    return 0;
}

/*
 * Our `backend` node changed: the toolstack re-homed the device to a
 * driver domain built again with a new id (bulkhead restart).  The old
 * connection ends (what was in flight goes back to the queue), we go
 * Closed and then Initialising, and the handshake starts over with the new
 * backend, whose directory the toolstack wrote before pointing us at it:
 * the ring and the pool are granted to the new domain and the queue is
 * reissued there.  Event thread only.
 */
static void rehome(bhblkfront_dev *d)
{
    char backend[BHXB_PATH_MAX], why[180];
    uint32_t bid;
    bool stop;

    pthread_mutex_lock(&d->mu);
    stop = d->stop;
    pthread_mutex_unlock(&d->mu);
    if (stop || d->m.removed)
        return;
    if (read_backend(d, backend, sizeof(backend), &bid, why, sizeof(why)) != 0) {
        /* Gone with our whole directory: the device is being removed, not moved. */
        if (errno != ENOENT)
            on_broken(d, why);
        return;
    }
    if (strcmp(backend, d->backend) == 0 && bid == d->backend_domid)
        return;
    bhblkfront_disconnect(d->blk);
    if (d->ours != XenbusStateClosed)
        cb_set_state(d, XenbusStateClosed);
    if (d->backend_watch >= 0)
        bhxb_watch_remove(d->w, d->backend_watch);
    d->backend_watch = -1;
    snprintf(d->backend, sizeof(d->backend), "%s", backend);
    d->backend_domid = bid;
    if (bhblkfront_set_backend(d->blk, backend, bid) != 0) {
        snprintf(why, sizeof(why), "cannot move to backend %.100s: %s", backend, strerror(errno));
        on_broken(d, why);
        return;
    }
    bhxb_machine_init(&d->m, BHXB_FRONTEND);
    cb_set_state(d, XenbusStateInitialising);
    /* Its first event steps the machine against the new backend. */
    if ((d->backend_watch = bhxb_watch_add(d->w, d->backend, on_watch, d)) < 0) {
        snprintf(why, sizeof(why), "cannot watch %.100s: %s", d->backend, strerror(errno));
        on_broken(d, why);
    }
}

static void on_moved(void *arg, const char *path)
{
    (void)path;
    rehome(arg);
}

bhblkfront *bhblkfront_dev_blk(bhblkfront_dev *d)
{
    return d->blk;
}

static void dev_free(bhblkfront_dev *d)
{
    bhblkfront_free(d->blk);
    bhxb_watches_free(d->w);
    if (d->ev)
        bhevtchn_close(d->ev);
    if (d->gs)
        bhgntshr_close(d->gs);
    if (d->xs)
        xs_close(d->xs);
    if (d->wakefd >= 0)
        close(d->wakefd);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
}

static void wake(bhblkfront_dev *d)
{
    uint64_t one = 1;

    if (write(d->wakefd, &one, sizeof(one)) < 0) {
        /* an eventfd counter does not overflow here */
    }
}

bhblkfront_dev *bhblkfront_open(uint32_t devid, const struct bhblkfront_cfg *opts, int timeout_ms,
                                char *why, size_t len)
{
    bhblkfront_dev *d = calloc(1, sizeof(*d));
    struct bhblkfront_cfg cfg = opts ? *opts : (struct bhblkfront_cfg){0};
    char path[BHXB_PATH_MAX + 16];
    struct timespec until;
    int domid, rc;

    if (d == NULL) {
        snprintf(why, len, "out of memory");
        return NULL;
    }
    d->wakefd = -1;
    d->backend_watch = -1;
    d->devid = devid;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    if ((d->xs = bhxb_open_domain(timeout_ms)) == NULL ||
        (d->gs = bhgntshr_open(NULL, 0)) == NULL || (d->ev = bhevtchn_open(NULL, 0)) == NULL ||
        (domid = bhplat_domid()) < 0) {
        snprintf(why, len, "cannot open XenStore and the platform (is BULKHEAD_HV_SOCKET set?): %s",
                 strerror(errno));
        goto fail;
    }
    d->domid = (uint32_t)domid;
    snprintf(d->dir, sizeof(d->dir), "/local/domain/%u/device/vbd/%u", d->domid, devid);
    if (read_backend(d, d->backend, sizeof(d->backend), &d->backend_domid, why, len) != 0)
        goto fail;
    cfg.xs = d->xs;
    cfg.gntshr = d->gs;
    cfg.evtchn = d->ev;
    cfg.dir = d->dir;
    cfg.backend = d->backend;
    cfg.backend_domid = d->backend_domid;
    cfg.broken = on_broken;
    cfg.arg = d;
    if ((d->blk = bhblkfront_new(&cfg)) == NULL || (d->w = bhxb_watches_new(d->xs)) == NULL ||
        (d->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        snprintf(why, len, "cannot set the device up: %s", strerror(errno));
        goto fail;
    }
    bhxb_machine_init(&d->m, BHXB_FRONTEND);
    /* The watches fire once at registration: that first step starts the handshake. */
    snprintf(path, sizeof(path), "%s/backend", d->dir);
    if ((d->backend_watch = bhxb_watch_add(d->w, d->backend, on_watch, d)) < 0 ||
        bhxb_watch_add(d->w, path, on_moved, d) < 0) {
        snprintf(why, len, "cannot watch %s: %s", d->backend, strerror(errno));
        goto fail;
    }
    if ((rc = pthread_create(&d->thread, NULL, event_thread, d)) != 0) {
        snprintf(why, len, "cannot start the event thread: %s", strerror(rc));
        goto fail;
    }
    d->started = true;
    wake(d);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&d->mu);
    rc = 0;
    while (d->ours != XenbusStateConnected && !d->failed && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&d->cv, &d->mu, &until);
    pthread_mutex_unlock(&d->mu);
    if (d->ours == XenbusStateConnected)
        return d;
    if (d->failed)
        snprintf(why, len, "vbd %u failed: %s", devid, d->m.why);
    else
        snprintf(why, len, "vbd %u: the backend %s did not connect within %d ms (state %s)", devid,
                 d->backend, timeout_ms, bhxb_state_name(d->ours));
    bhblkfront_close(d);
    return NULL;
fail:
    dev_free(d);
    return NULL;
}

void bhblkfront_close(bhblkfront_dev *d)
{
    struct timespec until;

    if (d == NULL)
        return;
    if (d->started) {
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        pthread_mutex_unlock(&d->mu);
        wake(d);
        /* The backend gets a moment to close with us; then we go regardless. */
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 3;
        pthread_mutex_lock(&d->mu);
        while (d->ours != XenbusStateClosed && !d->failed &&
               pthread_cond_timedwait(&d->cv, &d->mu, &until) != ETIMEDOUT)
            ;
        d->force = true;
        pthread_mutex_unlock(&d->mu);
        wake(d);
        pthread_join(d->thread, NULL);
    }
    dev_free(d);
}
