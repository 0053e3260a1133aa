/*
 * devplan.h - a new domain's devices, planned from its xl config: for each
 * disk and vif, the XenStore nodes libxl 4.17 would write (paths, values,
 * permissions: a struct bhxb_layout), and a summary of the device.  Pure:
 * no hypervisor, no store; backend domains are named through a callback.
 * `bulkhead create -n` prints the plan as JSON; `bulkhead create` writes
 * each layout (bhxb_layout_write) and waits for the devices to connect.
 *
 * Rules on top of libxl's, deliberate:
 *   - trust: a frontend's `trusted` is "0" when its backend is not dom0
 *     and "1" when it is, unless the spec says trusted or untrusted (libxl
 *     writes "1" unless told otherwise);
 *   - a disk served by a driver domain must lie inside that domain's
 *     bulkhead_storage (devplan_storage_check), when its list is known;
 *   - two disks with the same device number, two vifs with the same devid
 *     or the same mac, a device served by the domain itself: refused;
 *   - a vif's script is vif-bridge (the default) or vif-route, by name or
 *     under /etc/xen/scripts, and nothing else (bulkhead-drvdom runs no
 *     scripts: it does what these two do); a routed vif needs ip=, IPv4
 *     host addresses (no /PREFIX but /32, no IPv6), and takes no bridge=.
 * See diskspec.h and vifspec.h for what each spec may say, and
 * docs/bulkhead.cfg.5 for the whole story.
 */
#ifndef BULKHEAD_DEVPLAN_H
#define BULKHEAD_DEVPLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bhxenbus.h"
#include "diskspec.h"
#include "vifspec.h"
#include "xlcfg.h"

/* What a resolver says of a backend domain. */
struct devplan_backend {
    uint32_t domid;
    /*
     * Its bulkhead_storage (absolute directories), or NULL when unknown:
     * then its disks' targets are not checked.  Valid until devplan_build
     * returns.
     */
    const char *const *storage;
    size_t nstorage;
};

/*
 * Resolves a backend domain by name (never "Domain-0" nor "": dom0 needs no
 * resolver).  Returns 0 with *out filled, or -1 with a one-line reason in
 * err that names the fix (e.g. "no domain drv: create it first").
 */
typedef int devplan_resolve_fn(void *arg, const char *name, struct devplan_backend *out, char *err,
                               size_t errlen);

struct devplan_opts {
    uint32_t domid;              /* the new domain's id: not 0 */
    devplan_resolve_fn *resolve; /* NULL: a backend= other than dom0 is refused */
    void *arg;
    bool stable_macs; /* default macs from the name and index (vifspec_default_mac) */
};

enum devplan_kind {
    DEVPLAN_DISK,
    DEVPLAN_VIF,
};

/* One device: what block-list / network-list show, and its layout. */
struct devplan_dev {
    enum devplan_kind kind;
    unsigned int index; /* in the config's disk or vif list */
    uint32_t devid;
    uint32_t backend_domid;
    char backend_name[64];            /* "Domain-0" for dom0 */
    char backend_kind[8];             /* "vbd", "qdisk", "vbd3" or "vif" */
    char vdev[32];                    /* disk: "xvda" */
    char target[DISKSPEC_TARGET_MAX]; /* disk: "" for an empty cdrom */
    enum diskspec_format format;      /* disk */
    bool readwrite, cdrom;            /* disk */
    char mac[18];                     /* vif: "00:16:3e:..." */
    char bridge[16];                  /* vif: "" when routed */
    bool routed;                      /* vif: script=vif-route */
    char vifname[16];                 /* vif: "" for vif<domid>.<devid> */
    char gatewaydev[16];              /* vif, routed: "" for the backend's uplink bridge */
    uint32_t ip4[VIFSPEC_ROUTED_MAX]; /* vif, routed: ip=, network order */
    unsigned int nip4;
    bool trusted;                     /* what the frontend's trusted says */
    bool storage_checked;             /* disk: checked against the backend's storage */
    struct bhxb_layout *layout;       /* its nodes; layout->paths: its three directories */
};

struct devplan {
    struct devplan_dev *devs; /* disks first, in config order, then vifs */
    size_t n;
};

/*
 * Plans every device of cfg (read from file, which names it in messages).
 * Returns 0 with *out (free with devplan_free), or -1 with a one-line
 * message in err naming the device and the fix.
 */
int devplan_build(const struct xlcfg *cfg, const char *file, const struct devplan_opts *o,
                  struct devplan **out, char *err, size_t errlen);

void devplan_free(struct devplan *p);

/*
 * Writes every node of every device as a JSON list, one object per line,
 * sorted by path: {"path": "...", "value": "...", "perms": "n5,r0"}, the
 * permissions as xenstore-ls -p prints them.  Returns 0, or -1 with errno.
 */
int devplan_json(const struct devplan *p, FILE *f);

/*
 * Whether target lies strictly below one of the storage directories of
 * the backend domain named backend.  Both sides are resolved the same way:
 * lexically normalized (no ".", "..", "//"), then the longest prefix that
 * exists is resolved with realpath (symlinks followed) and the rest kept;
 * so a target that does not exist yet is judged by where it would be.  A
 * target that exists but cannot be resolved (a dangling symlink, a loop)
 * is refused.  "/srv/ab/x" is not inside "/srv/a".  Returns 0, or -1 with
 * a one-line message in err naming the fix.
 */
int devplan_storage_check(const char *target, const char *backend, const char *const *storage,
                          size_t nstorage, char *err, size_t errlen);

#endif
