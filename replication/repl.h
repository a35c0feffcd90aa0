/*
 * repl: the replication driver of one broker loop: a table of Raft groups (the controller and
 * every partition replica on the loop), one tick driver for all of them, messages addressed
 * (node, group), and the durability rules between the cores, their logs and the hard-state
 * store. Where it sits: broker (controller, replicated partitions) -> repl -> raft (the cores),
 * a log per group (replication/raftlog.h over the plog, or replication/memlog.h), hstore, and a
 * transport the broker provides (sockets are not this module's).
 *
 * What the driver does with each core call's ready (raft.h), for every group:
 *   1. a changed term or vote is put in the shared hstore; from then until that put is durable
 *      the group's outgoing messages are held (no vote grant or reply bearing the new term
 *      leaves before its fsync, replication-anchors 6.2);
 *   2. the log carries out the truncation and appends (repl_log_ops.apply); durability comes
 *      back later (take_durable, polled after the log's notify) and becomes raft_persisted;
 *   3. messages are encoded at once (their entry bytes live only as long as the ready) into
 *      this turn's frame for their node, heartbeats and heartbeat replies coalesced;
 *   4. a new commit index goes to the log (the truncation floor) and to on_commit.
 * repl_flush, once per loop turn, makes the hard states put in the turn durable with one write
 * and one fdatasync for all groups (hstore_flush), feeds durability reports to the cores,
 * releases messages whose hard state became durable, and hands every node its one frame.
 *
 * Heartbeats (replication-anchors 6.1): one frame per (node pair, turn) carries the heartbeat of
 * every group the pair shares, sorted by group; a group whose term and commit index are what the
 * follower last got in full is sent as its id alone. Replies are coalesced the same way. A
 * follower that cannot expand an id-only heartbeat (it restarted, or its leader changed) answers
 * "send it in full"; a leader that cannot expand an id-only reply asks for a full one.
 *
 * Transport contract: outbound, repl calls send(node, frame) at most once per node per
 * repl_flush, and the frame is valid only during the call (copy or write it out); a transport
 * may drop frames (Raft tolerates loss) but must not reorder the frames of one node pair (a TCP
 * connection). Inbound, the transport hands each frame to repl_receive; the frame need only be
 * valid during the call.
 *
 * Not thread-safe: one repl per loop thread. Allocation happens when groups are added and as
 * buffers grow to their working size; steady-state traffic allocates nothing.
 */
#ifndef RL_REPLICATION_REPL_H
#define RL_REPLICATION_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replication/raft.h"

struct hstore;
struct repl;
struct repl_group;

/* The write side of a group's log, beside its read side (struct raft_log_ops). */
struct repl_log_ops {
    /* Step 2 of a ready: truncation and appends. Returns 0 or a negative code, which fails the
     * group (it stops; the broker reopens it from what is durable). */
    int (*apply)(void *log, const struct raft_ready *rd);
    /* The ready is done: memory the log handed out for it (entries' payloads) may go. */
    void (*ready_done)(void *log);
    /* The latest entry durable since the last call: true with *index, *term, else false. */
    bool (*take_durable)(void *log, uint64_t *index, uint64_t *term);
    /* The commit index reached (the log may refuse to truncate below it). */
    void (*set_commit)(void *log, uint64_t commit);
    /* Where the log starts now (retention moves it), or NULL. When it passes the core's
     * snapshot index the driver compacts the core there (raft_compact), so a follower that
     * needs what is gone gets a snapshot message naming the log start. */
    uint64_t (*log_start)(void *log);
};

/* The repl_log_ops of a raftlog (log = struct raftlog *), so a partition's plog backs a group.
 * Call repl_group_log_durable from the raftlog's notify hook (raftlog_set_notify). */
extern const struct repl_log_ops repl_raftlog_ops;

/* Outbound transport: hands `frame` (rwire.h) for node `to` over; see the contract above.
 * Returns 0 or a negative code (the frame is counted as dropped). */
struct repl_transport {
    int (*send)(void *ctx, uint32_t to, const uint8_t *frame, size_t len);
    void *ctx;
    /* Bytes the transport holds for `to` and has not yet written (NULL: none ever). Flow
     * control: appends to a node pause once this plus the turn's frame to it reaches
     * REPL_FLOW_PAUSE_BYTES and resume once it is down to REPL_FLOW_RESUME_BYTES. */
    size_t (*backlog)(void *ctx, uint32_t to);
    /* Optional, instead of a copy in send: the frame is buf[headroom, headroom + len) of a
     * malloc'ed buffer of *cap bytes whose first `headroom` bytes are free for the
     * transport's header. The transport may take the buffer (then it puts another one,
     * possibly NULL with *cap 0, in *buf and *cap) or copy from it. Returns as send. */
    int (*send_buf)(void *ctx, uint32_t to, uint8_t **buf, size_t *cap, size_t len);
    size_t headroom;
};

/* Flow control per node (see repl_transport.backlog); heartbeats are never paused. */
#define REPL_FLOW_PAUSE_BYTES (8u << 20)
#define REPL_FLOW_RESUME_BYTES (4u << 20)

struct repl_group_options {
    uint64_t id;                      /* group id: 0 for the controller, then partitions */
    struct raft_options raft;         /* id = this node; log_ops/log_ctx: the log's read side */
    struct raft_snapshot_meta snap;   /* what the log starts after (new group: the members) */
    const struct repl_log_ops *log;   /* the log's write side; ctx is raft.log_ctx */
    /* The commit index moved to `commit` (apply committed entries up to it; answer acks=all
     * produce requests waiting for it). Called outside any core call. */
    void (*on_commit)(void *ctx, struct repl_group *g, uint64_t commit);
    /* Role, term or leader changed (redirect clients; fence a deposed leader's requests). */
    void (*on_role)(void *ctx, struct repl_group *g, enum raft_role role, uint64_t term,
                    uint32_t leader);
    /* This replica's log is durable up to `index` (answer acks=1 produce requests on the
     * leader). May be NULL. */
    void (*on_durable)(void *ctx, struct repl_group *g, uint64_t index);
    void *ctx; /* the callbacks may propose, but must not remove the group they are given */
};

struct repl_stats {
    uint64_t frames_sent, frames_dropped, frames_received, frames_malformed;
    uint64_t msgs_sent, hb_full, hb_id_only, hb_resp_full, hb_resp_id_only;
    uint64_t hstore_flushes, held_msgs;
    uint64_t elections, leader_changes;
    /* flow control: nodes paused and resumed; waste: the cores' counters (raft_counters)
     * summed over the groups */
    uint64_t flow_pauses, flow_resumes;
    uint64_t appends_sent, probe_appends, entries_sent, entries_resent, bytes_resent;
    uint64_t stall_probes, flow_paused_appends;
};

/* Creates the driver of node `self` on its shared hard-state store (borrowed). Returns NULL on
 * allocation failure. */
struct repl *repl_create(uint32_t self, struct hstore *hs, const struct repl_transport *t);
/* Removes every group (their logs stay the caller's) and frees the driver. */
void repl_destroy(struct repl *r);

/* Adds a group, starting its core from the hard state in the hstore and its log. Returns 0 and
 * *out, RL_E_EXISTS, RL_E_INVALID_ARGUMENT (as raft_init), or -ENOMEM. */
int repl_group_add(struct repl *r, const struct repl_group_options *o, struct repl_group **out);
/* Removes a group (pending messages are dropped). */
void repl_group_remove(struct repl *r, struct repl_group *g);
struct repl_group *repl_group_find(const struct repl *r, uint64_t id);
uint64_t repl_group_id(const struct repl_group *g);
const struct raft *repl_group_raft(const struct repl_group *g);
/* The sticky failure of a group whose log failed, or 0. A failed group is neither ticked nor
 * stepped; remove it and add it again once its log is reopened. */
int repl_group_failed(const struct repl_group *g);
/* Notes that the group's log has durability to report (called from the log's completion
 * hook; cheap, no core call). */
void repl_group_log_durable(struct repl_group *g);

/* Ticks every group once (the broker calls it every tick_ms). */
void repl_tick(struct repl *r);

/* Leader only: proposes data batches (whole batches, validated by the caller). Each batch is
 * stamped first with its base offset and the term (raftlog_stamp), which is why the bytes are
 * not const: every replica then stores and every message carries the same bytes. The batches
 * need stay valid only during the call (the log copies them, messages are encoded at once).
 * *last_index: the index after the last batch's last record (the high watermark that
 * acknowledges them). Errors as raft_propose, or RL_E_BATCH_* for a batch whose header does
 * not decode. */
int repl_propose(struct repl *r, struct repl_group *g, uint8_t *const *batches,
                 const uint32_t *lens, uint32_t n, uint64_t *last_index);
/* Membership change and leadership transfer, as raft_propose_conf_change and
 * raft_transfer_leadership. */
int repl_conf_change(struct repl *r, struct repl_group *g, enum raft_conf_op op, uint32_t node,
                     uint64_t *index);
int repl_transfer(struct repl *r, struct repl_group *g, uint32_t target);
/* The transport lost its connection to node `node`: raft_leader_unreachable on g (a follower
 * of that node campaigns after a short, rank-staggered delay). Returns 0 or g's failure. */
int repl_leader_unreachable(struct repl *r, struct repl_group *g, uint32_t node);

/* One frame from node `from` (the transport's inbound side). Returns 0, or the decode error
 * (the frame is dropped from the first bad record on, which is counted). */
int repl_receive(struct repl *r, uint32_t from, const uint8_t *frame, size_t len);
/* One message for group `group` from node m->from, already decoded (in-process transports,
 * tests). */
int repl_deliver(struct repl *r, uint64_t group, const struct raft_msg *m);

/* The end of a loop turn: durability to the cores, one hstore flush, held messages released,
 * one frame per node to the transport. */
void repl_flush(struct repl *r);

void repl_get_stats(const struct repl *r, struct repl_stats *out);

/* Bytes of driver and core state one group takes (its log's and held messages' aside), for
 * the memory-per-replica figure. */
size_t repl_group_state_bytes(void);

#endif
