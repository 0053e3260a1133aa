/*
 * cmd_hotplug.c - block-attach, block-detach, network-attach,
 * network-detach: a running guest's devices, with xl's argument syntax
 * (xl(1)).  An attached device is planned, checked and written as create
 * does it for one device (devplan, devices_attach), and waited for until
 * both sides are Connected; the guest's runtime watches its device
 * directory and starts the frontend.  A detach is libxl's: the backend is
 * told (online 0, Closing), closes with its frontend, and the directories
 * go.  The guest's other devices are untouched throughout.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <xenstore.h>

#include "devices.h"
#include "devplan.h"
#include "toolstack.h"
#include "vifspec.h"
#include "xsdom.h"

#define DETACH_GRACE_MS 10000 /* libxl's LIBXL_DESTROY_TIMEOUT */

/* The running simulation and the guest named `which`. */
struct hp {
    struct hvc h;
    bool h_open;
    struct xs_handle *xs;
    struct hvw_dominfo info;
};

static void hp_close(struct hp *p)
{
    if (p->xs != NULL)
        xs_close(p->xs);
    if (p->h_open)
        hvc_close(&p->h);
}

static int hp_open(struct hp *p, const char *which)
{
    memset(p, 0, sizeof(*p));
    if (hvc_open(&p->h, false) != 0)
        return -1;
    p->h_open = true;
    if (hvc_find_domain(&p->h, which, &p->info) != 0) {
        errorf("no domain %s: see 'bulkhead list'", which);
        return -1;
    }
    if (p->info.domid == 0 || (p->info.flags & HVW_DOM_DRIVER)) {
        errorf("%s is %s: devices are attached to guests", which,
               p->info.domid == 0 ? "dom0" : "a driver domain");
        return -1;
    }
    if ((p->xs = xsdom_open(false)) == NULL)
        return -1;
    return 0;
}

/* xl joins the spec's arguments with commas: "format=raw" "vdev=xvdb" is one spec. */
static char *join(int argc, char **argv)
{
    size_t n = 0, off = 0;
    char *s;

    for (int i = 0; i < argc; i++)
        n += strlen(argv[i]) + 1;
    if (n == 0 || n > XLCFG_SPEC_MAX || (s = malloc(n)) == NULL)
        return NULL;
    for (int i = 0; i < argc; i++)
        off += (size_t)sprintf(s + off, "%s%s", i ? "," : "", argv[i]);
    return s;
}

/* The toolstack's copy of one of the guest's devices: /libxl/<domid>/device/<kind>/<devid>/<key>.
 */
static char *libxl_read(struct hp *p, const char *kind, const char *devid, const char *key)
{
    char path[400];
    unsigned int len;

    snprintf(path, sizeof(path), "/libxl/%u/device/%s/%s%s%s", p->info.domid, kind, devid,
             key ? "/" : "", key ? key : "");
    return xs_read(p->xs, XBT_NULL, path, &len);
}

/* The guest's devices of a kind, as the toolstack made them; NULL-safe to free. */
static char **libxl_list(struct hp *p, const char *kind, unsigned int *n)
{
    char path[64];

    snprintf(path, sizeof(path), "/libxl/%u/device/%s", p->info.domid, kind);
    *n = 0;
    return xs_directory(p->xs, XBT_NULL, path, n);
}

/*
 * What the new device would clash with on the running guest: the same
 * device number, or (a vif) the same mac.  0, or -1 with the refusal.
 */
static int clash(struct hp *p, const struct devplan_dev *d, const char *what, char *err,
                 size_t errlen)
{
    const char *kind = d->kind == DEVPLAN_DISK ? "vbd" : "vif";
    char id[16], *v;
    unsigned int n;
    char **ents;
    int rc = 0;

    snprintf(id, sizeof(id), "%u", d->devid);
    if ((v = libxl_read(p, kind, id, NULL)) != NULL) {
        free(v);
        if (d->kind == DEVPLAN_DISK)
            snprintf(err, errlen,
                     "%s: %s has a disk with the device number of %s (%u) already: "
                     "choose another vdev, or detach it first (bulkhead block-detach %s %s)",
                     what, p->info.name, d->vdev, d->devid, p->info.name, d->vdev);
        else
            snprintf(err, errlen,
                     "%s: %s has a vif %u already: give another devid=, or detach "
                     "it first (bulkhead network-detach %s %u)",
                     what, p->info.name, d->devid, p->info.name, d->devid);
        return -1;
    }
    if (d->kind != DEVPLAN_VIF)
        return 0;
    ents = libxl_list(p, "vif", &n);
    for (unsigned int i = 0; ents != NULL && i < n && rc == 0; i++) {
        if ((v = libxl_read(p, "vif", ents[i], "mac")) != NULL && strcmp(v, d->mac) == 0) {
            snprintf(err, errlen,
                     "%s: %s's vif %s has the mac %s already: give each its own "
                     "mac= (or leave it out)",
                     what, p->info.name, ents[i], d->mac);
            rc = -1;
        }
        free(v);
    }
    free(ents);
    return rc;
}

/* network-attach without devid=: the next after the highest in use, as libxl picks it. */
static unsigned int next_vif_devid(struct hp *p)
{
    unsigned int n, next = 0;
    char **ents = libxl_list(p, "vif", &n);

    for (unsigned int i = 0; ents != NULL && i < n; i++) {
        unsigned long v = strtoul(ents[i], NULL, 10);
        if (v + 1 > next && v < VIFSPEC_DEVID_MAX)
            next = (unsigned int)v + 1;
    }
    free(ents);
    return next;
}

/*
 * One device from spec (a disk or a vif, `what` names the command in
 * messages), checked entirely before anything is made; on a failure after
 * that, what was made is removed again.
 */
static int attach(struct hp *p, const char *what, bool disk, const char *spec)
{
    struct devices_resolver res = {.h = &p->h, .xs = p->xs};
    struct devplan_opts o = {.domid = p->info.domid, .resolve = devices_resolve, .arg = &res};
    struct devplan *plan = NULL;
    struct xlcfg cfg;
    char *list[2] = {(char *)spec, NULL}, err[2048] = "";
    unsigned int queues = p->info.vcpus < 1 ? 1 : p->info.vcpus > 8 ? 8 : p->info.vcpus;
    int rc = 1;

    memset(&cfg, 0, sizeof(cfg));
    snprintf(cfg.name, sizeof(cfg.name), "%s", p->info.name);
    cfg.vbd_persistent = -1;
    if (disk) {
        cfg.disks = list;
        cfg.ndisks = 1;
    } else {
        cfg.vifs = list;
        cfg.nvifs = 1;
    }
    if (devplan_build(&cfg, what, &o, &plan, err, sizeof(err)) != 0 ||
        clash(p, &plan->devs[0], what, err, sizeof(err)) != 0 ||
        devices_check_targets(plan, what, err, sizeof(err)) != 0)
        goto fail;
    if (devices_attach(&p->h, p->xs, p->info.domid, plan, queues, err, sizeof(err)) != 0 ||
        devices_wait(p->xs, plan, connect_timeout_ms(), err, sizeof(err)) != 0) {
        const struct devplan_dev *d = &plan->devs[0];
        char why[2048];
        snprintf(why, sizeof(why), "%s: %s: %s (the backends' side is in %s/console/)", what,
                 p->info.name, err, state_dir);
        snprintf(err, sizeof(err), "%s", why);
        /* Nothing is left: the device's nodes, its NBD server, its broker entry. */
        devices_remove_one(p->xs, p->info.domid, disk ? "vbd" : "vif", d->devid, 2000);
        if (disk)
            nbdserve_stop(p->info.domid, d->devid);
        hvc_brk_unreg(&p->h, disk ? HVW_BRK_KIND_DISK : HVW_BRK_KIND_VIF, p->info.domid, d->devid);
        goto fail;
    }
    rc = 0;
    goto out;
fail:
    errorf("%s", xlcfg_one_line(err));
out:
    devplan_free(plan);
    devices_resolver_fini(&res);
    return rc;
}

int cmd_block_attach(int argc, char **argv)
{
    struct hp p;
    char *spec;
    int rc = 1;

    if (argc < 3) {
        errorf("usage: bulkhead block-attach DOMAIN DISKSPEC... (xl-disk-configuration(5))");
        return 2;
    }
    if ((spec = join(argc - 2, argv + 2)) == NULL) {
        errorf("block-attach: the disk spec is longer than %d bytes", XLCFG_SPEC_MAX - 1);
        return 2;
    }
    if (hp_open(&p, argv[1]) == 0)
        rc = attach(&p, "block-attach", true, spec);
    hp_close(&p);
    free(spec);
    return rc;
}

int cmd_network_attach(int argc, char **argv)
{
    struct vifspec v;
    struct hp p;
    char *spec = NULL, why[768];
    int rc = 1;

    if (argc < 2) {
        errorf("usage: bulkhead network-attach DOMAIN [VIFSPEC]... (xl-network-configuration(5))");
        return 2;
    }
    if ((spec = join(argc - 2, argv + 2)) == NULL && argc > 2) {
        errorf("network-attach: the vif spec is longer than %d bytes", XLCFG_SPEC_MAX - 1);
        return 2;
    }
    if (hp_open(&p, argv[1]) != 0)
        goto out;
    if (vifspec_parse(spec ? spec : "", &v, why, sizeof(why)) != 0) {
        errorf("network-attach: %s", xlcfg_one_line(why));
        goto out;
    }
    if (v.devid < 0) {
        /* A vif's devid defaults to its place in the config's list; here, to the next free. */
        char *with = NULL;
        if (asprintf(&with, "%s%sdevid=%u", spec ? spec : "", spec ? "," : "", next_vif_devid(&p)) <
            0) {
            errorf("out of memory");
            goto out;
        }
        free(spec);
        spec = with;
    }
    rc = attach(&p, "network-attach", false, spec);
out:
    hp_close(&p);
    free(spec);
    return rc;
}

/* The common end of both detaches: libxl's removal, then the broker forgets the device. */
static int detach(struct hp *p, const char *kind, uint32_t devid, const char *name)
{
    char id[16], *be;
    int r;

    snprintf(id, sizeof(id), "%u", devid);
    be = libxl_read(p, kind, id, "backend");
    r = devices_remove_one(p->xs, p->info.domid, kind, devid, DETACH_GRACE_MS);
    /* dom0's own disks were never registered with the broker: ENOENT is expected then. */
    hvc_brk_unreg(&p->h, strcmp(kind, "vbd") == 0 ? HVW_BRK_KIND_DISK : HVW_BRK_KIND_VIF,
                  p->info.domid, devid);
    if (r == 1)
        errorf("%s: its backend (%s) did not close within %d s: its nodes are removed anyway "
               "(see %s/console/)",
               name, be ? be : "?", DETACH_GRACE_MS / 1000, state_dir);
    free(be);
    return r == 0 ? 0 : 1;
}

int cmd_block_detach(int argc, char **argv)
{
    struct hp p;
    int devid, rc = 1;
    char id[16], *v;

    if (argc != 3) {
        errorf("usage: bulkhead block-detach DOMAIN VDEV");
        return 2;
    }
    if ((devid = diskspec_devid(argv[2])) < 0) {
        errorf("block-detach: '%s' is no vdev: name the disk as block-list shows it (e.g. xvdb)",
               argv[2]);
        return 2;
    }
    if (hp_open(&p, argv[1]) == 0) {
        snprintf(id, sizeof(id), "%d", devid);
        if ((v = libxl_read(&p, "vbd", id, NULL)) == NULL)
            errorf("%s has no disk %s: see 'bulkhead block-list %s'", argv[1], argv[2], argv[1]);
        else
            rc = detach(&p, "vbd", (uint32_t)devid, argv[2]);
        free(v);
    }
    hp_close(&p);
    return rc;
}

int cmd_network_detach(int argc, char **argv)
{
    uint8_t mac[6];
    char want[18], why[256], **ents = NULL, *v;
    unsigned int n = 0;
    long devid = -1;
    struct hp p;
    int rc = 1;

    if (argc != 3) {
        errorf("usage: bulkhead network-detach DOMAIN MAC|DEVID");
        return 2;
    }
    if (strchr(argv[2], ':') == NULL) {
        char *end;
        errno = 0;
        devid = strtol(argv[2], &end, 10);
        if (errno || end == argv[2] || *end || devid < 0 || devid > VIFSPEC_DEVID_MAX) {
            errorf("network-detach: '%s' is neither a mac nor a devid (0 to %d): see "
                   "'bulkhead network-list'",
                   argv[2], VIFSPEC_DEVID_MAX);
            return 2;
        }
    } else if (vifspec_parse_mac(argv[2], mac, why, sizeof(why)) != 0) {
        errorf("network-detach: %s", xlcfg_one_line(why));
        return 2;
    } else {
        vifspec_format_mac(mac, want);
    }
    if (hp_open(&p, argv[1]) != 0)
        goto out;
    ents = libxl_list(&p, "vif", &n);
    for (unsigned int i = 0; ents != NULL && i < n && devid < 0; i++) {
        if ((v = libxl_read(&p, "vif", ents[i], "mac")) != NULL && strcasecmp(v, want) == 0)
            devid = strtol(ents[i], NULL, 10);
        free(v);
    }
    snprintf(why, sizeof(why), "%ld", devid);
    if (devid < 0 || (v = libxl_read(&p, "vif", why, NULL)) == NULL) {
        errorf("%s has no vif %s: see 'bulkhead network-list %s'", argv[1], argv[2], argv[1]);
        goto out;
    }
    free(v);
    rc = detach(&p, "vif", (uint32_t)devid, argv[2]);
out:
    free(ents);
    hp_close(&p);
    return rc;
}
