/*
 * tl_load: the producer load of the replication suites that stop, kill and restart brokers
 * under it (test_repl_failover and test_replication_ops each used to carry a copy): a sender
 * thread writing tl_cluster's keyed record stream to one topic through an idempotent acks=all
 * producer until stopped, its acknowledgements counted and, per partition, the longest gap
 * between two of them measured (how long a restart stalled that partition's producers).
 *
 *   static struct tl_load load;
 *   tl_load_start(&load, cl.boot, &(struct tl_load_conf){
 *       .topic = "t", .partitions = 6, .keys = 600, .pace_every = 10, .pace_us = 5000,
 *       .delivery_timeout_ms = 120000, .retry_backoff_ms = 20, .retry_backoff_max_ms = 200});
 *   tl_load_wait_acks(&load, 2000, "before the restarts");
 *   tl_load_gaps_reset(&load); ... a broker restarts ...; tl_load_longest_gap(&load, &part);
 *   int records = tl_load_stop(&load);            // each record sent acknowledged once
 *   struct rl_consumer *c = tl_load_reader_new(&load);
 *   ... rl_consumer_poll, tl_cluster_keyed_expect_next ...
 *
 * The counters and gaps are atomics: the delivery callback runs on the producer's I/O thread.
 * Failures are Criterion assertions; every wait has a deadline. The sender's sleeps pace the
 * load, they synchronize nothing.
 */
#ifndef RL_TESTS_TL_LOAD_H
#define RL_TESTS_TL_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/ringlog.h"
#include "tests/lib/tl_cluster.h"

#define TL_LOAD_MAX_PARTITIONS 16

struct tl_load_conf {
    const char *topic;             /* must outlive the load (a literal) */
    int partitions;                /* the topic's, <= TL_LOAD_MAX_PARTITIONS */
    int keys;                      /* of the keyed stream (tl_cluster_keyed_send) */
    int pace_every;                /* after every pace_every records the sender sleeps ... */
    uint32_t pace_us;              /* ... pace_us, so the brokers keep room to fail over */
    uint32_t delivery_timeout_ms;  /* the producer's delivery.timeout.ms, */
    uint32_t retry_backoff_ms;     /* retry.backoff.ms */
    uint32_t retry_backoff_max_ms; /* and retry.backoff.max.ms */
};

/* Per partition: the last acknowledgement, and the longest gap between two since the reset. */
struct tl_load_gap {
    atomic_uint_fast64_t last_ms, longest_ms;
    atomic_uint_fast64_t longest_end_ms; /* when the longest gap ended */
};

struct tl_load {
    struct tl_load_conf conf;
    const char *boot; /* bootstrap.servers; must outlive the load (a tl_cluster's boot) */
    struct rl_producer *producer;
    pthread_t sender;
    atomic_bool stop;
    atomic_int sent;               /* records handed to the producer */
    struct tl_cluster_acks acks;   /* their acknowledgements and failures */
    struct tl_load_gap gaps[TL_LOAD_MAX_PARTITIONS];
    atomic_uint_fast64_t reset_ms; /* when the gaps were last reset */
};

/* Creates the producer (to boot, with conf's settings) and starts the sender. Asserts. */
void tl_load_start(struct tl_load *l, const char *boot, const struct tl_load_conf *conf);

/* A client configuration with the load's producer settings (bootstrap.servers, acks=all,
 * idempotence, delivery timeout, retry back-off, log.level=error) and delivery callback cb
 * (NULL: none), for another producer of the same kind. The caller destroys it. Asserts. */
struct rl_conf *tl_load_client_conf_new(const struct tl_load *l, rl_delivery_cb cb, void *ctx);

/* Polls until `more` acknowledgements beyond the current count arrived. Asserts within 30 s,
 * the message naming `when`. */
void tl_load_wait_acks(struct tl_load *l, uint64_t more, const char *when);

/* Starts measuring the gaps afresh: every partition's last acknowledgement counts as now. */
void tl_load_gaps_reset(struct tl_load *l);

/* The longest gap between two acknowledgements of any partition since the reset, counting the
 * time since a partition's last one as a gap; *part gets that partition (unchanged when every
 * gap is 0). */
uint64_t tl_load_longest_gap(struct tl_load *l, int *part);

/* When partition part's longest gap began, in ms after the reset. */
uint64_t tl_load_gap_began(struct tl_load *l, int part);

/* Stops the sender, flushes (120 s) and asserts that every record it sent was acknowledged and
 * none failed; destroys the producer. Returns the number of records sent. */
int tl_load_stop(struct tl_load *l);

/* A consumer with the load's settings, assigned every partition of the topic from the earliest
 * offset, to read the stream back. The caller destroys it. Asserts. */
struct rl_consumer *tl_load_reader_new(const struct tl_load *l);

#endif
