/*
 * bg: see bg.h. One mutex guards two intrusive FIFO lists (queued, finished); the thread sleeps
 * on a condition variable while nothing is queued. Finished jobs wait for the loop's bg_reap,
 * which takes the whole list under the lock and runs the callbacks outside it.
 */
#include "broker/svc/bg.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "io/io.h"

struct bg_list {
    struct bg_job *head, *tail;
};

struct bg {
    struct io *io;
    char name[32];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;      /* signalled when a job is queued or the thread must stop */
    pthread_cond_t finished;  /* signalled when a job finishes (bg_drain waits on it) */
    struct bg_list queued, done;
    uint32_t n_queued;        /* queued, not yet taken by the thread */
    uint32_t n_pending;       /* submitted, done callback not yet run (loop thread only) */
    uint64_t n_done;          /* done callbacks run (loop thread only) */
    bool running;             /* the thread holds a job */
    bool stop;
    bool inline_jobs;         /* a simulated io: no thread, jobs run inside bg_submit */
};

static void bg_push(struct bg_list *l, struct bg_job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static void *bg_main(void *arg)
{
    struct bg *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->queued.head && !b->stop)
            pthread_cond_wait(&b->work, &b->mu);
        struct bg_job *j = b->queued.head;
        if (!j)
            break; /* stopping with nothing queued */
        b->queued.head = j->next;
        if (!b->queued.head)
            b->queued.tail = NULL;
        b->n_queued--;
        b->running = true;
        pthread_mutex_unlock(&b->mu);
        j->run(j);
        pthread_mutex_lock(&b->mu);
        b->running = false;
        bg_push(&b->done, j);
        pthread_cond_broadcast(&b->finished);
        io_wake(b->io);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

int bg_create(struct io *io, const char *name, struct bg **out)
{
    struct bg *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->io = io;
    strncpy(b->name, name, sizeof(b->name) - 1);
    pthread_mutex_init(&b->mu, NULL);
    if (io_is_sim(io)) {
        /* A simulated io is single-threaded and deterministic: jobs run on the caller's
         * thread, at submission, and their done callbacks at the next bg_reap as usual. */
        b->inline_jobs = true;
        *out = b;
        return 0;
    }
    pthread_cond_init(&b->work, NULL);
    pthread_cond_init(&b->finished, NULL);
    int rc = pthread_create(&b->thread, NULL, bg_main, b);
    if (rc) {
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->work);
        pthread_cond_destroy(&b->finished);
        free(b);
        return -rc;
    }
    *out = b;
    return 0;
}

int bg_submit(struct bg *b, struct bg_job *j)
{
    RL_ASSERT(j->run && j->done);
    if (b->inline_jobs) {
        j->run(j);
        bg_push(&b->done, j);
        b->n_pending++;
        return 0;
    }
    pthread_mutex_lock(&b->mu);
    if (b->n_queued >= BG_MAX_JOBS) {
        pthread_mutex_unlock(&b->mu);
        return RL_E_FULL;
    }
    bg_push(&b->queued, j);
    b->n_queued++;
    pthread_cond_signal(&b->work);
    pthread_mutex_unlock(&b->mu);
    b->n_pending++;
    return 0;
}

unsigned bg_reap(struct bg *b)
{
    pthread_mutex_lock(&b->mu);
    struct bg_job *j = b->done.head;
    b->done.head = b->done.tail = NULL;
    pthread_mutex_unlock(&b->mu);
    unsigned n = 0;
    /* A done callback may submit new jobs; they land on the lists, not on this chain. */
    while (j) {
        struct bg_job *next = j->next;
        RL_ASSERT(b->n_pending > 0);
        b->n_pending--;
        b->n_done++;
        j->done(j);
        j = next;
        n++;
    }
    return n;
}

void bg_drain(struct bg *b)
{
    /* Done callbacks may queue follow-up jobs, so wait and reap until nothing is left. */
    for (uint32_t guard = 0; b->n_pending > 0 && guard < (1u << 24); guard++) {
        pthread_mutex_lock(&b->mu);
        while (!b->done.head && (b->queued.head || b->running))
            pthread_cond_wait(&b->finished, &b->mu);
        pthread_mutex_unlock(&b->mu);
        bg_reap(b);
    }
}

uint32_t bg_pending(const struct bg *b)
{
    return b->n_pending;
}

uint64_t bg_done_count(const struct bg *b)
{
    return b->n_done;
}

void bg_destroy(struct bg *b)
{
    if (!b)
        return;
    bg_drain(b);
    if (!b->inline_jobs) {
        pthread_mutex_lock(&b->mu);
        b->stop = true;
        pthread_cond_signal(&b->work);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
    }
    if (b->n_pending)
        RL_WARN("bg %s: stopping with %u jobs unfinished", b->name, b->n_pending);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->work);
    pthread_cond_destroy(&b->finished);
    free(b);
}
