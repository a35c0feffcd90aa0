/*
 * segment: a segment file's in-memory indexes, their files, and the batch-by-batch scan that
 * recovery and the reader's tail checks use (contract and file formats in segment.h).
 */
#include "storage/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"
#include "storage/checkpoint.h"

_Static_assert(sizeof(struct seg_oentry) == SEGMENT_OFFSET_ENTRY_BYTES, "offset entry layout");

struct segment *segment_new(const char *dir, uint64_t base)
{
    struct segment *seg = calloc(1, sizeof(*seg));
    if (seg == NULL)
        return NULL;
    size_t n = strlen(dir) + 32;
    seg->stem = malloc(n);
    if (seg->stem == NULL) {
        free(seg);
        return NULL;
    }
    snprintf(seg->stem, n, "%s/%020llu", dir, (unsigned long long)base);
    seg->base_offset = base;
    seg->next_offset = base;
    seg->readable_next = base;
    seg->max_ts = INT64_MIN;
    fcache_ent_init(&seg->rd);
    fcache_ent_init(&seg->wr);
    fcache_ent_init(&seg->drd);
    return seg;
}

void segment_free(struct segment *seg)
{
    if (seg == NULL)
        return;
    free(seg->oidx);
    free(seg->tidx);
    free(seg->holes);
    free(seg->stem);
    free(seg);
}

int segment_path(const struct segment *seg, const char *suffix, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s%s", seg->stem, suffix);
    return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

/* Grows an entry array by doubling; entries come one per ~4 KiB of log, so this runs rarely. */
static int grow(void **arr, uint32_t *cap, size_t elem)
{
    uint32_t ncap = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, ncap * elem);
    if (p == NULL)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

int segment_index_add(struct segment *seg, uint64_t pos, uint64_t base_offset, int64_t max_ts,
                      uint32_t interval_bytes, bool force)
{
    if (max_ts > seg->max_ts)
        seg->max_ts = max_ts;
    if (seg->n_oidx > 0 && (pos <= seg->last_index_pos ||
                            (!force && pos - seg->last_index_pos < interval_bytes)))
        return 0;
    uint32_t rel = (uint32_t)(base_offset - seg->base_offset);
    if (seg->n_oidx == seg->cap_oidx &&
        grow((void **)&seg->oidx, &seg->cap_oidx, sizeof(*seg->oidx)) < 0)
        return -ENOMEM;
    seg->oidx[seg->n_oidx++] = (struct seg_oentry){rel, (uint32_t)pos};
    seg->last_index_pos = pos;
    if (seg->n_tidx == 0 || seg->max_ts > seg->tidx[seg->n_tidx - 1].ts) {
        if (seg->n_tidx == seg->cap_tidx &&
            grow((void **)&seg->tidx, &seg->cap_tidx, sizeof(*seg->tidx)) < 0)
            return -ENOMEM;
        seg->tidx[seg->n_tidx++] = (struct seg_tentry){seg->max_ts, rel};
    }
    return 0;
}

uint64_t segment_index_lookup(const struct segment *seg, uint64_t offset)
{
    if (seg->n_oidx == 0 || offset < seg->base_offset)
        return 0;
    uint64_t rel = offset - seg->base_offset;
    uint32_t lo = 0, hi = seg->n_oidx; /* find the last entry with entry.rel <= rel */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (seg->oidx[mid].rel <= rel)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? 0 : seg->oidx[lo - 1].pos;
}

uint64_t segment_time_lookup(const struct segment *seg, int64_t ts)
{
    uint32_t lo = 0, hi = seg->n_tidx; /* find the last entry with entry.ts < ts */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (seg->tidx[mid].ts < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    return segment_index_lookup(seg, seg->base_offset + seg->tidx[lo - 1].rel);
}

int segment_index_insert(struct segment *seg, uint64_t from, uint64_t pos, uint64_t base_offset)
{
    uint32_t keep = 0, i = 0;
    while (i < seg->n_oidx && seg->oidx[i].pos <= from)
        seg->oidx[keep++] = seg->oidx[i++];
    while (i < seg->n_oidx && seg->oidx[i].pos < pos)
        i++; /* inside the damaged range */
    bool present = i < seg->n_oidx && seg->oidx[i].pos == pos;
    uint32_t rest = seg->n_oidx - i;
    if (!present && keep + 1 + rest > seg->cap_oidx &&
        grow((void **)&seg->oidx, &seg->cap_oidx, sizeof(*seg->oidx)) < 0)
        return -ENOMEM;
    memmove(&seg->oidx[keep + (present ? 0 : 1)], &seg->oidx[i], rest * sizeof(*seg->oidx));
    if (!present)
        seg->oidx[keep] = (struct seg_oentry){(uint32_t)(base_offset - seg->base_offset),
                                              (uint32_t)pos};
    seg->n_oidx = keep + (present ? 0 : 1) + rest;
    seg->last_index_pos = seg->oidx[seg->n_oidx - 1].pos;
    seg->index_saved = false;
    return 0;
}

void segment_index_truncate(struct segment *seg, uint64_t pos)
{
    seg->index_saved = false;
    while (seg->n_oidx > 0 && seg->oidx[seg->n_oidx - 1].pos >= pos)
        seg->n_oidx--;
    uint32_t last_rel = seg->n_oidx ? seg->oidx[seg->n_oidx - 1].rel : 0;
    while (seg->n_tidx > 0 && (seg->n_oidx == 0 || seg->tidx[seg->n_tidx - 1].rel > last_rel))
        seg->n_tidx--;
    seg->last_index_pos = seg->n_oidx ? seg->oidx[seg->n_oidx - 1].pos : 0;
    /* The running maximum is what the last surviving time entry says; the caller rescans the
     * tail after the last offset entry to fold in the batches after it. */
    seg->max_ts = seg->n_tidx ? seg->tidx[seg->n_tidx - 1].ts : INT64_MIN;
}

void segment_index_clear(struct segment *seg)
{
    seg->index_saved = false;
    seg->n_oidx = 0;
    seg->n_tidx = 0;
    seg->last_index_pos = 0;
    seg->max_ts = INT64_MIN;
}

int segment_hole_add(struct segment *seg, const struct seg_hole *h)
{
    if (seg->n_holes >= SEGMENT_MAX_HOLES) {
        struct seg_hole *last = &seg->holes[seg->n_holes - 1];
        last->end_pos = h->end_pos;
        last->end_offset = h->end_offset;
        return 0;
    }
    struct seg_hole *p = realloc(seg->holes, (seg->n_holes + 1) * sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    seg->holes = p;
    uint32_t i = seg->n_holes;
    while (i > 0 && p[i - 1].pos > h->pos) {
        p[i] = p[i - 1];
        i--;
    }
    p[i] = *h;
    seg->n_holes++;
    return 0;
}

const struct seg_hole *segment_hole_for_offset(const struct segment *seg, uint64_t offset)
{
    for (uint32_t i = 0; i < seg->n_holes; i++)
        if (offset >= seg->holes[i].offset && offset < seg->holes[i].end_offset)
            return &seg->holes[i];
    return NULL;
}

uint64_t segment_walk_limit(const struct segment *seg, uint64_t pos)
{
    for (uint32_t i = 0; i < seg->n_holes; i++)
        if (seg->holes[i].pos >= pos)
            return seg->holes[i].pos < seg->readable_pos ? seg->holes[i].pos : seg->readable_pos;
    return seg->readable_pos;
}

uint64_t segment_hole_bytes(const struct segment *seg)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < seg->n_holes; i++)
        n += seg->holes[i].end_pos - seg->holes[i].pos;
    return n;
}

void segment_holes_truncate(struct segment *seg, uint64_t pos)
{
    while (seg->n_holes > 0 && seg->holes[seg->n_holes - 1].pos >= pos)
        seg->n_holes--;
    if (seg->n_holes > 0 && seg->holes[seg->n_holes - 1].end_pos > pos)
        seg->holes[seg->n_holes - 1].end_pos = pos;
}

/* The directory and file name of "<stem>.damaged", for the checkpoint calls. */
static int damaged_name(const struct segment *seg, char *dir, size_t dcap, char *name,
                        size_t ncap)
{
    const char *slash = strrchr(seg->stem, '/');
    size_t dlen = slash ? (size_t)(slash - seg->stem) : 1;
    if (dlen >= dcap)
        return -ENAMETOOLONG;
    memcpy(dir, slash ? seg->stem : ".", dlen);
    dir[dlen] = '\0';
    if (snprintf(name, ncap, "%s.damaged", slash ? slash + 1 : seg->stem) >= (int)ncap)
        return -ENAMETOOLONG;
    return 0;
}

int segment_holes_save(struct io *io, const struct segment *seg)
{
    char dir[PATH_MAX], name[64];
    int rc = damaged_name(seg, dir, sizeof(dir), name, sizeof(name));
    if (rc < 0)
        return rc;
    size_t len = 4 + (size_t)seg->n_holes * SEGMENT_HOLE_BYTES;
    uint8_t *buf = malloc(len);
    if (buf == NULL)
        return -ENOMEM;
    rl_store_le32(buf, seg->n_holes);
    for (uint32_t i = 0; i < seg->n_holes; i++) {
        uint8_t *p = buf + 4 + (size_t)i * SEGMENT_HOLE_BYTES;
        rl_store_le64(p, seg->holes[i].pos);
        rl_store_le64(p + 8, seg->holes[i].end_pos);
        rl_store_le64(p + 16, seg->holes[i].offset);
        rl_store_le64(p + 24, seg->holes[i].end_offset);
    }
    rc = checkpoint_save(io, dir, name, buf, len, CHECKPOINT_DURABLE);
    free(buf);
    return rc;
}

int segment_holes_load(struct io *io, struct segment *seg, uint64_t file_size)
{
    char dir[PATH_MAX], name[64];
    int rc = damaged_name(seg, dir, sizeof(dir), name, sizeof(name));
    if (rc < 0)
        return rc;
    size_t cap = 4 + (size_t)SEGMENT_MAX_HOLES * SEGMENT_HOLE_BYTES;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return -ENOMEM;
    int n = checkpoint_load(io, dir, name, buf, cap);
    seg->n_holes = 0;
    rc = n == -ENOENT ? 0 : n;
    if (n >= 4) {
        uint32_t count = rl_load_le32(buf);
        rc = (size_t)n == 4 + (size_t)count * SEGMENT_HOLE_BYTES ? 0 : RL_E_CORRUPT;
        for (uint32_t i = 0; rc == 0 && i < count; i++) {
            const uint8_t *p = buf + 4 + (size_t)i * SEGMENT_HOLE_BYTES;
            struct seg_hole h = {rl_load_le64(p), rl_load_le64(p + 8), rl_load_le64(p + 16),
                                 rl_load_le64(p + 24)};
            if (h.pos >= h.end_pos || h.end_pos > file_size || h.offset > h.end_offset ||
                (i > 0 && h.pos < seg->holes[i - 1].end_pos))
                rc = RL_E_CORRUPT;
            else
                rc = segment_hole_add(seg, &h);
        }
        if (rc < 0)
            seg->n_holes = 0;
    } else if (n >= 0) {
        rc = RL_E_CORRUPT;
    }
    free(buf);
    return rc;
}

static int write_file(struct io *io, const char *path, const uint8_t *data, size_t len,
                      unsigned flags)
{
    char tmp[PATH_MAX];
    bool in_place = (flags & SEGMENT_INDEX_IN_PLACE) != 0;
    if (snprintf(tmp, sizeof(tmp), "%s%s", path, in_place ? "" : ".tmp") >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = io_file_open(io, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fd;
    ssize_t n = len > 0 ? io_file_pwrite(io, fd, data, len, 0) : 0;
    int rc = n < 0 ? (int)n : 0;
    if (rc == 0 && (flags & SEGMENT_INDEX_SYNC))
        rc = io_file_fdatasync(io, fd);
    io_file_close(io, fd);
    if (rc == 0 && !in_place)
        rc = io_path_rename(io, tmp, path);
    if (rc != 0 && !in_place)
        io_path_unlink(io, tmp);
    return rc;
}

void segment_oentry_encode(const struct seg_oentry *e, uint8_t out[SEGMENT_OFFSET_ENTRY_BYTES])
{
    rl_store_le32(out, e->rel);
    rl_store_le32(out + 4, e->pos);
}

void segment_oentry_decode(const uint8_t in[SEGMENT_OFFSET_ENTRY_BYTES], struct seg_oentry *e)
{
    e->rel = rl_load_le32(in);
    e->pos = rl_load_le32(in + 4);
}

void segment_tentry_encode(const struct seg_tentry *e, uint8_t out[SEGMENT_TIME_ENTRY_BYTES])
{
    rl_store_le64(out, (uint64_t)e->ts);
    rl_store_le32(out + 8, e->rel);
}

void segment_tentry_decode(const uint8_t in[SEGMENT_TIME_ENTRY_BYTES], struct seg_tentry *e)
{
    e->ts = (int64_t)rl_load_le64(in);
    e->rel = rl_load_le32(in + 8);
}

int segment_index_save(struct io *io, struct segment *seg, unsigned flags)
{
    char path[PATH_MAX];
    size_t olen = (size_t)seg->n_oidx * SEGMENT_OFFSET_ENTRY_BYTES;
    size_t tlen = (size_t)seg->n_tidx * SEGMENT_TIME_ENTRY_BYTES;
    if (seg->index_saved_n == seg->n_oidx && seg->index_saved_t == seg->n_tidx &&
        seg->index_saved)
        return 0; /* the files already say this */
    uint8_t *buf = malloc(olen > tlen ? olen + 1 : tlen + 1);
    int rc;
    if (buf == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < seg->n_oidx; i++)
        segment_oentry_encode(&seg->oidx[i], buf + (size_t)i * SEGMENT_OFFSET_ENTRY_BYTES);
    rc = segment_path(seg, ".index", path, sizeof(path));
    if (rc == 0)
        rc = write_file(io, path, buf, olen, flags);
    for (uint32_t i = 0; i < seg->n_tidx && rc == 0; i++)
        segment_tentry_encode(&seg->tidx[i], buf + (size_t)i * SEGMENT_TIME_ENTRY_BYTES);
    if (rc == 0)
        rc = segment_path(seg, ".timeindex", path, sizeof(path));
    if (rc == 0)
        rc = write_file(io, path, buf, tlen, flags);
    free(buf);
    if (rc == 0) {
        seg->index_saved = true;
        seg->index_saved_n = seg->n_oidx;
        seg->index_saved_t = seg->n_tidx;
    }
    return rc;
}

/* Reads a whole small file into a fresh buffer. Returns its length or -errno. */
static ssize_t read_file(struct io *io, const char *path, uint8_t **out, size_t max_len)
{
    uint64_t size = 0;
    ssize_t rc;
    *out = NULL;
    int fd = io_file_open(io, path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    rc = io_file_size(io, fd, &size);
    if (rc == 0 && size > max_len)
        rc = RL_E_CORRUPT;
    if (rc < 0)
        goto out;
    *out = malloc((size_t)size + 1);
    if (*out == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = io_file_pread(io, fd, *out, (size_t)size, 0);
    if (rc >= 0 && (uint64_t)rc != size)
        rc = -EIO;
out:
    io_file_close(io, fd);
    return rc;
}

/* Checks loaded entries: strictly increasing, inside the file, time entries at offset entries. */
static bool index_consistent(const struct segment *seg, uint64_t file_size)
{
    for (uint32_t i = 0; i < seg->n_oidx; i++) {
        const struct seg_oentry *e = &seg->oidx[i];
        if (e->pos >= file_size && !(e->pos == 0 && file_size == 0))
            return false;
        if (i > 0 && (e->rel <= seg->oidx[i - 1].rel || e->pos <= seg->oidx[i - 1].pos))
            return false;
    }
    if (seg->n_oidx > 0 && seg->oidx[0].pos != 0)
        return false;
    for (uint32_t i = 0; i < seg->n_tidx; i++) {
        const struct seg_tentry *t = &seg->tidx[i];
        if (i > 0 && (t->ts <= seg->tidx[i - 1].ts || t->rel <= seg->tidx[i - 1].rel))
            return false;
        if (seg->n_oidx == 0 || t->rel > seg->oidx[seg->n_oidx - 1].rel)
            return false;
    }
    return true;
}

int segment_index_load(struct io *io, struct segment *seg, uint64_t file_size)
{
    char path[PATH_MAX];
    uint8_t *buf = NULL;
    /* An index can have at most one entry per batch, and a batch is at least a header. */
    size_t max_entries = file_size / RL_BATCH_HEADER_SIZE + 1;
    int rc = segment_path(seg, ".index", path, sizeof(path));
    if (rc < 0)
        return rc;
    ssize_t n = read_file(io, path, &buf, max_entries * SEGMENT_OFFSET_ENTRY_BYTES);
    if (n < 0 || n % SEGMENT_OFFSET_ENTRY_BYTES != 0) {
        free(buf);
        return n < 0 ? (int)n : RL_E_CORRUPT;
    }
    segment_index_clear(seg);
    for (ssize_t i = 0; i < n; i += SEGMENT_OFFSET_ENTRY_BYTES) {
        if (seg->n_oidx == seg->cap_oidx &&
            grow((void **)&seg->oidx, &seg->cap_oidx, sizeof(*seg->oidx)) < 0) {
            free(buf);
            return -ENOMEM;
        }
        segment_oentry_decode(buf + i, &seg->oidx[seg->n_oidx++]);
    }
    free(buf);
    buf = NULL;
    rc = segment_path(seg, ".timeindex", path, sizeof(path));
    n = rc < 0 ? rc : read_file(io, path, &buf, max_entries * SEGMENT_TIME_ENTRY_BYTES);
    if (n < 0 || n % SEGMENT_TIME_ENTRY_BYTES != 0) {
        free(buf);
        segment_index_clear(seg);
        return n < 0 ? (int)n : RL_E_CORRUPT;
    }
    for (ssize_t i = 0; i < n; i += SEGMENT_TIME_ENTRY_BYTES) {
        if (seg->n_tidx == seg->cap_tidx &&
            grow((void **)&seg->tidx, &seg->cap_tidx, sizeof(*seg->tidx)) < 0) {
            free(buf);
            segment_index_clear(seg);
            return -ENOMEM;
        }
        segment_tentry_decode(buf + i, &seg->tidx[seg->n_tidx++]);
    }
    free(buf);
    if (!index_consistent(seg, file_size)) {
        segment_index_clear(seg);
        return RL_E_CORRUPT;
    }
    seg->last_index_pos = seg->n_oidx ? seg->oidx[seg->n_oidx - 1].pos : 0;
    seg->max_ts = seg->n_tidx ? seg->tidx[seg->n_tidx - 1].ts : INT64_MIN;
    seg->index_saved = true;
    seg->index_saved_n = seg->n_oidx;
    seg->index_saved_t = seg->n_tidx;
    return 0;
}

/* A read window over a file for the scan: [win_pos, win_pos + win_len) is in `buf`. */
struct scan_win {
    struct io *io;
    int fd;
    uint8_t *buf;
    size_t cap;
    uint64_t win_pos;
    size_t win_len;
    uint8_t *big; /* temporary buffer for a batch larger than the window */
};

/* Returns a pointer to bytes [pos, pos + len) of the file (len bytes must exist in the file),
 * or NULL with *err set. */
static const uint8_t *scan_need(struct scan_win *w, uint64_t pos, size_t len, uint64_t size,
                                int *err)
{
    if (pos >= w->win_pos && pos + len <= w->win_pos + w->win_len)
        return w->buf + (pos - w->win_pos);
    uint8_t *dst = w->buf;
    size_t want = (size_t)(size - pos < w->cap ? size - pos : w->cap);
    if (len > w->cap) {
        free(w->big);
        w->big = malloc(len);
        if (w->big == NULL) {
            *err = -ENOMEM;
            return NULL;
        }
        dst = w->big;
        want = len;
    }
    ssize_t n = io_file_pread(w->io, w->fd, dst, want, pos);
    if (n < (ssize_t)want) {
        *err = n < 0 ? (int)n : -EIO;
        return NULL;
    }
    if (dst == w->buf) {
        w->win_pos = pos;
        w->win_len = want;
    }
    return dst;
}

/* True when every byte of [from, size) is zero. */
static bool scan_tail_zero(struct scan_win *w, uint64_t from, uint64_t size)
{
    int err = 0;
    for (uint64_t pos = from; pos < size;) {
        size_t len = (size_t)(size - pos < w->cap ? size - pos : w->cap);
        const uint8_t *p = scan_need(w, pos, len, size, &err);
        if (p == NULL)
            return false;
        for (size_t i = 0; i < len; i++)
            if (p[i] != 0)
                return false;
        pos += len;
    }
    return true;
}

int segment_scan(struct io *io, struct segment *seg, int fd, uint64_t from, uint64_t file_size,
                 uint64_t min_offset, bool verify, bool rebuild, uint32_t interval_bytes,
                 uint8_t *scratch, size_t cap, struct seg_scan *out)
{
    struct scan_win w = {.io = io, .fd = fd, .buf = scratch, .cap = cap};
    uint64_t pos = from;
    int err = 0;
    memset(out, 0, sizeof(*out));
    out->next_offset = min_offset;
    out->max_ts = INT64_MIN;
    bool after_hole = false;
    while (pos < file_size && out->bad_code == 0) {
        struct batch_header h;
        const struct seg_hole *hole = NULL;
        for (uint32_t i = 0; i < seg->n_holes && hole == NULL; i++)
            if (seg->holes[i].pos == pos)
                hole = &seg->holes[i];
        if (hole != NULL) {
            pos = hole->end_pos;
            out->next_offset = hole->end_offset;
            after_hole = true;
            continue;
        }
        uint64_t avail = file_size - pos;
        const uint8_t *p;
        if (avail < RL_BATCH_HEADER_SIZE) {
            out->bad_code = RL_E_BATCH_SHORT;
            break;
        }
        if ((p = scan_need(&w, pos, RL_BATCH_HEADER_SIZE, file_size, &err)) == NULL)
            goto io_error;
        int rc = batch_header_decode(p, RL_BATCH_HEADER_SIZE, &h);
        if (rc == 0 && h.batch_len > avail)
            rc = RL_E_BATCH_SHORT;
        if (rc == 0 && verify) {
            if ((p = scan_need(&w, pos, h.batch_len, file_size, &err)) == NULL)
                goto io_error;
            rc = batch_validate(p, h.batch_len, &h);
        }
        /* Offsets are contiguous: each batch starts where the previous one ended (the first at
         * min_offset), and stay within the u32 range the index can express. A damaged
         * base_offset, which the checksum does not cover, is caught here. */
        if (rc == 0 && (h.base_offset != out->next_offset || h.base_offset < seg->base_offset ||
                        h.base_offset - seg->base_offset + h.last_offset_delta > UINT32_MAX))
            rc = RL_E_CORRUPT;
        if (rc != 0) {
            out->bad_code = rc;
            break;
        }
        if (rebuild && segment_index_add(seg, pos, h.base_offset, h.max_timestamp,
                                         interval_bytes, after_hole) < 0) {
            err = -ENOMEM;
            goto io_error;
        }
        after_hole = false;
        if (h.max_timestamp > out->max_ts)
            out->max_ts = h.max_timestamp;
        out->next_offset = h.base_offset + h.last_offset_delta + 1;
        pos += h.batch_len;
        out->bytes_scanned += h.batch_len;
    }
    out->valid_end = pos;
    if (out->bad_code != 0)
        out->tail_zero = scan_tail_zero(&w, pos, file_size);
    free(w.big);
    return 0;
io_error:
    free(w.big);
    return err;
}

/* Whether the bytes at p (avail of them) start a whole, valid batch that may continue the
 * segment after damage. */
static bool resync_candidate(const struct segment *seg, const uint8_t *p, uint64_t avail,
                             uint64_t min_offset, struct batch_header *h)
{
    if (avail < RL_BATCH_HEADER_SIZE || batch_header_decode(p, RL_BATCH_HEADER_SIZE, h) != 0)
        return false;
    if (h->batch_len > avail || h->base_offset < min_offset || h->base_offset < seg->base_offset ||
        h->base_offset - seg->base_offset + h->last_offset_delta > UINT32_MAX)
        return false;
    return true;
}

int segment_resync(struct io *io, const struct segment *seg, int fd, uint64_t from,
                   uint64_t file_size, uint64_t min_offset, uint8_t *scratch, size_t cap,
                   uint64_t *pos, struct batch_header *h)
{
    struct scan_win w = {.io = io, .fd = fd, .buf = scratch, .cap = cap};
    int err = 0;
    /* Byte by byte: a batch may start anywhere. The header decode rejects almost every
     * position at once (magic, lengths); only plausible headers cost a checksum. */
    for (uint64_t at = from; at + RL_BATCH_HEADER_SIZE <= file_size; at++) {
        const uint8_t *p = scan_need(&w, at, RL_BATCH_HEADER_SIZE, file_size, &err);
        if (p == NULL)
            break;
        if (!resync_candidate(seg, p, file_size - at, min_offset, h))
            continue;
        p = scan_need(&w, at, h->batch_len, file_size, &err);
        if (p == NULL)
            break;
        if (batch_validate(p, h->batch_len, h) == 0) {
            *pos = at;
            free(w.big);
            return 1;
        }
    }
    free(w.big);
    return err < 0 ? err : 0;
}
