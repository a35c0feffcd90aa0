/*
 * test_raft: the raft core's individual behaviours, each driven by hand through a tiny
 * in-process cluster (in-memory logs, a FIFO message queue, links that can be cut). The
 * randomized whole-cluster checks live in tests/sim.
 */
#include "common/err.h"
#include "replication/raft.h"

#include <criterion/criterion.h>
#include <string.h>

#define TC_MAX_NODES 5
#define TC_LOG_MAX 4096
#define TC_QUEUE_MAX 4096
#define TC_ARENA_BYTES (1u << 20)

struct tlog {
    struct raft_entry e[TC_LOG_MAX];
    uint64_t first, n, snap_index, snap_term;
};

struct tnode {
    struct raft r;
    struct tlog log;
    struct raft_hard_state hs;
    struct raft_snapshot_meta snap;
    uint32_t hs_writes;
};

struct tmsg {
    struct raft_msg m;
    struct raft_entry ents[64];
};

static struct {
    uint32_t n;
    struct tnode nodes[TC_MAX_NODES];
    bool cut[TC_MAX_NODES + 1][TC_MAX_NODES + 1];
    bool manual_persist[TC_MAX_NODES + 1]; /* if set, appends wait for tc_persist */
    uint32_t q_head, q_len;
    struct tmsg q[TC_QUEUE_MAX];
    struct raft_ready rd;
    uint8_t arena[TC_ARENA_BYTES];
    size_t arena_used;
    uint64_t values;
    uint32_t sent[RAFT_MSG_TYPE_COUNT];
} tc;

static const void *arena_copy(const void *p, uint32_t len)
{
    cr_assert(tc.arena_used + len <= TC_ARENA_BYTES);
    void *d = tc.arena + tc.arena_used;
    memcpy(d, p, len);
    tc.arena_used += (len + 7u) & ~7u;
    return d;
}

static uint64_t tl_last(void *ctx)
{
    struct tlog *l = ctx;
    return l->n ? l->first + l->n - 1 : l->snap_index;
}

static uint64_t tl_term(void *ctx, uint64_t i)
{
    struct tlog *l = ctx;
    if (i == l->snap_index)
        return l->snap_term;
    return (i >= l->first && i < l->first + l->n) ? l->e[i - l->first].term : 0;
}

static int tl_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                      struct raft_entry *out, uint32_t max_n)
{
    struct tlog *l = ctx;
    uint32_t n = 0;
    (void)max_bytes;
    for (uint64_t i = lo; i <= hi && n < max_n; i++)
        out[n++] = l->e[i - l->first];
    return (int)n;
}

static const struct raft_log_ops tl_ops = {tl_last, tl_term, tl_entries};

static struct tnode *node(uint32_t id)
{
    return &tc.nodes[id - 1];
}

static void tc_apply(uint32_t id);

static void tc_persist(uint32_t id)
{
    struct tnode *nd = node(id);
    uint64_t last = tl_last(&nd->log);
    cr_assert_eq(raft_persisted(&nd->r, last, tl_term(&nd->log, last), &tc.rd), 0);
    tc_apply(id);
}

/* Carries out the ready of node id's last call, as a real caller would. */
static void tc_apply(uint32_t id)
{
    struct tnode *nd = node(id);
    struct tlog *l = &nd->log;
    struct raft_ready *rd = &tc.rd;
    if (rd->hard_state_changed) {
        nd->hs = rd->hard_state;
        nd->hs_writes++;
    }
    if (rd->has_snapshot) {
        nd->snap = rd->snapshot;
        l->first = rd->snapshot.index + 1;
        l->n = 0;
        l->snap_index = rd->snapshot.index;
        l->snap_term = rd->snapshot.term;
    }
    if (rd->has_truncate)
        l->n = rd->truncate_after + 1 - l->first;
    for (uint32_t i = 0; i < rd->n_append; i++) {
        cr_assert_lt(l->n, TC_LOG_MAX);
        struct raft_entry e = rd->append[i];
        cr_assert_eq(e.index, tl_last(l) + 1);
        e.data = e.len ? arena_copy(e.data, e.len) : NULL;
        l->e[l->n++] = e;
    }
    bool appended = rd->n_append > 0;
    for (uint32_t i = 0; i < rd->n_msgs; i++) {
        const struct raft_msg *m = &rd->msgs[i];
        tc.sent[m->type]++;
        if (tc.cut[m->from][m->to])
            continue;
        cr_assert_lt(tc.q_len, TC_QUEUE_MAX);
        struct tmsg *t = &tc.q[(tc.q_head + tc.q_len++) % TC_QUEUE_MAX];
        t->m = *m;
        cr_assert_leq(m->n_entries, 64);
        for (uint32_t k = 0; k < m->n_entries; k++) {
            t->ents[k] = m->entries[k];
            if (t->ents[k].len)
                t->ents[k].data = arena_copy(m->entries[k].data, m->entries[k].len);
        }
        t->m.entries = t->ents;
    }
    if (appended && !tc.manual_persist[id])
        tc_persist(id);
}

static void tc_init_opts(uint32_t voters, uint32_t nodes, bool pre_vote, bool check_quorum)
{
    memset(&tc, 0, sizeof(tc));
    tc.n = nodes;
    struct raft_snapshot_meta snap = {.config = {.n_voters = voters}};
    for (uint32_t i = 0; i < voters; i++)
        snap.config.voters[i] = i + 1;
    for (uint32_t id = 1; id <= nodes; id++) {
        struct tnode *nd = node(id);
        nd->log.first = 1;
        nd->snap = snap;
        struct raft_options o = {.id = id, .election_ticks = 10, .heartbeat_ticks = 2,
                                 .max_msg_entries = 64, .max_inflight = 4, .seed = 42,
                                 .pre_vote = pre_vote, .check_quorum = check_quorum,
                                 .log_ops = &tl_ops, .log_ctx = &nd->log};
        cr_assert_eq(raft_init(&nd->r, &o, &nd->hs, &nd->snap), 0);
    }
}

static void tc_init(uint32_t voters, uint32_t nodes)
{
    tc_init_opts(voters, nodes, true, true);
}

/* Delivers queued messages in FIFO order until none are left (bounded). */
static void tc_deliver(void)
{
    for (uint32_t budget = 100000; tc.q_len && budget; budget--) {
        struct tmsg t = tc.q[tc.q_head];
        tc.q_head = (tc.q_head + 1) % TC_QUEUE_MAX;
        tc.q_len--;
        if (tc.cut[t.m.from][t.m.to])
            continue;
        t.m.entries = t.ents;
        cr_assert_eq(raft_step(&node(t.m.to)->r, &t.m, &tc.rd), 0);
        tc_apply(t.m.to);
    }
}

static void tc_tick(uint32_t id, uint32_t ticks)
{
    for (uint32_t i = 0; i < ticks; i++) {
        cr_assert_eq(raft_tick(&node(id)->r, &tc.rd), 0);
        tc_apply(id);
    }
}

/* Ticks only node id until it starts a campaign, then lets the cluster talk. */
static void tc_elect(uint32_t id)
{
    for (uint32_t i = 0; i < 40 && node(id)->r.role == RAFT_FOLLOWER; i++)
        tc_tick(id, 1);
    tc_deliver();
}

static int tc_propose(uint32_t id, uint32_t count)
{
    struct raft_entry e[64];
    for (uint32_t i = 0; i < count; i++) {
        uint64_t v = ++tc.values;
        e[i] = (struct raft_entry){.data = arena_copy(&v, 8), .len = 8};
    }
    int rc = raft_propose(&node(id)->r, e, count, &tc.rd, NULL);
    tc_apply(id);
    return rc;
}

static void tc_isolate(uint32_t id, bool cut)
{
    for (uint32_t j = 1; j <= TC_MAX_NODES; j++)
        tc.cut[id][j] = tc.cut[j][id] = cut && j != id;
}

/* One round of heartbeats from the leader, answered. */
static void tc_heartbeat(uint32_t leader)
{
    tc_tick(leader, 2);
    tc_deliver();
}

Test(raft, election_persists_vote_before_requests)
{
    /* A node that times out wins a 3-node election; its term and self-vote are in the same
     * ready as its vote requests (to be persisted first), and only one leader results. */
    tc_init_opts(3, 3, false, false);
    struct raft *r = &node(1)->r;
    for (uint32_t i = 0; i < 40 && r->role == RAFT_FOLLOWER; i++) {
        cr_assert_eq(raft_tick(r, &tc.rd), 0);
        if (tc.rd.n_msgs) {
            cr_assert(tc.rd.hard_state_changed);
            cr_assert_eq(tc.rd.hard_state.term, 1);
            cr_assert_eq(tc.rd.hard_state.vote, 1);
            cr_assert_eq(tc.rd.msgs[0].type, RAFT_MSG_VOTE);
        }
        tc_apply(1);
    }
    tc_deliver();
    cr_assert_eq(r->role, RAFT_LEADER);
    cr_assert_eq(node(2)->hs.vote, 1, "the voter persisted its vote");
    cr_assert_eq(node(2)->r.leader, 1);
    cr_assert_eq(node(3)->r.leader, 1);
    cr_assert_eq(r->commit, 1, "the leader's no-op commits");
}

Test(raft, vote_refused_to_stale_log_and_second_candidate)
{
    /* A voter grants one vote per term and never to a candidate whose log is behind. */
    tc_init_opts(3, 3, false, false);
    tc_elect(1);
    cr_assert_eq(tc_propose(1, 3), 0);
    tc_deliver();
    struct raft_msg m = {.type = RAFT_MSG_VOTE, .from = 3, .to = 2, .term = 5, .index = 1,
                         .log_term = 1};
    cr_assert_eq(raft_step(&node(2)->r, &m, &tc.rd), 0);
    cr_assert_eq(tc.rd.msgs[0].type, RAFT_MSG_VOTE_RESP);
    cr_assert(tc.rd.msgs[0].flags & RAFT_MSG_F_REJECT, "stale log must be refused");
    tc_apply(2);
    struct raft_msg ok = {.type = RAFT_MSG_VOTE, .from = 1, .to = 2, .term = 5, .index = 4,
                          .log_term = 1};
    cr_assert_eq(raft_step(&node(2)->r, &ok, &tc.rd), 0);
    cr_assert_not(tc.rd.msgs[0].flags & RAFT_MSG_F_REJECT);
    cr_assert(tc.rd.hard_state_changed && tc.rd.hard_state.vote == 1);
    tc_apply(2);
    struct raft_msg other = {.type = RAFT_MSG_VOTE, .from = 3, .to = 2, .term = 5, .index = 9,
                             .log_term = 1};
    cr_assert_eq(raft_step(&node(2)->r, &other, &tc.rd), 0);
    cr_assert(tc.rd.msgs[0].flags & RAFT_MSG_F_REJECT, "second vote in a term refused");
}

Test(raft, prevote_does_not_disrupt)
{
    /* A node cut off from a healthy cluster keeps failing pre-votes without raising its term;
     * when it returns, the leader stays leader in the same term. */
    tc_init(3, 3);
    tc_elect(1);
    cr_assert_eq(node(1)->r.role, RAFT_LEADER);
    uint64_t term = node(1)->r.term;
    tc_isolate(3, true);
    for (int round = 0; round < 30; round++) {
        tc_tick(3, 3);
        tc_heartbeat(1);
    }
    cr_assert_eq(node(3)->r.term, term, "pre-vote keeps the isolated node's term");
    cr_assert_eq(node(3)->r.role, RAFT_PRECANDIDATE);
    tc_isolate(3, false);
    for (int round = 0; round < 30; round++) {
        tc_tick(3, 1);
        tc_heartbeat(1);
    }
    cr_assert_eq(node(1)->r.role, RAFT_LEADER);
    cr_assert_eq(node(1)->r.term, term);
    cr_assert_eq(node(3)->r.leader, 1);
}

Test(raft, check_quorum_steps_down)
{
    /* A leader that hears from no follower for an election timeout steps down; one that
     * does hear from a majority stays. */
    tc_init(3, 3);
    tc_elect(1);
    for (int i = 0; i < 5; i++)
        tc_heartbeat(1);
    cr_assert_eq(node(1)->r.role, RAFT_LEADER);
    tc_isolate(1, true);
    for (int i = 0; i < 25 && node(1)->r.role == RAFT_LEADER; i++)
        tc_tick(1, 1);
    cr_assert_eq(node(1)->r.role, RAFT_FOLLOWER);
    cr_assert_eq(node(1)->r.leader, RAFT_NONE);
}

Test(raft, append_acknowledged_only_when_durable)
{
    /* A follower does not acknowledge entries until the caller reports them durable, so the
     * leader cannot commit on its word alone. */
    tc_init(3, 3);
    tc_elect(1);
    uint64_t commit = node(1)->r.commit;
    tc.manual_persist[2] = tc.manual_persist[3] = true;
    cr_assert_eq(tc_propose(1, 4), 0);
    tc_deliver();
    cr_assert_eq(node(2)->r.last_index, commit + 4);
    cr_assert_eq(node(1)->r.commit, commit, "nothing committed before followers' flushes");
    tc_persist(2);
    tc_deliver();
    cr_assert_eq(node(1)->r.commit, commit + 4);
}

Test(raft, conflict_hints_backtrack_fast)
{
    /* A follower holding 200 divergent entries of an old term is repaired in a handful of
     * round trips, not one per entry. */
    tc_init_opts(3, 3, false, false);
    tc_elect(1);
    tc_isolate(1, true);
    for (int i = 0; i < 20; i++) /* the old leader keeps appending alone */
        cr_assert_eq(tc_propose(1, 10), 0);
    tc_isolate(1, false);
    tc_isolate(1, true);
    tc_elect(2);
    cr_assert_eq(node(2)->r.role, RAFT_LEADER);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tc_propose(2, 5), 0);
    tc_deliver();
    uint32_t appends_before = tc.sent[RAFT_MSG_APPEND];
    tc_isolate(1, false);
    tc_heartbeat(2);
    tc_heartbeat(2);
    cr_assert_eq(node(1)->r.leader, 2);
    cr_assert_eq(node(1)->r.last_index, node(2)->r.last_index);
    cr_assert_eq(node(1)->r.last_term, node(2)->r.last_term);
    cr_assert_lt(tc.sent[RAFT_MSG_APPEND] - appends_before, 10,
                 "backtracking took %u appends", tc.sent[RAFT_MSG_APPEND] - appends_before);
}

Test(raft, earlier_term_commits_only_through_own_term)
{
    /* Raft's figure-8 rule: a leader that has copied an earlier term's entry to a majority
     * still does not commit it until an entry of its own term is on a majority. */
    tc_init_opts(3, 3, false, false);
    tc_elect(1);
    uint64_t base = node(1)->r.commit;
    tc_isolate(1, true);
    cr_assert_eq(tc_propose(1, 1), 0); /* an entry of term 1 that only node 1 holds */
    uint64_t old_index = node(1)->r.last_index;
    tc_isolate(1, false);
    tc_isolate(3, true);
    /* A higher-term request (refused: its log is short) makes node 1 step down. */
    struct raft_msg bump = {.type = RAFT_MSG_VOTE, .from = 3, .to = 1, .term = 2};
    cr_assert_eq(raft_step(&node(1)->r, &bump, &tc.rd), 0);
    tc_apply(1);
    cr_assert_eq(node(1)->r.role, RAFT_FOLLOWER);
    tc.manual_persist[1] = tc.manual_persist[2] = true;
    tc_elect(1); /* wins term 3 with node 2's vote: its log is longer */
    cr_assert_eq(node(1)->r.role, RAFT_LEADER);
    cr_assert_eq(node(1)->r.term, 3);
    cr_assert_eq(node(2)->r.last_index, old_index + 1, "node 2 got the old entry and no-op");
    /* Only the old entry becomes durable on node 2: a majority holds it, yet no commit. */
    cr_assert_eq(raft_persisted(&node(2)->r, old_index, 1, &tc.rd), 0);
    tc_apply(2);
    tc_heartbeat(1);
    cr_assert_eq(node(1)->r.progress[1].match, old_index);
    cr_assert_eq(node(1)->r.commit, base, "an earlier term's entry is not committed by count");
    tc_persist(1);
    tc_persist(2);
    tc_deliver();
    cr_assert_eq(node(1)->r.commit, old_index + 1, "committed through the own-term no-op");
}

Test(raft, leadership_transfer)
{
    /* The leader hands over to a caught-up follower, which wins the next term at once even
     * though the other follower still hears a leader (the transfer bypasses leases). */
    tc_init(3, 3);
    tc_elect(1);
    cr_assert_eq(tc_propose(1, 5), 0);
    tc_deliver();
    uint64_t term = node(1)->r.term;
    cr_assert_eq(raft_transfer_leadership(&node(1)->r, 3, &tc.rd), 0);
    tc_apply(1);
    cr_assert_eq(tc_propose(1, 1), RL_E_RAFT_TRANSFERRING);
    tc_deliver();
    cr_assert_eq(node(3)->r.role, RAFT_LEADER);
    cr_assert_eq(node(3)->r.term, term + 1);
    cr_assert_eq(node(1)->r.role, RAFT_FOLLOWER);
    cr_assert_eq(node(1)->r.leader, 3);
}

Test(raft, membership_add_then_remove_one_at_a_time)
{
    /* Adding a fourth voter takes effect when appended; a second change waits until the first
     * commits; removing the leader makes it step down once the removal commits. */
    tc_init(3, 4);
    tc_elect(1);
    uint64_t idx = 0;
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_ADD_VOTER, 4, &tc.rd, &idx), 0);
    tc_apply(1);
    cr_assert_eq(node(1)->r.config.n_voters, 4, "in effect on append");
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_REMOVE_VOTER, 2, &tc.rd, NULL),
                 RL_E_RAFT_CONF_PENDING);
    tc_apply(1);
    tc_deliver();
    tc_heartbeat(1);
    cr_assert_geq(node(1)->r.commit, idx);
    cr_assert(raft_config_has(&node(4)->r.config, 4), "the new voter learnt it is one");
    cr_assert_eq(node(4)->r.last_index, node(1)->r.last_index);
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_REMOVE_VOTER, 1, &tc.rd, &idx),
                 0);
    tc_apply(1);
    tc_deliver();
    tc_heartbeat(1);
    cr_assert_eq(node(1)->r.role, RAFT_FOLLOWER, "a removed leader hands over and steps down");
    cr_assert_not(raft_config_has(&node(2)->r.config, 1));
    cr_assert_eq(node(2)->r.config.n_voters, 3);
    uint32_t leader = 0;
    for (int t = 0; t < 80 && !leader; t++) {
        for (uint32_t id = 1; id <= 4; id++)
            tc_tick(id, 1);
        tc_deliver();
        for (uint32_t id = 2; id <= 4; id++)
            if (node(id)->r.role == RAFT_LEADER)
                leader = id;
    }
    cr_assert_neq(leader, 0, "the remaining voters elect a successor");
    cr_assert_neq(node(1)->r.role, RAFT_LEADER, "the removed node never campaigns");
}

/* Delivers queued messages until node `id` has committed `index` (bounded), leaving the rest
 * queued, so a test can look at what the commit itself produced. */
static void tc_deliver_until_commit(uint32_t id, uint64_t index)
{
    for (uint32_t budget = 100000; tc.q_len && budget && node(id)->r.commit < index; budget--) {
        struct tmsg t = tc.q[tc.q_head];
        tc.q_head = (tc.q_head + 1) % TC_QUEUE_MAX;
        tc.q_len--;
        if (tc.cut[t.m.from][t.m.to])
            continue;
        t.m.entries = t.ents;
        cr_assert_eq(raft_step(&node(t.m.to)->r, &t.m, &tc.rd), 0);
        tc_apply(t.m.to);
    }
}

/* Drops queued messages of one type (a lossy network, aimed). Returns how many. */
static uint32_t tc_drop(enum raft_msg_type type)
{
    uint32_t kept = 0, dropped = 0;
    for (uint32_t i = 0; i < tc.q_len; i++) {
        struct tmsg *t = &tc.q[(tc.q_head + i) % TC_QUEUE_MAX];
        if (t->m.type == type) {
            dropped++;
            continue;
        }
        if (dropped)
            tc.q[(tc.q_head + kept) % TC_QUEUE_MAX] = *t;
        kept++;
    }
    tc.q_len = kept;
    return dropped;
}

static uint32_t tc_leader_among(uint32_t lo, uint32_t hi)
{
    for (uint32_t id = lo; id <= hi; id++)
        if (node(id)->r.role == RAFT_LEADER)
            return id;
    return 0;
}

Test(raft, removed_leader_hands_over_without_an_election_timeout)
{
    /* Seed 516557's failure: a leader that removed itself used to fall silent once the change
     * committed, and the voters waited out an election timeout (stretched by its last appends
     * re-arming their leases) before electing anyone. Now it sends TIMEOUT_NOW to the voter
     * with the highest match as the commit happens: a successor is elected with no voter
     * ticking at all, and the lagging voter (n3, cut off from the leader) is not chosen. */
    tc_init(4, 4);
    tc_elect(4);
    cr_assert_eq(tc_propose(4, 3), 0);
    tc_deliver();
    tc_heartbeat(4);
    uint64_t term = node(4)->r.term;
    tc.cut[4][3] = true;
    uint64_t idx = 0;
    cr_assert_eq(raft_propose_conf_change(&node(4)->r, RAFT_CONF_REMOVE_VOTER, 4, &tc.rd, &idx),
                 0);
    tc_apply(4);
    cr_assert_eq(tc_propose(4, 1), RL_E_RAFT_TRANSFERRING, "a leaving leader takes no writes");
    cr_assert_eq(node(4)->r.role, RAFT_LEADER, "it leads until its removal commits");
    tc_deliver_until_commit(4, idx);
    cr_assert_geq(node(4)->r.commit, idx);
    uint32_t target = node(4)->r.transferee;
    cr_assert(target == 1 || target == 2, "hand-over to a caught-up voter, not n%u", target);
    tc.cut[4][3] = false;
    tc_deliver();
    cr_assert_eq(tc_leader_among(1, 3), target, "the chosen voter leads, no timeout needed");
    cr_assert_eq(node(target)->r.term, term + 1);
    tc_heartbeat(4); /* its stale heartbeats are answered with the new term */
    cr_assert_eq(node(4)->r.role, RAFT_FOLLOWER);
    cr_assert_eq(node(4)->r.term, term + 1);
    for (int i = 0; i < 100; i++) {
        tc_tick(4, 1);
        cr_assert(node(4)->r.role == RAFT_FOLLOWER, "a removed node never campaigns");
        tc_heartbeat(target);
    }
    cr_assert_eq(node(4)->r.term, term + 1);
    cr_assert_eq(node(target)->r.role, RAFT_LEADER);
}

Test(raft, removed_leader_resends_timeout_now_then_gives_up)
{
    /* A lost TIMEOUT_NOW is sent again on the next heartbeat reply; a leaving leader that can
     * reach nobody steps down after an election timeout (and stays a follower for good). */
    tc_init(3, 3);
    tc_elect(1);
    uint64_t idx = 0;
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_REMOVE_VOTER, 1, &tc.rd, &idx),
                 0);
    tc_apply(1);
    tc_deliver_until_commit(1, idx);
    cr_assert_eq(tc_drop(RAFT_MSG_TIMEOUT_NOW), 1);
    tc_deliver();
    cr_assert_eq(tc_leader_among(2, 3), 0, "nobody campaigned yet");
    tc_heartbeat(1);
    uint32_t successor = tc_leader_among(2, 3);
    cr_assert_neq(successor, 0, "the resent TIMEOUT_NOW elected a successor");

    tc_init(3, 3);
    tc_elect(1);
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_REMOVE_VOTER, 1, &tc.rd, &idx),
                 0);
    tc_apply(1);
    tc_deliver_until_commit(1, idx);
    tc_isolate(1, true);
    uint32_t ticks = 0;
    for (; ticks < 40 && node(1)->r.role == RAFT_LEADER; ticks++)
        tc_tick(1, 1);
    cr_assert_eq(node(1)->r.role, RAFT_FOLLOWER);
    cr_assert_leq(ticks, 10, "steps down after one election timeout, took %u ticks", ticks);
    tc_tick(1, 100);
    cr_assert_eq(node(1)->r.role, RAFT_FOLLOWER, "and never campaigns");
}

Test(raft, voter_change_waits_for_the_new_quorum_to_catch_up)
{
    /* Removing n2 while n3 is far behind would leave {n1, n3} unable to commit anything until
     * n3 caught up, so the change is refused until it has. */
    tc_init(3, 3);
    tc_elect(1);
    tc_isolate(3, true);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(tc_propose(1, 10), 0);
    tc_deliver();
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_REMOVE_VOTER, 2, &tc.rd, NULL),
                 RL_E_RAFT_CATCHING_UP);
    tc_apply(1);
    tc_isolate(3, false);
    for (int i = 0; i < 5; i++)
        tc_heartbeat(1);
    cr_assert_eq(node(3)->r.last_index, node(1)->r.last_index);
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_REMOVE_VOTER, 2, &tc.rd, NULL),
                 0);
    tc_apply(1);
}

Test(raft, snapshot_catches_up_follower_behind_log_start)
{
    /* A follower that missed entries the leader has compacted away receives the leader's
     * snapshot, installs it and then replicates normally. */
    tc_init(3, 3);
    tc_elect(1);
    tc_isolate(3, true);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(tc_propose(1, 8), 0);
    tc_deliver();
    struct raft_snapshot_meta meta;
    uint64_t upto = node(1)->r.commit - 2;
    cr_assert_eq(raft_compact(&node(1)->r, upto, &meta), 0);
    struct tlog *l = &node(1)->log;
    uint64_t drop = upto + 1 - l->first;
    memmove(l->e, l->e + drop, (l->n - drop) * sizeof(l->e[0]));
    l->n -= drop;
    l->first = upto + 1;
    l->snap_index = upto;
    l->snap_term = meta.term;
    tc_isolate(3, false);
    uint32_t snaps = tc.sent[RAFT_MSG_SNAPSHOT];
    for (int i = 0; i < 4; i++)
        tc_heartbeat(1);
    cr_assert_eq(tc.sent[RAFT_MSG_SNAPSHOT], snaps + 1, "exactly one snapshot sent");
    cr_assert_eq(node(3)->snap.index, upto);
    cr_assert_eq(node(3)->r.last_index, node(1)->r.last_index);
    cr_assert_eq(node(1)->r.progress[2].match, node(1)->r.last_index);
    cr_assert_eq(node(1)->r.progress[2].state, RAFT_PR_REPLICATE);
}

Test(raft, restart_recovers_term_vote_and_config)
{
    /* A restarted node comes back with its persisted term and vote and finds the latest
     * configuration entry in its log. */
    tc_init(3, 4);
    tc_elect(1);
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_ADD_VOTER, 4, &tc.rd, NULL), 0);
    tc_apply(1);
    tc_deliver();
    struct tnode *nd = node(2);
    struct raft_options o = {.id = 2, .election_ticks = 10, .heartbeat_ticks = 2, .seed = 1,
                             .pre_vote = true, .check_quorum = true, .log_ops = &tl_ops,
                             .log_ctx = &nd->log};
    uint64_t term = nd->r.term;
    cr_assert_eq(raft_init(&nd->r, &o, &nd->hs, &nd->snap), 0);
    cr_assert_eq(nd->r.term, term);
    cr_assert_eq(nd->r.vote, 1);
    cr_assert_eq(nd->r.config.n_voters, 4);
    cr_assert_eq(nd->r.last_index, node(1)->r.last_index);
}

Test(raft, single_voter_group)
{
    /* A group of one elects itself and commits once its own append is durable. */
    tc_init(1, 1);
    tc_tick(1, 25);
    cr_assert_eq(node(1)->r.role, RAFT_LEADER);
    cr_assert_eq(tc_propose(1, 3), 0);
    cr_assert_eq(node(1)->r.commit, node(1)->r.last_index);
}

Test(raft, config_codec_round_trip)
{
    /* Configuration payloads encode and decode losslessly and reject malformed input. */
    struct raft_config c = {.n_voters = 3, .voters = {7, 9, 70000}}, d;
    uint8_t buf[RAFT_CONFIG_MAX_BYTES];
    uint32_t len = raft_config_encode(&c, buf);
    cr_assert_eq(len, 16);
    cr_assert_eq(raft_config_decode(buf, len, &d), 0);
    cr_assert_eq(d.n_voters, 3);
    cr_assert_eq(d.voters[2], 70000);
    cr_assert_eq(raft_config_decode(buf, len - 1, &d), RL_E_CORRUPT);
    buf[0] = 0;
    cr_assert_eq(raft_config_decode(buf, len, &d), RL_E_CORRUPT);
}

Test(raft, proposals_refused_by_followers_and_beyond_limit)
{
    /* Only the leader takes proposals, and it stops at its uncommitted-entry limit (the
     * named maximum that gives callers backpressure) until commits catch up. */
    tc_init(3, 3);
    tc_elect(1);
    cr_assert_eq(tc_propose(2, 1), RL_E_RAFT_NOT_LEADER);
    node(1)->r.max_uncommitted = 10;
    tc_isolate(1, true);
    cr_assert_eq(tc_propose(1, 8), 0);
    cr_assert_eq(tc_propose(1, 8), RL_E_FULL);
    tc_isolate(1, false);
    for (int i = 0; i < 3; i++) /* lost appends are resent after two silent heartbeats */
        tc_heartbeat(1);
    cr_assert_eq(node(1)->r.commit, node(1)->r.last_index);
    cr_assert_eq(tc_propose(1, 8), 0);
}

Test(raft, duplicated_and_reordered_messages_are_harmless)
{
    /* Every message delivered twice and in reverse order within each burst: logs still
     * converge, commit matches, and no entry is appended twice. */
    tc_init(3, 3);
    tc_elect(1);
    for (int round = 0; round < 20; round++) {
        cr_assert_eq(tc_propose(1, 1 + (uint32_t)round % 5), 0);
        uint32_t n = tc.q_len;
        cr_assert_lt(2 * n, TC_QUEUE_MAX);
        for (uint32_t i = 0; i < n; i++) /* duplicate the burst ... */
            tc.q[(tc.q_head + n + i) % TC_QUEUE_MAX] = tc.q[(tc.q_head + i) % TC_QUEUE_MAX];
        tc.q_len = 2 * n;
        for (uint32_t i = 0; i < tc.q_len / 2; i++) { /* ... and reverse it */
            struct tmsg tmp = tc.q[(tc.q_head + i) % TC_QUEUE_MAX];
            uint32_t j = (tc.q_head + tc.q_len - 1 - i) % TC_QUEUE_MAX;
            tc.q[(tc.q_head + i) % TC_QUEUE_MAX] = tc.q[j];
            tc.q[j] = tmp;
        }
        tc_deliver();
    }
    for (int i = 0; i < 3; i++)
        tc_heartbeat(1);
    for (uint32_t id = 2; id <= 3; id++) {
        cr_assert_eq(node(id)->r.last_index, node(1)->r.last_index);
        for (uint64_t k = 1; k <= node(1)->r.last_index; k++)
            cr_assert_eq(tl_term(&node(id)->log, k), tl_term(&node(1)->log, k));
    }
    cr_assert_eq(node(1)->r.commit, node(1)->r.last_index);
    cr_assert_eq(node(2)->r.commit, node(1)->r.commit);
}

Test(raft, group_state_is_small)
{
    /* Many groups per process: one group's whole state stays a few KB, with no owned
     * memory, and the ready (shared by all groups on a thread) is bounded. */
    cr_assert_lt(sizeof(struct raft), 4096, "struct raft is %zu bytes", sizeof(struct raft));
    cr_assert_lt(sizeof(struct raft_ready), 128 * 1024);
}
