/*
 * testutil.c - see testutil.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hvwire.h"
#include "testutil.h"

const char *test_builddir(void)
{
    const char *b = getenv("abs_top_builddir");

    return b ? b : ".";
}

int test_hv_start(struct test_hv *t, char *err, size_t errlen)
{
    t->ch = -1;
    t->seq = 0;
    char hv[1024], ready[16], msg[256] = "", sock[128];
    int p[2];
    ssize_t n;

    snprintf(t->state, sizeof(t->state), "/tmp/bh-test-hv-XXXXXX");
    snprintf(hv, sizeof(hv), "%s/hv/bulkhead-hv", test_builddir());
    if (mkdtemp(t->state) == NULL || pipe(p) != 0) {
        snprintf(err, errlen, "set-up: %s", strerror(errno));
        return -1;
    }
    if ((t->pid = fork()) == 0) {
        close(p[0]);
        snprintf(ready, sizeof(ready), "%d", p[1]);
        execl(hv, "bulkhead-hv", "--state-dir", t->state, "--ready-fd", ready, "--ro-dir",
              test_builddir(), (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    n = read(p[0], msg, sizeof(msg) - 1);
    close(p[0]);
    msg[n > 0 ? n : 0] = '\0';
    if (strcmp(msg, "ok\n") != 0) {
        snprintf(err, errlen, "%s did not start: %s", hv, msg[0] ? msg : "(no word)");
        test_hv_stop(t);
        return -1;
    }
    snprintf(sock, sizeof(sock), "%s/hv.sock", t->state);
    setenv("BULKHEAD_HV_SOCKET", sock, 1);
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

int test_hv_call(struct test_hv *t, uint16_t op, const void *p, size_t len, void *out,
                 size_t cap)
{
    static uint8_t buf[HVW_MAX_MSG];
    struct hvw_hdr h = {.magic = HVW_MAGIC, .op = op, .seq = ++t->seq};
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ssize_t n;

    if (len > sizeof(buf) - sizeof(h)) {
        errno = EMSGSIZE;
        return -1;
    }
    if (t->ch < 0) {
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/hv.sock", t->state);
        if ((t->ch = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0)
            return -1;
        if (connect(t->ch, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            close(t->ch);
            t->ch = -1;
            return -1;
        }
    }
    memcpy(buf, &h, sizeof(h));
    if (len > 0)
        memcpy(buf + sizeof(h), p, len);
    if (send(t->ch, buf, sizeof(h) + len, 0) != (ssize_t)(sizeof(h) + len) ||
        (n = recv(t->ch, buf, sizeof(buf), 0)) < (ssize_t)sizeof(h))
        return -1;
    memcpy(&h, buf, sizeof(h));
    if (out != NULL && h.err == 0)
        memcpy(out, buf + sizeof(h), (size_t)n - sizeof(h) < cap ? (size_t)n - sizeof(h) : cap);
    return h.err;
}

void test_hv_stop(struct test_hv *t)
{
    if (t->ch >= 0)
        close(t->ch);
    t->ch = -1;
    if (t->pid > 0) {
        kill(t->pid, SIGTERM);
        waitpid(t->pid, NULL, 0);
    }
    t->pid = 0;
    if (t->state[0] != '\0')
        nftw(t->state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    t->state[0] = '\0';
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double test_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
