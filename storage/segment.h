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
 *   B.damaged    damaged ranges (present only when recovery found damage), a checkpoint
 *                (checkpoint.h) whose payload is a u32 count, then per range
 *                {u64 position, u64 end_position, u64 offset, u64 end_offset} little-endian:
 *                bytes [position, end_position) of B.log hold no valid batch, and offsets
 *                [offset, end_offset) are lost with them. An index entry always starts at
 *                end_position (the first batch after the range), when one follows.
 */
#ifndef RL_STORAGE_SEGMENT_H
#define RL_STORAGE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/batch.h"
#include "storage/fcache.h"

struct io;

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

/* A damaged range of a segment (see B.damaged above). */
struct seg_hole {
    uint64_t pos, end_pos;
    uint64_t offset, end_offset;
};
#define SEGMENT_HOLE_BYTES 32
#define SEGMENT_MAX_HOLES 256 /* past this the rest of the segment counts as one range */

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
    bool index_saved;        /* the index files hold the first index_saved_n/_t entries */
    uint32_t index_saved_n, index_saved_t;
    bool ready;              /* the file exists and is preallocated: writes may be issued */
    bool finishing;          /* a finish job is running (see plog_int.h) */
    bool roll_busy;          /* its roll job (creation) is running */
    struct seg_hole *holes;  /* damaged ranges, ascending */
    uint32_t n_holes;
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
 * interval rule, or always with force) and folds its max timestamp into the segment's. Returns
 * 0 or -ENOMEM. */
int segment_index_add(struct segment *seg, uint64_t pos, uint64_t base_offset, int64_t max_ts,
                      uint32_t interval_bytes, bool force);

/* Damaged ranges. add keeps them in order (a range past SEGMENT_MAX_HOLES widens the last).
 * hole_for_offset: the range holding `offset`, or NULL. walk_limit: where a walk of batches
 * starting at `pos` must stop: the next range's start, or the readable end. */
int segment_hole_add(struct segment *seg, const struct seg_hole *h);
const struct seg_hole *segment_hole_for_offset(const struct segment *seg, uint64_t offset);
uint64_t segment_walk_limit(const struct segment *seg, uint64_t pos);
/* Damaged bytes in the segment. */
uint64_t segment_hole_bytes(const struct segment *seg);
/* Writes (durably) or loads B.damaged. load returns 0 (also when there is none), or a negative
 * code for an unreadable file (then the ranges are found again by the scan). */
int segment_holes_save(struct io *io, const struct segment *seg);
int segment_holes_load(struct io *io, struct segment *seg, uint64_t file_size);
/* Drops ranges at or past position pos. */
void segment_holes_truncate(struct segment *seg, uint64_t pos);

/* Largest indexed position whose batch starts at or below `offset` (0 when none). */
uint64_t segment_index_lookup(const struct segment *seg, uint64_t offset);

/* Position from which a scan for the first batch with max timestamp >= ts may start: the batch
 * after which every earlier batch is known to be older. */
uint64_t segment_time_lookup(const struct segment *seg, int64_t ts);

/* Makes `pos` (a batch start with base offset `base_offset`) an offset-index entry, dropping
 * entries inside (from, pos): used where good data resumes after a damaged range. */
int segment_index_insert(struct segment *seg, uint64_t from, uint64_t pos, uint64_t base_offset);

/* Drops index entries at or beyond position `pos`. */
void segment_index_truncate(struct segment *seg, uint64_t pos);

/* Forgets every index entry. */
void segment_index_clear(struct segment *seg);

enum segment_index_flags {
    SEGMENT_INDEX_SYNC = 1u << 0,     /* fdatasync each file before it takes its name */
    SEGMENT_INDEX_IN_PLACE = 1u << 1, /* rewrite the files in place: no temp file, no rename
                                         (a torn file is caught by the checks at load) */
};

/* Writes both index files (temp then rename, unless IN_PLACE), unless they already hold
 * exactly the in-memory entries. Blocks. Returns 0 or -errno. */
int segment_index_save(struct io *io, struct segment *seg, unsigned flags);

/* Loads both index files and checks them against a log file of file_size bytes. Returns 0, or
 * -ENOENT / RL_E_CORRUPT when missing or inconsistent (the caller rebuilds by scanning). */
int segment_index_load(struct io *io, struct segment *seg, uint64_t file_size);

/* One index entry as stored (the formats above); for the index files and their tests. */
void segment_oentry_encode(const struct seg_oentry *e, uint8_t out[SEGMENT_OFFSET_ENTRY_BYTES]);
void segment_oentry_decode(const uint8_t in[SEGMENT_OFFSET_ENTRY_BYTES], struct seg_oentry *e);
void segment_tentry_encode(const struct seg_tentry *e, uint8_t out[SEGMENT_TIME_ENTRY_BYTES]);
void segment_tentry_decode(const uint8_t in[SEGMENT_TIME_ENTRY_BYTES], struct seg_tentry *e);

/* Walks the batches of the file `fd` (file_size bytes) from position `from`: each header must
 * decode, fit in the file, and carry the base offset where the previous batch ended (the first
 * one: exactly min_offset; offsets in a log are contiguous); with verify, each checksum is
 * checked too (batch_validate); with rebuild, index entries are added for every batch from
 * `from` on (the caller cleared entries at or after it). Known damaged ranges are stepped
 * over (the walk continues at their end, with their end offset).
 * Stops at the end of the file or the first bad batch. `scratch` (cap bytes) is the read
 * window; batches larger than it are read into a temporary buffer. Blocks (pread). Returns 0
 * (details in *out, including a bad batch) or -errno for an I/O error. */
int segment_scan(struct io *io, struct segment *seg, int fd, uint64_t from, uint64_t file_size,
                 uint64_t min_offset, bool verify, bool rebuild, uint32_t interval_bytes,
                 uint8_t *scratch, size_t cap, struct seg_scan *out);

/* Searches [from, file_size) for the first position holding a whole, valid batch (checksum
 * included) whose base offset is at least min_offset and fits the segment: where good data
 * resumes after damage. Returns 1 with *pos and *h, 0 when there is none, or -errno. */
int segment_resync(struct io *io, const struct segment *seg, int fd, uint64_t from,
                   uint64_t file_size, uint64_t min_offset, uint8_t *scratch, size_t cap,
                   uint64_t *pos, struct batch_header *h);

#endif
