/*
 * spoof.c - anti-spoofing for a vif's TX frames: what the vif-route and
 * Qubes scripts' iptables and ebtables rules check, done by the backend on
 * its private copy of a frame (the frontend's page can change while we
 * look; the copy cannot).
 */
#include <string.h>

#include "bhnetback.h"

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static bool ip_allowed(const struct bhnet_antispoof *a, const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    for (unsigned int i = 0; i < a->nip && i < BHNET_SPOOF_MAX_IPS; i++)
        if (a->ip[i] == v)
            return true;
    return false;
}

bool bhnet_antispoof_ok(const struct bhnet_antispoof *a, const uint8_t *f, size_t len)
{
    size_t l3 = BHNET_ETH_HLEN;
    uint16_t type;

    if (len < BHNET_ETH_HLEN)
        return false;
    if (a->has_mac && memcmp(f + 6, a->mac, 6) != 0)
        return false;
    if (a->nip == 0)
        return true;
    type = be16(f + 12);
    if (type == 0x8100) { /* one 802.1Q tag */
        if (len < l3 + 4)
            return false;
        type = be16(f + 16);
        l3 += 4;
    }
    if (type == 0x0800) /* IPv4: the source address at 12; too short to hold it is refused */
        return len >= l3 + 20 && ip_allowed(a, f + l3 + 12);
    if (type == 0x0806) /* ARP (IPv4 over Ethernet): the sender's address at 14 */
        return len >= l3 + 28 && ip_allowed(a, f + l3 + 14);
    return true; /* IPv6 and the rest: ip= names IPv4 addresses only */
}
