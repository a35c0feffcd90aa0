/*
 * storage_testutil: helpers shared by the partition-log test programs (header-only, static):
 * scratch directories, batches built with the real codec, and bounded waits on the io ring.
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
#include "storage/plog.h"

#define TU_DEADLINE_NS (30ull * 1000000000ull)

static int tu_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static inline void tu_rm_rf(const char *path)
{
    nftw(path, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates a fresh scratch directory on a real file system (not tmpfs: O_DIRECT and
 * fallocate behave as in production). */
static inline void tu_mkdtemp(char *buf, size_t cap, const char *tag)
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

static inline off_t tu_file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

#endif
