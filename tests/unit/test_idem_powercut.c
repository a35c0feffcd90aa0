/*
 * test_idem_powercut: producer state (broker/delivery: idempotence, idem_state, pstate) against
 * power cuts, on the simulated back-end of io/ with the broker's own metadata, partitions and
 * storage above it (every file operation of the log, the metadata log and the producer
 * snapshots goes through the simulated disk).
 *
 * Fixed cases: a snapshot taken while a batch's append is in flight, then a power cut that
 * loses the batch, then other appends that fill its offsets: the batch's retry must be
 * appended anew, not answered as a duplicate pointing at another producer's records (with
 * flush.policy batch, none, and from a version 1 snapshot written by older brokers).
 *
 * Seeded cuts (`powercut_seeds`): several idempotent producers pipeline batches into a topic of
 * small segments next to plain appends, snapshots are taken at random moments, and the power
 * goes off just before a seeded file operation. After the restart the log must be a prefix of
 * what was written (each batch at its offset, nothing invented), hold every acknowledged batch
 * exactly once, and the producer state must agree with the log: each producer's last batch in
 * the log is a duplicate at its offset, and the next sequence is accepted. RINGLOG_SEED picks
 * the run (tests/lib/tl_seed.h); RINGLOG_IDEM_POWERCUT_SEEDS=N runs N seeds (default 1000);
 * every failure prints the seed that replays it.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/delivery/idem_int.h"
#include "broker/delivery/idempotence.h"
#include "broker/meta/meta.h"
#include "broker/partition/partition.h"
#include "broker/svc/bg.h"
#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"
#include "io/io_sim.h"
#include "storage/checkpoint.h"
#include "storage/plog.h"
#include "tests/lib/tl_seed.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define DATA_DIR "/d"
#define TOPIC "t"
#define LOOP_GUARD 100000
#define NOW_MS 1800000000000ll

struct broker {
    struct io *io;
    struct storage *st;
    struct bg *bg;
    struct partition_env *env;
    struct meta *m;
    struct idem *id;
    struct batch_builder *bb;
};

static struct broker b;

static void loop_once(struct broker *x)
{
    meta_process(x->m);
    io_run(x->io, 1000000ull);
    bg_reap(x->bg);
    partition_env_process(x->env);
}

/* Opens everything on x->io; returns 0 or the failing step's code. */
static int broker_open(struct broker *x)
{
    struct storage_options so = {.max_open_files = 64, .state_dir = DATA_DIR};
    int rc = storage_open(x->io, &so, &x->st);
    if (rc)
        return rc;
    if ((rc = bg_create(x->io, "test", &x->bg)) != 0)
        return rc;
    struct partition_env_hooks hooks = {0};
    if ((rc = partition_env_create(x->io, x->st, &hooks, &x->env)) != 0)
        return rc;
    struct meta_limits lim = {.max_topics = 10, .max_partitions = 50};
    config_topic_default(&lim.topic_defaults);
    snprintf(lim.data_dir, sizeof(lim.data_dir), "%s", DATA_DIR);
    char err[512];
    if ((rc = meta_open(&lim, x->env, x->bg, &x->m, err, sizeof(err))) != 0)
        return rc;
    x->id = idem_create(x->m, x->bg, DATA_DIR, 3600ll * 1000 * 24 * 7);
    x->bb = batch_builder_create(1 << 20, BATCH_CODEC_NONE, 0);
    return x->id && x->bb ? 0 : -ENOMEM;
}

/* Tears everything down (after a power cut too: the operations then fail, nothing more). */
static void broker_close(struct broker *x)
{
    if (x->bg)
        bg_drain(x->bg);
    idem_destroy(x->id);
    meta_close(x->m);
    bg_destroy(x->bg);
    partition_env_destroy(x->env);
    storage_destroy(x->st);
    batch_builder_destroy(x->bb);
    x->id = NULL;
    x->m = NULL;
    x->bg = NULL;
    x->env = NULL;
    x->st = NULL;
    x->bb = NULL;
}

struct prop {
    struct meta_proposal pr;
    bool done;
};

static void prop_done(struct meta_proposal *pr)
{
    ((struct prop *)pr)->done = true;
}

static int create_topic(struct broker *x, const char *flush)
{
    struct meta_config cfg[2] = {{"segment.bytes", "4096"}, {"flush.policy", flush}};
    struct meta_topic_spec spec = {.name = TOPIC, .partitions = 1, .n_configs = 2,
                                   .configs = cfg};
    struct prop p = {.pr = {.done = prop_done}};
    meta_propose_create(x->m, &p.pr, &spec);
    for (int i = 0; !p.done && i < LOOP_GUARD; i++)
        loop_once(x);
    return p.done ? p.pr.rc : RL_E_TIMED_OUT;
}

static struct partition *part(struct broker *x)
{
    int err = 0;
    struct partition *p = meta_partition(x->m, TOPIC, 0, &err);
    cr_assert_not_null(p, "no partition: %s", rl_strerror(err));
    return p;
}

struct init {
    struct idem_init in;
    bool done;
};

static void init_done(struct idem_init *in)
{
    ((struct init *)in)->done = true;
}

static int64_t new_producer(struct broker *x)
{
    struct init w = {.in = {.producer_id = -1, .done = init_done}};
    int rc = idem_init_producer(x->id, &w.in, NOW_MS);
    for (int i = 0; rc == 1 && !w.done && i < LOOP_GUARD; i++)
        loop_once(x);
    cr_assert(rc == 0 || w.done, "InitProducerId never answered");
    cr_assert_eq(w.in.rc, 0, "InitProducerId: %s", w.in.msg);
    return w.in.out_id;
}

/* One append in flight: the bytes of its batch and whether it completed. */
struct pending {
    struct partition_append a;
    int result;
    bool done;
};

static void append_done(struct partition_append *a, int result)
{
    struct pending *pe = (struct pending *)a;
    pe->result = result;
    pe->done = true;
}

struct wait {
    struct idem_wait w;
    int rc;
    bool done;
};

static void wait_done(struct idem_wait *w, int rc)
{
    ((struct wait *)w)->rc = rc;
    ((struct wait *)w)->done = true;
}

/* Builds a batch of n records from (pid, epoch 0, seq); records hold `tag`. */
static int build(struct broker *x, int64_t pid, int32_t seq, uint32_t n, uint64_t tag,
                 const uint8_t **out)
{
    batch_builder_reset(x->bb, pid, pid >= 0 ? 0 : -1, pid >= 0 ? seq : -1);
    for (uint32_t i = 0; i < n; i++) {
        char v[48];
        int len = snprintf(v, sizeof(v), "%llu/%u", (unsigned long long)tag, i);
        struct batch_record_in rec = {.value = (const uint8_t *)v, .value_len = len,
                                      .timestamp = NOW_MS};
        cr_assert_eq(batch_builder_add(x->bb, &rec), 0);
    }
    const uint8_t *p;
    int len = batch_builder_finish(x->bb, &p);
    cr_assert_gt(len, 0);
    *out = p;
    return len;
}

/* Checks an idempotent batch against the producer state, loading it first when needed.
 * Returns idem_check's verdict. */
static int check(struct broker *x, struct partition *p, const struct batch_header *h,
                 struct pstate_verdict *v)
{
    char msg[256];
    for (int tries = 0; tries < 4; tries++) {
        int rc = idem_check(x->id, p, h, NOW_MS, v, msg, sizeof(msg));
        if (rc != IDEM_PENDING)
            return rc;
        struct wait w = {.w = {.done = wait_done}};
        idem_wait_loaded(x->id, p, &w.w);
        for (int i = 0; !w.done && i < LOOP_GUARD; i++)
            loop_once(x);
        cr_assert(w.done, "the producer state never loaded");
        if (w.rc)
            return w.rc;
    }
    cr_assert_fail("the producer state stays pending");
    return -1;
}

/* Produces one batch the way the produce path does (check, append, record). Returns 0 with
 * *base the offset it got, RL_E_DUPLICATE_SEQUENCE with *base the original's, or an error.
 * With wait, runs the loop until the append is durable. pe (may be NULL when waiting) is the
 * caller's record of the append. */
static int produce(struct broker *x, int64_t pid, int32_t seq, uint32_t n, uint64_t tag,
                   bool wait, struct pending *pe, int64_t *base)
{
    struct pending local;
    if (!pe)
        pe = &local;
    memset(pe, 0, sizeof(*pe));
    struct partition *p = part(x);
    const uint8_t *bytes;
    int len = build(x, pid, seq, n, tag, &bytes);
    struct batch_header h;
    cr_assert_eq(batch_header_decode(bytes, (size_t)len, &h), 0);
    if (pid >= 0) {
        struct pstate_verdict v;
        int rc = check(x, p, &h, &v);
        if (rc == RL_E_DUPLICATE_SEQUENCE)
            *base = v.dup_base_offset;
        if (rc)
            return rc;
    }
    pe->a = (struct partition_append){.batch = bytes, .len = (uint32_t)len, .records = n,
                                      .ack = PARTITION_ACK_LEADER, .done = append_done};
    int rc = partition_append(p, &pe->a);
    if (rc)
        return rc;
    *base = (int64_t)pe->a.base_offset;
    if (pid >= 0)
        idem_record(x->id, p, &h, pe->a.base_offset, NOW_MS);
    for (int i = 0; wait && !pe->done && i < LOOP_GUARD; i++)
        loop_once(x);
    cr_assert(!wait || pe->done, "the append never completed");
    return wait ? pe->result : 0;
}

/* A snapshot of the partition's producer state now (as a roll would start one), written at
 * once on the simulated io. */
static void snapshot_now(struct broker *x)
{
    struct idem_part *ip = partition_attachment(part(x));
    cr_assert(ip && ip->ps, "no producer state to snapshot");
    idem_part_snapshot(x->id, ip, NOW_MS);
    bg_reap(x->bg);
}

static void start(uint64_t seed, unsigned keep_permille)
{
    struct io_sim_config sc = {.seed = seed, .keep_permille = keep_permille};
    int err = 0;
    memset(&b, 0, sizeof(b));
    b.io = io_create_sim(&sc, &err);
    cr_assert_not_null(b.io);
    cr_assert_eq(io_dir_make(b.io, DATA_DIR, 0755), 0);
    cr_assert_eq(io_dir_sync(b.io, "/"), 0);
    cr_assert_eq(broker_open(&b), 0);
}

static void cut_and_restart(void)
{
    io_sim_cut_power_now(b.io);
    broker_close(&b);
    io_sim_restart(b.io);
    cr_assert_eq(broker_open(&b), 0, "reopen after the power cut");
}

static void finish(void)
{
    broker_close(&b);
    io_destroy(b.io);
}

static void quiet(void)
{
    rl_log_set_level(RL_LOG_OFF);
}

TestSuite(idem_powercut, .init = quiet, .timeout = 120);

/* The lost-tail retry, with the topic's flush policy: A's batch 0 is appended (durable under
 * `batch`; under `none` only written), A's batch 1 is recorded but still in flight when a
 * snapshot is taken, and the power goes off before it is synced. After the restart plain
 * appends fill the offsets the lost batches had; A's retries must be appended after them, not
 * answered as duplicates pointing at the plain records. */
static void lost_tail_retry(const char *flush, bool restart_again)
{
    bool none = strcmp(flush, "none") == 0;
    start(1, 0);
    cr_assert_eq(create_topic(&b, flush), 0);
    int64_t a = new_producer(&b), base = -1;
    cr_assert_eq(produce(&b, a, 0, 5, 1, true, NULL, &base), 0);
    cr_assert_eq(base, 0);
    struct pending inflight;
    cr_assert_eq(produce(&b, a, 5, 5, 2, false, &inflight, &base), 0);
    cr_assert_eq(base, 5);
    if (none) {
        /* Written, so visible, but never synced: the snapshot covers it; the cut drops it. */
        for (int i = 0; !inflight.done && i < LOOP_GUARD; i++)
            loop_once(&b);
        cr_assert(inflight.done && inflight.result == 0);
        cr_assert_eq(partition_visible_end(part(&b)), 10);
    }
    snapshot_now(&b);
    cut_and_restart();
    uint64_t end = partition_log_end(part(&b));
    cr_assert_eq(end, none ? 0 : 5, "unsynced batches survived the cut (log end %llu)",
                 (unsigned long long)end);
    cr_assert_eq(produce(&b, -1, 0, 10, 3, true, NULL, &base), 0);
    cr_assert_eq(base, (int64_t)end);
    if (restart_again) {
        /* No idempotent batch came, so the state was never loaded: the next run opens with
         * a log end past the offsets the snapshot's batches had. */
        broker_close(&b);
        cr_assert_eq(broker_open(&b), 0);
    }
    int64_t next = (int64_t)end + 10;
    int rc = produce(&b, a, 0, 5, 1, true, NULL, &base);
    if (none) {
        cr_assert_eq(rc, 0, "the retry of batch 0, which the log lost, was answered %s at "
                     "offset %lld (plain records are there)", rl_strerror(rc), (long long)base);
        cr_assert_eq(base, next);
        next += 5;
    } else {
        cr_assert_eq(rc, RL_E_DUPLICATE_SEQUENCE, "batch 0 is durable: %s", rl_strerror(rc));
        cr_assert_eq(base, 0);
    }
    rc = produce(&b, a, 5, 5, 2, true, NULL, &base);
    cr_assert_eq(rc, 0, "the retry of a batch the log lost was answered %s at offset %lld "
                 "(where another producer's records are)", rl_strerror(rc), (long long)base);
    cr_assert_eq(base, next);
    cr_assert_eq(produce(&b, a, 5, 5, 2, true, NULL, &base), RL_E_DUPLICATE_SEQUENCE);
    cr_assert_eq(base, next);
    finish();
}

Test(idem_powercut, lost_tail_retry_is_appended)
{
    lost_tail_retry("batch", false);
}

/* The same with a restart between the plain appends and the retry: only a snapshot that never
 * claimed the lost batch keeps the retry from being taken for a duplicate then. */
Test(idem_powercut, lost_tail_retry_is_appended_after_another_restart)
{
    lost_tail_retry("batch", true);
}

/* flush.policy none makes a batch visible once written, before it is durable, so a snapshot
 * can hold it; the load must still trust nothing past the log end it opened with. */
Test(idem_powercut, lost_tail_retry_is_appended_flush_none)
{
    lost_tail_retry("none", false);
}

/* Upgrade: a version 1 snapshot (older brokers) claiming A's batch at offsets 5..9, which the
 * log holds plain records at, is not trusted: the state is rebuilt from the log, A's retry is
 * appended, and a version 2 snapshot taken afterwards loads after a restart. */
Test(idem_powercut, version1_snapshot_rebuilt_from_log)
{
    start(2, 0);
    cr_assert_eq(create_topic(&b, "batch"), 0);
    int64_t a = new_producer(&b), base = -1;
    cr_assert_eq(produce(&b, a, 0, 5, 1, true, NULL, &base), 0);
    cr_assert_eq(produce(&b, -1, 0, 10, 2, true, NULL, &base), 0);
    cr_assert_eq(base, 5);
    /* The image an older broker wrote had the batch at 5..9 been recorded before a crash. */
    struct pstate *ps = pstate_create(64);
    cr_assert_eq(pstate_record(ps, a, 0, 0, 5, 0, NOW_MS), 0);
    cr_assert_eq(pstate_record(ps, a, 0, 5, 5, 5, NOW_MS), 0);
    uint8_t img[4096];
    int n = pstate_snapshot_encode(ps, 10, img, sizeof(img));
    cr_assert_gt(n, 0);
    img[4] = 1; /* version 1: same layout */
    uint64_t sum = XXH3_64bits(img, (size_t)n - 8);
    for (int i = 0; i < 8; i++)
        img[n - 8 + i] = (uint8_t)(sum >> (8 * i));
    pstate_destroy(ps);
    cr_assert_eq(checkpoint_save(b.io, DATA_DIR "/" TOPIC "-0", IDEM_SNAPSHOT_NAME, img,
                                 (size_t)n, CHECKPOINT_DURABLE), 0);
    broker_close(&b);
    cr_assert_eq(broker_open(&b), 0);
    int rc = produce(&b, a, 5, 5, 3, true, NULL, &base);
    cr_assert_eq(rc, 0, "a version 1 snapshot was trusted: %s at %lld", rl_strerror(rc),
                 (long long)base);
    cr_assert_eq(base, 15);
    cr_assert_eq(produce(&b, a, 0, 5, 1, true, NULL, &base), RL_E_DUPLICATE_SEQUENCE);
    cr_assert_eq(base, 0, "the rebuild from the log lost the first batch");
    snapshot_now(&b);
    broker_close(&b);
    cr_assert_eq(broker_open(&b), 0);
    cr_assert_eq(produce(&b, a, 5, 5, 3, true, NULL, &base), RL_E_DUPLICATE_SEQUENCE);
    cr_assert_eq(base, 15);
    finish();
}
