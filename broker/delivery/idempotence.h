/*
 * idempotence: the broker side of idempotent producers. Two jobs:
 *  - producer ids: InitProducerId hands out ids from blocks recorded in the metadata log
 *    (a meta proposal), so an id is never handed out twice, also across restarts, and bumps a
 *    known producer's epoch (fencing the older epoch broker-wide);
 *  - per-partition producer state (broker/delivery/pstate), kept only for partitions
 *    idempotent producers use: the produce path asks idem_check before appending a batch that
 *    carries a producer id and calls idem_record once the batch has its offsets.
 *
 * Append path: produce -> idem_check -> partition_append -> idem_record.
 *
 * Nothing here blocks the loop. A partition's state is loaded, the first time an idempotent
 * batch needs it, on a background thread: the snapshot (<partition dir>/producer.snapshot, a
 * storage/checkpoint) and then the headers of the batches after it, read a slice at a time;
 * meanwhile idem_check answers IDEM_PENDING and the caller waits (idem_wait_loaded), in order.
 * Snapshots are encoded on the loop and written by the background thread, when the log rolls a
 * segment and after every 256 MiB appended (at most every 10 s), which bounds replay after a
 * crash inside a large active segment. An epoch bump for an id the broker does not know (after
 * a restart) loads every partition's state, a few at a time, before it is answered.
 *
 * Single-threaded: owned by the shard's loop; the background thread touches only a job's own
 * data.
 */
#ifndef RL_BROKER_IDEMPOTENCE_H
#define RL_BROKER_IDEMPOTENCE_H

#include <stdint.h>

#include "broker/delivery/pstate.h"

struct meta;
struct bg;
struct partition;
struct batch_header;
struct idem;

#define IDEM_BLOCK_SIZE 1000               /* producer ids reserved per metadata record */
#define IDEM_BLOCK_RETRIES 8               /* a block refused because another came first */
#define IDEM_MAX_PRODUCERS 65536            /* broker-wide producers whose epoch is tracked */
#define IDEM_PART_MIN_PRODUCERS 64          /* first table size of a partition */
#define IDEM_PART_FOLLOWER_PRODUCERS 4      /* ... that a follower took up (grows on demand) */
#define IDEM_PART_MAX_PRODUCERS 7000        /* per partition; the snapshot stays < 1 MiB */
#define IDEM_MAX_LOADS 2                    /* partitions loading at once */
#define IDEM_SNAPSHOT_NAME "producer.snapshot"
#define IDEM_PENDING 1                      /* idem_check: the state is being loaded */

struct idem_stats {
    uint32_t producers;          /* producer ids with a tracked epoch */
    uint32_t partitions_loaded;  /* partitions whose producer state is in memory */
    uint64_t partition_producers; /* sum over loaded partitions of their producers */
    uint64_t duplicates, out_of_order, fenced, snapshots, expired;
    uint64_t replayed_offsets;   /* log offsets replayed by loads, in total */
    uint64_t resumes;            /* loads that went on from a table in memory (no snapshot) */
    uint64_t last_replay_from, last_replay_end; /* the latest load's replay range */
};

/* Creates the broker-wide state. The next id handed out is the end of the last block recorded
 * in the metadata log (ids of a block left unused before a restart are skipped); snapshots go
 * under data_dir; `bg` runs loads and snapshot writes. Returns NULL on allocation failure. */
struct idem *idem_create(struct meta *meta, struct bg *bg, const char *data_dir,
                         int64_t expiration_ms);
/* Frees everything; no load or snapshot may be in flight (drain the bg first). */
void idem_destroy(struct idem *id);

/* One InitProducerId, caller-owned (alive until answered). */
struct idem_init {
    /* in */
    int64_t producer_id;        /* -1: a fresh id */
    int32_t epoch;
    void (*done)(struct idem_init *in); /* when idem_init_producer returned 1 */
    void *ctx;
    /* out */
    int rc;
    int64_t out_id;
    int16_t out_epoch;
    char msg[1024];             /* a sentence when rc != 0 */
    /* idem's own */
    struct idem_init *next;
    int64_t now_ms;
};

/* InitProducerId. producer_id -1: a fresh id with epoch 0. Otherwise (producer_id, epoch) must
 * be the id's current epoch: the epoch is bumped (a fresh id is handed out when the epoch would
 * overflow). Returns 0 or an error with in->out_* / in->msg set, or 1 when the answer waits
 * (for a block of ids to be recorded, or for every partition's state to load); in->done runs
 * then, from the loop. Errors: RL_E_UNKNOWN_PRODUCER_ID (never handed out; in a cluster
 * RL_E_PRODUCER_ID_NOT_YET_KNOWN, as this broker's metadata may lag), RL_E_PRODUCER_FENCED (an
 * older epoch), RL_E_INVALID_PRODUCER_EPOCH (negative, or above the current one on a single
 * broker; in a cluster another broker may have handed it out, so it is taken as current),
 * RL_E_LIMIT, or the metadata log's. */
int idem_init_producer(struct idem *id, struct idem_init *in, int64_t now_ms);

/* Checks a batch with producer_id >= 0 about to be appended to p. Returns 0 (append it, then
 * idem_record), RL_E_DUPLICATE_SEQUENCE with v->dup_* set (do not append; answer with those
 * offsets once they are visible), IDEM_PENDING (p's state is being loaded: wait with
 * idem_wait_loaded, then check again), or an error with msg set: RL_E_OUT_OF_ORDER_SEQUENCE,
 * RL_E_PRODUCER_FENCED, RL_E_UNKNOWN_PRODUCER_ID, RL_E_INVALID_PRODUCER_EPOCH, RL_E_LIMIT,
 * RL_E_PRODUCER_ID_NOT_YET_KNOWN (in a cluster: an id past every block this broker's metadata
 * has applied, which may be another broker's newest; retriable), or a code from loading the
 * state. */
int idem_check(struct idem *id, struct partition *p, const struct batch_header *h,
               int64_t now_ms, struct pstate_verdict *v, char *msg, size_t msg_cap);

/* A caller waiting for a partition's state to load (after IDEM_PENDING); caller-owned. */
struct idem_wait {
    void (*done)(struct idem_wait *w, int rc); /* rc 0: loaded; else why it could not be */
    void *ctx;
    struct idem_wait *next;
};
/* Queues w behind earlier waiters of p, in order; done runs from the loop once the load ends. */
void idem_wait_loaded(struct idem *id, struct partition *p, struct idem_wait *w);

/* Records an appended batch (after idem_check returned 0) whose offsets start at base_offset
 * (assigned by partition_append, or predicted for a batch queued behind a full log). */
void idem_record(struct idem *id, struct partition *p, const struct batch_header *h,
                 uint64_t base_offset, int64_t now_ms);

/* Periodic work from the shard's loop: expires idle producers and starts a snapshot for each
 * loaded partition whose log rolled a segment since the last look. Never blocks. */
void idem_tick(struct idem *id, int64_t now_ms);

void idem_get_stats(const struct idem *id, struct idem_stats *out);

#endif
