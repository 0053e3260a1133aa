/*
 * fe_vbd.c - the guest runtime's vbd frontend: one nbdkit per vbd, with
 * the blkfront plugin (frontend/blk), serving the disk on a unix socket.
 *
 * Design: the plugin process owns the whole device, XenStore handshake
 * included, because it is the process that maps the ring and the bounce
 * pool and moves the data (bhblkfront_open); a second owner of the
 * handshake in bulkhead-guest would race it.  So this driver only
 * supervises: it starts
 *     nbdkit -f --exit-with-parent -U /run/bulkhead-guest/vbd-<devid>.sock \
 *            -t 16 <plugin> vbd=<devid>
 * (the plugin: $BULKHEAD_NBDKIT_PLUGIN, else beside an uninstalled
 * bulkhead-guest in the build tree, else the installed one), publishes
 *     /local/domain/<self>/data/bulkhead/vbd/<devid>/uri
 *         = nbd+unix:///?socket=/run/bulkhead-guest/vbd-<devid>.sock
 * once the device is Connected (`bulkhead block-list` shows it), reaps
 * the process, and fails the device (error node, Closing) if it dies
 * while the device should live.  On shutdown it sends SIGTERM: the plugin
 * closes the device with its backend before nbdkit exits.
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "front.h"

#define VBD_RUNDIR       "/run/bulkhead-guest"
#define VBD_THREADS      "32"
#define VBD_STOP_WAIT_MS 8000 /* the plugin closes with its backend (3 s at most) */

struct vbd_front {
    pid_t pid;
    bool uri_written;
    bool stopped; /* SIGTERM sent */
};

/* The plugin to load: the environment's, the build tree's, or the installed one. */
static void plugin_path(char *buf, size_t size)
{
    const char *env = getenv("BULKHEAD_NBDKIT_PLUGIN");
    char exe[PATH_MAX];
    ssize_t n;

    if (env != NULL && env[0] != '\0') {
        snprintf(buf, size, "%s", env);
        return;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        char *slash;

        exe[n] = '\0';
        if ((slash = strrchr(exe, '/')) != NULL) {
            *slash = '\0';
            snprintf(buf, size, "%s/../blk/.libs/nbdkit-bulkhead-plugin.so", exe);
            if (access(buf, R_OK) == 0)
                return;
        }
    }
    snprintf(buf, size, "%s/nbdkit-bulkhead-plugin.so", BH_PKGLIBDIR);
}

static void sock_path(const struct bhfront *f, char *buf, size_t size)
{
    snprintf(buf, size, VBD_RUNDIR "/vbd-%u.sock", f->devid);
}

static void uri_dir(const struct bhfront *f, char *buf, size_t size)
{
    snprintf(buf, size, "/local/domain/%u/data/bulkhead/vbd/%u", f->domid, f->devid);
}

unsigned int fe_vbd_queues;
int fe_vbd_persistent = -1;

static int vbd_spawn(struct bhfront *f, struct vbd_front *v, char *why, size_t len)
{
    char plugin[PATH_MAX + 64], sock[128], arg[32], queues[32];
    char *argv[] = {"nbdkit", "-f", "--exit-with-parent", "-U", sock, "-t", VBD_THREADS, plugin,
                    arg,      NULL,   NULL, NULL};
    int argc = 9;
    pid_t pid;

    plugin_path(plugin, sizeof(plugin));
    sock_path(f, sock, sizeof(sock));
    snprintf(arg, sizeof(arg), "vbd=%u", f->devid);
    if (fe_vbd_queues > 0) {
        snprintf(queues, sizeof(queues), "queues=%u", fe_vbd_queues);
        argv[argc++] = queues;
    }
    if (fe_vbd_persistent >= 0)
        argv[argc++] = fe_vbd_persistent ? "persistent=true" : "persistent=false";
    if (mkdir(VBD_RUNDIR, 0755) != 0 && errno != EEXIST) {
        snprintf(why, len, "cannot make %s: %s", VBD_RUNDIR, strerror(errno));
        return -1;
    }
    unlink(sock);
    fflush(stderr);
    if ((pid = fork()) < 0) {
        snprintf(why, len, "cannot fork nbdkit: %s (raise the domain's process limit)",
                 strerror(errno));
        return -1;
    }
    if (pid == 0) {
        sigset_t none;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        close_range(3, ~0u, 0);
#ifdef BH_ASAN_RUNTIME
        /*
         * A sanitizer build's plugin carries AddressSanitizer and nbdkit does
         * not: the runtime must be loaded first, or nbdkit refuses to load the
         * plugin.  Preloaded alone, it starts late: p11-kit's constructor
         * (nbdkit links gnutls) runs first and calls newlocale(), whose malloc
         * then starts the sanitizer inside glibc's locale lock, held for
         * writing.  The runtime's init has a dlsym() fail, and dlerror()
         * translates its message: dcgettext's read lock of the same lock
         * fails (EDEADLK, unchecked), its unlock releases newlocale's write
         * lock, and newlocale's own unlock takes the reader count to -1.
         * Nothing shows until an error message (strerror, as a broken
         * device's failed I/O logs) flips the lock to reading: then exit's
         * freelocale() waits on it forever - nbdkit hangs after SIGTERM.
         * With p11-kit preloaded after the runtime, the runtime's
         * constructor runs before p11-kit's and the lock stays sound.
         */
        setenv("LD_PRELOAD", BH_ASAN_RUNTIME " libp11-kit.so.0", 1);
        /*
         * ASan's quarantine keeps 256 MiB of freed memory by default: in a
         * guest's 128 MiB memory cgroup, an nbdkit serving many requests was
         * killed by the OOM killer.  A smaller one unless the caller chose.
         */
        setenv("ASAN_OPTIONS", "quarantine_size_mb=8", 0);
#endif
        execvp(argv[0], argv);
        fprintf(stderr, "bulkhead-guest: cannot run nbdkit: %s (apt-get install nbdkit)\n",
                strerror(errno));
        _exit(127);
    }
    v->pid = pid;
    v->stopped = false;
    bhfront_log(f, "nbdkit started (pid %d): %s on %s", (int)pid, plugin, sock);
    return 0;
}

static void write_uri(struct bhfront *f, struct vbd_front *v)
{
    char dir[BHXB_PATH_MAX], sock[128], uri[200];
    struct bhxb_key k[] = {{"uri", BHXB_STR, uri, sizeof(uri), false, 0}};

    sock_path(f, sock, sizeof(sock));
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    uri_dir(f, dir, sizeof(dir));
    if (bhxb_write_keys(f->xs, dir, k, 1) != 0) {
        bhfront_log(f, "cannot write %s/uri: %s", dir, strerror(errno));
        return;
    }
    v->uri_written = true;
    bhfront_log(f, "exported as %s", uri);
}

/*
 * Every step: start nbdkit if it is not running, reap it if it died, pass
 * on a shutdown.  -1 with why when the device must fail.
 */
static int vbd_supervise(struct bhfront *f, bool stopping, char *why, size_t len)
{
    struct vbd_front *v = f->priv;
    int status;

    if (v->pid > 0 && waitpid(v->pid, &status, WNOHANG) == v->pid) {
        v->pid = 0;
        if (!stopping) {
            snprintf(why, len,
                     "nbdkit serving the vbd exited with status %#x (see its lines above)", status);
            return -1;
        }
    }
    if (stopping) {
        if (v->pid > 0 && !v->stopped) {
            kill(v->pid, SIGTERM);
            v->stopped = true;
        }
        return 0;
    }
    if (v->pid == 0 && vbd_spawn(f, v, why, len) != 0)
        return -1;
    if (!v->uri_written && bhxb_read_state(f->xs, f->dir) == XenbusStateConnected)
        write_uri(f, v);
    return 0;
}

/* The device is gone or the runtime ends: nbdkit closes it, then exits. */
static void vbd_disconnect(struct bhfront *f)
{
    struct vbd_front *v = f->priv;
    char dir[BHXB_PATH_MAX];
    struct timespec ms = {0, 10 * 1000000L};

    if (v->pid > 0) {
        bool reaped = false;

        if (!v->stopped)
            kill(v->pid, SIGTERM);
        for (int i = 0; i < VBD_STOP_WAIT_MS / 10 && !reaped; i++) {
            reaped = waitpid(v->pid, NULL, WNOHANG) != 0;
            if (!reaped)
                nanosleep(&ms, NULL);
        }
        if (!reaped) {
            bhfront_log(f, "nbdkit (pid %d) did not stop: killed", (int)v->pid);
            kill(v->pid, SIGKILL);
            waitpid(v->pid, NULL, 0);
        }
        v->pid = 0;
    }
    if (v->uri_written) {
        uri_dir(f, dir, sizeof(dir));
        xs_rm(f->xs, XBT_NULL, dir);
        v->uri_written = false;
    }
}

const struct bhfrontdrv blkfront_nbdkit = {
    .name = "blkfront (nbdkit)",
    .kind = "vbd",
    .priv_size = sizeof(struct vbd_front),
    .supervise = vbd_supervise,
    .disconnect = vbd_disconnect,
};
