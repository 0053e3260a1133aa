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
 */
#ifndef BULKHEAD_XLCFG_H
#define BULKHEAD_XLCFG_H

#include <stdbool.h>
#include <stddef.h>

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
};

/*
 * Reads FILE (or `len` bytes of `data` when data is not NULL; `file` then
 * only names it in messages).  Returns 0, or -1 with a one-line message in
 * err that names the fix.
 */
int xlcfg_read(struct xlcfg *cfg, const char *file, const char *data, size_t len, char *err,
               size_t errlen);

#endif
