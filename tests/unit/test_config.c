/*
 * test_config: ringlogd's settings (broker/config.h): topic config validation and its storage
 * view, topic name rules, the key = value file and command-line flags.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/server/config.h"
#include "common/err.h"
#include "storage/plog.h"

/* Valid topic configs are stored and marked set; invalid ones are refused with the key named
 * and leave the config unchanged. */
Test(config, topic_keys)
{
    struct topic_config c;
    char err[256];
    config_topic_default(&c);
    cr_assert_eq(c.set_mask, 0);
    cr_assert_eq(config_topic_set(&c, "retention.ms", "1000", err, sizeof(err)), 0);
    cr_assert_eq(config_topic_set(&c, "flush.policy", "interval:250", err, sizeof(err)), 0);
    cr_assert_eq(config_topic_set(&c, "segment.bytes", "1048576", err, sizeof(err)), 0);
    cr_assert_eq(c.set_mask, (1u << CONFIG_RETENTION_MS) | (1u << CONFIG_FLUSH_POLICY) |
                                 (1u << CONFIG_SEGMENT_BYTES));
    struct topic_config before = c;
    const char *bad[][2] = {
        {"retention.ms", "-2"},     {"retention.ms", "12abc"},   {"segment.bytes", "10"},
        {"flush.policy", "always"}, {"flush.policy", "interval:0"}, {"cleanup.policy", "compact"},
        {"max.message.bytes", "999999999999"}, {"no.such", "1"}, {"min.insync.replicas", "0"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        cr_assert_eq(config_topic_set(&c, bad[i][0], bad[i][1], err, sizeof(err)),
                     RL_E_INVALID_CONFIG, "%s=%s accepted", bad[i][0], bad[i][1]);
        cr_assert_not_null(strstr(err, bad[i][0]), "message does not name the key: %s", err);
    }
    cr_assert_eq(memcmp(&c, &before, sizeof(c)), 0);
    struct plog_config pc;
    config_topic_to_plog(&c, &pc);
    cr_assert_eq(pc.retention_ms, 1000);
    cr_assert_eq(pc.segment_bytes, 1048576);
    cr_assert_eq(pc.flush_policy, PLOG_FLUSH_INTERVAL);
    cr_assert_eq(pc.flush_interval_ms, 250);
    cr_assert_eq(pc.retention_bytes, -1);
    cr_assert_eq(pc.max_batch_bytes, config_topic_max_message_bytes(&c));
    cr_assert_eq(config_topic_key_find("cleanup.policy"), CONFIG_CLEANUP_POLICY);
    cr_assert_eq(config_topic_key_find("nope"), -1);
}

/* Topic names: 1-249 chars of [A-Za-z0-9._-], not "." or "..". */
Test(config, topic_names)
{
    char err[256], name[300];
    cr_assert_eq(config_topic_name_check("orders.v2_eu-west", err, sizeof(err)), 0);
    cr_assert_eq(config_topic_name_check("", err, sizeof(err)), RL_E_INVALID_TOPIC_NAME);
    cr_assert_eq(config_topic_name_check(".", err, sizeof(err)), RL_E_INVALID_TOPIC_NAME);
    cr_assert_eq(config_topic_name_check("a b", err, sizeof(err)), RL_E_INVALID_TOPIC_NAME);
    cr_assert_not_null(strstr(err, "position 1"), "%s", err);
    cr_assert_eq(config_topic_name_check("a/b", err, sizeof(err)), RL_E_INVALID_TOPIC_NAME);
    memset(name, 'n', 249);
    name[249] = 0;
    cr_assert_eq(config_topic_name_check(name, err, sizeof(err)), 0);
    name[249] = 'n';
    name[250] = 0;
    cr_assert_eq(config_topic_name_check(name, err, sizeof(err)), RL_E_INVALID_TOPIC_NAME);
}

/* No arguments give the documented defaults. */
Test(config, broker_defaults)
{
    struct broker_config c;
    char err[256];
    char *argv[] = {"ringlogd", NULL};
    cr_assert_eq(config_broker_from_args(&c, 1, argv, err, sizeof(err)), 0);
    cr_assert_str_eq(c.listen_host, "127.0.0.1");
    cr_assert_eq(c.listen_port, 9400);
    cr_assert(c.http_enabled);
    cr_assert_eq(c.http_port, 9401);
    cr_assert_str_eq(c.data_dir, "./data");
    cr_assert_eq(c.node_id, 0);
}

/* Leadership hand-off and balancing settings: defaults, Kafka's true/false spelling, refusals. */
Test(config, handoff_and_balancing)
{
    struct broker_config c;
    char err[256];
    char *argv[] = {"ringlogd", NULL};
    cr_assert_eq(config_broker_from_args(&c, 1, argv, err, sizeof(err)), 0);
    cr_assert_eq(c.shutdown_handoff_timeout_ms, 5000);
    cr_assert_eq(c.auto_leader_rebalance, 1);
    cr_assert_eq(config_broker_set(&c, "auto.leader.rebalance.enable", "false", err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(c.auto_leader_rebalance, 0);
    cr_assert_eq(config_broker_set(&c, "auto.leader.rebalance.enable", "1", err, sizeof(err)), 0);
    cr_assert_eq(c.auto_leader_rebalance, 1);
    cr_assert_neq(config_broker_set(&c, "auto.leader.rebalance.enable", "maybe", err,
                                    sizeof(err)), 0);
    cr_assert_eq(config_broker_set(&c, "shutdown.handoff.timeout.ms", "0", err, sizeof(err)), 0);
    cr_assert_eq(c.shutdown_handoff_timeout_ms, 0);
    cr_assert_neq(config_broker_set(&c, "shutdown.handoff.timeout.ms", "700000", err,
                                    sizeof(err)), 0);
}

/* Kafka's topic auto-creation settings: off, 1 partition and 1 replica by default (Kafka's);
 * true/false or 0/1; counts within what one topic can have. */
Test(config, auto_create_topics)
{
    struct broker_config c;
    char err[256];
    char *argv[] = {"ringlogd", NULL};
    cr_assert_eq(config_broker_from_args(&c, 1, argv, err, sizeof(err)), 0);
    cr_assert_eq(c.auto_create_topics, 0);
    cr_assert_eq(c.num_partitions, 1);
    cr_assert_eq(c.default_replication_factor, 1);
    cr_assert_eq(config_broker_set(&c, "auto.create.topics.enable", "true", err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(c.auto_create_topics, 1);
    cr_assert_eq(config_broker_set(&c, "auto.create.topics.enable", "0", err, sizeof(err)), 0);
    cr_assert_eq(c.auto_create_topics, 0);
    cr_assert_neq(config_broker_set(&c, "auto.create.topics.enable", "yes", err, sizeof(err)),
                  0);
    cr_assert_eq(config_broker_set(&c, "num.partitions", "12", err, sizeof(err)), 0);
    cr_assert_eq(c.num_partitions, 12);
    cr_assert_neq(config_broker_set(&c, "num.partitions", "0", err, sizeof(err)), 0);
    cr_assert_neq(config_broker_set(&c, "num.partitions", "4097", err, sizeof(err)), 0);
    cr_assert_eq(config_broker_set(&c, "default.replication.factor", "3", err, sizeof(err)), 0);
    cr_assert_eq(c.default_replication_factor, 3);
    cr_assert_neq(config_broker_set(&c, "default.replication.factor", "0", err, sizeof(err)), 0);
    cr_assert_neq(config_broker_set(&c, "default.replication.factor", "10", err, sizeof(err)),
                  0);
}

/* The file sets values, flags win over the file, and errors name the file and line. */
Test(config, file_and_flags)
{
    char path[] = "/tmp/ringlog-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "# a comment\n\nnode.id = 3\nlisten = 127.0.0.1:7000\n"
                       "data.dir = /tmp/x  # trailing comment\nflush.policy = none\n"
                       "max.connections=10\nhttp = off\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct broker_config c;
    char err[512];
    char *argv[] = {"ringlogd", "--config", path, "--listen", "localhost:7001", "--node-id",
                    "4", "--set", "max.frame.bytes=1048576", NULL};
    cr_assert_eq(config_broker_from_args(&c, 9, argv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.node_id, 4);
    cr_assert_eq(c.listen_port, 7001);
    cr_assert_str_eq(c.listen_host, "127.0.0.1");
    cr_assert_str_eq(c.data_dir, "/tmp/x");
    cr_assert_eq(c.max_connections, 10);
    cr_assert_eq(c.max_frame_bytes, 1048576);
    cr_assert_not(c.http_enabled);
    cr_assert_str_eq(c.topic_defaults.values[CONFIG_FLUSH_POLICY], "none");
    cr_assert_eq(c.topic_defaults.set_mask, 0);
    /* A bad line is reported with its number. */
    FILE *f = fopen(path, "a");
    fputs("max.connections = lots\n", f);
    fclose(f);
    char *argv2[] = {"ringlogd", "--config", path, NULL};
    cr_assert_eq(config_broker_from_args(&c, 3, argv2, err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert_not_null(strstr(err, ":9:"), "%s", err);
    unlink(path);
    char *argv3[] = {"ringlogd", "--bogus", "1", NULL};
    cr_assert_eq(config_broker_from_args(&c, 3, argv3, err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert_not_null(strstr(err, "--bogus"));
    char *argv4[] = {"ringlogd", "--listen", "nowhere", NULL};
    cr_assert_eq(config_broker_from_args(&c, 3, argv4, err, sizeof(err)), RL_E_INVALID_CONFIG);
    char *argv5[] = {"ringlogd", "--config", "/nonexistent/ringlogd.conf", NULL};
    cr_assert_lt(config_broker_from_args(&c, 3, argv5, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "/nonexistent/ringlogd.conf"));
}
