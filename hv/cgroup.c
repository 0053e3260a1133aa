/*
 * cgroup.c - memory and process limits for a domain, where the machine
 * allows: a control group per domain under the memory and pids controllers
 * (cgroup v2's unified hierarchy, or v1's per-controller ones).
 *
 * This is best effort by design: a machine without writable cgroups still
 * runs domains, limited by the per-uid process rlimit that dombuild sets.
 * An address-space rlimit is no substitute for a memory limit: sanitizer
 * builds reserve terabytes of address space, and a limit on it would stop
 * them from starting at all.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dombuild.h"
#include "hv.h"

#define CG_PIDS_MAX 1024

static int write_str(const char *dir, const char *file, const char *val)
{
    char path[512];
    int fd, r;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
        return -1;
    r = write(fd, val, strlen(val)) == (ssize_t)strlen(val) ? 0 : -1;
    close(fd);
    return r;
}

/* The group directory for a controller, created; "" if this machine has none. */
static int group_dir(const struct hv *hv, const char *ctrl, uint16_t domid, char *out, size_t len)
{
    static const char *const roots[] = {"/sys/fs/cgroup/%s", "/sys/fs/cgroup"};
    char base[256], probe[300];

    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        snprintf(base, sizeof(base), roots[i], ctrl);
        snprintf(probe, sizeof(probe), "%s/cgroup.procs", base);
        if (access(probe, W_OK) != 0)
            continue;
        /* v2 names the controller in a file; v1 in the mount's own name. */
        snprintf(probe, sizeof(probe), "%s/%s.max", base, ctrl);
        if (i == 1 && access(probe, F_OK) != 0 && strcmp(ctrl, "memory") == 0) {
            snprintf(probe, sizeof(probe), "%s/memory.limit_in_bytes", base);
            if (access(probe, F_OK) != 0)
                continue;
        }
        snprintf(out, len, "%s/bulkhead-%u", base, (unsigned)hv->uid_base);
        if (mkdir(out, 0755) != 0 && errno != EEXIST)
            return -1;
        snprintf(out + strlen(out), len - strlen(out), "/dom%u", domid);
        if (mkdir(out, 0755) != 0 && errno != EEXIST)
            return -1;
        return 0;
    }
    out[0] = '\0';
    return -1;
}

static void adopt_one(pid_t pid, uid_t uid, void *dir)
{
    char num[24];

    (void)uid;
    snprintf(num, sizeof(num), "%d", (int)pid);
    write_str(dir, "cgroup.procs", num);
}

/* Moves every process running as `uid` into the group. */
static void adopt(const char *dir, uid_t uid)
{
    dombuild_each_proc(uid, uid, adopt_one, (void *)dir);
}

void cgroup_limit(struct hv *hv, const struct hv_dom *d)
{
    char dir[512], val[64];
    bool any = false;

    if (d->memory_kb > 0 && group_dir(hv, "memory", d->domid, dir, sizeof(dir)) == 0) {
        snprintf(val, sizeof(val), "%llu", (unsigned long long)d->memory_kb * 1024);
        if (write_str(dir, "memory.max", val) == 0 ||
            write_str(dir, "memory.limit_in_bytes", val) == 0) {
            adopt(dir, d->uid);
            any = true;
        }
    }
    if (group_dir(hv, "pids", d->domid, dir, sizeof(dir)) == 0) {
        snprintf(val, sizeof(val), "%d", CG_PIDS_MAX);
        if (write_str(dir, "pids.max", val) == 0) {
            adopt(dir, d->uid);
            any = true;
        }
    }
    if (!any)
        hv_log(hv, "domain %u (%s): no writable memory or pids cgroup here: limited by rlimits "
                   "only",
               d->domid, d->name);
}

void cgroup_release(struct hv *hv, const struct hv_dom *d)
{
    static const char *const ctrls[] = {"memory", "pids"};
    char dir[512];

    for (size_t i = 0; i < sizeof(ctrls) / sizeof(ctrls[0]); i++)
        if (group_dir(hv, ctrls[i], d->domid, dir, sizeof(dir)) == 0)
            rmdir(dir); /* empty once every process is gone */
}

void cgroup_cleanup(struct hv *hv)
{
    static const char *const roots[] = {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                                        "/sys/fs/cgroup"};
    char dir[512];

    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        snprintf(dir, sizeof(dir), "%s/bulkhead-%u", roots[i], (unsigned)hv->uid_base);
        rmdir(dir);
    }
}
