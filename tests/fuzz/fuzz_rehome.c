/*
 * fuzz_rehome.c - what bulkhead restart reads while re-homing a device:
 * the permissions of a guest's own frontend nodes (the guest may set them
 * to anything it likes), a backend path, and the keys of a copy, through
 * rehome_perms, rehome_dev_init, rehome_disk_reg and rehome_vif_reg.
 * Invariants: no crash; a refusal is one non-empty line; the permissions
 * given back fit in n + 1 entries, name the old backend nowhere, the new
 * one at most once past the owner, and let it read any node the frontend
 * owns; unchanged means identical; a device that moves gets libxl's path
 * under the new domain.
 *
 * Input: a byte n (0..15), n permission entries of 3 bytes (domid low,
 * high, perm bits), then NUL-separated strings: the backend path, then
 * key, value pairs of the copy.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "rehome.h"

#define FE 3
#define OLD 1
#define NEW 7

static void check_perms(struct fuzz_in *in)
{
    struct xs_permissions p[16], out[17];
    unsigned int n = fuzz_u8(in) % 16, m, news = 0;
    bool changed;

    for (unsigned int i = 0; i < n; i++) {
        p[i].id = fuzz_u8(in);
        p[i].id |= (unsigned int)fuzz_u8(in) << 8;
        p[i].perms = fuzz_u8(in) & 7;
    }
    m = rehome_perms(p, n, FE, OLD, NEW, out, &changed);
    FUZZ_ASSERT(m <= n + 1);
    for (unsigned int i = 0; i < m; i++) {
        FUZZ_ASSERT(out[i].id != OLD);
        news += i > 0 && out[i].id == NEW;
    }
    FUZZ_ASSERT(news <= 1);
    if (n > 0 && p[0].id == FE)
        FUZZ_ASSERT(news == 1);
    if (!changed)
        FUZZ_ASSERT(m == n && memcmp(p, out, n * sizeof(*p)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct rehome_key keys[32];
    struct rehome_dev d;
    struct rehome_disk dk;
    struct rehome_vif v;
    char *buf, *s, *end, err[512];
    size_t nk = 0;
    int r;

    if (size > 16384)
        return 0;
    check_perms(&in);
    if ((buf = malloc(in.n + 1)) == NULL)
        return 0;
    memcpy(buf, in.p, in.n);
    buf[in.n] = '\0';
    end = buf + in.n;
    s = buf;
    err[0] = '\0';
    r = rehome_dev_init(&d, "vbd", FE, 51712, s, OLD, NEW, err, sizeof(err));
    FUZZ_ASSERT(r >= -1 && r <= 1);
    if (r < 0)
        FUZZ_ASSERT(err[0] != '\0' && strchr(err, '\n') == NULL);
    if (r == 1) {
        FUZZ_ASSERT(strcmp(d.old_paths.backend, s) == 0);
        FUZZ_ASSERT(strncmp(d.new_paths.backend, "/local/domain/7/backend/", 24) == 0);
        FUZZ_ASSERT(strcmp(d.new_paths.frontend, "/local/domain/3/device/vbd/51712") == 0);
    }
    for (s += strlen(s) + 1; s < end && nk < 32; nk++) {
        keys[nk].key = s;
        s += strlen(s) + 1;
        keys[nk].value = s < end ? s : "";
        s += s < end ? strlen(s) + 1 : 0;
    }
    err[0] = '\0';
    if (rehome_disk_reg(keys, nk, &dk, err, sizeof(err)) != 0)
        FUZZ_ASSERT(err[0] != '\0' && strchr(err, '\n') == NULL);
    else if (!dk.empty)
        FUZZ_ASSERT(dk.path[0] == '/');
    err[0] = '\0';
    if (rehome_vif_reg(keys, nk, &v, err, sizeof(err)) != 0)
        FUZZ_ASSERT(err[0] != '\0' && strchr(err, '\n') == NULL);
    else
        FUZZ_ASSERT(v.mtu >= 68 && v.mtu <= 65535 && strlen(v.bridge) < sizeof(v.bridge) &&
                    (!v.routed || (v.bridge[0] == '\0' && v.nip4 >= 1 &&
                                   v.nip4 <= VIFSPEC_ROUTED_MAX)));
    if (r == 1) {
        struct bhxb_layout *l = rehome_layout(&d, keys, nk);
        for (size_t i = 0; l != NULL && i < l->n; i++)
            if (rehome_node_written(&d, l->nodes[i].path))
                FUZZ_ASSERT(strncmp(l->nodes[i].path, "/local/domain/1/", 16) != 0);
        bhxb_layout_free(l);
    }
    free(buf);
    return 0;
}
