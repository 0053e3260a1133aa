/*
 * hvfake.h - just enough of bulkhead-hv around hv/gnttab.c and hv/evtchn.c
 * to test them in one process: domains, channels and a dispatcher, with no
 * daemon, no sockets and no namespaces.
 */
#ifndef BULKHEAD_HVFAKE_H
#define BULKHEAD_HVFAKE_H

#include <sys/types.h>

#include "hv.h"

/* A hypervisor with dom0 only; it logs to stderr unless quiet. */
struct hv *hvfake_new(bool quiet);
/* Destroys every domain and channel, then the hypervisor. */
void hvfake_free(struct hv *hv);
/* As hvfake_free, but the frame stores live on for the next world (fuzzing: no fork per input). */
void hvfake_release(struct hv *hv);

/* A domain with tables of the given sizes (0: the defaults); NULL if they cannot be made. */
struct hv_dom *hvfake_dom(struct hv *hv, uint16_t domid, uint32_t grant_frames,
                          uint32_t evtchn_ports);
/* The domain goes away as domain.c will do it: tables released, then its channels closed. */
void hvfake_dom_destroy(struct hv *hv, struct hv_dom *d);

/* A hypercall channel of domain d. */
struct hv_conn *hvfake_conn(struct hv *hv, struct hv_dom *d);
/* The channel closes, as conn.c will close it. */
void hvfake_conn_close(struct hv *hv, struct hv_conn *c);

/* A reply buffer as conn.c gives handlers; hvfake_rsp_clear closes fds left in it. */
struct hv_rsp *hvfake_rsp_new(void);
void hvfake_rsp_clear(struct hv_rsp *rsp);
void hvfake_rsp_free(struct hv_rsp *rsp);

/*
 * Serves one request from channel c, sent by process `pid` (GNT_COPY's
 * local side), into rsp (cleared first).  Returns the handler's 0 or
 * positive errno; aborts if a handler breaks the contract every handler
 * keeps (fds or payload left in a failed reply, a reply too big).
 */
int hvfake_call_pid(struct hv *hv, struct hv_conn *c, pid_t pid, uint16_t op, const void *p,
                    size_t len, struct hv_rsp *rsp);
/* The same, from this process. */
int hvfake_call(struct hv *hv, struct hv_conn *c, uint16_t op, const void *p, size_t len,
                struct hv_rsp *rsp);

/* The stats the daemon would report, and this process's open fds. */
struct hvw_stats_rsp hvfake_stats(struct hv *hv);
int hvfake_open_fds(void);

/* Lowers RLIMIT_NOFILE so that exactly `spare` more fds can be opened; then back up. */
void hvfake_fd_limit(int spare);
void hvfake_fd_unlimit(void);

#endif /* BULKHEAD_HVFAKE_H */
