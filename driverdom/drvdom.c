/*
 * drvdom.c - bulkhead-drvdom's main process: the driver domain's device
 * daemon, like `xl devd` but with no shell, no hotplug script and no exec.
 *
 * It learns its own domain id, watches /local/domain/<self>/backend, and
 * for each device directory <kind>/<frontend-domid>/<devid> of a kind a
 * built-in driver serves, forks a keeper (keeper.c), which runs the
 * device's worker.  A keeper ends with its device; this process reaps it.
 * SIGTERM or SIGINT: every keeper is told to stop (its worker closes the
 * device), and the process exits once they all have.
 *
 * With --upgrade it is instead a worker-only process of a new binary,
 * started by dom0 inside the domain (upgrade.c): it takes every device over
 * from the running workers, through their keepers.
 *
 * Only directories the toolstack has just made (backend state Initialising,
 * online) get a keeper: a device left Closed by an earlier keeper is the
 * toolstack's to remove, not ours to revive.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "drvdom.h"

#define BOOT_XS_WAIT_MS 15000 /* for the toolstack to introduce us */
/*
 * A device whose directory the toolstack removed: its worker sees that and
 * ends at once, or within its 5 s stop grace.  A keeper still there this
 * long after is told to stop (and kills a worker that does not).
 */
#define GONE_GRACE_MS 15000

const char *progname = "bulkhead-drvdom";
static char last_line[1024]; /* for the ready fd: why it could not start */

void vlogline(const char *prefix, const char *fmt, va_list ap)
{
    char line[1024];
    int n;

    n = snprintf(line, sizeof(line), "%s[%d]: %s%s", progname, (int)getpid(), prefix ? prefix : "",
                 prefix ? ": " : "");
    if (n < 0 || (size_t)n >= sizeof(line))
        n = 0;
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    for (char *p = line; *p; p++) /* one line, whatever the message held */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, "%s\n", line);
    snprintf(last_line, sizeof(last_line), "%s", line);
}

void logline(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlogline(NULL, fmt, ap);
    va_end(ap);
}

void devref_name(const struct devref *r, char *buf, size_t size)
{
    snprintf(buf, size, "%s %u/%u", r->backend_kind, r->frontend_domid, r->devid);
}

int ms_since(const struct timespec *since)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int)((now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000);
}

/* ---- the devices we serve ---- */

struct child {
    struct child *next;
    struct devref ref;
    pid_t pid;
    bool gone;                /* its directory was found removed ... */
    struct timespec gone_at;  /* ... first then */
    bool told;                /* stopped for outliving its directory */
};

struct drvdom {
    struct xs_handle *xs;
    bhxb_watches *watches;
    uint32_t domid;
    char backend[64]; /* /local/domain/<self>/backend */
    struct child *children;
    struct devref *pending; /* devices a scan found new: their keepers are forked after it */
    size_t npending, cap_pending;
    char ignored[8][33]; /* kinds already logged as ignored, once each */
    int sigfd;
    bool stopping;
    bool rescan;
};

static struct child *child_find(struct drvdom *dd, const char *kind, uint32_t fe, uint32_t devid)
{
    for (struct child *c = dd->children; c != NULL; c = c->next)
        if (c->ref.frontend_domid == fe && c->ref.devid == devid &&
            strcmp(c->ref.backend_kind, kind) == 0)
            return c;
    return NULL;
}

static void ignore_kind(struct drvdom *dd, const char *kind)
{
    size_t i;

    for (i = 0; i < sizeof(dd->ignored) / sizeof(dd->ignored[0]) && dd->ignored[i][0]; i++)
        if (strcmp(dd->ignored[i], kind) == 0)
            return;
    logline("backend kind '%s' has no driver here (vbd, qdisk, vbd3, vif): its devices are "
            "ignored; place them in a driver domain that serves it",
            kind);
    if (i < sizeof(dd->ignored) / sizeof(dd->ignored[0]))
        snprintf(dd->ignored[i], sizeof(dd->ignored[i]), "%s", kind);
}

/* The threads this process runs now (/proc/self/stat's 20th field); 0 if unknown. */
static long threads_now(void)
{
    char buf[1024], *p;
    long n = 0;
    FILE *f = fopen("/proc/self/stat", "re");

    if (f == NULL)
        return 0;
    if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL &&
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %ld",
               &n) != 1)
        n = 0;
    fclose(f);
    return n;
}

/*
 * Waits, up to a second, for this process to run one thread.  A thread
 * that pthread_join has seen end still counts in /proc until the kernel
 * has released it (the join wakes when the thread clears its tid, a little
 * before), so a fork right after xs_close could see two threads of which
 * one runs no code of ours any more.
 */
static long threads_settle(void)
{
    long n = threads_now();

    for (int i = 0; i < 1000 && n > 1; i++) {
        struct timespec ms = {0, 1000000};

        nanosleep(&ms, NULL);
        n = threads_now();
    }
    return n;
}

/*
 * Forks the keeper, from a process of one thread (spawn_pending): a keeper
 * never execs, and a child of several threads could find a lock that a
 * thread left behind held for good (the sanitizers' allocator, stdio).
 */
static int spawn(struct drvdom *dd, const struct devref *ref, const struct bhdrv *drv)
{
    struct child *c = calloc(1, sizeof(*c));
    char name[64];
    long threads = threads_settle();
    pid_t pid;

    if (c == NULL)
        return -1;
    devref_name(ref, name, sizeof(name));
    if (threads > 1)
        logline("%s: forking its keeper from %ld threads (a bug: a keeper must be forked from "
                "one; report it)", name, threads);
    fflush(stderr);
    if ((pid = fork()) < 0) {
        logline("%s: cannot fork its keeper: %s (raise the domain's process limit)", name,
                strerror(errno));
        free(c);
        return -1;
    }
    if (pid == 0)
        keeper_main(ref, drv);
    c->ref = *ref;
    c->pid = pid;
    c->next = dd->children;
    dd->children = c;
    logline("%s: keeper %d started (%s)", name, (int)pid, drv->name);
    return 0;
}

/* A directory name that must be a number: canonical decimal, or skipped. */
static bool dir_number(const char *s, uint32_t max, uint32_t *out)
{
    uint64_t v;

    if (bhxb_parse_u64(s, strlen(s), 0, max, &v) != 0)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* One candidate device: spawn a keeper if it is new and the toolstack has just made it. */
static void consider(struct drvdom *dd, const char *kind, const struct bhdrv *drv, uint32_t fe,
                     uint32_t devid)
{
    struct devref ref = {.frontend_domid = fe, .devid = devid, .backend_domid = dd->domid};
    char dir[BHXB_PATH_MAX];
    int state;

    if (child_find(dd, kind, fe, devid) != NULL)
        return;
    snprintf(ref.backend_kind, sizeof(ref.backend_kind), "%s", kind);
    snprintf(dir, sizeof(dir), "%s/%s/%u/%u", dd->backend, kind, fe, devid);
    state = bhxb_read_state(dd->xs, dir);
    if (state != XenbusStateInitialising || !bhxb_read_online(dd->xs, dir))
        return; /* not written yet, or an old device on its way out */
    if (dd->npending == dd->cap_pending) {
        size_t cap = dd->cap_pending ? dd->cap_pending * 2 : 8;
        struct devref *p = realloc(dd->pending, cap * sizeof(*p));
        if (p == NULL) {
            dd->rescan = true; /* the next scan finds it again */
            return;
        }
        dd->pending = p;
        dd->cap_pending = cap;
    }
    dd->pending[dd->npending++] = ref;
}

static char **list(struct drvdom *dd, const char *path, unsigned int *n)
{
    char **v = xs_directory(dd->xs, XBT_NULL, path, n);

    if (v == NULL)
        *n = 0;
    return v;
}

/* Walks backend/<kind>/<frontend>/<devid>. */
static void scan(struct drvdom *dd)
{
    unsigned int nk, nf, nd;
    char **kinds = list(dd, dd->backend, &nk), path[BHXB_PATH_MAX];

    for (unsigned int i = 0; i < nk; i++) {
        const struct bhdrv *drv = bhdrv_find(kinds[i]);
        char **fes;
        if (drv == NULL) {
            ignore_kind(dd, kinds[i]);
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dd->backend, kinds[i]);
        fes = list(dd, path, &nf);
        for (unsigned int j = 0; j < nf; j++) {
            uint32_t fe, devid;
            char **devs;
            if (!dir_number(fes[j], BHXB_DOMID_MAX, &fe))
                continue;
            snprintf(path, sizeof(path), "%s/%s/%s", dd->backend, kinds[i], fes[j]);
            devs = list(dd, path, &nd);
            for (unsigned int k = 0; k < nd; k++)
                if (dir_number(devs[k], UINT32_MAX, &devid))
                    consider(dd, kinds[i], drv, fe, devid);
            free(devs);
        }
        free(fes);
    }
    free(kinds);
}

static void on_backend(void *arg, const char *path)
{
    (void)path;
    ((struct drvdom *)arg)->rescan = true;
}

static void stop_all(struct drvdom *dd);

/* Notes which keepers' device directories are gone (ENOENT; an error proves nothing). */
static void check_gone(struct drvdom *dd)
{
    for (struct child *c = dd->children; c != NULL; c = c->next) {
        char dir[BHXB_PATH_MAX];
        unsigned int len;
        void *v;
        snprintf(dir, sizeof(dir), "%s/%s/%u/%u", dd->backend, c->ref.backend_kind,
                 c->ref.frontend_domid, c->ref.devid);
        errno = 0;
        if ((v = xs_read(dd->xs, XBT_NULL, dir, &len)) != NULL || errno != ENOENT) {
            free(v);
            c->gone = false;
        } else if (!c->gone) {
            c->gone = true;
            clock_gettime(CLOCK_MONOTONIC, &c->gone_at);
        }
    }
}

/* Stops the keepers that outlived their directory by GONE_GRACE_MS; the poll timeout until the next. */
static int stop_overdue(struct drvdom *dd)
{
    int timeout = -1;

    for (struct child *c = dd->children; c != NULL; c = c->next) {
        char name[64];
        int left;
        if (!c->gone || c->told)
            continue;
        if ((left = GONE_GRACE_MS - ms_since(&c->gone_at)) > 0) {
            if (timeout < 0 || left < timeout)
                timeout = left;
            continue;
        }
        devref_name(&c->ref, name, sizeof(name));
        logline("%s: its directory was removed %d s ago and keeper %d still runs: stopping it",
                name, GONE_GRACE_MS / 1000, (int)c->pid);
        kill(c->pid, SIGTERM);
        c->told = true;
    }
    return timeout;
}

/* The XenStore connection and the watch on our backend directory. */
static int xs_attach(struct drvdom *dd, int wait_ms)
{
    if ((dd->xs = bhxb_open_domain(wait_ms)) == NULL)
        return -1;
    if ((dd->watches = bhxb_watches_new(dd->xs)) == NULL ||
        bhxb_watch_add(dd->watches, dd->backend, on_backend, dd) < 0)
        return -1;
    return 0;
}

static void xs_detach(struct drvdom *dd)
{
    bhxb_watches_free(dd->watches);
    dd->watches = NULL;
    if (dd->xs != NULL)
        xs_close(dd->xs); /* and libxenstore's reader thread with it */
    dd->xs = NULL;
}

/*
 * The keepers of the devices the last scan found.  libxenstore runs a
 * reader thread once a watch is set, so the connection goes first (and
 * the thread with it), the keepers are forked from one thread, and the
 * connection is made again: its watch fires once more, and the scan that
 * follows sees whatever changed meanwhile.
 */
static void spawn_pending(struct drvdom *dd)
{
    if (dd->npending == 0)
        return;
    xs_detach(dd);
    for (size_t i = 0; i < dd->npending; i++) {
        const struct bhdrv *drv = bhdrv_find(dd->pending[i].backend_kind);
        if (drv != NULL)
            spawn(dd, &dd->pending[i], drv);
    }
    dd->npending = 0;
    if (xs_attach(dd, BOOT_XS_WAIT_MS) != 0) {
        logline("cannot reach XenStore again after starting keepers: %s (is the XenStore "
                "daemon up?): closing every device",
                strerror(errno));
        xs_detach(dd);
        stop_all(dd);
    }
}

static void reap(struct drvdom *dd)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (struct child **pp = &dd->children; *pp != NULL; pp = &(*pp)->next) {
            struct child *c = *pp;
            char name[64];
            if (c->pid != pid)
                continue;
            devref_name(&c->ref, name, sizeof(name));
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                logline("%s: keeper %d ended with its device", name, (int)pid);
            else
                logline("%s: keeper %d ended with status %d: the device is not served any more",
                        name, (int)pid, status);
            *pp = c->next;
            free(c);
            break;
        }
    }
    dd->rescan = true; /* a device may have come back under the same name */
}

static void stop_all(struct drvdom *dd)
{
    dd->stopping = true;
    for (struct child *c = dd->children; c != NULL; c = c->next)
        kill(c->pid, SIGTERM);
}

static void on_signal(struct drvdom *dd)
{
    struct signalfd_siginfo si;

    while (read(dd->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD)
            reap(dd);
        else if (!dd->stopping) {
            logline("signal %u: closing every device", si.ssi_signo);
            stop_all(dd);
        }
    }
}

static int setup(struct drvdom *dd)
{
    if ((dd->sigfd = daemon_signalfd(SIGCHLD, SIGTERM, SIGINT, 0)) < 0) {
        logline("cannot make a signalfd: %s (is /proc mounted?)", strerror(errno));
        return -1;
    }
    if ((dd->xs = bhxb_open_domain(BOOT_XS_WAIT_MS)) == NULL) {
        logline("cannot reach XenStore: %s (start bulkhead-xenstored with `bulkhead up`, or set "
                "XENSTORED_PATH to its socket)",
                strerror(errno));
        return -1;
    }
    if (bhxb_learn_domid(dd->xs, bhplat_domid(), &dd->domid) != 0) {
        logline("cannot learn this domain's id: neither bulkhead-hv (set BULKHEAD_HV_SOCKET) nor "
                "XenStore's 'domid' answered; run it in a domain made by `bulkhead create`, or in "
                "dom0");
        return -1;
    }
    snprintf(dd->backend, sizeof(dd->backend), "/local/domain/%u/backend", dd->domid);
    if ((dd->watches = bhxb_watches_new(dd->xs)) == NULL ||
        bhxb_watch_add(dd->watches, dd->backend, on_backend, dd) < 0) {
        logline("cannot watch %s: %s (does this domain own its home in XenStore?)", dd->backend,
                strerror(errno));
        return -1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [--state-dir DIR] [--ready-fd FD] [--grant-idle-ms MS] [--rx-stall-ms MS]\n"
            "       [--net-poll-us US] [--blk-poll-us US]\n"
            "       %s --upgrade [--grant-idle-ms MS] [--rx-stall-ms MS] [--net-poll-us US]\n"
            "       [--blk-poll-us US]\n"
            "       %s --print-policy\n"
            "Serves the block (vbd, qdisk, vbd3) and network (vif) backends placed in this\n"
            "domain, one keeper and one worker process per device, confined (outside dom0).\n"
            "With --upgrade (run by `bulkhead upgrade`), takes every device of the domain\n"
            "over from its workers instead.  --print-policy lists the system calls and\n"
            "io_uring operations it is confined to.  See bulkhead-drvdom(8).\n",
            progname, progname, progname);
}

/* An option's milliseconds, 0 to a day; 0 means what zero says. */
static int parse_ms(const char *opt, const char *arg, const char *zero, unsigned int *out)
{
    char *end;
    unsigned long ms;

    errno = 0;
    ms = strtoul(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-' || ms > 86400000ul) {
        fprintf(stderr, "%s: %s '%s': give milliseconds, 0%s to 86400000\n", progname, opt, arg,
                zero);
        return -1;
    }
    *out = (unsigned int)ms;
    return 0;
}

int main(int argc, char **argv)
{
    struct drvdom dd = {.sigfd = -1};
    const char *state = NULL;
    char why[300];
    int rc = 1, ready_fd = -1;
    bool upgrade = false;

    for (int i = 1; i < argc; i++) {
        bool help = strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
        if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc) {
            state = argv[++i];
        } else if (strcmp(argv[i], "--upgrade") == 0) {
            upgrade = true;
        } else if (strcmp(argv[i], "--ready-fd") == 0 && i + 1 < argc) {
            ready_fd = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--grant-idle-ms") == 0 && i + 1 < argc) {
            if (parse_ms(argv[i], argv[i + 1], "", &blkback_grant_idle_ms) != 0)
                return 2;
            i++;
        } else if ((strcmp(argv[i], "--net-poll-us") == 0 ||
                    strcmp(argv[i], "--blk-poll-us") == 0) &&
                   i + 1 < argc) {
            char *end;
            unsigned long us;

            errno = 0;
            us = strtoul(argv[i + 1], &end, 10);
            if (errno != 0 || end == argv[i + 1] || *end != '\0' || argv[i + 1][0] == '-' ||
                us > 1000000ul) {
                fprintf(stderr, "%s: %s '%s': give microseconds, 0 (never) to 1000000\n",
                        progname, argv[i], argv[i + 1]);
                return 2;
            }
            if (strcmp(argv[i], "--net-poll-us") == 0)
                netback_poll_us = (unsigned int)us;
            else
                blkback_poll_us = (unsigned int)us;
            i++;
        } else if (strcmp(argv[i], "--print-policy") == 0 && argc == 2) {
            drvdom_print_policy(stdout);
            return 0;
        } else if (strcmp(argv[i], "--confine-selftest") == 0 && argc == 3) {
            return drvdom_confine_selftest(argv[2]);
        } else if (strcmp(argv[i], "--rx-stall-ms") == 0 && i + 1 < argc) {
            if (parse_ms(argv[i], argv[i + 1], " (never)", &netback_rx_stall_ms) != 0)
                return 2;
            i++;
        } else {
            usage(help ? stdout : stderr);
            if (!help)
                fprintf(stderr, "%s: unexpected argument '%s': see --help\n", progname, argv[i]);
            return help ? 0 : 2;
        }
    }
    if (upgrade) {
        if (state != NULL || ready_fd >= 0) {
            fprintf(stderr, "%s: --upgrade takes no --state-dir or --ready-fd: it serves the "
                    "devices of the running instance\n", progname);
            return 2;
        }
        setvbuf(stderr, NULL, _IOLBF, 0);
        /*
         * The new workers serve what peers write, as forked ones do: the
         * same confinement, taken here while this process has one thread
         * (each worker it forks inherits it).  dom0's devd stays as it is.
         */
        upgrade_null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (bhplat_domid() > 0 && drvdom_confine(DRVDOM_WORKER, why, sizeof(why)) != 0) {
            logline("cannot confine the new workers: %s (run it through `bulkhead upgrade`, "
                    "which starts it inside the driver domain)",
                    why);
            return 1;
        }
        return upgrade_main();
    }
    /* In dom0 (bulkhead up): one instance per state directory, as the other daemons. */
    if (state != NULL) {
        char err[700], msg[1100];
        if (daemon_lock(state, "drvdom", progname, err, sizeof(err)) != 0) {
            logline("%s", err);
            snprintf(msg, sizeof(msg), "%s\n", last_line);
            daemon_ready(ready_fd, msg);
            return 1;
        }
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    /*
     * A driver domain (the hypervisor gives us a domain id but 0) is
     * confined before it reads anything a peer wrote, and before
     * libxenstore starts its thread (a mount namespace cannot be unshared
     * by one of several threads).  dom0's own devd is the stock placement
     * and keeps dom0's rights: `bulkhead tcb` compares the two.
     */
    /* On Xen the disks are this domain's own: opened by a process that keeps the files. */
    const char *plat = bhplat_platform();
    if (bhplat_domid() > 0 && plat != NULL && strcmp(plat, "xen") == 0 &&
        drvdom_opener_start(why, sizeof(why)) != 0) {
        char msg[1100];
        logline("%s", why);
        snprintf(msg, sizeof(msg), "%s\n", last_line);
        daemon_ready(ready_fd, msg);
        goto out;
    }
    if (bhplat_domid() > 0 && drvdom_confine(DRVDOM_MAIN, why, sizeof(why)) != 0) {
        char msg[1100];
        logline("cannot confine the driver domain: %s (is this a domain made by `bulkhead "
                "create`, root of its own user namespace?)",
                why);
        snprintf(msg, sizeof(msg), "%s\n", last_line);
        daemon_ready(ready_fd, msg);
        goto out;
    }
    if (setup(&dd) != 0) {
        char msg[1100];
        snprintf(msg, sizeof(msg), "%s\n", last_line);
        daemon_ready(ready_fd, msg);
        goto out;
    }
    /* Fail closed: a driver domain the hypervisor did not name (XenStore did) is not served. */
    if (dd.domid != 0 && !drvdom_confined()) {
        logline("domain %u: not confined (bulkhead-hv did not say this is a driver domain): "
                "refusing to serve; run it in a domain made by `bulkhead create`",
                dd.domid);
        char msg[1100];
        snprintf(msg, sizeof(msg), "%s\n", last_line);
        daemon_ready(ready_fd, msg);
        goto out;
    }
    logline("domain %u: serving %s (net poll %u us, blk poll %u us, rx stall %u ms, grant idle "
            "%u ms)", dd.domid, dd.backend, netback_poll_us, blkback_poll_us, netback_rx_stall_ms,
            blkback_grant_idle_ms);
    daemon_ready(ready_fd, "ok\n");
    while (!dd.stopping || dd.children != NULL) {
        struct pollfd pf[2] = {{.fd = dd.sigfd, .events = POLLIN},
                               {.fd = dd.watches ? bhxb_watches_fd(dd.watches) : -1,
                                .events = POLLIN}};
        int timeout = dd.stopping ? -1 : stop_overdue(&dd);
        if (poll(pf, 2, timeout) < 0 && errno != EINTR) {
            logline("poll: %s", strerror(errno));
            goto out;
        }
        if (pf[0].revents)
            on_signal(&dd);
        if (pf[1].revents)
            bhxb_watches_dispatch(dd.watches);
        if (dd.rescan && !dd.stopping && dd.xs != NULL) {
            dd.rescan = false;
            scan(&dd);
            spawn_pending(&dd);
            if (dd.xs != NULL)
                check_gone(&dd);
        }
    }
    logline("every device closed: exiting");
    rc = 0;
out:
    xs_detach(&dd);
    free(dd.pending);
    return rc;
}
