/*
 * metalog: the broker's local metadata log, <data>/metadata.log. Topic path: CreateTopics /
 * DeleteTopics / AlterConfigs -> topics -> metalog_append (durable before the request is
 * answered); start-up: metalog_open replays every record to rebuild the topic table. It is the
 * single-node stand-in for the controller log (raft group 0), so its records are the
 * controller's vocabulary (proto MetaRecord) and replay is idempotent by construction.
 *
 * File format (little-endian):
 *   off 0  8 bytes  magic "RLMETA01"
 *   then records:  u32 payload_len | u64 xxh3-64(payload_len bytes || payload) | payload
 * A record is trusted only if it is whole and its checksum matches. When one is not, replay
 * searches forward for the next record that is (a header whose length fits and whose checksum
 * matches, at any byte position):
 *  - none follows: the bad bytes are a torn tail (a crash mid-append, nothing of it was
 *    acknowledged), and the file is cut there, reported through RL_CORRUPT unless it is simply
 *    a short tail;
 *  - one follows: the bytes in between are a damaged range, reported through RL_CORRUPT with
 *    the file and positions, and skipped; the good records after it are replayed and kept.
 *    The damaged bytes stay in the file (for inspection), so every later open reports them
 *    again. What they held (a topic, a producer-id block) is lost; metalog_stats says how many
 *    bytes were damaged so the caller can stay on the safe side (producer ids skip ahead).
 *
 * All file I/O goes through the I/O layer (io/io.h), so the simulated back-end can cut the
 * power or fail a write or sync under it.
 *
 * Appends are synchronous (write + fdatasync, blocking): metadata changes are rare admin
 * operations and must be durable before they are acknowledged. Single-threaded (appends may
 * run on a background thread, one at a time).
 */
#ifndef RL_BROKER_METALOG_H
#define RL_BROKER_METALOG_H

#include <stddef.h>
#include <stdint.h>

struct io;
struct metalog;

/* Payloads larger than this are refused (a topic with 10k split keys still fits). */
#define METALOG_MAX_RECORD_BYTES (16u * 1024 * 1024)

/* Called for each valid record during replay; a non-zero return stops the replay and is
 * returned by metalog_open. payload is valid only during the call. */
typedef int (*metalog_replay_fn)(void *ctx, const uint8_t *payload, uint32_t len);

struct metalog_stats {
    uint32_t records;         /* records replayed */
    uint64_t bytes_truncated; /* bytes cut from a torn or corrupt tail */
    uint32_t damaged_ranges;  /* damaged ranges skipped in the middle of the file */
    uint64_t damaged_bytes;   /* bytes inside them, plus a cut tail that was whole but did not
                                 check (it may have held an acknowledged record) */
};

/* Opens (creating) the log at path through io (NULL: plain system calls) and replays it
 * through fn. Returns 0 and *out, -errno, or fn's non-zero result. stats may be NULL. Blocks. */
int metalog_open(struct io *io, const char *path, metalog_replay_fn fn, void *ctx,
                 struct metalog **out, struct metalog_stats *stats);

/* Appends one record and makes it durable. Returns 0, RL_E_INVALID_ARGUMENT (too large), or
 * -errno; after a failed write or sync the log is failed for good (RL_E_LOG_FAILED), since what
 * reached the disk is unknown. Blocks. */
int metalog_append(struct metalog *ml, const uint8_t *payload, uint32_t len);

/* Compaction (single brokers; broker/meta/meta.c decides when). The log is rewritten holding
 * only the records that rebuild the same state: per topic name its last create and the last
 * alter after it, unless a delete follows (then none of its records); the highest producer-id
 * block; and every record whose kind this version does not know or that does not decode (it
 * cannot judge them). Order is kept, so the new log replays to exactly the state of the old.
 * Nothing is done when fewer than min_dropped records would go, or when the file holds damage
 * (a damaged range tells how many producer ids to skip on every open, so it must stay).
 *
 * Crash safety: the new log is written to <path>.compact, made durable, the directory synced
 * (what the caller removed from it before, leftovers of deleted topics, is durable first), then
 * renamed over <path> and the directory synced again. A power cut at any point leaves either
 * the old or the new log, which replay to the same state; metalog_open removes a <path>.compact
 * left behind. After a failure the log stays the old one and appends go on. */
struct metalog_compact_stats {
    uint32_t kept, dropped;   /* records; dropped 0 when nothing was done */
    uint64_t bytes_before, bytes_after;
};

/* Returns 0 (out says what happened), or a negative code (the old log is still in use; after a
 * failure at or after the rename the log is failed, as after a failed append). Blocks. */
int metalog_compact(struct metalog *ml, uint32_t min_dropped, struct metalog_compact_stats *out);

/* Copies records [first, end) (numbered from 0 in file order) as the file holds them (u32
 * payload_len | u64 xxh3 | payload each, so the reader can check them) into out (cap bytes),
 * stopping before the one that would pass max_bytes (the first is copied whatever its size,
 * if it fits in cap). *n_out: records copied; *len_out: their bytes. Reads the whole file
 * (a controller snapshot transfer, rare); the records asked for must be durable (an append
 * on the background thread may run meanwhile: what it writes lies past them). Returns 0,
 * RL_E_OFFSET_OUT_OF_RANGE when the file holds fewer than `end` records, RL_E_CORRUPT when a
 * record before `end` does not check (a damaged range makes numbering unreliable),
 * -ENOBUFS when the first record does not fit in cap, or -errno. Blocks; allocates a
 * buffer of the file's size for the call. */
int metalog_read_records(struct metalog *ml, uint64_t first, uint64_t end, size_t max_bytes,
                         uint8_t *out, size_t cap, size_t *len_out, uint32_t *n_out);

/* Bytes in the file. */
uint64_t metalog_size(const struct metalog *ml);

void metalog_close(struct metalog *ml);

#endif
