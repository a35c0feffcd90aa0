/*
 * native_groups: InitProducerId and the group APIs (FindCoordinator .. DescribeGroups) over
 * broker/delivery (idempotence.h, coordinator.h).
 *
 * Errors travel as the Response's error_code for requests about one group (JoinGroup,
 * SyncGroup, Heartbeat, LeaveGroup, FindCoordinator, a bad group id in OffsetFetch), per
 * partition in OffsetCommit and OffsetFetch, and per group in DescribeGroups. Every response
 * carries its body, also on error.
 */
#include "broker/native/native_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "broker/delivery/delivery.h"
#include "broker/meta/meta.h"
#include "common/err.h"
#include "io/io.h"

/* --- InitProducerId --------------------------------------------------------------------------- */

struct native_init_state {
    struct idem_init in;
    struct native *n;
    struct svc_req *r;
    Ringlog__Response *resp;
};

static void native_init_answer(struct svc_req *r)
{
    struct native_init_state *st = r->state;
    Ringlog__InitProducerIdResponse *body = st->resp->init_producer_id;
    body->producer_id = st->in.rc ? -1 : st->in.out_id;
    body->producer_epoch = st->in.rc ? -1 : st->in.out_epoch;
    native_set_error(r, st->resp, st->in.rc, st->in.msg);
    st->n->host->respond(r, st->resp, NULL, NULL, NULL, 0);
}

static void native_init_done(struct idem_init *in)
{
    struct native_init_state *st = in->ctx;
    svc_req_op_ended(st->r);
}

void native_init_producer_id(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                             const uint8_t *data)
{
    (void)data;
    const Ringlog__InitProducerIdRequest *q = rq->init_producer_id;
    struct native_init_state *st = native_alloc(r, sizeof(*st));
    Ringlog__InitProducerIdResponse *body = NATIVE_NEW(r, Ringlog__InitProducerIdResponse,
                                                       ringlog__init_producer_id_response__init);
    if (!st || !body || !(st->resp = n->host->response(r)))
        return n->host->respond_error(r, RL_E_LIMIT, "out of request memory");
    st->resp->body_case = RINGLOG__RESPONSE__BODY_INIT_PRODUCER_ID;
    st->resp->init_producer_id = body;
    st->n = n;
    st->r = r;
    st->in.producer_id = q->producer_id;
    st->in.epoch = q->producer_epoch;
    st->in.done = native_init_done;
    st->in.ctx = st;
    r->state = st;
    r->finish = native_init_answer;
    if (idem_init_producer(n->dv->idem, &st->in, io_wall_ms(r->io)) == 1) {
        r->pending++; /* answered once a block of ids is recorded */
        return;
    }
    native_init_answer(r);
}

/* --- FindCoordinator -------------------------------------------------------------------------- */

/* In a cluster the coordinator is the broker leading the group's partition of
 * __consumer_offsets: names it (from the cluster view) when it is another broker. */
static bool native_find_elsewhere(struct native *n, struct svc_req *r, const char *group_id,
                                  Ringlog__FindCoordinatorResponse *body)
{
    uint32_t node = coord_leader_of(n->dv->coord, group_id);
    if (!node || !n->cluster_view)
        return false;
    struct native_cluster_view *v = arena_calloc(r->arena, sizeof(*v));
    if (!v)
        return false;
    n->cluster_view(n->cluster_ctx, v);
    for (uint32_t i = 0; i < v->n_brokers && i < NATIVE_MAX_BROKERS; i++) {
        if ((uint32_t)v->brokers[i].id != node || v->brokers[i].fenced || !v->brokers[i].port)
            continue;
        body->node_id = (int32_t)node;
        body->host = arena_strdup(r->arena, v->brokers[i].host);
        body->port = v->brokers[i].port;
        return body->host != NULL;
    }
    return false;
}

void native_find_coordinator(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                             const uint8_t *data)
{
    (void)data;
    Ringlog__Response *resp = n->host->response(r);
    Ringlog__FindCoordinatorResponse *body = NATIVE_NEW(r, Ringlog__FindCoordinatorResponse,
                                                        ringlog__find_coordinator_response__init);
    if (!resp || !body)
        return native_oom(n, r);
    char msg[COORD_MSG_MAX] = "";
    int rc = coord_find(n->dv->coord, rq->find_coordinator->group_id, msg, sizeof(msg));
    body->node_id = rc ? -1 : n->node_id;
    body->host = rc ? (char *)"" : n->listen_host;
    body->port = rc ? 0 : n->port;
    if (rc == RL_E_NOT_COORDINATOR && native_find_elsewhere(n, r, rq->find_coordinator->group_id,
                                                            body))
        rc = 0; /* the leader of the group's offsets partition, on another broker */
    native_set_error(r, resp, rc, msg);
    resp->body_case = RINGLOG__RESPONSE__BODY_FIND_COORDINATOR;
    resp->find_coordinator = body;
    n->host->respond(r, resp, NULL, NULL, NULL, 0);
}

/* --- JoinGroup -------------------------------------------------------------------------------- */

struct native_join_state {
    struct coord_join j;
    struct native *n;
    Ringlog__Response *resp;
};

static void native_join_done(struct svc_req *r, struct coord_join *j)
{
    struct native_join_state *st = j->ctx;
    Ringlog__JoinGroupResponse *body = st->resp->join_group;
    body->generation = j->generation;
    body->member_id = (char *)j->member_id_out;
    body->leader_id = (char *)j->leader_id;
    body->assignor = (char *)j->assignor;
    body->member_count = j->member_count;
    native_set_error(r, st->resp, j->rc, j->msg);
    st->n->host->respond(r, st->resp, NULL, NULL, NULL, 0);
}

void native_join_group(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                       const uint8_t *data)
{
    (void)data;
    const Ringlog__JoinGroupRequest *q = rq->join_group;
    struct native_join_state *st = native_alloc(r, sizeof(*st));
    Ringlog__JoinGroupResponse *body = NATIVE_NEW(r, Ringlog__JoinGroupResponse,
                                                  ringlog__join_group_response__init);
    if (!st || !body || !(st->resp = n->host->response(r)))
        return native_oom(n, r);
    st->resp->body_case = RINGLOG__RESPONSE__BODY_JOIN_GROUP;
    st->resp->join_group = body;
    st->n = n;
    st->j = (struct coord_join){
        .group_id = q->group_id, .member_id = q->member_id, .client_id = rq->client_id,
        .session_timeout_ms = q->session_timeout_ms,
        .rebalance_timeout_ms = q->rebalance_timeout_ms,
        .topics = (const char *const *)q->topics, .n_topics = q->n_topics,
        .assignors = (const char *const *)q->assignors, .n_assignors = q->n_assignors,
        .done = native_join_done, .ctx = st};
    coord_join(n->dv->coord, r, &st->j);
}

/* --- SyncGroup / Heartbeat / LeaveGroup ------------------------------------------------------- */

/* Groups runs of one topic in tps (in topic order) into TopicPartitions. */
static int native_tp_build(struct svc_req *r, const struct group_tp *tps, uint32_t count,
                           Ringlog__TopicPartitions ***out, size_t *n_out)
{
    uint32_t runs = 0;
    for (uint32_t i = 0; i < count; i++)
        if (i == 0 || strcmp(tps[i].topic, tps[i - 1].topic))
            runs++;
    Ringlog__TopicPartitions **arr = native_alloc(r, runs * sizeof(*arr));
    Ringlog__TopicPartitions *tp = native_alloc(r, runs * sizeof(*tp));
    uint32_t *parts = native_alloc(r, count * sizeof(*parts));
    if (!arr || !tp || !parts)
        return -ENOMEM;
    int32_t k = -1;
    for (uint32_t i = 0; i < count; i++) {
        if (i == 0 || strcmp(tps[i].topic, tps[i - 1].topic)) {
            k++;
            ringlog__topic_partitions__init(&tp[k]);
            tp[k].topic = arena_strdup(r->arena, tps[i].topic);
            if (!tp[k].topic)
                return -ENOMEM;
            tp[k].partitions = &parts[i];
            arr[k] = &tp[k];
        }
        parts[i] = tps[i].partition;
        tp[k].n_partitions++;
    }
    *out = arr;
    *n_out = runs;
    return 0;
}

void native_sync_group(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                       const uint8_t *data)
{
    (void)data;
    const Ringlog__SyncGroupRequest *q = rq->sync_group;
    Ringlog__Response *resp = n->host->response(r);
    Ringlog__SyncGroupResponse *body = NATIVE_NEW(r, Ringlog__SyncGroupResponse,
                                                  ringlog__sync_group_response__init);
    if (!resp || !body)
        return native_oom(n, r);
    resp->body_case = RINGLOG__RESPONSE__BODY_SYNC_GROUP;
    resp->sync_group = body;
    const struct group_tp *tps = NULL;
    uint32_t count = 0;
    char msg[COORD_MSG_MAX] = "";
    int rc = coord_sync(n->dv->coord, q->group_id, q->member_id, q->generation,
                        io_wall_ms(r->io), &tps, &count, msg, sizeof(msg));
    if (rc == 0 && native_tp_build(r, tps, count, &body->assignment, &body->n_assignment))
        return native_oom(n, r);
    native_set_error(r, resp, rc, msg);
    n->host->respond(r, resp, NULL, NULL, NULL, 0);
}

void native_heartbeat(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                      const uint8_t *data)
{
    (void)data;
    const Ringlog__HeartbeatRequest *q = rq->heartbeat;
    Ringlog__Response *resp = n->host->response(r);
    Ringlog__HeartbeatResponse *body = NATIVE_NEW(r, Ringlog__HeartbeatResponse,
                                                  ringlog__heartbeat_response__init);
    if (!resp || !body)
        return native_oom(n, r);
    resp->body_case = RINGLOG__RESPONSE__BODY_HEARTBEAT;
    resp->heartbeat = body;
    char msg[COORD_MSG_MAX] = "";
    int rc = coord_heartbeat(n->dv->coord, q->group_id, q->member_id, q->generation,
                             io_wall_ms(r->io), msg, sizeof(msg));
    native_set_error(r, resp, rc, msg);
    n->host->respond(r, resp, NULL, NULL, NULL, 0);
}

void native_leave_group(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                        const uint8_t *data)
{
    (void)data;
    const Ringlog__LeaveGroupRequest *q = rq->leave_group;
    Ringlog__Response *resp = n->host->response(r);
    Ringlog__LeaveGroupResponse *body = NATIVE_NEW(r, Ringlog__LeaveGroupResponse,
                                                   ringlog__leave_group_response__init);
    if (!resp || !body)
        return native_oom(n, r);
    resp->body_case = RINGLOG__RESPONSE__BODY_LEAVE_GROUP;
    resp->leave_group = body;
    char msg[COORD_MSG_MAX] = "";
    int rc = coord_leave(n->dv->coord, q->group_id, q->member_id, io_wall_ms(r->io), msg,
                         sizeof(msg));
    native_set_error(r, resp, rc, msg);
    n->host->respond(r, resp, NULL, NULL, NULL, 0);
}

/* --- OffsetCommit ----------------------------------------------------------------------------- */

struct native_commit_state {
    struct coord_commit cm;
    struct native *n;
    const Ringlog__OffsetCommitRequest *q;
    Ringlog__Response *resp;
};

static void native_commit_done(struct svc_req *r, struct coord_commit *cm)
{
    struct native_commit_state *st = cm->ctx;
    const Ringlog__OffsetCommitRequest *q = st->q;
    Ringlog__OffsetCommitResponse *body = NATIVE_NEW(r, Ringlog__OffsetCommitResponse,
                                                     ringlog__offset_commit_response__init);
    Ringlog__OffsetCommitTopicResult **trs = native_alloc(r, q->n_topics * sizeof(*trs));
    if (!body || !trs)
        return native_oom(st->n, r);
    size_t k = 0;
    for (size_t i = 0; i < q->n_topics; i++) {
        const Ringlog__OffsetCommitTopic *qt = q->topics[i];
        Ringlog__OffsetCommitTopicResult *tr =
            NATIVE_NEW(r, Ringlog__OffsetCommitTopicResult,
                       ringlog__offset_commit_topic_result__init);
        Ringlog__PartitionResult *prs = native_alloc(r, qt->n_partitions * sizeof(*prs));
        Ringlog__PartitionResult **pps = native_alloc(r, qt->n_partitions * sizeof(*pps));
        if (!tr || !prs || !pps)
            return native_oom(st->n, r);
        tr->name = qt->name;
        tr->n_partitions = qt->n_partitions;
        tr->partitions = pps;
        for (size_t j = 0; j < qt->n_partitions; j++, k++) {
            ringlog__partition_result__init(&prs[j]);
            prs[j].partition = cm->items[k].partition;
            prs[j].error_code = cm->items[k].rc;
            if (cm->items[k].msg)
                prs[j].error_message = (char *)cm->items[k].msg;
            pps[j] = &prs[j];
        }
        trs[i] = tr;
    }
    body->n_topics = q->n_topics;
    body->topics = trs;
    st->resp->body_case = RINGLOG__RESPONSE__BODY_OFFSET_COMMIT;
    st->resp->offset_commit = body;
    native_set_error(r, st->resp, cm->rc, cm->msg);
    st->n->host->respond(r, st->resp, NULL, NULL, NULL, 0);
}

void native_offset_commit(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                          const uint8_t *data)
{
    (void)data;
    const Ringlog__OffsetCommitRequest *q = rq->offset_commit;
    struct native_commit_state *st = native_alloc(r, sizeof(*st));
    size_t total = 0;
    for (size_t i = 0; i < q->n_topics; i++)
        total += q->topics[i]->n_partitions;
    struct coord_commit_item *items = native_alloc(r, (total + 1) * sizeof(*items));
    if (!st || !items || !(st->resp = n->host->response(r)))
        return native_oom(n, r);
    size_t k = 0;
    for (size_t i = 0; i < q->n_topics; i++) {
        const Ringlog__OffsetCommitTopic *qt = q->topics[i];
        for (size_t j = 0; j < qt->n_partitions; j++, k++) {
            const Ringlog__OffsetCommitPartition *p = qt->partitions[j];
            items[k] = (struct coord_commit_item){.topic = qt->name, .partition = p->partition,
                                                  .offset = p->offset, .metadata = p->metadata};
        }
    }
    st->n = n;
    st->q = q;
    st->cm = (struct coord_commit){.group_id = q->group_id, .member_id = q->member_id,
                                   .generation = q->generation, .items = items,
                                   .n_items = total, .done = native_commit_done, .ctx = st};
    coord_commit(n->dv->coord, r, &st->cm);
}

/* --- OffsetFetch ------------------------------------------------------------------------------ */

struct native_visit {
    struct svc_req *r;
    Ringlog__OffsetFetchTopicResult **topics;
    size_t n_topics, cap_topics;
    bool failed;
};

static Ringlog__OffsetFetchPartitionResult *native_offset_result(struct svc_req *r,
                                                                 uint32_t partition,
                                                                 const struct offsets_commit *oc)
{
    Ringlog__OffsetFetchPartitionResult *pr = native_alloc(r, sizeof(*pr));
    if (!pr)
        return NULL;
    ringlog__offset_fetch_partition_result__init(pr);
    pr->partition = partition;
    pr->offset = oc ? oc->offset : -1;
    pr->metadata = oc && oc->metadata ? arena_strdup(r->arena, oc->metadata) : (char *)"";
    return pr->metadata ? pr : NULL;
}

/* Appends a partition result to the topic's entry (created on first sight). */
static void native_visit_one(void *arg, const char *topic, uint32_t partition,
                             const struct offsets_commit *oc)
{
    struct native_visit *v = arg;
    struct svc_req *r = v->r;
    Ringlog__OffsetFetchTopicResult *tr = NULL;
    for (size_t i = 0; i < v->n_topics && !tr; i++)
        if (!strcmp(v->topics[i]->name, topic))
            tr = v->topics[i];
    if (!tr && v->n_topics == v->cap_topics) {
        v->failed = true;
        return;
    }
    if (!tr) {
        tr = native_alloc(r, sizeof(*tr));
        char *name = arena_strdup(r->arena, topic);
        if (!tr || !name) {
            v->failed = true;
            return;
        }
        ringlog__offset_fetch_topic_result__init(tr);
        tr->name = name;
        v->topics[v->n_topics++] = tr;
    }
    /* Partition arrays grow by doubling inside the arena (old arrays are left behind). */
    size_t cnt = tr->n_partitions;
    if ((cnt & (cnt - 1)) == 0) {
        Ringlog__OffsetFetchPartitionResult **na = native_alloc(r, (cnt ? 2 * cnt : 1) *
                                                                   sizeof(*na));
        if (!na) {
            v->failed = true;
            return;
        }
        if (cnt)
            memcpy(na, tr->partitions, cnt * sizeof(*na));
        tr->partitions = na;
    }
    tr->partitions[cnt] = native_offset_result(r, partition, oc);
    if (!tr->partitions[cnt])
        v->failed = true;
    else
        tr->n_partitions++;
}

static int native_offsets_all(struct native *n, struct svc_req *r, const char *group,
                              Ringlog__OffsetFetchResponse *body)
{
    struct native_visit v = {.r = r, .cap_topics = meta_topic_count(n->meta) + 1024};
    v.topics = native_alloc(r, v.cap_topics * sizeof(*v.topics));
    if (!v.topics)
        return -ENOMEM;
    coord_offsets_visit(n->dv->coord, group, native_visit_one, &v);
    if (v.failed)
        return -ENOMEM;
    body->n_topics = v.n_topics;
    body->topics = v.topics;
    return 0;
}

/* One requested topic: its listed partitions, or every committed one when none is listed. */
static int native_offsets_topic(struct native *n, struct svc_req *r, const char *group,
                                const Ringlog__OffsetFetchTopic *qt,
                                Ringlog__OffsetFetchTopicResult **out)
{
    struct native_visit v = {.r = r, .cap_topics = 1};
    Ringlog__OffsetFetchTopicResult *one = NULL;
    v.topics = &one;
    if (qt->n_partitions == 0) {
        struct native_visit all = {.r = r, .cap_topics = meta_topic_count(n->meta) + 1024};
        all.topics = native_alloc(r, all.cap_topics * sizeof(*all.topics));
        if (!all.topics)
            return -ENOMEM;
        coord_offsets_visit(n->dv->coord, group, native_visit_one, &all);
        for (size_t k = 0; k < all.n_topics; k++)
            if (!strcmp(all.topics[k]->name, qt->name))
                one = all.topics[k];
        if (all.failed)
            return -ENOMEM;
    }
    for (size_t k = 0; k < qt->n_partitions; k++) {
        struct offsets_commit oc;
        uint32_t part = qt->partitions[k];
        bool have = coord_offset_get(n->dv->coord, group, qt->name, part, &oc) == 0;
        native_visit_one(&v, qt->name, part, have ? &oc : NULL);
        if (v.failed)
            return -ENOMEM;
        Ringlog__OffsetFetchPartitionResult *pr = one->partitions[one->n_partitions - 1];
        int rc;
        if (!have && !meta_partition(n->meta, qt->name, part, &rc) &&
            rc != RL_E_NOT_LEADER) { /* owned by another broker: exists all the same */
            pr->error_code = rc;
            pr->error_message = (char *)rl_strerror(rc);
        }
    }
    if (!one) {
        one = native_alloc(r, sizeof(*one));
        if (!one)
            return -ENOMEM;
        ringlog__offset_fetch_topic_result__init(one);
        one->name = qt->name;
    }
    *out = one;
    return 0;
}

void native_offset_fetch(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                         const uint8_t *data)
{
    (void)data;
    const Ringlog__OffsetFetchRequest *q = rq->offset_fetch;
    Ringlog__Response *resp = n->host->response(r);
    Ringlog__OffsetFetchResponse *body = NATIVE_NEW(r, Ringlog__OffsetFetchResponse,
                                                    ringlog__offset_fetch_response__init);
    if (!resp || !body)
        return native_oom(n, r);
    resp->body_case = RINGLOG__RESPONSE__BODY_OFFSET_FETCH;
    resp->offset_fetch = body;
    char msg[COORD_MSG_MAX] = "";
    int rc = coord_offsets_check(n->dv->coord, q->group_id, msg, sizeof(msg));
    if (rc == 0 && q->n_topics == 0 && native_offsets_all(n, r, q->group_id, body))
        return native_oom(n, r);
    if (rc == 0 && q->n_topics > 0) {
        body->topics = native_alloc(r, q->n_topics * sizeof(*body->topics));
        if (!body->topics)
            return native_oom(n, r);
        body->n_topics = q->n_topics;
        for (size_t i = 0; i < q->n_topics; i++)
            if (native_offsets_topic(n, r, q->group_id, q->topics[i], &body->topics[i]))
                return native_oom(n, r);
    }
    native_set_error(r, resp, rc, msg);
    n->host->respond(r, resp, NULL, NULL, NULL, 0);
}

/* --- ListGroups / DescribeGroups -------------------------------------------------------------- */

void native_list_groups(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                        const uint8_t *data)
{
    (void)rq;
    (void)data;
    Ringlog__Response *resp = n->host->response(r);
    Ringlog__ListGroupsResponse *body = NATIVE_NEW(r, Ringlog__ListGroupsResponse,
                                                   ringlog__list_groups_response__init);
    if (!resp || !body)
        return native_oom(n, r);
    resp->body_case = RINGLOG__RESPONSE__BODY_LIST_GROUPS;
    resp->list_groups = body;
    char msg[COORD_MSG_MAX] = "";
    struct coord_listing *ls;
    size_t count;
    int rc = coord_list_groups(n->dv->coord, r, &ls, &count, msg, sizeof(msg));
    if (rc == -ENOMEM)
        return native_oom(n, r);
    body->groups = native_alloc(r, (count + 1) * sizeof(*body->groups));
    Ringlog__GroupListing *gl = native_alloc(r, (count + 1) * sizeof(*gl));
    if (!body->groups || !gl)
        return native_oom(n, r);
    for (size_t i = 0; i < count; i++) {
        ringlog__group_listing__init(&gl[i]);
        gl[i].group_id = (char *)ls[i].group_id;
        gl[i].state = (char *)ls[i].state;
        body->groups[i] = &gl[i];
    }
    body->n_groups = count;
    native_set_error(r, resp, rc, msg);
    n->host->respond(r, resp, NULL, NULL, NULL, 0);
}

static int native_describe_one(struct native *n, struct svc_req *r, const char *id,
                               Ringlog__GroupDescription *d)
{
    struct coord_group_desc gd;
    ringlog__group_description__init(d);
    d->group_id = (char *)id;
    if (coord_describe(n->dv->coord, r, id, &gd))
        return -ENOMEM;
    d->state = (char *)gd.state;
    d->assignor = (char *)gd.assignor;
    d->error_code = gd.rc;
    if (gd.msg)
        d->error_message = (char *)gd.msg;
    d->generation = gd.generation;
    if (gd.rc || !gd.n_members)
        return 0;
    d->members = native_alloc(r, gd.n_members * sizeof(*d->members));
    Ringlog__GroupMemberDescription *md = native_alloc(r, gd.n_members * sizeof(*md));
    if (!d->members || !md)
        return -ENOMEM;
    for (uint32_t i = 0; i < gd.n_members; i++) {
        ringlog__group_member_description__init(&md[i]);
        md[i].member_id = (char *)gd.members[i].member_id;
        md[i].client_id = (char *)gd.members[i].client_id;
        if (native_tp_build(r, gd.members[i].assignment, gd.members[i].n_assignment,
                            &md[i].assignment, &md[i].n_assignment))
            return -ENOMEM;
        d->members[i] = &md[i];
    }
    d->n_members = gd.n_members;
    return 0;
}

void native_describe_groups(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                            const uint8_t *data)
{
    (void)data;
    const Ringlog__DescribeGroupsRequest *q = rq->describe_groups;
    Ringlog__Response *resp = n->host->response(r);
    Ringlog__DescribeGroupsResponse *body = NATIVE_NEW(r, Ringlog__DescribeGroupsResponse,
                                                       ringlog__describe_groups_response__init);
    Ringlog__GroupDescription *ds = native_alloc(r, q->n_group_ids * sizeof(*ds));
    if (!resp || !body || !ds)
        return native_oom(n, r);
    body->groups = native_alloc(r, q->n_group_ids * sizeof(*body->groups));
    if (!body->groups)
        return native_oom(n, r);
    for (size_t i = 0; i < q->n_group_ids; i++) {
        if (native_describe_one(n, r, q->group_ids[i], &ds[i]))
            return native_oom(n, r);
        body->groups[i] = &ds[i];
    }
    body->n_groups = q->n_group_ids;
    resp->body_case = RINGLOG__RESPONSE__BODY_DESCRIBE_GROUPS;
    resp->describe_groups = body;
    n->host->respond(r, resp, NULL, NULL, NULL, 0);
}
