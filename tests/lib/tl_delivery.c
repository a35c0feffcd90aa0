/*
 * tl_delivery: see tl_delivery.h.
 */
#include "tests/lib/tl_delivery.h"

#include <stdio.h>
#include <string.h>

void tl_deliveries_init(struct tl_deliveries *d, int32_t *partition_of, size_t n)
{
    memset(d, 0, sizeof(*d));
    for (int i = 0; i < TL_DELIVERY_PARTITIONS; i++)
        d->last_offset[i] = -1;
    d->partition_of = partition_of;
    d->n_partition_of = partition_of ? n : 0;
}

void tl_delivery_cb(void *ctx, const struct rl_delivery *d)
{
    struct tl_deliveries *r = ctx;
    if (d->status == RL_DELIVERY_PERSISTED)
        atomic_fetch_add(&r->persisted, 1);
    else if (d->status == RL_DELIVERY_POSSIBLY_PERSISTED)
        atomic_fetch_add(&r->possibly, 1);
    else
        atomic_fetch_add(&r->not_persisted, 1);
    if (d->error && atomic_fetch_add(&r->failed, 1) == 0) {
        r->first_error = d->error;
        snprintf(r->first_msg, sizeof(r->first_msg), "%s", d->error_message);
    }
    if (!d->error && d->partition >= 0 && d->partition < TL_DELIVERY_PARTITIONS) {
        if (d->offset <= r->last_offset[d->partition])
            atomic_fetch_add(&r->out_of_order, 1);
        r->last_offset[d->partition] = d->offset;
    }
    size_t i = (size_t)(uintptr_t)d->opaque;
    if (r->partition_of && i < r->n_partition_of)
        r->partition_of[i] = d->error ? -1 : d->partition;
    atomic_fetch_add(&r->reports, 1); /* last: a waiter sees everything above */
}
