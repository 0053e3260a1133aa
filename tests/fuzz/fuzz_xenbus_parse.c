/*
 * fuzz_xenbus_parse.c - the parsers of values another domain writes into
 * XenStore: states, feature numbers and booleans, event channels, grant
 * references, strings and lists.
 *
 * Input: one byte choosing the parser (and, for ranges, its bounds), then
 * the value exactly as xs_read would return it (embedded NULs included).
 * The oracle is the canonical form: whatever a parser accepts must print
 * back to exactly the bytes it was given, and whatever it refuses must be
 * EPROTO, or ERANGE for a well-formed number out of range.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "bhxenbus.h"
#include "fuzz.h"

static void same(const char *s, size_t len, const char *printed)
{
    FUZZ_ASSERT(strlen(printed) == len && memcmp(printed, s, len) == 0);
}

/* Whether s is canonical decimal: what ERANGE may only be returned for. */
static bool well_formed(const char *s, size_t len)
{
    size_t i = len > 0 && s[0] == '-' ? 1 : 0;

    if (i == len || (s[i] == '0' && len - i > 1))
        return false;
    for (; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static void refused(int r, const char *s, size_t len)
{
    FUZZ_ASSERT(r == -1);
    FUZZ_ASSERT(errno == EPROTO || errno == ERANGE);
    if (errno == ERANGE)
        FUZZ_ASSERT(well_formed(s, len) || len > 20);
}

static void numbers(uint8_t sel, const char *s, size_t len)
{
    char out[64];
    uint64_t u, lo = sel & 1 ? 5 : 0, hi = sel & 2 ? 1000 : UINT64_MAX;
    uint32_t v;
    XenbusState st;
    int i, r;

    errno = 0;
    if ((r = bhxb_parse_u64(s, len, lo, hi, &u)) == 0) {
        FUZZ_ASSERT(u >= lo && u <= hi);
        snprintf(out, sizeof(out), "%" PRIu64, u);
        same(s, len, out);
    } else {
        refused(r, s, len);
    }
    if ((r = bhxb_parse_int(s, len, sel & 4 ? -10 : INT32_MIN, INT32_MAX, &i)) == 0) {
        snprintf(out, sizeof(out), "%d", i);
        same(s, len, out);
    } else {
        refused(r, s, len);
    }
    if ((r = bhxb_parse_state(s, len, &st)) == 0)
        FUZZ_ASSERT(st <= XenbusStateReconfigured);
    if ((r = bhxb_parse_evtchn(s, len, &v)) == 0)
        FUZZ_ASSERT(v >= 1 && v < (1u << 17));
    if ((r = bhxb_parse_gref(s, len, &v)) == 0) {
        snprintf(out, sizeof(out), "%" PRIu32, v);
        same(s, len, out);
    }
}

static void others(uint8_t sel, const char *s, size_t len)
{
    char buf[64], joined[BHXB_VALUE_MAX + 64];
    uint32_t list[16];
    size_t n = 0, off = 0;
    bool b;

    if (bhxb_parse_bool(s, len, &b) == 0)
        same(s, len, b ? "1" : "0");
    if (bhxb_parse_str(s, len, buf, 1 + sel % sizeof(buf)) == 0) {
        same(s, len, buf);
        for (size_t i = 0; i < len; i++)
            FUZZ_ASSERT((unsigned char)buf[i] >= 0x20 && buf[i] != 0x7f);
    }
    if (bhxb_parse_u32_list(s, len, list, 1 + sel % 16, &n) == 0) {
        FUZZ_ASSERT(n >= 1 && n <= 16);
        for (size_t i = 0; i < n; i++)
            off += (size_t)snprintf(joined + off, sizeof(joined) - off, "%s%" PRIu32, i ? " " : "",
                                    list[i]);
        same(s, len, joined);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t sel;

    if (size == 0)
        return 0;
    sel = data[0];
    /* The value is the rest, as xs_read would hand it over: bounded, not NUL-terminated here. */
    if (size - 1 > BHXB_VALUE_MAX)
        size = BHXB_VALUE_MAX + 1;
    numbers(sel, (const char *)data + 1, size - 1);
    others(sel, (const char *)data + 1, size - 1);
    return 0;
}
