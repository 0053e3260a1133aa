/*
 * check_hv.c - bulkhead-hv end to end: a daemon of its own per test, real
 * domains, and hvprobe running inside them through dombuild_exec, as
 * `bulkhead exec` runs commands.  Grants, event channels, identity,
 * hostile hypercalls, and create/destroy cycles that must leak nothing.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bhplat.h"
#include "dombuild.h"
#include "hvwire.h"
#include "testutil.h"

static struct test_hv hv;
static int dom0 = -1;
static uint32_t seq;

/* ---- the daemon ---- */

static const char *builddir(void)
{
    return test_builddir();
}

static void hv_start(void)
{
    char err[512];

    if (geteuid() != 0) {
        printf("SKIP: needs root (namespaces)\n");
        exit(77);
    }
    ck_assert_msg(test_hv_start(&hv, err, sizeof(err)) == 0, "%s", err);
}

static void hv_stop(void)
{
    if (dom0 >= 0)
        close(dom0);
    dom0 = -1;
    test_hv_stop(&hv);
}

static int channel(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/hv.sock", hv.state);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Sends a raw message; returns the reply's err, the payload in out. */
static int call_raw(int fd, const void *msg, size_t len, void *out, size_t cap)
{
    static uint8_t buf[HVW_MAX_MSG];
    struct hvw_hdr h;
    ssize_t n;

    ck_assert_int_eq(send(fd, msg, len, MSG_NOSIGNAL), (ssize_t)len);
    n = recv(fd, buf, sizeof(buf), 0);
    ck_assert_int_ge(n, (ssize_t)sizeof(h));
    memcpy(&h, buf, sizeof(h));
    ck_assert_uint_eq(h.magic, HVW_MAGIC);
    ck_assert(h.flags & HVW_F_REPLY);
    if (out != NULL && (size_t)n - sizeof(h) <= cap)
        memcpy(out, buf + sizeof(h), (size_t)n - sizeof(h));
    return h.err;
}

static int call(int fd, uint16_t op, const void *p, size_t len, void *out, size_t cap)
{
    static uint8_t msg[HVW_MAX_MSG];
    struct hvw_hdr h = {.magic = HVW_MAGIC, .op = op, .seq = ++seq};

    memcpy(msg, &h, sizeof(h));
    if (len > 0)
        memcpy(msg + sizeof(h), p, len);
    return call_raw(fd, msg, sizeof(h) + len, out, cap);
}

static struct hvw_dominfo create(const char *name)
{
    static uint8_t buf[4096];
    struct hvw_dom_create_req *r = (struct hvw_dom_create_req *)buf;
    static const char env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    struct hvw_dominfo info;

    if (dom0 < 0)
        dom0 = channel();
    memset(buf, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->envc = 1;
    r->strings_len = sizeof(env);
    memcpy(r->strings, env, sizeof(env));
    ck_assert_int_eq(call(dom0, HVW_OP_DOM_CREATE, r, sizeof(*r) + sizeof(env), &info,
                          sizeof(info)),
                     0);
    return info;
}

static void destroy(uint16_t domid)
{
    struct hvw_domid_req r = {.domid = domid};

    ck_assert_int_eq(call(dom0, HVW_OP_DOM_DESTROY, &r, sizeof(r), NULL, 0), 0);
}

static struct hvw_stats_rsp stats(void)
{
    struct hvw_stats_rsp st;

    ck_assert_int_eq(call(dom0, HVW_OP_STATS, NULL, 0, &st, sizeof(st)), 0);
    return st;
}

/* ---- hvprobe inside a domain ---- */

struct probe {
    pid_t pid;
    FILE *in;  /* its stdin */
    FILE *out; /* its stdout */
    char line[4096];
};

static void probe_start(struct probe *pr, const struct hvw_dominfo *d)
{
    int in[2], out[2];
    char path[1024];

    snprintf(path, sizeof(path), "%s/tests/hvprobe", builddir());
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

/* One command, one reply line (without its newline). */
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
    int status;

    fprintf(pr->in, "exit\n");
    fclose(pr->in);
    fclose(pr->out);
    waitpid(pr->pid, &status, 0);
}

static unsigned long field(const char *line, int n)
{
    const char *p = line;

    for (int i = 0; i < n && p; i++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    ck_assert_msg(p != NULL, "no field %d in '%s'", n, line);
    return strtoul(p, NULL, 10);
}

#define ASSERT_OK(line) ck_assert_msg(strncmp((line), "ok", 2) == 0, "%s", (line))
#define ASSERT_LINE(line, want) ck_assert_str_eq((line), (want))

/* ---- tests ---- */

START_TEST(test_identity_comes_from_the_channel)
{
    struct hvw_dominfo a = create("alpha"), b = create("beta");
    struct probe pa, pb;
    struct hvw_hello_rsp h;

    probe_start(&pa, &a);
    probe_start(&pb, &b);
    ck_assert_uint_eq(field(probe(&pa, "hello"), 1), a.domid);
    ck_assert_uint_eq(field(probe(&pb, "hello"), 1), b.domid);
    ck_assert_uint_eq(field(probe(&pa, "uid"), 1), 0); /* root inside */
    ck_assert_uint_ne(a.uid, 0);                        /* not outside */
    ck_assert_int_eq(call(dom0, HVW_OP_HELLO, NULL, 0, &h, sizeof(h)), 0);
    ck_assert_uint_eq(h.domid, 0);
    /* A domain asking for dom0's powers is refused. */
    ASSERT_LINE(probe(&pa, "raw 42485631220000000100000000000000"),
                "ok EPERM");
    probe_stop(&pa);
    probe_stop(&pb);
}
END_TEST

START_TEST(test_grant_to_one_domain_only)
{
    struct hvw_dominfo a = create("alpha"), b = create("beta"), c = create("gamma");
    struct probe pa, pb, pc;
    const char *l;
    unsigned long ref, slot;

    probe_start(&pa, &a);
    probe_start(&pb, &b);
    probe_start(&pc, &c);
    l = probe(&pa, "share %u 2 rw", b.domid);
    ASSERT_OK(l);
    ref = field(l, 2);
    ASSERT_LINE(probe(&pc, "map %u rw %lu", a.domid, ref), "err EACCES map");
    ASSERT_LINE(probe(&pc, "map %u ro %lu", a.domid, ref), "err EACCES map");
    /* Naming the wrong granter finds nothing. */
    ck_assert_str_eq(probe(&pb, "map %u rw %lu", c.domid, ref), "err ENOENT map");
    l = probe(&pb, "map %u rw %lu", a.domid, ref);
    ASSERT_OK(l);
    slot = field(l, 1);
    ASSERT_OK(probe(&pb, "poke %lu 100 42", slot));
    ASSERT_LINE(probe(&pa, "peek 0 100"), "ok 42");
    ASSERT_OK(probe(&pa, "poke 0 200 7"));
    ASSERT_LINE(probe(&pb, "peek %lu 200", slot), "ok 7");
    probe_stop(&pa);
    probe_stop(&pb);
    probe_stop(&pc);
}
END_TEST

START_TEST(test_read_only_grant_stays_read_only)
{
    struct hvw_dominfo a = create("alpha"), b = create("beta");
    struct probe pa, pb;
    const char *l;
    unsigned long ref, slot;

    probe_start(&pa, &a);
    probe_start(&pb, &b);
    l = probe(&pa, "share %u 1 ro", b.domid);
    ASSERT_OK(l);
    ref = field(l, 2);
    ASSERT_LINE(probe(&pb, "map %u rw %lu", a.domid, ref), "err EPERM map");
    l = probe(&pb, "rawmap %u ro %lu", a.domid, ref);
    ASSERT_OK(l);
    slot = field(l, 1);
    ASSERT_LINE(probe(&pb, "fdwrite %lu", slot), "err EACCES mmap");
    ASSERT_LINE(probe(&pb, "fdmprotect %lu", slot), "err EACCES mprotect");
    ASSERT_LINE(probe(&pb, "fdreopen %lu", slot), "err EACCES open");
    ASSERT_LINE(probe(&pb, "fdtrunc %lu", slot), "err EINVAL ftruncate");
    ASSERT_OK(probe(&pa, "poke 0 0 9"));
    probe_stop(&pa);
    probe_stop(&pb);
}
END_TEST

START_TEST(test_frames_cannot_be_truncated)
{
    struct hvw_dominfo a = create("alpha"), b = create("beta");
    struct probe pa, pb;
    const char *l;
    unsigned long ref;

    probe_start(&pa, &a);
    probe_start(&pb, &b);
    l = probe(&pa, "rawshare %u rw", b.domid);
    ASSERT_OK(l);
    ref = field(l, 2);
    ASSERT_LINE(probe(&pa, "fdtrunc %lu", field(l, 1)), "err EPERM ftruncate");
    l = probe(&pb, "rawmap %u rw %lu", a.domid, ref);
    ASSERT_OK(l);
    ASSERT_LINE(probe(&pb, "fdtrunc %lu", field(l, 1)), "err EPERM ftruncate");
    ASSERT_LINE(probe(&pb, "fdreopen %lu", field(l, 1)), "err EACCES open");
    probe_stop(&pa);
    probe_stop(&pb);
}
END_TEST

START_TEST(test_cannot_end_a_mapped_grant)
{
    struct hvw_dominfo a = create("alpha"), b = create("beta");
    struct probe pa, pb;
    const char *l;
    unsigned long ref, slot;

    probe_start(&pa, &a);
    probe_start(&pb, &b);
    l = probe(&pa, "share %u 1 rw", b.domid);
    ASSERT_OK(l);
    ref = field(l, 2);
    l = probe(&pb, "map %u rw %lu", a.domid, ref);
    ASSERT_OK(l);
    slot = field(l, 1);
    ASSERT_LINE(probe(&pa, "rawend %lu", ref), "ok EBUSY");
    ASSERT_OK(probe(&pb, "unmap %lu", slot));
    ASSERT_LINE(probe(&pa, "rawend %lu", ref), "ok 0");
    ASSERT_LINE(probe(&pb, "map %u rw %lu", a.domid, ref), "err ENOENT map");
    /* A mapping dies with its process: the end succeeds once the mapper is gone. */
    l = probe(&pa, "share %u 1 rw", b.domid);
    ref = field(l, 2);
    ASSERT_OK(probe(&pb, "map %u rw %lu", a.domid, ref));
    ASSERT_LINE(probe(&pa, "rawend %lu", ref), "ok EBUSY");
    probe_stop(&pb);
    for (int i = 0; i < 100; i++) {
        l = probe(&pa, "rawend %lu", ref);
        if (strcmp(l, "ok 0") == 0)
            break;
        usleep(20000);
    }
    ASSERT_LINE(l, "ok 0");
    probe_stop(&pa);
}
END_TEST

/*
 * bhgnttab_map_many: three grants mapped as three sets in one call, each
 * its own mapping (written through, unmapped alone or with the others in
 * one bhgnttab_unmap_many, after which each grant can end); a set on a
 * grant that does not exist maps none of them.
 */
START_TEST(test_map_many_sets)
{
    struct hvw_dominfo a = create("alpha"), b = create("beta");
    struct probe pa, pb;
    const char *l;
    unsigned long r[3], m[3], shared;

    probe_start(&pa, &a);
    probe_start(&pb, &b);
    l = probe(&pa, "share %u 3 rw", b.domid);
    ASSERT_OK(l);
    for (int i = 0; i < 3; i++)
        r[i] = field(l, 2 + i);
    l = probe(&pb, "mapsplit %u rw %lu 99999 %lu", a.domid, r[0], r[2]);
    ck_assert_msg(strncmp(l, "err ", 4) == 0, "a set on no grant: %s", l);
    ASSERT_LINE(probe(&pa, "rawend %lu", r[0]), "ok 0"); /* nothing stayed mapped */
    l = probe(&pa, "share %u 3 rw", b.domid);
    ASSERT_OK(l);
    shared = field(l, 1);
    for (int i = 0; i < 3; i++)
        r[i] = field(l, 2 + i);
    l = probe(&pb, "mapsplit %u rw %lu %lu %lu", a.domid, r[0], r[1], r[2]);
    ASSERT_OK(l);
    for (int i = 0; i < 3; i++)
        m[i] = field(l, 1 + i);
    ASSERT_OK(probe(&pb, "poke %lu 10 31", m[1])); /* the second set is the second page */
    ASSERT_LINE(probe(&pa, "peek %lu %d", shared, 4096 + 10), "ok 31");
    ASSERT_LINE(probe(&pa, "rawend %lu", r[1]), "ok EBUSY");
    ASSERT_OK(probe(&pb, "unmap %lu", m[1]));
    ASSERT_LINE(probe(&pa, "rawend %lu", r[1]), "ok 0");
    ASSERT_LINE(probe(&pa, "rawend %lu", r[0]), "ok EBUSY");
    ASSERT_OK(probe(&pb, "unmapmany %lu %lu", m[0], m[2]));
    ASSERT_LINE(probe(&pa, "rawend %lu", r[0]), "ok 0");
    ASSERT_LINE(probe(&pa, "rawend %lu", r[2]), "ok 0");
    probe_stop(&pa);
    probe_stop(&pb);
}
END_TEST

START_TEST(test_32768_grants_per_domain)
{
    struct hvw_dominfo a = create("alpha"), b = create("beta");
    struct probe pa;

    probe_start(&pa, &a);
    ASSERT_LINE(probe(&pa, "sharemany %u 32768", b.domid), "ok 32768");
    ASSERT_LINE(probe(&pa, "sharemany %u 1", b.domid), "err ENOSPC 0");
    probe_stop(&pa);
}
END_TEST

START_TEST(test_grant_copy)
{
    struct hvw_dominfo a = create("alpha"), b = create("beta"), c = create("gamma");
    struct probe pa, pb, pc;
    const char *l;
    unsigned long rw, ro;

    probe_start(&pa, &a);
    probe_start(&pb, &b);
    probe_start(&pc, &c);
    l = probe(&pa, "share %u 1 rw", b.domid);
    rw = field(l, 2);
    l = probe(&pa, "share %u 1 ro", b.domid);
    ro = field(l, 2);
    ASSERT_OK(probe(&pa, "poke 0 10 33"));
    ASSERT_LINE(probe(&pb, "copyfrom %u %lu 10", a.domid, rw), "ok 0 33");
    ASSERT_LINE(probe(&pb, "copyto %u %lu 11 44", a.domid, rw), "ok 0 44");
    ASSERT_LINE(probe(&pa, "peek 0 11"), "ok 44");
    /* Per-segment status: a read-only grant is no copy destination. */
    ASSERT_LINE(probe(&pb, "copyto %u %lu 0 1", a.domid, ro), "ok -8 1");
    /* Nor is anyone else's grant a source. */
    l = probe(&pc, "copyfrom %u %lu 10", a.domid, rw);
    ck_assert_msg(strncmp(l, "ok -", 4) == 0, "%s", l);
    /* Crossing the page is refused. */
    ASSERT_LINE(probe(&pb, "copyfrom %u %lu 4096", a.domid, rw), "ok -10 0");
    probe_stop(&pa);
    probe_stop(&pb);
    probe_stop(&pc);
}
END_TEST

START_TEST(test_event_channels)
{
    struct hvw_dominfo a = create("alpha"), b = create("beta"), c = create("gamma");
    struct probe pa, pb, pc;
    unsigned long porta, portb;

    probe_start(&pa, &a);
    probe_start(&pb, &b);
    probe_start(&pc, &c);
    porta = field(probe(&pa, "evt_unbound %u", b.domid), 1);
    /* Reserved for beta: gamma cannot bind it (EINVAL, as Xen answers). */
    ASSERT_LINE(probe(&pc, "evt_bind %u %lu", a.domid, porta), "err EINVAL evt_bind");
    portb = field(probe(&pb, "evt_bind %u %lu", a.domid, porta), 1);
    ASSERT_OK(probe(&pb, "notify %lu", portb));
    ck_assert_uint_eq(field(probe(&pa, "wait 5000"), 1), porta);
    ASSERT_LINE(probe(&pa, "wait 200"), "err ETIMEDOUT");
    ASSERT_OK(probe(&pa, "notify %lu", porta));
    ck_assert_uint_eq(field(probe(&pb, "wait 5000"), 1), portb);
    /* Closing one end is seen by the other. */
    ASSERT_OK(probe(&pa, "unbind %lu", porta));
    ck_assert_uint_eq(field(probe(&pb, "wait 5000"), 1), portb);
    probe_stop(&pa);
    probe_stop(&pb);
    probe_stop(&pc);
}
END_TEST

static void hostile_from(struct probe *pr)
{
    /* Truncated header, bad magic, unknown op, oversized, fds attached. */
    ASSERT_LINE(probe(pr, "raw 4248563101"), "ok EBADMSG");
    ASSERT_LINE(probe(pr, "raw 00000000010000000100000000000000"), "ok EBADMSG");
    ASSERT_LINE(probe(pr, "raw 42485631ff7f00000100000000000000"), "ok ENOSYS");
    ASSERT_LINE(probe(pr, "raw 42485631010000000100000000000000 70000"), "ok E2BIG");
    ASSERT_LINE(probe(pr, "rawfds"), "ok EBADF");
    /* Out of range: a map of 100000 references in a 16-byte payload. */
    ASSERT_LINE(probe(pr, "raw 4248563104000000010000000000000001000000a0860100"), "ok EINVAL");
    /* A share of 0 pages, and of more than a batch. */
    ASSERT_LINE(probe(pr, "raw 424856310200000001000000000000000000010000000000"), "ok EINVAL");
    ASSERT_LINE(probe(pr, "raw 4248563102000000010000000000000000000100ffffffff"), "ok EINVAL");
    ASSERT_LINE(probe(pr, "hello"), "ok 1");
}

START_TEST(test_hostile_hypercalls)
{
    struct hvw_dominfo a = create("alpha");
    struct probe pa;
    uint8_t junk[16] = {0};
    struct hvw_hello_rsp h;

    probe_start(&pa, &a);
    ck_assert_uint_eq(a.domid, 1);
    hostile_from(&pa);
    probe_stop(&pa);
    /* Dom0's channel gets the same answers, and the daemon is alive after. */
    ck_assert_int_eq(call_raw(dom0, junk, 3, NULL, 0), EBADMSG);
    ck_assert_int_eq(call(dom0, 999, NULL, 0, NULL, 0), ENOSYS);
    ck_assert_int_eq(call(dom0, HVW_OP_DOM_DESTROY, junk, 1, NULL, 0), EINVAL);
    {
        struct hvw_domid_req r = {.domid = 4000};
        ck_assert_int_eq(call(dom0, HVW_OP_DOM_DESTROY, &r, sizeof(r), NULL, 0), ESRCH);
    }
    ck_assert_int_eq(call(dom0, HVW_OP_HELLO, NULL, 0, &h, sizeof(h)), 0);
}
END_TEST

START_TEST(test_create_refusals)
{
    uint8_t buf[512];
    struct hvw_dom_create_req *r = (struct hvw_dom_create_req *)buf;

    create("alpha");
    memset(buf, 0, sizeof(buf));
    snprintf(r->name, sizeof(r->name), "alpha");
    ck_assert_int_eq(call(dom0, HVW_OP_DOM_CREATE, r, sizeof(*r), NULL, 0), EEXIST);
    snprintf(r->name, sizeof(r->name), "bad/name");
    ck_assert_int_eq(call(dom0, HVW_OP_DOM_CREATE, r, sizeof(*r), NULL, 0), EINVAL);
    memset(r->name, 'x', sizeof(r->name)); /* no NUL */
    ck_assert_int_eq(call(dom0, HVW_OP_DOM_CREATE, r, sizeof(*r), NULL, 0), EINVAL);
    snprintf(r->name, sizeof(r->name), "ok");
    r->argc = 1; /* a string that is not there */
    ck_assert_int_eq(call(dom0, HVW_OP_DOM_CREATE, r, sizeof(*r), NULL, 0), EINVAL);
    r->strings_len = 3;
    memcpy(r->strings, "abc", 3); /* no NUL */
    ck_assert_int_eq(call(dom0, HVW_OP_DOM_CREATE, r, sizeof(*r) + 3, NULL, 0), EINVAL);
    ck_assert_int_eq(stats().domains, 2);
}
END_TEST

/* A domain whose program ends is seen to shut down, and watchers are told. */
START_TEST(test_death_is_reported)
{
    static uint8_t buf[4096];
    struct hvw_dom_create_req *r = (struct hvw_dom_create_req *)buf;
    static const char strings[] = "/bin/sh\0-c\0exit 3\0PATH=/bin";
    struct hvw_dominfo info, ev;
    uint8_t msg[HVW_MAX_MSG];
    struct hvw_hdr h;
    struct pollfd p;
    int watch, n;

    if (dom0 < 0)
        dom0 = channel();
    watch = channel();
    ck_assert_int_eq(call(watch, HVW_OP_DOM_WATCH, NULL, 0, NULL, 0), 0);
    memset(buf, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "shortlived");
    r->argc = 3;
    r->envc = 1;
    r->strings_len = sizeof(strings);
    memcpy(r->strings, strings, sizeof(strings));
    ck_assert_int_eq(call(dom0, HVW_OP_DOM_CREATE, r, sizeof(*r) + sizeof(strings), &info,
                          sizeof(info)),
                     0);
    p = (struct pollfd){.fd = watch, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 10000), 1);
    n = (int)recv(watch, msg, sizeof(msg), 0);
    ck_assert_int_eq(n, (int)(sizeof(h) + sizeof(ev)));
    memcpy(&h, msg, sizeof(h));
    memcpy(&ev, msg + sizeof(h), sizeof(ev));
    ck_assert(h.flags & HVW_F_EVENT);
    ck_assert_uint_eq(h.op, HVW_EV_DOMAIN);
    ck_assert_uint_eq(ev.domid, info.domid);
    ck_assert_uint_eq(ev.state, HVW_DOM_SHUTDOWN);
    /* It stays, shut down, until destroyed, as on Xen; then watchers hear it is gone. */
    destroy(info.domid);
    ck_assert_int_eq(poll(&p, 1, 10000), 1);
    ck_assert_int_gt(recv(watch, msg, sizeof(msg), 0), 0);
    memcpy(&ev, msg + sizeof(h), sizeof(ev));
    ck_assert_uint_eq(ev.state, HVW_DOM_GONE);
    close(watch);
}
END_TEST

/*
 * Create and destroy domains that share pages with dom0, have them mapped,
 * and bind event channels, and find the daemon as it was.
 */
static void cycles(int n)
{
    bhgnttab_handle *gt = bhgnttab_open(NULL, 0);
    bhevtchn_handle *ev = bhevtchn_open(NULL, 0);
    struct hvw_stats_rsp before = {0}, after;

    ck_assert_ptr_nonnull(gt);
    ck_assert_ptr_nonnull(ev);
    for (int i = 0; i <= n; i++) {
        struct hvw_dominfo d = create("cycle");
        struct probe p;
        bh_grant_ref_t refs[2];
        const char *l;
        void *m;
        int port, local;

        probe_start(&p, &d);
        l = probe(&p, "share 0 2 rw");
        ASSERT_OK(l);
        refs[0] = (bh_grant_ref_t)field(l, 2);
        refs[1] = (bh_grant_ref_t)field(l, 3);
        m = bhgnttab_map_domain_grant_refs(gt, 2, d.domid, refs, PROT_READ | PROT_WRITE);
        ck_assert_ptr_nonnull(m);
        ((volatile char *)m)[4096] = 1;
        port = (int)field(probe(&p, "evt_unbound 0"), 1);
        local = bhevtchn_bind_interdomain(ev, d.domid, (bh_evtchn_port_t)port);
        ck_assert_int_ge(local, 0);
        probe_stop(&p);
        destroy(d.domid);
        /* Dom0's ends outlive the domain, as on Xen: drop them as a backend would. */
        ck_assert_int_eq(bhgnttab_unmap(gt, m, 2), 0);
        ck_assert_int_eq(bhevtchn_unbind(ev, (bh_evtchn_port_t)local), 0);
        if (i == 0)
            before = stats(); /* after one warm-up cycle */
    }
    after = stats();
    bhevtchn_close(ev);
    bhgnttab_close(gt);
    ck_assert_uint_eq(after.domains, 1);
    ck_assert_uint_eq(after.frames, before.frames);
    ck_assert_uint_eq(after.mappings, before.mappings);
    ck_assert_uint_eq(after.open_fds, before.open_fds);
    ck_assert_uint_eq(after.stored, before.stored);
    ck_assert_uint_eq(after.ports, before.ports);
    ck_assert_uint_eq(after.channels, before.channels);
    /* Memory in use by the allocator: the same give or take a few blocks, whatever n. */
    ck_assert_uint_gt(before.heap_kb, 0); /* the measure works */
    ck_assert_msg(after.heap_kb <= before.heap_kb + 64, "heap grew from %llu to %llu KiB",
                  (unsigned long long)before.heap_kb, (unsigned long long)after.heap_kb);
}

START_TEST(test_lifecycle_leaks_nothing)
{
    const char *n = getenv("BH_HV_CYCLES");

    cycles(n ? atoi(n) : 1000);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hv");
    TCase *tc = tcase_create("hv");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, hv_start, hv_stop);
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_identity_comes_from_the_channel);
    tcase_add_test(tc, test_grant_to_one_domain_only);
    tcase_add_test(tc, test_read_only_grant_stays_read_only);
    tcase_add_test(tc, test_frames_cannot_be_truncated);
    tcase_add_test(tc, test_cannot_end_a_mapped_grant);
    tcase_add_test(tc, test_map_many_sets);
    tcase_add_test(tc, test_32768_grants_per_domain);
    tcase_add_test(tc, test_grant_copy);
    tcase_add_test(tc, test_event_channels);
    tcase_add_test(tc, test_hostile_hypercalls);
    tcase_add_test(tc, test_create_refusals);
    tcase_add_test(tc, test_death_is_reported);
    tcase_add_test(tc, test_lifecycle_leaks_nothing);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
