/* pstate: duplicate, gap, fencing and expiry decisions of the idempotent-producer table, and
 * its snapshot round trip and corruption checks; the snapshot format is pinned by bytes the
 * broker of commit c904487 wrote. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "broker/delivery/pstate.h"
#include "common/err.h"

static struct pstate *ps;

static void setup(void)
{
    ps = pstate_create(64);
    cr_assert_not_null(ps);
}

static void teardown(void)
{
    pstate_destroy(ps);
}

TestSuite(pstate, .init = setup, .fini = teardown);

/* Appends a batch the way the produce path does: check, then record. */
static int append(int64_t pid, int16_t epoch, int32_t seq, uint32_t n, int64_t offset)
{
    int rc = pstate_check(ps, pid, epoch, seq, n, NULL);
    if (rc == 0)
        cr_assert_eq(pstate_record(ps, pid, epoch, seq, n, offset, 1000), 0);
    return rc;
}

/* A new producer must start at sequence 0; later batches must follow on exactly. */
Test(pstate, in_order_batches_are_accepted_and_gaps_rejected)
{
    cr_assert_eq(append(7, 0, 5, 1, 0), RL_E_UNKNOWN_PRODUCER_ID);
    cr_assert_eq(append(7, 0, 0, 10, 0), 0);
    cr_assert_eq(append(7, 0, 10, 5, 10), 0);
    struct pstate_verdict v;
    cr_assert_eq(pstate_check(ps, 7, 0, 16, 1, &v), RL_E_OUT_OF_ORDER_SEQUENCE);
    cr_assert_eq(v.expected_sequence, 15);
}

/* A retry of any of the last five batches is a duplicate answered with its original offsets;
 * a retry older than that is out of order. */
Test(pstate, duplicates_of_last_five_batches_report_original_offsets)
{
    for (int i = 0; i < 8; i++)
        cr_assert_eq(append(1, 0, i * 2, 2, 100 + i * 2), 0);
    struct pstate_verdict v;
    for (int i = 3; i < 8; i++) {
        cr_assert_eq(pstate_check(ps, 1, 0, i * 2, 2, &v), RL_E_DUPLICATE_SEQUENCE, "batch %d", i);
        cr_assert_eq(v.dup_base_offset, 100 + i * 2);
        cr_assert_eq(v.dup_last_offset, 101 + i * 2);
    }
    cr_assert_eq(pstate_check(ps, 1, 0, 4, 2, &v), RL_E_OUT_OF_ORDER_SEQUENCE);
}

/* An older epoch is fenced; a newer epoch resets the sequence to 0. */
Test(pstate, epochs_fence_older_producers)
{
    cr_assert_eq(append(3, 1, 0, 1, 0), 0);
    cr_assert_eq(append(3, 2, 1, 1, 1), RL_E_OUT_OF_ORDER_SEQUENCE);
    cr_assert_eq(append(3, 2, 0, 1, 1), 0);
    struct pstate_verdict v;
    cr_assert_eq(pstate_check(ps, 3, 1, 1, 1, &v), RL_E_PRODUCER_FENCED);
    cr_assert_eq(v.current_epoch, 2);
}

/* Sequences wrap from INT32_MAX to 0. */
Test(pstate, sequence_wraps_at_int32_max)
{
    cr_assert_eq(pstate_record(ps, 9, 0, INT32_MAX - 1, 2, 50, 0), 0);
    cr_assert_eq(pstate_check(ps, 9, 0, 0, 1, NULL), 0);
    cr_assert_eq(pstate_check(ps, 9, 0, INT32_MAX - 1, 2, NULL), RL_E_DUPLICATE_SEQUENCE);
}

/* Idle producers are forgotten; the table stays consistent under heavy removal (backward shift). */
Test(pstate, expiry_forgets_idle_producers_only)
{
    for (int64_t pid = 0; pid < 64; pid++)
        cr_assert_eq(pstate_record(ps, pid, 0, 0, 1, pid, pid % 2 ? 5000 : 100), 0);
    cr_assert_eq(pstate_check(ps, 1000, 0, 0, 1, NULL), RL_E_LIMIT);
    cr_assert_eq(pstate_expire(ps, 6000, 2000), 32);
    cr_assert_eq(pstate_count(ps), 32);
    for (int64_t pid = 0; pid < 64; pid++) {
        int rc = pstate_check(ps, pid, 0, 0, 1, NULL);
        cr_assert_eq(rc, pid % 2 ? RL_E_DUPLICATE_SEQUENCE : 0, "pid %lld", (long long)pid);
    }
}

/* Truncation forgets batches at or after the cut, and producers left with none. */
Test(pstate, truncate_drops_batches_beyond_the_cut)
{
    cr_assert_eq(append(1, 0, 0, 1, 10), 0);
    cr_assert_eq(append(1, 0, 1, 1, 20), 0);
    cr_assert_eq(append(2, 0, 0, 1, 30), 0);
    pstate_truncate(ps, 20);
    cr_assert_eq(pstate_count(ps), 1);
    cr_assert_eq(pstate_check(ps, 1, 0, 1, 1, NULL), 0);
    cr_assert_eq(pstate_check(ps, 2, 0, 0, 1, NULL), 0);
}

/* A snapshot restores the same decisions; any flipped byte is detected. */
Test(pstate, snapshot_round_trip_and_corruption)
{
    unsigned seed = (unsigned)time(NULL);
    printf("pstate snapshot seed %u\n", seed);
    srand(seed);
    for (int64_t pid = 0; pid < 40; pid++)
        for (int b = 0; b < 1 + rand() % 7; b++)
            cr_assert_eq(pstate_record(ps, pid, (int16_t)(pid % 3), b * 3, 3, pid * 100 + b, 7), 0);
    size_t cap = pstate_snapshot_size(ps);
    uint8_t *buf = malloc(cap);
    int len = pstate_snapshot_encode(ps, 4242, buf, cap);
    cr_assert_gt(len, 0);
    struct pstate *copy = pstate_create(64);
    int64_t next = 0;
    cr_assert_eq(pstate_snapshot_decode(copy, buf, (size_t)len, &next, NULL), 0);
    cr_assert_eq(next, 4242);
    cr_assert_eq(pstate_count(copy), 40);
    for (int64_t pid = 0; pid < 40; pid++) {
        struct pstate_verdict a, b;
        int ra = pstate_check(ps, pid, (int16_t)(pid % 3), 0, 3, &a);
        int rb = pstate_check(copy, pid, (int16_t)(pid % 3), 0, 3, &b);
        cr_assert_eq(ra, rb);
        cr_assert_eq(a.dup_base_offset, b.dup_base_offset);
        cr_assert_eq(a.expected_sequence, b.expected_sequence);
    }
    for (int i = 0; i < 200; i++) {
        size_t at = (size_t)rand() % (size_t)len;
        buf[at] ^= (uint8_t)(1 + rand() % 255);
        cr_assert_eq(pstate_snapshot_decode(copy, buf, (size_t)len, &next, NULL), RL_E_CORRUPT,
                     "flip at %zu undetected (seed %u)", at, seed);
        cr_assert_eq(pstate_count(copy), 0);
        buf[at] = 0;
        len = pstate_snapshot_encode(ps, 4242, buf, cap);
    }
    cr_assert_eq(pstate_snapshot_decode(copy, buf, 10, &next, NULL), RL_E_CORRUPT);
    pstate_destroy(copy);
    free(buf);
}

/* Producer 3 (epoch 0: sequences 0-85 at offsets 0-85, 86-164 at 86-164) and producer 7 (epoch
 * 2: sequences 10-14 at 165-169), next offset 170, as encoded by the broker of commit c904487
 * (the producer.snapshot payload). */
static const uint8_t golden_snapshot[] = {
    0x52, 0x4c, 0x50, 0x53, 0x01, 0x00, 0x00, 0x00, 0xaa, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x02, 0x68, 0xe5, 0xcf, 0x8b,
    0x01, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0xa5,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa9, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x02, 0x01, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x55, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x55, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x56, 0x00,
    0x00, 0x00, 0xa4, 0x00, 0x00, 0x00, 0x56, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0xa4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x32, 0xba,
    0x45, 0x3b, 0x7f, 0xd0, 0xc7, 0xf8,
};

/* The payload of tests/fixtures/datadir-v1.tar.gz's idem-0/producer.snapshot: producer 3,
 * epoch 0, five batches up to sequence 399, next offset 400. */
static const uint8_t golden_fixture_snapshot[] = {
    0x52, 0x4c, 0x50, 0x53, 0x01, 0x00, 0x00, 0x00, 0x90, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x37, 0xfb, 0x60, 0x35, 0xa2,
    0x01, 0x00, 0x00, 0x56, 0x00, 0x00, 0x00, 0xa4, 0x00, 0x00, 0x00, 0x56,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa4, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xa5, 0x00, 0x00, 0x00, 0xf2, 0x00, 0x00, 0x00, 0xa5,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf2, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xf3, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00, 0xf3,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x41, 0x01, 0x00, 0x00, 0x8e, 0x01, 0x00, 0x00, 0x41,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8e, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x8f, 0x01, 0x00, 0x00, 0x8f, 0x01, 0x00, 0x00, 0x8f,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8f, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x7c, 0x69, 0x93, 0xb6, 0xbf, 0xd1, 0x0f, 0x49,
};

/* The same two tables in version 2 (the current encoder's output): the same bytes with version
 * 2 and their checksum. Version 2 promises every batch ends below next_offset. */
static const uint8_t golden_snapshot_v2[] = {
    0x52, 0x4c, 0x50, 0x53, 0x02, 0x00, 0x00, 0x00, 0xaa, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x02, 0x68, 0xe5, 0xcf, 0x8b,
    0x01, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, 0xa5,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa9, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x02, 0x01, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x55, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x55, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x56, 0x00,
    0x00, 0x00, 0xa4, 0x00, 0x00, 0x00, 0x56, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0xa4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x69, 0x38,
    0xea, 0x79, 0xb9, 0xbc, 0x08, 0x00,
};

static const uint8_t golden_fixture_snapshot_v2[] = {
    0x52, 0x4c, 0x50, 0x53, 0x02, 0x00, 0x00, 0x00, 0x90, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x37, 0xfb, 0x60, 0x35, 0xa2,
    0x01, 0x00, 0x00, 0x56, 0x00, 0x00, 0x00, 0xa4, 0x00, 0x00, 0x00, 0x56,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa4, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xa5, 0x00, 0x00, 0x00, 0xf2, 0x00, 0x00, 0x00, 0xa5,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf2, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0xf3, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00, 0xf3,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x41, 0x01, 0x00, 0x00, 0x8e, 0x01, 0x00, 0x00, 0x41,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8e, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x8f, 0x01, 0x00, 0x00, 0x8f, 0x01, 0x00, 0x00, 0x8f,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8f, 0x01, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x44, 0x07, 0x0d, 0xd9, 0xe7, 0xc4, 0xae, 0x82,
};

/* The golden pairs: a version 1 image an older broker wrote, its version 2 twin (what the
 * encoder writes now for the same table), and what the table must then decide: a duplicate
 * (with the offset of its original) and an accepted next batch. */
struct golden_case {
    const char *what;
    const uint8_t *v1, *v2;
    size_t v1_len, v2_len;
    int64_t next_offset;
    uint32_t producers;
    int64_t dup_pid;
    int16_t dup_epoch;
    int32_t dup_seq, dup_count;
    int64_t dup_base, dup_last;
    int64_t ok_pid;
    int16_t ok_epoch;
    int32_t ok_seq;
};

static const struct golden_case golden_cases[] = {
    {"two producers (commit c904487)", golden_snapshot, golden_snapshot_v2,
     sizeof(golden_snapshot), sizeof(golden_snapshot_v2), 170, 2, 3, 0, 86, 79, 86, 164, 7, 2,
     15},
    {"datadir-v1 fixture", golden_fixture_snapshot, golden_fixture_snapshot_v2,
     sizeof(golden_fixture_snapshot), sizeof(golden_fixture_snapshot_v2), 400, 1, 3, 0, 399, 1,
     399, 399, 3, 0, 400},
};

/* The table after decoding one golden image decides as the case says. */
static void golden_decisions(const struct golden_case *g, const char *which)
{
    struct pstate_verdict v;
    cr_assert_eq(pstate_count(ps), g->producers, "%s, %s", g->what, which);
    cr_assert_eq(pstate_check(ps, g->dup_pid, g->dup_epoch, g->dup_seq, g->dup_count, &v),
                 RL_E_DUPLICATE_SEQUENCE, "%s, %s", g->what, which);
    cr_assert_eq(v.dup_base_offset, g->dup_base, "%s, %s", g->what, which);
    cr_assert_eq(v.dup_last_offset, g->dup_last, "%s, %s", g->what, which);
    cr_assert_eq(pstate_check(ps, g->ok_pid, g->ok_epoch, g->ok_seq, 1, &v), 0, "%s, %s",
                 g->what, which);
}

/* Version 1 images (older brokers) still decode, reported as version 1 so a load knows not to
 * trust them; encoding their tables gives the version 2 images; and those decode as
 * version 2 into the same decisions. */
Test(pstate, golden_snapshot)
{
    for (size_t i = 0; i < sizeof(golden_cases) / sizeof(golden_cases[0]); i++) {
        const struct golden_case *g = &golden_cases[i];
        int64_t next = 0;
        uint32_t version = 0;
        cr_assert_eq(pstate_snapshot_decode(ps, g->v1, g->v1_len, &next, &version), 0, "%s",
                     g->what);
        cr_assert_eq(next, g->next_offset, "%s", g->what);
        cr_assert_eq(version, PSTATE_SNAPSHOT_V1, "%s", g->what);
        golden_decisions(g, "version 1");
        uint8_t buf[4096];
        int n = pstate_snapshot_encode(ps, g->next_offset, buf, sizeof(buf));
        cr_assert_eq(n, (int)g->v2_len, "%s: encoded %d bytes", g->what, n);
        cr_assert_eq(memcmp(buf, g->v2, g->v2_len), 0, "%s: not the version 2 image", g->what);
        cr_assert_eq(pstate_snapshot_decode(ps, g->v2, g->v2_len, &next, &version), 0, "%s",
                     g->what);
        cr_assert_eq(version, 2, "%s", g->what);
        cr_assert_eq(next, g->next_offset, "%s", g->what);
        golden_decisions(g, "version 2");
    }
}

/* A snapshot holds only batches that end below its next offset (what is durable in the log):
 * later batches are left out, a producer with only later batches is left out altogether, and
 * a version 2 image claiming a batch at or past its next offset is refused as corrupt. */
Test(pstate, snapshot_describes_only_below_next_offset)
{
    cr_assert_eq(append(1, 0, 0, 5, 0), 0);   /* offsets 0-4 */
    cr_assert_eq(append(2, 0, 0, 5, 5), 0);   /* 5-9 */
    cr_assert_eq(append(1, 0, 5, 5, 10), 0);  /* 10-14: not durable yet */
    cr_assert_eq(append(3, 0, 0, 5, 15), 0);  /* 15-19: not durable yet */
    uint8_t buf[4096];
    int n = pstate_snapshot_encode(ps, 10, buf, sizeof(buf));
    cr_assert_gt(n, 0);
    struct pstate *copy = pstate_create(64);
    int64_t next = 0;
    uint32_t version = 0;
    cr_assert_eq(pstate_snapshot_decode(copy, buf, (size_t)n, &next, &version), 0);
    cr_assert_eq(next, 10);
    cr_assert_eq(version, 2);
    cr_assert_eq(pstate_count(copy), 2, "producer 3 has nothing below 10");
    struct pstate_verdict v;
    /* Producer 1's retry of the batch at 10 is new again (it may not be in the log). */
    cr_assert_eq(pstate_check(copy, 1, 0, 5, 5, &v), 0);
    cr_assert_eq(pstate_check(copy, 1, 0, 0, 5, &v), RL_E_DUPLICATE_SEQUENCE);
    cr_assert_eq(pstate_check(copy, 3, 0, 0, 5, &v), 0);
    /* An image claiming more than its next offset is refused: encode with next 20, then
     * lower the next offset and fix the checksum. */
    n = pstate_snapshot_encode(ps, 20, buf, sizeof(buf));
    buf[8] = 12;
    uint64_t sum = XXH3_64bits(buf, (size_t)n - 8);
    for (int i = 0; i < 8; i++)
        buf[n - 8 + i] = (uint8_t)(sum >> (8 * i));
    cr_assert_eq(pstate_snapshot_decode(copy, buf, (size_t)n, &next, NULL), RL_E_CORRUPT);
    cr_assert_eq(pstate_count(copy), 0);
    pstate_destroy(copy);
}
