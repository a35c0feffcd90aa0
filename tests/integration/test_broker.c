/*
 * test_broker: ringlogd end to end over the native protocol, with real broker processes on
 * 127.0.0.1 (ephemeral ports, temporary data directories): metadata, topics, produce, fetch,
 * list offsets, pipelining, long-polling, HTTP metrics and status.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

static struct tl_broker broker;
static struct tl_conn conn;

static void setup(void)
{
    int rc = tl_broker_start(&broker, NULL, 20000);
    cr_assert_eq(rc, 0, "ringlogd did not start: %s", rl_strerror(rc));
    rc = tl_connect(&conn, broker.host, broker.port, 5000);
    cr_assert_eq(rc, 0, "connect: %s", rl_strerror(rc));
}

static void teardown(void)
{
    tl_close(&conn);
    /* A clean stop exits 0 (under the sanitizers, also without leaks or errors). */
    int st = tl_broker_finish(&broker, 20000);
    cr_expect_eq(st, 0, "broker exit status %d", st);
}

TestSuite(broker, .init = setup, .fini = teardown, .timeout = 60);

/* ApiVersions lists every served API at version 0 and names the node. */
Test(broker, api_versions)
{
    Ringlog__ApiVersionsRequest av = RINGLOG__API_VERSIONS_REQUEST__INIT;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_API_VERSIONS;
    req.api_versions = &av;
    Ringlog__Response *resp;
    cr_assert_eq(tl_call(&conn, &req, NULL, 0, 5000, &resp, NULL, NULL), 0);
    cr_assert_eq(resp->error_code, 0);
    cr_assert_eq(resp->body_case, RINGLOG__RESPONSE__BODY_API_VERSIONS);
    cr_assert_geq(resp->api_versions->n_apis, 9);
    cr_assert_eq(resp->api_versions->node_id, 0);
}

/* A created topic shows in Metadata with its partitions, leader and partitioner. */
Test(broker, create_topic_and_metadata)
{
    char msg[256];
    cr_assert_eq(tl_create_topic(&conn, "orders", 4, NULL, msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(tl_create_topic(&conn, "orders", 4, NULL, msg, sizeof(msg)), RL_E_TOPIC_EXISTS);
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    mr.all_topics = 1;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    Ringlog__Response *resp;
    cr_assert_eq(tl_call(&conn, &req, NULL, 0, 5000, &resp, NULL, NULL), 0);
    Ringlog__MetadataResponse *m = resp->metadata;
    cr_assert_not_null(m);
    cr_assert_eq(m->n_brokers, 1);
    cr_assert_eq(m->brokers[0]->port, broker.port);
    cr_assert_eq(m->n_topics, 1);
    cr_assert_str_eq(m->topics[0]->name, "orders");
    cr_assert_eq(m->topics[0]->n_partitions, 4);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(m->topics[0]->partitions[i]->partition, i);
        cr_assert_eq(m->topics[0]->partitions[i]->leader, 0);
    }
}

/* Records produced with acks=1 come back from Fetch in order with stamped offsets, and
 * ListOffsets reports earliest and latest. */
Test(broker, produce_fetch_roundtrip)
{
    cr_assert_eq(tl_create_topic(&conn, "t", 2, NULL, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch(10, "value-", &b);
    cr_assert_gt(len, 0);
    int64_t base = -1;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tl_produce(&conn, "t", 1, b, (uint32_t)len, 1, &base), 0);
        cr_assert_eq(base, 10 * i);
    }
    free(b);
    struct tl_fetch_result fr;
    struct tl_fetch f = {.topic = "t", .partition = 1, .offset = 0, .max_bytes = 1 << 20};
    cr_assert_eq(tl_fetch(&conn, &f, &fr), 0, "%s", fr.error_message);
    cr_assert_eq(fr.records, 30);
    cr_assert_eq(fr.high_watermark, 30);
    /* The records decode and carry their values in order. */
    struct batch_reader *rd = batch_reader_create(1 << 20);
    uint32_t pos = 0, seen = 0;
    while (pos < fr.data_len) {
        struct batch_header h;
        cr_assert_eq(batch_reader_open(rd, fr.data + pos, fr.data_len - pos, &h), 0);
        struct batch_record rec;
        while (batch_reader_next(rd, &rec) == 1) {
            char want[32];
            snprintf(want, sizeof(want), "value-%u", seen % 10);
            cr_assert_eq(rec.offset, seen);
            cr_assert_eq((size_t)rec.value_len, strlen(want));
            cr_assert_eq(memcmp(rec.value, want, strlen(want)), 0);
            seen++;
        }
        pos += h.batch_len;
    }
    batch_reader_destroy(rd);
    cr_assert_eq(seen, 30);
    int64_t off;
    cr_assert_eq(tl_list_offset(&conn, "t", 1, -2, &off), 0);
    cr_assert_eq(off, 0);
    cr_assert_eq(tl_list_offset(&conn, "t", 1, -1, &off), 0);
    cr_assert_eq(off, 30);
    cr_assert_eq(tl_list_offset(&conn, "t", 0, -1, &off), 0);
    cr_assert_eq(off, 0);
    /* Fetching from the middle returns only what is at or after the offset. */
    f.offset = 25;
    cr_assert_eq(tl_fetch(&conn, &f, &fr), 0);
    cr_assert_eq(fr.records, 5);
}

/* acks=0 is answered at once with the offsets already assigned; the data is then readable. */
Test(broker, produce_acks0)
{
    cr_assert_eq(tl_create_topic(&conn, "a0", 1, NULL, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch(5, "x", &b);
    int64_t base = -1;
    cr_assert_eq(tl_produce(&conn, "a0", 0, b, (uint32_t)len, 0, &base), 0);
    cr_assert_eq(base, 0);
    cr_assert_eq(tl_produce(&conn, "a0", 0, b, (uint32_t)len, 0, &base), 0);
    cr_assert_eq(base, 5);
    free(b);
    struct tl_fetch_result fr;
    struct tl_fetch f = {.topic = "a0", .offset = 0, .min_bytes = 1, .max_wait_ms = 5000};
    uint32_t total = 0;
    for (int i = 0; i < 10 && total < 10; i++) {
        f.offset = total;
        cr_assert_eq(tl_fetch(&conn, &f, &fr), 0);
        total += fr.records;
    }
    cr_assert_eq(total, 10);
}

/* Many requests sent before reading any response are all answered, in request order. */
Test(broker, pipelining_in_order)
{
    cr_assert_eq(tl_create_topic(&conn, "p", 1, NULL, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch(2, "v", &b);
    enum { N = 200 };
    uint32_t corr[N];
    for (int i = 0; i < N; i++) {
        int64_t c;
        if (i % 3 == 2) { /* interleave a request answered at once */
            Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
            Ringlog__Request req = RINGLOG__REQUEST__INIT;
            req.body_case = RINGLOG__REQUEST__BODY_METADATA;
            req.metadata = &mr;
            c = tl_send(&conn, &req, NULL, 0);
        } else {
            c = tl_send_produce(&conn, "p", 0, b, (uint32_t)len, 1);
        }
        cr_assert_geq(c, 0);
        corr[i] = (uint32_t)c;
    }
    free(b);
    int64_t last_base = -1;
    for (int i = 0; i < N; i++) {
        Ringlog__Response *resp;
        cr_assert_eq(tl_recv(&conn, 10000, &resp, NULL, NULL), 0, "response %d", i);
        cr_assert_eq(resp->correlation_id, corr[i], "response %d out of order", i);
        cr_assert_eq(resp->error_code, 0);
        if (resp->body_case == RINGLOG__RESPONSE__BODY_PRODUCE) {
            int64_t base = resp->produce->topics[0]->partitions[0]->base_offset;
            cr_assert_gt(base, last_base);
            last_base = base;
        }
    }
}

/* Large frames (bigger than the broker's standing receive buffer, of sizes that leave partial
 * headers at buffer boundaries) pipelined 8 deep are all appended and read back whole. */
Test(broker, pipelining_large_frames)
{
    cr_assert_eq(tl_create_topic(&conn, "big", 3, NULL, NULL, 0), 0);
    enum { N = 60, WINDOW = 8 };
    uint8_t *b[3];
    int len[3];
    for (int k = 0; k < 3; k++) {
        len[k] = tl_make_batch_sized(100 + 37 * (uint32_t)k, 1021 + 3 * (uint32_t)k, &b[k]);
        cr_assert_gt(len[k], 64 * 1024);
    }
    uint64_t bytes[3] = {0};
    int sent = 0, got = 0;
    while (got < N) {
        while (sent < N && sent - got < WINDOW) {
            int k = sent % 3;
            int64_t c = tl_send_produce(&conn, "big", (uint32_t)k, b[k], (uint32_t)len[k], 1);
            cr_assert_geq(c, 0);
            bytes[k] += (uint64_t)len[k];
            sent++;
        }
        Ringlog__Response *resp;
        cr_assert_eq(tl_recv(&conn, 20000, &resp, NULL, NULL), 0, "response %d", got);
        cr_assert_eq(resp->produce->topics[0]->partitions[0]->error_code, 0);
        got++;
    }
    for (int k = 0; k < 3; k++) {
        uint64_t off = 0, seen = 0;
        for (int i = 0; i < N; i++) {
            struct tl_fetch f = {.topic = "big", .partition = (uint32_t)k, .offset = off,
                                 .max_bytes = 1 << 20};
            struct tl_fetch_result fr;
            cr_assert_eq(tl_fetch(&conn, &f, &fr), 0);
            if (fr.records == 0)
                break;
            off += fr.records;
            seen += fr.data_len;
        }
        cr_assert_eq(seen, bytes[k], "partition %d: %llu of %llu bytes", k,
                     (unsigned long long)seen, (unsigned long long)bytes[k]);
        free(b[k]);
    }
}

/* Whether a response is waiting on c within ms (poll with a deadline). */
static bool response_within(struct tl_conn *c, int ms)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

/* A fetch waiting on an empty partition returns as soon as a record arrives from another
 * connection: it is still unanswered 300 ms in, and answered well before its 20 s max wait. */
Test(broker, long_poll_wakes_on_append)
{
    cr_assert_eq(tl_create_topic(&conn, "lp", 1, NULL, NULL, 0), 0);
    struct tl_fetch longpoll = {.topic = "lp", .max_wait_ms = 20000, .min_bytes = 1};
    cr_assert_geq(tl_send_fetch(&conn, &longpoll), 0);
    cr_assert_not(response_within(&conn, 300), "fetch answered before any data arrived");
    struct tl_conn prod;
    cr_assert_eq(tl_connect(&prod, broker.host, broker.port, 5000), 0);
    uint8_t *b;
    int len = tl_make_batch(1, "wake", &b);
    uint64_t t0 = tl_now_ms();
    cr_assert_eq(tl_produce(&prod, "lp", 0, b, (uint32_t)len, 1, NULL), 0);
    free(b);
    Ringlog__Response *resp;
    const uint8_t *data;
    uint32_t dlen;
    cr_assert_eq(tl_recv(&conn, 20000, &resp, &data, &dlen), 0);
    uint64_t waited = tl_now_ms() - t0;
    cr_assert_lt(waited, 2000, "fetch took %llu ms after the append", (unsigned long long)waited);
    cr_assert_eq(resp->fetch->topics[0]->partitions[0]->error_code, 0);
    cr_assert_gt(resp->fetch->topics[0]->partitions[0]->data_len, 0);
    tl_close(&prod);
}

/* With no data arriving, a long poll returns empty once max_wait has passed (not before). */
Test(broker, long_poll_times_out_empty)
{
    cr_assert_eq(tl_create_topic(&conn, "idle", 1, NULL, NULL, 0), 0);
    struct tl_fetch f = {.topic = "idle", .max_wait_ms = 400, .min_bytes = 1};
    struct tl_fetch_result fr;
    uint64_t t0 = tl_now_ms();
    cr_assert_eq(tl_fetch(&conn, &f, &fr), 0);
    uint64_t took = tl_now_ms() - t0;
    cr_assert_eq(fr.data_len, 0);
    cr_assert_geq(took, 380, "returned after %llu ms", (unsigned long long)took);
    cr_assert_lt(took, 5000);
}

/* /metrics serves Prometheus text with per-partition and per-API series; /v1/status JSON. */
Test(broker, http_metrics_and_status)
{
    cr_assert_eq(tl_create_topic(&conn, "m", 1, NULL, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch(7, "v", &b);
    cr_assert_eq(tl_produce(&conn, "m", 0, b, (uint32_t)len, 1, NULL), 0);
    free(b);
    static char body[1 << 20];
    int st = tl_http_get(broker.host, broker.http_port, "/metrics", body, sizeof(body), 5000);
    cr_assert_eq(st, 200);
    cr_assert_not_null(
        strstr(body, "ringlog_partition_records_in_total{topic=\"m\",partition=\"0\"} 7"),
        "%.2000s", body);
    cr_assert_not_null(
        strstr(body, "ringlog_partition_log_end_offset{topic=\"m\",partition=\"0\"} 7"));
    cr_assert_not_null(strstr(body, "ringlog_requests_total{api=\"produce\"} 1"));
    cr_assert_not_null(strstr(body, "ringlog_request_latency_seconds_bucket{api=\"produce\""));
    cr_assert_not_null(strstr(body, "ringlog_connections 1"));
    cr_assert_not_null(strstr(body, "ringlog_pending_fsync_bytes"));
    st = tl_http_get(broker.host, broker.http_port, "/v1/status", body, sizeof(body), 5000);
    cr_assert_eq(st, 200);
    cr_assert_not_null(strstr(body, "\"status\":\"serving\""), "%s", body);
    cr_assert_not_null(strstr(body, "\"records\":7"), "%s", body);
    st = tl_http_get(broker.host, broker.http_port, "/nope", body, sizeof(body), 5000);
    cr_assert_eq(st, 404);
}

/* Reads a metric's value from /metrics text (the first line starting with `name `). */
static long long metric(const char *body, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ')
            return atoll(p + n + 1);
    return -1;
}

/* With max.inflight.bytes at its 1 MiB minimum, three connections pipelining 600 KiB frames
 * are held back instead of growing memory (the peak stays within the budget plus the one frame
 * that may complete over it), and every request is still answered. */
Test(broker, backpressure_bounded_memory)
{
    struct tl_broker small;
    static const char *const args[] = {"--set", "max.inflight.bytes=1048576", NULL};
    cr_assert_eq(tl_broker_start(&small, args, 20000), 0);
    struct tl_conn c[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tl_connect(&c[i], small.host, small.port, 5000), 0);
    cr_assert_eq(tl_create_topic(&c[0], "bp", 3, NULL, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch_sized(600, 1000, &b);
    cr_assert_gt(len, 600000);
    enum { PER_CONN = 12 };
    for (int k = 0; k < PER_CONN; k++)
        for (int i = 0; i < 3; i++) {
            cr_assert_geq(tl_send_produce(&c[i], "bp", (uint32_t)i, b, (uint32_t)len, 1), 0);
        }
    free(b);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < PER_CONN; k++) {
            Ringlog__Response *resp;
            cr_assert_eq(tl_recv(&c[i], 30000, &resp, NULL, NULL), 0);
            cr_assert_eq(resp->produce->topics[0]->partitions[0]->error_code, 0);
        }
    static char body[1 << 20];
    cr_assert_eq(tl_http_get(small.host, small.http_port, "/metrics", body, sizeof(body), 5000),
                 200);
    long long peak = metric(body, "ringlog_inflight_bytes_peak");
    cr_assert_gt(peak, 0);
    cr_assert_leq(peak, 1048576 + 2 * len, "36 frames of %d bytes took %lld bytes in flight",
                  len, peak);
    int64_t off;
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(tl_list_offset(&c[0], "bp", i, -1, &off), 0);
        cr_assert_eq(off, PER_CONN * 600);
    }
    for (int i = 0; i < 3; i++)
        tl_close(&c[i]);
    int st = tl_broker_finish(&small, 20000);
    cr_assert_eq(st, 0);
}

/* Deleting a topic answers the long polls waiting on it with UNKNOWN_TOPIC at once; the topic
 * can then be created again, empty. */
Test(broker, delete_topic_wakes_waiters)
{
    cr_assert_eq(tl_create_topic(&conn, "doomed", 1, NULL, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch(4, "v", &b);
    cr_assert_eq(tl_produce(&conn, "doomed", 0, b, (uint32_t)len, 1, NULL), 0);
    free(b);
    struct tl_conn waiter;
    cr_assert_eq(tl_connect(&waiter, broker.host, broker.port, 5000), 0);
    struct tl_fetch longpoll = {.topic = "doomed", .offset = 4,
                                .max_wait_ms = 30000, .min_bytes = 1};
    cr_assert_geq(tl_send_fetch(&waiter, &longpoll), 0);
    cr_assert_not(response_within(&waiter, 200));
    uint64_t t0 = tl_now_ms();
    cr_assert_eq(tl_delete_topic(&conn, "doomed"), 0);
    Ringlog__Response *resp;
    cr_assert_eq(tl_recv(&waiter, 10000, &resp, NULL, NULL), 0);
    cr_assert_lt(tl_now_ms() - t0, 5000);
    cr_assert_eq(resp->fetch->topics[0]->partitions[0]->error_code, RL_E_UNKNOWN_TOPIC);
    tl_close(&waiter);
    /* Re-creating the name works once the old logs are gone (deletion is asynchronous). */
    int rc = RL_E_TOPIC_EXISTS;
    uint64_t deadline = tl_now_ms() + 10000;
    while (rc == RL_E_TOPIC_EXISTS && tl_now_ms() < deadline) {
        rc = tl_create_topic(&conn, "doomed", 1, NULL, NULL, 0);
        if (rc == RL_E_TOPIC_EXISTS)
            poll(NULL, 0, 20);
    }
    cr_assert_eq(rc, 0, "%s", rl_strerror(rc));
    int64_t off;
    cr_assert_eq(tl_list_offset(&conn, "doomed", 0, -1, &off), 0);
    cr_assert_eq(off, 0, "a re-created topic kept old records");
}

/* One fetch over several partitions returns each partition's batches in the data section in
 * envelope order, and the whole-response cap limits it while still returning one batch. */
Test(broker, fetch_many_partitions_and_caps)
{
    cr_assert_eq(tl_create_topic(&conn, "mp", 3, NULL, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch(10, "v", &b);
    for (uint32_t p = 0; p < 3; p++)
        for (int k = 0; k < 3; k++)
            cr_assert_eq(tl_produce(&conn, "mp", p, b, (uint32_t)len, 1, NULL), 0);
    free(b);
    Ringlog__FetchPartition fp[3], *fps[3];
    for (int i = 0; i < 3; i++) {
        ringlog__fetch_partition__init(&fp[i]);
        fp[i].partition = (uint32_t)(2 - i);
        fp[i].fetch_offset = (uint64_t)i * 10;
        fps[i] = &fp[i];
    }
    Ringlog__FetchTopic ft = RINGLOG__FETCH_TOPIC__INIT;
    ft.name = (char *)"mp";
    ft.n_partitions = 3;
    ft.partitions = fps;
    Ringlog__FetchTopic *fts[1] = {&ft};
    Ringlog__FetchRequest fr = RINGLOG__FETCH_REQUEST__INIT;
    fr.n_topics = 1;
    fr.topics = fts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_FETCH;
    req.fetch = &fr;
    Ringlog__Response *resp;
    const uint8_t *data;
    uint32_t dlen;
    cr_assert_eq(tl_call(&conn, &req, NULL, 0, 5000, &resp, &data, &dlen), 0);
    Ringlog__FetchTopicResult *tr = resp->fetch->topics[0];
    uint32_t pos = 0;
    for (int i = 0; i < 3; i++) {
        Ringlog__FetchPartitionResult *pr = tr->partitions[i];
        cr_assert_eq(pr->partition, (uint32_t)(2 - i));
        cr_assert_eq(pr->data_len, (uint32_t)(3 - i) * (uint32_t)len);
        struct batch_header h;
        cr_assert_eq(batch_validate(data + pos, pr->data_len, &h), 0);
        cr_assert_eq(h.base_offset, (uint64_t)i * 10);
        pos += pr->data_len;
    }
    cr_assert_eq(pos, dlen);
    /* A 1-byte response cap still returns the first partition's first batch, nothing more. */
    fr.max_bytes = 1;
    req.correlation_id = 0;
    cr_assert_eq(tl_call(&conn, &req, NULL, 0, 5000, &resp, &data, &dlen), 0);
    tr = resp->fetch->topics[0];
    cr_assert_eq(tr->partitions[0]->data_len, (uint32_t)len);
    cr_assert_eq(tr->partitions[1]->data_len, 0);
    cr_assert_eq(tr->partitions[2]->data_len, 0);
    cr_assert_eq(dlen, (uint32_t)len);
}

/* 100 batches of 1 MiB pipelined to one partition (more than a log queues at once) are all
 * appended, in order, none refused: a full log defers appends instead of failing them. */
Test(broker, full_log_defers_in_order)
{
    char msg[256];
    static const char *const cfg[] = {"max.message.bytes=2000000", NULL};
    cr_assert_eq(tl_create_topic(&conn, "full", 1, cfg, msg, sizeof(msg)), 0, "%s", msg);
    uint8_t *b;
    int len = tl_make_batch_sized(1000, 1000, &b);
    enum { N = 100 };
    int sent = 0, got = 0;
    int64_t last = -1;
    while (got < N) {
        while (sent < N && sent - got < 100) {
            cr_assert_geq(tl_send_produce(&conn, "full", 0, b, (uint32_t)len, 1), 0);
            sent++;
        }
        Ringlog__Response *resp;
        cr_assert_eq(tl_recv(&conn, 30000, &resp, NULL, NULL), 0);
        Ringlog__ProducePartitionResult *res = resp->produce->topics[0]->partitions[0];
        cr_assert_eq(res->error_code, 0, "batch %d: %s", got, res->error_message);
        cr_assert_eq(res->base_offset, last + 1, "batch %d at %lld after %lld", got,
                     (long long)res->base_offset, (long long)last);
        last = res->base_offset + 999;
        got++;
    }
    free(b);
    static char body[1 << 20];
    cr_assert_eq(tl_http_get(broker.host, broker.http_port, "/metrics", body, sizeof(body),
                             5000), 200);
    fprintf(stderr, "full_log_defers_in_order: %lld batches were deferred\n",
            metric(body, "ringlog_produce_deferred_batches_total"));
    cr_assert_eq(metric(body, "ringlog_inflight_bytes"), 0);
}

/* Retention runs on the broker's schedule: with small segments and retention.bytes, old
 * segments go, the log start moves forward, fetching below it is OFFSET_OUT_OF_RANGE, and
 * fetching from the new start still works. */
Test(broker, retention_moves_log_start)
{
    struct tl_broker rb;
    static const char *const args[] = {"--set", "retention.check.interval.ms=100", NULL};
    cr_assert_eq(tl_broker_start(&rb, args, 20000), 0);
    struct tl_conn c;
    cr_assert_eq(tl_connect(&c, rb.host, rb.port, 5000), 0);
    char msg[256];
    static const char *const cfg[] = {"segment.bytes=8192", "retention.bytes=16384", NULL};
    cr_assert_eq(tl_create_topic(&c, "ret", 1, cfg, msg, sizeof(msg)), 0, "%s", msg);
    uint8_t *b;
    int len = tl_make_batch_sized(4, 500, &b);
    for (int i = 0; i < 60; i++)
        cr_assert_eq(tl_produce(&c, "ret", 0, b, (uint32_t)len, 1, NULL), 0);
    free(b);
    int64_t start = 0;
    uint64_t deadline = tl_now_ms() + 15000;
    while (start == 0 && tl_now_ms() < deadline) {
        cr_assert_eq(tl_list_offset(&c, "ret", 0, -2, &start), 0);
        if (start == 0)
            poll(NULL, 0, 50);
    }
    cr_assert_gt(start, 0, "retention never deleted a segment");
    int64_t end;
    cr_assert_eq(tl_list_offset(&c, "ret", 0, -1, &end), 0);
    cr_assert_eq(end, 240);
    struct tl_fetch f = {.topic = "ret", .offset = 0};
    struct tl_fetch_result fr;
    cr_assert_eq(tl_fetch(&c, &f, &fr), RL_E_OFFSET_OUT_OF_RANGE);
    f.offset = (uint64_t)start;
    cr_assert_eq(tl_fetch(&c, &f, &fr), 0, "%s", fr.error_message);
    cr_assert_gt(fr.records, 0);
    tl_close(&c);
    int st = tl_broker_finish(&rb, 20000);
    cr_assert_eq(st, 0);
}

/* With fetch.splice=0 file slices are read into memory (cold) or mapped from the page cache
 * (warm): reading the same data twice goes through both paths and returns the same bytes as
 * the default splice path of the fixture's broker. The tail cache is off, so the reads go to
 * the files. */
Test(broker, fetch_without_splice)
{
    struct tl_broker nb;
    static const char *const args[] = {"--set", "fetch.splice=0", "--set", "tail.cache.bytes=0",
                                       NULL};
    cr_assert_eq(tl_broker_start(&nb, args, 20000), 0);
    struct tl_conn c;
    cr_assert_eq(tl_connect(&c, nb.host, nb.port, 5000), 0);
    cr_assert_eq(tl_create_topic(&c, "ns", 1, NULL, NULL, 0), 0);
    cr_assert_eq(tl_create_topic(&conn, "ns", 1, NULL, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch_sized(300, 700, &b);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(tl_produce(&c, "ns", 0, b, (uint32_t)len, 1, NULL), 0);
        cr_assert_eq(tl_produce(&conn, "ns", 0, b, (uint32_t)len, 1, NULL), 0);
    }
    free(b);
    uint8_t *want = malloc(8u * (uint32_t)len);
    struct tl_fetch f = {.topic = "ns", .max_bytes = 16u << 20};
    struct tl_fetch_result fr;
    cr_assert_eq(tl_fetch(&conn, &f, &fr), 0);
    cr_assert_eq(fr.data_len, 8u * (uint32_t)len);
    memcpy(want, fr.data, fr.data_len);
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(tl_fetch(&c, &f, &fr), 0, "%s", fr.error_message);
        cr_assert_eq(fr.data_len, 8u * (uint32_t)len, "round %d", round);
        /* The same batches (stamped identically: both logs start at offset 0). */
        cr_assert_eq(memcmp(fr.data, want, fr.data_len), 0, "round %d differs", round);
    }
    free(want);
    tl_close(&c);
    int st = tl_broker_finish(&nb, 20000);
    cr_assert_eq(st, 0);
}
