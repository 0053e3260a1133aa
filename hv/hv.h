/*
 * hv.h - bulkhead-hv's private header: the daemon's objects and the
 * prototypes its files share, grouped by file.
 *
 * The daemon is single-threaded: one epoll loop (hv.c) serves every
 * hypercall channel (conn.c), dispatches each request by op (dispatch.c)
 * to the file that owns it: domains (domain.c), grants (gnttab.c), event
 * channels (evtchn.c).  Handlers never block on a domain: a channel whose
 * peer does not read its replies is dropped.
 */
#ifndef BULKHEAD_HV_H
#define BULKHEAD_HV_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "hvwire.h"

struct hv_gnttab;      /* gnttab.c: a domain's grant table */
struct hv_conn_maps;   /* gnttab.c: the pages a channel has mapped */
struct hv_evtchn;      /* evtchn.c: a domain's event-channel ports */
struct hv_broker;      /* broker.c: what dom0 registered for the broker */

struct hv_dom {
    uint16_t domid;
    char name[HVW_NAME_MAX];
    uid_t uid;            /* outside its user namespace; 0 for dom0 */
    pid_t pid;            /* first process, as dom0 sees it; 0 for dom0 */
    int pidfd;            /* -1 for dom0 */
    uint8_t state;        /* enum hvw_dom_state */
    uint32_t flags;       /* HVW_DOM_* */
    uint64_t memory_kb;
    uint32_t vcpus;
    uint32_t max_grant_frames;
    uint32_t max_evtchn_ports;
    struct hv_gnttab *gnt;
    struct hv_evtchn *evt;
    struct hv_dom *next;
};

struct hv_conn {
    int fd;
    struct hv_dom *dom;       /* the caller's domain: fixed when the channel is made */
    bool watch_domains;       /* dom0 asked for HVW_EV_DOMAIN events */
    struct hv_conn_maps *maps;
    struct hv_conn *next;
};

/* One request being served. */
struct hv_req {
    struct hv_conn *conn;
    const struct hvw_hdr *hdr;
    const uint8_t *p; /* payload, hostile */
    size_t len;       /* payload bytes */
    pid_t pid;        /* the sending process (SCM_CREDENTIALS), as dom0 sees it */
};

/* The reply being built: payload, and fds to pass (closed after sending). */
struct hv_rsp {
    uint8_t *p; /* HVW_MAX_MSG - sizeof(struct hvw_hdr) bytes */
    size_t len;
    int fds[HVW_MAX_FDS];
    unsigned int nfds;
};

struct hv {
    char state_dir[256];
    char sock_path[300];
    int listen_fd;
    int epfd;
    int sigfd;
    FILE *log;
    uid_t uid_base;          /* domain d runs as uid_base + d */
    uint16_t next_domid;
    struct hv_dom *doms;     /* dom0 first */
    struct hv_conn *conns;
    bool stopping;
    char *const *ro_dirs;    /* extra read-only directories every domain sees */
    int exe_fd;              /* our own binary, for the domain init */
    struct hv_broker *broker;
};

#define HV_DEFAULT_GRANT_FRAMES 64u
#define HV_DEFAULT_EVTCHN_PORTS 1023u
#define HV_GRANTS_PER_FRAME 512u /* v1 entries: 4096 / 8 */

/* hv.c */
void hv_log(struct hv *hv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct hv_dom *hv_dom_find(struct hv *hv, uint16_t domid);
struct hv_dom *hv_dom_by_uid(struct hv *hv, uid_t uid);

/* conn.c */
struct hv_conn *conn_new(struct hv *hv, int fd, struct hv_dom *dom);
void conn_close(struct hv *hv, struct hv_conn *c);
void conn_serve(struct hv *hv, struct hv_conn *c);
int conn_send_event(struct hv *hv, struct hv_conn *c, uint16_t op, const void *p, size_t len);

/* dispatch.c: returns 0 or a positive errno for the reply */
int dispatch(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);

/* domain.c */
int domain_create(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
/*
 * Checks a DOM_CREATE payload: the fixed part into *r, the strings into a
 * private copy split as argv and envp (free *argv then *copy).  0 or EINVAL.
 */
int domain_parse_create(const uint8_t *p, size_t len, struct hvw_dom_create_req *r, char **copy,
                        char ***argv, char ***envp);
int domain_destroy(struct hv *hv, struct hv_dom *d);
void domain_reap(struct hv *hv, struct hv_dom *d); /* its first process ended */
void domain_info(const struct hv_dom *d, struct hvw_dominfo *out);

/* framestore.c: grant frames held by store processes, not by our fd table */
struct hv_frame {
    uint16_t store;
    int32_t fd; /* its number in the store process */
};
int framestore_put(struct hv *hv, const int *fds, unsigned int n, struct hv_frame *out);
int framestore_open(struct hv *hv, const struct hv_frame *f, int flags); /* a new description */
void framestore_drop(struct hv *hv, const struct hv_frame *f);           /* hv may be NULL */
unsigned int framestore_count(void);
unsigned int framestore_nstores(void); /* store processes running (one socket each here) */
void framestore_shutdown(struct hv *hv);

/* cgroup.c: best-effort memory and process limits */
void cgroup_limit(struct hv *hv, const struct hv_dom *d);
void cgroup_release(struct hv *hv, const struct hv_dom *d);
void cgroup_cleanup(struct hv *hv);

/* gnttab.c: each op returns 0 or a positive errno */
int gnttab_init(void); /* raises the daemon's fd limit for frames */
void gnttab_keep_at_most(uint32_t n); /* kept descriptions (the start sets it; tests shrink it) */
int gnttab_dom_init(struct hv_dom *d);
void gnttab_dom_release(struct hv *hv, struct hv_dom *d);
void gnttab_conn_release(struct hv *hv, struct hv_conn *c);
int gnttab_share(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int gnttab_end(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int gnttab_map(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int gnttab_unmap(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int gnttab_copy(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
void gnttab_stats(struct hv *hv, struct hvw_stats_rsp *st);

/* evtchn.c */
int evtchn_dom_init(struct hv_dom *d);
void evtchn_dom_release(struct hv *hv, struct hv_dom *d);
void evtchn_conn_release(struct hv *hv, struct hv_conn *c);
int evtchn_unbound(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int evtchn_bind(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int evtchn_close(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int evtchn_status(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
void evtchn_stats(struct hv *hv, struct hvw_stats_rsp *st);

/* broker.c: registrations, disks and NBD; each op returns 0 or a positive errno */
int broker_init(struct hv *hv);
void broker_shutdown(struct hv *hv);
void broker_dom_release(struct hv *hv, struct hv_dom *d); /* forgets what names d */
uint32_t broker_count(struct hv *hv);                      /* storage directories + devices */
const struct hvw_brk_vif_reg *broker_find_vif(struct hv *hv, uint16_t frontend, uint32_t devid);
/* Logs "domain N: broker OP refused: WHY" and returns err. */
int broker_refuse(struct hv *hv, const struct hv_req *req, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int broker_storage(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int broker_reg_disk(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int broker_reg_vif(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int broker_unreg(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int broker_disk(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int broker_nbd(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);

/* brknet.c: TAPs, bridges and uplinks, each in a domain's network namespace */
int brknet_tap(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int brknet_bridge(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);
int brknet_uplink(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);

/* brkparse.c: 0, or EINVAL with a few words in *why */
bool brk_path_ok(const char *f, size_t max);
bool brk_ifname_ok(const char *f, size_t max, bool empty_ok);
int brk_parse_storage(const uint8_t *p, size_t len, struct hvw_brk_storage_req *r,
                      const char **why);
int brk_parse_disk_reg(const uint8_t *p, size_t len, struct hvw_brk_disk_reg *r, const char **why);
int brk_parse_vif_reg(const uint8_t *p, size_t len, struct hvw_brk_vif_reg *r, const char **why);
int brk_parse_unreg(const uint8_t *p, size_t len, struct hvw_brk_unreg_req *r, const char **why);
int brk_parse_tap(const uint8_t *p, size_t len, struct hvw_brk_tap_req *r, const char **why);
int brk_parse_open(const uint8_t *p, size_t len, bool nbd, struct hvw_brk_open_req *r,
                   const char **why);
int brk_parse_bridge(const uint8_t *p, size_t len, struct hvw_brk_bridge_req *r,
                     const char **why);
int brk_parse_uplink(const uint8_t *p, size_t len, struct hvw_brk_uplink_req *r,
                     const char **why);

/* netlink.c: network namespaces and rtnetlink; 0 or -1 with errno unless said */
struct nl_link {
    int ifindex;
    int master;        /* 0: none */
    unsigned int mtu;
    unsigned int flags; /* IFF_* */
    char kind[16];     /* "bridge", "veth", "tun", ...; "" for a plain device */
};
int netns_init(void); /* remembers the daemon's own namespace: call it at start */
void netns_fini(void);
int netns_is_host(int nsfd);  /* 1, 0, or -1 */
int netns_enter(int nsfd);
void netns_leave(void);       /* back to the daemon's own; aborts if it cannot */
int nl_open(int nsfd);        /* an rtnetlink socket in nsfd's namespace (-1: ours); fd or -1 */
/*
 * An interface name as we accept one from a peer (a C string): 1..15 of
 * A-Z a-z 0-9 _ . -, not "." or "..": TUNSETIFF would expand a "%d".
 */
bool nl_ifname_ok(const char *s);
/*
 * Opens the n queues of TAP `name` (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR |
 * IFF_MULTI_QUEUE), the device made by the first, in the namespace of the
 * caller: fds[0..n) set (-1 where not opened).  0, or an errno (the fds
 * opened stay for the caller to close).
 */
int tun_open_queues(const char *name, unsigned int n, int *fds);
int nl_link_get(int fd, const char *name, struct nl_link *out); /* ENODEV: none */
int nl_bridge_add(int fd, const char *name);
int nl_veth_add(int fd, const char *name, const char *peer, int peer_nsfd, unsigned int mtu);
/* mtu 0, master 0 and mac NULL leave those alone; up brings the link up. */
int nl_link_set(int fd, int ifindex, unsigned int mtu, int master, const uint8_t *mac, bool up);
int nl_link_del(int fd, int ifindex);
/* The first IPv4 address (network order) on ifindex into *addr; EADDRNOTAVAIL: none. */
int nl_addr4_get(int fd, int ifindex, uint32_t *addr);
/* addr/prefix (network order) on ifindex. */
int nl_addr4_add(int fd, int ifindex, uint32_t addr, unsigned int prefix);
/* A host route to dst through ifindex, from src, in the main table. */
int nl_route4_add(int fd, uint32_t dst, int ifindex, uint32_t src);

#endif /* BULKHEAD_HV_H */
