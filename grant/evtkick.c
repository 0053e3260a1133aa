/*
 * evtkick.c - see evtkick.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "evtkick.h"

int evtkick(aio_context_t *ctx, int fd)
{
    struct iocb cb = {.aio_lio_opcode = IOCB_CMD_POLL,
                      .aio_fildes = (uint32_t)fd,
                      .aio_buf = POLLIN | POLLOUT,
                      .aio_flags = IOCB_FLAG_RESFD,
                      .aio_resfd = (uint32_t)fd};
    struct iocb *cbs[1] = {&cb};
    struct io_event ev[8];
    struct timespec now = {0, 0};

    if (*ctx == 0 && syscall(SYS_io_setup, 64, ctx) != 0) {
        *ctx = 0;
        return -1;
    }
    if (syscall(SYS_io_submit, *ctx, 1, cbs) != 1) {
        if (errno == EINVAL)
            *ctx = 0; /* a child after fork(2) has none of its parent's contexts */
        return -1;
    }
    /* Reap: the completion is there already, and the ring must not fill. */
    while (syscall(SYS_io_getevents, *ctx, 0, 8, ev, &now) == 8)
        ;
    return 0;
}
