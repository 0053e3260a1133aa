/*
 * xlcfg.c - see xlcfg.h.  The grammar is libxlutil's; this file only says
 * what the simulation makes of the values.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxl.h>
#include <libxlutil.h>

#include "xlcfg.h"

/* The first line libxlutil reported, without its newline. */
static void first_line(char *report, char *err, size_t errlen, const char *fallback)
{
    if (report != NULL && report[0] != '\0') {
        report[strcspn(report, "\n")] = '\0';
        snprintf(err, errlen, "%s (see xl.cfg(5))", report);
    } else {
        snprintf(err, errlen, "%s", fallback);
    }
}

static int get_long(XLU_Config *c, const char *key, long min, long max, long *out,
                    const char *file, char *err, size_t errlen)
{
    long v;
    int r = xlu_cfg_get_long(c, key, &v, 1);

    if (r == ESRCH)
        return 0;
    if (r != 0 || v < min || v > max) {
        snprintf(err, errlen, "%s: %s must be a number from %ld to %ld", file, key, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static void note(struct xlcfg *cfg, XLU_Config *c, const char *key)
{
    const char *s;
    size_t n = strlen(cfg->noted);

    if (xlu_cfg_get_string(c, key, &s, 1) != 0)
        return;
    snprintf(cfg->noted + n, sizeof(cfg->noted) - n, "%s%s", n ? ", " : "", key);
}

static int check_type(struct xlcfg *cfg, XLU_Config *c, const char *file, char *err,
                      size_t errlen)
{
    const char *type = NULL, *builder = NULL;

    xlu_cfg_get_string(c, "type", &type, 1);
    xlu_cfg_get_string(c, "builder", &builder, 1);
    if ((type && strcmp(type, "pv") != 0) || (builder && strcmp(builder, "linux") != 0 &&
                                              strcmp(builder, "generic") != 0)) {
        snprintf(err, errlen,
                 "%s: %s guests are not available in the simulation: use type = \"pv\" (or run "
                 "this config on Xen with xl)",
                 file, type ? type : builder);
        return -1;
    }
    snprintf(cfg->type, sizeof(cfg->type), "pv");
    return 0;
}

static int read_values(struct xlcfg *cfg, XLU_Config *c, const char *file, char *err,
                       size_t errlen)
{
    const char *name;
    long dd = 0;

    if (xlu_cfg_get_string(c, "name", &name, 1) != 0 || name[0] == '\0') {
        snprintf(err, errlen, "%s: no name: add name = \"NAME\"", file);
        return -1;
    }
    if (strlen(name) >= sizeof(cfg->name)) {
        snprintf(err, errlen, "%s: name is longer than %d characters", file, XLCFG_NAME_MAX - 1);
        return -1;
    }
    snprintf(cfg->name, sizeof(cfg->name), "%s", name);
    cfg->memory_mb = 128;
    cfg->vcpus = 1;
    if (get_long(c, "memory", 1, 1 << 24, &cfg->memory_mb, file, err, errlen) != 0)
        return -1;
    cfg->maxmem_mb = cfg->memory_mb;
    if (get_long(c, "maxmem", cfg->memory_mb, 1 << 24, &cfg->maxmem_mb, file, err, errlen) != 0 ||
        get_long(c, "vcpus", 1, 512, &cfg->vcpus, file, err, errlen) != 0 ||
        get_long(c, "driver_domain", 0, 1, &dd, file, err, errlen) != 0 ||
        get_long(c, "max_grant_frames", 1, 4096, &cfg->max_grant_frames, file, err, errlen) != 0 ||
        get_long(c, "max_event_channels", 1, 131072, &cfg->max_event_channels, file, err,
                 errlen) != 0)
        return -1;
    cfg->driver_domain = dd != 0;
    if (check_type(cfg, c, file, err, errlen) != 0)
        return -1;
    static const char *const boot[] = {"kernel", "ramdisk", "extra", "cmdline", "root",
                                       "bootloader"};
    for (size_t i = 0; i < sizeof(boot) / sizeof(boot[0]); i++)
        note(cfg, c, boot[i]);
    return 0;
}

#define XLCFG_MAX_BYTES (1u << 20)

/* The whole file, bounded; NULL with the reason in err. */
static char *slurp(const char *file, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(file, "re");
    char *buf = NULL;
    size_t n = 0;

    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot read it: %s", file, strerror(errno));
        return NULL;
    }
    if ((buf = malloc(XLCFG_MAX_BYTES + 1)) != NULL)
        n = fread(buf, 1, XLCFG_MAX_BYTES + 1, f);
    if (buf == NULL || ferror(f)) {
        snprintf(err, errlen, "%s: cannot read it: %s", file, strerror(errno ? errno : EIO));
        free(buf);
        buf = NULL;
    } else if (n > XLCFG_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %u bytes: is it an xl config?", file,
                 XLCFG_MAX_BYTES);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

int xlcfg_read(struct xlcfg *cfg, const char *file, const char *data, size_t len, char *err,
               size_t errlen)
{
    char *report = NULL;
    size_t rlen = 0;
    FILE *rf = open_memstream(&report, &rlen);
    XLU_Config *c = NULL;
    char *owned = NULL;
    const char *nul;
    int rc = -1, r;

    memset(cfg, 0, sizeof(*cfg));
    if (data == NULL && (data = owned = slurp(file, &len, err, errlen)) == NULL)
        goto out;
    if (len > XLCFG_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %u bytes: is it an xl config?", file,
                 XLCFG_MAX_BYTES);
        goto out;
    }
    /* libxlutil's lexer asserts on a NUL inside a string: refuse before it sees one. */
    if ((nul = memchr(data, '\0', len)) != NULL) {
        snprintf(err, errlen, "%s: a NUL byte at offset %zu: an xl config is text", file,
                 (size_t)(nul - data));
        goto out;
    }
    if (rf == NULL || (c = xlu_cfg_init(rf, file)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", file);
        goto out;
    }
    if ((r = xlu_cfg_readdata(c, data, (int)len)) != 0) {
        fflush(rf);
        first_line(report, err, errlen, "syntax error: see xl.cfg(5)");
        goto out;
    }
    rc = read_values(cfg, c, file, err, errlen);
out:
    if (c != NULL)
        xlu_cfg_destroy(c);
    if (rf != NULL)
        fclose(rf);
    free(report);
    free(owned);
    return rc;
}
