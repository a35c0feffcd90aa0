/*
 * partition_int: the structures shared by the partition module's files: partition.c (the
 * append path, readers, waiters, pins) and partition_open.c (opening partitions, at start-up
 * and in the background). Nothing outside broker/partition/ includes this.
 *
 * Invariants:
 *  - visible_end <= durable_end <= log end: the commit index never passes what is durable here
 *    (with one replica it equals it), and readers never see past it.
 *  - While deferred_head is set, every new append joins the deferred queue, so appends reach
 *    the log in the order partition_append accepted them and a deferred batch's predicted
 *    offset (log end + records queued before it) is the one it gets.
 *  - pins counts accepted appends whose done has not run, slices not released, and explicit
 *    partition_pin holders. Deletion waits for zero.
 */
#ifndef RL_BROKER_PARTITION_INT_H
#define RL_BROKER_PARTITION_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "broker/partition/partition.h"

#define PARTITION_TOPIC_MAX 255

struct partition_opening;

struct partition_env {
    struct io *io;
    struct storage *st;
    struct partition_env_hooks hooks;
    struct partition *deferred;         /* partitions with deferred appends */
    bool retry_due;                     /* an append completed (or a tick passed): retry them */
    uint64_t deferred_batches;
    struct partition_opening *openings; /* topics whose logs storage is opening */
    uint32_t opening_parts;             /* partitions of openings not yet finished */
    uint64_t logs_opened, openings_done, segment_rolls;
};

struct partition {
    struct partition_env *env;
    char topic[PARTITION_TOPIC_MAX + 1];
    uint32_t index;
    char *dir;
    struct plog *log;
    uint64_t durable_end;        /* offsets below are durable here */
    uint64_t open_end;           /* the log end when opened: what survived the last run */
    uint64_t visible_end;        /* the commit index readers see (the high watermark) */
    struct partition_waiter *waiters;
    uint32_t pins;
    bool gone;
    /* Appends the log refused with RL_E_FULL, in arrival order (see the invariants). */
    struct partition_append *deferred_head, *deferred_tail;
    struct partition *deferred_next;
    bool deferred_listed;
    uint64_t deferred_records;
    /* Durable appends acknowledged at commit (PARTITION_ACK_ALL), in offset order. */
    struct partition_append *commit_head, *commit_tail;
    /* Replication (partition_set_replicator): appends go to the group; acks=1 appends wait
     * in durable_head for this replica's durability, acks=all ones in commit_head. */
    struct partition_replicator repl;
    bool replicated, leads;
    uint32_t leader;
    uint64_t term, commit_index, lead_gen;
    struct partition_append *durable_head, *durable_tail;
    void *attachment;
    void (*attachment_free)(void *obj);
    struct partition_stats stats;
};

/* Builds the in-memory partition around an open log (partition.c). NULL on allocation
 * failure (the log is left open). */
struct partition *partition_new(struct partition_env *env, const char *topic, uint32_t index,
                                const char *dir, struct plog *log);

/* plog_append, counting the appends that rolled the log to a new segment. */
int partition_log_append(struct partition *p, struct partition_append *a);

/* Reports the openings whose logs have all landed. */
void partition_open_process(struct partition_env *env);

#endif
