/*
 * tcache: the tail cache. Recently appended batches of every log of a storage, kept in one
 * bounded ring of memory so consumers reading at the tail are answered from memory and never
 * touch the disk (appends are O_DIRECT, so the page cache does not hold them). Read path:
 * fetch -> plog_read -> tcache_read (a hit: a slice in memory) or the segment files (a miss).
 * Append path: plog_append -> tcache_put (one copy of the batch, beside the write buffer's).
 *
 * Layout. One ring of `budget` bytes per storage, shared by its logs. Batches go into extents:
 * a run of one log's consecutive batches, contiguous in the ring, so one hit answers with many
 * batches. A log fills its newest extent while the next batch fits and follows on in offsets
 * (an extent that is the newest of the ring grows in place when the batch does not fit);
 * otherwise a new extent is cut at the ring's head. Extents are evicted oldest first, whatever
 * log they belong to, when the ring needs their room. An extent a reader holds (pinned by a
 * hit until tcache_release) is never overwritten: a put that would need it is skipped (the
 * batch is then read from disk).
 *
 * Invalidation: a log's batches at and after an offset are dropped by tcache_drop_from (a
 * truncation), all of them by tcache_drop_owner (close, delete). Readers bound a hit by the
 * offsets they may see (max_offset): the cache holds batches from their append on, before
 * they are written.
 *
 * Single-threaded: the storage's owner thread. No allocation after tcache_create.
 */
#ifndef RL_STORAGE_TCACHE_H
#define RL_STORAGE_TCACHE_H

#include <stdbool.h>
#include <stdint.h>

#define TCACHE_EXT_MIN_BYTES (64u << 10)  /* an extent is cut for at least this much ... */
#define TCACHE_EXT_MAX_BYTES (1u << 20)   /* ... and at most this (or one batch) */
#define TCACHE_EXT_BATCHES 8              /* room for this many batches like the one cut for */
#define TCACHE_EXT_GROW_BYTES (16u << 20) /* the newest extent grows in place up to this */
#define TCACHE_MIN_BUDGET (1u << 20)      /* smaller budgets disable the cache */
#define TCACHE_PREFAULT_AHEAD (32u << 20) /* the ring is faulted in this far ahead of use */

struct tcache;
struct tcache_ext;

/* A log's extents, oldest first; embedded in the log, zeroed at start. */
struct tcache_owner {
    struct tcache_ext *head, *tail;
};

/* A hit: whole batches in memory, valid until tcache_release. */
struct tcache_hit {
    const uint8_t *mem;
    uint32_t len;
    uint64_t first_offset; /* base offset of the first batch */
    uint64_t next_offset;  /* offset after the last batch */
    struct tcache_ext *ext; /* pinned while held */
};

struct tcache_stats {
    uint64_t budget_bytes;   /* the ring's size (0: disabled) */
    uint64_t used_bytes;     /* bytes of extents in the ring (cut, whether filled or not) */
    uint64_t cached_bytes;   /* bytes of batches held */
    uint64_t hits, misses;   /* reads answered from the ring / reads it could not answer */
    uint64_t hit_bytes;      /* bytes answered from the ring */
    uint64_t put_bytes;      /* bytes copied in */
    uint64_t evictions;      /* extents evicted for room */
    uint64_t skipped;        /* puts skipped: too large, or the room was pinned by a reader */
    uint64_t prefaulted_bytes; /* of the ring, faulted in ahead of use (prefault) */
};

/* Creates a cache of budget_bytes (below TCACHE_MIN_BUDGET: a disabled cache, every call a
 * no-op and every read a miss that is not counted). The ring is reserved at once and faulted
 * in as it fills, which on virtual machines costs far more than the copies (measured: zeroing
 * fresh pages took 57% of the broker's CPU while the ring filled, and halved produce
 * throughput). So a thread
 * of the cache's own faults the ring in (MADV_POPULATE_WRITE, which leaves the bytes alone, so
 * the ring is usable meanwhile) TCACHE_PREFAULT_AHEAD ahead of the furthest byte used, from
 * the first batch on, or the whole ring at once with `prefault`; stats.prefaulted_bytes says
 * how far it got. The ring asks for huge pages (see tcache.c). Returns 0
 * and *out, or -ENOMEM. */
int tcache_create(uint64_t budget_bytes, bool prefault, struct tcache **out);

/* Stops the prefault thread, frees the ring; every hit must have been released. NULL is fine. */
void tcache_destroy(struct tcache *c);

/* Copies one batch of owner o (offsets [first_offset, next_offset), its bytes `head` then
 * `rest`) into the cache, after o's newest batch. A batch that does not follow o's newest
 * cached batch in offsets starts a new extent. Never fails: a batch that cannot be cached is
 * skipped (counted). */
void tcache_put(struct tcache *c, struct tcache_owner *o, uint64_t first_offset,
                uint64_t next_offset, const uint8_t *head, uint32_t head_len, const uint8_t *rest,
                uint32_t rest_len);

/* Answers a read of o at `offset` from the cache: the batches from the one holding `offset`
 * on, up to max_bytes (at least one batch) within one extent, none whose base offset is >=
 * max_offset. Returns true with *out filled and pinned (release it with tcache_release), or
 * false (a miss, counted when count_miss). */
bool tcache_read(struct tcache *c, struct tcache_owner *o, uint64_t offset, uint32_t max_bytes,
                 uint64_t max_offset, bool count_miss, struct tcache_hit *out);

/* Unpins a hit. The extent may have been dropped meanwhile, or its owner freed; its room is
 * reused only after this. tcache_unpin does the same given hit->ext (for holders that keep
 * only that pointer). */
void tcache_release(struct tcache_hit *hit);
void tcache_unpin(struct tcache_ext *ext);

/* Drops o's batches whose base offset is >= offset (a truncation: they may be replaced). */
void tcache_drop_from(struct tcache *c, struct tcache_owner *o, uint64_t offset);

/* Drops every batch of o (the log is closing or deleted). */
void tcache_drop_owner(struct tcache *c, struct tcache_owner *o);

void tcache_get_stats(const struct tcache *c, struct tcache_stats *out);

#endif
