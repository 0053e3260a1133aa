/*
 * fuzz_handover.c - what either end of a keeper's handover socket may
 * read (driverdom/handover.h), through ho_check: a keeper reads TAKE,
 * REFUSE or EXIT from a process of the driver domain; a new worker reads
 * OFFER and GO from the keeper.  The first byte picks which types the
 * reader allows, the rest is the message as it came off the socket.
 * Invariants: no crash; a refusal is one non-empty line; an accepted
 * message is of an allowed type, its strings end inside their arrays and
 * are printable, and the fields its type uses are within range (a GO
 * carries 2..HO_MAX_FDS descriptors, an OFFER's memfd holds its layout).
 */
#include <string.h>

#include "fuzz.h"
#include "handover.h"

static void printable(const char *s, size_t size)
{
    const char *end = memchr(s, '\0', size);

    FUZZ_ASSERT(end != NULL);
    for (; s < end; s++)
        FUZZ_ASSERT((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ho_msg m;
    unsigned int allowed;
    char why[200];

    if (size < 1)
        return 0;
    allowed = (unsigned int)data[0] << 1; /* bits 1..8: the types */
    memset(why, 0, sizeof(why));
    if (ho_check(data + 1, size - 1, allowed, &m, why, sizeof(why)) != 0) {
        FUZZ_ASSERT(why[0] != '\0');
        FUZZ_ASSERT(strchr(why, '\n') == NULL);
        return 0;
    }
    FUZZ_ASSERT(m.magic == HO_MAGIC && m.proto == HO_PROTO);
    FUZZ_ASSERT(m.type < 32 && (allowed & HO_BIT(m.type)));
    switch (m.type) {
    case HO_OFFER:
        printable(m.backend_kind, sizeof(m.backend_kind));
        FUZZ_ASSERT(m.backend_kind[0] != '\0');
        FUZZ_ASSERT((uint64_t)m.header_size + m.kept_size <= m.map_size);
        __attribute__((fallthrough));
    case HO_TAKE:
        printable(m.drv, sizeof(m.drv));
        FUZZ_ASSERT(m.header_size > 0);
        break;
    case HO_REFUSE:
        printable(m.text, sizeof(m.text));
        FUZZ_ASSERT(m.text[0] != '\0');
        break;
    case HO_GO:
        FUZZ_ASSERT(m.nfds >= 2 && m.nfds <= HO_MAX_FDS);
        break;
    case HO_EXIT:
        FUZZ_ASSERT(m.status <= 255);
        break;
    default:
        FUZZ_ASSERT(0);
    }
    return 0;
}
