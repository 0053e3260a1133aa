/*
 * testutil.h - what tests and benchmarks share: a bulkhead-hv of their own,
 * and a median.
 */
#ifndef BULKHEAD_TESTUTIL_H
#define BULKHEAD_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

struct test_hv {
    char state[64]; /* its state directory, a fresh one under /tmp */
    pid_t pid;
};

/*
 * Starts $abs_top_builddir/hv/bulkhead-hv in a new state directory, with the
 * build tree bound into its domains, waits until it serves, and points
 * BULKHEAD_HV_SOCKET at it.  Returns 0, or -1 with the reason in err.
 */
int test_hv_start(struct test_hv *t, char *err, size_t errlen);

/* Stops it (SIGTERM: it destroys its domains) and removes its directory. */
void test_hv_stop(struct test_hv *t);

/* The build tree's top ($abs_top_builddir, else "."). */
const char *test_builddir(void);

/* The median of n values (sorts them). */
double test_median(double *v, int n);

#endif
