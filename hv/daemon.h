/*
 * daemon.h - what Bulkhead's daemons (bulkhead-hv, bulkhead-xenstored) do
 * alike at start-up: one instance per state directory, and a word on the
 * ready pipe of whoever started them.
 */
#ifndef BULKHEAD_DAEMON_H
#define BULKHEAD_DAEMON_H

#include <stddef.h>

/*
 * Takes DIR/<name>.pid, locked for the life of the process, with our pid in
 * it.  Fails, with a one-line reason in err naming the fix, when another
 * <prog> holds it.  Returns 0 or -1.
 */
int daemon_lock(const char *dir, const char *name, const char *prog, char *err, size_t errlen);

/*
 * Listens on the unix socket `path` (a crashed instance's is removed first:
 * the caller holds the lock), non-blocking, of `type` (SOCK_SEQPACKET,
 * SOCK_STREAM), mode 0666: domains reach it through a bind of this one
 * file, dom0's way to it is guarded by the 0700 state directory, and every
 * connection is identified by its peer uid.  Returns the fd, or -1 with a
 * one-line reason in err.
 */
int daemon_listen(const char *path, int type, char *err, size_t errlen);

/* Writes msg ("ok\n" or a one-line error) to the ready fd, if any, and closes it. */
void daemon_ready(int fd, const char *msg);

/*
 * A loop's signals, taken synchronously: the signals listed (ending with
 * 0) blocked and read from the returned signalfd (non-blocking,
 * close-on-exec); SIGPIPE ignored (a peer that left is an error return).
 * -1 with errno.
 */
int daemon_signalfd(int sig, ...);

#endif
