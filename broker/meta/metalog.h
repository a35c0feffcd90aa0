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
 * A record is trusted only if it is whole and its checksum matches. Replay stops at the first
 * record that is not; the file is truncated there (a torn tail after a crash mid-append), and
 * the cut is reported through RL_CORRUPT when it is not simply a short tail.
 *
 * Appends are synchronous (write + fdatasync, blocking): metadata changes are rare admin
 * operations and must be durable before they are acknowledged. Single-threaded.
 */
#ifndef RL_BROKER_METALOG_H
#define RL_BROKER_METALOG_H

#include <stddef.h>
#include <stdint.h>

struct metalog;

/* Payloads larger than this are refused (a topic with 10k split keys still fits). */
#define METALOG_MAX_RECORD_BYTES (16u * 1024 * 1024)

/* Called for each valid record during replay; a non-zero return stops the replay and is
 * returned by metalog_open. payload is valid only during the call. */
typedef int (*metalog_replay_fn)(void *ctx, const uint8_t *payload, uint32_t len);

struct metalog_stats {
    uint32_t records;         /* records replayed */
    uint64_t bytes_truncated; /* bytes cut from a torn or corrupt tail */
};

/* Opens (creating) the log at path and replays it through fn. Returns 0 and *out, -errno, or
 * fn's non-zero result. stats may be NULL. Blocks. */
int metalog_open(const char *path, metalog_replay_fn fn, void *ctx, struct metalog **out,
                 struct metalog_stats *stats);

/* Appends one record and makes it durable. Returns 0, RL_E_INVALID_ARGUMENT (too large), or
 * -errno; after a failed write or sync the log is failed for good (RL_E_LOG_FAILED), since what
 * reached the disk is unknown. Blocks. */
int metalog_append(struct metalog *ml, const uint8_t *payload, uint32_t len);

/* Bytes in the file. */
uint64_t metalog_size(const struct metalog *ml);

void metalog_close(struct metalog *ml);

#endif
