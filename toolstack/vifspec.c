/*
 * vifspec.c - see vifspec.h.  xl's grammar (xl_parse.c parse_nic_config,
 * libxlutil's xlu_vif_parse_rate), read strictly: every refusal names the
 * item and what to write instead.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "vifspec.h"
#include "xlcfg.h"

/* Canonical decimal: digits only, no leading zero, at most max. */
static int parse_dec(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20 || (s[0] == '0' && len > 1))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static size_t digits(const char *s)
{
    size_t n = 0;

    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

/* RATE: N then B/s (bytes) or b/s (bits), optionally prefixed by K, M or G (powers of 1000). */
static int parse_bytes_per_sec(const char *s, uint64_t *out, char *err, size_t errlen)
{
    size_t n = digits(s);
    uint64_t v, mult = 1;
    const char *u = s + n;

    if (n == 0 || u[0] == '\0') {
        snprintf(err, errlen, "rate '%s' needs a number and a unit: e.g. 10MB/s or 100Mb/s", s);
        return -1;
    }
    if (parse_dec(s, n, UINT32_MAX, &v) != 0 || v == 0) {
        snprintf(err, errlen,
                 "rate '%s': the number must be 1 to %u, without leading zeros (xl reads them "
                 "as octal)",
                 s, UINT32_MAX);
        return -1;
    }
    if (*u == 'K' || *u == 'M' || *u == 'G') {
        mult = *u == 'K' ? 1000 : *u == 'M' ? 1000000 : 1000000000;
        u++;
    }
    if ((u[0] != 'B' && u[0] != 'b') || strcmp(u + 1, "/s") != 0) {
        snprintf(err, errlen,
                 "rate '%s': the unit must be B/s, KB/s, MB/s, GB/s (bytes) or b/s, Kb/s, Mb/s, "
                 "Gb/s (bits)",
                 s);
        return -1;
    }
    v *= mult; /* at most 2^32 * 10^9: no overflow */
    if (u[0] == 'b')
        v /= 8;
    *out = v;
    return 0;
}

/* INTERVAL: N then s, ms or us.  xl also takes a bare N (seconds) and "Nm"/"Nu": not us. */
static int parse_interval(const char *s, uint32_t *out, char *err, size_t errlen)
{
    size_t n = digits(s);
    uint64_t v, mult;
    const char *u = s + n;

    if (strcmp(u, "s") == 0)
        mult = 1000000;
    else if (strcmp(u, "ms") == 0)
        mult = 1000;
    else if (strcmp(u, "us") == 0)
        mult = 1;
    else {
        snprintf(err, errlen,
                 "rate interval '%s' needs a number and a unit: e.g. @50ms, @50000us or @1s", s);
        return -1;
    }
    if (parse_dec(s, n, UINT32_MAX, &v) != 0 || v == 0 || v * mult > UINT32_MAX) {
        snprintf(err, errlen, "rate interval '%s' must be from 1us to %uus, without leading zeros",
                 s, UINT32_MAX);
        return -1;
    }
    *out = (uint32_t)(v * mult);
    return 0;
}

static int parse_rate(const char *s, uint64_t *bytes, uint32_t *usecs, char *err, size_t errlen)
{
    char rate[64];
    const char *at = strchr(s, '@');
    size_t rlen = at ? (size_t)(at - s) : strlen(s);
    uint64_t bps;
    uint32_t us = VIFSPEC_RATE_USECS_DEFAULT;

    if (rlen >= sizeof(rate)) {
        snprintf(err, errlen, "rate '%.32s...' is too long: e.g. rate=10MB/s@50ms", s);
        return -1;
    }
    memcpy(rate, s, rlen);
    rate[rlen] = '\0';
    if (parse_bytes_per_sec(rate, &bps, err, errlen) != 0)
        return -1;
    if (at != NULL && parse_interval(at + 1, &us, err, errlen) != 0)
        return -1;
    if (bps > UINT64_MAX / us) {
        snprintf(err, errlen, "rate '%s' overflows: lower the rate or shorten the interval", s);
        return -1;
    }
    *bytes = bps * us / 1000000; /* as xlu_vif_parse_rate, to the byte */
    if (*bytes == 0) {
        snprintf(err, errlen,
                 "rate '%s' allows less than one byte per %uus interval: raise the rate or "
                 "lengthen the interval",
                 s, us);
        return -1;
    }
    *usecs = us;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_mac(const char *s, uint8_t mac[6], char *err, size_t errlen)
{
    uint8_t m[6];

    if (strlen(s) != 17)
        goto bad;
    for (int i = 0; i < 6; i++) {
        int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
            goto bad;
        m[i] = (uint8_t)(hi << 4 | lo);
    }
    if (m[0] & 1) {
        snprintf(err, errlen,
                 "mac '%s' is a multicast address: clear the lowest bit of the first byte (e.g. "
                 "00:16:3e:...)",
                 s);
        return -1;
    }
    if ((m[0] | m[1] | m[2] | m[3] | m[4] | m[5]) == 0) {
        snprintf(err, errlen, "mac '%s' is all zeros: give a real address or leave mac= out", s);
        return -1;
    }
    memcpy(mac, m, 6);
    return 0;
bad:
    snprintf(err, errlen,
             "mac '%s' is not six pairs of hex digits separated by ':' (e.g. "
             "00:16:3e:12:34:56)",
             s);
    return -1;
}

void vifspec_format_mac(const uint8_t mac[6], char buf[18])
{
    snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
             mac[5]);
}

int vifspec_default_mac(const char *domain, unsigned int index, bool stable, uint8_t mac[6])
{
    uint8_t r[3];

    if (stable) {
        char key[128];
        uint32_t h = 2166136261u; /* FNV-1a-32 */
        int n = snprintf(key, sizeof(key), "%s/%u", domain, index);
        for (int i = 0; i < n && i < (int)sizeof(key) - 1; i++)
            h = (h ^ (uint8_t)key[i]) * 16777619u;
        r[0] = (uint8_t)(h >> 16);
        r[1] = (uint8_t)(h >> 8);
        r[2] = (uint8_t)h;
    } else if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        return -1;
    }
    mac[0] = 0x00;
    mac[1] = 0x16;
    mac[2] = 0x3e;
    mac[3] = r[0] & 0x7f; /* as libxl: the upper half of the OUI's space is not used */
    mac[4] = r[1];
    mac[5] = r[2];
    return 0;
}

bool vifspec_ifname_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= VIFSPEC_IFNAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (; *s; s++)
        if (*s == '/' || *s == ':' || isspace((unsigned char)*s) || (unsigned char)*s < 0x20 ||
            *s == 0x7f)
            return false;
    return true;
}

/* IPv4 or IPv6 addresses, each with an optional /PREFIX, separated by single spaces. */
static bool ip_list_ok(const char *s)
{
    char buf[VIFSPEC_STR_MAX], *save = NULL, *tok;
    size_t n = strlen(s);

    if (n == 0 || n >= sizeof(buf) || s[0] == ' ' || s[n - 1] == ' ' || strstr(s, "  "))
        return false;
    memcpy(buf, s, n + 1);
    for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *slash = strchr(tok, '/');
        unsigned char a[16];
        uint64_t prefix;
        int af = strchr(tok, ':') ? AF_INET6 : AF_INET;
        if (slash != NULL) {
            *slash++ = '\0';
            if (parse_dec(slash, strlen(slash), af == AF_INET ? 32 : 128, &prefix) != 0)
                return false;
        }
        if (inet_pton(af, tok, a) != 1)
            return false;
    }
    return true;
}

/* A value without control characters, of at most size-1 bytes. */
static bool copy_str(const char *val, char *buf, size_t size)
{
    size_t n = strlen(val);

    if (n == 0 || n >= size)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)val[i] < 0x20 || val[i] == 0x7f)
            return false;
    memcpy(buf, val, n + 1);
    return true;
}

enum vkey {
    K_MAC,
    K_BRIDGE,
    K_GATEWAYDEV,
    K_TYPE,
    K_MODEL,
    K_VIFNAME,
    K_SCRIPT,
    K_IP,
    K_BACKEND,
    K_RATE,
    K_MTU,
    K_DEVID,
    K_ACCEL,
    K_TRUST, /* trusted and untrusted: one of them */
    K_COUNT
};

static const struct {
    const char *name;
    enum vkey key;
} keys[] = {
    {"mac", K_MAC},           {"bridge", K_BRIDGE}, {"gatewaydev", K_GATEWAYDEV},
    {"netdev", K_GATEWAYDEV}, {"type", K_TYPE},     {"model", K_MODEL},
    {"vifname", K_VIFNAME},   {"script", K_SCRIPT}, {"ip", K_IP},
    {"backend", K_BACKEND},   {"rate", K_RATE},     {"mtu", K_MTU},
    {"devid", K_DEVID},       {"accel", K_ACCEL},
};

/* One KEY=VALUE item, its key known. */
static int set_value(struct vifspec *v, enum vkey k, const char *name, const char *val, char *err,
                     size_t errlen)
{
    uint64_t n;

    switch (k) {
    case K_MAC:
        if (parse_mac(val, v->mac, err, errlen) != 0)
            return -1;
        v->has_mac = true;
        return 0;
    case K_BRIDGE:
    case K_GATEWAYDEV:
    case K_VIFNAME: {
        char *dst = k == K_BRIDGE ? v->bridge : k == K_GATEWAYDEV ? v->gatewaydev : v->vifname;
        if (!vifspec_ifname_ok(val)) {
            snprintf(err, errlen,
                     "%s '%s' is not an interface name: 1 to 15 characters, none of '/', ':' "
                     "or spaces",
                     name, val);
            return -1;
        }
        snprintf(dst, VIFSPEC_IFNAME_MAX, "%s", val);
        return 0;
    }
    case K_TYPE:
        if (strcmp(val, "vif") == 0)
            return 0;
        snprintf(err, errlen,
                 strcmp(val, "ioemu") == 0
                     ? "type=ioemu is an emulated card of HVM guests: use type=vif (or leave "
                       "type out)"
                     : "type '%s' is not a vif type: use type=vif (or leave type out)",
                 val);
        return -1;
    case K_MODEL:
    case K_SCRIPT:
    case K_BACKEND: {
        char *dst = k == K_MODEL ? v->model : k == K_SCRIPT ? v->script : v->backend;
        size_t size = k == K_BACKEND ? sizeof(v->backend) : VIFSPEC_STR_MAX;
        if (!copy_str(val, dst, size)) {
            snprintf(err, errlen, "%s= must be 1 to %zu printable characters", name, size - 1);
            return -1;
        }
        return 0;
    }
    case K_IP:
        if (!ip_list_ok(val) || !copy_str(val, v->ip, sizeof(v->ip))) {
            snprintf(err, errlen,
                     "ip '%s' is not a list of addresses: e.g. ip=192.0.2.10 or "
                     "ip=192.0.2.10/24 2001:db8::10 (single spaces)",
                     val);
            return -1;
        }
        return 0;
    case K_RATE:
        if (parse_rate(val, &v->rate_bytes, &v->rate_usecs, err, errlen) != 0)
            return -1;
        v->has_rate = true;
        return 0;
    case K_MTU:
        if (parse_dec(val, strlen(val), 65535, &n) != 0 || n < 68) {
            snprintf(err, errlen, "mtu '%s' must be a number from 68 to 65535 (default 1500)", val);
            return -1;
        }
        v->mtu = (unsigned int)n;
        return 0;
    case K_DEVID:
        if (parse_dec(val, strlen(val), VIFSPEC_DEVID_MAX, &n) != 0) {
            snprintf(err, errlen, "devid '%s' must be a number from 0 to %d", val,
                     VIFSPEC_DEVID_MAX);
            return -1;
        }
        v->devid = (long)n;
        return 0;
    case K_ACCEL:
        v->accel = true; /* xl: "the accel parameter for vifs is currently not supported" */
        return 0;
    default:
        snprintf(err, errlen, "internal error: key %s", name);
        return -1;
    }
}

/* One item, trimmed: a flag or KEY=VALUE. */
static int parse_item(struct vifspec *v, const char *item, bool seen[K_COUNT], char *err,
                      size_t errlen)
{
    const char *eq = strchr(item, '=');
    size_t klen = eq ? (size_t)(eq - item) : strlen(item);

    if (eq == NULL && (strcmp(item, "trusted") == 0 || strcmp(item, "untrusted") == 0)) {
        if (seen[K_TRUST]) {
            snprintf(err, errlen, "trusted/untrusted given twice: keep one");
            return -1;
        }
        seen[K_TRUST] = true;
        v->trusted = item[0] == 't';
        return 0;
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strlen(keys[i].name) != klen || strncmp(item, keys[i].name, klen) != 0)
            continue;
        if (eq == NULL) {
            snprintf(err, errlen, "'%s' needs a value: %s=VALUE", item, keys[i].name);
            return -1;
        }
        if (seen[keys[i].key]) {
            snprintf(err, errlen, "%s given twice: keep one", keys[i].name);
            return -1;
        }
        seen[keys[i].key] = true;
        return set_value(v, keys[i].key, keys[i].name, eq + 1, err, errlen);
    }
    if (strncmp(item, "colo_", 5) == 0 || strncmp(item, "forwarddev", 10) == 0)
        snprintf(err, errlen, "'%.*s': COLO is not available in the simulation: remove it",
                 (int)klen, item);
    else
        snprintf(err, errlen,
                 "unknown key '%.*s': see xl-network-configuration(5) (mac, bridge, ip, rate, "
                 "mtu, backend, ...)",
                 (int)klen, item);
    return -1;
}

static int parse_spec(const char *spec, struct vifspec *v, char *err, size_t errlen)
{
    bool seen[K_COUNT] = {false};
    const char *p = spec;
    char item[VIFSPEC_STR_MAX + 32];

    memset(v, 0, sizeof(*v));
    v->mtu = VIFSPEC_MTU_DEFAULT;
    v->devid = -1;
    v->trusted = -1;
    while (*p == ' ')
        p++;
    if (*p == '\0')
        return 0; /* '': every default */
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0) {
            snprintf(err, errlen, "an empty item in '%s': remove the extra comma", spec);
            return -1;
        }
        if (n >= sizeof(item)) {
            snprintf(err, errlen, "an item of '%.32s...' is longer than %zu bytes", spec,
                     sizeof(item) - 1);
            return -1;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        if (parse_item(v, item, seen, err, errlen) != 0)
            return -1;
        if (end == NULL)
            return 0;
        p = end + 1;
    }
}

/* The public entry points: every message they leave is one line, whatever the input held. */
int vifspec_parse_rate(const char *s, uint64_t *bytes, uint32_t *usecs, char *err, size_t errlen)
{
    int rc = parse_rate(s, bytes, usecs, err, errlen);

    if (rc != 0)
        xlcfg_one_line(err);
    return rc;
}

int vifspec_parse_mac(const char *s, uint8_t mac[6], char *err, size_t errlen)
{
    int rc = parse_mac(s, mac, err, errlen);

    if (rc != 0)
        xlcfg_one_line(err);
    return rc;
}

int vifspec_parse(const char *spec, struct vifspec *v, char *err, size_t errlen)
{
    int rc = parse_spec(spec, v, err, errlen);

    if (rc != 0)
        xlcfg_one_line(err);
    return rc;
}

/* ---- what the scripts need ---- */

#define SCRIPT_DIR "/etc/xen/scripts/" /* where libxl puts a bare script name */

int vifspec_script(const char *script, bool *routed, char *err, size_t errlen)
{
    const char *s = script;

    if (strncmp(s, SCRIPT_DIR, strlen(SCRIPT_DIR)) == 0)
        s += strlen(SCRIPT_DIR);
    *routed = strcmp(s, "vif-route") == 0;
    if (s[0] == '\0' || *routed || strcmp(s, "vif-bridge") == 0)
        return 0;
    snprintf(err, errlen,
             "script '%s' does not exist here: bulkhead-drvdom runs no hotplug scripts and does "
             "what vif-bridge and vif-route do; use script=vif-bridge (the default) or "
             "script=vif-route",
             script);
    xlcfg_one_line(err);
    return -1;
}

static int routed_ip(char *tok, uint32_t ip[VIFSPEC_ROUTED_MAX], unsigned int *n, char *err,
                     size_t errlen)
{
    char *slash = strchr(tok, '/');
    struct in_addr a;
    uint32_t h;

    if (slash != NULL && strcmp(slash, "/32") != 0) {
        snprintf(err, errlen,
                 "ip %s of a routed vif is a network: vif-route routes host addresses; write %.*s",
                 tok, (int)(slash - tok), tok);
        return -1;
    }
    if (slash != NULL)
        *slash = '\0';
    if (inet_pton(AF_INET, tok, &a) != 1) {
        snprintf(err, errlen, "ip %s of a routed vif: routed vifs carry IPv4 only here; remove it",
                 tok);
        return -1;
    }
    h = ntohl(a.s_addr);
    if ((h >> 24) == 0 || (h >> 24) == 127 || (h >> 28) >= 14) {
        snprintf(err, errlen, "ip %s of a routed vif is no unicast host address: give the guest's "
                 "own", tok);
        return -1;
    }
    for (unsigned int i = 0; i < *n; i++)
        if (ip[i] == a.s_addr) {
            snprintf(err, errlen, "ip %s is given twice: keep one", tok);
            return -1;
        }
    if (*n == VIFSPEC_ROUTED_MAX) {
        snprintf(err, errlen, "a routed vif's ip= has more than %d addresses: keep %d",
                 VIFSPEC_ROUTED_MAX, VIFSPEC_ROUTED_MAX);
        return -1;
    }
    ip[(*n)++] = a.s_addr;
    return 0;
}

int vifspec_routed_ips(const char *ips, uint32_t ip[VIFSPEC_ROUTED_MAX], unsigned int *n,
                       char *err, size_t errlen)
{
    char buf[VIFSPEC_STR_MAX], *save = NULL, *tok;

    *n = 0;
    if (ips[strspn(ips, " ")] == '\0') { /* empty, or spaces only */
        snprintf(err, errlen,
                 "script=vif-route needs ip=: vif-route routes the guest's addresses to its vif; "
                 "add ip=ADDRESS (e.g. ip=192.0.2.10)");
        return -1;
    }
    if (strlen(ips) >= sizeof(buf)) {
        snprintf(err, errlen, "a routed vif's ip= is longer than %zu bytes", sizeof(buf) - 1);
        return -1;
    }
    memcpy(buf, ips, strlen(ips) + 1);
    for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
        if (routed_ip(tok, ip, n, err, errlen) != 0) {
            xlcfg_one_line(err);
            return -1;
        }
    return 0;
}
