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
 * it passes on to the worker so that the device is closed).
 *
 * The event channel: a port bound through a handle dies with the process
 * that bound it, and a libbhplat handle cannot be shared with a child (as
 * Xen's cannot).  So the keeper holds the binding as the frontend's port
 * number, and a new worker binds it again: the hypervisor turns the
 * frontend's port back to unbound when the dead worker's end closes, and
 * the frontend keeps the same port and the same eventfd throughout
 * (hv/evtchn.c), so it sees nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drvdom.h"

#define KEEP_MAX_FAILS 8 /* workers in a row that die before serving */

static volatile sig_atomic_t stop_asked;

static void on_term(int sig)
{
    (void)sig;
    stop_asked = 1;
}

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

    close_range(3, ~0u, 0);
    sigemptyset(&none);
    for (int s = 1; s < NSIG; s++)
        sigaction(s, &sa, NULL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_IGN);
    drvdom_confine_sigsys(); /* a denied call must still say which */
    prctl(PR_SET_NAME, comm);
}

static struct keep *keep_map(const struct bhdrv *drv, size_t *size)
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
    close(fd); /* the mapping keeps it; every worker inherits the mapping */
    if (k == MAP_FAILED)
        return NULL;
    k->magic = KEEP_MAGIC;
    return k;
}

static pid_t start_worker(const struct devref *r, const struct bhdrv *drv, struct keep *k)
{
    char comm[16];
    pid_t pid;

    k->serving = 0;
    fflush(stderr);
    if ((pid = fork()) != 0)
        return pid;
    snprintf(comm, sizeof(comm), "bhw-%u-%u", r->frontend_domid, r->devid);
    prctl(PR_SET_NAME, comm);
    /* A worker never outlives its keeper: the state it runs on is the keeper's. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        _exit(WORKER_FAILED);
    signal(SIGTERM, SIG_DFL);
    _exit(worker_main(r, drv, k));
}

/* Waits for the worker, passing a stop request on once. */
static int wait_worker(pid_t pid)
{
    bool told = false;
    int status;

    for (;;) {
        if (stop_asked && !told) {
            kill(pid, SIGTERM);
            told = true;
        }
        if (waitpid(pid, &status, 0) == pid)
            return status;
        if (errno != EINTR)
            return -1;
    }
}

static void describe(int status, char *buf, size_t size)
{
    if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
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
    struct sigaction sa = {.sa_handler = on_term}; /* no SA_RESTART: waitpid returns */
    unsigned int fails = 0;
    char comm[16], how[96];
    struct keep *k;
    size_t size;

    snprintf(comm, sizeof(comm), "bhk-%u-%u", r->frontend_domid, r->devid);
    fresh_process(comm);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if ((k = keep_map(drv, &size)) == NULL) {
        klog(r, "keeper: cannot make its state memory: %s (check the domain's memory limit)",
             strerror(errno));
        _exit(1);
    }
    for (unsigned int i = 0; i < BHDEV_MAX_FDS; i++)
        k->acq.fds[i] = -1;
    if (drv->acquire != NULL) {
        struct bhxb_dev id = {.kind = drv->frontend_kind, .backend_kind = r->backend_kind,
                              .domid = r->frontend_domid, .backend_domid = r->backend_domid,
                              .devid = r->devid};
        if (drv->acquire(&id, &k->acq) != 0)
            klog(r, "keeper: the broker did not give the device: %s", k->acq.why);
        else if (k->acq.nfds > 0)
            klog(r, "keeper: holds %u fd%s from the broker", k->acq.nfds,
                 k->acq.nfds == 1 ? "" : "s");
    }
    while (!stop_asked) {
        pid_t pid = start_worker(r, drv, k);
        int status;
        if (pid < 0) {
            klog(r, "keeper: cannot fork a worker: %s (raise the domain's process limit)",
                 strerror(errno));
            status = WORKER_FAILED << 8;
        } else {
            status = wait_worker(pid);
        }
        if (pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == WORKER_DONE)
            _exit(0);
        if (stop_asked)
            break;
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
        klog(r, "keeper: worker %d %s: starting worker %u from the kept state", (int)pid, how,
             k->restarts + 1);
        if (fails > 0)
            backoff(fails - 1);
    }
    _exit(0);
}
