/*
 * admin: topic management for libringlog and the `ringlog topic` commands. Every call is one
 * synchronous request on the handle's metadata connection (rlc_meta_call), bounded by
 * request.timeout.ms. Where it sits: application / ringlog tool -> rl_admin -> ringlogd.
 *
 * Results (rl_topic_info) point into the last answer, which the handle keeps until its next
 * call: no copies, and nothing for the caller to free.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "common/err.h"

struct rl_admin {
    struct rl_conf conf;
    struct rlc_meta meta;
    Ringlog__Response *resp;        /* the answer results point into */
    Ringlog__Response *cfg_resp;    /* describe: the configs answer */
    struct rl_topic_info *infos;
    struct rl_partition_info *parts;
    const uint8_t **splits;
    size_t *split_lens;
    const char **cfg_keys, **cfg_values;
    int *cfg_default;
    char err[512];
};

struct rl_admin *rl_admin_new(const struct rl_conf *conf, char *err, size_t errlen)
{
    struct rl_admin *a = calloc(1, sizeof(*a));
    if (!a) {
        rlc_set_err(err, errlen, "out of memory");
        return NULL;
    }
    a->conf = *conf;
    rlc_meta_init(&a->meta, &a->conf);
    return a;
}

/* Drops the previous call's results. */
static void reset(struct rl_admin *a)
{
    if (a->resp)
        ringlog__response__free_unpacked(a->resp, NULL);
    if (a->cfg_resp)
        ringlog__response__free_unpacked(a->cfg_resp, NULL);
    a->resp = a->cfg_resp = NULL;
    free(a->infos);
    free(a->parts);
    free(a->splits);
    free(a->split_lens);
    free(a->cfg_keys);
    free(a->cfg_values);
    free(a->cfg_default);
    a->infos = NULL;
    a->parts = NULL;
    a->splits = NULL;
    a->split_lens = NULL;
    a->cfg_keys = a->cfg_values = NULL;
    a->cfg_default = NULL;
    a->err[0] = 0;
}

void rl_admin_destroy(struct rl_admin *a)
{
    if (!a)
        return;
    reset(a);
    rlc_meta_destroy(&a->meta);
    free(a);
}

const char *rl_admin_last_error(struct rl_admin *a)
{
    return a->err;
}

/* One request, answered with the expected body; keeps the answer in a->resp. */
static int call(struct rl_admin *a, Ringlog__Request *req, Ringlog__Response__BodyCase want,
                Ringlog__Response **out)
{
    const uint8_t *data;
    size_t dlen;
    int rc = rlc_meta_call(&a->meta, req, a->conf.request_timeout_ms, out, &data, &dlen);
    if (rc) {
        rlc_set_err(a->err, sizeof(a->err), "%s", a->meta.err);
        return rc;
    }
    if ((*out)->body_case != want) {
        rlc_set_err(a->err, sizeof(a->err), "broker sent an answer of the wrong type");
        return RL_E_FRAME_MALFORMED;
    }
    return 0;
}

/* Turns a TopicResult into a return code and a message a person can act on. */
static int topic_result(struct rl_admin *a, const Ringlog__TopicResult *r, const char *name,
                        const char *action)
{
    if (!r->error_code)
        return 0;
    const char *msg = r->error_message && r->error_message[0] ? r->error_message
                                                              : rl_strerror(r->error_code);
    if (r->error_code == RL_E_UNKNOWN_TOPIC)
        rlc_set_err(a->err, sizeof(a->err), "topic \"%s\" does not exist; list topics with: "
                    "ringlog topic list", name);
    else if (r->error_code == RL_E_TOPIC_EXISTS && r->error_message && r->error_message[0])
        rlc_set_err(a->err, sizeof(a->err), "%s", r->error_message); /* how it differs */
    else if (r->error_code == RL_E_TOPIC_EXISTS)
        rlc_set_err(a->err, sizeof(a->err), "topic \"%s\" already exists; see it with: "
                    "ringlog topic describe %s", name, name);
    else
        rlc_set_err(a->err, sizeof(a->err), "cannot %s topic \"%s\": %s", action, name, msg);
    return r->error_code;
}

int rl_admin_create_topic(struct rl_admin *a, const struct rl_topic_spec *spec)
{
    reset(a);
    if (!spec || !spec->name)
        return RL_E_INVALID_ARGUMENT;
    Ringlog__TopicSpec ts = RINGLOG__TOPIC_SPEC__INIT;
    ts.name = (char *)spec->name;
    ts.partitions = spec->partitions;
    ts.replication_factor = spec->replication_factor;
    ts.partitioner = spec->partitioner == RL_PARTITIONER_RANGE
                         ? RINGLOG__PARTITIONER__PARTITIONER_RANGE
                         : RINGLOG__PARTITIONER__PARTITIONER_HASH;
    ProtobufCBinaryData *splits = calloc(spec->split_key_count + 1, sizeof(*splits));
    Ringlog__ConfigEntry *ce = calloc(spec->config_count + 1, sizeof(*ce));
    Ringlog__ConfigEntry **cep = calloc(spec->config_count + 1, sizeof(*cep));
    int rc = -ENOMEM;
    if (!splits || !ce || !cep)
        goto out;
    for (size_t i = 0; i < spec->split_key_count; i++) {
        splits[i].data = (uint8_t *)spec->split_keys[i];
        splits[i].len = strlen(spec->split_keys[i]);
    }
    ts.split_keys = splits;
    ts.n_split_keys = spec->split_key_count;
    for (size_t i = 0; i < spec->config_count; i++) {
        ringlog__config_entry__init(&ce[i]);
        ce[i].key = (char *)spec->config_keys[i];
        ce[i].value = (char *)spec->config_values[i];
        cep[i] = &ce[i];
    }
    ts.configs = cep;
    ts.n_configs = spec->config_count;
    Ringlog__TopicSpec *tsp = &ts;
    Ringlog__CreateTopicsRequest cr = RINGLOG__CREATE_TOPICS_REQUEST__INIT;
    cr.topics = &tsp;
    cr.n_topics = 1;
    cr.timeout_ms = (uint32_t)a->conf.request_timeout_ms;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_CREATE_TOPICS;
    req.create_topics = &cr;
    rc = call(a, &req, RINGLOG__RESPONSE__BODY_CREATE_TOPICS, &a->resp);
    if (rc)
        goto out;
    rc = RL_E_FRAME_MALFORMED;
    if (a->resp->create_topics->n_topics != 1) {
        rlc_set_err(a->err, sizeof(a->err), "broker's create-topics answer has no result");
        goto out;
    }
    rc = topic_result(a, a->resp->create_topics->topics[0], spec->name, "create");
out:
    free(splits);
    free(ce);
    free(cep);
    return rc;
}

int rl_admin_delete_topic(struct rl_admin *a, const char *name)
{
    reset(a);
    Ringlog__DeleteTopicsRequest dr = RINGLOG__DELETE_TOPICS_REQUEST__INIT;
    char *names[1] = {(char *)name};
    dr.names = names;
    dr.n_names = 1;
    dr.timeout_ms = (uint32_t)a->conf.request_timeout_ms;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_DELETE_TOPICS;
    req.delete_topics = &dr;
    int rc = call(a, &req, RINGLOG__RESPONSE__BODY_DELETE_TOPICS, &a->resp);
    if (rc)
        return rc;
    if (a->resp->delete_topics->n_topics != 1) {
        rlc_set_err(a->err, sizeof(a->err), "broker's delete-topics answer has no result");
        return RL_E_FRAME_MALFORMED;
    }
    return topic_result(a, a->resp->delete_topics->topics[0], name, "delete");
}

/* Builds rl_topic_info views over a Metadata answer (pointers into a->resp). */
static int build_infos(struct rl_admin *a, const Ringlog__MetadataResponse *mr)
{
    size_t np = 0, ns = 0;
    for (size_t i = 0; i < mr->n_topics; i++) {
        np += mr->topics[i]->n_partitions;
        ns += mr->topics[i]->n_split_keys;
    }
    a->infos = calloc(mr->n_topics + 1, sizeof(*a->infos));
    a->parts = calloc(np + 1, sizeof(*a->parts));
    a->splits = calloc(ns + 1, sizeof(*a->splits));
    a->split_lens = calloc(ns + 1, sizeof(*a->split_lens));
    if (!a->infos || !a->parts || !a->splits || !a->split_lens)
        return -ENOMEM;
    size_t pk = 0, sk = 0;
    for (size_t i = 0; i < mr->n_topics; i++) {
        const Ringlog__TopicMetadata *tm = mr->topics[i];
        struct rl_topic_info *ti = &a->infos[i];
        ti->name = tm->name;
        ti->partitioner = tm->partitioner == RINGLOG__PARTITIONER__PARTITIONER_RANGE
                              ? RL_PARTITIONER_RANGE
                              : RL_PARTITIONER_HASH;
        ti->partition_count = (int32_t)tm->n_partitions;
        ti->replication_factor = (int32_t)tm->replication_factor;
        ti->partitions = &a->parts[pk];
        for (size_t j = 0; j < tm->n_partitions; j++, pk++) {
            a->parts[pk].partition = (int32_t)tm->partitions[j]->partition;
            a->parts[pk].leader = tm->partitions[j]->leader;
            a->parts[pk].leader_epoch = tm->partitions[j]->leader_epoch;
            a->parts[pk].error = tm->partitions[j]->error_code;
        }
        ti->split_keys = &a->splits[sk];
        ti->split_key_lens = &a->split_lens[sk];
        ti->split_key_count = tm->n_split_keys;
        for (size_t j = 0; j < tm->n_split_keys; j++, sk++) {
            a->splits[sk] = tm->split_keys[j].data;
            a->split_lens[sk] = tm->split_keys[j].len;
        }
    }
    return 0;
}

static int metadata(struct rl_admin *a, const char *name)
{
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    char *names[1] = {(char *)name};
    if (name) {
        mr.topics = names;
        mr.n_topics = 1;
    } else {
        mr.all_topics = true;
    }
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    int rc = call(a, &req, RINGLOG__RESPONSE__BODY_METADATA, &a->resp);
    return rc ? rc : build_infos(a, a->resp->metadata);
}

int rl_admin_list_topics(struct rl_admin *a, const struct rl_topic_info **out, size_t *count)
{
    reset(a);
    int rc = metadata(a, NULL);
    if (rc)
        return rc;
    *out = a->infos;
    *count = a->resp->metadata->n_topics;
    return 0;
}

/* Fetches a topic's configs into a->cfg_resp and fills the info's config views. */
static int describe_configs(struct rl_admin *a, const char *name, struct rl_topic_info *ti)
{
    Ringlog__DescribeConfigsRequest dr = RINGLOG__DESCRIBE_CONFIGS_REQUEST__INIT;
    char *names[1] = {(char *)name};
    dr.topics = names;
    dr.n_topics = 1;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_DESCRIBE_CONFIGS;
    req.describe_configs = &dr;
    int rc = call(a, &req, RINGLOG__RESPONSE__BODY_DESCRIBE_CONFIGS, &a->cfg_resp);
    if (rc)
        return rc;
    const Ringlog__DescribeConfigsResponse *r = a->cfg_resp->describe_configs;
    if (r->n_topics != 1)
        return RL_E_FRAME_MALFORMED;
    const Ringlog__TopicConfigs *tc = r->topics[0];
    if (tc->error_code) {
        rlc_set_err(a->err, sizeof(a->err), "configs of topic \"%s\": %s", name,
                    tc->error_message && tc->error_message[0] ? tc->error_message
                                                              : rl_strerror(tc->error_code));
        return tc->error_code;
    }
    a->cfg_keys = calloc(tc->n_configs + 1, sizeof(char *));
    a->cfg_values = calloc(tc->n_configs + 1, sizeof(char *));
    a->cfg_default = calloc(tc->n_configs + 1, sizeof(int));
    if (!a->cfg_keys || !a->cfg_values || !a->cfg_default)
        return -ENOMEM;
    for (size_t i = 0; i < tc->n_configs; i++) {
        a->cfg_keys[i] = tc->configs[i]->key;
        a->cfg_values[i] = tc->configs[i]->value;
        a->cfg_default[i] = tc->configs[i]->is_default;
    }
    ti->config_keys = a->cfg_keys;
    ti->config_values = a->cfg_values;
    ti->config_is_default = a->cfg_default;
    ti->config_count = tc->n_configs;
    return 0;
}

int rl_admin_describe_topic(struct rl_admin *a, const char *name,
                            const struct rl_topic_info **out)
{
    reset(a);
    int rc = metadata(a, name);
    if (rc)
        return rc;
    const Ringlog__MetadataResponse *mr = a->resp->metadata;
    if (mr->n_topics != 1) {
        rlc_set_err(a->err, sizeof(a->err), "broker's metadata answer lacks topic \"%s\"",
                    name);
        return RL_E_FRAME_MALFORMED;
    }
    if (mr->topics[0]->error_code) {
        rc = mr->topics[0]->error_code;
        if (rc == RL_E_UNKNOWN_TOPIC)
            rlc_set_err(a->err, sizeof(a->err), "topic \"%s\" does not exist; create it first "
                        "(rl_admin_create_topic; from a shell: ringlog topic create %s), or "
                        "check the name", name, name);
        else
            rlc_set_err(a->err, sizeof(a->err), "topic \"%s\": %s", name,
                        rl_strerror(rc));
        return rc;
    }
    rc = describe_configs(a, name, &a->infos[0]);
    if (rc)
        return rc;
    *out = &a->infos[0];
    return 0;
}

int rl_admin_alter_configs(struct rl_admin *a, const char *topic, const char *const *keys,
                           const char *const *values, size_t count)
{
    reset(a);
    Ringlog__ConfigEntry *ce = calloc(count + 1, sizeof(*ce));
    Ringlog__ConfigEntry **cep = calloc(count + 1, sizeof(*cep));
    int rc = -ENOMEM;
    if (!ce || !cep)
        goto out;
    for (size_t i = 0; i < count; i++) {
        ringlog__config_entry__init(&ce[i]);
        ce[i].key = (char *)keys[i];
        ce[i].value = (char *)values[i];
        cep[i] = &ce[i];
    }
    Ringlog__TopicConfigs tc = RINGLOG__TOPIC_CONFIGS__INIT;
    tc.name = (char *)topic;
    tc.configs = cep;
    tc.n_configs = count;
    Ringlog__TopicConfigs *tcp = &tc;
    Ringlog__AlterConfigsRequest ar = RINGLOG__ALTER_CONFIGS_REQUEST__INIT;
    ar.topics = &tcp;
    ar.n_topics = 1;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_ALTER_CONFIGS;
    req.alter_configs = &ar;
    rc = call(a, &req, RINGLOG__RESPONSE__BODY_ALTER_CONFIGS, &a->resp);
    if (rc)
        goto out;
    rc = RL_E_FRAME_MALFORMED;
    if (a->resp->alter_configs->n_topics != 1)
        goto out;
    rc = topic_result(a, a->resp->alter_configs->topics[0], topic, "alter configs of");
out:
    free(ce);
    free(cep);
    return rc;
}

int rl_admin_list_offsets(struct rl_admin *a, const char *topic, int32_t partition,
                          int64_t timestamp, int64_t *offset)
{
    reset(a);
    struct rlc_list_offsets q;
    int rc = call(a, rlc_list_offsets_one(&q, topic, partition, timestamp),
                  RINGLOG__RESPONSE__BODY_LIST_OFFSETS, &a->resp);
    if (rc)
        return rc;
    const Ringlog__ListOffsetsPartitionResult *pr = rlc_list_offsets_result(a->resp);
    if (!pr) {
        rlc_set_err(a->err, sizeof(a->err), "broker's list-offsets answer has no result");
        return RL_E_FRAME_MALFORMED;
    }
    if (pr->error_code) {
        rlc_set_err(a->err, sizeof(a->err), "topic \"%s\" partition %d: %s", topic, partition,
                    pr->error_message && pr->error_message[0] ? pr->error_message
                                                              : rl_strerror(pr->error_code));
        return pr->error_code;
    }
    *offset = pr->offset;
    return 0;
}
