/*
 * cmd_domain.c - bulkhead create, destroy, list, exec.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenstore.h>

#include "dombuild.h"
#include "toolstack.h"
#include "xlcfg.h"
#include "xsdom.h"

static const char *const state_names[] = {
    [HVW_DOM_RUNNING] = "running", [HVW_DOM_PAUSED] = "paused",
    [HVW_DOM_SHUTDOWN] = "shutdown", [HVW_DOM_DYING] = "dying", [HVW_DOM_GONE] = "dying",
};

static const char *state_name(uint8_t s)
{
    return s < sizeof(state_names) / sizeof(state_names[0]) && state_names[s] ? state_names[s]
                                                                            : "unknown";
}

/* The guest's environment: a plain root shell's. */
static size_t put_env(char *p, size_t room)
{
    static const char *const env[] = {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/home",
        "TERM=dumb",
    };
    size_t off = 0;

    for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++) {
        size_t n = strlen(env[i]) + 1;
        if (off + n > room)
            return 0;
        memcpy(p + off, env[i], n);
        off += n;
    }
    return off;
}

/*
 * The new domain's XenStore nodes, then its introduction.  On failure the
 * domain is destroyed again: a create that fails leaves nothing behind.
 */
static int xenstore_add(struct hvc *h, const struct hvw_dominfo *info, const struct xlcfg *cfg,
                        const char *file)
{
    struct xsdom_info di = {.domid = info->domid, .name = cfg->name,
                            .memory_kb = (uint64_t)cfg->memory_mb * 1024,
                            .vcpus = (unsigned int)cfg->vcpus};
    struct hvw_domid_req r = {.domid = info->domid};
    struct xs_handle *xs = xsdom_open(false);
    char err[512] = "";
    int rc = -1;

    if (xs != NULL && (rc = xsdom_introduce(xs, &di, err, sizeof(err))) != 0)
        errorf("%s: %s", file, err);
    if (rc != 0) {
        if (xs != NULL)
            xsdom_release(xs, info->domid);
        hvc_call(h, HVW_OP_DOM_DESTROY, &r, sizeof(r), NULL, 0, NULL);
    }
    if (xs != NULL)
        xs_close(xs);
    return rc;
}

int cmd_create(int argc, char **argv)
{
    static uint8_t buf[HVW_MAX_MSG];
    struct hvw_dom_create_req *r = (struct hvw_dom_create_req *)buf;
    struct hvw_dominfo info;
    struct xlcfg cfg;
    struct hvc h;
    char err[512];
    size_t room = sizeof(buf) - sizeof(struct hvw_hdr) - sizeof(*r), n;
    int rc;

    if (argc != 2) {
        errorf("usage: bulkhead create FILE");
        return 2;
    }
    if (xlcfg_read(&cfg, argv[1], NULL, 0, err, sizeof(err)) != 0) {
        errorf("%s", err);
        return 1;
    }
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", cfg.name);
    r->memory_kb = (uint64_t)cfg.maxmem_mb * 1024;
    r->vcpus = (uint32_t)cfg.vcpus;
    r->flags = cfg.driver_domain ? HVW_DOM_DRIVER : 0;
    r->max_grant_frames = (uint32_t)cfg.max_grant_frames;
    r->max_evtchn_ports = (uint32_t)cfg.max_event_channels;
    r->envc = 3;
    r->strings_len = (uint32_t)(n = put_env(r->strings, room));
    if (hvc_open(&h, false) != 0)
        return 1;
    rc = hvc_call(&h, HVW_OP_DOM_CREATE, r, sizeof(*r) + n, &info, sizeof(info), NULL);
    if (rc == 0 && xenstore_add(&h, &info, &cfg, argv[1]) != 0) {
        hvc_close(&h);
        return 1;
    }
    hvc_close(&h);
    if (rc == EEXIST) {
        errorf("%s: a domain named %s exists already: destroy it or rename this one", argv[1],
               cfg.name);
        return 1;
    }
    if (rc != 0) {
        errorf("%s: cannot create %s: %s (see %s/hv.log)", argv[1], cfg.name,
               strerror(rc > 0 ? rc : errno), state_dir);
        return 1;
    }
    if (cfg.noted[0] != '\0')
        fprintf(stderr, "bulkhead: %s: noted and not used (no kernel boots in the simulation): "
                        "%s\n", argv[1], cfg.noted);
    printf("Created %s%s %s (id %u)\n", cfg.driver_domain ? "driver " : "", "domain", cfg.name,
           info.domid);
    return 0;
}

static int pause_or_not(int argc, char **argv, uint16_t op, const char *what)
{
    struct hvw_dominfo info;
    struct hvw_domid_req r = {0};
    struct hvc h;
    int rc;

    if (argc != 2) {
        errorf("usage: bulkhead %s NAME|ID", argv[0]);
        return 2;
    }
    if (hvc_open(&h, false) != 0)
        return 1;
    if ((rc = hvc_find_domain(&h, argv[1], &info)) != 0 || info.domid == 0) {
        errorf(rc ? "no domain %s: see 'bulkhead list'" : "%s is dom0: it is not %s", argv[1],
               what);
        hvc_close(&h);
        return 1;
    }
    r.domid = info.domid;
    rc = hvc_call(&h, op, &r, sizeof(r), NULL, 0, NULL);
    hvc_close(&h);
    if (rc == EINVAL) {
        errorf("%s is %s, so it cannot be %s", argv[1], state_name(info.state), what);
        return 1;
    }
    if (rc != 0) {
        errorf("cannot %s %s: %s", argv[0], argv[1], strerror(rc > 0 ? rc : errno));
        return 1;
    }
    return 0;
}

int cmd_pause(int argc, char **argv)
{
    return pause_or_not(argc, argv, HVW_OP_DOM_PAUSE, "paused");
}

int cmd_unpause(int argc, char **argv)
{
    return pause_or_not(argc, argv, HVW_OP_DOM_UNPAUSE, "unpaused");
}

int cmd_destroy(int argc, char **argv)
{
    struct hvw_dominfo info;
    struct hvw_domid_req r = {0};
    struct xs_handle *xs;
    struct hvc h;
    int rc;

    if (argc != 2) {
        errorf("usage: bulkhead destroy NAME|ID");
        return 2;
    }
    if (hvc_open(&h, false) != 0)
        return 1;
    if ((rc = hvc_find_domain(&h, argv[1], &info)) != 0) {
        errorf("no domain %s: see 'bulkhead list'", argv[1]);
        hvc_close(&h);
        return 1;
    }
    if (info.domid == 0) {
        errorf("dom0 cannot be destroyed: use 'bulkhead down' to stop the simulation");
        hvc_close(&h);
        return 1;
    }
    r.domid = info.domid;
    rc = hvc_call(&h, HVW_OP_DOM_DESTROY, &r, sizeof(r), NULL, 0, NULL);
    hvc_close(&h);
    if (rc != 0) {
        errorf("cannot destroy %s: %s", argv[1], strerror(rc > 0 ? rc : errno));
        return 1;
    }
    /* As libxl does once the domain is gone: release it and remove its nodes. */
    if ((xs = xsdom_open(true)) != NULL) {
        xsdom_release(xs, info.domid);
        xs_close(xs);
    }
    return 0;
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

int cmd_list(int argc, char **argv)
{
    static uint8_t buf[HVW_MAX_MSG];
    struct hvw_dom_list_rsp *l = (struct hvw_dom_list_rsp *)buf;
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    struct hvc h;
    size_t n;
    int rc;

    if (argc > 2 || (argc == 2 && !json)) {
        errorf("usage: bulkhead list [--json]");
        return 2;
    }
    if (hvc_open(&h, false) != 0)
        return 1;
    rc = hvc_call(&h, HVW_OP_DOM_LIST, NULL, 0, buf, sizeof(buf), &n);
    hvc_close(&h);
    if (rc != 0 || n < sizeof(*l) || n < sizeof(*l) + l->count * sizeof(struct hvw_dominfo)) {
        errorf("cannot list domains: %s", strerror(rc > 0 ? rc : errno));
        return 1;
    }
    if (json)
        printf("[");
    else
        printf("%-24s %5s %8s %5s %-9s %8s\n", "Name", "ID", "Mem(MiB)", "VCPUs", "State", "PID");
    for (uint32_t i = 0; i < l->count; i++) {
        struct hvw_dominfo *d = &l->doms[i];
        d->name[sizeof(d->name) - 1] = '\0';
        if (json) {
            printf("%s\n  {\"domid\": %u, \"name\": ", i ? "," : "", d->domid);
            print_json_string(d->name);
            printf(", \"state\": \"%s\", \"pid\": %u, \"driver_domain\": %s}",
                   state_name(d->state), d->pid, (d->flags & HVW_DOM_DRIVER) ? "true" : "false");
        } else {
            printf("%-24s %5u %8llu %5u %-9s %8u\n", d->name, d->domid,
                   (unsigned long long)d->memory_kb / 1024, d->vcpus, state_name(d->state),
                   d->pid);
        }
    }
    if (json)
        printf("\n]\n");
    return 0;
}

/* The domain's environment, as its first process has it. */
static char **domain_environ(pid_t pid, char **buf)
{
    char path[64];
    size_t cap = 65536, len = 0, n = 0;
    ssize_t r;
    char **v;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || (*buf = malloc(cap + 1)) == NULL)
        return NULL;
    while (len < cap && (r = read(fd, *buf + len, cap - len)) > 0)
        len += (size_t)r;
    close(fd);
    (*buf)[len] = '\0';
    for (size_t i = 0; i < len; i++)
        n += (*buf)[i] == '\0';
    if ((v = calloc(n + 2, sizeof(*v))) == NULL)
        return NULL;
    n = 0;
    /* The inherited channel (fd 3) is the first process's alone: not ours to claim. */
    for (size_t i = 0; i < len; i += strlen(*buf + i) + 1)
        if (strncmp(*buf + i, "BULKHEAD_HV_FD=", 15) != 0)
            v[n++] = *buf + i;
    return v;
}

int cmd_exec(int argc, char **argv)
{
    struct hvw_dominfo info;
    struct hvc h;
    char err[512], *envbuf = NULL, **envp;
    int rc, status;

    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        errorf("usage: bulkhead exec NAME|ID -- COMMAND [ARG]...");
        return 2;
    }
    if (hvc_open(&h, false) != 0)
        return 1;
    rc = hvc_find_domain(&h, argv[1], &info);
    hvc_close(&h);
    if (rc != 0) {
        errorf("no domain %s: see 'bulkhead list'", argv[1]);
        return 1;
    }
    if (info.domid == 0) {
        errorf("exec runs commands in guests; dom0 is this shell");
        return 1;
    }
    if (info.flags & HVW_DOM_DRIVER) {
        errorf("%s is a driver domain, which runs no shell and no exec: inspect it from dom0 "
               "(bulkhead list, its log)", argv[1]);
        return 1;
    }
    if (info.state != HVW_DOM_RUNNING) {
        errorf("%s is %s, not running", argv[1], state_name(info.state));
        return 1;
    }
    if ((envp = domain_environ((pid_t)info.pid, &envbuf)) == NULL) {
        errorf("cannot read the environment of %s: %s", argv[1], strerror(errno));
        return 1;
    }
    rc = dombuild_exec((pid_t)info.pid, argv + 3, envp, &status, err, sizeof(err));
    free(envp);
    free(envbuf);
    if (rc != 0) {
        errorf("%s: %s", argv[1], err);
        return 1;
    }
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
