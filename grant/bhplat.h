/*
 * bhplat.h - the platform seam: grant tables and event channels, shaped
 * exactly like Xen's libxengnttab / libxengntshr / libxenevtchn and no
 * richer, so that device code runs unchanged on Xen and in the simulation.
 *
 * The implementation is chosen at open time: the simulation (bulkhead-hv,
 * over the hypercall channel of hv/hvwire.h) or Xen (grant/xen.c, over
 * libxengntshr, libxengnttab and libxenevtchn; the domain id from XenStore).  BULKHEAD_PLATFORM=sim|xen
 * forces one; otherwise the simulation is used when BULKHEAD_HV_SOCKET is
 * set, Xen when /dev/xen/gntdev exists.
 *
 * Unless said otherwise: functions return 0 (or a pointer, or a count) on
 * success and -1 (or NULL) with errno set on failure; they do not log
 * unless a logger was given to open.  A handle is used by one thread at a
 * time.  As with Xen's libraries, a child after fork(2) must not use a
 * handle inherited from its parent (only close it), and mappings and ports
 * made through a handle are released when it is closed or the process dies.
 */
#ifndef BULKHEAD_BHPLAT_H
#define BULKHEAD_BHPLAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t bh_grant_ref_t;
typedef uint32_t bh_evtchn_port_t;
typedef int bh_evtchn_port_or_error_t;

/* An injected logger: called with one line, no newline.  NULL: silent. */
struct bhplat_logger {
    void (*log)(struct bhplat_logger *l, const char *line);
};

/* This domain's id, as the platform knows it (0 for dom0); -1 on error. */
int bhplat_domid(void);

/*
 * The platform an open would choose now: "sim" or "xen"; NULL (errno set)
 * when there is none.  For what differs beyond the seam: on Xen, a driver
 * domain opens its disks itself (xl names them in its namespace), in the
 * simulation dom0's broker hands them over.
 */
const char *bhplat_platform(void);

/* ---- granting pages: xengntshr ---- */

typedef struct bhgntshr_handle bhgntshr_handle;

bhgntshr_handle *bhgntshr_open(struct bhplat_logger *logger, unsigned int open_flags);
int bhgntshr_close(bhgntshr_handle *h);

/*
 * Allocates `count` zeroed pages, grants them to `domid` (read-only unless
 * `writable`), stores their references in refs, and returns our mapping of
 * them, contiguous.  No allocation survives a failure.
 */
void *bhgntshr_share_pages(bhgntshr_handle *h, uint32_t domid, int count, bh_grant_ref_t *refs,
                           int writable);

/*
 * Unmaps pages returned by bhgntshr_share_pages and ends their grants.  As
 * with Linux's gntalloc, a page still mapped by the other domain stays
 * granted until that domain unmaps it or dies; it is never reused.
 */
int bhgntshr_unshare(bhgntshr_handle *h, void *start_address, uint32_t count);

/* ---- mapping and copying granted pages: xengnttab ---- */

typedef struct bhgnttab_handle bhgnttab_handle;

bhgnttab_handle *bhgnttab_open(struct bhplat_logger *logger, unsigned int open_flags);
int bhgnttab_close(bhgnttab_handle *h);

/*
 * Maps `count` references granted by `domid`, contiguously.  prot is
 * PROT_READ or PROT_READ|PROT_WRITE; writing a read-only grant fails with
 * EPERM.  All or nothing.
 */
void *bhgnttab_map_domain_grant_refs(bhgnttab_handle *h, uint32_t count, uint32_t domid,
                                     bh_grant_ref_t *refs, int prot);
void *bhgnttab_map_grant_ref(bhgnttab_handle *h, uint32_t domid, bh_grant_ref_t ref, int prot);
int bhgnttab_unmap(bhgnttab_handle *h, void *start_address, uint32_t count);

/*
 * Maps n sets of references granted by `domid` at once: set i is the next
 * counts[i] references of refs, mapped contiguously at addrs[i] and
 * unmapped on its own (bhgnttab_unmap or bhgnttab_unmap_many).  The
 * simulation asks bulkhead-hv once per HVW_MAX_FDS pages rather than once
 * per set; Xen maps the sets in turn.  All or nothing: 0, or -1 with errno
 * and nothing mapped.
 */
int bhgnttab_map_many(bhgnttab_handle *h, uint32_t n, uint32_t domid, const uint32_t *counts,
                      bh_grant_ref_t *refs, int prot, void **addrs);
/*
 * Unmaps n mappings (addrs[i], counts[i] pages), in the simulation with one
 * message to bulkhead-hv per HVW_MAX_FDS pages of one granter.  Every one
 * is unmapped; 0, or -1 with the first error's errno.
 */
int bhgnttab_unmap_many(bhgnttab_handle *h, uint32_t n, void *const *addrs,
                        const uint32_t *counts);

/* xengnttab_grant_copy_segment_t, field for field. */
typedef struct bhgnttab_grant_copy_segment {
    union bhgnttab_copy_ptr {
        void *virt;
        struct {
            uint32_t ref;
            uint16_t offset;
            uint16_t domid;
        } foreign;
    } source, dest;
    uint16_t len;
    uint16_t flags;  /* GNTCOPY_source_gref, GNTCOPY_dest_gref */
    int16_t status;  /* GNTST_*, out */
} bhgnttab_grant_copy_segment_t;

/*
 * Copies in the hypervisor, with a status per segment; returns 0 when the
 * batch was carried out (check each status), -1 when it could not be.
 */
int bhgnttab_grant_copy(bhgnttab_handle *h, uint32_t count, bhgnttab_grant_copy_segment_t *segs);

/* ---- event channels: xenevtchn ---- */

typedef struct bhevtchn_handle bhevtchn_handle;

bhevtchn_handle *bhevtchn_open(struct bhplat_logger *logger, unsigned int open_flags);
int bhevtchn_close(bhevtchn_handle *h);

/* Readable when some port of this handle is pending; never blocks. */
int bhevtchn_fd(bhevtchn_handle *h);

int bhevtchn_notify(bhevtchn_handle *h, bh_evtchn_port_t port);
bh_evtchn_port_or_error_t bhevtchn_bind_unbound_port(bhevtchn_handle *h, uint32_t domid);
bh_evtchn_port_or_error_t bhevtchn_bind_interdomain(bhevtchn_handle *h, uint32_t domid,
                                                    bh_evtchn_port_t remote_port);
int bhevtchn_unbind(bhevtchn_handle *h, bh_evtchn_port_t port);

/*
 * The next pending port, which stays masked until bhevtchn_unmask();
 * -1 with EAGAIN when none is pending.
 */
bh_evtchn_port_or_error_t bhevtchn_pending(bhevtchn_handle *h);
int bhevtchn_unmask(bhevtchn_handle *h, bh_evtchn_port_t port);

#ifdef __cplusplus
}
#endif

#endif /* BULKHEAD_BHPLAT_H */
