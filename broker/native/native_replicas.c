/*
 * native_replicas: AlterReplicas, the moves of partition replicas (`ringlog topic reassign`,
 * `ringlog cluster remove-broker`). Where it sits: native dispatch -> this file -> meta (the
 * moves recorded as targets through the controller) -> the partition leaders move the replicas
 * (broker/cluster/replica.c). This file only checks the request against the brokers the
 * cluster registered and, for remove-broker, plans the moves; meta checks the moves against
 * the topic table (again on the controller leader).
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

/* Every named replica is a registered, live broker. Returns 0 or a code with err. */
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
        if (id == gone || v->brokers[b].fenced || meta_ids_have(ids, n, id))
            continue;
        if (!best || load[b] < best_load) {
            best = id;
            best_load = load[b];
        }
    }
    return best;
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
    size_t total = 0;
    for (size_t ti = 0; ti < meta_topic_count(m); ti++)
        total += meta_topic_at(m, ti)->partition_count;
    q->moves = native_alloc(q->r, (total + 1) * sizeof(*q->moves));
    if (!q->moves)
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
                         "it to finish (ringlog topic describe %s)", t->name, i, t->name);
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
                             "stay); start another broker first", gone, t->name, i, n);
                    return RL_E_INVALID_ARGUMENT;
                }
                nr[k] = to;
                for (uint32_t b = 0; b < v->n_brokers; b++)
                    load[b] += v->brokers[b].id == (int32_t)to;
            }
            q->moves[q->n_moves++] = (struct meta_move){t->name, i, n, nr};
        }
    }
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
        if (a->remove_broker && !replicas_broker(v, a->remove_broker)) {
            rc = RL_E_UNKNOWN_BROKER;
            snprintf(err, sizeof(err), "broker %u is not registered in the cluster (ringlog "
                     "cluster status lists the brokers)", a->remove_broker);
        } else if (a->remove_broker) {
            rc = replicas_plan_remove(q, v, a->remove_broker, err, sizeof(err));
        } else {
            rc = replicas_from_request(q, a, v, err, sizeof(err));
        }
    }
    if (rc == -ENOMEM || replicas_body(q))
        return native_oom(n, r);
    if (rc || q->n_moves == 0) {
        native_set_error(r, q->resp, rc, err);
        return replicas_finish(r); /* refused, or nothing sits on the broker to remove */
    }
    q->pr.done = replicas_recorded;
    q->pr.ctx = q;
    r->pending++;
    meta_propose_reassign(n->meta, &q->pr, q->moves, q->n_moves);
}
