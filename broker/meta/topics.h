/*
 * topics: the shard's topic table: which topics exist, their partitions' logs, their configs,
 * and the per-partition state the request path needs (visible end, long-poll waiters,
 * counters). Admin path: CreateTopics / DeleteTopics / AlterConfigs -> topics_* -> metadata log
 * (durable first) -> storage. Data path: produce/fetch look partitions up here.
 *
 * Persistence: every change is a MetaRecord appended to <data>/metadata.log before it takes
 * effect; topics_open replays that log and opens each partition's plog, so topics and their
 * configs survive restarts. A deleted topic leaves the table at once (new requests see
 * UNKNOWN_TOPIC) but its logs are deleted only once nothing pins them (fetch responses still
 * being sent), by topics_reap from the shard's loop.
 *
 * Single-threaded: owned by one shard.
 */
#ifndef RL_BROKER_TOPICS_H
#define RL_BROKER_TOPICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/server/config.h"
#include "broker/partition/partition.h"
#include "proto/ringlog.pb-c.h"

struct storage;
struct plog;
struct metalog;
struct partition;

struct topic {
    char name[CONFIG_TOPIC_NAME_MAX + 1];
    uint32_t partition_count;
    Ringlog__Partitioner partitioner;
    size_t n_split_keys;
    ProtobufCBinaryData *split_keys; /* owned copies */
    struct topic_config cfg;
    uint32_t max_message_bytes;      /* cached from cfg */
    struct partition **parts;        /* partition_count of them */
    bool deleted;
};

struct topics;

/* Opens the metadata log in data_dir (created if needed), replays it and opens every
 * partition's log under data_dir on `st`. limits come from cfg (max.topics, max.partitions,
 * topic defaults). Returns 0 and *out, or a negative code with a sentence in err. Blocks. */
int topics_open(const struct broker_config *cfg, struct partition_env *env, struct topics **out,
                char *err, size_t err_cap);

/* Closes every log cleanly (plog_close) and the metadata log; frees everything. Blocks. */
void topics_close(struct topics *tp);

/* Number of live topics and the i-th (0 <= i < count), in creation order. */
size_t topics_count(const struct topics *tp);
struct topic *topics_at(const struct topics *tp, size_t i);

/* The live topic named `name`, or NULL. */
struct topic *topics_find(const struct topics *tp, const char *name);

/* Looks a partition up: returns it, or NULL with *err = RL_E_UNKNOWN_TOPIC or
 * RL_E_UNKNOWN_PARTITION. */
struct partition *topics_partition(const struct topics *tp, const char *name, uint32_t index,
                                   int *err);

/* Validates spec (name, partitions, replication, partitioner and split keys, configs, limits)
 * and, unless validate_only, records it durably and opens its partitions. Returns 0 or a code
 * with a sentence in err. Blocks (metadata fsync, log creation). */
int topics_create(struct topics *tp, const Ringlog__TopicSpec *spec, bool validate_only,
                  char *err, size_t err_cap);

/* Deletes a topic: records it durably, wakes its waiters (gone), removes it from the table;
 * the logs are deleted by topics_reap once unpinned. Returns 0 or RL_E_UNKNOWN_TOPIC. */
int topics_delete(struct topics *tp, const char *name, char *err, size_t err_cap);

/* Sets the listed keys (others keep their values), durably, and applies them to the open
 * logs. All-or-nothing. Returns 0 or a code with a sentence in err. */
int topics_alter(struct topics *tp, const char *name, Ringlog__ConfigEntry *const *entries,
                 size_t n, bool validate_only, char *err, size_t err_cap);

/* Deletes the logs of deleted topics that nothing pins any more. Call from the owner's loop,
 * never from a callback. Blocks while queueing the deletions. */
void topics_reap(struct topics *tp);

/* Runs retention on every log (plog_enforce_retention). */
void topics_enforce_retention(struct topics *tp, int64_t now_ms);

/* The end of the last block of producer ids recorded in the metadata log (0 if none): every
 * id below it may have been handed out. */
int64_t topics_producer_id_block_end(const struct topics *tp);

/* Records durably that ids below block_end are reserved (before any is handed out). Returns 0
 * or the metadata log's error. Blocks (fsync). */
int topics_reserve_producer_ids(struct topics *tp, int64_t block_end);

#endif
