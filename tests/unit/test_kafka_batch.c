/* kafka batch: RecordBatch v2 <-> ringlog batch. The reference's test vector translates in place
 * and reads back; every codec a Kafka client may send (none, gzip, raw and xerial snappy, lz4,
 * zstd) becomes a ringlog batch that passes batch_validate and batch_validate_deep with the same
 * records; stored batches are served as Kafka batches whose CRC-32C checks, zero copy or
 * down-converted; and every kind of bad batch is refused with its own code, untouched. Random
 * records print their seed (RL_TEST_SEED=N replays). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/kafka/crc32c.h"
#include "broker/kafka/kbatch.h"
#include "broker/kafka/kcodec.h"
#include "broker/kafka/kerr.h"
#include "broker/kafka/kwire.h"
#include "common/arena.h"
#include "common/batch.h"
#include "common/endian.h"
#include "common/err.h"
#include "replication/raftlog.h"
#include "tests/unit/test_kafka_samples.h"

static struct arena arena;
static struct kbatch_ctx *ctx;
static struct kbatch_ctx *ctx_raw; /* zstd re-compression off */
static struct batch_reader *reader;
static char err[512];

static void setup(void)
{
    arena_init(&arena, 1 << 20, 256u << 20);
    ctx = kbatch_ctx_create(RL_BATCH_MAX_BYTES, 1);
    ctx_raw = kbatch_ctx_create(RL_BATCH_MAX_BYTES, 0);
    reader = batch_reader_create(RL_BATCH_MAX_BYTES);
    cr_assert(ctx && ctx_raw && reader);
}

static void teardown(void)
{
    batch_reader_destroy(reader);
    kbatch_ctx_destroy(ctx);
    kbatch_ctx_destroy(ctx_raw);
    arena_destroy(&arena);
}

TestSuite(kbatch, .init = setup, .fini = teardown);

static unsigned test_seed(void)
{
    const char *s = getenv("RL_TEST_SEED");
    unsigned seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL);
    fprintf(stderr, "seed %u (replay with RL_TEST_SEED=%u)\n", seed, seed);
    return seed;
}

/* The reference's batch (section 4.3) in a buffer with 4 bytes of room before it, as it sits in
 * a Produce request after its length prefix. */
static uint8_t *ref_in_place(void)
{
    uint8_t *buf = arena_alloc(&arena, 4 + sizeof(kafka_sample_batch));
    memcpy(buf, "\x00\x00\x00\x46", 4);
    memcpy(buf + 4, kafka_sample_batch, sizeof(kafka_sample_batch));
    return buf + 4;
}

Test(kbatch, reference_vector_translates_in_place)
{
    uint8_t *k = ref_in_place();
    struct kbatch_header h;
    cr_assert_eq(kbatch_check(k, 70, &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(h.crc, 0xbbcc4115u);
    cr_assert_eq(h.records_count, 1);
    cr_assert_eq(h.base_timestamp, 1700000000000);
    uint8_t *out;
    size_t out_len;
    cr_assert_eq(kbatch_from_kafka(ctx, k, 70, 4, &arena, &out, &out_len, &h, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(out, k - 4, "written in place over the length prefix and the Kafka header");
    cr_assert_eq(out_len, 74);
    struct batch_header rh;
    cr_assert_eq(batch_validate(out, out_len, &rh), 0);
    cr_assert_eq(rh.record_count, 1);
    cr_assert_eq(rh.producer_id, -1);
    cr_assert_eq(batch_validate_deep(reader, out, out_len), 0);
    cr_assert_eq(batch_reader_open(reader, out, out_len, NULL), 0);
    struct batch_record rec;
    cr_assert_eq(batch_reader_next(reader, &rec), 1);
    cr_assert_eq(rec.key_len, -1);
    cr_assert_eq(rec.value_len, 2);
    cr_assert_eq(memcmp(rec.value, "hi", 2), 0);
    cr_assert_eq(rec.timestamp, 1700000000000);
    cr_assert_eq(batch_reader_next(reader, &rec), 0);
}

/* Without room before it, the same batch is copied into the arena and the input is untouched. */
Test(kbatch, no_room_copies)
{
    uint8_t k[70];
    memcpy(k, kafka_sample_batch, 70);
    uint8_t *out;
    size_t out_len;
    struct kbatch_header h;
    cr_assert_eq(kbatch_from_kafka(ctx, k, 70, 0, &arena, &out, &out_len, &h, err, sizeof(err)),
                 0, "%s", err);
    cr_assert((uintptr_t)out < (uintptr_t)k || (uintptr_t)out >= (uintptr_t)(k + 70));
    cr_assert_eq(memcmp(k, kafka_sample_batch, 70), 0);
    cr_assert_eq(batch_validate_deep(reader, out, out_len), 0);
}

struct sample_records {
    uint8_t *records; /* the uncompressed v2 records section */
    size_t len;
    uint32_t count;
    struct batch_record_in in[64];
    char values[64][300];
};

/* Builds n records (keys, values of varied sizes, a header on some) with ringlog's builder and
 * keeps the records section: the same encoding Kafka clients write. */
static void make_records(struct sample_records *s, uint32_t n, unsigned seed)
{
    srand(seed);
    struct batch_builder *b = batch_builder_create(1 << 20, BATCH_CODEC_NONE, 0);
    batch_builder_reset(b, -1, -1, -1);
    static const struct batch_record_header hdr = {(const uint8_t *)"trace", 5,
                                                   (const uint8_t *)"abc", 3};
    for (uint32_t i = 0; i < n; i++) {
        size_t vlen = (size_t)(rand() % 299) + 1;
        for (size_t j = 0; j < vlen; j++)
            s->values[i][j] = (char)('a' + (rand() % 4)); /* compressible */
        s->in[i] = (struct batch_record_in){.key = i % 3 ? "key" : NULL, .key_len = i % 3 ? 3 : 0,
                                            .value = s->values[i], .value_len = vlen,
                                            .timestamp = 1700000000000 + i,
                                            .headers = i % 2 ? &hdr : NULL,
                                            .header_count = i % 2 ? 1 : 0};
        cr_assert_eq(batch_builder_add(b, &s->in[i]), 0);
    }
    const uint8_t *batch;
    int len = batch_builder_finish(b, &batch);
    cr_assert_gt(len, 0);
    s->len = (size_t)len - RL_BATCH_HEADER_SIZE;
    s->records = arena_alloc(&arena, s->len);
    memcpy(s->records, batch + RL_BATCH_HEADER_SIZE, s->len);
    s->count = n;
    batch_builder_destroy(b);
}

/* The records of a ringlog batch equal the sample's, in order. */
static void assert_records(const uint8_t *batch, size_t len, const struct sample_records *s,
                           int64_t base_offset)
{
    cr_assert_eq(batch_validate_deep(reader, batch, len), 0);
    struct batch_header h;
    cr_assert_eq(batch_reader_open(reader, batch, len, &h), 0);
    cr_assert_eq(h.record_count, s->count);
    struct batch_record rec;
    for (uint32_t i = 0; i < s->count; i++) {
        cr_assert_eq(batch_reader_next(reader, &rec), 1);
        cr_assert_eq(rec.offset, base_offset + i);
        cr_assert_eq(rec.value_len, (int32_t)s->in[i].value_len);
        cr_assert_eq(memcmp(rec.value, s->in[i].value, s->in[i].value_len), 0);
        cr_assert_eq(rec.key_len, s->in[i].key ? 3 : -1);
        cr_assert_eq(rec.header_count, s->in[i].header_count);
        cr_assert_eq(rec.timestamp, s->in[i].timestamp);
    }
    cr_assert_eq(batch_reader_next(reader, &rec), 0);
}

static struct kbatch_header client_header(uint32_t count, int64_t pid)
{
    return (struct kbatch_header){.base_offset = 0, .leader_epoch = 0, .magic = 2,
                                  .last_offset_delta = (int32_t)count - 1,
                                  .base_timestamp = 1700000000000,
                                  .max_timestamp = 1700000000000 + count - 1,
                                  .producer_id = pid, .producer_epoch = pid >= 0 ? 3 : -1,
                                  .base_sequence = pid >= 0 ? 40 : -1,
                                  .records_count = (int32_t)count};
}

/* Builds a client batch of the sample with codec, with 4 bytes of room before it. */
static uint8_t *client_batch(const struct sample_records *s, int codec, int64_t pid,
                             size_t *len)
{
    struct kbatch_header h = client_header(s->count, pid);
    size_t cap = KBATCH_HEADER_SIZE + kcodec_compress_bound(codec, s->len) + 64;
    uint8_t *buf = arena_alloc(&arena, cap + 4);
    int64_t n = kbatch_build_kafka(ctx, &h, codec, 0, s->records, s->len, buf + 4, cap);
    cr_assert_gt(n, 0, "build %s", kcodec_name(codec & 7));
    *len = (size_t)n;
    return buf + 4;
}

/* Every codec a client may send becomes a valid ringlog batch with the same records and
 * producer fields; gzip/snappy/lz4 are stored as zstd (or uncompressed with re-compression
 * off); zstd and none are kept as sent, in place. */
Test(kbatch, every_codec_translates)
{
    unsigned seed = test_seed();
    struct sample_records *s = arena_calloc(&arena, sizeof(*s));
    make_records(s, 64, seed);
    static const int codecs[] = {KCODEC_NONE, KCODEC_GZIP, KCODEC_SNAPPY, KCODEC_SNAPPY_XERIAL,
                                 KCODEC_LZ4, KCODEC_ZSTD};
    for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]); c++) {
        for (int recompress = 0; recompress < 2; recompress++) {
            size_t len;
            uint8_t *k = client_batch(s, codecs[c], 1234, &len);
            uint8_t *out;
            size_t out_len;
            struct kbatch_header h;
            struct kbatch_ctx *x = recompress ? ctx : ctx_raw;
            cr_assert_eq(kbatch_from_kafka(x, k, len, 4, &arena, &out, &out_len, &h, err,
                                           sizeof(err)), 0, "codec %d: %s", codecs[c], err);
            struct batch_header rh;
            cr_assert_eq(batch_validate(out, out_len, &rh), 0);
            cr_assert_eq(rh.producer_id, 1234);
            cr_assert_eq(rh.producer_epoch, 3);
            cr_assert_eq(rh.base_sequence, 40);
            cr_assert_eq(rh.max_timestamp, h.max_timestamp);
            int wire = codecs[c] & 7;
            int stored = rh.flags & BATCH_FLAG_CODEC_MASK;
            if (wire == KCODEC_NONE || wire == KCODEC_ZSTD) {
                cr_assert_eq(stored, wire);
                cr_assert_eq(out, k - 4, "codec %d kept in place", wire);
            } else {
                cr_assert_eq(stored, recompress ? BATCH_CODEC_ZSTD : BATCH_CODEC_NONE,
                             "codec %d stored as %d", wire, stored);
            }
            assert_records(out, out_len, s, 0);
        }
    }
}

/* A client that sends maxTimestamp -1 (sarama 1.22) gets it set from the records, as Kafka's
 * broker does, uncompressed or converted; the other fields are as sent. */
Test(kbatch, missing_max_timestamp_is_set_from_records)
{
    struct sample_records *s = arena_calloc(&arena, sizeof(*s));
    make_records(s, 20, test_seed());
    static const int codecs[] = {KCODEC_NONE, KCODEC_GZIP};
    for (size_t c = 0; c < 2; c++) {
        struct kbatch_header h = client_header(s->count, -1);
        h.max_timestamp = -1;
        size_t cap = KBATCH_HEADER_SIZE + kcodec_compress_bound(codecs[c], s->len) + 64;
        uint8_t *buf = arena_alloc(&arena, cap + 4);
        int64_t n = kbatch_build_kafka(ctx, &h, codecs[c], 0, s->records, s->len, buf + 4, cap);
        cr_assert_gt(n, 0);
        uint8_t *out;
        size_t out_len;
        struct kbatch_header got;
        cr_assert_eq(kbatch_from_kafka(ctx, buf + 4, (size_t)n, 4, &arena, &out, &out_len, &got,
                                       err, sizeof(err)), 0, "%s", err);
        struct batch_header rh;
        cr_assert_eq(batch_validate(out, out_len, &rh), 0);
        cr_assert_eq(rh.max_timestamp, 1700000000000 + 19, "codec %d: %lld", codecs[c],
                     (long long)rh.max_timestamp);
        cr_assert_eq(got.max_timestamp, rh.max_timestamp);
        assert_records(out, out_len, s, 0);
    }
}

/* Stored batches (stamped with offsets and an epoch) are served as Kafka batches: the CRC
 * checks, offsets and epoch show, records are referenced in place, and translating the served
 * bytes back gives the same records. zstd batches are down-converted for old Fetch versions. */
Test(kbatch, stored_batches_serve_as_kafka)
{
    unsigned seed = test_seed();
    struct sample_records *s = arena_calloc(&arena, sizeof(*s));
    make_records(s, 40, seed);
    /* A log slice: a plain batch, a zstd batch, and a torn third one. */
    size_t l1, l2;
    uint8_t *k1 = client_batch(s, KCODEC_NONE, -1, &l1);
    uint8_t *k2 = client_batch(s, KCODEC_ZSTD, 77, &l2);
    uint8_t *b1, *b2;
    size_t n1, n2;
    struct kbatch_header h;
    cr_assert_eq(kbatch_from_kafka(ctx, k1, l1, 4, &arena, &b1, &n1, &h, err, sizeof(err)), 0);
    cr_assert_eq(kbatch_from_kafka(ctx, k2, l2, 4, &arena, &b2, &n2, &h, err, sizeof(err)), 0);
    batch_stamp(b1, 1000, 7);
    batch_stamp(b2, 1040, 8);
    size_t slice_len = n1 + n2 + 30;
    uint8_t *slice = arena_alloc(&arena, slice_len);
    memcpy(slice, b1, n1);
    memcpy(slice + n1, b2, n2);
    memcpy(slice + n1 + n2, b1, 30);
    for (int allow_zstd = 0; allow_zstd < 2; allow_zstd++) {
        struct kmsg_records rec;
        cr_assert_eq(kbatch_serve(ctx, slice, slice_len, allow_zstd, 1, &arena, &rec), 2);
        cr_assert_eq(rec.iovcnt, 4);
        cr_assert_eq(rec.iov[1].iov_base, slice + RL_BATCH_HEADER_SIZE, "records by reference");
        cr_assert_eq(rec.iov[3].iov_base == slice + n1 + RL_BATCH_HEADER_SIZE, allow_zstd,
                     "zstd referenced only when the client reads zstd");
        struct kmsg_out o = {(struct iovec *)rec.iov, rec.iovcnt, (size_t)rec.len};
        uint8_t *flat = kmsg_flatten(&o, &arena);
        size_t first = 12 + kwire_load_be32(flat + KBATCH_OFF_BATCH_LENGTH);
        struct kbatch_header k;
        cr_assert_eq(kbatch_check(flat, first, &k, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(k.base_offset, 1000);
        cr_assert_eq(k.leader_epoch, 7);
        cr_assert_eq(kbatch_check(flat + first, (size_t)rec.len - first, &k, err, sizeof(err)),
                     0, "%s", err);
        cr_assert_eq(k.base_offset, 1040);
        cr_assert_eq(k.producer_id, 77);
        cr_assert_eq(k.attributes & 7, allow_zstd ? KCODEC_ZSTD : KCODEC_NONE);
        uint8_t *back;
        size_t back_len;
        cr_assert_eq(kbatch_from_kafka(ctx, flat + first, (size_t)rec.len - first, 0, &arena,
                                       &back, &back_len, &k, err, sizeof(err)), 0, "%s", err);
        assert_records(back, back_len, s, 0);
    }
    struct kmsg_records none;
    cr_assert_eq(kbatch_serve(ctx, slice, 30, 1, 1, &arena, &none), 0);
    cr_assert_eq(none.len, 0);
    cr_assert_null(none.iov);
}

/* Each kind of bad batch gets its own code and a message; a refused batch is not modified. */
Test(kbatch, bad_batches_are_refused_untouched)
{
    struct {
        const char *what;
        size_t off;    /* byte to change (SIZE_MAX: none) */
        uint8_t value; /* new value */
        int fix_crc;
        size_t len;
        int code;
        const char *msg;
    } cases[] = {
        {"records byte flipped", 65, 0x77, 0, 70, RL_E_BATCH_CHECKSUM, "CRC-32C"},
        {"magic 1", 16, 1, 0, 70, RL_E_BATCH_MAGIC, "magic"},
        {"short", SIZE_MAX, 0, 0, 40, RL_E_BATCH_SHORT, "less than"},
        {"batchLength too big", 11, 0x3b, 0, 70, RL_E_BATCH_SHORT, "batchLength"},
        {"batchLength too small", 11, 0x39, 0, 70, RL_E_BATCH_LENGTH, "more than one"},
        {"batchLength below 49", 11, 0x30, 0, 70, RL_E_BATCH_LENGTH, "minimum"},
        {"codec 5", 22, 5, 1, 70, RL_E_BATCH_CODEC, "codec"},
        {"transactional", 22, 0x10, 1, 70, RL_E_INVALID_REQUEST, "transactional"},
        {"control", 22, 0x20, 1, 70, RL_E_INVALID_REQUEST, "control"},
        {"unknown attribute", 21, 0x01, 1, 70, RL_E_INVALID_REQUEST, "attribute"},
        {"lastOffsetDelta 1", 26, 1, 1, 70, RL_E_BATCH_OFFSETS, "contiguous"},
        {"zero records", 60, 0, 1, 70, RL_E_BATCH_COUNT, "recordsCount"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *buf = arena_alloc(&arena, 4 + 70);
        uint8_t *k = buf + 4;
        memcpy(k, kafka_sample_batch, 70);
        if (cases[i].off != SIZE_MAX)
            k[cases[i].off] = cases[i].value;
        if (cases[i].fix_crc)
            kwire_store_be32(k + 17, crc32c_update(0, k + 21, 49));
        uint8_t before[74];
        memcpy(before, buf, 74);
        uint8_t *out;
        size_t out_len;
        struct kbatch_header h;
        err[0] = 0;
        int rc = kbatch_from_kafka(ctx, k, cases[i].len, 4, &arena, &out, &out_len, &h, err,
                                   sizeof(err));
        cr_assert_eq(rc, cases[i].code, "%s: %d (%s)", cases[i].what, rc, err);
        cr_assert(strstr(err, cases[i].msg), "%s: message '%s'", cases[i].what, err);
        cr_assert_eq(memcmp(before, buf, 74), 0, "%s: input modified", cases[i].what);
        cr_assert_neq(kerr_from_rl(rc, KERR_SCOPE_PARTITION), 0);
    }
    /* Two batches in one partition's records. */
    uint8_t two[140];
    memcpy(two, kafka_sample_batch, 70);
    memcpy(two + 70, kafka_sample_batch, 70);
    struct kbatch_header h;
    cr_assert_eq(kbatch_check(two, 140, &h, err, sizeof(err)), RL_E_BATCH_LENGTH);
    cr_assert(strstr(err, "exactly one"), "%s", err);
    /* A legacy v1 message set: magic at byte 16 is 1. */
    uint8_t legacy[40] = {0};
    legacy[11] = 28;
    legacy[16] = 1;
    cr_assert_eq(kbatch_check(legacy, 40, &h, err, sizeof(err)), RL_E_BATCH_MAGIC);
}

/* Compressed sections that are garbage (with a valid CRC), truncated, or that expand past the
 * batch limit are refused with DECOMPRESS or TOO_LARGE. */
Test(kbatch, hostile_compressed_sections)
{
    struct kbatch_ctx *small = kbatch_ctx_create(1 << 20, 1);
    size_t zeros_len = 4u << 20;
    uint8_t *zeros = arena_calloc(&arena, zeros_len);
    struct kbatch_header h0 = client_header(1, -1);
    static const int codecs[] = {KCODEC_GZIP, KCODEC_SNAPPY, KCODEC_SNAPPY_XERIAL, KCODEC_LZ4};
    for (size_t c = 0; c < 4; c++) {
        size_t cap = KBATCH_HEADER_SIZE + kcodec_compress_bound(codecs[c], zeros_len);
        uint8_t *buf = arena_alloc(&arena, cap);
        int64_t n = kbatch_build_kafka(small, &h0, codecs[c], 0, zeros, zeros_len, buf, cap);
        cr_assert_gt(n, 0);
        uint8_t *out;
        size_t out_len;
        struct kbatch_header h;
        int rc = kbatch_from_kafka(small, buf, (size_t)n, 0, &arena, &out, &out_len, &h, err,
                                   sizeof(err));
        cr_assert_eq(rc, RL_E_BATCH_TOO_LARGE, "bomb %s: %d %s", kcodec_name(codecs[c] & 7),
                     rc, err);
        /* Truncate the compressed section (fix the lengths and CRC so only the codec sees
         * it). */
        size_t cut = (size_t)n - 5;
        kwire_store_be32(buf + 8, (uint32_t)(cut - 12));
        kwire_store_be32(buf + 17, crc32c_update(0, buf + 21, cut - 21));
        rc = kbatch_from_kafka(small, buf, cut, 0, &arena, &out, &out_len, &h, err, sizeof(err));
        cr_assert(rc == RL_E_BATCH_DECOMPRESS || rc == RL_E_BATCH_TOO_LARGE,
                  "truncated %s: %d %s", kcodec_name(codecs[c] & 7), rc, err);
    }
    for (int codec = KCODEC_GZIP; codec <= KCODEC_ZSTD; codec++) {
        uint8_t buf[200];
        memcpy(buf, kafka_sample_batch, 61);
        for (int i = 61; i < 200; i++)
            buf[i] = (uint8_t)(i * 37);
        buf[22] = (uint8_t)codec;
        kwire_store_be32(buf + 8, 200 - 12);
        kwire_store_be32(buf + 17, crc32c_update(0, buf + 21, 200 - 21));
        uint8_t *out;
        size_t out_len;
        struct kbatch_header h;
        int rc = kbatch_from_kafka(small, buf, 200, 0, &arena, &out, &out_len, &h, err,
                                   sizeof(err));
        if (codec == KCODEC_ZSTD) {
            /* zstd is stored as sent; the produce service's deep validation refuses it */
            cr_assert_eq(rc, 0);
            cr_assert_neq(batch_validate_deep(reader, out, out_len), 0);
        } else {
            cr_assert(rc == RL_E_BATCH_DECOMPRESS || rc == RL_E_BATCH_TOO_LARGE,
                      "garbage %s: %d", kcodec_name(codec), rc);
        }
    }
    kbatch_ctx_destroy(small);
}

/* Kafka's CRC covers attributes..end: changing base offset or leader epoch keeps it valid,
 * which is why a broker may stamp them. */
Test(kbatch, crc_leaves_offset_and_epoch_out)
{
    uint8_t k[70];
    memcpy(k, kafka_sample_batch, 70);
    kwire_store_be64(k, 123456);
    kwire_store_be32(k + 12, 9);
    struct kbatch_header h;
    cr_assert_eq(kbatch_check(k, 70, &h, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(h.base_offset, 123456);
}

/* Without with_control (clients that would hand control records to the application), a
 * replicated log's control batches (Raft no-ops, configurations) are left out of what they
 * fetch; the data batch after one is served, its offsets unchanged (a gap). */
Test(kbatch, control_batches_left_out)
{
    unsigned seed = test_seed();
    struct sample_records *s = arena_calloc(&arena, sizeof(*s));
    make_records(s, 10, seed);
    size_t l1, l2, n1, n2;
    uint8_t *k1 = client_batch(s, KCODEC_NONE, -1, &l1);
    uint8_t *k2 = client_batch(s, KCODEC_NONE, -1, &l2);
    uint8_t *b1, *b2;
    struct kbatch_header h;
    cr_assert_eq(kbatch_from_kafka(ctx, k1, l1, 4, &arena, &b1, &n1, &h, err, sizeof(err)), 0);
    cr_assert_eq(kbatch_from_kafka(ctx, k2, l2, 4, &arena, &b2, &n2, &h, err, sizeof(err)), 0);
    rl_store_le16(b1 + BATCH_OFF_FLAGS, BATCH_FLAG_CONTROL);
    rl_store_le64(b1 + BATCH_OFF_CHECKSUM, batch_compute_checksum(b1, (uint32_t)n1));
    batch_stamp(b1, 500, 3);
    batch_stamp(b2, 510, 3);
    uint8_t *slice = arena_alloc(&arena, n1 + n2);
    memcpy(slice, b1, n1);
    memcpy(slice + n1, b2, n2);
    struct kmsg_records rec;
    cr_assert_eq(kbatch_serve(ctx, slice, n1, 1, 0, &arena, &rec), 0, "control only: nothing");
    cr_assert_eq(rec.len, 0);
    cr_assert_eq(kbatch_serve(ctx, slice, n1 + n2, 1, 0, &arena, &rec), 1);
    cr_assert_eq(rec.iovcnt, 2);
    struct kmsg_out o = {(struct iovec *)rec.iov, rec.iovcnt, (size_t)rec.len};
    uint8_t *flat = kmsg_flatten(&o, &arena);
    struct kbatch_header k;
    cr_assert_eq(kbatch_check(flat, (size_t)rec.len, &k, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(k.base_offset, 510);
}

/* Checks the Kafka control batch at b (len bytes left): base offset, leader epoch, control
 * attribute, no producer, one record, a CRC-32C over attributes..end that is right, and the
 * control record Kafka clients skip at the batch's last offset (last_delta < 64) with the
 * given type. Returns its size. */
static size_t expect_control_batch(const uint8_t *b, size_t len, int64_t base, int32_t epoch,
                                   uint8_t last_delta, uint16_t type)
{
    cr_assert_geq(len, KBATCH_HEADER_SIZE);
    size_t total = 12 + kwire_load_be32(b + KBATCH_OFF_BATCH_LENGTH);
    cr_assert_leq(total, len);
    cr_assert_eq((int64_t)kwire_load_be64(b + KBATCH_OFF_BASE_OFFSET), base);
    cr_assert_eq((int32_t)kwire_load_be32(b + KBATCH_OFF_LEADER_EPOCH), epoch);
    cr_assert_eq(b[KBATCH_OFF_MAGIC], 2);
    cr_assert_eq(kwire_load_be16(b + KBATCH_OFF_ATTRIBUTES), KBATCH_ATTR_CONTROL);
    cr_assert_eq(kwire_load_be32(b + KBATCH_OFF_LAST_OFFSET_DELTA), last_delta);
    cr_assert_eq((int64_t)kwire_load_be64(b + KBATCH_OFF_PRODUCER_ID), -1);
    cr_assert_eq((int16_t)kwire_load_be16(b + KBATCH_OFF_PRODUCER_EPOCH), -1);
    cr_assert_eq((int32_t)kwire_load_be32(b + KBATCH_OFF_BASE_SEQUENCE), -1);
    cr_assert_eq(kwire_load_be32(b + KBATCH_OFF_RECORDS_COUNT), 1);
    cr_assert_eq(kwire_load_be32(b + KBATCH_OFF_CRC),
                 crc32c_update(0, b + KBATCH_CRC_FROM, total - KBATCH_CRC_FROM), "CRC-32C");
    /* The record, byte for byte (varints zigzag): length 16, attributes 0, timestamp delta 0,
     * offset delta last_delta, key length 4: version 0 + type, value length 6: zeros, no
     * headers. */
    const uint8_t want[] = {32, 0, 0, (uint8_t)(2 * last_delta), 8, 0, 0, (uint8_t)(type >> 8),
                            (uint8_t)type, 12, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(total, KBATCH_HEADER_SIZE + sizeof(want));
    cr_assert_arr_eq(b + KBATCH_HEADER_SIZE, want, sizeof(want));
    uint8_t rec[KBATCH_CONTROL_RECORD_MAX];
    cr_assert_eq(kbatch_control_record(rec, last_delta, type), sizeof(want));
    cr_assert_arr_eq(rec, want, sizeof(want));
    return total;
}

/* With with_control (Fetch v5+), each control batch of a replicated log (here a leader's no-op
 * and a configuration entry, as raftlog writes them) is served as a Kafka control batch in
 * its place, with its offset and term, so clients advance past it; the configuration's
 * payload is not served; the data batch after them is served as always. */
Test(kbatch, control_batches_served)
{
    unsigned seed = test_seed();
    struct sample_records *s = arena_calloc(&arena, sizeof(*s));
    make_records(s, 10, seed);
    size_t l3, n3;
    uint8_t *k3 = client_batch(s, KCODEC_NONE, -1, &l3);
    uint8_t *b3;
    struct kbatch_header h;
    cr_assert_eq(kbatch_from_kafka(ctx, k3, l3, 4, &arena, &b3, &n3, &h, err, sizeof(err)), 0);
    batch_stamp(b3, 502, 7);
    uint8_t *slice = arena_alloc(&arena, 4096 + n3);
    const char conf[] = "1@127.0.0.1:9001,2@127.0.0.1:9002,3@127.0.0.1:9003";
    int n1 = raftlog_control_batch(slice, 2048, RAFTLOG_CTL_NOOP, NULL, 0, 500, 7);
    cr_assert_gt(n1, 0);
    int n2 = raftlog_control_batch(slice + n1, 2048, RAFTLOG_CTL_CONFIG, conf, sizeof(conf), 501,
                                   7);
    cr_assert_gt(n2, (int)sizeof(conf));
    memcpy(slice + n1 + n2, b3, n3);
    size_t len = (size_t)n1 + (size_t)n2 + n3;
    struct kmsg_records rec;
    cr_assert_eq(kbatch_serve(ctx, slice, len, 1, 1, &arena, &rec), 3);
    cr_assert_eq(rec.iovcnt, 6);
    struct kmsg_out o = {(struct iovec *)rec.iov, rec.iovcnt, (size_t)rec.len};
    uint8_t *flat = kmsg_flatten(&o, &arena);
    size_t c1 = expect_control_batch(flat, (size_t)rec.len, 500, 7, 0, RAFTLOG_CTL_NOOP);
    size_t c2 = expect_control_batch(flat + c1, (size_t)rec.len - c1, 501, 7, 0,
                                     RAFTLOG_CTL_CONFIG);
    struct kbatch_header k;
    cr_assert_eq(kbatch_check(flat + c1 + c2, (size_t)rec.len - c1 - c2, &k, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(k.base_offset, 502);
    cr_assert_eq(k.records_count, 10);
    /* Control entries alone (a log that ends with them): served, not an empty answer. */
    cr_assert_eq(kbatch_serve(ctx, slice, (size_t)n1, 1, 1, &arena, &rec), 1);
    flat = kmsg_flatten(&(struct kmsg_out){(struct iovec *)rec.iov, rec.iovcnt,
                                           (size_t)rec.len}, &arena);
    cr_assert_eq(expect_control_batch(flat, (size_t)rec.len, 500, 7, 0, RAFTLOG_CTL_NOOP),
                 (size_t)rec.len);
    /* A control batch of 10 offsets whose record is not a control record of ours: the neutral
     * type, the record at its last offset. */
    size_t l4, n4;
    uint8_t *k4 = client_batch(s, KCODEC_NONE, -1, &l4);
    uint8_t *b4;
    cr_assert_eq(kbatch_from_kafka(ctx, k4, l4, 4, &arena, &b4, &n4, &h, err, sizeof(err)), 0);
    rl_store_le16(b4 + BATCH_OFF_FLAGS, BATCH_FLAG_CONTROL);
    rl_store_le64(b4 + BATCH_OFF_CHECKSUM, batch_compute_checksum(b4, (uint32_t)n4));
    batch_stamp(b4, 900, 2);
    cr_assert_eq(kbatch_serve(ctx, b4, n4, 1, 1, &arena, &rec), 1);
    flat = kmsg_flatten(&(struct kmsg_out){(struct iovec *)rec.iov, rec.iovcnt,
                                           (size_t)rec.len}, &arena);
    expect_control_batch(flat, (size_t)rec.len, 900, 2, 9, KBATCH_CONTROL_TYPE_OTHER);
}
