/*
 * nemesis: random fault schedules over a fault lab and its brokers, from a seed. Each step
 * starts one fault (nem_begin) and later ends it (nem_end); nem_heal_all ends everything (every
 * broker resumed or restarted, every rule and qdisc gone, the disk normal). The seed fixes the
 * sequence of faults, their targets and hold times (one xorshift stream for the schedule
 * alone), so a failing run is replayed with the same seed; timing on a loaded machine still
 * varies, which is why the checker, not a recording, is the oracle.
 *
 * Kinds are dealt from a shuffled deck of those available (each once per round of the deck),
 * so a schedule of as many steps as kinds has every kind once.
 *
 * Faults: kill -9 (restarted when the step ends), pause (SIGSTOP, resumed when it ends; hold
 * times reach past an election timeout), a partition of all hosts into two random halves, the
 * isolation of one host, a one-way partition between two hosts, packet loss on one host's link,
 * delay (only with netem), a slow disk (only with ringlogd's io.fault.delay.file hook), a slow
 * link on one host (tbf: a low rate, and what queues too long dropped). Broker
 * faults target the broker `pick` returns when it is set (a partition's leader, say), else a
 * random one.
 *
 * Where it sits: the soak and the cluster suite -> nemesis -> cluster + netns.
 */
#ifndef RL_TESTS_FAULT_NEMESIS_H
#define RL_TESTS_FAULT_NEMESIS_H

#include <stdbool.h>
#include <stdint.h>

#include "tests/fault/cluster.h"

enum nem_kind {
    NEM_KILL = 0,
    NEM_PAUSE,
    NEM_PARTITION_HALVES,
    NEM_ISOLATE,
    NEM_ONE_WAY,
    NEM_LOSS,
    NEM_DELAY,
    NEM_SLOW_DISK,
    NEM_SLOW_LINK,
    NEM_KINDS
};

#define NEM_ALL ((1u << NEM_KINDS) - 1)
/* A pause lasts at least this long: several election timeouts, so a paused leader is deposed
 * and comes back stale. */
#define NEM_PAUSE_MIN_MS 2500

struct nem {
    struct cl_cluster *c;
    uint64_t rng;
    unsigned kinds;           /* bit k: fault k may be chosen (unsupported ones are dropped) */
    int (*pick)(void *ctx);   /* a broker to hit (1..n), or <= 0 for a random one */
    void *pick_ctx;
    /* Called just before a SIGKILL of broker `target` (targeted: `pick` chose it), with
     * pick_ctx; may be NULL. The scenario records leader kills here. */
    void (*before_kill)(void *ctx, int target, bool targeted);
    bool active;
    uint8_t deck[NEM_KINDS];  /* kinds still to deal in this round of the deck */
    int deck_n;
    enum nem_kind kind;       /* the fault in progress */
    int target;               /* its broker or host */
    uint32_t hold_ms;         /* how long the schedule wants it held */
    long count[NEM_KINDS];    /* faults begun, per kind */
    long targeted_kills;      /* kills of the broker `pick` chose */
};

/* Sets up a schedule over cluster c from seed. kinds: a mask of NEM_* bits; kinds the lab or
 * ringlogd cannot do are removed (nem.kinds says what is left). */
void nem_init(struct nem *n, struct cl_cluster *c, uint64_t seed, unsigned kinds);

/* Begins the next fault. Returns its kind (>= 0) or a negative code. n->hold_ms says how long
 * to hold it (the caller watches the workload meanwhile). */
int nem_begin(struct nem *n);

/* Ends the fault in progress (a killed broker is restarted, waiting up to timeout_ms). */
int nem_end(struct nem *n, uint32_t timeout_ms);

/* Ends every fault there may be. Returns 0 or the first failure. */
int nem_heal_all(struct nem *n, uint32_t timeout_ms);

/* A uniform number in [0, bound) from the schedule's stream. */
uint32_t nem_rand(struct nem *n, uint32_t bound);

const char *nem_kind_name(enum nem_kind k);

#endif
