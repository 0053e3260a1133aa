/*
 * dominit.c - pid 1 of a simulated domain ("bulkhead-hv --domain-init").
 *
 * Being the init of a PID namespace brings three duties a plain program
 * does not have.  Orphans of the domain are reparented to it, and stay
 * zombies unless it reaps them.  The kernel delivers it no signal it does
 * not handle (SIGKILL from outside excepted), so SIGTERM means nothing
 * unless it is caught.  And when it exits, the kernel kills every other
 * process of the domain: it exits only when the domain is done.
 *
 * Signals are taken synchronously with sigwaitinfo: blocked, they are
 * queued even for an init, and no handler runs between fork and exec.  A
 * SIGTERM sent before they are blocked, while the init is still starting,
 * is dropped by the kernel like any signal to an init without a handler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dombuild.h"

/* The program, with fds 0-3 as they are: fd 3, the channel, is its fd 3 too. */
static pid_t spawn(char **argv, const sigset_t *mask)
{
    pid_t pid = fork();

    if (pid != 0)
        return pid;
    sigprocmask(SIG_SETMASK, mask, NULL);
    execvp(argv[0], argv);
    fprintf(stderr, "bulkhead domain init: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Reaps every child that has ended; true once `child` is one of them. */
static bool reap_all(pid_t child, int *status)
{
    bool done = false;
    pid_t p;
    int st;

    while ((p = waitpid(-1, &st, WNOHANG)) > 0)
        if (p == child) {
            *status = st;
            done = true;
        }
    return done;
}

int dominit_main(int argc, char **argv)
{
    sigset_t set, old;
    siginfo_t si;
    pid_t child = -1;
    int sig, status = 0;

    /* As `ps` in the domain shows it (an fexecve'd program is named after its fd). */
    prctl(PR_SET_NAME, "domain-init");
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, &old);
    /* Orphans that ended before the mask was set (the domain runs from the
       moment its init is exec'd) sent a SIGCHLD that was discarded. */
    reap_all(child, &status);
    /* Nothing but fds 0-3 passes to the program. */
    close_range(4, ~0U, CLOSE_RANGE_CLOEXEC);
    if (argc > 1 && (child = spawn(argv + 1, &old)) < 0) {
        fprintf(stderr, "bulkhead domain init: cannot fork: %s\n", strerror(errno));
        return 127;
    }
    for (;;) {
        if ((sig = sigwaitinfo(&set, &si)) < 0)
            continue; /* EINTR: a stop and continue */
        if (sig == SIGCHLD && reap_all(child, &status))
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (sig == SIGTERM || sig == SIGINT) {
            if (child < 0)
                return 0;
            kill(child, sig);
        }
    }
}
