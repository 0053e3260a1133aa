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

    /* Any domain: the broker, answering only what dom0 registered (below). */
    HVW_OP_BRK_TAP = 20,  /* hvw_brk_tap_req -> hvw_brk_tap_rsp + one fd per queue */
    HVW_OP_BRK_DISK = 21, /* hvw_brk_open_req -> hvw_brk_disk_rsp + 1 fd */
    HVW_OP_BRK_NBD = 22,  /* hvw_brk_open_req -> (empty) + 1 fd, a connected socket */

    /* Dom0 only: anyone else gets EPERM. */
    HVW_OP_DOM_CREATE = 32,  /* hvw_dom_create_req -> hvw_dominfo */
    HVW_OP_DOM_DESTROY = 33, /* hvw_domid_req -> (empty), once every process is gone */
    HVW_OP_DOM_LIST = 34,    /* (empty) -> hvw_dom_list_rsp */
    HVW_OP_DOM_PAUSE = 35,   /* hvw_domid_req -> (empty) */
    HVW_OP_DOM_UNPAUSE = 36, /* hvw_domid_req -> (empty) */
    HVW_OP_DOM_WATCH = 37,   /* (empty) -> (empty); then HVW_EV_DOMAIN events */
    HVW_OP_STOP = 38,        /* (empty) -> (empty); destroys every domain, then exits */
    HVW_OP_STATS = 39,       /* (empty) -> hvw_stats_rsp: for leak tests */
    HVW_OP_BRK_STORAGE = 48, /* hvw_brk_storage_req -> (empty) */
    HVW_OP_BRK_REG_DISK = 49, /* hvw_brk_disk_reg -> (empty) */
    HVW_OP_BRK_REG_VIF = 50, /* hvw_brk_vif_reg -> (empty) */
    HVW_OP_BRK_UNREG = 51,   /* hvw_brk_unreg_req -> (empty) */
    HVW_OP_BRK_BRIDGE = 52,  /* hvw_brk_bridge_req -> (empty) */
    HVW_OP_BRK_UPLINK = 53,  /* hvw_brk_uplink_req -> (empty) */

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
    uint32_t brk_regs;  /* 44: broker registrations: storage directories + devices */
    uint32_t kept;      /* 48: page descriptions kept for grantees' maps (in open_fds) */
    uint32_t pad;       /* 52 */
};

/* ---- the broker ----
 *
 * A domain's root is not the host's root: it cannot open /dev/net/tun or a
 * host-owned disk image.  Dom0 registers what each driver domain serves;
 * the broker then creates or opens those objects for the domain that may
 * have them and hands them over as fds, as libvirt hands QEMU its TAPs.
 *
 * Every string below lives in a fixed field, NUL-terminated within it, and
 * the bytes after its NUL, like every pad field, must be zero.  A path is
 * absolute and canonical: no empty, "." or ".." component, no trailing
 * slash.  An interface name is 1..15 bytes of [A-Za-z0-9_.-], not "." or
 * "..".  Anything else is EINVAL, as is a payload of the wrong size.
 */
#define HVW_PATH_MAX 256u      /* path fields, NUL included */
#define HVW_IFNAME_MAX 16u     /* interface names, NUL included (IFNAMSIZ) */
#define HVW_BRK_MAX_DIRS 8u    /* storage directories of a driver domain */
#define HVW_BRK_MAX_QUEUES 8u  /* TAP queues of a vif */
#define HVW_BRK_MAX_IPS 8u     /* a routed vif's addresses (ip=), as netback's anti-spoofing */
#define HVW_BRK_MAX_DEVICES 256u /* devices registered for one backend domain */

/*
 * BRK_STORAGE: the storage directories of driver domain `domid` (not dom0),
 * replacing any it had; count 0 forgets them.  Each must exist, be a
 * directory, and be its own canonical path (no symlink on the way): ENOENT,
 * EINVAL otherwise.  A disk target is opened only beneath one of them.
 */
struct hvw_brk_storage_req {
    uint16_t domid;                            /* 0 */
    uint16_t count;                            /* 2: 0..HVW_BRK_MAX_DIRS */
    uint32_t pad;                              /* 4 */
    char dirs[HVW_BRK_MAX_DIRS][HVW_PATH_MAX]; /* 8: count used, the rest zero */
};
_Static_assert(sizeof(struct hvw_brk_storage_req) == 2056, "hvw_brk_storage_req is 2056 bytes");

#define HVW_BRK_RO 0x0001u  /* disk: read-only (registration, and the DISK reply) */
#define HVW_BRK_NBD 0x0002u /* disk: path is an NBD server's unix socket */

/*
 * BRK_REG_DISK and BRK_REG_VIF: a device of guest `frontend` served by
 * driver domain `backend`; both must exist (ESRCH), the frontend not be
 * dom0 nor the backend dom0 for a disk (dom0 opens its own), nor
 * the same domain (EINVAL).  A device is known by (kind, frontend, devid):
 * registering it again replaces it.  ENOSPC past HVW_BRK_MAX_DEVICES for
 * one backend.  Registrations naming a domain go when it is destroyed.
 */
struct hvw_brk_disk_reg {
    uint16_t backend;        /*  0 */
    uint16_t frontend;       /*  2 */
    uint32_t devid;          /*  4 */
    uint32_t flags;          /*  8: HVW_BRK_RO, HVW_BRK_NBD */
    uint32_t pad;            /* 12 */
    char path[HVW_PATH_MAX]; /* 16: target, or the NBD socket (< 108 bytes) */
};
_Static_assert(sizeof(struct hvw_brk_disk_reg) == 272, "hvw_brk_disk_reg is 272 bytes");

struct hvw_brk_vif_reg {
    uint16_t backend;              /*  0 */
    uint16_t frontend;             /*  2 */
    uint32_t devid;                /*  4: 0..65535 */
    uint16_t queues;               /*  8: 1..HVW_BRK_MAX_QUEUES */
    uint16_t mtu;                  /* 10: 68..65521 (a TAP's largest) */
    uint8_t mac[6];                /* 12: the guest's: unicast, not zero */
    uint16_t pad;                  /* 18 */
    char bridge[HVW_IFNAME_MAX];   /* 20: the backend's bridge; "" for none */
    uint32_t pad2;                 /* 36 */
    char vifname[HVW_IFNAME_MAX];  /* 40: the backend's TAP; "" for vif<frontend>.<devid> */
    uint32_t flags;                /* 56: HVW_BRK_VIF_ROUTED */
    uint32_t nip;                  /* 60: routed: 1..HVW_BRK_MAX_IPS; else 0 */
    char gatewaydev[HVW_IFNAME_MAX]; /* 64: routed: the link whose IPv4 address the TAP takes */
    uint32_t ip[HVW_BRK_MAX_IPS];  /* 80: routed: the guest's IPv4 addresses, network order */
};
_Static_assert(sizeof(struct hvw_brk_vif_reg) == 112, "hvw_brk_vif_reg is 112 bytes");

/*
 * A routed vif (xl's script=vif-route): bridge is "", and the backend's TAP
 * is set up as Xen's vif-route sets up a vif - gatewaydev's first IPv4
 * address on it as a /32, proxy ARP on, and a /32 route to each of ip[]
 * through it - with what Xen's network-route does once per host done
 * beside it in the backend's namespace: IPv4 forwarding and proxy ARP on
 * gatewaydev.  Each ip[] is a unicast host address (not 0.0.0.0/8,
 * 127/8, multicast or broadcast), none twice.
 */
#define HVW_BRK_VIF_ROUTED 0x0001u

#define HVW_BRK_KIND_DISK 1u
#define HVW_BRK_KIND_VIF 2u

/* BRK_UNREG: forgets one device (hot-unplug); ENOENT if none. */
struct hvw_brk_unreg_req {
    uint16_t frontend; /* 0 */
    uint8_t kind;      /* 2: HVW_BRK_KIND_* */
    uint8_t pad;       /* 3 */
    uint32_t devid;    /* 4 */
};
_Static_assert(sizeof(struct hvw_brk_unreg_req) == 8, "hvw_brk_unreg_req is 8 bytes");

#define HVW_BRK_TAP_CSUM 0x0001u /* TUN_F_CSUM */
#define HVW_BRK_TAP_TSO4 0x0002u /* TUN_F_TSO4: needs CSUM */
#define HVW_BRK_TAP_TSO6 0x0004u /* TUN_F_TSO6: needs CSUM */

/*
 * BRK_TAP: a TAP for vif (frontend, devid), made in the network namespace
 * of the calling process, which must belong to the vif's backend domain -
 * the TAP is then vif<frontend>.<devid> or the vifname, MAC
 * fe:ff:ff:ff:ff:ff, enslaved to the vif's bridge (made when first needed)
 * or, routed, set up as HVW_BRK_VIF_ROUTED says - or to the guest itself - the
 * TAP is then eth<devid>, with the guest's MAC.  Either way: IFF_TAP |
 * IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE, the registered mtu and queue
 * count, up, and one fd per queue in the reply.  The TAP lives as long as
 * one of its fds.  ENOENT: no such vif; EPERM: not the caller's; EEXIST:
 * the interface exists already (its fds are still open somewhere).
 */
struct hvw_brk_tap_req {
    uint16_t frontend;    /*  0 */
    uint16_t vnet_hdr_sz; /*  2: 10 (virtio_net_hdr) or 12 (_mrg_rxbuf) */
    uint32_t devid;       /*  4 */
    uint32_t offload;     /*  8: HVW_BRK_TAP_* */
    uint32_t pad;         /* 12 */
};
_Static_assert(sizeof(struct hvw_brk_tap_req) == 16, "hvw_brk_tap_req is 16 bytes");

struct hvw_brk_tap_rsp {
    uint32_t queues;           /* 0: the fds that follow */
    uint32_t ifindex;          /* 4: in the caller's network namespace */
    char name[HVW_IFNAME_MAX]; /* 8 */
};
_Static_assert(sizeof(struct hvw_brk_tap_rsp) == 24, "hvw_brk_tap_rsp is 24 bytes");

#define HVW_BRK_DIRECT 0x0001u /* BRK_DISK: open with O_DIRECT */

/*
 * BRK_DISK: opens disk (frontend, devid) for its backend domain (EPERM for
 * anyone else): O_RDONLY when registered read-only, else O_RDWR.  The
 * target must resolve beneath one of the backend's storage directories,
 * through no "..", absolute symlink or symlink leading out (EPERM), and be
 * a regular file or a block device (EINVAL).  BRK_NBD connects to an NBD
 * disk's socket instead (flags 0).  EINVAL when the kind does not match.
 */
struct hvw_brk_open_req {
    uint16_t frontend; /*  0 */
    uint16_t pad;      /*  2 */
    uint32_t devid;    /*  4 */
    uint32_t flags;    /*  8: HVW_BRK_DIRECT for DISK; 0 for NBD */
    uint32_t pad2;     /* 12 */
};
_Static_assert(sizeof(struct hvw_brk_open_req) == 16, "hvw_brk_open_req is 16 bytes");

struct hvw_brk_disk_rsp {
    uint32_t flags; /* 0: HVW_BRK_RO when the fd is read-only */
    uint32_t pad;   /* 4 */
    uint64_t size;  /* 8: bytes */
};
_Static_assert(sizeof(struct hvw_brk_disk_rsp) == 16, "hvw_brk_disk_rsp is 16 bytes");

/*
 * BRK_BRIDGE: a bridge `name` in domain `domid`'s network namespace, up;
 * none is ever made in the host's (EPERM for dom0).  Idempotent: an
 * existing bridge is kept (EEXIST if the name is another kind of link).
 * mtu 0 leaves the kernel's.  Bridges and links die with the namespace.
 * addr/prefix, unless 0/0: an IPv4 address the bridge gets (kept if it
 * has it already) - a driver domain's uplink address, which routed vifs
 * take (HVW_BRK_VIF_ROUTED); a unicast host address, prefix 1..32.
 */
struct hvw_brk_bridge_req {
    uint16_t domid;            /*  0 */
    uint16_t mtu;              /*  2: 0, or 68..65535 */
    uint32_t pad;              /*  4 */
    char name[HVW_IFNAME_MAX]; /*  8 */
    uint32_t addr;             /* 24: network order; 0: none */
    uint8_t prefix;            /* 28: 1..32 with an address, else 0 */
    uint8_t pad2[3];           /* 29 */
};
_Static_assert(sizeof(struct hvw_brk_bridge_req) == 32, "hvw_brk_bridge_req is 32 bytes");

/*
 * BRK_UPLINK: a veth pair: `name` in domain `domid`'s namespace, enslaved
 * to its bridge `bridge` (made if needed), and `peer` in the network
 * namespace whose file is `netns` (e.g. a bind mount of one), both up.
 * EINVAL if `netns` is not a network namespace, EPERM if it is the host's.
 */
struct hvw_brk_uplink_req {
    uint16_t domid;              /*  0 */
    uint16_t mtu;                /*  2: 0 (1500), or 68..65535 */
    uint32_t pad;                /*  4 */
    char bridge[HVW_IFNAME_MAX]; /*  8 */
    char name[HVW_IFNAME_MAX];   /* 24 */
    char peer[HVW_IFNAME_MAX];   /* 40 */
    char netns[HVW_PATH_MAX];    /* 56 */
};
_Static_assert(sizeof(struct hvw_brk_uplink_req) == 312, "hvw_brk_uplink_req is 312 bytes");

#endif /* BULKHEAD_HVWIRE_H */
