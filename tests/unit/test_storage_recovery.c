/* storage recovery: a log damaged by one flipped byte at 1,000 seeded random positions (and at
 * every header field) always reopens, serves only whole valid batches, keeps every batch before
 * the damage, and reports the cut; damage where good data must be (a sealed segment, or any
 * segment after a clean stop) is contained: reported as a damaged range, reads of it fail with
 * RL_E_CORRUPT naming it, and every batch after it stays. RINGLOG_SEED=<n> replays a run; the
 * seed is printed. Built twice: on io_uring and (test_storage_recovery_sim) on the simulation. */
#include <criterion/criterion.h>
#include <time.h>

#include "storage/plog_debug.h"
#include "storage_testutil.h"

#define POSITIONS 1000
#define NBATCH 40

static struct io *g_io;
static struct storage *g_st;
static char g_root[256], g_src[300], g_work[300];

static void setup(void)
{
    g_io = tu_io_new(64);
    cr_assert_eq(storage_create(g_io, 16, &g_st), 0);
    tu_mkdtemp(g_io, g_root, sizeof(g_root), "recovery");
    snprintf(g_src, sizeof(g_src), "%s/src", g_root);
    snprintf(g_work, sizeof(g_work), "%s/work", g_root);
}

static void teardown(void)
{
    storage_destroy(g_st);
    tu_rm_rf(g_io, g_root);
    io_destroy(g_io);
}

TestSuite(recovery, .init = setup, .fini = teardown);

static uint64_t test_seed(void)
{
    const char *s = getenv("RINGLOG_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
    printf("recovery: seed %llu (replay with RINGLOG_SEED=%llu)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    fflush(stdout);
    return seed;
}

struct original {
    struct tu_batch b[NBATCH];
    uint64_t pos[NBATCH + 1]; /* file position of each batch; pos[NBATCH] = file size */
    uint8_t *file;
    size_t size;
};

/* Builds a one-segment log of NBATCH batches (varied sizes, 1-4 records), closes it cleanly and
 * keeps a copy of the segment bytes. */
static void build_original(struct original *o, uint64_t *seed)
{
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.index_interval_bytes = 1024;
    struct plog *log;
    cr_assert_eq(plog_open(g_st, g_src, &cfg, NULL, &log), 0);
    uint64_t pos = 0;
    for (int i = 0; i < NBATCH; i++) {
        uint32_t records = 1 + (uint32_t)(tu_rand(seed) % 4);
        o->b[i] = tu_build(records, 20 + tu_rand(seed) % 900, tu_rand(seed), 1000 + i);
        o->pos[i] = pos;
        pos += o->b[i].len;
        cr_assert_eq(tu_append_wait(g_io, log, &o->b[i], NULL), 0);
    }
    o->pos[NBATCH] = pos;
    plog_close(log);
    char path[400];
    snprintf(path, sizeof(path), "%s/%020d.log", g_src, 0);
    cr_assert_geq(tu_file_size(g_io, path), (int64_t)pos);
    o->size = (size_t)pos; /* the batches; a clean close leaves the preallocation after them */
    o->file = malloc(o->size);
    cr_assert_eq(tu_read_file(g_io, path, o->file, o->size), (ssize_t)o->size);
}

static void write_file(const char *path, const uint8_t *data, size_t len)
{
    cr_assert_eq(tu_write_at(g_io, path, data, len, 0, true), 0, "%s", path);
}

/* Sets up the work directory as the original after an unclean stop (no clean marker), with
 * byte `pos` of the segment xor-ed with `flip`. Stale index files are kept when keep_index. */
static void damaged_copy(const struct original *o, size_t pos, uint8_t flip, bool keep_index)
{
    char path[400], src[400];
    tu_rm_rf(g_io, g_work);
    cr_assert_eq(io_dir_make(g_io, g_work, 0755), 0);
    uint8_t *copy = malloc(o->size);
    memcpy(copy, o->file, o->size);
    copy[pos] ^= flip;
    snprintf(path, sizeof(path), "%s/%020d.log", g_work, 0);
    write_file(path, copy, o->size);
    free(copy);
    if (keep_index) {
        static const char *const ext[] = {".index", ".timeindex"};
        for (int i = 0; i < 2; i++) {
            snprintf(src, sizeof(src), "%s/%020d%s", g_src, 0, ext[i]);
            snprintf(path, sizeof(path), "%s/%020d%s", g_work, 0, ext[i]);
            static uint8_t buf[1 << 16];
            ssize_t n = tu_read_file(g_io, src, buf, sizeof(buf));
            write_file(path, buf, (size_t)(n > 0 ? n : 0));
        }
    }
}

/* Which batch holds byte pos. */
static int batch_at(const struct original *o, size_t pos)
{
    int i = 0;
    while (o->pos[i + 1] <= pos)
        i++;
    return i;
}

/* Opens the damaged copy and checks the recovery promises for damage at `pos`. */
static void check_recovery(const struct original *o, size_t pos, uint64_t seed, int round)
{
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.index_interval_bytes = 1024;
    struct plog_recovery_report rep;
    struct plog *log = NULL;
    int rc = plog_open(g_st, g_work, &cfg, &rep, &log);
    cr_assert_eq(rc, 0, "seed %llu round %d pos %zu: open failed: %s", (unsigned long long)seed,
                 round, pos, rl_strerror(rc));
    int k = batch_at(o, pos);
    size_t in_batch = pos - o->pos[k];
    /* The leader epoch (bytes 12-15) is outside the checksum by design, so the leader can
     * stamp it without rehashing; damage there is not detectable and the batch stays. */
    bool undetectable = in_batch >= 12 && in_batch < 16;
    int keep = undetectable ? NBATCH : k;
    uint64_t records = 0;
    for (int i = 0; i < keep; i++)
        records += o->b[i].records;
    cr_assert_eq(plog_end_offset(log), records,
                 "seed %llu round %d: damage at %zu (batch %d, byte %zu): end %llu, want %llu",
                 (unsigned long long)seed, round, pos, k, in_batch,
                 (unsigned long long)plog_end_offset(log), (unsigned long long)records);
    if (!undetectable) {
        cr_assert_eq(rep.truncated_at_position, (int64_t)o->pos[k], "seed %llu round %d",
                     (unsigned long long)seed, round);
        cr_assert_eq(rep.bytes_truncated, o->size - o->pos[k]);
        cr_assert_neq(rep.truncated_reason[0], '\0');
    }
    /* Read everything back: whole, valid batches, identical to the originals, in order. */
    static uint8_t buf[1 << 16];
    uint64_t off = 0;
    for (int i = 0; i < keep; i++) {
        int n = plog_read_copy(log, off, 1, UINT64_MAX, buf, sizeof(buf));
        cr_assert_eq(n, (int)o->b[i].len, "seed %llu round %d batch %d",
                     (unsigned long long)seed, round, i);
        cr_assert_eq(batch_validate(buf, (size_t)n, NULL), 0);
        if (!(undetectable && i == k))
            cr_assert_eq(memcmp(buf, o->file + o->pos[i], (size_t)n), 0,
                         "seed %llu round %d: batch %d changed", (unsigned long long)seed, round,
                         i);
        off += o->b[i].records;
    }
    struct plog_slice s;
    cr_assert_eq(plog_read(log, off, 1 << 20, UINT64_MAX, &s), 0);
    cr_assert_eq(s.len, 0, "served bytes past the cut");
    /* Delete rather than close: a clean close costs several fsyncs, 1,000 times over. */
    cr_assert_eq(plog_delete(log), 0);
}

/* 1,000 single-byte corruptions at seeded random positions, half with stale index files. */
Test(recovery, single_byte_corruption_at_random_positions)
{
    uint64_t seed = test_seed();
    uint64_t state = seed;
    struct original o;
    build_original(&o, &state);
    for (int round = 0; round < POSITIONS; round++) {
        size_t pos = (size_t)(tu_rand(&state) % o.size);
        uint8_t flip = (uint8_t)(1 + tu_rand(&state) % 255);
        damaged_copy(&o, pos, flip, round % 2 == 0);
        check_recovery(&o, pos, seed, round);
    }
    for (int i = 0; i < NBATCH; i++)
        free(o.b[i].data);
    free(o.file);
}

/* Every byte of one batch's header, damaged in turn, is caught (except the leader epoch). */
Test(recovery, every_header_byte)
{
    uint64_t state = 42;
    struct original o;
    build_original(&o, &state);
    int k = NBATCH / 2;
    for (size_t b = 0; b < RL_BATCH_HEADER_SIZE; b++) {
        damaged_copy(&o, o.pos[k] + b, 0x5a, false);
        check_recovery(&o, o.pos[k] + b, 42, (int)b);
    }
    for (int i = 0; i < NBATCH; i++)
        free(o.b[i].data);
    free(o.file);
}

/* Builds a log of n one-record batches of ~1000 bytes in g_src with 8 KiB segments (about
 * seven batches each) and closes it. */
static void build_segments(struct tu_batch *b, int n, struct plog_config *cfg)
{
    plog_config_default(cfg);
    cfg->segment_bytes = 8192;
    struct plog *log;
    cr_assert_eq(plog_open(g_st, g_src, cfg, NULL, &log), 0);
    for (int i = 0; i < n; i++)
        cr_assert_eq(tu_build_append(g_io, log, &b[i], 1, 1000, (uint64_t)i, 1000, NULL), 0);
    cr_assert_geq(plog_segment_count(log), 3);
    plog_close(log);
}

/* Reads every offset of [lo, hi): each equals its batch, except those in [bad, bad_end),
 * which fail with RL_E_CORRUPT naming exactly that range. */
static void check_range(struct plog *log, const struct tu_batch *b, uint64_t lo, uint64_t hi,
                        uint64_t bad, uint64_t bad_end)
{
    static uint8_t buf[1 << 16];
    for (uint64_t off = lo; off < hi; off++) {
        if (off >= bad && off < bad_end) {
            struct plog_slice s;
            cr_assert_eq(plog_read(log, off, 1 << 20, UINT64_MAX, &s), RL_E_CORRUPT,
                         "offset %llu in the damaged range", (unsigned long long)off);
            cr_assert_eq(s.first_offset, bad);
            cr_assert_eq(s.next_offset, bad_end);
            continue;
        }
        int len = plog_read_copy(log, off, 1, UINT64_MAX, buf, sizeof(buf));
        cr_assert_eq(len, (int)b[off].len, "offset %llu: %s", (unsigned long long)off,
                     rl_strerror(len));
        cr_assert(tu_same_batch(buf, &b[off], off), "offset %llu changed",
                  (unsigned long long)off);
    }
    /* A slice read from before the range stops at it. */
    if (bad > lo) {
        int len = plog_read_copy(log, lo, 1 << 20, UINT64_MAX, buf, sizeof(buf));
        cr_assert_gt(len, 0);
        uint64_t off = lo;
        for (int at = 0; at < len; off++)
            at += (int)b[off].len;
        cr_assert_leq(off, bad, "a slice reached into the damaged range");
    }
}

static void check_contained(struct plog *log, const struct tu_batch *b, int n, uint64_t bad,
                            uint64_t bad_end)
{
    check_range(log, b, 0, (uint64_t)n, bad, bad_end);
}

/* One flipped byte in a sealed segment's tail (the part recovery verifies after an unclean
 * stop) is contained: reported as a damaged range of exactly that batch, every later batch and
 * segment kept, the log appends on, and the range is still known after the next (clean) open.
 * Damage earlier in the segment, which recovery does not read, is found by a reader and handed
 * to plog_report_damage, which contains it the same way. */
Test(recovery, damage_in_a_sealed_segment_is_contained)
{
    enum { N = 30 };
    struct tu_batch b[N];
    struct plog_config cfg;
    build_segments(b, N, &cfg);
    uint32_t segs_before = (uint32_t)tu_count_files(g_io, g_src, ".log");
    storage_debug_forget_clean(g_st);
    char path[400];
    snprintf(path, sizeof(path), "%s/%020d.log", g_src, 0);
    uint64_t pos5 = 0;
    for (int i = 0; i < 5; i++)
        pos5 += b[i].len;
    cr_assert_eq(tu_flip(g_io, path, pos5 + 500, 0x40), 0); /* batch 5, after the last entry */
    cr_assert_eq(tu_flip(g_io, path, b[0].len + b[1].len + 500, 0x40), 0); /* batch 2 */
    struct plog_recovery_report rep;
    struct plog *log;
    cr_assert_eq(plog_open(g_st, g_src, &cfg, &rep, &log), 0);
    cr_assert_eq(plog_end_offset(log), N, "data after the damage was lost");
    cr_assert_eq(plog_segment_count(log), segs_before);
    cr_assert_eq(rep.damaged_ranges, 1);
    cr_assert_eq(rep.damaged_offset, 5);
    cr_assert_eq(rep.damaged_end_offset, 6);
    cr_assert_eq(rep.damaged_bytes, b[5].len);
    cr_assert_eq(plog_damaged_ranges(log), 1);
    /* Batch 2 is served as stored; its reader finds the bad checksum and reports it. */
    static uint8_t buf[1 << 16];
    int len = plog_read_copy(log, 2, 1, UINT64_MAX, buf, sizeof(buf));
    cr_assert_eq(len, (int)b[2].len);
    cr_assert_neq(batch_validate(buf, (size_t)len, NULL), 0);
    uint64_t from = 0, to = 0;
    cr_assert_eq(plog_report_damage(log, 2, &from, &to), RL_E_CORRUPT);
    cr_assert_eq(from, 2);
    cr_assert_eq(to, 3);
    cr_assert_eq(plog_report_damage(log, 3, &from, &to), 0, "a good batch was reported bad");
    cr_assert_eq(plog_damaged_ranges(log), 2);
    check_range(log, b, 0, 5, 2, 3);
    check_range(log, b, 3, N, 5, 6);
    struct tu_batch extra;
    uint64_t base;
    cr_assert_eq(tu_build_append(g_io, log, &extra, 1, 100, 99, 1000, &base), 0);
    cr_assert_eq(base, N);
    plog_close(log);
    cr_assert_eq(plog_open(g_st, g_src, &cfg, &rep, &log), 0);
    cr_assert(rep.clean);
    cr_assert_eq(rep.damaged_ranges, 2, "a range was forgotten");
    check_range(log, b, 0, 5, 2, 3);
    check_range(log, b, 3, N, 5, 6);
    plog_close(log);
    free(extra.data);
    for (int i = 0; i < N; i++)
        free(b[i].data);
}

/* Damage at the end of a sealed segment and a whole segment file lost: each becomes a damaged
 * range up to the next segment's base; every later segment stays. */
Test(recovery, damage_at_a_segment_end_and_a_lost_segment)
{
    enum { N = 30 };
    struct tu_batch b[N];
    struct plog_config cfg;
    build_segments(b, N, &cfg);
    storage_debug_forget_clean(g_st);
    /* Segment 0 ends before the base of segment 1; damage its last batch's last byte. */
    uint64_t pos = 0;
    int k = 0;
    char path[400];
    snprintf(path, sizeof(path), "%s/%020d.log", g_src, 0);
    int64_t size0 = tu_file_size(g_io, path);
    while (pos + b[k].len < (uint64_t)size0)
        pos += b[k++].len;
    cr_assert_eq(tu_flip(g_io, path, pos + b[k].len - 1, 0xff), 0);
    uint64_t seg1 = (uint64_t)k + 1;
    /* Lose segment 2's file. */
    uint64_t seg2 = 0, seg3 = 0;
    for (uint64_t o = seg1 + 1; o < N && seg3 == 0; o++) {
        char p2[400];
        snprintf(p2, sizeof(p2), "%s/%020llu.log", g_src, (unsigned long long)o);
        if (tu_exists(g_io, p2)) {
            if (seg2 == 0)
                seg2 = o;
            else
                seg3 = o;
        }
    }
    cr_assert(seg2 > 0 && seg3 > 0);
    snprintf(path, sizeof(path), "%s/%020llu.log", g_src, (unsigned long long)seg2);
    cr_assert_eq(io_path_unlink(g_io, path), 0);
    struct plog_recovery_report rep;
    struct plog *log;
    cr_assert_eq(plog_open(g_st, g_src, &cfg, &rep, &log), 0);
    cr_assert_eq(plog_end_offset(log), N);
    cr_assert_eq(rep.damaged_ranges, 2);
    cr_assert_eq(plog_damaged_ranges(log), 2);
    check_contained(log, b, (int)seg2, (uint64_t)k, seg1);
    struct plog_slice s;
    cr_assert_eq(plog_read(log, seg2, 1, UINT64_MAX, &s), RL_E_CORRUPT);
    cr_assert_eq(s.first_offset, seg2);
    cr_assert_eq(s.next_offset, seg3);
    static uint8_t buf[1 << 16];
    for (uint64_t o = seg3; o < N; o++) {
        cr_assert_eq(plog_read_copy(log, o, 1, UINT64_MAX, buf, sizeof(buf)), (int)b[o].len);
        cr_assert(tu_same_batch(buf, &b[o], o));
    }
    plog_close(log);
    for (int i = 0; i < N; i++)
        free(b[i].data);
}

/* After a clean stop of a whole storage (the storage-wide record, as ringlogd does), one
 * damaged byte in the middle of the active segment (what stopped __consumer_offsets from being
 * replayed) is found at the next start (the active segment is always verified), contained, and
 * the log still opens clean with every later batch. */
Test(recovery, damage_in_the_active_segment_after_a_clean_stop)
{
    enum { N = 10 };
    struct tu_batch b[N];
    struct storage_options opt = {.max_open_files = 16, .state_dir = g_root};
    struct storage *st;
    cr_assert_eq(storage_open(g_io, &opt, &st), 0);
    struct plog_config cfg;
    plog_config_default(&cfg);
    struct plog *log;
    cr_assert_eq(plog_open(st, g_src, &cfg, NULL, &log), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(tu_build_append(g_io, log, &b[i], 1, 700, (uint64_t)i, 1000, NULL), 0);
    storage_destroy(st); /* closes the log cleanly and writes the record */
    char path[400];
    snprintf(path, sizeof(path), "%s/%020d.log", g_src, 0);
    uint64_t pos = 0;
    for (int i = 0; i < 5; i++)
        pos += b[i].len;
    cr_assert_eq(tu_flip(g_io, path, pos + 300, 0x01), 0); /* batch 5 */
    cr_assert_eq(storage_open(g_io, &opt, &st), 0);
    struct plog_recovery_report rep;
    cr_assert_eq(plog_open(st, g_src, &cfg, &rep, &log), 0);
    cr_assert(rep.clean, "the clean-shutdown record was not used");
    cr_assert_eq(plog_end_offset(log), N);
    cr_assert_eq(rep.damaged_ranges, 1);
    check_contained(log, b, N, 5, 6);
    struct tu_batch extra;
    uint64_t base;
    cr_assert_eq(tu_build_append(g_io, log, &extra, 1, 100, 99, 1000, &base), 0);
    cr_assert_eq(base, N);
    storage_destroy(st);
    free(extra.data);
    for (int i = 0; i < N; i++)
        free(b[i].data);
}
