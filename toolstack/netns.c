/*
 * netns.c - dom0's network: a namespace of its own that `bulkhead up`
 * makes, so that nothing the simulation plumbs (uplinks from driver
 * domains' bridges) ever lands in the host's own network namespace.
 *
 * The namespace is pinned by a bind mount of its nsfs file at
 * <state-dir>/netns/dom0, as `ip netns add` pins its own under /run/netns:
 * it lives while that mount does, with no process in it.  Users reach it
 * with `nsenter --net=<that path>` (bulkhead env prints it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>

#include "toolstack.h"

void dom0_netns_path(char *buf, size_t size)
{
    snprintf(buf, size, "%s/netns/dom0", state_dir);
}

/*
 * For a program run as a dom0 process (dom0's bulkhead-drvdom, its
 * upgrade): into dom0's network namespace, with the environment that finds
 * the simulation's hypervisor and XenStore.  0, or -1 with a one-line reason.
 */
int dom0_enter(char *err, size_t errlen)
{
    char file[4096];
    int fd;

    dom0_netns_path(file, sizeof(file));
    if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0 || setns(fd, CLONE_NEWNET) != 0) {
        snprintf(err, errlen, "cannot enter dom0's network namespace %s: %s (is the simulation up?)",
                 file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    snprintf(file, sizeof(file), "%s/hv.sock", state_dir);
    setenv("BULKHEAD_HV_SOCKET", file, 1);
    snprintf(file, sizeof(file), "%s/xenstored.sock", state_dir);
    setenv("XENSTORED_PATH", file, 1);
    return 0;
}

static bool is_netns(const char *path)
{
    struct statfs sf;

    return statfs(path, &sf) == 0 && sf.f_type == NSFS_MAGIC;
}

/* In the new namespace: loopback up, as in every namespace a domain gets. */
static int lo_up(void)
{
    struct ifreq ifr = {0};
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;

    if (s < 0)
        return -1;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
    return rc;
}

int dom0_netns_make(char *err, size_t errlen)
{
    char dir[600], path[600];
    int fd, status;
    pid_t pid;

    dom0_netns_path(path, sizeof(path));
    if (is_netns(path))
        return 0; /* a crashed instance's: a namespace is a namespace */
    snprintf(dir, sizeof(dir), "%s/netns", state_dir);
    if ((mkdir(dir, 0755) != 0 && errno != EEXIST) ||
        (fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0444)) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    close(fd);
    /* A child leaves its network namespace for a new one and pins it; we stay where we are. */
    if ((pid = fork()) == 0) {
        if (unshare(CLONE_NEWNET) != 0)
            _exit(1);
        if (lo_up() != 0)
            _exit(2);
        if (mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL) != 0)
            _exit(3);
        _exit(0);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        static const char *const step[] = {"", "a new network namespace", "its loopback up",
                                           "a bind mount to pin it"};
        int s = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) <= 3 ? WEXITSTATUS(status) : 0;
        snprintf(err, errlen, "cannot make dom0's network namespace at %s: %s failed", path,
                 s ? step[s] : "fork");
        unlink(path);
        return -1;
    }
    return 0;
}

void dom0_netns_remove(void)
{
    char path[600];

    dom0_netns_path(path, sizeof(path));
    while (is_netns(path) && umount2(path, MNT_DETACH) == 0)
        ; /* stacked mounts from earlier instances: take every one */
    unlink(path);
    snprintf(path, sizeof(path), "%s/netns", state_dir);
    rmdir(path);
}

/* Whether dom0's namespace has a link named name: 1, 0, or -1 when it cannot tell. */
static int dom0_has_link(const char *name)
{
    char path[600];
    int fd, status;
    pid_t pid;

    dom0_netns_path(path, sizeof(path));
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    /* A child enters the namespace and looks; we stay where we are. */
    if ((pid = fork()) == 0)
        _exit(setns(fd, CLONE_NEWNET) != 0 ? 2 : if_nametoindex(name) != 0 ? 1 : 0);
    close(fd);
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) > 1)
        return -1;
    return WEXITSTATUS(status);
}

int dom0_link_wait_gone(const char *name, int timeout_ms)
{
    struct timespec ts = {0, 20 * 1000000L};

    /* The kernel dismantles a dead namespace's links in the background. */
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        int r = dom0_has_link(name);
        if (r <= 0)
            return r;
        nanosleep(&ts, NULL);
    }
    errno = ETIMEDOUT;
    return -1;
}
