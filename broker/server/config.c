/*
 * config: see config.h.
 */
#include "broker/server/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/cluster/ctl.h"
#include "common/err.h"
#include "storage/plog.h"

/* --- broker config ---------------------------------------------------------------------------- */

void config_broker_default(struct broker_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->node_id = 0;
    cfg->election_timeout_ms = 1000;
    cfg->broker_session_timeout_ms = 9000;
    snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
    cfg->listen_port = 9400;
    cfg->http_enabled = true;
    snprintf(cfg->http_host, sizeof(cfg->http_host), "127.0.0.1");
    cfg->http_port = 9401;
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./data");
    cfg->max_frame_bytes = 100u * 1024 * 1024;
    cfg->max_connections = 1024;
    cfg->max_inflight_bytes = 512ull * 1024 * 1024;
    cfg->max_requests_per_connection = 128;
    cfg->max_connection_inflight_bytes = 64ull * 1024 * 1024;
    cfg->connections_max_idle_ms = 600000; /* Kafka's default: 10 minutes */
    cfg->frame_receive_timeout_ms = 30000;
    cfg->max_topics = 4096;
    cfg->max_partitions = 16384;
    cfg->max_open_files = 1024;
    cfg->tail_cache_bytes = 256ull << 20;
    cfg->shutdown_timeout_ms = 10000;
    cfg->shutdown_handoff_timeout_ms = 5000;
    cfg->auto_leader_rebalance = 1;
    cfg->retention_check_interval_ms = 60000;
    cfg->catchup_bytes_per_sec = 100ull << 20;
    cfg->controller_snapshot_entries = CTL_SNAPSHOT_ENTRIES_DEFAULT;
    cfg->fetch_splice = 1;
    cfg->producer_id_expiration_ms = 7ull * 24 * 3600 * 1000;
    cfg->group_min_session_timeout_ms = 500;
    cfg->group_max_session_timeout_ms = 300000;
    cfg->group_max_members = 1000;
    cfg->group_initial_rebalance_delay_ms = 3000;
    cfg->max_groups = 10000;
    cfg->offsets_topic_partitions = 8;
    cfg->offsets_retention_minutes = 10080;
    cfg->offsets_retention_check_interval_ms = 600000;
    cfg->num_partitions = 1;             /* Kafka's defaults */
    cfg->default_replication_factor = 1;
    config_topic_default(&cfg->topic_defaults);
}

int config_parse_hostport(const char *text, char *host, size_t host_cap, uint16_t *port)
{
    const char *colon = strrchr(text, ':');
    int64_t p;
    if (!colon || colon == text || (size_t)(colon - text) >= host_cap ||
        config_topic_parse_i64(colon + 1, &p) || p < 0 || p > 65535)
        return RL_E_INVALID_CONFIG;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = 0;
    if (!strcmp(host, "localhost"))
        snprintf(host, host_cap, "127.0.0.1");
    *port = (uint16_t)p;
    return 0;
}

static int config_set_u(const char *key, const char *value, int64_t min, int64_t max,
                        uint64_t *out, char *err, size_t err_cap)
{
    int64_t n;
    if (config_topic_parse_i64(value, &n) || n < min || n > max) {
        snprintf(err, err_cap, "%s must be an integer in [%lld, %lld], got \"%s\"", key,
                 (long long)min, (long long)max, value);
        return RL_E_INVALID_CONFIG;
    }
    *out = (uint64_t)n;
    return 0;
}

static int config_broker_set_num(struct broker_config *cfg, const char *key, const char *value,
                                 char *err, size_t err_cap)
{
    uint64_t v = 0;
    int rc;
#define NUM(name, field, lo, hi)                                                                \
    if (!strcmp(key, name)) {                                                                   \
        rc = config_set_u(key, value, lo, hi, &v, err, err_cap);                                \
        if (!rc)                                                                                \
            cfg->field = (__typeof__(cfg->field))v;                                             \
        return rc;                                                                              \
    }
    NUM("node.id", node_id, 0, INT32_MAX)
    NUM("election.timeout.ms", election_timeout_ms, 200, 60000)
    NUM("broker.session.timeout.ms", broker_session_timeout_ms, 500, 600000)
    NUM("max.frame.bytes", max_frame_bytes, 64 * 1024, 1ll << 30)
    NUM("max.connections", max_connections, 1, 1 << 20)
    NUM("max.inflight.bytes", max_inflight_bytes, 1 << 20, 1ll << 40)
    NUM("max.requests.per.connection", max_requests_per_connection, 1, 4096)
    NUM("max.connection.inflight.bytes", max_connection_inflight_bytes, 1 << 20, 1ll << 40)
    NUM("connections.max.idle.ms", connections_max_idle_ms, 100, INT32_MAX)
    NUM("frame.receive.timeout.ms", frame_receive_timeout_ms, 100, 3600000)
    NUM("max.topics", max_topics, 1, 1 << 20)
    NUM("max.partitions", max_partitions, 1, 1 << 22)
    NUM("max.open.files", max_open_files, 16, 1 << 20)
    NUM("tail.cache.bytes", tail_cache_bytes, 0, 1ll << 40)
    NUM("tail.cache.prefault", tail_cache_prefault, 0, 1)
    NUM("shutdown.timeout.ms", shutdown_timeout_ms, 0, 3600000)
    NUM("shutdown.handoff.timeout.ms", shutdown_handoff_timeout_ms, 0, 600000)
    if (!strcmp(key, "auto.leader.rebalance.enable") &&
        (!strcmp(value, "true") || !strcmp(value, "false"))) {
        cfg->auto_leader_rebalance = value[0] == 't';
        return 0;
    }
    NUM("auto.leader.rebalance.enable", auto_leader_rebalance, 0, 1)
    if (!strcmp(key, "auto.create.topics.enable") &&
        (!strcmp(value, "true") || !strcmp(value, "false"))) {
        cfg->auto_create_topics = value[0] == 't';
        return 0;
    }
    NUM("auto.create.topics.enable", auto_create_topics, 0, 1)
    NUM("num.partitions", num_partitions, 1, 4096)  /* one topic's most partitions */
    NUM("default.replication.factor", default_replication_factor, 1, 9)  /* Raft voters */
    NUM("retention.check.interval.ms", retention_check_interval_ms, 100, 86400000)
    NUM("replication.catchup.max.bytes.per.sec", catchup_bytes_per_sec, 0, 1ll << 40)
    NUM("controller.snapshot.entries", controller_snapshot_entries, 1, 100000000)
    NUM("fetch.splice", fetch_splice, 0, 1)
    NUM("producer.id.expiration.ms", producer_id_expiration_ms, 1000, 1ll << 42)
    NUM("group.min.session.timeout.ms", group_min_session_timeout_ms, 100, 3600000)
    NUM("group.max.session.timeout.ms", group_max_session_timeout_ms, 100, 3600000)
    NUM("group.max.members", group_max_members, 1, 100000)
    NUM("group.initial.rebalance.delay.ms", group_initial_rebalance_delay_ms, 0, 300000)
    NUM("max.groups", max_groups, 1, 1000000)
    NUM("offsets.topic.num.partitions", offsets_topic_partitions, 1, 1000)
    NUM("offsets.topic.replication.factor", offsets_topic_replication_factor, 0, 5)
    NUM("offsets.retention.minutes", offsets_retention_minutes, 1, INT32_MAX)
    NUM("offsets.retention.check.interval.ms", offsets_retention_check_interval_ms, 1000,
        INT32_MAX)
#undef NUM
    return 1;
}

/* kafka.listen HOST:PORT|off and kafka.advertise HOST:PORT. */
static int config_set_kafka(struct broker_config *cfg, const char *key, const char *value,
                            char *err, size_t err_cap)
{
    bool adv = !strcmp(key, "kafka.advertise");
    if (!adv && !strcmp(value, "off")) {
        cfg->kafka_enabled = false;
        return 0;
    }
    char *host = adv ? cfg->kafka_advertise_host : cfg->kafka_host;
    uint16_t *port = adv ? &cfg->kafka_advertise_port : &cfg->kafka_port;
    char h[CONFIG_HOST_MAX];
    uint16_t p;
    /* The advertised host is a name clients resolve, so any host name is allowed there. */
    if (config_parse_hostport(value, h, sizeof(h), &p) || (adv && p == 0)) {
        snprintf(err, err_cap, "%s must be HOST:PORT (e.g. 127.0.0.1:9092)%s, got \"%s\"", key,
                 adv ? " with a port above 0" : " or off", value);
        return RL_E_INVALID_CONFIG;
    }
    memcpy(host, h, sizeof(h));
    *port = p;
    if (!adv)
        cfg->kafka_enabled = true;
    return 0;
}

int config_broker_set(struct broker_config *cfg, const char *key, const char *value, char *err,
                      size_t err_cap)
{
    if (!strcmp(key, "kafka.listen") || !strcmp(key, "kafka.advertise"))
        return config_set_kafka(cfg, key, value, err, err_cap);
    if (!strcmp(key, "listen") || !strcmp(key, "http")) {
        bool http = key[0] == 'h';
        if (http && !strcmp(value, "off")) {
            cfg->http_enabled = false;
            return 0;
        }
        char *host = http ? cfg->http_host : cfg->listen_host;
        uint16_t *port = http ? &cfg->http_port : &cfg->listen_port;
        if (config_parse_hostport(value, host, CONFIG_HOST_MAX, port)) {
            snprintf(err, err_cap, "%s must be HOST:PORT (e.g. 127.0.0.1:9400)%s, got \"%s\"",
                     key, http ? " or off" : "", value);
            return RL_E_INVALID_CONFIG;
        }
        if (http)
            cfg->http_enabled = true;
        return 0;
    }
    if (!strcmp(key, "data.dir") || !strcmp(key, "ready.file")) {
        char *dst = key[0] == 'd' ? cfg->data_dir : cfg->ready_file;
        if (strlen(value) >= PATH_MAX || (key[0] == 'd' && !value[0])) {
            snprintf(err, err_cap, "%s must be a path shorter than %d chars", key, PATH_MAX);
            return RL_E_INVALID_CONFIG;
        }
        snprintf(dst, PATH_MAX, "%s", value);
        return 0;
    }
    if (!strcmp(key, "voters"))
        return config_parse_voters(cfg, value, err, err_cap);
    if (!strcmp(key, "io.fault.delay.file")) {
        if (strlen(value) >= PATH_MAX) {
            snprintf(err, err_cap, "%s must be a path shorter than %d chars", key, PATH_MAX);
            return RL_E_INVALID_CONFIG;
        }
        snprintf(cfg->io_fault_delay_file, PATH_MAX, "%s", value);
        return 0;
    }
    int rc = config_broker_set_num(cfg, key, value, err, err_cap);
    if (rc <= 0)
        return rc;
    if (config_topic_key_find(key) >= 0) {
        rc = config_topic_set(&cfg->topic_defaults, key, value, err, err_cap);
        cfg->topic_defaults.set_mask = 0; /* broker defaults are defaults on every topic */
        return rc;
    }
    snprintf(err, err_cap, "unknown setting \"%s\" (see ringlogd --help)", key);
    return RL_E_INVALID_CONFIG;
}

int config_parse_voters(struct broker_config *cfg, const char *text, char *err, size_t err_cap)
{
    char buf[1024];
    if (strlen(text) >= sizeof(buf) || !text[0]) {
        snprintf(err, err_cap, "voters must be a list ID@HOST:PORT,... of at most %d nodes",
                 CONFIG_MAX_VOTERS);
        return RL_E_INVALID_CONFIG;
    }
    snprintf(buf, sizeof(buf), "%s", text);
    cfg->n_voters = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *at = strchr(tok, '@');
        struct config_voter v = {0};
        int64_t id = 0;
        if (at)
            *at = 0;
        if (!at || config_topic_parse_i64(tok, &id) || id < 1 || id > INT32_MAX ||
            config_parse_hostport(at + 1, v.host, sizeof(v.host), &v.port) || v.port == 0) {
            snprintf(err, err_cap, "voter \"%s%s%s\" is not ID@HOST:PORT with an id >= 1 and a "
                     "port >= 1 (e.g. 1@127.0.0.1:9400)", tok, at ? "@" : "", at ? at + 1 : "");
            return RL_E_INVALID_CONFIG;
        }
        v.id = (int32_t)id;
        if (cfg->n_voters == CONFIG_MAX_VOTERS) {
            snprintf(err, err_cap, "at most %d voters are allowed", CONFIG_MAX_VOTERS);
            return RL_E_INVALID_CONFIG;
        }
        for (uint32_t i = 0; i < cfg->n_voters; i++) {
            const struct config_voter *o = &cfg->voters[i];
            if (o->id == v.id) {
                snprintf(err, err_cap, "node id %d appears twice; each voter needs its own id",
                         v.id);
                return RL_E_INVALID_CONFIG;
            }
            if (o->port == v.port && !strcmp(o->host, v.host)) {
                snprintf(err, err_cap, "nodes %d and %d have the same address %s:%u; each "
                         "voter needs its own listener", o->id, v.id, v.host, v.port);
                return RL_E_INVALID_CONFIG;
            }
        }
        cfg->voters[cfg->n_voters++] = v;
    }
    return 0;
}

static char *config_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

int config_broker_load_file(struct broker_config *cfg, const char *path, char *err,
                            size_t err_cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = -errno;
        snprintf(err, err_cap, "cannot read config file %s: %s", path, strerror(-e));
        return e;
    }
    char line[PATH_MAX + 128], msg[256];
    int rc = 0;
    for (unsigned lineno = 1; fgets(line, sizeof(line), f); lineno++) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *s = config_trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, err_cap, "%s:%u: expected \"key = value\", got \"%s\"", path, lineno,
                     s);
            rc = RL_E_INVALID_CONFIG;
            break;
        }
        *eq = 0;
        rc = config_broker_set(cfg, config_trim(s), config_trim(eq + 1), msg, sizeof(msg));
        if (rc) {
            snprintf(err, err_cap, "%s:%u: %s", path, lineno, msg);
            break;
        }
    }
    fclose(f);
    return rc;
}

const char *config_broker_usage(void)
{
    return "usage: ringlogd [--config FILE] [--data-dir DIR] [--listen HOST:PORT]\n"
           "                [--http HOST:PORT|off] [--node-id N] [--ready-file PATH]\n"
           "                [--kafka-listen HOST:PORT] [--kafka-advertise HOST:PORT]\n"
           "                [--voters ID@HOST:PORT,...] [--set KEY=VALUE ...]\n"
           "\n"
           "Starts one ringlog broker in the foreground. Without arguments it listens on\n"
           "127.0.0.1:9400 (native protocol) and 127.0.0.1:9401 (HTTP: /metrics, /v1/status)\n"
           "and keeps its data in ./data. SIGTERM or SIGINT shut it down cleanly.\n"
           "\n"
           "With --voters (the controller quorum: node id @ native listener, the same list on\n"
           "every node) the broker is one node of a cluster; --node-id then names it.\n"
           "\n"
           "Config file (and --set) keys: node.id, voters, election.timeout.ms,\n"
           "broker.session.timeout.ms, listen, http, data.dir, ready.file,\n"
           "max.frame.bytes, max.connections, max.inflight.bytes, max.requests.per.connection,\n"
           "max.connection.inflight.bytes, connections.max.idle.ms, frame.receive.timeout.ms,\n"
           "max.topics, max.partitions, max.open.files, tail.cache.bytes (0: off),\n"
           "tail.cache.prefault (0/1), shutdown.timeout.ms, shutdown.handoff.timeout.ms,\n"
           "auto.leader.rebalance.enable (true/false),\n"
           "retention.check.interval.ms, fetch.splice (0/1), producer.id.expiration.ms,\n"
           "replication.catchup.max.bytes.per.sec (catch-up of replicas behind, per loop; 0: no\n"
           "limit), controller.snapshot.entries (controller log entries kept before the\n"
           "applied checkpoint before the log is truncated; default 10000),\n"
           "group.min.session.timeout.ms, group.max.session.timeout.ms, group.max.members,\n"
           "group.initial.rebalance.delay.ms (Kafka clients' groups),\n"
           "max.groups, offsets.topic.num.partitions, offsets.retention.minutes (committed\n"
           "offsets of an empty group expire this long after it was last live; 10080),\n"
           "offsets.retention.check.interval.ms,\n"
           "auto.create.topics.enable (true/false; default false: a Kafka client's Metadata\n"
           "or Produce naming a topic that does not exist creates it, with num.partitions [1]\n"
           "partitions and default.replication.factor [1] replicas, as in Kafka; the two\n"
           "are also what a Kafka CreateTopics request's -1 counts mean),\n"
           "io.fault.delay.file (fault tests: a file\n"
           "whose number of milliseconds is added to every write and fsync), and the topic keys\n"
           "(retention.ms, retention.bytes, segment.bytes, segment.ms, max.message.bytes,\n"
           "flush.policy, min.insync.replicas, cleanup.policy) as broker-wide defaults.\n"
           "A port of 0 picks a free port; --ready-file then tells which (native=H:P, http=H:P,\n"
           "kafka=H:P).\n"
           "--kafka-listen (key kafka.listen) serves Kafka clients on HOST:PORT as well (off by\n"
           "default); --kafka-advertise (kafka.advertise) is the address they are told to use.\n"
           "\n"
           "Limits (defaults in brackets):\n"
           "  max.connections [1024]       native connections; more are answered\n"
           "                               TOO_MANY_CONNECTIONS and closed\n"
           "  connections.max.idle.ms [600000]  a connection (native or HTTP) with no traffic\n"
           "                               and no work in progress this long is closed\n"
           "  frame.receive.timeout.ms [30000]  a partial frame with no progress (64 KiB) this\n"
           "                               long closes its connection (REQUEST_TIMED_OUT)\n"
           "  max.frame.bytes [104857600]  one frame; larger ones close the connection\n"
           "  max.inflight.bytes [536870912]  request and response memory of all connections;\n"
           "                               when reached, connections stop reading\n"
           "  max.connection.inflight.bytes [67108864]  one connection's share of it\n"
           "  max.requests.per.connection [128]  pipelined requests read ahead\n"
           "  max.partitions [16384]       partitions of all topics; one topic has at most 4096\n"
           "HTTP takes at most 64 connections; at the limit a new one replaces the oldest that\n"
           "has not sent its request, so /metrics and /v1/status stay reachable.\n"
           "One ringlogd per data directory: a second one on it exits at once (status 1),\n"
           "naming the pid that holds <data-dir>/ringlogd.lock.\n";
}

static const char *config_flag_key(const char *flag)
{
    static const char *const map[][2] = {
        {"--data-dir", "data.dir"}, {"--listen", "listen"},         {"--http", "http"},
        {"--node-id", "node.id"},   {"--ready-file", "ready.file"},
        {"--kafka-listen", "kafka.listen"}, {"--kafka-advertise", "kafka.advertise"},
        {"--voters", "voters"},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(flag, map[i][0]))
            return map[i][1];
    return NULL;
}

int config_broker_from_args(struct broker_config *cfg, int argc, char **argv, char *err,
                            size_t err_cap)
{
    config_broker_default(cfg);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(config_broker_usage(), stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            int rc = config_broker_load_file(cfg, argv[i + 1], err, err_cap);
            if (rc)
                return rc;
        }
    }
    char msg[512];
    for (int i = 1; i < argc; i++) {
        const char *key = config_flag_key(argv[i]);
        bool is_set = !strcmp(argv[i], "--set"), is_cfg = !strcmp(argv[i], "--config");
        if (!key && !is_set && !is_cfg) {
            snprintf(err, err_cap, "unknown argument \"%s\" (see ringlogd --help)", argv[i]);
            return RL_E_INVALID_CONFIG;
        }
        if (i + 1 >= argc) {
            snprintf(err, err_cap, "%s needs a value (see ringlogd --help)", argv[i]);
            return RL_E_INVALID_CONFIG;
        }
        const char *value = argv[++i];
        if (is_cfg)
            continue;
        int rc;
        if (is_set) {
            char kv[PATH_MAX + 64];
            snprintf(kv, sizeof(kv), "%s", value);
            char *eq = strchr(kv, '=');
            if (!eq) {
                snprintf(err, err_cap, "--set needs KEY=VALUE, got \"%s\"", value);
                return RL_E_INVALID_CONFIG;
            }
            *eq = 0;
            rc = config_broker_set(cfg, kv, eq + 1, msg, sizeof(msg));
        } else {
            rc = config_broker_set(cfg, key, value, msg, sizeof(msg));
        }
        if (rc) {
            snprintf(err, err_cap, "%s %s: %s", argv[i - 1], value, msg);
            return rc;
        }
    }
    return 0;
}
