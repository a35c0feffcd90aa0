/*
 * kmsg_group: the consumer-group messages, OffsetCommit (v2-v3), OffsetFetch (v1-v3),
 * JoinGroup (v0-v2), SyncGroup, Heartbeat and LeaveGroup (v0-v1), DescribeGroups and ListGroups
 * (v0-v2). The group protocol's metadata and assignment bytes are opaque here, as in Kafka: the
 * members' assignor writes them and the broker stores and forwards them.
 */
#include "broker/kafka/kmsg_internal.h"

/* --- OffsetCommit ------------------------------------------------------------------------------ */

void kmsg_offset_commit_req_io(struct kio *io, void *body)
{
    struct kmsg_offset_commit_req *m = body;
    kio_str(io, "group_id", &m->group_id);
    kio_i32_since(io, 1, "generation_id", &m->generation_id, -1);
    if (io->version >= 1)
        kio_str(io, "member_id", &m->member_id);
    else if (io->decoding)
        m->member_id = kstr_of("");
    if (io->version >= 2 && io->version <= 4)
        kio_i64(io, "retention_time_ms", &m->retention_time_ms);
    else if (io->decoding)
        m->retention_time_ms = -1;
    int32_t nt = KIO_ARRAY(io, "topics", m->topics, m->n_topics, 6, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++) {
        struct kmsg_offset_commit_topic *t = &m->topics[i];
        kio_str(io, "topics[].name", &t->name);
        int32_t np = KIO_ARRAY(io, "topics[].partitions", t->partitions, t->n_partitions, 14, 0);
        for (int32_t j = 0; j < np && !kio_failed(io); j++) {
            struct kmsg_offset_commit_partition *p = &t->partitions[j];
            kio_i32(io, "partitions[].partition_index", &p->partition);
            kio_i64(io, "partitions[].committed_offset", &p->committed_offset);
            kio_nstr(io, "partitions[].committed_metadata", &p->metadata);
            kio_tags(io, "partitions[] tags");
        }
        kio_tags(io, "topics[] tags");
    }
    kio_tags(io, "tags");
}

void kmsg_offset_commit_resp_io(struct kio *io, void *body)
{
    struct kmsg_offset_commit_resp *m = body;
    kio_i32_since(io, 3, "throttle_time_ms", &m->throttle_ms, 0);
    int32_t nt = KIO_ARRAY(io, "topics", m->topics, m->n_topics, 6, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++) {
        struct kmsg_offset_commit_topic_resp *t = &m->topics[i];
        kio_str(io, "topics[].name", &t->name);
        int32_t np = KIO_ARRAY(io, "topics[].partitions", t->partitions, t->n_partitions, 6, 0);
        for (int32_t j = 0; j < np && !kio_failed(io); j++) {
            kio_i32(io, "partitions[].partition_index", &t->partitions[j].partition);
            kio_i16(io, "partitions[].error_code", &t->partitions[j].error_code);
            kio_tags(io, "partitions[] tags");
        }
        kio_tags(io, "topics[] tags");
    }
    kio_tags(io, "tags");
}

/* --- OffsetFetch ------------------------------------------------------------------------------- */

void kmsg_offset_fetch_req_io(struct kio *io, void *body)
{
    struct kmsg_offset_fetch_req *m = body;
    kio_str(io, "group_id", &m->group_id);
    int32_t nt = KIO_ARRAY(io, "topics", m->topics, m->n_topics, 6, io->version >= 2);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++) {
        struct kmsg_offset_fetch_topic *t = &m->topics[i];
        kio_str(io, "topics[].name", &t->name);
        kio_i32_array(io, "topics[].partition_indexes", &t->partitions, &t->n_partitions, 0);
        kio_tags(io, "topics[] tags");
    }
    kio_tags(io, "tags");
}

void kmsg_offset_fetch_resp_io(struct kio *io, void *body)
{
    struct kmsg_offset_fetch_resp *m = body;
    kio_i32_since(io, 3, "throttle_time_ms", &m->throttle_ms, 0);
    int32_t nt = KIO_ARRAY(io, "topics", m->topics, m->n_topics, 6, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++) {
        struct kmsg_offset_fetch_topic_resp *t = &m->topics[i];
        kio_str(io, "topics[].name", &t->name);
        int32_t np = KIO_ARRAY(io, "topics[].partitions", t->partitions, t->n_partitions, 16, 0);
        for (int32_t j = 0; j < np && !kio_failed(io); j++) {
            struct kmsg_offset_fetch_partition_resp *p = &t->partitions[j];
            kio_i32(io, "partitions[].partition_index", &p->partition);
            kio_i64(io, "partitions[].committed_offset", &p->committed_offset);
            kio_nstr(io, "partitions[].metadata", &p->metadata);
            kio_i16(io, "partitions[].error_code", &p->error_code);
            kio_tags(io, "partitions[] tags");
        }
        kio_tags(io, "topics[] tags");
    }
    if (io->version >= 2)
        kio_i16(io, "error_code", &m->error_code);
    else if (io->decoding)
        m->error_code = 0;
    kio_tags(io, "tags");
}

/* --- JoinGroup, SyncGroup, Heartbeat, LeaveGroup ----------------------------------------------- */

void kmsg_join_group_req_io(struct kio *io, void *body)
{
    struct kmsg_join_group_req *m = body;
    kio_str(io, "group_id", &m->group_id);
    kio_i32(io, "session_timeout_ms", &m->session_timeout_ms);
    kio_i32_since(io, 1, "rebalance_timeout_ms", &m->rebalance_timeout_ms,
                  m->session_timeout_ms);
    kio_str(io, "member_id", &m->member_id);
    kio_str(io, "protocol_type", &m->protocol_type);
    int32_t np = KIO_ARRAY(io, "protocols", m->protocols, m->n_protocols, 6, 0);
    for (int32_t i = 0; i < np && !kio_failed(io); i++) {
        kio_str(io, "protocols[].name", &m->protocols[i].name);
        kio_bytes(io, "protocols[].metadata", &m->protocols[i].metadata);
        kio_tags(io, "protocols[] tags");
    }
    kio_tags(io, "tags");
}

void kmsg_join_group_resp_io(struct kio *io, void *body)
{
    struct kmsg_join_group_resp *m = body;
    kio_i32_since(io, 2, "throttle_time_ms", &m->throttle_ms, 0);
    kio_i16(io, "error_code", &m->error_code);
    kio_i32(io, "generation_id", &m->generation_id);
    kio_str(io, "protocol_name", &m->protocol_name);
    kio_str(io, "leader", &m->leader);
    kio_str(io, "member_id", &m->member_id);
    int32_t nm = KIO_ARRAY(io, "members", m->members, m->n_members, 6, 0);
    for (int32_t i = 0; i < nm && !kio_failed(io); i++) {
        kio_str(io, "members[].member_id", &m->members[i].member_id);
        kio_bytes(io, "members[].metadata", &m->members[i].metadata);
        kio_tags(io, "members[] tags");
    }
    kio_tags(io, "tags");
}

void kmsg_sync_group_req_io(struct kio *io, void *body)
{
    struct kmsg_sync_group_req *m = body;
    kio_str(io, "group_id", &m->group_id);
    kio_i32(io, "generation_id", &m->generation_id);
    kio_str(io, "member_id", &m->member_id);
    int32_t na = KIO_ARRAY(io, "assignments", m->assignments, m->n_assignments, 6, 0);
    for (int32_t i = 0; i < na && !kio_failed(io); i++) {
        kio_str(io, "assignments[].member_id", &m->assignments[i].member_id);
        kio_bytes(io, "assignments[].assignment", &m->assignments[i].assignment);
        kio_tags(io, "assignments[] tags");
    }
    kio_tags(io, "tags");
}

void kmsg_sync_group_resp_io(struct kio *io, void *body)
{
    struct kmsg_sync_group_resp *m = body;
    kio_i32_since(io, 1, "throttle_time_ms", &m->throttle_ms, 0);
    kio_i16(io, "error_code", &m->error_code);
    kio_bytes(io, "assignment", &m->assignment);
    kio_tags(io, "tags");
}

void kmsg_heartbeat_req_io(struct kio *io, void *body)
{
    struct kmsg_heartbeat_req *m = body;
    kio_str(io, "group_id", &m->group_id);
    kio_i32(io, "generation_id", &m->generation_id);
    kio_str(io, "member_id", &m->member_id);
    kio_tags(io, "tags");
}

void kmsg_leave_group_req_io(struct kio *io, void *body)
{
    struct kmsg_leave_group_req *m = body;
    kio_str(io, "group_id", &m->group_id);
    kio_str(io, "member_id", &m->member_id);
    kio_tags(io, "tags");
}

void kmsg_group_status_resp_io(struct kio *io, void *body)
{
    struct kmsg_group_status_resp *m = body;
    kio_i32_since(io, 1, "throttle_time_ms", &m->throttle_ms, 0);
    kio_i16(io, "error_code", &m->error_code);
    kio_tags(io, "tags");
}

/* --- DescribeGroups, ListGroups ---------------------------------------------------------------- */

void kmsg_describe_groups_req_io(struct kio *io, void *body)
{
    struct kmsg_describe_groups_req *m = body;
    kio_str_array(io, "groups", &m->groups, &m->n_groups, 0);
    kio_tags(io, "tags");
}

static void group_desc_io(struct kio *io, struct kmsg_group_desc *g)
{
    kio_i16(io, "groups[].error_code", &g->error_code);
    kio_str(io, "groups[].group_id", &g->group_id);
    kio_str(io, "groups[].group_state", &g->state);
    kio_str(io, "groups[].protocol_type", &g->protocol_type);
    kio_str(io, "groups[].protocol_data", &g->protocol_data);
    int32_t nm = KIO_ARRAY(io, "groups[].members", g->members, g->n_members, 14, 0);
    for (int32_t j = 0; j < nm && !kio_failed(io); j++) {
        struct kmsg_group_member_desc *d = &g->members[j];
        kio_str(io, "members[].member_id", &d->member_id);
        kio_str(io, "members[].client_id", &d->client_id);
        kio_str(io, "members[].client_host", &d->client_host);
        kio_bytes(io, "members[].member_metadata", &d->member_metadata);
        kio_bytes(io, "members[].member_assignment", &d->member_assignment);
        kio_tags(io, "members[] tags");
    }
    kio_tags(io, "groups[] tags");
}

void kmsg_describe_groups_resp_io(struct kio *io, void *body)
{
    struct kmsg_describe_groups_resp *m = body;
    kio_i32_since(io, 1, "throttle_time_ms", &m->throttle_ms, 0);
    int32_t ng = KIO_ARRAY(io, "groups", m->groups, m->n_groups, 14, 0);
    for (int32_t i = 0; i < ng && !kio_failed(io); i++)
        group_desc_io(io, &m->groups[i]);
    kio_tags(io, "tags");
}

void kmsg_list_groups_req_io(struct kio *io, void *body)
{
    (void)body;
    kio_tags(io, "tags");
}

void kmsg_list_groups_resp_io(struct kio *io, void *body)
{
    struct kmsg_list_groups_resp *m = body;
    kio_i32_since(io, 1, "throttle_time_ms", &m->throttle_ms, 0);
    kio_i16(io, "error_code", &m->error_code);
    int32_t ng = KIO_ARRAY(io, "groups", m->groups, m->n_groups, 4, 0);
    for (int32_t i = 0; i < ng && !kio_failed(io); i++) {
        kio_str(io, "groups[].group_id", &m->groups[i].group_id);
        kio_str(io, "groups[].protocol_type", &m->groups[i].protocol_type);
        kio_tags(io, "groups[] tags");
    }
    kio_tags(io, "tags");
}
