/*
 * segment: a segment file's in-memory indexes, their files, and the batch-by-batch scan that
 * recovery and the reader's tail checks use (contract and file formats in segment.h).
 */
#include "storage/segment.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"

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
                      uint32_t interval_bytes)
{
    if (max_ts > seg->max_ts)
        seg->max_ts = max_ts;
    if (seg->n_oidx > 0 && pos - seg->last_index_pos < interval_bytes)
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

void segment_index_truncate(struct segment *seg, uint64_t pos)
{
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
    seg->n_oidx = 0;
    seg->n_tidx = 0;
    seg->last_index_pos = 0;
    seg->max_ts = INT64_MIN;
}

static int write_file(const char *path, const uint8_t *data, size_t len, bool sync)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    size_t done = 0;
    while (done < len && rc == 0) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno != EINTR)
            rc = -errno;
        else if (n > 0)
            done += (size_t)n;
    }
    if (rc == 0 && sync && fdatasync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc != 0)
        unlink(tmp);
    return rc;
}

int segment_index_save(const struct segment *seg, bool sync)
{
    char path[PATH_MAX];
    size_t olen = (size_t)seg->n_oidx * SEGMENT_OFFSET_ENTRY_BYTES;
    size_t tlen = (size_t)seg->n_tidx * SEGMENT_TIME_ENTRY_BYTES;
    uint8_t *buf = malloc(olen > tlen ? olen + 1 : tlen + 1);
    int rc;
    if (buf == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < seg->n_oidx; i++) {
        uint32_t v[2] = {htole32(seg->oidx[i].rel), htole32(seg->oidx[i].pos)};
        memcpy(buf + (size_t)i * 8, v, 8);
    }
    rc = segment_path(seg, ".index", path, sizeof(path));
    if (rc == 0)
        rc = write_file(path, buf, olen, sync);
    for (uint32_t i = 0; i < seg->n_tidx && rc == 0; i++) {
        uint64_t ts = htole64((uint64_t)seg->tidx[i].ts);
        uint32_t rel = htole32(seg->tidx[i].rel);
        memcpy(buf + (size_t)i * 12, &ts, 8);
        memcpy(buf + (size_t)i * 12 + 8, &rel, 4);
    }
    if (rc == 0)
        rc = segment_path(seg, ".timeindex", path, sizeof(path));
    if (rc == 0)
        rc = write_file(path, buf, tlen, sync);
    free(buf);
    return rc;
}

/* Reads a whole small file into a fresh buffer. Returns its length or -errno. */
static ssize_t read_file(const char *path, uint8_t **out, size_t max_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    off_t size = lseek(fd, 0, SEEK_END);
    ssize_t rc;
    *out = NULL;
    if (size < 0 || (size_t)size > max_len) {
        rc = size < 0 ? -errno : RL_E_CORRUPT;
        goto out;
    }
    *out = malloc((size_t)size + 1);
    if (*out == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = pread(fd, *out, (size_t)size, 0);
    if (rc >= 0 && rc != size)
        rc = -EIO;
    else if (rc < 0)
        rc = -errno;
out:
    close(fd);
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

int segment_index_load(struct segment *seg, uint64_t file_size)
{
    char path[PATH_MAX];
    uint8_t *buf = NULL;
    /* An index can have at most one entry per batch, and a batch is at least a header. */
    size_t max_entries = file_size / RL_BATCH_HEADER_SIZE + 1;
    int rc = segment_path(seg, ".index", path, sizeof(path));
    if (rc < 0)
        return rc;
    ssize_t n = read_file(path, &buf, max_entries * SEGMENT_OFFSET_ENTRY_BYTES);
    if (n < 0 || n % SEGMENT_OFFSET_ENTRY_BYTES != 0) {
        free(buf);
        return n < 0 ? (int)n : RL_E_CORRUPT;
    }
    segment_index_clear(seg);
    for (ssize_t i = 0; i < n; i += 8) {
        uint32_t rel, pos;
        memcpy(&rel, buf + i, 4);
        memcpy(&pos, buf + i + 4, 4);
        if (seg->n_oidx == seg->cap_oidx &&
            grow((void **)&seg->oidx, &seg->cap_oidx, sizeof(*seg->oidx)) < 0) {
            free(buf);
            return -ENOMEM;
        }
        seg->oidx[seg->n_oidx++] = (struct seg_oentry){le32toh(rel), le32toh(pos)};
    }
    free(buf);
    buf = NULL;
    rc = segment_path(seg, ".timeindex", path, sizeof(path));
    n = rc < 0 ? rc : read_file(path, &buf, max_entries * SEGMENT_TIME_ENTRY_BYTES);
    if (n < 0 || n % SEGMENT_TIME_ENTRY_BYTES != 0) {
        free(buf);
        segment_index_clear(seg);
        return n < 0 ? (int)n : RL_E_CORRUPT;
    }
    for (ssize_t i = 0; i < n; i += 12) {
        uint64_t ts;
        uint32_t rel;
        memcpy(&ts, buf + i, 8);
        memcpy(&rel, buf + i + 8, 4);
        if (seg->n_tidx == seg->cap_tidx &&
            grow((void **)&seg->tidx, &seg->cap_tidx, sizeof(*seg->tidx)) < 0) {
            free(buf);
            segment_index_clear(seg);
            return -ENOMEM;
        }
        seg->tidx[seg->n_tidx++] = (struct seg_tentry){(int64_t)le64toh(ts), le32toh(rel)};
    }
    free(buf);
    if (!index_consistent(seg, file_size)) {
        segment_index_clear(seg);
        return RL_E_CORRUPT;
    }
    seg->last_index_pos = seg->n_oidx ? seg->oidx[seg->n_oidx - 1].pos : 0;
    seg->max_ts = seg->n_tidx ? seg->tidx[seg->n_tidx - 1].ts : INT64_MIN;
    return 0;
}

/* A read window over a file for the scan: [win_pos, win_pos + win_len) is in `buf`. */
struct scan_win {
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
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(w->fd, dst + got, want - got, (off_t)(pos + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *err = n < 0 ? -errno : -EIO;
            return NULL;
        }
        got += (size_t)n;
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

int segment_scan(struct segment *seg, int fd, uint64_t from, uint64_t file_size,
                 uint64_t min_offset, bool verify, bool rebuild, uint32_t interval_bytes,
                 uint8_t *scratch, size_t cap, struct seg_scan *out)
{
    struct scan_win w = {.fd = fd, .buf = scratch, .cap = cap};
    uint64_t pos = from;
    int err = 0;
    memset(out, 0, sizeof(*out));
    out->next_offset = min_offset;
    out->max_ts = INT64_MIN;
    while (pos < file_size && out->bad_code == 0) {
        struct batch_header h;
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
                                         interval_bytes) < 0) {
            err = -ENOMEM;
            goto io_error;
        }
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
