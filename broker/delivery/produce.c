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

/* produce_idem_check's answer for a duplicate (besides 0, IDEM_PENDING and errors). */
#define PRODUCE_DUPLICATE (IDEM_PENDING + 1)

struct produce {
    struct meta *meta;
    struct idem *idem;
    struct batch_reader *check; /* full validation of produced batches (batch_validate_full) */
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
    uint64_t dup_gen;        /* replicated: the leadership the original was appended in */
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
    ps->check = batch_reader_create(RL_BATCH_MAX_BYTES);
    if (!ps->check) {
        free(ps);
        return -ENOMEM;
    }
    *out = ps;
    return 0;
}

void produce_destroy(struct produce *ps)
{
    if (!ps)
        return;
    batch_reader_destroy(ps->check);
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
    /* The original is this leadership's entry: once the replica stops leading, its offsets
     * may be cut and filled by another leader's entries, which then commit; only the same
     * leadership reaching them proves the original committed there. */
    bool lost = partition_replicated(a->p) &&
                (!partition_leads(a->p) || partition_lead_generation(a->p) != a->dup_gen);
    if (ev == PARTITION_VISIBLE && !lost && partition_visible_end(a->p) < a->dup_until)
        return;
    if (ev == PARTITION_DEPOSED && !lost)
        return;
    partition_unwait(w);
    if (ev == PARTITION_GONE)
        produce_fail(a, RL_E_UNKNOWN_TOPIC);
    else if (ev == PARTITION_FAILED)
        produce_fail(a, RL_E_LOG_FAILED);
    else if (lost)
        produce_fail(a, RL_E_NOT_LEADER);
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
static int produce_check(struct produce *ps, struct svc_req *r, const struct meta_topic *t,
                         struct produce_part *res, uint32_t *count)
{
    const uint8_t *d = res->data;
    uint32_t len = res->data_len, pos = 0, n = 0;
    if (len == 0) {
        res->error_code = RL_E_INVALID_REQUEST;
        res->error_message = "partition carries no batches (data_len 0)";
        return res->error_code;
    }
    /* Full validation (common/batch.h), so whatever is acknowledged every consumer can read. */
    struct batch_limits lim = {io_wall_ms(r->io), RL_BATCH_TIMESTAMP_AFTER_MAX_MS,
                               RL_BATCH_TIMESTAMP_BEFORE_MAX_MS};
    while (pos < len) {
        struct batch_header h;
        int rc = batch_header_decode(d + pos, len - pos, &h) == 0 &&
                 h.batch_len > t->max_message_bytes
                     ? RL_E_MESSAGE_TOO_LARGE
                     : batch_validate_full(ps->check, d + pos, len - pos, &lim, &h);
        if (rc) {
            bool too_large = rc == RL_E_MESSAGE_TOO_LARGE;
            res->error_code = rc;
            res->error_message = arena_printf(
                r->arena, "batch %u at byte %u of %s-%u's data: %s%s%s%s", n, pos, t->name,
                res->partition, rl_strerror(rc),
                too_large ? " (raise the topic's max.message.bytes or send smaller batches)"
                          : " (",
                too_large ? "" : batch_reader_detail(ps->check),
                too_large ? "" : "); nothing was appended");
            return rc;
        }
        pos += h.batch_len;
        n++;
    }
    *count = n;
    return 0;
}

/* Idempotence check before appending batch a (header h). Returns 0 to append,
 * PRODUCE_DUPLICATE for a duplicate (answered with the original's offsets, once they are
 * visible when acks != 0),
 * IDEM_PENDING while the partition's producer state loads, or an error already put in the
 * result. */
static int produce_idem_check(struct produce *ps, struct produce_append *a,
                              const struct batch_header *h)
{
    struct svc_req *r = a->r;
    struct produce_state *st = r->state;
    struct pstate_verdict v;
    char msg[320];
    int rc = idem_check(ps->idem, a->p, h, io_wall_ms(r->io), &v, msg, sizeof(msg));
    if (rc == 0 || rc == IDEM_PENDING)
        return rc;
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
        return PRODUCE_DUPLICATE;
    /* The original is still being written: answer once it is durable, like the original. */
    ps->st.duplicate_waits++;
    a->dup_until = (uint64_t)v.dup_last_offset + 1;
    a->dup_gen = partition_lead_generation(a->p);
    a->dup_wait.wake = produce_dup_wake;
    a->dup_wait.ctx = a;
    partition_wait(a->p, &a->dup_wait);
    partition_pin(a->p);
    r->pending++;
    return PRODUCE_DUPLICATE;
}

/* Looks the partition up and checks what can be checked before appending. Returns it, or
 * NULL with the result's error set. */
static struct partition *produce_resolve(struct produce *ps, struct svc_req *r,
                                         struct produce_part *res, const struct meta_topic **t)
{
    int rc;
    const char *topic = res->topic;
    if (meta_topic_internal(topic)) {
        res->error_code = RL_E_INTERNAL_TOPIC;
        res->error_message = arena_printf(r->arena, "topic \"%s\" is internal to the broker: "
                                          "only the broker writes it (commit offsets with "
                                          "OffsetCommit)", topic);
        return NULL;
    }
    struct partition *p = meta_partition(ps->meta, topic, res->partition, &rc);
    if (!p) {
        res->error_code = rc;
        char why[256];
        res->error_message = rc == RL_E_UNKNOWN_TOPIC
            ? arena_printf(r->arena, "topic \"%s\" does not exist; create it with: ringlog "
                           "topic create %s --partitions N", topic, topic)
            : rc == RL_E_NOT_LEADER
            ? arena_printf(r->arena, "%s", meta_not_leader_msg(ps->meta, topic, res->partition,
                                                               why, sizeof(why)))
            : arena_printf(r->arena, "topic \"%s\" has no partition %u", topic, res->partition);
        return NULL;
    }
    if (partition_replicated(p) && !partition_leads(p)) {
        /* A follower (or a leader that has not yet committed an entry of its term). */
        uint32_t leader = partition_leader(p), self = meta_node_id(ps->meta);
        res->error_code = RL_E_NOT_LEADER;
        res->error_message =
            leader && leader != self
                ? arena_printf(r->arena, "partition %u of \"%s\" is led by node %u, not by "
                               "this broker (node %u, a follower): ask Metadata for its leader "
                               "and send it there", res->partition, topic, leader, self)
                : arena_printf(r->arena, "partition %u of \"%s\" has no leader ready yet "
                               "(an election is under way or the new leader is committing its "
                               "first entry): retry shortly", res->partition, topic);
        return NULL;
    }
    res->log_start_offset = (int64_t)partition_start_offset(p);
    *t = meta_topic_find(ps->meta, topic);
    return p;
}

/* One partition's batches of a request, appended in order; parked (with its remaining bytes
 * copied into the request's arena) while the partition's producer state loads. */
struct produce_run {
    struct idem_wait wait;
    struct produce *ps;
    struct svc_req *r;
    struct produce_part *res;
    struct partition *p;
    struct produce_append *as;   /* one per batch */
    uint32_t count;
    const uint8_t *data;         /* batch bytes at position pos are data + (pos - data_pos) */
    uint32_t data_pos;
    uint32_t i, pos;             /* the next batch and its position in the partition's data */
    uint8_t *copy;               /* while parked: the batches not yet appended */
};

static void produce_run(struct produce_run *run);

static void produce_resume(struct idem_wait *w, int rc)
{
    struct produce_run *run = w->ctx;
    if (rc) {
        run->res->error_code = rc;
        run->res->error_message = arena_printf(run->r->arena, "producer state of %s-%u is "
                                               "unavailable: %s", run->res->topic,
                                               run->res->partition, rl_strerror(rc));
    } else {
        produce_run(run); /* the log copies (or queues a copy of) every batch it takes */
    }
    free(run->copy);
    run->copy = NULL;
    produce_op_over(run->r); /* the wait is over; appends count on their own */
}

/* Waits for the partition's producer state, keeping the bytes of the batches not yet appended
 * (the receive buffer they came in is reused once the request is dispatched): a copy charged
 * to the memory budget, freed once the batches went to the log. */
static void produce_park(struct produce_run *run)
{
    struct svc_req *r = run->r;
    uint32_t left = run->res->data_len - run->pos;
    if (run->data == run->res->data) {
        run->copy = malloc(left ? left : 1);
        if (!run->copy) {
            run->res->error_code = -ENOMEM;
            run->res->error_message = "out of memory while producer state loads";
            return;
        }
        memcpy(run->copy, run->data + (run->pos - run->data_pos), left);
        svc_req_charge(r, left);
        run->data = run->copy;
        run->data_pos = run->pos;
    }
    run->wait.done = produce_resume;
    run->wait.ctx = run;
    r->pending++;
    idem_wait_loaded(run->ps->idem, run->p, &run->wait);
}

/* Appends the run's batches from the next one on. */
static void produce_run(struct produce_run *run)
{
    struct produce *ps = run->ps;
    struct svc_req *r = run->r;
    struct produce_part *res = run->res;
    struct produce_state *st = r->state;
    for (; run->i < run->count; run->i++) {
        struct produce_append *a = &run->as[run->i];
        const uint8_t *b = run->data + (run->pos - run->data_pos);
        struct batch_header h;
        batch_header_decode(b, res->data_len - run->pos, &h);
        a->pa.batch = b;
        a->pa.len = h.batch_len;
        a->pa.records = h.record_count;
        a->pa.ack = st->q->acks == -1 ? PARTITION_ACK_ALL : PARTITION_ACK_LEADER;
        a->pa.done = produce_append_done;
        a->pa.ctx = a;
        a->r = r;
        a->p = run->p;
        a->res = res;
        a->first = run->i == 0;
        if (h.producer_id >= 0) {
            int rc = produce_idem_check(ps, a, &h);
            if (rc == IDEM_PENDING)
                return produce_park(run);
            if (rc == PRODUCE_DUPLICATE) {
                run->pos += h.batch_len;
                continue; /* answered with the original's offsets */
            }
            if (rc)
                return;
        }
        int rc = partition_append(run->p, &a->pa);
        if (rc) {
            res->error_code = rc;
            res->error_message = arena_printf(r->arena, "batch %u of %s-%u not appended: %s%s",
                                              run->i, res->topic, res->partition,
                                              rl_strerror(rc),
                                              run->i ? " (earlier batches were appended)" : "");
            return;
        }
        run->pos += h.batch_len;
        r->pending++;
        if (a->pa.deferred)
            ps->st.deferred_batches++;
        else if (a->first)
            res->base_offset = (int64_t)a->pa.base_offset;
        /* Recorded at its assigned (or, deferred, predicted) offsets, so pipelined batches of
         * the producer follow each other. */
        if (h.producer_id >= 0)
            idem_record(ps->idem, run->p, &h, a->pa.base_offset, io_wall_ms(r->io));
    }
}

static void produce_partition(struct produce *ps, struct svc_req *r, struct produce_part *res)
{
    const struct meta_topic *t = NULL;
    uint32_t count = 0;
    res->base_offset = -1;
    res->log_append_time_ms = -1;
    struct partition *p = produce_resolve(ps, r, res, &t);
    if (!p || produce_check(ps, r, t, res, &count))
        return;
    struct produce_run *run = arena_calloc(r->arena, sizeof(*run));
    struct produce_append *as = arena_calloc(r->arena, count * sizeof(*as));
    if (!run || !as) {
        res->error_code = RL_E_LIMIT;
        res->error_message = "too many batches for one request's memory; send fewer, larger "
                             "batches (raise batch.size or linger.ms)";
        return;
    }
    *run = (struct produce_run){.ps = ps, .r = r, .res = res, .p = p, .as = as, .count = count,
                                .data = res->data};
    produce_run(run);
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
