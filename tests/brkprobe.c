/*
 * brkprobe.c - a test tool that runs inside a simulated domain and asks the
 * broker for fds through libbhplat's bhbroker_*, one command per line on
 * stdin, one reply per line on stdout ("ok ..." or "err ERRNO-NAME"):
 *
 *   tap DOMID DEVID FLAGS    ok NQ NAME VNET_HDR_SZ TUN_FLAGS_HEX: keeps the fds
 *   tapclose                 closes every TAP fd kept
 *   disk DOMID DEVID FLAGS   ok SLOT READONLY SIZE
 *   nbd DOMID DEVID          ok SLOT
 *   read SLOT                ok TEXT: the first bytes, up to a NUL or newline
 *   write SLOT TEXT          writes TEXT at offset 0 (a socket: sends it)
 *   direct SLOT              ok 1 if the fd has O_DIRECT, ok 0 if not
 *   close SLOT
 *
 * Used by check_broker; not installed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/if.h>
#include <linux/if_tun.h>

#include "bhbroker.h"

#define MAX_SLOTS 16

static int slots[MAX_SLOTS];
static int taps[64];
static unsigned int ntaps;

static const char *ename(int e)
{
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EPROTO: return "EPROTO";
    default: return "EOTHER";
    }
}

static void fail(int e)
{
    printf("err %s\n", ename(e));
}

static int slot_new(int fd)
{
    for (int i = 0; i < MAX_SLOTS; i++)
        if (slots[i] < 0) {
            slots[i] = fd;
            return i;
        }
    close(fd);
    return -1;
}

static int slot_fd(const char *s)
{
    int i = s ? atoi(s) : -1;

    return i >= 0 && i < MAX_SLOTS ? slots[i] : -1;
}

static void cmd_tap(char **argv)
{
    unsigned int nq = 0;
    int fds[BHBROKER_MAX_QUEUES], hdr = 0;
    struct ifreq ifr;

    if (bhbroker_tap((uint32_t)atoi(argv[1]), (uint32_t)atoi(argv[2]),
                     (unsigned int)strtoul(argv[3], NULL, 0), fds, &nq) != 0) {
        fail(errno);
        return;
    }
    memset(&ifr, 0, sizeof(ifr));
    if (ioctl(fds[0], TUNGETIFF, &ifr) != 0 || ioctl(fds[0], TUNGETVNETHDRSZ, &hdr) != 0) {
        fail(errno);
        return;
    }
    for (unsigned int i = 0; i < nq && ntaps < 64; i++)
        taps[ntaps++] = fds[i];
    printf("ok %u %s %d %#x\n", nq, ifr.ifr_name, hdr, (unsigned int)ifr.ifr_flags & 0xffff);
}

static void cmd_disk(char **argv, int nbd)
{
    int ro = -1, fd;
    uint64_t size = 0;

    if (nbd)
        fd = bhbroker_nbd((uint32_t)atoi(argv[1]), (uint32_t)atoi(argv[2]));
    else
        fd = bhbroker_disk((uint32_t)atoi(argv[1]), (uint32_t)atoi(argv[2]),
                           (unsigned int)strtoul(argv[3] ? argv[3] : "0", NULL, 0), &ro, &size);
    if (fd < 0) {
        fail(errno);
        return;
    }
    if (nbd)
        printf("ok %d\n", slot_new(fd));
    else
        printf("ok %d %d %llu\n", slot_new(fd), ro, (unsigned long long)size);
}

static void cmd_io(char **argv)
{
    int fd = slot_fd(argv[1]);
    struct stat st;
    char buf[64];
    ssize_t n;

    if (fd < 0 || fstat(fd, &st) != 0) {
        fail(EBADF);
        return;
    }
    if (strcmp(argv[0], "write") == 0) {
        const char *t = argv[2] ? argv[2] : "";
        n = S_ISSOCK(st.st_mode) ? write(fd, t, strlen(t)) : pwrite(fd, t, strlen(t), 0);
        if (n < 0)
            fail(errno);
        else
            printf("ok %zd\n", n);
        return;
    }
    n = S_ISSOCK(st.st_mode) ? read(fd, buf, sizeof(buf) - 1) : pread(fd, buf, sizeof(buf) - 1, 0);
    if (n < 0) {
        fail(errno);
        return;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    printf("ok %s\n", buf);
}

int main(void)
{
    char line[1024];

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < MAX_SLOTS; i++)
        slots[i] = -1;
    while (fgets(line, sizeof(line), stdin) != NULL) {
        char *argv[8] = {NULL}, *save = NULL;
        int argc = 0;

        for (char *t = strtok_r(line, " \n", &save); t && argc < 7;
             t = strtok_r(NULL, " \n", &save))
            argv[argc++] = t;
        if (argc == 0)
            continue;
        if (strcmp(argv[0], "exit") == 0)
            break;
        if (strcmp(argv[0], "tap") == 0 && argc == 4) {
            cmd_tap(argv);
        } else if (strcmp(argv[0], "tapclose") == 0) {
            while (ntaps > 0)
                close(taps[--ntaps]);
            printf("ok\n");
        } else if (strcmp(argv[0], "disk") == 0 && argc >= 3) {
            cmd_disk(argv, 0);
        } else if (strcmp(argv[0], "nbd") == 0 && argc == 3) {
            cmd_disk(argv, 1);
        } else if ((strcmp(argv[0], "read") == 0 || strcmp(argv[0], "write") == 0) && argc >= 2) {
            cmd_io(argv);
        } else if (strcmp(argv[0], "direct") == 0 && argc == 2) {
            int fl = fcntl(slot_fd(argv[1]), F_GETFL);
            if (fl < 0)
                fail(errno);
            else
                printf("ok %d\n", (fl & O_DIRECT) != 0);
        } else if (strcmp(argv[0], "close") == 0 && argc == 2 && slot_fd(argv[1]) >= 0) {
            close(slot_fd(argv[1]));
            slots[atoi(argv[1])] = -1;
            printf("ok\n");
        } else {
            printf("err EINVAL unknown command\n");
        }
    }
    return 0;
}
