/*
 * storage_testutil: helpers shared by the partition-log test programs (header-only, static):
 * the io back-end (io_uring, or the simulated one when the program is built with TU_SIM),
 * scratch directories and file access through io (so the same test runs on both back-ends),
 * batches built with the real codec, and bounded waits on the io ring.
 */
#ifndef RL_TESTS_STORAGE_TESTUTIL_H
#define RL_TESTS_STORAGE_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/err.h"
#include "io/io.h"
#include "io/io_sim.h"
#include "storage/plog.h"

#ifdef TU_SIM
#define TU_BACKEND "sim"
#else
#define TU_BACKEND "io_uring"
#endif

#define TU_DEADLINE_NS (30ull * 1000000000ull)

static int tu_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static inline void tu_rm_rf_real(const char *path)
{
    nftw(path, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates a fresh scratch directory on a real file system (not tmpfs: O_DIRECT and
 * fallocate behave as in production). */
static inline void tu_mkdtemp_real(char *buf, size_t cap, const char *tag)
{
    const char *base = getenv("RINGLOG_TEST_DIR");
    if (base == NULL)
        base = "/var/tmp";
    snprintf(buf, cap, "%s/rl_%s_XXXXXX", base, tag);
    if (mkdtemp(buf) == NULL) {
        snprintf(buf, cap, "/tmp/rl_%s_XXXXXX", tag);
        if (mkdtemp(buf) == NULL)
            abort();
    }
}

/* The io of a test program: io_uring, or the simulation (seeded by RINGLOG_SIM_SEED, default 1)
 * when built with TU_SIM. */
static inline struct io *tu_io_new(unsigned entries)
{
    int err = 0;
    struct io *io;
#ifdef TU_SIM
    const char *s = getenv("RINGLOG_SIM_SEED");
    struct io_sim_config cfg = {.seed = s ? strtoull(s, NULL, 0) : 1, .delay_permille = 100};
    (void)entries;
    io = io_create_sim(&cfg, &err);
#else
    io = io_create(entries, &err);
#endif
    if (io == NULL) {
        fprintf(stderr, "io_create (%s): %s\n", TU_BACKEND, strerror(-err));
        abort();
    }
    return io;
}

/* A fresh scratch directory: a real one (see tu_mkdtemp_real) or one in the simulation. */
static inline void tu_mkdtemp(struct io *io, char *buf, size_t cap, const char *tag)
{
    if (!io_is_sim(io)) {
        tu_mkdtemp_real(buf, cap, tag);
        return;
    }
    static unsigned n;
    io_dir_make(io, "/sim", 0755);
    snprintf(buf, cap, "/sim/rl_%s_%u", tag, ++n);
    if (io_dir_make(io, buf, 0755) != 0)
        abort();
}

struct tu_rm_ctx {
    struct io *io;
    const char *dir;
};

static inline void tu_rm_rf(struct io *io, const char *path);

static inline int tu_rm_cb_sim(void *arg, const char *name)
{
    struct tu_rm_ctx *c = arg;
    char child[1024];
    snprintf(child, sizeof(child), "%s/%s", c->dir, name);
    if (io_path_unlink(c->io, child) == -EISDIR)
        tu_rm_rf(c->io, child);
    return 0;
}

/* Removes a directory tree (files and directories below it). */
static inline void tu_rm_rf(struct io *io, const char *path)
{
    if (!io_is_sim(io)) {
        tu_rm_rf_real(path);
        return;
    }
    struct tu_rm_ctx c = {io, path};
    io_dir_list(io, path, tu_rm_cb_sim, &c);
    io_dir_remove(io, path);
}

static inline int64_t tu_file_size(struct io *io, const char *path)
{
    uint64_t size;
    return io_path_size(io, path, &size) == 0 ? (int64_t)size : -1;
}

static inline bool tu_exists(struct io *io, const char *path)
{
    return tu_file_size(io, path) >= 0;
}

/* Reads up to cap bytes of a file; returns the count or a negative code. */
static inline ssize_t tu_read_file(struct io *io, const char *path, void *buf, size_t cap)
{
    int fd = io_file_open(io, path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    ssize_t n = io_file_pread(io, fd, buf, cap, 0);
    io_file_close(io, fd);
    return n;
}

/* Writes bytes at off (creating the file; with trunc, replacing its content). */
static inline int tu_write_at(struct io *io, const char *path, const void *data, size_t len,
                              uint64_t off, bool trunc)
{
    int fd = io_file_open(io, path, O_WRONLY | O_CREAT | (trunc ? O_TRUNC : 0), 0644);
    if (fd < 0)
        return fd;
    ssize_t n = len ? io_file_pwrite(io, fd, data, len, off) : 0;
    io_file_close(io, fd);
    return n < 0 ? (int)n : 0;
}

static inline int tu_truncate(struct io *io, const char *path, uint64_t size)
{
    int fd = io_file_open(io, path, O_WRONLY, 0);
    if (fd < 0)
        return fd;
    int rc = io_file_truncate(io, fd, size);
    io_file_close(io, fd);
    return rc;
}

/* Xors one byte of a file with `flip`. */
static inline int tu_flip(struct io *io, const char *path, uint64_t off, uint8_t flip)
{
    int fd = io_file_open(io, path, O_RDWR, 0);
    uint8_t c;
    if (fd < 0)
        return fd;
    int rc = io_file_pread(io, fd, &c, 1, off) == 1 ? 0 : -EIO;
    c ^= flip;
    if (rc == 0 && io_file_pwrite(io, fd, &c, 1, off) != 1)
        rc = -EIO;
    io_file_close(io, fd);
    return rc;
}

struct tu_count {
    const char *suffix;
    int n;
};

static inline int tu_count_cb(void *ctx, const char *name)
{
    struct tu_count *c = ctx;
    size_t l = strlen(name), s = strlen(c->suffix);
    if (l >= s && strcmp(name + l - s, c->suffix) == 0)
        c->n++;
    return 0;
}

/* Files in dir whose names end with suffix. */
static inline int tu_count_files(struct io *io, const char *dir, const char *suffix)
{
    struct tu_count c = {suffix, 0};
    io_dir_list(io, dir, tu_count_cb, &c);
    return c.n;
}

/* Deterministic pseudo-random numbers (splitmix64), so a seed reproduces a run. */
static inline uint64_t tu_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A built batch owned by the test (malloc'ed copy). */
struct tu_batch {
    uint8_t *data;
    uint32_t len;
    uint32_t records;
};

/* Builds a batch of `records` records whose values are `value_len` bytes derived from `tag`,
 * with timestamps `ts`, ts+1, ... Aborts on failure (a test helper). */
static inline struct tu_batch tu_build(uint32_t records, size_t value_len, uint64_t tag,
                                       int64_t ts)
{
    static struct batch_builder *b;
    static uint8_t *val;
    static size_t val_cap;
    if (b == NULL)
        b = batch_builder_create(8u << 20, BATCH_CODEC_NONE, 0);
    if (value_len > val_cap) {
        free(val);
        val = malloc(value_len);
        val_cap = value_len;
    }
    batch_builder_reset(b, -1, -1, -1);
    for (uint32_t i = 0; i < records; i++) {
        uint64_t s = tag * 1000003u + i;
        for (size_t j = 0; j < value_len; j++)
            val[j] = (uint8_t)tu_rand(&s);
        char key[32];
        int klen = snprintf(key, sizeof(key), "k%llu-%u", (unsigned long long)tag, i);
        struct batch_record_in r = {.key = key, .key_len = (size_t)klen, .value = val,
                                    .value_len = value_len, .timestamp = ts + i};
        if (batch_builder_add(b, &r) != 0)
            abort();
    }
    const uint8_t *out;
    int len = batch_builder_finish(b, &out);
    if (len <= 0)
        abort();
    struct tu_batch tb = {malloc((size_t)len), (uint32_t)len, records};
    memcpy(tb.data, out, (size_t)len);
    return tb;
}

/* An append request with a completion record. */
struct tu_append {
    struct plog_append req;
    int calls;
    int result;
    uint64_t order;
};

static uint64_t tu_ack_counter;

static void tu_append_done(struct plog_append *req, int result)
{
    struct tu_append *a = req->ctx;
    a->calls++;
    a->result = result;
    a->order = ++tu_ack_counter;
}

static inline int tu_append_start(struct plog *log, struct tu_append *a, const struct tu_batch *b)
{
    memset(a, 0, sizeof(*a));
    a->req.batch = b->data;
    a->req.len = b->len;
    a->req.done = tu_append_done;
    a->req.ctx = a;
    return plog_append(log, &a->req);
}

/* Runs the ring until *counter reaches target or the deadline passes; returns true on success. */
static inline bool tu_run_until(struct io *io, const int *counter, int target)
{
    uint64_t deadline = io_now_ns(io) + TU_DEADLINE_NS;
    while (*counter < target && io_now_ns(io) < deadline)
        io_run(io, 50 * 1000000ull);
    return *counter >= target;
}

/* Appends one batch and waits for its acknowledgement. Returns the result. */
static inline int tu_append_wait(struct io *io, struct plog *log, const struct tu_batch *b,
                                 uint64_t *base)
{
    struct tu_append a;
    int rc = tu_append_start(log, &a, b);
    if (rc != 0)
        return rc;
    if (!tu_run_until(io, &a.calls, 1))
        return RL_E_TIMED_OUT;
    if (base != NULL)
        *base = a.req.base_offset;
    return a.result;
}

/* Builds a batch as tu_build does into *out (the caller frees out->data), appends it and waits
 * for its acknowledgement. Returns the append result, as tu_append_wait. */
static inline int tu_build_append(struct io *io, struct plog *log, struct tu_batch *out,
                                  uint32_t records, size_t value_len, uint64_t tag, int64_t ts,
                                  uint64_t *base)
{
    *out = tu_build(records, value_len, tag, ts);
    return tu_append_wait(io, log, out, base);
}

/* Compares a stored batch with the original: equal except the stamped base offset and epoch. */
static inline bool tu_same_batch(const uint8_t *stored, const struct tu_batch *orig,
                                 uint64_t base)
{
    uint64_t b;
    memcpy(&b, stored, 8);
    return b == base && memcmp(stored + 8, orig->data + 8, 4) == 0 &&
           memcmp(stored + 16, orig->data + 16, orig->len - 16) == 0;
}


#endif
