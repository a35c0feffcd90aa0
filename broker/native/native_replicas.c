/*
 * native_replicas: AlterReplicas, the moves of partition replicas (`ringlog topic reassign`,
 * `ringlog cluster remove-broker`). Where it sits: native dispatch -> this file -> meta (the
 * moves recorded as targets through the controller) -> the partition leaders move the replicas
 * (broker/cluster/replica.c). This file only checks the request against the brokers the
 * cluster registered and, for remove-broker, plans the moves; meta checks the moves against
 * the topic table (again on the controller leader).
 *
 * The same request decommissions (remove-broker records the mark with its moves, in one
 * record, so the mark and the moves commit together), recommissions (recommission_broker), and
 * cancels running moves (cancel: this file fills each partition's replicas, the move's origin,
 * which meta records as the target; the partition's leader then converges back).
 */
#include "broker/native/native_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/meta/meta.h"
#include "common/err.h"

/* The request in flight: its moves and the proposal that records them. */
struct replicas_req {
    struct meta_proposal pr;
    struct native *n;
    struct svc_req *r;
    Ringlog__Response *resp;
    struct meta_move *moves;
    size_t n_moves;
    struct meta_record rec; /* the marks and cancel of the request (moves set at the end) */
};

/* A registered broker of the view, or NULL. */
static const struct native_cluster_broker *replicas_broker(const struct native_cluster_view *v,
                                                           uint32_t id)
{
    for (uint32_t i = 0; i < v->n_brokers; i++)
        if (v->brokers[i].id == (int32_t)id)
            return &v->brokers[i];
    return NULL;
}

/* Every named replica is a registered, live broker. Returns 0 or a code with err. (A
 * decommissioned one is refused by meta's check on the controller leader, against the marks
 * committed before the move: a removal racing with this request cannot slip past it.) */
static int replicas_check_brokers(const struct native_cluster_view *v, const struct meta_move *mv,
                                  char *err, size_t cap)
{
    for (uint32_t k = 0; k < mv->n_replicas; k++) {
        const struct native_cluster_broker *b = replicas_broker(v, mv->replicas[k]);
        if (!b) {
            snprintf(err, cap, "broker %u is not registered in the cluster (ringlog cluster "
                     "status lists the brokers)", mv->replicas[k]);
            return RL_E_UNKNOWN_BROKER;
        }
        if (b->fenced) {
            snprintf(err, cap, "broker %u is not alive (fenced): a replica cannot move there; "
                     "start it again or name another broker",
                     mv->replicas[k]);
            return RL_E_BROKER_UNAVAILABLE;
        }
    }
    return 0;
}

/* Replicas each broker of the view holds or is about to hold (index as in v->brokers). */
static void replicas_load(const struct meta *m, const struct native_cluster_view *v,
                          uint32_t *load)
{
    memset(load, 0, v->n_brokers * sizeof(*load));
    for (size_t ti = 0; ti < meta_topic_count(m); ti++) {
        const struct meta_topic *t = meta_topic_at(m, ti);
        for (uint32_t i = 0; i < t->partition_count; i++) {
            uint32_t n;
            const uint32_t *r = meta_partition_replicas(t, i, &n);
            const uint32_t *tg = meta_partition_target(t, i);
            for (uint32_t b = 0; r && b < v->n_brokers; b++)
                load[b] += meta_ids_have(tg ? tg : r, n, (uint32_t)v->brokers[b].id);
        }
    }
}

/* The live broker outside ids[0..n) other than `gone` holding the fewest replicas, or 0. */
static uint32_t replicas_pick(const struct native_cluster_view *v, const uint32_t *load,
                              const uint32_t *ids, uint32_t n, uint32_t gone)
{
    uint32_t best = 0, best_load = 0;
    for (uint32_t b = 0; b < v->n_brokers; b++) {
        uint32_t id = (uint32_t)v->brokers[b].id;
        if (id == gone || v->brokers[b].fenced || v->brokers[b].decommissioned ||
            meta_ids_have(ids, n, id))
            continue;
        if (!best || load[b] < best_load) {
            best = id;
            best_load = load[b];
        }
    }
    return best;
}

/* An arena copy of a move whose topic name and replicas point into the topic table: the
 * record is encoded, and the answer packed, after later records may have changed the table. */
static int replicas_move_copy(struct replicas_req *q, struct meta_move *out, const char *topic,
                              uint32_t partition, const uint32_t *r, uint32_t n)
{
    size_t tl = strlen(topic) + 1;
    char *name = native_alloc(q->r, tl);
    uint32_t *ids = native_alloc(q->r, (n + 1) * sizeof(*ids));
    if (!name || !ids)
        return -ENOMEM;
    memcpy(name, topic, tl);
    if (n)
        memcpy(ids, r, n * sizeof(*ids));
    *out = (struct meta_move){name, partition, n, ids};
    return 0;
}

/* Room in the request for a move of every partition of the cluster (and one more). */
static int replicas_moves_alloc(struct replicas_req *q, const struct meta *m)
{
    size_t total = 0;
    for (size_t ti = 0; ti < meta_topic_count(m); ti++)
        total += meta_topic_at(m, ti)->partition_count;
    q->moves = native_alloc(q->r, (total + 1) * sizeof(*q->moves));
    return q->moves ? 0 : -ENOMEM;
}

/* Plans a move of every replicated partition with a replica on `gone` onto the live brokers
 * holding the fewest replicas. Returns 0 (q->moves, q->n_moves; none when nothing sits there)
 * or a code with err. */
static int replicas_plan_remove(struct replicas_req *q, const struct native_cluster_view *v,
                                uint32_t gone, char *err, size_t cap)
{
    struct meta *m = q->n->meta;
    uint32_t load[NATIVE_MAX_BROKERS];
    replicas_load(m, v, load);
    if (replicas_moves_alloc(q, m))
        return -ENOMEM;
    for (size_t ti = 0; ti < meta_topic_count(m); ti++) {
        const struct meta_topic *t = meta_topic_at(m, ti);
        for (uint32_t i = 0; i < t->partition_count; i++) {
            uint32_t n;
            const uint32_t *r = meta_partition_replicas(t, i, &n);
            const uint32_t *tg = meta_partition_target(t, i);
            if (!r) {
                if (meta_partition_owner(t, i) != gone)
                    continue;
                snprintf(err, cap, "%s-%u has a single replica, on broker %u: only replicated "
                         "partitions can move; copy its records to a topic created with "
                         "--replicas 3, or delete it, then remove the broker", t->name, i, gone);
                return RL_E_INVALID_ARGUMENT;
            }
            if (!meta_ids_have(r, n, gone) && !(tg && meta_ids_have(tg, n, gone)))
                continue;
            if (tg) {
                snprintf(err, cap, "a move of %s-%u's replicas is already running; wait for "
                         "it to finish (ringlog topic describe TOPIC), or cancel it (ringlog "
                         "topic reassign TOPIC %u --cancel)", t->name, i, i);
                return RL_E_REASSIGN_RUNNING;
            }
            uint32_t *nr = native_alloc(q->r, n * sizeof(*nr));
            if (!nr)
                return -ENOMEM;
            memcpy(nr, r, n * sizeof(*nr));
            for (uint32_t k = 0; k < n; k++) {
                if (nr[k] != gone)
                    continue;
                uint32_t to = replicas_pick(v, load, nr, n, gone);
                if (!to) {
                    snprintf(err, cap, "cannot remove broker %u: %s-%u needs %u replicas and "
                             "no other live broker is free to take one (the last brokers "
                             "stay; decommissioned ones take none); start another broker "
                             "first, or recommission one", gone, t->name, i, n);
                    return RL_E_INVALID_ARGUMENT;
                }
                nr[k] = to;
                for (uint32_t b = 0; b < v->n_brokers; b++)
                    load[b] += v->brokers[b].id == (int32_t)to;
            }
            if (replicas_move_copy(q, &q->moves[q->n_moves++], t->name, i, nr, n))
                return -ENOMEM;
        }
    }
    return 0;
}

/* Cancel: every move named (topic, partition) gets the partition's replicas, the origin of its
 * running move; meta refuses a partition with no move running (nothing to cancel). */
static int replicas_plan_cancel(struct replicas_req *q, const Ringlog__AlterReplicasRequest *a,
                                char *err, size_t cap)
{
    q->moves = native_alloc(q->r, (a->n_moves + 1) * sizeof(*q->moves));
    if (!q->moves)
        return -ENOMEM;
    for (size_t i = 0; i < a->n_moves; i++) {
        const Ringlog__PartitionMove *pm = a->moves[i];
        const struct meta_topic *t = meta_topic_find(q->n->meta, pm->topic);
        uint32_t n = 0;
        const uint32_t *r = t ? meta_partition_replicas(t, pm->partition, &n) : NULL;
        if (r && !meta_partition_target(t, pm->partition)) {
            snprintf(err, cap, "no move of %s-%u's replicas is running: nothing to cancel "
                     "(ringlog topic describe %s shows its replicas)", t->name, pm->partition,
                     t->name);
            return RL_E_NO_MOVE_RUNNING;
        }
        /* Unknown or unreplicated: meta's check names what is wrong. */
        if (replicas_move_copy(q, &q->moves[i], pm->topic, pm->partition, r, r ? n : 0))
            return -ENOMEM;
    }
    q->n_moves = a->n_moves;
    q->rec.cancel = true;
    if (q->n_moves == 0) {
        snprintf(err, cap, "name the partitions whose moves to cancel");
        return RL_E_INVALID_ARGUMENT;
    }
    return 0;
}

/* remove-broker --cancel: the moves off `gone` that run go back to their origin and its mark
 * is cleared (one record). */
static int replicas_plan_cancel_remove(struct replicas_req *q, uint32_t gone, char *err,
                                       size_t cap)
{
    struct meta *m = q->n->meta;
    if (!meta_broker_decommissioned(m, gone)) {
        snprintf(err, cap, "broker %u is not decommissioned: there is no removal to cancel "
                 "(ringlog cluster status shows which brokers are)", gone);
        return RL_E_NO_MOVE_RUNNING;
    }
    if (replicas_moves_alloc(q, m))
        return -ENOMEM;
    for (size_t ti = 0; ti < meta_topic_count(m); ti++) {
        const struct meta_topic *t = meta_topic_at(m, ti);
        for (uint32_t i = 0; i < t->partition_count; i++) {
            uint32_t n;
            const uint32_t *r = meta_partition_replicas(t, i, &n);
            const uint32_t *tg = meta_partition_target(t, i);
            if (!r || !tg || !meta_ids_have(r, n, gone) || meta_ids_have(tg, n, gone))
                continue;
            if (replicas_move_copy(q, &q->moves[q->n_moves++], t->name, i, r, n))
                return -ENOMEM;
        }
    }
    q->rec = (struct meta_record){.cancel = true, .recommission_broker = gone};
    return 0;
}

/* The moves of the request (arena copies) after the brokers check. */
static int replicas_from_request(struct replicas_req *q, const Ringlog__AlterReplicasRequest *a,
                                 const struct native_cluster_view *v, char *err, size_t cap)
{
    q->moves = native_alloc(q->r, (a->n_moves + 1) * sizeof(*q->moves));
    if (!q->moves)
        return -ENOMEM;
    for (size_t i = 0; i < a->n_moves; i++) {
        const Ringlog__PartitionMove *pm = a->moves[i];
        q->moves[i] = (struct meta_move){pm->topic, pm->partition, (uint32_t)pm->n_replicas,
                                         pm->replicas};
        int rc = replicas_check_brokers(v, &q->moves[i], err, cap);
        if (rc)
            return rc;
    }
    q->n_moves = a->n_moves;
    if (q->n_moves == 0) {
        snprintf(err, cap, "name the partitions to move, or a broker to remove");
        return RL_E_INVALID_ARGUMENT;
    }
    return 0;
}

/* The moves recorded, echoed in the response. */
static int replicas_body(struct replicas_req *q)
{
    Ringlog__AlterReplicasResponse *body =
        NATIVE_NEW(q->r, Ringlog__AlterReplicasResponse, ringlog__alter_replicas_response__init);
    Ringlog__PartitionMove *pm = native_alloc(q->r, (q->n_moves + 1) * sizeof(*pm));
    Ringlog__PartitionMove **pp = native_alloc(q->r, (q->n_moves + 1) * sizeof(*pp));
    if (!body || !pm || !pp)
        return -ENOMEM;
    for (size_t i = 0; i < q->n_moves; i++) {
        ringlog__partition_move__init(&pm[i]);
        pm[i].topic = (char *)q->moves[i].topic;
        pm[i].partition = q->moves[i].partition;
        pm[i].n_replicas = q->moves[i].n_replicas;
        pm[i].replicas = (uint32_t *)q->moves[i].replicas;
        pp[i] = &pm[i];
    }
    body->n_moves = q->n_moves;
    body->moves = pp;
    q->resp->body_case = RINGLOG__RESPONSE__BODY_ALTER_REPLICAS;
    q->resp->alter_replicas = body;
    return 0;
}

static void replicas_finish(struct svc_req *r)
{
    struct replicas_req *q = r->state;
    q->n->host->respond(r, q->resp, NULL, NULL, NULL, 0);
}

static void replicas_recorded(struct meta_proposal *pr)
{
    struct replicas_req *q = pr->ctx;
    if (pr->rc)
        native_set_error(q->r, q->resp, pr->rc, pr->msg);
    svc_req_op_ended(q->r);
}

/* The request's record (q->moves, q->rec's marks) after the checks this broker can make. */
static int replicas_plan(struct replicas_req *q, const Ringlog__AlterReplicasRequest *a,
                         const struct native_cluster_view *v, char *err, size_t cap)
{
    uint32_t id = a->remove_broker ? a->remove_broker : a->recommission_broker;
    if ((a->remove_broker && a->recommission_broker) ||
        (a->recommission_broker && (a->n_moves || a->cancel))) {
        snprintf(err, cap, "name one of: moves, a broker to remove, a broker to recommission");
        return RL_E_INVALID_ARGUMENT;
    }
    if (id && !replicas_broker(v, id)) {
        snprintf(err, cap, "broker %u is not registered in the cluster (ringlog cluster status "
                 "lists the brokers)", id);
        return RL_E_UNKNOWN_BROKER;
    }
    if (a->recommission_broker) {
        q->rec.recommission_broker = id;
        return 0;
    }
    if (a->remove_broker && a->cancel)
        return replicas_plan_cancel_remove(q, id, err, cap);
    if (a->remove_broker) {
        q->rec.remove_broker = id;
        return replicas_plan_remove(q, v, id, err, cap);
    }
    if (a->cancel)
        return replicas_plan_cancel(q, a, err, cap);
    return replicas_from_request(q, a, v, err, cap);
}

void native_alter_replicas(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                           const uint8_t *data)
{
    (void)data;
    const Ringlog__AlterReplicasRequest *a = rq->alter_replicas;
    struct replicas_req *q = native_alloc(r, sizeof(*q));
    struct native_cluster_view *v = native_alloc(r, sizeof(*v));
    if (!q || !v || !(q->resp = n->host->response(r)))
        return native_oom(n, r);
    q->n = n;
    q->r = r;
    r->state = q;
    r->finish = replicas_finish;
    char err[600] = "";
    int rc = 0;
    if (!n->cluster_view) {
        rc = RL_E_INVALID_ARGUMENT;
        snprintf(err, sizeof(err), "a single broker (no --voters) has no replicas to move");
    } else if (a->remove_broker && a->n_moves) {
        rc = RL_E_INVALID_ARGUMENT;
        snprintf(err, sizeof(err), "name either moves or a broker to remove, not both");
    } else {
        n->cluster_view(n->cluster_ctx, v);
        rc = replicas_plan(q, a, v, err, sizeof(err));
    }
    if (rc == -ENOMEM || replicas_body(q))
        return native_oom(n, r);
    if (rc) {
        native_set_error(r, q->resp, rc, err);
        return replicas_finish(r);
    }
    /* Even with no move (a broker holding nothing), remove-broker records the mark. */
    q->rec.kind = META_RECORD_REASSIGN;
    q->rec.moves = q->moves;
    q->rec.n_moves = q->n_moves;
    q->pr.done = replicas_recorded;
    q->pr.ctx = q;
    r->pending++;
    meta_propose_replica_change(n->meta, &q->pr, &q->rec);
}
