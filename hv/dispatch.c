/*
 * dispatch.c - the whitelist of hypercalls: which op, who may call it, and
 * the handler that answers it.  Anything not in the table is ENOSYS.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "dombuild.h"
#include "hv.h"

typedef int (*hv_handler)(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp);

struct hv_call {
    hv_handler fn;
    bool dom0_only;
    const char *name;
};

static int do_hello(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_hello_rsp *h = (struct hvw_hello_rsp *)rsp->p;
    const struct hv_dom *d = req->conn->dom;

    (void)hv;
    memset(h, 0, sizeof(*h));
    h->domid = d->domid;
    h->max_grant_frames = d->max_grant_frames;
    h->max_evtchn_ports = d->max_evtchn_ports;
    snprintf(h->name, sizeof(h->name), "%s", d->name);
    rsp->len = sizeof(*h);
    return 0;
}

static int domid_arg(struct hv *hv, struct hv_req *req, struct hv_dom **out)
{
    struct hvw_domid_req r;

    if (req->len != sizeof(r))
        return EINVAL;
    memcpy(&r, req->p, sizeof(r));
    if (r.domid == 0)
        return EPERM; /* dom0 is not destroyed, paused or resumed */
    if ((*out = hv_dom_find(hv, r.domid)) == NULL)
        return ESRCH;
    return 0;
}

static int do_destroy(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hv_dom *d;
    int err = domid_arg(hv, req, &d);

    (void)rsp;
    return err ? err : domain_destroy(hv, d);
}

static int do_pause(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp, bool pause)
{
    struct hv_dom *d;
    int err = domid_arg(hv, req, &d);

    (void)rsp;
    if (err)
        return err;
    if (d->state != (pause ? HVW_DOM_RUNNING : HVW_DOM_PAUSED))
        return EINVAL;
    if (dombuild_pause(d->uid, pause) != 0)
        return errno;
    d->state = pause ? HVW_DOM_PAUSED : HVW_DOM_RUNNING;
    hv_log(hv, "domain %u (%s): %s", d->domid, d->name, pause ? "paused" : "unpaused");
    return 0;
}

static int do_pause_on(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    return do_pause(hv, req, rsp, true);
}

static int do_pause_off(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    return do_pause(hv, req, rsp, false);
}

static int do_list(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_dom_list_rsp *l = (struct hvw_dom_list_rsp *)rsp->p;
    size_t room = (HVW_MAX_MSG - sizeof(struct hvw_hdr) - sizeof(*l)) / sizeof(struct hvw_dominfo);
    uint32_t n = 0;

    if (req->len != 0)
        return EINVAL;
    for (struct hv_dom *d = hv->doms; d != NULL && n < room; d = d->next)
        domain_info(d, &l->doms[n++]);
    l->count = n;
    l->pad = 0;
    rsp->len = sizeof(*l) + n * sizeof(struct hvw_dominfo);
    return 0;
}

static int do_watch(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    (void)hv;
    (void)rsp;
    if (req->len != 0)
        return EINVAL;
    req->conn->watch_domains = true;
    return 0;
}

static int do_stop(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    (void)rsp;
    if (req->len != 0)
        return EINVAL;
    hv_log(hv, "stop requested by dom0");
    hv->stopping = true;
    return 0;
}

static uint32_t count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    uint32_t n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own fd */
}

static uint64_t rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long size = 0, res = 0;

    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2)
        res = 0;
    fclose(f);
    return (uint64_t)res * 4;
}

/* Under a sanitizer its allocator is the one that knows; glibc's otherwise. */
extern size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static uint64_t heap_kb(void)
{
    if (__sanitizer_get_current_allocated_bytes != NULL)
        return __sanitizer_get_current_allocated_bytes() / 1024;
    return mallinfo2().uordblks / 1024;
}

static int do_stats(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_stats_rsp *st = (struct hvw_stats_rsp *)rsp->p;

    if (req->len != 0)
        return EINVAL;
    memset(st, 0, sizeof(*st));
    for (struct hv_dom *d = hv->doms; d != NULL; d = d->next)
        st->domains++;
    for (struct hv_conn *c = hv->conns; c != NULL; c = c->next)
        st->channels++;
    gnttab_stats(hv, st);
    evtchn_stats(hv, st);
    st->open_fds = count_fds();
    st->rss_kb = rss_kb();
    st->heap_kb = heap_kb();
    st->stored = framestore_count();
    st->brk_regs = broker_count(hv);
    rsp->len = sizeof(*st);
    return 0;
}

static const struct hv_call calls[] = {
    [HVW_OP_HELLO] = {do_hello, false, "hello"},
    [HVW_OP_GNT_SHARE] = {gnttab_share, false, "gnt_share"},
    [HVW_OP_GNT_END] = {gnttab_end, false, "gnt_end"},
    [HVW_OP_GNT_MAP] = {gnttab_map, false, "gnt_map"},
    [HVW_OP_GNT_UNMAP] = {gnttab_unmap, false, "gnt_unmap"},
    [HVW_OP_GNT_COPY] = {gnttab_copy, false, "gnt_copy"},
    [HVW_OP_EVT_UNBOUND] = {evtchn_unbound, false, "evt_unbound"},
    [HVW_OP_EVT_BIND] = {evtchn_bind, false, "evt_bind"},
    [HVW_OP_EVT_CLOSE] = {evtchn_close, false, "evt_close"},
    [HVW_OP_EVT_STATUS] = {evtchn_status, false, "evt_status"},
    [HVW_OP_DOM_CREATE] = {domain_create, true, "dom_create"},
    [HVW_OP_DOM_DESTROY] = {do_destroy, true, "dom_destroy"},
    [HVW_OP_DOM_LIST] = {do_list, true, "dom_list"},
    [HVW_OP_DOM_PAUSE] = {do_pause_on, true, "dom_pause"},
    [HVW_OP_DOM_UNPAUSE] = {do_pause_off, true, "dom_unpause"},
    [HVW_OP_DOM_WATCH] = {do_watch, true, "dom_watch"},
    [HVW_OP_STOP] = {do_stop, true, "stop"},
    [HVW_OP_STATS] = {do_stats, true, "stats"},
    [HVW_OP_BRK_TAP] = {brknet_tap, false, "brk_tap"},
    [HVW_OP_BRK_DISK] = {broker_disk, false, "brk_disk"},
    [HVW_OP_BRK_NBD] = {broker_nbd, false, "brk_nbd"},
    [HVW_OP_BRK_STORAGE] = {broker_storage, true, "brk_storage"},
    [HVW_OP_BRK_REG_DISK] = {broker_reg_disk, true, "brk_reg_disk"},
    [HVW_OP_BRK_REG_VIF] = {broker_reg_vif, true, "brk_reg_vif"},
    [HVW_OP_BRK_UNREG] = {broker_unreg, true, "brk_unreg"},
    [HVW_OP_BRK_BRIDGE] = {brknet_bridge, true, "brk_bridge"},
    [HVW_OP_BRK_UPLINK] = {brknet_uplink, true, "brk_uplink"},
};

int dispatch(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    uint16_t op = req->hdr->op;
    const struct hv_call *call;

    if (op >= sizeof(calls) / sizeof(calls[0]) || calls[op].fn == NULL)
        return ENOSYS;
    call = &calls[op];
    if (call->dom0_only && req->conn->dom->domid != 0) {
        hv_log(hv, "domain %u: refused %s: dom0 only", req->conn->dom->domid, call->name);
        return EPERM;
    }
    if (req->conn->dom->state == HVW_DOM_DYING)
        return ESRCH;
    return call->fn(hv, req, rsp);
}
