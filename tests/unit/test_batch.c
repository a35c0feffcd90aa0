/* batch: the codec's round trips, builder limits, and every rejection path with its exact code. */
#include <criterion/criterion.h>
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "common/batch.h"
#include "common/err.h"
#include "common/varint.h"

#define MIB (1024u * 1024u)

/* --- helpers ------------------------------------------------------------------------------- */

/* Fills buf with bytes zstd cannot shrink (xorshift), from seed. */
static void fill_random(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)(x >> 24);
    }
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

static void fix_checksum(uint8_t *batch)
{
    uint32_t len = batch_peek_len(batch);
    put64(batch + BATCH_OFF_CHECKSUM, batch_compute_checksum(batch, len));
}

/* Writes a batch around a hand-made records section, with a correct checksum, so tests can
 * reach the record parser with malformed records. Returns the batch length. */
static size_t make_raw(uint8_t *out, const uint8_t *section, size_t section_len, uint32_t count,
                       uint16_t flags)
{
    memset(out, 0, RL_BATCH_HEADER_SIZE);
    put32(out + BATCH_OFF_BATCH_LEN, (uint32_t)(RL_BATCH_HEADER_SIZE + section_len));
    out[BATCH_OFF_MAGIC] = RL_BATCH_MAGIC;
    uint16_t f = htole16(flags);
    memcpy(out + BATCH_OFF_FLAGS, &f, 2);
    put32(out + BATCH_OFF_RECORD_COUNT, count);
    put32(out + BATCH_OFF_LAST_OFFSET_DELTA, count - 1);
    put64(out + BATCH_OFF_PRODUCER_ID, UINT64_MAX);
    memcpy(out + RL_BATCH_HEADER_SIZE, section, section_len);
    fix_checksum(out);
    return RL_BATCH_HEADER_SIZE + section_len;
}

/* Deep-validates a hand-made records section wrapped in a good header. */
static int deep_raw(const uint8_t *section, size_t section_len, uint32_t count)
{
    static uint8_t buf[4096];
    cr_assert_leq(section_len + RL_BATCH_HEADER_SIZE, sizeof(buf));
    size_t len = make_raw(buf, section, section_len, count, BATCH_CODEC_NONE);
    struct batch_reader *r = batch_reader_create(MIB);
    cr_assert_not_null(r);
    int rc = batch_validate_deep(r, buf, len);
    batch_reader_destroy(r);
    return rc;
}

/* Builds one small valid uncompressed batch of three records into a static buffer. */
static size_t good_batch(uint8_t *out, size_t cap)
{
    struct batch_builder *b = batch_builder_create(4096, BATCH_CODEC_NONE, 0);
    cr_assert_not_null(b);
    for (int i = 0; i < 3; i++) {
        struct batch_record_in in = {.key = "k", .key_len = 1, .value = "value", .value_len = 5,
                                     .timestamp = 1000 + i};
        cr_assert_eq(batch_builder_add(b, &in), 0);
    }
    const uint8_t *p;
    int len = batch_builder_finish(b, &p);
    cr_assert_gt(len, 0);
    cr_assert_leq((size_t)len, cap);
    memcpy(out, p, (size_t)len);
    batch_builder_destroy(b);
    return (size_t)len;
}

static void assert_bytes(const uint8_t *got, int32_t got_len, const void *want, size_t want_len,
                         const char *what)
{
    if (!want) {
        cr_assert_null(got, "%s should be null", what);
        cr_assert_eq(got_len, -1, "%s length should be -1", what);
        return;
    }
    cr_assert_not_null(got, "%s should not be null", what);
    cr_assert_eq((size_t)got_len, want_len, "%s length", what);
    cr_assert(memcmp(got, want, want_len) == 0, "%s bytes differ", what);
}

/* Checks that the batch holds exactly recs[0..n) (offsets from base_offset, in order). */
static void expect_records(struct batch_reader *r, const uint8_t *batch, size_t len,
                           const struct batch_record_in *recs, uint32_t n, uint64_t base_offset)
{
    struct batch_header h;
    cr_assert_eq(batch_reader_open(r, batch, len, &h), 0);
    cr_assert_eq(h.record_count, n);
    cr_assert_eq(h.base_offset, base_offset);
    struct batch_record rec;
    int64_t max_ts = INT64_MIN;
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(batch_reader_next(r, &rec), 1, "record %u", i);
        cr_assert_eq(rec.offset, (int64_t)(base_offset + i));
        cr_assert_eq(rec.timestamp, recs[i].timestamp);
        if (recs[i].timestamp > max_ts)
            max_ts = recs[i].timestamp;
        assert_bytes(rec.key, rec.key_len, recs[i].key, recs[i].key_len, "key");
        assert_bytes(rec.value, rec.value_len, recs[i].value, recs[i].value_len, "value");
        cr_assert_eq(rec.header_count, recs[i].header_count);
        size_t pos = 0;
        struct batch_record_header hd;
        for (uint32_t j = 0; j < recs[i].header_count; j++) {
            const struct batch_record_header *w = &recs[i].headers[j];
            cr_assert_eq(batch_header_next(&rec, &pos, &hd), 1);
            const void *wkey = w->key ? (const void *)w->key : "";
            assert_bytes(hd.key, hd.key_len, wkey, (size_t)w->key_len, "hkey");
            assert_bytes(hd.value, hd.value_len, w->value, w->value ? (size_t)w->value_len : 0,
                         "hvalue");
        }
        cr_assert_eq(batch_header_next(&rec, &pos, &hd), 0);
    }
    cr_assert_eq(batch_reader_next(r, &rec), 0);
    cr_assert_eq(batch_reader_next(r, &rec), 0, "the end is sticky");
    cr_assert_eq(h.first_timestamp, recs[0].timestamp);
    cr_assert_eq(h.max_timestamp, max_ts);
}

/* --- round trips ----------------------------------------------------------------------------- */

/* Records with keys, empty and null keys, null values and headers come back byte for byte,
 * uncompressed and zstd-compressed, with the idempotence fields intact. */
static void round_trip_mixed(enum batch_codec codec)
{
    static const struct batch_record_header hdrs[] = {
        {.key = (const uint8_t *)"trace", .key_len = 5, .value = (const uint8_t *)"abc",
         .value_len = 3},
        {.key = (const uint8_t *)"", .key_len = 0, .value = (const uint8_t *)"", .value_len = 0},
        {.key = (const uint8_t *)"nullv", .key_len = 5, .value = NULL, .value_len = -1},
    };
    static char big[3000];
    memset(big, 'x', sizeof(big)); /* compressible, so zstd is really used */
    const struct batch_record_in recs[] = {
        {.key = "key-1", .key_len = 5, .value = big, .value_len = sizeof(big),
         .timestamp = 1700000000000},
        {.key = "", .key_len = 0, .value = "empty key", .value_len = 9, .timestamp = 1699999999000},
        {.key = NULL, .value = "null key", .value_len = 8, .timestamp = 1700000005000},
        {.key = "tombstone", .key_len = 9, .value = NULL, .timestamp = 1700000001000},
        {.key = "h", .key_len = 1, .value = big, .value_len = 100, .timestamp = 1700000000000,
         .headers = hdrs, .header_count = 3},
        {.key = NULL, .value = "", .value_len = 0, .timestamp = -5},
    };
    uint32_t n = sizeof(recs) / sizeof(recs[0]);
    struct batch_builder *b = batch_builder_create(64 * 1024, codec, 1);
    struct batch_reader *r = batch_reader_create(64 * 1024);
    cr_assert(b && r);
    batch_builder_reset(b, 42, 3, 1000);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(batch_builder_add(b, &recs[i]), 0, "add %u", i);
    cr_assert_eq(batch_builder_count(b), n);
    const uint8_t *out;
    int len = batch_builder_finish(b, &out);
    cr_assert_gt(len, 0);
    struct batch_header h;
    cr_assert_eq(batch_validate(out, (size_t)len, &h), 0);
    cr_assert_eq(h.batch_len, (uint32_t)len);
    cr_assert_eq(h.flags & BATCH_FLAG_CODEC_MASK, codec);
    cr_assert_eq(h.producer_id, 42);
    cr_assert_eq(h.producer_epoch, 3);
    cr_assert_eq(h.base_sequence, 1000);
    if (codec == BATCH_CODEC_ZSTD)
        cr_assert_lt((size_t)len, batch_builder_bytes(b), "zstd shrank the records");
    else
        cr_assert_eq((size_t)len, RL_BATCH_HEADER_SIZE + batch_builder_bytes(b));
    expect_records(r, out, (size_t)len, recs, n, 0);
    cr_assert_eq(batch_validate_deep(r, out, (size_t)len), 0);
    batch_builder_destroy(b);
    batch_reader_destroy(r);
}

Test(batch, round_trip_uncompressed)
{
    round_trip_mixed(BATCH_CODEC_NONE);
}

Test(batch, round_trip_zstd)
{
    round_trip_mixed(BATCH_CODEC_ZSTD);
}

/* Incompressible records under zstd fall back to an uncompressed batch that still reads back. */
Test(batch, zstd_falls_back_when_it_does_not_shrink)
{
    static uint8_t val[8192];
    fill_random(val, sizeof(val), 7);
    struct batch_record_in in = {.key = "k", .key_len = 1, .value = val, .value_len = sizeof(val),
                                 .timestamp = 5};
    struct batch_builder *b = batch_builder_create(64 * 1024, BATCH_CODEC_ZSTD, 3);
    struct batch_reader *r = batch_reader_create(64 * 1024);
    cr_assert_eq(batch_builder_add(b, &in), 0);
    const uint8_t *out;
    int len = batch_builder_finish(b, &out);
    cr_assert_gt(len, 0);
    struct batch_header h;
    cr_assert_eq(batch_header_decode(out, (size_t)len, &h), 0);
    cr_assert_eq(h.flags & BATCH_FLAG_CODEC_MASK, BATCH_CODEC_NONE);
    expect_records(r, out, (size_t)len, &in, 1, 0);
    batch_builder_destroy(b);
    batch_reader_destroy(r);
}

/* A 1 MiB+ value (incompressible and compressible) survives both codecs. */
static void large_record(enum batch_codec codec, int compressible)
{
    size_t vlen = MIB + 12345;
    uint8_t *val = malloc(vlen);
    cr_assert_not_null(val);
    if (compressible)
        for (size_t i = 0; i < vlen; i++)
            val[i] = (uint8_t)("abcdefgh"[i % 8] + (i / 4096) % 3);
    else
        fill_random(val, vlen, 99);
    struct batch_record_in in = {.key = "big", .key_len = 3, .value = val, .value_len = vlen,
                                 .timestamp = 123456789};
    struct batch_builder *b = batch_builder_create(2 * MIB, codec, 0);
    struct batch_reader *r = batch_reader_create(2 * MIB);
    cr_assert(b && r);
    cr_assert_eq(batch_builder_add(b, &in), 0);
    const uint8_t *out;
    int len = batch_builder_finish(b, &out);
    cr_assert_gt(len, 0);
    expect_records(r, out, (size_t)len, &in, 1, 0);
    batch_builder_destroy(b);
    batch_reader_destroy(r);
    free(val);
}

Test(batch, large_record_uncompressed)
{
    large_record(BATCH_CODEC_NONE, 0);
}

Test(batch, large_record_zstd_compressible)
{
    large_record(BATCH_CODEC_ZSTD, 1);
}

Test(batch, large_record_zstd_incompressible)
{
    large_record(BATCH_CODEC_ZSTD, 0);
}

/* 100,000 tiny records (one-byte values, null keys) fit one batch and iterate in order. */
static void many_tiny(enum batch_codec codec)
{
    enum { N = 100000 };
    struct batch_builder *b = batch_builder_create(4 * MIB, codec, 1);
    struct batch_reader *r = batch_reader_create(4 * MIB);
    cr_assert(b && r);
    for (uint32_t i = 0; i < N; i++) {
        uint8_t v = (uint8_t)i;
        struct batch_record_in in = {.value = &v, .value_len = 1, .timestamp = 1000 + i / 100};
        cr_assert_eq(batch_builder_add(b, &in), 0, "add %u", i);
    }
    const uint8_t *out;
    int len = batch_builder_finish(b, &out);
    cr_assert_gt(len, 0);
    batch_stamp((uint8_t *)out, 5000, 9);
    struct batch_header h;
    cr_assert_eq(batch_reader_open(r, out, (size_t)len, &h), 0);
    cr_assert_eq(h.record_count, N);
    cr_assert_eq(h.max_timestamp, 1000 + (N - 1) / 100);
    struct batch_record rec;
    for (uint32_t i = 0; i < N; i++) {
        cr_assert_eq(batch_reader_next(r, &rec), 1);
        if (rec.offset != 5000 + (int64_t)i || rec.value_len != 1 || rec.value[0] != (uint8_t)i ||
            rec.key != NULL || rec.timestamp != 1000 + i / 100)
            cr_assert_fail("record %u differs", i);
    }
    cr_assert_eq(batch_reader_next(r, &rec), 0);
    batch_builder_destroy(b);
    batch_reader_destroy(r);
}

Test(batch, many_tiny_records_uncompressed)
{
    many_tiny(BATCH_CODEC_NONE);
}

Test(batch, many_tiny_records_zstd)
{
    many_tiny(BATCH_CODEC_ZSTD);
}

/* The Kafka v2 record from the protocol reference's test vector (null key, value "hi") decodes:
 * our records section is byte-compatible with Kafka's. */
Test(batch, kafka_test_vector_records_decode)
{
    const uint8_t section[] = {0x10, 0x00, 0x00, 0x00, 0x01, 0x04, 'h', 'i', 0x00};
    uint8_t buf[128];
    size_t len = make_raw(buf, section, sizeof(section), 1, BATCH_CODEC_NONE);
    put64(buf + BATCH_OFF_FIRST_TIMESTAMP, 1700000000000ull);
    fix_checksum(buf);
    struct batch_reader *r = batch_reader_create(4096);
    cr_assert_eq(batch_reader_open(r, buf, len, NULL), 0);
    struct batch_record rec;
    cr_assert_eq(batch_reader_next(r, &rec), 1);
    cr_assert_null(rec.key);
    assert_bytes(rec.value, rec.value_len, "hi", 2, "value");
    cr_assert_eq(rec.timestamp, 1700000000000);
    cr_assert_eq(batch_reader_next(r, &rec), 0);
    batch_reader_destroy(r);

    /* And the builder writes exactly those record bytes. */
    struct batch_builder *b = batch_builder_create(4096, BATCH_CODEC_NONE, 0);
    struct batch_record_in in = {.value = "hi", .value_len = 2, .timestamp = 1700000000000};
    cr_assert_eq(batch_builder_add(b, &in), 0);
    const uint8_t *out;
    cr_assert_eq(batch_builder_finish(b, &out), (int)(RL_BATCH_HEADER_SIZE + sizeof(section)));
    cr_assert(memcmp(out + RL_BATCH_HEADER_SIZE, section, sizeof(section)) == 0);
    batch_builder_destroy(b);
}

/* Stamping base_offset and leader_epoch keeps the checksum valid and shifts record offsets. */
Test(batch, stamp_keeps_checksum_valid)
{
    uint8_t buf[4096];
    size_t len = good_batch(buf, sizeof(buf));
    uint64_t before = batch_compute_checksum(buf, (uint32_t)len);
    batch_stamp(buf, 1234567890123ull, 77);
    cr_assert_eq(batch_compute_checksum(buf, (uint32_t)len), before);
    struct batch_header h;
    cr_assert_eq(batch_validate(buf, len, &h), 0);
    cr_assert_eq(h.base_offset, 1234567890123ull);
    cr_assert_eq(h.leader_epoch, 77);
    cr_assert_eq(batch_peek_len(buf), len);
    struct batch_reader *r = batch_reader_create(4096);
    struct batch_record rec;
    cr_assert_eq(batch_reader_open(r, buf, len, NULL), 0);
    cr_assert_eq(batch_reader_next(r, &rec), 1);
    cr_assert_eq(rec.offset, 1234567890123);
    cr_assert_eq(batch_reader_next(r, &rec), 1);
    cr_assert_eq(rec.offset, 1234567890124);
    batch_reader_destroy(r);
}

/* The checksum is XXH3-64 of bytes [24, batch_len) exactly as the xxHash library computes it,
 * at every length around the kernels' block sizes (the AVX2 build is used from 1 KiB up when the
 * CPU has it, the baseline below). */
Test(batch, checksum_is_reference_xxh3)
{
    enum { MAX = 70000 };
    uint8_t *buf = malloc(MAX);
    cr_assert_not_null(buf);
    fill_random(buf, MAX, 11);
    for (uint32_t len = 0; len < MAX; len += (len < 2100 ? 1 : 997)) {
        uint64_t want = len < RL_BATCH_CHECKSUM_FROM ? 0
                                                     : XXH3_64bits(buf + RL_BATCH_CHECKSUM_FROM,
                                                                   len - RL_BATCH_CHECKSUM_FROM);
        cr_assert_eq(batch_compute_checksum(buf, len), want, "len %u", len);
    }
    free(buf);
}

/* --- builder limits -------------------------------------------------------------------------- */

/* A full builder answers RL_E_FULL and leaves its batch unchanged; the batch then finishes and
 * holds exactly the records accepted. */
Test(batch, builder_full_leaves_batch_unchanged)
{
    static uint8_t val[100];
    memset(val, 'v', sizeof(val));
    struct batch_builder *b = batch_builder_create(1024, BATCH_CODEC_NONE, 0);
    struct batch_record_in in = {.value = val, .value_len = sizeof(val), .timestamp = 1};
    uint32_t added = 0;
    int rc;
    while ((rc = batch_builder_add(b, &in)) == 0 && added < 1000)
        added++;
    cr_assert_eq(rc, RL_E_FULL);
    cr_assert_gt(added, 5);
    size_t bytes = batch_builder_bytes(b);
    cr_assert_eq(batch_builder_count(b), added);
    cr_assert_leq(RL_BATCH_HEADER_SIZE + bytes, 1024);
    cr_assert_eq(batch_builder_add(b, &in), RL_E_FULL);
    cr_assert_eq(batch_builder_bytes(b), bytes);
    const uint8_t *out;
    int len = batch_builder_finish(b, &out);
    cr_assert_eq(len, (int)(RL_BATCH_HEADER_SIZE + bytes));
    struct batch_reader *r = batch_reader_create(4096);
    struct batch_header h;
    cr_assert_eq(batch_reader_open(r, out, (size_t)len, &h), 0);
    cr_assert_eq(h.record_count, added);
    cr_assert_eq(batch_validate_deep(r, out, (size_t)len), 0);
    /* After a reset the builder takes records again. */
    batch_builder_reset(b, -1, -1, -1);
    cr_assert_eq(batch_builder_count(b), 0);
    cr_assert_eq(batch_builder_add(b, &in), 0);
    batch_reader_destroy(r);
    batch_builder_destroy(b);
}

/* finish_swap hands out the finished batch in the builder's own buffer and continues with the
 * one given: the taken batch stays intact while the builder fills the fresh buffer, for both
 * codecs; an empty builder swaps nothing. */
Test(batch, builder_finish_swap)
{
    static uint8_t val[300];
    for (int codec = BATCH_CODEC_NONE; codec <= BATCH_CODEC_ZSTD; codec += BATCH_CODEC_ZSTD) {
        struct batch_builder *b = batch_builder_create(4096, (enum batch_codec)codec, 1);
        cr_assert_not_null(b);
        cr_assert_eq(batch_builder_capacity(b), 4096);
        uint8_t *fresh = malloc(4096), *taken = NULL, *taken2 = NULL;
        cr_assert_eq(batch_builder_finish_swap(b, fresh, &taken), RL_E_BATCH_EMPTY);
        cr_assert_null(taken);
        fill_random(val, sizeof(val), 7);
        struct batch_record_in in = {.value = val, .value_len = sizeof(val), .timestamp = 5};
        for (int i = 0; i < 4; i++)
            cr_assert_eq(batch_builder_add(b, &in), 0);
        int len = batch_builder_finish_swap(b, fresh, &taken);
        cr_assert_gt(len, 0);
        cr_assert_neq(taken, fresh);
        uint8_t copy[4096];
        memcpy(copy, taken, (size_t)len);
        /* The next batch is built in `fresh` and must not touch the taken one. */
        batch_builder_reset(b, -1, -1, -1);
        fill_random(val, sizeof(val), 8);
        cr_assert_eq(batch_builder_add(b, &in), 0);
        uint8_t *fresh2 = malloc(4096);
        int len2 = batch_builder_finish_swap(b, fresh2, &taken2);
        cr_assert_gt(len2, 0);
        cr_assert_eq(memcmp(copy, taken, (size_t)len), 0);
        struct batch_header h;
        cr_assert_eq(batch_validate(taken, (size_t)len, &h), 0);
        cr_assert_eq(h.record_count, 4);
        cr_assert_eq(batch_validate(taken2, (size_t)len2, &h), 0);
        cr_assert_eq(h.record_count, 1);
        free(taken);
        free(taken2);
        batch_builder_destroy(b);
    }
}

/* A record bigger than an empty batch can hold is BATCH_TOO_LARGE, not FULL (retrying in a new
 * batch would never help); an empty batch does not finish; bad arguments are rejected. */
Test(batch, builder_rejections)
{
    static uint8_t val[2048];
    struct batch_builder *b = batch_builder_create(1024, BATCH_CODEC_NONE, 0);
    const uint8_t *out;
    cr_assert_eq(batch_builder_finish(b, &out), RL_E_BATCH_EMPTY);
    struct batch_record_in big = {.value = val, .value_len = sizeof(val)};
    cr_assert_eq(batch_builder_add(b, &big), RL_E_BATCH_TOO_LARGE);
    struct batch_record_in huge = {.value = val, .value_len = SIZE_MAX};
    cr_assert_eq(batch_builder_add(b, &huge), RL_E_BATCH_TOO_LARGE);
    struct batch_record_in nullkey_len = {.key = NULL, .key_len = 3};
    cr_assert_eq(batch_builder_add(b, &nullkey_len), RL_E_INVALID_ARGUMENT);
    struct batch_record_in nohdrs = {.header_count = 2};
    cr_assert_eq(batch_builder_add(b, &nohdrs), RL_E_INVALID_ARGUMENT);
    struct batch_record_header badh = {.key = (const uint8_t *)"k", .key_len = -2};
    struct batch_record_in withbad = {.headers = &badh, .header_count = 1};
    cr_assert_eq(batch_builder_add(b, &withbad), RL_E_INVALID_ARGUMENT);
    cr_assert_eq(batch_builder_add(b, NULL), RL_E_INVALID_ARGUMENT);
    struct batch_record_in first = {.timestamp = INT64_MAX};
    struct batch_record_in wraps = {.timestamp = INT64_MIN};
    cr_assert_eq(batch_builder_add(b, &first), 0);
    cr_assert_eq(batch_builder_add(b, &wraps), RL_E_INVALID_ARGUMENT, "delta overflows");
    cr_assert_eq(batch_builder_count(b), 1);
    batch_builder_destroy(b);
    cr_assert_null(batch_builder_create(10, BATCH_CODEC_NONE, 0));
    cr_assert_null(batch_builder_create(RL_BATCH_MAX_BYTES + 1, BATCH_CODEC_NONE, 0));
    cr_assert_null(batch_builder_create(4096, (enum batch_codec)1, 0));
    cr_assert_null(batch_builder_create(4096, BATCH_CODEC_ZSTD, 1000));
}

/* --- rejection paths ------------------------------------------------------------------------- */

/* Fewer bytes than a header, or than batch_len, is BATCH_SHORT. */
Test(batch, reject_short)
{
    uint8_t buf[4096];
    size_t len = good_batch(buf, sizeof(buf));
    struct batch_header h;
    cr_assert_eq(batch_header_decode(buf, RL_BATCH_HEADER_SIZE - 1, &h), RL_E_BATCH_SHORT);
    cr_assert_eq(batch_validate(buf, 0, NULL), RL_E_BATCH_SHORT);
    cr_assert_eq(batch_header_decode(buf, RL_BATCH_HEADER_SIZE, &h), 0, "header alone is fine");
    cr_assert_eq(batch_validate(buf, len - 1, NULL), RL_E_BATCH_SHORT);
    cr_assert_eq(batch_validate(buf, len, NULL), 0);
    cr_assert_eq(batch_validate(buf, len + 100, NULL), 0, "trailing bytes are the next batch");
}

/* Any magic but 2 is BATCH_MAGIC. */
Test(batch, reject_magic)
{
    uint8_t buf[4096];
    size_t len = good_batch(buf, sizeof(buf));
    buf[BATCH_OFF_MAGIC] = 1;
    cr_assert_eq(batch_validate(buf, len, NULL), RL_E_BATCH_MAGIC);
    buf[BATCH_OFF_MAGIC] = 0xff;
    struct batch_header h;
    cr_assert_eq(batch_header_decode(buf, len, &h), RL_E_BATCH_MAGIC);
}

/* batch_len below the header size or above RL_BATCH_MAX_BYTES is BATCH_LENGTH. */
Test(batch, reject_length)
{
    uint8_t buf[4096];
    size_t len = good_batch(buf, sizeof(buf));
    struct batch_header h;
    put32(buf + BATCH_OFF_BATCH_LEN, RL_BATCH_HEADER_SIZE - 1);
    cr_assert_eq(batch_validate(buf, len, NULL), RL_E_BATCH_LENGTH);
    put32(buf + BATCH_OFF_BATCH_LEN, 0);
    cr_assert_eq(batch_header_decode(buf, len, &h), RL_E_BATCH_LENGTH);
    put32(buf + BATCH_OFF_BATCH_LEN, RL_BATCH_MAX_BYTES + 1);
    cr_assert_eq(batch_validate(buf, len, NULL), RL_E_BATCH_LENGTH);
    put32(buf + BATCH_OFF_BATCH_LEN, UINT32_MAX);
    cr_assert_eq(batch_validate(buf, len, NULL), RL_E_BATCH_LENGTH);
    /* A plausible but wrong length moves the checksummed range: the checksum catches it. */
    put32(buf + BATCH_OFF_BATCH_LEN, (uint32_t)len - 1);
    cr_assert_eq(batch_validate(buf, len, NULL), RL_E_BATCH_CHECKSUM);
}

/* A header count of 0, above the maximum, or disagreeing with last_offset_delta is BATCH_COUNT. */
Test(batch, reject_header_count)
{
    uint8_t buf[4096];
    size_t len = good_batch(buf, sizeof(buf));
    put32(buf + BATCH_OFF_RECORD_COUNT, 0);
    put32(buf + BATCH_OFF_LAST_OFFSET_DELTA, UINT32_MAX);
    cr_assert_eq(batch_validate(buf, len, NULL), RL_E_BATCH_COUNT);
    put32(buf + BATCH_OFF_RECORD_COUNT, 3);
    put32(buf + BATCH_OFF_LAST_OFFSET_DELTA, 3);
    cr_assert_eq(batch_validate(buf, len, NULL), RL_E_BATCH_COUNT);
    put32(buf + BATCH_OFF_RECORD_COUNT, RL_BATCH_MAX_RECORDS + 1);
    put32(buf + BATCH_OFF_LAST_OFFSET_DELTA, RL_BATCH_MAX_RECORDS);
    cr_assert_eq(batch_validate(buf, len, NULL), RL_E_BATCH_COUNT);
}

/* Codecs other than none and zstd (gzip, snappy, lz4, unassigned) are BATCH_CODEC. */
Test(batch, reject_codec)
{
    uint8_t buf[4096];
    size_t len = good_batch(buf, sizeof(buf));
    for (uint16_t c = 1; c < 8; c++) {
        if (c == BATCH_CODEC_ZSTD)
            continue;
        buf[BATCH_OFF_FLAGS] = (uint8_t)c;
        cr_assert_eq(batch_validate(buf, len, NULL), RL_E_BATCH_CODEC, "codec %u", c);
    }
}

/* Flipping any single bit in the checksummed range is BATCH_CHECKSUM; flipping bits in the
 * stamped fields is not. */
Test(batch, reject_checksum_every_bit)
{
    uint8_t buf[4096];
    size_t len = good_batch(buf, sizeof(buf));
    for (size_t i = RL_BATCH_CHECKSUM_FROM; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            int rc = batch_validate(buf, len, NULL);
            /* Header fields checked before the checksum may answer first. */
            if (i >= BATCH_OFF_MAGIC + 1 + 2 + 8 || i == BATCH_OFF_FLAGS + 1 ||
                (i == BATCH_OFF_FLAGS && bit >= 3))
                cr_assert_eq(rc, RL_E_BATCH_CHECKSUM, "byte %zu bit %d", i, bit);
            else
                cr_assert_neq(rc, 0, "byte %zu bit %d", i, bit);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    for (size_t i = BATCH_OFF_CHECKSUM; i < BATCH_OFF_CHECKSUM + 8; i++) {
        buf[i] ^= 0x10;
        cr_assert_eq(batch_validate(buf, len, NULL), RL_E_BATCH_CHECKSUM);
        buf[i] ^= 0x10;
    }
    cr_assert_eq(batch_validate(buf, len, NULL), 0);
}

/* zstd-flagged garbage, and a valid frame bigger than the reader's scratch, are
 * BATCH_DECOMPRESS (the checksum is right, so only decompression can tell). */
Test(batch, reject_decompress)
{
    uint8_t garbage[64];
    fill_random(garbage, sizeof(garbage), 3);
    uint8_t buf[4096];
    size_t len = make_raw(buf, garbage, sizeof(garbage), 1, BATCH_CODEC_ZSTD);
    struct batch_reader *r = batch_reader_create(MIB);
    cr_assert_eq(batch_validate(buf, len, NULL), 0, "validate never decompresses");
    cr_assert_eq(batch_reader_open(r, buf, len, NULL), RL_E_BATCH_DECOMPRESS);
    struct batch_record rec;
    cr_assert_eq(batch_reader_next(r, &rec), RL_E_BATCH_DECOMPRESS, "error is sticky");

    static uint8_t val[64 * 1024];
    memset(val, 'z', sizeof(val));
    struct batch_builder *b = batch_builder_create(128 * 1024, BATCH_CODEC_ZSTD, 1);
    struct batch_record_in in = {.value = val, .value_len = sizeof(val)};
    cr_assert_eq(batch_builder_add(b, &in), 0);
    const uint8_t *out;
    int blen = batch_builder_finish(b, &out);
    struct batch_reader *small = batch_reader_create(1024);
    cr_assert_eq(batch_reader_open(small, out, (size_t)blen, NULL), RL_E_BATCH_DECOMPRESS);
    cr_assert_eq(batch_reader_open(r, out, (size_t)blen, NULL), 0);
    /* A truncated frame (checksum fixed up) fails too. */
    memcpy(buf, out, (size_t)blen);
    put32(buf + BATCH_OFF_BATCH_LEN, (uint32_t)blen - 3);
    fix_checksum(buf);
    cr_assert_eq(batch_reader_open(r, buf, (size_t)blen - 3, NULL), RL_E_BATCH_DECOMPRESS);
    batch_builder_destroy(b);
    batch_reader_destroy(small);
    batch_reader_destroy(r);
}

/* A varint with too many bytes or overflowing bits is BATCH_VARINT, wherever it sits. */
Test(batch, reject_varint)
{
    /* record length: 6 continuation bytes */
    const uint8_t s1[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 0, 0, 1, 1, 0};
    cr_assert_eq(deep_raw(s1, sizeof(s1), 1), RL_E_BATCH_VARINT);
    /* offset delta overflows 32 bits */
    const uint8_t s2[] = {0x18, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x01, 0x01, 0x00,
                          0, 0, 0};
    cr_assert_eq(deep_raw(s2, sizeof(s2), 1), RL_E_BATCH_VARINT);
    /* timestamp delta: 11 bytes */
    const uint8_t s3[] = {0x1e, 0x00, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                          0x00, 0x00, 0x01, 0x01, 0x00};
    cr_assert_eq(deep_raw(s3, sizeof(s3), 1), RL_E_BATCH_VARINT);
    /* the record length varint runs off the end of the section */
    const uint8_t s4[] = {0x0c, 0, 0, 0, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(deep_raw(s4, sizeof(s4), 2), RL_E_BATCH_VARINT);
}

/* Lengths that exceed the record, negative lengths, a null header key, a record length too
 * small for its fields, and leftover bytes inside a record are BATCH_RECORD. */
Test(batch, reject_record_structure)
{
    /* value length 10 in a record that has 1 byte left */
    const uint8_t s1[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x14, 'x', 0x00};
    cr_assert_eq(deep_raw(s1, 8, 1), RL_E_BATCH_RECORD);
    /* key length -2 */
    const uint8_t s2[] = {0x0c, 0x00, 0x00, 0x00, 0x03, 0x01, 0x00};
    cr_assert_eq(deep_raw(s2, sizeof(s2), 1), RL_E_BATCH_RECORD);
    /* record length larger than the section */
    const uint8_t s3[] = {0x40, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00};
    cr_assert_eq(deep_raw(s3, sizeof(s3), 1), RL_E_BATCH_RECORD);
    /* record length 6 but one extra byte inside the record before the next */
    const uint8_t s4[] = {0x0e, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00};
    cr_assert_eq(deep_raw(s4, sizeof(s4), 1), RL_E_BATCH_RECORD);
    /* one header whose key is null */
    const uint8_t s5[] = {0x10, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x01, 0x01};
    cr_assert_eq(deep_raw(s5, sizeof(s5), 1), RL_E_BATCH_RECORD);
    /* header count larger than the bytes could hold */
    const uint8_t s6[] = {0x0e, 0x00, 0x00, 0x00, 0x01, 0x01, 0x10, 0x00};
    cr_assert_eq(deep_raw(s6, sizeof(s6), 1), RL_E_BATCH_RECORD);
    /* record length 2: too small for its fields */
    const uint8_t s7[] = {0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    cr_assert_eq(deep_raw(s7, sizeof(s7), 1), RL_E_BATCH_RECORD);
    /* the header-count varint is cut by the record's end (fine if read past it) */
    const uint8_t s8[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x80, 0x01};
    cr_assert_eq(deep_raw(s8, sizeof(s8), 1), RL_E_BATCH_RECORD);
}

/* Fewer records than the header says, more, or a count the bytes cannot hold: BATCH_COUNT. */
Test(batch, reject_count_mismatch)
{
    const uint8_t one[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00};
    cr_assert_eq(deep_raw(one, sizeof(one), 1), 0, "the fixture itself is valid");
    const uint8_t two[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00,
                           0x0c, 0x00, 0x00, 0x02, 0x01, 0x01, 0x00};
    cr_assert_eq(deep_raw(two, sizeof(two), 2), 0);
    cr_assert_eq(deep_raw(two, sizeof(two), 1), RL_E_BATCH_COUNT, "a record too many");
    /* 2 records in 14 bytes cannot be 3: caught at open (3 * 7 > 14) */
    cr_assert_eq(deep_raw(two, sizeof(two), 3), RL_E_BATCH_COUNT);
    /* 2 records in 21 bytes (the second has a 7-byte value), header says 3: the section ends
     * before the third record */
    const uint8_t long2[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00,
                             0x1a, 0x00, 0x00, 0x02, 0x01, 0x0e, 'a', 'b', 'c', 'd', 'e', 'f',
                             'g', 0x00};
    cr_assert_eq(deep_raw(long2, sizeof(long2), 2), 0);
    cr_assert_eq(deep_raw(long2, sizeof(long2), 3), RL_E_BATCH_COUNT);
    /* trailing bytes after the last record */
    uint8_t extra[10];
    memcpy(extra, one, 7);
    memset(extra + 7, 0, 3);
    cr_assert_eq(deep_raw(extra, sizeof(extra), 1), RL_E_BATCH_COUNT);
    /* through the reader API: records come out, then the error */
    uint8_t buf[256];
    size_t len = make_raw(buf, long2, sizeof(long2), 3, BATCH_CODEC_NONE);
    struct batch_reader *r = batch_reader_create(4096);
    struct batch_record rec;
    cr_assert_eq(batch_reader_open(r, buf, len, NULL), 0);
    cr_assert_eq(batch_reader_next(r, &rec), 1);
    cr_assert_eq(batch_reader_next(r, &rec), 1);
    assert_bytes(rec.value, rec.value_len, "abcdefg", 7, "value");
    cr_assert_eq(batch_reader_next(r, &rec), RL_E_BATCH_COUNT);
    cr_assert_eq(batch_reader_next(r, &rec), RL_E_BATCH_COUNT, "sticky");
    batch_reader_destroy(r);
}

/* Offset deltas must run 0, 1, 2, ...: a gap, a repeat, or a wrong start is BATCH_OFFSETS. */
Test(batch, reject_offsets)
{
    const uint8_t wrong_start[] = {0x0c, 0x00, 0x00, 0x02, 0x01, 0x01, 0x00};
    cr_assert_eq(deep_raw(wrong_start, sizeof(wrong_start), 1), RL_E_BATCH_OFFSETS);
    const uint8_t repeat[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00,
                              0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00};
    cr_assert_eq(deep_raw(repeat, sizeof(repeat), 2), RL_E_BATCH_OFFSETS);
    const uint8_t negative[] = {0x0c, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00};
    cr_assert_eq(deep_raw(negative, sizeof(negative), 1), RL_E_BATCH_OFFSETS);
}

/* A reader used before any open, or after a failed open, reports an error, never records. */
Test(batch, reader_without_open_fails)
{
    struct batch_reader *r = batch_reader_create(4096);
    struct batch_record rec;
    cr_assert_lt(batch_reader_next(r, &rec), 0);
    uint8_t junk[10] = {0};
    cr_assert_eq(batch_reader_open(r, junk, sizeof(junk), NULL), RL_E_BATCH_SHORT);
    cr_assert_eq(batch_reader_next(r, &rec), RL_E_BATCH_SHORT);
    batch_reader_destroy(r);
}

/* --- seeded random round trip ---------------------------------------------------------------- */

struct rnd {
    uint64_t s;
};

static uint32_t rnd_next(struct rnd *r)
{
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(r->s >> 33);
}

/* Random records (sizes from 0 to 20 KiB, null and empty keys/values, 0-4 headers, random
 * timestamps) through random builders (both codecs, random batch limits), each batch read
 * back and compared; the seed is printed and RINGLOG_SEED replays it. */
Test(batch, random_round_trip)
{
    unsigned seed = (unsigned)time(NULL);
    if (getenv("RINGLOG_SEED"))
        seed = (unsigned)strtoul(getenv("RINGLOG_SEED"), NULL, 10);
    printf("batch.random_round_trip seed %u (RINGLOG_SEED=%u to replay)\n", seed, seed);
    fflush(stdout);
    struct rnd rg = {seed};
    enum { MAXREC = 64, POOL = 64 * 1024 };
    static uint8_t pool[POOL];
    fill_random(pool, POOL, seed);
    memset(pool, 'a', POOL / 2); /* half compressible */
    struct batch_reader *r = batch_reader_create(MIB);
    static struct batch_record_in recs[MAXREC];
    static struct batch_record_header hdrs[MAXREC][4];
    for (int round = 0; round < 200; round++) {
        enum batch_codec codec = (rnd_next(&rg) & 1) ? BATCH_CODEC_ZSTD : BATCH_CODEC_NONE;
        size_t cap = 256 + rnd_next(&rg) % (256 * 1024);
        struct batch_builder *b = batch_builder_create(cap, codec, (int)(rnd_next(&rg) % 4));
        cr_assert_not_null(b, "seed %u", seed);
        uint32_t n = 0;
        int64_t base_ts = (int64_t)rnd_next(&rg) * 1000;
        while (n < MAXREC) {
            struct batch_record_in *in = &recs[n];
            uint32_t kind = rnd_next(&rg);
            size_t klen = rnd_next(&rg) % 32, vlen = rnd_next(&rg) % (20 * 1024);
            in->key = (kind & 3) == 0 ? NULL : pool + rnd_next(&rg) % (POOL - 32);
            in->key_len = in->key ? klen : 0;
            in->value = (kind & 12) == 0 ? NULL : pool + rnd_next(&rg) % (POOL - 20 * 1024);
            in->value_len = in->value ? vlen : 0;
            in->timestamp = base_ts + (int64_t)(rnd_next(&rg) % 100000) - 50000;
            in->header_count = (kind >> 4) % 5;
            in->headers = in->header_count ? hdrs[n] : NULL;
            for (uint32_t j = 0; j < in->header_count; j++) {
                hdrs[n][j].key = pool + rnd_next(&rg) % 1000;
                hdrs[n][j].key_len = (int32_t)(rnd_next(&rg) % 10);
                int null = rnd_next(&rg) % 3 == 0;
                hdrs[n][j].value = null ? NULL : pool + rnd_next(&rg) % 1000;
                hdrs[n][j].value_len = null ? -1 : (int32_t)(rnd_next(&rg) % 50);
            }
            int rc = batch_builder_add(b, in);
            if (rc == RL_E_FULL || rc == RL_E_BATCH_TOO_LARGE)
                break;
            cr_assert_eq(rc, 0, "seed %u round %d", seed, round);
            n++;
        }
        const uint8_t *out;
        int len = batch_builder_finish(b, &out);
        if (n == 0) {
            cr_assert_eq(len, RL_E_BATCH_EMPTY);
        } else {
            cr_assert_gt(len, 0, "seed %u round %d", seed, round);
            uint64_t base = rnd_next(&rg);
            batch_stamp((uint8_t *)out, base, 1);
            expect_records(r, out, (size_t)len, recs, n, base);
        }
        batch_builder_destroy(b);
    }
    batch_reader_destroy(r);
}

/* Seeded single-byte damage inside the records section (checksum fixed up, so the parser and
 * zstd see it) of valid batches of both codecs: every result is 0 or a batch code, iteration
 * stops within record_count + 1 steps, and ASan (make test-asan) sees no bad access. */
Test(batch, damaged_records_fail_cleanly)
{
    unsigned seed = (unsigned)time(NULL) ^ 0x5bd1e995u;
    if (getenv("RINGLOG_SEED"))
        seed = (unsigned)strtoul(getenv("RINGLOG_SEED"), NULL, 10);
    printf("batch.damaged_records_fail_cleanly seed %u (RINGLOG_SEED=%u to replay)\n", seed, seed);
    fflush(stdout);
    struct rnd rg = {seed};
    struct batch_reader *r = batch_reader_create(MIB);
    static uint8_t val[300];
    for (size_t i = 0; i < sizeof(val); i++)
        val[i] = (uint8_t)(i % 11);
    static const struct batch_record_header hd = {.key = (const uint8_t *)"h", .key_len = 1,
                                                  .value = (const uint8_t *)"v", .value_len = 1};
    for (int codec = 0; codec < 2; codec++) {
        struct batch_builder *b =
            batch_builder_create(64 * 1024, codec ? BATCH_CODEC_ZSTD : BATCH_CODEC_NONE, 1);
        for (int i = 0; i < 20; i++) {
            struct batch_record_in in = {.key = "key", .key_len = 3, .value = val,
                                         .value_len = (size_t)(i * 13) % sizeof(val),
                                         .timestamp = 1000 + i, .headers = &hd,
                                         .header_count = (uint32_t)(i % 2)};
            cr_assert_eq(batch_builder_add(b, &in), 0);
        }
        const uint8_t *out;
        int len = batch_builder_finish(b, &out);
        cr_assert_gt(len, RL_BATCH_HEADER_SIZE);
        uint8_t *copy = malloc((size_t)len);
        int failures = 0;
        for (int round = 0; round < 3000; round++) {
            memcpy(copy, out, (size_t)len);
            uint32_t section = (uint32_t)len - RL_BATCH_HEADER_SIZE;
            size_t at = RL_BATCH_HEADER_SIZE + rnd_next(&rg) % section;
            copy[at] = (uint8_t)rnd_next(&rg);
            fix_checksum(copy);
            int rc = batch_reader_open(r, copy, (size_t)len, NULL);
            struct batch_record rec;
            uint32_t steps = 0;
            if (rc == 0)
                while ((rc = batch_reader_next(r, &rec)) == 1)
                    cr_assert_leq(++steps, 20, "seed %u", seed);
            cr_assert(rc == 0 || (rc <= RL_E_BATCH_SHORT && rc >= RL_E_BATCH_OFFSETS),
                      "seed %u round %d: code %d", seed, round, rc);
            failures += rc != 0;
        }
        cr_assert_gt(failures, 0, "damage is detected at least sometimes");
        free(copy);
        batch_builder_destroy(b);
    }
    batch_reader_destroy(r);
}
