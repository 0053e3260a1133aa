/*
 * check_durability.c - a write acknowledged after a flush survives SIGKILL
 * of the driver domain; an unflushed one may be lost, never torn, and never
 * takes a flushed one with it.
 *
 * The page cache would hide a broken flush (a write() survives the death of
 * the process that made it), so the disk here is an adapter with a cache of
 * its own that only a flush empties: nbdkit's file plugin behind its cache
 * filter in writeback mode (writes stay in a temporary, unlinked cache file
 * until the client flushes).  nbdkit runs inside the driver domain, so it
 * dies with it, and what it had not written back dies too.  blkback reaches
 * it over NBD through dom0's broker, as it reaches a qcow2's qemu-nbd.
 *
 * The test plays an honest frontend in the guest (tests/hostile.h): it
 * writes 16 blocks, flushes, then writes 16 more and overwrites 8 of the
 * first, all acknowledged, unflushed; then SIGKILLs the driver domain (its
 * first process: every process of the domain dies with it) and reads the
 * image in dom0.  Each block must be wholly one of the versions the
 * ordering allows: the flushed ones at least their flushed data.
 *
 * The check is checked: run again against a blkback that acknowledges a
 * flush without sending it (BULKHEAD_TEST_BREAK_FLUSH, read by nbd.c for
 * this test alone), the same verdict must find the flushed blocks lost.
 * And the adapter is checked: in the honest run, the unflushed blocks must
 * really have been lost (a cache that wrote through would prove nothing).
 * Needs root (the simulation) and nbdkit.
 */
#define _GNU_SOURCE
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/io/blkif.h>

#include "hostile.h"
#include "hvwire.h"

#define DISK_BYTES (8u << 20)
#define DEVID      51712u
#define BLK        4096u
#define FLUSHED    16u /* blocks 0..15: written, then flushed */
#define OVERWRITE  8u  /* blocks 0..7 written again after the flush */
#define UNFLUSHED  16u /* blocks 16..31: written after the flush */

static struct hst_sim sim;
static struct hst_domain drv, guest;
static struct hst_id gid;
static pid_t drv_helper = -1, nbd_helper = -1;
static char image[300], sock[108];

/* The tail of a program's log (hst_sim_spawn_logged's), for failure messages. */
static const char *tail(const char *name)
{
    return hst_sim_log_tail(&sim, name);
}

/* Runs argv in domain d with its output in <state>/<logname>.log. */
static pid_t spawn(const struct hst_domain *d, const char *logname, char *const argv[])
{
    pid_t pid = hst_sim_spawn_logged(&sim, d, logname, argv);

    ck_assert_int_gt(pid, 0);
    return pid;
}

/* How many live processes run as uid (zombies are gone for our purposes). */
static int procs_of(uid_t uid)
{
    DIR *dir = opendir("/proc");
    struct dirent *e;
    int count = 0;

    ck_assert_ptr_nonnull(dir);
    while ((e = readdir(dir)) != NULL) {
        char path[300], buf[512], *p;
        struct stat st;
        int fd;
        ssize_t n;

        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s", e->d_name);
        if (stat(path, &st) != 0 || st.st_uid != uid)
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            continue;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        if ((p = strrchr(buf, ')')) != NULL && p[1] == ' ' && p[2] != 'Z')
            count++;
    }
    closedir(dir);
    return count;
}

/* A bound against a hang only: the test case's timeout is the real one. */
static bool wait_until(bool (*cond)(void), int seconds)
{
    for (int i = 0; i < seconds * 100; i++) {
        if (cond())
            return true;
        usleep(10000);
    }
    return cond();
}

static bool sock_there(void)
{
    struct stat st;

    return stat(sock, &st) == 0 && S_ISSOCK(st.st_mode);
}

static bool drv_gone(void)
{
    return procs_of(drv.uid) == 0;
}

/*
 * The driver domain's disk.  The image lives in dom0, served as it is by a
 * plain nbdkit there (the file plugin: what it is told reaches the page
 * cache, which a crash of the driver domain cannot take); its socket is in
 * the build tree, which every domain sees read-only.  Inside the driver
 * domain, a second nbdkit puts the cache filter in writeback mode in front
 * of it (nbd plugin): the volatile cache, which dies with the domain.  The
 * broker hands blkback a connection to that one (dom0 reaches the domain's
 * socket through /proc/PID/root), then libxl's layout names it.
 */
static pid_t dom0_nbd = -1;
static char backing[108];

static void add_nbd_disk(void)
{
    struct bhxb_dev d = {"vbd", NULL, guest.domid, drv.domid, DEVID};
    struct hvw_brk_disk_reg r = {.backend = (uint16_t)drv.domid,
                                 .frontend = (uint16_t)guest.domid,
                                 .devid = DEVID,
                                 .flags = HVW_BRK_NBD};
    char fileopt[400], sockopt[200], logp[300];
    char tmpdir[] = "TMPDIR=/tmp", env[] = "/usr/bin/env", nbdkit[] = "nbdkit", fg[] = "-f",
         u[] = "-U", filt[] = "--filter=cache", plug[] = "nbd", wb[] = "cache=writeback",
         inner[] = "/tmp/disk.sock";
    char *argv[] = {env, tmpdir, nbdkit, fg, u, inner, filt, plug, sockopt, wb, NULL};
    struct bhxb_layout *l;
    int fd, n;

    snprintf(image, sizeof(image), "%s/disk.img", sim.hv.state);
    ck_assert_int_ge(fd = open(image, O_RDWR | O_CREAT | O_CLOEXEC, 0600), 0);
    ck_assert_int_eq(ftruncate(fd, DISK_BYTES), 0);
    close(fd);
    n = snprintf(backing, sizeof(backing), "%s/tests/long/durability-%d.sock", test_builddir(),
                 (int)getpid());
    ck_assert_msg(n > 0 && (size_t)n < sizeof(backing), "the build folder's path is too long");
    unlink(backing);
    snprintf(fileopt, sizeof(fileopt), "file=%s", image);
    hst_sim_log_path(&sim, "nbdkit-dom0", logp, sizeof(logp));
    if ((dom0_nbd = fork()) == 0) {
        int lfd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);

        dup2(lfd, 1);
        dup2(lfd, 2);
        execlp("nbdkit", "nbdkit", "-f", "-U", backing, "file", fileopt, (char *)NULL);
        _exit(127);
    }
    ck_assert_int_gt(dom0_nbd, 0);
    snprintf(sock, sizeof(sock), "%s", backing);
    ck_assert_msg(wait_until(sock_there, 30), "nbdkit never listened on %s; its log:\n%s", backing,
                  tail("nbdkit-dom0"));
    /* The driver domain's root is another uid outside. */
    ck_assert_int_eq(chmod(backing, 0666), 0);

    snprintf(sockopt, sizeof(sockopt), "socket=%s", backing);
    nbd_helper = spawn(&drv, "nbdkit", argv);
    snprintf(sock, sizeof(sock), "/proc/%d/root%s", (int)drv.pid, inner);
    ck_assert_msg(wait_until(sock_there, 30),
                  "nbdkit never listened in the driver domain; its log:\n%s", tail("nbdkit"));
    snprintf(r.path, sizeof(r.path), "%s", sock);
    ck_assert_int_eq(test_hv_call(&sim.hv, HVW_OP_BRK_REG_DISK, &r, sizeof(r), NULL, 0), 0);
    ck_assert_ptr_nonnull(l = bhxb_layout_new(&d));
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "params", "%s", image), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "mode", "w"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "bulkhead-nbd", "%s", inner), 0);
    ck_assert_int_eq(bhxb_layout_write(sim.xs, l), 0);
    bhxb_layout_free(l);
}

/* ---- the honest frontend ---- */

static uint32_t produced; /* requests put on the ring */

/* Puts one request on the ring and waits for its response; returns its status. */
static int16_t request(struct hst_end *f, const blkif_request_t *req)
{
    blkif_response_t rsp;

    ck_assert_int_eq(hst_produce(f, 0, req, sizeof(*req), 1, true), 0);
    produced++;
    for (int i = 0; i < 3000 && hst_idx_get(&f->ring[0], HST_RSP_PROD) != produced; i++)
        usleep(10000); /* a bound against a hang; no speed is asserted */
    ck_assert_msg(hst_idx_get(&f->ring[0], HST_RSP_PROD) == produced,
                  "no response to request %u after 30 s; drvdom log:\n%s", produced,
                  tail("drvdom"));
    ck_assert_int_eq(hst_slot_read(&f->ring[0], produced - 1, &rsp, sizeof(rsp)), 0);
    ck_assert_uint_eq(rsp.id, req->id);
    return rsp.status;
}

/* Fills a block with its version's mark: the version letter and the block number. */
static void fill(uint8_t *p, char version, unsigned int block)
{
    char mark[17];

    for (unsigned int i = 0; i < BLK; i += 16) {
        snprintf(mark, sizeof(mark), "%c%04u.%09u.", version, block % 10000, i);
        memcpy(p + i, mark, 16);
    }
}

/* Writes one block of version `version` from the granted page and waits for OKAY. */
static void write_block(struct hst_end *f, uint8_t *page, uint32_t ref, char version,
                        unsigned int block)
{
    blkif_request_t req = {.operation = BLKIF_OP_WRITE,
                           .nr_segments = 1,
                           .id = produced + 1,
                           .sector_number = (blkif_sector_t)block * (BLK / 512)};

    req.seg[0] = (struct blkif_request_segment){.gref = ref, .first_sect = 0, .last_sect = 7};
    fill(page, version, block);
    ck_assert_int_eq(request(f, &req), BLKIF_RSP_OKAY);
}

/* What one block of the image holds: a version letter, 0 (zeroes), or '?' (torn, foreign). */
static char version_of(const uint8_t *blk, unsigned int block)
{
    static const uint8_t zero[BLK];
    uint8_t want[BLK];

    if (memcmp(blk, zero, BLK) == 0)
        return 0;
    for (const char *v = "ABC"; *v; v++) {
        fill(want, *v, block);
        if (memcmp(blk, want, BLK) == 0)
            return *v;
    }
    return '?';
}

struct verdict {
    unsigned int flushed_lost; /* blocks 8..15 not A, or 0..7 neither A nor C */
    unsigned int torn;         /* blocks holding no version wholly */
    unsigned int unflushed_lost;
    char first[200];
};

/*
 * Runs the whole scenario against a driver domain (with a broken flush or
 * not) and judges the image after the kill.
 */
static void scenario(bool broken_flush, struct verdict *v)
{
    struct bhxb_dev d = {"vbd", NULL, guest.domid, drv.domid, DEVID};
    char drvbin[512], why[1024], envflag[] = "BULKHEAD_TEST_BREAK_FLUSH=1",
                                 envbin[] = "/usr/bin/env", path[400];
    char *plain_argv[] = {drvbin, NULL}, *broken_argv[] = {envbin, envflag, drvbin, NULL};
    blkif_request_t flush = {.operation = BLKIF_OP_FLUSH_DISKCACHE, .nr_segments = 0};
    struct hst_end f;
    uint8_t *page, blk[BLK];
    uint32_t ref;
    unsigned int len;
    char *feat;
    int fd;

    snprintf(drvbin, sizeof(drvbin), "%s/driverdom/bulkhead-drvdom", test_builddir());
    add_nbd_disk();
    drv_helper = spawn(&drv, "drvdom", broken_flush ? broken_argv : plain_argv);

    ck_assert_msg(hst_front_init(&f, &gid, HST_BLKIF, &d, 0) == 0, "%s", f.why);
    ck_assert_msg(hst_wait(sim.xs, f.peer_dir, HST_STATE(XenbusStateInitWait), true, HST_TIMEOUT_MS,
                           why, sizeof(why)) == XenbusStateInitWait,
                  "%s; drvdom log:\n%s", why, tail("drvdom"));
    ck_assert_int_eq(hst_front_publish(&f), 0);
    ck_assert_int_eq(hst_state(&f, XenbusStateInitialised), 0);
    ck_assert_msg(hst_wait(sim.xs, f.peer_dir, HST_STATE(XenbusStateConnected), true,
                           HST_TIMEOUT_MS, why, sizeof(why)) == XenbusStateConnected,
                  "%s; drvdom log:\n%s", why, tail("drvdom"));
    ck_assert_int_eq(hst_state(&f, XenbusStateConnected), 0);
    /* The server flushes, so blkback must offer flush: the test needs it. */
    snprintf(path, sizeof(path), "%s/feature-flush-cache", f.peer_dir);
    feat = xs_read(sim.xs, XBT_NULL, path, &len);
    ck_assert_msg(feat != NULL && strcmp(feat, "1") == 0, "feature-flush-cache is %s",
                  feat ? feat : "(none)");
    free(feat);

    ck_assert_ptr_nonnull(page = hst_grant(&f, 1, false, &ref));
    produced = 0;
    for (unsigned int b = 0; b < FLUSHED; b++)
        write_block(&f, page, ref, 'A', b);
    flush.id = produced + 1;
    ck_assert_int_eq(request(&f, &flush), BLKIF_RSP_OKAY);
    /* Acknowledged, never flushed: may be lost, must not be torn. */
    for (unsigned int b = FLUSHED; b < FLUSHED + UNFLUSHED; b++)
        write_block(&f, page, ref, 'B', b);
    for (unsigned int b = 0; b < OVERWRITE; b++)
        write_block(&f, page, ref, 'C', b);

    /* The crash: the domain's first process, and with it every one of its processes. */
    ck_assert_int_eq(kill(drv.pid, SIGKILL), 0);
    ck_assert_msg(wait_until(drv_gone, 30), "the driver domain still has %d processes",
                  procs_of(drv.uid));

    memset(v, 0, sizeof(*v));
    ck_assert_int_ge(fd = open(image, O_RDONLY | O_CLOEXEC), 0);
    for (unsigned int b = 0; b < FLUSHED + UNFLUSHED; b++) {
        char got, *say = NULL;

        ck_assert_int_eq(pread(fd, blk, BLK, (off_t)b * BLK), BLK);
        got = version_of(blk, b);
        if (got == '?') {
            v->torn++;
            say = "torn";
        } else if (b < OVERWRITE && got != 'A' && got != 'C') {
            v->flushed_lost++;
            say = "flushed, then lost";
        } else if (b >= OVERWRITE && b < FLUSHED && got != 'A') {
            v->flushed_lost++;
            say = "flushed, then lost";
        } else if (b >= FLUSHED && got != 'B') {
            if (got != 0) {
                v->torn++;
                say = "holds another block's version";
            } else {
                v->unflushed_lost++;
            }
        }
        if (say != NULL && v->first[0] == '\0')
            snprintf(v->first, sizeof(v->first), "block %u %s (holds %s)", b, say,
                     got == 0     ? "zeroes"
                     : got == '?' ? "no version wholly"
                                  : (char[]){got, 0});
    }
    close(fd);
    hst_end_close(&f);
}

static void setup(void)
{
    char err[512];

    ck_assert_msg(hst_sim_start(&sim, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(hst_sim_domain(&sim, "drv", HST_DOM_DRIVER, &drv), 0);
    ck_assert_int_eq(hst_sim_domain(&sim, "guest", 0, &guest), 0);
    ck_assert_int_eq(hst_id_open(&gid, guest.uid), 0);
    drv_helper = nbd_helper = -1;
}

static void teardown(void)
{
    hst_id_close(&gid);
    hst_sim_stop(&sim);
    if (dom0_nbd > 0) {
        kill(dom0_nbd, SIGTERM);
        waitpid(dom0_nbd, NULL, 0);
        unlink(backing);
    }
    dom0_nbd = -1;
    if (drv_helper > 0)
        waitpid(drv_helper, NULL, 0);
    if (nbd_helper > 0)
        waitpid(nbd_helper, NULL, 0);
    drv_helper = nbd_helper = -1;
}

START_TEST(test_flushed_writes_survive_a_killed_driver_domain)
{
    struct verdict v;

    scenario(false, &v);
    ck_assert_msg(v.flushed_lost == 0 && v.torn == 0, "%s; nbdkit log:\n%s", v.first,
                  tail("nbdkit"));
    /*
     * The adapter kept the unflushed writes in its cache and lost them with
     * it: had it written them through, a broken flush would go unseen.
     */
    ck_assert_msg(v.unflushed_lost > 0, "no unflushed write was lost: the cache wrote through");
}
END_TEST

START_TEST(test_a_broken_flush_is_caught)
{
    struct verdict v;

    scenario(true, &v);
    ck_assert_msg(v.flushed_lost > 0,
                  "blkback acknowledged flushes it never sent, and the test did not notice");
    ck_assert_uint_eq(v.torn, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("durability");
    TCase *tc = tcase_create("durability");
    SRunner *sr;
    int failed;

    if (geteuid() != 0) {
        printf("SKIP: needs root (namespaces): run make check-long as root\n");
        return 77;
    }
    if (system("command -v nbdkit >/dev/null 2>&1") != 0) {
        printf("SKIP: needs nbdkit (apt-get install nbdkit)\n");
        return 77;
    }
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_flushed_writes_survive_a_killed_driver_domain);
    tcase_add_test(tc, test_a_broken_flush_is_caught);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
