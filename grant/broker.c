/*
 * broker.c - libbhplat's client of dom0's broker (bhbroker.h): one request
 * on a channel of its own (sim.c's), and the fds of the reply.  The reply
 * is checked as any from the daemon: its size, and its fds' count.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "bhbroker.h"
#include "hvwire.h"
#include "private.h"

static int ids_ok(uint32_t domid)
{
    if (domid == 0 || domid > HVW_DOMID_MAX) {
        errno = EINVAL;
        return 0;
    }
    return 1;
}

/* One broker request; the reply's payload in r. */
static int brk_call(uint16_t op, const void *req, size_t len, struct chan_reply *r)
{
    struct sim_chan ch;
    int rc;

    if (chan_open(&ch, NULL) != 0)
        return -1;
    rc = chan_call(&ch, op, req, len, r);
    chan_close(&ch);
    return rc;
}

int bhbroker_tap(uint32_t domid, uint32_t devid, unsigned int flags, int *fds, unsigned int *nq)
{
    const unsigned int offload = BHBROKER_TAP_CSUM | BHBROKER_TAP_TSO4 | BHBROKER_TAP_TSO6;
    struct hvw_brk_tap_req q;
    struct hvw_brk_tap_rsp a;
    int got[HVW_BRK_MAX_QUEUES];
    struct chan_reply r = {
        .p = &a, .cap = sizeof(a), .fds = got, .nfds = HVW_BRK_MAX_QUEUES, .upto = true};

    if (!ids_ok(domid) || (flags & ~(offload | BHBROKER_TAP_HDR10)) != 0 || fds == NULL ||
        nq == NULL) {
        errno = EINVAL;
        return -1;
    }
    memset(&q, 0, sizeof(q));
    q.frontend = (uint16_t)domid;
    q.devid = devid;
    q.offload = flags & offload;
    q.vnet_hdr_sz = (flags & BHBROKER_TAP_HDR10) ? 10 : 12;
    if (brk_call(HVW_OP_BRK_TAP, &q, sizeof(q), &r) != 0)
        return -1;
    if (r.len != sizeof(a) || a.queues != r.nfds || r.nfds == 0) {
        for (unsigned int i = 0; i < r.nfds; i++)
            close(got[i]);
        errno = EPROTO;
        return -1;
    }
    memcpy(fds, got, sizeof(int) * r.nfds);
    *nq = r.nfds;
    return 0;
}

static int open_req(uint16_t op, uint32_t domid, uint32_t devid, uint32_t flags, void *rsp,
                    size_t rsplen)
{
    struct hvw_brk_open_req q = {.frontend = (uint16_t)domid, .devid = devid, .flags = flags};
    int fd = -1;
    struct chan_reply r = {.p = rsp, .cap = rsplen, .fds = &fd, .nfds = 1};

    if (!ids_ok(domid))
        return -1;
    if (brk_call(op, &q, sizeof(q), &r) != 0)
        return -1;
    if (r.len != rsplen) {
        close(fd);
        errno = EPROTO;
        return -1;
    }
    return fd;
}

int bhbroker_disk(uint32_t domid, uint32_t devid, unsigned int flags, int *readonly, uint64_t *size)
{
    struct hvw_brk_disk_rsp a;
    int fd;

    if ((flags & ~BHBROKER_DISK_DIRECT) != 0) {
        errno = EINVAL;
        return -1;
    }
    fd = open_req(HVW_OP_BRK_DISK, domid, devid,
                  (flags & BHBROKER_DISK_DIRECT) ? HVW_BRK_DIRECT : 0, &a, sizeof(a));
    if (fd < 0)
        return -1;
    if (readonly != NULL)
        *readonly = (a.flags & HVW_BRK_RO) != 0;
    if (size != NULL)
        *size = a.size;
    return fd;
}

int bhbroker_nbd(uint32_t domid, uint32_t devid)
{
    char none;

    return open_req(HVW_OP_BRK_NBD, domid, devid, 0, &none, 0);
}
