/*
 * upgrade.c - bulkhead-drvdom --upgrade: the worker-only mode, in which a
 * new binary takes every device of this driver domain over from the
 * running workers, without the frontends seeing anything.
 *
 * dom0 starts it inside the driver domain's namespaces (`bulkhead upgrade`):
 * the driver domain itself never execs.  It finds the keepers by their
 * abstract sockets (handover.h) in /proc/net/unix, which lists this network
 * namespace's, and forks one process per keeper.  Each checks the keeper's
 * offer against its own layout (KEEP_VERSION, the sizes, the driver): a
 * different one is refused with one line, and the old worker serves on.
 * Otherwise it asks for the device, gets the kept-state memfd, the domain's
 * log and the broker's fds once the old worker stopped, checks the layout
 * written in the memfd itself, and runs worker_main on it as a worker
 * restarted by its keeper would.  The first process reports each device and
 * exits once every one has been taken over or refused; the workers live on
 * in the domain, their stderr the keeper's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drvdom.h"
#include "handover.h"

#define UPGRADE_MAX_KEEPERS 256
#define GO_WAIT_MS          90000 /* the keeper waits up to 30 s for the old worker, then kills it */

/* The abstract names of this namespace's keepers, from /proc/net/unix. */
static unsigned int find_keepers(char names[][108], unsigned int max)
{
    FILE *f = fopen("/proc/net/unix", "re");
    char line[512];
    unsigned int n = 0;

    if (f == NULL) {
        logline("cannot read /proc/net/unix: %s (is /proc mounted in the driver domain?)",
                strerror(errno));
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL && n < max) {
        char *p = strstr(line, " @" HO_SOCK_PREFIX);
        size_t len;
        bool dup = false;
        if (p == NULL)
            continue;
        p += 2;
        len = strcspn(p, " \n");
        if (len == 0 || len >= sizeof(names[0]))
            continue;
        /* A listening socket and its accepted connections share the name: once each. */
        for (unsigned int i = 0; i < n && !dup; i++)
            dup = strncmp(names[i], p, len) == 0 && names[i][len] == '\0';
        if (!dup) {
            memcpy(names[n], p, len);
            names[n++][len] = '\0';
        }
    }
    fclose(f);
    return n;
}

static int ho_recv(int fd, int ms, unsigned int allowed, struct ho_msg *m, int *fds,
                   unsigned int *nfds, char *why, size_t whylen)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * HO_MAX_FDS)];
        struct cmsghdr align;
    } u;
    unsigned char buf[sizeof(*m) + 1];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    ssize_t n;
    int rc;

    *nfds = 0;
    while ((rc = poll(&pf, 1, ms)) < 0 && errno == EINTR)
        ;
    if (rc == 0) {
        snprintf(why, whylen, "the keeper did not answer in %d ms", ms);
        return -1;
    }
    while ((n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (n <= 0) {
        snprintf(why, whylen, "the keeper closed the connection%s%s", n < 0 ? ": " : "",
                 n < 0 ? strerror(errno) : "");
        return -1;
    }
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int f;
                memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
                if (*nfds < HO_MAX_FDS)
                    fds[(*nfds)++] = f;
                else
                    close(f);
            }
        }
    if (ho_check(buf, (size_t)n, allowed, m, why, whylen) != 0)
        goto bad;
    /* Descriptors come with GO alone, as many as it says. */
    if ((m->type == HO_GO) != (*nfds > 0) || (m->type == HO_GO && m->nfds != *nfds)) {
        snprintf(why, whylen, "the keeper's message of type %u came with %u descriptors", m->type,
                 *nfds);
        goto bad;
    }
    return 0;
bad:
    for (unsigned int i = 0; i < *nfds; i++)
        close(fds[i]);
    *nfds = 0;
    return -1;
}

static void send_msg(int fd, const struct ho_msg *m)
{
    (void)send(fd, m, sizeof(*m), MSG_NOSIGNAL);
}

/*
 * One device: connects to the keeper at name, and, if the layout is ours,
 * serves it until it ends.  Writes one line on report (the first process's
 * pipe) before serving or on failing.  Never returns.
 */
__attribute__((noreturn)) static void take_one(const char *name, int report)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct ho_msg m, offer;
    const struct bhdrv *drv;
    struct bhacquired acq;
    struct devref ref = {0};
    struct keep *k;
    char why[240] = "", line[400];
    int fd, fds[HO_MAX_FDS], rc, devnull;
    unsigned int nfds = 0;
    socklen_t len;
    struct stat st;

    snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "%s", name);
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
    if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, len) != 0) {
        snprintf(line, sizeof(line), "@%s: cannot connect: %s\n", name, strerror(errno));
        goto fail;
    }
    if (ho_recv(fd, GO_WAIT_MS, HO_BIT(HO_OFFER), &offer, fds, &nfds, why, sizeof(why)) != 0) {
        snprintf(line, sizeof(line), "@%s: %s\n", name, why);
        goto fail;
    }
    snprintf(ref.backend_kind, sizeof(ref.backend_kind), "%s", offer.backend_kind);
    ref.frontend_domid = offer.frontend_domid;
    ref.devid = offer.devid;
    ref.backend_domid = offer.backend_domid;
    devref_name(&ref, line, sizeof(line));
    drv = bhdrv_find(ref.backend_kind);
    m = (struct ho_msg){.magic = HO_MAGIC, .proto = HO_PROTO, .type = HO_REFUSE};
    if (drv == NULL)
        snprintf(m.text, sizeof(m.text), "this binary has no driver for backend kind %s",
                 ref.backend_kind);
    else if (offer.layout != KEEP_VERSION || offer.header_size != sizeof(struct keep) ||
             offer.kept_size != drv->kept_size || strcmp(offer.drv, drv->name) != 0)
        snprintf(m.text, sizeof(m.text),
                 "kept-state layout %u (%u + %u bytes, %s) is not this binary's %u (%zu + %zu, "
                 "%s): upgrade to a binary of the same layout, or restart the driver domain",
                 offer.layout, offer.header_size, offer.kept_size, offer.drv, KEEP_VERSION,
                 sizeof(struct keep), drv->kept_size, drv->name);
    if (m.text[0] != '\0') {
        send_msg(fd, &m);
        snprintf(why, sizeof(why), "%s", m.text);
        snprintf(line + strlen(line), sizeof(line) - strlen(line), ": refused: %s\n", why);
        goto fail;
    }
    m = (struct ho_msg){.magic = HO_MAGIC,
                        .proto = HO_PROTO,
                        .type = HO_TAKE,
                        .layout = KEEP_VERSION,
                        .header_size = sizeof(struct keep),
                        .kept_size = (uint32_t)drv->kept_size};
    snprintf(m.drv, sizeof(m.drv), "%s", drv->name);
    send_msg(fd, &m);
    if (ho_recv(fd, GO_WAIT_MS, HO_BIT(HO_GO), &m, fds, &nfds, why, sizeof(why)) != 0) {
        snprintf(line + strlen(line), sizeof(line) - strlen(line), ": %s\n", why);
        goto fail;
    }
    /* A memfd shorter than offered would fault on first touch: measured first. */
    if (fstat(fds[0], &st) != 0 || st.st_size < (off_t)offer.map_size)
        k = MAP_FAILED;
    else
        k = mmap(NULL, offer.map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    /* The memfd says its layout too: what the offer said must be what is there. */
    if (k == MAP_FAILED || k->magic != KEEP_MAGIC || k->version != KEEP_VERSION ||
        k->header_size != sizeof(struct keep) || k->kept_size != drv->kept_size ||
        strncmp(k->drv_name, drv->name, sizeof(k->drv_name)) != 0) {
        snprintf(line + strlen(line), sizeof(line) - strlen(line),
                 ": the keeper's memory is not the layout it offered (%s): its own worker "
                 "takes the device back\n",
                 k == MAP_FAILED ? "too short, or not mappable" : "magic or version");
        m = (struct ho_msg){
            .magic = HO_MAGIC, .proto = HO_PROTO, .type = HO_EXIT, .status = WORKER_FAILED};
        send_msg(fd, &m);
        goto fail;
    }
    close(fds[0]);
    /* The broker's fds as this process numbers them; the rest as the keeper has it. */
    acq = k->acq;
    for (unsigned int i = 0; i < BHDEV_MAX_FDS; i++)
        acq.fds[i] = i + 2 < nfds ? fds[i + 2] : -1;
    acq.nfds = nfds - 2 < k->acq.nfds ? nfds - 2 : k->acq.nfds;
    snprintf(line + strlen(line), sizeof(line) - strlen(line), ": taken over by pid %d\n",
             (int)getpid());
    (void)!write(report, line, strlen(line));
    close(report);
    /* From here on this is a worker of the domain: its log, no terminal. */
    if ((devnull = upgrade_null_fd) >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        close(devnull);
    } else { /* never the pipe: the command waits for its end */
        close(STDIN_FILENO);
        dup2(fds[1], STDOUT_FILENO);
    }
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    setsid();
    logline("%s %u/%u: worker-only process of a new binary, kept-state layout %u", ref.backend_kind,
            ref.frontend_domid, ref.devid, KEEP_VERSION);
    rc = worker_main(&ref, drv, k, &acq, fd);
    m = (struct ho_msg){
        .magic = HO_MAGIC, .proto = HO_PROTO, .type = HO_EXIT, .status = (uint32_t)rc};
    send_msg(fd, &m);
    _exit(rc);
fail:
    (void)!write(report, line, strlen(line));
    _exit(1);
}

int upgrade_null_fd = -1;

int upgrade_main(void)
{
    static char names[UPGRADE_MAX_KEEPERS][108];
    unsigned int n = find_keepers(names, UPGRADE_MAX_KEEPERS), ok = 0;
    int rc = 0;

    if (n == 0) {
        logline("no keeper in this domain to upgrade (no @" HO_SOCK_PREFIX
                "... socket): is bulkhead-drvdom serving devices here?");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    for (unsigned int i = 0; i < n; i++) {
        char line[512];
        ssize_t got, len = 0;
        int p[2];
        pid_t pid;
        if (pipe2(p, O_CLOEXEC) != 0) {
            logline("cannot make a pipe: %s", strerror(errno));
            return 1;
        }
        fflush(stdout);
        fflush(stderr);
        if ((pid = fork()) < 0) {
            logline("cannot fork: %s (raise the domain's process limit)", strerror(errno));
            return 1;
        }
        if (pid == 0) {
            close(p[0]);
            take_one(names[i], p[1]);
        }
        close(p[1]);
        while ((got = read(p[0], line + len, sizeof(line) - 1 - (size_t)len)) > 0)
            len += got;
        close(p[0]);
        line[len] = '\0';
        if (len == 0)
            snprintf(line, sizeof(line), "@%.200s: the new worker died before it served\n",
                     names[i]);
        if (strstr(line, ": taken over by pid ") != NULL) {
            ok++;
            printf("%s", line);
        } else {
            rc = 1;
            fprintf(stderr, "%s: %s", progname, line);
            waitpid(pid, NULL, 0);
        }
    }
    printf("%u of %u device%s taken over\n", ok, n, n == 1 ? "" : "s");
    return rc;
}
