/*
 * bio: the storage's background thread for blocking file-system work, so the shard's event loop
 * never waits on it (Redis bio.c). Today that is removing files and directories of deleted
 * segments and logs; callers first rename what they delete (a fast, synchronous step) so a new
 * file with the same name can never be hit by a late unlink.
 *
 * The job queue is bounded (BIO_MAX_JOBS); a producer that finds it full blocks until the
 * thread frees a slot: that backpressure is the defined effect of hitting the bound.
 */
#ifndef RL_STORAGE_BIO_H
#define RL_STORAGE_BIO_H

#include <stdint.h>

#define BIO_MAX_JOBS 1024

struct bio;

/* Starts the thread. Returns 0 and *out, or -errno. */
int bio_create(struct bio **out);

/* Runs every queued job, stops the thread and frees bio. Blocks. */
void bio_destroy(struct bio *b);

/* Queues removal of a file (unlink) or, with recursive, of a directory and the files directly
 * in it (the layout of a log directory; subdirectories are not descended into). Copies path.
 * Blocks while the queue is full. Returns 0 or -ENOMEM. */
int bio_remove(struct bio *b, const char *path, int recursive);

/* Blocks until every job queued so far has run (for tests and orderly shutdown). */
void bio_drain(struct bio *b);

/* Jobs completed since creation (for tests and metrics). */
uint64_t bio_jobs_done(struct bio *b);

#endif
