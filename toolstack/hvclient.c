/*
 * hvclient.c - the toolstack's channel to bulkhead-hv: dom0's, through
 * the root-only state directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "toolstack.h"

int hvc_open(struct hvc *h, bool quiet)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    h->seq = 0;
    if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/hv.sock", state_dir) >=
        (int)sizeof(sa.sun_path)) {
        if (!quiet)
            errorf("state directory path too long: %s", state_dir);
        return -1;
    }
    h->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (h->fd < 0 || connect(h->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        if (h->fd >= 0)
            close(h->fd);
        h->fd = -1;
        if (!quiet) {
            if (e == ENOENT || e == ECONNREFUSED)
                errorf("the simulation is not up in %s: run 'bulkhead up' first", state_dir);
            else if (e == EACCES)
                errorf("cannot reach %s: the toolstack needs root (try sudo)", sa.sun_path);
            else
                errorf("cannot connect to %s: %s", sa.sun_path, strerror(e));
        }
        errno = e;
        return -1;
    }
    return 0;
}

void hvc_close(struct hvc *h)
{
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
}

int hvc_call(struct hvc *h, uint16_t op, const void *p, size_t len, void *rbuf, size_t rcap,
             size_t *rlen)
{
    struct hvw_hdr hdr = {.magic = HVW_MAGIC, .op = op, .seq = ++h->seq};
    struct iovec iov[2] = {{&hdr, sizeof(hdr)}, {(void *)p, len}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    static uint8_t buf[HVW_MAX_MSG];
    ssize_t n;

    if (sizeof(hdr) + len > HVW_MAX_MSG) {
        errno = E2BIG;
        return -1;
    }
    if (sendmsg(h->fd, &m, MSG_NOSIGNAL) < 0)
        return -1;
    for (;;) {
        struct hvw_hdr r;
        n = recv(h->fd, buf, sizeof(buf), 0);
        if (n < (ssize_t)sizeof(r)) {
            errno = n < 0 ? errno : EPROTO;
            return -1;
        }
        memcpy(&r, buf, sizeof(r));
        if (r.flags & HVW_F_EVENT)
            continue; /* a domain event we did not wait for here */
        if (r.magic != HVW_MAGIC || !(r.flags & HVW_F_REPLY) || r.seq != h->seq) {
            errno = EPROTO;
            return -1;
        }
        if (r.err != 0)
            return r.err;
        n -= sizeof(r);
        if ((size_t)n > rcap) {
            errno = EMSGSIZE;
            return -1;
        }
        if (rbuf != NULL)
            memcpy(rbuf, buf + sizeof(r), (size_t)n);
        if (rlen != NULL)
            *rlen = (size_t)n;
        return 0;
    }
}

int hvc_dom_list(struct hvc *h, struct hvw_dom_list_rsp **out)
{
    static uint8_t buf[HVW_MAX_MSG];
    struct hvw_dom_list_rsp *l = (struct hvw_dom_list_rsp *)buf;
    size_t n;
    int rc = hvc_call(h, HVW_OP_DOM_LIST, NULL, 0, buf, sizeof(buf), &n);

    if (rc != 0)
        return rc;
    if (n < sizeof(*l) || n < sizeof(*l) + (size_t)l->count * sizeof(struct hvw_dominfo)) {
        errno = EPROTO;
        return -1;
    }
    *out = l;
    return 0;
}

int hvc_find_domain(struct hvc *h, const char *which, struct hvw_dominfo *out)
{
    struct hvw_dom_list_rsp *l;
    char *end;
    long id = strtol(which, &end, 10);
    int byid = *which != '\0' && *end == '\0';
    int rc = hvc_dom_list(h, &l);

    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < l->count; i++) {
        struct hvw_dominfo *d = &l->doms[i];
        if ((byid && d->domid == id) || (!byid && strncmp(d->name, which, sizeof(d->name)) == 0)) {
            *out = *d;
            return 0;
        }
    }
    return ESRCH;
}

/*
 * A command's domain argument: found, or one line saying why not (no such
 * domain, or the hypervisor could not be asked).  0, or 1 (the exit code).
 */
int hvc_lookup(const char *which, struct hvw_dominfo *out)
{
    struct hvc h;
    int rc;

    if (hvc_open(&h, false) != 0)
        return 1;
    rc = hvc_find_domain(&h, which, out);
    hvc_close(&h);
    if (rc == ESRCH)
        errorf("no domain %s: see 'bulkhead list'", which);
    else if (rc != 0)
        errorf("cannot list the simulation's domains: %s", strerror(rc < 0 ? errno : rc));
    return rc != 0;
}
