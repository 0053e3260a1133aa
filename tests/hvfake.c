/*
 * hvfake.c - the few parts of bulkhead-hv that gnttab.c and evtchn.c call
 * (hv_log, hv_dom_find), and a dispatcher that serves requests the way
 * conn.c and dispatch.c will, for tests and fuzz targets.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hvfake.h"

#define RSP_CAP (HVW_MAX_MSG - sizeof(struct hvw_hdr))

void hv_log(struct hv *hv, const char *fmt, ...)
{
    va_list ap;

    if (hv->log == NULL)
        return;
    va_start(ap, fmt);
    vfprintf(hv->log, fmt, ap);
    va_end(ap);
    fputc('\n', hv->log);
}

struct hv_dom *hv_dom_find(struct hv *hv, uint16_t domid)
{
    for (struct hv_dom *d = hv->doms; d != NULL; d = d->next)
        if (d->domid == domid)
            return d;
    return NULL;
}

static void die(const char *what)
{
    fprintf(stderr, "hvfake: %s\n", what);
    abort();
}

struct hv *hvfake_new(bool quiet)
{
    struct hv *hv = calloc(1, sizeof(*hv));

    if (hv == NULL)
        die("out of memory");
    hv->log = quiet ? NULL : stderr;
    hv->listen_fd = hv->epfd = hv->sigfd = hv->exe_fd = -1;
    if (hvfake_dom(hv, 0, 0, 0) == NULL)
        die("cannot make dom0");
    return hv;
}

struct hv_dom *hvfake_dom(struct hv *hv, uint16_t domid, uint32_t grant_frames,
                          uint32_t evtchn_ports)
{
    struct hv_dom *d = calloc(1, sizeof(*d)), **tail = &hv->doms;

    if (d == NULL)
        die("out of memory");
    d->domid = domid;
    snprintf(d->name, sizeof(d->name), "dom%u", domid);
    d->uid = domid;
    d->pidfd = -1;
    d->state = HVW_DOM_RUNNING;
    d->max_grant_frames = grant_frames;
    d->max_evtchn_ports = evtchn_ports;
    if (gnttab_dom_init(d) != 0 || evtchn_dom_init(d) != 0) {
        gnttab_dom_release(hv, d);
        free(d);
        return NULL;
    }
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = d;
    return d;
}

void hvfake_dom_destroy(struct hv *hv, struct hv_dom *d)
{
    struct hv_conn *c, *next;

    gnttab_dom_release(hv, d);
    evtchn_dom_release(hv, d);
    for (c = hv->conns; c != NULL; c = next) {
        next = c->next;
        if (c->dom == d)
            hvfake_conn_close(hv, c);
    }
    for (struct hv_dom **pp = &hv->doms; *pp != NULL; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    free(d);
}

struct hv_conn *hvfake_conn(struct hv *hv, struct hv_dom *d)
{
    struct hv_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        die("out of memory");
    c->fd = -1;
    c->dom = d;
    c->next = hv->conns;
    hv->conns = c;
    return c;
}

void hvfake_conn_close(struct hv *hv, struct hv_conn *c)
{
    gnttab_conn_release(hv, c);
    evtchn_conn_release(hv, c);
    if (c->maps != NULL)
        die("gnttab_conn_release left mappings behind");
    for (struct hv_conn **pp = &hv->conns; *pp != NULL; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    free(c);
}

void hvfake_release(struct hv *hv)
{
    while (hv->doms != NULL)
        hvfake_dom_destroy(hv, hv->doms);
    while (hv->conns != NULL)
        hvfake_conn_close(hv, hv->conns);
    free(hv);
}

void hvfake_free(struct hv *hv)
{
    framestore_shutdown(hv); /* its stores and their sockets go too */
    hvfake_release(hv);
}

struct hv_rsp *hvfake_rsp_new(void)
{
    struct hv_rsp *rsp = calloc(1, sizeof(*rsp));

    /* Exactly the payload room conn.c gives, so that ASan sees any overrun. */
    if (rsp == NULL || (rsp->p = malloc(RSP_CAP)) == NULL)
        die("out of memory");
    return rsp;
}

void hvfake_rsp_clear(struct hv_rsp *rsp)
{
    for (unsigned int i = 0; i < rsp->nfds; i++)
        close(rsp->fds[i]);
    rsp->nfds = 0;
    rsp->len = 0;
}

void hvfake_rsp_free(struct hv_rsp *rsp)
{
    if (rsp == NULL)
        return;
    hvfake_rsp_clear(rsp);
    free(rsp->p);
    free(rsp);
}

static int dispatch_op(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    switch (req->hdr->op) {
    case HVW_OP_GNT_SHARE:
        return gnttab_share(hv, req, rsp);
    case HVW_OP_GNT_END:
        return gnttab_end(hv, req, rsp);
    case HVW_OP_GNT_MAP:
        return gnttab_map(hv, req, rsp);
    case HVW_OP_GNT_UNMAP:
        return gnttab_unmap(hv, req, rsp);
    case HVW_OP_GNT_COPY:
        return gnttab_copy(hv, req, rsp);
    case HVW_OP_EVT_UNBOUND:
        return evtchn_unbound(hv, req, rsp);
    case HVW_OP_EVT_BIND:
        return evtchn_bind(hv, req, rsp);
    case HVW_OP_EVT_CLOSE:
        return evtchn_close(hv, req, rsp);
    case HVW_OP_EVT_STATUS:
        return evtchn_status(hv, req, rsp);
    default:
        return ENOSYS; /* as dispatch.c answers an op it does not know */
    }
}

int hvfake_call_pid(struct hv *hv, struct hv_conn *c, pid_t pid, uint16_t op, const void *p,
                    size_t len, struct hv_rsp *rsp)
{
    struct hvw_hdr hdr = {.magic = HVW_MAGIC, .op = op, .seq = 1};
    uint8_t *copy = malloc(len ? len : 1);
    struct hv_req req = {.conn = c, .hdr = &hdr, .p = copy, .len = len, .pid = pid};
    int rc;

    /* The payload at its exact size, so that ASan sees a handler reading past it. */
    if (copy == NULL)
        die("out of memory");
    if (len)
        memcpy(copy, p, len);
    hvfake_rsp_clear(rsp);
    rc = dispatch_op(hv, &req, rsp);
    free(copy);
    if (rc < 0 || rc > 4095)
        die("a handler returned something that is not an errno");
    if (rc != 0 && (rsp->nfds != 0 || rsp->len != 0))
        die("a handler failed but left fds or payload in its reply");
    if (rsp->len > RSP_CAP || rsp->nfds > HVW_MAX_FDS)
        die("a handler made a reply too big for the wire");
    return rc;
}

int hvfake_call(struct hv *hv, struct hv_conn *c, uint16_t op, const void *p, size_t len,
                struct hv_rsp *rsp)
{
    return hvfake_call_pid(hv, c, getpid(), op, p, len, rsp);
}

struct hvw_stats_rsp hvfake_stats(struct hv *hv)
{
    struct hvw_stats_rsp st = {0};

    gnttab_stats(hv, &st);
    evtchn_stats(hv, &st);
    return st;
}

int hvfake_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        die("cannot read /proc/self/fd");
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* A new fd takes the lowest free number, which must be below the limit. */
void hvfake_fd_limit(int spare)
{
    struct rlimit rl;
    int fd = 0;

    for (int seen = 0;; fd++)
        if (fcntl(fd, F_GETFD) < 0 && seen++ == spare)
            break;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit");
    rl.rlim_cur = (rlim_t)fd;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("setrlimit");
}

void hvfake_fd_unlimit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("getrlimit");
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        die("setrlimit");
}
