/*
 * sim: the deterministic raft simulator (see sim.h for what it models and checks).
 *
 * Time advances in ticks. In each tick: faults may strike (crash, restart, partition, heal),
 * clients propose, the leader may change membership or hand over leadership, nodes may compact
 * their logs; then every live node ticks, due messages are delivered in random order, and due
 * disk syncs complete. Every core call is followed by carrying out its ready exactly as a real
 * caller would (persist hard state, install/truncate/append, send, apply) with checks in
 * between. Payload bytes live in a per-run arena so pointers stay valid for the whole run.
 */
#include "tests/sim/sim.h"

#include "common/err.h"
#include "common/log.h"
#include "replication/raft.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define SIM_MAX_NODES 7
#define SIM_NET_MAX 4096         /* messages in flight; beyond this the network drops */
#ifndef SIM_TRACE_LINES
#define SIM_TRACE_LINES 300 /* trace lines kept (the tail is printed on failure) */
#endif
#define SIM_TRACE_LINE_BYTES 200
#define SIM_ARENA_CHUNK (1u << 20)
#define SIM_MAX_TERMS (1u << 16) /* terms a run may reach */
#define SIM_REG_BITS 17          /* (index, term) registry for log matching */
#define SIM_MAX_SYNCS 32         /* appends awaiting durability per node (then merged) */
#define SIM_ELECTION_TICKS 10
#define SIM_HEARTBEAT_TICKS 2

struct arena_chunk {
    struct arena_chunk *next;
    size_t used;
    uint8_t data[SIM_ARENA_CHUNK];
};

struct memlog {
    struct raft_entry *e;
    uint64_t cap;
    uint64_t first;     /* index of e[0] */
    uint64_t n;         /* entries held */
    uint64_t durable_n; /* e[0..durable_n) survive a crash */
    uint64_t snap_index;
    uint64_t snap_term;
};

struct node {
    uint32_t id;
    bool up;
    struct raft r;
    struct memlog log;
    struct raft_hard_state hs;      /* as persisted */
    struct raft_snapshot_meta snap; /* as persisted */
    uint32_t n_syncs; /* appends whose durability is still to come, oldest first */
    struct sync {
        uint64_t index, term, at;
    } syncs[SIM_MAX_SYNCS];
    uint64_t commit; /* last commit seen this life */
    uint64_t doom_at; /* crash at this tick (0: not scheduled) */
};

struct net_msg {
    uint64_t at;
    uint64_t seq; /* send order: ties in `at` on one link deliver in this order */
    struct raft_msg m;
    struct raft_entry *ents;
};

struct centry {
    uint64_t term;
    uint64_t value;
};

struct reg_slot {
    uint64_t index; /* 0: empty */
    uint64_t term;
    uint64_t value;
    uint64_t prev_term;
};

struct sim {
    struct sim_options o;
    struct sim_result *res;
    uint64_t rng;
    uint64_t now;
    uint32_t n_nodes;
    struct node nodes[SIM_MAX_NODES];
    bool link_down[SIM_MAX_NODES][SIM_MAX_NODES];
    uint64_t link_at[SIM_MAX_NODES][SIM_MAX_NODES]; /* latest delivery time on each link */
    uint32_t n_net;
    uint64_t net_seq;
    struct net_msg net[SIM_NET_MAX];
    struct raft_ready rd;
    struct arena_chunk *arena;
    uint64_t next_value;
    /* run parameters drawn from the seed */
    uint32_t loss_pct, dup_pct, max_delay, max_msg_entries, max_inflight;
    uint32_t crash_rate, restart_rate, partition_rate; /* per 10,000 ticks (per node) */
    uint32_t doom_rate; /* per 10,000 elections: crash the new leader within a few ticks */
    bool pre_vote, check_quorum; /* drawn per run: without them elections churn far more */
    /* checker */
    uint32_t *leader_of_term;
    struct centry *committed;
    uint64_t committed_len, committed_cap;
    struct reg_slot *reg;
    /* trace ring */
    char (*trace)[SIM_TRACE_LINE_BYTES];
    uint64_t n_trace;
};

/* ---- utilities ----------------------------------------------------------------------- */

static uint64_t rnd(struct sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t rnd_below(struct sim *s, uint32_t n)
{
    return (uint32_t)(rnd(s) % n);
}

static bool chance(struct sim *s, uint32_t per_10000)
{
    return rnd_below(s, 10000) < per_10000;
}

static void trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace(struct sim *s, const char *fmt, ...)
{
    if (!s->trace)
        return;
    char *line = s->trace[s->n_trace % SIM_TRACE_LINES];
    int k = snprintf(line, SIM_TRACE_LINE_BYTES, "t=%-5llu ", (unsigned long long)s->now);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + k, SIM_TRACE_LINE_BYTES - (size_t)k, fmt, ap);
    va_end(ap);
    s->n_trace++;
}

static void fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct sim *s, const char *fmt, ...)
{
    if (s->res->failed)
        return;
    s->res->failed = true;
    int k = snprintf(s->res->reason, sizeof(s->res->reason), "t=%llu: ",
                     (unsigned long long)s->now);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->res->reason + k, sizeof(s->res->reason) - (size_t)k, fmt, ap);
    va_end(ap);
    trace(s, "CHECK FAILED: %s", s->res->reason);
}

static void *arena_copy(struct sim *s, const void *p, size_t len)
{
    struct arena_chunk *c = s->arena;
    if (!c || c->used + len > SIM_ARENA_CHUNK) {
        c = malloc(sizeof(*c));
        if (!c)
            abort();
        c->next = s->arena;
        c->used = 0;
        s->arena = c;
    }
    void *dst = c->data + c->used;
    memcpy(dst, p, len);
    c->used += (len + 7) & ~(size_t)7;
    return dst;
}

static uint64_t entry_value(const struct raft_entry *e)
{
    if (e->len == 0)
        return 0;
    if (e->type == RAFT_ENTRY_NORMAL && e->len == 8) {
        uint64_t v;
        memcpy(&v, e->data, 8);
        return v;
    }
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of config payloads, tagged */
    for (uint32_t i = 0; i < e->len; i++)
        h = (h ^ ((const uint8_t *)e->data)[i]) * 0x100000001b3ull;
    return h | 1ull << 63;
}

/* ---- the in-memory log (what a node's disk holds) -------------------------------------- */

static uint64_t ml_last(void *ctx)
{
    const struct memlog *l = ctx;
    return l->n ? l->first + l->n - 1 : l->snap_index;
}

static uint64_t ml_term(void *ctx, uint64_t i)
{
    const struct memlog *l = ctx;
    if (i == l->snap_index)
        return l->snap_term;
    if (i < l->first || i >= l->first + l->n)
        return 0;
    return l->e[i - l->first].term;
}

static int ml_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                      struct raft_entry *out, uint32_t max_n)
{
    const struct memlog *l = ctx;
    if (lo < l->first || hi >= l->first + l->n)
        return RL_E_OFFSET_OUT_OF_RANGE;
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (uint64_t i = lo; i <= hi && n < max_n; i++) {
        if (n > 0 && bytes >= max_bytes)
            break;
        out[n] = l->e[i - l->first];
        bytes += out[n].len;
        n++;
    }
    return (int)n;
}

static const struct raft_log_ops ml_ops = {ml_last, ml_term, ml_entries};

static void ml_append(struct memlog *l, const struct raft_entry *e)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->e = realloc(l->e, l->cap * sizeof(*l->e));
        if (!l->e)
            abort();
    }
    l->e[l->n++] = *e;
}

static const struct raft_entry *ml_get(const struct memlog *l, uint64_t i)
{
    if (i < l->first || i >= l->first + l->n)
        return NULL;
    return &l->e[i - l->first];
}

/* ---- checker --------------------------------------------------------------------------- */

static void check_registry(struct sim *s, struct node *n, const struct raft_entry *e,
                           uint64_t prev_term)
{
    uint64_t mask = (1ull << SIM_REG_BITS) - 1;
    uint64_t h = (e->index * 0x9e3779b97f4a7c15ull ^ e->term * 0xc2b2ae3d27d4eb4full) & mask;
    uint64_t value = entry_value(e);
    for (uint64_t probe = 0; probe <= mask; probe++) {
        struct reg_slot *slot = &s->reg[(h + probe) & mask];
        if (slot->index == 0) {
            *slot = (struct reg_slot){e->index, e->term, value, prev_term};
            return;
        }
        if (slot->index == e->index && slot->term == e->term) {
            if (slot->value != value || slot->prev_term != prev_term)
                fail(s, "log matching: n%u holds (%llu, term %llu) value %llx prev term %llu, "
                        "another node value %llx prev term %llu", n->id,
                     (unsigned long long)e->index, (unsigned long long)e->term,
                     (unsigned long long)value, (unsigned long long)prev_term,
                     (unsigned long long)slot->value, (unsigned long long)slot->prev_term);
            return;
        }
    }
    fail(s, "registry full (raise SIM_REG_BITS)");
}

static bool entry_is_committed(struct sim *s, uint64_t i, const struct raft_entry *e)
{
    return i <= s->committed_len && e && s->committed[i].term == e->term &&
           s->committed[i].value == entry_value(e);
}

static void check_leader(struct sim *s, struct node *n)
{
    uint64_t term = n->r.term;
    if (term >= SIM_MAX_TERMS) {
        fail(s, "term %llu beyond the simulator's table", (unsigned long long)term);
        return;
    }
    if (s->leader_of_term[term] && s->leader_of_term[term] != n->id) {
        fail(s, "two leaders in term %llu: n%u and n%u", (unsigned long long)term,
             s->leader_of_term[term], n->id);
        return;
    }
    s->leader_of_term[term] = n->id;
    /* Leader completeness: it holds every entry committed so far. */
    for (uint64_t i = n->log.snap_index + 1; i <= s->committed_len; i++) {
        const struct raft_entry *e = ml_get(&n->log, i);
        if (!entry_is_committed(s, i, e)) {
            fail(s, "leader completeness: n%u leads term %llu without committed entry %llu "
                    "(term %llu)", n->id, (unsigned long long)term, (unsigned long long)i,
                 (unsigned long long)s->committed[i].term);
            return;
        }
    }
}

static void check_commit(struct sim *s, struct node *n, uint64_t commit)
{
    if (commit < n->commit) {
        fail(s, "n%u commit index moved back from %llu to %llu", n->id,
             (unsigned long long)n->commit, (unsigned long long)commit);
        return;
    }
    if (commit + 1 > s->committed_cap) {
        s->committed_cap = (commit + 1) * 2;
        s->committed = realloc(s->committed, s->committed_cap * sizeof(*s->committed));
        if (!s->committed)
            abort();
    }
    for (uint64_t i = n->commit + 1; i <= commit; i++) {
        if (i <= n->log.snap_index)
            continue; /* came with a snapshot of committed state */
        const struct raft_entry *e = ml_get(&n->log, i);
        if (!e) {
            fail(s, "n%u committed %llu which its log does not hold", n->id,
                 (unsigned long long)i);
            return;
        }
        if (i <= s->committed_len) {
            if (!entry_is_committed(s, i, e)) {
                fail(s, "n%u committed (%llu, term %llu) but (%llu, term %llu) was committed "
                        "before", n->id, (unsigned long long)i, (unsigned long long)e->term,
                     (unsigned long long)i, (unsigned long long)s->committed[i].term);
                return;
            }
        } else {
            RL_ASSERT(i == s->committed_len + 1);
            s->committed[i] = (struct centry){e->term, entry_value(e)};
            s->committed_len = i;
        }
    }
    n->commit = commit;
}

static bool log_newer_or_equal(uint64_t t1, uint64_t i1, uint64_t t2, uint64_t i2)
{
    return t1 > t2 || (t1 == t2 && i1 >= i2);
}

static bool same_voters(const struct raft_config *a, const struct raft_config *b)
{
    if (a->n_voters != b->n_voters)
        return false;
    for (uint32_t i = 0; i < a->n_voters; i++)
        if (!raft_config_has(b, a->voters[i]))
            return false;
    return true;
}

/* No committed entry can be lost by a future election: a node whose log lacks the newest
 * committed entry must not be able to collect a quorum of votes on log grounds, counting every
 * voter whose durable log (what it would have after a crash) is no newer than the node's log.
 * Raft's own safety argument gives this at every step; it catches a bad commit as soon as it
 * happens, before any election. Checked while all nodes agree on the voters (with a change
 * in flight, whose quorum applies is not a fact of one step). */
static void check_no_loss(struct sim *s)
{
    uint64_t c = s->committed_len;
    if (c == 0)
        return;
    const struct raft_config *cfg = &s->nodes[0].r.config;
    for (uint32_t i = 1; i < s->n_nodes; i++)
        if (!same_voters(cfg, &s->nodes[i].r.config))
            return;
    for (uint32_t k = 0; k < cfg->n_voters; k++) {
        struct node *cand = &s->nodes[cfg->voters[k] - 1];
        const struct memlog *l = &cand->log;
        if (l->snap_index >= c || entry_is_committed(s, c, ml_get(l, c)))
            continue;
        uint64_t last = ml_last((void *)l), last_term = ml_term((void *)l, last);
        uint32_t votes = 0;
        for (uint32_t v = 0; v < cfg->n_voters; v++) {
            const struct memlog *vl = &s->nodes[cfg->voters[v] - 1].log;
            uint64_t dl = vl->durable_n ? vl->first + vl->durable_n - 1 : vl->snap_index;
            votes += log_newer_or_equal(last_term, last, ml_term((void *)vl, dl), dl);
        }
        if (votes >= cfg->n_voters / 2 + 1) {
            fail(s, "committed entry %llu (term %llu) can be lost: n%u lacks it (last %llu "
                    "term %llu) yet %u of %u voters' durable logs would let it win",
                 (unsigned long long)c, (unsigned long long)s->committed[c].term, cand->id,
                 (unsigned long long)last, (unsigned long long)last_term, votes,
                 cfg->n_voters);
            return;
        }
    }
}

/* ---- network, disk, ready ------------------------------------------------------------- */

static void net_send(struct sim *s, const struct raft_msg *m)
{
    uint32_t copies = 1 + chance(s, s->dup_pct * 100);
    for (uint32_t c = 0; c < copies; c++) {
        if (chance(s, s->loss_pct * 100) || s->link_down[m->from - 1][m->to - 1] ||
            s->n_net >= SIM_NET_MAX)
            continue;
        struct net_msg *nm = &s->net[s->n_net++];
        nm->seq = ++s->net_seq;
        nm->m = *m;
        nm->ents = NULL;
        if (m->n_entries) {
            nm->ents = malloc(m->n_entries * sizeof(*nm->ents));
            if (!nm->ents)
                abort();
            for (uint32_t i = 0; i < m->n_entries; i++) {
                nm->ents[i] = m->entries[i];
                if (nm->ents[i].type == RAFT_ENTRY_CONFIG) /* may point into a ready */
                    nm->ents[i].data = arena_copy(s, m->entries[i].data, m->entries[i].len);
            }
        }
        nm->m.entries = nm->ents;
        /* Links are FIFO like a TCP connection, except for rare stragglers (a reconnect):
         * those and duplicates are where reordering comes from. */
        uint64_t *fifo = &s->link_at[m->from - 1][m->to - 1];
        nm->at = s->now + (s->max_delay ? rnd_below(s, s->max_delay + 1) : 0);
        if (chance(s, 100))
            nm->at += rnd_below(s, 4 * SIM_ELECTION_TICKS);
        else if (nm->at < *fifo)
            nm->at = *fifo;
        else
            *fifo = nm->at;
    }
}

/* Step 2 of a ready: install, truncate, append (with the checks that watch the disk). */
static void apply_log(struct sim *s, struct node *n)
{
    struct raft_ready *rd = &s->rd;
    struct memlog *l = &n->log;
    if (rd->has_snapshot) {
        trace(s, "n%u installs snapshot at %llu (term %llu)", n->id,
              (unsigned long long)rd->snapshot.index, (unsigned long long)rd->snapshot.term);
        n->snap = rd->snapshot;
        l->first = rd->snapshot.index + 1;
        l->n = l->durable_n = 0;
        l->snap_index = rd->snapshot.index;
        l->snap_term = rd->snapshot.term;
        s->res->snapshots_sent++;
    }
    if (rd->has_truncate) {
        uint64_t a = rd->truncate_after;
        if (a < l->snap_index || a >= ml_last(l)) {
            fail(s, "n%u asked to truncate after %llu outside its log", n->id,
                 (unsigned long long)a);
            return;
        }
        /* A node may lose a copy of a globally committed entry it does not know to be
         * committed (a stale leader in a minority can overwrite it; the quorum that committed
         * it keeps it, which check_no_loss watches). What it knows to be committed is fixed. */
        if (a < n->commit)
            fail(s, "n%u erases entry %llu at or below its commit index %llu", n->id,
                 (unsigned long long)(a + 1), (unsigned long long)n->commit);
        trace(s, "n%u truncates after %llu", n->id, (unsigned long long)a);
        l->n = a + 1 - l->first;
        if (l->durable_n > l->n)
            l->durable_n = l->n;
    }
    for (uint32_t i = 0; i < rd->n_append; i++) {
        struct raft_entry e = rd->append[i];
        if (e.index != ml_last(l) + 1) {
            fail(s, "n%u appends %llu after %llu", n->id, (unsigned long long)e.index,
                 (unsigned long long)ml_last(l));
            return;
        }
        if (e.type == RAFT_ENTRY_CONFIG)
            e.data = arena_copy(s, e.data, e.len);
        check_registry(s, n, &e, ml_term(l, e.index - 1));
        ml_append(l, &e);
    }
    if (rd->n_append) {
        trace(s, "n%u appends %llu..%llu term %llu", n->id,
              (unsigned long long)rd->append[0].index,
              (unsigned long long)rd->append[rd->n_append - 1].index,
              (unsigned long long)rd->append[rd->n_append - 1].term);
        /* Each append gets its own flush, completing in order after 0-3 ticks, so followers
         * acknowledge in small steps as a real disk would let them. */
        const struct raft_entry *last = &rd->append[rd->n_append - 1];
        uint64_t at = s->now + rnd_below(s, 4);
        if (n->n_syncs == SIM_MAX_SYNCS)
            n->n_syncs--; /* merge into the newest */
        if (n->n_syncs && n->syncs[n->n_syncs - 1].at > at)
            at = n->syncs[n->n_syncs - 1].at;
        n->syncs[n->n_syncs++] = (struct sync){last->index, last->term, at};
    }
}

static void apply_ready(struct sim *s, struct node *n)
{
    struct raft_ready *rd = &s->rd;
    if (rd->hard_state_changed)
        n->hs = rd->hard_state; /* persisted before any message goes out */
    apply_log(s, n);
    if (s->res->failed)
        return;
    if (rd->role_changed) {
        trace(s, "n%u is %s in term %llu (leader n%u)", n->id, raft_role_name(rd->role),
              (unsigned long long)rd->term, rd->leader);
        if (rd->term > s->res->max_term)
            s->res->max_term = rd->term;
        if (rd->role == RAFT_LEADER) {
            check_leader(s, n);
            /* The moments after an election, when the new leader is still finishing its
             * predecessors' entries, are where commit-rule bugs show: strike there often. */
            if (s->doom_rate && chance(s, s->doom_rate))
                n->doom_at = s->now + 1 + rnd_below(s, 6);
        }
    }
    if (rd->commit_changed)
        check_commit(s, n, rd->commit_index);
    for (uint32_t i = 0; i < rd->n_msgs; i++)
        net_send(s, &rd->msgs[i]);
}

/* Every core call goes through here: count it, check its status, carry out its ready. */
static void after_call(struct sim *s, struct node *n, int rc, const char *what)
{
    s->res->steps++;
    if (rc < 0 && rc != RL_E_RAFT_NOT_LEADER && rc != RL_E_RAFT_TRANSFERRING &&
        rc != RL_E_FULL && rc != RL_E_RAFT_CONF_PENDING && rc != RL_E_INVALID_ARGUMENT &&
        rc != RL_E_RAFT_CATCHING_UP)
        fail(s, "n%u: %s failed: %s", n->id, what, rl_strerror(rc));
    apply_ready(s, n);
    check_no_loss(s);
}

static void node_start(struct sim *s, struct node *n)
{
    struct raft_options opt = {
        .id = n->id,
        .election_ticks = SIM_ELECTION_TICKS,
        .heartbeat_ticks = SIM_HEARTBEAT_TICKS,
        .max_msg_entries = s->max_msg_entries,
        .max_inflight = s->max_inflight,
        .max_uncommitted = 64,
        .seed = rnd(s),
        .pre_vote = s->pre_vote,
        .check_quorum = s->check_quorum,
        .log_ops = &ml_ops,
        .log_ctx = &n->log,
    };
    int rc = raft_init(&n->r, &opt, &n->hs, &n->snap);
    if (rc < 0)
        fail(s, "n%u: raft_init: %s", n->id, rl_strerror(rc));
    n->up = true;
    n->commit = n->r.commit;
    n->n_syncs = 0;
}

static void node_crash(struct sim *s, struct node *n)
{
    trace(s, "n%u CRASHES (log %llu, durable %llu)", n->id, (unsigned long long)ml_last(&n->log),
          (unsigned long long)(n->log.first + n->log.durable_n - 1));
    n->up = false;
    n->log.n = n->log.durable_n; /* what was not yet durable is gone */
    n->n_syncs = 0;
    s->res->crashes++;
}

static void do_syncs(struct sim *s, struct node *n)
{
    struct memlog *l = &n->log;
    while (n->n_syncs && n->syncs[0].at <= s->now && n->up && !s->res->failed) {
        struct sync sy = n->syncs[0];
        memmove(n->syncs, n->syncs + 1, --n->n_syncs * sizeof(n->syncs[0]));
        if (sy.index < l->first || ml_term(l, sy.index) != sy.term)
            continue; /* truncated or replaced since: nothing of it to report */
        if (sy.index - l->first + 1 > l->durable_n)
            l->durable_n = sy.index - l->first + 1;
        int rc = raft_persisted(&n->r, sy.index, sy.term, &s->rd);
        after_call(s, n, rc, "persisted");
    }
}

/* The due message that goes first on its link: earliest `at`, then earliest sent. */
static bool net_before(const struct net_msg *a, const struct net_msg *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void deliver_due(struct sim *s)
{
    /* Deliver due messages one at a time, choosing at random among the links that have one
     * due but keeping each link in order (a link is a TCP connection: only stragglers and
     * duplicates, which net_send gives later times, arrive out of order). Bounded by what is
     * in flight now. */
    for (uint32_t budget = s->n_net; budget > 0 && !s->res->failed; budget--) {
        int32_t head[SIM_MAX_NODES][SIM_MAX_NODES];
        uint32_t cand[SIM_MAX_NODES * SIM_MAX_NODES], n_cand = 0;
        memset(head, -1, sizeof(head));
        for (uint32_t i = 0; i < s->n_net; i++) {
            const struct net_msg *nm = &s->net[i];
            if (nm->at > s->now)
                continue;
            int32_t *h = &head[nm->m.from - 1][nm->m.to - 1];
            if (*h < 0)
                cand[n_cand++] = (uint32_t)((nm->m.from - 1) * SIM_MAX_NODES + nm->m.to - 1);
            if (*h < 0 || net_before(nm, &s->net[*h]))
                *h = (int32_t)i;
        }
        if (n_cand == 0)
            return;
        uint32_t link = cand[rnd_below(s, n_cand)];
        uint32_t k = (uint32_t)head[link / SIM_MAX_NODES][link % SIM_MAX_NODES];
        struct net_msg nm = s->net[k];
        s->net[k] = s->net[--s->n_net];
        struct node *to = &s->nodes[nm.m.to - 1];
        if (to->up && !s->link_down[nm.m.from - 1][nm.m.to - 1]) {
            trace(s, "n%u <- n%u %s term=%llu idx=%llu lt=%llu c=%llu n=%u%s hint=%llu/%llu",
                  nm.m.to, nm.m.from, raft_msg_type_name(nm.m.type),
                  (unsigned long long)nm.m.term, (unsigned long long)nm.m.index,
                  (unsigned long long)nm.m.log_term, (unsigned long long)nm.m.commit,
                  nm.m.n_entries, (nm.m.flags & RAFT_MSG_F_REJECT) ? " REJECT" : "",
                  (unsigned long long)nm.m.hint_index, (unsigned long long)nm.m.hint_term);
            int rc = raft_step(&to->r, &nm.m, &s->rd);
            after_call(s, to, rc, "step");
        }
        free(nm.ents);
    }
}

/* ---- faults and clients -------------------------------------------------------------- */

static struct node *find_leader(struct sim *s)
{
    struct node *best = NULL;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        struct node *n = &s->nodes[i];
        if (n->up && n->r.role == RAFT_LEADER && (!best || n->r.term > best->r.term))
            best = n;
    }
    return best;
}

static int propose_value(struct sim *s, struct node *n, uint32_t count, uint64_t *first)
{
    struct raft_entry e[8];
    for (uint32_t i = 0; i < count; i++) {
        uint64_t v = ++s->next_value;
        e[i] = (struct raft_entry){.data = arena_copy(s, &v, 8), .len = 8};
    }
    int rc = raft_propose(&n->r, e, count, &s->rd, first);
    trace(s, "n%u propose %u entries (values from %llu): %s", n->id, count,
          (unsigned long long)(s->next_value - count + 1), rl_error_name(rc));
    after_call(s, n, rc, "propose");
    return rc;
}

static void partition(struct sim *s)
{
    memset(s->link_down, 0, sizeof(s->link_down));
    if (chance(s, 5000)) {
        uint32_t side = 0; /* bit i: node i on side B */
        for (uint32_t i = 0; i < s->n_nodes; i++)
            side |= (uint32_t)chance(s, 5000) << i;
        for (uint32_t a = 0; a < s->n_nodes; a++)
            for (uint32_t b = 0; b < s->n_nodes; b++)
                s->link_down[a][b] = ((side >> a) & 1) != ((side >> b) & 1);
        trace(s, "PARTITION symmetric, side B mask %x", side);
    } else {
        uint32_t cuts = 1 + rnd_below(s, 3);
        for (uint32_t c = 0; c < cuts; c++) {
            uint32_t a = rnd_below(s, s->n_nodes), b = rnd_below(s, s->n_nodes);
            s->link_down[a][b] = true;
            trace(s, "PARTITION one-way n%u -> n%u", a + 1, b + 1);
        }
    }
}

static void membership(struct sim *s, struct node *ld)
{
    uint32_t target = 1 + rnd_below(s, s->n_nodes);
    bool is_voter = raft_config_has(&ld->r.config, target);
    uint32_t nv = ld->r.config.n_voters;
    enum raft_conf_op op;
    if (is_voter && nv > s->o.n_voters - 1 && nv > 1)
        op = RAFT_CONF_REMOVE_VOTER;
    else if (!is_voter && nv < s->o.n_voters + 1)
        op = RAFT_CONF_ADD_VOTER;
    else
        return;
    uint64_t idx = 0;
    int rc = raft_propose_conf_change(&ld->r, op, target, &s->rd, &idx);
    trace(s, "n%u proposes %s n%u: %s (index %llu)", ld->id,
          op == RAFT_CONF_ADD_VOTER ? "add" : "remove", target, rl_error_name(rc),
          (unsigned long long)idx);
    s->res->conf_changes += rc == 0;
    after_call(s, ld, rc, "conf change");
}

static void compact(struct sim *s, struct node *n)
{
    uint64_t hi = n->r.commit < n->r.durable_index ? n->r.commit : n->r.durable_index;
    if (hi < n->log.snap_index + 8)
        return;
    uint64_t idx = hi - rnd_below(s, 4);
    struct raft_snapshot_meta meta;
    int rc = raft_compact(&n->r, idx, &meta);
    if (rc < 0) {
        fail(s, "n%u: compact %llu: %s", n->id, (unsigned long long)idx, rl_strerror(rc));
        return;
    }
    struct memlog *l = &n->log;
    uint64_t drop = idx + 1 - l->first;
    memmove(l->e, l->e + drop, (l->n - drop) * sizeof(*l->e));
    l->n -= drop;
    l->durable_n = l->durable_n > drop ? l->durable_n - drop : 0;
    l->first = idx + 1;
    l->snap_index = idx;
    l->snap_term = meta.term;
    n->snap = meta;
    trace(s, "n%u compacts through %llu", n->id, (unsigned long long)idx);
}

static void chaos(struct sim *s)
{
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        struct node *n = &s->nodes[i];
        if (n->up && n->doom_at && n->doom_at <= s->now) {
            n->doom_at = 0;
            node_crash(s, n);
        } else if (n->up && chance(s, s->crash_rate)) {
            node_crash(s, n);
        } else if (!n->up && chance(s, s->restart_rate)) {
            trace(s, "n%u RESTARTS (term %llu vote n%u)", n->id, (unsigned long long)n->hs.term,
                  n->hs.vote);
            node_start(s, n);
        }
    }
    if (chance(s, s->partition_rate))
        partition(s);
    else if (chance(s, 200))
        memset(s->link_down, 0, sizeof(s->link_down));
    struct node *ld = find_leader(s);
    if (ld && chance(s, 3000))
        propose_value(s, ld, 1 + rnd_below(s, 4), NULL);
    /* Without pre-vote, a voter whose configuration is stale (a removed one, or one that
     * missed the latest change) campaigns in vain in ever higher terms and keeps deposing
     * or outvoting the real candidates, as the Raft dissertation notes; such runs leave
     * membership alone so the liveness bound stays meaningful. */
    if (ld && ld->up && s->pre_vote && chance(s, 60))
        membership(s, ld);
    if (ld && ld->up && chance(s, 40)) {
        uint32_t target = ld->r.config.voters[rnd_below(s, ld->r.config.n_voters)];
        int rc = raft_transfer_leadership(&ld->r, target, &s->rd);
        trace(s, "n%u transfers leadership to n%u: %s", ld->id, target, rl_error_name(rc));
        s->res->transfers += rc == 0;
        after_call(s, ld, rc, "transfer");
    }
    for (uint32_t i = 0; i < s->n_nodes; i++)
        if (s->nodes[i].up && chance(s, 100))
            compact(s, &s->nodes[i]);
}

static void tick_all(struct sim *s)
{
    for (uint32_t i = 0; i < s->n_nodes && !s->res->failed; i++) {
        struct node *n = &s->nodes[i];
        if (!n->up)
            continue;
        int rc = raft_tick(&n->r, &s->rd);
        after_call(s, n, rc, "tick");
    }
    deliver_due(s);
    for (uint32_t i = 0; i < s->n_nodes && !s->res->failed; i++) {
        struct node *n = &s->nodes[i];
        if (n->up)
            do_syncs(s, n);
    }
}

/* ---- runs ---------------------------------------------------------------------------- */

static int sim_setup(struct sim *s, const struct sim_options *o, struct sim_result *res)
{
    memset(res, 0, sizeof(*res));
    s->o = *o;
    s->res = res;
    s->rng = o->seed * 0x2545f4914f6cdd1dull + 0x1234567;
    s->n_nodes = o->n_voters + 1; /* one spare that membership changes may add */
    if (o->n_voters < 1 || s->n_nodes > SIM_MAX_NODES)
        return RL_E_INVALID_ARGUMENT;
    static const uint32_t entries_choice[] = {1, 2, 8, 64};
    s->loss_pct = (uint32_t[]){0, 2, 10, 25}[rnd_below(s, 4)];
    s->dup_pct = (uint32_t[]){0, 2, 10}[rnd_below(s, 3)];
    s->max_delay = rnd_below(s, 5);
    s->max_msg_entries = entries_choice[rnd_below(s, 4)];
    /* A window of 4 stresses the pipeline; one-entry messages get the full window so that
     * replication outpaces the clients and a follower's lag stays bounded. */
    s->max_inflight = s->max_msg_entries == 1 || chance(s, 5000) ? RAFT_MAX_INFLIGHT : 4;
    /* Calm runs exercise long stretches of replication; stormy ones many leader changes. */
    s->crash_rate = (uint32_t[]){10, 40, 150}[rnd_below(s, 3)];
    s->restart_rate = (uint32_t[]){300, 1000, 3000}[rnd_below(s, 3)];
    s->partition_rate = (uint32_t[]){30, 100, 300}[rnd_below(s, 3)];
    s->doom_rate = (uint32_t[]){0, 1000, 3000}[rnd_below(s, 3)];
    s->pre_vote = chance(s, 7500);
    s->check_quorum = chance(s, 7500);
    if (o->healthy) {
        s->loss_pct = s->dup_pct = 0;
        s->max_delay = 1;
        s->max_msg_entries = 64;
        s->max_inflight = RAFT_MAX_INFLIGHT;
        s->crash_rate = s->partition_rate = s->doom_rate = 0;
        s->pre_vote = s->check_quorum = true;
    }
    s->leader_of_term = calloc(SIM_MAX_TERMS, sizeof(*s->leader_of_term));
    s->reg = calloc(1ull << SIM_REG_BITS, sizeof(*s->reg));
    s->committed_cap = 1024;
    s->committed = calloc(s->committed_cap, sizeof(*s->committed));
    if (o->trace)
        s->trace = calloc(SIM_TRACE_LINES, sizeof(*s->trace));
    if (!s->leader_of_term || !s->reg || !s->committed || (o->trace && !s->trace))
        return -12;
    struct raft_config cfg = {.n_voters = o->n_voters};
    for (uint32_t i = 0; i < o->n_voters; i++)
        cfg.voters[i] = i + 1;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        struct node *n = &s->nodes[i];
        n->id = i + 1;
        n->log.first = 1;
        n->snap.config = cfg;
        node_start(s, n);
    }
    trace(s, "run: %u voters + 1 spare, loss %u%%, dup %u%%, delay 0-%u, %u entries/msg, "
             "window %u, crash/restart/partition per 10k ticks %u/%u/%u, new leader crash "
             "%u/10k, pre-vote %d, check-quorum %d", o->n_voters, s->loss_pct, s->dup_pct,
          s->max_delay, s->max_msg_entries, s->max_inflight, s->crash_rate, s->restart_rate,
          s->partition_rate, s->doom_rate, s->pre_vote, s->check_quorum);
    return 0;
}

static void sim_teardown(struct sim *s)
{
    for (uint32_t i = 0; i < s->n_net; i++)
        free(s->net[i].ents);
    for (uint32_t i = 0; i < s->n_nodes; i++)
        free(s->nodes[i].log.e);
    while (s->arena) {
        struct arena_chunk *c = s->arena;
        s->arena = c->next;
        free(c);
    }
    free(s->leader_of_term);
    free(s->reg);
    free(s->committed);
    free(s->trace);
}

static void print_nodes(struct sim *s, FILE *out)
{
    fprintf(out, "---- node states ----\n");
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        const struct node *n = &s->nodes[i];
        const struct raft *r = &n->r;
        fprintf(out, "  n%u %s %s term %llu vote n%u leader n%u commit %llu last %llu durable "
                     "%llu verified %llu snap %llu voters", n->id, n->up ? "up" : "DOWN",
                raft_role_name(r->role), (unsigned long long)r->term, r->vote, r->leader,
                (unsigned long long)r->commit, (unsigned long long)r->last_index,
                (unsigned long long)r->durable_index, (unsigned long long)r->verified_index,
                (unsigned long long)r->snap_index);
        for (uint32_t v = 0; v < r->config.n_voters; v++)
            fprintf(out, " n%u", r->config.voters[v]);
        fprintf(out, " (at %llu)\n", (unsigned long long)r->config_index);
        for (uint32_t p = 0; r->role == RAFT_LEADER && p < r->n_progress; p++) {
            const struct raft_progress *pr = &r->progress[p];
            fprintf(out, "      n%u state %u match %llu next %llu inflight %u probe_sent %u\n",
                    pr->id, pr->state, (unsigned long long)pr->match,
                    (unsigned long long)pr->next, pr->infl_count, pr->probe_sent);
        }
    }
}

static void print_trace(struct sim *s)
{
    FILE *out = s->o.out ? s->o.out : stdout;
    print_nodes(s, out);
    uint64_t start = s->n_trace > SIM_TRACE_LINES ? s->n_trace - SIM_TRACE_LINES : 0;
    fprintf(out, "---- trace: last %llu of %llu steps ----\n",
            (unsigned long long)(s->n_trace - start), (unsigned long long)s->n_trace);
    for (uint64_t i = start; i < s->n_trace; i++)
        fprintf(out, "  %s\n", s->trace[i % SIM_TRACE_LINES]);
    fprintf(out, "---- end of trace ----\n");
}

/* Heal everything and require a leader that commits a fresh entry within the bound. */
static void liveness(struct sim *s)
{
    memset(s->link_down, 0, sizeof(s->link_down));
    s->loss_pct = 0;
    s->dup_pct = 0;
    trace(s, "LIVENESS: network healed, all nodes up");
    s->doom_rate = 0;
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        s->nodes[i].doom_at = 0;
        if (!s->nodes[i].up)
            node_start(s, &s->nodes[i]);
    }
    uint64_t start = s->now, idx = 0, term = 0;
    struct node *ld = NULL;
    for (uint32_t t = 0; t < s->o.liveness_ticks && !s->res->failed; t++) {
        s->now++;
        tick_all(s);
        struct node *cur = find_leader(s);
        if (cur && (cur != ld || cur->r.term != term)) {
            ld = cur;
            term = cur->r.term;
            idx = 0;
        }
        if (ld && idx == 0 && propose_value(s, ld, 1, &idx) < 0)
            idx = 0;
        if (ld && idx && ld->r.commit >= idx && ld->r.term == term) {
            s->res->liveness_ticks = (uint32_t)(s->now - start);
            return;
        }
    }
    if (!s->res->failed) {
        fail(s, "liveness: no leader committed a new entry within %u ticks after healing",
             s->o.liveness_ticks);
        s->res->liveness_failed = true;
    }
}

int sim_run(const struct sim_options *o, struct sim_result *res)
{
    struct sim *s = calloc(1, sizeof(*s));
    if (!s)
        return -12;
    int rc = sim_setup(s, o, res);
    for (uint32_t t = 0; rc == 0 && t < o->chaos_ticks && !res->failed; t++) {
        s->now++;
        chaos(s);
        tick_all(s);
    }
    if (rc == 0 && !res->failed)
        liveness(s);
    res->committed = s->committed_len;
    if ((res->failed || o->trace_always) && s->trace)
        print_trace(s);
    sim_teardown(s);
    free(s);
    return rc;
}

int sim_failover_ticks(uint64_t seed, uint32_t n_voters)
{
    struct sim_options o = {.seed = seed, .n_voters = n_voters, .healthy = true};
    struct sim_result res;
    struct sim *s = calloc(1, sizeof(*s));
    int out = -1;
    if (!s || sim_setup(s, &o, &res) < 0)
        goto out;
    struct node *ld = NULL;
    uint64_t idx = 0;
    for (uint32_t t = 0; t < 1000 && !res.failed && !(ld && idx && ld->r.commit >= idx); t++) {
        s->now++;
        tick_all(s);
        if (!ld && (ld = find_leader(s)) != NULL && propose_value(s, ld, 1, &idx) < 0)
            ld = NULL;
    }
    if (!ld || res.failed)
        goto out;
    node_crash(s, ld);
    uint64_t crash_at = s->now, old_term = ld->r.term;
    for (uint32_t t = 0; t < 1000 && !res.failed; t++) {
        s->now++;
        tick_all(s);
        struct node *cur = find_leader(s);
        if (cur && cur->r.term > old_term && cur->r.commit >= cur->r.term_start_index) {
            out = (int)(s->now - crash_at);
            break;
        }
    }
out:
    if (s)
        sim_teardown(s);
    free(s);
    return out;
}
