/*
 * kserve_admin: CreateTopics and DeleteTopics over broker/meta: each topic is a metadata
 * proposal (recorded and applied in the background), and the response waits for all of them,
 * as the native protocol's does. Kafka's "broker default" (-1) partition count and replication
 * factor are the broker's num.partitions and default.replication.factor (1 and 1 unless set,
 * as in Kafka); manual replica assignments are refused.
 * DescribeConfigs answers from the topic table.
 */
#include "broker/kafka/kserve_int.h"

#include <stdio.h>
#include <string.h>

#include "broker/meta/meta.h"
#include "common/err.h"
#include "common/log.h"

struct kserve_admin_item {
    struct meta_proposal pr;
    struct svc_req *r;
    struct kmsg_topic_error *te;
    bool with_message;
};

static void kserve_admin_finish(struct svc_req *r)
{
    kserve_answer(r->state, r);
}

static void kserve_admin_set(struct svc_req *r, struct kserve_admin_item *it, int rc,
                             const char *msg)
{
    it->te->error_code = kerr_from_rl(rc, KERR_SCOPE_ADMIN);
    it->te->error_message = KSTR_NULL;
    if (rc && it->with_message)
        it->te->error_message = kstr_of(arena_strdup(r->arena, msg && msg[0] ? msg
                                                                             : rl_strerror(rc)));
}

static void kserve_admin_done(struct meta_proposal *pr)
{
    struct kserve_admin_item *it = pr->ctx;
    kserve_admin_set(it->r, it, pr->rc, pr->msg);
    svc_req_op_ended(it->r);
}

static struct kserve_admin_item *kserve_admin_start(struct kserve_req *kr, struct svc_req *r,
                                                    int32_t count, struct kmsg_topic_error **out)
{
    struct kserve_admin_item *items = kserve_alloc(r, (size_t)count, sizeof(*items));
    struct kmsg_topic_error *tes = kserve_alloc(r, (size_t)count, sizeof(*tes));
    if (!items || !tes)
        return NULL;
    for (int32_t i = 0; i < count; i++) {
        items[i].r = r;
        items[i].te = &tes[i];
        items[i].pr.done = kserve_admin_done;
        items[i].pr.ctx = &items[i];
        tes[i].error_message = KSTR_NULL;
    }
    r->state = kr;
    r->finish = kserve_admin_finish;
    *out = tes;
    return items;
}

static int kserve_spec(const struct kafka *k, struct svc_req *r,
                       const struct kmsg_create_topic *t, struct meta_topic_spec *spec)
{
    struct meta_config *cfgs = kserve_alloc(r, (size_t)(t->n_configs > 0 ? t->n_configs : 0),
                                            sizeof(*cfgs));
    char *name = kserve_cstr(r, t->name);
    if (!cfgs || !name)
        return -1;
    for (int32_t i = 0; i < t->n_configs; i++) {
        cfgs[i].key = kserve_cstr(r, t->configs[i].name);
        cfgs[i].value = kserve_cstr(r, t->configs[i].value);
        if (!cfgs[i].key || !cfgs[i].value)
            return -1;
    }
    *spec = (struct meta_topic_spec){
        .name = name,
        .partitions = t->num_partitions < 0 ? k->auto_cfg.partitions : t->num_partitions,
        .replication_factor = t->replication_factor < 0 ? k->auto_cfg.replication_factor
                                                        : t->replication_factor,
        .partitioner = META_PARTITIONER_HASH,
        .n_configs = (size_t)(t->n_configs > 0 ? t->n_configs : 0), .configs = cfgs};
    return 0;
}

void kserve_create_topics(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_create_topics_req *q = &kr->body->create_topics;
    struct kmsg_create_topics_resp *resp = &kr->resp.create_topics;
    int32_t n = q->n_topics > 0 ? q->n_topics : 0;
    struct kserve_admin_item *items = kserve_admin_start(kr, r, n, &resp->topics);
    if (!items)
        return kserve_oom(kr, r);
    resp->n_topics = n;
    for (int32_t i = 0; i < n; i++) {
        const struct kmsg_create_topic *t = &q->topics[i];
        struct meta_topic_spec spec;
        items[i].with_message = true;
        if (kserve_spec(kr->k, r, t, &spec))
            return kserve_oom(kr, r);
        resp->topics[i].name = kstr_of(spec.name);
        if (t->n_assignments > 0) {
            kserve_admin_set(r, &items[i], RL_E_INVALID_REPLICATION,
                             "manual replica assignment is not supported; give "
                             "num_partitions and replication_factor");
            resp->topics[i].error_code = KERR_INVALID_REPLICA_ASSIGNMENT;
            continue;
        }
        if (q->validate_only) {
            char msg[512] = "";
            struct topic_config cfg;
            int rc = meta_check_create(kr->k->meta, &spec, &cfg, msg, sizeof(msg));
            kserve_admin_set(r, &items[i], rc, msg);
            continue;
        }
        r->pending++;
        meta_propose_create(kr->k->meta, &items[i].pr, &spec);
    }
    if (r->pending == 0)
        kserve_answer(kr, r);
}

void kserve_delete_topics(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_delete_topics_req *q = &kr->body->delete_topics;
    struct kmsg_delete_topics_resp *resp = &kr->resp.delete_topics;
    int32_t n = q->n_topic_names > 0 ? q->n_topic_names : 0;
    struct kserve_admin_item *items = kserve_admin_start(kr, r, n, &resp->topics);
    if (!items)
        return kserve_oom(kr, r);
    resp->n_topics = n;
    for (int32_t i = 0; i < n; i++) {
        char *name = kserve_cstr(r, q->topic_names[i]);
        if (!name)
            return kserve_oom(kr, r);
        resp->topics[i].name = kstr_of(name);
        r->pending++;
        meta_propose_delete(kr->k->meta, &items[i].pr, name);
    }
    if (r->pending == 0)
        kserve_answer(kr, r);
}

/* --- DescribeConfigs -------------------------------------------------------------------------- */

static bool kserve_config_wanted(const struct kmsg_describe_configs_resource *res,
                                 const char *key)
{
    if (res->n_config_names < 0)
        return true;
    for (int32_t i = 0; i < res->n_config_names; i++)
        if (kstr_eq(res->config_names[i], key))
            return true;
    return false;
}

/* A topic's settings: every topic key of broker/meta, with where its value comes from. */
static int kserve_topic_configs(struct kserve_req *kr, struct svc_req *r,
                                const struct kmsg_describe_configs_resource *res,
                                struct kmsg_describe_configs_result *out)
{
    char *name = kserve_cstr(r, res->resource_name);
    if (!name)
        return -1;
    out->resource_name = kstr_of(name);
    const struct meta_topic *t = meta_topic_find(kr->k->meta, name);
    if (!t) {
        out->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        out->error_message = kstr_of(arena_printf(r->arena, "topic \"%s\" does not exist", name));
        return out->error_message.ptr ? 0 : -1;
    }
    out->configs = kserve_alloc(r, CONFIG_TOPIC_KEY_COUNT, sizeof(*out->configs));
    if (!out->configs)
        return -1;
    for (int k = 0; k < CONFIG_TOPIC_KEY_COUNT; k++) {
        const char *key = config_topic_key_name((enum config_topic_key)k);
        if (!kserve_config_wanted(res, key))
            continue;
        char *value = arena_strdup(r->arena, t->cfg.values[k]);
        if (!value)
            return -1;
        bool set = (t->cfg.set_mask & (1u << k)) != 0;
        out->configs[out->n_configs++] = (struct kmsg_config_desc){
            .name = kstr_of(key), .value = kstr_of(value), .is_default = !set,
            .config_source = set ? KMSG_CONFIG_SOURCE_TOPIC : KMSG_CONFIG_SOURCE_DEFAULT};
    }
    return 0;
}

void kserve_describe_configs(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_describe_configs_req *q = &kr->body->describe_configs;
    struct kmsg_describe_configs_resp *resp = &kr->resp.describe_configs;
    int32_t n = q->n_resources > 0 ? q->n_resources : 0;
    resp->results = kserve_alloc(r, (size_t)n, sizeof(*resp->results));
    if (!resp->results)
        return kserve_oom(kr, r);
    for (int32_t i = 0; i < n; i++) {
        const struct kmsg_describe_configs_resource *res = &q->resources[i];
        struct kmsg_describe_configs_result *out = &resp->results[i];
        out->resource_type = res->resource_type;
        out->error_message = KSTR_NULL;
        if (res->resource_type == KMSG_RESOURCE_TOPIC) {
            if (kserve_topic_configs(kr, r, res, out))
                return kserve_oom(kr, r);
            continue;
        }
        /* Broker settings are ringlogd's own (ringlogd --help), not Kafka's: none listed. */
        out->resource_name = kstr_of(kserve_cstr(r, res->resource_name));
        if (!out->resource_name.ptr)
            return kserve_oom(kr, r);
        if (res->resource_type != KMSG_RESOURCE_BROKER) {
            out->error_code = KERR_INVALID_REQUEST;
            out->error_message = kstr_of("only topic and broker resources are described");
        }
    }
    resp->n_results = n;
    kserve_answer(kr, r);
}
