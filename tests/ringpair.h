/*
 * ringpair.h - a front end and a back end in two processes over one shared
 * memfd ring, with one eventfd per direction standing in for an event
 * channel.  Used by check_ring (correctness) and bench_ring (speed).
 */
#ifndef BULKHEAD_TESTS_RINGPAIR_H
#define BULKHEAD_TESTS_RINGPAIR_H

#include <stdint.h>

struct ringpair_opts {
    unsigned int order;    /* ring pages: 2^order */
    unsigned int depth;    /* requests the front keeps in flight */
    uint64_t requests;     /* requests to send in all */
    unsigned int spin_us;  /* poll the ring this long before sleeping; 0 = sleep at once */
    int wait_ms;           /* a wait longer than this is a lost wake-up */
};

struct ringpair_result {
    uint64_t completed;      /* responses the front accepted */
    uint64_t back_requests;  /* requests the back consumed */
    uint64_t front_notifies; /* notifications the front sent */
    uint64_t back_notifies;  /* notifications the back sent */
    uint64_t front_sleeps;   /* times the front slept on its eventfd */
    double seconds;          /* wall time of the transfer */
    char error[256];         /* "" on success, else one line */
};

/*
 * Runs the transfer: forks the back end, plays the front end in the caller.
 * Every request carries a sequence number that the back end checks (no loss,
 * no duplicate, in order); every response's id goes through a bhring_ids
 * table (no unknown, stale or duplicate id).  Returns 0, or -1 with
 * res->error set.
 */
int ringpair_run(const struct ringpair_opts *o, struct ringpair_result *res);

/* Round trips per second of a bare eventfd ping-pong between two processes. */
double ringpair_eventfd_pingpong(uint64_t rounds, double *seconds);

#endif
