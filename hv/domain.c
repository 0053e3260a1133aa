/*
 * domain.c - the table of domains: create, destroy, death.
 *
 * A domain's identity is its domid, and outside its namespaces its uid
 * (uid_base + domid): channels are tied to a domain when they are made and
 * never by anything the domain says.  Domids are handed out in increasing
 * order and wrap below DOMID_FIRST_RESERVED, as Xen does, so that a stale
 * id in someone's hands names nobody for as long as possible.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dombuild.h"
#include "hv.h"

#define DOM_KILL_TIMEOUT_MS 10000

void domain_info(const struct hv_dom *d, struct hvw_dominfo *out)
{
    memset(out, 0, sizeof(*out));
    out->domid = d->domid;
    out->state = d->state;
    out->flags = d->flags;
    out->pid = (uint32_t)d->pid;
    out->uid = (uint32_t)d->uid;
    out->memory_kb = d->memory_kb;
    out->vcpus = d->vcpus;
    memcpy(out->name, d->name, sizeof(out->name));
}

static void announce(struct hv *hv, const struct hv_dom *d, uint8_t state)
{
    struct hvw_dominfo info;
    struct hv_conn *c, *next;

    domain_info(d, &info);
    info.state = state;
    for (c = hv->conns; c != NULL; c = next) {
        next = c->next;
        if (c->watch_domains && conn_send_event(hv, c, HVW_EV_DOMAIN, &info, sizeof(info)) != 0)
            conn_close(hv, c); /* a watcher that does not read loses its channel */
    }
}

static uint16_t next_domid(struct hv *hv)
{
    for (unsigned int tries = 0; tries < HVW_DOMID_MAX; tries++) {
        uint16_t id = hv->next_domid;
        hv->next_domid = id >= HVW_DOMID_MAX ? 1 : id + 1;
        if (hv_dom_find(hv, id) == NULL)
            return id;
    }
    return 0;
}

/*
 * The first program's argv: our own binary as the domain's init, then the
 * program.  A driver domain's init confines itself once the program runs
 * (hv/dominit.c): it is part of what the guests' backends could reach.
 */
static char **init_argv(char **prog, uint32_t argc, bool driver)
{
    char **v = calloc(argc + 4, sizeof(*v));
    uint32_t n = 0;

    if (v == NULL)
        return NULL;
    v[n++] = "bulkhead-domain-init";
    v[n++] = "--domain-init";
    if (driver)
        v[n++] = "--confine";
    for (uint32_t i = 0; i < argc; i++)
        v[n++] = prog[i];
    return v;
}

/* The domain's environment: what dom0 asked for, then what the platform needs. */
static char **domain_env(struct hv_dom *d, char **envp, uint32_t envc, char *buf, size_t buflen,
                         bool xenstore)
{
    char **v = calloc(envc + 5, sizeof(*v));
    uint32_t n = 0;

    if (v == NULL)
        return NULL;
    for (uint32_t i = 0; i < envc; i++)
        if (strncmp(envp[i], "BULKHEAD_HV_", 12) != 0)
            v[n++] = envp[i];
    snprintf(buf, buflen, "BULKHEAD_DOMID=%u", d->domid);
    v[n++] = buf;
    v[n++] = "BULKHEAD_HV_SOCKET=/run/bulkhead/hv.sock";
    v[n++] = "BULKHEAD_HV_FD=3";
    if (xenstore)
        v[n++] = "XENSTORED_PATH=/run/bulkhead/xenstored.sock"; /* libxenstore finds it there */
    return v;
}

/*
 * The domain's console, as xenconsoled keeps one per guest: its first
 * program's stdout and stderr, appended to <state-dir>/console/<name>.log
 * (dom0's only).  -1 (then /dev/null) if it cannot be opened.
 */
static int console_open(struct hv *hv, const struct hv_dom *d)
{
    char path[PATH_MAX];
    int fd;

    snprintf(path, sizeof(path), "%s/console", hv->state_dir);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -1;
    snprintf(path, sizeof(path), "%s/console/%s.log", hv->state_dir, d->name);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
        hv_log(hv, "domain %u (%s): no console log: %s: %s", d->domid, d->name, path,
               strerror(errno));
        return -1;
    }
    dprintf(fd, "--- domain %u (%s) created\n", d->domid, d->name);
    return fd;
}

static int start_domain(struct hv *hv, struct hv_dom *d, char **argv, char **envp, uint32_t argc,
                        uint32_t envc)
{
    char **iargv = init_argv(argv, argc, (d->flags & HVW_DOM_DRIVER) != 0);
    char envbuf[64], err[256], xs[300];
    struct stat st;
    bool xenstore;
    char **denv;
    int sv[2] = {-1, -1}, rc = ENOMEM;
    struct epoll_event ev = {.events = EPOLLIN};
    struct dombuild_spec spec = {
        .domid = d->domid, .name = d->name, .uid = d->uid, .gid = d->uid,
        .ro_dirs = (const char *const *)hv->ro_dirs, .hv_socket = hv->sock_path,
        .exe_fd = hv->exe_fd, .argv = iargv,
        .memory_kb = 0, /* memory is the cgroup's to limit: see cgroup.c */
    };

    /* XenStore, when bulkhead-xenstored serves this state directory. */
    snprintf(xs, sizeof(xs), "%s/xenstored.sock", hv->state_dir);
    xenstore = stat(xs, &st) == 0 && S_ISSOCK(st.st_mode);
    spec.xs_socket = xenstore ? xs : NULL;
    denv = domain_env(d, envp, envc, envbuf, sizeof(envbuf), xenstore);
    spec.envp = denv;

    if (iargv == NULL || denv == NULL)
        goto out;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        rc = errno;
        goto out;
    }
    spec.console_fd = console_open(hv, d);
    {
        int one = 1;
        setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
    }
    spec.channel_fd = sv[1];
    if (dombuild_start(&spec, &d->pid, &d->pidfd, err, sizeof(err)) != 0) {
        rc = errno ? errno : EIO;
        hv_log(hv, "domain %u (%s): build failed: %s", d->domid, d->name, err);
        goto out;
    }
    ev.data.fd = d->pidfd;
    epoll_ctl(hv->epfd, EPOLL_CTL_ADD, d->pidfd, &ev);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    if (conn_new(hv, sv[0], d) == NULL) {
        rc = ENOMEM;
        goto out; /* destroy takes the half-built domain down */
    }
    sv[0] = -1;
    rc = 0;
out:
    if (spec.console_fd > 2)
        close(spec.console_fd);
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    free(iargv);
    free(denv);
    return rc;
}


int domain_create(struct hv *hv, struct hv_req *req, struct hv_rsp *rsp)
{
    struct hvw_dom_create_req r;
    struct hv_dom *d = NULL;
    char *copy = NULL, **argv = NULL, **envp = NULL;
    int rc;

    if ((rc = domain_parse_create(req->p, req->len, &r, &copy, &argv, &envp)) != 0)
        return rc;
    for (struct hv_dom *o = hv->doms; o != NULL; o = o->next)
        if (strncmp(o->name, r.name, sizeof(o->name)) == 0) {
            rc = EEXIST;
            goto out;
        }
    if ((d = calloc(1, sizeof(*d))) == NULL) {
        rc = ENOMEM;
        goto out;
    }
    if ((d->domid = next_domid(hv)) == 0) {
        rc = ENOSPC;
        goto out;
    }
    memcpy(d->name, r.name, sizeof(d->name));
    d->name[sizeof(d->name) - 1] = '\0';
    d->uid = hv->uid_base + d->domid;
    d->pidfd = -1;
    d->state = HVW_DOM_RUNNING;
    d->flags = r.flags;
    d->memory_kb = r.memory_kb;
    d->vcpus = r.vcpus ? r.vcpus : 1;
    d->max_grant_frames = r.max_grant_frames ? r.max_grant_frames : HV_DEFAULT_GRANT_FRAMES;
    d->max_evtchn_ports = r.max_evtchn_ports ? r.max_evtchn_ports : HV_DEFAULT_EVTCHN_PORTS;
    if (gnttab_dom_init(d) != 0 || evtchn_dom_init(d) != 0) {
        rc = ENOMEM;
        goto out;
    }
    /* In the table before it starts, so that its first hypercall finds it. */
    d->next = hv->doms->next;
    hv->doms->next = d;
    if ((rc = start_domain(hv, d, argv, envp, r.argc, r.envc)) != 0) {
        domain_destroy(hv, d);
        d = NULL;
        goto out;
    }
    cgroup_limit(hv, d);
    hv_log(hv, "domain %u (%s): created, pid %d, uid %u", d->domid, d->name, (int)d->pid,
           (unsigned)d->uid);
    domain_info(d, (struct hvw_dominfo *)rsp->p);
    rsp->len = sizeof(struct hvw_dominfo);
    d = NULL;
out:
    if (d != NULL) {
        gnttab_dom_release(hv, d);
        evtchn_dom_release(hv, d);
        free(d);
    }
    free(argv);
    free(copy);
    return rc;
}

/* Its first process ended on its own: the domain has shut down. */
void domain_reap(struct hv *hv, struct hv_dom *d)
{
    int status = 0;

    epoll_ctl(hv->epfd, EPOLL_CTL_DEL, d->pidfd, NULL);
    if (waitpid(d->pid, &status, WNOHANG) <= 0)
        return;
    d->state = HVW_DOM_SHUTDOWN;
    if (WIFEXITED(status))
        hv_log(hv, "domain %u (%s): shut down, status %d", d->domid, d->name, WEXITSTATUS(status));
    else
        hv_log(hv, "domain %u (%s): died of signal %d", d->domid, d->name,
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    announce(hv, d, HVW_DOM_SHUTDOWN);
}

int domain_destroy(struct hv *hv, struct hv_dom *d)
{
    struct hv_conn *c, *next;
    struct hv_dom **pp;

    d->state = HVW_DOM_DYING;
    if (d->pidfd >= 0) {
        epoll_ctl(hv->epfd, EPOLL_CTL_DEL, d->pidfd, NULL);
        if (dombuild_kill(d->pid, d->uid, DOM_KILL_TIMEOUT_MS) != 0)
            hv_log(hv, "domain %u (%s): processes remain after %d ms: %s", d->domid, d->name,
                   DOM_KILL_TIMEOUT_MS, strerror(errno));
        close(d->pidfd);
        d->pidfd = -1;
        cgroup_release(hv, d);
    }
    for (c = hv->conns; c != NULL; c = next) {
        next = c->next;
        if (c->dom == d)
            conn_close(hv, c);
    }
    gnttab_dom_release(hv, d);
    evtchn_dom_release(hv, d);
    broker_dom_release(hv, d);
    for (pp = &hv->doms; *pp != NULL; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    hv_log(hv, "domain %u (%s): destroyed", d->domid, d->name);
    announce(hv, d, HVW_DOM_GONE);
    free(d);
    return 0;
}
