/*
 * bhnetfront.h - netfront's response consumers: pure validators over netif
 * responses copied out of the TX and RX rings, for a frontend that does not
 * trust its backend (trusted=0, XSA-403).
 *
 * A library of its own rather than a part of libbhnetback: the guest links
 * it without any backend code, and the backend's validators and these
 * check opposite directions of the same rings.
 *
 * Verdicts: OK (act on it), SKIP (a NETIF_RSP_NULL TX response, answering
 * an extra-info slot: nothing to complete), DROP (RX: the backend answered
 * the frame's buffers with an error or a frame too short to be one: give
 * the buffers back, deliver nothing), MORE (the chain goes on past the
 * responses at hand), LIE (the backend lied: the device is torn down).
 * Nothing logs or allocates.
 *
 * The device itself (netfront.c, below) uses them and gives the guest's
 * eth TAP its frames.
 */
#ifndef BULKHEAD_BHNETFRONT_H
#define BULKHEAD_BHNETFRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/io/netif.h>

#include "bhplat.h"
#include "bhring.h"
#include <xenstore.h>

enum bhnetf_verdict {
    BHNETF_LIE = -1,
    BHNETF_OK = 0,
    BHNETF_SKIP = 1,
    BHNETF_DROP = 2,
    BHNETF_MORE = 3,
};

/*
 * Checks one TX response against the ids in flight (a bhring_ids table of
 * 16-bit ids): a data slot's response completes its id and gives back its
 * cookie and *status (NETIF_RSP_OKAY, _ERROR or _DROPPED).  SKIP for
 * NETIF_RSP_NULL; LIE for any other status or an id not in flight.
 */
enum bhnetf_verdict bhnetf_tx_rsp(const struct netif_tx_response *rsp, struct bhring_ids *ids,
                                  void **cookie, int16_t *status, char *why, size_t whylen);

/* What the frontend asked of the backend. */
struct bhnetf_rxopts {
    bool gso_tcpv4;         /* feature-gso-tcpv4 written: GSO extras of that type accepted */
    bool gso_tcpv6;
    bool hash;              /* hashing enabled on the control ring: HASH extras accepted */
    unsigned int max_slots; /* data slots per frame; 0: XEN_NETIF_NR_SLOTS_MIN */
};

#define BHNETF_RX_MAX_SLOTS 32u /* the largest max_slots honoured */
#define BHNETF_RX_MAX_RSP   (BHNETF_RX_MAX_SLOTS + XEN_NETIF_EXTRA_TYPE_MAX - 1)

struct bhnetf_rxfrag {
    unsigned int slot; /* index into the responses given: its buffer is the one posted there */
    uint16_t off;
    uint16_t len;
};

struct bhnetf_rxpkt {
    uint32_t len;       /* the frame's length: the data slots' sizes summed */
    uint16_t flags;     /* NETRXF_csum_blank, NETRXF_data_validated of the first slot */
    uint8_t gso_type;   /* XEN_NETIF_GSO_TYPE_* */
    uint16_t gso_size;
    bool has_hash;
    uint8_t hash_type;
    uint8_t hash_alg;
    uint32_t hash;
    unsigned int nfrags;
    struct bhnetf_rxfrag frag[BHNETF_RX_MAX_SLOTS];
    unsigned int nrsp;  /* responses (ring slots) the frame took */
};

/*
 * Assembles one frame from n RX responses copied out of the ring, rsp[i]
 * from the slot where the frontend posted the request with id ids[i] (the
 * backend answers each request in its own slot, netif.h).  A data slot's
 * id must be that id; its offset + size must lie in the page; extras must
 * be of a type asked for, once each; NETRXF_gso_prefix (never asked) is a
 * lie.  Returns OK or DROP with *pkt (pkt->nrsp consumed), MORE when the
 * chain continues past rsp[n-1] and !complete, LIE with why.
 */
enum bhnetf_verdict bhnetf_rx_parse(const struct netif_rx_response *rsp, const uint16_t *ids,
                                    unsigned int n, bool complete, const struct bhnetf_rxopts *o,
                                    struct bhnetf_rxpkt *pkt, char *why, size_t whylen);

/* ---- the device (netfront.c) ---- */

/*
 * A vif's frontend half over the TAP the guest sees as eth<devid>, for a
 * caller that runs the XenBus handshake itself (bulkhead-guest's
 * bhxb_machine, or a test playing both ends).  One thread: nothing here
 * locks, blocks or logs; functions return 0 or -1 with errno, or a reason.
 *
 * publish reads the backend's offer and our `trusted` key, grants each
 * queue's TX and RX ring and a pool of pages granted once (per queue:
 * NET_TX_RING_SIZE pages for transmit, NET_RX_RING_SIZE for receive, used
 * for nothing but packet data), binds an event channel per queue (two with
 * feature-split-event-channels) and writes, in one transaction:
 * tx-ring-ref, rx-ring-ref, event-channel or event-channel-tx/-rx (under
 * queue-N/ with multi-queue-num-queues when there are several queues),
 * request-rx-copy, feature-rx-notify, feature-sg, feature-gso-tcpv4/-tcpv6
 * (those the backend offers) and feature-ipv6-csum-offload; with
 * feature-ctrl-ring offered, a control ring (ctrl-ring-ref,
 * event-channel-ctrl).  connect requires feature-rx-copy, posts every RX
 * buffer and starts moving frames; over the control ring it chooses
 * Toeplitz hashing (IPv4/IPv6 addresses and TCP ports, the key of
 * Microsoft's RSS documentation) and a 128-entry table spreading flows
 * over the queues, so that the backend, not the kernel's TAP, picks each
 * frame's RX queue.  A control response out of order is a lie; a refused
 * request is counted (ctrl_refused) and hashing stays as the backend had it.
 *
 * The TAP side: fd tap[q] serves queue q (IFF_VNET_HDR, a virtio_net_hdr of
 * hdrsz bytes before each frame; any fd with the same framing - a
 * SOCK_SEQPACKET socket - will do).  TX: bhnetfront_tap_ready reads frames
 * while the ring has room for one of the largest: a frame goes into up to
 * 16 pool pages, one slot each chained with NETTXF_more_data, its GSO as a
 * GSO extra and its partial checksum as NETTXF_csum_blank.  RX: responses
 * (validated by bhnetf_rx_parse) are assembled into frames written to the
 * TAP, a GSO extra and NETRXF_* flags mapped back to the header.  Frames
 * the other side cannot take (a GSO the backend did not offer, the TAP
 * full) are dropped and counted, as a NIC drops.
 *
 * Trust: with trusted=0 (XSA-403) the unused tail of every TX page is
 * cleared before it is granted for a slot, so the backend sees nothing but
 * the frame.  A lie (a TX id not in flight, an RX slot out of its page, a
 * chain longer than the slots allowed, rsp_prod past the requests) breaks
 * the device: broken() runs once with the reason, and every later call
 * does nothing until free.
 */

#define BHNETFRONT_MAX_QUEUES 8 /* the broker's TAP queues at most */

typedef struct bhnetfront bhnetfront;

struct bhnetfront_cfg {
    struct xs_handle *xs;    /* the device's store handle */
    bhgntshr_handle *gntshr; /* to grant rings and pools to the backend */
    bhevtchn_handle *evtchn; /* the ports are bound on it; see bhnetfront_kick */
    const char *dir;         /* our device directory */
    const char *backend;     /* the backend's */
    uint32_t backend_domid;
    const int *tap;          /* ntap fds, one per TAP queue; the caller's */
    unsigned int ntap;       /* 1..BHNETFRONT_MAX_QUEUES */
    unsigned int hdrsz;      /* the TAP's virtio_net_hdr: 10 or 12 bytes */
    unsigned int queues;     /* wanted, 0: ntap; at most ntap */
    void (*broken)(void *arg, const char *why);
    void *arg;
};

/* What was negotiated, as of the last publish. */
struct bhnetfront_info {
    unsigned int queues, backend_max_queues;
    bool split, sg, gso_tcpv4, gso_tcpv6, ipv6_csum, trusted;
    bool ctrl; /* the backend offered a control ring: we use it */
};

struct bhnetfront_stats {
    uint64_t tx_frames, tx_slots, tx_dropped, tx_errors;
    uint64_t rx_frames, rx_dropped;
    uint64_t ctrl_done, ctrl_refused; /* control requests answered SUCCESS, and otherwise */
};

/* Copies cfg (the strings and fds).  NULL with EINVAL or ENOMEM. */
bhnetfront *bhnetfront_new(const struct bhnetfront_cfg *cfg);
void bhnetfront_free(bhnetfront *n);

int bhnetfront_publish(bhnetfront *n, char *why, size_t whylen);
int bhnetfront_connect(bhnetfront *n, char *why, size_t whylen);
/* Ends every grant and closes the ports; frames in flight are lost.  Idempotent. */
void bhnetfront_disconnect(bhnetfront *n);

/* A port of ours fired (the caller took and unmasked it): consume, refill, notify. */
void bhnetfront_kick(bhnetfront *n);
/* tap[q] is readable: move what it holds onto queue q's TX ring, as room allows. */
void bhnetfront_tap_ready(bhnetfront *n, unsigned int q);
/* Whether queue q's TX ring has room for a frame (poll tap[q] for input only then). */
bool bhnetfront_tx_room(const bhnetfront *n, unsigned int q);

unsigned int bhnetfront_queues(const bhnetfront *n); /* of this connection, 0 before publish */
/* Our ports: queue q's TX port (its only one without split) and its RX port; -1 if none. */
int bhnetfront_port(const bhnetfront *n, unsigned int q, bool rx);
/* The control ring's port; -1 without one.  bhnetfront_kick serves it too. */
int bhnetfront_ctrl_port(const bhnetfront *n);
int bhnetfront_get_info(const bhnetfront *n, struct bhnetfront_info *out);
const struct bhnetfront_stats *bhnetfront_get_stats(const bhnetfront *n);
bool bhnetfront_broken(const bhnetfront *n);
const char *bhnetfront_error(const bhnetfront *n); /* "" while healthy */

/*
 * Describes a frame for a virtio_net_hdr (pure, for RX frames with a
 * partial checksum or GSO): Ethernet, one optional 802.1Q tag, IPv4 or
 * IPv6 without extension headers, then TCP or UDP.  *csum_start,
 * *csum_off, *hdr_len (bytes to the end of the L4 header), *tcp.  -1 when
 * the frame is none of these or cut short.
 */
int bhnetf_l4_locate(const uint8_t *frame, size_t len, uint16_t *csum_start, uint16_t *csum_off,
                     uint16_t *hdr_len, bool *tcp);

#endif
