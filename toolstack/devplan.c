/*
 * devplan.c - see devplan.h.  The keys and their order of appearance follow
 * libxl 4.17: libxl_disk.c device_disk_add, libxl_nic.c
 * libxl__set_xenstore_nic, and libxl_device.c libxl__device_generic_add
 * (the generic part is bhxb_layout_new's).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "devplan.h"
#include "vifspec.h"

#define SCRIPT_DIR  "/etc/xen/scripts" /* libxl__xen_script_dir_path() on Debian */
#define PV_PROTOCOL "x86_64-abi"       /* XEN_IO_PROTO_ABI_X86_64: a 64-bit PV guest's */

/* ---- where a path leads ---- */

/*
 * path normalized, its longest existing prefix resolved by realpath, the
 * rest appended.  -1 with errno: EINVAL (relative), ENAMETOOLONG, ELOOP
 * (an existing prefix that does not resolve: a dangling symlink, a loop).
 */
static int resolve_path(const char *path, char *out, size_t size)
{
    char norm[PATH_MAX], prefix[PATH_MAX], real[PATH_MAX];
    size_t cut;
    struct stat st;

    if (xlcfg_normalize_path(path, norm, sizeof(norm)) != 0)
        return -1;
    cut = strlen(norm);
    for (;;) {
        memcpy(prefix, norm, cut);
        prefix[cut] = '\0';
        if (cut == 0)
            snprintf(prefix, sizeof(prefix), "/");
        if (realpath(prefix, real) != NULL)
            break;
        if (lstat(prefix, &st) == 0) {
            errno = ELOOP; /* it is there, and leads nowhere */
            return -1;
        }
        while (cut > 0 && norm[--cut] != '/')
            ;
    }
    if (snprintf(prefix, sizeof(prefix), "%s%s", real, norm + cut) >= (int)sizeof(prefix)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return xlcfg_normalize_path(prefix, out, size);
}

static bool below(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    if (strcmp(dir, "/") == 0)
        return path[0] == '/' && path[1] != '\0';
    return strncmp(path, dir, n) == 0 && path[n] == '/' && path[n + 1] != '\0';
}

int devplan_storage_check(const char *target, const char *backend, const char *const *storage,
                          size_t nstorage, char *err, size_t errlen)
{
    char t[PATH_MAX], d[PATH_MAX], list[512] = "";
    size_t off = 0;

    if (resolve_path(target, t, sizeof(t)) != 0) {
        snprintf(err, errlen,
                 errno == ELOOP ? "target %s is a symlink that leads nowhere: point it at the "
                                  "image, or name the image itself"
                                : "target %s is not an absolute path of reasonable length: "
                                  "write it from /",
                 target);
        xlcfg_one_line(err);
        return -1;
    }
    for (size_t i = 0; i < nstorage; i++) {
        if (resolve_path(storage[i], d, sizeof(d)) == 0 && below(t, d))
            return 0;
        if (off < sizeof(list))
            off +=
                (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", storage[i]);
    }
    snprintf(err, errlen,
             "target %s%s%s is outside %s's storage (%s): move the image there, or add its "
             "directory to bulkhead_storage in %s's config",
             target, strcmp(t, target) ? ", that is " : "", strcmp(t, target) ? t : "", backend,
             nstorage ? list : "none", backend);
    xlcfg_one_line(err);
    return -1;
}

/* ---- backends ---- */

static bool is_dom0_name(const char *name)
{
    return name[0] == '\0' || strcmp(name, "Domain-0") == 0;
}

/* The backend domain of one device; storage is set to NULL for dom0. */
static int backend_of(const char *name, const struct devplan_opts *o, struct devplan_backend *b,
                      char *err, size_t errlen)
{
    memset(b, 0, sizeof(*b));
    if (is_dom0_name(name))
        return 0;
    if (o->resolve == NULL) {
        snprintf(err, errlen, "no domain %s: create it first", name);
        return -1;
    }
    if (o->resolve(o->arg, name, b, err, errlen) != 0)
        return -1;
    if (b->domid == o->domid) {
        snprintf(err, errlen,
                 "backend %s is the new domain itself: name a driver domain or "
                 "leave backend= out",
                 name);
        return -1;
    }
    return 0;
}

/* libxl__abs_path(script, libxl__xen_script_dir_path()) */
static int set_script(struct bhxb_layout *l, const char *script, const char *dflt)
{
    const char *s = script[0] ? script : dflt;

    if (s[0] == '/')
        return bhxb_layout_set(l, BHXB_BACK, "script", "%s", s);
    return bhxb_layout_set(l, BHXB_BACK, "script", "%s/%s", SCRIPT_DIR, s);
}

/* ---- disks ---- */

static const char *const disk_type[] = {
    [DISKSPEC_BE_PHY] = "phy", [DISKSPEC_BE_QDISK] = "qdisk", [DISKSPEC_BE_TAP] = "vbd3"};
static const char *const disk_kind[] = {
    [DISKSPEC_BE_PHY] = "vbd", [DISKSPEC_BE_QDISK] = "qdisk", [DISKSPEC_BE_TAP] = "vbd3"};

/* The keys of device_disk_add, in its order; the generic ones are the layout's own. */
static int disk_keys(struct bhxb_layout *l, const struct diskspec *s, enum diskspec_backend be,
                     bool trusted)
{
    const char *fmt = diskspec_format_prefix(s->format);
    const char *devtype = s->cdrom ? "cdrom" : "disk";
    bool discard = s->discard >= 0 ? s->discard : s->readwrite;
    int r = 0;

    if (be == DISKSPEC_BE_PHY) {
        r |= bhxb_layout_set(l, BHXB_BACK, "params", "%s", s->target);
        r |= set_script(l, s->script, "block");
    } else {
        r |= bhxb_layout_set(l, BHXB_BACK, "params", "%s:%s", fmt, s->target);
        if (be == DISKSPEC_BE_TAP)
            r |= set_script(l, s->script, "block-tap");
    }
    r |= bhxb_layout_set(l, BHXB_BACK, "removable", "%d", s->removable);
    r |= bhxb_layout_set(l, BHXB_BACK, "bootable", "1");
    r |= bhxb_layout_set(l, BHXB_BACK, "dev", "%s", s->vdev);
    r |= bhxb_layout_set(l, BHXB_BACK, "type", "%s", disk_type[be]);
    r |= bhxb_layout_set(l, BHXB_BACK, "mode", "%s", s->readwrite ? "w" : "r");
    r |= bhxb_layout_set(l, BHXB_BACK, "device-type", "%s", devtype);
    if (s->direct_io_safe)
        r |= bhxb_layout_set(l, BHXB_BACK, "direct-io-safe", "1");
    r |= bhxb_layout_set(l, BHXB_BACK, "discard-enable", "%d", discard);
    r |= bhxb_layout_set(l, BHXB_BACK, "specification", "xen");

    r |= bhxb_layout_set(l, BHXB_FRONT, "device-type", "%s", devtype);
    r |= bhxb_layout_set(l, BHXB_FRONT, "trusted", "%d", trusted);
    r |= bhxb_layout_set(l, BHXB_FRONT, "protocol", PV_PROTOCOL);
    return r ? -1 : 0;
}

static int plan_disk(struct devplan_dev *dv, const char *spec, const char *file,
                     const struct devplan_opts *o, char *err, size_t errlen)
{
    struct diskspec s;
    struct devplan_backend b;
    enum diskspec_backend be;
    char why[768];

    if (diskspec_parse(file, spec, &s, err, errlen) != 0)
        return -1;
    if (backend_of(s.backend_name, o, &b, why, sizeof(why)) != 0 ||
        diskspec_backend(&s, b.domid == 0, &be, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s: disk %s: %s", file, s.vdev, why);
        return -1;
    }
    if (b.domid != 0 && b.storage != NULL && s.format != DISKSPEC_EMPTY) {
        if (devplan_storage_check(s.target, s.backend_name, b.storage, b.nstorage, why,
                                  sizeof(why)) != 0) {
            snprintf(err, errlen, "%s: disk %s: %s", file, s.vdev, why);
            return -1;
        }
        dv->storage_checked = true;
    }
    dv->kind = DEVPLAN_DISK;
    dv->devid = (uint32_t)s.devid;
    dv->backend_domid = b.domid;
    snprintf(dv->backend_name, sizeof(dv->backend_name), "%s",
             is_dom0_name(s.backend_name) ? "Domain-0" : s.backend_name);
    snprintf(dv->backend_kind, sizeof(dv->backend_kind), "%s", disk_kind[be]);
    snprintf(dv->vdev, sizeof(dv->vdev), "%s", s.vdev);
    snprintf(dv->target, sizeof(dv->target), "%s", s.target);
    dv->format = s.format;
    dv->readwrite = s.readwrite;
    dv->cdrom = s.cdrom;
    dv->trusted = s.trusted >= 0 ? s.trusted : b.domid == 0;

    struct bhxb_dev d = {.kind = "vbd",
                         .backend_kind = dv->backend_kind,
                         .domid = o->domid,
                         .backend_domid = b.domid,
                         .devid = dv->devid};
    if ((dv->layout = bhxb_layout_new(&d)) == NULL ||
        disk_keys(dv->layout, &s, be, dv->trusted) != 0) {
        snprintf(err, errlen, "%s: disk %s: cannot lay it out: %s", file, s.vdev, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- vifs ---- */

/* The keys of libxl__set_xenstore_nic, in its order. */
static int vif_keys(struct bhxb_layout *l, const struct vifspec *v, const char *mac, bool trusted)
{
    int r = 0;

    r |= set_script(l, v->script, "vif-bridge");
    if (v->vifname[0])
        r |= bhxb_layout_set(l, BHXB_BACK, "vifname", "%s", v->vifname);
    r |= bhxb_layout_set(l, BHXB_BACK, "mac", "%s", mac);
    if (v->ip[0])
        r |= bhxb_layout_set(l, BHXB_BACK, "ip", "%s", v->ip);
    if (v->gatewaydev[0])
        r |= bhxb_layout_set(l, BHXB_BACK, "gatewaydev", "%s", v->gatewaydev);
    if (v->has_rate)
        r |= bhxb_layout_set(l, BHXB_BACK, "rate", "%llu,%u", (unsigned long long)v->rate_bytes,
                             v->rate_usecs);
    if (v->mtu != VIFSPEC_MTU_DEFAULT)
        r |= bhxb_layout_set(l, BHXB_BACK, "mtu", "%u", v->mtu);
    r |= bhxb_layout_set(l, BHXB_BACK, "bridge", "%s", v->bridge[0] ? v->bridge : "xenbr0");
    r |= bhxb_layout_set(l, BHXB_BACK, "type", "vif");
    r |= bhxb_layout_set(l, BHXB_FRONT, "mac", "%s", mac);
    r |= bhxb_layout_set(l, BHXB_FRONT_RO, "mtu", "%u", v->mtu);
    /* The backend waits for its hotplug script; bulkhead-drvdom, which runs none, writes it. */
    r |= bhxb_layout_set(l, BHXB_BACK, "hotplug-status", "%s", "");
    r |= bhxb_layout_set(l, BHXB_FRONT, "trusted", "%d", trusted);
    return r ? -1 : 0;
}

/* What vif-route needs of the spec, beyond its ip= (vifspec_routed_ips). */
static int routed_spec(const struct vifspec *v, struct devplan_dev *dv, char *err, size_t errlen)
{
    if (v->bridge[0]) {
        snprintf(err, errlen,
                 "bridge=%s with script=vif-route: a routed vif is on no bridge; remove bridge= "
                 "(or use script=vif-bridge)",
                 v->bridge);
        return -1;
    }
    return vifspec_routed_ips(v->ip, dv->ip4, &dv->nip4, err, errlen);
}

static int plan_vif(struct devplan_dev *dv, const char *spec, unsigned int index, const char *name,
                    const char *file, const struct devplan_opts *o, char *err, size_t errlen)
{
    struct vifspec v;
    struct devplan_backend b;
    uint8_t mac[6];
    char why[768];

    if (vifspec_parse(spec, &v, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s: vif %u: %s", file, index, why);
        return -1;
    }
    if (backend_of(v.backend, o, &b, why, sizeof(why)) != 0 ||
        vifspec_script(v.script, &dv->routed, why, sizeof(why)) != 0 ||
        (dv->routed && routed_spec(&v, dv, why, sizeof(why)) != 0)) {
        snprintf(err, errlen, "%s: vif %u: %s", file, index, why);
        return -1;
    }
    if (v.has_mac)
        memcpy(mac, v.mac, sizeof(mac));
    else if (vifspec_default_mac(name, index, o->stable_macs, mac) != 0) {
        snprintf(err, errlen, "%s: vif %u: no random mac: %s", file, index, strerror(errno));
        return -1;
    }
    dv->kind = DEVPLAN_VIF;
    dv->devid = v.devid >= 0 ? (uint32_t)v.devid : index;
    dv->backend_domid = b.domid;
    snprintf(dv->backend_name, sizeof(dv->backend_name), "%s",
             is_dom0_name(v.backend) ? "Domain-0" : v.backend);
    snprintf(dv->backend_kind, sizeof(dv->backend_kind), "vif");
    vifspec_format_mac(mac, dv->mac);
    /* A routed vif keeps libxl's bridge key (vif-route ignores it) but is put on no bridge. */
    snprintf(dv->bridge, sizeof(dv->bridge), "%s",
             dv->routed ? "" : v.bridge[0] ? v.bridge : "xenbr0");
    snprintf(dv->vifname, sizeof(dv->vifname), "%s", v.vifname);
    snprintf(dv->gatewaydev, sizeof(dv->gatewaydev), "%s", v.gatewaydev);
    dv->trusted = v.trusted >= 0 ? v.trusted : b.domid == 0;

    struct bhxb_dev d = {
        .kind = "vif", .domid = o->domid, .backend_domid = b.domid, .devid = dv->devid};
    if ((dv->layout = bhxb_layout_new(&d)) == NULL ||
        vif_keys(dv->layout, &v, dv->mac, dv->trusted) != 0) {
        snprintf(err, errlen, "%s: vif %u: cannot lay it out: %s", file, index, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- the plan ---- */

static int check_duplicates(const struct devplan *p, const char *file, char *err, size_t errlen)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct devplan_dev *a = &p->devs[i];
        for (size_t j = 0; j < i; j++) {
            const struct devplan_dev *b = &p->devs[j];
            if (a->kind != b->kind)
                continue;
            if (a->kind == DEVPLAN_DISK && a->devid == b->devid) {
                snprintf(err, errlen,
                         "%s: disks %s and %s are the same device (%u): give each "
                         "disk its own vdev",
                         file, b->vdev, a->vdev, a->devid);
                return -1;
            }
            if (a->kind == DEVPLAN_VIF && a->devid == b->devid) {
                snprintf(err, errlen,
                         "%s: vifs %u and %u both have devid %u: give each its own "
                         "devid=",
                         file, b->index, a->index, a->devid);
                return -1;
            }
            if (a->kind == DEVPLAN_VIF && a->vifname[0] && strcmp(a->vifname, b->vifname) == 0) {
                snprintf(err, errlen,
                         "%s: vifs %u and %u both have vifname %s: give each its own "
                         "vifname= (or leave it out)",
                         file, b->index, a->index, a->vifname);
                return -1;
            }
            if (a->kind == DEVPLAN_VIF && strcmp(a->mac, b->mac) == 0) {
                snprintf(err, errlen,
                         "%s: vifs %u and %u both have mac %s: give each its own "
                         "mac= (or leave it out)",
                         file, b->index, a->index, a->mac);
                return -1;
            }
        }
    }
    return 0;
}

int devplan_build(const struct xlcfg *cfg, const char *file, const struct devplan_opts *o,
                  struct devplan **out, char *err, size_t errlen)
{
    struct devplan *p;
    size_t total = cfg->ndisks + cfg->nvifs;

    *out = NULL;
    if (o->domid == 0) {
        snprintf(err, errlen, "%s: dom0 gets no devices from a config: give the new domain's id",
                 file);
        return -1;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL ||
        (total && (p->devs = calloc(total, sizeof(*p->devs))) == NULL)) {
        free(p);
        snprintf(err, errlen, "%s: out of memory", file);
        return -1;
    }
    /* p->n counts each device before it is planned: one that fails may hold a layout. */
    for (size_t i = 0; i < cfg->ndisks; i++) {
        p->devs[p->n++].index = (unsigned int)i;
        if (plan_disk(&p->devs[p->n - 1], cfg->disks[i], file, o, err, errlen) != 0)
            goto fail;
    }
    for (size_t i = 0; i < cfg->nvifs; i++) {
        p->devs[p->n++].index = (unsigned int)i;
        if (plan_vif(&p->devs[p->n - 1], cfg->vifs[i], (unsigned int)i, cfg->name, file, o, err,
                     errlen) != 0)
            goto fail;
    }
    if (check_duplicates(p, file, err, errlen) != 0)
        goto fail;
    for (size_t i = 0; i < p->n; i++)
        bhxb_layout_sort(p->devs[i].layout);
    *out = p;
    return 0;
fail:
    devplan_free(p);
    xlcfg_one_line(err);
    return -1;
}

void devplan_free(struct devplan *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        bhxb_layout_free(p->devs[i].layout);
    free(p->devs);
    free(p);
}

/* ---- JSON ---- */

/* A JSON string.  Bytes of invalid UTF-8 go out as \u00XX: JSON has no byte strings. */
static void json_string(FILE *f, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;

    fputc('"', f);
    while (*u) {
        size_t len = *u < 0x80             ? 1
                     : (*u & 0xe0) == 0xc0 ? 2
                     : (*u & 0xf0) == 0xe0 ? 3
                     : (*u & 0xf8) == 0xf0 ? 4
                                           : 0;
        bool valid = len > 0;
        for (size_t i = 1; valid && i < len; i++)
            valid = (u[i] & 0xc0) == 0x80;
        if (*u == '"' || *u == '\\')
            fprintf(f, "\\%c", *u);
        else if (*u < 0x20 || *u == 0x7f || !valid)
            fprintf(f, "\\u%04x", *u);
        else {
            fwrite(u, 1, len, f);
            u += len;
            continue;
        }
        u++;
    }
    fputc('"', f);
}

static int by_path(const void *a, const void *b)
{
    return strcmp((*(const struct bhxb_node *const *)a)->path,
                  (*(const struct bhxb_node *const *)b)->path);
}

int devplan_json(const struct devplan *p, FILE *f)
{
    const struct bhxb_node **all;
    size_t n = 0, k = 0;
    char perms[64];

    for (size_t i = 0; i < p->n; i++)
        n += p->devs[i].layout->n;
    if ((all = calloc(n ? n : 1, sizeof(*all))) == NULL)
        return -1;
    for (size_t i = 0; i < p->n; i++)
        for (size_t j = 0; j < p->devs[i].layout->n; j++)
            all[k++] = &p->devs[i].layout->nodes[j];
    qsort(all, n, sizeof(*all), by_path);
    fputs("[\n", f);
    for (size_t i = 0; i < n; i++) {
        if (bhxb_perms_format(all[i]->perms, all[i]->nperms, perms, sizeof(perms)) < 0) {
            free(all);
            return -1;
        }
        fputs("{\"path\": ", f);
        json_string(f, all[i]->path);
        fputs(", \"value\": ", f);
        json_string(f, all[i]->value);
        fprintf(f, ", \"perms\": \"%s\"}%s\n", perms, i + 1 < n ? "," : "");
    }
    fputs("]\n", f);
    free(all);
    return ferror(f) ? -1 : 0;
}
