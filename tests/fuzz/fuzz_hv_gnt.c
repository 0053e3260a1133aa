/*
 * fuzz_hv_gnt.c - bulkhead-hv's grant tables and event channels, fed any
 * payload on any channel, against a fake hypervisor (tests/hvfake.c) with
 * dom0 and two small domains.
 *
 * Input: a script of steps.  Each step is one byte: the channel (five:
 * dom0's, and two for each of domains 1 and 2) and the action, then for a
 * request a length byte and that many payload bytes.  Actions are the nine
 * grant and event-channel requests, a channel closing and reopening, and a
 * domain going away and coming back under the same id.  GNT_COPY's local
 * addresses with the top bit set are pointed into a scratch buffer, so that
 * copies can succeed; they run against a sacrificial child process, never
 * against the fuzzer's own memory.
 *
 * Beyond ASan: hvfake aborts when a handler breaks the reply contract;
 * replies must have the size and the fds their op promises, statuses must
 * be ones the op can give, and when everything is torn down no fd may be
 * left open.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>

#include "fuzz.h"
#include "hvfake.h"

#define NCONN 5
#define NOPS  9

static const uint16_t ops[NOPS] = {
    HVW_OP_GNT_SHARE,   HVW_OP_GNT_END,  HVW_OP_GNT_MAP,   HVW_OP_GNT_UNMAP,  HVW_OP_GNT_COPY,
    HVW_OP_EVT_UNBOUND, HVW_OP_EVT_BIND, HVW_OP_EVT_CLOSE, HVW_OP_EVT_STATUS,
};

static uint8_t scratch[2 * HVW_PAGE_SIZE];
static pid_t victim_pid;

static void victim_kill(void)
{
    kill(victim_pid, SIGKILL);
    waitpid(victim_pid, NULL, 0);
}

/* The process GNT_COPY reads and writes: a copy of us that only waits. */
static pid_t victim(void)
{
    if (victim_pid == 0) {
        if ((victim_pid = fork()) == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            for (;;)
                pause();
        }
        FUZZ_ASSERT(victim_pid > 0);
        atexit(victim_kill);
    }
    return victim_pid;
}

struct world {
    struct hv *hv;
    struct hv_conn *conn[NCONN];
    struct hv_rsp *rsp;
};

static struct hv_dom *conn_dom(struct world *w, int i)
{
    return hv_dom_find(w->hv, i == 0 ? 0 : (uint16_t)((i + 1) / 2));
}

static void world_domain(struct world *w, uint16_t domid)
{
    struct hv_dom *d = hvfake_dom(w->hv, domid, 1, 8); /* 512 grants, ports 1..8 */

    FUZZ_ASSERT(d != NULL);
    for (int i = 1; i < NCONN; i++)
        if ((i + 1) / 2 == domid)
            w->conn[i] = hvfake_conn(w->hv, d);
}

/* A local address from the input: the top bit asks for one inside scratch. */
static void patch_virt(uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    if (v >> 63) {
        v = (uint64_t)(uintptr_t)(scratch + (v & (HVW_PAGE_SIZE - 1)));
        memcpy(p, &v, sizeof(v));
    }
}

static void patch_copy(uint8_t *p, size_t len)
{
    for (size_t off = 8; off + sizeof(struct hvw_copy_seg) <= len;
         off += sizeof(struct hvw_copy_seg)) {
        patch_virt(p + off + offsetof(struct hvw_copy_seg, src.virt));
        patch_virt(p + off + offsetof(struct hvw_copy_seg, dst.virt));
    }
}

static uint32_t rd32(const uint8_t *p, size_t off)
{
    uint32_t v;

    memcpy(&v, p + off, sizeof(v));
    return v;
}

/* What a successful reply to `op` must look like, given its request. */
static void check_reply(uint16_t op, const uint8_t *req, const struct hv_rsp *rsp)
{
    uint32_t n = 0;

    switch (op) {
    case HVW_OP_GNT_SHARE:
        n = rd32(req, 4);
        FUZZ_ASSERT(n >= 1 && n <= HVW_MAX_FDS && rsp->nfds == n && rsp->len == 4 * (1 + n));
        break;
    case HVW_OP_GNT_MAP:
        n = rd32(req, 4);
        FUZZ_ASSERT(rsp->nfds == n && rsp->len == 4 && rd32(rsp->p, 0) == n);
        break;
    case HVW_OP_GNT_END:
    case HVW_OP_GNT_COPY:
        n = rd32(req, 0);
        FUZZ_ASSERT(rsp->nfds == 0 && rsp->len == 4 * (1 + n) && rd32(rsp->p, 0) == n);
        for (uint32_t i = 0; i < n; i++) {
            int32_t st = (int32_t)rd32(rsp->p, 4 * (1 + i));
            if (op == HVW_OP_GNT_END)
                FUZZ_ASSERT(st == 0 || st == EBUSY || st == ENOENT);
            else
                FUZZ_ASSERT(st <= GNTST_okay && st >= GNTST_no_space);
        }
        break;
    case HVW_OP_EVT_UNBOUND:
    case HVW_OP_EVT_BIND:
        FUZZ_ASSERT(rsp->nfds == 2 && rsp->len == 4 && rd32(rsp->p, 0) >= 1 &&
                    rd32(rsp->p, 0) <= 8);
        break;
    case HVW_OP_EVT_STATUS:
        FUZZ_ASSERT(rsp->nfds == 0 && rsp->len == sizeof(struct hvw_evt_status_rsp) &&
                    rd32(rsp->p, 0) <= EVTCHNSTAT_interdomain);
        break;
    default:
        FUZZ_ASSERT(rsp->nfds == 0 && rsp->len == 0);
    }
}

static void step_request(struct world *w, struct fuzz_in *in, int ci, uint16_t op)
{
    uint8_t p[256];
    size_t len = fuzz_u8(in);
    int rc;

    for (size_t i = 0; i < len; i++)
        p[i] = fuzz_u8(in);
    if (op == HVW_OP_GNT_COPY)
        patch_copy(p, len);
    rc = hvfake_call_pid(w->hv, w->conn[ci], victim(), op, p, len, w->rsp);
    if (rc == 0)
        check_reply(op, p, w->rsp);
    hvfake_rsp_clear(w->rsp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct world w = {0};
    int fds = hvfake_open_fds();
    unsigned int stores = framestore_nstores();
    unsigned int steps = 0;

    victim();
    w.hv = hvfake_new(true);
    w.rsp = hvfake_rsp_new();
    w.conn[0] = hvfake_conn(w.hv, hv_dom_find(w.hv, 0));
    world_domain(&w, 1);
    world_domain(&w, 2);
    while (in.n > 0 && steps++ < 512) {
        uint8_t b = fuzz_u8(&in);
        int ci = b % NCONN, action = (b / NCONN) % (NOPS + 2);

        if (action < NOPS) {
            step_request(&w, &in, ci, ops[action]);
        } else if (action == NOPS) { /* the channel closes; a new one takes its place */
            struct hv_dom *d = conn_dom(&w, ci);
            hvfake_conn_close(w.hv, w.conn[ci]);
            w.conn[ci] = hvfake_conn(w.hv, d);
        } else if (ci > 0) { /* the domain goes away, and one with its id comes */
            uint16_t domid = (uint16_t)((ci + 1) / 2);
            hvfake_dom_destroy(w.hv, conn_dom(&w, ci));
            world_domain(&w, domid);
        }
    }
    hvfake_rsp_free(w.rsp);
    hvfake_release(w.hv);
    /* Everything is back but the sockets of stores this input started (they serve the next). */
    FUZZ_ASSERT(hvfake_open_fds() == fds + (int)(framestore_nstores() - stores));
    FUZZ_ASSERT(framestore_count() == 0);
    return 0;
}
