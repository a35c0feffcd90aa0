/*
 * kmsg_meta: ApiVersions (v0-v3), Metadata (v0-v4), FindCoordinator (v0), InitProducerId
 * (v0-v1), CreateTopics (v2-v4), DeleteTopics (v1-v3) and DescribeConfigs (v1-v2). Field order
 * and version deltas follow Kafka's message schemas; each function serves both directions.
 */
#include "broker/kafka/kmsg_internal.h"

/* --- ApiVersions ------------------------------------------------------------------------------- */

void kmsg_api_versions_req_io(struct kio *io, void *body)
{
    struct kmsg_api_versions_req *m = body;
    if (io->version >= 3) {
        kio_str(io, "client_software_name", &m->client_software_name);
        kio_str(io, "client_software_version", &m->client_software_version);
    } else if (io->decoding) {
        m->client_software_name = KSTR_NULL;
        m->client_software_version = KSTR_NULL;
    }
    kio_tags(io, "tags");
}

void kmsg_api_versions_resp_io(struct kio *io, void *body)
{
    struct kmsg_api_versions_resp *m = body;
    kio_i16(io, "error_code", &m->error_code);
    int32_t n = KIO_ARRAY(io, "api_keys", m->apis, m->n_apis, 6, 0);
    for (int32_t i = 0; i < n && !kio_failed(io); i++) {
        kio_i16(io, "api_keys[].api_key", &m->apis[i].api_key);
        kio_i16(io, "api_keys[].min_version", &m->apis[i].min_version);
        kio_i16(io, "api_keys[].max_version", &m->apis[i].max_version);
        kio_tags(io, "api_keys[] tags");
    }
    kio_i32_since(io, 1, "throttle_time_ms", &m->throttle_ms, 0);
    kio_tags(io, "tags");
}

/* --- Metadata ---------------------------------------------------------------------------------- */

void kmsg_metadata_req_io(struct kio *io, void *body)
{
    struct kmsg_metadata_req *m = body;
    int nullable = io->version >= 1;
    if (io->decoding) {
        kio_str_array(io, "topics", &m->topics, &m->n_topics, nullable);
        m->all_topics = nullable ? m->n_topics < 0 : m->n_topics == 0;
    } else {
        int32_t n = m->all_topics ? (nullable ? -1 : 0) : (m->n_topics < 0 ? 0 : m->n_topics);
        kio_str_array(io, "topics", &m->topics, &n, nullable);
    }
    kio_bool_since(io, 4, "allow_auto_topic_creation", &m->allow_auto_topic_creation, 1);
    kio_tags(io, "tags");
}

static void metadata_topic_io(struct kio *io, struct kmsg_metadata_topic *t)
{
    kio_i16(io, "topics[].error_code", &t->error_code);
    kio_str(io, "topics[].name", &t->name);
    kio_bool_since(io, 1, "topics[].is_internal", &t->is_internal, 0);
    int32_t np = KIO_ARRAY(io, "topics[].partitions", t->partitions, t->n_partitions, 18, 0);
    for (int32_t j = 0; j < np && !kio_failed(io); j++) {
        struct kmsg_metadata_partition *p = &t->partitions[j];
        kio_i16(io, "partitions[].error_code", &p->error_code);
        kio_i32(io, "partitions[].partition_index", &p->partition);
        kio_i32(io, "partitions[].leader_id", &p->leader);
        kio_i32_array(io, "partitions[].replica_nodes", &p->replicas, &p->n_replicas, 0);
        kio_i32_array(io, "partitions[].isr_nodes", &p->isr, &p->n_isr, 0);
        kio_tags(io, "partitions[] tags");
    }
    kio_tags(io, "topics[] tags");
}

void kmsg_metadata_resp_io(struct kio *io, void *body)
{
    struct kmsg_metadata_resp *m = body;
    kio_i32_since(io, 3, "throttle_time_ms", &m->throttle_ms, 0);
    int32_t nb = KIO_ARRAY(io, "brokers", m->brokers, m->n_brokers, 10, 0);
    for (int32_t i = 0; i < nb && !kio_failed(io); i++) {
        struct kmsg_metadata_broker *b = &m->brokers[i];
        kio_i32(io, "brokers[].node_id", &b->node_id);
        kio_str(io, "brokers[].host", &b->host);
        kio_i32(io, "brokers[].port", &b->port);
        kio_nstr_since(io, 1, "brokers[].rack", &b->rack);
        kio_tags(io, "brokers[] tags");
    }
    kio_nstr_since(io, 2, "cluster_id", &m->cluster_id);
    kio_i32_since(io, 1, "controller_id", &m->controller_id, -1);
    int32_t nt = KIO_ARRAY(io, "topics", m->topics, m->n_topics, 8, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++)
        metadata_topic_io(io, &m->topics[i]);
    kio_tags(io, "tags");
}

/* --- FindCoordinator --------------------------------------------------------------------------- */

void kmsg_find_coordinator_req_io(struct kio *io, void *body)
{
    struct kmsg_find_coordinator_req *m = body;
    kio_str(io, "key", &m->key);
    kio_i8_since(io, 1, "key_type", &m->key_type, 0);
    kio_tags(io, "tags");
}

void kmsg_find_coordinator_resp_io(struct kio *io, void *body)
{
    struct kmsg_find_coordinator_resp *m = body;
    kio_i32_since(io, 1, "throttle_time_ms", &m->throttle_ms, 0);
    kio_i16(io, "error_code", &m->error_code);
    kio_nstr_since(io, 1, "error_message", &m->error_message);
    kio_i32(io, "node_id", &m->node_id);
    kio_str(io, "host", &m->host);
    kio_i32(io, "port", &m->port);
    kio_tags(io, "tags");
}

/* --- InitProducerId ---------------------------------------------------------------------------- */

void kmsg_init_producer_id_req_io(struct kio *io, void *body)
{
    struct kmsg_init_producer_id_req *m = body;
    kio_nstr(io, "transactional_id", &m->transactional_id);
    kio_i32(io, "transaction_timeout_ms", &m->transaction_timeout_ms);
    kio_tags(io, "tags");
}

void kmsg_init_producer_id_resp_io(struct kio *io, void *body)
{
    struct kmsg_init_producer_id_resp *m = body;
    kio_i32(io, "throttle_time_ms", &m->throttle_ms);
    kio_i16(io, "error_code", &m->error_code);
    kio_i64(io, "producer_id", &m->producer_id);
    kio_i16(io, "producer_epoch", &m->producer_epoch);
    kio_tags(io, "tags");
}

/* --- CreateTopics / DeleteTopics --------------------------------------------------------------- */

static void create_topic_io(struct kio *io, struct kmsg_create_topic *t)
{
    kio_str(io, "topics[].name", &t->name);
    kio_i32(io, "topics[].num_partitions", &t->num_partitions);
    kio_i16(io, "topics[].replication_factor", &t->replication_factor);
    int32_t na = KIO_ARRAY(io, "topics[].assignments", t->assignments, t->n_assignments, 8, 0);
    for (int32_t j = 0; j < na && !kio_failed(io); j++) {
        struct kmsg_create_topic_assignment *a = &t->assignments[j];
        kio_i32(io, "assignments[].partition_index", &a->partition);
        kio_i32_array(io, "assignments[].broker_ids", &a->broker_ids, &a->n_broker_ids, 0);
        kio_tags(io, "assignments[] tags");
    }
    int32_t nc = KIO_ARRAY(io, "topics[].configs", t->configs, t->n_configs, 4, 0);
    for (int32_t j = 0; j < nc && !kio_failed(io); j++) {
        kio_str(io, "configs[].name", &t->configs[j].name);
        kio_nstr(io, "configs[].value", &t->configs[j].value);
        kio_tags(io, "configs[] tags");
    }
    kio_tags(io, "topics[] tags");
}

void kmsg_create_topics_req_io(struct kio *io, void *body)
{
    struct kmsg_create_topics_req *m = body;
    int32_t nt = KIO_ARRAY(io, "topics", m->topics, m->n_topics, 16, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++)
        create_topic_io(io, &m->topics[i]);
    kio_i32(io, "timeout_ms", &m->timeout_ms);
    kio_bool_since(io, 1, "validate_only", &m->validate_only, 0);
    kio_tags(io, "tags");
}

void kmsg_create_topics_resp_io(struct kio *io, void *body)
{
    struct kmsg_create_topics_resp *m = body;
    kio_i32_since(io, 2, "throttle_time_ms", &m->throttle_ms, 0);
    int32_t nt = KIO_ARRAY(io, "topics", m->topics, m->n_topics, 4, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++) {
        kio_str(io, "topics[].name", &m->topics[i].name);
        kio_i16(io, "topics[].error_code", &m->topics[i].error_code);
        kio_nstr_since(io, 1, "topics[].error_message", &m->topics[i].error_message);
        kio_tags(io, "topics[] tags");
    }
    kio_tags(io, "tags");
}

void kmsg_delete_topics_req_io(struct kio *io, void *body)
{
    struct kmsg_delete_topics_req *m = body;
    kio_str_array(io, "topic_names", &m->topic_names, &m->n_topic_names, 0);
    kio_i32(io, "timeout_ms", &m->timeout_ms);
    kio_tags(io, "tags");
}

void kmsg_delete_topics_resp_io(struct kio *io, void *body)
{
    struct kmsg_delete_topics_resp *m = body;
    kio_i32_since(io, 1, "throttle_time_ms", &m->throttle_ms, 0);
    int32_t nt = KIO_ARRAY(io, "responses", m->topics, m->n_topics, 4, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++) {
        kio_str(io, "responses[].name", &m->topics[i].name);
        kio_i16(io, "responses[].error_code", &m->topics[i].error_code);
        if (io->decoding)
            m->topics[i].error_message = KSTR_NULL;
        kio_tags(io, "responses[] tags");
    }
    kio_tags(io, "tags");
}

/* --- DescribeConfigs --------------------------------------------------------------------------- */

void kmsg_describe_configs_req_io(struct kio *io, void *body)
{
    struct kmsg_describe_configs_req *m = body;
    int32_t nr = KIO_ARRAY(io, "resources", m->resources, m->n_resources, 7, 0);
    for (int32_t i = 0; i < nr && !kio_failed(io); i++) {
        struct kmsg_describe_configs_resource *r = &m->resources[i];
        kio_i8(io, "resources[].resource_type", &r->resource_type);
        kio_str(io, "resources[].resource_name", &r->resource_name);
        kio_str_array(io, "resources[].configuration_keys", &r->config_names,
                      &r->n_config_names, 1);
        kio_tags(io, "resources[] tags");
    }
    kio_bool_since(io, 1, "include_synonyms", &m->include_synonyms, 0);
    kio_tags(io, "tags");
}

static void config_desc_io(struct kio *io, struct kmsg_config_desc *c)
{
    kio_str(io, "configs[].name", &c->name);
    kio_nstr(io, "configs[].value", &c->value);
    kio_bool(io, "configs[].read_only", &c->read_only);
    if (io->version == 0) {
        kio_bool(io, "configs[].is_default", &c->is_default);
        if (io->decoding)
            c->config_source = c->is_default ? KMSG_CONFIG_SOURCE_DEFAULT
                                             : KMSG_CONFIG_SOURCE_UNKNOWN;
    } else {
        kio_i8(io, "configs[].config_source", &c->config_source);
        if (io->decoding)
            c->is_default = c->config_source == KMSG_CONFIG_SOURCE_DEFAULT;
    }
    kio_bool(io, "configs[].is_sensitive", &c->is_sensitive);
    if (io->version >= 1) {
        int32_t ns = KIO_ARRAY(io, "configs[].synonyms", c->synonyms, c->n_synonyms, 5, 0);
        for (int32_t k = 0; k < ns && !kio_failed(io); k++) {
            kio_str(io, "synonyms[].name", &c->synonyms[k].name);
            kio_nstr(io, "synonyms[].value", &c->synonyms[k].value);
            kio_i8(io, "synonyms[].source", &c->synonyms[k].source);
            kio_tags(io, "synonyms[] tags");
        }
    } else if (io->decoding) {
        c->synonyms = NULL;
        c->n_synonyms = 0;
    }
    kio_tags(io, "configs[] tags");
}

void kmsg_describe_configs_resp_io(struct kio *io, void *body)
{
    struct kmsg_describe_configs_resp *m = body;
    kio_i32(io, "throttle_time_ms", &m->throttle_ms);
    int32_t nr = KIO_ARRAY(io, "results", m->results, m->n_results, 11, 0);
    for (int32_t i = 0; i < nr && !kio_failed(io); i++) {
        struct kmsg_describe_configs_result *r = &m->results[i];
        kio_i16(io, "results[].error_code", &r->error_code);
        kio_nstr(io, "results[].error_message", &r->error_message);
        kio_i8(io, "results[].resource_type", &r->resource_type);
        kio_str(io, "results[].resource_name", &r->resource_name);
        int32_t nc = KIO_ARRAY(io, "results[].configs", r->configs, r->n_configs, 9, 0);
        for (int32_t j = 0; j < nc && !kio_failed(io); j++)
            config_desc_io(io, &r->configs[j]);
        kio_tags(io, "results[] tags");
    }
    kio_tags(io, "tags");
}
