/*
 * handover.h - the keeper's socket, over which a worker started from
 * another binary (bulkhead-drvdom --upgrade, run by `bulkhead upgrade` in
 * the driver domain's namespaces) takes a device over from the running
 * worker.
 *
 * Every keeper listens on an abstract unix socket of its own,
 *   @bulkhead-keeper/<backend-domid>/<backend-kind>-<frontend-domid>-<devid>
 * (abstract: it lives in the domain's network namespace and dies with the
 * keeper, leaving no file behind).  The exchange, one fixed-size struct
 * ho_msg each way:
 *
 *   keeper -> new   OFFER   the keeper's kept-state layout (version, sizes,
 *                           driver) and the device
 *   new -> keeper   TAKE    the layout is ours: stop the old worker
 *                   REFUSE  it is not (text: why); the old worker serves on
 *   keeper -> new   GO      once the old worker stopped at a clean point;
 *                           carries by SCM_RIGHTS the kept-state memfd, the
 *                           keeper's stderr (the domain's log) and the fds
 *                           the broker gave for the device (nfds in all)
 *   new -> keeper   EXIT    the new worker ends (status: WORKER_DONE or
 *                           WORKER_HANDED); a connection that closes
 *                           without it is a worker that died: the keeper
 *                           forks one of its own
 *
 * The connection stays open while the new worker serves: it is how each
 * side learns that the other is gone.  Anything else the keeper reads -
 * a short message, another magic, a type out of turn - ends that
 * connection alone, with one line in the log; the old worker never stops
 * for it.
 */
#ifndef BULKHEAD_HANDOVER_H
#define BULKHEAD_HANDOVER_H

#include <stddef.h>
#include <stdint.h>

#define HO_MAGIC 0x4f484842u /* "BHHO" */
#define HO_PROTO 1

#define HO_SOCK_PREFIX "bulkhead-keeper/"

enum ho_type {
    HO_OFFER = 1,
    HO_TAKE = 2,
    HO_REFUSE = 3,
    HO_GO = 4,
    HO_EXIT = 5,
};

/* The most fds a GO carries: the memfd, stderr, and the broker's. */
#define HO_MAX_FDS 10

struct ho_msg {
    uint32_t magic;
    uint16_t proto;
    uint16_t type;
    uint32_t layout;                               /* OFFER, TAKE: KEEP_VERSION */
    uint32_t header_size;                          /* OFFER, TAKE: sizeof(struct keep) */
    uint32_t kept_size;                            /* OFFER, TAKE: the driver's kept bytes */
    uint32_t map_size;                             /* OFFER: bytes of the memfd */
    uint32_t nfds;                                 /* GO: descriptors passed with it */
    uint32_t status;                               /* EXIT: the worker's exit status */
    uint32_t frontend_domid, devid, backend_domid; /* OFFER: the device */
    char backend_kind[33];                         /* OFFER */
    char drv[23];                                  /* OFFER, TAKE: the driver's name */
    char text[192];                                /* REFUSE: why, one line */
};

/*
 * Checks a message as read (len bytes at buf) from the other end: the
 * size, magic, protocol, a type among `allowed` (a bit per enum ho_type),
 * NUL-terminated strings, and for each type the fields it uses within
 * range.  0 with *out filled, or -1 with one line in why.
 */
int ho_check(const void *buf, size_t len, unsigned int allowed, struct ho_msg *out, char *why,
             size_t whylen);

#define HO_BIT(t) (1u << (t))

/* The socket's abstract name (without the leading NUL): 0, or -1 if it does not fit. */
int ho_sock_name(char *buf, size_t size, uint32_t backend_domid, const char *backend_kind,
                 uint32_t frontend_domid, uint32_t devid);

#endif
