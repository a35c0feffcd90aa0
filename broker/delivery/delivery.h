/*
 * delivery: the broker's delivery guarantees wired into the shard: idempotent producers
 * (broker/idempotence) and consumer groups with committed offsets (broker/coordinator). The
 * shard calls in at a handful of points: start-up (replays __consumer_offsets, learns the
 * producer-id block), its loop (a 100 ms timer drives session timeouts, rebalance deadlines,
 * producer expiry and snapshots), shutdown (pending joins are answered), request dispatch for
 * InitProducerId and the group APIs, and /metrics.
 *
 * Request path: shard -> api_dispatch -> delivery_dispatch -> idem_* / coord_* -> response.
 * Single-threaded: owned by the shard.
 */
#ifndef RL_BROKER_DELIVERY_H
#define RL_BROKER_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/io.h"
#include "proto/ringlog.pb-c.h"

struct shard;
struct req;
struct idem;
struct coord;

#define DELIVERY_TICK_MS 100     /* group timers and producer-state upkeep */
#define DELIVERY_IDEM_TICK_MS 1000

struct delivery {
    struct idem *idem;
    struct coord *coord;
    struct io_op timer_op;
    bool timer_inflight, timer_due;
    uint64_t last_idem_tick_ns;
};

/* After topics are open: creates the state, replays committed offsets and arms the timer.
 * Returns 0, or a negative code with a sentence in err. Blocks (replay). */
int delivery_open(struct shard *sh, char *err, size_t err_cap);

/* Shutdown begins: pending joins are answered (COORDINATOR_NOT_AVAILABLE) and the timer is
 * no longer re-armed. */
void delivery_begin_stop(struct shard *sh);

/* Loop work: runs the timer's due work. Never from inside an io callback. */
void delivery_process(struct shard *sh);

/* Frees everything (before the topics close). NULL-safe on a shard that never opened it. */
void delivery_close(struct shard *sh);

/* Handles InitProducerId and the group APIs (FindCoordinator .. DescribeGroups). */
void delivery_dispatch(struct req *r, const Ringlog__Request *rq);

/* Appends Prometheus lines (groups, members, producers, commits) to buf; returns the bytes
 * written (truncated at cap). */
size_t delivery_metrics(struct shard *sh, char *buf, size_t cap);

#endif
