/*
 * nbd.h - the engine's side of its NBD storage (nbd.c): requests handed
 * over by slot, answered through a callback from bhnbd_reap.  Private to
 * libbhblkback; the driver sees only bhnbd_open/close/info (bhblkback.h).
 */
#ifndef BULKHEAD_BLK_NBD_H
#define BULKHEAD_BLK_NBD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bhblkback.h"

/*
 * Queues request `tag` (< BHBLK_MAX_SLOTS; one at a time per tag): op as
 * validated, off and len in bytes, iov over its mapped pages (kept by the
 * caller until it is answered).  Always 0: a request that cannot be sent is
 * answered with an error by the next bhnbd_reap.
 */
int bhnbd_submit(struct bhnbd *n, unsigned int tag, uint8_t op, uint64_t off, uint64_t len,
                 const struct iovec *iov, unsigned int niov);

/* Moves the socket and calls done for every request answered; returns their count. */
unsigned int bhnbd_reap(struct bhnbd *n, void (*done)(void *arg, unsigned int tag, int16_t status),
                        void *arg);

/* An epoll fd, readable when bhnbd_reap has something to do. */
int bhnbd_fd(const struct bhnbd *n);

/* NULL, or why the connection is lost. */
const char *bhnbd_error(const struct bhnbd *n);

/* Whether answers wait for bhnbd_reap without the socket. */
bool bhnbd_pending(const struct bhnbd *n);

#endif
