/*
 * cmd_tcb.c - bulkhead tcb: what a guest's backends can reach, in the
 * driver-domain placement and in the stock-dom0 placement, side by side.
 *
 * The same backends (bulkhead-drvdom) run in both.  In the stock placement
 * they are dom0's own device daemon (`bulkhead up` starts it): host root,
 * no filter, beside the daemons dom0 runs as root.  In the driver-domain
 * placement they run in a domain of their own, confined (confine.c in
 * driverdom/).  For each placement:
 *
 *   lines of code  our .c files in the programs that run with the
 *                  backends' rights, counted at build time from
 *                  Makefile.am's source lists (scripts/tcb-sources):
 *                  driver domain = bulkhead-drvdom and the domain's init
 *                  (hv/dominit.c); stock dom0 = bulkhead-drvdom and the
 *                  daemons beside it in dom0 (bulkhead-hv, its broker,
 *                  bulkhead-xenstored), which a backend running as host
 *                  root can take over;
 *   libraries      each shared object mapped into a running drvdom main
 *                  process (/proc/PID/maps, opened through map_files:
 *                  a confined process's paths lead nowhere from dom0), or
 *                  else what ldd lists for the binary, with the size of
 *                  its executable segments (PT_LOAD with PF_X, p_memsz);
 *   syscalls       bulkhead-drvdom --print-policy's list; all of the
 *                  architecture's where no filter runs;
 *   io_uring ops   likewise, against every operation the kernel headers
 *                  know;
 *   capabilities   the union of CapEff and CapPrm over the placement's
 *                  running drvdom processes, a driver domain's init
 *                  included (/proc/PID/status), and whether
 *                  each has NoNewPrivs and a seccomp filter; unknown when
 *                  none runs.
 * `bulkhead bench` runs `bulkhead tcb --json`: keep the JSON's keys.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "toolstack.h"

struct tcb_src {
    const char *file;
    unsigned int lines;
};
#include "tcb_sources.h"

#define MAX_LIBS  48
#define MAX_NAMES 256

struct lib {
    char name[128];
    unsigned long long text; /* bytes in executable segments */
};

struct placement {
    const char *name;  /* "driver-domain", "stock-dom0" */
    const char *title; /* column heading */
    const struct tcb_src *const *srcs;
    unsigned long lines;
    pid_t pid; /* its running drvdom main process, 0: none */
    struct lib libs[MAX_LIBS];
    unsigned int nlibs;
    unsigned long long libtext;
    bool filtered;                  /* runs under the seccomp allowlist */
    unsigned int nsys, nops;        /* allowed */
    char *sys[MAX_NAMES], *ops[32]; /* when filtered */
    unsigned int nprocs;            /* running drvdom processes looked at */
    unsigned long long caps;        /* CapEff | CapPrm, union */
    bool all_nnp, all_seccomp;
    const char *libsrc; /* "maps", "ldd" */
};

static const struct tcb_src *const drvdom_srcs[] = {tcb_drvdom, tcb_dominit, NULL};
static const struct tcb_src *const dom0_srcs[] = {tcb_drvdom, tcb_dom0, NULL};

static unsigned long count_lines(const struct tcb_src *const *sets)
{
    unsigned long n = 0;

    /* A file in two sets (hv/daemon.c is in drvdom and in both daemons) counts once. */
    for (size_t i = 0; sets[i] != NULL; i++)
        for (const struct tcb_src *s = sets[i]; s->file != NULL; s++) {
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++)
                for (const struct tcb_src *t = sets[j]; t->file != NULL; t++)
                    if (strcmp(t->file, s->file) == 0)
                        seen = true;
            if (!seen)
                n += s->lines;
        }
    return n;
}

/* ---- executable segments of an ELF file ---- */

static unsigned long long elf_text(int fd)
{
    Elf64_Ehdr eh;
    unsigned long long sum = 0;

    if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 64)
        return 0;
    for (unsigned int i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) != (ssize_t)sizeof(ph))
            return 0;
        if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X))
            sum += ph.p_memsz;
    }
    return sum;
}

static void add_lib(struct placement *p, const char *path, int fd)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;

    for (unsigned int i = 0; i < p->nlibs; i++)
        if (strcmp(p->libs[i].name, base) == 0)
            return;
    if (p->nlibs == MAX_LIBS)
        return;
    snprintf(p->libs[p->nlibs].name, sizeof(p->libs[0].name), "%s", base);
    p->libs[p->nlibs].text = elf_text(fd);
    p->libtext += p->libs[p->nlibs].text;
    p->nlibs++;
}

/* The shared objects a running process has mapped executable (the program itself excluded). */
static void libs_from_maps(struct placement *p)
{
    char path[64], line[4200], exe[4096] = "";
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/exe", (int)p->pid);
    if (readlink(path, exe, sizeof(exe) - 1) < 0)
        exe[0] = '\0';
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)p->pid);
    p->libsrc = "maps";
    if ((f = fopen(path, "re")) == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        char range[64], perms[8], file[4096] = "", mf[128];
        int fd;
        if (sscanf(line, "%63s %7s %*s %*s %*s %4095[^\n]", range, perms, file) < 3 ||
            perms[2] != 'x' || file[0] != '/' || strstr(file, ".so") == NULL)
            continue;
        snprintf(mf, sizeof(mf), "/proc/%d/map_files/%s", (int)p->pid, range);
        if ((fd = open(mf, O_RDONLY | O_CLOEXEC)) < 0 &&
            (fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
            continue;
        add_lib(p, file, fd);
        close(fd);
    }
    fclose(f);
}

/* What ldd says the binary loads, when no drvdom runs. */
static void libs_from_ldd(struct placement *p, const char *prog)
{
    char cmd[4200], line[4200];
    FILE *f;

    snprintf(cmd, sizeof(cmd), "ldd '%s' 2>/dev/null", prog);
    p->libsrc = "ldd";
    if (strchr(prog, '\'') != NULL || (f = popen(cmd, "r")) == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *s = strstr(line, "=> /"), *e;
        int fd;
        s = s != NULL ? s + 3 : strchr(line, '/');
        if (s == NULL || (e = strstr(s, " (")) == NULL)
            continue;
        *e = '\0';
        if ((fd = open(s, O_RDONLY | O_CLOEXEC)) < 0)
            continue;
        add_lib(p, s, fd);
        close(fd);
    }
    pclose(f);
}

/* ---- processes ---- */

static bool status_field(pid_t pid, const char *key, char *out, size_t size)
{
    char path[64], line[256];
    size_t n = strlen(key);
    bool found = false;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if ((f = fopen(path, "re")) == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            snprintf(out, size, "%s", line + n + 1 + strspn(line + n + 1, " \t"));
            out[strcspn(out, "\n")] = '\0';
            found = true;
        }
    fclose(f);
    return found;
}

/*
 * A driver domain's init (hv/dominit.c) counts with its processes: it runs
 * as the domain's uid, confined too, with an allowlist that is a subset of
 * bulkhead-drvdom's (`bulkhead-hv --domain-init --print-policy`), so the
 * syscalls reported hold for it as well.  dom0 has no such init: owner()
 * matches it only by a driver domain's uid.
 */
static bool is_drvdom_comm(const char *comm)
{
    return strcmp(comm, "bulkhead-drvdom") == 0 || strncmp(comm, "bhk-", 4) == 0 ||
           strncmp(comm, "bhw-", 4) == 0 || strcmp(comm, "domain-init") == 0;
}

/* Which processes are this simulation's (other simulations may run beside it). */
struct ours {
    uid_t uids[64]; /* the driver domains' uids, from bulkhead-hv */
    unsigned int nuids;
    pid_t devd; /* dom0's bulkhead-drvdom, from its pid file */
};

static pid_t ppid_of(pid_t pid)
{
    char v[32];

    return status_field(pid, "PPid", v, sizeof(v)) ? (pid_t)strtol(v, NULL, 10) : 0;
}

static struct placement *owner(const struct ours *o, pid_t pid, uid_t uid, struct placement *dd,
                               struct placement *d0)
{
    for (unsigned int i = 0; i < o->nuids; i++)
        if (o->uids[i] == uid)
            return dd;
    /* dom0's devd, its keepers, their workers */
    if (uid == 0 && o->devd > 0 &&
        (pid == o->devd || ppid_of(pid) == o->devd || ppid_of(ppid_of(pid)) == o->devd))
        return d0;
    return NULL;
}

static void find_ours(struct ours *o)
{
    struct hvw_dom_list_rsp *l;
    char path[4200];
    struct hvc h;
    FILE *f;

    memset(o, 0, sizeof(*o));
    snprintf(path, sizeof(path), "%s/drvdom.pid", state_dir);
    if ((f = fopen(path, "re")) != NULL) {
        long v;
        if (fscanf(f, "%ld", &v) == 1 && v > 0)
            o->devd = (pid_t)v;
        fclose(f);
    }
    if (hvc_open(&h, true) != 0)
        return; /* the simulation is down: nothing of ours runs */
    if (hvc_dom_list(&h, &l) == 0)
        for (uint32_t i = 0; i < l->count && o->nuids < 64; i++)
            if (l->doms[i].flags & HVW_DOM_DRIVER)
                o->uids[o->nuids++] = l->doms[i].uid;
    hvc_close(&h);
}

/*
 * Every drvdom process (main, keepers, workers) of this simulation: dom0's
 * devd and its children, and whatever runs as a driver domain's uid.  The
 * first main process found of each placement is the one whose libraries
 * are listed.
 */
static void scan_procs(struct placement *dd, struct placement *d0)
{
    struct ours o;

    DIR *d = opendir("/proc");
    struct dirent *e;

    find_ours(&o);
    dd->all_nnp = dd->all_seccomp = d0->all_nnp = d0->all_seccomp = true;
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char path[300], comm[32] = "", v[64];
        pid_t pid = (pid_t)strtol(e->d_name, NULL, 10);
        struct placement *p;
        struct stat st;
        FILE *f;
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        if ((f = fopen(path, "re")) == NULL)
            continue;
        if (fgets(comm, sizeof(comm), f) == NULL)
            comm[0] = '\0';
        fclose(f);
        comm[strcspn(comm, "\n")] = '\0';
        snprintf(path, sizeof(path), "/proc/%d", (int)pid);
        if (!is_drvdom_comm(comm) || stat(path, &st) != 0)
            continue;
        if ((p = owner(&o, pid, st.st_uid, dd, d0)) == NULL)
            continue;
        if (p->pid == 0 && strcmp(comm, "bulkhead-drvdom") == 0)
            p->pid = pid;
        p->nprocs++;
        if (status_field(pid, "CapEff", v, sizeof(v)))
            p->caps |= strtoull(v, NULL, 16);
        if (status_field(pid, "CapPrm", v, sizeof(v)))
            p->caps |= strtoull(v, NULL, 16);
        if (!status_field(pid, "NoNewPrivs", v, sizeof(v)) || strcmp(v, "1") != 0)
            p->all_nnp = false;
        if (!status_field(pid, "Seccomp", v, sizeof(v)) || strcmp(v, "2") != 0)
            p->all_seccomp = false;
    }
    closedir(d);
}

/* ---- policies ---- */

static int read_policy(struct placement *p, const char *prog)
{
    char cmd[4200], line[512];
    FILE *f;

    snprintf(cmd, sizeof(cmd), "'%s' --print-policy", prog);
    if (strchr(prog, '\'') != NULL || (f = popen(cmd, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "syscall ", 8) == 0 && p->nsys < MAX_NAMES)
            p->sys[p->nsys++] = strdup(line + 8);
        else if (strncmp(line, "io_uring ", 9) == 0 && p->nops < 32)
            p->ops[p->nops++] = strdup(line + 9);
    }
    return pclose(f) == 0 && p->nsys > 0 ? 0 : -1;
}

static unsigned int arch_syscalls(void)
{
    unsigned int n = 0;

    for (int nr = 0; nr < 1024; nr++) {
        char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        n += s != NULL;
        free(s);
    }
    return n;
}

/* ---- output ---- */

static unsigned int bits(unsigned long long v)
{
    return (unsigned int)__builtin_popcountll(v);
}

static void json_placement(const struct placement *p, bool last)
{
    printf("    {\"name\": \"%s\", \"pid\": %d, \"running_processes\": %u,\n", p->name, (int)p->pid,
           p->nprocs);
    printf("     \"libraries_from\": \"%s\",\n", p->libsrc != NULL ? p->libsrc : "none");
    printf("     \"lines_of_code\": %lu, \"sources\": [", p->lines);
    for (size_t i = 0, k = 0; p->srcs[i] != NULL; i++)
        for (const struct tcb_src *s = p->srcs[i]; s->file != NULL; s++, k++) {
            printf("%s{\"file\": ", k ? ", " : "");
            print_json_string(s->file);
            printf(", \"lines\": %u}", s->lines);
        }
    printf("],\n     \"library_text_bytes\": %llu, \"libraries\": [", p->libtext);
    for (unsigned int i = 0; i < p->nlibs; i++) {
        printf("%s{\"name\": ", i ? ", " : "");
        print_json_string(p->libs[i].name);
        printf(", \"text_bytes\": %llu}", p->libs[i].text);
    }
    printf("],\n     \"seccomp\": %s, \"syscalls_allowed\": %u, \"syscalls\": [",
           p->filtered ? "true" : "false", p->nsys);
    for (unsigned int i = 0; p->filtered && i < p->nsys; i++) {
        printf("%s", i ? ", " : "");
        print_json_string(p->sys[i]);
    }
    printf("],\n     \"io_uring_ops_allowed\": %u, \"io_uring_ops\": [", p->nops);
    for (unsigned int i = 0; p->filtered && i < p->nops; i++) {
        printf("%s", i ? ", " : "");
        print_json_string(p->ops[i]);
    }
    printf("],\n     \"capabilities\": ");
    if (p->nprocs == 0)
        printf("null, \"no_new_privs\": null, \"seccomp_mode2\": null}");
    else
        printf("{\"held\": %u, \"mask\": \"%016llx\"}, \"no_new_privs\": %s, "
               "\"seccomp_mode2\": %s}",
               bits(p->caps), p->caps, p->all_nnp ? "true" : "false",
               p->all_seccomp ? "true" : "false");
    printf("%s\n", last ? "" : ",");
}

static void text_row_u(const char *what, unsigned long long a, unsigned long long b)
{
    printf("%-30s %20llu %20llu\n", what, a, b);
}

static void text_out(const struct placement *dd, const struct placement *d0, const char *source)
{
    char a[64], b[64];

    printf("%-30s %20s %20s\n", "", dd->title, d0->title);
    text_row_u("our lines of code", dd->lines, d0->lines);
    text_row_u("shared library text (bytes)", dd->libtext, d0->libtext);
    for (unsigned int i = 0; i < dd->nlibs || i < d0->nlibs; i++) {
        const struct lib *l = i < dd->nlibs ? &dd->libs[i] : &d0->libs[i];
        const struct lib *o = NULL;
        const struct placement *other = i < dd->nlibs ? d0 : dd;
        char name[160];
        if (i >= dd->nlibs) { /* listed under the driver domain already if it has it */
            bool dup = false;
            for (unsigned int j = 0; j < dd->nlibs; j++)
                dup = dup || strcmp(dd->libs[j].name, l->name) == 0;
            if (dup)
                continue;
        }
        for (unsigned int j = 0; j < other->nlibs; j++)
            if (strcmp(other->libs[j].name, l->name) == 0)
                o = &other->libs[j];
        snprintf(name, sizeof(name), "  %s", l->name);
        snprintf(a, sizeof(a), "%llu", i < dd->nlibs ? l->text : (o ? o->text : 0));
        snprintf(b, sizeof(b), "%llu", i < dd->nlibs ? (o ? o->text : 0) : l->text);
        printf("%-30s %20s %20s\n", name, a, b);
    }
    snprintf(a, sizeof(a), "%u", dd->nsys);
    snprintf(b, sizeof(b), d0->filtered ? "%u" : "all (%u)", d0->nsys);
    printf("%-30s %20s %20s\n", "syscalls allowed", dd->filtered ? a : "all", b);
    snprintf(a, sizeof(a), "%u", dd->nops);
    snprintf(b, sizeof(b), d0->filtered ? "%u" : "all (%u)", d0->nops);
    printf("%-30s %20s %20s\n", "io_uring operations allowed", a, b);
    for (int k = 0; k < 2; k++) {
        const struct placement *p = k ? d0 : dd;
        char *out = k ? b : a;
        if (p->nprocs == 0)
            snprintf(out, sizeof(a), "not running");
        else
            snprintf(out, sizeof(a), "%u", bits(p->caps));
    }
    printf("%-30s %20s %20s\n", "capabilities held", a, b);
    printf("(libraries: %s; lines: our .c files, see bulkhead(1))\n", source);
}

int cmd_tcb(int argc, char **argv)
{
    struct placement dd = {.name = "driver-domain", .title = "driver domain", .srcs = drvdom_srcs},
                     d0 = {.name = "stock-dom0", .title = "stock dom0", .srcs = dom0_srcs};
    char prog[4096], top[4096];
    const char *source;
    bool json = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            errorf("tcb: unexpected argument '%s': the only option is --json", argv[i]);
            return 2;
        }
    }
    if (find_prog("bulkhead-drvdom", "BULKHEAD_DRVDOM", prog, sizeof(prog), top, sizeof(top)) !=
        0) {
        errorf("cannot find bulkhead-drvdom: install Bulkhead ('make install') or set "
               "BULKHEAD_DRVDOM");
        return 1;
    }
    dd.lines = count_lines(dd.srcs);
    d0.lines = count_lines(d0.srcs);
    if (read_policy(&dd, prog) != 0) {
        errorf("%s --print-policy gave no policy: rebuild Bulkhead (make), or set "
               "BULKHEAD_DRVDOM to this version's bulkhead-drvdom",
               prog);
        return 1;
    }
    dd.filtered = true;
    d0.nsys = arch_syscalls();
    d0.nops = IORING_OP_LAST;
    scan_procs(&dd, &d0);
    if (dd.pid != 0 || d0.pid != 0) {
        source = "mapped by the running bulkhead-drvdom";
        /* A placement not running now loads what the other one does: same binary. */
        struct placement *run = dd.pid != 0 ? &dd : &d0;
        libs_from_maps(run);
        if (dd.pid != 0 && d0.pid != 0)
            libs_from_maps(&d0);
        else
            libs_from_ldd(run == &dd ? &d0 : &dd, prog);
    } else {
        source = "from ldd (no bulkhead-drvdom running)";
        libs_from_ldd(&dd, prog);
        libs_from_ldd(&d0, prog);
    }
    if (json) {
        printf("{\"placements\": [\n");
        json_placement(&dd, false);
        json_placement(&d0, true);
        printf(" ]}\n");
    } else {
        text_out(&dd, &d0, source);
    }
    for (unsigned int i = 0; i < dd.nsys; i++)
        free(dd.sys[i]);
    for (unsigned int i = 0; i < dd.nops; i++)
        free(dd.ops[i]);
    return 0;
}
