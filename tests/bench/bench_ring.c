/*
 * bench_ring.c - round trips through a shared ring between two processes,
 * beside a bare eventfd ping-pong measured in the same run.
 *
 * Usage: bench_ring [-n REQUESTS] [-r REPEATS]
 * Prints one row per configuration with its rate and its ratio to the
 * eventfd baseline, the median of REPEATS runs of each.  Not a test: these
 * machines are shared and noisy, so no figure here is ever asserted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringpair.h"
#include "testutil.h"

struct row {
    const char *name;
    unsigned int order, depth, spin_us;
    uint64_t scale; /* requests = n * scale / 100 */
};

int main(int argc, char **argv)
{
    uint64_t n = 200000;
    int repeats = 3, c;
    double base[16], v[16];
    static const struct row rows[] = {
        {"ring depth 1", 0, 1, 0, 25},
        {"ring depth 32", 0, 32, 0, 100},
        {"ring depth 1, spin 50us", 0, 1, 50, 100},
        {"ring depth 32, spin 50us", 0, 32, 50, 100},
        {"ring 16 pages, depth 512", 4, 512, 0, 100},
    };

    while ((c = getopt(argc, argv, "n:r:")) != -1) {
        if (c == 'n')
            n = strtoull(optarg, NULL, 10);
        else if (c == 'r')
            repeats = atoi(optarg);
        else {
            fprintf(stderr, "usage: bench_ring [-n REQUESTS] [-r REPEATS]\n");
            return 2;
        }
    }
    if (repeats < 1 || repeats > 16 || n < 100) {
        fprintf(stderr, "bench_ring: -r takes 1..16 and -n at least 100\n");
        return 2;
    }
    for (int i = 0; i < repeats; i++)
        base[i] = ringpair_eventfd_pingpong(n / 4, NULL);
    double b = test_median(base, repeats);
    printf("%-28s %14s %10s\n", "configuration", "per second", "ratio");
    printf("%-28s %14.0f %10s\n", "eventfd ping-pong (baseline)", b, "1.00");
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        struct ringpair_opts o = {.order = rows[r].order,
                                  .depth = rows[r].depth,
                                  .spin_us = rows[r].spin_us,
                                  .requests = n * rows[r].scale / 100,
                                  .wait_ms = 10000};
        struct ringpair_result res;
        for (int i = 0; i < repeats; i++) {
            if (ringpair_run(&o, &res) != 0) {
                fprintf(stderr, "bench_ring: %s: %s\n", rows[r].name, res.error);
                return 1;
            }
            v[i] = res.completed / res.seconds;
        }
        double m = test_median(v, repeats);
        printf("%-28s %14.0f %10.2f\n", rows[r].name, m, m / b);
    }
    printf("(round trips per second, median of %d; ratio = rate / eventfd ping-pong rate)\n",
           repeats);
    return 0;
}
