/*
 * nbdkit-plugin.c - nbdkit-bulkhead-plugin: a vbd of this guest exported
 * over NBD, so that fio (nbd engine), nbdcopy, nbdinfo and qemu-img reach
 * the disk.
 *
 *   nbdkit --unix SOCK -t N nbdkit-bulkhead-plugin.so vbd=DEVID \
 *          [timeout=MS] [ring-order=0..4] [pool-pages=N] [persistent=BOOL] [indirect=BOOL]
 *          [queues=1..16]
 *
 * Design: the plugin process owns the device, XenStore handshake included
 * (bhblkfront_open), because it is the process that maps the ring and the
 * bounce pool; bulkhead-guest only starts one nbdkit per vbd and publishes
 * its URI.  nbdkit forks into the background after .get_ready, so the
 * device (and its event thread) is opened in .after_fork.  The PARALLEL
 * thread model: the device has up to queues= rings (min with the
 * backend's offer; 4 by default), and each nbdkit worker thread submits to
 * the queue libbhblkfront dealt it at its first call, so the workers spread
 * over the queues round robin and threads on different queues take
 * different locks.  All connections share the device, so multi-conn is
 * safe: a flush covers every connection's writes, whatever their queues -
 * a backend answers a flush only once the writes it has completed are
 * durable, and a write is completed before its caller flushes.  A worker
 * waits for its own completion by polling its own queue for a few
 * microseconds - the common case at depth 1, where the response arrives
 * while the submitter is still on its CPU, so no wake-up crosses CPUs -
 * and only then sleeps on a futex, which the thread that consumed its
 * response wakes.  Only one worker polls, and only while its request is
 * the only one in flight: at depth 32 spinning workers would take the CPUs
 * that the backend and the NBD client need, and the event thread completes
 * responses in batches there.
 *
 * All of the device's threads run on one CPU (cpu=, default auto): every
 * request passes between them twice - a worker queues on nbdkit's request
 * lock behind the one reading the socket, then sleeps until the event thread
 * wakes it with its response - and left to the scheduler they spread over
 * the CPUs, so that most of those hand-offs wake a thread on another CPU
 * (an inter-processor interrupt, dear in a virtual machine) or migrate it.
 * On one CPU they are a run-queue insertion.  On a 2-CPU virtual machine,
 * 4 KiB random reads at depth 32 in a guest went from 45-50k to 58-62k IOPS
 * (four runs each way, alternated), and in one run 1 MiB reads from 1.6 to
 * 2.1 GB/s; a thread per queue on the queue's CPU (blk-mq's way) gave 37k,
 * since nbdkit's request lock is per connection.  The price is a ceiling of one CPU's
 * work for the device; cpu=all lifts it.  auto spreads devices: the
 * (domid + disk index)th CPU of those the process may use.
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "bhblkfront.h"
#include "bhplat.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/*
 * How long a lone submitter polls before it sleeps: under the 45-58 us a
 * wake-up across CPUs costs here (DESIGN.md), so that a response the
 * backend turns round in time is taken without one.  It was 0 (no polling
 * at all) after the nbd merge, and depth-1 reads paid that wake-up.
 */
#define SPIN_NS    20000L
#define ZERO_CHUNK (1u << 20)

static atomic_bool polling;   /* one worker polls the ring at a time */
static atomic_uint in_flight; /* requests of all workers, submitted and not done */
static uint32_t vbd = UINT32_MAX;
static uint32_t timeout_ms = 30000;
static struct bhblkfront_cfg opts = {.ring_order = 0}; /* one page unless asked, as Linux */
static bhblkfront_dev *dev;
static bhblkfront *blk;
static struct bhblkfront_info info;
static const uint8_t zeroes[ZERO_CHUNK];
enum { CPU_AUTO = -1, CPU_ALL = -2 };
static int cpu_want = CPU_AUTO; /* cpu=: a CPU number, CPU_AUTO or CPU_ALL */

static int bh_config(const char *key, const char *value)
{
    unsigned long n;
    uint32_t v;
    char *end;
    int b;

    if (strcmp(key, "vbd") == 0)
        return nbdkit_parse_uint32_t("vbd", value, &vbd);
    if (strcmp(key, "timeout") == 0)
        return nbdkit_parse_uint32_t("timeout", value, &timeout_ms);
    if (strcmp(key, "ring-order") == 0) {
        if (nbdkit_parse_uint32_t("ring-order", value, &v) == -1)
            return -1;
        if (v > 4) {
            nbdkit_error("ring-order=%u: give 0..4", v);
            return -1;
        }
        opts.ring_order = v;
        return 0;
    }
    if (strcmp(key, "queues") == 0) {
        if (nbdkit_parse_uint32_t("queues", value, &v) == -1)
            return -1;
        if (v < 1 || v > BHBLKFRONT_MAX_QUEUES) {
            nbdkit_error("queues=%u: give 1..%u (the backend may offer fewer)", v,
                         BHBLKFRONT_MAX_QUEUES);
            return -1;
        }
        opts.queues = v;
        return 0;
    }
    if (strcmp(key, "pool-pages") == 0) {
        if (nbdkit_parse_uint32_t("pool-pages", value, &v) == -1)
            return -1;
        opts.pool_pages = v;
        return 0;
    }
    if (strcmp(key, "persistent") == 0 || strcmp(key, "indirect") == 0) {
        if ((b = nbdkit_parse_bool(value)) == -1)
            return -1;
        if (key[0] == 'p')
            opts.no_persistent = !b;
        else
            opts.no_indirect = !b;
        return 0;
    }
    if (strcmp(key, "cpu") == 0) {
        if (strcmp(value, "auto") == 0 || strcmp(value, "all") == 0) {
            cpu_want = strcmp(value, "auto") == 0 ? CPU_AUTO : CPU_ALL;
            return 0;
        }
        errno = 0;
        n = strtoul(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || value[0] == '-' || n >= CPU_SETSIZE) {
            nbdkit_error("cpu=%s: give a CPU number below %d, auto or all", value, CPU_SETSIZE);
            return -1;
        }
        cpu_want = (int)n;
        return 0;
    }
    nbdkit_error("unknown parameter '%s': give vbd=, timeout=, ring-order=, queues=, "
                 "pool-pages=, persistent=, indirect= or cpu=",
                 key);
    return -1;
}

static int bh_config_complete(void)
{
    cpu_set_t allowed;

    if (vbd == UINT32_MAX) {
        nbdkit_error("no vbd: give vbd=DEVID (the vbd's number, e.g. 51712 for xvda)");
        return -1;
    }
    if (cpu_want >= 0 && (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 ||
                          !CPU_ISSET(cpu_want, &allowed))) {
        nbdkit_error("cpu=%d: this process may not run on CPU %d (taskset -p %d says where it "
                     "may): give one of those, auto or all",
                     cpu_want, cpu_want, (int)getpid());
        return -1;
    }
    return 0;
}

/*
 * Confines this thread, and so every thread it creates later (the event
 * thread, nbdkit's workers), to the CPU cpu= names; auto picks one of the
 * CPUs the process may use.  Returns the CPU, or -1 (all, or one CPU only).
 */
static int confine_cpu(void)
{
    cpu_set_t allowed, one;
    int n, pick, domid, cpu;

    if (cpu_want == CPU_ALL || sched_getaffinity(0, sizeof(allowed), &allowed) != 0 ||
        (n = CPU_COUNT(&allowed)) < 2)
        return -1;
    cpu = cpu_want;
    if (cpu == CPU_AUTO) {
        /* Consecutive disks (devids 16 apart) and consecutive domains on
         * consecutive CPUs. */
        domid = bhplat_domid();
        pick = (int)(((unsigned int)(domid < 0 ? 0 : domid) + (vbd >> 4)) % (unsigned int)n);
        for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
            if (CPU_ISSET(cpu, &allowed) && pick-- == 0)
                break;
    }
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0) {
        nbdkit_debug("vbd %u: cannot keep to CPU %d (%s): threads run anywhere", vbd, cpu,
                     strerror(errno));
        return -1;
    }
    return cpu;
}

/* Threads only after fork: nbdkit daemonises between get_ready and after_fork. */
static int bh_after_fork(void)
{
    char why[256];
    int cpu = confine_cpu(); /* before bhblkfront_open starts the event thread */

    if ((dev = bhblkfront_open(vbd, &opts, (int)timeout_ms, why, sizeof(why))) == NULL) {
        nbdkit_error("%s", why);
        return -1;
    }
    blk = bhblkfront_dev_blk(dev);
    if (bhblkfront_get_info(blk, &info) != 0) {
        nbdkit_error("vbd %u connected without its keys", vbd);
        return -1;
    }
    nbdkit_debug("vbd %u: %llu 512-byte sectors, %u-byte logical ones, %u queue(s) of %u "
                 "offered, ring order %u, %u segments, persistent %d, flush %d, discard %d, "
                 "trusted %d, CPU %d",
                 vbd, (unsigned long long)info.sectors, info.sector_size, info.queues,
                 info.backend_max_queues, info.ring_order,
                 info.max_segments, info.persistent, info.flush, info.discard, info.trusted, cpu);
    return 0;
}

static void bh_unload(void)
{
    bhblkfront_close(dev);
    dev = NULL;
}

static void *bh_open(int readonly)
{
    (void)readonly;
    return &vbd; /* one device for every connection */
}

/*
 * Asked at every new NBD connection: the size as of the backend's last
 * resize (NBD cannot tell a client already connected; a new one sees it).
 */
static int64_t bh_get_size(void *h)
{
    struct bhblkfront_info now;
    uint64_t size;

    (void)h;
    if (bhblkfront_get_info(blk, &now) != 0) {
        nbdkit_error("vbd %u: no size: %s", vbd, strerror(errno));
        return -1;
    }
    size = now.sectors * 512;
    return (int64_t)(size - size % now.sector_size);
}

/*
 * What NBD clients must align to: the logical sector (the backend refuses
 * less), and prefer: the physical one, at least a page (our data path's
 * unit).
 */
static int bh_block_size(void *h, uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
    unsigned int pref =
        info.physical_sector_size > info.sector_size ? info.physical_sector_size : info.sector_size;

    (void)h;
    *minimum = info.sector_size;
    *preferred = pref > 4096 ? pref : 4096;
    *maximum = 0xffffffff;
    return 0;
}

static int bh_can_write(void *h)
{
    (void)h;
    return (info.info & 4) == 0; /* VDISK_READONLY */
}

static int bh_can_flush(void *h)
{
    (void)h;
    return info.flush;
}

static int bh_can_fua(void *h)
{
    (void)h;
    return info.flush ? NBDKIT_FUA_EMULATE : NBDKIT_FUA_NONE;
}

static int bh_can_trim(void *h)
{
    (void)h;
    return info.discard;
}

static int bh_can_zero(void *h)
{
    (void)h;
    return 1;
}

static int bh_can_fast_zero(void *h)
{
    (void)h;
    return info.discard;
}

static int bh_can_multi_conn(void *h)
{
    (void)h;
    return 1;
}

static int bh_is_rotational(void *h)
{
    (void)h;
    return 0;
}

/* ---- waiting for one's own completion ---- */

/*
 * A worker's wait for its request: one futex word, so that a completion
 * costs one atomic exchange and (only when the worker sleeps) one wake, with
 * no mutex for the two to contend on.
 */
enum { W_PENDING, W_SLEEPING, W_DONE };

struct waiter {
    atomic_int state;
    int err;
};

static void futex_op(atomic_int *word, int op, int val)
{
    syscall(SYS_futex, word, op, val, NULL, NULL, 0);
}

static void on_done(void *arg, int err)
{
    struct waiter *w = arg;

    w->err = err; /* published by the exchange */
    /* After the exchange the worker may return and w be gone: the wake
     * uses its address only, and every futex wait here loops on its word. */
    if (atomic_exchange(&w->state, W_DONE) == W_SLEEPING)
        futex_op(&w->state, FUTEX_WAKE_PRIVATE, 1);
}

static long elapsed_ns(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

static int run(enum bhblkfront_op op, uint64_t off, uint64_t len, void *buf)
{
    struct waiter w = {.state = W_PENDING, .err = 0};
    struct timespec t0;
    unsigned int q = bhblkfront_queue(blk); /* this thread's */
    int err, s;

    atomic_fetch_add(&in_flight, 1);
    if (bhblkfront_submit_queue(blk, q, op, off, len, buf, on_done, &w) != 0) {
        err = errno;
        atomic_fetch_sub(&in_flight, 1);
        goto out;
    }
    if (atomic_load(&in_flight) == 1 && !atomic_exchange(&polling, true)) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (atomic_load(&w.state) != W_DONE && elapsed_ns(&t0) < SPIN_NS)
            bhblkfront_poll_queue(blk, q);
        atomic_store(&polling, false);
    }
    s = W_PENDING;
    if (atomic_compare_exchange_strong(&w.state, &s, W_SLEEPING))
        while (atomic_load(&w.state) != W_DONE)
            futex_op(&w.state, FUTEX_WAIT_PRIVATE, W_SLEEPING);
    err = w.err;
    atomic_fetch_sub(&in_flight, 1);
out:
    if (err != 0) {
        nbdkit_error("vbd %u: %s of %llu bytes at %llu: %s", vbd,
                     op == BHBLKFRONT_READ    ? "read"
                     : op == BHBLKFRONT_WRITE ? "write"
                     : op == BHBLKFRONT_FLUSH ? "flush"
                                              : "discard",
                     (unsigned long long)len, (unsigned long long)off, strerror(err));
        nbdkit_set_error(err);
        return -1;
    }
    return 0;
}

static int bh_pread(void *h, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    (void)h;
    (void)flags;
    return run(BHBLKFRONT_READ, offset, count, buf);
}

static int bh_pwrite(void *h, const void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    (void)h;
    (void)flags; /* FUA is emulated by nbdkit with a flush */
    return run(BHBLKFRONT_WRITE, offset, count, (void *)buf);
}

static int bh_flush(void *h, uint32_t flags)
{
    (void)h;
    (void)flags;
    return run(BHBLKFRONT_FLUSH, 0, 0, NULL);
}

static int bh_trim(void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
    (void)h;
    (void)flags;
    return run(BHBLKFRONT_DISCARD, offset, count, NULL);
}

/*
 * Write-zeroes: a discard when the client allows holes and asks for speed
 * (the backend punches holes, which read back as zeroes), writes of zero
 * pages otherwise.  A fast zero we cannot do fast is ENOTSUP, as NBD says.
 */
static int bh_zero(void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
    (void)h;
    if (flags & NBDKIT_FLAG_FAST_ZERO) {
        if (!info.discard || !(flags & NBDKIT_FLAG_MAY_TRIM)) {
            nbdkit_set_error(ENOTSUP);
            return -1;
        }
        return run(BHBLKFRONT_DISCARD, offset, count, NULL);
    }
    while (count > 0) {
        uint32_t n = count < ZERO_CHUNK ? count : ZERO_CHUNK;

        if (run(BHBLKFRONT_WRITE, offset, n, (void *)zeroes) != 0)
            return -1;
        offset += n;
        count -= n;
    }
    return 0;
}

static struct nbdkit_plugin plugin = {
    .name = "bulkhead",
    .longname = "Bulkhead blkfront: a PV block device of this guest",
    .version = PACKAGE_VERSION,
    .config = bh_config,
    .config_complete = bh_config_complete,
    .config_help = "vbd=DEVID (required) timeout=MS ring-order=0..4 pool-pages=N "
                   "persistent=BOOL indirect=BOOL queues=1..16 cpu=N|auto|all",
    .magic_config_key = "vbd",
    .after_fork = bh_after_fork,
    .unload = bh_unload,
    .open = bh_open,
    .get_size = bh_get_size,
    .block_size = bh_block_size,
    .can_write = bh_can_write,
    .can_flush = bh_can_flush,
    .can_fua = bh_can_fua,
    .can_trim = bh_can_trim,
    .can_zero = bh_can_zero,
    .can_fast_zero = bh_can_fast_zero,
    .can_multi_conn = bh_can_multi_conn,
    .is_rotational = bh_is_rotational,
    .pread = bh_pread,
    .pwrite = bh_pwrite,
    .flush = bh_flush,
    .trim = bh_trim,
    .zero = bh_zero,
    .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)
