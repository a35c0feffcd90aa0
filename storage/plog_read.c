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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/checkpoint.h"
#include "storage/plog_int.h"

#define LOG_START_CHECKPOINT "log-start"

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
    ssize_t n = pread(fd, st->scan_buf, want, (off_t)pos);
    if (n < (ssize_t)RL_BATCH_HEADER_SIZE) {
        *err = n < 0 ? -errno : -EIO;
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
     * offset (and the file size). */
    while (p < seg->readable_pos) {
        int rc = plog_read_header(log, seg, p, h);
        if (rc < 0)
            return rc;
        if (h->batch_len == 0 || p + h->batch_len > seg->readable_pos)
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
    for (uint32_t j = lo; j < seg->n_oidx; j++) {
        const struct seg_oentry *f = &seg->oidx[j];
        if (f->pos >= seg->readable_pos || f->pos - e->pos > max_bytes ||
            seg->base_offset + f->rel > max_offset)
            break;
        end = f->pos;
        end_offset = seg->base_offset + f->rel;
    }
    /* readable_pos is a batch boundary (it moves by whole appends), so up to it is whole
     * batches too, whatever entries lie between. */
    if (seg->readable_pos > end && seg->readable_pos - e->pos <= max_bytes &&
        seg->readable_next <= max_offset) {
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

int plog_read(struct plog *log, uint64_t offset, uint32_t max_bytes, uint64_t max_offset,
              struct plog_slice *out)
{
    struct batch_header h;
    uint64_t pos;
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    out->direct_fd = -1;
    out->first_offset = out->next_offset = offset;
    if (offset < log->start_offset || offset > log->next_offset)
        return RL_E_OFFSET_OUT_OF_RANGE;
    uint32_t i = seg_index_for(log, offset);
    struct segment *seg = log->segs[i];
    /* Step past segments whose readable batches end before offset; a later segment can only
     * have readable data once this one is wholly readable. */
    while (offset >= seg->readable_next) {
        if (seg->readable_pos < seg->end_pos || i + 1 >= log->nsegs)
            return 0;
        seg = log->segs[++i];
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
    while (pos < seg->readable_pos) {
        if (total > 0) {
            rc = plog_read_header(log, seg, pos, &h);
            if (rc < 0)
                return rc;
        }
        if (h.base_offset >= max_offset || pos + h.batch_len > seg->readable_pos)
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

void plog_slice_release(struct plog *log, struct plog_slice *slice)
{
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
    size_t got = 0;
    while (got < s.len) {
        ssize_t n = pread(s.fd, buf + got, s.len - got, (off_t)(s.file_position + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            break;
        }
        got += (size_t)n;
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
        if (!(by_age || by_size) || !seg->finalized)
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
    uint8_t buf[8];
    memcpy(buf, &offset, sizeof(buf));
    int rc = checkpoint_write(log->dir, LOG_START_CHECKPOINT, buf, sizeof(buf));
    if (rc < 0)
        return rc;
    log->start_offset = offset;
    while (log->nsegs > 1 && log->segs[1]->base_offset <= offset && log->segs[0]->finalized)
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

int plog_truncate_to(struct plog *log, uint64_t offset)
{
    uint64_t pos;
    int rc = plog_drain(log);
    if (rc < 0)
        return rc;
    if (offset < log->start_offset || offset > log->next_offset)
        return RL_E_OFFSET_OUT_OF_RANGE;
    if (offset == log->next_offset)
        return 0;
    uint32_t i = seg_index_for(log, offset);
    struct segment *seg = log->segs[i];
    rc = batch_start(log, seg, offset, &pos);
    if (rc < 0)
        return rc;
    plog_release_idle(log);
    RL_ASSERT(log->ch_head == NULL);
    plog_hdr_window_drop(log->st);
    bool dropped = log->nsegs > i + 1;
    while (log->nsegs > i + 1) {
        struct segment *s = log->segs[--log->nsegs];
        fcache_close(&log->st->fc, &s->wr);
        plog_segment_drop(log, s);
    }
    /* The divergent tail must stay gone after a power cut: make the renames durable. */
    if (dropped && (rc = checkpoint_sync_dir(log->dir)) < 0)
        return rc;
    int fd = plog_seg_write_fd(log, seg);
    if (fd < 0)
        return fd;
    if (ftruncate(fd, (off_t)pos) < 0 || fdatasync(fd) < 0) {
        rc = -errno;
        return rc;
    }
    log->size_bytes -= seg->end_pos - pos;
    segment_index_truncate(seg, pos);
    /* Fold the batches between the last surviving index entry and the cut back into the
     * segment's largest timestamp. */
    struct seg_scan sc;
    uint64_t from = seg->last_index_pos;
    uint64_t min = seg->base_offset + (seg->n_oidx ? seg->oidx[seg->n_oidx - 1].rel : 0);
    int rfd = plog_seg_read_fd(log, seg);
    if (rfd >= 0 && segment_scan(seg, rfd, from, pos, min, false, false,
                                 log->cfg.index_interval_bytes, log->st->scan_buf,
                                 PLOG_SCAN_BUF_BYTES, &sc) == 0 && sc.max_ts > seg->max_ts)
        seg->max_ts = sc.max_ts;
    seg->end_pos = seg->readable_pos = pos;
    seg->next_offset = seg->readable_next = offset;
    seg->sealed = seg->finalized = false;
    seg->falloc_end = pos;
    seg->lsn_base = 0;
    log->next_offset = offset;
    log->appended_lsn = log->issued_lsn = log->written_lsn = log->durable_lsn = (int64_t)pos;
    return plog_load_tail_block(log);
}
