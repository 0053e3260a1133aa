/*
 * xsfake.h - an in-process XenStore behind the xs_* calls of libxenstore,
 * linked instead of -lxenstore so that the XenBus library is tested without
 * a daemon.  It follows xenstore.txt where the library depends on it:
 * implicit parents that inherit their parent's permissions (an unprivileged
 * creator owning what it creates), permission checks for non-zero domains,
 * watches that fire once on registration and then on every change at or
 * below their path, and transactions that see a private copy and fail with
 * EAGAIN at commit when anything was committed after they started.
 *
 * One process, one store.
 */
#ifndef BULKHEAD_XSFAKE_H
#define BULKHEAD_XSFAKE_H

#include <xenstore.h>

/*
 * Empties the store and forgets every knob, transaction and watch (handles
 * stay the caller's).  A Check fixture calls it, so that the tests also pass
 * with CK_FORK=no.
 */
void xsfake_reset(void);

/* Acts as domain `domid` from now on (xs_open starts as dom0). */
void xsfake_set_domid(struct xs_handle *h, unsigned int domid);

/* The next n commits fail with EAGAIN, as if another writer got in first. */
void xsfake_fail_commits(int n);

/*
 * The next call of xs_<op> ("read", "write", "rm", "set_permissions",
 * "transaction_start", "watch", ...) made after `skip` successful ones
 * fails with err.
 */
void xsfake_fail_op(const char *op, int skip, int err);

/* Writes committed to the store so far (transactions count on commit). */
unsigned long xsfake_writes(void);

/*
 * Commits a write of `path` the next time `op` is called by anyone, before
 * that call runs: another domain racing a transaction.
 */
void xsfake_race_write(const char *op, const char *path, const char *value);

#endif
