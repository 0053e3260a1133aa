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
 *
 * A driver domain's init ("--domain-init --confine PROGRAM...", which
 * bulkhead-hv gives a domain created with HVW_DOM_DRIVER) is confined once
 * it has forked its program: from then on its loop only waits for signals,
 * reaps and forwards SIGTERM, so it needs no capability and a handful of
 * calls (confine below).  A guest's init is not confined: `bulkhead exec`
 * leaves the commands it runs in the guest under it, and a guest's
 * programs are the guest's own business, not the driver domain's TCB.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dombuild.h"
#include "sandbox.h"

/*
 * The confined init's allowlist: what its loop, its exits and its error
 * lines call (strace -f of a driver domain's init through create, a
 * worker's death, restart, upgrade and destroy shows no other call once it
 * is confined).  The sanitizer builds' runtime adds nothing here: the loop
 * allocates nothing, and every exit after confine is a bare exit_group,
 * past the sanitizers' exit and _exit hooks (LeakSanitizer's check needs
 * ptrace and /proc; ASan's _exit tears its signal stack down with
 * sigaltstack).
 */
/* clang-format off */
static const char *const init_allowed[] = {
    "rt_sigtimedwait", /* sigwaitinfo: SIGCHLD, SIGTERM, SIGINT, taken synchronously */
    "wait4",           /* waitpid: reaping the program and the domain's orphans */
    "write",           /* the one-line errors on stderr (the domain's console) */
    "exit_group",      /* leaving once the program has ended, or from the SIGSYS handler */
};
/* clang-format on */

/* kill: only SIGTERM and SIGINT, forwarded to the program. */
static const int init_signals[] = {SIGTERM, SIGINT};

static scmp_filter_ctx init_filter(void)
{
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
    int rc = 0;

    if (f == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(init_allowed) / sizeof(init_allowed[0]); i++)
        rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, seccomp_syscall_resolve_name(init_allowed[i]), 0);
    for (size_t i = 0; i < sizeof(init_signals) / sizeof(init_signals[0]); i++)
        rc |= seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
                               SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)init_signals[i]));
    if (rc != 0) {
        seccomp_release(f);
        errno = -rc;
        return NULL;
    }
    return f;
}

/*
 * Gives up what the loop does not need, as driverdom/confine.c does
 * (hv/sandbox.c: no_new_privs and every capability), the seccomp
 * allowlist last.  The domain's mounts stay as they are: dom0 enters them
 * through the init (`bulkhead upgrade`, nsenter), and the init opens
 * nothing.  A call outside the list traps: SIGSYS from seccomp is forced
 * on the task, so it reaches even a pid 1 whose other signals the kernel
 * drops, and the init logs the line the confined workers do and ends, and
 * with it the domain: a driver domain whose init met a call it was not
 * meant to make fails closed.
 */
static int confine(char *why, size_t len)
{
    scmp_filter_ctx f;
    int rc;

    if (bhsb_drop_privileges(why, len) != 0)
        return -1;
    /* getpid is not in the list: the pid is taken now. */
    bhsb_sigsys_prepare("domain-init", "hv/dominit.c", (int)getpid());
    if ((f = init_filter()) == NULL) {
        snprintf(why, len, "cannot build the seccomp filter: %s", strerror(errno));
        return -1;
    }
    bhsb_sigsys_install();
    rc = seccomp_load(f);
    seccomp_release(f);
    if (rc != 0) {
        snprintf(why, len, "cannot load the seccomp filter: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

/* "syscall NAME" lines, as bulkhead-drvdom --print-policy gives its own (bulkhead tcb). */
static void print_policy(void)
{
    for (size_t i = 0; i < sizeof(init_allowed) / sizeof(init_allowed[0]); i++)
        printf("syscall %s\n", init_allowed[i]);
    printf("syscall kill (SIGTERM, SIGINT)\n");
}

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
    bool confined = false;
    char why[256];

    if (argc == 2 && strcmp(argv[1], "--print-policy") == 0) {
        print_policy();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--confine") == 0) {
        confined = true;
        argc--;
        argv++;
    }
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
    /* Failing closed: a driver domain whose init cannot be confined does not run. */
    if (confined && confine(why, sizeof(why)) != 0) {
        fprintf(stderr,
                "bulkhead domain init: cannot confine the driver domain's init: %s; "
                "the domain ends (run it on a kernel with seccomp and user namespaces)\n",
                why);
        if (child > 0)
            kill(child, SIGKILL);
        _exit(126);
    }
    for (;;) {
        if ((sig = sigwaitinfo(&set, &si)) < 0)
            continue; /* EINTR: a stop and continue */
        if (sig == SIGCHLD && reap_all(child, &status)) {
            status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            if (child < 0) {
                status = 0;
                break;
            }
            kill(child, sig);
        }
    }
    /*
     * Confined, the init leaves with a bare exit_group: exit would run
     * atexit handlers and, in a sanitizer build, LeakSanitizer's check,
     * and the sanitizers' _exit calls sigaltstack: the filter denies both.
     * Nothing is buffered: it writes only to stderr.
     */
    if (confined)
        syscall(SYS_exit_group, status);
    return status;
}
