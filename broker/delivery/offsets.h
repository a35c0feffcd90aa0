/*
 * offsets: committed consumer offsets, as records of the internal topic __consumer_offsets and
 * as the in-memory table the coordinator answers OffsetFetch from. Commit path: OffsetCommit ->
 * offsets_encode_commit -> a record appended (and replicated) to the group's partition of
 * __consumer_offsets -> offsets_put once durable. After a restart the table is rebuilt by
 * replaying that partition's records through offsets_apply_record; the latest record per key
 * wins, and a record with a null value (a tombstone) deletes the key.
 *
 * Record format (the record's key and value; integers little-endian):
 *   key   = version u8 (1) | group_len u16 | group | topic_len u16 | topic | partition u32
 *   value = version u8 (1) | offset i64 | commit_ms i64 | metadata_len u16 | metadata
 *
 * The table is a hash map from (group, topic, partition) to the committed offset, allocating one
 * node per new key (commits of known keys update in place), bounded by max_entries.
 * Not thread-safe: owned by the coordinator's shard.
 */
#ifndef RL_BROKER_OFFSETS_H
#define RL_BROKER_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OFFSETS_TOPIC "__consumer_offsets"
#define OFFSETS_METADATA_MAX 1024
#define OFFSETS_NAME_MAX 255
#define OFFSETS_KEY_MAX (1 + 2 + OFFSETS_NAME_MAX + 2 + OFFSETS_NAME_MAX + 4)
#define OFFSETS_VALUE_MAX (1 + 8 + 8 + 2 + OFFSETS_METADATA_MAX)

struct offsets_table;

struct offsets_commit {
    int64_t offset;      /* the next offset the group will consume */
    int64_t commit_ms;
    const char *metadata; /* optional, NUL-terminated, <= OFFSETS_METADATA_MAX */
};

/* Which partition of __consumer_offsets holds this group (xxh3-64 of the id, modulo count). */
uint32_t offsets_partition_for(const char *group_id, uint32_t partition_count);

/* Encode a commit as record key and value. Return the bytes written, or RL_E_INVALID_ARGUMENT
 * for names longer than OFFSETS_NAME_MAX, metadata longer than OFFSETS_METADATA_MAX, a negative
 * offset, or a buffer below OFFSETS_KEY_MAX / OFFSETS_VALUE_MAX. */
int offsets_encode_key(const char *group, const char *topic, uint32_t partition, uint8_t *buf,
                       size_t cap);
int offsets_encode_value(const struct offsets_commit *c, uint8_t *buf, size_t cap);

struct offsets_table *offsets_table_create(uint32_t max_entries);
void offsets_table_destroy(struct offsets_table *t);

/* Stores a commit (copying strings). Returns 0, RL_E_LIMIT when full, or -ENOMEM. */
int offsets_put(struct offsets_table *t, const char *group, const char *topic,
                uint32_t partition, const struct offsets_commit *c);

/* Looks a commit up. Returns 0 with *out filled (out->metadata owned by the table, valid until
 * the key changes) or RL_E_NOT_FOUND. */
int offsets_get(const struct offsets_table *t, const char *group, const char *topic,
                uint32_t partition, struct offsets_commit *out);

/* Removes every commit of a group; returns how many. */
uint32_t offsets_delete_group(struct offsets_table *t, const char *group);

/* Applies one record replayed from __consumer_offsets (value NULL / value_len < 0 = tombstone).
 * Returns 0, or RL_E_CORRUPT for a record that does not decode (the caller reports it with its
 * offset and skips it). */
int offsets_apply_record(struct offsets_table *t, const uint8_t *key, int32_t key_len,
                         const uint8_t *value, int32_t value_len);

/* Calls fn for every commit of `group` (order unspecified). Do not modify the table from fn. */
typedef void (*offsets_visit_fn)(void *arg, const char *topic, uint32_t partition,
                                 const struct offsets_commit *c);
uint32_t offsets_visit_group(const struct offsets_table *t, const char *group,
                             offsets_visit_fn fn, void *arg);

/* Distinct group ids with at least one commit, up to max (returns how many were written; the
 * strings are owned by the table). */
uint32_t offsets_list_groups(const struct offsets_table *t, const char **groups, uint32_t max);

uint32_t offsets_count(const struct offsets_table *t);

/* --- retention (offsets.retention.minutes) ----------------------------------------------------
 * Every key has an activity time: its commit_ms, raised to the time its group was last seen
 * live (with members) by offsets_touch_group or offsets_expire_scan. It lives in memory only;
 * after a restart it is the commit's own time again. */

/* Marks every commit of `group` active at now_ms (the group was live until now). */
void offsets_touch_group(struct offsets_table *t, const char *group, int64_t now_ms);

/* Is the group live (it has members, so its commits are kept however old)? */
typedef bool (*offsets_live_fn)(void *arg, const char *group);
/* A commit past retention; returns true when the caller took it (it counts toward max). */
typedef bool (*offsets_expired_fn)(void *arg, const char *group, const char *topic,
                                   uint32_t partition);

/* One pass over the table: commits of live groups become active at now_ms; every other commit
 * whose activity time is at or before before_ms is handed to `expired`, at most max of them.
 * Removes nothing (the caller removes a key once its tombstone is in the log). Returns how
 * many `expired` took. */
uint32_t offsets_expire_scan(struct offsets_table *t, int64_t now_ms, int64_t before_ms,
                             offsets_live_fn live, offsets_expired_fn expired, void *arg,
                             uint32_t max);

/* --- snapshots -------------------------------------------------------------------------------
 * A snapshot holds the latest commit of every key of one partition of __consumer_offsets as of
 * a log offset, so start-up reads the snapshot and replays only the records after it, and the
 * records below it can go (broker/delivery/coordinator.c). Image (little-endian), stored as a
 * storage/checkpoint payload (which adds the checksum):
 *   off 0  u32 magic "RLOS" (0x534f4c52) | off 4 u32 version (1) | off 8 i64 next_offset |
 *   off 16 u32 count | count x (u16 key_len | key | u16 value_len | value)
 * where key and value are the record encodings above, so a snapshot entry reads exactly like a
 * replayed record. */
#define OFFSETS_SNAPSHOT_VERSION 1u
#define OFFSETS_SNAPSHOT_HEAD 20u

/* Which commits a snapshot takes: true to keep the group's. */
typedef bool (*offsets_keep_fn)(void *arg, const char *group);

/* Encodes the commits of the groups `keep` accepts (NULL: all) as of next_offset into a
 * malloc'ed image (*out, *len; the caller frees). Returns 0, -ENOMEM, or RL_E_LIMIT when the
 * image would pass max_bytes. */
int offsets_snapshot_encode(const struct offsets_table *t, offsets_keep_fn keep, void *arg,
                            int64_t next_offset, size_t max_bytes, uint8_t **out, size_t *len);

/* Reads an image's header: returns 0 with *next_offset and *count, or RL_E_CORRUPT. */
int offsets_snapshot_header(const uint8_t *img, size_t len, int64_t *next_offset,
                            uint32_t *count);

/* Applies every entry of an image to t (as replayed records). Returns 0, RL_E_CORRUPT for an
 * image that does not decode (entries before the bad one stay applied), or RL_E_LIMIT /
 * -ENOMEM. */
int offsets_snapshot_apply(struct offsets_table *t, const uint8_t *img, size_t len);

#endif
