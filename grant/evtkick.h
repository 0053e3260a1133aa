/*
 * evtkick.h - signalling an eventfd without ever blocking, shared by the
 * platform library (notify) and bulkhead-hv (waking a port whose peer left).
 *
 * An eventfd cannot be reopened, so every holder shares one open file
 * description: any of them can clear O_NONBLOCK and fill the counter, after
 * which write(2) waits forever.  Instead the kernel signals it: an aio poll
 * of the eventfd for "readable or writable", always true so it completes at
 * once, with the same eventfd as its completion eventfd (IOCB_FLAG_RESFD).
 * eventfd_signal() saturates the counter instead of waiting.
 * One system call: the completion is let go in the context's mapped ring
 * (evtkick.c says how), not with io_getevents.
 */
#ifndef BULKHEAD_EVTKICK_H
#define BULKHEAD_EVTKICK_H

#include <linux/aio_abi.h>

/*
 * Adds 1 to eventfd `fd` through the aio context *ctx, made on first use
 * (0: none yet).  Keep one context for the life of the process: destroying
 * one waits for an RCU grace period.  Returns 0, or -1 with errno set (from
 * io_setup: no aio here, or fs.aio-max-nr reached; from io_submit: EINVAL
 * for a context inherited across fork(2), which *ctx is then reset from).
 */
int evtkick(aio_context_t *ctx, int fd);

#endif
