/*
 * fuzz_hv_broker.c - a broker request from anywhere: the first byte picks
 * the request, the rest is its payload.  Invariants: no crash, and an
 * accepted request holds only what the broker may act on - strings ending
 * inside their fields, canonical absolute paths, interface names that fit
 * IFNAMSIZ, counts and sizes within their ranges.
 */
#include <string.h>

#include "fuzz.h"
#include "hv.h"

static void check_path(const char *f)
{
    FUZZ_ASSERT(strnlen(f, HVW_PATH_MAX) < HVW_PATH_MAX);
    FUZZ_ASSERT(f[0] == '/' && strstr(f, "//") == NULL && strstr(f, "/../") == NULL &&
                strstr(f, "/./") == NULL);
    FUZZ_ASSERT(f[strlen(f) - 1] != '/');
}

static void check_name(const char *f, int empty_ok)
{
    size_t n = strnlen(f, HVW_IFNAME_MAX);

    FUZZ_ASSERT(n < HVW_IFNAME_MAX && (n > 0 || empty_ok));
    FUZZ_ASSERT(strchr(f, '/') == NULL && strchr(f, ' ') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = size ? data + 1 : data;
    size_t len = size ? size - 1 : 0;
    const char *why = NULL;
    union {
        struct hvw_brk_storage_req st;
        struct hvw_brk_disk_reg disk;
        struct hvw_brk_vif_reg vif;
        struct hvw_brk_unreg_req unreg;
        struct hvw_brk_tap_req tap;
        struct hvw_brk_open_req open;
        struct hvw_brk_bridge_req br;
        struct hvw_brk_uplink_req up;
    } r;

    switch (size ? data[0] % 9 : 0) {
    case 0:
        if (brk_parse_storage(p, len, &r.st, &why) == 0) {
            FUZZ_ASSERT(r.st.count <= HVW_BRK_MAX_DIRS && r.st.domid != 0);
            for (unsigned int i = 0; i < r.st.count; i++)
                check_path(r.st.dirs[i]);
            return 0;
        }
        break;
    case 1:
        if (brk_parse_disk_reg(p, len, &r.disk, &why) == 0) {
            check_path(r.disk.path);
            FUZZ_ASSERT(r.disk.backend != r.disk.frontend && r.disk.backend && r.disk.frontend);
            FUZZ_ASSERT(!(r.disk.flags & HVW_BRK_NBD) || strlen(r.disk.path) < 108);
            return 0;
        }
        break;
    case 2:
        if (brk_parse_vif_reg(p, len, &r.vif, &why) == 0) {
            FUZZ_ASSERT(r.vif.queues >= 1 && r.vif.queues <= HVW_BRK_MAX_QUEUES);
            FUZZ_ASSERT(r.vif.mtu >= 68 && r.vif.devid <= 65535 && !(r.vif.mac[0] & 1));
            check_name(r.vif.bridge, 1);
            check_name(r.vif.vifname, 1);
            check_name(r.vif.gatewaydev, !(r.vif.flags & HVW_BRK_VIF_ROUTED));
            FUZZ_ASSERT(r.vif.flags <= HVW_BRK_VIF_ROUTED && r.vif.nip <= HVW_BRK_MAX_IPS);
            FUZZ_ASSERT(!(r.vif.flags & HVW_BRK_VIF_ROUTED) ||
                        (r.vif.bridge[0] == '\0' && r.vif.nip >= 1));
            for (unsigned int i = 0; i < r.vif.nip; i++)
                FUZZ_ASSERT(r.vif.ip[i] != 0 && r.vif.ip[i] != 0xffffffffu);
            return 0;
        }
        break;
    case 3:
        if (brk_parse_unreg(p, len, &r.unreg, &why) == 0)
            return 0;
        break;
    case 4:
        if (brk_parse_tap(p, len, &r.tap, &why) == 0) {
            FUZZ_ASSERT(r.tap.vnet_hdr_sz == 10 || r.tap.vnet_hdr_sz == 12);
            FUZZ_ASSERT(r.tap.offload <= 7 && (r.tap.offload <= 1 || (r.tap.offload & 1)));
            return 0;
        }
        break;
    case 5:
    case 6:
        if (brk_parse_open(p, len, data[0] % 9 == 6, &r.open, &why) == 0) {
            FUZZ_ASSERT(r.open.flags <= (data[0] % 9 == 6 ? 0u : HVW_BRK_DIRECT));
            return 0;
        }
        break;
    case 7:
        if (brk_parse_bridge(p, len, &r.br, &why) == 0) {
            check_name(r.br.name, 0);
            FUZZ_ASSERT(r.br.addr == 0 ? r.br.prefix == 0
                                       : r.br.prefix >= 1 && r.br.prefix <= 32 &&
                                             r.br.addr != 0xffffffffu);
            return 0;
        }
        break;
    default:
        if (brk_parse_uplink(p, len, &r.up, &why) == 0) {
            check_name(r.up.bridge, 0);
            check_name(r.up.name, 0);
            check_name(r.up.peer, 0);
            check_path(r.up.netns);
            return 0;
        }
        break;
    }
    FUZZ_ASSERT(why != NULL && why[0] != '\0'); /* every refusal says why */
    return 0;
}
