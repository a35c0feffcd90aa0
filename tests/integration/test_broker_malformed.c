/*
 * test_broker_malformed: malformed native frames against a live ringlogd, crafted and random
 * (seeded: RINGLOG_SEED, tests/lib/tl_seed.h). Every frame is sent on a connection of its own,
 * whose write side is then shut: the broker must answer with decodable responses whose errors
 * carry a message, or close that one connection, and always close it within a deadline (never
 * hang on it). Meanwhile a bystander connection keeps being served, and at the end the broker
 * is alive, has logged no assertion, and stops cleanly (exit status 0).
 *
 * Crafted: frame lengths below the header, envelopes longer than their frame, frames over
 * max.frame.bytes, truncated protobuf, a length-delimited field claiming 2 GB, an overlong
 * varint, an unknown wire type, a packed field claiming more than it holds, a request of
 * 200,000 repeated entries, data sections that disagree with the envelope, batches claiming
 * 2^24 records or a 4 GB length, invalid topic names.
 * Random: valid requests of every kind that takes no long wait, mutated 1 to 4 times (bit
 * flips, byte overwrites, truncation, insertion, length fields set to edge values).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <xxhash.h>

#include "common/batch.h"
#include "common/err.h"
#include "proto/frame.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_fixture.h"
#include "tests/lib/tl_seed.h"

#define BYSTANDER_TOPIC "bystander-topic"

static struct tl_broker broker;
static struct tl_conn bystander;

static void setup(void)
{
    /* Small limits so mutated creates cannot make the run slow; short frame timeout. */
    static const char *const args[] = {"--set", "max.frame.bytes=1048576", "--set",
                                       "max.partitions=64", "--set", "max.topics=32", "--set",
                                       "frame.receive.timeout.ms=1000", NULL};
    tl_fixture_start(&broker, &bystander, args);
    tl_create_topic(&bystander, BYSTANDER_TOPIC, 1, NULL, NULL, 0);
}

static void teardown(void)
{
    bool alive = tl_broker_alive(&broker);
    bool asserted = tl_broker_log_has(&broker, "ASSERT") ||
                    tl_broker_log_has(&broker, "assertion");
    tl_fixture_finish(&broker, &bystander);
    cr_expect(alive, "the broker died");
    cr_expect_not(asserted, "the broker logged an assertion");
}

TestSuite(malformed, .init = setup, .fini = teardown, .timeout = 300);

/* The bystander produces one record and reads it back. */
static void assert_still_serving(void)
{
    cr_assert(tl_broker_alive(&broker), "the broker died");
    uint8_t *b;
    int len = tl_make_batch(1, "alive", &b);
    int64_t base = -1;
    int rc = tl_produce(&bystander, BYSTANDER_TOPIC, 0, b, (uint32_t)len, 1, &base);
    free(b);
    cr_assert_eq(rc, 0, "the bystander's produce failed: %s", rl_strerror(rc));
    struct tl_fetch f = {.topic = BYSTANDER_TOPIC, .offset = (uint64_t)base};
    struct tl_fetch_result fr;
    cr_assert_eq(tl_fetch(&bystander, &f, &fr), 0);
    cr_assert_eq(fr.records, 1);
}

/* --- frames ---------------------------------------------------------------------------------- */

struct buf {
    uint8_t *p;
    size_t len;
};

/* A frame: header, packed request, data. */
static struct buf frame_of(Ringlog__Request *req, const void *data, uint32_t data_len)
{
    size_t env = ringlog__request__get_packed_size(req);
    struct buf b = {malloc(FRAME_HEADER_BYTES + env + data_len + 1), 0};
    cr_assert_not_null(b.p);
    frame_write_header(b.p, (uint32_t)env, data_len);
    ringlog__request__pack(req, b.p + FRAME_HEADER_BYTES);
    if (data_len)
        memcpy(b.p + FRAME_HEADER_BYTES + env, data, data_len);
    b.len = FRAME_HEADER_BYTES + env + data_len;
    return b;
}

/* A frame of raw envelope bytes (and no data). */
static struct buf frame_raw(const uint8_t *env, size_t env_len)
{
    struct buf b = {malloc(FRAME_HEADER_BYTES + env_len + 1), FRAME_HEADER_BYTES + env_len};
    frame_write_header(b.p, (uint32_t)env_len, 0);
    memcpy(b.p + FRAME_HEADER_BYTES, env, env_len);
    return b;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static struct buf req_api_versions(void)
{
    Ringlog__ApiVersionsRequest av = RINGLOG__API_VERSIONS_REQUEST__INIT;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_API_VERSIONS;
    req.api_versions = &av;
    req.correlation_id = 1;
    return frame_of(&req, NULL, 0);
}

static struct buf req_metadata(void)
{
    char *names[1] = {(char *)"fz"};
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    mr.n_topics = 1;
    mr.topics = names;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    req.correlation_id = 2;
    return frame_of(&req, NULL, 0);
}

static struct buf req_create(void)
{
    Ringlog__ConfigEntry e = RINGLOG__CONFIG_ENTRY__INIT;
    e.key = (char *)"retention.ms";
    e.value = (char *)"100000";
    Ringlog__ConfigEntry *es[1] = {&e};
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = (char *)"fz";
    spec.partitions = 2;
    spec.n_configs = 1;
    spec.configs = es;
    Ringlog__TopicSpec *specs[1] = {&spec};
    Ringlog__CreateTopicsRequest ct = RINGLOG__CREATE_TOPICS_REQUEST__INIT;
    ct.n_topics = 1;
    ct.topics = specs;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_CREATE_TOPICS;
    req.create_topics = &ct;
    req.correlation_id = 3;
    return frame_of(&req, NULL, 0);
}

/* A Produce of one partition; data_len_claimed is what the envelope says the data is. */
static struct buf req_produce_to(const char *topic, const uint8_t *batch, uint32_t len,
                                 uint32_t data_len_claimed)
{
    Ringlog__ProducePartition pp = RINGLOG__PRODUCE_PARTITION__INIT;
    pp.partition = 0;
    pp.data_len = data_len_claimed;
    Ringlog__ProducePartition *pps[1] = {&pp};
    Ringlog__ProduceTopic pt = RINGLOG__PRODUCE_TOPIC__INIT;
    pt.name = (char *)topic;
    pt.n_partitions = 1;
    pt.partitions = pps;
    Ringlog__ProduceTopic *pts[1] = {&pt};
    Ringlog__ProduceRequest pr = RINGLOG__PRODUCE_REQUEST__INIT;
    pr.acks = 1;
    pr.timeout_ms = 5000;
    pr.n_topics = 1;
    pr.topics = pts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_PRODUCE;
    req.produce = &pr;
    req.correlation_id = 4;
    return frame_of(&req, batch, len);
}

static struct buf req_produce(void)
{
    uint8_t *b;
    int len = tl_make_batch(3, "fz", &b);
    struct buf f = req_produce_to("fz", b, (uint32_t)len, (uint32_t)len);
    free(b);
    return f;
}

static struct buf req_fetch(void)
{
    Ringlog__FetchPartition fp = RINGLOG__FETCH_PARTITION__INIT;
    fp.partition = 0;
    Ringlog__FetchPartition *fps[1] = {&fp};
    Ringlog__FetchTopic ft = RINGLOG__FETCH_TOPIC__INIT;
    ft.name = (char *)"fz";
    ft.n_partitions = 1;
    ft.partitions = fps;
    Ringlog__FetchTopic *fts[1] = {&ft};
    Ringlog__FetchRequest fr = RINGLOG__FETCH_REQUEST__INIT;
    fr.max_bytes = 65536;
    fr.n_topics = 1;
    fr.topics = fts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_FETCH;
    req.fetch = &fr;
    req.correlation_id = 5;
    return frame_of(&req, NULL, 0);
}

static struct buf req_list_offsets(void)
{
    Ringlog__ListOffsetsPartition lp = RINGLOG__LIST_OFFSETS_PARTITION__INIT;
    lp.timestamp = -1;
    Ringlog__ListOffsetsPartition *lps[1] = {&lp};
    Ringlog__ListOffsetsTopic lt = RINGLOG__LIST_OFFSETS_TOPIC__INIT;
    lt.name = (char *)"fz";
    lt.n_partitions = 1;
    lt.partitions = lps;
    Ringlog__ListOffsetsTopic *lts[1] = {&lt};
    Ringlog__ListOffsetsRequest lr = RINGLOG__LIST_OFFSETS_REQUEST__INIT;
    lr.n_topics = 1;
    lr.topics = lts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_LIST_OFFSETS;
    req.list_offsets = &lr;
    req.correlation_id = 6;
    return frame_of(&req, NULL, 0);
}

static struct buf req_commit(void)
{
    Ringlog__OffsetCommitPartition p = RINGLOG__OFFSET_COMMIT_PARTITION__INIT;
    p.offset = 1;
    p.metadata = (char *)"m";
    Ringlog__OffsetCommitPartition *ps[1] = {&p};
    Ringlog__OffsetCommitTopic t = RINGLOG__OFFSET_COMMIT_TOPIC__INIT;
    t.name = (char *)"fz";
    t.n_partitions = 1;
    t.partitions = ps;
    Ringlog__OffsetCommitTopic *ts[1] = {&t};
    Ringlog__OffsetCommitRequest oc = RINGLOG__OFFSET_COMMIT_REQUEST__INIT;
    oc.group_id = (char *)"gz";
    oc.member_id = (char *)"";
    oc.generation = -1;
    oc.n_topics = 1;
    oc.topics = ts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_OFFSET_COMMIT;
    req.offset_commit = &oc;
    req.correlation_id = 7;
    return frame_of(&req, NULL, 0);
}

static struct buf req_offset_fetch_n(size_t n)
{
    uint32_t *parts = calloc(n + 1, sizeof(*parts));
    Ringlog__OffsetFetchTopic t = RINGLOG__OFFSET_FETCH_TOPIC__INIT;
    t.name = (char *)"fz";
    t.n_partitions = n;
    t.partitions = parts;
    Ringlog__OffsetFetchTopic *ts[1] = {&t};
    Ringlog__OffsetFetchRequest of = RINGLOG__OFFSET_FETCH_REQUEST__INIT;
    of.group_id = (char *)"gz";
    of.n_topics = 1;
    of.topics = ts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_OFFSET_FETCH;
    req.offset_fetch = &of;
    req.correlation_id = 8;
    struct buf f = frame_of(&req, NULL, 0);
    free(parts);
    return f;
}

static struct buf req_offset_fetch(void)
{
    return req_offset_fetch_n(1);
}

static struct buf req_init_pid(void)
{
    Ringlog__InitProducerIdRequest ip = RINGLOG__INIT_PRODUCER_ID_REQUEST__INIT;
    ip.producer_id = -1;
    ip.producer_epoch = -1;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_INIT_PRODUCER_ID;
    req.init_producer_id = &ip;
    req.correlation_id = 9;
    return frame_of(&req, NULL, 0);
}

typedef struct buf (*req_maker)(void);
static const req_maker makers[] = {req_api_versions, req_metadata, req_create, req_produce,
                                   req_fetch, req_list_offsets, req_commit, req_offset_fetch,
                                   req_init_pid};
#define N_MAKERS (sizeof(makers) / sizeof(makers[0]))

/* --- sending and judging --------------------------------------------------------------------- */

struct outcome {
    uint32_t answers, errors;
    int first_error;
    char first_message[256];
    bool closed;
};

/* Sends f on a new connection, shuts the write side, reads every response until the broker
 * closes. Asserts: the connection is closed within the deadline, every response decodes, and
 * every error carries a message. */
static struct outcome send_judge(const struct buf *f, const char *what)
{
    struct outcome o = {0};
    struct tl_conn c;
    cr_assert_eq(tl_connect(&c, broker.host, broker.port, 5000), 0, "%s: connect", what);
    int rc = tl_send_raw(&c, f->p, f->len);
    if (rc == 0)
        shutdown(c.fd, SHUT_WR);
    for (uint64_t until = tl_now_ms() + 15000;;) {
        cr_assert_lt(tl_now_ms(), until, "%s: the broker neither answered nor closed", what);
        Ringlog__Response *resp;
        rc = tl_recv(&c, 15000, &resp, NULL, NULL);
        if (rc == RL_E_CLOSED || rc == -ECONNRESET || rc == -EPIPE) {
            o.closed = true;
            break;
        }
        cr_assert_eq(rc, 0, "%s: reading the answer: %s", what, rl_strerror(rc));
        o.answers++;
        if (resp->error_code) {
            if (!o.errors++) {
                o.first_error = resp->error_code;
                snprintf(o.first_message, sizeof(o.first_message), "%s", resp->error_message);
            }
            cr_assert_gt(strlen(resp->error_message ? resp->error_message : ""), 5,
                         "%s: error %d without a message", what, resp->error_code);
        }
    }
    tl_close(&c);
    return o;
}

/* The first answer is the error `want`, with a message. */
static void expect_error(const struct buf *f, const char *what, int want)
{
    struct outcome o = send_judge(f, what);
    cr_assert_eq(o.first_error, want, "%s: got %d (%s): %s", what, o.first_error,
                 rl_error_name(o.first_error), o.first_message);
}

/* --- crafted ---------------------------------------------------------------------------------- */

/* Frame headers that cannot be right: FRAME_MALFORMED or FRAME_TOO_LARGE, connection closed. */
Test(malformed, bad_frame_lengths)
{
    uint8_t h[FRAME_HEADER_BYTES + 8] = {0};
    struct buf f = {h, sizeof(h)};
    uint32_t bad_frame_len[] = {0, 1, 3};
    for (size_t i = 0; i < 3; i++) {
        put_be32(h, bad_frame_len[i]);
        put_be32(h + 4, 0);
        expect_error(&f, "frame_len below 4", RL_E_FRAME_MALFORMED);
    }
    put_be32(h, 12);
    put_be32(h + 4, 9); /* the envelope is longer than the frame */
    expect_error(&f, "envelope_len > frame_len - 4", RL_E_FRAME_MALFORMED);
    put_be32(h, 0xffffffffu);
    put_be32(h + 4, 0);
    expect_error(&f, "frame_len 4 GB", RL_E_FRAME_TOO_LARGE);
    put_be32(h, (1u << 20) + 1);
    expect_error(&f, "frame_len over max.frame.bytes", RL_E_FRAME_TOO_LARGE);
    /* A header that announces more than is ever sent: answered when the peer stops. */
    put_be32(h, 1000);
    put_be32(h + 4, 10);
    expect_error(&f, "frame cut short", RL_E_FRAME_MALFORMED);
    assert_still_serving();
}

/* Envelopes that are not protobuf: truncated anywhere inside a field, a length-delimited
 * field claiming 2 GB, an overlong varint, an unknown wire type, a packed field claiming more
 * than it holds. FRAME_MALFORMED, connection closed. */
Test(malformed, broken_protobuf)
{
    struct buf whole = req_create();
    size_t env = whole.len - FRAME_HEADER_BYTES;
    uint32_t malformed = 0, other = 0;
    for (size_t cut = 1; cut < env; cut++) {
        struct buf f = frame_raw(whole.p + FRAME_HEADER_BYTES, cut);
        char what[96];
        snprintf(what, sizeof(what), "CreateTopics cut at %zu of %zu", cut, env);
        struct outcome o = send_judge(&f, what);
        if (o.first_error == RL_E_FRAME_MALFORMED)
            malformed++;
        else
            other++; /* a prefix that is itself a valid message: answered, also fine */
        free(f.p);
    }
    cr_assert_gt(malformed, env / 2, "only %u of %zu cuts were called malformed", malformed,
                 env);
    free(whole.p);
    static const uint8_t huge_len[] = {0x5a, 0xff, 0xff, 0xff, 0xff, 0x07, 0x0a};
    static const uint8_t overlong[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t wire7[] = {0x0f, 0x01};
    /* field 1 (correlation id) ok, then a string field claiming 100 bytes holding 2 */
    static const uint8_t short_string[] = {0x08, 0x01, 0x5a, 0x64, 0x0a, 0x00};
    const struct {
        const uint8_t *p;
        size_t n;
        const char *what;
    } cases[] = {{huge_len, sizeof(huge_len), "length-delimited field claiming 2 GB"},
                 {overlong, sizeof(overlong), "11-byte varint"},
                 {wire7, sizeof(wire7), "wire type 7"},
                 {short_string, sizeof(short_string), "field longer than the envelope"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf f = frame_raw(cases[i].p, cases[i].n);
        expect_error(&f, cases[i].what, RL_E_FRAME_MALFORMED);
        free(f.p);
    }
    assert_still_serving();
}

/* Huge counts: an OffsetFetch of 200,000 partitions and a Fetch of 200,000 entries are
 * answered (or refused with a message), never a crash or a hang. */
Test(malformed, huge_counts)
{
    cr_assert_eq(tl_create_topic(&bystander, "fz", 2, NULL, NULL, 0), 0);
    struct buf f = req_offset_fetch_n(200000);
    struct outcome o = send_judge(&f, "OffsetFetch of 200,000 partitions");
    cr_assert_gt(o.answers, 0);
    free(f.p);
    /* 200,000 empty FetchPartition messages, 2 bytes each on the wire. */
    size_t n = 200000;
    Ringlog__FetchRequest fr = RINGLOG__FETCH_REQUEST__INIT;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_FETCH;
    req.fetch = &fr;
    req.correlation_id = 11;
    Ringlog__FetchPartition fp = RINGLOG__FETCH_PARTITION__INIT;
    Ringlog__FetchPartition **fps = malloc(n * sizeof(*fps));
    for (size_t i = 0; i < n; i++)
        fps[i] = &fp;
    Ringlog__FetchTopic ft = RINGLOG__FETCH_TOPIC__INIT;
    ft.name = (char *)"fz";
    ft.n_partitions = n;
    ft.partitions = fps;
    Ringlog__FetchTopic *fts[1] = {&ft};
    fr.n_topics = 1;
    fr.topics = fts;
    f = frame_of(&req, NULL, 0);
    free(fps);
    o = send_judge(&f, "Fetch of 200,000 entries");
    cr_assert(o.answers > 0 || o.closed);
    free(f.p);
    assert_still_serving();
}

/* Data sections that disagree with the envelope get INVALID_REQUEST and the connection stays
 * usable; batches claiming 2^24 records, a 4 GB length, or a bad checksum are refused with the
 * batch's error and nothing is stored; bad topic names are refused by name. */
Test(malformed, produce_envelopes_and_batches)
{
    cr_assert_eq(tl_create_topic(&bystander, "fz", 2, NULL, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch(3, "fz", &b);
    struct buf f = req_produce_to("fz", b, (uint32_t)len, (uint32_t)len + 1000);
    expect_error(&f, "data_len longer than the data section", RL_E_INVALID_REQUEST);
    free(f.p);
    f = req_produce_to("fz", b, (uint32_t)len, (uint32_t)len - 10);
    expect_error(&f, "data_len shorter than the data section", RL_E_INVALID_REQUEST);
    free(f.p);
    /* 2^24 records claimed by a 3-record batch (checksum recomputed, so only the count is
     * wrong). */
    uint8_t *c = malloc((size_t)len);
    memcpy(c, b, (size_t)len);
    uint32_t count = 1u << 24, last = count - 1;
    memcpy(c + 27, &count, 4);
    memcpy(c + 31, &last, 4);
    uint64_t sum = XXH3_64bits(c + 24, (size_t)len - 24);
    memcpy(c + 16, &sum, 8);
    struct tl_conn pc;
    cr_assert_eq(tl_connect(&pc, broker.host, broker.port, 5000), 0);
    int rc = tl_produce(&pc, "fz", 0, c, (uint32_t)len, 1, NULL);
    cr_assert(rc <= -5100 && rc > -5200, "2^24 records claimed: %d (%s)", rc, rl_error_name(rc));
    uint32_t huge = 0xffffffffu;
    memcpy(c + 8, &huge, 4);
    rc = tl_produce(&pc, "fz", 0, c, (uint32_t)len, 1, NULL);
    cr_assert(rc <= -5100 && rc > -5200, "batch_len 4 GB: %d (%s)", rc, rl_error_name(rc));
    memcpy(c, b, (size_t)len);
    c[40] ^= 1;
    cr_assert_eq(tl_produce(&pc, "fz", 0, c, (uint32_t)len, 1, NULL), RL_E_BATCH_CHECKSUM);
    int64_t end = -1;
    cr_assert_eq(tl_list_offset(&pc, "fz", 0, -1, &end), 0);
    cr_assert_eq(end, 0, "a refused batch was stored");
    const char *names[] = {"", "a\xff\xfe", "nul\x01name", "..", "white space"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        rc = tl_produce(&pc, names[i], 0, b, (uint32_t)len, 1, NULL);
        cr_assert(rc == RL_E_UNKNOWN_TOPIC || rc == RL_E_INVALID_TOPIC_NAME, "name %zu: %d",
                  i, rc);
        rc = tl_create_topic(&pc, names[i], 1, NULL, NULL, 0);
        cr_assert_eq(rc, RL_E_INVALID_TOPIC_NAME, "name %zu: %d", i, rc);
    }
    tl_close(&pc);
    free(c);
    free(b);
    assert_still_serving();
}

/* --- random ----------------------------------------------------------------------------------- */

static void mutate(struct buf *f, uint64_t *rng)
{
    uint32_t ops = 1 + (uint32_t)(tl_rand(rng) % 4);
    for (uint32_t k = 0; k < ops && f->len > 0; k++) {
        size_t at = (size_t)(tl_rand(rng) % f->len);
        switch (tl_rand(rng) % 6) {
        case 0: /* a bit flip */
            f->p[at] ^= (uint8_t)(1u << (tl_rand(rng) % 8));
            break;
        case 1: /* a byte overwritten */
            f->p[at] = (uint8_t)tl_rand(rng);
            break;
        case 2: /* truncated */
            f->len = at;
            break;
        case 3: { /* bytes inserted */
            size_t n = 1 + (size_t)(tl_rand(rng) % 16);
            uint8_t *p = realloc(f->p, f->len + n + 1);
            cr_assert_not_null(p);
            f->p = p;
            memmove(p + at + n, p + at, f->len - at);
            for (size_t i = 0; i < n; i++)
                p[at + i] = (uint8_t)tl_rand(rng);
            f->len += n;
            break;
        }
        case 4: { /* a length field set to an edge value */
            static const uint32_t edges[] = {0, 1, 3, 4, 5, 7, 8, 0x7fffffffu, 0xffffffffu,
                                             1u << 20, (1u << 20) + 1};
            uint32_t v = edges[tl_rand(rng) % (sizeof(edges) / sizeof(edges[0]))];
            if (f->len >= 8)
                put_be32(f->p + ((tl_rand(rng) & 1) ? 4 : 0), v);
            break;
        }
        default: /* the header kept consistent with a mangled length */
            if (f->len >= 8) {
                uint32_t env = (uint32_t)(tl_rand(rng) % (f->len - 7));
                put_be32(f->p, (uint32_t)(f->len - 4));
                put_be32(f->p + 4, env);
            }
            break;
        }
    }
}

/* 400 mutated requests of every kind, each on its own connection: each is answered (errors
 * with messages) or its connection closed, and the broker keeps serving the bystander. */
Test(malformed, random_mutations)
{
    uint64_t seed = tl_seed("malformed/random_mutations");
    uint64_t rng = tl_rand_init(seed, 0x6d616c66);
    uint32_t answered = 0, errors = 0, closed_silent = 0;
    for (uint32_t i = 0; i < 400; i++) {
        struct buf f = makers[tl_rand(&rng) % N_MAKERS]();
        mutate(&f, &rng);
        char what[96];
        snprintf(what, sizeof(what), "mutation %u (replay with RINGLOG_SEED=%llu)", i,
                 (unsigned long long)seed);
        struct outcome o = send_judge(&f, what);
        free(f.p);
        if (o.answers == 0)
            closed_silent++;
        else if (o.errors)
            errors++;
        else
            answered++;
        if (i % 50 == 49)
            assert_still_serving();
    }
    fprintf(stderr, "random_mutations: %u answered, %u refused with an error, %u closed without "
            "an answer\n", answered, errors, closed_silent);
    cr_assert_gt(errors, 0);
    assert_still_serving();
}
