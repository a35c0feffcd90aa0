/*
 * bench_broker: the broker's own throughput and latency, with the thinnest possible client
 * (tests/lib: one blocking connection, requests pipelined), so the figures are the broker's and
 * not a client library's. Starts a ringlogd (data under $BENCH_DIR, else build/), measures the
 * disk limit in the same run, then:
 *   produce: one connection keeps WINDOW requests in flight, each one batch of 256 x 1 KiB
 *            incompressible records to the next of 8 partitions, acks=1, flush.policy=batch
 *            ($BENCH_FLUSH_POLICY overrides);
 *            latency is request sent -> response read;
 *   consume: every partition read back from offset 0 with 8 MiB fetches.
 * Ends with: bench-broker: produce P MB/s = R of disk, p99 L ms; consume C MB/s
 * Usage: RINGLOGD=build/bin/ringlogd bench_broker [SECONDS] [WINDOW] [RINGLOGD ARGS...]
 *        (defaults 5 and 16), e.g.
 *        make bench-broker BENCH_BROKER_ARGS="5 16 --set fetch.splice=0"
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench/bench_disk.h"
#include "common/batch.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

#define BB_PARTITIONS 8
#define BB_RECORDS 256
#define BB_RECORD_BYTES 1024
#define BB_MAX_WINDOW 128
#define BB_MAX_SAMPLES (1u << 20)

static int bb_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Produces for `seconds`; returns MB/s and fills latency percentiles (ms). */
static double bb_produce(struct tl_conn *c, double seconds, unsigned window, double pct[3])
{
    uint8_t *b;
    int len = tl_make_batch_random(BB_RECORDS, BB_RECORD_BYTES, &b);
    uint64_t *lat = malloc(BB_MAX_SAMPLES * sizeof(*lat));
    uint64_t sent_at[BB_MAX_WINDOW];
    if (len <= 0 || !lat)
        return -1;
    uint64_t t0 = tl_now_ms(), end = t0 + (uint64_t)(seconds * 1000), n = 0, sent = 0, got = 0;
    struct timespec ts;
    while (got < sent || tl_now_ms() < end) {
        while (sent - got < window && tl_now_ms() < end) {
            clock_gettime(CLOCK_MONOTONIC, &ts);
            sent_at[sent % BB_MAX_WINDOW] = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
            uint32_t part = (uint32_t)(sent % BB_PARTITIONS);
            if (tl_send_produce(c, "bench", part, b, (uint32_t)len, 1) < 0)
                return -1;
            sent++;
        }
        Ringlog__Response *resp;
        if (tl_recv(c, 30000, &resp, NULL, NULL) || resp->error_code ||
            resp->produce->topics[0]->partitions[0]->error_code)
            return -1;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
        if (n < BB_MAX_SAMPLES)
            lat[n++] = now - sent_at[got % BB_MAX_WINDOW];
        got++;
    }
    double secs = (double)(tl_now_ms() - t0) / 1000.0;
    qsort(lat, n, sizeof(*lat), bb_cmp);
    const double q[3] = {0.50, 0.99, 0.999};
    for (int i = 0; i < 3; i++)
        pct[i] = n ? (double)lat[(size_t)(q[i] * (double)(n - 1))] / 1e6 : 0;
    printf("produce: %llu batches (%llu records) in %.2f s\n", (unsigned long long)got,
           (unsigned long long)got * BB_RECORDS, secs);
    free(lat);
    free(b);
    return (double)got * (double)len / 1e6 / secs;
}

static double bb_consume(struct tl_conn *c)
{
    uint64_t t0 = tl_now_ms(), bytes = 0;
    for (uint32_t p = 0; p < BB_PARTITIONS; p++) {
        uint64_t off = 0;
        for (;;) {
            struct tl_fetch f = {.topic = "bench", .partition = p, .offset = off,
                                 .max_bytes = 8u << 20};
            struct tl_fetch_result fr;
            if (tl_fetch(c, &f, &fr))
                return -1;
            if (fr.records == 0)
                break;
            off += fr.records;
            bytes += fr.data_len;
        }
    }
    double secs = (double)(tl_now_ms() - t0) / 1000.0;
    printf("consume: %llu bytes in %.2f s\n", (unsigned long long)bytes, secs);
    return (double)bytes / 1e6 / (secs > 0 ? secs : 1e-3);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 5;
    unsigned window = argc > 2 ? (unsigned)atoi(argv[2]) : 16;
    if (window < 1 || window > BB_MAX_WINDOW || seconds <= 0) {
        fprintf(stderr, "usage: bench_broker [SECONDS] [WINDOW 1-%d]\n", BB_MAX_WINDOW);
        return 2;
    }
    const char *dir = getenv("BENCH_DIR");
    dir = dir && dir[0] ? dir : "build";
    mkdir(dir, 0755);
    setenv("TMPDIR", dir, 1);
    char err[256] = "";
    double disk = bench_disk_write_mbps(dir, 1u << 30, 1u << 20, 16, err, sizeof(err));
    if (disk <= 0) {
        fprintf(stderr, "bench_broker: cannot measure the disk in %s: %s\n", dir, err);
        return 1;
    }
    printf("disk: %.0f MB/s raw sequential write in %s\n", disk, dir);
    struct tl_broker b;
    struct tl_conn c;
    /* Arguments after SECONDS and WINDOW go to ringlogd (e.g. --set fetch.splice=0). */
    const char *extra[TL_BROKER_MAX_ARGS + 1] = {NULL};
    for (int i = 3; i < argc && i - 3 < TL_BROKER_MAX_ARGS; i++)
        extra[i - 3] = argv[i];
    if (tl_broker_start(&b, extra, 20000) || tl_connect(&c, b.host, b.port, 5000)) {
        fprintf(stderr, "bench_broker: ringlogd did not start (%s)\n", tl_ringlogd_path());
        return 1;
    }
    const char *flush = getenv("BENCH_FLUSH_POLICY");
    char flush_kv[64];
    snprintf(flush_kv, sizeof(flush_kv), "flush.policy=%s", flush && flush[0] ? flush : "batch");
    const char *const cfg[] = {flush_kv, NULL};
    double pct[3] = {0}, prod = -1, cons = -1;
    if (tl_create_topic(&c, "bench", BB_PARTITIONS, cfg, err, sizeof(err)) == 0) {
        printf("produce: %u requests in flight, %d x %d-byte records per request, acks=1, "
               "%s, %d partitions, %.0f s\n", window, BB_RECORDS, BB_RECORD_BYTES, flush_kv,
               BB_PARTITIONS, seconds);
        prod = bb_produce(&c, seconds, window, pct);
        cons = prod > 0 ? bb_consume(&c) : -1;
    }
    tl_close(&c);
    tl_broker_stop(&b, SIGTERM, 30000);
    tl_broker_cleanup(&b);
    if (prod <= 0 || cons <= 0) {
        fprintf(stderr, "bench_broker: a request failed (%s)\n", err);
        return 1;
    }
    printf("produce latency: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms\n", pct[0], pct[1], pct[2]);
    printf("bench-broker: produce %.0f MB/s = %.2f of disk, p99 %.2f ms; consume %.0f MB/s\n",
           prod, prod / disk, pct[1], cons);
    return 0;
}
