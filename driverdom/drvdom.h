/*
 * drvdom.h - bulkhead-drvdom's private header, grouped by file.
 *
 * Three roles, one program, no exec:
 *   drvdom.c   the main process: learns its domain id, watches its own
 *              backend/ subtree, forks a keeper per new device and reaps it;
 *   keeper.c   one per device: holds the state that must outlive a worker
 *              (struct keep, in a memfd mapping shared with the worker, and
 *              the broker's fds) and (re)starts the worker;
 *   worker.c   one per device at a time: the backend side of the XenBus
 *              handshake and the driver's callbacks, over its own XenStore
 *              connection, grant and event-channel handles.
 * A fourth, upgrade.c, is another binary's: bulkhead-drvdom --upgrade, run
 * in the domain by dom0, whose processes become workers under the running
 * keepers (keeper.c, handover.h).
 */
#ifndef BULKHEAD_DRVDOM_H
#define BULKHEAD_DRVDOM_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "drv.h"

/* Which device, as the main process found it in XenStore. */
struct devref {
    char backend_kind[33];
    uint32_t frontend_domid;
    uint32_t devid;
    uint32_t backend_domid; /* ourselves */
};


#define KEEP_MAGIC 0x5045454bu /* "KEEP" */
/*
 * The layout of struct keep and of every driver's kept bytes.  Raise it
 * with any change to either: a worker from another binary (an upgrade)
 * takes a device over only from a keeper of the same version and sizes,
 * and refuses any other with one line while the old worker serves on.
 * A test build overrides it to prove that refusal.
 */
#ifndef KEEP_VERSION
#define KEEP_VERSION 1
#endif

/*
 * What the keeper holds for its worker, in a shared memfd mapping: the
 * handshake machine (so that a restarted worker resumes at the state the
 * frontend sees), bookkeeping, and the driver's kept bytes after it.  The
 * first four words say what layout follows, for a worker that did not
 * come from the keeper's own binary.
 */
struct keep {
    uint32_t magic;       /* KEEP_MAGIC */
    uint32_t version;     /* KEEP_VERSION */
    uint32_t header_size; /* sizeof(struct keep) */
    uint32_t kept_size;   /* the driver's kept bytes after it */
    char drv_name[24];    /* the driver's name */
    uint32_t restarts; /* workers started after the first */
    uint32_t started;  /* a worker has initialised the machine: later ones resume */
    uint32_t serving;  /* the current worker reached its event loop */
    struct bhxb_machine machine;
    struct bhacquired acq; /* from the broker, before the first worker */
    unsigned char drv[]; /* drv->kept_size bytes, zeroed when the device appears */
};

/* Exit statuses of a worker, read by its keeper. */
#define WORKER_DONE   0  /* the device is gone or stopped: the keeper ends too */
#define WORKER_FAILED 70 /* could not start (logged): restart after a pause */
#define WORKER_HANDED 71 /* stopped at a clean point (SIGUSR1): a new worker takes over */

/* drvdom.c */
extern const char *progname;
void logline(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vlogline(const char *prefix, const char *fmt, va_list ap);
void devref_name(const struct devref *r, char *buf, size_t size); /* "vbd 2/51712" */
int ms_since(const struct timespec *since); /* CLOCK_MONOTONIC milliseconds since then */

/* confine.c */
enum drvdom_role {
    DRVDOM_MAIN,   /* drvdom.c's main process */
    DRVDOM_KEEPER, /* keeper.c (inherits the main process's confinement) */
    DRVDOM_WORKER, /* worker.c, also when started alone (a worker-only restart) */
};
/*
 * Confines the calling process for good (confine.c's header says what and
 * why): a mount namespace holding only /proc and /run/bulkhead, no_new_privs,
 * all five capability sets empty, the seccomp allowlist.  Needs to be root of
 * the domain's user namespace, and one thread (a mount namespace cannot be
 * unshared by one of several: call it before libxenstore's first watch
 * starts its thread) whose fds 0-2 are open; call it before the first peer
 * input is read.  Idempotent: a forked child of a confined process is
 * confined already.  0, or -1 with a one-line why.
 */
int drvdom_confine(enum drvdom_role role, char *why, size_t whylen);
/* Whether drvdom_confine has run in this process or a parent. */
bool drvdom_confined(void);
/* After resetting every signal (a keeper's clean slate): SIGSYS logs again. */
void drvdom_confine_sigsys(void);
/* --print-policy: the allowed system calls and io_uring operations, one a line. */
void drvdom_print_policy(FILE *out);
/* --confine-selftest open:PATH | exec | denied: confine, then try it (tests only). */
int drvdom_confine_selftest(const char *what);

/* keeper.c: runs in the forked child; never returns */
__attribute__((noreturn)) void keeper_main(const struct devref *r, const struct bhdrv *drv);

/*
 * worker.c: runs in the keeper's forked child, or in a worker-only process
 * that took the device over (upgrade.c); returns the exit status.  acq: the
 * broker's descriptors as this process numbers them (&k->acq in a forked
 * worker).  keeper_fd: the connection to the keeper of a worker-only
 * process (-1 in a forked one): it closing means the keeper is gone.
 */
int worker_main(const struct devref *r, const struct bhdrv *drv, struct keep *k,
                const struct bhacquired *acq, int keeper_fd);

/*
 * worker.c: where a worker, forked or worker-only, enters service: after
 * it opened its handles, before it touches the device.  Confinement (the
 * sandbox) belongs here, for both kinds alike.  0, or -1 (logged): the
 * worker does not serve.
 */
int worker_enter_service(struct bhdev *d);

/* upgrade.c: bulkhead-drvdom --upgrade, the worker-only mode; returns the exit status */
/*
 * /dev/null, opened by the --upgrade process before it is confined (its
 * confined root has no /dev): the new workers' stdin and stdout, so that
 * none keeps `bulkhead upgrade`'s pipe open.  -1 if it could not be opened.
 */
extern int upgrade_null_fd;
int upgrade_main(void);

/* worker.c: a device's machine is stepped again (bhdev_fail, drv.c) */
void worker_step(struct bhdev *d);

#endif
