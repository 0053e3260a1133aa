/*
 * netlink.c - the broker's hands on the kernel's network configuration:
 * entering a network namespace and coming back, and the few rtnetlink
 * requests it needs (look a link up, make a bridge or a veth pair, set a
 * link's mtu, address, master and up, delete a link; for routed vifs, read
 * and add an IPv4 address and add a host route).
 *
 * Written by hand rather than through libmnl or `ip`: six fixed requests,
 * no parsing of anything a domain wrote (the kernel answers), and no
 * fork/exec in a daemon that must never block.  An rtnetlink socket works
 * in the namespace it was made in, whichever namespace its user is in now,
 * so the daemon enters a domain's namespace only to make a socket or a TAP,
 * never to talk.
 *
 * bulkhead-hv is single-threaded, so setns(2) moves the whole daemon:
 * netns_leave() must follow every netns_enter() before anything else runs,
 * and a failure to come back is fatal (nothing may be served from a
 * domain's namespace).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "hv.h"

#define NL_MSG_MAX  1024  /* our requests: a few names and numbers */
#define NL_RECV_MAX 32768 /* a link's description is a few KiB */

static int home_ns = -1; /* the host's network namespace: the daemon's own */

int netns_init(void)
{
    if (home_ns >= 0)
        return 0;
    home_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    return home_ns < 0 ? -1 : 0;
}

void netns_fini(void)
{
    if (home_ns >= 0)
        close(home_ns);
    home_ns = -1;
}

int netns_is_host(int nsfd)
{
    struct stat a, b;

    if (fstat(nsfd, &a) != 0 || fstat(home_ns, &b) != 0)
        return -1;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int netns_enter(int nsfd)
{
    return setns(nsfd, CLONE_NEWNET);
}

void netns_leave(void)
{
    /* Staying in a domain's namespace would serve everyone from there: die instead. */
    if (setns(home_ns, CLONE_NEWNET) != 0) {
        fprintf(stderr, "bulkhead-hv: cannot return to the host's network namespace: %s\n",
                strerror(errno));
        abort();
    }
}

bool nl_ifname_ok(const char *s)
{
    size_t n = strnlen(s, IFNAMSIZ);

    if (n == 0 || n >= IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-'))
            return false;
    return true;
}

int tun_open_queues(const char *name, unsigned int n, int *fds)
{
    for (unsigned int i = 0; i < n; i++)
        fds[i] = -1;
    for (unsigned int i = 0; i < n; i++) {
        struct ifreq ifr;

        memset(&ifr, 0, sizeof(ifr));
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        if ((fds[i] = open("/dev/net/tun", O_RDWR | O_CLOEXEC)) < 0 ||
            ioctl(fds[i], TUNSETIFF, &ifr) != 0)
            return errno;
    }
    return 0;
}

int nl_open(int nsfd)
{
    int fd, saved;

    if (nsfd >= 0 && netns_enter(nsfd) != 0)
        return -1;
    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    saved = errno;
    if (nsfd >= 0)
        netns_leave();
    errno = saved;
    return fd;
}

/* ---- building a request ---- */

struct nl_req {
    union {
        struct nlmsghdr h;
        uint8_t b[NL_MSG_MAX];
    } u;
};

/* Our requests are fixed and small: running out of room is a bug here, not a peer's doing. */
static struct rtattr *attr_put(struct nl_req *m, unsigned short type, const void *data, size_t len)
{
    size_t off = NLMSG_ALIGN(m->u.h.nlmsg_len);
    struct rtattr *a;

    if (off + RTA_SPACE(len) > sizeof(m->u.b))
        abort();
    a = (struct rtattr *)(m->u.b + off);
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len > 0)
        memcpy(RTA_DATA(a), data, len);
    m->u.h.nlmsg_len = (uint32_t)(off + RTA_SPACE(len));
    return a;
}

static void attr_u32(struct nl_req *m, unsigned short type, uint32_t v)
{
    attr_put(m, type, &v, sizeof(v));
}

static void attr_str(struct nl_req *m, unsigned short type, const char *s)
{
    attr_put(m, type, s, strlen(s) + 1);
}

static struct rtattr *nest_begin(struct nl_req *m, unsigned short type)
{
    return attr_put(m, type, NULL, 0);
}

static void nest_end(struct nl_req *m, struct rtattr *a)
{
    a->rta_len = (unsigned short)(m->u.b + m->u.h.nlmsg_len - (uint8_t *)a);
}

/* A link request: header and ifinfomsg. */
static struct ifinfomsg *link_req(struct nl_req *m, uint16_t type, uint16_t flags, int ifindex)
{
    struct ifinfomsg *i;

    memset(m, 0, sizeof(*m));
    m->u.h.nlmsg_len = NLMSG_LENGTH(sizeof(*i));
    m->u.h.nlmsg_type = type;
    m->u.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    i = NLMSG_DATA(&m->u.h);
    i->ifi_family = AF_UNSPEC;
    i->ifi_index = ifindex;
    return i;
}

/* ---- reading the answer ---- */

static void parse_linkinfo(const struct rtattr *li, struct nl_link *out)
{
    int len = (int)RTA_PAYLOAD(li);

    for (const struct rtattr *a = RTA_DATA(li); RTA_OK(a, len); a = RTA_NEXT(a, len))
        if (a->rta_type == IFLA_INFO_KIND) {
            size_t n = RTA_PAYLOAD(a) < sizeof(out->kind) ? RTA_PAYLOAD(a) : sizeof(out->kind) - 1;
            memcpy(out->kind, RTA_DATA(a), n);
            out->kind[n] = '\0';
        }
}

static void parse_link(const struct nlmsghdr *h, struct nl_link *out)
{
    const struct ifinfomsg *i = NLMSG_DATA(h);
    int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*i));

    memset(out, 0, sizeof(*out));
    if (len < 0)
        return;
    out->ifindex = i->ifi_index;
    out->flags = i->ifi_flags;
    for (const struct rtattr *a = IFLA_RTA(i); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == IFLA_MTU && RTA_PAYLOAD(a) >= 4)
            memcpy(&out->mtu, RTA_DATA(a), 4);
        else if (a->rta_type == IFLA_MASTER && RTA_PAYLOAD(a) >= 4)
            memcpy(&out->master, RTA_DATA(a), 4);
        else if (a->rta_type == IFLA_LINKINFO)
            parse_linkinfo(a, out);
    }
}

/*
 * Sends the request and reads until its acknowledgement: 0, or -1 with the
 * kernel's errno.  A link description on the way lands in *out.
 */
struct nl_answer {
    struct nl_link *link; /* a link description lands here, if not NULL */
    int addr_ifindex;     /* > 0: the first IPv4 address of this link lands in addr */
    bool has_addr;
    uint32_t addr;
};

static void parse_addr(const struct nlmsghdr *h, struct nl_answer *out)
{
    const struct ifaddrmsg *a = NLMSG_DATA(h);
    int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*a));

    if (len < 0 || out->has_addr || a->ifa_family != AF_INET ||
        (int)a->ifa_index != out->addr_ifindex)
        return;
    for (const struct rtattr *r = IFA_RTA(a); RTA_OK(r, len); r = RTA_NEXT(r, len))
        if (r->rta_type == IFA_LOCAL && RTA_PAYLOAD(r) == 4) {
            memcpy(&out->addr, RTA_DATA(r), 4);
            out->has_addr = true;
        }
}

static int nl_talk_answer(int fd, struct nl_req *m, struct nl_answer *out);

static int nl_talk(int fd, struct nl_req *m, struct nl_link *link)
{
    struct nl_answer a = {.link = link};

    return nl_talk_answer(fd, m, &a);
}

static int nl_talk_answer(int fd, struct nl_req *m, struct nl_answer *out)
{
    static uint32_t seq;
    static union {
        struct nlmsghdr h;
        uint8_t b[NL_RECV_MAX];
    } in;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};

    m->u.h.nlmsg_seq = ++seq;
    if (sendto(fd, m->u.b, m->u.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
        return -1;
    for (;;) {
        ssize_t n = recv(fd, in.b, sizeof(in.b), 0);
        int len = (int)n;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errno = n < 0 ? errno : EPROTO;
            return -1;
        }
        for (struct nlmsghdr *h = &in.h; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
            if (h->nlmsg_seq != seq)
                continue;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e))) {
                    errno = EPROTO;
                    return -1;
                }
                if (e->error == 0)
                    return 0;
                errno = -e->error;
                return -1;
            }
            if (h->nlmsg_type == NLMSG_DONE)
                return 0;
            if (h->nlmsg_type == RTM_NEWLINK && out->link != NULL)
                parse_link(h, out->link);
            else if (h->nlmsg_type == RTM_NEWADDR && out->addr_ifindex > 0)
                parse_addr(h, out);
        }
    }
}

/* ---- the requests ---- */

int nl_link_get(int fd, const char *name, struct nl_link *out)
{
    struct nl_req m;

    link_req(&m, RTM_GETLINK, 0, 0);
    attr_str(&m, IFLA_IFNAME, name);
    memset(out, 0, sizeof(*out));
    if (nl_talk(fd, &m, out) != 0)
        return -1;
    if (out->ifindex <= 0) {
        errno = ENODEV;
        return -1;
    }
    return 0;
}

int nl_bridge_add(int fd, const char *name)
{
    struct nl_req m;
    struct rtattr *li;

    link_req(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
    attr_str(&m, IFLA_IFNAME, name);
    li = nest_begin(&m, IFLA_LINKINFO);
    attr_str(&m, IFLA_INFO_KIND, "bridge");
    nest_end(&m, li);
    return nl_talk(fd, &m, NULL);
}

int nl_veth_add(int fd, const char *name, const char *peer, int peer_nsfd, unsigned int mtu)
{
    struct nl_req m;
    struct rtattr *li, *data, *pe;
    struct ifinfomsg pi = {.ifi_family = AF_UNSPEC};

    link_req(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
    attr_str(&m, IFLA_IFNAME, name);
    if (mtu != 0)
        attr_u32(&m, IFLA_MTU, mtu);
    li = nest_begin(&m, IFLA_LINKINFO);
    attr_str(&m, IFLA_INFO_KIND, "veth");
    data = nest_begin(&m, IFLA_INFO_DATA);
    /* The peer: an ifinfomsg, then its own attributes, all inside VETH_INFO_PEER. */
    pe = attr_put(&m, VETH_INFO_PEER, &pi, sizeof(pi));
    attr_str(&m, IFLA_IFNAME, peer);
    attr_u32(&m, IFLA_NET_NS_FD, (uint32_t)peer_nsfd);
    if (mtu != 0)
        attr_u32(&m, IFLA_MTU, mtu);
    nest_end(&m, pe);
    nest_end(&m, data);
    nest_end(&m, li);
    return nl_talk(fd, &m, NULL);
}

int nl_link_set(int fd, int ifindex, unsigned int mtu, int master, const uint8_t *mac, bool up)
{
    struct nl_req m;
    struct ifinfomsg *i = link_req(&m, RTM_NEWLINK, 0, ifindex);

    if (mtu != 0)
        attr_u32(&m, IFLA_MTU, mtu);
    if (mac != NULL)
        attr_put(&m, IFLA_ADDRESS, mac, 6);
    if (master > 0)
        attr_u32(&m, IFLA_MASTER, (uint32_t)master);
    if (up) {
        i->ifi_flags = IFF_UP;
        i->ifi_change = IFF_UP;
    }
    return nl_talk(fd, &m, NULL);
}

int nl_link_del(int fd, int ifindex)
{
    struct nl_req m;

    link_req(&m, RTM_DELLINK, 0, ifindex);
    return nl_talk(fd, &m, NULL);
}

/* ---- routed vifs ---- */

int nl_addr4_get(int fd, int ifindex, uint32_t *addr)
{
    struct nl_req m;
    struct ifaddrmsg *a;
    struct nl_answer ans = {.addr_ifindex = ifindex};

    memset(&m, 0, sizeof(m));
    m.u.h.nlmsg_len = NLMSG_LENGTH(sizeof(*a));
    m.u.h.nlmsg_type = RTM_GETADDR;
    /* A dump answers with NLMSG_DONE, which ends nl_talk_answer's loop. */
    m.u.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    a = NLMSG_DATA(&m.u.h);
    a->ifa_family = AF_INET;
    a->ifa_index = (uint32_t)ifindex; /* the kernel may ignore it: parse_addr filters */
    if (nl_talk_answer(fd, &m, &ans) != 0)
        return -1;
    if (!ans.has_addr) {
        errno = EADDRNOTAVAIL;
        return -1;
    }
    *addr = ans.addr;
    return 0;
}

int nl_addr4_add(int fd, int ifindex, uint32_t addr, unsigned int prefix)
{
    struct nl_req m;
    struct ifaddrmsg *a;

    memset(&m, 0, sizeof(m));
    m.u.h.nlmsg_len = NLMSG_LENGTH(sizeof(*a));
    m.u.h.nlmsg_type = RTM_NEWADDR;
    m.u.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    a = NLMSG_DATA(&m.u.h);
    a->ifa_family = AF_INET;
    a->ifa_prefixlen = (uint8_t)prefix;
    a->ifa_scope = RT_SCOPE_UNIVERSE;
    a->ifa_index = (uint32_t)ifindex;
    attr_put(&m, IFA_LOCAL, &addr, 4);
    attr_put(&m, IFA_ADDRESS, &addr, 4);
    return nl_talk(fd, &m, NULL);
}

int nl_route4_add(int fd, uint32_t dst, int ifindex, uint32_t src)
{
    struct nl_req m;
    struct rtmsg *r;

    memset(&m, 0, sizeof(m));
    m.u.h.nlmsg_len = NLMSG_LENGTH(sizeof(*r));
    m.u.h.nlmsg_type = RTM_NEWROUTE;
    m.u.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    r = NLMSG_DATA(&m.u.h);
    r->rtm_family = AF_INET;
    r->rtm_dst_len = 32;
    r->rtm_table = RT_TABLE_MAIN;
    r->rtm_protocol = RTPROT_BOOT; /* what `ip route add` marks */
    r->rtm_scope = RT_SCOPE_LINK;  /* no gateway: the guest is on the link */
    r->rtm_type = RTN_UNICAST;
    attr_put(&m, RTA_DST, &dst, 4);
    attr_u32(&m, RTA_OIF, (uint32_t)ifindex);
    attr_put(&m, RTA_PREFSRC, &src, 4);
    return nl_talk(fd, &m, NULL);
}
