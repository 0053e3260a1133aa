/*
 * bench_hv.c - the simulated hypervisor's costs, each beside its baseline
 * measured in the same run:
 *   - share + map + unmap + unshare of 1 and 64 pages, beside an mmap +
 *     touch + munmap of the same number of anonymous pages;
 *   - grant copy throughput, beside memcpy of the same bytes;
 *   - notify-to-wake-up round trips over an event channel between two
 *     processes, beside a bare eventfd ping-pong.
 * It starts a bulkhead-hv of its own in a temporary state directory, as
 * dom0, granting to itself (Xen allows a domain to grant to itself).
 *
 * Usage: bench_hv [-r REPEATS]   (root)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bhplat.h"
#include "ringpair.h"
#include "testutil.h"

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct test_hv hv;

/* Microseconds per share+map+touch+unmap+unshare of `pages` pages. */
static double grant_cycle_us(bhgntshr_handle *gs, bhgnttab_handle *gt, int pages, int iters)
{
    bh_grant_ref_t refs[64];
    double t0 = now();

    for (int i = 0; i < iters; i++) {
        void *s = bhgntshr_share_pages(gs, 0, pages, refs, 1);
        void *m = s ? bhgnttab_map_domain_grant_refs(gt, (uint32_t)pages, 0, refs,
                                                     PROT_READ | PROT_WRITE)
                    : NULL;
        if (m == NULL) {
            fprintf(stderr, "bench_hv: share/map failed: %s\n", strerror(errno));
            exit(1);
        }
        for (int p = 0; p < pages; p++)
            ((volatile char *)m)[p * 4096] = 1;
        bhgnttab_unmap(gt, m, (uint32_t)pages);
        bhgntshr_unshare(gs, s, (uint32_t)pages);
    }
    return (now() - t0) * 1e6 / iters;
}

static double anon_cycle_us(int pages, int iters)
{
    double t0 = now();

    for (int i = 0; i < iters; i++) {
        char *m = mmap(NULL, (size_t)pages * 4096, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (int p = 0; p < pages; p++)
            ((volatile char *)m)[p * 4096] = 1;
        munmap(m, (size_t)pages * 4096);
    }
    return (now() - t0) * 1e6 / iters;
}

/* GB/s of grant copy from a local buffer into 64 granted pages. */
static double copy_gbs(bhgntshr_handle *gs, bhgnttab_handle *gt, int rounds, double *memcpy_gbs)
{
    static bhgnttab_grant_copy_segment_t segs[256];
    static char src[256 * 4096];
    bh_grant_ref_t refs[64];
    void *s = bhgntshr_share_pages(gs, 0, 64, refs, 1);
    static char dst[256 * 4096];
    double t0, dt;

    if (s == NULL)
        return 0;
    memset(src, 7, sizeof(src));
    for (int i = 0; i < 256; i++) {
        memset(&segs[i], 0, sizeof(segs[i]));
        segs[i].source.virt = src + i * 4096;
        segs[i].dest.foreign.ref = refs[i % 64];
        segs[i].dest.foreign.domid = 0;
        segs[i].len = 4096;
        segs[i].flags = 2; /* GNTCOPY_dest_gref */
    }
    t0 = now();
    for (int r = 0; r < rounds; r++)
        if (bhgnttab_grant_copy(gt, 256, segs) != 0 || segs[0].status != 0) {
            fprintf(stderr, "bench_hv: grant copy failed (status %d)\n", segs[0].status);
            exit(1);
        }
    dt = now() - t0;
    t0 = now();
    for (int r = 0; r < rounds; r++) {
        memcpy(dst, src, sizeof(src));
        __asm__ volatile("" ::"r"(dst) : "memory");
    }
    *memcpy_gbs = (double)rounds * sizeof(src) / (now() - t0) / 1e9;
    bhgntshr_unshare(gs, s, 64);
    return (double)rounds * sizeof(src) / dt / 1e9;
}

/* Round trips per second over an event channel between two processes. */
static double evtchn_rtt(int rounds)
{
    bhevtchn_handle *a = bhevtchn_open(NULL, 0);
    int pa = a ? bhevtchn_bind_unbound_port(a, 0) : -1, go[2];
    double t0, dt;
    pid_t pid;

    if (pa < 0 || pipe(go) != 0)
        return 0;
    if ((pid = fork()) == 0) {
        bhevtchn_handle *b = bhevtchn_open(NULL, 0);
        int pb = b ? bhevtchn_bind_interdomain(b, 0, (bh_evtchn_port_t)pa) : -1;
        struct pollfd p = {.fd = b ? bhevtchn_fd(b) : -1, .events = POLLIN};
        if (pb < 0 || write(go[1], "x", 1) != 1)
            _exit(1);
        for (int i = 0; i < rounds; i++) {
            if (poll(&p, 1, 10000) != 1)
                _exit(1);
            bhevtchn_unmask(b, (bh_evtchn_port_t)bhevtchn_pending(b));
            bhevtchn_notify(b, (bh_evtchn_port_t)pb);
        }
        _exit(0);
    }
    char c;
    if (read(go[0], &c, 1) != 1)
        return 0;
    struct pollfd p = {.fd = bhevtchn_fd(a), .events = POLLIN};
    t0 = now();
    for (int i = 0; i < rounds; i++) {
        bhevtchn_notify(a, (bh_evtchn_port_t)pa);
        if (poll(&p, 1, 10000) != 1)
            break;
        bhevtchn_unmask(a, (bh_evtchn_port_t)bhevtchn_pending(a));
    }
    dt = now() - t0;
    waitpid(pid, NULL, 0);
    bhevtchn_close(a);
    return rounds / dt;
}

int main(int argc, char **argv)
{
    int repeats = 3, c;
    double v[16], w[16];

    while ((c = getopt(argc, argv, "r:")) != -1) {
        if (c != 'r' || (repeats = atoi(optarg)) < 1 || repeats > 16) {
            fprintf(stderr, "usage: bench_hv [-r REPEATS(1..16)]\n");
            return 2;
        }
    }
    if (geteuid() != 0) {
        fprintf(stderr, "bench_hv: needs root (it starts a bulkhead-hv)\n");
        return 1;
    }
    char err[512];

    if (test_hv_start(&hv, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_hv: %s\n", err);
        return 1;
    }
    bhgntshr_handle *gs = bhgntshr_open(NULL, 0);
    bhgnttab_handle *gt = bhgnttab_open(NULL, 0);
    if (gs == NULL || gt == NULL) {
        fprintf(stderr, "bench_hv: cannot open the platform: %s\n", strerror(errno));
        test_hv_stop(&hv);
        return 1;
    }
    printf("%-44s %12s %12s %8s\n", "operation", "bulkhead", "baseline", "ratio");
    for (int pages = 1; pages <= 64; pages *= 64) {
        for (int i = 0; i < repeats; i++) {
            v[i] = grant_cycle_us(gs, gt, pages, pages == 1 ? 2000 : 200);
            w[i] = anon_cycle_us(pages, pages == 1 ? 2000 : 200);
        }
        double g = test_median(v, repeats), a = test_median(w, repeats);
        printf("share+map+unmap %2d page(s), us (vs anon mmap) %12.1f %12.1f %8.2f\n", pages, g, a,
               g / a);
    }
    for (int i = 0; i < repeats; i++)
        v[i] = copy_gbs(gs, gt, 200, &w[i]);
    double cg = test_median(v, repeats), mg = test_median(w, repeats);
    printf("%-44s %12.2f %12.2f %8.2f\n", "grant copy GB/s (vs memcpy)", cg, mg, cg / mg);
    for (int i = 0; i < repeats; i++) {
        v[i] = evtchn_rtt(20000);
        w[i] = ringpair_eventfd_pingpong(20000, NULL);
    }
    double er = test_median(v, repeats), pr = test_median(w, repeats);
    printf("%-44s %12.0f %12.0f %8.2f\n", "notify round trips/s (vs eventfd)", er, pr, er / pr);
    printf("(median of %d; ratio = bulkhead / baseline: above 1 is slower for times, faster for "
           "rates)\n",
           repeats);
    bhgnttab_close(gt);
    bhgntshr_close(gs);
    test_hv_stop(&hv);
    return 0;
}
