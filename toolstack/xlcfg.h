/*
 * xlcfg.h - an xl domain config, read by Xen's own parser (libxlutil), as
 * the simulation understands it.  A library: no hypervisor needed.
 *
 * Understood: name, memory, maxmem, vcpus, maxvcpus, driver_domain,
 * max_grant_frames, max_event_channels; the PV boot settings type, kernel,
 * ramdisk, extra, cmdline, root, bootloader are accepted and noted (a
 * simulated domain boots no kernel).  Refused, with the fix named: HVM and
 * PVH guests (type = "hvm"/"pvh", builder = "hvm").  Any other key is
 * ignored, as xl ignores keys it does not know.
 *
 * Devices: disk = [ "SPEC", ... ] and vif = [ "SPEC", ... ] are kept as
 * written, one string per device (diskspec.h and vifspec.h parse them).
 * Four keys of the simulation, which xl ignores:
 *   bulkhead_storage = [ "DIR", ... ]  absolute host directories a driver
 *                                      domain owns (its disks' targets);
 *   bulkhead_uplink = "BRIDGE"         the host bridge a driver domain's
 *                                      network reaches the world through;
 *   bulkhead_uplink_address = "A.B.C.D/N"  that bridge's IPv4 address in
 *                                      the driver domain (what routed vifs
 *                                      take); needs bulkhead_uplink;
 *   bulkhead_init = "CMD ARG ..." or [ "CMD", "ARG", ... ]
 *                                      a guest's workload, run without a
 *                                      shell: a string splits on spaces;
 *   bulkhead_vbd_queues = N            queues (1..16) a guest's block
 *                                      frontends ask for (its nbdkit
 *                                      plugin's queues=; default 4);
 *   bulkhead_vbd_persistent = 0|1      whether they ask for persistent
 *                                      grants (the plugin's persistent=;
 *                                      default 1).
 * And a driver domain's tunables, its bulkhead-drvdom's options (refused in
 * a guest's config): bulkhead_net_poll_us, bulkhead_blk_poll_us (0 to
 * 1000000), bulkhead_rx_stall_ms, bulkhead_grant_idle_ms (0 to 86400000).
 */
#ifndef BULKHEAD_XLCFG_H
#define BULKHEAD_XLCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XLCFG_NAME_MAX 64

struct xlcfg {
    char name[XLCFG_NAME_MAX];
    long memory_mb;     /* memory=, default 128 as xl */
    long maxmem_mb;     /* maxmem=, default memory */
    long vcpus;         /* vcpus=, default 1 */
    long max_grant_frames;   /* 0: the hypervisor's default */
    long max_event_channels; /* 0: the default */
    bool driver_domain;
    char type[16];      /* "pv" */
    char noted[256];    /* boot settings accepted and not used, e.g. "kernel, extra" */
    /* Allocated: free with xlcfg_free.  Each list is NULL-terminated too. */
    char **disks;   /* disk = [...], each spec as written */
    size_t ndisks;
    char **vifs;    /* vif = [...] */
    size_t nvifs;
    char **storage; /* bulkhead_storage, absolute and lexically normalized */
    size_t nstorage;
    char **init;    /* bulkhead_init's argv; NULL when not given */
    size_t ninit;
    char uplink[16]; /* bulkhead_uplink, "" when not given */
    uint32_t uplink_addr;          /* bulkhead_uplink_address, network order; 0: none */
    unsigned int uplink_prefix;    /* its /N, 1..32 */
    long vbd_queues; /* bulkhead_vbd_queues, 0 when not given */
    long vbd_persistent; /* bulkhead_vbd_persistent, -1 when not given */
    long drv_opt[4];     /* a driver domain's tunables (XLCFG_DRV_OPTS), -1 when not given */
};

/* The driver domain's tunables: config key, bulkhead-drvdom option, the largest value. */
#define XLCFG_DRV_OPTS                                                                             \
    X(0, "bulkhead_net_poll_us", "--net-poll-us", 1000000L)                                       \
    X(1, "bulkhead_blk_poll_us", "--blk-poll-us", 1000000L)                                       \
    X(2, "bulkhead_rx_stall_ms", "--rx-stall-ms", 86400000L)                                      \
    X(3, "bulkhead_grant_idle_ms", "--grant-idle-ms", 86400000L)
#define XLCFG_DRV_NOPTS 4

/*
 * bulkhead-drvdom's options for cfg's tunables: appends "--opt", "N" pairs
 * to argv (room for 2 * XLCFG_DRV_NOPTS), the numbers written in num.
 * Returns how many strings it appended.
 */
size_t xlcfg_drvdom_args(const struct xlcfg *cfg, char num[XLCFG_DRV_NOPTS][24], const char **argv);

/*
 * The refusal of an HVM or PVH guest, from an xl config or libvirt XML
 * (domxml.h) alike: the config's file, then "hvm" or "pvh".
 */
#define XLCFG_NOT_PV_FMT                                                                           \
    "%s: %s guests are not available in the simulation: make it a PV guest (xl: type = \"pv\"; " \
    "libvirt: <type>linux</type>) or run it on Xen"

#define XLCFG_DEVS_MAX 64     /* disks, vifs: each list */
#define XLCFG_STORAGE_MAX 32  /* bulkhead_storage entries */
#define XLCFG_INIT_MAX 64     /* bulkhead_init arguments */
#define XLCFG_SPEC_MAX 4096   /* bytes in one spec, path or argument */

/*
 * Reads FILE (or `len` bytes of `data` when data is not NULL; `file` then
 * only names it in messages).  Returns 0, or -1 with a one-line message in
 * err that names the fix.
 */
int xlcfg_read(struct xlcfg *cfg, const char *file, const char *data, size_t len, char *err,
               size_t errlen);

/* Frees what xlcfg_read allocated (after a successful read; a failed one frees it itself). */
void xlcfg_free(struct xlcfg *cfg);

/*
 * path, lexically normalized into buf: absolute, no "." or ".." component,
 * no repeated or trailing '/' ("/" stays "/").  ".." at the root stays at
 * the root, as the kernel resolves it.  0, or -1 with EINVAL (relative or
 * empty) or ENAMETOOLONG.
 */
int xlcfg_normalize_path(const char *path, char *buf, size_t size);

/*
 * Makes a message one line: every control character (an echoed value may
 * hold one) becomes '?'.  Returns s.
 */
char *xlcfg_one_line(char *s);

#endif
