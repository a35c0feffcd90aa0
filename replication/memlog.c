/*
 * memlog: a Raft log in memory (see memlog.h). Entries are an array in index order; every
 * lookup by index is a binary search over it, and the configuration entries have their own
 * sorted list of indexes, so the configuration at an index is a search too.
 */
#include "replication/memlog.h"

#include "common/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void memlog_init(struct memlog *l, uint64_t snap_index, uint64_t snap_term)
{
    memset(l, 0, sizeof(*l));
    l->snap_index = snap_index;
    l->snap_term = snap_term;
}

void memlog_free(struct memlog *l)
{
    free(l->e);
    free(l->conf);
    memset(l, 0, sizeof(*l));
}

uint64_t memlog_last(const struct memlog *l)
{
    return l->n ? l->e[l->n - 1].index : l->snap_index;
}

uint64_t memlog_lower_bound(const struct memlog *l, uint64_t index)
{
    uint64_t lo = 0, hi = l->n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (l->e[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const struct raft_entry *memlog_get(const struct memlog *l, uint64_t index)
{
    uint64_t k = memlog_lower_bound(l, index);
    return k < l->n && l->e[k].index == index ? &l->e[k] : NULL;
}

static int grow(void **p, uint64_t *cap, uint64_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    uint64_t c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

int memlog_append(struct memlog *l, const struct raft_entry *e)
{
    uint64_t last_term = l->n ? l->e[l->n - 1].term : l->snap_term;
    if (e->count == 0 || e->index < e->count || e->index - e->count != memlog_last(l) ||
        e->term < last_term)
        return RL_E_INVALID_ARGUMENT;
    int rc = grow((void **)&l->e, &l->cap, l->n + 1, sizeof(*l->e));
    if (rc == 0 && e->type == RAFT_ENTRY_CONFIG) {
        rc = grow((void **)&l->conf, &l->conf_cap, l->n_conf + 1, sizeof(*l->conf));
        if (rc == 0)
            l->conf[l->n_conf++] = e->index;
    }
    if (rc < 0)
        return rc;
    l->e[l->n++] = *e;
    return 0;
}

/* Drops configuration indexes above `index` (or at or below it when `below`). */
static void conf_cut(struct memlog *l, uint64_t index, bool below)
{
    if (below) {
        uint64_t k = 0;
        while (k < l->n_conf && l->conf[k] <= index)
            k++;
        if (k > 0)
            memmove(l->conf, l->conf + k, (l->n_conf - k) * sizeof(*l->conf));
        l->n_conf -= k;
    } else {
        while (l->n_conf && l->conf[l->n_conf - 1] > index)
            l->n_conf--;
    }
}

int memlog_truncate_after(struct memlog *l, uint64_t index)
{
    if (index < l->snap_index || (index > l->snap_index && !memlog_get(l, index)))
        return RL_E_INVALID_ARGUMENT;
    l->n = memlog_lower_bound(l, index + 1);
    if (l->durable_n > l->n)
        l->durable_n = l->n;
    conf_cut(l, index, false);
    return 0;
}

int memlog_compact(struct memlog *l, uint64_t index)
{
    const struct raft_entry *e = memlog_get(l, index);
    if (!e)
        return RL_E_INVALID_ARGUMENT;
    uint64_t term = e->term;
    uint64_t drop = (uint64_t)(e - l->e) + 1;
    if (drop < l->n)
        memmove(l->e, l->e + drop, (l->n - drop) * sizeof(*l->e));
    l->n -= drop;
    l->durable_n = l->durable_n > drop ? l->durable_n - drop : 0;
    l->snap_index = index;
    l->snap_term = term;
    conf_cut(l, index, true);
    return 0;
}

void memlog_reset(struct memlog *l, uint64_t index, uint64_t term)
{
    l->n = l->durable_n = l->n_conf = 0;
    l->snap_index = index;
    l->snap_term = term;
}

void memlog_set_durable(struct memlog *l, uint64_t index)
{
    uint64_t k = memlog_lower_bound(l, index);
    if (k < l->n && l->e[k].index == index && k + 1 > l->durable_n)
        l->durable_n = k + 1;
}

void memlog_crash(struct memlog *l)
{
    if (l->n > l->durable_n) {
        l->n = l->durable_n;
        conf_cut(l, memlog_last(l), false);
    }
}

uint64_t memlog_durable_last(const struct memlog *l)
{
    return l->durable_n ? l->e[l->durable_n - 1].index : l->snap_index;
}

/* ---- struct raft_log_ops ------------------------------------------------------------- */

static uint64_t ops_last(void *ctx)
{
    return memlog_last(ctx);
}

static uint64_t ops_term(void *ctx, uint64_t index)
{
    const struct memlog *l = ctx;
    if (index == l->snap_index)
        return l->snap_term;
    const struct raft_entry *e = memlog_get(l, index);
    return e ? e->term : 0;
}

static uint64_t ops_boundary(void *ctx, uint64_t index, uint64_t max_term, uint64_t *term)
{
    const struct memlog *l = ctx;
    /* Entries at positions < k end at or below index; terms never decrease, so the ones of
     * term <= max_term are a prefix of those: search it too. */
    uint64_t k = memlog_lower_bound(l, index + 1);
    uint64_t lo = 0, hi = k;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (l->e[mid].term <= max_term)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) {
        *term = 0;
        return 0;
    }
    *term = l->e[lo - 1].term;
    return l->e[lo - 1].index;
}

static int ops_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                       struct raft_entry *out, uint32_t max_n)
{
    const struct memlog *l = ctx;
    if (lo <= l->snap_index || hi > memlog_last(l))
        return RL_E_OFFSET_OUT_OF_RANGE;
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (uint64_t k = memlog_lower_bound(l, lo); k < l->n && l->e[k].index <= hi && n < max_n;
         k++) {
        if (n > 0 && bytes >= max_bytes)
            break;
        out[n] = l->e[k];
        bytes += out[n].len;
        n++;
    }
    return (int)n;
}

static int ops_config(void *ctx, uint64_t index, struct raft_entry *out)
{
    const struct memlog *l = ctx;
    uint64_t lo = 0, hi = l->n_conf;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (l->conf[mid] <= index)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    const struct raft_entry *e = memlog_get(l, l->conf[lo - 1]);
    if (!e)
        return RL_E_INTERNAL;
    *out = *e;
    return 1;
}

const struct raft_log_ops memlog_ops = {
    .last_index = ops_last,
    .term = ops_term,
    .boundary = ops_boundary,
    .entries = ops_entries,
    .config = ops_config,
};
