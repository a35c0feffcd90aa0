/*
 * delivery: see delivery.h.
 */
#include "broker/delivery/delivery.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"

int delivery_open(const struct delivery_config *cfg, struct meta *meta, struct bg *bg,
                  int64_t now_ms, struct delivery **out, char *err, size_t err_cap)
{
    struct delivery *dv = calloc(1, sizeof(*dv));
    if (!dv)
        return -ENOMEM;
    int rc = -ENOMEM;
    dv->idem = idem_create(meta, bg, cfg->data_dir, cfg->producer_id_expiration_ms);
    if (!dv->idem || produce_create(meta, dv->idem, &dv->produce) ||
        fetch_create(meta, cfg->fetch_splice, &dv->fetch)) {
        snprintf(err, err_cap, "cannot allocate the delivery services");
        goto fail;
    }
    rc = coord_create(&cfg->coord, meta, now_ms, &dv->coord, err, err_cap);
    if (rc)
        goto fail;
    dv->last_idem_tick_ms = now_ms;
    *out = dv;
    return 0;
fail:
    delivery_close(dv);
    return rc;
}

void delivery_tick(struct delivery *dv, int64_t now_ms)
{
    coord_tick(dv->coord, now_ms);
    fetch_tick(dv->fetch);
    if (now_ms - dv->last_idem_tick_ms >= DELIVERY_IDEM_TICK_MS ||
        now_ms < dv->last_idem_tick_ms) {
        dv->last_idem_tick_ms = now_ms;
        idem_tick(dv->idem, now_ms);
    }
}

void delivery_begin_stop(struct delivery *dv)
{
    if (!dv)
        return;
    coord_stop(dv->coord);
    fetch_begin_stop(dv->fetch);
}

void delivery_close(struct delivery *dv)
{
    if (!dv)
        return;
    coord_destroy(dv->coord);
    fetch_destroy(dv->fetch);
    produce_destroy(dv->produce);
    idem_destroy(dv->idem);
    free(dv);
}

void delivery_get_stats(const struct delivery *dv, struct delivery_stats *out)
{
    idem_get_stats(dv->idem, &out->idem);
    coord_get_stats(dv->coord, &out->coord);
    produce_get_stats(dv->produce, &out->produce);
    fetch_get_stats(dv->fetch, &out->fetch);
}
