/*
 * daemon.c - see daemon.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "daemon.h"

int daemon_lock(const char *dir, const char *name, const char *prog, char *err, size_t errlen)
{
    char path[320], pid[32];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "%s/%s.pid", dir, name);
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(err, errlen, "a %s (pid %s) already serves %s: run 'bulkhead down' first", prog,
                 pid, dir);
        close(fd);
        return -1;
    }
    snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, strlen(pid), 0) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return 0; /* the fd stays open: the lock lives as long as we do */
}

int daemon_listen(const char *path, int type, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "state directory path too long for a socket: %s", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    unlink(path);
    fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 128) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
        goto fail;
    }
    if (chmod(path, 0666) != 0) {
        snprintf(err, errlen, "cannot chmod %s: %s", path, strerror(errno));
        goto fail;
    }
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

void daemon_ready(int fd, const char *msg)
{
    if (fd < 0)
        return;
    if (write(fd, msg, strlen(msg)) < 0) {
        /* whoever waited went away: nothing to tell */
    }
    close(fd);
}

int daemon_signalfd(int sig, ...)
{
    sigset_t set;
    va_list ap;

    sigemptyset(&set);
    va_start(ap, sig);
    for (; sig != 0; sig = va_arg(ap, int))
        sigaddset(&set, sig);
    va_end(ap);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

#ifdef __SANITIZE_ADDRESS__
/*
 * A sanitizer build's daemons run in domains with a memory limit (128 MiB
 * unless the config says more), where AddressSanitizer's default quarantine
 * (256 MiB of freed memory held back to catch a use after free) would
 * outgrow it: a driver domain's bulkhead-drvdom grew by ~160 KiB for each
 * guest created and destroyed, and its domain was OOM-killed after ~600.
 * 16 MiB still catches a use soon after the free; ASAN_OPTIONS overrides it.
 */
__attribute__((used, visibility("default"))) const char *__asan_default_options(void);
__attribute__((used, visibility("default"))) const char *__asan_default_options(void)
{
    return "quarantine_size_mb=16";
}
#endif
