/*
 * plog: the partition log, ringlog's storage engine. One plog is one partition's ordered,
 * immutable sequence of record batches, kept as segment files in <data>/<topic>-<partition>/.
 * Append path: broker -> plog_append -> write buffer -> io_uring vectored write (+ linked
 * fdatasync) -> completion callbacks. Read path: broker fetch -> plog_read -> a slice of whole
 * batches (file range or memory) -> socket.
 *
 * A `struct storage` is the shared context of one shard: its io (every file operation goes
 * through io/, so the simulated back-end can stand in for the disk), a bounded cache of open
 * segment files (so 10,000 partitions do not need 30,000 descriptors), a background thread for
 * blocking work (creating, preallocating and finishing segments, truncations, checkpoints,
 * opening logs, removing files), and the storage-wide clean-shutdown record. All plogs of a
 * storage are used from the storage's owner thread only.
 *
 * Nothing slow runs on the owner's loop in steady state: a roll queues the new segment's
 * creation and preallocation (appends meanwhile wait in the write buffer), a sealed segment is
 * synced, trimmed and indexed in the background, preallocation grows through the ring, and
 * checkpoints are written in the background. The calls documented as blocking are for
 * start-up, shutdown, tests and tools.
 *
 * Clean shutdown: a storage opened with a state directory (storage_open) keeps one record for
 * all its logs, `<state_dir>/storage-clean`, written by storage_destroy after one syncfs, and
 * removed (one directory sync) when the next storage_open has read it. A start and clean stop of
 * any number of logs costs a handful of syncs, not a few per log. A log whose entry in the record
 * matches its files is "clean": its sealed segments are trusted, its active segment is still
 * verified batch by batch (checksums included), so a clean start does the same work as a crash
 * start for the active segment and less for the others.
 *
 * Corruption is contained (see "Damaged ranges" below): a bad batch never costs the good data
 * after it, and never stops a log from opening.
 *
 * Durability: with flush policy `batch` an append's callback runs only after its bytes are
 * fdatasync'ed; `interval:<ms>` acknowledges after the write and fsyncs at least every ms;
 * `none` acknowledges after the write. A failed write or fsync is sticky: the log answers every
 * later append with RL_E_LOG_FAILED (the page cache can no longer be trusted).
 *
 * Notes from the implementation (storage/plog_int.h has the details):
 *  - Writes are O_DIRECT from 4 KiB-aligned buffers (the page cache is bypassed, so appends run
 *    at the disk's speed); the last partial block is rewritten by the next write. File systems
 *    that refuse O_DIRECT (tmpfs) get the same writes through the page cache.
 *  - Under `batch`, an append to an idle log starts its group commit at the caller's next
 *    io_run (a zero timeout), so everything appended in the same loop turn shares one write and
 *    one fdatasync; appends made while a group is in flight form the next group. Callers must
 *    keep running the storage's io for appends to complete.
 *  - Readers see a batch once its write completed (not while it sits in the write buffer).
 *  - Completed writes are replaced when their completions are reaped: a caller appending many
 *    large batches in a row should let the ring run between them (io_run(io, 0)), or the disk
 *    queue drains while it copies.
 *  - Blocking calls (plog_open, plog_close, plog_sync, plog_truncate_to, plog_delete,
 *    plog_report_damage) run the io loop; do not call them from inside an append callback of
 *    the same log. Use plog_open_async on a loop that serves clients.
 *  - Offsets in a log are contiguous; recovery treats a batch whose base offset does not follow
 *    its predecessor as damage (the base offset is outside the checksum).
 *  - A segment rolls before relative offsets (u32 in the index) could overflow: a batch whose
 *    last offset would lie 2^32 or more past its segment's base starts a new segment.
 *
 * Damaged ranges. Recovery verifies every batch it scans (length, checksum, contiguous
 * offsets). A bad batch at the end of the active segment after an unclean stop is a torn write:
 * the file is cut there (reported, not lost data: nothing after it was acknowledged). Anywhere
 * else (a sealed segment, or the active one after a clean stop) it is corruption: recovery
 * reports it through RL_CORRUPT with the file, position and offsets, searches forward for the
 * next valid batch, and records the bytes in between as a damaged range, kept in the segment's
 * `<base>.damaged` checkpoint so later opens know it. The batches after it, and every later
 * segment, stay. Offsets missing between two segments (a lost segment file) are a damaged range
 * too. A read at an offset inside a damaged range fails with RL_E_CORRUPT and names the range
 * in the slice's first_offset .. next_offset, so the caller can report it and skip to
 * next_offset; reads elsewhere are unaffected. The damaged bytes are left in the file for
 * inspection.
 *
 * Disk full. A write refused for space (ENOSPC, or a short write, which is how O_DIRECT says
 * it) is not a failure of the log: nothing of it was acknowledged, so it is retried (every
 * PLOG_DISK_FULL_RETRY_MS) until it goes through. Meanwhile plog_disk_full() is true, new
 * appends get RL_E_DISK_FULL, appends already accepted wait, and reads go on. A failed fsync,
 * or any other write error, stays sticky (RL_E_LOG_FAILED): after a failed fsync the page cache
 * can no longer be trusted, so only a reopen (recovery) may continue.
 */
#ifndef RL_STORAGE_PLOG_H
#define RL_STORAGE_PLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/batch.h"

struct io;
struct storage;
struct plog;

enum plog_flush_policy {
    PLOG_FLUSH_BATCH = 0,    /* fdatasync before acknowledging (default) */
    PLOG_FLUSH_INTERVAL = 1, /* acknowledge after write; fdatasync every flush_interval_ms */
    PLOG_FLUSH_NONE = 2,     /* acknowledge after write; fdatasync on roll/close only */
};

struct plog_config {
    uint64_t segment_bytes;      /* roll when the active segment would exceed this (1 GiB) */
    int64_t segment_ms;          /* roll when the active segment is older than this (7 days) */
    int64_t retention_ms;        /* delete segments whose max timestamp is older (7 days);
                                    -1 = never */
    int64_t retention_bytes;     /* delete oldest segments while the log is larger; -1 = never */
    enum plog_flush_policy flush_policy;
    uint32_t flush_interval_ms;  /* for PLOG_FLUSH_INTERVAL */
    uint32_t index_interval_bytes; /* one offset/time index entry per this many bytes (4096) */
    uint32_t max_batch_bytes;    /* appends larger than this fail with RL_E_MESSAGE_TOO_LARGE
                                    (8 MiB; at most 63 MiB, the write buffer of one log) */
};

/* Fills cfg with the defaults above. */
void plog_config_default(struct plog_config *cfg);

/* Parses "batch", "none" or "interval:<ms>" into cfg. Returns 0 or RL_E_INVALID_CONFIG. */
int plog_parse_flush_policy(const char *text, struct plog_config *cfg);

/* --- storage context -------------------------------------------------------------------------- */

struct storage_options {
    unsigned max_open_files; /* bounds the segment descriptors kept open across all logs */
    /* Directory for the storage-wide clean-shutdown record (the broker's data directory), or
     * NULL: then a clean close is remembered only while this storage lives (a reopen in the
     * same process is clean; the next process recovers every log as after a crash). */
    const char *state_dir;
    /* The tail cache's budget (storage/tcache.h): recently appended batches of every log kept
     * in memory for readers at the tail. 0 (or below 1 MiB) disables it. */
    uint64_t tail_cache_bytes;
    bool tail_cache_prefault;   /* fault the cache's memory in at start (tcache_create) */
};

/* Creates the shard's storage context on `io` (borrowed; must outlive the storage). Reads the
 * clean-shutdown record of the state directory, if any, and removes it (one directory sync),
 * so a crash from here on is never mistaken for a clean stop. Returns 0 and *out, or a
 * negative code. Starts one background thread (none on a simulated io). Blocks. */
int storage_open(struct io *io, const struct storage_options *opt, struct storage **out);

/* storage_open without a state directory. */
int storage_create(struct io *io, unsigned max_open_files, struct storage **out);

/* Closes every log still open (cleanly), waits for background work, makes everything durable
 * with one syncfs and writes the clean-shutdown record of every log closed cleanly (when there
 * is a state directory). Blocks. */
void storage_destroy(struct storage *st);

/* Logs of this storage that are waiting for disk space (plog_disk_full), for status pages and
 * metrics. */
unsigned storage_disk_full_logs(const struct storage *st);

/* For a stopping broker: every log waiting for disk space fails its waiting appends with `code`
 * now (they were never acknowledged, and are not written later) instead of holding the stop
 * until space comes back; such a log refuses further appends and is recovered at its next open.
 * Returns the logs given up. Does not block. */
unsigned storage_abandon_space_waits(struct storage *st, int code);

/* The tail cache's counters (hits, misses, bytes, evictions; storage/tcache.h). */
struct tcache_stats;
void storage_tail_cache_stats(const struct storage *st, struct tcache_stats *out);

/* The storage's io (for callers that do file I/O beside it). */
struct io *storage_io(const struct storage *st);

/* --- open / close ----------------------------------------------------------------------------- */

struct plog_recovery_report {
    bool clean;                /* the clean-shutdown record matched: sealed segments trusted */
    uint32_t segments;         /* segments found */
    uint32_t indexes_rebuilt;  /* offset/time indexes rebuilt because missing or inconsistent */
    uint64_t bytes_scanned;    /* bytes checked batch by batch */
    uint64_t bytes_truncated;  /* bytes cut off at the first bad byte (0 if none) */
    int64_t truncated_at_position; /* file position of the cut, -1 if none */
    char truncated_reason[96]; /* rl_strerror of what was wrong there */
    uint32_t damaged_ranges;   /* damaged ranges known in the log (found now or before) */
    uint64_t damaged_bytes;    /* bytes inside them */
    uint64_t damaged_offset, damaged_end_offset; /* the first range's offsets, [from, end) */
};

/* Opens (creating if needed) the log in directory `dir`, recovering it (see "Damaged ranges"
 * above). Blocks while recovering. `report` may be NULL. Returns 0 and *out, or a negative code
 * (the directory is left untouched on error). */
int plog_open(struct storage *st, const char *dir, const struct plog_config *cfg,
              struct plog_recovery_report *report, struct plog **out);

/* Called once on the storage's owner thread, from io_run, when an asynchronous open ends:
 * result 0 with the open log (owned by the caller from then on, like plog_open's), or a
 * negative code with log NULL. `report` is valid only during the call. */
typedef void (*plog_open_done_fn)(void *ctx, struct plog *log, int result,
                                  const struct plog_recovery_report *report);

/* plog_open without blocking the caller: creating the directory and the first segment, and the
 * whole recovery, run on the storage's background thread; `done` runs later on the owner
 * thread (keep calling io_run). Returns 0 (done will be called exactly once), or a negative
 * code at once (bad config, no memory; done will not be called). dir is copied. Opening a
 * directory that is already open, or being opened or deleted, is the caller's error. Opens are
 * carried out one at a time, in the order asked, after any background work queued before. */
int plog_open_async(struct storage *st, const char *dir, const struct plog_config *cfg,
                    plog_open_done_fn done, void *ctx);

/* Waits for in-flight appends and background work, makes the log durable where its flush
 * policy left it behind, writes its index files if they changed, remembers it as closed
 * cleanly (storage_destroy records that) and frees the log. Blocks (runs the storage's io
 * until drained). */
void plog_close(struct plog *log);

/* Changes the config of an open log (retention, segment size, flush policy). */
int plog_set_config(struct plog *log, const struct plog_config *cfg);

/* Waits for in-flight appends, then removes the log's directory and everything in it and frees
 * `log` (the unlinking happens on the background thread). Blocks until queued. */
int plog_delete(struct plog *log);

/* --- append ----------------------------------------------------------------------------------- */

struct plog_append;
typedef void (*plog_append_done_fn)(struct plog_append *req, int result);

/* A caller-owned append request; must stay alive until `done` runs. */
struct plog_append {
    /* in */
    const uint8_t *batch;      /* a validated batch (batch_validate), batch_len bytes */
    uint32_t len;
    uint32_t leader_epoch;     /* stamped into the stored copy */
    bool keep_offsets;         /* follower append: the batch's base_offset must equal the LEO */
    plog_append_done_fn done;  /* called once, from io_run, with 0 or a negative code */
    void *ctx;
    /* out: set by plog_append before it returns */
    uint64_t base_offset;
    uint64_t last_offset;
    /* the log's own */
    struct plog_append *next;
    uint64_t end_position;
};

/* Assigns offsets (base = log end offset, unless keep_offsets), stamps them and the epoch into
 * the log's own copy of the batch, and queues the write. The batch bytes are copied before
 * this returns, so the caller may reuse req->batch at once; req itself must live until done.
 * Appends queued while a write is in flight go out together as the next vectored write and
 * fdatasync (group commit). Returns 0 (done will be called), or a negative code immediately
 * (done will not be called): RL_E_LOG_FAILED, RL_E_DISK_FULL (see "Disk full"),
 * RL_E_MESSAGE_TOO_LARGE, RL_E_STALE_OFFSET,
 * RL_E_FULL (too many bytes queued: 64 MiB per log or the storage's 256 MiB write-buffer pool
 * in use, or every cached descriptor pinned; retry after completions), RL_E_LOG_CLOSED, or the
 * header's RL_E_BATCH_* code when batch_header_decode rejects it. */
int plog_append(struct plog *log, struct plog_append *req);

/* Makes everything appended so far durable now (fdatasync), whatever the policy; blocks. */
int plog_sync(struct plog *log);

/* --- read ------------------------------------------------------------------------------------- */

/* A run of whole batches, either a range of a segment file or bytes in memory. Hold it only
 * briefly and release it with plog_slice_release (it pins the segment file open). A slice
 * stays valid if its segment is deleted by retention or truncation, or its log is closed or
 * deleted, meanwhile (the descriptor stays open until release); release it with the same log
 * pointer even then (it is not dereferenced). storage_destroy requires every slice released. */
#define PLOG_DIRECT_ALIGN 4096u /* alignment of reads through plog_slice.direct_fd */

struct plog_slice {
    int fd;                 /* -1 when `mem` is used; a descriptor of the storage's io (an
                               ordinary one on io_uring; read it through io_file_pread to
                               work on both back-ends) */
    /* The same file opened with O_DIRECT, or -1 (the file system refuses it, or no descriptor
     * was free). Reads through it bypass the page cache: offsets, lengths and buffer addresses
     * must be multiples of PLOG_DIRECT_ALIGN, so read the aligned range around the slice.
     * Appends are written with O_DIRECT too, so the page cache rarely holds them anyway, and
     * reading them through it would allocate fresh cache pages for every read instead of
     * reusing the caller's buffers. Bytes of the range outside the slice may be changing. */
    int direct_fd;
    uint64_t file_position;
    const uint8_t *mem;     /* non-NULL when served from memory */
    uint32_t len;           /* bytes of whole batches; 0 when nothing to read */
    uint64_t first_offset;  /* base offset of the first batch in the slice */
    uint64_t next_offset;   /* offset after the last batch in the slice */
    void *pin;              /* the log's own */
    void *cache_pin;        /* the log's own: a slice served by the tail cache */
};

/* Finds whole batches containing offsets >= `offset`, up to max_bytes but always at least one
 * batch (if any exists below max_offset), and never a batch whose base offset is >= max_offset
 * (the caller's visibility bound, e.g. the high watermark; UINT64_MAX for none). The first
 * batch may start before `offset` (the caller skips records below it). Returns 0 with
 * out->len == 0 when offset == end, RL_E_OFFSET_OUT_OF_RANGE when offset is below the log start
 * or above the end, RL_E_CORRUPT when offset lies in a damaged range, with that range in
 * out->first_offset .. out->next_offset (nothing to release; read on from next_offset). A
 * slice never reaches into a damaged range. The offset index is in memory; finding the exact
 * batch then reads batch headers (pread, normally from the page cache) for at most one index
 * interval plus the batches returned. Batches still in the tail cache come back in memory
 * (`mem`, fd -1), from one cache extent: fewer than max_bytes may come back although more
 * follow. */
int plog_read(struct plog *log, uint64_t offset, uint32_t max_bytes, uint64_t max_offset,
              struct plog_slice *out);
void plog_slice_release(struct plog *log, struct plog_slice *slice);

/* How many times the log was cut by truncate_to: bytes read earlier (a read-ahead) are still
 * the log's while this has not changed. */
uint64_t plog_truncations(const struct plog *log);

/* A reader found the batch holding `offset` damaged (its checksum fails: recovery reads only
 * the tails of sealed segments, so damage elsewhere is found when it is read). The log checks
 * the batch itself; when it is bad, the batch (and whatever follows it up to the next valid
 * batch) becomes a damaged range, reported through RL_CORRUPT and recorded in the segment's
 * .damaged file, and the call returns RL_E_CORRUPT with the range in *from .. *to; reads of it
 * fail from then on, and the caller skips to *to. Returns 0 when the batch is intact (the
 * damage was in the caller's copy), RL_E_FULL when the segment is being finished in the
 * background (ask again shortly), or another negative code. Blocks (reads the batch, syncs
 * the record): damage is rare. */
int plog_report_damage(struct plog *log, uint64_t offset, uint64_t *from, uint64_t *to);

/* Convenience for tests, tools and replication: like plog_read, then copies the bytes into buf
 * (cap bytes). Returns the bytes copied (whole batches only) or a negative code; blocks on
 * pread. */
int plog_read_copy(struct plog *log, uint64_t offset, uint32_t max_bytes, uint64_t max_offset,
                   uint8_t *buf, size_t cap);

/* Offset of the first record whose timestamp is >= timestamp_ms (by batch max timestamps);
 * the log end offset when none. */
int plog_offset_for_time(struct plog *log, int64_t timestamp_ms, uint64_t *offset);

/* --- positions and maintenance ---------------------------------------------------------------- */

uint64_t plog_start_offset(const struct plog *log);
uint64_t plog_end_offset(const struct plog *log);     /* LEO: next offset to assign */
uint64_t plog_size_bytes(const struct plog *log);
uint32_t plog_segment_count(const struct plog *log);
/* Bytes appended but not yet made durable (for metrics). */
uint64_t plog_unsynced_bytes(const struct plog *log);
/* True while the log waits for disk space (see "Disk full"); appends get RL_E_DISK_FULL. */
bool plog_disk_full(const struct plog *log);
/* Damaged ranges in the log (see "Damaged ranges"), for status pages and metrics. */
uint32_t plog_damaged_ranges(const struct plog *log);

/* Discards every batch with base offset >= offset (a follower dropping a divergent tail); the
 * new LEO is `offset`, which must fall on a batch boundary (RL_E_INVALID_ARGUMENT otherwise).
 * Once the appends and background work in flight have ended, the log is cut in memory at
 * once (reads no longer see the tail) and the files in the background (later segments
 * removed, the directory synced, the segment cut and synced, so the tail stays gone after a
 * power cut); `done` then runs on the owner thread with 0 or a negative code (a failure of
 * the file work is sticky, RL_E_LOG_FAILED after it). From the call until done, appends get
 * RL_E_FULL. Returns 0 (done will be called once) or, at once, RL_E_OFFSET_OUT_OF_RANGE,
 * RL_E_FULL (a truncation is under way), RL_E_LOG_FAILED or RL_E_LOG_CLOSED. */
typedef void (*plog_truncate_done_fn)(void *ctx, int result);
int plog_truncate_to_async(struct plog *log, uint64_t offset, plog_truncate_done_fn done,
                           void *ctx);

/* plog_truncate_to_async, waited for. Blocks (runs the storage's io). */
int plog_truncate_to(struct plog *log, uint64_t offset);

/* Deletes whole segments past retention (never the active one) and rolls by segment_ms.
 * now_ms is wall-clock time. Returns the number of segments deleted or a negative code. */
int plog_enforce_retention(struct plog *log, int64_t now_ms);

/* Moves the log start forward (records below `offset` become unreadable; whole segments below
 * it are deleted). The new start is written to the log's checkpoint in the background; a crash
 * before that lands brings back the old start (records reappear, nothing is lost). */
int plog_advance_start(struct plog *log, uint64_t offset);


/* Restarts the log empty at `offset`: every batch is discarded, the log start and end become
 * `offset`, and the next append gets it (a replica whose leader no longer holds what it lacks
 * starts over at the leader's log start). `offset` must lie past the log start
 * (RL_E_OFFSET_OUT_OF_RANGE otherwise). `meta` (up to PLOG_RESET_META_MAX bytes, the caller's:
 * replication keeps the term and configuration there) is stored with the new start, atomically
 * with it, and read back by plog_reset_meta. Crash-safe: the reset record is written durably
 * first (the commit point), then the old segments' files are removed (the lowest last, with
 * directory syncs) and the new empty segment created; a crash before the record leaves the old
 * log, after it the next open finishes the removal, so a restart finds either the old log or
 * the new one starting at `offset`, never a mix. Waits for the appends and background work in
 * flight first (their callbacks run). A failure after the commit point fails the log (sticky;
 * the next open finishes the reset). Blocks (a few syncs): for rare events. Returns 0,
 * RL_E_LOG_CLOSED, RL_E_LOG_FAILED, RL_E_FULL (a truncation is under way),
 * RL_E_INVALID_ARGUMENT, RL_E_DISK_FULL or an I/O error. */
#define PLOG_RESET_META_MAX 256u
int plog_reset_to(struct plog *log, uint64_t offset, const void *meta, uint32_t meta_len);
/* The latest reset of the log: its offset in *offset and its meta copied into meta (cap bytes;
 * meta may be NULL). Returns the meta's length, -ENOENT when the log was never reset,
 * -ENOBUFS, or RL_E_CORRUPT (a damaged record, reported). Blocks (reads a small file). */
int plog_reset_meta(struct plog *log, uint64_t *offset, void *meta, size_t cap);
#endif
