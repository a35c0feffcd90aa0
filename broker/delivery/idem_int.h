/*
 * idem_int: what idempotence.c (producer ids, epochs, the produce path) and idem_state.c (each
 * partition's producer state: loads, snapshots, waiters) share. Nothing outside
 * broker/delivery includes this.
 *
 * Invariants:
 *  - An idem_part exists (attached to its partition, linked in idem.parts) for every partition
 *    an idempotent producer used or a full load was asked for; nothing else has one.
 *  - ps is NULL until a load installs it; while NULL, no idempotent batch of the partition is
 *    appended (idem_check answers IDEM_PENDING), so a load that reads the log up to the visible
 *    end it saw misses none.
 *  - A load (from being queued to its end) and a snapshot in flight pin their partition, so
 *    the partition (and its idem_part) outlives them.
 */
#ifndef RL_BROKER_DELIVERY_IDEM_INT_H
#define RL_BROKER_DELIVERY_IDEM_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/delivery/idempotence.h"
#include "broker/meta/meta.h"

struct idem_epoch {
    int64_t producer_id; /* -1: free slot */
    int64_t last_ms;
    int16_t epoch;
};

struct idem_part {
    struct idem *id;
    struct partition *p;
    struct idem_part *prev, *next; /* idem.parts */
    struct pstate *ps;             /* NULL until loaded */
    uint32_t max_producers;        /* of ps */
    uint32_t seen_segments;        /* segment count at the last look (roll detection) */
    bool dirty;                    /* recorded since the last snapshot */
    uint64_t bytes_at_snapshot;    /* the partition's bytes_in when the last snapshot began */
    int64_t snapshot_ms;           /* when the last snapshot began */
    bool load_queued, loading;
    struct idem_part *load_next;   /* idem's load queue */
    struct idem_wait *waiters, *waiters_tail; /* waiting for the load, in order */
    bool snapshot_inflight, snapshot_wanted;
    /* partition_lead_generation when the loaded state's replay range was taken: a replicated
     * partition whose replica led again since holds appends this state never saw. */
    uint64_t lead_gen;
    /* The table holds every idempotent batch of the log below `applied` (a load's replay end)
     * and, when `led`, batches recorded while leading past it, which a truncation may cut. A
     * follower's table holds committed batches only (a load never reads past the visible end),
     * so no truncation can touch it. */
    uint64_t applied;
    bool led;
    bool adopted; /* taken up by a follower: its table starts small (most have no producers) */
};

struct idem {
    struct meta *meta;
    struct io *io;                 /* file I/O of loads and snapshots (meta_io) */
    struct bg *bg;
    char data_dir[PATH_MAX];
    int64_t expiration_ms;
    int64_t next_id, block_end;
    int64_t reserve_base;          /* the block being reserved starts here */
    uint32_t reserve_retries;      /* the block was refused because another broker's came first */
    struct idem_epoch *epochs;
    uint32_t n_epochs;
    uint8_t *scratch;              /* the loop's table-growth image, CHECKPOINT_MAX_PAYLOAD */
    int64_t last_expire_ms;
    int64_t now_ms;                /* the latest time the loop told us (loads use it) */
    struct idem_stats st;
    /* InitProducerIds waiting for the next block of ids to be recorded, in arrival order. */
    struct idem_init *waiting, *waiting_tail;
    bool reserving;
    struct meta_proposal block_pr;
    /* Per-partition state. */
    struct idem_part *parts;
    struct idem_part *load_head, *load_tail;
    uint32_t loads_inflight;
    /* Epoch bumps of ids the broker does not know, waiting for every partition to load. */
    struct idem_init *bump_waiting, *bump_waiting_tail;
};

/* idem_state.c, for idempotence.c */

/* The partition's idem_part, created (and attached) on first use; NULL when out of memory. */
struct idem_part *idem_part_get(struct idem *id, struct partition *p);
/* Queues a load of ip's state (nothing when loaded, loading or queued). */
void idem_part_load(struct idem *id, struct idem_part *ip);
/* Queues a load that goes on from ip's table in memory, replaying the log from ip->applied to
 * the visible end (a follower applying what committed; a new leader's catch-up). */
void idem_part_resume(struct idem *id, struct idem_part *ip);
/* True while loads run or wait. */
bool idem_loads_busy(const struct idem *id);
/* Records one batch into a loaded ip, growing its table when full. Returns 0 or RL_E_LIMIT. */
int idem_part_record(struct idem *id, struct idem_part *ip, const struct batch_header *h,
                     uint64_t base_offset, int64_t now_ms);
/* Doubles ip's table (up to IDEM_PART_MAX_PRODUCERS). Returns 0 or an error. */
int idem_part_grow(struct idem *id, struct idem_part *ip);
/* Starts writing a snapshot of ip (or remembers to, after the one in flight). */
void idem_part_snapshot(struct idem *id, struct idem_part *ip, int64_t now_ms);

/* idempotence.c, for idem_state.c: every load has ended; answers waiting epoch bumps. */
void idem_loads_drained(struct idem *id);

#endif
