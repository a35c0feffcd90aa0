/*
 * native_topics: Metadata, CreateTopics, DeleteTopics, DescribeConfigs and AlterConfigs over
 * broker/meta. Reads answer at once from the table; changes are metadata proposals (recorded
 * and applied in the background), and the response waits for every topic's.
 */
#include "broker/native/native_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/meta/meta.h"
#include "broker/partition/partition.h"
#include "common/err.h"

/* --- Metadata --------------------------------------------------------------------------------- */

static Ringlog__TopicMetadata *native_topic_metadata(struct native *n, struct svc_req *r,
                                                     const char *name)
{
    Ringlog__TopicMetadata *tm = NATIVE_NEW(r, Ringlog__TopicMetadata,
                                            ringlog__topic_metadata__init);
    if (!tm)
        return NULL;
    const struct meta_topic *t = meta_topic_find(n->meta, name);
    tm->name = (char *)name;
    if (!t) {
        tm->error_code = RL_E_UNKNOWN_TOPIC;
        tm->error_message = arena_printf(r->arena, "topic \"%s\" does not exist; create it "
                                         "with: ringlog topic create %s --partitions N",
                                         name, name);
        return tm;
    }
    tm->partitioner = (Ringlog__Partitioner)t->partitioner;
    tm->n_split_keys = t->n_split_keys;
    tm->split_keys = native_alloc(r, (t->n_split_keys + 1) * sizeof(*tm->split_keys));
    tm->n_partitions = t->partition_count;
    tm->partitions = native_alloc(r, t->partition_count * sizeof(*tm->partitions));
    Ringlog__PartitionMetadata *pm = native_alloc(r, t->partition_count * sizeof(*pm));
    int32_t *node = native_alloc(r, t->partition_count * sizeof(*node));
    if (!tm->partitions || !pm || !node || !tm->split_keys)
        return NULL;
    for (size_t i = 0; i < t->n_split_keys; i++) {
        tm->split_keys[i].data = (uint8_t *)t->split_keys[i].data;
        tm->split_keys[i].len = t->split_keys[i].len;
    }
    tm->replication_factor = t->replication_factor ? t->replication_factor : 1;
    for (uint32_t i = 0; i < t->partition_count; i++) {
        /* The controller's placement names the owner; without one this broker holds it. */
        uint32_t owner = meta_partition_owner(t, i);
        node[i] = owner ? (int32_t)owner : n->node_id;
        ringlog__partition_metadata__init(&pm[i]);
        pm[i].partition = i;
        pm[i].leader = node[i];
        pm[i].n_replicas = 1;
        pm[i].replicas = &node[i];
        pm[i].n_isr = 1;
        pm[i].isr = &node[i];
        tm->partitions[i] = &pm[i];
        uint32_t nr;
        const uint32_t *reps = meta_partition_replicas(t, i, &nr);
        if (!reps)
            continue;
        /* Replicated: the leader this replica knows (else the preferred one), the replicas,
         * and the in-sync replicas as the leader counts them. */
        int32_t *rv = native_alloc(r, 2 * nr * sizeof(*rv));
        if (!rv)
            return NULL;
        for (uint32_t k = 0; k < nr; k++)
            rv[k] = (int32_t)reps[k];
        pm[i].replicas = rv;
        pm[i].n_replicas = nr;
        pm[i].isr = rv;
        pm[i].n_isr = nr;
        const uint32_t *tg = meta_partition_target(t, i);
        int32_t *tv = tg ? native_alloc(r, nr * sizeof(*tv)) : NULL;
        for (uint32_t k = 0; tv && k < nr; k++)
            tv[k] = (int32_t)tg[k];
        if (tv) {
            pm[i].target_replicas = tv;
            pm[i].n_target_replicas = nr;
        }
        struct partition *p = t->parts[i];
        if (p && partition_replicated(p)) {
            /* The leader this replica knows in the term it knows; none (-1) while it does
             * not know one (clients ask again), never a guess that could name two leaders. */
            pm[i].leader = partition_leader(p) ? (int32_t)partition_leader(p) : -1;
            pm[i].leader_epoch = (uint32_t)partition_term(p);
            uint32_t ids[META_MAX_REPLICATION_FACTOR];
            uint32_t ni = partition_in_sync(p, ids, META_MAX_REPLICATION_FACTOR);
            for (uint32_t k = 0; k < ni; k++)
                rv[nr + k] = (int32_t)ids[k];
            pm[i].isr = rv + nr;
            pm[i].n_isr = ni;
        }
    }
    return tm;
}

/* The brokers and controller of a cluster (the view the server gives). Returns 0 or -ENOMEM. */
static int native_metadata_cluster(struct native *n, struct svc_req *r,
                                   Ringlog__MetadataResponse *body)
{
    struct native_cluster_view v;
    memset(&v, 0, sizeof(v));
    n->cluster_view(n->cluster_ctx, &v);
    Ringlog__BrokerInfo **bis = native_alloc(r, (v.n_brokers ? v.n_brokers : 1) * sizeof(*bis));
    if (!bis)
        return -ENOMEM;
    for (uint32_t i = 0; i < v.n_brokers; i++) {
        Ringlog__BrokerInfo *bi = NATIVE_NEW(r, Ringlog__BrokerInfo, ringlog__broker_info__init);
        if (!bi)
            return -ENOMEM;
        bi->node_id = v.brokers[i].id;
        bi->host = arena_strdup(r->arena, v.brokers[i].host);
        bi->port = v.brokers[i].port;
        bi->fenced = v.brokers[i].fenced;
        bi->decommissioned = v.brokers[i].decommissioned;
        if (!bi->host)
            return -ENOMEM;
        bis[i] = bi;
    }
    if (v.n_brokers) {
        body->n_brokers = v.n_brokers;
        body->brokers = bis;
    }
    Ringlog__ControllerVoter **vs = native_alloc(r, (v.n_voters ? v.n_voters : 1) * sizeof(*vs));
    if (!vs)
        return -ENOMEM;
    for (uint32_t i = 0; i < v.n_voters; i++) {
        vs[i] = NATIVE_NEW(r, Ringlog__ControllerVoter, ringlog__controller_voter__init);
        if (!vs[i])
            return -ENOMEM;
        vs[i]->node_id = v.voters[i].id;
        vs[i]->match_index = v.voters[i].match;
        vs[i]->reachable = v.voters[i].reachable;
    }
    body->n_voters = v.n_voters;
    body->voters = vs;
    body->controller_term = v.term;
    body->controller_commit = v.commit;
    body->controller_applied = v.applied;
    body->answered_by = v.self;
    body->controller_id = v.controller_id;
    body->cluster_id = arena_strdup(r->arena, v.cluster_id);
    return body->cluster_id ? 0 : -ENOMEM;
}

void native_metadata(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                     const uint8_t *data)
{
    (void)data;
    const Ringlog__MetadataRequest *q = rq->metadata;
    Ringlog__Response *resp = n->host->response(r);
    Ringlog__MetadataResponse *body =
        NATIVE_NEW(r, Ringlog__MetadataResponse, ringlog__metadata_response__init);
    Ringlog__BrokerInfo *bi = NATIVE_NEW(r, Ringlog__BrokerInfo, ringlog__broker_info__init);
    Ringlog__BrokerInfo **bis = native_alloc(r, sizeof(*bis));
    bool all = q->n_topics == 0;
    size_t count = all ? meta_topic_count(n->meta) : q->n_topics;
    Ringlog__TopicMetadata **tms = native_alloc(r, (count ? count : 1) * sizeof(*tms));
    if (!resp || !body || !bi || !bis || !tms)
        return native_oom(n, r);
    bi->node_id = n->node_id;
    bi->host = n->listen_host;
    bi->port = n->port;
    bis[0] = bi;
    for (size_t i = 0; i < count; i++) {
        const char *name = all ? meta_topic_at(n->meta, i)->name : q->topics[i];
        tms[i] = native_topic_metadata(n, r, name);
        if (!tms[i])
            return native_oom(n, r);
    }
    body->n_brokers = 1;
    body->brokers = bis;
    body->controller_id = n->node_id;
    body->n_topics = count;
    body->topics = tms;
    body->cluster_id = arena_printf(r->arena, "ringlog-%d", n->node_id);
    if (n->cluster_view && native_metadata_cluster(n, r, body))
        return native_oom(n, r);
    resp->body_case = RINGLOG__RESPONSE__BODY_METADATA;
    resp->metadata = body;
    n->host->respond(r, resp, NULL, NULL, NULL, 0);
}

/* --- CreateTopics / DeleteTopics / AlterConfigs ----------------------------------------------- */

/* One topic of an admin request: its result, and the metadata change it waits for. */
struct admin_item {
    struct meta_proposal pr;
    struct svc_req *r;
    Ringlog__TopicResult *tr;
};

struct admin_state {
    struct native *n;
    Ringlog__Response *resp;
};

static void admin_finish(struct svc_req *r)
{
    struct admin_state *as = r->state;
    as->n->host->respond(r, as->resp, NULL, NULL, NULL, 0);
}

static void admin_set_result(struct svc_req *r, Ringlog__TopicResult *tr, int rc,
                             const char *msg)
{
    tr->error_code = rc;
    if (rc) {
        tr->error_message = arena_strdup(r->arena, msg && msg[0] ? msg : rl_strerror(rc));
        if (!tr->error_message)
            tr->error_message = (char *)rl_strerror(rc);
    }
}

/* Refuses a client's change to an internal topic; true when it did (the result is set). */
static bool admin_refuse_internal(struct svc_req *r, Ringlog__TopicResult *tr, const char *name,
                                  const char *what)
{
    if (!meta_topic_internal(name))
        return false;
    char msg[400];
    snprintf(msg, sizeof(msg), "topic \"%s\" is internal to the broker (names starting with "
             "__ are reserved): clients may not %s it", name, what);
    admin_set_result(r, tr, RL_E_INTERNAL_TOPIC, msg);
    return true;
}

static void admin_done(struct meta_proposal *pr)
{
    struct admin_item *it = pr->ctx;
    admin_set_result(it->r, it->tr, pr->rc, pr->msg);
    svc_req_op_ended(it->r);
}

/* The response skeleton of an admin request over `count` topics; items[i] is topic i's. */
static struct admin_item *admin_start(struct native *n, struct svc_req *r, size_t count,
                                      Ringlog__TopicResult ***trs_out)
{
    struct admin_state *as = native_alloc(r, sizeof(*as));
    struct admin_item *items = native_alloc(r, (count + 1) * sizeof(*items));
    Ringlog__TopicResult *trs = native_alloc(r, (count + 1) * sizeof(*trs));
    Ringlog__TopicResult **ptrs = native_alloc(r, (count + 1) * sizeof(*ptrs));
    if (!as || !items || !trs || !ptrs || !(as->resp = n->host->response(r)))
        return NULL;
    as->n = n;
    for (size_t i = 0; i < count; i++) {
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
static void admin_launch(struct svc_req *r)
{
    if (r->pending == 0)
        admin_finish(r);
}

/* The plain spec of a CreateTopics entry (arrays in the arena). */
static int native_spec(struct svc_req *r, const Ringlog__TopicSpec *s, struct meta_topic_spec *out)
{
    struct meta_bytes *keys = native_alloc(r, (s->n_split_keys + 1) * sizeof(*keys));
    struct meta_config *cfgs = native_alloc(r, (s->n_configs + 1) * sizeof(*cfgs));
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

static struct meta_config *native_configs(struct svc_req *r, Ringlog__ConfigEntry *const *e,
                                          size_t count)
{
    struct meta_config *c = native_alloc(r, (count + 1) * sizeof(*c));
    for (size_t i = 0; c && i < count; i++)
        c[i] = (struct meta_config){e[i]->key, e[i]->value};
    return c;
}

void native_create_topics(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                          const uint8_t *data)
{
    (void)data;
    const Ringlog__CreateTopicsRequest *q = rq->create_topics;
    Ringlog__TopicResult **trs;
    struct admin_item *items = admin_start(n, r, q->n_topics, &trs);
    Ringlog__CreateTopicsResponse *body =
        NATIVE_NEW(r, Ringlog__CreateTopicsResponse, ringlog__create_topics_response__init);
    if (!items || !body)
        return native_oom(n, r);
    struct admin_state *as = r->state;
    for (size_t i = 0; i < q->n_topics; i++) {
        struct meta_topic_spec spec;
        trs[i]->name = q->topics[i]->name;
        if (native_spec(r, q->topics[i], &spec))
            return native_oom(n, r);
        if (admin_refuse_internal(r, trs[i], spec.name, "create"))
            continue;
        if (q->validate_only) {
            char msg[512] = "";
            struct topic_config cfg;
            int rc = meta_check_create(n->meta, &spec, &cfg, msg, sizeof(msg));
            admin_set_result(r, trs[i], rc, msg);
            continue;
        }
        r->pending++;
        meta_propose_create(n->meta, &items[i].pr, &spec);
    }
    body->n_topics = q->n_topics;
    body->topics = trs;
    as->resp->body_case = RINGLOG__RESPONSE__BODY_CREATE_TOPICS;
    as->resp->create_topics = body;
    admin_launch(r);
}

void native_delete_topics(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                          const uint8_t *data)
{
    (void)data;
    const Ringlog__DeleteTopicsRequest *q = rq->delete_topics;
    Ringlog__TopicResult **trs;
    struct admin_item *items = admin_start(n, r, q->n_names, &trs);
    Ringlog__DeleteTopicsResponse *body =
        NATIVE_NEW(r, Ringlog__DeleteTopicsResponse, ringlog__delete_topics_response__init);
    if (!items || !body)
        return native_oom(n, r);
    struct admin_state *as = r->state;
    for (size_t i = 0; i < q->n_names; i++) {
        trs[i]->name = q->names[i];
        if (admin_refuse_internal(r, trs[i], q->names[i], "delete"))
            continue;
        r->pending++;
        meta_propose_delete(n->meta, &items[i].pr, q->names[i]);
    }
    body->n_topics = q->n_names;
    body->topics = trs;
    as->resp->body_case = RINGLOG__RESPONSE__BODY_DELETE_TOPICS;
    as->resp->delete_topics = body;
    admin_launch(r);
}

/* --- DescribeConfigs / AlterConfigs ----------------------------------------------------------- */

static Ringlog__TopicConfigs *native_describe_one(struct native *n, struct svc_req *r,
                                                  const char *name)
{
    Ringlog__TopicConfigs *tc = NATIVE_NEW(r, Ringlog__TopicConfigs,
                                           ringlog__topic_configs__init);
    if (!tc)
        return NULL;
    tc->name = (char *)name;
    const struct meta_topic *t = meta_topic_find(n->meta, name);
    if (!t) {
        tc->error_code = RL_E_UNKNOWN_TOPIC;
        tc->error_message = arena_printf(r->arena, "topic \"%s\" does not exist", name);
        return tc;
    }
    Ringlog__ConfigEntry *es = native_alloc(r, CONFIG_TOPIC_KEY_COUNT * sizeof(*es));
    tc->configs = native_alloc(r, CONFIG_TOPIC_KEY_COUNT * sizeof(*tc->configs));
    if (!es || !tc->configs)
        return NULL;
    for (int k = 0; k < CONFIG_TOPIC_KEY_COUNT; k++) {
        ringlog__config_entry__init(&es[k]);
        es[k].key = (char *)config_topic_key_name((enum config_topic_key)k);
        es[k].value = arena_strdup(r->arena, t->cfg.values[k]);
        es[k].is_default = !(t->cfg.set_mask & (1u << k));
        if (!es[k].value)
            return NULL;
        tc->configs[k] = &es[k];
    }
    tc->n_configs = CONFIG_TOPIC_KEY_COUNT;
    return tc;
}

void native_describe_configs(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                             const uint8_t *data)
{
    (void)data;
    const Ringlog__DescribeConfigsRequest *q = rq->describe_configs;
    Ringlog__Response *resp = n->host->response(r);
    Ringlog__DescribeConfigsResponse *body =
        NATIVE_NEW(r, Ringlog__DescribeConfigsResponse, ringlog__describe_configs_response__init);
    bool all = q->n_topics == 0;
    size_t count = all ? meta_topic_count(n->meta) : q->n_topics;
    Ringlog__TopicConfigs **tcs = native_alloc(r, (count + 1) * sizeof(*tcs));
    if (!resp || !body || !tcs)
        return native_oom(n, r);
    for (size_t i = 0; i < count; i++) {
        tcs[i] = native_describe_one(n, r, all ? meta_topic_at(n->meta, i)->name : q->topics[i]);
        if (!tcs[i])
            return native_oom(n, r);
    }
    body->n_topics = count;
    body->topics = tcs;
    resp->body_case = RINGLOG__RESPONSE__BODY_DESCRIBE_CONFIGS;
    resp->describe_configs = body;
    n->host->respond(r, resp, NULL, NULL, NULL, 0);
}

void native_alter_configs(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                          const uint8_t *data)
{
    (void)data;
    const Ringlog__AlterConfigsRequest *q = rq->alter_configs;
    Ringlog__TopicResult **trs;
    struct admin_item *items = admin_start(n, r, q->n_topics, &trs);
    Ringlog__AlterConfigsResponse *body =
        NATIVE_NEW(r, Ringlog__AlterConfigsResponse, ringlog__alter_configs_response__init);
    if (!items || !body)
        return native_oom(n, r);
    struct admin_state *as = r->state;
    for (size_t i = 0; i < q->n_topics; i++) {
        const Ringlog__TopicConfigs *tc = q->topics[i];
        struct meta_config *cfgs = native_configs(r, tc->configs, tc->n_configs);
        trs[i]->name = tc->name;
        if (!cfgs)
            return native_oom(n, r);
        if (admin_refuse_internal(r, trs[i], tc->name, "reconfigure"))
            continue;
        if (q->validate_only) {
            char msg[512] = "";
            int rc = meta_check_alter(n->meta, tc->name, cfgs, tc->n_configs, msg, sizeof(msg));
            admin_set_result(r, trs[i], rc, msg);
            continue;
        }
        r->pending++;
        meta_propose_alter(n->meta, &items[i].pr, tc->name, cfgs, tc->n_configs);
    }
    body->n_topics = q->n_topics;
    body->topics = trs;
    as->resp->body_case = RINGLOG__RESPONSE__BODY_ALTER_CONFIGS;
    as->resp->alter_configs = body;
    admin_launch(r);
}
