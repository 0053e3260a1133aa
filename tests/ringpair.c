/*
 * ringpair.c - see ringpair.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bhring.h"
#include "ringpair.h"
#include "xenring.h"

/* Counters the back end reports to the front through the shared memfd. */
struct back_report {
    uint64_t requests;
    uint64_t notifies;
    int failed;
    char error[200];
};

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void kick(int fd)
{
    uint64_t one = 1;

    while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

/*
 * Waits for a notification on `fd`.  With spin_us, first polls `check` for
 * that long, since a cross-CPU wake-up costs far more than a short spin.
 * Returns 1 when woken, 0 when `check` found work while spinning, -1 on a
 * timeout (a lost wake-up) or an error.
 */
static int wait_evt(int fd, int wait_ms, unsigned int spin_us, int (*check)(void *), void *arg)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    uint64_t v;
    int r;

    if (spin_us) {
        double end = now() + spin_us / 1e6;
        do {
            if (check(arg))
                return 0;
        } while (now() < end);
    }
    do {
        r = poll(&p, 1, wait_ms);
    } while (r < 0 && errno == EINTR);
    if (r <= 0)
        return -1;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return -1;
    return 1;
}

static int ring_has_requests(void *arg)
{
    struct bhring *r = arg;

    return r->cons != r->peer_prod ||
           __atomic_load_n((uint32_t *)(r->shared), __ATOMIC_RELAXED) != r->cons;
}

static int ring_has_responses(void *arg)
{
    struct bhring *r = arg;

    return r->cons != r->peer_prod ||
           __atomic_load_n((uint32_t *)(r->shared + 8), __ATOMIC_RELAXED) != r->cons;
}

static void back_fail(struct back_report *rep, const char *msg)
{
    rep->failed = 1;
    snprintf(rep->error, sizeof(rep->error), "back: %s", msg);
}

/* The back end: answer every request, checking the sequence numbers. */
static void run_back(const struct ringpair_opts *o, void *page, int to_back, int to_front,
                     struct back_report *rep)
{
    struct bhring r;
    blkif_request_t req;
    blkif_response_t rsp;
    uint64_t expect = 0;
    char msg[160];

    if (bhring_attach(&r, &bhring_blkif, BHRING_BACK, page, o->order, 0, false) != 0) {
        back_fail(rep, "attach failed");
        return;
    }
    while (expect < o->requests) {
        int got;

        while ((got = bhring_back_get(&r, &req)) == 1) {
            if (req.sector_number != expect) {
                snprintf(msg, sizeof(msg), "request %llu arrived where %llu was expected",
                         (unsigned long long)req.sector_number, (unsigned long long)expect);
                back_fail(rep, msg);
                return;
            }
            expect++;
            memset(&rsp, 0, sizeof(rsp));
            rsp.id = req.id;
            rsp.operation = req.operation;
            rsp.status = BLKIF_RSP_OKAY;
            bhring_back_put(&r, &rsp);
        }
        if (got < 0) {
            back_fail(rep, bhring_error(&r));
            return;
        }
        if (bhring_back_push(&r) == 1)
            kick(to_front);
        if (expect == o->requests)
            break;
        if ((got = bhring_back_final_check(&r)) != 0) {
            if (got < 0) {
                back_fail(rep, bhring_error(&r));
                return;
            }
            continue;
        }
        if (wait_evt(to_back, o->wait_ms, o->spin_us, ring_has_requests, &r) < 0) {
            snprintf(msg, sizeof(msg), "no notification for %d ms after request %llu: lost wake-up",
                     o->wait_ms, (unsigned long long)expect);
            back_fail(rep, msg);
            return;
        }
    }
    rep->requests = expect;
    rep->notifies = r.notifies;
}

static int front_fail(struct ringpair_result *res, const char *fmt, unsigned long long a)
{
    snprintf(res->error, sizeof(res->error), fmt, a);
    return -1;
}

/* The front end: keep `depth` requests in flight until all are answered. */
static int run_front(const struct ringpair_opts *o, void *page, int to_back, int to_front,
                     struct ringpair_result *res)
{
    struct bhring r;
    struct bhring_ids *ids = NULL;
    blkif_request_t req;
    blkif_response_t rsp;
    uint64_t issued = 0, done = 0, id;
    int rc = -1, got;

    if (bhring_attach(&r, &bhring_blkif, BHRING_FRONT, page, o->order, 0, true) != 0 ||
        (ids = bhring_ids_new(o->depth, 64)) == NULL)
        return front_fail(res, "front set-up failed (errno %llu)", (unsigned long long)errno);
    while (done < o->requests) {
        int progress = 0;

        while (issued < o->requests && bhring_in_flight(&r) < o->depth) {
            if (bhring_ids_get(ids, NULL, &id) != 0)
                break;
            memset(&req, 0, sizeof(req));
            req.operation = BLKIF_OP_READ;
            req.id = id;
            req.sector_number = issued++;
            bhring_front_put(&r, &req);
        }
        if (bhring_front_push(&r) == 1)
            kick(to_back);
        while ((got = bhring_front_get(&r, &rsp)) == 1) {
            if (bhring_ids_put(ids, rsp.id, NULL) != 0) {
                front_fail(res, "response with unknown, stale or duplicate id %llu",
                           (unsigned long long)rsp.id);
                goto out;
            }
            done++;
            progress = 1;
        }
        if (got < 0) {
            snprintf(res->error, sizeof(res->error), "front: %s", bhring_error(&r));
            goto out;
        }
        if (progress || done == o->requests)
            continue;
        if ((got = bhring_front_final_check(&r)) != 0) {
            if (got < 0) {
                snprintf(res->error, sizeof(res->error), "front: %s", bhring_error(&r));
                goto out;
            }
            continue;
        }
        res->front_sleeps++;
        if (wait_evt(to_front, o->wait_ms, o->spin_us, ring_has_responses, &r) < 0) {
            front_fail(res, "front: no notification after %llu responses: lost wake-up",
                       (unsigned long long)done);
            goto out;
        }
    }
    rc = 0;
out:
    res->completed = done;
    res->front_notifies = r.notifies;
    bhring_ids_free(ids);
    return rc;
}

int ringpair_run(const struct ringpair_opts *o, struct ringpair_result *res)
{
    size_t bytes = bhring_bytes(o->order);
    int memfd = -1, to_back = -1, to_front = -1, rc = -1, status;
    void *page = MAP_FAILED;
    struct back_report *rep = MAP_FAILED;
    pid_t pid;
    double t0;

    memset(res, 0, sizeof(*res));
    if ((memfd = memfd_create("ringpair", MFD_CLOEXEC)) < 0 ||
        ftruncate(memfd, bytes + BHRING_PAGE_SIZE) != 0 ||
        (page = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0)) == MAP_FAILED ||
        (rep = mmap(NULL, BHRING_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, bytes)) ==
            MAP_FAILED ||
        (to_back = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
        (to_front = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        snprintf(res->error, sizeof(res->error), "set-up: %s", strerror(errno));
        goto out;
    }
    /* The front initialises the ring before the back attaches, as in a handshake. */
    {
        struct bhring init;
        bhring_attach(&init, &bhring_blkif, BHRING_FRONT, page, o->order, 0, true);
    }
    t0 = now();
    if ((pid = fork()) < 0) {
        snprintf(res->error, sizeof(res->error), "fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        run_back(o, page, to_back, to_front, rep);
        _exit(rep->failed ? 1 : 0);
    }
    rc = run_front(o, page, to_back, to_front, res);
    if (rc != 0)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    res->seconds = now() - t0;
    res->back_requests = rep->requests;
    res->back_notifies = rep->notifies;
    if (rc == 0 && rep->failed) {
        snprintf(res->error, sizeof(res->error), "%s", rep->error);
        rc = -1;
    }
    if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
        snprintf(res->error, sizeof(res->error), "back end died (status %d)", status);
        rc = -1;
    }
out:
    if (rep != MAP_FAILED)
        munmap(rep, BHRING_PAGE_SIZE);
    if (page != MAP_FAILED)
        munmap(page, bytes);
    if (memfd >= 0)
        close(memfd);
    if (to_back >= 0)
        close(to_back);
    if (to_front >= 0)
        close(to_front);
    return rc;
}

double ringpair_eventfd_pingpong(uint64_t rounds, double *seconds)
{
    int a = eventfd(0, EFD_CLOEXEC), b = eventfd(0, EFD_CLOEXEC);
    uint64_t v = 1;
    double t0, dt;
    pid_t pid;

    if (a < 0 || b < 0)
        return -1;
    t0 = now();
    if ((pid = fork()) == 0) {
        for (uint64_t i = 0; i < rounds; i++) {
            if (read(a, &v, sizeof(v)) != sizeof(v) || write(b, &v, sizeof(v)) != sizeof(v))
                _exit(1);
        }
        _exit(0);
    }
    for (uint64_t i = 0; i < rounds; i++) {
        if (write(a, &v, sizeof(v)) != sizeof(v) || read(b, &v, sizeof(v)) != sizeof(v))
            break;
    }
    dt = now() - t0;
    waitpid(pid, NULL, 0);
    close(a);
    close(b);
    if (seconds)
        *seconds = dt;
    return rounds / dt;
}
