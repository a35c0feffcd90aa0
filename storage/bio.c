/*
 * bio: one background thread with a bounded queue of jobs (contract in bio.h). Where it sits:
 * under the partition log's roll, finish, truncation, checkpoint, open and deletion paths.
 */
#include "storage/bio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define BIO_DRAIN_TIMEOUT_NS (300ull * 1000000000ull)

struct bio {
    struct io *io;
    bool threaded;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;  /* the thread waits for jobs */
    pthread_cond_t cv_space; /* producers wait for a free slot or for drain */
    struct bio_job *head, *tail;
    unsigned count;          /* queued, not yet taken by the thread */
    unsigned pending;        /* submitted, completion not yet delivered */
    uint64_t done;
    bool stop;
    atomic_bool hurry;       /* destroying: gradual removals skip their pauses */
};

/* A removal: fire and forget, freed by its own completion. */
struct bio_rm {
    struct bio_job job;
    struct bio *b;
    int recursive;
    uint64_t step_bytes; /* > 0: truncate in steps of this many bytes before the unlink */
    uint32_t pause_us;   /* between two steps */
    char path[];
};

struct rm_tree_ctx {
    struct io *io;
    const char *dir;
};

static int rm_child(void *arg, const char *name)
{
    struct rm_tree_ctx *c = arg;
    char child[PATH_MAX];
    if (snprintf(child, sizeof(child), "%s/%s", c->dir, name) < (int)sizeof(child)) {
        int rc = io_path_unlink(c->io, child);
        if (rc < 0 && rc != -ENOENT)
            RL_WARN("bio: cannot remove %s: %s", child, strerror(-rc));
    }
    return 0;
}

/* Frees a file's blocks a step at a time from its end, pausing between steps, so that each
 * journal commit of the file system carries a few MiB of freed (and, under `discard`, trimmed)
 * blocks instead of the whole file. Errors end it early: the unlink that follows still runs. */
static void rm_truncate_in_steps(struct bio_rm *r)
{
    struct io *io = r->b->io;
    int fd = io_file_open(io, r->path, O_WRONLY, 0);
    if (fd < 0)
        return;
    uint64_t size = 0;
    if (io_file_size(io, fd, &size) == 0) {
        while (size > r->step_bytes) {
            size -= r->step_bytes;
            if (io_file_truncate(io, fd, size) < 0)
                break;
            if (r->b->threaded && r->pause_us && !atomic_load(&r->b->hurry)) {
                struct timespec ts = {0, (long)r->pause_us * 1000};
                nanosleep(&ts, NULL);
            }
        }
    }
    io_file_close(io, fd);
}

static int rm_work(struct bio_job *job)
{
    struct bio_rm *r = (struct bio_rm *)((char *)job - offsetof(struct bio_rm, job));
    struct io *io = r->b->io;
    int rc;
    if (r->step_bytes > 0)
        rm_truncate_in_steps(r);
    if (r->recursive) {
        struct rm_tree_ctx c = {io, r->path};
        io_dir_list(io, r->path, rm_child, &c);
        rc = io_dir_remove(io, r->path);
    } else {
        rc = io_path_unlink(io, r->path);
    }
    if (rc < 0 && rc != -ENOENT)
        RL_WARN("bio: cannot remove %s: %s", r->path, strerror(-rc));
    return 0;
}

static void rm_done(struct bio_job *job, int result)
{
    (void)result;
    free(job->ctx);
}

/* Delivered on the owner loop: the queue's bookkeeping, then the job's own completion. */
static void job_complete(struct io_op *op, int result)
{
    struct bio_job *job = op->ctx;
    struct bio *b = job->b;
    pthread_mutex_lock(&b->mu);
    b->pending--;
    b->done++;
    pthread_cond_broadcast(&b->cv_space);
    pthread_mutex_unlock(&b->mu);
    if (job->done != NULL)
        job->done(job, result);
}

static void *bio_main(void *arg)
{
    struct bio *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (b->count == 0 && !b->stop)
            pthread_cond_wait(&b->cv_work, &b->mu);
        if (b->count == 0 && b->stop)
            break;
        struct bio_job *job = b->head;
        b->head = job->next;
        if (b->head == NULL)
            b->tail = NULL;
        b->count--;
        pthread_cond_broadcast(&b->cv_space);
        pthread_mutex_unlock(&b->mu);
        int rc = job->work(job);
        /* The completion, and the pending count with it, belong to the owner loop. */
        io_post(b->io, &job->op, rc);
        pthread_mutex_lock(&b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

int bio_create(struct io *io, struct bio **out)
{
    struct bio *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    b->io = io;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv_work, NULL);
    pthread_cond_init(&b->cv_space, NULL);
    b->threaded = !io_is_sim(io);
    if (b->threaded) {
        int rc = pthread_create(&b->thread, NULL, bio_main, b);
        if (rc != 0) {
            free(b);
            return -rc;
        }
    }
    *out = b;
    return 0;
}

void bio_destroy(struct bio *b)
{
    if (b == NULL)
        return;
    atomic_store(&b->hurry, true);
    bio_drain(b);
    if (b->threaded) {
        pthread_mutex_lock(&b->mu);
        b->stop = true;
        pthread_cond_signal(&b->cv_work);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
    }
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv_work);
    pthread_cond_destroy(&b->cv_space);
    free(b);
}

static int sim_work(struct io_op *op)
{
    struct bio_job *job = op->ctx;
    return job->work(job);
}

void bio_submit(struct bio *b, struct bio_job *job)
{
    job->next = NULL;
    job->b = b;
    job->op = (struct io_op){.done = job_complete, .ctx = job};
    pthread_mutex_lock(&b->mu);
    b->pending++;
    if (!b->threaded) {
        pthread_mutex_unlock(&b->mu);
        io_prep_work(b->io, &job->op, sim_work, 0);
        return;
    }
    while (b->count >= BIO_MAX_JOBS)
        pthread_cond_wait(&b->cv_space, &b->mu);
    if (b->tail != NULL)
        b->tail->next = job;
    else
        b->head = job;
    b->tail = job;
    b->count++;
    pthread_cond_signal(&b->cv_work);
    pthread_mutex_unlock(&b->mu);
}

static int rm_submit(struct bio *b, const char *path, int recursive, uint64_t step_bytes,
                     uint32_t pause_us)
{
    size_t len = strlen(path);
    struct bio_rm *r = malloc(sizeof(*r) + len + 1);
    if (r == NULL)
        return -ENOMEM;
    memcpy(r->path, path, len + 1);
    r->b = b;
    r->recursive = recursive;
    r->step_bytes = step_bytes;
    r->pause_us = pause_us;
    r->job.work = rm_work;
    r->job.done = rm_done;
    r->job.ctx = r;
    bio_submit(b, &r->job);
    return 0;
}

int bio_remove(struct bio *b, const char *path, int recursive)
{
    return rm_submit(b, path, recursive, 0, 0);
}

int bio_remove_gradually(struct bio *b, const char *path, uint64_t step_bytes, uint32_t pause_us)
{
    return rm_submit(b, path, 0, step_bytes, pause_us);
}

void bio_drain(struct bio *b)
{
    uint64_t deadline = io_now_ns(b->io) + BIO_DRAIN_TIMEOUT_NS;
    while (bio_pending(b) > 0 && io_now_ns(b->io) < deadline)
        io_run(b->io, 10 * 1000000ull);
    RL_ASSERTF(bio_pending(b) == 0, "background jobs did not finish within %llu s",
               (unsigned long long)(BIO_DRAIN_TIMEOUT_NS / 1000000000ull));
}

unsigned bio_pending(struct bio *b)
{
    pthread_mutex_lock(&b->mu);
    unsigned n = b->pending;
    pthread_mutex_unlock(&b->mu);
    return n;
}

uint64_t bio_jobs_done(struct bio *b)
{
    pthread_mutex_lock(&b->mu);
    uint64_t n = b->done;
    pthread_mutex_unlock(&b->mu);
    return n;
}
