/*
 * broker_sim: the broker's state services (metadata, partitions, producer state, the group
 * coordinator) opened on the simulated back-end of io/, for unit tests of what survives power
 * cuts and damage (header-only, like storage_testutil.h). Every file operation below goes
 * through the simulated disk; the loop is driven by hand (bs_loop_once).
 */
#ifndef RL_TESTS_UNIT_BROKER_SIM_H
#define RL_TESTS_UNIT_BROKER_SIM_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/delivery/coordinator.h"
#include "broker/delivery/idempotence.h"
#include "broker/meta/meta.h"
#include "broker/partition/partition.h"
#include "broker/svc/bg.h"
#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"
#include "io/io_sim.h"
#include "storage/plog.h"

#define DATA_DIR "/d"
#define TOPIC "t"
#define LOOP_GUARD 100000
#define NOW_MS 1800000000000ll

struct broker {
    struct io *io;
    struct storage *st;
    struct bg *bg;
    struct partition_env *env;
    struct meta *m;
    struct idem *id;
    struct coord *coord;
    struct batch_builder *bb;
    const char *segment_bytes; /* default segment.bytes of new topics (NULL: built-in) */
    int64_t offsets_retention_ms; /* 0: commits never expire (checked every second) */
    uint32_t node_id;          /* a cluster node (only partitions placed on it open); 0: single */
};

static inline void loop_once(struct broker *x)
{
    meta_process(x->m);
    io_run(x->io, 1000000ull);
    bg_reap(x->bg);
    partition_env_process(x->env);
}

/* Opens everything on x->io; returns 0 or the failing step's code. */
static inline int broker_open(struct broker *x)
{
    struct storage_options so = {.max_open_files = 64, .state_dir = DATA_DIR};
    int rc = storage_open(x->io, &so, &x->st);
    if (rc)
        return rc;
    if ((rc = bg_create(x->io, "test", &x->bg)) != 0)
        return rc;
    struct partition_env_hooks hooks = {0};
    if ((rc = partition_env_create(x->io, x->st, &hooks, &x->env)) != 0)
        return rc;
    struct meta_limits lim = {.max_topics = 10, .max_partitions = 50, .node_id = x->node_id};
    config_topic_default(&lim.topic_defaults);
    if (x->segment_bytes)
        snprintf(lim.topic_defaults.values[CONFIG_SEGMENT_BYTES], CONFIG_VALUE_MAX, "%s",
                 x->segment_bytes);
    snprintf(lim.data_dir, sizeof(lim.data_dir), "%s", DATA_DIR);
    char err[512];
    if ((rc = meta_open(&lim, x->env, x->bg, &x->m, err, sizeof(err))) != 0)
        return rc;
    x->id = idem_create(x->m, x->bg, DATA_DIR, 3600ll * 1000 * 24 * 7);
    x->bb = batch_builder_create(1 << 20, BATCH_CODEC_NONE, 0);
    if (!x->id || !x->bb)
        return -ENOMEM;
    struct coord_config cc = {.max_groups = 100, .offsets_topic_partitions = 1,
                              .group = {.max_members = 10, .min_session_timeout_ms = 100,
                                        .max_session_timeout_ms = 60000},
                              .offsets_retention_ms = x->offsets_retention_ms,
                              .offsets_retention_check_ms = 1000};
    return coord_create(&cc, x->m, x->bg, NOW_MS, &x->coord, err, sizeof(err));
}

/* Opens x (zeroed but for its options) on a fresh simulated back-end, seed 1, with the log
 * quiet unless RINGLOG_TEST_VERBOSE is set; fails the test if any step fails. */
static inline void broker_sim_start(struct broker *x)
{
    if (!getenv("RINGLOG_TEST_VERBOSE"))
        rl_log_set_level(RL_LOG_OFF);
    struct io_sim_config sc = {.seed = 1, .wall_start_ms = NOW_MS};
    int err = 0;
    x->io = io_create_sim(&sc, &err);
    cr_assert_not_null(x->io, "io_create_sim: %d", err);
    cr_assert_eq(io_dir_make(x->io, DATA_DIR, 0755), 0);
    cr_assert_eq(broker_open(x), 0);
}

/* Tears everything down (after a power cut too: the operations then fail, nothing more). */
static inline void broker_close(struct broker *x)
{
    if (x->bg)
        bg_drain(x->bg);
    /* The server's order (broker/server/services.c): partitions close first, and their
     * producer state (attached to them) with them. */
    coord_stop(x->coord);
    meta_close(x->m);
    idem_destroy(x->id);
    coord_destroy(x->coord);
    bg_destroy(x->bg);
    partition_env_destroy(x->env);
    storage_destroy(x->st);
    batch_builder_destroy(x->bb);
    x->id = NULL;
    x->coord = NULL;
    x->m = NULL;
    x->bg = NULL;
    x->env = NULL;
    x->st = NULL;
    x->bb = NULL;
}

struct prop {
    struct meta_proposal pr;
    bool done;
};

static inline void prop_done(struct meta_proposal *pr)
{
    ((struct prop *)pr)->done = true;
}

static inline int create_topic(struct broker *x, const char *flush)
{
    struct meta_config cfg[2] = {{"segment.bytes", "4096"}, {"flush.policy", flush}};
    struct meta_topic_spec spec = {.name = TOPIC, .partitions = 1, .n_configs = 2,
                                   .configs = cfg};
    struct prop p = {.pr = {.done = prop_done}};
    meta_propose_create(x->m, &p.pr, &spec);
    for (int i = 0; !p.done && i < LOOP_GUARD; i++)
        loop_once(x);
    return p.done ? p.pr.rc : RL_E_TIMED_OUT;
}

static inline struct partition *part(struct broker *x)
{
    int err = 0;
    struct partition *p = meta_partition(x->m, TOPIC, 0, &err);
    cr_assert_not_null(p, "no partition: %s", rl_strerror(err));
    return p;
}

#endif
