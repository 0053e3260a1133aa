/*
 * bhxenbus.h - XenBus: the device handshake of <xen/io/xenbus.h>, the
 * XenStore values a peer writes, the device layout libxl writes, and watch
 * dispatch, over the real libxenstore (xs_* calls).
 *
 * Four parts, one file each:
 *   state.c   the handshake state machine, both sides, pure logic: no store;
 *   parse.c   strict parsers for values another domain wrote;
 *   store.c   typed key reads and writes in one transaction, the state node,
 *             the error node, writing a layout;
 *   layout.c  the paths and permissions of a device as libxl writes them;
 *   watch.c   watches dispatched from the caller's event loop.
 *
 * Conventions, unless a comment says otherwise: functions return 0 (or a
 * count, or a pointer) on success and -1 (or NULL) with errno set on
 * failure; nothing logs; nothing keeps a pointer the caller passed in
 * beyond the call; strings returned in caller buffers are NUL-terminated.
 * A struct xs_handle and everything made on it are used by one thread at a
 * time.  This library starts no thread (libxenstore reads watch events on
 * one of its own once a watch is set) and runs every callback from the call
 * that dispatches it: bhxb_machine_step or bhxb_watches_dispatch.
 *
 * Trust: every value read from the peer's directory is hostile.  It is read
 * once, parsed strictly (canonical decimal, range-checked, bounded length,
 * no control characters), and a value that fails to parse is EPROTO: the
 * peer loses its device (bhxb_dev_fatal), never this process.
 */
#ifndef BULKHEAD_BHXENBUS_H
#define BULKHEAD_BHXENBUS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xenstore.h>
#include <xen/io/xenbus.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * state.c - the handshake (io/xenbus.h, io/blkif.h's state diagram)
 * ====================================================================== */

enum bhxb_role {
    BHXB_FRONTEND = 1,
    BHXB_BACKEND = 2,
};

/*
 * A peer state that could not be parsed (see bhxb_parse_state) is passed as
 * BHXB_PEER_INVALID; a missing state node as XenbusStateUnknown.
 */
#define BHXB_PEER_INVALID (-1)

/* Everything one decision depends on.  Flags are levels, not edges. */
struct bhxb_view {
    enum bhxb_role role;
    XenbusState ours; /* our state as we last wrote it */
    int peer;         /* the peer's state as just read, or BHXB_PEER_INVALID */
    bool ready;       /* our driver finished its early set-up */
    bool online;      /* the device should exist: backend = its `online` key;
                       * frontend = the driver has not asked to close */
    bool error;       /* our driver failed (sticky until it clears it) */
    bool peer_online; /* frontend only: the backend is online and reported no
                       * error (bhxb_peer_online); a frontend reconnects after
                       * its backend closed only while this holds */
    bool reconfigure; /* backend only: the driver asks to reconfigure */
};

/* What the driver must do, in this order, before the state is written. */
enum bhxb_action {
    BHXB_ACT_DISCONNECT = 1u << 0,  /* tear down ring and event channel; idempotent */
    BHXB_ACT_FATAL = 1u << 1,       /* write <dev>/error (bhxb_dev_fatal) */
    BHXB_ACT_PUBLISH = 1u << 2,     /* write the keys the peer needs next: backend
                                     * features before InitWait, frontend ring
                                     * references and event channels before Initialised */
    BHXB_ACT_CONNECT = 1u << 3,     /* read the peer's keys, map, bind */
    BHXB_ACT_RECONFIGURE = 1u << 4, /* re-read the peer's keys after Reconfiguring */
    BHXB_ACT_REMOVE = 1u << 5,      /* backend: the device is gone; free it (terminal) */
};

struct bhxb_step {
    XenbusState next;     /* the state to write (== ours: write nothing) */
    unsigned int actions; /* enum bhxb_action bits */
};

/*
 * The decision: from our state, the peer's and the driver's flags, the next
 * state and the actions to run.  Pure: no store, no memory, no errno but
 * EINVAL for a role, or one of our own states, that the machine never
 * produces (a broken invariant of the caller).  Deciding twice on the same
 * view, once its step has been applied, yields no actions and no change
 * (duplicate watch events are harmless) -- except REMOVE, which a caller
 * runs once and then stops feeding the machine.
 */
int bhxb_decide(const struct bhxb_view *v, struct bhxb_step *step);

/* "Connected", "InitWait", ...; "Unknown" for 0; "invalid" outside 0..8. */
const char *bhxb_state_name(int state);

/*
 * The driver's side of a device: callbacks run by bhxb_machine_step from
 * the caller's thread.  publish/connect/reconfigure return 0, or -1 with a
 * reason written into why (one line): the machine then runs fatal and
 * closes (a failure while already Closed is reported and moves to Closing,
 * so that the peer sees it).  set_state writes our state node (bhxb_switch_state); when it
 * fails the machine keeps its old state and returns -1.  Any callback may
 * be NULL except set_state.
 */
struct bhxb_driver {
    int (*publish)(void *arg, char *why, size_t whylen);
    int (*connect)(void *arg, char *why, size_t whylen);
    int (*reconfigure)(void *arg, char *why, size_t whylen);
    void (*disconnect)(void *arg);
    void (*fatal)(void *arg, const char *why);
    void (*remove)(void *arg);
    int (*set_state)(void *arg, XenbusState state);
};

/* One end of a device's handshake.  Fields are the library's; read-only. */
struct bhxb_machine {
    struct bhxb_view view; /* ready, online, error, peer_online, reconfigure: set by the owner */
    bool removed;          /* REMOVE has run: the machine ignores all input */
    char why[128];         /* the last driver error, one line */
};

/* Starts a machine in Initialising, online, not ready.  EINVAL: bad role. */
int bhxb_machine_init(struct bhxb_machine *m, enum bhxb_role role);

/*
 * Feeds the peer's state as just read and applies decisions until the
 * machine settles (a failed callback sets view.error and decides again).
 * Returns the number of state changes written, or -1 with errno set by
 * set_state.  Call it on every watch event and whenever a flag changes.
 */
int bhxb_machine_step(struct bhxb_machine *m, int peer, const struct bhxb_driver *d, void *arg);

/* ======================================================================
 * parse.c - values another domain wrote: strict, bounded, total
 * ====================================================================== */

/*
 * Every parser takes the bytes as xs_read returned them (len excludes the
 * terminating NUL; an embedded NUL is refused) and returns 0 or -1 with
 * EPROTO for a malformed value and ERANGE for a well-formed one out of
 * range.  Numbers are canonical decimal: no sign (but '-' for negative
 * ints), no space, no leading zero, at most 20 digits.
 */
#define BHXB_VALUE_MAX 4096 /* XENSTORE_PAYLOAD_MAX: no value is longer */

int bhxb_parse_state(const char *s, size_t len, XenbusState *out);
int bhxb_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out);
int bhxb_parse_int(const char *s, size_t len, int min, int max, int *out);
int bhxb_parse_bool(const char *s, size_t len, bool *out); /* "0" or "1" only */
/* An event channel port: 1 .. 2^17-1 (the FIFO ABI's limit; port 0 is never valid). */
int bhxb_parse_evtchn(const char *s, size_t len, uint32_t *out);
/* A grant reference: 0 .. 2^32-1. */
int bhxb_parse_gref(const char *s, size_t len, uint32_t *out);
/*
 * A string of at most size-1 bytes, without control characters (bytes
 * below 0x20 and 0x7f), copied into buf.  ERANGE if too long.
 */
int bhxb_parse_str(const char *s, size_t len, char *buf, size_t size);
/*
 * A list of up to max numbers separated by single spaces (as in
 * "multi-queue" style lists); *n receives the count.  ERANGE: too many or a
 * number above UINT32_MAX.
 */
int bhxb_parse_u32_list(const char *s, size_t len, uint32_t *out, size_t max, size_t *n);

/* ======================================================================
 * store.c - keys, state, errors, layouts over libxenstore
 * ====================================================================== */

enum bhxb_type {
    BHXB_INT,   /* int */
    BHXB_UINT,  /* unsigned int */
    BHXB_ULONG, /* unsigned long */
    BHXB_STR,   /* char[size] */
    BHXB_BOOL,  /* bool: "feature-x" style, "0"/"1"; missing reads as false */
};

/* One key of a device directory, bound to a variable of the caller. */
struct bhxb_key {
    const char *name; /* relative to the directory, e.g. "feature-persistent" */
    enum bhxb_type type;
    void *ptr;         /* int *, unsigned int *, unsigned long *, char *, bool * */
    size_t size;       /* BHXB_STR: the buffer's size */
    bool required;     /* reading: a missing key is ENOENT (else ptr is left alone) */
    unsigned long max; /* reading numbers: the largest value accepted (0: the type's) */
};

#define BHXB_RETRIES 16 /* transaction attempts before EAGAIN reaches the caller */

/*
 * Writes every key under dir in one transaction, retried on EAGAIN up to
 * BHXB_RETRIES times.  Either all keys are written or none.
 */
int bhxb_write_keys(struct xs_handle *xs, const char *dir, const struct bhxb_key *keys, size_t n);

/*
 * The same, and <dir>/state rewritten with its current value in the same
 * transaction: a peer watching the state sees a change of the keys while
 * the state stays (a backend's online resize, as Linux's xen_vbd_resize).
 * ENOENT if <dir>/state is gone (never recreated).
 */
int bhxb_write_keys_restate(struct xs_handle *xs, const char *dir, const struct bhxb_key *keys,
                            size_t n);

/*
 * Reads every key under dir in one transaction (a consistent snapshot of the
 * peer's keys), parsing each strictly.  On failure nothing is stored, errno
 * is ENOENT (a required key is missing), EPROTO/ERANGE (a value is bogus:
 * the peer lied) or the store's error, and bad (if not NULL) names the key.
 */
int bhxb_read_keys(struct xs_handle *xs, const char *dir, const struct bhxb_key *keys, size_t n,
                   const char **bad);

/*
 * Reads <dir>/state: the state, XenbusStateUnknown if the node is missing,
 * or BHXB_PEER_INVALID if it does not parse.  Store errors other than
 * ENOENT are -2 with errno set (distinct from every state).
 */
int bhxb_read_state(struct xs_handle *xs, const char *dir);

/*
 * Writes <dir>/state if it differs, in a transaction, and never recreates a
 * removed device: ENOENT if <dir>/state is gone (as Linux's
 * xenbus_switch_state).
 */
int bhxb_switch_state(struct xs_handle *xs, const char *dir, XenbusState state);

/*
 * Reads <dir>/online: true when it is "1", and when it is missing (a device
 * not made by a libxl-style toolstack stays online); false for anything
 * else, including a value that does not parse.
 */
bool bhxb_read_online(struct xs_handle *xs, const char *dir);

/*
 * For a frontend's view.peer_online: the backend directory's online key
 * reads true (above) and the backend has written no error node.  A backend
 * that failed stays down until its error node is removed (by a new worker).
 */
bool bhxb_peer_online(struct xs_handle *xs, const char *backend_dir);

/*
 * xenbus_dev_fatal: writes "<err> <message>" to <dir>/error and moves
 * <dir>/state to Closing, in one transaction.  The message is cut to one
 * line.  Returns 0 or -1 with errno set (the device may already be gone).
 */
int bhxb_dev_fatal(struct xs_handle *xs, const char *dir, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Opens XenStore as a domain does at boot: a domain may run before the
 * toolstack has introduced it and written its home (bulkhead create
 * introduces it just after building it), so this retries, for up to
 * timeout_ms, until the daemon answers a read of "domid" (relative: the
 * domain's own home) instead of closing the connection.  NULL with errno
 * when it never did, at once when there is no daemon at all.
 */
struct xs_handle *bhxb_open_domain(int timeout_ms);

#define BHXB_DOMID_MAX 0x7fefu /* DOMID_FIRST_RESERVED - 1: the largest domain id */

/*
 * This domain's id from its own home's "domid" (read relative), strictly
 * parsed; for a program that cannot ask its hypervisor.  0, or -1 with
 * errno (the store's, or EPROTO/ERANGE for a value that does not parse).
 */
int bhxb_read_domid(struct xs_handle *xs, uint32_t *domid);

/*
 * This domain's id: `known` when the hypervisor told it (bhplat_domid(),
 * >= 0), or else bhxb_read_domid's.  0, or -1 with errno.
 */
int bhxb_learn_domid(struct xs_handle *xs, int known, uint32_t *domid);

/* Reads <dir>/error into buf (one line, bounded); ENOENT if there is none. */
int bhxb_read_error(struct xs_handle *xs, const char *dir, char *buf, size_t size);

/* ======================================================================
 * layout.c - a device's XenStore layout, as libxl writes it
 * ====================================================================== */

/*
 * A device between a frontend domain and a backend domain:
 *   /local/domain/<backend>/backend/<backend_kind>/<domid>/<devid>
 *       owned by the backend domain, readable by the frontend;
 *   /local/domain/<domid>/device/<kind>/<devid>
 *       owned by the frontend domain, readable by the backend;
 *   /libxl/<domid>/device/<kind>/<devid>
 *       the toolstack's trusted copy of the backend keys, dom0 only.
 * kind is the frontend's ("vbd", "vif"); backend_kind may differ ("qdisk",
 * "vbd3" serve a "vbd").
 */
struct bhxb_dev {
    const char *kind;
    const char *backend_kind; /* NULL: same as kind */
    uint32_t domid;           /* the frontend's domain */
    uint32_t backend_domid;
    uint32_t devid;
};

#define BHXB_PATH_MAX 256 /* longer than any layout path, shorter than XENSTORE_ABS_PATH_MAX */

struct bhxb_paths {
    char frontend[BHXB_PATH_MAX];
    char backend[BHXB_PATH_MAX];
    char libxl[BHXB_PATH_MAX];
};

/* EINVAL: kind missing, empty, or not [a-z0-9-]. */
int bhxb_dev_paths(const struct bhxb_dev *d, struct bhxb_paths *p);

/* One node to write: a directory has value "". */
struct bhxb_node {
    char *path;
    char *value;
    struct xs_permissions perms[2]; /* [0]: owner and everyone else; [1]: one reader */
    unsigned int nperms;
};

struct bhxb_layout {
    struct bhxb_node *nodes;
    size_t n, cap;
    struct bhxb_dev dev; /* its strings point at kind and backend_kind below */
    struct bhxb_paths paths;
    char kind[40], backend_kind[40];
};

/*
 * Which directory a key goes to, with which permissions (libxl's bents,
 * fents and ro_fents): BACK keys go to the backend directory and to the
 * trusted copy; FRONT keys to the frontend directory, owned by the
 * frontend; FRONT_RO keys to the frontend directory but owned by the
 * backend (the frontend reads, cannot change them: a vif's mtu).
 */
enum bhxb_side {
    BHXB_BACK,
    BHXB_FRONT,
    BHXB_FRONT_RO,
};

/*
 * The generic layout of libxl__device_generic_add: the three directories,
 * backend frontend/frontend-id/online/state, frontend backend/backend-id/
 * state, the trusted copy's frontend/backend links, plus the identity keys
 * libxl's device code derives from devid (vif: handle on both sides; vbd,
 * qdisk, vbd3: the frontend's virtual-device).  Free with bhxb_layout_free.
 */
struct bhxb_layout *bhxb_layout_new(const struct bhxb_dev *d);

/* Adds (or replaces) one key.  EINVAL: a key that is empty or has '/'. */
int bhxb_layout_set(struct bhxb_layout *l, enum bhxb_side side, const char *key, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

/* Sorts the nodes by path (the order golden files use). */
void bhxb_layout_sort(struct bhxb_layout *l);

/* The node at path, or NULL. */
const struct bhxb_node *bhxb_layout_find(const struct bhxb_layout *l, const char *path);

void bhxb_layout_free(struct bhxb_layout *l);

/*
 * Permissions as xenstore-ls -p prints them: "n1,r0".  Returns the length,
 * or -1 with ERANGE if buf is too small.
 */
int bhxb_perms_format(const struct xs_permissions *p, unsigned int n, char *buf, size_t size);

/*
 * Writes a layout in one transaction, retried on EAGAIN: removes what is at
 * the three device directories, then creates every node with its value and
 * its permissions set explicitly (so the result does not depend on what the
 * parents would let it inherit).  Must be called by the toolstack (dom0).
 */
int bhxb_layout_write(struct xs_handle *xs, const struct bhxb_layout *l);

/* The same for n layouts, all in one transaction (a domain's devices at create). */
int bhxb_layouts_write(struct xs_handle *xs, const struct bhxb_layout *const *l, size_t n);

/* ======================================================================
 * watch.c - watches through a pollable descriptor
 * ====================================================================== */

typedef struct bhxb_watches bhxb_watches;

/*
 * Called from bhxb_watches_dispatch with the path that changed (at or below
 * the watched path, or the watched path itself once at registration).  It
 * may add and remove watches, its own included.
 */
typedef void bhxb_watch_fn(void *arg, const char *path);

/* A table of watches on xs, which stays the caller's (not closed by free). */
bhxb_watches *bhxb_watches_new(struct xs_handle *xs);

/* Unwatches everything and frees the table.  NULL is fine. */
void bhxb_watches_free(bhxb_watches *w);

/*
 * Watches path (absolute, or "@releaseDomain"/"@introduceDomain") and calls
 * fn(arg, changed) for each event.  Returns a watch id >= 0, or -1 (EINVAL:
 * a relative path or one too long; the store's errno).  The token is
 * "bhxb/<slot>/<generation>": events still queued for a watch that was
 * removed never reach a new watch that reuses its slot.
 */
int bhxb_watch_add(bhxb_watches *w, const char *path, bhxb_watch_fn *fn, void *arg);

/* Removes a watch by id; EINVAL if it is not one.  Pending events are dropped. */
int bhxb_watch_remove(bhxb_watches *w, int id);

/* The descriptor to poll for POLLIN (xs_fileno). */
int bhxb_watches_fd(bhxb_watches *w);

/*
 * Runs the callbacks of every event pending now, without blocking, and
 * returns how many ran.  Events with a token not ours, a stale generation,
 * or a path outside the watched one are dropped (counted in dropped).
 */
int bhxb_watches_dispatch(bhxb_watches *w);

/* Events dropped so far (foreign or stale tokens, paths outside the watch). */
unsigned long bhxb_watches_dropped(const bhxb_watches *w);

#ifdef __cplusplus
}
#endif

#endif
