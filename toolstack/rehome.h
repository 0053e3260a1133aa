/*
 * rehome.h - moving the devices a driver domain served to its successor
 * (bulkhead restart, cmd_restart.c).  The pure part: from the toolstack's
 * trusted copy of a device (/libxl/<fe>/device/<kind>/<devid>), what the
 * new backend directory holds, what the broker must be told again, and how
 * the permissions of the frontend's directory change.  No store, no
 * hypervisor: check_rehome tests it alone.
 *
 * A restarted driver domain gets a new domain id, so every path and
 * permission that named the old one is rewritten to name the new one:
 *   /local/domain/<new>/backend/<bkind>/<fe>/<devid>   written from the copy
 *       (state Initialising, online 1, the copy's keys), owned by <new>,
 *       readable by <fe>, as libxl writes a new device;
 *   <frontend dir>/backend, backend-id                  the new path and id;
 *   <frontend dir>/mtu (a vif)     owned by <new> again (xenstored removed
 *       it with the old domain, which owned it);
 *   the frontend's subtree         readable by <new> (rehome_perms);
 *   /libxl/<fe>/device/<kind>/<devid>/backend            the new path;
 *   /local/domain/<old>/backend/<bkind>/<fe>/<devid>     removed.
 * All of it in one transaction, so that a frontend watching its own
 * `backend` node finds the new backend directory there when it looks.
 */
#ifndef BULKHEAD_REHOME_H
#define BULKHEAD_REHOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bhxenbus.h"
#include "vifspec.h"

/* One key of the trusted copy. */
struct rehome_key {
    const char *key;
    const char *value;
};

/* One device moving from backend domain old_be to new_be. */
struct rehome_dev {
    char kind[40];         /* the frontend's: "vbd", "vif" */
    char backend_kind[40]; /* "vbd", "qdisk", "vbd3", "vif" */
    uint32_t frontend, devid, old_be, new_be;
    struct bhxb_paths old_paths, new_paths; /* frontend and libxl are the same in both */
};

/*
 * Fills d for the device whose copy, kind and devid are given and whose
 * copy names backend (its `backend` key).  Returns 1 when that backend is
 * a directory of domain old_be for this very device (the device moves), 0
 * when it is another domain's (it stays), -1 with a one-line reason in err
 * when the path is not libxl's for this device (a copy the toolstack did
 * not write: left alone, and said).
 */
int rehome_dev_init(struct rehome_dev *d, const char *kind, uint32_t frontend, uint32_t devid,
                    const char *backend, uint32_t old_be, uint32_t new_be, char *err,
                    size_t errlen);

/*
 * The new backend directory, the frontend's backend and backend-id (and a
 * vif's mtu) and the copy's backend link, as a layout (bhxb_layout_new for the new domain,
 * with the copy's keys on the backend side).  The caller writes only these
 * nodes: rehome_node_written says which.  NULL with errno.
 */
struct bhxb_layout *rehome_layout(const struct rehome_dev *d, const struct rehome_key *keys,
                                  size_t nkeys);

/*
 * Whether the layout's node at path is one restart writes: everything
 * under the new backend directory, the frontend's backend and backend-id
 * (and a vif's mtu, which the backend owns) and the copy's backend link; not the frontend's state or its other keys,
 * which the frontend owns and keeps.
 */
bool rehome_node_written(const struct rehome_dev *d, const char *path);

/*
 * The permissions of one node of the frontend's subtree, handed to the new
 * backend: entries naming old_be name new_be, and a node the frontend owns
 * that gives new_be nothing gets read for it (xenstored strips a dead
 * domain's entries from every ACL, as Xen's does since XSA-322, so the old
 * backend's read may be gone already).  in has n entries, out room for
 * n + 1.  Returns out's count; *changed says whether it differs from in.
 */
unsigned int rehome_perms(const struct xs_permissions *in, unsigned int n, uint32_t frontend,
                          uint32_t old_be, uint32_t new_be, struct xs_permissions *out,
                          bool *changed);

/* What the broker is told of a disk served by a driver domain (hvc_brk_disk). */
struct rehome_disk {
    char path[4096]; /* the target, or (nbd) dom0's NBD server's socket */
    bool readonly, nbd;
    bool empty; /* an empty cdrom drive: nothing to register */
};

/*
 * From the copy's keys: params (the target, "<fmt>:" in front unless
 * type is phy), mode ("r": read-only), bulkhead-nbd (a socket: the disk
 * goes through dom0's NBD server).  0, or -1 with a reason in err.
 */
int rehome_disk_reg(const struct rehome_key *keys, size_t nkeys, struct rehome_disk *out,
                    char *err, size_t errlen);

/* What the broker is told of a vif (hvc_brk_vif_more, hvc_brk_bridge). */
struct rehome_vif {
    uint8_t mac[6];
    unsigned int mtu; /* 1500 when the copy says none */
    char bridge[16];  /* "" when none, or routed */
    char vifname[16]; /* "" when none */
    bool routed;      /* script vif-route */
    char gatewaydev[16];                /* routed: "" for the new backend's uplink bridge */
    uint32_t ip4[VIFSPEC_ROUTED_MAX];   /* routed: the copy's ip, network order */
    unsigned int nip4;
};

/*
 * From the copy's mac, mtu, bridge, vifname, script, ip and gatewaydev
 * keys, checked as bulkhead create checks a vif spec.  0, or -1 with a
 * reason in err.
 */
int rehome_vif_reg(const struct rehome_key *keys, size_t nkeys, struct rehome_vif *out,
                   char *err, size_t errlen);

/* The copy's value for key, or NULL. */
const char *rehome_key_find(const struct rehome_key *keys, size_t nkeys, const char *key);

#endif
