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
#include <stdlib.h>

#include "broker/cluster/ctl.h"
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
                              .topic_defaults = cfg->topic_defaults,
                              .node_id = cfg->n_voters ? (uint32_t)cfg->node_id : 0};
    snprintf(lim.data_dir, sizeof(lim.data_dir), "%s", cfg->data_dir);
    /* Compaction changes how many records metadata.log holds, which a cluster node's node.id
     * counts: single brokers only (and not on a cluster node's directory started alone, which
     * services_open_cluster refuses after this). */
    char why[512];
    if (cfg->n_voters == 0 && ctl_check_standalone(cfg->data_dir, why, sizeof(why)) == 0)
        lim.log_compact_min_dropped = META_LOG_COMPACT_MIN_DROPPED;
    return meta_open(&lim, sh->svc.penv, sh->svc.bg, &sh->svc.meta, err, err_cap);
}

static void services_cluster_view(void *ctx, struct native_cluster_view *out)
{
    struct shard *sh = ctx;
    struct ctl_status st;
    ctl_get_status(sh->svc.ctl, &st);
    out->controller_id = st.leader ? (int32_t)st.leader : -1;
    snprintf(out->cluster_id, sizeof(out->cluster_id), "%016llx",
             (unsigned long long)st.cluster_id);
    out->term = st.term;
    out->commit = st.commit;
    out->applied = st.applied;
    out->self = (int32_t)st.self;
    out->n_brokers = 0;
    for (uint32_t i = 0; i < st.n_brokers && i < NATIVE_MAX_BROKERS; i++) {
        uint32_t k = out->n_brokers++;
        out->brokers[k].id = (int32_t)st.brokers[i].id;
        snprintf(out->brokers[k].host, sizeof(out->brokers[k].host), "%s", st.brokers[i].host);
        out->brokers[k].port = st.brokers[i].port;
        out->brokers[k].fenced = !st.brokers[i].alive;
        out->brokers[k].decommissioned = st.brokers[i].decommissioned;
    }
    out->n_voters = st.n_voters;
    for (uint32_t i = 0; i < st.n_voters && i < 16; i++) {
        out->voters[i].id = (int32_t)st.voters[i].id;
        out->voters[i].match = st.voters[i].match;
        out->voters[i].reachable = st.voters[i].reachable;
    }
}

static void services_kafka_view(void *ctx, struct kafka_cluster_view *out)
{
    struct shard *sh = ctx;
    struct ctl_status st;
    ctl_get_status(sh->svc.ctl, &st);
    out->controller_id = st.leader ? (int32_t)st.leader : -1;
    snprintf(out->cluster_id, sizeof(out->cluster_id), "%016llx",
             (unsigned long long)st.cluster_id);
    out->n_brokers = 0;
    for (uint32_t i = 0; i < st.n_brokers && out->n_brokers < KAFKA_MAX_BROKERS; i++) {
        uint32_t k = out->n_brokers++;
        out->brokers[k].id = (int32_t)st.brokers[i].id;
        snprintf(out->brokers[k].host, sizeof(out->brokers[k].host), "%s",
                 st.brokers[i].kafka_host);
        out->brokers[k].port = st.brokers[i].kafka_port;
    }
}

/* With --voters: the controller (group 0 over the voters) becomes meta's committer. */
static int services_open_cluster(struct shard *sh, char *err, size_t err_cap)
{
    const struct broker_config *cfg = &sh->cfg;
    if (cfg->n_voters == 0)
        return ctl_check_standalone(cfg->data_dir, err, err_cap);
    struct ctl_config cc = {.self = (uint32_t)cfg->node_id, .n_voters = cfg->n_voters,
                            .listen_port = cfg->listen_port, .tick_ms = SHARD_TICK_MS,
                            .election_timeout_ms = cfg->election_timeout_ms,
                            .session_timeout_ms = cfg->broker_session_timeout_ms,
                            .catchup_bytes_per_sec = cfg->catchup_bytes_per_sec,
                            .snapshot_entries = cfg->controller_snapshot_entries,
                            .leader_balance = cfg->auto_leader_rebalance != 0};
    for (uint32_t i = 0; i < cfg->n_voters; i++) {
        cc.voters[i].id = (uint32_t)cfg->voters[i].id;
        snprintf(cc.voters[i].host, sizeof(cc.voters[i].host), "%s", cfg->voters[i].host);
        cc.voters[i].port = cfg->voters[i].port;
    }
    snprintf(cc.data_dir, sizeof(cc.data_dir), "%s", cfg->data_dir);
    snprintf(cc.listen_host, sizeof(cc.listen_host), "%s", cfg->listen_host);
    return ctl_open(sh->io, sh->st, sh->svc.meta, &cc, &sh->svc.ctl, err, err_cap);
}

bool services_adopt_peer(struct shard *sh, int fd, const uint8_t *pre, size_t n)
{
    return sh->svc.ctl && ctl_adopt(sh->svc.ctl, fd, pre, n);
}

char *services_cluster_text(const struct shard *sh, bool metrics)
{
    if (!sh->svc.ctl)
        return NULL;
    size_t cap = metrics ? 1024 * 1024 : 64 * 1024; /* per-partition replica lines */
    char *buf = malloc(cap);
    if (buf && metrics)
        ctl_metrics_text(sh->svc.ctl, buf, cap);
    else if (buf)
        ctl_status_json(sh->svc.ctl, buf, cap);
    return buf;
}

char *services_cluster_json(const struct shard *sh)
{
    return services_cluster_text(sh, false);
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
            .offsets_topic_replication_factor = cfg->offsets_topic_replication_factor,
            .offsets_retention_ms = (int64_t)cfg->offsets_retention_minutes * 60000,
            .offsets_retention_check_ms = cfg->offsets_retention_check_interval_ms,
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
    rc = services_open_cluster(sh, err, err_cap);
    if (rc)
        return rc;
    rc = services_open_delivery(sh, err, err_cap);
    if (rc)
        return rc;
    rc = native_create(&req_native_host, s->meta, s->dv, &s->native);
    if (rc == 0 && sh->cfg.kafka_enabled)
        rc = kafka_create(&req_kafka_host, s->meta, s->dv, &s->kafka);
    if (rc == 0 && s->kafka) {
        struct kafka_auto_create ac = {
            .enable = sh->cfg.auto_create_topics != 0,
            .partitions = (int32_t)sh->cfg.num_partitions,
            .replication_factor = (int32_t)sh->cfg.default_replication_factor};
        rc = kafka_set_auto_create(s->kafka, &ac);
    }
    if (rc) {
        snprintf(err, err_cap, "out of memory");
        return rc;
    }
    if (s->ctl)
        native_set_cluster(s->native, services_cluster_view, sh);
    if (s->ctl && s->kafka)
        kafka_set_cluster(s->kafka, services_kafka_view, sh);
    s->last_slow_tick_ms = s->last_retention_ms = io_wall_ms(sh->io);
    return 0;
}

void services_turn(struct shard *sh)
{
    struct services *s = &sh->svc;
    bg_reap(s->bg);
    bg_reap(s->bg_state);
    partition_env_process(s->penv);
    if (s->ctl)
        ctl_turn(s->ctl); /* committed controller entries reach meta's queue */
    meta_process(s->meta);
    if (s->ctl)
        ctl_turn(s->ctl); /* a change meta just submitted goes out this turn */
}

void services_tick(struct shard *sh, int64_t now_ms)
{
    struct services *s = &sh->svc;
    if (s->ctl)
        ctl_tick(s->ctl);
    char why[600];
    int frc = s->ctl && !sh->exit_rc ? ctl_fatal(s->ctl, why, sizeof(why)) : 0;
    if (frc) {
        RL_ERROR("%s", why);
        sh->exit_rc = frc;
        shard_request_stop(sh);
    }
    delivery_tick(s->dv, now_ms);
    partition_env_tick(s->penv); /* room may have come from elsewhere (descriptors) */
    if (now_ms - s->last_slow_tick_ms >= SHARD_SLOW_TICK_MS || now_ms < s->last_slow_tick_ms) {
        s->last_slow_tick_ms = now_ms;
        meta_reap(s->meta);
        meta_reopen_missing(s->meta, now_ms);
    }
    int64_t every = (int64_t)sh->cfg.retention_check_interval_ms;
    if (now_ms - s->last_retention_ms >= every || now_ms < s->last_retention_ms) {
        s->last_retention_ms = now_ms;
        meta_enforce_retention(s->meta, now_ms);
    }
}

uint32_t services_handoff(struct shard *sh)
{
    return sh->svc.ctl ? ctl_handoff(sh->svc.ctl) : 0;
}

void services_begin_stop(struct shard *sh)
{
    if (sh->svc.ctl)
        ctl_begin_stop(sh->svc.ctl);
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
    if (s->ctl)
        ctl_begin_stop(s->ctl);
    ctl_close(s->ctl); /* before meta: it is meta's committer */
    s->ctl = NULL;
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
