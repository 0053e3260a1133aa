/*
 * check_drvdom.c - bulkhead-drvdom and bulkhead-guest end to end: a
 * bulkhead-hv and a bulkhead-xenstored of their own per test, a driver
 * domain running bulkhead-drvdom and guests running bulkhead-guest (both
 * started inside their domains with dombuild_exec, as `bulkhead exec`
 * does), and dom0 writing each device's layout as the toolstack will
 * (bhxb_layout_new/set/write).  Every wait is for a XenStore value through
 * a watch, or for a process or a log line, with a generous timeout; a
 * failure says what was seen and shows the programs' logs.
 */
#define _GNU_SOURCE
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xen/event_channel.h>
#include <xen/io/blkif.h>
#include <xen/io/netif.h>
#include <xenstore.h>

#include "bhxenbus.h"
#include "dombuild.h"
#include "hostile.h"
#include "hvwire.h"
#include "testutil.h"

#define WAIT_S 60 /* generous: these wait for a handshake, never measure one */

static struct test_hv hv;
static char xssock[128];
static pid_t xsd_pid;
static struct xs_handle *xs;
static pid_t bg[8]; /* helpers running a program in a domain, or in dom0 */
static int nbg;

/* ---- the daemons ---- */

static void xsd_launch(void)
{
    char bin[1024], ready[16], msg[256] = "";
    int p[2];
    ssize_t r;

    snprintf(bin, sizeof(bin), "%s/hv/bulkhead-xenstored", test_builddir());
    ck_assert_int_eq(pipe(p), 0);
    if ((xsd_pid = fork()) == 0) {
        close(p[0]);
        snprintf(ready, sizeof(ready), "%d", p[1]);
        execl(bin, "bulkhead-xenstored", "--state-dir", hv.state, "--ready-fd", ready,
              (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    r = read(p[0], msg, sizeof(msg) - 1);
    close(p[0]);
    msg[r > 0 ? r : 0] = '\0';
    ck_assert_msg(strcmp(msg, "ok\n") == 0, "bulkhead-xenstored did not start: %s", msg);
}

static void setup(void)
{
    char err[512];

    if (geteuid() != 0) {
        printf("SKIP: needs root (namespaces)\n");
        exit(77);
    }
    ck_assert_msg(test_hv_start(&hv, err, sizeof(err)) == 0, "%s", err);
    /* A test wearing a domain's uid (tests/hostile.h) reaches both sockets through it. */
    ck_assert_int_eq(chmod(hv.state, 0711), 0);
    /* In the hypervisor's own state directory, so that domains get XenStore bound in. */
    snprintf(xssock, sizeof(xssock), "%s/xenstored.sock", hv.state);
    setenv("XENSTORED_PATH", xssock, 1);
    xsd_launch();
    ck_assert_ptr_nonnull(xs = xs_open(0));
    nbg = 0;
}

static void teardown(void)
{
    if (xs != NULL)
        xs_close(xs);
    xs = NULL;
    for (int i = 0; i < nbg; i++)
        kill(bg[i], SIGTERM);
    if (xsd_pid > 0) {
        kill(xsd_pid, SIGTERM);
        waitpid(xsd_pid, NULL, 0);
    }
    xsd_pid = 0;
    test_hv_stop(&hv); /* destroys the domains: what ran in them ends */
    for (int i = 0; i < nbg; i++)
        waitpid(bg[i], NULL, 0);
    nbg = 0;
}

/* ---- domains ---- */

static int hv_call(uint16_t op, const void *p, size_t len, void *out, size_t cap)
{
    int rc = test_hv_call(&hv, op, p, len, out, cap);

    ck_assert_msg(rc >= 0, "bulkhead-hv's channel broke: %s", strerror(errno));
    return rc;
}

/* What `bulkhead create` does: build it (idle), give it its home in XenStore, introduce it. */
static struct hvw_dominfo dom_up(const char *name)
{
    static uint8_t buf[1024];
    static const char env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    struct hvw_dom_create_req *r = (struct hvw_dom_create_req *)buf;
    struct hvw_dominfo d;
    char home[64], path[96], id[16];
    struct xs_permissions p[] = {{.id = 0, .perms = XS_PERM_NONE}};

    memset(buf, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->envc = 1;
    r->strings_len = sizeof(env);
    memcpy(r->strings, env, sizeof(env));
    ck_assert_int_eq(hv_call(HVW_OP_DOM_CREATE, r, sizeof(*r) + sizeof(env), &d, sizeof(d)), 0);
    snprintf(home, sizeof(home), "/local/domain/%u", d.domid);
    p[0].id = d.domid;
    ck_assert(xs_mkdir(xs, XBT_NULL, home));
    ck_assert(xs_set_permissions(xs, XBT_NULL, home, p, 1));
    snprintf(path, sizeof(path), "%s/domid", home);
    snprintf(id, sizeof(id), "%u", d.domid);
    ck_assert(xs_write(xs, XBT_NULL, path, id, strlen(id)));
    ck_assert(xs_introduce_domain(xs, d.domid, 1234, 5));
    return d;
}

static void log_path(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s.log", hv.state, name);
}

/* The program's stdout and stderr go to <state>/<logname>.log. */
static void bg_start(const struct hvw_dominfo *d, const char *logname, char *const *argv)
{
    char logp[256], sock[256], xsp[256];
    char *envp_dom[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                        "BULKHEAD_HV_SOCKET=/run/bulkhead/hv.sock",
                        "XENSTORED_PATH=/run/bulkhead/xenstored.sock", NULL};
    char *envp_host[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", sock, xsp, NULL};
    pid_t pid;

    log_path(logname, logp, sizeof(logp));
    snprintf(sock, sizeof(sock), "BULKHEAD_HV_SOCKET=%s/hv.sock", hv.state);
    snprintf(xsp, sizeof(xsp), "XENSTORED_PATH=%s", xssock);
    ck_assert_int_lt(nbg, 8);
    if ((pid = fork()) == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644), status;
        char err[256];
        /* Not Check's SIGTERM handler, which would take the test's process group down. */
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        setpgid(0, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (d == NULL) { /* dom0 */
            execve(argv[0], argv, envp_host);
            _exit(127);
        }
        if (dombuild_exec((pid_t)d->pid, argv, envp_dom, &status, err, sizeof(err)) != 0) {
            printf("dombuild_exec: %s\n", err);
            _exit(126);
        }
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    bg[nbg++] = pid;
}

static void drvdom_start_idle(const struct hvw_dominfo *d, const char *logname,
                              const char *idle_ms)
{
    char bin[512];
    char *argv[] = {bin, "--grant-idle-ms", (char *)idle_ms, NULL};

    if (idle_ms == NULL)
        argv[1] = NULL;
    snprintf(bin, sizeof(bin), "%s/driverdom/bulkhead-drvdom", test_builddir());
    bg_start(d, logname, argv);
}

static void drvdom_start(const struct hvw_dominfo *d, const char *logname)
{
    char bin[512];
    char *argv[] = {bin, NULL};

    snprintf(bin, sizeof(bin), "%s/driverdom/bulkhead-drvdom", test_builddir());
    bg_start(d, logname, argv);
}

/* bulkhead-guest, with a workload (a shell command) or without (NULL). */
static void guest_run(const struct hvw_dominfo *d, const char *logname, const char *workload)
{
    char bin[512];
    char *argv[] = {bin, "--", "/bin/sh", "-c", (char *)workload, NULL};

    snprintf(bin, sizeof(bin), "%s/frontend/common/bulkhead-guest", test_builddir());
    if (workload == NULL)
        argv[1] = NULL;
    bg_start(d, logname, argv);
}

static void guest_start(const struct hvw_dominfo *d, const char *logname)
{
    guest_run(d, logname, NULL);
}

/*
 * The logs of every program started, for failure messages: written to
 * stderr (the test's log) at once, so that the one-line reason Check
 * prints after them is what a truncated CI log still shows.
 */
static const char *logs(void)
{
    static char out[12000];
    size_t off = 0;
    DIR *dir = opendir(hv.state);
    struct dirent *e;

    out[0] = '\0';
    while (dir != NULL && (e = readdir(dir)) != NULL && off + 200 < sizeof(out)) {
        char path[512];
        FILE *f;
        size_t n;
        if (strstr(e->d_name, ".log") == NULL || strcmp(e->d_name, "hv.log") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", hv.state, e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        off += (size_t)snprintf(out + off, sizeof(out) - off, "\n--- %s ---\n", e->d_name);
        /* The tail: what happened last matters. */
        fseek(f, 0, SEEK_END);
        if (ftell(f) > 3500)
            fseek(f, -3500, SEEK_END);
        else
            fseek(f, 0, SEEK_SET);
        n = fread(out + off, 1, sizeof(out) - off - 1 < 3500 ? sizeof(out) - off - 1 : 3500, f);
        off += n;
        out[off] = '\0';
        fclose(f);
    }
    if (dir != NULL)
        closedir(dir);
    fprintf(stderr, "%s\n", out);
    return " (above, on stderr)";
}

/* ---- XenStore ---- */

static char *rd(const char *path)
{
    static char buf[4][512];
    static int which;
    char *b = buf[which++ % 4];
    unsigned int len;
    char *v = xs_read(xs, XBT_NULL, path, &len);

    snprintf(b, 512, "%s", v ? v : "(none)");
    free(v);
    return b;
}

/* Waits, through a watch, until path reads want ("(none)": until it is gone). */
static void wait_value(const char *path, const char *want)
{
    struct xs_handle *w = xs_open(0);
    time_t end = time(NULL) + WAIT_S;
    char last[512];

    ck_assert_ptr_nonnull(w);
    ck_assert(xs_watch(w, path, "w"));
    for (;;) {
        struct pollfd pf = {.fd = xs_fileno(w), .events = POLLIN};
        unsigned int n;
        char **ev;
        snprintf(last, sizeof(last), "%s", rd(path));
        if (strcmp(last, want) == 0)
            break;
        if (time(NULL) >= end)
            ck_abort_msg("%s is '%s' after %d s, not '%s'; logs:%s", path, last, WAIT_S, want,
                         logs());
        if (poll(&pf, 1, 1000) == 1 && (ev = xs_read_watch(w, &n)) != NULL)
            free(ev);
    }
    xs_close(w);
}

static struct bhxb_dev dev(const char *kind, const char *bkind, uint32_t fe, uint32_t be,
                           uint32_t devid)
{
    return (struct bhxb_dev){
        .kind = kind, .backend_kind = bkind, .domid = fe, .backend_domid = be, .devid = devid};
}

/*
 * What the toolstack gives a driver domain through dom0's broker before it
 * writes a device: the disk's image (beneath the domain's storage) or the
 * vif's TAP.  A dom0 backend opens its image itself.
 */
static unsigned int vif_queues = 1; /* the TAP's queues for the next vif registered */

static void register_device(struct bhxb_dev d, char *image, size_t size)
{
    char dir[600];
    int fd;

    snprintf(dir, sizeof(dir), "%s/images", hv.state);
    if (mkdir(dir, 0755) != 0)
        ck_assert_int_eq(errno, EEXIST);
    snprintf(image, size, "%s/disk%u-%u.img", dir, d.domid, d.devid);
    if (strcmp(d.kind, "vif") != 0) {
        ck_assert_int_ge(fd = open(image, O_RDWR | O_CREAT | O_CLOEXEC, 0600), 0);
        ck_assert_int_eq(ftruncate(fd, 1 << 20), 0);
        close(fd);
    }
    if (d.backend_domid == 0)
        return;
    if (strcmp(d.kind, "vif") == 0) {
        struct hvw_brk_vif_reg r = {.backend = (uint16_t)d.backend_domid,
                                    .frontend = (uint16_t)d.domid, .devid = d.devid, .queues = vif_queues,
                                    .mtu = 1500, .mac = {0x00, 0x16, 0x3e, 0, 0, (uint8_t)d.devid},
                                    .bridge = "xenbr0"};
        ck_assert_int_eq(hv_call(HVW_OP_BRK_REG_VIF, &r, sizeof(r), NULL, 0), 0);
    } else {
        struct hvw_brk_storage_req sr = {.domid = (uint16_t)d.backend_domid, .count = 1};
        struct hvw_brk_disk_reg r = {.backend = (uint16_t)d.backend_domid,
                                     .frontend = (uint16_t)d.domid, .devid = d.devid};
        snprintf(sr.dirs[0], sizeof(sr.dirs[0]), "%s", dir);
        snprintf(r.path, sizeof(r.path), "%s", image);
        ck_assert_int_eq(hv_call(HVW_OP_BRK_STORAGE, &sr, sizeof(sr), NULL, 0), 0);
        ck_assert_int_eq(hv_call(HVW_OP_BRK_REG_DISK, &r, sizeof(r), NULL, 0), 0);
    }
}

/*
 * The toolstack's part: the device's layout, with the keys libxl adds for
 * the kind (and a disk's logical-block-size when lbs is not 0).
 */
static void add_device_lbs(struct bhxb_dev d, unsigned int lbs)
{
    struct bhxb_layout *l = bhxb_layout_new(&d);
    char image[700];

    ck_assert_ptr_nonnull(l);
    register_device(d, image, sizeof(image));
    if (strcmp(d.kind, "vif") == 0) {
        ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "mac", "00:16:3e:00:00:%02x", d.devid), 0);
        ck_assert_int_eq(bhxb_layout_set(l, BHXB_FRONT, "mac", "00:16:3e:00:00:%02x", d.devid), 0);
    } else {
        ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "params", "%s", image), 0);
        ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "mode", "w"), 0);
        if (lbs != 0)
            ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "logical-block-size", "%u", lbs), 0);
    }
    ck_assert_int_eq(bhxb_layout_write(xs, l), 0);
    bhxb_layout_free(l);
}

static void add_device(struct bhxb_dev d)
{
    add_device_lbs(d, 0);
}

static struct bhxb_paths paths_of(struct bhxb_dev d)
{
    struct bhxb_paths p;

    ck_assert_int_eq(bhxb_dev_paths(&d, &p), 0);
    return p;
}

static const char *key(const char *dir, const char *k)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/%s", dir, k);
    return rd(path);
}

static void wait_key(const char *dir, const char *k, const char *want)
{
    char path[600];

    snprintf(path, sizeof(path), "%s/%s", dir, k);
    wait_value(path, want);
}

/* Both ends Connected, no error node on either. */
static void wait_connected(struct bhxb_dev d)
{
    struct bhxb_paths p = paths_of(d);

    wait_key(p.backend, "state", "4");
    wait_key(p.frontend, "state", "4");
    ck_assert_str_eq(key(p.backend, "error"), "(none)");
    ck_assert_str_eq(key(p.frontend, "error"), "(none)");
}

/* ---- processes ---- */

/* The host pid of the process named comm running as uid; 0 if there is none. */
static pid_t find_proc(uid_t uid, const char *comm)
{
    DIR *dir = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;

    ck_assert_ptr_nonnull(dir);
    while ((e = readdir(dir)) != NULL && found == 0) {
        char path[300], name[64] = "";
        struct stat st;
        FILE *f;
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s", e->d_name);
        if (stat(path, &st) != 0 || st.st_uid != uid)
            continue;
        snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fgets(name, sizeof(name), f) != NULL) {
            name[strcspn(name, "\n")] = '\0';
            char stat_path[300], st_buf[512];
            FILE *sf;
            snprintf(stat_path, sizeof(stat_path), "/proc/%s/stat", e->d_name);
            /* A zombie is gone for our purposes. */
            if (strcmp(name, comm) == 0 && (sf = fopen(stat_path, "r")) != NULL) {
                if (fgets(st_buf, sizeof(st_buf), sf) != NULL) {
                    char *rp = strrchr(st_buf, ')');
                    if (rp != NULL && rp[1] == ' ' && rp[2] != 'Z')
                        found = (pid_t)atoi(e->d_name);
                }
                fclose(sf);
            }
        }
        fclose(f);
    }
    closedir(dir);
    return found;
}

/* A process's parent, or 0. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512], *rp;
    pid_t ppid = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    if (fgets(buf, sizeof(buf), f) != NULL && (rp = strrchr(buf, ')')) != NULL)
        sscanf(rp + 2, "%*c %d", &ppid);
    fclose(f);
    return ppid;
}

/*
 * find_proc among the descendants of `ancestor` only: dom0's processes are
 * every test's, and other suites may run beside this one.
 */
static pid_t find_proc_under(pid_t ancestor, const char *comm)
{
    DIR *dir = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;

    ck_assert_ptr_nonnull(dir);
    while ((e = readdir(dir)) != NULL && found == 0) {
        pid_t pid = (pid_t)atoi(e->d_name), p = pid;
        char path[300], name[64] = "", st_buf[512], *rp;
        FILE *f;
        int depth = 0;
        if (pid <= 0)
            continue;
        while (p > 1 && p != ancestor && depth++ < 8)
            p = parent_of(p);
        if (p != ancestor || pid == ancestor)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fgets(name, sizeof(name), f) != NULL)
            name[strcspn(name, "\n")] = '\0';
        fclose(f);
        if (strcmp(name, comm) != 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fgets(st_buf, sizeof(st_buf), f) != NULL && (rp = strrchr(st_buf, ')')) != NULL &&
            rp[1] == ' ' && rp[2] != 'Z')
            found = pid;
        fclose(f);
    }
    closedir(dir);
    return found;
}

/* Running (not a zombie, not gone). */
static bool alive(pid_t pid)
{
    char path[64], buf[512], *rp;
    bool yes = false;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return false;
    if (fgets(buf, sizeof(buf), f) != NULL && (rp = strrchr(buf, ')')) != NULL)
        yes = rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
    fclose(f);
    return yes;
}

static void nap(void)
{
    struct timespec ts = {0, 50 * 1000000L};

    nanosleep(&ts, NULL);
}

/* Waits for a process named comm (other than not_pid) to be there, or, with gone, not to be. */
static pid_t wait_proc(uid_t uid, const char *comm, pid_t not_pid, bool gone)
{
    time_t end = time(NULL) + WAIT_S;

    for (;;) {
        pid_t p = find_proc(uid, comm);
        if (gone ? p == 0 : (p != 0 && p != not_pid))
            return p;
        if (time(NULL) >= end)
            ck_abort_msg("process %s of uid %u: %s after %d s (pid %d); logs:%s", comm,
                         (unsigned)uid, gone ? "still there" : "not there", WAIT_S, (int)p, logs());
        nap();
    }
}

static bool log_has(const char *logname, const char *needle)
{
    char path[256], buf[65536];
    FILE *f;
    size_t n;

    log_path(logname, path, sizeof(path));
    if ((f = fopen(path, "r")) == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strstr(buf, needle) != NULL;
}

static void wait_log(const char *logname, const char *needle)
{
    time_t end = time(NULL) + WAIT_S;

    while (!log_has(logname, needle)) {
        if (time(NULL) >= end)
            ck_abort_msg("no line with '%s' in %s.log after %d s; logs:%s", needle, logname, WAIT_S,
                         logs());
        nap();
    }
}

/* ---- tests ---- */

START_TEST(test_every_kind_connects)
{
    struct hvw_dominfo dd = dom_up("drv"), g = dom_up("guest");
    struct bhxb_dev devs[] = {
        dev("vbd", "vbd", g.domid, dd.domid, 51712),
        dev("vbd", "qdisk", g.domid, dd.domid, 51728),
        dev("vbd", "vbd3", g.domid, dd.domid, 51744),
        dev("vif", "vif", g.domid, dd.domid, 0),
    };

    drvdom_start(&dd, "drvdom");
    guest_start(&g, "guest");
    for (size_t i = 0; i < 4; i++)
        add_device(devs[i]);
    for (size_t i = 0; i < 4; i++)
        wait_connected(devs[i]);
    /* What each side published is what the other one read. */
    struct bhxb_paths b = paths_of(devs[0]), n = paths_of(devs[3]);
    ck_assert_str_eq(key(b.backend, "hotplug-status"), "connected");
    ck_assert_str_eq(key(b.backend, "max-ring-page-order"), "4");
    ck_assert_str_eq(key(b.backend, "sector-size"), "512");
    /* The guest's blkfront wants 4 queues, as many as blkback offers: keys under queue-N/. */
    ck_assert_str_eq(key(b.backend, "multi-queue-max-queues"), "4");
    ck_assert_str_eq(key(b.frontend, "multi-queue-num-queues"), "4");
    ck_assert_str_eq(key(b.frontend, "ring-ref"), "(none)");
    ck_assert_str_ne(key(b.frontend, "queue-0/ring-ref"), "(none)");
    ck_assert_str_ne(key(b.frontend, "queue-3/ring-ref"), "(none)");
    ck_assert_str_ne(key(b.frontend, "queue-3/event-channel"), "(none)");
    ck_assert_str_eq(key(b.frontend, "protocol"), "x86_64-abi");
    ck_assert_str_eq(key(n.backend, "feature-rx-copy"), "1");
    ck_assert_str_eq(key(n.frontend, "request-rx-copy"), "1");
    ck_assert_str_ne(key(n.frontend, "tx-ring-ref"), "(none)");
    ck_assert_str_ne(key(n.frontend, "rx-ring-ref"), "(none)");
    /* One keeper and one worker per device, in the driver domain. */
    char comm[16];
    snprintf(comm, sizeof(comm), "bhk-%u-51728", g.domid);
    ck_assert_int_ne(find_proc(dd.uid, comm), 0);
    snprintf(comm, sizeof(comm), "bhw-%u-0", g.domid);
    ck_assert_int_ne(find_proc(dd.uid, comm), 0);
}
END_TEST

START_TEST(test_second_guest_same_driver_domain)
{
    struct hvw_dominfo dd = dom_up("drv"), g1 = dom_up("g1"), g2 = dom_up("g2");
    struct bhxb_dev a = dev("vbd", "vbd", g1.domid, dd.domid, 51712);
    struct bhxb_dev b = dev("vbd", "vbd", g2.domid, dd.domid, 51712);
    struct bhxb_dev c = dev("vif", "vif", g2.domid, dd.domid, 1);

    drvdom_start(&dd, "drvdom");
    guest_start(&g1, "g1");
    add_device(a);
    wait_connected(a);
    guest_start(&g2, "g2");
    add_device(b);
    add_device(c);
    wait_connected(b);
    wait_connected(c);
    wait_connected(a);
    /* Each guest's ring is its own: the backends mapped different grants of different domains. */
    char id[16];
    snprintf(id, sizeof(id), "%u", g2.domid);
    ck_assert_str_eq(key(paths_of(b).backend, "frontend-id"), id);
    ck_assert_str_ne(key(paths_of(a).frontend, "queue-0/event-channel"), "(none)");
}
END_TEST

START_TEST(test_detach_closes_and_keeper_exits)
{
    struct hvw_dominfo dd = dom_up("drv"), g = dom_up("guest");
    struct bhxb_dev a = dev("vbd", "vbd", g.domid, dd.domid, 51712);
    struct bhxb_dev b = dev("vif", "vif", g.domid, dd.domid, 0);
    struct bhxb_paths p = paths_of(a);
    char comm[16], path[600];
    xs_transaction_t t;

    drvdom_start(&dd, "drvdom");
    guest_start(&g, "guest");
    add_device(a);
    add_device(b);
    wait_connected(a);
    wait_connected(b);
    snprintf(comm, sizeof(comm), "bhk-%u-51712", g.domid);
    ck_assert_int_ne(find_proc(dd.uid, comm), 0);
    /* As libxl detaches: online=0 and Closing in one transaction. */
    ck_assert((t = xs_transaction_start(xs)) != XBT_NULL);
    snprintf(path, sizeof(path), "%s/online", p.backend);
    ck_assert(xs_write(xs, t, path, "0", 1));
    snprintf(path, sizeof(path), "%s/state", p.backend);
    ck_assert(xs_write(xs, t, path, "5", 1));
    ck_assert(xs_transaction_end(xs, t, false));
    wait_key(p.backend, "state", "6");
    wait_key(p.frontend, "state", "6");
    wait_proc(dd.uid, comm, 0, true);
    /* The main process says so once it has reaped the keeper: a moment after it is gone. */
    wait_log("drvdom", "ended with its device");
    ck_assert_str_eq(key(p.backend, "error"), "(none)");
    /* The toolstack removes the directories; the other device never noticed. */
    ck_assert(xs_rm(xs, XBT_NULL, p.backend));
    ck_assert(xs_rm(xs, XBT_NULL, p.frontend));
    wait_value(p.frontend, "(none)");
    ck_assert_str_eq(key(paths_of(b).backend, "state"), "4");
    ck_assert_str_eq(key(paths_of(b).frontend, "state"), "4");
    /* The same device attached again gets a new keeper and connects. */
    add_device(a);
    wait_connected(a);
}
END_TEST

/* Reads watch events until the sentinel's; returns how many others came first. */
static int events_before_sentinel(struct xs_handle *w, bool first, char *seen, size_t size)
{
    time_t end = time(NULL) + WAIT_S;
    int others = 0;

    seen[0] = '\0';
    ck_assert(xs_write(w, XBT_NULL, "/test/sentinel", "x", 1));
    for (;;) {
        unsigned int n;
        char **ev = xs_read_watch(w, &n);
        ck_assert_ptr_nonnull(ev);
        if (strcmp(ev[XS_WATCH_TOKEN], "s") == 0 &&
            strcmp(ev[XS_WATCH_PATH], "/test/sentinel") == 0) {
            free(ev);
            /* The first time, the sentinel's registration event comes first: skip it. */
            if (first) {
                first = false;
                continue;
            }
            return others;
        }
        others++;
        snprintf(seen + strlen(seen), size - strlen(seen), " %s", ev[XS_WATCH_PATH]);
        free(ev);
        ck_assert(time(NULL) < end);
    }
}

START_TEST(test_worker_killed_comes_back_unseen)
{
    struct hvw_dominfo dd = dom_up("drv"), g = dom_up("guest");
    struct bhxb_dev a = dev("vbd", "vbd", g.domid, dd.domid, 51712);
    struct bhxb_dev b = dev("vif", "vif", g.domid, dd.domid, 0);
    struct bhxb_paths p = paths_of(a);
    char wcomm[16], kcomm[16], seen[2048], ref[32], port[32], needle[128];
    struct xs_handle *w;
    pid_t worker, keeper, again;
    uint64_t n;

    drvdom_start(&dd, "drvdom");
    guest_start(&g, "guest");
    add_device(a);
    add_device(b);
    wait_connected(a);
    wait_connected(b);
    snprintf(ref, sizeof(ref), "%s", key(p.frontend, "queue-0/ring-ref"));
    snprintf(port, sizeof(port), "%s", key(p.frontend, "queue-0/event-channel"));

    /* Every change under either directory from here on would reach this handle. */
    ck_assert_ptr_nonnull(w = xs_open(0));
    ck_assert(xs_watch(w, "/test/sentinel", "s"));
    ck_assert(xs_watch(w, p.backend, "b"));
    ck_assert(xs_watch(w, p.frontend, "f"));
    events_before_sentinel(w, true, seen, sizeof(seen)); /* the registration events */

    snprintf(wcomm, sizeof(wcomm), "bhw-%u-51712", g.domid);
    snprintf(kcomm, sizeof(kcomm), "bhk-%u-51712", g.domid);
    ck_assert_int_ne(worker = find_proc(dd.uid, wcomm), 0);
    ck_assert_int_ne(keeper = find_proc(dd.uid, kcomm), 0);
    ck_assert_int_eq(kill(worker, SIGKILL), 0);
    again = wait_proc(dd.uid, wcomm, worker, false);
    /* The new worker took the ring and the port from the keeper, not from XenStore. */
    snprintf(needle, sizeof(needle), "resumed: ring-ref %s (order 0), event channel %s", ref, port);
    wait_log("drvdom", needle);
    wait_log("drvdom", "worker 2 resumed at Connected from the keeper's state");
    ck_assert(log_has("drvdom", "killed by signal 9"));
    ck_assert_int_ne(again, worker);
    ck_assert_int_eq(find_proc(dd.uid, kcomm), keeper);

    /* Nothing under either directory changed: no watch event at all. */
    ck_assert_msg(events_before_sentinel(w, false, seen, sizeof(seen)) == 0,
                  "the restart was seen in XenStore:%s", seen);
    ck_assert_str_eq(key(p.backend, "state"), "4");
    ck_assert_str_eq(key(p.frontend, "state"), "4");
    ck_assert_str_eq(key(paths_of(b).backend, "state"), "4");

    /* The frontend's port is bound to the driver domain again, as before. */
    struct hvw_evt_status_req sr = {.domid = (uint16_t)g.domid};
    struct hvw_evt_status_rsp st;
    ck_assert_int_eq(bhxb_parse_u64(port, strlen(port), 1, 1u << 17, &n), 0);
    sr.port = (uint32_t)n;
    ck_assert_int_eq(hv_call(HVW_OP_EVT_STATUS, &sr, sizeof(sr), &st, sizeof(st)), 0);
    ck_assert_uint_eq(st.status, EVTCHNSTAT_interdomain);
    ck_assert_uint_eq(st.remote_domid, dd.domid);

    /* And the device still detaches cleanly through the new worker. */
    char path[600];
    snprintf(path, sizeof(path), "%s/online", p.backend);
    ck_assert(xs_write(xs, XBT_NULL, path, "0", 1));
    wait_key(p.backend, "state", "6");
    wait_proc(dd.uid, kcomm, 0, true);
    xs_close(w);
}
END_TEST

/* Plays a frontend that lies: dom0 writes into the frontend's directory. */
static void lie(struct bhxb_dev d, const char *const *kv)
{
    struct bhxb_paths p = paths_of(d);
    char path[600];
    xs_transaction_t t;

    wait_key(p.backend, "state", "2"); /* InitWait: the backend reads our keys next */
    ck_assert((t = xs_transaction_start(xs)) != XBT_NULL);
    for (; kv[0] != NULL; kv += 2) {
        snprintf(path, sizeof(path), "%s/%s", p.frontend, kv[0]);
        ck_assert(xs_write(xs, t, path, kv[1], strlen(kv[1])));
    }
    snprintf(path, sizeof(path), "%s/state", p.frontend);
    ck_assert(xs_write(xs, t, path, "3", 1));
    ck_assert(xs_transaction_end(xs, t, false));
}

static void wait_failed(struct bhxb_dev d, const char *why)
{
    struct bhxb_paths p = paths_of(d);
    char path[600];

    wait_key(p.backend, "state", "5");
    snprintf(path, sizeof(path), "%s/error", p.backend);
    ck_assert_msg(strstr(rd(path), why) != NULL, "error node of %s is '%s', not about '%s'",
                  p.backend, rd(path), why);
}

START_TEST(test_lying_frontend_loses_only_its_device)
{
    struct hvw_dominfo dd = dom_up("drv"), g = dom_up("guest"), evil = dom_up("evil");
    struct bhxb_dev good = dev("vbd", "vbd", g.domid, dd.domid, 51712);
    struct bhxb_dev goodnet = dev("vif", "vif", g.domid, dd.domid, 0);
    struct bhxb_dev e1 = dev("vbd", "vbd", evil.domid, dd.domid, 51712);
    struct bhxb_dev e2 = dev("vif", "vif", evil.domid, dd.domid, 0);
    struct bhxb_dev e3 = dev("vbd", "qdisk", evil.domid, dd.domid, 51728);
    struct bhxb_dev e4 = dev("vbd", "vbd3", evil.domid, dd.domid, 51744);
    static const char *const garbage_ref[] = {"ring-ref", "12abc", "event-channel", "5", NULL};
    static const char *const bad_port[] = {
        "tx-ring-ref",     "1", "rx-ring-ref", "2", "event-channel", "-7",
        "request-rx-copy", "1", "feature-rx-notify", "1", NULL};
    static const char *const unmapped[] = {"ring-ref", "4000", "event-channel", "3", NULL};
    static const char *const huge_order[] = {"ring-page-order", "9", "ring-ref0", "1",
                                             "event-channel",   "3", NULL};
    char wcomm[16];
    pid_t worker;

    drvdom_start(&dd, "drvdom");
    guest_start(&g, "guest");
    add_device(good);
    add_device(goodnet);
    wait_connected(good);
    wait_connected(goodnet);
    snprintf(wcomm, sizeof(wcomm), "bhw-%u-51712", g.domid);
    ck_assert_int_ne(worker = find_proc(dd.uid, wcomm), 0);

    add_device(e1);
    add_device(e2);
    add_device(e3);
    add_device(e4);
    lie(e1, garbage_ref);
    lie(e2, bad_port);
    lie(e3, unmapped);
    lie(e4, huge_order);
    wait_failed(e1, "ring-ref");
    wait_failed(e2, "event-channel");
    wait_failed(e3, "cannot map grant reference 4000");
    wait_failed(e4, "ring-page-order");

    /* Nothing of the other guest moved, and its worker is the same process. */
    ck_assert_str_eq(key(paths_of(good).backend, "state"), "4");
    ck_assert_str_eq(key(paths_of(good).frontend, "state"), "4");
    ck_assert_str_eq(key(paths_of(goodnet).backend, "state"), "4");
    ck_assert_int_eq(find_proc(dd.uid, wcomm), worker);
    /* A lying state node fails the device too. */
    struct bhxb_dev e5 = dev("vif", "vif", evil.domid, dd.domid, 7);
    char path[600];
    add_device(e5);
    wait_key(paths_of(e5).backend, "state", "2");
    snprintf(path, sizeof(path), "%s/state", paths_of(e5).frontend);
    ck_assert(xs_write(xs, XBT_NULL, path, "4x", 2));
    wait_failed(e5, "XenbusState");
    ck_assert_str_eq(key(paths_of(good).backend, "state"), "4");
}
END_TEST

/* Multi-queue keys that lie: each such device is lost, with the key named; the good one stays. */
START_TEST(test_lying_queue_keys_lose_only_their_device)
{
    struct hvw_dominfo dd = dom_up("drv"), g = dom_up("guest"), evil = dom_up("evil");
    struct bhxb_dev good = dev("vbd", "vbd", g.domid, dd.domid, 51712);
    struct bhxb_dev e[5] = {
        dev("vbd", "vbd", evil.domid, dd.domid, 51712), dev("vbd", "vbd", evil.domid, dd.domid, 51728),
        dev("vbd", "vbd", evil.domid, dd.domid, 51744), dev("vbd", "vbd", evil.domid, dd.domid, 51760),
        dev("vbd", "vbd", evil.domid, dd.domid, 51776)};
    static const char *const zero[] = {"multi-queue-num-queues", "0", "ring-ref", "8",
                                       "event-channel", "3", NULL};
    static const char *const many[] = {"multi-queue-num-queues", "5", "queue-0/ring-ref", "8",
                                       "queue-0/event-channel", "3", NULL};
    static const char *const garbage[] = {"multi-queue-num-queues", "2x", NULL};
    /* Two queues asked, the second's keys missing (the top-level ones do not count). */
    static const char *const missing[] = {"multi-queue-num-queues", "2", "queue-0/ring-ref", "8",
                                          "queue-0/event-channel", "3", "ring-ref", "9",
                                          "event-channel", "4", NULL};
    static const char *const bad_port[] = {"multi-queue-num-queues", "2", "queue-0/ring-ref", "8",
                                           "queue-0/event-channel", "3", "queue-1/ring-ref", "9",
                                           "queue-1/event-channel", "0", NULL};
    char wcomm[16];
    pid_t worker;

    drvdom_start(&dd, "drvdom");
    guest_start(&g, "guest");
    add_device(good);
    wait_connected(good);
    snprintf(wcomm, sizeof(wcomm), "bhw-%u-51712", g.domid);
    ck_assert_int_ne(worker = find_proc(dd.uid, wcomm), 0);
    for (int i = 0; i < 5; i++)
        add_device(e[i]);
    lie(e[0], zero);
    lie(e[1], many);
    lie(e[2], garbage);
    lie(e[3], missing);
    lie(e[4], bad_port);
    wait_failed(e[0], "multi-queue-num-queues is 0: give 1..4");
    wait_failed(e[1], "multi-queue-num-queues is 5: give 1..4");
    wait_failed(e[2], "multi-queue-num-queues");
    wait_failed(e[3], "queue-1/ring-ref: missing");
    wait_failed(e[4], "queue-1/event-channel");
    ck_assert_str_eq(key(paths_of(good).backend, "state"), "4");
    ck_assert_str_eq(key(paths_of(good).frontend, "state"), "4");
    ck_assert_int_eq(find_proc(dd.uid, wcomm), worker);
}
END_TEST

/* ---- a multi-queue frontend played by the test (tests/hostile.h) ---- */

#define MQ_QUEUES 2

/* A read of sector `sector` into the granted page gref, as blkfront puts it on a ring. */
static void mq_put_read(struct hst_end *f, unsigned int q, uint64_t id, uint64_t sector,
                        uint32_t gref)
{
    blkif_request_t r = {.operation = BLKIF_OP_READ, .nr_segments = 1, .id = id,
                         .sector_number = sector};

    r.seg[0] = (struct blkif_request_segment){.gref = gref, .first_sect = 0, .last_sect = 7};
    ck_assert_int_eq(hst_produce(f, q, &r, sizeof(r), 1, false), 0);
}

/* Waits until queue q's rsp_prod reaches n; returns it. */
static uint32_t mq_wait_rsp(struct hst_end *f, unsigned int q, uint32_t n)
{
    time_t end = time(NULL) + WAIT_S;
    uint32_t p;

    while ((p = hst_idx_get(&f->ring[q], HST_RSP_PROD)) < n) {
        if (time(NULL) >= end)
            ck_abort_msg("queue %u: %u responses after %d s, not %u; logs:%s", q, p, WAIT_S, n,
                         logs());
        nap();
    }
    return p;
}

/*
 * Each queue q answered its eight requests (ids 100q .. 100q+7), each once,
 * all OK, and nothing past them: exactly once across a worker's death.
 */
static void mq_eight_once(struct hst_end *f)
{
    for (unsigned int q = 0; q < MQ_QUEUES; q++) {
        bool seen[8] = {false};

        mq_wait_rsp(f, q, 8);
        for (uint32_t i = 0; i < 8; i++) {
            blkif_response_t rsp;

            ck_assert_int_eq(hst_slot_read(&f->ring[q], i, &rsp, sizeof(rsp)), 0);
            ck_assert_int_eq(rsp.status, BLKIF_RSP_OKAY);
            ck_assert_uint_ge(rsp.id, 100 * q);
            ck_assert_uint_lt(rsp.id, 100 * q + 8);
            ck_assert_msg(!seen[rsp.id - 100 * q], "queue %u: id %llu answered twice", q,
                          (unsigned long long)rsp.id);
            seen[rsp.id - 100 * q] = true;
        }
    }
    for (unsigned int q = 0; q < MQ_QUEUES; q++)
        ck_assert_uint_eq(hst_idx_get(&f->ring[q], HST_RSP_PROD), 8);
}

/* The liar's device up to Connected: 2 queues of one page each, keys under queue-N/. */
static void mq_connect(struct hst_end *f, struct hst_id *id, struct bhxb_dev d)
{
    struct bhxb_paths p = paths_of(d);

    wait_key(p.backend, "state", "2");
    ck_assert_str_eq(key(p.backend, "multi-queue-max-queues"), "4");
    ck_assert_msg(hst_front_init_mq(f, id, &d, 0, MQ_QUEUES) == 0, "%s", f->why);
    ck_assert_int_eq(hst_front_publish(f), 0);
    ck_assert_int_eq(hst_state(f, XenbusStateInitialised), 0);
    wait_key(p.backend, "state", "4");
    ck_assert_int_eq(hst_state(f, XenbusStateConnected), 0);
}

/* A lie on queue 1 of 2 (req_prod a ring and more ahead) loses that device, and only it. */
START_TEST(test_lie_on_queue_1_of_2_loses_only_its_device)
{
    struct hvw_dominfo dd = dom_up("drv"), g = dom_up("guest"), evil = dom_up("evil");
    struct bhxb_dev good = dev("vbd", "vbd", g.domid, dd.domid, 51712);
    struct bhxb_dev bad = dev("vbd", "vbd", evil.domid, dd.domid, 51712);
    struct hst_id id;
    struct hst_end f;
    uint32_t gref;

    drvdom_start(&dd, "drvdom");
    guest_start(&g, "guest");
    add_device(good);
    wait_connected(good);
    ck_assert_int_eq(hst_id_open(&id, evil.uid), 0);
    add_device(bad);
    mq_connect(&f, &id, bad);
    /* Queue 0 is served honestly first. */
    ck_assert_ptr_nonnull(hst_grant(&f, 1, true, &gref));
    mq_put_read(&f, 0, 77, 0, gref);
    ck_assert_int_eq(hst_notify_queue(&f, 0), 0);
    mq_wait_rsp(&f, 0, 1);
    hst_idx_set(&f.ring[1], HST_REQ_PROD, f.ring[1].nr_ents + 1);
    ck_assert_int_eq(hst_notify_queue(&f, 1), 0);
    wait_failed(bad, "the frontend lied on queue 1");
    ck_assert_str_eq(key(paths_of(good).backend, "state"), "4");
    ck_assert_str_eq(key(paths_of(good).frontend, "state"), "4");
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST

/*
 * The worker killed while both queues have requests in flight: the next
 * one resumes each queue from the keeper, and every request is answered
 * exactly once, on its own queue.
 */
START_TEST(test_worker_killed_with_2_queues_in_flight)
{
    struct hvw_dominfo dd = dom_up("drv"), evil = dom_up("fe");
    struct bhxb_dev d = dev("vbd", "vbd", evil.domid, dd.domid, 51712);
    char wcomm[16];
    struct hst_id id;
    struct hst_end f;
    uint32_t gref[MQ_QUEUES][8];
    pid_t worker;

    drvdom_start(&dd, "drvdom");
    ck_assert_int_eq(hst_id_open(&id, evil.uid), 0);
    add_device(d);
    mq_connect(&f, &id, d);
    for (unsigned int q = 0; q < MQ_QUEUES; q++)
        for (unsigned int i = 0; i < 8; i++)
            ck_assert_ptr_nonnull(hst_grant(&f, 1, true, &gref[q][i]));
    /* Three answered on each queue before, so that the kept indices are not zero. */
    for (unsigned int q = 0; q < MQ_QUEUES; q++) {
        for (unsigned int i = 0; i < 3; i++)
            mq_put_read(&f, q, 100 * q + i, 8 * i, gref[q][i]);
        ck_assert_int_eq(hst_notify_queue(&f, q), 0);
    }
    for (unsigned int q = 0; q < MQ_QUEUES; q++)
        ck_assert_uint_eq(mq_wait_rsp(&f, q, 3), 3);
    snprintf(wcomm, sizeof(wcomm), "bhw-%u-51712", evil.domid);
    ck_assert_int_ne(worker = find_proc(dd.uid, wcomm), 0);
    /* Five more on each, announced, and the worker killed at once: some in flight. */
    for (unsigned int q = 0; q < MQ_QUEUES; q++) {
        for (unsigned int i = 3; i < 8; i++)
            mq_put_read(&f, q, 100 * q + i, 8 * i, gref[q][i]);
        ck_assert_int_eq(hst_notify_queue(&f, q), 0);
    }
    ck_assert_int_eq(kill(worker, SIGKILL), 0);
    wait_proc(dd.uid, wcomm, worker, false);
    wait_log("drvdom", "kicks before, 2 queues");
    wait_log("drvdom", "worker 2 resumed at Connected from the keeper's state");
    /* An event more, as a frontend with more to say would send: harmless if nothing waits. */
    for (unsigned int q = 0; q < MQ_QUEUES; q++)
        ck_assert_int_eq(hst_notify_queue(&f, q), 0);
    mq_eight_once(&f);
    ck_assert_str_eq(key(paths_of(d).backend, "state"), "4");
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST

/* ---- upgrades: a worker-only process of a new binary takes a device over ---- */

/* Runs argv in domain d (or dom0) to its end, output to <logname>.log; its exit status. */
static int run_in(const struct hvw_dominfo *d, const char *logname, char *const *argv)
{
    int status;

    bg_start(d, logname, argv);
    ck_assert_int_eq(waitpid(bg[nbg - 1], &status, 0), bg[nbg - 1]);
    nbg--;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* bulkhead-drvdom --upgrade in the driver domain, from the build tree (bin: relative to it). */
static int upgrade_in(const struct hvw_dominfo *dd, const char *logname, const char *bin)
{
    char path[512];
    char *argv[] = {path, "--upgrade", NULL};

    snprintf(path, sizeof(path), "%s/%s", test_builddir(), bin);
    return run_in(dd, logname, argv);
}

/* A read on queue q of the test's frontend, answered: the device is served. */
static void mq_read_answered(struct hst_end *f, unsigned int q, uint64_t id, uint32_t gref)
{
    uint32_t before = hst_idx_get(&f->ring[q], HST_RSP_PROD);
    blkif_response_t rsp;

    mq_put_read(f, q, id, 0, gref);
    ck_assert_int_eq(hst_notify_queue(f, q), 0);
    mq_wait_rsp(f, q, before + 1);
    ck_assert_int_eq(hst_slot_read(&f->ring[q], before, &rsp, sizeof(rsp)), 0);
    ck_assert_uint_eq(rsp.id, id);
    ck_assert_int_eq(rsp.status, BLKIF_RSP_OKAY);
}

/*
 * An upgrade while both queues have requests in flight: the old worker
 * stops at a clean point, the new binary's worker resumes each queue from
 * the keeper, and every request is answered exactly once.
 */
START_TEST(test_upgrade_with_2_queues_in_flight)
{
    struct hvw_dominfo dd = dom_up("drv"), fe = dom_up("fe");
    struct bhxb_dev d = dev("vbd", "vbd", fe.domid, dd.domid, 51712);
    char wcomm[16], kcomm[16];
    struct hst_id id;
    struct hst_end f;
    uint32_t gref[MQ_QUEUES][8];
    pid_t worker, keeper, again;

    drvdom_start(&dd, "drvdom");
    ck_assert_int_eq(hst_id_open(&id, fe.uid), 0);
    add_device(d);
    mq_connect(&f, &id, d);
    for (unsigned int q = 0; q < MQ_QUEUES; q++)
        for (unsigned int i = 0; i < 8; i++)
            ck_assert_ptr_nonnull(hst_grant(&f, 1, true, &gref[q][i]));
    for (unsigned int q = 0; q < MQ_QUEUES; q++) {
        for (unsigned int i = 0; i < 3; i++)
            mq_put_read(&f, q, 100 * q + i, 8 * i, gref[q][i]);
        ck_assert_int_eq(hst_notify_queue(&f, q), 0);
    }
    for (unsigned int q = 0; q < MQ_QUEUES; q++)
        mq_wait_rsp(&f, q, 3);
    snprintf(wcomm, sizeof(wcomm), "bhw-%u-51712", fe.domid);
    snprintf(kcomm, sizeof(kcomm), "bhk-%u-51712", fe.domid);
    ck_assert_int_ne(worker = find_proc(dd.uid, wcomm), 0);
    ck_assert_int_ne(keeper = find_proc(dd.uid, kcomm), 0);
    /* Five more on each, announced, and the upgrade at once: some in flight. */
    for (unsigned int q = 0; q < MQ_QUEUES; q++) {
        for (unsigned int i = 3; i < 8; i++)
            mq_put_read(&f, q, 100 * q + i, 8 * i, gref[q][i]);
        ck_assert_int_eq(hst_notify_queue(&f, q), 0);
    }
    ck_assert_msg(upgrade_in(&dd, "upgrade", "driverdom/bulkhead-drvdom") == 0, "logs:%s",
                  logs());
    ck_assert(log_has("upgrade", "1 of 1 device taken over"));
    again = wait_proc(dd.uid, wcomm, worker, false);
    ck_assert(!alive(worker));
    ck_assert_int_eq(find_proc(dd.uid, kcomm), keeper);
    wait_log("drvdom", "handing the device over: stopping at a clean point");
    wait_log("drvdom", "worker 2 resumed at Connected from the keeper's state");
    for (unsigned int q = 0; q < MQ_QUEUES; q++)
        ck_assert_int_eq(hst_notify_queue(&f, q), 0);
    mq_eight_once(&f);
    /* The upgraded worker serves on, and when it dies its keeper forks one of its own. */
    mq_read_answered(&f, 0, 9, gref[0][0]);
    ck_assert_int_eq(kill(again, SIGKILL), 0);
    wait_proc(dd.uid, wcomm, again, false);
    wait_log("drvdom", "worker 3 resumed at Connected from the keeper's state");
    mq_read_answered(&f, 1, 109, gref[1][0]);
    ck_assert_str_eq(key(paths_of(d).backend, "state"), "4");
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST

/*
 * A new binary of another kept-state layout (KEEP_VERSION 2) refuses the
 * device with one line, and the old worker was never stopped: the same pid
 * serves the next request.
 */
START_TEST(test_upgrade_refused_layout_keeps_the_worker)
{
    struct hvw_dominfo dd = dom_up("drv"), fe = dom_up("fe");
    struct bhxb_dev d = dev("vbd", "vbd", fe.domid, dd.domid, 51712);
    char wcomm[16];
    struct hst_id id;
    struct hst_end f;
    uint32_t gref;
    pid_t worker;

    drvdom_start(&dd, "drvdom");
    ck_assert_int_eq(hst_id_open(&id, fe.uid), 0);
    add_device(d);
    mq_connect(&f, &id, d);
    ck_assert_ptr_nonnull(hst_grant(&f, 1, true, &gref));
    mq_read_answered(&f, 0, 1, gref);
    snprintf(wcomm, sizeof(wcomm), "bhw-%u-51712", fe.domid);
    ck_assert_int_ne(worker = find_proc(dd.uid, wcomm), 0);
    ck_assert_int_eq(upgrade_in(&dd, "upgrade2", "tests/bulkhead-drvdom-layout2"), 1);
    ck_assert_msg(log_has("upgrade2", "refused: kept-state layout 1 (") &&
                      log_has("upgrade2", "is not this binary's 2 (") &&
                      log_has("upgrade2", "upgrade to a binary of the same layout"),
                  "logs:%s", logs());
    wait_log("drvdom", "refused the device: kept-state layout 1");
    ck_assert(!log_has("drvdom", "handing the device over"));
    ck_assert_int_eq(find_proc(dd.uid, wcomm), worker);
    mq_read_answered(&f, 1, 2, gref);
    ck_assert_int_eq(find_proc(dd.uid, wcomm), worker);
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST

/*
 * The keeper's socket fed garbage by a process of the driver domain: a
 * short message, a wrong magic, a type out of turn, a peer that leaves
 * after the offer.  Each costs that connection only: the worker is never
 * told to stop, and serves the next request.
 */
START_TEST(test_keeper_socket_garbage_keeps_the_worker)
{
    struct hvw_dominfo dd = dom_up("drv"), fe = dom_up("fe");
    struct bhxb_dev d = dev("vbd", "vbd", fe.domid, dd.domid, 51712);
    char wcomm[16], sock[128], prog[1024];
    char *argv[] = {"/usr/bin/python3", "-c", prog, NULL};
    struct hst_id id;
    struct hst_end f;
    uint32_t gref;
    pid_t worker;

    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("SKIP: needs /usr/bin/python3 (apt-get install python3)\n");
        return;
    }
    drvdom_start(&dd, "drvdom");
    ck_assert_int_eq(hst_id_open(&id, fe.uid), 0);
    add_device(d);
    mq_connect(&f, &id, d);
    ck_assert_ptr_nonnull(hst_grant(&f, 1, true, &gref));
    snprintf(wcomm, sizeof(wcomm), "bhw-%u-51712", fe.domid);
    ck_assert_int_ne(worker = find_proc(dd.uid, wcomm), 0);
    snprintf(sock, sizeof(sock), "bulkhead-keeper/%u/vbd-%u-51712", dd.domid, fe.domid);
    /* Each connection reads the keeper's OFFER (292 bytes) first, then lies. */
    snprintf(prog, sizeof(prog),
             "import socket, struct\n"
             "def conn():\n"
             "    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
             "    s.connect('\\0%s')\n"
             "    assert len(s.recv(400)) == 292\n"
             "    return s\n"
             "def lie(b):\n"
             "    s = conn(); s.send(b); s.recv(400); s.close()\n"
             "lie(b'garbage')\n"
             "lie(struct.pack('<IHH', 0xdeadbeef, 1, 2) + bytes(284))\n"
             "lie(struct.pack('<IHH', 0x4f484842, 1, 5) + bytes(284))\n"
             "conn().close()\n"
             "print('lied four times')\n",
             sock);
    ck_assert_msg(run_in(&dd, "liar", argv) == 0, "logs:%s", logs());
    ck_assert(log_has("liar", "lied four times"));
    wait_log("drvdom", "sent a message of 7 bytes, not 292: ignored; worker");
    wait_log("drvdom", "sent magic 0xdeadbeef, not 0x4f484842");
    wait_log("drvdom", "sent message type 5 (EXIT) out of turn: ignored");
    ck_assert(!log_has("drvdom", "handing the device over"));
    ck_assert_int_eq(find_proc(dd.uid, wcomm), worker);
    mq_read_answered(&f, 0, 1, gref);
    ck_assert_int_eq(find_proc(dd.uid, wcomm), worker);
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST

START_TEST(test_dom0_serves_a_dom0_device)
{
    struct hvw_dominfo g = dom_up("guest");
    struct bhxb_dev a = dev("vbd", "vbd", g.domid, 0, 51712);
    struct bhxb_paths p = paths_of(a);
    char wcomm[16], kcomm[16];
    int status;
    pid_t main_pid, kpid;

    drvdom_start(NULL, "dom0-drvdom");
    main_pid = bg[nbg - 1];
    guest_start(&g, "guest");
    add_device(a);
    wait_connected(a);
    snprintf(wcomm, sizeof(wcomm), "bhw-%u-51712", g.domid);
    snprintf(kcomm, sizeof(kcomm), "bhk-%u-51712", g.domid);
    ck_assert_int_ne(find_proc_under(main_pid, wcomm), 0);
    ck_assert_int_ne(kpid = find_proc_under(main_pid, kcomm), 0);
    /* SIGTERM: every device closed, then a clean exit. */
    ck_assert_int_eq(kill(main_pid, SIGTERM), 0);
    ck_assert_int_eq(waitpid(main_pid, &status, 0), main_pid);
    bg[--nbg] = 0;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d; logs:%s", status,
                  logs());
    ck_assert_str_eq(key(p.backend, "state"), "6");
    ck_assert_msg(!alive(kpid), "keeper %d outlived its device", (int)kpid);
    ck_assert(log_has("dom0-drvdom", "every device closed"));
    /* Its backend closed but still online: the frontend waits to reconnect... */
    wait_key(p.frontend, "state", "1");
    /* ...and does, once a backend serves the device again. */
    char path[600];
    snprintf(path, sizeof(path), "%s/state", p.backend);
    ck_assert(xs_write(xs, XBT_NULL, path, "1", 1));
    drvdom_start(NULL, "dom0-drvdom-again");
    wait_connected(a);
}
END_TEST

START_TEST(test_guest_runs_its_workload_then_closes)
{
    struct hvw_dominfo dd = dom_up("drv"), g = dom_up("guest");
    struct bhxb_dev a = dev("vbd", "vbd", g.domid, dd.domid, 51712);
    struct bhxb_dev b = dev("vif", "vif", g.domid, dd.domid, 0);
    int status;
    pid_t helper;

    drvdom_start(&dd, "drvdom");
    add_device(a);
    add_device(b);
    /* The workload runs once the devices are Connected, and sees them so. */
    guest_run(&g, "guest",
              "echo vbd=$(xenstore-read device/vbd/51712/state) "
              "vif=$(xenstore-read device/vif/0/state); exit 7");
    helper = bg[nbg - 1];
    ck_assert_int_eq(waitpid(helper, &status, 0), helper);
    bg[--nbg] = 0;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 7, "status %d; logs:%s", status,
                  logs());
    ck_assert_msg(log_has("guest", "vbd=4 vif=4"), "logs:%s", logs());
    /* It closed its devices before it exited, and the backends followed. */
    ck_assert_str_eq(key(paths_of(a).frontend, "state"), "6");
    ck_assert_str_eq(key(paths_of(b).frontend, "state"), "6");
    wait_key(paths_of(a).backend, "state", "6");
    wait_key(paths_of(b).backend, "state", "6");
}
END_TEST

/*
 * sector-size and physical-sector-size as the storage says (a file: 512,
 * and its st_blksize up to 4096) or as the toolstack forces; a disk grown
 * or shrunk in dom0 is published by the driver by itself, with no request
 * (the guest does no I/O), and its state is rewritten in the same
 * transaction so that the frontend's watch fires.
 */
START_TEST(test_geometry_and_resize_without_a_request)
{
    struct hvw_dominfo dd = dom_up("drv"), g = dom_up("guest");
    struct bhxb_dev a = dev("vbd", "vbd", g.domid, dd.domid, 51712);
    struct bhxb_dev b = dev("vbd", "vbd", g.domid, dd.domid, 51728);
    struct bhxb_paths p = paths_of(a), q = paths_of(b);
    struct xs_handle *w = xs_open(0);
    char image[700], path[600], want[16];
    unsigned int n, events = 0, pbs;
    struct stat st;
    char **ev;

    drvdom_start(&dd, "drvdom");
    guest_start(&g, "guest");
    add_device(a);
    add_device_lbs(b, 4096);
    wait_connected(a);
    wait_connected(b);
    snprintf(image, sizeof(image), "%s/images/disk%u-%u.img", hv.state, a.domid, a.devid);
    ck_assert_int_eq(stat(image, &st), 0);
    pbs = st.st_blksize > 4096 ? 4096u : (unsigned int)st.st_blksize;
    if (st.st_blksize < 512 || (st.st_blksize & (st.st_blksize - 1)) != 0)
        pbs = 512;
    snprintf(want, sizeof(want), "%u", pbs);
    ck_assert_str_eq(key(p.backend, "sector-size"), "512");
    ck_assert_str_eq(key(p.backend, "physical-sector-size"), want);
    ck_assert_str_eq(key(p.backend, "sectors"), "2048"); /* 512-byte units, whatever sector-size */
    ck_assert_str_eq(key(q.backend, "sector-size"), "4096");
    ck_assert_str_eq(key(q.backend, "physical-sector-size"), "4096");
    ck_assert_str_eq(key(q.backend, "sectors"), "2048");
    /* the state watch: its first event is the registration's */
    snprintf(path, sizeof(path), "%s/state", p.backend);
    ck_assert_ptr_nonnull(w);
    ck_assert(xs_watch(w, path, "st"));
    ck_assert_ptr_nonnull(ev = xs_read_watch(w, &n));
    free(ev);
    ck_assert_int_eq(truncate(image, 2 << 20), 0);
    wait_key(p.backend, "sectors", "4096");
    /* committed with sectors: its event is there by now (the bound guards a hang only) */
    for (;;) {
        struct pollfd pf = {.fd = xs_fileno(w), .events = POLLIN};
        ck_assert_msg(poll(&pf, 1, WAIT_S * 1000) == 1, "no state event after the resize; logs:%s",
                      logs());
        ck_assert_ptr_nonnull(ev = xs_read_watch(w, &n));
        events += strcmp(ev[XS_WATCH_PATH], path) == 0;
        free(ev);
        if (events > 0)
            break;
    }
    ck_assert_str_eq(key(p.backend, "state"), "4");
    wait_log("drvdom", "resized: 4096 sectors");
    /* shrunk: published too, rounded down to whole logical sectors */
    ck_assert_int_eq(truncate(image, (1 << 19) + 100), 0);
    wait_key(p.backend, "sectors", "1024");
    /* the 4096-byte disk: 4 KiB blocks only */
    snprintf(image, sizeof(image), "%s/images/disk%u-%u.img", hv.state, b.domid, b.devid);
    ck_assert_int_eq(truncate(image, (3 << 20) + 2048), 0);
    wait_key(q.backend, "sectors", "6144");
    wait_connected(a);
    wait_connected(b);
    xs_close(w);
}
END_TEST

/*
 * The worker's stats lines (blk.c's blk_log_stats) after the guest's I/O:
 * the last one of each queue says requests were served, with no more
 * notifications than response pushes and every data page mapped (the
 * persistent ones once) - counts, so that a user can check batching.
 */
static void check_stats_logged(void)
{
    unsigned long long req[4] = {0}, total = 0, maps = 0;
    char path[300], line[512];
    FILE *f;

    wait_log("drvdom", "stats: queue 0: requests");
    wait_log("drvdom", "stats: wake-ups");
    log_path("drvdom", path, sizeof(path));
    ck_assert_ptr_nonnull(f = fopen(path, "r"));
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *p = strstr(line, "stats: queue ");
        unsigned int q;
        unsigned long long r, passes, pushes, notifies, enters, m, x;

        if (p == NULL)
            continue;
        ck_assert_msg(sscanf(p,
                             "stats: queue %u: requests %llu in %llu passes; responses pushed "
                             "%llu times, notifies sent %llu; io_uring_enter %llu; grant maps "
                             "%llu, unmaps %llu",
                             &q, &r, &passes, &pushes, &notifies, &enters, &m, &x) == 8 &&
                          q < 4,
                      "a stats line of another form: %s", line);
        ck_assert_msg(notifies <= pushes && r <= passes * 512 && x <= pushes,
                      "impossible counts: %s", line);
        req[q] = r;
        maps = m > maps ? m : maps;
    }
    fclose(f);
    for (unsigned int q = 0; q < 4; q++)
        total += req[q];
    /* 1 MiB written and read back: at least two requests, and their pages mapped */
    ck_assert_uint_ge(total, 2);
    ck_assert_uint_ge(maps, 1);
}

/*
 * Persistent grants idle for --grant-idle-ms (0 here) are unmapped by the
 * worker's tick, and the guest's later reads map them again and read the
 * same data.  The guest writes 1 MiB, reads it back, waits until dom0
 * (having seen the unmap in the driver's log) says go, and reads again.
 */
START_TEST(test_idle_grants_unmapped_and_mapped_again)
{
    struct hvw_dominfo dd = dom_up("drv"), g = dom_up("guest");
    struct bhxb_dev a = dev("vbd", "vbd", g.domid, dd.domid, 51712);
    char path[128], image[700], cmd[800], line[256] = "", first[64] = "", second[64] = "";
    FILE *f;

    drvdom_start_idle(&dd, "drvdom", "0");
    add_device(a);
    guest_run(&g, "guest",
              "u='nbd+unix:///?socket=/run/bulkhead-guest/vbd-51712.sock'; "
              "head -c 1048576 /dev/urandom | nbdcopy - \"$u\" || exit 3; "
              "echo first=$(nbdcopy \"$u\" - | md5sum | cut -c1-32); "
              "while [ \"$(xenstore-read data/go 2>/dev/null)\" != 1 ]; do sleep 0.1; done; "
              "echo second=$(nbdcopy \"$u\" - | md5sum | cut -c1-32)");
    wait_log("guest", "first=");
    wait_log("drvdom", "persistent grants idle for 0 ms or more");
    check_stats_logged();
    snprintf(path, sizeof(path), "/local/domain/%u/data/go", g.domid);
    ck_assert(xs_write(xs, XBT_NULL, path, "1", 1));
    ck_assert(xs_set_permissions(xs, XBT_NULL, path,
                                 (struct xs_permissions[]){{.id = g.domid, .perms = XS_PERM_NONE}},
                                 1));
    wait_log("guest", "second=");
    log_path("guest", cmd, sizeof(cmd));
    ck_assert_ptr_nonnull(f = fopen(cmd, "r"));
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "first=", 6) == 0)
            snprintf(first, sizeof(first), "%.32s", line + 6);
        if (strncmp(line, "second=", 7) == 0)
            snprintf(second, sizeof(second), "%.32s", line + 7);
    }
    fclose(f);
    ck_assert_uint_eq(strlen(first), 32);
    ck_assert_str_eq(first, second);
    /* and it is what the image holds */
    snprintf(image, sizeof(image), "%s/images/disk%u-%u.img", hv.state, a.domid, a.devid);
    snprintf(cmd, sizeof(cmd), "md5sum %s | cut -c1-32", image);
    ck_assert_ptr_nonnull(f = popen(cmd, "r"));
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    pclose(f);
    ck_assert_int_eq(strncmp(line, first, 32), 0);
}
END_TEST

/*
 * --blk-poll-us: the worker polls the rings after each request, with the
 * request event held back, and then arms it before sleeping.  The guest
 * writes 1 MiB and reads it back through it, twice, the second time
 * after the worker has slept: every byte is what the image holds, and
 * the worker's stats lines count what it served.
 */
START_TEST(test_blk_poll_serves_every_request)
{
    struct hvw_dominfo dd = dom_up("drv"), g = dom_up("guest");
    struct bhxb_dev a = dev("vbd", "vbd", g.domid, dd.domid, 51712);
    char bin[512], image[700], cmd[800], line[256] = "", sum[2][64] = {"", ""};
    char *argv[] = {bin, "--blk-poll-us", "200", NULL};
    FILE *f;

    snprintf(bin, sizeof(bin), "%s/driverdom/bulkhead-drvdom", test_builddir());
    bg_start(&dd, "drvdom", argv);
    add_device(a);
    guest_run(&g, "guest",
              "u='nbd+unix:///?socket=/run/bulkhead-guest/vbd-51712.sock'; "
              "head -c 1048576 /dev/urandom | nbdcopy - \"$u\" || exit 3; "
              "echo sum0=$(nbdcopy \"$u\" - | md5sum | cut -c1-32); sleep 1; "
              "echo sum1=$(nbdcopy \"$u\" - | md5sum | cut -c1-32)");
    wait_log("guest", "sum1=");
    check_stats_logged();
    log_path("guest", cmd, sizeof(cmd));
    ck_assert_ptr_nonnull(f = fopen(cmd, "r"));
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "sum", 3) == 0 && (line[3] == '0' || line[3] == '1') && line[4] == '=')
            snprintf(sum[line[3] - '0'], sizeof(sum[0]), "%.32s", line + 5);
    fclose(f);
    ck_assert_uint_eq(strlen(sum[0]), 32);
    ck_assert_str_eq(sum[0], sum[1]);
    snprintf(image, sizeof(image), "%s/images/disk%u-%u.img", hv.state, a.domid, a.devid);
    snprintf(cmd, sizeof(cmd), "md5sum %s | cut -c1-32", image);
    ck_assert_ptr_nonnull(f = popen(cmd, "r"));
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    pclose(f);
    ck_assert_int_eq(strncmp(line, sum[0], 32), 0);
}
END_TEST

START_TEST(test_startup_errors_name_the_fix)
{
    char bin[512], out[1024] = "";
    int p[2], status;
    ssize_t n;
    pid_t pid;

    snprintf(bin, sizeof(bin), "%s/driverdom/bulkhead-drvdom", test_builddir());
    ck_assert_int_eq(pipe(p), 0);
    if ((pid = fork()) == 0) {
        char *envp[] = {"PATH=/usr/bin:/bin", "XENSTORED_PATH=/nonexistent/xs.sock", NULL};
        dup2(p[1], 2);
        execle(bin, bin, (char *)NULL, envp);
        _exit(127);
    }
    close(p[1]);
    n = read(p[0], out, sizeof(out) - 1);
    out[n > 0 ? n : 0] = '\0';
    close(p[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    ck_assert_msg(strstr(out, "cannot reach XenStore") && strstr(out, "XENSTORED_PATH"), "%s", out);
    ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1); /* one line */
}
END_TEST



/* ---- netback: a hostile frontend against the vif backend, frames through its TAP ---- */

#define VIF_ETHERTYPE 0x88b5 /* IEEE 802 local experimental: nothing else sends it */

/* A vif whose TAP has `queues` queues, with extra backend keys (key, value, ..., NULL). */
static void add_vif(struct bhxb_dev d, unsigned int queues, const char *const *kv)
{
    struct bhxb_layout *l = bhxb_layout_new(&d);
    char image[700];

    ck_assert_ptr_nonnull(l);
    vif_queues = queues;
    register_device(d, image, sizeof(image));
    vif_queues = 1;
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "mac", "00:16:3e:00:00:%02x", d.devid), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_FRONT, "mac", "00:16:3e:00:00:%02x", d.devid), 0);
    for (; kv != NULL && kv[0] != NULL; kv += 2)
        ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, kv[0], "%s", kv[1]), 0);
    ck_assert_int_eq(bhxb_layout_write(xs, l), 0);
    bhxb_layout_free(l);
}

/* The hostile frontend of a vif with nq queues, connected to the driver domain's backend. */
static void vif_connect(struct hst_end *f, struct hst_id *id, struct bhxb_dev d, unsigned int nq)
{
    struct bhxb_paths p = paths_of(d);

    wait_key(p.backend, "state", "2");
    ck_assert_msg(hst_front_init_vif(f, id, &d, nq) == 0, "%s", f->why);
    ck_assert_int_eq(hst_front_publish(f), 0);
    ck_assert_int_eq(hst_state(f, XenbusStateInitialised), 0);
    wait_key(p.backend, "state", "4");
    ck_assert_int_eq(hst_state(f, XenbusStateConnected), 0);
}

/*
 * A packet socket on the vif's TAP (vif<domid>.<devid>) in the driver
 * domain's network namespace: what the backend writes to the TAP is read
 * here, and what is sent here the backend reads from the TAP.
 */
static int tap_socket(const struct hvw_dominfo *dd, struct bhxb_dev d)
{
    char path[64], name[IFNAMSIZ];
    int self, ns, s;
    struct sockaddr_ll a = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};

    snprintf(path, sizeof(path), "/proc/%u/ns/net", dd->pid);
    ck_assert_int_ge(self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), 0);
    ck_assert_int_ge(ns = open(path, O_RDONLY | O_CLOEXEC), 0);
    ck_assert_int_eq(setns(ns, CLONE_NEWNET), 0);
    snprintf(name, sizeof(name), "vif%u.%u", d.domid, d.devid);
    ck_assert_int_ge(s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)), 0);
    ck_assert_msg((a.sll_ifindex = (int)if_nametoindex(name)) > 0, "no %s in the driver domain",
                  name);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(setns(self, CLONE_NEWNET), 0);
    close(self);
    close(ns);
    return s;
}

/* An Ethernet frame of ours: dst, src, VIF_ETHERTYPE, the tag, zero padding to 60 bytes. */
static size_t vif_frame(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], const char *tag)
{
    memset(f, 0, 60);
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = VIF_ETHERTYPE >> 8;
    f[13] = VIF_ETHERTYPE & 0xff;
    memcpy(f + 14, tag, strlen(tag));
    return 60;
}

/* Reads frames off the TAP until one of ours arrives; returns its tag (first seen wins). */
static const char *tap_next(int s)
{
    static char tag[64];
    time_t end = time(NULL) + WAIT_S;
    uint8_t buf[2048];

    for (;;) {
        struct pollfd pf = {.fd = s, .events = POLLIN};
        ssize_t n;

        ck_assert_msg(time(NULL) < end, "no frame of ours on the TAP after %d s; logs:%s", WAIT_S,
                      logs());
        if (poll(&pf, 1, 1000) != 1)
            continue;
        ck_assert_int_gt(n = recv(s, buf, sizeof(buf), 0), 0);
        if (n >= 60 && buf[12] == VIF_ETHERTYPE >> 8 && buf[13] == (VIF_ETHERTYPE & 0xff)) {
            snprintf(tag, sizeof(tag), "%.40s", (const char *)buf + 14);
            return tag;
        }
    }
}

/* Waits until ring r's rsp_prod reaches want; returns it. */
static uint32_t vif_wait_rsp(struct hst_end *f, unsigned int r, uint32_t want)
{
    time_t end = time(NULL) + WAIT_S;
    uint32_t got;

    while ((int32_t)((got = hst_idx_get(&f->ring[r], HST_RSP_PROD)) - want) < 0) {
        ck_assert_msg(time(NULL) < end, "ring %u: %u responses, not %u, after %d s; logs:%s", r,
                      got, want, WAIT_S, logs());
        hst_events(f);
        nap();
    }
    return got;
}

/* Puts one single-slot TX request for page gref (len bytes) on queue q and notifies. */
static void vif_tx(struct hst_end *f, unsigned int q, uint16_t id, uint32_t gref, uint16_t len)
{
    struct netif_tx_request req = {.gref = gref, .offset = 0, .flags = 0, .id = id, .size = len};

    ck_assert_int_eq(hst_produce(f, 2 * q, &req, sizeof(req), 1, true), 0);
}

static struct netif_tx_response vif_tx_rsp(struct hst_end *f, unsigned int q, uint32_t idx)
{
    struct netif_tx_response r;

    ck_assert_int_eq(hst_slot_read(&f->ring[2 * q], idx, &r, sizeof(r)), 0);
    return r;
}

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/*
 * Waits for a frame of ours tagged `tag` in queue 0's RX buffers (the 8
 * pages rx[], posted with ids 0..7 once, before any response): every
 * response from the ring's first is looked at - ours may be answered
 * before this is called - and every buffer that came back with another
 * frame (the driver domain's stack talks on the TAP too) is posted again,
 * so the frames before ours cannot use them all up.
 */
static void vif_rx_find(struct hst_end *f, uint8_t *const *rx, const uint32_t *rxref,
                        const char *tag)
{
    uint32_t seen = 0, n;

    for (;;) {
        n = vif_wait_rsp(f, 1, seen + 1);
        for (; seen != n; seen++) {
            struct netif_rx_response r;
            struct netif_rx_request req;

            ck_assert_int_eq(hst_slot_read(&f->ring[1], seen, &r, sizeof(r)), 0);
            ck_assert_uint_lt(r.id, 8);
            if (r.status == 60 && r.offset == 0 && rx[r.id][12] == VIF_ETHERTYPE >> 8 &&
                rx[r.id][13] == (VIF_ETHERTYPE & 0xff) &&
                memcmp(rx[r.id] + 14, tag, strlen(tag)) == 0)
                return;
            req = (struct netif_rx_request){.id = r.id, .gref = rxref[r.id]};
            ck_assert_int_eq(hst_produce(f, 1, &req, sizeof(req), 1, true), 0);
        }
    }
}

START_TEST(test_vif_publishes_what_it_serves)
{
    struct hvw_dominfo dd = dom_up("drv"), fe = dom_up("fe");
    struct bhxb_dev d = dev("vif", "vif", fe.domid, dd.domid, 0);
    struct bhxb_paths p = paths_of(d);
    static const char *const want[] = {
        "feature-rx-copy", "1", "feature-rx-flip", "0", "feature-sg", "1",
        "feature-gso-tcpv4", "1", "feature-gso-tcpv6", "1", "feature-ipv6-csum-offload", "1",
        "feature-split-event-channels", "1", "feature-multicast-control", "1",
        "feature-dynamic-multicast-control", "1", "feature-ctrl-ring", "1",
        "multi-queue-max-queues", "2", "hotplug-status", "connected", NULL};

    drvdom_start(&dd, "drvdom");
    add_vif(d, 2, NULL); /* a TAP of 2 queues caps the 4 we would offer */
    wait_key(p.backend, "state", "2");
    for (const char *const *kv = want; kv[0] != NULL; kv += 2)
        ck_assert_msg(strcmp(key(p.backend, kv[0]), kv[1]) == 0, "%s is '%s', not '%s'", kv[0],
                      key(p.backend, kv[0]), kv[1]);
}
END_TEST

/*
 * A frame put on the TX ring comes out of the TAP, answered OKAY; one sent
 * into the TAP lands in an RX buffer, described by its response.  A frame
 * from another MAC is answered OKAY too but never reaches the TAP, and is
 * counted.
 */
START_TEST(test_vif_frames_both_ways_and_spoofing_dropped)
{
    struct hvw_dominfo dd = dom_up("drv"), fe = dom_up("fe");
    struct bhxb_dev d = dev("vif", "vif", fe.domid, dd.domid, 0);
    static const uint8_t mine[6] = {0x00, 0x16, 0x3e, 0, 0, 0}, other[6] = {0x00, 0x16, 0x3e, 0, 0, 0x99};
    struct hst_id id;
    struct hst_end f;
    uint8_t *tx, *rx[8], frame[60];
    uint32_t txref, rxref[8];
    int s;

    drvdom_start(&dd, "drvdom");
    ck_assert_int_eq(hst_id_open(&id, fe.uid), 0);
    add_vif(d, 1, NULL);
    vif_connect(&f, &id, d, 1);
    s = tap_socket(&dd, d);

    /* TX: a spoofed frame first, then an honest one: only the honest one comes out. */
    ck_assert_ptr_nonnull(tx = hst_grant(&f, 1, false, &txref));
    vif_frame(tx, bcast, other, "spoofed");
    vif_tx(&f, 0, 7, txref, 60);
    vif_wait_rsp(&f, 0, 1);
    ck_assert_int_eq(vif_tx_rsp(&f, 0, 0).id, 7);
    ck_assert_int_eq(vif_tx_rsp(&f, 0, 0).status, NETIF_RSP_OKAY);
    vif_frame(tx, bcast, mine, "honest");
    vif_tx(&f, 0, 8, txref, 60);
    vif_wait_rsp(&f, 0, 2);
    ck_assert_int_eq(vif_tx_rsp(&f, 0, 1).id, 8);
    ck_assert_int_eq(vif_tx_rsp(&f, 0, 1).status, NETIF_RSP_OKAY);
    /* The TAP is a queue in order: the spoofed frame, if written, would come first. */
    ck_assert_str_eq(tap_next(s), "honest");
    wait_log("drvdom", "sent 1, dropped 0, spoofed 1");

    /* RX: buffers posted, then a frame into the TAP. */
    for (uint16_t i = 0; i < 8; i++) {
        struct netif_rx_request req = {.id = i};

        ck_assert_ptr_nonnull(rx[i] = hst_grant(&f, 1, true, &rxref[i]));
        req.gref = rxref[i];
        ck_assert_int_eq(hst_produce(&f, 1, &req, sizeof(req), 1, i == 7), 0);
    }
    vif_frame(frame, mine, other, "into the guest");
    ck_assert_int_eq(send(s, frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
    /* Other frames may come first (the stack's own, queued in the TAP since it came up). */
    vif_rx_find(&f, rx, rxref, "into the guest");
    ck_assert_str_eq(key(paths_of(d).backend, "state"), "4");
    close(s);
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST

/* With ip=, IPv4 from another address is dropped, from ours sent. */
START_TEST(test_vif_ip_antispoof)
{
    struct hvw_dominfo dd = dom_up("drv"), fe = dom_up("fe");
    struct bhxb_dev d = dev("vif", "vif", fe.domid, dd.domid, 0);
    static const char *const kv[] = {"ip", "10.9.8.7 10.9.8.6", NULL};
    static const uint8_t mine[6] = {0x00, 0x16, 0x3e, 0, 0, 0};
    struct hst_id id;
    struct hst_end f;
    uint8_t *tx;
    uint32_t txref;
    int s;

    drvdom_start(&dd, "drvdom");
    ck_assert_int_eq(hst_id_open(&id, fe.uid), 0);
    add_vif(d, 1, kv);
    vif_connect(&f, &id, d, 1);
    s = tap_socket(&dd, d);
    ck_assert_ptr_nonnull(tx = hst_grant(&f, 1, false, &txref));
    /* An IPv4 header (protocol 253, experimental) from 10.9.8.5: not ours. */
    for (int i = 0; i < 3; i++) {
        static const uint8_t src[3][4] = {{10, 9, 8, 5}, {10, 9, 8, 6}, {10, 9, 8, 7}};

        vif_frame(tx, bcast, mine, "");
        tx[12] = 0x08;
        tx[13] = 0x00;
        tx[14] = 0x45;
        tx[17] = 46; /* total length */
        tx[22] = 64;
        tx[23] = 253;
        memcpy(tx + 26, src[i], 4);
        memcpy(tx + 30, "\x0a\x09\x08\x01", 4);
        vif_tx(&f, 0, (uint16_t)i, txref, 60);
        vif_wait_rsp(&f, 0, (uint32_t)i + 1);
        ck_assert_int_eq(vif_tx_rsp(&f, 0, (uint32_t)i).status, NETIF_RSP_OKAY);
    }
    /* The first to reach the TAP is from 10.9.8.6: the one before it was dropped. */
    {
        time_t end = time(NULL) + WAIT_S;
        uint8_t buf[2048];
        ssize_t n;

        for (;;) {
            struct pollfd pf = {.fd = s, .events = POLLIN};

            ck_assert_msg(time(NULL) < end, "no IPv4 frame of ours on the TAP; logs:%s", logs());
            if (poll(&pf, 1, 1000) != 1)
                continue;
            n = recv(s, buf, sizeof(buf), 0);
            if (n >= 34 && buf[12] == 0x08 && buf[13] == 0 && buf[23] == 253)
                break;
        }
        ck_assert_uint_eq(buf[29], 6);
    }
    wait_log("drvdom", "sent 2, dropped 0, spoofed 1");
    close(s);
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST

/* Two queues: a frame on each queue's TX ring comes out of the TAP. */
START_TEST(test_vif_two_queues)
{
    struct hvw_dominfo dd = dom_up("drv"), fe = dom_up("fe");
    struct bhxb_dev d = dev("vif", "vif", fe.domid, dd.domid, 0);
    static const uint8_t mine[6] = {0x00, 0x16, 0x3e, 0, 0, 0};
    struct hst_id id;
    struct hst_end f;
    uint8_t *tx[2];
    uint32_t txref[2];
    int s;
    bool seen[2] = {false, false};

    drvdom_start(&dd, "drvdom");
    ck_assert_int_eq(hst_id_open(&id, fe.uid), 0);
    add_vif(d, 2, NULL);
    vif_connect(&f, &id, d, 2);
    s = tap_socket(&dd, d);
    for (unsigned int q = 0; q < 2; q++) {
        ck_assert_ptr_nonnull(tx[q] = hst_grant(&f, 1, false, &txref[q]));
        vif_frame(tx[q], bcast, mine, q == 0 ? "queue 0" : "queue 1");
        vif_tx(&f, q, (uint16_t)(10 + q), txref[q], 60);
    }
    for (unsigned int q = 0; q < 2; q++) {
        vif_wait_rsp(&f, 2 * q, 1);
        ck_assert_int_eq(vif_tx_rsp(&f, q, 0).id, 10 + q);
        ck_assert_int_eq(vif_tx_rsp(&f, q, 0).status, NETIF_RSP_OKAY);
    }
    while (!seen[0] || !seen[1]) {
        const char *t = tap_next(s);

        ck_assert(strcmp(t, "queue 0") == 0 || strcmp(t, "queue 1") == 0);
        seen[t[6] - '0'] = true;
    }
    ck_assert(log_has("drvdom", "connected: 2 queues"));
    close(s);
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST

/* ---- the control ring ---- */

/* One control request on ring c: written, notified, answered; returns the status. */
static uint32_t vif_ctrl(struct hst_end *f, struct hst_ring *c, int port, uint16_t type,
                         uint32_t a, uint32_t b, uint32_t cc, uint32_t *data)
{
    uint32_t at = hst_idx_get(c, HST_REQ_PROD);
    struct xen_netif_ctrl_request r = {(uint16_t)(at + 100), type, {a, b, cc}};
    struct xen_netif_ctrl_response rsp;
    time_t end = time(NULL) + WAIT_S;

    ck_assert_int_eq(hst_slot_write(c, at, &r, sizeof(r)), 0);
    hst_idx_set(c, HST_REQ_PROD, at + 1);
    ck_assert_int_eq(bhevtchn_notify(f->id->ev, (bh_evtchn_port_t)port), 0);
    while ((int32_t)(hst_idx_get(c, HST_RSP_PROD) - (at + 1)) < 0) {
        ck_assert_msg(time(NULL) < end, "control request %u unanswered after %d s; logs:%s", at,
                      WAIT_S, logs());
        hst_events(f);
        nap();
    }
    ck_assert_int_eq(hst_slot_read(c, at, &rsp, sizeof(rsp)), 0);
    ck_assert_uint_eq(rsp.id, r.id);
    ck_assert_uint_eq(rsp.type, type);
    if (data != NULL)
        *data = rsp.data;
    return rsp.status;
}

/* An RX queue's 8 buffers (ids 0..7), posted once; what came back is posted again. */
struct vif_rxq {
    unsigned int q;
    uint8_t *page[8];
    uint32_t ref[8];
    uint16_t slot_id[256]; /* the id of the request posted in each slot */
    uint32_t seen;
};

static void vif_rxq_post(struct hst_end *f, struct vif_rxq *b, uint16_t id)
{
    struct netif_rx_request req = {.id = id, .gref = b->ref[id]};

    b->slot_id[hst_idx_get(&f->ring[2 * b->q + 1], HST_REQ_PROD) % 256] = id;
    ck_assert_int_eq(hst_produce(f, 2 * b->q + 1, &req, sizeof(req), 1, true), 0);
}

static void vif_rxq_init(struct hst_end *f, struct vif_rxq *b, unsigned int q)
{
    memset(b, 0, sizeof(*b));
    b->q = q;
    for (uint16_t i = 0; i < 8; i++) {
        ck_assert_ptr_nonnull(b->page[i] = hst_grant(f, 1, true, &b->ref[i]));
        vif_rxq_post(f, b, i);
    }
}

/*
 * Waits on queue b->q for the IPv4 frame whose TCP payload starts with
 * tag, skipping (and giving back the buffers of) every other frame; returns
 * the hash its HASH extra carried (asserted present).
 */
static uint32_t vif_rxq_find(struct hst_end *f, struct vif_rxq *b, const char *tag)
{
    unsigned int r = 2 * b->q + 1;

    for (;;) {
        uint32_t n = vif_wait_rsp(f, r, b->seen + 1);

        while (b->seen != n) {
            struct netif_rx_response rsp;
            struct netif_extra_info ex = {0};
            uint16_t id = b->slot_id[b->seen % 256];
            bool extra, ours;

            ck_assert_int_eq(hst_slot_read(&f->ring[r], b->seen, &rsp, sizeof(rsp)), 0);
            ck_assert_uint_eq(rsp.id, id);
            extra = rsp.flags & NETRXF_extra_info;
            ours = rsp.status > 54 && b->page[id][12] == 0x08 && b->page[id][13] == 0 &&
                   memcmp(b->page[id] + 54, tag, strlen(tag)) == 0;
            if (extra) {
                n = vif_wait_rsp(f, r, b->seen + 2);
                ck_assert_int_eq(hst_slot_read(&f->ring[r], b->seen + 1, &ex, sizeof(ex)), 0);
                vif_rxq_post(f, b, b->slot_id[(b->seen + 1) % 256]);
            }
            vif_rxq_post(f, b, id);
            b->seen += extra ? 2 : 1;
            if (!ours)
                continue;
            ck_assert_msg(extra && ex.type == XEN_NETIF_EXTRA_TYPE_HASH,
                          "our frame came without a HASH extra");
            ck_assert_uint_eq(ex.u.hash.algorithm, XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ);
            ck_assert_uint_eq(ex.u.hash.type, _XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP);
            return (uint32_t)ex.u.hash.value[0] | (uint32_t)ex.u.hash.value[1] << 8 |
                   (uint32_t)ex.u.hash.value[2] << 16 | (uint32_t)ex.u.hash.value[3] << 24;
        }
    }
}

/*
 * Microsoft's first RSS vector as a frame into the TAP: 66.9.149.187:2794
 * to 161.142.100.80:1766, TCP, the tag as its payload.
 */
static void vif_send_vector(int s, const char *tag)
{
    static const uint8_t mine[6] = {0x00, 0x16, 0x3e, 0, 0, 0}, other[6] = {2, 0, 0, 0, 0, 1};
    uint8_t fr[96] = {0};

    memcpy(fr, mine, 6);
    memcpy(fr + 6, other, 6);
    fr[12] = 0x08;
    fr[14] = 0x45;
    fr[17] = (uint8_t)(sizeof(fr) - 14);
    fr[22] = 64;
    fr[23] = 6;
    memcpy(fr + 26, "\x42\x09\x95\xbb\xa1\x8e\x64\x50", 8);
    memcpy(fr + 34, "\x0a\xea\x06\xe6", 4); /* ports 2794, 1766 */
    fr[46] = 0x50;
    memcpy(fr + 54, tag, strlen(tag));
    ck_assert_int_eq(send(s, fr, sizeof(fr), 0), (ssize_t)sizeof(fr));
}

/*
 * The control ring: the frontend chooses Toeplitz, the key of Microsoft's
 * RSS vectors and a mapping table; a frame's RX queue is then the table's
 * (whichever TAP queue the kernel gave it to), and its hash - the vector's
 * - comes in a HASH extra.  A table naming a queue the vif lacks is
 * refused and changes nothing; a lie on the ring loses the vif only.  The
 * driver domain polls 500 us after each burst (--net-poll-us), so that the
 * poll's path serves all of it.
 */
START_TEST(test_vif_ctrl_ring_steers_rx)
{
    static const uint8_t rsskey[40] = {
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
        0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
        0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
    struct hvw_dominfo dd = dom_up("drv"), fe = dom_up("fe");
    struct bhxb_dev d = dev("vif", "vif", fe.domid, dd.domid, 0);
    struct bhxb_paths p = paths_of(d);
    struct hst_ring c = {.type = &bhring_netif_ctrl, .order = 0, .npages = 1,
                         .nr_ents = __CONST_RING_SIZE(xen_netif_ctrl, 4096),
                         .ent_size = sizeof(struct xen_netif_ctrl_request)};
    struct hst_id id;
    struct hst_end f;
    struct vif_rxq b0, b1;
    uint8_t *kpage, *mpage, *cpage;
    uint32_t kref, mref, v = 0;
    int cport, s;
    char bin[512];
    char *argv[] = {bin, "--net-poll-us", "500", NULL};

    snprintf(bin, sizeof(bin), "%s/driverdom/bulkhead-drvdom", test_builddir());
    bg_start(&dd, "drvdom", argv);
    ck_assert_int_eq(hst_id_open(&id, fe.uid), 0);
    add_vif(d, 2, NULL);
    wait_key(p.backend, "state", "2");
    ck_assert_str_eq(key(p.backend, "feature-ctrl-ring"), "1");
    ck_assert_msg(hst_front_init_vif(&f, &id, &d, 2) == 0, "%s", f.why);
    ck_assert_ptr_nonnull(cpage = hst_grant(&f, 1, true, c.refs));
    c.sh = cpage;
    hst_idx_set(&c, HST_REQ_EVENT, 1);
    hst_idx_set(&c, HST_RSP_EVENT, 1);
    ck_assert_int_ge(cport = bhevtchn_bind_unbound_port(id.ev, dd.domid), 0);
    ck_assert_int_eq(hst_front_publish(&f), 0);
    ck_assert_int_eq(hst_set(&f, "ctrl-ring-ref", "%u", c.refs[0]), 0);
    ck_assert_int_eq(hst_set(&f, "event-channel-ctrl", "%d", cport), 0);
    ck_assert_int_eq(hst_state(&f, XenbusStateInitialised), 0);
    wait_key(p.backend, "state", "4");
    ck_assert_int_eq(hst_state(&f, XenbusStateConnected), 0);
    wait_log("drvdom", "control ring 1");

    ck_assert_ptr_nonnull(kpage = hst_grant(&f, 1, false, &kref));
    ck_assert_ptr_nonnull(mpage = hst_grant(&f, 1, false, &mref));
    memcpy(kpage, rsskey, sizeof(rsskey));
    ck_assert_uint_eq(vif_ctrl(&f, &c, cport, XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS, 0, 0, 0, &v),
                      XEN_NETIF_CTRL_STATUS_SUCCESS);
    ck_assert_uint_eq(v, 0xf);
    ck_assert_uint_eq(vif_ctrl(&f, &c, cport, XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM,
                               XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ, 0, 0, NULL),
                      XEN_NETIF_CTRL_STATUS_SUCCESS);
    ck_assert_uint_eq(vif_ctrl(&f, &c, cport, XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS, 0xf, 0, 0, NULL),
                      XEN_NETIF_CTRL_STATUS_SUCCESS);
    ck_assert_uint_eq(vif_ctrl(&f, &c, cport, XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, kref, 41, 0, NULL),
                      XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW);
    ck_assert_uint_eq(vif_ctrl(&f, &c, cport, XEN_NETIF_CTRL_TYPE_SET_HASH_KEY, kref, 40, 0, NULL),
                      XEN_NETIF_CTRL_STATUS_SUCCESS);
    ck_assert_uint_eq(vif_ctrl(&f, &c, cport, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE, 16, 0, 0,
                               NULL),
                      XEN_NETIF_CTRL_STATUS_SUCCESS);
    /* Queue 2 of a 2-queue vif: refused. */
    for (unsigned int i = 0; i < 16; i++)
        memcpy(mpage + 4 * i, &(uint32_t){2}, 4);
    ck_assert_uint_eq(vif_ctrl(&f, &c, cport, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, mref, 16, 0,
                               NULL),
                      XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER);
    /* Every flow to queue 1. */
    for (unsigned int i = 0; i < 16; i++)
        memcpy(mpage + 4 * i, &(uint32_t){1}, 4);
    ck_assert_uint_eq(vif_ctrl(&f, &c, cport, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, mref, 16, 0,
                               NULL),
                      XEN_NETIF_CTRL_STATUS_SUCCESS);

    vif_rxq_init(&f, &b0, 0);
    vif_rxq_init(&f, &b1, 1);
    s = tap_socket(&dd, d);
    vif_send_vector(s, "to queue 1");
    ck_assert_uint_eq(vif_rxq_find(&f, &b1, "to queue 1"), 0x51ccc178);
    /* Now every flow to queue 0: the same flow, from the same TAP queue, lands there. */
    for (unsigned int i = 0; i < 16; i++)
        memcpy(mpage + 4 * i, &(uint32_t){0}, 4);
    ck_assert_uint_eq(vif_ctrl(&f, &c, cport, XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING, mref, 16, 0,
                               NULL),
                      XEN_NETIF_CTRL_STATUS_SUCCESS);
    vif_send_vector(s, "to queue 0");
    ck_assert_uint_eq(vif_rxq_find(&f, &b0, "to queue 0"), 0x51ccc178);

    /* A producer index a ring ahead of the responses: the vif is lost, the worker says why. */
    hst_idx_set(&c, HST_REQ_PROD, hst_idx_get(&c, HST_RSP_PROD) + 5000);
    ck_assert_int_eq(bhevtchn_notify(id.ev, (bh_evtchn_port_t)cport), 0);
    wait_key(p.backend, "state", "5");
    wait_log("drvdom", "lied on the control ring");
    close(s);
    bhevtchn_unbind(id.ev, (bh_evtchn_port_t)cport);
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST

/*
 * A worker killed between two frames: the new one goes on from the kept
 * indices - the first TX slot is not answered (nor sent) again, and RX
 * buffers posted before the kill are still there for a frame after it.
 */
START_TEST(test_vif_worker_restart_keeps_the_rings)
{
    struct hvw_dominfo dd = dom_up("drv"), fe = dom_up("fe");
    struct bhxb_dev d = dev("vif", "vif", fe.domid, dd.domid, 0);
    static const uint8_t mine[6] = {0x00, 0x16, 0x3e, 0, 0, 0}, other[6] = {2, 0, 0, 0, 0, 1};
    struct hst_id id;
    struct hst_end f;
    uint8_t *tx, *rx[8], frame[60];
    uint32_t txref, rxref[8];
    char wcomm[16];
    pid_t worker;
    int s;

    drvdom_start(&dd, "drvdom");
    ck_assert_int_eq(hst_id_open(&id, fe.uid), 0);
    add_vif(d, 1, NULL);
    vif_connect(&f, &id, d, 1);
    s = tap_socket(&dd, d);
    ck_assert_ptr_nonnull(tx = hst_grant(&f, 1, false, &txref));
    vif_frame(tx, bcast, mine, "before");
    vif_tx(&f, 0, 1, txref, 60);
    vif_wait_rsp(&f, 0, 1);
    ck_assert_str_eq(tap_next(s), "before");
    for (uint16_t i = 0; i < 8; i++) {
        struct netif_rx_request req = {.id = i};

        ck_assert_ptr_nonnull(rx[i] = hst_grant(&f, 1, true, &rxref[i]));
        req.gref = rxref[i];
        ck_assert_int_eq(hst_produce(&f, 1, &req, sizeof(req), 1, i == 7), 0);
    }

    snprintf(wcomm, sizeof(wcomm), "bhw-%u-0", fe.domid);
    ck_assert_int_ne(worker = find_proc(dd.uid, wcomm), 0);
    ck_assert_int_eq(kill(worker, SIGKILL), 0);
    wait_proc(dd.uid, wcomm, worker, false);
    wait_log("drvdom", "resumed: tx-ring-ref");
    wait_log("drvdom", "TX at 1");

    vif_frame(tx, bcast, mine, "after");
    vif_tx(&f, 0, 2, txref, 60);
    vif_wait_rsp(&f, 0, 2);
    ck_assert_int_eq(vif_tx_rsp(&f, 0, 1).id, 2);
    /* The first frame out after the restart is the new one: the old slot was not sent again. */
    ck_assert_str_eq(tap_next(s), "after");
    vif_frame(frame, mine, other, "after the kill");
    ck_assert_int_eq(send(s, frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
    vif_rx_find(&f, rx, rxref, "after the kill");
    ck_assert_uint_eq(hst_idx_get(&f.ring[0], HST_RSP_PROD), 2);
    ck_assert_str_eq(key(paths_of(d).backend, "state"), "4");
    close(s);
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST

/* A bad key from the toolstack (mac=, ip=, rate=, mtu=) fails its vif at probe, naming it. */
START_TEST(test_vif_bad_backend_keys)
{
    struct hvw_dominfo dd = dom_up("drv"), fe = dom_up("fe");
    static const struct {
        const char *kv[3];
        const char *why;
    } bad[] = {
        {{"rate", "12abc", NULL}, "backend key rate"},
        {{"rate", "100,0", NULL}, "backend key rate"},
        {{"ip", "10.0.0.300", NULL}, "backend key ip"},
        {{"mtu", "40", NULL}, "backend key mtu"},
    };
    const unsigned int n = sizeof(bad) / sizeof(bad[0]);

    drvdom_start(&dd, "drvdom");
    for (unsigned int i = 0; i < n; i++)
        add_vif(dev("vif", "vif", fe.domid, dd.domid, i), 1, bad[i].kv);
    for (unsigned int i = 0; i < n; i++)
        wait_failed(dev("vif", "vif", fe.domid, dd.domid, i), bad[i].why);
}
END_TEST

/*
 * rate=60,1000000000: 60 bytes per 1000 s.  The first 60-byte frame goes;
 * the second waits on the ring, unanswered, for a window that does not
 * come during the test, and the throttling is counted.
 */
START_TEST(test_vif_rate_limits_tx)
{
    struct hvw_dominfo dd = dom_up("drv"), fe = dom_up("fe");
    struct bhxb_dev d = dev("vif", "vif", fe.domid, dd.domid, 0);
    static const char *const kv[] = {"rate", "60,1000000000", NULL};
    static const uint8_t mine[6] = {0x00, 0x16, 0x3e, 0, 0, 0};
    struct hst_id id;
    struct hst_end f;
    uint8_t *tx[2];
    uint32_t ref[2];
    int s;

    drvdom_start(&dd, "drvdom");
    ck_assert_int_eq(hst_id_open(&id, fe.uid), 0);
    add_vif(d, 1, kv);
    vif_connect(&f, &id, d, 1);
    s = tap_socket(&dd, d);
    for (unsigned int i = 0; i < 2; i++) {
        ck_assert_ptr_nonnull(tx[i] = hst_grant(&f, 1, false, &ref[i]));
        vif_frame(tx[i], bcast, mine, i == 0 ? "first" : "second");
        vif_tx(&f, 0, (uint16_t)i, ref[i], 60);
    }
    vif_wait_rsp(&f, 0, 1);
    ck_assert_str_eq(tap_next(s), "first");
    wait_log("drvdom", "sent 1, dropped 0, spoofed 0, throttled 1");
    ck_assert_uint_eq(hst_idx_get(&f.ring[0], HST_RSP_PROD), 1);
    ck_assert_str_eq(key(paths_of(d).backend, "state"), "4");
    close(s);
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST

/*
 * XSA-392 with --rx-stall-ms 200: a frontend that posts no RX buffer has
 * its queue stalled (frames from the TAP dropped and counted) instead of
 * the driver domain holding them; the vif itself stays connected.
 */
START_TEST(test_vif_rx_stall_without_buffers)
{
    struct hvw_dominfo dd = dom_up("drv"), fe = dom_up("fe");
    struct bhxb_dev d = dev("vif", "vif", fe.domid, dd.domid, 0);
    static const uint8_t mine[6] = {0x00, 0x16, 0x3e, 0, 0, 0}, other[6] = {2, 0, 0, 0, 0, 1};
    char bin[512];
    char *argv[] = {bin, "--rx-stall-ms", "200", NULL};
    struct hst_id id;
    struct hst_end f;
    uint8_t frame[60];
    int s;

    snprintf(bin, sizeof(bin), "%s/driverdom/bulkhead-drvdom", test_builddir());
    bg_start(&dd, "drvdom", argv);
    ck_assert_int_eq(hst_id_open(&id, fe.uid), 0);
    add_vif(d, 1, NULL);
    vif_connect(&f, &id, d, 1);
    s = tap_socket(&dd, d);
    vif_frame(frame, mine, other, "nobody takes it");
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(send(s, frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
    wait_log("drvdom", "stalls 1");
    ck_assert_uint_eq(hst_idx_get(&f.ring[1], HST_RSP_PROD), 0);
    ck_assert_str_eq(key(paths_of(d).backend, "state"), "4");
    close(s);
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST

/* Each bad frontend key loses its own vif, and only it. */
START_TEST(test_vif_bad_keys_lose_only_their_vif)
{
    struct hvw_dominfo dd = dom_up("drv"), g = dom_up("guest"), evil = dom_up("evil");
    struct bhxb_dev good = dev("vif", "vif", g.domid, dd.domid, 0);
    static const char *const base[] = {"tx-ring-ref", "1", "rx-ring-ref", "2", "event-channel",
                                       "5", NULL};
    static const struct {
        const char *kv[10];
        const char *why;
    } lies[] = {
        {{"request-rx-copy", "0", "feature-rx-notify", "1", NULL}, "request-rx-copy"},
        {{"request-rx-copy", "1", NULL}, "feature-rx-notify"},
        {{"request-rx-copy", "1", "feature-rx-notify", "1", "feature-sg", "2", NULL}, "feature-sg"},
        {{"request-rx-copy", "1", "feature-rx-notify", "1", "multi-queue-num-queues", "3", NULL},
         "multi-queue-num-queues is 3"},
        {{"request-rx-copy", "1", "feature-rx-notify", "1", "feature-gso-tcpv4", "1", NULL},
         "without feature-sg"},
        {{"request-rx-copy", "1", "feature-rx-notify", "1", "event-channel-tx", "6", NULL},
         "event-channel-rx"},
        {{"request-rx-copy", "1", "feature-rx-notify", "1", "ctrl-ring-ref", "9", NULL},
         "event-channel-ctrl: missing"},
        {{"request-rx-copy", "1", "feature-rx-notify", "1", "event-channel-ctrl", "7", NULL},
         "ctrl-ring-ref: missing"},
        {{"request-rx-copy", "1", "feature-rx-notify", "1", "ctrl-ring-ref", "9",
          "event-channel-ctrl", "x7", NULL},
         "event-channel-ctrl"},
    };
    const unsigned int nlies = sizeof(lies) / sizeof(lies[0]);

    drvdom_start(&dd, "drvdom");
    guest_start(&g, "guest");
    add_device(good);
    wait_connected(good);
    for (unsigned int i = 0; i < nlies; i++)
        add_vif(dev("vif", "vif", evil.domid, dd.domid, i), 1, NULL);
    for (unsigned int i = 0; i < nlies; i++) {
        const char *kv[16];
        unsigned int n = 0;

        for (const char *const *p = base; *p != NULL; p++)
            kv[n++] = *p;
        for (const char *const *p = lies[i].kv; *p != NULL; p++)
            kv[n++] = *p;
        kv[n] = NULL;
        lie(dev("vif", "vif", evil.domid, dd.domid, i), kv);
    }
    for (unsigned int i = 0; i < nlies; i++)
        wait_failed(dev("vif", "vif", evil.domid, dd.domid, i), lies[i].why);
    ck_assert_str_eq(key(paths_of(good).backend, "state"), "4");
    ck_assert_str_eq(key(paths_of(good).frontend, "state"), "4");
}
END_TEST

/* A lie on the TX ring (req_prod a ring and more ahead) loses that vif only. */
START_TEST(test_vif_ring_lie_loses_only_its_vif)
{
    struct hvw_dominfo dd = dom_up("drv"), g = dom_up("guest"), evil = dom_up("evil");
    struct bhxb_dev good = dev("vif", "vif", g.domid, dd.domid, 0);
    struct bhxb_dev bad = dev("vif", "vif", evil.domid, dd.domid, 0);
    struct hst_id id;
    struct hst_end f;

    drvdom_start(&dd, "drvdom");
    guest_start(&g, "guest");
    add_device(good);
    wait_connected(good);
    ck_assert_int_eq(hst_id_open(&id, evil.uid), 0);
    add_vif(bad, 1, NULL);
    vif_connect(&f, &id, bad, 1);
    hst_idx_set(&f.ring[0], HST_REQ_PROD, f.ring[0].nr_ents + 1);
    ck_assert_int_eq(hst_notify(&f), 0);
    wait_failed(bad, "the frontend lied");
    ck_assert_str_eq(key(paths_of(good).backend, "state"), "4");
    ck_assert_str_eq(key(paths_of(good).frontend, "state"), "4");
    hst_end_close(&f);
    hst_id_close(&id);
}
END_TEST
int main(void)
{
    Suite *s = suite_create("drvdom");
    TCase *tc = tcase_create("drvdom");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_every_kind_connects);
    tcase_add_test(tc, test_second_guest_same_driver_domain);
    tcase_add_test(tc, test_detach_closes_and_keeper_exits);
    tcase_add_test(tc, test_worker_killed_comes_back_unseen);
    tcase_add_test(tc, test_lying_frontend_loses_only_its_device);
    tcase_add_test(tc, test_lying_queue_keys_lose_only_their_device);
    tcase_add_test(tc, test_lie_on_queue_1_of_2_loses_only_its_device);
    tcase_add_test(tc, test_worker_killed_with_2_queues_in_flight);
    tcase_add_test(tc, test_upgrade_with_2_queues_in_flight);
    tcase_add_test(tc, test_upgrade_refused_layout_keeps_the_worker);
    tcase_add_test(tc, test_keeper_socket_garbage_keeps_the_worker);
    tcase_add_test(tc, test_dom0_serves_a_dom0_device);
    tcase_add_test(tc, test_guest_runs_its_workload_then_closes);
    tcase_add_test(tc, test_startup_errors_name_the_fix);
    tcase_add_test(tc, test_geometry_and_resize_without_a_request);
    tcase_add_test(tc, test_idle_grants_unmapped_and_mapped_again);
    tcase_add_test(tc, test_blk_poll_serves_every_request);
    tcase_add_test(tc, test_vif_publishes_what_it_serves);
    tcase_add_test(tc, test_vif_frames_both_ways_and_spoofing_dropped);
    tcase_add_test(tc, test_vif_ip_antispoof);
    tcase_add_test(tc, test_vif_two_queues);
    tcase_add_test(tc, test_vif_ctrl_ring_steers_rx);
    tcase_add_test(tc, test_vif_worker_restart_keeps_the_rings);
    tcase_add_test(tc, test_vif_bad_keys_lose_only_their_vif);
    tcase_add_test(tc, test_vif_ring_lie_loses_only_its_vif);
    tcase_add_test(tc, test_vif_bad_backend_keys);
    tcase_add_test(tc, test_vif_rate_limits_tx);
    tcase_add_test(tc, test_vif_rx_stall_without_buffers);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
