/*
 * tcache: see tcache.h.
 *
 * The ring is laid out in allocation order: extents are cut at `wpos` and wrap to 0 when the
 * next one does not fit before the end (the bytes left there are unused for that lap). The
 * extent descriptors live in a fixed array used as a FIFO in the same order, so the oldest
 * extent is always the first one met going forward from wpos: room is made by evicting from
 * the FIFO's head until the new extent's range is free.
 */
#include "storage/tcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/endian.h"
#include "common/log.h"

struct tcache_ext {
    uint64_t pos;                /* first byte in the ring */
    uint32_t cap, fill;          /* bytes cut / bytes of batches */
    uint64_t first_offset, next_offset;
    struct tcache_owner *owner;  /* NULL once dropped (its room is reused when evicted) */
    struct tcache_ext *prev, *next; /* the owner's extents, in offset order */
    uint32_t pins;               /* hits held */
    bool sealed;                 /* takes no more batches (cut by a truncation) */
};

struct tcache {
    uint8_t *ring;
    uint64_t budget;
    uint64_t wpos;               /* where the next extent is cut */
    struct tcache_ext *slots;    /* FIFO of extents in allocation order */
    uint32_t n_slots, fifo_head, fifo_count;
    struct tcache_stats st;
    /* Faulting the ring in, on a thread of its own, ahead of the extents being cut. */
    pthread_t prefault_thread;
    bool prefaulting;                 /* the thread was started (joined by destroy) */
    pthread_mutex_t pf_lock;
    pthread_cond_t pf_cond;
    uint64_t pf_want;                 /* fault in up to here (pf_lock) */
    bool pf_stop;                     /* (pf_lock) */
    uint64_t pf_asked;                /* the loop's copy of pf_want */
    uint64_t high_water;              /* the furthest ring byte ever cut */
    _Atomic uint64_t prefaulted;
};

#define TCACHE_PREFAULT_STEP (2u << 20)

/* Faults the ring in, one huge page at a time, up to what the loop asks for (pf_want), until
 * the whole ring is in or it is told to stop. Touches no byte. */
static void *tcache_prefault(void *arg)
{
    struct tcache *c = arg;
    uint64_t off = 0;
    /* Background work: the loop thread comes first for the CPU (a hint; errors are harmless). */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
    pthread_mutex_lock(&c->pf_lock);
    while (!c->pf_stop && off < c->budget) {
        if (c->pf_want <= off) {
            pthread_cond_wait(&c->pf_cond, &c->pf_lock);
            continue;
        }
        uint64_t want = c->pf_want;
        pthread_mutex_unlock(&c->pf_lock);
        bool failed = false;
        while (off < want && !failed) {
            uint64_t n = want - off < TCACHE_PREFAULT_STEP ? want - off : TCACHE_PREFAULT_STEP;
            failed = madvise(c->ring + off, n, MADV_POPULATE_WRITE) != 0;
            if (failed)
                RL_INFO("tail cache: the kernel cannot prefault (%s); the ring is faulted in "
                        "as it is used", strerror(errno));
            else
                atomic_store(&c->prefaulted, off += n);
        }
        pthread_mutex_lock(&c->pf_lock);
        if (failed)
            break;
    }
    pthread_mutex_unlock(&c->pf_lock);
    return NULL;
}

/* Asks the prefault thread to fault the ring in up to `upto`. */
static void prefault_ask(struct tcache *c, uint64_t upto)
{
    if (!c->prefaulting || upto <= c->pf_asked)
        return;
    c->pf_asked = upto < c->budget ? upto : c->budget;
    pthread_mutex_lock(&c->pf_lock);
    c->pf_want = c->pf_asked;
    pthread_cond_signal(&c->pf_cond);
    pthread_mutex_unlock(&c->pf_lock);
}

/* After an extent was cut up to ring byte `end`: keep the faulted part of the ring
 * TCACHE_PREFAULT_AHEAD ahead of the furthest byte used, asking in steps of that size. */
static void prefault_follow(struct tcache *c, uint64_t end)
{
    if (end > c->high_water)
        c->high_water = end;
    if (c->high_water + TCACHE_PREFAULT_AHEAD > c->pf_asked)
        prefault_ask(c, c->high_water + 2 * TCACHE_PREFAULT_AHEAD);
}

int tcache_create(uint64_t budget_bytes, bool prefault, struct tcache **out)
{
    struct tcache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    *out = c;
    if (budget_bytes < TCACHE_MIN_BUDGET)
        return 0;
    /* Every extent is at least TCACHE_EXT_MIN_BYTES (or a whole larger batch), so this many
     * descriptors cover a full ring. */
    c->n_slots = (uint32_t)(budget_bytes / TCACHE_EXT_MIN_BYTES) + 2;
    c->slots = calloc(c->n_slots, sizeof(*c->slots));
    void *m = mmap(NULL, budget_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (!c->slots || m == MAP_FAILED) {
        free(c->slots);
        free(c);
        *out = NULL;
        return -ENOMEM;
    }
    /* Huge pages: on virtual machines with shadow paging, copies into memory mapped with small
     * pages cost three times as much (measured: the broker's memmove went from 12% to 39% of
     * its CPU with small pages). The prefault thread works one huge page per call, so an mmap
     * of the loop waits behind it for one page at most. */
    (void)madvise(m, budget_bytes, MADV_HUGEPAGE);
    c->ring = m;
    c->budget = budget_bytes;
    c->st.budget_bytes = budget_bytes;
    pthread_mutex_init(&c->pf_lock, NULL);
    pthread_cond_init(&c->pf_cond, NULL);
    if (pthread_create(&c->prefault_thread, NULL, tcache_prefault, c) == 0)
        c->prefaulting = true;
    if (prefault)
        prefault_ask(c, budget_bytes); /* otherwise from the first extent on (ext_cut) */
    return 0;
}

void tcache_destroy(struct tcache *c)
{
    if (!c)
        return;
    if (c->prefaulting) {
        pthread_mutex_lock(&c->pf_lock);
        c->pf_stop = true;
        pthread_cond_signal(&c->pf_cond);
        pthread_mutex_unlock(&c->pf_lock);
        pthread_join(c->prefault_thread, NULL);
    }
    if (c->ring) {
        pthread_mutex_destroy(&c->pf_lock);
        pthread_cond_destroy(&c->pf_cond);
    }
    for (uint32_t i = 0; i < c->fifo_count; i++)
        RL_ASSERT(c->slots[(c->fifo_head + i) % c->n_slots].pins == 0);
    if (c->ring)
        munmap(c->ring, c->budget);
    free(c->slots);
    free(c);
}

static void ext_unlink(struct tcache *c, struct tcache_ext *e)
{
    struct tcache_owner *o = e->owner;
    if (!o)
        return;
    if (e->prev)
        e->prev->next = e->next;
    else
        o->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        o->tail = e->prev;
    e->prev = e->next = NULL;
    e->owner = NULL;
    c->st.cached_bytes -= e->fill;
}

static struct tcache_ext *fifo_oldest(struct tcache *c)
{
    return c->fifo_count ? &c->slots[c->fifo_head] : NULL;
}

/* Evicts the oldest extent; false when a reader holds it. */
static bool evict_oldest(struct tcache *c)
{
    struct tcache_ext *e = fifo_oldest(c);
    if (e->pins > 0)
        return false;
    if (e->owner)
        c->st.evictions++;
    ext_unlink(c, e);
    c->st.used_bytes -= e->cap;
    c->fifo_head = (c->fifo_head + 1) % c->n_slots;
    c->fifo_count--;
    return true;
}

static bool overlaps(const struct tcache_ext *e, uint64_t pos, uint64_t size)
{
    return e->pos < pos + size && pos < e->pos + e->cap;
}

/* Cuts an extent of `size` bytes at the ring's head, evicting the oldest extents in its way.
 * Returns NULL when a pinned extent is in the way. */
static struct tcache_ext *ext_cut(struct tcache *c, uint32_t size)
{
    if (c->fifo_count == 0)
        c->wpos = 0;
    uint64_t pos = c->wpos;
    if (pos + size > c->budget) {
        /* Wrap: the extents from wpos to the end are the oldest; they go first. */
        for (struct tcache_ext *e; (e = fifo_oldest(c)) && e->pos >= c->wpos;)
            if (!evict_oldest(c))
                return NULL;
        pos = 0;
    }
    for (struct tcache_ext *e; (e = fifo_oldest(c)) && overlaps(e, pos, size);)
        if (!evict_oldest(c))
            return NULL;
    if (c->fifo_count == c->n_slots && !evict_oldest(c))
        return NULL;
    struct tcache_ext *e = &c->slots[(c->fifo_head + c->fifo_count) % c->n_slots];
    c->fifo_count++;
    *e = (struct tcache_ext){.pos = pos, .cap = size};
    c->wpos = pos + size;
    c->st.used_bytes += size;
    prefault_follow(c, c->wpos);
    return e;
}

/* Grows e, when it is the newest extent of the ring and the room after it is free up to
 * TCACHE_EXT_GROW_BYTES, so that `len` more bytes fit: a log appending alone keeps its batches
 * in one extent, and one hit answers with as much as the disk would. */
static void ext_grow(struct tcache *c, struct tcache_ext *e, uint32_t len)
{
    struct tcache_ext *newest = &c->slots[(c->fifo_head + c->fifo_count - 1) % c->n_slots];
    uint64_t cap = ((uint64_t)e->fill + len + 63) & ~63ull;
    if (newest != e || cap > TCACHE_EXT_GROW_BYTES || e->pos + cap > c->budget)
        return;
    /* The oldest extent is the first one after e in the ring: is it clear of the growth? */
    struct tcache_ext *oldest = fifo_oldest(c);
    if (oldest != e && oldest->pos >= e->pos && oldest->pos < e->pos + cap)
        return;
    c->st.used_bytes += cap - e->cap;
    e->cap = (uint32_t)cap;
    c->wpos = e->pos + cap;
    prefault_follow(c, c->wpos);
}

/* Room an extent is cut with for a batch of len bytes. */
static uint32_t ext_size_for(uint32_t len)
{
    uint64_t want = (uint64_t)len * TCACHE_EXT_BATCHES;
    if (want < TCACHE_EXT_MIN_BYTES)
        want = TCACHE_EXT_MIN_BYTES;
    if (want > TCACHE_EXT_MAX_BYTES)
        want = TCACHE_EXT_MAX_BYTES;
    if (want < len)
        want = len;
    return (uint32_t)((want + 63) & ~63ull); /* cache-line aligned starts */
}

void tcache_put(struct tcache *c, struct tcache_owner *o, uint64_t first_offset,
                uint64_t next_offset, const uint8_t *head, uint32_t head_len, const uint8_t *rest,
                uint32_t rest_len)
{
    if (!c->ring)
        return;
    uint32_t len = head_len + rest_len;
    if (o->tail && first_offset < o->tail->next_offset)
        tcache_drop_from(c, o, first_offset); /* a rewrite: what followed is stale */
    if (len > c->budget / 4) {
        c->st.skipped++;
        return;
    }
    struct tcache_ext *e = o->tail;
    if (e && !e->sealed && e->next_offset == first_offset && e->cap - e->fill < len)
        ext_grow(c, e, len);
    if (!e || e->sealed || e->next_offset != first_offset || e->cap - e->fill < len) {
        e = ext_cut(c, ext_size_for(len));
        if (!e) {
            c->st.skipped++;
            return;
        }
        e->owner = o;
        e->first_offset = first_offset;
        e->prev = o->tail;
        if (o->tail)
            o->tail->next = e;
        else
            o->head = e;
        o->tail = e;
    }
    uint8_t *dst = c->ring + e->pos + e->fill;
    memcpy(dst, head, head_len);
    memcpy(dst + head_len, rest, rest_len);
    e->fill += len;
    e->next_offset = next_offset;
    c->st.cached_bytes += len;
    c->st.put_bytes += len;
}

/* The batch at p (inside an extent: written by tcache_put, so its header is sound). */
static void batch_at(const uint8_t *p, uint64_t *base, uint64_t *next, uint32_t *len)
{
    *base = rl_load_le64(p + BATCH_OFF_BASE_OFFSET);
    *len = rl_load_le32(p + BATCH_OFF_BATCH_LEN);
    *next = *base + rl_load_le32(p + BATCH_OFF_LAST_OFFSET_DELTA) + 1;
}

bool tcache_read(struct tcache *c, struct tcache_owner *o, uint64_t offset, uint32_t max_bytes,
                 uint64_t max_offset, bool count_miss, struct tcache_hit *out)
{
    if (!c->ring)
        return false;
    struct tcache_ext *e = o->tail;
    while (e && e->first_offset > offset)
        e = e->prev;
    if (!e || offset >= e->next_offset || e->first_offset >= max_offset)
        goto miss;
    const uint8_t *p = c->ring + e->pos, *end = p + e->fill;
    uint64_t base, next;
    uint32_t len;
    for (;;) { /* bounded: every step moves by a whole batch inside the extent */
        batch_at(p, &base, &next, &len);
        RL_ASSERT(len >= RL_BATCH_HEADER_SIZE && p + len <= end);
        if (next > offset)
            break;
        p += len;
        if (p >= end)
            goto miss;
    }
    if (base >= max_offset)
        goto miss;
    const uint8_t *start = p;
    out->first_offset = base;
    uint32_t total = 0;
    while (p < end) {
        batch_at(p, &base, &next, &len);
        if (base >= max_offset || (total > 0 && (uint64_t)total + len > max_bytes))
            break;
        total += len;
        out->next_offset = next;
        p += len;
    }
    out->mem = start;
    out->len = total;
    out->ext = e;
    e->pins++;
    c->st.hits++;
    c->st.hit_bytes += total;
    return true;
miss:
    if (count_miss)
        c->st.misses++;
    return false;
}

void tcache_unpin(struct tcache_ext *ext)
{
    RL_ASSERT(ext->pins > 0);
    ext->pins--;
}

void tcache_release(struct tcache_hit *hit)
{
    if (!hit->ext)
        return;
    tcache_unpin(hit->ext);
    hit->ext = NULL;
}

void tcache_drop_from(struct tcache *c, struct tcache_owner *o, uint64_t offset)
{
    struct tcache_ext *e;
    while ((e = o->tail) && e->first_offset >= offset)
        ext_unlink(c, e);
    if (!e || e->next_offset <= offset)
        return;
    /* Cut inside e: keep the batches below offset, and take no more into it (a reader may
     * hold the bytes after the cut). */
    const uint8_t *p = c->ring + e->pos;
    uint32_t keep = 0;
    uint64_t base, next, keep_next = e->first_offset;
    uint32_t len;
    while (keep < e->fill) {
        batch_at(p + keep, &base, &next, &len);
        if (base >= offset)
            break;
        keep += len;
        keep_next = next;
    }
    c->st.cached_bytes -= e->fill - keep;
    e->fill = keep;
    e->next_offset = keep_next;
    e->sealed = true;
    if (keep == 0)
        ext_unlink(c, e);
}

void tcache_drop_owner(struct tcache *c, struct tcache_owner *o)
{
    while (o->tail)
        ext_unlink(c, o->tail);
}

void tcache_get_stats(const struct tcache *c, struct tcache_stats *out)
{
    *out = c->st;
    out->prefaulted_bytes = atomic_load(&((struct tcache *)c)->prefaulted);
}
