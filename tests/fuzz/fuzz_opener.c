/*
 * fuzz_opener.c - what a Xen driver domain's opener makes of a disk's
 * params before it opens anything (driverdom/opener.c's
 * drvdom_target_path): the input is the params string.  Invariants: no
 * crash; a refusal is EINVAL or ENOENT with one non-empty printable line;
 * an accepted params gives a non-empty suffix of itself, and one that is
 * an NBD URI gives an absolute path with nothing of a URI left in it.
 * Nothing is opened: the target is only named.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "drv.h"
#include "drvdom.h"
#include "fuzz.h"

/* opener.c logs through the daemon's logline; nothing here logs. */
void vlogline(const char *prefix, const char *fmt, va_list ap)
{
    (void)prefix;
    (void)fmt;
    (void)ap;
}

void logline(const char *fmt, ...)
{
    (void)fmt;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char params[512], why[200];
    const char *t, *p = params;

    if (size >= sizeof(params))
        return 0;
    memcpy(params, data, size);
    params[size] = '\0';
    memset(why, 0, sizeof(why));
    errno = 0;
    t = drvdom_target_path(params, why, sizeof(why));
    if (t == NULL) {
        FUZZ_ASSERT(errno == EINVAL || errno == ENOENT);
        FUZZ_ASSERT(why[0] != '\0');
        for (const char *c = why; *c != '\0'; c++)
            FUZZ_ASSERT((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
        return 0;
    }
    FUZZ_ASSERT(t >= params && t < params + strlen(params));
    FUZZ_ASSERT(t[0] != '\0');
    if (strncmp(p, "aio:", 4) == 0 || strncmp(p, "raw:", 4) == 0)
        p += 4;
    if (strncmp(p, "nbd", 3) == 0 && strchr(p, ':') != NULL) {
        FUZZ_ASSERT(t[0] == '/');
        FUZZ_ASSERT(strpbrk(t, "&%#?") == NULL);
        FUZZ_ASSERT(strncmp(p, "nbd+unix:///?socket=", 20) == 0 && t == p + 20);
    }
    return 0;
}
