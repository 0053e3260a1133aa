/*
 * nbdserve.c - dom0's qemu-nbd for a disk that is not a raw file (qcow,
 * qcow2, vhd, qed), as libxl runs a qdisk backend's QEMU: blkback serves
 * it over NBD (the broker hands the backend domain a connected socket;
 * blkback in dom0 connects to the path itself).
 *
 * One qemu-nbd per device, listening on <state-dir>/nbd/<domid>-<devid>.sock
 * with its pid in .pid and its messages in .log beside it.  It is started before the device is
 * written (so that the backend finds it serving), and stopped when the
 * device goes: destroy, a create that fails, bulkhead down.
 *
 * Its options keep the guest's flushes honest: a writeback cache whose
 * flushes reach the disk (--cache=writeback, not unsafe), discard passed to
 * the image (--discard=unmap), read-only for mode r.  --persistent and
 * --shared=0 because blkback makes a connection per engine: a restarted
 * worker or a frontend that reconnects connects again.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "devices.h"
#include "toolstack.h"

#define STOP_GRACE_MS 5000 /* qemu-nbd flushes the image on SIGTERM: give it time */

/* qemu's name for a format, NULL for a raw (or empty) disk: no server needed. */
const char *nbdserve_format(enum diskspec_format f)
{
    switch (f) {
    case DISKSPEC_QCOW:
        return "qcow";
    case DISKSPEC_QCOW2:
        return "qcow2";
    case DISKSPEC_VHD:
        return "vpc";
    case DISKSPEC_QED:
        return "qed";
    default:
        return NULL;
    }
}

static int path_of(char *buf, size_t size, uint16_t domid, uint32_t devid, const char *ext)
{
    int n = snprintf(buf, size, "%s/nbd/%u-%u.%s", state_dir, domid, devid, ext);

    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

int nbdserve_socket(uint16_t domid, uint32_t devid, char *buf, size_t size)
{
    /* The broker and blkback need it in a sockaddr_un. */
    return path_of(buf, size < 108 ? size : 108, domid, devid, "sock");
}

/* The last line qemu-nbd wrote, without its "qemu-nbd: " prefix. */
static void last_line(const char *log, char *out, size_t size)
{
    char buf[2048], *line, *end;
    ssize_t len = 0;
    int fd = open(log, O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        off_t end_off = lseek(fd, 0, SEEK_END);
        len = pread(fd, buf, sizeof(buf) - 1, end_off > 2000 ? end_off - 2000 : 0);
        close(fd);
    }
    buf[len > 0 ? len : 0] = '\0';
    len = len > 0 ? len : 0;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        buf[--len] = '\0';
    line = (end = strrchr(buf, '\n')) != NULL ? end + 1 : buf;
    if (strncmp(line, "qemu-nbd: ", 10) == 0)
        line += 10;
    snprintf(out, size, "%s", line[0] ? line : "no message");
}

int nbdserve_start(uint16_t domid, const struct devplan_dev *d, char *err, size_t errlen)
{
    const char *fmt = nbdserve_format(d->format);
    char sock[108], pid[PATH_MAX], log[PATH_MAX], dir[PATH_MAX], fmtarg[32], msg[512];
    int logfd, st;
    pid_t child;

    if (fmt == NULL || d->target[0] == '\0')
        return 0;
    snprintf(dir, sizeof(dir), "%s/nbd", state_dir);
    if (nbdserve_socket(domid, d->devid, sock, sizeof(sock)) != 0 ||
        path_of(pid, sizeof(pid), domid, d->devid, "pid") != 0 ||
        path_of(log, sizeof(log), domid, d->devid, "log") != 0) {
        snprintf(err, errlen,
                 "%s: the state directory %s is too long for a socket: use a shorter "
                 "--state-dir",
                 d->vdev, state_dir);
        return -1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create %s: %s", d->vdev, dir, strerror(errno));
        return -1;
    }
    nbdserve_stop(domid, d->devid); /* a crashed create's, under the same ids */
    snprintf(fmtarg, sizeof(fmtarg), "--format=%s", fmt);
    /* Its stderr, before and after --fork: the reason it fails, what it says later. */
    if ((logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
        (child = fork()) < 0) {
        snprintf(err, errlen, "%s: cannot start qemu-nbd (log %s): %s", d->vdev, log,
                 strerror(errno));
        if (logfd >= 0)
            close(logfd);
        return -1;
    }
    if (child == 0) {
        char sockarg[128], pidarg[PATH_MAX + 16];
        char *argv[16] = {
            "qemu-nbd",          "--fork",        sockarg,           pidarg,         fmtarg,
            "--cache=writeback", "--aio=threads", "--discard=unmap", "--persistent", "--shared=0"};
        int i = 10;
        snprintf(sockarg, sizeof(sockarg), "--socket=%s", sock);
        snprintf(pidarg, sizeof(pidarg), "--pid-file=%s", pid);
        if (!d->readwrite)
            argv[i++] = "--read-only";
        argv[i++] = (char *)d->target;
        argv[i] = NULL;
        dup2(logfd, 2);
        dup2(logfd, 1);
        execvp("qemu-nbd", argv);
        _exit(errno == ENOENT ? 127 : 126);
    }
    close(logfd);
    /* --fork: the parent exits once the server listens, or fails with the reason. */
    while (waitpid(child, &st, 0) < 0 && errno == EINTR)
        ;
    last_line(log, msg, sizeof(msg));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
        nbdserve_stop(domid, d->devid);
        snprintf(err, errlen,
                 "disk %s: format=%s needs qemu-nbd, which is not installed: install "
                 "qemu-utils (scripts/install-deps)",
                 d->vdev, diskspec_format_name(d->format));
        return -1;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        nbdserve_stop(domid, d->devid);
        snprintf(err, errlen,
                 "disk %s: qemu-nbd cannot serve %s as %s: %s: check the image "
                 "(qemu-img check) and its format=",
                 d->vdev, d->target, diskspec_format_name(d->format), msg);
        return -1;
    }
    return 0;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Whether pid still runs (a zombie no longer does). */
static bool running(pid_t pid)
{
    char path[64], buf[256], *p;
    FILE *f;
    bool r = false;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return false;
    if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL)
        r = p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
    fclose(f);
    return r;
}

/* Whether pid is the qemu-nbd on sock (a pid file can outlive its process). */
static bool is_ours(pid_t pid, const char *sock)
{
    char path[64], args[4096];
    ssize_t n;
    int fd;
    bool r = false;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    n = read(fd, args, sizeof(args) - 1);
    close(fd);
    for (ssize_t i = 0; n > 0 && i < n && !r; i += (ssize_t)strlen(args + i) + 1) {
        args[n] = '\0';
        r = strncmp(args + i, "--socket=", 9) == 0 && strcmp(args + i + 9, sock) == 0;
    }
    return r;
}

static void stop_files(const char *pidpath, const char *sock)
{
    FILE *f = fopen(pidpath, "r");
    int pid = 0;

    if (f != NULL) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    if (pid > 1 && running(pid) && is_ours(pid, sock)) {
        long deadline = now_ms() + STOP_GRACE_MS;
        kill(pid, SIGTERM);
        while (running(pid) && now_ms() < deadline) {
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
        }
        if (running(pid)) {
            fprintf(stderr, "bulkhead: qemu-nbd %d on %s ignored SIGTERM for %d s: killed\n", pid,
                    sock, STOP_GRACE_MS / 1000);
            kill(pid, SIGKILL);
        }
    }
    unlink(sock);
    unlink(pidpath);
}

void nbdserve_stop(uint16_t domid, uint32_t devid)
{
    char sock[108], pid[PATH_MAX], log[PATH_MAX];

    if (nbdserve_socket(domid, devid, sock, sizeof(sock)) == 0 &&
        path_of(pid, sizeof(pid), domid, devid, "pid") == 0 &&
        path_of(log, sizeof(log), domid, devid, "log") == 0) {
        stop_files(pid, sock);
        unlink(log);
    }
}

int nbdserve_stop_all(int domid)
{
    char dir[PATH_MAX];
    struct dirent *e;
    DIR *dp;
    int n = 0;

    snprintf(dir, sizeof(dir), "%s/nbd", state_dir);
    if ((dp = opendir(dir)) == NULL)
        return 0;
    while ((e = readdir(dp)) != NULL) {
        unsigned int dom, dev;
        char tail[8];
        if (sscanf(e->d_name, "%u-%u.%7s", &dom, &dev, tail) != 3 || strcmp(tail, "pid") != 0 ||
            dom > 0xffff || (domid >= 0 && dom != (unsigned int)domid))
            continue;
        nbdserve_stop((uint16_t)dom, dev);
        n++;
    }
    closedir(dp);
    return n;
}
