/*
 * raft: the consensus core of one replication group, a pure state machine.
 *
 * Where it sits: replication path "partition replication -> raft -> (messages, log actions)".
 * The core does no I/O, reads no clock, starts no thread and keeps no global state. Its caller
 * feeds it five kinds of input: a message from a peer (raft_step), a timer tick (raft_tick), a
 * proposal (raft_propose, raft_propose_conf_change), notice that the log is durable up to an
 * entry (raft_persisted) and notice from the transport that the leader's connection was lost
 * (raft_leader_unreachable). Every call fills a caller-owned struct raft_ready with what the caller
 * must do next, in this order:
 *
 *   1. persist term and vote when hard_state_changed (before any message below is sent);
 *   2. install the snapshot named in `snapshot` (durably), or truncate the log after
 *      `truncate_after` and then append `append[0..n_append)` (the append may complete
 *      asynchronously; report durability later with raft_persisted);
 *   3. send `msgs`;
 *   4. apply committed entries up to `commit_index`.
 *
 * The ready must be processed before the next call on the same group, because the core reads
 * its own log through struct raft_log_ops and expects it to reflect the previous ready. A ready
 * is scratch space that may be reused across groups: one per thread serves many groups.
 *
 * Entries and indexes. An entry covers `count` >= 1 consecutive indexes and is named by its
 * last one: entry (index, count) covers (index - count, index]. When the partition log backs the
 * core, an entry is a record batch, its count the batch's records and its index the log end
 * offset after it, so Kafka offsets are Raft indexes with no translation (offset o is index
 * o + 1): the commit index is the high watermark and the last index the log end offset. The
 * indexes where entries end are the log's boundaries; every position the core exchanges (a
 * message's previous index, match and next positions, commit, truncation and durability
 * points) is a boundary, and a term is asked only of boundaries. The leader's no-op and
 * configuration entries are entries of count 1 (control batches consumers skip).
 *
 * Log entries are referenced by (index, count, term, type, payload pointer, length); the core
 * never copies payloads. Entries in a ready point into the caller's proposal buffers, the log's
 * storage, the entries of the message being stepped, or the ready's own scratch; all of these
 * must stay valid until the ready has been carried out (in particular, payloads the log handed
 * out must survive the ready's own append). An entry's term is its batch's leader_epoch when
 * the partition log backs the core.
 *
 * Protocol features: randomized election timeouts with pre-vote; check-quorum (a leader that
 * does not hear from a majority within an election timeout steps down, and followers that hear
 * from a leader ignore vote requests); pipelined, batched replication with a bounded in-flight
 * window; fast backtracking with (index, term) conflict hints; commitment of earlier terms only
 * through an entry of the leader's own term; leadership transfer; single-voter membership
 * changes (a config entry takes effect when appended, one change at a time, only after the
 * leader committed an entry of its term, and only once a quorum of the new voters holds the
 * commit index); learners (members that receive the log but neither vote nor count toward any
 * quorum, promoted to voters once caught up); a leader that removes itself hands leadership to
 * the best remaining voter; snapshot catch-up for followers behind the log start.
 *
 * Many groups per process: struct raft is a few KB with no pointers to owned memory; timers are
 * tick counters advanced by raft_tick; randomness comes from a per-group seed.
 */
#ifndef RL_REPLICATION_RAFT_H
#define RL_REPLICATION_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RAFT_NONE 0u              /* "no node": node ids are 1..UINT32_MAX */
#define RAFT_MAX_VOTERS 9         /* voters in one configuration */
#define RAFT_MAX_LEARNERS 4       /* learners in one configuration (replicas being moved in) */
#define RAFT_MAX_MEMBERS (RAFT_MAX_VOTERS + RAFT_MAX_LEARNERS)
#define RAFT_MAX_INFLIGHT 16      /* append messages in flight to one follower */
#define RAFT_READY_MAX_MSGS 192   /* messages one call may produce */
#define RAFT_READY_MAX_ENTRIES 2048 /* entries one call may append or send, in total */
#define RAFT_MAX_PROPOSAL 256     /* entries in one raft_propose call */
#define RAFT_MAX_ENTRY_COUNT (1u << 24) /* indexes one entry may cover (a batch's records) */
#define RAFT_CONFIG_MAX_BYTES (12 + 4 * RAFT_MAX_MEMBERS)

enum raft_role { RAFT_FOLLOWER, RAFT_PRECANDIDATE, RAFT_CANDIDATE, RAFT_LEADER };

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0, /* application data; an empty one is the leader's no-op */
    RAFT_ENTRY_CONFIG = 1, /* payload is a configuration (raft_config_encode) */
};

/* One entry: it covers indexes (index - count, index] (see the file comment). */
struct raft_entry {
    uint64_t index;   /* its last index: the index after it starts the next entry */
    uint64_t term;
    const void *data; /* not owned; see the file comment for lifetime */
    uint32_t len;
    uint32_t count;   /* indexes covered, 1..RAFT_MAX_ENTRY_COUNT (a batch's record count) */
    uint8_t type;     /* enum raft_entry_type */
};

/* A configuration: voters and learners, ids distinct and non-zero, no id in both lists.
 * Learners receive the log but never vote and count toward no quorum. */
struct raft_config {
    uint32_t n_voters;
    uint32_t voters[RAFT_MAX_VOTERS];
    uint32_t n_learners;
    uint32_t learners[RAFT_MAX_LEARNERS];
};

/* What a snapshot stands for: everything up to `index` (a boundary whose term is `term`), with
 * the configuration `config` taken from the log entry at `config_index` (0: the bootstrap
 * one). */
struct raft_snapshot_meta {
    uint64_t index;
    uint64_t term;
    uint64_t config_index;
    struct raft_config config;
};

enum raft_msg_type {
    RAFT_MSG_PREVOTE,
    RAFT_MSG_PREVOTE_RESP,
    RAFT_MSG_VOTE,
    RAFT_MSG_VOTE_RESP,
    RAFT_MSG_APPEND,
    RAFT_MSG_APPEND_RESP,
    RAFT_MSG_HEARTBEAT,
    RAFT_MSG_HEARTBEAT_RESP,
    RAFT_MSG_SNAPSHOT,
    RAFT_MSG_TIMEOUT_NOW,
    RAFT_MSG_TYPE_COUNT
};

#define RAFT_MSG_F_REJECT 0x1u   /* response: refused */
#define RAFT_MSG_F_TRANSFER 0x2u /* vote request from a leadership transfer: ignore leases */

/*
 * One message, a plain struct the transport serializes field by field. Every index in it is a
 * boundary of the sender's log.
 *   PREVOTE/VOTE:     term (prevote: the term the sender would campaign in), index/log_term =
 *                     sender's last entry.
 *   *_RESP for votes: term, flags & REJECT.
 *   APPEND:           index/log_term = entry before `entries` (each entry starts where the
 *                     previous one ends, the first at `index`), commit = leader's commit.
 *   APPEND_RESP:      ack: index = highest entry the follower holds durably and that matches
 *                     the leader. reject: index = the rejected `index`, hint_index/hint_term =
 *                     the follower's last entry at or below it whose term <= the leader's
 *                     log_term there (the leader resumes from there).
 *   HEARTBEAT:        commit = min(leader commit, follower's match). It carries nothing
 *                     else, so a transport can send one per broker pair for all the groups
 *                     they share and fan it out on arrival.
 *   HEARTBEAT_RESP:   index = as in an APPEND_RESP ack; hint_index = the last entry the
 *                     follower got from this leader (durable or not).
 *   SNAPSHOT:         snap = the leader's snapshot; the caller attaches the state to install.
 *   TIMEOUT_NOW:      leadership transfer: campaign now.
 * Malformed messages (entries that do not follow one another, a count of 0, terms out of
 * order) are dropped.
 */
struct raft_msg {
    uint8_t type;  /* enum raft_msg_type */
    uint8_t flags; /* RAFT_MSG_F_* */
    uint32_t from;
    uint32_t to;
    uint64_t term;
    uint64_t index;
    uint64_t log_term;
    uint64_t commit;
    uint64_t hint_index;
    uint64_t hint_term;
    const struct raft_entry *entries; /* APPEND only; valid until the ready is reused */
    uint32_t n_entries;
    struct raft_snapshot_meta snap; /* SNAPSHOT only */
};

/*
 * The log as the core sees it: read-only. The caller writes it (from readies). The log starts
 * after the snapshot index; entries at or below it may be gone, and the core answers for the
 * snapshot index itself. Indexes passed in are within the log (> snapshot index, <= last).
 */
struct raft_log_ops {
    /* The index after the last entry (the snapshot index when the log is empty). */
    uint64_t (*last_index)(void *ctx);
    /* Term of the entry ending exactly at `index`; 0 when no entry ends there. */
    uint64_t (*term)(void *ctx, uint64_t index);
    /* The largest boundary b <= index whose entry's term is <= max_term, its term in *term;
     * 0 when no entry of the log qualifies. Terms never decrease along a log, so this is the
     * end of the last entry of term <= max_term, cut at `index` (KIP-279's question). */
    uint64_t (*boundary)(void *ctx, uint64_t index, uint64_t max_term, uint64_t *term);
    /* Fills out[0..] with the entries whose index is in [lo, hi], in order (lo - 1 is a
     * boundary, so the first starts at lo), stopping at max_n entries or once max_bytes of
     * payload is reached (at least one entry is returned when one ends in [lo, hi]).
     * Returns the count, or a negative error. Payload pointers must stay valid until the
     * current ready is carried out, even across that ready's append. */
    int (*entries)(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                   struct raft_entry *out, uint32_t max_n);
    /* The latest CONFIG entry whose index is <= `index`: returns 1 and fills *out (payload
     * valid as for entries), 0 when the log holds none, or a negative error. A durable log
     * keeps a small index of its configuration entries rather than scan for them. */
    int (*config)(void *ctx, uint64_t index, struct raft_entry *out);
};

struct raft_options {
    uint32_t id;
    uint32_t election_ticks;  /* base election timeout; actual one is random in [1x, 2x) */
    uint32_t heartbeat_ticks; /* leader heartbeat period; < election_ticks */
    uint32_t max_msg_entries; /* entries per append message (0: 64) */
    uint64_t max_msg_bytes;   /* payload bytes per append message (0: 1 MiB) */
    uint32_t max_inflight;    /* append messages in flight per follower (<= RAFT_MAX_INFLIGHT) */
    uint64_t max_uncommitted; /* leader refuses proposals beyond this many uncommitted indexes
                                 (records; 0: 65536) */
    uint64_t seed;            /* per-group PRNG seed, for deterministic runs */
    bool pre_vote;
    bool check_quorum;
    const struct raft_log_ops *log_ops;
    void *log_ctx;
    /* Flow control (may be NULL: always): whether the transport to `to` has room for more
     * appends. While it says no, the leader sends that follower no append (heartbeats still
     * go); once it has room again the caller calls raft_send_more. */
    bool (*may_send)(void *flow_ctx, uint32_t to);
    void *flow_ctx;
};

struct raft_hard_state {
    uint64_t term;
    uint32_t vote;
};

enum raft_progress_state { RAFT_PR_PROBE, RAFT_PR_REPLICATE, RAFT_PR_SNAPSHOT };

/* The leader's view of one member. Read-only to callers. */
struct raft_progress {
    uint32_t id;
    uint8_t state;         /* enum raft_progress_state */
    uint8_t probe_sent;    /* PROBE: one append is out, wait for its answer */
    uint8_t recent_active; /* heard from it since the last check-quorum round */
    int8_t vote;           /* candidate: 1 granted, -1 refused, 0 unknown */
    uint8_t voter;         /* 0: a learner (replicated to, never counted) */
    uint64_t match;        /* highest boundary known durable and matching there */
    uint64_t next;         /* the next entry sent starts here (next - 1 is a boundary) */
    uint64_t pending_snapshot;
    uint32_t snapshot_wait_ticks;
    uint64_t last_hint; /* REPLICATE: follower's received index in the last heartbeat reply */
    uint32_t infl_head;
    uint32_t infl_count;
    uint64_t infl[RAFT_MAX_INFLIGHT]; /* last index of each in-flight append, oldest first */
    uint64_t sent_hi;   /* highest index ever sent to it in this leadership (resend counter) */
    uint64_t hb_mark[2]; /* next - 1 when the last two heartbeats went out (newest first) */
    uint32_t probe_hbs; /* PROBE: heartbeat replies since the probe went out */
};

/* A leader waits this many heartbeat replies before it sends a probe again: a probe is
 * resent at most once per two heartbeats, never on every one. */
#define RAFT_PROBE_RESEND_HBS 2

/* What a group has sent, to see waste (a leader re-sending what is already on its way). */
struct raft_counters {
    uint64_t appends_sent;   /* append messages */
    uint64_t probe_appends;  /* of which probes (PROBE state: one at a time) */
    uint64_t entries_sent;
    uint64_t entries_resent; /* entries at or below what was already sent to that follower */
    uint64_t bytes_resent;   /* their payload bytes */
    uint64_t stall_probes;   /* followers put back to PROBE: a heartbeat overtook a loss */
    uint64_t flow_paused;    /* appends held back because the transport had no room */
};

/* One group's whole state. Fields are read-only to callers; use the accessors. */
struct raft {
    uint32_t id;
    uint8_t role;
    bool pre_vote;
    bool check_quorum;
    uint64_t term;
    uint32_t vote;
    uint32_t leader;
    uint64_t commit;
    uint64_t last_index; /* including entries handed out for append but not yet durable */
    uint64_t last_term;
    uint64_t durable_index;  /* log is durable up to here (reported by raft_persisted) */
    uint64_t verified_index; /* follower: log matches the current leader up to here */
    uint64_t snap_index;
    uint64_t snap_term;
    struct raft_config snap_config; /* configuration as of snap_index */
    uint64_t snap_config_index;
    uint64_t term_start_index; /* leader: index of its first entry of this term */
    uint64_t pending_conf_index;
    uint32_t election_ticks;
    uint32_t heartbeat_ticks;
    uint32_t randomized_election_ticks;
    uint32_t election_elapsed;
    uint32_t heartbeat_elapsed;
    uint32_t max_msg_entries;
    uint32_t max_inflight;
    uint64_t max_msg_bytes;
    uint64_t max_uncommitted;
    uint32_t transferee;
    uint32_t transfer_elapsed;
    uint64_t rng;
    struct raft_config config;            /* latest in the log (in effect) */
    uint64_t config_index;
    struct raft_config committed_config;  /* latest at or below the commit index */
    uint64_t committed_config_index;
    uint32_t n_progress;
    struct raft_progress progress[RAFT_MAX_MEMBERS]; /* voters, then learners */
    const struct raft_log_ops *log_ops;
    void *log_ctx;
    struct raft_ready *rd; /* the ready of the call in progress; NULL between calls */
    bool (*may_send)(void *flow_ctx, uint32_t to);
    void *flow_ctx;
    struct raft_counters ctr;
};

/* What one call asks the caller to do; see the file comment for the order. */
struct raft_ready {
    bool hard_state_changed;
    struct raft_hard_state hard_state;
    bool has_snapshot; /* install `snapshot`: discard the whole log, it now starts after it */
    struct raft_snapshot_meta snapshot;
    bool has_truncate; /* remove entries ending after truncate_after (a boundary) */
    uint64_t truncate_after;
    const struct raft_entry *append; /* entries to append, each starting where the last ends */
    uint32_t n_append;
    uint32_t n_msgs;
    struct raft_msg msgs[RAFT_READY_MAX_MSGS];
    bool commit_changed;
    uint64_t commit_index;
    bool role_changed; /* role, leader or term differ from before the call */
    uint8_t role;
    uint32_t leader;
    uint64_t term;
    /* scratch the messages and `append` point into */
    uint32_t n_pool;
    struct raft_entry pool[RAFT_READY_MAX_ENTRIES];
    uint32_t scratch_used;
    uint8_t scratch[4 * RAFT_CONFIG_MAX_BYTES];
};

/* Starts (or restarts) a group from its persisted state: hard state `hs` (zeroes when new) and
 * snapshot `snap` (for a new group: index 0, term 0, config_index 0 and the initial members).
 * Reads the log to find its end and the latest configuration entry. Returns 0, a log error, or
 * RL_E_INVALID_ARGUMENT. Allocates nothing. */
int raft_init(struct raft *r, const struct raft_options *opt, const struct raft_hard_state *hs,
              const struct raft_snapshot_meta *snap);

/* Handles one message addressed to this node. Returns 0 (stale or malformed messages are
 * dropped silently, as the network may deliver anything) or a negative log error. */
int raft_step(struct raft *r, const struct raft_msg *m, struct raft_ready *rd);

/* Advances the group's timers by one tick: elections, heartbeats, check-quorum. */
int raft_tick(struct raft *r, struct raft_ready *rd);

/* Leader only: appends entries[0..n) (their index/term are assigned from their counts; data
 * is referenced, not copied, and must stay valid until the ready is processed). On success
 * returns 0 and sets *last_index to the index of the last one. RL_E_RAFT_NOT_LEADER,
 * RL_E_RAFT_TRANSFERRING (a transfer, or this leader removed itself), RL_E_FULL (uncommitted
 * limit or ready space) or RL_E_INVALID_ARGUMENT (n == 0 or > RAFT_MAX_PROPOSAL, a count of 0
 * or above RAFT_MAX_ENTRY_COUNT, or a CONFIG entry). */
int raft_propose(struct raft *r, const struct raft_entry *entries, uint32_t n,
                 struct raft_ready *rd, uint64_t *last_index);

enum raft_conf_op {
    RAFT_CONF_ADD_VOTER,       /* a new member straight in as a voter */
    RAFT_CONF_REMOVE_VOTER,
    RAFT_CONF_ADD_LEARNER,     /* a new member that only receives the log */
    RAFT_CONF_PROMOTE_LEARNER, /* a caught-up learner becomes a voter */
    RAFT_CONF_REMOVE_LEARNER,
};

/* Leader only: proposes one membership change. Refused with RL_E_RAFT_CONF_PENDING while an
 * earlier change is uncommitted or the leader has not yet committed an entry of its term (the
 * rule that makes single-voter changes safe across leader changes); with
 * RL_E_RAFT_CATCHING_UP, for a change of the voters, while fewer than a quorum of the new
 * voters hold the commit index (the new configuration could commit nothing until they catch
 * up) or while a learner to promote does not hold it; with RL_E_INVALID_ARGUMENT when the
 * change does not apply (adding a member, promoting a non-learner, removing the last voter,
 * a full list). Moving a replica is ADD_LEARNER, wait for it to catch up (raft_progress_of),
 * PROMOTE_LEARNER, then REMOVE_VOTER of the replica it replaces.
 * A leader that removes itself keeps leading (without counting itself) until the change
 * commits, refusing proposals (RL_E_RAFT_TRANSFERRING); then it hands leadership to the voter
 * with the highest match (TIMEOUT_NOW) and steps down when that voter's term reaches it or an
 * election timeout passes. It never campaigns again while it is not a voter. */
int raft_propose_conf_change(struct raft *r, enum raft_conf_op op, uint32_t node_id,
                             struct raft_ready *rd, uint64_t *index);

/* Reports that the caller's log is durable up to entry (index, term). A follower then
 * acknowledges to its leader; a leader counts itself toward the quorum. Reports for entries
 * that have since been truncated are ignored. */
int raft_persisted(struct raft *r, uint64_t index, uint64_t term, struct raft_ready *rd);

/* Transport notice: this node's connection to node `leader` was lost (reset or closed, as
 * when its process dies), so its leader is probably gone. Call it when the transport sees that
 * connection drop, for each group whose raft_leader() is that node; it is cheap and harmless
 * for others (ignored unless this node is a follower of `leader`).
 * Effect: the follower stops honouring the leader's lease at once (it answers the other
 * followers' pre-votes) and starts a pre-vote after 1 + 2 x rank ticks instead of its
 * randomized election timeout (or at that timeout if it comes sooner), where rank is its
 * position among the voters of its configuration without `leader` (0, 1, ...): every
 * follower gets the notice at about the same time, and the fixed stagger lets the first
 * one win rather than split the vote. A message from the leader before then cancels it
 * (an ordinary election timeout is armed).
 * Limits: acts only with pre_vote and check_quorum on (otherwise returns 0 and does
 * nothing): an early campaign is safe in any case, but only these two keep it from
 * deposing a healthy leader when the connection merely flapped (the other voters still hear
 * the leader and refuse the pre-vote). A lost connection is only a hint: a leader that is
 * partitioned rather than dead keeps leading until check-quorum deposes it. Returns 0; the
 * ready is normally empty. */
int raft_leader_unreachable(struct raft *r, uint32_t leader, struct raft_ready *rd);
/* Leader only: the transport to `to` has room again (the options' may_send said no before):
 * sends that follower what its window allows. Returns 0 (nothing to do when not leading). */
int raft_send_more(struct raft *r, uint32_t to, struct raft_ready *rd);

/* Leader only: hands leadership to voter `target` once it is caught up (TIMEOUT_NOW).
 * Proposals are refused until the transfer ends; it is abandoned after an election timeout. */
int raft_transfer_leadership(struct raft *r, uint32_t target, struct raft_ready *rd);

/* The caller took a snapshot of the state up to `index` (a boundary <= commit) and may now
 * drop log entries <= index once this returns. Fills *meta (for the caller to store with the
 * state). Returns 0, a log error, or RL_E_INVALID_ARGUMENT. */
int raft_compact(struct raft *r, uint64_t index, struct raft_snapshot_meta *meta);

/* The leader's view of member `id` (match, state), or NULL when this node does not lead or
 * `id` is no member. Valid until the next call on the group. */
const struct raft_progress *raft_progress_of(const struct raft *r, uint32_t id);

/* Configuration entry payloads (little-endian u32 words): version 1 is the tag 0x80000001,
 * n_voters, n_learners, the voter ids, the learner ids; encode writes it (<=
 * RAFT_CONFIG_MAX_BYTES). decode also reads version 0, the voters-only format written before
 * learners existed (n_voters, then the ids; n_voters <= RAFT_MAX_VOTERS, so the tag cannot be
 * one). decode returns 0 or RL_E_CORRUPT. */
uint32_t raft_config_encode(const struct raft_config *c, uint8_t *buf);
int raft_config_decode(const void *buf, uint32_t len, struct raft_config *c);
bool raft_config_is_voter(const struct raft_config *c, uint32_t id);
bool raft_config_is_learner(const struct raft_config *c, uint32_t id);

static inline enum raft_role raft_role(const struct raft *r) { return (enum raft_role)r->role; }
static inline uint32_t raft_leader(const struct raft *r) { return r->leader; }
static inline uint64_t raft_term(const struct raft *r) { return r->term; }
static inline uint64_t raft_commit(const struct raft *r) { return r->commit; }
static inline uint64_t raft_last_index(const struct raft *r) { return r->last_index; }
/* A leader that has committed its term's first entry (its no-op): everything committed before
 * it is now known committed, so it may serve produce, the high watermark and ListOffsets
 * (replication-anchors 6.7; Redpanda #5090). */
static inline bool raft_leader_ready(const struct raft *r)
{
    return r->role == RAFT_LEADER && r->commit >= r->term_start_index;
}

const char *raft_role_name(enum raft_role role);
const char *raft_msg_type_name(enum raft_msg_type type);

#endif
