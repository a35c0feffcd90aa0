/*
 * test_produce_validation: a real ringlogd refuses every malformed batch shape a producer can
 * send (counts, offset deltas, varints, lengths, headers, attributes, flags, codecs, compressed
 * garbage and bombs, timestamps), each with its own code and a message naming the problem and
 * where it is; stores nothing of a refused request; keeps serving other clients; and whatever it
 * did acknowledge, a consumer reads to the end. This is the end-to-end test of the broker's full
 * validation (common/batch.h, batch_validate_full), including the audit's two cases: a 66-byte
 * batch claiming 2^24 records, and max_timestamp = INT64_MAX.
 */
#include <criterion/criterion.h>
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "common/batch.h"
#include "common/err.h"
#include "common/varint.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

#define TOPIC "validated"
#define MIB (1024u * 1024u)

static struct tl_broker broker;
static struct tl_conn conn, bystander;

static void setup(void)
{
    int rc = tl_broker_start(&broker, NULL, 20000);
    cr_assert_eq(rc, 0, "ringlogd did not start: %s", rl_strerror(rc));
    cr_assert_eq(tl_connect(&conn, broker.host, broker.port, 5000), 0);
    cr_assert_eq(tl_connect(&bystander, broker.host, broker.port, 5000), 0);
    tl_create_topic(&conn, TOPIC, 1, NULL, NULL, 0);
    tl_create_topic(&bystander, "ok", 1, NULL, NULL, 0);
}

static void teardown(void)
{
    tl_close(&conn);
    tl_close(&bystander);
    int st = tl_broker_finish(&broker, 20000);
    cr_expect_eq(st, 0, "broker exit status %d", st);
}

TestSuite(produce_validation, .init = setup, .fini = teardown, .timeout = 120);

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
}

static void fix_checksum(uint8_t *b)
{
    put64(b + BATCH_OFF_CHECKSUM, batch_compute_checksum(b, batch_peek_len(b)));
}

/* A batch under construction: malloc'd, exactly len bytes. */
struct shape {
    uint8_t *b;
    size_t len;
};

/* A batch around a hand-made records section (count records, codec flags, both timestamps
 * now), checksum right. */
static struct shape raw(const uint8_t *section, size_t section_len, uint32_t count,
                        uint16_t flags)
{
    size_t len = RL_BATCH_HEADER_SIZE + section_len;
    struct shape s = {malloc(len), len};
    cr_assert_not_null(s.b);
    memset(s.b, 0, RL_BATCH_HEADER_SIZE);
    put32(s.b + BATCH_OFF_BATCH_LEN, (uint32_t)s.len);
    s.b[BATCH_OFF_MAGIC] = RL_BATCH_MAGIC;
    put16(s.b + BATCH_OFF_FLAGS, flags);
    put32(s.b + BATCH_OFF_RECORD_COUNT, count);
    put32(s.b + BATCH_OFF_LAST_OFFSET_DELTA, count - 1);
    put64(s.b + BATCH_OFF_FIRST_TIMESTAMP, (uint64_t)wall_ms());
    put64(s.b + BATCH_OFF_MAX_TIMESTAMP, (uint64_t)wall_ms());
    memset(s.b + BATCH_OFF_PRODUCER_ID, 0xff, 14);
    memcpy(s.b + RL_BATCH_HEADER_SIZE, section, section_len);
    fix_checksum(s.b);
    return s;
}

/* A good batch from the builder: n records, values "value-i", timestamps ts + i. */
static struct shape built(enum batch_codec codec, uint32_t n, int64_t ts)
{
    struct batch_builder *bb = batch_builder_create(4 * MIB, codec, 1);
    cr_assert_not_null(bb);
    for (uint32_t i = 0; i < n; i++) {
        char v[32];
        int vlen = snprintf(v, sizeof(v), "value-%u", i);
        struct batch_record_in in = {.key = "k", .key_len = 1, .value = v,
                                     .value_len = (size_t)vlen, .timestamp = ts + i};
        cr_assert_eq(batch_builder_add(bb, &in), 0);
    }
    const uint8_t *p;
    int len = batch_builder_finish(bb, &p);
    cr_assert_gt(len, 0);
    struct shape s = {malloc((size_t)len), (size_t)len};
    memcpy(s.b, p, (size_t)len);
    batch_builder_destroy(bb);
    return s;
}

/* A zstd batch whose frame holds `section` (count records), compressed here. */
static struct shape zstd_of(const uint8_t *section, size_t section_len, uint32_t count)
{
    size_t cap = ZSTD_compressBound(section_len);
    uint8_t *z = malloc(cap);
    size_t n = ZSTD_compress(z, cap, section, section_len, 1);
    cr_assert(!ZSTD_isError(n));
    struct shape s = raw(z, n, count, BATCH_CODEC_ZSTD);
    free(z);
    return s;
}

/* Produces s (and frees it), expects the partition refused with `want`, a message that names
 * the problem (rl_strerror) and says nothing was appended, and the log end unchanged. */
static void expect_refused(const char *name, struct shape s, int want)
{
    int64_t end_before, end_after;
    cr_assert_eq(tl_list_offset(&conn, TOPIC, 0, -1, &end_before), 0);
    cr_assert_geq(tl_send_produce(&conn, TOPIC, 0, s.b, (uint32_t)s.len, 1), 0);
    Ringlog__Response *resp;
    cr_assert_eq(tl_recv(&conn, 10000, &resp, NULL, NULL), 0, "%s: no answer", name);
    cr_assert_eq(resp->error_code, 0, "%s: request-level error %d", name, resp->error_code);
    cr_assert(resp->produce && resp->produce->n_topics == 1 &&
              resp->produce->topics[0]->n_partitions == 1);
    Ringlog__ProducePartitionResult *res = resp->produce->topics[0]->partitions[0];
    cr_assert_eq(res->error_code, want, "%s: got %s (%s), want %s", name,
                 rl_error_name(res->error_code), res->error_message, rl_error_name(want));
    cr_assert_not_null(strstr(res->error_message, rl_strerror(want)), "%s: \"%s\"", name,
                       res->error_message);
    cr_assert_not_null(strstr(res->error_message, "nothing was appended"), "%s: \"%s\"", name,
                       res->error_message);
    cr_assert_not_null(strstr(res->error_message, " ("), "%s: no detail in \"%s\"", name,
                       res->error_message);
    cr_assert_eq(tl_list_offset(&conn, TOPIC, 0, -1, &end_after), 0);
    cr_assert_eq(end_after, end_before, "%s: the log moved from %lld to %lld", name,
                 (long long)end_before, (long long)end_after);
    free(s.b);
}

/* Produces s (and frees it) and expects it acknowledged. */
static void expect_accepted(const char *name, struct shape s)
{
    int64_t base;
    int rc = tl_produce(&conn, TOPIC, 0, s.b, (uint32_t)s.len, 1, &base);
    cr_assert_eq(rc, 0, "%s: refused with %s", name, rl_error_name(rc));
    free(s.b);
}

/* The bystander connection is served throughout: it produces and reads back a record. */
static void assert_still_serving(void)
{
    uint8_t *b;
    int len = tl_make_batch(1, "alive", &b);
    int64_t base;
    cr_assert_eq(tl_produce(&bystander, "ok", 0, b, (uint32_t)len, 1, &base), 0);
    free(b);
    struct tl_fetch f = {.topic = "ok", .offset = (uint64_t)base};
    struct tl_fetch_result fr;
    cr_assert_eq(tl_fetch(&bystander, &f, &fr), 0);
    cr_assert_eq(fr.records, 1);
}

/* Everything stored in the topic reads to the end with a consumer's reader: `want` records. */
static void assert_consumers_read_all(uint32_t want)
{
    struct batch_reader *rd = batch_reader_create(RL_BATCH_MAX_BYTES);
    uint64_t offset = 0;
    uint32_t records = 0;
    for (int round = 0; round < 100 && records < want; round++) {
        struct tl_fetch f = {.topic = TOPIC, .offset = offset, .max_bytes = 4 * MIB};
        struct tl_fetch_result fr;
        cr_assert_eq(tl_fetch(&conn, &f, &fr), 0, "%s", fr.error_message);
        cr_assert_gt(fr.data_len, 0, "no data at offset %llu", (unsigned long long)offset);
        for (uint32_t pos = 0; pos < fr.data_len;) {
            struct batch_header h;
            int rc = batch_reader_open(rd, fr.data + pos, fr.data_len - pos, &h);
            cr_assert_eq(rc, 0, "stored batch at %llu: %s (%s)", (unsigned long long)h.base_offset,
                         rl_strerror(rc), batch_reader_detail(rd));
            struct batch_record rec;
            while ((rc = batch_reader_next(rd, &rec)) == 1)
                records++;
            cr_assert_eq(rc, 0, "stored batch at %llu: %s (%s)", (unsigned long long)h.base_offset,
                         rl_strerror(rc), batch_reader_detail(rd));
            offset = h.base_offset + h.record_count;
            pos += h.batch_len;
        }
    }
    cr_assert_eq(records, want);
    batch_reader_destroy(rd);
}

/* The record section of one record (offset delta `index`), optionally with a header. */
static size_t record(uint8_t *out, uint32_t index, uint8_t attributes, int64_t ts_delta)
{
    uint8_t body[64];
    size_t n = 0;
    body[n++] = attributes;
    n += varint_write64(body + n, ts_delta);
    n += varint_write32(body + n, (int32_t)index);
    body[n++] = 0x01; /* null key */
    body[n++] = 0x04; /* value length 2 */
    body[n++] = 'o';
    body[n++] = 'k';
    body[n++] = 0x00; /* no headers */
    size_t m = varint_write32(out, (int32_t)n);
    memcpy(out + m, body, n);
    return m + n;
}

/* Counts, offset deltas, varints, lengths, headers and attributes: each refused with its code. */
Test(produce_validation, malformed_records_are_refused)
{
    uint8_t sec[256];
    size_t n;
    expect_accepted("a good batch first", built(BATCH_CODEC_NONE, 3, wall_ms()));

    /* The audit's batch: 66 bytes claiming 2^24 records. Twenty of them once pushed a segment
     * past 2^32 relative offsets. */
    for (int i = 0; i < 20; i++) {
        uint8_t one = 0;
        struct shape s = raw(&one, 1, 1u << 24, BATCH_CODEC_NONE);
        cr_assert_eq(s.len, 66);
        expect_refused("2^24 records in 66 bytes", s, RL_E_BATCH_COUNT);
    }
    n = record(sec, 0, 0, 0);
    n += record(sec + n, 1, 0, 0);
    n += record(sec + n, 2, 0, 0);
    expect_refused("count 5, 3 records", raw(sec, n, 5, 0), RL_E_BATCH_COUNT);
    expect_refused("count 2, 3 records", raw(sec, n, 2, 0), RL_E_BATCH_COUNT);
    struct shape s = raw(sec, n, 3, 0);
    put32(s.b + BATCH_OFF_LAST_OFFSET_DELTA, 7);
    fix_checksum(s.b);
    expect_refused("last_offset_delta 7 of 3", s, RL_E_BATCH_COUNT);

    n = record(sec, 0, 0, 0);
    n += record(sec + n, 2, 0, 0);
    expect_refused("offset deltas 0, 2", raw(sec, n, 2, 0), RL_E_BATCH_OFFSETS);
    n = record(sec, 0, 0, 0);
    n += record(sec + n, 0, 0, 0);
    expect_refused("offset deltas 0, 0", raw(sec, n, 2, 0), RL_E_BATCH_OFFSETS);

    static const uint8_t long_varint[] = {0x1e, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                          0x80, 0x80, 0x80, 0x00, 0x00, 0x01, 0x01, 0x00};
    expect_refused("an 11-byte varlong", raw(long_varint, sizeof(long_varint), 1, 0),
                   RL_E_BATCH_VARINT);
    static const uint8_t key_too_long[] = {0x0c, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00};
    expect_refused("key longer than its record", raw(key_too_long, sizeof(key_too_long), 1, 0),
                   RL_E_BATCH_RECORD);
    static const uint8_t rec_too_long[] = {0x40, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00};
    expect_refused("record longer than the batch", raw(rec_too_long, sizeof(rec_too_long), 1, 0),
                   RL_E_BATCH_RECORD);
    static const uint8_t null_hkey[] = {0x10, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x01, 0x01};
    expect_refused("a header with a null key", raw(null_hkey, sizeof(null_hkey), 1, 0),
                   RL_E_BATCH_HEADERS);
    static const uint8_t many_hdrs[] = {0x0e, 0x00, 0x00, 0x00, 0x01, 0x01, 0x10, 0x00};
    expect_refused("64 headers in 1 byte", raw(many_hdrs, sizeof(many_hdrs), 1, 0),
                   RL_E_BATCH_HEADERS);
    n = record(sec, 0, 0x01, 0);
    expect_refused("record attributes 1", raw(sec, n, 1, 0), RL_E_BATCH_RECORD_ATTRIBUTES);

    /* A good batch and a bad one in one request: the partition is refused whole. */
    struct shape good = built(BATCH_CODEC_NONE, 2, wall_ms());
    n = record(sec, 1, 0, 0);
    struct shape bad = raw(sec, n, 1, 0);
    struct shape both = {malloc(good.len + bad.len), good.len + bad.len};
    memcpy(both.b, good.b, good.len);
    memcpy(both.b + good.len, bad.b, bad.len);
    free(good.b);
    free(bad.b);
    expect_refused("a good batch followed by a bad one", both, RL_E_BATCH_OFFSETS);

    assert_still_serving();
    expect_accepted("a good batch last", built(BATCH_CODEC_NONE, 2, wall_ms()));
    assert_consumers_read_all(5);
}

/* Header fields, flags and codecs, compressed garbage and decompression bombs. */
Test(produce_validation, malformed_headers_and_codecs_are_refused)
{
    uint8_t sec[256];
    size_t n = record(sec, 0, 0, 0);
    struct shape s = raw(sec, n, 1, 0);
    s.b[BATCH_OFF_MAGIC] = 1;
    expect_refused("magic 1", s, RL_E_BATCH_MAGIC);
    s = raw(sec, n, 1, 0);
    s.b[s.len - 1] ^= 0x40;
    expect_refused("a damaged byte", s, RL_E_BATCH_CHECKSUM);
    s = raw(sec, n, 1, 0);
    put32(s.b + BATCH_OFF_BATCH_LEN, RL_BATCH_HEADER_SIZE - 1);
    expect_refused("batch_len below the header", s, RL_E_BATCH_LENGTH);
    s = raw(sec, n, 1, 0);
    put32(s.b + BATCH_OFF_BATCH_LEN, (uint32_t)s.len + 10);
    expect_refused("batch_len past the data", s, RL_E_BATCH_SHORT);
    expect_refused("codec gzip", raw(sec, n, 1, 1), RL_E_BATCH_CODEC);
    expect_refused("a control batch", raw(sec, n, 1, BATCH_FLAG_CONTROL), RL_E_BATCH_FLAGS);
    expect_refused("log-append time", raw(sec, n, 1, BATCH_FLAG_LOG_APPEND_TIME),
                   RL_E_BATCH_FLAGS);
    expect_refused("a reserved flag", raw(sec, n, 1, 0x8000), RL_E_BATCH_FLAGS);

    static const uint8_t garbage[] = {0x28, 0xb5, 0x2f, 0xfd, 0x13, 0x37, 0xde, 0xad, 0xbe, 0xef};
    expect_refused("zstd garbage", raw(garbage, sizeof(garbage), 1, BATCH_CODEC_ZSTD),
                   RL_E_BATCH_DECOMPRESS);
    struct shape z = built(BATCH_CODEC_ZSTD, 40, wall_ms());
    cr_assert_eq(z.b[BATCH_OFF_FLAGS] & BATCH_FLAG_CODEC_MASK, BATCH_CODEC_ZSTD);
    z.len -= 5;
    put32(z.b + BATCH_OFF_BATCH_LEN, (uint32_t)z.len);
    fix_checksum(z.b);
    expect_refused("a truncated zstd frame", z, RL_E_BATCH_DECOMPRESS);
    size_t m = record(sec, 0, 0, 0);
    m += record(sec + m, 5, 0, 0);
    expect_refused("bad offsets inside zstd", zstd_of(sec, m, 2), RL_E_BATCH_OFFSETS);

    /* A bomb: one record of RL_BATCH_MAX_BYTES zero bytes, compressed to a few KiB. */
    size_t zeros = RL_BATCH_MAX_BYTES;
    uint8_t *big = calloc(1, zeros + 16);
    size_t bl = varint_write32(big, (int32_t)(4 + varint_size32((int32_t)zeros) + zeros + 1));
    bl += 3;
    big[bl++] = 0x01;
    bl += varint_write32(big + bl, (int32_t)zeros) + zeros;
    bl++;
    struct shape bomb = zstd_of(big, bl, 1);
    free(big);
    cr_assert_lt(bomb.len, 64 * 1024, "the bomb is small: %zu bytes", bomb.len);
    expect_refused("a decompression bomb", bomb, RL_E_BATCH_DECOMPRESS_LIMIT);

    assert_still_serving();
    expect_accepted("zstd that is fine", built(BATCH_CODEC_ZSTD, 40, wall_ms()));
    assert_consumers_read_all(40);
}

/* Timestamps: first and max must agree with the records, nothing negative, and nothing more than
 * an hour ahead of the broker's clock (message.timestamp.after.max.ms); old ones are fine. */
Test(produce_validation, timestamps_are_bounded)
{
    int64_t now = wall_ms();
    struct shape s = built(BATCH_CODEC_NONE, 3, now);
    put64(s.b + BATCH_OFF_MAX_TIMESTAMP, (uint64_t)INT64_MAX);
    fix_checksum(s.b);
    expect_refused("max_timestamp INT64_MAX", s, RL_E_BATCH_MAX_TIMESTAMP);
    expect_refused("records at INT64_MAX", built(BATCH_CODEC_NONE, 1, INT64_MAX),
                   RL_E_BATCH_TIMESTAMP_FUTURE);
    expect_refused("two hours ahead", built(BATCH_CODEC_NONE, 2, now + 2 * 3600 * 1000),
                   RL_E_BATCH_TIMESTAMP_FUTURE);
    expect_refused("nanoseconds", built(BATCH_CODEC_NONE, 1, now * 1000000),
                   RL_E_BATCH_TIMESTAMP_FUTURE);
    expect_refused("negative", built(BATCH_CODEC_NONE, 1, -1000), RL_E_BATCH_TIMESTAMP_RANGE);
    uint8_t sec[64];
    size_t n = record(sec, 0, 0, 7);
    expect_refused("first_timestamp off by 7", raw(sec, n, 1, 0), RL_E_BATCH_FIRST_TIMESTAMP);

    expect_accepted("ten years old", built(BATCH_CODEC_NONE, 2, now - 10 * 365 * 86400000LL));
    expect_accepted("1970", built(BATCH_CODEC_NONE, 1, 0));
    expect_accepted("a minute ahead", built(BATCH_CODEC_NONE, 1, now + 60000));
    assert_still_serving();
    assert_consumers_read_all(4);
}
