/*
 * delivery: the broker's delivery services together, protocol-neutral: produce (with
 * idempotence), fetch and list offsets, producer ids (InitProducerId), consumer groups and
 * committed offsets. The server creates it after the metadata (broker/meta) is open, ticks it
 * from its loop (group session timeouts and rebalance deadlines every tick, producer expiry and
 * producer-state snapshots every DELIVERY_IDEM_TICK_MS), tells it when shutdown begins, and
 * reads its stats for /metrics. Protocol handlers (broker/native, later broker/kafka) call the
 * services through the pointers below.
 *
 * Single-threaded: owned by the shard's loop.
 */
#ifndef RL_BROKER_DELIVERY_DELIVERY_H
#define RL_BROKER_DELIVERY_DELIVERY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/delivery/coordinator.h"
#include "broker/delivery/fetch.h"
#include "broker/delivery/idempotence.h"
#include "broker/delivery/produce.h"

struct bg;
struct meta;

#define DELIVERY_IDEM_TICK_MS 1000

struct delivery_config {
    char data_dir[PATH_MAX];             /* where producer-state snapshots go */
    int64_t producer_id_expiration_ms;   /* producer.id.expiration.ms */
    bool fetch_splice;                   /* fetch.splice */
    struct coord_config coord;
};

struct delivery {
    struct idem *idem;
    struct coord *coord;
    struct produce *produce;
    struct fetch *fetch;
    int64_t last_idem_tick_ms;
};

struct delivery_stats {
    struct idem_stats idem;
    struct coord_stats coord;
    struct produce_stats produce;
    struct fetch_stats fetch;
};

/* After the metadata is open: creates the services and replays committed offsets. Returns 0
 * and *out, or a negative code with a sentence in err. Blocks (replay). */
int delivery_open(const struct delivery_config *cfg, struct meta *meta, struct bg *bg,
                  int64_t now_ms, struct delivery **out, char *err, size_t err_cap);

/* Periodic work, from the loop (never inside a callback). */
void delivery_tick(struct delivery *dv, int64_t now_ms);

/* Shutdown begins: pending joins are answered (COORDINATOR_NOT_AVAILABLE), group requests
 * refused from now on. */
void delivery_begin_stop(struct delivery *dv);

/* Frees everything. NULL is fine. */
void delivery_close(struct delivery *dv);

void delivery_get_stats(const struct delivery *dv, struct delivery_stats *out);

#endif
