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

/*
 * The completion ring an aio context is: the kernel maps it into the
 * process at the address io_setup returns as the context (fs/aio.c's
 * struct aio_ring, an ABI since 2.6: libaio and fio reap from it without a
 * system call).  The kernel writes tail; head is the reader's, and the
 * kernel takes slots back by reading it (user_refill_reqs_available).
 */
struct aio_uring {
    unsigned int id, nr, head, tail, magic, compat_features, incompat_features, header_length;
};
#define AIO_RING_MAGIC 0xa10a10a1u

/*
 * Lets the completions go: head moved up to tail in the mapped ring, which
 * saves the io_getevents a notify otherwise costs (half its system calls).
 * A ring of another layout (a kernel that changed it says so in magic or
 * incompat_features) is reaped with io_getevents instead.
 */
static void reap(aio_context_t ctx)
{
    struct aio_uring *r = (struct aio_uring *)(uintptr_t)ctx;
    struct io_event ev[8];
    struct timespec now = {0, 0};

    if (r->magic == AIO_RING_MAGIC && r->incompat_features == 0) {
        /* Every event up to tail is ours to drop: nobody reads them. */
        __atomic_store_n(&r->head, __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
        return;
    }
    while (syscall(SYS_io_getevents, ctx, 0, 8, ev, &now) == 8)
        ;
}

int evtkick(aio_context_t *ctx, int fd)
{
    struct iocb cb = {.aio_lio_opcode = IOCB_CMD_POLL,
                      .aio_fildes = (uint32_t)fd,
                      .aio_buf = POLLIN | POLLOUT,
                      .aio_flags = IOCB_FLAG_RESFD,
                      .aio_resfd = (uint32_t)fd};
    struct iocb *cbs[1] = {&cb};

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
    reap(*ctx);
    return 0;
}
