/*
 * config: ringlogd's settings and topics' settings. Start-up path: ringlogd main -> config_load
 * (defaults, then the `key = value` file of --config, then command-line flags, which win) ->
 * shard. Topic path: CreateTopics / AlterConfigs / the metadata log -> config_topic_set ->
 * config_topic_to_plog -> storage.
 *
 * Topic configs are kept as validated strings (what DescribeConfigs shows and the metadata log
 * stores) plus a mask of the keys set explicitly; typed views are derived on demand. Every
 * error comes back as a sentence naming the key, the bad value and what is allowed.
 */
#ifndef RL_BROKER_CONFIG_H
#define RL_BROKER_CONFIG_H

#include <limits.h>
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

/* max.message.bytes as a number. */
uint32_t config_topic_max_message_bytes(const struct topic_config *cfg);

/* --- topic names ------------------------------------------------------------------------------ */

#define CONFIG_TOPIC_NAME_MAX 249

/* 0 when name is 1-249 chars of [A-Za-z0-9._-] and not "." or ".."; otherwise
 * RL_E_INVALID_TOPIC_NAME with the reason in err. */
int config_topic_name_check(const char *name, char *err, size_t err_cap);

/* --- broker config ---------------------------------------------------------------------------- */

#define CONFIG_HOST_MAX 64

struct broker_config {
    int32_t node_id;
    char listen_host[CONFIG_HOST_MAX];
    uint16_t listen_port;                /* 0: an ephemeral port (see ready_file) */
    bool http_enabled;
    char http_host[CONFIG_HOST_MAX];
    uint16_t http_port;
    char data_dir[PATH_MAX];
    char ready_file[PATH_MAX];           /* "" or a path written once listening (for tests) */
    uint32_t max_frame_bytes;            /* max.frame.bytes */
    uint32_t max_connections;            /* max.connections */
    uint64_t max_inflight_bytes;         /* max.inflight.bytes: request+response memory cap */
    uint32_t max_requests_per_connection; /* max.requests.per.connection (pipelining depth) */
    uint32_t max_topics;                 /* max.topics */
    uint32_t max_partitions;             /* max.partitions: over all topics */
    uint32_t max_open_files;             /* max.open.files: segment descriptors kept open */
    uint32_t shutdown_timeout_ms;        /* shutdown.timeout.ms: bound on draining at SIGTERM */
    uint32_t retention_check_interval_ms; /* retention.check.interval.ms */
    uint32_t fetch_splice;               /* fetch.splice: 1 sends file slices by splice */
    uint64_t producer_id_expiration_ms;  /* producer.id.expiration.ms: idle producers forgotten */
    uint32_t group_min_session_timeout_ms; /* group.min.session.timeout.ms */
    uint32_t group_max_session_timeout_ms; /* group.max.session.timeout.ms */
    uint32_t group_max_members;          /* group.max.members */
    uint32_t max_groups;                 /* max.groups */
    uint32_t offsets_topic_partitions;   /* offsets.topic.num.partitions (__consumer_offsets) */
    struct topic_config topic_defaults;  /* topic keys in the file set broker-wide defaults */
};

/* Fills cfg with the defaults: node 0, 127.0.0.1:9400, HTTP 127.0.0.1:9401, ./data. */
void config_broker_default(struct broker_config *cfg);

/* Applies one `key = value` setting (file keys, see config_broker_usage). Returns 0 or
 * RL_E_INVALID_CONFIG with a sentence in err. */
int config_broker_set(struct broker_config *cfg, const char *key, const char *value, char *err,
                      size_t err_cap);

/* Reads a `key = value` file ('#' starts a comment; blank lines ignored). Returns 0, -errno
 * when it cannot be read, or RL_E_INVALID_CONFIG with "path:line: reason" in err. Blocks. */
int config_broker_load_file(struct broker_config *cfg, const char *path, char *err,
                            size_t err_cap);

/* Defaults, then --config FILE, then the other flags (which win over the file). Returns 0,
 * 1 when --help was asked (usage printed to stdout), or a negative code with err filled. */
int config_broker_from_args(struct broker_config *cfg, int argc, char **argv, char *err,
                            size_t err_cap);

/* Usage text for ringlogd. */
const char *config_broker_usage(void);

/* Parses "host:port" (host an IPv4 address or "localhost"; port 0-65535). Returns 0 or
 * RL_E_INVALID_CONFIG. */
int config_parse_hostport(const char *text, char *host, size_t host_cap, uint16_t *port);

#endif
