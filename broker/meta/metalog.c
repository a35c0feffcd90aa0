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

#include "broker/meta/meta_record.h"
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

static int metalog_sync_dir(struct metalog *ml)
{
    char dir[sizeof(ml->path)];
    snprintf(dir, sizeof(dir), "%s", ml->path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    return io_dir_sync(ml->io, slash ? dir : ".");
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
    if (!rc)
        rc = metalog_sync_dir(ml);
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
    char tmp[sizeof(ml->path) + 16];
    snprintf(tmp, sizeof(tmp), "%s.compact", path);
    uint64_t tmp_size;
    if (io_path_size(io, tmp, &tmp_size) == 0 && io_path_unlink(io, tmp) == 0)
        RL_WARN("metadata log %s: removed %s, left by a compaction that did not finish (the "
                "log itself is whole)", path, tmp);
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

/* --- compaction ------------------------------------------------------------------------------ */

#define METALOG_STATE_NONE 0    /* the name is not seen yet (walking backwards) */
#define METALOG_STATE_ALTERED 1 /* its last alter is kept; the create before it will be */
#define METALOG_STATE_DONE 2    /* created (kept) or deleted: nothing older of it is needed */

struct metalog_rec {
    uint64_t pos;
    uint32_t len;
    bool keep;
};

/* Names seen walking the log backwards: open addressing over a power-of-two table. */
struct metalog_names {
    char **name;
    uint8_t *state;
    uint64_t mask;
};

static uint8_t *metalog_name_state(struct metalog_names *nm, const char *name)
{
    uint64_t h = XXH3_64bits(name, strlen(name));
    for (uint64_t i = 0; i <= nm->mask; i++) {
        uint64_t slot = (h + i) & nm->mask;
        if (!nm->name[slot]) {
            if (!(nm->name[slot] = strdup(name)))
                return NULL;
            nm->state[slot] = METALOG_STATE_NONE;
            return &nm->state[slot];
        }
        if (!strcmp(nm->name[slot], name))
            return &nm->state[slot];
    }
    return NULL; /* cannot happen: the table has room for every record */
}

/* Decides, from the newest record back, which records the state still needs. */
static int metalog_classify(const uint8_t *buf, struct metalog_rec *recs, uint32_t n,
                            struct metalog_names *nm)
{
    int64_t best_block = INT64_MIN;
    for (uint32_t i = n; i-- > 0;) {
        struct metalog_rec *r = &recs[i];
        struct meta_record_decoded d;
        r->keep = true;
        if (meta_record_decode(buf + r->pos + METALOG_REC_HEADER, r->len, &d))
            continue; /* not ours to judge */
        const struct meta_record *m = &d.rec;
        const char *name = m->kind == META_RECORD_CREATE_TOPIC ? m->spec.name : m->name;
        uint8_t *st = NULL;
        if (m->kind == META_RECORD_PRODUCER_ID_BLOCK) {
            r->keep = m->producer_id_block_end > best_block;
            if (r->keep)
                best_block = m->producer_id_block_end;
        } else if (m->kind != META_RECORD_UNKNOWN && name) {
            if (!(st = metalog_name_state(nm, name))) {
                meta_record_free(&d);
                return -ENOMEM;
            }
        }
        if (st && m->kind == META_RECORD_DELETE_TOPIC) {
            r->keep = false; /* with the topic's older records: it does not exist at the end */
            if (*st == METALOG_STATE_NONE)
                *st = METALOG_STATE_DONE;
        } else if (st && m->kind == META_RECORD_ALTER_CONFIGS) {
            r->keep = *st == METALOG_STATE_NONE;
            if (r->keep)
                *st = METALOG_STATE_ALTERED;
        } else if (st && m->kind == META_RECORD_CREATE_TOPIC) {
            r->keep = *st != METALOG_STATE_DONE;
            *st = METALOG_STATE_DONE;
        }
        meta_record_free(&d);
    }
    return 0;
}

/* The records of buf up to `end`, each whole and checked; RL_E_CORRUPT when any is not (the
 * file holds damage, which compaction leaves alone). */
static int metalog_index(const uint8_t *buf, uint64_t end, struct metalog_rec **out,
                         uint32_t *n_out)
{
    uint64_t cap = (end - METALOG_MAGIC_BYTES) / METALOG_REC_HEADER + 1;
    struct metalog_rec *recs = calloc(cap, sizeof(*recs));
    if (!recs)
        return -ENOMEM;
    uint32_t n = 0;
    for (uint64_t pos = METALOG_MAGIC_BYTES; pos < end && n < cap;) {
        if (metalog_record_ok(buf, end, pos) != 1) {
            free(recs);
            return RL_E_CORRUPT;
        }
        recs[n].pos = pos;
        recs[n].len = rl_load_le32(buf + pos);
        pos += METALOG_REC_HEADER + recs[n].len;
        n++;
    }
    *out = recs;
    *n_out = n;
    return 0;
}

/* Writes the kept records to a new file at tmp, durable. Returns its fd (open) and size. */
static int metalog_write_compact(struct metalog *ml, const char *tmp, const uint8_t *buf,
                                 const struct metalog_rec *recs, uint32_t n, uint64_t *size)
{
    int fd = io_file_open(ml->io, tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fd;
    ssize_t w = io_file_pwrite(ml->io, fd, METALOG_MAGIC, METALOG_MAGIC_BYTES, 0);
    uint64_t pos = METALOG_MAGIC_BYTES;
    for (uint32_t i = 0; i < n && w >= 0; i++) {
        if (!recs[i].keep)
            continue;
        size_t len = METALOG_REC_HEADER + recs[i].len;
        w = io_file_pwrite(ml->io, fd, buf + recs[i].pos, len, pos);
        pos += len;
    }
    int rc = w < 0 ? (int)w : io_file_fdatasync(ml->io, fd);
    if (rc) {
        io_file_close(ml->io, fd);
        io_path_unlink(ml->io, tmp);
        return rc;
    }
    *size = pos;
    return fd;
}

/* Switches to the compacted file: the directory synced (earlier removals durable before a log
 * without their delete records can appear), the rename, the directory synced again. */
static int metalog_switch(struct metalog *ml, const char *tmp, int fd, uint64_t size)
{
    int rc = metalog_sync_dir(ml);
    if (rc) {
        io_file_close(ml->io, fd);
        io_path_unlink(ml->io, tmp);
        return rc;
    }
    rc = io_path_rename(ml->io, tmp, ml->path);
    if (!rc)
        rc = metalog_sync_dir(ml);
    if (rc) {
        /* Which name the disk holds is not known: no more appends to either. */
        ml->failed = true;
        io_file_close(ml->io, fd);
        RL_ERROR("metadata log %s: compaction could not switch files (%s); refusing further "
                 "changes until a restart", ml->path, rl_strerror(rc));
        return rc;
    }
    io_file_close(ml->io, ml->fd);
    ml->fd = fd;
    ml->size = size;
    return 0;
}

int metalog_compact(struct metalog *ml, uint32_t min_dropped, struct metalog_compact_stats *out)
{
    *out = (struct metalog_compact_stats){.bytes_before = ml->size, .bytes_after = ml->size};
    if (ml->failed)
        return RL_E_LOG_FAILED;
    uint8_t *buf = NULL;
    uint64_t len = 0;
    struct metalog_rec *recs = NULL;
    struct metalog_names nm = {0};
    uint32_t n = 0;
    int rc = metalog_read_file(ml, &buf, &len);
    if (rc || len < ml->size || ml->size <= METALOG_MAGIC_BYTES)
        goto out;
    if ((rc = metalog_index(buf, ml->size, &recs, &n)) != 0) {
        rc = rc == RL_E_CORRUPT ? 0 : rc; /* damage stays where it is */
        goto out;
    }
    uint64_t slots = 16;
    while (slots < 2ull * n)
        slots <<= 1;
    nm.name = calloc(slots, sizeof(*nm.name));
    nm.state = calloc(slots, 1);
    nm.mask = slots - 1;
    if (!nm.name || !nm.state) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = metalog_classify(buf, recs, n, &nm)) != 0)
        goto out;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++)
        kept += recs[i].keep;
    out->kept = n;
    if (n - kept < min_dropped || n == kept)
        goto out;
    char tmp[sizeof(ml->path) + 16];
    snprintf(tmp, sizeof(tmp), "%s.compact", ml->path);
    uint64_t size = 0;
    int fd = metalog_write_compact(ml, tmp, buf, recs, n, &size);
    if (fd < 0) {
        rc = fd;
        goto out;
    }
    if ((rc = metalog_switch(ml, tmp, fd, size)) != 0)
        goto out;
    *out = (struct metalog_compact_stats){.kept = kept, .dropped = n - kept,
                                          .bytes_before = len, .bytes_after = size};
out:
    for (uint64_t i = 0; nm.name && i <= nm.mask; i++)
        free(nm.name[i]);
    free(nm.name);
    free(nm.state);
    free(recs);
    free(buf);
    return rc;
}

int metalog_read_records(struct metalog *ml, uint64_t first, uint64_t end, size_t max_bytes,
                         uint8_t *out, size_t cap, size_t *len_out, uint32_t *n_out)
{
    *len_out = 0;
    *n_out = 0;
    uint8_t *buf;
    uint64_t len;
    int rc = metalog_read_file(ml, &buf, &len);
    if (rc)
        return rc;
    uint64_t pos = METALOG_MAGIC_BYTES;
    if (len < pos || memcmp(buf, METALOG_MAGIC, METALOG_MAGIC_BYTES)) {
        rc = RL_CORRUPT(ml->path, 0, -1, "metadata log magic missing while reading records");
        goto out;
    }
    for (uint64_t i = 0; i < end; i++) {
        int ok = metalog_record_ok(buf, len, pos);
        if (ok != 1) {
            rc = ok < 0 ? RL_E_OFFSET_OUT_OF_RANGE
                        : RL_CORRUPT(ml->path, (int64_t)pos, -1, "metadata record checksum "
                                     "mismatch while reading records for a peer");
            goto out;
        }
        size_t rl = METALOG_REC_HEADER + rl_load_le32(buf + pos);
        if (i >= first) {
            if (*n_out && (*len_out + rl > max_bytes || *len_out + rl > cap))
                break;
            if (*len_out + rl > cap) {
                rc = -ENOBUFS;
                goto out;
            }
            memcpy(out + *len_out, buf + pos, rl);
            *len_out += rl;
            (*n_out)++;
        }
        pos += rl;
    }
out:
    free(buf);
    return rc;
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
