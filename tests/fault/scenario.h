/*
 * scenario: one fault run from start to verdict, shared by the soak and the cluster suite.
 * Brokers in hosts 1..brokers (one cluster with --voters when `cluster`), clients in the hosts
 * after them; a topic; idempotent acks=all producers and consumers recording into a history;
 * with a cluster, an observer on the control node that asks every broker for each
 * partition's leader and epoch four times a second and records the claims; the nemesis loop
 * (each fault held, ended, then progress required within recover_ms: liveness, not just
 * safety); heal; drain; dumps of every broker's log while running and of its files after a
 * clean stop; the checker.
 *
 * Where it sits: test_fault_cluster and soak -> scenario -> nemesis, workload, cluster, netns.
 */
#ifndef RL_TESTS_FAULT_SCENARIO_H
#define RL_TESTS_FAULT_SCENARIO_H

#include <stdbool.h>
#include <stdint.h>

#include "tests/fault/nemesis.h"
#include "tests/fault/netns.h"

struct scn_config {
    int brokers;         /* 1..NETNS_MAX_HOSTS - 2 */
    bool cluster;        /* start them as one cluster (--voters) */
    int partitions, replicas;
    int producers, consumers; /* spread over the two client hosts */
    int steps;           /* faults in the schedule */
    unsigned kinds;      /* NEM_* mask */
    bool target_leaders; /* broker faults hit a partition's current leader */
    uint64_t seed;
    uint32_t recover_ms; /* progress required within this after each fault ends */
    long min_acked;      /* the checker's vacuity gate */
};

struct scn_result {
    long acked, reads, anomalies;
    long faults[NEM_KINDS], targeted_kills;
    long leader_kills; /* the checker's count: leader kills under load, then an election */
    char why[512]; /* the first failure, "" when clean */
};

/* scn_run's answer when ringlogd refused the topic's replication factor: nothing ran. */
#define SCN_REFUSED 1

/* Runs one scenario in lab (which must have brokers + 2 hosts). Returns 0 when the run was
 * live and the checker clean; SCN_REFUSED with ringlogd's refusal in res->why when it does not
 * take the replication factor (nothing is kept); else -1 with res->why saying what failed (the
 * brokers' files, logs and the history are kept in the directory it names). */
int scn_run(struct netns_lab *lab, const struct scn_config *cfg, struct scn_result *res);

#endif
