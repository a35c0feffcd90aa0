/*
 * partition_open: opening partitions. At start-up every partition is opened (and recovered)
 * in turn, blocking, before the broker serves. A topic created while serving must not stall
 * the loop: creating 5,000 partitions costs two directory fsyncs each, seconds in all. So
 * partition_open_all hands each log's open to storage (plog_open_async: the directory, the
 * first segment and their fsyncs run on storage's background thread), and the loop only
 * builds each partition around its log as the opens complete:
 *
 *   storage bg   plog_open_async of partition 0, 1, .. count-1, in order
 *   io callback  partition_open_landed: the partition is built (or the failure noted)
 *   loop         partition_open_process: an opening whose logs all landed is reported,
 *                done(ctx, 0); on failure, the logs that did open are deleted first
 */
#include "broker/partition/partition_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "io/io.h"

struct partition_opening;

/* One log's open in flight: the context plog_open_async hands back. */
struct partition_open_slot {
    struct partition_opening *o;
    uint32_t index;
    struct plog *unbuilt; /* opened, but no memory for its partition: deleted on the loop */
};

struct partition_opening {
    struct partition_env *env;
    struct partition_opening *next;  /* env's list */
    char data_dir[PATH_MAX];
    char topic[PARTITION_TOPIC_MAX + 1];
    uint32_t count;
    uint32_t landed;                 /* opens that completed (either way) */
    struct partition **out;
    partition_opened_fn done;
    void *ctx;
    int rc;
    char err[PATH_MAX + 1024];
    struct partition_open_slot slots[];
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

/* --- creating a topic's partitions ------------------------------------------------------------ */

/* Runs from io_run when storage finishes one open: only builds the partition or notes the
 * failure; the loop reports the opening afterwards (partition_open_process). */
static void partition_open_landed(void *ctx, struct plog *log, int result,
                                  const struct plog_recovery_report *rep)
{
    struct partition_open_slot *s = ctx;
    struct partition_opening *o = s->o;
    struct partition_env *env = o->env;
    char dir[PATH_MAX + 300];
    partition_dir_path(o->data_dir, o->topic, s->index, dir, sizeof(dir));
    if (result == 0) {
        env->logs_opened++;
        partition_log_recovery(o->topic, s->index, rep);
        o->out[s->index] = partition_new(env, o->topic, s->index, dir, log);
        if (!o->out[s->index]) {
            s->unbuilt = log; /* not deleted here: plog_delete runs the io, and this is io_run */
            result = -ENOMEM;
        }
    }
    if (result < 0 && !o->rc) {
        o->rc = result;
        snprintf(o->err, sizeof(o->err), "cannot create the log of %s-%u in %s: %s", o->topic,
                 s->index, dir, rl_strerror(result));
    }
    o->landed++;
    env->opening_parts--;
}

int partition_open_all(struct partition_env *env, const char *data_dir, const char *topic,
                       uint32_t count, const struct plog_config *cfg, const bool *hold,
                       struct partition **out, partition_opened_fn done, void *ctx)
{
    struct partition_opening *o = calloc(1, sizeof(*o) + count * sizeof(o->slots[0]));
    if (!o)
        return -ENOMEM;
    o->env = env;
    snprintf(o->data_dir, sizeof(o->data_dir), "%s", data_dir);
    snprintf(o->topic, sizeof(o->topic), "%s", topic);
    o->count = count;
    o->out = out;
    o->done = done;
    o->ctx = ctx;
    char dir[PATH_MAX + 300];
    uint32_t started = 0;
    for (uint32_t i = 0; i < count; i++) {
        o->slots[i] = (struct partition_open_slot){.o = o, .index = i};
        out[i] = NULL;
        if (hold && !hold[i]) {
            o->landed++; /* another broker's: nothing to open */
            continue;
        }
        started++;
        int rc = partition_dir_path(data_dir, topic, i, dir, sizeof(dir));
        if (rc >= 0)
            rc = plog_open_async(env->st, dir, cfg, partition_open_landed, &o->slots[i]);
        if (rc < 0) {
            /* The opens already asked for still land; the opening fails when they have. */
            o->rc = rc;
            snprintf(o->err, sizeof(o->err), "cannot create the log of %s-%u: %s", topic, i,
                     rl_strerror(rc));
            o->count = i; /* the skipped ones below i have landed already */
            started--;
            break;
        }
    }
    env->opening_parts += started;
    o->next = env->openings;
    env->openings = o;
    return 0;
}

/* --- loop: reporting finished openings -------------------------------------------------------- */

static void partition_opening_end(struct partition_opening *o)
{
    o->env->openings_done++;
    if (o->rc) {
        /* Nothing of a failed creation stays: the logs that opened are deleted. */
        for (uint32_t i = 0; i < o->count; i++) {
            if (o->out[i])
                partition_delete(o->out[i]);
            else if (o->slots[i].unbuilt)
                plog_delete(o->slots[i].unbuilt);
            o->out[i] = NULL;
        }
    }
    o->done(o->ctx, o->rc, o->err);
    free(o);
}

void partition_open_process(struct partition_env *env)
{
    struct partition_opening **pp = &env->openings;
    while (*pp) {
        struct partition_opening *o = *pp;
        if (o->landed < o->count) {
            pp = &o->next;
            continue;
        }
        *pp = o->next; /* unlinked first: its done may start another opening */
        partition_opening_end(o);
        pp = &env->openings;
    }
}

void partition_env_settle(struct partition_env *env)
{
    for (uint32_t guard = 0; env->openings && guard < 1000000; guard++) {
        io_run(env->io, 10 * 1000 * 1000);
        partition_open_process(env);
    }
}
