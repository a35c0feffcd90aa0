/*
 * group: libringlog's consumer-group membership. Where it sits: rl_consumer_poll ->
 * rlc_group_duty (heartbeat, auto-commit, rejoin) -> the group's coordinator (FindCoordinator,
 * JoinGroup, SyncGroup, Heartbeat, OffsetCommit, OffsetFetch, LeaveGroup) -> the consumer's
 * assignment (rlc_consumer_assign_at / rlc_consumer_unassign_all).
 *
 * Heartbeats come from poll, not from a background thread: the consumer stays a single-threaded
 * object, and a member whose application stops polling is dropped by the coordinator after
 * session.timeout.ms, which is what the group needs (its partitions go to members that work).
 * poll never waits past the next heartbeat, so an application that polls with any timeout keeps
 * its membership; one that spends longer than session.timeout.ms between polls loses it, and
 * the next poll rejoins.
 *
 * Rebalance: when the coordinator answers a heartbeat (or a commit) with REBALANCE_IN_PROGRESS,
 * ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID, the member commits what it has handed out (with
 * auto-commit), calls the REVOKED callback, drops its partitions and everything fetched for
 * them, rejoins (JoinGroup waits at the coordinator until the group is complete), takes its
 * partitions from SyncGroup (the coordinator computes the assignment), reads their committed
 * offsets (OffsetFetch; auto.offset.reset where nothing is committed) and calls ASSIGNED.
 *
 * Commits carry the member id and generation, so a member that was dropped cannot overwrite
 * what the partitions' new owner committed. Auto-commit commits only positions, i.e. offsets
 * after records poll has already handed to the application, at auto.commit.interval.ms (checked
 * when poll is entered, so the record handed out last has been dealt with), before revocation,
 * and on close.
 *
 * Every call to the coordinator is synchronous on the caller's thread and bounded:
 * request.timeout.ms, or rebalance.timeout.ms plus that for JoinGroup, which the coordinator
 * holds until the rebalance completes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "common/err.h"
#include "common/log.h"

#define GROUP_MAX_TOPICS 256      /* subscription size */
#define GROUP_JOIN_ATTEMPTS 50    /* join/sync rounds before poll gives up for now */

struct rlc_group {
    struct rl_consumer *c;
    const struct rl_conf *conf;
    struct rlc_meta *meta;
    char *topics[GROUP_MAX_TOPICS];
    size_t topic_count;
    struct rlc_conn coord;
    bool coord_known;
    struct rlc_addr coord_addr;
    char member_id[128];
    int32_t generation;
    bool in_sync;      /* holds the assignment of `generation` */
    bool need_rejoin;  /* the coordinator asked for a rejoin (or membership is not known) */
    bool closed;
    int64_t next_hb_ms, next_commit_ms, coord_retry_ms;
    int failures;
    uint64_t rnd;
    char err[512];
};

struct rlc_group *rlc_group_new(struct rl_consumer *c, const struct rl_conf *conf,
                                struct rlc_meta *meta)
{
    struct rlc_group *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->c = c;
    g->conf = conf;
    g->meta = meta;
    g->coord.fd = -1;
    g->generation = -1;
    g->rnd = (uint64_t)rlc_wall_ms() ^ (uint64_t)(uintptr_t)g ^ 1;
    return g;
}

void rlc_group_free(struct rlc_group *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->topic_count; i++)
        free(g->topics[i]);
    rlc_conn_close(&g->coord);
    free(g);
}

const char *rlc_group_error(const struct rlc_group *g)
{
    return g->err;
}

int rlc_group_subscribe(struct rlc_group *g, const char *const *topics, size_t count)
{
    if (count == 0 || count > GROUP_MAX_TOPICS) {
        rlc_set_err(g->err, sizeof(g->err), "subscribe to 1..%d topics", GROUP_MAX_TOPICS);
        return RL_E_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < g->topic_count; i++)
        free(g->topics[i]);
    g->topic_count = 0;
    for (size_t i = 0; i < count; i++) {
        g->topics[i] = strdup(topics[i]);
        if (!g->topics[i])
            return -ENOMEM;
        g->topic_count++;
    }
    g->need_rejoin = true; /* the next poll (re)joins with the new subscription */
    return 0;
}

/* Is this code the coordinator telling us to look for it again? */
static bool coord_lost(int code)
{
    return code == RL_E_NOT_COORDINATOR || code == RL_E_COORDINATOR_NOT_AVAILABLE ||
           (code < 0 && code > -4096) || code == RL_E_BROKER_UNAVAILABLE ||
           code == RL_E_SHUTTING_DOWN || code == RL_E_REQUEST_TIMED_OUT;
}

/* Does this code mean the member must rejoin? */
static bool must_rejoin(int code)
{
    return code == RL_E_REBALANCE_IN_PROGRESS || code == RL_E_ILLEGAL_GENERATION ||
           code == RL_E_UNKNOWN_MEMBER_ID;
}

/* Finds the coordinator (FindCoordinator on the metadata connection) and connects to it. */
static int coord_connect(struct rlc_group *g)
{
    if (rlc_conn_is_open(&g->coord))
        return 0;
    Ringlog__FindCoordinatorRequest fr = RINGLOG__FIND_COORDINATOR_REQUEST__INIT;
    fr.group_id = (char *)g->conf->group_id;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_FIND_COORDINATOR;
    req.find_coordinator = &fr;
    Ringlog__Response *resp = NULL;
    const uint8_t *data;
    size_t dlen;
    int rc = rlc_meta_call(g->meta, &req, g->conf->request_timeout_ms, &resp, &data, &dlen);
    if (rc == 0 && (resp->body_case != RINGLOG__RESPONSE__BODY_FIND_COORDINATOR ||
                    !resp->find_coordinator->host || !resp->find_coordinator->port ||
                    strlen(resp->find_coordinator->host) >= RLC_HOST_MAX)) {
        rc = RL_E_FRAME_MALFORMED;
        rlc_set_err(g->meta->err, sizeof(g->meta->err), "malformed FindCoordinator answer");
    }
    if (rc) {
        rlc_set_err(g->err, sizeof(g->err), "cannot find the coordinator of group \"%s\": %s",
                    g->conf->group_id, g->meta->err);
        goto out;
    }
    snprintf(g->coord_addr.host, sizeof(g->coord_addr.host), "%s",
             resp->find_coordinator->host);
    g->coord_addr.port = (uint16_t)resp->find_coordinator->port;
    rc = rlc_conn_open(&g->coord, &g->coord_addr, g->conf->connect_timeout_ms);
    if (rc)
        rlc_set_err(g->err, sizeof(g->err), "group \"%s\": %s", g->conf->group_id,
                    g->coord.err);
out:
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    return rc;
}

/* Sends req to the coordinator and waits. Returns 0 with *resp (caller frees), or a code with
 * the message in g->err; a lost coordinator closes the connection so the next call finds it
 * again. */
static int coord_call(struct rlc_group *g, Ringlog__Request *req, int timeout_ms,
                      Ringlog__Response **resp)
{
    *resp = NULL;
    int rc = coord_connect(g);
    if (rc)
        return rc;
    const uint8_t *data;
    size_t dlen;
    req->client_id = (char *)g->conf->client_id;
    rc = rlc_conn_call(&g->coord, req, timeout_ms, resp, &data, &dlen);
    if (rc) {
        rlc_set_err(g->err, sizeof(g->err), "group \"%s\": %s", g->conf->group_id,
                    g->coord.err);
        if (coord_lost(rc))
            rlc_conn_close(&g->coord);
    }
    return rc;
}

/* Waits a jittered backoff before the next attempt; bounded by retry.backoff.max.ms. */
static void backoff(struct rlc_group *g)
{
    g->failures++;
    int ms = rlc_backoff_ms(g->failures, g->conf->retry_backoff_ms,
                            g->conf->retry_backoff_max_ms, rlc_rand(&g->rnd));
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* --- commits ----------------------------------------------------------------------------------- */

/* Commits the given next-offsets (count entries) for the current generation. Returns 0 or the
 * first error (request or partition level), with its message in g->err. */
static int commit_list(struct rlc_group *g, const struct rl_topic_partition *tps,
                       const int64_t *offsets, size_t count)
{
    if (count == 0)
        return 0;
    Ringlog__OffsetCommitPartition *pp = calloc(count, sizeof(*pp));
    Ringlog__OffsetCommitPartition **ppp = calloc(count, sizeof(*ppp));
    Ringlog__OffsetCommitTopic *tt = calloc(count, sizeof(*tt));
    Ringlog__OffsetCommitTopic **ttp = calloc(count, sizeof(*ttp));
    Ringlog__Response *resp = NULL;
    int rc = -ENOMEM;
    if (!pp || !ppp || !tt || !ttp)
        goto out;
    /* Entries of a topic are adjacent (the consumer keeps them so): one topic entry each. */
    size_t nt = 0;
    for (size_t i = 0; i < count; i++) {
        ringlog__offset_commit_partition__init(&pp[i]);
        pp[i].partition = (uint32_t)tps[i].partition;
        pp[i].offset = offsets[i];
        ppp[i] = &pp[i];
        if (nt == 0 || strcmp(tt[nt - 1].name, tps[i].topic) != 0) {
            ringlog__offset_commit_topic__init(&tt[nt]);
            tt[nt].name = (char *)tps[i].topic;
            tt[nt].partitions = &ppp[i];
            ttp[nt] = &tt[nt];
            nt++;
        }
        tt[nt - 1].n_partitions++;
    }
    Ringlog__OffsetCommitRequest oc = RINGLOG__OFFSET_COMMIT_REQUEST__INIT;
    oc.group_id = (char *)g->conf->group_id;
    oc.member_id = g->member_id;
    oc.generation = g->generation;
    oc.topics = ttp;
    oc.n_topics = nt;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_OFFSET_COMMIT;
    req.offset_commit = &oc;
    rc = coord_call(g, &req, g->conf->request_timeout_ms, &resp);
    if (rc)
        goto out;
    rc = RL_E_FRAME_MALFORMED;
    if (resp->body_case != RINGLOG__RESPONSE__BODY_OFFSET_COMMIT) {
        rlc_set_err(g->err, sizeof(g->err), "malformed OffsetCommit answer");
        goto out;
    }
    rc = 0;
    for (size_t i = 0; i < resp->offset_commit->n_topics && !rc; i++) {
        const Ringlog__OffsetCommitTopicResult *t = resp->offset_commit->topics[i];
        for (size_t j = 0; j < t->n_partitions && !rc; j++) {
            rc = t->partitions[j]->error_code;
            if (rc)
                rlc_set_err(g->err, sizeof(g->err), "commit of %s partition %u: %s", t->name,
                            t->partitions[j]->partition, t->partitions[j]->error_message &&
                            t->partitions[j]->error_message[0] ? t->partitions[j]->error_message
                                                               : rl_strerror(rc));
        }
    }
out:
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    if (rc && coord_lost(rc))
        rlc_conn_close(&g->coord);
    if (must_rejoin(rc))
        g->need_rejoin = true;
    free(pp);
    free(ppp);
    free(tt);
    free(ttp);
    return rc;
}

/* Commits the position (offset after the last record handed out) of every assigned partition
 * whose position moved since its last commit. */
int rlc_group_commit_positions(struct rlc_group *g)
{
    size_t n = (size_t)rlc_consumer_part_count(g->c);
    if (!g->in_sync || n == 0)
        return g->in_sync ? 0 : RL_E_REBALANCE_IN_PROGRESS;
    struct rl_topic_partition *tps = calloc(n, sizeof(*tps));
    int64_t *offs = calloc(n, sizeof(*offs));
    size_t k = 0;
    int rc = -ENOMEM;
    if (!tps || !offs)
        goto out;
    for (size_t i = 0; i < n; i++) {
        int64_t pos, committed;
        rlc_consumer_part_at(g->c, (int)i, &tps[k].topic, &tps[k].partition, &pos, &committed);
        if (pos >= 0 && pos != committed)
            offs[k++] = pos;
    }
    rc = commit_list(g, tps, offs, k);
    for (size_t i = 0; rc == 0 && i < k; i++)
        rlc_consumer_set_committed(g->c, tps[i].topic, tps[i].partition, offs[i]);
out:
    free(tps);
    free(offs);
    return rc;
}

int rlc_group_commit_offset(struct rlc_group *g, const char *topic, int32_t partition,
                            int64_t offset)
{
    if (!g->in_sync) {
        rlc_set_err(g->err, sizeof(g->err), "not a member of group \"%s\" right now (a "
                    "rebalance is under way); poll to rejoin", g->conf->group_id);
        return RL_E_REBALANCE_IN_PROGRESS;
    }
    struct rl_topic_partition tp = {.topic = topic, .partition = partition};
    int rc = commit_list(g, &tp, &offset, 1);
    if (rc == 0)
        rlc_consumer_set_committed(g->c, topic, partition, offset);
    return rc;
}

/* --- joining ----------------------------------------------------------------------------------- */

/* JoinGroup: waits at the coordinator until the rebalance completes. */
static int join(struct rlc_group *g)
{
    const char *assignors[2] = {g->conf->assignor,
                                strcmp(g->conf->assignor, "range") ? "range" : "roundrobin"};
    Ringlog__JoinGroupRequest jr = RINGLOG__JOIN_GROUP_REQUEST__INIT;
    jr.group_id = (char *)g->conf->group_id;
    jr.member_id = g->member_id;
    jr.session_timeout_ms = (uint32_t)g->conf->session_timeout_ms;
    jr.rebalance_timeout_ms = (uint32_t)g->conf->rebalance_timeout_ms;
    jr.topics = g->topics;
    jr.n_topics = g->topic_count;
    jr.assignors = (char **)assignors;
    jr.n_assignors = 2;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_JOIN_GROUP;
    req.join_group = &jr;
    Ringlog__Response *resp;
    int rc = coord_call(g, &req, g->conf->rebalance_timeout_ms + g->conf->request_timeout_ms,
                        &resp);
    if (rc == 0 && (resp->body_case != RINGLOG__RESPONSE__BODY_JOIN_GROUP ||
                    !resp->join_group->member_id ||
                    strlen(resp->join_group->member_id) >= sizeof(g->member_id))) {
        rc = RL_E_FRAME_MALFORMED;
        rlc_set_err(g->err, sizeof(g->err), "malformed JoinGroup answer");
    }
    if (rc == 0) {
        snprintf(g->member_id, sizeof(g->member_id), "%s", resp->join_group->member_id);
        g->generation = resp->join_group->generation;
        RL_DEBUG("group %s: joined as %s, generation %d, %u members", g->conf->group_id,
                 g->member_id, g->generation, resp->join_group->member_count);
    }
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    return rc;
}

/* The committed offset of (topic, partition) in an OffsetFetch answer, or -1. */
static int64_t committed_of(const Ringlog__OffsetFetchResponse *of, const char *topic,
                            uint32_t partition)
{
    for (size_t i = 0; of && i < of->n_topics; i++) {
        const Ringlog__OffsetFetchTopicResult *t = of->topics[i];
        if (!t->name || strcmp(t->name, topic) != 0)
            continue;
        for (size_t j = 0; j < t->n_partitions; j++)
            if (t->partitions[j]->partition == partition && t->partitions[j]->error_code == 0)
                return t->partitions[j]->offset;
    }
    return -1;
}

/* Takes the partitions SyncGroup gave, each at its committed offset (auto.offset.reset where
 * none is committed), and tells the application. */
static int assign_from(struct rlc_group *g, const Ringlog__SyncGroupResponse *sg,
                       const Ringlog__OffsetFetchResponse *of)
{
    size_t total = 0;
    for (size_t i = 0; i < sg->n_assignment; i++)
        total += sg->assignment[i]->n_partitions;
    struct rl_topic_partition *tps = calloc(total + 1, sizeof(*tps));
    if (!tps)
        return -ENOMEM;
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < sg->n_assignment && rc == 0; i++) {
        const Ringlog__TopicPartitions *tp = sg->assignment[i];
        for (size_t j = 0; j < tp->n_partitions && rc == 0; j++) {
            int64_t off = committed_of(of, tp->topic, tp->partitions[j]);
            int64_t start = off >= 0 ? off : g->conf->auto_offset_reset;
            if (start == 0 && off < 0) {
                rlc_set_err(g->err, sizeof(g->err), "group \"%s\" has no committed offset "
                            "for %s partition %u and auto.offset.reset is none",
                            g->conf->group_id, tp->topic, tp->partitions[j]);
                rc = RL_E_OFFSET_OUT_OF_RANGE;
                break;
            }
            rc = rlc_consumer_assign_at(g->c, tp->topic, (int32_t)tp->partitions[j], start, off);
            tps[k].topic = tp->topic;
            tps[k].partition = (int32_t)tp->partitions[j];
            k++;
        }
    }
    if (rc == 0) {
        g->in_sync = true;
        RL_DEBUG("group %s: generation %d, %zu partitions assigned", g->conf->group_id,
                 g->generation, k);
        if (g->conf->rebalance_cb)
            g->conf->rebalance_cb(g->conf->rebalance_ctx, g->c, RL_REBALANCE_ASSIGNED, tps, k);
    } else {
        rlc_consumer_unassign_all(g->c);
    }
    free(tps);
    return rc;
}

/* SyncGroup, then OffsetFetch for the partitions it gave, then the assignment itself. */
static int sync_and_assign(struct rlc_group *g)
{
    Ringlog__SyncGroupRequest sr = RINGLOG__SYNC_GROUP_REQUEST__INIT;
    sr.group_id = (char *)g->conf->group_id;
    sr.member_id = g->member_id;
    sr.generation = g->generation;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_SYNC_GROUP;
    req.sync_group = &sr;
    Ringlog__Response *resp, *oresp = NULL;
    int rc = coord_call(g, &req, g->conf->request_timeout_ms, &resp);
    if (rc == 0 && resp->body_case != RINGLOG__RESPONSE__BODY_SYNC_GROUP) {
        rc = RL_E_FRAME_MALFORMED;
        rlc_set_err(g->err, sizeof(g->err), "malformed SyncGroup answer");
    }
    if (rc)
        goto out;
    const Ringlog__SyncGroupResponse *sg = resp->sync_group;
    /* Committed offsets of exactly these partitions. */
    Ringlog__OffsetFetchTopic *ft = calloc(sg->n_assignment + 1, sizeof(*ft));
    Ringlog__OffsetFetchTopic **ftp = calloc(sg->n_assignment + 1, sizeof(*ftp));
    rc = -ENOMEM;
    if (!ft || !ftp)
        goto free_fetch;
    for (size_t i = 0; i < sg->n_assignment; i++) {
        ringlog__offset_fetch_topic__init(&ft[i]);
        ft[i].name = sg->assignment[i]->topic;
        ft[i].partitions = sg->assignment[i]->partitions;
        ft[i].n_partitions = sg->assignment[i]->n_partitions;
        ftp[i] = &ft[i];
    }
    Ringlog__OffsetFetchRequest of = RINGLOG__OFFSET_FETCH_REQUEST__INIT;
    of.group_id = (char *)g->conf->group_id;
    of.topics = ftp;
    of.n_topics = sg->n_assignment;
    Ringlog__Request oreq = RINGLOG__REQUEST__INIT;
    oreq.body_case = RINGLOG__REQUEST__BODY_OFFSET_FETCH;
    oreq.offset_fetch = &of;
    rc = sg->n_assignment ? coord_call(g, &oreq, g->conf->request_timeout_ms, &oresp) : 0;
    if (rc == 0 && oresp && oresp->body_case != RINGLOG__RESPONSE__BODY_OFFSET_FETCH) {
        rc = RL_E_FRAME_MALFORMED;
        rlc_set_err(g->err, sizeof(g->err), "malformed OffsetFetch answer");
    }
    if (rc == 0)
        rc = assign_from(g, sg, oresp ? oresp->offset_fetch : NULL);
free_fetch:
    free(ft);
    free(ftp);
out:
    if (oresp)
        ringlog__response__free_unpacked(oresp, NULL);
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    return rc;
}

/* Gives the partitions up: commits what was handed out (auto-commit), tells the application,
 * drops them and everything fetched for them. */
static void revoke(struct rlc_group *g)
{
    if (!g->in_sync)
        return;
    if (g->conf->enable_auto_commit) {
        int rc = rlc_group_commit_positions(g);
        if (rc)
            RL_DEBUG("group %s: commit before revocation failed: %s", g->conf->group_id,
                     g->err);
    }
    int n = rlc_consumer_part_count(g->c);
    if (g->conf->rebalance_cb && n > 0) {
        struct rl_topic_partition *tps = calloc((size_t)n, sizeof(*tps));
        for (int i = 0; tps && i < n; i++) {
            int64_t pos, committed;
            rlc_consumer_part_at(g->c, i, &tps[i].topic, &tps[i].partition, &pos, &committed);
        }
        if (tps)
            g->conf->rebalance_cb(g->conf->rebalance_ctx, g->c, RL_REBALANCE_REVOKED, tps,
                                  (size_t)n);
        free(tps);
    }
    rlc_consumer_unassign_all(g->c);
    g->in_sync = false;
}

/* Revokes, then joins and syncs until the member holds the new generation's assignment.
 * Bounded: GROUP_JOIN_ATTEMPTS rounds, each bounded by its calls' timeouts. */
static int rejoin(struct rlc_group *g)
{
    revoke(g);
    int rc = 0;
    for (int attempt = 0; attempt < GROUP_JOIN_ATTEMPTS; attempt++) {
        rc = join(g);
        if (rc == 0)
            rc = sync_and_assign(g);
        if (rc == 0) {
            g->need_rejoin = false;
            g->failures = 0;
            int64_t now = rlc_now_ms();
            g->next_hb_ms = now + g->conf->heartbeat_interval_ms;
            g->next_commit_ms = now + g->conf->auto_commit_interval_ms;
            return 0;
        }
        if (rc == RL_E_UNKNOWN_MEMBER_ID)
            g->member_id[0] = 0; /* the coordinator forgot us: join as a new member */
        else if (!must_rejoin(rc) && !coord_lost(rc) && rc != RL_E_TIMED_OUT)
            return rc; /* not something another round fixes */
        RL_DEBUG("group %s: join round %d: %s", g->conf->group_id, attempt, g->err);
        if (!must_rejoin(rc))
            backoff(g);
    }
    return rc;
}

int64_t rlc_group_due_ms(const struct rlc_group *g)
{
    int64_t due = g->next_hb_ms;
    if (g->conf->enable_auto_commit && g->next_commit_ms < due)
        due = g->next_commit_ms;
    return due;
}

bool rlc_group_active(const struct rlc_group *g)
{
    return g->topic_count > 0 && !g->closed;
}

/* Heartbeat: 0, or a code that tells the caller to rejoin / find the coordinator. */
static int heartbeat(struct rlc_group *g)
{
    Ringlog__HeartbeatRequest hr = RINGLOG__HEARTBEAT_REQUEST__INIT;
    hr.group_id = (char *)g->conf->group_id;
    hr.member_id = g->member_id;
    hr.generation = g->generation;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_HEARTBEAT;
    req.heartbeat = &hr;
    Ringlog__Response *resp;
    int rc = coord_call(g, &req, g->conf->request_timeout_ms, &resp);
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    return rc;
}

int rlc_group_duty(struct rlc_group *g)
{
    if (!rlc_group_active(g))
        return 0;
    int64_t now = rlc_now_ms();
    if (g->in_sync && !g->need_rejoin && g->conf->enable_auto_commit &&
        now >= g->next_commit_ms) {
        g->next_commit_ms = now + g->conf->auto_commit_interval_ms;
        if (rlc_group_commit_positions(g))
            RL_DEBUG("group %s: auto-commit failed: %s", g->conf->group_id, g->err);
    }
    if (g->in_sync && !g->need_rejoin && now >= g->next_hb_ms) {
        int rc = heartbeat(g);
        g->next_hb_ms = rlc_now_ms() + (rc && coord_lost(rc) ? g->conf->retry_backoff_ms
                                                             : g->conf->heartbeat_interval_ms);
        if (rc == RL_E_UNKNOWN_MEMBER_ID) {
            /* The session expired: our partitions belong to others already, so nothing is
             * committed on the way out (it would be refused anyway). */
            g->member_id[0] = 0;
            rlc_consumer_unassign_all(g->c);
            g->in_sync = false;
        }
        if (must_rejoin(rc))
            g->need_rejoin = true;
    }
    if (g->in_sync && !g->need_rejoin)
        return 0;
    return rejoin(g);
}

int rlc_group_close(struct rlc_group *g)
{
    if (g->closed)
        return 0;
    int rc = 0;
    if (g->in_sync && g->conf->enable_auto_commit)
        rc = rlc_group_commit_positions(g);
    revoke(g);
    g->closed = true;
    if (g->member_id[0] && rlc_conn_is_open(&g->coord)) {
        Ringlog__LeaveGroupRequest lr = RINGLOG__LEAVE_GROUP_REQUEST__INIT;
        lr.group_id = (char *)g->conf->group_id;
        lr.member_id = g->member_id;
        Ringlog__Request req = RINGLOG__REQUEST__INIT;
        req.body_case = RINGLOG__REQUEST__BODY_LEAVE_GROUP;
        req.leave_group = &lr;
        Ringlog__Response *resp;
        int lrc = coord_call(g, &req, g->conf->request_timeout_ms, &resp);
        if (resp)
            ringlog__response__free_unpacked(resp, NULL);
        if (lrc)
            RL_DEBUG("group %s: leave failed: %s", g->conf->group_id, g->err);
    }
    rlc_conn_close(&g->coord);
    return rc;
}
