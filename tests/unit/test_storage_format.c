/* storage formats: golden byte vectors. Each on-disk format of storage (a segment's batches,
 * .index and .timeindex entries, checkpoint files: log-start, .damaged ranges, the storage-wide
 * clean-shutdown record, the first version's clean-shutdown marker) is decoded from fixed bytes
 * committed here, not only round-tripped through its own encoder, so a change of byte order or
 * layout fails a test. Runs on the simulated back-end (the bytes are laid down as files). */
#include <criterion/criterion.h>

#define TU_SIM 1
#include "storage/checkpoint.h"
#include "storage/segment.h"
#include "storage_testutil.h"

/* One batch: base offset 7, leader epoch 3, one record (key "k", value "golden", timestamp
 * 1,700,000,000,000), no producer id, no compression. */
static const uint8_t g_batch[79] = {
    0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4f, 0x00, 0x00, 0x00,
    0x03, 0x00, 0x00, 0x00, 0x17, 0x18, 0x69, 0x29, 0x69, 0xc9, 0x52, 0x80,
    0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x68, 0xe5, 0xcf, 0x8b, 0x01, 0x00, 0x00, 0x00, 0x68, 0xe5, 0xcf, 0x8b,
    0x01, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0x1a, 0x00, 0x00, 0x00, 0x02, 0x6b, 0x0c,
    0x67, 0x6f, 0x6c, 0x64, 0x65, 0x6e, 0x00,
};
static const uint8_t g_checkpoint_abc[23] = {
    0x52, 0x4c, 0x43, 0x50, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00,
    0x61, 0x62, 0x63, 0x9d, 0x7a, 0x49, 0x6b, 0x15, 0x09, 0x50, 0x0f,
};
static const uint8_t g_clean_record[72] = {
    0x52, 0x4c, 0x43, 0x50, 0x01, 0x00, 0x00, 0x00, 0x34, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x12, 0xe2, 0x17, 0xc8, 0xe8, 0x65, 0x0a, 0x4f,
    0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x4f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x37, 0xb7, 0x3e, 0xa7, 0x51, 0x01, 0x90, 0x84,
};
static const uint8_t g_damaged[56] = {
    0x52, 0x4c, 0x43, 0x50, 0x01, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xa0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x8c, 0x1e, 0xd4, 0xe6, 0x9a, 0x53, 0x07, 0x5a,
};
static const uint8_t g_log_start_7[28] = {
    0x52, 0x4c, 0x43, 0x50, 0x01, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
    0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xae, 0xe4, 0x2b, 0x3d,
    0xd1, 0xc4, 0xe9, 0x2a,
};
static const uint8_t g_legacy_marker[36] = {
    0x52, 0x4c, 0x43, 0x50, 0x01, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
    0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x8d, 0x03, 0xf0, 0x7d, 0x8a, 0xb8, 0x31, 0xdb,
};

/* Offset-index entries {u32 rel, u32 pos} and a time-index entry {i64 ts, u32 rel}. */
static const uint8_t g_index[16] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                    0x05, 0x00, 0x00, 0x00, 0x34, 0x12, 0x00, 0x00};
static const uint8_t g_timeindex[12] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
                                        0x05, 0x00, 0x00, 0x00};

static struct io *g_io;

static void setup(void)
{
    g_io = tu_io_new(0);
    cr_assert_eq(io_dir_make(g_io, "/g", 0755), 0);
}

static void teardown(void)
{
    io_destroy(g_io);
}

TestSuite(formats, .init = setup, .fini = teardown);

static void put(const char *path, const uint8_t *p, size_t n)
{
    cr_assert_eq(tu_write_at(g_io, path, p, n, 0, true), 0, "%s", path);
}

Test(formats, batch_header_fields)
{
    struct batch_header h;
    cr_assert_eq(batch_validate(g_batch, sizeof(g_batch), &h), 0);
    cr_assert_eq(h.base_offset, 7);
    cr_assert_eq(h.batch_len, sizeof(g_batch));
    cr_assert_eq(h.leader_epoch, 3);
    cr_assert_eq(h.record_count, 1);
    cr_assert_eq(h.last_offset_delta, 0);
    cr_assert_eq(h.max_timestamp, 1700000000000ll);
    cr_assert_eq(h.producer_id, -1);
}

Test(formats, index_entries)
{
    struct seg_oentry o;
    segment_oentry_decode(g_index + 8, &o);
    cr_assert_eq(o.rel, 5);
    cr_assert_eq(o.pos, 0x1234);
    uint8_t back[8];
    segment_oentry_encode(&o, back);
    cr_assert_eq(memcmp(back, g_index + 8, 8), 0);
    struct seg_tentry t;
    segment_tentry_decode(g_timeindex, &t);
    cr_assert_eq(t.ts, 0x0102030405060708ll);
    cr_assert_eq(t.rel, 5);
    uint8_t tback[12];
    segment_tentry_encode(&t, tback);
    cr_assert_eq(memcmp(tback, g_timeindex, 12), 0);
    /* As files: a segment of 0x2000 bytes with these entries loads them. */
    struct segment *seg = segment_new("/g", 0);
    put("/g/00000000000000000000.index", g_index, sizeof(g_index));
    put("/g/00000000000000000000.timeindex", g_timeindex, sizeof(g_timeindex));
    cr_assert_eq(segment_index_load(g_io, seg, 0x2000), 0);
    cr_assert_eq(seg->n_oidx, 2);
    cr_assert_eq(seg->oidx[1].rel, 5);
    cr_assert_eq(seg->oidx[1].pos, 0x1234);
    cr_assert_eq(seg->n_tidx, 1);
    cr_assert_eq(seg->tidx[0].ts, 0x0102030405060708ll);
    segment_free(seg);
}

Test(formats, checkpoint_file)
{
    const uint8_t *payload;
    cr_assert_eq(checkpoint_decode(g_checkpoint_abc, sizeof(g_checkpoint_abc), &payload), 3);
    cr_assert_eq(memcmp(payload, "abc", 3), 0);
    uint8_t img[64];
    cr_assert_eq(checkpoint_encode("abc", 3, img), sizeof(g_checkpoint_abc));
    cr_assert_eq(memcmp(img, g_checkpoint_abc, sizeof(g_checkpoint_abc)), 0);
    put("/g/cp", g_checkpoint_abc, sizeof(g_checkpoint_abc));
    char buf[8];
    cr_assert_eq(checkpoint_load(g_io, "/g", "cp", buf, sizeof(buf)), 3);
    uint8_t bad[sizeof(g_checkpoint_abc)];
    memcpy(bad, g_checkpoint_abc, sizeof(bad));
    bad[13] ^= 1;
    cr_assert_eq(checkpoint_decode(bad, sizeof(bad), &payload), RL_E_CORRUPT);
}

Test(formats, damaged_ranges_file)
{
    struct segment *seg = segment_new("/g", 0);
    put("/g/00000000000000000000.damaged", g_damaged, sizeof(g_damaged));
    cr_assert_eq(segment_holes_load(g_io, seg, 200), 0);
    cr_assert_eq(seg->n_holes, 1);
    cr_assert_eq(seg->holes[0].pos, 100);
    cr_assert_eq(seg->holes[0].end_pos, 160);
    cr_assert_eq(seg->holes[0].offset, 12);
    cr_assert_eq(seg->holes[0].end_offset, 15);
    cr_assert_lt(segment_holes_load(g_io, seg, 150), 0, "a range past the file was trusted");
    segment_free(seg);
}

/* A log directory laid down from fixed bytes: segment 7 holding the golden batch, the
 * log-start checkpoint (7) and the storage's clean-shutdown record naming "/g/log". The log
 * opens clean, at the recorded end, and serves the batch byte for byte. */
Test(formats, log_directory_and_clean_record)
{
    cr_assert_eq(io_dir_make(g_io, "/g/log", 0755), 0);
    put("/g/log/00000000000000000007.log", g_batch, sizeof(g_batch));
    put("/g/log/log-start", g_log_start_7, sizeof(g_log_start_7));
    put("/g/storage-clean", g_clean_record, sizeof(g_clean_record));
    struct storage_options opt = {.max_open_files = 8, .state_dir = "/g"};
    struct storage *st;
    cr_assert_eq(storage_open(g_io, &opt, &st), 0);
    struct plog_config cfg;
    plog_config_default(&cfg);
    struct plog *log;
    struct plog_recovery_report rep;
    cr_assert_eq(plog_open(st, "/g/log", &cfg, &rep, &log), 0);
    cr_assert(rep.clean, "the committed clean-shutdown record was not understood");
    cr_assert_eq(plog_start_offset(log), 7);
    cr_assert_eq(plog_end_offset(log), 8);
    uint8_t buf[256];
    cr_assert_eq(plog_read_copy(log, 7, 1, UINT64_MAX, buf, sizeof(buf)), (int)sizeof(g_batch));
    cr_assert_eq(memcmp(buf, g_batch, sizeof(g_batch)), 0);
    storage_destroy(st);
}

/* The first version kept a per-log marker {u64 LEO, u64 start}: a data directory written by it
 * still opens clean (and the marker is then removed). */
Test(formats, first_version_clean_marker)
{
    cr_assert_eq(io_dir_make(g_io, "/g/old", 0755), 0);
    put("/g/old/00000000000000000007.log", g_batch, sizeof(g_batch));
    put("/g/old/clean-shutdown", g_legacy_marker, sizeof(g_legacy_marker));
    struct storage *st;
    cr_assert_eq(storage_create(g_io, 8, &st), 0);
    struct plog_config cfg;
    plog_config_default(&cfg);
    struct plog *log;
    struct plog_recovery_report rep;
    cr_assert_eq(plog_open(st, "/g/old", &cfg, &rep, &log), 0);
    cr_assert(rep.clean);
    cr_assert_eq(plog_end_offset(log), 8);
    cr_assert_not(tu_exists(g_io, "/g/old/clean-shutdown"));
    storage_destroy(st);
}
