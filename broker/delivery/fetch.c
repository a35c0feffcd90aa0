/*
 * fetch: see fetch.h.
 *
 * A fetch moves through phases: START (partitions resolved) -> WAITING (a long poll: waiters on
 * each partition plus one timer) -> READING (file slices being read) -> DONE (q->done ran).
 * Every waiter wake, read completion and timer only records what happened and asks the loop
 * to come back (svc_req_complete); the loop then runs fetch_finish.
 *
 * Why O_DIRECT reads into our own buffers: appends are O_DIRECT, so the page cache does not
 * hold recent data; reading through it would fill fresh cache pages on every fetch, and on
 * virtual machines where first touching a page is expensive that costs about ten times a copy
 * from reused memory. Slices larger than a buffer, and file systems without O_DIRECT, fall back
 * to a splice by the server (or a mapping when the pages are cached, or a buffered read).
 *
 * Read-ahead. A consumer catching up reads on from where its last answer ended, so when a
 * slice is read from the disk, the next slice of that partition (from its next_offset, same
 * size cap) is read too, into a slot of its own, while the current answer is sent and
 * processed. The next fetch at that offset takes the slot's slice and buffer (waiting for the
 * read if it is still under way) instead of starting a read. A slot not taken within
 * FETCH_RA_IDLE_TICKS ticks is released (it pins its partition and segment); a truncation of
 * the log since the read (partition_truncations) makes it stale. The read counts as an op of
 * the request that started it, so shutdown waits for it like for any read.
 */
#include "broker/delivery/fetch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker/meta/meta.h"
#include "broker/partition/partition.h"
#include "broker/svc/svc.h"
#include "common/arena.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"
#include "storage/plog.h"

enum fetch_ra_state { RA_FREE, RA_READING, RA_READY, RA_TAKEN };

/* One read-ahead: the slice after one that was read from the disk. */
struct fetch_ra {
    enum fetch_ra_state state;
    bool drop;                    /* release once the read completes (expired, stopping) */
    struct partition *p;
    uint64_t offset;              /* the fetch offset it answers: the previous slice's end */
    uint32_t cap;                 /* the per-partition byte cap it was read with */
    uint64_t truncations;         /* partition_truncations when read */
    uint64_t tick;                /* f->ticks when issued */
    struct plog_slice slice;
    uint8_t *dbuf;
    uint32_t dskip;
    int result;
    struct fetch *f;
    struct svc_req *issuer;       /* the request whose pending count the read holds */
    struct fetch_part_state *taker; /* RA_TAKEN: the part waiting for the read */
    struct io_op op;
};

struct fetch {
    struct meta *meta;
    bool splice_ok, stopping;
    uint8_t *direct_bufs[FETCH_MAX_IDLE_DIRECT_BUFS]; /* idle read buffers */
    uint32_t n_direct_bufs;
    struct fetch_ra ra[FETCH_RA_SLOTS];
    uint64_t ticks;
    struct fetch_stats stats;
};

enum fetch_phase { FETCH_START, FETCH_WAITING, FETCH_READING, FETCH_DONE };

struct fetch_part_state {
    struct svc_req *r;
    struct fetch_part *res;
    struct partition *p;          /* NULL when this partition is answered with an error */
    struct plog_slice slice;
    bool have_slice;
    bool spliced;                 /* sent from the file by the server's splice */
    bool read_failed;
    uint8_t *copy;                /* a file slice read into memory (inside dbuf, if set) */
    bool read_ahead;              /* slice and dbuf came from a read-ahead slot */
    uint32_t cap;                 /* the byte cap this part was read with */
    uint8_t *dbuf;                /* a pooled buffer the slice was read into with O_DIRECT */
    uint32_t dskip;               /* bytes of dbuf before the slice (alignment) */
    void *map;                    /* or mapped, when its pages are all in the page cache */
    size_t map_len;
    const uint8_t *map_data;      /* the slice's first byte inside map */
    struct io_op read_op;
    struct partition_waiter waiter;
};

struct fetch_state {
    struct fetch *f;
    struct fetch_request *q;
    struct fetch_part_state *parts;
    uint32_t n;
    uint32_t max_bytes, max_wait_ms;
    uint64_t waited_bytes;
    enum fetch_phase phase;
    bool woken, timer_armed;
    uint32_t reads_left;
    struct io_op timer_op, cancel_op;
};

int fetch_create(struct meta *meta, bool splice, struct fetch **out)
{
    struct fetch *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->meta = meta;
    f->splice_ok = splice;
    for (uint32_t i = 0; i < FETCH_RA_SLOTS; i++)
        f->ra[i].f = f;
    *out = f;
    return 0;
}

void fetch_destroy(struct fetch *f)
{
    if (!f)
        return;
    /* fetch_begin_stop released every ready read-ahead while the partitions were open; a
     * slot still reading (a shutdown that gave up waiting) keeps its buffer. */
    while (f->n_direct_bufs)
        free(f->direct_bufs[--f->n_direct_bufs]);
    free(f);
}

static void fetch_buf_put(struct fetch *f, uint8_t *buf);
static uint8_t *fetch_buf_get(struct fetch *f);

/* Releases what the parts hold: slices (and their pins), buffers, mappings. */
static void fetch_release(struct svc_req *r)
{
    struct fetch_state *fs = r->state;
    struct fetch *f = fs->f;
    for (uint32_t i = 0; i < fs->n; i++) {
        struct fetch_part_state *fp = &fs->parts[i];
        if (fp->have_slice) {
            partition_read_release(fp->p, &fp->slice);
            fp->have_slice = false;
        }
        if (fp->dbuf)
            fetch_buf_put(f, fp->dbuf);
        else
            free(fp->copy);
        fp->dbuf = NULL;
        fp->copy = NULL;
        fp->read_ahead = false;
        if (fp->map)
            munmap(fp->map, fp->map_len);
        fp->map = NULL;
    }
}

/* Maps a file slice when every page of it is in the page cache, so the answer is sent straight
 * from the cache (no read into a buffer of ours). Cold data is not mapped: faulting it in would
 * block the loop, so it goes through an async read instead. */
static bool fetch_map(struct fetch_part_state *fp)
{
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE);
    uint64_t start = fp->slice.file_position & ~(uint64_t)(page - 1);
    size_t off = (size_t)(fp->slice.file_position - start);
    size_t len = off + fp->slice.len;
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fp->slice.fd, (off_t)start);
    if (m == MAP_FAILED)
        return false;
    size_t pages = (len + (size_t)page - 1) / (size_t)page;
    unsigned char vec[256];
    for (size_t done = 0; done < pages;) {
        size_t n = pages - done < sizeof(vec) ? pages - done : sizeof(vec);
        if (mincore((uint8_t *)m + done * (size_t)page, n * (size_t)page, vec)) {
            munmap(m, len);
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            if (!(vec[i] & 1)) {
                munmap(m, len);
                return false;
            }
        }
        done += n;
    }
    fp->map = m;
    fp->map_len = len;
    fp->map_data = (const uint8_t *)m + off;
    return true;
}

static void fetch_wake(struct partition_waiter *w, enum partition_event ev, uint32_t bytes)
{
    struct fetch_part_state *fp = w->ctx;
    struct fetch_state *fs = fp->r->state;
    if (fs->phase != FETCH_WAITING || fs->woken || ev == PARTITION_FAILED ||
        ev == PARTITION_DEPOSED)
        return;
    fs->waited_bytes += bytes;
    if (ev == PARTITION_GONE || fs->waited_bytes >= fs->q->min_bytes) {
        fs->woken = true;
        svc_req_complete(fp->r);
    }
}

static void fetch_timer_done(struct io_op *op, int result)
{
    struct svc_req *r = op->ctx;
    struct fetch_state *fs = r->state;
    r->pending--;
    fs->timer_armed = false;
    if (result == 0 && fs->phase == FETCH_WAITING && !fs->woken) {
        fs->woken = true;
        svc_req_complete(r);
    }
}

static void fetch_cancel_done(struct io_op *op, int result)
{
    (void)result;
    struct svc_req *r = op->ctx;
    r->pending--;
}

/* Ends a wait: unlinks the waiters and cancels the timer (whose completion ends later). */
static void fetch_stop_wait(struct svc_req *r)
{
    struct fetch_state *fs = r->state;
    for (uint32_t i = 0; i < fs->n; i++)
        partition_unwait(&fs->parts[i].waiter);
    if (fs->timer_armed) {
        fs->cancel_op.done = fetch_cancel_done;
        fs->cancel_op.ctx = r;
        r->pending++;
        io_prep_cancel(r->io, &fs->cancel_op, &fs->timer_op, 0);
    }
}

static void fetch_read_done(struct io_op *op, int result)
{
    struct fetch_part_state *fp = op->ctx;
    struct svc_req *r = fp->r;
    struct fetch_state *fs = r->state;
    r->pending--;
    /* A direct read covers the aligned range around the slice; it may stop short at the end
     * of the file, but never before the slice's last byte. */
    if (fp->dbuf && result >= (int)(fp->dskip + fp->slice.len))
        result = (int)fp->slice.len;
    if (result != (int)fp->slice.len) {
        fp->read_failed = true;
        fp->res->error_code = result < 0 ? result : RL_E_INTERNAL;
        fp->res->error_message = "reading the log failed; see the broker log";
        RL_ERROR("fetch %s-%u: read of %u bytes at %llu returned %d", partition_topic(fp->p),
                 partition_index(fp->p), fp->slice.len,
                 (unsigned long long)fp->slice.file_position, result);
    }
    if (--fs->reads_left == 0)
        svc_req_complete(r);
}

/* --- read-ahead ----------------------------------------------------------------------------- */

static uint8_t *fetch_buf_get(struct fetch *f)
{
    uint8_t *buf = NULL;
    if (f->n_direct_bufs)
        buf = f->direct_bufs[--f->n_direct_bufs];
    else if (posix_memalign((void **)&buf, PLOG_DIRECT_ALIGN, FETCH_DIRECT_BUF_BYTES))
        buf = NULL;
    return buf;
}

static void fetch_buf_put(struct fetch *f, uint8_t *buf)
{
    if (f->n_direct_bufs < FETCH_MAX_IDLE_DIRECT_BUFS)
        f->direct_bufs[f->n_direct_bufs++] = buf;
    else
        free(buf);
}

/* The aligned file range a direct read of a slice covers: [*start, *start + *len). */
static void slice_direct_range(const struct plog_slice *s, uint64_t *start, uint64_t *len)
{
    uint64_t a = PLOG_DIRECT_ALIGN;
    *start = s->file_position / a * a;
    uint64_t end = (s->file_position + s->len + a - 1) / a * a;
    *len = end - *start;
}

static bool slice_direct_ok(const struct plog_slice *s)
{
    uint64_t start, len;
    slice_direct_range(s, &start, &len);
    return !s->mem && s->direct_fd >= 0 && len <= FETCH_DIRECT_BUF_BYTES;
}

/* Gives back a ready slot's slice and buffer. */
static void fetch_ra_release(struct fetch *f, struct fetch_ra *ra)
{
    RL_ASSERT(ra->state == RA_READY);
    partition_read_release(ra->p, &ra->slice);
    fetch_buf_put(f, ra->dbuf);
    ra->dbuf = NULL;
    ra->p = NULL;
    ra->drop = false;
    ra->state = RA_FREE;
}

static void fetch_ra_done(struct io_op *op, int result)
{
    struct fetch_ra *ra = op->ctx;
    struct fetch *f = ra->f;
    ra->issuer->pending--;
    ra->issuer = NULL;
    bool ok = result >= (int)(ra->dskip + ra->slice.len);
    if (ra->state == RA_TAKEN) {
        /* A fetch took the slot while it was reading: its part is answered now. */
        struct fetch_part_state *fp = ra->taker;
        struct svc_req *r = fp->r;
        struct fetch_state *fs = r->state;
        ra->taker = NULL;
        ra->p = NULL;
        ra->state = RA_FREE;
        r->pending--;
        if (!ok) {
            fp->read_failed = true;
            fp->res->error_code = result < 0 ? result : RL_E_INTERNAL;
            fp->res->error_message = "reading the log failed; see the broker log";
            RL_ERROR("fetch %s-%u: read-ahead of %u bytes at %llu returned %d",
                     partition_topic(fp->p), partition_index(fp->p), fp->slice.len,
                     (unsigned long long)fp->slice.file_position, result);
        }
        if (--fs->reads_left == 0)
            svc_req_complete(r);
        return;
    }
    ra->state = RA_READY;
    if (!ok || ra->drop || f->stopping) {
        if (ok)
            f->stats.readahead_wasted++;
        fetch_ra_release(f, ra);
    }
}

/* Reads the slice after fp's (same partition, same cap) into a free slot, or the one idle the
 * longest, unless the partition has nothing more or the slice is not a direct file read. */
static void fetch_ra_issue(struct fetch *f, struct svc_req *r, struct fetch_part_state *fp)
{
    uint64_t next = fp->slice.next_offset;
    if (f->stopping || fp->read_failed || next >= partition_visible_end(fp->p))
        return;
    struct fetch_ra *slot = NULL;
    for (uint32_t i = 0; i < FETCH_RA_SLOTS; i++) {
        struct fetch_ra *ra = &f->ra[i];
        if (ra->state != RA_FREE && ra->p == fp->p && ra->offset == next)
            return; /* already read, or being read */
        if (ra->state == RA_FREE && (!slot || slot->state != RA_FREE))
            slot = ra;
        else if (ra->state == RA_READY && (!slot || (slot->state == RA_READY &&
                                                     ra->tick < slot->tick)))
            slot = ra;
    }
    if (!slot)
        return;
    if (slot->state == RA_READY) {
        f->stats.readahead_wasted++;
        fetch_ra_release(f, slot);
    }
    if (partition_read(fp->p, next, fp->cap, &slot->slice))
        return;
    uint8_t *buf = NULL;
    if (slot->slice.len == 0 || !slice_direct_ok(&slot->slice) || !(buf = fetch_buf_get(f))) {
        partition_read_release(fp->p, &slot->slice);
        return;
    }
    uint64_t start, len;
    slice_direct_range(&slot->slice, &start, &len);
    slot->state = RA_READING;
    slot->drop = false;
    slot->p = fp->p;
    slot->offset = next;
    slot->cap = fp->cap;
    slot->truncations = partition_truncations(fp->p);
    slot->tick = f->ticks;
    slot->dbuf = buf;
    slot->dskip = (uint32_t)(slot->slice.file_position - start);
    slot->issuer = r;
    slot->op.done = fetch_ra_done;
    slot->op.ctx = slot;
    r->pending++;
    f->stats.readahead_reads++;
    io_prep_read(r->io, &slot->op, slot->slice.direct_fd, buf, (uint32_t)len, start, 0);
}

/* Answers fp at `offset` from a read-ahead slot, when one holds that slice and it is still
 * the log's. Returns 1 when taken and ready, 2 when taken and still reading (the part is
 * answered when the read completes), 0 when there is none. */
static int fetch_ra_take(struct fetch *f, struct svc_req *r, struct fetch_part_state *fp,
                         uint64_t offset, uint32_t cap)
{
    for (uint32_t i = 0; i < FETCH_RA_SLOTS; i++) {
        struct fetch_ra *ra = &f->ra[i];
        if ((ra->state != RA_READY && ra->state != RA_READING) || ra->drop || ra->p != fp->p ||
            ra->offset != offset)
            continue;
        if (ra->cap > cap || ra->truncations != partition_truncations(fp->p) ||
            partition_gone(fp->p) || ra->slice.next_offset > partition_visible_end(fp->p)) {
            f->stats.readahead_wasted++;
            if (ra->state == RA_READY)
                fetch_ra_release(f, ra);
            else
                ra->drop = true;
            return 0;
        }
        fp->slice = ra->slice;
        fp->have_slice = true;
        fp->read_ahead = true;
        fp->dbuf = ra->dbuf;
        fp->dskip = ra->dskip;
        fp->copy = ra->dbuf + ra->dskip;
        fp->cap = cap;
        svc_req_charge(r, FETCH_DIRECT_BUF_BYTES); /* the slot's partition pin goes along */
        f->stats.readahead_hits++;
        ra->dbuf = NULL;
        if (ra->state == RA_READY) {
            ra->p = NULL;
            ra->state = RA_FREE;
            return 1;
        }
        struct fetch_state *fs = r->state;
        ra->state = RA_TAKEN;
        ra->taker = fp;
        r->pending++;
        fs->reads_left++;
        return 2;
    }
    return 0;
}

void fetch_tick(struct fetch *f)
{
    f->ticks++;
    for (uint32_t i = 0; i < FETCH_RA_SLOTS; i++) {
        struct fetch_ra *ra = &f->ra[i];
        if (ra->state == RA_READY && f->ticks - ra->tick >= FETCH_RA_IDLE_TICKS) {
            f->stats.readahead_wasted++;
            fetch_ra_release(f, ra);
        }
    }
}

void fetch_begin_stop(struct fetch *f)
{
    f->stopping = true;
    for (uint32_t i = 0; i < FETCH_RA_SLOTS; i++) {
        struct fetch_ra *ra = &f->ra[i];
        if (ra->state == RA_READY)
            fetch_ra_release(f, ra);
        else if (ra->state == RA_READING)
            ra->drop = true;
    }
}

void fetch_get_stats(const struct fetch *f, struct fetch_stats *out)
{
    *out = f->stats;
}

/* Fills each part's answer bytes and hands the answer over. */
static void fetch_answer(struct svc_req *r)
{
    struct fetch_state *fs = r->state;
    for (uint32_t i = 0; i < fs->n; i++) {
        struct fetch_part_state *fp = &fs->parts[i];
        struct fetch_part *res = fp->res;
        res->fd = -1;
        if (!fp->have_slice || res->data_len == 0 || fp->read_failed) {
            res->data_len = 0;
            continue;
        }
        res->data = fp->spliced ? NULL : fp->copy ? fp->copy
                    : fp->map ? fp->map_data : fp->slice.mem;
        if (fp->spliced) {
            res->fd = fp->slice.fd;
            res->file_position = fp->slice.file_position;
        }
    }
    fs->phase = FETCH_DONE;
    fs->q->done(r, fs->q);
}

static void fetch_drop(struct fetch_part_state *fp)
{
    partition_read_release(fp->p, &fp->slice);
    fp->have_slice = false;
}

/* The aligned file range a direct read of the slice covers: [*start, *start + *len). */
static void fetch_direct_range(const struct fetch_part_state *fp, uint64_t *start,
                               uint64_t *len)
{
    uint64_t a = PLOG_DIRECT_ALIGN;
    *start = fp->slice.file_position / a * a;
    uint64_t end = (fp->slice.file_position + fp->slice.len + a - 1) / a * a;
    *len = end - *start;
}

/* Can the slice be read with O_DIRECT into a pooled buffer? */
static bool fetch_direct_ok(const struct fetch_part_state *fp)
{
    uint64_t start, len;
    fetch_direct_range(fp, &start, &len);
    return !fp->slice.mem && fp->slice.direct_fd >= 0 && len <= FETCH_DIRECT_BUF_BYTES;
}

/* Starts an O_DIRECT read of the aligned range around the slice into a pooled buffer. Returns
 * false when no buffer can be had (the caller reads through the cache instead). */
static bool fetch_read_direct(struct fetch *f, struct svc_req *r, struct fetch_part_state *fp)
{
    uint64_t start, len;
    fetch_direct_range(fp, &start, &len);
    uint8_t *buf = fetch_buf_get(f); /* fetch_direct_ok checked that the range fits */
    if (!buf)
        return false;
    fp->dbuf = buf;
    fp->dskip = (uint32_t)(fp->slice.file_position - start);
    fp->copy = buf + fp->dskip;
    io_prep_read(r->io, &fp->read_op, fp->slice.direct_fd, buf, (uint32_t)len, start, 0);
    return true;
}

/* Starts the async read of a cold file slice into a buffer charged to the budget. */
static void fetch_read(struct svc_req *r, struct fetch_part_state *fp)
{
    struct fetch_state *fs = r->state;
    fp->read_op.done = fetch_read_done;
    fp->read_op.ctx = fp;
    if (!fetch_direct_ok(fp) || !fetch_read_direct(fs->f, r, fp)) {
        fp->copy = malloc(fp->slice.len);
        if (!fp->copy) {
            fp->read_failed = true;
            return;
        }
        io_prep_read(r->io, &fp->read_op, fp->slice.fd, fp->copy, fp->slice.len,
                     fp->slice.file_position, 0);
    }
    svc_req_charge(r, fp->dbuf ? FETCH_DIRECT_BUF_BYTES : fp->slice.len);
    r->pending++;
    fs->reads_left++;
}

/* Puts the slices into the answer (in memory, mapped from the page cache, or read). Past the
 * response cap, and past the memory budget for slices that must be read, a partition answers
 * with no data (the client asks again); the first slice always goes, so every fetch makes
 * progress. */
static void fetch_build(struct svc_req *r)
{
    struct fetch_state *fs = r->state;
    uint64_t total = 0;
    fs->phase = FETCH_READING;
    for (uint32_t i = 0; i < fs->n; i++) {
        struct fetch_part_state *fp = &fs->parts[i];
        if (!fp->have_slice || fp->slice.len == 0)
            continue;
        /* A read-ahead's slice was capped by this fetch's room when taken (and its read may
         * be under way): it always goes. */
        if (!fp->read_ahead && total > 0 && total + fp->slice.len > fs->max_bytes) {
            fetch_drop(fp);
            continue;
        }
        bool direct = fetch_direct_ok(fp);
        fp->spliced = !fp->slice.mem && !direct && !fp->read_ahead && fs->f->splice_ok &&
                     !fs->q->memory_only;
        bool in_memory = fp->slice.mem || fp->spliced || fp->read_ahead ||
                         (!direct && fetch_map(fp));
        if (!in_memory && total > 0 && !svc_req_has_room(r, fp->slice.len)) {
            fetch_drop(fp);
            continue;
        }
        total += fp->slice.len;
        fp->res->data_len = fp->slice.len;
        uint64_t from = fp->slice.first_offset > fp->res->offset ? fp->slice.first_offset
                                                                 : fp->res->offset;
        partition_count_out(fp->p, fp->slice.len,
                            fp->slice.next_offset > from ? fp->slice.next_offset - from : 0);
        if (!in_memory)
            fetch_read(r, fp);
        if (fp->dbuf)
            fetch_ra_issue(fs->f, r, fp); /* read from the disk: the next slice will be too */
    }
    if (fs->reads_left == 0)
        fetch_answer(r);
}

/* Starts a long poll: every readable partition's waiter list, plus the max_wait timer. */
static void fetch_wait(struct svc_req *r, uint64_t have_bytes)
{
    struct fetch_state *fs = r->state;
    fetch_release(r);
    fs->phase = FETCH_WAITING;
    fs->woken = false;
    fs->waited_bytes = have_bytes;
    for (uint32_t i = 0; i < fs->n; i++) {
        struct fetch_part_state *fp = &fs->parts[i];
        if (!fp->p)
            continue;
        fp->waiter.wake = fetch_wake;
        fp->waiter.ctx = fp;
        partition_wait(fp->p, &fp->waiter);
    }
    fs->timer_op.done = fetch_timer_done;
    fs->timer_op.ctx = r;
    fs->timer_armed = true;
    r->pending++;
    io_prep_timeout(r->io, &fs->timer_op, (uint64_t)fs->max_wait_ms * 1000000ull, 0);
}

/* Reads every partition; answers, or starts waiting when fewer than min_bytes are there. */
static void fetch_try(struct svc_req *r, bool force)
{
    struct fetch_state *fs = r->state;
    uint64_t total = 0;
    bool errors = false, reading = false;
    for (uint32_t i = 0; i < fs->n; i++) {
        struct fetch_part_state *fp = &fs->parts[i];
        if (!fp->p) {
            /* Answered with an error (unknown topic or partition, offset out of range): the
             * fetch answers now rather than hold its memory for max_wait on its behalf. */
            errors = errors || fp->res->error_code != 0;
            continue;
        }
        struct fetch_part *res = fp->res;
        if (partition_gone(fp->p)) {
            res->error_code = RL_E_UNKNOWN_TOPIC;
            res->error_message = "topic was deleted while the fetch waited";
            fp->p = NULL;
            errors = true;
            continue;
        }
        uint64_t room = fs->max_bytes > total ? fs->max_bytes - total : 1;
        uint32_t cap = res->max_bytes && res->max_bytes < room ? res->max_bytes : (uint32_t)room;
        fp->cap = cap;
        int taken = fetch_ra_take(fs->f, r, fp, res->offset, cap);
        if (taken) {
            res->high_watermark = partition_visible_end(fp->p);
            res->log_start_offset = partition_start_offset(fp->p);
            res->log_end_offset = partition_log_end(fp->p);
            reading |= taken == 2;
            total += fp->slice.len;
            continue;
        }
        int rc = partition_read(fp->p, res->offset, cap, &fp->slice);
        res->high_watermark = partition_visible_end(fp->p);
        res->log_start_offset = partition_start_offset(fp->p);
        res->log_end_offset = partition_log_end(fp->p);
        if (rc) {
            res->error_code = rc;
            res->error_message = arena_printf(r->arena, "offset %llu of %s-%u: %s",
                                              (unsigned long long)res->offset,
                                              partition_topic(fp->p), partition_index(fp->p),
                                              rl_strerror(rc));
            errors = true;
            continue;
        }
        fp->have_slice = true;
        total += fp->slice.len;
    }
    /* A read-ahead still reading was taken: its buffer is in use, so no long poll (which
     * releases the parts) now; the answer goes once the read completes. */
    bool wait = !force && !errors && !reading && total < fs->q->min_bytes &&
                fs->max_wait_ms > 0 && svc_req_may_wait(r);
    if (wait)
        fetch_wait(r, total);
    else
        fetch_build(r);
}

static void fetch_finish(struct svc_req *r)
{
    struct fetch_state *fs = r->state;
    if (fs->phase == FETCH_WAITING && fs->woken) {
        fetch_stop_wait(r);
        fetch_try(r, true);
    } else if (fs->phase == FETCH_READING && fs->reads_left == 0) {
        fetch_answer(r);
    }
}

/* The peer is closing or the broker stopping: a long poll answers now. */
static void fetch_interrupt(struct svc_req *r)
{
    struct fetch_state *fs = r->state;
    if (fs->phase == FETCH_WAITING && !fs->woken) {
        fs->woken = true;
        svc_req_complete(r);
    }
}

/* The connection is gone: stop waiting (the timer's cancellation ends later). */
static void fetch_abandon(struct svc_req *r)
{
    struct fetch_state *fs = r->state;
    if (fs->phase == FETCH_WAITING) {
        fetch_stop_wait(r);
        fs->phase = FETCH_DONE;
    }
}

/* Resolves one requested partition: its result, and whether it can be read. */
static void fetch_resolve(struct fetch *f, struct svc_req *r, struct fetch_part_state *fp)
{
    int rc;
    struct fetch_part *res = fp->res;
    const char *topic = res->topic;
    res->fd = -1;
    struct partition *p = meta_partition(f->meta, topic, res->partition, &rc);
    if (!p) {
        res->error_code = rc;
        char why[256];
        res->error_message = rc == RL_E_UNKNOWN_TOPIC
            ? arena_printf(r->arena, "topic \"%s\" does not exist", topic)
            : rc == RL_E_NOT_LEADER
            ? arena_printf(r->arena, "%s", meta_not_leader_msg(f->meta, topic, res->partition,
                                                               why, sizeof(why)))
            : arena_printf(r->arena, "topic \"%s\" has no partition %u", topic, res->partition);
        return;
    }
    uint64_t start = partition_start_offset(p), visible = partition_visible_end(p);
    res->high_watermark = visible;
    res->log_start_offset = start;
    res->log_end_offset = partition_log_end(p);
    if (res->offset > visible && partition_replicated(p) && !partition_leads(p)) {
        /* A follower (or a replica that restarted and has not yet learned the commit index)
         * may be behind what a reader saw on the leader: that is not out of range. */
        res->error_code = RL_E_NOT_LEADER;
        res->error_message = arena_printf(
            r->arena, "offset %llu of %s-%u is past what this replica (node %u) knows to be "
            "committed (%llu); fetch from the leader (node %u; 0: none known yet)",
            (unsigned long long)res->offset, topic, res->partition, meta_node_id(f->meta),
            (unsigned long long)visible, partition_leader(p));
        return;
    }
    if (res->offset < start || res->offset > visible) {
        res->error_code = RL_E_OFFSET_OUT_OF_RANGE;
        res->error_message = arena_printf(
            r->arena, "offset %llu is outside %s-%u, which holds offsets %llu to %llu; "
            "seek to earliest or latest", (unsigned long long)res->offset, topic,
            res->partition, (unsigned long long)start, (unsigned long long)visible);
        return;
    }
    fp->p = p;
}

void fetch_start(struct fetch *f, struct svc_req *r, struct fetch_request *q)
{
    struct fetch_state *fs = arena_calloc(r->arena, sizeof(*fs));
    struct fetch_part_state *parts = arena_calloc(r->arena, (q->n_parts + 1) * sizeof(*parts));
    if (!fs || !parts) {
        for (size_t i = 0; i < q->n_parts; i++) {
            q->parts[i].error_code = RL_E_LIMIT;
            q->parts[i].error_message = "out of request memory";
            q->parts[i].fd = -1;
        }
        q->done(r, q);
        return;
    }
    fs->f = f;
    fs->q = q;
    fs->parts = parts;
    fs->n = (uint32_t)q->n_parts;
    fs->max_bytes = q->max_bytes ? q->max_bytes : FETCH_DEFAULT_MAX_BYTES;
    fs->max_wait_ms = q->max_wait_ms < FETCH_MAX_WAIT_MS ? q->max_wait_ms : FETCH_MAX_WAIT_MS;
    for (uint32_t i = 0; i < fs->n; i++) {
        parts[i].r = r;
        parts[i].res = &q->parts[i];
        q->parts[i].st = &parts[i];
        fetch_resolve(f, r, &parts[i]);
    }
    r->state = fs;
    r->finish = fetch_finish;
    r->release = fetch_release;
    r->interrupt = fetch_interrupt;
    r->abandon = fetch_abandon;
    fetch_try(r, false);
}

/* --- ListOffsets ------------------------------------------------------------------------------ */

void fetch_list_offset(struct fetch *f, struct svc_req *r, const char *topic, uint32_t partition,
                       int64_t timestamp, struct fetch_offset *out)
{
    int rc;
    struct partition *p = meta_partition(f->meta, topic, partition, &rc);
    *out = (struct fetch_offset){.offset = -1, .timestamp = -1};
    if (!p) {
        out->error_code = rc;
        char why[256];
        if (rc == RL_E_NOT_LEADER) {
            out->error_message = arena_printf(r->arena, "%s", meta_not_leader_msg(
                                                  f->meta, topic, partition, why, sizeof(why)));
            return;
        }
        out->error_message = arena_printf(r->arena, "%s %s-%u",
                                          rc == RL_E_UNKNOWN_TOPIC ? "no topic for"
                                                                   : "no such partition:",
                                          topic, partition);
        return;
    }
    if (timestamp == -2) {
        out->offset = (int64_t)partition_start_offset(p);
    } else if (timestamp == -1) {
        out->offset = (int64_t)partition_visible_end(p);
    } else if (timestamp < 0) {
        out->error_code = RL_E_INVALID_REQUEST;
        out->error_message = arena_printf(r->arena, "timestamp %lld is not valid: use -2 "
                                          "(earliest), -1 (latest) or ms since the epoch",
                                          (long long)timestamp);
    } else {
        uint64_t off = 0;
        rc = partition_offset_for_time(p, timestamp, &off);
        if (rc) {
            out->error_code = rc;
            out->error_message = rl_strerror(rc);
            return;
        }
        out->offset = (int64_t)off;
        out->timestamp = timestamp;
    }
}
