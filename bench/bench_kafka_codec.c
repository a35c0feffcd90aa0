/*
 * bench_kafka_codec: what the Kafka listener's batch translation costs, next to memcpy and
 * ringlog's own batch check in the same run (`make bench-kafka-codec`).
 *
 * One batch of 1000 records with 1 KiB values of JSON-like text (compressible about as much as
 * typical event payloads), as a Kafka client sends it in each codec. Figures are MB/s of
 * uncompressed record bytes (10^6 bytes per second), best of BENCH_REPEATS runs of about
 * BENCH_RUN_MS each; "stored" is the stored batch size as a share of the uncompressed records.
 *   produce X -> Y   kbatch_from_kafka: CRC-32C check, decompression of X if needed, storing
 *                    as Y (zstd level 1, or none), the ringlog header and xxh3 checksum
 *   fetch Y          kbatch_serve of the stored batch: Kafka header + CRC-32C over the records
 *                    (zstd -> none: the down-conversion for Fetch < v10)
 * The machine may be shared; rerun when figures jump.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/kafka/crc32c.h"
#include "broker/kafka/kbatch.h"
#include "broker/kafka/kcodec.h"
#include "common/arena.h"
#include "common/batch.h"

#define BENCH_REPEATS 5
#define BENCH_RUN_MS 200
#define BENCH_RECORDS 1000
#define BENCH_VALUE_BYTES 1024

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile uint64_t bench_sink;

struct input {
    uint8_t *records; /* uncompressed v2 records */
    size_t records_len;
    uint8_t *kafka;   /* the client's batch, with 4 bytes of room before it */
    size_t kafka_len;
    uint8_t *pristine; /* a copy to restore after an in-place translation */
};

static struct arena arena;

/* JSON-like values: field names repeat, numbers and ids vary. */
static void fill_value(char *v, size_t len, unsigned *seed)
{
    size_t pos = 0;
    while (pos < len) {
        char field[96];
        int n = snprintf(field, sizeof(field),
                         "{\"user\":%u,\"event\":\"page_view\",\"path\":\"/item/%u\",\"ms\":%u}",
                         rand_r(seed) % 100000, rand_r(seed) % 5000, rand_r(seed) % 1000);
        for (int i = 0; i < n && pos < len; i++)
            v[pos++] = field[i];
    }
}

static void make_records(struct input *in)
{
    struct batch_builder *b = batch_builder_create(4 << 20, BATCH_CODEC_NONE, 0);
    batch_builder_reset(b, -1, -1, -1);
    static char value[BENCH_VALUE_BYTES];
    unsigned seed = 42;
    for (int i = 0; i < BENCH_RECORDS; i++) {
        fill_value(value, sizeof(value), &seed);
        struct batch_record_in r = {.key = "user-key", .key_len = 8, .value = value,
                                    .value_len = sizeof(value),
                                    .timestamp = 1700000000000 + i};
        if (batch_builder_add(b, &r) != 0) {
            fprintf(stderr, "bench_kafka_codec: builder full\n");
            exit(1);
        }
    }
    const uint8_t *batch;
    int len = batch_builder_finish(b, &batch);
    in->records_len = (size_t)len - RL_BATCH_HEADER_SIZE;
    in->records = malloc(in->records_len);
    memcpy(in->records, batch + RL_BATCH_HEADER_SIZE, in->records_len);
    batch_builder_destroy(b);
}

static void make_client_batch(struct kbatch_ctx *ctx, struct input *in, int codec)
{
    struct kbatch_header h = {.magic = 2, .last_offset_delta = BENCH_RECORDS - 1,
                              .base_timestamp = 1700000000000,
                              .max_timestamp = 1700000000000 + BENCH_RECORDS - 1,
                              .producer_id = 1000, .producer_epoch = 0, .base_sequence = 0,
                              .records_count = BENCH_RECORDS};
    size_t cap = KBATCH_HEADER_SIZE + kcodec_compress_bound(codec, in->records_len);
    uint8_t *buf = malloc(cap + 4);
    int64_t n = kbatch_build_kafka(ctx, &h, codec, 0, in->records, in->records_len, buf + 4,
                                   cap);
    if (n < 0) {
        fprintf(stderr, "bench_kafka_codec: building a %s batch failed\n", kcodec_name(codec));
        exit(1);
    }
    in->kafka = buf + 4;
    in->kafka_len = (size_t)n;
    in->pristine = malloc(4 + (size_t)n);
    memcpy(in->pristine, buf, 4 + (size_t)n);
}

typedef size_t (*bench_op)(void *arg);

/* Runs op repeatedly; returns the best MB/s of `bytes` per call. */
static double measure(bench_op op, void *arg, size_t bytes)
{
    double best = 0;
    for (int r = 0; r < BENCH_REPEATS; r++) {
        double start = now_s(), end;
        size_t calls = 0;
        do {
            bench_sink += op(arg);
            calls++;
            end = now_s();
        } while (end - start < BENCH_RUN_MS / 1000.0);
        double mbs = (double)bytes * (double)calls / (end - start) / 1e6;
        if (mbs > best)
            best = mbs;
    }
    return best;
}

struct produce_arg {
    struct kbatch_ctx *ctx;
    struct input *in;
    uint8_t *out;
    size_t out_len;
};

static size_t op_produce(void *p)
{
    struct produce_arg *a = p;
    /* An in-place translation overwrites the header: restore it (61 + 4 bytes, not timed in
     * any meaningful way next to a megabyte). */
    memcpy(a->in->kafka - 4, a->in->pristine, 4 + KBATCH_HEADER_SIZE);
    arena_reset(&arena);
    struct kbatch_header h;
    char err[256];
    if (kbatch_from_kafka(a->ctx, a->in->kafka, a->in->kafka_len, 4, &arena, &a->out,
                          &a->out_len, &h, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_kafka_codec: %s\n", err);
        exit(1);
    }
    return a->out_len;
}

struct serve_arg {
    struct kbatch_ctx *ctx;
    const uint8_t *stored;
    size_t stored_len;
    int allow_zstd;
};

static size_t op_serve(void *p)
{
    struct serve_arg *a = p;
    arena_reset(&arena);
    struct kmsg_records rec;
    if (kbatch_serve(a->ctx, a->stored, a->stored_len, a->allow_zstd, 1, &arena, &rec) != 1) {
        fprintf(stderr, "bench_kafka_codec: serve failed\n");
        exit(1);
    }
    return (size_t)rec.len;
}

struct copy_arg {
    const uint8_t *src;
    uint8_t *dst;
    size_t len;
};

static size_t op_memcpy(void *p)
{
    struct copy_arg *a = p;
    memcpy(a->dst, a->src, a->len);
    return a->dst[a->len - 1];
}

static size_t op_validate(void *p)
{
    struct produce_arg *a = p;
    return (size_t)batch_validate(a->out, a->out_len, NULL);
}

static size_t op_crc(void *p)
{
    struct copy_arg *a = p;
    return crc32c_update(0, a->src, a->len);
}

/* Produces `codec` into ctx's stored form; prints the line; returns a copy of the stored batch. */
static uint8_t *bench_produce(struct kbatch_ctx *ctx, struct input *base, int codec,
                              const char *label, size_t *stored_len)
{
    struct input in = *base;
    make_client_batch(ctx, &in, codec);
    struct produce_arg a = {ctx, &in, NULL, 0};
    double mbs = measure(op_produce, &a, in.records_len);
    op_produce(&a);
    printf("  produce %-22s %8.0f MB/s   client batch %3.0f%%, stored %3.0f%% of records\n",
           label, mbs, 100.0 * (double)in.kafka_len / (double)in.records_len,
           100.0 * (double)a.out_len / (double)in.records_len);
    uint8_t *copy = malloc(a.out_len);
    memcpy(copy, a.out, a.out_len);
    *stored_len = a.out_len;
    free(in.kafka - 4);
    free(in.pristine);
    return copy;
}

int main(void)
{
    arena_init(&arena, 8 << 20, 256u << 20);
    struct kbatch_ctx *zctx = kbatch_ctx_create(RL_BATCH_MAX_BYTES, 1);
    struct kbatch_ctx *rctx = kbatch_ctx_create(RL_BATCH_MAX_BYTES, 0);
    struct input base = {0};
    make_records(&base);
    printf("kafka codec bench: %d records x %d B values per batch (%.2f MB of records), "
           "CRC-32C %s, best of %d\n", BENCH_RECORDS, BENCH_VALUE_BYTES,
           (double)base.records_len / 1e6, crc32c_hardware() ? "sse4.2" : "table",
           BENCH_REPEATS);

    uint8_t *dst = malloc(base.records_len);
    struct copy_arg c = {base.records, dst, base.records_len};
    printf("  %-30s %8.0f MB/s\n", "memcpy", measure(op_memcpy, &c, base.records_len));
    printf("  %-30s %8.0f MB/s\n", "crc32c", measure(op_crc, &c, base.records_len));

    size_t none_len, zstd_len, len;
    uint8_t *stored_none = bench_produce(zctx, &base, KCODEC_NONE, "none (in place)", &none_len);
    struct produce_arg v = {NULL, NULL, stored_none, none_len};
    printf("  %-30s %8.0f MB/s\n", "ringlog batch_validate (xxh3)",
           measure(op_validate, &v, base.records_len));
    uint8_t *stored_zstd = bench_produce(zctx, &base, KCODEC_ZSTD, "zstd (kept, in place)",
                                         &zstd_len);
    free(bench_produce(zctx, &base, KCODEC_GZIP, "gzip -> zstd-1", &len));
    free(bench_produce(rctx, &base, KCODEC_GZIP, "gzip -> none", &len));
    free(bench_produce(zctx, &base, KCODEC_SNAPPY, "snappy -> zstd-1", &len));
    free(bench_produce(rctx, &base, KCODEC_SNAPPY, "snappy -> none", &len));
    free(bench_produce(zctx, &base, KCODEC_SNAPPY_XERIAL, "snappy/xerial -> zstd-1", &len));
    free(bench_produce(zctx, &base, KCODEC_LZ4, "lz4 -> zstd-1", &len));
    free(bench_produce(rctx, &base, KCODEC_LZ4, "lz4 -> none", &len));

    struct serve_arg s1 = {zctx, stored_none, none_len, 1};
    struct serve_arg s2 = {zctx, stored_zstd, zstd_len, 1};
    struct serve_arg s3 = {zctx, stored_zstd, zstd_len, 0};
    printf("  fetch %-24s %8.0f MB/s\n", "none", measure(op_serve, &s1, base.records_len));
    printf("  fetch %-24s %8.0f MB/s\n", "zstd (as stored)",
           measure(op_serve, &s2, base.records_len));
    printf("  fetch %-24s %8.0f MB/s\n", "zstd -> none (Fetch < v10)",
           measure(op_serve, &s3, base.records_len));
    free(stored_none);
    free(stored_zstd);
    free(dst);
    free(base.records);
    kbatch_ctx_destroy(zctx);
    kbatch_ctx_destroy(rctx);
    arena_destroy(&arena);
    return 0;
}
