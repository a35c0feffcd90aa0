/*
 * test_broker_restart: what survives a ringlogd restart and how it stops. Topic metadata
 * (topics, partition counts, partitioners, configs, deletions) survives SIGTERM and SIGKILL;
 * SIGTERM answers in-flight requests, exits 0 and marks a clean shutdown; acknowledged records
 * survive SIGKILL; a torn metadata-log tail is cut and the broker starts.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_fixture.h"

static struct tl_broker broker;
static struct tl_conn conn;

static void setup(void)
{
    tl_fixture_start(&broker, &conn, NULL);
}

static void teardown(void)
{
    tl_fixture_finish(&broker, &conn);
}

TestSuite(restart, .init = setup, .fini = teardown, .timeout = 90);

static void reconnect(void)
{
    tl_close(&conn);
    cr_assert_eq(tl_connect(&conn, broker.host, broker.port, 5000), 0);
}

/* Finds the value of `key` in a DescribeConfigs answer for one topic. */
static const char *describe_on(struct tl_conn *cc, const char *topic, const char *key,
                               bool *is_default)
{
    char *names[1] = {(char *)topic};
    Ringlog__DescribeConfigsRequest dr = RINGLOG__DESCRIBE_CONFIGS_REQUEST__INIT;
    dr.n_topics = 1;
    dr.topics = names;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_DESCRIBE_CONFIGS;
    req.describe_configs = &dr;
    Ringlog__Response *resp;
    cr_assert_eq(tl_call(cc, &req, NULL, 0, 5000, &resp, NULL, NULL), 0);
    Ringlog__TopicConfigs *tc = resp->describe_configs->topics[0];
    cr_assert_eq(tc->error_code, 0, "%s", tc->error_message);
    for (size_t i = 0; i < tc->n_configs; i++) {
        if (!strcmp(tc->configs[i]->key, key)) {
            *is_default = tc->configs[i]->is_default;
            return tc->configs[i]->value;
        }
    }
    return NULL;
}

static const char *describe(const char *topic, const char *key, bool *is_default)
{
    return describe_on(&conn, topic, key, is_default);
}

static int alter(const char *topic, const char *key, const char *value)
{
    Ringlog__ConfigEntry e = RINGLOG__CONFIG_ENTRY__INIT;
    e.key = (char *)key;
    e.value = (char *)value;
    Ringlog__ConfigEntry *es[1] = {&e};
    Ringlog__TopicConfigs tc = RINGLOG__TOPIC_CONFIGS__INIT;
    tc.name = (char *)topic;
    tc.n_configs = 1;
    tc.configs = es;
    Ringlog__TopicConfigs *tcs[1] = {&tc};
    Ringlog__AlterConfigsRequest ar = RINGLOG__ALTER_CONFIGS_REQUEST__INIT;
    ar.n_topics = 1;
    ar.topics = tcs;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_ALTER_CONFIGS;
    req.alter_configs = &ar;
    Ringlog__Response *resp;
    cr_assert_eq(tl_call(&conn, &req, NULL, 0, 5000, &resp, NULL, NULL), 0);
    return resp->alter_configs->topics[0]->error_code;
}

static int create_range_topic(const char *name)
{
    ProtobufCBinaryData keys[2] = {{1, (uint8_t *)"g"}, {1, (uint8_t *)"p"}};
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = (char *)name;
    spec.partitions = 3;
    spec.partitioner = RINGLOG__PARTITIONER__PARTITIONER_RANGE;
    spec.n_split_keys = 2;
    spec.split_keys = keys;
    return tl_create_topic_spec(&conn, &spec, NULL, 0);
}

static Ringlog__MetadataResponse *metadata(void)
{
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    Ringlog__Response *resp;
    cr_assert_eq(tl_call(&conn, &req, NULL, 0, 5000, &resp, NULL, NULL), 0);
    return resp->metadata;
}

static void check_metadata_after_restart(void)
{
    Ringlog__MetadataResponse *m = metadata();
    cr_assert_eq(m->n_topics, 2, "topics after restart: %zu", m->n_topics);
    for (size_t i = 0; i < m->n_topics; i++) {
        Ringlog__TopicMetadata *t = m->topics[i];
        if (!strcmp(t->name, "keep")) {
            cr_assert_eq(t->n_partitions, 5);
            cr_assert_eq(t->partitioner, RINGLOG__PARTITIONER__PARTITIONER_HASH);
        } else {
            cr_assert_str_eq(t->name, "ranged");
            cr_assert_eq(t->n_partitions, 3);
            cr_assert_eq(t->partitioner, RINGLOG__PARTITIONER__PARTITIONER_RANGE);
            cr_assert_eq(t->n_split_keys, 2);
            cr_assert_eq(memcmp(t->split_keys[1].data, "p", 1), 0);
        }
    }
    bool def;
    const char *v = describe("keep", "retention.ms", &def);
    cr_assert_str_eq(v, "3600000");
    cr_assert_not(def);
    v = describe("keep", "flush.policy", &def);
    cr_assert_str_eq(v, "none");
    v = describe("keep", "segment.bytes", &def);
    cr_assert(def);
}

static void make_topics(void)
{
    static const char *const cfg[] = {"retention.ms=3600000", "flush.policy=batch", NULL};
    char msg[256];
    cr_assert_eq(tl_create_topic(&conn, "keep", 5, cfg, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(tl_create_topic(&conn, "gone", 2, NULL, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(create_range_topic("ranged"), 0);
    cr_assert_eq(alter("keep", "flush.policy", "none"), 0);
    cr_assert_eq(alter("keep", "flush.policy", "bogus"), RL_E_INVALID_CONFIG);
    cr_assert_eq(tl_delete_topic(&conn, "gone"), 0);
}

/* Topics, partitioners, configs and deletions survive a clean restart. */
Test(restart, metadata_survives_sigterm)
{
    make_topics();
    cr_assert_eq(tl_broker_stop(&broker, SIGTERM, 20000), 0);
    cr_assert_eq(tl_broker_restart(&broker, 20000), 0);
    reconnect();
    check_metadata_after_restart();
}

/* The same after SIGKILL: metadata changes are durable before they are answered. */
Test(restart, metadata_survives_sigkill)
{
    make_topics();
    tl_broker_kill(&broker);
    cr_assert_eq(tl_broker_restart(&broker, 20000), 0);
    reconnect();
    check_metadata_after_restart();
}

/* A torn record at the end of the metadata log is cut; earlier topics stay. */
Test(restart, torn_metadata_tail)
{
    char msg[256];
    cr_assert_eq(tl_create_topic(&conn, "first", 1, NULL, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(tl_broker_stop(&broker, SIGTERM, 20000), 0);
    char path[400];
    snprintf(path, sizeof(path), "%s/metadata.log", broker.data_dir);
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    /* A header promising 100 bytes, then only 7 of them. */
    static const uint8_t torn[] = {100, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 'a', 'b', 'c', 'd',
                                   'e', 'f', 'g'};
    cr_assert_eq(write(fd, torn, sizeof(torn)), (ssize_t)sizeof(torn));
    close(fd);
    cr_assert_eq(tl_broker_restart(&broker, 20000), 0);
    reconnect();
    Ringlog__MetadataResponse *m = metadata();
    cr_assert_eq(m->n_topics, 1);
    cr_assert_str_eq(m->topics[0]->name, "first");
    /* And the log keeps working after the cut. */
    cr_assert_eq(tl_create_topic(&conn, "second", 1, NULL, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(tl_broker_stop(&broker, SIGTERM, 20000), 0);
    cr_assert_eq(tl_broker_restart(&broker, 20000), 0);
    reconnect();
    cr_assert_eq(metadata()->n_topics, 2);
}

/* Records acknowledged with acks=1 (flush policy batch) are all there after SIGKILL. */
Test(restart, acked_records_survive_sigkill)
{
    cr_assert_eq(tl_create_topic(&conn, "d", 2, NULL, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch(50, "rec-", &b);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(tl_produce(&conn, "d", (uint32_t)(i % 2), b, (uint32_t)len, 1, NULL), 0);
    free(b);
    tl_broker_kill(&broker);
    cr_assert_eq(tl_broker_restart(&broker, 20000), 0);
    reconnect();
    for (uint32_t p = 0; p < 2; p++) {
        uint32_t total = 0;
        for (int i = 0; i < 100 && total < 500; i++) {
            struct tl_fetch f = {.topic = "d", .partition = p, .offset = total};
            struct tl_fetch_result fr;
            cr_assert_eq(tl_fetch(&conn, &f, &fr), 0, "%s", fr.error_message);
            if (fr.records == 0)
                break;
            total += fr.records;
        }
        cr_assert_eq(total, 500, "partition %u has %u records after SIGKILL", p, total);
    }
}

/* SIGTERM while a long poll waits: the fetch is answered, the connection closed, the exit
 * status 0, the log says the stop was clean, and the data is there after the restart. */
Test(restart, sigterm_clean_shutdown)
{
    cr_assert_eq(tl_create_topic(&conn, "s", 1, NULL, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch(3, "v", &b);
    cr_assert_eq(tl_produce(&conn, "s", 0, b, (uint32_t)len, 1, NULL), 0);
    free(b);
    struct tl_fetch longpoll = {.topic = "s", .offset = 3, .max_wait_ms = 60000, .min_bytes = 1};
    cr_assert_geq(tl_send_fetch(&conn, &longpoll), 0);
    /* Make sure the fetch reached the broker: a later request on another connection. */
    struct tl_conn other;
    cr_assert_eq(tl_connect(&other, broker.host, broker.port, 5000), 0);
    cr_assert_eq(tl_list_offset(&other, "s", 0, -1, NULL), 0);
    tl_close(&other);
    uint64_t t0 = tl_now_ms();
    kill(broker.pid, SIGTERM);
    Ringlog__Response *resp;
    cr_assert_eq(tl_recv(&conn, 20000, &resp, NULL, NULL), 0);
    cr_assert_lt(tl_now_ms() - t0, 10000);
    cr_assert_eq(resp->fetch->topics[0]->partitions[0]->error_code, 0);
    cr_assert(tl_wait_closed(&conn, 10000));
    int st = tl_broker_stop(&broker, SIGTERM, 20000);
    cr_assert_eq(st, 0, "exit status %d", st);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "grep -q 'stopped cleanly' '%s'", broker.log_path);
    cr_assert_eq(system(cmd), 0, "no clean-stop line in the log");
    cr_assert_eq(tl_broker_restart(&broker, 20000), 0);
    reconnect();
    int64_t off;
    cr_assert_eq(tl_list_offset(&conn, "s", 0, -1, &off), 0);
    cr_assert_eq(off, 3);
}

/* A config file given with --config sets broker-wide topic defaults (shown as defaults by
 * DescribeConfigs) and broker limits; a bad file stops the broker at start with the line. */
Test(restart, config_file)
{
    char path[] = "/tmp/ringlog-conf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "# test config\nflush.policy = interval:50\nmax.connections = 50\n"
                       "node.id = 7\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct tl_broker cb;
    const char *args[] = {"--config", path, NULL};
    cr_assert_eq(tl_broker_start(&cb, args, 20000), 0);
    struct tl_conn c;
    cr_assert_eq(tl_connect(&c, cb.host, cb.port, 5000), 0);
    cr_assert_eq(tl_create_topic(&c, "cf", 1, NULL, NULL, 0), 0);
    bool def = false;
    const char *v = describe_on(&c, "cf", "flush.policy", &def);
    cr_assert_str_eq(v, "interval:50");
    cr_assert(def);
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    Ringlog__Response *resp;
    cr_assert_eq(tl_call(&c, &req, NULL, 0, 5000, &resp, NULL, NULL), 0);
    cr_assert_eq(resp->metadata->brokers[0]->node_id, 7);
    tl_close(&c);
    cr_assert_eq(tl_broker_stop(&cb, SIGTERM, 20000), 0);
    tl_broker_cleanup(&cb);
    /* A bad value: the broker refuses to start and names the file and line. */
    FILE *f = fopen(path, "a");
    fputs("max.connections = many\n", f);
    fclose(f);
    cr_assert_eq(tl_broker_start(&cb, args, 20000), -ECHILD);
    unlink(path);
}

/* A topic deleted just before a crash (its deletion recorded, its logs not yet removed) does
 * not come back with its old records when a topic of the same name is created again. */
Test(restart, deleted_topic_stays_deleted_after_sigkill)
{
    cr_assert_eq(tl_create_topic(&conn, "old", 2, NULL, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch(5, "stale-", &b);
    cr_assert_eq(tl_produce(&conn, "old", 1, b, (uint32_t)len, 1, NULL), 0);
    free(b);
    cr_assert_eq(tl_delete_topic(&conn, "old"), 0);
    tl_broker_kill(&broker); /* most likely before the loop's next tick deletes the logs */
    cr_assert_eq(tl_broker_restart(&broker, 20000), 0);
    reconnect();
    cr_assert_eq(metadata()->n_topics, 0);
    cr_assert_eq(tl_create_topic(&conn, "old", 2, NULL, NULL, 0), 0);
    int64_t off = -1;
    cr_assert_eq(tl_list_offset(&conn, "old", 1, -1, &off), 0);
    cr_assert_eq(off, 0, "the re-created topic has %lld old records", (long long)off);
}
