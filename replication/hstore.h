/*
 * hstore: the Raft hard state (term and vote) of every group of one broker loop, in one small
 * write-ahead file, made durable by one write and one fdatasync per loop turn for all the groups
 * that changed (replication-anchors 6.2, as Redpanda's kvstore). Where it sits: replication
 * driver -> hstore -> io. An election storm of thousands of partitions costs a few fsyncs, not
 * thousands, without weakening Raft: the driver sends no message of a group (a vote grant or any
 * reply bearing the new term) before the group's latest put is durable (hstore_durable_seq).
 *
 * File `<dir>/raft-hardstate`: 32-byte records, little-endian:
 *   off 0 u64 group | off 8 u64 term | off 16 u32 vote | off 20 u32 flags (0) |
 *   off 24 u64 xxh3-64 of bytes [0, 24)
 * The first record is a header: group HSTORE_MAGIC, term = version (1), vote 0. Records are only
 * appended; the last one of a group wins. Recovery reads up to the first record that fails its
 * checksum (a torn tail: only the last, unacknowledged write can be torn) and cuts the file
 * there. When the file holds many times more records than groups, hstore_flush rewrites it
 * with one record per group (a new file, fdatasync'ed, renamed over the old one, directory
 * fsync'ed), so it stays small.
 *
 * All I/O goes through io (io.h): writes and fdatasync are asynchronous, one flush in flight
 * at a time; puts made meanwhile go out with the next. Open, close and the rewrite block.
 * Not thread-safe: the loop's thread only. A failed write or fdatasync is sticky (as in the
 * plog): every later flush fails with the first error.
 */
#ifndef RL_REPLICATION_HSTORE_H
#define RL_REPLICATION_HSTORE_H

#include <stdint.h>

#include "replication/raft.h"

struct io;
struct hstore;

#define HSTORE_FILE "raft-hardstate"
#define HSTORE_MAGIC 0x4554415453484c52ull /* "RLHSTATE" */
#define HSTORE_RECORD_BYTES 32
#define HSTORE_MAX_GROUPS (1u << 20) /* groups one store holds */
#define HSTORE_REWRITE_FACTOR 8      /* rewrite once records exceed 8x the groups (and 4096) */

/* Opens (creating if needed) the store in `dir` on `io` (borrowed; must outlive the store),
 * recovering the latest hard state of every group. Blocks. Returns 0 and *out, or a negative
 * code (-errno, RL_E_CORRUPT for a file that is not a hard-state store). */
int hstore_open(struct io *io, const char *dir, struct hstore **out);

/* Waits for a flush in flight, then frees the store. Blocks. */
void hstore_close(struct hstore *hs);

/* The hard state recorded for `group` (durable or not); zeroes when none. */
struct raft_hard_state hstore_get(const struct hstore *hs, uint64_t group);

/* Records a new hard state for `group`; it becomes durable with a later flush. Returns the
 * put's sequence number (> 0), or RL_E_LIMIT when the store holds HSTORE_MAX_GROUPS groups, or
 * -ENOMEM. */
int64_t hstore_put(struct hstore *hs, uint64_t group, const struct raft_hard_state *st);

/* Starts writing every put not yet written (one write, one fdatasync) unless a flush is in
 * flight. The driver calls it once per loop turn. Returns 1 when a flush started, 0 when there
 * was nothing to do or one is in flight, or the sticky error. */
int hstore_flush(struct hstore *hs);

/* Puts up to this sequence number are durable. */
uint64_t hstore_durable_seq(const struct hstore *hs);
/* The sequence number of the latest put. */
uint64_t hstore_put_seq(const struct hstore *hs);

/* Statistics: flushes completed (each one write and one fdatasync), records in the file. */
uint64_t hstore_flushes(const struct hstore *hs);
uint64_t hstore_file_records(const struct hstore *hs);

/* The sticky error, or 0. */
int hstore_failed(const struct hstore *hs);

#endif
