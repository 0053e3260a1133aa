/*
 * xenring.h - Xen's public ring headers, prepared for userspace.
 *
 * Xen's io/ring.h leaves the memory barriers to the includer.  Userspace has
 * no mb()/rmb()/wmb(), so we ask for the current interface (where ring.h
 * expects xen_mb() and friends) and give C11 fences their Xen meaning:
 *   xen_mb   orders earlier loads and stores before later loads and stores;
 *   xen_rmb  orders earlier loads before later loads (acquire);
 *   xen_wmb  orders earlier stores before later stores (release).
 * Include this instead of the xen/io headers anywhere in Bulkhead.
 */
#ifndef BULKHEAD_XENRING_H
#define BULKHEAD_XENRING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef __XEN_INTERFACE_VERSION__
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#endif

#ifndef xen_mb
#define xen_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif
#ifndef xen_rmb
#define xen_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#endif
#ifndef xen_wmb
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#endif

#include <xen/grant_table.h>
#include <xen/io/ring.h>
#include <xen/io/blkif.h>
#include <xen/io/netif.h>

#endif /* BULKHEAD_XENRING_H */
