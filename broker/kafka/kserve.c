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
#include "broker/partition/partition.h"
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
    k->auto_cfg = (struct kafka_auto_create){.partitions = 1, .replication_factor = 1};
    *out = k;
    return 0;
}

void kafka_destroy(struct kafka *k)
{
    if (!k)
        return;
    kbatch_ctx_destroy(k->bctx);
    kserve_auto_destroy(k);
    free(k);
}

void kafka_set_listener(struct kafka *k, const struct kafka_listener *l)
{
    k->node_id = l->node_id;
    snprintf(k->host_name, sizeof(k->host_name), "%s", l->host);
    k->port = l->port;
}

void kafka_set_cluster(struct kafka *k, void (*view)(void *ctx, struct kafka_cluster_view *out),
                       void *ctx)
{
    k->cluster_view = view;
    k->cluster_ctx = ctx;
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

int16_t kafka_frame_api_key(const uint8_t *frame, size_t len)
{
    if (len < KFRAME_SIZE_BYTES + 2)
        return -1;
    return (int16_t)(((uint16_t)frame[KFRAME_SIZE_BYTES] << 8) | frame[KFRAME_SIZE_BYTES + 1]);
}

const char *kafka_api_name(int16_t api_key)
{
    const struct kapi *api = kapi_lookup(api_key);
    return api ? api->name : NULL;
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

/* One partition as native Metadata shows it: the controller's owner (else this broker) for a
 * partition of one replica; for a replicated one its replicas, the leader this broker's replica
 * knows (none while it knows none: LEADER_NOT_AVAILABLE, clients ask again, never a guess
 * that could name two leaders; the preferred replica where this broker holds no replica) and
 * the in-sync replicas as the leader counts them. */
static int kserve_partition_metadata(struct kserve_req *kr, struct svc_req *r,
                                     const struct meta_topic *t, uint32_t i,
                                     struct kmsg_metadata_partition *pm)
{
    uint32_t owner = meta_partition_owner(t, i);
    uint32_t nr = 0;
    const uint32_t *reps = meta_partition_replicas(t, i, &nr);
    int32_t *rv = kserve_alloc(r, reps ? 2 * (size_t)nr : 1, sizeof(*rv));
    if (!rv)
        return -ENOMEM;
    *pm = (struct kmsg_metadata_partition){.partition = (int32_t)i, .replicas = rv,
                                           .n_replicas = 1, .isr = rv, .n_isr = 1};
    if (!reps) {
        rv[0] = owner ? (int32_t)owner : kr->k->node_id;
        pm->leader = rv[0];
        return 0;
    }
    for (uint32_t k = 0; k < nr; k++)
        rv[k] = (int32_t)reps[k];
    pm->n_replicas = pm->n_isr = (int32_t)nr;
    pm->leader = rv[0];
    struct partition *p = t->parts ? t->parts[i] : NULL;
    if (p && partition_replicated(p)) {
        uint32_t leader = partition_leader(p);
        pm->leader = leader ? (int32_t)leader : -1;
        if (!leader)
            pm->error_code = KERR_LEADER_NOT_AVAILABLE;
        uint32_t ids[META_MAX_REPLICATION_FACTOR];
        uint32_t ni = partition_in_sync(p, ids, META_MAX_REPLICATION_FACTOR);
        for (uint32_t k = 0; k < ni && k < nr; k++)
            rv[nr + k] = (int32_t)ids[k];
        pm->isr = rv + nr;
        pm->n_isr = (int32_t)(ni < nr ? ni : nr);
    }
    return 0;
}

/* A topic that does not exist: auto-created when that is on and the request allows it (Kafka
 * answers LEADER_NOT_AVAILABLE meanwhile), else UNKNOWN_TOPIC_OR_PARTITION. Metadata v0-v4
 * carries no message, so the broker's log says why it is not created (once a second at most:
 * clients retry quickly). */
static void kserve_unknown_topic(struct kserve_req *kr, struct svc_req *r, const char *name,
                                 bool allow_create, struct kmsg_metadata_topic *tm)
{
    struct kafka *k = kr->k;
    if (k->auto_cfg.enable && allow_create) {
        tm->error_code = kserve_auto_create(kr, r, name, false);
        return;
    }
    tm->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
    int64_t now = io_wall_ms(r->io);
    if (now - k->unknown_topic_logged_ms < 1000)
        return;
    k->unknown_topic_logged_ms = now;
    if (k->auto_cfg.enable)
        RL_INFO("Kafka client %s asked for topic \"%s\", which does not exist; the client did "
                "not allow auto-creation (allow_auto_topic_creation=false): create it with "
                "ringlog topic create %s --partitions N", svc_req_peer(r), name, name);
    else
        RL_INFO("Kafka client %s asked for topic \"%s\", which does not exist; topics are "
                "not created on first use (auto.create.topics.enable is off): create it "
                "with ringlog topic create %s --partitions N or a Kafka admin client, or start "
                "ringlogd with --set auto.create.topics.enable=true", svc_req_peer(r), name,
                name);
}

static int kserve_topic_metadata(struct kserve_req *kr, struct svc_req *r, const char *name,
                                 bool allow_create, struct kmsg_metadata_topic *tm)
{
    tm->name = kstr_of(name);
    const struct meta_topic *t = meta_topic_find(kr->k->meta, name);
    if (!t) {
        kserve_unknown_topic(kr, r, name, allow_create, tm);
        return 0;
    }
    tm->is_internal = name[0] == '_' && name[1] == '_';
    tm->partitions = kserve_alloc(r, t->partition_count, sizeof(*tm->partitions));
    if (!tm->partitions)
        return -ENOMEM;
    for (uint32_t i = 0; i < t->partition_count; i++)
        if (kserve_partition_metadata(kr, r, t, i, &tm->partitions[i]))
            return -ENOMEM;
    tm->n_partitions = (int32_t)t->partition_count;
    return 0;
}

/* The brokers: every registered broker with a Kafka listener, and always this one (before its
 * registration commits, and without a cluster). Returns 0 or -ENOMEM. */
static int kserve_metadata_brokers(struct kafka *k, struct svc_req *r,
                                   struct kmsg_metadata_resp *resp)
{
    struct kafka_cluster_view *v = NULL;
    if (k->cluster_view) {
        v = arena_calloc(r->arena, sizeof(*v));
        if (!v)
            return -ENOMEM;
        k->cluster_view(k->cluster_ctx, v);
    }
    uint32_t n = v ? (v->n_brokers < KAFKA_MAX_BROKERS ? v->n_brokers : KAFKA_MAX_BROKERS) : 0;
    resp->brokers = kserve_alloc(r, (size_t)n + 1, sizeof(*resp->brokers));
    if (!resp->brokers)
        return -ENOMEM;
    bool controller_listed = false;
    for (uint32_t i = 0; i < n; i++) {
        if (!v->brokers[i].port)
            continue; /* no Kafka listener */
        if (v->brokers[i].id == k->node_id)
            continue; /* this listener's own address, below */
        controller_listed |= v->brokers[i].id == v->controller_id;
        resp->brokers[resp->n_brokers++] = (struct kmsg_metadata_broker){
            .node_id = v->brokers[i].id, .host = kstr_of(v->brokers[i].host),
            .port = v->brokers[i].port, .rack = KSTR_NULL};
    }
    resp->brokers[resp->n_brokers++] = (struct kmsg_metadata_broker){
        .node_id = k->node_id, .host = kstr_of(k->host_name), .port = k->port,
        .rack = KSTR_NULL};
    /* Kafka clients send admin requests to the controller: the controller leader when it has
     * a Kafka listener, else this broker (which forwards them). */
    resp->controller_id = v && controller_listed ? v->controller_id : k->node_id;
    resp->cluster_id = kstr_of(v ? arena_strdup(r->arena, v->cluster_id)
                                 : arena_printf(r->arena, "ringlog-%d", k->node_id));
    return resp->cluster_id.ptr ? 0 : -ENOMEM;
}

void kserve_metadata(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_metadata_req *q = &kr->body->metadata;
    struct kmsg_metadata_resp *resp = &kr->resp.metadata;
    struct kafka *k = kr->k;
    size_t count = q->all_topics ? meta_topic_count(k->meta)
                                 : (size_t)(q->n_topics > 0 ? q->n_topics : 0);
    resp->topics = kserve_alloc(r, count, sizeof(*resp->topics));
    if (!resp->topics || kserve_metadata_brokers(k, r, resp))
        return kserve_oom(kr, r);
    for (size_t i = 0; i < count; i++) {
        const char *name = q->all_topics
                               ? arena_strdup(r->arena, meta_topic_at(k->meta, i)->name)
                               : kserve_cstr(r, q->topics[i]);
        bool allow = !q->all_topics && q->allow_auto_topic_creation;
        if (!name || kserve_topic_metadata(kr, r, name, allow, &resp->topics[i]))
            return kserve_oom(kr, r);
    }
    resp->n_topics = (int32_t)count;
    kserve_answer(kr, r);
}
