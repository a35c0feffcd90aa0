/*
 * bg: a background thread for the broker's blocking work, so the shard's loop never waits on
 * a disk (Redis bio.c): metadata appends and their fsync, creating partition directories,
 * producer-state snapshots and loads. A job runs on the thread, then its `done` runs back on
 * the loop thread, in submission order, from bg_reap (the loop calls it every turn; the
 * thread wakes the loop with io_wake when a job finishes).
 *
 *   loop: fill a job embedded in your own object -> bg_submit
 *   thread: job->run(job)                     (blocking is fine; touch only the job's data)
 *   loop: bg_reap -> job->done(job)           (back in the single-threaded world)
 *
 * Jobs are embedded in their owner's objects (no allocation here); the owner keeps the job
 * alive and unmodified from bg_submit until its done has run. Queued jobs are bounded by
 * BG_MAX_JOBS; every user keeps at most one job per object it owns in flight, which bounds them
 * far below that.
 *
 * On a simulated io (io/io_sim.h, single-threaded) there is no thread: a job runs inside
 * bg_submit and its done at the next bg_reap, so tests stay deterministic.
 */
#ifndef RL_BROKER_SVC_BG_H
#define RL_BROKER_SVC_BG_H

#include <stdint.h>

struct io;
struct bg;

#define BG_MAX_JOBS (1u << 20)

struct bg_job {
    void (*run)(struct bg_job *j);  /* on the background thread */
    void (*done)(struct bg_job *j); /* on the loop thread, from bg_reap */
    struct bg_job *next;            /* bg's own */
};

/* Starts the thread; `io` is the loop's ring (io_wake wakes it). name shows in logs. Returns 0
 * and *out, or -errno. */
int bg_create(struct io *io, const char *name, struct bg **out);

/* Runs every job still queued and their done callbacks (bg_drain), stops the thread and frees
 * b. NULL is fine. Blocks. */
void bg_destroy(struct bg *b);

/* Queues j. Returns 0, or RL_E_FULL when BG_MAX_JOBS are queued (j is not queued). */
int bg_submit(struct bg *b, struct bg_job *j);

/* Loop thread: runs the done callback of every finished job, in order. Returns how many. */
unsigned bg_reap(struct bg *b);

/* Loop thread: waits until every job submitted so far has run, and reaps them. Blocks. */
void bg_drain(struct bg *b);

/* Jobs submitted whose done has not run yet. */
uint32_t bg_pending(const struct bg *b);

/* Jobs whose done has run, since creation. */
uint64_t bg_done_count(const struct bg *b);

#endif
