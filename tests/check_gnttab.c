/*
 * check_gnttab.c - bulkhead-hv's grant tables (hv/gnttab.c) on their own,
 * against tests/hvfake.c: share, map, end, unmap and copy semantics, what
 * a read-only or sealed page refuses, table limits, lifetimes when
 * channels and domains go away, and hostile payloads.  Needs root, as the
 * daemon does (it reopens pages through /proc/self/fd).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/grant_table.h>

#include "hvfake.h"

#define PAGE   HVW_PAGE_SIZE
#define NOBODY 65534

static struct hv *hv;
static struct hv_dom *d1, *d2, *d3;
static struct hv_conn *c1, *c1b, *c2, *c3;
static struct hv_rsp *rsp;
static int fds_before;

static void setup(void)
{
    fds_before = hvfake_open_fds();
    hv = hvfake_new(false);
    d1 = hvfake_dom(hv, 1, 0, 0);
    d2 = hvfake_dom(hv, 2, 0, 0);
    d3 = hvfake_dom(hv, 3, 0, 0);
    ck_assert_ptr_nonnull(d3);
    c1 = hvfake_conn(hv, d1);
    c1b = hvfake_conn(hv, d1);
    c2 = hvfake_conn(hv, d2);
    c3 = hvfake_conn(hv, d3);
    rsp = hvfake_rsp_new();
}

/* Whatever a test did, tearing the hypervisor down leaves no fd behind. */
static void teardown(void)
{
    hvfake_rsp_free(rsp);
    hvfake_free(hv);
    ck_assert_int_eq(hvfake_open_fds(), fds_before);
}

/* ---- helpers: one request each; fds are handed to the caller, who closes them ---- */

static int share(struct hv_conn *c, uint16_t domid, bool writable, uint32_t n, uint32_t *refs,
                 int *fds)
{
    struct hvw_gnt_share_req r = {.domid = domid, .writable = writable, .count = n};
    int rc = hvfake_call(hv, c, HVW_OP_GNT_SHARE, &r, sizeof(r), rsp);

    if (rc != 0)
        return rc;
    ck_assert_uint_eq(rsp->len, 4 * (1 + n));
    ck_assert_uint_eq(rsp->nfds, n);
    memcpy(refs, rsp->p + 4, 4 * n);
    if (fds != NULL) {
        memcpy(fds, rsp->fds, sizeof(int) * n);
        rsp->nfds = 0;
    }
    return 0;
}

static uint32_t share1(struct hv_conn *c, uint16_t domid, bool writable, int *fd)
{
    uint32_t ref;

    ck_assert_int_eq(share(c, domid, writable, 1, &ref, fd), 0);
    return ref;
}

static int map_req(struct hv_conn *c, uint16_t op, uint16_t domid, bool writable, uint32_t n,
                   const uint32_t *refs)
{
    uint8_t buf[8 + 4 * 128];
    struct hvw_gnt_map_req r = {.domid = domid, .writable = writable, .count = n};

    memcpy(buf, &r, 8);
    memcpy(buf + 8, refs, 4 * n);
    return hvfake_call(hv, c, op, buf, 8 + 4 * n, rsp);
}

static int map(struct hv_conn *c, uint16_t domid, bool writable, uint32_t n, const uint32_t *refs,
               int *fds)
{
    int rc = map_req(c, HVW_OP_GNT_MAP, domid, writable, n, refs);

    if (rc != 0)
        return rc;
    ck_assert_uint_eq(rsp->len, 4);
    ck_assert_uint_eq(rsp->nfds, n);
    if (fds != NULL) {
        memcpy(fds, rsp->fds, sizeof(int) * n);
        rsp->nfds = 0;
    }
    return 0;
}

static int unmap(struct hv_conn *c, uint16_t domid, uint32_t n, const uint32_t *refs)
{
    return map_req(c, HVW_OP_GNT_UNMAP, domid, false, n, refs);
}

/* GNT_END of one reference: its status. */
static int end1(struct hv_conn *c, uint32_t ref)
{
    uint32_t req[2] = {1, ref};
    int32_t st;

    ck_assert_int_eq(hvfake_call(hv, c, HVW_OP_GNT_END, req, sizeof(req), rsp), 0);
    ck_assert_uint_eq(rsp->len, 8);
    memcpy(&st, rsp->p + 4, 4);
    return st;
}

static struct hvw_stats_rsp stats(void)
{
    return hvfake_stats(hv);
}

static uint8_t *page_map(int fd, int prot)
{
    void *p = mmap(NULL, PAGE, prot, MAP_SHARED, fd, 0);

    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

/*
 * Opens /proc/self/fd/N for `flags` in a child that dropped to nobody and
 * is dumpable (so that its /proc/self/fd is its own to search, and only
 * the file's own mode decides).  0 if it opened, else the errno.
 */
static int reopen_as_nobody(int fd, int flags)
{
    char path[40];
    int status;
    pid_t pid;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if ((pid = fork()) == 0) {
        int r;
        if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
            setresuid(NOBODY, NOBODY, NOBODY) != 0 || prctl(PR_SET_DUMPABLE, 1) != 0)
            _exit(255);
        r = open(path, flags);
        _exit(r >= 0 ? 0 : errno);
    }
    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_ne(WEXITSTATUS(status), 255);
    return WEXITSTATUS(status);
}

/* ---- share and map ---- */

START_TEST(test_share_map_same_page)
{
    uint32_t refs[3];
    int gfds[3], mfds[3];
    uint8_t *g, *m;

    ck_assert_int_eq(share(c1, 2, true, 3, refs, gfds), 0);
    ck_assert_uint_ne(refs[0], refs[1]);
    ck_assert_uint_ne(refs[1], refs[2]);
    ck_assert_int_eq(map(c2, 1, true, 3, refs, mfds), 0);
    ck_assert_uint_eq(stats().frames, 3);
    ck_assert_uint_eq(stats().mappings, 3);
    for (int i = 0; i < 3; i++) {
        g = page_map(gfds[i], PROT_READ | PROT_WRITE);
        m = page_map(mfds[i], PROT_READ | PROT_WRITE);
        ck_assert_uint_eq(g[100], 0); /* zeroed */
        g[100] = (uint8_t)(i + 1);
        ck_assert_uint_eq(m[100], i + 1);
        m[200] = 7;
        ck_assert_uint_eq(g[200], 7);
        /* Close-on-exec, and its own file description: not the daemon's. */
        ck_assert_int_eq(fcntl(mfds[i], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        ck_assert_int_eq(fcntl(mfds[i], F_GETFL) & O_ACCMODE, O_RDWR);
        munmap(g, PAGE);
        munmap(m, PAGE);
        close(gfds[i]);
        close(mfds[i]);
    }
    ck_assert_int_eq(unmap(c2, 1, 3, refs), 0);
    ck_assert_uint_eq(stats().mappings, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(end1(c1, refs[i]), 0);
    ck_assert_uint_eq(stats().frames, 0);
}
END_TEST

START_TEST(test_read_only_stays_read_only)
{
    int gfd, mfd, plain;
    uint32_t ref = share1(c1, 2, false, &gfd);
    uint8_t *g, *m;

    ck_assert_int_eq(map(c2, 1, true, 1, &ref, NULL), EPERM);
    ck_assert_uint_eq(stats().mappings, 0);
    ck_assert_int_eq(map(c2, 1, false, 1, &ref, &mfd), 0);
    ck_assert_int_eq(fcntl(mfd, F_GETFL) & O_ACCMODE, O_RDONLY);
    /* Not writable shared, not mprotect-able writable. */
    ck_assert_ptr_eq(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0), MAP_FAILED);
    ck_assert_int_eq(errno, EACCES);
    m = page_map(mfd, PROT_READ);
    ck_assert_int_eq(mprotect(m, PAGE, PROT_READ | PROT_WRITE), -1);
    ck_assert_int_eq(errno, EACCES);
    ck_assert_int_eq(ftruncate(mfd, 0), -1);
    /* ... but it sees what the granter writes. */
    g = page_map(gfd, PROT_READ | PROT_WRITE);
    g[5] = 42;
    ck_assert_uint_eq(m[5], 42);
    /* Nobody without privilege reopens it, not even read-only: mode 0. */
    ck_assert_int_eq(reopen_as_nobody(mfd, O_RDWR), EACCES);
    ck_assert_int_eq(reopen_as_nobody(mfd, O_RDONLY), EACCES);
    ck_assert_int_eq(reopen_as_nobody(gfd, O_RDWR), EACCES);
    /* The control: an ordinary memfd reopens in the same way. */
    plain = memfd_create("plain", MFD_CLOEXEC);
    ck_assert_int_eq(reopen_as_nobody(plain, O_RDWR), 0);
    close(plain);
    munmap(g, PAGE);
    munmap(m, PAGE);
    close(gfd);
    close(mfd);
}
END_TEST

START_TEST(test_frames_are_sealed)
{
    int gfd, mfd;
    uint32_t ref = share1(c1, 2, true, &gfd);
    struct stat st;

    ck_assert_int_eq(map(c2, 1, true, 1, &ref, &mfd), 0);
    for (int i = 0; i < 2; i++) {
        int fd = i ? mfd : gfd;
        ck_assert_int_eq(ftruncate(fd, 0), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(ftruncate(fd, 2 * PAGE), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, PAGE);
        ck_assert_int_eq(st.st_mode & 07777, 0);
    }
    close(gfd);
    close(mfd);
}
END_TEST

START_TEST(test_map_only_what_is_granted_to_you)
{
    uint32_t ref = share1(c1, 2, true, NULL), none = ref + 1, huge = 0xffffffffu;

    ck_assert_int_eq(map(c3, 1, true, 1, &ref, NULL), EACCES);
    ck_assert_int_eq(map(c3, 1, false, 1, &ref, NULL), EACCES);
    ck_assert_int_eq(map(c1, 1, false, 1, &ref, NULL), EACCES); /* not even the granter */
    ck_assert_int_eq(map(c2, 3, true, 1, &ref, NULL), ENOENT);  /* the wrong granter */
    ck_assert_int_eq(map(c2, 9, true, 1, &ref, NULL), ESRCH);
    ck_assert_int_eq(map(c2, 1, true, 1, &none, NULL), ENOENT);
    ck_assert_int_eq(map(c2, 1, true, 1, &huge, NULL), ENOENT);
    ck_assert_uint_eq(stats().mappings, 0);
}
END_TEST

START_TEST(test_map_is_all_or_nothing)
{
    uint32_t refs[3];

    ck_assert_int_eq(share(c1, 2, true, 2, refs, NULL), 0);
    refs[2] = share1(c1, 3, true, NULL); /* someone else's */
    ck_assert_int_eq(map(c2, 1, true, 3, refs, NULL), EACCES);
    ck_assert_uint_eq(stats().mappings, 0);
    refs[2] = 30000; /* nothing */
    ck_assert_int_eq(map(c2, 1, true, 3, refs, NULL), ENOENT);
    ck_assert_uint_eq(stats().mappings, 0);
    /* The same page twice in one batch is two mappings. */
    refs[2] = refs[0];
    ck_assert_int_eq(map(c2, 1, true, 3, refs, NULL), 0);
    ck_assert_uint_eq(stats().mappings, 3);
}
END_TEST

START_TEST(test_share_refusals)
{
    uint32_t ref;

    ck_assert_int_eq(share(c1, 9, true, 1, &ref, NULL), ESRCH);
    ck_assert_int_eq(share(c1, 2, true, 0, &ref, NULL), EINVAL);
    ck_assert_int_eq(share(c1, 2, true, HVW_MAX_FDS + 1, &ref, NULL), EINVAL);
    ck_assert_uint_eq(stats().frames, 0);
}
END_TEST

/* ---- end and unmap ---- */

START_TEST(test_cannot_end_a_mapped_grant)
{
    uint32_t ref = share1(c1, 2, true, NULL);

    ck_assert_int_eq(map(c2, 1, true, 1, &ref, NULL), 0);
    ck_assert_int_eq(end1(c1, ref), EBUSY);
    ck_assert_int_eq(end1(c1b, ref), EBUSY); /* any channel of the granter */
    ck_assert_int_eq(end1(c2, ref), ENOENT); /* not the grantee: not its table */
    ck_assert_int_eq(unmap(c2, 1, 1, &ref), 0);
    ck_assert_int_eq(end1(c1b, ref), 0);
    ck_assert_int_eq(end1(c1, ref), ENOENT);
    ck_assert_int_eq(map(c2, 1, true, 1, &ref, NULL), ENOENT);
    ck_assert_int_eq(unmap(c2, 1, 1, &ref), ENOENT);
    ck_assert_uint_eq(stats().frames, 0);
}
END_TEST

START_TEST(test_end_statuses)
{
    uint32_t req[5] = {4, 0, 0, 77, 0xffffffffu};
    int32_t st[4];

    req[1] = share1(c1, 2, true, NULL);
    req[2] = share1(c1, 2, true, NULL);
    ck_assert_int_eq(map(c2, 1, false, 1, &req[2], NULL), 0);
    ck_assert_int_eq(hvfake_call(hv, c1, HVW_OP_GNT_END, req, sizeof(req), rsp), 0);
    ck_assert_uint_eq(rsp->len, 4 + 4 * 4);
    memcpy(st, rsp->p + 4, sizeof(st));
    ck_assert_int_eq(st[0], 0);
    ck_assert_int_eq(st[1], EBUSY);
    ck_assert_int_eq(st[2], ENOENT);
    ck_assert_int_eq(st[3], ENOENT);
}
END_TEST

START_TEST(test_unmap_counts_and_all_or_nothing)
{
    uint32_t ref = share1(c1, 2, true, NULL), two[2];

    ck_assert_int_eq(map(c2, 1, true, 1, &ref, NULL), 0);
    ck_assert_int_eq(map(c2, 1, false, 1, &ref, NULL), 0);
    ck_assert_uint_eq(stats().mappings, 2);
    /* Three unmaps of a page mapped twice: refused whole. */
    {
        uint32_t three[3] = {ref, ref, ref};
        ck_assert_int_eq(unmap(c2, 1, 3, three), ENOENT);
    }
    ck_assert_uint_eq(stats().mappings, 2);
    /* Another channel of the same domain has nothing to unmap. */
    {
        struct hv_conn *c2b = hvfake_conn(hv, d2);
        ck_assert_int_eq(unmap(c2b, 1, 1, &ref), ENOENT);
    }
    two[0] = two[1] = ref;
    ck_assert_int_eq(unmap(c2, 1, 2, two), 0);
    ck_assert_uint_eq(stats().mappings, 0);
    ck_assert_int_eq(end1(c1, ref), 0);
}
END_TEST

START_TEST(test_mappings_die_with_their_channel)
{
    uint32_t refs[4];
    struct hv_conn *c2b = hvfake_conn(hv, d2);

    ck_assert_int_eq(share(c1, 2, true, 4, refs, NULL), 0);
    ck_assert_int_eq(map(c2b, 1, true, 4, refs, NULL), 0);
    ck_assert_int_eq(map(c2, 1, true, 1, refs, NULL), 0);
    ck_assert_int_eq(end1(c1, refs[1]), EBUSY);
    hvfake_conn_close(hv, c2b);
    ck_assert_uint_eq(stats().mappings, 1);
    ck_assert_int_eq(end1(c1, refs[1]), 0);
    ck_assert_int_eq(end1(c1, refs[0]), EBUSY);
}
END_TEST

START_TEST(test_grants_die_with_their_channel)
{
    uint32_t refs[3];
    int fd;

    ck_assert_int_eq(share(c1b, 2, true, 3, refs, NULL), 0);
    ck_assert_int_eq(map(c2, 1, true, 1, &refs[0], &fd), 0);
    hvfake_conn_close(hv, c1b);
    /* The unmapped ones are gone; the mapped one lives until it is unmapped. */
    ck_assert_uint_eq(stats().frames, 1);
    ck_assert_int_eq(map(c2, 1, true, 1, &refs[1], NULL), ENOENT);
    ck_assert_int_eq(map(c2, 1, true, 1, &refs[0], NULL), ENOENT); /* ended: no new mapping */
    ck_assert_int_eq(end1(c1, refs[0]), ENOENT);
    ck_assert_int_eq(unmap(c2, 1, 1, &refs[0]), 0);
    ck_assert_uint_eq(stats().frames, 0);
    close(fd);
}
END_TEST

START_TEST(test_granter_goes_away)
{
    uint32_t ref = share1(c1, 2, true, NULL), mine = share1(c2, 1, true, NULL);
    int fd;
    uint8_t *m;

    ck_assert_int_eq(map(c2, 1, true, 1, &ref, &fd), 0);
    ck_assert_int_eq(map(c1, 2, true, 1, &mine, NULL), 0);
    m = page_map(fd, PROT_READ | PROT_WRITE);
    m[0] = 1;
    hvfake_dom_destroy(hv, d1);
    /* Its own mapping went with it; the page it granted lives on while mapped. */
    ck_assert_uint_eq(stats().mappings, 1);
    ck_assert_uint_eq(stats().frames, 2);
    m[1] = 2;
    ck_assert_int_eq(end1(c2, mine), 0);
    ck_assert_int_eq(map(c2, 1, true, 1, &ref, NULL), ESRCH);
    /* A new domain 1 granting the same reference does not confuse the unmap. */
    d1 = hvfake_dom(hv, 1, 0, 0);
    c1 = hvfake_conn(hv, d1);
    ck_assert_uint_eq(share1(c1, 2, true, NULL), ref);
    ck_assert_int_eq(map(c2, 1, true, 1, &ref, NULL), 0);
    ck_assert_uint_eq(stats().frames, 2);
    ck_assert_int_eq(unmap(c2, 1, 1, &ref), 0); /* the live one first */
    ck_assert_int_eq(end1(c1, ref), 0);
    ck_assert_uint_eq(stats().frames, 1);
    ck_assert_int_eq(unmap(c2, 1, 1, &ref), 0); /* then the orphan */
    ck_assert_uint_eq(stats().frames, 0);
    ck_assert_uint_eq(stats().mappings, 0);
    munmap(m, PAGE);
    close(fd);
}
END_TEST

/*
 * A liar keeps its mapping after unmapping; the grant ends and its
 * reference comes back round.  The new grant behind that same reference is
 * a new page: the liar sees none of it.
 */
START_TEST(test_frames_are_never_reused)
{
    struct hv_dom *small = hvfake_dom(hv, 4, 1, 0);
    struct hv_conn *cs = hvfake_conn(hv, small);
    int fd, gfd;
    uint32_t ref = share1(cs, 2, true, NULL), again;
    struct stat a, b;
    uint8_t *liar, *g;

    ck_assert_int_eq(map(c2, 4, true, 1, &ref, &fd), 0);
    liar = page_map(fd, PROT_READ | PROT_WRITE);
    liar[0] = 0x55;
    ck_assert_int_eq(unmap(c2, 4, 1, &ref), 0);
    ck_assert_int_eq(end1(cs, ref), 0);
    /* References come back oldest first: 511 others before this one. */
    for (int i = 0; i < 511; i++) {
        again = share1(cs, 2, true, NULL);
        ck_assert_uint_ne(again, ref);
        ck_assert_int_eq(end1(cs, again), 0);
    }
    again = share1(cs, 2, true, &gfd);
    ck_assert_uint_eq(again, ref);
    ck_assert_int_eq(fstat(fd, &a), 0);
    ck_assert_int_eq(fstat(gfd, &b), 0);
    ck_assert_uint_ne(a.st_ino, b.st_ino);
    g = page_map(gfd, PROT_READ | PROT_WRITE);
    ck_assert_uint_eq(g[0], 0);
    g[1] = 0x66;
    ck_assert_uint_eq(liar[1], 0);
    liar[2] = 0x77;
    ck_assert_uint_eq(g[2], 0);
    munmap(g, PAGE);
    munmap(liar, PAGE);
    close(fd);
    close(gfd);
}
END_TEST

/*
 * Many pages mapped through one channel, scattered over the table so that
 * they collide in the channel's hash, unmapped one by one in a scrambled
 * order and some mapped twice: the channel's table grows, its slots move
 * when others leave, and every count stays right.
 */
START_TEST(test_many_mappings_on_one_channel)
{
    enum { SHARED = 2048, N = 320, TWICE = 32 };
    static uint32_t all[SHARED], refs[N];

    for (unsigned int i = 0; i < SHARED; i += HVW_MAX_FDS)
        ck_assert_int_eq(share(c1, 2, true, HVW_MAX_FDS, all + i, NULL), 0);
    for (unsigned int i = 0; i < N; i++)
        refs[i] = all[(i * 97 + 13) % SHARED]; /* 97 is prime to 2048: all distinct */
    for (unsigned int i = 0; i < N; i += HVW_MAX_FDS)
        ck_assert_int_eq(map(c2, 1, i % 128 == 0, HVW_MAX_FDS, refs + i, NULL), 0);
    ck_assert_int_eq(map(c2, 1, false, TWICE, refs, NULL), 0);
    ck_assert_uint_eq(stats().mappings, N + TWICE);
    for (unsigned int i = 0; i < N; i++) {
        unsigned int k = (i * 113) % N; /* 113 is prime to 320: each once */
        ck_assert_int_eq(unmap(c2, 1, 1, &refs[k]), 0);
        ck_assert_uint_eq(stats().mappings, N + TWICE - i - 1);
        ck_assert_int_eq(end1(c1, refs[k]), k < TWICE ? EBUSY : 0);
    }
    ck_assert_int_eq(unmap(c2, 1, TWICE, refs), 0);
    ck_assert_int_eq(unmap(c2, 1, 1, &refs[0]), ENOENT);
    ck_assert_uint_eq(stats().mappings, 0);
    ck_assert_uint_eq(stats().frames, SHARED - N + TWICE);
}
END_TEST

/*
 * A grantee's maps of one page share a description per access mode, kept
 * by the daemon while the frame lives (gnttab.c's fdc): a file offset moved
 * through one shows through the other; the read-only one and the granter's
 * own are apart.  Freeing the frame closes what was kept.
 */
START_TEST(test_grantee_descriptions_are_kept)
{
    int gfd, a, b, r, base;
    uint32_t ref = share1(c1, 2, true, &gfd);

    base = hvfake_open_fds();
    ck_assert_int_eq(map(c2, 1, true, 1, &ref, &a), 0);
    ck_assert_int_eq(map(c2, 1, true, 1, &ref, &b), 0);
    ck_assert_int_eq(map(c2, 1, false, 1, &ref, &r), 0);
    ck_assert_int_ne(a, b);
    ck_assert_int_eq(lseek(a, 100, SEEK_SET), 100);
    ck_assert_int_eq(lseek(b, 0, SEEK_CUR), 100);
    ck_assert_int_eq(lseek(r, 0, SEEK_CUR), 0);
    ck_assert_int_eq(lseek(gfd, 0, SEEK_CUR), 0);
    ck_assert_int_eq(fcntl(r, F_GETFL) & O_ACCMODE, O_RDONLY);
    ck_assert_ptr_eq(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, r, 0), MAP_FAILED);
    close(a);
    close(b);
    close(r);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(unmap(c2, 1, 1, &ref), 0);
    ck_assert_int_eq(hvfake_open_fds(), base + 2); /* kept: one per access mode */
    ck_assert_uint_eq(stats().kept, 2);
    ck_assert_int_eq(end1(c1, ref), 0);
    ck_assert_int_eq(hvfake_open_fds(), base);
    ck_assert_uint_eq(stats().kept, 0);
    close(gfd);
}
END_TEST

/*
 * More pages mapped than the ring keeps: the oldest descriptions are
 * closed, the daemon never holds more than the ring, and a page whose
 * description went is opened again at its next map and still right.
 */
START_TEST(test_kept_descriptions_are_bounded)
{
    enum { KEEP = 4, N = 10 };
    uint32_t refs[N];
    int gfds[N], fd, base;
    uint8_t *g, *m;

    gnttab_keep_at_most(KEEP);
    ck_assert_int_eq(share(c1, 2, true, N, refs, gfds), 0);
    base = hvfake_open_fds();
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(map(c2, 1, true, 1, &refs[i], &fd), 0);
        close(fd);
        ck_assert_int_eq(unmap(c2, 1, 1, &refs[i]), 0);
        ck_assert_int_eq(hvfake_open_fds(), base + (i + 1 < KEEP ? i + 1 : KEEP));
        ck_assert_uint_eq(stats().kept, i + 1 < KEEP ? i + 1 : KEEP);
    }
    /* Page 0's went first: opened again, and it is page 0. */
    g = page_map(gfds[0], PROT_READ | PROT_WRITE);
    g[7] = 0x5a;
    ck_assert_int_eq(map(c2, 1, false, 1, &refs[0], &fd), 0);
    m = page_map(fd, PROT_READ);
    ck_assert_uint_eq(m[7], 0x5a);
    ck_assert_int_eq(hvfake_open_fds(), base + KEEP + 1); /* + fd */
    munmap(m, PAGE);
    munmap(g, PAGE);
    close(fd);
    ck_assert_int_eq(unmap(c2, 1, 1, &refs[0]), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(end1(c1, refs[i]), 0);
        close(gfds[i]);
    }
    ck_assert_int_eq(hvfake_open_fds(), base - N);
    gnttab_keep_at_most(0); /* none kept: every map opens afresh */
    ck_assert_int_eq(share(c1, 2, true, 1, refs, NULL), 0);
    hvfake_rsp_clear(rsp);
    base = hvfake_open_fds();
    ck_assert_int_eq(map(c2, 1, true, 1, refs, &fd), 0);
    close(fd);
    ck_assert_int_eq(hvfake_open_fds(), base);
    ck_assert_int_eq(unmap(c2, 1, 1, refs), 0);
}
END_TEST

/*
 * Kept descriptions give way when the daemon runs out of fds, so that a map
 * which fitted without them still does: with none free, the kept ones are
 * closed to open the page; with one free, the description just opened goes
 * out itself instead of a dup.
 */
START_TEST(test_kept_descriptions_give_way)
{
    enum { N = 30 };
    uint32_t refs[N];
    int fd, base;
    uint8_t *m;

    ck_assert_int_eq(share(c1, 2, true, N, refs, NULL), 0);
    hvfake_rsp_clear(rsp);
    base = hvfake_open_fds();
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(map(c2, 1, true, 1, &refs[i], &fd), 0);
        close(fd);
    }
    ck_assert_int_eq(hvfake_open_fds(), base + N);
    hvfake_fd_limit(0);
    ck_assert_int_eq(map(c2, 1, false, 1, &refs[0], &fd), 0);
    close(fd);
    ck_assert_int_eq(hvfake_open_fds(), base + 1); /* page 0's read-only one, the rest closed */
    ck_assert_uint_eq(stats().kept, 1);
    hvfake_fd_limit(1);
    ck_assert_int_eq(map(c2, 1, false, 1, &refs[1], &fd), 0);
    hvfake_fd_unlimit();
    ck_assert_int_eq(hvfake_open_fds(), base + 1); /* fd itself: nothing kept */
    ck_assert_uint_eq(stats().kept, 0);
    ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    m = page_map(fd, PROT_READ);
    ck_assert_uint_eq(m[0], 0);
    munmap(m, PAGE);
    close(fd);
    ck_assert_int_eq(unmap(c2, 1, N, refs), 0);
    ck_assert_int_eq(unmap(c2, 1, 2, refs), 0);
    ck_assert_uint_eq(stats().mappings, 0);
}
END_TEST

/* Out of fds half-way through a batch: the batch fails whole and leaks nothing. */
START_TEST(test_batches_roll_back_when_out_of_fds)
{
    uint32_t refs[HVW_MAX_FDS];
    int fds;

    ck_assert_int_eq(share(c1, 2, true, 40, refs, NULL), 0);
    hvfake_rsp_clear(rsp);
    fds = hvfake_open_fds();
    hvfake_fd_limit(20); /* a page costs the reply's fd (a store keeps the frame): 40 need 40 */
    ck_assert_int_eq(share(c1, 2, true, 40, refs, NULL), ENOMEM);
    hvfake_fd_limit(50);
    ck_assert_int_eq(map(c2, 1, true, 40, refs, NULL), 0); /* 40 reply fds fit */
    hvfake_rsp_clear(rsp);
    hvfake_fd_limit(20);
    ck_assert_int_eq(map(c2, 1, false, 40, refs, NULL), ENOMEM);
    hvfake_fd_unlimit();
    ck_assert_uint_eq(stats().frames, 40);
    ck_assert_uint_eq(stats().mappings, 40);
    ck_assert_int_eq(hvfake_open_fds(), fds);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_32768_grants_and_no_more)
{
    uint32_t refs[HVW_MAX_FDS], ref;

    ck_assert_uint_eq(HV_DEFAULT_GRANT_FRAMES * HV_GRANTS_PER_FRAME, 32768);
    for (unsigned int i = 0; i < 32768 / HVW_MAX_FDS; i++)
        ck_assert_int_eq(share(c1, 2, i & 1, HVW_MAX_FDS, refs, NULL), 0);
    ck_assert_uint_eq(stats().frames, 32768);
    ck_assert_int_eq(share(c1, 2, true, 1, &ref, NULL), ENOSPC);
    /* Another domain's table is its own. */
    ck_assert_int_eq(share(c2, 1, true, 1, &ref, NULL), 0);
    ck_assert_int_eq(end1(c1, 100), 0);
    ck_assert_int_eq(share(c1, 2, true, 1, &ref, NULL), 0);
    ck_assert_uint_eq(ref, 100);
    ck_assert_int_eq(share(c1, 2, true, 2, refs, NULL), ENOSPC); /* all or nothing */
    ck_assert_uint_eq(stats().frames, 32769);
}
END_TEST

START_TEST(test_table_sizes)
{
    struct hv_dom d = {.max_grant_frames = 4097};

    ck_assert_int_eq(gnttab_dom_init(&d), EINVAL);
    ck_assert_ptr_null(d.gnt);
    d.max_grant_frames = 1;
    ck_assert_int_eq(gnttab_dom_init(&d), 0);
    gnttab_dom_release(hv, &d);
    ck_assert_ptr_null(d.gnt);
}
END_TEST

START_TEST(test_full_small_table)
{
    struct hv_dom *small = hvfake_dom(hv, 4, 1, 0);
    struct hv_conn *cs = hvfake_conn(hv, small);
    uint32_t refs[HVW_MAX_FDS], ref;

    for (unsigned int i = 0; i < HV_GRANTS_PER_FRAME / HVW_MAX_FDS; i++)
        ck_assert_int_eq(share(cs, 2, true, HVW_MAX_FDS, refs, NULL), 0);
    ck_assert_int_eq(share(cs, 2, true, 1, &ref, NULL), ENOSPC);
    ck_assert_int_eq(end1(cs, 7), 0);
    ck_assert_int_eq(share(cs, 2, true, 2, refs, NULL), ENOSPC); /* all or nothing */
    ck_assert_int_eq(share(cs, 2, true, 1, &ref, NULL), 0);
    ck_assert_uint_eq(ref, 7);
    ck_assert_uint_eq(stats().frames, HV_GRANTS_PER_FRAME);
}
END_TEST

/* As far as the kernel allows: fs.nr_open, or the hard limit without CAP_SYS_RESOURCE. */
START_TEST(test_init_raises_the_fd_limit)
{
    struct rlimit rl, more;

    ck_assert_int_eq(gnttab_init(), 0);
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_uint_eq(rl.rlim_cur, rl.rlim_max);
    more.rlim_cur = more.rlim_max = rl.rlim_max + 1;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &more), -1);
}
END_TEST

/* ---- copy ---- */

struct copy_case {
    struct hvw_copy_seg seg;
    int16_t want;
};

static void copy_run(struct hv_conn *c, struct copy_case *cases, uint32_t n)
{
    uint8_t buf[8 + sizeof(struct hvw_copy_seg) * 16];
    int32_t st;

    memcpy(buf, &n, 4);
    memset(buf + 4, 0, 4);
    for (uint32_t i = 0; i < n; i++)
        memcpy(buf + 8 + sizeof(cases[i].seg) * i, &cases[i].seg, sizeof(cases[i].seg));
    ck_assert_int_eq(hvfake_call(hv, c, HVW_OP_GNT_COPY, buf, 8 + sizeof(cases[0].seg) * n, rsp),
                     0);
    ck_assert_uint_eq(rsp->len, 4 + 4 * n);
    for (uint32_t i = 0; i < n; i++) {
        memcpy(&st, rsp->p + 4 + 4 * i, 4);
        ck_assert_msg(st == cases[i].want, "segment %u: status %d, want %d", i, st, cases[i].want);
    }
}

/* clang-format off */
#define GREF(r, off, dom) {.ref = (r), .offset = (off), .domid = (dom)}
#define VIRT(p) {.virt = (uint64_t)(uintptr_t)(p)}
/* clang-format on */

START_TEST(test_copy)
{
    int gfd;
    uint32_t rw = share1(c1, 2, true, &gfd), ro = share1(c1, 2, false, NULL);
    uint32_t other = share1(c1, 3, true, NULL);
    uint8_t *g = page_map(gfd, PROT_READ | PROT_WRITE), in[64], out[64] = {0};
    void *hole = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct copy_case cases[] = {
        /* local -> grant, grant -> local, grant -> grant */
        {{.src = VIRT(in), .dst = GREF(rw, 100, 1), .len = 64, .flags = GNTCOPY_dest_gref},
         GNTST_okay},
        {{.src = GREF(rw, 100, 1), .dst = VIRT(out), .len = 64, .flags = GNTCOPY_source_gref},
         GNTST_okay},
        {{.src = GREF(ro, 0, 1),
          .dst = GREF(rw, 4000, 1),
          .len = 96,
          .flags = GNTCOPY_source_gref | GNTCOPY_dest_gref},
         GNTST_okay},
        /* refusals, one per reason */
        {{.src = VIRT(in), .dst = GREF(ro, 0, 1), .len = 1, .flags = GNTCOPY_dest_gref},
         GNTST_permission_denied},
        {{.src = GREF(other, 0, 1), .dst = VIRT(out), .len = 1, .flags = GNTCOPY_source_gref},
         GNTST_permission_denied},
        {{.src = GREF(rw, 4000, 1), .dst = VIRT(out), .len = 97, .flags = GNTCOPY_source_gref},
         GNTST_bad_copy_arg},
        {{.src = GREF(rw, 0, 9), .dst = VIRT(out), .len = 1, .flags = GNTCOPY_source_gref},
         GNTST_bad_domain},
        {{.src = GREF(31000, 0, 1), .dst = VIRT(out), .len = 1, .flags = GNTCOPY_source_gref},
         GNTST_bad_gntref},
        {{.src = GREF(0xffffffffu, 0, 1), .dst = VIRT(out), .len = 1, .flags = GNTCOPY_source_gref},
         GNTST_bad_gntref},
        {{.src = VIRT(in), .dst = VIRT(out), .len = 1, .flags = 0}, GNTST_bad_copy_arg},
        {{.src = VIRT(in), .dst = GREF(rw, 0, 1), .len = 1, .flags = GNTCOPY_dest_gref | 0x8},
         GNTST_bad_copy_arg},
        {{.src = VIRT(hole), .dst = GREF(rw, 0, 1), .len = 8, .flags = GNTCOPY_dest_gref},
         GNTST_bad_virt_addr},
        {{.src = GREF(rw, 0, 1), .dst = VIRT(NULL), .len = 8, .flags = GNTCOPY_source_gref},
         GNTST_bad_virt_addr},
    };

    for (int i = 0; i < 64; i++)
        in[i] = (uint8_t)(i + 1);
    g[0] = 0xaa;
    copy_run(c2, cases, sizeof(cases) / sizeof(cases[0]));
    ck_assert_mem_eq(g + 100, in, 64);
    ck_assert_mem_eq(out, in, 64);
    ck_assert_uint_eq(g[4000], 0); /* copied from the read-only page, which is zero */
    ck_assert_uint_eq(g[0], 0xaa); /* the refused segments wrote nothing */
    munmap(hole, PAGE);
    munmap(g, PAGE);
    close(gfd);
}
END_TEST

START_TEST(test_copy_without_a_sender)
{
    uint32_t rw = share1(c1, 2, true, NULL), n = 1;
    uint8_t buf[8 + sizeof(struct hvw_copy_seg)], local = 0;
    struct hvw_copy_seg seg = {
        .src = GREF(rw, 0, 1), .dst = VIRT(&local), .len = 1, .flags = GNTCOPY_source_gref};
    int32_t st;

    memcpy(buf, &n, 4);
    memset(buf + 4, 0, 4);
    memcpy(buf + 8, &seg, sizeof(seg));
    ck_assert_int_eq(hvfake_call_pid(hv, c2, 0, HVW_OP_GNT_COPY, buf, sizeof(buf), rsp), 0);
    memcpy(&st, rsp->p + 4, 4);
    ck_assert_int_eq(st, GNTST_general_error);
}
END_TEST

/* ---- hostile payloads ---- */

struct hostile {
    uint16_t op;
    const char *what;
    uint8_t p[24];
    size_t len;
    int want;
};

#define U32(v) (uint8_t)(v), (uint8_t)((v) >> 8), (uint8_t)((v) >> 16), (uint8_t)((v) >> 24)

static const struct hostile hostile[] = {
    {HVW_OP_GNT_SHARE, "empty", {0}, 0, EINVAL},
    {HVW_OP_GNT_SHARE, "short", {2, 0, 1, 0, 1}, 5, EINVAL},
    {HVW_OP_GNT_SHARE, "trailing", {2, 0, 1, 0, U32(1), 0}, 9, EINVAL},
    {HVW_OP_GNT_SHARE, "count 0", {2, 0, 1, 0, U32(0)}, 8, EINVAL},
    {HVW_OP_GNT_SHARE, "count 65", {2, 0, 1, 0, U32(65)}, 8, EINVAL},
    {HVW_OP_GNT_SHARE, "huge count", {2, 0, 1, 0, U32(0xffffffffu)}, 8, EINVAL},
    {HVW_OP_GNT_SHARE, "writable 2", {2, 0, 2, 0, U32(1)}, 8, EINVAL},
    {HVW_OP_GNT_MAP, "empty", {0}, 0, EINVAL},
    {HVW_OP_GNT_MAP, "count past payload", {1, 0, 1, 0, U32(2), U32(0)}, 12, EINVAL},
    {HVW_OP_GNT_MAP, "count 0", {1, 0, 1, 0, U32(0)}, 8, EINVAL},
    {HVW_OP_GNT_MAP, "huge count", {1, 0, 1, 0, U32(0x40000001u), U32(0)}, 12, EINVAL},
    {HVW_OP_GNT_MAP, "100000 in 16 bytes", {1, 0, 0, 0, U32(100000), U32(0), U32(0)}, 16, EINVAL},
    {HVW_OP_GNT_MAP, "writable 7", {1, 0, 7, 0, U32(1), U32(0)}, 12, EINVAL},
    {HVW_OP_GNT_MAP, "ref out of range", {1, 0, 0, 0, U32(1), U32(0xfffffff0u)}, 12, ENOENT},
    {HVW_OP_GNT_MAP, "ref 32768", {1, 0, 0, 0, U32(1), U32(32768)}, 12, ENOENT},
    {HVW_OP_GNT_MAP, "reserved domid", {0xf0, 0x7f, 0, 0, U32(1), U32(0)}, 12, ESRCH},
    {HVW_OP_GNT_UNMAP, "short", {1, 0, 0}, 3, EINVAL},
    {HVW_OP_GNT_UNMAP, "count past payload", {1, 0, 0, 0, U32(5), U32(0)}, 12, EINVAL},
    {HVW_OP_GNT_UNMAP, "not mapped", {1, 0, 0, 0, U32(1), U32(0)}, 12, ENOENT},
    {HVW_OP_GNT_END, "empty", {0}, 0, EINVAL},
    {HVW_OP_GNT_END, "count 0", {U32(0)}, 4, EINVAL},
    {HVW_OP_GNT_END, "count past payload", {U32(3), U32(0), U32(1)}, 12, EINVAL},
    {HVW_OP_GNT_END, "count 257", {U32(257), U32(0)}, 8, EINVAL},
    {HVW_OP_GNT_END, "huge count", {U32(0x40000001u), U32(0)}, 8, EINVAL},
    {HVW_OP_GNT_COPY, "empty", {0}, 0, EINVAL},
    {HVW_OP_GNT_COPY, "count 0", {U32(0), U32(0)}, 8, EINVAL},
    {HVW_OP_GNT_COPY, "count past payload", {U32(1), U32(0), U32(0)}, 12, EINVAL},
    {HVW_OP_GNT_COPY, "huge count", {U32(0x06666667u), U32(0)}, 8, EINVAL},
};

START_TEST(test_hostile_payloads)
{
    int fds = hvfake_open_fds();

    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        const struct hostile *h = &hostile[i];
        int rc = hvfake_call(hv, c2, h->op, h->p, h->len, rsp);
        ck_assert_msg(rc == h->want, "op %u, %s: %s, want %s", h->op, h->what, strerror(rc),
                      strerror(h->want));
    }
    ck_assert_uint_eq(stats().frames, 0);
    ck_assert_uint_eq(stats().mappings, 0);
    ck_assert_int_eq(hvfake_open_fds(), fds);
}
END_TEST

/* A domain that is going away has no table: its requests find none. */
START_TEST(test_released_domain_is_refused)
{
    uint32_t ref = share1(c2, 1, true, NULL), n = 1;

    gnttab_dom_release(hv, d1);
    ck_assert_int_eq(share(c1, 2, true, 1, &ref, NULL), ESRCH);
    ck_assert_int_eq(map(c1, 2, true, 1, &ref, NULL), ESRCH);
    ck_assert_int_eq(share(c2, 1, true, 1, &ref, NULL), ESRCH);
    {
        uint32_t req[2] = {n, ref}, copy[2 + 10] = {n};
        ck_assert_int_eq(hvfake_call(hv, c1, HVW_OP_GNT_END, req, sizeof(req), rsp), ESRCH);
        ck_assert_int_eq(hvfake_call(hv, c1, HVW_OP_GNT_COPY, copy, sizeof(copy), rsp), ESRCH);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gnttab");
    TCase *tc = tcase_create("semantics"), *big;
    SRunner *sr;
    int failed;

    if (geteuid() != 0) {
        fprintf(stderr, "check_gnttab: skipped: needs root, as bulkhead-hv does (it reopens "
                        "grant pages through /proc/self/fd)\n");
        return 77;
    }
    /* What the daemon does at start: 32768 frames need as many fds. */
    if (gnttab_init() != 0) {
        fprintf(stderr, "check_gnttab: cannot raise RLIMIT_NOFILE\n");
        return 1;
    }
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_share_map_same_page);
    tcase_add_test(tc, test_read_only_stays_read_only);
    tcase_add_test(tc, test_frames_are_sealed);
    tcase_add_test(tc, test_map_only_what_is_granted_to_you);
    tcase_add_test(tc, test_map_is_all_or_nothing);
    tcase_add_test(tc, test_share_refusals);
    tcase_add_test(tc, test_cannot_end_a_mapped_grant);
    tcase_add_test(tc, test_end_statuses);
    tcase_add_test(tc, test_unmap_counts_and_all_or_nothing);
    tcase_add_test(tc, test_mappings_die_with_their_channel);
    tcase_add_test(tc, test_grants_die_with_their_channel);
    tcase_add_test(tc, test_granter_goes_away);
    tcase_add_test(tc, test_frames_are_never_reused);
    tcase_add_test(tc, test_copy);
    tcase_add_test(tc, test_copy_without_a_sender);
    tcase_add_test(tc, test_hostile_payloads);
    tcase_add_test(tc, test_released_domain_is_refused);
    tcase_add_test(tc, test_table_sizes);
    tcase_add_test(tc, test_full_small_table);
    tcase_add_test(tc, test_many_mappings_on_one_channel);
    tcase_add_test(tc, test_batches_roll_back_when_out_of_fds);
    tcase_add_test(tc, test_grantee_descriptions_are_kept);
    tcase_add_test(tc, test_kept_descriptions_are_bounded);
    tcase_add_test(tc, test_kept_descriptions_give_way);
    tcase_add_test(tc, test_init_raises_the_fd_limit);
    suite_add_tcase(s, tc);
    /* Frames live in store processes (framestore.c): no fd limit of ours bounds them. */
    big = tcase_create("limits");
    tcase_add_checked_fixture(big, setup, teardown);
    tcase_set_timeout(big, 120);
    tcase_add_test(big, test_32768_grants_and_no_more);
    suite_add_tcase(s, big);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
