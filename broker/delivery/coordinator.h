/*
 * coordinator: the group coordinator of a single broker, protocol-neutral (plain C structs in
 * and out), on top of broker/delivery/group (membership) and broker/delivery/offsets
 * (committed offsets). It owns the table of live groups, the committed-offset table, and the
 * internal topic __consumer_offsets, which is created (through a metadata proposal, in the
 * background) when the first commit arrives. Commit path:
 *
 *   OffsetCommit -> coord_commit -> one batch of commit records -> partition_append on the
 *   group's partition of __consumer_offsets (the same append path as produce) -> durable ->
 *   the table updated -> done
 *
 * Start-up replays every partition of that topic into the table, from a snapshot of the
 * latest commits when there is one (see COORD_SNAPSHOT_*). JoinGroup answers are
 * deferred until the group's rebalance completes (every member rejoined, or the rebalance
 * deadline dropped the rest), which can happen inside another member's request or in
 * coord_tick.
 *
 * In a cluster __consumer_offsets is replicated and a group is coordinated by the ready leader
 * of its partition of it: that broker loads the partition's commits from its log when its
 * leadership begins (at the first request) and drops them when it ends (coord_tick); the
 * others answer RL_E_NOT_COORDINATOR (coord_leader_of names the leader they know). An elected
 * leader whose first entry has not committed yet answers group requests
 * RL_E_COORDINATOR_LOADING (retry here), and FindCoordinator names it.
 *
 * Errors: every call answers with an RL_E_* code and a sentence (msg). A stopped coordinator
 * (the broker is shutting down) answers RL_E_COORDINATOR_NOT_AVAILABLE.
 *
 * Single-threaded: the shard's loop.
 */
#ifndef RL_BROKER_DELIVERY_COORDINATOR_H
#define RL_BROKER_DELIVERY_COORDINATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/delivery/group.h"
#include "broker/delivery/offsets.h"
#include "broker/partition/partition.h"

struct meta;
struct bg;
struct coord;
struct svc_req;

#define COORD_GROUP_BUCKETS 1024
#define COORD_MAX_OFFSETS 1000000     /* committed (group, topic, partition) keys */
#define COORD_BATCH_MAX_BYTES (8u << 20) /* one commit's batch */
#define COORD_MSG_MAX 400

struct coord_config {
    uint32_t max_groups;                  /* max.groups */
    struct group_limits group;            /* members, session timeout bounds */
    uint32_t offsets_topic_partitions;    /* offsets.topic.num.partitions */
    uint32_t offsets_topic_replication_factor; /* in a cluster; 0: min(3, live brokers) */
    int64_t offsets_retention_ms;         /* offsets.retention.minutes; 0: commits never expire */
    uint32_t offsets_retention_check_ms;  /* offsets.retention.check.interval.ms */
};

struct coord_stats {
    uint32_t groups, members, committed_offsets;
    uint64_t commits, commit_errors, rebalances_completed, members_expired;
    uint64_t snapshots;        /* offsets snapshots written */
    uint64_t replayed_records; /* commit records replayed at start-up (after the snapshots) */
    uint64_t replay_damaged;   /* damaged ranges or batches skipped at start-up */
    uint64_t offsets_expired;  /* commits removed by offsets.retention.minutes (tombstoned) */
};

/* Retention of committed offsets: a group's commits are kept while it has members and expire
 * offsets_retention_ms after it was last live (or after the commit, for standalone commits
 * and groups not seen since start). Every offsets_retention_check_ms the coordinator appends a
 * tombstone per expired key (one batch per partition of __consumer_offsets, at most
 * COORD_EXPIRE_BATCH_KEYS; a full batch brings the next check forward) and removes the keys
 * once the tombstones are durable, so neither a replay nor a snapshot brings them back. The
 * first check waits for the check interval and the longest session timeout after start, so
 * live groups rejoin (memberships are not persisted) before anything of theirs can expire. */
#define COORD_EXPIRE_BATCH_KEYS 512
#define COORD_EXPIRE_AGAIN_MS 1000

/* Snapshots of committed offsets (offsets.h, "snapshots"): one per partition of
 * __consumer_offsets, after this many commits to it or this long after its first commit since
 * the last one, written in the background to alternating files (SNAPSHOT_NAME ".0" / ".1") in
 * the partition's directory. Once a snapshot is durable, the log start moves up to the next
 * offset of the one before it, so start-up reads a snapshot and replays a bounded tail, and
 * the log keeps one snapshot interval more than it needs (the older file still works if the
 * newer one is damaged). */
#define COORD_SNAPSHOT_EVERY_COMMITS 10000
#define COORD_SNAPSHOT_INTERVAL_MS 60000
#define COORD_SNAPSHOT_NAME "offsets.snapshot"

/* Creates the coordinator and replays __consumer_offsets if it exists (each partition from its
 * newest readable snapshot, then the records after it; damaged ranges are reported and
 * skipped). now_ms seeds member ids; `bg` writes snapshots (NULL: none are written). Returns 0
 * and *out, or a negative code with err. Blocks (replay). */
int coord_create(const struct coord_config *cfg, struct meta *meta, struct bg *bg,
                 int64_t now_ms, struct coord **out, char *err, size_t err_cap);

/* Answers pending joins (COORDINATOR_NOT_AVAILABLE) and frees the groups; later requests get
 * COORDINATOR_NOT_AVAILABLE. Waits for a snapshot being written (bg_drain). */
void coord_stop(struct coord *c);
void coord_destroy(struct coord *c);

/* Session timeouts, rebalance deadlines, and removal of groups left empty. */
void coord_tick(struct coord *c, int64_t now_ms);

void coord_get_stats(const struct coord *c, struct coord_stats *out);

/* FindCoordinator: 0 when this broker coordinates group_id, else the error with msg. A single
 * broker coordinates every group; in a cluster the leader of the group's partition of
 * (replicated) __consumer_offsets does (ready or about to be): elsewhere RL_E_NOT_COORDINATOR,
 * and coord_leader_of names the leader this broker knows; RL_E_COORDINATOR_NOT_AVAILABLE while
 * none is known or the topic is being created (the call starts its creation). */
int coord_find(struct coord *c, const char *group_id, char *msg, size_t cap);
/* The node coordinating group_id as far as this broker knows (0: none known, or a single
 * broker). */
uint32_t coord_leader_of(struct coord *c, const char *group_id);

/* --- JoinGroup -------------------------------------------------------------------------------- */

/* A member's metadata for the chosen protocol, in the leader's JoinGroup answer (client-side
 * groups; in the request's arena). */
struct coord_join_member {
    const char *member_id;
    const uint8_t *metadata;
    uint32_t metadata_len;
};

struct coord_join {
    /* in */
    const char *group_id;
    const char *member_id;          /* "" for a new member */
    const char *client_id;          /* "" to use the peer's address */
    uint32_t session_timeout_ms, rebalance_timeout_ms; /* rebalance 0: the session timeout */
    const char *const *topics;
    size_t n_topics;
    const char *const *assignors;   /* in order of preference */
    size_t n_assignors;
    /* Client-side assignment (Kafka clients) when protocols is set: see group.h. */
    const char *protocol_type;
    const struct group_protocol *protocols;
    size_t n_protocols;
    /* Called once the join is answered: within coord_join, or later from the loop. */
    void (*done)(struct svc_req *r, struct coord_join *j);
    void *ctx;
    /* out (strings in the request's arena) */
    int rc;
    const char *msg;
    int32_t generation;
    const char *member_id_out, *leader_id, *assignor;
    uint32_t member_count;
    struct coord_join_member *members; /* client-side groups, the leader's answer only */
    uint32_t n_members;
};
void coord_join(struct coord *c, struct svc_req *r, struct coord_join *j);

/* --- SyncGroup, Heartbeat, LeaveGroup --------------------------------------------------------- */

/* The member's assignment for `generation` (*tps valid until the next rebalance; copy it).
 * These return 0 or the error with a sentence in msg (empty when the code says it all). */
int coord_sync(struct coord *c, const char *group_id, const char *member_id, int32_t generation,
               int64_t now_ms, const struct group_tp **tps, uint32_t *n, char *msg, size_t cap);
int coord_heartbeat(struct coord *c, const char *group_id, const char *member_id,
                    int32_t generation, int64_t now_ms, char *msg, size_t cap);
int coord_leave(struct coord *c, const char *group_id, const char *member_id, int64_t now_ms,
                char *msg, size_t cap);

/* SyncGroup of a client-side group (Kafka clients): the leader sends every member's
 * assignment; each member gets its own bytes back, followers once the leader's has come. */
struct coord_sync {
    /* in */
    const char *group_id;
    const char *member_id;
    int32_t generation;
    const struct group_sync_assignment *assignments; /* the leader's; others none */
    size_t n_assignments;
    void (*done)(struct svc_req *r, struct coord_sync *s); /* as coord_join's */
    void *ctx;
    /* out */
    int rc;
    const char *msg;
    const uint8_t *assignment;      /* in the request's arena */
    uint32_t assignment_len;
};
void coord_sync_client(struct coord *c, struct svc_req *r, struct coord_sync *s);

/* --- OffsetCommit ----------------------------------------------------------------------------- */

struct coord_commit_item {
    /* in */
    const char *topic;
    uint32_t partition;
    int64_t offset;                 /* the next offset the group will consume */
    const char *metadata;
    /* out */
    int32_t rc;
    const char *msg;
};

struct coord_commit {
    /* in */
    const char *group_id;
    const char *member_id;          /* "" with generation -1: a standalone commit */
    int32_t generation;
    struct coord_commit_item *items;
    size_t n_items;
    void (*done)(struct svc_req *r, struct coord_commit *cm); /* as coord_join's */
    void *ctx;
    /* out: request-level error (bad group id, stopping); per-item errors in items */
    int rc;
    const char *msg;
};
void coord_commit(struct coord *c, struct svc_req *r, struct coord_commit *cm);

/* --- OffsetFetch, ListGroups, DescribeGroups -------------------------------------------------- */

/* Checks that offsets of group_id can be read now (0 or the error, with msg). */
int coord_offsets_check(struct coord *c, const char *group_id, char *msg, size_t cap);
/* A committed offset: 0 with *out (metadata owned by the table) or RL_E_NOT_FOUND. */
int coord_offset_get(const struct coord *c, const char *group_id, const char *topic,
                     uint32_t partition, struct offsets_commit *out);
/* Calls fn for every committed offset of group_id. */
void coord_offsets_visit(const struct coord *c, const char *group_id, offsets_visit_fn fn,
                         void *arg);

struct coord_listing {
    const char *group_id;           /* owned by the coordinator: copy before the next call */
    const char *state;
    const char *protocol_type;      /* "consumer" for Kafka groups, "" otherwise */
};
/* Every live group, then groups with committed offsets and no members (state "Empty"). Returns
 * the count (listings in r's arena), or an error code with msg. */
int coord_list_groups(struct coord *c, struct svc_req *r, struct coord_listing **out,
                      size_t *n, char *msg, size_t cap);

struct coord_member_desc {
    const char *member_id, *client_id;  /* in r's arena */
    const struct group_tp *assignment;  /* in r's arena */
    uint32_t n_assignment;
    /* client-side groups: the opaque metadata and assignment (in r's arena) */
    const uint8_t *metadata, *assigned;
    uint32_t metadata_len, assigned_len;
};
struct coord_group_desc {
    int rc;
    const char *msg;
    const char *state, *assignor;
    const char *protocol_type;          /* "consumer" for Kafka groups; "" for native ones */
    int32_t generation;
    struct coord_member_desc *members;
    uint32_t n_members;
};
/* Describes one group into d (strings in r's arena). Returns 0, or -ENOMEM. */
int coord_describe(struct coord *c, struct svc_req *r, const char *group_id,
                   struct coord_group_desc *d);

#endif
