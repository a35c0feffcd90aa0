/*
 * config: ringlogd's settings. Start-up path: ringlogd main -> config_broker_from_args
 * (defaults, then the `key = value` file of --config, then command-line flags, which win) ->
 * shard, which hands each subsystem the part it needs. Topic keys given here are broker-wide
 * topic defaults (broker/meta/config_topic.h). Every error comes back as a sentence naming the
 * key, the bad value and what is allowed.
 */
#ifndef RL_BROKER_SERVER_CONFIG_H
#define RL_BROKER_SERVER_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/meta/config_topic.h"

/* --- broker config ---------------------------------------------------------------------------- */

#define CONFIG_HOST_MAX 64

#define CONFIG_MAX_VOTERS 9 /* RAFT_MAX_VOTERS */

/* One controller voter of --voters: node id @ its native listener. */
struct config_voter {
    int32_t id;
    char host[CONFIG_HOST_MAX];
    uint16_t port;
};

struct broker_config {
    int32_t node_id;
    uint32_t n_voters;                   /* voters: 0 for a cluster of one (no --voters) */
    struct config_voter voters[CONFIG_MAX_VOTERS];
    uint32_t election_timeout_ms;        /* election.timeout.ms: controller elections */
    uint32_t broker_session_timeout_ms;  /* broker.session.timeout.ms: silent brokers fenced */
    char listen_host[CONFIG_HOST_MAX];
    uint16_t listen_port;                /* 0: an ephemeral port (see ready_file) */
    bool http_enabled;
    char http_host[CONFIG_HOST_MAX];
    uint16_t http_port;
    char data_dir[PATH_MAX];
    char ready_file[PATH_MAX];           /* "" or a path written once listening (for tests) */
    char io_fault_delay_file[PATH_MAX];  /* io.fault.delay.file: "" or a file of milliseconds
                                            added to every write and fsync (fault tests) */
    uint32_t max_frame_bytes;            /* max.frame.bytes */
    uint32_t max_connections;            /* max.connections */
    uint64_t max_inflight_bytes;         /* max.inflight.bytes: request+response memory cap */
    uint32_t max_requests_per_connection; /* max.requests.per.connection (pipelining depth) */
    uint64_t max_connection_inflight_bytes; /* max.connection.inflight.bytes: one connection's
                                               share of max.inflight.bytes */
    uint32_t connections_max_idle_ms;    /* connections.max.idle.ms: idle connections closed */
    uint32_t frame_receive_timeout_ms;   /* frame.receive.timeout.ms: a partial frame stalled
                                            this long closes its connection */
    uint32_t max_topics;                 /* max.topics */
    uint32_t max_partitions;             /* max.partitions: over all topics */
    uint32_t max_open_files;             /* max.open.files: segment descriptors kept open */
    uint64_t tail_cache_bytes;           /* tail.cache.bytes: recent batches kept in memory */
    uint32_t tail_cache_prefault;        /* tail.cache.prefault: fault its memory in at start */
    uint32_t shutdown_timeout_ms;        /* shutdown.timeout.ms: bound on draining at SIGTERM */
    uint32_t shutdown_handoff_timeout_ms; /* shutdown.handoff.timeout.ms: at SIGTERM, bound on
                                           * handing leadership to other replicas (0: none) */
    uint32_t auto_leader_rebalance;      /* auto.leader.rebalance.enable: preferred leaders */
    uint32_t retention_check_interval_ms; /* retention.check.interval.ms */
    uint64_t catchup_bytes_per_sec; /* replication.catchup.max.bytes.per.sec (0: no limit) */
    uint32_t controller_snapshot_entries; /* controller.snapshot.entries: controller log entries
                                           * kept before the applied checkpoint (ctl.h) */
    uint32_t fetch_splice;               /* fetch.splice: 1 sends file slices by splice */
    uint64_t producer_id_expiration_ms;  /* producer.id.expiration.ms: idle producers forgotten */
    uint32_t group_min_session_timeout_ms; /* group.min.session.timeout.ms */
    uint32_t group_max_session_timeout_ms; /* group.max.session.timeout.ms */
    uint32_t group_max_members;          /* group.max.members */
    uint32_t group_initial_rebalance_delay_ms; /* group.initial.rebalance.delay.ms */
    uint32_t max_groups;                 /* max.groups */
    uint32_t offsets_topic_partitions;   /* offsets.topic.num.partitions (__consumer_offsets) */
    uint32_t offsets_topic_replication_factor; /* in a cluster; 0: min(3, live brokers) */
    uint32_t offsets_retention_minutes;  /* offsets.retention.minutes (Kafka's: 7 days) */
    uint32_t offsets_retention_check_interval_ms; /* offsets.retention.check.interval.ms */
    uint32_t auto_create_topics;         /* auto.create.topics.enable: Kafka clients' Metadata
                                          * and Produce create unknown topics (default off) */
    uint32_t num_partitions;             /* num.partitions: of an auto-created topic (and a
                                          * Kafka CreateTopics' -1 partitions) */
    uint32_t default_replication_factor; /* default.replication.factor: likewise, replicas */
    struct topic_config topic_defaults;  /* topic keys in the file set broker-wide defaults */
    /* kafka.listen: the Kafka-protocol listener (broker/kafka), off unless set; kafka.advertise:
     * the address Kafka clients are told to use (Metadata, FindCoordinator), default the
     * listener's own. */
    bool kafka_enabled;
    char kafka_host[CONFIG_HOST_MAX];
    uint16_t kafka_port;
    char kafka_advertise_host[CONFIG_HOST_MAX]; /* "" = the listener's */
    uint16_t kafka_advertise_port;
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

/* Parses a --voters list "ID@HOST:PORT,..." into cfg (ids >= 1 and distinct, addresses
 * distinct, at most CONFIG_MAX_VOTERS). Returns 0 or RL_E_INVALID_CONFIG with err. */
int config_parse_voters(struct broker_config *cfg, const char *text, char *err, size_t err_cap);

/* Usage text for ringlogd. */
const char *config_broker_usage(void);

/* Parses "host:port" (host an IPv4 address or "localhost"; port 0-65535). Returns 0 or
 * RL_E_INVALID_CONFIG. */
int config_parse_hostport(const char *text, char *host, size_t host_cap, uint16_t *port);

#endif
