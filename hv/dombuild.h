/*
 * dombuild.h - building a simulated domain as a process tree in namespaces
 * of its own, and entering one.  Used by bulkhead-hv (build) and by the
 * bulkhead toolstack (enter, for `bulkhead exec`).  Needs root.
 *
 * A domain is:
 *   - user, mount, PID, network, IPC and UTS namespaces of its own; root
 *     inside maps to `uid`/`gid` outside, and nothing else is mapped; no
 *     supplementary group of the caller's goes in;
 *   - no_new_privs, and rlimits that keep it from starving the others
 *     (processes - per uid, so per domain -, open files, address space);
 *   - a root filesystem of its own (a tmpfs, read-only once built) holding
 *     read-only, nosuid, nodev binds of the host's system directories (/usr,
 *     /bin, /sbin, /lib*, /etc, so that ordinary tools run; those that are
 *     symlinks, as with Debian's merged /usr, are recreated as the same
 *     symlinks) and of the extra directories given (Bulkhead's prefix, or
 *     its build tree when run uninstalled), a fresh /proc for its PID
 *     namespace, a minimal read-only /dev (null, zero, full, random,
 *     urandom, tty; fd, stdin, stdout, stderr links), and private, size-
 *     bounded tmpfs /tmp, /run and /home.  The daemon's socket is bound at
 *     /run/bulkhead/hv.sock.  No view of the state directory, of /root, of
 *     host processes, of host network links or of any other domain; its
 *     loopback link is up;
 *   - its first process: `argv` run from `exe_fd` (fexecve), as pid 1 of the
 *     PID namespace, with `channel_fd` as fd 3 and no other fd but 0-2
 *     (opened on /dev/null), environment `envp`, hostname `name`, no signal
 *     blocked or ignored, working directory /.
 * When the first process dies, the kernel kills every other process of the
 * domain, and the namespaces and mounts go with the last of them.  The
 * first process also dies with the daemon (PR_SET_PDEATHSIG), so a crashed
 * daemon leaves no domain running.
 *
 * The domain's root holds every capability, but only over what its own
 * namespaces own: it may remount its own mounts, yet the host's files in
 * them belong to uids it has no mapping for, so their mode bits alone
 * decide, as for any unprivileged user.
 *
 * Processes and threads: the first process is the caller's own child (reap
 * it with waitpid), and its death signal follows the calling *thread*:
 * call dombuild_start from the thread that outlives the domain (bulkhead-hv
 * is single-threaded).  Do not reap children with waitpid(-1) while a call
 * here runs: each forks helpers that it reaps itself.
 */
#ifndef BULKHEAD_DOMBUILD_H
#define BULKHEAD_DOMBUILD_H

#include <stdint.h>
#include <sys/types.h>

#define DOMBUILD_MAX_RO_DIRS 32u

struct dombuild_spec {
    uint16_t domid;
    const char *name;           /* also the hostname: 1..64 bytes */
    uid_t uid;                  /* outside; must not be 0 */
    gid_t gid;                  /* outside; must not be 0 */
    const char *const *ro_dirs; /* NULL-terminated extra read-only binds, same path inside:
                                  absolute, no "." or ".." part, not under /proc or /dev,
                                  at most DOMBUILD_MAX_RO_DIRS; NULL for none */
    const char *hv_socket;      /* host path bound at /run/bulkhead/hv.sock; NULL for none */
    const char *xs_socket;      /* ... at /run/bulkhead/xenstored.sock; NULL for none */
    int channel_fd;             /* becomes fd 3; -1 for none */
    int exe_fd;                 /* program of the first process (an O_PATH or O_RDONLY fd of a
                                   binary: a script cannot be run from an fd closed on exec) */
    char *const *argv;
    char *const *envp;      /* NULL for an empty environment */
    uint64_t memory_kb;     /* RLIMIT_AS of every process; 0 = none.  Not with an
                               AddressSanitizer-built program: its shadow needs terabytes
                               of address space */
    unsigned int max_procs; /* RLIMIT_NPROC for the domain's uid; 0 = 512 */
    unsigned int max_files; /* RLIMIT_NOFILE; 0 = 4096 */
    int console_fd;         /* > 2: the first process's stdout and stderr (its console log);
                               0 (or any fd <= 2): /dev/null like stdin */
};

/*
 * Builds the domain and starts its first process.  Returns 0 with *pid
 * (as the caller sees it) and *pidfd (close-on-exec; pollable: readable when
 * the first process exits; reap it with waitpid(*pid)), or -1 with errno set
 * and a one-line reason in err (errlen bytes), e.g. "cannot bind /opt/x
 * read-only: No such file or directory"; nothing of the domain is left then.
 */
int dombuild_start(const struct dombuild_spec *s, pid_t *pid, int *pidfd, char *err, size_t errlen);

/*
 * Kills every process of the domain whose first process is `pid` (SIGKILL to
 * it, which takes the PID namespace down), reaps it, and waits until no
 * process runs as `uid` any more, killing any it finds.  `pid` is signalled
 * only while it is the caller's unreaped child running as `uid`: a pid the
 * caller has reaped already (the domain shut down by itself) may name
 * another process by now.  Returns 0, or -1 with errno set (ETIMEDOUT if
 * processes remain after timeout_ms; EINVAL for uid 0).
 */
int dombuild_kill(pid_t pid, uid_t uid, int timeout_ms);

/*
 * Calls fn for every live process whose real uid is in [lo, hi]; returns how
 * many, or -1 with errno set.  A pid can be reused at any time: fn must not
 * signal it by number (open a pidfd and check again).
 */
int dombuild_each_proc(uid_t lo, uid_t hi, void (*fn)(pid_t pid, uid_t uid, void *arg), void *arg);

/*
 * Pauses (SIGSTOP) or resumes (SIGCONT) every process running as `uid`.
 * Pausing returns once every one of them is stopped, so that none can have
 * forked past it.  Returns 0, or -1 with errno set: ESRCH when no process
 * runs as `uid`, ETIMEDOUT when some did not stop within a second or two,
 * EINVAL for uid 0.
 */
int dombuild_pause(uid_t uid, int pause);

/*
 * Runs argv inside the domain whose first process is `init_pid`, as its
 * root: enters its user, mount, PID, network, IPC and UTS namespaces, takes
 * its rlimits and no_new_privs, closes every fd but 0-2, and execs argv[0]
 * (searched in the PATH of envp) with envp.  stdin, stdout and stderr pass
 * through.  Waits for it and returns 0 with its status as waitpid encodes
 * it, or -1 with errno set and a one-line reason in err (the command could
 * not be started: e.g. "cannot run foo in the domain: No such file or
 * directory").  The caller itself stays where it is (host root, its own
 * namespaces): a helper process enters the domain and the command becomes
 * the caller's child.  Whatever the command leaves running lives on in the
 * domain, under its init, until the domain dies.
 */
int dombuild_exec(pid_t init_pid, char *const *argv, char *const *envp, int *status, char *err,
                  size_t errlen);

/*
 * The domain init: pid 1 of a domain, called by bulkhead-hv's main when
 * started as "bulkhead-hv --domain-init [PROGRAM [ARG]...]", with argv
 * starting at "--domain-init" (argv[0]) and argc counting from there.
 * Reaps every orphan of the domain.  With a program (searched in PATH), it
 * runs it as its child, with fd 3 (the hypercall channel, which the init
 * keeps open too) and fds 0-2, forwards SIGTERM and SIGINT to it, and
 * returns when it exits: its exit status, or 128 + the signal that killed
 * it; the domain then shuts down.  Without a program (the idle init) it
 * returns 0 on SIGTERM or SIGINT and otherwise runs until killed.
 */
int dominit_main(int argc, char **argv);

#endif /* BULKHEAD_DOMBUILD_H */
