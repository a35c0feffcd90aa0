/*
 * test_plog_reset: plog_reset_to, the partition log restarted empty at an offset (a replica
 * caught up from its leader's log start), on real files and io_uring (test_plog_reset_sim: the
 * same on the simulated back-end, plus the power cuts). Checks: the old batches are gone from
 * memory and disk, appends continue at the offset, the meta comes back, a reopen finds the new
 * log; a reset into the middle of a longer log (even onto an old segment's name) keeps nothing
 * of it; bad offsets are refused. Power cuts (sim only): seeded cuts before every file
 * operation of a reset and the appends after it; after the restart the log is either the old
 * one, byte for byte, or the new one starting at the offset with every acknowledged append, and
 * always the new one when the reset had returned. RINGLOG_SEED replays (tl_seed prints it);
 * RINGLOG_RESET_CUTS sets the number of cuts (default 400).
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>

#include "tests/lib/tl_seed.h"
#include "common/log.h"
#include "io/io_sim.h"
#include "storage_testutil.h"

#define NB 40

static struct io *g_io;
static struct storage *g_st;
static struct plog *g_log;
static char g_dir[256];
static struct plog_config g_cfg;
static struct tu_batch g_b[NB];
static uint64_t g_base[NB];

static void open_log(void)
{
    int rc = plog_open(g_st, g_dir, &g_cfg, NULL, &g_log);
    cr_assert_eq(rc, 0, "plog_open: %s", rl_strerror(rc));
}

static void setup(void)
{
    g_io = tu_io_new(256);
    cr_assert_eq(storage_create(g_io, 64, &g_st), 0);
    tu_mkdtemp(g_io, g_dir, sizeof(g_dir), "plog_reset");
    plog_config_default(&g_cfg);
    g_cfg.segment_bytes = 16 * 1024;
    g_cfg.index_interval_bytes = 512;
    g_cfg.retention_ms = -1;
    open_log();
}

static void teardown(void)
{
    if (g_log)
        plog_close(g_log);
    g_log = NULL;
    for (int i = 0; i < NB; i++) {
        free(g_b[i].data);
        g_b[i].data = NULL;
    }
    storage_destroy(g_st);
    tu_rm_rf(g_io, g_dir);
    io_destroy(g_io);
}

TestSuite(plog_reset, .init = setup, .fini = teardown);

static void fill(int n)
{
    for (int i = 0; i < n; i++) {
        int rc = tu_build_append(g_io, g_log, &g_b[i], 1 + (uint32_t)i % 7, 700, 10 + (uint64_t)i,
                                 1000 + i, &g_base[i]);
        cr_assert_eq(rc, 0, "append %d: %s", i, rl_strerror(rc));
    }
    cr_assert(n < NB || plog_segment_count(g_log) > 3, "the log must span several segments");
}

/* The log holds exactly one batch per tag in want[0..n), from `start` on. */
static void expect_batches(uint64_t start, const struct tu_batch *want, int n)
{
    static uint8_t buf[1 << 16];
    uint64_t off = start;
    for (int i = 0; i < n; i++) {
        int len = plog_read_copy(g_log, off, 1, UINT64_MAX, buf, sizeof(buf));
        cr_assert_gt(len, 0, "batch %d at %" PRIu64 ": %s", i, off, rl_strerror(len));
        cr_assert(tu_same_batch(buf, &want[i], off), "batch %d at %" PRIu64 " differs", i, off);
        off += want[i].records;
    }
    cr_assert_eq(plog_end_offset(g_log), off);
}

Test(plog_reset, discards_everything_and_appends_continue_at_the_offset)
{
    fill(NB);
    uint64_t end = plog_end_offset(g_log), at = end + 500;
    cr_assert_eq(plog_reset_to(g_log, at, "meta-1", 6), 0);
    cr_assert_eq(plog_start_offset(g_log), at);
    cr_assert_eq(plog_end_offset(g_log), at);
    cr_assert_eq(plog_segment_count(g_log), 1);
    cr_assert_eq(plog_size_bytes(g_log), 0);
    struct plog_slice s;
    cr_assert_eq(plog_read(g_log, 0, 4096, UINT64_MAX, &s), RL_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(plog_read(g_log, end - 1, 4096, UINT64_MAX, &s), RL_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(tu_count_files(g_io, g_dir, ".log"), 1, "old segment files are left");
    cr_assert_eq(tu_count_files(g_io, g_dir, ".index"), 0, "old index files are left");
    struct tu_batch nb[3];
    for (int i = 0; i < 3; i++) {
        uint64_t base;
        cr_assert_eq(tu_build_append(g_io, g_log, &nb[i], 3, 100, 900 + (uint64_t)i, 5, &base),
                     0);
        cr_assert_eq(base, at + 3 * (uint64_t)i);
    }
    expect_batches(at, nb, 3);
    char meta[16];
    uint64_t got;
    cr_assert_eq(plog_reset_meta(g_log, &got, meta, sizeof(meta)), 6);
    cr_assert_eq(got, at);
    cr_assert_eq(memcmp(meta, "meta-1", 6), 0);
    plog_close(g_log);
    open_log();
    cr_assert_eq(plog_start_offset(g_log), at);
    expect_batches(at, nb, 3);
    cr_assert_eq(plog_damaged_ranges(g_log), 0);
    for (int i = 0; i < 3; i++)
        free(nb[i].data);
}

Test(plog_reset, into_a_longer_log_onto_an_old_segment_name_keeps_nothing_of_it)
{
    fill(NB);
    /* A divergent tail: the reset offset is the base of a later segment of the old log. */
    uint64_t at = 0;
    for (int i = NB / 2; i < NB && !at; i++) {
        char p[400];
        snprintf(p, sizeof(p), "%s/%020" PRIu64 ".log", g_dir, g_base[i]);
        if (tu_exists(g_io, p))
            at = g_base[i];
    }
    cr_assert_gt(at, 0, "no segment starts in the second half");
    cr_assert_eq(plog_reset_to(g_log, at, NULL, 0), 0);
    cr_assert_eq(plog_end_offset(g_log), at);
    char p[400];
    snprintf(p, sizeof(p), "%s/%020" PRIu64 ".log", g_dir, at);
    cr_assert_eq(tu_file_size(g_io, p), 0, "the old segment of that name survived");
    plog_close(g_log);
    open_log();
    cr_assert_eq(plog_start_offset(g_log), at);
    cr_assert_eq(plog_end_offset(g_log), at);
    struct tu_batch b;
    uint64_t base;
    cr_assert_eq(tu_build_append(g_io, g_log, &b, 2, 50, 77, 1, &base), 0);
    cr_assert_eq(base, at);
    cr_assert_eq(plog_reset_meta(g_log, &base, NULL, 0), 0);
    free(b.data);
}

Test(plog_reset, refuses_offsets_at_or_below_the_start_and_oversized_meta)
{
    fill(8);
    uint64_t start = plog_start_offset(g_log), end = plog_end_offset(g_log);
    static uint8_t big[PLOG_RESET_META_MAX + 1];
    cr_assert_eq(plog_reset_to(g_log, start, NULL, 0), RL_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(plog_reset_to(g_log, end + 1, big, sizeof(big)), RL_E_INVALID_ARGUMENT);
    cr_assert_eq(plog_end_offset(g_log), end, "a refused reset changed the log");
    uint64_t off;
    cr_assert_eq(plog_reset_meta(g_log, &off, NULL, 0), -ENOENT);
    expect_batches(0, g_b, 8);
}

#ifdef TU_SIM
/* ---- power cuts ------------------------------------------------------------------------ */

#define PC_DIR "/rs/log"

struct pc {
    struct io *io;
    struct storage *st;
    struct plog *log;
};

static int pc_open(struct pc *p, const struct plog_config *cfg)
{
    struct storage_options opt = {.max_open_files = 16, .state_dir = "/rs"};
    int rc = storage_open(p->io, &opt, &p->st);
    if (rc == 0 && (rc = plog_open(p->st, PC_DIR, cfg, NULL, &p->log)) < 0) {
        storage_destroy(p->st);
        p->st = NULL;
    }
    return rc;
}

static void pc_close(struct pc *p)
{
    if (p->st)
        storage_destroy(p->st);
    p->st = NULL;
    p->log = NULL;
}

/* One cut; returns NULL or what went wrong. */
static const char *one_cut(uint64_t seed, uint64_t cut, char *why, size_t cap)
{
    uint64_t rng = seed;
    struct io_sim_config sc = {.seed = seed, .keep_permille = (unsigned)(tu_rand(&rng) % 1001)};
    int err;
    struct pc p = {.io = io_create_sim(&sc, &err)};
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 4096 + (tu_rand(&rng) % 3) * 4096;
    cfg.index_interval_bytes = 512;
    cfg.retention_ms = -1;
    io_dir_make(p.io, "/rs", 0755);
    if (pc_open(&p, &cfg) < 0)
        return "first open failed";
    int nold = 6 + (int)(tu_rand(&rng) % 20);
    struct tu_batch old[32], nw[8];
    int acked_new = 0, tried_new = 0;
    for (int i = 0; i < nold; i++)
        if (tu_build_append(p.io, p.log, &old[i], 1 + (uint32_t)(tu_rand(&rng) % 5), 300,
                            seed * 100 + (uint64_t)i, 1, NULL) != 0)
            return "old append failed";
    uint64_t old_start = plog_start_offset(p.log), old_end = plog_end_offset(p.log);
    uint64_t at = tu_rand(&rng) % 2 ? old_end + 1 + tu_rand(&rng) % 1000
                                    : old_start + 1 + tu_rand(&rng) % old_end;
    io_sim_cut_power_at(p.io, io_sim_mutations(p.io) + cut);
    int rc = plog_reset_to(p.log, at, "m", 1);
    bool reset_ok = rc == 0;
    for (int i = 0; reset_ok && i < 4 && !io_sim_powered_off(p.io); i++) {
        tried_new++;
        if (tu_build_append(p.io, p.log, &nw[i], 2, 200, seed * 100 + 50 + (uint64_t)i, 1,
                            NULL) == 0)
            acked_new = i + 1;
    }
    if (!io_sim_powered_off(p.io))
        io_sim_cut_power_now(p.io);
    pc_close(&p);
    io_sim_restart(p.io);
    const char *bad = NULL;
    if (pc_open(&p, &cfg) < 0) {
        bad = "reopen failed";
        goto out;
    }
    static uint8_t buf[1 << 16];
    uint64_t start = plog_start_offset(p.log), end = plog_end_offset(p.log);
    if (plog_damaged_ranges(p.log) != 0) {
        bad = "the restarted log reports damage";
    } else if (start == old_start && end == old_end && !reset_ok) {
        uint64_t off = old_start;
        for (int i = 0; i < nold && !bad; i++) {
            int len = plog_read_copy(p.log, off, 1, UINT64_MAX, buf, sizeof(buf));
            if (len <= 0 || !tu_same_batch(buf, &old[i], off))
                bad = "the old log came back damaged";
            off += old[i].records;
        }
    } else if (start == at) {
        uint64_t off = at;
        int i = 0;
        for (; off < end && i < tried_new; i++) {
            int len = plog_read_copy(p.log, off, 1, UINT64_MAX, buf, sizeof(buf));
            if (len <= 0 || !tu_same_batch(buf, &nw[i], off)) {
                bad = "the new log holds something not appended to it";
                break;
            }
            off += nw[i].records;
        }
        if (!bad && (off != end || i < acked_new))
            bad = "the new log lost an acknowledged append";
        uint64_t moff;
        char m[4];
        if (!bad && (plog_reset_meta(p.log, &moff, m, sizeof(m)) != 1 || moff != at || m[0] != 'm'))
            bad = "the new log's meta is not the reset's";
    } else {
        bad = "neither the old log nor the new one";
    }
    snprintf(why, cap, "%s (start %" PRIu64 " end %" PRIu64 "; old %" PRIu64 "..%" PRIu64
             ", reset to %" PRIu64 " %s, %d new acked)", bad ? bad : "ok", start, end,
             old_start, old_end, at, reset_ok ? "returned" : "did not return", acked_new);
out:
    pc_close(&p);
    io_destroy(p.io);
    for (int i = 0; i < nold; i++)
        free(old[i].data);
    for (int i = 0; i < tried_new; i++)
        free(nw[i].data);
    return bad;
}

Test(plog_reset, power_cuts_leave_the_old_log_or_the_new_one_never_a_mix)
{
    uint64_t seed = tl_seed("plog_reset.power_cuts");
    const char *n_env = getenv("RINGLOG_RESET_CUTS");
    uint64_t n = n_env ? strtoull(n_env, NULL, 0) : 400;
    rl_log_set_level(RL_LOG_OFF);
    uint32_t outcomes[2] = {0, 0};
    for (uint64_t i = 0; i < n; i++) {
        char why[256];
        uint64_t s = seed + i;
        const char *bad = one_cut(s, 1 + i % 40, why, sizeof(why));
        cr_assert_null(bad, "cut %" PRIu64 " (seed %" PRIu64 "): %s; replay: RINGLOG_SEED=%" PRIu64
                       " RINGLOG_RESET_CUTS=%" PRIu64 " build/tests/unit/test_plog_reset_sim",
                       i, s, why, seed, n);
        outcomes[strstr(why, "did not") ? 0 : 1]++;
    }
    rl_log_set_level(RL_LOG_WARN);
    printf("plog_reset power cuts: %" PRIu64 " cuts, %u before the reset returned, %u after\n", n,
           outcomes[0], outcomes[1]);
    cr_assert_gt(outcomes[0], 0, "no cut landed inside a reset");
    cr_assert_gt(outcomes[1], 0, "no cut landed after a reset");
}
#endif

Test(plog_reset, a_reader_holding_a_slice_keeps_its_descriptor_across_the_reset)
{
    /* A fetch may hold a slice of an old segment (its descriptor pinned) when a snapshot
     * install resets the log: the reset must leave that descriptor to the slice's release
     * instead of closing it under the reader (which stopped the broker on an assertion). */
    fill(NB);
    struct plog_slice s;
    bool pinned = false;
    for (int i = 0; i < NB && !pinned; i++) {
        cr_assert_eq(plog_read(g_log, g_base[i], 4096, UINT64_MAX, &s), 0);
        pinned = s.fd >= 0;
        if (!pinned)
            plog_slice_release(g_log, &s);
    }
    cr_assert(pinned, "no batch was read from a file");
    uint64_t at = plog_end_offset(g_log) + 100;
    cr_assert_eq(plog_reset_to(g_log, at, NULL, 0), 0);
    uint8_t buf[8];
    cr_assert_eq(io_file_pread(g_io, s.fd, buf, sizeof(buf), s.file_position), (int)sizeof(buf),
                 "the slice's descriptor still reads");
    plog_slice_release(g_log, &s);
    struct tu_batch nb;
    uint64_t base;
    cr_assert_eq(tu_build_append(g_io, g_log, &nb, 3, 100, 77, 5, &base), 0);
    cr_assert_eq(base, at);
    expect_batches(at, &nb, 1);
    free(nb.data);
}
