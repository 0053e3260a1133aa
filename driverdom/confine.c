/*
 * confine.c - what bulkhead-drvdom gives up before it serves a peer.
 *
 * In a driver domain the daemon is root of its own user namespace, which
 * is far more than it needs once it has its XenStore connection: a device's
 * disk or TAP queues come from dom0's broker as file descriptors
 * (DESIGN.md, "Privilege, concretely"), and everything else it does is
 * reading and writing descriptors it already holds, making sockets to the
 * two daemons under /run/bulkhead, forking keepers and workers, and
 * mapping memory.  drvdom_confine takes the rest away, in this order
 * (each step needs what a later one removes):
 *
 *   1. a mount namespace of its own whose root is an empty, read-only
 *      tmpfs holding only /proc (blkback reopens a disk fd O_DIRECT through
 *      /proc/self/fd; the sanitizers read /proc/self/maps) and
 *      /run/bulkhead (the hypervisor's and XenStore's sockets, which a
 *      worker connects to), or on Xen /dev/xen instead (xenbus, gntdev,
 *      gntalloc, evtchn, which a worker opens).  Nothing of the host's
 *      /usr, /etc or of the build tree stays in view, nor any storage:
 *      the storage a domain was given (bulkhead_storage) reaches it only
 *      as the broker's fds (on Xen, the opener's: opener.c);
 *   2. no_new_privs, so that nothing it runs could gain privilege (there
 *      is no exec anyway: step 4);
 *   3. every capability: the bounding set first (PR_CAPBSET_DROP needs
 *      CAP_SETPCAP, which step 3's capset removes), then effective,
 *      permitted and inheritable with capset, then the ambient set;
 *   4. a seccomp allowlist (libseccomp), for every thread (TSYNC:
 *      libxenstore's reader thread runs already): a call not in it traps,
 *      and the SIGSYS handler logs the call's name and ends the process,
 *      so that a call missing from the list is one grep away.
 *
 * A process forked after this inherits all four; drvdom_confine in it
 * returns at once.  In dom0 (the stock placement, `bulkhead up`'s devd)
 * nothing of this is done: that is the baseline `bulkhead tcb` compares
 * the driver domain with.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <xen/xen.h> /* domid_t, which the sys/ headers use */
#include <xen/sys/evtchn.h>
#include <xen/sys/gntalloc.h>
#include <xen/sys/gntdev.h>

#include "bhblkback.h"
#include "bhplat.h"
#include "drvdom.h"
#include "sandbox.h"

#if defined(__SANITIZE_ADDRESS__)
#define BH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BH_SANITIZED 1
#endif
#endif

/* The new root is built on a fresh tmpfs mounted over /tmp, in our mount namespace only. */
#define NEWROOT "/tmp"

/*
 * The allowlist, each entry with why.  Calls that take an argument worth
 * narrowing (socket's domain, ioctl's request, prctl's option) are listed
 * apart below.  openat stays: the mount namespace of step 1 is what keeps
 * files out of reach, and /proc/self/fd reopens need it.
 */
/* One line per group reads better than one name per line. */
/* clang-format off */
static const char *const allowed[] = {
    /* descriptors it holds: sockets, eventfds, the disk, the TAP queues, signalfd */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "pwritev2", "close", "close_range" /* a keeper's clean slate */, "fcntl", "dup", "dup3",
    "lseek", "fstat", "newfstatat", "statx", "openat", "ftruncate" /* a keeper's memfd */,
    "fsync", "fdatasync", "fallocate", /* blkback on an NBD-less disk without io_uring */
    "pipe2",                          /* libnbd */
    "access", "faccessat", "faccessat2", /* libxenstore on Xen: is there a /dev/xen/xenbus? */
    /* waiting */
    "poll", "ppoll", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "select",
    "pselect6", "nanosleep", "clock_nanosleep", "clock_gettime", "gettimeofday",
    "timerfd_create", "timerfd_settime", "timerfd_gettime", "eventfd2",
    /* sockets to bulkhead-hv, XenStore, the broker and an NBD server (AF_UNIX only, below) */
    "connect", "sendto", "recvfrom", "sendmsg", "recvmsg", "shutdown", "getsockopt",
    "setsockopt", "getsockname", "getpeername", "socketpair",
    /* a keeper's handover socket (keeper.c, bulkhead upgrade): abstract, AF_UNIX */
    "bind", "listen", "accept4",
    "pidfd_open", /* a keeper waits for its worker on a pidfd beside its socket */
    "dup2",       /* an upgraded worker takes the keeper's log as its stderr */
    "setsid",     /* ... and leaves the session of the `bulkhead upgrade` that started it */
    /* memory: malloc, thread stacks, grant mappings, the keeper's shared state */
    "mmap", "munmap", "mprotect", "mremap", "madvise", "brk", "memfd_create",
    /* processes: keepers and workers are forked, libxenstore starts a thread */
    "clone", "clone3", "wait4", "waitid", "exit", "exit_group", "getpid", "getppid", "gettid",
    "kill" /* SIGTERM to a keeper or worker */, "tgkill", "rt_sigaction", "rt_sigprocmask",
    "rt_sigreturn", "rt_sigtimedwait", "sigaltstack", "signalfd4", "restart_syscall",
    "futex", "set_robust_list", "get_robust_list", "rseq", "sched_yield", "set_tid_address",
    "getrandom", "getuid", "geteuid", "getgid", "getegid", "uname", "sched_getaffinity",
    "prlimit64", "getrlimit",
    /* event channels (grant/evtkick.c): an eventfd polled with Linux AIO */
    "io_setup", "io_submit", "io_getevents", "io_pgetevents", "io_destroy", "io_cancel",
    /* blkback's rings, restricted on their own (backend/blk/engine.c) */
    "io_uring_setup", "io_uring_enter", "io_uring_register",
};
/* clang-format on */

#ifdef BH_SANITIZED
/*
 * AddressSanitizer and LeakSanitizer: the leak check at exit stops the
 * world with a ptraced clone (which blocks SIGSYS: a call denied there
 * kills it silently and the process waits for it for ever) that lists
 * /proc/PID/task with the old x86-64 calls (open, getdents, stat); a report
 * reads the binary's path.  Only in --enable-sanitizers builds.
 */
/* clang-format off */
static const char *const allowed_sanitizer[] = {
    "ptrace", "getdents", "getdents64", "open", "stat", "lstat", "access", "readlink",
    "readlinkat", "faccessat", "faccessat2", "setrlimit", "mincore", "sysinfo",
    "process_vm_readv", "msync", "pipe", "sched_getparam", "getpgid", "getsid", "prctl",
};
/* clang-format on */
#endif

/*
 * ioctl requests: a disk's geometry (driverdom/blk.c), a TAP queue's
 * offloads (net.c); on Xen, libxengnttab's, libxengntshr's and
 * libxenevtchn's (gntdev maps, unmaps and copies; gntalloc shares; evtchn
 * binds, notifies and unbinds), which the simulation does with calls
 * already listed.
 */
static const unsigned long allowed_ioctls[] = {
    BLKGETSIZE64, BLKSSZGET, BLKPBSZGET, TUNSETOFFLOAD, FIONREAD,
    IOCTL_GNTDEV_MAP_GRANT_REF, IOCTL_GNTDEV_UNMAP_GRANT_REF, IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR,
    IOCTL_GNTDEV_SET_MAX_GRANTS, IOCTL_GNTDEV_SET_UNMAP_NOTIFY, IOCTL_GNTDEV_GRANT_COPY,
    IOCTL_GNTALLOC_ALLOC_GREF, IOCTL_GNTALLOC_DEALLOC_GREF, IOCTL_GNTALLOC_SET_UNMAP_NOTIFY,
    IOCTL_EVTCHN_BIND_INTERDOMAIN, IOCTL_EVTCHN_BIND_UNBOUND_PORT, IOCTL_EVTCHN_UNBIND,
    IOCTL_EVTCHN_NOTIFY, IOCTL_EVTCHN_RESET, IOCTL_EVTCHN_RESTRICT_DOMID};
#ifndef BH_SANITIZED
/* prctl options: the comm of a keeper or worker, a worker's death with its keeper, no_new_privs. */
static const int allowed_prctls[] = {PR_SET_NAME, PR_GET_NAME, PR_SET_PDEATHSIG, PR_GET_DUMPABLE,
                                     PR_CAPBSET_READ,
                                     PR_SET_NO_NEW_PRIVS /* worker_enter_service, again */};
#endif

static int confined;

bool drvdom_confined(void)
{
    return confined != 0;
}

void drvdom_confine_sigsys(void)
{
    if (confined)
        bhsb_sigsys_install();
}

/* ---- step 1: the mount namespace ---- */

static int bind_into(const char *src, const char *dst, char *why, size_t len)
{
    if (mkdir(dst, 0755) != 0 && errno != EEXIST) {
        snprintf(why, len, "cannot make %s: %s", dst, strerror(errno));
        return -1;
    }
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) != 0) {
        snprintf(why, len, "cannot bind %s into the confined root: %s", src, strerror(errno));
        return -1;
    }
    return 0;
}

static int confine_mounts(bool xen, char *why, size_t len)
{
    /*
     * pthread_cancel (libxenstore's xs_close) loads libgcc_s on first use;
     * from the new root it could not: load it while the host's /lib shows.
     */
    (void)dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE);
    if (unshare(CLONE_NEWNS) != 0) {
        snprintf(why, len, "cannot make a mount namespace: %s", strerror(errno));
        return -1;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=64k,nr_inodes=16,mode=0755") != 0) {
        snprintf(why, len, "cannot mount the confined root: %s", strerror(errno));
        return -1;
    }
    if (bind_into("/proc", NEWROOT "/proc", why, len) != 0)
        return -1;
    /*
     * What a worker opens after this, by platform: the simulation's daemons
     * are sockets under /run/bulkhead; on Xen, XenStore, the grant devices
     * and the event channels are /dev/xen's nodes (xenbus, gntdev, gntalloc,
     * evtchn), and there is no /run/bulkhead.
     */
    if (xen) {
        if (mkdir(NEWROOT "/dev", 0755) != 0 ||
            bind_into("/dev/xen", NEWROOT "/dev/xen", why, len) != 0) {
            if (why[0] == '\0')
                snprintf(why, len, "cannot make the confined /dev: %s", strerror(errno));
            return -1;
        }
    } else if (mkdir(NEWROOT "/run", 0755) != 0 ||
               bind_into("/run/bulkhead", NEWROOT "/run/bulkhead", why, len) != 0) {
        if (why[0] == '\0')
            snprintf(why, len, "cannot make the confined /run: %s", strerror(errno));
        return -1;
    }
    /* As dombuild does: the old root stacked under the new, then lazily gone. */
    if (chdir(NEWROOT) != 0) {
        snprintf(why, len, "cannot enter the confined root: %s", strerror(errno));
        return -1;
    }
    if (syscall(SYS_pivot_root, ".", ".") == 0) {
        if (umount2(".", MNT_DETACH) != 0 || chdir("/") != 0) {
            snprintf(why, len, "cannot drop the old root: %s", strerror(errno));
            return -1;
        }
    } else if (errno == EINVAL) {
        /*
         * A root that is the initramfs itself (a small driver domain that
         * never switched root, as the Xen tier's) cannot be pivoted away
         * from: the new root is moved over it and entered, as switch_root
         * does.  The old one stays beneath, out of reach: a chroot is left
         * only with CAP_SYS_CHROOT, which step 3 drops.
         */
        if (mount(".", "/", NULL, MS_MOVE, NULL) != 0 || chroot(".") != 0 || chdir("/") != 0) {
            snprintf(why, len, "cannot move into the confined root: %s", strerror(errno));
            return -1;
        }
    } else {
        snprintf(why, len, "cannot pivot into the confined root: %s", strerror(errno));
        return -1;
    }
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              NULL) != 0) {
        snprintf(why, len, "cannot make the confined root read-only: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- step 3: capabilities, with no_new_privs (hv/sandbox.c) ---- */

/* ---- step 4: seccomp ---- */

static int add(scmp_filter_ctx f, const char *name, uint32_t action, unsigned int n,
               const struct scmp_arg_cmp *arg)
{
    int nr = seccomp_syscall_resolve_name(name);

    if (nr == __NR_SCMP_ERROR)
        return 0; /* not on this architecture (x86-64 has no plain "pipe" twin, etc.) */
    return n ? seccomp_rule_add_array(f, action, nr, n, arg) : seccomp_rule_add(f, action, nr, 0);
}

/* The filter, not loaded: drvdom_confine loads it, --print-policy prints it. */
static scmp_filter_ctx build_filter(void)
{
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
    struct scmp_arg_cmp a;
    int rc = 0;

    if (f == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        rc |= add(f, allowed[i], SCMP_ACT_ALLOW, 0, NULL);
#ifdef BH_SANITIZED
    for (size_t i = 0; i < sizeof(allowed_sanitizer) / sizeof(allowed_sanitizer[0]); i++)
        rc |= add(f, allowed_sanitizer[i], SCMP_ACT_ALLOW, 0, NULL);
    /* A report's symbolizer is exec'd: refused, the report stays unsymbolized. */
    rc |= add(f, "execve", SCMP_ACT_ERRNO(EPERM), 0, NULL);
#else
    /* prctl only for the options above (the sanitizer build allows it whole) */
    for (size_t i = 0; i < sizeof(allowed_prctls) / sizeof(allowed_prctls[0]); i++) {
        a = (struct scmp_arg_cmp)SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)allowed_prctls[i]);
        rc |= add(f, "prctl", SCMP_ACT_ALLOW, 1, &a);
    }
#endif
    /* sockets: only AF_UNIX (the daemons, the broker's and NBD's sockets); no network stack */
    a = (struct scmp_arg_cmp)SCMP_A0(SCMP_CMP_EQ, AF_UNIX);
    rc |= add(f, "socket", SCMP_ACT_ALLOW, 1, &a);
    for (size_t i = 0; i < sizeof(allowed_ioctls) / sizeof(allowed_ioctls[0]); i++) {
        a = (struct scmp_arg_cmp)SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu,
                                         (scmp_datum_t)allowed_ioctls[i]);
        rc |= add(f, "ioctl", SCMP_ACT_ALLOW, 1, &a);
    }
    if (rc != 0 || seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1) != 0) {
        seccomp_release(f);
        errno = rc < 0 ? -rc : EINVAL;
        return NULL;
    }
    return f;
}

int drvdom_confine(enum drvdom_role role, char *why, size_t len)
{
    scmp_filter_ctx f;
    int rc;

    (void)role; /* every role gets the same: a worker restarted alone too */
    if (confined)
        return 0;
    const char *plat = bhplat_platform();
    bool xen = plat != NULL && strcmp(plat, "xen") == 0;

    why[0] = '\0';
    if (confine_mounts(xen, why, len) != 0)
        return -1;
    if (bhsb_drop_privileges(why, len) != 0)
        return -1;
    bhsb_sigsys_prepare(progname, "driverdom/confine.c", 0);
    if ((f = build_filter()) == NULL) {
        snprintf(why, len, "cannot build the seccomp filter: %s", strerror(errno));
        return -1;
    }
    confined = 1;
    drvdom_confine_sigsys();
    if ((rc = seccomp_load(f)) != 0) {
        seccomp_release(f);
        confined = 0;
        snprintf(why, len, "cannot load the seccomp filter: %s", strerror(-rc));
        return -1;
    }
    seccomp_release(f);
    return 0;
}

/*
 * The policy as `bulkhead tcb` reads it: "syscall NAME" for each call the
 * filter allows (with " (args)" when only some arguments are), then
 * "io_uring OP" for each operation blkback's rings allow.
 */
void drvdom_print_policy(FILE *out)
{
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (seccomp_syscall_resolve_name(allowed[i]) != __NR_SCMP_ERROR)
            fprintf(out, "syscall %s\n", allowed[i]);
#ifdef BH_SANITIZED
    for (size_t i = 0; i < sizeof(allowed_sanitizer) / sizeof(allowed_sanitizer[0]); i++)
        if (seccomp_syscall_resolve_name(allowed_sanitizer[i]) != __NR_SCMP_ERROR)
            fprintf(out, "syscall %s (sanitizer build)\n", allowed_sanitizer[i]);
#else
    fprintf(out, "syscall prctl (PR_SET_NAME, PR_GET_NAME, PR_SET_PDEATHSIG, PR_GET_DUMPABLE, "
                 "PR_CAPBSET_READ)\n");
#endif
    fprintf(out, "syscall socket (AF_UNIX)\n");
    /* one line, one system call: bulkhead tcb counts the lines */
    fprintf(out, "syscall ioctl (BLKGETSIZE64, BLKSSZGET, BLKPBSZGET, TUNSETOFFLOAD, FIONREAD; "
                 "Xen's gntdev MAP_GRANT_REF, UNMAP_GRANT_REF, GET_OFFSET_FOR_VADDR, "
                 "SET_MAX_GRANTS, SET_UNMAP_NOTIFY, GRANT_COPY; Xen's gntalloc ALLOC_GREF, "
                 "DEALLOC_GREF, SET_UNMAP_NOTIFY; Xen's evtchn BIND_INTERDOMAIN, "
                 "BIND_UNBOUND_PORT, UNBIND, NOTIFY, RESET, RESTRICT_DOMID)\n");
    for (size_t i = 0; bhblk_uring_ops[i] != NULL; i++)
        fprintf(out, "io_uring %s\n", bhblk_uring_ops[i]);
}

/* ---- test-only: proves the confinement from inside (tests/dev/confine.sh) ---- */

int drvdom_confine_selftest(const char *what)
{
    char why[256];
    int fd;

    if (drvdom_confine(DRVDOM_MAIN, why, sizeof(why)) != 0) {
        logline("cannot confine: %s", why);
        return 1;
    }
    if (strncmp(what, "open:", 5) == 0) {
        if ((fd = open(what + 5, O_RDONLY | O_CLOEXEC)) >= 0) {
            printf("open %s: opened\n", what + 5);
            close(fd);
        } else {
            printf("open %s: %s\n", what + 5, strerror(errno));
        }
        return 0;
    }
    if (strcmp(what, "exec") == 0) {
        char *const argv[] = {"/bin/true", NULL};
        fflush(stdout);
        execve(argv[0], argv, NULL); /* traps: never returns in a non-sanitizer build */
        printf("exec: %s\n", strerror(errno));
        return 0;
    }
    if (strcmp(what, "denied") == 0) {
        /* unshare is in no build's list: the handler logs it and the process ends */
        fflush(stdout);
        syscall(SYS_unshare, 0);
        printf("denied: unshare returned\n");
        return 0;
    }
    fprintf(stderr, "%s: --confine-selftest open:PATH, exec or denied\n", progname);
    return 2;
}
