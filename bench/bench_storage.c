/*
 * bench_storage: how close the partition log gets to the disk, measured in one run on one file
 * system (BENCH_DIR, default /var/tmp/ringlog-bench; not tmpfs):
 *   1. the disk limit: raw sequential O_DIRECT writes through io_uring, 1 MiB, queue depth 16,
 *      one fdatasync at the end;
 *   2. plog appends of 1 MiB batches of incompressible data, flush policy none, one plog_sync at
 *      the end;
 *   3. plog appends of 16 KiB batches, flush policy batch, 16 appends kept outstanding (group
 *      commit);
 *   4. a raw loop of 16 KiB pwrite + fdatasync, one at a time.
 * The machine may be shared and its disk's speed drifts, so the phases run interleaved in
 * BENCH_ROUNDS rounds (default 8): 1, 2, 2, 1, ... and 3, 4, 3, 4, ...; each figure is the
 * median of its rounds (every round is printed too), so a neighbour's burst of I/O during one
 * slice does not decide a ratio. Each slice writes a fresh file or log, and the file system is
 * allowed to settle (background unlinks done, syncfs) before each slice.
 * It prints each figure and ends with
 *   storage: append-bw R1 of disk, group-commit R2 of raw fdatasync
 * where R1 = (2) / (1) and R2 = (3) / (4). BENCH_MB sets the bytes of phases 1 and 2 (default
 * 2048), BENCH_SYNC_OPS the operations of phases 3 and 4 (default 4000).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/err.h"
#include "io/io.h"
#include "storage/plog.h"
#include "storage/plog_debug.h"

#define QD 16
#define BIG (1u << 20)
#define SMALL (16u << 10)

static struct io *g_io;
static char g_dir[512];

static struct storage *g_st;

/* Lets the file system settle between phases, so one phase's cleanup (unlinking a 512 MiB
 * file frees blocks and journals) does not run inside the next one's measurement. */
static void settle(void)
{
    if (g_st != NULL)
        storage_debug_sync_background(g_st);
    int fd = open(g_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        syncfs(fd);
        close(fd);
    }
}

#define MAX_ROUNDS 64

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of n figures: one slice disturbed by a neighbour's burst of I/O moves it little. */
static double median(const double *v, int n)
{
    double s[MAX_ROUNDS];
    memcpy(s, v, (size_t)n * sizeof(*s));
    qsort(s, (size_t)n, sizeof(*s), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void print_rounds(const char *what, const double *v, int n)
{
    printf("%s:", what);
    for (int i = 0; i < n; i++)
        printf(" %.0f", v[i]);
    printf("\n");
}

static double now_s(void)
{
    return (double)io_now_ns(g_io) / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_storage: %s: %s\n", what, rl_strerror(rc));
    exit(1);
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i += 8) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t v = seed ^ (seed >> 29);
        memcpy(p + i, &v, n - i < 8 ? n - i : 8);
    }
}

struct raw_op {
    struct io_op op;
    int done;
    int res;
};

static void raw_done(struct io_op *op, int result)
{
    struct raw_op *r = op->ctx;
    r->done = 1;
    r->res = result;
}

/* Phase 1: writes `total` bytes; returns the seconds taken. */
static double bench_raw_direct(uint64_t total)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/raw-direct", g_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
    if (fd < 0)
        die("open raw O_DIRECT file", -errno);
    /* Reserve the blocks first (and set the size, so no write extends the file), as the log
     * does for its segments: this is the disk's limit, not the block allocator's nor ext4's
     * serialized extending writes. (Overwriting blocks that already hold data is faster
     * still; no append-only log that does not recycle its files can do that.) */
    if (fallocate(fd, 0, 0, (off_t)total) < 0 && errno != EOPNOTSUPP)
        die("fallocate", -errno);
    uint8_t *buf;
    if (posix_memalign((void **)&buf, 2u << 20, (size_t)BIG * QD) != 0)
        die("alloc", -ENOMEM);
    /* Huge pages, as the log's write buffers get: physically contiguous buffers reach the
     * device in fewer, larger requests. */
    (void)madvise(buf, (size_t)BIG * QD, MADV_HUGEPAGE);
    fill_random(buf, (size_t)BIG * QD, 1);
    struct raw_op ops[QD];
    memset(ops, 0, sizeof(ops));
    uint64_t issued = 0, completed = 0;
    double t0 = now_s();
    for (int i = 0; i < QD && issued < total; i++, issued += BIG) {
        ops[i] = (struct raw_op){.op = {.done = raw_done, .ctx = &ops[i], .user = issued}};
        io_prep_write(g_io, &ops[i].op, fd, buf + (size_t)i * BIG, BIG, issued, 0);
    }
    while (completed < total) {
        io_run(g_io, UINT64_MAX);
        for (int i = 0; i < QD; i++) {
            if (!ops[i].done)
                continue;
            if (ops[i].res != (int)BIG)
                die("raw write", ops[i].res < 0 ? ops[i].res : -EIO);
            completed += BIG;
            ops[i].done = 0;
            if (issued < total) {
                ops[i].op.user = issued;
                io_prep_write(g_io, &ops[i].op, fd, buf + (size_t)i * BIG, BIG, issued, 0);
                issued += BIG;
            }
        }
    }
    if (fdatasync(fd) < 0)
        die("fdatasync", -errno);
    double secs = now_s() - t0;
    close(fd);
    unlink(path);
    free(buf);
    return secs;
}

struct bench_append {
    struct plog_append req;
    int busy;
    int result;
};

static void bench_append_done(struct plog_append *req, int result)
{
    struct bench_append *a = req->ctx;
    a->busy = 0;
    a->result = result;
}

static struct plog *open_log(struct storage *st, const char *name, const char *policy)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.max_batch_bytes = 4u << 20;
    if (plog_parse_flush_policy(policy, &cfg) != 0)
        die("flush policy", RL_E_INVALID_CONFIG);
    struct plog *log;
    int rc = plog_open(st, path, &cfg, NULL, &log);
    if (rc < 0)
        die("plog_open", rc);
    return log;
}

/* Builds one batch of a single record with a value of value_len random bytes. */
static uint8_t *make_batch(size_t value_len, uint32_t *len)
{
    struct batch_builder *b = batch_builder_create(value_len + 4096, BATCH_CODEC_NONE, 0);
    uint8_t *val = malloc(value_len);
    fill_random(val, value_len, 7);
    batch_builder_reset(b, -1, -1, -1);
    struct batch_record_in r = {.value = val, .value_len = value_len, .timestamp = 1};
    if (b == NULL || batch_builder_add(b, &r) != 0)
        die("batch build", RL_E_INTERNAL);
    const uint8_t *out;
    int n = batch_builder_finish(b, &out);
    if (n < 0)
        die("batch finish", n);
    uint8_t *copy = malloc((size_t)n);
    memcpy(copy, out, (size_t)n);
    *len = (uint32_t)n;
    batch_builder_destroy(b);
    free(val);
    return copy;
}

/* Phase 2: appends about `total` batch bytes and syncs; returns seconds, *bytes the bytes. */
static double bench_plog_big(struct storage *st, uint64_t total, uint64_t *bytes)
{
    struct plog *log = open_log(st, "plog-big", "none");
    uint32_t len;
    uint8_t *batch = make_batch(BIG - 200, &len);
    enum { SLOTS = 64 };
    static struct bench_append a[SLOTS];
    memset(a, 0, sizeof(a));
    uint64_t appended = 0;
    double t0 = now_s();
    while (appended < total) {
        bool progressed = false;
        for (int i = 0; i < SLOTS && appended < total; i++) {
            if (a[i].busy)
                continue;
            if (a[i].result < 0)
                die("append", a[i].result);
            a[i].req = (struct plog_append){.batch = batch, .len = len,
                                            .done = bench_append_done, .ctx = &a[i]};
            int rc = plog_append(log, &a[i].req);
            if (rc == RL_E_FULL)
                break;
            if (rc < 0)
                die("plog_append", rc);
            a[i].busy = 1;
            appended += len;
            progressed = true;
            /* Reap completions between 1 MiB copies, as an event loop handling one request at
             * a time would: writes that finished are then replaced at once instead of after
             * a whole burst of copies (measured: ~15% of the bandwidth). */
            io_run(g_io, 0);
        }
        io_run(g_io, progressed ? 0 : UINT64_MAX);
    }
    int rc = plog_sync(log);
    if (rc < 0)
        die("plog_sync", rc);
    double secs = now_s() - t0;
    plog_delete(log);
    free(batch);
    *bytes = appended;
    return secs;
}

/* Phase 3: `ops` acknowledged appends; returns the seconds taken. */
static double bench_plog_group(struct storage *st, int ops)
{
    struct plog *log = open_log(st, "plog-group", "batch");
    uint32_t len;
    uint8_t *batch = make_batch(SMALL - 120, &len);
    struct bench_append a[QD];
    memset(a, 0, sizeof(a));
    int started = 0, acked = 0;
    double t0 = now_s();
    while (acked < ops) {
        for (int i = 0; i < QD && started < ops; i++) {
            if (a[i].busy)
                continue;
            a[i].req = (struct plog_append){.batch = batch, .len = len,
                                            .done = bench_append_done, .ctx = &a[i]};
            int rc = plog_append(log, &a[i].req);
            if (rc < 0)
                die("plog_append", rc);
            a[i].busy = 1;
            started++;
        }
        io_run(g_io, UINT64_MAX);
        acked = started;
        for (int i = 0; i < QD; i++) {
            acked -= a[i].busy;
            if (!a[i].busy && a[i].result < 0)
                die("append", a[i].result);
        }
    }
    double secs = now_s() - t0;
    plog_delete(log);
    free(batch);
    return secs;
}

/* Phase 4: `ops` write+fdatasync operations; returns the seconds taken. With direct, the
 * same loop through O_DIRECT into a preallocated file (printed for reference only). */
static double bench_raw_fsync(int ops, bool direct)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/raw-fsync", g_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | (direct ? O_DIRECT : 0), 0644);
    if (fd < 0)
        die("open raw file", -errno);
    if (direct && fallocate(fd, 0, 0, (off_t)ops * SMALL) < 0)
        die("fallocate", -errno);
    uint8_t *buf;
    if (posix_memalign((void **)&buf, 4096, SMALL) != 0)
        die("alloc", -ENOMEM);
    fill_random(buf, SMALL, 3);
    double t0 = now_s();
    for (int i = 0; i < ops; i++) {
        if (pwrite(fd, buf, SMALL, (off_t)i * SMALL) != (ssize_t)SMALL)
            die("pwrite", -errno);
        if (fdatasync(fd) < 0)
            die("fdatasync", -errno);
    }
    double secs = now_s() - t0;
    close(fd);
    unlink(path);
    free(buf);
    return secs;
}

int main(void)
{
    int err = 0;
    const char *dir = getenv("BENCH_DIR");
    const char *mb = getenv("BENCH_MB");
    const char *sops = getenv("BENCH_SYNC_OPS");
    uint64_t total = (uint64_t)(mb ? atoi(mb) : 2048) << 20;
    int ops = sops ? atoi(sops) : 4000;
    snprintf(g_dir, sizeof(g_dir), "%s", dir ? dir : "/var/tmp/ringlog-bench");
    mkdir(g_dir, 0755);
    g_io = io_create(256, &err);
    if (g_io == NULL)
        die("io_create", err);
    struct storage *st;
    int rc = storage_create(g_io, 256, &st);
    if (rc < 0)
        die("storage_create", rc);
    const char *rs = getenv("BENCH_ROUNDS");
    int rounds = rs ? atoi(rs) : 8;
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = rounds < 1 ? 1 : MAX_ROUNDS;
    printf("storage bench in %s: %llu MiB sequential, %d sync ops, %d interleaved rounds\n",
           g_dir, (unsigned long long)(total >> 20), ops, rounds);
    fflush(stdout);
    uint64_t slice = total / (uint64_t)rounds / BIG * BIG;
    double raw[MAX_ROUNDS], big[MAX_ROUNDS], grp[MAX_ROUNDS], fsy[MAX_ROUNDS], dfsy[MAX_ROUNDS];
    g_st = st;
    /* Odd rounds run the two phases in the other order, so neither always follows the
     * other's cleanup. */
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 2; k++) {
            settle();
            if ((k == 0) == (r % 2 == 0)) {
                raw[r] = (double)slice / bench_raw_direct(slice) / 1e6;
            } else {
                uint64_t b = 0;
                double secs = bench_plog_big(st, slice, &b);
                big[r] = (double)b / secs / 1e6;
            }
        }
    }
    double raw_bw = median(raw, rounds), plog_bw = median(big, rounds);
    printf("1. raw O_DIRECT io_uring writes (1 MiB, QD %d, fdatasync at end): %.0f MB/s\n", QD,
           raw_bw);
    printf("2. plog appends, 1 MiB batches, flush none, one sync at end:      %.0f MB/s\n",
           plog_bw);
    print_rounds("   rounds, raw MB/s", raw, rounds);
    print_rounds("   rounds, plog MB/s", big, rounds);
    fflush(stdout);
    int per = ops / rounds > 0 ? ops / rounds : 1;
    for (int r = 0; r < rounds; r++) {
        settle();
        grp[r] = per / bench_plog_group(st, per);
        settle();
        fsy[r] = per / bench_raw_fsync(per, false);
        settle();
        dfsy[r] = per / bench_raw_fsync(per, true);
    }
    double group = median(grp, rounds), rawsync = median(fsy, rounds);
    double dsync = median(dfsy, rounds);
    printf("3. plog appends, 16 KiB batches, flush batch, %d outstanding:     %.0f appends/s\n",
           QD, group);
    printf("4. raw 16 KiB pwrite + fdatasync, one at a time:                 %.0f ops/s\n",
           rawsync);
    print_rounds("   rounds, group commit appends/s", grp, rounds);
    print_rounds("   rounds, raw fdatasync ops/s", fsy, rounds);
    printf("   (for reference: the same loop with O_DIRECT into a preallocated file: %.0f ops/s;"
           " group commit is %.2f of it)\n",
           dsync, group / dsync);
    storage_destroy(st);
    io_destroy(g_io);
    rmdir(g_dir);
    printf("storage: append-bw %.2f of disk, group-commit %.2f of raw fdatasync\n",
           plog_bw / raw_bw, group / rawsync);
    return 0;
}
