/*
 * layout.c - the XenStore nodes of one device, as libxl writes them.
 *
 * libxl__device_generic_add creates the frontend directory owned by the
 * frontend domain with read for the backend domain, the backend directory
 * owned by the backend domain with read for the frontend domain, and copies
 * the backend keys under /libxl/<domid>/device, which only dom0 reads: the
 * toolstack must not trust what a (driver) domain may rewrite in its own
 * backend directory.  Keys created under a directory inherit its
 * permissions in xenstored; we record the inherited permissions on every
 * node explicitly, so that the list is what `xenstore-ls -p` would show.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bhxenbus.h"

static bool kind_ok(const char *k)
{
    if (k == NULL || *k == '\0' || strlen(k) > 32)
        return false;
    for (; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '-'))
            return false;
    return true;
}

int bhxb_dev_paths(const struct bhxb_dev *d, struct bhxb_paths *p)
{
    const char *bkind;

    if (d == NULL || p == NULL || !kind_ok(d->kind)) {
        errno = EINVAL;
        return -1;
    }
    bkind = d->backend_kind ? d->backend_kind : d->kind;
    if (!kind_ok(bkind)) {
        errno = EINVAL;
        return -1;
    }
    /* 32-byte kinds and 10-digit ids cannot overflow BHXB_PATH_MAX. */
    snprintf(p->frontend, sizeof(p->frontend), "/local/domain/%u/device/%s/%u", d->domid, d->kind,
             d->devid);
    snprintf(p->backend, sizeof(p->backend), "/local/domain/%u/backend/%s/%u/%u", d->backend_domid,
             bkind, d->domid, d->devid);
    snprintf(p->libxl, sizeof(p->libxl), "/libxl/%u/device/%s/%u", d->domid, d->kind, d->devid);
    return 0;
}

/* The permissions of each side's directory, and of the toolstack's copy. */
static unsigned int side_perms(const struct bhxb_dev *d, int which, struct xs_permissions *pp)
{
    switch (which) {
    case BHXB_FRONT: /* the frontend owns it; the backend reads */
        pp[0] = (struct xs_permissions){d->domid, XS_PERM_NONE};
        pp[1] = (struct xs_permissions){d->backend_domid, XS_PERM_READ};
        return 2;
    case BHXB_BACK:
    case BHXB_FRONT_RO: /* the backend owns it; the frontend reads */
        pp[0] = (struct xs_permissions){d->backend_domid, XS_PERM_NONE};
        pp[1] = (struct xs_permissions){d->domid, XS_PERM_READ};
        return 2;
    default: /* the trusted copy: dom0 alone */
        pp[0] = (struct xs_permissions){0, XS_PERM_NONE};
        return 1;
    }
}

#define SIDE_LIBXL 100 /* side_perms' default: the trusted copy */

static struct bhxb_node *find(struct bhxb_layout *l, const char *path)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->nodes[i].path, path) == 0)
            return &l->nodes[i];
    return NULL;
}

/* Adds or replaces the node dir/key (dir itself when key is NULL). */
static int put(struct bhxb_layout *l, int side, const char *dir, const char *key, const char *value)
{
    struct bhxb_node *nd;
    char path[BHXB_PATH_MAX * 2];
    char *p, *v;

    snprintf(path, sizeof(path), "%s%s%s", dir, key ? "/" : "", key ? key : "");
    if ((v = strdup(value)) == NULL)
        return -1;
    if ((nd = find(l, path)) != NULL) {
        free(nd->value);
        nd->value = v;
        nd->nperms = side_perms(&l->dev, side, nd->perms);
        return 0;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct bhxb_node *nn = realloc(l->nodes, cap * sizeof(*nn));
        if (nn == NULL)
            goto fail;
        l->nodes = nn;
        l->cap = cap;
    }
    if ((p = strdup(path)) == NULL)
        goto fail;
    nd = &l->nodes[l->n++];
    memset(nd, 0, sizeof(*nd));
    nd->path = p;
    nd->value = v;
    nd->nperms = side_perms(&l->dev, side, nd->perms);
    return 0;
fail:
    free(v);
    return -1;
}

/* libxl's generic keys (libxl__device_add_async, libxl__device_generic_add). */
static int generic_nodes(struct bhxb_layout *l)
{
    const struct bhxb_paths *p = &l->paths;
    char num[16];
    int r = 0;

    r |= put(l, BHXB_FRONT, p->frontend, NULL, "");
    r |= put(l, BHXB_FRONT, p->frontend, "backend", p->backend);
    snprintf(num, sizeof(num), "%u", l->dev.backend_domid);
    r |= put(l, BHXB_FRONT, p->frontend, "backend-id", num);
    snprintf(num, sizeof(num), "%d", XenbusStateInitialising);
    r |= put(l, BHXB_FRONT, p->frontend, "state", num);

    r |= put(l, BHXB_BACK, p->backend, NULL, "");
    r |= put(l, BHXB_BACK, p->backend, "frontend", p->frontend);
    r |= put(l, SIDE_LIBXL, p->libxl, NULL, "");
    r |= put(l, SIDE_LIBXL, p->libxl, "frontend", p->frontend);
    r |= put(l, SIDE_LIBXL, p->libxl, "backend", p->backend);
    if (r != 0)
        return -1;
    snprintf(num, sizeof(num), "%u", l->dev.domid);
    if (bhxb_layout_set(l, BHXB_BACK, "frontend-id", "%s", num) != 0 ||
        bhxb_layout_set(l, BHXB_BACK, "online", "1") != 0 ||
        bhxb_layout_set(l, BHXB_BACK, "state", "%d", XenbusStateInitialising) != 0)
        return -1;
    return 0;
}

/*
 * The identity keys libxl's device code derives from devid alone: a vif's
 * handle on both sides (libxl_nic.c), a disk's virtual-device on the
 * frontend (libxl_disk.c).  Everything else is the device's configuration,
 * the caller's to add.
 */
static int identity_nodes(struct bhxb_layout *l)
{
    const char *k = l->dev.kind;

    if (strcmp(k, "vif") == 0)
        return bhxb_layout_set(l, BHXB_BACK, "handle", "%u", l->dev.devid) |
               bhxb_layout_set(l, BHXB_FRONT, "handle", "%u", l->dev.devid);
    if (strcmp(k, "vbd") == 0 || strcmp(k, "qdisk") == 0 || strcmp(k, "vbd3") == 0)
        return bhxb_layout_set(l, BHXB_FRONT, "virtual-device", "%u", l->dev.devid);
    return 0;
}

struct bhxb_layout *bhxb_layout_new(const struct bhxb_dev *d)
{
    struct bhxb_layout *l;

    if ((l = calloc(1, sizeof(*l))) == NULL)
        return NULL;
    if (bhxb_dev_paths(d, &l->paths) != 0)
        goto fail;
    /* Copies: nothing the caller passed is kept. */
    snprintf(l->kind, sizeof(l->kind), "%s", d->kind);
    snprintf(l->backend_kind, sizeof(l->backend_kind), "%s",
             d->backend_kind ? d->backend_kind : d->kind);
    l->dev = *d;
    l->dev.kind = l->kind;
    l->dev.backend_kind = l->backend_kind;
    if (generic_nodes(l) != 0 || identity_nodes(l) != 0)
        goto fail;
    return l;
fail:
    bhxb_layout_free(l);
    return NULL;
}

static bool key_ok(const char *key)
{
    return key != NULL && *key != '\0' && strchr(key, '/') == NULL && strlen(key) < 64;
}

int bhxb_layout_set(struct bhxb_layout *l, enum bhxb_side side, const char *key, const char *fmt,
                    ...)
{
    char value[BHXB_VALUE_MAX + 1];
    va_list ap;
    int r;

    if (l == NULL || fmt == NULL || !key_ok(key) ||
        (side != BHXB_BACK && side != BHXB_FRONT && side != BHXB_FRONT_RO)) {
        errno = EINVAL;
        return -1;
    }
    va_start(ap, fmt);
    r = vsnprintf(value, sizeof(value), fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= sizeof(value)) {
        errno = E2BIG;
        return -1;
    }
    if (side != BHXB_BACK)
        return put(l, side, l->paths.frontend, key, value);
    /* A backend key also goes to the toolstack's trusted copy. */
    if (put(l, BHXB_BACK, l->paths.backend, key, value) != 0)
        return -1;
    return put(l, SIDE_LIBXL, l->paths.libxl, key, value);
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct bhxb_node *)a)->path, ((const struct bhxb_node *)b)->path);
}

void bhxb_layout_sort(struct bhxb_layout *l)
{
    if (l && l->n > 1)
        qsort(l->nodes, l->n, sizeof(l->nodes[0]), by_path);
}

const struct bhxb_node *bhxb_layout_find(const struct bhxb_layout *l, const char *path)
{
    if (l == NULL || path == NULL)
        return NULL;
    return find((struct bhxb_layout *)l, path);
}

void bhxb_layout_free(struct bhxb_layout *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->nodes[i].path);
        free(l->nodes[i].value);
    }
    free(l->nodes);
    free(l);
}

int bhxb_perms_format(const struct xs_permissions *p, unsigned int n, char *buf, size_t size)
{
    size_t off = 0;

    if (p == NULL || buf == NULL || size == 0) {
        errno = EINVAL;
        return -1;
    }
    buf[0] = '\0';
    for (unsigned int i = 0; i < n; i++) {
        unsigned int f = p[i].perms & (XS_PERM_READ | XS_PERM_WRITE);
        char c = f == (XS_PERM_READ | XS_PERM_WRITE) ? 'b'
                 : f == XS_PERM_READ                 ? 'r'
                 : f == XS_PERM_WRITE                ? 'w'
                                                     : 'n';
        int r = snprintf(buf + off, size - off, "%s%c%u", i ? "," : "", c, p[i].id);
        if (r < 0 || (size_t)r >= size - off) {
            errno = ERANGE;
            return -1;
        }
        off += (size_t)r;
    }
    return (int)off;
}
