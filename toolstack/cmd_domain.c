/*
 * cmd_domain.c - bulkhead create (and create -n, the dry run), destroy,
 * list, exec.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenstore.h>

#include "devices.h"
#include "devplan.h"
#include "dombuild.h"
#include "domxml.h"
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

static int create_domain(const char *file);

void config_kept_path(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/configs/%s.cfg", state_dir, name);
}

/*
 * A copy of a driver domain's config in the state directory, for restart:
 * written beside and renamed, so that a reader sees the old copy or the new
 * one, never a mix.  Nothing is done when file is that copy already.
 */
static int config_keep(const char *file, const char *name, char *err, size_t errlen)
{
    char dir[4096], path[4200], tmp[4300], buf[65536];
    int in = -1, out = -1, rc = -1;
    ssize_t n = 0;

    snprintf(dir, sizeof(dir), "%s/configs", state_dir);
    config_kept_path(name, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    if (strcmp(file, path) == 0)
        return 0;
    if ((mkdir(dir, 0700) != 0 && errno != EEXIST) ||
        (in = open(file, O_RDONLY | O_CLOEXEC)) < 0 ||
        (out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
        goto out;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n)
            goto out;
    if (n < 0 || fsync(out) != 0 || close(out) != 0) {
        out = -1;
        goto out;
    }
    out = -1;
    rc = rename(tmp, path);
out:
    if (rc != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot keep a copy of it as %.1500s: %s", path, strerror(e));
        unlink(tmp);
    }
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return rc;
}

/* ---- create -n: the devices' XenStore layout, as JSON, with nothing changed ---- */

/* What --backend and --backend-config say of one backend domain. */
struct known_backend {
    char name[XLCFG_NAME_MAX];
    long domid;            /* -1: not given (then the running simulation's) */
    struct xlcfg cfg;      /* from --backend-config, when has_cfg */
    bool has_cfg;
};

struct resolver {
    struct known_backend *known;
    size_t n;
    bool tried_hv, hv_up;
    struct hvc h;
};

static struct known_backend *known(struct resolver *r, const char *name, bool add)
{
    struct known_backend *k;

    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->known[i].name, name) == 0)
            return &r->known[i];
    if (!add || (k = realloc(r->known, (r->n + 1) * sizeof(*k))) == NULL)
        return NULL;
    r->known = k;
    k = &r->known[r->n++];
    memset(k, 0, sizeof(*k));
    snprintf(k->name, sizeof(k->name), "%s", name);
    k->domid = -1;
    return k;
}

/* The running simulation's hypervisor, opened on first use: false if none runs. */
static bool resolver_hv(struct resolver *r)
{
    if (!r->tried_hv) {
        r->tried_hv = true;
        r->hv_up = hvc_open(&r->h, true) == 0;
    }
    return r->hv_up;
}

/* devplan_resolve_fn: --backend first, then the running simulation, if there is one. */
static int resolve_backend(void *arg, const char *name, struct devplan_backend *out, char *err,
                           size_t errlen)
{
    struct resolver *r = arg;
    struct known_backend *k = known(r, name, false);
    struct hvw_dominfo info;

    out->storage = k && k->has_cfg ? (const char *const *)k->cfg.storage : NULL;
    out->nstorage = k && k->has_cfg ? k->cfg.nstorage : 0;
    if (k != NULL && k->domid >= 0) {
        out->domid = (uint32_t)k->domid;
        return 0;
    }
    if (resolver_hv(r) && hvc_find_domain(&r->h, name, &info) == 0) {
        out->domid = info.domid;
        return 0;
    }
    snprintf(err, errlen, "no domain %s: create it first, or give --backend %s=ID", name, name);
    return -1;
}

static int parse_backend_opt(struct resolver *r, const char *val)
{
    const char *eq = strchr(val, '=');
    char name[XLCFG_NAME_MAX], *end;
    struct known_backend *k;
    long id;

    if (eq == NULL || eq == val || (size_t)(eq - val) >= sizeof(name)) {
        errorf("--backend %s: write it as --backend NAME=ID", val);
        return -1;
    }
    snprintf(name, sizeof(name), "%.*s", (int)(eq - val), val);
    errno = 0;
    id = strtol(eq + 1, &end, 10);
    if (errno || end == eq + 1 || *end != '\0' || id < 1 || id > HVW_DOMID_MAX) {
        errorf("--backend %s: the id must be a number from 1 to %d", val, HVW_DOMID_MAX);
        return -1;
    }
    if ((k = known(r, name, true)) == NULL) {
        errorf("out of memory");
        return -1;
    }
    k->domid = id;
    return 0;
}

static int parse_backend_config(struct resolver *r, const char *file)
{
    struct known_backend *k;
    struct xlcfg cfg;
    char err[512];

    if (xlcfg_read(&cfg, file, NULL, 0, err, sizeof(err)) != 0) {
        errorf("%s", err);
        return -1;
    }
    if ((k = known(r, cfg.name, true)) == NULL || k->has_cfg) {
        errorf(k ? "--backend-config: two configs name %s: give one" : "out of memory", cfg.name);
        xlcfg_free(&cfg);
        return -1;
    }
    k->cfg = cfg;
    k->has_cfg = true;
    return 0;
}

static void resolver_free(struct resolver *r)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->known[i].has_cfg)
            xlcfg_free(&r->known[i].cfg);
    free(r->known);
    if (r->hv_up)
        hvc_close(&r->h);
}

/*
 * The dry run's domid when --domid is not given: 1, or the lowest id that
 * neither a --backend names nor a domain of the running simulation holds,
 * so that a guest's plan does not take its driver domain's id (which the
 * hypervisor would never give it, and which the plan refuses as a
 * backend that is the new domain itself).
 */
static uint32_t dry_run_domid(struct resolver *r)
{
    struct hvw_dom_list_rsp *l = NULL;
    size_t ndoms = 0;

    if (resolver_hv(r) && hvc_dom_list(&r->h, &l) == 0)
        ndoms = l->count;
    for (uint32_t id = 1; id <= HVW_DOMID_MAX; id++) {
        bool used = false;

        for (size_t i = 0; i < r->n && !used; i++)
            used = r->known[i].domid == (long)id;
        for (size_t i = 0; i < ndoms && !used; i++)
            used = l->doms[i].domid == id;
        if (!used)
            return id;
    }
    return 1;
}

/* o->domid: --domid's, or 0 (dry_run_domid's). */
static int create_dry_run(const char *file, struct devplan_opts *o, struct resolver *r)
{
    struct devplan *plan = NULL;
    struct xlcfg cfg;
    char err[1024];
    int rc = 1;

    if (domcfg_read(&cfg, file, err, sizeof(err)) != 0) {
        errorf("%s", err);
        return 1;
    }
    o->resolve = resolve_backend;
    o->arg = r;
    if (o->domid == 0)
        o->domid = dry_run_domid(r);
    if (devplan_build(&cfg, file, o, &plan, err, sizeof(err)) != 0)
        errorf("%s", err);
    else if (devplan_json(plan, stdout) != 0 || fflush(stdout) != 0)
        errorf("cannot write the plan: %s", strerror(errno));
    else
        rc = 0;
    devplan_free(plan);
    xlcfg_free(&cfg);
    return rc;
}

#define CREATE_USAGE                                                                               \
    "usage: bulkhead create [-n [--domid N] [--backend NAME=ID]... [--backend-config FILE]... "   \
    "[--stable-macs]] FILE"

/*
 * create -n [options] FILE.  The options exist for -n only: without it a
 * real create takes its ids from the hypervisor.
 */
static int create_options(int argc, char **argv, bool *dry, const char **file,
                          struct devplan_opts *o, struct resolver *r)
{
    bool extra = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (strcmp(a, "-n") == 0 || strcmp(a, "--dry-run") == 0) {
            *dry = true;
        } else if (strcmp(a, "--stable-macs") == 0) {
            o->stable_macs = extra = true;
        } else if (strcmp(a, "--domid") == 0 && has_val) {
            char *end;
            long id;
            errno = 0;
            id = strtol(argv[++i], &end, 10);
            if (errno || *end != '\0' || end == argv[i] || id < 1 || id > HVW_DOMID_MAX) {
                errorf("--domid %s: give a number from 1 to %d", argv[i], HVW_DOMID_MAX);
                return -1;
            }
            o->domid = (uint32_t)id;
            extra = true;
        } else if (strcmp(a, "--backend") == 0 && has_val) {
            if (parse_backend_opt(r, argv[++i]) != 0)
                return -1;
            extra = true;
        } else if (strcmp(a, "--backend-config") == 0 && has_val) {
            if (parse_backend_config(r, argv[++i]) != 0)
                return -1;
            extra = true;
        } else if (a[0] == '-' || *file != NULL) {
            errorf(CREATE_USAGE);
            return -1;
        } else {
            *file = a;
        }
    }
    if (*file == NULL) {
        errorf(CREATE_USAGE);
        return -1;
    }
    if (extra && !*dry) {
        errorf("--domid, --backend, --backend-config and --stable-macs are for a dry run: add -n");
        return -1;
    }
    return 0;
}

int cmd_create(int argc, char **argv)
{
    struct devplan_opts o = {.domid = 0}; /* -n without --domid: dry_run_domid */
    struct resolver res = {0};
    const char *file = NULL;
    bool dry = false;
    int rc;

    if (create_options(argc, argv, &dry, &file, &o, &res) != 0) {
        resolver_free(&res);
        return 2;
    }
    if (dry)
        rc = create_dry_run(file, &o, &res);
    else
        rc = create_domain(file);
    resolver_free(&res);
    return rc;
}

/*
 * How long create, restart and the hotplug commands wait for devices;
 * BULKHEAD_CONNECT_TIMEOUT (seconds) overrides.
 */
int connect_timeout_ms(void)
{
    const char *e = getenv("BULKHEAD_CONNECT_TIMEOUT");
    long s = e != NULL ? strtol(e, NULL, 10) : 0;

    return s > 0 && s <= 3600 ? (int)s * 1000 : 30000;
}

/*
 * The domain's first program: a driver domain runs bulkhead-drvdom, a guest
 * bulkhead-guest (its frontends, then its bulkhead_init).  Appends argv to
 * r's strings; returns the bytes used, 0 if it does not fit.
 */
static size_t put_argv(struct hvw_dom_create_req *r, size_t room, const struct xlcfg *cfg,
                       size_t ndevs, char *err, size_t errlen)
{
    char prog[4096], top[4096], count[16], queues[24], num[XLCFG_DRV_NOPTS][24];
    const char *argv[XLCFG_INIT_MAX + 10];
    size_t argc = 0, off = 0;

    if (find_prog(cfg->driver_domain ? "bulkhead-drvdom" : "bulkhead-guest",
                  cfg->driver_domain ? "BULKHEAD_DRVDOM" : "BULKHEAD_GUEST", prog, sizeof(prog),
                  top, sizeof(top)) != 0) {
        snprintf(err, errlen, "cannot find %s: install Bulkhead ('make install') or set %s",
                 cfg->driver_domain ? "bulkhead-drvdom" : "bulkhead-guest",
                 cfg->driver_domain ? "BULKHEAD_DRVDOM" : "BULKHEAD_GUEST");
        return 0;
    }
    argv[argc++] = prog;
    if (cfg->driver_domain)
        argc += xlcfg_drvdom_args(cfg, num, argv + argc);
    if (!cfg->driver_domain) {
        snprintf(count, sizeof(count), "%zu", ndevs);
        argv[argc++] = "--devices";
        argv[argc++] = count;
        if (cfg->vbd_queues > 0) {
            snprintf(queues, sizeof(queues), "%ld", cfg->vbd_queues);
            argv[argc++] = "--vbd-queues";
            argv[argc++] = queues;
        }
        if (cfg->vbd_persistent >= 0) {
            argv[argc++] = "--vbd-persistent";
            argv[argc++] = cfg->vbd_persistent ? "1" : "0";
        }
        if (cfg->ninit > 0) {
            argv[argc++] = "--";
            for (size_t i = 0; i < cfg->ninit && argc < XLCFG_INIT_MAX + 9; i++)
                argv[argc++] = cfg->init[i];
        }
    }
    for (size_t i = 0; i < argc; i++) {
        size_t n = strlen(argv[i]) + 1;
        if (off + n > room) {
            snprintf(err, errlen, "bulkhead_init is too long: keep it under %zu bytes", room);
            return 0;
        }
        memcpy(r->strings + off, argv[i], n);
        off += n;
    }
    r->argc = (uint32_t)argc;
    return off;
}

/* Plans the devices for domid (HVW_DOMID_MAX before the domain exists: a check). */
static int plan_devices(const struct xlcfg *cfg, const char *file, uint32_t domid,
                        struct devices_resolver *res, struct devplan **plan, char *err,
                        size_t errlen)
{
    struct devplan_opts o = {.domid = domid, .resolve = devices_resolve, .arg = res};

    return devplan_build(cfg, file, &o, plan, err, errlen);
}

static int create_domain(const char *file)
{
    static uint8_t buf[HVW_MAX_MSG];
    struct hvw_dom_create_req *r = (struct hvw_dom_create_req *)buf;
    struct hvw_domid_req dr = {0};
    struct devices_resolver res = {0};
    struct devplan *plan = NULL;
    struct hvw_dominfo info;
    struct xs_handle *xs = NULL;
    struct xlcfg cfg;
    struct hvc h;
    char err[2048] = "";
    size_t room = sizeof(buf) - sizeof(struct hvw_hdr) - sizeof(*r), n, m;
    bool created = false;
    int rc = 1, hrc;

    if (domcfg_read(&cfg, file, err, sizeof(err)) != 0) {
        errorf("%s", err);
        return 1;
    }
    if (hvc_open(&h, false) != 0)
        goto out_cfg;
    if ((xs = xsdom_open(false)) == NULL)
        goto out;
    res.h = &h;
    res.xs = xs;
    /* Every device is checked before anything is made: a bad one changes nothing. */
    if (plan_devices(&cfg, file, HVW_DOMID_MAX, &res, &plan, err, sizeof(err)) != 0 ||
        devices_check_targets(plan, file, err, sizeof(err)) != 0)
        goto fail;
    for (size_t i = 0; cfg.driver_domain && i < cfg.nstorage; i++) {
        struct stat st;
        const char *why = stat(cfg.storage[i], &st) != 0 ? strerror(errno)
                          : !S_ISDIR(st.st_mode)          ? "not a directory"
                                                          : NULL;
        if (why != NULL) {
            snprintf(err, sizeof(err), "%s: bulkhead_storage %s: %s: create it (mkdir -p %s) or "
                     "name another directory", file, cfg.storage[i], why, cfg.storage[i]);
            goto fail;
        }
    }
    if (cfg.driver_domain && plan->n > 0) {
        snprintf(err, sizeof(err), "%s: %s is a driver domain: it serves devices, give them to "
                 "guests (backend=%s)", file, cfg.name, cfg.name);
        goto fail;
    }
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", cfg.name);
    r->memory_kb = (uint64_t)cfg.maxmem_mb * 1024;
    r->vcpus = (uint32_t)cfg.vcpus;
    r->flags = cfg.driver_domain ? HVW_DOM_DRIVER : 0;
    r->max_grant_frames = (uint32_t)cfg.max_grant_frames;
    r->max_evtchn_ports = (uint32_t)cfg.max_event_channels;
    if ((n = put_argv(r, room, &cfg, plan->n, err, sizeof(err))) == 0 ||
        (m = put_env(r->strings + n, room - n)) == 0) {
        if (err[0] == '\0')
            snprintf(err, sizeof(err), "%s: bulkhead_init is too long", file);
        goto fail;
    }
    r->envc = 3;
    r->strings_len = (uint32_t)(n + m);
    devplan_free(plan);
    plan = NULL;
    hrc = hvc_call(&h, HVW_OP_DOM_CREATE, r, sizeof(*r) + n + m, &info, sizeof(info), NULL);
    if (hrc == EEXIST) {
        snprintf(err, sizeof(err), "%s: a domain named %s exists already: destroy it or rename "
                 "this one", file, cfg.name);
        goto fail;
    }
    if (hrc != 0) {
        snprintf(err, sizeof(err), "%s: cannot create %s: %s (see %s/hv.log)", file, cfg.name,
                 strerror(hrc > 0 ? hrc : errno), state_dir);
        goto fail;
    }
    created = true;
    dr.domid = info.domid;
    if (xenstore_add(&h, &info, &cfg, file) != 0) {
        created = false; /* xenstore_add destroyed it */
        goto out;
    }
    if (cfg.driver_domain) {
        if (devices_driver_domain(&h, xs, info.domid, &cfg, err, sizeof(err)) != 0)
            goto fail;
    } else {
        unsigned int queues = cfg.vcpus < 1 ? 1 : cfg.vcpus > 8 ? 8 : (unsigned int)cfg.vcpus;
        if (plan_devices(&cfg, file, info.domid, &res, &plan, err, sizeof(err)) != 0 ||
            devices_attach(&h, xs, info.domid, plan, queues, err, sizeof(err)) != 0)
            goto fail;
        if (plan->n > 0 && devices_wait(xs, plan, connect_timeout_ms(), err, sizeof(err)) != 0) {
            char why[2048];
            snprintf(why, sizeof(why), "%s: %s: %s (the backends' side is in %s/console/)", file,
                     cfg.name, err, state_dir);
            snprintf(err, sizeof(err), "%s", why);
            goto fail;
        }
    }
    /* What restart builds the driver domain again from, whatever becomes of file. */
    if (cfg.driver_domain && config_keep(file, cfg.name, err, sizeof(err)) != 0)
        fprintf(stderr, "bulkhead: %s: %s ('bulkhead restart %s' will not work)\n", file, err,
                cfg.name);
    if (cfg.noted[0] != '\0')
        fprintf(stderr, "bulkhead: %s: noted and not used (no kernel boots in the simulation): "
                        "%s\n", file, cfg.noted);
    printf("Created %s%s %s (id %u)", cfg.driver_domain ? "driver " : "", "domain", cfg.name,
           info.domid);
    if (plan != NULL && plan->n > 0)
        printf(", %zu device%s connected", plan->n, plan->n == 1 ? "" : "s");
    printf("\n");
    rc = 0;
    goto out;
fail:
    errorf("%s", err);
    if (created) {
        /* A create that fails leaves nothing behind: devices, domain, nodes. */
        devices_remove(xs, info.domid, 2000);
        hvc_call(&h, HVW_OP_DOM_DESTROY, &dr, sizeof(dr), NULL, 0, NULL);
        xsdom_release(xs, info.domid);
    }
out:
    devplan_free(plan);
    devices_resolver_fini(&res);
    if (xs != NULL)
        xs_close(xs);
    hvc_close(&h);
out_cfg:
    xlcfg_free(&cfg);
    return rc;
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
    char uplink[16] = "";
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
    /* As libxl: its devices first (backends told, given a grace to close), then the domain. */
    if ((xs = xsdom_open(true)) != NULL) {
        char path[64], *v;
        unsigned int len;
        snprintf(path, sizeof(path), "/libxl/%u/bulkhead/uplink", info.domid);
        if ((v = xs_read(xs, XBT_NULL, path, &len)) != NULL && v[0] != '\0')
            devices_uplink_peer_name(info.name, uplink, sizeof(uplink));
        free(v);
        int stuck = devices_remove(xs, info.domid, DESTROY_DEVICE_GRACE_MS);
        if (stuck > 0)
            fprintf(stderr, "bulkhead: %s: %d backend%s did not close within %d s; removed "
                            "anyway\n", argv[1], stuck, stuck == 1 ? "" : "s",
                    DESTROY_DEVICE_GRACE_MS / 1000);
        xs_close(xs);
    }
    rc = hvc_call(&h, HVW_OP_DOM_DESTROY, &r, sizeof(r), NULL, 0, NULL);
    hvc_close(&h);
    if (rc != 0) {
        errorf("cannot destroy %s: %s", argv[1], strerror(rc > 0 ? rc : errno));
        return 1;
    }
    /*
     * A driver domain's uplink goes with its namespace, in the background:
     * once destroy returns, a domain of the same name can be made again.
     */
    if (uplink[0] != '\0' && dom0_link_wait_gone(uplink, DESTROY_DEVICE_GRACE_MS) != 0)
        fprintf(stderr, "bulkhead: %s: its uplink %s is still in dom0's namespace: remove it "
                        "(ip link del %s) before creating %s again\n", argv[1], uplink, uplink,
                argv[1]);
    /* As libxl does once the domain is gone: release it and remove its nodes. */
    if ((xs = xsdom_open(true)) != NULL) {
        xsdom_release(xs, info.domid);
        xs_close(xs);
    }
    return 0;
}

void print_json_string(const char *s)
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
    struct hvw_dom_list_rsp *l;
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    struct hvc h;
    int rc;

    if (argc > 2 || (argc == 2 && !json)) {
        errorf("usage: bulkhead list [--json]");
        return 2;
    }
    if (hvc_open(&h, false) != 0)
        return 1;
    rc = hvc_dom_list(&h, &l);
    hvc_close(&h);
    if (rc != 0) {
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

/*
 * info: the simulated hypervisor's own counters, as `xl info` shows Xen's:
 * what is alive now (domains, channels, grant frames and mappings, ports,
 * broker registrations) and what it costs (fds, memory).  Leak tests
 * compare two of them.
 */
int cmd_info(int argc, char **argv)
{
    struct hvw_stats_rsp st;
    bool json = argc == 2 && strcmp(argv[1], "--json") == 0;
    struct hvc h;
    size_t n;
    int rc;

    if (argc > 2 || (argc == 2 && !json)) {
        errorf("usage: bulkhead info [--json]");
        return 2;
    }
    if (hvc_open(&h, false) != 0)
        return 1;
    rc = hvc_call(&h, HVW_OP_STATS, NULL, 0, &st, sizeof(st), &n);
    hvc_close(&h);
    if (rc != 0 || n < sizeof(st)) {
        errorf("cannot read bulkhead-hv's counters: %s", strerror(rc > 0 ? rc : errno));
        return 1;
    }
    if (json)
        printf("{\"domains\": %u, \"channels\": %u, \"grant_frames\": %u, \"mappings\": %u, "
               "\"ports\": %u, \"open_fds\": %u, \"stored_frames\": %u, "
               "\"broker_registrations\": %u, \"kept_descriptions\": %u, \"rss_kb\": %llu, "
               "\"heap_kb\": %llu}\n",
               st.domains, st.channels, st.frames, st.mappings, st.ports, st.open_fds, st.stored,
               st.brk_regs, st.kept, (unsigned long long)st.rss_kb, (unsigned long long)st.heap_kb);
    else
        printf("domains              : %u\n"
               "hypercall channels   : %u\n"
               "grant frames         : %u\n"
               "grant mappings       : %u\n"
               "event-channel ports  : %u\n"
               "open fds             : %u\n"
               "stored frames        : %u\n"
               "broker registrations : %u\n"
               "kept descriptions    : %u (of the open fds: grant pages kept for maps)\n"
               "rss (KiB)            : %llu\n"
               "heap (KiB)           : %llu\n",
               st.domains, st.channels, st.frames, st.mappings, st.ports, st.open_fds, st.stored,
               st.brk_regs, st.kept, (unsigned long long)st.rss_kb, (unsigned long long)st.heap_kb);
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
    char err[512], *envbuf = NULL, **envp;
    int rc, status;

    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        errorf("usage: bulkhead exec NAME|ID -- COMMAND [ARG]...");
        return 2;
    }
    if (hvc_lookup(argv[1], &info) != 0)
        return 1;
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

/*
 * bulkhead upgrade DOMAIN [--binary PATH]: a new bulkhead-drvdom takes over
 * every device the domain's workers serve, with no state change the
 * frontends can see (bulkhead-drvdom(8), UPGRADE).  dom0 runs the new
 * binary with --upgrade inside the driver domain's namespaces, as its root
 * and with its environment, the way exec runs a guest's command: the
 * driver domain itself never execs.  For dom0's own devices it runs here.
 */
int cmd_upgrade(int argc, char **argv)
{
    struct hvw_dominfo info;
    char prog[4096], top[4096], err[1024], *envbuf = NULL, **envp;
    char cfgpath[4200], num[XLCFG_DRV_NOPTS][24];
    const char *args[3 + 2 * XLCFG_DRV_NOPTS] = {NULL};
    const char *binary = NULL;
    struct xlcfg cfg;
    size_t nargs = 2;
    int rc, status;

    if (argc == 4 && strcmp(argv[2], "--binary") == 0)
        binary = argv[3];
    else if (argc != 2) {
        errorf("usage: bulkhead upgrade NAME|ID [--binary PATH]");
        return 2;
    }
    if (binary != NULL) {
        if (binary[0] != '/' || access(binary, X_OK) != 0) {
            errorf("--binary %s: give the absolute path of an executable bulkhead-drvdom (%s)",
                   binary, binary[0] != '/' ? "not absolute" : strerror(errno));
            return 2;
        }
        snprintf(prog, sizeof(prog), "%s", binary);
    } else if (find_prog("bulkhead-drvdom", "BULKHEAD_DRVDOM", prog, sizeof(prog), top,
                         sizeof(top)) != 0) {
        errorf("cannot find bulkhead-drvdom: install Bulkhead ('make install'), set "
               "BULKHEAD_DRVDOM, or give --binary");
        return 1;
    }
    if (hvc_lookup(argv[1], &info) != 0)
        return 1;
    args[0] = prog;
    args[1] = "--upgrade";
    /*
     * The new workers run with the tunables the domain was created with
     * (its config's bulkhead_*_us/_ms, kept at create): an upgrade changes
     * the code, not the settings.  A domain created before configs were
     * kept has none to read and gets the defaults, as its daemon did.
     */
    info.name[sizeof(info.name) - 1] = '\0';
    config_kept_path(info.name, cfgpath, sizeof(cfgpath));
    if (info.domid != 0 && access(cfgpath, F_OK) == 0) {
        if (xlcfg_read(&cfg, cfgpath, NULL, 0, err, sizeof(err)) != 0) {
            errorf("%s (the copy of %s's config kept at create): fix or remove it", err, argv[1]);
            return 1;
        }
        nargs += xlcfg_drvdom_args(&cfg, num, args + nargs);
        xlcfg_free(&cfg);
    }
    args[nargs] = NULL;
    if (info.domid == 0) {
        pid_t pid;
        fflush(stdout);
        if ((pid = fork()) == 0) {
            /* Where bulkhead up runs dom0's bulkhead-drvdom: its keepers' sockets are there. */
            char why[4200];
            if (dom0_enter(why, sizeof(why)) != 0) {
                errorf("%s", why);
                _exit(127);
            }
            execv(prog, (char **)args);
            errorf("cannot run %s: %s", prog, strerror(errno));
            _exit(127);
        }
        if (pid < 0 || waitpid(pid, &status, 0) != pid) {
            errorf("cannot run %s: %s", prog, strerror(errno));
            return 1;
        }
    } else {
        if (!(info.flags & HVW_DOM_DRIVER)) {
            errorf("%s is not a driver domain: only a driver domain's workers can be upgraded",
                   argv[1]);
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
        rc = dombuild_exec((pid_t)info.pid, (char **)args, envp, &status, err, sizeof(err));
        free(envp);
        free(envbuf);
        if (rc != 0) {
            errorf("%s: %s (is %s visible inside the driver domain?)", argv[1], err, prog);
            return 1;
        }
    }
    if (WIFSIGNALED(status)) {
        errorf("%s: bulkhead-drvdom --upgrade was killed by signal %d", argv[1], WTERMSIG(status));
        return 1;
    }
    return WEXITSTATUS(status);
}
