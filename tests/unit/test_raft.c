/*
 * test_raft: the raft core's individual behaviours, each driven by hand through a tiny
 * in-process cluster (in-memory logs, a FIFO message queue, links that can be cut). The
 * randomized whole-cluster checks live in tests/sim.
 */
#include "common/err.h"
#include "replication/memlog.h"
#include "replication/raft.h"

#include <criterion/criterion.h>
#include <string.h>

#define TC_MAX_NODES 5
#define TC_QUEUE_MAX 4096
#define TC_ARENA_BYTES (1u << 20)

struct tnode {
    struct raft r;
    struct memlog log;
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

static uint64_t tl_term(struct memlog *l, uint64_t i)
{
    return memlog_ops.term(l, i);
}

static struct tnode *node(uint32_t id)
{
    return &tc.nodes[id - 1];
}

static void tc_apply(uint32_t id);

static void tc_persist(uint32_t id)
{
    struct tnode *nd = node(id);
    uint64_t last = memlog_last(&nd->log);
    cr_assert_eq(raft_persisted(&nd->r, last, tl_term(&nd->log, last), &tc.rd), 0);
    tc_apply(id);
}

/* Carries out the ready of node id's last call, as a real caller would. */
static void tc_apply(uint32_t id)
{
    struct tnode *nd = node(id);
    struct memlog *l = &nd->log;
    struct raft_ready *rd = &tc.rd;
    if (rd->hard_state_changed) {
        nd->hs = rd->hard_state;
        nd->hs_writes++;
    }
    if (rd->has_snapshot) {
        nd->snap = rd->snapshot;
        memlog_reset(l, rd->snapshot.index, rd->snapshot.term);
    }
    if (rd->has_truncate)
        cr_assert_eq(memlog_truncate_after(l, rd->truncate_after), 0);
    for (uint32_t i = 0; i < rd->n_append; i++) {
        struct raft_entry e = rd->append[i];
        e.data = e.len ? arena_copy(e.data, e.len) : NULL;
        cr_assert_eq(memlog_append(l, &e), 0, "n%u appends (%llu, count %u) after %llu", id,
                     (unsigned long long)e.index, e.count, (unsigned long long)memlog_last(l));
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

/* A fresh cluster of `nodes` nodes whose first `voters` are voters and the next `learners`
 * learners. */
static void tc_init_members(uint32_t voters, uint32_t learners, uint32_t nodes, bool pre_vote,
                            bool check_quorum)
{
    for (uint32_t i = 0; i < TC_MAX_NODES; i++)
        memlog_free(&tc.nodes[i].log);
    memset(&tc, 0, sizeof(tc));
    tc.n = nodes;
    struct raft_snapshot_meta snap = {.config = {.n_voters = voters, .n_learners = learners}};
    for (uint32_t i = 0; i < voters; i++)
        snap.config.voters[i] = i + 1;
    for (uint32_t i = 0; i < learners; i++)
        snap.config.learners[i] = voters + i + 1;
    for (uint32_t id = 1; id <= nodes; id++) {
        struct tnode *nd = node(id);
        memlog_init(&nd->log, 0, 0);
        nd->snap = snap;
        struct raft_options o = {.id = id, .election_ticks = 10, .heartbeat_ticks = 2,
                                 .max_msg_entries = 64, .max_inflight = 4, .seed = 42,
                                 .pre_vote = pre_vote, .check_quorum = check_quorum,
                                 .log_ops = &memlog_ops, .log_ctx = &nd->log};
        cr_assert_eq(raft_init(&nd->r, &o, &nd->hs, &nd->snap), 0);
    }
}

static void tc_init_opts(uint32_t voters, uint32_t nodes, bool pre_vote, bool check_quorum)
{
    tc_init_members(voters, 0, nodes, pre_vote, check_quorum);
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

/* Proposes n entries whose counts are counts[0..n) (all 1 when counts is NULL). */
static int tc_propose_counts(uint32_t id, uint32_t n, const uint32_t *counts)
{
    struct raft_entry e[64];
    for (uint32_t i = 0; i < n; i++) {
        uint64_t v = ++tc.values;
        e[i] = (struct raft_entry){.data = arena_copy(&v, 8), .len = 8,
                                   .count = counts ? counts[i] : 1};
    }
    int rc = raft_propose(&node(id)->r, e, n, &tc.rd, NULL);
    tc_apply(id);
    return rc;
}

static int tc_propose(uint32_t id, uint32_t count)
{
    return tc_propose_counts(id, count, NULL);
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
    cr_assert(raft_config_is_voter(&node(4)->r.config, 4), "the new voter learnt it is one");
    cr_assert_eq(node(4)->r.last_index, node(1)->r.last_index);
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_REMOVE_VOTER, 1, &tc.rd, &idx),
                 0);
    tc_apply(1);
    tc_deliver();
    tc_heartbeat(1);
    cr_assert_eq(node(1)->r.role, RAFT_FOLLOWER, "a removed leader hands over and steps down");
    cr_assert_not(raft_config_is_voter(&node(2)->r.config, 1));
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
    cr_assert_eq(memlog_compact(&node(1)->log, upto), 0);
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
                             .pre_vote = true, .check_quorum = true, .log_ops = &memlog_ops,
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
    /* Configuration payloads (voters and learners) encode and decode losslessly, the
     * voters-only format of earlier logs still decodes, and malformed input is refused. */
    struct raft_config c = {.n_voters = 3, .voters = {7, 9, 70000}, .n_learners = 2,
                            .learners = {11, 12}};
    struct raft_config d;
    uint8_t buf[RAFT_CONFIG_MAX_BYTES];
    uint32_t len = raft_config_encode(&c, buf);
    cr_assert_eq(len, 12 + 4 * 5);
    cr_assert_eq(raft_config_decode(buf, len, &d), 0);
    cr_assert_eq(d.n_voters, 3);
    cr_assert_eq(d.voters[2], 70000);
    cr_assert_eq(d.n_learners, 2);
    cr_assert_eq(d.learners[1], 12);
    cr_assert(raft_config_is_learner(&d, 11) && !raft_config_is_voter(&d, 11));
    cr_assert_eq(raft_config_decode(buf, len - 1, &d), RL_E_CORRUPT);
    /* version 0, as written before learners: count, ids */
    const uint8_t v0[] = {2, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0};
    cr_assert_eq(raft_config_decode(v0, sizeof(v0), &d), 0);
    cr_assert_eq(d.n_voters, 2);
    cr_assert_eq(d.voters[1], 6);
    cr_assert_eq(d.n_learners, 0);
    const uint8_t v0_zero[] = {1, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(raft_config_decode(v0_zero, sizeof(v0_zero), &d), RL_E_CORRUPT);
    struct raft_config dup = {.n_voters = 2, .voters = {4, 5}, .n_learners = 1,
                              .learners = {5}};
    len = raft_config_encode(&dup, buf);
    cr_assert_eq(raft_config_decode(buf, len, &d), RL_E_CORRUPT, "an id in both lists");
    buf[4] = 0; /* no voters */
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

Test(raft, learner_gets_the_log_but_never_counts_or_campaigns)
{
    /* A learner receives every entry, yet an entry only it and the leader hold does not
     * commit (with 3 voters that needs 2 of them), no candidate asks it for a vote, and it
     * never campaigns however long it hears no leader. */
    tc_init_members(3, 1, 4, true, true);
    tc_elect(1);
    cr_assert_eq(node(1)->r.n_progress, 4);
    uint64_t commit = node(1)->r.commit;
    tc_isolate(2, true);
    tc_isolate(3, true);
    cr_assert_eq(tc_propose(1, 5), 0);
    tc_deliver();
    cr_assert_eq(node(4)->r.last_index, node(1)->r.last_index, "the learner has the entries");
    cr_assert_eq(raft_progress_of(&node(1)->r, 4)->match, node(1)->r.last_index);
    cr_assert_eq(node(1)->r.commit, commit, "leader + learner are no quorum");
    tc_isolate(2, false);
    for (int i = 0; i < 3; i++) /* lost appends are resent after two silent heartbeats */
        tc_heartbeat(1);
    cr_assert_eq(node(1)->r.commit, node(1)->r.last_index, "leader + one voter are");
    tc_isolate(1, true);
    uint32_t votes_to_4 = 0;
    for (int i = 0; i < 60; i++) {
        for (uint32_t id = 2; id <= 4; id++)
            tc_tick(id, 1);
        for (uint32_t k = 0; k < tc.q_len; k++) {
            const struct raft_msg *m = &tc.q[(tc.q_head + k) % TC_QUEUE_MAX].m;
            votes_to_4 += m->to == 4 && (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE);
        }
        tc_deliver();
        cr_assert_eq(node(4)->r.role, RAFT_FOLLOWER, "a learner never campaigns");
    }
    cr_assert_eq(votes_to_4, 0, "nobody asks a learner for its vote");
    cr_assert(node(2)->r.role == RAFT_LEADER || node(3)->r.role == RAFT_LEADER);
}

Test(raft, replica_move_learner_catch_up_promote_remove)
{
    /* remove-broker / reassignment: node 4 joins as a learner, is refused promotion while it
     * lags, catches up, is promoted, and then node 3 is removed: one voter change at a time,
     * each only after the previous one committed. */
    tc_init(3, 4);
    tc_elect(1);
    uint64_t idx = 0;
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_ADD_LEARNER, 4, &tc.rd, &idx), 0);
    tc_apply(1);
    cr_assert(raft_config_is_learner(&node(1)->r.config, 4));
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_PROMOTE_LEARNER, 4, &tc.rd,
                                          NULL), RL_E_RAFT_CONF_PENDING);
    tc_apply(1);
    tc_isolate(4, true);
    tc_deliver();
    tc_heartbeat(1);
    cr_assert_geq(node(1)->r.commit, idx);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(tc_propose(1, 10), 0);
    tc_deliver();
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_PROMOTE_LEARNER, 4, &tc.rd,
                                          NULL), RL_E_RAFT_CATCHING_UP);
    tc_apply(1);
    tc_isolate(4, false);
    for (int i = 0; i < 4; i++)
        tc_heartbeat(1);
    cr_assert_eq(raft_progress_of(&node(1)->r, 4)->match, node(1)->r.last_index);
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_PROMOTE_LEARNER, 4, &tc.rd,
                                          &idx), 0);
    tc_apply(1);
    cr_assert(raft_config_is_voter(&node(1)->r.config, 4));
    cr_assert_eq(raft_progress_of(&node(1)->r, 4)->match, node(1)->r.last_index - 1,
                 "a promoted learner keeps its progress");
    tc_deliver();
    tc_heartbeat(1);
    cr_assert_geq(node(1)->r.commit, idx);
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_REMOVE_VOTER, 3, &tc.rd, &idx),
                 0);
    tc_apply(1);
    tc_deliver();
    tc_heartbeat(1);
    cr_assert_geq(node(1)->r.commit, idx);
    for (uint32_t id = 1; id <= 4; id++) {
        if (id == 3)
            continue; /* a removed node is sent nothing more, its own removal included */
        const struct raft_config *c = &node(id)->r.config;
        cr_assert_eq(c->n_voters, 3, "n%u has %u voters", id, c->n_voters);
        cr_assert(raft_config_is_voter(c, 4) && !raft_config_is_voter(c, 3));
        cr_assert_eq(c->n_learners, 0);
    }
    cr_assert_eq(raft_propose_conf_change(&node(1)->r, RAFT_CONF_PROMOTE_LEARNER, 3, &tc.rd,
                                          NULL), RL_E_INVALID_ARGUMENT, "3 is no learner");
    tc_apply(1);
}

/* Every node's log holds the same entries (boundaries, terms, counts) as node `ref`'s. */
static void tc_assert_logs_equal(uint32_t ref, uint32_t lo, uint32_t hi)
{
    const struct memlog *a = &node(ref)->log;
    for (uint32_t id = lo; id <= hi; id++) {
        const struct memlog *b = &node(id)->log;
        cr_assert_eq(memlog_last(b), memlog_last(a), "n%u ends at %llu, n%u at %llu", id,
                     (unsigned long long)memlog_last(b), ref,
                     (unsigned long long)memlog_last(a));
        cr_assert_eq(b->n, a->n);
        for (uint64_t k = 0; k < a->n; k++) {
            cr_assert_eq(b->e[k].index, a->e[k].index);
            cr_assert_eq(b->e[k].count, a->e[k].count);
            cr_assert_eq(b->e[k].term, a->e[k].term);
        }
    }
}

Test(raft, entries_spanning_indexes_replicate_as_offsets)
{
    /* Entries of 5, 1, 100 and 3 records take 109 indexes: the last index moves like a log end
     * offset, the commit index like a high watermark, and every log has the same boundaries. */
    tc_init(3, 3);
    tc_elect(1);
    uint64_t base = node(1)->r.last_index;
    const uint32_t counts[] = {5, 1, 100, 3};
    struct raft_entry e[4];
    for (uint32_t i = 0; i < 4; i++)
        e[i] = (struct raft_entry){.count = counts[i]};
    uint64_t last = 0;
    cr_assert_eq(raft_propose(&node(1)->r, e, 4, &tc.rd, &last), 0);
    tc_apply(1);
    cr_assert_eq(last, base + 109);
    cr_assert_eq(node(1)->r.last_index, base + 109);
    tc_deliver();
    tc_heartbeat(1);
    cr_assert_eq(node(1)->r.commit, base + 109);
    cr_assert_eq(node(2)->r.commit, base + 109);
    tc_assert_logs_equal(1, 2, 3);
    cr_assert_eq(tl_term(&node(2)->log, base + 6), node(1)->r.term, "a boundary has a term");
    cr_assert_eq(tl_term(&node(2)->log, base + 7), 0, "an index inside an entry has none");
    e[0].count = 0;
    cr_assert_eq(raft_propose(&node(1)->r, e, 1, &tc.rd, NULL), RL_E_INVALID_ARGUMENT);
    tc_apply(1);
}

Test(raft, divergent_tail_of_other_boundaries_is_cut_at_a_shared_one)
{
    /* An old leader holds entries of 7 and 13 records its successor never saw; the successor
     * writes entries of 3, 4 and 9 over the same indexes, so the two logs' boundaries differ
     * past the shared prefix. On rejoining, the old leader is cut back to the last boundary
     * both share and takes the successor's entries, in a few round trips. */
    tc_init_opts(3, 3, false, false);
    tc_elect(1);
    tc_heartbeat(1);
    uint64_t shared = node(1)->r.last_index;
    tc_isolate(1, true);
    const uint32_t old_counts[] = {7, 13, 7, 13, 7, 13};
    cr_assert_eq(tc_propose_counts(1, 6, old_counts), 0);
    tc_isolate(1, false);
    tc_isolate(1, true);
    tc_elect(2);
    cr_assert_eq(node(2)->r.role, RAFT_LEADER);
    const uint32_t new_counts[] = {3, 4, 9, 3, 4, 9, 3, 4};
    cr_assert_eq(tc_propose_counts(2, 8, new_counts), 0);
    tc_deliver();
    cr_assert_eq(node(1)->r.last_index, shared + 60);
    cr_assert_eq(node(2)->r.last_index, shared + 1 + 39);
    uint32_t appends_before = tc.sent[RAFT_MSG_APPEND];
    tc_isolate(1, false);
    tc_heartbeat(2);
    tc_heartbeat(2);
    cr_assert_eq(node(1)->r.leader, 2);
    tc_assert_logs_equal(2, 1, 3);
    cr_assert_geq(node(1)->r.commit, shared, "nothing committed was cut");
    cr_assert_lt(tc.sent[RAFT_MSG_APPEND] - appends_before, 8, "took %u appends",
                 tc.sent[RAFT_MSG_APPEND] - appends_before);
}

Test(raft, malformed_appends_are_dropped)
{
    /* Entries that do not start where the previous one ends, a count of 0, or a term above the
     * message's: the follower changes nothing and answers nothing. */
    tc_init(3, 3);
    tc_elect(1);
    tc_heartbeat(1);
    const uint32_t ten = 10;
    tc.manual_persist[1] = true; /* keep the entry uncommitted: only node 2 holds it durably */
    tc_isolate(3, true);
    cr_assert_eq(tc_propose_counts(1, 1, &ten), 0);
    tc_deliver();
    struct raft *f = &node(2)->r;
    cr_assert_eq(f->last_index, f->commit + 10);
    uint64_t last = f->last_index, term = f->term;
    struct raft_entry bad[3] = {
        {.index = last + 2, .count = 1, .term = term}, /* leaves a gap */
        {.index = last + 1, .count = 0, .term = term}, /* covers nothing */
        {.index = last + 1, .count = 1, .term = term + 1}, /* from a later term */
    };
    for (int i = 0; i < 3; i++) {
        struct raft_msg m = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = term,
                             .index = last, .log_term = f->last_term, .entries = &bad[i],
                             .n_entries = 1};
        cr_assert_eq(raft_step(f, &m, &tc.rd), 0);
        cr_assert_eq(tc.rd.n_append, 0, "case %d appended", i);
        cr_assert_eq(tc.rd.n_msgs, 0, "case %d answered", i);
        tc_apply(2);
    }
    for (uint64_t t = 0; t <= term; t += term) { /* an index inside the entry never matches */
        struct raft_msg inside = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = term,
                                  .index = last - 4, .log_term = t};
        cr_assert_eq(raft_step(f, &inside, &tc.rd), 0);
        cr_assert_eq(tc.rd.n_msgs, 1);
        cr_assert(tc.rd.msgs[0].flags & RAFT_MSG_F_REJECT, "term %llu matched inside an entry",
                  (unsigned long long)t);
        cr_assert_eq(tc.rd.msgs[0].hint_index, last - 10, "hint: the boundary below");
        tc_apply(2);
    }
}

/* Tells node `id` that its connection to node `lost` dropped, and carries out the ready. */
static void tc_unreachable(uint32_t id, uint32_t lost)
{
    cr_assert_eq(raft_leader_unreachable(&node(id)->r, lost, &tc.rd), 0);
    tc_apply(id);
}

Test(raft, leader_unreachable_survivors_campaign_at_once_in_rank_order)
{
    /* The leader dies; both survivors hear it. The first in voter order (rank 0, 1 tick)
     * campaigns before the second (rank 1, 3 ticks) and wins at once: the second no longer
     * honours the dead leader's lease, so it grants the pre-vote and the vote. */
    tc_init(3, 3);
    tc_elect(1);
    tc_heartbeat(1);
    cr_assert_eq(node(1)->r.role, RAFT_LEADER);
    uint64_t term = node(1)->r.term;
    tc_isolate(1, true);
    tc_unreachable(2, 1);
    tc_unreachable(3, 1);
    tc_tick(3, 2);
    cr_assert_eq(node(3)->r.role, RAFT_FOLLOWER, "rank 1 waits 3 ticks");
    tc_tick(2, 1);
    cr_assert_eq(node(2)->r.role, RAFT_PRECANDIDATE, "rank 0 campaigns after 1 tick");
    tc_deliver();
    cr_assert_eq(node(2)->r.role, RAFT_LEADER);
    cr_assert_eq(node(2)->r.term, term + 1);
    cr_assert_eq(node(3)->r.leader, 2);
}

Test(raft, leader_unreachable_flap_does_not_disrupt_a_healthy_leader)
{
    /* Only node 3's connection flapped: its pre-vote is refused by the voters that still
     * hear the leader, and the leader keeps its term. A notice naming a node that is not
     * the leader changes nothing. */
    tc_init(3, 3);
    tc_elect(1);
    tc_heartbeat(1);
    uint64_t term = node(1)->r.term;
    tc_unreachable(3, 2);
    tc_tick(3, 5);
    cr_assert_eq(node(3)->r.role, RAFT_FOLLOWER, "a notice about a non-leader is ignored");
    tc_unreachable(3, 1);
    tc_tick(3, 3);
    cr_assert_eq(node(3)->r.role, RAFT_PRECANDIDATE, "rank 1 campaigns after 3 ticks");
    tc_deliver();
    cr_assert_eq(node(1)->r.role, RAFT_LEADER);
    for (int round = 0; round < 10; round++) {
        tc_tick(3, 1);
        tc_heartbeat(1);
    }
    cr_assert_eq(node(1)->r.role, RAFT_LEADER);
    cr_assert_eq(node(1)->r.term, term);
    cr_assert_eq(node(3)->r.leader, 1);
    cr_assert_eq(node(3)->r.term, term);
}

Test(raft, leader_unreachable_needs_pre_vote_and_check_quorum)
{
    /* Without pre-vote and check-quorum an early campaign could depose a healthy leader over
     * a flapping connection, so the notice does nothing. */
    tc_init_opts(3, 3, false, false);
    tc_elect(1);
    tc_heartbeat(1);
    tc_unreachable(2, 1);
    tc_tick(2, 5);
    cr_assert_eq(node(2)->r.role, RAFT_FOLLOWER);
    cr_assert_eq(node(2)->r.leader, 1);
}

/* A heartbeat reply from `from` to leader `leader` as the wire would bring it, with the
 * follower's durable `index` and received `hint` (a reply that was late, or from a follower
 * that got nothing). */
static void tc_hb_resp(uint32_t leader, uint32_t from, uint64_t index, uint64_t hint)
{
    struct raft_msg m = {.type = RAFT_MSG_HEARTBEAT_RESP, .from = from, .to = leader,
                         .term = node(leader)->r.term, .index = index, .hint_index = hint};
    cr_assert_eq(raft_step(&node(leader)->r, &m, &tc.rd), 0);
    tc_apply(leader);
}

Test(raft, late_replies_do_not_make_the_leader_resend_entries)
{
    /* Entries in flight are shipped once: replies that answer heartbeats sent before them (late,
     * not lost) send nothing again; a reply to a heartbeat sent after them that still lacks
     * them (a real loss) probes, and the follower catches up. */
    tc_init(3, 3);
    tc_elect(1);
    tc_heartbeat(1);
    uint64_t old = node(1)->r.last_index;
    cr_assert_eq(node(1)->r.progress[2].state, RAFT_PR_REPLICATE);
    cr_assert_eq(tc_propose(1, 5), 0);
    tc_tick(1, 2); /* a heartbeat goes out behind the append */
    struct raft_counters c0 = node(1)->r.ctr;
    tc_hb_resp(1, 3, old, old); /* two replies to heartbeats from before the append */
    tc_hb_resp(1, 3, old, old);
    cr_assert_eq(node(1)->r.ctr.entries_resent, c0.entries_resent, "a late reply resent");
    cr_assert_eq(node(1)->r.ctr.appends_sent, c0.appends_sent);
    cr_assert_eq(node(1)->r.progress[2].state, RAFT_PR_REPLICATE);
    tc_deliver();
    cr_assert_eq(node(3)->r.last_index, node(1)->r.last_index);
    cr_assert_eq(node(1)->r.ctr.entries_resent, c0.entries_resent);
    /* Now a real loss: the appends never arrive, two heartbeats overtake them. */
    cr_assert_eq(tc_propose(1, 5), 0);
    tc_drop(RAFT_MSG_APPEND);
    for (int i = 0; i < 3; i++)
        tc_heartbeat(1);
    cr_assert_eq(node(3)->r.last_index, node(1)->r.last_index, "the lost tail was resent");
    cr_assert_gt(node(1)->r.ctr.stall_probes, c0.stall_probes);
    cr_assert_gt(node(1)->r.ctr.entries_resent, c0.entries_resent);
}

Test(raft, a_probe_is_resent_at_most_once_per_two_heartbeats)
{
    /* A follower that answers heartbeats but never a probe (its probe may be lost or only
     * late) gets the probe again on every second heartbeat reply, not on each. */
    tc_init(3, 3);
    tc.cut[1][3] = true; /* n3 hears nothing from n1, but its replies are fed in below */
    tc_elect(1);
    cr_assert_eq(node(1)->r.role, RAFT_LEADER);
    cr_assert_eq(node(1)->r.progress[2].state, RAFT_PR_PROBE);
    uint64_t probes = node(1)->r.ctr.probe_appends;
    for (int i = 0; i < 4; i++) {
        tc_tick(1, 2);
        tc_hb_resp(1, 3, 0, 0);
    }
    cr_assert_eq(node(1)->r.ctr.probe_appends - probes, 4 / RAFT_PROBE_RESEND_HBS,
                 "%llu probes in 4 heartbeats",
                 (unsigned long long)(node(1)->r.ctr.probe_appends - probes));
}
