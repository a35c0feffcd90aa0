/*
 * test_bg: the broker's background thread (broker/svc/bg.h): jobs run off the caller's thread,
 * in submission order; their done callbacks run on the caller's thread from bg_reap, in order;
 * bg_drain waits for everything, including jobs a done callback queued.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdbool.h>

#include "broker/svc/bg.h"
#include "common/err.h"
#include "io/io.h"

#define BG_N 100

struct bg_test_job {
    struct bg_job job;
    int index;
    pthread_t ran_on, done_on;
    int run_seq, done_seq;
};

static int run_seq, done_seq;
static struct bg *b;
static struct bg_test_job jobs[BG_N], follow;

static void job_run(struct bg_job *j)
{
    struct bg_test_job *t = (struct bg_test_job *)j;
    t->ran_on = pthread_self();
    t->run_seq = __atomic_fetch_add(&run_seq, 1, __ATOMIC_SEQ_CST);
}

static void job_done(struct bg_job *j)
{
    struct bg_test_job *t = (struct bg_test_job *)j;
    t->done_on = pthread_self();
    t->done_seq = done_seq++;
    if (t->index == BG_N - 1) { /* a follow-up job queued from a done callback */
        follow = (struct bg_test_job){.job = {.run = job_run, .done = job_done}, .index = -1};
        cr_assert_eq(bg_submit(b, &follow.job), 0);
    }
}

Test(bg, order_threads_and_drain, .timeout = 30)
{
    int rc;
    struct io *io = io_create(64, &rc);
    cr_assert_not_null(io);
    cr_assert_eq(bg_create(io, "test", &b), 0);
    run_seq = done_seq = 0;
    for (int i = 0; i < BG_N; i++) {
        jobs[i] = (struct bg_test_job){.job = {.run = job_run, .done = job_done}, .index = i};
        cr_assert_eq(bg_submit(b, &jobs[i].job), 0);
    }
    cr_assert_leq(bg_pending(b), BG_N);
    bg_drain(b);
    cr_assert_eq(bg_pending(b), 0);
    for (int i = 0; i < BG_N; i++) {
        cr_assert_eq(jobs[i].run_seq, i, "job %d ran out of order", i);
        cr_assert_eq(jobs[i].done_seq, i, "job %d finished out of order", i);
        cr_assert_not(pthread_equal(jobs[i].ran_on, pthread_self()), "ran on the caller");
        cr_assert(pthread_equal(jobs[i].done_on, pthread_self()), "done off the caller");
    }
    cr_assert_eq(follow.done_seq, BG_N, "the follow-up job was not drained");
    bg_destroy(b);
    io_destroy(io);
}
