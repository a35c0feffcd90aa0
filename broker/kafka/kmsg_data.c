/*
 * kmsg_data: the data-path messages, Produce (v3-v7), Fetch (v4-v10) and ListOffsets (v1-v2).
 * Field order and version deltas follow Kafka's message schemas; each function serves both
 * directions (kmsg_internal.h).
 */
#include "broker/kafka/kmsg_internal.h"

/* --- Produce ----------------------------------------------------------------------------------- */

void kmsg_produce_req_io(struct kio *io, void *body)
{
    struct kmsg_produce_req *m = body;
    kio_nstr(io, "transactional_id", &m->transactional_id);
    kio_i16(io, "acks", &m->acks);
    kio_i32(io, "timeout_ms", &m->timeout_ms);
    int32_t nt = KIO_ARRAY(io, "topics", m->topics, m->n_topics, 6, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++) {
        struct kmsg_produce_topic *t = &m->topics[i];
        kio_str(io, "topics[].name", &t->name);
        int32_t np = KIO_ARRAY(io, "topics[].partitions", t->partitions, t->n_partitions, 8, 0);
        for (int32_t j = 0; j < np && !kio_failed(io); j++) {
            struct kmsg_produce_partition *p = &t->partitions[j];
            kio_i32(io, "partitions[].index", &p->partition);
            kio_records(io, "partitions[].records", &p->records);
            kio_tags(io, "partitions[] tags");
        }
        kio_tags(io, "topics[] tags");
    }
    kio_tags(io, "tags");
}

void kmsg_produce_resp_io(struct kio *io, void *body)
{
    struct kmsg_produce_resp *m = body;
    int32_t nt = KIO_ARRAY(io, "responses", m->topics, m->n_topics, 6, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++) {
        struct kmsg_produce_topic_resp *t = &m->topics[i];
        kio_str(io, "responses[].name", &t->name);
        int32_t np = KIO_ARRAY(io, "responses[].partitions", t->partitions, t->n_partitions,
                               22, 0);
        for (int32_t j = 0; j < np && !kio_failed(io); j++) {
            struct kmsg_produce_partition_resp *p = &t->partitions[j];
            kio_i32(io, "partitions[].index", &p->partition);
            kio_i16(io, "partitions[].error_code", &p->error_code);
            kio_i64(io, "partitions[].base_offset", &p->base_offset);
            kio_i64_since(io, 2, "partitions[].log_append_time_ms", &p->log_append_time_ms, -1);
            kio_i64_since(io, 5, "partitions[].log_start_offset", &p->log_start_offset, -1);
            kio_tags(io, "partitions[] tags");
        }
        kio_tags(io, "responses[] tags");
    }
    kio_i32_since(io, 1, "throttle_time_ms", &m->throttle_ms, 0);
    kio_tags(io, "tags");
}

/* --- Fetch ------------------------------------------------------------------------------------- */

static void fetch_topic_io(struct kio *io, struct kmsg_fetch_topic *t)
{
    kio_str(io, "topics[].topic", &t->name);
    int32_t np = KIO_ARRAY(io, "topics[].partitions", t->partitions, t->n_partitions, 16, 0);
    for (int32_t j = 0; j < np && !kio_failed(io); j++) {
        struct kmsg_fetch_partition *p = &t->partitions[j];
        kio_i32(io, "partitions[].partition", &p->partition);
        kio_i32_since(io, 9, "partitions[].current_leader_epoch", &p->current_leader_epoch, -1);
        kio_i64(io, "partitions[].fetch_offset", &p->fetch_offset);
        kio_i64_since(io, 5, "partitions[].log_start_offset", &p->log_start_offset, -1);
        kio_i32(io, "partitions[].partition_max_bytes", &p->max_bytes);
        kio_tags(io, "partitions[] tags");
    }
    kio_tags(io, "topics[] tags");
}

void kmsg_fetch_req_io(struct kio *io, void *body)
{
    struct kmsg_fetch_req *m = body;
    kio_i32(io, "replica_id", &m->replica_id);
    kio_i32(io, "max_wait_ms", &m->max_wait_ms);
    kio_i32(io, "min_bytes", &m->min_bytes);
    kio_i32_since(io, 3, "max_bytes", &m->max_bytes, INT32_MAX);
    kio_i8_since(io, 4, "isolation_level", &m->isolation_level, 0);
    kio_i32_since(io, 7, "session_id", &m->session_id, 0);
    kio_i32_since(io, 7, "session_epoch", &m->session_epoch, -1);
    int32_t nt = KIO_ARRAY(io, "topics", m->topics, m->n_topics, 6, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++)
        fetch_topic_io(io, &m->topics[i]);
    if (io->version >= 7) {
        int32_t nf = KIO_ARRAY(io, "forgotten_topics_data", m->forgotten, m->n_forgotten, 6, 0);
        for (int32_t i = 0; i < nf && !kio_failed(io); i++) {
            struct kmsg_forgotten_topic *f = &m->forgotten[i];
            kio_str(io, "forgotten_topics_data[].topic", &f->name);
            kio_i32_array(io, "forgotten_topics_data[].partitions", &f->partitions,
                          &f->n_partitions, 0);
            kio_tags(io, "forgotten_topics_data[] tags");
        }
    } else if (io->decoding) {
        m->forgotten = NULL;
        m->n_forgotten = 0;
    }
    kio_tags(io, "tags");
}

static void fetch_partition_resp_io(struct kio *io, struct kmsg_fetch_partition_resp *p)
{
    kio_i32(io, "partitions[].partition_index", &p->partition);
    kio_i16(io, "partitions[].error_code", &p->error_code);
    kio_i64(io, "partitions[].high_watermark", &p->high_watermark);
    kio_i64_since(io, 4, "partitions[].last_stable_offset", &p->last_stable_offset, -1);
    kio_i64_since(io, 5, "partitions[].log_start_offset", &p->log_start_offset, -1);
    if (io->version >= 4) {
        int32_t na = KIO_ARRAY(io, "partitions[].aborted_transactions", p->aborted, p->n_aborted,
                               16, 1);
        for (int32_t k = 0; k < na && !kio_failed(io); k++) {
            kio_i64(io, "aborted_transactions[].producer_id", &p->aborted[k].producer_id);
            kio_i64(io, "aborted_transactions[].first_offset", &p->aborted[k].first_offset);
            kio_tags(io, "aborted_transactions[] tags");
        }
    } else if (io->decoding) {
        p->aborted = NULL;
        p->n_aborted = -1;
    }
    kio_records(io, "partitions[].records", &p->records);
    kio_tags(io, "partitions[] tags");
}

void kmsg_fetch_resp_io(struct kio *io, void *body)
{
    struct kmsg_fetch_resp *m = body;
    kio_i32_since(io, 1, "throttle_time_ms", &m->throttle_ms, 0);
    if (io->version >= 7) {
        kio_i16(io, "error_code", &m->error_code);
        kio_i32(io, "session_id", &m->session_id);
    } else if (io->decoding) {
        m->error_code = 0;
        m->session_id = 0;
    }
    int32_t nt = KIO_ARRAY(io, "responses", m->topics, m->n_topics, 6, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++) {
        struct kmsg_fetch_topic_resp *t = &m->topics[i];
        kio_str(io, "responses[].topic", &t->name);
        int32_t np = KIO_ARRAY(io, "responses[].partitions", t->partitions, t->n_partitions,
                               26, 0);
        for (int32_t j = 0; j < np && !kio_failed(io); j++)
            fetch_partition_resp_io(io, &t->partitions[j]);
        kio_tags(io, "responses[] tags");
    }
    kio_tags(io, "tags");
}

/* --- ListOffsets ------------------------------------------------------------------------------- */

void kmsg_list_offsets_req_io(struct kio *io, void *body)
{
    struct kmsg_list_offsets_req *m = body;
    kio_i32(io, "replica_id", &m->replica_id);
    kio_i8_since(io, 2, "isolation_level", &m->isolation_level, 0);
    int32_t nt = KIO_ARRAY(io, "topics", m->topics, m->n_topics, 6, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++) {
        struct kmsg_list_offsets_topic *t = &m->topics[i];
        kio_str(io, "topics[].name", &t->name);
        int32_t np = KIO_ARRAY(io, "topics[].partitions", t->partitions, t->n_partitions, 12, 0);
        for (int32_t j = 0; j < np && !kio_failed(io); j++) {
            kio_i32(io, "partitions[].partition_index", &t->partitions[j].partition);
            kio_i64(io, "partitions[].timestamp", &t->partitions[j].timestamp);
            kio_tags(io, "partitions[] tags");
        }
        kio_tags(io, "topics[] tags");
    }
    kio_tags(io, "tags");
}

void kmsg_list_offsets_resp_io(struct kio *io, void *body)
{
    struct kmsg_list_offsets_resp *m = body;
    kio_i32_since(io, 2, "throttle_time_ms", &m->throttle_ms, 0);
    int32_t nt = KIO_ARRAY(io, "topics", m->topics, m->n_topics, 6, 0);
    for (int32_t i = 0; i < nt && !kio_failed(io); i++) {
        struct kmsg_list_offsets_topic_resp *t = &m->topics[i];
        kio_str(io, "topics[].name", &t->name);
        int32_t np = KIO_ARRAY(io, "topics[].partitions", t->partitions, t->n_partitions, 22, 0);
        for (int32_t j = 0; j < np && !kio_failed(io); j++) {
            struct kmsg_list_offsets_partition_resp *p = &t->partitions[j];
            kio_i32(io, "partitions[].partition_index", &p->partition);
            kio_i16(io, "partitions[].error_code", &p->error_code);
            kio_i64(io, "partitions[].timestamp", &p->timestamp);
            kio_i64(io, "partitions[].offset", &p->offset);
            kio_tags(io, "partitions[] tags");
        }
        kio_tags(io, "topics[] tags");
    }
    kio_tags(io, "tags");
}
