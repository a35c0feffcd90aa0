/*
 * test_kafka_samples: one filled-in request and response body for every API the Kafka listener
 * serves, with every field set (no zero left to hide a field the codec skipped). Used by the
 * round-trip test of test_kafka_msg and by the fuzz corpus generator. All data is static.
 */
#ifndef RL_TESTS_KAFKA_SAMPLES_H
#define RL_TESTS_KAFKA_SAMPLES_H

#include <string.h>

#include "broker/kafka/kmsg.h"

#define KS(s) ((struct kstr){(s), (int32_t)sizeof(s) - 1})
#define KB(s) ((struct kbytes){(uint8_t *)(s), (int32_t)sizeof(s) - 1})

static uint8_t kafka_sample_batch[70] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3a, 0x00, 0x00,
    0x00, 0x00, 0x02, 0xbb, 0xcc, 0x41, 0x15, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68,
    0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0x00, 0x00, 0x00, 0x01, 0x10, 0x00, 0x00, 0x00, 0x01, 0x04, 0x68, 0x69, 0x00};

static inline void kafka_sample_request(int16_t key, union kmsg_req_body *b)
{
    static struct kstr names[2] = {KS("orders"), KS("payments")};
    static int32_t parts[3] = {0, 1, 2};
    static struct kmsg_produce_partition pp[2] = {
        {1, {kafka_sample_batch, sizeof(kafka_sample_batch), NULL, 0}},
        {2, {kafka_sample_batch, sizeof(kafka_sample_batch), NULL, 0}}};
    static struct kmsg_produce_topic pt = {KS("orders"), pp, 2};
    static struct kmsg_fetch_partition fp[2] = {{0, 3, 100, 7, 1048576}, {1, 3, 200, 8, 65536}};
    static struct kmsg_fetch_topic ft = {KS("orders"), fp, 2};
    static struct kmsg_forgotten_topic fgt = {KS("old"), parts, 2};
    static struct kmsg_list_offsets_partition lp[2] = {{0, -1}, {1, 1700000000000}};
    static struct kmsg_list_offsets_topic lt = {KS("orders"), lp, 2};
    static struct kmsg_offset_commit_partition cp[2] = {{0, 42, KS("meta")}, {1, 7, {NULL, -1}}};
    static struct kmsg_offset_commit_topic ct = {KS("orders"), cp, 2};
    static struct kmsg_offset_fetch_topic oft = {KS("orders"), parts, 3};
    static struct kmsg_join_group_protocol jp[2] = {{KS("range"), KB("\x00\x01sub")},
                                                    {KS("roundrobin"), KB("\x00\x01sub")}};
    static struct kmsg_sync_group_assignment sa[2] = {{KS("m-1"), KB("assign-1")},
                                                      {KS("m-2"), KB("assign-2")}};
    static int32_t brokers[2] = {1, 2};
    static struct kmsg_create_topic_assignment ca = {0, brokers, 2};
    static struct kmsg_config_entry ce[2] = {{KS("retention.ms"), KS("1000")},
                                             {KS("cleanup.policy"), {NULL, -1}}};
    static struct kmsg_create_topic ctp[2] = {{KS("new-a"), 6, 3, NULL, 0, ce, 2},
                                              {KS("new-b"), -1, -1, &ca, 1, NULL, 0}};
    static struct kmsg_describe_configs_resource dr[2] = {
        {KMSG_RESOURCE_TOPIC, KS("orders"), names, 2}, {KMSG_RESOURCE_BROKER, KS("1"), NULL, -1}};
    memset(b, 0, sizeof(*b));
    switch (key) {
    case KAPI_PRODUCE:
        b->produce = (struct kmsg_produce_req){{NULL, -1}, -1, 30000, &pt, 1};
        break;
    case KAPI_FETCH:
        b->fetch = (struct kmsg_fetch_req){-1, 500, 1, 52428800, 1, 0, -1, &ft, 1, &fgt, 1};
        break;
    case KAPI_LIST_OFFSETS:
        b->list_offsets = (struct kmsg_list_offsets_req){-1, 1, &lt, 1};
        break;
    case KAPI_METADATA:
        b->metadata = (struct kmsg_metadata_req){names, 2, 0, 0};
        break;
    case KAPI_OFFSET_COMMIT:
        b->offset_commit = (struct kmsg_offset_commit_req){KS("grp"), 5, KS("m-1"), -1, &ct, 1};
        break;
    case KAPI_OFFSET_FETCH:
        b->offset_fetch = (struct kmsg_offset_fetch_req){KS("grp"), &oft, 1};
        break;
    case KAPI_FIND_COORDINATOR:
        b->find_coordinator = (struct kmsg_find_coordinator_req){KS("grp"), 0};
        break;
    case KAPI_JOIN_GROUP:
        b->join_group = (struct kmsg_join_group_req){KS("grp"), 45000, 300000, KS("m-1"),
                                                    KS("consumer"), jp, 2};
        break;
    case KAPI_HEARTBEAT:
        b->heartbeat = (struct kmsg_heartbeat_req){KS("grp"), 5, KS("m-1")};
        break;
    case KAPI_LEAVE_GROUP:
        b->leave_group = (struct kmsg_leave_group_req){KS("grp"), KS("m-1")};
        break;
    case KAPI_SYNC_GROUP:
        b->sync_group = (struct kmsg_sync_group_req){KS("grp"), 5, KS("m-1"), sa, 2};
        break;
    case KAPI_DESCRIBE_GROUPS:
        b->describe_groups = (struct kmsg_describe_groups_req){names, 2};
        break;
    case KAPI_LIST_GROUPS:
        break;
    case KAPI_API_VERSIONS:
        b->api_versions = (struct kmsg_api_versions_req){KS("librdkafka"), KS("2.0.2")};
        break;
    case KAPI_CREATE_TOPICS:
        b->create_topics = (struct kmsg_create_topics_req){ctp, 2, 60000, 1};
        break;
    case KAPI_DELETE_TOPICS:
        b->delete_topics = (struct kmsg_delete_topics_req){names, 2, 30000};
        break;
    case KAPI_INIT_PRODUCER_ID:
        b->init_producer_id = (struct kmsg_init_producer_id_req){{NULL, -1}, -1};
        break;
    case KAPI_DESCRIBE_CONFIGS:
        b->describe_configs = (struct kmsg_describe_configs_req){dr, 2, 1};
        break;
    }
}

static inline void kafka_sample_response(int16_t key, union kmsg_resp_body *b)
{
    static int32_t ids[3] = {1, 2, 3};
    static struct kmsg_api_version av[2] = {{0, 3, 7}, {18, 0, 3}};
    static struct kmsg_metadata_broker mb[2] = {{1, KS("10.0.0.1"), 9092, KS("r1")},
                                                {2, KS("10.0.0.2"), 9093, {NULL, -1}}};
    static struct kmsg_metadata_partition mp[2] = {{0, 0, 1, ids, 3, ids, 2},
                                                   {5, 1, -1, ids, 3, ids, 0}};
    static struct kmsg_metadata_topic mt[2] = {{0, KS("orders"), 0, mp, 2},
                                               {3, KS("missing"), 1, NULL, 0}};
    static struct kmsg_produce_partition_resp pr[2] = {{1, 0, 100, -1, 5}, {2, 6, -1, -1, -1}};
    static struct kmsg_produce_topic_resp pt = {KS("orders"), pr, 2};
    static struct kmsg_aborted_txn at = {77, 12};
    static struct kmsg_fetch_partition_resp fr[2] = {
        {0, 0, 120, 120, 3, &at, 1, {kafka_sample_batch, sizeof(kafka_sample_batch), NULL, 0}},
        {1, 1, 9, 9, 0, NULL, -1, {NULL, 0, NULL, 0}}};
    static struct kmsg_fetch_topic_resp ft = {KS("orders"), fr, 2};
    static struct kmsg_list_offsets_partition_resp lr[2] = {{0, 0, -1, 120}, {1, 3, -1, -1}};
    static struct kmsg_list_offsets_topic_resp lt = {KS("orders"), lr, 2};
    static struct kmsg_partition_error pe[2] = {{0, 0}, {1, 22}};
    static struct kmsg_offset_commit_topic_resp ct = {KS("orders"), pe, 2};
    static struct kmsg_offset_fetch_partition_resp ofp[2] = {{0, 42, KS("meta"), 0},
                                                             {1, -1, {NULL, -1}, 0}};
    static struct kmsg_offset_fetch_topic_resp oft = {KS("orders"), ofp, 2};
    static struct kmsg_join_group_member jm[2] = {{KS("m-1"), KB("sub-1")},
                                                  {KS("m-2"), KB("sub-2")}};
    static struct kmsg_group_member_desc gm = {KS("m-1"), KS("rdkafka"), KS("/127.0.0.1"),
                                               KB("sub"), KB("assign")};
    static struct kmsg_group_desc gd[2] = {
        {0, KS("grp"), KS("Stable"), KS("consumer"), KS("range"), &gm, 1},
        {69, KS("nope"), KS("Dead"), KS(""), KS(""), NULL, 0}};
    static struct kmsg_listed_group lg[2] = {{KS("grp"), KS("consumer")}, {KS("g2"), KS("")}};
    static struct kmsg_topic_error te[2] = {{KS("new-a"), 0, {NULL, -1}},
                                            {KS("new-b"), 36, KS("topic exists")}};
    static struct kmsg_config_synonym syn = {KS("log.retention.ms"), KS("1000"), 4};
    static struct kmsg_config_desc cd[2] = {{KS("retention.ms"), KS("1000"), 0, 0, 1, 0, &syn, 1},
                                            {KS("cleanup.policy"), KS("delete"), 1, 1, 5, 0,
                                             NULL, 0}};
    static struct kmsg_describe_configs_result dr[2] = {
        {0, {NULL, -1}, KMSG_RESOURCE_TOPIC, KS("orders"), cd, 2},
        {3, KS("unknown topic"), KMSG_RESOURCE_TOPIC, KS("x"), NULL, 0}};
    memset(b, 0, sizeof(*b));
    switch (key) {
    case KAPI_PRODUCE:
        b->produce = (struct kmsg_produce_resp){&pt, 1, 0};
        break;
    case KAPI_FETCH:
        b->fetch = (struct kmsg_fetch_resp){0, 0, 0, &ft, 1};
        break;
    case KAPI_LIST_OFFSETS:
        b->list_offsets = (struct kmsg_list_offsets_resp){0, &lt, 1};
        break;
    case KAPI_METADATA:
        b->metadata = (struct kmsg_metadata_resp){0, mb, 2, KS("cluster"), 1, mt, 2};
        break;
    case KAPI_OFFSET_COMMIT:
        b->offset_commit = (struct kmsg_offset_commit_resp){0, &ct, 1};
        break;
    case KAPI_OFFSET_FETCH:
        b->offset_fetch = (struct kmsg_offset_fetch_resp){0, &oft, 1, 0};
        break;
    case KAPI_FIND_COORDINATOR:
        b->find_coordinator =
            (struct kmsg_find_coordinator_resp){0, 0, {NULL, -1}, 1, KS("10.0.0.1"), 9092};
        break;
    case KAPI_JOIN_GROUP:
        b->join_group = (struct kmsg_join_group_resp){0, 0, 3, KS("range"), KS("m-1"),
                                                      KS("m-1"), jm, 2};
        break;
    case KAPI_HEARTBEAT:
        b->heartbeat = (struct kmsg_group_status_resp){0, 27};
        break;
    case KAPI_LEAVE_GROUP:
        b->leave_group = (struct kmsg_group_status_resp){0, 0};
        break;
    case KAPI_SYNC_GROUP:
        b->sync_group = (struct kmsg_sync_group_resp){0, 0, KB("assign-1")};
        break;
    case KAPI_DESCRIBE_GROUPS:
        b->describe_groups = (struct kmsg_describe_groups_resp){0, gd, 2};
        break;
    case KAPI_LIST_GROUPS:
        b->list_groups = (struct kmsg_list_groups_resp){0, 0, lg, 2};
        break;
    case KAPI_API_VERSIONS:
        b->api_versions = (struct kmsg_api_versions_resp){0, av, 2, 0};
        break;
    case KAPI_CREATE_TOPICS:
        b->create_topics = (struct kmsg_create_topics_resp){0, te, 2};
        break;
    case KAPI_DELETE_TOPICS:
        b->delete_topics = (struct kmsg_delete_topics_resp){0, te, 2};
        break;
    case KAPI_INIT_PRODUCER_ID:
        b->init_producer_id = (struct kmsg_init_producer_id_resp){0, 0, 4242, 3};
        break;
    case KAPI_DESCRIBE_CONFIGS:
        b->describe_configs = (struct kmsg_describe_configs_resp){0, dr, 2};
        break;
    }
}

#endif
