/*
 * kapi: the table of served APIs (see kapi.h for why these ranges). Sorted by key; ApiVersions
 * lists it in this order. Changing a range here changes what clients negotiate: extend the
 * codec in kmsg and its round-trip tests first.
 */
#include "broker/kafka/kapi.h"

#include <stddef.h>

#include "broker/kafka/kmsg_internal.h"

static const struct kapi table[] = {
    {KAPI_PRODUCE, "Produce", 3, 7, 9, kmsg_produce_req_io, kmsg_produce_resp_io},
    {KAPI_FETCH, "Fetch", 4, 10, 12, kmsg_fetch_req_io, kmsg_fetch_resp_io},
    {KAPI_LIST_OFFSETS, "ListOffsets", 1, 2, 6, kmsg_list_offsets_req_io,
     kmsg_list_offsets_resp_io},
    {KAPI_METADATA, "Metadata", 0, 4, 9, kmsg_metadata_req_io, kmsg_metadata_resp_io},
    {KAPI_OFFSET_COMMIT, "OffsetCommit", 2, 3, 8, kmsg_offset_commit_req_io,
     kmsg_offset_commit_resp_io},
    {KAPI_OFFSET_FETCH, "OffsetFetch", 1, 3, 6, kmsg_offset_fetch_req_io,
     kmsg_offset_fetch_resp_io},
    {KAPI_FIND_COORDINATOR, "FindCoordinator", 0, 0, 3, kmsg_find_coordinator_req_io,
     kmsg_find_coordinator_resp_io},
    {KAPI_JOIN_GROUP, "JoinGroup", 0, 2, 6, kmsg_join_group_req_io, kmsg_join_group_resp_io},
    {KAPI_HEARTBEAT, "Heartbeat", 0, 1, 4, kmsg_heartbeat_req_io, kmsg_group_status_resp_io},
    {KAPI_LEAVE_GROUP, "LeaveGroup", 0, 1, 4, kmsg_leave_group_req_io,
     kmsg_group_status_resp_io},
    {KAPI_SYNC_GROUP, "SyncGroup", 0, 1, 4, kmsg_sync_group_req_io, kmsg_sync_group_resp_io},
    {KAPI_DESCRIBE_GROUPS, "DescribeGroups", 0, 2, 5, kmsg_describe_groups_req_io,
     kmsg_describe_groups_resp_io},
    {KAPI_LIST_GROUPS, "ListGroups", 0, 2, 3, kmsg_list_groups_req_io,
     kmsg_list_groups_resp_io},
    {KAPI_API_VERSIONS, "ApiVersions", 0, 3, 3, kmsg_api_versions_req_io,
     kmsg_api_versions_resp_io},
    {KAPI_CREATE_TOPICS, "CreateTopics", 2, 4, 5, kmsg_create_topics_req_io,
     kmsg_create_topics_resp_io},
    {KAPI_DELETE_TOPICS, "DeleteTopics", 1, 3, 4, kmsg_delete_topics_req_io,
     kmsg_delete_topics_resp_io},
    {KAPI_INIT_PRODUCER_ID, "InitProducerId", 0, 1, 2, kmsg_init_producer_id_req_io,
     kmsg_init_producer_id_resp_io},
    {KAPI_DESCRIBE_CONFIGS, "DescribeConfigs", 1, 2, 4, kmsg_describe_configs_req_io,
     kmsg_describe_configs_resp_io},
};

#define TABLE_LEN ((int)(sizeof(table) / sizeof(table[0])))

const struct kapi *kapi_lookup(int16_t api_key)
{
    for (int i = 0; i < TABLE_LEN; i++)
        if (table[i].key == api_key)
            return &table[i];
    return NULL;
}

int kapi_count(void)
{
    return TABLE_LEN;
}

const struct kapi *kapi_at(int i)
{
    return i >= 0 && i < TABLE_LEN ? &table[i] : NULL;
}

int kapi_supports(const struct kapi *api, int16_t version)
{
    return version >= api->min_version && version <= api->max_version;
}

int kapi_flexible(const struct kapi *api, int16_t version)
{
    return version >= api->first_flexible;
}
