/*
 * produce: the produce service, protocol-neutral: plain C structs in and out, so the native
 * protocol (broker/native) and a Kafka listener call the same code. Append path:
 *
 *   handler -> produce_start -> per partition: batches validated (header, checksum,
 *   max.message.bytes) before any is appended -> idempotence (idem_check: new, duplicate,
 *   out of order, fenced) -> partition_append -> idem_record -> ... appends durable ->
 *   q->done (acks 1/all; acks 0 answers at once)
 *
 * A duplicate is answered with its original's offsets and not appended; with acks != 0 it
 * waits (a partition waiter) until the original is visible, like the original would. A batch
 * that meets a full log is queued in order by the partition (deferred) and answered when it is
 * appended.
 *
 * Single-threaded: the shard's loop.
 */
#ifndef RL_BROKER_DELIVERY_PRODUCE_H
#define RL_BROKER_DELIVERY_PRODUCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct meta;
struct idem;
struct produce;
struct svc_req;

/* One partition's data in a produce request. */
struct produce_part {
    /* in */
    const char *topic;
    uint32_t partition;
    const uint8_t *data;        /* whole batches; valid only during produce_start */
    uint32_t data_len;
    bool checksum_known;        /* the caller computed data's checksums itself (not redone) */
    /* out */
    int32_t error_code;
    const char *error_message;  /* in the request's arena (or static) */
    int64_t base_offset;        /* of the first batch, or -1 */
    int64_t log_append_time_ms; /* -1: create time (the only kind today) */
    int64_t log_start_offset;
};

struct produce_request {
    int32_t acks;               /* 0, 1 or -1 (all) */
    size_t n_parts;
    struct produce_part *parts; /* in the request's arena */
    /* Called once when the answer is ready: within produce_start for acks 0 (and when nothing
     * waits), otherwise from the loop when every append is done. */
    void (*done)(struct svc_req *r, struct produce_request *q);
    void *ctx;
};

struct produce_stats {
    uint64_t deferred_batches;   /* batches queued because a log was full */
    uint64_t duplicate_waits;    /* duplicates answered after their original's append */
};

int produce_create(struct meta *meta, struct idem *idem, struct produce **out);
void produce_destroy(struct produce *ps);

/* Starts q for r (q and its parts live in r's arena). r->state and r->finish belong to the
 * service until q->done has run. */
void produce_start(struct produce *ps, struct svc_req *r, struct produce_request *q);

void produce_get_stats(const struct produce *ps, struct produce_stats *out);

#endif
