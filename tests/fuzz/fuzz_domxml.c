/*
 * fuzz_domxml.c - a libvirt domain XML from anywhere, through libxml2, the
 * domain.rng validation and our reading of it.  Invariants: no crash or
 * leak, any refusal is one line, and what is accepted is a PV guest whose
 * device specs carry no control character.
 */
#include <string.h>

#include "domxml.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xlcfg c;
    char err[1024];

    if (domxml_read(&c, "fuzz.xml", (const char *)data, size, NULL, err, sizeof(err)) != 0) {
        FUZZ_ASSERT(strchr(err, '\n') == NULL);
        FUZZ_ASSERT(err[0] != '\0');
        return 0;
    }
    FUZZ_ASSERT(c.name[0] != '\0' && strcmp(c.type, "pv") == 0);
    FUZZ_ASSERT(c.memory_mb >= 1 && c.maxmem_mb >= c.memory_mb);
    FUZZ_ASSERT(c.vcpus >= 1 && c.vcpus <= 512);
    FUZZ_ASSERT(!c.driver_domain && c.nstorage == 0);
    for (size_t i = 0; i < c.ndisks; i++)
        FUZZ_ASSERT(strpbrk(c.disks[i], "\n\r\t") == NULL);
    for (size_t i = 0; i < c.nvifs; i++)
        FUZZ_ASSERT(strpbrk(c.vifs[i], "\n\r\t") == NULL);
    xlcfg_free(&c);
    return 0;
}
