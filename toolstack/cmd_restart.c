/*
 * cmd_restart.c - bulkhead restart: a driver domain destroyed and built
 * again from the config it was created from (kept by create in the state
 * directory), and every guest device it served re-homed to the new domain.
 *
 * The order, as a frontend watching its own nodes can follow it:
 *   1. every device the domain serves is found through the toolstack's
 *      trusted copies (/libxl/<fe>/device/<kind>/<devid>/backend);
 *   2. their backends are told to close (online 0, Closing) and given a
 *      grace to reach Closed: the frontends follow to Closed, and what was
 *      in flight waits in them to be reissued;
 *   3. the domain is destroyed as `bulkhead destroy` does, then created
 *      again from the kept config: it gets a new id;
 *   4. the broker is told of every device again, with the new backend
 *      (a disk's target, a vif's bridge and interface);
 *   5. one transaction writes every new backend directory (state
 *      Initialising, as libxl writes a device), hands the frontends'
 *      directories to the new domain (their permissions), points each
 *      frontend's backend and backend-id at it, updates the copies and
 *      removes what is left of the old backend directories;
 *   6. restart waits, as create does, until every device is Connected.
 * A frontend sees its backend closing, then its `backend` node rewritten
 * with the new directory already there: it reconnects to it (Closed ->
 * Initialising -> Connected).  dom0's devices and those of other driver
 * domains are not touched: only copies naming this domain's backends move.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <xenstore.h>

#include "devices.h"
#include "rehome.h"
#include "toolstack.h"
#include "xlcfg.h"
#include "xsdom.h"

/* One device on the move, with its trusted copy's keys. */
struct moving {
    struct rehome_dev d;
    char **names, **values; /* the copy's keys */
    struct rehome_key *keys;
    size_t nkeys;
    struct bhxb_layout *layout; /* once the new domain is known */
};

struct movers {
    struct moving *m;
    size_t n;
};

static void movers_free(struct movers *mv)
{
    for (size_t i = 0; i < mv->n; i++) {
        struct moving *m = &mv->m[i];
        for (size_t k = 0; k < m->nkeys; k++) {
            free(m->names[k]);
            free(m->values[k]);
        }
        free(m->names);
        free(m->values);
        free(m->keys);
        bhxb_layout_free(m->layout);
    }
    free(mv->m);
}

/* The copy's keys (one level: the copy holds no subdirectory). */
static int read_copy(struct xs_handle *xs, const char *dir, struct moving *m)
{
    unsigned int n = 0;
    char **ents = xs_directory(xs, XBT_NULL, dir, &n);

    if (ents == NULL)
        return -1;
    m->names = calloc(n + 1, sizeof(*m->names));
    m->values = calloc(n + 1, sizeof(*m->values));
    m->keys = calloc(n + 1, sizeof(*m->keys));
    if (m->names == NULL || m->values == NULL || m->keys == NULL) {
        free(ents);
        return -1;
    }
    for (unsigned int i = 0; i < n; i++) {
        char path[BHXB_PATH_MAX * 2];
        unsigned int len;
        char *v;
        snprintf(path, sizeof(path), "%s/%s", dir, ents[i]);
        if ((v = xs_read(xs, XBT_NULL, path, &len)) == NULL)
            continue;
        if ((m->names[m->nkeys] = strdup(ents[i])) == NULL) {
            free(v);
            break;
        }
        m->values[m->nkeys] = v;
        m->keys[m->nkeys] = (struct rehome_key){m->names[m->nkeys], v};
        m->nkeys++;
    }
    free(ents);
    return 0;
}

/* Every guest device whose trusted copy names a backend of domain old. */
static int find_devices(struct xs_handle *xs, uint16_t old, struct movers *mv)
{
    static const char *const kinds[] = {"vbd", "vif"};
    unsigned int nd = 0;
    char **doms = xs_directory(xs, XBT_NULL, "/libxl", &nd);

    for (unsigned int i = 0; doms != NULL && i < nd; i++) {
        uint64_t fe;
        if (bhxb_parse_u64(doms[i], strlen(doms[i]), 1, HVW_DOMID_MAX, &fe) != 0 || fe == old)
            continue;
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
            char dir[96], **devs;
            unsigned int n = 0;
            snprintf(dir, sizeof(dir), "/libxl/%u/device/%s", (unsigned int)fe, kinds[k]);
            if ((devs = xs_directory(xs, XBT_NULL, dir, &n)) == NULL)
                continue;
            for (unsigned int j = 0; j < n; j++) {
                char ldir[BHXB_PATH_MAX], path[BHXB_PATH_MAX + 16], err[512], *be;
                struct moving m = {0}, *grown;
                unsigned int len;
                uint64_t devid;
                int r;
                if (bhxb_parse_u64(devs[j], strlen(devs[j]), 0, UINT32_MAX, &devid) != 0)
                    continue;
                snprintf(ldir, sizeof(ldir), "%s/%s", dir, devs[j]);
                snprintf(path, sizeof(path), "%s/backend", ldir);
                if ((be = xs_read(xs, XBT_NULL, path, &len)) == NULL)
                    continue;
                r = rehome_dev_init(&m.d, kinds[k], (uint32_t)fe, (uint32_t)devid, be, old, 0,
                                    err, sizeof(err));
                free(be);
                if (r < 0)
                    errorf("%s", err);
                if (r != 1)
                    continue;
                if ((grown = realloc(mv->m, (mv->n + 1) * sizeof(*grown))) == NULL ||
                    (mv->m = grown, read_copy(xs, ldir, &m) != 0)) {
                    free(doms);
                    free(devs);
                    errorf("cannot read %s: %s", ldir, strerror(errno ? errno : ENOMEM));
                    return -1;
                }
                mv->m[mv->n++] = m;
            }
            free(devs);
        }
    }
    free(doms);
    return 0;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/*
 * Step 2: the old backends close, as at a destroy, so that the frontends
 * take back what was in flight.  Returns how many did not close in time
 * (the frontends then learn of the move from their backend node alone).
 */
static int close_old(struct xs_handle *xs, const struct movers *mv, int timeout_ms)
{
    long deadline = now_ms() + timeout_ms;
    int left = 0;

    for (size_t i = 0; i < mv->n; i++)
        devices_tell_backend(xs, mv->m[i].d.old_paths.backend);
    for (size_t i = 0; i < mv->n; i++) {
        for (;;) {
            int s = bhxb_read_state(xs, mv->m[i].d.old_paths.backend);
            struct timespec ts = {0, 20 * 1000000};
            if (s == XenbusStateClosed || s == XenbusStateUnknown || s == BHXB_PEER_INVALID ||
                s == -2)
                break;
            if (now_ms() >= deadline) {
                left++;
                break;
            }
            nanosleep(&ts, NULL);
        }
    }
    return left;
}

/* Step 4: the broker hears of each device again, now served by domain nb. */
static int register_again(struct hvc *h, struct xs_handle *xs, uint16_t nb,
                          const struct movers *mv, char *err, size_t errlen)
{
    /* A routed vif without gatewaydev= routes through the new domain's uplink bridge. */
    char path[64], uplink[16] = "";
    unsigned int len = 0;
    char *up;

    snprintf(path, sizeof(path), "/libxl/%u/bulkhead/uplink", nb);
    if ((up = xs_read(xs, XBT_NULL, path, &len)) != NULL && len > 0 && len < sizeof(uplink))
        memcpy(uplink, up, len);
    free(up);
    for (size_t i = 0; i < mv->n; i++) {
        const struct moving *m = &mv->m[i];
        char why[512], real[PATH_MAX];
        struct hvw_dominfo fi;
        int rc = 0;

        if (strcmp(m->d.kind, "vbd") == 0) {
            struct rehome_disk dk;
            if (rehome_disk_reg(m->keys, m->nkeys, &dk, why, sizeof(why)) != 0) {
                snprintf(err, errlen, "vbd %u of domain %u: %s", m->d.devid, m->d.frontend, why);
                return -1;
            }
            if (!dk.empty)
                rc = hvc_brk_disk(h, nb, (uint16_t)m->d.frontend, m->d.devid,
                                  (dk.nbd ? HVW_BRK_NBD : 0) | (dk.readonly ? HVW_BRK_RO : 0),
                                  !dk.nbd && realpath(dk.path, real) != NULL ? real : dk.path);
        } else {
            struct rehome_vif v;
            char id[16];
            unsigned int queues;
            if (rehome_vif_reg(m->keys, m->nkeys, &v, why, sizeof(why)) != 0) {
                snprintf(err, errlen, "vif %u of domain %u: %s", m->d.devid, m->d.frontend, why);
                return -1;
            }
            /* As create: a TAP queue per vcpu of the guest, 1 to 8. */
            snprintf(id, sizeof(id), "%u", m->d.frontend);
            queues = hvc_find_domain(h, id, &fi) == 0 ? fi.vcpus : 1;
            queues = queues < 1 ? 1 : queues > 8 ? 8 : queues;
            struct hvc_vif_more x = {.vifname = v.vifname, .routed = v.routed,
                                     .gatewaydev = v.gatewaydev[0] ? v.gatewaydev : uplink,
                                     .ip = v.ip4, .nip = v.nip4};
            if (v.routed && x.gatewaydev[0] == '\0') {
                snprintf(err, errlen, "vif %u of domain %u is routed and the new driver domain "
                         "has no bulkhead_uplink: give the vif gatewaydev=", m->d.devid,
                         m->d.frontend);
                return -1;
            }
            rc = v.bridge[0] ? hvc_brk_bridge(h, nb, v.bridge, 0) : 0;
            if (rc == 0)
                rc = hvc_brk_vif_more(h, nb, (uint16_t)m->d.frontend, m->d.devid, queues, v.mtu,
                                      v.mac, v.bridge, &x);
        }
        if (rc != 0) {
            snprintf(err, errlen, "%s %u of domain %u: the broker refused it: %s (see %s/hv.log)",
                     m->d.kind, m->d.devid, m->d.frontend, strerror(rc > 0 ? rc : errno),
                     state_dir);
            return -1;
        }
    }
    return 0;
}

/* Every node under dir (dir too) readable by the new backend (rehome_perms). */
static bool reperm_tree(struct xs_handle *xs, xs_transaction_t t, const struct rehome_dev *d,
                        const char *dir, int depth)
{
    unsigned int np = 0, n = 0, nn;
    struct xs_permissions *p = xs_get_permissions(xs, t, dir, &np), *q;
    bool ok = true, changed;
    char **ents;

    if (p == NULL)
        return errno == ENOENT;
    if ((q = calloc(np + 1, sizeof(*q))) == NULL) {
        free(p);
        return false;
    }
    nn = rehome_perms(p, np, d->frontend, d->old_be, d->new_be, q, &changed);
    if (changed)
        ok = xs_set_permissions(xs, t, dir, q, nn);
    free(p);
    free(q);
    if (!ok || depth > 8 || (ents = xs_directory(xs, t, dir, &n)) == NULL)
        return ok;
    for (unsigned int i = 0; ok && i < n; i++) {
        char child[XENSTORE_ABS_PATH_MAX + 1];
        if ((size_t)snprintf(child, sizeof(child), "%s/%s", dir, ents[i]) < sizeof(child))
            ok = reperm_tree(xs, t, d, child, depth + 1);
    }
    free(ents);
    return ok;
}

/* The nodes whose permissions write_moves sets: the new backend's, a vif's mtu. */
static bool sets_perms(const struct rehome_dev *d, const char *path)
{
    size_t n = strlen(d->new_paths.backend);

    return (strncmp(path, d->new_paths.backend, n) == 0 && (path[n] == '\0' || path[n] == '/')) ||
           (strcmp(d->kind, "vif") == 0 && strncmp(path, d->new_paths.frontend,
                                                   strlen(d->new_paths.frontend)) == 0 &&
            strcmp(path + strlen(d->new_paths.frontend), "/mtu") == 0);
}

/* Step 5, for every device, in one transaction (retried while it races). */
static int write_moves(struct xs_handle *xs, const struct movers *mv, char *err, size_t errlen)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        xs_transaction_t t = xs_transaction_start(xs);
        bool ok = t != XBT_NULL;

        for (size_t i = 0; ok && i < mv->n; i++) {
            const struct moving *m = &mv->m[i];
            const struct bhxb_layout *l = m->layout;
            unsigned int len;
            char *v = NULL;
            ok = xs_rm(xs, t, m->d.old_paths.backend) || errno == ENOENT;
            /* A guest being destroyed meanwhile: its device goes with it, nothing to point. */
            if (ok && (v = xs_read(xs, t, m->d.new_paths.frontend, &len)) == NULL) {
                ok = errno == ENOENT;
                continue;
            }
            free(v);
            for (size_t k = 0; ok && k < l->n; k++) {
                const struct bhxb_node *nd = &l->nodes[k];
                if (!rehome_node_written(&m->d, nd->path))
                    continue;
                /* The links keep their nodes' permissions; the rest gets the layout's. */
                ok = xs_write(xs, t, nd->path, nd->value, (unsigned int)strlen(nd->value)) &&
                     (!sets_perms(&m->d, nd->path) ||
                      xs_set_permissions(xs, t, nd->path, (struct xs_permissions *)nd->perms,
                                         nd->nperms));
            }
            ok = ok && reperm_tree(xs, t, &m->d, m->d.new_paths.frontend, 0);
        }
        if (!ok) {
            int e = errno;
            if (t != XBT_NULL)
                xs_transaction_end(xs, t, true);
            snprintf(err, errlen, "cannot move the devices in XenStore: %s", strerror(e));
            return -1;
        }
        if (xs_transaction_end(xs, t, false))
            return 0;
        if (errno != EAGAIN)
            break;
    }
    snprintf(err, errlen, "cannot move the devices in XenStore: %s", strerror(errno));
    return -1;
}

/* Step 6: what create waits for, over the moved devices. */
static int wait_moved(struct xs_handle *xs, const struct movers *mv, const char *name, char *err,
                      size_t errlen)
{
    struct devplan p = {.devs = calloc(mv->n + 1, sizeof(*p.devs)), .n = mv->n};
    int rc;

    if (p.devs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < mv->n; i++) {
        const struct moving *m = &mv->m[i];
        struct devplan_dev *d = &p.devs[i];
        const char *dev = rehome_key_find(m->keys, m->nkeys, "dev");
        const char *mac = rehome_key_find(m->keys, m->nkeys, "mac");
        d->kind = strcmp(m->d.kind, "vif") == 0 ? DEVPLAN_VIF : DEVPLAN_DISK;
        d->devid = m->d.devid;
        d->backend_domid = m->d.new_be;
        snprintf(d->backend_name, sizeof(d->backend_name), "%s", name);
        snprintf(d->backend_kind, sizeof(d->backend_kind), "%s", m->d.backend_kind);
        snprintf(d->vdev, sizeof(d->vdev), "%s", dev ? dev : "?");
        snprintf(d->mac, sizeof(d->mac), "%s", mac ? mac : "?");
        d->layout = m->layout;
    }
    rc = devices_wait(xs, &p, connect_timeout_ms(), err, errlen);
    free(p.devs);
    return rc;
}

/* The domain to restart: a running driver domain with a kept config. */
static int check_target(struct hvc *h, const char *which, struct hvw_dominfo *info, char *cfgpath,
                        size_t size)
{
    struct xlcfg cfg;
    char err[1024];
    struct stat st;
    int rc;

    if ((rc = hvc_find_domain(h, which, info)) != 0) {
        errorf("no domain %s: see 'bulkhead list'", which);
        return -1;
    }
    info->name[sizeof(info->name) - 1] = '\0';
    if (info->domid == 0) {
        errorf("dom0 cannot be restarted: restart rebuilds driver domains; use 'bulkhead down' "
               "and 'bulkhead up' for the whole simulation");
        return -1;
    }
    if (!(info->flags & HVW_DOM_DRIVER)) {
        errorf("%s is a guest, not a driver domain: restart rebuilds driver domains only "
               "(destroy and create a guest)", which);
        return -1;
    }
    config_kept_path(info->name, cfgpath, size);
    if (stat(cfgpath, &st) != 0) {
        errorf("%s: no kept config at %s (%s): destroy it and create it again with this "
               "bulkhead, which keeps one", which, cfgpath, strerror(errno));
        return -1;
    }
    /* Read now, before anything is destroyed: a config that no longer parses changes nothing. */
    if (xlcfg_read(&cfg, cfgpath, NULL, 0, err, sizeof(err)) != 0) {
        errorf("%s (the copy of %s's config kept at create)", err, which);
        return -1;
    }
    rc = cfg.driver_domain && strcmp(cfg.name, info->name) == 0 ? 0 : -1;
    if (rc != 0)
        errorf("%s: names %s%s, not driver domain %s: remove it and create %s again", cfgpath,
               cfg.name, cfg.driver_domain ? "" : " (no driver_domain)", info->name, info->name);
    xlcfg_free(&cfg);
    return rc;
}

int cmd_restart(int argc, char **argv)
{
    struct movers mv = {0};
    struct hvw_dominfo info, ni;
    struct xs_handle *xs = NULL;
    char cfgpath[4200], name[HVW_NAME_MAX], err[2048] = "";
    char *cargv[] = {"create", cfgpath, NULL}, *dargv[] = {"destroy", name, NULL};
    struct hvc h;
    int rc = 1, stuck;

    if (argc != 2) {
        errorf("usage: bulkhead restart NAME|ID");
        return 2;
    }
    if (hvc_open(&h, false) != 0)
        return 1;
    if (check_target(&h, argv[1], &info, cfgpath, sizeof(cfgpath)) != 0 ||
        (xs = xsdom_open(false)) == NULL || find_devices(xs, info.domid, &mv) != 0)
        goto out;
    snprintf(name, sizeof(name), "%s", info.name);
    if ((stuck = close_old(xs, &mv, DESTROY_DEVICE_GRACE_MS)) > 0)
        fprintf(stderr, "bulkhead: %s: %d backend%s did not close within %d s; moved anyway\n",
                name, stuck, stuck == 1 ? "" : "s", DESTROY_DEVICE_GRACE_MS / 1000);
    if (cmd_destroy(2, dargv) != 0)
        goto out;
    if (cmd_create(2, cargv) != 0) {
        errorf("%s was destroyed but not created again: its guests' %zu device%s wait for it; "
               "fix the cause above and run 'bulkhead create %s', then move them by hand",
               name, mv.n, mv.n == 1 ? "" : "s", cfgpath);
        goto out;
    }
    if (hvc_find_domain(&h, name, &ni) != 0) {
        errorf("%s is gone again right after its create: see %s/console/%s.log", name, state_dir,
               name);
        goto out;
    }
    for (size_t i = 0; i < mv.n; i++) {
        struct moving *m = &mv.m[i];
        struct rehome_dev was = m->d; /* rehome_dev_init starts from a blank d */
        char e2[512];
        if (rehome_dev_init(&m->d, was.kind, was.frontend, was.devid, was.old_paths.backend,
                            info.domid, ni.domid, e2, sizeof(e2)) != 1 ||
            (m->layout = rehome_layout(&m->d, m->keys, m->nkeys)) == NULL) {
            errorf("cannot plan the move of %s %u of domain %u: %s", m->d.kind, m->d.devid,
                   m->d.frontend, strerror(errno));
            goto out;
        }
    }
    if (register_again(&h, xs, ni.domid, &mv, err, sizeof(err)) != 0 ||
        write_moves(xs, &mv, err, sizeof(err)) != 0) {
        errorf("%s: %s", name, err);
        goto out;
    }
    for (size_t i = 0; i < mv.n; i++)
        devices_rm_empty_parents(xs, mv.m[i].d.old_paths.backend);
    if (mv.n > 0 && wait_moved(xs, &mv, name, err, sizeof(err)) != 0) {
        errorf("%s: %s (the backends' side is in %s/console/%s.log)", name, err, state_dir, name);
        goto out;
    }
    printf("Restarted driver domain %s (id %u, was %u), %zu device%s re-homed\n", name,
           ni.domid, info.domid, mv.n, mv.n == 1 ? "" : "s");
    rc = 0;
out:
    movers_free(&mv);
    if (xs != NULL)
        xs_close(xs);
    hvc_close(&h);
    return rc;
}
