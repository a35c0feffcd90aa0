/*
 * pstate: per-partition state of idempotent producers. The produce path asks it, before a batch
 * is appended, whether the batch is new, a duplicate of one already in the log (answer with the
 * original offsets, append nothing), out of order (a sequence gap) or from a fenced producer
 * (an older epoch). Append path: broker produce -> pstate_check -> plog_append ->
 * pstate_record.
 *
 * For each producer id it keeps the current epoch and the sequence ranges and offsets of its last
 * PSTATE_BATCHES_KEPT batches (as Kafka does: at most five in flight per partition, so five
 * remembered batches recognise any retry). The table is rebuilt after a restart by replaying
 * batch headers from the log, starting from a checksummed snapshot (pstate_snapshot_encode),
 * taken when a segment rolls. Producers idle longer than the expiration are forgotten.
 *
 * Memory: one fixed-size entry per producer in an open-addressing table whose capacity is set at
 * creation; no allocation after pstate_create. Not thread-safe: owned by the partition's shard.
 */
#ifndef RL_BROKER_PSTATE_H
#define RL_BROKER_PSTATE_H

#include <stddef.h>
#include <stdint.h>

#define PSTATE_BATCHES_KEPT 5

struct pstate;

/* What pstate_check found for a batch. */
struct pstate_verdict {
    int64_t dup_base_offset; /* for RL_E_DUPLICATE_SEQUENCE: the original batch's offsets */
    int64_t dup_last_offset;
    int32_t expected_sequence; /* for RL_E_OUT_OF_ORDER_SEQUENCE: what the broker expected */
    int16_t current_epoch;     /* for RL_E_PRODUCER_FENCED */
};

/* Creates a table for at most max_producers producers. Returns NULL on allocation failure or
 * max_producers == 0. */
struct pstate *pstate_create(uint32_t max_producers);
void pstate_destroy(struct pstate *ps);

/* Checks a batch of record_count records from (producer_id, epoch) starting at base_sequence.
 * Returns:
 *   0                          new and in order: append it, then call pstate_record
 *   RL_E_DUPLICATE_SEQUENCE    already appended; v->dup_* hold the original offsets
 *   RL_E_OUT_OF_ORDER_SEQUENCE a gap (or a retry older than the batches kept)
 *   RL_E_PRODUCER_FENCED       epoch older than the producer's current epoch
 *   RL_E_UNKNOWN_PRODUCER_ID   unknown producer whose first batch does not start at sequence 0
 *                              (its state expired or was removed by retention)
 *   RL_E_INVALID_ARGUMENT      negative sequence, count 0, producer_id < 0
 *   RL_E_LIMIT                 the table is full of live producers
 * A newer epoch must start at sequence 0. Sequences wrap from INT32_MAX to 0. */
int pstate_check(struct pstate *ps, int64_t producer_id, int16_t epoch, int32_t base_sequence,
                 uint32_t record_count, struct pstate_verdict *v);

/* Records an appended batch (after pstate_check returned 0, or while replaying the log).
 * now_ms is the wall-clock time of the append, used for expiration. Returns 0 or RL_E_LIMIT. */
int pstate_record(struct pstate *ps, int64_t producer_id, int16_t epoch, int32_t base_sequence,
                  uint32_t record_count, int64_t base_offset, int64_t now_ms);

/* Forgets producers whose last append is older than now_ms - expiration_ms. Returns how many. */
uint32_t pstate_expire(struct pstate *ps, int64_t now_ms, int64_t expiration_ms);

/* Forgets every batch at or beyond `offset` (the log was truncated there); producers left with
 * no batch are removed. */
void pstate_truncate(struct pstate *ps, int64_t offset);

uint32_t pstate_count(const struct pstate *ps);

/* The producer's current epoch in this partition, or -1 when it has no state here. */
int pstate_producer_epoch(const struct pstate *ps, int64_t producer_id);

/* Snapshot: a self-contained, checksummed byte image of the table as of log offset
 * `next_offset` (replay resumes there), which must be durable in the log: the image holds only
 * batches that end below it (a producer with none is left out), so it never claims a batch the
 * log may lose. pstate_snapshot_size() bounds the bytes needed. Encode writes the current
 * version (2) and returns the bytes written or RL_E_FULL if cap is too small. Decode reads
 * versions 1 and 2, replaces the table's content and returns 0 with *next_offset and *version
 * (may be NULL) set, or RL_E_CORRUPT (checksum, magic, structure, or a version 2 batch at or
 * past next_offset), leaving the table empty. A version 1 image may claim batches past its
 * next_offset that never became durable: see broker/delivery/idem_state.c for how a load
 * treats it. */
#define PSTATE_SNAPSHOT_V1 1u
size_t pstate_snapshot_size(const struct pstate *ps);
int pstate_snapshot_encode(const struct pstate *ps, int64_t next_offset, uint8_t *buf, size_t cap);
int pstate_snapshot_decode(struct pstate *ps, const uint8_t *buf, size_t len,
                           int64_t *next_offset, uint32_t *version);

/* Replaces dst's content with src's (a table growing). Returns 0, or RL_E_LIMIT when dst
 * cannot hold src's producers (dst is left empty). */
int pstate_copy(struct pstate *dst, const struct pstate *src);

#endif
