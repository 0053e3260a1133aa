/*
 * front.h - what a frontend driver of the guest runtime (bulkhead-guest)
 * sees: the device (struct bhfront), the callback table it fills (struct
 * bhfrontdrv), and the helpers every frontend needs (grant ring pages,
 * allocate event channels, fail the device).
 *
 * The runtime runs the frontend side of the XenBus handshake
 * (bhxb_machine) for every device under /local/domain/<self>/device and
 * calls, from its single thread:
 *   publish     grant the ring page(s) to the backend domain, allocate
 *               unbound event channel(s) for it, and write every key the
 *               backend reads in one transaction (bhxb_write_keys); runs
 *               before Initialised, and again on every reconnect;
 *   connect     read the backend's connect-time keys strictly; runs before
 *               Connected;
 *   kick        one of the device's ports fired (it is unmasked after);
 *   disconnect  end the grants and close the ports; idempotent.
 * (or, for a device run by a process of its own, supervise: see below).
 * publish and connect return 0, or -1 with a one-line reason in why: the
 * device then fails (error node, Closing), never the runtime.  A backend
 * is hostile unless trusted (XSA-403): every key read from it is parsed.
 */
#ifndef BULKHEAD_FRONT_H
#define BULKHEAD_FRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>

#include "bhplat.h"
#include "bhxenbus.h"

#define BHFRONT_MAX_PORTS 17 /* a vif: 8 queues with split event channels, and its control ring */
#define BHFRONT_MAX_RING  16

struct bhfrontdrv;

struct bhfront {
    const struct bhfrontdrv *drv;
    struct xs_handle *xs;
    uint32_t domid; /* ours */
    uint32_t backend_domid;
    uint32_t devid;
    char dir[BHXB_PATH_MAX];     /* our device directory */
    char backend[BHXB_PATH_MAX]; /* the backend's, as the toolstack wrote it */
    bhgntshr_handle *gntshr;
    bhevtchn_handle *evtchn;
    void *priv; /* drv->priv_size bytes, zeroed */
    struct bhxb_machine machine;
    int err;                           /* errno for the error node (0: EPROTO) */
    uint32_t ports[BHFRONT_MAX_PORTS]; /* ours, allocated through bhfront_evtchn_alloc */
    /* the runtime's */
    struct bhfront *next;
    int watch_id;
    bool seen;
};

struct bhfrontdrv {
    const char *name;
    const char *kind; /* "vbd", "vif" */
    size_t priv_size;
    int (*publish)(struct bhfront *f, char *why, size_t whylen);
    int (*connect)(struct bhfront *f, char *why, size_t whylen);
    void (*kick)(struct bhfront *f);
    void (*disconnect)(struct bhfront *f);
    /* The device is gone: free what outlives reconnects (a vif's eth TAP).  May be NULL. */
    void (*release)(struct bhfront *f);
    /*
     * A driver whose device is run by a process of its own (vbd: nbdkit with
     * the blkfront plugin, which owns the handshake because it maps the
     * ring) sets supervise instead of publish/connect/kick: the runtime runs
     * no machine for it, calls supervise on every step (start, reap, or with
     * stopping, ask the process to close the device) and reads the device's
     * state from the store; disconnect stops the process.  -1 with why: the
     * device fails (error node, Closing).
     */
    int (*supervise)(struct bhfront *f, bool stopping, char *why, size_t whylen);
    /*
     * A driver that also waits on fds of its own (a vif's TAP queues) fills
     * up to max entries of pf (fd, events) before every poll; ready then
     * gets the same entries with their revents.  Both may be NULL.
     */
    unsigned int (*pollfds)(struct bhfront *f, struct pollfd *pf, unsigned int max);
    void (*ready)(struct bhfront *f, const struct pollfd *pf, unsigned int n);
};

/* fe_vbd.c: the vbd frontend, nbdkit with the blkfront plugin. */
extern const struct bhfrontdrv blkfront_nbdkit;
/* Queues every vbd asks for (--vbd-queues, the plugin's queues=); 0: the plugin's default. */
extern unsigned int fe_vbd_queues;
/* Whether every vbd asks for persistent grants (--vbd-persistent); -1: the plugin's default (yes). */
extern int fe_vbd_persistent;

/* fe_vif.c: the vif frontend, libbhnetfront over eth<devid> from dom0's broker. */
extern const struct bhfrontdrv netfront_tap;

/* fe_table.c: the built-in frontends; the one for a kind, or NULL. */
const struct bhfrontdrv *bhfrontdrv_find(const char *kind);

/* ---- helpers (guest.c) ---- */

void bhfront_log(const struct bhfront *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* As bhdev_fail: error node, Closing; the runtime goes on with the other devices. */
void bhfront_fail(struct bhfront *f, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* count (1..16) zeroed pages granted read-write to the backend; NULL with why. */
void *bhfront_share(struct bhfront *f, unsigned int count, uint32_t *refs, char *why,
                    size_t whylen);
void bhfront_unshare(struct bhfront *f, void *addr, unsigned int count);

/* An unbound port for the backend domain, remembered for kick dispatch; -1 with why. */
int bhfront_evtchn_alloc(struct bhfront *f, char *why, size_t whylen);
void bhfront_evtchn_close(struct bhfront *f, uint32_t port);

#endif
