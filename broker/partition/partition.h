/*
 * partition: one partition of a topic as the broker serves it: its log (storage/plog), the one
 * append path every writer uses, the end up to which readers may see (the high watermark),
 * readers, long-poll waiters and the pins that keep it alive. The struct is opaque: everything
 * goes through these functions.
 *
 * Append path (produce and offset commits alike):
 *
 *   propose    partition_append: offsets assigned, the batch copied into the log's write
 *              buffer (or, when the log is full, into a copy queued in order and retried)
 *   durable    the log's write (and fdatasync, per flush policy) completed
 *   committed  the commit index moves: with one replica as soon as it is durable; replication
 *              will move it when a quorum has the batch
 *   visible    partition_visible_end moves to the commit index; readers and waiters see it
 *
 * An append's `done` runs when it reaches the stage its `ack` asks for (durable for
 * PARTITION_ACK_LEADER, committed for PARTITION_ACK_ALL) or fails. One replica makes both the
 * same moment, and acks=all equals acks=1 until replication inserts the quorum between them.
 *
 * Lifetime: a partition lives until its owner (broker/meta) closes or deletes it, which it may
 * do only when it is not pinned. Every accepted append pins it until its done has run, every
 * read until its slice is released; other holders (a long poll answer being sent, a producer
 * state load) pin it with partition_pin. Deletion marks it gone first (new appends fail,
 * waiters are told), and the owner reaps it once unpinned.
 *
 * Single-threaded: owned by the shard's loop. Callbacks (done, waiter wake) may run inside the
 * io loop and must only record what happened.
 */
#ifndef RL_BROKER_PARTITION_PARTITION_H
#define RL_BROKER_PARTITION_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/plog.h"

struct io;
struct storage;
struct partition;
struct partition_env;

/* --- environment: what the partitions of one shard share -------------------------------------- */

struct partition_env_hooks {
    /* Charges (delta > 0) or refunds (delta < 0) the broker's in-flight memory budget for
     * batches copied while they wait for room in a full log. */
    void (*mem)(void *arg, int64_t delta);
    void *arg;
};

struct partition_env_stats {
    uint64_t deferred_batches;  /* appends queued because a log was full, since start */
    uint32_t opening;           /* partitions being created in the background */
    uint64_t logs_opened;       /* logs opened (start-up and new topics) */
    uint64_t openings_done;     /* partition_open_all calls finished (reported) */
    uint64_t segment_rolls;     /* appends that rolled their log to a new segment */
};

/* Creates the environment on the shard's io and storage. Returns 0 and *out, or -ENOMEM. */
int partition_env_create(struct io *io, struct storage *st,
                         const struct partition_env_hooks *hooks, struct partition_env **out);
/* The io the environment's partitions use (for other file I/O of the same broker: the
 * metadata log, snapshots). */
struct io *partition_env_io(const struct partition_env *env);

/* Frees the environment; every partition must be closed or deleted first. */
void partition_env_destroy(struct partition_env *env);

/* Loop work, once per turn (never inside a callback): retries deferred appends when an append
 * completed since the last turn, and continues opening partitions in the background. */
void partition_env_process(struct partition_env *env);

/* Every shard tick: room may have come from elsewhere (released descriptors), so deferred
 * appends are retried at the next turn. */
void partition_env_tick(struct partition_env *env);

/* True while partitions are being created. */
bool partition_env_busy(const struct partition_env *env);

/* Runs the io until every opening has been reported (shutdown). */
void partition_env_settle(struct partition_env *env);

void partition_env_get_stats(const struct partition_env *env, struct partition_env_stats *out);

/* --- open, close, delete ---------------------------------------------------------------------- */

/* "<data_dir>/<topic>-<index>", the partition's directory (DESIGN "Storage"). Returns the length
 * or -ENAMETOOLONG. */
int partition_dir_path(const char *data_dir, const char *topic, uint32_t index, char *out,
                       size_t cap);

/* Opens (creating if needed, recovering if the last stop was unclean) partition `index` of
 * `topic`, whose directory is under data_dir. Returns 0 and *out, or a negative code with a
 * sentence in err. Blocks (recovery): for start-up. */
int partition_open(struct partition_env *env, const char *data_dir, const char *topic,
                   uint32_t index, const struct plog_config *cfg, struct partition **out,
                   char *err, size_t err_cap);

/* Called once when partition_open_all finishes: rc 0 with every held out[i] set, or a negative code
 * with a sentence in err (nothing stays open or on disk then). */
typedef void (*partition_opened_fn)(void *ctx, int rc, const char *err);

/* Creates partitions 0..count-1 of a new topic without stalling the loop: storage opens each
 * log on its background thread (plog_open_async), and the partitions are built on the loop as
 * they land. out (count slots) is filled as they open and must stay valid until done runs,
 * from partition_env_process. hold (count flags, or NULL for all): the partitions this broker
 * holds; the others stay NULL and get no log. Returns 0 (done will be called), or -ENOMEM. */
int partition_open_all(struct partition_env *env, const char *data_dir, const char *topic,
                       uint32_t count, const struct plog_config *cfg, const bool *hold,
                       struct partition **out, partition_opened_fn done, void *ctx);

/* Closes the log cleanly (marking a clean shutdown) and frees p. Must not be pinned. Blocks. */
void partition_close(struct partition *p);

/* Deletes the log's files (on storage's background thread) and frees p. Must not be pinned.
 * Blocks until the deletion is queued. */
void partition_delete(struct partition *p);

/* The topic is being deleted: later appends fail with RL_E_UNKNOWN_TOPIC (deferred ones too)
 * and every waiter is told (PARTITION_GONE). */
void partition_mark_gone(struct partition *p);
bool partition_gone(const struct partition *p);

/* Applies a changed topic config to the open log. Returns 0 or the log's error. */
int partition_set_config(struct partition *p, const struct plog_config *cfg);

/* Moves the log start up to `offset` (plog_advance_start: whole segments below it go). For
 * logs whose content below it lives elsewhere (a snapshot of committed offsets). Returns 0 or
 * a negative code. */
int partition_advance_start(struct partition *p, uint64_t offset);

/* Retention (plog_enforce_retention): returns segments deleted or a negative code. */
int partition_enforce_retention(struct partition *p, int64_t now_ms);

/* --- identity and positions ------------------------------------------------------------------- */

const char *partition_topic(const struct partition *p);
uint32_t partition_index(const struct partition *p);
const char *partition_dir(const struct partition *p);

/* THE visible end (the high watermark): offsets below it are committed, and only they may be
 * read, fetched, counted or waited on. */
uint64_t partition_visible_end(const struct partition *p);
/* Cuts of the partition's log by truncation (plog_truncations): a reader keeping bytes it read
 * ahead checks that this did not change. */
uint64_t partition_truncations(const struct partition *p);

uint64_t partition_start_offset(const struct partition *p);
/* The log end when the partition was opened: everything an earlier run of the broker left in
 * the log lies below it (offsets at or past it were appended by this run). */
uint64_t partition_open_end(const struct partition *p);
/* The log end offset: the next offset the log assigns (appended, maybe not yet durable). */
uint64_t partition_log_end(const struct partition *p);
/* The next offset an append made now would get: the log end plus the records of appends
 * deferred behind a full log. */
uint64_t partition_next_offset(const struct partition *p);
uint64_t partition_size_bytes(const struct partition *p);
uint64_t partition_unsynced_bytes(const struct partition *p);
uint32_t partition_segment_count(const struct partition *p);

struct partition_stats {
    uint64_t records_in, bytes_in, batches_in;
    uint64_t records_out, bytes_out;
    uint64_t append_errors;
};
const struct partition_stats *partition_stats(const struct partition *p);
/* Counts data sent to a reader (bytes of batches, records at or above the fetch offset). */
void partition_count_out(struct partition *p, uint64_t bytes, uint64_t records);

/* --- pins ------------------------------------------------------------------------------------- */

void partition_pin(struct partition *p);
/* Asserts that the pin count does not go below zero. */
void partition_unpin(struct partition *p);
bool partition_pinned(const struct partition *p);

/* --- append ----------------------------------------------------------------------------------- */

enum partition_ack {
    PARTITION_ACK_LEADER, /* done once durable here (acks=1) */
    PARTITION_ACK_ALL,    /* done once committed (acks=all; the same moment with one replica) */
};

struct partition_append;
typedef void (*partition_append_done_fn)(struct partition_append *a, int result);

/* A caller-owned append; it must stay alive until done has run. */
struct partition_append {
    /* in */
    const uint8_t *batch;       /* a validated batch (batch_validate) of len bytes */
    uint32_t len;
    uint32_t records;           /* its record count */
    enum partition_ack ack;
    partition_append_done_fn done; /* once: 0 at the stage `ack` asks for, or a negative code */
    void *ctx;
    /* out: set by partition_append when it returns 0 */
    uint64_t base_offset;       /* assigned, or predicted (deferred: log end + records queued
                                   before it), which the retry checks */
    uint64_t last_offset;       /* set when the log accepts the batch */
    bool deferred;              /* queued behind a full log (the batch was copied) */
    /* the partition's own */
    struct plog_append pa;
    struct partition *p;
    uint8_t *copy;
    struct partition_append *next;
    uint64_t term;              /* replicated: the term it was proposed in */
};

/* Appends a's batch. Returns 0 (done will be called; a->base_offset is set), or a negative
 * code at once (done will not be called): RL_E_UNKNOWN_TOPIC (gone), -ENOMEM, or the log's
 * refusal (plog_append: RL_E_LOG_FAILED, RL_E_MESSAGE_TOO_LARGE, ...). A full log (RL_E_FULL)
 * is not an error: the batch is copied (charged to the memory budget) and appended, in order,
 * once there is room. The batch bytes may be reused as soon as this returns. */
int partition_append(struct partition *p, struct partition_append *a);

/* --- readers ---------------------------------------------------------------------------------- */

/* Whole batches from `offset` up to the visible end (plog_read's rules): returns 0 with *out
 * (len 0 at the end), or a code (RL_E_OFFSET_OUT_OF_RANGE, RL_E_UNKNOWN_TOPIC when gone). p
 * stays pinned until partition_read_release. */
int partition_read(struct partition *p, uint64_t offset, uint32_t max_bytes,
                   struct plog_slice *out);
void partition_read_release(struct partition *p, struct plog_slice *slice);

/* Copies whole batches from `offset` (below the visible end) into buf. Returns the bytes
 * copied or a negative code. Blocks on pread: for start-up replays. */
int partition_read_copy(struct partition *p, uint64_t offset, uint32_t max_bytes, uint8_t *buf,
                        size_t cap);

/* A reader found the batch holding `offset` damaged, or a read there failed with
 * RL_E_CORRUPT: plog_report_damage. Returns RL_E_CORRUPT with the damaged range in
 * [*from, *to) (read on from *to), 0 when the batch on disk is intact, or another code. Blocks:
 * for start-up replays. */
int partition_report_damage(struct partition *p, uint64_t offset, uint64_t *from, uint64_t *to);

/* The first offset whose batch's max timestamp is >= ts, never beyond the visible end. */
int partition_offset_for_time(struct partition *p, int64_t ts_ms, uint64_t *offset);

/* --- waiters (long polls, duplicates waiting for their original) ------------------------------ */

enum partition_event {
    PARTITION_VISIBLE, /* the visible end moved; `bytes` batch bytes became visible */
    PARTITION_FAILED,  /* an append failed (the log refuses appends from now on) */
    PARTITION_GONE,    /* the partition is being deleted */
    PARTITION_DEPOSED, /* a replicated partition's leader stopped leading (its log may be cut) */
};

struct partition_waiter {
    struct partition_waiter *prev, *next;
    struct partition *part;     /* NULL when not waiting */
    /* Must only record what happened (it may run inside io_run). The waiter is still linked;
     * the callee may unlink it with partition_unwait (itself only). */
    void (*wake)(struct partition_waiter *w, enum partition_event ev, uint32_t bytes);
    void *ctx;
};

/* Adds w (wake and ctx set) to p's waiters. */
void partition_wait(struct partition *p, struct partition_waiter *w);
/* Removes w if it is waiting; harmless otherwise. */
void partition_unwait(struct partition_waiter *w);

/* --- replication (a cluster's Raft group per partition, broker/cluster/replica) -------------- *
 * A partition with more than one replica is a Raft group whose log is this partition's plog.
 * Its appends do not go to the log directly: partition_append proposes the batch to the group
 * (the batch is stamped in place with its offset and the term, so its bytes must be writable),
 * the group appends it through the raftlog, and the replicator reports back:
 *   partition_repl_durable   this replica's log is durable up to `end` (acks=1 on the leader)
 *   partition_repl_commit    the group's commit index: the visible end follows, never past
 *                            what is durable here (acks=all; fetch on every replica)
 *   partition_repl_role      leadership: only the ready leader (it committed an entry of its
 *                            term) takes appends; losing it fails every append waiting (they
 *                            may still commit: an idempotent retry is recognised)
 * A replicated partition opens with its visible end at the log start: what the log holds past
 * the commit index may be cut, so nothing is visible until the group's commit index is known. */

struct partition_replicator {
    /* Proposes one batch (stamped in place). all: acks=all (min.insync.replicas applies).
     * Returns 0 with *end (the offset after the batch), or a code (RL_E_NOT_LEADER,
     * RL_E_NOT_ENOUGH_REPLICAS, RL_E_THROTTLED, ...). */
    int (*propose)(void *ctx, uint8_t *batch, uint32_t len, bool all, uint64_t *end);
    /* The replicas in sync (node ids into out, at most cap); returns how many. */
    uint32_t (*in_sync)(void *ctx, uint32_t *out, uint32_t cap);
    void *ctx;
};

/* Makes p replicated (r copied), or plain again (r NULL: appends waiting fail with
 * RL_E_NOT_LEADER). */
void partition_set_replicator(struct partition *p, const struct partition_replicator *r);
bool partition_replicated(const struct partition *p);
/* The log under p, for the replicator's raftlog. */
struct plog *partition_plog(struct partition *p);
void partition_repl_durable(struct partition *p, uint64_t end);
void partition_repl_commit(struct partition *p, uint64_t commit);
void partition_repl_role(struct partition *p, bool leads, uint32_t leader, uint64_t term);
/* The leader this replica knows (0: none), and whether it is this broker, ready for appends. */
uint32_t partition_leader(const struct partition *p);
/* The term this replica is in (the leader epoch Metadata reports). */
uint64_t partition_term(const struct partition *p);
bool partition_leads(const struct partition *p);
/* The in-sync replicas of a replicated partition (see broker/cluster/replica.h); 0 when p is
 * not replicated. */
uint32_t partition_in_sync(const struct partition *p, uint32_t *out, uint32_t cap);
/* Counts the times this replica became the ready leader: state derived from appends made while
 * leading (producer state) is stale when this changed. */
uint64_t partition_lead_generation(const struct partition *p);

/* --- attachment ------------------------------------------------------------------------------- */

/* One object another module keeps per partition (broker/delivery: producer state), freed with
 * free_fn when the partition is closed or deleted. */
void partition_attach(struct partition *p, void *obj, void (*free_fn)(void *obj));
void *partition_attachment(const struct partition *p);

#endif
