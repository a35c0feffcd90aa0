/*
 * test_hstore: the shared hard-state store (replication/hstore.h) on real files and io_uring
 * (test_hstore_sim: the same on the I/O layer's simulated back-end):
 * an election storm of 2,000 groups becomes durable with one flush; the latest term and vote of
 * every group survive a reopen; a torn or damaged tail is cut and the store goes on; the file
 * is rewritten before it grows without bound; a file of another kind is refused.
 */
#include <criterion/criterion.h>

#include "replication/hstore.h"
#include "storage_testutil.h"

static struct io *g_io;
static char g_dir[256];
static struct hstore *g_hs;

static void setup(void)
{
    g_io = tu_io_new(64);
    tu_mkdtemp(g_io, g_dir, sizeof(g_dir), "hstore");
    cr_assert_eq(hstore_open(g_io, g_dir, &g_hs), 0);
}

static void teardown(void)
{
    hstore_close(g_hs);
    tu_rm_rf(g_io, g_dir);
    io_destroy(g_io);
}

TestSuite(hstore, .init = setup, .fini = teardown);

/* Flushes and runs the ring until everything put so far is durable (bounded). */
static void flush_wait(uint64_t seq)
{
    uint64_t deadline = io_now_ns(g_io) + TU_DEADLINE_NS;
    while (hstore_durable_seq(g_hs) < seq && io_now_ns(g_io) < deadline) {
        cr_assert_geq(hstore_flush(g_hs), 0);
        io_run(g_io, 10 * 1000000ull);
    }
    cr_assert_geq(hstore_durable_seq(g_hs), seq);
}

static void reopen(void)
{
    hstore_close(g_hs);
    cr_assert_eq(hstore_open(g_io, g_dir, &g_hs), 0);
}

Test(hstore, election_storm_costs_one_flush)
{
    /* 2,000 groups change term and vote (twice each, as a candidate and then a voter would)
     * within one loop turn: one write and one fdatasync make all of them durable, and a
     * reopened store has the latest of each. */
    int64_t seq = 0;
    for (uint64_t g = 1; g <= 2000; g++) {
        struct raft_hard_state st = {.term = 5, .vote = 1};
        cr_assert_gt(hstore_put(g_hs, g, &st), 0);
        st.term = 6;
        st.vote = (uint32_t)(g % 3 + 1);
        seq = hstore_put(g_hs, g, &st);
    }
    cr_assert_eq(hstore_flush(g_hs), 1);
    cr_assert_eq(hstore_flush(g_hs), 0, "one flush in flight at a time");
    cr_assert_lt(hstore_durable_seq(g_hs), (uint64_t)seq, "not durable before it completes");
    flush_wait((uint64_t)seq);
    cr_assert_eq(hstore_flushes(g_hs), 1);
    cr_assert_eq(hstore_file_records(g_hs), 1 + 2000, "one record per group");
    reopen();
    for (uint64_t g = 1; g <= 2000; g++) {
        struct raft_hard_state st = hstore_get(g_hs, g);
        cr_assert_eq(st.term, 6);
        cr_assert_eq(st.vote, g % 3 + 1);
    }
    cr_assert_eq(hstore_get(g_hs, 99999).term, 0, "an unknown group has no hard state");
}

Test(hstore, puts_during_a_flush_go_out_with_the_next)
{
    struct raft_hard_state a = {.term = 1, .vote = 2}, b = {.term = 2, .vote = 3};
    int64_t s1 = hstore_put(g_hs, 7, &a);
    cr_assert_eq(hstore_flush(g_hs), 1);
    int64_t s2 = hstore_put(g_hs, 7, &b);
    flush_wait((uint64_t)s1);
    cr_assert_lt(hstore_durable_seq(g_hs), (uint64_t)s2);
    flush_wait((uint64_t)s2);
    reopen();
    cr_assert_eq(hstore_get(g_hs, 7).term, 2);
    cr_assert_eq(hstore_get(g_hs, 7).vote, 3);
}

Test(hstore, torn_tail_is_cut_and_the_store_goes_on)
{
    struct raft_hard_state st = {.term = 3, .vote = 1};
    flush_wait((uint64_t)hstore_put(g_hs, 1, &st));
    st.term = 4;
    flush_wait((uint64_t)hstore_put(g_hs, 2, &st));
    hstore_close(g_hs);
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", g_dir, HSTORE_FILE);
    uint8_t junk[20] = {9, 9, 9}; /* part of a record that never finished */
    cr_assert_eq(tu_write_at(g_io, path, junk, sizeof(junk),
                             (uint64_t)tu_file_size(g_io, path), false), 0);
    cr_assert_eq(hstore_open(g_io, g_dir, &g_hs), 0);
    cr_assert_eq(hstore_get(g_hs, 1).term, 3);
    cr_assert_eq(hstore_get(g_hs, 2).term, 4);
    cr_assert_eq(tu_file_size(g_io, path), 3 * HSTORE_RECORD_BYTES, "the torn part is cut off");
    st.term = 9;
    flush_wait((uint64_t)hstore_put(g_hs, 1, &st));
    reopen();
    cr_assert_eq(hstore_get(g_hs, 1).term, 9, "records after the cut are read again");
}

Test(hstore, file_is_rewritten_before_it_grows_without_bound)
{
    /* 40 groups changing term 300 times each: the file is rewritten with one record per
     * group whenever it holds many times more, so it stays small, and nothing is lost. */
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", g_dir, HSTORE_FILE);
    for (uint64_t round = 1; round <= 300; round++) {
        int64_t seq = 0;
        for (uint64_t g = 0; g < 40; g++) {
            struct raft_hard_state st = {.term = round, .vote = (uint32_t)g};
            seq = hstore_put(g_hs, g, &st);
        }
        flush_wait((uint64_t)seq);
        cr_assert_leq(hstore_file_records(g_hs), 4096 + 41);
    }
    cr_assert_leq(tu_file_size(g_io, path), (4096 + 41) * HSTORE_RECORD_BYTES);
    reopen();
    for (uint64_t g = 0; g < 40; g++)
        cr_assert_eq(hstore_get(g_hs, g).term, 300);
}

Test(hstore, refuses_a_file_of_another_kind)
{
    hstore_close(g_hs);
    g_hs = NULL;
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", g_dir, HSTORE_FILE);
    uint8_t x[64];
    memset(x, 'x', sizeof(x));
    cr_assert_eq(tu_write_at(g_io, path, x, sizeof(x), 0, true), 0);
    struct hstore *hs = NULL;
    cr_assert_eq(hstore_open(g_io, g_dir, &hs), RL_E_CORRUPT);
    cr_assert_eq(hstore_open(g_io, g_dir, &g_hs), RL_E_CORRUPT, "and leaves it as it was");
    cr_assert_eq(tu_file_size(g_io, path), 64);
}
