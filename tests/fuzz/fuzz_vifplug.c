/*
 * fuzz_vifplug.c - what a Xen driver domain's opener reads from its
 * backend directory to plug a vif (driverdom/vifplug.c's vifplug_spec):
 * the input is vifname, bridge, mtu and script, separated by NUL bytes (a
 * missing one is NULL), then one byte for the queues asked.  Invariants:
 * no crash; a refusal is one non-empty printable line; an accepted spec
 * names a TAP and a bridge that are interface names of [A-Za-z0-9_.-]
 * (never "%", "/", ":" or "."/".."), an mtu of 0 or 68..65535, and the
 * queues asked.
 */
#include <errno.h>
#include <string.h>

#include "drv.h"
#include "fuzz.h"

static void ifname(const char *s)
{
    size_t n = strnlen(s, 16);

    FUZZ_ASSERT(n > 0 && n < 16);
    FUZZ_ASSERT(strcmp(s, ".") != 0 && strcmp(s, "..") != 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char buf[1024], *f[4] = {NULL, NULL, NULL, NULL}, why[200];
    unsigned int queues;
    struct vifplug s;
    size_t n, at = 0;

    if (size < 1 || size > sizeof(buf))
        return 0;
    queues = data[0] % (BHDEV_MAX_FDS + 2);
    n = size - 1;
    memcpy(buf, data + 1, n);
    buf[n] = '\0';
    for (unsigned int i = 0; i < 4 && at <= n; i++) {
        f[i] = buf + at;
        at += strlen(buf + at) + 1;
    }
    memset(why, 0, sizeof(why));
    if (vifplug_spec(1 + data[0], data[0] % 3, f[0], f[1], f[2], f[3], queues, &s, why,
                     sizeof(why)) != 0) {
        FUZZ_ASSERT(errno == EINVAL || errno == EOPNOTSUPP);
        FUZZ_ASSERT(why[0] != '\0');
        for (const char *c = why; *c != '\0'; c++)
            FUZZ_ASSERT((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
        return 0;
    }
    ifname(s.name);
    ifname(s.bridge);
    FUZZ_ASSERT(s.mtu == 0 || (s.mtu >= 68 && s.mtu <= 65535));
    FUZZ_ASSERT(s.queues == queues && queues >= 1 && queues <= BHDEV_MAX_FDS);
    return 0;
}
