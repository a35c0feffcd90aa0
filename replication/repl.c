/*
 * repl: the replication driver of one loop (see repl.h for what it does with each ready and the
 * transport contract).
 *
 * Structures: groups in a chained hash table by id; one `struct node_out` per peer node holding
 * this turn's encoded messages and the heartbeats and replies to coalesce at flush; per group,
 * messages held until its hard state is durable (`held`, records prefixed by their node), and
 * the heartbeat state that lets a frame carry a group's id alone:
 *   leader side (peers[]): the last full heartbeat sent to each follower and the last full
 *     reply from it (with its commit index); an id-only heartbeat goes only to a follower whose
 *     last full reply was in this term with a commit index at least the one it would carry, so
 *     a lost full heartbeat can never leave a follower expanding a stale term;
 *   follower side: the last full heartbeat from its leader (to expand id-only ones) and the last
 *     full reply sent (to send id-only replies).
 */
#include "replication/repl.h"

#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "replication/hstore.h"
#include "replication/raftlog.h"
#include "replication/rwire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define REPL_BUCKETS_MIN 64

struct peer {
    uint32_t node;
    bool sent_valid, ask_full_resp;
    uint64_t sent_term, sent_commit;
    bool recv_valid;
    uint64_t recv_term, recv_index, recv_hint, recv_commit;
    uint8_t recv_flags;
};

struct repl_group {
    uint64_t id;
    struct repl *r;
    struct repl_group *hnext;
    struct raft raft;
    struct raft_options opt;
    struct raft_snapshot_meta snap;
    const struct repl_log_ops *log;
    void (*on_commit)(void *ctx, struct repl_group *g, uint64_t commit);
    void (*on_role)(void *ctx, struct repl_group *g, enum raft_role role, uint64_t term,
                    uint32_t leader);
    void (*on_durable)(void *ctx, struct repl_group *g, uint64_t index);
    void *ctx;
    int failed;
    uint64_t hs_seq;         /* its latest hard-state put */
    struct rwire_buf held;   /* (u32 node, u32 len, record) while hs_seq is not durable */
    bool in_held, in_durable;
    struct repl_group *next_held, *next_durable;
    /* follower side */
    uint32_t hb_from;
    bool hb_valid, resp_valid, resp_ask_full;
    uint64_t hb_term, hb_commit;
    uint32_t resp_to;
    uint64_t resp_term, resp_index, resp_hint, resp_commit;
    uint8_t resp_flags;
    /* leader side */
    uint32_t n_peers;
    struct peer peers[RAFT_MAX_MEMBERS];
};

struct hb_item {
    uint64_t group;
    uint64_t term, commit;
};

struct hbr_item {
    uint64_t group;
    uint64_t term, index, hint, commit;
    uint8_t flags;
    bool need_full;
};

struct node_out {
    uint32_t node;
    bool paused;    /* flow control: appends to it wait until its backlog drains */
    size_t backlog; /* the transport's bytes queued for it, as of the last flush */
    /* this turn's frame to it: header and RWIRE_MSG records, encoded in place so that flush
     * only adds the heartbeats and hands it over (no copy into another buffer) */
    struct rwire_buf msgs;
    struct hb_item *hbs;
    uint32_t n_hbs, cap_hbs;
    struct hbr_item *hbrs;
    uint32_t n_hbrs, cap_hbrs;
};

struct repl {
    uint32_t self;
    struct hstore *hs;
    struct repl_transport t;
    struct repl_group **buckets;
    uint32_t n_buckets, n_groups;
    struct node_out *nodes;
    uint32_t n_nodes, cap_nodes;
    struct repl_group *held_list, *durable_list;
    struct rwire_reader reader;
    struct repl_stats stats;
    struct raft_counters gone; /* the counters of removed groups */
    struct raft_ready rd;
};

static void counters_add(struct raft_counters *to, const struct raft_counters *c)
{
    to->appends_sent += c->appends_sent;
    to->probe_appends += c->probe_appends;
    to->entries_sent += c->entries_sent;
    to->entries_resent += c->entries_resent;
    to->bytes_resent += c->bytes_resent;
    to->stall_probes += c->stall_probes;
    to->flow_paused += c->flow_paused;
}

/* ---- tables ---------------------------------------------------------------------------- */

static uint32_t bucket_of(const struct repl *r, uint64_t id)
{
    uint64_t x = id * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x >> 32) & (r->n_buckets - 1);
}

struct repl_group *repl_group_find(const struct repl *r, uint64_t id)
{
    for (struct repl_group *g = r->buckets[bucket_of(r, id)]; g; g = g->hnext)
        if (g->id == id)
            return g;
    return NULL;
}

static int rehash(struct repl *r)
{
    uint32_t nb = r->n_buckets * 2;
    struct repl_group **b = calloc(nb, sizeof(*b));
    if (!b)
        return -ENOMEM;
    struct repl_group **old = r->buckets;
    uint32_t old_n = r->n_buckets;
    r->buckets = b;
    r->n_buckets = nb;
    for (uint32_t i = 0; i < old_n; i++)
        for (struct repl_group *g = old[i], *next; g; g = next) {
            next = g->hnext;
            uint32_t k = bucket_of(r, g->id);
            g->hnext = b[k];
            b[k] = g;
        }
    free(old);
    return 0;
}

static struct node_out *node_out(struct repl *r, uint32_t node)
{
    for (uint32_t i = 0; i < r->n_nodes; i++)
        if (r->nodes[i].node == node)
            return &r->nodes[i];
    if (r->n_nodes == r->cap_nodes) {
        uint32_t cap = r->cap_nodes ? r->cap_nodes * 2 : 8;
        struct node_out *n = realloc(r->nodes, cap * sizeof(*n));
        if (!n)
            return NULL;
        r->nodes = n;
        r->cap_nodes = cap;
    }
    struct node_out *o = &r->nodes[r->n_nodes++];
    memset(o, 0, sizeof(*o));
    o->node = node;
    return o;
}

/* The frame to o, begun (header written) when this turn has put nothing in it yet. */
static struct rwire_buf *node_frame(struct repl *r, struct node_out *o)
{
    if (o->msgs.len == 0 && rwire_begin_at(&o->msgs, r->t.headroom, r->self, o->node) < 0)
        return NULL;
    return &o->msgs;
}

/* Payload bytes of the messages for `to` that the core has put in the ready it is filling
 * (one call can queue a whole window of appends before any of them is encoded). */
static size_t ready_bytes_to(const struct raft_ready *rd, uint32_t to)
{
    size_t n = 0;
    for (uint32_t i = 0; i < rd->n_msgs; i++)
        if (rd->msgs[i].to == to)
            for (uint32_t k = 0; k < rd->msgs[i].n_entries; k++)
                n += rd->msgs[i].entries[k].len;
    return n;
}

/* The raft core's flow-control question (raft_options.may_send): may appends go to `to`?
 * No once what the transport holds for it plus this turn's frame reaches
 * REPL_FLOW_PAUSE_BYTES; yes again only when the transport's backlog has drained to
 * REPL_FLOW_RESUME_BYTES (flow_refresh). The gap between the two keeps a node from flapping
 * between paused and running on every frame. */
static bool flow_may_send(void *ctx, uint32_t to)
{
    struct repl *r = ctx;
    struct node_out *o = node_out(r, to);
    if (!o)
        return true;
    if (!o->paused &&
        o->backlog + o->msgs.len + ready_bytes_to(&r->rd, to) >= REPL_FLOW_PAUSE_BYTES) {
        o->paused = true;
        r->stats.flow_pauses++;
    }
    return !o->paused;
}

static int grow(void **p, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    uint32_t c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, (size_t)c * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static struct peer *peer_of(struct repl_group *g, uint32_t node)
{
    for (uint32_t i = 0; i < g->n_peers; i++)
        if (g->peers[i].node == node)
            return &g->peers[i];
    if (g->n_peers == RAFT_MAX_MEMBERS)
        g->n_peers = 0; /* members changed past the table: start over (full heartbeats) */
    struct peer *p = &g->peers[g->n_peers++];
    memset(p, 0, sizeof(*p));
    p->node = node;
    return p;
}

/* ---- create, destroy, groups ---------------------------------------------------------- */

struct repl *repl_create(uint32_t self, struct hstore *hs, const struct repl_transport *t)
{
    struct repl *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->self = self;
    r->hs = hs;
    r->t = *t;
    r->n_buckets = REPL_BUCKETS_MIN;
    r->buckets = calloc(r->n_buckets, sizeof(*r->buckets));
    if (!r->buckets) {
        free(r);
        return NULL;
    }
    return r;
}

static void group_free(struct repl_group *g)
{
    rwire_buf_free(&g->held);
    free(g);
}

void repl_destroy(struct repl *r)
{
    if (!r)
        return;
    for (uint32_t i = 0; i < r->n_buckets; i++)
        for (struct repl_group *g = r->buckets[i], *next; g; g = next) {
            next = g->hnext;
            group_free(g);
        }
    for (uint32_t i = 0; i < r->n_nodes; i++) {
        rwire_buf_free(&r->nodes[i].msgs);
        free(r->nodes[i].hbs);
        free(r->nodes[i].hbrs);
    }
    free(r->nodes);
    free(r->buckets);
    free(r);
}

int repl_group_add(struct repl *r, const struct repl_group_options *o, struct repl_group **out)
{
    if (repl_group_find(r, o->id))
        return RL_E_EXISTS;
    if (o->raft.id != r->self || !o->log)
        return RL_E_INVALID_ARGUMENT;
    if (r->n_groups + 1 > r->n_buckets && rehash(r) < 0)
        return -ENOMEM;
    struct repl_group *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->id = o->id;
    g->r = r;
    g->opt = o->raft;
    g->snap = o->snap;
    g->log = o->log;
    g->on_commit = o->on_commit;
    g->on_role = o->on_role;
    g->on_durable = o->on_durable;
    g->ctx = o->ctx;
    g->opt.may_send = flow_may_send;
    g->opt.flow_ctx = r;
    struct raft_hard_state hs = hstore_get(r->hs, o->id);
    int rc = raft_init(&g->raft, &g->opt, &hs, &g->snap);
    if (rc < 0) {
        free(g);
        return rc;
    }
    g->log->set_commit(g->opt.log_ctx, raft_commit(&g->raft));
    uint32_t k = bucket_of(r, g->id);
    g->hnext = r->buckets[k];
    r->buckets[k] = g;
    r->n_groups++;
    *out = g;
    return 0;
}

static void list_remove(struct repl_group **head, struct repl_group *g, bool held)
{
    for (struct repl_group **p = head; *p; p = held ? &(*p)->next_held : &(*p)->next_durable)
        if (*p == g) {
            *p = held ? g->next_held : g->next_durable;
            return;
        }
}

void repl_group_remove(struct repl *r, struct repl_group *g)
{
    for (struct repl_group **p = &r->buckets[bucket_of(r, g->id)]; *p; p = &(*p)->hnext)
        if (*p == g) {
            *p = g->hnext;
            break;
        }
    if (g->in_held)
        list_remove(&r->held_list, g, true);
    if (g->in_durable)
        list_remove(&r->durable_list, g, false);
    counters_add(&r->gone, &g->raft.ctr);
    r->n_groups--;
    group_free(g); /* heartbeat items naming it are dropped at flush: its id finds nothing */
}

uint64_t repl_group_id(const struct repl_group *g)
{
    return g->id;
}

const struct raft *repl_group_raft(const struct repl_group *g)
{
    return &g->raft;
}

int repl_group_failed(const struct repl_group *g)
{
    return g->failed;
}

void repl_group_log_durable(struct repl_group *g)
{
    if (g->in_durable)
        return;
    g->in_durable = true;
    g->next_durable = g->r->durable_list;
    g->r->durable_list = g;
}

/* ---- outgoing messages ---------------------------------------------------------------- */

static bool hs_pending(const struct repl_group *g)
{
    return g->hs_seq > hstore_durable_seq(g->r->hs);
}

/* Holds one record for `node` until the group's hard state is durable. */
static int hold(struct repl_group *g, uint32_t node, const struct rwire_buf *rec)
{
    struct rwire_buf *h = &g->held;
    uint8_t hdr[8];
    memcpy(hdr, &node, 4);
    uint32_t len = (uint32_t)rec->len;
    memcpy(hdr + 4, &len, 4);
    int rc = rwire_put_raw(h, hdr, sizeof(hdr), 0);
    if (rc == 0)
        rc = rwire_put_raw(h, rec->p, rec->len, 1);
    if (rc == 0 && !g->in_held) {
        g->in_held = true;
        g->next_held = g->r->held_list;
        g->r->held_list = g;
    }
    g->r->stats.held_msgs++;
    return rc;
}

/* Queues (or holds) one message of the ready. Heartbeats and their replies wait in lists to be
 * coalesced at flush; everything else is encoded now, while its entries' bytes are valid. */
static int send_msg(struct repl *r, struct repl_group *g, const struct raft_msg *m)
{
    bool held = hs_pending(g) || g->in_held; /* keep the group's order behind held ones */
    struct node_out *o = held ? NULL : node_out(r, m->to);
    if (!held && !o)
        return -ENOMEM;
    if (!held && m->type == RAFT_MSG_HEARTBEAT) {
        if (grow((void **)&o->hbs, &o->cap_hbs, o->n_hbs + 1, sizeof(*o->hbs)) < 0)
            return -ENOMEM;
        o->hbs[o->n_hbs++] = (struct hb_item){g->id, m->term, m->commit};
        return 0;
    }
    if (!held && m->type == RAFT_MSG_HEARTBEAT_RESP) {
        if (grow((void **)&o->hbrs, &o->cap_hbrs, o->n_hbrs + 1, sizeof(*o->hbrs)) < 0)
            return -ENOMEM;
        o->hbrs[o->n_hbrs++] = (struct hbr_item){g->id, m->term, m->index, m->hint_index,
                                                 raft_commit(&g->raft), m->flags, false};
        return 0;
    }
    if (!held) {
        struct rwire_buf *f = node_frame(r, o);
        r->stats.msgs_sent++;
        return f ? rwire_put_msg(f, g->id, m) : -ENOMEM;
    }
    struct rwire_buf rec = {0}; /* a held message travels whole: heartbeats in full */
    int rc;
    if (m->type == RAFT_MSG_HEARTBEAT)
        rc = rwire_put_hb(&rec, g->id, RWIRE_FULL, m->term, m->commit);
    else if (m->type == RAFT_MSG_HEARTBEAT_RESP)
        rc = rwire_put_hb_resp(&rec, g->id, RWIRE_FULL, m->term, m->index, m->hint_index,
                               raft_commit(&g->raft), m->flags);
    else
        rc = rwire_put_msg(&rec, g->id, m);
    if (rc == 0)
        rc = hold(g, m->to, &rec);
    rwire_buf_free(&rec);
    return rc;
}

static void group_fail(struct repl_group *g, int rc)
{
    if (!g->failed) {
        g->failed = rc;
        RL_ERROR("raft group %llu stops: its log failed: %s", (unsigned long long)g->id,
                 rl_strerror(rc));
    }
}

/* Carries out the ready of the call just made on g (see repl.h for the order), then calls the
 * group's callbacks, outside any core call. */
static void process(struct repl *r, struct repl_group *g)
{
    const struct raft_ready *rd = &r->rd;
    void *log = g->opt.log_ctx;
    if (rd->hard_state_changed) {
        int64_t seq = hstore_put(r->hs, g->id, &rd->hard_state);
        if (seq < 0) {
            group_fail(g, (int)seq);
            g->log->ready_done(log);
            return;
        }
        g->hs_seq = (uint64_t)seq;
    }
    int rc = g->log->apply(log, rd);
    if (rc < 0) {
        group_fail(g, rc); /* as a crash: what the ready asked to send goes nowhere */
        g->log->ready_done(log);
        return;
    }
    if (rd->role_changed && rd->role == RAFT_LEADER) {
        g->n_peers = 0; /* a new leadership: every follower gets full heartbeats first */
        r->stats.elections++;
    }
    for (uint32_t i = 0; i < rd->n_msgs; i++)
        if (send_msg(r, g, &rd->msgs[i]) < 0)
            break; /* out of memory: the rest are lost, as on a lossy network */
    if (rd->commit_changed)
        g->log->set_commit(log, rd->commit_index);
    g->log->ready_done(log);
    uint64_t commit = rd->commit_index;
    bool commit_changed = rd->commit_changed, role_changed = rd->role_changed;
    enum raft_role role = (enum raft_role)rd->role;
    uint64_t term = rd->term;
    uint32_t leader = rd->leader;
    if (role_changed) {
        r->stats.leader_changes++;
        if (g->on_role)
            g->on_role(g->ctx, g, role, term, leader);
    }
    if (commit_changed && g->on_commit)
        g->on_commit(g->ctx, g, commit);
}

/* ---- inputs --------------------------------------------------------------------------- */

static int step(struct repl *r, struct repl_group *g, const struct raft_msg *m)
{
    if (g->failed)
        return g->failed;
    int rc = raft_step(&g->raft, m, &r->rd);
    process(r, g);
    return rc;
}

/* The log's start moved past the core's snapshot point (retention): the core follows, so a
 * follower behind it is sent a snapshot of the log start rather than entries that are gone. */
static void compact_to_log_start(struct repl_group *g)
{
    uint64_t start = g->log->log_start(g->opt.log_ctx);
    struct raft_snapshot_meta m;
    if (start <= g->raft.snap_index)
        return;
    if (raft_compact(&g->raft, start, &m) == 0)
        g->snap = m;
    g->log->ready_done(g->opt.log_ctx); /* what the lookups read */
}

void repl_tick(struct repl *r)
{
    for (uint32_t i = 0; i < r->n_buckets; i++)
        for (struct repl_group *g = r->buckets[i]; g; g = g->hnext) {
            if (g->failed)
                continue;
            if (g->log->log_start)
                compact_to_log_start(g);
            raft_tick(&g->raft, &r->rd);
            process(r, g);
        }
}

int repl_propose(struct repl *r, struct repl_group *g, uint8_t *const *batches,
                 const uint32_t *lens, uint32_t n, uint64_t *last_index)
{
    struct raft_entry e[RAFT_MAX_PROPOSAL];
    if (g->failed)
        return g->failed;
    if (n == 0 || n > RAFT_MAX_PROPOSAL)
        return RL_E_INVALID_ARGUMENT;
    if (raft_role(&g->raft) != RAFT_LEADER)
        return RL_E_RAFT_NOT_LEADER;
    uint64_t index = raft_last_index(&g->raft);
    for (uint32_t i = 0; i < n; i++) {
        struct batch_header h;
        int rc = batch_header_decode(batches[i], lens[i], &h);
        if (rc < 0)
            return rc;
        raftlog_stamp(batches[i], index, raft_term(&g->raft));
        index += h.record_count;
        e[i] = (struct raft_entry){.data = batches[i], .len = lens[i],
                                   .count = h.record_count};
    }
    int rc = raft_propose(&g->raft, e, n, &r->rd, last_index);
    process(r, g);
    return rc;
}

int repl_conf_change(struct repl *r, struct repl_group *g, enum raft_conf_op op, uint32_t node,
                     uint64_t *index)
{
    if (g->failed)
        return g->failed;
    int rc = raft_propose_conf_change(&g->raft, op, node, &r->rd, index);
    process(r, g);
    return rc;
}

int repl_transfer(struct repl *r, struct repl_group *g, uint32_t target)
{
    if (g->failed)
        return g->failed;
    int rc = raft_transfer_leadership(&g->raft, target, &r->rd);
    process(r, g);
    return rc;
}

int repl_leader_unreachable(struct repl *r, struct repl_group *g, uint32_t node)
{
    if (g->failed)
        return g->failed;
    int rc = raft_leader_unreachable(&g->raft, node, &r->rd);
    process(r, g);
    return rc;
}

int repl_deliver(struct repl *r, uint64_t group, const struct raft_msg *m)
{
    struct repl_group *g = repl_group_find(r, group);
    return g ? step(r, g, m) : 0;
}

/* A heartbeat record: expand an id-only one from what the leader last sent in full. */
static void receive_hb(struct repl *r, uint32_t from, const struct rwire_record *rec)
{
    struct repl_group *g = repl_group_find(r, rec->group);
    if (!g || g->failed)
        return;
    if (rec->form != RWIRE_ID_ONLY) {
        g->hb_from = from;
        g->hb_term = rec->term;
        g->hb_commit = rec->commit;
        g->hb_valid = true;
        if (rec->form == RWIRE_FULL_ASK)
            g->resp_ask_full = true;
    } else if (!g->hb_valid || g->hb_from != from) {
        struct node_out *o = node_out(r, from);
        if (o && grow((void **)&o->hbrs, &o->cap_hbrs, o->n_hbrs + 1, sizeof(*o->hbrs)) == 0)
            o->hbrs[o->n_hbrs++] = (struct hbr_item){.group = g->id, .need_full = true};
        return;
    }
    struct raft_msg m = {.type = RAFT_MSG_HEARTBEAT, .from = from, .to = r->self,
                         .term = g->hb_term, .commit = g->hb_commit};
    step(r, g, &m);
}

/* A heartbeat reply: expand an id-only one from the follower's last full reply. */
static void receive_hb_resp(struct repl *r, uint32_t from, const struct rwire_record *rec)
{
    struct repl_group *g = repl_group_find(r, rec->group);
    if (!g || g->failed || raft_role(&g->raft) != RAFT_LEADER)
        return;
    struct peer *p = peer_of(g, from);
    if (rec->form == RWIRE_NEED_FULL) {
        p->sent_valid = false;
        return;
    }
    if (rec->form == RWIRE_FULL) {
        p->recv_valid = true;
        p->recv_term = rec->term;
        p->recv_index = rec->index;
        p->recv_hint = rec->hint_index;
        p->recv_commit = rec->commit;
        p->recv_flags = rec->flags;
    } else if (!p->recv_valid) {
        p->ask_full_resp = true;
        return;
    }
    struct raft_msg m = {.type = RAFT_MSG_HEARTBEAT_RESP, .from = from, .to = r->self,
                         .term = p->recv_term, .index = p->recv_index,
                         .hint_index = p->recv_hint, .flags = p->recv_flags};
    step(r, g, &m);
}

int repl_receive(struct repl *r, uint32_t from, const uint8_t *frame, size_t len)
{
    struct rwire_reader *rd = &r->reader;
    struct rwire_record rec;
    int rc = rwire_open(rd, frame, len);
    if (rc == 0 && (rd->from != from || rd->to != r->self))
        rc = RL_E_FRAME_MALFORMED;
    r->stats.frames_received++;
    while (rc == 0 && (rc = rwire_next(rd, &rec)) == 1) {
        rc = 0;
        if (rec.kind == RWIRE_HB)
            receive_hb(r, from, &rec);
        else if (rec.kind == RWIRE_HB_RESP)
            receive_hb_resp(r, from, &rec);
        else
            repl_deliver(r, rec.group, &rec.msg);
    }
    if (rc < 0) {
        r->stats.frames_malformed++;
        RL_WARN("raft frame from node %u dropped: %s", from, rl_strerror(rc));
        return rc;
    }
    return 0;
}

/* ---- the end of a turn ---------------------------------------------------------------- */

static void feed_durability(struct repl *r)
{
    struct repl_group *list = r->durable_list;
    r->durable_list = NULL;
    for (struct repl_group *g = list, *next; g; g = next) {
        next = g->next_durable;
        g->in_durable = false;
        uint64_t index, term;
        if (g->failed || !g->log->take_durable(g->opt.log_ctx, &index, &term))
            continue;
        raft_persisted(&g->raft, index, term, &r->rd);
        process(r, g);
        if (g->on_durable && !g->failed && g->raft.durable_index == index)
            g->on_durable(g->ctx, g, index);
    }
}

/* Moves the held records of groups whose hard state became durable to their nodes' frames. */
static void release_held(struct repl *r)
{
    for (struct repl_group **p = &r->held_list; *p;) {
        struct repl_group *g = *p;
        if (hs_pending(g) && !g->failed) {
            p = &g->next_held;
            continue;
        }
        *p = g->next_held;
        g->in_held = false;
        for (size_t k = 0; !g->failed && k + 8 <= g->held.len;) {
            uint32_t node, len;
            memcpy(&node, g->held.p + k, 4);
            memcpy(&len, g->held.p + k + 4, 4);
            struct node_out *o = node_out(r, node);
            struct rwire_buf *f = o ? node_frame(r, o) : NULL;
            if (f)
                rwire_put_raw(f, g->held.p + k + 8, len, 1);
            k += 8 + len;
        }
        g->held.len = 0;
        g->held.records = 0;
    }
}

static int cmp_hb(const void *a, const void *b)
{
    uint64_t x = ((const struct hb_item *)a)->group, y = ((const struct hb_item *)b)->group;
    return x < y ? -1 : x > y;
}

static void put_heartbeats(struct repl *r, struct node_out *o)
{
    if (o->n_hbs > 1)
        qsort(o->hbs, o->n_hbs, sizeof(*o->hbs), cmp_hb);
    for (uint32_t i = 0; i < o->n_hbs; i++) {
        const struct hb_item *h = &o->hbs[i];
        struct repl_group *g = repl_group_find(r, h->group);
        if (!g || g->failed)
            continue;
        struct peer *p = peer_of(g, o->node);
        bool same = p->sent_valid && p->sent_term == h->term && p->sent_commit == h->commit &&
                    p->recv_valid && p->recv_term == h->term && p->recv_commit >= h->commit;
        uint8_t form = p->ask_full_resp ? RWIRE_FULL_ASK : same ? RWIRE_ID_ONLY : RWIRE_FULL;
        if (form != RWIRE_ID_ONLY) {
            p->sent_valid = true;
            p->sent_term = h->term;
            p->sent_commit = h->commit;
            p->ask_full_resp = false;
        }
        (*(form == RWIRE_ID_ONLY ? &r->stats.hb_id_only : &r->stats.hb_full))++;
        rwire_put_hb(&o->msgs, h->group, form, h->term, h->commit);
    }
    o->n_hbs = 0;
}

static void put_replies(struct repl *r, struct node_out *o)
{
    for (uint32_t i = 0; i < o->n_hbrs; i++) {
        const struct hbr_item *h = &o->hbrs[i];
        struct repl_group *g = repl_group_find(r, h->group);
        if (h->need_full || !g) {
            rwire_put_hb_resp(&o->msgs, h->group, RWIRE_NEED_FULL, 0, 0, 0, 0, 0);
            continue;
        }
        bool same = g->resp_valid && !g->resp_ask_full && g->resp_to == o->node &&
                    g->resp_term == h->term && g->resp_index == h->index &&
                    g->resp_hint == h->hint && g->resp_commit == h->commit &&
                    g->resp_flags == h->flags;
        if (!same) {
            g->resp_valid = true;
            g->resp_ask_full = false;
            g->resp_to = o->node;
            g->resp_term = h->term;
            g->resp_index = h->index;
            g->resp_hint = h->hint;
            g->resp_commit = h->commit;
            g->resp_flags = h->flags;
        }
        (*(same ? &r->stats.hb_resp_id_only : &r->stats.hb_resp_full))++;
        rwire_put_hb_resp(&o->msgs, h->group, same ? RWIRE_ID_ONLY : RWIRE_FULL, h->term,
                          h->index, h->hint, h->commit, h->flags);
    }
    o->n_hbrs = 0;
}

/* Hands o's frame to the transport: the buffer itself when it takes buffers (no copy). */
static int frame_send(struct repl *r, struct node_out *o)
{
    struct rwire_buf *b = &o->msgs;
    if (!r->t.send_buf)
        return r->t.send(r->t.ctx, o->node, b->p + b->base, b->len - b->base);
    return r->t.send_buf(r->t.ctx, o->node, &b->p, &b->cap, b->len - b->base);
}

static size_t flow_backlog(const struct repl *r, uint32_t node)
{
    return r->t.backlog ? r->t.backlog(r->t.ctx, node) : 0;
}

/* Appends to `node` may go again: every group this node leads sends that follower what its
 * window allows (raft_send_more), into this turn's frame. */
static void flow_resume(struct repl *r, uint32_t node)
{
    r->stats.flow_resumes++;
    for (uint32_t i = 0; i < r->n_buckets; i++)
        for (struct repl_group *g = r->buckets[i]; g; g = g->hnext) {
            if (g->failed || raft_role(&g->raft) != RAFT_LEADER)
                continue;
            raft_send_more(&g->raft, node, &r->rd);
            process(r, g);
        }
}

/* The start of a flush: what the transport still holds for each node; a paused node whose
 * backlog drained to REPL_FLOW_RESUME_BYTES runs again. */
static void flow_refresh(struct repl *r)
{
    for (uint32_t i = 0; i < r->n_nodes; i++) {
        uint32_t node = r->nodes[i].node; /* flow_resume may grow r->nodes */
        size_t backlog = flow_backlog(r, node);
        r->nodes[i].backlog = backlog;
        if (r->nodes[i].paused && backlog <= REPL_FLOW_RESUME_BYTES) {
            r->nodes[i].paused = false;
            flow_resume(r, node);
        }
    }
}

void repl_flush(struct repl *r)
{
    feed_durability(r);
    if (hstore_flush(r->hs) == 1)
        r->stats.hstore_flushes++;
    release_held(r);
    flow_refresh(r);
    for (uint32_t i = 0; i < r->n_nodes; i++) {
        struct node_out *o = &r->nodes[i];
        if (o->msgs.records == 0 && o->n_hbs == 0 && o->n_hbrs == 0)
            continue;
        if (!node_frame(r, o))
            continue;
        put_heartbeats(r, o);
        put_replies(r, o);
        rwire_end(&o->msgs);
        int rc = frame_send(r, o);
        (*(rc < 0 ? &r->stats.frames_dropped : &r->stats.frames_sent))++;
        o->msgs.len = 0;
        o->msgs.records = 0;
        o->backlog = flow_backlog(r, o->node);
    }
}

void repl_get_stats(const struct repl *r, struct repl_stats *out)
{
    *out = r->stats;
    struct raft_counters c = r->gone;
    for (uint32_t i = 0; i < r->n_buckets; i++)
        for (const struct repl_group *g = r->buckets[i]; g; g = g->hnext)
            counters_add(&c, &g->raft.ctr);
    out->appends_sent = c.appends_sent;
    out->probe_appends = c.probe_appends;
    out->entries_sent = c.entries_sent;
    out->entries_resent = c.entries_resent;
    out->bytes_resent = c.bytes_resent;
    out->stall_probes = c.stall_probes;
    out->flow_paused_appends = c.flow_paused;
}

size_t repl_group_state_bytes(void)
{
    return sizeof(struct repl_group);
}

/* ---- a raftlog as a group's log ------------------------------------------------------- */

static int rl_apply(void *log, const struct raft_ready *rd)
{
    return raftlog_apply(log, rd);
}

static void rl_ready_done(void *log)
{
    raftlog_ready_done(log);
}

static bool rl_take_durable(void *log, uint64_t *index, uint64_t *term)
{
    return raftlog_take_durable(log, index, term);
}

static void rl_set_commit(void *log, uint64_t commit)
{
    raftlog_set_commit(log, commit);
}

static uint64_t rl_log_start(void *log)
{
    return raftlog_log_start(log);
}

const struct repl_log_ops repl_raftlog_ops = {
    .apply = rl_apply,
    .ready_done = rl_ready_done,
    .take_durable = rl_take_durable,
    .set_commit = rl_set_commit,
    .log_start = rl_log_start,
};
