/*
 * raftlog: the partition log as a Raft log (see raftlog.h for the mapping and the contract).
 *
 * Invariants, stated once:
 *  - leo == plog_end_offset(plog) == the core's last index once a ready is carried out; every
 *    batch in the plog ends at a boundary.
 *  - epochs[] is sorted by epoch and by start; epochs[k] covers offsets [start_k, start_k+1)
 *    (the last one up to leo); no epoch starts at or beyond leo.
 *  - confs[] lists every configuration entry of the log (by index, ascending) at or above the
 *    log start that the checkpoint or a scan has seen; none beyond leo.
 *  - tail[] holds (boundary, term) of every batch appended since open, plus tail_lo: every
 *    boundary in [tail_lo, leo] is in it. Below tail_lo the plog's offset index answers.
 *  - covered: the checkpoint on disk describes epochs and configurations of offsets below it,
 *    and covered <= the commit index and the durable end when it was written: committed,
 *    durable entries are never truncated, so no truncation can make the checkpoint wrong.
 *  - While a truncation is under way (plog_truncate_to_async), appends wait in `queued` (their
 *    bytes copied) and go to the plog, in order, once it is done; leo counts them already.
 */
#include "replication/raftlog.h"

#include "common/batch.h"
#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"
#include "common/varint.h"
#include "io/io.h"
#include "storage/checkpoint.h"
#include "storage/plog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef RAFT_PLANT_BUG
#define RAFT_PLANT_BUG 0
#endif

#define RAFTLOG_CKPT_VERSION 2   /* 2 adds the plog reset it was written after; 1 still reads */
#define RAFTLOG_SNAP_META_BYTES (28 + RAFT_CONFIG_MAX_BYTES) /* meta kept with a plog reset */
#define RAFTLOG_SCAN_BYTES (1u << 20) /* read window of the open-time scan */
#define RAFTLOG_CTL_KEY_BYTES 4       /* control key: version i16, type i16 (big-endian) */
#define RAFTLOG_TAIL_MAX 512          /* tail boundaries kept (half dropped when reached) */
#define RAFTLOG_CTL_MAX_BYTES (RL_BATCH_HEADER_SIZE + 32 + RAFT_CONFIG_MAX_BYTES)
#define RAFTLOG_CLOSE_WAIT_NS (120ull * 1000000000ull) /* close waits this long for answers */

struct raftlog_arena {
    uint8_t *buf;
    size_t used, cap;
    /* The catch-up budget (raftlog_arena_set_catchup_rate): a token bucket on io's clock. */
    struct io *io;
    uint64_t rate;       /* bytes per second; 0: no limit */
    int64_t tokens;      /* bytes that may be read now (may go negative by one read) */
    uint64_t refilled_ns;
    struct raftlog_arena_stats stats;
    struct raftlog *blocked; /* raftlogs whose queued appends wait for write-buffer space */
};

struct epoch {
    uint64_t epoch;
    uint64_t start;
};

struct conf {
    uint64_t index;
    uint32_t len;
    uint8_t payload[RAFT_CONFIG_MAX_BYTES];
};

struct tail_entry {
    uint64_t index;
    uint64_t term;
};

/* An append waiting for a truncation to end (its bytes copied). */
struct queued {
    uint8_t *bytes;
    uint32_t len;
    uint64_t index, term;
    bool keep_offsets;
};

/* One append awaiting durability. */
struct pending {
    struct plog_append req;
    struct raftlog *rl;
    uint64_t index, term;
    struct pending *next_free;
};

struct raftlog {
    struct io *io;
    struct plog *plog;
    char *dir;
    struct raftlog_arena *arena;
    uint64_t leo, commit;
    struct epoch *epochs;
    uint32_t n_epochs, cap_epochs;
    struct conf *confs;
    uint32_t n_confs, cap_confs;
    struct tail_entry *tail;
    uint64_t tail_lo;
    uint32_t n_tail, cap_tail;
    uint64_t covered;          /* the checkpoint on disk covers offsets below this */
    uint64_t covered_bytes;    /* plog_size_bytes when it was written */
    bool dirty;                /* epochs or configurations changed since it was written */
    struct pending *free_pending;
    struct pending **chunks;   /* allocation chunks of pending appends (freed at close) */
    uint32_t n_chunks, n_inflight;
    uint64_t durable_index, durable_term;
    bool durable_new;
    void (*notify)(void *ctx);
    void *notify_ctx;
    int failed;
    bool truncating;          /* a plog_truncate_to_async is under way */
    bool retruncate;          /* ... and another one must follow it, to `retruncate_to` */
    uint64_t retruncate_to;
    struct queued *queue;     /* appends waiting for it, in order */
    uint32_t n_queue, cap_queue;
    uint8_t ctl[RAFTLOG_CTL_MAX_BYTES]; /* the control batch being appended */
    /* The latest snapshot installed (the plog's reset record): what the log starts after
     * when its start is still reset_at. */
    bool has_base;
    uint64_t reset_at;
    struct raft_snapshot_meta base;
    /* The plog refused an append for buffer space (RL_E_FULL: its write-buffer pool, shared by
     * every log of the storage, is lent out): the append and every later one wait in `queue`,
     * in order, and are retried whenever any raftlog of the arena completes an append or
     * finishes a ready. */
    bool blocked;
    struct raftlog *next_blocked;
};

/* ---- small helpers -------------------------------------------------------------------- */

static int grow(void **p, uint32_t *cap, uint32_t need, size_t size, uint32_t limit)
{
    if (need <= *cap)
        return 0;
    if (need > limit)
        return RL_E_LIMIT;
    uint32_t c = *cap ? *cap : 8;
    while (c < need)
        c *= 2;
    if (c > limit)
        c = limit;
    void *q = realloc(*p, (size_t)c * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* What the bucket holds at most: a tenth of a second's budget, at least 64 KiB. */
static uint64_t catchup_burst(const struct raftlog_arena *a)
{
    uint64_t b = a->rate / 10;
    return b < (64u << 10) ? (64u << 10) : b;
}

struct raftlog_arena *raftlog_arena_create(size_t cap_bytes)
{
    struct raftlog_arena *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->cap = cap_bytes < (64u << 10) ? (64u << 10) : cap_bytes;
    a->buf = malloc(a->cap);
    if (!a->buf) {
        free(a);
        return NULL;
    }
    return a;
}

void raftlog_arena_set_catchup_rate(struct raftlog_arena *a, struct io *io,
                                    uint64_t bytes_per_sec)
{
    a->io = io;
    a->rate = bytes_per_sec;
    a->tokens = (int64_t)catchup_burst(a);
    a->refilled_ns = io_now_ns(io);
}

void raftlog_arena_get_stats(const struct raftlog_arena *a, struct raftlog_arena_stats *out)
{
    *out = a->stats;
}

/* Bytes a catch-up read may take now (refilling the bucket first); <= 0: none this time. */
static int64_t catchup_tokens(struct raftlog_arena *a)
{
    uint64_t now = io_now_ns(a->io);
    if (now > a->refilled_ns) {
        uint64_t dt = now - a->refilled_ns;
        uint64_t add = dt >= 1000000000ull ? a->rate : (uint64_t)((__uint128_t)a->rate * dt /
                                                                  1000000000ull);
        int64_t cap = (int64_t)catchup_burst(a);
        a->tokens = a->tokens + (int64_t)add > cap ? cap : a->tokens + (int64_t)add;
        if (add > 0 || dt >= 1000000000ull)
            a->refilled_ns = now;
    }
    return a->tokens;
}

void raftlog_arena_destroy(struct raftlog_arena *a)
{
    if (a)
        free(a->buf);
    free(a);
}

void raftlog_stamp(uint8_t *batch, uint64_t base_offset, uint64_t term)
{
    batch_stamp(batch, base_offset, (uint32_t)term);
}

/* ---- control batches ------------------------------------------------------------------ */

int raftlog_control_batch(uint8_t *buf, size_t cap, int type, const void *payload, uint32_t len,
                          uint64_t base_offset, uint64_t term)
{
    uint8_t rec[32 + RAFT_CONFIG_MAX_BYTES];
    if (len > RAFT_CONFIG_MAX_BYTES)
        return RL_E_INVALID_ARGUMENT;
    /* The record body: attributes, timestamp delta, offset delta, key, value, headers. */
    size_t k = 0;
    rec[k++] = 0;
    k += varint_write64(rec + k, 0);
    k += varint_write32(rec + k, 0);
    k += varint_write32(rec + k, RAFTLOG_CTL_KEY_BYTES);
    rec[k++] = 0; /* key version 0, big-endian */
    rec[k++] = 0;
    rec[k++] = (uint8_t)(type >> 8);
    rec[k++] = (uint8_t)type;
    k += varint_write32(rec + k, (int32_t)len);
    if (len)
        memcpy(rec + k, payload, len);
    k += len;
    k += varint_write32(rec + k, 0);
    size_t total = RL_BATCH_HEADER_SIZE + varint_size32((int32_t)k) + k;
    if (total > cap)
        return -ENOBUFS;
    memset(buf, 0, RL_BATCH_HEADER_SIZE);
    rl_store_le32(buf + BATCH_OFF_BATCH_LEN, (uint32_t)total);
    buf[BATCH_OFF_MAGIC] = RL_BATCH_MAGIC;
    rl_store_le16(buf + BATCH_OFF_FLAGS, BATCH_FLAG_CONTROL);
    rl_store_le32(buf + BATCH_OFF_RECORD_COUNT, 1);
    rl_store_le64(buf + BATCH_OFF_PRODUCER_ID, UINT64_MAX); /* -1: not idempotent */
    rl_store_le16(buf + BATCH_OFF_PRODUCER_EPOCH, UINT16_MAX);
    rl_store_le32(buf + BATCH_OFF_BASE_SEQUENCE, UINT32_MAX);
    size_t p = RL_BATCH_HEADER_SIZE;
    p += varint_write32(buf + p, (int32_t)k);
    memcpy(buf + p, rec, k);
    rl_store_le64(buf + BATCH_OFF_CHECKSUM, batch_compute_checksum(buf, (uint32_t)total));
    batch_stamp(buf, base_offset, (uint32_t)term);
    return (int)total;
}

/* Parses a control batch of ours: *type and the value. Returns 1 when it is one, 0 when the
 * batch is data (or a control batch of another kind), or RL_E_CORRUPT. */
static int control_parse(const uint8_t *b, const struct batch_header *h, int *type,
                         const uint8_t **value, uint32_t *value_len)
{
    if (!(h->flags & BATCH_FLAG_CONTROL) || h->record_count != 1 ||
        (h->flags & BATCH_FLAG_CODEC_MASK) != BATCH_CODEC_NONE)
        return 0;
    const uint8_t *p = b + RL_BATCH_HEADER_SIZE, *end = b + h->batch_len;
    int32_t rec_len, v32, key_len, val_len;
    int64_t v64;
    size_t n;
    if (!(n = varint_read32(p, (size_t)(end - p), &rec_len)) || rec_len < 0 ||
        (size_t)rec_len != (size_t)(end - p) - n)
        return RL_E_CORRUPT;
    p += n + 1; /* attributes */
    if (p > end || !(n = varint_read64(p, (size_t)(end - p), &v64)))
        return RL_E_CORRUPT;
    p += n;
    if (!(n = varint_read32(p, (size_t)(end - p), &v32)))
        return RL_E_CORRUPT;
    p += n;
    if (!(n = varint_read32(p, (size_t)(end - p), &key_len)))
        return RL_E_CORRUPT;
    p += n;
    if (key_len != RAFTLOG_CTL_KEY_BYTES || end - p < RAFTLOG_CTL_KEY_BYTES)
        return 0;
    int t = (int)((uint32_t)p[2] << 8 | p[3]);
    if (p[0] != 0 || p[1] != 0 || (t != RAFTLOG_CTL_NOOP && t != RAFTLOG_CTL_CONFIG))
        return 0;
    p += RAFTLOG_CTL_KEY_BYTES;
    if (!(n = varint_read32(p, (size_t)(end - p), &val_len)) || val_len < 0 ||
        val_len > end - p - (ptrdiff_t)n)
        return RL_E_CORRUPT;
    p += n;
    *type = t;
    *value = p;
    *value_len = (uint32_t)val_len;
    return 1;
}

/* Turns one stored batch into the raft_entry the core sees. */
static int batch_to_entry(const uint8_t *b, size_t avail, struct raft_entry *e)
{
    struct batch_header h;
    int rc = batch_header_decode(b, avail, &h);
    if (rc < 0 || h.batch_len > avail)
        return rc < 0 ? rc : RL_E_BATCH_SHORT;
    e->index = h.base_offset + h.record_count;
    e->count = h.record_count;
    e->term = h.leader_epoch;
    int type;
    const uint8_t *value;
    uint32_t value_len;
    rc = control_parse(b, &h, &type, &value, &value_len);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        e->type = type == RAFTLOG_CTL_CONFIG ? RAFT_ENTRY_CONFIG : RAFT_ENTRY_NORMAL;
        e->data = value_len ? value : NULL;
        e->len = value_len;
    } else {
        e->type = RAFT_ENTRY_NORMAL;
        e->data = b;
        e->len = h.batch_len;
    }
    return (int)h.batch_len;
}

/* ---- epochs, configurations, tail ----------------------------------------------------- */

/* Position of the last epoch starting at or below `offset`, or -1. */
static int64_t epoch_at(const struct raftlog *rl, uint64_t offset)
{
    uint32_t lo = 0, hi = rl->n_epochs;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rl->epochs[mid].start <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int64_t)lo - 1;
}

static int epoch_note(struct raftlog *rl, uint64_t epoch, uint64_t start)
{
    if (rl->n_epochs && rl->epochs[rl->n_epochs - 1].epoch >= epoch)
        return rl->epochs[rl->n_epochs - 1].epoch == epoch ? 0 : RL_E_CORRUPT;
    int rc = grow((void **)&rl->epochs, &rl->cap_epochs, rl->n_epochs + 1, sizeof(struct epoch),
                  RAFTLOG_MAX_EPOCHS);
    if (rc < 0)
        return rc;
    rl->epochs[rl->n_epochs++] = (struct epoch){epoch, start};
    rl->dirty = true;
    return 0;
}

static int conf_note(struct raftlog *rl, uint64_t index, const void *payload, uint32_t len)
{
    if (len > RAFT_CONFIG_MAX_BYTES)
        return RL_E_CORRUPT;
    if (rl->n_confs && rl->confs[rl->n_confs - 1].index >= index)
        return 0; /* already known (a scan over what the checkpoint covers) */
    int rc = grow((void **)&rl->confs, &rl->cap_confs, rl->n_confs + 1, sizeof(struct conf),
                  RAFTLOG_MAX_CONFIGS);
    if (rc < 0)
        return rc;
    struct conf *c = &rl->confs[rl->n_confs++];
    c->index = index;
    c->len = len;
    memcpy(c->payload, payload, len);
    rl->dirty = true;
    return 0;
}

static int tail_note(struct raftlog *rl, uint64_t index, uint64_t term)
{
    int rc = grow((void **)&rl->tail, &rl->cap_tail, rl->n_tail + 1, sizeof(struct tail_entry),
                  UINT32_MAX / 2);
    if (rc < 0)
        return rc;
    rl->tail[rl->n_tail++] = (struct tail_entry){index, term};
    return 0;
}

/* Forgets what the log no longer holds after a truncation to `offset` (a boundary). */
static void forget_after(struct raftlog *rl, uint64_t offset)
{
    while (rl->n_epochs && rl->epochs[rl->n_epochs - 1].start >= offset) {
        rl->n_epochs--;
        rl->dirty = true;
    }
    while (rl->n_confs && rl->confs[rl->n_confs - 1].index > offset) {
        rl->n_confs--;
        rl->dirty = true;
    }
    while (rl->n_tail && rl->tail[rl->n_tail - 1].index > offset)
        rl->n_tail--;
    if (offset < rl->tail_lo) {
        rl->tail_lo = offset;
        rl->n_tail = 0;
    }
    if (rl->covered > offset)
        rl->covered = offset;
}

/* Term of the entry ending at `index` when index is a boundary of the tail, else 0. Only for
 * index >= tail_lo. */
static uint64_t tail_term(const struct raftlog *rl, uint64_t index)
{
    uint32_t lo = 0, hi = rl->n_tail;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rl->tail[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < rl->n_tail && rl->tail[lo].index == index ? rl->tail[lo].term : 0;
}

static uint64_t term_of_offset(const struct raftlog *rl, uint64_t offset)
{
    int64_t k = epoch_at(rl, offset);
    return k < 0 ? 0 : rl->epochs[k].epoch;
}

/* The batch holding `offset`: its base offset and end (the boundary after it). */
static int batch_around(struct raftlog *rl, uint64_t offset, uint64_t *base, uint64_t *end)
{
    struct plog_slice s;
    int rc = plog_read(rl->plog, offset, 1, UINT64_MAX, &s);
    if (rc < 0)
        return rc;
    if (s.len == 0)
        return RL_E_FULL; /* appended, not yet readable: only the tail knows it */
    *base = s.first_offset;
    *end = s.next_offset;
    plog_slice_release(rl->plog, &s);
    return 0;
}

/* Drops tail entries already readable from the plog once the tail reaches RAFTLOG_TAIL_MAX:
 * below tail_lo the plog's offset index answers. The tail's memory stays at 8 KiB per
 * partition; the hot queries (acks, commits, the next append's predecessor) are near the end. */
static void tail_trim(struct raftlog *rl)
{
    if (rl->n_tail < RAFTLOG_TAIL_MAX)
        return;
    uint32_t m = 0;
    while (m < rl->n_tail / 2 && rl->tail[m].index <= rl->durable_index)
        m++;
    if (m == 0)
        return;
    rl->tail_lo = rl->tail[m - 1].index;
    memmove(rl->tail, rl->tail + m, (rl->n_tail - m) * sizeof(*rl->tail));
    rl->n_tail -= m;
}

/* ---- struct raft_log_ops -------------------------------------------------------------- */

static uint64_t ops_last(void *ctx)
{
    return ((struct raftlog *)ctx)->leo;
}

static uint64_t start_term(struct raftlog *rl);
static void queue_clear(struct raftlog *rl, uint32_t keep);
static void unblock(struct raftlog *rl);
static void retry_blocked(struct raftlog_arena *a);

static uint64_t ops_term(void *ctx, uint64_t index)
{
    struct raftlog *rl = ctx;
    uint64_t start = plog_start_offset(rl->plog);
    if (index == start && index > 0)
        return start_term(rl); /* the core compacts up to the log start (raft_compact) */
    if (index == 0 || index > rl->leo || index < start)
        return 0;
    if (index >= rl->tail_lo) {
        if (index == rl->tail_lo)
            return term_of_offset(rl, index - 1);
        return tail_term(rl, index);
    }
    uint64_t base, end;
    if (batch_around(rl, index - 1, &base, &end) < 0 || end != index)
        return 0;
    return term_of_offset(rl, index - 1);
}

/* The largest boundary at or below `limit`, or 0 when none above the log start. */
static uint64_t boundary_below(struct raftlog *rl, uint64_t limit)
{
    uint64_t start = plog_start_offset(rl->plog);
    if (limit <= start)
        return 0;
    if (limit >= rl->tail_lo) {
        uint32_t lo = 0, hi = rl->n_tail;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (rl->tail[mid].index <= limit)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo ? rl->tail[lo - 1].index : (rl->tail_lo > start ? rl->tail_lo : 0);
    }
    uint64_t base, end;
    if (batch_around(rl, limit - 1, &base, &end) < 0)
        return 0;
    uint64_t b = end == limit ? limit : base;
    return b > start ? b : 0;
}

static uint64_t ops_boundary(void *ctx, uint64_t index, uint64_t max_term, uint64_t *term)
{
    struct raftlog *rl = ctx;
    uint32_t lo = 0, hi = rl->n_epochs; /* first epoch above max_term */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rl->epochs[mid].epoch <= max_term)
            lo = mid + 1;
        else
            hi = mid;
    }
    *term = 0;
    if (lo == 0)
        return 0;
    uint64_t limit = index < rl->leo ? index : rl->leo;
    if (lo < rl->n_epochs && rl->epochs[lo].start < limit)
        limit = rl->epochs[lo].start; /* where the first epoch above max_term begins */
    uint64_t b = boundary_below(rl, limit);
    if (b)
        *term = term_of_offset(rl, b - 1);
    return b;
}

static int ops_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                       struct raft_entry *out, uint32_t max_n)
{
    struct raftlog *rl = ctx;
    struct raftlog_arena *a = rl->arena;
    uint64_t offset = lo - 1, bytes = 0;
    uint32_t n = 0;
    /* Entries a quorum already holds go to a follower that is behind: catch-up, within the
     * loop's budget, so it cannot starve the appends producers wait for. */
    bool catchup = a->rate > 0 && lo <= rl->commit;
    if (catchup) {
        int64_t tokens = catchup_tokens(a);
        if (tokens <= 0) {
            a->stats.catchup_deferred++;
            return RL_E_FULL; /* later: the core retries on the next reply or heartbeat */
        }
        if ((uint64_t)tokens < max_bytes)
            max_bytes = (uint64_t)tokens;
    }
    while (n < max_n && offset < hi && bytes < max_bytes) {
        size_t room = a->cap - a->used;
        uint64_t want = max_bytes - bytes;
        int rc = plog_read_copy(rl->plog, offset, want < room ? (uint32_t)want : (uint32_t)room,
                                UINT64_MAX, a->buf + a->used, room);
        if (rc == 0 || rc == -ENOBUFS)
            break; /* not yet readable, or no room left in this ready */
        if (rc < 0)
            return n ? (int)n : rc;
        const uint8_t *p = a->buf + a->used;
        a->used += (size_t)rc;
        for (size_t k = 0; k < (size_t)rc && n < max_n;) {
            struct raft_entry e;
            int len = batch_to_entry(p + k, (size_t)rc - k, &e);
            if (len < 0)
                return len;
            if (e.index <= offset || e.index - e.count != offset)
                return RL_CORRUPT(rl->dir, k, offset, "batches do not follow one another");
            if (e.index > hi)
                return n ? (int)n : RL_E_INTERNAL;
            out[n++] = e;
            offset = e.index;
            bytes += (uint64_t)len;
            k += (size_t)len;
        }
    }
    if (catchup) {
        a->tokens -= (int64_t)bytes;
        a->stats.catchup_bytes += bytes;
    }
    return n ? (int)n : RL_E_FULL;
}

static int ops_config(void *ctx, uint64_t index, struct raft_entry *out)
{
    struct raftlog *rl = ctx;
    uint32_t lo = 0, hi = rl->n_confs;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rl->confs[mid].index <= index)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    const struct conf *c = &rl->confs[lo - 1];
    struct raftlog_arena *a = rl->arena;
    if (a->cap - a->used < c->len)
        return RL_E_FULL;
    uint8_t *copy = a->buf + a->used; /* stays put for the ready, whatever confs[] does */
    memcpy(copy, c->payload, c->len);
    a->used += c->len;
    *out = (struct raft_entry){.index = c->index, .count = 1, .type = RAFT_ENTRY_CONFIG,
                               .term = term_of_offset(rl, c->index - 1), .data = copy,
                               .len = c->len};
    return 1;
}

const struct raft_log_ops raftlog_ops = {
    .last_index = ops_last,
    .term = ops_term,
    .boundary = ops_boundary,
    .entries = ops_entries,
    .config = ops_config,
};

/* ---- checkpoint ----------------------------------------------------------------------- */

/* Layout (little-endian): u32 version | u64 covered | u32 n_epochs | u32 n_confs |
 * [version 2: u64 reset_at, the plog reset it describes the log after, 0: none] |
 * n_epochs x (u64 epoch, u64 start) | n_confs x (u64 index, u32 len, len bytes). Epochs wholly
 * below the entry ending at the log start are left out. A checkpoint written before the plog's
 * latest reset describes a log that is gone: it is ignored. */
static int ckpt_save(struct raftlog *rl)
{
    uint64_t start = plog_start_offset(rl->plog);
    uint64_t covered = rl->commit < rl->durable_index ? rl->commit : rl->durable_index;
    if (covered > rl->leo)
        covered = rl->leo;
    if (covered < rl->covered)
        covered = rl->covered; /* what an earlier checkpoint covered is still immutable */
    int64_t first = epoch_at(rl, start ? start - 1 : 0); /* the term of the start's entry too */
    uint32_t e0 = first < 0 ? 0 : (uint32_t)first;
    size_t cap = 28 + (size_t)(rl->n_epochs - e0) * 16 + (size_t)rl->n_confs * (12 + 64);
    uint8_t *buf = malloc(cap + (size_t)rl->n_confs * RAFT_CONFIG_MAX_BYTES);
    if (!buf)
        return -ENOMEM;
    size_t k = 28;
    uint32_t n_confs = 0;
    uint32_t n_epochs = 0;
    for (uint32_t i = e0; i < rl->n_epochs && rl->epochs[i].start < covered; i++, k += 16) {
        rl_store_le64(buf + k, rl->epochs[i].epoch);
        rl_store_le64(buf + k + 8, rl->epochs[i].start);
        n_epochs++;
    }
    for (uint32_t i = 0; i < rl->n_confs && rl->confs[i].index <= covered; i++, n_confs++) {
        rl_store_le64(buf + k, rl->confs[i].index);
        rl_store_le32(buf + k + 8, rl->confs[i].len);
        memcpy(buf + k + 12, rl->confs[i].payload, rl->confs[i].len);
        k += 12 + rl->confs[i].len;
    }
    rl_store_le32(buf, RAFTLOG_CKPT_VERSION);
    rl_store_le64(buf + 4, covered);
    rl_store_le32(buf + 12, n_epochs);
    rl_store_le32(buf + 16, n_confs);
    rl_store_le64(buf + 20, rl->has_base ? rl->reset_at : 0);
    int rc = checkpoint_save(rl->io, rl->dir, RAFTLOG_CHECKPOINT, buf, k, CHECKPOINT_DURABLE);
    free(buf);
    if (rc < 0)
        return rc;
    rl->covered = covered;
    rl->covered_bytes = plog_size_bytes(rl->plog);
    rl->dirty = false;
    return 0;
}

/* Loads the checkpoint; a missing or damaged one leaves everything to the scan. */
static int ckpt_load(struct raftlog *rl)
{
    size_t cap = CHECKPOINT_MAX_PAYLOAD;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    int len = checkpoint_load(rl->io, rl->dir, RAFTLOG_CHECKPOINT, buf, cap);
    int rc = 0;
    uint32_t version = len >= 20 ? rl_load_le32(buf) : 0;
    if ((version != 1 && version != 2) || (version == 2 && len < 28))
        goto out; /* none (or damaged, already reported): scan the whole log */
    uint64_t ck_reset = version == 2 ? rl_load_le64(buf + 20) : 0;
    if (ck_reset != (rl->has_base ? rl->reset_at : 0))
        goto out; /* written before the latest snapshot install: the log it describes is gone */
    uint64_t covered = rl_load_le64(buf + 4);
    uint32_t n_epochs = rl_load_le32(buf + 12), n_confs = rl_load_le32(buf + 16);
    size_t k = version == 2 ? 28 : 20;
    for (uint32_t i = 0; i < n_epochs && rc == 0; i++, k += 16) {
        if (k + 16 > (size_t)len)
            goto bad;
        rc = epoch_note(rl, rl_load_le64(buf + k), rl_load_le64(buf + k + 8));
    }
    for (uint32_t i = 0; i < n_confs && rc == 0; i++) {
        if (k + 12 > (size_t)len || k + 12 + rl_load_le32(buf + k + 8) > (size_t)len)
            goto bad;
        uint32_t clen = rl_load_le32(buf + k + 8);
        rc = conf_note(rl, rl_load_le64(buf + k), buf + k + 12, clen);
        k += 12 + clen;
    }
    if (rc < 0)
        goto bad;
    rl->covered = covered;
    goto out;
bad:
    RL_CORRUPT(rl->dir, k, covered, "raft-state checkpoint does not parse; rebuilding it");
    rl->n_epochs = rl->n_confs = 0;
    rc = 0;
out:
    free(buf);
    return rc;
}

/* Reads the log from `from` to its end, noting epochs and configurations. */
static int scan_from(struct raftlog *rl, uint64_t from)
{
    size_t cap = RAFTLOG_SCAN_BYTES;
    uint8_t *buf = malloc(cap);
    int rc = 0;
    uint64_t offset = from;
    while (buf && offset < rl->leo) {
        rc = plog_read_copy(rl->plog, offset, (uint32_t)cap, UINT64_MAX, buf, cap);
        if (rc == -ENOBUFS && cap < RL_BATCH_MAX_BYTES) { /* one batch bigger than the window */
            cap = RL_BATCH_MAX_BYTES;
            uint8_t *bigger = realloc(buf, cap);
            if (!bigger)
                break;
            buf = bigger;
            continue;
        }
        if (rc <= 0)
            break;
        /* got, not rc: rc takes each note's result, and a window must be walked to its end
         * (ending the walk after its first batch re-reads the window for every batch). */
        size_t got = (size_t)rc;
        for (size_t k = 0; k < got;) {
            struct raft_entry e;
            int len = batch_to_entry(buf + k, got - k, &e);
            if (len < 0) {
                rc = len;
                goto out;
            }
            uint64_t start = e.index - e.count;
            if ((rc = epoch_note(rl, e.term, start)) < 0)
                goto out;
            if (e.type == RAFT_ENTRY_CONFIG && (rc = conf_note(rl, e.index, e.data, e.len)) < 0)
                goto out;
            offset = e.index;
            k += (size_t)len;
        }
        rc = 0;
    }
out:
    if (!buf)
        return -ENOMEM;
    free(buf);
    if (rc == 0 && offset < rl->leo)
        rc = RL_E_INTERNAL;
    return rc;
}

/* Whether the epochs agree with the log where it is cheap to look: some epoch covers the log
 * start, and the last batch carries the last epoch. A checkpoint that fails this (a bug, or a
 * file from elsewhere) is dropped and the log read back instead. */
static bool epochs_plausible(struct raftlog *rl)
{
    uint64_t start = plog_start_offset(rl->plog);
    if (rl->leo <= start)
        return true;
    if (rl->n_epochs == 0 || rl->epochs[0].start > start)
        return false;
    struct raftlog_arena *a = rl->arena;
    uint64_t base, end;
    if (batch_around(rl, rl->leo - 1, &base, &end) < 0)
        return false;
    int rc = plog_read_copy(rl->plog, base, 1, UINT64_MAX, a->buf, a->cap);
    struct batch_header h;
    bool ok = rc > 0 && batch_header_decode(a->buf, (size_t)rc, &h) == 0 &&
              h.leader_epoch == rl->epochs[rl->n_epochs - 1].epoch;
    a->used = 0;
    return ok;
}

/* ---- snapshots: the log restarted at the leader's log start ---------------------------- */

static uint32_t meta_encode(const struct raft_snapshot_meta *m, uint8_t *buf)
{
    rl_store_le64(buf, m->index);
    rl_store_le64(buf + 8, m->term);
    rl_store_le64(buf + 16, m->config_index);
    uint32_t n = raft_config_encode(&m->config, buf + 28);
    rl_store_le32(buf + 24, n);
    return 28 + n;
}

static int meta_decode(const uint8_t *buf, size_t len, struct raft_snapshot_meta *m)
{
    if (len < 28 || rl_load_le32(buf + 24) != len - 28)
        return RL_E_CORRUPT;
    m->index = rl_load_le64(buf);
    m->term = rl_load_le64(buf + 8);
    m->config_index = rl_load_le64(buf + 16);
    return raft_config_decode(buf + 28, (uint32_t)(len - 28), &m->config);
}

/* Reads the plog's reset record: the snapshot the log was last restarted at. */
static int base_load(struct raftlog *rl)
{
    uint8_t buf[RAFTLOG_SNAP_META_BYTES];
    uint64_t at;
    int n = plog_reset_meta(rl->plog, &at, buf, sizeof(buf));
    if (n == -ENOENT)
        return 0;
    if (n < 0)
        return n;
    if (meta_decode(buf, (size_t)n, &rl->base) < 0 || rl->base.index != at)
        return RL_CORRUPT(rl->dir, 0, at, "the snapshot record of the log's last restart "
                          "does not parse; the partition must be restored from a replica");
    rl->has_base = true;
    rl->reset_at = at;
    return 0;
}

/* The term of the entry ending at the log start, or 0 when unknown (the start is inside a
 * batch, or the epochs below it were not kept). */
static uint64_t start_term(struct raftlog *rl)
{
    uint64_t start = plog_start_offset(rl->plog);
    if (rl->has_base && rl->base.index == start)
        return rl->base.term;
    if (start < rl->leo) {
        uint64_t base, end;
        if (batch_around(rl, start, &base, &end) < 0 || base != start)
            return 0;
    } else if (start != rl->tail_lo && !tail_term(rl, start)) {
        return 0;
    }
    return term_of_offset(rl, start - 1);
}

int raftlog_snapshot(struct raftlog *rl, const struct raft_config *initial,
                     struct raft_snapshot_meta *out)
{
    uint64_t start = plog_start_offset(rl->plog);
    if (rl->has_base && rl->base.index == start) {
        *out = rl->base;
        return 0;
    }
    memset(out, 0, sizeof(*out));
    out->config = *initial;
    if (start == 0)
        return 0;
    out->term = start_term(rl);
    if (out->term == 0) {
        RL_WARN("%s: the term of the entry ending at the log start %llu is unknown (a start "
                "inside a batch, or a checkpoint of an earlier version); the group starts "
                "from index 0 and cannot send a snapshot until its log start moves again",
                rl->dir, (unsigned long long)start);
        return 0;
    }
    out->index = start;
    uint32_t lo = 0, hi = rl->n_confs; /* the latest configuration entry at or below start */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (rl->confs[mid].index <= start)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0) {
        out->config_index = rl->confs[lo - 1].index;
        return raft_config_decode(rl->confs[lo - 1].payload, rl->confs[lo - 1].len,
                                  &out->config);
    }
    if (rl->has_base) {
        out->config_index = rl->base.config_index;
        out->config = rl->base.config;
    }
    return 0;
}

/* Installs snapshot s: the plog restarts empty at s->index (durably, with s as its meta), and
 * every index of the old log is forgotten. Blocks (plog_reset_to): rare, once per replica that
 * fell behind its leader's log start. */
static int install(struct raftlog *rl, const struct raft_snapshot_meta *s)
{
    uint8_t meta[RAFTLOG_SNAP_META_BYTES];
    if (s->index <= rl->commit || s->index <= plog_start_offset(rl->plog))
        return RL_E_INTERNAL; /* the core installs only past its commit index */
    queue_clear(rl, 0); /* appends waiting for a truncation or space: their log is going */
    unblock(rl);
    rl->retruncate = false;
    uint32_t n = meta_encode(s, meta);
    int rc = plog_reset_to(rl->plog, s->index, meta, n);
    if (rc < 0)
        return rc;
    RL_ASSERTF(rl->n_inflight == 0 && !rl->truncating, "raftlog %s: appends outlived a reset",
               rl->dir);
    rl->leo = rl->commit = rl->covered = rl->tail_lo = s->index;
    rl->n_epochs = rl->n_confs = rl->n_tail = 0;
    rl->durable_index = s->index;
    rl->durable_term = s->term;
    rl->durable_new = false; /* the core counts the snapshot durable itself */
    rl->has_base = true;
    rl->reset_at = s->index;
    rl->base = *s;
    rl->dirty = true;
    return ckpt_save(rl); /* so the next open need not read the log back */
}

int raftlog_open(struct io *io, struct plog *log, const char *dir, struct raftlog_arena *arena,
                 struct raftlog **out)
{
    struct raftlog *rl = calloc(1, sizeof(*rl));
    if (!rl || !(rl->dir = strdup(dir))) {
        free(rl);
        return -ENOMEM;
    }
    rl->io = io;
    rl->plog = log;
    rl->arena = arena;
    rl->leo = plog_end_offset(log);
    int rc = base_load(rl);
    if (rc == 0)
        rc = ckpt_load(rl);
    if (rc == 0) {
        uint64_t start = plog_start_offset(log);
        rl->dirty = false; /* what was loaded is what the disk holds */
        forget_after(rl, rl->leo); /* recovery may have cut a torn tail it described */
        rc = scan_from(rl, rl->covered > start ? rl->covered : start);
        if (rc == 0 && !epochs_plausible(rl)) {
            RL_CORRUPT(dir, 0, rl->leo, "raft-state checkpoint contradicts the log; rebuilding");
            rl->n_epochs = rl->n_confs = 0;
            rl->covered = 0;
            rl->dirty = true;
            rc = scan_from(rl, start);
        }
    }
    rl->tail_lo = rl->leo;
    rl->durable_index = rl->leo; /* what the log holds after open is on disk */
    if (rc < 0) {
        raftlog_close(rl);
        return rc;
    }
    rl->covered_bytes = plog_size_bytes(log);
    *out = rl;
    return 0;
}

static void queue_clear(struct raftlog *rl, uint32_t keep)
{
    for (uint32_t i = keep; i < rl->n_queue; i++)
        free(rl->queue[i].bytes);
    rl->n_queue = keep;
    if (keep == 0)
        unblock(rl);
}

void raftlog_close(struct raftlog *rl)
{
    if (!rl)
        return;
    /* Every append and truncation must have answered before the memory they answer into goes
     * (after a power cut they answer with errors). Bounded. */
    uint64_t deadline = io_now_ns(rl->io) + RAFTLOG_CLOSE_WAIT_NS;
    while ((rl->n_inflight || rl->truncating) && io_now_ns(rl->io) < deadline)
        io_run(rl->io, 1000000);
    RL_ASSERTF(rl->n_inflight == 0 && !rl->truncating, "raftlog %s: appends never answered",
               rl->dir);
    if (!rl->failed && rl->dirty)
        ckpt_save(rl); /* best effort: the next open reads what it does not cover */
    queue_clear(rl, 0);
    free(rl->queue);
    for (uint32_t i = 0; i < rl->n_chunks; i++)
        free(rl->chunks[i]);
    free(rl->chunks);
    free(rl->epochs);
    free(rl->confs);
    free(rl->tail);
    free(rl->dir);
    free(rl);
}

/* ---- the write side ------------------------------------------------------------------- */

#define PENDING_CHUNK 256

static struct pending *pending_get(struct raftlog *rl)
{
    if (rl->n_inflight >= RAFTLOG_MAX_INFLIGHT)
        return NULL;
    if (!rl->free_pending) {
        struct pending **chunks = realloc(rl->chunks, (rl->n_chunks + 1) * sizeof(*chunks));
        if (!chunks)
            return NULL;
        rl->chunks = chunks;
        struct pending *c = calloc(PENDING_CHUNK, sizeof(*c));
        if (!c)
            return NULL;
        rl->chunks[rl->n_chunks++] = c;
        for (uint32_t i = 0; i < PENDING_CHUNK; i++) {
            c[i].next_free = rl->free_pending;
            rl->free_pending = &c[i];
        }
    }
    struct pending *p = rl->free_pending;
    rl->free_pending = p->next_free;
    rl->n_inflight++;
    return p;
}

static void pending_put(struct raftlog *rl, struct pending *p)
{
    p->next_free = rl->free_pending;
    rl->free_pending = p;
    rl->n_inflight--;
}

/* Completions arrive in append order, so the latest one is the log's durable end. */
static void append_done(struct plog_append *req, int result)
{
    struct pending *p = req->ctx;
    struct raftlog *rl = p->rl;
    if (result < 0) {
        if (!rl->failed)
            rl->failed = result;
    } else {
        rl->durable_index = p->index;
        rl->durable_term = p->term;
        rl->durable_new = true;
    }
    pending_put(rl, p);
    if (rl->arena->blocked)
        retry_blocked(rl->arena); /* a completed write may have given buffer space back */
    if (rl->notify)
        rl->notify(rl->notify_ctx);
}

void raftlog_set_notify(struct raftlog *rl, void (*fn)(void *ctx), void *ctx)
{
    rl->notify = fn;
    rl->notify_ctx = ctx;
}

static int fail(struct raftlog *rl, int rc)
{
    if (!rl->failed)
        rl->failed = rc;
    return rc;
}

static int issue(struct raftlog *rl, const uint8_t *bytes, uint32_t len, uint64_t index,
                 uint64_t term, bool keep_offsets);
static int truncate_start(struct raftlog *rl, uint64_t after);

static void unblock(struct raftlog *rl)
{
    if (!rl->blocked)
        return;
    for (struct raftlog **p = &rl->arena->blocked; *p; p = &(*p)->next_blocked)
        if (*p == rl) {
            *p = rl->next_blocked;
            break;
        }
    rl->blocked = false;
}

static void block(struct raftlog *rl)
{
    if (rl->blocked)
        return;
    rl->blocked = true;
    rl->next_blocked = rl->arena->blocked;
    rl->arena->blocked = rl;
    rl->arena->stats.appends_blocked++;
}

/* Hands the queued appends to the plog in order, as far as it takes them: the rest stay queued
 * (blocked) when it is out of buffer space. */
static void queue_flush(struct raftlog *rl)
{
    uint32_t i = 0;
    int rc = 0;
    for (; i < rl->n_queue && !rl->failed; i++) {
        struct queued *q = &rl->queue[i];
        rc = issue(rl, q->bytes, q->len, q->index, q->term, q->keep_offsets);
        if (rc == RL_E_FULL)
            break;
        free(q->bytes);
        if (rc < 0 && !rl->failed)
            rl->failed = rc;
    }
    if (rl->failed) {
        queue_clear(rl, i < rl->n_queue ? i : rl->n_queue);
        rl->n_queue = 0;
        unblock(rl);
        return;
    }
    memmove(rl->queue, rl->queue + i, (rl->n_queue - i) * sizeof(*rl->queue));
    rl->n_queue -= i;
    if (rl->n_queue)
        block(rl);
    else
        unblock(rl);
}

/* Retries the appends of every blocked raftlog of the arena (bounded: one pass; a log that is
 * still refused stays on the list). */
static void retry_blocked(struct raftlog_arena *a)
{
    struct raftlog *list = a->blocked;
    a->blocked = NULL;
    for (struct raftlog *rl = list, *next; rl; rl = next) {
        next = rl->next_blocked;
        rl->blocked = false;
        if (!rl->truncating)
            queue_flush(rl);
        else
            block(rl); /* the truncation's end sends them */
    }
}

/* The plog's truncation ended: start the one asked for meanwhile, or send the queued appends. */
static void truncate_done(void *ctx, int result)
{
    struct raftlog *rl = ctx;
    rl->truncating = false;
    if (result < 0 && !rl->failed)
        rl->failed = result;
    if (rl->failed) {
        queue_clear(rl, 0);
        return;
    }
    if (rl->retruncate) {
        rl->retruncate = false;
        int rc = truncate_start(rl, rl->retruncate_to);
        if (rc < 0 && !rl->failed)
            rl->failed = rc;
        return;
    }
    queue_flush(rl);
}

static int truncate_start(struct raftlog *rl, uint64_t after)
{
    rl->truncating = true;
    int rc = plog_truncate_to_async(rl->plog, after, truncate_done, rl);
    if (rc < 0)
        rl->truncating = false;
    return rc;
}

/* Cuts the log after `after` (a boundary at or above the commit index). The plog cuts in memory
 * at once and the files in the background; appends wait until it is done. A second cut asked
 * meanwhile trims the queue, or follows the first when it reaches below it. */
static int truncate_to(struct raftlog *rl, uint64_t after)
{
    if (after < rl->commit || after > rl->leo)
        return RL_E_INTERNAL; /* the core never asks this; refusing keeps committed data */
    uint64_t plog_leo = plog_end_offset(rl->plog);
    int rc = 0;
    if (!rl->truncating) {
        rc = after < plog_leo ? truncate_start(rl, after) : 0;
    } else if (after < plog_leo) {
        rl->retruncate = true; /* below what the first cut keeps */
        rl->retruncate_to = after;
        queue_clear(rl, 0);
    }
    uint32_t keep = 0; /* queued appends at or below `after` stay */
    while (keep < rl->n_queue && rl->queue[keep].index <= after)
        keep++;
    queue_clear(rl, keep);
    if (rc < 0)
        return rc;
    rl->leo = after;
    forget_after(rl, after);
    if (rl->durable_index > after) {
        rl->durable_index = after; /* the core ignores a report for an index it truncated */
        rl->durable_new = false;
    }
    return 0;
}

/* Queues an append behind a truncation under way (a copy: the bytes live only as long as the
 * ready). */
static int enqueue(struct raftlog *rl, const uint8_t *bytes, uint32_t len, uint64_t index,
                   uint64_t term, bool keep_offsets)
{
    int rc = grow((void **)&rl->queue, &rl->cap_queue, rl->n_queue + 1, sizeof(*rl->queue),
                  RAFTLOG_MAX_INFLIGHT);
    uint8_t *copy = rc == 0 ? malloc(len) : NULL;
    if (!copy)
        return rc < 0 ? rc : -ENOMEM;
    memcpy(copy, bytes, len);
    rl->queue[rl->n_queue++] = (struct queued){copy, len, index, term, keep_offsets};
    return 0;
}

/* Hands one batch to the plog (at its end, which must be where the batch starts). Planted bug
 * 7 (tests/sim, never in the production object) reports it durable as soon as it is handed
 * over, as a glue that trusted the page cache would. */
static int issue(struct raftlog *rl, const uint8_t *bytes, uint32_t len, uint64_t index,
                 uint64_t term, bool keep_offsets)
{
    struct pending *p = pending_get(rl);
    if (!p)
        return RL_E_FULL;
    p->rl = rl;
    p->index = index;
    p->term = term;
    memset(&p->req, 0, sizeof(p->req));
    p->req.batch = bytes;
    p->req.len = len;
    p->req.leader_epoch = (uint32_t)term;
    p->req.keep_offsets = keep_offsets;
    p->req.done = append_done;
    p->req.ctx = p;
    uint64_t start = plog_end_offset(rl->plog);
    int rc = plog_append(rl->plog, &p->req);
    if (rc < 0) {
        pending_put(rl, p);
        return rc;
    }
    RL_ASSERTF(p->req.base_offset == start && p->req.last_offset + 1 == index,
               "raftlog %s: batch placed at %llu..%llu, the entry is ..%llu", rl->dir,
               (unsigned long long)p->req.base_offset, (unsigned long long)p->req.last_offset,
               (unsigned long long)index);
#if RAFT_PLANT_BUG == 7
    rl->durable_index = index;
    rl->durable_term = term;
    rl->durable_new = true;
#endif
    return 0;
}

/* Appends one entry: a data batch as it is, a no-op or configuration as a control batch. */
static int append_one(struct raftlog *rl, const struct raft_entry *e, bool leader)
{
    uint64_t start = e->index - e->count;
    const uint8_t *bytes = e->data;
    uint32_t len = e->len;
    if (start != rl->leo)
        return RL_E_INTERNAL;
    if (e->type == RAFT_ENTRY_CONFIG || e->len == 0) {
        int type = e->type == RAFT_ENTRY_CONFIG ? RAFTLOG_CTL_CONFIG : RAFTLOG_CTL_NOOP;
        int n = raftlog_control_batch(rl->ctl, sizeof(rl->ctl), type, e->data, e->len, start,
                                      e->term);
        if (n < 0 || e->count != 1)
            return n < 0 ? n : RL_E_INVALID_ARGUMENT;
        bytes = rl->ctl;
        len = (uint32_t)n;
    } else {
        struct batch_header h;
        int rc = batch_header_decode(bytes, len, &h);
        if (rc < 0 || h.batch_len != len || h.record_count != e->count || h.base_offset != start)
            return rc < 0 ? rc : RL_E_INVALID_ARGUMENT; /* unstamped or not this entry */
    }
    int rc = epoch_note(rl, e->term, start);
    if (rc == 0 && e->type == RAFT_ENTRY_CONFIG)
        rc = conf_note(rl, e->index, e->data, e->len);
    if (rc == 0)
        rc = rl->truncating || rl->n_queue ? enqueue(rl, bytes, len, e->index, e->term, !leader)
                                            : issue(rl, bytes, len, e->index, e->term, !leader);
    if (rc == RL_E_FULL && !rl->truncating) { /* no buffer space now: wait for some */
        rc = enqueue(rl, bytes, len, e->index, e->term, !leader);
        if (rc == 0)
            block(rl);
    }
    if (rc < 0)
        return rc;
    rl->leo = e->index;
    return tail_note(rl, e->index, e->term);
}

int raftlog_apply(struct raftlog *rl, const struct raft_ready *rd)
{
    if (rl->failed)
        return rl->failed;
    if (rd->has_snapshot) {
        int rc = install(rl, &rd->snapshot);
        if (rc < 0)
            return fail(rl, rc);
    }
    if (rd->has_truncate) {
        int rc = truncate_to(rl, rd->truncate_after);
        if (rc < 0)
            return fail(rl, rc);
    }
    for (uint32_t i = 0; i < rd->n_append; i++) {
        int rc = append_one(rl, &rd->append[i], rd->role == RAFT_LEADER);
        if (rc < 0)
            return fail(rl, rc);
    }
    tail_trim(rl);
    return rl->failed;
}

void raftlog_ready_done(struct raftlog *rl)
{
    rl->arena->used = 0;
    if (rl->arena->blocked)
        retry_blocked(rl->arena);
}

bool raftlog_take_durable(struct raftlog *rl, uint64_t *index, uint64_t *term)
{
    if (!rl->durable_new)
        return false;
    rl->durable_new = false;
    *index = rl->durable_index;
    *term = rl->durable_term;
    return true;
}

void raftlog_set_commit(struct raftlog *rl, uint64_t commit)
{
    if (commit > rl->commit)
        rl->commit = commit;
}

int raftlog_maintain(struct raftlog *rl, uint64_t max_uncovered)
{
    if (rl->failed)
        return rl->failed;
    bool grown = max_uncovered && plog_size_bytes(rl->plog) - rl->covered_bytes > max_uncovered;
    if (!rl->dirty && !grown)
        return 0;
    int rc = ckpt_save(rl);
    return rc < 0 ? rc : 1;
}

uint64_t raftlog_log_start(const struct raftlog *rl)
{
    return plog_start_offset(rl->plog);
}

int raftlog_failed(const struct raftlog *rl)
{
    return rl->failed;
}
