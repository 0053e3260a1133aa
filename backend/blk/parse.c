/*
 * parse.c - blkback's request validator: a pure function over a request
 * already copied out of the ring and the disk's geometry.  Every field the
 * frontend wrote is checked before anything acts on it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bhblkback.h"

static enum bhblk_verdict lie(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum bhblk_verdict lie(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return BHBLK_LIE;
}

/* Every size the ring ever had: beyond it a request can only be a lie. */
static uint64_t limit(const struct bhblk_geom *g)
{
    return g->ever_sectors > g->sectors ? g->ever_sectors : g->sectors;
}

/* 512-byte sectors per logical block, minus one: what must be clear in an aligned count. */
static uint64_t lmask(const struct bhblk_geom *g)
{
    return g->sector_size > BHBLK_SECTOR ? g->sector_size / BHBLK_SECTOR - 1 : 0;
}

enum bhblk_verdict bhblk_check_segs(const struct blkif_request_segment *segs, unsigned int n,
                                    uint64_t sector, const struct bhblk_geom *g,
                                    uint64_t *nr_sectors, char *why, size_t whylen)
{
    uint64_t total = 0, end, mask = lmask(g), odd = sector & mask;

    for (unsigned int i = 0; i < n; i++) {
        uint8_t first = segs[i].first_sect, last = segs[i].last_sect;
        if (first > last || last > 7)
            return lie(why, whylen, "segment %u: sectors %u..%u are not within one page (0 <= first <= last <= 7)",
                       i, first, last);
        total += (uint64_t)(last - first + 1);
        odd |= (first | (uint64_t)(last - first + 1)) & mask;
    }
    end = sector + total;
    if (end < sector || end > limit(g))
        return lie(why, whylen, "sectors %llu..+%llu are past the end of the disk (%llu sectors)",
                   (unsigned long long)sector, (unsigned long long)total,
                   (unsigned long long)limit(g));
    *nr_sectors = total;
    /* past a disk that shrank under it, or not whole logical blocks: an error, not a lie */
    return end > g->sectors || odd != 0 ? BHBLK_REFUSE : BHBLK_GO;
}

static enum bhblk_verdict refuse(struct bhblk_req *out, int16_t status)
{
    out->status = status;
    return BHBLK_REFUSE;
}

enum bhblk_verdict bhblk_parse(const struct blkif_request *raw, const struct bhblk_geom *g,
                               struct bhblk_req *out, char *why, size_t whylen)
{
    enum bhblk_verdict v;

    memset(out, 0, sizeof(*out));
    out->id = raw->id;
    out->operation = raw->operation;
    out->op = raw->operation;
    out->status = BLKIF_RSP_OKAY;
    switch (raw->operation) {
    case BLKIF_OP_READ:
    case BLKIF_OP_WRITE:
    case BLKIF_OP_WRITE_BARRIER:
    case BLKIF_OP_FLUSH_DISKCACHE: {
        bool data_op = raw->operation == BLKIF_OP_READ || raw->operation == BLKIF_OP_WRITE;
        unsigned int n = raw->nr_segments;
        if (n > BLKIF_MAX_SEGMENTS_PER_REQUEST || (data_op && n == 0))
            return lie(why, whylen, "request with %u segments (operation %u): 1..11 are allowed", n,
                       raw->operation);
        out->nseg = n;
        out->sector = raw->sector_number;
        if (n > 0) {
            struct blkif_request_segment segs[BLKIF_MAX_SEGMENTS_PER_REQUEST];
            memcpy(segs, raw->seg, n * sizeof(segs[0]));
            v = bhblk_check_segs(segs, n, out->sector, g, &out->nr_sectors, why, whylen);
            if (v == BHBLK_LIE)
                return v;
            for (unsigned int i = 0; i < n; i++)
                out->seg[i] = (struct bhblk_seg){segs[i].gref, segs[i].first_sect,
                                                 segs[i].last_sect};
            if (v == BHBLK_REFUSE)
                return refuse(out, BLKIF_RSP_ERROR);
        }
        if (g->readonly && raw->operation != BLKIF_OP_READ &&
            (raw->operation == BLKIF_OP_WRITE || n > 0 || raw->operation == BLKIF_OP_WRITE_BARRIER))
            return refuse(out, BLKIF_RSP_ERROR);
        return BHBLK_GO;
    }
    case BLKIF_OP_DISCARD: {
        struct blkif_request_discard d;
        uint64_t end;
        memcpy(&d, raw, sizeof(d));
        if (d.flag & ~BLKIF_DISCARD_SECURE)
            return lie(why, whylen, "discard with unknown flags 0x%x", d.flag);
        out->sector = d.sector_number;
        out->nr_sectors = d.nr_sectors;
        end = d.sector_number + d.nr_sectors;
        if (d.nr_sectors == 0 || end < d.sector_number || end > limit(g))
            return lie(why, whylen, "discard of sectors %llu..+%llu: not within the disk",
                       (unsigned long long)d.sector_number, (unsigned long long)d.nr_sectors);
        if (!g->discard)
            return refuse(out, BLKIF_RSP_EOPNOTSUPP);
        if (end > g->sectors || ((d.sector_number | d.nr_sectors) & lmask(g)) != 0)
            return refuse(out, BLKIF_RSP_ERROR);
        if (g->readonly)
            return refuse(out, BLKIF_RSP_ERROR);
        return BHBLK_GO;
    }
    case BLKIF_OP_INDIRECT: {
        struct blkif_request_indirect ind;
        unsigned int pages;
        memcpy(&ind, raw, sizeof(ind));
        out->id = ind.id;
        if (g->max_indirect == 0)
            return lie(why, whylen, "indirect request (%u segments) but no indirect segments were offered",
                       ind.nr_segments);
        if (ind.indirect_op != BLKIF_OP_READ && ind.indirect_op != BLKIF_OP_WRITE)
            return lie(why, whylen, "indirect request for operation %u: only read and write",
                       ind.indirect_op);
        /*
         * The response names the operation carried out, not BLKIF_OP_INDIRECT:
         * Linux's blkfront (since its responses are checked, 5.x) takes any
         * other answer as a broken backend and stops the disk for good.
         */
        out->operation = ind.indirect_op;
        if (ind.nr_segments == 0 || ind.nr_segments > g->max_indirect)
            return lie(why, whylen, "indirect request with %u segments: 1..%u are allowed",
                       ind.nr_segments, g->max_indirect);
        pages = (ind.nr_segments + BHBLK_SEGS_PER_PAGE - 1) / BHBLK_SEGS_PER_PAGE;
        if (pages > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST)
            return lie(why, whylen, "indirect request over %u pages: at most %u", pages,
                       BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
        out->op = ind.indirect_op;
        out->nseg = ind.nr_segments;
        out->nind = pages;
        out->sector = ind.sector_number;
        if (out->sector >= limit(g))
            return lie(why, whylen, "indirect request at sector %llu: the disk has %llu",
                       (unsigned long long)out->sector, (unsigned long long)limit(g));
        memcpy(out->ind_grefs, ind.indirect_grefs, pages * sizeof(uint32_t));
        if (g->readonly && ind.indirect_op == BLKIF_OP_WRITE)
            return refuse(out, BLKIF_RSP_ERROR);
        return BHBLK_GO;
    }
    default:
        return lie(why, whylen, "unknown operation %u", raw->operation);
    }
}
