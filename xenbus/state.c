/*
 * state.c - the XenBus handshake, both sides, as pure decisions.
 *
 * The happy path (io/blkif.h's diagram; a vif skips nothing here either):
 *
 *   frontend                          backend
 *   Initialising                      Initialising
 *                                     -> InitWait     (features published)
 *   -> Initialised (ring refs, event channels published)
 *                                     -> Connected    (ring mapped)
 *   -> Connected   (backend's connect-time keys read)
 *
 * Decisions look at the peer's state as read now, never at the event that
 * woke us: xenstored may coalesce, duplicate or reorder watch events, so
 * the peer can appear to skip states (InitWait -> Connected) and a state can
 * be seen twice.  Every rule below is therefore written as "if the peer is
 * at least here", and applying a decision twice changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bhxenbus.h"

static const char *const state_names[] = {
    "Unknown", "Initialising", "InitWait",      "Initialised",  "Connected",
    "Closing", "Closed",       "Reconfiguring", "Reconfigured",
};

const char *bhxb_state_name(int state)
{
    if (state < 0 || state > XenbusStateReconfigured)
        return "invalid";
    return state_names[state];
}

static bool peer_valid(int peer)
{
    return peer >= XenbusStateUnknown && peer <= XenbusStateReconfigured;
}

/* Whether the driver holds a ring and an event channel that DISCONNECT frees. */
static bool attached(enum bhxb_role role, XenbusState s)
{
    if (s == XenbusStateConnected || s == XenbusStateReconfiguring || s == XenbusStateReconfigured)
        return true;
    /* A frontend's ring is granted and published from Initialised on. */
    return role == BHXB_FRONTEND && s == XenbusStateInitialised;
}

/* The states each side ever writes; anything else as `ours` is a caller bug. */
static bool ours_valid(enum bhxb_role role, XenbusState s)
{
    switch (s) {
    case XenbusStateInitialising:
    case XenbusStateConnected:
    case XenbusStateClosing:
    case XenbusStateClosed:
        return true;
    case XenbusStateInitWait:
    case XenbusStateReconfiguring:
        return role == BHXB_BACKEND;
    case XenbusStateInitialised:
    case XenbusStateReconfigured:
        return role == BHXB_FRONTEND;
    default:
        return false;
    }
}

static void go(struct bhxb_step *st, XenbusState next, unsigned int actions)
{
    st->next = next;
    st->actions = actions;
}

/*
 * Our own reasons to close, which win over anything the peer says: the
 * driver failed, the peer wrote garbage into its state node, or the device
 * is going away.  Only errors are reported through the error node.
 */
static bool close_ours(const struct bhxb_view *v, struct bhxb_step *st)
{
    bool bad = !peer_valid(v->peer);

    if (!(v->error || bad || !v->online))
        return false;
    if (v->ours == XenbusStateClosing || v->ours == XenbusStateClosed)
        return false;
    go(st, XenbusStateClosing,
       (attached(v->role, v->ours) ? BHXB_ACT_DISCONNECT : 0) |
           (v->error || bad ? BHXB_ACT_FATAL : 0));
    return true;
}

/*
 * The peer is closing or gone while we are not.  A frontend goes straight to
 * Closed (Linux's xenbus_frontend_closed); a backend follows the frontend
 * through Closing, and a missing frontend directory means the device was
 * removed.
 */
static bool follow_peer_close(const struct bhxb_view *v, struct bhxb_step *st)
{
    unsigned int dis = attached(v->role, v->ours) ? BHXB_ACT_DISCONNECT : 0;

    if (v->role == BHXB_FRONTEND) {
        if (v->peer == XenbusStateClosing) {
            go(st, XenbusStateClosed, dis);
            return true;
        }
        /*
         * Closed without Closing seen: the watch events were coalesced.  A
         * frontend still Initialising waits for an online backend to come
         * back to InitWait; there is nothing to tear down.
         */
        if (v->peer == XenbusStateClosed &&
            (v->ours != XenbusStateInitialising || !v->peer_online)) {
            go(st, XenbusStateClosed, dis);
            return true;
        }
        return false; /* Unknown: the toolstack removes us; keep waiting */
    }
    if (v->peer == XenbusStateClosing) {
        go(st, XenbusStateClosing, dis);
        return true;
    }
    if (v->peer == XenbusStateClosed) {
        go(st, XenbusStateClosed, dis);
        return true;
    }
    if (v->peer == XenbusStateUnknown) {
        go(st, XenbusStateClosed, dis | BHXB_ACT_REMOVE);
        return true;
    }
    return false;
}

/* We are Closing or Closed: finish closing, be removed, or reconnect. */
static void closed_progress(const struct bhxb_view *v, struct bhxb_step *st)
{
    bool fe = v->role == BHXB_FRONTEND;
    bool healthy = v->online && !v->error && peer_valid(v->peer);

    if (v->ours == XenbusStateClosing) {
        if (v->peer == XenbusStateClosed || v->peer == XenbusStateUnknown ||
            (fe && v->peer == XenbusStateClosing))
            go(st, XenbusStateClosed,
               !fe && (!v->online || v->peer == XenbusStateUnknown) ? BHXB_ACT_REMOVE : 0);
        return;
    }
    if (!fe) {
        if (!v->online || v->peer == XenbusStateUnknown)
            go(st, XenbusStateClosed, BHXB_ACT_REMOVE);
        /* Prepare for reconnect, as blkback does on a frontend back at Initialising. */
        else if (healthy && v->ready && v->peer == XenbusStateInitialising)
            go(st, XenbusStateInitWait, BHXB_ACT_PUBLISH);
        return;
    }
    /*
     * A frontend comes back to Initialising once its backend is on its way
     * up again, or closed and still online (its owner wants the device).
     */
    if (healthy && (v->peer == XenbusStateInitialising || v->peer == XenbusStateInitWait ||
                    (v->peer == XenbusStateClosed && v->peer_online)))
        go(st, XenbusStateInitialising, 0);
}

static void front_progress(const struct bhxb_view *v, struct bhxb_step *st)
{
    switch (v->ours) {
    case XenbusStateInitialising:
        /*
         * A backend already past InitWait belongs to an earlier frontend
         * (a guest that rebooted its driver): its connection is stale, so
         * reset it through Closing, as Linux's xenbus_reset_state does.
         */
        if (v->peer == XenbusStateConnected || v->peer == XenbusStateReconfiguring ||
            v->peer == XenbusStateReconfigured)
            go(st, XenbusStateClosing, 0);
        else if (v->peer == XenbusStateInitWait && v->ready)
            go(st, XenbusStateInitialised, BHXB_ACT_PUBLISH);
        break;
    case XenbusStateInitialised:
        if (v->peer == XenbusStateConnected)
            go(st, XenbusStateConnected, BHXB_ACT_CONNECT);
        break;
    case XenbusStateConnected:
        if (v->peer == XenbusStateReconfiguring)
            go(st, XenbusStateReconfigured, BHXB_ACT_RECONFIGURE);
        /*
         * A backend seen at Initialising or InitWait restarted without
         * closing: it reconnects to the keys we still publish (blkback
         * connects on a frontend found Connected), so we wait.
         */
        break;
    case XenbusStateReconfigured:
        if (v->peer == XenbusStateConnected)
            go(st, XenbusStateConnected, 0);
        break;
    default:
        break;
    }
}

static void back_progress(const struct bhxb_view *v, struct bhxb_step *st)
{
    switch (v->ours) {
    case XenbusStateInitialising:
        if (v->ready)
            go(st, XenbusStateInitWait, BHXB_ACT_PUBLISH);
        break;
    case XenbusStateInitWait:
        /*
         * Connected or Reconfigured rather than Initialised: the frontend's
         * intermediate state was coalesced away, or we restarted under a
         * connected frontend.  Either way its keys are there to read.
         */
        if (v->peer == XenbusStateInitialised || v->peer == XenbusStateConnected ||
            v->peer == XenbusStateReconfigured)
            go(st, XenbusStateConnected, BHXB_ACT_CONNECT);
        break;
    case XenbusStateConnected:
        /* Only a connected frontend can answer a reconfiguration. */
        if (v->reconfigure && v->peer == XenbusStateConnected)
            go(st, XenbusStateReconfiguring, 0);
        break;
    case XenbusStateReconfiguring:
        if (v->peer == XenbusStateReconfigured)
            go(st, XenbusStateConnected, BHXB_ACT_RECONFIGURE);
        break;
    default:
        break;
    }
}

int bhxb_decide(const struct bhxb_view *v, struct bhxb_step *st)
{
    if (v == NULL || st == NULL || (v->role != BHXB_FRONTEND && v->role != BHXB_BACKEND) ||
        !ours_valid(v->role, v->ours)) {
        errno = EINVAL;
        return -1;
    }
    go(st, v->ours, 0);
    if (close_ours(v, st))
        return 0;
    if (v->ours == XenbusStateClosing || v->ours == XenbusStateClosed) {
        closed_progress(v, st);
        return 0;
    }
    if (!peer_valid(v->peer) || follow_peer_close(v, st))
        return 0;
    if (v->role == BHXB_FRONTEND)
        front_progress(v, st);
    else
        back_progress(v, st);
    return 0;
}

/* ---- the machine: decisions applied through a driver's callbacks ---- */

int bhxb_machine_init(struct bhxb_machine *m, enum bhxb_role role)
{
    if (m == NULL || (role != BHXB_FRONTEND && role != BHXB_BACKEND)) {
        errno = EINVAL;
        return -1;
    }
    memset(m, 0, sizeof(*m));
    m->view.role = role;
    m->view.ours = XenbusStateInitialising;
    m->view.peer = XenbusStateUnknown;
    m->view.online = true;
    m->view.peer_online = true;
    return 0;
}

typedef int cb_fn(void *arg, char *why, size_t whylen);

/* Runs one fallible callback; a failure becomes the machine's sticky error. */
static int run_cb(struct bhxb_machine *m, cb_fn *fn, void *arg, const char *what)
{
    char why[sizeof(m->why)] = "";

    if (fn == NULL || fn(arg, why, sizeof(why)) == 0)
        return 0;
    m->view.error = true;
    snprintf(m->why, sizeof(m->why), "%s failed: %s", what, why[0] ? why : "no reason given");
    return -1;
}

static int run_actions(struct bhxb_machine *m, const struct bhxb_step *st,
                       const struct bhxb_driver *d, void *arg)
{
    unsigned int a = st->actions;

    if ((a & BHXB_ACT_DISCONNECT) && d->disconnect)
        d->disconnect(arg);
    if ((a & BHXB_ACT_FATAL) && d->fatal)
        d->fatal(arg, m->why);
    if ((a & BHXB_ACT_PUBLISH) && run_cb(m, d->publish, arg, "publish") != 0)
        return -1;
    if ((a & BHXB_ACT_CONNECT) && run_cb(m, d->connect, arg, "connect") != 0)
        return -1;
    if ((a & BHXB_ACT_RECONFIGURE) && run_cb(m, d->reconfigure, arg, "reconfigure") != 0)
        return -1;
    return 0;
}

/*
 * A callback failed while we were Closing or Closed (a backend failing to
 * publish as it came back): no transition will report it, so report it
 * here, and move to Closing as the error protocol says, so that the peer
 * sees it and both sides end Closed.  Elsewhere the next decision reports
 * it (view.error is set).  Returns 1 if it wrote Closing, 0 if not, -1 if
 * that write failed.
 */
static int report_closed(struct bhxb_machine *m, const struct bhxb_driver *d, void *arg)
{
    if (m->view.ours != XenbusStateClosing && m->view.ours != XenbusStateClosed)
        return 0;
    if (d->fatal)
        d->fatal(arg, m->why);
    if (m->view.ours == XenbusStateClosed) {
        if (d->set_state(arg, XenbusStateClosing) != 0)
            return -1;
        m->view.ours = XenbusStateClosing;
        return 1;
    }
    return 0;
}

/*
 * Each round either settles or moves the state forward, and an error can
 * only move it towards Closed: a handful of rounds always suffice.  More
 * means the rules loop, which is a bug of this file.
 */
#define MAX_ROUNDS 8

int bhxb_machine_step(struct bhxb_machine *m, int peer, const struct bhxb_driver *d, void *arg)
{
    struct bhxb_step st;
    int changes = 0;

    if (m == NULL || d == NULL || d->set_state == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (m->removed)
        return 0;
    m->view.peer = peer;
    if (!peer_valid(peer) && !m->view.error)
        snprintf(m->why, sizeof(m->why), "the peer's state node holds no XenbusState");
    else if (m->view.error && m->why[0] == '\0')
        snprintf(m->why, sizeof(m->why), "the driver reported an error");
    for (int round = 0; round < MAX_ROUNDS; round++) {
        if (bhxb_decide(&m->view, &st) != 0)
            return -1;
        if (st.actions == 0 && st.next == m->view.ours)
            return changes;
        if (run_actions(m, &st, d, arg) != 0) {
            int moved = report_closed(m, d, arg);
            if (moved < 0)
                return -1;
            changes += moved;
            continue;
        }
        if (st.next != m->view.ours) {
            if (d->set_state(arg, st.next) != 0)
                return -1;
            if (st.next == XenbusStateReconfiguring)
                m->view.reconfigure = false;
            m->view.ours = st.next;
            changes++;
        }
        if (st.actions & BHXB_ACT_REMOVE) {
            m->removed = true;
            if (d->remove)
                d->remove(arg);
            return changes;
        }
    }
    abort(); /* the rules above loop: see MAX_ROUNDS */
}
