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

/* Bytes in the file. */
uint64_t metalog_size(const struct metalog *ml);

void metalog_close(struct metalog *ml);

#endif
