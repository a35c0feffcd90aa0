/*
 * hstore: term and vote of every group of a loop in one write-ahead file (see hstore.h).
 *
 * The table is open addressing over group ids (linear probing, grown at half load). Puts go to
 * `pend`, one record per group (a second put before the flush overwrites the first, found
 * through the slot's pend_gen/pend_pos); a flush swaps `pend` with `inflight` and writes it
 * with a linked fdatasync. Sequence numbers: every put takes ++put_seq; a flush covers the puts
 * up to the put_seq it started at, which becomes durable_seq when both ops complete.
 */
#include "replication/hstore.h"

#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define HSTORE_WAIT_NS (60ull * 1000000000ull) /* blocking waits give up after this */

#ifndef RAFT_PLANT_BUG
#define RAFT_PLANT_BUG 0
#endif
#define HSTORE_READ_CHUNK (256u << 10)

struct slot {
    uint64_t group;
    uint64_t term;
    uint32_t vote;
    bool used;
    uint32_t pend_pos;  /* its record in `pend`, when pend_gen is the current generation */
    uint64_t pend_gen;
};

struct buf {
    uint8_t *p;
    size_t len, cap;
};

struct hstore {
    struct io *io;
    char *dir;
    char *path;
    int fd;
    uint64_t end;          /* file bytes holding valid records */
    struct slot *slots;
    uint32_t cap, n;       /* table size (a power of two), groups held */
    struct buf pend, inflight;
    uint64_t gen;          /* generation of `pend` */
    uint64_t put_seq, durable_seq, flush_seq;
    bool busy;             /* a flush is in flight */
    int ops_left;
    int failed;
    uint64_t flushes;
    struct io_op wr, sync;
};

/* ---- records -------------------------------------------------------------------------- */

static void record_put(uint8_t *r, uint64_t group, uint64_t term, uint32_t vote)
{
    rl_store_le64(r, group);
    rl_store_le64(r + 8, term);
    rl_store_le32(r + 16, vote);
    rl_store_le32(r + 20, 0);
    rl_store_le64(r + 24, XXH3_64bits(r, 24));
}

static bool record_ok(const uint8_t *r)
{
    return rl_load_le64(r + 24) == XXH3_64bits(r, 24) && rl_load_le32(r + 20) == 0;
}

static int buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* ---- the table ------------------------------------------------------------------------ */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static struct slot *find(const struct hstore *hs, uint64_t group)
{
    for (uint32_t i = (uint32_t)mix(group) & (hs->cap - 1);; i = (i + 1) & (hs->cap - 1)) {
        struct slot *s = &hs->slots[i];
        if (!s->used || s->group == group)
            return s;
    }
}

static int grow_table(struct hstore *hs)
{
    uint32_t cap = hs->cap ? hs->cap * 2 : 1024;
    struct slot *old = hs->slots;
    uint32_t old_cap = hs->cap;
    hs->slots = calloc(cap, sizeof(*hs->slots));
    if (!hs->slots) {
        hs->slots = old;
        return -ENOMEM;
    }
    hs->cap = cap;
    for (uint32_t i = 0; i < old_cap; i++)
        if (old[i].used)
            *find(hs, old[i].group) = old[i];
    free(old);
    return 0;
}

/* The slot of `group`, created if needed. */
static int slot_of(struct hstore *hs, uint64_t group, struct slot **out)
{
    struct slot *s = hs->cap ? find(hs, group) : NULL;
    if (s && s->used) {
        *out = s;
        return 0;
    }
    if (hs->n >= HSTORE_MAX_GROUPS)
        return RL_E_LIMIT;
    if (2 * (hs->n + 1) > hs->cap) {
        int rc = grow_table(hs);
        if (rc < 0)
            return rc;
    }
    s = find(hs, group);
    memset(s, 0, sizeof(*s));
    s->group = group;
    s->used = true;
    hs->n++;
    *out = s;
    return 0;
}

struct raft_hard_state hstore_get(const struct hstore *hs, uint64_t group)
{
    struct raft_hard_state st = {0, RAFT_NONE};
    const struct slot *s = hs->cap ? find(hs, group) : NULL;
    if (s && s->used) {
        st.term = s->term;
        st.vote = s->vote;
    }
    return st;
}

/* ---- blocking helpers (open, close, rewrite) ------------------------------------------ */

/* Writes len bytes at position pos of fd and fdatasyncs (the io's synchronous file calls). */
static int write_sync(struct io *io, int fd, const void *p, size_t len, uint64_t pos)
{
    ssize_t n = io_file_pwrite(io, fd, p, len, pos);
    if (n < 0)
        return (int)n;
    return io_file_fdatasync(io, fd);
}

/* Reads the whole file into *b. */
static int read_all(struct hstore *hs, struct buf *b)
{
    for (;;) {
        int rc = buf_reserve(b, HSTORE_READ_CHUNK);
        if (rc < 0)
            return rc;
        ssize_t n = io_file_pread(hs->io, hs->fd, b->p + b->len, HSTORE_READ_CHUNK, b->len);
        if (n < 0)
            return (int)n;
        b->len += (size_t)n;
        if (n < HSTORE_READ_CHUNK)
            return 0;
    }
}

/* Waits for the flush in flight, if any (bounded). */
static void wait_idle(struct hstore *hs)
{
    uint64_t deadline = io_now_ns(hs->io) + HSTORE_WAIT_NS;
    while (hs->busy && io_now_ns(hs->io) < deadline)
        io_run(hs->io, 100 * 1000000ull);
}

/* ---- recovery ------------------------------------------------------------------------- */

/* Applies the file's records; the first bad one ends the valid part (a torn tail). */
static int replay(struct hstore *hs, const struct buf *b, uint64_t *valid)
{
    *valid = 0;
    if (b->len < HSTORE_RECORD_BYTES)
        return 0;
    if (!record_ok(b->p) || rl_load_le64(b->p) != HSTORE_MAGIC || rl_load_le64(b->p + 8) != 1)
        return RL_CORRUPT(hs->path, 0, -1, "not a raft hard-state file (bad header)");
    size_t k = HSTORE_RECORD_BYTES;
    for (; k + HSTORE_RECORD_BYTES <= b->len && record_ok(b->p + k); k += HSTORE_RECORD_BYTES) {
        struct slot *s;
        int rc = slot_of(hs, rl_load_le64(b->p + k), &s);
        if (rc < 0)
            return rc;
        s->term = rl_load_le64(b->p + k + 8);
        s->vote = rl_load_le32(b->p + k + 16);
    }
    if (k < b->len)
        RL_CORRUPT(hs->path, k, -1, "torn or damaged hard-state record; the file is cut there");
    *valid = k;
    return 0;
}

int hstore_open(struct io *io, const char *dir, struct hstore **out)
{
    struct hstore *hs = calloc(1, sizeof(*hs));
    int rc = -ENOMEM;
    struct buf b = {0};
    if (!hs)
        return rc;
    hs->io = io;
    hs->fd = -1;
    size_t n = strlen(dir) + sizeof(HSTORE_FILE) + 8;
    if (!(hs->dir = strdup(dir)) || !(hs->path = malloc(n)))
        goto fail;
    snprintf(hs->path, n, "%s/%s", dir, HSTORE_FILE);
    hs->fd = io_file_open(io, hs->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (hs->fd < 0) {
        rc = hs->fd;
        goto fail;
    }
    if ((rc = read_all(hs, &b)) < 0 || (rc = replay(hs, &b, &hs->end)) < 0)
        goto fail;
    if (hs->end == 0) { /* new (or cut back to nothing): write the header */
        uint8_t h[HSTORE_RECORD_BYTES];
        record_put(h, HSTORE_MAGIC, 1, 0);
        if ((rc = write_sync(io, hs->fd, h, sizeof(h), 0)) < 0 ||
            (rc = io_dir_sync(io, dir)) < 0)
            goto fail;
        hs->end = sizeof(h);
    }
    if (b.len > hs->end && (rc = io_file_truncate(io, hs->fd, hs->end)) < 0)
        goto fail;
    free(b.p);
    *out = hs;
    return 0;
fail:
    free(b.p);
    hstore_close(hs);
    return rc;
}

void hstore_close(struct hstore *hs)
{
    if (!hs)
        return;
    wait_idle(hs);
    if (hs->fd >= 0)
        io_file_close(hs->io, hs->fd);
    free(hs->slots);
    free(hs->pend.p);
    free(hs->inflight.p);
    free(hs->path);
    free(hs->dir);
    free(hs);
}

/* ---- puts and flushes ----------------------------------------------------------------- */

int64_t hstore_put(struct hstore *hs, uint64_t group, const struct raft_hard_state *st)
{
    struct slot *s;
    int rc = slot_of(hs, group, &s);
    if (rc < 0)
        return rc;
    s->term = st->term;
    s->vote = st->vote;
    if (s->pend_gen != hs->gen + 1) { /* generations start at 1: 0 means "not pending" */
        if ((rc = buf_reserve(&hs->pend, HSTORE_RECORD_BYTES)) < 0)
            return rc;
        s->pend_gen = hs->gen + 1;
        s->pend_pos = (uint32_t)(hs->pend.len / HSTORE_RECORD_BYTES);
        hs->pend.len += HSTORE_RECORD_BYTES;
    }
    record_put(hs->pend.p + (size_t)s->pend_pos * HSTORE_RECORD_BYTES, group, s->term, s->vote);
#if RAFT_PLANT_BUG == 8
    hs->durable_seq = hs->put_seq + 1; /* planted (tests/sim only): durable before its fsync */
#endif
    return (int64_t)++hs->put_seq;
}

static void flush_done(struct io_op *op, int result)
{
    struct hstore *hs = op->ctx;
    if (op == &hs->wr && result >= 0 && (size_t)result != hs->inflight.len)
        result = -EIO; /* a short write of a record file is a failed one */
    if (result < 0 && !hs->failed)
        hs->failed = result;
    if (--hs->ops_left > 0)
        return;
    hs->busy = false;
    if (hs->failed)
        return;
    hs->end += hs->inflight.len;
    hs->durable_seq = hs->flush_seq;
    hs->flushes++;
}

/* Rewrites the file with one record per group (every put included), when it has grown to many
 * times that. Blocks: a new file written and fdatasync'ed, renamed over, directory fsync'ed. */
static int rewrite(struct hstore *hs)
{
    struct buf b = {0};
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", hs->path);
    int rc = buf_reserve(&b, (size_t)(hs->n + 1) * HSTORE_RECORD_BYTES);
    int fd = rc < 0 ? -1 : io_file_open(hs->io, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                                         0644);
    if (rc == 0 && fd < 0)
        rc = fd;
    if (rc < 0)
        goto out;
    record_put(b.p, HSTORE_MAGIC, 1, 0);
    b.len = HSTORE_RECORD_BYTES;
    for (uint32_t i = 0; i < hs->cap; i++) {
        const struct slot *s = &hs->slots[i];
        if (!s->used)
            continue;
        record_put(b.p + b.len, s->group, s->term, s->vote);
        b.len += HSTORE_RECORD_BYTES;
    }
    if ((rc = write_sync(hs->io, fd, b.p, b.len, 0)) < 0)
        goto out;
    if ((rc = io_path_rename(hs->io, tmp, hs->path)) < 0 ||
        (rc = io_dir_sync(hs->io, hs->dir)) < 0)
        goto out;
    io_file_close(hs->io, hs->fd);
    hs->fd = fd;
    fd = -1;
    hs->end = b.len;
    hs->pend.len = 0; /* everything put is in the new file */
    hs->gen++;
    hs->durable_seq = hs->put_seq;
    hs->flushes++;
out:
    if (fd >= 0) {
        io_file_close(hs->io, fd);
        io_path_unlink(hs->io, tmp);
    }
    free(b.p);
    return rc;
}

int hstore_flush(struct hstore *hs)
{
    if (hs->failed)
        return hs->failed;
    if (hs->busy || hs->pend.len == 0)
        return 0;
    uint64_t records = hs->end / HSTORE_RECORD_BYTES;
    if (records > 4096 && records > (uint64_t)HSTORE_REWRITE_FACTOR * hs->n) {
        int rc = rewrite(hs);
        if (rc < 0)
            return hs->failed = rc;
        return 1;
    }
    struct buf t = hs->inflight;
    hs->inflight = hs->pend;
    hs->pend = t;
    hs->pend.len = 0;
    hs->gen++;
    hs->flush_seq = hs->put_seq;
    hs->busy = true;
    hs->ops_left = 2;
    hs->wr = (struct io_op){.done = flush_done, .ctx = hs};
    hs->sync = (struct io_op){.done = flush_done, .ctx = hs};
    io_prep_write(hs->io, &hs->wr, hs->fd, hs->inflight.p, hs->inflight.len, hs->end, IO_LINK);
    io_prep_fdatasync(hs->io, &hs->sync, hs->fd, 0);
    return 1;
}

uint64_t hstore_durable_seq(const struct hstore *hs)
{
    return hs->durable_seq;
}

uint64_t hstore_put_seq(const struct hstore *hs)
{
    return hs->put_seq;
}

uint64_t hstore_flushes(const struct hstore *hs)
{
    return hs->flushes;
}

uint64_t hstore_file_records(const struct hstore *hs)
{
    return hs->end / HSTORE_RECORD_BYTES;
}

int hstore_failed(const struct hstore *hs)
{
    return hs->failed;
}
