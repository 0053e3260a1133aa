/*
 * check_xenbus.c - the XenBus library: the handshake machine of both sides
 * (exhaustively where cheap, and two machines driven against each other
 * through random interleavings), the parsers of peer-written values, typed
 * keys and the state and error nodes, the libxl device layout against
 * golden lists, and watch dispatch.  Store tests run against tests/xsfake.c,
 * linked in place of libxenstore.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bhxenbus.h"
#include "xsfake.h"

#define I  XenbusStateInitialising
#define IW XenbusStateInitWait
#define ID XenbusStateInitialised
#define C  XenbusStateConnected
#define CG XenbusStateClosing
#define CD XenbusStateClosed
#define RG XenbusStateReconfiguring
#define RD XenbusStateReconfigured
#define U  XenbusStateUnknown

static struct bhxb_view view(enum bhxb_role role, XenbusState ours, int peer)
{
    struct bhxb_view v = {.role = role,
                          .ours = ours,
                          .peer = peer,
                          .ready = true,
                          .online = true,
                          .peer_online = true};
    return v;
}

static struct bhxb_step decide(const struct bhxb_view *v)
{
    struct bhxb_step st;

    ck_assert_int_eq(bhxb_decide(v, &st), 0);
    return st;
}

#define ck_step(v, want_next, want_actions)                                                        \
    do {                                                                                           \
        struct bhxb_step st_ = decide(v);                                                          \
        ck_assert_msg(st_.next == (want_next) && st_.actions == (want_actions),                    \
                      "role %d ours %s peer %s: got %s/%#x, want %s/%#x", (v)->role,               \
                      bhxb_state_name((v)->ours), bhxb_state_name((v)->peer),                      \
                      bhxb_state_name(st_.next), st_.actions, bhxb_state_name(want_next),          \
                      (unsigned)(want_actions));                                                   \
    } while (0)

/* ---- the decision, one rule at a time ---- */

START_TEST(test_state_names)
{
    ck_assert_str_eq(bhxb_state_name(0), "Unknown");
    ck_assert_str_eq(bhxb_state_name(C), "Connected");
    ck_assert_str_eq(bhxb_state_name(RD), "Reconfigured");
    ck_assert_str_eq(bhxb_state_name(9), "invalid");
    ck_assert_str_eq(bhxb_state_name(-1), "invalid");
}
END_TEST

START_TEST(test_decide_refuses_impossible_input)
{
    struct bhxb_view v = view(BHXB_FRONTEND, IW, C); /* a frontend never writes InitWait */
    struct bhxb_step st;

    ck_assert_int_eq(bhxb_decide(&v, &st), -1);
    ck_assert_int_eq(errno, EINVAL);
    v = view(BHXB_BACKEND, ID, C); /* nor a backend Initialised */
    ck_assert_int_eq(bhxb_decide(&v, &st), -1);
    v = view(BHXB_BACKEND, U, C);
    ck_assert_int_eq(bhxb_decide(&v, &st), -1);
    v = view(3, I, C);
    ck_assert_int_eq(bhxb_decide(&v, &st), -1);
    ck_assert_int_eq(bhxb_decide(NULL, &st), -1);
    ck_assert_int_eq(bhxb_decide(&v, NULL), -1);
}
END_TEST

START_TEST(test_happy_path_both_sides)
{
    struct bhxb_view f = view(BHXB_FRONTEND, I, I), b = view(BHXB_BACKEND, I, I);

    f.ready = b.ready = false;
    ck_step(&b, I, 0); /* not ready: waits */
    b.ready = true;
    ck_step(&b, IW, BHXB_ACT_PUBLISH);
    b.ours = IW;
    ck_step(&b, IW, 0); /* waits for the frontend */
    f.peer = IW;
    ck_step(&f, I, 0); /* frontend not ready yet */
    f.ready = true;
    ck_step(&f, ID, BHXB_ACT_PUBLISH);
    f.ours = ID;
    b.peer = ID;
    ck_step(&b, C, BHXB_ACT_CONNECT);
    b.ours = C;
    f.peer = C;
    ck_step(&f, C, BHXB_ACT_CONNECT);
    f.ours = C;
    b.peer = C;
    ck_step(&b, C, 0);
    ck_step(&f, C, 0);
}
END_TEST

/* States a peer may appear to skip when watch events are coalesced. */
START_TEST(test_skipped_states)
{
    struct bhxb_view v;

    /* The backend misses Initialised: the frontend is already Connected. */
    v = view(BHXB_BACKEND, IW, C);
    ck_step(&v, C, BHXB_ACT_CONNECT);
    /* The frontend never saw InitWait: Initialising straight to Connected is stale. */
    v = view(BHXB_FRONTEND, I, C);
    ck_step(&v, CG, 0);
    /* Closed without Closing seen, on both sides. */
    v = view(BHXB_FRONTEND, C, CD);
    ck_step(&v, CD, BHXB_ACT_DISCONNECT);
    v = view(BHXB_BACKEND, C, CD);
    ck_step(&v, CD, BHXB_ACT_DISCONNECT);
    /* A backend still Initialising when its frontend closes: nothing to tear down. */
    v = view(BHXB_BACKEND, I, CG);
    ck_step(&v, CG, 0);
    /* A backend restarted under a connected frontend reconnects to its keys. */
    v = view(BHXB_BACKEND, IW, RD);
    ck_step(&v, C, BHXB_ACT_CONNECT);
    v = view(BHXB_FRONTEND, C, IW);
    ck_step(&v, C, 0);
}
END_TEST

START_TEST(test_frontend_reconnects_after_backend_closed)
{
    struct bhxb_view f = view(BHXB_FRONTEND, C, CG);

    ck_step(&f, CD, BHXB_ACT_DISCONNECT);
    f.ours = CD;
    ck_step(&f, CD, 0); /* backend still Closing */
    f.peer = CD;
    ck_step(&f, I, 0); /* backend closed and online: come back */
    f.ours = I;
    ck_step(&f, I, 0); /* waits for the backend's InitWait */
    f.peer = IW;
    ck_step(&f, ID, BHXB_ACT_PUBLISH);
    /* A backend that went offline is not waited for. */
    f = view(BHXB_FRONTEND, CD, CD);
    f.peer_online = false;
    ck_step(&f, CD, 0);
    f.ours = I;
    ck_step(&f, CD, 0);
}
END_TEST

START_TEST(test_backend_follows_close_and_back)
{
    struct bhxb_view b = view(BHXB_BACKEND, C, CG);

    ck_step(&b, CG, BHXB_ACT_DISCONNECT);
    b.ours = CG;
    ck_step(&b, CG, 0); /* the frontend has not closed yet */
    b.peer = CD;
    ck_step(&b, CD, 0);
    b.ours = CD;
    ck_step(&b, CD, 0); /* online: waits for the frontend to come back */
    b.peer = I;
    ck_step(&b, IW, BHXB_ACT_PUBLISH);
    b.ready = false;
    ck_step(&b, CD, 0);
    /* Offline (libxl removing the device): removed once closed. */
    b = view(BHXB_BACKEND, CG, CD);
    b.online = false;
    ck_step(&b, CD, BHXB_ACT_REMOVE);
    b = view(BHXB_BACKEND, C, C);
    b.online = false;
    ck_step(&b, CG, BHXB_ACT_DISCONNECT);
    /* The frontend's directory vanished. */
    b = view(BHXB_BACKEND, C, U);
    ck_step(&b, CD, BHXB_ACT_DISCONNECT | BHXB_ACT_REMOVE);
}
END_TEST

START_TEST(test_errors_close_with_error_node)
{
    struct bhxb_view v = view(BHXB_FRONTEND, C, C);

    v.error = true;
    ck_step(&v, CG, BHXB_ACT_DISCONNECT | BHXB_ACT_FATAL);
    v.ours = CG;
    ck_step(&v, CG, 0); /* reported once */
    v.peer = CG;
    ck_step(&v, CD, 0);
    v.ours = CD;
    v.peer = CD;
    ck_step(&v, CD, 0); /* no reconnect while the error stands */
    v.error = false;
    ck_step(&v, I, 0);
    /* A peer writing garbage into its state node loses the device. */
    v = view(BHXB_BACKEND, C, BHXB_PEER_INVALID);
    ck_step(&v, CG, BHXB_ACT_DISCONNECT | BHXB_ACT_FATAL);
    v = view(BHXB_BACKEND, IW, 77);
    ck_step(&v, CG, BHXB_ACT_FATAL);
    v = view(BHXB_FRONTEND, CD, 9);
    ck_step(&v, CD, 0);
}
END_TEST

START_TEST(test_reconfiguration)
{
    struct bhxb_view b = view(BHXB_BACKEND, C, ID), f = view(BHXB_FRONTEND, C, C);

    b.reconfigure = true;
    ck_step(&b, C, 0); /* only a connected frontend can answer */
    b.peer = C;
    ck_step(&b, RG, 0);
    b.ours = RG;
    f.peer = RG;
    ck_step(&f, RD, BHXB_ACT_RECONFIGURE);
    f.ours = RD;
    b.peer = RD;
    ck_step(&b, C, BHXB_ACT_RECONFIGURE);
    f.peer = C;
    ck_step(&f, C, 0);
    /* Closing wins over a reconfiguration in progress. */
    b = view(BHXB_BACKEND, RG, CG);
    ck_step(&b, CG, BHXB_ACT_DISCONNECT);
    f = view(BHXB_FRONTEND, RD, CG);
    ck_step(&f, CD, BHXB_ACT_DISCONNECT);
    f = view(BHXB_FRONTEND, I, RG); /* stale backend from an earlier frontend */
    ck_step(&f, CG, 0);
}
END_TEST

/*
 * Every (role, our state, peer state, flags) combination: the decision is
 * defined, lands in a state this role may write, runs only the actions its
 * preconditions allow, and deciding again after applying it does nothing
 * (a duplicate watch event is harmless).
 */
static const XenbusState front_states[] = {I, ID, C, CG, CD, RD};
static const XenbusState back_states[] = {I, IW, C, CG, CD, RG};
static const int peers[] = {-7, BHXB_PEER_INVALID, U, I, IW, ID, C, CG, CD, RG, RD, 9, 1000};

static bool writable(enum bhxb_role role, XenbusState s)
{
    const XenbusState *set = role == BHXB_FRONTEND ? front_states : back_states;

    for (int i = 0; i < 6; i++)
        if (set[i] == s)
            return true;
    return false;
}

/* Checks one decision against the rules every decision obeys. */
static void check_rules(const struct bhxb_view *v, const struct bhxb_step *st)
{
    bool valid_peer = v->peer >= U && v->peer <= RD;
    bool attached = v->ours == C || v->ours == RG || v->ours == RD ||
                    (v->role == BHXB_FRONTEND && v->ours == ID);

    ck_assert(writable(v->role, st->next));
    if (st->actions & BHXB_ACT_FATAL)
        ck_assert(v->error || !valid_peer);
    if (st->actions & BHXB_ACT_PUBLISH)
        ck_assert(v->ready && !v->error && v->online && valid_peer);
    if ((st->actions & BHXB_ACT_CONNECT) && v->role == BHXB_FRONTEND)
        ck_assert(v->ours == ID && v->peer == C && !v->error);
    if ((st->actions & BHXB_ACT_CONNECT) && v->role == BHXB_BACKEND)
        ck_assert(!attached && (v->peer == ID || v->peer == C || v->peer == RD) && !v->error);
    if (st->actions & BHXB_ACT_DISCONNECT)
        ck_assert(attached);
    if (st->actions & BHXB_ACT_REMOVE)
        ck_assert(v->role == BHXB_BACKEND && st->next == CD);
    /* Leaving Closing/Closed only to start over, and only when healthy. */
    if ((v->ours == CG || v->ours == CD) && st->next != CG && st->next != CD)
        ck_assert(st->next == (v->role == BHXB_FRONTEND ? I : IW) && !v->error && v->online);
    /* An error or a lying peer never leaves us short of closing. */
    if ((v->error || !valid_peer) && v->ours != CD)
        ck_assert(st->next == CG || st->next == CD);
}

/*
 * Applies decisions as bhxb_machine_step does until one changes nothing.
 * That takes at most three steps (a ready backend meeting a connected
 * frontend that it is asked to reconfigure: InitWait, Connected,
 * Reconfiguring), after which the same input -- a duplicate event -- is
 * inert.
 */
static void check_one(struct bhxb_view v)
{
    for (int round = 0; round < 4; round++) {
        struct bhxb_step st = decide(&v);
        check_rules(&v, &st);
        if (st.next == v.ours && st.actions == 0)
            return;
        if (st.actions & BHXB_ACT_REMOVE)
            return; /* terminal: the caller stops feeding the machine */
        v.ours = st.next;
        if (st.next == RG)
            v.reconfigure = false; /* what bhxb_machine_step does */
    }
    ck_abort_msg("role %d: no rest after 4 steps, at %s for peer %d", v.role,
                 bhxb_state_name(v.ours), v.peer);
}

START_TEST(test_decide_exhaustive)
{
    int cases = 0;

    for (int role = BHXB_FRONTEND; role <= BHXB_BACKEND; role++) {
        const XenbusState *set = role == BHXB_FRONTEND ? front_states : back_states;
        for (int s = 0; s < 6; s++)
            for (size_t p = 0; p < sizeof(peers) / sizeof(peers[0]); p++)
                for (unsigned int flags = 0; flags < 32; flags++) {
                    struct bhxb_view v = {.role = role, .ours = set[s], .peer = peers[p]};
                    v.ready = flags & 1;
                    v.online = flags & 2;
                    v.error = flags & 4;
                    v.peer_online = flags & 8;
                    v.reconfigure = flags & 16;
                    check_one(v);
                    cases++;
                }
    }
    ck_assert_int_eq(cases, 2 * 6 * 13 * 32);
}
END_TEST

/* ---- two machines against each other ---- */

struct side {
    struct bhxb_machine m;
    struct side *peer;
    int stored;          /* our state as the store holds it */
    bool attached;       /* the driver holds a ring and an event channel */
    bool published;      /* our keys for the peer are there */
    int fail_cb;         /* the next n fallible callbacks fail */
    unsigned long calls; /* callbacks run, to prove duplicates run none */
    int reconfigs, fatals, removes;
};

static struct side *me(void *arg)
{
    struct side *s = arg;

    s->calls++;
    return s;
}

static bool is_front(const struct side *s)
{
    return s->m.view.role == BHXB_FRONTEND;
}

static int cb_fail(struct side *s, char *why, size_t len)
{
    if (s->fail_cb == 0)
        return 0;
    s->fail_cb--;
    snprintf(why, len, "injected");
    return -1;
}

static int sim_publish(void *arg, char *why, size_t len)
{
    struct side *s = me(arg);

    if (cb_fail(s, why, len))
        return -1;
    /* A frontend publishing twice without a disconnect would leak a ring. */
    ck_assert(!(is_front(s) && s->attached));
    s->attached = s->attached || is_front(s);
    s->published = true;
    return 0;
}

static int sim_connect(void *arg, char *why, size_t len)
{
    struct side *s = me(arg);

    if (cb_fail(s, why, len))
        return -1;
    if (is_front(s)) {
        /* The backend's connect-time keys exist once it is Connected. */
        ck_assert(s->attached && s->peer->stored == C && s->peer->attached);
    } else {
        /* The frontend's ring references are there and still granted. */
        ck_assert(!s->attached && s->peer->published && s->peer->attached);
        s->attached = true;
    }
    return 0;
}

static int sim_reconfigure(void *arg, char *why, size_t len)
{
    struct side *s = me(arg);

    if (cb_fail(s, why, len))
        return -1;
    ck_assert(s->attached && s->peer->attached);
    s->reconfigs++;
    return 0;
}

static void sim_disconnect(void *arg)
{
    struct side *s = me(arg);

    s->attached = false;
    s->published = false;
}

static void sim_fatal(void *arg, const char *why)
{
    struct side *s = me(arg);

    ck_assert(why[0] != '\0');
    s->fatals++;
}

static void sim_remove(void *arg)
{
    me(arg)->removes++;
}

static int sim_set_state(void *arg, XenbusState st)
{
    ((struct side *)arg)->stored = st;
    return 0;
}

static const struct bhxb_driver sim_driver = {
    .publish = sim_publish,
    .connect = sim_connect,
    .reconfigure = sim_reconfigure,
    .disconnect = sim_disconnect,
    .fatal = sim_fatal,
    .remove = sim_remove,
    .set_state = sim_set_state,
};

/* One watch event at s: read the peer's state now and step. */
static int run(struct side *s)
{
    int changes;
    unsigned long calls;

    if (is_front(s))
        s->m.view.peer_online = s->peer->m.view.online && !s->peer->m.view.error;
    changes = bhxb_machine_step(&s->m, s->peer->stored, &sim_driver, s);
    ck_assert_int_ge(changes, 0);
    ck_assert_int_eq(s->stored, s->m.view.ours);
    /* The same event again (xenstored may send duplicates) does nothing. */
    calls = s->calls;
    ck_assert_int_eq(bhxb_machine_step(&s->m, s->peer->stored, &sim_driver, s), 0);
    ck_assert_uint_eq(s->calls, calls);
    return changes;
}

static void pair_init(struct side *f, struct side *b)
{
    memset(f, 0, sizeof(*f));
    memset(b, 0, sizeof(*b));
    ck_assert_int_eq(bhxb_machine_init(&f->m, BHXB_FRONTEND), 0);
    ck_assert_int_eq(bhxb_machine_init(&b->m, BHXB_BACKEND), 0);
    f->peer = b;
    b->peer = f;
    f->stored = b->stored = I; /* as libxl writes them */
}

/* Runs both until neither moves; fails if they never settle. */
static void settle(struct side *f, struct side *b)
{
    for (int round = 0; round < 64; round++)
        if (run(f) + run(b) == 0 && run(f) == 0)
            return;
    ck_abort_msg("no quiescence: front %s back %s", bhxb_state_name(f->stored),
                 bhxb_state_name(b->stored));
}

/* A restarted driver: a new machine that writes Initialising first. */
static void restart(struct side *s)
{
    enum bhxb_role role = s->m.view.role;

    ck_assert_int_eq(bhxb_machine_init(&s->m, role), 0);
    s->m.view.ready = true;
    s->stored = I;
    s->attached = s->published = false;
}

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

enum fault {
    NONE,
    F_ERROR,
    B_ERROR,
    F_OFFLINE,
    B_OFFLINE,
    CB_FAIL,
    RECONF,
    F_RESTART,
    B_RESTART,
    NFAULTS
};

static void inject(enum fault fault, struct side *f, struct side *b, uint64_t *x)
{
    switch (fault) {
    case F_ERROR:
        f->m.view.error = true;
        break;
    case B_ERROR:
        b->m.view.error = true;
        break;
    case F_OFFLINE:
        f->m.view.online = false;
        break;
    case B_OFFLINE:
        b->m.view.online = false;
        break;
    case CB_FAIL:
        (rng(x) & 1 ? f : b)->fail_cb = 1;
        break;
    case RECONF:
        b->m.view.reconfigure = true;
        break;
    case F_RESTART:
        restart(f);
        break;
    case B_RESTART:
        restart(b);
        break;
    default:
        break;
    }
}

static void check_end(enum fault fault, struct side *f, struct side *b)
{
    bool quit = fault == F_ERROR || fault == B_ERROR || fault == F_OFFLINE || fault == B_OFFLINE ||
                f->m.view.error || b->m.view.error;

    if (!quit) {
        ck_assert_msg(f->stored == C && b->stored == C, "fault %d: front %s back %s", fault,
                      bhxb_state_name(f->stored), bhxb_state_name(b->stored));
        ck_assert(f->attached && b->attached && !b->m.view.reconfigure);
        ck_assert_int_eq(f->reconfigs, b->reconfigs);
        return;
    }
    ck_assert_msg(f->stored == CD && b->stored == CD, "fault %d: front %s back %s", fault,
                  bhxb_state_name(f->stored), bhxb_state_name(b->stored));
    ck_assert(!f->attached && !b->attached);
    ck_assert_int_eq(b->removes, fault == B_OFFLINE);
    if (fault == F_ERROR || fault == B_ERROR)
        ck_assert_int_ge((fault == F_ERROR ? f : b)->fatals, 1);
}

/*
 * Random interleavings of two machines: at each step one side handles a
 * watch event (it may have missed any number of the peer's transitions, or
 * see the same state again), a driver becomes ready, or a fault strikes.
 * Whatever the order, they settle Connected, or both Closed when one side
 * failed or went away; and once an error is cleared, they connect again.
 */
START_TEST(test_random_interleavings)
{
    for (uint64_t seed = 1; seed <= 3000; seed++) {
        uint64_t x = seed * 0x9e3779b97f4a7c15ull;
        struct side f, b;
        enum fault fault = (enum fault)(seed % NFAULTS);
        int when = (int)(rng(&x) % 60);

        pair_init(&f, &b);
        for (int step = 0; step < 120; step++) {
            unsigned int r = rng(&x) % 100;
            if (step == when)
                inject(fault, &f, &b, &x);
            if (r < 40)
                run(&f);
            else if (r < 80)
                run(&b);
            else if (r < 90)
                f.m.view.ready = true;
            else
                b.m.view.ready = true;
        }
        f.m.view.ready = b.m.view.ready = true;
        settle(&f, &b);
        check_end(fault, &f, &b);
        if (!f.m.view.error && !b.m.view.error)
            continue;
        /* The failed side's driver recovers: the pair comes back up. */
        f.m.view.error = b.m.view.error = false;
        settle(&f, &b);
        ck_assert_msg(f.stored == C && b.stored == C, "seed %lu: no reconnect: %s %s",
                      (unsigned long)seed, bhxb_state_name(f.stored), bhxb_state_name(b.stored));
    }
}
END_TEST

static int fail_set_state(void *arg, XenbusState st)
{
    (void)arg;
    (void)st;
    errno = EACCES;
    return -1;
}

START_TEST(test_machine_callbacks_and_failures)
{
    struct side f, b;
    struct bhxb_driver d = sim_driver;

    pair_init(&f, &b);
    ck_assert_int_eq(bhxb_machine_init(NULL, BHXB_FRONTEND), -1);
    ck_assert_int_eq(bhxb_machine_init(&f.m, 0), -1);
    ck_assert_int_eq(bhxb_machine_init(&f.m, BHXB_FRONTEND), 0);
    f.m.view.ready = b.m.view.ready = true;
    /* A failed connect is the driver's error: fatal once, then Closing. */
    run(&b);
    run(&f);
    ck_assert_int_eq(f.stored, ID);
    b.fail_cb = 1;
    run(&b);
    ck_assert_int_eq(b.stored, CG);
    ck_assert_int_eq(b.fatals, 1);
    ck_assert(b.m.view.error);
    ck_assert_ptr_nonnull(strstr(b.m.why, "connect failed: injected"));
    settle(&f, &b);
    ck_assert_int_eq(f.stored, CD);
    ck_assert_int_eq(b.stored, CD);
    /* A backend failing to publish as it comes back: reported, then Closing. */
    pair_init(&f, &b);
    f.m.view.ready = b.m.view.ready = true;
    f.m.view.ours = f.stored = I;
    b.m.view.ours = b.stored = CD;
    b.fail_cb = 1;
    ck_assert_int_eq(bhxb_machine_step(&b.m, I, &sim_driver, &b), 1);
    ck_assert_int_eq(b.stored, CG);
    ck_assert_int_eq(b.fatals, 1);
    ck_assert_ptr_nonnull(strstr(b.m.why, "publish failed"));
    settle(&f, &b);
    ck_assert_int_eq(f.stored, CD);
    ck_assert_int_eq(b.stored, CD);
    b.m.view.error = false; /* its driver recovers */
    settle(&f, &b);
    ck_assert_int_eq(f.stored, C);
    ck_assert_int_eq(b.stored, C);
    /* A state that cannot be written leaves the machine where it was. */
    pair_init(&f, &b);
    b.m.view.ready = true;
    d.set_state = fail_set_state;
    ck_assert_int_eq(bhxb_machine_step(&b.m, I, &d, &b), -1);
    ck_assert_int_eq(errno, EACCES);
    ck_assert_int_eq(b.m.view.ours, I);
    d.set_state = NULL;
    ck_assert_int_eq(bhxb_machine_step(&b.m, I, &d, &b), -1);
    ck_assert_int_eq(errno, EINVAL);
    /* After REMOVE the machine ignores everything. */
    pair_init(&f, &b);
    ck_assert_int_eq(bhxb_machine_step(&b.m, U, &sim_driver, &b), 1);
    ck_assert_int_eq(b.removes, 1);
    ck_assert(b.m.removed);
    ck_assert_int_eq(bhxb_machine_step(&b.m, I, &sim_driver, &b), 0);
    ck_assert_int_eq(b.removes, 1);
    /* A lying peer: the reason names its state node. */
    pair_init(&f, &b);
    ck_assert_int_eq(bhxb_machine_step(&f.m, BHXB_PEER_INVALID, &sim_driver, &f), 1);
    ck_assert_int_eq(f.stored, CG);
    ck_assert_int_eq(f.fatals, 1);
    ck_assert_ptr_nonnull(strstr(f.m.why, "state node"));
}
END_TEST

/* ---- parsers of peer-written values ---- */

#define PARSE_OK(call) ck_assert_int_eq((call), 0)
#define PARSE_BAD(call, err)                                                                       \
    do {                                                                                           \
        errno = 0;                                                                                 \
        ck_assert_int_eq((call), -1);                                                              \
        ck_assert_int_eq(errno, (err));                                                            \
    } while (0)
#define S(lit) (lit), (sizeof(lit) - 1)

START_TEST(test_parse_numbers)
{
    uint64_t u;
    int i;
    XenbusState st;
    uint32_t v;

    PARSE_OK(bhxb_parse_u64(S("0"), 0, UINT64_MAX, &u));
    ck_assert_uint_eq(u, 0);
    PARSE_OK(bhxb_parse_u64(S("18446744073709551615"), 0, UINT64_MAX, &u));
    ck_assert(u == UINT64_MAX);
    PARSE_BAD(bhxb_parse_u64(S("18446744073709551616"), 0, UINT64_MAX, &u), ERANGE);
    PARSE_BAD(bhxb_parse_u64(S("100000000000000000000000"), 0, UINT64_MAX, &u), ERANGE);
    /* Everything atoi or strtoul would let through. */
    PARSE_BAD(bhxb_parse_u64(S(""), 0, 9, &u), EPROTO);
    PARSE_BAD(bhxb_parse_u64(S(" 4"), 0, 9, &u), EPROTO);
    PARSE_BAD(bhxb_parse_u64(S("4 "), 0, 9, &u), EPROTO);
    PARSE_BAD(bhxb_parse_u64(S("4x"), 0, 9, &u), EPROTO);
    PARSE_BAD(bhxb_parse_u64(S("+4"), 0, 9, &u), EPROTO);
    PARSE_BAD(bhxb_parse_u64(S("-4"), 0, 9, &u), EPROTO);
    PARSE_BAD(bhxb_parse_u64(S("04"), 0, 9, &u), EPROTO);
    PARSE_BAD(bhxb_parse_u64(S("0x4"), 0, 9, &u), EPROTO);
    PARSE_BAD(bhxb_parse_u64(S("4\0"), 0, 9, &u), EPROTO); /* an embedded NUL */
    PARSE_BAD(bhxb_parse_u64(S("999999999999999999999999x"), 0, 9, &u), EPROTO);
    PARSE_BAD(bhxb_parse_u64(S("10"), 0, 9, &u), ERANGE);
    PARSE_BAD(bhxb_parse_u64(S("4"), 5, 9, &u), ERANGE);
    PARSE_BAD(bhxb_parse_u64(NULL, 0, 0, 9, &u), EPROTO);
    PARSE_BAD(bhxb_parse_u64(S("4"), 0, 9, NULL), EINVAL);

    PARSE_OK(bhxb_parse_int(S("-2147483648"), INT_MIN, INT_MAX, &i));
    ck_assert_int_eq(i, INT_MIN);
    PARSE_OK(bhxb_parse_int(S("2147483647"), INT_MIN, INT_MAX, &i));
    ck_assert_int_eq(i, INT_MAX);
    PARSE_BAD(bhxb_parse_int(S("2147483648"), INT_MIN, INT_MAX, &i), ERANGE);
    PARSE_BAD(bhxb_parse_int(S("-2147483649"), INT_MIN, INT_MAX, &i), ERANGE);
    PARSE_BAD(bhxb_parse_int(S("-0"), INT_MIN, INT_MAX, &i), EPROTO);
    PARSE_BAD(bhxb_parse_int(S("-"), INT_MIN, INT_MAX, &i), EPROTO);
    PARSE_BAD(bhxb_parse_int(S("--1"), INT_MIN, INT_MAX, &i), EPROTO);

    PARSE_OK(bhxb_parse_state(S("4"), &st));
    ck_assert_int_eq(st, C);
    PARSE_OK(bhxb_parse_state(S("8"), &st));
    PARSE_BAD(bhxb_parse_state(S("9"), &st), ERANGE);
    PARSE_BAD(bhxb_parse_state(S("4\n"), &st), EPROTO);

    PARSE_OK(bhxb_parse_evtchn(S("131071"), &v));
    PARSE_BAD(bhxb_parse_evtchn(S("131072"), &v), ERANGE);
    PARSE_BAD(bhxb_parse_evtchn(S("0"), &v), ERANGE); /* port 0 is never bound */
    PARSE_OK(bhxb_parse_gref(S("4294967295"), &v));
    ck_assert_uint_eq(v, UINT32_MAX);
    PARSE_BAD(bhxb_parse_gref(S("4294967296"), &v), ERANGE);
}
END_TEST

START_TEST(test_parse_bool_str_list)
{
    bool b;
    char buf[8];
    uint32_t list[4];
    size_t n;

    PARSE_OK(bhxb_parse_bool(S("1"), &b));
    ck_assert(b);
    PARSE_OK(bhxb_parse_bool(S("0"), &b));
    ck_assert(!b);
    PARSE_BAD(bhxb_parse_bool(S("2"), &b), EPROTO);
    PARSE_BAD(bhxb_parse_bool(S("01"), &b), EPROTO);
    PARSE_BAD(bhxb_parse_bool(S("true"), &b), EPROTO);
    PARSE_BAD(bhxb_parse_bool(S(""), &b), EPROTO);

    PARSE_OK(bhxb_parse_str(S("aio:/x"), buf, sizeof(buf)));
    ck_assert_str_eq(buf, "aio:/x");
    PARSE_OK(bhxb_parse_str(S(""), buf, sizeof(buf)));
    PARSE_BAD(bhxb_parse_str(S("12345678"), buf, sizeof(buf)), ERANGE);
    PARSE_BAD(bhxb_parse_str(S("a\nb"), buf, sizeof(buf)), EPROTO);
    PARSE_BAD(bhxb_parse_str(S("a\0b"), buf, sizeof(buf)), EPROTO);
    PARSE_BAD(bhxb_parse_str(S("\x1b[2J"), buf, sizeof(buf)), EPROTO);

    PARSE_OK(bhxb_parse_u32_list(S("8 9 4294967295"), list, 4, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(list[2], UINT32_MAX);
    PARSE_OK(bhxb_parse_u32_list(S("7"), list, 1, &n));
    ck_assert_uint_eq(n, 1);
    PARSE_BAD(bhxb_parse_u32_list(S("1 2 3 4 5"), list, 4, &n), ERANGE);
    PARSE_BAD(bhxb_parse_u32_list(S("1  2"), list, 4, &n), EPROTO);
    PARSE_BAD(bhxb_parse_u32_list(S(" 1"), list, 4, &n), EPROTO);
    PARSE_BAD(bhxb_parse_u32_list(S("1 "), list, 4, &n), EPROTO);
    PARSE_BAD(bhxb_parse_u32_list(S(""), list, 4, &n), EPROTO);
    PARSE_BAD(bhxb_parse_u32_list(S("1 4294967296"), list, 4, &n), ERANGE);
}
END_TEST

/* ---- keys, state and error nodes, over the fake store ---- */

#define DIR "/local/domain/0/backend/vbd/3/51712"

static struct xs_handle *open_store(void)
{
    struct xs_handle *xs = xs_open(0);

    ck_assert_ptr_nonnull(xs);
    return xs;
}

static void put(struct xs_handle *xs, const char *path, const char *value)
{
    ck_assert(xs_write(xs, XBT_NULL, path, value, (unsigned int)strlen(value)));
}

static char *get(struct xs_handle *xs, const char *path)
{
    unsigned int len;

    return xs_read(xs, XBT_NULL, path, &len); /* the caller frees */
}

static void ck_value(struct xs_handle *xs, const char *path, const char *want)
{
    char *v = get(xs, path);

    ck_assert_msg(v != NULL, "%s: missing", path);
    ck_assert_str_eq(v, want);
    free(v);
}

struct feats {
    int i;
    unsigned int u;
    unsigned long ul;
    bool persistent, discard;
    char mode[4];
};

static void feat_keys(struct feats *f, struct bhxb_key *k)
{
    struct bhxb_key keys[] = {
        {"offset", BHXB_INT, &f->i, 0, false, 0},
        {"max-ring-page-order", BHXB_UINT, &f->u, 0, true, 4},
        {"sectors", BHXB_ULONG, &f->ul, 0, true, 0},
        {"feature-persistent", BHXB_BOOL, &f->persistent, 0, false, 0},
        {"feature-discard", BHXB_BOOL, &f->discard, 0, false, 0},
        {"mode", BHXB_STR, f->mode, sizeof(f->mode), true, 0},
    };
    memcpy(k, keys, sizeof(keys));
}

START_TEST(test_keys_round_trip)
{
    struct xs_handle *xs = open_store();
    struct feats out = {-5, 4, 0xffffffffffUL, true, false, "w"}, in;
    struct bhxb_key wk[6], rk[6];
    unsigned long writes;

    feat_keys(&out, wk);
    writes = xsfake_writes();
    ck_assert_int_eq(bhxb_write_keys(xs, DIR, wk, 6), 0);
    ck_assert_uint_gt(xsfake_writes(), writes);
    ck_value(xs, DIR "/offset", "-5");
    ck_value(xs, DIR "/sectors", "1099511627775");
    ck_value(xs, DIR "/feature-persistent", "1");
    ck_value(xs, DIR "/feature-discard", "0");
    memset(&in, 0, sizeof(in));
    in.discard = true; /* a bool read as "0" must come back false */
    feat_keys(&in, rk);
    ck_assert_int_eq(bhxb_read_keys(xs, DIR, rk, 6, NULL), 0);
    ck_assert_int_eq(in.i, -5);
    ck_assert_uint_eq(in.u, 4);
    ck_assert_uint_eq(in.ul, 0xffffffffffUL);
    ck_assert(in.persistent && !in.discard);
    ck_assert_str_eq(in.mode, "w");
    xs_close(xs);
}
END_TEST

START_TEST(test_keys_missing_and_bogus)
{
    struct xs_handle *xs = open_store();
    struct feats in = {.i = 42, .u = 9, .persistent = true};
    struct bhxb_key rk[6];
    const char *bad = NULL;

    feat_keys(&in, rk);
    put(xs, DIR "/max-ring-page-order", "2");
    put(xs, DIR "/sectors", "100");
    /* Optional keys missing: ints untouched, feature booleans false. */
    put(xs, DIR "/mode", "r");
    ck_assert_int_eq(bhxb_read_keys(xs, DIR, rk, 6, &bad), 0);
    ck_assert_int_eq(in.i, 42);
    ck_assert(!in.persistent);
    /* A required key missing: ENOENT, named, nothing stored. */
    ck_assert(xs_rm(xs, XBT_NULL, DIR "/mode"));
    in.u = 9;
    ck_assert_int_eq(bhxb_read_keys(xs, DIR, rk, 6, &bad), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_str_eq(bad, "mode");
    ck_assert_uint_eq(in.u, 9);
    put(xs, DIR "/mode", "w");
    /* Above the key's maximum (order 4): ERANGE; garbage: EPROTO. */
    put(xs, DIR "/max-ring-page-order", "5");
    ck_assert_int_eq(bhxb_read_keys(xs, DIR, rk, 6, &bad), -1);
    ck_assert_int_eq(errno, ERANGE);
    ck_assert_str_eq(bad, "max-ring-page-order");
    put(xs, DIR "/max-ring-page-order", "2");
    put(xs, DIR "/feature-persistent", "yes");
    ck_assert_int_eq(bhxb_read_keys(xs, DIR, rk, 6, &bad), -1);
    ck_assert_int_eq(errno, EPROTO);
    ck_assert_str_eq(bad, "feature-persistent");
    put(xs, DIR "/feature-persistent", "1");
    put(xs, DIR "/mode", "rw+x"); /* longer than mode[4] */
    ck_assert_int_eq(bhxb_read_keys(xs, DIR, rk, 6, &bad), -1);
    ck_assert_int_eq(errno, ERANGE);
    ck_assert_uint_eq(in.u, 9);
    xs_close(xs);
}
END_TEST

START_TEST(test_keys_transactions)
{
    struct xs_handle *xs = open_store();
    struct feats out = {1, 2, 3, true, true, "r"}, in;
    struct bhxb_key wk[6], rk[6];

    feat_keys(&out, wk);
    /* Conflicts are retried... */
    xsfake_fail_commits(BHXB_RETRIES - 1);
    ck_assert_int_eq(bhxb_write_keys(xs, DIR, wk, 6), 0);
    ck_value(xs, DIR "/mode", "r");
    /* ...but not forever, and a failed write leaves nothing behind. */
    ck_assert(xs_rm(xs, XBT_NULL, DIR));
    xsfake_fail_commits(BHXB_RETRIES);
    ck_assert_int_eq(bhxb_write_keys(xs, DIR, wk, 6), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_ptr_null(get(xs, DIR "/offset"));
    xsfake_fail_op("write", 3, ENOSPC);
    ck_assert_int_eq(bhxb_write_keys(xs, DIR, wk, 6), -1);
    ck_assert_int_eq(errno, ENOSPC);
    ck_assert_ptr_null(get(xs, DIR "/offset"));
    /* A peer writing while we read: the read retries and sees one snapshot. */
    ck_assert_int_eq(bhxb_write_keys(xs, DIR, wk, 6), 0);
    xsfake_race_write("transaction_end", DIR "/sectors", "77");
    memset(&in, 0, sizeof(in));
    feat_keys(&in, rk);
    ck_assert_int_eq(bhxb_read_keys(xs, DIR, rk, 6, NULL), 0);
    ck_assert_uint_eq(in.ul, 77);
    xsfake_fail_op("transaction_start", 0, EIO);
    ck_assert_int_eq(bhxb_read_keys(xs, DIR, rk, 6, NULL), -1);
    ck_assert_int_eq(errno, EIO);
    ck_assert_int_eq(bhxb_write_keys(NULL, DIR, wk, 6), -1);
    ck_assert_int_eq(errno, EINVAL);
    xs_close(xs);
}
END_TEST

START_TEST(test_state_node)
{
    struct xs_handle *xs = open_store();
    unsigned long writes;

    ck_assert_int_eq(bhxb_read_state(xs, DIR), U);
    ck_assert_int_eq(bhxb_switch_state(xs, DIR, C), -1); /* never recreate a device */
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_ptr_null(get(xs, DIR));
    put(xs, DIR "/state", "1");
    ck_assert_int_eq(bhxb_switch_state(xs, DIR, IW), 0);
    ck_assert_int_eq(bhxb_read_state(xs, DIR), IW);
    /* Unchanged: no write, so no watch fires at the peer. */
    writes = xsfake_writes();
    ck_assert_int_eq(bhxb_switch_state(xs, DIR, IW), 0);
    ck_assert_uint_eq(xsfake_writes(), writes);
    ck_assert_int_eq(bhxb_switch_state(xs, DIR, 9), -1);
    ck_assert_int_eq(errno, EINVAL);
    put(xs, DIR "/state", "4 ");
    ck_assert_int_eq(bhxb_read_state(xs, DIR), BHXB_PEER_INVALID);
    put(xs, DIR "/state", "42");
    ck_assert_int_eq(bhxb_read_state(xs, DIR), BHXB_PEER_INVALID);
    xsfake_fail_op("read", 0, EACCES);
    ck_assert_int_eq(bhxb_read_state(xs, DIR), -2);
    ck_assert_int_eq(errno, EACCES);
    /* online: "1" or missing is online; anything else is not. */
    ck_assert(bhxb_read_online(xs, DIR));
    put(xs, DIR "/online", "0");
    ck_assert(!bhxb_read_online(xs, DIR));
    put(xs, DIR "/online", "1");
    ck_assert(bhxb_read_online(xs, DIR));
    ck_assert(bhxb_peer_online(xs, DIR));
    put(xs, DIR "/error", "5 broken");
    ck_assert(!bhxb_peer_online(xs, DIR));
    put(xs, DIR "/online", "01");
    ck_assert(!bhxb_read_online(xs, DIR));
    xs_close(xs);
}
END_TEST

START_TEST(test_dev_fatal)
{
    struct xs_handle *xs = open_store();
    char buf[16];

    ck_assert_int_eq(bhxb_dev_fatal(xs, DIR, -EPROTO, "bogus ring-ref"), -1);
    ck_assert_int_eq(errno, ENOENT); /* the device is gone: write nothing */
    ck_assert_ptr_null(get(xs, DIR "/error"));
    put(xs, DIR "/state", "4");
    ck_assert_int_eq(bhxb_dev_fatal(xs, DIR, -EPROTO, "ring-ref %s\nis bogus", "x"), 0);
    ck_value(xs, DIR "/error", "71 ring-ref x is bogus");
    ck_assert_int_eq(bhxb_read_state(xs, DIR), CG);
    ck_assert_int_eq(bhxb_read_error(xs, DIR, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "71 ring-ref x i"); /* bounded */
    put(xs, DIR "/error", "evil\x1b[2Jline\nbreak");
    ck_assert_int_eq(bhxb_read_error(xs, DIR, buf, sizeof(buf)), 0);
    ck_assert_ptr_null(strchr(buf, '\n'));
    ck_assert_ptr_null(strchr(buf, '\x1b'));
    ck_assert(xs_rm(xs, XBT_NULL, DIR "/error"));
    ck_assert_int_eq(bhxb_read_error(xs, DIR, buf, sizeof(buf)), -1);
    ck_assert_int_eq(errno, ENOENT);
    xs_close(xs);
}
END_TEST

/* ---- the device layout, against lists derived from libxl ---- */

/*
 * Golden lists, one "path|value|perms" per node, sorted by path, perms as
 * xenstore-ls -p prints them.  Derived from libxl (Xen 4.17):
 * libxl__device_generic_add makes the frontend directory {frontend: none,
 * backend: read} and the backend directory {backend: none, frontend:
 * read}, writes backend/frontend and frontend/backend links, and copies the
 * backend keys (bents) with frontend/backend links to /libxl/<domid>/device,
 * which inherits /libxl/<domid>'s dom0-only permissions.  Keys inherit
 * their directory's permissions, except ro_fents (a vif's mtu), written in
 * the frontend directory with the backend directory's permissions.
 * libxl__device_add_async and device_disk_add add frontend-id, online=1,
 * state=1 to the backend and backend-id, state=1 to the frontend; vifs add
 * handle on both sides (libxl_nic.c), disks virtual-device on the frontend
 * (libxl_disk.c).  The configuration keys (params, mode, mac, ...) below
 * are what those files write for the spec in each test's comment.
 */
static void ck_golden(struct bhxb_layout *l, const char *const *want, size_t n)
{
    bhxb_layout_sort(l);
    for (size_t i = 0; i < l->n && i < n; i++) {
        char got[1024], perms[64];
        ck_assert_int_gt(
            bhxb_perms_format(l->nodes[i].perms, l->nodes[i].nperms, perms, sizeof(perms)), 0);
        snprintf(got, sizeof(got), "%s|%s|%s", l->nodes[i].path, l->nodes[i].value, perms);
        ck_assert_str_eq(got, want[i]);
    }
    ck_assert_uint_eq(l->n, n);
}

/* disk = [ "/srv/guest.img,raw,xvda,rw" ] served by dom0 (backend phy). */
START_TEST(test_layout_vbd_dom0)
{
    static const char *const want[] = {
        "/libxl/3/device/vbd/51712||n0",
        "/libxl/3/device/vbd/51712/backend|/local/domain/0/backend/vbd/3/51712|n0",
        "/libxl/3/device/vbd/51712/dev|xvda|n0",
        "/libxl/3/device/vbd/51712/device-type|disk|n0",
        "/libxl/3/device/vbd/51712/frontend|/local/domain/3/device/vbd/51712|n0",
        "/libxl/3/device/vbd/51712/frontend-id|3|n0",
        "/libxl/3/device/vbd/51712/mode|w|n0",
        "/libxl/3/device/vbd/51712/online|1|n0",
        "/libxl/3/device/vbd/51712/params|/srv/guest.img|n0",
        "/libxl/3/device/vbd/51712/state|1|n0",
        "/libxl/3/device/vbd/51712/type|phy|n0",
        "/local/domain/0/backend/vbd/3/51712||n0,r3",
        "/local/domain/0/backend/vbd/3/51712/dev|xvda|n0,r3",
        "/local/domain/0/backend/vbd/3/51712/device-type|disk|n0,r3",
        "/local/domain/0/backend/vbd/3/51712/frontend|/local/domain/3/device/vbd/51712|n0,r3",
        "/local/domain/0/backend/vbd/3/51712/frontend-id|3|n0,r3",
        "/local/domain/0/backend/vbd/3/51712/mode|w|n0,r3",
        "/local/domain/0/backend/vbd/3/51712/online|1|n0,r3",
        "/local/domain/0/backend/vbd/3/51712/params|/srv/guest.img|n0,r3",
        "/local/domain/0/backend/vbd/3/51712/state|1|n0,r3",
        "/local/domain/0/backend/vbd/3/51712/type|phy|n0,r3",
        "/local/domain/3/device/vbd/51712||n3,r0",
        "/local/domain/3/device/vbd/51712/backend|/local/domain/0/backend/vbd/3/51712|n3,r0",
        "/local/domain/3/device/vbd/51712/backend-id|0|n3,r0",
        "/local/domain/3/device/vbd/51712/device-type|disk|n3,r0",
        "/local/domain/3/device/vbd/51712/state|1|n3,r0",
        "/local/domain/3/device/vbd/51712/trusted|1|n3,r0",
        "/local/domain/3/device/vbd/51712/virtual-device|51712|n3,r0",
    };
    struct bhxb_dev d = {"vbd", NULL, 3, 0, 51712};
    struct bhxb_layout *l = bhxb_layout_new(&d);

    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "params", "%s", "/srv/guest.img"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "dev", "xvda"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "type", "phy"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "mode", "w"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "device-type", "disk"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_FRONT, "device-type", "disk"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_FRONT, "trusted", "1"), 0);
    ck_golden(l, want, sizeof(want) / sizeof(want[0]));
    bhxb_layout_free(l);
}
END_TEST

/* disk = [ "backend=1,vdev=xvdb,target=/srv/d.img,backendtype=qdisk,access=ro" ]. */
START_TEST(test_layout_qdisk_driver_domain)
{
    static const char *const want[] = {
        "/libxl/3/device/vbd/51728||n0",
        "/libxl/3/device/vbd/51728/backend|/local/domain/1/backend/qdisk/3/51728|n0",
        "/libxl/3/device/vbd/51728/frontend|/local/domain/3/device/vbd/51728|n0",
        "/libxl/3/device/vbd/51728/frontend-id|3|n0",
        "/libxl/3/device/vbd/51728/mode|r|n0",
        "/libxl/3/device/vbd/51728/online|1|n0",
        "/libxl/3/device/vbd/51728/params|aio:/srv/d.img|n0",
        "/libxl/3/device/vbd/51728/state|1|n0",
        "/local/domain/1/backend/qdisk/3/51728||n1,r3",
        "/local/domain/1/backend/qdisk/3/51728/frontend|/local/domain/3/device/vbd/51728|n1,r3",
        "/local/domain/1/backend/qdisk/3/51728/frontend-id|3|n1,r3",
        "/local/domain/1/backend/qdisk/3/51728/mode|r|n1,r3",
        "/local/domain/1/backend/qdisk/3/51728/online|1|n1,r3",
        "/local/domain/1/backend/qdisk/3/51728/params|aio:/srv/d.img|n1,r3",
        "/local/domain/1/backend/qdisk/3/51728/state|1|n1,r3",
        "/local/domain/3/device/vbd/51728||n3,r1",
        "/local/domain/3/device/vbd/51728/backend|/local/domain/1/backend/qdisk/3/51728|n3,r1",
        "/local/domain/3/device/vbd/51728/backend-id|1|n3,r1",
        "/local/domain/3/device/vbd/51728/state|1|n3,r1",
        "/local/domain/3/device/vbd/51728/virtual-device|51728|n3,r1",
    };
    struct bhxb_dev d = {"vbd", "qdisk", 3, 1, 51728};
    struct bhxb_layout *l = bhxb_layout_new(&d);

    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "params", "aio:%s", "/srv/d.img"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "mode", "r"), 0);
    ck_golden(l, want, sizeof(want) / sizeof(want[0]));
    bhxb_layout_free(l);
}
END_TEST

static void vif_keys(struct bhxb_layout *l)
{
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "mac", "00:16:3e:01:02:03"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "bridge", "xenbr0"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "type", "vif"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "mtu", "1500"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_FRONT, "mac", "00:16:3e:01:02:03"), 0);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_FRONT_RO, "mtu", "1500"), 0);
}

/* vif = [ "mac=00:16:3e:01:02:03,bridge=xenbr0" ] served by dom0. */
START_TEST(test_layout_vif_dom0)
{
    static const char *const want[] = {
        "/libxl/3/device/vif/0||n0",
        "/libxl/3/device/vif/0/backend|/local/domain/0/backend/vif/3/0|n0",
        "/libxl/3/device/vif/0/bridge|xenbr0|n0",
        "/libxl/3/device/vif/0/frontend|/local/domain/3/device/vif/0|n0",
        "/libxl/3/device/vif/0/frontend-id|3|n0",
        "/libxl/3/device/vif/0/handle|0|n0",
        "/libxl/3/device/vif/0/mac|00:16:3e:01:02:03|n0",
        "/libxl/3/device/vif/0/mtu|1500|n0",
        "/libxl/3/device/vif/0/online|1|n0",
        "/libxl/3/device/vif/0/state|1|n0",
        "/libxl/3/device/vif/0/type|vif|n0",
        "/local/domain/0/backend/vif/3/0||n0,r3",
        "/local/domain/0/backend/vif/3/0/bridge|xenbr0|n0,r3",
        "/local/domain/0/backend/vif/3/0/frontend|/local/domain/3/device/vif/0|n0,r3",
        "/local/domain/0/backend/vif/3/0/frontend-id|3|n0,r3",
        "/local/domain/0/backend/vif/3/0/handle|0|n0,r3",
        "/local/domain/0/backend/vif/3/0/mac|00:16:3e:01:02:03|n0,r3",
        "/local/domain/0/backend/vif/3/0/mtu|1500|n0,r3",
        "/local/domain/0/backend/vif/3/0/online|1|n0,r3",
        "/local/domain/0/backend/vif/3/0/state|1|n0,r3",
        "/local/domain/0/backend/vif/3/0/type|vif|n0,r3",
        "/local/domain/3/device/vif/0||n3,r0",
        "/local/domain/3/device/vif/0/backend|/local/domain/0/backend/vif/3/0|n3,r0",
        "/local/domain/3/device/vif/0/backend-id|0|n3,r0",
        "/local/domain/3/device/vif/0/handle|0|n3,r0",
        "/local/domain/3/device/vif/0/mac|00:16:3e:01:02:03|n3,r0",
        "/local/domain/3/device/vif/0/mtu|1500|n0,r3", /* ro_fents: the guest cannot change it */
        "/local/domain/3/device/vif/0/state|1|n3,r0",
    };
    struct bhxb_dev d = {"vif", NULL, 3, 0, 0};
    struct bhxb_layout *l = bhxb_layout_new(&d);

    ck_assert_ptr_nonnull(l);
    vif_keys(l);
    ck_golden(l, want, sizeof(want) / sizeof(want[0]));
    bhxb_layout_free(l);
}
END_TEST

/* The same vif served by driver domain 1: only ids and owners change. */
START_TEST(test_layout_vif_driver_domain)
{
    struct bhxb_dev d = {"vif", NULL, 3, 1, 2};
    struct bhxb_layout *l = bhxb_layout_new(&d);
    const struct bhxb_node *nd;
    char perms[32];

    ck_assert_ptr_nonnull(l);
    vif_keys(l);
    ck_assert_str_eq(l->paths.backend, "/local/domain/1/backend/vif/3/2");
    ck_assert_str_eq(l->paths.frontend, "/local/domain/3/device/vif/2");
    ck_assert_str_eq(l->paths.libxl, "/libxl/3/device/vif/2");
    ck_assert_ptr_nonnull(nd = bhxb_layout_find(l, "/local/domain/3/device/vif/2/mtu"));
    bhxb_perms_format(nd->perms, nd->nperms, perms, sizeof(perms));
    ck_assert_str_eq(perms, "n1,r3");
    ck_assert_ptr_nonnull(nd = bhxb_layout_find(l, "/local/domain/3/device/vif/2/backend-id"));
    ck_assert_str_eq(nd->value, "1");
    ck_assert_ptr_nonnull(nd = bhxb_layout_find(l, "/local/domain/1/backend/vif/3/2/handle"));
    ck_assert_str_eq(nd->value, "2");
    bhxb_perms_format(nd->perms, nd->nperms, perms, sizeof(perms));
    ck_assert_str_eq(perms, "n1,r3");
    ck_assert_ptr_nonnull(nd = bhxb_layout_find(l, "/libxl/3/device/vif/2/mac"));
    bhxb_perms_format(nd->perms, nd->nperms, perms, sizeof(perms));
    ck_assert_str_eq(perms, "n0");
    /* The trusted copy has the backend keys, never the frontend's. */
    ck_assert_ptr_null(bhxb_layout_find(l, "/libxl/3/device/vif/2/backend-id"));
    ck_assert_uint_eq(l->n, 28);
    bhxb_layout_free(l);
}
END_TEST

START_TEST(test_layout_refusals)
{
    struct bhxb_dev d = {"vbd", NULL, 3, 0, 1};
    struct bhxb_paths p;
    struct bhxb_layout *l = bhxb_layout_new(&d);
    struct xs_permissions xp[2] = {{1, XS_PERM_NONE}, {2, XS_PERM_READ | XS_PERM_WRITE}};
    char small[4], buf[32];

    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "a/b", "x"), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_BACK, "", "x"), -1);
    ck_assert_int_eq(bhxb_layout_set(l, 7, "k", "x"), -1);
    /* Setting a key twice replaces it. */
    ck_assert_int_eq(bhxb_layout_set(l, BHXB_FRONT, "state", "3"), 0);
    ck_assert_str_eq(bhxb_layout_find(l, "/local/domain/3/device/vbd/1/state")->value, "3");
    bhxb_layout_free(l);
    d.kind = "../x";
    ck_assert_int_eq(bhxb_dev_paths(&d, &p), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(bhxb_layout_new(&d));
    d.kind = "vbd";
    d.backend_kind = "Q/disk";
    ck_assert_int_eq(bhxb_dev_paths(&d, &p), -1);
    ck_assert_int_eq(bhxb_perms_format(xp, 2, small, sizeof(small)), -1);
    ck_assert_int_eq(errno, ERANGE);
    ck_assert_int_eq(bhxb_perms_format(xp, 2, buf, sizeof(buf)), 5);
    ck_assert_str_eq(buf, "n1,b2");
}
END_TEST

/*
 * The layout written to the store as dom0, then used from each domain:
 * what xenstored's permissions then allow is what the handshake needs.
 */
START_TEST(test_layout_write_and_permissions)
{
    struct xs_handle *ts = open_store(), *fe = open_store(), *be = open_store();
    struct bhxb_dev d = {"vif", NULL, 3, 1, 0};
    struct bhxb_layout *l = bhxb_layout_new(&d);
    char *v;

    xsfake_set_domid(fe, 3);
    xsfake_set_domid(be, 1);
    ck_assert_ptr_nonnull(l);
    vif_keys(l);
    /* A stale node from an earlier device under the same path is removed. */
    put(ts, "/local/domain/3/device/vif/0/stale", "x");
    xsfake_fail_commits(2);
    ck_assert_int_eq(bhxb_layout_write(ts, l), 0);
    ck_assert_ptr_null(get(ts, "/local/domain/3/device/vif/0/stale"));
    ck_value(ts, "/local/domain/1/backend/vif/3/0/frontend", "/local/domain/3/device/vif/0");
    /* Each side writes its own state and reads the other's... */
    ck_assert_int_eq(bhxb_switch_state(fe, l->paths.frontend, ID), 0);
    ck_assert_int_eq(bhxb_switch_state(be, l->paths.backend, IW), 0);
    ck_assert_int_eq(bhxb_read_state(fe, l->paths.backend), IW);
    ck_assert_int_eq(bhxb_read_state(be, l->paths.frontend), ID);
    ck_value(fe, "/local/domain/3/device/vif/0/mtu", "1500");
    /* ...but never writes the other's, nor the read-only mtu, nor reads the trusted copy. */
    ck_assert_int_eq(bhxb_switch_state(fe, l->paths.backend, C), -1);
    ck_assert_int_eq(errno, EACCES);
    ck_assert_int_eq(bhxb_switch_state(be, l->paths.frontend, C), -1);
    ck_assert(!xs_write(fe, XBT_NULL, "/local/domain/3/device/vif/0/mtu", "9000", 4));
    ck_assert_ptr_null(v = get(be, "/libxl/3/device/vif/0/backend"));
    ck_assert_int_eq(errno, EACCES);
    ck_assert_ptr_null(v = get(fe, "/libxl/3/device/vif/0/backend"));
    /* A frontend key it creates itself is its own and the backend can read it. */
    ck_assert(xs_write(fe, XBT_NULL, "/local/domain/3/device/vif/0/tx-ring-ref", "8", 1));
    ck_value(be, "/local/domain/3/device/vif/0/tx-ring-ref", "8");
    bhxb_layout_free(l);
    xs_close(ts);
    xs_close(fe);
    xs_close(be);
}
END_TEST

/* A domain's devices go in one transaction: all of them, or none. */
START_TEST(test_layouts_write_all_or_nothing)
{
    struct xs_handle *ts = open_store();
    struct bhxb_dev a = {"vbd", NULL, 3, 1, 51712}, b = {"vif", NULL, 3, 1, 0};
    const struct bhxb_layout *ls[2];
    struct bhxb_layout *la = bhxb_layout_new(&a), *lb = bhxb_layout_new(&b);
    char *v;

    ck_assert_ptr_nonnull(la);
    ck_assert_ptr_nonnull(lb);
    ls[0] = la;
    ls[1] = lb;
    xsfake_fail_commits(2); /* conflicts are retried as one */
    ck_assert_int_eq(bhxb_layouts_write(ts, ls, 2), 0);
    ck_value(ts, "/local/domain/1/backend/vbd/3/51712/frontend", "/local/domain/3/device/vbd/51712");
    ck_value(ts, "/local/domain/1/backend/vif/3/0/frontend", "/local/domain/3/device/vif/0");
    xs_rm(ts, XBT_NULL, "/local/domain/1/backend");
    xs_rm(ts, XBT_NULL, "/local/domain/3/device");
    /* A failure in the second device's writes leaves the first unwritten too. */
    xsfake_fail_op("write", 3 + (int)la->n, EIO);
    ck_assert_int_eq(bhxb_layouts_write(ts, ls, 2), -1);
    ck_assert_ptr_null(v = get(ts, "/local/domain/1/backend/vbd/3/51712/frontend"));
    ls[1] = NULL;
    ck_assert_int_eq(bhxb_layouts_write(ts, ls, 2), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(bhxb_layouts_write(ts, NULL, 0), 0);
    bhxb_layout_free(la);
    bhxb_layout_free(lb);
    xs_close(ts);
}
END_TEST

/* ---- watches ---- */

struct hits {
    int n;
    char last[256];
    bhxb_watches *w;
    int remove_id; /* >= 0: the callback removes this watch */
};

static void on_watch(void *arg, const char *path)
{
    struct hits *h = arg;

    h->n++;
    snprintf(h->last, sizeof(h->last), "%s", path);
    if (h->remove_id >= 0) {
        ck_assert_int_eq(bhxb_watch_remove(h->w, h->remove_id), 0);
        h->remove_id = -1;
    }
}

static bool readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};

    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

START_TEST(test_watch_dispatch)
{
    struct xs_handle *xs = open_store();
    bhxb_watches *w = bhxb_watches_new(xs);
    struct hits a = {0, "", w, -1}, b = {0, "", w, -1};
    int ida, idb;

    ck_assert_ptr_nonnull(w);
    put(xs, "/local/domain/1/backend/vif/3/0/state", "1");
    ck_assert_int_ge(ida = bhxb_watch_add(w, "/local/domain/1/backend", on_watch, &a), 0);
    ck_assert_int_ge(idb = bhxb_watch_add(w, "/local/domain/1/backend/vif", on_watch, &b), 0);
    ck_assert_int_ne(ida, idb);
    /* Each fires once when set, from the dispatch call, not before. */
    ck_assert_int_eq(a.n + b.n, 0);
    ck_assert(readable(bhxb_watches_fd(w)));
    ck_assert_int_eq(bhxb_watches_dispatch(w), 2);
    ck_assert_int_eq(a.n, 1);
    ck_assert_str_eq(a.last, "/local/domain/1/backend");
    ck_assert(!readable(bhxb_watches_fd(w)));
    ck_assert_int_eq(bhxb_watches_dispatch(w), 0);
    /* A change below both fires both; one beside fires neither. */
    put(xs, "/local/domain/1/backend/vif/3/0/state", "4");
    put(xs, "/local/domain/1/backendx", "1");
    ck_assert_int_gt(bhxb_watches_dispatch(w), 0);
    ck_assert_str_eq(b.last, "/local/domain/1/backend/vif/3/0/state");
    ck_assert_int_eq(a.n, b.n);
    /* Removal inside a callback: its queued events are dropped. */
    a.n = b.n = 0;
    b.remove_id = idb;
    put(xs, "/local/domain/1/backend/vif/3/0/state", "5");
    put(xs, "/local/domain/1/backend/vif/3/0/state", "6");
    bhxb_watches_dispatch(w);
    ck_assert_int_eq(b.n, 1);
    ck_assert_int_eq(a.n, 2);
    ck_assert_uint_eq(bhxb_watches_dropped(w), 1);
    ck_assert_int_eq(bhxb_watch_remove(w, idb), -1); /* already gone */
    ck_assert_int_eq(errno, EINVAL);
    bhxb_watches_free(w);
    xs_close(xs);
}
END_TEST

START_TEST(test_watch_tokens_and_errors)
{
    struct xs_handle *xs = open_store();
    bhxb_watches *w = bhxb_watches_new(xs);
    struct hits a = {0, "", w, -1}, b = {0, "", w, -1};
    int ida, idb;

    ck_assert_int_ge(ida = bhxb_watch_add(w, "/a", on_watch, &a), 0);
    ck_assert_int_eq(bhxb_watches_dispatch(w), 1);
    /* An event queued for a removed watch never reaches the slot's next owner. */
    put(xs, "/a/x", "1");
    ck_assert_int_eq(bhxb_watch_remove(w, ida), 0);
    ck_assert_int_ge(idb = bhxb_watch_add(w, "/a", on_watch, &b), 0);
    ck_assert_int_ne(idb, ida);
    ck_assert_int_eq(bhxb_watch_remove(w, ida), -1); /* a stale id is refused */
    ck_assert_int_eq(bhxb_watches_dispatch(w), 1);
    ck_assert_int_eq(a.n, 1);
    ck_assert_int_eq(b.n, 1);
    /* Tokens that are not ours, or malformed, are dropped. */
    ck_assert(xs_watch(xs, "/a", "other"));
    ck_assert(xs_watch(xs, "/a", "bhxb/0/99"));
    ck_assert(xs_watch(xs, "/a", "bhxb/00/1"));
    ck_assert(xs_watch(xs, "/a", "bhxb/x"));
    ck_assert_int_eq(bhxb_watches_dispatch(w), 0);
    /* 4, and a's two stale events (/a created, then /a/x). */
    ck_assert_uint_eq(bhxb_watches_dropped(w), 6);
    ck_assert_int_eq(bhxb_watch_add(w, "relative/path", on_watch, &a), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(bhxb_watch_add(w, "/a", NULL, &a), -1);
    xsfake_fail_op("watch", 0, ENOSPC);
    ck_assert_int_eq(bhxb_watch_add(w, "/b", on_watch, &a), -1);
    ck_assert_int_eq(errno, ENOSPC);
    ck_assert_int_ge(bhxb_watch_add(w, "@releaseDomain", on_watch, &a), 0);
    xsfake_fail_op("check_watch", 0, EIO);
    ck_assert_int_eq(bhxb_watches_dispatch(w), -1);
    ck_assert_int_eq(errno, EIO);
    ck_assert_int_eq(bhxb_watches_dispatch(w), 1);
    ck_assert_ptr_null(bhxb_watches_new(NULL));
    bhxb_watches_free(w);
    bhxb_watches_free(NULL);
    xs_close(xs);
}
END_TEST

/* ---- the whole library: two domains shake hands over the store ---- */

struct dom {
    struct xs_handle *xs;
    bhxb_watches *w;
    struct bhxb_machine m;
    const char *self, *peer;   /* device directories */
    uint32_t ring_ref, evtchn; /* frontend: what it publishes; backend: what it read */
    bool persistent;
    int fatals;
};

static int dom_set_state(void *arg, XenbusState st)
{
    struct dom *d = arg;

    return bhxb_switch_state(d->xs, d->self, st);
}

static int dom_publish(void *arg, char *why, size_t len)
{
    struct dom *d = arg;
    bool yes = true;
    struct bhxb_key back[] = {{"feature-persistent", BHXB_BOOL, &yes, 0, false, 0}};
    struct bhxb_key front[] = {{"ring-ref", BHXB_UINT, &d->ring_ref, 0, false, 0},
                               {"event-channel", BHXB_UINT, &d->evtchn, 0, false, 0}};
    int r = d->m.view.role == BHXB_BACKEND ? bhxb_write_keys(d->xs, d->self, back, 1)
                                           : bhxb_write_keys(d->xs, d->self, front, 2);

    if (r != 0)
        snprintf(why, len, "writing %s: %s", d->self, strerror(errno));
    return r;
}

static int dom_connect(void *arg, char *why, size_t len)
{
    struct dom *d = arg;
    char val[BHXB_PATH_MAX + 32];
    unsigned int n;
    const char *bad = NULL;
    struct bhxb_key back[] = {{"feature-persistent", BHXB_BOOL, &d->persistent, 0, false, 0}};
    char *v;

    if (d->m.view.role == BHXB_FRONTEND)
        return bhxb_read_keys(d->xs, d->peer, back, 1, &bad) == 0 ? 0 : -1;
    /* The backend parses the frontend's values with the strict parsers. */
    snprintf(val, sizeof(val), "%s/ring-ref", d->peer);
    if ((v = xs_read(d->xs, XBT_NULL, val, &n)) == NULL || bhxb_parse_gref(v, n, &d->ring_ref)) {
        snprintf(why, len, "frontend %s/ring-ref is bogus", d->peer);
        free(v);
        return -1;
    }
    free(v);
    snprintf(val, sizeof(val), "%s/event-channel", d->peer);
    if ((v = xs_read(d->xs, XBT_NULL, val, &n)) == NULL || bhxb_parse_evtchn(v, n, &d->evtchn)) {
        snprintf(why, len, "frontend's event-channel is bogus");
        free(v);
        return -1;
    }
    free(v);
    return 0;
}

static void dom_fatal(void *arg, const char *why)
{
    struct dom *d = arg;

    d->fatals++;
    ck_assert_int_eq(bhxb_dev_fatal(d->xs, d->self, EPROTO, "%s", why), 0);
}

static const struct bhxb_driver dom_driver = {
    .publish = dom_publish,
    .connect = dom_connect,
    .fatal = dom_fatal,
    .set_state = dom_set_state,
};

/* The watch on the peer's state: read it now, whatever the event said, and step. */
static void dom_peer_changed(void *arg, const char *path)
{
    struct dom *d = arg;

    (void)path;
    if (d->m.view.role == BHXB_FRONTEND)
        d->m.view.peer_online = bhxb_peer_online(d->xs, d->peer);
    ck_assert_int_ge(bhxb_machine_step(&d->m, bhxb_read_state(d->xs, d->peer), &dom_driver, d), 0);
}

static void dom_open(struct dom *d, unsigned int domid, enum bhxb_role role, const char *self,
                     const char *peer)
{
    char path[BHXB_PATH_MAX + 8];

    memset(d, 0, sizeof(*d));
    d->xs = open_store();
    xsfake_set_domid(d->xs, domid);
    d->self = self;
    d->peer = peer;
    ck_assert_int_eq(bhxb_machine_init(&d->m, role), 0);
    d->m.view.ready = true;
    ck_assert_ptr_nonnull(d->w = bhxb_watches_new(d->xs));
    snprintf(path, sizeof(path), "%s/state", peer);
    ck_assert_int_ge(bhxb_watch_add(d->w, path, dom_peer_changed, d), 0);
}

static void dom_close(struct dom *d)
{
    bhxb_watches_free(d->w);
    xs_close(d->xs);
}

/* The event loop: poll both watch descriptors, dispatch, until quiet. */
static void loop(struct dom *f, struct dom *b)
{
    for (int i = 0; i < 100; i++) {
        struct pollfd p[2] = {{bhxb_watches_fd(f->w), POLLIN, 0},
                              {bhxb_watches_fd(b->w), POLLIN, 0}};
        if (poll(p, 2, 0) == 0)
            return;
        ck_assert_int_ge(bhxb_watches_dispatch(f->w), 0);
        ck_assert_int_ge(bhxb_watches_dispatch(b->w), 0);
    }
    ck_abort_msg("the watches never went quiet");
}

static struct bhxb_layout *vbd_layout(struct xs_handle *ts)
{
    struct bhxb_dev dv = {"vbd", NULL, 3, 1, 51712};
    struct bhxb_layout *l = bhxb_layout_new(&dv);

    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(bhxb_layout_write(ts, l), 0);
    return l;
}

START_TEST(test_handshake_over_store)
{
    struct xs_handle *ts = open_store();
    struct bhxb_layout *l = vbd_layout(ts);
    struct dom f, b;

    dom_open(&f, 3, BHXB_FRONTEND, l->paths.frontend, l->paths.backend);
    dom_open(&b, 1, BHXB_BACKEND, l->paths.backend, l->paths.frontend);
    f.ring_ref = 8;
    f.evtchn = 5;
    loop(&f, &b);
    ck_assert_int_eq(bhxb_read_state(ts, l->paths.frontend), C);
    ck_assert_int_eq(bhxb_read_state(ts, l->paths.backend), C);
    ck_assert(f.persistent);
    ck_assert_uint_eq(b.ring_ref, 8);
    ck_assert_uint_eq(b.evtchn, 5);
    /* The toolstack removes the device: online=0, then the backend is told to close. */
    put(ts, "/local/domain/1/backend/vbd/3/51712/online", "0");
    b.m.view.online = bhxb_read_online(b.xs, b.self);
    dom_peer_changed(&b, NULL);
    loop(&f, &b);
    ck_assert_int_eq(bhxb_read_state(ts, l->paths.frontend), CD);
    ck_assert_int_eq(bhxb_read_state(ts, l->paths.backend), CD);
    ck_assert(b.m.removed);
    ck_assert_int_eq(f.fatals + b.fatals, 0);
    dom_close(&f);
    dom_close(&b);
    bhxb_layout_free(l);
    xs_close(ts);
}
END_TEST

/* A frontend that publishes a bogus event channel loses its device, and is told why. */
START_TEST(test_handshake_hostile_frontend)
{
    struct xs_handle *ts = open_store();
    struct bhxb_layout *l = vbd_layout(ts);
    struct dom f, b;
    char err[128];

    dom_open(&f, 3, BHXB_FRONTEND, l->paths.frontend, l->paths.backend);
    dom_open(&b, 1, BHXB_BACKEND, l->paths.backend, l->paths.frontend);
    f.ring_ref = 8;
    f.evtchn = 0; /* port 0 is never a bound port */
    loop(&f, &b);
    ck_assert_int_eq(b.fatals, 1);
    ck_assert_int_eq(bhxb_read_error(ts, l->paths.backend, err, sizeof(err)), 0);
    ck_assert_str_eq(err, "71 connect failed: frontend's event-channel is bogus");
    ck_assert_int_eq(bhxb_read_state(ts, l->paths.backend), CD);
    ck_assert_int_eq(bhxb_read_state(ts, l->paths.frontend), CD);
    /* The frontend does not reconnect to a backend that reported an error. */
    ck_assert(!f.m.view.peer_online);
    dom_close(&f);
    dom_close(&b);
    bhxb_layout_free(l);
    xs_close(ts);
}
END_TEST

static Suite *xenbus_suite(void)
{
    Suite *s = suite_create("xenbus");
    TCase *tc;

    tc = tcase_create("state");
    tcase_add_test(tc, test_state_names);
    tcase_add_test(tc, test_decide_refuses_impossible_input);
    tcase_add_test(tc, test_happy_path_both_sides);
    tcase_add_test(tc, test_skipped_states);
    tcase_add_test(tc, test_frontend_reconnects_after_backend_closed);
    tcase_add_test(tc, test_backend_follows_close_and_back);
    tcase_add_test(tc, test_errors_close_with_error_node);
    tcase_add_test(tc, test_reconfiguration);
    tcase_add_test(tc, test_decide_exhaustive);
    tcase_add_test(tc, test_machine_callbacks_and_failures);
    suite_add_tcase(s, tc);

    /* 3000 seeds of 120 steps; a few seconds under ASan. */
    tc = tcase_create("interleavings");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_random_interleavings);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_numbers);
    tcase_add_test(tc, test_parse_bool_str_list);
    suite_add_tcase(s, tc);

    tc = tcase_create("store");
    tcase_add_checked_fixture(tc, xsfake_reset, NULL);
    tcase_add_test(tc, test_keys_round_trip);
    tcase_add_test(tc, test_keys_missing_and_bogus);
    tcase_add_test(tc, test_keys_transactions);
    tcase_add_test(tc, test_state_node);
    tcase_add_test(tc, test_dev_fatal);
    suite_add_tcase(s, tc);

    tc = tcase_create("layout");
    tcase_add_checked_fixture(tc, xsfake_reset, NULL);
    tcase_add_test(tc, test_layout_vbd_dom0);
    tcase_add_test(tc, test_layout_qdisk_driver_domain);
    tcase_add_test(tc, test_layout_vif_dom0);
    tcase_add_test(tc, test_layout_vif_driver_domain);
    tcase_add_test(tc, test_layout_refusals);
    tcase_add_test(tc, test_layout_write_and_permissions);
    tcase_add_test(tc, test_layouts_write_all_or_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("watch");
    tcase_add_checked_fixture(tc, xsfake_reset, NULL);
    tcase_add_test(tc, test_watch_dispatch);
    tcase_add_test(tc, test_watch_tokens_and_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("handshake");
    tcase_add_checked_fixture(tc, xsfake_reset, NULL);
    tcase_add_test(tc, test_handshake_over_store);
    tcase_add_test(tc, test_handshake_hostile_frontend);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(xenbus_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
