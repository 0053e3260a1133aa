/*
 * check_broker.c - the broker in bulkhead-hv end to end: a daemon of its own
 * per test, real domains, brkprobe asking for fds from inside them, the
 * toolstack's hvc_brk_* registering, and the kernel's view of the result
 * (ip(8) inside the domains' namespaces, UDP across a bridge).  Needs root.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dombuild.h"
#include "hvwire.h"
#include "testutil.h"
#include "toolstack.h"

/* What toolstack/hvclient.c and hvbroker.c take from bulkhead.c. */
const char *state_dir;
void errorf(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static struct test_hv hv;
static struct hvc h = {.fd = -1};
static char store[64]; /* a fresh directory under /var/tmp (a disk: O_DIRECT works) */

static const uint8_t guest_mac[6] = {0x00, 0x16, 0x3e, 0x01, 0x02, 0x03};

/* ---- the daemon, domains, stats ---- */

static void hv_start(void)
{
    char err[512];

    if (geteuid() != 0) {
        printf("SKIP: needs root (namespaces, TAPs)\n");
        exit(77);
    }
    ck_assert_msg(test_hv_start(&hv, err, sizeof(err)) == 0, "%s", err);
    state_dir = hv.state;
    ck_assert_int_eq(hvc_open(&h, false), 0);
}

static int rm_tree(const char *dir)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static void hv_stop(void)
{
    hvc_close(&h);
    test_hv_stop(&hv);
    if (store[0] != '\0')
        rm_tree(store);
    store[0] = '\0';
}

static struct hvw_dominfo create(const char *name, uint32_t flags)
{
    static uint8_t buf[4096];
    struct hvw_dom_create_req *r = (struct hvw_dom_create_req *)buf;
    static const char env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    struct hvw_dominfo info;
    size_t n = 0;

    memset(buf, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->flags = flags;
    r->envc = 1;
    r->strings_len = sizeof(env);
    memcpy(r->strings, env, sizeof(env));
    ck_assert_int_eq(
        hvc_call(&h, HVW_OP_DOM_CREATE, r, sizeof(*r) + sizeof(env), &info, sizeof(info), &n), 0);
    ck_assert_uint_eq(n, sizeof(info));
    return info;
}

static void destroy(uint16_t domid)
{
    struct hvw_domid_req r = {.domid = domid};

    ck_assert_int_eq(hvc_call(&h, HVW_OP_DOM_DESTROY, &r, sizeof(r), NULL, 0, NULL), 0);
}

static struct hvw_stats_rsp stats(void)
{
    struct hvw_stats_rsp st;

    ck_assert_int_eq(hvc_call(&h, HVW_OP_STATS, NULL, 0, &st, sizeof(st), NULL), 0);
    return st;
}

/* ---- brkprobe inside a domain ---- */

struct probe {
    pid_t pid;
    FILE *in;
    FILE *out;
    char line[4096];
};

static void probe_start(struct probe *pr, const struct hvw_dominfo *d)
{
    int in[2], out[2];
    char path[1024];

    snprintf(path, sizeof(path), "%s/tests/brkprobe", test_builddir());
    ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
    if ((pr->pid = fork()) == 0) {
        char *argv[] = {path, NULL};
        char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                        "BULKHEAD_HV_SOCKET=/run/bulkhead/hv.sock", NULL};
        char err[256];
        int status;
        dup2(in[0], 0);
        dup2(out[1], 1);
        if (dombuild_exec((pid_t)d->pid, argv, envp, &status, err, sizeof(err)) != 0) {
            printf("err ENOEXEC %s\n", err);
            _exit(1);
        }
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
    }
    close(in[0]);
    close(out[1]);
    pr->in = fdopen(in[1], "w");
    pr->out = fdopen(out[0], "r");
    setvbuf(pr->in, NULL, _IOLBF, 0);
}

static const char *probe(struct probe *pr, const char *fmt, ...)
{
    struct pollfd p = {.fd = fileno(pr->out), .events = POLLIN};
    va_list ap;

    va_start(ap, fmt);
    vfprintf(pr->in, fmt, ap);
    va_end(ap);
    fputc('\n', pr->in);
    fflush(pr->in);
    ck_assert_msg(poll(&p, 1, 60000) == 1, "the probe did not answer '%s'", fmt);
    ck_assert_ptr_nonnull(fgets(pr->line, sizeof(pr->line), pr->out));
    pr->line[strcspn(pr->line, "\n")] = '\0';
    return pr->line;
}

static void probe_stop(struct probe *pr)
{
    fprintf(pr->in, "exit\n");
    fclose(pr->in);
    fclose(pr->out);
    waitpid(pr->pid, NULL, 0);
}

#define ASSERT_OK(line)         ck_assert_msg(strncmp((line), "ok", 2) == 0, "%s", (line))
#define ASSERT_LINE(line, want) ck_assert_str_eq((line), (want))

/* ---- the kernel's view ---- */

/* Runs a shell command; its exit status, and its output (both streams) in out. */
static int sh(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[1024];
    size_t n = 0;
    va_list ap;
    FILE *f;
    int status;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
    ck_assert_ptr_nonnull(f = popen(cmd, "r"));
    while (n + 1 < cap && fgets(out + n, (int)(cap - n), f) != NULL)
        n += strlen(out + n);
    out[n] = '\0';
    status = pclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* `ip -d -o link show dev NAME` in the network namespace at nspath: 0 and the line, or ip's status.
 */
static int link_show(const char *nspath, const char *name, char *out, size_t cap)
{
    return sh(out, cap, "nsenter --net=%s ip -d -o link show dev %s", nspath, name);
}

#define ASSERT_HAS(s, want) ck_assert_msg(strstr((s), (want)) != NULL, "no '%s' in: %s", want, s)

/* A network namespace bound at a file of its own, as `bulkhead up` binds dom0's. */
static void netns_make(char *path, size_t cap, const char *name)
{
    pid_t pid;
    int fd, status;

    snprintf(path, cap, "%s/%s", store, name);
    ck_assert_int_ge(fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600), 0);
    close(fd);
    if ((pid = fork()) == 0) {
        if (unshare(CLONE_NEWNET) != 0 || mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL))
            _exit(1);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "cannot make netns %s", path);
}

static void netns_drop(const char *path)
{
    umount2(path, MNT_DETACH);
    unlink(path);
}

/* A socket made in the namespace at nspath (sockets keep the namespace they were made in). */
static int socket_in(const char *nspath, int type)
{
    int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int ns = open(nspath, O_RDONLY | O_CLOEXEC), fd;

    ck_assert_int_ge(self, 0);
    ck_assert_int_ge(ns, 0);
    ck_assert_int_eq(setns(ns, CLONE_NEWNET), 0);
    fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(setns(self, CLONE_NEWNET), 0);
    close(ns);
    close(self);
    ck_assert_int_ge(fd, 0);
    return fd;
}

static void make_store(void)
{
    snprintf(store, sizeof(store), "/var/tmp/bh-brk-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(store));
}

static void write_file(const char *path, const char *text, off_t size)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ck_assert_int_eq(ftruncate(fd, size), 0);
    close(fd);
}

/* ---- tests ---- */

/*
 * The driver domain gets vif<guest>.0 in its own namespace, on its bridge,
 * with the registered mtu and queues; the guest gets eth0 with its MAC;
 * nobody else gets anything, and the host's namespace never sees either.
 */
START_TEST(test_tap_in_the_right_namespace)
{
    struct hvw_dominfo d = create("drv", HVW_DOM_DRIVER), g = create("guest", 0),
                       x = create("other", 0);
    struct probe pd, pg, px;
    char out[8192], ns[64], name[IFNAMSIZ];
    const char *l;

    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 0, 4, 1400, guest_mac, "xenbr0"), 0);
    probe_start(&pd, &d);
    probe_start(&pg, &g);
    probe_start(&px, &x);

    /* Another domain asking for the vif, or for one nobody registered. */
    ASSERT_LINE(probe(&px, "tap %u 0 0", g.domid), "err EPERM");
    ASSERT_LINE(probe(&pd, "tap %u 7 0", g.domid), "err ENOENT");
    ASSERT_LINE(probe(&pd, "tap %u 0 2", g.domid), "err EINVAL"); /* TSO without CSUM */

    snprintf(name, sizeof(name), "vif%u.0", g.domid);
    l = probe(&pd, "tap %u 0 7", g.domid);
    snprintf(out, sizeof(out), "ok 4 %s 12 0x5102", name); /* TAP|NO_PI|VNET_HDR|MULTI_QUEUE */
    ASSERT_LINE(l, out);
    snprintf(ns, sizeof(ns), "/proc/%u/ns/net", d.pid);
    ck_assert_int_eq(link_show(ns, name, out, sizeof(out)), 0);
    ASSERT_HAS(out, "mtu 1400");
    ASSERT_HAS(out, "master xenbr0");
    ASSERT_HAS(out, ",UP");
    ASSERT_HAS(out, "link/ether fe:ff:ff:ff:ff:ff");
    ASSERT_HAS(out, "tun type tap pi off vnet_hdr on multi_queue numqueues 4");
    ck_assert_int_eq(link_show(ns, "xenbr0", out, sizeof(out)), 0);
    ASSERT_HAS(out, "bridge");
    /* Not in the host's namespace, nor in the guest's. */
    ck_assert_uint_eq(if_nametoindex(name), 0);
    ck_assert_uint_eq(if_nametoindex("xenbr0"), 0);
    snprintf(ns, sizeof(ns), "/proc/%u/ns/net", g.pid);
    ck_assert_int_ne(link_show(ns, name, out, sizeof(out)), 0);

    /* Once: the TAP lives while its fds do; then it can be had again. */
    ASSERT_LINE(probe(&pd, "tap %u 0 7", g.domid), "err EEXIST");
    ASSERT_OK(probe(&pd, "tapclose"));
    snprintf(ns, sizeof(ns), "/proc/%u/ns/net", d.pid);
    ck_assert_int_ne(link_show(ns, name, out, sizeof(out)), 0);
    ASSERT_OK(probe(&pd, "tap %u 0 1", g.domid));

    /* The guest's own end: eth0, its MAC, no bridge, a 10-byte vnet header. */
    ASSERT_LINE(probe(&pg, "tap %u 0 0x100", g.domid), "ok 4 eth0 10 0x5102");
    snprintf(ns, sizeof(ns), "/proc/%u/ns/net", g.pid);
    ck_assert_int_eq(link_show(ns, "eth0", out, sizeof(out)), 0);
    ASSERT_HAS(out, "link/ether 00:16:3e:01:02:03");
    ASSERT_HAS(out, "mtu 1400");
    ck_assert_ptr_null(strstr(out, "master"));

    probe_stop(&pd);
    probe_stop(&pg);
    probe_stop(&px);
}
END_TEST

/*
 * Disks open beneath the backend's storage only, with the access
 * registered; "..", symlinks out, a prefix twin and unregistered ids are
 * refused, and so is anyone but the backend.
 */
START_TEST(test_disk_confinement)
{
    struct hvw_dominfo d = create("drv", HVW_DOM_DRIVER), g = create("guest", 0);
    char a[128], ab[128], p[256], out[256];
    const char *dirs[1] = {a};
    struct probe pd, pg;
    const char *l;
    int slot;

    make_store();
    snprintf(a, sizeof(a), "%s/a", store);
    snprintf(ab, sizeof(ab), "%s/ab", store);
    ck_assert_int_eq(mkdir(a, 0700), 0);
    ck_assert_int_eq(mkdir(ab, 0700), 0);
    snprintf(p, sizeof(p), "%s/ro.img", a);
    write_file(p, "BULKHEAD-RO", 1 << 20);
    snprintf(p, sizeof(p), "%s/rw.img", a);
    write_file(p, "BULKHEAD-RW", 1 << 20);
    snprintf(p, sizeof(p), "%s/x.img", ab);
    write_file(p, "OUTSIDE", 4096);
    snprintf(p, sizeof(p), "%s/rel.img", a);
    ck_assert_int_eq(symlink("../ab/x.img", p), 0);
    snprintf(out, sizeof(out), "%s/x.img", ab);
    snprintf(p, sizeof(p), "%s/abs.img", a);
    ck_assert_int_eq(symlink(out, p), 0);
    snprintf(p, sizeof(p), "%s/up", a);
    ck_assert_int_eq(symlink("..", p), 0);
    snprintf(p, sizeof(p), "%s/in.img", a);
    ck_assert_int_eq(symlink("rw.img", p), 0); /* a symlink that stays inside is fine */
    snprintf(p, sizeof(p), "%s/sub", a);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/fifo", a);
    ck_assert_int_eq(mkfifo(p, 0600), 0);

    ck_assert_int_eq(hvc_brk_storage(&h, d.domid, dirs, 1), 0);
#define REG(devid, flags, fmt, ...)                                                                \
    do {                                                                                           \
        snprintf(p, sizeof(p), fmt, __VA_ARGS__);                                                  \
        ck_assert_int_eq(hvc_brk_disk(&h, d.domid, g.domid, devid, flags, p), 0);                  \
    } while (0)
    REG(1, HVW_BRK_RO, "%s/ro.img", a);
    REG(2, 0, "%s/rw.img", a);
    REG(3, 0, "%s/x.img", ab);  /* /a vs /ab */
    REG(4, 0, "%s/rel.img", a); /* ../ab/x.img */
    REG(5, 0, "%s/abs.img", a); /* an absolute symlink out */
    REG(6, 0, "%s/up/ab/x.img", a);
    REG(7, 0, "%s/sub", a);
    REG(8, 0, "%s/fifo", a);
    REG(9, 0, "%s/in.img", a);
    REG(10, 0, "%s/none.img", a);
    /* Paths that are not canonical never get registered. */
    snprintf(p, sizeof(p), "%s/../ab/x.img", a);
    ck_assert_int_eq(hvc_brk_disk(&h, d.domid, g.domid, 11, 0, p), EINVAL);
    snprintf(p, sizeof(p), "%s//ro.img", a);
    ck_assert_int_eq(hvc_brk_disk(&h, d.domid, g.domid, 11, 0, p), EINVAL);
    snprintf(p, sizeof(p), "%s/./ro.img", a);
    ck_assert_int_eq(hvc_brk_disk(&h, d.domid, g.domid, 11, 0, p), EINVAL);
    ck_assert_int_eq(hvc_brk_disk(&h, d.domid, g.domid, 11, 0, "ro.img"), EINVAL);
    snprintf(p, sizeof(p), "%s/../a", a);
    dirs[0] = p;
    ck_assert_int_eq(hvc_brk_storage(&h, d.domid, dirs, 1), EINVAL);
    snprintf(p, sizeof(p), "%s/up", a); /* a symlink: not its own real path */
    ck_assert_int_eq(hvc_brk_storage(&h, d.domid, dirs, 1), EINVAL);
    snprintf(p, sizeof(p), "%s/missing", a);
    ck_assert_int_eq(hvc_brk_storage(&h, d.domid, dirs, 1), ENOENT);
    ck_assert_int_eq(hvc_brk_storage(&h, g.domid + 100, dirs, 0), ESRCH);

    probe_start(&pd, &d);
    probe_start(&pg, &g);
    l = probe(&pd, "disk %u 1 0", g.domid);
    ASSERT_LINE(l, "ok 0 1 1048576");
    ASSERT_LINE(probe(&pd, "read 0"), "ok BULKHEAD-RO");
    ASSERT_LINE(probe(&pd, "write 0 X"), "err EBADF");
    l = probe(&pd, "disk %u 2 0", g.domid);
    ASSERT_LINE(l, "ok 1 0 1048576");
    ASSERT_LINE(probe(&pd, "write 1 WRITTEN"), "ok 7");
    ASSERT_LINE(probe(&pd, "direct 1"), "ok 0");
    l = probe(&pd, "disk %u 2 1", g.domid);
    ASSERT_OK(l);
    slot = (int)strtol(l + 3, NULL, 10);
    ASSERT_LINE(probe(&pd, "direct %d", slot), "ok 1");
    ASSERT_LINE(probe(&pd, "disk %u 3 0", g.domid), "err EPERM");
    ASSERT_LINE(probe(&pd, "disk %u 4 0", g.domid), "err EPERM");
    ASSERT_LINE(probe(&pd, "disk %u 5 0", g.domid), "err EPERM");
    ASSERT_LINE(probe(&pd, "disk %u 6 0", g.domid), "err EPERM");
    ASSERT_LINE(probe(&pd, "disk %u 7 0", g.domid), "err EINVAL");
    ASSERT_LINE(probe(&pd, "disk %u 8 0", g.domid), "err EINVAL"); /* and it did not block */
    l = probe(&pd, "disk %u 9 0", g.domid);
    ASSERT_OK(l);
    ASSERT_LINE(probe(&pd, "read %ld", strtol(l + 3, NULL, 10)), "ok WRITTEND-RW");
    ASSERT_LINE(probe(&pd, "disk %u 10 0", g.domid), "err ENOENT"); /* no such file */
    ASSERT_LINE(probe(&pd, "disk %u 12 0", g.domid), "err ENOENT"); /* never registered */
    ASSERT_LINE(probe(&pd, "nbd %u 1", g.domid), "err EINVAL");     /* not an NBD disk */
    /* The guest is not the backend. */
    ASSERT_LINE(probe(&pg, "disk %u 2 0", g.domid), "err EPERM");
    /* Unregistered, it is gone. */
    ck_assert_int_eq(hvc_brk_unreg(&h, HVW_BRK_KIND_DISK, g.domid, 2), 0);
    ck_assert_int_eq(hvc_brk_unreg(&h, HVW_BRK_KIND_DISK, g.domid, 2), ENOENT);
    ASSERT_LINE(probe(&pd, "disk %u 2 0", g.domid), "err ENOENT");
    /* Without storage, nothing opens. */
    ck_assert_int_eq(hvc_brk_storage(&h, d.domid, dirs, 0), 0);
    ASSERT_LINE(probe(&pd, "disk %u 1 0", g.domid), "err EPERM");
    probe_stop(&pd);
    probe_stop(&pg);
}
END_TEST

/* An NBD disk: a socket connected to the registered server. */
START_TEST(test_nbd_socket)
{
    struct hvw_dominfo d = create("drv", HVW_DOM_DRIVER), g = create("guest", 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct probe pd;
    char buf[16];
    const char *l;
    int lfd, cfd;
    long slot;

    make_store();
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/nbd.sock", store);
    ck_assert_int_ge(lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 4), 0);
    ck_assert_int_eq(hvc_brk_disk(&h, d.domid, g.domid, 51712, HVW_BRK_NBD, sa.sun_path), 0);
    probe_start(&pd, &d);
    ASSERT_LINE(probe(&pd, "disk %u 51712 0", g.domid), "err EINVAL"); /* an NBD disk */
    l = probe(&pd, "nbd %u 51712", g.domid);
    ASSERT_OK(l);
    slot = strtol(l + 3, NULL, 10);
    ck_assert_int_ge(cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), 0);
    ASSERT_LINE(probe(&pd, "write %ld hello", slot), "ok 5");
    ck_assert_int_eq(read(cfd, buf, sizeof(buf)), 5);
    ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
    ck_assert_int_eq(write(cfd, "pong\n", 5), 5);
    ASSERT_LINE(probe(&pd, "read %ld", slot), "ok pong");
    close(cfd);
    /* A server that is gone: refused, the daemon unharmed. */
    close(lfd);
    unlink(sa.sun_path);
    ck_assert_str_eq(probe(&pd, "nbd %u 51712", g.domid), "err ENOENT");
    probe_stop(&pd);
}
END_TEST

/* Exchanges one UDP datagram each way between two namespaces; 0 when both arrive. */
static int udp_ping(const char *ns1, const char *ip1, const char *ns2)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(47000)};
    struct sockaddr_in from;
    socklen_t fl = sizeof(from);
    int s1 = socket_in(ns1, SOCK_DGRAM), s2 = socket_in(ns2, SOCK_DGRAM), rc = -1;
    struct pollfd p = {.fd = s1, .events = POLLIN};
    char buf[16];

    inet_pton(AF_INET, ip1, &a.sin_addr);
    ck_assert_int_eq(bind(s1, (struct sockaddr *)&a, sizeof(a)), 0);
    /* The first datagrams may wait for ARP: try a few times before calling it lost. */
    for (int i = 0; i < 10 && rc != 0; i++) {
        sendto(s2, "ping", 4, 0, (struct sockaddr *)&a, sizeof(a));
        if (poll(&p, 1, 1000) == 1 &&
            recvfrom(s1, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl) == 4)
            rc = 0;
    }
    if (rc == 0) {
        struct pollfd q = {.fd = s2, .events = POLLIN};
        rc = -1;
        sendto(s1, "pong", 4, 0, (struct sockaddr *)&from, fl);
        if (poll(&q, 1, 10000) == 1 && recv(s2, buf, sizeof(buf), 0) == 4 &&
            memcmp(buf, "pong", 4) == 0)
            rc = 0;
    }
    close(s1);
    close(s2);
    return rc;
}

/*
 * Two uplinks from the driver domain's bridge to two namespaces: packets
 * cross the bridge; refusals for the host's namespace and for non-
 * namespaces; and the pairs die with the driver domain.
 */
START_TEST(test_bridge_and_uplinks)
{
    struct hvw_dominfo d = create("drv", HVW_DOM_DRIVER);
    char ns1[128], ns2[128], dns[64], out[8192], notns[160];
    int gone = 0;

    make_store();
    netns_make(ns1, sizeof(ns1), "ns1");
    netns_make(ns2, sizeof(ns2), "ns2");
    snprintf(dns, sizeof(dns), "/proc/%u/ns/net", d.pid);

    ck_assert_int_eq(hvc_brk_bridge(&h, d.domid, "xenbr0", 0), 0);
    ck_assert_int_eq(hvc_brk_bridge(&h, d.domid, "xenbr0", 1500), 0); /* idempotent */
    ck_assert_int_eq(hvc_brk_bridge(&h, 0, "xenbr0", 0), EPERM);      /* never the host's */
    ck_assert_uint_eq(if_nametoindex("xenbr0"), 0);
    /* An uplink address (bulkhead_uplink_address): given once, kept when asked again. */
    ck_assert_int_eq(hvc_brk_bridge_addr(&h, d.domid, "xenbr0", 0, htonl(0x0a4d0901), 24), 0);
    ck_assert_int_eq(hvc_brk_bridge_addr(&h, d.domid, "xenbr0", 0, htonl(0x0a4d0901), 24), 0);
    ck_assert_int_eq(sh(out, sizeof(out), "nsenter --net=%s ip -o -4 addr show dev xenbr0", dns), 0);
    ASSERT_HAS(out, "inet 10.77.9.1/24");
    ck_assert_int_eq(hvc_brk_bridge_addr(&h, d.domid, "xenbr0", 0, htonl(0x0a4d0901), 0), EINVAL);
    ck_assert_int_eq(hvc_brk_bridge_addr(&h, d.domid, "xenbr0", 0, htonl(0x0a4d0901), 33), EINVAL);
    ck_assert_int_eq(hvc_brk_bridge_addr(&h, d.domid, "xenbr0", 0, htonl(0x7f000001), 8), EINVAL);
    ck_assert_int_eq(hvc_brk_bridge_addr(&h, d.domid, "xenbr0", 0, htonl(0xe0000001), 8), EINVAL);
    ck_assert_int_eq(hvc_brk_bridge_addr(&h, d.domid, "xenbr0", 0, 0, 24), EINVAL);
    ck_assert_int_eq(hvc_brk_uplink(&h, d.domid, "xenbr0", "up0", "p0", ns1, 0), 0);
    ck_assert_int_eq(hvc_brk_uplink(&h, d.domid, "xenbr0", "up1", "p1", ns2, 0), 0);
    /* The name is a veth now, not a bridge. */
    ck_assert_int_eq(hvc_brk_bridge(&h, d.domid, "up0", 0), EEXIST);
    ck_assert_int_eq(hvc_brk_uplink(&h, d.domid, "xenbr0", "up0", "p9", ns1, 0), EEXIST);
    ck_assert_int_eq(hvc_brk_uplink(&h, d.domid, "xenbr0", "up9", "p9", "/proc/self/ns/net", 0),
                     EPERM);
    snprintf(notns, sizeof(notns), "%s/plain", store);
    write_file(notns, "x", 1);
    ck_assert_int_eq(hvc_brk_uplink(&h, d.domid, "xenbr0", "up9", "p9", notns, 0), EINVAL);
    ck_assert_int_eq(link_show(dns, "up9", out, sizeof(out)), 1); /* nothing half-made */

    ck_assert_int_eq(link_show(dns, "up0", out, sizeof(out)), 0);
    ASSERT_HAS(out, "master xenbr0");
    ASSERT_HAS(out, ",UP");
    ck_assert_int_eq(link_show(ns1, "p0", out, sizeof(out)), 0);
    ASSERT_HAS(out, ",UP");
    ck_assert_int_eq(sh(out, sizeof(out), "nsenter --net=%s ip addr add 10.77.0.1/24 dev p0", ns1),
                     0);
    ck_assert_int_eq(sh(out, sizeof(out), "nsenter --net=%s ip addr add 10.77.0.2/24 dev p1", ns2),
                     0);
    ck_assert_msg(udp_ping(ns1, "10.77.0.1", ns2) == 0, "no datagram crossed the bridge");

    /* The driver domain's namespace takes its ends, and so their peers, with it. */
    destroy(d.domid);
    for (int i = 0; i < 100 && !gone; i++) {
        gone = link_show(ns1, "p0", out, sizeof(out)) != 0 &&
               link_show(ns2, "p1", out, sizeof(out)) != 0;
        if (!gone)
            usleep(100000);
    }
    ck_assert_msg(gone, "the uplinks outlived their driver domain");
    netns_drop(ns1);
    netns_drop(ns2);
}
END_TEST

/* Dom0's requests, malformed: each refused with EINVAL, and the daemon serves on. */
START_TEST(test_malformed_registrations)
{
    struct hvw_dominfo d = create("drv", HVW_DOM_DRIVER), g = create("guest", 0);
    uint8_t junk[4096];
    struct hvw_brk_vif_reg v;
    static const uint16_t ops[] = {HVW_OP_BRK_STORAGE, HVW_OP_BRK_REG_DISK, HVW_OP_BRK_REG_VIF,
                                   HVW_OP_BRK_UNREG,   HVW_OP_BRK_BRIDGE,   HVW_OP_BRK_UPLINK,
                                   HVW_OP_BRK_TAP,     HVW_OP_BRK_DISK,     HVW_OP_BRK_NBD};
    static const uint8_t mcast[6] = {0x01, 0, 0, 0, 0, 1}, zero[6] = {0};

    memset(junk, 0xa5, sizeof(junk));
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        ck_assert_int_eq(hvc_call(&h, ops[i], junk, 3, NULL, 0, NULL), EINVAL);
        ck_assert_int_eq(hvc_call(&h, ops[i], junk, sizeof(junk), NULL, 0, NULL), EINVAL);
        ck_assert_int_eq(hvc_call(&h, ops[i], NULL, 0, NULL, 0, NULL), EINVAL);
    }
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 0, 0, 1500, guest_mac, "br"), EINVAL);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 0, 9, 1500, guest_mac, "br"), EINVAL);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 0, 1, 67, guest_mac, "br"), EINVAL);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 0, 1, 65522, guest_mac, "br"), EINVAL);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 0, 1, 1500, mcast, "br"), EINVAL);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 0, 1, 1500, zero, "br"), EINVAL);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 0, 1, 1500, guest_mac, "b r"), EINVAL);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 0, 1, 1500, guest_mac, ".."), EINVAL);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 0, 1, 1500, guest_mac, "a/b"), EINVAL);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 70000, 1, 1500, guest_mac, "br"), EINVAL);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, d.domid, 0, 1, 1500, guest_mac, "br"), EINVAL);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, 0, 0, 1, 1500, guest_mac, "br"), EINVAL);
    ck_assert_int_eq(hvc_brk_disk(&h, 0, g.domid, 1, 0, "/srv/x"), EINVAL);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, 999, 0, 1, 1500, guest_mac, "br"), ESRCH);
    ck_assert_int_eq(hvc_brk_disk(&h, d.domid, g.domid, 1, 0x80, "/srv/x"), EINVAL);
    ck_assert_int_eq(hvc_brk_disk(&h, d.domid, g.domid, 1, 0, "/srv/x/"), EINVAL);
    ck_assert_int_eq(hvc_brk_unreg(&h, 3, g.domid, 0), EINVAL);
    /* A non-zero pad, and garbage after a name's NUL. */
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 0, 1, 1500, guest_mac, "br"), 0);
    memset(&v, 0, sizeof(v));
    v.backend = d.domid;
    v.frontend = g.domid;
    v.queues = 1;
    v.mtu = 1500;
    memcpy(v.mac, guest_mac, 6);
    memcpy(v.bridge, "br\0x", 4);
    ck_assert_int_eq(hvc_call(&h, HVW_OP_BRK_REG_VIF, &v, sizeof(v), NULL, 0, NULL), EINVAL);
    memcpy(v.bridge, "br\0\0", 4);
    v.pad2 = 1;
    ck_assert_int_eq(hvc_call(&h, HVW_OP_BRK_REG_VIF, &v, sizeof(v), NULL, 0, NULL), EINVAL);
    v.pad2 = 0;
    /* Routed vifs: no bridge, a gatewaydev, 1..8 distinct unicast host addresses. */
    {
        static const uint32_t one[1] = {0x0502000a}, lo[1] = {0x0100007f}, bc[1] = {0xffffffff},
                              two[2] = {0x0502000a, 0x0502000a};
        static const uint32_t nine[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        struct hvc_vif_more x = {.routed = true, .gatewaydev = "xenbr0", .ip = one, .nip = 1};
        ck_assert_int_eq(hvc_brk_vif_more(&h, d.domid, g.domid, 1, 1, 1500, guest_mac, "br", &x),
                         EINVAL);
        x.gatewaydev = "";
        ck_assert_int_eq(hvc_brk_vif_more(&h, d.domid, g.domid, 1, 1, 1500, guest_mac, "", &x),
                         EINVAL);
        x.gatewaydev = "a/b";
        ck_assert_int_eq(hvc_brk_vif_more(&h, d.domid, g.domid, 1, 1, 1500, guest_mac, "", &x),
                         EINVAL);
        x.gatewaydev = "xenbr0";
        x.nip = 0;
        ck_assert_int_eq(hvc_brk_vif_more(&h, d.domid, g.domid, 1, 1, 1500, guest_mac, "", &x),
                         EINVAL);
        x.ip = nine;
        x.nip = 9;
        ck_assert_int_eq(hvc_brk_vif_more(&h, d.domid, g.domid, 1, 1, 1500, guest_mac, "", &x),
                         EINVAL);
        x.ip = lo;
        x.nip = 1;
        ck_assert_int_eq(hvc_brk_vif_more(&h, d.domid, g.domid, 1, 1, 1500, guest_mac, "", &x),
                         EINVAL);
        x.ip = bc;
        ck_assert_int_eq(hvc_brk_vif_more(&h, d.domid, g.domid, 1, 1, 1500, guest_mac, "", &x),
                         EINVAL);
        x.ip = two;
        x.nip = 2;
        ck_assert_int_eq(hvc_brk_vif_more(&h, d.domid, g.domid, 1, 1, 1500, guest_mac, "", &x),
                         EINVAL);
        x.vifname = "v r";
        x.ip = one;
        x.nip = 1;
        ck_assert_int_eq(hvc_brk_vif_more(&h, d.domid, g.domid, 1, 1, 1500, guest_mac, "", &x),
                         EINVAL);
        x.vifname = "g.r1";
        ck_assert_int_eq(hvc_brk_vif_more(&h, d.domid, g.domid, 1, 1, 1500, guest_mac, "", &x), 0);
        /* a bridged vif carries no routed fields, and no unknown flag passes */
        memset(&v, 0, sizeof(v));
        v.backend = d.domid;
        v.frontend = g.domid;
        v.devid = 2;
        v.queues = 1;
        v.mtu = 1500;
        memcpy(v.mac, guest_mac, 6);
        v.ip[0] = one[0];
        ck_assert_int_eq(hvc_call(&h, HVW_OP_BRK_REG_VIF, &v, sizeof(v), NULL, 0, NULL), EINVAL);
        v.ip[0] = 0;
        v.flags = 2;
        ck_assert_int_eq(hvc_call(&h, HVW_OP_BRK_REG_VIF, &v, sizeof(v), NULL, 0, NULL), EINVAL);
        ck_assert_int_eq(hvc_brk_unreg(&h, HVW_BRK_KIND_VIF, g.domid, 1), 0);
        v.devid = 0;
        v.flags = 0;
        memcpy(v.bridge, "br\0\0", 4);
    }
    v.pad2 = 0;
    ck_assert_int_eq(hvc_call(&h, HVW_OP_BRK_REG_VIF, &v, sizeof(v), NULL, 0, NULL), 0);
    ck_assert_uint_eq(stats().brk_regs, 1); /* replaced, not added */
    ck_assert_uint_eq(stats().domains, 3);
}
END_TEST

/* One driver domain, one guest, everything registered and used: then both destroyed. */
static void cycle(void)
{
    struct hvw_dominfo d = create("drv", HVW_DOM_DRIVER), g = create("guest", 0);
    char a[128], p[256];
    const char *dirs[1] = {a};
    struct probe pd;

    snprintf(a, sizeof(a), "%s/a", store);
    snprintf(p, sizeof(p), "%s/disk.img", a);
    ck_assert_int_eq(hvc_brk_storage(&h, d.domid, dirs, 1), 0);
    ck_assert_int_eq(hvc_brk_disk(&h, d.domid, g.domid, 51712, 0, p), 0);
    ck_assert_int_eq(hvc_brk_vif(&h, d.domid, g.domid, 0, 2, 1500, guest_mac, "xenbr0"), 0);
    ck_assert_uint_eq(stats().brk_regs, 3);
    probe_start(&pd, &d);
    ASSERT_OK(probe(&pd, "tap %u 0 7", g.domid));
    ASSERT_OK(probe(&pd, "disk %u 51712 0", g.domid));
    ASSERT_LINE(probe(&pd, "disk %u 51713 0", g.domid), "err ENOENT");
    probe_stop(&pd);
    destroy(g.domid);
    ck_assert_uint_eq(stats().brk_regs, 1); /* the guest's devices went; the storage stays */
    destroy(d.domid);
    ck_assert_uint_eq(stats().brk_regs, 0);
}

START_TEST(test_destroy_forgets_and_leaks_nothing)
{
    struct hvw_stats_rsp before, after;
    char p[256];

    make_store();
    snprintf(p, sizeof(p), "%s/a", store);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/a/disk.img", store);
    write_file(p, "DISK", 65536);
    cycle(); /* warm-up */
    before = stats();
    for (int i = 0; i < 3; i++)
        cycle();
    after = stats();
    ck_assert_uint_eq(after.domains, 1);
    ck_assert_uint_eq(after.brk_regs, 0);
    ck_assert_uint_eq(after.open_fds, before.open_fds);
    ck_assert_uint_eq(after.channels, before.channels);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("broker");
    TCase *tc = tcase_create("broker");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, hv_start, hv_stop);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_tap_in_the_right_namespace);
    tcase_add_test(tc, test_disk_confinement);
    tcase_add_test(tc, test_nbd_socket);
    tcase_add_test(tc, test_bridge_and_uplinks);
    tcase_add_test(tc, test_malformed_registrations);
    tcase_add_test(tc, test_destroy_forgets_and_leaks_nothing);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
