/*
 * sim: a deterministic simulator for the raft core (replication/raft.h).
 *
 * One seeded PRNG drives everything in a run: a 3- or 5-voter cluster (plus one spare node that
 * membership changes may add), a network that delays, loses, duplicates and reorders messages
 * (each link in order, as a TCP connection, but for rare stragglers and duplicates that arrive
 * late) and suffers symmetric and one-way partitions, disks whose appends become durable only
 * after a delay, crashes that lose whatever was not yet durable, restarts, client proposals,
 * membership changes, leadership transfers and log compaction (so lagging followers need
 * snapshots).
 *
 * Entries span a random number of indexes (records), or one each in a third of the runs, and
 * membership changes go through learners (add, catch up, promote) as well as directly.
 *
 * After every step (each call into a node's core and the handling of its ready) a checker
 * verifies: at most one leader per term; log matching on indexes; leader completeness; no
 * committed entry ever changed or erased on any node, and every commit a boundary that extends
 * the committed log; commit index never moving backwards within a node's life; no node lacking
 * the newest committed entry able to win an election; only voters campaigning. A run ends with
 * a liveness phase: the network heals, every node restarts, and a leader must be elected and
 * commit a fresh proposal within a bounded number of ticks.
 *
 * The same seed reproduces a run exactly; a run with `trace` set keeps the last trace lines
 * (every delivery, tick, crash, partition and proposal) and prints them if the run fails.
 */
#ifndef RL_TESTS_SIM_SIM_H
#define RL_TESTS_SIM_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct sim_options {
    uint64_t seed;
    uint32_t n_voters;       /* initial voters: 3 or 5 */
    uint32_t chaos_ticks;    /* ticks of faults and proposals before the liveness phase */
    uint32_t liveness_ticks; /* bound for electing a leader and committing after healing */
    bool trace;              /* keep a trace and print its tail to `out` on failure */
    bool trace_always;       /* print it even when the run passes */
    bool glue;               /* each node's log is the partition log through raftlog, its
                              * hard state in an hstore, both on a simulated disk whose power
                              * is cut when the node crashes (tests/sim/sim_glue.h) */
    bool healthy;            /* no faults: no loss, delays of 0-1 tick, pre-vote and
                              * check-quorum on (for measurements) */
    bool notice;             /* the transport's notice of a lost connection: when a node
                              * crashes (once what it sent has arrived) or a partition cuts
                              * its links (at once), every node that follows it gets
                              * raft_leader_unreachable; connections also flap now and then
                              * (a notice about a healthy leader) */
    FILE *out;
};

struct sim_result {
    bool failed;
    bool liveness_failed; /* the failure was the liveness bound, not a safety check */
    char reason[256];
    uint64_t steps;          /* core calls made */
    uint64_t committed;      /* entries committed (global) */
    uint64_t max_term;
    uint32_t liveness_ticks; /* ticks the liveness phase needed */
    uint32_t crashes;
    uint32_t snapshots_sent;
    uint32_t conf_changes;
    uint32_t transfers;
};

/* Runs one seeded simulation. Returns 0 (res->failed tells whether a check failed). */
int sim_run(const struct sim_options *opt, struct sim_result *res);

/* Failover measurement for the benchmark: a healthy cluster (no loss, delays of 0-1 ticks)
 * elects a leader and commits; then the leader crashes. Returns the ticks from the crash until
 * a new leader commits an entry of its own term, or -1 on a failed check or no recovery. With
 * `notice` the survivors are told at once that the leader's connection was lost. */
int sim_failover_ticks(uint64_t seed, uint32_t n_voters, bool notice);

#endif
