/*
 * tl_delivery: libringlog delivery reports counted by outcome, for client tests (the callback
 * test_client_producer and test_client_e2e each used to carry a copy of).
 *
 *   struct tl_deliveries d;
 *   tl_deliveries_init(&d, NULL, 0);              // or an array indexed by each send's opaque
 *   rl_conf_set_delivery_cb(conf, tl_delivery_cb, &d);
 *   ... rl_producer_send(..., (void *)(uintptr_t)i); rl_producer_flush(...) ...
 *   d.persisted, d.failed, d.first_msg, d.out_of_order
 *
 * Counters are atomics (read them from any thread); the per-partition order check relies on
 * libringlog running callbacks on one thread.
 */
#ifndef RL_TESTS_TL_DELIVERY_H
#define RL_TESTS_TL_DELIVERY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "client/ringlog.h"

#define TL_DELIVERY_PARTITIONS 8 /* partitions whose offsets are checked for order */

struct tl_deliveries {
    atomic_long reports, persisted, possibly, not_persisted, failed, out_of_order;
    int first_error;                            /* the first failure's code and message */
    char first_msg[512];
    int64_t last_offset[TL_DELIVERY_PARTITIONS]; /* the last offset reported per partition */
    int32_t *partition_of; /* NULL, or per opaque index (< n_partition_of): the partition, -1
                              when the record failed */
    size_t n_partition_of;
};

/* Zeroes d; partition_of (may be NULL) gets each report's partition at its opaque index. */
void tl_deliveries_init(struct tl_deliveries *d, int32_t *partition_of, size_t n);

/* The delivery callback: ctx is a struct tl_deliveries. */
void tl_delivery_cb(void *ctx, const struct rl_delivery *d);

#endif
