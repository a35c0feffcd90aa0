/*
 * group: the membership state machine of one consumer group, run by the group's coordinator.
 * Request path: broker JoinGroup/SyncGroup/Heartbeat/LeaveGroup -> group_* -> answers (a join
 * is answered later, through a callback, once the rebalance completes).
 *
 * A group moves EMPTY -> PREPARING_REBALANCE (members (re)join) -> STABLE (generation bumped,
 * partitions assigned) and back to PREPARING_REBALANCE whenever a member joins, leaves or
 * misses its session timeout. Members learn of a rebalance from their heartbeat's
 * RL_E_REBALANCE_IN_PROGRESS and rejoin. A rebalance completes when every known member has
 * rejoined, or at the rebalance deadline, when those that did not are removed.
 *
 * Two ways to assign, fixed per group by its first member:
 *  - server-side (native clients): the coordinator computes the assignment itself (range or
 *    round-robin, whichever every member supports, in the first member's order of preference),
 *    so clients need no assignor code and SyncGroup answers at once with the member's
 *    partitions. This costs one metadata lookup per rebalance and saves a round trip.
 *  - client-side (Kafka clients): members name protocols (their assignors) with opaque
 *    metadata each; at completion the group picks the protocol every member supports that most
 *    members prefer, the leader's join answer carries every member's metadata for it, the
 *    leader computes the assignment and sends it in its SyncGroup, and the group hands each
 *    member its opaque bytes. Followers' SyncGroups wait (group_sync_client) until the leader's
 *    arrives; a new rebalance answers them REBALANCE_IN_PROGRESS. Between completion and the
 *    leader's SyncGroup the group is "CompletingRebalance" (group_state_label); heartbeats
 *    succeed then, as in Kafka.
 *
 * Pure logic: no I/O, no clock (callers pass now_ms), no threads. Allocation happens only on
 * join and at rebalance completion, never on heartbeats. Bounded by struct group_limits.
 */
#ifndef RL_BROKER_GROUP_H
#define RL_BROKER_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GROUP_ID_MAX 255
#define GROUP_MEMBER_ID_MAX 127
#define GROUP_CLIENT_ID_MAX 127
#define GROUP_TOPICS_PER_MEMBER_MAX 256
#define GROUP_ASSIGNOR_RANGE "range"
#define GROUP_ASSIGNOR_ROUNDROBIN "roundrobin"
#define GROUP_ASSIGNOR_COOPERATIVE "cooperative-sticky"
#define GROUP_PROTOCOLS_MAX 16             /* protocols one member may name */
#define GROUP_PROTOCOL_NAME_MAX 64
#define GROUP_PROTOCOL_METADATA_MAX (64u * 1024) /* a member's metadata for one protocol */
#define GROUP_ASSIGNMENT_MAX (1u << 20)    /* the bytes the leader assigns one member */

enum group_state {
    GROUP_EMPTY,
    GROUP_PREPARING_REBALANCE,
    GROUP_STABLE,
};

struct group_limits {
    uint32_t max_members;
    int32_t min_session_timeout_ms;
    int32_t max_session_timeout_ms;
    /* Client-side groups: the first rebalance of an empty group waits this long for more
     * members before completing (Kafka's group.initial.rebalance.delay.ms), so members that
     * start together get one assignment instead of a rebalance per arrival. */
    int32_t initial_rebalance_delay_ms;
};

struct group;

/* Partition count of a topic, or a negative code when it does not exist (its members are then
 * assigned nothing for it). Called at rebalance completion. */
typedef int (*group_partitions_fn)(void *arg, const char *topic);

/* What a JoinGroup gets back. Strings are owned by the group and valid during the callback. */
struct group_join_result {
    int error;              /* 0, or the reason the join failed */
    int32_t generation;
    const char *member_id;  /* the member's id (assigned on first join) */
    const char *leader_id;
    const char *assignor;   /* "range" or "roundrobin"; client-side: the chosen protocol */
    uint32_t member_count;
    /* Client-side groups: the group, to read every member's metadata (group_member_protocol)
     * for the leader's answer. NULL otherwise. */
    const struct group *group;
};
typedef void (*group_join_done_fn)(void *token, const struct group_join_result *res);

/* One protocol a client-side member supports: its name and opaque metadata (copied). */
struct group_protocol {
    const char *name;
    const uint8_t *metadata;
    uint32_t metadata_len;
};

struct group_member_spec {
    const char *member_id;  /* "" for a new member */
    const char *client_id;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    const char *const *topics;
    uint32_t topic_count;
    const char *const *assignors; /* in order of preference */
    uint32_t assignor_count;
    /* Client-side assignment when protocols is set (topics and assignors are then ignored):
     * the protocol type ("consumer"), which every member must share, and the protocols in
     * order of preference. */
    const char *protocol_type;
    const struct group_protocol *protocols;
    uint32_t protocol_count;
};

struct group_tp {
    const char *topic;
    uint32_t partition;
};

/* Creates an empty group. id_nonce makes member ids unique across coordinator restarts (pass
 * e.g. the broker's start time). Returns NULL on bad arguments or allocation failure. */
struct group *group_create(const char *group_id, const struct group_limits *limits,
                           uint64_t id_nonce, group_partitions_fn partitions, void *arg,
                           group_join_done_fn join_done);
/* Frees the group; pending joins are answered with RL_E_COORDINATOR_NOT_AVAILABLE first. */
void group_destroy(struct group *g);

/* Starts or continues a join. Returns 0 when the join is pending (join_done(token, ...) will be
 * called exactly once, possibly before group_join returns), or an error at once (join_done
 * not called): RL_E_UNKNOWN_MEMBER_ID, RL_E_INVALID_SESSION_TIMEOUT, RL_E_INCONSISTENT_PROTOCOL,
 * RL_E_INVALID_ARGUMENT, RL_E_LIMIT (group full). A second join from a member with one pending
 * answers the older one with RL_E_REBALANCE_IN_PROGRESS. */
int group_join(struct group *g, const struct group_member_spec *spec, int64_t now_ms,
               void *token);

/* Returns the member's assignment for `generation` (pointers valid until the next rebalance).
 * Errors: RL_E_UNKNOWN_MEMBER_ID, RL_E_ILLEGAL_GENERATION, RL_E_REBALANCE_IN_PROGRESS. */
int group_sync(struct group *g, const char *member_id, int32_t generation, int64_t now_ms,
               const struct group_tp **assignment, uint32_t *count);

/* Client-side groups: the answer to a SyncGroup (token as passed to group_sync_client), with
 * the member's assignment bytes (owned by the group, valid during the call) or an error. */
typedef void (*group_sync_done_fn)(void *token, int error, const uint8_t *assignment,
                                   uint32_t assignment_len);
void group_set_sync_done(struct group *g, group_sync_done_fn sync_done);

/* One member's assignment in the leader's SyncGroup (bytes copied). */
struct group_sync_assignment {
    const char *member_id;
    const uint8_t *data;
    uint32_t len;
};

/* SyncGroup of a client-side group. The leader passes every member's assignment (others pass
 * none). Returns 0 when the answer goes through sync_done (at once when the leader's
 * assignment is known, else once it arrives or a rebalance starts), or an error at once:
 * RL_E_UNKNOWN_MEMBER_ID, RL_E_ILLEGAL_GENERATION, RL_E_REBALANCE_IN_PROGRESS,
 * RL_E_INCONSISTENT_PROTOCOL (a server-side group), RL_E_INVALID_ARGUMENT (an assignment too
 * large), -ENOMEM. A member's second pending sync answers the first REBALANCE_IN_PROGRESS. */
int group_sync_client(struct group *g, const char *member_id, int32_t generation,
                      int64_t now_ms, const struct group_sync_assignment *assignments,
                      uint32_t count, void *token);

/* Client-side groups: the i-th member's id, metadata for the chosen protocol and assignment
 * bytes (NULL/0 before the leader's SyncGroup). Returns 0 or RL_E_INVALID_ARGUMENT. */
int group_member_protocol(const struct group *g, uint32_t i, const char **member_id,
                          const uint8_t **metadata, uint32_t *metadata_len,
                          const uint8_t **assignment, uint32_t *assignment_len);
/* 1 when the group assigns on a leader member (Kafka clients). */
int group_client_side(const struct group *g);
/* The protocol type of a client-side group ("consumer"), "" otherwise. */
const char *group_protocol_type(const struct group *g);
/* Kafka's name for the group's state: "Empty", "PreparingRebalance", "CompletingRebalance"
 * (client-side, waiting for the leader's SyncGroup) or "Stable". */
const char *group_state_label(const struct group *g);

/* Keeps the member alive. 0, or RL_E_UNKNOWN_MEMBER_ID / RL_E_ILLEGAL_GENERATION /
 * RL_E_REBALANCE_IN_PROGRESS (rejoin). */
int group_heartbeat(struct group *g, const char *member_id, int32_t generation, int64_t now_ms);

/* Removes the member and starts a rebalance. 0 or RL_E_UNKNOWN_MEMBER_ID. */
int group_leave(struct group *g, const char *member_id, int64_t now_ms);

/* Expires members past their session timeout and completes a rebalance past its deadline.
 * Returns the number of members removed. */
uint32_t group_tick(struct group *g, int64_t now_ms);

/* May this member commit offsets for this generation? 0, or the error to answer with. A
 * generation of -1 with an empty member id is a standalone commit, allowed only when the group
 * has no members. */
int group_check_commit(const struct group *g, const char *member_id, int32_t generation);

/* Introspection for DescribeGroups and tests. The id and assignor (NULL before the first
 * rebalance) are owned by the group. */
const char *group_id_of(const struct group *g);
const char *group_assignor_of(const struct group *g);
enum group_state group_get_state(const struct group *g);
int32_t group_generation(const struct group *g);
uint32_t group_member_count(const struct group *g);
const char *group_state_name(enum group_state s);
/* The i-th member (i < group_member_count): id, client id and current assignment. */
int group_member_at(const struct group *g, uint32_t i, const char **member_id,
                    const char **client_id, const struct group_tp **assignment,
                    uint32_t *count);

/* Assignors, exposed for unit tests: distribute partitions of `topics` among `member_count`
 * members (member m subscribes to topic t when subscribed[m * topic_count + t]). Members are
 * taken in the given order (callers sort by member id). Writes member_of[k] for each
 * topic-partition k in (topic, partition) order; -1 when nobody subscribes. */
void group_assign_range(uint32_t topic_count, const uint32_t *partitions,
                        uint32_t member_count, const bool *subscribed, int32_t *member_of);
void group_assign_roundrobin(uint32_t topic_count, const uint32_t *partitions,
                             uint32_t member_count, const bool *subscribed, int32_t *member_of);
/* Cooperative-sticky (Kafka's KIP-429, computed here): prev_owner[k] is the member that held
 * partition k in the last generation (-1: none). Every previous owner still subscribed keeps up
 * to its fair share, the rest go to the least loaded subscribers; then a partition whose owner
 * changes is withheld (-1) for this generation, so its owner revokes it and rejoins, and the
 * next rebalance hands it over. */
void group_assign_cooperative(uint32_t topic_count, const uint32_t *partitions,
                              uint32_t member_count, const bool *subscribed,
                              const int32_t *prev_owner, int32_t *member_of);

#endif
