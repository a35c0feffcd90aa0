/* ringlog bench's building blocks without a broker: the latency histogram's buckets and
 * percentiles, the stamped payloads (exact sizes, stamps that round-trip, random batches
 * that stay incompressible pool cycle after pool cycle, JSON events that are well formed and
 * compress), the broker's produce latency and counters read from /metrics texts, and the
 * loaded fdatasync probe's pace. Seeds are fixed,
 * so every run checks the same records. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "client/cli.h"
#include "client/cli_bench_broker.h"
#include "client/cli_bench_hist.h"
#include "client/cli_bench_payload.h"
#include "client/cli_probe.h"

/* Every value lies inside its bucket, buckets are contiguous, and a bucket is at most 1/128
 * of its values wide. */
Test(bench_hist, buckets_cover_values)
{
    uint64_t prev_upper = 0;
    for (unsigned idx = 1; idx < BHIST_BUCKETS - 1; idx++) {
        uint64_t upper = bhist_upper_us(idx);
        cr_assert_gt(upper, prev_upper, "bucket %u does not start after %u", idx, idx - 1);
        cr_assert_eq(bhist_index(prev_upper + 1), idx, "value %llu not in bucket %u",
                     (unsigned long long)prev_upper + 1, idx);
        cr_assert_eq(bhist_index(upper), idx);
        cr_assert_leq((double)(upper - prev_upper), (double)upper / 128 + 1,
                      "bucket %u is %llu wide at %llu", idx,
                      (unsigned long long)(upper - prev_upper), (unsigned long long)upper);
        prev_upper = upper;
    }
    cr_assert_eq(bhist_index(UINT64_MAX), BHIST_BUCKETS - 1, "huge values are clamped");
}

/* Percentiles of 1..100000 us: within the bucket precision, never below the true value; the
 * maximum is exact; merging two halves gives the same figures. */
Test(bench_hist, percentiles_and_merge)
{
    static struct bhist a, b, all;
    bhist_reset(&a);
    bhist_reset(&b);
    bhist_reset(&all);
    for (uint64_t v = 1; v <= 100000; v++) {
        bhist_record(v % 2 ? &a : &b, v);
        bhist_record(&all, v);
    }
    static const double pcts[] = {50, 90, 99, 99.9};
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        double want = pcts[i] * 1000;
        uint64_t got = bhist_percentile_us(&all, pcts[i]);
        cr_assert(got >= want && got <= want * 1.01, "p%g = %llu, want %.0f", pcts[i],
                  (unsigned long long)got, want);
    }
    cr_assert_eq(bhist_percentile_us(&all, 100), 100000);
    bhist_merge(&a, &b);
    cr_assert_eq(a.count, all.count);
    cr_assert_eq(memcmp(a.buckets, all.buckets, sizeof(a.buckets)), 0);
    cr_assert_eq(bhist_percentile_us(&a, 99), bhist_percentile_us(&all, 99));
    bhist_reset(&a);
    cr_assert_eq(bhist_percentile_us(&a, 50), 0, "an empty histogram reports 0");
}

static double zstd_ratio(const uint8_t *buf, size_t n)
{
    size_t cap = ZSTD_compressBound(n);
    void *out = malloc(cap);
    size_t c = ZSTD_compress(out, cap, buf, n, 1);
    free(out);
    cr_assert(!ZSTD_isError(c));
    return (double)c / (double)n;
}

/* Builds `count` consecutive records into buf, stamped base + i, and checks every stamp. */
static void fill_batch(struct payload *p, uint8_t *buf, size_t count, uint64_t base)
{
    for (size_t i = 0; i < count; i++) {
        const uint8_t *r = payload_next(p, base + i);
        memcpy(buf + i * p->record_size, r, p->record_size);
    }
    for (size_t i = 0; i < count; i++) {
        uint64_t stamp = 0;
        cr_assert_eq(payload_stamp(p->kind, buf + i * p->record_size, p->record_size, &stamp),
                     0);
        cr_assert_eq(stamp, base + i, "record %zu carries stamp %llu", i,
                     (unsigned long long)stamp);
    }
}

/* Random records: stamps round-trip, and 128 KiB batches stay incompressible after 40 passes
 * over the pool (stamps left in the pool once made them 20-35% compressible). */
Test(bench_payload, random_stays_incompressible)
{
    struct payload p;
    char err[256];
    cr_assert_eq(payload_init(&p, PAYLOAD_RANDOM, 1024, 0, 42, err, sizeof(err)), 0, "%s", err);
    uint8_t *batch = malloc(128 * 1024);
    size_t per_pool = p.pool_bytes / 1024;
    for (int cycle = 0; cycle < 40; cycle++)
        for (size_t i = 0; i < per_pool; i++)
            payload_next(&p, 1700000000000000000ull + i);
    for (int k = 0; k < 8; k++) {
        fill_batch(&p, batch, 128, 1700000000000000000ull + (uint64_t)k * 128);
        double r = zstd_ratio(batch, 128 * 1024);
        cr_assert_geq(r, 0.999, "random batch %d compresses to %.3f", k, r);
    }
    free(batch);
    payload_free(&p);
}

/* Outside strings, braces and brackets balance and close at the end; no control bytes. */
static void assert_json_shape(const uint8_t *r, size_t n)
{
    int depth = 0;
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_geq(r[i], 0x20, "control byte at %zu", i);
        if (in_string) {
            in_string = r[i] != '"';
            continue;
        }
        if (r[i] == '"')
            in_string = 1;
        else if (r[i] == '{' || r[i] == '[')
            depth++;
        else if (r[i] == '}' || r[i] == ']')
            depth--;
        cr_assert(depth > 0 || i == n - 1, "structure closes early at %zu of %zu", i, n);
    }
    cr_assert_eq(depth, 0);
    cr_assert(!in_string);
}

/* JSON events of several sizes: exact size, well formed, stamped, distinct within a batch,
 * and compressible the way events are. */
Test(bench_payload, json_events)
{
    static const size_t sizes[] = {64, 100, 333, 1024, 4096};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        struct payload p;
        char err[256];
        size_t size = sizes[s], count = 128 * 1024 / size;
        cr_assert_eq(payload_init(&p, PAYLOAD_JSON, size, 0, 7, err, sizeof(err)), 0, "%s",
                     err);
        uint8_t *batch = malloc(count * size);
        fill_batch(&p, batch, count, 123456789012345678ull);
        for (size_t i = 0; i < count; i++)
            assert_json_shape(batch + i * size, size);
        cr_assert_neq(memcmp(batch, batch + size, size), 0, "consecutive events are equal");
        double r = zstd_ratio(batch, count * size);
        cr_assert(r > 0.02 && r < 0.5, "%zu-byte events compress to %.3f", size, r);
        free(batch);
        payload_free(&p);
    }
}

/* Sizes that cannot carry a stamp are refused with a message naming the option. */
Test(bench_payload, too_small)
{
    struct payload p;
    char err[256] = "";
    cr_assert_eq(payload_init(&p, PAYLOAD_JSON, 63, 0, 1, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "--record-size"), "%s", err);
    cr_assert_eq(payload_init(&p, PAYLOAD_RANDOM, 7, 0, 1, err, sizeof(err)), -EINVAL);
    uint64_t stamp;
    cr_assert_eq(payload_stamp(PAYLOAD_JSON, (const uint8_t *)"{\"x\":1}", 7, &stamp), -EINVAL);
}

/* The broker's produce latency over a phase: the difference of two readings of its cumulative
 * histogram, read as the upper bound of the bucket holding the percentile; another API's
 * series are not mixed in; +Inf reads as the largest finite bound; no request: -1. */
Test(bench_broker, produce_latency_from_two_readings)
{
    static const char before[] =
        "# TYPE ringlog_request_latency_seconds histogram\n"
        "ringlog_request_latency_seconds_bucket{api=\"fetch\",le=\"0.001\"} 500\n"
        "ringlog_request_latency_seconds_bucket{api=\"produce\",le=\"0.001\"} 10\n"
        "ringlog_request_latency_seconds_bucket{api=\"produce\",le=\"0.0025\"} 10\n"
        "ringlog_request_latency_seconds_bucket{api=\"produce\",le=\"0.05\"} 10\n"
        "ringlog_request_latency_seconds_bucket{api=\"produce\",le=\"+Inf\"} 10\n";
    static const char after[] =
        "ringlog_request_latency_seconds_bucket{api=\"produce\",le=\"0.001\"} 60\n"
        "ringlog_request_latency_seconds_bucket{api=\"produce\",le=\"0.0025\"} 108\n"
        "ringlog_request_latency_seconds_bucket{api=\"produce\",le=\"0.05\"} 109\n"
        "ringlog_request_latency_seconds_bucket{api=\"produce\",le=\"+Inf\"} 110\n"
        "ringlog_request_latency_seconds_bucket{api=\"fetch\",le=\"0.001\"} 900\n";
    struct bhist_prom h0, h1;
    bhist_prom_parse(before, "produce", &h0);
    bhist_prom_parse(after, "produce", &h1);
    cr_assert_eq(h1.n, 4);
    cr_assert_eq(h1.cum[1], 108);
    cr_assert_float_eq(h1.le_ms[1], 2.5, 1e-9);
    /* 100 requests in the phase: 50 within 1 ms, 48 more within 2.5 ms, 1 within 50, 1 over. */
    cr_assert_float_eq(bhist_prom_percentile_ms(&h0, &h1, 50), 1.0, 1e-9);
    cr_assert_float_eq(bhist_prom_percentile_ms(&h0, &h1, 98), 2.5, 1e-9);
    cr_assert_float_eq(bhist_prom_percentile_ms(&h0, &h1, 99), 50.0, 1e-9);
    cr_assert_float_eq(bhist_prom_percentile_ms(&h0, &h1, 100), 50.0, 1e-9, "+Inf");
    cr_assert_eq(bhist_prom_percentile_ms(&h1, &h1, 99), -1, "no request in between");
    struct bhist_prom none;
    bhist_prom_parse("ringlog_topics 3\n", "produce", &none);
    cr_assert_eq(none.n, 0);
    cr_assert_eq(bhist_prom_percentile_ms(&none, &none, 99), -1);
}

/* The tool's error printer (client/cli.c, which holds the tool's main), for cli_bench_broker's
 * messages. */
void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Counters the bench prints: every series of each metric whose name holds the part, summed
 * over labels; histogram buckets left out; whole counts printed whole and seconds to the
 * microsecond (a loop's preempted time of 0.25 s printed as 0 hid it). */
Test(bench_broker, counters_matching_a_part)
{
    static const char text[] =
        "# TYPE ringlog_loop_slow_turns_total counter\n"
        "ringlog_loop_slow_turns_total{work=\"segment_roll\"} 2\n"
        "ringlog_loop_slow_turns_total{work=\"other\"} 5\n"
        "ringlog_loop_turn_seconds_bucket{le=\"0.001\"} 40\n"
        "ringlog_loop_preempted_seconds_total 0.250000\n"
        "ringlog_peer_frames_sent_total 2470115299\n";
    char buf[512];
    cr_assert_eq(bbroker_metrics_matching(text, "ringlog_loop_", buf, sizeof(buf)), 2);
    cr_assert_str_eq(buf, "ringlog_loop_slow_turns_total=7 "
                          "ringlog_loop_preempted_seconds_total=0.250000");
    cr_assert_eq(bbroker_metrics_matching(text, "peer", buf, sizeof(buf)), 1);
    cr_assert_str_eq(buf, "ringlog_peer_frames_sent_total=2470115299");
    cr_assert_eq(bbroker_metrics_matching(text, "nothing", buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "");
}

/* The loaded fdatasync probe writes at the pace asked for (two streams of 1 MB/s for 0.5 s
 * write about 2 MB/s), its percentiles are ordered, and bad arguments are refused with a
 * message. Needs a directory on a file system with O_DIRECT ($TMPDIR, else /var/tmp). */
Test(bench_probe, loaded_fsync_probe_keeps_its_pace)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
    struct probe_loaded f = {0};
    char err[256] = "";
    cr_assert_eq(probe_fsync_loaded_run(dir, 0, 1.0, 0.5, &f, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "bad arguments"), "%s", err);
    int rc = probe_fsync_loaded_run(dir, 2, 1.0, 0.5, &f, err, sizeof(err));
    if (rc == -EINVAL)
        cr_skip_test("%s has no O_DIRECT: %s", dir, err);
    cr_assert_eq(rc, 0, "%s", err);
    /* Every unit due within the run, no more, however slow the disk's last fdatasync: 2
     * streams of 122 units of 4 KiB (1 MB/s for 0.5 s each), done no sooner than the run. */
    cr_assert_eq(f.bytes, 2 * 122 * 4096, "wrote %llu bytes", (unsigned long long)f.bytes);
    cr_assert(f.seconds > 0.48 && f.mbps < 2.1, "wrote %.2f MB/s in %.3f s, asked for 2",
              f.mbps, f.seconds);
    cr_assert(f.p50_ms > 0 && f.p50_ms <= f.p99_ms, "p50 %.2f p99 %.2f ms", f.p50_ms, f.p99_ms);
    cr_assert_lt(f.p99_ms, 2000, "a 2 MB/s load took %.2f ms at p99", f.p99_ms);
}
