/*
 * partition: see partition.h; the invariants are in partition_int.h.
 *
 * Append path through this file:
 *   partition_append -> plog_append (or partition_defer when the log is full)
 *   -> partition_log_done (durable, from io_run) -> partition_commit_to (the commit index and
 *   the visible end move, waiters wake) -> partition_finish (the append's done, unpin)
 */
#include "broker/partition/partition_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "storage/plog.h"

/* --- environment ------------------------------------------------------------------------------ */

int partition_env_create(struct io *io, struct storage *st,
                         const struct partition_env_hooks *hooks, struct partition_env **out)
{
    struct partition_env *env = calloc(1, sizeof(*env));
    if (!env)
        return -ENOMEM;
    env->io = io;
    env->st = st;
    env->hooks = *hooks;
    *out = env;
    return 0;
}

struct io *partition_env_io(const struct partition_env *env)
{
    return env->io;
}

void partition_env_destroy(struct partition_env *env)
{
    if (!env)
        return;
    RL_ASSERT(!env->openings);
    free(env);
}

void partition_env_tick(struct partition_env *env)
{
    if (env->deferred)
        env->retry_due = true;
}

bool partition_env_busy(const struct partition_env *env)
{
    return env->openings != NULL;
}

void partition_env_get_stats(const struct partition_env *env, struct partition_env_stats *out)
{
    out->deferred_batches = env->deferred_batches;
    out->opening = env->opening_parts;
    out->logs_opened = env->logs_opened;
    out->openings_done = env->openings_done;
    out->segment_rolls = env->segment_rolls;
}

/* --- lifetime --------------------------------------------------------------------------------- */

int partition_dir_path(const char *data_dir, const char *topic, uint32_t index, char *out,
                       size_t cap)
{
    int n = snprintf(out, cap, "%s/%s-%u", data_dir, topic, index);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : n;
}

struct partition *partition_new(struct partition_env *env, const char *topic, uint32_t index,
                                const char *dir, struct plog *log)
{
    struct partition *p = calloc(1, sizeof(*p));
    if (!p || !(p->dir = strdup(dir))) {
        free(p);
        return NULL;
    }
    p->env = env;
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->index = index;
    p->log = log;
    p->open_end = p->durable_end = p->visible_end = plog_end_offset(log);
    return p;
}

static void partition_free(struct partition *p)
{
    if (p->attachment_free)
        p->attachment_free(p->attachment);
    free(p->dir);
    free(p);
}

void partition_pin(struct partition *p)
{
    p->pins++;
}

void partition_unpin(struct partition *p)
{
    RL_ASSERT(p->pins > 0);
    p->pins--;
}

bool partition_pinned(const struct partition *p)
{
    return p->pins > 0;
}

static void partition_notify(struct partition *p, enum partition_event ev, uint32_t bytes)
{
    /* A wake may unlink the waiter it is given (and only that one), so step first. */
    struct partition_waiter *w = p->waiters;
    for (uint32_t guard = 0; w && guard < (1u << 24); guard++) {
        struct partition_waiter *next = w->next;
        w->wake(w, ev, bytes);
        w = next;
    }
}

void partition_mark_gone(struct partition *p)
{
    p->gone = true;
    if (p->deferred_head)
        p->env->retry_due = true; /* the deferred appends fail at the next turn */
    partition_notify(p, PARTITION_GONE, 0);
}

bool partition_gone(const struct partition *p)
{
    return p->gone;
}

static void partition_fail_deferred(struct partition *p, int rc);

void partition_close(struct partition *p)
{
    if (!p)
        return;
    partition_fail_deferred(p, RL_E_SHUTTING_DOWN);
    if (p->replicated)
        partition_set_replicator(p, NULL);
    plog_close(p->log); /* waits for appends in flight: their done callbacks run */
    partition_free(p);
}

void partition_delete(struct partition *p)
{
    RL_ASSERT(!p->pins && !p->deferred_head);
    int rc = plog_delete(p->log);
    if (rc)
        RL_WARN("deleting the log of %s-%u failed: %s", p->topic, p->index, rl_strerror(rc));
    partition_free(p);
}

int partition_set_config(struct partition *p, const struct plog_config *cfg)
{
    if (p->replicated && cfg->flush_policy != PLOG_FLUSH_BATCH) {
        struct plog_config c = *cfg; /* a Raft log counts an append only once it is synced */
        c.flush_policy = PLOG_FLUSH_BATCH;
        return plog_set_config(p->log, &c);
    }
    return plog_set_config(p->log, cfg);
}

int partition_enforce_retention(struct partition *p, int64_t now_ms)
{
    return plog_enforce_retention(p->log, now_ms);
}

void partition_attach(struct partition *p, void *obj, void (*free_fn)(void *obj))
{
    RL_ASSERT(!p->attachment);
    p->attachment = obj;
    p->attachment_free = free_fn;
}

void *partition_attachment(const struct partition *p)
{
    return p->attachment;
}

/* --- identity and positions ------------------------------------------------------------------- */

const char *partition_topic(const struct partition *p)
{
    return p->topic;
}

uint32_t partition_index(const struct partition *p)
{
    return p->index;
}

const char *partition_dir(const struct partition *p)
{
    return p->dir;
}

uint64_t partition_truncations(const struct partition *p)
{
    return plog_truncations(p->log);
}

uint64_t partition_visible_end(const struct partition *p)
{
    return p->visible_end;
}

uint64_t partition_start_offset(const struct partition *p)
{
    return plog_start_offset(p->log);
}

uint64_t partition_open_end(const struct partition *p)
{
    return p->open_end;
}

uint64_t partition_log_end(const struct partition *p)
{
    return plog_end_offset(p->log);
}

uint64_t partition_next_offset(const struct partition *p)
{
    return plog_end_offset(p->log) + p->deferred_records;
}

uint64_t partition_size_bytes(const struct partition *p)
{
    return plog_size_bytes(p->log);
}

uint64_t partition_unsynced_bytes(const struct partition *p)
{
    return plog_unsynced_bytes(p->log);
}

uint32_t partition_segment_count(const struct partition *p)
{
    return plog_segment_count(p->log);
}

const struct partition_stats *partition_stats(const struct partition *p)
{
    return &p->stats;
}

void partition_count_out(struct partition *p, uint64_t bytes, uint64_t records)
{
    p->stats.bytes_out += bytes;
    p->stats.records_out += records;
}

/* --- append path ------------------------------------------------------------------------------ */

/* The append is over: unpin, then tell its owner (who may reuse a at once). */
static void partition_finish(struct partition_append *a, int result)
{
    partition_unpin(a->p);
    a->done(a, result);
}

/* The commit index reaches `end`: the visible end follows, waiters wake, and appends waiting
 * for the commit are acknowledged. With one replica this runs as soon as an append is
 * durable; replication will call it when a quorum has the entries. */
static void partition_commit_to(struct partition *p, uint64_t end, uint32_t bytes)
{
    RL_ASSERT(end <= p->durable_end);
    if (end < p->visible_end)
        end = p->visible_end; /* a replicated log's visible end never moves back */
    if (end > p->visible_end) {
        p->visible_end = end;
        partition_notify(p, PARTITION_VISIBLE, bytes);
    }
    for (uint32_t guard = 0; p->commit_head && guard < (1u << 24); guard++) {
        struct partition_append *a = p->commit_head;
        if (a->last_offset >= p->visible_end)
            break;
        p->commit_head = a->next;
        if (!p->commit_head)
            p->commit_tail = NULL;
        /* Success only when what committed at its offsets is the entry it was appended as:
         * the leader of its term, still leading, never cut its own log. Otherwise (deposal is
         * normally seen first, partition_repl_role) the offsets may hold another leader's
         * entries: the producer retries. */
        bool same = !p->replicated || (p->leads && a->term == p->term);
        partition_finish(a, same ? 0 : RL_E_NOT_LEADER);
    }
}

/* The log's completion of one append (inside io_run): durable, or failed. */
static void partition_log_done(struct plog_append *pa, int result)
{
    struct partition_append *a = pa->ctx;
    struct partition *p = a->p;
    /* Room in the storage (this log's queue or the shared pool) may have freed up: let the
     * loop retry deferred appends of any partition (not from inside this callback). */
    if (p->env->deferred)
        p->env->retry_due = true;
    if (result) {
        p->stats.append_errors++;
        /* The log refuses appends from now on: nobody waiting for a later offset of it (a
         * duplicate waiting for its original) would ever be woken. */
        partition_notify(p, PARTITION_FAILED, 0);
        partition_finish(a, result);
        return;
    }
    p->stats.records_in += a->records;
    p->stats.bytes_in += a->len;
    p->stats.batches_in++;
    a->last_offset = pa->last_offset;
    p->durable_end = pa->last_offset + 1;
    /* Read before the commit: committing may finish (and free) an acks=all append. */
    bool answer_now = a->ack == PARTITION_ACK_LEADER;
    if (a->ack == PARTITION_ACK_ALL) {
        a->next = NULL;
        if (p->commit_tail)
            p->commit_tail->next = a;
        else
            p->commit_head = a;
        p->commit_tail = a;
    }
    uint32_t len = a->len;
    partition_commit_to(p, p->durable_end, len); /* one replica: committed once durable */
    if (answer_now)
        partition_finish(a, 0);
}

static void partition_copy_free(struct partition_append *a)
{
    if (!a->copy)
        return;
    free(a->copy);
    a->copy = NULL;
    struct partition_env *env = a->p->env;
    if (env->hooks.mem)
        env->hooks.mem(env->hooks.arg, -(int64_t)a->len);
}

int partition_log_append(struct partition *p, struct partition_append *a)
{
    uint32_t segs = plog_segment_count(p->log);
    int rc = plog_append(p->log, &a->pa);
    if (plog_segment_count(p->log) > segs)
        p->env->segment_rolls++; /* the loop's turn metrics name the work it did */
    return rc;
}

/* Queues a behind the partition's deferred appends: its bytes are copied (the caller's buffer
 * is reused as soon as partition_append returns) and charged to the memory budget. */
static int partition_defer(struct partition *p, struct partition_append *a)
{
    struct partition_env *env = p->env;
    a->copy = malloc(a->len);
    if (!a->copy)
        return -ENOMEM;
    memcpy(a->copy, a->batch, a->len);
    if (env->hooks.mem)
        env->hooks.mem(env->hooks.arg, (int64_t)a->len);
    a->pa.batch = a->copy;
    a->deferred = true;
    a->next = NULL;
    if (p->deferred_tail)
        p->deferred_tail->next = a;
    else
        p->deferred_head = a;
    p->deferred_tail = a;
    p->deferred_records += a->records;
    env->deferred_batches++;
    if (!p->deferred_listed) {
        p->deferred_listed = true;
        p->deferred_next = env->deferred;
        env->deferred = p;
    }
    return 0;
}

static void partition_queue(struct partition_append **head, struct partition_append **tail,
                            struct partition_append *a)
{
    a->next = NULL;
    if (*tail)
        (*tail)->next = a;
    else
        *head = a;
    *tail = a;
}

/* A replicated partition's append: proposed to the group, acknowledged by the replicator's
 * reports (partition_repl_durable, partition_repl_commit). */
static int partition_append_replicated(struct partition *p, struct partition_append *a)
{
    if (!p->leads)
        return RL_E_NOT_LEADER;
    uint64_t end = 0;
    int rc = p->repl.propose(p->repl.ctx, (uint8_t *)(uintptr_t)a->batch, a->len,
                             a->ack == PARTITION_ACK_ALL, &end);
    if (rc) {
        p->stats.append_errors++;
        return rc;
    }
    a->base_offset = end - a->records;
    a->last_offset = end - 1;
    a->term = p->term;
    p->stats.records_in += a->records;
    p->stats.bytes_in += a->len;
    p->stats.batches_in++;
    partition_pin(p);
    if (a->ack == PARTITION_ACK_ALL)
        partition_queue(&p->commit_head, &p->commit_tail, a);
    else
        partition_queue(&p->durable_head, &p->durable_tail, a);
    return 0;
}

int partition_append(struct partition *p, struct partition_append *a)
{
    if (p->gone)
        return RL_E_UNKNOWN_TOPIC;
    if (p->replicated) {
        a->p = p;
        a->copy = NULL;
        a->deferred = false;
        a->next = NULL;
        return partition_append_replicated(p, a);
    }
    a->p = p;
    a->copy = NULL;
    a->deferred = false;
    a->next = NULL;
    memset(&a->pa, 0, sizeof(a->pa));
    a->pa.batch = a->batch;
    a->pa.len = a->len;
    a->pa.done = partition_log_done;
    a->pa.ctx = a;
    a->base_offset = partition_next_offset(p);
    /* Others already waiting for room go first: order within a partition is kept. */
    int rc = p->deferred_head ? RL_E_FULL : partition_log_append(p, a);
    if (rc == RL_E_FULL)
        rc = partition_defer(p, a);
    else if (rc == 0)
        a->base_offset = a->pa.base_offset;
    if (rc) {
        p->stats.append_errors++;
        return rc;
    }
    partition_pin(p);
    return 0;
}

/* Retries p's deferred appends in order until the log refuses one again. */
static void partition_retry(struct partition *p)
{
    for (uint32_t guard = 0; p->deferred_head && guard < 1000000; guard++) {
        struct partition_append *a = p->deferred_head;
        int rc = p->gone ? RL_E_UNKNOWN_TOPIC : partition_log_append(p, a);
        if (rc == RL_E_FULL)
            return; /* still full: the next completion brings us back */
        p->deferred_head = a->next;
        if (!p->deferred_head)
            p->deferred_tail = NULL;
        p->deferred_records -= a->records;
        if (rc == 0 && a->pa.base_offset != a->base_offset)
            RL_ERROR("%s-%u: deferred batch got offset %llu, predicted %llu", p->topic,
                     p->index, (unsigned long long)a->pa.base_offset,
                     (unsigned long long)a->base_offset);
        a->base_offset = a->pa.base_offset;
        partition_copy_free(a); /* plog_append copied it, or it failed */
        if (rc) {
            p->stats.append_errors++;
            partition_finish(a, rc);
        }
    }
}

static void partition_fail_deferred(struct partition *p, int rc)
{
    for (uint32_t guard = 0; p->deferred_head && guard < 1000000; guard++) {
        struct partition_append *a = p->deferred_head;
        p->deferred_head = a->next;
        p->deferred_records -= a->records;
        partition_copy_free(a);
        partition_finish(a, rc);
    }
    p->deferred_tail = NULL;
    struct partition **pp = &p->env->deferred;
    while (*pp && *pp != p)
        pp = &(*pp)->deferred_next;
    if (*pp)
        *pp = p->deferred_next;
    p->deferred_listed = false;
}

void partition_env_process(struct partition_env *env)
{
    if (env->openings)
        partition_open_process(env);
    if (!env->retry_due)
        return;
    env->retry_due = false;
    struct partition **pp = &env->deferred;
    for (uint32_t guard = 0; *pp && guard < 10000000; guard++) {
        struct partition *p = *pp;
        partition_retry(p);
        if (p->deferred_head) {
            pp = &p->deferred_next;
        } else {
            *pp = p->deferred_next; /* unlisted before its pins can drop to 0 and it is reaped */
            p->deferred_listed = false;
        }
    }
}

/* --- replication ------------------------------------------------------------------------------ */

static void partition_fail_list(struct partition_append **head, struct partition_append **tail,
                                int rc)
{
    for (uint32_t guard = 0; *head && guard < (1u << 24); guard++) {
        struct partition_append *a = *head;
        *head = a->next;
        partition_finish(a, rc);
    }
    *tail = NULL;
}

void partition_set_replicator(struct partition *p, const struct partition_replicator *r)
{
    if (r) {
        p->repl = *r;
        p->replicated = true;
        p->leads = false;
        p->leader = 0;
        p->commit_index = 0;
        /* What lies past the group's commit index may be cut: nothing is visible until the
         * commit index is learned (the visible end only moves up from here). */
        p->visible_end = plog_start_offset(p->log);
        p->durable_end = plog_end_offset(p->log);
        return;
    }
    partition_fail_list(&p->durable_head, &p->durable_tail, RL_E_NOT_LEADER);
    partition_fail_list(&p->commit_head, &p->commit_tail, RL_E_NOT_LEADER);
    memset(&p->repl, 0, sizeof(p->repl));
    p->replicated = false;
    p->leads = false;
}

bool partition_replicated(const struct partition *p)
{
    return p->replicated;
}

struct plog *partition_plog(struct partition *p)
{
    return p->log;
}

/* The visible end follows the commit index, never past what is durable here. */
static void partition_repl_visible(struct partition *p)
{
    uint64_t end = p->commit_index < p->durable_end ? p->commit_index : p->durable_end;
    if (end > p->visible_end)
        partition_commit_to(p, end, 0);
}

void partition_repl_durable(struct partition *p, uint64_t end)
{
    p->durable_end = end;
    for (uint32_t guard = 0; p->durable_head && guard < (1u << 24); guard++) {
        struct partition_append *a = p->durable_head;
        if (a->last_offset >= end)
            break;
        p->durable_head = a->next;
        if (!p->durable_head)
            p->durable_tail = NULL;
        partition_finish(a, 0);
    }
    partition_repl_visible(p);
}

void partition_repl_commit(struct partition *p, uint64_t commit)
{
    if (commit > p->commit_index)
        p->commit_index = commit;
    partition_repl_visible(p);
}

void partition_repl_role(struct partition *p, bool leads, uint32_t leader, uint64_t term)
{
    if (leads && !p->leads)
        p->lead_gen++;
    p->leads = leads;
    p->leader = leader;
    p->term = term;
    if (!leads) {
        /* Deposed: whatever waits may still commit under the next leader, or be cut; the
         * producer retries (an idempotent retry of a committed batch is recognised). */
        partition_fail_list(&p->durable_head, &p->durable_tail, RL_E_NOT_LEADER);
        partition_fail_list(&p->commit_head, &p->commit_tail, RL_E_NOT_LEADER);
        partition_notify(p, PARTITION_DEPOSED, 0); /* duplicates waiting for an original */
    }
}

uint32_t partition_leader(const struct partition *p)
{
    return p->leader;
}

uint64_t partition_term(const struct partition *p)
{
    return p->term;
}

bool partition_leads(const struct partition *p)
{
    return p->leads;
}

uint32_t partition_in_sync(const struct partition *p, uint32_t *out, uint32_t cap)
{
    return p->replicated && p->repl.in_sync ? p->repl.in_sync(p->repl.ctx, out, cap) : 0;
}

uint64_t partition_lead_generation(const struct partition *p)
{
    return p->lead_gen;
}

/* --- readers and waiters ---------------------------------------------------------------------- */

int partition_read(struct partition *p, uint64_t offset, uint32_t max_bytes,
                   struct plog_slice *out)
{
    int rc = plog_read(p->log, offset, max_bytes, p->visible_end, out);
    if (rc == 0)
        partition_pin(p);
    return rc;
}

void partition_read_release(struct partition *p, struct plog_slice *slice)
{
    plog_slice_release(p->log, slice);
    partition_unpin(p);
}

int partition_read_copy(struct partition *p, uint64_t offset, uint32_t max_bytes, uint8_t *buf,
                        size_t cap)
{
    return plog_read_copy(p->log, offset, max_bytes, p->visible_end, buf, cap);
}

int partition_advance_start(struct partition *p, uint64_t offset)
{
    if (offset > p->visible_end)
        return RL_E_INVALID_ARGUMENT;
    return plog_advance_start(p->log, offset);
}

int partition_report_damage(struct partition *p, uint64_t offset, uint64_t *from, uint64_t *to)
{
    return plog_report_damage(p->log, offset, from, to);
}

int partition_offset_for_time(struct partition *p, int64_t ts_ms, uint64_t *offset)
{
    uint64_t off = 0;
    int rc = plog_offset_for_time(p->log, ts_ms, &off);
    if (rc)
        return rc;
    *offset = off > p->visible_end ? p->visible_end : off;
    return 0;
}

void partition_wait(struct partition *p, struct partition_waiter *w)
{
    w->part = p;
    w->prev = NULL;
    w->next = p->waiters;
    if (p->waiters)
        p->waiters->prev = w;
    p->waiters = w;
}

void partition_unwait(struct partition_waiter *w)
{
    struct partition *p = w->part;
    if (!p)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        p->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->part = NULL;
}
