/*
 * xlcfg.c - see xlcfg.h.  The grammar is libxlutil's; this file only says
 * what the simulation makes of the values.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxl.h>
#include <libxlutil.h>

#include "vifspec.h"
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
        snprintf(err, errlen, XLCFG_NOT_PV_FMT, file, type ? type : builder);
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
    cfg->vbd_persistent = -1;
    if (get_long(c, "memory", 1, 1 << 24, &cfg->memory_mb, file, err, errlen) != 0)
        return -1;
    cfg->maxmem_mb = cfg->memory_mb;
    if (get_long(c, "maxmem", cfg->memory_mb, 1 << 24, &cfg->maxmem_mb, file, err, errlen) != 0 ||
        get_long(c, "vcpus", 1, 512, &cfg->vcpus, file, err, errlen) != 0 ||
        get_long(c, "driver_domain", 0, 1, &dd, file, err, errlen) != 0 ||
        get_long(c, "max_grant_frames", 1, 4096, &cfg->max_grant_frames, file, err, errlen) != 0 ||
        get_long(c, "max_event_channels", 1, 131072, &cfg->max_event_channels, file, err,
                 errlen) != 0 ||
        get_long(c, "bulkhead_vbd_queues", 1, 16, &cfg->vbd_queues, file, err, errlen) != 0 ||
        get_long(c, "bulkhead_vbd_persistent", 0, 1, &cfg->vbd_persistent, file, err, errlen) != 0)
        return -1;
    cfg->driver_domain = dd != 0;
#define X(i, key, opt, max)                                                                        \
    cfg->drv_opt[i] = -1;                                                                          \
    if (get_long(c, key, 0, max, &cfg->drv_opt[i], file, err, errlen) != 0)                        \
        return -1;                                                                                 \
    if (cfg->drv_opt[i] >= 0 && !cfg->driver_domain) {                                             \
        snprintf(err, errlen, "%s: %s is a driver domain's setting: add driver_domain = 1 or "    \
                 "remove it", file, key);                                                          \
        return -1;                                                                                 \
    }
    XLCFG_DRV_OPTS
#undef X
    if (check_type(cfg, c, file, err, errlen) != 0)
        return -1;
    static const char *const boot[] = {"kernel", "ramdisk", "extra", "cmdline", "root",
                                       "bootloader"};
    for (size_t i = 0; i < sizeof(boot) / sizeof(boot[0]); i++)
        note(cfg, c, boot[i]);
    return 0;
}

size_t xlcfg_drvdom_args(const struct xlcfg *cfg, char num[XLCFG_DRV_NOPTS][24], const char **argv)
{
    size_t n = 0;

#define X(i, key, opt, max)                                                                        \
    if (cfg->drv_opt[i] >= 0) {                                                                    \
        snprintf(num[i], sizeof(num[i]), "%ld", cfg->drv_opt[i]);                                  \
        argv[n++] = opt;                                                                           \
        argv[n++] = num[i];                                                                        \
    }
    XLCFG_DRV_OPTS
#undef X
    return n;
}

void xlcfg_free(struct xlcfg *cfg)
{
    char **lists[] = {cfg->disks, cfg->vifs, cfg->storage, cfg->init};

    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        for (char **p = lists[i]; p && *p; p++)
            free(*p);
        free(lists[i]);
    }
    cfg->disks = cfg->vifs = cfg->storage = cfg->init = NULL;
    cfg->ndisks = cfg->nvifs = cfg->nstorage = cfg->ninit = 0;
}

int xlcfg_normalize_path(const char *path, char *buf, size_t size)
{
    size_t o = 0;
    const char *p = path;

    if (path == NULL || path[0] != '/' || size < 2) {
        errno = EINVAL;
        return -1;
    }
    buf[0] = '\0';
    while (*p) {
        size_t n;
        while (*p == '/')
            p++;
        n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.')) {
            /* nothing */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            while (o > 0 && buf[--o] != '/')
                ;
            buf[o] = '\0';
        } else {
            if (o + 1 + n + 1 > size) {
                errno = ENAMETOOLONG;
                return -1;
            }
            buf[o++] = '/';
            memcpy(buf + o, p, n);
            o += n;
            buf[o] = '\0';
        }
        p += n;
    }
    if (o == 0)
        snprintf(buf, size, "/");
    return 0;
}

char *xlcfg_one_line(char *s)
{
    for (char *p = s; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return s;
}

/* No control character, at most XLCFG_SPEC_MAX - 1 bytes. */
static bool text_ok(const char *s)
{
    size_t n = strlen(s);

    if (n >= XLCFG_SPEC_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static int push(char ***list, size_t *n, const char *s, size_t len)
{
    char **l = realloc(*list, (*n + 2) * sizeof(*l));

    if (l == NULL)
        return -1;
    *list = l;
    if ((l[*n] = strndup(s, len)) == NULL)
        return -1;
    l[++*n] = NULL;
    return 0;
}

/*
 * A list of strings: key = [ "...", ... ].  Missing: 0 with nothing.
 * what names an entry in messages ("disk spec").
 */
static int get_strings(XLU_Config *c, const char *key, size_t max, char ***out, size_t *n,
                       const char *file, char *err, size_t errlen)
{
    XLU_ConfigList *list;
    int count, r = xlu_cfg_get_list(c, key, &list, &count, 1);

    if (r == ESRCH)
        return 0;
    if (r != 0) {
        snprintf(err, errlen, "%s: %s must be a list: %s = [ \"...\", ... ]", file, key, key);
        return -1;
    }
    if ((size_t)count > max) {
        snprintf(err, errlen, "%s: %s has %d entries, more than %zu", file, key, count, max);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        const char *s = xlu_cfg_get_listitem(list, i);
        if (s == NULL || !text_ok(s)) {
            snprintf(err, errlen,
                     "%s: %s entry %d must be a string of printable characters, shorter than "
                     "%d bytes",
                     file, key, i + 1, XLCFG_SPEC_MAX);
            return -1;
        }
        if (push(out, n, s, strlen(s)) != 0) {
            snprintf(err, errlen, "%s: out of memory", file);
            return -1;
        }
    }
    return 0;
}

static int read_storage(struct xlcfg *cfg, XLU_Config *c, const char *file, char *err,
                        size_t errlen)
{
    char **raw = NULL;
    size_t n = 0;
    char norm[XLCFG_SPEC_MAX];
    int rc = -1;

    if (get_strings(c, "bulkhead_storage", XLCFG_STORAGE_MAX, &raw, &n, file, err, errlen) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (xlcfg_normalize_path(raw[i], norm, sizeof(norm)) != 0) {
            snprintf(err, errlen,
                     "%s: bulkhead_storage entry '%s' is not an absolute directory: write it "
                     "from /",
                     file, raw[i]);
            goto out;
        }
        if (strcmp(norm, "/") == 0) {
            snprintf(err, errlen,
                     "%s: bulkhead_storage entry '%s' would give the driver domain the whole "
                     "host: name the directories that hold its images",
                     file, raw[i]);
            goto out;
        }
        if (push(&cfg->storage, &cfg->nstorage, norm, strlen(norm)) != 0) {
            snprintf(err, errlen, "%s: out of memory", file);
            goto out;
        }
    }
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(raw[i]);
    free(raw);
    return rc;
}

/* bulkhead_init: a string split on spaces, or a list of arguments. */
static int read_init(struct xlcfg *cfg, XLU_Config *c, const char *file, char *err,
                     size_t errlen)
{
    const char *s;

    if (xlu_cfg_get_string(c, "bulkhead_init", &s, 1) == 0) {
        if (!text_ok(s)) {
            snprintf(err, errlen, "%s: bulkhead_init must be printable and shorter than %d bytes",
                     file, XLCFG_SPEC_MAX);
            return -1;
        }
        for (const char *p = s; *p;) {
            size_t len;
            while (*p == ' ')
                p++;
            if ((len = strcspn(p, " ")) == 0)
                break;
            if (cfg->ninit == XLCFG_INIT_MAX) {
                snprintf(err, errlen, "%s: bulkhead_init has more than %d arguments", file,
                         XLCFG_INIT_MAX);
                return -1;
            }
            if (push(&cfg->init, &cfg->ninit, p, len) != 0) {
                snprintf(err, errlen, "%s: out of memory", file);
                return -1;
            }
            p += len;
        }
    } else if (xlu_cfg_get_list(c, "bulkhead_init", NULL, NULL, 1) != ESRCH) {
        if (get_strings(c, "bulkhead_init", XLCFG_INIT_MAX, &cfg->init, &cfg->ninit, file, err,
                        errlen) != 0)
            return -1;
    } else {
        return 0; /* not given */
    }
    if (cfg->ninit == 0 || cfg->init[0][0] == '\0') {
        snprintf(err, errlen, "%s: bulkhead_init names no command: bulkhead_init = \"CMD ARG...\"",
                 file);
        return -1;
    }
    return 0;
}

/* bulkhead_uplink_address = "A.B.C.D/N": a unicast host address on the uplink bridge. */
static int read_uplink_address(struct xlcfg *cfg, XLU_Config *c, const char *file, char *err,
                               size_t errlen)
{
    const char *s, *slash;
    char host[INET_ADDRSTRLEN];
    struct in_addr a;
    unsigned long prefix = 0;
    char *end = NULL;
    uint32_t h;

    host[0] = '\0';
    if (xlu_cfg_get_string(c, "bulkhead_uplink_address", &s, 1) != 0) {
        if (xlu_cfg_get_list(c, "bulkhead_uplink_address", NULL, NULL, 1) == 0) {
            snprintf(err, errlen, "%s: bulkhead_uplink_address is one address: "
                     "bulkhead_uplink_address = \"192.0.2.1/24\"", file);
            return -1;
        }
        return 0;
    }
    slash = strchr(s, '/');
    if (slash != NULL && (size_t)(slash - s) < sizeof(host)) {
        memcpy(host, s, (size_t)(slash - s));
        host[slash - s] = '\0';
        if (slash[1] >= '1' && slash[1] <= '9') /* no sign, no leading zero */
            prefix = strtoul(slash + 1, &end, 10);
    }
    if (end == NULL || *end != '\0' || prefix > 32 || inet_pton(AF_INET, host, &a) != 1 ||
        (h = ntohl(a.s_addr)) >> 24 == 0 || h >> 24 == 127 || h >> 28 >= 14) {
        snprintf(err, errlen,
                 "%s: bulkhead_uplink_address '%.64s' is not an IPv4 host address with its "
                 "prefix: e.g. bulkhead_uplink_address = \"192.0.2.1/24\"",
                 file, s);
        return -1;
    }
    if (cfg->uplink[0] == '\0') {
        snprintf(err, errlen, "%s: bulkhead_uplink_address without bulkhead_uplink: name the "
                 "bridge it goes on (bulkhead_uplink = \"xenbr0\")", file);
        return -1;
    }
    cfg->uplink_addr = a.s_addr;
    cfg->uplink_prefix = (unsigned int)prefix;
    return 0;
}

static int read_devices(struct xlcfg *cfg, XLU_Config *c, const char *file, char *err,
                        size_t errlen)
{
    const char *s;

    if (get_strings(c, "disk", XLCFG_DEVS_MAX, &cfg->disks, &cfg->ndisks, file, err, errlen) != 0 ||
        get_strings(c, "vif", XLCFG_DEVS_MAX, &cfg->vifs, &cfg->nvifs, file, err, errlen) != 0 ||
        read_storage(cfg, c, file, err, errlen) != 0 || read_init(cfg, c, file, err, errlen) != 0)
        return -1;
    if (xlu_cfg_get_string(c, "bulkhead_uplink", &s, 1) == 0) {
        if (!vifspec_ifname_ok(s)) {
            snprintf(err, errlen,
                     "%s: bulkhead_uplink '%s' is not a bridge name: 1 to 15 characters, none "
                     "of '/', ':' or spaces",
                     file, s);
            return -1;
        }
        snprintf(cfg->uplink, sizeof(cfg->uplink), "%s", s);
    } else if (xlu_cfg_get_list(c, "bulkhead_uplink", NULL, NULL, 1) == 0) {
        snprintf(err, errlen, "%s: bulkhead_uplink is one bridge: bulkhead_uplink = \"BRIDGE\"",
                 file);
        return -1;
    }
    return read_uplink_address(cfg, c, file, err, errlen);
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
    if ((rc = read_values(cfg, c, file, err, errlen)) == 0 &&
        (rc = read_devices(cfg, c, file, err, errlen)) != 0)
        xlcfg_free(cfg);
out:
    if (rc != 0) /* a value quoted in the refusal may hold a newline: libxlutil unescapes "\n" */
        xlcfg_one_line(err);
    if (c != NULL)
        xlu_cfg_destroy(c);
    if (rf != NULL)
        fclose(rf);
    free(report);
    free(owned);
    return rc;
}
