/*
 * coordinator: the group coordinator of a single broker, on top of broker/group (membership)
 * and broker/offsets (committed offsets). It owns the table of live groups, the committed
 * offset table, and the internal topic __consumer_offsets, which it creates on first commit
 * (offsets.topic.num.partitions partitions). Commit path: OffsetCommit -> one batch of commit
 * records appended to the group's partition of __consumer_offsets -> answered once durable ->
 * the table updated. Start-up replays every partition of that topic into the table.
 *
 * JoinGroup answers are deferred: the request stays pending until the group's rebalance
 * completes (every member rejoined, or the rebalance deadline dropped the rest), which can
 * happen inside another member's request or in coord_tick.
 *
 * Single-threaded: owned by the shard.
 */
#ifndef RL_BROKER_COORDINATOR_H
#define RL_BROKER_COORDINATOR_H

#include <stddef.h>
#include <stdint.h>

#include "proto/ringlog.pb-c.h"

struct shard;
struct req;
struct coord;

#define COORD_GROUP_BUCKETS 1024
#define COORD_MAX_OFFSETS 1000000     /* committed (group, topic, partition) keys */
#define COORD_BATCH_MAX_BYTES (8u << 20) /* one commit's batch */

struct coord_stats {
    uint32_t groups, members, committed_offsets;
    uint64_t commits, commit_errors, rebalances_completed, members_expired;
};

/* Creates the coordinator and replays __consumer_offsets if it exists. Returns 0 and *out, or
 * a negative code with err. Blocks. */
int coord_create(struct shard *sh, struct coord **out, char *err, size_t err_cap);

/* Answers pending joins and frees the groups; further group requests get
 * COORDINATOR_NOT_AVAILABLE. */
void coord_stop(struct coord *c);
void coord_destroy(struct coord *c);

/* Session timeouts, rebalance deadlines, and removal of groups left empty. */
void coord_tick(struct coord *c, int64_t now_ms);

/* Request handlers (respond at once, except JoinGroup and OffsetCommit which may complete
 * later through the request's finish). */
void coord_find_coordinator(struct req *r, const Ringlog__FindCoordinatorRequest *q);
/* client_id: the request envelope's (shown by DescribeGroups; the peer address when empty). */
void coord_join_group(struct req *r, const Ringlog__JoinGroupRequest *q, const char *client_id);
void coord_sync_group(struct req *r, const Ringlog__SyncGroupRequest *q);
void coord_heartbeat(struct req *r, const Ringlog__HeartbeatRequest *q);
void coord_leave_group(struct req *r, const Ringlog__LeaveGroupRequest *q);
void coord_offset_commit(struct req *r, const Ringlog__OffsetCommitRequest *q);
void coord_offset_fetch(struct req *r, const Ringlog__OffsetFetchRequest *q);
void coord_list_groups(struct req *r, const Ringlog__ListGroupsRequest *q);
void coord_describe_groups(struct req *r, const Ringlog__DescribeGroupsRequest *q);

void coord_get_stats(const struct coord *c, struct coord_stats *out);

#endif
