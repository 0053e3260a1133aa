/*
 * devices.h - a domain's devices at create and destroy (devices.c).
 */
#ifndef BULKHEAD_DEVICES_H
#define BULKHEAD_DEVICES_H

#include <stddef.h>
#include <stdint.h>

#include "devplan.h"
#include "toolstack.h"
#include "xlcfg.h"

struct xs_handle;

/*
 * A new driver domain: its bulkhead_storage registered with the broker and
 * kept under /libxl/<domid>/bulkhead, its bulkhead_uplink bridge made and
 * joined to dom0's network namespace by a veth ("uplink" inside, "up-<name>"
 * in dom0's).  0, or -1 with a one-line reason in err.
 */
int devices_driver_domain(struct hvc *h, struct xs_handle *xs, uint16_t domid,
                          const struct xlcfg *cfg, char *err, size_t errlen);

/* dom0's end of driver domain domname's uplink veth: "up-<name>", cut to 15 characters. */
void devices_uplink_peer_name(const char *domname, char *buf, size_t size);

/* A devplan_resolve_fn over the running simulation: hvc for ids, XenStore for storage. */
struct devices_resolver {
    struct hvc *h;
    struct xs_handle *xs;
    char **storage; /* the last resolved domain's, owned */
    size_t nstorage;
};
int devices_resolve(void *arg, const char *name, struct devplan_backend *out, char *err,
                    size_t errlen);
void devices_resolver_fini(struct devices_resolver *r);

/*
 * Registers every device of p with the broker (targets, vifs; bridges made
 * in the backend domains), then writes every layout in one transaction.
 * queues: the TAP queues a vif may use.  0, or -1 with a reason in err.
 */
int devices_attach(struct hvc *h, struct xs_handle *xs, uint16_t domid, const struct devplan *p,
                   unsigned int queues, char *err, size_t errlen);

/*
 * Waits until every device of p is Connected on both sides.  0; or -1 with
 * err naming the device that failed (an error node) or, after timeout_ms,
 * every device not there with its two states.
 */
int devices_wait(struct xs_handle *xs, const struct devplan *p, int timeout_ms, char *err,
                 size_t errlen);

/*
 * Removes every device of domain domid as libxl does: each backend is told
 * (online 0, Closing), all get timeout_ms together to reach Closed, then the
 * backend, frontend and /libxl directories go (and parents left empty).
 * Returns how many backends did not close in time.
 */
int devices_remove(struct xs_handle *xs, uint16_t domid, int timeout_ms);

/* Tells one backend to close (online 0, Closing, in one transaction), if it is still there. */
void devices_tell_backend(struct xs_handle *xs, const char *backend);

/* As libxl__xs_path_cleanup: removes the parents path left empty, up to .../backend. */
void devices_rm_empty_parents(struct xs_handle *xs, const char *path);

/*
 * Removes one device (kind "vbd" or "vif") of domain domid as
 * devices_remove does: its backend told, timeout_ms to reach Closed, then
 * its three directories; a vbd's NBD server stopped.  0 if it closed in
 * time, 1 if it was removed without closing, -1 with ENOENT if the
 * toolstack never made it.
 */
int devices_remove_one(struct xs_handle *xs, uint16_t domid, const char *kind, uint32_t devid,
                       int timeout_ms);

/*
 * Every disk's target must be there and readable (writable too for a
 * read-write disk) before anything is made: create -n plans without them,
 * but a real create or block-attach would only learn it from a backend
 * that never connects.  A driver domain's storage is a host directory, so
 * dom0 sees the same path.  0, or -1 with a one-line message naming the fix.
 */
int devices_check_targets(const struct devplan *p, const char *file, char *err, size_t errlen);

/*
 * nbdserve.c: dom0's qemu-nbd for a disk that is not raw (bulkhead.cfg(5),
 * format=).  nbdserve_format: qemu's name of the format, NULL when the disk
 * needs no server.  nbdserve_socket: where the device's server listens.
 * nbdserve_start: starts it (nothing for a raw disk) and returns once it
 * listens; 0, or -1 with a one-line reason naming the fix (nothing is left
 * behind then).  nbdserve_stop: stops it, removes its socket; idempotent.
 * nbdserve_stop_all: every one of domain domid (all: -1); returns how many.
 */
const char *nbdserve_format(enum diskspec_format f);
int nbdserve_socket(uint16_t domid, uint32_t devid, char *buf, size_t size);
int nbdserve_start(uint16_t domid, const struct devplan_dev *d, char *err, size_t errlen);
void nbdserve_stop(uint16_t domid, uint32_t devid);
int nbdserve_stop_all(int domid);

#endif
