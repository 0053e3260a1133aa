/*
 * fuzz_blkback_req.c - blkback's request validator over any request bytes
 * and any disk geometry.
 *
 * Input: geometry (8 bytes of sectors, 1 byte of flags: read-only, discard,
 * indirect offered, 4096-byte logical sectors (else 512), a disk that
 * shrank to half its size), then one blkif request (112 bytes, short inputs
 * zero-padded), then up to 256 indirect segments (8 bytes each) checked as
 * bhblk_check_segs would check an indirect request's pages.  Whatever the
 * verdict, what the validator lets through must be safe to act on: every
 * segment within its page, the sector range within the disk, no write to a
 * read-only disk, indirect page counts within the protocol's, and with
 * 4096-byte sectors only whole logical blocks.
 */
#include <stdlib.h>
#include <string.h>

#include "bhblkback.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct bhblk_geom g;
    struct blkif_request raw;
    struct bhblk_req r;
    struct blkif_request_segment segs[BHBLK_MAX_INDIRECT];
    uint8_t flags;
    uint64_t nr = 0, mask;
    char why[200];
    enum bhblk_verdict v;

    g.sectors = ((uint64_t)fuzz_u32(&in) << 32) | fuzz_u32(&in);
    flags = fuzz_u8(&in);
    g.readonly = flags & 1;
    g.discard = flags & 2;
    g.max_indirect = flags & 4 ? BHBLK_MAX_INDIRECT : 0;
    g.sector_size = flags & 8 ? 4096 : 512;
    g.ever_sectors = 0;
    if (flags & 16) { /* shrunk: requests up to the old size are errors, not lies */
        g.ever_sectors = g.sectors;
        g.sectors /= 2;
    }
    mask = g.sector_size / BHBLK_SECTOR - 1;
    memset(&raw, 0, sizeof(raw));
    for (size_t k = 0; k < sizeof(raw); k++)
        ((uint8_t *)&raw)[k] = fuzz_u8(&in);
    v = bhblk_parse(&raw, &g, &r, why, sizeof(why));
    if (v == BHBLK_LIE) {
        if (why[0] == '\0')
            abort(); /* a lie always says what it was */
        return 0;
    }
    if (v == BHBLK_REFUSE && r.status != BLKIF_RSP_ERROR && r.status != BLKIF_RSP_EOPNOTSUPP)
        abort();
    if (v != BHBLK_GO)
        return 0;
    if (g.readonly && r.op != BLKIF_OP_READ &&
        (r.op == BLKIF_OP_WRITE || r.op == BLKIF_OP_DISCARD || r.nseg > 0 ||
         r.op == BLKIF_OP_WRITE_BARRIER))
        abort();
    if (r.nind > 0) {
        if (r.nind > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST || r.nseg == 0 ||
            r.nseg > g.max_indirect ||
            r.sector >= (g.ever_sectors > g.sectors ? g.ever_sectors : g.sectors))
            abort();
        for (unsigned int k = 0; k < r.nseg; k++) {
            segs[k].gref = fuzz_u32(&in);
            segs[k].first_sect = fuzz_u8(&in);
            segs[k].last_sect = fuzz_u8(&in);
        }
        if (bhblk_check_segs(segs, r.nseg, r.sector, &g, &nr, why, sizeof(why)) != BHBLK_GO)
            return 0;
        for (unsigned int k = 0; k < r.nseg; k++)
            if (segs[k].first_sect > segs[k].last_sect || segs[k].last_sect > 7 ||
                ((segs[k].first_sect | (segs[k].last_sect - segs[k].first_sect + 1)) & mask) != 0)
                abort();
    } else {
        if (r.nseg > BLKIF_MAX_SEGMENTS_PER_REQUEST)
            abort();
        if ((r.op == BLKIF_OP_READ || r.op == BLKIF_OP_WRITE) && r.nseg == 0)
            abort();
        for (unsigned int k = 0; k < r.nseg; k++) {
            if (r.seg[k].first > r.seg[k].last || r.seg[k].last > 7 ||
                ((r.seg[k].first | (r.seg[k].last - r.seg[k].first + 1)) & mask) != 0)
                abort();
            nr += (uint64_t)(r.seg[k].last - r.seg[k].first + 1);
        }
        if (r.op == BLKIF_OP_DISCARD)
            nr = r.nr_sectors;
        else if (nr != r.nr_sectors)
            abort();
    }
    /* An empty range (a barrier or flush with no data) touches no sector: its number is moot. */
    if (nr > 0 &&
        (r.sector + nr < r.sector || r.sector + nr > g.sectors || ((r.sector | nr) & mask) != 0))
        abort();
    return 0;
}
