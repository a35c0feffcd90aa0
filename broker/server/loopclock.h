/*
 * loopclock: how long each turn of the shard's event loop takes (the loop's work between two
 * waits for events), for ringlog_loop_turn_seconds. A turn that takes long because the loop
 * blocked (an fsync, a slow file-system call) or computed too much is a broker problem; a turn
 * that takes long because the loop thread, ready to run, had no CPU (the kernel ran another
 * thread, or the hypervisor took the virtual CPU away: steal time) is the machine's. So a
 * turn's time here is its time on a CPU plus the time it was blocked, without the time it
 * waited for a CPU; that waiting is counted apart (loopclock.preempted_ns).
 *
 * How: turns are timed with the monotonic clock (no system call). A turn over
 * LOOPCLOCK_EXACT_NS is corrected from the thread's scheduler counters (on-CPU and run-queue
 * time from /proc/thread-self/schedstat, voluntary context switches from getrusage), read at
 * most once a millisecond at a turn's start (at every start while background work makes turns
 * matter) and again at the slow turn's end: when the thread did not sleep in between, the turn's time is its CPU time; when it did (it may have blocked),
 * its wall time less its run-queue time, which keeps any stolen time in and so errs towards
 * reporting a slow turn. The correction may include up to a millisecond before the turn.
 * Without schedstat (a kernel without CONFIG_SCHED_INFO) turns count whole. Loop thread only.
 */
#ifndef RL_BROKER_SERVER_LOOPCLOCK_H
#define RL_BROKER_SERVER_LOOPCLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define LOOPCLOCK_SAMPLE_NS 1000000ull /* counters read at most this often at turn starts */
#define LOOPCLOCK_EXACT_NS 1000000ull  /* turns longer than this are corrected */

struct loopclock_sample {
    uint64_t at_ns;          /* when it was read (monotonic) */
    uint64_t on_cpu_ns;      /* the thread's time on a CPU */
    uint64_t run_delay_ns;   /* its time runnable on a run queue, waiting for a CPU */
    uint64_t voluntary;      /* its voluntary context switches (sleeps) */
};

struct loopclock {
    int fd;                  /* /proc/thread-self/schedstat of the loop thread, or -1 */
    struct loopclock_sample last;  /* the latest sample */
    struct loopclock_sample start; /* the sample in force at the turn's start */
    uint64_t turn_start_ns;
    uint64_t preempted_ns;   /* time slow turns spent without a CPU, in all */
};

/* Opens the schedstat file of the calling thread (the loop). */
void loopclock_open(struct loopclock *lc);
void loopclock_close(struct loopclock *lc);

/* exact: read the counters now (the turn may do work whose time matters), not only when a
 * millisecond has passed since the last reading. */
void loopclock_turn_start(struct loopclock *lc, uint64_t now_ns, bool exact);
/* The turn's duration without the time the loop waited for a CPU. */
uint64_t loopclock_turn_end(struct loopclock *lc, uint64_t now_ns);

#endif
