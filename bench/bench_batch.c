/*
 * bench_batch: throughput of the batch codec next to memcpy, measured in the same run on the
 * same bytes, so the ratios hold on whatever machine runs it (`make bench-batch`).
 *
 * For records of 1 KiB and of 1 MiB (incompressible values, no compression):
 *   memcpy    copying the values into a batch-sized buffer, one memcpy per record
 *   build     batch_builder_reset + add per record + finish (one xxh3 pass)
 *   validate  batch_validate of the finished batch (header + one xxh3 pass)
 *   iterate   batch_validate_deep (validate, then decode every record)
 * Each figure is the best of BENCH_REPEATS timed runs of about BENCH_RUN_MS each, in MB/s of
 * value bytes (10^6 bytes per second). The machine may be shared; rerun when figures jump.
 *
 * Then the broker's cost of accepting a batch: 128 KiB batches of 1 KiB records, uncompressed
 * (incompressible values) and zstd (text-like values), each as CPU microseconds per batch (the
 * thread's CPU clock, steadier than wall time on a shared machine) for
 *   memcpy    copying the batch's bytes once (what appending it costs at least)
 *   checksum  batch_validate (header + xxh3), the check the broker made before
 *   open      batch_reader_open (checksum, plus zstd decompression into the reused scratch)
 *   full      batch_validate_full (open, then every record and timestamp)
 * with the ratios full/memcpy and full/checksum. With zstd, decompression is most of the cost
 * (consumers pay it too); the parse itself is full - open.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/batch.h"
#include "common/err.h"

#define BENCH_REPEATS 5
#define BENCH_RUN_MS 200
#define BENCH_BATCH_VALUE_BYTES (1024u * 1024) /* values per batch */
#define BENCH_POOL_BYTES (8u * 1024 * 1024)

static uint8_t *pool;
static uint8_t *dst;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Keeps the compiler from dropping work whose result is unused. */
static volatile uint64_t bench_sink;

struct bench_case {
    size_t record_bytes;
    uint32_t records;
    struct batch_builder *b;
    struct batch_reader *r;
    const uint8_t *batch;
    int batch_len;
    size_t next_src; /* rotates through the pool so sources are not always cached */
};

static const uint8_t *next_value(struct bench_case *c)
{
    if (c->next_src + c->record_bytes > BENCH_POOL_BYTES)
        c->next_src = 0;
    const uint8_t *p = pool + c->next_src;
    c->next_src += c->record_bytes;
    return p;
}

static void op_memcpy(struct bench_case *c)
{
    size_t pos = 0;
    for (uint32_t i = 0; i < c->records; i++) {
        memcpy(dst + pos, next_value(c), c->record_bytes);
        pos += c->record_bytes;
    }
    bench_sink += dst[pos - 1];
}

static void op_build(struct bench_case *c)
{
    batch_builder_reset(c->b, -1, -1, -1);
    for (uint32_t i = 0; i < c->records; i++) {
        struct batch_record_in in = {.key = "key", .key_len = 3, .value = next_value(c),
                                     .value_len = c->record_bytes, .timestamp = 1700000000000};
        if (batch_builder_add(c->b, &in) != 0) {
            fprintf(stderr, "bench_batch: add failed\n");
            exit(1);
        }
    }
    c->batch_len = batch_builder_finish(c->b, &c->batch);
    if (c->batch_len <= 0)
        exit(1);
}

static void op_validate(struct bench_case *c)
{
    if (batch_validate(c->batch, (size_t)c->batch_len, NULL) != 0)
        exit(1);
}

static void op_iterate(struct bench_case *c)
{
    if (batch_validate_deep(c->r, c->batch, (size_t)c->batch_len) != 0)
        exit(1);
}

/* Best MB/s (of value bytes) over BENCH_REPEATS runs of op. */
static double measure(struct bench_case *c, void (*op)(struct bench_case *))
{
    double best = 0;
    double bytes_per_op = (double)c->record_bytes * c->records;
    for (int rep = 0; rep < BENCH_REPEATS; rep++) {
        uint64_t ops = 0;
        double t0 = now_s(), t;
        do {
            op(c);
            ops++;
            t = now_s();
        } while (t - t0 < BENCH_RUN_MS / 1000.0);
        double mbs = bytes_per_op * (double)ops / (t - t0) / 1e6;
        if (mbs > best)
            best = mbs;
    }
    return best;
}

static void run_case(size_t record_bytes)
{
    struct bench_case c = {.record_bytes = record_bytes};
    c.records = (uint32_t)(BENCH_BATCH_VALUE_BYTES / record_bytes);
    size_t cap = BENCH_BATCH_VALUE_BYTES + c.records * 32u + RL_BATCH_HEADER_SIZE;
    c.b = batch_builder_create(cap, BATCH_CODEC_NONE, 0);
    c.r = batch_reader_create(cap);
    if (!c.b || !c.r)
        exit(1);
    op_build(&c); /* a batch for validate and iterate to read */
    double m = measure(&c, op_memcpy);
    double b = measure(&c, op_build);
    double v = measure(&c, op_validate);
    double it = measure(&c, op_iterate);
    char label[32];
    snprintf(label, sizeof(label), "%zu %s", record_bytes >= 1048576 ? record_bytes >> 20
                                             : record_bytes >> 10,
             record_bytes >= 1048576 ? "MiB" : "KiB");
    printf("records of %-7s memcpy %8.0f MB/s | build %8.0f MB/s (%.2f of memcpy) | "
           "validate %8.0f MB/s (%.2f) | iterate %8.0f MB/s (%.2f)\n",
           label, m, b, b / m, v, v / m, it, it / m);
    batch_builder_destroy(c.b);
    batch_reader_destroy(c.r);
}

/* --- the broker's validation cost ------------------------------------------------------------- */

#define VAL_BATCH_BYTES (128u * 1024)
#define VAL_RECORD_BYTES 1024u
#define VAL_NOW_MS INT64_C(1700000000000)

struct val_case {
    const uint8_t *batch;
    size_t len;
    uint8_t *copy;
    struct batch_reader *r;
    struct batch_limits lim;
};

static void val_memcpy(struct val_case *c)
{
    memcpy(c->copy, c->batch, c->len);
    bench_sink += c->copy[c->len - 1];
}

static void val_checksum(struct val_case *c)
{
    if (batch_validate(c->batch, c->len, NULL) != 0)
        exit(1);
}

static void val_open(struct val_case *c)
{
    if (batch_reader_open(c->r, c->batch, c->len, NULL) != 0)
        exit(1);
}

static void val_full(struct val_case *c)
{
    if (batch_validate_full(c->r, c->batch, c->len, &c->lim, NULL) != 0) {
        fprintf(stderr, "bench_batch: full validation failed: %s\n", batch_reader_detail(c->r));
        exit(1);
    }
}

/* This thread's CPU time: on a shared machine it moves far less than wall time. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Best CPU microseconds per call of op over BENCH_REPEATS runs. */
static double val_measure(struct val_case *c, void (*op)(struct val_case *))
{
    double best = 1e30;
    for (int rep = 0; rep < BENCH_REPEATS; rep++) {
        uint64_t ops = 0;
        double t0 = cpu_s(), t;
        do {
            op(c);
            ops++;
            t = cpu_s();
        } while (t - t0 < BENCH_RUN_MS / 1000.0);
        double us = (t - t0) * 1e6 / (double)ops;
        if (us < best)
            best = us;
    }
    return best;
}

/* Text-like values for zstd: words drawn from a small vocabulary, so they compress a few times,
 * as JSON events do. */
static void text_value(uint8_t *v, size_t len, uint64_t *x)
{
    static const char *words[] = {"order", "user", "amount", "status", "shipped", "pending",
                                  "\"id\":", "\"ts\":", "12345", "eur", "{", "}", ",", "note"};
    size_t n = 0;
    while (n < len) {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        const char *w = words[*x % (sizeof(words) / sizeof(words[0]))];
        for (size_t i = 0; w[i] && n < len; i++)
            v[n++] = (uint8_t)w[i];
    }
}

static void run_validation(enum batch_codec codec)
{
    struct batch_builder *b = batch_builder_create(VAL_BATCH_BYTES + 4096, codec, 1);
    struct val_case c = {.r = batch_reader_create(RL_BATCH_MAX_BYTES),
                         .lim = {.now_ms = VAL_NOW_MS,
                                 .after_max_ms = RL_BATCH_TIMESTAMP_AFTER_MAX_MS,
                                 .before_max_ms = RL_BATCH_TIMESTAMP_BEFORE_MAX_MS}};
    static uint8_t value[VAL_RECORD_BYTES];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint32_t records = 0;
    if (!b || !c.r)
        exit(1);
    for (;;) {
        if (codec == BATCH_CODEC_ZSTD)
            text_value(value, sizeof(value), &x);
        else
            memcpy(value, pool + (size_t)records * VAL_RECORD_BYTES, sizeof(value));
        struct batch_record_in in = {.key = "key", .key_len = 3, .value = value,
                                     .value_len = sizeof(value),
                                     .timestamp = VAL_NOW_MS - 1000 + records};
        if (batch_builder_bytes(b) + VAL_RECORD_BYTES > VAL_BATCH_BYTES ||
            batch_builder_add(b, &in) != 0)
            break;
        records++;
    }
    int len = batch_builder_finish(b, &c.batch);
    if (len <= 0)
        exit(1);
    c.len = (size_t)len;
    c.copy = malloc(c.len);
    if (!c.copy)
        exit(1);
    double m = val_measure(&c, val_memcpy);
    double k = val_measure(&c, val_checksum);
    double o = val_measure(&c, val_open);
    double f = val_measure(&c, val_full);
    printf("128 KiB of %u 1 KiB records, %-4s (%6zu bytes): memcpy %6.2f us | checksum %6.2f us "
           "| open %6.2f us | full %6.2f us = %6.2f x memcpy, %6.2f x checksum\n", records,
           codec == BATCH_CODEC_ZSTD ? "zstd" : "none", c.len, m, k, o, f, f / m, f / k);
    free(c.copy);
    batch_reader_destroy(c.r);
    batch_builder_destroy(b);
}

int main(void)
{
    pool = malloc(BENCH_POOL_BYTES);
    dst = malloc(BENCH_BATCH_VALUE_BYTES);
    if (!pool || !dst)
        return 1;
    uint64_t x = 0x243f6a8885a308d3ull;
    for (size_t i = 0; i < BENCH_POOL_BYTES; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pool[i] = (uint8_t)x;
    }
    printf("bench_batch: batches of %u KiB of values, codec none, best of %d x %d ms\n",
           BENCH_BATCH_VALUE_BYTES >> 10, BENCH_REPEATS, BENCH_RUN_MS);
    run_case(1024);
    run_case(1024 * 1024);
    printf("bench_batch: what accepting one produced batch costs the broker (CPU time), best of "
           "%d x %d ms\n", BENCH_REPEATS, BENCH_RUN_MS);
    run_validation(BATCH_CODEC_NONE);
    run_validation(BATCH_CODEC_ZSTD);
    free(pool);
    free(dst);
    return (int)(bench_sink & 0);
}
