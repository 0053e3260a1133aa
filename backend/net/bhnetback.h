/*
 * bhnetback.h - netback's data path: pure validators over netif requests
 * copied out of the TX and RX rings (io/netif.h), the builder of RX
 * responses, the TAP side (virtio_net_hdr), and an engine serving one
 * queue's rings from a TAP.
 *
 * TX: a packet is a chain of ring slots - a first request whose size is the
 * whole packet's, the extra-info slots its flags announce, then the
 * following requests while NETTXF_more_data is set.  bhnet_tx_parse()
 * assembles one chain from requests already copied into private memory;
 * bhnet_tx_take() does the copying from a ring (libbhring) and keeps a
 * partial chain between calls.  The verdict says what to do:
 *   GO    a packet (or a multicast-control request): carry it out, then
 *         answer each consumed slot (bhnet_tx_responses with NETIF_RSP_OKAY);
 *   DROP  a packet the protocol allows but that we do not send (too many
 *         slots, sizes that do not add up, too short): answer it with
 *         NETIF_RSP_ERROR, as Linux's netback does, and carry on;
 *   LIE   a protocol violation (a slot crossing its page, an unknown or
 *         repeated extra, a GSO type that was not offered, a chain past the
 *         fatal slot limit): the frontend loses its vif; `why` says how.
 * What a hostile frontend tries is learnt from Linux's netback and its
 * advisories: XSA-39 (a chain of ever more slots: hence the fatal limit and
 * a bounded partial chain), XSA-423 (headers not in the first piece: a
 * first slot shorter than an Ethernet header is dropped, and whoever builds
 * the frame must not assume more of it), and slots whose sizes do not add
 * up, so that the first slot's own length (the total minus the rest) would
 * underflow.  XSA-392 (a frontend that stops posting RX buffers, so that
 * the backend hoards frames) is the RX engine's to bound, not a validator's.
 *
 * RX: bhnet_rx_check_req() validates one RX request; bhnet_rx_build() lays
 * a packet of N bytes over as many RX requests as it needs (rx-copy: each
 * data slot is a page from offset 0), with the GSO extra slot the
 * frontend asked for, and writes the responses, each into the slot of the
 * request it answers (the frontend finds its buffer by slot, netif.h).
 *
 * The frontend's side (response validation for netfront) is
 * frontend/net/bhnetfront.h, a library of its own: a guest links it
 * without any backend code, and the two trust each other in no way.
 *
 * Nothing here logs or touches XenStore or event channels, and only
 * bhnet_open() allocates.
 */
#ifndef BULKHEAD_BHNETBACK_H
#define BULKHEAD_BHNETBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/io/netif.h>

#include "bhring.h"

#define BHNET_PAGE     4096u
#define BHNET_ETH_HLEN 14u /* a frame shorter than an Ethernet header is dropped */

/*
 * Data slots per TX packet.  netif.h promises every frontend
 * XEN_NETIF_NR_SLOTS_MIN (18); a packet of more, up to the fatal limit, is
 * dropped (Linux's max_skb_slots); more than the fatal limit is a lie
 * (Linux's fatal_skb_slots, 20).  The fatal limit bounds what a partial
 * chain can make us hold.
 */
#define BHNET_TX_FATAL_SLOTS 20u
#define BHNET_TX_FATAL_MAX   32u /* the largest fatal limit a caller may set */
/* Extra-info slots: at most one of each type, types 1..4. */
#define BHNET_TX_MAX_EXTRAS (XEN_NETIF_EXTRA_TYPE_MAX - 1)
/* Ring slots one chain can take: data slots plus extras. */
#define BHNET_TX_MAX_REQS (BHNET_TX_FATAL_MAX + BHNET_TX_MAX_EXTRAS)

enum bhnet_verdict {
    BHNET_LIE = -1, /* the frontend lied: it loses its vif; why says how */
    BHNET_GO = 0,   /* valid: carry it out */
    BHNET_DROP = 1, /* valid protocol, bad packet: answer with NETIF_RSP_ERROR */
    BHNET_MORE = 2, /* the chain goes on past the requests at hand: wait for them */
};

/* What a TX chain is checked against: what the backend offered. */
struct bhnet_txopts {
    unsigned int max_slots;   /* 0: XEN_NETIF_NR_SLOTS_MIN; less than that is raised to it */
    unsigned int fatal_slots; /* 0: BHNET_TX_FATAL_SLOTS; clamped to max_slots..FATAL_MAX */
    bool gso_tcpv4;           /* feature-gso-tcpv4 offered */
    bool gso_tcpv6;           /* feature-gso-tcpv6 offered */
    bool mcast;               /* feature-multicast-control offered and requested */
};

/* One piece of a packet's data: bytes off..off+len of a granted page. */
struct bhnet_frag {
    uint32_t gref;
    uint16_t off;
    uint16_t len;
};

enum bhnet_txkind {
    BHNET_TX_PACKET = 0,    /* a frame to send */
    BHNET_TX_MCAST_ADD = 1, /* a multicast-control request: nothing to send */
    BHNET_TX_MCAST_DEL = 2,
};

/* A TX chain as validated: only this is acted upon. */
struct bhnet_txpkt {
    enum bhnet_txkind kind;
    uint32_t len;            /* the frame's length: the first slot's size */
    uint16_t flags;          /* NETTXF_csum_blank, NETTXF_data_validated of the first slot */
    uint8_t gso_type;        /* XEN_NETIF_GSO_TYPE_*, NONE without a GSO extra */
    uint16_t gso_size;       /* the MSS, nonzero with a GSO type */
    bool has_hash;           /* a HASH extra of a known type and algorithm */
    uint8_t hash_type;       /* _XEN_NETIF_CTRL_HASH_TYPE_* */
    uint32_t hash;
    uint8_t mcast[6];        /* with MCAST_ADD / MCAST_DEL */
    unsigned int nfrags;     /* data slots, the first included */
    struct bhnet_frag frag[BHNET_TX_FATAL_MAX];
    /* Every consumed slot in ring order, for the responses (extras get NETIF_RSP_NULL). */
    unsigned int nreq;
    uint16_t req_id[BHNET_TX_MAX_REQS];
    bool req_extra[BHNET_TX_MAX_REQS];
};

/*
 * Assembles and validates one chain from n requests (copied out of the
 * ring: the first of them is the chain's first slot).  Returns GO or DROP
 * with *pkt filled (pkt->nreq requests used), LIE with why, or MORE when
 * the chain continues past reqs[n-1] - unless `complete` says that there
 * are no more requests, in which case that is a lie.  Every lie is checked
 * before any drop, so a verdict never depends on which rule ran first.
 */
enum bhnet_verdict bhnet_tx_parse(const struct netif_tx_request *reqs, unsigned int n,
                                  bool complete, const struct bhnet_txopts *o,
                                  struct bhnet_txpkt *pkt, char *why, size_t whylen);

/* A partial chain, kept between bhnet_tx_take() calls; zero it for a new ring. */
struct bhnet_txq {
    unsigned int n;
    struct netif_tx_request req[BHNET_TX_MAX_REQS];
};

/*
 * Consumes the next chain from a netif_tx ring (bhring_netif_tx, back
 * end), copying each request once.  Returns GO or DROP with *pkt (the chain
 * is consumed: answer it), MORE when the ring holds no (more) request yet
 * - q keeps what was taken, at most BHNET_TX_MAX_REQS requests, and the
 * next call resumes - or LIE, with the ring broken (bhring_break) and why.
 * A frontend publishes a packet's slots together (netif.h frontends push
 * after the whole packet), so MORE with q->n > 0 is a frontend that may
 * never finish: it stalls only its own TX queue, which the engine's stall
 * timeout answers.
 */
enum bhnet_verdict bhnet_tx_take(struct bhring *r, const struct bhnet_txopts *o,
                                 struct bhnet_txq *q, struct bhnet_txpkt *pkt, char *why,
                                 size_t whylen);

/*
 * The responses to a consumed chain, in ring order: `status` (NETIF_RSP_OKAY
 * or NETIF_RSP_ERROR) for the data slots, NETIF_RSP_NULL for the extras.
 * rsp has room for pkt->nreq; returns pkt->nreq.
 */
unsigned int bhnet_tx_responses(const struct bhnet_txpkt *pkt, int16_t status,
                                struct netif_tx_response *rsp);

/* ---- RX ---- */

/* What the frontend asked for (request-rx-copy is assumed: the only mode). */
struct bhnet_rxopts {
    bool gso_tcpv4;        /* feature-gso-tcpv4: a GSO extra slot after the first */
    bool gso_tcpv6;        /* feature-gso-tcpv6 */
    bool gso_prefix;       /* feature-gso-tcpv{4,6}-prefix: a prefix slot instead */
    unsigned int ring_ids; /* nonzero: request ids must be below it (the ring's size) */
};

/* A frame to deliver, as the backend's side of the wire (a TAP) describes it. */
struct bhnet_rxmeta {
    uint32_t len;      /* bytes: 1..BHNET_RX_MAX_LEN */
    uint16_t flags;    /* NETRXF_csum_blank, NETRXF_data_validated */
    uint8_t gso_type;  /* XEN_NETIF_GSO_TYPE_* */
    uint16_t gso_size; /* nonzero with a GSO type */
    bool has_hash;     /* a HASH extra follows (after the GSO one): the control ring's hash */
    uint8_t hash_type; /* _XEN_NETIF_CTRL_HASH_TYPE_* */
    uint32_t hash;
};

/* Data slots of an RX packet: as many as a frontend must accept. */
#define BHNET_RX_MAX_DATA (XEN_NETIF_NR_SLOTS_MIN - 1)
#define BHNET_RX_MAX_LEN  (BHNET_RX_MAX_DATA * BHNET_PAGE)
#define BHNET_RX_MAX_REQS (BHNET_RX_MAX_DATA + 2) /* a GSO extra and a hash extra */

/*
 * Checks one RX request copied out of the ring.  A gref cannot be checked
 * here (mapping or copying it can fail later, which drops that packet);
 * the id must name a buffer when o->ring_ids is set.  GO or LIE.
 */
enum bhnet_verdict bhnet_rx_check_req(const struct netif_rx_request *req,
                                      const struct bhnet_rxopts *o, char *why, size_t whylen);

/*
 * RX requests a frame takes, GSO and hash slots included; 0 for a frame that cannot
 * be delivered (len 0 or over BHNET_RX_MAX_LEN, or a GSO type unknown).
 * A GSO frame to a frontend that asked no GSO of its type is delivered
 * as it is (the caller segments it first or drops it); it takes no extra slot.
 */
unsigned int bhnet_rx_slots(const struct bhnet_rxopts *o, const struct bhnet_rxmeta *m);

/* Where the bytes of one data slot go: frame bytes pkt_off..+len to page gref at 0. */
struct bhnet_rxcopy {
    uint32_t gref;
    uint32_t pkt_off;
    uint16_t len;
};

/*
 * Lays a frame over the first bhnet_rx_slots() of the n requests (already
 * checked): rsp[i] answers reqs[i] (a GSO extra overlays its slot's
 * response), copy[] gets one entry per data slot.  Returns the requests
 * used and *ncopy, or -1 with EAGAIN when n is too few and EINVAL when the
 * frame cannot be delivered.  Data slots carry NETRXF_more_data up to the
 * last; the first carries the flags and NETRXF_extra_info before its
 * extras: the GSO one, then the hash one (m->has_hash), chained with
 * XEN_NETIF_EXTRA_FLAG_MORE.
 */
int bhnet_rx_build(const struct bhnet_rxopts *o, const struct bhnet_rxmeta *m,
                   const struct netif_rx_request *reqs, unsigned int n,
                   struct netif_rx_response *rsp, struct bhnet_rxcopy *copy,
                   unsigned int *ncopy);

/*
 * The response that answers an RX request with no frame, status
 * NETIF_RSP_DROPPED or NETIF_RSP_ERROR (a frame that failed to copy).
 */
struct netif_rx_response bhnet_rx_error(const struct netif_rx_request *req, int16_t status);

/* ---- the wire on the other side: a TAP with IFF_VNET_HDR (vnet.c) ---- */

/*
 * Frames cross to the driver domain's TAP with a virtio_net_hdr before
 * them (10 bytes, or 12 with num_buffers, as the TAP was told).  The
 * engine owns no grant code: page() gives the frontend's page behind a
 * gref (mapped read-only for TX, writable for RX) or NULL when it cannot,
 * which drops that frame.
 */
typedef void *(*bhnet_page_fn)(void *ctx, uint32_t gref, bool writable);

/*
 * A TX frame's last check before it reaches the TAP (anti-spoofing): the
 * frame's bytes as they will be written, from our private copy.  true:
 * send it; false: drop it - answered NETIF_RSP_OKAY all the same, as a
 * frame a filter on the bridge drops (Linux's netback has no filter of its
 * own; the vif scripts' iptables rules drop after the backend said OKAY).
 */
typedef bool (*bhnet_filter_fn)(void *ctx, const uint8_t *frame, size_t len);

/*
 * Room for a frame after its header, in the buffers the caller gives: a TX
 * frame (<= 65535) or an RX one (<= BHNET_RX_MAX_LEN), plus one byte so
 * that a longer frame from the TAP shows as longer instead of being cut.
 */
#define BHNET_FRAME_MAX (BHNET_RX_MAX_LEN + 1)

/*
 * Finds where a frame's checksum goes (Ethernet, one optional 802.1Q tag,
 * IPv4 without fragments or IPv6 without extension headers, then TCP or
 * UDP): *csum_start and *csum_off as virtio_net_hdr wants them, *hdr_len
 * the bytes up to the end of the TCP or UDP header, *proto 6 or 17 and
 * *ipv6.  -1 when the frame is none of these or is cut short.
 */
int bhnet_csum_locate(const uint8_t *frame, size_t len, uint16_t *csum_start, uint16_t *csum_off,
                      uint16_t *hdr_len, uint8_t *proto, bool *ipv6);

/*
 * Sends a validated TX packet (kind BHNET_TX_PACKET) to fd as one write:
 * the frame is gathered into scratch (room for hdrsz + BHNET_FRAME_MAX) so
 * that what the TAP sees is what was checked, with a virtio_net_hdr of
 * hdrsz bytes (10 or 12) mapped from the netif flags and GSO extra.
 * Returns 0 when sent, 1 when dropped (why: a page that does not map, a
 * checksum or GSO the frame's headers do not allow), -1 with errno when
 * the write fails (EAGAIN: the TAP is full, try again later).
 */
int bhnet_tx_to_fd(int fd, size_t hdrsz, const struct bhnet_txpkt *pkt, bhnet_page_fn page,
                   void *ctx, uint8_t *scratch, char *why, size_t whylen);

/*
 * The same with a filter run on the gathered frame (NULL: none): 2 when
 * the filter refused it (nothing written).  filter gets ctx.
 */
int bhnet_tx_to_fd_filtered(int fd, size_t hdrsz, const struct bhnet_txpkt *pkt,
                            bhnet_page_fn page, void *ctx, bhnet_filter_fn filter,
                            uint8_t *scratch, char *why, size_t whylen);

/*
 * The bytes of a TX frame copied before it is written from pages that stay
 * mapped: every header the filter and the checksum offload read lies in
 * them (Ethernet, a VLAN tag, IPv4 and TCP with all options: 138 bytes).
 * Linux's netback copies 128 (XEN_NETBACK_TX_COPY_LEN) and parses less.
 */
#define BHNET_TX_COPY_LEN 256u

/*
 * The same, without gathering the frame: for pages that page() keeps
 * mapped until epoch(ctx) changes (a frontend's persistent pools).  The
 * frame's first BHNET_TX_COPY_LEN bytes are copied into scratch, the
 * filter and the offload's checks run on that copy (the filter gets the
 * head alone: it reads headers only), and the head goes to the TAP from
 * the copy, the rest straight from the pages in the same writev - the
 * frontend may change its payload meanwhile, which is its own data, but
 * not what was checked.  A frame whose mapping moved the epoch (a page
 * mapped for a later slot evicted an earlier one) is gathered as
 * bhnet_tx_to_fd_filtered does; so is every frame when epoch is NULL.
 * Returns as bhnet_tx_to_fd_filtered.
 */
int bhnet_tx_to_fd_kept(int fd, size_t hdrsz, const struct bhnet_txpkt *pkt, bhnet_page_fn page,
                        uint64_t (*epoch)(void *ctx), void *ctx, bhnet_filter_fn filter,
                        uint8_t *scratch, char *why, size_t whylen);

/*
 * Reads one frame from fd into buf (room for hdrsz + BHNET_FRAME_MAX) and
 * describes it: *m from its virtio_net_hdr, *frame where its bytes start.
 * Returns 1 with a frame, 0 with none waiting (EAGAIN), 2 when the frame
 * cannot be told to a frontend (a GSO type netif lacks, ECN, a runt, more
 * than BHNET_RX_MAX_LEN bytes; why says which: drop it), -1 with errno.
 */
int bhnet_rx_from_fd(int fd, size_t hdrsz, uint8_t *buf, struct bhnet_rxmeta *m,
                     const uint8_t **frame, char *why, size_t whylen);

/*
 * Describes a frame of flen bytes from its virtio_net_hdr (hdrsz bytes at
 * hdr), as bhnet_rx_from_fd does: 1, or 2 with why for a frame that
 * cannot be told to a frontend.
 */
int bhnet_rx_meta(const uint8_t *hdr, size_t hdrsz, size_t flen, struct bhnet_rxmeta *m,
                  char *why, size_t whylen);

/*
 * Where a frame read straight into RX requests' pages before its layout
 * is known lies: data chunk k (bytes k * BHNET_PAGE on) in the page of
 * request BHNET_RX_PLACE(k) - chunk 0 in the first, every later one as far
 * on as the two extras (GSO, hash) could push it.  A frame needs
 * BHNET_RX_MAX_REQS requests held to be read so.
 */
#define BHNET_RX_PLACE(k) ((k) == 0 ? 0u : (unsigned int)(k) + 2u)

/*
 * Delivers a frame placed so (BHNET_RX_PLACE) in the pages of the n
 * requests given: the responses as bhnet_rx_build lays them, and each
 * chunk moved to the page its layout gives it where that is another
 * (a frame without extras, or a short one, moves nothing or little:
 * chunks only ever move to an earlier request, in order, so none is
 * overwritten before it moved).  page() as for bhnet_rx_deliver; epoch as
 * for bhnet_tx_to_fd_kept, and needed (EINVAL without): two pages are
 * mapped at once.  Returns as bhnet_rx_deliver.
 */
int bhnet_rx_deliver_placed(const struct bhnet_rxopts *o, const struct bhnet_rxmeta *m,
                            const struct netif_rx_request *reqs, unsigned int n,
                            bhnet_page_fn page, uint64_t (*epoch)(void *ctx), void *ctx,
                            struct netif_rx_response *rsp, unsigned int *used);

/*
 * Copies a frame into the pages of the n RX requests given (checked with
 * bhnet_rx_check_req) and writes their responses into rsp, as
 * bhnet_rx_build lays them.  Returns 0 with *used requests answered, or
 * -1 with errno: EAGAIN when n is too few (wait for more), EINVAL when the
 * frame cannot be delivered (a GSO the frontend did not ask for, a size
 * out of range: drop the frame), both with *used 0; EFAULT when a page
 * does not map: the frame is dropped and rsp[0] answers reqs[0] with
 * NETIF_RSP_ERROR (*used 1).
 */
int bhnet_rx_deliver(const struct bhnet_rxopts *o, const struct bhnet_rxmeta *m,
                     const uint8_t *frame, const struct netif_rx_request *reqs, unsigned int n,
                     bhnet_page_fn page, void *ctx, struct netif_rx_response *rsp,
                     unsigned int *used);

/* ---- anti-spoofing (spoof.c) ---- */

#define BHNET_SPOOF_MAX_IPS 8

/* What a vif may send as: the toolstack's mac= and ip= (IPv4, network byte order). */
struct bhnet_antispoof {
    bool has_mac;
    uint8_t mac[6];
    unsigned int nip; /* 0: any address */
    uint32_t ip[BHNET_SPOOF_MAX_IPS];
};

/*
 * Whether a TX frame may go: its source MAC is the vif's (when has_mac),
 * and with addresses given, an IPv4 frame's source and an ARP frame's
 * sender are among them (one 802.1Q tag looked through; a frame too short
 * to hold what is checked is refused).  Other protocols pass.
 */
bool bhnet_antispoof_ok(const struct bhnet_antispoof *a, const uint8_t *frame, size_t len);

/* ---- the control ring's hashing (hash.c) ---- */

#define BHNET_HASH_KEY_MAX     40u  /* octets: enough for IPv6 TCP's 36-octet input */
#define BHNET_HASH_MAPPING_MAX 128u /* mapping table entries, as Linux's netback */

/*
 * A vif's hash settings, as the frontend's control requests made them:
 * plain values (a keeper keeps them), zero for a new connection (no
 * algorithm: the TAP's queue is kept).  Every mapping entry is below the
 * connection's queue count (checked when set).
 */
struct bhnet_hash {
    uint32_t alg;   /* XEN_NETIF_CTRL_HASH_ALGORITHM_* */
    uint32_t flags; /* XEN_NETIF_CTRL_HASH_TYPE_* */
    uint32_t size;  /* mapping entries in use; 0: hash modulo the queues */
    uint8_t key[BHNET_HASH_KEY_MAX];
    uint32_t mapping[BHNET_HASH_MAPPING_MAX];
};

/*
 * The Toeplitz hash of len input octets under a key of keylen octets
 * (missing key octets count as zero), as Microsoft's RSS specifies it.
 */
uint32_t bhnet_toeplitz(const uint8_t *key, size_t keylen, const uint8_t *in, size_t len);

/* Whether a control request reads a granted page (SET_HASH_KEY, _MAPPING): true with *gref. */
bool bhnet_ctrl_gref(const struct xen_netif_ctrl_request *req, uint32_t *gref);

/*
 * Carries out one control request (a private copy) on h for a vif of
 * nqueues queues and returns its response.  page: the request's granted
 * page (bhnet_ctrl_gref), mapped by the caller, or NULL when it has none
 * or could not be mapped (then the request fails with INVALID_PARAMETER).
 * A bad request (a key over BHNET_HASH_KEY_MAX, a table over the page or
 * past the size set, an entry naming no queue) changes nothing and is
 * answered as netif.h says; no request is a lie.
 */
struct xen_netif_ctrl_response bhnet_ctrl_handle(struct bhnet_hash *h, unsigned int nqueues,
                                                 const struct xen_netif_ctrl_request *req,
                                                 const uint8_t *page);

/*
 * Serves a control ring (bhring_netif_ctrl, back end, attached by the
 * caller): each request waiting is copied once, carried out on h and
 * answered in its slot, up to a ring's worth per call.  page() gives a
 * request's granted page read-only (NULL: the request fails), unpage()
 * (optional) lets it go once the request is done, both with ctx.
 * Returns the requests answered (*refused of them not SUCCESS; the caller
 * pushes and notifies), or -1 with why when the frontend lied about the
 * ring's indices (the ring is then broken).
 */
int bhnet_ctrl_serve(struct bhring *r, struct bhnet_hash *h, unsigned int nqueues,
                     bhnet_page_fn page, void (*unpage)(void *ctx, void *p), void *ctx,
                     unsigned int *refused, char *why, size_t whylen);

/*
 * The RX queue of a frame from the TAP: with Toeplitz chosen, its flow
 * (IPv4/IPv6 addresses, and TCP ports, as h->flags allow) hashed, the hash
 * into m (has_hash, hash_type, hash: for the frontend's HASH extra) and
 * through the mapping table to a queue; with no algorithm, dflt (the
 * TAP's own choice) and no hash.
 */
unsigned int bhnet_hash_steer(const struct bhnet_hash *h, unsigned int nqueues,
                              const uint8_t *frame, size_t len, struct bhnet_rxmeta *m,
                              unsigned int dflt);

/* ---- the engine: one vif queue's rings served from a TAP (engine.c) ---- */

struct bhnet_kept;

/*
 * Like blkback's engine, it owns no XenStore and no event channel: the
 * caller maps the rings, gives page() for the data grants, runs
 * bhnet_run() when a port fires or the fd is readable, and notifies the
 * frontend as it says.  One thread.
 *
 * XSA-392: a frontend that posts no RX buffers makes the engine hold one
 * frame and stop reading the TAP; frames then queue in the kernel's TAP
 * queue, which is bounded and drops, never in the driver domain.
 */
struct bhnet_opts {
    void *tx_ring, *rx_ring;     /* the mapped ring pages (2^order each) */
    unsigned int tx_order, rx_order;
    int fd;                      /* the TAP queue, non-blocking, IFF_VNET_HDR */
    size_t hdrsz;                /* its virtio_net_hdr: 10 or 12 bytes */
    bhnet_page_fn page;          /* the frontend's data pages */
    void *ctx;
    /*
     * Optional: drops, with ctx, every mapping page() made that is not to
     * be kept.  Called before responses are pushed: a frontend may end its
     * grant as soon as it sees the response, and Linux's netfront takes a
     * grant still mapped then for a backend that misbehaves and disables
     * the vif for good (XSA-396's hardening).
     */
    void (*unpage)(void *ctx);
    /*
     * Optional: a count that changes whenever a page page() returned may
     * have been unmapped (none: every page is used before the next is
     * asked for).  With it TX frames go to the TAP from the pages, their
     * headers copied (bhnet_tx_to_fd_kept), and frames from the TAP are
     * read straight into the RX requests' pages while the frontend has
     * BHNET_RX_MAX_REQS buffers posted (BHNET_RX_PLACE).
     */
    uint64_t (*epoch)(void *ctx);
    struct bhnet_txopts tx;      /* what the backend offered */
    struct bhnet_rxopts rx;      /* what the frontend asked */
    /* Optional (zero: none): */
    bhnet_filter_fn filter;      /* TX frames' anti-spoofing check, with ctx */
    struct bhnet_kept *kept;     /* state that outlives the engine (a keeper's) */
    uint64_t credit_bytes;       /* TX rate: this many bytes ... */
    uint32_t credit_usec;        /* ... per this many microseconds (Linux's rate=) */
    unsigned int rx_stall_ms;    /* RX buffers short this long: the queue stalls */
    /*
     * Where a frame read from the TAP goes (the control ring's hashing),
     * with ctx: it may set m's hash and return 1 to keep the frame for
     * this queue, or hand it to another queue's engine (bhnet_rx_push)
     * and return 0.  frame holds `have` bytes, its headers at least
     * (BHNET_TX_COPY_LEN or all of a shorter frame); with fewer than
     * m->len it returns 2 for a frame it would hand on, and is called
     * again with the whole frame gathered.
     */
    int (*steer)(void *ctx, struct bhnet_rxmeta *m, const uint8_t *frame, size_t have);
};

struct bhnet_stats {
    uint64_t tx_packets, tx_dropped; /* frames sent; chains answered with an error */
    uint64_t rx_packets, rx_dropped; /* frames delivered; frames from the TAP dropped */
    uint64_t tx_filtered;            /* frames the filter refused (answered OKAY) */
    uint64_t tx_throttled;           /* times TX stopped for want of credit */
    uint64_t rx_stalls;              /* times the RX side stalled (XSA-392) */
};

#define BHNET_MCAST_MAX 64u /* multicast addresses a frontend may add, as Linux */

/*
 * What a restarted engine needs to go on where the last one stopped,
 * plain values only (it lives in a keeper's memory): both rings' private
 * indices, the TX requests of a chain taken in part, the RX requests taken
 * for a frame and not yet answered (the frontend's buffers: lost, they
 * would never come back), the multicast list and the counters.  Zero it
 * for a new pair of rings; the engine saves it after every chain and
 * every frame.  A frame read from the TAP but not yet delivered is not
 * kept: a worker that dies loses it, as a wire may.  A worker that dies
 * between a TX frame's write and the save after it sends that frame twice
 * (the window is one write() long).
 */
struct bhnet_kept {
    uint32_t valid;
    struct bhring_state tx, rx;
    struct bhnet_txq txq;
    uint32_t nreq;
    struct netif_rx_request req[BHNET_RX_MAX_REQS];
    uint32_t nmcast;
    uint8_t mcast[BHNET_MCAST_MAX][6];
    struct bhnet_stats st;
};
#define BHNET_NOTIFY_TX 1
#define BHNET_NOTIFY_RX 2
#define BHNET_AGAIN     4 /* a budget ran out: call bhnet_run() again before sleeping */

struct bhnet;

/* An engine over mapped rings; NULL with why (EINVAL, ENOMEM). */
struct bhnet *bhnet_open(const struct bhnet_opts *o, char *why, size_t whylen);
void bhnet_close(struct bhnet *n);

/*
 * Does what there is to do, a bounded amount per call: TX chains consumed,
 * validated, sent and answered; frames read from the TAP into RX buffers.
 * Returns BHNET_NOTIFY_TX | BHNET_NOTIFY_RX bits for the rings whose
 * frontend must be notified, with BHNET_AGAIN when work is left, or -1
 * with why when the frontend lied (its rings are then broken and every
 * later call fails).
 */
int bhnet_run(struct bhnet *n, char *why, size_t whylen);

const struct bhnet_stats *bhnet_get_stats(const struct bhnet *n);

/*
 * Whether bhnet_run() wants to hear that the TAP is readable: false while
 * a frame waits for RX buffers (the engine reads no more until the
 * frontend posts some, and its event says so), so that a poller does not
 * spin on a TAP it will not read.
 */
bool bhnet_wants_fd(const struct bhnet *n);

/*
 * Microseconds until bhnet_run() has something to do that no event will
 * announce: TX credit coming back (rate), or an RX stall to declare.
 * 0: nothing pending on the clock.
 */
uint64_t bhnet_wait_usec(const struct bhnet *n);

/*
 * Multicast control on or off (request-multicast-control, which a frontend
 * may change while connected).  On: RX multicast frames reach the
 * frontend only to addresses it added (broadcast always does).
 */
void bhnet_set_mcast(struct bhnet *n, bool on);

/*
 * A frame read by another queue's engine and steered to this one, copied
 * into this queue's RX buffers at once: 1 delivered; 2 kept (copied) in
 * this queue's backlog, behind frames already waiting for buffers, to be
 * served by bhnet_run before its TAP is read again (as Linux's per-queue
 * rx_queue; at most 128 frames or 512 KiB); 0 dropped (backlog full, the
 * queue stalled, or a frame that cannot be told; counted as rx_dropped);
 * -1 with why when the frontend lied on this ring (it is broken then, as
 * by bhnet_run).  *notify gets BHNET_NOTIFY_RX when the frontend must be
 * told.
 */
int bhnet_rx_push(struct bhnet *n, const struct bhnet_rxmeta *m, const uint8_t *frame,
                  int *notify, char *why, size_t whylen);

/* Whether the frontend has added this multicast address (multicast control). */
bool bhnet_mcast_has(const struct bhnet *n, const uint8_t addr[6]);

#endif
