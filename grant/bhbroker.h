/*
 * bhbroker.h - asking dom0's broker for what a domain may not make itself:
 * the TAP of a vif it serves (or, for a guest, its own eth<devid>), and
 * the disks it serves, as file descriptors.  The broker answers only what
 * the toolstack registered for the calling domain (bulkhead-hv(8), BROKER).
 *
 * This is the simulation's broker, inside bulkhead-hv, reached as libbhplat
 * reaches it (BULKHEAD_HV_SOCKET, else /run/bulkhead/hv.sock); on Xen a
 * driver domain's own privileged helper has that role.  Each call makes a
 * channel of its own and closes it, so it needs no handle; call it from a
 * process that keeps the fds (a keeper), before any sandbox forbids
 * connect(2).  Functions return 0 or an fd, or -1 with errno set: ENOENT
 * (nothing registered under those ids), EPERM (registered, not for this
 * domain, or a disk outside its storage), EINVAL (bad arguments, or a
 * target of the wrong kind), EEXIST (the TAP exists: its fds are open
 * elsewhere), or the error that reaching the broker met.  They never log.
 */
#ifndef BULKHEAD_BHBROKER_H
#define BULKHEAD_BHBROKER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BHBROKER_MAX_QUEUES 8u

#define BHBROKER_TAP_CSUM  0x0001u /* checksum offload (TUN_F_CSUM) */
#define BHBROKER_TAP_TSO4  0x0002u /* TSO over IPv4; needs CSUM */
#define BHBROKER_TAP_TSO6  0x0004u /* TSO over IPv6; needs CSUM */
#define BHBROKER_TAP_HDR10 0x0100u /* a 10-byte virtio_net_hdr; default: 12 (_mrg_rxbuf) */

/*
 * The TAP of vif `devid` of guest `domid`, made in the calling process's
 * network namespace: vif<domid>.<devid> on its bridge when the caller's
 * domain serves the vif, eth<devid> when it is that guest.  IFF_TAP |
 * IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE, up, with the registered mtu.
 * Stores one fd per queue in fds (room for BHBROKER_MAX_QUEUES) and their
 * number in *nq.  The TAP lives as long as one of the fds.
 */
int bhbroker_tap(uint32_t domid, uint32_t devid, unsigned int flags, int *fds, unsigned int *nq);

#define BHBROKER_DISK_DIRECT 0x0001u /* O_DIRECT */

/*
 * Disk `devid` of guest `domid`, which the caller's domain serves: an fd,
 * O_RDONLY for a read-only disk (*readonly set to 1 then, else 0) and
 * O_RDWR otherwise; its size in bytes in *size.  Either pointer may be NULL.
 */
int bhbroker_disk(uint32_t domid, uint32_t devid, unsigned int flags, int *readonly,
                  uint64_t *size);

/* The same disk when it is an NBD server's: a socket connected to it. */
int bhbroker_nbd(uint32_t domid, uint32_t devid);

#ifdef __cplusplus
}
#endif

#endif /* BULKHEAD_BHBROKER_H */
