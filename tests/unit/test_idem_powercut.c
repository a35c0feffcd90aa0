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
#include "broker_sim.h"
#include "common/log.h"
#include "storage/checkpoint.h"
#include "tests/lib/tl_seed.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static struct broker b;

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

/* A producer with its five batches in flight (the most it may have) when a snapshot is taken
 * and lost in the cut: the snapshot still holds its durable batch, so the retry of that one
 * is a duplicate (not appended twice) and the retry of the first lost one is appended. */
Test(idem_powercut, five_in_flight_at_snapshot)
{
    start(3, 0);
    cr_assert_eq(create_topic(&b, "batch"), 0);
    int64_t a = new_producer(&b), base = -1;
    cr_assert_eq(produce(&b, a, 0, 5, 1, true, NULL, &base), 0);
    static struct pending inflight[PSTATE_BATCHES_KEPT];
    for (int i = 0; i < PSTATE_BATCHES_KEPT; i++)
        cr_assert_eq(produce(&b, a, 5 + 2 * i, 2, 10 + (uint64_t)i, false, &inflight[i], &base),
                     0);
    snapshot_now(&b);
    cut_and_restart();
    cr_assert_eq(partition_log_end(part(&b)), 5);
    int rc = produce(&b, a, 0, 5, 1, true, NULL, &base);
    cr_assert_eq(rc, RL_E_DUPLICATE_SEQUENCE, "the durable batch's retry was answered %s at "
                 "%lld", rl_strerror(rc), (long long)base);
    cr_assert_eq(base, 0);
    cr_assert_eq(produce(&b, a, 5, 2, 10, true, NULL, &base), 0);
    cr_assert_eq(base, 5);
    finish();
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

/* --- seeded power cuts ------------------------------------------------------------------------ */

#define PC_PRODUCERS 3
#define PC_SLOTS 64
#define PC_MAX_BATCHES 512

struct pc_batch {
    uint64_t base;
    int64_t pid;     /* -1: plain */
    int32_t seq;
    uint32_t n;
    struct pending *pe;
};

struct pc_run {
    uint64_t seed, rng;
    int64_t pids[PC_PRODUCERS];
    int32_t next_seq[PC_PRODUCERS];
    struct pc_batch h[PC_MAX_BATCHES]; /* in offset order */
    uint32_t n;
    struct pending slots[PC_SLOTS];
    bool busy[PC_SLOTS];
    char why[512];
};

static uint64_t pc_rnd(struct pc_run *r, uint64_t n)
{
    return n ? tl_rand(&r->rng) % n : 0;
}

static struct pending *pc_slot(struct pc_run *r)
{
    for (int i = 0; i < PC_SLOTS; i++) {
        if (r->busy[i] && r->slots[i].done)
            r->busy[i] = false;
        if (!r->busy[i]) {
            r->busy[i] = true;
            return &r->slots[i];
        }
    }
    return NULL;
}

static int pc_in_flight(const struct pc_run *r, int64_t pid)
{
    int n = 0;
    for (uint32_t i = 0; i < r->n; i++)
        n += r->h[i].pid == pid && !r->h[i].pe->done;
    return n;
}

/* One step of the workload; false when it cannot go on (the power is off). */
static bool pc_step(struct pc_run *r)
{
    if (io_sim_powered_off(b.io))
        return false;
    uint64_t what = pc_rnd(r, 10);
    if (what < 6 && r->n < PC_MAX_BATCHES) {
        int k = (int)pc_rnd(r, PC_PRODUCERS + 1); /* PC_PRODUCERS: a plain append */
        if (k < PC_PRODUCERS && pc_in_flight(r, r->pids[k]) >= PSTATE_BATCHES_KEPT) {
            loop_once(&b); /* a producer keeps at most five batches in flight */
            return true;
        }
        struct pending *pe = pc_slot(r);
        if (!pe)
            return true;
        uint32_t n = 1 + (uint32_t)pc_rnd(r, 6);
        int64_t pid = k < PC_PRODUCERS ? r->pids[k] : -1;
        int32_t seq = k < PC_PRODUCERS ? r->next_seq[k] : -1;
        int64_t base = -1;
        int rc = produce(&b, pid, seq, n, r->n, false, pe, &base);
        if (rc != 0) {
            pe->done = true; /* never appended (the power went off meanwhile) */
            return !io_sim_powered_off(b.io);
        }
        if (k < PC_PRODUCERS)
            r->next_seq[k] += (int32_t)n;
        r->h[r->n++] = (struct pc_batch){(uint64_t)base, pid, seq, n, pe};
    } else if (what < 7) {
        struct idem_part *ip = partition_attachment(part(&b));
        if (ip && ip->ps)
            snapshot_now(&b);
    } else {
        for (uint64_t i = 1 + pc_rnd(r, 3); i > 0; i--)
            loop_once(&b);
    }
    return true;
}

static bool pc_fail(struct pc_run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    return false;
}

/* The log after the restart: a prefix of the history holding every acknowledged batch. */
static bool pc_check_log(struct pc_run *r, uint32_t *in_log)
{
    struct partition *p = part(&b);
    uint64_t off = partition_start_offset(p), end = partition_visible_end(p);
    static uint8_t buf[1 << 20];
    uint32_t i = 0;
    while (i < r->n && r->h[i].base < off)
        i++;
    for (int guard = 0; off < end && guard < 100000; guard++) {
        int n = partition_read_copy(p, off, sizeof(buf), buf, sizeof(buf));
        if (n <= 0)
            return pc_fail(r, "read at %llu: %s", (unsigned long long)off, rl_strerror(n));
        for (int pos = 0; pos < n;) {
            struct batch_header h;
            if (batch_header_decode(buf + pos, (size_t)(n - pos), &h))
                return pc_fail(r, "bad batch at %llu", (unsigned long long)off);
            if (i >= r->n || r->h[i].base != h.base_offset || r->h[i].pid != h.producer_id ||
                (h.producer_id >= 0 && r->h[i].seq != h.base_sequence))
                return pc_fail(r, "offset %llu holds producer %lld seq %d, which was not "
                               "written there", (unsigned long long)h.base_offset,
                               (long long)h.producer_id, h.base_sequence);
            i++;
            off = h.base_offset + h.record_count;
            pos += (int)h.batch_len;
        }
    }
    for (uint32_t k = i; k < r->n; k++)
        if (r->h[k].pe->done && r->h[k].pe->result == 0)
            return pc_fail(r, "acknowledged batch at %llu is gone (log end %llu)",
                           (unsigned long long)r->h[k].base, (unsigned long long)end);
    *in_log = i;
    return true;
}

/* The producer state agrees with the log: each producer's last batch in it is a duplicate at
 * its offset, and the sequence after it is accepted. */
static bool pc_check_state(struct pc_run *r, uint32_t in_log)
{
    for (int k = 0; k < PC_PRODUCERS; k++) {
        const struct pc_batch *last = NULL;
        for (uint32_t i = 0; i < in_log; i++)
            if (r->h[i].pid == r->pids[k])
                last = &r->h[i];
        struct batch_header h = {.producer_id = r->pids[k], .producer_epoch = 0,
                                 .record_count = last ? last->n : 1,
                                 .base_sequence = last ? last->seq : 0};
        struct pstate_verdict v;
        int rc = check(&b, part(&b), &h, &v);
        if (last && (rc != RL_E_DUPLICATE_SEQUENCE || v.dup_base_offset != (int64_t)last->base))
            return pc_fail(r, "producer %d: its last batch in the log (seq %d at %llu) is "
                           "answered %s at %lld", k, last->seq,
                           (unsigned long long)last->base, rl_strerror(rc),
                           (long long)v.dup_base_offset);
        if (!last && rc != 0)
            return pc_fail(r, "producer %d has nothing in the log; seq 0 answered %s", k,
                           rl_strerror(rc));
        if (!last)
            continue;
        h.base_sequence = last->seq + (int32_t)last->n;
        h.record_count = 1;
        rc = check(&b, part(&b), &h, &v);
        if (rc != 0)
            return pc_fail(r, "producer %d: the sequence after its last batch in the log (%d) "
                           "is answered %s", k, h.base_sequence, rl_strerror(rc));
    }
    return true;
}

static bool pc_run_seed(struct pc_run *r)
{
    r->rng = tl_rand_init(r->seed, 77);
    start(r->seed, (unsigned)pc_rnd(r, 1001));
    if (create_topic(&b, "batch") != 0)
        return pc_fail(r, "topic not created");
    for (int k = 0; k < PC_PRODUCERS; k++)
        r->pids[k] = new_producer(&b);
    io_sim_cut_power_at(b.io, io_sim_mutations(b.io) + 1 + pc_rnd(r, 300));
    for (int i = 0; i < 400 && pc_step(r); i++)
        ;
    io_sim_cut_power_now(b.io);
    broker_close(&b);
    io_sim_restart(b.io);
    int rc = broker_open(&b);
    if (rc)
        return pc_fail(r, "no start after the cut: %s", rl_strerror(rc));
    uint32_t in_log = 0;
    bool ok = pc_check_log(r, &in_log) && pc_check_state(r, in_log);
    finish();
    return ok;
}

/* Seeded power cuts during idempotent and plain appends and snapshots (see the top). */
Test(idem_powercut, powercut_seeds, .timeout = 1500)
{
    uint64_t seed = tl_seed("idem_powercut.powercut_seeds");
    const char *n_env = getenv("RINGLOG_IDEM_POWERCUT_SEEDS");
    const char *one = getenv("RINGLOG_IDEM_POWERCUT_RUN");
    uint64_t n = n_env ? strtoull(n_env, NULL, 0) : 1000, first = 0;
    if (one) {
        first = strtoull(one, NULL, 0);
        n = first + 1;
        rl_log_set_level(RL_LOG_INFO);
    }
    static struct pc_run r;
    int failed = 0;
    for (uint64_t i = first; i < n && failed < 5; i++) {
        memset(&r, 0, sizeof(r));
        r.seed = tl_rand_init(seed, i) & 0xffffffffu;
        if (!pc_run_seed(&r)) {
            failed++;
            printf("FAIL idem powercut run %llu (sim seed %llu): %s\n  replay: RINGLOG_SEED=%llu "
                   "RINGLOG_IDEM_POWERCUT_RUN=%llu build/tests/unit/test_idem_powercut\n",
                   (unsigned long long)i, (unsigned long long)r.seed, r.why,
                   (unsigned long long)seed, (unsigned long long)i);
        }
    }
    printf("idem powercut: %llu runs, %d failed\n", (unsigned long long)n, failed);
    cr_assert_eq(failed, 0);
}
