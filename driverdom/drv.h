/*
 * drv.h - what a backend driver of bulkhead-drvdom sees: the device it
 * serves (struct bhdev), the callback table it fills (struct bhdrv), and the
 * helpers every driver needs (map the frontend's ring, bind its event
 * channel, read ring references strictly, fail the device).
 *
 * One worker process serves one device; a keeper process above it holds
 * what must outlive the worker (see keeper.c).  A driver therefore keeps
 * two kinds of state:
 *   - `kept` (drv->kept_size bytes): lives in the keeper's memory, zeroed
 *     when the device appears, and seen unchanged by every later worker.
 *     Only plain values belong there - grant references, ports, ring
 *     indices (struct bhring_state) - never a pointer: a mapping dies with
 *     the worker that made it, on Xen as in the simulation.
 *   - `priv` (drv->priv_size bytes): this worker's own, zeroed at start:
 *     mapped rings, struct bhring ends, buffers.
 *
 * The callbacks run in the worker's single thread, from its event loop:
 *   probe       read the backend keys the toolstack wrote, publish the
 *               features, write hotplug-status; runs before InitWait, and
 *               again when a frontend comes back to reconnect (idempotent);
 *   connect     read the frontend's keys (bhxb_read_keys: strict), save
 *               what a restarted worker needs in `kept`, map, bind, and
 *               write the keys a frontend reads once the backend is
 *               Connected; runs before Connected;
 *   resume      a restarted worker under a connected device: map and bind
 *               again from `kept` alone (the frontend's keys are not read
 *               again: they were validated once, at connect), with no
 *               XenStore write, so that the frontend sees nothing;
 *   kick        one of the device's event channels fired (the port is
 *               unmasked again after kick returns; a device with several,
 *               as a multi-queue vbd, looks at every ring);
 *   disconnect  unbind, unmap, forget; idempotent (called on a device
 *               never connected too).
 * probe, connect and resume return 0, or -1 with a one-line reason in why:
 * the device then fails (error node, Closing), never the process.  A
 * driver that finds the peer lying at any other time calls bhdev_fail().
 */
#ifndef BULKHEAD_DRV_H
#define BULKHEAD_DRV_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bhplat.h"
#include "bhxenbus.h"

#define BHDEV_MAX_FDS  8  /* descriptors a keeper holds for its device (the broker's) */
#define BHDEV_MAX_RING 16 /* pages of one ring: 2^BHRING_MAX_ORDER */

struct bhdrv;

/*
 * What the keeper got from dom0's broker for the device, once, before the
 * first worker (struct bhdrv's acquire), and holds for every worker.
 */
struct bhacquired {
    int fds[BHDEV_MAX_FDS];
    unsigned int nfds;
    uint64_t size; /* a disk's bytes */
    bool readonly; /* a disk the broker opened read-only */
    bool nbd;      /* fds[0] is a socket connected to the disk's NBD server */
    int err;       /* 0, or why acquire failed: the first worker fails the device */
    char why[160];
};

struct bhdev {
    const struct bhdrv *drv;
    struct xs_handle *xs;    /* this worker's own connection */
    struct bhxb_dev id;      /* kind (the frontend's), backend_kind, domids, devid */
    struct bhxb_paths paths; /* frontend, backend, libxl */
    bhgnttab_handle *gnttab; /* maps the frontend's grants */
    bhevtchn_handle *evtchn; /* the worker's ports */
    void *kept;              /* drv->kept_size bytes held by the keeper */
    void *priv;              /* drv->priv_size bytes of this worker */
    const int *fds;          /* descriptors the keeper holds (nfds of them) */
    unsigned int nfds;
    const struct bhacquired *acq; /* all the keeper got from the broker */
    unsigned int restarts;        /* workers that ran before this one */
    struct bhxb_machine *machine; /* the handshake; also kept by the keeper */
    int err;                      /* the errno reported in the error node (default EPROTO) */
};

struct bhdrv {
    const char *name;          /* "blkback-trivial" */
    const char *kinds[4];      /* backend kinds served, NULL-terminated if fewer */
    const char *frontend_kind; /* "vbd", "vif" */
    size_t kept_size;
    size_t priv_size;
    /*
     * In the keeper, once, before the first worker: what the device needs
     * from dom0's broker (a disk's fd, a vif's TAP queues), into a.  In dom0
     * a driver may open what it needs with its own rights instead.  Returns 0, or -1 with a.err and a.why set:
     * the first worker then fails the device.  NULL: nothing to get.
     */
    int (*acquire)(const struct bhxb_dev *id, struct bhacquired *a);
    int (*probe)(struct bhdev *d, char *why, size_t whylen);
    int (*connect)(struct bhdev *d, char *why, size_t whylen);
    int (*resume)(struct bhdev *d, char *why, size_t whylen);
    void (*kick)(struct bhdev *d);
    void (*disconnect)(struct bhdev *d);
    /*
     * Optional: a descriptor of the driver's own (an io_uring) that the
     * worker polls beside the event channel, -1 for none now; ready runs
     * when it is readable.
     */
    int (*pollfd)(struct bhdev *d);
    void (*ready)(struct bhdev *d);
    /*
     * Optional: run from the worker's loop every tick_ms milliseconds (or
     * a little later) while the device is connected and healthy.
     */
    void (*tick)(struct bhdev *d);
    unsigned int tick_ms;
};

/* blkback: persistent grants unused this long are unmapped (--grant-idle-ms). */
extern unsigned int blkback_grant_idle_ms;
/* blkback: microseconds a worker polls its rings after the last request (--blk-poll-us). */
extern unsigned int blkback_poll_us;
/* netback: RX buffers short this long stall a vif queue (--rx-stall-ms; 0: never). */
extern unsigned int netback_rx_stall_ms;
/* netback: microseconds a worker polls after the last frame before sleeping (--net-poll-us). */
extern unsigned int netback_poll_us;

/*
 * Whether this domain opens its devices' targets itself: dom0 always; a
 * driver domain on Xen too, since xl names a backend's target in the
 * backend domain's own namespace and there is no dom0 broker to ask (its
 * confined daemon asks its opener instead, below).  In the simulation a
 * driver domain gets them from dom0's broker.
 */
bool drv_own_targets(uint32_t backend_domid);

/*
 * opener.c (Xen): the process that opens this domain's disks for the
 * confined daemon, by the params dom0 wrote in the backend directory.
 * drvdom_opener_start forks it (before drvdom_confine); a keeper asks with
 * drvdom_opener_disk, and so does a worker for what the keeper does not
 * hold (a cdrom's new medium, a further NBD connection): it returns the
 * disk's fd or -1 with errno and a one-line why (ENOENT: no params, an
 * empty drive).  *nbd says the fd is a socket connected to the disk's NBD
 * server (params named a unix socket), a fresh connection each time.
 */
int drvdom_opener_start(char *why, size_t whylen);
int drvdom_opener_fd(void);
int drvdom_opener_disk(const char *backend_kind, uint32_t domid, uint32_t devid, uint64_t *size,
                       bool *ro, bool *nbd, char *why, size_t whylen);
/*
 * What the opener does with a disk's params, on its own (for the tests):
 * after qdisk's "aio:" or "raw:", a unix socket's path (or libnbd's
 * nbd+unix:///?socket=PATH) is connected to (*nbd, *size 0: NBD says it),
 * a file or block device opened (read-only if asked) with its size in
 * *size; anything else (a fifo, a directory, another NBD URI) is refused
 * with EINVAL.  The fd, or -1 with errno and a one-line why.
 */
int drvdom_open_target(const char *params, bool readonly, uint64_t *size, bool *nbd, char *why,
                       size_t whylen);
/* The path params names (a suffix of it), or NULL with errno and why; fuzzed. */
const char *drvdom_target_path(const char *params, char *why, size_t whylen);
/*
 * The TAP of vif devid of guest domid, made by the opener from the backend
 * directory's vifname=, bridge=, mtu= and script= (vifplug.c): up to
 * max_queues fds (no more than this domain's CPUs, as Linux's netback
 * offers) into fds; their number, or -1 with errno and a one-line why
 * (ENOENT: no such vif in the backend directory).
 */
int drvdom_opener_tap(uint32_t domid, uint32_t devid, unsigned int max_queues, int *fds,
                      char *why, size_t whylen);

/*
 * vifplug.c (Xen): a vif's TAP made as Xen's vif-bridge plugs a vif.
 * vifplug_spec checks what the backend directory says (any string may be
 * NULL or empty: vif<domid>.<devid>, xenbr0, the bridge's mtu, vif-bridge)
 * into s; vifplug_make then opens s->queues queues of TAP s->name
 * (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE), gives it the
 * mtu and fe:ff:ff:ff:ff:ff, and brings it up on s->bridge, which must
 * exist.  Both return 0, or -1 with errno and a one-line why naming the fix
 * (EOPNOTSUPP: script=vif-route or another script; EEXIST: the name is
 * taken).  The TAP goes away with the last of its fds.
 */
struct vifplug {
    char name[16];   /* IFNAMSIZ */
    char bridge[16];
    unsigned int mtu; /* 0: the bridge's */
    unsigned int queues;
};
int vifplug_spec(uint32_t domid, uint32_t devid, const char *vifname, const char *bridge,
                 const char *mtu, const char *script, unsigned int queues, struct vifplug *s,
                 char *why, size_t whylen);
int vifplug_make(const struct vifplug *s, int *fds, char *why, size_t whylen);

/* The drivers built in (drvtab.c), and the one serving a backend kind (NULL: none). */
extern const struct bhdrv *const bhdrv_table[];
const struct bhdrv *bhdrv_find(const char *backend_kind);

/* ---- helpers for drivers (drv.c) ---- */

/* One line on stderr, prefixed with the program and the device. */
void bhdev_log(const struct bhdev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The device is lost: the error node gets "<err> <message>" and the state
 * goes Closing (through the handshake, so that a later step does not undo
 * it).  The worker stays up to finish the handshake with the frontend and
 * the toolstack.  err: a positive errno (0: EPROTO).
 */
void bhdev_fail(struct bhdev *d, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The ring references of a blkif-style frontend, read strictly in one
 * transaction: "ring-page-order" (missing: 0; at most max_order) and then
 * "ring-ref" for order 0 or "ring-ref0".."ring-ref<2^order - 1>" (Linux's
 * blkfront writes ring-refN for any order when it saw max-ring-page-order).
 * prefix is prepended to every key name ("" for blkif).  Returns 0, or -1
 * with the bad key in why.
 */
int bhdev_read_ring_refs(struct bhdev *d, const char *prefix, unsigned int max_order,
                         uint32_t refs[BHDEV_MAX_RING], unsigned int *order, char *why,
                         size_t whylen);

/*
 * The two halves of bhdev_read_ring_refs, for a multi-queue device whose
 * ring-page-order is one key at the top of the frontend's directory while
 * each queue's references sit under "queue-N/" (io/blkif.h): the order
 * (missing: 0; at most max_order), and then 2^order references under
 * prefix.  0, or -1 with the bad key in why.
 */
int bhdev_read_ring_order(struct bhdev *d, const char *prefix, unsigned int max_order,
                          unsigned int *order, char *why, size_t whylen);
int bhdev_read_refs(struct bhdev *d, const char *prefix, unsigned int order,
                    uint32_t refs[BHDEV_MAX_RING], char *why, size_t whylen);

/* Maps count (1..16) grant references of the frontend read-write; NULL with why. */
void *bhdev_map(struct bhdev *d, const uint32_t *refs, unsigned int count, char *why,
                size_t whylen);
void bhdev_unmap(struct bhdev *d, void *addr, unsigned int count);

/*
 * Binds our end of the frontend's unbound port remote_port; returns our
 * port, or -1 with why.  In a worker after the first (restarts > 0), the
 * frontend's port may still be bound to the worker that died until the
 * hypervisor has seen it go: the bind is retried for two seconds then, and
 * only then.
 */
int bhdev_bind(struct bhdev *d, uint32_t remote_port, char *why, size_t whylen);
void bhdev_unbind(struct bhdev *d, uint32_t port);
int bhdev_notify(struct bhdev *d, uint32_t port);

#endif
