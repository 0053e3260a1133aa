/*
 * devices.c - a domain's devices at create and destroy, as libxl does them,
 * plus what the simulation needs around them.
 *
 * A driver domain, when created, gets from dom0 what its config asks for:
 * its storage directories registered with the broker (bulkhead-hv), and,
 * with bulkhead_uplink, that bridge made in its network namespace and
 * joined by a veth to dom0's.  Its config's simulation keys are kept under
 * /libxl/<domid>/bulkhead (dom0's only), where later creates read them:
 *
 *   /libxl/<domid>/bulkhead/storage/<n>   a bulkhead_storage directory
 *   /libxl/<domid>/bulkhead/uplink        the bridge joined to dom0
 *
 * A guest's devices are planned (devplan.c), registered with the broker
 * (a disk's target and a vif's bridge, queues, mtu and mac, for the
 * backend domain to ask for as fds), the vifs' bridges made in the backend
 * domain's namespace, and every layout written in one transaction; then
 * create waits until every device is Connected on both sides.  A disk that
 * is not raw gets dom0's qemu-nbd first (nbdserve.c), registered as an NBD
 * server, its socket named in the backend key bulkhead-nbd.
 *
 * Removal follows libxl's: the backend is told (online 0, state Closing),
 * given a grace to close, then the three directories go.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include "devices.h"
#include "toolstack.h"
#include "vifspec.h"

#define UPLINK_IFNAME "uplink" /* the driver domain's end of its uplink veth */

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- driver domains ---- */

/* dom0's end of a driver domain's uplink: "up-<name>", cut to an interface name. */
void devices_uplink_peer_name(const char *domname, char *buf, size_t size)
{
    snprintf(buf, size < 16 ? size : 16, "up-%.12s", domname);
    for (char *p = buf; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            *p = '_';
}

int devices_driver_domain(struct hvc *h, struct xs_handle *xs, uint16_t domid,
                          const struct xlcfg *cfg, char *err, size_t errlen)
{
    char path[128], netns[600], peer[16];
    xs_transaction_t t;
    int rc;

    /* The broker takes real paths only: what a symlink points at today is what is given. */
    char (*real)[PATH_MAX] = cfg->nstorage ? calloc(cfg->nstorage, sizeof(*real)) : NULL;
    const char **dirs = cfg->nstorage ? calloc(cfg->nstorage, sizeof(*dirs)) : NULL;

    if (cfg->nstorage > 0 && (real == NULL || dirs == NULL)) {
        snprintf(err, errlen, "out of memory");
        free(real);
        free(dirs);
        return -1;
    }
    for (size_t i = 0; i < cfg->nstorage; i++) {
        if (realpath(cfg->storage[i], real[i]) == NULL) {
            snprintf(err, errlen, "bulkhead_storage %s: %s: create it (mkdir -p %s)",
                     cfg->storage[i], strerror(errno), cfg->storage[i]);
            free(real);
            free(dirs);
            return -1;
        }
        dirs[i] = real[i];
    }
    rc = cfg->nstorage > 0 ? hvc_brk_storage(h, domid, dirs, (unsigned int)cfg->nstorage) : 0;
    free(dirs);
    if (rc != 0) {
        snprintf(err, errlen, "cannot give %s its bulkhead_storage: %s (see %s/hv.log)",
                 cfg->name, strerror(rc > 0 ? rc : errno), state_dir);
        free(real);
        return -1;
    }
    if (cfg->uplink[0] != '\0') {
        dom0_netns_path(netns, sizeof(netns));
        devices_uplink_peer_name(cfg->name, peer, sizeof(peer));
        if ((rc = hvc_brk_bridge_addr(h, domid, cfg->uplink, 0, cfg->uplink_addr,
                                      cfg->uplink_prefix)) != 0 ||
            (rc = hvc_brk_uplink(h, domid, cfg->uplink, UPLINK_IFNAME, peer, netns, 0)) != 0) {
            snprintf(err, errlen,
                     "cannot join %s's bridge %s to dom0's network (%s): %s (see %s/hv.log)",
                     cfg->name, cfg->uplink, peer, strerror(rc > 0 ? rc : errno), state_dir);
            free(real);
            return -1;
        }
    }
    for (int attempt = 0; attempt < 16; attempt++) {
        bool ok = true;
        if ((t = xs_transaction_start(xs)) == XBT_NULL)
            break;
        for (size_t i = 0; ok && i < cfg->nstorage; i++) {
            snprintf(path, sizeof(path), "/libxl/%u/bulkhead/storage/%zu", domid, i);
            ok = xs_write(xs, t, path, real[i], (unsigned int)strlen(real[i]));
        }
        snprintf(path, sizeof(path), "/libxl/%u/bulkhead/uplink", domid);
        ok = ok && xs_write(xs, t, path, cfg->uplink, (unsigned int)strlen(cfg->uplink));
        if (!ok) {
            xs_transaction_end(xs, t, true);
            break;
        }
        if (xs_transaction_end(xs, t, false)) {
            free(real);
            return 0;
        }
        if (errno != EAGAIN)
            break;
    }
    snprintf(err, errlen, "cannot record %s's storage in XenStore: %s", cfg->name,
             strerror(errno));
    free(real);
    return -1;
}

/* ---- resolving backends of a running simulation ---- */

static void storage_free(struct devices_resolver *r)
{
    for (size_t i = 0; i < r->nstorage; i++)
        free(r->storage[i]);
    free(r->storage);
    r->storage = NULL;
    r->nstorage = 0;
}

int devices_resolve(void *arg, const char *name, struct devplan_backend *out, char *err,
                    size_t errlen)
{
    struct devices_resolver *r = arg;
    struct hvw_dominfo info;
    char path[128];
    char **ents;
    unsigned int n = 0;

    if (hvc_find_domain(r->h, name, &info) != 0) {
        snprintf(err, errlen, "no domain %s: create the driver domain first (see bulkhead list)",
                 name);
        return -1;
    }
    if (!(info.flags & HVW_DOM_DRIVER)) {
        snprintf(err, errlen, "%s is not a driver domain: give backend= a domain made with "
                 "driver_domain = 1", name);
        return -1;
    }
    storage_free(r);
    snprintf(path, sizeof(path), "/libxl/%u/bulkhead/storage", info.domid);
    ents = xs_directory(r->xs, XBT_NULL, path, &n);
    if (ents != NULL && (r->storage = calloc(n + 1, sizeof(*r->storage))) != NULL) {
        for (unsigned int i = 0; i < n; i++) {
            char p[160];
            unsigned int len;
            snprintf(p, sizeof(p), "%s/%s", path, ents[i]);
            if ((r->storage[r->nstorage] = xs_read(r->xs, XBT_NULL, p, &len)) != NULL)
                r->nstorage++;
        }
    }
    free(ents);
    out->domid = info.domid;
    /* A driver domain without bulkhead_storage owns no storage: nothing of it may be served. */
    out->storage = r->storage != NULL ? (const char *const *)r->storage : (const char *const[]){NULL};
    out->nstorage = r->nstorage;
    return 0;
}

void devices_resolver_fini(struct devices_resolver *r)
{
    storage_free(r);
}

/* ---- attach ---- */

static unsigned int layout_uint(const struct bhxb_layout *l, const char *dir, const char *key,
                                unsigned int dflt)
{
    char path[BHXB_PATH_MAX + 32];
    const struct bhxb_node *nd;

    snprintf(path, sizeof(path), "%s/%s", dir, key);
    nd = bhxb_layout_find(l, path);
    return nd != NULL ? (unsigned int)strtoul(nd->value, NULL, 10) : dflt;
}

/*
 * A routed vif's gatewaydev: the one its spec names, else the bridge its
 * backend's bulkhead_uplink joins to dom0 (/libxl/<domid>/bulkhead/uplink),
 * as vif-route's default is the host's own uplink.  0, or -1 with err.
 */
static int routed_gatewaydev(struct xs_handle *xs, const struct devplan_dev *d, char *gw,
                             size_t size, char *err, size_t errlen)
{
    char path[64];
    unsigned int len = 0;
    char *v;

    if (d->gatewaydev[0] != '\0') {
        snprintf(gw, size, "%s", d->gatewaydev);
        return 0;
    }
    snprintf(path, sizeof(path), "/libxl/%u/bulkhead/uplink", d->backend_domid);
    v = d->backend_domid != 0 ? xs_read(xs, XBT_NULL, path, &len) : NULL;
    if (v == NULL || len == 0 || len >= size) {
        snprintf(err, errlen,
                 "vif %u is routed (script=vif-route) and %s has no bulkhead_uplink to route "
                 "through: name the link with the guest's network in gatewaydev=",
                 d->devid, d->backend_name);
        free(v);
        return -1;
    }
    snprintf(gw, size, "%s", v);
    free(v);
    return 0;
}

int devices_attach(struct hvc *h, struct xs_handle *xs, uint16_t domid, const struct devplan *p,
                   unsigned int queues, char *err, size_t errlen)
{
    const struct bhxb_layout **ls = calloc(p->n + 1, sizeof(*ls));
    int rc;

    if (ls == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < p->n; i++) {
        const struct devplan_dev *d = &p->devs[i];
        ls[i] = d->layout;
        if (d->kind == DEVPLAN_DISK && d->target[0] != '\0' && nbdserve_format(d->format)) {
            char sock[108];
            if (nbdserve_start(domid, d, err, errlen) != 0) {
                free(ls);
                return -1;
            }
            if (nbdserve_socket(domid, d->devid, sock, sizeof(sock)) != 0 ||
                bhxb_layout_set(d->layout, BHXB_BACK, "bulkhead-nbd", "%s", sock) != 0) {
                snprintf(err, errlen, "%s: cannot name its NBD server: %s", d->vdev,
                         strerror(errno));
                free(ls);
                return -1;
            }
            /* dom0's blkback connects to it; a driver domain gets it through the broker. */
            rc = d->backend_domid == 0
                     ? 0
                     : hvc_brk_disk(h, (uint16_t)d->backend_domid, domid, d->devid,
                                    HVW_BRK_NBD | (d->readwrite ? 0 : HVW_BRK_RO), sock);
        } else if (d->backend_domid == 0 && d->kind == DEVPLAN_DISK) {
            continue; /* dom0 opens its disks with its own rights */
        } else if (d->kind == DEVPLAN_DISK) {
            if (d->target[0] == '\0')
                continue; /* an empty cdrom drive */
            /* The broker compares real paths with the storage's (registered real too). */
            char real[PATH_MAX];
            rc = hvc_brk_disk(h, (uint16_t)d->backend_domid, domid, d->devid,
                              d->readwrite ? 0 : HVW_BRK_RO,
                              realpath(d->target, real) != NULL ? real : d->target);
        } else {
            uint8_t mac[6];
            unsigned int mtu = layout_uint(d->layout, d->layout->paths.backend, "mtu", 1500);
            if (vifspec_parse_mac(d->mac, mac, err, errlen) != 0) {
                free(ls);
                return -1;
            }
            struct hvc_vif_more x = {.vifname = d->vifname, .routed = d->routed,
                                     .ip = d->ip4, .nip = d->nip4};
            char gw[16];
            if (d->routed) {
                if (routed_gatewaydev(xs, d, gw, sizeof(gw), err, errlen) != 0) {
                    free(ls);
                    return -1;
                }
                x.gatewaydev = gw;
            }
            /* dom0's bridges are dom0's to make, in its own namespace (not the broker's). */
            rc = d->bridge[0] == '\0' || d->backend_domid == 0
                     ? 0
                     : hvc_brk_bridge(h, (uint16_t)d->backend_domid, d->bridge, 0);
            if (rc == 0)
                rc = hvc_brk_vif_more(h, (uint16_t)d->backend_domid, domid, d->devid, queues, mtu,
                                      mac, d->bridge, &x);
        }
        if (rc != 0) {
            snprintf(err, errlen, "%s: cannot hand %s its %s: %s (see %s/hv.log)",
                     d->kind == DEVPLAN_DISK ? d->vdev : d->mac, d->backend_name,
                     d->kind == DEVPLAN_DISK ? "target" : "interface",
                     strerror(rc > 0 ? rc : errno), state_dir);
            free(ls);
            return -1;
        }
    }
    rc = bhxb_layouts_write(xs, ls, p->n);
    free(ls);
    if (rc != 0) {
        snprintf(err, errlen, "cannot write the devices to XenStore: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int devices_check_targets(const struct devplan *p, const char *file, char *err, size_t errlen)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct devplan_dev *d = &p->devs[i];
        if (d->kind != DEVPLAN_DISK || d->target[0] == '\0')
            continue;
        if (access(d->target, d->readwrite ? R_OK | W_OK : R_OK) != 0) {
            snprintf(err, errlen, "%s: disk %s: target %s: %s: create the image (e.g. truncate "
                     "-s 1G %s) or correct target=", file, d->vdev, d->target, strerror(errno),
                     d->target);
            return -1;
        }
    }
    return 0;
}

/* ---- waiting for Connected ---- */

static void dev_name(const struct devplan_dev *d, char *buf, size_t size)
{
    if (d->kind == DEVPLAN_DISK)
        snprintf(buf, size, "%s (%s %u, backend %s)", d->vdev, d->backend_kind, d->devid,
                 d->backend_name);
    else
        snprintf(buf, size, "vif %u (%s, backend %s)", d->devid, d->mac, d->backend_name);
}

static void on_state(void *arg, const char *path)
{
    (void)path;
    *(bool *)arg = true;
}

int devices_wait(struct xs_handle *xs, const struct devplan *p, int timeout_ms, char *err,
                 size_t errlen)
{
    bhxb_watches *w = bhxb_watches_new(xs);
    long deadline = now_ms() + timeout_ms;
    bool changed = true;
    int rc = -1;

    if (w == NULL) {
        snprintf(err, errlen, "cannot watch the devices: %s", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < p->n; i++) {
        char path[BHXB_PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s/state", p->devs[i].layout->paths.frontend);
        if (bhxb_watch_add(w, path, on_state, &changed) < 0)
            goto out;
        snprintf(path, sizeof(path), "%s/state", p->devs[i].layout->paths.backend);
        if (bhxb_watch_add(w, path, on_state, &changed) < 0)
            goto out;
    }
    for (;;) {
        size_t connected = 0;
        long left = deadline - now_ms();
        struct pollfd pf = {.fd = bhxb_watches_fd(w), .events = POLLIN};

        if (changed) {
            changed = false;
            for (size_t i = 0; i < p->n; i++) {
                const struct devplan_dev *d = &p->devs[i];
                int fe = bhxb_read_state(xs, d->layout->paths.frontend);
                int be = bhxb_read_state(xs, d->layout->paths.backend);
                char ebuf[200], name[160];
                if (fe == XenbusStateConnected && be == XenbusStateConnected) {
                    connected++;
                    continue;
                }
                if (bhxb_read_error(xs, d->layout->paths.backend, ebuf, sizeof(ebuf)) == 0 ||
                    bhxb_read_error(xs, d->layout->paths.frontend, ebuf, sizeof(ebuf)) == 0) {
                    dev_name(d, name, sizeof(name));
                    snprintf(err, errlen, "%s failed: %s (frontend %s, backend %s)", name, ebuf,
                             bhxb_state_name(fe), bhxb_state_name(be));
                    goto out;
                }
            }
            if (connected == p->n) {
                rc = 0;
                goto out;
            }
        }
        if (left <= 0)
            break;
        if (poll(&pf, 1, (int)left) > 0)
            bhxb_watches_dispatch(w);
    }
    /* Timed out: name every device that is not there yet, with its states. */
    {
        size_t off = (size_t)snprintf(err, errlen, "not Connected after %d s:", timeout_ms / 1000);
        for (size_t i = 0; i < p->n && off < errlen; i++) {
            const struct devplan_dev *d = &p->devs[i];
            int fe = bhxb_read_state(xs, d->layout->paths.frontend);
            int be = bhxb_read_state(xs, d->layout->paths.backend);
            char name[160];
            if (fe == XenbusStateConnected && be == XenbusStateConnected)
                continue;
            dev_name(d, name, sizeof(name));
            off += (size_t)snprintf(err + off, errlen - off, " %s: frontend %s, backend %s;", name,
                                    bhxb_state_name(fe), bhxb_state_name(be));
        }
        if (off < errlen && off > 0 && err[off - 1] == ';')
            err[off - 1] = '\0';
    }
out:
    if (rc != 0 && err[0] == '\0')
        snprintf(err, errlen, "cannot watch the devices: %s", strerror(errno));
    bhxb_watches_free(w);
    return rc;
}

/* ---- removal ---- */

/* The backend path of one device, from the toolstack's copy (never the guest's word). */
static int trusted_backend(struct xs_handle *xs, const char *libxl_dir, char *buf, size_t size)
{
    char path[BHXB_PATH_MAX + 16];
    unsigned int len;
    char *v;
    int rc;

    snprintf(path, sizeof(path), "%s/backend", libxl_dir);
    if ((v = xs_read(xs, XBT_NULL, path, &len)) == NULL)
        return -1;
    rc = bhxb_parse_str(v, len, buf, size);
    free(v);
    return rc;
}

/* online 0 and Closing, in one transaction, on a backend that is still there. */
void devices_tell_backend(struct xs_handle *xs, const char *be)
{
    char path[BHXB_PATH_MAX + 16];

    for (int attempt = 0; attempt < 16; attempt++) {
        xs_transaction_t t = xs_transaction_start(xs);
        unsigned int len;
        char *v;
        if (t == XBT_NULL)
            return;
        snprintf(path, sizeof(path), "%s/state", be);
        if ((v = xs_read(xs, t, path, &len)) == NULL) { /* gone already */
            xs_transaction_end(xs, t, true);
            return;
        }
        free(v);
        xs_write(xs, t, path, "5", 1);
        snprintf(path, sizeof(path), "%s/online", be);
        xs_write(xs, t, path, "0", 1);
        if (xs_transaction_end(xs, t, false) || errno != EAGAIN)
            return;
    }
}

/* As libxl__xs_path_cleanup: the parents a device left empty go too, up to .../backend. */
void devices_rm_empty_parents(struct xs_handle *xs, const char *path)
{
    char p[BHXB_PATH_MAX];
    char *slash;

    snprintf(p, sizeof(p), "%s", path);
    while ((slash = strrchr(p, '/')) != NULL && slash != p) {
        unsigned int n = 1;
        char **ents;
        *slash = '\0';
        if (strlen(p) >= 8 && strcmp(p + strlen(p) - 8, "/backend") == 0)
            return;
        ents = xs_directory(xs, XBT_NULL, p, &n);
        free(ents);
        if (ents == NULL || n != 0 || !xs_rm(xs, XBT_NULL, p))
            return;
    }
}

/* Waits up to deadline for backend be to be Closed (or gone); false if it was not. */
static bool wait_closed(struct xs_handle *xs, const char *be, long deadline)
{
    for (;;) {
        int s = bhxb_read_state(xs, be);
        if (s == XenbusStateClosed || s == XenbusStateUnknown || s == BHXB_PEER_INVALID || s == -2)
            return true;
        if (now_ms() >= deadline)
            return false;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
}

int devices_remove_one(struct xs_handle *xs, uint16_t domid, const char *kind, uint32_t devid,
                       int timeout_ms)
{
    char ldir[BHXB_PATH_MAX], be[BHXB_PATH_MAX], fe[BHXB_PATH_MAX];
    bool closed;

    snprintf(ldir, sizeof(ldir), "/libxl/%u/device/%s/%u", domid, kind, devid);
    if (trusted_backend(xs, ldir, be, sizeof(be)) != 0) {
        errno = ENOENT;
        return -1;
    }
    /* As libxl's device removal: the backend is told, and closes with its frontend. */
    devices_tell_backend(xs, be);
    closed = wait_closed(xs, be, now_ms() + timeout_ms);
    xs_rm(xs, XBT_NULL, be);
    devices_rm_empty_parents(xs, be);
    snprintf(fe, sizeof(fe), "/local/domain/%u/device/%s/%u", domid, kind, devid);
    xs_rm(xs, XBT_NULL, fe);
    xs_rm(xs, XBT_NULL, ldir);
    if (strcmp(kind, "vbd") == 0)
        nbdserve_stop(domid, devid);
    return closed ? 0 : 1;
}

int devices_remove(struct xs_handle *xs, uint16_t domid, int timeout_ms)
{
    static const char *const kinds[] = {"vbd", "vif"};
    char (*backs)[BHXB_PATH_MAX] = NULL;
    size_t nb = 0, cap = 0;
    long deadline;
    int left = 0;

    /* Every device's backend is told at once; then they get one grace together. */
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        char dir[64];
        unsigned int n = 0;
        char **ents;
        snprintf(dir, sizeof(dir), "/libxl/%u/device/%s", domid, kinds[k]);
        if ((ents = xs_directory(xs, XBT_NULL, dir, &n)) == NULL)
            continue;
        for (unsigned int i = 0; i < n; i++) {
            char ldir[BHXB_PATH_MAX];
            snprintf(ldir, sizeof(ldir), "%s/%s", dir, ents[i]);
            if (nb == cap) {
                void *nbk = realloc(backs, (cap = cap ? cap * 2 : 8) * sizeof(*backs));
                if (nbk == NULL)
                    break;
                backs = nbk;
            }
            if (trusted_backend(xs, ldir, backs[nb], sizeof(backs[nb])) == 0) {
                devices_tell_backend(xs, backs[nb]);
                nb++;
            }
        }
        free(ents);
    }
    deadline = now_ms() + timeout_ms;
    for (size_t i = 0; i < nb; i++) {
        if (!wait_closed(xs, backs[i], deadline))
            left++;
        xs_rm(xs, XBT_NULL, backs[i]);
        devices_rm_empty_parents(xs, backs[i]);
    }
    free(backs);
    {
        char path[64];
        snprintf(path, sizeof(path), "/local/domain/%u/device", domid);
        xs_rm(xs, XBT_NULL, path);
        snprintf(path, sizeof(path), "/libxl/%u/device", domid);
        xs_rm(xs, XBT_NULL, path);
    }
    /* The backends have closed (or were given up on): their NBD servers can go. */
    nbdserve_stop_all(domid);
    return left;
}
