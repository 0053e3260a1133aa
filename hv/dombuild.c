/*
 * dombuild.c - builds a simulated domain, enters one, takes one down.  The
 * contract is in dombuild.h; this is how.
 *
 * Three processes take part in a build:
 *
 *     builder (the caller, host root)
 *       `- helper   fork(): closes the builder's other fds, clones every
 *            |      source of the root filesystem, sets the process limits,
 *            |      drops the supplementary groups, then
 *            `- init   clone(CLONE_PARENT | CLONE_NEW*): the domain's pid 1,
 *                      which builds the root filesystem and execs the program
 *
 * CLONE_PARENT makes init the *builder's* child, although the helper made
 * it.  Both halves of the contract need that: the builder reaps init and
 * watches it with a pidfd, and init's death signal (PR_SET_PDEATHSIG,
 * SIGKILL) fires when its parent thread dies: had the helper been the
 * parent, it would have fired as soon as the helper exited.  When init
 * dies, the kernel kills every other process of its PID namespace, so the
 * builder's death takes the whole domain down (see tie_to_builder for the
 * race at start-up).
 *
 * The helper exists for what must be done as host root, outside the
 * domain's namespaces.  Supplementary groups survive entering a user
 * namespace and keep granting access on the host (a group of host root's on
 * files that are 0640 root:thatgroup), and once a process is in the
 * namespace they can no longer be dropped (setgroups is "deny" there).  And
 * the sources of the binds are looked up with host root's full access: from
 * inside, without CAP_DAC_OVERRIDE over host files, init could not reach
 * the daemon's socket in its 0700 state directory, nor a build tree in a
 * 0700 home.  The helper clones them into detached mount trees (open_tree),
 * which init inherits and attaches inside its own mount namespace.
 *
 * Builder and children talk over a SOCK_SEQPACKET socketpair, closed on
 * exec, one struct sync_msg per packet:
 *     helper  -> builder   SYNC_PID: init's pid; the builder writes its maps
 *     builder -> init      SYNC_GO
 *     init    -> builder   SYNC_READY just before the exec; then EOF once the
 *                          exec has succeeded (the socket closes on exec)
 *     any     -> builder   SYNC_FAIL: errno and a one-line reason, then exit
 * dombuild_exec uses the same protocol with a worker and the command.
 *
 * The children run only our code until they exec, and report every error;
 * they call nothing that needs a lock another thread could hold.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dombuild.h"

/*
 * user: root inside is `uid` outside, and its capabilities reach only what
 *       the domain's own namespaces own;
 * mnt:  a root filesystem of its own, with none of the host's but the binds;
 * pid:  it sees only its processes, and its init's death ends them all;
 * net:  no host link; devices come later as fds from dom0;
 * ipc:  SysV IPC and POSIX message queues shared with no other domain;
 * uts:  its own hostname.
 */
#define DOMAIN_NS                                                                                  \
    (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)

#define SYNC_TIMEOUT_MS  30000
#define PAUSE_TIMEOUT_MS 2000
#define DEFAULT_PROCS    512u
#define DEFAULT_FILES    4096u

/* The new root is mounted over /tmp, in the domain's mount namespace only. */
#define NEWROOT "/tmp"
/* tmpfs pages are memory outside RLIMIT_AS: every tmpfs is bounded. */
#define ROOT_OPTS "mode=0755,size=1m,nr_inodes=4096"
#define DEV_OPTS  "mode=0755,size=64k,nr_inodes=64"
#define TMP_OPTS  "mode=1777,size=64m"
#define RUN_OPTS  "mode=0755,size=8m"
#define HOME_OPTS "mode=0755,size=64m"
#define RO_ATTR   (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
#define MAX_ENTS  (32u + DOMBUILD_MAX_RO_DIRS)

enum sync_kind { SYNC_PID = 1, SYNC_GO, SYNC_READY, SYNC_FAIL };

struct sync_msg {
    int32_t kind; /* enum sync_kind */
    int32_t err;  /* SYNC_FAIL: the errno */
    int32_t pid;  /* SYNC_PID */
    char text[244];
};

/* One step of building the root, applied in order inside the new root. */
enum ent_kind { ENT_TREE, ENT_LINK, ENT_TMPFS, ENT_PROC, ENT_SEAL };

struct ent {
    enum ent_kind kind;
    const char *dst;     /* absolute path inside the domain */
    int fd;              /* ENT_TREE: a detached clone of the source */
    const char *data;    /* ENT_LINK: the target; ENT_TMPFS: mount options */
    unsigned long flags; /* ENT_TMPFS, ENT_PROC: MS_* */
    char buf[128];       /* a link target read from the host */
};

struct plan {
    struct ent e[MAX_ENTS];
    unsigned int n;
    int fd; /* the sync socket, for errors */
};

static char *const no_env[] = {NULL};

/* ---- the sync socket ---- */

static int sync_send(int fd, int kind, pid_t pid)
{
    struct sync_msg m = {.kind = kind, .pid = pid};

    return send(fd, &m, sizeof(m), MSG_NOSIGNAL) == (ssize_t)sizeof(m) ? 0 : -1;
}

/* Returns 1 with a message, 0 at EOF, -1 with errno (ETIMEDOUT). */
static int sync_recv(int fd, struct sync_msg *m, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t r;
    int n;

    while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
        ;
    if (n <= 0) {
        if (n == 0)
            errno = ETIMEDOUT;
        return -1;
    }
    while ((r = recv(fd, m, sizeof(*m), 0)) < 0 && errno == EINTR)
        ;
    if (r <= 0)
        return (int)r;
    if ((size_t)r != sizeof(*m)) {
        errno = EPROTO;
        return -1;
    }
    m->text[sizeof(m->text) - 1] = '\0';
    return 1;
}

/* A child's last words: "what: strerror (hint)" to the builder, then exit. */
static void __attribute__((noreturn, format(printf, 4, 5)))
child_fail(int fd, int e, const char *hint, const char *fmt, ...)
{
    struct sync_msg m = {.kind = SYNC_FAIL, .err = e ? e : EIO};
    size_t n;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(m.text, sizeof(m.text), fmt, ap);
    va_end(ap);
    n = strlen(m.text);
    if (e != 0)
        n += (size_t)snprintf(m.text + n, sizeof(m.text) - n, ": %s", strerror(e));
    if (hint != NULL && n < sizeof(m.text))
        snprintf(m.text + n, sizeof(m.text) - n, " (%s)", hint);
    send(fd, &m, sizeof(m), MSG_NOSIGNAL);
    _exit(1);
}

static int fail_text(const struct sync_msg *m, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s", m->text);
    return m->err > 0 ? m->err : EIO;
}

static void reap(pid_t pid)
{
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* The helper's (or worker's) answer: the pid of the process it made. */
static int recv_pid(int fd, const char *who, pid_t *pid, char *err, size_t errlen)
{
    struct sync_msg m;
    int r = sync_recv(fd, &m, SYNC_TIMEOUT_MS), e;

    if (r == 1 && m.kind == SYNC_PID && m.pid > 0) {
        *pid = m.pid;
        return 0;
    }
    if (r == 1 && m.kind == SYNC_FAIL)
        return fail_text(&m, err, errlen);
    e = r < 0 ? errno : EPROTO;
    if (r == 0)
        snprintf(err, errlen, "the %s died before it answered", who);
    else
        snprintf(err, errlen, "the %s did not answer: %s", who, strerror(e));
    return e;
}

/* EOF or EPIPE before SYNC_READY: the child is exiting.  Its status, left to reap. */
static int died(pid_t pid, const char *who, char *err, size_t errlen)
{
    siginfo_t si = {0};

    while (waitid(P_PID, pid, &si, WEXITED | WNOWAIT) != 0 && errno == EINTR)
        ;
    if (si.si_pid == pid && si.si_code == CLD_EXITED)
        snprintf(err, errlen, "%s exited with status %d before its exec", who, si.si_status);
    else if (si.si_pid == pid)
        snprintf(err, errlen, "%s died of signal %d before its exec", who, si.si_status);
    else
        snprintf(err, errlen, "%s closed its build socket before its exec", who);
    return ESRCH;
}

/* Lets the child go on, and waits until its exec succeeded (EOF) or failed. */
static int await_exec(int fd, pid_t pid, const char *who, char *err, size_t errlen)
{
    struct sync_msg m;
    bool ready = false;
    int r, e;

    if (sync_send(fd, SYNC_GO, 0) != 0)
        return died(pid, who, err, errlen);
    for (;;) {
        r = sync_recv(fd, &m, SYNC_TIMEOUT_MS);
        if (r == 0)
            return ready ? 0 : died(pid, who, err, errlen);
        if (r < 0) {
            e = errno;
            snprintf(err, errlen, "%s did not start within %d s: %s", who, SYNC_TIMEOUT_MS / 1000,
                     strerror(e));
            return e;
        }
        if (m.kind == SYNC_FAIL)
            return fail_text(&m, err, errlen);
        if (m.kind != SYNC_READY) {
            snprintf(err, errlen, "%s sent message %d out of turn", who, (int)m.kind);
            return EPROTO;
        }
        ready = true;
    }
}

/* ---- checking the spec (in the builder, so errors need no round trip) ---- */

/* Absolute, and no empty, "." or ".." component: the path names one place. */
static bool path_ok(const char *p)
{
    const char *c = p;

    if (p == NULL || p[0] != '/' || strlen(p) >= 1024)
        return false;
    while (*c == '/') {
        const char *e = strchr(c + 1, '/');
        size_t n = e != NULL ? (size_t)(e - c - 1) : strlen(c + 1);

        if (n == 0 || (n == 1 && c[1] == '.') || (n == 2 && c[1] == '.' && c[2] == '.'))
            return false;
        c += n + 1;
    }
    return true;
}

static bool under(const char *p, const char *dir)
{
    size_t n = strlen(dir);

    return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

static int spec_check(const struct dombuild_spec *s, char *err, size_t errlen)
{
    unsigned int n = 0;

    if (geteuid() != 0) {
        snprintf(err, errlen, "building a domain needs root: run as root");
        return EPERM;
    }
    if (s->uid == 0 || s->gid == 0 || s->uid == (uid_t)-1 || s->gid == (gid_t)-1) {
        snprintf(err, errlen, "a domain's uid and gid must not be 0 (host root) or -1");
        return EINVAL;
    }
    if (s->name == NULL || s->name[0] == '\0' || strlen(s->name) > 64) {
        snprintf(err, errlen, "a domain's name must be 1 to 64 bytes: it is its hostname");
        return EINVAL;
    }
    if (s->exe_fd < 0 || s->argv == NULL || s->argv[0] == NULL) {
        snprintf(err, errlen, "a domain needs a program: exe_fd and argv[0]");
        return EINVAL;
    }
    if (s->memory_kb > UINT64_MAX / 1024) {
        snprintf(err, errlen, "memory_kb %llu is too large", (unsigned long long)s->memory_kb);
        return EINVAL;
    }
    if (s->hv_socket != NULL && !path_ok(s->hv_socket)) {
        snprintf(err, errlen, "the daemon's socket path must be absolute and plain: %s",
                 s->hv_socket);
        return EINVAL;
    }
    if (s->xs_socket != NULL && !path_ok(s->xs_socket)) {
        snprintf(err, errlen, "the XenStore socket path must be absolute and plain: %s",
                 s->xs_socket);
        return EINVAL;
    }
    for (n = 0; s->ro_dirs != NULL && s->ro_dirs[n] != NULL; n++) {
        const char *d = s->ro_dirs[n];

        if (n == DOMBUILD_MAX_RO_DIRS || !path_ok(d) || under(d, "/proc") || under(d, "/dev")) {
            snprintf(err, errlen,
                     "bad read-only directory %s: give at most %u absolute paths "
                     "without . or .. parts, outside /proc and /dev",
                     d, DOMBUILD_MAX_RO_DIRS);
            return EINVAL;
        }
    }
    return 0;
}

/* ---- helper and init: credentials, fds, limits ---- */

static void close_other_fds(int *keep, size_t n)
{
    unsigned int next = 0;

    for (size_t i = 1; i < n; i++) /* insertion sort: n is 6 */
        for (size_t j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        if (keep[i] < 0 || (unsigned int)keep[i] < next)
            continue;
        if ((unsigned int)keep[i] > next)
            close_range(next, (unsigned int)keep[i] - 1, 0);
        next = (unsigned int)keep[i] + 1;
    }
    close_range(next, ~0U, 0);
}

static void set_limit(int fd, int res, const char *what, rlim_t v)
{
    struct rlimit rl = {.rlim_cur = v, .rlim_max = v};

    if (setrlimit(res, &rl) != 0)
        child_fail(fd, errno, NULL, "cannot set the domain's %s limit to %llu", what,
                   (unsigned long long)v);
}

/* A copy of fd numbered 4 or above, closed on exec: 0-3 are the domain's. */
static int fd_high(int sock, int fd)
{
    int r = fcntl(fd, F_DUPFD_CLOEXEC, 4);

    if (r < 0)
        child_fail(sock, errno, NULL, "cannot move fd %d out of the way", fd);
    return r;
}

/*
 * Ignored signals and the signal mask survive exec (bulkhead-hv blocks
 * SIGTERM for its signalfd and ignores SIGPIPE): the domain gets neither.
 * Through the kernel, since libc will not touch its own two realtime
 * signals (which make(1), for one, leaves ignored).  An all-zero kernel
 * sigaction is SIG_DFL, no flags, an empty mask, whatever the architecture.
 */
static void reset_signals(void)
{
    uint64_t dfl[8] = {0};
    sigset_t none;

    for (int sig = 1; sig < NSIG; sig++) /* fails, harmlessly, for SIGKILL and SIGSTOP */
        syscall(SYS_rt_sigaction, sig, dfl, NULL, (size_t)(NSIG - 1) / 8);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * Root inside, which the maps make `uid`/`gid` outside.  Without it the
 * process would keep host root's ids, unmapped inside but still root's on
 * every host file.  The death signal is armed after this, since a change of
 * credentials clears it.
 */
static void become_root(int fd)
{
    if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0)
        child_fail(fd, errno, NULL, "cannot become root in the domain's user namespace");
}

/*
 * The domain dies with its builder.  If the builder died before the death
 * signal was armed, no signal will come; but a dying process's files are
 * closed before its children are reparented, so its end of the socket is
 * gone by then, and the poll sees the hang-up.
 */
static void tie_to_builder(int fd)
{
    struct pollfd p = {.fd = fd, .events = 0};

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        child_fail(fd, errno, NULL, "cannot tie the domain to its builder");
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)) != 0)
        _exit(1);
}

/* ---- init: the root filesystem ---- */

static struct ent *plan_add(struct plan *pl, enum ent_kind kind, const char *dst)
{
    struct ent *e;

    if (pl->n == MAX_ENTS)
        child_fail(pl->fd, E2BIG, NULL, "too many mounts for the domain's root");
    e = &pl->e[pl->n++];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->dst = dst;
    e->fd = -1;
    return e;
}

/*
 * A detached clone of src, with attr set on it and everything mounted under
 * it, before it is attached anywhere, so that there is no moment at which
 * the domain could see it writable.  Recursive, so that a mount under src
 * (Docker's /etc/hosts, say) comes along instead of uncovering what it
 * hides.  mount_setattr only adds flags: those the source already has (a
 * nodev, a read-only) stay, where a remount (MS_REMOUNT | MS_BIND) would
 * have to repeat them, and fails EPERM in a user namespace when it does not
 * (the kernel locks them).
 */
static void plan_bind(struct plan *pl, const char *src, const char *dst, uint64_t attr)
{
    struct ent *e = plan_add(pl, ENT_TREE, dst);
    struct mount_attr ma = {.attr_set = attr};
    const char *how = (attr & MOUNT_ATTR_RDONLY) ? " read-only" : "";

    e->fd = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (e->fd < 0 || mount_setattr(e->fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &ma, sizeof(ma)) != 0)
        child_fail(pl->fd, errno, NULL, "cannot bind %s%s", src, how);
}

static void plan_mount(struct plan *pl, enum ent_kind kind, const char *dst, const char *opts,
                       unsigned long flags)
{
    struct ent *e = plan_add(pl, kind, dst);

    e->data = opts;
    e->flags = flags;
}

/* /usr, /etc and the rest; a symlink (merged /usr: /bin -> usr/bin) is made again. */
static void plan_system(struct plan *pl)
{
    static const char *const dirs[] = {"/usr",   "/bin",   "/sbin",   "/lib",
                                       "/lib32", "/lib64", "/libx32", "/etc"};
    struct stat st;

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        if (lstat(dirs[i], &st) != 0) {
            if (errno == ENOENT)
                continue;
            child_fail(pl->fd, errno, NULL, "cannot look at %s", dirs[i]);
        }
        if (S_ISLNK(st.st_mode)) {
            struct ent *e = plan_add(pl, ENT_LINK, dirs[i]);
            ssize_t n = readlink(dirs[i], e->buf, sizeof(e->buf));

            if (n < 0 || (size_t)n == sizeof(e->buf))
                child_fail(pl->fd, n < 0 ? errno : ENAMETOOLONG, NULL, "cannot read link %s",
                           dirs[i]);
            e->buf[n] = '\0';
            e->data = e->buf;
        } else {
            plan_bind(pl, dirs[i], dirs[i], RO_ATTR);
        }
    }
}

/* Device nodes are binds of the host's (a domain cannot mknod); /dev is sealed after. */
static void plan_dev(struct plan *pl)
{
    static const char *const nodes[] = {"/dev/null",   "/dev/zero",    "/dev/full",
                                        "/dev/random", "/dev/urandom", "/dev/tty"};
    static const char *const links[][2] = {{"/dev/fd", "/proc/self/fd"},
                                           {"/dev/stdin", "/proc/self/fd/0"},
                                           {"/dev/stdout", "/proc/self/fd/1"},
                                           {"/dev/stderr", "/proc/self/fd/2"}};

    plan_mount(pl, ENT_TMPFS, "/dev", DEV_OPTS, MS_NOSUID | MS_NODEV | MS_NOEXEC);
    for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++)
        plan_bind(pl, nodes[i], nodes[i], MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
        plan_add(pl, ENT_LINK, links[i][0])->data = links[i][1];
    plan_add(pl, ENT_SEAL, "/dev");
}

/*
 * A proc mount in a user namespace must be no less restricted than the
 * host's own (mount_too_revealing): same atime and read-only flags.  The
 * host's /proc must also be fully visible (no masked paths, as Docker adds).
 */
static void plan_proc(struct plan *pl)
{
    unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    struct statvfs sv;

    if (statvfs("/proc", &sv) != 0)
        child_fail(pl->fd, errno, NULL, "cannot look at the host's /proc");
    if (sv.f_flag & ST_RDONLY)
        flags |= MS_RDONLY;
    if (sv.f_flag & ST_NODIRATIME)
        flags |= MS_NODIRATIME;
    if (sv.f_flag & ST_NOATIME)
        flags |= MS_NOATIME;
    else if (sv.f_flag & ST_RELATIME)
        flags |= MS_RELATIME;
    else
        flags |= MS_STRICTATIME;
    plan_mount(pl, ENT_PROC, "/proc", NULL, flags);
}

/* Every step, in order; every source cloned now, as host root. */
static void plan_root(struct plan *pl, const struct dombuild_spec *s)
{
    plan_system(pl);
    plan_mount(pl, ENT_TMPFS, "/tmp", TMP_OPTS, MS_NOSUID | MS_NODEV);
    plan_mount(pl, ENT_TMPFS, "/run", RUN_OPTS, MS_NOSUID | MS_NODEV);
    plan_mount(pl, ENT_TMPFS, "/home", HOME_OPTS, MS_NOSUID | MS_NODEV);
    plan_dev(pl);
    plan_proc(pl);
    for (size_t i = 0; s->ro_dirs != NULL && s->ro_dirs[i] != NULL; i++)
        plan_bind(pl, s->ro_dirs[i], s->ro_dirs[i], RO_ATTR);
    if (s->hv_socket != NULL)
        plan_bind(pl, s->hv_socket, "/run/bulkhead/hv.sock", RO_ATTR | MOUNT_ATTR_NOEXEC);
    if (s->xs_socket != NULL)
        plan_bind(pl, s->xs_socket, "/run/bulkhead/xenstored.sock", RO_ATTR | MOUNT_ATTR_NOEXEC);
    plan_add(pl, ENT_SEAL, "/");
}

/* rel's parents as directories, then rel itself as a directory or an empty file. */
static void make_mountpoint(int fd, const char *rel, bool dir)
{
    char p[PATH_MAX];
    struct stat st;

    snprintf(p, sizeof(p), "%s", rel);
    for (char *c = strchr(p, '/'); c != NULL; c = strchr(c + 1, '/')) {
        *c = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            child_fail(fd, errno, NULL, "cannot make /%s in the domain", p);
        *c = '/';
    }
    if (lstat(p, &st) == 0)
        return;
    if ((dir ? mkdir(p, 0755) : mknod(p, S_IFREG | 0644, 0)) != 0)
        child_fail(fd, errno, NULL, "cannot make /%s in the domain", p);
}

static void ent_apply(int fd, const struct ent *e)
{
    const char *rel = e->dst[1] != '\0' ? e->dst + 1 : ".";
    struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
    struct stat st;

    switch (e->kind) {
    case ENT_TREE:
        if (fstat(e->fd, &st) != 0)
            child_fail(fd, errno, NULL, "cannot look at the source of %s", e->dst);
        make_mountpoint(fd, rel, S_ISDIR(st.st_mode));
        if (move_mount(e->fd, "", AT_FDCWD, rel, MOVE_MOUNT_F_EMPTY_PATH) != 0)
            child_fail(fd, errno, NULL, "cannot bind %s in the domain", e->dst);
        break;
    case ENT_LINK:
        if (symlink(e->data, rel) != 0)
            child_fail(fd, errno, NULL, "cannot make the link %s in the domain", e->dst);
        break;
    case ENT_TMPFS:
        make_mountpoint(fd, rel, true);
        if (mount("tmpfs", rel, "tmpfs", e->flags, e->data) != 0)
            child_fail(fd, errno, NULL, "cannot mount a tmpfs on the domain's %s", e->dst);
        break;
    case ENT_PROC:
        make_mountpoint(fd, rel, true);
        if (mount("proc", rel, "proc", e->flags, NULL) != 0)
            child_fail(fd, errno,
                       errno == EPERM ? "the host's /proc must be fully visible: is it masked, "
                                        "as in an unprivileged container? run on a VM"
                                      : NULL,
                       "cannot mount the domain's /proc");
        break;
    case ENT_SEAL:
        if (mount_setattr(AT_FDCWD, rel, 0, &ro, sizeof(ro)) != 0)
            child_fail(fd, errno, NULL, "cannot make the domain's %s read-only", e->dst);
        break;
    }
}

/*
 * Builds the root on a tmpfs and moves into it.  The tmpfs goes over /tmp:
 * any directory would do, as this is the domain's mount namespace and every
 * source is a clone already.  pivot_root(".", ".") stacks the old root on
 * the new one, and a lazy unmount of "." drops it (see pivot_root(2)).
 */
static void build_root(const struct plan *pl, int fd)
{
    /* Nothing mounted on the host from now on shows up in the domain. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        child_fail(fd, errno, NULL, "cannot make the domain's mounts private");
    if (mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, ROOT_OPTS) != 0 ||
        chdir(NEWROOT) != 0)
        child_fail(fd, errno, NULL, "cannot mount the domain's root tmpfs");
    for (unsigned int i = 0; i < pl->n; i++)
        ent_apply(fd, &pl->e[i]);
    for (unsigned int i = 0; i < pl->n; i++)
        if (pl->e[i].fd >= 0)
            close(pl->e[i].fd);
    if (syscall(SYS_pivot_root, ".", ".") != 0 || umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
        child_fail(fd, errno, NULL, "cannot move into the domain's root");
}

/* ---- init: the rest, and the exec ---- */

/* A new network namespace has its loopback link down; programs expect it up. */
static void loopback_up(int fd)
{
    struct ifreq ifr;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
        child_fail(fd, errno, NULL, "cannot look at the domain's loopback link");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
        child_fail(fd, errno, NULL, "cannot bring the domain's loopback link up");
    close(s);
}

static int console_high = -1; /* the helper's copy of spec->console_fd, out of the way */

/*
 * fd 3 the channel (or nothing), 0 /dev/null, 1-2 the console log or
 * /dev/null, everything else closed on exec.
 */
static void setup_fds(int fd, int chan, int console)
{
    int null;

    if (chan >= 0 && dup2(chan, 3) != 3)
        child_fail(fd, errno, NULL, "cannot make the channel fd 3");
    if ((null = open("/dev/null", O_RDWR)) < 0)
        child_fail(fd, errno, NULL, "cannot open the domain's /dev/null");
    for (int i = 0; i < 3; i++) {
        int from = i > 0 && console > 3 ? console : null;
        if (from != i && dup2(from, i) != i)
            child_fail(fd, errno, NULL, "cannot make fd %d %s", i,
                       from == null ? "/dev/null" : "the console log");
    }
    if (close_range(chan >= 0 ? 4 : 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
        child_fail(fd, errno, NULL, "cannot close the builder's fds on exec");
}

static void __attribute__((noreturn))
exec_program(const struct dombuild_spec *s, int fd, int exe, int chan)
{
    if (sethostname(s->name, strlen(s->name)) != 0)
        child_fail(fd, errno, NULL, "cannot set the domain's hostname");
    loopback_up(fd);
    setup_fds(fd, chan, console_high);
    reset_signals();
    umask(022); /* the domain's, whatever the builder's */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        child_fail(fd, errno, NULL, "cannot set no_new_privs");
    /* Last: with it, this process could not even grow its stack under ASan. */
    if (s->memory_kb != 0)
        set_limit(fd, RLIMIT_AS, "address-space", (rlim_t)s->memory_kb * 1024);
    sync_send(fd, SYNC_READY, 0);
    execveat(exe, "", s->argv, s->envp != NULL ? s->envp : no_env, AT_EMPTY_PATH);
    child_fail(fd, errno,
               errno == ENOENT ? "a script cannot run from an fd closed on exec: give a binary"
                               : NULL,
               "cannot run the domain's program %s", s->argv[0]);
}

static void __attribute__((noreturn))
init_main(const struct dombuild_spec *s, const struct plan *pl, int fd, int exe, int chan)
{
    struct sync_msg m;

    /* The builder writes our uid and gid maps, then says go; EOF: it gave up. */
    if (sync_recv(fd, &m, -1) != 1 || m.kind != SYNC_GO)
        _exit(1);
    become_root(fd);
    tie_to_builder(fd);
    build_root(pl, fd);
    exec_program(s, fd, exe, chan);
}

static void __attribute__((noreturn)) helper_main(const struct dombuild_spec *s, int fd)
{
    int keep[] = {0, 1, 2, fd, s->exe_fd, s->channel_fd, s->console_fd}, exe, chan = -1;
    struct plan pl; /* init gets a copy, with the fds */
    pid_t init;

    /* Init must not hold the builder's fds (other domains' channels, say). */
    close_other_fds(keep, sizeof(keep) / sizeof(keep[0]));
    fd = fd_high(fd, fd);
    exe = fd_high(fd, s->exe_fd);
    if (s->channel_fd >= 0)
        chan = fd_high(fd, s->channel_fd);
    if (s->console_fd > 2)
        console_high = fd_high(fd, s->console_fd);
    memset(&pl, 0, sizeof(pl));
    pl.fd = fd;
    plan_root(&pl, s);
    /* Here, as host root, a limit may also be raised above the builder's own. */
    set_limit(fd, RLIMIT_NPROC, "process", s->max_procs ? s->max_procs : DEFAULT_PROCS);
    set_limit(fd, RLIMIT_NOFILE, "open-file", s->max_files ? s->max_files : DEFAULT_FILES);
    if (setgroups(0, NULL) != 0)
        child_fail(fd, errno, NULL, "cannot drop the supplementary groups");
    init = (pid_t)syscall(SYS_clone, CLONE_PARENT | DOMAIN_NS | SIGCHLD, NULL, NULL, NULL, 0);
    if (init < 0)
        child_fail(fd, errno, "needs root, and user namespaces: sysctl user.max_user_namespaces",
                   "cannot create the domain's namespaces");
    if (init == 0)
        init_main(s, &pl, fd, exe, chan);
    sync_send(fd, SYNC_PID, init);
    _exit(0);
}

/* ---- the builder ---- */

static int write_maps(pid_t pid, uid_t uid, gid_t gid, char *err, size_t errlen)
{
    char umap[32], gmap[32], path[64];
    const char *files[][2] = {{"uid_map", umap}, {"setgroups", "deny"}, {"gid_map", gmap}};
    int fd, e;

    snprintf(umap, sizeof(umap), "0 %u 1\n", (unsigned int)uid);
    snprintf(gmap, sizeof(gmap), "0 %u 1\n", (unsigned int)gid);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        size_t len = strlen(files[i][1]);
        ssize_t r = -1;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, files[i][0]);
        if ((fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0) {
            r = write(fd, files[i][1], len);
            e = errno;
            close(fd);
            errno = e;
        }
        if (r != (ssize_t)len) {
            e = r < 0 ? errno : EIO;
            snprintf(err, errlen, "cannot write the domain's %s: %s (the builder needs root)",
                     files[i][0], strerror(e));
            return e;
        }
    }
    return 0;
}

int dombuild_start(const struct dombuild_spec *s, pid_t *pid, int *pidfd, char *err, size_t errlen)
{
    int sv[2] = {-1, -1}, pfd = -1, e;
    pid_t helper, init = -1;

    if ((e = spec_check(s, err, errlen)) != 0)
        goto out;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 || (helper = fork()) < 0) {
        e = errno;
        snprintf(err, errlen, "cannot start the domain's build: %s", strerror(e));
        goto out;
    }
    if (helper == 0) {
        close(sv[0]);
        helper_main(s, sv[1]);
    }
    close(sv[1]);
    sv[1] = -1;
    e = recv_pid(sv[0], "build helper", &init, err, errlen);
    if (e != 0)
        kill(helper, SIGKILL); /* it has said all it will; it might hang (a dead NFS mount) */
    reap(helper);
    if (e != 0 || (e = write_maps(init, s->uid, s->gid, err, errlen)) != 0 ||
        (e = await_exec(sv[0], init, "the domain's first process", err, errlen)) != 0)
        goto out;
    if ((pfd = (int)syscall(SYS_pidfd_open, init, 0)) < 0) {
        e = errno;
        snprintf(err, errlen, "cannot open a pidfd for the domain: %s", strerror(e));
        goto out;
    }
    *pid = init;
    *pidfd = pfd;
    init = -1;
out:
    if (init > 0) {
        kill(init, SIGKILL);
        reap(init);
    }
    for (int i = 0; i < 2; i++)
        if (sv[i] >= 0)
            close(sv[i]);
    errno = e;
    return e != 0 ? -1 : 0;
}

/* ---- bulkhead exec: a worker enters the domain, the command is our child ---- */

static void __attribute__((noreturn)) exec_command(char *const *argv, char *const *envp, int fd)
{
    struct sync_msg m;

    if (sync_recv(fd, &m, -1) != 1 || m.kind != SYNC_GO)
        _exit(1);
    reset_signals();
    if (chdir("/") != 0 || close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
        child_fail(fd, errno, NULL, "cannot prepare the command's process");
    /* execvpe searches the PATH of environ: make it the domain's. */
    environ = (char **)envp;
    sync_send(fd, SYNC_READY, 0);
    execvpe(argv[0], argv, envp);
    child_fail(fd, errno, NULL, "cannot run %s in the domain", argv[0]);
}

static const struct {
    const char *name;
    int type;
} dom_ns[] = {
    /* The user namespace first: it owns the others, and entering it gives
       the capabilities to enter them. */
    {"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS},  {"pid", CLONE_NEWPID},
    {"net", CLONE_NEWNET},   {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
};
#define DOM_NS_COUNT (sizeof(dom_ns) / sizeof(dom_ns[0]))

/* Opens init's namespaces and reads its limits, while /proc is still the host's. */
static void worker_look(pid_t init, int fd, int *nsfd, struct rlimit *lim)
{
    char path[64];

    for (size_t i = 0; i < DOM_NS_COUNT; i++) {
        snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)init, dom_ns[i].name);
        if ((nsfd[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            child_fail(fd, errno, "is the domain running?", "cannot open %s", path);
    }
    for (int r = 0; r < RLIM_NLIMITS; r++)
        if (prlimit(init, (enum __rlimit_resource)r, NULL, &lim[r]) != 0)
            child_fail(fd, errno, NULL, "cannot read the limits of pid %d", (int)init);
}

static void __attribute__((noreturn))
exec_worker(pid_t init, char *const *argv, char *const *envp, int fd)
{
    int nsfd[DOM_NS_COUNT];
    struct rlimit lim[RLIM_NLIMITS];
    pid_t cmd;

    worker_look(init, fd, nsfd, lim);
    if (setgroups(0, NULL) != 0)
        child_fail(fd, errno, NULL, "cannot drop the supplementary groups");
    /* As host root, so that a limit above ours can be taken too; RLIMIT_AS last. */
    for (int r = 0; r < RLIM_NLIMITS; r++)
        if (r != RLIMIT_AS && setrlimit((enum __rlimit_resource)r, &lim[r]) != 0)
            child_fail(fd, errno, NULL, "cannot take the domain's limit %d", r);
    for (size_t i = 0; i < DOM_NS_COUNT; i++)
        if (setns(nsfd[i], dom_ns[i].type) != 0)
            child_fail(fd, errno, i == 0 ? "is it a domain's first process?" : NULL,
                       "cannot enter the %s namespace of pid %d", dom_ns[i].name, (int)init);
    become_root(fd);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || setrlimit(RLIMIT_AS, &lim[RLIMIT_AS]) != 0)
        child_fail(fd, errno, NULL, "cannot take the domain's no_new_privs and limits");
    /* A new PID namespace applies to children only: the command is one, and ours. */
    cmd = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, 0);
    if (cmd < 0)
        child_fail(fd, errno, errno == EAGAIN ? "the domain is at its process limit" : NULL,
                   "cannot start a process in the domain");
    if (cmd == 0)
        exec_command(argv, envp, fd);
    sync_send(fd, SYNC_PID, cmd);
    _exit(0);
}

static int exec_check(pid_t init_pid, char *const *argv, int *status, char *err, size_t errlen)
{
    if (init_pid <= 0 || argv == NULL || argv[0] == NULL || status == NULL) {
        snprintf(err, errlen, "exec needs a domain's first process and a command");
        return EINVAL;
    }
    if (geteuid() != 0) {
        snprintf(err, errlen, "entering a domain needs root: run as root");
        return EPERM;
    }
    return 0;
}

int dombuild_exec(pid_t init_pid, char *const *argv, char *const *envp, int *status, char *err,
                  size_t errlen)
{
    int sv[2] = {-1, -1}, e;
    pid_t worker, cmd = -1;

    if ((e = exec_check(init_pid, argv, status, err, errlen)) != 0)
        goto out;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 || (worker = fork()) < 0) {
        e = errno;
        snprintf(err, errlen, "cannot start the command: %s", strerror(e));
        goto out;
    }
    if (worker == 0) {
        close(sv[0]);
        exec_worker(init_pid, argv, envp != NULL ? envp : no_env, sv[1]);
    }
    close(sv[1]);
    sv[1] = -1;
    e = recv_pid(sv[0], "exec worker", &cmd, err, errlen);
    if (e != 0)
        kill(worker, SIGKILL);
    reap(worker);
    if (e != 0 || (e = await_exec(sv[0], cmd, "the command", err, errlen)) != 0)
        goto out;
    while (waitpid(cmd, status, 0) < 0)
        if (errno != EINTR) {
            e = errno;
            snprintf(err, errlen, "cannot wait for the command: %s", strerror(e));
            break;
        }
    cmd = -1;
out:
    if (cmd > 0) {
        kill(cmd, SIGKILL);
        reap(cmd);
    }
    for (int i = 0; i < 2; i++)
        if (sv[i] >= 0)
            close(sv[i]);
    errno = e;
    return e != 0 ? -1 : 0;
}

/* ---- finding a domain's processes by uid: kill and pause ---- */

/* A process's real uid and state letter, from /proc/<pid>/status. */
static int proc_uid_state(pid_t pid, uid_t *uid, char *state)
{
    char path[64], buf[1024], *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    if ((p = strstr(buf, "\nState:\t")) == NULL || p[8] == '\0')
        return -1;
    *state = p[8];
    if ((p = strstr(buf, "\nUid:\t")) == NULL)
        return -1;
    *uid = (uid_t)strtoul(p + 6, NULL, 10);
    return 0;
}

/* Whether pid runs (or is a zombie) as uid and is in none of the states in skip. */
static bool proc_is(pid_t pid, uid_t uid, const char *skip, bool *live)
{
    uid_t u;
    char st;

    *live = false;
    if (proc_uid_state(pid, &u, &st) != 0 || u != uid || strchr("ZX", st) != NULL)
        return false;
    *live = true;
    return strchr(skip, st) == NULL;
}

/*
 * Sends sig to every live process running as uid whose state is not in
 * skip; returns how many were signalled, with *found the live ones.  Each
 * is signalled through a pidfd opened before its uid is checked again, so
 * that a pid reused in between is never hit.
 */
static int uid_signal(uid_t uid, int sig, const char *skip, unsigned int *found)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int sent = 0, pfd;
    bool live;

    *found = 0;
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        char *end;
        pid_t pid = (pid_t)strtol(de->d_name, &end, 10);

        live = false;
        if (*end != '\0' || pid <= 0 || !proc_is(pid, uid, skip, &live)) {
            *found += live;
            continue;
        }
        (*found)++;
        if ((pfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0)
            continue;
        if (proc_is(pid, uid, skip, &live) &&
            syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0) == 0)
            sent++;
        close(pfd);
    }
    closedir(d);
    return sent;
}

int dombuild_each_proc(uid_t lo, uid_t hi, void (*fn)(pid_t pid, uid_t uid, void *arg), void *arg)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        char *end;
        pid_t pid = (pid_t)strtol(de->d_name, &end, 10);
        uid_t uid;
        char st;

        if (*end != '\0' || pid <= 0 || proc_uid_state(pid, &uid, &st) != 0 || uid < lo ||
            uid > hi || strchr("ZX", st) != NULL)
            continue;
        fn(pid, uid, arg);
        n++;
    }
    closedir(d);
    return n;
}

static long ms_since(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void nap(void)
{
    struct timespec ts = {.tv_nsec = 2 * 1000 * 1000};

    nanosleep(&ts, NULL);
}

/* Whether pid is still our unreaped child and runs as uid. */
static bool is_child_as(pid_t pid, uid_t uid)
{
    siginfo_t si = {0};
    uid_t u;
    char st;

    if (pid <= 0 || waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return false;
    return proc_uid_state(pid, &u, &st) == 0 && u == uid;
}

int dombuild_kill(pid_t pid, uid_t uid, int timeout_ms)
{
    bool reaped;
    unsigned int found;
    struct timespec t0;

    if (uid == 0) {
        errno = EINVAL; /* would sweep host root's processes */
        return -1;
    }
    reaped = !is_child_as(pid, uid);
    if (!reaped)
        kill(pid, SIGKILL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        /* Init's death kills its PID namespace: it is reapable once all are gone. */
        if (!reaped) {
            pid_t r = waitpid(pid, NULL, WNOHANG);

            reaped = r == pid || (r < 0 && errno == ECHILD);
        }
        if (uid_signal(uid, SIGKILL, "", &found) < 0)
            return -1;
        if (reaped && found == 0)
            return 0;
        if (ms_since(&t0) >= timeout_ms) {
            errno = ETIMEDOUT;
            return -1;
        }
        nap();
    }
}

int dombuild_pause(uid_t uid, int pause)
{
    unsigned int found;
    struct timespec t0;
    int sent;

    if (uid == 0) {
        errno = EINVAL;
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        /* "t" (traced) too: SIGSTOP would not change it. */
        sent = uid_signal(uid, pause ? SIGSTOP : SIGCONT, pause ? "Tt" : "", &found);
        if (sent < 0)
            return -1;
        if (found == 0) {
            errno = ESRCH;
            return -1;
        }
        /* A stopped process cannot fork: a pass that finds all stopped is final. */
        if (!pause || sent == 0)
            return 0;
        if (ms_since(&t0) >= PAUSE_TIMEOUT_MS) {
            errno = ETIMEDOUT;
            return -1;
        }
        nap();
    }
}
