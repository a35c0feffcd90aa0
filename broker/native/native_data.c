/*
 * native_data: Produce, Fetch and ListOffsets over the delivery services (broker/delivery/
 * produce.h, fetch.h). Produce's batches and Fetch's answers are raw batch bytes after the
 * envelope: the envelope lists their sizes (data_len), and the bytes go on the wire untouched.
 */
#include "broker/native/native_int.h"

#include <stdio.h>
#include <string.h>

#include "broker/delivery/delivery.h"
#include "common/err.h"

/* --- Produce ---------------------------------------------------------------------------------- */

struct native_produce_state {
    struct native *n;
    struct produce_request q;
    const Ringlog__ProduceRequest *pq;
    Ringlog__Response *resp;
};

static void native_produce_done(struct svc_req *r, struct produce_request *q)
{
    struct native_produce_state *st = q->ctx;
    const Ringlog__ProduceRequest *pq = st->pq;
    Ringlog__ProduceResponse *body = NATIVE_NEW(r, Ringlog__ProduceResponse,
                                                ringlog__produce_response__init);
    Ringlog__ProduceTopicResult **trs = native_alloc(r, (pq->n_topics + 1) * sizeof(*trs));
    if (!body || !trs)
        return native_oom(st->n, r);
    size_t k = 0;
    for (size_t i = 0; i < pq->n_topics; i++) {
        const Ringlog__ProduceTopic *pt = pq->topics[i];
        Ringlog__ProduceTopicResult *tr = NATIVE_NEW(r, Ringlog__ProduceTopicResult,
                                                     ringlog__produce_topic_result__init);
        Ringlog__ProducePartitionResult *prs =
            native_alloc(r, (pt->n_partitions + 1) * sizeof(*prs));
        Ringlog__ProducePartitionResult **pps =
            native_alloc(r, (pt->n_partitions + 1) * sizeof(*pps));
        if (!tr || !prs || !pps)
            return native_oom(st->n, r);
        tr->name = pt->name;
        for (size_t j = 0; j < pt->n_partitions; j++, k++) {
            const struct produce_part *p = &q->parts[k];
            ringlog__produce_partition_result__init(&prs[j]);
            prs[j].partition = p->partition;
            prs[j].error_code = p->error_code;
            if (p->error_message)
                prs[j].error_message = (char *)p->error_message;
            prs[j].base_offset = p->base_offset;
            prs[j].log_append_time_ms = p->log_append_time_ms;
            prs[j].log_start_offset = p->log_start_offset;
            pps[j] = &prs[j];
        }
        tr->n_partitions = pt->n_partitions;
        tr->partitions = pps;
        trs[i] = tr;
    }
    body->n_topics = pq->n_topics;
    body->topics = trs;
    st->resp->body_case = RINGLOG__RESPONSE__BODY_PRODUCE;
    st->resp->produce = body;
    st->n->host->respond(r, st->resp, NULL, NULL, NULL, 0);
}

void native_produce(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                    const uint8_t *data)
{
    const Ringlog__ProduceRequest *q = rq->produce;
    struct native_produce_state *st = native_alloc(r, sizeof(*st));
    size_t total = 0;
    for (size_t i = 0; i < q->n_topics; i++)
        total += q->topics[i]->n_partitions;
    struct produce_part *parts = native_alloc(r, (total + 1) * sizeof(*parts));
    if (!st || !parts || !(st->resp = n->host->response(r)))
        return native_oom(n, r);
    uint64_t pos = 0;
    size_t k = 0;
    for (size_t i = 0; i < q->n_topics; i++) {
        const Ringlog__ProduceTopic *pt = q->topics[i];
        for (size_t j = 0; j < pt->n_partitions; j++, k++) {
            parts[k].topic = pt->name;
            parts[k].partition = pt->partitions[j]->partition;
            parts[k].data = data + pos;
            parts[k].data_len = pt->partitions[j]->data_len;
            pos += pt->partitions[j]->data_len;
        }
    }
    st->n = n;
    st->pq = q;
    st->q = (struct produce_request){.acks = q->acks, .n_parts = total, .parts = parts,
                                     .done = native_produce_done, .ctx = st};
    produce_start(n->dv->produce, r, &st->q);
}

/* --- Fetch ------------------------------------------------------------------------------------ */

struct native_fetch_state {
    struct native *n;
    struct fetch_request q;
    const Ringlog__FetchRequest *fq;
    Ringlog__Response *resp;
};

/* The answer's data pieces: each part with bytes, in envelope order. */
static int native_fetch_data(struct svc_req *r, const struct fetch_request *q,
                             struct iovec **iov_out, int **fds_out, uint64_t **pos_out,
                             uint32_t *n_out)
{
    struct iovec *iov = native_alloc(r, (q->n_parts + 1) * sizeof(*iov));
    int *fds = native_alloc(r, (q->n_parts + 1) * sizeof(*fds));
    uint64_t *pos = native_alloc(r, (q->n_parts + 1) * sizeof(*pos));
    if (!iov || !fds || !pos)
        return -1;
    uint32_t cnt = 0;
    bool files = false;
    for (size_t i = 0; i < q->n_parts; i++) {
        const struct fetch_part *p = &q->parts[i];
        if (p->data_len == 0)
            continue;
        iov[cnt].iov_base = (void *)p->data;
        iov[cnt].iov_len = p->data_len;
        fds[cnt] = p->data ? -1 : p->fd;
        pos[cnt] = p->data ? 0 : p->file_position;
        files |= !p->data;
        cnt++;
    }
    *iov_out = iov;
    *fds_out = files ? fds : NULL;
    *pos_out = pos;
    *n_out = cnt;
    return 0;
}

static void native_fetch_done(struct svc_req *r, struct fetch_request *q)
{
    struct native_fetch_state *st = q->ctx;
    const Ringlog__FetchRequest *fq = st->fq;
    Ringlog__FetchResponse *body = NATIVE_NEW(r, Ringlog__FetchResponse,
                                              ringlog__fetch_response__init);
    Ringlog__FetchTopicResult **trs = native_alloc(r, (fq->n_topics + 1) * sizeof(*trs));
    if (!body || !trs)
        return native_oom(st->n, r);
    size_t k = 0;
    for (size_t i = 0; i < fq->n_topics; i++) {
        const Ringlog__FetchTopic *ft = fq->topics[i];
        Ringlog__FetchTopicResult *tr = NATIVE_NEW(r, Ringlog__FetchTopicResult,
                                                   ringlog__fetch_topic_result__init);
        Ringlog__FetchPartitionResult *prs = native_alloc(r, (ft->n_partitions + 1) *
                                                             sizeof(*prs));
        Ringlog__FetchPartitionResult **pps = native_alloc(r, (ft->n_partitions + 1) *
                                                              sizeof(*pps));
        if (!tr || !prs || !pps)
            return native_oom(st->n, r);
        tr->name = ft->name;
        for (size_t j = 0; j < ft->n_partitions; j++, k++) {
            const struct fetch_part *p = &q->parts[k];
            ringlog__fetch_partition_result__init(&prs[j]);
            prs[j].partition = p->partition;
            prs[j].error_code = p->error_code;
            if (p->error_message)
                prs[j].error_message = (char *)p->error_message;
            prs[j].high_watermark = p->high_watermark;
            prs[j].log_start_offset = p->log_start_offset;
            prs[j].log_end_offset = p->log_end_offset;
            prs[j].data_len = p->data_len;
            pps[j] = &prs[j];
        }
        tr->n_partitions = ft->n_partitions;
        tr->partitions = pps;
        trs[i] = tr;
    }
    body->n_topics = fq->n_topics;
    body->topics = trs;
    st->resp->body_case = RINGLOG__RESPONSE__BODY_FETCH;
    st->resp->fetch = body;
    struct iovec *iov;
    int *fds;
    uint64_t *pos;
    uint32_t cnt;
    if (native_fetch_data(r, q, &iov, &fds, &pos, &cnt))
        return native_oom(st->n, r);
    st->n->host->respond(r, st->resp, iov, fds, pos, cnt);
}

void native_fetch(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                  const uint8_t *data)
{
    (void)data;
    const Ringlog__FetchRequest *q = rq->fetch;
    struct native_fetch_state *st = native_alloc(r, sizeof(*st));
    size_t total = 0;
    for (size_t i = 0; i < q->n_topics; i++)
        total += q->topics[i]->n_partitions;
    struct fetch_part *parts = native_alloc(r, (total + 1) * sizeof(*parts));
    if (!st || !parts || !(st->resp = n->host->response(r)))
        return native_oom(n, r);
    size_t k = 0;
    for (size_t i = 0; i < q->n_topics; i++) {
        const Ringlog__FetchTopic *ft = q->topics[i];
        for (size_t j = 0; j < ft->n_partitions; j++, k++) {
            parts[k].topic = ft->name;
            parts[k].partition = ft->partitions[j]->partition;
            parts[k].offset = ft->partitions[j]->fetch_offset;
            parts[k].max_bytes = ft->partitions[j]->max_bytes;
        }
    }
    st->n = n;
    st->fq = q;
    st->q = (struct fetch_request){.min_bytes = q->min_bytes, .max_bytes = q->max_bytes,
                                   .max_wait_ms = q->max_wait_ms, .n_parts = total,
                                   .parts = parts, .done = native_fetch_done, .ctx = st};
    fetch_start(n->dv->fetch, r, &st->q);
}

/* --- ListOffsets ------------------------------------------------------------------------------ */

void native_list_offsets(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                         const uint8_t *data)
{
    (void)data;
    const Ringlog__ListOffsetsRequest *q = rq->list_offsets;
    Ringlog__Response *resp = n->host->response(r);
    Ringlog__ListOffsetsResponse *body =
        NATIVE_NEW(r, Ringlog__ListOffsetsResponse, ringlog__list_offsets_response__init);
    Ringlog__ListOffsetsTopicResult **trs = native_alloc(r, (q->n_topics + 1) * sizeof(*trs));
    if (!resp || !body || !trs)
        return native_oom(n, r);
    for (size_t i = 0; i < q->n_topics; i++) {
        const Ringlog__ListOffsetsTopic *lt = q->topics[i];
        Ringlog__ListOffsetsTopicResult *tr = NATIVE_NEW(r, Ringlog__ListOffsetsTopicResult,
                                                         ringlog__list_offsets_topic_result__init);
        Ringlog__ListOffsetsPartitionResult *prs =
            native_alloc(r, (lt->n_partitions + 1) * sizeof(*prs));
        Ringlog__ListOffsetsPartitionResult **pps =
            native_alloc(r, (lt->n_partitions + 1) * sizeof(*pps));
        if (!tr || !prs || !pps)
            return native_oom(n, r);
        tr->name = lt->name;
        for (size_t k = 0; k < lt->n_partitions; k++) {
            struct fetch_offset fo;
            const Ringlog__ListOffsetsPartition *lp = lt->partitions[k];
            fetch_list_offset(n->dv->fetch, r, lt->name, lp->partition, lp->timestamp, &fo);
            ringlog__list_offsets_partition_result__init(&prs[k]);
            prs[k].partition = lp->partition;
            prs[k].offset = fo.offset;
            prs[k].timestamp = fo.timestamp;
            prs[k].error_code = fo.error_code;
            if (fo.error_message)
                prs[k].error_message = (char *)fo.error_message;
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
    n->host->respond(r, resp, NULL, NULL, NULL, 0);
}
