/*
 * idempotence: producer ids, epochs and the produce path's checks (see idempotence.h; each
 * partition's state lives in idem_state.c, the shared structures in idem_int.h).
 *
 * Producer ids: ids below `next_id` were handed out; ids below `block_end` are recorded in the
 * metadata log as reserved. A restart starts at the recorded block end, so an id reserved before
 * a crash is never handed out again, even if the crash lost which of its block were used.
 *
 * Epochs: `epochs` maps an id to the newest epoch handed out for it (open addressing with
 * backward-shift deletion, bounded by IDEM_MAX_PRODUCERS; entries idle past
 * producer.id.expiration.ms are dropped). The produce path fences a batch whose epoch is older
 * than that, even on a partition the newer epoch has not written yet. The map is not persisted:
 * after a restart an id's epoch is recovered from the partitions' producer state when a
 * producer asks to bump it (every partition is loaded first, in the background). In a cluster
 * a broker's map knows only the bumps it answered: a newer epoch was handed out by another
 * broker (or bumped by the producer itself, as libringlog does) and is taken as current. What
 * keeps an old epoch's batch out after a bump is each partition's state: it fences an epoch
 * older than the newest it recorded.
 *
 * A snapshot describes the log up to its visible end only (what is durable): batches recorded
 * whose append has not completed are left out, so a crash cannot leave a snapshot claiming
 * offsets the log lost (which later appends would fill with other producers' batches). A load
 * trusts nothing at or past the snapshot's next offset, nor past the log end the run opened
 * with, and replays the log from there.
 */
#include "broker/delivery/idem_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/meta/meta.h"
#include "broker/partition/partition.h"
#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/checkpoint.h"

_Static_assert(IDEM_BLOCK_SIZE == META_PRODUCER_ID_BLOCK, "one producer-id block size");
#include "storage/plog.h"

#define IDEM_EPOCH_SLOTS (2u * IDEM_MAX_PRODUCERS) /* power of two; load factor <= 0.5 */
#define IDEM_EXPIRE_EVERY_MS 1000
/* Besides rolls, a snapshot once this many bytes were appended and this long has passed since
 * the last one, so replay after a crash reads a bounded part of a large active segment. */
#define IDEM_SNAPSHOT_EVERY_BYTES (256ull << 20)
/* A follower takes up a partition's producer state once its committed log holds more than
 * this many offsets: below it the log is the leaders' no-ops and configuration entries. */
#define IDEM_FOLLOW_MIN_OFFSETS 16
#define IDEM_SNAPSHOT_MIN_INTERVAL_MS 10000

/* --- epoch map -------------------------------------------------------------------------------- */

static uint32_t idem_hash(int64_t id)
{
    return (uint32_t)(((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 32) & (IDEM_EPOCH_SLOTS - 1);
}

static struct idem_epoch *idem_epoch_find(const struct idem *id, int64_t producer_id)
{
    uint32_t i = idem_hash(producer_id);
    for (uint32_t n = 0; n < IDEM_EPOCH_SLOTS; n++, i = (i + 1) & (IDEM_EPOCH_SLOTS - 1)) {
        if (id->epochs[i].producer_id == producer_id)
            return &id->epochs[i];
        if (id->epochs[i].producer_id < 0)
            return NULL;
    }
    return NULL;
}

static void idem_epoch_remove(struct idem *id, uint32_t hole)
{
    uint32_t j = hole, mask = IDEM_EPOCH_SLOTS - 1;
    for (uint32_t n = 0; n < mask; n++) {
        j = (j + 1) & mask;
        if (id->epochs[j].producer_id < 0)
            break;
        uint32_t home = idem_hash(id->epochs[j].producer_id);
        /* Move j into the hole when its home is not cyclically within (hole, j]. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            id->epochs[hole] = id->epochs[j];
            hole = j;
        }
    }
    id->epochs[hole].producer_id = -1;
    id->n_epochs--;
}

static void idem_epoch_expire(struct idem *id, int64_t now_ms)
{
    for (uint32_t i = 0; i < IDEM_EPOCH_SLOTS; i++) {
        for (uint32_t guard = 0; guard < IDEM_EPOCH_SLOTS; guard++) {
            struct idem_epoch *e = &id->epochs[i];
            if (e->producer_id < 0 || now_ms - e->last_ms <= id->expiration_ms)
                break;
            idem_epoch_remove(id, i);
        }
    }
}

static int idem_epoch_set(struct idem *id, int64_t producer_id, int16_t epoch, int64_t now_ms)
{
    struct idem_epoch *e = idem_epoch_find(id, producer_id);
    if (!e) {
        if (id->n_epochs >= IDEM_MAX_PRODUCERS)
            idem_epoch_expire(id, now_ms);
        if (id->n_epochs >= IDEM_MAX_PRODUCERS)
            return RL_E_LIMIT;
        uint32_t i = idem_hash(producer_id);
        while (id->epochs[i].producer_id >= 0)
            i = (i + 1) & (IDEM_EPOCH_SLOTS - 1);
        e = &id->epochs[i];
        e->producer_id = producer_id;
        id->n_epochs++;
    }
    e->epoch = epoch;
    e->last_ms = now_ms;
    return 0;
}

/* --- create / destroy ------------------------------------------------------------------------- */

struct idem *idem_create(struct meta *meta, struct bg *bg, const char *data_dir,
                         int64_t expiration_ms)
{
    struct idem *id = calloc(1, sizeof(*id));
    if (!id)
        return NULL;
    id->epochs = malloc(sizeof(*id->epochs) * IDEM_EPOCH_SLOTS);
    id->scratch = malloc(CHECKPOINT_MAX_PAYLOAD);
    if (!id->epochs || !id->scratch) {
        idem_destroy(id);
        return NULL;
    }
    for (uint32_t i = 0; i < IDEM_EPOCH_SLOTS; i++)
        id->epochs[i].producer_id = -1;
    id->meta = meta;
    id->io = meta_io(meta);
    id->bg = bg;
    snprintf(id->data_dir, sizeof(id->data_dir), "%s", data_dir);
    id->expiration_ms = expiration_ms;
    id->block_end = meta_producer_id_block_end(meta);
    id->next_id = id->block_end;
    return id;
}

void idem_destroy(struct idem *id)
{
    if (!id)
        return;
    free(id->epochs);
    free(id->scratch);
    free(id);
}

/* --- InitProducerId --------------------------------------------------------------------------- */

/* Ids below this may have been handed out: this broker's next id; in a cluster also any id of
 * a block another broker recorded (its producers write to partitions this broker owns). */
static int64_t idem_issued_end(const struct idem *id)
{
    int64_t end = id->next_id;
    if (meta_node_id(id->meta)) {
        int64_t recorded = meta_producer_id_block_end(id->meta);
        if (recorded > end)
            end = recorded;
    }
    return end;
}

/* In a cluster, an id past every block this broker's metadata has applied: another broker may
 * have handed it out from a block the controller committed and this node has not learnt of
 * yet. Not a gap the producer must restart its sequences over, only a wait (the caller answers
 * RL_E_PRODUCER_ID_NOT_YET_KNOWN; msg says so). */
static bool idem_id_not_yet_known(const struct idem *id, int64_t producer_id, char *msg,
                                  size_t msg_cap)
{
    if (!meta_node_id(id->meta) || producer_id < idem_issued_end(id))
        return false;
    snprintf(msg, msg_cap, "producer id %lld lies past the id blocks this broker has seen "
             "recorded (up to %lld): its metadata lags the broker that handed it out; the "
             "producer retries until it catches up", (long long)producer_id,
             (long long)idem_issued_end(id));
    return true;
}

/* Hands out the next id with epoch 0. Returns 0, 1 when the reserved block is used up (a new
 * one must be recorded first), or RL_E_LIMIT with in->msg set. */
static int idem_new_id(struct idem *id, struct idem_init *in)
{
    if (id->next_id >= id->block_end)
        return 1;
    int rc = idem_epoch_set(id, id->next_id, 0, in->now_ms);
    if (rc) {
        snprintf(in->msg, sizeof(in->msg), "too many live producers (%u); wait for idle ones "
                 "to expire (producer.id.expiration.ms)", IDEM_MAX_PRODUCERS);
        return rc;
    }
    in->out_id = id->next_id++;
    in->out_epoch = 0;
    return 0;
}

static void idem_block_recorded(struct meta_proposal *pr);

/* Records the next block of ids in the metadata log (in the background), unless already under
 * way; the waiting InitProducerIds are served once it is committed. */
static void idem_reserve_block(struct idem *id)
{
    if (id->reserving)
        return;
    id->reserving = true;
    id->block_pr.done = idem_block_recorded;
    id->block_pr.ctx = id;
    /* In a cluster other brokers record blocks too: the next block starts after every block
     * recorded so far (the metadata state), not only after this broker's own. */
    int64_t recorded = meta_producer_id_block_end(id->meta);
    id->reserve_base = recorded > id->block_end ? recorded : id->block_end;
    meta_propose_producer_ids(id->meta, &id->block_pr, id->reserve_base + IDEM_BLOCK_SIZE);
}

static void idem_block_recorded(struct meta_proposal *pr)
{
    struct idem *id = pr->ctx;
    id->reserving = false;
    if (pr->rc == RL_E_INVALID_ARGUMENT && id->reserve_retries < IDEM_BLOCK_RETRIES) {
        /* Another broker's block was committed first (the controller refuses a block that
         * does not start past every recorded one): ask again past it. */
        id->reserve_retries++;
        return idem_reserve_block(id);
    }
    id->reserve_retries = 0;
    if (pr->rc == 0) {
        /* This broker's ids are those of its own block, [reserve_base, its end). */
        id->block_end = id->reserve_base + IDEM_BLOCK_SIZE;
        if (id->next_id < id->reserve_base)
            id->next_id = id->reserve_base;
    }
    for (uint32_t guard = 0; id->waiting && guard < 10000000; guard++) {
        struct idem_init *in = id->waiting;
        in->rc = pr->rc;
        if (pr->rc)
            snprintf(in->msg, sizeof(in->msg), "%s", pr->msg);
        else if ((in->rc = idem_new_id(id, in)) == 1)
            return idem_reserve_block(id); /* used up again: the rest wait for the next one */
        id->waiting = in->next;
        if (!id->waiting)
            id->waiting_tail = NULL;
        in->done(in);
    }
}

/* A fresh id for `in`: at once (returns 0 or an error), or after the next block is recorded
 * (returns 1; in->done runs then). */
static int idem_new_id_or_wait(struct idem *id, struct idem_init *in)
{
    int rc = id->waiting ? 1 : idem_new_id(id, in);
    if (rc != 1)
        return rc;
    in->next = NULL;
    if (id->waiting_tail)
        id->waiting_tail->next = in;
    else
        id->waiting = in;
    id->waiting_tail = in;
    idem_reserve_block(id);
    return 1;
}

/* The newest epoch any loaded partition holds for the id, or -1. */
static int16_t idem_epoch_from_partitions(const struct idem *id, int64_t producer_id)
{
    int16_t best = -1;
    for (const struct idem_part *ip = id->parts; ip; ip = ip->next) {
        if (!ip->ps)
            continue;
        int e = pstate_producer_epoch(ip->ps, producer_id);
        if (e > best)
            best = (int16_t)e;
    }
    return best;
}

/* Bumps in's epoch from `current`, the id's newest epoch (-1: unknown, trust the producer). */
static int idem_bump(struct idem *id, struct idem_init *in, int32_t current)
{
    int64_t producer_id = in->producer_id;
    int32_t epoch = in->epoch;
    if (current < 0)
        current = epoch; /* unknown after a restart and nothing stored: trust the producer */
    if (epoch < current) {
        snprintf(in->msg, sizeof(in->msg), "producer %lld epoch %d is fenced: epoch %d was "
                 "handed out since", (long long)producer_id, epoch, current);
        return in->rc = RL_E_PRODUCER_FENCED;
    }
    if (epoch > current && meta_node_id(id->meta))
        current = epoch; /* bumped by another broker, which this one's map never heard of */
    if (epoch > current) {
        snprintf(in->msg, sizeof(in->msg), "producer %lld epoch %d was never handed out "
                 "(current %d)", (long long)producer_id, epoch, current);
        return in->rc = RL_E_INVALID_PRODUCER_EPOCH;
    }
    if (current == INT16_MAX)
        return in->rc = idem_new_id_or_wait(id, in);
    int rc = idem_epoch_set(id, producer_id, (int16_t)(current + 1), in->now_ms);
    if (rc) {
        snprintf(in->msg, sizeof(in->msg), "too many live producers (%u)", IDEM_MAX_PRODUCERS);
        return in->rc = rc;
    }
    in->out_id = producer_id;
    in->out_epoch = (int16_t)(current + 1);
    return 0;
}

/* An epoch bump for an id the epoch map does not know (after a restart): every partition's
 * state is loaded first (once per process, in the background), so a fenced instance cannot bump
 * itself back to the epoch that fenced it. Returns as idem_init_producer. */
static int idem_bump_unknown(struct idem *id, struct idem_init *in)
{
    for (size_t i = 0; i < meta_topic_count(id->meta); i++) {
        const struct meta_topic *t = meta_topic_at(id->meta, i);
        for (uint32_t k = 0; k < t->partition_count; k++) {
            struct idem_part *ip = t->parts[k] ? idem_part_get(id, t->parts[k]) : NULL;
            if (ip)
                idem_part_load(id, ip);
        }
    }
    if (!idem_loads_busy(id))
        return idem_bump(id, in, idem_epoch_from_partitions(id, in->producer_id));
    in->next = NULL;
    if (id->bump_waiting_tail)
        id->bump_waiting_tail->next = in;
    else
        id->bump_waiting = in;
    id->bump_waiting_tail = in;
    return 1;
}

void idem_loads_drained(struct idem *id)
{
    for (uint32_t guard = 0; id->bump_waiting && guard < 10000000; guard++) {
        struct idem_init *in = id->bump_waiting;
        id->bump_waiting = in->next;
        if (!id->bump_waiting)
            id->bump_waiting_tail = NULL;
        const struct idem_epoch *e = idem_epoch_find(id, in->producer_id);
        int32_t current = e ? e->epoch : idem_epoch_from_partitions(id, in->producer_id);
        if (idem_bump(id, in, current) != 1) /* 1: waits for a block of ids, done runs then */
            in->done(in);
    }
}

int idem_init_producer(struct idem *id, struct idem_init *in, int64_t now_ms)
{
    int64_t producer_id = in->producer_id;
    id->now_ms = now_ms;
    in->now_ms = now_ms;
    in->rc = 0;
    in->msg[0] = 0;
    in->out_id = -1;
    in->out_epoch = -1;
    if (producer_id >= 0 && idem_id_not_yet_known(id, producer_id, in->msg, sizeof(in->msg)))
        return in->rc = RL_E_PRODUCER_ID_NOT_YET_KNOWN;
    if (producer_id < -1 || (producer_id >= 0 && producer_id >= idem_issued_end(id))) {
        snprintf(in->msg, sizeof(in->msg), "producer id %lld was never handed out by this "
                 "broker; ask for a new one with producer_id -1", (long long)producer_id);
        return in->rc = RL_E_UNKNOWN_PRODUCER_ID;
    }
    if (producer_id == -1)
        return in->rc = idem_new_id_or_wait(id, in);
    if (in->epoch < 0 || in->epoch > INT16_MAX) {
        snprintf(in->msg, sizeof(in->msg), "producer epoch %d is out of range [0, %d]",
                 in->epoch, INT16_MAX);
        return in->rc = RL_E_INVALID_PRODUCER_EPOCH;
    }
    const struct idem_epoch *e = idem_epoch_find(id, producer_id);
    return e ? idem_bump(id, in, e->epoch) : idem_bump_unknown(id, in);
}

/* --- produce path ----------------------------------------------------------------------------- */

int idem_check(struct idem *id, struct partition *p, const struct batch_header *h,
               int64_t now_ms, struct pstate_verdict *v, char *msg, size_t msg_cap)
{
    const char *tn = partition_topic(p);
    memset(v, 0, sizeof(*v));
    if (idem_id_not_yet_known(id, h->producer_id, msg, msg_cap))
        return RL_E_PRODUCER_ID_NOT_YET_KNOWN; /* retriable: no word on the sequence */
    if (h->producer_id >= idem_issued_end(id)) {
        snprintf(msg, msg_cap, "producer id %lld was never handed out; call InitProducerId",
                 (long long)h->producer_id);
        return RL_E_UNKNOWN_PRODUCER_ID;
    }
    if (h->producer_epoch < 0 || h->base_sequence < 0) {
        snprintf(msg, msg_cap, "idempotent batch for %s-%u has a negative %s", tn,
                 partition_index(p), h->producer_epoch < 0 ? "producer epoch" : "base sequence");
        return h->producer_epoch < 0 ? RL_E_INVALID_PRODUCER_EPOCH
                                     : RL_E_OUT_OF_ORDER_SEQUENCE;
    }
    const struct idem_epoch *e = idem_epoch_find(id, h->producer_id);
    if (e && h->producer_epoch < e->epoch) {
        id->st.fenced++;
        snprintf(msg, msg_cap, "producer %lld epoch %d is fenced by epoch %d",
                 (long long)h->producer_id, h->producer_epoch, e->epoch);
        return RL_E_PRODUCER_FENCED;
    }
    id->now_ms = now_ms;
    struct idem_part *ip = idem_part_get(id, p);
    if (!ip) {
        snprintf(msg, msg_cap, "producer state of %s-%u is unavailable: %s", tn,
                 partition_index(p), rl_strerror(-ENOMEM));
        return -ENOMEM;
    }
    if (ip->ps && partition_replicated(p) && ip->lead_gen != partition_lead_generation(p)) {
        /* This replica became the leader again: while it followed, other leaders appended
         * batches. A follower's table holds the committed log below `applied` and only that:
         * it goes on from there to the visible end, which is the whole log once the no-op
         * committed (a leader takes appends only then). A table that still holds appends of
         * an earlier leadership (its deposal not yet seen by idem_tick) may hold what a
         * truncation cut: it is rebuilt from the snapshot, which is committed. */
        if (ip->led) { /* may hold what a truncation cut */
            pstate_destroy(ip->ps);
            ip->ps = NULL;
            ip->dirty = false;
            ip->led = false;
        } else {
            idem_part_resume(id, ip);
        }
    }
    if (!ip->ps || ip->loading || ip->load_queued) {
        idem_part_load(id, ip);
        return IDEM_PENDING; /* the caller waits with idem_wait_loaded */
    }
    int rc = pstate_check(ip->ps, h->producer_id, h->producer_epoch, h->base_sequence,
                      h->record_count, v);
    if (rc == RL_E_LIMIT) {
        pstate_expire(ip->ps, now_ms, id->expiration_ms);
        if (idem_part_grow(id, ip) == 0 || pstate_count(ip->ps) < ip->max_producers)
            rc = pstate_check(ip->ps, h->producer_id, h->producer_epoch, h->base_sequence,
                              h->record_count, v);
    }
    switch (rc) {
    case 0:
        break;
    case RL_E_DUPLICATE_SEQUENCE:
        id->st.duplicates++;
        break;
    case RL_E_OUT_OF_ORDER_SEQUENCE:
        id->st.out_of_order++;
        snprintf(msg, msg_cap, "producer %lld sent sequence %d to %s-%u; expected %d",
                 (long long)h->producer_id, h->base_sequence, tn, partition_index(p),
                 v->expected_sequence);
        break;
    case RL_E_PRODUCER_FENCED:
        id->st.fenced++;
        snprintf(msg, msg_cap, "producer %lld epoch %d is fenced on %s-%u by epoch %d",
                 (long long)h->producer_id, h->producer_epoch, tn, partition_index(p),
                 v->current_epoch);
        break;
    case RL_E_UNKNOWN_PRODUCER_ID:
        snprintf(msg, msg_cap, "%s-%u has no state for producer %lld (expired or removed by "
                 "retention) and its batch starts at sequence %d, not 0; bump the epoch",
                 tn, partition_index(p), (long long)h->producer_id, h->base_sequence);
        break;
    case RL_E_LIMIT:
        snprintf(msg, msg_cap, "%s-%u tracks its maximum of %u producers", tn,
                 partition_index(p), IDEM_PART_MAX_PRODUCERS);
        break;
    default:
        snprintf(msg, msg_cap, "%s", rl_strerror(rc));
        break;
    }
    return rc;
}

void idem_record(struct idem *id, struct partition *p, const struct batch_header *h,
                 uint64_t base_offset, int64_t now_ms)
{
    struct idem_part *ip = partition_attachment(p);
    RL_ASSERT(ip && ip->ps); /* idem_check loaded it */
    if (idem_part_record(id, ip, h, base_offset, now_ms))
        RL_WARN("%s-%u: producer state full; producer %lld not recorded", partition_topic(p),
                partition_index(p), (long long)h->producer_id);
    struct idem_epoch *e = idem_epoch_find(id, h->producer_id);
    if (e) {
        if (h->producer_epoch > e->epoch)
            e->epoch = h->producer_epoch;
        e->last_ms = now_ms;
    }
}

/* --- maintenance ------------------------------------------------------------------------------ */

/* A follower's table is ready for upkeep (expiry, snapshots, then idem_follow_apply) unless
 * it is being replayed, or it holds appends of this replica's leadership: those may be what
 * the new leader's log cut, so it is rebuilt from the snapshot (committed, so never cut). */
static bool idem_follow_ready(struct idem *id, struct idem_part *ip)
{
    if (ip->loading || ip->load_queued)
        return false;
    if (ip->led) { /* appends of its leadership, maybe cut */
        pstate_destroy(ip->ps);
        ip->ps = NULL;
        ip->dirty = false;
        ip->led = false;
        idem_part_load(id, ip);
        return false;
    }
    return true;
}

/* A follower's table applies what committed since the last tick (a replay from `applied`,
 * short), so a leader change needs only the tail. After the snapshot checks: the table is
 * away while it is replayed. */
static void idem_follow_apply(struct idem *id, struct idem_part *ip)
{
    if (!ip->ps || ip->loading || ip->load_queued || partition_gone(ip->p))
        return;
    if (partition_visible_end(ip->p) > ip->applied) {
        idem_part_resume(id, ip);
    }
}

static void idem_upkeep(struct idem *id, struct idem_part *ip, int64_t now_ms, bool expire);

static void idem_tick_partition(struct idem *id, struct idem_part *ip, int64_t now_ms,
                                bool expire)
{
    struct partition *p = ip->p;
    if (!ip->ps)
        return; /* being loaded (or its load failed: the next idempotent batch retries) */
    if (partition_replicated(p) && !partition_leads(p)) {
        if (!idem_follow_ready(id, ip))
            return;
        idem_upkeep(id, ip, now_ms, expire); /* expiry and snapshots, as a leader's */
        idem_follow_apply(id, ip);
        return;
    }
    idem_upkeep(id, ip, now_ms, expire);
}

/* Expiry and snapshots of a table that is in place. */
static void idem_upkeep(struct idem *id, struct idem_part *ip, int64_t now_ms, bool expire)
{
    struct partition *p = ip->p;
    if (partition_replicated(p) && partition_leads(p) &&
        ip->lead_gen != partition_lead_generation(p))
        return; /* a new leader's table is brought up to date by its first idem_check */
    if (expire) {
        uint32_t n = pstate_expire(ip->ps, now_ms, id->expiration_ms);
        id->st.expired += n;
        ip->dirty |= n > 0;
    }
    if (ip->dirty && !partition_gone(p) &&
        partition_stats(p)->bytes_in - ip->bytes_at_snapshot >= IDEM_SNAPSHOT_EVERY_BYTES &&
        now_ms - ip->snapshot_ms >= IDEM_SNAPSHOT_MIN_INTERVAL_MS)
        idem_part_snapshot(id, ip, now_ms);
    uint32_t segs = partition_segment_count(p);
    if (segs == ip->seen_segments)
        return;
    /* The log rolled (or retention removed segments): a snapshot bounds the next replay to
     * the new active segment. */
    bool rolled = segs > ip->seen_segments;
    ip->seen_segments = segs;
    if (!rolled || partition_gone(p))
        return;
    idem_part_snapshot(id, ip, now_ms);
}

/* Takes up the producer state of replicated partitions this replica follows and holds none of
 * (from then on idem_follow keeps it up to date), so their first leadership here needs only a
 * short replay. Only into free load slots with nothing queued: a produce's load or an epoch
 * bump never waits behind more than IDEM_MAX_LOADS of them. */
static void idem_adopt(struct idem *id)
{
    for (size_t i = 0; i < meta_topic_count(id->meta); i++) {
        const struct meta_topic *t = meta_topic_at(id->meta, i);
        if (meta_topic_internal(t->name))
            continue; /* clients may not produce to it */
        for (uint32_t k = 0; k < t->partition_count; k++) {
            struct partition *p = t->parts[k];
            if (!p || !partition_replicated(p) || partition_leads(p) || partition_gone(p) ||
                partition_attachment(p) ||
                partition_visible_end(p) - partition_start_offset(p) <= IDEM_FOLLOW_MIN_OFFSETS)
                continue;
            if (id->load_head || id->loads_inflight >= IDEM_MAX_LOADS)
                return;
            struct idem_part *ip = idem_part_get(id, p);
            if (!ip)
                return;
            ip->adopted = true;
            idem_part_load(id, ip);
        }
    }
}

void idem_tick(struct idem *id, int64_t now_ms)
{
    id->now_ms = now_ms;
    bool expire = now_ms - id->last_expire_ms >= IDEM_EXPIRE_EVERY_MS;
    if (expire) {
        id->last_expire_ms = now_ms;
        idem_epoch_expire(id, now_ms);
    }
    uint64_t producers = 0;
    uint32_t loaded = 0;
    /* Only partitions idempotent producers use have state; the others are never looked at. */
    for (struct idem_part *ip = id->parts; ip; ip = ip->next) {
        idem_tick_partition(id, ip, now_ms, expire);
        if (ip->ps) {
            loaded++;
            producers += pstate_count(ip->ps);
        }
    }
    idem_adopt(id);
    id->st.partitions_loaded = loaded;
    id->st.partition_producers = producers;
}

void idem_get_stats(const struct idem *id, struct idem_stats *out)
{
    *out = id->st;
    out->producers = id->n_epochs;
}
