/*
 * hostile.h - a test library that plays a lying frontend or a lying
 * backend against the project's own frontends and backends, through the
 * simulation (bulkhead-hv grants and event channels, bulkhead-xenstored).
 *
 * A three-line attack on a backend (a frontend whose req_prod runs a whole
 * ring and one slot past the responses, then an event storm):
 *
 *     hst_front_init(&f, &guest, HST_BLKIF, &dev, 0);   hst_front_publish(&f);
 *     hst_idx_set(&f.ring[0], HST_REQ_PROD, f.ring[0].nr_ents + 1);
 *     hst_storm(&f, 100000);
 *
 * and the test then waits, watch-driven, for what the honest side must do:
 *
 *     ck_assert_int_eq(hst_wait(sim.xs, paths.backend, HST_STATE(XenbusStateClosing), true,
 *                               HST_TIMEOUT_MS, why, sizeof(why)), HST_ERROR);
 *
 * How the device issues should use it.  A test starts a simulation of its
 * own (hst_sim_start: a bulkhead-hv, a bulkhead-xenstored, dom0's XenStore
 * handle), creates the domains it needs (hst_sim_domain), writes a device's
 * layout as the toolstack does (hst_layout), and takes the identity of the
 * domain it plays (hst_id_open: the test process wears the domain's uid
 * while it connects, so that the hypervisor and the store see that domain
 * and nothing else; no namespace, no exec).  The honest side under test
 * runs where it will run for real (bulkhead-drvdom in the driver domain, a
 * frontend in the guest) or in the test process under another identity.
 * The liar then sets up its half of the device honestly (hst_front_init +
 * hst_front_publish, or hst_back_publish + hst_back_connect), breaks
 * exactly one thing with the raw calls (hst_set, hst_state, hst_slot_write,
 * hst_idx_set, hst_produce, hst_storm, hst_grant / hst_ungrant), and asserts
 * what the honest side must do: lose the device with an error node
 * (hst_wait ... HST_ERROR, hst_read_error names the fix), or stay sane and
 * keep serving its other devices.  Nothing the liar reads back (responses,
 * rsp_prod, the peer's keys) is trusted: it comes back as raw bytes.
 *
 * Conventions: functions return 0 (or a count, a port, a pointer) on
 * success and -1 (or NULL) with errno set; where an end has a why[] it
 * says which step failed, in one line.  Nothing logs.  An end, an identity
 * and a simulation are used by one thread at a time.  The simulation needs
 * root (namespaces): hst_sim_start fails with EPERM without it, and the
 * caller exits 77 saying so.
 */
#ifndef BULKHEAD_TESTS_HOSTILE_H
#define BULKHEAD_TESTS_HOSTILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <xenstore.h>

#include "bhplat.h"
#include "bhring.h"
#include "bhxenbus.h"
#include "testutil.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the simulation: bulkhead-hv, bulkhead-xenstored, domains ---- */

struct hst_sim {
    struct test_hv hv; /* the state directory of both daemons */
    char xssock[600];  /* XENSTORED_PATH, set in the environment */
    pid_t xsd_pid;
    int hvch; /* dom0's hypercall channel, for domain control */
    uint32_t seq;
    struct xs_handle *xs; /* dom0's XenStore handle */
};

/*
 * Starts both daemons on one fresh state directory, as `bulkhead up` does
 * (domains see the store at /run/bulkhead/xenstored.sock), and opens
 * dom0's handle.  -1 with the reason in err (EPERM: not root - exit 77
 * with it).
 */
int hst_sim_start(struct hst_sim *s, char *err, size_t errlen);

/* Stops both daemons (their domains die) and removes their directory. */
void hst_sim_stop(struct hst_sim *s);

struct hst_domain {
    uint32_t domid;
    uint32_t uid; /* the domain's uid outside its user namespace */
    pid_t pid;    /* its first process, as dom0 sees it */
    char name[64];
};

#define HST_DOM_DRIVER 0x0001u /* driver_domain=1 (hvwire.h's HVW_DOM_DRIVER) */

/*
 * Creates a domain running the idle init (flags: 0 or HST_DOM_DRIVER),
 * introduces it to XenStore and gives it /local/domain/<domid>, as
 * `bulkhead create` does.  Programs run in it with hst_sim_spawn, once it
 * is introduced (so they never race their own introduction).
 */
int hst_sim_domain(struct hst_sim *s, const char *name, uint32_t flags, struct hst_domain *out);

/*
 * Runs argv inside domain d as its root (dombuild_exec, as `bulkhead exec`
 * does), with PATH, XENSTORED_PATH and BULKHEAD_HV_SOCKET set to the
 * sockets' places in the domain (/run/bulkhead); its stdout
 * and stderr go to out_fd (-1: this process's).  Returns at once with the
 * pid of a child that exits with the command's exit status (126: it could
 * not be started; 128+N: killed by signal N); the caller waitpid()s it.
 * argv[0] must be visible in the domain: a system program, or one built
 * with -no-install in the build tree.
 */
pid_t hst_sim_spawn(const struct hst_domain *d, char *const argv[], int out_fd);

/* <state>/<name>.log: where hst_sim_spawn_logged puts a program's output. */
void hst_sim_log_path(const struct hst_sim *s, const char *name, char *buf, size_t size);

/*
 * hst_sim_spawn with stdout and stderr appended to <state>/<name>.log.
 * -1 if the log cannot be opened or the fork failed.
 */
pid_t hst_sim_spawn_logged(const struct hst_sim *s, const struct hst_domain *d, const char *name,
                           char *const argv[]);

/*
 * The last 3000 bytes or so of <state>/<name>.log, for a failure message;
 * "" if there is none.  Four static buffers in turn: four tails may be in
 * one message.
 */
const char *hst_sim_log_tail(const struct hst_sim *s, const char *name);

/* ---- identities: handles opened as a domain ---- */

#define HST_SELF ((uid_t)-1) /* whoever this process already is (inside a domain) */

struct hst_id {
    uint32_t domid; /* as the platform says */
    struct xs_handle *xs;
    bhgntshr_handle *gs;
    bhgnttab_handle *gt;
    bhevtchn_handle *ev;
};

/*
 * Opens a XenStore handle and the three platform handles as the domain of
 * `uid` (its hst_domain.uid), or as this process with HST_SELF.  With a
 * uid, the process's effective uid is that uid while it connects and is
 * restored before the call returns; that needs a real uid of 0.
 */
int hst_id_open(struct hst_id *id, uid_t uid);
void hst_id_close(struct hst_id *id);

/* ---- one end of a device ---- */

enum hst_proto {
    HST_BLKIF = 1, /* a ring per queue, "ring-ref" or "ring-page-order" + "ring-refN" */
    HST_NETIF = 2, /* ring[0] tx, ring[1] rx, "tx-ring-ref" / "rx-ring-ref" */
};

#define HST_MAX_PAGES  16 /* 2^BHRING_MAX_ORDER */
#define HST_MAX_QUEUES 4  /* blkif multi-queue: rings (and ports) an end can play */

/* A shared ring as raw memory: both ends of it are hostile to the harness. */
struct hst_ring {
    const struct bhring_type *type;
    unsigned int order, npages;
    uint32_t nr_ents; /* Xen's __CONST_RING_SIZE for the type and order */
    size_t ent_size;
    volatile uint8_t *sh; /* the 2^order pages, NULL when not set up */
    uint32_t refs[HST_MAX_PAGES];
};

struct hst_end {
    struct hst_id *id;
    enum bhxb_role role; /* which side we play */
    enum hst_proto proto;
    struct bhxb_paths paths;
    const char *dir, *peer_dir; /* into paths: ours and the peer's */
    uint32_t peer_domid;
    unsigned int nrings;
    struct hst_ring ring[HST_MAX_QUEUES]; /* blkif: queue i's ring; netif: tx, rx */
    int port;           /* our event-channel port (queue 0's), -1 without */
    uint32_t peer_port; /* back: the port the frontend published (queue 0's) */
    unsigned int nqueues;                /* blkif: 1, or multi-queue-num-queues */
    int qport[HST_MAX_QUEUES];           /* blkif: each queue's port (qport[0] == port) */
    uint32_t peer_qport[HST_MAX_QUEUES]; /* back: each queue's published port */
    char why[256];      /* the step that failed last, one line */
};

/*
 * A frontend in `id` for device `dev`: grants ring pages (2^order, 0..4;
 * netif: 0 only) writable to the backend, initialises each ring header as
 * SHARED_RING_INIT does, and binds an unbound port for the backend.  Writes
 * nothing to XenStore (see hst_front_publish).
 */
int hst_front_init(struct hst_end *f, struct hst_id *id, enum hst_proto p,
                   const struct bhxb_dev *dev, unsigned int order);

/*
 * A multi-queue blkif frontend: as hst_front_init, with nqueues (1..
 * HST_MAX_QUEUES) rings of 2^order pages and a port per queue.
 */
int hst_front_init_mq(struct hst_end *f, struct hst_id *id, const struct bhxb_dev *dev,
                      unsigned int order, unsigned int nqueues);
/*
 * A netif frontend of nqueues (1..HST_MAX_QUEUES / 2) queues: queue q's TX
 * ring is ring[2q], its RX ring ring[2q + 1], its port qport[q]; one event
 * channel per queue (not split).
 */
int hst_front_init_vif(struct hst_end *f, struct hst_id *id, const struct bhxb_dev *dev,
                       unsigned int nqueues);

/*
 * Writes the keys an honest frontend writes, in one transaction: blkif
 * ring-ref (order 0) or ring-page-order and ring-ref0..N-1, event-channel,
 * protocol - with several queues, multi-queue-num-queues and each queue's
 * ring-ref* and event-channel under queue-N/ (ring-page-order stays at the
 * top); netif tx-ring-ref, rx-ring-ref, event-channel (under queue-N/ with
 * several queues, and multi-queue-num-queues), request-rx-copy,
 * feature-rx-notify.
 * Not the state: the caller writes states in whatever order it likes.
 */
int hst_front_publish(struct hst_end *f);

/* A backend in `id` for device `dev`: nothing mapped yet. */
int hst_back_init(struct hst_end *b, struct hst_id *id, enum hst_proto p,
                  const struct bhxb_dev *dev);

/*
 * Writes plausible backend features in one transaction (blkif:
 * max-ring-page-order 4, feature-persistent 1, sectors, sector-size, info,
 * multi-queue-max-queues 1; netif: feature-sg, feature-rx-copy,
 * multi-queue-max-queues 1).  Override any with hst_set afterwards.
 */
int hst_back_publish(struct hst_end *b);

/*
 * Reads the frontend's keys (strictly, with the bhxb parsers), maps its
 * rings read-write and binds its event channel (blkif: every queue's, as
 * multi-queue-num-queues says, up to HST_MAX_QUEUES).  -1 with errno: ENOENT (a
 * key is missing, or a grant does not exist), EPROTO / ERANGE (a value is
 * bogus), EACCES / EPERM (the grant is not ours to map, or read-only),
 * EINVAL (the port is not left unbound for us); b->why names the key.
 */
int hst_back_connect(struct hst_end *b);

/* Unmaps or ungrants the rings and closes the port; keys stay. */
void hst_end_close(struct hst_end *e);

/* ---- XenStore, raw ---- */

/* Writes <dir>/key = the formatted value (any bytes: no check at all). */
int hst_set(struct hst_end *e, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes <dir>/key = len raw bytes, NULs and control characters included. */
int hst_set_raw(struct hst_end *e, const char *key, const void *v, size_t len);
int hst_rm(struct hst_end *e, const char *key);
/* Writes <dir>/state as a decimal number: any int, valid or not. */
int hst_state(struct hst_end *e, int state);

/* ---- rings, raw ---- */

enum hst_idx {
    HST_REQ_PROD = 0, /* offsets in the shared header, as io/ring.h lays them out */
    HST_REQ_EVENT = 4,
    HST_RSP_PROD = 8,
    HST_RSP_EVENT = 12,
};

/* One read of a header field (then an acquire fence). */
uint32_t hst_idx_get(const struct hst_ring *r, enum hst_idx i);
/* A release fence (slots written before are visible first), then the write. */
void hst_idx_set(struct hst_ring *r, enum hst_idx i, uint32_t v);

/*
 * Writes len raw bytes at the start of slot idx (masked to the ring); the
 * rest of the slot is left alone.  EINVAL: no ring, or len > ent_size.
 */
int hst_slot_write(struct hst_ring *r, uint32_t idx, const void *p, size_t len);
/* Copies len bytes out of slot idx, once, into private memory. */
int hst_slot_read(const struct hst_ring *r, uint32_t idx, void *out, size_t len);

/*
 * What a producer does, with raw entries: writes n copies of `ent` (len
 * bytes) from the producer index now in the header (req_prod for a
 * frontend, rsp_prod for a backend), moves that index on by n, and
 * notifies if asked (the ring's queue's port).  netif: `ring` is 2q for
 * queue q's TX, 2q + 1 for its RX.
 */
int hst_produce(struct hst_end *e, unsigned int ring, const void *ent, size_t len, unsigned int n,
                bool notify);

/* ---- event channels and data grants ---- */

int hst_notify(struct hst_end *e);
/* Notifies queue q's port (blkif multi-queue; queue 0 is hst_notify). */
int hst_notify_queue(struct hst_end *e, unsigned int q);
/* n notifications, as fast as possible; returns n, or -1 at the first failure. */
long hst_storm(struct hst_end *e, unsigned long n);
/*
 * Takes every pending event of this end's handle without blocking and
 * unmasks it; returns how many times our ports (any queue's) were pending (0 or 1: the
 * platform coalesces), -1 on error.
 */
int hst_events(struct hst_end *e);

/* Grants count new zeroed pages to the peer (read-only unless writable). */
void *hst_grant(struct hst_end *e, unsigned int count, bool writable, uint32_t *refs);
/* Ends them, whether or not the peer still maps them (it keeps its mapping). */
int hst_ungrant(struct hst_end *e, void *addr, unsigned int count);

/* ---- XenStore helpers for the device layout ---- */

/* bhxb_layout_new + bhxb_layout_write with dom0's handle; NULL on error. */
struct bhxb_layout *hst_layout(struct xs_handle *xs, const struct bhxb_dev *dev);

/* A state (0..8), BHXB_PEER_INVALID, or -2 with errno (bhxb_read_state). */
int hst_read_state(struct xs_handle *xs, const char *dir);
/* <dir>/error into buf; -1 with ENOENT if there is none. */
int hst_read_error(struct xs_handle *xs, const char *dir, char *buf, size_t size);

#define HST_STATE(s)   (1u << (s)) /* a state in hst_wait's set */
#define HST_ERROR      16          /* hst_wait: the error node appeared */
#define HST_TIMEOUT_MS 30000       /* generous: a hang, never a speed, fails it */

/*
 * Waits, driven by a watch on dir, until <dir>/state is in `states` (a
 * HST_STATE() mask) - returning that state - or, with or_error, until
 * <dir>/error exists - returning HST_ERROR.  After timeout_ms: -1 with
 * ETIMEDOUT, and why says what it waited for and every state it saw.
 * The call owns watches on xs while it runs: xs must have no bhxb_watches
 * table of its own.
 */
int hst_wait(struct xs_handle *xs, const char *dir, unsigned int states, bool or_error,
             int timeout_ms, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif

#endif
