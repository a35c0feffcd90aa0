/*
 * pstate: idempotent-producer state of one partition (see pstate.h).
 *
 * The table is open addressing with linear probing and backward-shift deletion, so expiring and
 * truncating never leave tombstones behind and lookups stay short without periodic rebuilds.
 * Capacity is a power of two at least twice max_producers, keeping the load factor <= 0.5.
 */
#include "broker/delivery/pstate.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"

#define PSTATE_EMPTY (-1)
#define PSTATE_SNAPSHOT_MAGIC 0x53504c52u /* "RLPS" */
#define PSTATE_SNAPSHOT_VERSION 2u
/* Snapshot layout (little-endian): magic u32 | version u32 | next_offset i64 | count u32 |
 * entries | checksum u64 (xxh3-64 of everything before it). Each entry: producer_id i64 |
 * epoch i16 | batch_count u8 | last_ms i64 | batch_count x (first_seq i32 | last_seq i32 |
 * base_offset i64 | last_offset i64).
 * Version 2 (the same bytes) promises that every batch in it ends below next_offset; the
 * decoder refuses one that does not. Version 1 made no such promise (its next_offset counted
 * batches whose append had not completed), so its reader must not trust it blindly. */
#define PSTATE_SNAPSHOT_HEAD 20
#define PSTATE_ENTRY_HEAD 19
#define PSTATE_BATCH_BYTES 24

struct pstate_batch {
    int32_t first_seq;
    int32_t last_seq;
    int64_t base_offset;
    int64_t last_offset;
};

struct pstate_entry {
    int64_t producer_id; /* PSTATE_EMPTY for a free slot */
    int64_t last_ms;
    int16_t epoch;
    uint8_t batch_count;
    struct pstate_batch batches[PSTATE_BATCHES_KEPT]; /* oldest first */
};

struct pstate {
    struct pstate_entry *slots;
    uint32_t mask;
    uint32_t count;
    uint32_t max_producers;
};

static uint32_t pstate_hash(int64_t producer_id)
{
    uint64_t x = (uint64_t)producer_id * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(x >> 32);
}

/* Sequence arithmetic wraps from INT32_MAX to 0, as the producer's does. */
static int32_t seq_add(int32_t seq, uint32_t n)
{
    int64_t r = (int64_t)seq + (int64_t)n;
    if (r > INT32_MAX)
        r -= (int64_t)INT32_MAX + 1;
    return (int32_t)r;
}

struct pstate *pstate_create(uint32_t max_producers)
{
    if (max_producers == 0 || max_producers > (1u << 28))
        return NULL;
    uint32_t cap = 16;
    while (cap < 2 * max_producers)
        cap <<= 1;
    struct pstate *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return NULL;
    ps->slots = malloc(sizeof(*ps->slots) * cap);
    if (!ps->slots) {
        free(ps);
        return NULL;
    }
    for (uint32_t i = 0; i < cap; i++)
        ps->slots[i].producer_id = PSTATE_EMPTY;
    ps->mask = cap - 1;
    ps->max_producers = max_producers;
    return ps;
}

void pstate_destroy(struct pstate *ps)
{
    if (!ps)
        return;
    free(ps->slots);
    free(ps);
}

uint32_t pstate_count(const struct pstate *ps)
{
    return ps->count;
}

static struct pstate_entry *pstate_find(const struct pstate *ps, int64_t producer_id)
{
    uint32_t i = pstate_hash(producer_id) & ps->mask;
    for (uint32_t probes = 0; probes <= ps->mask; probes++, i = (i + 1) & ps->mask) {
        struct pstate_entry *e = &ps->slots[i];
        if (e->producer_id == producer_id)
            return e;
        if (e->producer_id == PSTATE_EMPTY)
            return NULL;
    }
    return NULL;
}

int pstate_producer_epoch(const struct pstate *ps, int64_t producer_id)
{
    const struct pstate_entry *e = producer_id >= 0 ? pstate_find(ps, producer_id) : NULL;
    return e ? e->epoch : -1;
}

static struct pstate_entry *pstate_insert(struct pstate *ps, int64_t producer_id)
{
    if (ps->count >= ps->max_producers)
        return NULL;
    uint32_t i = pstate_hash(producer_id) & ps->mask;
    while (ps->slots[i].producer_id != PSTATE_EMPTY)
        i = (i + 1) & ps->mask; /* bounded: load factor <= 0.5 guarantees a free slot */
    struct pstate_entry *e = &ps->slots[i];
    memset(e, 0, sizeof(*e));
    e->producer_id = producer_id;
    ps->count++;
    return e;
}

/* Backward-shift deletion: pull later members of the probe run into the hole so that every
 * remaining entry stays reachable from its home slot. */
static void pstate_remove_slot(struct pstate *ps, uint32_t hole)
{
    uint32_t j = hole;
    for (uint32_t probes = 0; probes < ps->mask; probes++) {
        j = (j + 1) & ps->mask;
        struct pstate_entry *e = &ps->slots[j];
        if (e->producer_id == PSTATE_EMPTY)
            break;
        uint32_t home = pstate_hash(e->producer_id) & ps->mask;
        /* e may move to hole only if hole lies on its probe path from home to j. */
        bool movable = ((j - home) & ps->mask) >= ((j - hole) & ps->mask);
        if (movable) {
            ps->slots[hole] = *e;
            hole = j;
        }
    }
    ps->slots[hole].producer_id = PSTATE_EMPTY;
    ps->count--;
}

static int pstate_check_known(const struct pstate_entry *e, int16_t epoch, int32_t base_sequence,
                              int32_t last_sequence, struct pstate_verdict *v)
{
    if (epoch < e->epoch) {
        v->current_epoch = e->epoch;
        return RL_E_PRODUCER_FENCED;
    }
    if (epoch > e->epoch || e->batch_count == 0) {
        v->expected_sequence = 0;
        return base_sequence == 0 ? 0 : RL_E_OUT_OF_ORDER_SEQUENCE;
    }
    for (uint32_t i = 0; i < e->batch_count; i++) {
        const struct pstate_batch *b = &e->batches[i];
        if (b->first_seq == base_sequence && b->last_seq == last_sequence) {
            v->dup_base_offset = b->base_offset;
            v->dup_last_offset = b->last_offset;
            return RL_E_DUPLICATE_SEQUENCE;
        }
    }
    int32_t expected = seq_add(e->batches[e->batch_count - 1].last_seq, 1);
    v->expected_sequence = expected;
    return base_sequence == expected ? 0 : RL_E_OUT_OF_ORDER_SEQUENCE;
}

int pstate_check(struct pstate *ps, int64_t producer_id, int16_t epoch, int32_t base_sequence,
                 uint32_t record_count, struct pstate_verdict *v)
{
    struct pstate_verdict scratch;
    if (!v)
        v = &scratch;
    memset(v, 0, sizeof(*v));
    v->dup_base_offset = -1;
    v->dup_last_offset = -1;
    if (producer_id < 0 || epoch < 0 || base_sequence < 0 || record_count == 0)
        return RL_E_INVALID_ARGUMENT;
    int32_t last_sequence = seq_add(base_sequence, record_count - 1);
    const struct pstate_entry *e = pstate_find(ps, producer_id);
    if (e)
        return pstate_check_known(e, epoch, base_sequence, last_sequence, v);
    v->expected_sequence = 0;
    if (base_sequence != 0)
        return RL_E_UNKNOWN_PRODUCER_ID;
    return ps->count >= ps->max_producers ? RL_E_LIMIT : 0;
}

int pstate_record(struct pstate *ps, int64_t producer_id, int16_t epoch, int32_t base_sequence,
                  uint32_t record_count, int64_t base_offset, int64_t now_ms)
{
    RL_ASSERT(record_count > 0);
    struct pstate_entry *e = pstate_find(ps, producer_id);
    if (!e && !(e = pstate_insert(ps, producer_id)))
        return RL_E_LIMIT;
    if (epoch != e->epoch) {
        e->epoch = epoch;
        e->batch_count = 0;
    }
    if (e->batch_count == PSTATE_BATCHES_KEPT) {
        memmove(&e->batches[0], &e->batches[1], sizeof(e->batches[0]) * (PSTATE_BATCHES_KEPT - 1));
        e->batch_count--;
    }
    struct pstate_batch *b = &e->batches[e->batch_count++];
    b->first_seq = base_sequence;
    b->last_seq = seq_add(base_sequence, record_count - 1);
    b->base_offset = base_offset;
    b->last_offset = base_offset + (int64_t)record_count - 1;
    e->last_ms = now_ms;
    return 0;
}

/* Removes every entry for which drop(entry, arg) is true; re-examines a slot after a removal,
 * because the backward shift may have moved another entry into it. */
static uint32_t pstate_remove_if(struct pstate *ps, bool (*drop)(struct pstate_entry *, int64_t),
                                 int64_t arg)
{
    uint32_t removed = 0;
    for (uint32_t i = 0; i <= ps->mask; i++) {
        uint32_t guard = 0;
        while (ps->slots[i].producer_id != PSTATE_EMPTY && drop(&ps->slots[i], arg)) {
            pstate_remove_slot(ps, i);
            removed++;
            RL_ASSERT(++guard <= ps->mask + 1);
        }
    }
    return removed;
}

static bool pstate_is_idle(struct pstate_entry *e, int64_t cutoff_ms)
{
    return e->last_ms < cutoff_ms;
}

uint32_t pstate_expire(struct pstate *ps, int64_t now_ms, int64_t expiration_ms)
{
    return pstate_remove_if(ps, pstate_is_idle, now_ms - expiration_ms);
}

static bool pstate_truncate_entry(struct pstate_entry *e, int64_t offset)
{
    while (e->batch_count > 0 && e->batches[e->batch_count - 1].base_offset >= offset)
        e->batch_count--;
    return e->batch_count == 0;
}

void pstate_truncate(struct pstate *ps, int64_t offset)
{
    pstate_remove_if(ps, pstate_truncate_entry, offset);
}

/* --- snapshot --------------------------------------------------------------------------------- */

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    rl_store_le64(p, v);
    return p + 8;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    rl_store_le32(p, v);
    return p + 4;
}

size_t pstate_snapshot_size(const struct pstate *ps)
{
    return PSTATE_SNAPSHOT_HEAD + 8 +
           (size_t)ps->count * (PSTATE_ENTRY_HEAD + PSTATE_BATCHES_KEPT * PSTATE_BATCH_BYTES);
}

/* The entry's batches that end below next_offset (the older ones: batches are in offset
 * order), at most batch_count. */
static uint8_t pstate_batches_below(const struct pstate_entry *e, int64_t next_offset)
{
    uint8_t n = 0;
    while (n < e->batch_count && e->batches[n].last_offset < next_offset)
        n++;
    return n;
}

static uint8_t *pstate_encode_entry(const struct pstate_entry *e, uint8_t n, uint8_t *p)
{
    p = put_u64(p, (uint64_t)e->producer_id);
    rl_store_le16(p, (uint16_t)e->epoch);
    p += 2;
    *p++ = n;
    p = put_u64(p, (uint64_t)e->last_ms);
    for (uint32_t i = 0; i < n; i++) {
        p = put_u32(p, (uint32_t)e->batches[i].first_seq);
        p = put_u32(p, (uint32_t)e->batches[i].last_seq);
        p = put_u64(p, (uint64_t)e->batches[i].base_offset);
        p = put_u64(p, (uint64_t)e->batches[i].last_offset);
    }
    return p;
}

int pstate_snapshot_encode(const struct pstate *ps, int64_t next_offset, uint8_t *buf, size_t cap)
{
    if (cap < pstate_snapshot_size(ps))
        return RL_E_FULL;
    uint8_t *p = buf;
    p = put_u32(p, PSTATE_SNAPSHOT_MAGIC);
    p = put_u32(p, PSTATE_SNAPSHOT_VERSION);
    p = put_u64(p, (uint64_t)next_offset);
    uint8_t *count_at = p;
    p += 4;
    uint32_t count = 0;
    for (uint32_t i = 0; i <= ps->mask; i++) {
        const struct pstate_entry *e = &ps->slots[i];
        if (e->producer_id == PSTATE_EMPTY)
            continue;
        /* Batches at or past next_offset are not in the log the snapshot describes: replay
         * from next_offset finds them if they reached it, and nothing must claim them if
         * they did not. */
        uint8_t n = pstate_batches_below(e, next_offset);
        if (n == 0)
            continue;
        p = pstate_encode_entry(e, n, p);
        count++;
    }
    put_u32(count_at, count);
    uint64_t sum = XXH3_64bits(buf, (size_t)(p - buf));
    p = put_u64(p, sum);
    return (int)(p - buf);
}

static void pstate_clear(struct pstate *ps)
{
    for (uint32_t i = 0; i <= ps->mask; i++)
        ps->slots[i].producer_id = PSTATE_EMPTY;
    ps->count = 0;
}

/* Decodes one entry at *pos; returns 0 or RL_E_CORRUPT when it overruns `end` or is invalid
 * (for version 2, a batch that does not end below next_offset). */
static int pstate_decode_entry(struct pstate *ps, const uint8_t *buf, size_t end, size_t *pos,
                               int64_t below)
{
    if (end - *pos < PSTATE_ENTRY_HEAD)
        return RL_E_CORRUPT;
    const uint8_t *p = buf + *pos;
    int64_t producer_id = (int64_t)rl_load_le64(p);
    uint16_t epoch = rl_load_le16(p + 8);
    uint8_t batch_count = p[10];
    int64_t last_ms = (int64_t)rl_load_le64(p + 11);
    *pos += PSTATE_ENTRY_HEAD;
    if (producer_id < 0 || batch_count == 0 || batch_count > PSTATE_BATCHES_KEPT ||
        end - *pos < (size_t)batch_count * PSTATE_BATCH_BYTES || pstate_find(ps, producer_id))
        return RL_E_CORRUPT;
    struct pstate_entry *e = pstate_insert(ps, producer_id);
    if (!e)
        return RL_E_CORRUPT;
    e->epoch = (int16_t)epoch;
    e->last_ms = last_ms;
    e->batch_count = batch_count;
    for (uint32_t i = 0; i < batch_count; i++) {
        p = buf + *pos;
        e->batches[i].first_seq = (int32_t)rl_load_le32(p);
        e->batches[i].last_seq = (int32_t)rl_load_le32(p + 4);
        e->batches[i].base_offset = (int64_t)rl_load_le64(p + 8);
        e->batches[i].last_offset = (int64_t)rl_load_le64(p + 16);
        *pos += PSTATE_BATCH_BYTES;
        if (e->batches[i].last_offset >= below)
            return RL_E_CORRUPT;
    }
    return 0;
}

int pstate_snapshot_decode(struct pstate *ps, const uint8_t *buf, size_t len,
                           int64_t *next_offset, uint32_t *version)
{
    pstate_clear(ps);
    if (len < PSTATE_SNAPSHOT_HEAD + 8)
        return RL_E_CORRUPT;
    size_t body = len - 8;
    uint32_t ver = rl_load_le32(buf + 4);
    if (XXH3_64bits(buf, body) != rl_load_le64(buf + body) ||
        rl_load_le32(buf) != PSTATE_SNAPSHOT_MAGIC ||
        (ver != PSTATE_SNAPSHOT_VERSION && ver != PSTATE_SNAPSHOT_V1))
        return RL_E_CORRUPT;
    uint32_t count = rl_load_le32(buf + 16);
    int64_t next = (int64_t)rl_load_le64(buf + 8);
    int64_t below = ver == PSTATE_SNAPSHOT_V1 ? INT64_MAX : next;
    if (count > ps->max_producers)
        return RL_E_CORRUPT;
    size_t pos = PSTATE_SNAPSHOT_HEAD;
    for (uint32_t i = 0; i < count; i++) {
        if (pstate_decode_entry(ps, buf, body, &pos, below) != 0) {
            pstate_clear(ps);
            return RL_E_CORRUPT;
        }
    }
    if (pos != body) {
        pstate_clear(ps);
        return RL_E_CORRUPT;
    }
    *next_offset = next;
    if (version)
        *version = ver;
    return 0;
}

int pstate_copy(struct pstate *dst, const struct pstate *src)
{
    pstate_clear(dst);
    if (src->count > dst->max_producers)
        return RL_E_LIMIT;
    for (uint32_t i = 0; i <= src->mask; i++) {
        const struct pstate_entry *e = &src->slots[i];
        if (e->producer_id == PSTATE_EMPTY)
            continue;
        struct pstate_entry *d = pstate_insert(dst, e->producer_id);
        RL_ASSERT(d); /* count checked above */
        *d = *e;
    }
    return 0;
}
