/*
 * cli_bench_hist: log-linear latency histogram (see cli_bench_hist.h for the layout).
 */
#include <string.h>

#include "client/cli_bench_hist.h"

void bhist_reset(struct bhist *h)
{
    memset(h, 0, sizeof(*h));
}

unsigned bhist_index(uint64_t us)
{
    if (us < 2 * BHIST_SUB)
        return (unsigned)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us);
    unsigned shift = msb - BHIST_SUB_BITS;
    unsigned idx = (shift + 1) * BHIST_SUB + (unsigned)((us >> shift) - BHIST_SUB);
    return idx < BHIST_BUCKETS ? idx : BHIST_BUCKETS - 1;
}

uint64_t bhist_upper_us(unsigned idx)
{
    if (idx < 2 * BHIST_SUB)
        return idx;
    unsigned shift = idx / BHIST_SUB - 1;
    uint64_t sub = idx % BHIST_SUB + BHIST_SUB;
    return ((sub + 1) << shift) - 1;
}

void bhist_merge(struct bhist *dst, const struct bhist *src)
{
    for (unsigned i = 0; i < BHIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum_us += src->sum_us;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

uint64_t bhist_percentile_us(const struct bhist *h, double pct)
{
    if (h->count == 0)
        return 0;
    if (pct >= 100.0)
        return h->max_us;
    /* The rank of the value asked for, 1-based: the smallest value with at least this many
     * values at or below it. */
    uint64_t rank = (uint64_t)((double)h->count * pct / 100.0 + 0.5);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BHIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = bhist_upper_us(i);
            return v < h->max_us ? v : h->max_us;
        }
    }
    return h->max_us;
}

double bhist_percentile_ms(const struct bhist *h, double pct)
{
    return (double)bhist_percentile_us(h, pct) / 1000.0;
}
