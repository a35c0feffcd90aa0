/*
 * test_raftlog: the partition log as a Raft log (replication/raftlog.h) on real files and the
 * real io_uring back-end (test_raftlog_sim: the same on the I/O layer's simulated back-end). The main check replays one random history of appends (data batches of
 * random record counts, no-ops, configuration entries, new terms), truncations and reopenings
 * into both a raftlog and replication/memlog (the reference implementation of the log
 * contract) and compares every answer of struct raft_log_ops after each step. Then: a Raft group
 * running on a raftlog commits with commit == high watermark; reopening finds epochs and
 * configurations from the checkpoint, or from the log when the checkpoint is gone or damaged;
 * truncation below the commit index is refused.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>

#include "common/endian.h"
#include "replication/memlog.h"
#include "replication/raftlog.h"
#include "storage/checkpoint.h"
#include "storage_testutil.h"

#define HIST_STEPS 120
#define MAX_BATCHES 4096

static struct io *g_io;
static struct storage *g_st;
static struct raftlog_arena *g_arena;
static char g_dir[256];
static struct plog *g_plog;
static struct raftlog *g_rl;
static uint64_t g_segment_bytes = 64 * 1024; /* several segments, so reads cross files */
static uint8_t *g_batches[MAX_BATCHES]; /* payloads the memlog points at */
static uint32_t g_n_batches;

static void open_logs(void)
{
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = g_segment_bytes;
    cfg.index_interval_bytes = 1024;
    cfg.retention_ms = -1;
    int rc = plog_open(g_st, g_dir, &cfg, NULL, &g_plog);
    cr_assert_eq(rc, 0, "plog_open: %s", rl_strerror(rc));
    rc = raftlog_open(g_io, g_plog, g_dir, g_arena, &g_rl);
    cr_assert_eq(rc, 0, "raftlog_open: %s", rl_strerror(rc));
}

static void close_logs(void)
{
    raftlog_close(g_rl);
    plog_close(g_plog);
    g_rl = NULL;
    g_plog = NULL;
}

static void setup(void)
{
    g_io = tu_io_new(256);
    cr_assert_eq(storage_create(g_io, 64, &g_st), 0);
    g_arena = raftlog_arena_create(8u << 20);
    cr_assert_not_null(g_arena);
    tu_mkdtemp(g_io, g_dir, sizeof(g_dir), "raftlog");
    open_logs();
}

static void teardown(void)
{
    if (g_rl)
        close_logs();
    for (uint32_t i = 0; i < g_n_batches; i++)
        free(g_batches[i]);
    g_n_batches = 0;
    raftlog_arena_destroy(g_arena);
    storage_destroy(g_st);
    tu_rm_rf(g_io, g_dir);
    io_destroy(g_io);
    g_segment_bytes = 64 * 1024;
}

TestSuite(raftlog, .init = setup, .fini = teardown);

/* Runs the ring until the raftlog reports `index` durable (bounded). */
static void wait_durable(uint64_t index)
{
    uint64_t deadline = io_now_ns(g_io) + TU_DEADLINE_NS, got = 0, term;
    while (got != index && io_now_ns(g_io) < deadline) {
        if (!raftlog_take_durable(g_rl, &got, &term))
            io_run(g_io, 10 * 1000000ull);
    }
    cr_assert_eq(got, index, "durable %" PRIu64 ", waited for %" PRIu64, got, index);
    cr_assert_eq(raftlog_failed(g_rl), 0);
}

/* A data batch of `count` records stamped as the entry ending at `index`; kept until teardown. */
static struct raft_entry data_entry(uint64_t index, uint32_t count, uint64_t term, uint64_t tag)
{
    struct tu_batch b = tu_build(count, 1 + tag % 40, tag, 1000 + (int64_t)tag);
    raftlog_stamp(b.data, index - count, term);
    cr_assert_lt(g_n_batches, MAX_BATCHES);
    g_batches[g_n_batches++] = b.data;
    return (struct raft_entry){.index = index, .count = count, .term = term, .data = b.data,
                               .len = b.len};
}

/* ---- comparison with the reference ---------------------------------------------------- */

static void compare_entries(struct memlog *ml, uint64_t lo)
{
    struct raft_entry a[16], b[16];
    uint64_t hi = memlog_last(ml);
    int na = memlog_ops.entries(ml, lo, hi, 1u << 20, a, 16);
    int nb = raftlog_ops.entries(g_rl, lo, hi, 1u << 20, b, 16);
    cr_assert_gt(na, 0);
    cr_assert_gt(nb, 0, "entries(%" PRIu64 ", %" PRIu64 "): %s", lo, hi, rl_strerror(nb));
    for (int k = 0; k < (na < nb ? na : nb); k++) {
        cr_assert_eq(b[k].index, a[k].index);
        cr_assert_eq(b[k].count, a[k].count);
        cr_assert_eq(b[k].term, a[k].term);
        cr_assert_eq(b[k].type, a[k].type);
        cr_assert_eq(b[k].len, a[k].len, "entry %" PRIu64 ": len %u vs %u", a[k].index,
                     b[k].len, a[k].len);
        uint32_t diff = 0;
        while (diff < a[k].len && ((const uint8_t *)b[k].data)[diff] ==
                                      ((const uint8_t *)a[k].data)[diff])
            diff++;
        cr_assert(diff == a[k].len,
                  "entry %" PRIu64 " (type %u, %u records): stored bytes differ at byte %u of %u",
                  a[k].index, a[k].type, a[k].count, diff, a[k].len);
    }
    raftlog_ready_done(g_rl);
}

/* Every answer of raft_log_ops agrees between the raftlog and the memlog. */
static void compare_all(struct memlog *ml, uint64_t max_term)
{
    uint64_t last = memlog_last(ml);
    cr_assert_eq(raftlog_ops.last_index(g_rl), last);
    for (uint64_t i = 0; i <= last + 1; i++) {
        uint64_t ta = i <= last ? memlog_ops.term(ml, i) : 0;
        cr_assert_eq(raftlog_ops.term(g_rl, i), ta, "term(%" PRIu64 ")", i);
        for (uint64_t t = 0; t <= max_term + 1; t++) {
            uint64_t tma = 0, tmb = 0;
            uint64_t ba = memlog_ops.boundary(ml, i, t, &tma);
            uint64_t bb = raftlog_ops.boundary(g_rl, i, t, &tmb);
            cr_assert_eq(bb, ba, "boundary(%" PRIu64 ", term %" PRIu64 ")", i, t);
            cr_assert_eq(tmb, tma);
        }
        struct raft_entry ca, cb;
        int fa = memlog_ops.config(ml, i, &ca), fb = raftlog_ops.config(g_rl, i, &cb);
        cr_assert_eq(fb, fa, "config(%" PRIu64 ")", i);
        if (fa == 1) {
            cr_assert_eq(cb.index, ca.index);
            cr_assert_eq(cb.len, ca.len);
            cr_assert_eq(memcmp(cb.data, ca.data, ca.len), 0);
        }
        raftlog_ready_done(g_rl);
        if (i < last && (i == 0 || ta != 0))
            compare_entries(ml, i + 1);
    }
}

/* Applies a ready holding `n` appends (after an optional truncation) to both logs. */
static void apply_both(struct memlog *ml, struct raft_ready *rd)
{
    int rc = raftlog_apply(g_rl, rd);
    cr_assert_eq(rc, 0, "raftlog_apply: %s", rl_strerror(rc));
    if (rd->has_truncate)
        cr_assert_eq(memlog_truncate_after(ml, rd->truncate_after), 0);
    for (uint32_t i = 0; i < rd->n_append; i++)
        cr_assert_eq(memlog_append(ml, &rd->append[i]), 0);
    if (rd->n_append)
        wait_durable(memlog_last(ml));
}

Test(raftlog, answers_as_the_reference_log_does)
{
    const char *env = getenv("RAFTLOG_SEED"); /* replay another history */
    uint64_t seed = env ? strtoull(env, NULL, 0) : 0x5eed0001, rng = seed;
    printf("test_raftlog reference history seed %" PRIu64 " (RAFTLOG_SEED=%" PRIu64
           " replays it)\n", seed, seed);
    struct memlog ml;
    memlog_init(&ml, 0, 0);
    static struct raft_ready rd;
    static struct raft_entry ents[8];
    uint64_t term = 1, commit = 0;
    for (int step = 0; step < HIST_STEPS; step++) {
        memset(&rd, 0, sizeof(rd));
        rd.role = tu_rand(&rng) % 2 ? RAFT_LEADER : RAFT_FOLLOWER;
        uint64_t last = memlog_last(&ml);
        uint64_t r = tu_rand(&rng) % 100;
        if (r < 15 && last > commit) { /* truncate to a boundary at or above the commit */
            uint64_t t;
            uint64_t at = memlog_ops.boundary(&ml, commit + tu_rand(&rng) % (last - commit + 1),
                                              UINT64_MAX, &t);
            if (at < commit)
                at = commit;
            rd.has_truncate = true;
            rd.truncate_after = at;
            last = at;
            term++; /* a new leader overwrites */
        } else if (r < 25) {
            term++;
        } else if (r < 30) {
            close_logs(); /* the tail cache is gone: older answers come from the plog */
            open_logs();
            compare_all(&ml, term);
            continue;
        } else if (r < 40 && last) {
            commit = memlog_ops.boundary(&ml, last, UINT64_MAX, &(uint64_t){0});
            raftlog_set_commit(g_rl, commit);
        }
        uint32_t n = 1 + (uint32_t)(tu_rand(&rng) % 5);
        for (uint32_t i = 0; i < n; i++) {
            uint64_t kind = tu_rand(&rng) % 10;
            if (kind == 0) { /* a no-op */
                ents[i] = (struct raft_entry){.index = last + 1, .count = 1, .term = term};
            } else if (kind == 1) { /* a configuration */
                struct raft_config c = {.n_voters = 1 + (uint32_t)(tu_rand(&rng) % 3)};
                for (uint32_t v = 0; v < c.n_voters; v++)
                    c.voters[v] = v + 1 + (uint32_t)step;
                cr_assert_lt(g_n_batches, MAX_BATCHES);
                uint8_t *buf = g_batches[g_n_batches++] = malloc(RAFT_CONFIG_MAX_BYTES);
                uint32_t len = raft_config_encode(&c, buf);
                ents[i] = (struct raft_entry){.index = last + 1, .count = 1, .term = term,
                                              .type = RAFT_ENTRY_CONFIG, .data = buf,
                                              .len = len};
            } else {
                uint32_t count = 1 + (uint32_t)(tu_rand(&rng) % (kind < 5 ? 3 : 40));
                ents[i] = data_entry(last + count, count, term, tu_rand(&rng));
            }
            last = ents[i].index;
        }
        rd.append = ents;
        rd.n_append = n;
        apply_both(&ml, &rd);
        if (step % 10 == 9)
            compare_all(&ml, term);
    }
    compare_all(&ml, term);
    cr_assert_eq(plog_end_offset(g_plog), memlog_last(&ml), "LEO == last index");
    memlog_free(&ml);
}

Test(raftlog, reopen_finds_epochs_and_configs_from_checkpoint_or_log)
{
    /* Three terms and two configurations; after a clean close the checkpoint has them; with
     * the checkpoint removed, or damaged, the log itself is read back to find them. */
    struct memlog ml;
    memlog_init(&ml, 0, 0);
    static struct raft_ready rd;
    struct raft_entry e[3];
    uint8_t cb[2][RAFT_CONFIG_MAX_BYTES];
    struct raft_config c1 = {.n_voters = 3, .voters = {1, 2, 3}};
    struct raft_config c2 = {.n_voters = 3, .voters = {1, 2, 3}, .n_learners = 1,
                             .learners = {4}};
    uint64_t last = 0;
    for (uint64_t term = 1; term <= 3; term++) {
        memset(&rd, 0, sizeof(rd));
        e[0] = (struct raft_entry){.index = last + 1, .count = 1, .term = term};
        e[1] = data_entry(last + 1 + 7, 7, term, term);
        uint32_t n = 2;
        if (term >= 2) {
            uint32_t len = raft_config_encode(term == 2 ? &c1 : &c2, cb[term - 2]);
            e[2] = (struct raft_entry){.index = e[1].index + 1, .count = 1, .term = term,
                                       .type = RAFT_ENTRY_CONFIG, .data = cb[term - 2],
                                       .len = len};
            n = 3;
        }
        rd.append = e;
        rd.n_append = n;
        rd.role = RAFT_LEADER;
        apply_both(&ml, &rd);
        last = memlog_last(&ml);
    }
    compare_all(&ml, 3);
    raftlog_set_commit(g_rl, memlog_last(&ml)); /* the checkpoint covers committed entries */
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", g_dir, RAFTLOG_CHECKPOINT);
    for (int round = 0; round < 4; round++) {
        close_logs();
        if (round == 1)
            cr_assert_eq(checkpoint_delete(g_io, g_dir, RAFTLOG_CHECKPOINT, 1), 0);
        if (round == 2) /* a flipped byte: the checkpoint's checksum catches it */
            cr_assert_eq(tu_flip(g_io, path, 20, 0x40), 0);
        if (round == 3) { /* well formed, but not this log's: covers all, knows no epoch */
            uint8_t lie[20] = {1, 0, 0, 0, 0xff, 0xff};
            cr_assert_eq(checkpoint_save(g_io, g_dir, RAFTLOG_CHECKPOINT, lie, sizeof(lie),
                                         CHECKPOINT_DURABLE), 0);
        }
        if (round == 0) { /* a clean close wrote a checkpoint covering the whole log */
            uint8_t ck[256];
            int n = checkpoint_load(g_io, g_dir, RAFTLOG_CHECKPOINT, ck, sizeof(ck));
            cr_assert_geq(n, 20);
            cr_assert_eq(rl_load_le64(ck + 4), memlog_last(&ml));
            cr_assert_eq(rl_load_le32(ck + 12), 3, "three epochs");
            cr_assert_eq(rl_load_le32(ck + 16), 2, "two configurations");
        }
        open_logs();
        compare_all(&ml, 3);
        raftlog_set_commit(g_rl, memlog_last(&ml));
    }
    memlog_free(&ml);
}

Test(raftlog, truncation_keeps_the_committed_prefix)
{
    /* Truncation below the commit index the log was told of is refused (and fails the log);
     * above it the plog is cut at a boundary and later appends continue there. */
    struct memlog ml;
    memlog_init(&ml, 0, 0);
    static struct raft_ready rd;
    struct raft_entry e[4];
    memset(&rd, 0, sizeof(rd));
    for (uint32_t i = 0; i < 4; i++)
        e[i] = data_entry(10 * (i + 1), 10, 1, i);
    rd.append = e;
    rd.n_append = 4;
    apply_both(&ml, &rd);
    raftlog_set_commit(g_rl, 20);
    memset(&rd, 0, sizeof(rd));
    rd.has_truncate = true;
    rd.truncate_after = 30;
    e[0] = data_entry(35, 5, 2, 9);
    rd.append = e;
    rd.n_append = 1;
    apply_both(&ml, &rd);
    cr_assert_eq(plog_end_offset(g_plog), 35);
    compare_all(&ml, 2);
    memset(&rd, 0, sizeof(rd));
    rd.has_truncate = true;
    rd.truncate_after = 10;
    cr_assert_eq(raftlog_apply(g_rl, &rd), RL_E_INTERNAL);
    cr_assert_eq(raftlog_failed(g_rl), RL_E_INTERNAL, "a refused truncation fails the log");
    cr_assert_eq(plog_end_offset(g_plog), 35, "nothing was cut");
    memlog_free(&ml);
}

/* ---- a Raft group on a raftlog -------------------------------------------------------- */

static struct raft_ready g_rd;

/* Carries out a ready of a single-voter group whose log is the raftlog, then feeds the
 * durability reports back until nothing more happens (bounded). */
static void carry(struct raft *r)
{
    for (int round = 0; round < 64; round++) {
        cr_assert_eq(raftlog_apply(g_rl, &g_rd), 0);
        raftlog_ready_done(g_rl);
        if (g_rd.commit_changed)
            raftlog_set_commit(g_rl, g_rd.commit_index);
        if (g_rd.n_append == 0)
            return;
        uint64_t want = raft_last_index(r), got = 0, term = 0;
        uint64_t deadline = io_now_ns(g_io) + TU_DEADLINE_NS;
        while (got != want && io_now_ns(g_io) < deadline)
            if (!raftlog_take_durable(g_rl, &got, &term))
                io_run(g_io, 10 * 1000000ull);
        cr_assert_eq(got, want);
        cr_assert_eq(raft_persisted(r, got, term, &g_rd), 0);
    }
    cr_assert_fail("readies did not settle");
}

Test(raftlog, group_commits_with_commit_index_as_high_watermark)
{
    /* A single-voter group elects itself and commits batches of 1, 5 and 64 records; its
     * commit index is the log end offset, its no-op and a learner's addition are control
     * batches in the plog, and a restarted group finds its last index and configuration. */
    struct raft r;
    struct raft_snapshot_meta snap = {.config = {.n_voters = 1, .voters = {1}}};
    struct raft_options o = {.id = 1, .election_ticks = 10, .heartbeat_ticks = 2, .seed = 3,
                             .log_ops = &raftlog_ops, .log_ctx = g_rl};
    cr_assert_eq(raft_init(&r, &o, NULL, &snap), 0);
    for (int i = 0; i < 30 && raft_role(&r) != RAFT_LEADER; i++) {
        cr_assert_eq(raft_tick(&r, &g_rd), 0);
        carry(&r);
    }
    cr_assert_eq(raft_role(&r), RAFT_LEADER);
    cr_assert_eq(raft_commit(&r), 1, "the no-op is offset 0");
    const uint32_t counts[] = {1, 5, 64};
    for (int i = 0; i < 3; i++) {
        struct raft_entry e = data_entry(raft_last_index(&r) + counts[i], counts[i],
                                         raft_term(&r), 100 + (uint64_t)i);
        uint64_t last = 0;
        cr_assert_eq(raft_propose(&r, &e, 1, &g_rd, &last), 0);
        cr_assert_eq(last, e.index);
        carry(&r);
        cr_assert_eq(raft_commit(&r), last);
    }
    cr_assert_eq(raft_commit(&r), 71);
    cr_assert_eq(plog_end_offset(g_plog), 71, "commit index == high watermark == LEO");
    uint64_t idx = 0;
    cr_assert_eq(raft_propose_conf_change(&r, RAFT_CONF_ADD_LEARNER, 2, &g_rd, &idx), 0);
    carry(&r);
    cr_assert_eq(raft_commit(&r), idx);
    struct raft_entry got[8];
    int n = raftlog_ops.entries(g_rl, 1, idx, 1u << 20, got, 8);
    cr_assert_eq(n, 5);
    cr_assert_eq(got[0].type, RAFT_ENTRY_NORMAL);
    cr_assert_eq(got[0].len, 0, "the no-op reads back as an empty entry");
    cr_assert_eq(got[4].type, RAFT_ENTRY_CONFIG);
    raftlog_ready_done(g_rl);
    close_logs();
    open_logs();
    struct raft_hard_state hs = {.term = raft_term(&r), .vote = 1};
    o.log_ctx = g_rl;
    cr_assert_eq(raft_init(&r, &o, &hs, &snap), 0);
    cr_assert_eq(raft_last_index(&r), idx);
    cr_assert(raft_config_is_learner(&r.config, 2), "the configuration came back");
}

/* ---- snapshot install: the log restarted at the leader's log start --------------------- */

/* Appends data entries of `count` records under `term` through a follower's ready, waits. */
static uint64_t follow_append(uint64_t term, uint32_t count, int n, uint64_t tag)
{
    static struct raft_ready rd;
    static struct raft_entry ents[8];
    memset(&rd, 0, sizeof(rd));
    rd.role = RAFT_FOLLOWER;
    uint64_t last = raftlog_ops.last_index(g_rl);
    for (int i = 0; i < n; i++) {
        last += count;
        ents[i] = data_entry(last, count, term, tag + (uint64_t)i);
    }
    rd.append = ents;
    rd.n_append = (uint32_t)n;
    cr_assert_eq(raftlog_apply(g_rl, &rd), 0);
    wait_durable(last);
    return last;
}

static void install_snapshot(const struct raft_snapshot_meta *s)
{
    static struct raft_ready rd;
    memset(&rd, 0, sizeof(rd));
    rd.role = RAFT_FOLLOWER;
    rd.has_snapshot = true;
    rd.snapshot = *s;
    int rc = raftlog_apply(g_rl, &rd);
    cr_assert_eq(rc, 0, "install: %s", rl_strerror(rc));
    raftlog_ready_done(g_rl);
    raftlog_set_commit(g_rl, s->index);
}

static void expect_after_install(const struct raft_snapshot_meta *s, uint64_t last)
{
    struct raft_config initial = {.n_voters = 1, .voters = {9}};
    struct raft_snapshot_meta got;
    cr_assert_eq(plog_start_offset(g_plog), s->index);
    cr_assert_eq(raftlog_ops.last_index(g_rl), last);
    cr_assert_eq(raftlog_ops.term(g_rl, s->index), s->term, "the term at the log start");
    cr_assert_eq(raftlog_ops.term(g_rl, s->index - 1), 0, "an index below the start");
    cr_assert_eq(raftlog_snapshot(g_rl, &initial, &got), 0);
    cr_assert_eq(got.index, s->index);
    cr_assert_eq(got.term, s->term);
    cr_assert_eq(got.config_index, s->config_index);
    cr_assert_eq(got.config.n_voters, s->config.n_voters);
    cr_assert_eq(got.config.voters[2], s->config.voters[2]);
    uint64_t t;
    cr_assert_eq(raftlog_ops.boundary(g_rl, s->index + 1, 1, &t), 0,
                 "no entry of the old log answers");
}

Test(raftlog, snapshot_install_restarts_the_log_and_appends_continue_across_reopens)
{
    /* A follower holds entries of terms 1-3 (a divergent, uncommitted tail of term 3); the
     * leader's log starts past all of it. The install leaves an empty log starting there with
     * the snapshot's term and configuration, the leader's batches append from there (terms
     * lower than the discarded tail's included), and a reopen finds the same log, whose
     * restart point raftlog_snapshot gives back. A second install goes further. */
    follow_append(1, 5, 4, 1);
    raftlog_set_commit(g_rl, 20);
    follow_append(3, 2, 3, 10);
    cr_assert_eq(raftlog_maintain(g_rl, 0), 1);
    struct raft_snapshot_meta s = {.index = 500, .term = 2, .config_index = 400,
                                   .config = {.n_voters = 3, .voters = {1, 2, 3}}};
    install_snapshot(&s);
    expect_after_install(&s, 500);
    cr_assert_eq(raftlog_failed(g_rl), 0);
    uint64_t last = follow_append(2, 4, 3, 100);
    last = follow_append(4, 1, 2, 200);
    cr_assert_eq(last, 514);
    cr_assert_eq(raftlog_ops.term(g_rl, 512), 2);
    cr_assert_eq(raftlog_ops.term(g_rl, 514), 4);
    struct raft_entry e[8];
    int n = raftlog_ops.entries(g_rl, 501, 514, 1u << 20, e, 8);
    cr_assert_eq(n, 5);
    cr_assert_eq(e[0].index, 504);
    cr_assert_eq(e[4].index, 514);
    raftlog_ready_done(g_rl);
    close_logs();
    open_logs();
    expect_after_install(&s, 514);
    cr_assert_eq(raftlog_ops.term(g_rl, 508), 2);
    cr_assert_eq(raftlog_ops.term(g_rl, 513), 4);
    /* The checkpoint of the old log must not come back (epoch 3 started at 20). */
    uint64_t t;
    cr_assert_eq(raftlog_ops.boundary(g_rl, 514, 3, &t), 512);
    cr_assert_eq(t, 2);
    struct raft_snapshot_meta s2 = {.index = 9000, .term = 7, .config_index = 0,
                                    .config = {.n_voters = 3, .voters = {1, 2, 4}}};
    install_snapshot(&s2);
    expect_after_install(&s2, 9000);
    last = follow_append(7, 3, 1, 300);
    close_logs();
    open_logs();
    expect_after_install(&s2, 9003);
    cr_assert_eq(raftlog_ops.term(g_rl, 9003), 7);
}

Test(raftlog, reopen_after_an_install_that_left_the_old_checkpoint_ignores_it)
{
    /* A crash between the plog's restart and the raftlog's checkpoint: the checkpoint on disk
     * describes the old log. Simulated by putting the old checkpoint back after the install. */
    follow_append(3, 5, 4, 1);
    raftlog_set_commit(g_rl, 20);
    cr_assert_eq(raftlog_maintain(g_rl, 0), 1);
    static uint8_t old[4096];
    int n = checkpoint_load(g_io, g_dir, RAFTLOG_CHECKPOINT, old, sizeof(old));
    cr_assert_gt(n, 0);
    struct raft_snapshot_meta s = {.index = 100, .term = 2, .config_index = 0,
                                   .config = {.n_voters = 3, .voters = {1, 2, 3}}};
    install_snapshot(&s);
    follow_append(2, 1, 1, 50);
    raftlog_ready_done(g_rl);
    close_logs();
    cr_assert_eq(checkpoint_save(g_io, g_dir, RAFTLOG_CHECKPOINT, old, (size_t)n,
                                 CHECKPOINT_DURABLE), 0);
    open_logs();
    expect_after_install(&s, 101);
    cr_assert_eq(raftlog_ops.term(g_rl, 101), 2, "epoch 3 of the old log came back");
}

Test(raftlog, appends_refused_for_buffer_space_wait_and_go_out_in_order)
{
    /* Other logs of the storage hold its whole write-buffer pool (as when a thousand groups
     * elect at once): the plog refuses the raftlog's appends with RL_E_FULL. They must wait,
     * in order, not fail the log, and become durable once the other logs' writes complete. */
    struct plog *other[4];
    static struct tu_append a[4][400];
    struct tu_batch sizes[3] = {tu_build(1, 1000 * 1000, 77, 1), tu_build(1, 60 * 1000, 78, 1),
                                tu_build(1, 1000, 79, 1)};
    int n[4] = {0, 0, 0, 0};
    for (int k = 0; k < 4; k++) {
        char sub[300];
        snprintf(sub, sizeof(sub), "%s/other-%d", g_dir, k);
        struct plog_config cfg;
        plog_config_default(&cfg);
        cfg.retention_ms = -1;
        cr_assert_eq(plog_open(g_st, sub, &cfg, NULL, &other[k]), 0);
    }
    /* Each log takes batches until it is refused (its own 64 MiB, or the pool), big ones
     * first, then smaller, so no chunk of the pool is left. */
    for (int k = 0; k < 4; k++)
        for (int z = 0; z < 3; z++)
            while (n[k] < 400 && tu_append_start(other[k], &a[k][n[k]], &sizes[z]) == 0)
                n[k]++;
    struct tu_append probe;
    bool full = tu_append_start(other[3], &probe, &sizes[2]) == RL_E_FULL;
    cr_assert(full, "the storage's write-buffer pool never ran out");
    struct raftlog_arena_stats st0, st1;
    raftlog_arena_get_stats(g_arena, &st0);
    static struct raft_ready rd;
    static struct raft_entry ents[3];
    memset(&rd, 0, sizeof(rd));
    rd.role = RAFT_FOLLOWER;
    for (int i = 0; i < 3; i++)
        ents[i] = data_entry(4 * (uint64_t)(i + 1), 4, 1, 500 + (uint64_t)i);
    rd.append = ents;
    rd.n_append = 3;
    cr_assert_eq(raftlog_apply(g_rl, &rd), 0, "an append refused for space failed the log");
    raftlog_ready_done(g_rl);
    raftlog_arena_get_stats(g_arena, &st1);
    cr_assert_gt(st1.appends_blocked, st0.appends_blocked, "the appends did not wait");
    cr_assert_lt(plog_end_offset(g_plog), 12, "the plog took them all although it was full");
    /* The driver finishes a ready for every group every tick (raftlog_ready_done), which is
     * one of the moments the waiting appends are retried. */
    uint64_t deadline = io_now_ns(g_io) + TU_DEADLINE_NS, got = 0, term;
    while (got != 12 && io_now_ns(g_io) < deadline) {
        raftlog_ready_done(g_rl);
        if (!raftlog_take_durable(g_rl, &got, &term))
            io_run(g_io, 10 * 1000000ull);
    }
    cr_assert_eq(got, 12, "the waiting appends never became durable");
    cr_assert_eq(raftlog_failed(g_rl), 0);
    static uint8_t buf[4096];
    for (int i = 0; i < 3; i++) {
        int len = plog_read_copy(g_plog, 4 * (uint64_t)i, 1, UINT64_MAX, buf, sizeof(buf));
        cr_assert_eq(len, (int)ents[i].len);
        cr_assert_eq(memcmp(buf + 8, (const uint8_t *)ents[i].data + 8, ents[i].len - 8), 0);
    }
    for (int k = 0; k < 4; k++) {
        cr_assert(tu_run_until(g_io, &a[k][n[k] - 1].calls, 1));
        plog_close(other[k]);
    }
    for (int z = 0; z < 3; z++)
        free(sizes[z].data);
}

Test(raftlog, reopen_without_checkpoint_reads_the_log_once)
{
    /* The scan at open reads the log in windows of 1 MiB; each window must be walked to its
     * last whole batch before the next read (a scan that re-read a window for every batch in
     * it made restarts grow from 0.1 s to 30 s with the log). A 3 MiB log of 4 KiB batches in
     * one segment, in four terms, reopened without its checkpoint: a handful of reads, and
     * every term found. */
    close_logs();
    g_segment_bytes = 64u << 20;
    open_logs();
    enum { N = 768, PER_TERM = N / 4, RECS = 4 };
    static struct raft_ready rd;
    static struct raft_entry ents[16];
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < N; i += 16) {
        memset(&rd, 0, sizeof(rd));
        rd.role = RAFT_LEADER;
        for (uint32_t j = 0; j < 16; j++) {
            uint64_t b = i + j;
            struct tu_batch tb = tu_build(RECS, 1000, b, 1000 + (int64_t)b);
            raftlog_stamp(tb.data, b * RECS, 1 + b / PER_TERM);
            g_batches[g_n_batches++] = tb.data;
            ents[j] = (struct raft_entry){.index = (b + 1) * RECS, .count = RECS,
                                          .term = 1 + b / PER_TERM, .data = tb.data,
                                          .len = tb.len};
            bytes += ents[j].len;
        }
        rd.append = ents;
        rd.n_append = 16;
        cr_assert_eq(raftlog_apply(g_rl, &rd), 0);
        wait_durable((uint64_t)(i + 16) * RECS);
        raftlog_ready_done(g_rl);
    }
    cr_assert_gt(bytes, 3u << 20, "the log must span several scan windows");
    raftlog_set_commit(g_rl, (uint64_t)N * RECS);
    close_logs();
    cr_assert_eq(checkpoint_delete(g_io, g_dir, RAFTLOG_CHECKPOINT, 1), 0);
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = g_segment_bytes;
    cfg.index_interval_bytes = 1024;
    cfg.retention_ms = -1;
    cr_assert_eq(plog_open(g_st, g_dir, &cfg, NULL, &g_plog), 0);
    struct io_file_stats s0, s1;
    io_file_stats(g_io, &s0);
    int rc = raftlog_open(g_io, g_plog, g_dir, g_arena, &g_rl);
    io_file_stats(g_io, &s1);
    cr_assert_eq(rc, 0, "raftlog_open: %s", rl_strerror(rc));
    uint64_t reads = s1.reads - s0.reads, windows = (bytes >> 20) + 1;
    printf("reopen scan of %" PRIu64 " bytes: %" PRIu64 " reads\n", bytes, reads);
    cr_assert_leq(reads, 2 * windows + 8,
                  "the scan of %" PRIu64 " bytes took %" PRIu64 " reads (windows: %" PRIu64
                  "): it re-reads what it has read", bytes, reads, windows);
    cr_assert_eq(raftlog_ops.last_index(g_rl), (uint64_t)N * RECS);
    for (uint64_t b = 0; b < N; b++)
        cr_assert_eq(raftlog_ops.term(g_rl, (b + 1) * RECS), 1 + b / PER_TERM,
                     "term of the batch ending at %" PRIu64, (b + 1) * RECS);
}
