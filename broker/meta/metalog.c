/*
 * metalog: see metalog.h. The whole file is read at open (it is small: one record per topic
 * change) and replayed from memory.
 */
#include "broker/meta/metalog.h"
#include "common/endian.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "common/err.h"
#include "common/log.h"
#include "io/io.h"

#define METALOG_MAGIC "RLMETA01"
#define METALOG_MAGIC_BYTES 8u
#define METALOG_REC_HEADER 12u

struct metalog {
    struct io *io;
    int fd;
    uint64_t size;
    bool failed;
    char path[4096];
};

static uint64_t metalog_checksum(const uint8_t *len_field, const uint8_t *payload, uint32_t len)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, len_field, 4);
    XXH3_64bits_update(&st, payload, len);
    return XXH3_64bits_digest(&st);
}

static int metalog_write_all(struct metalog *ml, const uint8_t *buf, size_t len, uint64_t pos)
{
    ssize_t n = io_file_pwrite(ml->io, ml->fd, buf, len, pos);
    return n < 0 ? (int)n : 0;
}

static int metalog_read_file(struct metalog *ml, uint8_t **out, uint64_t *len)
{
    uint64_t size = 0;
    int rc = io_file_size(ml->io, ml->fd, &size);
    if (rc)
        return rc;
    uint8_t *buf = malloc((size_t)size + 1);
    if (!buf)
        return -ENOMEM;
    ssize_t got = io_file_pread(ml->io, ml->fd, buf, (size_t)size, 0);
    if (got < 0 || (uint64_t)got != size) {
        free(buf);
        return got < 0 ? (int)got : -EIO;
    }
    *out = buf;
    *len = size;
    return 0;
}

/* The record at pos: 1 when whole and checked, 0 when its bytes do not check, -1 when it runs
 * past the end of the file (a short tail). */
static int metalog_record_ok(const uint8_t *buf, uint64_t len, uint64_t pos)
{
    if (len - pos < METALOG_REC_HEADER)
        return -1;
    uint32_t plen = rl_load_le32(buf + pos);
    if (plen > METALOG_MAX_RECORD_BYTES)
        return 0;
    if (len - pos - METALOG_REC_HEADER < plen)
        return -1;
    uint64_t sum = rl_load_le64(buf + pos + 4);
    return metalog_checksum(buf + pos, buf + pos + METALOG_REC_HEADER, plen) == sum;
}

/* The position of the first whole, checked record after `from`, or len when none. Every byte
 * position is a candidate: a damaged range has no record boundaries to trust. Bounded by the
 * file's length (candidates whose length field overruns the file cost nothing). */
static uint64_t metalog_resync(const uint8_t *buf, uint64_t len, uint64_t from)
{
    for (uint64_t pos = from + 1; pos + METALOG_REC_HEADER <= len; pos++)
        if (metalog_record_ok(buf, len, pos) == 1)
            return pos;
    return len;
}

/* Zeros at the end are a file that grew without its data reaching the disk (a torn append),
 * not damage. */
static bool metalog_all_zero(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Replays records from buf, skipping damaged ranges that good records follow; returns the
 * position after the last good record in *good_end (where a torn tail begins). */
static int metalog_replay(struct metalog *ml, const uint8_t *buf, uint64_t len,
                          metalog_replay_fn fn, void *ctx, uint64_t *good_end,
                          struct metalog_stats *stats)
{
    uint64_t pos = METALOG_MAGIC_BYTES;
    for (uint64_t guard = 0; pos < len && guard <= len; guard++) {
        int ok = metalog_record_ok(buf, len, pos);
        if (ok == 1) {
            uint32_t plen = rl_load_le32(buf + pos);
            int rc = fn(ctx, buf + pos + METALOG_REC_HEADER, plen);
            if (rc)
                return rc;
            stats->records++;
            pos += METALOG_REC_HEADER + plen;
            continue;
        }
        uint64_t next = metalog_resync(buf, len, pos);
        if (next >= len) {
            /* Nothing good after it: a torn tail. A whole record that does not check (and is
             * not just zeros) may have been acknowledged (bit rot rather than a torn write),
             * so it counts as damage too. */
            if (ok == 0 && !metalog_all_zero(buf + pos, len - pos)) {
                RL_CORRUPT(ml->path, (int64_t)pos, -1, "metadata record checksum mismatch at "
                           "the end of the log; cutting it");
                stats->damaged_bytes += len - pos;
            }
            break;
        }
        char what[200];
        snprintf(what, sizeof(what), "metadata log damaged in bytes [%llu, %llu); skipping "
                 "them and replaying the records after them (what they held is lost)",
                 (unsigned long long)pos, (unsigned long long)next);
        RL_CORRUPT(ml->path, (int64_t)pos, -1, what);
        stats->damaged_ranges++;
        stats->damaged_bytes += next - pos;
        pos = next;
    }
    *good_end = pos;
    return 0;
}

/* A new file: the magic, synced, and the directory entry made durable too (without it a
 * power cut could take the whole file, and every record acknowledged in it, away). */
static int metalog_init_file(struct metalog *ml)
{
    int rc = io_file_truncate(ml->io, ml->fd, 0);
    if (!rc)
        rc = metalog_write_all(ml, (const uint8_t *)METALOG_MAGIC, METALOG_MAGIC_BYTES, 0);
    if (!rc)
        rc = io_file_fdatasync(ml->io, ml->fd);
    if (!rc) {
        char dir[sizeof(ml->path)];
        snprintf(dir, sizeof(dir), "%s", ml->path);
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else if (slash)
            *slash = '\0';
        rc = io_dir_sync(ml->io, slash ? dir : ".");
    }
    ml->size = METALOG_MAGIC_BYTES;
    return rc;
}

/* Reads and replays the whole file; cuts a torn tail. */
static int metalog_load(struct metalog *ml, metalog_replay_fn fn, void *ctx,
                        struct metalog_stats *st)
{
    uint8_t *buf = NULL;
    uint64_t len = 0, good_end = 0;
    int rc = metalog_read_file(ml, &buf, &len);
    if (rc)
        return rc;
    if (len < METALOG_MAGIC_BYTES) {
        /* New, or torn while writing the magic: nothing was ever acknowledged from it. */
        rc = metalog_init_file(ml);
        goto out;
    }
    if (memcmp(buf, METALOG_MAGIC, METALOG_MAGIC_BYTES)) {
        rc = RL_CORRUPT(ml->path, 0, -1, "metadata log has a bad magic (not a ringlog metadata "
                        "log)");
        goto out;
    }
    rc = metalog_replay(ml, buf, len, fn, ctx, &good_end, st);
    if (rc)
        goto out;
    if (good_end < len) {
        RL_WARN("metadata log %s: cutting %llu bytes of torn tail at position %llu", ml->path,
                (unsigned long long)(len - good_end), (unsigned long long)good_end);
        rc = io_file_truncate(ml->io, ml->fd, good_end);
        if (!rc)
            rc = io_file_fdatasync(ml->io, ml->fd);
        if (rc)
            goto out;
        st->bytes_truncated = len - good_end;
    }
    ml->size = good_end;
out:
    free(buf);
    return rc;
}

int metalog_open(struct io *io, const char *path, metalog_replay_fn fn, void *ctx,
                 struct metalog **out, struct metalog_stats *stats)
{
    struct metalog_stats local = {0};
    struct metalog *ml = calloc(1, sizeof(*ml));
    if (!ml)
        return -ENOMEM;
    ml->io = io;
    snprintf(ml->path, sizeof(ml->path), "%s", path);
    ml->fd = io_file_open(io, path, O_RDWR | O_CREAT, 0644);
    int rc = ml->fd < 0 ? ml->fd : metalog_load(ml, fn, ctx, &local);
    if (rc) {
        if (ml->fd >= 0)
            io_file_close(io, ml->fd);
        free(ml);
        return rc;
    }
    if (stats)
        *stats = local;
    *out = ml;
    return 0;
}

int metalog_append(struct metalog *ml, const uint8_t *payload, uint32_t len)
{
    if (ml->failed)
        return RL_E_LOG_FAILED;
    if (len > METALOG_MAX_RECORD_BYTES)
        return RL_E_INVALID_ARGUMENT;
    uint8_t hdr[METALOG_REC_HEADER];
    rl_store_le32(hdr, len);
    rl_store_le64(hdr + 4, metalog_checksum(hdr, payload, len));
    int rc = metalog_write_all(ml, hdr, sizeof(hdr), ml->size);
    if (!rc)
        rc = metalog_write_all(ml, payload, len, ml->size + sizeof(hdr));
    if (!rc)
        rc = io_file_fdatasync(ml->io, ml->fd);
    if (rc) {
        ml->failed = true;
        RL_ERROR("metadata log %s: append failed (%s); refusing further changes", ml->path,
                 rl_strerror(rc));
        return rc;
    }
    ml->size += sizeof(hdr) + len;
    return 0;
}

uint64_t metalog_size(const struct metalog *ml)
{
    return ml->size;
}

void metalog_close(struct metalog *ml)
{
    if (!ml)
        return;
    io_file_close(ml->io, ml->fd);
    free(ml);
}
