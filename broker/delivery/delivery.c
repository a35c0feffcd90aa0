/*
 * delivery: wires idempotence and the group coordinator into the shard (see delivery.h).
 *
 * The timer's callback only marks the work due (io callbacks record, the loop acts); the loop
 * calls delivery_process, which ticks the groups every DELIVERY_TICK_MS and the producer state
 * every DELIVERY_IDEM_TICK_MS, then re-arms the timer unless the shard is stopping.
 */
#include "broker/delivery/delivery.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/delivery/coordinator.h"
#include "broker/delivery/idempotence.h"
#include "broker/server/shard_internal.h"
#include "common/err.h"
#include "common/log.h"

static void delivery_timer_done(struct io_op *op, int result)
{
    (void)result;
    struct shard *sh = op->ctx;
    shard_op_ended(sh);
    sh->dv->timer_inflight = false;
    sh->dv->timer_due = true;
}

static void delivery_arm(struct shard *sh)
{
    struct delivery *dv = sh->dv;
    if (dv->timer_inflight || sh->stopping)
        return;
    dv->timer_op.done = delivery_timer_done;
    dv->timer_op.ctx = sh;
    dv->timer_inflight = true;
    shard_op_started(sh);
    io_prep_timeout(sh->io, &dv->timer_op, (uint64_t)DELIVERY_TICK_MS * 1000000ull, 0);
}

int delivery_open(struct shard *sh, char *err, size_t err_cap)
{
    struct delivery *dv = calloc(1, sizeof(*dv));
    if (!dv)
        return -ENOMEM;
    sh->dv = dv;
    dv->idem = idem_create(sh->meta, sh->cfg.data_dir,
                           (int64_t)sh->cfg.producer_id_expiration_ms);
    if (!dv->idem) {
        snprintf(err, err_cap, "cannot allocate the producer-id table");
        return -ENOMEM;
    }
    int rc = coord_create(sh, &dv->coord, err, err_cap);
    if (rc)
        return rc;
    dv->last_idem_tick_ns = io_now_ns(sh->io);
    delivery_arm(sh);
    return 0;
}

void delivery_begin_stop(struct shard *sh)
{
    if (sh->dv)
        coord_stop(sh->dv->coord);
}

void delivery_process(struct shard *sh)
{
    struct delivery *dv = sh->dv;
    if (!dv || !dv->timer_due)
        return;
    dv->timer_due = false;
    int64_t now_ms = io_wall_ms(sh->io);
    coord_tick(dv->coord, now_ms);
    uint64_t now_ns = io_now_ns(sh->io);
    if (now_ns - dv->last_idem_tick_ns >= (uint64_t)DELIVERY_IDEM_TICK_MS * 1000000ull) {
        dv->last_idem_tick_ns = now_ns;
        idem_tick(dv->idem, now_ms);
    }
    delivery_arm(sh);
}

void delivery_close(struct shard *sh)
{
    struct delivery *dv = sh->dv;
    if (!dv)
        return;
    coord_destroy(dv->coord);
    idem_destroy(dv->idem);
    free(dv);
    sh->dv = NULL;
}

/* --- InitProducerId --------------------------------------------------------------------------- */

struct delivery_init {
    struct idem_init in;
    struct req *r;
    Ringlog__Response *resp;
};

static void delivery_init_finish(struct req *r)
{
    struct delivery_init *di = r->state;
    Ringlog__InitProducerIdResponse *body = di->resp->init_producer_id;
    body->producer_id = di->in.rc ? -1 : di->in.out_id;
    body->producer_epoch = di->in.rc ? -1 : di->in.out_epoch;
    if (di->in.rc) {
        di->resp->error_code = di->in.rc;
        di->resp->error_message = arena_strdup(&r->arena, di->in.msg[0] ? di->in.msg
                                                                        : rl_strerror(di->in.rc));
    }
    req_respond(r, di->resp, NULL, 0);
}

static void delivery_init_done(struct idem_init *in)
{
    struct delivery_init *di = in->ctx;
    struct req *r = di->r;
    RL_ASSERT(r->pending > 0);
    if (--r->pending == 0 && r->conn) {
        r->needs_finish = true;
        shard_mark_conn(r->conn);
    }
}

static void delivery_init_producer_id(struct req *r, const Ringlog__InitProducerIdRequest *q)
{
    Ringlog__Response *resp = req_response(r);
    Ringlog__InitProducerIdResponse *body = arena_calloc(&r->arena, sizeof(*body));
    struct delivery_init *di = arena_calloc(&r->arena, sizeof(*di));
    if (!resp || !body || !di)
        return req_respond_error(r, RL_E_LIMIT, "out of request memory");
    ringlog__init_producer_id_response__init(body);
    resp->body_case = RINGLOG__RESPONSE__BODY_INIT_PRODUCER_ID;
    resp->init_producer_id = body;
    di->r = r;
    di->resp = resp;
    di->in.producer_id = q->producer_id;
    di->in.epoch = q->producer_epoch;
    di->in.done = delivery_init_done;
    di->in.ctx = di;
    r->state = di;
    r->finish = delivery_init_finish;
    if (idem_init_producer(r->sh->dv->idem, &di->in, io_wall_ms(r->sh->io)) == 1) {
        r->pending++; /* answered once a block of ids is recorded */
        return;
    }
    delivery_init_finish(r);
}

void delivery_dispatch(struct req *r, const Ringlog__Request *rq)
{
    switch (rq->body_case) {
    case RINGLOG__REQUEST__BODY_INIT_PRODUCER_ID:
        return delivery_init_producer_id(r, rq->init_producer_id);
    case RINGLOG__REQUEST__BODY_FIND_COORDINATOR:
        return coord_find_coordinator(r, rq->find_coordinator);
    case RINGLOG__REQUEST__BODY_JOIN_GROUP:
        return coord_join_group(r, rq->join_group, rq->client_id);
    case RINGLOG__REQUEST__BODY_SYNC_GROUP: return coord_sync_group(r, rq->sync_group);
    case RINGLOG__REQUEST__BODY_HEARTBEAT: return coord_heartbeat(r, rq->heartbeat);
    case RINGLOG__REQUEST__BODY_LEAVE_GROUP: return coord_leave_group(r, rq->leave_group);
    case RINGLOG__REQUEST__BODY_OFFSET_COMMIT: return coord_offset_commit(r, rq->offset_commit);
    case RINGLOG__REQUEST__BODY_OFFSET_FETCH: return coord_offset_fetch(r, rq->offset_fetch);
    case RINGLOG__REQUEST__BODY_LIST_GROUPS: return coord_list_groups(r, rq->list_groups);
    case RINGLOG__REQUEST__BODY_DESCRIBE_GROUPS:
        return coord_describe_groups(r, rq->describe_groups);
    default:
        return req_respond_error(r, RL_E_UNKNOWN_API, "unknown request type");
    }
}

size_t delivery_metrics(struct shard *sh, char *buf, size_t cap)
{
    if (!sh->dv || cap == 0)
        return 0;
    struct idem_stats is;
    struct coord_stats cs;
    idem_get_stats(sh->dv->idem, &is);
    coord_get_stats(sh->dv->coord, &cs);
    int n = snprintf(buf, cap,
        "# TYPE ringlog_groups gauge\nringlog_groups %u\n"
        "# TYPE ringlog_group_members gauge\nringlog_group_members %u\n"
        "# TYPE ringlog_committed_offsets gauge\nringlog_committed_offsets %u\n"
        "# TYPE ringlog_offset_commits_total counter\nringlog_offset_commits_total %llu\n"
        "# TYPE ringlog_offset_commit_errors_total counter\n"
        "ringlog_offset_commit_errors_total %llu\n"
        "# TYPE ringlog_group_rebalance_joins_total counter\n"
        "ringlog_group_rebalance_joins_total %llu\n"
        "# TYPE ringlog_group_members_expired_total counter\n"
        "ringlog_group_members_expired_total %llu\n"
        "# TYPE ringlog_producer_ids gauge\nringlog_producer_ids %u\n"
        "# TYPE ringlog_producer_state_partitions gauge\nringlog_producer_state_partitions %u\n"
        "# TYPE ringlog_producer_states gauge\nringlog_producer_states %llu\n"
        "# TYPE ringlog_produce_duplicates_total counter\nringlog_produce_duplicates_total %llu\n"
        "# TYPE ringlog_produce_out_of_order_total counter\n"
        "ringlog_produce_out_of_order_total %llu\n"
        "# TYPE ringlog_produce_fenced_total counter\nringlog_produce_fenced_total %llu\n"
        "# TYPE ringlog_produce_duplicate_waits_total counter\n"
        "ringlog_produce_duplicate_waits_total %llu\n"
        "# TYPE ringlog_producer_snapshots_total counter\nringlog_producer_snapshots_total %llu\n"
        "# TYPE ringlog_producers_expired_total counter\nringlog_producers_expired_total %llu\n",
        cs.groups, cs.members, cs.committed_offsets, (unsigned long long)cs.commits,
        (unsigned long long)cs.commit_errors, (unsigned long long)cs.rebalances_completed,
        (unsigned long long)cs.members_expired, is.producers, is.partitions_loaded,
        (unsigned long long)is.partition_producers, (unsigned long long)is.duplicates,
        (unsigned long long)is.out_of_order, (unsigned long long)is.fenced,
        (unsigned long long)sh->m.produce_duplicate_waits,
        (unsigned long long)is.snapshots, (unsigned long long)is.expired);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}
