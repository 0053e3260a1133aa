/*
 * check_blklies.c - lying frontends against the real blkback, end to end:
 * bulkhead-drvdom runs in a driver domain (as `bulkhead create` starts
 * it), one guest runs bulkhead-guest with fio verifying its vbd through
 * blkfront in nbdkit, and a second, hostile guest - this process wearing
 * that domain's identity (tests/hostile.h) - sets up vbds of its own on
 * the same driver domain honestly and then lies on each: a garbage
 * operation, a sector past the end, a grant reference that does not
 * exist, a request producer a ring and one ahead, an indirect request
 * with more segments than any indirect page count allows, and one whose
 * indirect page holds a segment past its page.  Each lie must
 * cost the liar that one device (an error node naming the lie, Closing)
 * and nothing else: bulkhead-drvdom and the honest guest's worker are the
 * same processes afterwards, its vbd stays Connected without an error,
 * and fio's crc32c verify passes in every run, during the lies and after.
 * Needs root (the simulation) and fio.
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
#define GOOD_DEVID 51712u /* xvda */

static struct hst_sim sim;
static struct hst_domain drv, good, evil;
static struct hst_id eid;
static pid_t drv_helper = -1, guest_helper = -1;

/* ---- the toolstack's part ---- */

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

/*
 * What `bulkhead create` does for a disk of a driver domain: an image
 * beneath the domain's storage, registered with dom0's broker, then
 * libxl's layout with the image as params.
 */
static void add_disk(const struct hst_domain *fe, uint32_t devid)
{
    struct bhxb_dev d = {"vbd", NULL, fe->domid, drv.domid, devid};
    struct hvw_brk_storage_req sr = {.domid = (uint16_t)drv.domid, .count = 1};
    struct hvw_brk_disk_reg r = {
        .backend = (uint16_t)drv.domid, .frontend = (uint16_t)fe->domid, .devid = devid};
    struct bhxb_layout *l;
    char dir[128], image[200]; /* both fit the broker's fields */
    int fd;

    snprintf(dir, sizeof(dir), "%s/images", sim.hv.state);
    if (mkdir(dir, 0755) != 0)
        ck_assert_int_eq(errno, EEXIST);
    snprintf(image, sizeof(image), "%s/disk%u-%u.img", dir, fe->domid, devid);
    ck_assert_int_ge(fd = open(image, O_RDWR | O_CREAT | O_CLOEXEC, 0600), 0);
    ck_assert_int_eq(ftruncate(fd, DISK_BYTES), 0);
    close(fd);
    snprintf(sr.dirs[0], sizeof(sr.dirs[0]), "%s", dir);
    snprintf(r.path, sizeof(r.path), "%s", image);
    ck_assert_int_eq(test_hv_call(&sim.hv, HVW_OP_BRK_STORAGE, &sr, sizeof(sr), NULL, 0), 0);
    ck_assert_int_eq(test_hv_call(&sim.hv, HVW_OP_BRK_REG_DISK, &r, sizeof(r), NULL, 0), 0);
    ck_assert_ptr_nonnull(l = bhxb_layout_new(&d));
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "params", "%s", image), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "mode", "w"), 0);
    ck_assert_int_eq(bhxb_layout_write(sim.xs, l), 0);
    bhxb_layout_free(l);
}

static char *rd(const char *dir, const char *key)
{
    static char buf[4][512];
    static int which;
    char *b = buf[which++ % 4], path[400];
    unsigned int len;
    char *v;

    snprintf(path, sizeof(path), "%s/%s", dir, key);
    v = xs_read(sim.xs, XBT_NULL, path, &len);
    snprintf(b, 512, "%s", v ? v : "(none)");
    free(v);
    return b;
}

/* The host pid of the live process named comm running as uid; 0 if none. */
static pid_t find_proc(uid_t uid, const char *comm)
{
    DIR *dir = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;

    ck_assert_ptr_nonnull(dir);
    while ((e = readdir(dir)) != NULL && found == 0) {
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
        /* "pid (comm) S ...": a zombie (Z) is gone for our purposes */
        if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ' || p[2] == 'Z')
            continue;
        *p = '\0';
        if ((p = strchr(buf, '(')) != NULL && strcmp(p + 1, comm) == 0)
            found = (pid_t)atoi(e->d_name);
    }
    closedir(dir);
    return found;
}

/* Whether a helper (its program) still runs. */
static bool running(pid_t helper)
{
    return helper > 0 && waitpid(helper, NULL, WNOHANG) == 0;
}

/* ---- the honest guest: fio in a loop until told to stop ---- */

/*
 * The workload bulkhead-guest runs once the vbd is Connected: fio with
 * crc32c verify through the nbd engine, over and over, counting its runs
 * in data/e2e/runs; after data/e2e/stop appears, one more run.  Any fio
 * failure (an I/O error, a verify mismatch) ends it with status 1.
 */
static const char workload[] =
    "s=/run/bulkhead-guest/vbd-51712.sock; "
    "for i in $(seq 600); do [ -S $s ] && break; sleep 0.1; done; "
    "run() { fio --ioengine=nbd --uri=\"nbd+unix:///?socket=$s\" --name=v --rw=randrw --bs=4k "
    "--iodepth=16 --size=4M --verify=crc32c --verify_fatal=1 --do_verify=1 >/tmp/fio.out 2>&1 "
    "|| { cat /tmp/fio.out; echo FIO-FAILED; exit 1; }; }; "
    "n=0; while :; do run; n=$((n+1)); xenstore-write data/e2e/runs $n || exit 2; "
    "[ \"$(xenstore-read data/e2e/stop 2>/dev/null)\" = 1 ] && break; done; "
    "run; echo FIO-RUNS $((n+1)) ALL-VERIFIED";

/* Waits (a watch) until the guest's data/e2e/runs is above `above`; returns it. */
static unsigned long wait_runs(unsigned long above)
{
    char dir[128];
    unsigned long n;

    snprintf(dir, sizeof(dir), "/local/domain/%u/data/e2e", good.domid);
    for (;;) {
        const char *v = rd(dir, "runs");

        n = strcmp(v, "(none)") == 0 ? 0 : strtoul(v, NULL, 10);
        if (n > above)
            return n;
        ck_assert_msg(running(guest_helper), "the guest's workload ended; guest log:\n%s",
                      tail("guest"));
        usleep(100000); /* the test case's timeout catches a hang */
    }
}

/* ---- the lies ---- */

enum lie {
    GARBAGE_OP,
    PAST_THE_END,
    BAD_GREF,
    REQ_PROD_OVERFLOW,
    INDIRECT_TOO_MANY,
    INDIRECT_BAD_SEGMENT,
    LIES
};

static const struct {
    const char *name;
    const char *error; /* what the backend's error node must say */
} lies[LIES] = {
    [GARBAGE_OP] = {"a garbage operation", "unknown operation 238"},
    [PAST_THE_END] = {"a sector past the end of the disk", "past the end of the disk"},
    [BAD_GREF] = {"a grant reference that does not exist", "cannot map its 1 grants"},
    [REQ_PROD_OVERFLOW] = {"req_prod a ring and one ahead", "request producer"},
    [INDIRECT_TOO_MANY] = {"an indirect request of 4096 segments", "with 4096 segments"},
    [INDIRECT_BAD_SEGMENT] = {"an indirect page whose last segment ends past its page",
                              "segment 199: sectors 0..9 are not within one page"},
};

/* Sets up vbd devid of the evil guest honestly to Connected, then tells one lie. */
static void tell(struct hst_end *f, uint32_t devid, enum lie lie)
{
    struct bhxb_dev d = {"vbd", NULL, evil.domid, drv.domid, devid};
    char why[1024];
    uint32_t ref;
    union {
        blkif_request_t rw;
        blkif_request_indirect_t ind;
    } r;

    add_disk(&evil, devid);
    ck_assert_msg(hst_front_init(f, &eid, HST_BLKIF, &d, 0) == 0, "%s", f->why);
    ck_assert_msg(hst_wait(sim.xs, f->peer_dir, HST_STATE(XenbusStateInitWait), true,
                           HST_TIMEOUT_MS, why, sizeof(why)) == XenbusStateInitWait,
                  "%s; drvdom log:\n%s", why, tail("drvdom"));
    ck_assert_int_eq(hst_front_publish(f), 0);
    ck_assert_int_eq(hst_state(f, XenbusStateInitialised), 0);
    ck_assert_msg(hst_wait(sim.xs, f->peer_dir, HST_STATE(XenbusStateConnected), true,
                           HST_TIMEOUT_MS, why, sizeof(why)) == XenbusStateConnected,
                  "%s; drvdom log:\n%s", why, tail("drvdom"));
    ck_assert_int_eq(hst_state(f, XenbusStateConnected), 0);
    ck_assert_ptr_nonnull(hst_grant(f, 1, true, &ref));
    memset(&r, 0, sizeof(r));
    r.rw.id = 1;
    r.rw.operation = BLKIF_OP_READ;
    r.rw.nr_segments = 1;
    r.rw.seg[0] = (struct blkif_request_segment){.gref = ref, .first_sect = 0, .last_sect = 7};
    switch (lie) {
    case GARBAGE_OP:
        r.rw.operation = 238;
        break;
    case PAST_THE_END:
        r.rw.sector_number = DISK_BYTES / 512 - 4; /* 8 sectors from 4 before the end */
        break;
    case BAD_GREF:
        r.rw.seg[0].gref = ref + 100000;
        break;
    case REQ_PROD_OVERFLOW:
        hst_idx_set(&f->ring[0], HST_REQ_PROD, f->ring[0].nr_ents + 1);
        ck_assert_int_eq(hst_notify(f), 0);
        return;
    case INDIRECT_TOO_MANY:
        memset(&r, 0, sizeof(r));
        r.ind.operation = BLKIF_OP_INDIRECT;
        r.ind.indirect_op = BLKIF_OP_READ;
        r.ind.nr_segments = 4096;
        r.ind.id = 1;
        for (unsigned int i = 0; i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++)
            r.ind.indirect_grefs[i] = ref;
        break;
    case INDIRECT_BAD_SEGMENT: {
        /* 200 segments, within what was offered, in one indirect page: the last one lies. */
        uint32_t pref;
        struct blkif_request_segment *segs = hst_grant(f, 1, false, &pref);

        ck_assert_ptr_nonnull(segs);
        for (unsigned int i = 0; i < 200; i++)
            segs[i] = (struct blkif_request_segment){.gref = ref, .first_sect = 0, .last_sect = 7};
        segs[199].last_sect = 9;
        memset(&r, 0, sizeof(r));
        r.ind.operation = BLKIF_OP_INDIRECT;
        r.ind.indirect_op = BLKIF_OP_READ;
        r.ind.nr_segments = 200;
        r.ind.id = 1;
        r.ind.indirect_grefs[0] = pref;
        break;
    }
    default:
        ck_abort();
    }
    ck_assert_int_eq(hst_produce(f, 0, &r, sizeof(r), 1, true), 0);
}

/* The backend of the liar's device: an error node naming the lie, then Closing. */
static void check_lost(const struct hst_end *f, enum lie lie)
{
    char why[1024], err[512];
    int st;

    st = hst_wait(sim.xs, f->peer_dir, HST_STATE(XenbusStateClosing) | HST_STATE(XenbusStateClosed),
                  false, HST_TIMEOUT_MS, why, sizeof(why));
    ck_assert_msg(st == XenbusStateClosing || st == XenbusStateClosed, "%s: %s; drvdom log:\n%s",
                  lies[lie].name, why, tail("drvdom"));
    ck_assert_msg(hst_read_error(sim.xs, f->peer_dir, err, sizeof(err)) == 0,
                  "%s: no error node in %s", lies[lie].name, f->peer_dir);
    ck_assert_msg(strstr(err, lies[lie].error) != NULL, "%s: the error node says '%s', not '%s'",
                  lies[lie].name, err, lies[lie].error);
}

/* ---- the test ---- */

static void setup(void)
{
    char err[512];

    ck_assert_msg(hst_sim_start(&sim, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(hst_sim_domain(&sim, "drv", HST_DOM_DRIVER, &drv), 0);
    ck_assert_int_eq(hst_sim_domain(&sim, "good", 0, &good), 0);
    ck_assert_int_eq(hst_sim_domain(&sim, "evil", 0, &evil), 0);
    ck_assert_int_eq(hst_id_open(&eid, evil.uid), 0);
    drv_helper = guest_helper = -1;
}

static void teardown(void)
{
    hst_id_close(&eid);
    hst_sim_stop(&sim); /* the domains die, and what ran in them */
    if (guest_helper > 0)
        waitpid(guest_helper, NULL, 0);
    if (drv_helper > 0)
        waitpid(drv_helper, NULL, 0);
    guest_helper = drv_helper = -1;
}

START_TEST(test_lying_frontends_lose_only_their_devices)
{
    struct bhxb_dev gd = {"vbd", NULL, 0, 0, GOOD_DEVID};
    struct bhxb_paths gp;
    struct hst_end f[LIES];
    char drvbin[512], guestbin[512], sh[] = "/bin/sh", c[] = "-c", dashes[] = "--";
    char *drv_argv[] = {drvbin, NULL};
    char *guest_argv[] = {guestbin, dashes, sh, c, (char *)workload, NULL};
    char comm[16], dir[128];
    pid_t drvdom, worker;
    unsigned long runs;
    int status;

    snprintf(drvbin, sizeof(drvbin), "%s/driverdom/bulkhead-drvdom", test_builddir());
    snprintf(guestbin, sizeof(guestbin), "%s/frontend/common/bulkhead-guest", test_builddir());
    gd.domid = good.domid;
    gd.backend_domid = drv.domid;
    ck_assert_int_eq(bhxb_dev_paths(&gd, &gp), 0);

    drv_helper = spawn(&drv, "drvdom", drv_argv);
    add_disk(&good, GOOD_DEVID);
    guest_helper = spawn(&good, "guest", guest_argv);
    /* fio has verified the disk once: the vbd works before anyone lies. */
    wait_runs(0);
    ck_assert_int_ne(drvdom = find_proc(drv.uid, "bulkhead-drvdom"), 0);
    snprintf(comm, sizeof(comm), "bhw-%u-%u", good.domid, GOOD_DEVID);
    ck_assert_msg((worker = find_proc(drv.uid, comm)) != 0, "no worker %s", comm);

    for (unsigned int i = 0; i < LIES; i++) {
        tell(&f[i], 51728 + 16 * i, (enum lie)i);
        check_lost(&f[i], (enum lie)i);
    }
    /* fio ran all along (every run verified, or the workload ended): one more run... */
    snprintf(dir, sizeof(dir), "/local/domain/%u/data/e2e", good.domid);
    runs = wait_runs(strtoul(rd(dir, "runs"), NULL, 10));
    ck_assert_uint_ge(runs, 2);
    /* ...then a last one after it is told to stop, and the workload ends. */
    snprintf(dir, sizeof(dir), "/local/domain/%u/data/e2e/stop", good.domid);
    ck_assert(xs_write(sim.xs, XBT_NULL, dir, "1", 1));
    ck_assert_int_eq(waitpid(guest_helper, &status, 0), guest_helper);
    guest_helper = -1;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the guest's fio failed (status %#x); guest log:\n%s", status, tail("guest"));
    ck_assert_msg(strstr(tail("guest"), "ALL-VERIFIED") != NULL, "guest log:\n%s", tail("guest"));
    /* bulkhead-guest stopped its nbdkit with SIGTERM; SIGKILL is its safety net only. */
    ck_assert_msg(strstr(tail("guest"), "did not stop") == NULL, "guest log:\n%s", tail("guest"));

    /* The driver domain lost nothing but the liar's devices. */
    ck_assert_msg(running(drv_helper), "bulkhead-drvdom ended; its log:\n%s", tail("drvdom"));
    ck_assert_int_eq(find_proc(drv.uid, "bulkhead-drvdom"), drvdom);
    ck_assert_int_eq(find_proc(drv.uid, comm), worker);
    ck_assert_str_eq(rd(gp.backend, "error"), "(none)");
    ck_assert_str_eq(rd(gp.frontend, "error"), "(none)");
    for (unsigned int i = 0; i < LIES; i++)
        hst_end_close(&f[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("blklies");
    TCase *tc = tcase_create("blklies");
    SRunner *sr;
    int failed;

    if (geteuid() != 0) {
        printf("SKIP: needs root (namespaces): run make check as root\n");
        return 77;
    }
    if (system("command -v fio >/dev/null 2>&1") != 0) {
        printf("SKIP: needs fio (apt-get install fio)\n");
        return 77;
    }
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_lying_frontends_lose_only_their_devices);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
