/*
 * fuzz_netback_spoof.c - the anti-spoofing check over a TX frame a
 * frontend wrote (copied, as the engine copies it).
 *
 * Input: one byte of options (bit 0: a MAC is set; bits 1..3: how many
 * addresses), the MAC (6 bytes), the addresses (4 bytes each), then the
 * frame.  Whatever the frame, a frame let through has the vif's source MAC
 * when one is set, and an untagged IPv4 or ARP frame let through names one
 * of the addresses when any are set.
 */
#include <string.h>

#include "bhnetback.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct bhnet_antispoof a = {0};
    uint8_t opt = fuzz_u8(&in);
    static uint8_t frame[65536];
    size_t len;
    bool ok;

    a.has_mac = opt & 1;
    a.nip = (opt >> 1) & 7;
    for (int i = 0; i < 6; i++)
        a.mac[i] = fuzz_u8(&in);
    for (unsigned int i = 0; i < a.nip; i++) {
        uint32_t v = fuzz_u32(&in);
        memcpy(&a.ip[i], &v, 4);
    }
    len = in.n < sizeof(frame) ? in.n : sizeof(frame);
    memcpy(frame, in.p, len); /* a copy of exactly len bytes: reads past it are the sanitizers' */
    ok = bhnet_antispoof_ok(&a, frame, len);
    if (!ok)
        return 0;
    FUZZ_ASSERT(len >= BHNET_ETH_HLEN);
    if (a.has_mac)
        FUZZ_ASSERT(memcmp(frame + 6, a.mac, 6) == 0);
    if (a.nip > 0 && frame[12] == 0x08 && (frame[13] == 0x00 || frame[13] == 0x06)) {
        size_t off = frame[13] == 0x00 ? 14 + 12 : 14 + 14;
        bool named = false;

        FUZZ_ASSERT(len >= off + 4);
        for (unsigned int i = 0; i < a.nip; i++)
            named = named || memcmp(frame + off, &a.ip[i], 4) == 0;
        FUZZ_ASSERT(named);
    }
    return 0;
}
