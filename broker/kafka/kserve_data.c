/*
 * kserve_data: Produce, Fetch, ListOffsets and InitProducerId over broker/delivery (produce.h,
 * fetch.h, idempotence.h). Records are not re-encoded either way: a Produce partition's
 * RecordBatch becomes a ringlog batch in place (kbatch_from_kafka: header rewritten, CRC-32C
 * checked, gzip/snappy/lz4 converted to zstd), then takes the native produce path, with its
 * validation and idempotence; a Fetch answers with the stored batches behind Kafka headers
 * (kbatch_serve), the records referenced where they lie.
 */
#include "broker/kafka/kserve_int.h"

#include <stdio.h>
#include <string.h>

#include "broker/delivery/delivery.h"
#include "broker/kafka/kbatch.h"
#include "broker/meta/meta.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"

/* --- shared by Produce and Fetch ------------------------------------------------------------- */

/* Partitions named by a request's topics (Produce and Fetch topics both carry n_partitions). */
#define KSERVE_PARTS_NAMED(q, total)                                                          \
    do {                                                                                      \
        (total) = 0;                                                                          \
        for (int32_t i_ = 0; i_ < (q)->n_topics; i_++)                                        \
            (total) += (size_t)(q)->topics[i_].n_partitions;                                  \
    } while (0)

/* Allocations both start with: the op (op_bytes) with `total` response slots (*slot), `total`
 * parts of part_bytes, and the answer's n_topics topics of topic_bytes. Returns the op, or NULL
 * when out of memory (then nothing else is to be used). */
static void *kserve_data_alloc(struct svc_req *r, size_t op_bytes, size_t total,
                               size_t part_bytes, void **parts, void ***slot, size_t n_topics,
                               size_t topic_bytes, void **topics)
{
    void *op = kserve_alloc(r, 1, op_bytes);
    *parts = kserve_alloc(r, total, part_bytes);
    *topics = kserve_alloc(r, n_topics, topic_bytes);
    *slot = kserve_alloc(r, total, sizeof(void *));
    return op && *parts && *topics && *slot ? op : NULL;
}

/* Names an answer's topic after the request's and makes room for its n partitions (Produce and
 * Fetch answer topics are laid out alike). Returns the name as a C string (in the arena), or
 * NULL when out of memory. */
static char *kserve_data_topic(struct svc_req *r, struct kstr name, int32_t n, size_t part_bytes,
                               struct kstr *name_out, int32_t *n_out, void **partitions)
{
    char *cname = kserve_cstr(r, name);
    *partitions = kserve_alloc(r, (size_t)n, part_bytes);
    if (!cname || !*partitions)
        return NULL;
    *name_out = kstr_of(cname);
    *n_out = n;
    return cname;
}

/* --- Produce ---------------------------------------------------------------------------------- */

struct kserve_produce {
    struct produce_request q;
    struct kmsg_produce_partition_resp **slot; /* per part: its response entry */
};

static void kserve_produce_done(struct svc_req *r, struct produce_request *q)
{
    struct kserve_req *kr = q->ctx;
    struct kserve_produce *op = kr->op;
    if (kr->body->produce.acks == 0)
        return kr->k->host->respond_none(r);
    for (size_t i = 0; i < q->n_parts; i++) {
        const struct produce_part *p = &q->parts[i];
        struct kmsg_produce_partition_resp *pr = op->slot[i];
        pr->error_code = kerr_from_rl(p->error_code, KERR_SCOPE_PARTITION);
        pr->base_offset = p->error_code ? -1 : p->base_offset;
        pr->log_append_time_ms = p->log_append_time_ms;
        pr->log_start_offset = p->error_code ? -1 : p->log_start_offset;
        if (p->error_code && p->error_message)
            RL_DEBUG("Kafka produce to %s-%u: %s", p->topic, p->partition, p->error_message);
    }
    kserve_answer(kr, r);
}

/* Translates one partition's batch; 0 with the part ready, or the Kafka error for it. */
static int16_t kserve_produce_part(struct kserve_req *kr, struct svc_req *r,
                                   struct kmsg_produce_partition *pp, struct produce_part *part)
{
    if (pp->records.len <= 0 || !pp->records.data)
        return kerr_invalid_batch(kr->hdr.api_version);
    uint8_t *out = NULL;
    size_t out_len = 0;
    struct kbatch_header h;
    char err[256];
    /* Produce v3-v8: the 4 bytes before the records are their length, already decoded. */
    int rc = kbatch_from_kafka(kr->k->bctx, pp->records.data, (size_t)pp->records.len, 4,
                               r->arena, &out, &out_len, &h, err, sizeof(err));
    if (rc == RL_E_FULL)
        return KERR_MESSAGE_TOO_LARGE;
    if (rc) {
        RL_DEBUG("Kafka produce from %s to %s-%u refused: %s", svc_req_peer(r), part->topic,
                 part->partition, err);
        return rc == RL_E_BATCH_TOO_LARGE || rc == RL_E_BATCH_DECOMPRESS_LIMIT
                   ? KERR_MESSAGE_TOO_LARGE : kerr_invalid_batch(kr->hdr.api_version);
    }
    part->data = out;
    part->data_len = (uint32_t)out_len;
    /* kbatch_from_kafka hashed these bytes a moment ago, after checking the client's CRC-32C
     * over them: validation need not hash them again (a pass over every produced byte). */
    part->checksum_known = true;
    return 0;
}

void kserve_produce(struct kserve_req *kr, struct svc_req *r)
{
    struct kmsg_produce_req *q = &kr->body->produce;
    struct kmsg_produce_resp *resp = &kr->resp.produce;
    size_t total;
    KSERVE_PARTS_NAMED(q, total);
    void *parts_m, **slot, *topics;
    struct kserve_produce *op = kserve_data_alloc(r, sizeof(*op), total,
                                                  sizeof(struct produce_part), &parts_m, &slot,
                                                  (size_t)q->n_topics, sizeof(*resp->topics),
                                                  &topics);
    if (!op)
        return kserve_oom(kr, r);
    struct produce_part *parts = parts_m;
    resp->topics = topics;
    op->slot = (struct kmsg_produce_partition_resp **)slot;
    kr->op = op;
    bool acks_ok = q->acks == 0 || q->acks == 1 || q->acks == -1;
    size_t n = 0;
    for (int32_t i = 0; i < q->n_topics; i++) {
        struct kmsg_produce_topic *t = &q->topics[i];
        struct kmsg_produce_topic_resp *tr = &resp->topics[i];
        void *prs;
        char *name = kserve_data_topic(r, t->name, t->n_partitions, sizeof(*tr->partitions),
                                       &tr->name, &tr->n_partitions, &prs);
        if (!name)
            return kserve_oom(kr, r);
        tr->partitions = prs;
        /* auto.create.topics.enable: a topic that does not exist is being created; its
         * partitions are answered with a retriable error until it is live. */
        int16_t topic_err = 0;
        if (kr->k->auto_cfg.enable && acks_ok && !meta_topic_find(kr->k->meta, name))
            topic_err = kserve_auto_create(kr, r, name, true);
        for (int32_t j = 0; j < t->n_partitions; j++) {
            struct kmsg_produce_partition_resp *pr = &tr->partitions[j];
            *pr = (struct kmsg_produce_partition_resp){
                .partition = t->partitions[j].partition, .base_offset = -1,
                .log_append_time_ms = -1, .log_start_offset = -1};
            struct produce_part *part = &parts[n];
            part->topic = name;
            part->partition = (uint32_t)t->partitions[j].partition;
            if (!acks_ok)
                pr->error_code = KERR_INVALID_REQUIRED_ACKS;
            else if (t->partitions[j].partition < 0)
                pr->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
            else if (topic_err)
                pr->error_code = topic_err;
            else
                pr->error_code = kserve_produce_part(kr, r, &t->partitions[j], part);
            if (pr->error_code == 0)
                op->slot[n++] = pr;
        }
    }
    resp->n_topics = q->n_topics;
    if (n == 0) {
        if (q->acks == 0)
            return kr->k->host->respond_none(r);
        return kserve_answer(kr, r);
    }
    op->q = (struct produce_request){.acks = q->acks, .n_parts = n, .parts = parts,
                                     .done = kserve_produce_done, .ctx = kr};
    produce_start(kr->k->dv->produce, r, &op->q);
}

/* --- Fetch ------------------------------------------------------------------------------------ */

struct kserve_fetch {
    struct fetch_request q;
    struct kmsg_fetch_partition_resp **slot; /* per part: its response entry */
};

/* The first Fetch version whose clients get a replicated log's Raft control entries as Kafka
 * control batches (kbatch_serve). A client that sends Fetch v4 to a broker offering 4-10 does
 * not negotiate versions: kafka-python 2.0.2, which always sends v4 and hands control records
 * to the application as records (it has no control-batch check; fixed upstream in 2025,
 * dpkp/kafka-python#2499), or sarama pinned to Kafka 0.11. Those keep the gap: control
 * batches left out and, when an answer would hold nothing else, skipped by the fetch service
 * (skip_control). Every client that negotiates (librdkafka 2.0.2 and so kcat and
 * confluent-kafka, kafkajs, Java) sends v10 and skips control batches while advancing past
 * them. docs/architecture.md (Kafka listener, Fetch) has the clients' behaviour in full. */
#define KSERVE_FETCH_CONTROL_MIN_VERSION 5

static bool kserve_fetch_with_control(const struct kserve_req *kr)
{
    return kr->hdr.api_version >= KSERVE_FETCH_CONTROL_MIN_VERSION;
}

static void kserve_fetch_done(struct svc_req *r, struct fetch_request *q)
{
    struct kserve_req *kr = q->ctx;
    struct kserve_fetch *op = kr->op;
    int allow_zstd = kr->hdr.api_version >= 10;
    for (size_t i = 0; i < q->n_parts; i++) {
        const struct fetch_part *p = &q->parts[i];
        struct kmsg_fetch_partition_resp *pr = op->slot[i];
        pr->error_code = kerr_from_rl(p->error_code, KERR_SCOPE_PARTITION);
        if (p->error_code)
            continue;
        pr->high_watermark = (int64_t)p->high_watermark;
        pr->last_stable_offset = (int64_t)p->high_watermark; /* no transactions */
        pr->log_start_offset = (int64_t)p->log_start_offset;
        if (p->data_len == 0 || !p->data)
            continue;
        int rc = kbatch_serve(kr->k->bctx, p->data, p->data_len, allow_zstd,
                              kserve_fetch_with_control(kr), r->arena, &pr->records);
        if (rc == RL_E_FULL)
            return kserve_oom(kr, r);
        if (rc < 0) {
            RL_ERROR("Kafka fetch of %s-%u at %llu: a stored batch cannot be served: %s",
                     p->topic, p->partition, (unsigned long long)p->offset, rl_strerror(rc));
            pr->records = (struct kmsg_records){0};
            pr->error_code = KERR_KAFKA_STORAGE_ERROR;
        }
    }
    kserve_answer(kr, r);
}

void kserve_fetch(struct kserve_req *kr, struct svc_req *r)
{
    struct kmsg_fetch_req *q = &kr->body->fetch;
    struct kmsg_fetch_resp *resp = &kr->resp.fetch;
    size_t total;
    KSERVE_PARTS_NAMED(q, total);
    void *parts_m, **slot, *topics;
    struct kserve_fetch *op = kserve_data_alloc(r, sizeof(*op), total, sizeof(struct fetch_part),
                                                &parts_m, &slot, (size_t)q->n_topics,
                                                sizeof(*resp->topics), &topics);
    if (!op)
        return kserve_oom(kr, r);
    struct fetch_part *parts = parts_m;
    resp->topics = topics;
    op->slot = (struct kmsg_fetch_partition_resp **)slot;
    kr->op = op;
    size_t n = 0;
    for (int32_t i = 0; i < q->n_topics; i++) {
        struct kmsg_fetch_topic *t = &q->topics[i];
        struct kmsg_fetch_topic_resp *tr = &resp->topics[i];
        void *prs;
        char *name = kserve_data_topic(r, t->name, t->n_partitions, sizeof(*tr->partitions),
                                       &tr->name, &tr->n_partitions, &prs);
        if (!name)
            return kserve_oom(kr, r);
        tr->partitions = prs;
        for (int32_t j = 0; j < t->n_partitions; j++) {
            const struct kmsg_fetch_partition *fp = &t->partitions[j];
            struct kmsg_fetch_partition_resp *pr = &tr->partitions[j];
            *pr = (struct kmsg_fetch_partition_resp){
                .partition = fp->partition, .high_watermark = -1, .last_stable_offset = -1,
                .log_start_offset = -1};
            if (fp->partition < 0 || fp->fetch_offset < 0) {
                pr->error_code = fp->partition < 0 ? KERR_UNKNOWN_TOPIC_OR_PARTITION
                                                   : KERR_OFFSET_OUT_OF_RANGE;
                continue;
            }
            parts[n] = (struct fetch_part){
                .topic = name, .partition = (uint32_t)fp->partition,
                .offset = (uint64_t)fp->fetch_offset,
                .max_bytes = fp->max_bytes > 0 ? (uint32_t)fp->max_bytes : 1};
            op->slot[n++] = pr;
        }
    }
    resp->n_topics = q->n_topics;
    if (n == 0)
        return kserve_answer(kr, r);
    op->q = (struct fetch_request){
        .min_bytes = q->min_bytes > 0 ? (uint32_t)q->min_bytes : 0,
        .max_bytes = q->max_bytes > 0 ? (uint32_t)q->max_bytes : 0,
        .max_wait_ms = q->max_wait_ms > 0 ? (uint32_t)q->max_wait_ms : 0,
        .n_parts = n, .parts = parts, .memory_only = true,
        .skip_control = !kserve_fetch_with_control(kr),
        .done = kserve_fetch_done, .ctx = kr};
    fetch_start(kr->k->dv->fetch, r, &op->q);
}

/* --- ListOffsets ------------------------------------------------------------------------------ */

void kserve_list_offsets(struct kserve_req *kr, struct svc_req *r)
{
    struct kmsg_list_offsets_req *q = &kr->body->list_offsets;
    struct kmsg_list_offsets_resp *resp = &kr->resp.list_offsets;
    resp->topics = kserve_alloc(r, (size_t)q->n_topics, sizeof(*resp->topics));
    if (!resp->topics)
        return kserve_oom(kr, r);
    for (int32_t i = 0; i < q->n_topics; i++) {
        struct kmsg_list_offsets_topic *t = &q->topics[i];
        struct kmsg_list_offsets_topic_resp *tr = &resp->topics[i];
        char *name = kserve_cstr(r, t->name);
        tr->partitions = kserve_alloc(r, (size_t)t->n_partitions, sizeof(*tr->partitions));
        if (!name || !tr->partitions)
            return kserve_oom(kr, r);
        tr->name = kstr_of(name);
        tr->n_partitions = t->n_partitions;
        for (int32_t j = 0; j < t->n_partitions; j++) {
            const struct kmsg_list_offsets_partition *lp = &t->partitions[j];
            struct kmsg_list_offsets_partition_resp *pr = &tr->partitions[j];
            *pr = (struct kmsg_list_offsets_partition_resp){
                .partition = lp->partition, .timestamp = -1, .offset = -1};
            if (lp->partition < 0) {
                pr->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            struct fetch_offset fo;
            fetch_list_offset(kr->k->dv->fetch, r, name, (uint32_t)lp->partition,
                              lp->timestamp, &fo);
            pr->error_code = kerr_from_rl(fo.error_code, KERR_SCOPE_PARTITION);
            pr->offset = fo.error_code ? -1 : fo.offset;
            pr->timestamp = fo.error_code || lp->timestamp < 0 ? -1 : fo.timestamp;
        }
    }
    resp->n_topics = q->n_topics;
    kserve_answer(kr, r);
}

/* --- InitProducerId --------------------------------------------------------------------------- */

struct kserve_init {
    struct idem_init in;
    struct kserve_req *kr;
    struct svc_req *r;
};

static void kserve_init_answer(struct svc_req *r)
{
    struct kserve_req *kr = r->state;
    struct kserve_init *op = kr->op;
    struct kmsg_init_producer_id_resp *resp = &kr->resp.init_producer_id;
    resp->error_code = kerr_from_rl(op->in.rc, KERR_SCOPE_PRODUCER);
    resp->producer_id = op->in.rc ? -1 : op->in.out_id;
    resp->producer_epoch = op->in.rc ? -1 : op->in.out_epoch;
    if (op->in.rc)
        RL_INFO("Kafka InitProducerId from %s: %s", svc_req_peer(r), op->in.msg);
    kserve_answer(kr, r);
}

static void kserve_init_done(struct idem_init *in)
{
    struct kserve_init *op = in->ctx;
    svc_req_op_ended(op->r);
}

void kserve_init_producer_id(struct kserve_req *kr, struct svc_req *r)
{
    struct kmsg_init_producer_id_req *q = &kr->body->init_producer_id;
    struct kserve_init *op = kserve_alloc(r, 1, sizeof(*op));
    if (!op)
        return kserve_oom(kr, r);
    if (q->transactional_id.len >= 0) {
        /* Transactions are not served: refuse the transactional producer, not the connection. */
        kr->resp.init_producer_id = (struct kmsg_init_producer_id_resp){
            .error_code = KERR_INVALID_REQUEST, .producer_id = -1, .producer_epoch = -1};
        return kserve_answer(kr, r);
    }
    kr->op = op;
    op->kr = kr;
    op->r = r;
    op->in.producer_id = -1;
    op->in.epoch = -1;
    op->in.done = kserve_init_done;
    op->in.ctx = op;
    r->state = kr;
    r->finish = kserve_init_answer;
    if (idem_init_producer(kr->k->dv->idem, &op->in, io_wall_ms(r->io)) == 1) {
        r->pending++; /* answered once a block of ids is recorded */
        return;
    }
    kserve_init_answer(r);
}
