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
 */
#ifndef BULKHEAD_DRVDOM_H
#define BULKHEAD_DRVDOM_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

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
 * What the keeper holds for its worker, in a shared memfd mapping: the
 * handshake machine (so that a restarted worker resumes at the state the
 * frontend sees), bookkeeping, and the driver's kept bytes after it.
 */
struct keep {
    uint32_t magic;
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

/* drvdom.c */
extern const char *progname;
void logline(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vlogline(const char *prefix, const char *fmt, va_list ap);
void devref_name(const struct devref *r, char *buf, size_t size); /* "vbd 2/51712" */

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

/* worker.c: runs in the keeper's forked child; returns the exit status */
int worker_main(const struct devref *r, const struct bhdrv *drv, struct keep *k);

/* worker.c: a device's machine is stepped again (bhdev_fail, drv.c) */
void worker_step(struct bhdev *d);

#endif
