/*
 * group: libringlog's consumer-group membership. Where it sits: rl_consumer_poll ->
 * rlc_group_duty (auto-commit, news from the heartbeat thread, rejoin) -> the group's
 * coordinator (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, OffsetCommit, OffsetFetch,
 * LeaveGroup) -> the consumer's assignment (rlc_consumer_assign_at / rlc_consumer_unassign_all).
 *
 * Two threads, two connections to the coordinator. The application's thread (inside poll)
 * joins, syncs, commits, runs the rebalance callbacks and owns the assignment; a heartbeat
 * thread per member sends Heartbeat every heartbeat.interval.ms on its own connection while
 * the member is in sync, so an application may process a record for longer than
 * session.timeout.ms. They share only the small state under `lock` (the member id and
 * generation to heartbeat, the session and poll clocks, and `news`: what the heartbeat thread
 * learned and the next poll must act on). The thread never calls back into the application and
 * never touches the assignment; it wakes a waiting poll (rlc_consumer_wake) when it has news.
 *
 * Liveness (Kafka's two bounds):
 *  - session: the coordinator drops a member it has not heard from for session.timeout.ms. The
 *    thread keeps its own clock of the last heartbeat the coordinator answered; past the
 *    session timeout it declares the member lost without waiting for the coordinator to say so
 *    (it may be unreachable), since others may already hold the partitions.
 *  - poll: an application that has not entered poll for max.poll.interval.ms is stuck. The
 *    thread sends LeaveGroup (the group rebalances at once) and declares the member lost.
 *
 * Rebalance events: when a heartbeat (or a commit) is answered REBALANCE_IN_PROGRESS, the
 * member still owns its partitions: the next poll commits what it has handed out (with
 * auto-commit), calls REVOKED, drops the partitions and everything fetched for them, rejoins
 * (JoinGroup waits at the coordinator until the group is complete), takes its partitions from
 * SyncGroup (the coordinator computes the assignment), reads their committed offsets
 * (OffsetFetch), resolves every position to an offset (auto.offset.reset where nothing is
 * committed) and calls ASSIGNED. When the member is lost (UNKNOWN_MEMBER_ID or
 * ILLEGAL_GENERATION from the coordinator, or either bound above), the next poll calls LOST
 * instead of REVOKED, commits nothing (the commit would be refused, and must not overwrite the
 * new owner's progress), and rejoins; LOST therefore always precedes the next ASSIGNED.
 *
 * Commits carry the member id and generation, so a member that was dropped cannot overwrite
 * what the partitions' new owner committed. Auto-commit commits only positions, i.e. offsets
 * after records poll has already handed to the application, at auto.commit.interval.ms (checked
 * when poll is entered, so the record handed out last has been dealt with), before revocation,
 * and on close.
 *
 * Every call to the coordinator is synchronous and bounded: request.timeout.ms (the heartbeat
 * thread: also at most session.timeout.ms), or rebalance.timeout.ms plus that for JoinGroup,
 * which the coordinator holds until the rebalance completes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client_internal.h"
#include "common/err.h"
#include "common/log.h"

#define GROUP_MAX_TOPICS 256      /* subscription size */
#define GROUP_JOIN_ATTEMPTS 50    /* join/sync rounds before poll gives up for now */
#define GROUP_MEMBER_ID_MAX 128

/* What the heartbeat thread learned for the next poll (`news`). LOST outranks REJOIN. */
enum { NEWS_NONE = 0, NEWS_REJOIN = 1, NEWS_LOST = 2 };

/* Why a member was lost: decides whether it rejoins under its old member id. */
enum lost_reason {
    LOST_FENCED = 1,  /* ILLEGAL_GENERATION: the member id still stands */
    LOST_UNKNOWN,     /* UNKNOWN_MEMBER_ID: join as a new member */
    LOST_SESSION,     /* no answered heartbeat for session.timeout.ms */
    LOST_POLL,        /* no poll for max.poll.interval.ms: left the group */
};

struct rlc_group {
    struct rl_consumer *c;
    const struct rl_conf *conf;
    struct rlc_meta *meta;
    char *topics[GROUP_MAX_TOPICS];
    size_t topic_count;
    struct rlc_conn coord;
    char member_id[GROUP_MEMBER_ID_MAX];
    int32_t generation;
    bool in_sync;      /* holds the assignment of `generation` */
    bool need_rejoin;  /* the coordinator asked for a rejoin (or membership is not known) */
    bool closed;
    enum lost_reason lost; /* 0, or the member is lost: LOST at the next duty */
    bool lost_left;    /* LeaveGroup was sent for the lost member already */
    int64_t next_commit_ms;
    /* Cooperative rebalancing (partition.assignment.strategy=cooperative-sticky): the member
     * keeps its partitions while its JoinGroup waits on a connection of its own, so poll keeps
     * handing out their records; joining is true from the request until its answer. */
    struct rlc_conn join_conn;
    bool joining;
    uint32_t join_corr;
    int64_t join_deadline_ms;
    int64_t next_join_ms;  /* after a failed cooperative join: not before this */
    int failures;
    uint64_t rnd;
    char err[512];

    /* Shared with the heartbeat thread: everything below `lock`, except `news` and
     * `last_poll_ms`, which poll reads (and writes) without it on its fast path. */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* the thread waits on it (CLOCK_MONOTONIC) */
    pthread_t hb_thread;
    bool hb_started, hb_stop;
    bool hb_on;        /* in sync: heartbeat hb_member at hb_generation */
    char hb_member[GROUP_MEMBER_ID_MAX];
    int32_t hb_generation;
    /* When the last heartbeat the coordinator answered was sent. The coordinator heard it no
     * earlier, so its session clock never runs ahead of this one: the member counts itself
     * dropped no later than the coordinator drops it. Atomic: poll reads it per record. */
    atomic_llong hb_last_ok_ms;
    int64_t hb_next_ms;
    enum lost_reason hb_lost;
    bool hb_left;
    char hb_err[512];
    atomic_int news;
    atomic_llong last_poll_ms; /* when poll last ran its duty */
    struct rlc_conn hb_conn;   /* the heartbeat thread's own */
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
    g->hb_conn.fd = -1;
    g->join_conn.fd = -1;
    g->generation = -1;
    g->rnd = (uint64_t)rlc_wall_ms() ^ (uint64_t)(uintptr_t)g ^ 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&g->news, NEWS_NONE);
    atomic_init(&g->last_poll_ms, rlc_now_ms());
    atomic_init(&g->hb_last_ok_ms, rlc_now_ms());
    return g;
}

void rlc_group_free(struct rlc_group *g)
{
    if (!g)
        return;
    if (g->hb_started) {
        pthread_mutex_lock(&g->lock);
        g->hb_stop = true;
        pthread_cond_signal(&g->cond);
        pthread_mutex_unlock(&g->lock);
        pthread_join(g->hb_thread, NULL); /* bounded: its calls are */
    }
    for (size_t i = 0; i < g->topic_count; i++)
        free(g->topics[i]);
    rlc_conn_close(&g->coord);
    rlc_conn_close(&g->hb_conn);
    rlc_conn_close(&g->join_conn);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

const char *rlc_group_error(const struct rlc_group *g)
{
    return g->err;
}

static void *hb_main(void *arg);

int rlc_group_subscribe(struct rlc_group *g, const char *const *topics, size_t count)
{
    if (count == 0 || count > GROUP_MAX_TOPICS) {
        rlc_set_err(g->err, sizeof(g->err), "subscribe to 1..%d topics", GROUP_MAX_TOPICS);
        return RL_E_INVALID_ARGUMENT;
    }
    if (!g->hb_started) {
        int rc = pthread_create(&g->hb_thread, NULL, hb_main, g);
        if (rc) {
            rlc_set_err(g->err, sizeof(g->err), "cannot start the heartbeat thread: %s",
                        strerror(rc));
            return -rc;
        }
        g->hb_started = true;
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
           code == RL_E_COORDINATOR_LOADING ||
           (code < 0 && code > -4096) || code == RL_E_BROKER_UNAVAILABLE ||
           code == RL_E_SHUTTING_DOWN || code == RL_E_REQUEST_TIMED_OUT;
}

/* Does this code mean the member must rejoin? */
static bool must_rejoin(int code)
{
    return code == RL_E_REBALANCE_IN_PROGRESS || code == RL_E_ILLEGAL_GENERATION ||
           code == RL_E_UNKNOWN_MEMBER_ID;
}

/* Finds the coordinator (FindCoordinator on the metadata connection, which is thread-safe)
 * and connects `conn` to it, each step bounded by timeout_ms. Returns 0 or a code with the
 * message in err. */
static int coord_connect(struct rlc_group *g, struct rlc_conn *conn, int timeout_ms, char *err,
                         size_t errlen)
{
    if (rlc_conn_is_open(conn))
        return 0;
    Ringlog__FindCoordinatorRequest fr = RINGLOG__FIND_COORDINATOR_REQUEST__INIT;
    fr.group_id = (char *)g->conf->group_id;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_FIND_COORDINATOR;
    req.find_coordinator = &fr;
    Ringlog__Response *resp = NULL;
    const uint8_t *data;
    size_t dlen;
    char merr[sizeof(g->meta->err)];
    int rc = rlc_meta_call(g->meta, &req, timeout_ms, &resp, &data, &dlen);
    pthread_mutex_lock(&g->meta->lock);
    snprintf(merr, sizeof(merr), "%s", g->meta->err);
    pthread_mutex_unlock(&g->meta->lock);
    if (rc == 0 && (resp->body_case != RINGLOG__RESPONSE__BODY_FIND_COORDINATOR ||
                    !resp->find_coordinator->host || !resp->find_coordinator->port ||
                    strlen(resp->find_coordinator->host) >= RLC_HOST_MAX)) {
        rc = RL_E_FRAME_MALFORMED;
        snprintf(merr, sizeof(merr), "malformed FindCoordinator answer");
    }
    if (rc) {
        rlc_set_err(err, errlen, "cannot find the coordinator of group \"%s\": %s",
                    g->conf->group_id, merr);
        goto out;
    }
    struct rlc_addr a;
    snprintf(a.host, sizeof(a.host), "%s", resp->find_coordinator->host);
    a.port = (uint16_t)resp->find_coordinator->port;
    rc = rlc_conn_open(conn, &a, timeout_ms < g->conf->connect_timeout_ms
                                     ? timeout_ms : g->conf->connect_timeout_ms);
    if (rc)
        rlc_set_err(err, errlen, "group \"%s\": %s", g->conf->group_id, conn->err);
out:
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    return rc;
}

/* Sends req to the coordinator on `conn` and waits. Returns 0 with *resp (caller frees), or a
 * code with the message in err; a lost coordinator closes the connection so the next call finds
 * it again. */
static int coord_request(struct rlc_group *g, struct rlc_conn *conn, Ringlog__Request *req,
                         int timeout_ms, Ringlog__Response **resp, char *err, size_t errlen)
{
    *resp = NULL;
    int rc = coord_connect(g, conn, timeout_ms < g->conf->request_timeout_ms
                                        ? timeout_ms : g->conf->request_timeout_ms, err, errlen);
    if (rc)
        return rc;
    const uint8_t *data;
    size_t dlen;
    req->client_id = (char *)g->conf->client_id;
    rc = rlc_conn_call(conn, req, timeout_ms, resp, &data, &dlen);
    if (rc) {
        rlc_set_err(err, errlen, "group \"%s\": %s", g->conf->group_id, conn->err);
        if (coord_lost(rc))
            rlc_conn_close(conn);
    }
    return rc;
}

/* coord_request on the application thread's connection. */
static int coord_call(struct rlc_group *g, Ringlog__Request *req, int timeout_ms,
                      Ringlog__Response **resp)
{
    return coord_request(g, &g->coord, req, timeout_ms, resp, g->err, sizeof(g->err));
}

/* LeaveGroup for `member` on `conn`; failures only logged (the session timeout still removes
 * the member). */
static void leave(struct rlc_group *g, struct rlc_conn *conn, const char *member)
{
    Ringlog__LeaveGroupRequest lr = RINGLOG__LEAVE_GROUP_REQUEST__INIT;
    lr.group_id = (char *)g->conf->group_id;
    lr.member_id = (char *)member;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_LEAVE_GROUP;
    req.leave_group = &lr;
    Ringlog__Response *resp;
    char err[512];
    int rc = coord_request(g, conn, &req, g->conf->request_timeout_ms, &resp, err, sizeof(err));
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    if (rc)
        RL_DEBUG("group %s: leave failed: %s", g->conf->group_id, err);
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
    if (g->joining) {
        /* The generation is about to change: a commit under the old one could be answered
         * ILLEGAL_GENERATION once the rebalance completes, which reads as being dropped. */
        rlc_set_err(g->err, sizeof(g->err), "group \"%s\" is rebalancing; commit again after "
                    "it (the member keeps its partitions meanwhile)", g->conf->group_id);
        return RL_E_REBALANCE_IN_PROGRESS;
    }
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
    if (rc == RL_E_REBALANCE_IN_PROGRESS)
        g->need_rejoin = true;
    else if ((rc == RL_E_ILLEGAL_GENERATION || rc == RL_E_UNKNOWN_MEMBER_ID) && g->in_sync)
        g->lost = rc == RL_E_UNKNOWN_MEMBER_ID ? LOST_UNKNOWN : LOST_FENCED;
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

/* --- the heartbeat thread ------------------------------------------------------------------ */

/* heartbeat.interval.ms, but at least three heartbeats per session, whatever the settings
 * say: a member heartbeating less often than its session lasts would drop itself. */
static int hb_interval_ms(const struct rlc_group *g)
{
    int third = g->conf->session_timeout_ms / 3;
    int ms = g->conf->heartbeat_interval_ms < third ? g->conf->heartbeat_interval_ms : third;
    return ms > 0 ? ms : 1;
}

/* Why a member was lost, for the log and rl_consumer_last_error. */
static void poll_expired_msg(const struct rlc_group *g, int64_t idle_ms, char *buf, size_t len)
{
    snprintf(buf, len, "poll was not called for %lld ms (max.poll.interval.ms is %d): left the "
             "group; poll more often, or raise max.poll.interval.ms", (long long)idle_ms,
             g->conf->max_poll_interval_ms);
}

static void session_expired_msg(const struct rlc_group *g, int64_t quiet_ms, char *buf,
                                size_t len)
{
    snprintf(buf, len, "no heartbeat reached the coordinator for %lld ms (session.timeout.ms is "
             "%d): dropped from the group", (long long)quiet_ms, g->conf->session_timeout_ms);
}

/* Starts heartbeating the member's current generation (the member is in sync). */
static void hb_resume(struct rlc_group *g)
{
    int64_t now = rlc_now_ms();
    pthread_mutex_lock(&g->lock);
    snprintf(g->hb_member, sizeof(g->hb_member), "%s", g->member_id);
    g->hb_generation = g->generation;
    atomic_store(&g->hb_last_ok_ms, now);
    g->hb_next_ms = now + hb_interval_ms(g);
    g->hb_left = false;
    g->hb_on = true;
    atomic_store(&g->news, NEWS_NONE); /* about the old generation: acted on already */
    atomic_store(&g->last_poll_ms, now);
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* Stops heartbeating (the member rejoins, leaves or was lost). */
static void hb_pause(struct rlc_group *g)
{
    pthread_mutex_lock(&g->lock);
    g->hb_on = false;
    pthread_mutex_unlock(&g->lock);
}

/* Heartbeats the same member and generation again after hb_pause, its clocks unchanged. */
static void hb_unpause(struct rlc_group *g)
{
    pthread_mutex_lock(&g->lock);
    g->hb_on = true;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

/* Under lock: the member is lost; tell the next poll (and wake it). */
static void hb_lose(struct rlc_group *g, enum lost_reason why, const char *msg)
{
    g->hb_on = false;
    g->hb_lost = why;
    rlc_set_err(g->hb_err, sizeof(g->hb_err), "group \"%s\": %s", g->conf->group_id, msg);
    atomic_store(&g->news, NEWS_LOST);
    rlc_consumer_wake(g->c);
}

/* One heartbeat on the thread's connection, without the lock, bounded by timeout_ms (finding
 * and connecting to the coordinator included). */
static int hb_send(struct rlc_group *g, const char *member, int32_t generation, int timeout_ms,
                   char *err, size_t errlen)
{
    Ringlog__HeartbeatRequest hr = RINGLOG__HEARTBEAT_REQUEST__INIT;
    hr.group_id = (char *)g->conf->group_id;
    hr.member_id = (char *)member;
    hr.generation = generation;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_HEARTBEAT;
    req.heartbeat = &hr;
    Ringlog__Response *resp;
    int rc = coord_request(g, &g->hb_conn, &req, timeout_ms, &resp, err, errlen);
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    return rc;
}

/* Under lock: waits on the condition until `until_ms` (monotonic) or a signal. */
static void hb_wait(struct rlc_group *g, int64_t until_ms)
{
    struct timespec ts = {.tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000};
    pthread_cond_timedwait(&g->cond, &g->lock, &ts);
}

/* Under lock: sends the heartbeat that is due (the lock is released for the call) and takes
 * its answer, unless the member moved on meanwhile. */
static void hb_beat(struct rlc_group *g)
{
    char member[GROUP_MEMBER_ID_MAX], err[512];
    int32_t generation = g->hb_generation;
    snprintf(member, sizeof(member), "%s", g->hb_member);
    /* Bounded by what is left of the session too: past it the member is lost whatever the
     * answer, and the thread must be there to say so. */
    int64_t sent_ms = rlc_now_ms();
    int64_t left = atomic_load(&g->hb_last_ok_ms) + g->conf->session_timeout_ms - sent_ms;
    int timeout_ms = left < 1 ? 1 : left < g->conf->request_timeout_ms
                                        ? (int)left : g->conf->request_timeout_ms;
    pthread_mutex_unlock(&g->lock);
    int rc = hb_send(g, member, generation, timeout_ms, err, sizeof(err));
    pthread_mutex_lock(&g->lock);
    int64_t now = rlc_now_ms();
    if (!g->hb_on || g->hb_generation != generation || strcmp(g->hb_member, member) != 0)
        return;
    if (rc == 0 || rc == RL_E_REBALANCE_IN_PROGRESS) {
        /* The coordinator saw the member: its session goes on, rebalance or not. */
        atomic_store(&g->hb_last_ok_ms, sent_ms);
        g->hb_next_ms = now + hb_interval_ms(g);
        if (rc && atomic_load(&g->news) == NEWS_NONE) {
            atomic_store(&g->news, NEWS_REJOIN);
            rlc_consumer_wake(g->c);
        }
    } else if (rc == RL_E_UNKNOWN_MEMBER_ID || rc == RL_E_ILLEGAL_GENERATION) {
        hb_lose(g, rc == RL_E_UNKNOWN_MEMBER_ID ? LOST_UNKNOWN : LOST_FENCED, err);
    } else {
        RL_DEBUG("group %s: heartbeat failed: %s", g->conf->group_id, err);
        g->hb_next_ms = now + g->conf->retry_backoff_ms; /* the session clock runs on */
    }
}

/* Under lock: the member stopped polling. Leaves the group so its partitions move now. */
static void hb_poll_expired(struct rlc_group *g, int64_t idle_ms)
{
    char member[GROUP_MEMBER_ID_MAX], msg[200];
    snprintf(member, sizeof(member), "%s", g->hb_member);
    poll_expired_msg(g, idle_ms, msg, sizeof(msg));
    hb_lose(g, LOST_POLL, msg);
    pthread_mutex_unlock(&g->lock);
    leave(g, &g->hb_conn, member);
    pthread_mutex_lock(&g->lock);
    g->hb_left = true;
}

static void *hb_main(void *arg)
{
    struct rlc_group *g = arg;
    struct rlc_log_scope ls;
    rlc_log_enter(g->conf, &ls); /* the consumer's log callback, for the thread's whole life */
    pthread_mutex_lock(&g->lock);
    while (!g->hb_stop) {
        if (!g->hb_on) {
            pthread_cond_wait(&g->cond, &g->lock);
            continue;
        }
        int64_t now = rlc_now_ms();
        int64_t poll_due = atomic_load(&g->last_poll_ms) + g->conf->max_poll_interval_ms;
        int64_t last_ok = atomic_load(&g->hb_last_ok_ms);
        int64_t session_end = last_ok + g->conf->session_timeout_ms;
        if (now > poll_due) {
            hb_poll_expired(g, now - atomic_load(&g->last_poll_ms));
        } else if (now > session_end) {
            char msg[200];
            session_expired_msg(g, now - last_ok, msg, sizeof(msg));
            hb_lose(g, LOST_SESSION, msg);
        } else if (now >= g->hb_next_ms) {
            hb_beat(g);
        } else {
            int64_t until = g->hb_next_ms < poll_due ? g->hb_next_ms : poll_due + 1;
            hb_wait(g, until < session_end + 1 ? until : session_end + 1);
        }
    }
    pthread_mutex_unlock(&g->lock);
    rlc_log_leave(&ls);
    return NULL;
}

/* --- joining ----------------------------------------------------------------------------------- */

static bool cooperative(const struct rlc_group *g)
{
    return strcmp(g->conf->assignor, "cooperative-sticky") == 0;
}

/* Fills a JoinGroup request (assignors must have room for 2). A cooperative member names only
 * cooperative-sticky: a group that falls back to an eager assignor would hand its partitions
 * to others while it still consumes them. */
static void join_request(struct rlc_group *g, Ringlog__JoinGroupRequest *jr,
                         const char **assignors)
{
    assignors[0] = g->conf->assignor;
    assignors[1] = strcmp(g->conf->assignor, "range") ? "range" : "roundrobin";
    ringlog__join_group_request__init(jr);
    jr->group_id = (char *)g->conf->group_id;
    jr->member_id = g->member_id;
    jr->session_timeout_ms = (uint32_t)g->conf->session_timeout_ms;
    jr->rebalance_timeout_ms = (uint32_t)g->conf->rebalance_timeout_ms;
    jr->topics = g->topics;
    jr->n_topics = g->topic_count;
    jr->assignors = (char **)assignors;
    jr->n_assignors = cooperative(g) ? 1 : 2;
}

/* Takes a JoinGroup answer (rc: the call's result); frees resp. */
static int join_took(struct rlc_group *g, int rc, Ringlog__Response *resp)
{
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

/* JoinGroup: waits at the coordinator until the rebalance completes, at most timeout_ms. */
static int join(struct rlc_group *g, int timeout_ms)
{
    const char *assignors[2];
    Ringlog__JoinGroupRequest jr;
    join_request(g, &jr, assignors);
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_JOIN_GROUP;
    req.join_group = &jr;
    Ringlog__Response *resp;
    int rc = coord_call(g, &req, timeout_ms, &resp);
    return join_took(g, rc, resp);
}

/* Cooperative: sends JoinGroup on join_conn without waiting for its answer. */
static int join_send(struct rlc_group *g)
{
    int rc = coord_connect(g, &g->join_conn, g->conf->request_timeout_ms, g->err,
                           sizeof(g->err));
    if (rc)
        return rc;
    const char *assignors[2];
    Ringlog__JoinGroupRequest jr;
    join_request(g, &jr, assignors);
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_JOIN_GROUP;
    req.join_group = &jr;
    req.client_id = (char *)g->conf->client_id;
    rc = rlc_conn_queue(&g->join_conn, &req, NULL, 0, &g->join_corr);
    if (rc == 0)
        rc = rlc_conn_flush(&g->join_conn);
    if (rc) {
        rlc_set_err(g->err, sizeof(g->err), "group \"%s\": %s", g->conf->group_id,
                    g->join_conn.err);
        rlc_conn_close(&g->join_conn);
    }
    return rc;
}

/* Cooperative: takes the JoinGroup answer if it is there. Returns 1 with the join's result in
 * *result, 0 when it has not come yet, or a connection failure (the connection is closed). */
static int join_poll(struct rlc_group *g, int *result)
{
    Ringlog__Response *resp = NULL;
    const uint8_t *data;
    size_t dlen;
    int rc = rlc_conn_flush(&g->join_conn);
    while (rc == 0) {
        rc = rlc_conn_read(&g->join_conn, &resp, &data, &dlen);
        if (rc != 1)
            break;
        if (resp->correlation_id == g->join_corr)
            break;
        ringlog__response__free_unpacked(resp, NULL); /* not ours: skip */
        resp = NULL;
        rc = 0;
    }
    if (rc < 0) {
        rlc_set_err(g->err, sizeof(g->err), "group \"%s\": %s", g->conf->group_id,
                    g->join_conn.err);
        rlc_conn_close(&g->join_conn);
        return rc;
    }
    if (rc == 0)
        return 0;
    int code = resp->error_code;
    if (code)
        rlc_set_err(g->err, sizeof(g->err), "group \"%s\": %s", g->conf->group_id,
                    resp->error_message && resp->error_message[0] ? resp->error_message
                                                                  : rl_strerror(code));
    *result = join_took(g, code, resp);
    return 1;
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

static bool in_assignment(const Ringlog__SyncGroupResponse *sg, const char *topic,
                          int32_t partition)
{
    for (size_t i = 0; i < sg->n_assignment; i++) {
        const Ringlog__TopicPartitions *tp = sg->assignment[i];
        if (!tp->topic || strcmp(tp->topic, topic) != 0)
            continue;
        for (size_t j = 0; j < tp->n_partitions; j++)
            if ((int32_t)tp->partitions[j] == partition)
                return true;
    }
    return false;
}

static void lose(struct rlc_group *g);
static void revoke(struct rlc_group *g);

/* Cooperative: gives up the partitions held that the new assignment lacks (commit with
 * auto-commit, REVOKED with just those, drop them), keeping the others and their positions.
 * Returns how many were revoked; the member then rejoins so the group can hand them over. */
static size_t revoke_missing(struct rlc_group *g, const Ringlog__SyncGroupResponse *sg)
{
    int n = rlc_consumer_part_count(g->c);
    struct rl_topic_partition *tps = calloc((size_t)n + 1, sizeof(*tps));
    if (!tps) {
        revoke(g); /* the coordinator counts them as given up: give up all rather than none */
        return 0;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        int64_t pos, committed;
        const char *topic;
        int32_t part;
        rlc_consumer_part_at(g->c, i, &topic, &part, &pos, &committed);
        if (!in_assignment(sg, topic, part))
            tps[k++] = (struct rl_topic_partition){.topic = topic, .partition = part};
    }
    if (k > 0 && g->conf->enable_auto_commit && rlc_group_commit_positions(g))
        RL_DEBUG("group %s: commit before revocation failed: %s", g->conf->group_id, g->err);
    if (k > 0 && g->lost) {
        free(tps);
        lose(g);
        return 0;
    }
    if (k > 0 && g->conf->rebalance_cb)
        g->conf->rebalance_cb(g->conf->rebalance_ctx, g->c, RL_REBALANCE_REVOKED, tps, k);
    /* Each entry's topic string belongs to its own partition, freed only when that one goes. */
    for (size_t i = 0; i < k; i++)
        rlc_consumer_unassign(g->c, tps[i].topic, tps[i].partition);
    g->lost = 0;
    free(tps);
    return k;
}

/* Takes the partitions SyncGroup gave, each at its committed offset (auto.offset.reset where
 * none is committed), and tells the application. A cooperative member already holding some
 * keeps them as they are: only the others are added, and ASSIGNED names only those. */
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
            if (rlc_consumer_has(g->c, tp->topic, (int32_t)tp->partitions[j]))
                continue; /* retained (cooperative): its position and buffers stay */
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
        /* In sync from here: heartbeats keep the member while positions are looked up and
         * while the application's callback runs, however long it takes. */
        g->in_sync = true;
        hb_resume(g);
        rc = rlc_consumer_resolve(g->c);
        if (rc)
            rlc_set_err(g->err, sizeof(g->err), "group \"%s\": cannot resolve the start "
                        "positions: %s", g->conf->group_id, rl_consumer_last_error(g->c));
    }
    if (rc == 0) {
        RL_DEBUG("group %s: generation %d, %zu partitions assigned", g->conf->group_id,
                 g->generation, k);
        if (g->conf->rebalance_cb)
            g->conf->rebalance_cb(g->conf->rebalance_ctx, g->c, RL_REBALANCE_ASSIGNED, tps, k);
    } else if (rlc_consumer_part_count(g->c) > (int)k) {
        /* Cooperative, with partitions retained: drop only the new ones (the application
         * never heard of them) and try the rebalance again. */
        for (size_t i = 0; i < k; i++)
            rlc_consumer_unassign(g->c, tps[i].topic, tps[i].partition);
        g->in_sync = true;
        hb_resume(g);
        g->need_rejoin = true;
    } else {
        hb_pause(g);
        g->in_sync = false;
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
    bool held = g->in_sync; /* cooperative: partitions kept through the join */
    if (rc && !resp && held) {
        /* Unanswered: the coordinator may have handed this generation out, and counts what
         * it took from the member as given up. Not knowing what that was, give up all. */
        revoke(g);
    }
    if (rc)
        goto out;
    const Ringlog__SyncGroupResponse *sg = resp->sync_group;
    /* Cooperative: what the new assignment lacks goes now, before anything else can fail
     * (the coordinator counts it as given up once it answered). */
    if (held && revoke_missing(g, sg) > 0)
        g->need_rejoin = true; /* hand the revoked partitions over in the next round */
    if (held && !g->in_sync) {
        /* A commit found the member dropped (LOST was called), or all was revoked. */
        rc = RL_E_ILLEGAL_GENERATION;
        goto out;
    }
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

/* The member was lost: its partitions may be someone else's already. Tells the application
 * (LOST, no commit), drops them and everything fetched for them; the next duty rejoins. */
static void lose(struct rlc_group *g)
{
    enum lost_reason why = g->lost;
    g->lost = 0;
    hb_pause(g);
    if (g->joining) { /* a cooperative join under the lost membership: moot */
        rlc_conn_close(&g->join_conn);
        g->joining = false;
    }
    RL_DEBUG("group %s: membership lost: %s", g->conf->group_id, g->err);
    if (why == LOST_POLL && !g->lost_left && g->member_id[0])
        leave(g, &g->coord, g->member_id); /* the heartbeat thread had not done it yet */
    if (why == LOST_POLL || why == LOST_UNKNOWN)
        g->member_id[0] = 0; /* join as a new member */
    g->need_rejoin = true;
    if (!g->in_sync)
        return;
    int n = rlc_consumer_part_count(g->c);
    g->in_sync = false;
    if (g->conf->rebalance_cb && n > 0) {
        struct rl_topic_partition *tps = calloc((size_t)n, sizeof(*tps));
        for (int i = 0; tps && i < n; i++) {
            int64_t pos, committed;
            rlc_consumer_part_at(g->c, i, &tps[i].topic, &tps[i].partition, &pos, &committed);
        }
        if (tps)
            g->conf->rebalance_cb(g->conf->rebalance_ctx, g->c, RL_REBALANCE_LOST, tps,
                                  (size_t)n);
        free(tps);
    }
    rlc_consumer_unassign_all(g->c);
}

/* Gives the partitions up: commits what was handed out (auto-commit), tells the application,
 * drops them and everything fetched for them. A commit that finds the member already dropped
 * turns this into a loss (LOST, not REVOKED). */
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
    if (g->lost) {
        lose(g);
        return;
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
    g->lost = 0; /* a commit inside the callback may have found the member gone: moot now */
}

/* Revokes, then joins and syncs until the member holds the new generation's assignment.
 * Bounded in time, as rl_consumer_poll promises: rounds start only within rebalance.timeout.ms
 * plus request.timeout.ms, and JoinGroup waits no longer than what is left (a coordinator that
 * cannot be reached would otherwise hold one poll for GROUP_JOIN_ATTEMPTS full rounds). The
 * next poll goes on where this one stopped. */
static int rejoin(struct rlc_group *g)
{
    revoke(g);
    hb_pause(g);
    int rc = 0;
    int64_t deadline = rlc_now_ms() + g->conf->rebalance_timeout_ms +
                       g->conf->request_timeout_ms;
    for (int attempt = 0; attempt < GROUP_JOIN_ATTEMPTS; attempt++) {
        int64_t left = deadline - rlc_now_ms();
        if (attempt > 0 && left <= 0)
            break;
        rc = join(g, left > 1 ? (int)left : 1);
        if (rc == 0)
            rc = sync_and_assign(g);
        if (rc == 0) {
            g->need_rejoin = false;
            g->failures = 0;
            g->next_commit_ms = rlc_now_ms() + g->conf->auto_commit_interval_ms;
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

/* Cooperative rebalance, one step per duty, never blocking on the join: the member keeps its
 * partitions (heartbeats pause: the generation is about to change) and poll keeps handing out
 * their records while JoinGroup waits on join_conn. When the answer comes, SyncGroup (answered
 * at once) gives the new assignment: partitions missing from it are revoked, new ones are
 * added, retained ones are untouched. Bounded like rejoin: an answer that does not come within
 * rebalance.timeout.ms + request.timeout.ms closes the connection and the member tries again. */
static int coop_step(struct rlc_group *g)
{
    int64_t now = rlc_now_ms();
    if (!g->joining) {
        if (now < g->next_join_ms)
            return 0;
        /* Heartbeats pause first: one of the old generation answered after the rebalance
         * completed would read as ILLEGAL_GENERATION. */
        hb_pause(g);
        int rc = join_send(g);
        if (rc) { /* still in sync with the old generation: heartbeat it again */
            hb_unpause(g);
            g->need_rejoin = true;
            g->failures++;
            g->next_join_ms = now + rlc_backoff_ms(g->failures, g->conf->retry_backoff_ms,
                                                   g->conf->retry_backoff_max_ms,
                                                   rlc_rand(&g->rnd));
            RL_DEBUG("group %s: cooperative join not sent: %s", g->conf->group_id, g->err);
            return 0;
        }
        g->joining = true;
        g->need_rejoin = false;
        g->join_deadline_ms = now + g->conf->rebalance_timeout_ms + g->conf->request_timeout_ms;
        return 0;
    }
    int result = 0;
    int rc = join_poll(g, &result);
    if (rc == 0 && now < g->join_deadline_ms)
        return 0; /* not answered yet */
    g->joining = false;
    bool answered = rc == 1; /* the coordinator heard the member: its session goes on */
    if (rc == 0) {
        rlc_set_err(g->err, sizeof(g->err), "group \"%s\": JoinGroup not answered within "
                    "rebalance.timeout.ms + request.timeout.ms", g->conf->group_id);
        rlc_conn_close(&g->join_conn);
        rc = RL_E_TIMED_OUT;
    } else if (rc == 1) {
        rc = result;
    }
    if (rc == 0)
        rc = sync_and_assign(g);
    if (rc == 0) {
        g->failures = 0;
        g->next_commit_ms = rlc_now_ms() + g->conf->auto_commit_interval_ms;
        return 0;
    }
    if (rc == RL_E_UNKNOWN_MEMBER_ID || rc == RL_E_ILLEGAL_GENERATION) {
        /* Dropped while joining: the partitions may be someone else's (LOST, no commit). */
        if (g->in_sync) {
            g->lost = rc == RL_E_UNKNOWN_MEMBER_ID ? LOST_UNKNOWN : LOST_FENCED;
            lose(g);
        }
        return 0;
    }
    g->need_rejoin = true;
    if (g->in_sync && answered)
        hb_resume(g); /* the generation the join gave, or the old one */
    else if (g->in_sync)
        hb_unpause(g); /* no answer: the session clock runs on from the last heartbeat */
    if (!must_rejoin(rc)) {
        g->failures++;
        g->next_join_ms = rlc_now_ms() + rlc_backoff_ms(g->failures, g->conf->retry_backoff_ms,
                                                        g->conf->retry_backoff_max_ms,
                                                        rlc_rand(&g->rnd));
        RL_DEBUG("group %s: cooperative join round: %s", g->conf->group_id, g->err);
    }
    return 0;
}

int rlc_group_fd(const struct rlc_group *g)
{
    return g->joining ? g->join_conn.fd : -1;
}

/* When poll must run the next duty (monotonic ms): now when the heartbeat thread has news;
 * else the next auto-commit, and at least every heartbeat.interval.ms, so a long wait inside
 * poll keeps the poll clock (max.poll.interval.ms) running. */
int64_t rlc_group_due_ms(const struct rlc_group *g)
{
    if (atomic_load_explicit(&g->news, memory_order_relaxed) != NEWS_NONE)
        return 0;
    int64_t due = atomic_load_explicit(&g->last_poll_ms, memory_order_relaxed) +
                  hb_interval_ms(g);
    if (g->joining && g->join_deadline_ms < due)
        due = g->join_deadline_ms;
    if (!g->joining && g->need_rejoin && g->in_sync && g->next_join_ms < due)
        due = g->next_join_ms; /* a cooperative join to retry */
    if (g->in_sync && g->conf->enable_auto_commit && g->next_commit_ms < due)
        due = g->next_commit_ms;
    return due;
}

bool rlc_group_active(const struct rlc_group *g)
{
    return g->topic_count > 0 && !g->closed;
}

/* Takes what the heartbeat thread learned and restarts the poll clock. Poll checks both
 * liveness bounds itself too, before it hands out another record, in case the heartbeat thread
 * ran late (a loaded machine): a member must not process records of partitions that may be
 * someone else's already. The fast path (nothing new, both clocks within bounds) takes no
 * lock: poll runs this for every record. */
static void take_news(struct rlc_group *g, int64_t now)
{
    int64_t idle = now - atomic_load_explicit(&g->last_poll_ms, memory_order_relaxed);
    int64_t quiet = now - atomic_load_explicit(&g->hb_last_ok_ms, memory_order_relaxed);
    bool expired = g->in_sync && (idle > g->conf->max_poll_interval_ms ||
                                  quiet > g->conf->session_timeout_ms);
    if (atomic_load(&g->news) == NEWS_NONE && !expired) {
        atomic_store_explicit(&g->last_poll_ms, now, memory_order_relaxed);
        return;
    }
    pthread_mutex_lock(&g->lock);
    if (atomic_load(&g->news) != NEWS_LOST && g->hb_on && expired) {
        /* The heartbeat thread has not seen it yet: the same verdict here (lose() leaves). */
        char msg[200];
        bool by_poll = idle > g->conf->max_poll_interval_ms;
        if (by_poll)
            poll_expired_msg(g, idle, msg, sizeof(msg));
        else
            session_expired_msg(g, quiet, msg, sizeof(msg));
        g->hb_left = false;
        hb_lose(g, by_poll ? LOST_POLL : LOST_SESSION, msg);
    }
    int news = atomic_exchange(&g->news, NEWS_NONE);
    if (news == NEWS_LOST && g->in_sync) {
        g->lost = g->hb_lost;
        g->lost_left = g->hb_left;
        snprintf(g->err, sizeof(g->err), "%s", g->hb_err);
    } else if (news == NEWS_REJOIN) {
        g->need_rejoin = true;
    }
    atomic_store(&g->last_poll_ms, now);
    pthread_mutex_unlock(&g->lock);
}

int rlc_group_duty(struct rlc_group *g)
{
    if (!rlc_group_active(g))
        return 0;
    int64_t now = rlc_now_ms();
    take_news(g, now);
    if (g->lost)
        lose(g);
    if (g->in_sync && !g->need_rejoin && !g->joining && g->conf->enable_auto_commit &&
        now >= g->next_commit_ms) {
        g->next_commit_ms = now + g->conf->auto_commit_interval_ms;
        if (rlc_group_commit_positions(g))
            RL_DEBUG("group %s: auto-commit failed: %s", g->conf->group_id, g->err);
        if (g->lost)
            lose(g);
    }
    if (g->in_sync && !g->need_rejoin && !g->joining)
        return 0;
    if (cooperative(g) && g->in_sync)
        return coop_step(g);
    return rejoin(g);
}

int rlc_group_close(struct rlc_group *g)
{
    if (g->closed)
        return 0;
    take_news(g, rlc_now_ms());
    if (g->joining) { /* give the pending join up; the commit goes under the old generation */
        rlc_conn_close(&g->join_conn);
        g->joining = false;
    }
    int rc = 0;
    if (g->in_sync && !g->lost && g->conf->enable_auto_commit)
        rc = rlc_group_commit_positions(g);
    revoke(g); /* or LOST, when the member was dropped */
    hb_pause(g);
    g->closed = true;
    if (g->member_id[0] && rlc_conn_is_open(&g->coord))
        leave(g, &g->coord, g->member_id);
    rlc_conn_close(&g->coord);
    return rc;
}
