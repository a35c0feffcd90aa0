/*
 * sim_glue: one simulated node's disk when the simulator drives the replication glue: the
 * partition log (storage/plog.h) as the Raft log through replication/raftlog.h, and the
 * hard-state store (replication/hstore.h), both on a machine of their own, the simulated
 * back-end of io/ (io/io_sim.h). A crash is a power cut: what was synced survives, of the rest a
 * seeded part of the sectors, and the node comes back by opening storage, log, raftlog and
 * hstore again, as a restarted broker would.
 *
 * The simulator (sim.c) keeps its in-memory log beside it as the checker's view and as the
 * reference the recovered raftlog is compared with.
 */
#ifndef RL_TESTS_SIM_SIM_GLUE_H
#define RL_TESTS_SIM_SIM_GLUE_H

#include <stdbool.h>
#include <stdint.h>

#include "replication/raft.h"

struct sim_glue;
struct raftlog;
struct raftlog_arena;

/* A machine for one node, seeded: its simulated io (with `keep_permille` of unsynced sectors
 * surviving a cut) and directories. Returns 0 and *out or a negative code. */
int sim_glue_create(uint64_t seed, unsigned keep_permille, struct raftlog_arena *arena,
                    struct sim_glue **out);
void sim_glue_destroy(struct sim_glue *g);

/* Opens storage, the partition log, the raftlog over it and the hstore (recovering what is on
 * the simulated disk); *hs gets the hard state found. Returns 0 or a negative code. */
int sim_glue_start(struct sim_glue *g, struct raft_hard_state *hs);

/* The raftlog to hand the core (its log_ctx, with raftlog_ops), valid between start and crash. */
struct raftlog *sim_glue_log(struct sim_glue *g);

/* Power cut: everything in flight and unsynced may be lost. Tears the node's objects down and
 * turns the power back on; sim_glue_start opens them again. */
void sim_glue_crash(struct sim_glue *g);

/* Carries out the disk side of a ready: puts a changed hard state in the hstore (*hs_seq gets
 * the put's sequence number, unchanged otherwise) and the truncation and appends in the
 * raftlog, then tells it the commit index. Returns 0 or a negative code. */
int sim_glue_apply(struct sim_glue *g, const struct raft_ready *rd, uint64_t *hs_seq);

/* Runs the machine's io once (completions), and starts a hard-state flush if puts wait. */
void sim_glue_poll(struct sim_glue *g);

/* Whether the put with sequence number `seq` is durable. */
bool sim_glue_hs_durable(const struct sim_glue *g, uint64_t seq);

/* The raftlog's latest durable append since the last call (raftlog_take_durable). */
bool sim_glue_take_durable(struct sim_glue *g, uint64_t *index, uint64_t *term);

/* Releases what the raftlog handed out for the ready just carried out. */
void sim_glue_ready_done(struct sim_glue *g);

#endif
