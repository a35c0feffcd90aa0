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
#include "common/batch.h"
#include "replication/memlog.h"
#include "replication/raft.h"
#include "replication/raftlog.h"
#include "tests/sim/sim_glue.h"

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
#define SIM_MAX_SYNCS 32         /* appends awaiting durability per node (then merged) */
#define SIM_ELECTION_TICKS 10
#define SIM_HEARTBEAT_TICKS 2

struct arena_chunk {
    struct arena_chunk *next;
    size_t used;
    uint8_t data[SIM_ARENA_CHUNK];
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
    uint64_t holds;  /* the log holds the committed entries up to here (check_no_loss) */
    uint64_t complete; /* check_leader found every committed entry up to here in the log */
    uint64_t doom_at; /* crash at this tick (0: not scheduled) */
    uint8_t role;     /* as of its last ready */
    /* glue mode: the disk is the partition log and an hstore on a simulated machine; `log`
     * stays as the checker's view of it */
    struct sim_glue *glue;
    uint64_t hs_seq;                /* the latest hard-state put */
    struct raft_hard_state hs_put;  /* ... what it put */
    struct raft_hard_state hs_durable; /* the latest put known durable */
    struct held {
        struct raft_msg m;
        void *blob; /* the message's entries and their bytes */
    } *held;                        /* messages waiting for the hard state's fsync */
    uint32_t n_held, cap_held;
};

struct net_msg {
    uint64_t at;
    uint64_t seq; /* send order: ties in `at` on one link deliver in this order */
    struct raft_msg m;
    struct raft_entry *ents;
};

/* A committed entry, in the order of the global committed log. */
struct centry {
    uint64_t index;
    uint64_t count;
    uint64_t term;
    uint64_t value;
    uint64_t commit_term; /* the committing leader's term; nondecreasing along the log */
};

/* An entry as first seen on any node, registered under its term: (start, end] and what it
 * held. One leader per term writes each index once, so entries of one term never overlap
 * unless identical. */
struct reg_entry {
    uint64_t start, end;
    uint64_t value;
    uint64_t prev_term;
};

struct term_reg {
    struct reg_entry *e; /* sorted by end; disjoint */
    uint32_t n, cap;
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
    /* --notice after a crash, [lost][to]: due once what the dead node had sent on that link
     * has arrived (a TCP reset follows the data before it); 0: none pending */
    uint64_t notice_at[SIM_MAX_NODES][SIM_MAX_NODES];
    uint32_t n_net;   /* messages in flight */
    uint64_t net_seq;
    struct net_msg net[SIM_NET_MAX]; /* a pool; free slots listed in net_free */
    uint32_t net_free[SIM_NET_MAX], n_free;
    struct link_queue {
        uint64_t head_at; /* due time of heap[0] (UINT64_MAX: empty), scanned per delivery */
        uint32_t *heap;   /* pool slots, a min-heap on (at, seq) */
        uint32_t n, cap;
    } links[SIM_MAX_NODES][SIM_MAX_NODES];
    struct raft_ready rd;
    struct arena_chunk *arena;
    uint64_t next_value;
    /* run parameters drawn from the seed */
    uint32_t loss_pct, dup_pct, max_delay, max_msg_entries, max_inflight;
    uint32_t crash_rate, restart_rate, partition_rate; /* per 10,000 ticks (per node) */
    uint32_t doom_rate; /* per 10,000 elections: crash the new leader within a few ticks */
    bool pre_vote, check_quorum; /* drawn per run: without them elections churn far more */
    uint32_t max_count; /* records per proposed entry: 1 (each index an entry) or up to this */
    struct raftlog_arena *glue_arena; /* glue mode: the raftlogs' read arena */
    struct batch_builder *builder;    /* glue mode: proposals are real record batches */
    /* checker */
    uint32_t *leader_of_term; /* by term, [0, n_terms) */
    uint64_t n_terms;
    struct centry *committed; /* the global committed log, in index order */
    uint64_t n_committed, committed_cap;
    uint64_t committed_len; /* its last index */
    bool logs_changed;      /* since check_no_loss last looked */
    struct term_reg *reg;   /* by term, [0, n_terms) */
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
    /* A hash of any other payload (a configuration, a record batch in glue mode), tagged: eight
     * bytes a step, as the checker hashes every entry several times. */
    const uint8_t *p = e->data;
    uint64_t h = 0xcbf29ce484222325ull ^ e->len, w;
    uint32_t i = 0;
    for (; i + 8 <= e->len; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < e->len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h | 1ull << 63;
}

/* ---- the logs (replication/memlog) --------------------------------------------------- */

/* Term of the entry ending at `index` in l (the snapshot's at its index), 0 if none. */
static uint64_t ml_term(const struct memlog *l, uint64_t index)
{
    return memlog_ops.term((void *)l, index);
}

/* ---- checker --------------------------------------------------------------------------- */

/* Makes the per-term tables cover `term`; false (and the run fails) beyond SIM_MAX_TERMS. */
static bool terms_cover(struct sim *s, uint64_t term)
{
    if (term < s->n_terms)
        return true;
    if (term >= SIM_MAX_TERMS) {
        fail(s, "term %llu beyond the simulator's table", (unsigned long long)term);
        return false;
    }
    uint64_t n = s->n_terms ? s->n_terms : 64;
    while (n <= term)
        n *= 2;
    s->leader_of_term = realloc(s->leader_of_term, n * sizeof(*s->leader_of_term));
    s->reg = realloc(s->reg, n * sizeof(*s->reg));
    if (!s->leader_of_term || !s->reg)
        abort();
    memset(s->leader_of_term + s->n_terms, 0, (n - s->n_terms) * sizeof(*s->leader_of_term));
    memset(s->reg + s->n_terms, 0, (n - s->n_terms) * sizeof(*s->reg));
    s->n_terms = n;
    return true;
}

/* Log matching on indexes: an entry of term t covering any index another node holds under
 * term t must be that very entry (same range, payload and predecessor's term). */
static void check_registry(struct sim *s, struct node *n, const struct raft_entry *e,
                           uint64_t prev_term)
{
    if (!terms_cover(s, e->term))
        return;
    struct term_reg *tr = &s->reg[e->term];
    uint64_t start = e->index - e->count, value = entry_value(e);
    uint32_t lo = 0, hi = tr->n;
    while (lo < hi) { /* first registered entry ending after `start` */
        uint32_t mid = lo + (hi - lo) / 2;
        if (tr->e[mid].end <= start)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < tr->n && tr->e[lo].start < e->index) {
        const struct reg_entry *x = &tr->e[lo];
        if (x->start != start || x->end != e->index || x->value != value ||
            x->prev_term != prev_term)
            fail(s, "log matching: n%u holds (%llu..%llu] term %llu value %llx prev term "
                    "%llu; another node held (%llu..%llu] value %llx prev term %llu", n->id,
                 (unsigned long long)start, (unsigned long long)e->index,
                 (unsigned long long)e->term, (unsigned long long)value,
                 (unsigned long long)prev_term, (unsigned long long)x->start,
                 (unsigned long long)x->end, (unsigned long long)x->value,
                 (unsigned long long)x->prev_term);
        return;
    }
    if (tr->n == tr->cap) {
        tr->cap = tr->cap ? tr->cap * 2 : 16;
        tr->e = realloc(tr->e, tr->cap * sizeof(*tr->e));
        if (!tr->e)
            abort();
    }
    memmove(tr->e + lo + 1, tr->e + lo, (tr->n - lo) * sizeof(*tr->e));
    tr->e[lo] = (struct reg_entry){start, e->index, value, prev_term};
    tr->n++;
}

/* The globally committed entry ending at `index`, or NULL. */
static const struct centry *committed_at(const struct sim *s, uint64_t index)
{
    uint64_t lo = 0, hi = s->n_committed;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (s->committed[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n_committed && s->committed[lo].index == index ? &s->committed[lo] : NULL;
}

static bool entry_is_committed(struct sim *s, const struct raft_entry *e)
{
    const struct centry *c = e ? committed_at(s, e->index) : NULL;
    return c && c->term == e->term && c->count == e->count && c->value == entry_value(e);
}

static bool is_voter_node(const struct node *n)
{
    return raft_config_is_voter(&n->r.config, n->id);
}

static void check_leader(struct sim *s, struct node *n)
{
    uint64_t term = n->r.term;
    if (!terms_cover(s, term))
        return;
    if (s->leader_of_term[term] && s->leader_of_term[term] != n->id) {
        fail(s, "two leaders in term %llu: n%u and n%u", (unsigned long long)term,
             s->leader_of_term[term], n->id);
        return;
    }
    s->leader_of_term[term] = n->id;
    /* Leader completeness (Raft paper, 5.4): an entry committed in term T is in the log of
     * every leader of a term above T. A deposed leader's vote can arrive late, so a leader of an
     * older term may be elected after a newer one committed: only entries committed in terms
     * below this one are required (commit terms grow along the log, so the scan stops there). */
    uint64_t from = n->log.snap_index > n->complete ? n->log.snap_index : n->complete;
    uint64_t lo = 0, hi = s->n_committed;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (s->committed[mid].index <= from)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (uint64_t k = lo; k < s->n_committed; k++) {
        if (s->committed[k].commit_term >= term)
            break;
        const struct raft_entry *e = memlog_get(&n->log, s->committed[k].index);
        if (!entry_is_committed(s, e)) {
            fail(s, "leader completeness: n%u leads term %llu without committed entry %llu "
                    "(term %llu)", n->id, (unsigned long long)term,
                 (unsigned long long)s->committed[k].index,
                 (unsigned long long)s->committed[k].term);
            return;
        }
        n->complete = s->committed[k].index; /* until its log loses entries (node_lost_to) */
    }
}

/* n's log lost or replaced its entries after `index`: what the checker knew it to hold beyond
 * that point no longer stands. */
static void node_lost_to(struct node *n, uint64_t index)
{
    if (n->holds > index)
        n->holds = index;
    if (n->complete > index)
        n->complete = index;
}

/* Adds e to the global committed log, which must end where e starts. */
static void committed_push(struct sim *s, struct node *n, const struct raft_entry *e)
{
    if (e->index - e->count != s->committed_len) {
        fail(s, "n%u committed (%llu..%llu] but the committed log ends at %llu", n->id,
             (unsigned long long)(e->index - e->count), (unsigned long long)e->index,
             (unsigned long long)s->committed_len);
        return;
    }
    if (s->n_committed == s->committed_cap) {
        s->committed_cap = s->committed_cap ? s->committed_cap * 2 : 1024;
        s->committed = realloc(s->committed, s->committed_cap * sizeof(*s->committed));
        if (!s->committed)
            abort();
    }
    /* The first node to commit an entry is its leader (followers learn the commit index
     * from it), so n's term is the term the entry was committed in. */
    s->committed[s->n_committed++] = (struct centry){e->index, e->count, e->term,
                                                     entry_value(e), n->r.term};
    s->committed_len = e->index;
}

static void check_commit(struct sim *s, struct node *n, uint64_t commit)
{
    const struct memlog *l = &n->log;
    if (commit < n->commit) {
        fail(s, "n%u commit index moved back from %llu to %llu", n->id,
             (unsigned long long)n->commit, (unsigned long long)commit);
        return;
    }
    if (commit > l->snap_index && !memlog_get(l, commit)) {
        fail(s, "n%u committed %llu, which ends no entry of its log", n->id,
             (unsigned long long)commit);
        return;
    }
    /* Entries at or below the snapshot point came with a snapshot of committed state. */
    for (uint64_t k = memlog_lower_bound(l, n->commit + 1); k < l->n && !s->res->failed; k++) {
        const struct raft_entry *e = &l->e[k];
        if (e->index > commit)
            break;
        if (e->index <= s->committed_len) {
            if (!entry_is_committed(s, e))
                fail(s, "n%u committed (%llu, term %llu, %u records) but another entry ends "
                        "there or overlaps it in the committed log", n->id,
                     (unsigned long long)e->index, (unsigned long long)e->term, e->count);
        } else {
            committed_push(s, n, e);
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
        if (!raft_config_is_voter(b, a->voters[i]))
            return false;
    return true;
}

/* No committed entry can be lost by a future election: a node whose log lacks the newest
 * committed entry must not be able to collect a quorum of votes on log grounds, counting every
 * voter whose durable log (what it would have after a crash) is no newer than the node's log.
 * Raft's own safety argument gives this at every step; it catches a bad commit as soon as it
 * happens, before any election. Only voters count: a commit a learner helped make fails here.
 * Checked while all nodes agree on the voters (with a change in flight, whose quorum applies
 * is not a fact of one step). */
static void check_no_loss(struct sim *s)
{
    uint64_t c = s->committed_len;
    if (c == 0 || !s->logs_changed)
        return; /* nothing it looks at moved: no log, durable point, config or commit */
    s->logs_changed = false;
    const struct raft_config *cfg = &s->nodes[0].r.config;
    for (uint32_t i = 1; i < s->n_nodes; i++)
        if (!same_voters(cfg, &s->nodes[i].r.config))
            return;
    for (uint32_t k = 0; k < cfg->n_voters; k++) {
        struct node *cand = &s->nodes[cfg->voters[k] - 1];
        const struct memlog *l = &cand->log;
        if (l->snap_index >= c || cand->holds >= c)
            continue;
        if (memlog_last(l) >= c && entry_is_committed(s, memlog_get(l, c))) {
            cand->holds = c; /* until its log loses entries (node_lost_to) */
            continue;
        }
        uint64_t last = memlog_last(l), last_term = l->n ? l->e[l->n - 1].term : l->snap_term;
        uint32_t votes = 0;
        for (uint32_t v = 0; v < cfg->n_voters; v++) {
            const struct memlog *vl = &s->nodes[cfg->voters[v] - 1].log;
            uint64_t dl = memlog_durable_last(vl);
            uint64_t dt = vl->durable_n ? vl->e[vl->durable_n - 1].term : vl->snap_term;
            votes += log_newer_or_equal(last_term, last, dt, dl);
        }
        if (votes >= cfg->n_voters / 2 + 1) {
            fail(s, "committed entry %llu (term %llu) can be lost: n%u lacks it (last %llu "
                    "term %llu) yet %u of %u voters' durable logs would let it win",
                 (unsigned long long)c,
                 (unsigned long long)s->committed[s->n_committed - 1].term, cand->id,
                 (unsigned long long)last, (unsigned long long)last_term, votes,
                 cfg->n_voters);
            return;
        }
    }
}

/* Only voters campaign and lead: a learner, or a node its own configuration removed, that
 * becomes a (pre-)candidate is the LogCabin #205 bug. */
static void check_role(struct sim *s, struct node *n, uint8_t role)
{
    if (role != n->role && role != RAFT_FOLLOWER && !is_voter_node(n))
        fail(s, "n%u became %s but its configuration does not name it a voter", n->id,
             raft_role_name((enum raft_role)role));
    n->role = role;
}

/* ---- network, disk, ready ------------------------------------------------------------- */

/* The message that goes first on a link: earliest `at`, then earliest sent. */
static bool net_before(const struct sim *s, uint32_t a, uint32_t b)
{
    const struct net_msg *x = &s->net[a], *y = &s->net[b];
    return x->at < y->at || (x->at == y->at && x->seq < y->seq);
}

static void link_push(struct sim *s, struct link_queue *q, uint32_t slot)
{
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 64;
        q->heap = realloc(q->heap, q->cap * sizeof(*q->heap));
        if (!q->heap)
            abort();
    }
    uint32_t i = q->n++;
    while (i > 0 && net_before(s, slot, q->heap[(i - 1) / 2])) {
        q->heap[i] = q->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->heap[i] = slot;
    q->head_at = s->net[q->heap[0]].at;
}

static uint32_t link_pop(struct sim *s, struct link_queue *q)
{
    uint32_t top = q->heap[0], last = q->heap[--q->n], i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= q->n)
            break;
        if (c + 1 < q->n && net_before(s, q->heap[c + 1], q->heap[c]))
            c++;
        if (!net_before(s, q->heap[c], last))
            break;
        q->heap[i] = q->heap[c];
        i = c;
    }
    if (q->n)
        q->heap[i] = last;
    q->head_at = q->n ? s->net[q->heap[0]].at : UINT64_MAX;
    return top;
}

/* A copy of a message's entries and their bytes in one block (the bytes may live only as long
 * as the ready: the proposal, the sender's read arena, its config scratch). free() releases
 * it. */
static struct raft_entry *copy_entries(const struct raft_entry *src, uint32_t n)
{
    size_t bytes = n * sizeof(*src);
    for (uint32_t i = 0; i < n; i++)
        bytes += src[i].len;
    struct raft_entry *e = malloc(bytes ? bytes : 1);
    if (!e)
        abort();
    uint8_t *p = (uint8_t *)(e + n);
    for (uint32_t i = 0; i < n; i++) {
        e[i] = src[i];
        if (src[i].len) {
            memcpy(p, src[i].data, src[i].len);
            e[i].data = p;
            p += src[i].len;
        }
    }
    return e;
}

static void net_send(struct sim *s, const struct raft_msg *m)
{
    uint32_t copies = 1 + chance(s, s->dup_pct * 100);
    for (uint32_t c = 0; c < copies; c++) {
        if (chance(s, s->loss_pct * 100) || s->link_down[m->from - 1][m->to - 1] ||
            s->n_net >= SIM_NET_MAX)
            continue;
        uint32_t slot = s->net_free[--s->n_free];
        struct net_msg *nm = &s->net[slot];
        s->n_net++;
        nm->seq = ++s->net_seq;
        nm->m = *m;
        nm->ents = m->n_entries ? copy_entries(m->entries, m->n_entries) : NULL;
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
        link_push(s, &s->links[m->from - 1][m->to - 1], slot);
    }
}

/* Step 2 of a ready: install, truncate, append (with the checks that watch the disk). */
static void apply_log(struct sim *s, struct node *n)
{
    struct raft_ready *rd = &s->rd;
    struct memlog *l = &n->log;
    if (rd->has_snapshot || rd->has_truncate || rd->n_append || rd->commit_changed)
        s->logs_changed = true;
    if (rd->has_snapshot) {
        trace(s, "n%u installs snapshot at %llu (term %llu)", n->id,
              (unsigned long long)rd->snapshot.index, (unsigned long long)rd->snapshot.term);
        n->snap = rd->snapshot;
        memlog_reset(l, rd->snapshot.index, rd->snapshot.term);
        node_lost_to(n, rd->snapshot.index);
        s->res->snapshots_sent++;
    }
    if (rd->has_truncate) {
        uint64_t a = rd->truncate_after;
        if (a < l->snap_index || a >= memlog_last(l) ||
            (a > l->snap_index && !memlog_get(l, a))) {
            fail(s, "n%u asked to truncate after %llu, no boundary of its log before its end",
                 n->id, (unsigned long long)a);
            return;
        }
        /* A node may lose a copy of a globally committed entry it does not know to be
         * committed (a stale leader in a minority can overwrite it; the quorum that committed
         * it keeps it, which check_no_loss watches). What it knows to be committed is fixed. */
        if (a < n->commit)
            fail(s, "n%u erases entries after %llu, below its commit index %llu", n->id,
                 (unsigned long long)a, (unsigned long long)n->commit);
        trace(s, "n%u truncates after %llu", n->id, (unsigned long long)a);
        memlog_truncate_after(l, a);
        node_lost_to(n, a);
    }
    for (uint32_t i = 0; i < rd->n_append; i++) {
        struct raft_entry e = rd->append[i];
        uint64_t start = e.index - e.count;
        if (e.count == 0 || e.index < e.count || start != memlog_last(l)) {
            fail(s, "n%u appends (%llu, %u records) after %llu", n->id,
                 (unsigned long long)e.index, e.count, (unsigned long long)memlog_last(l));
            return;
        }
        if (e.len) /* the bytes may live only as long as the message or the ready */
            e.data = arena_copy(s, e.data, e.len);
        check_registry(s, n, &e, ml_term(l, start));
        if (memlog_append(l, &e) < 0) {
            fail(s, "n%u: memlog refused (%llu, term %llu)", n->id, (unsigned long long)e.index,
                 (unsigned long long)e.term);
            return;
        }
    }
    if (rd->n_append) {
        const struct raft_entry *last = &rd->append[rd->n_append - 1];
        trace(s, "n%u appends %llu..%llu (%u entries) term %llu", n->id,
              (unsigned long long)(rd->append[0].index - rd->append[0].count + 1),
              (unsigned long long)last->index, rd->n_append, (unsigned long long)last->term);
        if (n->glue)
            return; /* the partition log reports durability itself */
        /* Each append gets its own flush, completing in order after 0-3 ticks, so followers
         * acknowledge in small steps as a real disk would let them. */
        uint64_t at = s->now + rnd_below(s, 4);
        if (n->n_syncs == SIM_MAX_SYNCS)
            n->n_syncs--; /* merge into the newest */
        if (n->n_syncs && n->syncs[n->n_syncs - 1].at > at)
            at = n->syncs[n->n_syncs - 1].at;
        n->syncs[n->n_syncs++] = (struct sync){last->index, last->term, at};
    }
}

/* Glue mode: the hard state must be durable before any message of the node leaves (the
 * driver's rule, replication-anchors 6.2); until then its messages wait, in order. */
static void send_or_hold(struct sim *s, struct node *n, const struct raft_msg *m)
{
    bool pending = n->glue && (n->n_held || !sim_glue_hs_durable(n->glue, n->hs_seq));
    if (!pending) {
        net_send(s, m);
        return;
    }
    if (n->n_held == n->cap_held) {
        n->cap_held = n->cap_held ? 2 * n->cap_held : 64;
        n->held = realloc(n->held, n->cap_held * sizeof(*n->held));
        if (!n->held)
            abort();
    }
    struct held *h = &n->held[n->n_held++];
    h->m = *m;
    h->blob = m->n_entries ? copy_entries(m->entries, m->n_entries) : NULL;
    h->m.entries = h->blob;
}

static void drop_held(struct node *n)
{
    for (uint32_t i = 0; i < n->n_held; i++)
        free(n->held[i].blob);
    n->n_held = 0;
}

static void apply_ready(struct sim *s, struct node *n)
{
    struct raft_ready *rd = &s->rd;
    if (n->glue) {
        int rc = sim_glue_apply(n->glue, rd, &n->hs_seq);
        if (rc < 0) {
            fail(s, "n%u: the glue refused a ready: %s", n->id, rl_strerror(rc));
            return;
        }
        if (rd->hard_state_changed)
            n->hs_put = rd->hard_state;
    } else if (rd->hard_state_changed) {
        n->hs = rd->hard_state; /* persisted before any message goes out */
    }
    apply_log(s, n);
    if (s->res->failed)
        return;
    if (rd->role_changed) {
        trace(s, "n%u is %s in term %llu (leader n%u)", n->id, raft_role_name(rd->role),
              (unsigned long long)rd->term, rd->leader);
        if (rd->term > s->res->max_term)
            s->res->max_term = rd->term;
        if (rd->role == RAFT_LEADER && n->role != RAFT_LEADER) {
            check_leader(s, n);
            /* The moments after an election, when the new leader is still finishing its
             * predecessors' entries, are where commit-rule bugs show: strike there often. */
            if (s->doom_rate && chance(s, s->doom_rate))
                n->doom_at = s->now + 1 + rnd_below(s, 6);
        }
    }
    check_role(s, n, rd->role);
    if (rd->commit_changed)
        check_commit(s, n, rd->commit_index);
    for (uint32_t i = 0; i < rd->n_msgs; i++)
        send_or_hold(s, n, &rd->msgs[i]);
    if (n->glue)
        sim_glue_ready_done(n->glue);
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

/* Whether `e` was written under its term somewhere before (the same range and bytes). */
static bool registered(struct sim *s, const struct raft_entry *e)
{
    if (e->term >= s->n_terms)
        return false;
    const struct term_reg *tr = &s->reg[e->term];
    for (uint32_t i = 0; i < tr->n; i++)
        if (tr->e[i].end == e->index)
            return tr->e[i].start == e->index - e->count && tr->e[i].value == entry_value(e);
    return false;
}

/* Glue mode, at a restart: the recovered partition log must begin with every entry the node
 * had made durable (byte for byte), and whatever follows must be entries written under their
 * terms before (a power cut may bring back unsynced entries, or a tail whose truncation had
 * not reached the disk: both are states the log was in). The checker's copy becomes it. */
static void glue_recover_log(struct sim *s, struct node *n)
{
    struct memlog *l = &n->log; /* cut to its durable entries at the crash */
    struct raftlog *rl = sim_glue_log(n->glue);
    uint64_t leo = raftlog_ops.last_index(rl), k = 0;
    struct raft_entry got[64];
    for (uint64_t lo = l->snap_index + 1; lo <= leo && !s->res->failed;) {
        int m = raftlog_ops.entries(rl, lo, leo, 1u << 20, got, 64);
        if (m <= 0) {
            fail(s, "n%u: the recovered partition log cannot be read at %llu: %s", n->id,
                 (unsigned long long)lo, rl_strerror(m));
            break;
        }
        for (int j = 0; j < m && !s->res->failed; j++, k++) {
            const struct raft_entry *e = k < l->n ? &l->e[k] : NULL;
            if (e && (got[j].index != e->index || got[j].term != e->term ||
                      got[j].len != e->len ||
                      (e->len && memcmp(got[j].data, e->data, e->len) != 0))) {
                fail(s, "n%u: the partition log lost or changed durable entry %llu", n->id,
                     (unsigned long long)e->index);
            } else if (!e) {
                struct raft_entry c = got[j];
                if (!registered(s, &c))
                    fail(s, "n%u: the partition log came back with (%llu, term %llu), never "
                            "written", n->id, (unsigned long long)c.index,
                         (unsigned long long)c.term);
                c.data = c.len ? arena_copy(s, c.data, c.len) : NULL;
                if (!s->res->failed && memlog_append(l, &c) < 0)
                    fail(s, "n%u: recovered entries do not follow one another", n->id);
            }
            lo = got[j].index + 1;
        }
        sim_glue_ready_done(n->glue);
    }
    if (!s->res->failed && k < l->n)
        fail(s, "n%u: the partition log came back ending at %llu, before its durable end %llu",
             n->id, (unsigned long long)leo, (unsigned long long)memlog_last(l));
    memlog_set_durable(l, memlog_last(l));
}

/* Glue mode: opens the node's disk again; the hard state found must be at least what was
 * known durable, and at most the last put. */
static bool glue_start(struct sim *s, struct node *n, struct raft_hard_state *hs)
{
    int rc = sim_glue_start(n->glue, hs);
    if (rc < 0) {
        fail(s, "n%u: the glue did not open after a power cut: %s", n->id, rl_strerror(rc));
        return false;
    }
    const struct raft_hard_state *d = &n->hs_durable, *p = &n->hs_put;
    if (hs->term < d->term || hs->term > p->term ||
        (hs->term == d->term && d->vote != RAFT_NONE && hs->vote != d->vote)) {
        fail(s, "n%u: hard state came back as term %llu vote n%u; durable was term %llu vote "
                "n%u, last put term %llu vote n%u", n->id, (unsigned long long)hs->term,
             hs->vote, (unsigned long long)d->term, d->vote, (unsigned long long)p->term,
             p->vote);
        return false;
    }
    n->hs_durable = n->hs_put = *hs;
    n->hs_seq = 0;
    glue_recover_log(s, n);
    return !s->res->failed;
}

static void node_start(struct sim *s, struct node *n)
{
    struct raft_hard_state hs = n->hs;
    struct raft_options opt = {
        .id = n->id,
        .election_ticks = SIM_ELECTION_TICKS,
        .heartbeat_ticks = SIM_HEARTBEAT_TICKS,
        .max_msg_entries = s->max_msg_entries,
        .max_inflight = s->max_inflight,
        .max_uncommitted = 64 * (s->max_count > 1 ? 8 : 1),
        .seed = rnd(s),
        .pre_vote = s->pre_vote,
        .check_quorum = s->check_quorum,
        .log_ops = &memlog_ops,
        .log_ctx = &n->log,
    };
    if (n->glue) {
        if (!glue_start(s, n, &hs))
            return;
        opt.log_ops = &raftlog_ops;
        opt.log_ctx = sim_glue_log(n->glue);
    }
    int rc = raft_init(&n->r, &opt, &hs, &n->snap);
    if (rc < 0)
        fail(s, "n%u: raft_init: %s", n->id, rl_strerror(rc));
    n->up = true;
    s->logs_changed = true;
    n->commit = n->r.commit;
    n->role = RAFT_FOLLOWER;
    n->n_syncs = 0;
}

/* --notice: the transport of node `to` saw its connection to `lost` drop. */
static void notice_one(struct sim *s, struct node *to, uint32_t lost, const char *why)
{
    if (!to->up || to->r.leader != lost || to->id == lost)
        return;
    trace(s, "n%u hears its connection to leader n%u was lost (%s)", to->id, lost, why);
    int rc = raft_leader_unreachable(&to->r, lost, &s->rd);
    after_call(s, to, rc, "leader unreachable");
}

/* --notice: node `lost` died; every node hears of it once the messages the dead node sent it
 * before dying have arrived (rare stragglers, a model of a reconnect, may come later). */
static void notice_crash(struct sim *s, uint32_t lost)
{
    for (uint32_t i = 0; i < s->n_nodes && s->o.notice; i++)
        if (i != lost - 1)
            s->notice_at[lost - 1][i] = s->link_at[lost - 1][i] > s->now
                                            ? s->link_at[lost - 1][i] : s->now;
}

/* Delivers the crash notices that are due (after the tick's deliveries). */
static void deliver_notices(struct sim *s)
{
    for (uint32_t a = 0; a < s->n_nodes && s->o.notice; a++)
        for (uint32_t b = 0; b < s->n_nodes && !s->res->failed; b++)
            if (s->notice_at[a][b] && s->notice_at[a][b] <= s->now) {
                s->notice_at[a][b] = 0;
                notice_one(s, &s->nodes[b], a + 1, "crash");
            }
}

static void node_crash(struct sim *s, struct node *n)
{
    struct memlog *l = &n->log;
    trace(s, "n%u CRASHES (log %llu, durable %llu)", n->id, (unsigned long long)memlog_last(l),
          (unsigned long long)memlog_durable_last(l));
    n->up = false;
    if (n->glue) {
        drop_held(n);
        sim_glue_crash(n->glue);
    }
    memlog_crash(l); /* what was not yet durable is gone (or, on the glue, may be) */
    s->logs_changed = true;
    node_lost_to(n, memlog_last(l));
    n->n_syncs = 0;
    s->res->crashes++;
    notice_crash(s, n->id);
}

/* Glue mode: the disk's completions: hard state made durable releases held messages; appends
 * made durable are reported to the core. */
static void glue_syncs(struct sim *s, struct node *n)
{
    sim_glue_poll(n->glue);
    if (n->n_held && sim_glue_hs_durable(n->glue, n->hs_seq)) {
        n->hs_durable = n->hs_put;
        for (uint32_t i = 0; i < n->n_held; i++)
            net_send(s, &n->held[i].m);
        drop_held(n);
    } else if (sim_glue_hs_durable(n->glue, n->hs_seq)) {
        n->hs_durable = n->hs_put;
    }
    uint64_t index, term;
    while (!s->res->failed && n->up && sim_glue_take_durable(n->glue, &index, &term)) {
        const struct raft_entry *e = memlog_get(&n->log, index);
        if (e && e->term == term) {
            memlog_set_durable(&n->log, index);
            s->logs_changed = true;
        }
        int rc = raft_persisted(&n->r, index, term, &s->rd);
        after_call(s, n, rc, "persisted");
    }
}

static void do_syncs(struct sim *s, struct node *n)
{
    struct memlog *l = &n->log;
    if (n->glue) {
        glue_syncs(s, n);
        return;
    }
    while (n->n_syncs && n->syncs[0].at <= s->now && n->up && !s->res->failed) {
        struct sync sy = n->syncs[0];
        memmove(n->syncs, n->syncs + 1, --n->n_syncs * sizeof(n->syncs[0]));
        const struct raft_entry *e = memlog_get(l, sy.index);
        if (!e || e->term != sy.term)
            continue; /* truncated or replaced since: nothing of it to report */
        memlog_set_durable(l, sy.index);
        s->logs_changed = true;
        int rc = raft_persisted(&n->r, sy.index, sy.term, &s->rd);
        after_call(s, n, rc, "persisted");
    }
}

static void deliver_due(struct sim *s)
{
    /* Deliver due messages one at a time, choosing at random among the links that have one
     * due but keeping each link in order (a link is a TCP connection: only stragglers and
     * duplicates, which net_send gives later times, arrive out of order). Bounded by what is
     * in flight now. */
    for (uint32_t budget = s->n_net; budget > 0 && !s->res->failed; budget--) {
        struct link_queue *cand[SIM_MAX_NODES * SIM_MAX_NODES];
        uint32_t n_cand = 0;
        for (uint32_t a = 0; a < s->n_nodes; a++)
            for (uint32_t b = 0; b < s->n_nodes; b++) {
                struct link_queue *q = &s->links[a][b];
                if (q->head_at <= s->now)
                    cand[n_cand++] = q;
            }
        if (n_cand == 0)
            return;
        uint32_t k = link_pop(s, cand[rnd_below(s, n_cand)]);
        struct net_msg nm = s->net[k];
        s->net_free[s->n_free++] = k;
        s->n_net--;
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

/* Proposes `n` entries, each with a fresh value and a record count drawn for the run (1, or
 * 1..max_count with a bias to small batches). *last gets the last one's index. */
/* Glue mode: the entry is a real record batch of `count` records carrying v, stamped as the
 * entry that starts at `base` in the leader's term (as repl_propose stamps). */
static struct raft_entry batch_entry(struct sim *s, uint64_t v, uint32_t count, uint64_t base,
                                     uint64_t term)
{
    batch_builder_reset(s->builder, -1, -1, -1);
    for (uint32_t r = 0; r < count; r++) {
        uint64_t val[2] = {v, r};
        struct batch_record_in rec = {.value = val, .value_len = sizeof(val),
                                      .timestamp = (int64_t)v};
        if (batch_builder_add(s->builder, &rec) != 0)
            abort();
    }
    const uint8_t *out;
    int len = batch_builder_finish(s->builder, &out);
    if (len <= 0)
        abort();
    uint8_t *copy = arena_copy(s, out, (size_t)len);
    raftlog_stamp(copy, base, term);
    return (struct raft_entry){.data = copy, .len = (uint32_t)len, .count = count};
}

static int propose_value(struct sim *s, struct node *ld, uint32_t n, uint64_t *last)
{
    struct raft_entry e[8];
    uint64_t base = ld->r.last_index;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t v = ++s->next_value;
        uint32_t count = 1;
        if (s->max_count > 1)
            count = chance(s, 3000) ? 1 : 1 + rnd_below(s, 1 + rnd_below(s, s->max_count));
        if (s->builder)
            e[i] = batch_entry(s, v, count, base, ld->r.term);
        else
            e[i] = (struct raft_entry){.data = arena_copy(s, &v, 8), .len = 8, .count = count};
        base += count;
    }
    int rc = raft_propose(&ld->r, e, n, &s->rd, last);
    trace(s, "n%u propose %u entries (values from %llu): %s", ld->id, n,
          (unsigned long long)(s->next_value - n + 1), rl_error_name(rc));
    after_call(s, ld, rc, "propose");
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
    /* A cut in either direction breaks the TCP connection between the two nodes. */
    for (uint32_t a = 0; a < s->n_nodes && s->o.notice; a++)
        for (uint32_t b = 0; b < s->n_nodes && !s->res->failed; b++)
            if (s->link_down[a][b] || s->link_down[b][a])
                notice_one(s, &s->nodes[b], a + 1, "partition");
}

/* --notice: a connection that merely flapped: a follower hears its (healthy) leader's
 * connection was lost. Pre-vote and check-quorum must keep the leader in place. */
static void flap(struct sim *s)
{
    struct node *n = &s->nodes[rnd_below(s, s->n_nodes)];
    if (n->up && n->r.leader != RAFT_NONE)
        notice_one(s, n, n->r.leader, "flap");
}

/* One membership change toward a random node, keeping the voters within one of the initial
 * count: a non-member joins as a learner (mostly) or straight as a voter, a learner is promoted
 * (refused while it lags) or removed, a voter is removed. */
static void membership(struct sim *s, struct node *ld)
{
    static const char *const names[] = {"add voter", "remove voter", "add learner",
                                        "promote learner", "remove learner"};
    uint32_t target = 1 + rnd_below(s, s->n_nodes);
    const struct raft_config *c = &ld->r.config;
    bool voter = raft_config_is_voter(c, target), learner = raft_config_is_learner(c, target);
    uint32_t nv = c->n_voters;
    enum raft_conf_op op;
    if (voter && nv > s->o.n_voters - 1 && nv > 1)
        op = RAFT_CONF_REMOVE_VOTER;
    else if (learner)
        op = nv < s->o.n_voters + 1 && chance(s, 8000) ? RAFT_CONF_PROMOTE_LEARNER
                                                       : RAFT_CONF_REMOVE_LEARNER;
    else if (!voter && nv < s->o.n_voters + 1)
        op = chance(s, 7500) ? RAFT_CONF_ADD_LEARNER : RAFT_CONF_ADD_VOTER;
    else
        return;
    uint64_t idx = 0;
    int rc = raft_propose_conf_change(&ld->r, op, target, &s->rd, &idx);
    trace(s, "n%u proposes %s n%u: %s (index %llu)", ld->id, names[op], target,
          rl_error_name(rc), (unsigned long long)idx);
    s->res->conf_changes += rc == 0;
    after_call(s, ld, rc, "conf change");
}

static void compact(struct sim *s, struct node *n)
{
    if (n->glue)
        return; /* the partition log takes no snapshot yet (raftlog.h) */
    uint64_t hi = n->r.commit < n->r.durable_index ? n->r.commit : n->r.durable_index;
    if (hi < n->log.snap_index + 8)
        return;
    uint64_t term, idx = memlog_ops.boundary(&n->log, hi - rnd_below(s, 4), UINT64_MAX, &term);
    if (idx <= n->log.snap_index)
        return;
    struct raft_snapshot_meta meta;
    int rc = raft_compact(&n->r, idx, &meta);
    if (rc < 0) {
        fail(s, "n%u: compact %llu: %s", n->id, (unsigned long long)idx, rl_strerror(rc));
        return;
    }
    memlog_compact(&n->log, idx);
    s->logs_changed = true;
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
    if (s->o.notice && chance(s, 50))
        flap(s);
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
    deliver_notices(s);
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
    for (uint32_t i = 0; i < SIM_NET_MAX; i++)
        s->net_free[i] = SIM_NET_MAX - 1 - i;
    for (uint32_t a = 0; a < SIM_MAX_NODES; a++)
        for (uint32_t b = 0; b < SIM_MAX_NODES; b++)
            s->links[a][b].head_at = UINT64_MAX;
    s->n_free = SIM_NET_MAX;
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
    /* A third of the runs give every entry one index, as before entries spanned several. */
    s->max_count = (uint32_t[]){1, 8, 64}[rnd_below(s, 3)];
    if (o->healthy) {
        s->loss_pct = s->dup_pct = 0;
        s->max_delay = 1;
        s->max_msg_entries = 64;
        s->max_inflight = RAFT_MAX_INFLIGHT;
        s->crash_rate = s->partition_rate = s->doom_rate = 0;
        s->pre_vote = s->check_quorum = true;
    }
    if (o->trace)
        s->trace = calloc(SIM_TRACE_LINES, sizeof(*s->trace));
    if (o->trace && !s->trace)
        return -12;
    struct raft_config cfg = {.n_voters = o->n_voters};
    for (uint32_t i = 0; i < o->n_voters; i++)
        cfg.voters[i] = i + 1;
    if (o->glue) {
        unsigned keep = (unsigned[]){0, 300, 900}[rnd_below(s, 3)]; /* unsynced sectors kept */
        s->glue_arena = raftlog_arena_create(8u << 20);
        s->builder = batch_builder_create(1u << 20, BATCH_CODEC_NONE, 0);
        if (!s->glue_arena || !s->builder)
            return -12;
        for (uint32_t i = 0; i < s->n_nodes; i++)
            if (sim_glue_create(rnd(s), keep, s->glue_arena, &s->nodes[i].glue) < 0)
                return -12;
    }
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        struct node *n = &s->nodes[i];
        n->id = i + 1;
        memlog_init(&n->log, 0, 0);
        n->snap.config = cfg;
        node_start(s, n);
    }
    trace(s, "run: %u voters + 1 spare, loss %u%%, dup %u%%, delay 0-%u, %u entries/msg, "
             "window %u, crash/restart/partition per 10k ticks %u/%u/%u, new leader crash "
             "%u/10k, pre-vote %d, check-quorum %d, records per entry 1-%u", o->n_voters,
          s->loss_pct, s->dup_pct, s->max_delay, s->max_msg_entries, s->max_inflight,
          s->crash_rate, s->restart_rate, s->partition_rate, s->doom_rate, s->pre_vote,
          s->check_quorum, s->max_count);
    return 0;
}

static void sim_teardown(struct sim *s)
{
    for (uint32_t a = 0; a < SIM_MAX_NODES; a++)
        for (uint32_t b = 0; b < SIM_MAX_NODES; b++) {
            struct link_queue *q = &s->links[a][b];
            for (uint32_t i = 0; i < q->n; i++)
                free(s->net[q->heap[i]].ents);
            free(q->heap);
        }
    for (uint32_t i = 0; i < s->n_nodes; i++) {
        struct node *n = &s->nodes[i];
        memlog_free(&n->log);
        sim_glue_destroy(n->glue);
        drop_held(n);
        free(n->held);
    }
    raftlog_arena_destroy(s->glue_arena);
    if (s->builder)
        batch_builder_destroy(s->builder);
    while (s->arena) {
        struct arena_chunk *c = s->arena;
        s->arena = c->next;
        free(c);
    }
    free(s->leader_of_term);
    for (uint64_t t = 0; t < s->n_terms; t++)
        free(s->reg[t].e);
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
        if (r->config.n_learners)
            fprintf(out, " learners");
        for (uint32_t v = 0; v < r->config.n_learners; v++)
            fprintf(out, " n%u", r->config.learners[v]);
        fprintf(out, " (at %llu)\n", (unsigned long long)r->config_index);
        for (uint32_t p = 0; r->role == RAFT_LEADER && p < r->n_progress; p++) {
            const struct raft_progress *pr = &r->progress[p];
            fprintf(out, "      n%u%s state %u match %llu next %llu inflight %u probe_sent "
                         "%u\n", pr->id, pr->voter ? "" : " (learner)", pr->state,
                    (unsigned long long)pr->match, (unsigned long long)pr->next,
                    pr->infl_count, pr->probe_sent);
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

/* One run's state (about a megabyte), kept for the next run: million-seed runs would otherwise
 * spend a good part of their time faulting fresh pages in. Single-threaded, like the rest. */
static struct sim *sim_alloc(void)
{
    static struct sim *cached;
    if (!cached && !(cached = malloc(sizeof(*cached))))
        return NULL;
    memset(cached, 0, sizeof(*cached));
    return cached;
}

int sim_run(const struct sim_options *o, struct sim_result *res)
{
    struct sim *s = sim_alloc();
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
    return rc;
}

int sim_failover_ticks(uint64_t seed, uint32_t n_voters, bool notice)
{
    struct sim_options o = {.seed = seed, .n_voters = n_voters, .healthy = true,
                            .notice = notice};
    struct sim_result res;
    struct sim *s = sim_alloc();
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
    return out;
}
