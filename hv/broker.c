/*
 * broker.c - the dom0 broker: what dom0 registered for each driver domain
 * (storage directories, disks, vifs), and the disks handed out as fds.
 * The network side (TAPs, bridges, uplinks) is brknet.c's.
 *
 * Trust: dom0's registrations are trusted but still checked (brkparse.c);
 * a domain's request is honoured only when it names a device registered
 * with that domain as its backend (or, for a TAP, as its guest).  A disk
 * target is resolved by the kernel beneath the storage directory's fd
 * (openat2 RESOLVE_BENEATH), so that neither "..", nor a symlink a driver
 * domain planted in its storage, nor a name sharing a prefix gets out.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/openat2.h>

#include "hv.h"

struct brk_storage {
    struct brk_storage *next;
    struct hvw_brk_storage_req r;
};

struct brk_dev {
    struct brk_dev *next;
    uint8_t kind; /* HVW_BRK_KIND_* */
    uint16_t backend, frontend;
    uint32_t devid;
    union {
        struct hvw_brk_disk_reg disk;
        struct hvw_brk_vif_reg vif;
    } u;
};

struct hv_broker {
    struct brk_storage *stores;
    struct brk_dev *devs;
};

static const char *const op_names[] = {
    [HVW_OP_BRK_TAP] = "tap",           [HVW_OP_BRK_DISK] = "disk",
    [HVW_OP_BRK_NBD] = "nbd",           [HVW_OP_BRK_STORAGE] = "storage",
    [HVW_OP_BRK_REG_DISK] = "reg-disk", [HVW_OP_BRK_REG_VIF] = "reg-vif",
    [HVW_OP_BRK_UNREG] = "unreg",       [HVW_OP_BRK_BRIDGE] = "bridge",
    [HVW_OP_BRK_UPLINK] = "uplink",
};

int broker_refuse(struct hv *hv, const struct hv_req *req, int err, const char *fmt, ...)
{
    uint16_t op = req->hdr->op;
    const char *name =
        op < sizeof(op_names) / sizeof(op_names[0]) && op_names[op] ? op_names[op] : "?";
    char why[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    hv_log(hv, "domain %u: broker %s refused (%s): %s", req->conn->dom->domid, name, strerror(err),
           why);
    return err;
}

int broker_init(struct hv *hv)
{
    if (netns_init() != 0)
        return -1;
    if ((hv->broker = calloc(1, sizeof(*hv->broker))) == NULL)
        return -1;
    return 0;
}

void broker_dom_release(struct hv *hv, struct hv_dom *d)
{
    struct hv_broker *b = hv->broker;

    if (b == NULL)
        return;
    for (struct brk_storage **pp = &b->stores; *pp != NULL;) {
        struct brk_storage *s = *pp;
        if (s->r.domid == d->domid) {
            *pp = s->next;
            free(s);
        } else {
            pp = &s->next;
        }
    }
    for (struct brk_dev **pp = &b->devs; *pp != NULL;) {
        struct brk_dev *v = *pp;
        if (v->backend == d->domid || v->frontend == d->domid) {
            *pp = v->next;
            free(v);
        } else {
            pp = &v->next;
        }
    }
}

void broker_shutdown(struct hv *hv)
{
    struct hv_broker *b = hv->broker;

    if (b == NULL)
        return;
    while (b->stores != NULL) {
        struct brk_storage *s = b->stores;
        b->stores = s->next;
        free(s);
    }
    while (b->devs != NULL) {
        struct brk_dev *v = b->devs;
        b->devs = v->next;
        free(v);
    }
    free(b);
    hv->broker = NULL;
    netns_fini();
}

uint32_t broker_count(struct hv *hv)
{
    uint32_t n = 0;

    if (hv->broker == NULL)
        return 0;
    for (struct brk_storage *s = hv->broker->stores; s != NULL; s = s->next)
        n += s->r.count;
    for (struct brk_dev *v = hv->broker->devs; v != NULL; v = v->next)
        n++;
    return n;
}

static struct brk_dev **dev_slot(struct hv *hv, uint8_t kind, uint16_t frontend, uint32_t devid)
{
    struct brk_dev **pp;

    for (pp = &hv->broker->devs; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->kind == kind && (*pp)->frontend == frontend && (*pp)->devid == devid)
            break;
    return pp;
}

const struct hvw_brk_vif_reg *broker_find_vif(struct hv *hv, uint16_t frontend, uint32_t devid)
{
    struct brk_dev *v = *dev_slot(hv, HVW_BRK_KIND_VIF, frontend, devid);

    return v ? &v->u.vif : NULL;
}

static struct brk_storage *storage_of(struct hv *hv, uint16_t domid)
{
    for (struct brk_storage *s = hv->broker->stores; s != NULL; s = s->next)
        if (s->r.domid == domid)
            return s;
    return NULL;
}

static bool dom_live(const struct hv_dom *d)
{
    return d != NULL && (d->state == HVW_DOM_RUNNING || d->state == HVW_DOM_PAUSED);
}

/* ---- registration (dom0) ---- */

/* A storage directory must be what it says: a directory, reached through no symlink. */
static int storage_dir_check(const char *dir)
{
    char real[PATH_MAX];
    struct stat st;

    if (realpath(dir, real) == NULL)
        return errno == ENOENT || errno == ENOTDIR ? ENOENT : errno;
    if (strcmp(real, dir) != 0 || stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
        return EINVAL;
    return 0;
}

int broker_storage(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_brk_storage_req r;
    struct brk_storage *s;
    const char *why;
    int err;

    (void)rsp;
    if ((err = brk_parse_storage(req->p, req->len, &r, &why)) != 0)
        return broker_refuse(hv, req, err, "%s", why);
    if (!dom_live(hv_dom_find(hv, r.domid)))
        return broker_refuse(hv, req, ESRCH, "no live domain %u", r.domid);
    for (unsigned int i = 0; i < r.count; i++)
        if ((err = storage_dir_check(r.dirs[i])) != 0)
            return broker_refuse(hv, req, err,
                                 "storage %s is not an existing directory named by its real path "
                                 "(give the path realpath(1) prints)",
                                 r.dirs[i]);
    if ((s = storage_of(hv, r.domid)) == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL)
            return ENOMEM;
        s->next = hv->broker->stores;
        hv->broker->stores = s;
    }
    s->r = r;
    hv_log(hv, "broker: domain %u has %u storage directories", r.domid, r.count);
    return 0;
}

static int backend_devices(struct hv *hv, uint16_t backend)
{
    int n = 0;

    for (struct brk_dev *v = hv->broker->devs; v != NULL; v = v->next)
        n += v->backend == backend;
    return n;
}

/* Adds or replaces device (kind, frontend, devid); 0 or a positive errno. */
static int dev_register(struct hv *hv, struct hv_req *req, struct brk_dev *nv)
{
    struct brk_dev **pp = dev_slot(hv, nv->kind, nv->frontend, nv->devid), *v;

    if (!dom_live(hv_dom_find(hv, nv->backend)) || !dom_live(hv_dom_find(hv, nv->frontend)))
        return broker_refuse(hv, req, ESRCH, "backend %u or frontend %u is no live domain",
                             nv->backend, nv->frontend);
    if (*pp == NULL && backend_devices(hv, nv->backend) >= (int)HVW_BRK_MAX_DEVICES)
        return broker_refuse(hv, req, ENOSPC, "domain %u serves %u devices already", nv->backend,
                             HVW_BRK_MAX_DEVICES);
    if ((v = malloc(sizeof(*v))) == NULL)
        return ENOMEM;
    *v = *nv;
    if (*pp != NULL) {
        v->next = (*pp)->next;
        free(*pp);
        *pp = v;
    } else {
        v->next = hv->broker->devs;
        hv->broker->devs = v;
    }
    hv_log(hv, "broker: %s %u/%u served by domain %u", v->kind == HVW_BRK_KIND_VIF ? "vif" : "vbd",
           v->frontend, v->devid, v->backend);
    return 0;
}

int broker_reg_disk(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct brk_dev v = {.kind = HVW_BRK_KIND_DISK};
    const char *why;
    int err;

    (void)rsp;
    if ((err = brk_parse_disk_reg(req->p, req->len, &v.u.disk, &why)) != 0)
        return broker_refuse(hv, req, err, "%s", why);
    v.backend = v.u.disk.backend;
    v.frontend = v.u.disk.frontend;
    v.devid = v.u.disk.devid;
    return dev_register(hv, req, &v);
}

int broker_reg_vif(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct brk_dev v = {.kind = HVW_BRK_KIND_VIF};
    const char *why;
    int err;

    (void)rsp;
    if ((err = brk_parse_vif_reg(req->p, req->len, &v.u.vif, &why)) != 0)
        return broker_refuse(hv, req, err, "%s", why);
    v.backend = v.u.vif.backend;
    v.frontend = v.u.vif.frontend;
    v.devid = v.u.vif.devid;
    return dev_register(hv, req, &v);
}

int broker_unreg(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_brk_unreg_req r;
    struct brk_dev **pp, *v;
    const char *why;
    int err;

    (void)rsp;
    if ((err = brk_parse_unreg(req->p, req->len, &r, &why)) != 0)
        return broker_refuse(hv, req, err, "%s", why);
    pp = dev_slot(hv, r.kind, r.frontend, r.devid);
    if ((v = *pp) == NULL)
        return broker_refuse(hv, req, ENOENT, "no such device %u/%u", r.frontend, r.devid);
    *pp = v->next;
    free(v);
    return 0;
}

/* ---- disks (the backend domain) ---- */

/* The registered disk the caller may open, or a refusal. */
static int disk_for(struct hv *hv, struct hv_req *req, const struct hvw_brk_open_req *r, bool nbd,
                    const struct hvw_brk_disk_reg **out)
{
    const struct brk_dev *v = *dev_slot(hv, HVW_BRK_KIND_DISK, r->frontend, r->devid);
    uint16_t caller = req->conn->dom->domid;

    if (v == NULL)
        return broker_refuse(hv, req, ENOENT, "no disk %u/%u is registered: dom0 registers it",
                             r->frontend, r->devid);
    if (v->backend != caller)
        return broker_refuse(hv, req, EPERM, "disk %u/%u is served by domain %u, not this one",
                             r->frontend, r->devid, v->backend);
    if (!!(v->u.disk.flags & HVW_BRK_NBD) != nbd)
        return broker_refuse(hv, req, EINVAL, "disk %u/%u is %s: ask with %s", r->frontend,
                             r->devid, nbd ? "a file or block device" : "an NBD server",
                             nbd ? "BRK_DISK" : "BRK_NBD");
    *out = &v->u.disk;
    return 0;
}

/*
 * The part of `path` beneath storage directory `dir`, or NULL: a whole-
 * component prefix only, so that /srv/a holds /srv/a/x and not /srv/ab/x.
 */
static const char *beneath(const char *dir, const char *path)
{
    size_t n = strlen(dir);

    if (strncmp(dir, path, n) != 0 || path[n] != '/' || path[n + 1] == '\0')
        return NULL;
    return path + n + 1;
}

static int openat2_fd(int dfd, const char *path, uint64_t flags, uint64_t resolve)
{
    struct open_how how = {.flags = flags, .resolve = resolve};

    return (int)syscall(SYS_openat2, dfd, path, &how, sizeof(how));
}

/* Opens `rel` beneath `dir` as an O_PATH fd; -1 with errno (EXDEV, ELOOP: it escapes). */
static int open_beneath(const char *dir, const char *rel)
{
    int dfd, fd, saved;

    /* dom0 named the directory by its real path: it is reached through no symlink now either. */
    dfd = openat2_fd(AT_FDCWD, dir, O_PATH | O_DIRECTORY | O_CLOEXEC,
                     RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    if (dfd < 0)
        return -1;
    fd = openat2_fd(dfd, rel, O_PATH | O_CLOEXEC, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
    saved = errno;
    close(dfd);
    errno = saved;
    return fd;
}

/*
 * Reopens an O_PATH fd with the access asked.  Going through the O_PATH fd
 * first means a FIFO or a device we refuse is never opened (opening one can
 * block or have effects); reopening it is ours alone, through our own fd.
 */
static int reopen(int pfd, int flags, struct stat *st)
{
    char path[64];
    struct stat now;
    int fd;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", pfd);
    if ((fd = open(path, flags | O_CLOEXEC | O_NOCTTY)) < 0)
        return -1;
    if (fstat(fd, &now) != 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino) {
        close(fd);
        errno = ESTALE;
        return -1;
    }
    return fd;
}

static uint64_t disk_size(int fd, const struct stat *st)
{
    uint64_t size = 0;

    if (S_ISBLK(st->st_mode))
        return ioctl(fd, BLKGETSIZE64, &size) == 0 ? size : 0;
    return (uint64_t)st->st_size;
}

int broker_disk(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_brk_disk_rsp *out = (struct hvw_brk_disk_rsp *)rsp->p;
    const struct hvw_brk_disk_reg *disk;
    const struct brk_storage *s;
    struct hvw_brk_open_req r;
    const char *why, *rel = NULL, *dir = NULL;
    struct stat st;
    int err, pfd, fd, flags;

    if ((err = brk_parse_open(req->p, req->len, false, &r, &why)) != 0)
        return broker_refuse(hv, req, err, "%s", why);
    if ((err = disk_for(hv, req, &r, false, &disk)) != 0)
        return err;
    if ((s = storage_of(hv, disk->backend)) != NULL)
        for (unsigned int i = 0; i < s->r.count && rel == NULL; i++)
            if ((rel = beneath(s->r.dirs[i], disk->path)) != NULL)
                dir = s->r.dirs[i];
    if (rel == NULL)
        return broker_refuse(hv, req, EPERM,
                             "%s is in none of domain %u's storage directories: register its "
                             "directory with BRK_STORAGE",
                             disk->path, disk->backend);
    if ((pfd = open_beneath(dir, rel)) < 0) {
        err = errno;
        if (err == EXDEV || err == ELOOP || err == EAGAIN)
            return broker_refuse(hv, req, EPERM, "%s resolves outside %s (a symlink or \"..\")",
                                 disk->path, dir);
        return broker_refuse(hv, req, err, "cannot open %s: %s", disk->path, strerror(err));
    }
    if (fstat(pfd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
        close(pfd);
        return broker_refuse(hv, req, EINVAL, "%s is not a regular file or block device",
                             disk->path);
    }
    flags = (disk->flags & HVW_BRK_RO) ? O_RDONLY : O_RDWR;
    if (r.flags & HVW_BRK_DIRECT)
        flags |= O_DIRECT;
    fd = reopen(pfd, flags, &st);
    err = errno;
    close(pfd);
    if (fd < 0)
        return broker_refuse(hv, req, err, "cannot open %s: %s", disk->path, strerror(err));
    memset(out, 0, sizeof(*out));
    out->flags = disk->flags & HVW_BRK_RO;
    out->size = disk_size(fd, &st);
    rsp->len = sizeof(*out);
    rsp->fds[0] = fd;
    rsp->nfds = 1;
    return 0;
}

int broker_nbd(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    const struct hvw_brk_disk_reg *disk;
    struct hvw_brk_open_req r;
    const char *why;
    int err, fd;

    if ((err = brk_parse_open(req->p, req->len, true, &r, &why)) != 0)
        return broker_refuse(hv, req, err, "%s", why);
    if ((err = disk_for(hv, req, &r, true, &disk)) != 0)
        return err;
    memcpy(sa.sun_path, disk->path, strlen(disk->path)); /* < 108 bytes: brkparse.c */
    /* Non-blocking: a server with a full backlog must not stall the daemon. */
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
        return errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        err = errno;
        close(fd);
        return broker_refuse(hv, req, err, "cannot connect to the NBD server at %s: %s", disk->path,
                             strerror(err));
    }
    fcntl(fd, F_SETFL, 0); /* the domain gets an ordinary blocking socket */
    rsp->len = 0;
    rsp->fds[0] = fd;
    rsp->nfds = 1;
    return 0;
}
