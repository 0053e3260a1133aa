/*
 * fuzz_hv_create.c - a DOM_CREATE payload from anywhere: the fixed part and
 * the string block split into argv and envp.  Invariants: no crash or
 * leak, and an accepted request's arrays hold exactly argc and envc strings,
 * each inside the block.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "hv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hvw_dom_create_req r;
    char *copy = NULL, **argv = NULL, **envp = NULL;
    uint32_t n;

    if (domain_parse_create(data, size, &r, &copy, &argv, &envp) != 0) {
        FUZZ_ASSERT(copy == NULL);
        return 0;
    }
    for (n = 0; argv[n] != NULL; n++)
        FUZZ_ASSERT(argv[n] >= copy && argv[n] < copy + r.strings_len);
    FUZZ_ASSERT(n == r.argc);
    for (n = 0; envp[n] != NULL; n++)
        FUZZ_ASSERT(envp[n] >= copy && envp[n] < copy + r.strings_len);
    FUZZ_ASSERT(n == r.envc);
    FUZZ_ASSERT(strnlen(r.name, sizeof(r.name)) < sizeof(r.name));
    free(argv);
    free(copy);
    return 0;
}
