/*
 * test_partition: broker/partition on a real partition log (io_uring, a scratch directory):
 * the one append path (done in order at the acknowledged stage, offsets, the visible end moving
 * and waking waiters), deferral behind a full log with predicted offsets kept in order, a gone
 * partition, pins that refuse to go below zero, and partitions created in the background (all
 * of them usable, or none left when one fails).
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/partition/partition.h"
#include "common/batch.h"
#include "common/err.h"
#include "io/io.h"
#include "storage/plog.h"

#define PT_DEADLINE_NS (30ull * 1000000000ull)

static char dir[256];
static struct io *io;
static struct storage *st;
static struct partition_env *env;
static int64_t mem_charged;

static void pt_mem(void *arg, int64_t delta)
{
    (void)arg;
    mem_charged += delta;
}

static int pt_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void setup(void)
{
    const char *base = getenv("RINGLOG_TEST_DIR") ? getenv("RINGLOG_TEST_DIR") : "/var/tmp";
    snprintf(dir, sizeof(dir), "%s/rl_partition_XXXXXX", base);
    cr_assert_not_null(mkdtemp(dir));
    int rc;
    io = io_create(256, &rc);
    cr_assert_not_null(io, "io_create: %s", rl_strerror(rc));
    cr_assert_eq(storage_create(io, 64, &st), 0);
    struct partition_env_hooks hooks = {.mem = pt_mem};
    cr_assert_eq(partition_env_create(io, st, &hooks, &env), 0);
    mem_charged = 0;
}

static void teardown(void)
{
    partition_env_destroy(env);
    storage_destroy(st);
    io_destroy(io);
    nftw(dir, pt_rm, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(partition, .init = setup, .fini = teardown, .timeout = 60);

/* Runs the loop (io and its completions, partition work) until *flag or the deadline. */
static void pt_drive(const bool *flag)
{
    uint64_t until = io_now_ns(io) + PT_DEADLINE_NS;
    while (!*flag && io_now_ns(io) < until) {
        io_run(io, 10000000ull);
        partition_env_process(env);
    }
    cr_assert(*flag, "timed out");
}

static struct partition *pt_open(const char *topic)
{
    struct plog_config pc;
    plog_config_default(&pc);
    char err[512];
    struct partition *p = NULL;
    int rc = partition_open(env, dir, topic, 0, &pc, &p, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
    return p;
}

/* A batch of `records` records of value_bytes each (malloc'ed). */
static uint32_t pt_batch(uint32_t records, uint32_t value_bytes, uint8_t **out)
{
    struct batch_builder *b = batch_builder_create(RL_BATCH_MAX_BYTES, BATCH_CODEC_NONE, 0);
    uint8_t *val = calloc(1, value_bytes);
    cr_assert(b && val);
    batch_builder_reset(b, -1, -1, -1);
    for (uint32_t i = 0; i < records; i++) {
        struct batch_record_in rec = {.value = val, .value_len = value_bytes, .timestamp = 1};
        cr_assert_eq(batch_builder_add(b, &rec), 0);
    }
    const uint8_t *p;
    int len = batch_builder_finish(b, &p);
    cr_assert_gt(len, 0);
    *out = malloc((size_t)len);
    memcpy(*out, p, (size_t)len);
    batch_builder_destroy(b);
    free(val);
    return (uint32_t)len;
}

struct pt_append {
    struct partition_append a;
    int result;
    bool done;
    uint64_t visible_at_done;
    int order;
};

static int pt_done_count;

static void pt_append_done(struct partition_append *a, int result)
{
    struct pt_append *pa = (struct pt_append *)a;
    pa->result = result;
    pa->done = true;
    pa->visible_at_done = partition_visible_end(a->p);
    pa->order = pt_done_count++;
}

struct pt_waiter {
    struct partition_waiter w;
    uint64_t bytes;
    int visible, gone;
};

static void pt_wake(struct partition_waiter *w, enum partition_event ev, uint32_t bytes)
{
    struct pt_waiter *pw = (struct pt_waiter *)w;
    pw->bytes += bytes;
    pw->visible += ev == PARTITION_VISIBLE;
    pw->gone += ev == PARTITION_GONE;
}

/* Appends complete in order, at the stage they ask for; offsets are contiguous; the visible end
 * covers an append when its done runs; waiters see every byte made visible; pins return to 0. */
Test(partition, append_path)
{
    struct partition *p = pt_open("t");
    uint8_t *b;
    uint32_t len = pt_batch(10, 100, &b);
    struct pt_waiter w = {.w = {.wake = pt_wake}};
    partition_wait(p, &w.w);
    struct pt_append as[3];
    pt_done_count = 0;
    for (int i = 0; i < 3; i++) {
        memset(&as[i], 0, sizeof(as[i]));
        as[i].a = (struct partition_append){.batch = b, .len = len, .records = 10,
                                            .ack = i == 1 ? PARTITION_ACK_ALL
                                                          : PARTITION_ACK_LEADER,
                                            .done = pt_append_done};
        cr_assert_eq(partition_append(p, &as[i].a), 0);
        cr_assert_eq(as[i].a.base_offset, (uint64_t)i * 10);
        cr_assert(!as[i].a.deferred);
    }
    cr_assert(partition_pinned(p));
    cr_assert_eq(partition_visible_end(p), 0, "visible before durable");
    pt_drive(&as[2].done);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(as[i].result, 0);
        cr_assert_eq(as[i].order, i);
        cr_assert_geq(as[i].visible_at_done, (uint64_t)(i + 1) * 10);
    }
    cr_assert_eq(partition_visible_end(p), 30);
    cr_assert_eq(partition_log_end(p), 30);
    cr_assert_eq(w.bytes, 3ull * len);
    cr_assert_geq(w.visible, 1);
    cr_assert_not(partition_pinned(p));
    cr_assert_eq(partition_stats(p)->records_in, 30);
    struct plog_slice s;
    cr_assert_eq(partition_read(p, 0, 1 << 20, &s), 0);
    cr_assert(partition_pinned(p), "a held slice pins");
    cr_assert_eq(s.first_offset, 0);
    cr_assert_eq(s.next_offset, 30);
    partition_read_release(p, &s);
    cr_assert_not(partition_pinned(p));
    partition_unwait(&w.w);
    partition_close(p);
    free(b);
}

/* Appends past what a log queues are copied and deferred, in order, each with the offset it
 * then gets; their copies are charged to the memory budget and refunded. */
Test(partition, deferred_in_order)
{
    struct partition *p = pt_open("d");
    uint8_t *b;
    uint32_t len = pt_batch(100, 10000, &b); /* about 1 MiB */
    enum { N = 100 };
    struct pt_append *as = calloc(N, sizeof(*as));
    pt_done_count = 0;
    uint32_t deferred = 0;
    for (int i = 0; i < N; i++) {
        as[i].a = (struct partition_append){.batch = b, .len = len, .records = 100,
                                            .ack = PARTITION_ACK_LEADER,
                                            .done = pt_append_done};
        cr_assert_eq(partition_append(p, &as[i].a), 0);
        cr_assert_eq(as[i].a.base_offset, (uint64_t)i * 100, "batch %d predicted", i);
        deferred += as[i].a.deferred;
        if (i > 0 && as[i - 1].a.deferred)
            cr_assert(as[i].a.deferred, "an append overtook a deferred one");
    }
    cr_assert_gt(deferred, 0, "the log never filled (%u MiB queued)", N * len >> 20);
    cr_assert_eq(mem_charged, (int64_t)deferred * len);
    cr_assert_eq(partition_next_offset(p), (uint64_t)N * 100);
    pt_drive(&as[N - 1].done);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(as[i].result, 0);
        cr_assert_eq(as[i].order, i);
        cr_assert_eq(as[i].a.base_offset, (uint64_t)i * 100);
    }
    cr_assert_eq(partition_visible_end(p), (uint64_t)N * 100);
    cr_assert_eq(mem_charged, 0, "deferred copies not refunded");
    partition_close(p);
    free(as);
    free(b);
}

/* A partition marked gone tells its waiters and refuses appends. */
Test(partition, gone)
{
    struct partition *p = pt_open("g");
    struct pt_waiter w = {.w = {.wake = pt_wake}};
    partition_wait(p, &w.w);
    partition_mark_gone(p);
    cr_assert_eq(w.gone, 1);
    cr_assert(partition_gone(p));
    uint8_t *b;
    uint32_t len = pt_batch(1, 10, &b);
    struct pt_append a = {.a = {.batch = b, .len = len, .records = 1, .done = pt_append_done}};
    cr_assert_eq(partition_append(p, &a.a), RL_E_UNKNOWN_TOPIC);
    partition_unwait(&w.w);
    partition_delete(p);
    free(b);
}

/* Unpinning an unpinned partition is a broken invariant: the process stops loudly. */
Test(partition, unpin_below_zero_aborts, .signal = SIGABRT)
{
    struct partition *p = pt_open("u");
    partition_pin(p);
    partition_unpin(p);
    partition_unpin(p);
}

struct pt_opened {
    bool done;
    int rc;
    char err[600];
};

static void pt_opened_cb(void *ctx, int rc, const char *err)
{
    struct pt_opened *o = ctx;
    o->rc = rc;
    snprintf(o->err, sizeof(o->err), "%s", err ? err : "");
    o->done = true;
}

/* Partitions created in the background: storage opens their logs off the loop, and every one
 * is usable once done runs. */
Test(partition, open_all_in_background)
{
    enum { N = 40 };
    struct partition *parts[N] = {0};
    struct plog_config pc;
    plog_config_default(&pc);
    struct pt_opened o = {0};
    cr_assert_eq(partition_open_all(env, dir, "many", N, &pc, NULL, parts, pt_opened_cb, &o), 0);
    cr_assert(partition_env_busy(env) || !o.done);
    pt_drive(&o.done);
    cr_assert_eq(o.rc, 0);
    cr_assert_not(partition_env_busy(env));
    uint8_t *b;
    uint32_t len = pt_batch(2, 10, &b);
    for (int i = 0; i < N; i++) {
        cr_assert_not_null(parts[i]);
        cr_assert_eq(partition_index(parts[i]), (uint32_t)i);
        struct pt_append a = {.a = {.batch = b, .len = len, .records = 2,
                                    .ack = PARTITION_ACK_LEADER, .done = pt_append_done}};
        cr_assert_eq(partition_append(parts[i], &a.a), 0);
        pt_drive(&a.done);
        cr_assert_eq(partition_visible_end(parts[i]), 2);
        partition_close(parts[i]);
    }
    free(b);
}

/* A creation that fails part-way leaves nothing: the partitions whose logs did open are
 * deleted before done reports the failure, naming the partition that failed. */
Test(partition, open_all_failure_leaves_nothing)
{
    enum { N = 5 };
    char path[400];
    snprintf(path, sizeof(path), "%s/half-2", dir);
    FILE *f = fopen(path, "w"); /* a file where partition 2's directory goes */
    cr_assert_not_null(f);
    fclose(f);
    struct partition *parts[N] = {0};
    struct plog_config pc;
    plog_config_default(&pc);
    struct pt_opened o = {0};
    cr_assert_eq(partition_open_all(env, dir, "half", N, &pc, NULL, parts, pt_opened_cb, &o), 0);
    pt_drive(&o.done);
    cr_assert_lt(o.rc, 0);
    cr_assert_not_null(strstr(o.err, "half-2"), "the error names the partition: %s", o.err);
    cr_assert_not(partition_env_busy(env));
    for (int i = 0; i < N; i++)
        cr_assert_null(parts[i]);
    /* Deletions run on storage's background thread: wait (bounded) for the directories to go. */
    uint64_t until = io_now_ns(io) + PT_DEADLINE_NS;
    for (int i = 0; i < N; i++) {
        if (i == 2)
            continue;
        snprintf(path, sizeof(path), "%s/half-%d", dir, i);
        struct stat sb;
        while (stat(path, &sb) == 0 && io_now_ns(io) < until)
            io_run(io, 10000000ull);
        cr_assert_neq(stat(path, &sb), 0, "%s is still there", path);
    }
}
