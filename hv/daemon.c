/*
 * daemon.c - see daemon.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
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

void daemon_ready(int fd, const char *msg)
{
    if (fd < 0)
        return;
    if (write(fd, msg, strlen(msg)) < 0) {
        /* whoever waited went away: nothing to tell */
    }
    close(fd);
}
