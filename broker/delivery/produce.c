/*
 * produce: see produce.h. All state lives in the request's arena; nothing is allocated per
 * record (a deferred batch's copy is the partition's, one per batch).
 */
#include "broker/delivery/produce.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/delivery/idempotence.h"
#include "broker/delivery/offsets.h"
#include "broker/meta/meta.h"
#include "broker/partition/partition.h"
#include "broker/svc/svc.h"
#include "common/arena.h"
#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"

struct produce {
    struct meta *meta;
    struct idem *idem;
    struct produce_stats st;
};

/* One batch of a request on its way to the log. */
struct produce_append {
    struct partition_append pa;
    struct svc_req *r;
    struct partition *p;
    struct produce_part *res;
    bool first;              /* first batch of its partition in the request: sets base_offset */
    struct partition_waiter dup_wait; /* a duplicate waiting for its original to be visible */
    uint64_t dup_until;
};

struct produce_state {
    struct produce *ps;
    struct produce_request *q;
    bool answered;
};

int produce_create(struct meta *meta, struct idem *idem, struct produce **out)
{
    struct produce *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return -ENOMEM;
    ps->meta = meta;
    ps->idem = idem;
    *out = ps;
    return 0;
}

void produce_destroy(struct produce *ps)
{
    free(ps);
}

void produce_get_stats(const struct produce *ps, struct produce_stats *out)
{
    *out = ps->st;
}

static void produce_answer(struct svc_req *r)
{
    struct produce_state *st = r->state;
    if (st->answered)
        return;
    st->answered = true;
    st->q->done(r, st->q);
}

/* One async op of r is over (an append or a duplicate's wait): the answer is ready when it
 * was the last (acks 0 answered already). */
static void produce_op_over(struct svc_req *r)
{
    struct produce_state *st = r->state;
    RL_ASSERT(r->pending > 0);
    r->pending--;
    if (r->pending == 0 && st->q->acks != 0)
        svc_req_complete(r);
}

static void produce_fail(struct produce_append *a, int rc)
{
    if (a->res->error_code == 0) {
        a->res->error_code = rc;
        a->res->error_message = rl_strerror(rc);
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
static int produce_check(struct svc_req *r, const struct meta_topic *t, struct produce_part *res,
                         uint32_t *count)
{
    const uint8_t *d = res->data;
    uint32_t len = res->data_len, pos = 0, n = 0;
    if (len == 0) {
        res->error_code = RL_E_INVALID_REQUEST;
        res->error_message = "partition carries no batches (data_len 0)";
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
                r->arena, "batch %u at byte %u of %s-%u's data: %s%s", n, pos, t->name,
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
static int produce_idem_check(struct produce *ps, struct produce_append *a,
                              const struct batch_header *h)
{
    struct svc_req *r = a->r;
    struct produce_state *st = r->state;
    struct pstate_verdict v;
    char msg[320];
    int rc = idem_check(ps->idem, a->p, h, io_wall_ms(r->io), &v, msg, sizeof(msg));
    if (rc == 0)
        return 0;
    if (rc != RL_E_DUPLICATE_SEQUENCE) {
        a->res->error_code = rc;
        a->res->error_message = arena_strdup(r->arena, msg);
        if (!a->res->error_message)
            a->res->error_message = rl_strerror(rc);
        return rc;
    }
    if (a->first)
        a->res->base_offset = v.dup_base_offset;
    if (st->q->acks == 0 || (uint64_t)v.dup_last_offset < partition_visible_end(a->p))
        return 1;
    /* The original is still being written: answer once it is durable, like the original. */
    ps->st.duplicate_waits++;
    a->dup_until = (uint64_t)v.dup_last_offset + 1;
    a->dup_wait.wake = produce_dup_wake;
    a->dup_wait.ctx = a;
    partition_wait(a->p, &a->dup_wait);
    partition_pin(a->p);
    r->pending++;
    return 1;
}

/* Looks the partition up and checks what can be checked before appending. Returns it, or
 * NULL with the result's error set. */
static struct partition *produce_resolve(struct produce *ps, struct svc_req *r,
                                         struct produce_part *res, const struct meta_topic **t)
{
    int rc;
    const char *topic = res->topic;
    struct partition *p = meta_partition(ps->meta, topic, res->partition, &rc);
    if (!p) {
        res->error_code = rc;
        res->error_message = rc == RL_E_UNKNOWN_TOPIC
            ? arena_printf(r->arena, "topic \"%s\" does not exist; create it with: ringlog "
                           "topic create %s --partitions N", topic, topic)
            : arena_printf(r->arena, "topic \"%s\" has no partition %u", topic, res->partition);
        return NULL;
    }
    res->log_start_offset = (int64_t)partition_start_offset(p);
    if (!strcmp(topic, OFFSETS_TOPIC)) {
        res->error_code = RL_E_INVALID_REQUEST;
        res->error_message = "__consumer_offsets is internal: only the group coordinator writes "
                             "it (use OffsetCommit)";
        return NULL;
    }
    *t = meta_topic_find(ps->meta, topic);
    return p;
}

static void produce_partition(struct produce *ps, struct svc_req *r, struct produce_part *res)
{
    struct produce_state *st = r->state;
    const struct meta_topic *t = NULL;
    uint32_t count = 0;
    res->base_offset = -1;
    res->log_append_time_ms = -1;
    struct partition *p = produce_resolve(ps, r, res, &t);
    if (!p || produce_check(r, t, res, &count))
        return;
    struct produce_append *as = arena_calloc(r->arena, count * sizeof(*as));
    if (!as) {
        res->error_code = RL_E_LIMIT;
        res->error_message = "too many batches for one request's memory; send fewer, larger "
                             "batches (raise batch.size or linger.ms)";
        return;
    }
    const uint8_t *d = res->data;
    uint32_t pos = 0;
    for (uint32_t i = 0; i < count; i++) {
        struct produce_append *a = &as[i];
        struct batch_header h;
        batch_header_decode(d + pos, res->data_len - pos, &h);
        a->pa.batch = d + pos;
        a->pa.len = h.batch_len;
        a->pa.records = h.record_count;
        a->pa.ack = st->q->acks == -1 ? PARTITION_ACK_ALL : PARTITION_ACK_LEADER;
        a->pa.done = produce_append_done;
        a->pa.ctx = a;
        a->r = r;
        a->p = p;
        a->res = res;
        a->first = i == 0;
        pos += h.batch_len;
        if (h.producer_id >= 0) {
            int rc = produce_idem_check(ps, a, &h);
            if (rc == 1)
                continue; /* a duplicate: answered with the original's offsets */
            if (rc)
                return;
        }
        int rc = partition_append(p, &a->pa);
        if (rc) {
            res->error_code = rc;
            res->error_message = arena_printf(r->arena, "batch %u of %s-%u not appended: %s%s",
                                              i, res->topic, res->partition, rl_strerror(rc),
                                              i ? " (earlier batches were appended)" : "");
            return;
        }
        r->pending++;
        if (a->pa.deferred)
            ps->st.deferred_batches++;
        else if (a->first)
            res->base_offset = (int64_t)a->pa.base_offset;
        /* Recorded at its assigned (or, deferred, predicted) offsets, so pipelined batches of
         * the producer follow each other. */
        if (h.producer_id >= 0)
            idem_record(ps->idem, p, &h, a->pa.base_offset, io_wall_ms(r->io));
    }
}

void produce_start(struct produce *ps, struct svc_req *r, struct produce_request *q)
{
    struct produce_state *st = arena_calloc(r->arena, sizeof(*st));
    if (!st) {
        for (size_t i = 0; i < q->n_parts; i++) {
            q->parts[i].error_code = RL_E_LIMIT;
            q->parts[i].error_message = "out of request memory";
        }
        q->done(r, q);
        return;
    }
    st->ps = ps;
    st->q = q;
    r->state = st;
    r->finish = produce_answer;
    for (size_t i = 0; i < q->n_parts; i++)
        produce_partition(ps, r, &q->parts[i]);
    /* acks 0 answers now (offsets are assigned already); otherwise when the appends are done. */
    if (q->acks == 0 || r->pending == 0)
        produce_answer(r);
}
