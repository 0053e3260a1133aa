/*
 * cmd_up.c - bulkhead up, down, env: the simulation's life.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenstore.h>

#include "devices.h"
#include "dombuild.h"
#include "toolstack.h"
#include "xsdom.h"

#define UP_TIMEOUT_MS 15000
#define DOWN_TIMEOUT_MS 60000

static int up_already(void)
{
    struct hvc h;
    struct hvw_hello_rsp hello;
    int rc;

    if (hvc_open(&h, true) != 0)
        return 0;
    rc = hvc_call(&h, HVW_OP_HELLO, NULL, 0, &hello, sizeof(hello), NULL);
    hvc_close(&h);
    return rc == 0;
}

/*
 * Where one of our daemons is: $ENV if set, else beside us (installed, or in
 * the build tree: top then names the build tree, which domains must see to
 * run its programs), else in the configured sbindir.
 */
int find_prog(const char *name, const char *env_name, char *out, size_t outlen, char *top,
                     size_t toplen)
{
    static const char *const rel[] = {"%s/%s", "%s/../sbin/%s", "%s/../hv/%s",
                                      "%s/../driverdom/%s", "%s/../frontend/common/%s"};
    char self[PATH_MAX], dir[PATH_MAX];
    const char *env = getenv(env_name);
    ssize_t n;

    top[0] = '\0';
    if (env != NULL && env[0] != '\0') {
        snprintf(out, outlen, "%s", env);
        return access(out, X_OK);
    }
    if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0)
        return -1;
    self[n] = '\0';
    snprintf(dir, sizeof(dir), "%s", dirname(self));
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        if (snprintf(out, outlen, rel[i], dir, name) >= (int)outlen)
            continue;
        if (access(out, X_OK) == 0) {
            char probe[PATH_MAX + 32];
            snprintf(probe, sizeof(probe), "%s/../config.status", dir);
            if (access(probe, F_OK) == 0 && realpath(probe, self) != NULL)
                snprintf(top, toplen, "%s", dirname(self));
            return 0;
        }
    }
    snprintf(out, outlen, "%s/%s", BH_SBINDIR, name);
    return access(out, X_OK);
}

/* Each state directory gets a block of uids of its own for its domains. */
static unsigned long uid_base(void)
{
    unsigned int h = 5381;

    for (const char *p = state_dir; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return 1000000000ul + (h % 32768) * 65536ul;
}

static void kill_one(pid_t pid, uid_t uid, void *killed)
{
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct stat st;
    char path[64];

    if (pfd < 0)
        return;
    /* Checked again once the pidfd pins the process: a reused pid is not ours to kill. */
    snprintf(path, sizeof(path), "/proc/%d", (int)pid);
    if (stat(path, &st) == 0 && st.st_uid == uid &&
        syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) == 0)
        (*(int *)killed)++;
    close(pfd);
}

/*
 * What a crashed instance may have left: processes still running under
 * this state directory's domain uids (a domain dies with its daemon, but
 * be sure).  Namespaces and mounts go with the last of their processes.
 */
static int clear_leftovers(void)
{
    int killed = 0;

    dombuild_each_proc((uid_t)(uid_base() + 1), (uid_t)(uid_base() + HVW_DOMID_MAX), kill_one,
                       &killed);
    return killed;
}

/* Waits for a daemon's "ok" on its ready pipe; kills it if none comes. */
static int wait_ready(int fd, pid_t pid, const char *name, const char *out)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char msg[600];
    ssize_t n = 0;

    if (poll(&p, 1, UP_TIMEOUT_MS) == 1)
        n = read(fd, msg, sizeof(msg) - 1);
    msg[n > 0 ? n : 0] = '\0';
    msg[strcspn(msg, "\n")] = '\0';
    if (strcmp(msg, "ok") == 0)
        return 0;
    if (n > 0)
        errorf("%s", msg);
    else
        errorf("%s did not start within %d s: see %s/%s", name, UP_TIMEOUT_MS / 1000, state_dir,
               out);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/*
 * dom0's device daemon (bulkhead-drvdom) runs in dom0's network namespace,
 * with the environment a dom0 program needs to reach the simulation.
 */
static bool daemon_in_dom0_net;

/* In the child: stdio to DIR/<out>, a session of its own, then the daemon. */
static void __attribute__((noreturn)) exec_daemon(const char *path, char **argv, const char *out)
{
    char file[PATH_MAX], err[PATH_MAX + 100];
    int fd;

    if (daemon_in_dom0_net && dom0_enter(err, sizeof(err)) != 0) {
        fprintf(stderr, "bulkhead: %s\n", err);
        _exit(127);
    }
    snprintf(file, sizeof(file), "%s/%s", state_dir, out);
    if ((fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    if ((fd = open("/dev/null", O_RDONLY)) >= 0)
        dup2(fd, 0);
    setsid();
    execv(path, argv);
    fprintf(stderr, "bulkhead: cannot run %s: %s\n", path, strerror(errno));
    _exit(127);
}

/*
 * Starts a daemon with "--ready-fd N" appended to argv (room for two more
 * entries and the NULL) and waits until it serves.  Returns its pid, or -1
 * after saying why.
 */
static pid_t start_daemon(const char *path, char **argv, int argc, const char *name,
                          const char *out)
{
    char ready[16];
    int p[2];
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) != 0 || (pid = fork()) < 0) {
        errorf("cannot start %s: %s", name, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(p[0]);
        fcntl(p[1], F_SETFD, 0); /* the ready pipe is inherited on purpose */
        snprintf(ready, sizeof(ready), "%d", p[1]);
        argv[argc++] = "--ready-fd";
        argv[argc++] = ready;
        argv[argc] = NULL;
        exec_daemon(path, argv, out);
    }
    close(p[1]);
    if (wait_ready(p[0], pid, name, out) != 0) {
        close(p[0]);
        return -1;
    }
    close(p[0]);
    return pid;
}

static pid_t start_hv(const char *hv, const char *top)
{
    char base[32], *argv[16];
    int i = 0;

    snprintf(base, sizeof(base), "%lu", uid_base());
    argv[i++] = "bulkhead-hv";
    argv[i++] = "--state-dir";
    argv[i++] = (char *)state_dir;
    argv[i++] = "--uid-base";
    argv[i++] = base;
    if (top[0] != '\0') {
        argv[i++] = "--ro-dir";
        argv[i++] = (char *)top;
    }
    if (strncmp(BH_PREFIX, "/usr", 4) != 0 || (BH_PREFIX[4] != '\0' && BH_PREFIX[4] != '/')) {
        argv[i++] = "--ro-dir";
        argv[i++] = BH_PREFIX;
    }
    return start_daemon(hv, argv, i, "bulkhead-hv", "hv.out");
}

/* A daemon holds its pid file locked for life: wait until the lock is free. */
static int wait_gone(const char *pidfile)
{
    char path[PATH_MAX];
    struct timespec ts = {0, 20 * 1000000};
    int fd;

    snprintf(path, sizeof(path), "%s/%s", state_dir, pidfile);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    for (int waited = 0; waited < DOWN_TIMEOUT_MS; waited += 20) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            close(fd);
            return 0;
        }
        nanosleep(&ts, NULL);
    }
    close(fd);
    return -1;
}

/* SIGTERM to the daemon whose pid file is locked (so alive), then wait for it. */
static int stop_by_pidfile(const char *pidfile, const char *name)
{
    char path[PATH_MAX], buf[32] = "";
    int fd;
    ssize_t n;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/%s", state_dir, pidfile);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) { /* nobody holds it: not running */
        close(fd);
        return 0;
    }
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    if ((pid = (pid_t)atoi(buf)) > 1)
        kill(pid, SIGTERM);
    if (wait_gone(pidfile) != 0) {
        errorf("%s is still running after %d s: see %s", name, DOWN_TIMEOUT_MS / 1000, state_dir);
        return -1;
    }
    return 0;
}

/* XenStore, and dom0's own nodes in it (xen-init-dom0's job on Xen). */
static int start_xenstore(const char *path)
{
    char *argv[8] = {"bulkhead-xenstored", "--state-dir", (char *)state_dir};
    struct xsdom_info dom0 = {.domid = 0, .name = "Domain-0"};
    struct xs_handle *h;
    char err[512];
    int rc;

    if (start_daemon(path, argv, 3, "bulkhead-xenstored", "xenstored.out") < 0)
        return -1;
    dom0.vcpus = (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
    dom0.memory_kb = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
    if ((h = xsdom_open(false)) == NULL)
        return -1;
    if ((rc = xsdom_introduce(h, &dom0, err, sizeof(err))) != 0)
        errorf("%s", err);
    xs_close(h);
    return rc;
}

/* The stock-dom0 placement: devices with no backend= are served from dom0. */
static int start_drvdom(const char *path)
{
    char *argv[8] = {"bulkhead-drvdom", "--state-dir", (char *)state_dir};
    pid_t pid;

    daemon_in_dom0_net = true;
    pid = start_daemon(path, argv, 3, "bulkhead-drvdom", "drvdom.out");
    daemon_in_dom0_net = false;
    return pid < 0 ? -1 : 0;
}

/* Undoes a half-done up. */
static void stop_hv(void)
{
    struct hvc h;

    stop_by_pidfile("drvdom.pid", "bulkhead-drvdom");
    if (hvc_open(&h, true) == 0) {
        hvc_call(&h, HVW_OP_STOP, NULL, 0, NULL, 0, NULL);
        hvc_close(&h);
        wait_gone("hv.pid");
    }
    stop_by_pidfile("xenstored.pid", "bulkhead-xenstored");
}

int cmd_up(int argc, char **argv)
{
    char hv[PATH_MAX], top[PATH_MAX], xs[PATH_MAX], dd[PATH_MAX], dummy[PATH_MAX], err[700];
    pid_t pid;

    (void)argv;
    if (argc != 1) {
        errorf("usage: bulkhead up");
        return 2;
    }
    if (geteuid() != 0) {
        errorf("bulkhead up needs root (namespaces, TAPs, a daemon that hands out pages): run it "
               "with sudo");
        return 1;
    }
    if (up_already()) {
        printf("bulkhead: already up in %s\n", state_dir);
        return 0;
    }
    if (find_prog("bulkhead-hv", "BULKHEAD_HV", hv, sizeof(hv), top, sizeof(top)) != 0) {
        errorf("cannot find bulkhead-hv: install Bulkhead ('make install') or set BULKHEAD_HV");
        return 1;
    }
    if (find_prog("bulkhead-xenstored", "BULKHEAD_XENSTORED", xs, sizeof(xs), dummy,
                  sizeof(dummy)) != 0) {
        errorf("cannot find bulkhead-xenstored: install Bulkhead ('make install') or set "
               "BULKHEAD_XENSTORED");
        return 1;
    }
    if (find_prog("bulkhead-drvdom", "BULKHEAD_DRVDOM", dd, sizeof(dd), dummy, sizeof(dummy)) !=
        0) {
        errorf("cannot find bulkhead-drvdom: install Bulkhead ('make install') or set "
               "BULKHEAD_DRVDOM");
        return 1;
    }
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
        errorf("cannot create %s: %s", state_dir, strerror(errno));
        return 1;
    }
    /* A crashed instance's dom0 device daemon outlives it (it is no domain): stop it. */
    stop_by_pidfile("drvdom.pid", "bulkhead-drvdom");
    if (nbdserve_stop_all(-1) + clear_leftovers() > 0)
        fprintf(stderr, "bulkhead: cleared processes a crashed instance left in %s\n", state_dir);
    if ((pid = start_hv(hv, top)) < 0)
        return 1;
    if (start_xenstore(xs) != 0) {
        stop_hv();
        return 1;
    }
    if (dom0_netns_make(err, sizeof(err)) != 0) {
        errorf("%s", err);
        stop_hv();
        return 1;
    }
    if (start_drvdom(dd) != 0) {
        stop_hv();
        dom0_netns_remove();
        return 1;
    }
    printf("bulkhead: up in %s (bulkhead-hv pid %d)\n", state_dir, (int)pid);
    return 0;
}

int cmd_down(int argc, char **argv)
{
    struct hvc h;
    int rc;

    (void)argv;
    if (argc != 1) {
        errorf("usage: bulkhead down");
        return 2;
    }
    /* dom0's backends first, while XenStore still answers their goodbyes. */
    stop_by_pidfile("drvdom.pid", "bulkhead-drvdom");
    if (hvc_open(&h, true) != 0) {
        stop_by_pidfile("xenstored.pid", "bulkhead-xenstored");
        nbdserve_stop_all(-1);
        clear_leftovers();
        dom0_netns_remove();
        printf("bulkhead: already down in %s\n", state_dir);
        return 0;
    }
    rc = hvc_call(&h, HVW_OP_STOP, NULL, 0, NULL, 0, NULL);
    hvc_close(&h);
    if (rc != 0) {
        errorf("bulkhead-hv refused to stop: %s", rc > 0 ? strerror(rc) : strerror(errno));
        return 1;
    }
    if (wait_gone("hv.pid") != 0) {
        errorf("bulkhead-hv is still running after %d s: see %s/hv.log", DOWN_TIMEOUT_MS / 1000,
               state_dir);
        return 1;
    }
    if (stop_by_pidfile("xenstored.pid", "bulkhead-xenstored") != 0)
        return 1;
    nbdserve_stop_all(-1); /* the disks' qemu-nbd of domains never destroyed */
    clear_leftovers();
    dom0_netns_remove();
    printf("bulkhead: down in %s\n", state_dir);
    return 0;
}

int cmd_env(int argc, char **argv)
{
    (void)argv;
    if (argc != 1) {
        errorf("usage: bulkhead env");
        return 2;
    }
    printf("BULKHEAD_STATE_DIR='%s'; export BULKHEAD_STATE_DIR\n", state_dir);
    printf("BULKHEAD_HV_SOCKET='%s/hv.sock'; export BULKHEAD_HV_SOCKET\n", state_dir);
    printf("XENSTORED_PATH='%s/xenstored.sock'; export XENSTORED_PATH\n", state_dir);
    printf("BULKHEAD_DOM0_NETNS='%s/netns/dom0'; export BULKHEAD_DOM0_NETNS\n", state_dir);
    return 0;
}
