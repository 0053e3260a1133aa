/*
 * fuzz_netback_engine.c - netback's engine serving a hostile frontend's
 * TX and RX rings against a TAP-like socket (a SOCK_SEQPACKET pair).
 *
 * Input: one byte of options (GSO TCPv4/v6 offered and asked, multicast,
 * RX ids bounded, state kept outside the engine, the anti-spoofing filter
 * on, kept pages - an epoch: TX written from the pages, RX read into
 * them - and with it a mapping that evicts every seventh page), then operations, one byte each: 0 puts k TX requests
 * (a byte k, then 12 bytes each), 1 puts k RX requests (8 bytes each), 2
 * sends a frame from the TAP's side (2 bytes of length up to 9000, a
 * 12-byte virtio_net_hdr, then the frame's bytes), 3 runs the engine and
 * takes the responses, 4 writes into a data page (a byte of page, 2 of
 * offset, a byte n, n bytes), 5 closes the engine and opens another over
 * the same rings and kept state (a worker restarted; not after a lie,
 * which loses the vif).  Whatever the frontend does, the engine leaves at
 * most one partial TX chain unanswered, and a lie is final; a restarted
 * engine takes the kept state it left.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bhnetback.h"
#include "fuzz.h"

static uint8_t pages[64][4096];

static void *page_of(void *ctx, uint32_t gref, bool writable)
{
    (void)ctx;
    (void)writable;
    return gref < 64 ? pages[gref] : NULL;
}

static uint64_t epoch;
static unsigned int page_calls;
static bool evicting;

/* Kept pages: every seventh mapping, when evicting, unmaps what came before. */
static void *page_kept(void *ctx, uint32_t gref, bool writable)
{
    if (evicting && ++page_calls % 7 == 0)
        epoch++;
    return page_of(ctx, gref, writable);
}

static uint64_t epoch_of(void *ctx)
{
    (void)ctx;
    return epoch;
}

static bool spoof_filter(void *ctx, const uint8_t *f, size_t len)
{
    static const struct bhnet_antispoof a = {.has_mac = true, .mac = {0, 0x16, 0x3e, 0, 0, 1},
                                             .nip = 1, .ip = {0x0100000a}};

    (void)ctx;
    return bhnet_antispoof_ok(&a, f, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct bhnet_kept kept;
    static uint8_t frame[12 + 9000];
    struct fuzz_in in = {data, size};
    struct bhnet_opts o = {0};
    struct bhring ftx, frx;
    struct bhnet *eng = NULL;
    void *txmem = aligned_alloc(BHRING_PAGE_SIZE, bhring_bytes(0));
    void *rxmem = aligned_alloc(BHRING_PAGE_SIZE, bhring_bytes(0));
    char why[200];
    bool lied = false;
    uint8_t opt;
    int sp[2] = {-1, -1};

    if (txmem == NULL || rxmem == NULL ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sp) != 0)
        goto out;
    opt = fuzz_u8(&in);
    o.tx.gso_tcpv4 = o.rx.gso_tcpv4 = opt & 1;
    o.tx.gso_tcpv6 = o.rx.gso_tcpv6 = opt & 2;
    o.tx.mcast = opt & 4;
    o.rx.ring_ids = opt & 8 ? 256 : 0;
    memset(&kept, 0, sizeof(kept));
    o.kept = opt & 16 ? &kept : NULL;
    o.filter = opt & 32 ? spoof_filter : NULL;
    o.tx_ring = txmem, o.rx_ring = rxmem, o.fd = sp[0], o.hdrsz = 12, o.page = page_of;
    if (opt & 64) {
        o.page = page_kept;
        o.epoch = epoch_of;
        evicting = opt & 128;
        page_calls = 0;
    }
    if (bhring_attach(&ftx, &bhring_netif_tx, BHRING_FRONT, txmem, 0, 0, true) != 0 ||
        bhring_attach(&frx, &bhring_netif_rx, BHRING_FRONT, rxmem, 0, 0, true) != 0 ||
        (eng = bhnet_open(&o, why, sizeof(why))) == NULL)
        abort();
    while (in.n > 0) {
        uint8_t op = fuzz_u8(&in) % 7;
        unsigned int k, len;
        switch (op) {
        case 0:
        case 1:
            k = fuzz_u8(&in) % 32;
            for (unsigned int i = 0; i < k; i++) {
                struct netif_tx_request t;
                struct netif_rx_request r;
                uint8_t *p = op == 0 ? (uint8_t *)&t : (uint8_t *)&r;
                size_t sz = op == 0 ? sizeof(t) : sizeof(r);
                for (size_t x = 0; x < sz; x++)
                    p[x] = fuzz_u8(&in);
                if (op == 0 && bhring_front_free(&ftx) > 0)
                    bhring_front_put(&ftx, &t);
                else if (op == 1 && bhring_front_free(&frx) > 0)
                    bhring_front_put(&frx, &r);
            }
            bhring_front_push(op == 0 ? &ftx : &frx);
            break;
        case 4: {
            /* The frontend writes its pages (headers for the TX side to read). */
            uint8_t *pg = pages[fuzz_u8(&in) % 64];
            unsigned int at = (unsigned int)(fuzz_u8(&in) << 8 | fuzz_u8(&in)) % 4096;
            len = fuzz_u8(&in);
            for (unsigned int i = 0; i < len && at + i < 4096; i++)
                pg[at + i] = fuzz_u8(&in);
            break;
        }
        case 5:
            if (lied || o.kept == NULL)
                break;
            bhnet_close(eng);
            eng = bhnet_open(&o, why, sizeof(why));
            FUZZ_ASSERT(eng != NULL);
            break;
        case 2:
            len = (unsigned int)(fuzz_u8(&in) << 8 | fuzz_u8(&in)) % 9001;
            for (unsigned int i = 0; i < 12 + len; i++)
                frame[i] = fuzz_u8(&in);
            (void)!send(sp[1], frame, 12 + len, 0);
            break;
        case 6: {
            /* Another queue's engine steers a frame here (the control ring's hash). */
            struct bhnet_rxmeta m = {0};
            int notify, r;
            uint8_t g = fuzz_u8(&in);
            m.len = 1 + (unsigned int)(fuzz_u8(&in) << 8 | fuzz_u8(&in)) % 9000;
            m.flags = g & 3 ? NETRXF_csum_blank | NETRXF_data_validated : 0;
            if (g & 4) {
                m.gso_type = g & 8 ? XEN_NETIF_GSO_TYPE_TCPV6 : XEN_NETIF_GSO_TYPE_TCPV4;
                m.gso_size = (uint16_t)(1 + fuzz_u8(&in) * 8);
            }
            m.has_hash = g & 16;
            m.hash = 0x51ccc178;
            m.hash_type = _XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP;
            for (unsigned int i = 0; i < m.len; i++)
                frame[i] = (uint8_t)i;
            r = bhnet_rx_push(eng, &m, frame, &notify, why, sizeof(why));
            FUZZ_ASSERT(!lied || r == -1);
            if (r < 0)
                lied = true;
            break;
        }
        case 3: {
            int r = bhnet_run(eng, why, sizeof(why));
            struct netif_tx_response tr;
            struct netif_rx_response rr;
            FUZZ_ASSERT(!lied || r == -1);
            if (r < 0) {
                FUZZ_ASSERT(why[0] != '\0');
                lied = true;
                break;
            }
            while (bhring_front_get(&ftx, &tr) == 1)
                ;
            while (bhring_front_get(&frx, &rr) == 1)
                ;
            /* Unless the budget ran out, every TX request is answered but
             * a partial chain's.  (RX buffers wait for frames: no bound.) */
            if (!(r & BHNET_AGAIN))
                FUZZ_ASSERT(bhring_in_flight(&ftx) <= BHNET_TX_MAX_REQS);
            while (recv(sp[1], frame, sizeof(frame), 0) > 0)
                ;
            break;
        }
        }
    }
out:
    bhnet_close(eng);
    if (sp[0] >= 0) {
        close(sp[0]);
        close(sp[1]);
    }
    free(txmem);
    free(rxmem);
    return 0;
}
