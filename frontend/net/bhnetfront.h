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
 */
#ifndef BULKHEAD_BHNETFRONT_H
#define BULKHEAD_BHNETFRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/io/netif.h>

#include "bhring.h"

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

#endif
