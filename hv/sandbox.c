/*
 * sandbox.c - giving privileges up and reporting a denied system call,
 * for every confined Bulkhead process (sandbox.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox.h"

int bhsb_drop_privileges(char *why, size_t len)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2] = {{0}, {0}};

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        snprintf(why, len, "cannot set no_new_privs: %s", strerror(errno));
        return -1;
    }
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            snprintf(why, len, "cannot drop capability %d from the bounding set: %s", cap,
                     strerror(errno));
            return -1;
        }
    if (syscall(SYS_capset, &h, d) != 0 ||
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
        snprintf(why, len, "cannot clear the capability sets: %s", strerror(errno));
        return -1;
    }
    return 0;
}

#define NR_NAMES 512
static char nr_names[NR_NAMES][24]; /* for the handler, which cannot allocate */
static const char *sb_who = "?", *sb_list = "?";
static int sb_pid;

/* Async-signal-safe: only write and exit_group (and getpid when sb_pid is 0). */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    char line[256];
    const char *name = "?";
    int nr = si->si_syscall, n;

    (void)sig;
    (void)uc;
    if (nr >= 0 && nr < NR_NAMES && nr_names[nr][0] != '\0')
        name = nr_names[nr];
    /* snprintf of integers and strings does not allocate */
    n = snprintf(line, sizeof(line),
                 "%s[%d]: seccomp: denied system call %s (%d): killed; if the code needs it, "
                 "add it to %s's allowlist\n",
                 sb_who, sb_pid > 0 ? sb_pid : (int)syscall(SYS_getpid), name, nr, sb_list);
    if (n > 0)
        (void)!write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    syscall(SYS_exit_group, 128 + SIGSYS);
}

void bhsb_sigsys_prepare(const char *who, const char *allowlist, int pid)
{
    sb_who = who;
    sb_list = allowlist;
    sb_pid = pid;
    for (int nr = 0; nr < NR_NAMES; nr++) {
        char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        if (s != NULL)
            snprintf(nr_names[nr], sizeof(nr_names[nr]), "%s", s);
        free(s);
    }
}

void bhsb_sigsys_install(void)
{
    struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};

    sigaction(SIGSYS, &sa, NULL);
}
