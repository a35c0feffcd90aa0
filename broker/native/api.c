/*
 * api: the request handlers of the native protocol. Request path: shard (frame decoded and
 * checked) -> api_dispatch -> topics / storage -> req_respond. Admin and metadata requests are
 * answered at once. Produce validates every batch (header, checksum, max.message.bytes) before
 * appending any batch of a partition, then answers when the appends complete (acks 1/-1) or at
 * once (acks 0). Fetch reads slices of whole batches; when fewer than min_bytes are there it
 * waits on the partitions' waiter lists until an append makes enough visible or max_wait
 * passes (a long poll woken by the append, not a polling loop).
 *
 * All handler state lives in the request's arena; nothing is allocated per record.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker/delivery/delivery.h"
#include "broker/delivery/idempotence.h"
#include "broker/delivery/offsets.h"
#include "broker/meta/meta.h"
#include "broker/server/shard_internal.h"
#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/plog.h"

#define API_SOFTWARE "ringlogd 0.1"

static void *api_alloc(struct req *r, size_t n)
{
    return arena_calloc(&r->arena, n);
}

#define API_NEW(r, type, init)                                                                  \
    __extension__({                                                                             \
        type *x__ = arena_alloc(&(r)->arena, sizeof(type));                                     \
        if (x__)                                                                                \
            init(x__);                                                                          \
        x__;                                                                                    \
    })

static void api_oom(struct req *r)
{
    req_respond_error(r, RL_E_LIMIT, "request needs more broker memory than one request may "
                      "use; split it (fewer topics or partitions per request)");
}

/* --- ApiVersions ------------------------------------------------------------------------------ */

static void api_versions(struct req *r)
{
    static const Ringlog__Api served[] = {
        RINGLOG__API__API_VERSIONS,       RINGLOG__API__API_METADATA,
        RINGLOG__API__API_CREATE_TOPICS,  RINGLOG__API__API_DELETE_TOPICS,
        RINGLOG__API__API_DESCRIBE_CONFIGS, RINGLOG__API__API_ALTER_CONFIGS,
        RINGLOG__API__API_PRODUCE,        RINGLOG__API__API_FETCH,
        RINGLOG__API__API_LIST_OFFSETS,   RINGLOG__API__API_INIT_PRODUCER_ID,
        RINGLOG__API__API_FIND_COORDINATOR, RINGLOG__API__API_JOIN_GROUP,
        RINGLOG__API__API_SYNC_GROUP,     RINGLOG__API__API_HEARTBEAT,
        RINGLOG__API__API_LEAVE_GROUP,    RINGLOG__API__API_OFFSET_COMMIT,
        RINGLOG__API__API_OFFSET_FETCH,   RINGLOG__API__API_LIST_GROUPS,
        RINGLOG__API__API_DESCRIBE_GROUPS,
    };
    size_t n = sizeof(served) / sizeof(served[0]);
    Ringlog__Response *resp = req_response(r);
    Ringlog__ApiVersionsResponse *body =
        API_NEW(r, Ringlog__ApiVersionsResponse, ringlog__api_versions_response__init);
    Ringlog__ApiVersion *vs = api_alloc(r, n * sizeof(*vs));
    Ringlog__ApiVersion **ptrs = api_alloc(r, n * sizeof(*ptrs));
    if (!resp || !body || !vs || !ptrs)
        return api_oom(r);
    for (size_t i = 0; i < n; i++) {
        ringlog__api_version__init(&vs[i]);
        vs[i].api = served[i];
        vs[i].min_version = FRAME_VERSION;
        vs[i].max_version = FRAME_VERSION;
        ptrs[i] = &vs[i];
    }
    body->n_apis = n;
    body->apis = ptrs;
    body->broker_software = (char *)API_SOFTWARE;
    body->node_id = r->sh->cfg.node_id;
    resp->body_case = RINGLOG__RESPONSE__BODY_API_VERSIONS;
    resp->api_versions = body;
    req_respond(r, resp, NULL, 0);
}

/* --- Metadata --------------------------------------------------------------------------------- */

static Ringlog__TopicMetadata *api_topic_metadata(struct req *r, const char *name)
{
    struct shard *sh = r->sh;
    Ringlog__TopicMetadata *tm =
        API_NEW(r, Ringlog__TopicMetadata, ringlog__topic_metadata__init);
    if (!tm)
        return NULL;
    const struct meta_topic *t = meta_topic_find(sh->meta, name);
    tm->name = (char *)name;
    if (!t) {
        tm->error_code = RL_E_UNKNOWN_TOPIC;
        tm->error_message = arena_printf(&r->arena, "topic \"%s\" does not exist; create it "
                                         "with: ringlog topic create %s --partitions N",
                                         name, name);
        return tm;
    }
    tm->partitioner = (Ringlog__Partitioner)t->partitioner;
    tm->n_split_keys = t->n_split_keys;
    tm->split_keys = api_alloc(r, (t->n_split_keys + 1) * sizeof(*tm->split_keys));
    tm->replication_factor = 1;
    tm->n_partitions = t->partition_count;
    tm->partitions = api_alloc(r, t->partition_count * sizeof(*tm->partitions));
    Ringlog__PartitionMetadata *pm = api_alloc(r, t->partition_count * sizeof(*pm));
    int32_t *node = api_alloc(r, sizeof(*node));
    if (!tm->partitions || !pm || !node || !tm->split_keys)
        return NULL;
    for (size_t i = 0; i < t->n_split_keys; i++) {
        tm->split_keys[i].data = (uint8_t *)t->split_keys[i].data;
        tm->split_keys[i].len = t->split_keys[i].len;
    }
    *node = sh->cfg.node_id;
    for (uint32_t i = 0; i < t->partition_count; i++) {
        ringlog__partition_metadata__init(&pm[i]);
        pm[i].partition = i;
        pm[i].leader = sh->cfg.node_id;
        pm[i].n_replicas = 1;
        pm[i].replicas = node;
        pm[i].n_isr = 1;
        pm[i].isr = node;
        tm->partitions[i] = &pm[i];
    }
    return tm;
}

static void api_metadata(struct req *r, const Ringlog__MetadataRequest *q)
{
    struct shard *sh = r->sh;
    Ringlog__Response *resp = req_response(r);
    Ringlog__MetadataResponse *body =
        API_NEW(r, Ringlog__MetadataResponse, ringlog__metadata_response__init);
    Ringlog__BrokerInfo *bi = API_NEW(r, Ringlog__BrokerInfo, ringlog__broker_info__init);
    Ringlog__BrokerInfo **bis = api_alloc(r, sizeof(*bis));
    bool all = q->n_topics == 0;
    size_t n = all ? meta_topic_count(sh->meta) : q->n_topics;
    Ringlog__TopicMetadata **tms = api_alloc(r, (n ? n : 1) * sizeof(*tms));
    if (!resp || !body || !bi || !bis || !tms)
        return api_oom(r);
    bi->node_id = sh->cfg.node_id;
    bi->host = sh->cfg.listen_host;
    bi->port = sh->port;
    bis[0] = bi;
    for (size_t i = 0; i < n; i++) {
        const char *name = all ? meta_topic_at(sh->meta, i)->name : q->topics[i];
        tms[i] = api_topic_metadata(r, name);
        if (!tms[i])
            return api_oom(r);
    }
    body->n_brokers = 1;
    body->brokers = bis;
    body->controller_id = sh->cfg.node_id;
    body->n_topics = n;
    body->topics = tms;
    body->cluster_id = arena_printf(&r->arena, "ringlog-%d", sh->cfg.node_id);
    resp->body_case = RINGLOG__RESPONSE__BODY_METADATA;
    resp->metadata = body;
    req_respond(r, resp, NULL, 0);
}

/* --- CreateTopics / DeleteTopics / AlterConfigs ------------------------------------------------ */

/* One topic of an admin request: its result, and the metadata change it waits for. */
struct admin_item {
    struct meta_proposal pr;
    struct req *r;
    Ringlog__TopicResult *tr;
};

struct admin_state {
    Ringlog__Response *resp;
};

static void admin_finish(struct req *r)
{
    struct admin_state *as = r->state;
    req_respond(r, as->resp, NULL, 0);
}

static void admin_set_result(struct req *r, Ringlog__TopicResult *tr, int rc, const char *msg)
{
    tr->error_code = rc;
    if (rc) {
        tr->error_message = arena_strdup(&r->arena, msg && msg[0] ? msg : rl_strerror(rc));
        if (!tr->error_message)
            tr->error_message = (char *)rl_strerror(rc);
    }
}

static void admin_done(struct meta_proposal *pr)
{
    struct admin_item *it = pr->ctx;
    struct req *r = it->r;
    admin_set_result(r, it->tr, pr->rc, pr->msg);
    RL_ASSERT(r->pending > 0);
    r->pending--;
    if (r->pending == 0 && r->conn) {
        r->needs_finish = true;
        shard_mark_conn(r->conn);
    }
}

/* The response skeleton of an admin request over n topics; items[i] is topic i's. */
static struct admin_item *admin_start(struct req *r, size_t n, Ringlog__TopicResult ***trs_out)
{
    struct admin_state *as = api_alloc(r, sizeof(*as));
    struct admin_item *items = api_alloc(r, (n + 1) * sizeof(*items));
    Ringlog__TopicResult *trs = api_alloc(r, (n + 1) * sizeof(*trs));
    Ringlog__TopicResult **ptrs = api_alloc(r, (n + 1) * sizeof(*ptrs));
    if (!as || !items || !trs || !ptrs || !(as->resp = req_response(r)))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        ringlog__topic_result__init(&trs[i]);
        ptrs[i] = &trs[i];
        items[i].r = r;
        items[i].tr = &trs[i];
        items[i].pr.done = admin_done;
        items[i].pr.ctx = &items[i];
    }
    r->state = as;
    r->finish = admin_finish;
    *trs_out = ptrs;
    return items;
}

/* Answers now when nothing waits for a metadata change. */
static void admin_launch(struct req *r)
{
    if (r->pending == 0)
        admin_finish(r);
}

/* The plain spec of a CreateTopics entry (arrays in the arena). */
static int api_spec(struct req *r, const Ringlog__TopicSpec *s, struct meta_topic_spec *out)
{
    struct meta_bytes *keys = api_alloc(r, (s->n_split_keys + 1) * sizeof(*keys));
    struct meta_config *cfgs = api_alloc(r, (s->n_configs + 1) * sizeof(*cfgs));
    if (!keys || !cfgs)
        return -ENOMEM;
    for (size_t i = 0; i < s->n_split_keys; i++)
        keys[i] = (struct meta_bytes){s->split_keys[i].data, s->split_keys[i].len};
    for (size_t i = 0; i < s->n_configs; i++)
        cfgs[i] = (struct meta_config){s->configs[i]->key, s->configs[i]->value};
    *out = (struct meta_topic_spec){.name = s->name, .partitions = s->partitions,
                                    .replication_factor = s->replication_factor,
                                    .partitioner = (int32_t)s->partitioner,
                                    .n_split_keys = s->n_split_keys, .split_keys = keys,
                                    .n_configs = s->n_configs, .configs = cfgs};
    return 0;
}

static struct meta_config *api_configs(struct req *r, Ringlog__ConfigEntry *const *e, size_t n)
{
    struct meta_config *c = api_alloc(r, (n + 1) * sizeof(*c));
    for (size_t i = 0; c && i < n; i++)
        c[i] = (struct meta_config){e[i]->key, e[i]->value};
    return c;
}

static void api_create_topics(struct req *r, const Ringlog__CreateTopicsRequest *q)
{
    Ringlog__TopicResult **trs;
    struct admin_item *items = admin_start(r, q->n_topics, &trs);
    Ringlog__CreateTopicsResponse *body =
        API_NEW(r, Ringlog__CreateTopicsResponse, ringlog__create_topics_response__init);
    if (!items || !body)
        return api_oom(r);
    struct admin_state *as = r->state;
    for (size_t i = 0; i < q->n_topics; i++) {
        struct meta_topic_spec spec;
        trs[i]->name = q->topics[i]->name;
        if (api_spec(r, q->topics[i], &spec))
            return api_oom(r);
        if (q->validate_only) {
            char msg[512] = "";
            struct topic_config cfg;
            int rc = meta_check_create(r->sh->meta, &spec, &cfg, msg, sizeof(msg));
            admin_set_result(r, trs[i], rc, msg);
            continue;
        }
        r->pending++;
        meta_propose_create(r->sh->meta, &items[i].pr, &spec);
    }
    body->n_topics = q->n_topics;
    body->topics = trs;
    as->resp->body_case = RINGLOG__RESPONSE__BODY_CREATE_TOPICS;
    as->resp->create_topics = body;
    admin_launch(r);
}

static void api_delete_topics(struct req *r, const Ringlog__DeleteTopicsRequest *q)
{
    Ringlog__TopicResult **trs;
    struct admin_item *items = admin_start(r, q->n_names, &trs);
    Ringlog__DeleteTopicsResponse *body =
        API_NEW(r, Ringlog__DeleteTopicsResponse, ringlog__delete_topics_response__init);
    if (!items || !body)
        return api_oom(r);
    struct admin_state *as = r->state;
    for (size_t i = 0; i < q->n_names; i++) {
        trs[i]->name = q->names[i];
        r->pending++;
        meta_propose_delete(r->sh->meta, &items[i].pr, q->names[i]);
    }
    body->n_topics = q->n_names;
    body->topics = trs;
    as->resp->body_case = RINGLOG__RESPONSE__BODY_DELETE_TOPICS;
    as->resp->delete_topics = body;
    admin_launch(r);
}

/* --- DescribeConfigs / AlterConfigs ----------------------------------------------------------- */

static Ringlog__TopicConfigs *api_describe_one(struct req *r, const char *name)
{
    Ringlog__TopicConfigs *tc = API_NEW(r, Ringlog__TopicConfigs, ringlog__topic_configs__init);
    if (!tc)
        return NULL;
    tc->name = (char *)name;
    const struct meta_topic *t = meta_topic_find(r->sh->meta, name);
    if (!t) {
        tc->error_code = RL_E_UNKNOWN_TOPIC;
        tc->error_message = arena_printf(&r->arena, "topic \"%s\" does not exist", name);
        return tc;
    }
    Ringlog__ConfigEntry *es = api_alloc(r, CONFIG_TOPIC_KEY_COUNT * sizeof(*es));
    tc->configs = api_alloc(r, CONFIG_TOPIC_KEY_COUNT * sizeof(*tc->configs));
    if (!es || !tc->configs)
        return NULL;
    for (int k = 0; k < CONFIG_TOPIC_KEY_COUNT; k++) {
        ringlog__config_entry__init(&es[k]);
        es[k].key = (char *)config_topic_key_name((enum config_topic_key)k);
        es[k].value = arena_strdup(&r->arena, t->cfg.values[k]);
        es[k].is_default = !(t->cfg.set_mask & (1u << k));
        if (!es[k].value)
            return NULL;
        tc->configs[k] = &es[k];
    }
    tc->n_configs = CONFIG_TOPIC_KEY_COUNT;
    return tc;
}

static void api_describe_configs(struct req *r, const Ringlog__DescribeConfigsRequest *q)
{
    struct meta *m = r->sh->meta;
    Ringlog__Response *resp = req_response(r);
    Ringlog__DescribeConfigsResponse *body =
        API_NEW(r, Ringlog__DescribeConfigsResponse, ringlog__describe_configs_response__init);
    bool all = q->n_topics == 0;
    size_t n = all ? meta_topic_count(m) : q->n_topics;
    Ringlog__TopicConfigs **tcs = api_alloc(r, (n + 1) * sizeof(*tcs));
    if (!resp || !body || !tcs)
        return api_oom(r);
    for (size_t i = 0; i < n; i++) {
        tcs[i] = api_describe_one(r, all ? meta_topic_at(m, i)->name : q->topics[i]);
        if (!tcs[i])
            return api_oom(r);
    }
    body->n_topics = n;
    body->topics = tcs;
    resp->body_case = RINGLOG__RESPONSE__BODY_DESCRIBE_CONFIGS;
    resp->describe_configs = body;
    req_respond(r, resp, NULL, 0);
}

static void api_alter_configs(struct req *r, const Ringlog__AlterConfigsRequest *q)
{
    Ringlog__TopicResult **trs;
    struct admin_item *items = admin_start(r, q->n_topics, &trs);
    Ringlog__AlterConfigsResponse *body =
        API_NEW(r, Ringlog__AlterConfigsResponse, ringlog__alter_configs_response__init);
    if (!items || !body)
        return api_oom(r);
    struct admin_state *as = r->state;
    for (size_t i = 0; i < q->n_topics; i++) {
        const Ringlog__TopicConfigs *tc = q->topics[i];
        struct meta_config *cfgs = api_configs(r, tc->configs, tc->n_configs);
        trs[i]->name = tc->name;
        if (!cfgs)
            return api_oom(r);
        if (q->validate_only) {
            char msg[512] = "";
            int rc = meta_check_alter(r->sh->meta, tc->name, cfgs, tc->n_configs, msg,
                                      sizeof(msg));
            admin_set_result(r, trs[i], rc, msg);
            continue;
        }
        r->pending++;
        meta_propose_alter(r->sh->meta, &items[i].pr, tc->name, cfgs, tc->n_configs);
    }
    body->n_topics = q->n_topics;
    body->topics = trs;
    as->resp->body_case = RINGLOG__RESPONSE__BODY_ALTER_CONFIGS;
    as->resp->alter_configs = body;
    admin_launch(r);
}

/* --- ListOffsets ------------------------------------------------------------------------------ */

static void api_list_offsets_one(struct req *r, const char *topic,
                                 const Ringlog__ListOffsetsPartition *lp,
                                 Ringlog__ListOffsetsPartitionResult *res)
{
    int rc;
    struct partition *p = meta_partition(r->sh->meta, topic, lp->partition, &rc);
    res->partition = lp->partition;
    res->offset = -1;
    res->timestamp = -1;
    if (!p) {
        res->error_code = rc;
        res->error_message = arena_printf(&r->arena, "%s %s-%u",
                                          rc == RL_E_UNKNOWN_TOPIC ? "no topic for"
                                                                   : "no such partition:",
                                          topic, lp->partition);
        return;
    }
    if (lp->timestamp == -2) {
        res->offset = (int64_t)partition_start_offset(p);
    } else if (lp->timestamp == -1) {
        res->offset = (int64_t)partition_visible_end(p);
    } else if (lp->timestamp < 0) {
        res->error_code = RL_E_INVALID_REQUEST;
        res->error_message = arena_printf(&r->arena, "timestamp %lld is not valid: use -2 "
                                          "(earliest), -1 (latest) or ms since the epoch",
                                          (long long)lp->timestamp);
    } else {
        uint64_t off = 0;
        rc = partition_offset_for_time(p, lp->timestamp, &off);
        if (rc) {
            res->error_code = rc;
            res->error_message = (char *)rl_strerror(rc);
            return;
        }
        res->offset = (int64_t)off;
        res->timestamp = lp->timestamp;
    }
}

static void api_list_offsets(struct req *r, const Ringlog__ListOffsetsRequest *q)
{
    Ringlog__Response *resp = req_response(r);
    Ringlog__ListOffsetsResponse *body =
        API_NEW(r, Ringlog__ListOffsetsResponse, ringlog__list_offsets_response__init);
    Ringlog__ListOffsetsTopicResult **trs = api_alloc(r, (q->n_topics + 1) * sizeof(*trs));
    if (!resp || !body || !trs)
        return api_oom(r);
    for (size_t i = 0; i < q->n_topics; i++) {
        const Ringlog__ListOffsetsTopic *lt = q->topics[i];
        Ringlog__ListOffsetsTopicResult *tr = API_NEW(r, Ringlog__ListOffsetsTopicResult,
                                                      ringlog__list_offsets_topic_result__init);
        Ringlog__ListOffsetsPartitionResult *prs =
            api_alloc(r, (lt->n_partitions + 1) * sizeof(*prs));
        Ringlog__ListOffsetsPartitionResult **pps =
            api_alloc(r, (lt->n_partitions + 1) * sizeof(*pps));
        if (!tr || !prs || !pps)
            return api_oom(r);
        tr->name = lt->name;
        for (size_t k = 0; k < lt->n_partitions; k++) {
            ringlog__list_offsets_partition_result__init(&prs[k]);
            api_list_offsets_one(r, lt->name, lt->partitions[k], &prs[k]);
            pps[k] = &prs[k];
        }
        tr->n_partitions = lt->n_partitions;
        tr->partitions = pps;
        trs[i] = tr;
    }
    body->n_topics = q->n_topics;
    body->topics = trs;
    resp->body_case = RINGLOG__RESPONSE__BODY_LIST_OFFSETS;
    resp->list_offsets = body;
    req_respond(r, resp, NULL, 0);
}

/* --- Produce ---------------------------------------------------------------------------------- */

struct produce_append {
    struct partition_append pa;
    struct req *r;
    struct partition *p;
    Ringlog__ProducePartitionResult *res;
    bool first;              /* first batch of its partition in the request: sets base_offset */
    struct partition_waiter dup_wait; /* a duplicate waiting for its original to be visible */
    uint64_t dup_until;
};

struct produce_state {
    int32_t acks;
    Ringlog__Response *resp;
};

static void produce_finish(struct req *r)
{
    struct produce_state *ps = r->state;
    req_respond(r, ps->resp, NULL, 0);
}

/* One async op of r is over (an append or a duplicate's wait): finish the response when it
 * was the last. */
static void produce_op_over(struct req *r)
{
    struct produce_state *ps = r->state;
    RL_ASSERT(r->pending > 0);
    r->pending--;
    if (r->pending == 0 && ps->acks != 0 && r->conn) {
        r->needs_finish = true;
        shard_mark_conn(r->conn);
    }
}

static void produce_fail(struct produce_append *a, int rc)
{
    if (a->res->error_code == 0) {
        a->res->error_code = rc;
        a->res->error_message = (char *)rl_strerror(rc);
    }
}

static void produce_dup_wake(struct partition_waiter *w, enum partition_event ev, uint32_t bytes)
{
    (void)bytes;
    struct produce_append *a = w->ctx;
    if (ev == PARTITION_VISIBLE && partition_visible_end(a->p) < a->dup_until)
        return;
    partition_unwait(w);
    if (ev == PARTITION_GONE)
        produce_fail(a, RL_E_UNKNOWN_TOPIC);
    else if (ev == PARTITION_FAILED)
        produce_fail(a, RL_E_LOG_FAILED);
    partition_unpin(a->p);
    produce_op_over(a->r);
}

static void produce_append_done(struct partition_append *pa, int result)
{
    struct produce_append *a = (struct produce_append *)pa;
    if (result)
        produce_fail(a, result);
    else if (a->first && pa->deferred)
        a->res->base_offset = (int64_t)pa->base_offset;
    produce_op_over(a->r);
}

/* Checks every batch of one partition's data. Returns 0 and the batch count, or a code with a
 * message in the result. */
static int produce_check(struct req *r, const struct meta_topic *t, const uint8_t *d, uint32_t len,
                         Ringlog__ProducePartitionResult *res, uint32_t *count)
{
    uint32_t pos = 0, n = 0;
    if (len == 0) {
        res->error_code = RL_E_INVALID_REQUEST;
        res->error_message = (char *)"partition carries no batches (data_len 0)";
        return res->error_code;
    }
    while (pos < len) {
        struct batch_header h;
        int rc = batch_validate(d + pos, len - pos, &h);
        if (rc == 0 && h.batch_len > t->max_message_bytes)
            rc = RL_E_MESSAGE_TOO_LARGE;
        if (rc) {
            res->error_code = rc;
            res->error_message = arena_printf(
                &r->arena, "batch %u at byte %u of %s-%u's data: %s%s", n, pos, t->name,
                res->partition, rl_strerror(rc),
                rc == RL_E_MESSAGE_TOO_LARGE ? " (raise the topic's max.message.bytes or send "
                                               "smaller batches)" : "; nothing was appended");
            return rc;
        }
        pos += h.batch_len;
        n++;
    }
    *count = n;
    return 0;
}

/* Idempotence check before appending batch a (header h). Returns 0 to append, 1 for a
 * duplicate (answered with the original's offsets, once they are visible when acks != 0), or
 * an error already put in the result. */
static int produce_idem_check(struct produce_append *a, const struct batch_header *h)
{
    struct req *r = a->r;
    struct produce_state *ps = r->state;
    struct pstate_verdict v;
    char msg[320];
    int rc = idem_check(r->sh->dv->idem, a->p, h, io_wall_ms(r->sh->io), &v, msg, sizeof(msg));
    if (rc == 0)
        return 0;
    if (rc != RL_E_DUPLICATE_SEQUENCE) {
        a->res->error_code = rc;
        a->res->error_message = arena_strdup(&r->arena, msg);
        if (!a->res->error_message)
            a->res->error_message = (char *)rl_strerror(rc);
        return rc;
    }
    if (a->first)
        a->res->base_offset = v.dup_base_offset;
    if (ps->acks == 0 || (uint64_t)v.dup_last_offset < partition_visible_end(a->p))
        return 1;
    /* The original is still being written: answer once it is durable, like the original. */
    r->sh->m.produce_duplicate_waits++;
    a->dup_until = (uint64_t)v.dup_last_offset + 1;
    a->dup_wait.wake = produce_dup_wake;
    a->dup_wait.ctx = a;
    partition_wait(a->p, &a->dup_wait);
    partition_pin(a->p);
    r->pending++;
    return 1;
}

/* Records an idempotent batch just appended at its assigned (or, deferred, predicted)
 * offsets. */
static void produce_idem_record(struct produce_append *a, const struct batch_header *h)
{
    idem_record(a->r->sh->dv->idem, a->p, h, a->pa.base_offset, io_wall_ms(a->r->sh->io));
}

static void produce_partition(struct req *r, const char *topic, const Ringlog__ProducePartition *pp,
                              const uint8_t *d, Ringlog__ProducePartitionResult *res)
{
    struct produce_state *ps = r->state;
    int rc;
    uint32_t count = 0;
    res->partition = pp->partition;
    res->base_offset = -1;
    res->log_append_time_ms = -1;
    struct partition *p = meta_partition(r->sh->meta, topic, pp->partition, &rc);
    if (!p) {
        res->error_code = rc;
        res->error_message = rc == RL_E_UNKNOWN_TOPIC
            ? arena_printf(&r->arena, "topic \"%s\" does not exist; create it with: ringlog "
                           "topic create %s --partitions N", topic, topic)
            : arena_printf(&r->arena, "topic \"%s\" has no partition %u", topic, pp->partition);
        return;
    }
    res->log_start_offset = (int64_t)partition_start_offset(p);
    if (!strcmp(topic, OFFSETS_TOPIC)) {
        res->error_code = RL_E_INVALID_REQUEST;
        res->error_message = (char *)"__consumer_offsets is internal: only the group "
                                     "coordinator writes it (use OffsetCommit)";
        return;
    }
    const struct meta_topic *t = meta_topic_find(r->sh->meta, topic);
    if (produce_check(r, t, d, pp->data_len, res, &count))
        return;
    struct produce_append *as = api_alloc(r, count * sizeof(*as));
    if (!as) {
        res->error_code = RL_E_LIMIT;
        res->error_message = (char *)"too many batches for one request's memory; send fewer, "
                                     "larger batches (raise batch.size or linger.ms)";
        return;
    }
    uint32_t pos = 0;
    for (uint32_t i = 0; i < count; i++) {
        struct produce_append *a = &as[i];
        struct batch_header h;
        batch_header_decode(d + pos, pp->data_len - pos, &h);
        a->pa.batch = d + pos;
        a->pa.len = h.batch_len;
        a->pa.records = h.record_count;
        a->pa.ack = ps->acks == -1 ? PARTITION_ACK_ALL : PARTITION_ACK_LEADER;
        a->pa.done = produce_append_done;
        a->pa.ctx = a;
        a->r = r;
        a->p = p;
        a->res = res;
        a->first = i == 0;
        if (h.producer_id >= 0) {
            rc = produce_idem_check(a, &h);
            if (rc == 1) {
                pos += h.batch_len;
                continue; /* a duplicate: answered with the original's offsets */
            }
            if (rc)
                return;
        }
        rc = partition_append(p, &a->pa);
        if (rc) {
            res->error_code = rc;
            res->error_message = arena_printf(&r->arena, "batch %u of %s-%u not appended: %s%s",
                                              i, topic, pp->partition, rl_strerror(rc),
                                              i ? " (earlier batches were appended)" : "");
            return;
        }
        r->pending++;
        if (a->pa.deferred)
            r->sh->m.produce_deferred++;
        else if (a->first)
            res->base_offset = (int64_t)a->pa.base_offset;
        if (h.producer_id >= 0)
            produce_idem_record(a, &h);
        pos += h.batch_len;
    }
}

static void api_produce(struct req *r, const Ringlog__ProduceRequest *q, const uint8_t *data)
{
    Ringlog__Response *resp = req_response(r);
    Ringlog__ProduceResponse *body =
        API_NEW(r, Ringlog__ProduceResponse, ringlog__produce_response__init);
    Ringlog__ProduceTopicResult **trs = api_alloc(r, (q->n_topics + 1) * sizeof(*trs));
    struct produce_state *ps = api_alloc(r, sizeof(*ps));
    if (!resp || !body || !trs || !ps)
        return api_oom(r);
    ps->acks = q->acks;
    ps->resp = resp;
    r->state = ps;
    r->finish = produce_finish;
    uint64_t pos = 0;
    for (size_t i = 0; i < q->n_topics; i++) {
        const Ringlog__ProduceTopic *pt = q->topics[i];
        Ringlog__ProduceTopicResult *tr = API_NEW(r, Ringlog__ProduceTopicResult,
                                                  ringlog__produce_topic_result__init);
        Ringlog__ProducePartitionResult *prs = api_alloc(r, (pt->n_partitions + 1) * sizeof(*prs));
        Ringlog__ProducePartitionResult **pps =
            api_alloc(r, (pt->n_partitions + 1) * sizeof(*pps));
        if (!tr || !prs || !pps)
            return api_oom(r); /* appends already queued still complete into this request */
        tr->name = pt->name;
        for (size_t k = 0; k < pt->n_partitions; k++) {
            ringlog__produce_partition_result__init(&prs[k]);
            produce_partition(r, pt->name, pt->partitions[k], data + pos, &prs[k]);
            pos += pt->partitions[k]->data_len;
            pps[k] = &prs[k];
        }
        tr->n_partitions = pt->n_partitions;
        tr->partitions = pps;
        trs[i] = tr;
    }
    body->n_topics = q->n_topics;
    body->topics = trs;
    resp->body_case = RINGLOG__RESPONSE__BODY_PRODUCE;
    resp->produce = body;
    /* acks 0 answers now (offsets are assigned already); otherwise when the appends are done. */
    if (q->acks == 0 || r->pending == 0)
        produce_finish(r);
}

/* --- Fetch ------------------------------------------------------------------------------------ */

enum fetch_phase { FETCH_START, FETCH_WAITING, FETCH_READING, FETCH_DONE };

struct fetch_part {
    struct req *r;
    struct partition *p;          /* NULL when this partition is answered with an error */
    uint64_t offset;
    uint32_t max_bytes;
    Ringlog__FetchPartitionResult *res;
    struct plog_slice slice;
    bool have_slice;
    bool spliced;                 /* sent from the file by the connection's splice */
    bool read_failed;
    uint8_t *copy;                /* a file slice read into memory (inside dbuf, if set) */
    uint8_t *dbuf;                /* a pooled buffer the slice was read into with O_DIRECT */
    uint32_t dskip;               /* bytes of dbuf before the slice (alignment) */
    void *map;                    /* or mapped, when its pages are all in the page cache */
    size_t map_len;
    const uint8_t *map_data;      /* the slice's first byte inside map */
    struct io_op read_op;
    struct partition_waiter waiter;
};

struct fetch_state {
    struct fetch_part *parts;
    uint32_t n;
    Ringlog__Response *resp;
    uint32_t min_bytes, max_bytes, max_wait_ms;
    uint64_t waited_bytes;
    enum fetch_phase phase;
    bool woken, timer_armed;
    uint32_t reads_left;
    struct io_op timer_op, cancel_op;
};

static void fetch_release(struct req *r)
{
    struct fetch_state *fs = r->state;
    for (uint32_t i = 0; i < fs->n; i++) {
        struct fetch_part *fp = &fs->parts[i];
        if (fp->have_slice) {
            partition_read_release(fp->p, &fp->slice);
            fp->have_slice = false;
        }
        if (fp->dbuf && r->sh->n_direct_bufs < SHARD_MAX_IDLE_DIRECT_BUFS)
            r->sh->direct_bufs[r->sh->n_direct_bufs++] = fp->dbuf;
        else if (fp->dbuf)
            free(fp->dbuf);
        else
            free(fp->copy);
        fp->dbuf = NULL;
        fp->copy = NULL;
        if (fp->map)
            munmap(fp->map, fp->map_len);
        fp->map = NULL;
    }
}

/* Maps a file slice when every page of it is in the page cache, so the response is sent
 * straight from the cache (no read into a buffer of ours). Cold data is not mapped: faulting it
 * in would block the loop, so it goes through an async read instead. */
static bool fetch_map(struct fetch_part *fp)
{
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE);
    uint64_t start = fp->slice.file_position & ~(uint64_t)(page - 1);
    size_t off = (size_t)(fp->slice.file_position - start);
    size_t len = off + fp->slice.len;
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fp->slice.fd, (off_t)start);
    if (m == MAP_FAILED)
        return false;
    size_t pages = (len + (size_t)page - 1) / (size_t)page;
    unsigned char vec[256];
    for (size_t done = 0; done < pages;) {
        size_t n = pages - done < sizeof(vec) ? pages - done : sizeof(vec);
        if (mincore((uint8_t *)m + done * (size_t)page, n * (size_t)page, vec)) {
            munmap(m, len);
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            if (!(vec[i] & 1)) {
                munmap(m, len);
                return false;
            }
        }
        done += n;
    }
    fp->map = m;
    fp->map_len = len;
    fp->map_data = (const uint8_t *)m + off;
    return true;
}

static void fetch_mark(struct req *r)
{
    if (r->conn) {
        r->needs_finish = true;
        shard_mark_conn(r->conn);
    }
}

static void fetch_wake(struct partition_waiter *w, enum partition_event ev, uint32_t bytes)
{
    struct fetch_part *fp = w->ctx;
    struct fetch_state *fs = fp->r->state;
    if (fs->phase != FETCH_WAITING || fs->woken || ev == PARTITION_FAILED)
        return;
    fs->waited_bytes += bytes;
    if (ev == PARTITION_GONE || fs->waited_bytes >= fs->min_bytes) {
        fs->woken = true;
        fetch_mark(fp->r);
    }
}

static void fetch_timer_done(struct io_op *op, int result)
{
    struct req *r = op->ctx;
    struct fetch_state *fs = r->state;
    shard_op_ended(r->sh);
    r->pending--;
    fs->timer_armed = false;
    if (result == 0 && fs->phase == FETCH_WAITING && !fs->woken) {
        fs->woken = true;
        fetch_mark(r);
    }
}

static void fetch_cancel_done(struct io_op *op, int result)
{
    struct req *r = op->ctx;
    shard_op_ended(r->sh);
    r->pending--;
}

/* Ends a wait: unlinks the waiters and cancels the timer (whose completion ends later). */
static void fetch_stop_wait(struct req *r)
{
    struct fetch_state *fs = r->state;
    for (uint32_t i = 0; i < fs->n; i++)
        partition_unwait(&fs->parts[i].waiter);
    if (fs->timer_armed) {
        fs->cancel_op.done = fetch_cancel_done;
        fs->cancel_op.ctx = r;
        r->pending++;
        shard_op_started(r->sh);
        io_prep_cancel(r->sh->io, &fs->cancel_op, &fs->timer_op, 0);
    }
}

static void fetch_read_done(struct io_op *op, int result)
{
    struct fetch_part *fp = op->ctx;
    struct req *r = fp->r;
    struct fetch_state *fs = r->state;
    shard_op_ended(r->sh);
    r->pending--;
    /* A direct read covers the aligned range around the slice; it may stop short at the end
     * of the file, but never before the slice's last byte. */
    if (fp->dbuf && result >= (int)(fp->dskip + fp->slice.len))
        result = (int)fp->slice.len;
    if (result != (int)fp->slice.len) {
        fp->read_failed = true;
        fp->res->error_code = result < 0 ? result : RL_E_INTERNAL;
        fp->res->error_message = (char *)"reading the log failed; see the broker log";
        RL_ERROR("fetch %s-%u: read of %u bytes at %llu returned %d", partition_topic(fp->p),
                 partition_index(fp->p), fp->slice.len,
                 (unsigned long long)fp->slice.file_position, result);
    }
    if (--fs->reads_left == 0)
        fetch_mark(r);
}

static void fetch_respond(struct req *r)
{
    struct fetch_state *fs = r->state;
    struct iovec *iov = arena_alloc(&r->arena, (fs->n + 1) * sizeof(*iov));
    int *fds = arena_alloc(&r->arena, (fs->n + 1) * sizeof(*fds));
    uint64_t *pos = arena_alloc(&r->arena, (fs->n + 1) * sizeof(*pos));
    uint32_t n = 0;
    bool files = false;
    if (!iov || !fds || !pos)
        return api_oom(r);
    for (uint32_t i = 0; i < fs->n; i++) {
        struct fetch_part *fp = &fs->parts[i];
        if (!fp->have_slice || fp->res->data_len == 0)
            continue;
        if (fp->read_failed) {
            fp->res->data_len = 0;
            continue;
        }
        iov[n].iov_base = fp->spliced ? NULL : fp->copy ? fp->copy
                          : fp->map ? (void *)fp->map_data : (void *)fp->slice.mem;
        iov[n].iov_len = fp->slice.len;
        fds[n] = fp->spliced ? fp->slice.fd : -1;
        pos[n] = fp->spliced ? fp->slice.file_position : 0;
        files |= fp->spliced;
        n++;
    }
    fs->phase = FETCH_DONE;
    req_respond_segs(r, fs->resp, iov, files ? fds : NULL, pos, n);
}

/* Puts the slices into the response, reading file slices into memory. */
static void fetch_drop(struct fetch_part *fp)
{
    partition_read_release(fp->p, &fp->slice);
    fp->have_slice = false;
}

/* The aligned file range a direct read of the slice covers: [*start, *start + *len). */
static void fetch_direct_range(const struct fetch_part *fp, uint64_t *start, uint64_t *len)
{
    uint64_t a = PLOG_DIRECT_ALIGN;
    *start = fp->slice.file_position / a * a;
    uint64_t end = (fp->slice.file_position + fp->slice.len + a - 1) / a * a;
    *len = end - *start;
}

/* Can the slice be read with O_DIRECT into a pooled buffer? */
static bool fetch_direct_ok(const struct fetch_part *fp)
{
    uint64_t start, len;
    fetch_direct_range(fp, &start, &len);
    return !fp->slice.mem && fp->slice.direct_fd >= 0 && len <= FETCH_DIRECT_BUF_BYTES;
}

/* Starts an O_DIRECT read of the aligned range around the slice into a pooled buffer. The
 * page cache is bypassed (as appends bypass it): reusing our few buffers is far cheaper than
 * having the kernel fill fresh cache pages for every read and copy or splice from them.
 * Returns false when no buffer can be had (the caller reads through the cache instead). */
static bool fetch_read_direct(struct req *r, struct fetch_part *fp)
{
    struct shard *sh = r->sh;
    uint64_t start, len;
    fetch_direct_range(fp, &start, &len);
    uint8_t *buf = NULL; /* fetch_direct_ok checked that the range fits */
    if (sh->n_direct_bufs)
        buf = sh->direct_bufs[--sh->n_direct_bufs];
    else if (posix_memalign((void **)&buf, PLOG_DIRECT_ALIGN, FETCH_DIRECT_BUF_BYTES))
        return false;
    fp->dbuf = buf;
    fp->dskip = (uint32_t)(fp->slice.file_position - start);
    fp->copy = buf + fp->dskip;
    io_prep_read(sh->io, &fp->read_op, fp->slice.direct_fd, buf, (uint32_t)len, start, 0);
    return true;
}

/* Starts the async read of a cold file slice into a buffer charged to the budget. */
static void fetch_read(struct req *r, struct fetch_part *fp)
{
    struct shard *sh = r->sh;
    struct fetch_state *fs = r->state;
    fp->read_op.done = fetch_read_done;
    fp->read_op.ctx = fp;
    if (!fetch_direct_ok(fp) || !fetch_read_direct(r, fp)) {
        fp->copy = malloc(fp->slice.len);
        if (!fp->copy) {
            fp->read_failed = true;
            return;
        }
        io_prep_read(sh->io, &fp->read_op, fp->slice.fd, fp->copy, fp->slice.len,
                     fp->slice.file_position, 0);
    }
    uint64_t held = fp->dbuf ? FETCH_DIRECT_BUF_BYTES : fp->slice.len;
    shard_mem_charge(sh, held);
    r->mem_bytes += held;
    r->pending++;
    fs->reads_left++;
    shard_op_started(sh);
}

/* Puts the slices into the response (in memory, mapped from the page cache, or read). Past
 * the response cap, and past the memory budget for slices that must be read, a partition
 * answers with no data (the client asks again); the first slice always goes, so every fetch
 * makes progress. */
static void fetch_build(struct req *r)
{
    struct fetch_state *fs = r->state;
    struct shard *sh = r->sh;
    uint64_t total = 0;
    fs->phase = FETCH_READING;
    for (uint32_t i = 0; i < fs->n; i++) {
        struct fetch_part *fp = &fs->parts[i];
        if (!fp->have_slice || fp->slice.len == 0)
            continue;
        if (total > 0 && total + fp->slice.len > fs->max_bytes) {
            fetch_drop(fp);
            continue;
        }
        bool direct = fetch_direct_ok(fp);
        fp->spliced = !fp->slice.mem && !direct && sh->splice_ok;
        bool in_memory = fp->slice.mem || fp->spliced || (!direct && fetch_map(fp));
        if (!in_memory && total > 0 &&
            sh->mem_used + fp->slice.len > sh->cfg.max_inflight_bytes) {
            fetch_drop(fp);
            continue;
        }
        total += fp->slice.len;
        fp->res->data_len = fp->slice.len;
        uint64_t from = fp->slice.first_offset > fp->offset ? fp->slice.first_offset : fp->offset;
        partition_count_out(fp->p, fp->slice.len,
                            fp->slice.next_offset > from ? fp->slice.next_offset - from : 0);
        if (!in_memory)
            fetch_read(r, fp);
    }
    if (fs->reads_left == 0)
        fetch_respond(r);
}

/* Reads every partition; answers, or starts waiting when fewer than min_bytes are there. */
static void fetch_try(struct req *r, bool force)
{
    struct fetch_state *fs = r->state;
    uint64_t total = 0;
    bool errors = false;
    for (uint32_t i = 0; i < fs->n; i++) {
        struct fetch_part *fp = &fs->parts[i];
        if (!fp->p)
            continue;
        Ringlog__FetchPartitionResult *res = fp->res;
        if (partition_gone(fp->p)) {
            res->error_code = RL_E_UNKNOWN_TOPIC;
            res->error_message = (char *)"topic was deleted while the fetch waited";
            fp->p = NULL;
            errors = true;
            continue;
        }
        uint64_t room = fs->max_bytes > total ? fs->max_bytes - total : 1;
        uint32_t cap = fp->max_bytes && fp->max_bytes < room ? fp->max_bytes : (uint32_t)room;
        int rc = partition_read(fp->p, fp->offset, cap, &fp->slice);
        res->high_watermark = partition_visible_end(fp->p);
        res->log_start_offset = partition_start_offset(fp->p);
        res->log_end_offset = partition_log_end(fp->p);
        if (rc) {
            res->error_code = rc;
            res->error_message = arena_printf(&r->arena, "offset %llu of %s-%u: %s",
                                              (unsigned long long)fp->offset,
                                              partition_topic(fp->p), partition_index(fp->p),
                                              rl_strerror(rc));
            errors = true;
            continue;
        }
        fp->have_slice = true;
        total += fp->slice.len;
    }
    bool wait = !force && !errors && total < fs->min_bytes && fs->max_wait_ms > 0 &&
                !r->sh->stopping && r->conn && !r->conn->eof;
    if (!wait)
        return fetch_build(r);
    fetch_release(r);
    fs->phase = FETCH_WAITING;
    fs->woken = false;
    fs->waited_bytes = total;
    for (uint32_t i = 0; i < fs->n; i++) {
        struct fetch_part *fp = &fs->parts[i];
        if (!fp->p)
            continue;
        fp->waiter.wake = fetch_wake;
        fp->waiter.ctx = fp;
        partition_wait(fp->p, &fp->waiter);
    }
    fs->timer_op.done = fetch_timer_done;
    fs->timer_op.ctx = r;
    fs->timer_armed = true;
    r->pending++;
    shard_op_started(r->sh);
    io_prep_timeout(r->sh->io, &fs->timer_op, (uint64_t)fs->max_wait_ms * 1000000ull, 0);
}

static void fetch_finish(struct req *r)
{
    struct fetch_state *fs = r->state;
    if (fs->phase == FETCH_WAITING && fs->woken) {
        fetch_stop_wait(r);
        fetch_try(r, true);
    } else if (fs->phase == FETCH_READING && fs->reads_left == 0) {
        fetch_respond(r);
    }
}

void api_fetch_wake_all(struct conn *c)
{
    for (struct req *r = c->head; r; r = r->next) {
        if (r->api != RINGLOG__API__API_FETCH || !r->state || r->finish != fetch_finish)
            continue;
        struct fetch_state *fs = r->state;
        if (fs->phase == FETCH_WAITING && !fs->woken) {
            fs->woken = true;
            fetch_mark(r);
        }
    }
}

void api_fetch_abandon(struct req *r)
{
    if (r->finish != fetch_finish || !r->state)
        return;
    struct fetch_state *fs = r->state;
    if (fs->phase == FETCH_WAITING) {
        fetch_stop_wait(r);
        fs->phase = FETCH_DONE;
    }
}

/* Resolves one requested partition: its result, and whether it can be read. */
static void fetch_resolve(struct req *r, const char *topic, const Ringlog__FetchPartition *q,
                          struct fetch_part *fp)
{
    int rc;
    fp->r = r;
    fp->offset = q->fetch_offset;
    fp->max_bytes = q->max_bytes;
    fp->res->partition = q->partition;
    struct partition *p = meta_partition(r->sh->meta, topic, q->partition, &rc);
    if (!p) {
        fp->res->error_code = rc;
        fp->res->error_message = rc == RL_E_UNKNOWN_TOPIC
            ? arena_printf(&r->arena, "topic \"%s\" does not exist", topic)
            : arena_printf(&r->arena, "topic \"%s\" has no partition %u", topic, q->partition);
        return;
    }
    uint64_t start = partition_start_offset(p), visible = partition_visible_end(p);
    fp->res->high_watermark = visible;
    fp->res->log_start_offset = start;
    fp->res->log_end_offset = partition_log_end(p);
    if (q->fetch_offset < start || q->fetch_offset > visible) {
        fp->res->error_code = RL_E_OFFSET_OUT_OF_RANGE;
        fp->res->error_message = arena_printf(
            &r->arena, "offset %llu is outside %s-%u, which holds offsets %llu to %llu; "
            "seek to earliest or latest", (unsigned long long)q->fetch_offset, topic,
            q->partition, (unsigned long long)start, (unsigned long long)visible);
        return;
    }
    fp->p = p;
}

static void api_fetch(struct req *r, const Ringlog__FetchRequest *q)
{
    Ringlog__Response *resp = req_response(r);
    Ringlog__FetchResponse *body =
        API_NEW(r, Ringlog__FetchResponse, ringlog__fetch_response__init);
    Ringlog__FetchTopicResult **trs = api_alloc(r, (q->n_topics + 1) * sizeof(*trs));
    struct fetch_state *fs = api_alloc(r, sizeof(*fs));
    size_t total = 0;
    for (size_t i = 0; i < q->n_topics; i++)
        total += q->topics[i]->n_partitions;
    if (fs)
        fs->parts = api_alloc(r, (total + 1) * sizeof(*fs->parts));
    if (!resp || !body || !trs || !fs || !fs->parts)
        return api_oom(r);
    fs->resp = resp;
    fs->min_bytes = q->min_bytes;
    fs->max_bytes = q->max_bytes ? q->max_bytes : FETCH_DEFAULT_MAX_BYTES;
    fs->max_wait_ms = q->max_wait_ms < FETCH_MAX_WAIT_MS ? q->max_wait_ms : FETCH_MAX_WAIT_MS;
    for (size_t i = 0; i < q->n_topics; i++) {
        const Ringlog__FetchTopic *ft = q->topics[i];
        Ringlog__FetchTopicResult *tr =
            API_NEW(r, Ringlog__FetchTopicResult, ringlog__fetch_topic_result__init);
        Ringlog__FetchPartitionResult *prs = api_alloc(r, (ft->n_partitions + 1) * sizeof(*prs));
        Ringlog__FetchPartitionResult **pps = api_alloc(r, (ft->n_partitions + 1) * sizeof(*pps));
        if (!tr || !prs || !pps)
            return api_oom(r);
        tr->name = ft->name;
        for (size_t k = 0; k < ft->n_partitions; k++) {
            ringlog__fetch_partition_result__init(&prs[k]);
            pps[k] = &prs[k];
            fs->parts[fs->n].res = &prs[k];
            fetch_resolve(r, ft->name, ft->partitions[k], &fs->parts[fs->n]);
            fs->n++;
        }
        tr->n_partitions = ft->n_partitions;
        tr->partitions = pps;
        trs[i] = tr;
    }
    body->n_topics = q->n_topics;
    body->topics = trs;
    resp->body_case = RINGLOG__RESPONSE__BODY_FETCH;
    resp->fetch = body;
    r->state = fs;
    r->finish = fetch_finish;
    r->release = fetch_release;
    fetch_try(r, false);
}

/* --- dispatch --------------------------------------------------------------------------------- */

void api_dispatch(struct req *r, const Ringlog__Request *rq, const uint8_t *data,
                  uint32_t data_len)
{
    (void)data_len; /* frame_check_request matched it against the envelope */
    switch (rq->body_case) {
    case RINGLOG__REQUEST__BODY_API_VERSIONS: return api_versions(r);
    case RINGLOG__REQUEST__BODY_METADATA: return api_metadata(r, rq->metadata);
    case RINGLOG__REQUEST__BODY_CREATE_TOPICS: return api_create_topics(r, rq->create_topics);
    case RINGLOG__REQUEST__BODY_DELETE_TOPICS: return api_delete_topics(r, rq->delete_topics);
    case RINGLOG__REQUEST__BODY_DESCRIBE_CONFIGS:
        return api_describe_configs(r, rq->describe_configs);
    case RINGLOG__REQUEST__BODY_ALTER_CONFIGS: return api_alter_configs(r, rq->alter_configs);
    case RINGLOG__REQUEST__BODY_PRODUCE: return api_produce(r, rq->produce, data);
    case RINGLOG__REQUEST__BODY_FETCH: return api_fetch(r, rq->fetch);
    case RINGLOG__REQUEST__BODY_LIST_OFFSETS: return api_list_offsets(r, rq->list_offsets);
    case RINGLOG__REQUEST__BODY_INIT_PRODUCER_ID:
    case RINGLOG__REQUEST__BODY_FIND_COORDINATOR:
    case RINGLOG__REQUEST__BODY_JOIN_GROUP:
    case RINGLOG__REQUEST__BODY_SYNC_GROUP:
    case RINGLOG__REQUEST__BODY_HEARTBEAT:
    case RINGLOG__REQUEST__BODY_LEAVE_GROUP:
    case RINGLOG__REQUEST__BODY_OFFSET_COMMIT:
    case RINGLOG__REQUEST__BODY_OFFSET_FETCH:
    case RINGLOG__REQUEST__BODY_LIST_GROUPS:
    case RINGLOG__REQUEST__BODY_DESCRIBE_GROUPS:
        return delivery_dispatch(r, rq);
    default:
        return req_respond_error(r, RL_E_UNKNOWN_API, "unknown request type");
    }
}
