/*
 * kserve_group: FindCoordinator, the group protocol (JoinGroup, SyncGroup, Heartbeat,
 * LeaveGroup), OffsetCommit/OffsetFetch and ListGroups/DescribeGroups over the coordinator
 * (broker/delivery/coordinator.h), the same one native groups use. Kafka clients assign on
 * their leader member: their groups are client-side groups (group.h), where the coordinator
 * keeps each member's protocol metadata, hands the leader all of it, and distributes the
 * leader's SyncGroup assignment. Offsets are one table whichever protocol commits them.
 */
#include "broker/kafka/kserve_int.h"

#include <stdio.h>
#include <string.h>

#include "broker/delivery/delivery.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"

static int16_t kserve_group_err(int rc)
{
    return kerr_from_rl(rc, KERR_SCOPE_GROUP);
}

/* --- FindCoordinator -------------------------------------------------------------------------- */

/* In a cluster the coordinator is the broker leading the group's partition of
 * __consumer_offsets: when that is another broker with a Kafka listener, names it at its
 * registered Kafka address (from the cluster view) and returns true. */
static bool kserve_find_elsewhere(struct kafka *k, struct svc_req *r, const char *group_id,
                                  struct kmsg_find_coordinator_resp *resp)
{
    uint32_t node = coord_leader_of(k->dv->coord, group_id);
    if (!node || (int32_t)node == k->node_id || !k->cluster_view)
        return false;
    struct kafka_cluster_view *v = arena_calloc(r->arena, sizeof(*v));
    if (!v)
        return false;
    k->cluster_view(k->cluster_ctx, v);
    for (uint32_t i = 0; i < v->n_brokers && i < KAFKA_MAX_BROKERS; i++) {
        if (v->brokers[i].id != (int32_t)node || !v->brokers[i].port)
            continue;
        char *host = arena_strdup(r->arena, v->brokers[i].host);
        if (!host)
            return false;
        resp->node_id = (int32_t)node;
        resp->host = kstr_of(host);
        resp->port = v->brokers[i].port;
        return true;
    }
    return false;
}

void kserve_find_coordinator(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_find_coordinator_req *q = &kr->body->find_coordinator;
    struct kmsg_find_coordinator_resp *resp = &kr->resp.find_coordinator;
    char *key = kserve_cstr(r, q->key);
    if (!key)
        return kserve_oom(kr, r);
    char msg[COORD_MSG_MAX] = "";
    int rc = q->key_type != 0 ? RL_E_COORDINATOR_NOT_AVAILABLE /* transactions: not served */
                              : coord_find(kr->k->dv->coord, key, msg, sizeof(msg));
    resp->node_id = kr->k->node_id;
    resp->host = kstr_of(kr->k->host_name);
    resp->port = kr->k->port;
    if (rc == RL_E_NOT_COORDINATOR) {
        /* Another broker leads the group's offsets partition: name it (one round trip to
         * the coordinator); while its Kafka address is not known, the client asks again. */
        rc = kserve_find_elsewhere(kr->k, r, key, resp) ? 0 : RL_E_COORDINATOR_NOT_AVAILABLE;
    }
    resp->error_code = kserve_group_err(rc);
    resp->error_message = rc ? kstr_of(arena_strdup(r->arena, msg[0] ? msg : rl_strerror(rc)))
                             : KSTR_NULL;
    if (rc) {
        resp->node_id = -1;
        resp->host = kstr_of("");
        resp->port = -1;
    }
    kserve_answer(kr, r);
}

/* --- JoinGroup -------------------------------------------------------------------------------- */

struct kserve_join {
    struct coord_join j;
    struct group_protocol *protocols;
};

static void kserve_join_done(struct svc_req *r, struct coord_join *j)
{
    struct kserve_req *kr = j->ctx;
    struct kmsg_join_group_resp *resp = &kr->resp.join_group;
    resp->error_code = kserve_group_err(j->rc);
    if (j->rc) {
        RL_DEBUG("Kafka JoinGroup %s from %s: %s", j->group_id, svc_req_peer(r),
                 j->msg ? j->msg : "");
        resp->generation_id = -1;
        resp->protocol_name = kstr_of("");
        resp->leader = kstr_of("");
        resp->member_id = kstr_of(j->rc == RL_E_UNKNOWN_MEMBER_ID ? "" : j->member_id);
        return kserve_answer(kr, r);
    }
    resp->generation_id = j->generation;
    resp->protocol_name = kstr_of(j->assignor);
    resp->leader = kstr_of(j->leader_id);
    resp->member_id = kstr_of(j->member_id_out);
    if (j->n_members) {
        resp->members = kserve_alloc(r, j->n_members, sizeof(*resp->members));
        if (!resp->members)
            return kserve_oom(kr, r);
        for (uint32_t i = 0; i < j->n_members; i++)
            resp->members[i] = (struct kmsg_join_group_member){
                .member_id = kstr_of(j->members[i].member_id),
                .metadata = {(uint8_t *)j->members[i].metadata,
                             (int32_t)j->members[i].metadata_len}};
        resp->n_members = (int32_t)j->n_members;
    }
    kserve_answer(kr, r);
}

void kserve_join_group(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_join_group_req *q = &kr->body->join_group;
    struct kserve_join *op = kserve_alloc(r, 1, sizeof(*op));
    int32_t np = q->n_protocols > 0 ? q->n_protocols : 0;
    struct group_protocol *ps = kserve_alloc(r, (size_t)np, sizeof(*ps));
    char *gid = kserve_cstr(r, q->group_id), *mid = kserve_cstr(r, q->member_id);
    char *ptype = kserve_cstr(r, q->protocol_type);
    if (!op || !ps || !gid || !mid || !ptype)
        return kserve_oom(kr, r);
    for (int32_t i = 0; i < np; i++) {
        ps[i].name = kserve_cstr(r, q->protocols[i].name);
        if (!ps[i].name)
            return kserve_oom(kr, r);
        /* A view into the frame: the group copies it during coord_join. */
        ps[i].metadata = q->protocols[i].metadata.ptr;
        ps[i].metadata_len = q->protocols[i].metadata.len > 0
                                 ? (uint32_t)q->protocols[i].metadata.len : 0;
    }
    kr->op = op;
    op->protocols = ps;
    int32_t st = q->session_timeout_ms, rt = q->rebalance_timeout_ms;
    op->j = (struct coord_join){
        .group_id = gid, .member_id = mid, .client_id = kr->client_id,
        .session_timeout_ms = st > 0 ? (uint32_t)st : 0,
        .rebalance_timeout_ms = rt > 0 ? (uint32_t)rt : (st > 0 ? (uint32_t)st : 0),
        .protocol_type = ptype, .protocols = ps, .n_protocols = (size_t)np,
        .done = kserve_join_done, .ctx = kr};
    if (np == 0 || !ptype[0]) {
        /* Kafka's answer to a join naming no protocol; a server-side join would be taken. */
        op->j.rc = RL_E_INCONSISTENT_PROTOCOL;
        op->j.member_id_out = op->j.leader_id = op->j.assignor = "";
        return kserve_join_done(r, &op->j);
    }
    coord_join(kr->k->dv->coord, r, &op->j);
}

/* --- SyncGroup -------------------------------------------------------------------------------- */

static void kserve_sync_done(struct svc_req *r, struct coord_sync *s)
{
    struct kserve_req *kr = s->ctx;
    struct kmsg_sync_group_resp *resp = &kr->resp.sync_group;
    resp->error_code = kserve_group_err(s->rc);
    resp->assignment = (struct kbytes){(uint8_t *)(s->rc ? (const uint8_t *)"" : s->assignment),
                                       s->rc ? 0 : (int32_t)s->assignment_len};
    if (!resp->assignment.ptr)
        resp->assignment = (struct kbytes){(uint8_t *)"", 0};
    kserve_answer(kr, r);
}

void kserve_sync_group(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_sync_group_req *q = &kr->body->sync_group;
    struct coord_sync *s = kserve_alloc(r, 1, sizeof(*s));
    int32_t na = q->n_assignments > 0 ? q->n_assignments : 0;
    struct group_sync_assignment *as = kserve_alloc(r, (size_t)na, sizeof(*as));
    char *gid = kserve_cstr(r, q->group_id), *mid = kserve_cstr(r, q->member_id);
    if (!s || !as || !gid || !mid)
        return kserve_oom(kr, r);
    for (int32_t i = 0; i < na; i++) {
        as[i].member_id = kserve_cstr(r, q->assignments[i].member_id);
        if (!as[i].member_id)
            return kserve_oom(kr, r);
        /* A view into the frame: the group copies it during coord_sync_client. */
        as[i].data = q->assignments[i].assignment.ptr;
        as[i].len = q->assignments[i].assignment.len > 0
                        ? (uint32_t)q->assignments[i].assignment.len : 0;
    }
    kr->op = s;
    *s = (struct coord_sync){.group_id = gid, .member_id = mid,
                             .generation = q->generation_id, .assignments = as,
                             .n_assignments = (size_t)na, .done = kserve_sync_done, .ctx = kr};
    coord_sync_client(kr->k->dv->coord, r, s);
}

/* --- Heartbeat / LeaveGroup ------------------------------------------------------------------- */

void kserve_heartbeat(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_heartbeat_req *q = &kr->body->heartbeat;
    char *gid = kserve_cstr(r, q->group_id), *mid = kserve_cstr(r, q->member_id);
    if (!gid || !mid)
        return kserve_oom(kr, r);
    char msg[COORD_MSG_MAX] = "";
    int rc = coord_heartbeat(kr->k->dv->coord, gid, mid, q->generation_id, io_wall_ms(r->io),
                             msg, sizeof(msg));
    kr->resp.heartbeat.error_code = kserve_group_err(rc);
    kserve_answer(kr, r);
}

void kserve_leave_group(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_leave_group_req *q = &kr->body->leave_group;
    char *gid = kserve_cstr(r, q->group_id), *mid = kserve_cstr(r, q->member_id);
    if (!gid || !mid)
        return kserve_oom(kr, r);
    char msg[COORD_MSG_MAX] = "";
    int rc = coord_leave(kr->k->dv->coord, gid, mid, io_wall_ms(r->io), msg, sizeof(msg));
    kr->resp.leave_group.error_code = kserve_group_err(rc);
    kserve_answer(kr, r);
}

/* --- OffsetCommit ----------------------------------------------------------------------------- */

static void kserve_commit_done(struct svc_req *r, struct coord_commit *cm)
{
    struct kserve_req *kr = cm->ctx;
    struct kmsg_offset_commit_resp *resp = &kr->resp.offset_commit;
    size_t k = 0;
    for (int32_t i = 0; i < resp->n_topics; i++) {
        struct kmsg_offset_commit_topic_resp *tr = &resp->topics[i];
        for (int32_t j = 0; j < tr->n_partitions; j++, k++) {
            int rc = cm->rc ? cm->rc : cm->items[k].rc;
            tr->partitions[j].error_code = kserve_group_err(rc);
        }
    }
    if (cm->rc || (cm->n_items && cm->items[0].rc))
        RL_DEBUG("Kafka OffsetCommit %s from %s: %s", cm->group_id, svc_req_peer(r),
                 cm->msg ? cm->msg : cm->items[0].msg ? cm->items[0].msg : "");
    kserve_answer(kr, r);
}

void kserve_offset_commit(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_offset_commit_req *q = &kr->body->offset_commit;
    struct kmsg_offset_commit_resp *resp = &kr->resp.offset_commit;
    struct coord_commit *cm = kserve_alloc(r, 1, sizeof(*cm));
    size_t total = 0;
    for (int32_t i = 0; i < q->n_topics; i++)
        total += (size_t)q->topics[i].n_partitions;
    struct coord_commit_item *items = kserve_alloc(r, total, sizeof(*items));
    resp->topics = kserve_alloc(r, (size_t)q->n_topics, sizeof(*resp->topics));
    char *gid = kserve_cstr(r, q->group_id), *mid = kserve_cstr(r, q->member_id);
    if (!cm || !items || !resp->topics || !gid || !mid)
        return kserve_oom(kr, r);
    size_t k = 0;
    for (int32_t i = 0; i < q->n_topics; i++) {
        const struct kmsg_offset_commit_topic *t = &q->topics[i];
        struct kmsg_offset_commit_topic_resp *tr = &resp->topics[i];
        char *name = kserve_cstr(r, t->name);
        tr->partitions = kserve_alloc(r, (size_t)t->n_partitions, sizeof(*tr->partitions));
        if (!name || !tr->partitions)
            return kserve_oom(kr, r);
        tr->name = kstr_of(name);
        tr->n_partitions = t->n_partitions;
        for (int32_t j = 0; j < t->n_partitions; j++, k++) {
            const struct kmsg_offset_commit_partition *p = &t->partitions[j];
            char *md = kserve_cstr(r, p->metadata);
            if (!md)
                return kserve_oom(kr, r);
            tr->partitions[j].partition = p->partition;
            items[k] = (struct coord_commit_item){
                .topic = name, .partition = (uint32_t)p->partition,
                .offset = p->committed_offset, .metadata = md};
        }
    }
    resp->n_topics = q->n_topics;
    kr->op = cm;
    *cm = (struct coord_commit){.group_id = gid, .member_id = mid,
                                .generation = q->generation_id, .items = items,
                                .n_items = total, .done = kserve_commit_done, .ctx = kr};
    coord_commit(kr->k->dv->coord, r, cm);
}

/* --- OffsetFetch ------------------------------------------------------------------------------ */

struct kserve_committed {
    struct svc_req *r;
    struct kmsg_offset_fetch_topic_resp *topics;
    int32_t n_topics, cap_topics;
    bool failed;
};

/* Every committed offset of a group (OffsetFetch v2+ with a null topic list). */
static void kserve_committed_visit(void *arg, const char *topic, uint32_t partition,
                                   const struct offsets_commit *oc)
{
    struct kserve_committed *v = arg;
    if (v->failed)
        return;
    struct kmsg_offset_fetch_topic_resp *t = NULL;
    for (int32_t i = 0; i < v->n_topics && !t; i++)
        if (kstr_eq(v->topics[i].name, topic))
            t = &v->topics[i];
    if (!t) {
        if (v->n_topics == v->cap_topics) {
            int32_t cap = v->cap_topics ? v->cap_topics * 2 : 8;
            struct kmsg_offset_fetch_topic_resp *grown = kserve_alloc(v->r, (size_t)cap,
                                                                      sizeof(*grown));
            if (!grown) {
                v->failed = true;
                return;
            }
            if (v->n_topics)
                memcpy(grown, v->topics, (size_t)v->n_topics * sizeof(*grown));
            v->topics = grown;
            v->cap_topics = cap;
        }
        t = &v->topics[v->n_topics++];
        t->name = kstr_of(arena_strdup(v->r->arena, topic));
    }
    /* Partitions grow one at a time: a group's commits per topic are few. */
    struct kmsg_offset_fetch_partition_resp *ps = kserve_alloc(v->r, (size_t)t->n_partitions + 1,
                                                               sizeof(*ps));
    char *md = arena_strdup(v->r->arena, oc->metadata ? oc->metadata : "");
    if (!ps || !md || !t->name.ptr) {
        v->failed = true;
        return;
    }
    if (t->n_partitions)
        memcpy(ps, t->partitions, (size_t)t->n_partitions * sizeof(*ps));
    ps[t->n_partitions++] = (struct kmsg_offset_fetch_partition_resp){
        .partition = (int32_t)partition, .committed_offset = oc->offset,
        .metadata = kstr_of(md)};
    t->partitions = ps;
}

void kserve_offset_fetch(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_offset_fetch_req *q = &kr->body->offset_fetch;
    struct kmsg_offset_fetch_resp *resp = &kr->resp.offset_fetch;
    struct coord *c = kr->k->dv->coord;
    char *gid = kserve_cstr(r, q->group_id);
    if (!gid)
        return kserve_oom(kr, r);
    char msg[COORD_MSG_MAX] = "";
    int rc = coord_offsets_check(c, gid, msg, sizeof(msg));
    int16_t gerr = kserve_group_err(rc);
    if (q->n_topics < 0) {
        struct kserve_committed v = {.r = r};
        if (rc == 0)
            coord_offsets_visit(c, gid, kserve_committed_visit, &v);
        if (v.failed)
            return kserve_oom(kr, r);
        resp->topics = v.topics;
        resp->n_topics = v.n_topics;
        resp->error_code = gerr;
        return kserve_answer(kr, r);
    }
    resp->topics = kserve_alloc(r, (size_t)q->n_topics, sizeof(*resp->topics));
    if (!resp->topics)
        return kserve_oom(kr, r);
    for (int32_t i = 0; i < q->n_topics; i++) {
        const struct kmsg_offset_fetch_topic *t = &q->topics[i];
        struct kmsg_offset_fetch_topic_resp *tr = &resp->topics[i];
        char *name = kserve_cstr(r, t->name);
        tr->partitions = kserve_alloc(r, (size_t)t->n_partitions, sizeof(*tr->partitions));
        if (!name || !tr->partitions)
            return kserve_oom(kr, r);
        tr->name = kstr_of(name);
        tr->n_partitions = t->n_partitions;
        for (int32_t j = 0; j < t->n_partitions; j++) {
            struct offsets_commit oc;
            int32_t p = t->partitions[j];
            bool have = rc == 0 && p >= 0 &&
                        coord_offset_get(c, gid, name, (uint32_t)p, &oc) == 0;
            char *md = have ? arena_strdup(r->arena, oc.metadata ? oc.metadata : "") : "";
            if (!md)
                return kserve_oom(kr, r);
            tr->partitions[j] = (struct kmsg_offset_fetch_partition_resp){
                .partition = p, .committed_offset = have ? oc.offset : -1,
                .metadata = kstr_of(md), .error_code = gerr};
        }
    }
    resp->n_topics = q->n_topics;
    resp->error_code = gerr;
    kserve_answer(kr, r);
}

/* --- ListGroups / DescribeGroups -------------------------------------------------------------- */

void kserve_list_groups(struct kserve_req *kr, struct svc_req *r)
{
    struct kmsg_list_groups_resp *resp = &kr->resp.list_groups;
    struct coord_listing *gl = NULL;
    size_t n = 0;
    char msg[COORD_MSG_MAX] = "";
    int rc = coord_list_groups(kr->k->dv->coord, r, &gl, &n, msg, sizeof(msg));
    if (rc < 0 && rc != RL_E_COORDINATOR_NOT_AVAILABLE)
        return kserve_oom(kr, r);
    resp->error_code = kserve_group_err(rc < 0 ? rc : 0);
    resp->groups = kserve_alloc(r, rc < 0 ? 0 : n, sizeof(*resp->groups));
    if (!resp->groups)
        return kserve_oom(kr, r);
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        char *id = arena_strdup(r->arena, gl[i].group_id);
        if (!id)
            return kserve_oom(kr, r);
        resp->groups[i] = (struct kmsg_listed_group){
            .group_id = kstr_of(id),
            .protocol_type = kstr_of(gl[i].protocol_type ? gl[i].protocol_type : "")};
    }
    resp->n_groups = rc < 0 ? 0 : (int32_t)n;
    kserve_answer(kr, r);
}

static int kserve_describe_one(struct kserve_req *kr, struct svc_req *r, struct kstr id,
                               struct kmsg_group_desc *gd)
{
    char *gid = kserve_cstr(r, id);
    struct coord_group_desc d;
    if (!gid || coord_describe(kr->k->dv->coord, r, gid, &d))
        return -1;
    gd->group_id = kstr_of(gid);
    /* Kafka describes a group it does not know as Dead, without an error. */
    bool dead = d.rc == RL_E_GROUP_ID_NOT_FOUND;
    gd->error_code = dead ? 0 : kserve_group_err(d.rc);
    gd->state = kstr_of(dead ? "Dead" : d.state ? d.state : "");
    gd->protocol_type = kstr_of(d.protocol_type ? d.protocol_type : "");
    gd->protocol_data = kstr_of(d.assignor ? d.assignor : "");
    gd->members = kserve_alloc(r, d.n_members, sizeof(*gd->members));
    if (!gd->members)
        return -1;
    for (uint32_t i = 0; i < d.n_members; i++) {
        const struct coord_member_desc *m = &d.members[i];
        gd->members[i] = (struct kmsg_group_member_desc){
            .member_id = kstr_of(m->member_id), .client_id = kstr_of(m->client_id),
            .client_host = kstr_of(""),
            .member_metadata = {(uint8_t *)(m->metadata ? m->metadata : (const uint8_t *)""),
                                (int32_t)m->metadata_len},
            .member_assignment = {(uint8_t *)(m->assigned ? m->assigned : (const uint8_t *)""),
                                  (int32_t)m->assigned_len}};
    }
    gd->n_members = (int32_t)d.n_members;
    return 0;
}

void kserve_describe_groups(struct kserve_req *kr, struct svc_req *r)
{
    const struct kmsg_describe_groups_req *q = &kr->body->describe_groups;
    struct kmsg_describe_groups_resp *resp = &kr->resp.describe_groups;
    int32_t n = q->n_groups > 0 ? q->n_groups : 0;
    resp->groups = kserve_alloc(r, (size_t)n, sizeof(*resp->groups));
    if (!resp->groups)
        return kserve_oom(kr, r);
    for (int32_t i = 0; i < n; i++)
        if (kserve_describe_one(kr, r, q->groups[i], &resp->groups[i]))
            return kserve_oom(kr, r);
    resp->n_groups = n;
    kserve_answer(kr, r);
}
