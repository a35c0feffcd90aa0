/*
 * sim_glue: a simulated node's disk through the replication glue (see sim_glue.h). The machine
 * holds a state directory /n with the hard-state file and the storage's clean-shutdown record,
 * and the partition log in /n/p (small segments, so logs roll; flush policy batch, as the
 * glue requires).
 */
#include "tests/sim/sim_glue.h"

#include "common/err.h"
#include "io/io.h"
#include "io/io_sim.h"
#include "replication/hstore.h"
#include "replication/raftlog.h"
#include "storage/plog.h"

#include <errno.h>
#include <stdlib.h>

#define GLUE_GROUP 1
#define GLUE_STATE_DIR "/n"
#define GLUE_LOG_DIR "/n/p"

#define GLUE_MAINTAIN_EVERY 64 /* polls between raftlog checkpoints */

struct sim_glue {
    struct io *io;
    uint32_t polls;
    struct raftlog_arena *arena;
    struct storage *st;
    struct plog *plog;
    struct raftlog *rl;
    struct hstore *hs;
};

int sim_glue_create(uint64_t seed, unsigned keep_permille, struct raftlog_arena *arena,
                    struct sim_glue **out)
{
    struct sim_glue *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    int err = 0;
    struct io_sim_config cfg = {.seed = seed, .keep_permille = keep_permille,
                                .delay_permille = 100};
    g->io = io_create_sim(&cfg, &err);
    if (!g->io) {
        free(g);
        return err ? err : -ENOMEM;
    }
    g->arena = arena;
    int rc = io_dir_make(g->io, GLUE_STATE_DIR, 0755);
    if (rc < 0) {
        sim_glue_destroy(g);
        return rc;
    }
    *out = g;
    return 0;
}

/* Closes what is open, in the order that lets everything in flight answer first. */
static void teardown(struct sim_glue *g)
{
    if (g->rl)
        raftlog_close(g->rl);
    if (g->st)
        storage_destroy(g->st); /* closes the plog */
    if (g->hs)
        hstore_close(g->hs);
    g->rl = NULL;
    g->st = NULL;
    g->plog = NULL;
    g->hs = NULL;
}

void sim_glue_destroy(struct sim_glue *g)
{
    if (!g)
        return;
    teardown(g);
    io_destroy(g->io);
    free(g);
}

int sim_glue_start(struct sim_glue *g, struct raft_hard_state *hs)
{
    struct storage_options so = {.max_open_files = 8, .state_dir = GLUE_STATE_DIR};
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 32 * 1024;
    cfg.index_interval_bytes = 512;
    cfg.retention_ms = -1;
    int rc = storage_open(g->io, &so, &g->st);
    if (rc == 0)
        rc = plog_open(g->st, GLUE_LOG_DIR, &cfg, NULL, &g->plog);
    if (rc == 0)
        rc = raftlog_open(g->io, g->plog, GLUE_LOG_DIR, g->arena, &g->rl);
    if (rc == 0)
        rc = hstore_open(g->io, GLUE_STATE_DIR, &g->hs);
    if (rc < 0) {
        teardown(g);
        return rc;
    }
    *hs = hstore_get(g->hs, GLUE_GROUP);
    return 0;
}

struct raftlog *sim_glue_log(struct sim_glue *g)
{
    return g->rl;
}

void sim_glue_crash(struct sim_glue *g)
{
    io_sim_cut_power_now(g->io);
    teardown(g);
    io_sim_restart(g->io);
}

int sim_glue_apply(struct sim_glue *g, const struct raft_ready *rd, uint64_t *hs_seq)
{
    if (rd->hard_state_changed) {
        int64_t seq = hstore_put(g->hs, GLUE_GROUP, &rd->hard_state);
        if (seq < 0)
            return (int)seq;
        *hs_seq = (uint64_t)seq;
    }
    int rc = raftlog_apply(g->rl, rd);
    if (rc == 0 && rd->commit_changed)
        raftlog_set_commit(g->rl, rd->commit_index);
    return rc;
}

void sim_glue_poll(struct sim_glue *g)
{
    io_run(g->io, 0);
    hstore_flush(g->hs);
    if (++g->polls % GLUE_MAINTAIN_EVERY == 0)
        raftlog_maintain(g->rl, 0); /* so restarts also start from a checkpoint */
}

bool sim_glue_hs_durable(const struct sim_glue *g, uint64_t seq)
{
    return hstore_durable_seq(g->hs) >= seq;
}

bool sim_glue_take_durable(struct sim_glue *g, uint64_t *index, uint64_t *term)
{
    return raftlog_take_durable(g->rl, index, term);
}

void sim_glue_ready_done(struct sim_glue *g)
{
    raftlog_ready_done(g->rl);
}
