/*
 * replica: the partitions of a cluster with more than one replica, each a Raft group whose log
 * is the partition's own plog. Where it sits: ctl (which owns the loop's single replication
 * driver, its hstore and the peer transport) -> replica -> meta (as its replicator: told when a
 * replicated partition opens or goes) and partition (appends proposed, durability, commit and
 * leadership reported back), replication/ (a raftlog over the partition's plog, a group in the
 * shared repl driver).
 *
 *   produce on the leader: partition_append -> replica's propose -> repl_propose (the batch is
 *     stamped with its offset and the term) -> the raftlog appends it to the plog and the
 *     driver ships it to the followers (one frame per node per turn for every group)
 *   followers: the driver hands the leader's entries to the raftlog (keep_offsets)
 *   every replica: durable here -> partition_repl_durable; commit index ->
 *     partition_repl_commit (the visible end, the high watermark); role -> partition_repl_role
 *
 * Groups: one per replicated partition, id = a hash of (topic, partition) with the top bit set
 * (group 0 is the controller), the same on every broker and across restarts; the voters are the
 * partition's replicas from the topic's record. Term and vote live in the loop's hstore beside
 * the controller's, so one fdatasync per turn covers every group. The leader epoch of every batch
 * is the term (raftlog_stamp). A partition takes appends only on its leader once the leader
 * committed an entry of its term (its no-op), so everything in its log is committed by then.
 *
 * In-sync replicas (min.insync.replicas, Metadata's isr): on the leader, itself and every
 * follower this broker heard from within the election timeout that is not being sent a
 * snapshot (it can catch up from the leader's log); elsewhere every replica is reported. Under Raft an acks=all append commits once a
 * majority has it durable, whatever min.insync.replicas says; the setting only refuses appends
 * (NOT_ENOUGH_REPLICAS) while fewer replicas than it are in sync.
 *
 * Moving replicas (ringlog topic reassign, cluster remove-broker): the controller records a
 * partition's target replicas (meta_partition_target); a broker in the target opens the
 * partition and attaches a replica outside the group; the leader, every tick, takes the move's
 * next step from the configuration in its log (add a missing target replica as a learner,
 * promote a learner holding the commit index, remove the voters outside the target, itself
 * last), and once the target voters are committed proposes the end of the move to the
 * controller, after which the brokers left out delete their copies (docs/architecture.md,
 * "Moving replicas"). On the leader, in-sync replicas are counted over the voters in effect.
 *
 * Single-threaded: the shard's loop.
 */
#ifndef RL_BROKER_CLUSTER_REPLICA_H
#define RL_BROKER_CLUSTER_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct io;
struct meta;
struct peer;
struct repl;
struct raftlog_arena;
struct replicas;

struct replicas_config {
    uint32_t self;
    uint32_t election_ticks;
    uint32_t tick_ms;
    uint64_t seed;
    bool leader_balance; /* auto.leader.rebalance.enable: preferred-leader balancing */
};

/* Creates the replica set and makes it meta's replicator (attaching the replicated partitions
 * already open). Returns 0 and *out, or a code with a sentence in err. */
int replicas_create(struct io *io, struct repl *r, struct raftlog_arena *arena,
                    struct peer *peer, struct meta *m, const struct replicas_config *cfg,
                    struct replicas **out, char *err, size_t err_cap);
/* Detaches every partition (their groups leave the driver, their raftlogs close) and frees the
 * set. Call it before the driver is destroyed. Blocks. */
void replicas_destroy(struct replicas *rs);

/* The group id of partition `index` of `topic` created as `incarnation` (meta_topic; 0: a
 * record from before incarnations). Never 0. */
uint64_t replicas_group_id(const char *topic, uint32_t index, uint64_t incarnation);

/*
 * Leadership hand-off (a stopping broker): every group this broker leads is asked to transfer
 * leadership (raft_transfer_leadership) to its in-sync follower that holds the most of the log;
 * a transfer the core abandoned (an election timeout without the target taking over) is asked
 * again. Call it every turn until it returns 0 or the caller's deadline passes; from the first
 * call on this broker no longer balances leadership. Returns the groups this broker still leads
 * with a transfer under way (a group no in-sync follower can take, or a failed one, is not
 * waited for).
 */
uint32_t replicas_handoff(struct replicas *rs);

/*
 * Every tick: the next step of each move this broker's groups lead (unless a hand-off began),
 * then preferred-leader balancing (unless cfg.leader_balance is off or a hand-off began; a
 * partition being moved is skipped):
 * a group this broker has led for at least REPLICA_BALANCE_SETTLE_MS whose preferred replica (the
 * first of its placement) is another broker that is connected, heard from within the election
 * timeout and durable up to the commit index hands leadership to it. At most
 * REPLICA_BALANCE_MAX_INFLIGHT transfers run at once from one broker, so a broker that comes back
 * takes its partitions back a few at a time. The settle time keeps a leader from handing back to
 * a broker that has just handed off to it (which stops right after).
 */
#define REPLICA_BALANCE_SETTLE_MS 5000
#define REPLICA_BALANCE_MAX_INFLIGHT 8
void replicas_tick(struct replicas *rs);

/*
 * Fast failover, every loop turn (cheap when nothing happened): when the transport reports
 * connections lost (peer_take_lost), every group this broker follows whose leader is one of
 * those nodes gets raft_leader_unreachable, so the followers of a dead broker campaign within
 * a few ticks instead of an election timeout. Pre-vote and check-quorum keep a merely
 * flapping connection from deposing a healthy leader.
 */
void replicas_watch_peers(struct replicas *rs);

struct replicas_stats {
    uint32_t groups, leading;
    uint64_t elections, leader_changes; /* this broker's partition groups */
    uint64_t handoffs, balance_transfers; /* transfers asked by hand-off and by balancing */
    uint64_t leader_lost_notices; /* groups told their leader's connection was lost */
};
void replicas_get_stats(const struct replicas *rs, struct replicas_stats *out);

/* Prometheus lines: per partition role, term, commit index, and on its leader the in-sync
 * replicas and each follower's lag behind the leader's log end in offsets and (estimated from
 * the log's average bytes per offset) bytes; per broker elections and leader changes. Returns
 * the length written (NUL-terminated, truncated to cap). */
size_t replicas_metrics_text(const struct replicas *rs, char *buf, size_t cap);

#endif
