/*
 * cli_bench_hist: the latency histogram of `ringlog bench`, in the manner of HdrHistogram: fixed
 * memory, O(1) recording, relative precision better than 1% over microseconds to hours, so a
 * record costs an index computation and an increment and never an allocation.
 *
 * Layout (log-linear): values 0..255 us have a bucket each; above that, every power of two is
 * split into BHIST_SUB (128) equal buckets. A value's bucket therefore spans at most 1/128 of it,
 * and a percentile is reported as the highest value its bucket can hold (HdrHistogram's
 * "highest equivalent value"), so figures never flatter the run. The exact maximum and sum are
 * kept beside the buckets.
 *
 * Not thread-safe: each histogram has one writer (the bench gives every recording thread its
 * own). Where it sits: cli_bench_run records into it; cli_bench and cli_bench_report read it.
 */
#ifndef RL_CLIENT_CLI_BENCH_HIST_H
#define RL_CLIENT_CLI_BENCH_HIST_H

#include <stdint.h>

#define BHIST_SUB_BITS 7
#define BHIST_SUB (1u << BHIST_SUB_BITS)
/* Buckets reach 2^(BHIST_OCTAVES + BHIST_SUB_BITS) us (38 hours); longer values are clamped
 * into the top bucket (the exact maximum is still kept). */
#define BHIST_OCTAVES 30
#define BHIST_BUCKETS ((BHIST_OCTAVES + 1) * BHIST_SUB)

struct bhist {
    uint64_t count;
    uint64_t max_us;
    uint64_t sum_us;
    uint64_t buckets[BHIST_BUCKETS];
};

/* Empties h. */
void bhist_reset(struct bhist *h);

/* Counts one value in microseconds. */
static inline void bhist_record(struct bhist *h, uint64_t us);

/* Adds every count of src to dst. */
void bhist_merge(struct bhist *dst, const struct bhist *src);

/* The value in microseconds at or below which pct percent (0..100) of the values lie, as the
 * upper edge of its bucket; 100 gives the exact maximum. 0 when h is empty. */
uint64_t bhist_percentile_us(const struct bhist *h, double pct);

/* The same in milliseconds, for printing. */
double bhist_percentile_ms(const struct bhist *h, double pct);

/* The broker's latency histogram of one native API as /metrics gives it
 * (ringlog_request_latency_seconds, from a request's arrival to its answer sent): cumulative
 * counts per bucket, upper bounds in ms (the last +Inf). */
#define BHIST_PROM_BUCKETS 32
struct bhist_prom {
    uint32_t n;
    double le_ms[BHIST_PROM_BUCKETS];
    uint64_t cum[BHIST_PROM_BUCKETS];
};

/* Fills *out with api's buckets from a /metrics text (n 0 when absent). */
void bhist_prom_parse(const char *text, const char *api, struct bhist_prom *out);

/* The upper bound (ms) of the bucket holding percentile pct (0-100) of the requests counted
 * between `before` and `after` (two readings of one histogram), or -1 when none was; +Inf
 * reads as the largest finite bound. */
double bhist_prom_percentile_ms(const struct bhist_prom *before, const struct bhist_prom *after,
                                double pct);

/* Bucket arithmetic, exposed for the inline record and the tests. */
unsigned bhist_index(uint64_t us);
uint64_t bhist_upper_us(unsigned idx);

static inline void bhist_record(struct bhist *h, uint64_t us)
{
    h->buckets[bhist_index(us)]++;
    h->count++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
}

#endif
