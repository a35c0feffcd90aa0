/*
 * segment: one file of a partition log and its two sparse indexes. Internal to storage/ (the
 * partition log, plog.c, is the only user). Read path: plog_read -> segment_index_lookup ->
 * segment walk of batch headers -> slice. Recovery: plog_open -> segment_index_load ->
 * segment_scan (verify lengths and checksums, rebuild indexes, find the first bad byte).
 *
 * Files of a segment whose first batch has offset B (20 digits, zero padded):
 *   B.log        the batches, back to back, exactly as batch.h lays them out
 *   B.index      offset index: entries {u32 relative_offset, u32 position} little-endian, one
 *                per ~index_interval_bytes of log, strictly increasing in both fields
 *   B.timeindex  time index: entries {i64 max_timestamp, u32 relative_offset} little-endian;
 *                an entry (T, R) is added beside an offset-index entry for the batch at R when
 *                T, the largest timestamp of every batch up to and including that one, grew.
 * The indexes live in memory while the log is open (lookups never touch the disk) and are
 * written to their files (temp, then rename) when the segment is rolled or the log is closed.
 * They can always be rebuilt from the .log, so they carry no checksum: at open they are checked
 * for consistency (monotonic, inside the file, pointing at real batch boundaries) instead.
 */
#ifndef RL_STORAGE_SEGMENT_H
#define RL_STORAGE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/fcache.h"

#define SEGMENT_OFFSET_ENTRY_BYTES 8
#define SEGMENT_TIME_ENTRY_BYTES 12
/* A segment's positions are u32 in its index, so a segment can never exceed this. */
#define SEGMENT_MAX_BYTES (UINT32_MAX - (64u << 20))

struct seg_oentry {
    uint32_t rel; /* base offset of the batch - segment base offset */
    uint32_t pos; /* file position of the batch */
};

struct seg_tentry {
    int64_t ts;   /* largest timestamp up to and including the batch at rel */
    uint32_t rel;
};

struct segment {
    uint64_t base_offset;
    char *stem;              /* "<dir>/<20-digit base>" (files add .log, .index, .timeindex) */
    uint64_t end_pos;        /* bytes of batches appended (written or queued) */
    uint64_t next_offset;    /* offset after the last appended batch */
    uint64_t readable_pos;   /* bytes whose writes completed: what readers may see */
    uint64_t readable_next;  /* offset after the last readable batch */
    int64_t max_ts;          /* largest batch max_timestamp; INT64_MIN while empty */
    int64_t created_ms;      /* wall time the segment was created or opened (roll by age) */
    uint64_t last_index_pos; /* position of the last offset-index entry (when n_oidx > 0) */
    struct seg_oentry *oidx;
    uint32_t n_oidx, cap_oidx;
    struct seg_tentry *tidx;
    uint32_t n_tidx, cap_tidx;
    struct fcache_ent rd;    /* buffered read-only descriptor (readers, recovery) */
    struct fcache_ent wr;    /* O_DIRECT read-write descriptor (the writer, active only) */
    struct fcache_ent drd;   /* O_DIRECT read-only descriptor (slices read around the cache) */
    int64_t lsn_base;        /* the log's byte sequence number of file position 0 */
    uint64_t falloc_end;     /* bytes preallocated so far */
    unsigned refs;           /* slices holding the segment */
    struct fcache *fc;       /* the cache its descriptors live in (set by the owner) */
    bool sealed;             /* no more appends: a newer segment is active */
    bool finalized;          /* sealed, all writes done, trimmed to size, indexes saved */
    bool deleted;            /* removed from its log; freed when the last slice lets go */
};

/* Result of segment_scan. */
struct seg_scan {
    uint64_t valid_end;    /* position after the last good batch */
    uint64_t next_offset;  /* offset after the last good batch (the floor passed in if none) */
    int64_t max_ts;        /* largest max_timestamp seen (INT64_MIN if none) */
    uint64_t bytes_scanned;
    int bad_code;          /* 0 when the scan reached the end of the file cleanly */
    bool tail_zero;        /* the bytes from valid_end to the end are all zero (preallocation,
                              block padding): an unwritten tail, not damage */
};

/* Allocates a segment for base offset `base` in `dir`. Returns NULL on allocation failure. */
struct segment *segment_new(const char *dir, uint64_t base);
void segment_free(struct segment *seg);

/* Writes "<stem><suffix>" into buf. Returns 0 or -ENAMETOOLONG. */
int segment_path(const struct segment *seg, const char *suffix, char *buf, size_t cap);

/* Records a batch appended at `pos` in the in-memory indexes (following the one-entry-per-
 * interval rule) and folds its max timestamp into the segment's. Returns 0 or -ENOMEM. */
int segment_index_add(struct segment *seg, uint64_t pos, uint64_t base_offset, int64_t max_ts,
                      uint32_t interval_bytes);

/* Largest indexed position whose batch starts at or below `offset` (0 when none). */
uint64_t segment_index_lookup(const struct segment *seg, uint64_t offset);

/* Position from which a scan for the first batch with max timestamp >= ts may start: the batch
 * after which every earlier batch is known to be older. */
uint64_t segment_time_lookup(const struct segment *seg, int64_t ts);

/* Drops index entries at or beyond position `pos`. */
void segment_index_truncate(struct segment *seg, uint64_t pos);

/* Forgets every index entry. */
void segment_index_clear(struct segment *seg);

/* Writes both index files (temp then rename); with sync, fdatasyncs them first. Blocks.
 * Returns 0 or -errno. */
int segment_index_save(const struct segment *seg, bool sync);

/* Loads both index files and checks them against a log file of file_size bytes. Returns 0, or
 * -ENOENT / RL_E_CORRUPT when missing or inconsistent (the caller rebuilds by scanning). */
int segment_index_load(struct segment *seg, uint64_t file_size);

/* Walks the batches of the file `fd` (file_size bytes) from position `from`: each header must
 * decode, fit in the file, and carry the base offset where the previous batch ended (the first
 * one: exactly min_offset; offsets in a log are contiguous); with verify, each checksum is
 * checked too (batch_validate); with rebuild, index entries are added for every batch from
 * `from` on (the caller cleared entries at or after it).
 * Stops at the end of the file or the first bad batch. `scratch` (cap bytes) is the read
 * window; batches larger than it are read into a temporary buffer. Blocks (pread). Returns 0
 * (details in *out, including a bad batch) or -errno for an I/O error. */
int segment_scan(struct segment *seg, int fd, uint64_t from, uint64_t file_size,
                 uint64_t min_offset, bool verify, bool rebuild, uint32_t interval_bytes,
                 uint8_t *scratch, size_t cap, struct seg_scan *out);

#endif
