/*
 * plog_read: the partition log's read path and maintenance. Fetch path: broker -> plog_read
 * (segment by binary search, position through the in-memory offset index, then a short walk of
 * batch headers) -> a slice of whole batches in one segment file -> sendfile/splice or
 * plog_read_copy. Also: timestamp lookups, retention, advancing the log start, and
 * truncate_to for followers discarding a divergent tail.
 *
 * Readers see only batches whose writes completed (segment readable_pos), never bytes still in
 * the write buffer, so a slice always names bytes that are in the file.
 */
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
#include "common/endian.h"
#include "storage/checkpoint.h"
#include "storage/plog_int.h"

void plog_hdr_window_drop(struct storage *st)
{
    st->hw_seg = NULL;
    st->hw_len = 0;
}

/* Bytes [pos, pos + header) of seg, through the header window: one pread serves the walk over
 * many small batches. Only readable bytes are ever cached. */
static const uint8_t *hdr_bytes(struct plog *log, struct segment *seg, uint64_t pos, int *err)
{
    struct storage *st = log->st;
    if (st->hw_seg == seg && pos >= st->hw_pos &&
        pos + RL_BATCH_HEADER_SIZE <= st->hw_pos + st->hw_len)
        return st->scan_buf + (pos - st->hw_pos);
    plog_hdr_window_drop(st);
    int fd = plog_seg_read_fd(log, seg);
    if (fd < 0) {
        *err = fd;
        return NULL;
    }
    uint64_t avail = seg->readable_pos > pos ? seg->readable_pos - pos : 0;
    size_t window = st->hw_last_batch_len >= PLOG_HDR_BIG_BATCH ? PLOG_HDR_SMALL_READ
                                                                : PLOG_HDR_WINDOW;
    size_t want = avail < window ? (size_t)avail : window;
    if (want < RL_BATCH_HEADER_SIZE)
        want = RL_BATCH_HEADER_SIZE; /* a caller past the readable end gets what the file has */
    ssize_t n = io_file_pread(st->io, fd, st->scan_buf, want, pos);
    if (n < (ssize_t)RL_BATCH_HEADER_SIZE) {
        *err = n < 0 ? (int)n : -EIO;
        return NULL;
    }
    if ((uint64_t)n <= avail) {
        st->hw_seg = seg;
        st->hw_pos = pos;
        st->hw_len = (size_t)n;
    }
    return st->scan_buf;
}

int plog_read_header(struct plog *log, struct segment *seg, uint64_t pos, struct batch_header *h)
{
    int err = 0;
    const uint8_t *p = hdr_bytes(log, seg, pos, &err);
    if (p == NULL)
        return err;
    int rc = batch_header_decode(p, RL_BATCH_HEADER_SIZE, h);
    if (rc < 0) {
        char path[4096];
        segment_path(seg, ".log", path, sizeof(path));
        return RL_CORRUPT(path, (int64_t)pos, -1, "batch header unreadable on the read path");
    }
    log->st->hw_last_batch_len = h->batch_len;
    return 0;
}

/* Index of the segment that holds `offset`: the last one whose base is <= offset. */
static uint32_t seg_index_for(const struct plog *log, uint64_t offset)
{
    uint32_t lo = 0, hi = log->nsegs;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (log->segs[mid]->base_offset <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == 0 ? 0 : lo - 1;
}

/* Finds the readable batch of seg that contains `offset`: *pos and its header. Returns 1 when
 * found, 0 when offset is past the readable batches, or a negative code. */
static int find_batch(struct plog *log, struct segment *seg, uint64_t offset, uint64_t *pos,
                      struct batch_header *h)
{
    uint64_t p = segment_index_lookup(seg, offset);
    /* The walk is bounded: at most one index interval of batches, plus the one holding the
     * offset (and the file size); it steps over damaged ranges, never into them. */
    while (p < seg->readable_pos) {
        const struct seg_hole *hole = NULL;
        for (uint32_t k = 0; k < seg->n_holes && hole == NULL; k++)
            if (seg->holes[k].pos == p)
                hole = &seg->holes[k];
        if (hole != NULL) {
            p = hole->end_pos;
            continue;
        }
        uint64_t limit = segment_walk_limit(seg, p);
        int rc = plog_read_header(log, seg, p, h);
        if (rc < 0)
            return rc;
        if (h->batch_len == 0 || p + h->batch_len > limit)
            return 0;
        if (h->base_offset + h->last_offset_delta >= offset) {
            *pos = p;
            return 1;
        }
        p += h->batch_len;
    }
    return 0;
}

/* The segment's O_DIRECT read descriptor, pinned, or -1 when the file system refuses O_DIRECT
 * or no descriptor is free (the slice is then read through the page cache only). */
static int direct_fd(struct plog *log, struct segment *seg)
{
    char path[4096];
    bool direct = true;
    if (!log->st->direct || segment_path(seg, ".log", path, sizeof(path)) < 0)
        return -1;
    int fd = fcache_get(&log->st->fc, &seg->drd, path, O_RDONLY | O_DIRECT, &direct);
    if (fd < 0 || !direct)
        return -1;
    fcache_pin(&seg->drd);
    return fd;
}

/* Finds the slice from the in-memory offset index alone, without reading a header. Index
 * entries are batch starts in file order, so the bytes between two entries (or between an
 * entry and the readable end) are whole batches, and the later entry's offset is where they
 * end. The slice starts at the entry for `offset` and ends at the furthest entry (or the
 * readable end) within max_bytes whose offset is <= max_offset. Returns false when the index
 * cannot answer (no entry starts at offset, or the first interval alone exceeds max_bytes);
 * the caller then walks the headers. Each header costs a synchronous pread, which is a disk
 * read when the log was written around the page cache. */
static bool index_slice(const struct segment *seg, uint64_t offset, uint32_t max_bytes,
                        uint64_t max_offset, uint64_t *start, uint64_t *len, uint64_t *first,
                        uint64_t *next)
{
    uint32_t lo = 0, hi = seg->n_oidx; /* the last entry with rel <= offset - base */
    if (hi == 0 || offset < seg->base_offset)
        return false;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (seg->base_offset + seg->oidx[mid].rel <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Only an entry that starts exactly at `offset` is known to begin the batch holding it
     * (between two entries there may be several small batches): the usual case for a consumer
     * reading on, whose next fetch starts where the last slice ended. */
    if (lo == 0 || seg->oidx[lo - 1].pos >= seg->readable_pos ||
        seg->base_offset + seg->oidx[lo - 1].rel != offset)
        return false;
    const struct seg_oentry *e = &seg->oidx[lo - 1];
    uint64_t end = 0, end_offset = 0;
    uint64_t limit = segment_walk_limit(seg, e->pos);
    for (uint32_t j = lo; j < seg->n_oidx; j++) {
        const struct seg_oentry *f = &seg->oidx[j];
        if (f->pos > limit || f->pos >= seg->readable_pos || f->pos - e->pos > max_bytes ||
            seg->base_offset + f->rel > max_offset)
            break;
        end = f->pos;
        end_offset = seg->base_offset + f->rel;
    }
    /* readable_pos is a batch boundary (it moves by whole appends), so up to it is whole
     * batches too, whatever entries lie between (when no damaged range lies between). */
    if (limit == seg->readable_pos && seg->readable_pos > end &&
        seg->readable_pos - e->pos <= max_bytes && seg->readable_next <= max_offset) {
        end = seg->readable_pos;
        end_offset = seg->readable_next;
    }
    if (end <= e->pos || end_offset <= offset)
        return false;
    *start = e->pos;
    *len = end - e->pos;
    *first = seg->base_offset + e->rel;
    *next = end_offset;
    return true;
}

/* Serves a read from the tail cache when it holds the batch at `offset`. Only readable
 * batches are answered (the cache has them from their append on), and none of a failed log
 * (its last appends may never have been written). A read at the readable end is neither a
 * hit nor a miss. */
static bool read_cached(struct plog *log, uint64_t offset, uint32_t max_bytes,
                        uint64_t max_offset, struct plog_slice *out)
{
    uint64_t readable = log->q_read != NULL ? log->q_read->base_offset : log->next_offset;
    if (max_offset > readable)
        max_offset = readable;
    if (log->failed || offset >= max_offset)
        return false;
    struct tcache_hit hit;
    if (!tcache_read(log->st->tcache, &log->tc, offset, max_bytes, max_offset, true, &hit))
        return false;
    out->mem = hit.mem;
    out->len = hit.len;
    out->first_offset = hit.first_offset;
    out->next_offset = hit.next_offset;
    out->cache_pin = hit.ext;
    return true;
}

static int read_slice(struct plog *log, uint64_t offset, uint32_t max_bytes, uint64_t max_offset,
                      bool use_cache, struct plog_slice *out);

int plog_read(struct plog *log, uint64_t offset, uint32_t max_bytes, uint64_t max_offset,
              struct plog_slice *out)
{
    return read_slice(log, offset, max_bytes, max_offset, true, out);
}

static int read_slice(struct plog *log, uint64_t offset, uint32_t max_bytes, uint64_t max_offset,
                      bool use_cache, struct plog_slice *out)
{
    struct batch_header h;
    uint64_t pos;
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    out->direct_fd = -1;
    out->first_offset = out->next_offset = offset;
    if (offset < log->start_offset || offset > log->next_offset)
        return RL_E_OFFSET_OUT_OF_RANGE;
    if (use_cache && read_cached(log, offset, max_bytes, max_offset, out))
        return 0;
    uint32_t i = seg_index_for(log, offset);
    struct segment *seg = log->segs[i];
    /* Step past segments whose readable batches end before offset; a later segment can only
     * have readable data once this one is wholly readable. */
    while (offset >= seg->readable_next) {
        if (seg->readable_pos < seg->end_pos || i + 1 >= log->nsegs)
            return 0;
        if (offset < log->segs[i + 1]->base_offset) {
            /* Offsets missing between two segments (reported at open). */
            out->first_offset = seg->next_offset;
            out->next_offset = log->segs[i + 1]->base_offset;
            return RL_E_CORRUPT;
        }
        seg = log->segs[++i];
    }
    const struct seg_hole *hole = segment_hole_for_offset(seg, offset);
    if (hole != NULL) {
        out->first_offset = hole->offset;
        out->next_offset = hole->end_offset;
        return RL_E_CORRUPT;
    }
    uint64_t start, total = 0, next = offset, first;
    if (index_slice(seg, offset, max_bytes, max_offset, &start, &total, &first, &next)) {
        out->first_offset = first;
        goto found;
    }
    int rc = find_batch(log, seg, offset, &pos, &h);
    if (rc <= 0)
        return rc;
    if (h.base_offset >= max_offset)
        return 0;
    start = pos;
    out->first_offset = h.base_offset;
    uint64_t limit = segment_walk_limit(seg, pos);
    while (pos < limit) {
        if (total > 0) {
            rc = plog_read_header(log, seg, pos, &h);
            if (rc < 0)
                return rc;
        }
        if (h.base_offset >= max_offset || pos + h.batch_len > limit)
            break;
        if (total > 0 && total + h.batch_len > max_bytes)
            break;
        total += h.batch_len;
        next = h.base_offset + h.last_offset_delta + 1;
        pos += h.batch_len;
    }
found:;
    int fd = plog_seg_read_fd(log, seg);
    if (fd < 0)
        return fd;
    fcache_pin(&seg->rd);
    out->direct_fd = direct_fd(log, seg);
    seg->refs++;
    out->fd = fd;
    out->file_position = start;
    out->len = (uint32_t)total;
    out->next_offset = next;
    out->pin = seg;
    return 0;
}

uint64_t plog_truncations(const struct plog *log)
{
    return log->truncations;
}

void plog_slice_release(struct plog *log, struct plog_slice *slice)
{
    if (slice->cache_pin != NULL) {
        tcache_unpin(slice->cache_pin);
        slice->cache_pin = NULL;
    }
    struct segment *seg = slice->pin;
    if (seg == NULL)
        return;
    (void)log; /* the segment may have outlived its log (see plog_free_segments) */
    slice->pin = NULL;
    fcache_unpin(&seg->rd);
    if (slice->direct_fd >= 0)
        fcache_unpin(&seg->drd);
    RL_ASSERT(seg->refs > 0);
    if (--seg->refs == 0 && seg->deleted) {
        fcache_close(seg->fc, &seg->rd);
        fcache_close(seg->fc, &seg->wr);
        fcache_close(seg->fc, &seg->drd);
        segment_free(seg);
    }
}

/* Records a damaged range found by a reader: the batch at `pos` (header h) and what follows
 * it up to the next valid batch of the segment's readable bytes. */
static int contain_reported(struct plog *log, struct segment *seg, uint64_t pos,
                            const struct batch_header *h, uint64_t *from, uint64_t *to)
{
    struct io *io = log->st->io;
    uint64_t limit = segment_walk_limit(seg, pos), q;
    if (seg->finishing)
        return RL_E_FULL; /* its finish job reads the index right now: ask again shortly */
    struct batch_header nh;
    int fd = plog_seg_read_fd(log, seg);
    if (fd < 0)
        return fd;
    plog_hdr_window_drop(log->st);
    int found = segment_resync(io, seg, fd, pos + 1, limit, h->base_offset + 1,
                               log->st->scan_buf, PLOG_SCAN_BUF_BYTES, &q, &nh);
    if (found < 0)
        return found;
    bool tail = seg->readable_pos == seg->end_pos && limit == seg->end_pos;
    struct seg_hole hole = {pos, found ? q : limit, h->base_offset,
                            found ? nh.base_offset : (tail ? seg->next_offset : h->base_offset)};
    if (!found && !tail)
        return RL_E_CORRUPT; /* the active segment's unfinished end: nothing to record yet */
    int rc = segment_hole_add(seg, &hole);
    if (rc == 0 && found)
        rc = segment_index_insert(seg, pos, q, nh.base_offset);
    if (rc == 0)
        rc = segment_holes_save(io, seg);
    char path[PATH_MAX], what[200];
    segment_path(seg, ".log", path, sizeof(path));
    snprintf(what, sizeof(what), "damaged range found by a reader: bytes %llu..%llu, offsets "
             "%llu..%llu lost; later batches kept", (unsigned long long)hole.pos,
             (unsigned long long)hole.end_pos, (unsigned long long)hole.offset,
             (unsigned long long)hole.end_offset);
    RL_CORRUPT(path, (int64_t)pos, (int64_t)hole.offset, what);
    *from = hole.offset;
    *to = hole.end_offset;
    return rc < 0 ? rc : RL_E_CORRUPT;
}

int plog_report_damage(struct plog *log, uint64_t offset, uint64_t *from, uint64_t *to)
{
    struct plog_slice s;
    int rc = read_slice(log, offset, 1, UINT64_MAX, false, &s); /* the file's bytes */
    if (rc == RL_E_CORRUPT) {
        *from = s.first_offset;
        *to = s.next_offset;
        return rc;
    }
    if (rc < 0 || s.len == 0)
        return rc < 0 ? rc : RL_E_OFFSET_OUT_OF_RANGE;
    struct segment *seg = s.pin;
    uint8_t *buf = malloc(s.len);
    struct batch_header h;
    rc = buf == NULL ? -ENOMEM : 0;
    ssize_t n = rc == 0 ? io_file_pread(log->st->io, s.fd, buf, s.len, s.file_position) : 0;
    if (rc == 0 && n != (ssize_t)s.len)
        rc = n < 0 ? (int)n : -EIO;
    if (rc == 0 && batch_header_decode(buf, s.len, &h) == 0 && h.batch_len == s.len &&
        batch_validate(buf, s.len, &h) == 0) {
        rc = 0; /* intact */
    } else if (rc == 0) {
        batch_header_decode(buf, RL_BATCH_HEADER_SIZE, &h);
        h.base_offset = s.first_offset; /* what the walk found there */
        rc = contain_reported(log, seg, s.file_position, &h, from, to);
    }
    free(buf);
    plog_slice_release(log, &s);
    return rc;
}

int plog_read_copy(struct plog *log, uint64_t offset, uint32_t max_bytes, uint64_t max_offset,
                   uint8_t *buf, size_t cap)
{
    struct plog_slice s;
    uint32_t limit = cap < max_bytes ? (uint32_t)cap : max_bytes;
    int rc = plog_read(log, offset, limit, max_offset, &s);
    if (rc < 0 || s.len == 0)
        return rc;
    if (s.len > cap) {
        plog_slice_release(log, &s);
        return -ENOBUFS;
    }
    if (s.mem != NULL) {
        memcpy(buf, s.mem, s.len);
    } else {
        ssize_t n = io_file_pread(log->st->io, s.fd, buf, s.len, s.file_position);
        if (n != (ssize_t)s.len)
            rc = n < 0 ? (int)n : -EIO;
    }
    plog_slice_release(log, &s);
    return rc < 0 ? rc : (int)s.len;
}

int plog_offset_for_time(struct plog *log, int64_t timestamp_ms, uint64_t *offset)
{
    struct batch_header h;
    for (uint32_t i = 0; i < log->nsegs; i++) {
        struct segment *seg = log->segs[i];
        if (seg->max_ts < timestamp_ms)
            continue;
        uint64_t pos = segment_time_lookup(seg, timestamp_ms);
        while (pos < seg->readable_pos) {
            const struct seg_hole *hole = NULL;
            for (uint32_t k = 0; k < seg->n_holes && hole == NULL; k++)
                if (seg->holes[k].pos == pos)
                    hole = &seg->holes[k];
            if (hole != NULL) {
                pos = hole->end_pos;
                continue;
            }
            int rc = plog_read_header(log, seg, pos, &h);
            if (rc < 0)
                return rc;
            if (h.max_timestamp >= timestamp_ms &&
                h.base_offset + h.last_offset_delta >= log->start_offset) {
                *offset = h.base_offset > log->start_offset ? h.base_offset : log->start_offset;
                return 0;
            }
            pos += h.batch_len;
        }
    }
    *offset = log->next_offset;
    return 0;
}

/* --- maintenance ------------------------------------------------------------------------ */

/* Deletes the oldest segment (never the active one). */
static void drop_oldest(struct plog *log)
{
    struct segment *seg = log->segs[0];
    memmove(log->segs, log->segs + 1, (log->nsegs - 1) * sizeof(*log->segs));
    log->nsegs--;
    plog_segment_drop(log, seg);
    if (log->start_offset < log->segs[0]->base_offset)
        log->start_offset = log->segs[0]->base_offset;
}

int plog_enforce_retention(struct plog *log, int64_t now_ms)
{
    if (log->failed)
        return RL_E_LOG_FAILED;
    struct segment *act = log->segs[log->nsegs - 1];
    if (act->end_pos > 0 && now_ms - act->created_ms >= log->cfg.segment_ms) {
        int rc = plog_roll(log);
        if (rc < 0)
            return rc;
    }
    int deleted = 0;
    while (log->nsegs > 1) {
        struct segment *seg = log->segs[0];
        bool by_age = log->cfg.retention_ms >= 0 && seg->max_ts != INT64_MIN &&
                      seg->max_ts < now_ms - log->cfg.retention_ms;
        bool by_size = log->cfg.retention_bytes >= 0 &&
                       log->size_bytes - seg->end_pos >= (uint64_t)log->cfg.retention_bytes;
        if (!(by_age || by_size) || !(seg->finalized || seg->finishing))
            break;
        drop_oldest(log);
        deleted++;
    }
    return deleted;
}

int plog_advance_start(struct plog *log, uint64_t offset)
{
    if (offset > log->next_offset)
        return RL_E_OFFSET_OUT_OF_RANGE;
    if (offset <= log->start_offset)
        return 0;
    log->start_offset = offset;
    plog_start_checkpoint(log);
    while (log->nsegs > 1 && log->segs[1]->base_offset <= offset &&
           (log->segs[0]->finalized || log->segs[0]->finishing))
        drop_oldest(log);
    log->start_offset = offset;
    return 0;
}

/* Position of the batch starting exactly at `offset` in seg, or RL_E_INVALID_ARGUMENT. */
static int batch_start(struct plog *log, struct segment *seg, uint64_t offset, uint64_t *pos)
{
    struct batch_header h;
    if (offset == seg->base_offset) {
        *pos = 0;
        return 0;
    }
    int rc = find_batch(log, seg, offset, pos, &h);
    if (rc < 0)
        return rc;
    if (rc == 0 || h.base_offset != offset)
        return RL_E_INVALID_ARGUMENT;
    return 0;
}

/* The file work of a truncation, in the background: removals of later segments are done
 * (earlier jobs), so make them durable, cut the segment, sync it, and read back what the
 * writer needs (the partial last block) and the segment's largest timestamp. */
struct trunc_job {
    struct bio_job job;
    struct plog *log;
    struct segment *seg;
    uint64_t pos, offset;
    bool dropped;
    bool holes_changed;
    int64_t max_ts;
    uint8_t *block;     /* PLOG_ALIGN bytes: the partial block at pos */
    plog_truncate_done_fn done;
    void *ctx;
};

/* Removes seg's .index and .timeindex files. Returns how many there were, or a code. */
static int remove_index_files(struct io *io, const struct segment *seg)
{
    static const char *const exts[] = {".index", ".timeindex"};
    char path[PATH_MAX];
    int removed = 0;
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        if (segment_path(seg, exts[i], path, sizeof(path)) != 0)
            return -ENAMETOOLONG;
        int rc = io_path_unlink(io, path);
        if (rc < 0 && rc != -ENOENT)
            return rc;
        removed += rc == 0;
    }
    return removed;
}

static int trunc_work(struct bio_job *job)
{
    struct trunc_job *t = job->ctx;
    struct io *io = t->log->st->io;
    struct segment *seg = t->seg;
    char path[PATH_MAX];
    /* A cut segment's index files describe batches the cut removes and later appends replace
     * with others: they go first (the segment is saved again when it is next finished). Left
     * in place, a power cut after a later roll made the segment look sealed at recovery, its
     * stale index was trusted, and a read at one of its positions found no batch header. */
    int rc = remove_index_files(io, seg);
    if (rc > 0 || (rc == 0 && t->dropped))
        rc = io_dir_sync(io, t->log->dir); /* both removals before the cut */
    int fd = rc < 0 ? rc : (segment_path(seg, ".log", path, sizeof(path)) == 0
                                ? io_file_open(io, path, O_RDWR, 0) : -ENAMETOOLONG);
    if (fd < 0)
        return fd;
    rc = io_file_truncate(io, fd, t->pos);
    if (rc == 0)
        rc = io_file_fdatasync(io, fd);
    uint64_t blk = t->pos & ~(uint64_t)(PLOG_ALIGN - 1);
    if (rc == 0 && t->pos > blk) {
        ssize_t n = io_file_pread(io, fd, t->block, t->pos - blk, blk);
        rc = n == (ssize_t)(t->pos - blk) ? 0 : (n < 0 ? (int)n : -EIO);
    }
    /* The batches between the last surviving index entry and the cut still count toward the
     * segment's largest timestamp. */
    struct seg_scan sc;
    uint64_t from = seg->last_index_pos;
    uint64_t min = seg->base_offset + (seg->n_oidx ? seg->oidx[seg->n_oidx - 1].rel : 0);
    if (rc == 0 && segment_scan(io, seg, fd, from, t->pos, min, false, false,
                                t->log->cfg.index_interval_bytes, t->log->st->job_scan_buf,
                                PLOG_SCAN_BUF_BYTES, &sc) == 0)
        t->max_ts = sc.max_ts;
    io_file_close(io, fd);
    if (rc == 0 && t->holes_changed) {
        if (seg->n_holes > 0) {
            rc = segment_holes_save(io, seg);
        } else if (segment_path(seg, ".damaged", path, sizeof(path)) == 0) {
            int u = io_path_unlink(io, path);
            rc = u == -ENOENT ? 0 : u;
        }
    }
    return rc;
}

static void trunc_done(struct bio_job *job, int result)
{
    struct trunc_job *t = job->ctx;
    struct plog *log = t->log;
    struct segment *seg = t->seg;
    plog_job_finished(log);
    log->trunc_busy = false;
    if (result < 0) {
        plog_fail(log, result); /* the file may be cut or not: only recovery knows */
    } else {
        memcpy(log->tail_block, t->block, t->pos & (PLOG_ALIGN - 1));
        if (t->max_ts > seg->max_ts)
            seg->max_ts = t->max_ts;
        seg->ready = true;
    }
    plog_truncate_done_fn done = t->done;
    void *ctx = t->ctx;
    free(t->block);
    free(t);
    done(ctx, result);
    plog_pump(log);
}

/* Carries out a truncation whose log is idle: the cut in memory at once, the files in the
 * background. Returns 0 (done will run) or a code for the caller's callback. */
static int trunc_start(struct plog *log, uint64_t offset, plog_truncate_done_fn done, void *ctx)
{
    uint64_t pos;
    if (log->failed)
        return log->failed;
    if (offset < log->start_offset || offset > log->next_offset)
        return RL_E_OFFSET_OUT_OF_RANGE;
    if (offset == log->next_offset)
        return 1; /* nothing to cut */
    uint32_t i = seg_index_for(log, offset);
    struct segment *seg = log->segs[i];
    int rc = batch_start(log, seg, offset, &pos);
    if (rc < 0)
        return rc;
    struct trunc_job *t = calloc(1, sizeof(*t));
    if (t == NULL || posix_memalign((void **)&t->block, PLOG_ALIGN, PLOG_ALIGN) != 0) {
        free(t);
        return -ENOMEM;
    }
    plog_release_idle(log);
    RL_ASSERT(log->ch_head == NULL);
    plog_hdr_window_drop(log->st);
    tcache_drop_from(log->st->tcache, &log->tc, offset);
    log->truncations++;
    t->dropped = log->nsegs > i + 1;
    while (log->nsegs > i + 1) {
        struct segment *s = log->segs[--log->nsegs];
        fcache_close(&log->st->fc, &s->wr);
        plog_segment_drop(log, s); /* its removal job runs before the truncation job */
    }
    fcache_close(&log->st->fc, &seg->wr);
    log->size_bytes -= seg->end_pos - pos;
    segment_index_truncate(seg, pos);
    uint32_t holes = seg->n_holes;
    segment_holes_truncate(seg, pos);
    t->holes_changed = holes != seg->n_holes || (holes > 0 &&
                                                 seg->holes[holes - 1].end_pos > pos);
    seg->end_pos = seg->readable_pos = pos;
    seg->next_offset = seg->readable_next = offset;
    seg->sealed = seg->finalized = false;
    seg->ready = false; /* until the file is cut */
    seg->falloc_end = pos;
    seg->lsn_base = 0;
    log->next_offset = offset;
    log->appended_lsn = log->issued_lsn = log->written_lsn = log->durable_lsn = (int64_t)pos;
    *t = (struct trunc_job){.log = log, .seg = seg, .pos = pos, .offset = offset,
                            .dropped = t->dropped, .holes_changed = t->holes_changed,
                            .max_ts = INT64_MIN, .block = t->block, .done = done, .ctx = ctx};
    t->job.ctx = t;
    log->trunc_busy = true;
    plog_job_submit(log, &t->job, trunc_work, trunc_done);
    return 0;
}

/* Starts the truncation that waited for the log to go idle. */
void plog_truncate_resume(struct plog *log)
{
    if (!log->trunc_waiting || log->wop_count > 0 || log->sync_inflight || log->jobs > 0 ||
        log->falloc_busy || log->q_head != NULL || log->issued_lsn < log->appended_lsn)
        return;
    log->trunc_waiting = false;
    int rc = trunc_start(log, log->trunc_offset, log->trunc_done, log->trunc_ctx);
    if (rc != 0) {
        log->trunc_busy = false;
        log->trunc_done(log->trunc_ctx, rc > 0 ? 0 : rc);
    }
}

int plog_truncate_to_async(struct plog *log, uint64_t offset, plog_truncate_done_fn done,
                           void *ctx)
{
    if (log->closing)
        return RL_E_LOG_CLOSED;
    if (log->failed)
        return RL_E_LOG_FAILED;
    if (log->trunc_busy)
        return RL_E_FULL;
    if (offset < log->start_offset || offset > log->next_offset)
        return RL_E_OFFSET_OUT_OF_RANGE;
    log->trunc_busy = true; /* appends wait from now on */
    log->trunc_waiting = true;
    log->trunc_offset = offset;
    log->trunc_done = done;
    log->trunc_ctx = ctx;
    plog_pump(log);
    plog_truncate_resume(log);
    return 0;
}

struct trunc_wait {
    bool done;
    int result;
};

static void trunc_waited(void *ctx, int result)
{
    struct trunc_wait *w = ctx;
    w->done = true;
    w->result = result;
}

int plog_truncate_to(struct plog *log, uint64_t offset)
{
    struct trunc_wait w = {false, 0};
    int rc = plog_truncate_to_async(log, offset, trunc_waited, &w);
    if (rc < 0)
        return rc;
    struct io *io = log->st->io;
    uint64_t deadline = io_now_ns(io) + PLOG_DRAIN_TIMEOUT_NS;
    while (!w.done && io_now_ns(io) < deadline)
        io_run(io, 100 * 1000000ull);
    return w.done ? w.result : RL_E_TIMED_OUT;
}

/* --- the log-start checkpoint, in the background ---------------------------------------- */

static int start_work(struct bio_job *job)
{
    struct plog *log = job->ctx;
    uint8_t buf[8];
    rl_store_le64(buf, log->start_job_value);
    return checkpoint_save(log->st->io, log->dir, PLOG_LOG_START_CHECKPOINT, buf, sizeof(buf),
                           CHECKPOINT_DURABLE);
}

static void start_done(struct bio_job *job, int result)
{
    struct plog *log = job->ctx;
    plog_job_finished(log);
    log->start_job_busy = false;
    if (result < 0)
        RL_WARN("%s: cannot write the log-start checkpoint (%s); after a restart the log may "
                "start earlier again", log->dir, rl_strerror(result));
    if (log->start_dirty)
        plog_start_checkpoint(log);
    /* A truncation waits for every job: this may have been the last one (without this, a
     * truncation asked for while the checkpoint was written waited for some other event, and a
     * log given no more work waited for ever; the power-cut seeds found it). */
    if (log->trunc_waiting)
        plog_truncate_resume(log);
}

/* Writes the current log start in the background: one job at a time, the latest value wins. */
void plog_start_checkpoint(struct plog *log)
{
    if (log->start_job_busy) {
        log->start_dirty = true;
        return;
    }
    log->start_dirty = false;
    log->start_job_busy = true;
    log->start_job_value = log->start_offset;
    log->start_job.ctx = log;
    plog_job_submit(log, &log->start_job, start_work, start_done);
}
