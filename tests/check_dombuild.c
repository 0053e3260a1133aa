/*
 * check_dombuild.c - the domain builder.  What a domain can and cannot see
 * or do, proved from inside (shell commands run by dombuild_exec, their
 * output compared byte for byte) and from the host (/proc); its init; and
 * its death, with the daemon or on demand.  Needs root: without it, exits
 * 77 (skipped).
 *
 * This program is also the domains' init ("--domain-init ...", as
 * bulkhead-hv is; "--slow-init --domain-init ...", one that takes its time
 * to start) and a probe run inside them ("--connect PATH").  Every test
 * uses uids of its own, far above any real user's.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dombuild.h"

/* Each run its own uids, so that two runs at once (two build trees) never meet. */
#define UID_BASE (700000000u + (uid_t)(run_pid % 100000) * 64u)
#define KILL_MS  5000
#define OUT_MAX  4096

static pid_t run_pid;    /* the test runner's pid */
static int self_fd = -1; /* this binary: the domains' init */
static int sh_fd = -1;   /* /bin/sh */
static char self_path[PATH_MAX], self_dir[PATH_MAX];
static char state_dir[] = "/var/tmp/check_dombuild.XXXXXX"; /* stands for bulkhead-hv's */
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char private_dir[PATH_MAX], tree_dir[PATH_MAX + 8], marker_path[PATH_MAX + 16];
/* C locale: the messages compared below are the untranslated ones. */
static char *const dom_env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};

struct dom {
    struct dombuild_spec s;
    const char *ro[4];
    char *argv[8];
    pid_t pid;
    int pidfd;
    int chan; /* our end of the domain's fd 3 */
};

/* ---- building and running ---- */

/* An idle domain with this binary as init, this binary's folder bound, test n's uid. */
static void dom_init(struct dom *d, unsigned int n, const char *name)
{
    memset(d, 0, sizeof(*d));
    d->ro[0] = self_dir;
    d->argv[0] = "bulkhead-domain-init";
    d->argv[1] = "--domain-init";
    d->s.name = name;
    d->s.uid = UID_BASE + n;
    d->s.gid = UID_BASE + n;
    d->s.ro_dirs = d->ro;
    d->s.channel_fd = -1;
    d->s.exe_fd = self_fd;
    d->s.argv = d->argv;
    d->s.envp = dom_env;
    d->pid = -1;
    d->pidfd = -1;
    d->chan = -1;
}

/* Its program, run by the init: argv[2] on. */
static void dom_prog(struct dom *d, const char *a, const char *b, const char *c)
{
    d->argv[2] = (char *)a;
    d->argv[3] = (char *)b;
    d->argv[4] = (char *)c;
}

static void dom_start(struct dom *d)
{
    char err[256] = "";
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    d->chan = sv[0];
    d->s.channel_fd = sv[1];
    ck_assert_msg(dombuild_start(&d->s, &d->pid, &d->pidfd, err, sizeof(err)) == 0,
                  "dombuild_start: %s", err);
    close(sv[1]);
    ck_assert_int_gt(d->pid, 0);
    ck_assert_int_ge(d->pidfd, 0);
}

static void dom_kill(struct dom *d)
{
    ck_assert_int_eq(dombuild_kill(d->pid, d->s.uid, KILL_MS), 0);
    close(d->pidfd);
    close(d->chan);
}

/* Runs `sh -c script` in the domain; its stdout and stderr land in out. */
static int run_in(const struct dom *d, const char *script, char *out)
{
    char *const argv[] = {"sh", "-c", (char *)script, NULL};
    char err[256] = "";
    /* Not close-on-exec, on purpose: dombuild_exec must keep them from the command. */
    int p[2], saved1 = dup(1), saved2 = dup(2), status = -1, r;
    size_t len = 0;
    ssize_t n;

    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    fflush(stdout);
    fflush(stderr);
    dup2(p[1], 1);
    dup2(p[1], 2);
    close(p[1]);
    r = dombuild_exec(d->pid, argv, dom_env, &status, err, sizeof(err));
    dup2(saved1, 1);
    dup2(saved2, 2);
    close(saved1);
    close(saved2);
    ck_assert_msg(r == 0, "dombuild_exec: %s", err);
    /* The command has exited; what is left running had better not write here. */
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    while (len < OUT_MAX - 1 && (n = read(p[0], out + len, OUT_MAX - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(p[0]);
    return status;
}

static void run_ok(const struct dom *d, const char *script, char *out)
{
    int status = run_in(d, script, out);

    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "'%s' failed (status 0x%x): %s",
                  script, status, out);
}

static void expect(const struct dom *d, const char *script, const char *want)
{
    char out[OUT_MAX];

    run_ok(d, script, out);
    ck_assert_msg(strcmp(out, want) == 0, "'%s' printed\n%s\ninstead of\n%s", script, out, want);
}

/* ---- the host's view ---- */

/* The value of a /proc/<pid>/status line ("Uid:" ...), tabs kept; "" if absent. */
static void status_line(pid_t pid, const char *key, char *val, size_t len)
{
    char path[64], line[512];
    FILE *f;

    val[0] = '\0';
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "re")) == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, strlen(key)) == 0) {
            snprintf(val, len, "%s", line + strlen(key));
            val[strcspn(val, "\n")] = '\0';
            break;
        }
    fclose(f);
}

/* Live (not zombie) processes whose real uid is uid; with state 'T' in *stopped. */
static unsigned int uid_procs(uid_t uid, unsigned int *stopped)
{
    DIR *dir = opendir("/proc");
    struct dirent *de;
    unsigned int n = 0, t = 0;
    char val[128], want[32];

    ck_assert_ptr_nonnull(dir);
    snprintf(want, sizeof(want), "\t%u\t", (unsigned int)uid);
    while ((de = readdir(dir)) != NULL) {
        pid_t pid = atoi(de->d_name);

        if (pid <= 0)
            continue;
        status_line(pid, "Uid:", val, sizeof(val));
        if (strncmp(val, want, strlen(want)) != 0)
            continue;
        status_line(pid, "State:", val, sizeof(val));
        if (val[1] == 'Z' || val[1] == 'X' || val[1] == '\0')
            continue;
        n++;
        t += val[1] == 'T';
    }
    closedir(dir);
    if (stopped != NULL)
        *stopped = t;
    return n;
}

static unsigned int open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    unsigned int n = 0;

    ck_assert_ptr_nonnull(dir);
    while (readdir(dir) != NULL)
        n++;
    closedir(dir);
    return n - 3; /* ".", ".." and the directory's own fd */
}

/* The host pid of the process that is `inner` in d's PID namespace; -1 if none. */
static pid_t host_pid(const struct dom *d, pid_t inner)
{
    DIR *dir = opendir("/proc");
    struct dirent *de;
    char want[32], val[128], *last;
    pid_t found = -1;

    snprintf(want, sizeof(want), "\t%d", (int)inner);
    while (found < 0 && (de = readdir(dir)) != NULL) {
        pid_t pid = atoi(de->d_name);

        if (pid <= 0)
            continue;
        status_line(pid, "Uid:", val, sizeof(val));
        if ((uid_t)atol(val + 1) != d->s.uid)
            continue;
        status_line(pid, "NSpid:", val, sizeof(val));
        last = strrchr(val, '\t');
        if (last != NULL && strcmp(last, want) == 0 && last != val)
            found = pid;
    }
    closedir(dir);
    return found;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

/* Waits 5 s at most for this binary's domain init to be running (it names itself). */
static void init_up(const struct dom *d)
{
    char path[64], comm[32] = "";
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/comm", (int)d->pid);
    for (int i = 0; i < 500 && strcmp(comm, "domain-init\n") != 0; i++) {
        if (i > 0)
            sleep_ms(10);
        ck_assert_ptr_nonnull(f = fopen(path, "re"));
        if (fgets(comm, sizeof(comm), f) == NULL)
            comm[0] = '\0';
        fclose(f);
    }
    ck_assert_str_eq(comm, "domain-init\n");
}

/* Waits 5 s at most for the domain's init to exit, and reaps it. */
static void wait_exit(const struct dom *d, int *status)
{
    struct pollfd p = {.fd = d->pidfd, .events = POLLIN};

    ck_assert_msg(poll(&p, 1, 5000) == 1, "the domain's init did not exit");
    ck_assert_int_eq(waitpid(d->pid, status, 0), d->pid);
}

/* Reads from fd until `want` has arrived (5 s at most). */
static void expect_from(int fd, const char *want)
{
    char buf[OUT_MAX];
    size_t len = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n;

    while (len < strlen(want) && poll(&p, 1, 5000) == 1 &&
           (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    ck_assert_str_eq(buf, want);
}

/* ---- what a domain cannot do ---- */

START_TEST(test_shadow_unreadable)
{
    struct dom d;
    struct stat st;
    gid_t shadow;

    /* Make ourselves a member of shadow's group: only the builder's
       dropping of supplementary groups keeps the domain out now. */
    ck_assert_int_eq(stat("/etc/shadow", &st), 0);
    ck_assert_msg((st.st_mode & S_IROTH) == 0, "the host's /etc/shadow is world-readable");
    ck_assert_msg((st.st_mode & S_IRGRP) != 0 && st.st_gid != 0,
                  "the host's /etc/shadow is not group-readable: this test needs Debian's 0640 "
                  "root:shadow");
    shadow = st.st_gid;
    ck_assert_int_eq(setgroups(1, &shadow), 0);
    dom_init(&d, 1, "shadow");
    dom_prog(&d, "sh", "-c", "cat /etc/shadow 2>&3; echo rc=$? >&3; exec sleep 1000");
    dom_start(&d);
    /* Neither the domain's program nor a command run by exec can read it. */
    expect_from(d.chan, "cat: /etc/shadow: Permission denied\nrc=1\n");
    expect(&d, "cat /etc/shadow 2>&1; echo rc=$?; head -c 5 /etc/passwd; echo; id -G",
           "cat: /etc/shadow: Permission denied\nrc=1\nroot:\n0\n");
    dom_kill(&d);
}
END_TEST

START_TEST(test_system_is_read_only)
{
    struct dom d;

    dom_init(&d, 2, "readonly");
    dom_start(&d);
    expect(&d,
           "for p in /usr/x /etc/x /lib/x /x /dev/x; do touch $p 2>&1; done; mkdir /y 2>&1;"
           "touch /tmp/t /home/t /run/t && echo private tmpfs writable;"
           "echo hi > /dev/null && head -c 3 /dev/zero | wc -c",
           "touch: cannot touch '/usr/x': Read-only file system\n"
           "touch: cannot touch '/etc/x': Read-only file system\n"
           "touch: cannot touch '/lib/x': Read-only file system\n"
           "touch: cannot touch '/x': Read-only file system\n"
           "touch: cannot touch '/dev/x': Read-only file system\n"
           "mkdir: cannot create directory '/y': Read-only file system\n"
           "private tmpfs writable\n3\n");
    /* The domain's root may remount its own mounts read-write; the host's
       files in them still belong to an unmapped uid. */
    expect(&d, "mount -o remount,bind,rw /usr && echo remounted; touch /usr/x 2>&1; true",
           "remounted\ntouch: cannot touch '/usr/x': Permission denied\n");
    dom_kill(&d);
}
END_TEST

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names `ls -A /` must show: what the builder makes, nothing of the host's. */
static void expected_root(char *want, size_t len)
{
    static const char *const made[] = {"dev", "home", "proc", "run", "tmp"};
    static const char *const sys[] = {"bin",   "etc",    "lib",  "lib32",
                                      "lib64", "libx32", "sbin", "usr"};
    const char *names[16];
    char first[NAME_MAX + 1], path[64];
    size_t n = 0, off = 0;
    struct stat st;

    for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
        names[n++] = made[i];
    for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
        snprintf(path, sizeof(path), "/%s", sys[i]);
        if (lstat(path, &st) == 0)
            names[n++] = sys[i];
    }
    snprintf(first, sizeof(first), "%.*s", (int)strcspn(self_dir + 1, "/"), self_dir + 1);
    names[n++] = first;
    qsort(names, n, sizeof(names[0]), cmp_names);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
            off += (size_t)snprintf(want + off, len - off, "%s\n", names[i]);
}

/*
 * The entry the bound test folder adds to `dir` inside a domain when it lies
 * under it (a build tree in /tmp shows up in the domain's own /tmp), as
 * "name\n"; "" otherwise.
 */
static void bound_entry(const char *dir, char *out, size_t len)
{
    size_t n = strlen(dir);

    out[0] = '\0';
    if (strncmp(self_dir, dir, n) == 0 && self_dir[n] == '/')
        snprintf(out, len, "%.*s\n", (int)strcspn(self_dir + n + 1, "/"), self_dir + n + 1);
}

START_TEST(test_host_paths_hidden)
{
    struct dom d;
    char want[512], script[2 * PATH_MAX + 256], out[OUT_MAX];

    expected_root(want, sizeof(want));
    dom_init(&d, 3, "hidden");
    dom_start(&d);
    expect(&d, "ls -A /", want);
    snprintf(script, sizeof(script),
             "for p in /root /var /boot /mnt /opt /srv /old_root /sys %s; do "
             "test -e $p && echo visible: $p; done; ls -A /run /tmp /home /dev",
             state_dir);
    run_ok(&d, script, out);
    {
        char home[NAME_MAX + 2], run[NAME_MAX + 2], tmp[NAME_MAX + 2], all[1024];
        bound_entry("/home", home, sizeof(home));
        bound_entry("/run", run, sizeof(run));
        bound_entry("/tmp", tmp, sizeof(tmp));
        snprintf(all, sizeof(all),
                 "/dev:\nfd\nfull\nnull\nrandom\nstderr\nstdin\nstdout\ntty\nurandom\n"
                 "zero\n\n/home:\n%s\n/run:\n%s\n/tmp:\n%s",
                 home, run, tmp);
        ck_assert_str_eq(out, all);
    }
    /* Along the path to the bound folder, nothing but that path. */
    for (char *c = strchr(self_dir + 1, '/'); c != NULL; c = strchr(c + 1, '/')) {
        char next[NAME_MAX + 2];

        snprintf(script, sizeof(script), "ls -A %.*s", (int)(c - self_dir), self_dir);
        snprintf(next, sizeof(next), "%.*s\n", (int)strcspn(c + 1, "/"), c + 1);
        expect(&d, script, next);
    }
    dom_kill(&d);
}
END_TEST

/*
 * The daemon's socket, in its 0700 state directory, bound at
 * /run/bulkhead/hv.sock: the peer is the domain's uid.  And a read-only
 * directory behind another user's 0700 directory (a build tree in a home):
 * the builder reaches both as host root, the domain sees only the binds.
 */
START_TEST(test_hv_socket_and_private_sources)
{
    struct dom d;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char script[3 * PATH_MAX + 128];
    int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), c, fd;

    ck_assert_int_eq(mkdir(private_dir, 0700), 0);
    ck_assert_int_eq(chown(private_dir, 12345, 12345), 0);
    ck_assert_int_eq(mkdir(tree_dir, 0755), 0);
    ck_assert_int_ge(fd = open(marker_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644), 0);
    ck_assert_int_eq(write(fd, "behind 0700\n", 12), 12);
    close(fd);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(chmod(sock_path, 0666), 0);
    ck_assert_int_eq(listen(l, 4), 0);
    dom_init(&d, 4, "hvsock");
    d.s.hv_socket = sock_path;
    d.ro[1] = tree_dir;
    dom_start(&d);
    snprintf(script, sizeof(script),
             "ls -A /run /run/bulkhead; test -S /run/bulkhead/hv.sock && "
             "%s --connect /run/bulkhead/hv.sock && echo connected; cat %s",
             self_path, marker_path);
    expect(&d, script, "/run:\nbulkhead\n\n/run/bulkhead:\nhv.sock\nconnected\nbehind 0700\n");
    ck_assert_int_ge(c = accept4(l, NULL, NULL, SOCK_CLOEXEC), 0);
    ck_assert_int_eq(getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
    ck_assert_uint_eq(cred.uid, d.s.uid);
    ck_assert_uint_eq(cred.gid, d.s.gid);
    close(c);
    close(l);
    dom_kill(&d);
}
END_TEST

START_TEST(test_own_processes_and_links_only)
{
    struct dom d;
    char out[OUT_MAX], want[64], nspid[64], hostnet[OUT_MAX];
    FILE *f = fopen("/proc/net/dev", "re");
    size_t n;

    /* The host has links besides lo, or the test could not fail. */
    ck_assert_ptr_nonnull(f);
    n = fread(hostnet, 1, sizeof(hostnet) - 1, f);
    hostnet[n] = '\0';
    fclose(f);
    ck_assert_msg(strchr(hostnet, ':') != strrchr(hostnet, ':'), "the host has only lo");
    dom_init(&d, 5, "procview");
    dom_start(&d);
    init_up(&d);
    run_ok(&d, "echo $$; echo /proc/[0-9]*; tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/comm",
           out);
    snprintf(want, sizeof(want), "%d\n/proc/1 /proc/%d\n", atoi(out), atoi(out));
    ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "processes in the domain:\n%s", out);
    ck_assert_str_eq(out + strlen(want), "bulkhead-domain-init --domain-init \ndomain-init\n");
    /* The host sees the init as itself and as pid 1 of the domain. */
    status_line(d.pid, "NSpid:", nspid, sizeof(nspid));
    snprintf(want, sizeof(want), "\t%d\t1", (int)d.pid);
    ck_assert_str_eq(nspid, want);
    expect(&d, "ip -o link | cut -d' ' -f2,3; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
           "lo: <LOOPBACK,UP,LOWER_UP>\nlo\n");
    dom_kill(&d);
}
END_TEST

START_TEST(test_identity_inside_and_out)
{
    struct dom d;
    char out[OUT_MAX], want[128], val[128];
    const char *head = "0\n0\n0\nident\n/proc/self/status:NoNewPrivs:\t1\n"
                       "/proc/1/status:NoNewPrivs:\t1\n"
                       "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n";
    gid_t groups[] = {4, 27};
    sigset_t term;
    pid_t bg;

    /* What the builder has and no domain process may keep: groups, a blocked
       signal (bulkhead-hv blocks SIGTERM), an ignored one (and SIGPIPE). */
    ck_assert_int_eq(setgroups(2, groups), 0);
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    signal(SIGPIPE, SIG_IGN);
    dom_init(&d, 6, "ident");
    dom_start(&d);
    status_line(d.pid, "SigIgn:", val, sizeof(val));
    ck_assert_str_eq(val, "\t0000000000000000");
    run_ok(&d,
           "id -u; id -g; id -G; uname -n; grep NoNewPrivs /proc/self/status /proc/1/status;"
           "grep -E '^Sig(Blk|Ign)' /proc/self/status; sleep 1000 >/dev/null 2>&1 & echo $!",
           out);
    ck_assert_msg(strncmp(out, head, strlen(head)) == 0, "identity inside:\n%s", out);
    ck_assert_int_gt(bg = host_pid(&d, atoi(out + strlen(head))), 0);
    /* From the host, the init and what exec started run as the domain's ids. */
    pid_t pids[] = {d.pid, bg};
    for (size_t i = 0; i < 2; i++) {
        snprintf(want, sizeof(want), "\t%u\t%u\t%u\t%u", d.s.uid, d.s.uid, d.s.uid, d.s.uid);
        status_line(pids[i], "Uid:", val, sizeof(val));
        ck_assert_str_eq(val, want);
        status_line(pids[i], "Gid:", val, sizeof(val));
        ck_assert_str_eq(val, want);
        status_line(pids[i], "Groups:", val, sizeof(val));
        ck_assert_msg(strspn(val, "\t ") == strlen(val), "supplementary groups: %s", val);
        status_line(pids[i], "NoNewPrivs:", val, sizeof(val));
        ck_assert_str_eq(val, "\t1");
    }
    dom_kill(&d);
}
END_TEST

START_TEST(test_two_domains_apart)
{
    struct dom a, b;
    char out[OUT_MAX];

    dom_init(&a, 7, "alpha");
    dom_init(&b, 8, "beta");
    dom_start(&a);
    dom_start(&b);
    init_up(&a);
    init_up(&b);
    run_ok(&a, "echo a-secret > /tmp/a; sleep 1000 >/dev/null 2>&1 &", out);
    {
        char tmp[NAME_MAX + 2], want[512];
        bound_entry("/tmp", tmp, sizeof(tmp));
        snprintf(want, sizeof(want),
                 "cat: /tmp/a: No such file or directory\n%sdomain-init\nsh\nbeta\n", tmp);
        expect(&b, "cat /tmp/a 2>&1; ls -A /tmp; cat /proc/[0-9]*/comm; uname -n", want);
    }
    run_ok(&a, "cat /tmp/a; cat /proc/[0-9]*/comm; uname -n", out);
    ck_assert_msg(strncmp(out, "a-secret\ndomain-init\n", 21) == 0 && strstr(out, "\nsleep\n") &&
                      strstr(out, "alpha\n"),
                  "alpha sees:\n%s", out);
    dom_kill(&a);
    dom_kill(&b);
}
END_TEST

START_TEST(test_limits)
{
    struct dom d;
    char out[OUT_MAX];
    int status;

    dom_init(&d, 9, "limits");
    d.s.exe_fd = sh_fd; /* not this binary: under ASan it needs terabytes of address space */
    d.argv[0] = "sh";
    d.argv[1] = "-c";
    d.argv[2] = "exec sleep 1000";
    d.s.max_procs = 12;
    d.s.max_files = 100;
    d.s.memory_kb = 256 * 1024;
    dom_start(&d);
    expect(&d,
           "for f in /proc/1/limits /proc/self/limits; do "
           "grep -E '^Max (processes|open files|address space)' $f | tr -s ' '; done",
           "Max processes 12 12 processes \nMax open files 100 100 files \n"
           "Max address space 268435456 268435456 bytes \n"
           "Max processes 12 12 processes \nMax open files 100 100 files \n"
           "Max address space 268435456 268435456 bytes \n");
    /* Twelve processes for the uid, whatever the domain's root tries. */
    status = run_in(&d, "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14; do sleep 1000 & done", out);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0 && strstr(out, "Cannot fork"),
                  "fork beyond the limit: status 0x%x, %s", status, out);
    ck_assert_uint_eq(uid_procs(d.s.uid, NULL), 11); /* the shell that hit the limit is gone */
    dom_kill(&d);
}
END_TEST

/* ---- exec ---- */

START_TEST(test_exec_status_and_errors)
{
    struct dom d;
    char out[OUT_MAX], err[256], want[128];
    char *const missing[] = {"/nonexistent", NULL}, *const t[] = {"true", NULL};
    char *const no_path[] = {"PATH=/nonexistent", NULL};
    int status;

    dom_init(&d, 10, "exec");
    dom_start(&d);
    status = run_in(&d, "exit 3", out);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 3);
    status = run_in(&d, "kill -9 $$", out);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* Nothing of ours leaks into the command: fds 0-2 only, in /. */
    expect(&d, "ls /proc/$$/fd; pwd", "0\n1\n2\n/\n");
    ck_assert_int_eq(dombuild_exec(d.pid, missing, dom_env, &status, err, sizeof(err)), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_str_eq(err, "cannot run /nonexistent in the domain: No such file or directory");
    /* The command is searched in the domain's PATH, not in ours. */
    ck_assert_int_eq(dombuild_exec(d.pid, t, no_path, &status, err, sizeof(err)), -1);
    ck_assert_int_eq(errno, ENOENT);
    /* A process that is not a domain's is refused, not entered as host root. */
    ck_assert_int_eq(dombuild_exec(getpid(), t, dom_env, &status, err, sizeof(err)), -1);
    ck_assert_int_eq(errno, EINVAL);
    snprintf(want, sizeof(want),
             "cannot enter the user namespace of pid %d: Invalid argument (is it a domain's first "
             "process?)",
             (int)getpid());
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(dombuild_exec(0x3ffffff0, t, dom_env, &status, err, sizeof(err)), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_str_eq(err, "cannot open /proc/1073741808/ns/user: No such file or directory "
                          "(is the domain running?)");
    dom_kill(&d);
}
END_TEST

START_TEST(test_background_lives_on)
{
    struct dom d;
    char out[OUT_MAX], script[128];
    int bg;

    dom_init(&d, 11, "background");
    dom_start(&d);
    run_ok(&d, "sleep 1000 >/dev/null 2>&1 & echo $!", out);
    bg = atoi(out);
    sleep_ms(200);
    /* Its shell is gone: the domain's init adopted it. */
    snprintf(script, sizeof(script), "cat /proc/%d/comm; grep PPid /proc/%d/status", bg, bg);
    expect(&d, script, "sleep\nPPid:\t1\n");
    ck_assert_uint_eq(uid_procs(d.s.uid, NULL), 2);
    dom_kill(&d);
    ck_assert_uint_eq(uid_procs(d.s.uid, NULL), 0);
}
END_TEST

/* ---- the init ---- */

/* Orphans are reparented to the init, which reaps them, even those that
   ended before the init was up. */
START_TEST(test_init_reaps_orphans)
{
    const char *orphans = "(true &); (true &); (true &)";
    /* Waits (30 s at most) for the count expected, not for a time: CI is loaded. */
#define ZOMBIES(n) "for i in $(seq 300); do n=$(grep -l 'Z (zombie)' /proc/[0-9]*/status " \
                   "2>/dev/null | wc -l); [ $n = " #n " ] && break; sleep 0.1; done; echo $n"
    char out[OUT_MAX];
    struct dom d, plain;

    /* An init slow to start: the orphans end before it blocks SIGCHLD. */
    dom_init(&d, 12, "reaper");
    d.argv[1] = "--slow-init";
    d.argv[2] = "--domain-init";
    d.argv[3] = "sh"; /* orphans are not its program's children */
    d.argv[4] = "-c";
    d.argv[5] = "echo up >&3; exec sleep 1000";
    dom_start(&d);
    run_ok(&d, orphans, out);
    expect_from(d.chan, "up\n");
    expect(&d, ZOMBIES(0), "0\n");
    dom_kill(&d);
    /* The same with a pid 1 that reaps nothing: the test can tell. */
    dom_init(&plain, 13, "noreaper");
    plain.s.exe_fd = sh_fd;
    plain.argv[0] = "sh";
    plain.argv[1] = "-c";
    plain.argv[2] = "exec sleep 1000";
    dom_start(&plain);
    run_ok(&plain, orphans, out);
    expect(&plain, ZOMBIES(3), "3\n");
#undef ZOMBIES
    dom_kill(&plain);
}
END_TEST

START_TEST(test_init_forwards_signals)
{
    static const int sigs[] = {SIGTERM, SIGINT};
    struct dom d;
    char prog[128];
    int status;

    for (int i = 0; i < 2; i++) {
        snprintf(prog, sizeof(prog),
                 "trap 'exit %d' %s; echo ready >&3; while :; do sleep 0.02; done", 40 + i,
                 i == 0 ? "TERM" : "INT");
        dom_init(&d, 14 + (unsigned int)i, "forward");
        dom_prog(&d, "sh", "-c", prog);
        dom_start(&d);
        expect_from(d.chan, "ready\n"); /* the trap is set, and fd 3 is the channel */
        ck_assert_int_eq(kill(d.pid, sigs[i]), 0);
        wait_exit(&d, &status);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 40 + i, "status 0x%x", status);
        dom_kill(&d);
        ck_assert_uint_eq(uid_procs(d.s.uid, NULL), 0);
    }
}
END_TEST

START_TEST(test_init_exit_status)
{
    struct dom d;
    int status;

    dom_init(&d, 16, "exits");
    dom_prog(&d, "sh", "-c", "exit 7");
    dom_start(&d);
    wait_exit(&d, &status);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    dom_kill(&d); /* on a reaped pid: sweeps the uid only */

    dom_init(&d, 16, "killed");
    dom_prog(&d, "sh", "-c", "kill -9 $$");
    dom_start(&d);
    wait_exit(&d, &status);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL);
    dom_kill(&d);
}
END_TEST

/*
 * A driver domain's init ("--domain-init --confine PROGRAM"): once its
 * program runs it shows no_new_privs, a seccomp filter and five empty
 * capability sets, and still does its three duties under the filter
 * (reaping orphans, forwarding SIGTERM, leaving with its program's status);
 * none of them meets a denied call (which would end it with 159).
 */
START_TEST(test_confined_init)
{
    static const char *const caps[] = {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"};
    /* Waits for the condition (30 s at most), not for a time: CI is loaded. */
    const char *zombies = "for i in $(seq 300); do n=$(grep -l 'Z (zombie)' /proc/[0-9]*/status "
                          "2>/dev/null | wc -l); [ $n = 0 ] && break; sleep 0.1; done; echo $n";
    char out[OUT_MAX], val[128] = "";
    struct dom d;
    int status;

    dom_init(&d, 24, "confined");
    d.argv[2] = "--confine";
    d.argv[3] = "sh";
    d.argv[4] = "-c";
    d.argv[5] = "trap 'exit 42' TERM; echo ready >&3; while :; do sleep 0.02; done";
    dom_start(&d);
    expect_from(d.chan, "ready\n");
    /* It confines itself after the fork: wait for the filter (5 s at most). */
    for (int i = 0; i < 500 && strcmp(val, "\t2") != 0; i++) {
        if (i > 0)
            sleep_ms(10);
        status_line(d.pid, "Seccomp:", val, sizeof(val));
    }
    ck_assert_str_eq(val, "\t2");
    status_line(d.pid, "NoNewPrivs:", val, sizeof(val));
    ck_assert_str_eq(val, "\t1");
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        status_line(d.pid, caps[i], val, sizeof(val));
        ck_assert_msg(strcmp(val, "\t0000000000000000") == 0, "%s%s", caps[i], val);
    }
    run_ok(&d, "(true &); (true &); (true &)", out);
    expect(&d, zombies, "0\n");
    ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
    wait_exit(&d, &status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 42, "status 0x%x", status);
    dom_kill(&d);

    dom_init(&d, 24, "confined-exits");
    d.argv[2] = "--confine";
    d.argv[3] = "sh";
    d.argv[4] = "-c";
    d.argv[5] = "exit 7";
    dom_start(&d);
    wait_exit(&d, &status);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 7, "status 0x%x", status);
    dom_kill(&d);
}
END_TEST

START_TEST(test_idle_init)
{
    struct dom d;
    int status;

    dom_init(&d, 17, "idle");
    dom_start(&d);
    init_up(&d); /* before, a SIGTERM is dropped: no handler yet */
    sleep_ms(300);
    ck_assert_int_eq(waitpid(d.pid, &status, WNOHANG), 0);
    ck_assert_int_eq(kill(d.pid, SIGTERM), 0);
    wait_exit(&d, &status);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    dom_kill(&d);
}
END_TEST

START_TEST(test_first_process_fds)
{
    struct dom d;
    char path[64], link[4][64], chan[64], script[128], buf[32] = "";
    pid_t pids[2];
    struct pollfd p;
    ssize_t n;
    int inner;

    dom_init(&d, 18, "fds");
    dom_prog(&d, "sh", "-c", "echo $$ >&3; exec sleep 1000");
    dom_start(&d);
    p = (struct pollfd){.fd = d.chan, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    ck_assert_int_gt(read(d.chan, buf, sizeof(buf) - 1), 0);
    ck_assert_int_gt(inner = atoi(buf), 1);
    /* Seen from inside: the init and its program hold fds 0-3 and no more. */
    snprintf(script, sizeof(script), "ls /proc/1/fd; ls /proc/%d/fd", inner);
    expect(&d, script, "0\n1\n2\n3\n0\n1\n2\n3\n");
    /* Seen from the host: 0-2 are /dev/null, 3 is the same channel, in both. */
    pids[0] = d.pid;
    ck_assert_int_gt(pids[1] = host_pid(&d, inner), 0);
    for (int i = 0; i < 2; i++) {
        for (int fd = 0; fd < 4; fd++) {
            snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pids[i], fd);
            ck_assert_int_gt(n = readlink(path, link[fd], sizeof(link[fd]) - 1), 0);
            link[fd][n] = '\0';
        }
        ck_assert_str_eq(link[0], "/dev/null");
        ck_assert_str_eq(link[1], "/dev/null");
        ck_assert_str_eq(link[2], "/dev/null");
        ck_assert_msg(strncmp(link[3], "socket:", 7) == 0, "fd 3 is %s", link[3]);
        if (i == 0)
            snprintf(chan, sizeof(chan), "%s", link[3]);
        else
            ck_assert_str_eq(link[3], chan);
    }
    dom_kill(&d);
}
END_TEST

/* ---- life and death ---- */

START_TEST(test_kill_leaves_nothing)
{
    struct dom d;
    char out[OUT_MAX];
    struct pollfd p;
    pid_t other;
    int status;

    dom_init(&d, 19, "killme");
    dom_start(&d);
    run_ok(&d, "sleep 1000 >/dev/null 2>&1 & sleep 1000 >/dev/null 2>&1 &", out);
    ck_assert_uint_eq(uid_procs(d.s.uid, NULL), 3);
    ck_assert_int_eq(dombuild_kill(d.pid, d.s.uid, KILL_MS), 0);
    ck_assert_uint_eq(uid_procs(d.s.uid, NULL), 0);
    p = (struct pollfd){.fd = d.pidfd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 0), 1);
    ck_assert_int_eq(waitpid(d.pid, &status, WNOHANG), -1); /* reaped */
    ck_assert_int_eq(errno, ECHILD);
    /* A stale pid that now names another child of ours is left alone. */
    if ((other = fork()) == 0) {
        pause();
        _exit(0);
    }
    ck_assert_int_eq(dombuild_kill(other, d.s.uid, KILL_MS), 0);
    ck_assert_int_eq(waitpid(other, &status, WNOHANG), 0);
    kill(other, SIGKILL);
    waitpid(other, &status, 0);
    ck_assert_int_eq(dombuild_kill(1, 0, KILL_MS), -1);
    ck_assert_int_eq(errno, EINVAL);
    close(d.pidfd);
    close(d.chan);
}
END_TEST

/* The daemon dies without a word: its domains die too (PR_SET_PDEATHSIG). */
START_TEST(test_dies_with_builder)
{
    struct dom d;
    char out[OUT_MAX];
    int p[2], status;
    pid_t builder, init = -1;

    /* Orphans come to us, so that the dead init can be reaped and looked at. */
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    ck_assert_int_eq(pipe(p), 0);
    dom_init(&d, 20, "orphan");
    if ((builder = fork()) == 0) {
        char err[256];

        if (dombuild_start(&d.s, &d.pid, &d.pidfd, err, sizeof(err)) != 0)
            _exit(1);
        run_in(&d, "sleep 1000 >/dev/null 2>&1 &", out);
        _exit(write(p[1], &d.pid, sizeof(d.pid)) == sizeof(d.pid) ? 0 : 1);
    }
    ck_assert_int_eq(read(p[0], &init, sizeof(init)), sizeof(init));
    ck_assert_int_eq(waitpid(builder, &status, 0), builder);
    ck_assert_int_eq(status, 0);
    for (int i = 0; i < 250 && uid_procs(d.s.uid, NULL) != 0; i++)
        sleep_ms(20);
    ck_assert_uint_eq(uid_procs(d.s.uid, NULL), 0);
    ck_assert_int_eq(waitpid(init, &status, 0), init);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(test_pause)
{
    struct dom d;
    char out[OUT_MAX];
    unsigned int stopped = 0;

    dom_init(&d, 21, "pause");
    dom_start(&d);
    run_ok(&d, "sleep 1000 >/dev/null 2>&1 &", out);
    ck_assert_int_eq(dombuild_pause(d.s.uid, 1), 0);
    ck_assert_uint_eq(uid_procs(d.s.uid, &stopped), 2);
    ck_assert_uint_eq(stopped, 2);
    ck_assert_int_eq(dombuild_pause(d.s.uid, 0), 0);
    for (int i = 0; i < 100 && (uid_procs(d.s.uid, &stopped), stopped != 0); i++)
        sleep_ms(10);
    ck_assert_uint_eq(stopped, 0);
    expect(&d, "echo alive", "alive\n");
    ck_assert_int_eq(dombuild_pause(UID_BASE + 99, 1), -1);
    ck_assert_int_eq(errno, ESRCH);
    ck_assert_int_eq(dombuild_pause(0, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    dom_kill(&d);
}
END_TEST

/* Each bad spec fails alone, with its reason, and leaves nothing behind. */
static void start_fails(struct dom *d, int want_errno, const char *want)
{
    char err[256] = "";
    pid_t pid = -1;
    int pidfd = -1;

    ck_assert_int_eq(dombuild_start(&d->s, &pid, &pidfd, err, sizeof(err)), -1);
    ck_assert_int_eq(errno, want_errno);
    ck_assert_str_eq(err, want);
    if (d->s.uid != 0)
        ck_assert_uint_eq(uid_procs(d->s.uid, NULL), 0);
}

START_TEST(test_bad_specs)
{
    struct dom d;
    const char *rel[] = {"usr/lib", NULL}, *missing[] = {"/nonexistent/bulkhead", NULL};
    char script[PATH_MAX];
    unsigned int fds = open_fds();
    int fd;

    dom_init(&d, 0, "uid0");
    d.s.uid = 0;
    start_fails(&d, EINVAL, "a domain's uid and gid must not be 0 (host root) or -1");
    dom_init(&d, 22, "rel");
    d.s.ro_dirs = rel;
    start_fails(&d, EINVAL,
                "bad read-only directory usr/lib: give at most 32 absolute paths "
                "without . or .. parts, outside /proc and /dev");
    dom_init(&d, 22, "missing");
    d.s.ro_dirs = missing;
    start_fails(&d, ENOENT,
                "cannot bind /nonexistent/bulkhead read-only: No such file or directory");
    dom_init(&d, 22, "nosock");
    d.s.hv_socket = "/nonexistent/hv.sock";
    start_fails(&d, ENOENT,
                "cannot bind /nonexistent/hv.sock read-only: No such file or directory");
    /* A script cannot be run from an fd that closes on exec. */
    snprintf(script, sizeof(script), "%s/script", state_dir);
    ck_assert_int_ge(fd = open(script, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755), 0);
    ck_assert_int_eq(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
    close(fd);
    dom_init(&d, 22, "script");
    ck_assert_int_ge(d.s.exe_fd = open(script, O_PATH | O_CLOEXEC), 0);
    start_fails(&d, ENOENT,
                "cannot run the domain's program bulkhead-domain-init: No such file "
                "or directory (a script cannot run from an fd closed on exec: give a "
                "binary)");
    close(d.s.exe_fd);
    unlink(script);
    ck_assert_uint_eq(open_fds(), fds);
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* every helper reaped */
    ck_assert_int_eq(errno, ECHILD);
}
END_TEST

START_TEST(test_build_kill_cycles)
{
    struct dom d;
    unsigned int fds = open_fds();

    for (int i = 0; i < 200; i++) {
        dom_init(&d, 23, "cycle");
        dom_start(&d);
        dom_kill(&d);
    }
    ck_assert_uint_eq(open_fds(), fds);
    ck_assert_uint_eq(uid_procs(UID_BASE + 23, NULL), 0);
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
}
END_TEST

static Suite *dombuild_suite(void)
{
    Suite *s = suite_create("dombuild");
    TCase *tc;

    tc = tcase_create("confinement");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_shadow_unreadable);
    tcase_add_test(tc, test_system_is_read_only);
    tcase_add_test(tc, test_host_paths_hidden);
    tcase_add_test(tc, test_hv_socket_and_private_sources);
    tcase_add_test(tc, test_own_processes_and_links_only);
    tcase_add_test(tc, test_identity_inside_and_out);
    tcase_add_test(tc, test_two_domains_apart);
    tcase_add_test(tc, test_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("exec");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_exec_status_and_errors);
    tcase_add_test(tc, test_background_lives_on);
    suite_add_tcase(s, tc);

    tc = tcase_create("init");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_init_reaps_orphans);
    tcase_add_test(tc, test_init_forwards_signals);
    tcase_add_test(tc, test_init_exit_status);
    tcase_add_test(tc, test_confined_init);
    tcase_add_test(tc, test_idle_init);
    tcase_add_test(tc, test_first_process_fds);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_kill_leaves_nothing);
    tcase_add_test(tc, test_dies_with_builder);
    tcase_add_test(tc, test_pause);
    tcase_add_test(tc, test_bad_specs);
    tcase_add_test(tc, test_build_kill_cycles);
    suite_add_tcase(s, tc);
    return s;
}

/* Run inside a domain: connects to the daemon's socket. */
static int probe_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "cannot connect to %s: %s\n", path, strerror(errno));
        return 1;
    }
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    SRunner *sr;
    ssize_t n;
    int failed;

    if (argc > 1 && strcmp(argv[1], "--domain-init") == 0)
        return dominit_main(argc - 1, argv + 1);
    if (argc > 2 && strcmp(argv[1], "--slow-init") == 0) {
        sleep_ms(300);
        return dominit_main(argc - 2, argv + 2);
    }
    if (argc > 2 && strcmp(argv[1], "--connect") == 0)
        return probe_connect(argv[2]);
    if (geteuid() != 0) {
        printf("SKIP: needs root\n");
        return 77;
    }
    run_pid = getpid();
    if ((n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1)) <= 0 ||
        (self_fd = open(self_path, O_PATH | O_CLOEXEC)) < 0 ||
        (sh_fd = open("/bin/sh", O_PATH | O_CLOEXEC)) < 0 || mkdtemp(state_dir) == NULL) {
        fprintf(stderr, "check_dombuild: cannot set up: %s\n", strerror(errno));
        return EXIT_FAILURE;
    }
    self_path[n] = '\0';
    snprintf(self_dir, sizeof(self_dir), "%.*s", (int)(strrchr(self_path, '/') - self_path),
             self_path);
    snprintf(sock_path, sizeof(sock_path), "%s/hv.sock", state_dir);
    snprintf(private_dir, sizeof(private_dir), "%s/home", state_dir);
    snprintf(tree_dir, sizeof(tree_dir), "%s/build", private_dir);
    snprintf(marker_path, sizeof(marker_path), "%s/marker", tree_dir);
    sr = srunner_create(dombuild_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unlink(sock_path);
    unlink(marker_path);
    rmdir(tree_dir);
    rmdir(private_dir);
    rmdir(state_dir);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
