/* storage: the partition log (plog) end to end: append/read, limits, indexes at segment
 * boundaries, roll, retention, truncate_to, time lookups, recovery, sticky failure. Built twice:
 * test_storage on real files through io_uring, test_storage_sim (TU_SIM) on the simulated
 * back-end of io/. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <sys/mount.h>

#include "storage/bio.h"
#include "storage/checkpoint.h"
#include "storage/fcache.h"
#include "storage/plog_debug.h"
#include "storage_testutil.h"

static struct io *g_io;
static struct storage *g_st;
static char g_dir[256];

static void setup(void)
{
    g_io = tu_io_new(256);
    cr_assert_eq(storage_create(g_io, 64, &g_st), 0);
    tu_mkdtemp(g_io, g_dir, sizeof(g_dir), "plog");
}

static void teardown(void)
{
    storage_destroy(g_st);
    tu_rm_rf(g_io, g_dir);
    io_destroy(g_io);
}

TestSuite(storage, .init = setup, .fini = teardown);

static struct plog *open_log(const struct plog_config *cfg, struct plog_recovery_report *rep)
{
    struct plog *log = NULL;
    int rc = plog_open(g_st, g_dir, cfg, rep, &log);
    cr_assert_eq(rc, 0, "plog_open: %s", rl_strerror(rc));
    return log;
}

static void small_config(struct plog_config *cfg)
{
    plog_config_default(cfg);
    cfg->segment_bytes = 16 * 1024;
    cfg->index_interval_bytes = 512;
    cfg->retention_ms = -1;
}

/* Appends n batches of `records` records each (value sizes vary with i), waiting for each. */
static void append_n(struct plog *log, struct tu_batch *out, int n, uint32_t records, int64_t ts)
{
    for (int i = 0; i < n; i++) {
        uint64_t base;
        int rc = tu_build_append(g_io, log, &out[i], records, 100 + (size_t)(i * 37) % 700,
                                 (uint64_t)i, ts + i * 10, &base);
        cr_assert_eq(rc, 0, "append %d: %s", i, rl_strerror(rc));
        cr_assert_eq(base, (uint64_t)i * records);
    }
}

static void free_batches(struct tu_batch *b, int n)
{
    for (int i = 0; i < n; i++)
        free(b[i].data);
}

/* Reads the whole log batch by batch and checks every byte against the originals. */
static void check_contents(struct plog *log, const struct tu_batch *b, int n, uint32_t records)
{
    static uint8_t buf[1 << 20];
    uint64_t off = plog_start_offset(log);
    int i = (int)(off / records);
    while (i < n) {
        int len = plog_read_copy(log, off, 1, UINT64_MAX, buf, sizeof(buf));
        cr_assert_gt(len, 0, "read at %llu: %s", (unsigned long long)off, rl_strerror(len));
        cr_assert_eq((uint32_t)len, b[i].len, "batch %d length", i);
        cr_assert(tu_same_batch(buf, &b[i], (uint64_t)i * records), "batch %d differs", i);
        cr_assert_eq(batch_validate(buf, (size_t)len, NULL), 0);
        off += records;
        i++;
    }
    cr_assert_eq(plog_end_offset(log), (uint64_t)n * records);
}

/* Batches appended come back byte for byte with stamped offsets; reads at or past the end. */
Test(storage, append_read_roundtrip)
{
    struct plog_config cfg;
    plog_config_default(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[50];
    append_n(log, b, 50, 3, 1000);
    check_contents(log, b, 50, 3);
    struct plog_slice s;
    cr_assert_eq(plog_read(log, 150, 1 << 20, UINT64_MAX, &s), 0);
    cr_assert_eq(s.len, 0);
    cr_assert_eq(plog_read(log, 151, 1 << 20, UINT64_MAX, &s), RL_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(plog_unsynced_bytes(log), 0, "flush policy batch left unsynced bytes");
    plog_close(log);
    free_batches(b, 50);
}

/* A read returns whole batches up to max_bytes, at least one, none at or past max_offset, and
 * starts with the batch holding the offset asked for. */
Test(storage, read_limits)
{
    struct plog_config cfg;
    plog_config_default(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[10];
    append_n(log, b, 10, 4, 1000);
    struct plog_slice s;
    cr_assert_eq(plog_read(log, 0, 1, UINT64_MAX, &s), 0);
    cr_assert_eq(s.len, b[0].len, "one batch even when max_bytes is smaller");
    cr_assert_eq(s.next_offset, 4);
    plog_slice_release(log, &s);
    cr_assert_eq(plog_read(log, 0, b[0].len + b[1].len + b[2].len / 2, UINT64_MAX, &s), 0);
    cr_assert_eq(s.len, b[0].len + b[1].len, "only whole batches within max_bytes");
    cr_assert_eq(s.next_offset, 8);
    plog_slice_release(log, &s);
    cr_assert_eq(plog_read(log, 6, 1 << 20, UINT64_MAX, &s), 0);
    cr_assert_eq(s.first_offset, 4, "the batch holding offset 6 starts at 4");
    cr_assert_eq(s.file_position, b[0].len);
    plog_slice_release(log, &s);
    cr_assert_eq(plog_read(log, 0, 1 << 20, 12, &s), 0);
    cr_assert_eq(s.next_offset, 12, "max_offset 12 stops before the batch at 12");
    plog_slice_release(log, &s);
    cr_assert_eq(plog_read(log, 13, 1 << 20, 12, &s), 0);
    cr_assert_eq(s.len, 0, "nothing visible below max_offset from 13");
    plog_close(log);
    free_batches(b, 10);
}

/* Batches bigger than the index interval each have an index entry, so a read at a batch start
 * is answered from the index alone: at every batch start, for every cap and visibility bound,
 * the slice must hold whole batches from that start, at least one, within max_bytes beyond the
 * first, none starting at or past max_offset, and stop early only where the header walk would,
 * or one batch before it when that batch straddles max_offset (the index knows where a batch
 * starts, not where its offsets end). The slice's O_DIRECT descriptor, when there is one,
 * reads the same bytes. */
Test(storage, index_slices_match_the_header_walk)
{
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.index_interval_bytes = 4096;
    struct plog *log = open_log(&cfg, NULL);
    enum { N = 12, R = 2 };
    struct tu_batch b[N];
    uint64_t pos[N + 1] = {0};
    for (int i = 0; i < N; i++) {
        uint64_t base;
        cr_assert_eq(tu_build_append(g_io, log, &b[i], R, 2500 + (size_t)i * 700, (uint64_t)i,
                                     1000 + i, &base), 0);
        pos[i + 1] = pos[i] + b[i].len;
    }
    static uint8_t *dbuf;
    if (!dbuf)
        cr_assert_eq(posix_memalign((void **)&dbuf, PLOG_DIRECT_ALIGN, 1 << 20), 0);
    for (int i = 0; i < N; i++) {
        for (uint64_t cap = 1; cap <= pos[N] + 1; cap += 2999) {
            for (uint64_t max_off = (uint64_t)i * R + 1; max_off <= N * R + 1; max_off += 7) {
                /* The header walk: batches from i while they fit in cap (at least one) and
                 * start below max_off; batch k holds offsets k*R .. k*R + R - 1. */
                int walk = i + 1;
                while (walk < N && pos[walk + 1] - pos[i] <= cap && (uint64_t)walk * R < max_off)
                    walk++;
                struct plog_slice s;
                cr_assert_eq(plog_read(log, (uint64_t)i * R, (uint32_t)cap, max_off, &s), 0);
                cr_assert_eq(s.file_position, pos[i], "start, batch %d", i);
                cr_assert_eq(s.first_offset, (uint64_t)i * R);
                int j = (int)(s.next_offset / R);
                cr_assert_eq(s.next_offset, (uint64_t)j * R);
                cr_assert_eq(s.len, pos[j] - pos[i], "whole batches from %d", i);
                bool straddler_left = j == walk - 1 && j > i && (uint64_t)walk * R > max_off;
                cr_assert(j == walk || straddler_left, "from %d cap %llu max_off %llu: %d "
                          "batches, the walk gives %d", i, (unsigned long long)cap,
                          (unsigned long long)max_off, j - i, walk - i);
                plog_slice_release(log, &s);
            }
        }
    }
    struct plog_slice s;
    cr_assert_eq(plog_read(log, 2 * R, 1 << 20, UINT64_MAX, &s), 0);
    if (s.direct_fd >= 0 && !io_is_sim(g_io)) {
        uint64_t start = s.file_position / PLOG_DIRECT_ALIGN * PLOG_DIRECT_ALIGN;
        uint64_t end = (s.file_position + s.len + PLOG_DIRECT_ALIGN - 1) / PLOG_DIRECT_ALIGN *
                       PLOG_DIRECT_ALIGN;
        ssize_t n = pread(s.direct_fd, dbuf, end - start, (off_t)start);
        cr_assert_geq(n, (ssize_t)(s.file_position + s.len - start), "direct read: %zd", n);
        for (int i = 2; i < N; i++)
            cr_assert(tu_same_batch(dbuf + (pos[i] - start), &b[i], (uint64_t)i * R),
                      "batch %d differs through the O_DIRECT descriptor", i);
    }
    plog_slice_release(log, &s);
    plog_close(log);
    free_batches(b, N);
}

/* Every offset, including the first and last of each segment, resolves to its batch through
 * the sparse index, across many small segments, before and after a reopen. */
Test(storage, index_lookups_at_segment_boundaries)
{
    struct plog_config cfg;
    small_config(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    enum { N = 120, R = 5 };
    struct tu_batch b[N];
    append_n(log, b, N, R, 1000);
    cr_assert_gt(plog_segment_count(log), 5, "segments: %u", plog_segment_count(log));
    for (int round = 0; round < 2; round++) {
        for (uint64_t off = 0; off < N * R; off++) {
            struct plog_slice s;
            cr_assert_eq(plog_read(log, off, 1, UINT64_MAX, &s), 0);
            cr_assert_eq(s.first_offset, off / R * R, "offset %llu", (unsigned long long)off);
            cr_assert_eq(s.len, b[off / R].len);
            plog_slice_release(log, &s);
        }
        check_contents(log, b, N, R);
        plog_close(log);
        struct plog_recovery_report rep;
        log = open_log(&cfg, &rep);
        cr_assert(rep.clean);
        cr_assert_eq(rep.indexes_rebuilt, 0);
    }
    /* Segment files are named by base offset and each begins with the batch at that offset. */
    cr_assert_eq((uint32_t)tu_count_files(g_io, g_dir, ".log"), plog_segment_count(log));
    for (uint64_t off = 0; off < N * R; off += R) {
        struct plog_slice s;
        cr_assert_eq(plog_read(log, off, 1, UINT64_MAX, &s), 0);
        char path[512];
        snprintf(path, sizeof(path), "%s/%020llu.log", g_dir, (unsigned long long)off);
        cr_assert_eq(s.file_position == 0, tu_exists(g_io, path), "offset %llu",
                     (unsigned long long)off);
        plog_slice_release(log, &s);
    }
    plog_close(log);
    free_batches(b, N);
}

/* A segment rolls when the next batch would not fit, and when it is older than segment_ms. */
Test(storage, roll_by_size_and_age)
{
    struct plog_config cfg;
    small_config(&cfg);
    cfg.segment_ms = 60 * 1000;
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[4];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(tu_build_append(g_io, log, &b[i], 1, 6000, (uint64_t)i, 1000, NULL), 0);
    }
    cr_assert_eq(plog_segment_count(log), 2, "16 KiB segments hold two 6 KB batches");
    int64_t now = io_wall_ms(g_io);
    cr_assert_eq(plog_enforce_retention(log, now), 0);
    cr_assert_eq(plog_segment_count(log), 2, "young segment must not roll");
    cr_assert_eq(plog_enforce_retention(log, now + 61 * 1000), 0);
    cr_assert_eq(plog_segment_count(log), 3, "old segment must roll");
    cr_assert_eq(tu_append_wait(g_io, log, &b[0], NULL), 0);
    struct plog_slice s;
    cr_assert_eq(plog_read(log, 4, 1, UINT64_MAX, &s), 0);
    cr_assert_eq(s.file_position, 0, "batch after an age roll starts the new segment");
    plog_slice_release(log, &s);
    plog_close(log);
    free_batches(b, 4);
}

/* Retention by size deletes the oldest whole segments (never the active one), moves the log
 * start, and the files disappear; reads below the start fail. */
Test(storage, retention_by_size)
{
    struct plog_config cfg;
    small_config(&cfg);
    cfg.retention_bytes = 40 * 1024;
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[60];
    append_n(log, b, 60, 2, 1000);
    uint32_t before = plog_segment_count(log);
    int deleted = plog_enforce_retention(log, io_wall_ms(g_io));
    cr_assert_gt(deleted, 0);
    cr_assert_eq(plog_segment_count(log), before - (uint32_t)deleted);
    cr_assert_leq(plog_size_bytes(log), 40 * 1024 + 16 * 1024);
    cr_assert_geq(plog_size_bytes(log), 40 * 1024 - 16 * 1024);
    uint64_t start = plog_start_offset(log);
    cr_assert_gt(start, 0);
    struct plog_slice s;
    cr_assert_eq(plog_read(log, start - 1, 1, UINT64_MAX, &s), RL_E_OFFSET_OUT_OF_RANGE);
    storage_debug_sync_background(g_st);
    cr_assert_eq(tu_count_files(g_io, g_dir, ".log"), (int)plog_segment_count(log));
    cr_assert_eq(tu_count_files(g_io, g_dir, ".deleted"), 0, "a dropped data file was left");
    check_contents(log, b, 60, 2);
    plog_close(log);
    log = open_log(&cfg, NULL);
    cr_assert_eq(plog_start_offset(log), start);
    plog_close(log);
    free_batches(b, 60);
}

/* Large files go in steps (bio_remove_gradually, used for dropped segments' data files): a
 * 24 MiB file is cut to 16 and 8 MiB, then unlinked; a step larger than the file is one unlink. */
Test(storage, gradual_removal_frees_in_steps)
{
    char path[300], small[300];
    snprintf(path, sizeof(path), "%s/big.log.deleted", g_dir);
    snprintf(small, sizeof(small), "%s/small.log.deleted", g_dir);
    const char *files[] = {path, small};
    for (int i = 0; i < 2; i++) {
        int fd = io_file_open(g_io, files[i], O_CREAT | O_WRONLY, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(io_file_truncate(g_io, fd, i == 0 ? 24u << 20 : 4u << 20), 0);
        io_file_close(g_io, fd);
    }
    struct bio *b;
    cr_assert_eq(bio_create(g_io, &b), 0);
#ifdef TU_SIM
    uint64_t before = io_sim_mutations(g_io);
#endif
    cr_assert_eq(bio_remove_gradually(b, path, 8u << 20, 100), 0);
    bio_drain(b);
#ifdef TU_SIM
    cr_assert_eq(io_sim_mutations(g_io) - before, 3, "24 MiB in 8 MiB steps: two truncations "
                 "and the unlink, not %llu changes",
                 (unsigned long long)(io_sim_mutations(g_io) - before));
    before = io_sim_mutations(g_io);
#endif
    cr_assert_eq(bio_remove_gradually(b, small, 8u << 20, 100), 0);
    bio_destroy(b);
#ifdef TU_SIM
    cr_assert_eq(io_sim_mutations(g_io) - before, 1);
#endif
    cr_assert(!tu_exists(g_io, path) && !tu_exists(g_io, small));
}

/* Retention by age deletes segments whose newest record is older than retention_ms. */
Test(storage, retention_by_age)
{
    struct plog_config cfg;
    small_config(&cfg);
    cfg.retention_ms = 1000;
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch old[20], young[20];
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(tu_build_append(g_io, log, &old[i], 1, 2000, (uint64_t)i, 10000, NULL), 0);
    }
    /* Roll by age (with retention off for the moment) so the old data is not active. */
    cfg.retention_ms = -1;
    cr_assert_eq(plog_set_config(log, &cfg), 0);
    cr_assert_eq(plog_enforce_retention(log, io_wall_ms(g_io) + 8ll * 24 * 3600 * 1000), 0);
    cfg.retention_ms = 1000;
    cr_assert_eq(plog_set_config(log, &cfg), 0);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(tu_build_append(g_io, log, &young[i], 1, 2000, (uint64_t)i, 50000, NULL), 0);
    }
    int deleted = plog_enforce_retention(log, 30000);
    cr_assert_gt(deleted, 0);
    cr_assert_eq(plog_start_offset(log), 20, "exactly the old segments went");
    uint64_t off;
    cr_assert_eq(plog_offset_for_time(log, 0, &off), 0);
    cr_assert_eq(off, 20);
    plog_close(log);
    free_batches(old, 20);
    free_batches(young, 20);
}

/* The first batch with max timestamp >= t is found through the time index, across segments. */
Test(storage, offset_for_time)
{
    struct plog_config cfg;
    small_config(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[80];
    append_n(log, b, 80, 2, 100000); /* batch i: timestamps 100000 + 10 i, +1 */
    for (int i = 0; i < 80; i += 7) {
        uint64_t off;
        cr_assert_eq(plog_offset_for_time(log, 100000 + i * 10, &off), 0);
        cr_assert_eq(off, (uint64_t)i * 2, "t=%d", 100000 + i * 10);
        cr_assert_eq(plog_offset_for_time(log, 100000 + i * 10 + 1, &off), 0);
        cr_assert_eq(off, (uint64_t)i * 2, "t within batch %d", i);
        cr_assert_eq(plog_offset_for_time(log, 100000 + i * 10 + 2, &off), 0);
        cr_assert_eq(off, (uint64_t)(i + 1) * 2);
    }
    uint64_t off;
    cr_assert_eq(plog_offset_for_time(log, 1, &off), 0);
    cr_assert_eq(off, 0);
    cr_assert_eq(plog_offset_for_time(log, 1000000, &off), 0);
    cr_assert_eq(off, 160, "none that late: the log end");
    plog_close(log);
    free_batches(b, 80);
}

/* truncate_to drops the tail at a batch boundary (inside a segment and at a segment start),
 * refuses a non-boundary, and appends continue from the new end, also after a reopen. */
Test(storage, truncate_to)
{
    struct plog_config cfg;
    small_config(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[60];
    append_n(log, b, 60, 2, 1000);
    cr_assert_eq(plog_truncate_to(log, 101), RL_E_INVALID_ARGUMENT, "not a batch boundary");
    cr_assert_eq(plog_end_offset(log), 120);
    cr_assert_eq(plog_truncate_to(log, 100), 0);
    cr_assert_eq(plog_end_offset(log), 100);
    check_contents(log, b, 50, 2);
    struct plog_slice s;
    cr_assert_eq(plog_read(log, 100, 1, UINT64_MAX, &s), 0);
    cr_assert_eq(s.len, 0);
    /* Truncate to the first offset of a later segment's predecessor boundary. */
    cr_assert_gt(plog_segment_count(log), 2);
    uint32_t segs = plog_segment_count(log);
    uint64_t boundary = 0;
    for (uint64_t o = 2; o < 100; o += 2) {
        cr_assert_eq(plog_read(log, o, 1, UINT64_MAX, &s), 0);
        uint64_t fp = s.file_position;
        plog_slice_release(log, &s);
        if (fp == 0) {
            boundary = o;
            break;
        }
    }
    cr_assert_gt(boundary, 0);
    cr_assert_eq(plog_truncate_to(log, boundary), 0);
    cr_assert_lt(plog_segment_count(log), segs);
    cr_assert_eq(plog_end_offset(log), boundary);
    for (int i = (int)boundary / 2; i < 60; i++) {
        uint64_t base;
        cr_assert_eq(tu_append_wait(g_io, log, &b[i], &base), 0);
        cr_assert_eq(base, (uint64_t)i * 2);
    }
    check_contents(log, b, 60, 2);
    plog_close(log);
    struct plog_recovery_report rep;
    log = open_log(&cfg, &rep);
    cr_assert(rep.clean);
    check_contents(log, b, 60, 2);
    cr_assert_eq(plog_truncate_to(log, 0), 0);
    cr_assert_eq(plog_end_offset(log), 0);
    cr_assert_eq(plog_segment_count(log), 1);
    cr_assert_eq(tu_append_wait(g_io, log, &b[0], NULL), 0);
    plog_close(log);
    free_batches(b, 60);
}

/* A clean close lets the next open skip the scan; without the marker the active segment is
 * scanned; missing or damaged index files are rebuilt. */
Test(storage, reopen_clean_unclean_and_index_rebuild)
{
    struct plog_config cfg;
    small_config(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[40];
    append_n(log, b, 40, 3, 1000);
    plog_close(log);
    struct plog_recovery_report rep;
    log = open_log(&cfg, &rep);
    cr_assert(rep.clean);
    cr_assert_eq(rep.bytes_truncated, 0);
    cr_assert_lt(rep.bytes_scanned, 16 * 1024, "clean open read only segment tails");
    plog_close(log);

    char path[512];
    storage_debug_forget_clean(g_st);
    snprintf(path, sizeof(path), "%s/%020d.index", g_dir, 0);
    cr_assert_eq(io_path_unlink(g_io, path), 0);
    snprintf(path, sizeof(path), "%s/%020d.timeindex", g_dir, 0);
    cr_assert_eq(tu_write_at(g_io, path, "garbage-garbage-", 16, 0, true), 0);
    log = open_log(&cfg, &rep);
    cr_assert_not(rep.clean);
    cr_assert_geq(rep.indexes_rebuilt, 1);
    cr_assert_eq(rep.bytes_truncated, 0);
    cr_assert_eq(rep.truncated_at_position, -1);
    check_contents(log, b, 40, 3);
    uint64_t off;
    cr_assert_eq(plog_offset_for_time(log, 1000 + 10 * 5, &off), 0);
    cr_assert_eq(off, 15);
    plog_close(log);
    free_batches(b, 40);
}

/* A torn tail (the last batch half written, then junk) is cut off and reported; zero padding
 * after the last batch is trimmed silently; appends continue after the cut. */
Test(storage, recovery_torn_tail)
{
    struct plog_config cfg;
    plog_config_default(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[10];
    append_n(log, b, 10, 1, 1000);
    plog_close(log);
    char seg[512];
    snprintf(seg, sizeof(seg), "%s/%020d.log", g_dir, 0);
    /* A clean close keeps the preallocation after the batches; they end here. */
    int64_t size = 0;
    for (int i = 0; i < 10; i++)
        size += b[i].len;
    cr_assert_geq(tu_file_size(g_io, seg), size);
    cr_assert_eq(tu_truncate(g_io, seg, (uint64_t)size - b[9].len / 2), 0);
    storage_debug_forget_clean(g_st);
    struct plog_recovery_report rep;
    log = open_log(&cfg, &rep);
    cr_assert_not(rep.clean);
    cr_assert_eq(plog_end_offset(log), 9);
    cr_assert_eq(rep.truncated_at_position, size - b[9].len);
    cr_assert_eq(rep.bytes_truncated, b[9].len - b[9].len / 2);
    cr_assert_str_eq(rep.truncated_reason, rl_strerror(RL_E_BATCH_SHORT));
    check_contents(log, b, 9, 1);
    cr_assert_eq(tu_append_wait(g_io, log, &b[9], NULL), 0);
    check_contents(log, b, 10, 1);
    plog_close(log);

    /* Zero padding (an unwritten, preallocated tail) is not damage; recovery trims it. */
    cr_assert_eq(tu_truncate(g_io, seg, (uint64_t)tu_file_size(g_io, seg) + 10000), 0);
    storage_debug_forget_clean(g_st);
    log = open_log(&cfg, &rep);
    cr_assert_eq(rep.bytes_truncated, 0);
    cr_assert_eq(rep.truncated_at_position, -1);
    cr_assert_eq(tu_file_size(g_io, seg), size);
    check_contents(log, b, 10, 1);
    plog_close(log);
    free_batches(b, 10);
}

/* A write failure fails the waiting append and every later one (RL_E_LOG_FAILED). */
Test(storage, sticky_failure)
{
    struct plog_config cfg;
    plog_config_default(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b = tu_build(2, 300, 1, 1000);
    cr_assert_eq(tu_append_wait(g_io, log, &b, NULL), 0);
    plog_debug_fail_next_io(log, -EIO);
    cr_assert_eq(tu_append_wait(g_io, log, &b, NULL), -EIO);
    struct tu_append a;
    cr_assert_eq(tu_append_start(log, &a, &b), RL_E_LOG_FAILED);
    cr_assert_eq(a.calls, 0);
    plog_close(log);
    /* The failed log did not leave a clean marker: the next open recovers it. */
    struct plog_recovery_report rep;
    log = open_log(&cfg, &rep);
    cr_assert_not(rep.clean);
    cr_assert_geq(plog_end_offset(log), 2);
    plog_close(log);
    free(b.data);
}

/* Many appends outstanding at once are all acknowledged, in order, with contiguous offsets,
 * under each flush policy; `interval` makes everything durable within the interval. */
Test(storage, async_appends_all_policies)
{
    static const char *const policies[] = {"batch", "none", "interval:20"};
    for (int p = 0; p < 3; p++) {
        struct plog_config cfg;
        plog_config_default(&cfg);
        cr_assert_eq(plog_parse_flush_policy(policies[p], &cfg), 0);
        char sub[300];
        snprintf(sub, sizeof(sub), "%s/p%d", g_dir, p);
        struct plog *log;
        cr_assert_eq(plog_open(g_st, sub, &cfg, NULL, &log), 0);
        enum { N = 500 };
        static struct tu_append a[N];
        struct tu_batch b = tu_build(3, 500, 7, 1000);
        int done = 0;
        for (int i = 0; i < N; i++) {
            cr_assert_eq(tu_append_start(log, &a[i], &b), 0, "append %d", i);
            cr_assert_eq(a[i].req.base_offset, (uint64_t)i * 3);
        }
        uint64_t deadline = io_now_ns(g_io) + TU_DEADLINE_NS;
        while (done < N && io_now_ns(g_io) < deadline) {
            io_run(g_io, 50 * 1000000ull);
            done = 0;
            for (int i = 0; i < N; i++)
                done += a[i].calls;
        }
        cr_assert_eq(done, N, "policy %s: %d of %d acknowledged", policies[p], done, N);
        for (int i = 1; i < N; i++) {
            cr_assert_eq(a[i].result, 0);
            cr_assert_gt(a[i].order, a[i - 1].order, "acknowledged out of order");
        }
        if (p == 0)
            cr_assert_eq(plog_unsynced_bytes(log), 0);
        if (p == 2) {
            while (plog_unsynced_bytes(log) > 0 && io_now_ns(g_io) < deadline)
                io_run(g_io, 50 * 1000000ull);
            cr_assert_eq(plog_unsynced_bytes(log), 0, "interval flush never came");
        }
        if (p == 1) {
            cr_assert_eq(plog_sync(log), 0);
            cr_assert_eq(plog_unsynced_bytes(log), 0);
        }
        plog_close(log);
        free(b.data);
    }
    struct plog_config cfg;
    plog_config_default(&cfg);
    cr_assert_eq(plog_parse_flush_policy("interval:0", &cfg), RL_E_INVALID_CONFIG);
    cr_assert_eq(plog_parse_flush_policy("interval:", &cfg), RL_E_INVALID_CONFIG);
    cr_assert_eq(plog_parse_flush_policy("sometimes", &cfg), RL_E_INVALID_CONFIG);
}

/* Bad appends are refused at once without a callback: too large, bad header, stale follower
 * offset; a follower append with the right base offset keeps it. */
Test(storage, append_refusals_and_follower_offsets)
{
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.max_batch_bytes = 4096;
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch big = tu_build(1, 5000, 1, 1000);
    struct tu_batch b = tu_build(2, 100, 2, 1000);
    struct tu_append a;
    cr_assert_eq(tu_append_start(log, &a, &big), RL_E_MESSAGE_TOO_LARGE);
    uint8_t junk[100] = {0};
    a.req.batch = junk;
    a.req.len = sizeof(junk);
    cr_assert_eq(plog_append(log, &a.req), RL_E_BATCH_MAGIC);
    batch_stamp(b.data, 5, 0);
    memset(&a, 0, sizeof(a));
    a.req = (struct plog_append){.batch = b.data, .len = b.len, .done = tu_append_done,
                                 .ctx = &a, .keep_offsets = true};
    cr_assert_eq(plog_append(log, &a.req), RL_E_STALE_OFFSET);
    batch_stamp(b.data, 0, 7);
    a.req.leader_epoch = 7;
    cr_assert_eq(plog_append(log, &a.req), 0);
    cr_assert(tu_run_until(g_io, &a.calls, 1));
    cr_assert_eq(a.req.base_offset, 0);
    cr_assert_eq(plog_end_offset(log), 2);
    uint8_t buf[4096];
    cr_assert_eq(plog_read_copy(log, 0, 4096, UINT64_MAX, buf, sizeof(buf)), (int)b.len);
    struct batch_header h;
    cr_assert_eq(batch_validate(buf, b.len, &h), 0);
    cr_assert_eq(h.leader_epoch, 7);
    plog_close(log);
    free(big.data);
    free(b.data);
}

/* advance_start hides records below it, deletes whole segments below it, and survives a
 * reopen; plog_delete removes the directory. */
Test(storage, advance_start_and_delete)
{
    struct plog_config cfg;
    small_config(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[60];
    append_n(log, b, 60, 2, 1000);
    uint32_t segs = plog_segment_count(log);
    cr_assert_eq(plog_advance_start(log, 81), 0);
    cr_assert_eq(plog_start_offset(log), 81);
    cr_assert_lt(plog_segment_count(log), segs);
    struct plog_slice s;
    cr_assert_eq(plog_read(log, 80, 1, UINT64_MAX, &s), RL_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(plog_read(log, 81, 1, UINT64_MAX, &s), 0);
    cr_assert_eq(s.first_offset, 80, "the batch holding 81 starts at 80");
    plog_slice_release(log, &s);
    cr_assert_eq(plog_advance_start(log, 200), RL_E_OFFSET_OUT_OF_RANGE);
    plog_close(log);
    log = open_log(&cfg, NULL);
    cr_assert_eq(plog_start_offset(log), 81);
    cr_assert_eq(plog_end_offset(log), 120);
    cr_assert_eq(plog_delete(log), 0);
    storage_debug_sync_background(g_st);
    cr_assert_eq(io_dir_make(g_io, g_dir, 0755), 0, "the log directory is still there");
    free_batches(b, 60);
}

/* Checkpoints round-trip, and a damaged one is reported rather than trusted. */
Test(storage, checkpoint_roundtrip_and_damage)
{
    char data[100];
    memset(data, 'x', sizeof(data));
    cr_assert_eq(checkpoint_save(g_io, g_dir, "cp", data, sizeof(data), CHECKPOINT_DURABLE), 0);
    char back[200];
    cr_assert_eq(checkpoint_load(g_io, g_dir, "cp", back, sizeof(back)), 100);
    cr_assert_eq(memcmp(back, data, 100), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/cp", g_dir);
    cr_assert_eq(tu_write_at(g_io, path, "y", 1, 50, false), 0);
    cr_assert_eq(checkpoint_load(g_io, g_dir, "cp", back, sizeof(back)), RL_E_CORRUPT);
    cr_assert_eq(checkpoint_load(g_io, g_dir, "nope", back, sizeof(back)), -ENOENT);
}

/* Small appends one at a time under `none` and `interval` (each new write starts inside the
 * partly written last block) all land and read back; the log reopens with all of them. */
Test(storage, small_appends_rewrite_the_partial_block)
{
    static const char *const policies[] = {"none", "interval:5", "batch"};
    for (int p = 0; p < 3; p++) {
        struct plog_config cfg;
        plog_config_default(&cfg);
        cr_assert_eq(plog_parse_flush_policy(policies[p], &cfg), 0);
        char sub[300];
        snprintf(sub, sizeof(sub), "%s/p%d", g_dir, p);
        struct plog *log;
        cr_assert_eq(plog_open(g_st, sub, &cfg, NULL, &log), 0);
        struct tu_batch b[30];
        for (int i = 0; i < 30; i++) {
            int rc = tu_build_append(g_io, log, &b[i], 1, 10 + (size_t)i * 13, (uint64_t)i,
                                     1000, NULL);
            cr_assert_eq(rc, 0, "%s append %d", policies[p], i);
        }
        check_contents(log, b, 30, 1);
        plog_close(log);
        cr_assert_eq(plog_open(g_st, sub, &cfg, NULL, &log), 0);
        check_contents(log, b, 30, 1);
        plog_close(log);
        free_batches(b, 30);
    }
}

/* The descriptor cache evicts the least recently used unpinned entry, never a pinned one, and
 * refuses (RL_E_FULL) rather than exceed its bound when everything is pinned. */
Test(storage, fcache_bound_and_pins)
{
    struct fcache c;
    struct fcache_ent e[3];
    char path[3][400];
    fcache_init(&c, g_io, 2);
    for (int i = 0; i < 3; i++) {
        fcache_ent_init(&e[i]);
        snprintf(path[i], sizeof(path[i]), "%s/f%d", g_dir, i);
        cr_assert_eq(tu_write_at(g_io, path[i], "", 0, 0, true), 0);
    }
    cr_assert_geq(fcache_get(&c, &e[0], path[0], O_RDONLY, NULL), 0);
    cr_assert_geq(fcache_get(&c, &e[1], path[1], O_RDONLY, NULL), 0);
    fcache_pin(&e[0]);
    fcache_pin(&e[1]);
    cr_assert_eq(fcache_get(&c, &e[2], path[2], O_RDONLY, NULL), RL_E_FULL);
    fcache_unpin(&e[0]);
    cr_assert_geq(fcache_get(&c, &e[2], path[2], O_RDONLY, NULL), 0);
    cr_assert_eq(e[0].fd, -1, "the unpinned entry was not the one evicted");
    cr_assert_geq(e[1].fd, 0);
    cr_assert_eq(c.open, 2);
    fcache_unpin(&e[1]);
    for (int i = 0; i < 3; i++)
        fcache_close(&c, &e[i]);
    cr_assert_eq(c.open, 0);
}

/* Rolls while writes are in flight: hundreds of appends outstanding across many small
 * segments, under each policy, all acknowledged in order and read back intact, then again
 * after a reopen. */
Test(storage, rolls_with_writes_in_flight)
{
    static const char *const policies[] = {"none", "interval:3", "batch"};
    for (int p = 0; p < 3; p++) {
        struct plog_config cfg;
        small_config(&cfg);
        cfg.segment_bytes = 64 * 1024;
        cr_assert_eq(plog_parse_flush_policy(policies[p], &cfg), 0);
        char sub[300];
        snprintf(sub, sizeof(sub), "%s/r%d", g_dir, p);
        struct plog *log;
        cr_assert_eq(plog_open(g_st, sub, &cfg, NULL, &log), 0);
        enum { N = 400 };
        static struct tu_append a[N];
        static struct tu_batch b[N];
        for (int i = 0; i < N; i++) {
            b[i] = tu_build(1 + (uint32_t)(i % 3), 200 + (size_t)(i * 61) % 3000, (uint64_t)i,
                            1000 + i);
            int rc = tu_append_start(log, &a[i], &b[i]);
            for (int tries = 0; rc == RL_E_FULL && tries < 1000; tries++) {
                io_run(g_io, 10 * 1000000ull);
                rc = tu_append_start(log, &a[i], &b[i]);
            }
            cr_assert_eq(rc, 0, "%s append %d: %s", policies[p], i, rl_strerror(rc));
        }
        int done = 0;
        uint64_t deadline = io_now_ns(g_io) + TU_DEADLINE_NS;
        while (done < N && io_now_ns(g_io) < deadline) {
            io_run(g_io, 20 * 1000000ull);
            done = 0;
            for (int i = 0; i < N; i++)
                done += a[i].calls;
        }
        cr_assert_eq(done, N, "%s: %d of %d acknowledged", policies[p], done, N);
        cr_assert_gt(plog_segment_count(log), 10);
        static uint8_t buf[1 << 16];
        for (int round = 0; round < 2; round++) {
            uint64_t off = 0;
            for (int i = 0; i < N; i++) {
                cr_assert_eq(a[i].result, 0);
                if (i > 0)
                    cr_assert_gt(a[i].order, a[i - 1].order);
                int n = plog_read_copy(log, off, 1, UINT64_MAX, buf, sizeof(buf));
                cr_assert_eq(n, (int)b[i].len, "%s batch %d", policies[p], i);
                cr_assert(tu_same_batch(buf, &b[i], off));
                off += b[i].records;
            }
            plog_close(log);
            cr_assert_eq(plog_open(g_st, sub, &cfg, NULL, &log), 0);
        }
        plog_close(log);
        free_batches(b, N);
    }
}

/* A slice stays readable while its segment is deleted by retention and while its log is
 * deleted; releasing it afterwards frees everything (ASan checks the frees). */
Test(storage, slice_outlives_retention_and_delete)
{
    struct plog_config cfg;
    small_config(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[40];
    append_n(log, b, 40, 1, 1000);
    struct plog_slice s1, s2;
    cr_assert_eq(plog_read(log, 0, 1, UINT64_MAX, &s1), 0);
    cr_assert_eq(plog_read(log, 39, 1, UINT64_MAX, &s2), 0);
    cr_assert_eq(plog_advance_start(log, 35), 0);
    cr_assert_gt(plog_start_offset(log), 0);
    uint8_t buf[4096];
    storage_debug_sync_background(g_st);
    cr_assert_eq(io_file_pread(g_io, s1.fd, buf, s1.len, s1.file_position), (ssize_t)s1.len);
    cr_assert(tu_same_batch(buf, &b[0], 0), "a deleted segment's slice changed");
    cr_assert_eq(plog_delete(log), 0);
    storage_debug_sync_background(g_st);
    cr_assert_eq(io_file_pread(g_io, s2.fd, buf, s2.len, s2.file_position), (ssize_t)s2.len);
    cr_assert(tu_same_batch(buf, &b[39], 39), "a deleted log's slice changed");
    plog_slice_release(log, &s1);
    plog_slice_release(log, &s2);
    storage_debug_sync_background(g_st);
    cr_assert_eq(storage_debug_open_files(g_st), 0);
    io_dir_make(g_io, g_dir, 0755); /* for teardown */
    free_batches(b, 40);
}

/* A batch may claim up to 2^24 records in a few bytes, so a segment can reach 2^32 relative
 * offsets long before it is large: the log rolls before a batch's last offset would pass 2^32
 * past its segment's base (the index stores u32 relative offsets), and every batch is still
 * found at its offset. */
Test(storage, roll_before_relative_offsets_overflow)
{
    struct plog_config cfg;
    plog_config_default(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b = tu_build(1, 20, 1, 1000);
    const uint32_t count = 1u << 24;
    /* Claim 2^24 records; the checksum covers the count, so it is recomputed. */
    b.data[BATCH_OFF_RECORD_COUNT] = 0;
    for (int i = 0; i < 4; i++) {
        b.data[BATCH_OFF_RECORD_COUNT + i] = (uint8_t)(count >> (8 * i));
        b.data[BATCH_OFF_LAST_OFFSET_DELTA + i] = (uint8_t)((count - 1) >> (8 * i));
    }
    uint64_t sum = batch_compute_checksum(b.data, b.len);
    for (int i = 0; i < 8; i++)
        b.data[BATCH_OFF_CHECKSUM + i] = (uint8_t)(sum >> (8 * i));
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        uint64_t base;
        cr_assert_eq(tu_append_wait(g_io, log, &b, &base), 0, "append %d", i);
        cr_assert_eq(base, (uint64_t)i * count);
    }
    cr_assert_eq(plog_segment_count(log), 2, "256 batches of 2^24 records fill 2^32 offsets");
    for (int i = 0; i < N; i++) {
        struct plog_slice s;
        uint64_t off = (uint64_t)i * count + (uint64_t)(i % 7) * 1000;
        cr_assert_eq(plog_read(log, off, 1, UINT64_MAX, &s), 0);
        cr_assert_eq(s.first_offset, (uint64_t)i * count, "batch %d not found at its offset", i);
        cr_assert_eq(s.len, b.len);
        plog_slice_release(log, &s);
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/%020llu.log", g_dir, 256ull * count);
    cr_assert(tu_exists(g_io, path), "the second segment starts at 2^32");
    plog_close(log);
    free(b.data);
}

/* Disk full: a write refused for space is not a failure. The log says so (plog_disk_full,
 * storage_disk_full_logs), refuses new appends with RL_E_DISK_FULL, keeps serving reads, and
 * once space is freed writes what it holds by itself: every append it accepted is
 * acknowledged, in order, nothing lost or doubled. A failed fsync stays sticky. Simulated
 * back-end (a file system with a capacity). */
Test(storage, disk_full_waits_then_resumes)
{
    if (!io_is_sim(g_io))
        cr_skip_test("needs the simulated back-end's capacity (see test_storage_sim)");
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 64 * 1024;
    struct plog *log = open_log(&cfg, NULL);
    enum { N = 200 };
    static struct tu_append a[N];
    static struct tu_batch b[N];
    /* Room for what is there now plus a little: the log fills it within a few batches. */
    io_sim_set_capacity(g_io, io_sim_used_bytes(g_io) + 3 * 4096);
    int accepted = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        b[i] = tu_build(1, 500, (uint64_t)i, 1000 + i);
        int rc = tu_append_start(log, &a[i], &b[i]);
        if (rc == RL_E_DISK_FULL) {
            refused++;
            free(b[i].data);
            b[i].data = NULL;
            continue;
        }
        cr_assert_eq(rc, 0, "append %d: %s", i, rl_strerror(rc));
        accepted++;
        io_run(g_io, 0);
    }
    cr_assert(plog_disk_full(log), "a full disk was not noticed");
    cr_assert_eq(storage_disk_full_logs(g_st), 1);
    cr_assert_gt(refused, 0);
    int acked_then = 0;
    for (int i = 0; i < N; i++)
        acked_then += a[i].calls;
    cr_assert_lt(acked_then, accepted, "everything fit: the capacity did not bite");
    /* Reads of what was acknowledged go on. */
    if (acked_then > 0) {
        static uint8_t buf[4096];
        cr_assert_eq(plog_read_copy(log, 0, 1, UINT64_MAX, buf, sizeof(buf)), (int)b[0].len);
    }
    /* Nothing happens while the disk stays full, however long. */
    for (int k = 0; k < 5; k++)
        io_run(g_io, 2000 * 1000000ull);
    cr_assert(plog_disk_full(log));
    io_sim_set_capacity(g_io, 0); /* space freed */
    int done = 0;
    for (int k = 0; k < 100 && done < accepted; k++) {
        io_run(g_io, 500 * 1000000ull);
        done = 0;
        for (int i = 0; i < N; i++)
            done += a[i].calls;
    }
    cr_assert_eq(done, accepted, "%d of %d accepted appends acknowledged", done, accepted);
    cr_assert_not(plog_disk_full(log));
    cr_assert_eq(storage_disk_full_logs(g_st), 0);
    uint64_t off = 0, order = 0;
    static uint8_t buf[4096];
    for (int i = 0; i < N; i++) {
        if (b[i].data == NULL)
            continue;
        cr_assert_eq(a[i].result, 0);
        cr_assert_gt(a[i].order, order, "acknowledged out of order");
        order = a[i].order;
        cr_assert_eq(a[i].req.base_offset, off);
        cr_assert_eq(plog_read_copy(log, off, 1, UINT64_MAX, buf, sizeof(buf)), (int)b[i].len);
        cr_assert(tu_same_batch(buf, &b[i], off), "batch %d", i);
        off++;
    }
    cr_assert_eq(plog_end_offset(log), off);
    struct tu_batch more;
    cr_assert_eq(tu_build_append(g_io, log, &more, 1, 100, 999, 1000, NULL), 0);
    free(more.data);
    /* A failed fsync is different: sticky, whatever its errno. */
    io_sim_fail_nth(g_io, IO_SIM_OP_SYNC, 1, -ENOSPC);
    struct tu_batch last = tu_build(1, 100, 1000, 1000);
    cr_assert_eq(tu_append_wait(g_io, log, &last, NULL), -ENOSPC);
    cr_assert_not(plog_disk_full(log));
    struct tu_append t;
    cr_assert_eq(tu_append_start(log, &t, &last), RL_E_LOG_FAILED);
    plog_close(log);
    free(last.data);
    for (int i = 0; i < N; i++)
        free(b[i].data);
}

struct open_result {
    int calls, result;
    struct plog *log;
    bool clean;
};

static void opened(void *ctx, struct plog *log, int result,
                   const struct plog_recovery_report *rep)
{
    struct open_result *o = ctx;
    o->calls++;
    o->result = result;
    o->log = log;
    o->clean = rep->clean;
}

/* plog_open_async creates or recovers a log in the background and hands it over on the loop;
 * many opens are in flight at once; a bad directory fails through the callback. */
Test(storage, open_async)
{
    struct plog_config cfg;
    small_config(&cfg);
    enum { N = 40 };
    static struct open_result o[N];
    char sub[400];
    memset(o, 0, sizeof(o));
    for (int i = 0; i < N; i++) {
        snprintf(sub, sizeof(sub), "%s/t-%d", g_dir, i);
        cr_assert_eq(plog_open_async(g_st, sub, &cfg, opened, &o[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        cr_assert(tu_run_until(g_io, &o[i].calls, 1), "open %d never completed", i);
        cr_assert_eq(o[i].result, 0, "open %d: %s", i, rl_strerror(o[i].result));
        struct tu_batch b;
        cr_assert_eq(tu_build_append(g_io, o[i].log, &b, 1, 100, (uint64_t)i, 1000, NULL), 0);
        free(b.data);
    }
    for (int i = 0; i < N; i++)
        plog_close(o[i].log);
    for (int i = 0; i < N; i++) {
        snprintf(sub, sizeof(sub), "%s/t-%d", g_dir, i);
        memset(&o[i], 0, sizeof(o[i]));
        cr_assert_eq(plog_open_async(g_st, sub, &cfg, opened, &o[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        cr_assert(tu_run_until(g_io, &o[i].calls, 1));
        cr_assert_eq(o[i].result, 0);
        cr_assert(o[i].clean, "reopen %d was not clean", i);
        cr_assert_eq(plog_end_offset(o[i].log), 1);
    }
    /* The storage closes logs handed over by asynchronous opens like any other. */
    char file[400];
    snprintf(file, sizeof(file), "%s/a-file", g_dir);
    cr_assert_eq(tu_write_at(g_io, file, "x", 1, 0, true), 0);
    snprintf(sub, sizeof(sub), "%s/a-file/log", g_dir);
    struct open_result bad = {0};
    cr_assert_eq(plog_open_async(g_st, sub, &cfg, opened, &bad), 0);
    cr_assert(tu_run_until(g_io, &bad.calls, 1));
    cr_assert_lt(bad.result, 0);
    cr_assert_null(bad.log);
    cr_assert_eq(plog_open_async(g_st, sub, &(struct plog_config){0}, opened, &bad),
                 RL_E_INVALID_CONFIG);
}

/* Start and clean stop cost a few syncs and renames for the whole storage, however many logs
 * (two or three per partition before); a clean start trusts the record, and the record is
 * gone from the moment a storage has started, so a crash after that is never taken for a clean
 * stop. Counted through io. */
Test(storage, clean_stop_costs_a_few_syncs_in_all)
{
    enum { N = 300 };
    struct storage_options opt = {.max_open_files = 64, .state_dir = g_dir};
    struct plog_config cfg;
    plog_config_default(&cfg);
    char sub[400], rec[400];
    snprintf(rec, sizeof(rec), "%s/storage-clean", g_dir);
    static struct plog *logs[N];
    struct storage *st;
    cr_assert_eq(storage_open(g_io, &opt, &st), 0);
    for (int i = 0; i < N; i++) {
        snprintf(sub, sizeof(sub), "%s/p-%d", g_dir, i);
        cr_assert_eq(plog_open(st, sub, &cfg, NULL, &logs[i]), 0);
        struct tu_batch b;
        cr_assert_eq(tu_build_append(g_io, logs[i], &b, 2, 100, (uint64_t)i, 1000, NULL), 0);
        free(b.data);
    }
    storage_destroy(st);
    cr_assert(tu_exists(g_io, rec), "no record after a clean stop");

    struct io_file_stats before, after;
    io_file_stats(g_io, &before);
    cr_assert_eq(storage_open(g_io, &opt, &st), 0);
    cr_assert_not(tu_exists(g_io, rec), "the record outlived the start");
    int clean = 0;
    for (int i = 0; i < N; i++) {
        struct plog_recovery_report rep;
        snprintf(sub, sizeof(sub), "%s/p-%d", g_dir, i);
        cr_assert_eq(plog_open(st, sub, &cfg, &rep, &logs[i]), 0);
        clean += rep.clean;
        cr_assert_eq(plog_end_offset(logs[i]), 2);
    }
    storage_destroy(st);
    io_file_stats(g_io, &after);
    cr_assert_eq(clean, N, "%d of %d logs opened clean", clean, N);
    uint64_t syncs = (after.fsyncs - before.fsyncs) + (after.fdatasyncs - before.fdatasyncs) +
                     (after.dir_syncs - before.dir_syncs) + (after.fs_syncs - before.fs_syncs);
    uint64_t renames = after.renames - before.renames;
    printf("clean start and stop of %d logs (%s): %llu syncs, %llu renames\n", N, TU_BACKEND,
           (unsigned long long)syncs, (unsigned long long)renames);
    cr_assert_leq(syncs, 4, "%llu syncs for %d logs", (unsigned long long)syncs, N);
    cr_assert_leq(renames, 1, "%llu renames for %d logs", (unsigned long long)renames, N);

    /* Without its entry (a killed process writes none) a log is recovered unclean. */
    cr_assert_eq(storage_open(g_io, &opt, &st), 0);
    storage_debug_forget_clean(st);
    struct plog_recovery_report rep;
    snprintf(sub, sizeof(sub), "%s/p-%d", g_dir, 0);
    cr_assert_eq(plog_open(st, sub, &cfg, &rep, &logs[0]), 0);
    cr_assert_not(rep.clean);
    cr_assert_eq(plog_end_offset(logs[0]), 2);
    storage_destroy(st);
}

/* The same on a real file system that fills up: a 2 MiB tmpfs mounted for the test (skipped
 * where mounting is not allowed). A ballast file takes most of it; once the log has filled the
 * rest, deleting the ballast lets the waiting appends through by themselves. */
Test(storage, disk_full_on_a_real_small_file_system, .timeout = 120)
{
    if (io_is_sim(g_io))
        cr_skip_test("real file system only (test_storage)");
    char mnt[300];
    snprintf(mnt, sizeof(mnt), "%s/tmpfs", g_dir);
    cr_assert_eq(mkdir(mnt, 0755), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m") != 0) {
        rmdir(mnt);
        cr_skip_test("cannot mount a tmpfs here (%s)", strerror(errno));
    }
    char ballast[400], dir[400];
    snprintf(ballast, sizeof(ballast), "%s/ballast", mnt);
    snprintf(dir, sizeof(dir), "%s/log", mnt);
    static uint8_t junk[1 << 20];
    memset(junk, 0x5a, sizeof(junk));
    cr_assert_eq(tu_write_at(g_io, ballast, junk, sizeof(junk), 0, true), 0);
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 256 * 1024;
    struct plog *log;
    cr_assert_eq(plog_open(g_st, dir, &cfg, NULL, &log), 0);
    enum { N = 400 };
    static struct tu_append a[N];
    static struct tu_batch b[N];
    int accepted = 0;
    for (int i = 0; i < N && !plog_disk_full(log); i++) {
        b[i] = tu_build(1, 4000, (uint64_t)i, 1000 + i);
        int rc = tu_append_start(log, &a[i], &b[i]);
        cr_assert(rc == 0 || rc == RL_E_DISK_FULL, "append %d: %s", i, rl_strerror(rc));
        if (rc == 0)
            accepted++;
        uint64_t until = io_now_ns(g_io) + TU_DEADLINE_NS;
        while (rc == 0 && a[i].calls == 0 && !plog_disk_full(log) && io_now_ns(g_io) < until)
            io_run(g_io, 10 * 1000000ull);
    }
    cr_assert(plog_disk_full(log), "the 2 MiB file system never filled");
    cr_assert_eq(storage_disk_full_logs(g_st), 1);
    cr_assert_eq(io_path_unlink(g_io, ballast), 0);
    int done = 0;
    uint64_t deadline = io_now_ns(g_io) + TU_DEADLINE_NS;
    while (done < accepted && io_now_ns(g_io) < deadline) {
        io_run(g_io, 100 * 1000000ull);
        done = 0;
        for (int i = 0; i < N; i++)
            done += a[i].calls;
    }
    cr_assert_eq(done, accepted, "%d of %d accepted appends acknowledged", done, accepted);
    cr_assert_not(plog_disk_full(log));
    static uint8_t buf[8192];
    for (int i = 0; i < accepted; i++) {
        cr_assert_eq(a[i].result, 0, "append %d: %s", i, rl_strerror(a[i].result));
        cr_assert_eq(plog_read_copy(log, (uint64_t)i, 1, UINT64_MAX, buf, sizeof(buf)),
                     (int)b[i].len);
        cr_assert(tu_same_batch(buf, &b[i], (uint64_t)i));
    }
    plog_close(log);
    storage_debug_sync_background(g_st);
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
    for (int i = 0; i < N; i++)
        free(b[i].data);
}

static void truncated(void *ctx, int result)
{
    int *r = ctx;
    *r = result == 0 ? 1 : result;
}

/* Closes log, forgets that it was closed cleanly (as a crash would), reopens it and checks
 * that it holds b[0..n) of `records` records each, then closes it. */
static void check_after_unclean_reopen(struct plog *log, const struct plog_config *cfg,
                                       const struct tu_batch *b, int n, uint32_t records)
{
    plog_close(log);
    storage_debug_forget_clean(g_st);
    log = open_log(cfg, NULL);
    check_contents(log, b, n, records);
    plog_close(log);
}

/* truncate_to_async waits for the appends in flight (they are acknowledged first), refuses new
 * appends until it is done, hides the tail from readers as soon as it starts, cuts the files in
 * the background, and the cut survives a reopen after an unclean stop. */
Test(storage, truncate_to_async)
{
    struct plog_config cfg;
    small_config(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[30];
    append_n(log, b, 25, 2, 1000);
    static struct tu_append a[5];
    for (int i = 0; i < 5; i++) {
        b[25 + i] = tu_build(2, 300, (uint64_t)(25 + i), 2000);
        cr_assert_eq(tu_append_start(log, &a[i], &b[25 + i]), 0);
    }
    int state = 0;
    cr_assert_eq(plog_truncate_to_async(log, 20, truncated, &state), 0);
    cr_assert_eq(plog_truncate_to_async(log, 20, truncated, &state), RL_E_FULL);
    struct tu_append late;
    cr_assert_eq(tu_append_start(log, &late, &b[0]), RL_E_FULL, "appended during truncation");
    uint64_t deadline = io_now_ns(g_io) + TU_DEADLINE_NS;
    while (state == 0 && io_now_ns(g_io) < deadline)
        io_run(g_io, 10 * 1000000ull);
    cr_assert_eq(state, 1, "truncation: %s", rl_strerror(state));
    for (int i = 0; i < 5; i++)
        cr_assert(a[i].calls == 1 && a[i].result == 0, "append %d in flight was not kept", i);
    cr_assert_eq(plog_end_offset(log), 20);
    check_contents(log, b, 10, 2);
    cr_assert_eq(tu_append_wait(g_io, log, &b[10], NULL), 0);
    cr_assert_eq(plog_truncate_to_async(log, 23, truncated, &state), RL_E_OFFSET_OUT_OF_RANGE);
    check_after_unclean_reopen(log, &cfg, b, 11, 2);
    free_batches(b, 30);
}

/* A truncation asked for while the log-start checkpoint (plog_advance_start's background job)
 * is being written starts once that job is done, with nothing else happening on the log: the
 * job's completion must start it. (It did not: the truncation waited for an event that never
 * came, and the power-cut seeds 3234, 3830, ... found it.) */
Test(storage, a_truncation_waiting_for_the_log_start_checkpoint_runs_when_it_is_written)
{
    struct plog_config cfg;
    small_config(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[30];
    append_n(log, b, 30, 2, 1000);
    cr_assert_eq(plog_advance_start(log, 10), 0); /* queues the checkpoint job */
    int state = 0;
    cr_assert_eq(plog_truncate_to_async(log, 40, truncated, &state), 0);
    uint64_t deadline = io_now_ns(g_io) + 5000000000ull;
    while (state == 0 && io_now_ns(g_io) < deadline)
        io_run(g_io, 10 * 1000000ull);
    cr_assert_eq(state, 1, "the truncation never started (state %d)", state);
    cr_assert_eq(plog_end_offset(log), 40);
    plog_close(log);
    free_batches(b, 30);
}

/* A truncation into a finished segment removes its index files with the cut: they describe
 * batches that later appends replace with others. Kept, a power cut after the next roll made
 * the segment look sealed at recovery, the stale index was trusted, and a read at one of its
 * positions found no batch header ("data is corrupt"; the replication simulator's glue mode,
 * seed 3500125, found it). After the cut, new appends of other sizes, a roll and a reopen after
 * an unclean stop, every batch reads back. */
Test(storage, a_truncation_into_a_finished_segment_removes_its_index_files)
{
    struct plog_config cfg;
    small_config(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    struct tu_batch b[60];
    append_n(log, b, 60, 2, 1000);
    cr_assert_gt(plog_segment_count(log), 2);
    storage_debug_sync_background(g_st);
    char idx[600], tidx[600];
    snprintf(idx, sizeof(idx), "%s/%020d.index", g_dir, 0);
    snprintf(tidx, sizeof(tidx), "%s/%020d.timeindex", g_dir, 0);
    for (uint64_t until = io_now_ns(g_io) + TU_DEADLINE_NS;
         !tu_exists(g_io, idx) && io_now_ns(g_io) < until;)
        io_run(g_io, 10 * 1000000ull); /* the first segment's finish job saves them */
    cr_assert(tu_exists(g_io, idx), "the first segment's index was never saved");
    cr_assert_eq(plog_truncate_to(log, 10), 0);
    cr_assert_eq(plog_segment_count(log), 1);
    cr_assert(!tu_exists(g_io, idx) && !tu_exists(g_io, tidx),
              "the cut segment's index files are still there");
    /* Other batch sizes from the cut on, until the log rolls again. */
    for (int i = 5; i < 60; i++) {
        free(b[i].data);
        b[i] = tu_build(2, 50 + (size_t)(i * 53) % 900, (uint64_t)(1000 + i), 5000 + i);
        uint64_t base;
        cr_assert_eq(tu_append_wait(g_io, log, &b[i], &base), 0);
        cr_assert_eq(base, (uint64_t)i * 2);
    }
    cr_assert_gt(plog_segment_count(log), 1);
    check_after_unclean_reopen(log, &cfg, b, 60, 2);
    free_batches(b, 60);
}

/* Closing a log while the disk is full answers every append it still holds (never
 * acknowledged) with RL_E_DISK_FULL, so no caller waits forever; the next open recovers what
 * reached the disk. Simulated back-end. */
Test(storage, close_while_disk_full_answers_every_append)
{
    if (!io_is_sim(g_io))
        cr_skip_test("needs the simulated back-end's capacity (see test_storage_sim)");
    struct plog_config cfg;
    plog_config_default(&cfg);
    struct plog *log = open_log(&cfg, NULL);
    enum { N = 50 };
    static struct tu_append a[N];
    static struct tu_batch b[N];
    io_sim_set_capacity(g_io, io_sim_used_bytes(g_io) + 2 * 4096);
    int accepted = 0;
    for (int i = 0; i < N; i++) {
        b[i] = tu_build(1, 700, (uint64_t)i, 1000);
        if (tu_append_start(log, &a[i], &b[i]) == 0)
            accepted++;
        io_run(g_io, 0);
    }
    cr_assert(plog_disk_full(log));
    plog_close(log);
    int acked = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        if (a[i].calls == 0)
            continue;
        cr_assert_eq(a[i].calls, 1);
        acked += a[i].result == 0;
        refused += a[i].result == RL_E_DISK_FULL;
    }
    cr_assert_eq(acked + refused, accepted, "%d acked + %d refused of %d accepted", acked,
                 refused, accepted);
    cr_assert_gt(refused, 0);
    io_sim_set_capacity(g_io, 0);
    log = open_log(&cfg, NULL);
    cr_assert_eq(plog_end_offset(log), (uint64_t)acked, "recovery kept %llu of %d acked",
                 (unsigned long long)plog_end_offset(log), acked);
    plog_close(log);
    for (int i = 0; i < N; i++)
        free(b[i].data);
}
