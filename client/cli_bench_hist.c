/*
 * cli_bench_hist: log-linear latency histogram (see cli_bench_hist.h for the layout).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

void bhist_prom_parse(const char *text, const char *api, struct bhist_prom *out)
{
    char prefix[128];
    int pl = snprintf(prefix, sizeof(prefix),
                      "ringlog_request_latency_seconds_bucket{api=\"%s\",le=\"", api);
    out->n = 0;
    for (const char *line = text; line && *line;) {
        const char *v;
        if (!strncmp(line, prefix, (size_t)pl) && out->n < BHIST_PROM_BUCKETS &&
            (v = strchr(line + pl, ' ')) != NULL) {
            const char *le = line + pl;
            out->le_ms[out->n] = strncmp(le, "+Inf", 4) ? strtod(le, NULL) * 1000.0 : INFINITY;
            out->cum[out->n++] = strtoull(v + 1, NULL, 10);
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
}

double bhist_prom_percentile_ms(const struct bhist_prom *before, const struct bhist_prom *after,
                                double pct)
{
    if (after->n == 0 || after->n != before->n)
        return -1;
    uint64_t total = after->cum[after->n - 1] - before->cum[before->n - 1];
    if (total == 0)
        return -1;
    double want = (double)total * pct / 100.0;
    for (uint32_t i = 0; i < after->n; i++)
        if ((double)(after->cum[i] - before->cum[i]) >= want)
            return isinf(after->le_ms[i]) && i > 0 ? after->le_ms[i - 1] : after->le_ms[i];
    return after->n > 1 ? after->le_ms[after->n - 2] : -1;
}
