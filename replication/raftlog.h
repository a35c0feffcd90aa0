/*
 * raftlog: the partition log (storage/plog.h) as a Raft log (replication/raft.h). With it the
 * partition log itself is the Raft log: a Raft entry is a record batch, its count the batch's
 * records, its index the log end offset after it (Kafka offset o is Raft index o + 1), and its
 * term the batch's leader_epoch. Where it sits: replication driver -> raftlog -> plog -> io.
 *
 * What the core asks of a log (struct raft_log_ops) is answered from three small in-memory
 * indexes and the plog:
 *  - epochs: epoch -> start offset, as Kafka's leader-epoch cache, so the term of any offset
 *    is a binary search and "the last entry of term <= t" (raft_log_ops.boundary, KIP-279's
 *    question) is one;
 *  - configurations: every configuration entry (index and payload), so the core never scans;
 *  - the tail: the boundaries and terms of the batches appended since open, so the hot term()
 *    queries near the end of the log (every append, ack and commit asks one) need no I/O.
 * Whether an older index is a boundary is asked of the plog (its offset index, plog_read).
 * Epochs and configurations are persisted as one small checkpoint in the partition directory
 * (`raft-state`, storage/checkpoint.h), covering the log up to an offset that is committed and
 * durable when it is written (never truncated, so no truncation can make the checkpoint wrong);
 * at open the part of the log past it is read back to complete them. The checkpoint is written
 * by raftlog_maintain (the driver's choice of when) and at close.
 *
 * Entries: a data entry's payload is the whole batch (its bytes as stored or as proposed); the
 * leader's no-op and configuration entries are control batches of one record (flag bit 5, key
 * version 0 and type RAFTLOG_CTL_NOOP or RAFTLOG_CTL_CONFIG, big-endian as Kafka's control
 * keys; value empty or the configuration payload), built here deterministically (timestamp 0),
 * so every replica stores the same bytes. In a raft_entry they appear as the core made them:
 * type CONFIG with the configuration payload, or type NORMAL with no payload. Consumers skip
 * control batches.
 *
 * Appends: the plog must use flush policy `batch`: an append counts as durable when the plog
 * acknowledges it, and Raft counts a replica toward commit only once its copy is on disk
 * (replication-anchors 6.4). A data batch must already carry base_offset = index - count (the
 * proposer stamps it; raftlog_stamp). Followers append with keep_offsets (the plog checks the offset), the
 * leader with assigned offsets. Appends complete asynchronously: raftlog_take_durable reports
 * the highest entry made durable, which the driver passes to raft_persisted (never from inside
 * the plog callback, which may run while another ready is being carried out). An append the
 * plog refuses for buffer space (RL_E_FULL: the storage's write-buffer pool is lent out, as
 * when a thousand groups elect at once) waits in order with the ones after it and is retried
 * when any raftlog of the arena completes an append or finishes a ready. A failed append (an
 * I/O error) makes the raftlog failed: every later call returns the error and the driver
 * restarts the group from what is durable.
 *
 * Truncation uses plog_truncate_to_async (the cut in memory at once, the files in the
 * background); appends made before it is done wait in a queue (their bytes copied) and go to the
 * plog in order once it is.
 *
 * Reads: entries() copies whole batches into a read arena shared by all raftlogs of a loop
 * (struct raftlog_arena), valid until raftlog_ready_done. Batches appended but not yet written
 * are not readable from the plog; entries() then returns RL_E_FULL and the core sends them on a
 * later call. All file I/O goes through io (checkpoints through storage/checkpoint.h), so the
 * simulated back-end can stand in for the disk. Blocking: open, close, maintain and a snapshot
 * install (rare); nothing on the append, truncation or read path blocks.
 */
#ifndef RL_REPLICATION_RAFTLOG_H
#define RL_REPLICATION_RAFTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replication/raft.h"

struct io;
struct plog;
struct raftlog;
struct raftlog_arena;

#define RAFTLOG_CTL_NOOP 100   /* control record type of the leader's no-op */
#define RAFTLOG_CTL_CONFIG 101 /* control record type of a configuration entry */
#define RAFTLOG_CHECKPOINT "raft-state"
#define RAFTLOG_MAX_EPOCHS 65536  /* epochs kept; more are refused (RL_E_LIMIT) */
#define RAFTLOG_MAX_CONFIGS 4096  /* configuration entries kept */
#define RAFTLOG_MAX_INFLIGHT 4096 /* appends awaiting durability; more fail with RL_E_FULL */

/* The shared read arena of one loop: every raftlog on the loop reads into it; its contents
 * live until raftlog_ready_done. cap_bytes bounds one ready's reads (at least 64 KiB) and must
 * exceed the largest batch the logs hold (a batch that cannot fit is never sent): 8 MiB plus
 * the plog's max_batch_bytes suits the defaults. Returns NULL on allocation failure. */
struct raftlog_arena *raftlog_arena_create(size_t cap_bytes);
void raftlog_arena_destroy(struct raftlog_arena *a);

/* The catch-up budget of a loop (replication.catchup.max.bytes.per.sec): entries read for a
 * follower that is behind (entries at or below the commit index, which a quorum already holds:
 * a restarted replica, one caught up from the log start, a new learner) take at most
 * bytes_per_sec across every raftlog of the arena, measured on io's clock, with a burst of a
 * tenth of a second (at least 64 KiB). Past it entries() answers "later" (RL_E_FULL) and the
 * core sends them on a later reply or heartbeat. Entries not yet committed (what producers
 * wait for) are never held back. 0 (the default): no limit. */
void raftlog_arena_set_catchup_rate(struct raftlog_arena *a, struct io *io,
                                    uint64_t bytes_per_sec);
struct raftlog_arena_stats {
    uint64_t catchup_bytes;    /* bytes read for catch-up */
    uint64_t catchup_deferred; /* catch-up reads put off because the budget was spent */
    uint64_t appends_blocked;  /* times a raftlog's appends waited for write-buffer space */
    uint64_t send_reads;       /* reads of the log (pread, on the loop) for entries to send */
    uint64_t send_read_bytes;  /* their bytes (catch-up included) */
};
void raftlog_arena_get_stats(const struct raftlog_arena *a, struct raftlog_arena_stats *out);

/* Opens the Raft view of `log` (an open plog of directory `dir` on the storage whose io is
 * `io`; borrowed: it must outlive the raftlog), reading the checkpoint and the log past it.
 * Blocks. Returns 0 and *out, RL_E_CORRUPT (a damaged checkpoint is reported and rebuilt from the
 * log instead, so only a log whose batches contradict themselves fails), or a negative code. */
int raftlog_open(struct io *io, struct plog *log, const char *dir, struct raftlog_arena *arena,
                 struct raftlog **out);

/* Waits until every append and truncation in flight has answered (after a power cut they
 * answer with errors), writes the checkpoint if it changed, and frees the raftlog. Call it
 * before the plog is closed. Blocks. */
void raftlog_close(struct raftlog *rl);

/* The raft_log_ops of a raftlog; log_ctx is the struct raftlog. */
extern const struct raft_log_ops raftlog_ops;

/* Step 2 of a ready (raft.h): a snapshot install, or truncation (refused with RL_E_INTERNAL
 * below the commit index the log was told of), then the appends. Installing snapshot (index,
 * term, configuration) restarts the plog empty at `index` (plog_reset_to, with the snapshot as
 * the reset's meta, so the two are durable together) and forgets the old log's epochs,
 * configurations and tail; the leader's batches from its log start then arrive as ordinary
 * appends. The install blocks (a few syncs; it happens once per replica that fell behind its
 * leader's log start); nothing else here does. Returns 0 or a negative code (the raftlog is
 * then failed). */
int raftlog_apply(struct raftlog *rl, const struct raft_ready *rd);

/* What the log starts after, for raft_init (repl_group_options.snap) when a group restarts:
 * the snapshot last installed while the log still starts there; otherwise index = the log
 * start, its term from the epochs, and the latest configuration entry at or below it (or the
 * installed snapshot's, or `initial` with config_index 0 when the log holds none). A new log
 * gives index 0 and `initial`, and so does a log whose term at the start is unknown (a start
 * inside a batch, or epochs dropped by an earlier version's checkpoint: warned; such a group
 * cannot send snapshots until its start moves again). Returns 0 or a negative code. */
int raftlog_snapshot(struct raftlog *rl, const struct raft_config *initial,
                     struct raft_snapshot_meta *out);

/* The ready just carried out is done: the arena's contents (entries() payloads) may go. */
void raftlog_ready_done(struct raftlog *rl);

/* Sets *index and *term to the latest entry whose append completed durably since the last
 * call and returns true; false when there is nothing new. */
bool raftlog_take_durable(struct raftlog *rl, uint64_t *index, uint64_t *term);

/* The commit index (high watermark) the core reached; truncation below it is refused. */
void raftlog_set_commit(struct raftlog *rl, uint64_t commit);

/* Writes the checkpoint when epochs or configurations changed since the last one, or when more
 * than `max_uncovered` bytes were appended since it (0: only on change). Blocks (two fsyncs)
 * when it writes. Returns 1 when written, 0 when not needed, or a negative code. */
int raftlog_maintain(struct raftlog *rl, uint64_t max_uncovered);

/* The log start (the plog's), where retention or a snapshot install left it. */
uint64_t raftlog_log_start(const struct raftlog *rl);

/* The sticky error, or 0. */
int raftlog_failed(const struct raftlog *rl);

/* Calls fn(ctx) from the plog's completion callback whenever an append completes (durably or
 * not), so a driver learns there is something for raftlog_take_durable without polling every
 * log. fn must not call into the raft core (it runs inside io_run, perhaps while a ready is
 * being carried out). */
void raftlog_set_notify(struct raftlog *rl, void (*fn)(void *ctx), void *ctx);

/* Stamps base_offset (index - count of the entry the batch will be) and leader_epoch into a
 * data batch before it is proposed, so the bytes every replica stores and every message carries
 * are the leader's own. */
void raftlog_stamp(uint8_t *batch, uint64_t base_offset, uint64_t term);

/* Builds the control batch of a no-op (payload NULL, len 0) or configuration entry at
 * base_offset with leader_epoch term into buf (cap bytes). Returns its length, or a negative
 * code (-ENOBUFS when cap is too small). Deterministic: equal inputs give equal bytes. */
int raftlog_control_batch(uint8_t *buf, size_t cap, int type, const void *payload, uint32_t len,
                          uint64_t base_offset, uint64_t term);

#endif
