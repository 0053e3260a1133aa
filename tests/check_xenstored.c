/*
 * check_xenstored.c - bulkhead-xenstored end to end: a bulkhead-hv and a
 * bulkhead-xenstored of its own per test, driven by the real libxenstore
 * in dom0, by the real xenstore-utils inside domains (dombuild_exec, as
 * `bulkhead exec` runs commands), and by raw sockets for every malformed
 * message.  Started as "check_xenstored --in-domain SCENARIO" it is the
 * libxenstore client that runs inside a domain to reach a quota.
 *
 * The daemon's state directory sits in the build tree, which every domain
 * sees through its read-only bind; its hv.sock is a link to the test
 * bulkhead-hv's socket.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xenstore.h>

#include "dombuild.h"
#include "hvwire.h"
#include "testutil.h"
#include "xenstored.h"
#include "bhxenbus.h"

static struct test_hv hv;
static char xsdir[512], xssock[600];
static pid_t xsd_pid;
static struct xs_handle *xs;

/* ---- the daemons ---- */

static int xsd_launch(const char *const *extra)
{
    char bin[1024], ready[16], msg[256] = "";
    const char *argv[16] = {"bulkhead-xenstored", "--state-dir", xsdir, "--ready-fd", ready};
    int p[2], n = 5;
    ssize_t r;

    snprintf(bin, sizeof(bin), "%s/hv/bulkhead-xenstored", test_builddir());
    for (; extra != NULL && *extra != NULL && n < 15; extra++)
        argv[n++] = *extra;
    ck_assert_int_eq(pipe(p), 0);
    if ((xsd_pid = fork()) == 0) {
        close(p[0]);
        snprintf(ready, sizeof(ready), "%d", p[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    r = read(p[0], msg, sizeof(msg) - 1);
    close(p[0]);
    msg[r > 0 ? r : 0] = '\0';
    ck_assert_msg(strcmp(msg, "ok\n") == 0, "bulkhead-xenstored did not start: %s", msg);
    return 0;
}

static void xsd_start(void)
{
    char err[512], link[600], target[600];

    if (geteuid() != 0) {
        printf("SKIP: needs root (namespaces)\n");
        exit(77);
    }
    ck_assert_msg(test_hv_start(&hv, err, sizeof(err)) == 0, "%s", err);
    snprintf(xsdir, sizeof(xsdir), "%s/tests/xs-run-XXXXXX", test_builddir());
    ck_assert_ptr_nonnull(mkdtemp(xsdir));
    ck_assert_int_eq(chmod(xsdir, 0755), 0); /* domains reach the socket through it */
    snprintf(link, sizeof(link), "%s/hv.sock", xsdir);
    snprintf(target, sizeof(target), "%s/hv.sock", hv.state);
    ck_assert_int_eq(symlink(target, link), 0);
    snprintf(xssock, sizeof(xssock), "%s/xenstored.sock", xsdir);
    setenv("XENSTORED_PATH", xssock, 1);
    xsd_launch(NULL);
    xs = xs_open(0);
    ck_assert_ptr_nonnull(xs);
}

static void xsd_kill(void)
{
    int status;

    if (xsd_pid > 0) {
        kill(xsd_pid, SIGTERM);
        waitpid(xsd_pid, &status, 0);
        /* Under ASan a leak at exit fails the daemon: the test must see it. */
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "bulkhead-xenstored exited with status %d", status);
    }
    xsd_pid = 0;
}

static void xsd_stop(void)
{
    char cmd[700];

    if (xs != NULL)
        xs_close(xs);
    xs = NULL;
    xsd_kill();
    test_hv_stop(&hv);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", xsdir);
    if (system(cmd) != 0) {
        /* a leftover directory in the build tree: harmless */
    }
}

/* ---- domains ---- */

static int hv_call(uint16_t op, const void *p, size_t len, void *out, size_t cap)
{
    int rc = test_hv_call(&hv, op, p, len, out, cap);

    ck_assert_msg(rc >= 0, "bulkhead-hv's channel broke: %s", strerror(errno));
    return rc;
}

static struct hvw_dominfo dom_create(const char *name)
{
    static uint8_t buf[1024];
    static const char env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    struct hvw_dom_create_req *r = (struct hvw_dom_create_req *)buf;
    struct hvw_dominfo info;

    memset(buf, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->envc = 1;
    r->strings_len = sizeof(env);
    memcpy(r->strings, env, sizeof(env));
    ck_assert_int_eq(hv_call(HVW_OP_DOM_CREATE, r, sizeof(*r) + sizeof(env), &info, sizeof(info)),
                     0);
    return info;
}

static void dom_destroy(uint16_t domid)
{
    struct hvw_domid_req r = {.domid = domid};

    ck_assert_int_eq(hv_call(HVW_OP_DOM_DESTROY, &r, sizeof(r), NULL, 0), 0);
}

/* What `bulkhead create` does for XenStore: introduce it and give it its home. */
static struct hvw_dominfo dom_up(const char *name)
{
    struct hvw_dominfo d = dom_create(name);
    char home[64];
    struct xs_permissions p[] = {{.id = d.domid, .perms = XS_PERM_NONE}};

    snprintf(home, sizeof(home), "/local/domain/%u", d.domid);
    ck_assert(xs_introduce_domain(xs, d.domid, 1234, 5));
    ck_assert(xs_mkdir(xs, XBT_NULL, home));
    ck_assert(xs_set_permissions(xs, XBT_NULL, home, p, 1));
    return d;
}

/* Runs `sh -c cmd` inside the domain; its stdout and stderr in out; returns its exit status. */
static int dom_run(const struct hvw_dominfo *d, char *out, size_t cap, const char *cmd)
{
    char env_xs[700];
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", env_xs, NULL};
    int p[2], status;
    size_t got = 0;
    ssize_t n;
    pid_t pid;

    snprintf(env_xs, sizeof(env_xs), "XENSTORED_PATH=%s", xssock);
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    if ((pid = fork()) == 0) {
        char err[256];
        dup2(p[1], 1);
        dup2(p[1], 2);
        if (dombuild_exec((pid_t)d->pid, argv, envp, &status, err, sizeof(err)) != 0) {
            printf("dombuild_exec: %s\n", err);
            _exit(126);
        }
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 125);
    }
    close(p[1]);
    while (got + 1 < cap && (n = read(p[0], out + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(p[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- raw sockets ---- */

static int raw_open(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_uint_lt(strlen(xssock), sizeof(sa.sun_path));
    memcpy(sa.sun_path, xssock, strlen(xssock) + 1);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void raw_send(int fd, uint32_t type, uint32_t tx, const void *p, uint32_t len)
{
    struct xsd_sockmsg h = {type, 77, tx, len};

    ck_assert_int_eq(send(fd, &h, sizeof(h), MSG_NOSIGNAL), (ssize_t)sizeof(h));
    if (len > 0)
        ck_assert_int_eq(send(fd, p, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* The next message: 0, or -1 if the connection closed (or nothing came in 5 s). */
static int raw_recv(int fd, struct xsd_sockmsg *h, char *buf, size_t cap)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    size_t got = 0;

    while (got < sizeof(*h)) {
        ssize_t n;
        if (poll(&pf, 1, 5000) != 1 || (n = recv(fd, (char *)h + got, sizeof(*h) - got, 0)) <= 0)
            return -1;
        got += (size_t)n;
    }
    ck_assert_uint_lt(h->len, cap);
    for (got = 0; got < h->len;) {
        ssize_t n;
        if (poll(&pf, 1, 5000) != 1 || (n = recv(fd, buf + got, h->len - got, 0)) <= 0)
            return -1;
        got += (size_t)n;
    }
    buf[h->len] = '\0';
    return 0;
}

/* A request, and its answer as "OK", the payload's first string, or "E<NAME>" for an error. */
static const char *raw_call(int fd, uint32_t type, uint32_t tx, const void *p, uint32_t len)
{
    static char buf[XENSTORE_PAYLOAD_MAX + 8];
    struct xsd_sockmsg h;

    raw_send(fd, type, tx, p, len);
    do
        ck_assert_int_eq(raw_recv(fd, &h, buf, sizeof(buf)), 0);
    while (h.type == XS_WATCH_EVENT);
    ck_assert_uint_eq(h.req_id, 77);
    ck_assert(h.type == type || h.type == XS_ERROR);
    return buf;
}

#define RAW_STR(fd, type, s) raw_call((fd), (type), 0, (s), sizeof(s))

static void in_domain_run(const struct hvw_dominfo *d, const char *what, char *out, size_t cap);

/* ---- dom0 through libxenstore ---- */

static char *rd(const char *path)
{
    static char buf[8192];
    unsigned int len;
    char *v = xs_read(xs, XBT_NULL, path, &len);

    if (v == NULL)
        snprintf(buf, sizeof(buf), "!%s", strerror(errno));
    else
        snprintf(buf, sizeof(buf), "%s", v);
    free(v);
    return buf;
}

START_TEST(test_read_write_directory)
{
    unsigned int n;
    char **dir, *v;

    ck_assert(xs_write(xs, XBT_NULL, "/tool/a/b", "hello", 5));
    ck_assert_str_eq(rd("/tool/a/b"), "hello");
    ck_assert_str_eq(rd("/tool/a"), ""); /* made on the way, empty */
    ck_assert(xs_mkdir(xs, XBT_NULL, "/tool/a/c"));
    ck_assert(xs_mkdir(xs, XBT_NULL, "/tool/a/c")); /* exists: fine */
    dir = xs_directory(xs, XBT_NULL, "/tool/a", &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(dir[0], "b");
    ck_assert_str_eq(dir[1], "c");
    free(dir);
    /* Binary values survive. */
    ck_assert(xs_write(xs, XBT_NULL, "/tool/bin", "a\0b", 3));
    free(xs_read(xs, XBT_NULL, "/tool/bin", &n));
    ck_assert_uint_eq(n, 3);
    /* Relative paths live under dom0's own home. */
    ck_assert(xs_write(xs, XBT_NULL, "rel", "x", 1));
    ck_assert_str_eq(rd("/local/domain/0/rel"), "x");
    v = xs_get_domain_path(xs, 7);
    ck_assert_str_eq(v, "/local/domain/7");
    free(v);
    /* RM takes the subtree; a missing node with a parent is fine, without one is not. */
    ck_assert(xs_rm(xs, XBT_NULL, "/tool/a"));
    ck_assert_str_eq(rd("/tool/a/b"), "!No such file or directory");
    ck_assert(xs_rm(xs, XBT_NULL, "/tool/a"));
    ck_assert(!xs_rm(xs, XBT_NULL, "/tool/a/x/y"));
    ck_assert_int_eq(errno, ENOENT);
    ck_assert(!xs_rm(xs, XBT_NULL, "/"));
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(test_directory_too_big_for_one_reply)
{
    char path[64], buf[64];
    unsigned int n;
    char **dir;
    int fd;

    /* 600 children of 14 bytes each: over 8 KiB of names. */
    for (int i = 0; i < 600; i++) {
        snprintf(path, sizeof(path), "/big/child-%07d", i);
        ck_assert(xs_write(xs, XBT_NULL, path, "", 0));
    }
    fd = raw_open();
    ck_assert_str_eq(RAW_STR(fd, XS_DIRECTORY, "/big"), "E2BIG");
    ck_assert_str_eq(raw_call(fd, XS_DIRECTORY_PART, 0,
                              "/big\0"
                              "99999",
                              11),
                     "EINVAL");
    close(fd);
    dir = xs_directory(xs, XBT_NULL, "/big", &n); /* libxenstore falls back to DIRECTORY_PART */
    ck_assert_ptr_nonnull(dir);
    ck_assert_uint_eq(n, 600);
    for (int i = 0; i < 600; i++) {
        snprintf(buf, sizeof(buf), "child-%07d", i);
        ck_assert_str_eq(dir[i], buf);
    }
    free(dir);
}
END_TEST

START_TEST(test_permissions_from_two_domains)
{
    struct hvw_dominfo a = dom_up("alpha"), b = dom_up("beta"), c = dom_create("gamma");
    char out[4096], cmd[512], path[128];
    struct xs_permissions p[2];
    unsigned int n;

    /* A writes in its own home (relative), and owns what it makes. */
    ck_assert_int_eq(dom_run(&a, out, sizeof(out), "xenstore-write data/secret s3cret"), 0);
    snprintf(path, sizeof(path), "/local/domain/%u/data/secret", a.domid);
    ck_assert_str_eq(rd(path), "s3cret");
    free(xs_get_permissions(xs, XBT_NULL, path, &n));
    struct xs_permissions *gp = xs_get_permissions(xs, XBT_NULL, path, &n);
    ck_assert_uint_eq(gp[0].id, a.domid);
    free(gp);
    /* B may not read it, nor learn more than EACCES, even of what is not there. */
    snprintf(cmd, sizeof(cmd), "xenstore-read %s", path);
    ck_assert_int_ne(dom_run(&b, out, sizeof(out), cmd), 0);
    snprintf(cmd, sizeof(cmd), "read:%s", path);
    in_domain_run(&b, cmd, out, sizeof(out));
    ck_assert_str_eq(out, "0 Permission denied\n");
    snprintf(cmd, sizeof(cmd), "read:%s/nothing/here", path);
    in_domain_run(&b, cmd, out, sizeof(out));
    ck_assert_str_eq(out, "0 Permission denied\n");
    in_domain_run(&b, "read:/nothing/here", out, sizeof(out)); /* "/" is n0: nobody else reads it */
    ck_assert_str_eq(out, "0 Permission denied\n");
    /* A grants B read access: B reads, and still may not write. */
    snprintf(cmd, sizeof(cmd), "xenstore-chmod %s n%u r%u", path, a.domid, b.domid);
    ck_assert_int_eq(dom_run(&a, out, sizeof(out), cmd), 0);
    snprintf(cmd, sizeof(cmd), "xenstore-read %s", path);
    ck_assert_int_eq(dom_run(&b, out, sizeof(out), cmd), 0);
    ck_assert_str_eq(out, "s3cret\n");
    snprintf(cmd, sizeof(cmd), "xenstore-write %s x", path);
    ck_assert_int_ne(dom_run(&b, out, sizeof(out), cmd), 0);
    /* Only dom0 changes an owner. */
    snprintf(cmd, sizeof(cmd), "xenstore-chmod %s n%u", path, b.domid);
    ck_assert_int_ne(dom_run(&a, out, sizeof(out), cmd), 0);
    p[0] = (struct xs_permissions){.id = b.domid, .perms = XS_PERM_NONE};
    ck_assert(xs_set_permissions(xs, XBT_NULL, path, p, 1));
    /* Now B owns it: full access, and A has none. */
    snprintf(cmd, sizeof(cmd), "xenstore-write %s mine", path);
    ck_assert_int_eq(dom_run(&b, out, sizeof(out), cmd), 0);
    snprintf(cmd, sizeof(cmd), "xenstore-read %s", path);
    ck_assert_int_ne(dom_run(&a, out, sizeof(out), cmd), 0);
    /* B cannot write in A's home (owned by A, no access for others). */
    snprintf(cmd, sizeof(cmd), "xenstore-write /local/domain/%u/data/x y", a.domid);
    ck_assert_int_ne(dom_run(&b, out, sizeof(out), cmd), 0);
    ck_assert_msg(strstr(out, "could not write path") != NULL, "%s", out);
    snprintf(path, sizeof(path), "/local/domain/%u/data/x", a.domid);
    ck_assert_str_eq(rd(path), "!No such file or directory");
    /* A domain that was never introduced cannot talk at all. */
    ck_assert_int_ne(dom_run(&c, out, sizeof(out), "xenstore-read /local"), 0);
    /* xenstore-ls and -list see what they may. */
    snprintf(cmd, sizeof(cmd), "xenstore-list /local/domain/%u", a.domid);
    ck_assert_int_eq(dom_run(&a, out, sizeof(out), cmd), 0);
    ck_assert_str_eq(out, "data\n");
    ck_assert_int_eq(dom_run(&a, out, sizeof(out), "xenstore-exists data"), 0);
    ck_assert_int_ne(dom_run(&a, out, sizeof(out), "xenstore-exists nothing"), 0);
    snprintf(cmd, sizeof(cmd), "xenstore-rm data && xenstore-ls /local/domain/%u", a.domid);
    ck_assert_msg(dom_run(&a, out, sizeof(out), cmd) == 0, "%s", out);
    ck_assert_str_eq(out, "");
}
END_TEST

/* The next watch event of handle h, or NULL after a second. */
static char *next_event(struct xs_handle *h)
{
    static char buf[1024];
    struct pollfd p = {.fd = xs_fileno(h), .events = POLLIN};
    unsigned int n;
    char **v;

    if (poll(&p, 1, 1000) != 1 || (v = xs_read_watch(h, &n)) == NULL)
        return NULL;
    snprintf(buf, sizeof(buf), "%s %s", v[XS_WATCH_PATH], v[XS_WATCH_TOKEN]);
    free(v);
    return buf;
}

START_TEST(test_watches_fire_and_respect_permissions)
{
    struct hvw_dominfo a = dom_up("alpha"), b = dom_up("beta");
    struct xs_handle *w = xs_open(0);
    char out[4096], cmd[1024], pub[96], secret[96];
    struct xs_permissions p[2];
    const char *e;
    pid_t pid;

    ck_assert(xs_watch(w, "/wt", "tok"));
    ck_assert_str_eq(next_event(w), "/wt tok"); /* once, at once */
    ck_assert(xs_write(xs, XBT_NULL, "/wt/x/y", "1", 1));
    ck_assert_str_eq(next_event(w), "/wt/x/y tok");
    ck_assert(xs_write(xs, XBT_NULL, "/other", "1", 1));
    ck_assert(xs_rm(xs, XBT_NULL, "/wt/x"));
    e = next_event(w);
    ck_assert(strcmp(e, "/wt/x tok") == 0 || strcmp(e, "/wt/x/y tok") == 0);
    while ((e = next_event(w)) != NULL) /* one per removed node */
        ck_assert(strcmp(e, "/wt/x tok") == 0 || strcmp(e, "/wt/x/y tok") == 0);
    /* A watch below a removed subtree hears its own path. */
    ck_assert(xs_write(xs, XBT_NULL, "/wt/deep/er", "1", 1));
    ck_assert_str_eq(next_event(w), "/wt/deep/er tok");
    ck_assert(xs_watch(w, "/wt/deep/er/still", "t2"));
    ck_assert_str_eq(next_event(w), "/wt/deep/er/still t2");
    ck_assert(xs_unwatch(w, "/wt", "tok"));
    ck_assert(xs_rm(xs, XBT_NULL, "/wt/deep"));
    ck_assert_str_eq(next_event(w), "/wt/deep/er/still t2");
    ck_assert(!xs_unwatch(w, "/wt", "tok"));
    xs_close(w);

    /* XSA-115: B watches a node of A it may read and one it may not. */
    snprintf(pub, sizeof(pub), "/local/domain/%u/pub", a.domid);
    snprintf(secret, sizeof(secret), "/local/domain/%u/secret", a.domid);
    p[0] = (struct xs_permissions){.id = a.domid, .perms = XS_PERM_NONE};
    p[1] = (struct xs_permissions){.id = b.domid, .perms = XS_PERM_READ};
    ck_assert(xs_mkdir(xs, XBT_NULL, pub));
    ck_assert(xs_set_permissions(xs, XBT_NULL, pub, p, 2));
    ck_assert(xs_mkdir(xs, XBT_NULL, secret));
    ck_assert(xs_set_permissions(xs, XBT_NULL, secret, p, 1));
    snprintf(cmd, sizeof(cmd),
             "timeout 4 xenstore-watch %s & timeout 4 xenstore-watch %s & "
             "timeout 4 xenstore-watch data & wait",
             pub, secret);
    if ((pid = fork()) == 0) {
        sleep(2); /* the watches are set */
        char c1[256], c2[256];
        snprintf(c1, sizeof(c1), "xenstore-write %s/x 1 %s/x 2", pub, secret);
        snprintf(c2, sizeof(c2), "xenstore-write data/rel 3");
        _exit(dom_run(&a, out, sizeof(out), c1) || dom_run(&b, out, sizeof(out), c2));
    }
    dom_run(&b, out, sizeof(out), cmd);
    waitpid(pid, NULL, 0);
    snprintf(cmd, sizeof(cmd), "%s/x\n", pub);
    ck_assert_msg(strstr(out, cmd) != NULL, "no event for the readable node: %s", out);
    snprintf(cmd, sizeof(cmd), "%s/x\n", secret);
    ck_assert_msg(strstr(out, cmd) == NULL, "an event for an unreadable node: %s", out);
    snprintf(cmd, sizeof(cmd), "%s\n", secret);
    ck_assert_msg(strstr(out, cmd) != NULL, "no initial event: %s", out);
    /* A relative watch hears relative paths. */
    ck_assert_msg(strstr(out, "\ndata/rel\n") != NULL || strncmp(out, "data/rel\n", 9) == 0,
                  "no relative event: %s", out);
}
END_TEST

START_TEST(test_introduce_and_release_domain)
{
    struct xs_handle *w = xs_open(0);
    struct hvw_dominfo a;
    char path[64];
    int fd;

    ck_assert(xs_watch(w, "@introduceDomain", "in"));
    ck_assert(xs_watch(w, "@releaseDomain", "out"));
    ck_assert_str_eq(next_event(w), "@introduceDomain in");
    ck_assert_str_eq(next_event(w), "@releaseDomain out");
    a = dom_up("alpha");
    ck_assert_str_eq(next_event(w), "@introduceDomain in");
    ck_assert(xs_is_domain_introduced(xs, a.domid));
    ck_assert(xs_is_domain_introduced(xs, 0));
    ck_assert(!xs_is_domain_introduced(xs, 999));
    /* Its own node, owned by it: gone with it. */
    snprintf(path, sizeof(path), "/local/domain/%u/data", a.domid);
    struct xs_permissions p[] = {{.id = a.domid, .perms = XS_PERM_NONE}};
    ck_assert(xs_write(xs, XBT_NULL, path, "x", 1));
    ck_assert(xs_set_permissions(xs, XBT_NULL, path, p, 1));
    dom_destroy(a.domid);
    ck_assert_str_eq(next_event(w), "@releaseDomain out");
    ck_assert(!xs_is_domain_introduced(xs, a.domid));
    ck_assert_str_eq(rd(path), "!No such file or directory");
    /* Dom0 only; RELEASE of what is not there. */
    ck_assert(!xs_release_domain(xs, a.domid));
    ck_assert_int_eq(errno, ENOENT);
    ck_assert(!xs_introduce_domain(xs, 4000, 1, 1)); /* no such domain */
    ck_assert_int_eq(errno, EINVAL);
    fd = raw_open();
    ck_assert_str_eq(raw_call(fd, XS_INTRODUCE, 0,
                              "1\0"
                              "2",
                              4),
                     "EINVAL");
    ck_assert_str_eq(RAW_STR(fd, XS_RESUME, "12345"), "ENOENT");
    ck_assert_str_eq(raw_call(fd, XS_SET_TARGET, 0,
                              "1\0"
                              "2",
                              4),
                     "ENOENT");
    close(fd);
    xs_close(w);
}
END_TEST

START_TEST(test_set_target_gives_the_target_powers)
{
    struct hvw_dominfo a = dom_up("alpha"), dm = dom_up("devmodel");
    char out[4096], cmd[256];

    snprintf(cmd, sizeof(cmd), "xenstore-write /local/domain/%u/x 1", a.domid);
    ck_assert_int_ne(dom_run(&dm, out, sizeof(out), cmd), 0);
    ck_assert(xs_set_target(xs, dm.domid, a.domid));
    ck_assert_int_eq(dom_run(&dm, out, sizeof(out), cmd), 0);
}
END_TEST

START_TEST(test_transactions)
{
    struct xs_handle *other = xs_open(0);
    xs_transaction_t t;
    unsigned int len;
    char *v;
    int fd;

    /* Commit: nothing seen before, everything after. */
    t = xs_transaction_start(xs);
    ck_assert(t != XBT_NULL);
    ck_assert(xs_write(xs, t, "/tx/a", "1", 1));
    ck_assert_str_eq(rd("/tx/a"), "!No such file or directory");
    v = xs_read(xs, t, "/tx/a", &len);
    ck_assert_str_eq(v, "1");
    free(v);
    ck_assert(xs_transaction_end(xs, t, false));
    ck_assert_str_eq(rd("/tx/a"), "1");
    /* Abort: nothing. */
    t = xs_transaction_start(xs);
    ck_assert(xs_write(xs, t, "/tx/b", "2", 1));
    ck_assert(xs_transaction_end(xs, t, true));
    ck_assert_str_eq(rd("/tx/b"), "!No such file or directory");
    /* Conflict: what it read changed meanwhile. */
    t = xs_transaction_start(xs);
    free(xs_read(xs, t, "/tx/a", &len));
    ck_assert(xs_write(other, XBT_NULL, "/tx/a", "3", 1));
    ck_assert(xs_write(xs, t, "/tx/c", "4", 1));
    ck_assert(!xs_transaction_end(xs, t, false));
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_str_eq(rd("/tx/c"), "!No such file or directory");
    /* No conflict when others touch what it did not. */
    t = xs_transaction_start(xs);
    free(xs_read(xs, t, "/tx/a", &len));
    ck_assert(xs_write(other, XBT_NULL, "/elsewhere", "5", 1));
    ck_assert(xs_transaction_end(xs, t, false));
    /* Unknown transaction ids, nesting, bad arguments. */
    fd = raw_open();
    ck_assert_str_eq(raw_call(fd, XS_READ, 4242, "/tx/a", 6), "ENOENT");
    ck_assert_str_eq(RAW_STR(fd, XS_TRANSACTION_END, "T"), "ENOENT");
    t = (xs_transaction_t)strtoul(RAW_STR(fd, XS_TRANSACTION_START, ""), NULL, 10);
    ck_assert_uint_ne(t, 0);
    ck_assert_str_eq(raw_call(fd, XS_TRANSACTION_START, t, "", 1), "EBUSY");
    ck_assert_str_eq(raw_call(fd, XS_TRANSACTION_END, t, "X", 2), "EINVAL");
    ck_assert_str_eq(raw_call(fd, XS_TRANSACTION_END, t, "F", 2), "OK");
    close(fd);
    xs_close(other);
}
END_TEST

/* ---- XenBus between two domains: libbhxenbus over the real daemon ---- */

struct xbpeer {
    struct xs_handle *xs;
    bhxb_watches *w;
    struct bhxb_machine m;
    char self[BHXB_PATH_MAX], peer[BHXB_PATH_MAX];
    char trace[512]; /* every state we wrote, in order */
    uint32_t ring_ref, evtchn;
    bool persistent, was_connected;
};

static int xbpeer_set_state(void *arg, XenbusState st)
{
    struct xbpeer *x = arg;
    size_t n = strlen(x->trace);

    if (bhxb_switch_state(x->xs, x->self, st) != 0)
        return -1;
    snprintf(x->trace + n, sizeof(x->trace) - n, "%s%s", n ? " " : "", bhxb_state_name(st));
    x->was_connected |= st == XenbusStateConnected;
    return 0;
}

static int xbpeer_publish(void *arg, char *why, size_t len)
{
    struct xbpeer *x = arg;
    bool yes = true;
    unsigned int ref = 8, port = 5;
    struct bhxb_key back[] = {{"feature-persistent", BHXB_BOOL, &yes, 0, false, 0}};
    struct bhxb_key front[] = {{"ring-ref", BHXB_UINT, &ref, 0, false, 0},
                               {"event-channel", BHXB_UINT, &port, 0, false, 0}};
    int r = x->m.view.role == BHXB_BACKEND ? bhxb_write_keys(x->xs, x->self, back, 1)
                                           : bhxb_write_keys(x->xs, x->self, front, 2);

    if (r != 0)
        snprintf(why, len, "writing %s: %s", x->self, strerror(errno));
    return r;
}

static int xbpeer_connect(void *arg, char *why, size_t len)
{
    struct xbpeer *x = arg;
    const char *bad = NULL;
    struct bhxb_key back[] = {{"feature-persistent", BHXB_BOOL, &x->persistent, 0, false, 0}};
    struct bhxb_key front[] = {{"ring-ref", BHXB_UINT, &x->ring_ref, 0, true, 0},
                               {"event-channel", BHXB_UINT, &x->evtchn, 0, true, 0}};
    int r = x->m.view.role == BHXB_FRONTEND ? bhxb_read_keys(x->xs, x->peer, back, 1, &bad)
                                            : bhxb_read_keys(x->xs, x->peer, front, 2, &bad);

    if (r != 0)
        snprintf(why, len, "reading %s/%s: %s", x->peer, bad ? bad : "?", strerror(errno));
    return r;
}

static const struct bhxb_driver xbpeer_driver = {
    .publish = xbpeer_publish,
    .connect = xbpeer_connect,
    .set_state = xbpeer_set_state,
};

static void xbpeer_changed(void *arg, const char *path)
{
    struct xbpeer *x = arg;

    (void)path;
    if (x->m.view.role == BHXB_FRONTEND)
        x->m.view.peer_online = bhxb_peer_online(x->xs, x->peer);
    else
        x->m.view.online = bhxb_read_online(x->xs, x->self);
    if (bhxb_machine_step(&x->m, bhxb_read_state(x->xs, x->peer), &xbpeer_driver, x) < 0)
        printf("step: %s\n", strerror(errno));
}

/*
 * "xb-front:SELF:PEER" or "xb-back:SELF:PEER": one end of a device, run from
 * watches until it was Connected and is Closed again; prints what it wrote.
 */
static int in_domain_xenbus(const char *what)
{
    struct xbpeer x = {0};
    const char *a = strchr(what, ':'), *b = a ? strchr(a + 1, ':') : NULL;
    char path[BHXB_PATH_MAX + 16];

    if (b == NULL || (x.xs = xs_open(0)) == NULL || (x.w = bhxb_watches_new(x.xs)) == NULL)
        return 1;
    snprintf(x.self, sizeof(x.self), "%.*s", (int)(b - a - 1), a + 1);
    snprintf(x.peer, sizeof(x.peer), "%s", b + 1);
    bhxb_machine_init(&x.m, strncmp(what, "xb-back", 7) == 0 ? BHXB_BACKEND : BHXB_FRONTEND);
    x.m.view.ready = true;
    snprintf(path, sizeof(path), "%s/state", x.peer);
    if (bhxb_watch_add(x.w, path, xbpeer_changed, &x) < 0)
        return 1;
    if (x.m.view.role == BHXB_BACKEND) {
        /* The toolstack's online=0 is how a backend learns to close. */
        snprintf(path, sizeof(path), "%s/online", x.self);
        if (bhxb_watch_add(x.w, path, xbpeer_changed, &x) < 0)
            return 1;
    }
    while (!(x.was_connected && x.m.view.ours == XenbusStateClosed)) {
        struct pollfd p = {bhxb_watches_fd(x.w), POLLIN, 0};
        if (poll(&p, 1, 30000) != 1) {
            printf("stalled after: %s\n", x.trace);
            return 1;
        }
        if (bhxb_watches_dispatch(x.w) < 0)
            return 1;
    }
    printf("%s; %s %u/%u\n", x.trace, x.m.view.role == BHXB_BACKEND ? "read" : "persistent",
           x.m.view.role == BHXB_BACKEND ? x.ring_ref : (unsigned int)x.persistent,
           x.m.view.role == BHXB_BACKEND ? x.evtchn : 0u);
    bhxb_watches_free(x.w);
    xs_close(x.xs);
    return 0;
}

/* ---- quotas ---- */

static int in_domain_outstanding(void);
static int in_domain_outstanding_close(void);

/* The client inside a domain: counts what it may do before its quota says no. */
static int in_domain(const char *what)
{
    struct xs_handle *h;
    char path[64], big[2100];
    int n = 0;

    if (strcmp(what, "outstanding") == 0)
        return in_domain_outstanding();
    if (strcmp(what, "outstanding-close") == 0)
        return in_domain_outstanding_close();
    if (strncmp(what, "xb-", 3) == 0)
        return in_domain_xenbus(what);
    if ((h = xs_open(0)) == NULL) {
        printf("cannot open: %s\n", strerror(errno));
        return 1;
    }
    if (strcmp(what, "watches") == 0) {
        for (errno = 0; n < 1000; n++) {
            snprintf(path, sizeof(path), "w%d", n);
            if (!xs_watch(h, "data", path))
                break;
        }
    } else if (strncmp(what, "read:", 5) == 0) {
        unsigned int len;
        char *v = xs_read(h, XBT_NULL, what + 5, &len);
        n = v != NULL;
        free(v);
    } else if (strcmp(what, "transactions") == 0) {
        for (errno = 0; n < 1000 && xs_transaction_start(h) != XBT_NULL; n++)
            ;
    } else if (strcmp(what, "nodes") == 0) {
        for (errno = 0; n < 5000; n++) {
            snprintf(path, sizeof(path), "data/n%d", n);
            if (!xs_write(h, XBT_NULL, path, "", 0))
                break;
        }
    } else if (strcmp(what, "memory") == 0) {
        /* 1000-byte nodes until the memory quota says no: the count of those that went in. */
        memset(big, 'm', 1000);
        for (errno = 0; n < 5000; n++) {
            snprintf(path, sizeof(path), "data/m%d", n);
            if (!xs_write(h, XBT_NULL, path, big, 1000))
                break;
        }
    } else if (strcmp(what, "node-size") == 0) {
        memset(big, 'x', sizeof(big));
        n = xs_write(h, XBT_NULL, "data/big", big, 2000);
        if (n == 1 && xs_write(h, XBT_NULL, "data/big", big, sizeof(big)))
            n++;
    } else if (strcmp(what, "permissions") == 0) {
        struct xs_permissions p[6];
        char *home = xs_get_domain_path(h, (unsigned int)atoi(getenv("DOMID")));
        for (int i = 0; i < 6; i++)
            p[i] = (struct xs_permissions){
                .id = (unsigned int)(i ? 100 + i : atoi(getenv("DOMID"))), .perms = XS_PERM_READ};
        snprintf(path, sizeof(path), "%s/data/p", home);
        free(home);
        n = xs_write(h, XBT_NULL, path, "", 0) + xs_set_permissions(h, XBT_NULL, path, p, 5) +
            xs_set_permissions(h, XBT_NULL, path, p, 6);
    }
    printf("%d %s\n", n, strerror(errno));
    xs_close(h);
    return 0;
}

/* Reads whole replies until total came (or nothing for wait_ms); returns how many. */
static int count_replies(int fd, int wait_ms, int total)
{
    static char buf[16 + XENSTORE_PAYLOAD_MAX];
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    size_t got = 0;
    int n = 0;

    while (n < total && poll(&pf, 1, wait_ms) == 1) {
        ssize_t r = recv(fd, buf + got, sizeof(buf) - got, MSG_DONTWAIT);
        struct xsd_sockmsg h;
        if (r <= 0)
            break;
        got += (size_t)r;
        while (got >= sizeof(h) && (memcpy(&h, buf, sizeof(h)), got >= sizeof(h) + h.len)) {
            memmove(buf, buf + sizeof(h) + h.len, got - sizeof(h) - h.len);
            got -= sizeof(h) + h.len;
            n++;
        }
    }
    return n;
}

/* Sends 100 requests without reading; how many replies came before it read, then in all. */
static int in_domain_outstanding(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct xsd_sockmsg h = {XS_READ, 1, 0, 2};
    char msg[18];
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), before;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", getenv("XENSTORED_PATH"));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return 1;
    memcpy(msg, &h, sizeof(h));
    memcpy(msg + sizeof(h), "/", 2);
    for (int i = 0; i < 100; i++)
        if (send(fd, msg, sizeof(msg), 0) != (ssize_t)sizeof(msg))
            return 1;
    sleep(1);
    /* A snapshot: what the daemon sent while we read nothing (each reply is 16 bytes). */
    if (ioctl(fd, FIONREAD, &before) != 0)
        return 1;
    printf("%d %d\n", before / 16, count_replies(fd, 3000, 100));
    close(fd);
    return 0;
}

static int connect_xenstored(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", getenv("XENSTORED_PATH"));
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return -1;
    return fd;
}

/*
 * One connection takes the domain over its outstanding quota and goes away
 * without reading; a second one, which asked meanwhile, must then be
 * answered.  Prints how many replies the second got.
 */
static int in_domain_outstanding_close(void)
{
    struct xsd_sockmsg h = {XS_READ, 1, 0, 2};
    char msg[18];
    int hog = connect_xenstored(), asker;

    memcpy(msg, &h, sizeof(h));
    memcpy(msg + sizeof(h), "/", 2);
    if (hog < 0)
        return 1;
    for (int i = 0; i < 100; i++)
        if (send(hog, msg, sizeof(msg), 0) != (ssize_t)sizeof(msg))
            return 1;
    sleep(1); /* the daemon has queued what the socket would not take: over the quota */
    if ((asker = connect_xenstored()) < 0 || send(asker, msg, sizeof(msg), 0) != (ssize_t)sizeof(msg))
        return 1;
    sleep(1); /* it arrived while the domain was over: not read */
    close(hog);
    printf("%d\n", count_replies(asker, 5000, 1));
    close(asker);
    return 0;
}

static void in_domain_run(const struct hvw_dominfo *d, const char *what, char *out, size_t cap)
{
    char cmd[1400];

    snprintf(cmd, sizeof(cmd), "DOMID=%u %s/tests/check_xenstored --in-domain %s", d->domid,
             test_builddir(), what);
    ck_assert_msg(dom_run(d, out, cap, cmd) == 0, "%s: %s", cmd, out);
}

START_TEST(test_quotas_fail_only_their_domain)
{
    struct hvw_dominfo a = dom_up("alpha"), b = dom_up("beta");
    char out[4096], data[64];
    struct xs_permissions p[] = {{.id = a.domid, .perms = XS_PERM_NONE}};
    const char *ctl = getenv("XENSTORE_CONTROL");
    char *ctl_out;

    snprintf(data, sizeof(data), "/local/domain/%u/data", a.domid);
    ck_assert(xs_mkdir(xs, XBT_NULL, data));
    ck_assert(xs_set_permissions(xs, XBT_NULL, data, p, 1));
    in_domain_run(&a, "watches", out, sizeof(out));
    ck_assert_str_eq(out, "128 Argument list too long\n");
    in_domain_run(&a, "transactions", out, sizeof(out));
    ck_assert_str_eq(out, "10 No space left on device\n");
    in_domain_run(&a, "node-size", out, sizeof(out));
    ck_assert_str_eq(out, "1 No space left on device\n");
    in_domain_run(&a, "permissions", out, sizeof(out));
    ck_assert_str_eq(out, "2 No space left on device\n");
    /* Lower the node quota through CONTROL, as xenstore-control does; A owns 4 nodes already:
     * its home, data, data/big and data/p. */
    ctl_out = xs_control_command(xs, "quota",
                                 "set\0nodes\0"
                                 "50",
                                 13);
    ck_assert_str_eq(ctl_out, "OK");
    free(ctl_out);
    in_domain_run(&a, "nodes", out, sizeof(out));
    ck_assert_str_eq(out, "46 No space left on device\n");
    /* B, and dom0, are not hurt. */
    ck_assert_int_eq(dom_run(&b, out, sizeof(out), "xenstore-write mine 1 && xenstore-read mine"),
                     0);
    ck_assert_str_eq(out, "1\n");
    ck_assert(xs_write(xs, XBT_NULL, "/dom0/still", "ok", 2));
    /* The real xenstore-control, when there is one. */
    if (ctl != NULL && access(ctl, X_OK) == 0) {
        char cmd[700];
        FILE *f;
        snprintf(cmd, sizeof(cmd), "%s quota", ctl);
        ck_assert_ptr_nonnull(f = popen(cmd, "r"));
        ck_assert_uint_gt(fread(out, 1, sizeof(out) - 1, f), 0);
        pclose(f);
        ck_assert_ptr_nonnull(strstr(out, "nodes            :       50 Nodes per domain"));
    }
}
END_TEST

START_TEST(test_quota_option)
{
    const char *const extra[] = {"--quota", "watches=2", NULL};
    char *q;

    xsd_kill();
    xs_close(xs);
    xsd_launch(extra);
    xs = xs_open(0);
    q = xs_control_command(xs, "quota", NULL, 0);
    ck_assert_ptr_nonnull(strstr(q, "watches          :        2"));
    free(q);
    ck_assert_ptr_null(xs_control_command(xs, "quota",
                                          "set\0nodes\0"
                                          "0",
                                          12));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(xs_control_command(xs, "nonsense", NULL, 0));
}
END_TEST

static bool log_has(const char *needle)
{
    char path[600], line[512];
    bool found = false;
    FILE *f;

    snprintf(path, sizeof(path), "%s/xenstored.log", xsdir);
    if ((f = fopen(path, "re")) == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* Xen 4.17's memory quota: the hard one refuses with ENOMEM, the soft one only logs. */
START_TEST(test_memory_quota_hard_and_soft)
{
    struct hvw_dominfo a = dom_up("alpha"), b = dom_up("beta");
    struct xs_permissions p[] = {{.id = a.domid, .perms = XS_PERM_NONE}};
    char out[4096], data[64], needle[96], *q;
    int made;

    q = xs_control_command(xs, "quota-soft", NULL, 0);
    ck_assert_ptr_nonnull(strstr(q, "memory           :  2097152 Total Xenstore memory per "
                                    "domain (warning level)"));
    free(q);
    q = xs_control_command(xs, "quota", NULL, 0);
    ck_assert_ptr_nonnull(strstr(q, "memory           :  2621440"));
    free(q);
    ck_assert_ptr_nonnull(q = xs_control_command(xs, "quota-soft", "set\0memory\0" "20000", 17));
    free(q);
    ck_assert_ptr_nonnull(q = xs_control_command(xs, "quota", "set\0memory\0" "40000", 17));
    free(q);
    ck_assert_ptr_null(xs_control_command(xs, "quota-soft", "set\0nodes\0" "5", 12));
    ck_assert_int_eq(errno, EINVAL);

    snprintf(data, sizeof(data), "/local/domain/%u/data", a.domid);
    ck_assert(xs_mkdir(xs, XBT_NULL, data));
    ck_assert(xs_set_permissions(xs, XBT_NULL, data, p, 1));
    in_domain_run(&a, "memory", out, sizeof(out));
    /* Each node costs about 1050 bytes; the check comes before a write, so the last one that
     * went in took the domain to 40000 or just past it. */
    made = atoi(out);
    ck_assert_msg(made >= 30 && made <= 40, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "Cannot allocate memory"));
    snprintf(needle, sizeof(needle), "domain %u exceeds soft memory quota", a.domid);
    ck_assert_msg(log_has(needle), "no '%s' in the log", needle);
    snprintf(needle, sizeof(needle), "domain %u exceeds hard memory quota", a.domid);
    ck_assert_msg(log_has(needle), "no '%s' in the log", needle);
    snprintf(needle, sizeof(needle), "%u", a.domid);
    ck_assert_ptr_nonnull(q = xs_control_command(xs, "quota", needle, strlen(needle) + 1));
    ck_assert_ptr_nonnull(strstr(q, "memory           :    4"));
    free(q);
    /* B is not hurt; removing frees A's memory and A may write again. */
    ck_assert_int_eq(dom_run(&b, out, sizeof(out), "xenstore-write mine 1 && xenstore-read mine"),
                     0);
    ck_assert_str_eq(out, "1\n");
    ck_assert_int_eq(dom_run(&a, out, sizeof(out), "xenstore-rm data/m1 data/m2 data/m3 "
                                                   "data/m4 data/m5 data/m6 data/m7 data/m8 "
                                                   "&& xenstore-write data/again 1"),
                     0);
    snprintf(needle, sizeof(needle), "domain %u below hard memory quota again", a.domid);
    ck_assert_msg(log_has(needle), "no '%s' in the log", needle);
}
END_TEST

/* Waits (watch-free: dom0 polls) until path reads want; false after ~30 s. */
static bool wait_value(const char *path, const char *want)
{
    for (int i = 0; i < 3000; i++) {
        unsigned int n;
        char *v = xs_read(xs, XBT_NULL, path, &n);
        bool same = v != NULL && strcmp(v, want) == 0;
        free(v);
        if (same)
            return true;
        usleep(10000);
    }
    return false;
}

/* Forks dom_run(cmd) in d; the child writes its output to fd. */
static pid_t dom_run_bg(const struct hvw_dominfo *d, const char *cmd, int fd)
{
    pid_t pid = fork();

    if (pid == 0) {
        char out[2048];
        int rc = dom_run(d, out, sizeof(out), cmd);
        dprintf(fd, "%d %s", rc, out);
        _exit(0);
    }
    ck_assert_int_ge(pid, 0);
    return pid;
}

static void read_all(int fd, char *out, size_t cap)
{
    size_t got = 0;
    ssize_t n;

    while (got + 1 < cap && (n = read(fd, out + got, cap - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
}

/*
 * libbhxenbus end to end: dom0 writes a vbd's layout as libxl does, a
 * frontend in one domain and a backend in another shake hands through the
 * real daemon, with the permissions the layout gives them, then the
 * toolstack's detach (online=0, Closing) takes both to Closed.
 */
START_TEST(test_xenbus_handshake_between_domains)
{
    struct hvw_dominfo g = dom_up("guest"), d = dom_up("drv");
    struct bhxb_dev dv = {"vbd", NULL, g.domid, d.domid, 51712};
    struct bhxb_layout *l = bhxb_layout_new(&dv);
    char cmd[1200], out[2][2048], path[BHXB_PATH_MAX + 16];
    int pf[2], pb[2];
    pid_t cf, cb;

    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(bhxb_layout_write(xs, l), 0);
    ck_assert_int_eq(pipe(pf), 0);
    ck_assert_int_eq(pipe(pb), 0);
    snprintf(cmd, sizeof(cmd), "%s/tests/check_xenstored --in-domain xb-front:%s:%s",
             test_builddir(), l->paths.frontend, l->paths.backend);
    cf = dom_run_bg(&g, cmd, pf[1]);
    snprintf(cmd, sizeof(cmd), "%s/tests/check_xenstored --in-domain xb-back:%s:%s",
             test_builddir(), l->paths.backend, l->paths.frontend);
    cb = dom_run_bg(&d, cmd, pb[1]);
    close(pf[1]);
    close(pb[1]);
    snprintf(path, sizeof(path), "%s/state", l->paths.frontend);
    ck_assert_msg(wait_value(path, "4"), "the frontend never reached Connected");
    snprintf(path, sizeof(path), "%s/state", l->paths.backend);
    ck_assert_msg(wait_value(path, "4"), "the backend never reached Connected");
    /* The guest cannot touch the backend's directory, nor the driver domain the frontend's. */
    snprintf(cmd, sizeof(cmd), "xenstore-write %s/state 1", l->paths.backend);
    ck_assert_int_ne(dom_run(&g, out[0], sizeof(out[0]), cmd), 0);
    snprintf(cmd, sizeof(cmd), "xenstore-write %s/state 1", l->paths.frontend);
    ck_assert_int_ne(dom_run(&d, out[0], sizeof(out[0]), cmd), 0);
    /* Detach as libxl does. */
    snprintf(path, sizeof(path), "%s/online", l->paths.backend);
    ck_assert(xs_write(xs, XBT_NULL, path, "0", 1));
    snprintf(path, sizeof(path), "%s/state", l->paths.backend);
    ck_assert(xs_write(xs, XBT_NULL, path, "5", 1));
    read_all(pf[0], out[0], sizeof(out[0]));
    read_all(pb[0], out[1], sizeof(out[1]));
    ck_assert_int_eq(waitpid(cf, NULL, 0), cf);
    ck_assert_int_eq(waitpid(cb, NULL, 0), cb);
    ck_assert_str_eq(out[0], "0 Initialised Connected Closed; persistent 1/0\n");
    ck_assert_str_eq(out[1], "0 InitWait Connected Closing Closed; read 8/5\n");
    bhxb_layout_free(l);
}
END_TEST

/* ---- malformed input ---- */

START_TEST(test_malformed_messages)
{
    int fd = raw_open(), good = raw_open();
    struct xsd_sockmsg h;
    char buf[8192];

    ck_assert_str_eq(RAW_STR(fd, XS_WRITE, "/m\0v"), "OK");
    /* Unknown types, and types only the daemon sends: ENOSYS, and the connection stays. */
    ck_assert_str_eq(raw_call(fd, 999, 0, "/m", 3), "ENOSYS");
    ck_assert_str_eq(raw_call(fd, XS_WATCH_EVENT, 0, "/m", 3), "ENOSYS");
    ck_assert_str_eq(raw_call(fd, XS_ERROR, 0, "/m", 3), "ENOSYS");
    ck_assert_str_eq(RAW_STR(fd, XS_READ, "/m"), "v");
    /* Missing NUL, two strings where one is due, bad paths. */
    ck_assert_str_eq(raw_call(fd, XS_READ, 0, "/m", 2), "EINVAL");
    ck_assert_str_eq(raw_call(fd, XS_READ, 0, "/m\0/m", 6), "EINVAL");
    ck_assert_str_eq(raw_call(fd, XS_READ, 0, "", 0), "EINVAL");
    ck_assert_str_eq(raw_call(fd, XS_WRITE, 0, "/m", 2), "EINVAL");
    ck_assert_str_eq(RAW_STR(fd, XS_READ, "/a//b"), "EINVAL");
    ck_assert_str_eq(RAW_STR(fd, XS_READ, "/a/"), "EINVAL");
    ck_assert_str_eq(RAW_STR(fd, XS_READ, "/a b"), "EINVAL");
    ck_assert_str_eq(RAW_STR(fd, XS_WRITE, "/a*b\0v"), "EINVAL");
    ck_assert_str_eq(RAW_STR(fd, XS_READ, "@releaseDomain"), "EINVAL");
    memset(buf, 'a', 3100);
    buf[0] = '/';
    buf[3100] = '\0';
    ck_assert_str_eq(raw_call(fd, XS_READ, 0, buf, 3101), "EINVAL"); /* over 3072 */
    /* Bad permissions. */
    ck_assert_str_eq(raw_call(fd, XS_SET_PERMS, 0, "/m\0x0", 6), "EINVAL");
    ck_assert_str_eq(raw_call(fd, XS_SET_PERMS, 0, "/m\0r", 5), "EINVAL");
    ck_assert_str_eq(raw_call(fd, XS_SET_PERMS, 0, "/m\0r70000", 10), "EINVAL");
    ck_assert_str_eq(raw_call(fd, XS_SET_PERMS, 0, "/m\0r1x", 7), "EINVAL");
    ck_assert_str_eq(raw_call(fd, XS_SET_PERMS, 0, "/m", 3), "EINVAL");
    ck_assert_str_eq(raw_call(fd, XS_SET_PERMS, 0, "/m\0b0", 5), "EINVAL");
    /* Watches need a token. */
    ck_assert_str_eq(RAW_STR(fd, XS_WATCH, "/m"), "EINVAL");
    ck_assert_str_eq(RAW_STR(fd, XS_UNWATCH, "/m\0nope"), "ENOENT");
    ck_assert_str_eq(RAW_STR(fd, XS_GET_DOMAIN_PATH, "x1"), "EINVAL");
    ck_assert_str_eq(RAW_STR(fd, XS_DIRECTORY_PART,
                             "/m\0"
                             "1x"),
                     "EINVAL");
    /* Half a message stalls nobody else. */
    raw_send(fd, XS_READ, 0, NULL, 0); /* a header only: len 0, answered */
    ck_assert_int_eq(raw_recv(fd, &h, buf, sizeof(buf)), 0);
    ck_assert_int_eq(send(fd, "\x02\0\0\0\x01\0", 6, 0), 6);
    ck_assert_str_eq(RAW_STR(good, XS_READ, "/m"), "v");
    /* ... and completes when the rest comes. */
    ck_assert_int_eq(send(fd, "\0\0\0\0\0\0\x03\0\0\0/m\0", 13, 0), 13);
    ck_assert_int_eq(raw_recv(fd, &h, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "v");
    /* Over 4096 bytes: the connection goes, the daemon stays. */
    raw_send(fd, XS_WRITE, 0, NULL, 0); /* answered: EINVAL */
    ck_assert_int_eq(raw_recv(fd, &h, buf, sizeof(buf)), 0);
    {
        struct xsd_sockmsg big = {XS_WRITE, 1, 0, XENSTORE_PAYLOAD_MAX + 1};
        ck_assert_int_eq(send(fd, &big, sizeof(big), 0), (ssize_t)sizeof(big));
    }
    ck_assert_int_eq(raw_recv(fd, &h, buf, sizeof(buf)), -1);
    ck_assert_str_eq(RAW_STR(good, XS_READ, "/m"), "v");
    close(fd);
    /* A client that stops reading loses its connection, never the daemon's memory. */
    fd = raw_open();
    ck_assert_str_eq(RAW_STR(fd, XS_WATCH, "/flood\0t"), "OK");
    for (int i = 0; i < 3000; i++)
        ck_assert(
            xs_write(xs, XBT_NULL, "/flood/x", "0123456789012345678901234567890123456789", 40));
    ck_assert_str_eq(RAW_STR(good, XS_READ, "/m"), "v");
    close(fd);
    close(good);
}
END_TEST

START_TEST(test_outstanding_quota_stalls_only_the_domain)
{
    struct hvw_dominfo a = dom_up("alpha"), b = dom_up("beta");
    char out[4096];
    int before, after;

    /* 100 pipelined READs from a client that reads nothing for a second. */
    in_domain_run(&a, "outstanding", out, sizeof(out));
    ck_assert_int_eq(sscanf(out, "%d %d", &before, &after), 2);
    ck_assert_msg(before < 100,
                  "the daemon answered all %d requests of a client that reads "
                  "nothing: no outstanding quota",
                  before);
    ck_assert_int_eq(after, 100);
    ck_assert_int_eq(dom_run(&b, out, sizeof(out), "xenstore-write x 1"), 0);
}
END_TEST

/* A connection that asked while its domain was over the quota is read once the hog is gone. */
START_TEST(test_outstanding_quota_resumes_when_a_hog_closes)
{
    struct hvw_dominfo a = dom_up("alpha");
    char out[4096];

    in_domain_run(&a, "outstanding-close", out, sizeof(out));
    ck_assert_msg(strcmp(out, "1\n") == 0,
                  "the second connection got %s replies after the hog closed: it was never "
                  "read again", out);
}
END_TEST

int main(int argc, char **argv)
{
    Suite *s;
    TCase *tc;
    SRunner *sr;
    int failed;

    if (argc == 3 && strcmp(argv[1], "--in-domain") == 0)
        return in_domain(argv[2]);
    s = suite_create("xenstored");
    tc = tcase_create("xenstored");
    /* Debian keeps xenstore-control in xen-utils-4.17, out of PATH. */
    if (getenv("XENSTORE_CONTROL") == NULL) {
        static const char *const where[] = {
            "/usr/lib/xen-4.17/bin/xenstore-control",
            "/opt/xen-utils-4.17/usr/lib/xen-4.17/bin/xenstore-control"};
        for (size_t i = 0; i < 2; i++)
            if (access(where[i], X_OK) == 0)
                setenv("XENSTORE_CONTROL", where[i], 1);
    }
    tcase_add_checked_fixture(tc, xsd_start, xsd_stop);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_read_write_directory);
    tcase_add_test(tc, test_directory_too_big_for_one_reply);
    tcase_add_test(tc, test_permissions_from_two_domains);
    tcase_add_test(tc, test_watches_fire_and_respect_permissions);
    tcase_add_test(tc, test_introduce_and_release_domain);
    tcase_add_test(tc, test_set_target_gives_the_target_powers);
    tcase_add_test(tc, test_transactions);
    tcase_add_test(tc, test_quotas_fail_only_their_domain);
    tcase_add_test(tc, test_quota_option);
    tcase_add_test(tc, test_memory_quota_hard_and_soft);
    tcase_add_test(tc, test_xenbus_handshake_between_domains);
    tcase_add_test(tc, test_malformed_messages);
    tcase_add_test(tc, test_outstanding_quota_stalls_only_the_domain);
    tcase_add_test(tc, test_outstanding_quota_resumes_when_a_hog_closes);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
