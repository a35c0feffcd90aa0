/* batch: the codec's round trips, builder limits, every rejection path with its exact code,
 * full validation (what a broker acknowledges), and golden byte vectors of the format. */
#include <criterion/criterion.h>
#include <endian.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>
#include <zstd.h>

#include "common/batch.h"
#include "common/err.h"
#include "common/varint.h"
#include "tests/lib/tl_seed.h"

#define MIB (1024u * 1024u)
/* A broker clock for full validation: 2023-11-14, near the timestamps the tests build. */
#define NOW_MS INT64_C(1700000000000)

/* The broker's defaults around NOW_MS. */
static const struct batch_limits default_limits = {
    .now_ms = NOW_MS,
    .after_max_ms = RL_BATCH_TIMESTAMP_AFTER_MAX_MS,
    .before_max_ms = RL_BATCH_TIMESTAMP_BEFORE_MAX_MS,
};

/* True for the batch codec's own codes (the -51xx group of err.h). */
static int is_batch_code(int rc)
{
    return rc <= RL_E_BATCH_SHORT && rc > RL_E_BATCH_SHORT - 100;
}

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

/* zstd gives up on incompressible records: after a batch of random bytes, the next
 * BATCH_ZSTD_GIVE_UP batches go out uncompressed even when they would shrink (so zstd was not
 * run on them), and the one after is compressed again; every batch reads back. */
Test(batch, zstd_gives_up_after_incompressible_then_retries)
{
    static uint8_t rnd[8192], text[8192];
    fill_random(rnd, sizeof(rnd), 11);
    memset(text, 'x', sizeof(text));
    struct batch_builder *b = batch_builder_create(64 * 1024, BATCH_CODEC_ZSTD, 3);
    struct batch_reader *r = batch_reader_create(64 * 1024);
    cr_assert_not_null(b);
    for (int i = 0; i <= BATCH_ZSTD_GIVE_UP + 1; i++) {
        struct batch_record_in in = {.key = "k", .key_len = 1, .value = i == 0 ? rnd : text,
                                     .value_len = sizeof(text), .timestamp = 5};
        batch_builder_reset(b, -1, -1, -1);
        cr_assert_eq(batch_builder_add(b, &in), 0);
        const uint8_t *out;
        int len = batch_builder_finish(b, &out);
        cr_assert_gt(len, 0);
        struct batch_header h;
        cr_assert_eq(batch_header_decode(out, (size_t)len, &h), 0);
        int want = i == BATCH_ZSTD_GIVE_UP + 1 ? BATCH_CODEC_ZSTD : BATCH_CODEC_NONE;
        cr_assert_eq(h.flags & BATCH_FLAG_CODEC_MASK, want, "batch %d: codec %d, expected %d",
                     i, h.flags & BATCH_FLAG_CODEC_MASK, want);
        expect_records(r, out, (size_t)len, &in, 1, 0);
    }
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

/* zstd-flagged garbage is BATCH_DECOMPRESS, a valid frame bigger than the reader's scratch
 * BATCH_DECOMPRESS_LIMIT (the checksum is right, so only decompression can tell). */
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
    cr_assert_eq(batch_reader_open(small, out, (size_t)blen, NULL), RL_E_BATCH_DECOMPRESS_LIMIT);
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

/* Lengths that exceed the record, negative lengths, a record length too small for its fields,
 * and leftover bytes inside a record are BATCH_RECORD; a null header key or a header count the
 * record cannot hold are BATCH_HEADERS. */
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
    cr_assert_eq(deep_raw(s5, sizeof(s5), 1), RL_E_BATCH_HEADERS);
    /* header count larger than the bytes could hold */
    const uint8_t s6[] = {0x0e, 0x00, 0x00, 0x00, 0x01, 0x01, 0x10, 0x00};
    cr_assert_eq(deep_raw(s6, sizeof(s6), 1), RL_E_BATCH_HEADERS);
    /* record length 2: too small for its fields */
    const uint8_t s7[] = {0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    cr_assert_eq(deep_raw(s7, sizeof(s7), 1), RL_E_BATCH_RECORD);
    /* the header-count varint is cut by the record's end (fine if read past it) */
    const uint8_t s8[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x80, 0x01};
    cr_assert_eq(deep_raw(s8, sizeof(s8), 1), RL_E_BATCH_RECORD);
    /* a key one byte longer than what follows its length varint in the record: a bound that
     * forgot the varint's own byte would accept it and parse on past the record (into the
     * over-long varint placed there, answering BATCH_VARINT) */
    const uint8_t s9[] = {0x0c, 0x00, 0x00, 0x00, 0x06, 'a', 'b',
                          0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80};
    cr_assert_eq(deep_raw(s9, sizeof(s9), 1), RL_E_BATCH_RECORD);
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
    return (uint32_t)(tl_rand(&r->s) >> 32);
}

/* Random records (sizes from 0 to 20 KiB, null and empty keys/values, 0-4 headers, random
 * timestamps) through random builders (both codecs, random batch limits), each batch read
 * back and compared; the seed is printed and RINGLOG_SEED replays it (tests/lib/tl_seed.h). */
Test(batch, random_round_trip)
{
    uint64_t seed = tl_seed("batch.random_round_trip");
    struct rnd rg = {tl_rand_init(seed, 1)};
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
        cr_assert_not_null(b, "seed %" PRIu64, seed);
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
            cr_assert_eq(rc, 0, "seed %" PRIu64 " round %d", seed, round);
            n++;
        }
        const uint8_t *out;
        int len = batch_builder_finish(b, &out);
        if (n == 0) {
            cr_assert_eq(len, RL_E_BATCH_EMPTY);
        } else {
            cr_assert_gt(len, 0, "seed %" PRIu64 " round %d", seed, round);
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
 * stops within record_count + 1 steps, and ASan (make test-asan) sees no bad access. And the
 * property a broker relies on: whatever full validation accepts, a reader reads to the end;
 * whatever the reader refuses, full validation refuses with the same code. */
Test(batch, damaged_records_fail_cleanly)
{
    uint64_t seed = tl_seed("batch.damaged_records_fail_cleanly");
    struct rnd rg = {tl_rand_init(seed, 2)};
    struct batch_reader *r = batch_reader_create(MIB);
    struct batch_reader *check = batch_reader_create(MIB);
    static const struct batch_limits open_limits = {.now_ms = NOW_MS, .after_max_ms = INT64_MAX,
                                                    .before_max_ms = INT64_MAX};
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
                    cr_assert_leq(++steps, 20, "seed %" PRIu64, seed);
            cr_assert(rc == 0 || is_batch_code(rc), "seed %" PRIu64 " round %d: code %d", seed,
                      round, rc);
            int full = batch_validate_full(check, copy, (size_t)len, &open_limits, NULL);
            if (full == 0)
                cr_assert(rc == 0 && steps == 20, "seed %" PRIu64 " round %d: validated, but "
                          "the reader stopped at %u with %d", seed, round, steps, rc);
            if (rc != 0)
                cr_assert_eq(full, rc, "seed %" PRIu64 " round %d", seed, round);
            failures += rc != 0;
        }
        cr_assert_gt(failures, 0, "damage is detected at least sometimes");
        free(copy);
        batch_builder_destroy(b);
    }
    batch_reader_destroy(check);
    batch_reader_destroy(r);
}

/* --- full validation -------------------------------------------------------------------------- */

/* Wraps a hand-made records section in a good header with the given timestamps and runs full
 * validation with lim (default_limits when NULL). */
static int full_raw(const uint8_t *section, size_t section_len, uint32_t count, int64_t first_ts,
                    int64_t max_ts, const struct batch_limits *lim)
{
    static uint8_t buf[4096];
    cr_assert_leq(section_len + RL_BATCH_HEADER_SIZE, sizeof(buf));
    size_t len = make_raw(buf, section, section_len, count, BATCH_CODEC_NONE);
    put64(buf + BATCH_OFF_FIRST_TIMESTAMP, (uint64_t)first_ts);
    put64(buf + BATCH_OFF_MAX_TIMESTAMP, (uint64_t)max_ts);
    fix_checksum(buf);
    struct batch_reader *r = batch_reader_create(MIB);
    cr_assert_not_null(r);
    int rc = batch_validate_full(r, buf, len, lim ? lim : &default_limits, NULL);
    batch_reader_destroy(r);
    return rc;
}

/* Builds one batch of recs[0..n) with codec into a malloc'd buffer of exactly its length. */
static size_t build_batch(enum batch_codec codec, const struct batch_record_in *recs, uint32_t n,
                          uint8_t **out)
{
    struct batch_builder *b = batch_builder_create(4 * MIB, codec, 1);
    cr_assert_not_null(b);
    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(batch_builder_add(b, &recs[i]), 0, "add %u", i);
    const uint8_t *p;
    int len = batch_builder_finish(b, &p);
    cr_assert_gt(len, 0);
    *out = malloc((size_t)len);
    cr_assert_not_null(*out);
    memcpy(*out, p, (size_t)len);
    batch_builder_destroy(b);
    return (size_t)len;
}

/* Full validation of one record with timestamp ts (a builder batch). */
static int full_one(int64_t ts, const struct batch_limits *lim)
{
    struct batch_record_in in = {.key = "k", .key_len = 1, .value = "v", .value_len = 1,
                                 .timestamp = ts};
    uint8_t *batch;
    size_t len = build_batch(BATCH_CODEC_NONE, &in, 1, &batch);
    struct batch_reader *r = batch_reader_create(MIB);
    int rc = batch_validate_full(r, batch, len, lim, NULL);
    batch_reader_destroy(r);
    free(batch);
    return rc;
}

/* Whatever the builder makes (keys, nulls, headers, timestamps out of order within the bounds),
 * both codecs, stamped or not, passes full validation; the header comes back and the detail is
 * empty. */
Test(full, accepts_what_the_builder_makes)
{
    static const struct batch_record_header hd[] = {
        {.key = (const uint8_t *)"trace", .key_len = 5, .value = NULL, .value_len = -1},
        {.key = (const uint8_t *)"", .key_len = 0, .value = (const uint8_t *)"x", .value_len = 1},
    };
    static char big[5000];
    memset(big, 'b', sizeof(big));
    const struct batch_record_in recs[] = {
        {.key = "a", .key_len = 1, .value = big, .value_len = sizeof(big), .timestamp = NOW_MS},
        {.key = NULL, .value = NULL, .timestamp = NOW_MS - 86400000, .headers = hd,
         .header_count = 2},
        {.key = "", .key_len = 0, .value = "", .value_len = 0, .timestamp = NOW_MS + 3600000},
        {.key = "z", .key_len = 1, .value = "v", .value_len = 1, .timestamp = 0},
    };
    struct batch_reader *r = batch_reader_create(RL_BATCH_MAX_BYTES);
    for (int codec = BATCH_CODEC_NONE; codec <= BATCH_CODEC_ZSTD; codec += BATCH_CODEC_ZSTD) {
        uint8_t *batch;
        size_t len = build_batch((enum batch_codec)codec, recs, 4, &batch);
        struct batch_header h;
        cr_assert_eq(batch_validate_full(r, batch, len, &default_limits, &h), 0, "codec %d: %s",
                     codec, batch_reader_detail(r));
        cr_assert_str_empty(batch_reader_detail(r));
        cr_assert_eq(h.record_count, 4);
        cr_assert_eq(h.max_timestamp, NOW_MS + 3600000);
        cr_assert_eq(h.flags & BATCH_FLAG_CODEC_MASK, codec, "zstd was really used");
        batch_stamp(batch, 1u << 20, 9);
        cr_assert_eq(batch_validate_full(r, batch, len, &default_limits, NULL), 0);
        free(batch);
    }
    batch_reader_destroy(r);
}

/* Any flag but the codec bits (log-append time, control, reserved) is BATCH_FLAGS, though the
 * reader (which must read what older brokers stored) still accepts the batch. */
Test(full, rejects_flags)
{
    uint8_t buf[4096];
    size_t len = good_batch(buf, sizeof(buf));
    struct batch_reader *r = batch_reader_create(MIB);
    cr_assert_eq(batch_validate_full(r, buf, len, &default_limits, NULL), 0);
    for (int bit = 3; bit < 16; bit++) {
        uint16_t flags = htole16((uint16_t)(1u << bit));
        memcpy(buf + BATCH_OFF_FLAGS, &flags, 2);
        fix_checksum(buf);
        cr_assert_eq(batch_validate_deep(r, buf, len), 0, "bit %d", bit);
        cr_assert_eq(batch_validate_full(r, buf, len, &default_limits, NULL), RL_E_BATCH_FLAGS,
                     "bit %d", bit);
        cr_assert(strstr(batch_reader_detail(r), "flags 0x") != NULL);
    }
    batch_reader_destroy(r);
}

/* A record attributes byte other than 0 is BATCH_RECORD_ATTRIBUTES. */
Test(full, rejects_record_attributes)
{
    const uint8_t ok[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00};
    cr_assert_eq(full_raw(ok, sizeof(ok), 1, 5, 5, NULL), 0, "the fixture itself is valid");
    const uint8_t bad[] = {0x0c, 0x80, 0x00, 0x00, 0x01, 0x01, 0x00};
    cr_assert_eq(deep_raw(bad, sizeof(bad), 1), 0, "readers ignore attributes");
    cr_assert_eq(full_raw(bad, sizeof(bad), 1, 5, 5, NULL), RL_E_BATCH_RECORD_ATTRIBUTES);
}

/* first_timestamp must be record 0's timestamp (delta 0): BATCH_FIRST_TIMESTAMP otherwise. */
Test(full, rejects_first_timestamp)
{
    /* record 0 with timestamp delta +2 */
    const uint8_t s[] = {0x0c, 0x00, 0x04, 0x00, 0x01, 0x01, 0x00};
    cr_assert_eq(full_raw(s, sizeof(s), 1, 100, 102, NULL), RL_E_BATCH_FIRST_TIMESTAMP);
    /* record 0 delta 0, record 1 delta -3: fine, first is not the minimum */
    const uint8_t t[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00,
                         0x0c, 0x00, 0x05, 0x02, 0x01, 0x01, 0x00};
    cr_assert_eq(full_raw(t, sizeof(t), 2, 100, 100, NULL), 0);
}

/* max_timestamp must equal the largest record timestamp: larger (INT64_MAX, the value that
 * exempted a segment from retention), smaller, or the first instead of the largest are
 * BATCH_MAX_TIMESTAMP. */
Test(full, rejects_max_timestamp)
{
    uint8_t buf[4096];
    size_t len = good_batch(buf, sizeof(buf)); /* timestamps 1000, 1001, 1002 */
    struct batch_reader *r = batch_reader_create(MIB);
    cr_assert_eq(batch_validate_full(r, buf, len, &default_limits, NULL), 0);
    const int64_t wrong[] = {INT64_MAX, 1003, 1001, 1000, 0, -1, INT64_MIN};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        put64(buf + BATCH_OFF_MAX_TIMESTAMP, (uint64_t)wrong[i]);
        fix_checksum(buf);
        cr_assert_eq(batch_validate_deep(r, buf, len), 0);
        cr_assert_eq(batch_validate_full(r, buf, len, &default_limits, NULL),
                     RL_E_BATCH_MAX_TIMESTAMP, "max %lld", (long long)wrong[i]);
        cr_assert(strstr(batch_reader_detail(r), "1002 (record 2)") != NULL, "%s",
                  batch_reader_detail(r));
    }
    batch_reader_destroy(r);
}

/* Negative timestamps and first_timestamp + delta overflowing int64 are BATCH_TIMESTAMP_RANGE. */
Test(full, rejects_timestamp_range)
{
    cr_assert_eq(full_one(-1, &default_limits), RL_E_BATCH_TIMESTAMP_RANGE);
    cr_assert_eq(full_one(INT64_MIN, &default_limits), RL_E_BATCH_TIMESTAMP_RANGE);
    cr_assert_eq(full_one(0, &default_limits), 0, "1970 is allowed by default");
    /* record 1's delta +5 from INT64_MAX - 1 overflows */
    const uint8_t s[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00,
                         0x0c, 0x00, 0x0a, 0x02, 0x01, 0x01, 0x00};
    static const struct batch_limits open = {.now_ms = NOW_MS, .after_max_ms = INT64_MAX,
                                             .before_max_ms = INT64_MAX};
    cr_assert_eq(full_raw(s, sizeof(s), 2, INT64_MAX - 1, INT64_MAX - 1, &open),
                 RL_E_BATCH_TIMESTAMP_RANGE);
    /* and a negative delta below zero */
    const uint8_t t[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00,
                         0x0c, 0x00, 0x0b, 0x02, 0x01, 0x01, 0x00};
    cr_assert_eq(full_raw(t, sizeof(t), 2, 3, 3, &open), RL_E_BATCH_TIMESTAMP_RANGE);
}

/* Timestamps are bounded by the broker's clock: exactly after_max ahead (before_max behind) is
 * accepted, one more millisecond is BATCH_TIMESTAMP_FUTURE (_PAST); a record at INT64_MAX is
 * refused with the defaults; INT64_MAX bounds mean no bound. */
Test(full, bounds_timestamps_by_the_clock)
{
    struct batch_limits lim = default_limits;
    cr_assert_eq(full_one(NOW_MS + RL_BATCH_TIMESTAMP_AFTER_MAX_MS, &lim), 0);
    cr_assert_eq(full_one(NOW_MS + RL_BATCH_TIMESTAMP_AFTER_MAX_MS + 1, &lim),
                 RL_E_BATCH_TIMESTAMP_FUTURE);
    cr_assert_eq(full_one(INT64_MAX, &lim), RL_E_BATCH_TIMESTAMP_FUTURE);
    cr_assert_eq(full_one(NOW_MS * 1000000, &lim), RL_E_BATCH_TIMESTAMP_FUTURE, "nanoseconds");
    cr_assert_eq(full_one(0, &lim), 0);
    lim.before_max_ms = 1000;
    cr_assert_eq(full_one(NOW_MS - 1000, &lim), 0);
    cr_assert_eq(full_one(NOW_MS - 1001, &lim), RL_E_BATCH_TIMESTAMP_PAST);
    cr_assert_eq(full_one(0, &lim), RL_E_BATCH_TIMESTAMP_PAST);
    lim.after_max_ms = 0;
    cr_assert_eq(full_one(NOW_MS, &lim), 0);
    cr_assert_eq(full_one(NOW_MS + 1, &lim), RL_E_BATCH_TIMESTAMP_FUTURE);
    lim.after_max_ms = INT64_MAX;
    cr_assert_eq(full_one(INT64_MAX, &lim), 0, "no bound");

    /* The offender is named even in the middle of a batch. */
    const struct batch_record_in recs[] = {
        {.value = "a", .value_len = 1, .timestamp = NOW_MS},
        {.value = "b", .value_len = 1, .timestamp = NOW_MS + 7200000},
        {.value = "c", .value_len = 1, .timestamp = NOW_MS + 1},
    };
    uint8_t *batch;
    size_t len = build_batch(BATCH_CODEC_NONE, recs, 3, &batch);
    struct batch_reader *r = batch_reader_create(MIB);
    cr_assert_eq(batch_validate_full(r, batch, len, &default_limits, NULL),
                 RL_E_BATCH_TIMESTAMP_FUTURE);
    cr_assert(strstr(batch_reader_detail(r), "record 1 has timestamp 1700007200000, 7200000 ms "
                                             "after") != NULL, "%s", batch_reader_detail(r));
    batch_reader_destroy(r);
    free(batch);
}

/* zstd frames that expand past the reader's scratch (the hard cap) are BATCH_DECOMPRESS_LIMIT,
 * whether the frame declares its size (refused before any work) or not (stopped when the
 * scratch is full); the broker's cap is RL_BATCH_MAX_BYTES. */
Test(full, refuses_decompression_bombs)
{
    size_t zeros_len = 2 * MIB;
    uint8_t *zeros = calloc(1, RL_BATCH_MAX_BYTES + 1);
    size_t cap = ZSTD_compressBound(RL_BATCH_MAX_BYTES + 1);
    uint8_t *batch = malloc(RL_BATCH_HEADER_SIZE + cap);
    cr_assert(zeros && batch);
    struct batch_reader *small = batch_reader_create(MIB);
    struct batch_reader *broker = batch_reader_create(RL_BATCH_MAX_BYTES);
    /* One record whose value is zeros_len zero bytes, compressed with and without a declared
     * content size. */
    size_t body = 4 + varint_size32((int32_t)zeros_len) + zeros_len + 1;
    uint8_t *rec = calloc(1, body + VARINT_MAX_BYTES);
    cr_assert_not_null(rec);
    size_t rlen = varint_write32(rec, (int32_t)body);
    rlen += 3;           /* attributes, timestamp delta, offset delta: all 0 */
    rec[rlen++] = 0x01;  /* null key */
    rlen += varint_write32(rec + rlen, (int32_t)zeros_len);
    rlen += zeros_len;   /* the zero bytes of the value */
    rec[rlen++] = 0x00;  /* no headers */
    for (int declared = 1; declared >= 0; declared--) {
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, declared);
        size_t z = ZSTD_compress2(cctx, batch + RL_BATCH_HEADER_SIZE, cap, rec, rlen);
        cr_assert(!ZSTD_isError(z));
        ZSTD_freeCCtx(cctx);
        memset(batch, 0, RL_BATCH_HEADER_SIZE);
        put32(batch + BATCH_OFF_BATCH_LEN, (uint32_t)(RL_BATCH_HEADER_SIZE + z));
        batch[BATCH_OFF_MAGIC] = RL_BATCH_MAGIC;
        batch[BATCH_OFF_FLAGS] = BATCH_CODEC_ZSTD;
        put32(batch + BATCH_OFF_RECORD_COUNT, 1);
        put64(batch + BATCH_OFF_FIRST_TIMESTAMP, NOW_MS);
        put64(batch + BATCH_OFF_MAX_TIMESTAMP, NOW_MS);
        fix_checksum(batch);
        size_t len = RL_BATCH_HEADER_SIZE + z;
        cr_assert_lt(len, 1024, "a small batch: %zu bytes", len);
        cr_assert_eq(batch_validate_full(small, batch, len, &default_limits, NULL),
                     RL_E_BATCH_DECOMPRESS_LIMIT, "declared %d", declared);
        cr_assert(strstr(batch_reader_detail(small), declared ? "declares" : "more than") != NULL,
                  "%s", batch_reader_detail(small));
        cr_assert_eq(batch_validate_full(broker, batch, len, &default_limits, NULL), 0);
    }
    /* Past the broker's cap: RL_BATCH_MAX_BYTES + 1 zero bytes in a declared frame. */
    size_t z = ZSTD_compress(batch + RL_BATCH_HEADER_SIZE, cap, zeros, RL_BATCH_MAX_BYTES + 1, 1);
    cr_assert(!ZSTD_isError(z));
    put32(batch + BATCH_OFF_BATCH_LEN, (uint32_t)(RL_BATCH_HEADER_SIZE + z));
    fix_checksum(batch);
    cr_assert_eq(batch_validate_full(broker, batch, RL_BATCH_HEADER_SIZE + z, &default_limits,
                                     NULL), RL_E_BATCH_DECOMPRESS_LIMIT);
    batch_reader_destroy(small);
    batch_reader_destroy(broker);
    free(rec);
    free(zeros);
    free(batch);
}

/* The reader's detail names the record and the field, for every kind of failure, and is
 * empty after a good open. */
Test(full, detail_says_where)
{
    struct batch_reader *r = batch_reader_create(4096);
    uint8_t buf[256];
    const uint8_t repeat[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00,
                              0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00};
    size_t len = make_raw(buf, repeat, sizeof(repeat), 2, BATCH_CODEC_NONE);
    cr_assert_eq(batch_validate_deep(r, buf, len), RL_E_BATCH_OFFSETS);
    cr_assert_str_eq(batch_reader_detail(r), "record 1 has offset delta 0 (deltas must run 0, 1, "
                                             "2, ...)");
    const uint8_t badval[] = {0x0c, 0x00, 0x00, 0x00, 0x01, 0x14, 'x'};
    len = make_raw(buf, badval, sizeof(badval), 1, BATCH_CODEC_NONE);
    cr_assert_eq(batch_validate_deep(r, buf, len), RL_E_BATCH_RECORD);
    cr_assert_str_eq(batch_reader_detail(r), "record 0 (byte 0 of the records section): value");
    len = make_raw(buf, repeat, 7, 1, BATCH_CODEC_NONE);
    cr_assert_eq(batch_reader_open(r, buf, len, NULL), 0);
    cr_assert_str_empty(batch_reader_detail(r));
    buf[40] ^= 1;
    cr_assert_eq(batch_validate_deep(r, buf, len), RL_E_BATCH_CHECKSUM);
    cr_assert(strstr(batch_reader_detail(r), "checksum") != NULL);
    cr_assert_eq(batch_validate_deep(r, buf, 10), RL_E_BATCH_SHORT);
    cr_assert_str_eq(batch_reader_detail(r), "10 bytes, fewer than the 65-byte header");
    batch_reader_destroy(r);
}

/* --- golden byte vectors ---------------------------------------------------------------------- */

/* A batch written out byte by byte from the layout in batch.h: base_offset 42, leader_epoch 7,
 * producer 1000 epoch 2 sequence 5, three records:
 *   0: key "k1", value "hello", header "h"="v", timestamp 1700000000000 (delta 0)
 *   1: null key, empty value, timestamp +1000 ms (delta 2000 zigzagged: a two-byte varint)
 *   2: key "k2", null value (a tombstone), timestamp -1 ms
 * The checksum is XXH3-64 of bytes 24..100 (checked against the library in
 * checksum_is_reference_xxh3). */
static const uint8_t golden_plain[100] = {
    0x2a, 0, 0, 0, 0, 0, 0, 0,                      /*  0 base_offset 42 */
    0x64, 0, 0, 0,                                  /*  8 batch_len 100 */
    0x07, 0, 0, 0,                                  /* 12 leader_epoch 7 */
    0x86, 0xf8, 0x2b, 0x29, 0xcd, 0x72, 0x47, 0xe8, /* 16 checksum */
    0x02,                                           /* 24 magic */
    0x00, 0x00,                                     /* 25 flags: codec none */
    0x03, 0, 0, 0,                                  /* 27 record_count 3 */
    0x02, 0, 0, 0,                                  /* 31 last_offset_delta 2 */
    0x00, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0, 0,       /* 35 first_timestamp 1700000000000 */
    0xe8, 0x6b, 0xe5, 0xcf, 0x8b, 0x01, 0, 0,       /* 43 max_timestamp 1700000001000 */
    0xe8, 0x03, 0, 0, 0, 0, 0, 0,                   /* 51 producer_id 1000 */
    0x02, 0x00,                                     /* 59 producer_epoch 2 */
    0x05, 0, 0, 0,                                  /* 61 base_sequence 5 */
    /* 65 record 0: length 17, attributes, ts delta 0, offset delta 0, key len 2, "k1",
     * value len 5, "hello", 1 header: key len 1, "h", value len 1, "v" */
    0x22, 0x00, 0x00, 0x00, 0x04, 'k', '1', 0x0a, 'h', 'e', 'l', 'l', 'o', 0x02, 0x02, 'h', 0x02,
    'v',
    /* 83 record 1: length 7, attributes, ts delta 1000, offset delta 1, null key, value len 0,
     * no headers */
    0x0e, 0x00, 0xd0, 0x0f, 0x02, 0x01, 0x00, 0x00,
    /* 91 record 2: length 8, attributes, ts delta -1, offset delta 2, key len 2, "k2",
     * null value, no headers */
    0x10, 0x00, 0x01, 0x04, 0x04, 'k', '2', 0x01, 0x00,
};

/* The same records in a zstd frame made by hand: magic, a single-segment descriptor with a
 * one-byte content size (35), and one raw block (last, raw, 35 bytes) holding the records. */
static const uint8_t golden_zstd_section[9] = {
    0x28, 0xb5, 0x2f, 0xfd, /* zstd magic */
    0x20,                   /* single segment, content size in 1 byte, no checksum, no dict */
    0x23,                   /* content size 35 */
    0x19, 0x01, 0x00,       /* block header: last, raw, size 35 (1 | 0 << 1 | 35 << 3) */
};
static const uint8_t golden_zstd_checksum[8] = {0x58, 0x8a, 0xdf, 0x96, 0xb9, 0x85, 0x49, 0xb9};

static const struct batch_record_header golden_hdr = {
    .key = (const uint8_t *)"h", .key_len = 1, .value = (const uint8_t *)"v", .value_len = 1};
static const struct batch_record_in golden_recs[3] = {
    {.key = "k1", .key_len = 2, .value = "hello", .value_len = 5, .timestamp = 1700000000000,
     .headers = &golden_hdr, .header_count = 1},
    {.key = NULL, .value = "", .value_len = 0, .timestamp = 1700000001000},
    {.key = "k2", .key_len = 2, .value = NULL, .timestamp = 1699999999999},
};

/* Decodes a golden batch field by field and record by record. */
static void golden_decode(const uint8_t *batch, size_t len, uint16_t flags)
{
    struct batch_header h;
    cr_assert_eq(batch_validate(batch, len, &h), 0);
    cr_assert_eq(h.base_offset, 42);
    cr_assert_eq(h.batch_len, len);
    cr_assert_eq(h.leader_epoch, 7);
    cr_assert_eq(h.magic, 2);
    cr_assert_eq(h.flags, flags);
    cr_assert_eq(h.record_count, 3);
    cr_assert_eq(h.last_offset_delta, 2);
    cr_assert_eq(h.first_timestamp, 1700000000000);
    cr_assert_eq(h.max_timestamp, 1700000001000);
    cr_assert_eq(h.producer_id, 1000);
    cr_assert_eq(h.producer_epoch, 2);
    cr_assert_eq(h.base_sequence, 5);
    struct batch_reader *r = batch_reader_create(4096);
    expect_records(r, batch, len, golden_recs, 3, 42);
    struct batch_limits lim = default_limits;
    cr_assert_eq(batch_validate_full(r, batch, len, &lim, NULL), 0, "%s", batch_reader_detail(r));
    batch_reader_destroy(r);
}

/* The hand-written batch decodes to its fields and records, and the builder, given the same
 * records, writes exactly these bytes (after stamping the broker's fields). */
Test(golden, batch_uncompressed)
{
    golden_decode(golden_plain, sizeof(golden_plain), BATCH_CODEC_NONE);
    struct batch_builder *b = batch_builder_create(4096, BATCH_CODEC_NONE, 0);
    batch_builder_reset(b, 1000, 2, 5);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(batch_builder_add(b, &golden_recs[i]), 0);
    const uint8_t *out;
    cr_assert_eq(batch_builder_finish(b, &out), (int)sizeof(golden_plain));
    uint8_t copy[sizeof(golden_plain)];
    memcpy(copy, out, sizeof(copy));
    batch_stamp(copy, 42, 7);
    for (size_t i = 0; i < sizeof(copy); i++)
        cr_assert_eq(copy[i], golden_plain[i], "byte %zu: 0x%02x, golden 0x%02x", i, copy[i],
                     golden_plain[i]);
    batch_builder_destroy(b);
}

/* The hand-made zstd frame decodes to the same records (zstd's encoder output is not part of
 * the format, so only decoding is pinned). */
Test(golden, batch_zstd_raw_block)
{
    uint8_t batch[RL_BATCH_HEADER_SIZE + sizeof(golden_zstd_section) + 35];
    memcpy(batch, golden_plain, RL_BATCH_HEADER_SIZE);
    batch[BATCH_OFF_BATCH_LEN] = sizeof(batch);
    batch[BATCH_OFF_FLAGS] = BATCH_CODEC_ZSTD;
    memcpy(batch + BATCH_OFF_CHECKSUM, golden_zstd_checksum, 8);
    memcpy(batch + RL_BATCH_HEADER_SIZE, golden_zstd_section, sizeof(golden_zstd_section));
    memcpy(batch + RL_BATCH_HEADER_SIZE + sizeof(golden_zstd_section),
           golden_plain + RL_BATCH_HEADER_SIZE, 35);
    golden_decode(batch, sizeof(batch), BATCH_CODEC_ZSTD);
}
