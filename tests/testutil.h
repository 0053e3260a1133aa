/*
 * testutil.h - what tests and benchmarks share: a bulkhead-hv of their own,
 * and a median.
 */
#ifndef BULKHEAD_TESTUTIL_H
#define BULKHEAD_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct test_hv {
    char state[64]; /* its state directory, a fresh one under /tmp */
    pid_t pid;
    int ch;       /* test_hv_call's dom0 channel, opened on first use; -1 */
    uint32_t seq; /* its last request's sequence number */
};

/*
 * Starts $abs_top_builddir/hv/bulkhead-hv in a new state directory, with the
 * build tree bound into its domains, waits until it serves, and points
 * BULKHEAD_HV_SOCKET at it.  Returns 0, or -1 with the reason in err.
 */
int test_hv_start(struct test_hv *t, char *err, size_t errlen);

/*
 * One request to it as dom0, over a channel of the test's own (opened on
 * first use, closed by test_hv_stop): payload p of len bytes, the reply's
 * payload copied to out (cap bytes at most).  Returns the daemon's answer
 * (0 or a positive errno), or -1 with errno when the channel broke.
 */
int test_hv_call(struct test_hv *t, uint16_t op, const void *p, size_t len, void *out,
                 size_t cap);

/* Stops it (SIGTERM: it destroys its domains) and removes its directory. */
void test_hv_stop(struct test_hv *t);

/* The build tree's top ($abs_top_builddir, else "."). */
const char *test_builddir(void);

/* The median of n values (sorts them). */
double test_median(double *v, int n);

#endif
