/*
 * hvwire.h - the hypercall messages of the simulated hypervisor, on the wire.
 *
 * This is what crosses the boundary between a domain and bulkhead-hv, so
 * every structure here has fixed-width fields at documented offsets and no
 * pointers, and the daemon treats every byte of a request as hostile.
 *
 * Transport: a SOCK_SEQPACKET unix socket, one message per packet, so that
 * a message is never split or merged.  A domain gets its first channel by
 * inheritance (fd BULKHEAD_HV_FD, default 3, in its first process); any other
 * process of the domain connects to /run/bulkhead/hv.sock inside the domain
 * (the daemon's socket, bind-mounted there) and gets a channel of its own.
 * The daemon learns the caller's domain from the channel alone: from the
 * domain it built the channel for, or from the connecting process's uid
 * (SO_PEERCRED), which is the domain's own uid outside its user namespace.
 * Nothing a domain writes in a message says who it is.  Dom0 is uid 0.
 *
 * Every request is [struct hvw_hdr][payload]; every reply is the same
 * header with HVW_F_REPLY set, `seq` echoed and `err` 0 or a positive
 * errno, then the reply payload (present only when err is 0).  File
 * descriptors travel as SCM_RIGHTS beside the payload: at most
 * HVW_MAX_FDS per message, which bounds every batch below.
 *
 * Byte order is the host's: both ends are on one machine.
 */
#ifndef BULKHEAD_HVWIRE_H
#define BULKHEAD_HVWIRE_H

#include <stdint.h>

#define HVW_MAGIC 0x31564842u /* "BHV1" little-endian */
#define HVW_MAX_MSG 65536u    /* header + payload; larger is refused */
#define HVW_MAX_FDS 64u       /* fds per message, and pages per grant batch */
#define HVW_MAX_COPY 256u     /* segments per grant copy batch */
#define HVW_NAME_MAX 64u      /* domain names, NUL-terminated within */
#define HVW_DOMID_SELF 0x7ff0u
#define HVW_DOMID_MAX 0x7fefu /* DOMID_FIRST_RESERVED - 1 */
#define HVW_PAGE_SIZE 4096u

/* Header of every message: 16 bytes. */
struct hvw_hdr {
    uint32_t magic; /*  0: HVW_MAGIC */
    uint16_t op;    /*  4: enum hvw_op */
    uint16_t flags; /*  6: HVW_F_* */
    uint32_t seq;   /*  8: chosen by the caller, echoed in the reply */
    int32_t err;    /* 12: reply only: 0 or a positive errno */
};
_Static_assert(sizeof(struct hvw_hdr) == 16, "hvw_hdr is 16 bytes");

#define HVW_F_REPLY 0x0001u /* a reply to the request with the same seq */
#define HVW_F_EVENT 0x0002u /* an unsolicited event (seq 0) */

enum hvw_op {
    /* Any domain. */
    HVW_OP_HELLO = 1,      /* -> hvw_hello_rsp: who am I */
    HVW_OP_GNT_SHARE = 2,  /* hvw_gnt_share_req -> hvw_gnt_share_rsp + count fds */
    HVW_OP_GNT_END = 3,    /* hvw_gnt_refs_req -> hvw_gnt_status_rsp */
    HVW_OP_GNT_MAP = 4,    /* hvw_gnt_map_req -> hvw_gnt_map_rsp + count fds */
    HVW_OP_GNT_UNMAP = 5,  /* hvw_gnt_map_req -> (empty) */
    HVW_OP_GNT_COPY = 6,   /* hvw_gnt_copy_req -> hvw_gnt_status_rsp */
    HVW_OP_EVT_UNBOUND = 7, /* hvw_evt_unbound_req -> hvw_evt_port_rsp + 2 fds */
    HVW_OP_EVT_BIND = 8,   /* hvw_evt_bind_req -> hvw_evt_port_rsp + 2 fds */
    HVW_OP_EVT_CLOSE = 9,  /* hvw_evt_port_req -> (empty) */
    HVW_OP_EVT_STATUS = 10, /* hvw_evt_status_req -> hvw_evt_status_rsp */

    /* Dom0 only: anyone else gets EPERM. */
    HVW_OP_DOM_CREATE = 32,  /* hvw_dom_create_req -> hvw_dominfo */
    HVW_OP_DOM_DESTROY = 33, /* hvw_domid_req -> (empty), once every process is gone */
    HVW_OP_DOM_LIST = 34,    /* (empty) -> hvw_dom_list_rsp */
    HVW_OP_DOM_PAUSE = 35,   /* hvw_domid_req -> (empty) */
    HVW_OP_DOM_UNPAUSE = 36, /* hvw_domid_req -> (empty) */
    HVW_OP_DOM_WATCH = 37,   /* (empty) -> (empty); then HVW_EV_DOMAIN events */
    HVW_OP_STOP = 38,        /* (empty) -> (empty); destroys every domain, then exits */
    HVW_OP_STATS = 39,       /* (empty) -> hvw_stats_rsp: for leak tests */

    /* Events, sent with HVW_F_EVENT to dom0 channels that asked for them. */
    HVW_EV_DOMAIN = 64, /* hvw_dominfo: a domain changed state (died, ...) */
};

/* HELLO reply. */
struct hvw_hello_rsp {
    uint16_t domid;            /*  0 */
    uint16_t pad;              /*  2 */
    uint32_t max_grant_frames; /*  4: grant-table frames; 512 grants each */
    uint32_t max_evtchn_ports; /*  8 */
    uint32_t pad2;             /* 12 */
    char name[HVW_NAME_MAX];   /* 16 */
};

/*
 * GNT_SHARE: the caller grants `count` (1..HVW_MAX_FDS) new pages to
 * `domid`.  The reply carries their references and one fd per page, which
 * the caller maps read-write; the pages are zeroed.  ENOSPC when the grant
 * table is full, ESRCH for an unknown domain.  The grants end at GNT_END
 * or when the sharing channel closes (as gntalloc's die with their file);
 * a page still mapped then stays granted until it is unmapped.
 */
struct hvw_gnt_share_req {
    uint16_t domid;   /* 0: the domain that may map the pages */
    uint8_t writable; /* 2: 1 if that domain may write */
    uint8_t pad;      /* 3 */
    uint32_t count;   /* 4 */
};
struct hvw_gnt_share_rsp {
    uint32_t count;  /* 0 */
    uint32_t refs[]; /* 4: count references, in the order of the fds */
};

/*
 * GNT_END: the granter ends access to its references.  Per reference:
 * 0, EBUSY while another domain has it mapped (as on Xen: the caller
 * retries after the mapper unmaps or dies), ENOENT for a reference that
 * is not the caller's.  At most HVW_MAX_COPY references.
 */
struct hvw_gnt_refs_req {
    uint32_t count;  /* 0 */
    uint32_t refs[]; /* 4 */
};
struct hvw_gnt_status_rsp {
    uint32_t count;    /* 0 */
    int32_t status[];  /* 4: GNT_END: 0 or a positive errno; GNT_COPY: GNTST_* */
};

/*
 * GNT_MAP: maps references granted by `domid` to the caller.  All or
 * nothing: ENOENT (no such grant), EACCES (granted to another domain),
 * EPERM (writable asked of a read-only grant), ESRCH (no such domain).
 * The reply's fds are one per page, read-only for a read-only mapping;
 * the caller mmaps them and closes them.  The daemon counts the page as
 * mapped by this channel until GNT_UNMAP or until the channel closes.
 *
 * GNT_UNMAP takes the same request.  An unmap cannot be trusted: a process
 * may say it unmapped and keep the mapping.  All the daemon can do, and
 * does, is never give the frame to anyone else: a frame lives until its
 * granter ends access and no channel claims a mapping, and it is then freed,
 * never reused.  A liar keeps a view of stale data it already had, nothing
 * more - the same as a Xen guest that leaks a gntdev mapping.
 */
struct hvw_gnt_map_req {
    uint16_t domid;   /* 0: the granting domain */
    uint8_t writable; /* 2 */
    uint8_t pad;      /* 3 */
    uint32_t count;   /* 4: 1..HVW_MAX_FDS */
    uint32_t refs[];  /* 8 */
};
struct hvw_gnt_map_rsp {
    uint32_t count; /* 0 */
};

/*
 * GNT_COPY: copies between granted pages and the caller's own memory, in
 * the daemon (GNTTABOP_copy).  Each segment names a source and a
 * destination, each either a grant (GNTCOPY_source_gref /
 * GNTCOPY_dest_gref set in flags: ref, offset, domid) or an address in the
 * calling process.  offset + len must stay within one page on the grant
 * side.  The reply has one GNTST_* status per segment.
 */
struct hvw_copy_ptr {
    uint64_t virt;   /* 0: caller's address, when not a grant */
    uint32_t ref;    /* 8 */
    uint16_t offset; /* 12 */
    uint16_t domid;  /* 14 */
};
struct hvw_copy_seg {
    struct hvw_copy_ptr src; /*  0 */
    struct hvw_copy_ptr dst; /* 16 */
    uint16_t len;            /* 32 */
    uint16_t flags;          /* 34: GNTCOPY_source_gref | GNTCOPY_dest_gref */
    uint32_t pad;            /* 36 */
};
_Static_assert(sizeof(struct hvw_copy_seg) == 40, "hvw_copy_seg is 40 bytes");
struct hvw_gnt_copy_req {
    uint32_t count;              /* 0: 1..HVW_MAX_COPY */
    uint32_t pad;                /* 4 */
    struct hvw_copy_seg segs[];  /* 8 */
};

/*
 * Event channels.  A port's notifications are counted by a non-blocking
 * eventfd of its own.  UNBOUND and BIND reply with two fds: [0] the port's
 * own eventfd, which the caller polls and reads, and [1] the remote port's
 * eventfd, which the caller writes to notify - directly, never through the
 * daemon.  A remote end that reads [1] only drains its own wake-ups; a
 * counter that saturates makes the writer's write fail with EAGAIN, never
 * block.  CLOSE (or the channel closing) closes the port; the remote
 * end is woken and its STATUS says EVTCHNSTAT_unbound.
 */
struct hvw_evt_unbound_req {
    uint16_t remote_domid; /* 0: the domain that may bind */
    uint16_t pad;          /* 2 */
};
struct hvw_evt_bind_req {
    uint16_t remote_domid; /* 0 */
    uint16_t pad;          /* 2 */
    uint32_t remote_port;  /* 4 */
};
struct hvw_evt_port_req {
    uint32_t port; /* 0 */
};
struct hvw_evt_port_rsp {
    uint32_t port; /* 0 */
};
struct hvw_evt_status_req {
    uint16_t domid; /* 0: HVW_DOMID_SELF, or any domain for dom0 */
    uint16_t pad;   /* 2 */
    uint32_t port;  /* 4 */
};
struct hvw_evt_status_rsp {
    uint32_t status;       /* 0: EVTCHNSTAT_closed, _unbound or _interdomain */
    uint16_t remote_domid; /* 4 */
    uint16_t pad;          /* 6 */
    uint32_t remote_port;  /* 8: for _interdomain */
};

/* ---- dom0 control ---- */

#define HVW_DOM_DRIVER 0x0001u /* driver_domain=1 */

enum hvw_dom_state {
    HVW_DOM_RUNNING = 1,
    HVW_DOM_PAUSED = 2,
    HVW_DOM_SHUTDOWN = 3, /* its processes ended on their own */
    HVW_DOM_DYING = 4,    /* being destroyed */
    HVW_DOM_GONE = 5,     /* only in events: destroyed */
};

/*
 * DOM_CREATE: builds a domain.  `strings` holds `argc` NUL-terminated
 * arguments of the domain's first program, then `envc` NUL-terminated
 * "NAME=value" entries, in `strings_len` bytes.  argc 0 runs the idle
 * domain init, which only waits.  The name must be unique, 1..63 bytes of
 * [A-Za-z0-9_.-].
 */
struct hvw_dom_create_req {
    char name[HVW_NAME_MAX];   /*   0 */
    uint64_t memory_kb;        /*  64: address-space limit, 0 = none */
    uint32_t vcpus;            /*  72 */
    uint32_t flags;            /*  76: HVW_DOM_* */
    uint32_t max_grant_frames; /*  80: 0 = the default, 64 */
    uint32_t max_evtchn_ports; /*  84: 0 = the default, 1023 */
    uint32_t argc;             /*  88 */
    uint32_t envc;             /*  92 */
    uint32_t strings_len;      /*  96 */
    uint32_t pad;              /* 100 */
    char strings[];            /* 104 */
};

struct hvw_domid_req {
    uint16_t domid; /* 0 */
    uint16_t pad;   /* 2 */
};

struct hvw_dominfo {
    uint16_t domid;          /*  0 */
    uint8_t state;           /*  2: enum hvw_dom_state */
    uint8_t pad;             /*  3 */
    uint32_t flags;          /*  4: HVW_DOM_* */
    uint32_t pid;            /*  8: the domain's first process, as dom0 sees it */
    uint32_t uid;            /* 12: its uid outside its user namespace */
    uint64_t memory_kb;      /* 16 */
    uint32_t vcpus;          /* 24 */
    uint32_t pad2;           /* 28 */
    char name[HVW_NAME_MAX]; /* 32 */
};
_Static_assert(sizeof(struct hvw_dominfo) == 96, "hvw_dominfo is 96 bytes");

struct hvw_dom_list_rsp {
    uint32_t count;             /* 0 */
    uint32_t pad;               /* 4 */
    struct hvw_dominfo doms[];  /* 8 */
};

struct hvw_stats_rsp {
    uint32_t domains;   /*  0 */
    uint32_t channels;  /*  4: open hypercall channels */
    uint32_t frames;    /*  8: grant frames alive */
    uint32_t mappings;  /* 12: pages mapped by some channel */
    uint32_t ports;     /* 16: event-channel ports bound */
    uint32_t open_fds;  /* 20: the daemon's open file descriptors */
    uint64_t rss_kb;    /* 24: the daemon's resident memory */
    uint64_t heap_kb;   /* 32: bytes its allocator has handed out and not had back */
    uint32_t stored;    /* 40: frames held by its store processes (memfds alive) */
    uint32_t pad;       /* 44 */
};

#endif /* BULKHEAD_HVWIRE_H */
