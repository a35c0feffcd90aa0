/*
 * tl_proxy: a small TCP proxy for client integration tests, between libringlog and a real
 * ringlogd. It forwards requests unchanged and answers frame by frame, so it can lose answers on
 * purpose: with probability drop_permille per Produce answer it closes both sides instead of
 * forwarding (the broker has appended the batch, the producer never hears of it and retries),
 * and while `stall` is set requests vanish and answers are held back (a silent path).
 * Metadata and FindCoordinator answers are rewritten to name the proxy, so every connection
 * of the client goes through it.
 *
 * One accept thread plus one detached thread per connection pair (at most TL_PROXY_MAX_PAIRS
 * at a time); every wait is a poll with a 50 ms bound that rechecks the stop flag. Random choices come from a
 * seed the test prints.
 */
#ifndef RL_TESTS_TL_PROXY_H
#define RL_TESTS_TL_PROXY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define TL_PROXY_MAX_PAIRS 64

struct tl_proxy {
    char broker_host[64];
    uint16_t broker_port;
    uint16_t port; /* where the proxy listens (127.0.0.1), known after tl_proxy_start */
    int listen_fd;
    pthread_t accept_thread;
    atomic_bool stop;
    atomic_int drop_permille; /* per Produce answer */
    atomic_bool stall;        /* swallow requests, hold answers back while set */
    atomic_long dropped;      /* answers lost so far */
    atomic_long forwarded;
    atomic_uint_fast64_t rnd;
    atomic_int live_pairs; /* pair threads running (they are detached) */
};

/* Listens on an ephemeral port and starts the accept thread. Returns 0 or -errno. */
int tl_proxy_start(struct tl_proxy *px, const char *broker_host, uint16_t broker_port,
                   uint64_t seed);

/* Stops every thread and closes every socket (bounded: each thread rechecks within 50 ms). */
void tl_proxy_stop(struct tl_proxy *px);

#endif
