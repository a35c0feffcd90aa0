/*
 * replica: see replica.h. One `struct replica` per replicated partition this broker holds: its
 * raftlog over the partition's plog and its group in the shared driver; the driver's callbacks
 * report durability, commit and leadership to the partition.
 */
#include "broker/cluster/replica.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "broker/cluster/peer.h"
#include "broker/meta/meta.h"
#include "broker/partition/partition.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"
#include "replication/raftlog.h"
#include "replication/repl.h"
#include "storage/plog.h"

/* A leader refuses appends while this much of its log waits for the disk: the raftlog fails a
 * group whose plog refuses an append for lack of room (64 MiB per log). */
#define REPLICA_MAX_UNSYNCED_BYTES (32u << 20)
#define REPLICA_CHECK_MS 100 /* failed groups, moves and balancing: checked this often */
#define REPLICA_MOVE_RETRY_MS 1000 /* a refused end of a move is proposed again after this */

struct replica_done;

struct replica {
    struct replicas *rs;
    struct partition *p;
    struct raftlog *rl;
    struct repl_group *g;
    uint64_t gid;
    uint32_t index;
    uint32_t min_insync;
    uint32_t n_nodes;
    uint32_t nodes[RAFT_MAX_VOTERS];
    uint64_t logged_term; /* the term whose leadership was last logged */
    int64_t led_since_ms; /* when this broker last became leader */
    uint64_t elections, leader_changes;
    uint32_t n_target;                 /* a move runs toward target[] (meta's record); 0: none */
    uint32_t target[RAFT_MAX_VOTERS];
    struct replica_done *done;         /* the end of the move, proposed and not yet answered */
    int64_t move_wait_until_ms;        /* a refused end of move is proposed again after this */
    struct replica *next;
};

/* The end of a move proposed to the controller: its own allocation, because the replica may
 * go (its topic deleted) before the controller answers; rp is cleared then. */
struct replica_done {
    struct meta_proposal pr;
    struct replica *rp;
    struct meta_move mv;
    uint32_t replicas[RAFT_MAX_VOTERS];
    char topic[256];
};

struct replicas {
    struct io *io;
    struct repl *repl;
    struct raftlog_arena *arena;
    struct peer *peer;
    struct meta *meta;
    struct replicas_config cfg;
    struct replica *list;
    uint32_t n;
    uint64_t elections, leader_changes;
    uint64_t handoffs, balance_transfers;
    uint64_t leader_lost_notices;
    bool handing_off;
    int64_t last_check_ms; /* replicas_tick's last walk */
};

uint64_t replicas_group_id(const char *topic, uint32_t index, uint64_t incarnation)
{
    char buf[340];
    /* Without an incarnation (records from before it existed) the id is the name's alone. */
    int n = incarnation ? snprintf(buf, sizeof(buf), "%s/%u@%llu", topic, index,
                                   (unsigned long long)incarnation)
                        : snprintf(buf, sizeof(buf), "%s/%u", topic, index);
    uint64_t h = XXH3_64bits(buf, n > 0 ? (size_t)n : 0);
    return h | (1ull << 63); /* never 0, the controller's */
}

static int64_t replicas_now_ms(const struct replicas *rs)
{
    return (int64_t)(io_now_ns(rs->io) / 1000000ull);
}

/* --- the partition's side ---------------------------------------------------------------------- */

static uint32_t replica_in_sync(void *ctx, uint32_t *out, uint32_t cap)
{
    struct replica *rp = ctx;
    const struct raft *rf = repl_group_raft(rp->g);
    uint32_t n = 0;
    if (raft_role(rf) != RAFT_LEADER) {
        for (uint32_t i = 0; i < rp->n_nodes && n < cap; i++)
            out[n++] = rp->nodes[i];
        return n;
    }
    /* Over the voters of the configuration in effect: during a move they are neither the old
     * nor the new replicas of meta's record (a learner is never in sync: it counts toward
     * nothing). */
    int64_t now = replicas_now_ms(rp->rs);
    int64_t window = (int64_t)rp->rs->cfg.election_ticks * rp->rs->cfg.tick_ms;
    for (uint32_t i = 0; i < rf->config.n_voters && n < cap; i++) {
        uint32_t id = rf->config.voters[i];
        if (id == rp->rs->cfg.self) {
            out[n++] = id;
            continue;
        }
        const struct raft_progress *pr = raft_progress_of(rf, id);
        struct peer_node_stats ps;
        peer_get_node_stats(rp->rs->peer, id, &ps);
        if (pr && pr->state != RAFT_PR_SNAPSHOT && ps.last_heard_ms &&
            now - ps.last_heard_ms <= window)
            out[n++] = id;
    }
    return n;
}

static int replica_propose(void *ctx, uint8_t *batch, uint32_t len, bool all, uint64_t *end)
{
    struct replica *rp = ctx;
    const struct raft *rf = repl_group_raft(rp->g);
    if (raft_role(rf) != RAFT_LEADER || !raft_leader_ready(rf) || repl_group_failed(rp->g))
        return RL_E_NOT_LEADER; /* a failed group: the others elect a leader */
    if (all && rp->min_insync > 1) {
        uint32_t ids[RAFT_MAX_VOTERS];
        if (replica_in_sync(rp, ids, RAFT_MAX_VOTERS) < rp->min_insync)
            return RL_E_NOT_ENOUGH_REPLICAS;
    }
    if (partition_unsynced_bytes(rp->p) > REPLICA_MAX_UNSYNCED_BYTES)
        return RL_E_THROTTLED;
    uint64_t last = 0;
    int rc = repl_propose(rp->rs->repl, rp->g, &batch, &len, 1, &last);
    if (rc == RL_E_RAFT_NOT_LEADER || rc == RL_E_RAFT_TRANSFERRING)
        return RL_E_NOT_LEADER; /* a transfer: the client retries on the next leader */
    if (rc == RL_E_FULL)
        return RL_E_THROTTLED;
    if (rc)
        return rc;
    *end = last;
    return 0;
}

/* --- the driver's callbacks -------------------------------------------------------------------- */

/* The partition takes appends only on the leader that committed an entry of its term. */
static void replica_sync_role(struct replica *rp)
{
    const struct raft *rf = repl_group_raft(rp->g);
    bool leads = raft_role(rf) == RAFT_LEADER && raft_leader_ready(rf);
    if (leads != partition_leads(rp->p) || raft_leader(rf) != partition_leader(rp->p) ||
        raft_term(rf) != partition_term(rp->p))
        partition_repl_role(rp->p, leads, raft_leader(rf), raft_term(rf));
}

static void replica_on_commit(void *ctx, struct repl_group *g, uint64_t commit)
{
    struct replica *rp = ctx;
    (void)g;
    partition_repl_commit(rp->p, commit);
    replica_sync_role(rp);
}

static void replica_on_role(void *ctx, struct repl_group *g, enum raft_role role, uint64_t term,
                            uint32_t leader)
{
    struct replica *rp = ctx;
    (void)g;
    rp->leader_changes++;
    rp->rs->leader_changes++;
    if (role == RAFT_LEADER && term != rp->logged_term) {
        rp->logged_term = term;
        rp->elections++;
        rp->rs->elections++;
        rp->led_since_ms = replicas_now_ms(rp->rs);
        RL_INFO("leader of %s-%u in term %" PRIu64, partition_topic(rp->p), rp->index, term);
    }
    (void)leader;
    replica_sync_role(rp);
}

static void replica_on_durable(void *ctx, struct repl_group *g, uint64_t index)
{
    struct replica *rp = ctx;
    (void)g;
    partition_repl_durable(rp->p, index);
}

static void replica_notify(void *ctx)
{
    repl_group_log_durable(ctx);
}

/* --- attach and detach (meta's replicator) ----------------------------------------------------- */

static void replica_free(struct replica *rp)
{
    if (rp->done)
        rp->done->rp = NULL; /* the controller's answer finds no replica */
    if (rp->rl)
        raftlog_set_notify(rp->rl, NULL, NULL);
    if (rp->g)
        repl_group_remove(rp->rs->repl, rp->g);
    if (rp->rl)
        raftlog_close(rp->rl); /* waits for its appends in flight */
    free(rp);
}

static int replicas_attach(void *ctx, const struct meta_topic *t, uint32_t i, struct partition *p)
{
    struct replicas *rs = ctx;
    uint32_t n;
    const uint32_t *nodes = meta_partition_replicas(t, i, &n);
    if (!nodes || n < 2 || n > RAFT_MAX_VOTERS)
        return RL_E_INVALID_ARGUMENT;
    struct replica *rp = calloc(1, sizeof(*rp));
    if (!rp)
        return -ENOMEM;
    rp->rs = rs;
    rp->p = p;
    rp->index = i;
    rp->min_insync = meta_topic_min_insync(t);
    rp->n_nodes = n;
    memcpy(rp->nodes, nodes, n * sizeof(*nodes));
    const uint32_t *tg = meta_partition_target(t, i);
    rp->n_target = tg ? n : 0;
    if (tg)
        memcpy(rp->target, tg, n * sizeof(*tg));
    rp->gid = replicas_group_id(t->name, i, t->incarnation);
    /* Raft counts a replica toward commit only once its copy is on disk: the log must
     * acknowledge an append only after its fdatasync. */
    struct plog_config pc;
    config_topic_to_plog(&t->cfg, &pc);
    pc.flush_policy = PLOG_FLUSH_BATCH;
    int rc = plog_set_config(partition_plog(p), &pc);
    if (rc == 0)
        rc = raftlog_open(rs->io, partition_plog(p), partition_dir(p), rs->arena, &rp->rl);
    if (rc) {
        RL_ERROR("%s-%u: cannot open its replicated log: %s", t->name, i, rl_strerror(rc));
        free(rp);
        return rc;
    }
    struct repl_group_options o = {
        .id = rp->gid,
        .raft = {.id = rs->cfg.self, .election_ticks = rs->cfg.election_ticks,
                 .heartbeat_ticks = 1, .seed = rs->cfg.seed ^ rp->gid, .pre_vote = true,
                 .check_quorum = true, .log_ops = &raftlog_ops, .log_ctx = rp->rl},
        .log = &repl_raftlog_ops,
        .on_commit = replica_on_commit,
        .on_role = replica_on_role,
        .on_durable = replica_on_durable,
        .ctx = rp,
    };
    o.snap.config.n_voters = n;
    memcpy(o.snap.config.voters, nodes, n * sizeof(*nodes));
    rc = repl_group_add(rs->repl, &o, &rp->g);
    if (rc) {
        RL_ERROR("%s-%u: cannot start its raft group: %s", t->name, i, rl_strerror(rc));
        raftlog_close(rp->rl);
        free(rp);
        return rc;
    }
    raftlog_set_notify(rp->rl, replica_notify, rp->g);
    struct partition_replicator pr = {replica_propose, replica_in_sync, rp};
    partition_set_replicator(p, &pr);
    rp->next = rs->list;
    rs->list = rp;
    rs->n++;
    return 0;
}

static void replicas_detach(void *ctx, struct partition *p)
{
    struct replicas *rs = ctx;
    for (struct replica **pp = &rs->list; *pp; pp = &(*pp)->next) {
        struct replica *rp = *pp;
        if (rp->p != p)
            continue;
        *pp = rp->next;
        rs->n--;
        partition_set_replicator(p, NULL);
        replica_free(rp);
        return;
    }
}

/* meta's record of the partition's replicas or move target changed. */
static void replicas_moved(void *ctx, const struct meta_topic *t, uint32_t i, struct partition *p)
{
    struct replicas *rs = ctx;
    for (struct replica *rp = rs->list; rp; rp = rp->next) {
        if (rp->p != p)
            continue;
        uint32_t n;
        const uint32_t *nodes = meta_partition_replicas(t, i, &n);
        const uint32_t *tg = meta_partition_target(t, i);
        if (nodes && n <= RAFT_MAX_VOTERS) {
            rp->n_nodes = n;
            memcpy(rp->nodes, nodes, n * sizeof(*nodes));
        }
        rp->n_target = tg && nodes ? n : 0;
        if (rp->n_target)
            memcpy(rp->target, tg, n * sizeof(*tg));
        rp->move_wait_until_ms = 0;
        return;
    }
}

int replicas_create(struct io *io, struct repl *r, struct raftlog_arena *arena,
                    struct peer *peer, struct meta *m, const struct replicas_config *cfg,
                    struct replicas **out, char *err, size_t err_cap)
{
    struct replicas *rs = calloc(1, sizeof(*rs));
    if (!rs) {
        snprintf(err, err_cap, "out of memory");
        return -ENOMEM;
    }
    *rs = (struct replicas){.io = io, .repl = r, .arena = arena, .peer = peer, .meta = m,
                            .cfg = *cfg};
    struct meta_replicator mr = {replicas_attach, replicas_detach, replicas_moved, rs};
    int rc = meta_set_replicator(m, &mr);
    if (rc) {
        snprintf(err, err_cap, "cannot start replicating the partitions this broker holds: %s",
                 rl_strerror(rc));
        replicas_destroy(rs);
        return rc;
    }
    *out = rs;
    return 0;
}

void replicas_destroy(struct replicas *rs)
{
    if (!rs)
        return;
    meta_set_replicator(rs->meta, NULL); /* detaches every partition */
    for (uint32_t guard = 0; rs->list && guard < (1u << 20); guard++) {
        struct replica *rp = rs->list; /* cannot happen: meta detached them all */
        rs->list = rp->next;
        partition_set_replicator(rp->p, NULL);
        replica_free(rp);
    }
    free(rs);
}

/* --- leadership hand-off and preferred-leader balancing --------------------------------------- */

/* rp leads and may be asked to transfer: ready, not failed, no transfer under way. */
static bool replica_may_transfer(const struct replica *rp)
{
    const struct raft *rf = repl_group_raft(rp->g);
    return !repl_group_failed(rp->g) && raft_role(rf) == RAFT_LEADER && raft_leader_ready(rf) &&
           rf->transferee == 0;
}

/* The in-sync follower of rp's group holding the most of the log, or 0. */
static uint32_t replica_successor(struct replica *rp)
{
    const struct raft *rf = repl_group_raft(rp->g);
    uint32_t ids[RAFT_MAX_VOTERS], best = 0;
    uint64_t best_match = 0;
    uint32_t n = replica_in_sync(rp, ids, RAFT_MAX_VOTERS);
    for (uint32_t i = 0; i < n; i++) {
        const struct raft_progress *pr = raft_progress_of(rf, ids[i]);
        if (ids[i] == rp->rs->cfg.self || !pr || !pr->voter)
            continue;
        if (!best || pr->match > best_match) {
            best = ids[i];
            best_match = pr->match;
        }
    }
    return best;
}

uint32_t replicas_handoff(struct replicas *rs)
{
    if (!rs->handing_off)
        RL_INFO("handing leadership of the partitions this broker leads to other replicas");
    rs->handing_off = true;
    uint32_t led = 0;
    for (struct replica *rp = rs->list; rp; rp = rp->next) {
        const struct raft *rf = repl_group_raft(rp->g);
        if (repl_group_failed(rp->g) || raft_role(rf) != RAFT_LEADER)
            continue;
        if (rf->transferee) {
            led++;
            continue;
        }
        uint32_t to = replica_successor(rp);
        if (to && repl_transfer(rs->repl, rp->g, to) == 0) {
            rs->handoffs++;
            led++;
        } /* else no follower in sync to take it: nothing to wait for */
    }
    return led;
}

/* The preferred replica of rp's group can take over: connected, heard from within the election
 * timeout, durable up to the commit index. */
static bool replica_preferred_ready(struct replica *rp, int64_t now)
{
    const struct raft *rf = repl_group_raft(rp->g);
    uint32_t pref = rp->nodes[0];
    const struct raft_progress *pr = raft_progress_of(rf, pref);
    if (!pr || !pr->voter || pr->state != RAFT_PR_REPLICATE || pr->match < raft_commit(rf))
        return false;
    struct peer_node_stats ps;
    peer_get_node_stats(rp->rs->peer, pref, &ps);
    int64_t window = (int64_t)rp->rs->cfg.election_ticks * rp->rs->cfg.tick_ms;
    return ps.connected && ps.last_heard_ms && now - ps.last_heard_ms <= window;
}

/* --- moving replicas -------------------------------------------------------------------------- *
 * The controller records a move's target (meta); the partition's leader drives it one
 * membership change at a time: every target replica missing from the group joins as a learner,
 * a learner that holds the commit index is promoted, then the voters outside the target are
 * removed (this leader last: the core hands leadership to the best remaining voter once its
 * removal commits), and once the target voters are committed the leader records the end of the
 * move. Every step is decided from the configuration in the group's log, so a new leader (the
 * old one died mid-move) continues where the log stands. Redundancy never drops: a replica
 * leaves only after its successor is a voter holding the commit index. */

static void replica_done_answered(struct meta_proposal *pr)
{
    struct replica_done *d = (struct replica_done *)pr;
    struct replica *rp = d->rp;
    if (rp) {
        rp->done = NULL;
        if (pr->rc) {
            RL_WARN("%s-%u: recording the end of the move failed (%s); retrying",
                    d->topic, d->mv.partition, pr->msg[0] ? pr->msg : rl_strerror(pr->rc));
            rp->move_wait_until_ms = replicas_now_ms(rp->rs) + REPLICA_MOVE_RETRY_MS;
        }
    }
    free(d);
}

/* The target voters are committed: the controller records the end of the move. */
static void replica_move_done(struct replica *rp)
{
    struct replica_done *d = calloc(1, sizeof(*d));
    if (!d)
        return; /* tried again next time */
    d->rp = rp;
    snprintf(d->topic, sizeof(d->topic), "%s", partition_topic(rp->p));
    memcpy(d->replicas, rp->target, rp->n_target * sizeof(*rp->target));
    d->mv = (struct meta_move){d->topic, rp->index, rp->n_target, d->replicas};
    d->pr.done = replica_done_answered;
    d->pr.ctx = d;
    rp->done = d;
    RL_INFO("%s-%u: its replicas are the move's target; recording the end of the move",
            d->topic, rp->index);
    meta_propose_reassign_done(rp->rs->meta, &d->pr, &d->mv);
}

/* Proposes one membership change; false when the core refused it (tried again later). */
static bool replica_conf(struct replica *rp, enum raft_conf_op op, uint32_t id, const char *what)
{
    uint64_t idx;
    int rc = repl_conf_change(rp->rs->repl, rp->g, op, id, &idx);
    if (rc == 0)
        RL_INFO("%s-%u: move: %s %u", partition_topic(rp->p), rp->index, what, id);
    return rc == 0;
}

/* The next step of the move this leader drives (see above), or nothing while the last change
 * is uncommitted or a learner catches up. */
static void replica_move_step(struct replica *rp, int64_t now)
{
    const struct raft *rf = repl_group_raft(rp->g);
    const struct raft_config *cf = &rf->config;
    uint32_t self = rp->rs->cfg.self;
    if (rf->config_index > raft_commit(rf) || rf->transferee || !raft_config_is_voter(cf, self))
        return;
    for (uint32_t i = 0; i < rp->n_target; i++) {
        uint32_t id = rp->target[i];
        if (!raft_config_is_voter(cf, id) && !raft_config_is_learner(cf, id)) {
            replica_conf(rp, RAFT_CONF_ADD_LEARNER, id, "adding learner");
            return;
        }
    }
    for (uint32_t i = 0; i < cf->n_learners; i++) {
        uint32_t id = cf->learners[i];
        const struct raft_progress *pr = raft_progress_of(rf, id);
        if (!meta_ids_have(rp->target, rp->n_target, id)) {
            replica_conf(rp, RAFT_CONF_REMOVE_LEARNER, id, "removing learner");
            return;
        }
        if (pr && pr->match >= raft_commit(rf)) { /* the core checks it again */
            replica_conf(rp, RAFT_CONF_PROMOTE_LEARNER, id, "promoting caught-up learner");
            return;
        }
    }
    if (cf->n_learners)
        return; /* catching up */
    bool self_out = false;
    for (uint32_t i = 0; i < cf->n_voters; i++) {
        uint32_t id = cf->voters[i];
        if (meta_ids_have(rp->target, rp->n_target, id))
            continue;
        if (id == self) {
            self_out = true;
            continue;
        }
        replica_conf(rp, RAFT_CONF_REMOVE_VOTER, id, "removing voter");
        return;
    }
    if (self_out) {
        replica_conf(rp, RAFT_CONF_REMOVE_VOTER, self, "removing itself (leadership goes to "
                     "a remaining voter) as voter");
        return;
    }
    if (!rp->done && now >= rp->move_wait_until_ms)
        replica_move_done(rp);
}

/* Every move whose group this broker leads takes its next step. */
static void replicas_moves(struct replicas *rs, int64_t now)
{
    if (rs->handing_off)
        return;
    for (struct replica *rp = rs->list; rp; rp = rp->next) {
        const struct raft *rf = repl_group_raft(rp->g);
        if (rp->n_target && !repl_group_failed(rp->g) && raft_role(rf) == RAFT_LEADER &&
            raft_leader_ready(rf))
            replica_move_step(rp, now);
    }
}

/* A group whose log failed is neither ticked nor stepped, so its core still says it leads:
 * the partition stops claiming it (Metadata, produce) and the other replicas elect. */
static void replicas_step_down_failed(struct replicas *rs)
{
    for (struct replica *rp = rs->list; rp; rp = rp->next) {
        if (!repl_group_failed(rp->g) || !partition_leads(rp->p))
            continue;
        RL_ERROR("%s-%u: its log failed (%s): no longer leading it; it stays down until the "
                 "broker restarts", partition_topic(rp->p), rp->index,
                 rl_strerror(repl_group_failed(rp->g)));
        partition_repl_role(rp->p, false, 0, raft_term(repl_group_raft(rp->g)));
    }
}

void replicas_tick(struct replicas *rs)
{
    int64_t now = replicas_now_ms(rs);
    if (now - rs->last_check_ms < REPLICA_CHECK_MS && now >= rs->last_check_ms)
        return; /* a walk over every group, 10 times a second at most */
    rs->last_check_ms = now;
    replicas_step_down_failed(rs);
    replicas_moves(rs, now);
    if (!rs->cfg.leader_balance || rs->handing_off)
        return;
    uint32_t busy = 0;
    for (const struct replica *rp = rs->list; rp; rp = rp->next) {
        const struct raft *rf = repl_group_raft(rp->g);
        busy += raft_role(rf) == RAFT_LEADER && rf->transferee != 0;
    }
    for (struct replica *rp = rs->list; rp && busy < REPLICA_BALANCE_MAX_INFLIGHT; rp = rp->next) {
        if (rp->nodes[0] == rs->cfg.self || rp->n_target || !replica_may_transfer(rp) ||
            now - rp->led_since_ms < REPLICA_BALANCE_SETTLE_MS || !replica_preferred_ready(rp, now))
            continue;
        if (repl_transfer(rs->repl, rp->g, rp->nodes[0]) == 0) {
            RL_INFO("%s-%u: handing leadership back to its preferred replica %u",
                    partition_topic(rp->p), rp->index, rp->nodes[0]);
            rs->balance_transfers++;
            busy++;
        }
    }
}

/* --- fast failover ----------------------------------------------------------------------------- */

void replicas_watch_peers(struct replicas *rs)
{
    uint32_t lost[PEER_MAX_NODES];
    uint32_t got = peer_take_lost(rs->peer, lost, PEER_MAX_NODES), n = 0;
    for (uint32_t i = 0; i < got; i++) {
        /* A node whose connection is up again merely flapped (or only its connection to us
         * was redialed): a notice would only make its followers doubt a healthy leader. A
         * dead node's connection stays down (its redials are refused). */
        struct peer_node_stats ps;
        peer_get_node_stats(rs->peer, lost[i], &ps);
        if (!ps.connected)
            lost[n++] = lost[i];
    }
    if (n == 0)
        return;
    uint64_t told = 0;
    for (struct replica *rp = rs->list; rp; rp = rp->next) {
        const struct raft *rf = repl_group_raft(rp->g);
        uint32_t leader = raft_leader(rf);
        if (repl_group_failed(rp->g) || raft_role(rf) != RAFT_FOLLOWER || leader == 0 ||
            leader == rs->cfg.self || !meta_ids_have(lost, n, leader))
            continue;
        if (repl_leader_unreachable(rs->repl, rp->g, leader) == 0)
            told++;
    }
    rs->leader_lost_notices += told;
    if (told)
        RL_INFO("connection to node %u%s lost: %" PRIu64 " partition groups it led campaign "
                "early", lost[0], n > 1 ? " (and others)" : "", told);
}

/* --- status ------------------------------------------------------------------------------------ */

void replicas_get_stats(const struct replicas *rs, struct replicas_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->groups = rs->n;
    for (const struct replica *rp = rs->list; rp; rp = rp->next)
        out->leading += partition_leads(rp->p);
    out->elections = rs->elections;
    out->leader_changes = rs->leader_changes;
    out->handoffs = rs->handoffs;
    out->balance_transfers = rs->balance_transfers;
    out->leader_lost_notices = rs->leader_lost_notices;
}

/* On the leader: the replicas in sync, and each follower's lag behind the leader's log end in
 * offsets and in bytes. The bytes are estimated from the log's average bytes per offset (the
 * log keeps no offset-to-position map for arbitrary offsets); 0 lag is exact. Returns the
 * length written at buf (snprintf rules). */
static size_t replica_lag_text(const struct replica *rp, char *buf, size_t cap)
{
    const struct raft *rf = repl_group_raft(rp->g);
    if (raft_role(rf) != RAFT_LEADER || cap == 0)
        return 0;
    const char *t = partition_topic(rp->p);
    uint32_t ids[RAFT_MAX_VOTERS];
    uint32_t isr = replica_in_sync((void *)rp, ids, RAFT_MAX_VOTERS);
    size_t n = (size_t)snprintf(buf, cap, "ringlog_partition_in_sync_replicas{topic=\"%s\","
                                "partition=\"%u\"} %u\n", t, rp->index, isr);
    const struct plog *log = partition_plog(rp->p);
    uint64_t start = plog_start_offset(log), end = plog_end_offset(log);
    uint64_t size = plog_size_bytes(log), last = raft_last_index(rf);
    /* Every member the leader replicates to: voters and, during a move, learners. */
    for (uint32_t i = 0; i < rf->n_progress && n < cap; i++) {
        const struct raft_progress *pr = &rf->progress[i];
        if (pr->id == rp->rs->cfg.self)
            continue;
        uint64_t lag = last > pr->match ? last - pr->match : 0;
        uint64_t bytes = end > start ? (uint64_t)((double)lag * (double)size /
                                                  (double)(end - start)) : 0;
        n += (size_t)snprintf(buf + n, cap - n,
                              "ringlog_partition_follower_lag_records{topic=\"%s\",partition="
                              "\"%u\",follower=\"%u\"} %" PRIu64 "\n"
                              "ringlog_partition_follower_lag_bytes{topic=\"%s\",partition="
                              "\"%u\",follower=\"%u\"} %" PRIu64 "\n",
                              t, rp->index, pr->id, lag, t, rp->index, pr->id, bytes);
    }
    return n;
}

size_t replicas_metrics_text(const struct replicas *rs, char *buf, size_t cap)
{
    size_t n = 0;
#define OUT(...)                                                                                \
    do {                                                                                        \
        if (n < cap)                                                                            \
            n += (size_t)snprintf(buf + n, cap - n, __VA_ARGS__);                               \
    } while (0)
    struct replicas_stats st;
    replicas_get_stats(rs, &st);
    OUT("# TYPE ringlog_replica_groups gauge\nringlog_replica_groups %u\n", st.groups);
    OUT("# TYPE ringlog_replica_leading gauge\nringlog_replica_leading %u\n", st.leading);
    OUT("# TYPE ringlog_replica_elections_total counter\nringlog_replica_elections_total %"
        PRIu64 "\n", st.elections);
    OUT("# TYPE ringlog_replica_leader_changes_total counter\n"
        "ringlog_replica_leader_changes_total %" PRIu64 "\n", st.leader_changes);
    OUT("# TYPE ringlog_replica_handoffs_total counter\nringlog_replica_handoffs_total %" PRIu64
        "\n# TYPE ringlog_replica_balance_transfers_total counter\n"
        "ringlog_replica_balance_transfers_total %" PRIu64 "\n", st.handoffs,
        st.balance_transfers);
    OUT("# TYPE ringlog_replica_leader_lost_notices_total counter\n"
        "ringlog_replica_leader_lost_notices_total %" PRIu64 "\n", st.leader_lost_notices);
    OUT("# TYPE ringlog_partition_role gauge\n# TYPE ringlog_partition_term gauge\n"
        "# TYPE ringlog_partition_commit_index gauge\n"
        "# TYPE ringlog_partition_in_sync_replicas gauge\n"
        "# TYPE ringlog_partition_follower_lag_records gauge\n"
        "# TYPE ringlog_partition_follower_lag_bytes gauge\n");
    for (const struct replica *rp = rs->list; rp && n < cap; rp = rp->next) {
        const struct raft *rf = repl_group_raft(rp->g);
        const char *t = partition_topic(rp->p);
        OUT("ringlog_partition_role{topic=\"%s\",partition=\"%u\",role=\"%s\"} 1\n", t,
            rp->index, raft_role_name(raft_role(rf)));
        OUT("ringlog_partition_term{topic=\"%s\",partition=\"%u\"} %" PRIu64 "\n", t, rp->index,
            raft_term(rf));
        OUT("ringlog_partition_commit_index{topic=\"%s\",partition=\"%u\"} %" PRIu64 "\n", t,
            rp->index, raft_commit(rf));
        if (n < cap)
            n += replica_lag_text(rp, buf + n, cap - n);
    }
#undef OUT
    if (n >= cap && cap)
        n = cap - 1;
    return n;
}
