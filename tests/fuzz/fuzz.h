/*
 * fuzz.h - what every fuzz target shares: the libFuzzer entry point, and a
 * cursor that turns the input into a stream of choices.
 *
 * A target is built twice: with --enable-fuzzing, against libFuzzer; in
 * every build, against replay.c, so that `make check` replays its corpus.
 */
#ifndef BULKHEAD_FUZZ_H
#define BULKHEAD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_in {
    const uint8_t *p;
    size_t n;
};

/* The next byte of input, or 0 once it runs out. */
static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++)
        v = (v << 8) | fuzz_u8(in);
    return v;
}

/* A broken invariant: a finding.  abort() so that libFuzzer keeps the input. */
#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
