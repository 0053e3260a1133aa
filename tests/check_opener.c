/*
 * check_opener.c - what a Xen driver domain's opener (driverdom/opener.c)
 * makes of a disk's params, run in the simulation without XenStore:
 * drvdom_open_target is the part of the opener that opens what params
 * names.  A unix socket is an NBD server's: the answer is a connection to
 * it, fresh each time (a worker asks once per queue), which a fake server
 * accepts and an nbdkit serves a disk over; the nbd+unix URI names the same
 * socket.  A file or block device is opened with its size, read-only when
 * asked; a fifo, a directory and the NBD URIs we do not speak are refused
 * in one line; a missing target is ENOENT.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
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

#include "drv.h"
#include "drvdom.h"

#define WAIT_MS 60000 /* generous: a loaded CI machine; a hang fails, nothing is timed */

/* opener.c logs through the daemon's logline: to the test's stderr here. */
void vlogline(const char *prefix, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", prefix != NULL ? prefix : "bulkhead-drvdom");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void logline(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlogline("opener", fmt, ap);
    va_end(ap);
}

static char dir[64], why[200];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/check_opener.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[96];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "check_opener: cannot remove %s\n", dir);
}

static void assert_one_line(void)
{
    ck_assert_uint_gt(strlen(why), 0);
    ck_assert_ptr_null(strchr(why, '\n'));
}

/* A listening unix socket at dir/name; its path in path. */
static int listener(const char *name, char *path, size_t len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int s;

    snprintf(path, len, "%s/%s", dir, name);
    ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path));
    ck_assert_int_ge(s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), 0);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(s, 8), 0);
    return s;
}

/* The server's end of the connection the opener made, accepted. */
static int accepted(int l)
{
    struct pollfd p = {.fd = l, .events = POLLIN};
    int c;

    ck_assert_int_eq(poll(&p, 1, WAIT_MS), 1);
    ck_assert_int_ge(c = accept4(l, NULL, NULL, SOCK_CLOEXEC), 0);
    return c;
}

/* What one end writes the other reads: the connection is the server's. */
static void assert_connected(int a, int b)
{
    char c = 0;

    ck_assert_int_eq(write(a, "N", 1), 1);
    ck_assert_int_eq(read(b, &c, 1), 1);
    ck_assert_int_eq(c, 'N');
}

START_TEST(test_socket_is_nbd)
{
    char path[128], params[192];
    uint64_t size = 1;
    bool nbd = false;
    int l = listener("nbd.sock", path, sizeof(path)), fd, fd2, c, c2;
    struct stat st;

    fd = drvdom_open_target(path, false, &size, &nbd, why, sizeof(why));
    ck_assert_msg(fd >= 0, "%s", why);
    ck_assert(nbd);
    ck_assert_uint_eq(size, 0); /* NBD's handshake says it */
    ck_assert_int_eq(fstat(fd, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    c = accepted(l);
    assert_connected(fd, c);
    assert_connected(c, fd);
    /* Asked again (the next queue's engine): a connection of its own, libxl's "aio:" in front. */
    snprintf(params, sizeof(params), "aio:%s", path);
    fd2 = drvdom_open_target(params, true, &size, &nbd, why, sizeof(why));
    ck_assert_msg(fd2 >= 0, "%s", why);
    ck_assert(nbd);
    c2 = accepted(l);
    assert_connected(fd2, c2);
    /* The URI form names the same socket. */
    close(fd2);
    close(c2);
    snprintf(params, sizeof(params), "nbd+unix:///?socket=%s", path);
    fd2 = drvdom_open_target(params, false, &size, &nbd, why, sizeof(why));
    ck_assert_msg(fd2 >= 0, "%s", why);
    ck_assert(nbd);
    c2 = accepted(l);
    assert_connected(c2, fd2);
    close(fd2);
    close(c2);
    close(fd);
    close(c);
    /* Nobody listening any more: refused, and says where. */
    close(l);
    ck_assert_int_eq(drvdom_open_target(path, false, &size, &nbd, why, sizeof(why)), -1);
    ck_assert_int_eq(errno, ECONNREFUSED);
    ck_assert_ptr_nonnull(strstr(why, path));
    assert_one_line();
}
END_TEST

/* nbdkit's memory plugin behind dir/k.sock: the disk a guest would see, over the opener's socket. */
START_TEST(test_nbdkit_serves)
{
    char sock[128], pidfile[128];
    uint64_t size;
    bool nbd = false;
    struct nbd_handle *h;
    pid_t pid;
    int fd;

    snprintf(sock, sizeof(sock), "%s/k.sock", dir);
    snprintf(pidfile, sizeof(pidfile), "%s/k.pid", dir);
    ck_assert_int_ge(pid = fork(), 0);
    if (pid == 0) {
        execlp("nbdkit", "nbdkit", "--exit-with-parent", "-f", "-U", sock, "-P", pidfile, "memory",
               "size=3M", (char *)NULL);
        _exit(127);
    }
    for (int ms = 0; access(pidfile, F_OK) != 0; ms += 10) {
        ck_assert_msg(waitpid(pid, NULL, WNOHANG) == 0, "nbdkit exited: is it installed?");
        ck_assert_msg(ms < WAIT_MS, "nbdkit did not listen");
        usleep(10000);
    }
    fd = drvdom_open_target(sock, false, &size, &nbd, why, sizeof(why));
    ck_assert_msg(fd >= 0, "%s", why);
    ck_assert(nbd);
    ck_assert_ptr_nonnull(h = nbd_create());
    ck_assert_msg(nbd_connect_socket(h, fd) == 0, "%s", nbd_get_error()); /* h owns fd now */
    ck_assert_int_eq(nbd_get_size(h), 3 << 20);
    nbd_close(h);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}
END_TEST

START_TEST(test_file)
{
    char path[128], params[192];
    uint64_t size = 0;
    bool nbd = true;
    int fd, w;

    snprintf(path, sizeof(path), "%s/disk.img", dir);
    ck_assert_int_ge(w = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600), 0);
    ck_assert_int_eq(ftruncate(w, 1 << 20), 0);
    close(w);
    fd = drvdom_open_target(path, false, &size, &nbd, why, sizeof(why));
    ck_assert_msg(fd >= 0, "%s", why);
    ck_assert(!nbd);
    ck_assert_uint_eq(size, 1 << 20);
    ck_assert_int_eq(fcntl(fd, F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_RDWR);
    close(fd);
    /* raw: in front, and mode r: read-only. */
    snprintf(params, sizeof(params), "raw:%s", path);
    fd = drvdom_open_target(params, true, &size, &nbd, why, sizeof(why));
    ck_assert_msg(fd >= 0, "%s", why);
    ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
    ck_assert_int_eq(write(fd, "x", 1), -1);
    close(fd);
}
END_TEST

START_TEST(test_refused)
{
    char fifo[128], params[192];
    uint64_t size;
    bool nbd;
    static const char *const uris[] = {
        "nbd://host:10809/",              "nbds+unix:///?socket=/run/nbd.sock",
        "nbd+unix:///export?socket=/x",   "nbd+unix:///?socket=relative.sock",
        "nbd+unix:///?socket=/x&tls=on",  "nbd+unix:///?socket=/a%20b",
        "nbd:unix:/run/nbd.sock",
    };

    /* A fifo would hang an open for reading: refused at once, in one line. */
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    ck_assert_int_eq(drvdom_open_target(fifo, true, &size, &nbd, why, sizeof(why)), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_nonnull(strstr(why, "neither a file, a block device nor an NBD server"));
    assert_one_line();
    ck_assert_int_eq(drvdom_open_target(fifo, false, &size, &nbd, why, sizeof(why)), -1);
    ck_assert_int_eq(errno, EINVAL);
    /* A directory too. */
    ck_assert_int_eq(drvdom_open_target(dir, true, &size, &nbd, why, sizeof(why)), -1);
    ck_assert_int_eq(errno, EINVAL);
    assert_one_line();
    /* Missing: ENOENT, naming the target. */
    snprintf(params, sizeof(params), "aio:%s/none.img", dir);
    ck_assert_int_eq(drvdom_open_target(params, false, &size, &nbd, why, sizeof(why)), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_ptr_nonnull(strstr(why, "none.img"));
    assert_one_line();
    /* Only a format, no target. */
    ck_assert_int_eq(drvdom_open_target("aio:", false, &size, &nbd, why, sizeof(why)), -1);
    ck_assert_int_eq(errno, ENOENT);
    assert_one_line();
    /* NBD that is not the default export over an absolute unix socket: the forms we take named. */
    for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        why[0] = '\0';
        ck_assert_msg(drvdom_open_target(uris[i], false, &size, &nbd, why, sizeof(why)) == -1,
                      "%s accepted", uris[i]);
        ck_assert_int_eq(errno, EINVAL);
        ck_assert_msg(strstr(why, "nbd+unix:///?socket=PATH") != NULL, "%s: %s", uris[i], why);
        assert_one_line();
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("opener");
    TCase *tc = tcase_create("opener");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_socket_is_nbd);
    tcase_add_test(tc, test_nbdkit_serves);
    tcase_add_test(tc, test_file);
    tcase_add_test(tc, test_refused);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
