/*
 * kserve: the Kafka listener's dispatch (see kafka.h), ApiVersions and Metadata. The table
 * below is the one list of the APIs this listener serves: dispatch looks handlers up in it and
 * ApiVersions advertises exactly its entries, with the version ranges of the kapi table (every
 * version there is decoded and encoded by kmsg).
 */
#include "broker/kafka/kserve_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/kafka/kbatch.h"
#include "broker/meta/meta.h"
#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"

#define KSERVE_KEYS 33 /* api keys 0..32 */
#define KSERVE_ZSTD_LEVEL 1 /* gzip, snappy and lz4 batches are stored re-compressed at this */

static void kserve_api_versions(struct kserve_req *kr, struct svc_req *r);

static const kserve_fn kserve_handlers[KSERVE_KEYS] = {
    [KAPI_PRODUCE] = kserve_produce,
    [KAPI_FETCH] = kserve_fetch,
    [KAPI_LIST_OFFSETS] = kserve_list_offsets,
    [KAPI_METADATA] = kserve_metadata,
    [KAPI_OFFSET_COMMIT] = kserve_offset_commit,
    [KAPI_OFFSET_FETCH] = kserve_offset_fetch,
    [KAPI_FIND_COORDINATOR] = kserve_find_coordinator,
    [KAPI_JOIN_GROUP] = kserve_join_group,
    [KAPI_HEARTBEAT] = kserve_heartbeat,
    [KAPI_LEAVE_GROUP] = kserve_leave_group,
    [KAPI_SYNC_GROUP] = kserve_sync_group,
    [KAPI_DESCRIBE_GROUPS] = kserve_describe_groups,
    [KAPI_LIST_GROUPS] = kserve_list_groups,
    [KAPI_API_VERSIONS] = kserve_api_versions,
    [KAPI_CREATE_TOPICS] = kserve_create_topics,
    [KAPI_DELETE_TOPICS] = kserve_delete_topics,
    [KAPI_INIT_PRODUCER_ID] = kserve_init_producer_id,
    [KAPI_DESCRIBE_CONFIGS] = kserve_describe_configs,
};

static kserve_fn kserve_handler(int16_t key)
{
    return key >= 0 && key < KSERVE_KEYS ? kserve_handlers[key] : NULL;
}

int kafka_create(const struct kafka_host *host, struct meta *meta, struct delivery *dv,
                 struct kafka **out)
{
    struct kafka *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->bctx = kbatch_ctx_create(RL_BATCH_MAX_BYTES, KSERVE_ZSTD_LEVEL);
    if (!k->bctx) {
        free(k);
        return -ENOMEM;
    }
    k->host = host;
    k->meta = meta;
    k->dv = dv;
    *out = k;
    return 0;
}

void kafka_destroy(struct kafka *k)
{
    if (!k)
        return;
    kbatch_ctx_destroy(k->bctx);
    free(k);
}

void kafka_set_listener(struct kafka *k, const struct kafka_listener *l)
{
    k->node_id = l->node_id;
    snprintf(k->host_name, sizeof(k->host_name), "%s", l->host);
    k->port = l->port;
}

char *kserve_cstr(struct svc_req *r, struct kstr s)
{
    size_t n = s.len > 0 ? (size_t)s.len : 0;
    char *c = arena_alloc(r->arena, n + 1);
    if (!c)
        return NULL;
    if (n)
        memcpy(c, s.ptr, n);
    c[n] = 0;
    return c;
}

void kserve_oom(struct kserve_req *kr, struct svc_req *r)
{
    char msg[200];
    snprintf(msg, sizeof(msg), "Kafka %s v%d needs more broker memory than one request may use "
             "(send fewer partitions per request); closing the connection",
             kapi_lookup(kr->hdr.api_key) ? kapi_lookup(kr->hdr.api_key)->name : "request",
             kr->hdr.api_version);
    kr->k->host->close(r, msg);
}

void kserve_answer(struct kserve_req *kr, struct svc_req *r)
{
    struct kmsg_out out;
    int rc = kmsg_encode_response(&kr->hdr, &kr->resp, r->arena, &out);
    if (rc == 0)
        return kr->k->host->respond(r, &out);
    if (rc == RL_E_FULL)
        return kserve_oom(kr, r);
    char msg[200];
    snprintf(msg, sizeof(msg), "Kafka %s v%d response cannot be encoded (%s); closing the "
             "connection", kapi_lookup(kr->hdr.api_key)->name, kr->hdr.api_version,
             rl_strerror(rc));
    RL_ERROR("%s", msg);
    kr->k->host->close(r, msg);
}

void kafka_dispatch(struct kafka *k, struct svc_req *r, uint8_t *frame, size_t len)
{
    struct kserve_req *kr = arena_calloc(r->arena, sizeof(*kr));
    struct kmsg_request *req = arena_calloc(r->arena, sizeof(*req));
    if (!kr || !req)
        return k->host->close(r, "out of request memory decoding a Kafka request");
    char err[400];
    int rc = kmsg_decode_request(frame, len, r->arena, req, err, sizeof(err));
    if (rc == RL_E_UNSUPPORTED_VERSION && req->hdr.api_key == KAPI_API_VERSIONS) {
        /* Kafka's answer: UNSUPPORTED_VERSION with the ranges, so the client retries lower. */
        struct kmsg_out out;
        if (kmsg_encode_api_versions_fallback(&req->hdr, r->arena, &out) == 0)
            return k->host->respond(r, &out);
    }
    kserve_fn fn = rc ? NULL : kserve_handler(req->hdr.api_key);
    if (!fn) {
        char msg[512];
        if (rc == RL_E_UNKNOWN_API || rc == RL_E_UNSUPPORTED_VERSION || rc == 0)
            snprintf(msg, sizeof(msg), "%s (%s); closing the connection, as Kafka does",
                     rc ? err : "Kafka API not served", kerr_name(KERR_UNSUPPORTED_VERSION));
        else
            snprintf(msg, sizeof(msg), "%s; closing the connection", err);
        return k->host->close(r, msg);
    }
    kr->k = k;
    kr->hdr = req->hdr;
    kr->hdr.client_id = KSTR_NULL; /* a view into the frame */
    kr->client_id = kserve_cstr(r, req->hdr.client_id);
    kr->body = &req->body;
    if (!kr->client_id)
        return kserve_oom(kr, r);
    fn(kr, r);
}

/* --- ApiVersions ------------------------------------------------------------------------------ */

static void kserve_api_versions(struct kserve_req *kr, struct svc_req *r)
{
    struct kmsg_api_versions_resp *resp = &kr->resp.api_versions;
    resp->apis = kserve_alloc(r, (size_t)kapi_count(), sizeof(*resp->apis));
    if (!resp->apis)
        return kserve_oom(kr, r);
    for (int i = 0; i < kapi_count(); i++) {
        const struct kapi *api = kapi_at(i);
        if (kserve_handler(api->key))
            resp->apis[resp->n_apis++] =
                (struct kmsg_api_version){api->key, api->min_version, api->max_version};
    }
    kserve_answer(kr, r);
}

/* --- Metadata --------------------------------------------------------------------------------- */

static int kserve_topic_metadata(struct kserve_req *kr, struct svc_req *r, const char *name,
                                 struct kmsg_metadata_topic *tm)
{
    tm->name = kstr_of(name);
    const struct meta_topic *t = meta_topic_find(kr->k->meta, name);
    if (!t) {
        /* auto.create.topics.enable is off: clients are told the topic does not exist. Metadata
         * v0-v4 carries no message, so the broker's log says it (once a second at most:
         * clients retry quickly). */
        tm->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        int64_t now = io_wall_ms(r->io);
        if (now - kr->k->unknown_topic_logged_ms >= 1000) {
            kr->k->unknown_topic_logged_ms = now;
            RL_INFO("Kafka client %s asked for topic \"%s\", which does not exist; topics are "
                    "not created on first use (auto.create.topics.enable is off): create it "
                    "with ringlog topic create %s --partitions N", svc_req_peer(r), name, name);
        }
        return 0;
    }
    tm->is_internal = name[0] == '_' && name[1] == '_';
    tm->partitions = kserve_alloc(r, t->partition_count, sizeof(*tm->partitions));
    int32_t *node = kserve_alloc(r, 1, sizeof(*node));
    if (!tm->partitions || !node)
        return -ENOMEM;
    *node = kr->k->node_id;
    for (uint32_t i = 0; i < t->partition_count; i++) {
        tm->partitions[i] = (struct kmsg_metadata_partition){
            .partition = (int32_t)i, .leader = kr->k->node_id, .replicas = node,
            .n_replicas = 1, .isr = node, .n_isr = 1};
    }
    tm->n_partitions = (int32_t)t->partition_count;
    return 0;
}

void kserve_metadata(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_metadata_req *q = &kr->body->metadata;
    struct kmsg_metadata_resp *resp = &kr->resp.metadata;
    struct kafka *k = kr->k;
    size_t count = q->all_topics ? meta_topic_count(k->meta)
                                 : (size_t)(q->n_topics > 0 ? q->n_topics : 0);
    resp->brokers = kserve_alloc(r, 1, sizeof(*resp->brokers));
    resp->topics = kserve_alloc(r, count, sizeof(*resp->topics));
    if (!resp->brokers || !resp->topics)
        return kserve_oom(kr, r);
    resp->brokers[0] = (struct kmsg_metadata_broker){
        .node_id = k->node_id, .host = kstr_of(k->host_name), .port = k->port,
        .rack = KSTR_NULL};
    resp->n_brokers = 1;
    resp->cluster_id = kstr_of(arena_printf(r->arena, "ringlog-%d", k->node_id));
    resp->controller_id = k->node_id;
    for (size_t i = 0; i < count; i++) {
        const char *name = q->all_topics
                               ? arena_strdup(r->arena, meta_topic_at(k->meta, i)->name)
                               : kserve_cstr(r, q->topics[i]);
        if (!name || kserve_topic_metadata(kr, r, name, &resp->topics[i]))
            return kserve_oom(kr, r);
    }
    resp->n_topics = (int32_t)count;
    kserve_answer(kr, r);
}
