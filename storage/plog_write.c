/*
 * plog_write: the append path of the partition log. broker -> plog_append (copy into the
 * aligned write buffer, assign offsets, index) -> plog_pump (vectored O_DIRECT writes through
 * io_uring; under flush policy `batch` each write is linked to an fdatasync, one group commit
 * at a time, so everything appended while a group is in flight goes out together as the next
 * one) -> completion callbacks -> plog_progress (advance cursors, make batches readable,
 * acknowledge in order, recycle chunks, finish rolled segments). Layout notes in plog_int.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/plog_int.h"

static uint64_t align_down(uint64_t v)
{
    return v & ~(uint64_t)(PLOG_ALIGN - 1);
}

static uint64_t align_up(uint64_t v)
{
    return align_down(v + PLOG_ALIGN - 1);
}

static struct segment *active_seg(struct plog *log)
{
    return log->segs[log->nsegs - 1];
}

/* --- chunk pool -------------------------------------------------------------------------- */

/* Adds one slab (PLOG_SLAB_BYTES, 2 MiB-aligned, backed by huge pages where the kernel
 * allows) cut into chunks to the free list. Chunks in a huge page are physically contiguous,
 * so a 1 MiB write reaches the device as one request instead of being split at the queue's
 * segment limit (254 x 4 KiB pages here). Slabs stay until storage_destroy: the pool is
 * bounded (STORAGE_MAX_CHUNKS) and its memory is reused, never re-faulted. */
static bool slab_add(struct storage *st)
{
    unsigned per = PLOG_SLAB_BYTES / PLOG_CHUNK_BYTES;
    if (st->n_alloc + per > STORAGE_MAX_CHUNKS || st->n_slabs >= STORAGE_MAX_SLABS)
        return false;
    uint8_t *mem;
    struct chunk *cs = calloc(per, sizeof(*cs));
    if (cs == NULL || posix_memalign((void **)&mem, PLOG_SLAB_BYTES, PLOG_SLAB_BYTES) != 0) {
        free(cs);
        return false;
    }
    (void)madvise(mem, PLOG_SLAB_BYTES, MADV_HUGEPAGE); /* a hint; 4 KiB pages work too */
    st->slabs[st->n_slabs++] = (struct slab){mem, cs};
    for (unsigned k = per; k-- > 0;) {
        cs[k].buf = mem + (size_t)k * PLOG_CHUNK_BYTES;
        cs[k].next = st->free_chunks;
        st->free_chunks = &cs[k];
    }
    st->n_alloc += per;
    st->n_free += per;
    return true;
}

static struct chunk *chunk_get(struct storage *st)
{
    if (st->free_chunks == NULL && !slab_add(st))
        return NULL;
    struct chunk *c = st->free_chunks;
    st->free_chunks = c->next;
    st->n_free--;
    c->next = NULL;
    c->seg = NULL;
    c->fill = 0;
    return c;
}

static void chunk_put(struct storage *st, struct chunk *c)
{
    c->next = st->free_chunks;
    st->free_chunks = c;
    st->n_free++;
}

static unsigned chunks_available(const struct storage *st)
{
    return st->n_free + (STORAGE_MAX_CHUNKS - st->n_alloc);
}

/* Lends the log a ring of write slots. Returns false when memory is short. */
static bool ring_take(struct plog *log)
{
    struct storage *st = log->st;
    if (log->wops != NULL)
        return true;
    struct wop_ring *r = st->free_rings;
    if (r != NULL) {
        st->free_rings = r->next;
        st->n_free_rings--;
    } else if ((r = malloc(sizeof(*r))) == NULL) {
        return false;
    }
    log->wops = r;
    log->wop_head = 0;
    return true;
}

/* Gives the ring back once nothing is in flight. */
static void ring_give(struct plog *log)
{
    struct storage *st = log->st;
    struct wop_ring *r = log->wops;
    if (r == NULL || log->wop_count > 0)
        return;
    log->wops = NULL;
    if (st->n_free_rings >= STORAGE_FREE_RINGS_KEPT) {
        free(r);
        return;
    }
    r->next = st->free_rings;
    st->free_rings = r;
    st->n_free_rings++;
}

/* Removes the head chunk; each chunk holds a pin on its segment's write descriptor. */
static void chunk_pop_head(struct plog *log)
{
    struct chunk *c = log->ch_head;
    log->ch_head = c->next;
    if (log->ch_head == NULL)
        log->ch_tail = NULL;
    log->n_chunks--;
    fcache_unpin(&c->seg->wr);
    chunk_put(log->st, c);
}

void plog_chunks_free_all(struct plog *log)
{
    while (log->ch_head != NULL)
        chunk_pop_head(log);
    ring_give(log);
}

/* Appends a fresh chunk for the active segment, continuing the previous chunk of the same
 * segment or, when there is none, starting at the block holding the segment's end (whose
 * bytes come back from tail_block). The caller checked capacity. */
static struct chunk *chunk_append(struct plog *log, struct segment *seg)
{
    struct chunk *c = chunk_get(log->st);
    RL_ASSERT(c != NULL);
    c->seg = seg;
    struct chunk *t = log->ch_tail;
    if (t != NULL && t->seg == seg) {
        c->file_pos = t->file_pos + PLOG_CHUNK_BYTES;
    } else {
        c->file_pos = align_down(seg->end_pos);
        c->fill = (uint32_t)(seg->end_pos - c->file_pos);
        memcpy(c->buf, log->tail_block, c->fill);
    }
    fcache_pin(&seg->wr);
    if (t != NULL)
        t->next = c;
    else
        log->ch_head = c;
    log->ch_tail = c;
    log->n_chunks++;
    return c;
}

/* Chunks needed to take `len` more bytes into the active segment's buffer. */
static unsigned chunks_needed(const struct plog *log, const struct segment *seg, uint32_t len)
{
    const struct chunk *t = log->ch_tail;
    uint64_t room;
    if (t != NULL && t->seg == seg)
        room = PLOG_CHUNK_BYTES - t->fill;
    else
        room = 0;
    if (len <= room)
        return 0;
    uint64_t rest = len - room;
    if (room == 0 && !(t != NULL && t->seg == seg))
        rest += seg->end_pos - align_down(seg->end_pos); /* the reloaded partial block */
    return (unsigned)((rest + PLOG_CHUNK_BYTES - 1) / PLOG_CHUNK_BYTES);
}

static void copy_in(struct plog *log, struct segment *seg, const uint8_t *src, uint32_t len)
{
    while (len > 0) {
        struct chunk *c = log->ch_tail;
        if (c == NULL || c->seg != seg || c->fill == PLOG_CHUNK_BYTES)
            c = chunk_append(log, seg);
        uint32_t n = PLOG_CHUNK_BYTES - c->fill;
        if (n > len)
            n = len;
        memcpy(c->buf + c->fill, src, n);
        c->fill += n;
        src += n;
        len -= n;
    }
}

/* --- roll ------------------------------------------------------------------------------ */

/* Seals the active segment and starts the next at the log end offset. The new file is created
 * and preallocated in the background; appends to it wait in the write buffer until then. */
int plog_roll(struct plog *log)
{
    struct segment *old = active_seg(log);
    struct segment *seg = segment_new(log->dir, log->next_offset);
    if (seg == NULL)
        return -ENOMEM;
    int rc = plog_segs_push(log, seg);
    if (rc < 0) {
        segment_free(seg);
        return rc;
    }
    seg->lsn_base = log->appended_lsn;
    seg->created_ms = io_wall_ms(log->st->io);
    old->sealed = true;
    plog_roll_submit(log, seg);
    /* An idle old segment is finished at once; a busy one when its last write completes. */
    plog_pump(log);
    return 0;
}

/* --- append ----------------------------------------------------------------------------- */

static void kick_done(struct io_op *op, int result)
{
    struct plog *log = op->ctx;
    (void)result;
    log->kick_armed = false;
    plog_pump(log);
}

static bool roll_due(const struct plog *log, const struct segment *seg, uint32_t len,
                     uint32_t last_offset_delta)
{
    if (seg->end_pos == 0)
        return false;
    uint64_t limit = log->cfg.segment_bytes;
    if (limit > SEGMENT_MAX_BYTES)
        limit = SEGMENT_MAX_BYTES;
    if (seg->end_pos + len > limit)
        return true;
    /* Relative offsets are u32 in the index: a batch whose last offset would lie 2^32 or more
     * past the segment's base starts a new segment (a batch may claim up to 2^32 records, so
     * a few small batches can get there long before the segment is large). */
    if (log->next_offset - seg->base_offset + last_offset_delta > UINT32_MAX)
        return true;
    return io_wall_ms(log->st->io) - seg->created_ms >= log->cfg.segment_ms;
}

static void queue_request(struct plog *log, struct plog_append *req)
{
    req->next = NULL;
    if (log->q_tail != NULL)
        log->q_tail->next = req;
    else
        log->q_head = req;
    log->q_tail = req;
    if (log->q_read == NULL)
        log->q_read = req;
}

int plog_append(struct plog *log, struct plog_append *req)
{
    struct batch_header h;
    if (log->closing)
        return RL_E_LOG_CLOSED;
    if (log->failed)
        return RL_E_LOG_FAILED;
    if (log->disk_full)
        return RL_E_DISK_FULL;
    if (log->trunc_busy)
        return RL_E_FULL; /* a truncation is under way */
    if (req->len > log->cfg.max_batch_bytes)
        return RL_E_MESSAGE_TOO_LARGE;
    int rc = batch_header_decode(req->batch, req->len, &h);
    if (rc < 0)
        return rc;
    if (h.batch_len != req->len)
        return RL_E_BATCH_LENGTH;
    if (req->keep_offsets && h.base_offset != log->next_offset)
        return RL_E_STALE_OFFSET;
    struct segment *seg = active_seg(log);
    if (roll_due(log, seg, req->len, h.last_offset_delta)) {
        rc = plog_roll(log);
        if (rc < 0)
            return rc;
        seg = active_seg(log);
    }
    unsigned need = chunks_needed(log, seg, req->len);
    if (log->n_chunks + need > PLOG_LOG_MAX_CHUNKS || need > chunks_available(log->st))
        return RL_E_FULL;
    if (need > 0 && seg->wr.pins == 0 && seg->ready) {
        /* Open (or keep) the write descriptor now, so running out of descriptors is a clean
         * refusal here rather than a failure after the batch was accepted. */
        rc = plog_seg_write_fd(log, seg);
        if (rc < 0)
            return rc;
    }
    uint64_t base = req->keep_offsets ? h.base_offset : log->next_offset;
    rc = segment_index_add(seg, seg->end_pos, base, h.max_timestamp,
                           log->cfg.index_interval_bytes, false);
    if (rc < 0)
        return rc;

    /* Stamp offsets and epoch into our copy only; the checksum does not cover them. */
    uint8_t head[RL_BATCH_CHECKSUM_FROM];
    memcpy(head, req->batch, sizeof(head));
    batch_stamp(head, base, req->leader_epoch);
    copy_in(log, seg, head, sizeof(head));
    copy_in(log, seg, req->batch + sizeof(head), req->len - (uint32_t)sizeof(head));
    tcache_put(log->st->tcache, &log->tc, base, base + h.last_offset_delta + 1, head,
               sizeof(head), req->batch + sizeof(head), req->len - (uint32_t)sizeof(head));

    seg->end_pos += req->len;
    seg->next_offset = base + h.last_offset_delta + 1;
    log->next_offset = seg->next_offset;
    log->size_bytes += req->len;
    log->appended_lsn += req->len;
    req->base_offset = base;
    req->last_offset = seg->next_offset - 1;
    req->end_position = (uint64_t)log->appended_lsn;
    queue_request(log, req);
    if (log->cfg.flush_policy != PLOG_FLUSH_BATCH) {
        plog_pump(log);
    } else if (log->wop_count == 0 && !log->kick_armed) {
        /* Group commit: do not write this batch alone. A zero timeout completes at the next
         * io_run, after the caller has queued whatever else this turn of its loop produces,
         * and only then does the group go out. While a group is in flight, its completion
         * starts the next one. */
        log->kick_armed = true;
        log->kick = (struct io_op){.done = kick_done, .ctx = log};
        io_prep_timeout(log->st->io, &log->kick, 0, 0);
    }
    return 0;
}

/* --- issuing writes --------------------------------------------------------------------- */

static void wop_done_write(struct io_op *op, int result);
static void wop_done_sync(struct io_op *op, int result);

/* The segment holding stream position `lsn` among those with buffered data. */
static struct segment *seg_for_lsn(struct plog *log, int64_t lsn)
{
    for (uint32_t i = log->nsegs; i-- > 0;) {
        struct segment *s = log->segs[i];
        if (s->lsn_base <= lsn && (lsn < s->lsn_base + (int64_t)s->end_pos || i == log->nsegs - 1))
            return s;
    }
    return active_seg(log);
}

/* Hands the ring one vectored write of seg's bytes [from, to) (from rounded down, the end
 * padded up to whole blocks), linked to an fdatasync when `sync`. */
static void issue_write(struct plog *log, struct segment *seg, int fd, uint64_t from,
                        uint64_t to, bool sync)
{
    struct wop *w = &log->wops->w[(log->wop_head + log->wop_count) % PLOG_MAX_WOPS];
    uint64_t start = align_down(from), end = align_up(to);
    RL_ASSERT(fd >= 0 && seg->wr.pins > 0);
    memset(w, 0, offsetof(struct wop, iov));
    w->log = log;
    w->seg = seg;
    for (struct chunk *c = log->ch_head; c != NULL; c = c->next) {
        if (c->seg != seg)
            continue;
        uint64_t lo = start > c->file_pos ? start : c->file_pos;
        uint64_t hi = c->file_pos + PLOG_CHUNK_BYTES;
        if (hi > end)
            hi = end;
        if (lo >= hi)
            continue;
        if (to > c->file_pos && to < hi) /* zero the padding after the data in the last block */
            memset(c->buf + (to - c->file_pos), 0, hi - to);
        RL_ASSERT(w->iovcnt < PLOG_MAX_IOV);
        w->iov[w->iovcnt++] = (struct iovec){c->buf + (lo - c->file_pos), hi - lo};
    }
    size_t covered = 0;
    for (int i = 0; i < w->iovcnt; i++)
        covered += w->iov[i].iov_len;
    RL_ASSERTF(covered == end - start, "write buffer covers %zu of %llu bytes", covered,
               (unsigned long long)(end - start));
    w->lsn_end = seg->lsn_base + (int64_t)to;
    w->expect_bytes = (uint32_t)(end - start);
    w->has_write = true;
    w->has_sync = sync;
    w->pending = sync ? 2 : 1;
    w->wr = (struct io_op){.done = wop_done_write, .ctx = w};
    io_prep_writev(log->st->io, &w->wr, fd, w->iov, w->iovcnt, start, sync ? IO_LINK : 0);
    if (sync) {
        w->sync = (struct io_op){.done = wop_done_sync, .ctx = w};
        io_prep_fdatasync(log->st->io, &w->sync, fd, 0);
    }
    log->wop_count++;
    log->wops_busy++;
    log->issued_lsn = w->lsn_end;
}

/* Issues the write unless the segment must first reserve space for it. */
static bool issue(struct plog *log, struct segment *seg, int fd, uint64_t from, uint64_t to,
                  bool sync)
{
    if (plog_prealloc_first(log, seg, fd, align_up(to)))
        return false;
    issue_write(log, seg, fd, from, to, sync);
    return true;
}

/* Chooses the next write, if any may go now. Returns true when one was issued. */
static bool pump_one(struct plog *log)
{
    /* Completions arrive out of order; a finished write keeps its slot until the ones
     * before it finish too, so the queue depth counts busy slots, not occupied ones. */
    if (log->issued_lsn >= log->appended_lsn || log->wop_count >= PLOG_MAX_WOPS ||
        log->wops_busy >= PLOG_QD || (log->disk_full && !log->disk_full_retrying))
        return false;
    struct segment *seg = seg_for_lsn(log, log->issued_lsn);
    if (!seg->ready)
        return false; /* its roll job completes, then pumps */
    int fd = plog_seg_write_fd(log, seg);
    if (fd < 0) {
        /* Every cached descriptor is pinned by other I/O: try again shortly. */
        plog_retry_arm(log, PLOG_FD_RETRY_MS);
        return false;
    }
    if (!ring_take(log))
        return false; /* retried at the next completion or append */
    uint64_t from = (uint64_t)(log->issued_lsn - seg->lsn_base);
    uint64_t data_end = seg->end_pos;
    uint64_t cap_end = align_down(from) + PLOG_MAX_WRITE_BYTES;
    if (log->cfg.flush_policy == PLOG_FLUSH_BATCH) {
        /* One group commit at a time: all that accumulated goes out as the next group. */
        if (log->wop_count > 0)
            return false;
        return issue(log, seg, fd, from, data_end < cap_end ? data_end : cap_end, true);
    }
    /* Streaming writes end on PLOG_WRITE_UNIT boundaries of the file, like a raw sequential
     * writer's, and only whole blocks go out while others are in flight. */
    uint64_t unit_end = (from / PLOG_WRITE_UNIT + 1) * PLOG_WRITE_UNIT;
    if (log->wop_count == 0) {
        uint64_t to = data_end < cap_end ? data_end : cap_end;
        /* Leave a partial last block for later when whole blocks make a full write anyway:
         * a partial block in flight would hold back the writes behind it. */
        if (!seg->sealed && align_down(data_end) >= unit_end)
            to = unit_end;
        return issue(log, seg, fd, from, to, false);
    }
    if (from % PLOG_ALIGN != 0)
        return false; /* the block at `from` is being written; it must land first */
    uint64_t full_end = seg->sealed ? data_end : align_down(data_end);
    if (full_end >= unit_end) {
        return issue(log, seg, fd, from, unit_end, false);
    }
    if (seg->sealed && full_end > from) {
        return issue(log, seg, fd, from, full_end, false);
    }
    return false;
}

static void timer_done(struct io_op *op, int result);
static void syncop_done(struct io_op *op, int result);

/* Interval policy: a standalone fdatasync of what has been written, at most every interval. */
static void pump_interval(struct plog *log)
{
    if (log->cfg.flush_policy != PLOG_FLUSH_INTERVAL || log->failed || log->closing)
        return;
    if (log->durable_lsn >= log->written_lsn || log->timer_armed)
        return;
    log->timer_armed = true;
    log->timer = (struct io_op){.done = timer_done, .ctx = log};
    io_prep_timeout(log->st->io, &log->timer, (uint64_t)log->cfg.flush_interval_ms * 1000000ull,
                    0);
}

static void timer_done(struct io_op *op, int result)
{
    struct plog *log = op->ctx;
    log->timer_armed = false;
    if (result < 0 || log->failed || log->sync_inflight || log->closing)
        return;
    struct segment *seg = active_seg(log);
    if (log->durable_lsn >= log->written_lsn)
        return;
    int fd = plog_seg_write_fd(log, seg);
    if (fd < 0) {
        pump_interval(log); /* every descriptor is busy; try again next interval */
        return;
    }
    fcache_pin(&seg->wr);
    log->sync_inflight = true;
    struct wop *w = &log->syncop;
    w->log = log;
    w->seg = seg;
    w->lsn_end = log->written_lsn; /* an fdatasync covers the writes completed before it */
    w->sync = (struct io_op){.done = syncop_done, .ctx = w};
    io_prep_fdatasync(log->st->io, &w->sync, fd, 0);
}

static void plog_progress(struct plog *log);

static void syncop_done(struct io_op *op, int result)
{
    struct wop *w = op->ctx;
    struct plog *log = w->log;
    log->sync_inflight = false;
    fcache_unpin(&w->seg->wr);
    if (result < 0)
        plog_fail(log, result);
    else if (w->lsn_end > log->durable_lsn)
        log->durable_lsn = w->lsn_end;
    plog_progress(log);
}

void plog_pump(struct plog *log)
{
    if (log->failed == 0) {
        for (int i = 0; i < PLOG_MAX_WOPS && pump_one(log); i++)
            ;
        pump_interval(log);
    }
    plog_progress(log);
}

/* --- completions ------------------------------------------------------------------------ */

static bool space_error(int err)
{
    return err == -ENOSPC || err == -EDQUOT;
}

static void wop_complete(struct wop *w, int result, bool is_sync)
{
    if (w->log->fault_next != 0 && result >= 0) {
        result = w->log->fault_next; /* test hook: pretend the disk failed */
        w->log->fault_next = 0;
    }
    if (result < 0 && w->res == 0) {
        w->res = result;
        w->res_from_sync = is_sync;
    }
    if (--w->pending == 0)
        w->log->wops_busy--;
    plog_progress(w->log);
}

static void wop_done_write(struct io_op *op, int result)
{
    struct wop *w = op->ctx;
    /* A short write to a regular file means the file system ran out of space part way (an
     * O_DIRECT write reports it that way); the retry of the rest would say -ENOSPC. */
    if (result >= 0 && (uint32_t)result != w->expect_bytes)
        result = -ENOSPC;
    wop_complete(w, result, false);
}

static void wop_done_sync(struct io_op *op, int result)
{
    wop_complete(op->ctx, result, true);
}

/* Sticky failure: nothing appended after this point can be trusted to reach the disk, so
 * every waiting append fails now and every later one is refused. */
void plog_fail(struct plog *log, int err)
{
    if (log->disk_full) {
        log->disk_full = false;
        log->disk_full_rewind = false;
        log->disk_full_retrying = false;
        log->st->disk_full_logs--;
    }
    if (log->failed == 0) {
        RL_ERROR("%s: write or fsync failed (%s); the log refuses further appends until it is "
                 "reopened (check the disk; recovery on open keeps what reached it)", log->dir,
                 rl_strerror(err));
        log->failed = err;
    }
}

static void mark_readable(struct plog *log)
{
    while (log->q_read != NULL && (int64_t)log->q_read->end_position <= log->written_lsn) {
        struct plog_append *r = log->q_read;
        int64_t end = (int64_t)r->end_position;
        for (uint32_t i = log->nsegs; i-- > 0;) {
            struct segment *s = log->segs[i];
            if (s->lsn_base < end) {
                s->readable_pos = (uint64_t)(end - s->lsn_base);
                s->readable_next = r->last_offset + 1;
                break;
            }
        }
        log->q_read = r->next;
    }
}

/* Finishes sealed segments whose every write completed. */
static void finish_sealed(struct plog *log)
{
    /* Sealed segments finish in order, so only the newest unfinished ones need a look. */
    uint32_t first = log->nsegs - 1;
    while (first > 0 && !log->segs[first - 1]->finalized)
        first--;
    for (uint32_t i = first; i + 1 < log->nsegs; i++) {
        struct segment *s = log->segs[i];
        if (s->finishing)
            continue;
        if (!s->sealed || s->finalized || s->wr.pins > 0)
            break;
        if (log->written_lsn < s->lsn_base + (int64_t)s->end_pos)
            break;
        /* Under `batch` every byte was fdatasync'ed before it was acknowledged. */
        bool sync = log->durable_lsn < s->lsn_base + (int64_t)s->end_pos;
        plog_finish_submit(log, s, sync);
    }
}

static void release_written_chunks(struct plog *log)
{
    struct chunk *c;
    while ((c = log->ch_head) != NULL && c != log->ch_tail) {
        int64_t c_end = c->seg->lsn_base + (int64_t)(c->file_pos + c->fill);
        if (c_end > log->written_lsn)
            break;
        chunk_pop_head(log);
    }
    if (c != NULL && c == log->ch_tail && c->seg->sealed &&
        c->seg->lsn_base + (int64_t)(c->file_pos + c->fill) <= log->written_lsn &&
        log->wop_count == 0)
        chunk_pop_head(log);
}

void plog_release_idle(struct plog *log)
{
    struct chunk *c = log->ch_tail;
    if (log->wop_count > 0 || log->issued_lsn != log->appended_lsn)
        return;
    if (c != NULL) {
        if (c != log->ch_head)
            return;
        struct segment *seg = c->seg;
        if (!seg->sealed) {
            uint64_t blk = align_down(seg->end_pos);
            RL_ASSERT(blk >= c->file_pos && seg->end_pos - c->file_pos <= c->fill);
            memcpy(log->tail_block, c->buf + (blk - c->file_pos), seg->end_pos - blk);
        }
        chunk_pop_head(log);
    }
    ring_give(log);
}

static void plog_progress(struct plog *log)
{
    while (log->wop_count > 0) {
        struct wop *w = &log->wops->w[log->wop_head];
        if (w->pending > 0)
            break;
        if (w->res < 0 && space_error(w->res) && !w->res_from_sync && log->failed == 0) {
            /* Refused for space: nothing of it was acknowledged, so it may be written again. */
            plog_enter_disk_full(log, w->res);
            log->disk_full_rewind = true;
        } else if (w->res < 0) {
            plog_fail(log, w->res);
        } else if (log->failed == 0 && !log->disk_full_rewind) {
            log->written_lsn = w->lsn_end;
            if (w->has_sync && w->lsn_end > log->durable_lsn)
                log->durable_lsn = w->lsn_end;
            if (log->disk_full_retrying)
                plog_leave_disk_full(log); /* the retried write went through */
        }
        log->wop_head = (log->wop_head + 1) % PLOG_MAX_WOPS;
        log->wop_count--;
    }
    if (log->disk_full_rewind && log->wop_count == 0 && log->failed == 0) {
        /* Every write in flight has ended: go back to the first byte not written; the chunks
         * from there on are still held, and the retry writes them again. */
        log->disk_full_rewind = false;
        log->issued_lsn = log->written_lsn;
        plog_retry_arm(log, PLOG_DISK_FULL_RETRY_MS);
    }
    if (log->failed == 0) {
        mark_readable(log);
        release_written_chunks(log);
        finish_sealed(log);
        plog_release_idle(log);
    } else if (log->wop_count == 0 && !log->sync_inflight) {
        plog_chunks_free_all(log);
    }
    /* Acknowledge last: a callback may append again (re-entering plog_pump). */
    int64_t ack = log->cfg.flush_policy == PLOG_FLUSH_BATCH ? log->durable_lsn
                                                             : log->written_lsn;
    struct plog_append *r;
    while ((r = log->q_head) != NULL && (log->failed || (int64_t)r->end_position <= ack)) {
        log->q_head = r->next;
        if (log->q_head == NULL)
            log->q_tail = NULL;
        if (log->q_read == r)
            log->q_read = r->next;
        r->next = NULL;
        r->done(r, log->failed ? log->failed : 0);
    }
    if (log->failed == 0 && log->wop_count < PLOG_MAX_WOPS &&
        log->issued_lsn < log->appended_lsn)
        for (int i = 0; i < PLOG_MAX_WOPS && pump_one(log); i++)
            ;
    if (log->failed == 0)
        pump_interval(log);
    if (log->trunc_waiting)
        plog_truncate_resume(log);
}

/* --- blocking helpers ------------------------------------------------------------------- */

int plog_drain(struct plog *log)
{
    struct io *io = log->st->io;
    uint64_t deadline = io_now_ns(io) + PLOG_DRAIN_TIMEOUT_NS;
    plog_pump(log);
    while (log->wop_count > 0 || log->sync_inflight || log->kick_armed || log->jobs > 0 ||
           log->falloc_busy || log->trunc_busy ||
           (!log->disk_full && (log->q_head != NULL ||
                                (log->failed == 0 && log->issued_lsn < log->appended_lsn)))) {
        if (io_now_ns(io) > deadline)
            return RL_E_TIMED_OUT;
        int rc = io_run(io, 100 * 1000000ull);
        if (rc < 0 && rc != -EINTR)
            return rc;
        plog_pump(log);
    }
    if (log->failed == 0 && log->disk_full)
        return RL_E_DISK_FULL;
    return log->failed;
}

int plog_sync(struct plog *log)
{
    int rc = plog_drain(log);
    if (rc < 0)
        return rc;
    if (log->durable_lsn >= log->written_lsn)
        return 0;
    struct segment *seg = active_seg(log);
    int fd = plog_seg_write_fd(log, seg);
    if (fd < 0)
        return fd;
    rc = io_file_fdatasync(log->st->io, fd);
    if (rc < 0) {
        plog_fail(log, rc);
        return rc;
    }
    log->durable_lsn = log->written_lsn;
    return 0;
}
