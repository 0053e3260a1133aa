/*
 * cmd_devlist.c - bulkhead block-list and network-list: where each of a
 * domain's devices stands.
 *
 * Everything shown comes from what dom0 can trust: the device's backend is
 * found through the toolstack's own copy under /libxl/<domid>/device (the
 * guest may rewrite its frontend's "backend" key, not that copy), and the
 * worker pid from the serving domain's private data/ directory, translated
 * to the pid dom0 sees.  A value that does not parse is shown as unknown
 * (-1, "").
 *
 *   /libxl/<domid>/device/<kind>/<devid>/{backend,frontend,dev,mac}
 *   <frontend>/state, <backend>/state
 *   /local/domain/<backend-domid>/data/bulkhead-worker/<backend-kind>-<domid>-<devid>
 *       the worker serving it, as a pid of the serving domain's own namespace
 *   /local/domain/<domid>/data/bulkhead/vbd/<devid>/uri
 *       the NBD URI under which the guest sees the disk (written by its runtime)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenstore.h>

#include "bhxenbus.h"
#include "dombuild.h"
#include "toolstack.h"
#include "xsdom.h"

struct devrow {
    unsigned int devid;
    char vdev[64];     /* vbd: "xvda"; vif: the devid */
    char mac[32];      /* vif */
    char backend[HVW_NAME_MAX];
    int state, backend_state; /* XenbusState, or -1 */
    long worker_pid;          /* as dom0 sees it, or -1 */
    char uri[256];            /* vbd */
};

/* A node's value, strictly parsed as a string of at most size-1 bytes; "" if not. */
static void read_str(struct xs_handle *xs, const char *path, char *buf, size_t size)
{
    unsigned int len;
    char *v = xs_read(xs, XBT_NULL, path, &len);

    if (v == NULL || bhxb_parse_str(v, len, buf, size) != 0)
        buf[0] = '\0';
    free(v);
}

static int read_state(struct xs_handle *xs, const char *dir)
{
    int s = bhxb_read_state(xs, dir);

    return s < 0 ? -1 : s;
}

struct nspid_find {
    long inner, found;
};

/* The process whose innermost pid (the last NSpid field) is f->inner. */
static void match_nspid(pid_t pid, uid_t uid, void *arg)
{
    struct nspid_find *f = arg;
    char path[64], line[256];
    FILE *st;

    (void)uid;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (f->found >= 0 || (st = fopen(path, "re")) == NULL)
        return;
    while (fgets(line, sizeof(line), st) != NULL) {
        char *last;
        if (strncmp(line, "NSpid:", 6) != 0)
            continue;
        last = strrchr(line, '\t');
        if (last != NULL && strtol(last + 1, NULL, 10) == f->inner)
            f->found = pid;
        break;
    }
    fclose(st);
}

/* The worker's pid in the serving domain's namespace, as dom0 sees it; -1 if unknown. */
static long worker_pid(struct xs_handle *xs, struct hvc *h, unsigned int be, const char *be_kind,
                       unsigned int domid, unsigned int devid)
{
    char path[BHXB_PATH_MAX], which[16];
    struct hvw_dominfo info;
    struct nspid_find f = {-1, -1};
    unsigned int len;
    uint64_t inner;
    char *v;

    snprintf(path, sizeof(path), "/local/domain/%u/data/bulkhead-worker/%s-%u-%u", be, be_kind,
             domid, devid);
    v = xs_read(xs, XBT_NULL, path, &len);
    if (v == NULL || bhxb_parse_u64(v, len, 1, 4194304, &inner) != 0) {
        free(v);
        return -1;
    }
    free(v);
    if (be == 0)
        return (long)inner; /* dom0's own: served from the host's namespace */
    snprintf(which, sizeof(which), "%u", be);
    if (hvc_find_domain(h, which, &info) != 0)
        return -1;
    f.inner = (long)inner;
    dombuild_each_proc(info.uid, info.uid, match_nspid, &f);
    return f.found;
}

static int domain_name(struct hvc *h, unsigned int domid, char *buf, size_t size)
{
    struct hvw_dominfo info;
    char which[16];

    snprintf(which, sizeof(which), "%u", domid);
    if (hvc_find_domain(h, which, &info) != 0) {
        snprintf(buf, size, "%u", domid);
        return -1;
    }
    info.name[sizeof(info.name) - 1] = '\0';
    snprintf(buf, size, "%s", info.name);
    return 0;
}

/* "/local/domain/<be>/backend/<kind>/..." -> be, kind. */
static int parse_backend_path(const char *p, unsigned int *be, char *kind, size_t size)
{
    char k[40];
    unsigned int d;
    int n = 0;

    if (sscanf(p, "/local/domain/%u/backend/%39[a-z0-9-]/%n", &d, k, &n) != 2 || n == 0)
        return -1;
    *be = d;
    snprintf(kind, size, "%s", k);
    return 0;
}

static int devlist(int argc, char **argv, const char *kind)
{
    bool json = argc == 3 && strcmp(argv[2], "--json") == 0;
    bool vbd = strcmp(kind, "vbd") == 0;
    struct hvw_dominfo info;
    struct xs_handle *xs;
    struct hvc h;
    char path[BHXB_PATH_MAX], **ents;
    unsigned int n = 0;

    if (argc < 2 || argc > 3 || (argc == 3 && !json)) {
        errorf("usage: bulkhead %s NAME|ID [--json]", argv[0]);
        return 2;
    }
    if (hvc_open(&h, false) != 0)
        return 1;
    if (hvc_find_domain(&h, argv[1], &info) != 0) {
        errorf("no domain %s: see 'bulkhead list'", argv[1]);
        hvc_close(&h);
        return 1;
    }
    if ((xs = xsdom_open(false)) == NULL) {
        hvc_close(&h);
        return 1;
    }
    snprintf(path, sizeof(path), "/libxl/%u/device/%s", info.domid, kind);
    ents = xs_directory(xs, XBT_NULL, path, &n);
    if (json)
        printf("[");
    else if (vbd)
        printf("%-8s %-16s %5s %8s %10s  %s\n", "Vdev", "BE", "State", "BE-state", "Worker",
               "URI");
    else
        printf("%-6s %-16s %5s %8s %10s  %s\n", "Idx", "BE", "State", "BE-state", "Worker",
               "MAC");
    for (unsigned int i = 0; i < n; i++) {
        struct devrow r = {.state = -1, .backend_state = -1, .worker_pid = -1};
        long backend_id = -1; /* which domain: a restarted driver domain keeps its name */
        char dir[BHXB_PATH_MAX + 32], bpath[BHXB_PATH_MAX + 48], fpath[BHXB_PATH_MAX + 48];
        char bkind[40];
        unsigned int be;
        uint64_t devid;

        if (bhxb_parse_u64(ents[i], strlen(ents[i]), 0, UINT32_MAX, &devid) != 0)
            continue;
        r.devid = (unsigned int)devid;
        snprintf(dir, sizeof(dir), "%s/%s", path, ents[i]);
        snprintf(fpath, sizeof(fpath), "%s/frontend", dir);
        read_str(xs, fpath, fpath, sizeof(fpath));
        snprintf(bpath, sizeof(bpath), "%s/backend", dir);
        read_str(xs, bpath, bpath, sizeof(bpath));
        snprintf(r.vdev, sizeof(r.vdev), "%s", ents[i]);
        if (vbd) {
            char p[BHXB_PATH_MAX + 48];
            snprintf(p, sizeof(p), "%s/dev", dir);
            read_str(xs, p, r.vdev, sizeof(r.vdev));
            if (r.vdev[0] == '\0')
                snprintf(r.vdev, sizeof(r.vdev), "%s", ents[i]);
            snprintf(p, sizeof(p), "/local/domain/%u/data/bulkhead/vbd/%u/uri", info.domid,
                     r.devid);
            read_str(xs, p, r.uri, sizeof(r.uri));
        } else {
            char p[BHXB_PATH_MAX + 48];
            snprintf(p, sizeof(p), "%s/mac", dir);
            read_str(xs, p, r.mac, sizeof(r.mac));
        }
        if (fpath[0] != '\0')
            r.state = read_state(xs, fpath);
        if (bpath[0] != '\0' && parse_backend_path(bpath, &be, bkind, sizeof(bkind)) == 0) {
            r.backend_state = read_state(xs, bpath);
            backend_id = be;
            domain_name(&h, be, r.backend, sizeof(r.backend));
            r.worker_pid = worker_pid(xs, &h, be, bkind, info.domid, r.devid);
        }
        if (json) {
            printf("%s\n  {\"vdev\": ", i ? "," : "");
            print_json_string(r.vdev);
            printf(", \"devid\": %u, \"backend\": ", r.devid);
            print_json_string(r.backend);
            printf(", \"state\": %d, \"backend_state\": %d, \"worker_pid\": %ld, ", r.state,
                   r.backend_state, r.worker_pid);
            printf(vbd ? "\"uri\": " : "\"mac\": ");
            print_json_string(vbd ? r.uri : r.mac);
            printf(", \"backend_id\": %ld}", backend_id);
        } else {
            char pid[24];
            snprintf(pid, sizeof(pid), "%ld", r.worker_pid);
            printf(vbd ? "%-8s %-16s %5d %8d %10s  %s\n" : "%-6s %-16s %5d %8d %10s  %s\n",
                   r.vdev, r.backend, r.state, r.backend_state, r.worker_pid < 0 ? "-" : pid,
                   vbd ? (r.uri[0] ? r.uri : "-") : r.mac);
        }
    }
    if (json)
        printf("%s]\n", n ? "\n" : "");
    free(ents);
    xs_close(xs);
    hvc_close(&h);
    return 0;
}

int cmd_block_list(int argc, char **argv)
{
    return devlist(argc, argv, "vbd");
}

int cmd_network_list(int argc, char **argv)
{
    return devlist(argc, argv, "vif");
}
