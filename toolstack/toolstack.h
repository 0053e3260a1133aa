/*
 * toolstack.h - the bulkhead command's private header, grouped by file.
 */
#ifndef BULKHEAD_TOOLSTACK_H
#define BULKHEAD_TOOLSTACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hvwire.h"

struct cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *usage;
    const char *help;
};

/* bulkhead.c */
extern const char *state_dir; /* --state-dir, BULKHEAD_STATE_DIR, or /run/bulkhead */
void die_usage(const struct cmd *c);
void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* hvclient.c: a dom0 channel to bulkhead-hv */
struct hvc {
    int fd;
    uint32_t seq;
};
int hvc_open(struct hvc *h, bool quiet);
void hvc_close(struct hvc *h);
/*
 * One request, one reply.  Returns 0 with the reply payload in rbuf (*rlen
 * bytes), a positive errno from the daemon, or -1 for a broken channel.
 */
int hvc_call(struct hvc *h, uint16_t op, const void *p, size_t len, void *rbuf, size_t rcap,
             size_t *rlen);
/*
 * The running domains (DOM_LIST), its size checked: *out points into a
 * buffer of hvclient.c's, good until the next call.  Returns as hvc_call;
 * -1 with EPROTO for a reply shorter than its count.
 */
int hvc_dom_list(struct hvc *h, struct hvw_dom_list_rsp **out);
/* The domain named (or numbered) `which`; 0, or ESRCH/-1. */
int hvc_find_domain(struct hvc *h, const char *which, struct hvw_dominfo *out);
int hvc_lookup(const char *which, struct hvw_dominfo *out); /* find, or say why: 0 or 1 */

/*
 * hvbroker.c: registrations and plumbing for the broker (bulkhead-hv(8),
 * BROKER); each returns as hvc_call.  flags: HVW_BRK_RO, HVW_BRK_NBD.
 */
int hvc_brk_storage(struct hvc *h, uint16_t domid, const char *const *dirs, unsigned int n);
int hvc_brk_disk(struct hvc *h, uint16_t backend, uint16_t frontend, uint32_t devid,
                 uint32_t flags, const char *path);
int hvc_brk_vif(struct hvc *h, uint16_t backend, uint16_t frontend, uint32_t devid,
                unsigned int queues, unsigned int mtu, const uint8_t mac[6], const char *bridge);
/*
 * The rest of a vif's registration: vifname ("" for vif<frontend>.<devid>)
 * and, for a routed vif (routed true, bridge ""), the gatewaydev and the
 * guest's IPv4 addresses (network order, 1..HVW_BRK_MAX_IPS).
 */
struct hvc_vif_more {
    const char *vifname;
    bool routed;
    const char *gatewaydev;
    const uint32_t *ip;
    unsigned int nip;
};
int hvc_brk_vif_more(struct hvc *h, uint16_t backend, uint16_t frontend, uint32_t devid,
                     unsigned int queues, unsigned int mtu, const uint8_t mac[6],
                     const char *bridge, const struct hvc_vif_more *x);
int hvc_brk_unreg(struct hvc *h, uint8_t kind, uint16_t frontend, uint32_t devid);
int hvc_brk_bridge(struct hvc *h, uint16_t domid, const char *name, unsigned int mtu);
/* The same, the bridge getting IPv4 addr/prefix (network order) too, unless addr is 0. */
int hvc_brk_bridge_addr(struct hvc *h, uint16_t domid, const char *name, unsigned int mtu,
                        uint32_t addr, unsigned int prefix);
int hvc_brk_uplink(struct hvc *h, uint16_t domid, const char *bridge, const char *name,
                   const char *peer, const char *netns, unsigned int mtu);

/* cmd_up.c */
int cmd_up(int argc, char **argv);
int cmd_down(int argc, char **argv);
int cmd_env(int argc, char **argv);
/*
 * Where one of our programs is: $env_name if set, else beside bulkhead
 * (installed, or in the build tree: top then names the build tree, which
 * domains must see to run its programs), else the configured sbindir.
 * 0, or -1 if it is not there.
 */
int find_prog(const char *name, const char *env_name, char *out, size_t outlen, char *top,
              size_t toplen);

/* cmd_bench.c */
int cmd_bench(int argc, char **argv);

/* cmd_devlist.c */
int cmd_block_list(int argc, char **argv);
int cmd_network_list(int argc, char **argv);

/* cmd_hotplug.c */
int cmd_block_attach(int argc, char **argv);
int cmd_block_detach(int argc, char **argv);
int cmd_network_attach(int argc, char **argv);
int cmd_network_detach(int argc, char **argv);

/* netns.c: dom0's network namespace, pinned at <state-dir>/netns/dom0 */
void dom0_netns_path(char *buf, size_t size);
int dom0_enter(char *err, size_t errlen); /* setns + the simulation's environment; -1: why */
int dom0_netns_make(char *err, size_t errlen); /* 0, or -1 with a one-line reason */
void dom0_netns_remove(void);
/*
 * Waits until dom0's namespace has no link named name (a destroyed driver
 * domain's uplink, which the kernel removes in the background).  0, or -1
 * (timed out, or no namespace to look in).
 */
int dom0_link_wait_gone(const char *name, int timeout_ms);

/* cmd_domain.c */
int cmd_create(int argc, char **argv);
int cmd_destroy(int argc, char **argv);
int cmd_list(int argc, char **argv);
void print_json_string(const char *s); /* quoted and escaped, to stdout */
int cmd_info(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_upgrade(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_unpause(int argc, char **argv);
/* How long create (and restart) wait for devices: BULKHEAD_CONNECT_TIMEOUT seconds, or 30 s. */
int connect_timeout_ms(void);
#define DESTROY_DEVICE_GRACE_MS 10000 /* libxl's LIBXL_DESTROY_TIMEOUT */
/* Where create keeps a copy of a driver domain's config: <state-dir>/configs/<name>.cfg. */
void config_kept_path(const char *name, char *buf, size_t size);

/* cmd_restart.c */
int cmd_restart(int argc, char **argv);

/* cmd_tcb.c */
int cmd_tcb(int argc, char **argv);

#endif
