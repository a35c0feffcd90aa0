/*
 * partition_open: opening partitions. At start-up every partition is opened (and recovered)
 * in turn, blocking, before the broker serves. A topic created while serving must not stall
 * the loop: creating 5,000 partitions costs two directory fsyncs each, seconds in all. So
 * partition_open_all splits the work:
 *
 *   bg thread   partition_prepare_dirs: each directory and its first (empty) segment file are
 *               created and made durable (the fsyncs plog_open would do on the loop)
 *   loop        partition_open_process: plog_open on each prepared directory, which then only
 *               reads (no fsync), for at most PARTITION_OPEN_BUDGET_NS per turn
 *   loop        done(ctx, 0) once all are open; on failure, everything is undone first
 *
 * partition_prepare_dirs is the one place that knows what plog_open would create; it goes
 * when storage opens logs asynchronously itself (then open_process hands the whole open to
 * storage instead).
 */
#include "broker/partition/partition_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/svc/bg.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"
#include "storage/checkpoint.h"

/* The name storage gives the first segment of a new log (storage/segment.c). */
#define PARTITION_FIRST_SEGMENT "00000000000000000000.log"

struct partition_opening {
    struct bg_job job;
    struct partition_env *env;
    struct partition_opening *next;  /* env's list, once prepared */
    char data_dir[PATH_MAX];
    char topic[PARTITION_TOPIC_MAX + 1];
    uint32_t count;
    uint32_t prepared;               /* directories made by the bg thread */
    uint32_t opened;                 /* logs opened on the loop */
    struct plog_config cfg;
    struct partition **out;
    partition_opened_fn done;
    void *ctx;
    int rc;
    char err[PATH_MAX + 1024];
    bool cleanup;                    /* the bg job removes prepared directories instead */
    uint32_t undo_from;              /* cleanup: directories [undo_from, prepared) */
};

static void partition_log_recovery(const char *topic, uint32_t index,
                                   const struct plog_recovery_report *rep)
{
    if (!rep->clean && rep->bytes_truncated)
        RL_WARN("%s-%u: recovery cut %llu bytes at position %lld (%s)", topic, index,
                (unsigned long long)rep->bytes_truncated, (long long)rep->truncated_at_position,
                rep->truncated_reason);
}

int partition_open(struct partition_env *env, const char *data_dir, const char *topic,
                   uint32_t index, const struct plog_config *cfg, struct partition **out,
                   char *err, size_t err_cap)
{
    char dir[PATH_MAX + 300];
    struct plog_recovery_report rep;
    struct plog *log = NULL;
    memset(&rep, 0, sizeof(rep));
    int rc = partition_dir_path(data_dir, topic, index, dir, sizeof(dir));
    if (rc >= 0)
        rc = plog_open(env->st, dir, cfg, &rep, &log);
    if (rc < 0) {
        snprintf(err, err_cap, "cannot open the log of %s-%u in %s: %s", topic, index, dir,
                 rl_strerror(rc));
        return rc;
    }
    partition_log_recovery(topic, index, &rep);
    env->logs_opened++;
    struct partition *p = partition_new(env, topic, index, dir, log);
    if (!p) {
        plog_close(log);
        snprintf(err, err_cap, "out of memory opening %s-%u", topic, index);
        return -ENOMEM;
    }
    *out = p;
    return 0;
}

/* --- background: directories ------------------------------------------------------------------ */

static int partition_prepare_one(const char *dir)
{
    if (mkdir(dir, 0755) && errno != EEXIST)
        return -errno;
    char path[PATH_MAX + 400];
    snprintf(path, sizeof(path), "%s/%s", dir, PARTITION_FIRST_SEGMENT);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    close(fd);
    return checkpoint_sync_dir(dir);
}

/* Removes what partition_prepare_one made (a failed creation, before its logs opened). */
static void partition_unprepare_one(const char *dir)
{
    char path[PATH_MAX + 400];
    snprintf(path, sizeof(path), "%s/%s", dir, PARTITION_FIRST_SEGMENT);
    unlink(path);
    rmdir(dir);
}

static void partition_prepare_run(struct bg_job *j)
{
    struct partition_opening *o = (struct partition_opening *)j;
    char dir[PATH_MAX + 300];
    if (o->cleanup) {
        for (uint32_t i = o->undo_from; i < o->prepared; i++)
            if (partition_dir_path(o->data_dir, o->topic, i, dir, sizeof(dir)) >= 0)
                partition_unprepare_one(dir);
        checkpoint_sync_dir(o->data_dir);
        return;
    }
    for (uint32_t i = 0; i < o->count; i++) {
        int rc = partition_dir_path(o->data_dir, o->topic, i, dir, sizeof(dir));
        if (rc >= 0)
            rc = partition_prepare_one(dir);
        if (rc < 0) {
            o->rc = rc;
            snprintf(o->err, sizeof(o->err), "cannot create the log directory %s: %s", dir,
                     rl_strerror(rc));
            return;
        }
        o->prepared = i + 1;
    }
    /* The new directories' entries in the data directory, all at once. */
    int rc = checkpoint_sync_dir(o->data_dir);
    if (rc < 0) {
        o->rc = rc;
        snprintf(o->err, sizeof(o->err), "cannot sync the data directory %s: %s", o->data_dir,
                 rl_strerror(rc));
    }
}

static void partition_opening_end(struct partition_opening *o)
{
    struct partition_env *env = o->env;
    env->opening_parts -= o->count - o->opened;
    o->done(o->ctx, o->rc, o->err);
    free(o);
}

static void partition_cleanup_done(struct bg_job *j)
{
    partition_opening_end((struct partition_opening *)j);
}

/* The creation failed: delete the logs opened so far, remove the directories prepared but not
 * opened (on the bg thread), then report. */
static void partition_opening_fail(struct partition_opening *o)
{
    for (uint32_t i = 0; i < o->opened; i++) {
        partition_delete(o->out[i]);
        o->out[i] = NULL;
    }
    o->undo_from = o->opened;
    o->cleanup = true;
    o->job.run = partition_prepare_run;
    o->job.done = partition_cleanup_done;
    if (bg_submit(o->env->bg, &o->job))
        partition_opening_end(o);
}

static void partition_prepare_done(struct bg_job *j)
{
    struct partition_opening *o = (struct partition_opening *)j;
    if (o->rc) {
        partition_opening_fail(o);
        return;
    }
    o->next = o->env->openings;
    o->env->openings = o;
}

int partition_open_all(struct partition_env *env, const char *data_dir, const char *topic,
                       uint32_t count, const struct plog_config *cfg, struct partition **out,
                       partition_opened_fn done, void *ctx)
{
    struct partition_opening *o = calloc(1, sizeof(*o));
    if (!o)
        return -ENOMEM;
    o->env = env;
    snprintf(o->data_dir, sizeof(o->data_dir), "%s", data_dir);
    snprintf(o->topic, sizeof(o->topic), "%s", topic);
    o->count = count;
    o->cfg = *cfg;
    o->out = out;
    o->done = done;
    o->ctx = ctx;
    o->job.run = partition_prepare_run;
    o->job.done = partition_prepare_done;
    int rc = bg_submit(env->bg, &o->job);
    if (rc) {
        free(o);
        return rc;
    }
    env->opening_parts += count;
    return 0;
}

/* --- loop: opening prepared logs -------------------------------------------------------------- */

/* Opens logs of o until the deadline. Returns true when o is finished (done or failed). */
static bool partition_opening_step(struct partition_opening *o, uint64_t deadline_ns)
{
    struct partition_env *env = o->env;
    while (o->opened < o->count) {
        int rc = partition_open(env, o->data_dir, o->topic, o->opened, &o->cfg,
                                &o->out[o->opened], o->err, sizeof(o->err));
        if (rc) {
            o->rc = rc;
            partition_opening_fail(o);
            return true;
        }
        o->opened++;
        env->opening_parts--;
        if (io_now_ns(env->io) >= deadline_ns && o->opened < o->count)
            return false;
    }
    partition_opening_end(o);
    return true;
}

void partition_open_process(struct partition_env *env)
{
    uint64_t deadline = io_now_ns(env->io) + PARTITION_OPEN_BUDGET_NS;
    struct partition_opening **pp = &env->openings;
    while (*pp) {
        struct partition_opening *o = *pp;
        *pp = o->next; /* unlinked while it runs: its done may start another opening */
        if (!partition_opening_step(o, deadline)) {
            o->next = *pp;
            *pp = o;
            return;
        }
        if (io_now_ns(env->io) >= deadline)
            return;
    }
}
