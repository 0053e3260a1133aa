/*
 * fuzz_xlcfg.c - an xl config from anywhere, through libxlutil and our
 * reading of it.  Invariants: no crash or leak, and any refusal is one line.
 */
#include <string.h>

#include "fuzz.h"
#include "xlcfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xlcfg c;
    char err[512];

    if (xlcfg_read(&c, "fuzz.cfg", (const char *)data, size, err, sizeof(err)) != 0) {
        FUZZ_ASSERT(strchr(err, '\n') == NULL);
        FUZZ_ASSERT(err[0] != '\0');
    } else {
        FUZZ_ASSERT(c.name[0] != '\0');
        FUZZ_ASSERT(c.memory_mb >= 1 && c.maxmem_mb >= c.memory_mb);
        for (size_t i = 0; i < c.nstorage; i++)
            FUZZ_ASSERT(c.storage[i][0] == '/' && strcmp(c.storage[i], "/") != 0);
        FUZZ_ASSERT(c.init == NULL || (c.ninit > 0 && c.init[0][0] != '\0'));
        xlcfg_free(&c);
    }
    return 0;
}
