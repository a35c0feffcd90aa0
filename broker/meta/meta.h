/*
 * meta: topics and cluster metadata as a state machine. Its state (the topic table with each
 * topic's partitions and config, the producer-id block) changes only by applying committed
 * records of the metadata log, in order:
 *
 *   propose:  admin service -> meta_propose_* (validated against the state) -> queued
 *             -> the record is appended to <data>/metadata.log and fsynced on the background
 *             thread (committed: the single-node stand-in for the controller's Raft log)
 *   apply:    meta_apply(record) -> the table changes; a new topic's partitions are created
 *             in the background and the topic goes live once they are all open
 *   start-up: metadata.log replayed through the same meta_apply, then every partition opened
 *
 * so a controller can later feed meta_apply from its log instead. Proposals run one at a time,
 * each validated against everything applied before it, and complete through their `done`.
 *
 * In a cluster a topic's record may place each partition on one broker (owners): a broker opens
 * only the partitions placed on it (meta_limits.node_id) and answers RL_E_NOT_LEADER for the
 * others; without owners (a single broker) it holds every partition. A replicated partition is
 * held by the brokers among its replicas or, while a move of its replicas runs, its target: a
 * broker a reassign record names opens the partition when it applies the record, and a broker
 * the reassign-done record leaves out retires it (deleted once unpinned, by meta_reap).
 *
 * A deleted topic leaves the table at once (new requests see UNKNOWN_TOPIC, its partitions are
 * marked gone); its logs are deleted once nothing pins them, by meta_reap from the loop.
 *
 * Single-threaded: owned by the shard's loop.
 */
#ifndef RL_BROKER_META_META_H
#define RL_BROKER_META_META_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/meta/config_topic.h"
#include "broker/meta/meta_record.h"
#include "broker/svc/bg.h"

/* Producer ids one block record reserves (delivery's IDEM_BLOCK_SIZE); in a cluster a block must
 * end at least this far past the recorded end, so blocks of different brokers never overlap. */
#define META_PRODUCER_ID_BLOCK 1000
/* Replicas per partition at most (a Raft group's voters). */
#define META_MAX_REPLICATION_FACTOR 9
/* Decommissioned brokers recorded at most (the controller registers CTL_MAX_BROKERS). */
#define META_MAX_DECOMMISSIONED 64

struct meta;
struct partition;
struct partition_env;
struct io;

/* A topic as the table holds it. Read-only outside meta; valid until the next apply. */
struct meta_topic {
    char name[CONFIG_TOPIC_NAME_MAX + 1];
    uint32_t partition_count;
    enum meta_partitioner partitioner;
    size_t n_split_keys;
    struct meta_bytes *split_keys;   /* owned copies */
    struct topic_config cfg;
    uint32_t max_message_bytes;      /* cached from cfg */
    struct partition **parts;        /* partition_count of them; NULL: another broker owns it */
    uint32_t *owners;                /* cluster placement: node owning each partition; NULL:
                                      * this broker holds every partition */
    uint32_t replication_factor;     /* 1, or the replicas per partition (a cluster) */
    uint32_t *replicas;              /* replication_factor > 1: partition i's replicas are
                                      * replicas[i * rf ..], the preferred leader first */
    uint64_t incarnation;            /* cluster: unique per creation (meta_topic_spec) */
    uint32_t *targets;               /* replicated: a move of partition i's replicas runs toward
                                      * targets[i * rf ..] (all 0: none); NULL: no move ever */
    /* Cluster: a replica this broker holds could not be opened (its parts[i] is NULL though
     * meta holds it); meta_reopen_missing retries it with backoff. */
    bool replicas_missing;
    uint32_t reopen_tries;           /* failed retries so far (the backoff doubles) */
    int64_t reopen_at_ms;            /* the next retry; 0: not scheduled yet */
};

struct meta_limits {
    char data_dir[PATH_MAX];
    uint32_t max_topics;             /* max.topics */
    uint32_t max_partitions;         /* max.partitions, over all topics */
    struct topic_config topic_defaults;
    uint32_t node_id;                /* in a cluster: this broker (partitions placed on it are
                                      * opened here); 0: a single broker holds every partition */
    /* Compaction of metadata.log at open (metalog_compact) once this many records are no
     * longer needed; 0: never. Single brokers only: a cluster node's node.id counts the
     * records its metadata.log held before it joined (broker/cluster/ctl.c), and a node
     * behind the controller log's start fetches records from others' metadata.log by their
     * position (meta_log_read), so a cluster node's metadata.log is never compacted. */
    uint32_t log_compact_min_dropped;
};

#define META_LOG_COMPACT_MIN_DROPPED 1000

/* Opens <data_dir>/metadata.log (created if needed), applies its records, removes directories
 * left by deletions the last run recorded but did not finish, and opens every partition
 * (recovering their logs). `bg` is where later appends and partition creation run. Returns 0
 * and *out, or a negative code with a sentence in err. Blocks: for start-up. */
int meta_open(const struct meta_limits *lim, struct partition_env *env, struct bg *bg,
              struct meta **out, char *err, size_t err_cap);

/* Closes every partition cleanly and the metadata log; frees everything. No proposal may be
 * in flight. Blocks. */
void meta_close(struct meta *m);

/* --- reading the table ------------------------------------------------------------------------ */

/* Live topics (created and not deleted), in creation order. */
size_t meta_topic_count(const struct meta *m);
const struct meta_topic *meta_topic_at(const struct meta *m, size_t i);
const struct meta_topic *meta_topic_find(const struct meta *m, const char *name);

/* True for the broker's internal topics (names starting with "__", such as __consumer_offsets):
 * the broker creates and writes them itself; clients may not create, delete, reconfigure or
 * produce to them (RL_E_INTERNAL_TOPIC). */
bool meta_topic_internal(const char *name);

/* A live topic's partition, or NULL with *err = RL_E_UNKNOWN_TOPIC, RL_E_UNKNOWN_PARTITION or
 * RL_E_NOT_LEADER (the controller placed it on another broker: meta_partition_owner). */
struct partition *meta_partition(const struct meta *m, const char *topic, uint32_t index,
                                 int *err);

/* The node owning partition i of t in a cluster, or 0 when this broker holds it without a
 * placement (a single broker, a topic from before the cluster). */
uint32_t meta_partition_owner(const struct meta_topic *t, uint32_t i);

/* The replicas of partition i of t (*n of them, the preferred leader first), or NULL when the
 * partition has one replica (meta_partition_owner). */
const uint32_t *meta_partition_replicas(const struct meta_topic *t, uint32_t i, uint32_t *n);

/* The target replicas of a move of partition i's replicas that runs (rf of them, the preferred
 * leader first), or NULL when none runs. The broker holds the partition when it is one of its
 * replicas or of its target. */
const uint32_t *meta_partition_target(const struct meta_topic *t, uint32_t i);

/* Whether broker `id` is decommissioned: a REASSIGN record with remove_broker = id marked it
 * and none with recommission_broker = id cleared it since. The controller's placement of new
 * topics and every new move's target leave such a broker out; the replicas it still holds
 * stay until moved. The mark is metadata, so metadata.log replay and a controller snapshot
 * install rebuild it like the topic table. */
bool meta_broker_decommissioned(const struct meta *m, uint32_t id);

/* Whether broker `id` is among ids[0..n) (a replica or target list; NULL holds none). */
bool meta_ids_have(const uint32_t *ids, uint32_t n, uint32_t id);

/* min.insync.replicas of the topic as a number. */
uint32_t meta_topic_min_insync(const struct meta_topic *t);

/* The sentence for RL_E_NOT_LEADER from meta_partition: which node owns the partition and what
 * the client does about it. Writes into buf (NUL-terminated); returns buf. */
const char *meta_not_leader_msg(const struct meta *m, const char *topic, uint32_t index,
                                char *buf, size_t cap);

/* This broker's node id in a cluster (meta_limits.node_id), 0 for a single broker. */
uint32_t meta_node_id(const struct meta *m);

/* The io of the broker's partitions: services keeping files beside a partition's log (producer
 * snapshots) do their file I/O through it. */
struct io *meta_io(const struct meta *m);

/* The end of the last producer-id block recorded (0 if none): any id below it may have been
 * handed out. After damage in metadata.log it lies further on (ids lost blocks could have
 * reserved are skipped), and the next block recorded starts there. */
int64_t meta_producer_id_block_end(const struct meta *m);

/* Partitions of live topics, for metrics. */
uint32_t meta_partition_count(const struct meta *m);

/* --- the state machine ------------------------------------------------------------------------ */

/* Applies one committed record. Records that contradict the state (a topic created twice, a
 * deleted topic unknown) are skipped with a warning, as a replayed log may hold them. A created
 * topic is live at once during start-up replay (its partitions open afterwards), and after its
 * partitions are created otherwise (meta_topic_find does not return it before). Returns 0 or
 * -ENOMEM. */
int meta_apply(struct meta *m, const struct meta_record *rec);

/* --- proposals -------------------------------------------------------------------------------- */

/* A change asked for by an admin request: caller-owned (request arena), alive until done has
 * run. Strings and arrays the record points to must stay valid as long. */
struct meta_proposal {
    struct meta_record rec;
    void (*done)(struct meta_proposal *pr); /* rc and msg are set */
    void *ctx;
    int rc;                      /* 0, or why the change was refused or failed */
    char msg[800];               /* a sentence when rc != 0 */
    /* meta's own */
    struct meta_proposal *next;
    uint8_t *payload;
    size_t payload_len;
    int append_rc;
    bool rolling_back;           /* the topic's partitions failed: recording its deletion */
    uint64_t failed_incarnation; /* cluster: the incarnation whose creation failed here */
    bool submitted;              /* handed to the committer, not yet answered */
    struct meta *owner;
    struct bg_job job;
};

/* Checks a CreateTopics spec against the limits and the table without changing anything;
 * *cfg gets the topic's config. Returns 0 or a code with a sentence in err. */
int meta_check_create(const struct meta *m, const struct meta_topic_spec *spec,
                      struct topic_config *cfg, char *err, size_t err_cap);
/* Checks an AlterConfigs change (every key valid, topic live). */
int meta_check_alter(const struct meta *m, const char *name, const struct meta_config *configs,
                     size_t n, char *err, size_t err_cap);

/* Queues a change. It is validated when its turn comes (against everything applied before),
 * recorded durably, applied, and reported through pr->done, which never runs inside these
 * calls. A create is done once its partitions are open. */
void meta_propose_create(struct meta *m, struct meta_proposal *pr,
                         const struct meta_topic_spec *spec);
void meta_propose_delete(struct meta *m, struct meta_proposal *pr, const char *name);
void meta_propose_alter(struct meta *m, struct meta_proposal *pr, const char *name,
                        const struct meta_config *configs, size_t n);
void meta_propose_producer_ids(struct meta *m, struct meta_proposal *pr, int64_t block_end);
/* Moves of partition replicas (moves[0..n), valid until done): recorded as targets. A cluster
 * only; refused when a partition is unknown or unreplicated, a list's length is not the
 * replication factor, an id repeats, or a move of that partition already runs. */
void meta_propose_reassign(struct meta *m, struct meta_proposal *pr, const struct meta_move *moves,
                           size_t n);
/* The general form of meta_propose_reassign: a REASSIGN record (rec->kind; its moves valid
 * until done) that may also decommission (remove_broker), recommission a broker, or cancel the
 * running moves of its partitions (cancel: each move names the partition's replicas). */
void meta_propose_replica_change(struct meta *m, struct meta_proposal *pr,
                                 const struct meta_record *rec);
/* A move finished (the partition's leader saw the target voters committed): the replicas become
 * mv->replicas, which must equal the target. */
void meta_propose_reassign_done(struct meta *m, struct meta_proposal *pr,
                                const struct meta_move *mv);

/* Proposals queued or in flight. */
uint32_t meta_proposals_pending(const struct meta *m);

/* Loop work, once per turn: starts the next queued proposal. */
void meta_process(struct meta *m);

/* --- a cluster's controller as the committer -------------------------------------------------- *
 * In a cluster the metadata log is the controller's Raft log (broker/cluster/ctl.h). A broker's
 * own proposals are still validated here, then handed to the committer instead of being
 * appended locally; every broker (the proposer included) then receives each committed record
 * through meta_commit_record, in log order, and records it in its metadata.log before applying
 * it, so a restart replays exactly what was applied. */

struct meta_committer {
    /* Sends the encoded record of `pr` (payload valid during the call) to the controller. The
     * committer answers later: meta_proposal_refused, or the record (or a marker) through
     * meta_commit_record with pr. */
    void (*submit)(void *ctx, struct meta_proposal *pr, const uint8_t *payload, size_t len);
    void *ctx;
};

/* A cluster's replication of partitions with more than one replica (broker/cluster). attach
 * runs for every such partition this broker holds once its log is open (at start-up when the
 * replicator is set, for a new topic before it goes live); detach before the partition is
 * closed or deleted. attach returns 0 or a code (the topic's creation then fails here). */
struct meta_replicator {
    int (*attach)(void *ctx, const struct meta_topic *t, uint32_t i, struct partition *p);
    void (*detach)(void *ctx, struct partition *p);
    /* The replicas or the move target of partition i changed (may be NULL). */
    void (*moved)(void *ctx, const struct meta_topic *t, uint32_t i, struct partition *p);
    void *ctx;
};

/* Sets the replicator (NULL: none) and attaches every replicated partition already open.
 * Returns 0 or the first attach's code. */
int meta_set_replicator(struct meta *m, const struct meta_replicator *r);

/* From now on proposals go to c (NULL: back to the local metadata log). */
void meta_set_committer(struct meta *m, const struct meta_committer *c);

/* The controller refused or lost the submitted proposal pr: it ends with rc and msg. */
void meta_proposal_refused(struct meta *m, struct meta_proposal *pr, int rc, const char *msg);

/* A committed record (payload copied; NULL with len 0 is a marker that carries only pr),
 * queued behind the committed records before it: appended to metadata.log, applied, and then,
 * when pr is not NULL, pr ends (a create once its partitions are open). Returns 0 or -ENOMEM. */
int meta_commit_record(struct meta *m, const uint8_t *payload, size_t len,
                       struct meta_proposal *pr);

/* Committed records queued or being recorded. */
uint32_t meta_commits_pending(const struct meta *m);

/* Records in metadata.log (replayed at open plus appended since). */
uint64_t meta_log_records(const struct meta *m);

/* Records [first, end) of metadata.log as the file holds them, for a controller snapshot
 * transfer (broker/cluster/ctl.c): metalog_read_records. Blocks. */
int meta_log_read(struct meta *m, uint64_t first, uint64_t end, size_t max_bytes, uint8_t *out,
                  size_t cap, size_t *len_out, uint32_t *n_out);

/* Checks an encoded record against the state as meta_process would (the controller leader's
 * check before it proposes a forwarded change). Returns 0 or a code with a sentence in err. */
int meta_check_record(const struct meta *m, const uint8_t *payload, size_t len, char *err,
                      size_t err_cap);

/* --- maintenance (from the loop, never inside a callback) ------------------------------------- */

/* Deletes the logs of deleted topics that nothing pins any more. */
void meta_reap(struct meta *m);

/* Runs retention on every partition. */
void meta_enforce_retention(struct meta *m, int64_t now_ms);

/* Retries opening the replicas this broker holds whose logs could not be opened when their
 * topic was created or moved here (the committed metadata says the topic exists, so a cluster
 * node keeps it and converges rather than forgetting it until restart). Each topic backs off
 * from 1 s to META_REOPEN_MAX_MS; at most META_REOPEN_BUDGET opens per call, as each blocks
 * the loop for a directory and an empty segment. Call about once a second. */
void meta_reopen_missing(struct meta *m, int64_t now_ms);
#define META_REOPEN_MAX_MS 30000
#define META_REOPEN_BUDGET 16

/* Replicas this broker holds that are not open (meta_reopen_missing retries them). */
uint32_t meta_replicas_missing(const struct meta *m);

#endif
