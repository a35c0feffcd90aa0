/*
 * test_broker_datadir: today's ringlogd starts on a data directory written by an earlier
 * version (tests/fixtures/datadir-v1.tar.gz, made by make-datadir-v1.sh with the broker of
 * commit c904487) and serves everything in it: topics with their partitioners and configs,
 * records, committed offsets, the producer-id block and an idempotent producer's state (its
 * snapshot); a deleted topic stays deleted. The on-disk formats must
 * not change without a migration, and this is the test that says so.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

#define FIXTURE "tests/fixtures/datadir-v1.tar.gz"

static struct tl_broker broker;
static struct tl_conn conn;

/* Starts a broker, stops it, puts the fixture in place of its data directory, restarts. */
static void setup(void)
{
    FILE *f = fopen(FIXTURE, "rb");
    cr_assert_not_null(f, "%s not found: run the test from the source tree", FIXTURE);
    fclose(f);
    cr_assert_eq(tl_broker_start(&broker, NULL, 20000), 0);
    cr_assert_eq(tl_broker_stop(&broker, SIGTERM, 20000), 0);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && tar -C '%s' -xzf '%s'", broker.data_dir,
             broker.dir, FIXTURE);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    int rc = tl_broker_restart(&broker, 20000);
    cr_assert_eq(rc, 0, "ringlogd did not start on the old data directory: %s",
                 rl_strerror(rc));
    cr_assert_eq(tl_connect(&conn, broker.host, broker.port, 5000), 0);
}

static void teardown(void)
{
    tl_close(&conn);
    int st = tl_broker_finish(&broker, 20000);
    cr_expect_eq(st, 0, "broker exit status %d", st);
}

TestSuite(datadir, .init = setup, .fini = teardown, .timeout = 60);

static Ringlog__Response *call(Ringlog__Request *req)
{
    Ringlog__Response *resp;
    int rc = tl_call(&conn, req, NULL, 0, 10000, &resp, NULL, NULL);
    cr_assert_eq(rc, 0, "%s", rl_strerror(rc));
    return resp;
}

/* The topics, their partitioners and their explicitly set configs are those recorded. */
Test(datadir, topics_and_configs)
{
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    Ringlog__MetadataResponse *m = call(&req)->metadata;
    const char *want[] = {"plain", "ranged", "idem", "__consumer_offsets"};
    cr_assert_eq(m->n_topics, 4);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_str_eq(m->topics[i]->name, want[i]);
        cr_assert_eq(m->topics[i]->error_code, 0);
    }
    cr_assert_eq(m->topics[0]->n_partitions, 2);
    cr_assert_eq(m->topics[1]->partitioner, RINGLOG__PARTITIONER__PARTITIONER_RANGE);
    cr_assert_eq(m->topics[1]->n_split_keys, 1);
    cr_assert_eq(m->topics[1]->split_keys[0].len, 1);
    cr_assert_eq(m->topics[1]->split_keys[0].data[0], 'm');
    cr_assert_eq(m->topics[3]->n_partitions, 8);

    char *names[] = {"plain", "ranged", "idem", "gone"};
    Ringlog__DescribeConfigsRequest dc = RINGLOG__DESCRIBE_CONFIGS_REQUEST__INIT;
    dc.n_topics = 4;
    dc.topics = names;
    req.body_case = RINGLOG__REQUEST__BODY_DESCRIBE_CONFIGS;
    req.describe_configs = &dc;
    Ringlog__DescribeConfigsResponse *d = call(&req)->describe_configs;
    cr_assert_eq(d->n_topics, 4);
    const char *key[] = {"retention.ms", "segment.bytes", "segment.bytes"};
    const char *val[] = {"86400000", "65536", "4096"};
    for (size_t t = 0; t < 3; t++) {
        bool found = false;
        for (size_t k = 0; k < d->topics[t]->n_configs; k++) {
            const Ringlog__ConfigEntry *e = d->topics[t]->configs[k];
            if (strcmp(e->key, key[t]))
                continue;
            found = true;
            cr_assert_str_eq(e->value, val[t], "%s %s", names[t], key[t]);
            cr_assert_not(e->is_default);
        }
        cr_assert(found, "%s has no %s", names[t], key[t]);
    }
    cr_assert_eq(d->topics[3]->error_code, RL_E_UNKNOWN_TOPIC, "deleted topic came back");
}

/* Records read back in order; the group's committed offsets are there. */
Test(datadir, records_and_committed_offsets)
{
    int64_t end;
    cr_assert_eq(tl_list_offset(&conn, "plain", 0, -1, &end), 0);
    cr_assert_eq(end, 30);
    cr_assert_eq(tl_list_offset(&conn, "plain", 1, -1, &end), 0);
    cr_assert_eq(end, 20);
    struct tl_fetch f = {.topic = "plain", .partition = 0};
    struct tl_fetch_result fr;
    cr_assert_eq(tl_fetch(&conn, &f, &fr), 0);
    cr_assert_eq(fr.records, 30);
    struct batch_reader *rd = batch_reader_create(RL_BATCH_MAX_BYTES);
    struct batch_header h;
    cr_assert_eq(batch_reader_open(rd, fr.data, fr.data_len, &h), 0);
    struct batch_record rec;
    cr_assert_eq(batch_reader_next(rd, &rec), 1);
    cr_assert_eq(rec.value_len, 4);
    cr_assert_eq(memcmp(rec.value, "p0-0", 4), 0);
    batch_reader_destroy(rd);

    uint32_t parts[2] = {0, 1};
    Ringlog__OffsetFetchTopic t = RINGLOG__OFFSET_FETCH_TOPIC__INIT;
    t.name = (char *)"plain";
    t.n_partitions = 2;
    t.partitions = parts;
    Ringlog__OffsetFetchTopic *ts[1] = {&t};
    Ringlog__OffsetFetchRequest of = RINGLOG__OFFSET_FETCH_REQUEST__INIT;
    of.group_id = (char *)"g1";
    of.n_topics = 1;
    of.topics = ts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_OFFSET_FETCH;
    req.offset_fetch = &of;
    Ringlog__Response *resp = call(&req);
    cr_assert_eq(resp->error_code, 0, "%s", resp->error_message);
    cr_assert_eq(resp->offset_fetch->topics[0]->n_partitions, 2);
    cr_assert_eq(resp->offset_fetch->topics[0]->partitions[0]->offset, 30);
    cr_assert_eq(resp->offset_fetch->topics[0]->partitions[1]->offset, 20);
}

/* The idempotent producer of "idem" (id 3, epoch 0: the CLI's three earlier produce runs were
 * idempotent too and took ids 0-2) is remembered from its snapshot: its next sequence (400)
 * is accepted in order, a repeat of it is a duplicate, and a new producer id comes from after
 * the recorded block. */
Test(datadir, producer_state_and_ids)
{
    int64_t end;
    cr_assert_eq(tl_list_offset(&conn, "idem", 0, -1, &end), 0);
    cr_assert_eq(end, 400);
    struct batch_builder *b = batch_builder_create(1 << 16, BATCH_CODEC_NONE, 0);
    batch_builder_reset(b, 3, 0, 400);
    struct batch_record_in rec = {.value = "i-400", .value_len = 5, .timestamp = 1000};
    cr_assert_eq(batch_builder_add(b, &rec), 0);
    const uint8_t *p;
    int len = batch_builder_finish(b, &p);
    cr_assert_gt(len, 0);
    int64_t base = -1;
    int rc = tl_produce(&conn, "idem", 0, p, (uint32_t)len, 1, &base);
    cr_assert_eq(rc, 0, "%s", rl_strerror(rc));
    cr_assert_eq(base, 400);
    cr_assert_eq(tl_produce(&conn, "idem", 0, p, (uint32_t)len, 1, &base), 0);
    cr_assert_eq(base, 400, "a repeated batch must be answered as a duplicate");
    batch_builder_destroy(b);
    cr_assert_eq(tl_list_offset(&conn, "idem", 0, -1, &end), 0);
    cr_assert_eq(end, 401);

    Ringlog__InitProducerIdRequest ip = RINGLOG__INIT_PRODUCER_ID_REQUEST__INIT;
    ip.producer_id = -1;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_INIT_PRODUCER_ID;
    req.init_producer_id = &ip;
    Ringlog__Response *resp = call(&req);
    cr_assert_eq(resp->error_code, 0, "%s", resp->error_message);
    cr_assert_geq(resp->init_producer_id->producer_id, 1000, "producer id %lld reused",
                  (long long)resp->init_producer_id->producer_id);
}
