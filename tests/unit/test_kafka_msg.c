/* kafka messages: the reference's worked bytes (ApiVersions v3 request and reply), the
 * ApiVersions fallback, exact layouts of the versions clients send (built field by field here,
 * independently of the codec), errors that name API, version and field, and a round trip of
 * every request and response of every advertised version (encode -> decode -> encode gives the
 * same bytes, through the server's decode path for requests). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "broker/kafka/kapi.h"
#include "broker/kafka/kmsg.h"
#include "common/arena.h"
#include "common/err.h"
#include "tests/unit/test_kafka_samples.h"

static struct arena arena;

static void setup(void)
{
    arena_init(&arena, 64 * 1024, 64u << 20);
}

static void teardown(void)
{
    arena_destroy(&arena);
}

TestSuite(kmsg, .init = setup, .fini = teardown);

/* A byte builder for expected frames. */
struct bb {
    uint8_t b[4096];
    size_t n;
};
static void put8(struct bb *b, uint8_t v)
{
    b->b[b->n++] = v;
}
static void put16(struct bb *b, int16_t v)
{
    put8(b, (uint8_t)((uint16_t)v >> 8));
    put8(b, (uint8_t)v);
}
static void put32(struct bb *b, int32_t v)
{
    put16(b, (int16_t)((uint32_t)v >> 16));
    put16(b, (int16_t)v);
}
static void put64(struct bb *b, int64_t v)
{
    put32(b, (int32_t)((uint64_t)v >> 32));
    put32(b, (int32_t)v);
}
static void putstr(struct bb *b, const char *s)
{
    if (!s) {
        put16(b, -1);
        return;
    }
    put16(b, (int16_t)strlen(s));
    memcpy(b->b + b->n, s, strlen(s));
    b->n += strlen(s);
}
static void putraw(struct bb *b, const void *p, size_t n)
{
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
/* Starts a frame: size placeholder, then the request header v1. */
static void start_request(struct bb *b, int16_t key, int16_t ver, int32_t corr,
                          const char *client)
{
    b->n = 0;
    put32(b, 0);
    put16(b, key);
    put16(b, ver);
    put32(b, corr);
    putstr(b, client);
}
static void start_response(struct bb *b, int32_t corr)
{
    b->n = 0;
    put32(b, 0);
    put32(b, corr);
}
static void end_frame(struct bb *b)
{
    uint32_t size = (uint32_t)(b->n - 4);
    b->b[0] = (uint8_t)(size >> 24);
    b->b[1] = (uint8_t)(size >> 16);
    b->b[2] = (uint8_t)(size >> 8);
    b->b[3] = (uint8_t)size;
}

static uint8_t *encode_resp(int16_t key, int16_t ver, int32_t corr,
                            const union kmsg_resp_body *body, size_t *len)
{
    struct kreq_header h = {.api_key = key, .api_version = ver, .correlation_id = corr};
    struct kmsg_out out;
    cr_assert_eq(kmsg_encode_response(&h, body, &arena, &out), 0, "encode %d v%d", key, ver);
    *len = out.bytes;
    return kmsg_flatten(&out, &arena);
}

static void assert_bytes(const uint8_t *got, size_t got_len, const struct bb *want)
{
    cr_assert_eq(got_len, want->n, "length %zu, expected %zu", got_len, want->n);
    for (size_t i = 0; i < got_len; i++)
        cr_assert_eq(got[i], want->b[i], "byte %zu: 0x%02x, expected 0x%02x", i, got[i],
                     want->b[i]);
}

/* Section 1.4 of the reference: librdkafka's first request, decoded field by field. */
Test(kmsg, api_versions_v3_request_worked_bytes)
{
    static const uint8_t frame[] = {
        0x00, 0x00, 0x00, 0x24, 0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x07,
        'r',  'd',  'k',  'a',  'f',  'k',  'a',  0x00, 0x0b, 'l',  'i',  'b',  'r',  'd',
        'k',  'a',  'f',  'k',  'a',  0x06, '2',  '.',  '0',  '.',  '2',  0x00};
    uint8_t buf[sizeof(frame)];
    memcpy(buf, frame, sizeof(frame));
    struct kmsg_request req;
    char err[256] = "";
    cr_assert_eq(kmsg_decode_request(buf, sizeof(buf), &arena, &req, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(req.hdr.api_key, 18);
    cr_assert_eq(req.hdr.api_version, 3);
    cr_assert_eq(req.hdr.correlation_id, 1);
    cr_assert_eq(req.hdr.flexible, 1);
    cr_assert(kstr_eq(req.hdr.client_id, "rdkafka"));
    cr_assert(kstr_eq(req.body.api_versions.client_software_name, "librdkafka"));
    cr_assert(kstr_eq(req.body.api_versions.client_software_version, "2.0.2"));
}

/* Section 1.4: the reply with two entries, byte for byte (response header v0, flexible body). */
Test(kmsg, api_versions_v3_response_worked_bytes)
{
    static const uint8_t want[] = {0x00, 0x00, 0x00, 0x1a, 0x00, 0x00, 0x00, 0x01, 0x00,
                                   0x00, 0x03, 0x00, 0x12, 0x00, 0x00, 0x00, 0x03, 0x00,
                                   0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00};
    struct kmsg_api_version apis[] = {{18, 0, 3}, {3, 0, 4}};
    union kmsg_resp_body body = {.api_versions = {.error_code = 0, .apis = apis, .n_apis = 2}};
    size_t len;
    uint8_t *got = encode_resp(KAPI_API_VERSIONS, 3, 1, &body, &len);
    struct bb w = {.n = sizeof(want)};
    memcpy(w.b, want, sizeof(want));
    assert_bytes(got, len, &w);
}

/* ApiVersions above the maximum: the decoder says UNSUPPORTED_VERSION and the fallback is a
 * v0 body with error 35 that lists ApiVersions 0..3 (librdkafka retries at v3 from it). */
Test(kmsg, api_versions_fallback)
{
    struct bb b;
    start_request(&b, 18, 4, 77, "rdkafka");
    put8(&b, 0x00); /* v4 would be flexible: header tags, then whatever v4 holds */
    put8(&b, 0x01);
    put8(&b, 0x01);
    put8(&b, 0x00);
    end_frame(&b);
    struct kmsg_request req;
    char err[256];
    cr_assert_eq(kmsg_decode_request(b.b, b.n, &arena, &req, err, sizeof(err)),
                 RL_E_UNSUPPORTED_VERSION);
    cr_assert(strstr(err, "ApiVersions v4"), "%s", err);
    cr_assert_eq(req.hdr.correlation_id, 77);
    struct kmsg_out out;
    cr_assert_eq(kmsg_encode_api_versions_fallback(&req.hdr, &arena, &out), 0);
    uint8_t *flat = kmsg_flatten(&out, &arena);
    union kmsg_resp_body resp;
    int32_t corr;
    cr_assert_eq(kmsg_decode_response(18, 0, flat, out.bytes, &arena, &corr, &resp, err,
                                      sizeof(err)), 0, "%s", err);
    cr_assert_eq(corr, 77);
    cr_assert_eq(resp.api_versions.error_code, 35);
    cr_assert_eq(out.bytes, 4 + 4 + 2 + 4 + (size_t)kapi_count() * 6);
    int found = 0;
    for (int i = 0; i < resp.api_versions.n_apis; i++)
        if (resp.api_versions.apis[i].api_key == 18)
            found = resp.api_versions.apis[i].max_version == 3 &&
                    resp.api_versions.apis[i].min_version == 0;
    cr_assert(found);
}

/* What the table advertises keeps librdkafka 2.0.2's feature flags on (reference 2.1) and
 * makes kafka-python 2.0.2 infer 2.1 (Fetch v10 in range, Fetch v11 and Produce v8 not). */
Test(kmsg, advertised_ranges_keep_client_features)
{
    const struct kapi *p = kapi_lookup(KAPI_PRODUCE), *f = kapi_lookup(KAPI_FETCH);
    cr_assert(kapi_supports(p, 3) && kapi_supports(p, 7) && !kapi_supports(p, 8));
    cr_assert(kapi_supports(f, 4) && kapi_supports(f, 10) && !kapi_supports(f, 11));
    cr_assert(kapi_supports(kapi_lookup(KAPI_FIND_COORDINATOR), 0));
    cr_assert(kapi_supports(kapi_lookup(KAPI_INIT_PRODUCER_ID), 0));
    cr_assert(kapi_supports(kapi_lookup(KAPI_METADATA), 4));
    cr_assert(kapi_supports(kapi_lookup(KAPI_OFFSET_COMMIT), 2));
    cr_assert(kapi_supports(kapi_lookup(KAPI_OFFSET_FETCH), 1));
    static const int16_t group_apis[] = {KAPI_JOIN_GROUP, KAPI_SYNC_GROUP, KAPI_HEARTBEAT,
                                         KAPI_LEAVE_GROUP};
    for (size_t i = 0; i < 4; i++)
        cr_assert(kapi_supports(kapi_lookup(group_apis[i]), 0));
    cr_assert_null(kapi_lookup(17), "SaslHandshake is not advertised");
    for (int i = 1; i < kapi_count(); i++)
        cr_assert_gt(kapi_at(i)->key, kapi_at(i - 1)->key, "table sorted by key");
    /* Only ApiVersions v3 is flexible among the served versions. */
    for (int i = 0; i < kapi_count(); i++) {
        const struct kapi *a = kapi_at(i);
        for (int16_t v = a->min_version; v <= a->max_version; v++)
            cr_assert_eq(kapi_flexible(a, v), a->key == KAPI_API_VERSIONS && v == 3);
    }
}

/* An unserved API key is refused by name; so is a version outside the range. */
Test(kmsg, unknown_api_and_version)
{
    struct bb b;
    start_request(&b, 17, 1, 5, "c");
    putstr(&b, "PLAIN");
    end_frame(&b);
    struct kmsg_request req;
    char err[256];
    cr_assert_eq(kmsg_decode_request(b.b, b.n, &arena, &req, err, sizeof(err)),
                 RL_E_UNKNOWN_API);
    cr_assert(strstr(err, "17"), "%s", err);
    cr_assert_eq(req.hdr.correlation_id, 5);

    start_request(&b, KAPI_PRODUCE, 2, 6, "c");
    end_frame(&b);
    cr_assert_eq(kmsg_decode_request(b.b, b.n, &arena, &req, err, sizeof(err)),
                 RL_E_UNSUPPORTED_VERSION);
    cr_assert(strstr(err, "Produce v2"), "%s", err);
    cr_assert(strstr(err, "v3 to v7"), "%s", err);
}

/* kafka-python's probe: Metadata v0 with an empty topic list means every topic; in v1+ null
 * means every topic and an empty list means none (brokers only). */
Test(kmsg, metadata_request_topic_semantics)
{
    struct bb b;
    struct kmsg_request req;
    char err[256] = "";
    start_request(&b, KAPI_METADATA, 0, 2, "kafka-python-2.0.2");
    put32(&b, 0);
    end_frame(&b);
    cr_assert_eq(kmsg_decode_request(b.b, b.n, &arena, &req, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(req.body.metadata.all_topics, 1);
    cr_assert_eq(req.body.metadata.allow_auto_topic_creation, 1);

    start_request(&b, KAPI_METADATA, 4, 3, "rdkafka");
    put32(&b, 0);
    put8(&b, 0);
    end_frame(&b);
    cr_assert_eq(kmsg_decode_request(b.b, b.n, &arena, &req, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(req.body.metadata.all_topics, 0);
    cr_assert_eq(req.body.metadata.n_topics, 0);
    cr_assert_eq(req.body.metadata.allow_auto_topic_creation, 0);

    start_request(&b, KAPI_METADATA, 4, 4, "rdkafka");
    put32(&b, -1);
    put8(&b, 1);
    end_frame(&b);
    cr_assert_eq(kmsg_decode_request(b.b, b.n, &arena, &req, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(req.body.metadata.all_topics, 1);

    start_request(&b, KAPI_METADATA, 1, 5, "kafka-python-2.0.2");
    put32(&b, 2);
    putstr(&b, "a");
    putstr(&b, "bb");
    end_frame(&b);
    cr_assert_eq(kmsg_decode_request(b.b, b.n, &arena, &req, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(req.body.metadata.n_topics, 2);
    cr_assert(kstr_eq(req.body.metadata.topics[1], "bb"));
}

/* Metadata v4 response, byte for byte: throttle first, rack, cluster id, controller id,
 * is_internal. */
Test(kmsg, metadata_v4_response_layout)
{
    int32_t one = 1;
    struct kmsg_metadata_partition part = {.partition = 0, .leader = 1, .replicas = &one,
                                           .n_replicas = 1, .isr = &one, .n_isr = 1};
    struct kmsg_metadata_topic topic = {.name = kstr_of("t"), .partitions = &part,
                                        .n_partitions = 1};
    struct kmsg_metadata_broker broker = {1, kstr_of("127.0.0.1"), 9092, KSTR_NULL};
    union kmsg_resp_body body = {.metadata = {.brokers = &broker, .n_brokers = 1,
                                              .cluster_id = kstr_of("c"), .controller_id = 1,
                                              .topics = &topic, .n_topics = 1}};
    size_t len;
    uint8_t *got = encode_resp(KAPI_METADATA, 4, 9, &body, &len);
    struct bb w;
    start_response(&w, 9);
    put32(&w, 0);
    put32(&w, 1);
    put32(&w, 1);
    putstr(&w, "127.0.0.1");
    put32(&w, 9092);
    putstr(&w, NULL);
    putstr(&w, "c");
    put32(&w, 1);
    put32(&w, 1);
    put16(&w, 0);
    putstr(&w, "t");
    put8(&w, 0);
    put32(&w, 1);
    put16(&w, 0);
    put32(&w, 0);
    put32(&w, 1);
    put32(&w, 1);
    put32(&w, 1);
    put32(&w, 1);
    put32(&w, 1);
    end_frame(&w);
    assert_bytes(got, len, &w);
    /* v0 drops throttle, rack, cluster id, controller id and is_internal. */
    got = encode_resp(KAPI_METADATA, 0, 9, &body, &len);
    cr_assert_eq(len, w.n - 4 - 2 - 3 - 4 - 1);
}

/* The reference's one-record batch (section 4.3) inside a Produce v3 request from librdkafka:
 * one topic, one partition; the records view is exactly the batch, inside the frame. */
static const uint8_t ref_batch[] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3a, 0x00, 0x00,
    0x00, 0x00, 0x02, 0xbb, 0xcc, 0x41, 0x15, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68,
    0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0x00, 0x00, 0x00, 0x01, 0x10, 0x00, 0x00, 0x00, 0x01, 0x04, 0x68, 0x69, 0x00};

Test(kmsg, produce_v3_request_layout)
{
    cr_assert_eq(sizeof(ref_batch), 70);
    struct bb b;
    start_request(&b, KAPI_PRODUCE, 3, 11, "rdkafka");
    putstr(&b, NULL);
    put16(&b, -1);
    put32(&b, 30000);
    put32(&b, 1);
    putstr(&b, "events");
    put32(&b, 1);
    put32(&b, 2);
    put32(&b, (int32_t)sizeof(ref_batch));
    size_t at = b.n;
    putraw(&b, ref_batch, sizeof(ref_batch));
    end_frame(&b);
    struct kmsg_request req;
    char err[256] = "";
    cr_assert_eq(kmsg_decode_request(b.b, b.n, &arena, &req, err, sizeof(err)), 0, "%s", err);
    struct kmsg_produce_req *p = &req.body.produce;
    cr_assert_eq(p->transactional_id.len, -1);
    cr_assert_eq(p->acks, -1);
    cr_assert_eq(p->timeout_ms, 30000);
    cr_assert_eq(p->n_topics, 1);
    cr_assert(kstr_eq(p->topics[0].name, "events"));
    cr_assert_eq(p->topics[0].partitions[0].partition, 2);
    cr_assert_eq(p->topics[0].partitions[0].records.len, 70);
    cr_assert_eq(p->topics[0].partitions[0].records.data, b.b + at);

    /* Cut inside the records: the error names API, version and field. */
    b.n -= 10;
    end_frame(&b);
    cr_assert_eq(kmsg_decode_request(b.b, b.n, &arena, &req, err, sizeof(err)),
                 RL_E_FRAME_MALFORMED);
    cr_assert(strstr(err, "Produce v3 request"), "%s", err);
    cr_assert(strstr(err, "records"), "%s", err);
    cr_assert(strstr(err, "truncated"), "%s", err);
}

/* Produce responses: throttle last; v5+ adds log_start_offset per partition. */
Test(kmsg, produce_response_layout)
{
    struct kmsg_produce_partition_resp pr = {2, 0, 41, -1, 7};
    struct kmsg_produce_topic_resp tr = {kstr_of("events"), &pr, 1};
    union kmsg_resp_body body = {.produce = {.topics = &tr, .n_topics = 1, .throttle_ms = 0}};
    for (int16_t v = 3; v <= 7; v++) {
        size_t len;
        uint8_t *got = encode_resp(KAPI_PRODUCE, v, 12, &body, &len);
        struct bb w;
        start_response(&w, 12);
        put32(&w, 1);
        putstr(&w, "events");
        put32(&w, 1);
        put32(&w, 2);
        put16(&w, 0);
        put64(&w, 41);
        put64(&w, -1);
        if (v >= 5)
            put64(&w, 7);
        put32(&w, 0);
        end_frame(&w);
        assert_bytes(got, len, &w);
    }
}

/* Fetch v4 as both clients send it, and the v7+ and v9 request fields in their places. */
Test(kmsg, fetch_request_layouts)
{
    for (int16_t v = 4; v <= 10; v++) {
        struct bb b;
        start_request(&b, KAPI_FETCH, v, 20, "rdkafka");
        put32(&b, -1);
        put32(&b, 500);
        put32(&b, 1);
        put32(&b, 52428800);
        put8(&b, 1);
        if (v >= 7) {
            put32(&b, 0);
            put32(&b, -1);
        }
        put32(&b, 1);
        putstr(&b, "events");
        put32(&b, 1);
        put32(&b, 3);
        if (v >= 9)
            put32(&b, 5);
        put64(&b, 1234);
        if (v >= 5)
            put64(&b, -1);
        put32(&b, 1048576);
        if (v >= 7) {
            put32(&b, 1);
            putstr(&b, "old");
            put32(&b, 1);
            put32(&b, 9);
        }
        end_frame(&b);
        struct kmsg_request req;
        char err[256] = "";
        cr_assert_eq(kmsg_decode_request(b.b, b.n, &arena, &req, err, sizeof(err)), 0,
                     "v%d: %s", v, err);
        struct kmsg_fetch_req *f = &req.body.fetch;
        cr_assert_eq(f->max_wait_ms, 500);
        cr_assert_eq(f->isolation_level, 1);
        cr_assert_eq(f->session_epoch, -1);
        cr_assert_eq(f->topics[0].partitions[0].partition, 3);
        cr_assert_eq(f->topics[0].partitions[0].fetch_offset, 1234);
        cr_assert_eq(f->topics[0].partitions[0].current_leader_epoch, v >= 9 ? 5 : -1);
        cr_assert_eq(f->topics[0].partitions[0].max_bytes, 1048576);
        cr_assert_eq(f->n_forgotten, v >= 7 ? 1 : 0);
    }
}

/* A Fetch response references record data instead of copying it, and lays out v4 and v7
 * exactly (records length 0 for an empty partition, never null). */
Test(kmsg, fetch_response_layout_and_zero_copy)
{
    static uint8_t stored[40];
    for (size_t i = 0; i < sizeof(stored); i++)
        stored[i] = (uint8_t)i;
    struct iovec rec_iov[2] = {{stored, 25}, {stored + 25, 15}};
    struct kmsg_fetch_partition_resp parts[2] = {
        {.partition = 0, .high_watermark = 100, .last_stable_offset = 100, .log_start_offset = 0,
         .aborted = NULL, .n_aborted = -1,
         .records = {.len = 40, .iov = rec_iov, .iovcnt = 2}},
        {.partition = 1, .error_code = 1, .high_watermark = 5, .last_stable_offset = 5,
         .log_start_offset = 0, .n_aborted = 0, .records = {.len = 0}}};
    struct kmsg_fetch_topic_resp topic = {kstr_of("events"), parts, 2};
    union kmsg_resp_body body = {.fetch = {.topics = &topic, .n_topics = 1}};
    for (int16_t v = 4; v <= 10; v += 3) {
        struct kreq_header h = {.api_key = KAPI_FETCH, .api_version = v, .correlation_id = 3};
        struct kmsg_out out;
        cr_assert_eq(kmsg_encode_response(&h, &body, &arena, &out), 0);
        int refs = 0;
        for (int i = 0; i < out.iovcnt; i++)
            refs += out.iov[i].iov_base == stored || out.iov[i].iov_base == stored + 25;
        cr_assert_eq(refs, 2, "record data is referenced, not copied");
        struct bb w;
        start_response(&w, 3);
        put32(&w, 0);
        if (v >= 7) {
            put16(&w, 0);
            put32(&w, 0);
        }
        put32(&w, 1);
        putstr(&w, "events");
        put32(&w, 2);
        put32(&w, 0);
        put16(&w, 0);
        put64(&w, 100);
        put64(&w, 100);
        if (v >= 5)
            put64(&w, 0);
        put32(&w, -1);
        put32(&w, 40);
        putraw(&w, stored, 40);
        put32(&w, 1);
        put16(&w, 1);
        put64(&w, 5);
        put64(&w, 5);
        if (v >= 5)
            put64(&w, 0);
        put32(&w, 0);
        put32(&w, 0);
        end_frame(&w);
        assert_bytes(kmsg_flatten(&out, &arena), out.bytes, &w);
    }
}

/* JoinGroup v0..v2 requests as the clients send them, and the v2 response layout. */
Test(kmsg, join_group_layouts)
{
    for (int16_t v = 0; v <= 2; v++) {
        struct bb b;
        start_request(&b, KAPI_JOIN_GROUP, v, 30, "rdkafka");
        putstr(&b, "g");
        put32(&b, 45000);
        if (v >= 1)
            put32(&b, 300000);
        putstr(&b, "");
        putstr(&b, "consumer");
        put32(&b, 2);
        putstr(&b, "range");
        put32(&b, 3);
        putraw(&b, "abc", 3);
        putstr(&b, "roundrobin");
        put32(&b, 0);
        end_frame(&b);
        struct kmsg_request req;
        char err[256] = "";
        cr_assert_eq(kmsg_decode_request(b.b, b.n, &arena, &req, err, sizeof(err)), 0, "%s",
                     err);
        struct kmsg_join_group_req *j = &req.body.join_group;
        cr_assert_eq(j->rebalance_timeout_ms, v >= 1 ? 300000 : 45000);
        cr_assert_eq(j->n_protocols, 2);
        cr_assert(kstr_eq(j->protocols[1].name, "roundrobin"));
        cr_assert_eq(j->protocols[0].metadata.len, 3);
        cr_assert_eq(j->protocols[1].metadata.len, 0);
    }
    struct kmsg_join_group_member m = {kstr_of("m-1"), {(uint8_t *)"xy", 2}};
    union kmsg_resp_body body = {.join_group = {.generation_id = 4,
                                                .protocol_name = kstr_of("range"),
                                                .leader = kstr_of("m-1"),
                                                .member_id = kstr_of("m-1"), .members = &m,
                                                .n_members = 1}};
    size_t len;
    uint8_t *got = encode_resp(KAPI_JOIN_GROUP, 2, 31, &body, &len);
    struct bb w;
    start_response(&w, 31);
    put32(&w, 0);
    put16(&w, 0);
    put32(&w, 4);
    putstr(&w, "range");
    putstr(&w, "m-1");
    putstr(&w, "m-1");
    put32(&w, 1);
    putstr(&w, "m-1");
    put32(&w, 2);
    putraw(&w, "xy", 2);
    end_frame(&w);
    assert_bytes(got, len, &w);
}

/* OffsetFetch v1..v3 responses: top-level error from v2, throttle first from v3. */
Test(kmsg, offset_fetch_response_layouts)
{
    struct kmsg_offset_fetch_partition_resp p = {0, -1, kstr_of(""), 0};
    struct kmsg_offset_fetch_topic_resp t = {kstr_of("t"), &p, 1};
    union kmsg_resp_body body = {.offset_fetch = {.topics = &t, .n_topics = 1}};
    for (int16_t v = 1; v <= 3; v++) {
        size_t len;
        uint8_t *got = encode_resp(KAPI_OFFSET_FETCH, v, 40, &body, &len);
        struct bb w;
        start_response(&w, 40);
        if (v >= 3)
            put32(&w, 0);
        put32(&w, 1);
        putstr(&w, "t");
        put32(&w, 1);
        put32(&w, 0);
        put64(&w, -1);
        putstr(&w, "");
        put16(&w, 0);
        if (v >= 2)
            put16(&w, 0);
        end_frame(&w);
        assert_bytes(got, len, &w);
    }
}

/* Bytes left over after a body are refused (they mean client and broker disagree on the
 * layout), naming the API and version. */
Test(kmsg, trailing_bytes_are_refused)
{
    struct bb b;
    start_request(&b, KAPI_HEARTBEAT, 1, 50, "c");
    putstr(&b, "g");
    put32(&b, 1);
    putstr(&b, "m");
    put8(&b, 0);
    end_frame(&b);
    struct kmsg_request req;
    char err[256];
    cr_assert_eq(kmsg_decode_request(b.b, b.n, &arena, &req, err, sizeof(err)),
                 RL_E_FRAME_MALFORMED);
    cr_assert(strstr(err, "Heartbeat v1"), "%s", err);
    cr_assert(strstr(err, "unexpected bytes"), "%s", err);
}

/* A frame whose size prefix disagrees with the bytes given is refused. */
Test(kmsg, size_prefix_mismatch)
{
    struct bb b;
    start_request(&b, KAPI_LIST_GROUPS, 0, 1, "c");
    end_frame(&b);
    struct kmsg_request req;
    char err[256];
    cr_assert_eq(kmsg_decode_request(b.b, b.n - 1, &arena, &req, err, sizeof(err)),
                 RL_E_FRAME_MALFORMED);
    cr_assert(strstr(err, "size prefix"), "%s", err);
}

/* Every request of every advertised version: encode -> the server's decode -> encode again
 * gives identical bytes, and the header survives. */
Test(kmsg, every_request_round_trips)
{
    for (int i = 0; i < kapi_count(); i++) {
        const struct kapi *api = kapi_at(i);
        for (int16_t v = api->min_version; v <= api->max_version; v++) {
            union kmsg_req_body body;
            kafka_sample_request(api->key, &body);
            struct kreq_header h = {api->key, v, 1000 + v, kstr_of("client-1"), 0};
            struct kmsg_out out;
            cr_assert_eq(kmsg_encode_request(&h, &body, &arena, &out), 0, "%s v%d", api->name,
                         v);
            uint8_t *first = kmsg_flatten(&out, &arena);
            uint8_t *copy = kmsg_flatten(&out, &arena);
            struct kmsg_request req;
            char err[256] = "";
            cr_assert_eq(kmsg_decode_request(copy, out.bytes, &arena, &req, err, sizeof(err)),
                         0, "%s v%d: %s", api->name, v, err);
            cr_assert_eq(req.api, api);
            cr_assert_eq(req.hdr.api_version, v);
            cr_assert_eq(req.hdr.correlation_id, 1000 + v);
            cr_assert(kstr_eq(req.hdr.client_id, "client-1"));
            struct kmsg_out again;
            cr_assert_eq(kmsg_encode_request(&req.hdr, &req.body, &arena, &again), 0);
            cr_assert_eq(again.bytes, out.bytes, "%s v%d", api->name, v);
            cr_assert_eq(memcmp(kmsg_flatten(&again, &arena), first, out.bytes), 0,
                         "%s v%d request bytes differ after a round trip", api->name, v);
        }
    }
}

/* Every response of every advertised version round-trips the same way (the client's decode). */
Test(kmsg, every_response_round_trips)
{
    for (int i = 0; i < kapi_count(); i++) {
        const struct kapi *api = kapi_at(i);
        for (int16_t v = api->min_version; v <= api->max_version; v++) {
            union kmsg_resp_body body, back;
            kafka_sample_response(api->key, &body);
            size_t len;
            uint8_t *first = encode_resp(api->key, v, 2000 + v, &body, &len);
            uint8_t *copy = arena_alloc(&arena, len);
            memcpy(copy, first, len);
            int32_t corr = 0;
            char err[256] = "";
            cr_assert_eq(kmsg_decode_response(api->key, v, copy, len, &arena, &corr, &back, err,
                                              sizeof(err)), 0, "%s v%d: %s", api->name, v, err);
            cr_assert_eq(corr, 2000 + v);
            size_t len2;
            uint8_t *second = encode_resp(api->key, v, 2000 + v, &back, &len2);
            cr_assert_eq(len2, len, "%s v%d", api->name, v);
            cr_assert_eq(memcmp(first, second, len), 0,
                         "%s v%d response bytes differ after a round trip", api->name, v);
        }
    }
}

/* Values a wire form cannot carry are refused rather than written wrong. */
Test(kmsg, unencodable_values_are_refused)
{
    union kmsg_resp_body body;
    kafka_sample_response(KAPI_SYNC_GROUP, &body);
    body.sync_group.assignment = KBYTES_NULL; /* bytes, not nullable */
    struct kreq_header h = {.api_key = KAPI_SYNC_GROUP, .api_version = 1};
    struct kmsg_out out;
    cr_assert_eq(kmsg_encode_response(&h, &body, &arena, &out), RL_E_INVALID_ARGUMENT);
    kafka_sample_response(KAPI_FIND_COORDINATOR, &body);
    body.find_coordinator.host = KSTR_NULL;
    h.api_key = KAPI_FIND_COORDINATOR;
    h.api_version = 0;
    cr_assert_eq(kmsg_encode_response(&h, &body, &arena, &out), RL_E_INVALID_ARGUMENT);
    h.api_key = 17;
    cr_assert_eq(kmsg_encode_response(&h, &body, &arena, &out), RL_E_INVALID_ARGUMENT);
}
