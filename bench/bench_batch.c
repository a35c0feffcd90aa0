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
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/batch.h"

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
    free(pool);
    free(dst);
    return (int)(bench_sink & 0);
}
