/*
 * gen_corpus_batch: writes the seed corpus of fuzz_batch into the directory given (normally
 * tests/fuzz/corpus/batch, via `make fuzz-corpus-batch`): valid batches of both codecs, with
 * headers, null and empty keys, many records, and broken ones of every kind the codec rejects,
 * full validation (batch_validate_full) included: flags, attributes, headers, timestamps and
 * decompression bombs.
 * The inputs are small (the committed corpus stays well under 200 KiB) and deterministic, so
 * regenerating yields the same files.
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "common/batch.h"
#include "common/varint.h"

static const char *out_dir;
static int files;

static void emit(const char *name, const uint8_t *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", out_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    files++;
}

static void refix(uint8_t *b, size_t len)
{
    uint32_t l = htole32((uint32_t)len);
    memcpy(b + BATCH_OFF_BATCH_LEN, &l, 4);
    uint64_t c = htole64(batch_compute_checksum(b, (uint32_t)len));
    memcpy(b + BATCH_OFF_CHECKSUM, &c, 8);
}

/* Writes a batch around a hand-made records section (count records, both timestamps ts) into
 * out; returns its length. */
static size_t raw(uint8_t *out, const uint8_t *section, size_t section_len, uint32_t count,
                  uint16_t flags, int64_t ts)
{
    memset(out, 0, RL_BATCH_HEADER_SIZE);
    out[BATCH_OFF_MAGIC] = RL_BATCH_MAGIC;
    uint16_t f = htole16(flags);
    memcpy(out + BATCH_OFF_FLAGS, &f, 2);
    uint32_t v = htole32(count);
    memcpy(out + BATCH_OFF_RECORD_COUNT, &v, 4);
    v = htole32(count - 1);
    memcpy(out + BATCH_OFF_LAST_OFFSET_DELTA, &v, 4);
    uint64_t t = htole64((uint64_t)ts);
    memcpy(out + BATCH_OFF_FIRST_TIMESTAMP, &t, 8);
    memcpy(out + BATCH_OFF_MAX_TIMESTAMP, &t, 8);
    memset(out + BATCH_OFF_PRODUCER_ID, 0xff, 14);
    memcpy(out + RL_BATCH_HEADER_SIZE, section, section_len);
    refix(out, RL_BATCH_HEADER_SIZE + section_len);
    return RL_BATCH_HEADER_SIZE + section_len;
}

/* One record with the given timestamp, built by a builder. */
static size_t build_one(uint8_t *out, int64_t ts)
{
    struct batch_builder *b = batch_builder_create(4096, BATCH_CODEC_NONE, 0);
    struct batch_record_in in = {.key = "k", .key_len = 1, .value = "v", .value_len = 1,
                                 .timestamp = ts};
    const uint8_t *p;
    int len;
    if (!b || batch_builder_add(b, &in) != 0 || (len = batch_builder_finish(b, &p)) <= 0)
        exit(1);
    memcpy(out, p, (size_t)len);
    batch_builder_destroy(b);
    return (size_t)len;
}

/* A small zstd batch whose one record holds 2 MiB of zeros: past the fuzz harness's 1 MiB
 * scratch (and any reader's cap below 2 MiB), a decompression bomb in miniature. */
static size_t build_bomb(uint8_t *out, size_t cap)
{
    size_t zeros = 2u << 20, body = 4 + varint_size32((int32_t)zeros) + zeros + 1;
    uint8_t *rec = calloc(1, body + 5);
    if (!rec)
        exit(1);
    size_t n = varint_write32(rec, (int32_t)body) + 3;
    rec[n++] = 0x01; /* null key */
    n += varint_write32(rec + n, (int32_t)zeros) + zeros;
    n++; /* no headers */
    size_t z = ZSTD_compress(out + RL_BATCH_HEADER_SIZE, cap - RL_BATCH_HEADER_SIZE, rec, n, 3);
    free(rec);
    if (ZSTD_isError(z))
        exit(1);
    uint8_t section[4096];
    if (z > sizeof(section))
        exit(1);
    memcpy(section, out + RL_BATCH_HEADER_SIZE, z);
    return raw(out, section, z, 1, BATCH_CODEC_ZSTD, 1700000000000);
}

/* Builds a batch of n records shaped by `style` into out; returns its length. */
static size_t build(uint8_t *out, enum batch_codec codec, int n, int style)
{
    static const struct batch_record_header hdrs[] = {
        {.key = (const uint8_t *)"trace-id", .key_len = 8, .value = (const uint8_t *)"4bf92f35",
         .value_len = 8},
        {.key = (const uint8_t *)"", .key_len = 0, .value = NULL, .value_len = -1},
    };
    char key[32], val[512];
    struct batch_builder *b = batch_builder_create(64 * 1024, codec, 3);
    if (!b)
        exit(1);
    batch_builder_reset(b, style == 2 ? 1000 : -1, style == 2 ? 0 : -1, style == 2 ? 7 : -1);
    for (int i = 0; i < n; i++) {
        int klen = snprintf(key, sizeof(key), "user-%d", i % 7);
        int vlen = snprintf(val, sizeof(val), "{\"order\":%d,\"amount\":%d,\"note\":\"%.*s\"}",
                            i, i * 37 % 1000, (i * 13) % 200, "lorem ipsum dolor sit amet "
                            "consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
                            "labore et dolore magna aliqua ut enim ad minim veniam quis nostrud "
                            "exercitation ullamco laboris nisi ut aliquip ex ea commodo");
        struct batch_record_in in = {
            .key = (style == 1 && i % 3 == 0) ? NULL : key,
            .key_len = (style == 1 && i % 3 == 0) ? 0 : (i % 5 == 4 ? 0 : (size_t)klen),
            .value = (style == 1 && i % 4 == 1) ? NULL : val,
            .value_len = (style == 1 && i % 4 == 1) ? 0 : (size_t)vlen,
            .timestamp = 1700000000000 + i * 17 - (i % 3) * 5,
            .headers = (i % 2) ? hdrs : NULL,
            .header_count = (i % 2) ? 2 : 0,
        };
        if (batch_builder_add(b, &in) != 0)
            exit(1);
    }
    const uint8_t *p;
    int len = batch_builder_finish(b, &p);
    if (len <= 0)
        exit(1);
    memcpy(out, p, (size_t)len);
    batch_builder_destroy(b);
    return (size_t)len;
}

/* What only full validation (batch_validate_full) refuses. */
static void emit_full_rejections(uint8_t *b, size_t cap)
{
    size_t n;
    n = build(b, BATCH_CODEC_NONE, 4, 0);
    b[BATCH_OFF_FLAGS] |= 0x20; /* control */
    refix(b, n);
    emit("full-bad-flags", b, n);
    static const uint8_t attrs[] = {0x0c, 0x40, 0x00, 0x00, 0x01, 0x01, 0x00};
    emit("full-bad-attributes", b, raw(b, attrs, sizeof(attrs), 1, 0, 1700000000000));
    static const uint8_t first[] = {0x0c, 0x00, 0x04, 0x00, 0x01, 0x01, 0x00};
    emit("full-bad-first-timestamp", b, raw(b, first, sizeof(first), 1, 0, 1700000000000));
    n = build(b, BATCH_CODEC_NONE, 4, 0);
    memset(b + BATCH_OFF_MAX_TIMESTAMP, 0xff, 7);
    b[BATCH_OFF_MAX_TIMESTAMP + 7] = 0x7f; /* INT64_MAX */
    refix(b, n);
    emit("full-bad-max-timestamp", b, n);
    emit("full-bad-future-timestamp", b, build_one(b, INT64_MAX));
    emit("full-bad-negative-timestamp", b, build_one(b, -5));
    static const uint8_t hdrs[] = {0x0e, 0x00, 0x00, 0x00, 0x01, 0x01, 0x10, 0x00};
    emit("full-bad-headers", b, raw(b, hdrs, sizeof(hdrs), 1, 0, 1700000000000));
    emit("full-bad-zstd-bomb", b, build_bomb(b, cap));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    static uint8_t b[64 * 1024], two[128 * 1024];
    size_t n;

    emit("valid-none-1", b, build(b, BATCH_CODEC_NONE, 1, 0));
    emit("valid-none-headers", b, build(b, BATCH_CODEC_NONE, 6, 0));
    emit("valid-none-nulls", b, build(b, BATCH_CODEC_NONE, 9, 1));
    emit("valid-zstd-headers", b, build(b, BATCH_CODEC_ZSTD, 12, 0));
    emit("valid-zstd-nulls", b, build(b, BATCH_CODEC_ZSTD, 9, 1));
    emit("valid-zstd-many", b, build(b, BATCH_CODEC_ZSTD, 200, 2));
    n = build(b, BATCH_CODEC_NONE, 3, 2);
    batch_stamp(b, 123456, 7);
    emit("valid-stamped-idempotent", b, n);

    size_t n1 = build(two, BATCH_CODEC_NONE, 2, 0);
    size_t n2 = build(two + n1, BATCH_CODEC_ZSTD, 5, 1);
    emit("two-batches", two, n1 + n2);

    n = build(b, BATCH_CODEC_NONE, 4, 0);
    emit("bad-short-header", b, 40);
    emit("bad-short-body", b, n - 5);
    b[BATCH_OFF_MAGIC] = 1;
    emit("bad-magic", b, n);
    b[BATCH_OFF_MAGIC] = 2;
    b[n - 3] ^= 0x40;
    emit("bad-checksum", b, n);
    b[n - 3] ^= 0x40;
    b[BATCH_OFF_FLAGS] = 2;
    emit("bad-codec", b, n);
    b[BATCH_OFF_FLAGS] = 0;
    b[BATCH_OFF_RECORD_COUNT] = 5;
    emit("bad-count-header", b, n);
    b[BATCH_OFF_LAST_OFFSET_DELTA] = 4;
    refix(b, n);
    emit("bad-count-records", b, n);
    b[BATCH_OFF_RECORD_COUNT] = 4;
    b[BATCH_OFF_LAST_OFFSET_DELTA] = 3;
    b[RL_BATCH_HEADER_SIZE + 3] = 0x02; /* first record's offset delta 1 */
    refix(b, n);
    emit("bad-offsets", b, n);
    b[RL_BATCH_HEADER_SIZE + 3] = 0x00;
    memset(b + RL_BATCH_HEADER_SIZE + 2, 0xff, 11); /* an over-long timestamp varint */
    refix(b, n);
    emit("bad-varint", b, n);

    n = build(b, BATCH_CODEC_ZSTD, 12, 0);
    b[RL_BATCH_HEADER_SIZE + 10] ^= 0x5a;
    refix(b, n);
    emit("bad-zstd-frame", b, n);
    n = build(b, BATCH_CODEC_ZSTD, 12, 0);
    refix(b, n - 7);
    emit("bad-zstd-truncated", b, n - 7);

    emit_full_rejections(b, sizeof(b));
    printf("%d files written to %s\n", files, out_dir);
    return 0;
}
