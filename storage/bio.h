/*
 * bio: the storage's background thread for blocking file-system work, so the shard's event loop
 * never waits on it (Redis bio.c): creating and preallocating the next segment, finishing a
 * sealed one (sync, trim, index files), checkpoints, truncations, opening logs, and removing
 * the files of deleted segments and logs. Callers first rename what they delete (a fast step)
 * so a new file with the same name can never be hit by a late unlink.
 *
 * A job's work runs on the thread; its completion (the embedded io_op's callback, with the
 * work's return value) runs on the owner loop, inside io_run, through io_post. On a simulated
 * io there is no thread: jobs go through io_prep_work, which runs them at a seeded moment
 * inside io_run, so the background work interleaves deterministically with the loop's I/O.
 * Work functions may only use the io's synchronous file calls and their job's own memory.
 *
 * The job queue is bounded (BIO_MAX_JOBS); a producer that finds it full blocks until the
 * thread frees a slot: that backpressure is the defined effect of hitting the bound.
 */
#ifndef RL_STORAGE_BIO_H
#define RL_STORAGE_BIO_H

#include <stdint.h>

#include "io/io.h"

#define BIO_MAX_JOBS 1024

struct bio;
struct bio_job;

typedef int (*bio_work_fn)(struct bio_job *job);
typedef void (*bio_done_fn)(struct bio_job *job, int result);

/* Embedded in the caller's object, which must live until `done` has run. Set work, done and
 * ctx before bio_submit. */
struct bio_job {
    bio_work_fn work;   /* runs in the background; returns 0 or a negative code */
    bio_done_fn done;   /* runs on the owner loop with work's result; may be NULL */
    void *ctx;
    /* the queue's */
    struct io_op op;
    struct bio *b;
    struct bio_job *next;
};

/* Starts the thread (none on a simulated io). Returns 0 and *out, or -errno. */
int bio_create(struct io *io, struct bio **out);

/* Runs every queued job, stops the thread and frees bio. Blocks. Completions of jobs that have
 * not been delivered yet are delivered by later io_run calls; do not destroy the io first. */
void bio_destroy(struct bio *b);

/* Queues a job. Blocks while the queue is full. */
void bio_submit(struct bio *b, struct bio_job *job);

/* Queues removal of a file (unlink) or, with recursive, of a directory and the files directly
 * in it (the layout of a log directory; subdirectories are not descended into). Copies path.
 * Blocks while the queue is full. Returns 0 or -ENOMEM. */
int bio_remove(struct bio *b, const char *path, int recursive);

/* Queues removal of one large file in steps: truncated from its end step_bytes at a time with
 * pause_us between steps (no pauses on a simulated io, nor once bio_destroy began), then
 * unlinked. Freeing a large file's blocks at once holds up every fdatasync on the same file
 * system while the journal commits them (ext4 mounted with `discard` also trims them there:
 * unlinking a written 128 MiB segment stalled a concurrent 4 KiB write + fdatasync for 28 ms
 * on this machine's disk, 8 MiB steps 2 ms apart for at most 4 ms). Meant for a bio of its own,
 * so that other jobs do not queue behind the pauses. Copies path. Returns 0 or -ENOMEM. */
int bio_remove_gradually(struct bio *b, const char *path, uint64_t step_bytes, uint32_t pause_us);

/* Blocks until every job queued so far has run and its completion has been delivered (runs
 * the io to deliver them): for tests, orderly shutdown and blocking wrappers. */
void bio_drain(struct bio *b);

/* Jobs queued or running (for tests and metrics). */
unsigned bio_pending(struct bio *b);

/* Jobs completed since creation (for tests and metrics). */
uint64_t bio_jobs_done(struct bio *b);

#endif
