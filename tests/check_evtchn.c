/*
 * check_evtchn.c - bulkhead-hv's event channels (hv/evtchn.c) on their own,
 * against tests/hvfake.c: binding, which eventfd goes where, status,
 * closing (by request, with a channel, with a domain) and what the other
 * end sees, limits, hostile payloads, and a peer that sabotages the
 * eventfds it shares.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xen/event_channel.h>

#include "hvfake.h"

static struct hv *hv;
static struct hv_dom *d0, *d1, *d2, *d3;
static struct hv_conn *c0, *c1, *c1b, *c2, *c3;
static struct hv_rsp *rsp;
static int fds_before;

static void setup(void)
{
    fds_before = hvfake_open_fds();
    hv = hvfake_new(false);
    d0 = hv_dom_find(hv, 0);
    d1 = hvfake_dom(hv, 1, 0, 0);
    d2 = hvfake_dom(hv, 2, 0, 0);
    d3 = hvfake_dom(hv, 3, 0, 4); /* ports 1..4 */
    ck_assert_ptr_nonnull(d3);
    c0 = hvfake_conn(hv, d0);
    c1 = hvfake_conn(hv, d1);
    c1b = hvfake_conn(hv, d1);
    c2 = hvfake_conn(hv, d2);
    c3 = hvfake_conn(hv, d3);
    rsp = hvfake_rsp_new();
}

static void teardown(void)
{
    hvfake_rsp_free(rsp);
    hvfake_free(hv);
    ck_assert_int_eq(hvfake_open_fds(), fds_before);
}

/* A port bound through a channel: its number and its two fds (ours to close). */
struct port {
    uint32_t port;
    int own, remote;
};

static int take_port(int rc, struct port *p)
{
    if (rc != 0)
        return rc;
    ck_assert_uint_eq(rsp->len, 4);
    ck_assert_uint_eq(rsp->nfds, 2);
    memcpy(&p->port, rsp->p, 4);
    p->own = rsp->fds[0];
    p->remote = rsp->fds[1];
    rsp->nfds = 0;
    return 0;
}

static int unbound(struct hv_conn *c, uint16_t remote, struct port *p)
{
    struct hvw_evt_unbound_req r = {.remote_domid = remote};

    return take_port(hvfake_call(hv, c, HVW_OP_EVT_UNBOUND, &r, sizeof(r), rsp), p);
}

static int bind(struct hv_conn *c, uint16_t remote, uint32_t remote_port, struct port *p)
{
    struct hvw_evt_bind_req r = {.remote_domid = remote, .remote_port = remote_port};

    return take_port(hvfake_call(hv, c, HVW_OP_EVT_BIND, &r, sizeof(r), rsp), p);
}

static int evt_close(struct hv_conn *c, uint32_t port)
{
    struct hvw_evt_port_req r = {.port = port};

    return hvfake_call(hv, c, HVW_OP_EVT_CLOSE, &r, sizeof(r), rsp);
}

static void port_drop(struct port *p)
{
    close(p->own);
    close(p->remote);
}

static struct hvw_evt_status_rsp status(struct hv_conn *c, uint16_t domid, uint32_t port)
{
    struct hvw_evt_status_req r = {.domid = domid, .port = port};
    struct hvw_evt_status_rsp s;

    ck_assert_int_eq(hvfake_call(hv, c, HVW_OP_EVT_STATUS, &r, sizeof(r), rsp), 0);
    ck_assert_uint_eq(rsp->len, sizeof(s));
    memcpy(&s, rsp->p, sizeof(s));
    return s;
}

static int status_rc(struct hv_conn *c, uint16_t domid, uint32_t port)
{
    struct hvw_evt_status_req r = {.domid = domid, .port = port};

    return hvfake_call(hv, c, HVW_OP_EVT_STATUS, &r, sizeof(r), rsp);
}

/* Reads an eventfd's count without blocking: 0 if nothing is pending. */
static uint64_t count(int fd)
{
    uint64_t v = 0;

    if (read(fd, &v, sizeof(v)) != sizeof(v)) {
        ck_assert_int_eq(errno, EAGAIN);
        return 0;
    }
    return v;
}

static void notify(int fd)
{
    uint64_t one = 1;

    ck_assert_int_eq(write(fd, &one, sizeof(one)), sizeof(one));
}

/* Domain 1 leaves a port for 2 and 2 binds it. */
static void pair(struct port *a, struct port *b)
{
    ck_assert_int_eq(unbound(c1, 2, a), 0);
    ck_assert_int_eq(bind(c2, 1, a->port, b), 0);
}

START_TEST(test_pair_is_wired)
{
    struct port a, b;
    struct hvw_evt_status_rsp s;

    ck_assert_int_eq(unbound(c1, 2, &a), 0);
    ck_assert_uint_ge(a.port, 1); /* port 0 is never bound, as on Xen */
    s = status(c1, HVW_DOMID_SELF, a.port);
    ck_assert_uint_eq(s.status, EVTCHNSTAT_unbound);
    ck_assert_uint_eq(s.remote_domid, 2);
    ck_assert_int_eq(bind(c2, 1, a.port, &b), 0);
    s = status(c1, 1, a.port);
    ck_assert_uint_eq(s.status, EVTCHNSTAT_interdomain);
    ck_assert_uint_eq(s.remote_domid, 2);
    ck_assert_uint_eq(s.remote_port, b.port);
    s = status(c2, HVW_DOMID_SELF, b.port);
    ck_assert_uint_eq(s.status, EVTCHNSTAT_interdomain);
    ck_assert_uint_eq(s.remote_domid, 1);
    ck_assert_uint_eq(s.remote_port, a.port);
    /* Each side writes the other's eventfd and reads its own. */
    notify(b.remote);
    ck_assert_uint_eq(count(a.own), 1);
    ck_assert_uint_eq(count(b.own), 0);
    notify(a.remote);
    notify(a.remote);
    ck_assert_uint_eq(count(b.own), 2);
    ck_assert_uint_eq(count(a.own), 0);
    /* Non-blocking and close-on-exec, all four. */
    for (int i = 0; i < 4; i++) {
        int fd = i == 0 ? a.own : i == 1 ? a.remote : i == 2 ? b.own : b.remote;
        ck_assert_int_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
        ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    }
    ck_assert_uint_eq(hvfake_stats(hv).ports, 2);
    port_drop(&a);
    port_drop(&b);
}
END_TEST

START_TEST(test_bind_refusals)
{
    struct port a, b, x;

    ck_assert_int_eq(unbound(c1, 2, &a), 0);
    ck_assert_int_eq(bind(c3, 1, a.port, &x), EINVAL); /* reserved for 2, as Xen answers */
    ck_assert_int_eq(bind(c2, 1, a.port + 1, &x), EINVAL);
    ck_assert_int_eq(bind(c2, 1, 0, &x), EINVAL);
    ck_assert_int_eq(bind(c2, 1, 0xffffffffu, &x), EINVAL);
    ck_assert_int_eq(bind(c2, 9, a.port, &x), ESRCH);
    ck_assert_int_eq(unbound(c1, 9, &x), ESRCH);
    ck_assert_int_eq(bind(c2, 1, a.port, &b), 0);
    ck_assert_int_eq(bind(c2, 1, a.port, &x), EINVAL); /* bound already */
    ck_assert_uint_eq(hvfake_stats(hv).ports, 2);
    port_drop(&a);
    port_drop(&b);
}
END_TEST

START_TEST(test_loopback_and_self)
{
    struct port a, b;

    ck_assert_int_eq(unbound(c1, HVW_DOMID_SELF, &a), 0);
    ck_assert_int_eq(bind(c1b, HVW_DOMID_SELF, a.port, &b), 0);
    ck_assert_uint_ne(a.port, b.port);
    notify(b.remote);
    ck_assert_uint_eq(count(a.own), 1);
    ck_assert_uint_eq(status(c1, 1, b.port).remote_port, a.port);
    port_drop(&a);
    port_drop(&b);
}
END_TEST

/*
 * Closing one end: the other becomes unbound and is woken.  It may be bound
 * again, and its owner's old fds still reach the new peer.
 */
START_TEST(test_close_is_seen_and_rebinding_works)
{
    struct port a, b, b2;
    struct hvw_evt_status_rsp s;

    pair(&a, &b);
    ck_assert_int_eq(evt_close(c2, b.port), 0);
    ck_assert_uint_eq(count(a.own), 1); /* woken */
    s = status(c1, 1, a.port);
    ck_assert_uint_eq(s.status, EVTCHNSTAT_unbound);
    ck_assert_uint_eq(s.remote_domid, 2);
    ck_assert_uint_eq(status(c2, 2, b.port).status, EVTCHNSTAT_closed);
    ck_assert_int_eq(evt_close(c2, b.port), EINVAL);
    ck_assert_int_eq(bind(c2, 1, a.port, &b2), 0);
    ck_assert_uint_eq(status(c1, 1, a.port).status, EVTCHNSTAT_interdomain);
    notify(a.remote); /* what a's owner had all along */
    ck_assert_uint_eq(count(b2.own), 1);
    notify(b2.remote);
    ck_assert_uint_eq(count(a.own), 1);
    port_drop(&a);
    port_drop(&b);
    port_drop(&b2);
}
END_TEST

START_TEST(test_close_is_for_the_binding_channel)
{
    struct port a, b;

    pair(&a, &b);
    ck_assert_int_eq(evt_close(c1b, a.port), ENOTCONN);
    ck_assert_int_eq(evt_close(c3, a.port), EINVAL); /* not even its domain's */
    ck_assert_int_eq(evt_close(c1, 0), EINVAL);
    ck_assert_int_eq(evt_close(c1, 5000), EINVAL);
    ck_assert_int_eq(evt_close(c1, a.port), 0);
    ck_assert_uint_eq(status(c2, 2, b.port).status, EVTCHNSTAT_unbound);
    port_drop(&a);
    port_drop(&b);
}
END_TEST

START_TEST(test_ports_die_with_their_channel)
{
    struct port a, b, u1, u2;
    struct hv_conn *c2b = hvfake_conn(hv, d2);

    ck_assert_int_eq(unbound(c1, 2, &a), 0);
    ck_assert_int_eq(bind(c2b, 1, a.port, &b), 0);
    ck_assert_int_eq(unbound(c2b, 3, &u1), 0);
    ck_assert_int_eq(unbound(c2, 3, &u2), 0);
    port_drop(&u1);
    port_drop(&u2);
    hvfake_conn_close(hv, c2b);
    ck_assert_uint_eq(count(a.own), 1);
    ck_assert_uint_eq(status(c1, 1, a.port).status, EVTCHNSTAT_unbound);
    ck_assert_uint_eq(hvfake_stats(hv).ports, 2); /* a, and c2's own */
    port_drop(&a);
    port_drop(&b);
}
END_TEST

START_TEST(test_ports_die_with_their_domain)
{
    struct port a, b, c, d;

    pair(&a, &b);
    ck_assert_int_eq(unbound(c2, 3, &c), 0);
    ck_assert_int_eq(bind(c3, 2, c.port, &d), 0);
    hvfake_dom_destroy(hv, d2);
    ck_assert_uint_eq(count(a.own), 1);
    ck_assert_uint_eq(count(d.own), 1);
    ck_assert_uint_eq(status(c1, 1, a.port).status, EVTCHNSTAT_unbound);
    ck_assert_uint_eq(status(c3, 3, d.port).status, EVTCHNSTAT_unbound);
    ck_assert_uint_eq(status(c3, 3, d.port).remote_domid, 2);
    ck_assert_uint_eq(hvfake_stats(hv).ports, 2);
    port_drop(&a);
    port_drop(&b);
    port_drop(&c);
    port_drop(&d);
}
END_TEST

START_TEST(test_table_full)
{
    struct port p[4], x;

    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(unbound(c3, 1, &p[i]), 0);
        ck_assert_uint_eq(p[i].port, i + 1); /* lowest free first, as Xen */
    }
    ck_assert_int_eq(unbound(c3, 1, &x), ENOSPC);
    ck_assert_int_eq(unbound(c1, 3, &x), 0);
    ck_assert_int_eq(bind(c3, 1, x.port, &x), ENOSPC);
    ck_assert_int_eq(evt_close(c3, 2), 0);
    port_drop(&p[1]);
    ck_assert_int_eq(unbound(c3, 1, &p[1]), 0);
    ck_assert_uint_eq(p[1].port, 2);
    for (int i = 0; i < 4; i++)
        port_drop(&p[i]);
    port_drop(&x);
}
END_TEST

START_TEST(test_status_of_others_is_dom0s)
{
    struct port a;

    ck_assert_int_eq(unbound(c1, 2, &a), 0);
    ck_assert_int_eq(status_rc(c2, 1, a.port), EPERM);
    ck_assert_uint_eq(status(c0, 1, a.port).status, EVTCHNSTAT_unbound);
    ck_assert_int_eq(status_rc(c0, 9, a.port), ESRCH);
    ck_assert_uint_eq(status(c1, 1, 0).status, EVTCHNSTAT_closed);
    ck_assert_uint_eq(status(c1, 1, 1023).status, EVTCHNSTAT_closed);
    ck_assert_int_eq(status_rc(c1, 1, 1024), EINVAL);
    ck_assert_int_eq(status_rc(c1, 1, 0xffffffffu), EINVAL);
    port_drop(&a);
}
END_TEST

START_TEST(test_hostile_payloads)
{
    uint8_t junk[16] = {2, 0, 0, 0, 1, 0, 0, 0};
    static const struct {
        uint16_t op;
        size_t len;
    } bad[] = {
        {HVW_OP_EVT_UNBOUND, 0}, {HVW_OP_EVT_UNBOUND, 2}, {HVW_OP_EVT_UNBOUND, 5},
        {HVW_OP_EVT_BIND, 0},    {HVW_OP_EVT_BIND, 4},    {HVW_OP_EVT_BIND, 9},
        {HVW_OP_EVT_CLOSE, 0},   {HVW_OP_EVT_CLOSE, 3},   {HVW_OP_EVT_CLOSE, 8},
        {HVW_OP_EVT_STATUS, 0},  {HVW_OP_EVT_STATUS, 7},  {HVW_OP_EVT_STATUS, 16},
    };
    int fds = hvfake_open_fds();

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(hvfake_call(hv, c1, bad[i].op, junk, bad[i].len, rsp) == EINVAL,
                      "op %u with %zu bytes", bad[i].op, bad[i].len);
    ck_assert_uint_eq(hvfake_stats(hv).ports, 0);
    ck_assert_int_eq(hvfake_open_fds(), fds);
}
END_TEST

/* Out of fds: nothing is bound, nothing leaks, and the table is as it was. */
START_TEST(test_out_of_fds)
{
    struct port a, x;
    int fds;

    ck_assert_int_eq(unbound(c1, 2, &a), 0);
    fds = hvfake_open_fds();
    for (int spare = 0; spare < 4; spare++) {
        /* UNBOUND needs 4 fds (2 eventfds, 2 for the reply), BIND 2. */
        hvfake_fd_limit(spare);
        ck_assert_int_eq(unbound(c1, 2, &x), ENOMEM);
        ck_assert_int_eq(bind(c2, 1, a.port, &x), spare < 2 ? ENOMEM : 0);
        hvfake_fd_unlimit();
        if (spare >= 2) {
            ck_assert_int_eq(evt_close(c2, x.port), 0);
            port_drop(&x);
            count(a.own); /* the wake of that close */
        }
        ck_assert_int_eq(hvfake_open_fds(), fds);
        ck_assert_uint_eq(status(c1, 1, a.port).status, EVTCHNSTAT_unbound);
    }
    ck_assert_uint_eq(hvfake_stats(hv).ports, 1);
    port_drop(&a);
}
END_TEST

static void on_alarm(int sig)
{
    (void)sig;
    _exit(3); /* the daemon blocked: a finding */
}

/*
 * A peer shares the eventfds' file descriptions, so it can clear
 * O_NONBLOCK on the one the daemon must wake and fill its counter: a
 * write(2) would then block the daemon for good.  The wake must not.
 */
START_TEST(test_sabotaged_eventfd_does_not_block_the_daemon)
{
    struct port a, b;
    uint64_t full = 0xfffffffffffffffeull;

    pair(&a, &b);
    /* b's owner holds a's eventfd as b.remote: the same file description. */
    ck_assert_int_eq(fcntl(b.remote, F_SETFL, 0), 0);
    ck_assert_int_eq(write(b.remote, &full, sizeof(full)), sizeof(full));
    ck_assert_int_eq(fcntl(a.own, F_GETFL) & O_NONBLOCK, 0);
    signal(SIGALRM, on_alarm);
    alarm(2); /* before Check's own timeout, so that the failure says why */
    ck_assert_int_eq(evt_close(c2, b.port), 0);
    alarm(0);
    ck_assert_uint_eq(status(c1, 1, a.port).status, EVTCHNSTAT_unbound);
    ck_assert_uint_ge(count(a.own), full); /* still pending: a's owner wakes */
    port_drop(&a);
    port_drop(&b);
}
END_TEST

START_TEST(test_table_sizes)
{
    struct hv_dom d = {.max_evtchn_ports = (1u << 17) + 1};

    ck_assert_int_eq(evtchn_dom_init(&d), EINVAL);
    ck_assert_ptr_null(d.evt);
    d.max_evtchn_ports = 1u << 17;
    ck_assert_int_eq(evtchn_dom_init(&d), 0);
    evtchn_dom_release(hv, &d);
    ck_assert_ptr_null(d.evt);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("evtchn");
    TCase *tc = tcase_create("evtchn");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_pair_is_wired);
    tcase_add_test(tc, test_bind_refusals);
    tcase_add_test(tc, test_loopback_and_self);
    tcase_add_test(tc, test_close_is_seen_and_rebinding_works);
    tcase_add_test(tc, test_close_is_for_the_binding_channel);
    tcase_add_test(tc, test_ports_die_with_their_channel);
    tcase_add_test(tc, test_ports_die_with_their_domain);
    tcase_add_test(tc, test_table_full);
    tcase_add_test(tc, test_status_of_others_is_dom0s);
    tcase_add_test(tc, test_hostile_payloads);
    tcase_add_test(tc, test_out_of_fds);
    tcase_add_test(tc, test_sabotaged_eventfd_does_not_block_the_daemon);
    tcase_add_test(tc, test_table_sizes);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
