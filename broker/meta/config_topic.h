/*
 * config_topic: a topic's settings (retention, segment size, flush policy, ...) and topic
 * names. Topic path: CreateTopics / AlterConfigs / the metadata log -> config_topic_set ->
 * config_topic_to_plog -> storage. The broker's own settings (broker/server/config.h) keep
 * broker-wide topic defaults in the same form.
 *
 * Topic configs are kept as validated strings (what DescribeConfigs shows and the metadata log
 * stores) plus a mask of the keys set explicitly; typed views are derived on demand. Every
 * error comes back as a sentence naming the key, the bad value and what is allowed.
 */
#ifndef RL_BROKER_META_CONFIG_TOPIC_H
#define RL_BROKER_META_CONFIG_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct plog_config;

/* --- topic configs ---------------------------------------------------------------------------- */

enum config_topic_key {
    CONFIG_RETENTION_MS,
    CONFIG_RETENTION_BYTES,
    CONFIG_SEGMENT_BYTES,
    CONFIG_SEGMENT_MS,
    CONFIG_MAX_MESSAGE_BYTES,
    CONFIG_FLUSH_POLICY,
    CONFIG_MIN_INSYNC_REPLICAS,
    CONFIG_CLEANUP_POLICY,
    CONFIG_TOPIC_KEY_COUNT,
};

#define CONFIG_VALUE_MAX 48

struct topic_config {
    char values[CONFIG_TOPIC_KEY_COUNT][CONFIG_VALUE_MAX];
    uint32_t set_mask; /* bit k: key k was set explicitly on the topic */
};

/* Fills cfg with the built-in defaults; set_mask 0. */
void config_topic_default(struct topic_config *cfg);

/* Key name of k ("retention.ms"). */
const char *config_topic_key_name(enum config_topic_key k);

/* Index of a key name, or -1 when the name is not a topic config key. */
int config_topic_key_find(const char *name);

/* Validates value for key and stores it (marking the key set). Returns 0, or
 * RL_E_INVALID_CONFIG with a sentence in err (err_cap bytes). cfg is unchanged on error. */
int config_topic_set(struct topic_config *cfg, const char *key, const char *value, char *err,
                     size_t err_cap);

/* The storage view of a topic config. Returns 0 (values were validated when set). */
int config_topic_to_plog(const struct topic_config *cfg, struct plog_config *out);

/* Parses a whole decimal integer, as every numeric setting (topic or broker) is written.
 * Returns 0 with *out set, or -1. */
int config_topic_parse_i64(const char *s, int64_t *out);

/* max.message.bytes as a number. */
uint32_t config_topic_max_message_bytes(const struct topic_config *cfg);

/* --- topic names ------------------------------------------------------------------------------ */

#define CONFIG_TOPIC_NAME_MAX 249

/* 0 when name is 1-249 chars of [A-Za-z0-9._-] and not "." or ".."; otherwise
 * RL_E_INVALID_TOPIC_NAME with the reason in err. */
int config_topic_name_check(const char *name, char *err, size_t err_cap);

#endif
