/*
 * coordinator: group coordination and committed offsets on a single broker (see
 * coordinator.h).
 *
 * Errors travel as the Response's error_code for requests about one group (JoinGroup,
 * SyncGroup, Heartbeat, LeaveGroup, FindCoordinator, a bad group id in OffsetFetch), per
 * partition in OffsetCommit and OffsetFetch, and per group in DescribeGroups. Every response
 * carries its body, also on error.
 *
 * A group lives in the table while it has members; coord_tick drops groups left empty (their
 * committed offsets stay in the offset table and in __consumer_offsets). Memberships are not
 * persisted: after a restart members get UNKNOWN_MEMBER_ID and rejoin, as Kafka's do after a
 * coordinator moves.
 */
#include "broker/delivery/coordinator.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/delivery/delivery.h"
#include "broker/delivery/group.h"
#include "broker/delivery/offsets.h"
#include "broker/meta/meta.h"
#include "broker/server/shard_internal.h"
#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/plog.h"

#define COORD_REPLAY_BUF_BYTES (COORD_BATCH_MAX_BYTES + (1u << 20))
#define COORD_LIST_MAX 100000

struct coord_group {
    struct coord_group *next;
    struct group *g;
};

struct coord {
    struct shard *sh;
    struct offsets_table *offsets;
    struct coord_group *buckets[COORD_GROUP_BUCKETS];
    uint32_t n_groups;
    uint64_t nonce;
    bool stopped;
    struct batch_builder *bb;
    struct coord_stats st;
    /* __consumer_offsets is created on the first commit, in the background; commits wait. */
    bool offsets_creating;
    struct meta_topic_spec offsets_spec;
    struct meta_proposal offsets_pr;
    struct coord_pending *waiting, *waiting_tail;
};

/* A request waiting for a join answer or a commit's append. */
struct coord_pending {
    struct partition_append pa; /* first: the append callback gets &pa */
    struct req *r;
    struct coord *c;
    Ringlog__Response *resp;
    /* join */
    Ringlog__JoinGroupResponse *join;
    /* commit */
    struct partition *p;
    const char *group;
    struct coord_item *items;
    uint32_t n_items;
    struct coord_pending *next_waiting; /* waiting for __consumer_offsets to be created */
};

struct coord_item {
    const char *topic;
    const Ringlog__OffsetCommitPartition *q;
    Ringlog__PartitionResult *res;
};

static void *coord_alloc(struct req *r, size_t n)
{
    return arena_calloc(&r->arena, n ? n : 1);
}

static void coord_oom(struct req *r)
{
    req_respond_error(r, RL_E_LIMIT, "request needs more broker memory than one request may use");
}

static int64_t coord_now_ms(const struct coord *c)
{
    return io_wall_ms(c->sh->io);
}

/* --- group table ------------------------------------------------------------------------------ */

static uint32_t coord_bucket(const char *id)
{
    uint32_t h = 2166136261u;
    for (const char *s = id; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % COORD_GROUP_BUCKETS;
}

static int coord_check_id(const char *id, char *msg, size_t cap)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > GROUP_ID_MAX) {
        snprintf(msg, cap, "group id must be 1-%d bytes, got %zu", GROUP_ID_MAX, n);
        return RL_E_INVALID_GROUP_ID;
    }
    for (size_t i = 0; i < n; i++) {
        if ((uint8_t)id[i] < 0x20 || id[i] == 0x7f) {
            snprintf(msg, cap, "group id contains a control byte at %zu", i);
            return RL_E_INVALID_GROUP_ID;
        }
    }
    return 0;
}

static struct group *coord_find(const struct coord *c, const char *id)
{
    for (struct coord_group *cg = c->buckets[coord_bucket(id)]; cg; cg = cg->next)
        if (!strcmp(group_id_of(cg->g), id))
            return cg->g;
    return NULL;
}

static int coord_partitions(void *arg, const char *topic)
{
    struct coord *c = arg;
    const struct meta_topic *t = meta_topic_find(c->sh->meta, topic);
    return t ? (int)t->partition_count : RL_E_UNKNOWN_TOPIC;
}

static void coord_join_done(void *token, const struct group_join_result *res);

static struct group *coord_get_or_create(struct coord *c, const char *id, int *err)
{
    struct group *g = coord_find(c, id);
    if (g)
        return g;
    if (c->n_groups >= c->sh->cfg.max_groups) {
        *err = RL_E_LIMIT;
        return NULL;
    }
    struct group_limits lim = {
        .max_members = c->sh->cfg.group_max_members,
        .min_session_timeout_ms = (int32_t)c->sh->cfg.group_min_session_timeout_ms,
        .max_session_timeout_ms = (int32_t)c->sh->cfg.group_max_session_timeout_ms,
    };
    struct coord_group *cg = calloc(1, sizeof(*cg));
    g = cg ? group_create(id, &lim, c->nonce++, coord_partitions, c, coord_join_done) : NULL;
    if (!g) {
        free(cg);
        *err = -ENOMEM;
        return NULL;
    }
    cg->g = g;
    uint32_t b = coord_bucket(id);
    cg->next = c->buckets[b];
    c->buckets[b] = cg;
    c->n_groups++;
    return g;
}

/* --- replay of __consumer_offsets ------------------------------------------------------------- */

static int coord_replay_batches(struct coord *c, struct batch_reader *rd, const uint8_t *buf,
                                int len, const struct partition *p)
{
    int pos = 0;
    while (pos < len) {
        struct batch_header h;
        int rc = batch_reader_open(rd, buf + pos, (size_t)(len - pos), &h);
        if (rc)
            return rc;
        struct batch_record rec;
        while ((rc = batch_reader_next(rd, &rec)) == 1) {
            if (offsets_apply_record(c->offsets, rec.key, rec.key_len, rec.value,
                                     rec.value_len) != 0) {
                char where[300];
                snprintf(where, sizeof(where), "%s-%u", partition_topic(p),
                         partition_index(p));
                RL_CORRUPT(where, 0, rec.offset, "commit record does not decode; skipped");
            }
        }
        if (rc < 0)
            return rc;
        pos += (int)h.batch_len;
    }
    return 0;
}

static int coord_replay(struct coord *c)
{
    const struct meta_topic *t = meta_topic_find(c->sh->meta, OFFSETS_TOPIC);
    if (!t)
        return 0;
    int rc = 0;
    uint8_t *buf = malloc(COORD_REPLAY_BUF_BYTES);
    struct batch_reader *rd = batch_reader_create(RL_BATCH_MAX_BYTES);
    if (!buf || !rd) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint32_t k = 0; k < t->partition_count && rc == 0; k++) {
        struct partition *p = t->parts[k];
        uint64_t off = partition_start_offset(p), end = partition_visible_end(p);
        for (uint32_t guard = 0; off < end && guard < (1u << 24); guard++) {
            int n = partition_read_copy(p, off, COORD_REPLAY_BUF_BYTES / 2, buf,
                                   COORD_REPLAY_BUF_BYTES);
            if (n <= 0) {
                rc = n;
                break;
            }
            uint64_t next = off;
            for (int pos = 0; pos < n;) {
                struct batch_header h;
                if (batch_header_decode(buf + pos, (size_t)(n - pos), &h))
                    break;
                next = h.base_offset + h.record_count;
                pos += (int)h.batch_len;
            }
            rc = coord_replay_batches(c, rd, buf, n, p);
            if (rc || next <= off)
                break;
            off = next;
        }
    }
out:
    free(buf);
    batch_reader_destroy(rd);
    return rc;
}

int coord_create(struct shard *sh, struct coord **out, char *err, size_t err_cap)
{
    struct coord *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->sh = sh;
    c->nonce = (uint64_t)io_wall_ms(sh->io) << 16;
    c->offsets = offsets_table_create(COORD_MAX_OFFSETS);
    c->bb = batch_builder_create(COORD_BATCH_MAX_BYTES, BATCH_CODEC_NONE, 0);
    if (!c->offsets || !c->bb) {
        coord_destroy(c);
        return -ENOMEM;
    }
    int rc = coord_replay(c);
    if (rc) {
        snprintf(err, err_cap, "cannot replay committed offsets from %s: %s", OFFSETS_TOPIC,
                 rl_strerror(rc));
        coord_destroy(c);
        return rc;
    }
    if (offsets_count(c->offsets))
        RL_INFO("committed offsets: %u replayed from %s", offsets_count(c->offsets),
                OFFSETS_TOPIC);
    *out = c;
    return 0;
}

void coord_stop(struct coord *c)
{
    if (!c || c->stopped)
        return;
    c->stopped = true;
    for (uint32_t b = 0; b < COORD_GROUP_BUCKETS; b++) {
        while (c->buckets[b]) {
            struct coord_group *cg = c->buckets[b];
            c->buckets[b] = cg->next;
            group_destroy(cg->g); /* answers pending joins */
            free(cg);
        }
    }
    c->n_groups = 0;
}

void coord_destroy(struct coord *c)
{
    if (!c)
        return;
    coord_stop(c);
    offsets_table_destroy(c->offsets);
    batch_builder_destroy(c->bb);
    free(c);
}

void coord_tick(struct coord *c, int64_t now_ms)
{
    if (c->stopped)
        return;
    for (uint32_t b = 0; b < COORD_GROUP_BUCKETS; b++) {
        struct coord_group **pp = &c->buckets[b];
        while (*pp) {
            struct coord_group *cg = *pp;
            c->st.members_expired += group_tick(cg->g, now_ms);
            if (group_get_state(cg->g) == GROUP_EMPTY && group_member_count(cg->g) == 0) {
                *pp = cg->next;
                group_destroy(cg->g);
                free(cg);
                c->n_groups--;
            } else {
                pp = &cg->next;
            }
        }
    }
}

void coord_get_stats(const struct coord *c, struct coord_stats *out)
{
    *out = c->st;
    out->groups = c->n_groups;
    out->members = 0;
    for (uint32_t b = 0; b < COORD_GROUP_BUCKETS; b++)
        for (struct coord_group *cg = c->buckets[b]; cg; cg = cg->next)
            out->members += group_member_count(cg->g);
    out->committed_offsets = offsets_count(c->offsets);
}

/* --- responses -------------------------------------------------------------------------------- */

static void coord_set_error(struct req *r, Ringlog__Response *resp, int rc, const char *msg)
{
    resp->error_code = rc;
    if (rc) {
        resp->error_message = arena_strdup(&r->arena, msg && msg[0] ? msg : rl_strerror(rc));
        if (!resp->error_message)
            resp->error_message = (char *)rl_strerror(rc);
    }
}

/* Checks that group requests can be served now and the group id is valid. */
static int coord_precheck(struct coord *c, const char *group_id, char *msg, size_t cap)
{
    if (!c || c->stopped || c->sh->stopping) {
        snprintf(msg, cap, "the broker is shutting down; find the coordinator again and retry");
        return RL_E_COORDINATOR_NOT_AVAILABLE;
    }
    return group_id ? coord_check_id(group_id, msg, cap) : 0;
}

static void coord_finish(struct req *r)
{
    struct coord_pending *cp = r->state;
    req_respond(r, cp->resp, NULL, 0);
}

/* The deferred work of r is over: let the loop send the response. */
static void coord_pending_over(struct req *r)
{
    RL_ASSERT(r->pending > 0);
    r->pending--;
    if (r->pending == 0 && r->conn) {
        r->needs_finish = true;
        shard_mark_conn(r->conn);
    }
}

/* --- FindCoordinator -------------------------------------------------------------------------- */

void coord_find_coordinator(struct req *r, const Ringlog__FindCoordinatorRequest *q)
{
    struct shard *sh = r->sh;
    Ringlog__Response *resp = req_response(r);
    Ringlog__FindCoordinatorResponse *body = coord_alloc(r, sizeof(*body));
    if (!resp || !body)
        return coord_oom(r);
    ringlog__find_coordinator_response__init(body);
    char msg[200] = "";
    int rc = coord_precheck(sh->dv ? sh->dv->coord : NULL, q->group_id, msg, sizeof(msg));
    body->node_id = rc ? -1 : sh->cfg.node_id;
    body->host = rc ? (char *)"" : sh->cfg.listen_host;
    body->port = rc ? 0 : sh->port;
    coord_set_error(r, resp, rc, msg);
    resp->body_case = RINGLOG__RESPONSE__BODY_FIND_COORDINATOR;
    resp->find_coordinator = body;
    req_respond(r, resp, NULL, 0);
}

/* --- JoinGroup -------------------------------------------------------------------------------- */

static void coord_join_done(void *token, const struct group_join_result *res)
{
    struct req *r = token;
    struct coord_pending *cp = r->state;
    Ringlog__JoinGroupResponse *jb = cp->join;
    if (res->error) {
        coord_set_error(r, cp->resp, res->error, NULL);
    } else {
        jb->generation = res->generation;
        jb->member_id = arena_strdup(&r->arena, res->member_id);
        jb->leader_id = arena_strdup(&r->arena, res->leader_id);
        jb->assignor = arena_strdup(&r->arena, res->assignor ? res->assignor : "");
        jb->member_count = res->member_count;
        if (!jb->member_id || !jb->leader_id || !jb->assignor) {
            jb->member_id = jb->leader_id = jb->assignor = (char *)"";
            coord_set_error(r, cp->resp, RL_E_LIMIT, "out of request memory");
        }
        cp->c->st.rebalances_completed++;
    }
    coord_pending_over(r);
}

static const char *coord_join_msg(int rc)
{
    switch (rc) {
    case RL_E_INVALID_SESSION_TIMEOUT:
        return "session_timeout_ms is outside [group.min.session.timeout.ms, "
               "group.max.session.timeout.ms]";
    case RL_E_INCONSISTENT_PROTOCOL:
        return "the member's assignors (range, roundrobin) share none with the group's members";
    case RL_E_UNKNOWN_MEMBER_ID:
        return "unknown member id; join again with an empty member id";
    case RL_E_LIMIT:
        return "the group has its maximum of members (group.max.members) or the broker its "
               "maximum of groups (max.groups)";
    case RL_E_INVALID_ARGUMENT:
        return "invalid subscription: topics must be non-empty names (at most 256)";
    default:
        return NULL;
    }
}

void coord_join_group(struct req *r, const Ringlog__JoinGroupRequest *q, const char *client_id)
{
    struct coord *c = r->sh->dv->coord;
    Ringlog__Response *resp = req_response(r);
    Ringlog__JoinGroupResponse *body = coord_alloc(r, sizeof(*body));
    struct coord_pending *cp = coord_alloc(r, sizeof(*cp));
    if (!resp || !body || !cp)
        return coord_oom(r);
    ringlog__join_group_response__init(body);
    body->member_id = body->leader_id = body->assignor = (char *)"";
    resp->body_case = RINGLOG__RESPONSE__BODY_JOIN_GROUP;
    resp->join_group = body;
    cp->r = r;
    cp->c = c;
    cp->resp = resp;
    cp->join = body;
    char msg[200] = "";
    int rc = coord_precheck(c, q->group_id, msg, sizeof(msg));
    if (rc == 0 && (q->session_timeout_ms > INT32_MAX || q->rebalance_timeout_ms > INT32_MAX))
        rc = RL_E_INVALID_SESSION_TIMEOUT;
    if (rc == 0 && strlen(q->member_id) > GROUP_MEMBER_ID_MAX)
        rc = RL_E_UNKNOWN_MEMBER_ID;
    struct group *g = rc ? NULL : coord_get_or_create(c, q->group_id, &rc);
    if (g) {
        struct group_member_spec spec = {
            .member_id = q->member_id,
            .client_id = client_id && client_id[0] ? client_id
                         : r->conn ? r->conn->peer : "",
            .session_timeout_ms = (int32_t)q->session_timeout_ms,
            .rebalance_timeout_ms = q->rebalance_timeout_ms ? (int32_t)q->rebalance_timeout_ms
                                                            : (int32_t)q->session_timeout_ms,
            .topics = (const char *const *)q->topics,
            .topic_count = (uint32_t)(q->n_topics > UINT32_MAX ? UINT32_MAX : q->n_topics),
            .assignors = (const char *const *)q->assignors,
            .assignor_count = (uint32_t)q->n_assignors,
        };
        r->state = cp;
        r->finish = coord_finish;
        r->pending++;
        rc = group_join(g, &spec, coord_now_ms(c), r);
        if (rc == 0)
            return; /* answered through coord_join_done, maybe already */
        r->pending--;
        if (group_member_count(g) == 0 && group_get_state(g) == GROUP_EMPTY)
            coord_tick(c, coord_now_ms(c)); /* drop the group this failed join created */
    }
    if (!msg[0] && coord_join_msg(rc))
        snprintf(msg, sizeof(msg), "%s", coord_join_msg(rc));
    coord_set_error(r, resp, rc, msg);
    req_respond(r, resp, NULL, 0);
}

/* --- SyncGroup / Heartbeat / LeaveGroup ------------------------------------------------------- */

/* Looks the group up for a member request; unknown groups answer UNKNOWN_MEMBER_ID (after a
 * restart memberships are gone and members must rejoin). */
static struct group *coord_member_group(struct req *r, const char *group_id,
                                        const char *member_id, Ringlog__Response *resp)
{
    struct coord *c = r->sh->dv->coord;
    char msg[200] = "";
    int rc = coord_precheck(c, group_id, msg, sizeof(msg));
    struct group *g = rc ? NULL : coord_find(c, group_id);
    if (!rc && (!g || !member_id || !member_id[0])) {
        rc = RL_E_UNKNOWN_MEMBER_ID;
        snprintf(msg, sizeof(msg), "%s", !g ? "group has no members on this coordinator; "
                 "join it again with an empty member id" : "member id is empty; join first");
        g = NULL;
    }
    coord_set_error(r, resp, rc, msg);
    return g;
}

static const char *coord_member_msg(int rc)
{
    switch (rc) {
    case RL_E_UNKNOWN_MEMBER_ID: return "unknown member (removed after its session timeout or "
                                        "a leave); join again with an empty member id";
    case RL_E_ILLEGAL_GENERATION: return "stale generation; join the group again";
    case RL_E_REBALANCE_IN_PROGRESS: return "the group is rebalancing; join again";
    default: return NULL;
    }
}

static int coord_tp_build(struct req *r, const struct group_tp *tps, uint32_t n,
                          Ringlog__TopicPartitions ***out, size_t *n_out)
{
    uint32_t runs = 0;
    for (uint32_t i = 0; i < n; i++)
        if (i == 0 || strcmp(tps[i].topic, tps[i - 1].topic))
            runs++;
    Ringlog__TopicPartitions **arr = coord_alloc(r, runs * sizeof(*arr));
    Ringlog__TopicPartitions *tp = coord_alloc(r, runs * sizeof(*tp));
    uint32_t *parts = coord_alloc(r, n * sizeof(*parts));
    if (!arr || !tp || !parts)
        return -ENOMEM;
    int32_t k = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(tps[i].topic, tps[i - 1].topic)) {
            k++;
            ringlog__topic_partitions__init(&tp[k]);
            tp[k].topic = arena_strdup(&r->arena, tps[i].topic);
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

void coord_sync_group(struct req *r, const Ringlog__SyncGroupRequest *q)
{
    Ringlog__Response *resp = req_response(r);
    Ringlog__SyncGroupResponse *body = coord_alloc(r, sizeof(*body));
    if (!resp || !body)
        return coord_oom(r);
    ringlog__sync_group_response__init(body);
    resp->body_case = RINGLOG__RESPONSE__BODY_SYNC_GROUP;
    resp->sync_group = body;
    struct group *g = coord_member_group(r, q->group_id, q->member_id, resp);
    if (g) {
        const struct group_tp *tps;
        uint32_t n = 0;
        int rc = group_sync(g, q->member_id, q->generation, coord_now_ms(r->sh->dv->coord),
                            &tps, &n);
        if (rc == 0 && coord_tp_build(r, tps, n, &body->assignment, &body->n_assignment))
            return coord_oom(r);
        coord_set_error(r, resp, rc, coord_member_msg(rc));
    }
    req_respond(r, resp, NULL, 0);
}

void coord_heartbeat(struct req *r, const Ringlog__HeartbeatRequest *q)
{
    Ringlog__Response *resp = req_response(r);
    Ringlog__HeartbeatResponse *body = coord_alloc(r, sizeof(*body));
    if (!resp || !body)
        return coord_oom(r);
    ringlog__heartbeat_response__init(body);
    resp->body_case = RINGLOG__RESPONSE__BODY_HEARTBEAT;
    resp->heartbeat = body;
    struct group *g = coord_member_group(r, q->group_id, q->member_id, resp);
    if (g) {
        int rc = group_heartbeat(g, q->member_id, q->generation,
                                 coord_now_ms(r->sh->dv->coord));
        coord_set_error(r, resp, rc, coord_member_msg(rc));
    }
    req_respond(r, resp, NULL, 0);
}

void coord_leave_group(struct req *r, const Ringlog__LeaveGroupRequest *q)
{
    Ringlog__Response *resp = req_response(r);
    Ringlog__LeaveGroupResponse *body = coord_alloc(r, sizeof(*body));
    if (!resp || !body)
        return coord_oom(r);
    ringlog__leave_group_response__init(body);
    resp->body_case = RINGLOG__RESPONSE__BODY_LEAVE_GROUP;
    resp->leave_group = body;
    struct group *g = coord_member_group(r, q->group_id, q->member_id, resp);
    if (g) {
        int rc = group_leave(g, q->member_id, coord_now_ms(r->sh->dv->coord));
        coord_set_error(r, resp, rc, coord_member_msg(rc));
    }
    req_respond(r, resp, NULL, 0);
}

/* --- OffsetCommit ----------------------------------------------------------------------------- */

static void coord_commit_done(struct partition_append *pa, int result)
{
    struct coord_pending *cp = (struct coord_pending *)pa;
    struct coord *c = cp->c;
    int64_t now_ms = coord_now_ms(c);
    for (uint32_t i = 0; i < cp->n_items; i++) {
        struct coord_item *it = &cp->items[i];
        int rc = result;
        if (rc == 0) {
            struct offsets_commit oc = {.offset = it->q->offset, .commit_ms = now_ms,
                                        .metadata = it->q->metadata};
            rc = offsets_put(c->offsets, cp->group, it->topic, it->q->partition, &oc);
        }
        if (rc) {
            it->res->error_code = rc;
            it->res->error_message = (char *)rl_strerror(rc);
            c->st.commit_errors++;
        }
    }
    c->st.commits++;
    coord_pending_over(cp->r);
}

/* Validates one partition of a commit; returns 0 or its error (message in res). */
static int coord_commit_check(struct req *r, const char *topic,
                              const Ringlog__OffsetCommitPartition *q,
                              Ringlog__PartitionResult *res)
{
    int rc;
    const char *why = NULL;
    if (!meta_partition(r->sh->meta, topic, q->partition, &rc))
        why = rc == RL_E_UNKNOWN_TOPIC ? "topic does not exist" : "partition does not exist";
    else if (q->offset < 0 && (rc = RL_E_INVALID_REQUEST))
        why = "offset must be >= 0 (the next offset to consume)";
    else if (strlen(q->metadata) > OFFSETS_METADATA_MAX && (rc = RL_E_INVALID_REQUEST))
        why = "metadata is longer than 1024 bytes";
    if (why) {
        res->error_code = rc;
        res->error_message = arena_printf(&r->arena, "%s-%u: %s", topic, q->partition, why);
    }
    return why ? rc : 0;
}

/* Builds the response skeleton and the list of valid items. Returns the item count or -1. */
static int coord_commit_items(struct req *r, const Ringlog__OffsetCommitRequest *q,
                              Ringlog__OffsetCommitResponse *body, int group_rc,
                              const char *group_msg, struct coord_item **items_out)
{
    size_t total = 0;
    for (size_t i = 0; i < q->n_topics; i++)
        total += q->topics[i]->n_partitions;
    struct coord_item *items = coord_alloc(r, total * sizeof(*items));
    body->topics = coord_alloc(r, q->n_topics * sizeof(*body->topics));
    if (!items || !body->topics)
        return -1;
    body->n_topics = q->n_topics;
    int n = 0;
    for (size_t i = 0; i < q->n_topics; i++) {
        const Ringlog__OffsetCommitTopic *qt = q->topics[i];
        Ringlog__OffsetCommitTopicResult *tr = coord_alloc(r, sizeof(*tr));
        Ringlog__PartitionResult *prs = coord_alloc(r, qt->n_partitions * sizeof(*prs));
        Ringlog__PartitionResult **pps = coord_alloc(r, qt->n_partitions * sizeof(*pps));
        if (!tr || !prs || !pps)
            return -1;
        ringlog__offset_commit_topic_result__init(tr);
        tr->name = qt->name;
        tr->n_partitions = qt->n_partitions;
        tr->partitions = pps;
        body->topics[i] = tr;
        for (size_t k = 0; k < qt->n_partitions; k++) {
            ringlog__partition_result__init(&prs[k]);
            pps[k] = &prs[k];
            prs[k].partition = qt->partitions[k]->partition;
            if (group_rc) {
                prs[k].error_code = group_rc;
                prs[k].error_message = (char *)group_msg;
            } else if (coord_commit_check(r, qt->name, qt->partitions[k], &prs[k]) == 0) {
                items[n++] = (struct coord_item){qt->name, qt->partitions[k], &prs[k]};
            }
        }
    }
    *items_out = items;
    return n;
}

/* Encodes the items as one batch in the coordinator's builder. Returns its length or an
 * error. */
static int coord_commit_batch(struct coord *c, const char *group, const struct coord_item *items,
                              uint32_t n, int64_t now_ms, const uint8_t **out)
{
    uint8_t key[OFFSETS_KEY_MAX], value[OFFSETS_VALUE_MAX];
    batch_builder_reset(c->bb, -1, -1, -1);
    for (uint32_t i = 0; i < n; i++) {
        struct offsets_commit oc = {.offset = items[i].q->offset, .commit_ms = now_ms,
                                    .metadata = items[i].q->metadata};
        int kl = offsets_encode_key(group, items[i].topic, items[i].q->partition, key,
                                    sizeof(key));
        int vl = offsets_encode_value(&oc, value, sizeof(value));
        if (kl < 0 || vl < 0)
            return kl < 0 ? kl : vl;
        struct batch_record_in rec = {.key = key, .key_len = (size_t)kl, .value = value,
                                      .value_len = (size_t)vl, .timestamp = now_ms};
        int rc = batch_builder_add(c->bb, &rec);
        if (rc)
            return rc;
    }
    return batch_builder_finish(c->bb, out);
}

static int coord_commit_group_check(struct coord *c, const Ringlog__OffsetCommitRequest *q,
                                    char *msg, size_t cap)
{
    int rc = coord_precheck(c, q->group_id, msg, cap);
    if (rc)
        return rc;
    const struct group *g = coord_find(c, q->group_id);
    if (!g) {
        if (q->member_id[0] || q->generation != -1) {
            snprintf(msg, cap, "group %s has no members on this coordinator; a member commit "
                     "needs a current membership (join again), a standalone commit uses an "
                     "empty member id and generation -1", q->group_id);
            return RL_E_UNKNOWN_MEMBER_ID;
        }
        return 0;
    }
    rc = group_check_commit(g, q->member_id, q->generation);
    if (rc)
        snprintf(msg, cap, "%s", rc == RL_E_ILLEGAL_GENERATION
                 ? "commit for a stale generation; join the group again"
                 : "unknown member (or a standalone commit to a group with members); join "
                   "again");
    return rc;
}

/* Fails every item of a commit that never reached the log. */
static void coord_commit_fail(struct coord_pending *cp, int rc, const char *msg)
{
    struct req *r = cp->r;
    for (uint32_t i = 0; i < cp->n_items; i++) {
        cp->items[i].res->error_code = rc;
        cp->items[i].res->error_message = msg && msg[0] ? arena_strdup(&r->arena, msg)
                                                        : (char *)rl_strerror(rc);
        if (!cp->items[i].res->error_message)
            cp->items[i].res->error_message = (char *)rl_strerror(rc);
    }
    cp->c->st.commit_errors++;
}

/* Appends the commit's batch to the group's partition of __consumer_offsets (which exists).
 * Returns 0 when the append is under way (r->pending counts it), else the error. */
static int coord_commit_append(struct coord_pending *cp, char *msg, size_t cap)
{
    struct coord *c = cp->c;
    const struct meta_topic *t = meta_topic_find(c->sh->meta, OFFSETS_TOPIC);
    int rc = RL_E_UNKNOWN_TOPIC;
    struct partition *p = t ? t->parts[offsets_partition_for(cp->group, t->partition_count)]
                            : NULL;
    const uint8_t *batch = NULL;
    int len = p ? coord_commit_batch(c, cp->group, cp->items, cp->n_items, coord_now_ms(c),
                                     &batch) : rc;
    if (!p)
        snprintf(msg, cap, "%s does not exist", OFFSETS_TOPIC);
    if (len <= 0)
        return len ? len : RL_E_INTERNAL;
    cp->p = p;
    cp->pa.batch = batch;
    cp->pa.len = (uint32_t)len;
    cp->pa.done = coord_commit_done;
    cp->pa.ctx = cp;
    cp->pa.records = cp->n_items;
    cp->pa.ack = PARTITION_ACK_ALL;
    rc = partition_append(p, &cp->pa);
    if (rc == 0)
        cp->r->pending++;
    return rc;
}

/* __consumer_offsets now exists (or could not be created): the commits that waited for it go
 * on. Runs from the loop (the proposal's completion). */
static void coord_offsets_created(struct meta_proposal *pr)
{
    struct coord *c = pr->ctx;
    c->offsets_creating = false;
    if (pr->rc == 0)
        RL_INFO("created %s with %u partitions", OFFSETS_TOPIC,
                c->sh->cfg.offsets_topic_partitions);
    for (uint32_t guard = 0; c->waiting && guard < 10000000; guard++) {
        struct coord_pending *cp = c->waiting;
        c->waiting = cp->next_waiting;
        char msg[1024] = "";
        int rc = pr->rc;
        if (rc)
            snprintf(msg, sizeof(msg), "cannot create %s: %s", OFFSETS_TOPIC, pr->msg);
        else
            rc = coord_commit_append(cp, msg, sizeof(msg));
        if (rc)
            coord_commit_fail(cp, rc, msg);
        coord_pending_over(cp->r); /* the wait is over; an append counts on its own */
    }
    c->waiting_tail = NULL;
}

/* Parks a commit until __consumer_offsets exists, starting its creation (in the background:
 * a metadata record and one log per partition) if nobody has. */
static void coord_commit_wait_topic(struct coord_pending *cp)
{
    struct coord *c = cp->c;
    cp->next_waiting = NULL;
    if (c->waiting_tail)
        c->waiting_tail->next_waiting = cp;
    else
        c->waiting = cp;
    c->waiting_tail = cp;
    cp->r->pending++;
    if (c->offsets_creating)
        return;
    c->offsets_creating = true;
    c->offsets_spec = (struct meta_topic_spec){
        .name = OFFSETS_TOPIC, .partitions = (int32_t)c->sh->cfg.offsets_topic_partitions};
    c->offsets_pr.done = coord_offsets_created;
    c->offsets_pr.ctx = c;
    meta_propose_create(c->sh->meta, &c->offsets_pr, &c->offsets_spec);
}

void coord_offset_commit(struct req *r, const Ringlog__OffsetCommitRequest *q)
{
    struct coord *c = r->sh->dv->coord;
    Ringlog__Response *resp = req_response(r);
    Ringlog__OffsetCommitResponse *body = coord_alloc(r, sizeof(*body));
    struct coord_pending *cp = coord_alloc(r, sizeof(*cp));
    if (!resp || !body || !cp)
        return coord_oom(r);
    ringlog__offset_commit_response__init(body);
    resp->body_case = RINGLOG__RESPONSE__BODY_OFFSET_COMMIT;
    resp->offset_commit = body;
    char msg[400] = "";
    int grc = coord_commit_group_check(c, q, msg, sizeof(msg));
    char *gmsg = grc ? arena_strdup(&r->arena, msg) : NULL;
    struct coord_item *items = NULL;
    int n = coord_commit_items(r, q, body, grc, gmsg ? gmsg : rl_strerror(grc), &items);
    if (n < 0)
        return coord_oom(r);
    if (grc == RL_E_INVALID_GROUP_ID || grc == RL_E_COORDINATOR_NOT_AVAILABLE)
        coord_set_error(r, resp, grc, msg);
    if (n == 0)
        return req_respond(r, resp, NULL, 0);
    *cp = (struct coord_pending){.r = r, .c = c, .resp = resp, .group = q->group_id,
                                 .items = items, .n_items = (uint32_t)n};
    r->state = cp;
    r->finish = coord_finish;
    if (!meta_topic_find(c->sh->meta, OFFSETS_TOPIC)) {
        coord_commit_wait_topic(cp);
        return; /* answered once the topic exists and the commit is durable */
    }
    msg[0] = 0;
    int rc = coord_commit_append(cp, msg, sizeof(msg));
    if (rc == 0)
        return; /* answered once durable */
    coord_commit_fail(cp, rc, msg);
    req_respond(r, resp, NULL, 0);
}

/* --- OffsetFetch ------------------------------------------------------------------------------ */

struct coord_visit {
    struct req *r;
    Ringlog__OffsetFetchTopicResult **topics;
    size_t n_topics, cap_topics;
    bool failed;
};

static Ringlog__OffsetFetchPartitionResult *coord_fetch_result(struct req *r, uint32_t partition,
                                                              const struct offsets_commit *oc)
{
    Ringlog__OffsetFetchPartitionResult *pr = coord_alloc(r, sizeof(*pr));
    if (!pr)
        return NULL;
    ringlog__offset_fetch_partition_result__init(pr);
    pr->partition = partition;
    pr->offset = oc ? oc->offset : -1;
    pr->metadata = oc && oc->metadata ? arena_strdup(&r->arena, oc->metadata) : (char *)"";
    return pr->metadata ? pr : NULL;
}

/* Appends a partition result to the topic's entry (created on first sight). */
static void coord_visit_one(void *arg, const char *topic, uint32_t partition,
                            const struct offsets_commit *oc)
{
    struct coord_visit *v = arg;
    struct req *r = v->r;
    Ringlog__OffsetFetchTopicResult *tr = NULL;
    for (size_t i = 0; i < v->n_topics && !tr; i++)
        if (!strcmp(v->topics[i]->name, topic))
            tr = v->topics[i];
    if (!tr && v->n_topics == v->cap_topics) {
        v->failed = true;
        return;
    }
    if (!tr) {
        tr = coord_alloc(r, sizeof(*tr));
        if (!tr || !(tr->name = arena_strdup(&r->arena, topic))) {
            v->failed = true;
            return;
        }
        char *name = tr->name;
        ringlog__offset_fetch_topic_result__init(tr);
        tr->name = name;
        v->topics[v->n_topics++] = tr;
    }
    /* Partition arrays grow by doubling inside the arena (old arrays are left behind). */
    size_t n = tr->n_partitions;
    if ((n & (n - 1)) == 0) {
        Ringlog__OffsetFetchPartitionResult **na = coord_alloc(r, (n ? 2 * n : 1) * sizeof(*na));
        if (!na) {
            v->failed = true;
            return;
        }
        if (n)
            memcpy(na, tr->partitions, n * sizeof(*na));
        tr->partitions = na;
    }
    tr->partitions[n] = coord_fetch_result(r, partition, oc);
    if (!tr->partitions[n])
        v->failed = true;
    else
        tr->n_partitions++;
}

static int coord_fetch_all(struct req *r, struct coord *c, const char *group,
                           Ringlog__OffsetFetchResponse *body)
{
    struct coord_visit v = {.r = r, .cap_topics = meta_topic_count(r->sh->meta) + 1024};
    v.topics = coord_alloc(r, v.cap_topics * sizeof(*v.topics));
    if (!v.topics)
        return -ENOMEM;
    offsets_visit_group(c->offsets, group, coord_visit_one, &v);
    if (v.failed)
        return -ENOMEM;
    body->n_topics = v.n_topics;
    body->topics = v.topics;
    return 0;
}

static int coord_fetch_listed(struct req *r, struct coord *c, const Ringlog__OffsetFetchRequest *q,
                              Ringlog__OffsetFetchResponse *body)
{
    body->topics = coord_alloc(r, q->n_topics * sizeof(*body->topics));
    if (!body->topics)
        return -ENOMEM;
    body->n_topics = q->n_topics;
    for (size_t i = 0; i < q->n_topics; i++) {
        const Ringlog__OffsetFetchTopic *qt = q->topics[i];
        struct coord_visit v = {.r = r, .cap_topics = 1};
        Ringlog__OffsetFetchTopicResult *one = NULL;
        v.topics = &one;
        if (qt->n_partitions == 0) {
            /* Every committed partition of the topic. */
            struct coord_visit all = {.r = r, .cap_topics = meta_topic_count(r->sh->meta) + 1024};
            all.topics = coord_alloc(r, all.cap_topics * sizeof(*all.topics));
            if (!all.topics)
                return -ENOMEM;
            offsets_visit_group(c->offsets, q->group_id, coord_visit_one, &all);
            for (size_t k = 0; k < all.n_topics; k++)
                if (!strcmp(all.topics[k]->name, qt->name))
                    one = all.topics[k];
            if (all.failed)
                return -ENOMEM;
        }
        for (size_t k = 0; k < qt->n_partitions; k++) {
            struct offsets_commit oc;
            uint32_t part = qt->partitions[k];
            bool have = offsets_get(c->offsets, q->group_id, qt->name, part, &oc) == 0;
            coord_visit_one(&v, qt->name, part, have ? &oc : NULL);
            if (v.failed)
                return -ENOMEM;
            Ringlog__OffsetFetchPartitionResult *pr = one->partitions[one->n_partitions - 1];
            int rc;
            if (!have && !meta_partition(r->sh->meta, qt->name, part, &rc)) {
                pr->error_code = rc;
                pr->error_message = (char *)rl_strerror(rc);
            }
        }
        if (!one) {
            one = coord_alloc(r, sizeof(*one));
            if (!one)
                return -ENOMEM;
            ringlog__offset_fetch_topic_result__init(one);
            one->name = qt->name;
        }
        body->topics[i] = one;
    }
    return 0;
}

void coord_offset_fetch(struct req *r, const Ringlog__OffsetFetchRequest *q)
{
    struct coord *c = r->sh->dv->coord;
    Ringlog__Response *resp = req_response(r);
    Ringlog__OffsetFetchResponse *body = coord_alloc(r, sizeof(*body));
    if (!resp || !body)
        return coord_oom(r);
    ringlog__offset_fetch_response__init(body);
    resp->body_case = RINGLOG__RESPONSE__BODY_OFFSET_FETCH;
    resp->offset_fetch = body;
    char msg[200] = "";
    int rc = coord_precheck(c, q->group_id, msg, sizeof(msg));
    if (rc == 0) {
        rc = q->n_topics == 0 ? coord_fetch_all(r, c, q->group_id, body)
                              : coord_fetch_listed(r, c, q, body);
        if (rc)
            return coord_oom(r);
    }
    coord_set_error(r, resp, rc, msg);
    req_respond(r, resp, NULL, 0);
}

/* --- ListGroups / DescribeGroups -------------------------------------------------------------- */

void coord_list_groups(struct req *r, const Ringlog__ListGroupsRequest *q)
{
    (void)q;
    struct coord *c = r->sh->dv->coord;
    Ringlog__Response *resp = req_response(r);
    Ringlog__ListGroupsResponse *body = coord_alloc(r, sizeof(*body));
    if (!resp || !body)
        return coord_oom(r);
    ringlog__list_groups_response__init(body);
    resp->body_case = RINGLOG__RESPONSE__BODY_LIST_GROUPS;
    resp->list_groups = body;
    char msg[200] = "";
    int rc = coord_precheck(c, NULL, msg, sizeof(msg));
    const char **committed = NULL;
    uint32_t n_committed = 0;
    if (rc == 0) {
        uint32_t max = offsets_count(c->offsets) < COORD_LIST_MAX ? offsets_count(c->offsets)
                                                                  : COORD_LIST_MAX;
        committed = coord_alloc(r, max * sizeof(*committed));
        if (!committed)
            return coord_oom(r);
        n_committed = offsets_list_groups(c->offsets, committed, max);
    }
    size_t cap = (rc ? 0 : c->n_groups) + n_committed;
    body->groups = coord_alloc(r, cap * sizeof(*body->groups));
    Ringlog__GroupListing *gl = coord_alloc(r, cap * sizeof(*gl));
    if (!body->groups || !gl)
        return coord_oom(r);
    size_t n = 0;
    for (uint32_t b = 0; rc == 0 && b < COORD_GROUP_BUCKETS; b++) {
        for (struct coord_group *cg = c->buckets[b]; cg; cg = cg->next) {
            ringlog__group_listing__init(&gl[n]);
            gl[n].group_id = (char *)group_id_of(cg->g);
            gl[n].state = (char *)group_state_name(group_get_state(cg->g));
            body->groups[n] = &gl[n];
            n++;
        }
    }
    for (uint32_t i = 0; i < n_committed; i++) {
        if (coord_find(c, committed[i]))
            continue;
        ringlog__group_listing__init(&gl[n]);
        gl[n].group_id = (char *)committed[i];
        gl[n].state = (char *)group_state_name(GROUP_EMPTY);
        body->groups[n] = &gl[n];
        n++;
    }
    body->n_groups = n;
    coord_set_error(r, resp, rc, msg);
    req_respond(r, resp, NULL, 0);
}

static void coord_count_visit(void *arg, const char *topic, uint32_t partition,
                              const struct offsets_commit *oc)
{
    (void)topic;
    (void)partition;
    (void)oc;
    (*(uint32_t *)arg)++;
}

static int coord_describe_one(struct req *r, struct coord *c, const char *id,
                              Ringlog__GroupDescription *d)
{
    ringlog__group_description__init(d);
    d->group_id = (char *)id;
    char msg[200] = "";
    int rc = coord_precheck(c, id, msg, sizeof(msg));
    const struct group *g = rc ? NULL : coord_find(c, id);
    uint32_t commits = 0;
    if (rc == 0 && !g)
        offsets_visit_group(c->offsets, id, coord_count_visit, &commits);
    if (rc == 0 && !g && commits == 0) {
        rc = RL_E_GROUP_ID_NOT_FOUND;
        snprintf(msg, sizeof(msg), "group %s has no members and no committed offsets", id);
    }
    d->state = (char *)group_state_name(g ? group_get_state(g) : GROUP_EMPTY);
    d->assignor = (char *)"";
    if (rc || !g) {
        d->error_code = rc;
        d->error_message = rc ? arena_strdup(&r->arena, msg) : NULL;
        return 0;
    }
    d->generation = group_generation(g);
    uint32_t n = group_member_count(g);
    d->members = coord_alloc(r, n * sizeof(*d->members));
    Ringlog__GroupMemberDescription *md = coord_alloc(r, n * sizeof(*md));
    if (!d->members || !md)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const char *mid, *cid;
        const struct group_tp *tps;
        uint32_t count;
        ringlog__group_member_description__init(&md[i]);
        group_member_at(g, i, &mid, &cid, &tps, &count);
        md[i].member_id = arena_strdup(&r->arena, mid);
        md[i].client_id = arena_strdup(&r->arena, cid ? cid : "");
        if (!md[i].member_id || !md[i].client_id ||
            coord_tp_build(r, tps, count, &md[i].assignment, &md[i].n_assignment))
            return -ENOMEM;
        d->members[i] = &md[i];
    }
    d->n_members = n;
    const char *assignor = group_assignor_of(g);
    d->assignor = (char *)(assignor ? assignor : "");
    return 0;
}

void coord_describe_groups(struct req *r, const Ringlog__DescribeGroupsRequest *q)
{
    struct coord *c = r->sh->dv->coord;
    Ringlog__Response *resp = req_response(r);
    Ringlog__DescribeGroupsResponse *body = coord_alloc(r, sizeof(*body));
    Ringlog__GroupDescription *ds = coord_alloc(r, q->n_group_ids * sizeof(*ds));
    if (!resp || !body || !ds)
        return coord_oom(r);
    ringlog__describe_groups_response__init(body);
    body->groups = coord_alloc(r, q->n_group_ids * sizeof(*body->groups));
    if (!body->groups)
        return coord_oom(r);
    for (size_t i = 0; i < q->n_group_ids; i++) {
        if (coord_describe_one(r, c, q->group_ids[i], &ds[i]))
            return coord_oom(r);
        body->groups[i] = &ds[i];
    }
    body->n_groups = q->n_group_ids;
    resp->body_case = RINGLOG__RESPONSE__BODY_DESCRIBE_GROUPS;
    resp->describe_groups = body;
    req_respond(r, resp, NULL, 0);
}
