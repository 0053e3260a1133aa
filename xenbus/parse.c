/*
 * parse.c - strict parsers for XenStore values another domain wrote.
 *
 * No strtol/atoi: they skip leading space, accept signs and base prefixes,
 * and stop quietly at garbage, so that " 4x" would read as 4.  Here a value
 * is accepted only if every byte of it is part of one canonical number.
 */
#include <errno.h>
#include <string.h>

#include "bhxenbus.h"

#define MAX_DIGITS 20 /* UINT64_MAX has 20 */

static int fail(int err)
{
    errno = err;
    return -1;
}

/*
 * Canonical unsigned decimal of exactly len bytes, into a uint64_t.  Every
 * byte is checked before any arithmetic, so that garbage is always EPROTO
 * and only a well-formed number too big is ERANGE.
 */
static int parse_digits(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || len == 0 || len > BHXB_VALUE_MAX)
        return fail(EPROTO);
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return fail(EPROTO);
    if (s[0] == '0' && len > 1)
        return fail(EPROTO); /* "007" is not canonical */
    if (len > MAX_DIGITS)
        return fail(ERANGE);
    for (size_t i = 0; i < len; i++) {
        unsigned int d = (unsigned int)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return fail(ERANGE);
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int bhxb_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;

    if (out == NULL)
        return fail(EINVAL);
    if (parse_digits(s, len, &v) != 0)
        return -1;
    if (v < min || v > max)
        return fail(ERANGE);
    *out = v;
    return 0;
}

int bhxb_parse_int(const char *s, size_t len, int min, int max, int *out)
{
    uint64_t mag;
    int64_t v;
    bool neg = len > 0 && s != NULL && s[0] == '-';

    if (out == NULL)
        return fail(EINVAL);
    if (parse_digits(neg ? s + 1 : s, neg ? len - 1 : len, &mag) != 0)
        return -1;
    if (neg && mag == 0)
        return fail(EPROTO); /* "-0" */
    if (mag > (uint64_t)INT32_MAX + 1)
        return fail(ERANGE);
    v = neg ? -(int64_t)mag : (int64_t)mag;
    if (v < min || v > max)
        return fail(ERANGE);
    *out = (int)v;
    return 0;
}

int bhxb_parse_state(const char *s, size_t len, XenbusState *out)
{
    uint64_t v;

    if (bhxb_parse_u64(s, len, XenbusStateUnknown, XenbusStateReconfigured, &v) != 0)
        return -1;
    *out = (XenbusState)v;
    return 0;
}

int bhxb_parse_bool(const char *s, size_t len, bool *out)
{
    if (out == NULL)
        return fail(EINVAL);
    if (s == NULL || len != 1 || (s[0] != '0' && s[0] != '1'))
        return fail(EPROTO);
    *out = s[0] == '1';
    return 0;
}

int bhxb_parse_evtchn(const char *s, size_t len, uint32_t *out)
{
    uint64_t v;

    if (bhxb_parse_u64(s, len, 1, (1u << 17) - 1, &v) != 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int bhxb_parse_gref(const char *s, size_t len, uint32_t *out)
{
    uint64_t v;

    if (bhxb_parse_u64(s, len, 0, UINT32_MAX, &v) != 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int bhxb_parse_str(const char *s, size_t len, char *buf, size_t size)
{
    if (s == NULL || buf == NULL || size == 0)
        return fail(EINVAL);
    if (len >= size || len > BHXB_VALUE_MAX)
        return fail(ERANGE);
    /* Control bytes would let a peer forge lines in our logs; NUL would truncate. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return fail(EPROTO);
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 0;
}

int bhxb_parse_u32_list(const char *s, size_t len, uint32_t *out, size_t max, size_t *n)
{
    size_t count = 0, start = 0;

    if (s == NULL || out == NULL || n == NULL)
        return fail(EINVAL);
    if (len > BHXB_VALUE_MAX)
        return fail(ERANGE);
    if (len == 0)
        return fail(EPROTO);
    for (size_t i = 0; i <= len; i++) {
        uint64_t v;
        if (i < len && s[i] != ' ')
            continue;
        /* An empty field: a leading, trailing or doubled space. */
        if (i == start)
            return fail(EPROTO);
        if (count == max)
            return fail(ERANGE);
        if (bhxb_parse_u64(s + start, i - start, 0, UINT32_MAX, &v) != 0)
            return -1;
        out[count++] = (uint32_t)v;
        start = i + 1;
    }
    *n = count;
    return 0;
}
