/*
 * loopclock: how long each turn of the shard's event loop takes (the loop's work between two
 * waits for events), for ringlog_loop_turn_seconds. A turn that takes long because the loop
 * blocked (an fsync, a slow file-system call) or computed too much is a broker problem; a turn
 * that takes long because the kernel gave the CPU to another process while the loop was ready
 * to run is the machine's. So a turn's time here excludes the time the loop thread spent
 * runnable but waiting for a CPU (the run delay in /proc/thread-self/schedstat), which is
 * counted apart (loopclock_preempted_ns).
 *
 * Cost: turns are timed with the monotonic clock (no system call); the run delay is read at
 * most once a millisecond at a turn's start and again at the end of a turn over
 * LOOPCLOCK_EXACT_NS, so the correction of such a turn may include up to a millisecond of run
 * delay just before it. Without schedstat (a kernel without CONFIG_SCHED_INFO), turns count
 * whole. Loop thread only.
 */
#ifndef RL_BROKER_SERVER_LOOPCLOCK_H
#define RL_BROKER_SERVER_LOOPCLOCK_H

#include <stdint.h>

#define LOOPCLOCK_SAMPLE_NS 1000000ull /* run delay read at most this often at turn starts */
#define LOOPCLOCK_EXACT_NS 1000000ull  /* turns longer than this are corrected */

struct loopclock {
    int fd;                  /* /proc/thread-self/schedstat of the loop thread, or -1 */
    uint64_t sample_ns;      /* when the run delay was last read */
    uint64_t run_delay_ns;   /* its value then */
    uint64_t turn_start_ns;
    uint64_t turn_delay_ns;  /* the run delay known at the turn's start */
    uint64_t preempted_ns;   /* run delay inside corrected turns, in all */
};

/* Opens the schedstat file of the calling thread (the loop). */
void loopclock_open(struct loopclock *lc);
void loopclock_close(struct loopclock *lc);

void loopclock_turn_start(struct loopclock *lc, uint64_t now_ns);
/* The turn's duration without the time the loop waited for a CPU. */
uint64_t loopclock_turn_end(struct loopclock *lc, uint64_t now_ns);

#endif
