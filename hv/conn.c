/*
 * conn.c - hypercall channels: receiving a request with its credentials,
 * sending the reply with its fds.
 *
 * Everything a channel delivers is hostile.  A message that is not a
 * well-formed request (too short, too long, wrong magic, carrying fds) is
 * refused with an error reply and the channel stays open; a peer that does
 * not read its replies (the send would block) loses its channel, never
 * stalls the daemon.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hv.h"

#define CONN_BATCH 16 /* requests served per wake-up, so one channel cannot starve others */

struct hv_conn *conn_new(struct hv *hv, int fd, struct hv_dom *dom)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    struct hv_conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    if (epoll_ctl(hv->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        free(c);
        return NULL;
    }
    c->fd = fd;
    c->dom = dom;
    c->next = hv->conns;
    hv->conns = c;
    return c;
}

void conn_close(struct hv *hv, struct hv_conn *c)
{
    struct hv_conn **pp;

    /* Mappings and ports die with the channel, as with a closed gntdev or evtchn fd. */
    gnttab_conn_release(hv, c);
    evtchn_conn_release(hv, c);
    epoll_ctl(hv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    for (pp = &hv->conns; *pp != NULL; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    free(c);
}

/* Sends one message; -1 if the peer cannot take it now (it then loses the channel). */
static int send_msg(struct hv_conn *c, const struct hvw_hdr *h, const void *p, size_t len,
                    const int *fds, unsigned int nfds)
{
    struct iovec iov[2] = {{(void *)h, sizeof(*h)}, {(void *)p, len}};
    union {
        char buf[CMSG_SPACE(sizeof(int) * HVW_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};

    if (nfds > 0) {
        struct cmsghdr *cm;
        memset(&u, 0, sizeof(u));
        m.msg_control = u.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    return sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? -1 : 0;
}

int conn_send_event(struct hv *hv, struct hv_conn *c, uint16_t op, const void *p, size_t len)
{
    struct hvw_hdr h = {.magic = HVW_MAGIC, .op = op, .flags = HVW_F_EVENT};

    (void)hv;
    return send_msg(c, &h, p, len, NULL, 0);
}

/* Closes fds that arrived with a message: no request carries any. */
static unsigned int drop_fds(struct msghdr *m)
{
    unsigned int n = 0;

    for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm != NULL; cm = CMSG_NXTHDR(m, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        int cnt = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < cnt; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            close(fd);
            n++;
        }
    }
    return n;
}

static pid_t sender_pid(struct msghdr *m)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm != NULL; cm = CMSG_NXTHDR(m, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(cm), sizeof(uc));
            return uc.pid;
        }
    return 0;
}

/* Answers one request; returns -1 when the channel must go. */
static int serve_one(struct hv *hv, struct hv_conn *c, uint8_t *buf, uint8_t *out)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * HVW_MAX_FDS) + CMSG_SPACE(sizeof(struct ucred))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {buf, HVW_MAX_MSG};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                       .msg_controllen = sizeof(u.buf)};
    struct hvw_hdr in, reply = {.magic = HVW_MAGIC, .flags = HVW_F_REPLY};
    struct hv_rsp rsp = {.p = out};
    struct hv_req req = {.conn = c, .hdr = &in};
    ssize_t n;
    int err, rc;

    n = recvmsg(c->fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 1 : -1;
    if (n == 0)
        return -1; /* the peer closed: its process is gone */
    memset(&in, 0, sizeof(in));
    memcpy(&in, buf, (size_t)n < sizeof(in) ? (size_t)n : sizeof(in));
    reply.op = in.op;
    reply.seq = in.seq;
    if (drop_fds(&m) > 0 || (m.msg_flags & MSG_CTRUNC))
        err = EBADF; /* fds where none belong: refused, and closed */
    else if ((size_t)n > HVW_MAX_MSG || (m.msg_flags & MSG_TRUNC))
        err = E2BIG;
    else if ((size_t)n < sizeof(in) || in.magic != HVW_MAGIC || (in.flags & HVW_F_REPLY) ||
             in.err != 0)
        err = EBADMSG;
    else {
        req.p = buf + sizeof(in);
        req.len = (size_t)n - sizeof(in);
        req.pid = sender_pid(&m);
        err = dispatch(hv, &req, &rsp);
    }
    reply.err = err;
    rc = send_msg(c, &reply, rsp.p, err ? 0 : rsp.len, rsp.fds, err ? 0 : rsp.nfds);
    /* The reply carried duplicates; ours go either way. */
    for (unsigned int i = 0; i < rsp.nfds; i++)
        close(rsp.fds[i]);
    if (rc != 0) {
        hv_log(hv, "domain %u: dropped a channel that does not take its replies (%s)",
               c->dom->domid, strerror(errno));
        return -1;
    }
    return 0;
}

void conn_serve(struct hv *hv, struct hv_conn *c)
{
    static uint8_t buf[HVW_MAX_MSG + 1], out[HVW_MAX_MSG];

    for (int i = 0; i < CONN_BATCH; i++) {
        int r = serve_one(hv, c, buf, out);
        if (r < 0) {
            conn_close(hv, c);
            return;
        }
        if (r > 0 || hv->stopping)
            return;
    }
}
