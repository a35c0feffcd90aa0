/*
 * services: the subsystems below the server, built in dependency order, driven by the loop and
 * closed in reverse. Dependencies point down:
 *
 *   server -> native, kafka -> delivery -> meta -> partition -> storage
 *                                        \-> svc (bg: background threads)
 *
 * This is the one place that knows the list: the loop calls services_turn every turn,
 * services_tick every SHARD_TICK_MS and services_begin_stop at shutdown, and a new subsystem
 * is added here (and a new request type in broker/native's table), not in the loop.
 */
#include "broker/server/shard_internal.h"

#include <errno.h>
#include <stdio.h>

#include "broker/delivery/delivery.h"
#include "broker/meta/meta.h"
#include "broker/partition/partition.h"
#include "broker/svc/bg.h"
#include "common/err.h"
#include "common/log.h"

static void services_mem(void *arg, int64_t delta)
{
    if (delta >= 0)
        shard_mem_charge(arg, (uint64_t)delta);
    else
        shard_mem_refund(arg, (uint64_t)-delta);
}

static int services_open_meta(struct shard *sh, char *err, size_t err_cap)
{
    const struct broker_config *cfg = &sh->cfg;
    struct meta_limits lim = {.max_topics = cfg->max_topics,
                              .max_partitions = cfg->max_partitions,
                              .topic_defaults = cfg->topic_defaults};
    snprintf(lim.data_dir, sizeof(lim.data_dir), "%s", cfg->data_dir);
    return meta_open(&lim, sh->svc.penv, sh->svc.bg, &sh->svc.meta, err, err_cap);
}

static int services_open_delivery(struct shard *sh, char *err, size_t err_cap)
{
    const struct broker_config *cfg = &sh->cfg;
    struct delivery_config dc = {
        .producer_id_expiration_ms = (int64_t)cfg->producer_id_expiration_ms,
        .fetch_splice = cfg->fetch_splice != 0,
        .coord = {
            .max_groups = cfg->max_groups,
            .group = {.max_members = cfg->group_max_members,
                      .initial_rebalance_delay_ms =
                          (int32_t)cfg->group_initial_rebalance_delay_ms,
                      .min_session_timeout_ms = (int32_t)cfg->group_min_session_timeout_ms,
                      .max_session_timeout_ms = (int32_t)cfg->group_max_session_timeout_ms},
            .offsets_topic_partitions = cfg->offsets_topic_partitions,
        },
    };
    snprintf(dc.data_dir, sizeof(dc.data_dir), "%s", cfg->data_dir);
    return delivery_open(&dc, sh->svc.meta, sh->svc.bg_state, io_wall_ms(sh->io), &sh->svc.dv,
                         err, err_cap);
}

int services_open(struct shard *sh, char *err, size_t err_cap)
{
    struct services *s = &sh->svc;
    /* Two threads, so a long producer-state replay never delays a topic's creation. */
    int rc = bg_create(sh->io, "broker", &s->bg);
    if (rc == 0)
        rc = bg_create(sh->io, "producer-state", &s->bg_state);
    if (rc) {
        snprintf(err, err_cap, "cannot start the background thread: %s", rl_strerror(rc));
        return rc;
    }
    struct partition_env_hooks hooks = {.mem = services_mem, .arg = sh};
    rc = partition_env_create(sh->io, sh->st, &hooks, &s->penv);
    if (rc) {
        snprintf(err, err_cap, "out of memory");
        return rc;
    }
    rc = services_open_meta(sh, err, err_cap);
    if (rc)
        return rc;
    rc = services_open_delivery(sh, err, err_cap);
    if (rc)
        return rc;
    rc = native_create(&req_native_host, s->meta, s->dv, &s->native);
    if (rc == 0 && sh->cfg.kafka_enabled)
        rc = kafka_create(&req_kafka_host, s->meta, s->dv, &s->kafka);
    if (rc) {
        snprintf(err, err_cap, "out of memory");
        return rc;
    }
    s->last_slow_tick_ms = s->last_retention_ms = io_wall_ms(sh->io);
    return 0;
}

void services_turn(struct shard *sh)
{
    struct services *s = &sh->svc;
    bg_reap(s->bg);
    bg_reap(s->bg_state);
    partition_env_process(s->penv);
    meta_process(s->meta);
}

void services_tick(struct shard *sh, int64_t now_ms)
{
    struct services *s = &sh->svc;
    delivery_tick(s->dv, now_ms);
    partition_env_tick(s->penv); /* room may have come from elsewhere (descriptors) */
    if (now_ms - s->last_slow_tick_ms >= SHARD_SLOW_TICK_MS || now_ms < s->last_slow_tick_ms) {
        s->last_slow_tick_ms = now_ms;
        meta_reap(s->meta);
    }
    int64_t every = (int64_t)sh->cfg.retention_check_interval_ms;
    if (now_ms - s->last_retention_ms >= every || now_ms < s->last_retention_ms) {
        s->last_retention_ms = now_ms;
        meta_enforce_retention(s->meta, now_ms);
    }
}

void services_begin_stop(struct shard *sh)
{
    delivery_begin_stop(sh->svc.dv);
}

bool services_changing(const struct shard *sh)
{
    return (sh->svc.penv && partition_env_busy(sh->svc.penv)) || (sh->svc.bg && bg_pending(sh->svc.bg) > 0) ||
           (sh->svc.meta && meta_proposals_pending(sh->svc.meta) > 0);
}

void services_work(const struct shard *sh, struct services_work *out)
{
    struct partition_env_stats ps = {0};
    if (sh->svc.penv)
        partition_env_get_stats(sh->svc.penv, &ps);
    out->topic_create =
        ps.logs_opened + ps.openings_done + (sh->svc.bg ? bg_done_count(sh->svc.bg) : 0);
    out->segment_rolls = ps.segment_rolls;
}

void services_close(struct shard *sh)
{
    struct services *s = &sh->svc;
    /* Background work still touching partitions finishes first. */
    if (s->bg_state)
        bg_drain(s->bg_state);
    if (s->bg)
        bg_drain(s->bg);
    meta_close(s->meta); /* closes every log; commit callbacks still reach the coordinator */
    s->meta = NULL;
    delivery_close(s->dv);
    s->dv = NULL;
    bg_destroy(s->bg_state);
    s->bg_state = NULL;
    bg_destroy(s->bg);
    s->bg = NULL;
    partition_env_destroy(s->penv);
    s->penv = NULL;
    native_destroy(s->native);
    s->native = NULL;
    kafka_destroy(s->kafka);
    s->kafka = NULL;
}
