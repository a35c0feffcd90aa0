/* offsets: the __consumer_offsets record encoding round-trips, replay keeps the latest commit
 * per key and honours tombstones, and malformed records are rejected; the record format is
 * pinned by bytes the broker of commit c904487 wrote. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/delivery/offsets.h"
#include "common/err.h"

static struct offsets_table *t;

static void setup(void)
{
    t = offsets_table_create(1000);
    cr_assert_not_null(t);
}

static void teardown(void)
{
    offsets_table_destroy(t);
}

TestSuite(offsets, .init = setup, .fini = teardown);

static void replay(const char *group, const char *topic, uint32_t p, int64_t offset,
                   const char *meta)
{
    uint8_t k[OFFSETS_KEY_MAX], v[OFFSETS_VALUE_MAX];
    struct offsets_commit c = {.offset = offset, .commit_ms = 123, .metadata = meta};
    int kl = offsets_encode_key(group, topic, p, k, sizeof(k));
    int vl = offsets_encode_value(&c, v, sizeof(v));
    cr_assert_gt(kl, 0);
    cr_assert_gt(vl, 0);
    cr_assert_eq(offsets_apply_record(t, k, kl, v, vl), 0);
}

/* Replaying commits keeps the latest per (group, topic, partition). */
Test(offsets, replay_keeps_latest_commit)
{
    replay("g", "orders", 0, 10, "a");
    replay("g", "orders", 1, 20, NULL);
    replay("g", "orders", 0, 15, "b");
    replay("h", "orders", 0, 99, NULL);
    struct offsets_commit c;
    cr_assert_eq(offsets_get(t, "g", "orders", 0, &c), 0);
    cr_assert_eq(c.offset, 15);
    cr_assert_str_eq(c.metadata, "b");
    cr_assert_eq(offsets_get(t, "g", "orders", 1, &c), 0);
    cr_assert_eq(c.offset, 20);
    cr_assert_eq(offsets_get(t, "g", "orders", 2, &c), RL_E_NOT_FOUND);
    cr_assert_eq(offsets_count(t), 3);
    const char *groups[4];
    cr_assert_eq(offsets_list_groups(t, groups, 4), 2);
}

/* A record with a null value deletes the key. */
Test(offsets, tombstone_deletes)
{
    replay("g", "orders", 0, 10, NULL);
    uint8_t k[OFFSETS_KEY_MAX];
    int kl = offsets_encode_key("g", "orders", 0, k, sizeof(k));
    cr_assert_eq(offsets_apply_record(t, k, kl, NULL, -1), 0);
    struct offsets_commit c;
    cr_assert_eq(offsets_get(t, "g", "orders", 0, &c), RL_E_NOT_FOUND);
    cr_assert_eq(offsets_count(t), 0);
}

/* Every truncation of a valid key or value is rejected as corrupt, never misread. */
Test(offsets, truncated_records_are_corrupt)
{
    uint8_t k[OFFSETS_KEY_MAX], v[OFFSETS_VALUE_MAX];
    struct offsets_commit c = {.offset = 5, .commit_ms = 1, .metadata = "meta"};
    int kl = offsets_encode_key("group", "topic", 3, k, sizeof(k));
    int vl = offsets_encode_value(&c, v, sizeof(v));
    for (int cut = 0; cut < kl; cut++)
        cr_assert_eq(offsets_apply_record(t, k, cut, v, vl), RL_E_CORRUPT, "key cut %d", cut);
    for (int cut = 0; cut < vl; cut++)
        cr_assert_eq(offsets_apply_record(t, k, kl, v, cut), RL_E_CORRUPT, "value cut %d", cut);
    k[0] = 9;
    cr_assert_eq(offsets_apply_record(t, k, kl, v, vl), RL_E_CORRUPT);
    cr_assert_eq(offsets_count(t), 0);
}

/* Bad commits are refused before they reach the log; the table is bounded. */
Test(offsets, limits_and_bad_input)
{
    uint8_t k[OFFSETS_KEY_MAX], v[OFFSETS_VALUE_MAX];
    char long_name[OFFSETS_NAME_MAX + 2];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    cr_assert_eq(offsets_encode_key(long_name, "t", 0, k, sizeof(k)), RL_E_INVALID_ARGUMENT);
    cr_assert_eq(offsets_encode_key("", "t", 0, k, sizeof(k)), RL_E_INVALID_ARGUMENT);
    struct offsets_commit neg = {.offset = -1};
    cr_assert_eq(offsets_encode_value(&neg, v, sizeof(v)), RL_E_INVALID_ARGUMENT);
    struct offsets_table *small = offsets_table_create(2);
    struct offsets_commit c = {.offset = 1};
    cr_assert_eq(offsets_put(small, "g", "t", 0, &c), 0);
    cr_assert_eq(offsets_put(small, "g", "t", 1, &c), 0);
    cr_assert_eq(offsets_put(small, "g", "t", 2, &c), RL_E_LIMIT);
    cr_assert_eq(offsets_put(small, "g", "t", 1, &c), 0, "updating a known key never hits the limit");
    cr_assert_eq(offsets_delete_group(small, "g"), 2);
    offsets_table_destroy(small);
}

/* Groups spread over the partitions of __consumer_offsets, deterministically. */
Test(offsets, partition_for_group_is_stable_and_spread)
{
    uint32_t hits[8] = {0};
    char id[32];
    for (int i = 0; i < 800; i++) {
        snprintf(id, sizeof(id), "group-%d", i);
        uint32_t p = offsets_partition_for(id, 8);
        cr_assert_lt(p, 8);
        cr_assert_eq(p, offsets_partition_for(id, 8));
        hits[p]++;
    }
    for (int p = 0; p < 8; p++)
        cr_assert_gt(hits[p], 50, "partition %d got only %u groups", p, hits[p]);
}

/* (group "g1", topic "plain", partition 1) -> (offset 30, commit_ms 1700000000123, "meta"), as
 * encoded by the broker of commit c904487. These bytes are in every __consumer_offsets log;
 * they must keep decoding, and the encoder must keep producing them. */
static const uint8_t golden_key[] = {
    0x01, 0x02, 0x00, 0x67, 0x31, 0x05, 0x00, 0x70, 0x6c, 0x61, 0x69, 0x6e,
    0x01, 0x00, 0x00, 0x00,
};
static const uint8_t golden_value[] = {
    0x01, 0x1e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x68, 0xe5,
    0xcf, 0x8b, 0x01, 0x00, 0x00, 0x04, 0x00, 0x6d, 0x65, 0x74, 0x61,
};

Test(offsets, golden_record)
{
    cr_assert_eq(offsets_apply_record(t, golden_key, sizeof(golden_key), golden_value,
                                      sizeof(golden_value)), 0);
    struct offsets_commit oc;
    cr_assert_eq(offsets_get(t, "g1", "plain", 1, &oc), 0);
    cr_assert_eq(oc.offset, 30);
    cr_assert_eq(oc.commit_ms, 1700000000123LL);
    cr_assert_str_eq(oc.metadata, "meta");
    uint8_t k[OFFSETS_KEY_MAX], v[OFFSETS_VALUE_MAX];
    int kl = offsets_encode_key("g1", "plain", 1, k, sizeof(k));
    struct offsets_commit c = {.offset = 30, .commit_ms = 1700000000123LL, .metadata = "meta"};
    int vl = offsets_encode_value(&c, v, sizeof(v));
    cr_assert_eq(kl, (int)sizeof(golden_key));
    cr_assert_eq(vl, (int)sizeof(golden_value));
    cr_assert_eq(memcmp(k, golden_key, sizeof(golden_key)), 0);
    cr_assert_eq(memcmp(v, golden_value, sizeof(golden_value)), 0);
}

/* The snapshot image of committed offsets (offsets.h, "snapshots"), pinned: group "g1" committed
 * offset 42 of t-3 at 1000 ms with metadata "m", as of log offset 100. Hand-assembled from the
 * documented layout: header, then key and value in their record encodings. */
static const uint8_t golden_offsets_snapshot[] = {
    0x52, 0x4c, 0x4f, 0x53, 0x01, 0x00, 0x00, 0x00,             /* "RLOS", version 1 */
    0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             /* next offset 100 */
    0x01, 0x00, 0x00, 0x00,                                     /* one entry */
    0x0c, 0x00, 0x01, 0x02, 0x00, 'g', '1', 0x01, 0x00, 't',    /* key: 12 bytes */
    0x03, 0x00, 0x00, 0x00,
    0x14, 0x00, 0x01, 0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* value: 20 bytes */
    0x00, 0xe8, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 'm',
};

/* The encoder reproduces the pinned image; applying it restores the commit; a snapshot keeps
 * only the groups asked for; damaged images are refused. */
static bool keep_g1(void *arg, const char *group)
{
    (void)arg;
    return strcmp(group, "g1") == 0;
}

Test(offsets, golden_snapshot)
{
    struct offsets_commit c = {.offset = 42, .commit_ms = 1000, .metadata = "m"};
    cr_assert_eq(offsets_put(t, "g1", "t", 3, &c), 0);
    struct offsets_commit other = {.offset = 7, .commit_ms = 1, .metadata = ""};
    cr_assert_eq(offsets_put(t, "g2", "t", 0, &other), 0);
    uint8_t *img;
    size_t len;
    cr_assert_eq(offsets_snapshot_encode(t, keep_g1, NULL, 100, 1 << 20, &img, &len), 0);
    cr_assert_eq(len, sizeof(golden_offsets_snapshot));
    cr_assert_eq(memcmp(img, golden_offsets_snapshot, len), 0);
    free(img);
    struct offsets_table *u = offsets_table_create(16);
    int64_t next;
    uint32_t count;
    cr_assert_eq(offsets_snapshot_header(golden_offsets_snapshot, sizeof(golden_offsets_snapshot),
                                         &next, &count), 0);
    cr_assert_eq(next, 100);
    cr_assert_eq(count, 1);
    cr_assert_eq(offsets_snapshot_apply(u, golden_offsets_snapshot,
                                        sizeof(golden_offsets_snapshot)), 0);
    struct offsets_commit got;
    cr_assert_eq(offsets_get(u, "g1", "t", 3, &got), 0);
    cr_assert_eq(got.offset, 42);
    cr_assert_eq(got.commit_ms, 1000);
    cr_assert_str_eq(got.metadata, "m");
    cr_assert_eq(offsets_count(u), 1);
    cr_assert_eq(offsets_snapshot_apply(u, golden_offsets_snapshot,
                                        sizeof(golden_offsets_snapshot) - 1), RL_E_CORRUPT);
    cr_assert_eq(offsets_snapshot_encode(t, NULL, NULL, 100, 30, &img, &len), RL_E_LIMIT);
    offsets_table_destroy(u);
}
