/*
 * howire.c - the keeper socket's messages (handover.h), checked as they
 * come off the wire.  Apart from the rest of the keeper so that the fuzz
 * target (tests/fuzz/fuzz_handover.c) runs exactly this code.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "handover.h"

#define HO_MAX_HEADER (1u << 20) /* far above any struct keep */
#define HO_MAX_KEPT   (16u << 20)

/* A string field: NUL-terminated inside its array, printable, non-empty if need be. */
static bool field_ok(const char *s, size_t size, bool nonempty)
{
    const char *end = memchr(s, '\0', size);

    if (end == NULL || (nonempty && end == s))
        return false;
    for (const char *p = s; p < end; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            return false;
    return true;
}

static const char *type_name(unsigned int t)
{
    switch (t) {
    case HO_OFFER:
        return "OFFER";
    case HO_TAKE:
        return "TAKE";
    case HO_REFUSE:
        return "REFUSE";
    case HO_GO:
        return "GO";
    case HO_EXIT:
        return "EXIT";
    default:
        return "unknown";
    }
}

int ho_check(const void *buf, size_t len, unsigned int allowed, struct ho_msg *out, char *why,
             size_t whylen)
{
    struct ho_msg m;

    if (len != sizeof(m)) {
        snprintf(why, whylen, "a message of %zu bytes, not %zu", len, sizeof(m));
        goto bad;
    }
    memcpy(&m, buf, sizeof(m));
    if (m.magic != HO_MAGIC) {
        snprintf(why, whylen, "magic 0x%08x, not 0x%08x: not a bulkhead-drvdom keeper message",
                 m.magic, HO_MAGIC);
        goto bad;
    }
    if (m.proto != HO_PROTO) {
        snprintf(why, whylen, "handover protocol %u, not %u", m.proto, HO_PROTO);
        goto bad;
    }
    if (m.type > 31 || !(allowed & HO_BIT(m.type))) {
        snprintf(why, whylen, "message type %u (%s) out of turn", m.type, type_name(m.type));
        goto bad;
    }
    switch (m.type) {
    case HO_OFFER:
        if (!field_ok(m.backend_kind, sizeof(m.backend_kind), true)) {
            snprintf(why, whylen, "OFFER with a bad backend kind");
            goto bad;
        }
        if ((uint64_t)m.header_size + m.kept_size > m.map_size) {
            snprintf(why, whylen, "OFFER of a %u-byte memfd for %u + %u bytes of state", m.map_size,
                     m.header_size, m.kept_size);
            goto bad;
        }
        /* the layout as TAKE has it */
        __attribute__((fallthrough));
    case HO_TAKE:
        if (!field_ok(m.drv, sizeof(m.drv), true)) {
            snprintf(why, whylen, "%s with a bad driver name", type_name(m.type));
            goto bad;
        }
        if (m.header_size == 0 || m.header_size > HO_MAX_HEADER || m.kept_size > HO_MAX_KEPT) {
            snprintf(why, whylen, "%s of a layout of %u + %u bytes", type_name(m.type),
                     m.header_size, m.kept_size);
            goto bad;
        }
        break;
    case HO_REFUSE:
        if (!field_ok(m.text, sizeof(m.text), true)) {
            snprintf(why, whylen, "REFUSE without a printable one-line reason");
            goto bad;
        }
        break;
    case HO_GO:
        if (m.nfds < 2 || m.nfds > HO_MAX_FDS) {
            snprintf(why, whylen, "GO with %u descriptors (2 to %u)", m.nfds, HO_MAX_FDS);
            goto bad;
        }
        break;
    case HO_EXIT:
        if (m.status > 255) {
            snprintf(why, whylen, "EXIT with status %u", m.status);
            goto bad;
        }
        break;
    default:
        snprintf(why, whylen, "message type %u", m.type);
        goto bad;
    }
    *out = m;
    return 0;
bad:
    errno = EPROTO;
    return -1;
}

int ho_sock_name(char *buf, size_t size, uint32_t backend_domid, const char *backend_kind,
                 uint32_t frontend_domid, uint32_t devid)
{
    int n = snprintf(buf, size, HO_SOCK_PREFIX "%u/%s-%u-%u", backend_domid, backend_kind,
                     frontend_domid, devid);

    return n < 0 || (size_t)n >= size ? -1 : 0;
}
