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

/* Writes msg ("ok\n" or a one-line error) to the ready fd, if any, and closes it. */
void daemon_ready(int fd, const char *msg);

#endif
