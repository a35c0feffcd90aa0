/*
 * raft: the consensus core (see raft.h for the contract and the order in which the caller
 * carries out a ready).
 *
 * Within one call the core's view of its log is the caller's log (as of the previous ready)
 * plus what this call has already put in the ready: a truncation followed by `append`. term_at(),
 * boundary_at(), read_entries() and config_at() merge the two, which is why a ready must be
 * carried out before the next call. last_index/last_term always describe that merged view.
 *
 * Every position kept here (match, next - 1, commit, durable, verified, truncation points) is
 * a boundary: the index where an entry ends. An index inside an entry has no term (term_at
 * answers 0), so it can never match a message's previous index.
 *
 * Build-time switch RAFT_PLANT_BUG=N compiles a deliberately broken core for the simulator's
 * self-test (tests/sim); the production object is always built with it unset (0).
 *   1: commit an earlier term's entry by counting replicas (no own-term rule)
 *   2: grant a second vote in a term already voted in
 *   3: never persist the vote
 *   4: acknowledge appended entries before they are durable
 *   5: count learners toward the commit quorum
 *   6: let a node that is no voter (a removed leader, a learner) campaign
 *   9: a follower told its leader is unreachable forgets its vote of this term (found only
 *      with the simulator's --notice; 7 and 8 are bugs of the glue)
 */
#include "replication/raft.h"

#include "common/err.h"
#include "common/log.h"

#include <string.h>

#ifndef RAFT_PLANT_BUG
#define RAFT_PLANT_BUG 0
#endif

#define RAFT_CONFIG_V1_TAG 0x80000001u /* first word of a version-1 configuration payload */

struct raft_saved {
    uint64_t term;
    uint32_t vote;
    uint64_t commit;
    uint8_t role;
    uint32_t leader;
};

/* ---- small helpers -------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64: tiny state, good enough spread for timeouts, and fully deterministic. */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void reset_election_timer(struct raft *r)
{
    r->election_elapsed = 0;
    r->randomized_election_ticks =
        r->election_ticks + (uint32_t)(rng_next(&r->rng) % r->election_ticks);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- configurations ------------------------------------------------------------------- */

static bool ids_have(const uint32_t *ids, uint32_t n, uint32_t id)
{
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

bool raft_config_is_voter(const struct raft_config *c, uint32_t id)
{
    return ids_have(c->voters, c->n_voters, id);
}

bool raft_config_is_learner(const struct raft_config *c, uint32_t id)
{
    return ids_have(c->learners, c->n_learners, id);
}

static bool config_is_member(const struct raft_config *c, uint32_t id)
{
    return raft_config_is_voter(c, id) || raft_config_is_learner(c, id);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int b = 0; b < 4; b++)
        p[b] = (uint8_t)(v >> (8 * b));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t raft_config_encode(const struct raft_config *c, uint8_t *buf)
{
    uint32_t k = 12;
    put_u32(buf, RAFT_CONFIG_V1_TAG);
    put_u32(buf + 4, c->n_voters);
    put_u32(buf + 8, c->n_learners);
    for (uint32_t i = 0; i < c->n_voters; i++, k += 4)
        put_u32(buf + k, c->voters[i]);
    for (uint32_t i = 0; i < c->n_learners; i++, k += 4)
        put_u32(buf + k, c->learners[i]);
    return k;
}

/* Ids must be non-zero and distinct across both lists. */
static bool config_ids_valid(const struct raft_config *c)
{
    if (c->n_voters == 0 || c->n_voters > RAFT_MAX_VOTERS || c->n_learners > RAFT_MAX_LEARNERS)
        return false;
    for (uint32_t i = 0; i < c->n_voters; i++)
        if (c->voters[i] == RAFT_NONE || ids_have(c->voters, i, c->voters[i]))
            return false;
    for (uint32_t i = 0; i < c->n_learners; i++)
        if (c->learners[i] == RAFT_NONE || ids_have(c->learners, i, c->learners[i]) ||
            raft_config_is_voter(c, c->learners[i]))
            return false;
    return true;
}

int raft_config_decode(const void *buf, uint32_t len, struct raft_config *c)
{
    const uint8_t *p = buf;
    uint32_t k;
    memset(c, 0, sizeof(*c));
    if (len < 4)
        return RL_E_CORRUPT;
    if (get_u32(p) == RAFT_CONFIG_V1_TAG) {
        if (len < 12)
            return RL_E_CORRUPT;
        c->n_voters = get_u32(p + 4);
        c->n_learners = get_u32(p + 8);
        k = 12;
    } else { /* version 0: voters only */
        c->n_voters = get_u32(p);
        k = 4;
    }
    if (c->n_voters == 0 || c->n_voters > RAFT_MAX_VOTERS || c->n_learners > RAFT_MAX_LEARNERS ||
        len != k + 4 * (c->n_voters + c->n_learners))
        return RL_E_CORRUPT;
    for (uint32_t i = 0; i < c->n_voters; i++, k += 4)
        c->voters[i] = get_u32(p + k);
    for (uint32_t i = 0; i < c->n_learners; i++, k += 4)
        c->learners[i] = get_u32(p + k);
    return config_ids_valid(c) ? 0 : RL_E_CORRUPT;
}

static uint32_t quorum(uint32_t n_voters)
{
    return n_voters / 2 + 1;
}

/* ---- progress ------------------------------------------------------------------------- */

static struct raft_progress *progress_find(struct raft *r, uint32_t id)
{
    for (uint32_t i = 0; i < r->n_progress; i++)
        if (r->progress[i].id == id)
            return &r->progress[i];
    return NULL;
}

static void progress_init(struct raft *r, struct raft_progress *pr, uint32_t id, bool voter)
{
    memset(pr, 0, sizeof(*pr));
    pr->id = id;
    pr->voter = voter;
    pr->state = RAFT_PR_PROBE;
    pr->next = r->last_index + 1;
}

/* One progress slot per member of the configuration in effect (voters first), keeping what is
 * known of members that stay (a promoted learner keeps its match). */
static void progress_rebuild(struct raft *r)
{
    struct raft_progress old[RAFT_MAX_MEMBERS];
    uint32_t n_old = r->n_progress;
    memcpy(old, r->progress, sizeof(old));
    r->n_progress = 0;
    uint32_t n_members = r->config.n_voters + r->config.n_learners;
    for (uint32_t i = 0; i < n_members; i++) {
        bool voter = i < r->config.n_voters;
        uint32_t id = voter ? r->config.voters[i] : r->config.learners[i - r->config.n_voters];
        struct raft_progress *pr = &r->progress[r->n_progress++];
        progress_init(r, pr, id, voter);
        for (uint32_t j = 0; j < n_old; j++)
            if (old[j].id == id) {
                *pr = old[j];
                pr->voter = voter;
            }
    }
}

static void infl_free_to(struct raft_progress *pr, uint64_t index)
{
    while (pr->infl_count > 0 && pr->infl[pr->infl_head] <= index) {
        pr->infl_head = (pr->infl_head + 1) % RAFT_MAX_INFLIGHT;
        pr->infl_count--;
    }
}

static void infl_add(struct raft_progress *pr, uint64_t last)
{
    RL_ASSERT(pr->infl_count < RAFT_MAX_INFLIGHT);
    pr->infl[(pr->infl_head + pr->infl_count) % RAFT_MAX_INFLIGHT] = last;
    pr->infl_count++;
}

static void progress_become_probe(struct raft_progress *pr, uint64_t next)
{
    pr->state = RAFT_PR_PROBE;
    pr->probe_sent = 0;
    pr->probe_hbs = 0;
    pr->next = next;
    pr->infl_head = 0;
    pr->infl_count = 0;
}

static void progress_become_replicate(struct raft_progress *pr)
{
    pr->state = RAFT_PR_REPLICATE;
    pr->probe_sent = 0;
    pr->next = pr->match + 1;
    pr->infl_head = 0;
    pr->infl_count = 0;
}

/* ---- the merged log view -------------------------------------------------------------- */

/* The last index that is in the caller's log rather than in this call's ready. */
static uint64_t log_part_last(const struct raft *r)
{
    const struct raft_ready *rd = r->rd;
    if (rd && rd->n_append)
        return rd->append[0].index - rd->append[0].count;
    return r->last_index;
}

/* Position in the ready's append of the first entry whose index is > `index` (a binary search:
 * the appended entries are in index order). */
static uint32_t append_upper(const struct raft_ready *rd, uint64_t index)
{
    uint32_t lo = 0, hi = rd->n_append;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rd->append[mid].index <= index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Term of the entry ending at i in the merged view; 0 when i is 0, beyond the end, compacted
 * away, or not a boundary. */
static uint64_t term_at(const struct raft *r, uint64_t i)
{
    const struct raft_ready *rd = r->rd;
    if (i == 0 || i > r->last_index || i < r->snap_index)
        return 0;
    if (i == r->snap_index)
        return r->snap_term;
    if (i > log_part_last(r)) {
        uint32_t k = append_upper(rd, i);
        return k > 0 && rd->append[k - 1].index == i ? rd->append[k - 1].term : 0;
    }
    return r->log_ops->term(r->log_ctx, i);
}

/* Whether the merged view holds an entry ending at `index` of term `term` (index 0, the empty
 * prefix, matches term 0). */
static bool log_matches(const struct raft *r, uint64_t index, uint64_t term)
{
    if (index > r->last_index)
        return false;
    if (index == 0)
        return term == 0;
    uint64_t t = term_at(r, index);
    return t != 0 && t == term;
}

/* The largest boundary b <= index (b >= snap_index) whose term is <= max_term, its term in
 * *term; the snapshot point when no entry qualifies. */
static uint64_t boundary_at(const struct raft *r, uint64_t index, uint64_t max_term,
                            uint64_t *term)
{
    const struct raft_ready *rd = r->rd;
    uint64_t log_hi = log_part_last(r);
    index = min_u64(index, r->last_index);
    if (index > log_hi) {
        for (uint32_t k = append_upper(rd, index); k-- > 0;) {
            if (rd->append[k].term <= max_term) {
                *term = rd->append[k].term;
                return rd->append[k].index;
            }
        }
        index = log_hi;
    }
    if (index > r->snap_index) {
        uint64_t t = 0;
        uint64_t b = r->log_ops->boundary(r->log_ctx, index, max_term, &t);
        if (b > r->snap_index && b <= index) {
            *term = t;
            return b;
        }
    }
    *term = r->snap_term;
    return r->snap_index;
}

/* The largest boundary below `index` (>= 1); below the snapshot point any index under it will
 * do (an append starting there becomes a snapshot). */
static uint64_t boundary_before(const struct raft *r, uint64_t index)
{
    uint64_t t;
    if (index <= r->snap_index)
        return index - 1;
    return boundary_at(r, index - 1, UINT64_MAX, &t);
}

/* Copies the entries ending in [lo, hi] (within the message limits) into the ready's pool;
 * returns the count (or a negative log error) and sets *out to the first. */
static int read_entries(struct raft *r, uint64_t lo, uint64_t hi, const struct raft_entry **out)
{
    struct raft_ready *rd = r->rd;
    uint32_t room = RAFT_READY_MAX_ENTRIES - rd->n_pool;
    uint32_t max_n = room < r->max_msg_entries ? room : r->max_msg_entries;
    struct raft_entry *dst = &rd->pool[rd->n_pool];
    uint64_t log_hi = log_part_last(r), bytes = 0;
    uint32_t n = 0;
    *out = dst;
    if (max_n == 0 || lo > hi)
        return 0;
    if (lo <= log_hi) {
        int k = r->log_ops->entries(r->log_ctx, lo, min_u64(hi, log_hi), r->max_msg_bytes, dst,
                                    max_n);
        if (k < 0)
            return k;
        n = (uint32_t)k;
        for (uint32_t i = 0; i < n; i++)
            bytes += dst[i].len;
        if (n > 0 && dst[n - 1].index < min_u64(hi, log_hi))
            goto out; /* the log part hit a limit: the rest comes in a later message */
    }
    if (hi > log_hi && rd->n_append) {
        for (uint32_t k = append_upper(rd, lo > log_hi ? lo - 1 : log_hi);
             k < rd->n_append && rd->append[k].index <= hi && n < max_n; k++) {
            if (n > 0 && bytes >= r->max_msg_bytes)
                break;
            dst[n] = rd->append[k];
            bytes += dst[n].len;
            n++;
        }
    }
out:
    rd->n_pool += n;
    return (int)n;
}

/* The configuration in effect at `index` (>= snap_index): the latest config entry at or below
 * it, looked up in this call's append and then through the log's configuration index. */
static int config_at(struct raft *r, uint64_t index, struct raft_config *cfg, uint64_t *cfg_index)
{
    const struct raft_ready *rd = r->rd;
    if (r->config_index <= index) {
        *cfg = r->config; /* the latest configuration of all is at or below index */
        *cfg_index = r->config_index;
        return 0;
    }
    uint64_t log_hi = log_part_last(r);
    if (index > log_hi) {
        for (uint32_t k = append_upper(rd, index); k-- > 0;) {
            if (rd->append[k].type == RAFT_ENTRY_CONFIG) {
                *cfg_index = rd->append[k].index;
                return raft_config_decode(rd->append[k].data, rd->append[k].len, cfg);
            }
        }
        index = log_hi;
    }
    if (index > r->snap_index) {
        struct raft_entry e;
        int rc = r->log_ops->config(r->log_ctx, index, &e);
        if (rc < 0)
            return rc;
        if (rc > 0 && e.index > r->snap_index && e.index <= index) {
            *cfg_index = e.index;
            return raft_config_decode(e.data, e.len, cfg);
        }
    }
    *cfg = r->snap_config;
    *cfg_index = r->snap_config_index;
    return 0;
}

static void set_config(struct raft *r, const struct raft_config *cfg, uint64_t index)
{
    r->config = *cfg;
    r->config_index = index;
    progress_rebuild(r);
}

/* True for a node its configuration names as a voter: only voters campaign and lead. */
static bool is_voter(const struct raft *r)
{
#if RAFT_PLANT_BUG == 6
    if (!config_is_member(&r->config, r->id) && r->config_index > 0)
        return true; /* a removed node keeps campaigning (LogCabin #205) */
#endif
    return raft_config_is_voter(&r->config, r->id);
}

/* ---- outputs ------------------------------------------------------------------------- */

static struct raft_msg *msg_new(struct raft *r, enum raft_msg_type type, uint32_t to)
{
    struct raft_ready *rd = r->rd;
    if (rd->n_msgs >= RAFT_READY_MAX_MSGS)
        return NULL; /* dropped: raft tolerates loss; the named maximum keeps the ready bounded */
    struct raft_msg *m = &rd->msgs[rd->n_msgs++];
    memset(m, 0, sizeof(*m));
    m->type = (uint8_t)type;
    m->from = r->id;
    m->to = to;
    m->term = r->term;
    return m;
}

static void begin(struct raft *r, struct raft_ready *rd, struct raft_saved *sv)
{
    rd->hard_state_changed = false;
    rd->has_snapshot = false;
    rd->has_truncate = false;
    rd->append = NULL;
    rd->n_append = 0;
    rd->n_msgs = 0;
    rd->commit_changed = false;
    rd->role_changed = false;
    rd->n_pool = 0;
    rd->scratch_used = 0;
    r->rd = rd;
    sv->term = r->term;
    sv->vote = r->vote;
    sv->commit = r->commit;
    sv->role = r->role;
    sv->leader = r->leader;
}

static void finish(struct raft *r, const struct raft_saved *sv)
{
    struct raft_ready *rd = r->rd;
    bool vote_changed = r->vote != sv->vote;
#if RAFT_PLANT_BUG == 3
    vote_changed = false;
#endif
    if (r->term != sv->term || vote_changed) {
        rd->hard_state_changed = true;
        rd->hard_state.term = r->term;
        rd->hard_state.vote = r->vote;
#if RAFT_PLANT_BUG == 3
        if (r->vote != r->id)
            rd->hard_state.vote = RAFT_NONE;
#endif
    }
    if (r->commit != sv->commit) {
        RL_ASSERT(r->commit > sv->commit);
        rd->commit_changed = true;
    }
    rd->commit_index = r->commit;
    if (r->role != sv->role || r->leader != sv->leader || r->term != sv->term)
        rd->role_changed = true;
    rd->role = r->role;
    rd->leader = r->leader;
    rd->term = r->term;
    r->rd = NULL;
}

/* Puts entries (already numbered) in the ready for the caller to append. One batch per call. */
static int ready_append(struct raft *r, const struct raft_entry *src, uint32_t n)
{
    struct raft_ready *rd = r->rd;
    RL_ASSERT(rd->n_append == 0);
    RL_ASSERT(src[0].index - src[0].count == r->last_index);
    if (n > RAFT_READY_MAX_ENTRIES - rd->n_pool)
        return RL_E_FULL;
    struct raft_entry *dst = &rd->pool[rd->n_pool];
    memcpy(dst, src, n * sizeof(*dst));
    rd->n_pool += n;
    rd->append = dst;
    rd->n_append = n;
    r->last_index = dst[n - 1].index;
    r->last_term = dst[n - 1].term;
    for (uint32_t i = n; i-- > 0;) {
        if (dst[i].type != RAFT_ENTRY_CONFIG)
            continue;
        struct raft_config cfg;
        int rc = raft_config_decode(dst[i].data, dst[i].len, &cfg);
        if (rc < 0)
            return rc;
        set_config(r, &cfg, dst[i].index); /* takes effect on append */
        break;
    }
    return 0;
}

/* ---- role changes -------------------------------------------------------------------- */

static void become_follower(struct raft *r, uint64_t term, uint32_t leader)
{
    if (term != r->term) {
        r->term = term;
        r->vote = RAFT_NONE;
    }
    r->role = RAFT_FOLLOWER;
    r->leader = leader;
    r->transferee = RAFT_NONE;
    r->verified_index = r->commit;
    reset_election_timer(r);
}

static void send_append_loop(struct raft *r, struct raft_progress *pr);

static void broadcast_append(struct raft *r)
{
    for (uint32_t i = 0; i < r->n_progress; i++)
        if (r->progress[i].id != r->id)
            send_append_loop(r, &r->progress[i]);
}

static void become_leader(struct raft *r)
{
    r->role = RAFT_LEADER;
    r->leader = r->id;
    r->transferee = RAFT_NONE;
    r->heartbeat_elapsed = 0;
    r->election_elapsed = 0;
    for (uint32_t i = 0; i < r->n_progress; i++) {
        struct raft_progress *pr = &r->progress[i];
        progress_init(r, pr, pr->id, pr->voter);
        pr->recent_active = 1;
    }
    /* A no-op of the new term: earlier terms' entries commit only through an entry of this
     * term, so the leader must write one to finish its predecessors' work. */
    struct raft_entry noop = {.index = r->last_index + 1, .count = 1, .term = r->term};
    r->term_start_index = noop.index;
    r->pending_conf_index = r->last_index;
    if (ready_append(r, &noop, 1) < 0)
        RL_ASSERTF(0, "ready has no room for the leader's no-op");
    broadcast_append(r);
}

static uint32_t vote_tally(struct raft *r, uint32_t *refused)
{
    uint32_t granted = 0;
    *refused = 0;
    for (uint32_t i = 0; i < r->n_progress; i++) {
        if (!r->progress[i].voter)
            continue;
        granted += r->progress[i].vote > 0;
        *refused += r->progress[i].vote < 0;
    }
    return granted;
}

/* Starts a pre-vote (pre) or a real election. Single-voter groups win at once. */
static void campaign(struct raft *r, bool pre, bool transfer)
{
    if (!is_voter(r))
        return;
    bool alone = r->config.n_voters == 1 && raft_config_is_voter(&r->config, r->id);
    if (alone)
        pre = false;
    uint64_t vote_term = r->term + 1;
    if (pre) {
        r->role = RAFT_PRECANDIDATE;
        r->leader = RAFT_NONE;
    } else {
        r->term = vote_term;
        r->vote = r->id;
        r->role = RAFT_CANDIDATE;
        r->leader = RAFT_NONE;
    }
    reset_election_timer(r);
    for (uint32_t i = 0; i < r->n_progress; i++)
        r->progress[i].vote = r->progress[i].id == r->id ? 1 : 0;
    if (alone) {
        become_leader(r);
        return;
    }
    for (uint32_t i = 0; i < r->n_progress; i++) {
        if (r->progress[i].id == r->id || !r->progress[i].voter)
            continue;
        struct raft_msg *m =
            msg_new(r, pre ? RAFT_MSG_PREVOTE : RAFT_MSG_VOTE, r->progress[i].id);
        if (!m)
            continue;
        m->term = vote_term;
        m->index = r->last_index;
        m->log_term = r->last_term;
        m->flags = transfer ? RAFT_MSG_F_TRANSFER : 0;
    }
}

/* ---- leader: replication ------------------------------------------------------------- */

static void send_snapshot(struct raft *r, struct raft_progress *pr)
{
    struct raft_msg *m = msg_new(r, RAFT_MSG_SNAPSHOT, pr->id);
    if (!m)
        return;
    m->snap.index = r->snap_index;
    m->snap.term = r->snap_term;
    m->snap.config_index = r->snap_config_index;
    m->snap.config = r->snap_config;
    pr->state = RAFT_PR_SNAPSHOT;
    pr->pending_snapshot = r->snap_index;
    pr->snapshot_wait_ticks = 0;
    pr->infl_count = 0;
}

/* Counts an append to pr: entries at or below what pr was already sent in this leadership go
 * out a second time (a probe after a loss, or waste). */
static void count_append(struct raft *r, struct raft_progress *pr, const struct raft_entry *ents,
                         uint32_t n)
{
    r->ctr.appends_sent++;
    r->ctr.probe_appends += pr->state == RAFT_PR_PROBE;
    r->ctr.entries_sent += n;
    for (uint32_t i = 0; i < n; i++) {
        if (ents[i].index > pr->sent_hi)
            break;
        r->ctr.entries_resent++;
        r->ctr.bytes_resent += ents[i].len;
    }
    if (n && ents[n - 1].index > pr->sent_hi)
        pr->sent_hi = ents[n - 1].index;
}

/* Sends one append (or snapshot) to pr if its state allows; returns true if it sent entries
 * and another one might follow (pipelining in REPLICATE). */
static bool send_append(struct raft *r, struct raft_progress *pr)
{
    if (pr->state == RAFT_PR_SNAPSHOT || (pr->state == RAFT_PR_PROBE && pr->probe_sent))
        return false;
    if (pr->state == RAFT_PR_REPLICATE &&
        (pr->infl_count >= r->max_inflight || pr->next > r->last_index))
        return false;
    uint64_t prev = pr->next - 1;
    if (prev < r->snap_index) {
        send_snapshot(r, pr);
        return false;
    }
    if (r->may_send && !r->may_send(r->flow_ctx, pr->id)) {
        r->ctr.flow_paused++; /* raft_send_more picks it up when the transport has room */
        return false;
    }
    const struct raft_entry *ents = NULL;
    int n = read_entries(r, pr->next, r->last_index, &ents);
    if (n < 0 || (n == 0 && pr->state == RAFT_PR_REPLICATE))
        return false;
    struct raft_msg *m = msg_new(r, RAFT_MSG_APPEND, pr->id);
    if (!m)
        return false;
    m->index = prev;
    m->log_term = term_at(r, prev);
    m->commit = r->commit;
    m->entries = ents;
    m->n_entries = (uint32_t)n;
    count_append(r, pr, ents, (uint32_t)n);
    if (pr->state == RAFT_PR_PROBE) {
        pr->probe_sent = 1;
        return false;
    }
    pr->next = ents[n - 1].index + 1;
    infl_add(pr, ents[n - 1].index);
    return true;
}

static void send_append_loop(struct raft *r, struct raft_progress *pr)
{
    for (uint32_t i = 0; i < RAFT_MAX_INFLIGHT && send_append(r, pr); i++) {
    }
}

static void send_timeout_now(struct raft *r, uint32_t to)
{
    msg_new(r, RAFT_MSG_TIMEOUT_NOW, to);
}

static void leader_step_down(struct raft *r)
{
    become_follower(r, r->term, RAFT_NONE);
}

/* True for a leader whose configuration no longer names it a voter. Until that configuration
 * commits it replicates it without counting itself (it has no progress slot); afterwards it
 * only hands leadership over. Either way it takes no proposals. */
static bool leader_leaving(const struct raft *r)
{
    return !raft_config_is_voter(&r->config, r->id);
}

/* A leader has committed a configuration without itself (replication-anchors 6.11): rather
 * than fall silent, which leaves the voters to wait out an election timeout while its last
 * appends still reach them and re-arm their leases, it hands leadership to the voter with the
 * highest match, as a transfer does (TIMEOUT_NOW once that voter holds the whole log, resent
 * on each heartbeat reply). It steps down when the successor's term reaches it or when the
 * transfer times out, and never campaigns again: it is no voter. */
static void hand_over(struct raft *r)
{
    struct raft_progress *best = NULL;
    for (uint32_t i = 0; i < r->n_progress; i++)
        if (r->progress[i].voter && (!best || r->progress[i].match > best->match))
            best = &r->progress[i];
    if (!best) {
        leader_step_down(r);
        return;
    }
    r->transferee = best->id;
    r->transfer_elapsed = 0;
    if (best->match == r->last_index)
        send_timeout_now(r, best->id);
}

static void maybe_commit(struct raft *r)
{
    uint64_t m[RAFT_MAX_MEMBERS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->n_progress; i++) {
        struct raft_progress *pr = &r->progress[i];
#if RAFT_PLANT_BUG != 5
        if (!pr->voter)
            continue; /* learners count toward no quorum */
#endif
        uint64_t v = pr->id == r->id ? r->durable_index : pr->match;
        uint32_t j = n++;
        for (; j > 0 && m[j - 1] < v; j--) /* insertion sort, descending */
            m[j] = m[j - 1];
        m[j] = v;
    }
    if (n == 0)
        return;
    uint64_t candidate = m[quorum(n) - 1];
    if (candidate <= r->commit)
        return;
#if RAFT_PLANT_BUG != 1
    if (term_at(r, candidate) != r->term)
        return; /* an earlier term's entry commits only through one of this term */
#endif
    r->commit = candidate;
    if (r->commit >= r->config_index) {
        r->committed_config = r->config;
        r->committed_config_index = r->config_index;
        if (leader_leaving(r))
            hand_over(r);
    }
}

/* Where to resume after a rejection: the end of the last leader entry at or below the
 * follower's hint whose term is <= the hint's term. Entries up to there may match; the probe
 * finds out. */
static uint64_t leader_resume_index(struct raft *r, const struct raft_msg *m)
{
    uint64_t t;
    return boundary_at(r, m->hint_index, m->hint_term, &t) + 1;
}

static void handle_append_resp(struct raft *r, const struct raft_msg *m, struct raft_progress *pr)
{
    if (m->flags & RAFT_MSG_F_REJECT) {
        if (pr->state == RAFT_PR_SNAPSHOT ||
            (pr->state == RAFT_PR_REPLICATE && m->index <= pr->match) ||
            (pr->state == RAFT_PR_PROBE && m->index != pr->next - 1))
            return; /* stale */
        uint64_t next = leader_resume_index(r, m);
        if (next > m->index) /* resume strictly below the rejected position */
            next = m->index == 0 ? 1 : boundary_before(r, m->index) + 1;
        if (next < pr->match + 1)
            next = pr->match + 1;
        progress_become_probe(pr, next);
        send_append_loop(r, pr);
        return;
    }
    bool progressed = m->index > pr->match && m->index <= r->last_index;
    if (progressed)
        pr->match = m->index;
    infl_free_to(pr, m->index);
    if (pr->state == RAFT_PR_SNAPSHOT && pr->match >= pr->pending_snapshot)
        progress_become_replicate(pr);
    else if (pr->state == RAFT_PR_PROBE && pr->match + 1 >= pr->next)
        progress_become_replicate(pr);
    else if (pr->next <= pr->match)
        pr->next = pr->match + 1;
    if (progressed)
        maybe_commit(r);
    if (r->role != RAFT_LEADER)
        return;
    if (r->transferee == pr->id && pr->match == r->last_index)
        send_timeout_now(r, pr->id);
    send_append_loop(r, pr);
}

/* PROBE: the probe out may have been lost, but its answer may also just be late (a busy
 * follower, a long send queue): send it again only every RAFT_PROBE_RESEND_HBS heartbeat
 * replies, never on each one. */
static void probe_maybe_resend(struct raft_progress *pr)
{
    if (!pr->probe_sent)
        return;
    if (++pr->probe_hbs >= RAFT_PROBE_RESEND_HBS) {
        pr->probe_hbs = 0;
        pr->probe_sent = 0;
    }
}

/* REPLICATE: entries in flight are shipped once; a late reply is no reason to send them again.
 * The transport keeps the order of a node pair, so a heartbeat reaches the follower after
 * every append sent before it: only a reply that shows the follower without entries sent
 * before the previous heartbeat (hb_mark[1]), twice in a row with nothing new, says they were
 * lost (a gap after a loss also makes the follower reject, which probes at once). Then the
 * follower is probed from its match. Entries sent since then are merely on their way. */
static void replicate_check_stall(struct raft *r, struct raft_progress *pr, uint64_t hint)
{
    if (hint < pr->hb_mark[1] && hint == pr->last_hint) {
        r->ctr.stall_probes++;
        progress_become_probe(pr, pr->match + 1);
    }
    pr->last_hint = hint;
}

static void handle_heartbeat_resp(struct raft *r, const struct raft_msg *m,
                                  struct raft_progress *pr)
{
    /* The reply carries the same acknowledgement an append reply would, so a lost append
     * reply cannot leave the leader waiting forever. */
    if (m->index > pr->match && m->index <= r->last_index) {
        pr->match = m->index;
        if (pr->next <= pr->match)
            pr->next = pr->match + 1;
        infl_free_to(pr, m->index);
        maybe_commit(r);
        if (r->role != RAFT_LEADER)
            return;
    }
    if (pr->match < r->last_index) {
        if (pr->state == RAFT_PR_PROBE)
            probe_maybe_resend(pr);
        else if (pr->state == RAFT_PR_REPLICATE)
            replicate_check_stall(r, pr, m->hint_index);
        send_append_loop(r, pr);
    }
    if (r->transferee == pr->id && pr->match == r->last_index)
        send_timeout_now(r, pr->id);
}

/* ---- follower ------------------------------------------------------------------------ */

static void send_ack(struct raft *r, uint32_t to)
{
    struct raft_msg *m = msg_new(r, RAFT_MSG_APPEND_RESP, to);
    if (!m)
        return;
    uint64_t ack = min_u64(r->durable_index, r->verified_index);
#if RAFT_PLANT_BUG == 4
    ack = r->verified_index;
#endif
    m->index = ack;
}

static void send_reject(struct raft *r, const struct raft_msg *req)
{
    struct raft_msg *m = msg_new(r, RAFT_MSG_APPEND_RESP, req->from);
    if (!m)
        return;
    m->flags = RAFT_MSG_F_REJECT;
    m->index = req->index;
    uint64_t floor = r->commit > r->snap_index ? r->commit : r->snap_index;
    uint64_t t;
    uint64_t j = boundary_at(r, req->index, req->log_term, &t);
    if (j < floor) {
        j = floor;
        t = term_at(r, floor);
    }
    m->hint_index = j;
    m->hint_term = t;
}

static void commit_to(struct raft *r, uint64_t index)
{
    if (index <= r->commit)
        return;
    r->commit = index;
    if (r->commit >= r->config_index) {
        r->committed_config = r->config;
        r->committed_config_index = r->config_index;
    }
}

/* Truncates after `after` (in the ready) and reverts the configuration if its entry goes. */
static int truncate_after(struct raft *r, uint64_t after)
{
    struct raft_ready *rd = r->rd;
#if RAFT_PLANT_BUG
    if (after < r->commit)
        return RL_E_INTERNAL; /* let the simulator report what a planted bug broke */
#endif
    RL_ASSERTF(after >= r->commit, "truncating committed entries: after %llu commit %llu",
               (unsigned long long)after, (unsigned long long)r->commit);
    rd->has_truncate = true;
    rd->truncate_after = after;
    r->last_index = after;
    r->last_term = term_at(r, after);
    if (r->durable_index > after)
        r->durable_index = after;
    if (r->config_index > after) {
        struct raft_config cfg;
        uint64_t idx;
        int rc = config_at(r, after, &cfg, &idx);
        if (rc < 0)
            return rc;
        set_config(r, &cfg, idx);
    }
    return 0;
}

/* An append's entries must follow one another from its previous index, with counts in range
 * and terms that never decrease and never exceed the message's; anything else is dropped. */
static bool append_well_formed(const struct raft_msg *m)
{
    uint64_t prev = m->index, term = m->log_term;
    if (m->n_entries > 0 && !m->entries)
        return false;
    if (term > m->term || m->n_entries > RAFT_READY_MAX_ENTRIES)
        return false;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct raft_entry *e = &m->entries[i];
        if (e->count == 0 || e->count > RAFT_MAX_ENTRY_COUNT || e->index < e->count ||
            e->index - e->count != prev || e->term < term || e->term > m->term ||
            e->type > RAFT_ENTRY_CONFIG)
            return false;
        prev = e->index;
        term = e->term;
    }
    return true;
}

static int handle_append(struct raft *r, const struct raft_msg *m)
{
    if (!append_well_formed(m))
        return 0;
    if (m->index < r->commit) {
        send_ack(r, m->from);
        return 0;
    }
    if (!log_matches(r, m->index, m->log_term)) {
        send_reject(r, m);
        return 0;
    }
    uint32_t i = 0;
    for (; i < m->n_entries; i++) { /* skip what we hold: same end and term, same entry */
        const struct raft_entry *e = &m->entries[i];
        if (e->index > r->last_index || term_at(r, e->index) != e->term)
            break;
    }
    uint64_t last_new = i > 0 ? m->entries[i - 1].index : m->index;
    if (i < m->n_entries) {
        uint32_t n = m->n_entries - i;
        uint32_t room = RAFT_READY_MAX_ENTRIES - r->rd->n_pool;
        if (n > room)
            n = room; /* the rest comes again later */
        if (n > 0) {
            int rc = 0;
            if (last_new < r->last_index) /* a boundary we matched at: cut what follows */
                rc = truncate_after(r, last_new);
            if (rc == 0)
                rc = ready_append(r, &m->entries[i], n);
            if (rc < 0)
                return rc;
            last_new = m->entries[i + n - 1].index;
        }
    }
    if (last_new > r->verified_index)
        r->verified_index = last_new;
    commit_to(r, min_u64(m->commit, last_new));
    if (r->rd->n_append == 0 || RAFT_PLANT_BUG == 4)
        send_ack(r, m->from); /* otherwise raft_persisted acknowledges */
    return 0;
}

static void handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
    /* The leader sends min(commit, our match); matched entries are durable here. */
    commit_to(r, min_u64(m->commit, r->last_index));
    struct raft_msg *resp = msg_new(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
    if (!resp)
        return;
    resp->index = min_u64(r->durable_index, r->verified_index);
#if RAFT_PLANT_BUG == 4
    resp->index = r->verified_index;
#endif
    resp->hint_index = r->verified_index;
}

static void handle_snapshot(struct raft *r, const struct raft_msg *m)
{
    const struct raft_snapshot_meta *s = &m->snap;
    if (s->index <= r->commit) {
        send_ack(r, m->from);
        return;
    }
    if (s->term == 0 || s->term > m->term || !config_ids_valid(&s->config))
        return; /* malformed */
    if (log_matches(r, s->index, s->term)) {
        /* We hold the snapshot's last entry, so everything up to it matches. */
        if (s->index > r->verified_index)
            r->verified_index = s->index;
        commit_to(r, s->index);
        send_ack(r, m->from);
        return;
    }
    struct raft_ready *rd = r->rd;
    rd->has_snapshot = true;
    rd->snapshot = *s;
    r->snap_index = s->index;
    r->snap_term = s->term;
    r->snap_config = s->config;
    r->snap_config_index = s->config_index;
    r->last_index = s->index;
    r->last_term = s->term;
    r->durable_index = s->index; /* installation is durable before messages go out */
    r->verified_index = s->index;
    r->commit = s->index;
    r->committed_config = s->config;
    r->committed_config_index = s->config_index;
    set_config(r, &s->config, s->config_index);
    send_ack(r, m->from);
}

/* ---- votes --------------------------------------------------------------------------- */

static void handle_vote_request(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE;
    /* A learner answers too: the candidate's configuration decides whose votes count, and
     * it may name this node a voter in an entry this node has not received yet. */
    bool can_vote = r->vote == m->from || (r->vote == RAFT_NONE && r->leader == RAFT_NONE) ||
                    (pre && m->term > r->term);
#if RAFT_PLANT_BUG == 2
    can_vote = can_vote || r->leader == RAFT_NONE;
#endif
    bool up_to_date = m->log_term > r->last_term ||
                      (m->log_term == r->last_term && m->index >= r->last_index);
    bool grant = can_vote && up_to_date;
    struct raft_msg *resp =
        msg_new(r, pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP, m->from);
    if (grant && !pre) {
        r->vote = m->from;
        reset_election_timer(r);
    }
    if (!resp)
        return;
    resp->term = grant ? m->term : r->term;
    resp->flags = grant ? 0 : RAFT_MSG_F_REJECT;
}

static void handle_vote_resp(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE_RESP;
    if (r->role != (pre ? RAFT_PRECANDIDATE : RAFT_CANDIDATE))
        return;
    if (m->term != (pre ? r->term + 1 : r->term) && !(m->flags & RAFT_MSG_F_REJECT))
        return;
    struct raft_progress *pr = progress_find(r, m->from);
    if (!pr || !pr->voter)
        return;
    pr->vote = (m->flags & RAFT_MSG_F_REJECT) ? -1 : 1;
    uint32_t refused;
    uint32_t granted = vote_tally(r, &refused);
    uint32_t q = quorum(r->config.n_voters);
    if (granted >= q) {
        if (pre)
            campaign(r, false, false);
        else
            become_leader(r);
    } else if (refused >= q) {
        become_follower(r, r->term, RAFT_NONE);
    }
}

/* ---- step ---------------------------------------------------------------------------- */

static bool from_leader(uint8_t type)
{
    return type == RAFT_MSG_APPEND || type == RAFT_MSG_HEARTBEAT || type == RAFT_MSG_SNAPSHOT;
}

/* Term rules; returns false if the message is to be dropped after them. */
static bool step_term(struct raft *r, const struct raft_msg *m)
{
    if (m->term > r->term) {
        if (m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_VOTE) {
            bool in_lease = r->check_quorum && r->leader != RAFT_NONE &&
                            r->election_elapsed < r->election_ticks;
            if (in_lease && !(m->flags & RAFT_MSG_F_TRANSFER))
                return false; /* a live leader exists: do not let a stray node disrupt it */
        }
        if (m->type == RAFT_MSG_PREVOTE)
            return true; /* asks about a future term; ours does not change */
        if (m->type == RAFT_MSG_PREVOTE_RESP && !(m->flags & RAFT_MSG_F_REJECT))
            return true;
        become_follower(r, m->term, from_leader(m->type) ? m->from : RAFT_NONE);
        return true;
    }
    if (m->term < r->term) {
        if (from_leader(m->type)) {
            /* Tell a deposed leader (which may not hear anyone else) about the new term. */
            msg_new(r, RAFT_MSG_APPEND_RESP, m->from);
        } else if (m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_VOTE) {
            /* Refuse with our term. A candidate whose configuration names only peers that
             * are ahead of it would otherwise never learn the term it has to beat. */
            bool pre = m->type == RAFT_MSG_PREVOTE;
            struct raft_msg *resp =
                msg_new(r, pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP, m->from);
            if (resp)
                resp->flags = RAFT_MSG_F_REJECT;
        }
        return false;
    }
    return true;
}

static int step_inner(struct raft *r, const struct raft_msg *m)
{
    if (m->to != r->id || m->from == RAFT_NONE || m->from == r->id ||
        m->type >= RAFT_MSG_TYPE_COUNT)
        return 0;
    if (!step_term(r, m))
        return 0;
    if (from_leader(m->type)) {
        if (r->role == RAFT_LEADER)
            return 0; /* another leader in our term cannot exist; drop */
        if (r->role != RAFT_FOLLOWER)
            become_follower(r, m->term, m->from);
        r->leader = m->from;
        r->election_elapsed = 0;
    }
    struct raft_progress *pr = progress_find(r, m->from);
    switch (m->type) {
    case RAFT_MSG_PREVOTE:
    case RAFT_MSG_VOTE:
        handle_vote_request(r, m);
        return 0;
    case RAFT_MSG_PREVOTE_RESP:
    case RAFT_MSG_VOTE_RESP:
        handle_vote_resp(r, m);
        return 0;
    case RAFT_MSG_APPEND:
        return handle_append(r, m);
    case RAFT_MSG_HEARTBEAT:
        handle_heartbeat(r, m);
        return 0;
    case RAFT_MSG_SNAPSHOT:
        handle_snapshot(r, m);
        return 0;
    case RAFT_MSG_APPEND_RESP:
    case RAFT_MSG_HEARTBEAT_RESP:
        if (r->role != RAFT_LEADER || !pr)
            return 0;
        pr->recent_active = 1;
        if (m->type == RAFT_MSG_APPEND_RESP)
            handle_append_resp(r, m, pr);
        else
            handle_heartbeat_resp(r, m, pr);
        return 0;
    case RAFT_MSG_TIMEOUT_NOW:
        if (r->role == RAFT_FOLLOWER)
            campaign(r, false, true);
        return 0;
    default:
        return 0;
    }
}

int raft_step(struct raft *r, const struct raft_msg *m, struct raft_ready *rd)
{
    struct raft_saved sv;
    begin(r, rd, &sv);
    int rc = step_inner(r, m);
    finish(r, &sv);
    return rc;
}

/* ---- tick ---------------------------------------------------------------------------- */

static void leader_tick(struct raft *r)
{
    if (++r->heartbeat_elapsed >= r->heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        for (uint32_t i = 0; i < r->n_progress; i++) {
            struct raft_progress *pr = &r->progress[i];
            if (pr->id == r->id)
                continue;
            struct raft_msg *m = msg_new(r, RAFT_MSG_HEARTBEAT, pr->id);
            if (m)
                m->commit = min_u64(r->commit, pr->match);
            pr->hb_mark[1] = pr->hb_mark[0];
            pr->hb_mark[0] = pr->next - 1;
        }
    }
    for (uint32_t i = 0; i < r->n_progress; i++) {
        struct raft_progress *pr = &r->progress[i];
        if (pr->state == RAFT_PR_SNAPSHOT && ++pr->snapshot_wait_ticks >= r->election_ticks) {
            progress_become_probe(pr, pr->match + 1); /* snapshot presumed lost: resend */
            send_append_loop(r, pr);
        }
    }
    if (r->transferee != RAFT_NONE && ++r->transfer_elapsed >= r->election_ticks) {
        r->transferee = RAFT_NONE;
        if (leader_leaving(r) && r->commit >= r->config_index) {
            leader_step_down(r); /* the hand-over failed: the voters elect as usual */
            return;
        }
    }
    if (++r->election_elapsed < r->election_ticks)
        return;
    r->election_elapsed = 0;
    if (!r->check_quorum)
        return;
    uint32_t active = 0;
    for (uint32_t i = 0; i < r->n_progress; i++) {
        struct raft_progress *pr = &r->progress[i];
        active += pr->voter && (pr->id == r->id || pr->recent_active);
        pr->recent_active = 0;
    }
    if (active < quorum(r->config.n_voters))
        leader_step_down(r);
}

int raft_tick(struct raft *r, struct raft_ready *rd)
{
    struct raft_saved sv;
    begin(r, rd, &sv);
    if (r->role == RAFT_LEADER) {
        leader_tick(r);
    } else if (++r->election_elapsed >= r->randomized_election_ticks) {
        r->election_elapsed = 0;
        if (is_voter(r)) {
            campaign(r, r->pre_vote, false);
        } else {
            /* No voter as far as it knows (a learner, removed, or perhaps just added): it
             * cannot campaign, but it must stop honouring a leader it has not heard from, or
             * it would refuse votes. */
            r->leader = RAFT_NONE;
            reset_election_timer(r);
        }
    }
    finish(r, &sv);
    return 0;
}

/* ---- transport notices ---------------------------------------------------------------- */

/* This node's position among the voters of its configuration, not counting `skip` (the
 * leader just lost): 0 for the first survivor. Every survivor computes the same order, so
 * their early campaigns are staggered rather than split. */
static uint32_t voter_rank(const struct raft *r, uint32_t skip)
{
    uint32_t rank = 0;
    for (uint32_t i = 0; i < r->config.n_voters; i++) {
        uint32_t v = r->config.voters[i];
        if (v == r->id)
            return rank;
        rank += v != skip;
    }
    return rank;
}

static void leader_unreachable(struct raft *r, uint32_t leader)
{
    /* Only pre-vote with check-quorum keeps an early campaign harmless: a node whose
     * connection merely flapped asks first, and voters that still hear the leader refuse. */
    if (!r->pre_vote || !r->check_quorum || leader == RAFT_NONE || r->role != RAFT_FOLLOWER ||
        r->leader != leader)
        return;
    uint32_t delay = 1 + 2 * voter_rank(r, leader);
    uint32_t left = r->randomized_election_ticks > r->election_elapsed
                        ? r->randomized_election_ticks - r->election_elapsed
                        : 1;
    if (left < delay)
        delay = left;
    /* The lease ends now (election_elapsed reaches election_ticks), so this node answers
     * the other survivors' pre-votes; a message from the leader restarts the count and,
     * the deadline being past election_ticks, leaves an ordinary timeout. */
    r->election_elapsed = r->election_ticks;
    r->randomized_election_ticks = r->election_ticks + delay;
#if RAFT_PLANT_BUG == 9
    r->vote = RAFT_NONE; /* "forgets" the leader with the vote that elected it */
    r->leader = RAFT_NONE;
#endif
}

int raft_leader_unreachable(struct raft *r, uint32_t leader, struct raft_ready *rd)
{
    struct raft_saved sv;
    begin(r, rd, &sv);
    leader_unreachable(r, leader);
    finish(r, &sv);
    return 0;
}

/* ---- proposals ----------------------------------------------------------------------- */

static int propose(struct raft *r, const struct raft_entry *entries, uint32_t n,
                   uint64_t *last_index)
{
    struct raft_entry tmp[RAFT_MAX_PROPOSAL];
    if (r->role != RAFT_LEADER)
        return RL_E_RAFT_NOT_LEADER;
    if (r->transferee != RAFT_NONE || leader_leaving(r))
        return RL_E_RAFT_TRANSFERRING;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += entries[i].count;
    if (r->last_index - r->commit + total > r->max_uncommitted)
        return RL_E_FULL;
    uint64_t index = r->last_index;
    for (uint32_t i = 0; i < n; i++) {
        tmp[i] = entries[i];
        index += entries[i].count;
        tmp[i].index = index;
        tmp[i].term = r->term;
    }
    int rc = ready_append(r, tmp, n);
    if (rc < 0)
        return rc;
    if (last_index)
        *last_index = index;
    broadcast_append(r);
    return 0;
}

int raft_propose(struct raft *r, const struct raft_entry *entries, uint32_t n,
                 struct raft_ready *rd, uint64_t *last_index)
{
    if (n == 0 || n > RAFT_MAX_PROPOSAL)
        return RL_E_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < n; i++)
        if (entries[i].type != RAFT_ENTRY_NORMAL || entries[i].count == 0 ||
            entries[i].count > RAFT_MAX_ENTRY_COUNT)
            return RL_E_INVALID_ARGUMENT;
    struct raft_saved sv;
    begin(r, rd, &sv);
    int rc = propose(r, entries, n, last_index);
    finish(r, &sv);
    return rc;
}

/* True when a quorum of cfg's voters already holds everything committed, so cfg can commit
 * its own entry one round trip after it is appended. A configuration whose quorum lags can
 * commit nothing, and the group takes no writes, until the laggards catch up; removing a
 * voter while another one is far behind is how a group stalls for as long as catch-up takes. */
static bool config_caught_up(struct raft *r, const struct raft_config *cfg)
{
    uint32_t ok = 0;
    for (uint32_t i = 0; i < cfg->n_voters; i++) {
        uint32_t id = cfg->voters[i];
        const struct raft_progress *pr = progress_find(r, id);
        uint64_t match = id == r->id ? r->durable_index : pr ? pr->match : 0;
        ok += match >= r->commit;
    }
    return ok >= quorum(cfg->n_voters);
}

static void ids_remove(uint32_t *ids, uint32_t *n, uint32_t id)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < *n; i++)
        if (ids[i] != id)
            ids[k++] = ids[i];
    *n = k;
}

/* Applies op to cfg; returns 0, RL_E_INVALID_ARGUMENT when it does not apply, or
 * RL_E_RAFT_CATCHING_UP for a learner to promote that lacks the commit index. */
static int conf_apply(struct raft *r, struct raft_config *cfg, enum raft_conf_op op, uint32_t id)
{
    bool member = config_is_member(cfg, id);
    const struct raft_progress *pr = progress_find(r, id);
    switch (op) {
    case RAFT_CONF_ADD_VOTER:
        if (member || cfg->n_voters >= RAFT_MAX_VOTERS)
            return RL_E_INVALID_ARGUMENT;
        cfg->voters[cfg->n_voters++] = id;
        return 0;
    case RAFT_CONF_ADD_LEARNER:
        if (member || cfg->n_learners >= RAFT_MAX_LEARNERS)
            return RL_E_INVALID_ARGUMENT;
        cfg->learners[cfg->n_learners++] = id;
        return 0;
    case RAFT_CONF_PROMOTE_LEARNER:
        if (!raft_config_is_learner(cfg, id) || cfg->n_voters >= RAFT_MAX_VOTERS)
            return RL_E_INVALID_ARGUMENT;
        if (!pr || pr->match < r->commit)
            return RL_E_RAFT_CATCHING_UP;
        ids_remove(cfg->learners, &cfg->n_learners, id);
        cfg->voters[cfg->n_voters++] = id;
        return 0;
    case RAFT_CONF_REMOVE_VOTER:
        if (!raft_config_is_voter(cfg, id) || cfg->n_voters == 1)
            return RL_E_INVALID_ARGUMENT;
        ids_remove(cfg->voters, &cfg->n_voters, id);
        return 0;
    case RAFT_CONF_REMOVE_LEARNER:
        if (!raft_config_is_learner(cfg, id))
            return RL_E_INVALID_ARGUMENT;
        ids_remove(cfg->learners, &cfg->n_learners, id);
        return 0;
    }
    return RL_E_INVALID_ARGUMENT;
}

static int conf_change(struct raft *r, enum raft_conf_op op, uint32_t node_id, uint64_t *index)
{
    if (r->role != RAFT_LEADER)
        return RL_E_RAFT_NOT_LEADER;
    if (r->pending_conf_index > r->commit || r->commit < r->term_start_index)
        return RL_E_RAFT_CONF_PENDING;
    struct raft_config cfg = r->config;
    int rc = conf_apply(r, &cfg, op, node_id);
    if (rc < 0)
        return rc;
    bool voters_change = op == RAFT_CONF_ADD_VOTER || op == RAFT_CONF_REMOVE_VOTER ||
                         op == RAFT_CONF_PROMOTE_LEARNER;
    if (voters_change && !config_caught_up(r, &cfg))
        return RL_E_RAFT_CATCHING_UP;
    struct raft_ready *rd = r->rd;
    uint8_t *buf = &rd->scratch[rd->scratch_used];
    uint32_t len = raft_config_encode(&cfg, buf);
    rd->scratch_used += len;
    struct raft_entry e = {.data = buf, .len = len, .count = 1, .type = RAFT_ENTRY_CONFIG};
    uint64_t last = 0;
    rc = propose(r, &e, 1, &last);
    if (rc < 0)
        return rc;
    r->pending_conf_index = last;
    if (index)
        *index = last;
    return 0;
}

int raft_propose_conf_change(struct raft *r, enum raft_conf_op op, uint32_t node_id,
                             struct raft_ready *rd, uint64_t *index)
{
    if (node_id == RAFT_NONE)
        return RL_E_INVALID_ARGUMENT;
    struct raft_saved sv;
    begin(r, rd, &sv);
    int rc = conf_change(r, op, node_id, index);
    finish(r, &sv);
    return rc;
}

int raft_transfer_leadership(struct raft *r, uint32_t target, struct raft_ready *rd)
{
    struct raft_saved sv;
    int rc = 0;
    begin(r, rd, &sv);
    struct raft_progress *pr = progress_find(r, target);
    if (r->role != RAFT_LEADER) {
        rc = RL_E_RAFT_NOT_LEADER;
    } else if (!pr || !pr->voter || target == r->id) {
        rc = RL_E_INVALID_ARGUMENT;
    } else {
        r->transferee = target;
        r->transfer_elapsed = 0;
        if (pr->match == r->last_index)
            send_timeout_now(r, target);
        else
            send_append_loop(r, pr);
    }
    finish(r, &sv);
    return rc;
}

int raft_send_more(struct raft *r, uint32_t to, struct raft_ready *rd)
{
    struct raft_saved sv;
    begin(r, rd, &sv);
    struct raft_progress *pr = r->role == RAFT_LEADER ? progress_find(r, to) : NULL;
    if (pr && pr->id != r->id)
        send_append_loop(r, pr);
    finish(r, &sv);
    return 0;
}

const struct raft_progress *raft_progress_of(const struct raft *r, uint32_t id)
{
    if (r->role != RAFT_LEADER)
        return NULL;
    for (uint32_t i = 0; i < r->n_progress; i++)
        if (r->progress[i].id == id)
            return &r->progress[i];
    return NULL;
}

/* ---- durability, compaction, init ---------------------------------------------------- */

int raft_persisted(struct raft *r, uint64_t index, uint64_t term, struct raft_ready *rd)
{
    struct raft_saved sv;
    begin(r, rd, &sv);
    if (index > r->durable_index && index <= r->last_index && index > r->snap_index &&
        term_at(r, index) == term) {
        r->durable_index = index;
        if (r->role == RAFT_LEADER) {
            maybe_commit(r);
        } else if (r->role == RAFT_FOLLOWER && r->leader != RAFT_NONE) {
            send_ack(r, r->leader);
        }
    }
    finish(r, &sv);
    return 0;
}

int raft_compact(struct raft *r, uint64_t index, struct raft_snapshot_meta *meta)
{
    if (index <= r->snap_index || index > r->commit || index > r->durable_index)
        return RL_E_INVALID_ARGUMENT;
    uint64_t term = term_at(r, index);
    if (term == 0)
        return RL_E_INVALID_ARGUMENT; /* not a boundary */
    struct raft_config cfg;
    uint64_t cfg_index;
    int rc = config_at(r, index, &cfg, &cfg_index);
    if (rc < 0)
        return rc;
    r->snap_term = term;
    r->snap_index = index;
    r->snap_config = cfg;
    r->snap_config_index = cfg_index;
    meta->index = index;
    meta->term = term;
    meta->config = cfg;
    meta->config_index = cfg_index;
    return 0;
}

int raft_init(struct raft *r, const struct raft_options *opt, const struct raft_hard_state *hs,
              const struct raft_snapshot_meta *snap)
{
    if (!opt || !opt->log_ops || !opt->log_ops->boundary || !opt->log_ops->config ||
        opt->id == RAFT_NONE || opt->election_ticks == 0 || opt->heartbeat_ticks == 0 ||
        opt->heartbeat_ticks >= opt->election_ticks || opt->max_inflight > RAFT_MAX_INFLIGHT ||
        !config_ids_valid(&snap->config))
        return RL_E_INVALID_ARGUMENT;
    memset(r, 0, sizeof(*r));
    r->id = opt->id;
    r->pre_vote = opt->pre_vote;
    r->check_quorum = opt->check_quorum;
    r->election_ticks = opt->election_ticks;
    r->heartbeat_ticks = opt->heartbeat_ticks;
    r->max_msg_entries = opt->max_msg_entries ? opt->max_msg_entries : 64;
    r->max_msg_bytes = opt->max_msg_bytes ? opt->max_msg_bytes : (1u << 20);
    r->max_inflight = opt->max_inflight ? opt->max_inflight : RAFT_MAX_INFLIGHT;
    r->max_uncommitted = opt->max_uncommitted ? opt->max_uncommitted : 1u << 16;
    r->rng = opt->seed ^ ((uint64_t)opt->id << 32);
    r->log_ops = opt->log_ops;
    r->log_ctx = opt->log_ctx;
    r->may_send = opt->may_send;
    r->flow_ctx = opt->flow_ctx;
    r->term = hs ? hs->term : 0;
    r->vote = hs ? hs->vote : RAFT_NONE;
    r->snap_index = snap->index;
    r->snap_term = snap->term;
    r->snap_config = snap->config;
    r->snap_config_index = snap->config_index;
    r->committed_config = snap->config;
    r->committed_config_index = snap->config_index;
    r->commit = snap->index;
    uint64_t last = r->log_ops->last_index(r->log_ctx);
    r->last_index = last > snap->index ? last : snap->index;
    r->last_term = r->last_index == snap->index ? snap->term : term_at(r, r->last_index);
    if (r->last_index > snap->index && r->last_term == 0)
        return RL_E_INVALID_ARGUMENT; /* the log's last index is no boundary of it */
    r->durable_index = r->last_index; /* what the log holds after a restart is on disk */
    r->role = RAFT_FOLLOWER;
    r->verified_index = r->commit;
    struct raft_config cfg;
    uint64_t cfg_index;
    r->config_index = UINT64_MAX; /* make config_at look through the log */
    int rc = config_at(r, r->last_index, &cfg, &cfg_index);
    if (rc < 0)
        return rc;
    set_config(r, &cfg, cfg_index);
    reset_election_timer(r);
    return 0;
}

const char *raft_role_name(enum raft_role role)
{
    static const char *const names[] = {"follower", "precandidate", "candidate", "leader"};
    return (unsigned)role < 4 ? names[role] : "?";
}

const char *raft_msg_type_name(enum raft_msg_type type)
{
    static const char *const names[RAFT_MSG_TYPE_COUNT] = {
        "prevote", "prevote_resp", "vote",      "vote_resp", "append",
        "append_resp", "heartbeat", "heartbeat_resp", "snapshot", "timeout_now"};
    return (unsigned)type < RAFT_MSG_TYPE_COUNT ? names[type] : "?";
}
