/*
 * rehome.c - the pure part of re-homing a driver domain's devices (see
 * rehome.h): paths, the new backend's layout, permissions, and what the
 * broker must hear again, all from the toolstack's trusted copy.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rehome.h"
#include "vifspec.h"

/* s cut to fit buf, anything but printable ASCII as '?': a message stays one line. */
static const char *shown(const char *s, char *buf, size_t size)
{
    size_t i = 0;

    for (; s[i] != '\0' && i + 1 < size; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    buf[i] = '\0';
    return buf;
}

const char *rehome_key_find(const struct rehome_key *keys, size_t nkeys, const char *key)
{
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].key != NULL && strcmp(keys[i].key, key) == 0)
            return keys[i].value;
    return NULL;
}

int rehome_dev_init(struct rehome_dev *d, const char *kind, uint32_t frontend, uint32_t devid,
                    const char *backend, uint32_t old_be, uint32_t new_be, char *err,
                    size_t errlen)
{
    char bkind[40], sb[160];
    unsigned int be, fe, id;
    int n = 0;

    memset(d, 0, sizeof(*d));
    if (sscanf(backend, "/local/domain/%u/backend/%39[a-z0-9-]/%u/%u%n", &be, bkind, &fe, &id,
               &n) != 4 ||
        backend[n] != '\0' || fe != frontend || id != devid) {
        snprintf(err, errlen, "/libxl/%u/device/%s/%u/backend is '%s', not libxl's path for this "
                 "device: left as it is", frontend, kind, devid, shown(backend, sb, sizeof(sb)));
        return -1;
    }
    snprintf(d->kind, sizeof(d->kind), "%s", kind);
    snprintf(d->backend_kind, sizeof(d->backend_kind), "%s", bkind);
    d->frontend = frontend;
    d->devid = devid;
    d->old_be = be;
    d->new_be = new_be;
    if (bhxb_dev_paths(&(struct bhxb_dev){d->kind, d->backend_kind, frontend, be, devid},
                       &d->old_paths) != 0 ||
        bhxb_dev_paths(&(struct bhxb_dev){d->kind, d->backend_kind, frontend, new_be, devid},
                       &d->new_paths) != 0) {
        snprintf(err, errlen, "device %s %u of domain %u: kind '%s' or '%s' is not one libxl "
                 "writes: left as it is", kind, devid, frontend, kind, bkind);
        return -1;
    }
    /* Canonical: "/local/domain/07/..." parses, but is not the path libxl wrote. */
    if (strcmp(d->old_paths.backend, backend) != 0) {
        snprintf(err, errlen, "/libxl/%u/device/%s/%u/backend is '%s', not libxl's path for this "
                 "device: left as it is", frontend, kind, devid, shown(backend, sb, sizeof(sb)));
        return -1;
    }
    return be == old_be ? 1 : 0;
}

/*
 * The copy's keys that are not carried over: the links (the layout makes
 * them anew) and the handshake's own keys, which a new backend starts
 * fresh (state Initialising, online 1, as libxl writes a new device).
 */
static bool key_carried(const char *key)
{
    static const char *const fresh[] = {"backend", "frontend", "frontend-id", "state", "online"};

    for (size_t i = 0; i < sizeof(fresh) / sizeof(fresh[0]); i++)
        if (strcmp(key, fresh[i]) == 0)
            return false;
    return key[0] != '\0' && strchr(key, '/') == NULL;
}

struct bhxb_layout *rehome_layout(const struct rehome_dev *d, const struct rehome_key *keys,
                                  size_t nkeys)
{
    struct bhxb_dev dev = {d->kind, d->backend_kind, d->frontend, d->new_be, d->devid};
    struct bhxb_layout *l = bhxb_layout_new(&dev);

    if (l == NULL)
        return NULL;
    for (size_t i = 0; i < nkeys; i++) {
        if (keys[i].key == NULL || keys[i].value == NULL || !key_carried(keys[i].key))
            continue;
        if (bhxb_layout_set(l, BHXB_BACK, keys[i].key, "%s", keys[i].value) != 0) {
            bhxb_layout_free(l);
            return NULL;
        }
    }
    /* A vif's mtu in the frontend's directory is the backend's (devplan.c): it owns it anew. */
    if (strcmp(d->kind, "vif") == 0) {
        const char *mtu = rehome_key_find(keys, nkeys, "mtu");
        if (bhxb_layout_set(l, BHXB_FRONT_RO, "mtu", "%s", mtu ? mtu : "1500") != 0) {
            bhxb_layout_free(l);
            return NULL;
        }
    }
    bhxb_layout_sort(l);
    return l;
}

static bool under(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

bool rehome_node_written(const struct rehome_dev *d, const char *path)
{
    char p[BHXB_PATH_MAX + 16];

    if (under(path, d->new_paths.backend))
        return true;
    snprintf(p, sizeof(p), "%s/backend", d->new_paths.frontend);
    if (strcmp(path, p) == 0)
        return true;
    snprintf(p, sizeof(p), "%s/backend-id", d->new_paths.frontend);
    if (strcmp(path, p) == 0)
        return true;
    snprintf(p, sizeof(p), "%s/mtu", d->new_paths.frontend);
    if (strcmp(d->kind, "vif") == 0 && strcmp(path, p) == 0)
        return true;
    snprintf(p, sizeof(p), "%s/backend", d->new_paths.libxl);
    return strcmp(path, p) == 0;
}

unsigned int rehome_perms(const struct xs_permissions *in, unsigned int n, uint32_t frontend,
                          uint32_t old_be, uint32_t new_be, struct xs_permissions *out,
                          bool *changed)
{
    bool reads = false;
    unsigned int m = 0;

    *changed = false;
    for (unsigned int i = 0; i < n; i++) {
        out[m] = in[i];
        if (out[m].id == old_be) {
            out[m].id = new_be;
            *changed = true;
        }
        /* One entry per domain: the old one's, renamed, may meet the new one's. */
        if (m > 0 && out[m].id == new_be && reads) {
            *changed = true;
            continue;
        }
        reads |= m > 0 && out[m].id == new_be;
        m++;
    }
    if (n > 0 && in[0].id == frontend && !reads && new_be != frontend) {
        out[m++] = (struct xs_permissions){new_be, XS_PERM_READ};
        *changed = true;
    }
    return m;
}

int rehome_disk_reg(const struct rehome_key *keys, size_t nkeys, struct rehome_disk *out,
                    char *err, size_t errlen)
{
    const char *params = rehome_key_find(keys, nkeys, "params");
    const char *type = rehome_key_find(keys, nkeys, "type");
    const char *mode = rehome_key_find(keys, nkeys, "mode");
    const char *nbd = rehome_key_find(keys, nkeys, "bulkhead-nbd");
    const char *target;
    char sb[160];

    memset(out, 0, sizeof(*out));
    if (params == NULL || mode == NULL) {
        snprintf(err, errlen, "the copy has no %s key (bulkhead create writes params and mode)",
                 params == NULL ? "params" : "mode");
        return -1;
    }
    if (strcmp(mode, "r") != 0 && strcmp(mode, "w") != 0) {
        snprintf(err, errlen, "the copy's mode is '%s', neither r nor w",
                 shown(mode, sb, sizeof(sb)));
        return -1;
    }
    out->readonly = mode[0] == 'r';
    /* libxl writes "<format>:<target>" for every backend but phy, whose params is the target. */
    target = params;
    if (type == NULL || strcmp(type, "phy") != 0) {
        const char *colon = strchr(params, ':');
        if (colon == NULL) {
            snprintf(err, errlen, "the copy's params '%s' has no format in front of the target",
                     shown(params, sb, sizeof(sb)));
            return -1;
        }
        target = colon + 1;
    }
    if (nbd != NULL && nbd[0] != '\0') {
        out->nbd = true;
        target = nbd;
    } else if (target[0] == '\0') {
        out->empty = true;
        return 0;
    }
    if (target[0] != '/' || strlen(target) >= sizeof(out->path)) {
        snprintf(err, errlen, "the copy's target '%s' is no absolute path",
                 shown(target, sb, sizeof(sb)));
        return -1;
    }
    snprintf(out->path, sizeof(out->path), "%s", target);
    return 0;
}

/* The copy's interface name key into buf ("" when absent): 0, or -1 with err. */
static int ifname_key(const struct rehome_key *keys, size_t nkeys, const char *key, char *buf,
                      size_t size, char *err, size_t errlen)
{
    const char *v = rehome_key_find(keys, nkeys, key);
    char sb[160];

    buf[0] = '\0';
    if (v == NULL)
        return 0;
    if (!vifspec_ifname_ok(v) || strlen(v) >= size) {
        snprintf(err, errlen, "the copy's %s '%s' is not an interface name", key,
                 shown(v, sb, sizeof(sb)));
        return -1;
    }
    snprintf(buf, size, "%s", v);
    return 0;
}

/* vifname, and whether (and how) the vif is routed, as bulkhead create decided it. */
static int vif_more(const struct rehome_key *keys, size_t nkeys, struct rehome_vif *out, char *err,
                    size_t errlen)
{
    const char *script = rehome_key_find(keys, nkeys, "script");
    const char *ip = rehome_key_find(keys, nkeys, "ip");
    char why[512];

    if (ifname_key(keys, nkeys, "vifname", out->vifname, sizeof(out->vifname), err, errlen) != 0 ||
        ifname_key(keys, nkeys, "gatewaydev", out->gatewaydev, sizeof(out->gatewaydev), err,
                   errlen) != 0)
        return -1;
    if (script != NULL && vifspec_script(script, &out->routed, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "the copy's %s", why);
        return -1;
    }
    if (!out->routed)
        return 0;
    out->bridge[0] = '\0'; /* libxl's bridge key: vif-route ignores it */
    if (vifspec_routed_ips(ip ? ip : "", out->ip4, &out->nip4, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "the copy's routed vif: %s", why);
        return -1;
    }
    return 0;
}

int rehome_vif_reg(const struct rehome_key *keys, size_t nkeys, struct rehome_vif *out,
                   char *err, size_t errlen)
{
    const char *mac = rehome_key_find(keys, nkeys, "mac");
    const char *mtu = rehome_key_find(keys, nkeys, "mtu");
    const char *bridge = rehome_key_find(keys, nkeys, "bridge");
    uint64_t m = 1500;
    char sb[160];

    memset(out, 0, sizeof(*out));
    if (mac == NULL) {
        snprintf(err, errlen, "the copy has no mac key (bulkhead create writes it)");
        return -1;
    }
    if (vifspec_parse_mac(mac, out->mac, err, errlen) != 0)
        return -1;
    if (mtu != NULL && bhxb_parse_u64(mtu, strlen(mtu), 68, 65535, &m) != 0) {
        snprintf(err, errlen, "the copy's mtu '%s' is no number from 68 to 65535",
                 shown(mtu, sb, sizeof(sb)));
        return -1;
    }
    out->mtu = (unsigned int)m;
    if (bridge != NULL && strlen(bridge) >= sizeof(out->bridge)) {
        snprintf(err, errlen, "the copy's bridge '%s' is longer than an interface name",
                 shown(bridge, sb, sizeof(sb)));
        return -1;
    }
    snprintf(out->bridge, sizeof(out->bridge), "%s", bridge ? bridge : "");
    return vif_more(keys, nkeys, out, err, errlen);
}
