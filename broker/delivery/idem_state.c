/*
 * idem_state: each partition's producer state, off the loop (see idempotence.h; invariants in
 * idem_int.h).
 *
 * A load is a job that alternates between the loop and the background thread:
 *
 *   bg    read <partition dir>/producer.snapshot and decode it into a fresh table
 *   loop  the replay range: from the snapshot's next offset (cut back to the log end this run
 *         opened with, moved up to the log start) to the visible end now; entries at or past
 *         it are dropped
 *   loop  partition_read of the next slice (up to 16 MiB)        } until the range is read
 *   bg    read that slice's batch headers, a 1 MiB window at a    }
 *         time, and record the idempotent batches                 }
 *   loop  install the table, wake the waiters in order, start the next queued load
 *
 * At most IDEM_MAX_LOADS run at once; each holds a 1 MiB window and one slice.
 *
 * A snapshot is encoded on the loop (the table lives there) into a buffer of its own and
 * written by the background thread (write-temp, fsync, rename, directory fsync). It describes
 * the log up to the visible end only (durable), so it never claims a batch a crash can lose.
 * All file I/O goes through the I/O layer (io/io.h), so the simulated back-end sees it.
 */
#include "broker/delivery/idem_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/meta/meta.h"
#include "broker/partition/partition.h"
#include "broker/svc/bg.h"
#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"
#include "storage/checkpoint.h"
#include "storage/plog.h"

#define IDEM_REPLAY_READ_BYTES (16u << 20) /* per slice */
#define IDEM_SCAN_WINDOW (64u << 10)       /* bytes read at a time for headers (idem_load_scan) */
#define IDEM_SCAN_HEADER_ONLY (16u << 10)  /* ... or the header alone after a batch above this */
#define IDEM_REPLAY_MAX_SLICES (1u << 24)
#define IDEM_RESUME_LOG_OFFSETS 100000u /* a follower's catch-up this long is logged */

enum idem_load_stage { IDEM_LOAD_SNAPSHOT, IDEM_LOAD_SLICE };

struct idem_load {
    struct bg_job job;             /* first: the job's callbacks get &job */
    struct idem *id;
    struct io *io;
    struct idem_part *ip;
    struct partition *p;
    enum idem_load_stage stage;
    char dir[PATH_MAX + 300];
    int64_t now_ms;
    int64_t next;                  /* the snapshot's next offset */
    uint64_t from, end, off;       /* replay [from, end); off: the next slice */
    uint64_t lead_gen;             /* the partition's lead generation when end was taken */
    bool resume;                   /* goes on from the partition's table: no snapshot read */
    uint32_t slices;
    struct pstate *ps;
    uint32_t max_producers;
    uint32_t min_producers;        /* the table's first size */
    uint8_t *scratch;              /* CHECKPOINT_MAX_PAYLOAD: snapshot image, header window */
    struct plog_slice slice;
    bool have_slice;
    int rc;
};

struct idem_snap {
    struct bg_job job;             /* first */
    struct idem *id;
    struct io *io;
    struct idem_part *ip;
    char dir[PATH_MAX + 300];
    uint8_t *buf;
    size_t len;
    int rc;
};

static void idem_load_next(struct idem *id);

/* The load of ip ended (rc 0: the state is there): its waiters go on, in order. */
static void idem_load_wake(struct idem_part *ip, int rc)
{
    for (uint32_t guard = 0; ip->waiters && guard < 10000000; guard++) {
        struct idem_wait *w = ip->waiters;
        ip->waiters = w->next;
        if (!ip->waiters)
            ip->waiters_tail = NULL;
        w->done(w, rc); /* may append and record now that the state is there */
    }
}

/* A queued load that could not start. */
static void idem_load_fail_waiters(struct idem_part *ip, int rc)
{
    partition_unpin(ip->p);
    idem_load_wake(ip, rc);
}

static void idem_part_free(void *obj)
{
    struct idem_part *ip = obj;
    if (!ip)
        return;
    struct idem *id = ip->id;
    RL_ASSERT(!ip->loading && !ip->load_queued && !ip->snapshot_inflight && !ip->waiters);
    if (ip->prev)
        ip->prev->next = ip->next;
    else
        id->parts = ip->next;
    if (ip->next)
        ip->next->prev = ip->prev;
    pstate_destroy(ip->ps);
    free(ip);
}

struct idem_part *idem_part_get(struct idem *id, struct partition *p)
{
    struct idem_part *ip = partition_attachment(p);
    if (ip)
        return ip;
    ip = calloc(1, sizeof(*ip));
    if (!ip)
        return NULL;
    ip->id = id;
    ip->p = p;
    ip->seen_segments = partition_segment_count(p);
    ip->bytes_at_snapshot = partition_stats(p)->bytes_in;
    ip->next = id->parts;
    if (id->parts)
        id->parts->prev = ip;
    id->parts = ip;
    partition_attach(p, ip, idem_part_free);
    return ip;
}

static void idem_part_dir(const struct idem *id, const struct partition *p, char *out,
                          size_t cap)
{
    snprintf(out, cap, "%s/%s-%u", id->data_dir, partition_topic(p), partition_index(p));
}

/* Moves *ps into a table twice as large. */
static int idem_table_grow(struct pstate **ps, uint32_t *max, uint8_t *scratch)
{
    (void)scratch;
    if (*max >= IDEM_PART_MAX_PRODUCERS)
        return RL_E_LIMIT;
    uint32_t n = *max * 2 > IDEM_PART_MAX_PRODUCERS ? IDEM_PART_MAX_PRODUCERS : *max * 2;
    struct pstate *bigger = pstate_create(n);
    if (!bigger)
        return -ENOMEM;
    if (pstate_copy(bigger, *ps) != 0) {
        pstate_destroy(bigger);
        return RL_E_INTERNAL;
    }
    pstate_destroy(*ps);
    *ps = bigger;
    *max = n;
    return 0;
}

static int idem_table_record(struct pstate **ps, uint32_t *max, uint8_t *scratch,
                             const struct batch_header *h, uint64_t base_offset, int64_t now_ms)
{
    int rc = pstate_record(*ps, h->producer_id, h->producer_epoch, h->base_sequence,
                           h->record_count, (int64_t)base_offset, now_ms);
    if (rc == RL_E_LIMIT && idem_table_grow(ps, max, scratch) == 0)
        rc = pstate_record(*ps, h->producer_id, h->producer_epoch, h->base_sequence,
                           h->record_count, (int64_t)base_offset, now_ms);
    return rc;
}

int idem_part_grow(struct idem *id, struct idem_part *ip)
{
    return idem_table_grow(&ip->ps, &ip->max_producers, id->scratch);
}

int idem_part_record(struct idem *id, struct idem_part *ip, const struct batch_header *h,
                     uint64_t base_offset, int64_t now_ms)
{
    ip->dirty = true;
    ip->led = true; /* past `applied`, possibly not committed */
    return idem_table_record(&ip->ps, &ip->max_producers, id->scratch, h, base_offset, now_ms);
}

/* --- load: background steps ------------------------------------------------------------------- */

/* Reads the snapshot into a fresh table sized for it. A version 1 snapshot (older brokers)
 * counted batches whose append had not completed, so after a crash it may claim offsets that
 * the log lost and that later appends then filled with other batches; nothing tells which, so
 * its content is dropped and the state rebuilt from the whole log (once: the next snapshot is
 * version 2). */
static void idem_load_snapshot_run(struct idem_load *ld)
{
    int n = checkpoint_load(ld->io, ld->dir, IDEM_SNAPSHOT_NAME, ld->scratch,
                            CHECKPOINT_MAX_PAYLOAD);
    uint32_t count = 0;
    if (n >= 20)
        memcpy(&count, ld->scratch + 16, 4); /* the snapshot's producer count (pstate.c) */
    uint32_t want = ld->min_producers;
    while (want < count && want < IDEM_PART_MAX_PRODUCERS)
        want *= 2;
    ld->max_producers = want > IDEM_PART_MAX_PRODUCERS ? IDEM_PART_MAX_PRODUCERS : want;
    ld->ps = pstate_create(ld->max_producers);
    if (!ld->ps) {
        ld->rc = -ENOMEM;
        return;
    }
    ld->next = 0;
    uint32_t version = 0;
    if (n >= 0 && pstate_snapshot_decode(ld->ps, ld->scratch, (size_t)n, &ld->next,
                                         &version) != 0) {
        RL_CORRUPT(ld->dir, 0, 0, "producer-state snapshot does not decode; rebuilding from the "
                   "log");
        ld->next = 0;
    } else if (n >= 0 && version == PSTATE_SNAPSHOT_V1) {
        RL_INFO("%s/%s: a version 1 snapshot (its offsets may not all be in the log); "
                "rebuilding producer state from the whole log", ld->dir, IDEM_SNAPSHOT_NAME);
        pstate_truncate(ld->ps, 0);
        ld->next = 0;
    } else if (n < 0 && n != -ENOENT) {
        RL_WARN("%s/%s: %s; rebuilding producer state from the log", ld->dir,
                IDEM_SNAPSHOT_NAME, rl_strerror(n));
    }
}

/* Records the idempotent batches of the slice in [from, end). Only headers matter, so a file
 * slice is read IDEM_SCAN_WINDOW bytes at a time, or just the next header when the batch before
 * it was larger than IDEM_SCAN_HEADER_ONLY (where a read per header costs less than copying the
 * batch): small batches' headers come many to a read (the segments bypass the page cache, so a
 * read per header would be a disk read per batch), and a large batch costs one read of its
 * header rather than of all its bytes. A follower brings its producer state up to date this way
 * after every tick; reading whole windows read every replicated byte back (55% of the brokers'
 * CPU in a closed-loop replicated run). */
static int idem_load_scan(struct idem_load *ld, const struct plog_slice *s)
{
    uint32_t wpos = 0, wlen = 0, last_len = 0;
    for (uint32_t pos = 0; pos + RL_BATCH_HEADER_SIZE <= s->len;) {
        const uint8_t *b = s->mem ? s->mem + pos : NULL;
        if (!b) {
            if (pos < wpos || pos + RL_BATCH_HEADER_SIZE > wpos + wlen) {
                uint32_t want = last_len > IDEM_SCAN_HEADER_ONLY ? RL_BATCH_HEADER_SIZE
                                                                 : IDEM_SCAN_WINDOW;
                uint32_t n = s->len - pos < want ? s->len - pos : want;
                ssize_t got = io_file_pread(ld->io, s->fd, ld->scratch, n,
                                            s->file_position + pos);
                if (got < RL_BATCH_HEADER_SIZE)
                    return got < 0 ? (int)got : -EIO;
                wpos = pos;
                wlen = (uint32_t)got;
            }
            b = ld->scratch + (pos - wpos);
        }
        struct batch_header h;
        int rc = batch_header_decode(b, RL_BATCH_HEADER_SIZE, &h);
        if (rc)
            return rc;
        /* Replayed producers count as active now: record timestamps are the producer's
         * clock, and forgetting a live producer would break its retries. */
        if (h.producer_id >= 0 && h.base_offset >= ld->from && h.base_offset < ld->end &&
            idem_table_record(&ld->ps, &ld->max_producers, ld->scratch, &h, h.base_offset,
                              ld->now_ms))
            RL_WARN("%s: producer state full; producer %lld forgotten", ld->dir,
                    (long long)h.producer_id);
        last_len = h.batch_len;
        pos += h.batch_len;
    }
    return 0;
}

static void idem_load_run(struct bg_job *j)
{
    struct idem_load *ld = (struct idem_load *)j;
    if (ld->stage == IDEM_LOAD_SNAPSHOT)
        idem_load_snapshot_run(ld);
    else
        ld->rc = idem_load_scan(ld, &ld->slice);
}

/* --- load: loop steps ------------------------------------------------------------------------- */

static void idem_load_done(struct bg_job *j);

/* Ends a load: installs the table (or reports why not), wakes the waiters in order. */
static void idem_load_end(struct idem_load *ld)
{
    struct idem *id = ld->id;
    struct idem_part *ip = ld->ip;
    if (ld->have_slice)
        partition_read_release(ld->p, &ld->slice);
    if (ld->rc == 0) {
        pstate_expire(ld->ps, ld->now_ms, id->expiration_ms);
        ip->ps = ld->ps;
        ip->max_producers = ld->max_producers;
        ip->lead_gen = ld->lead_gen;
        ip->applied = ld->end;
        ip->led = false;
        ip->dirty |= ld->resume && ld->end > ld->from; /* a follower snapshots what it applied */
        ld->ps = NULL;
        id->st.replayed_offsets += ld->end - ld->from;
        id->st.resumes += ld->resume;
        id->st.last_replay_from = ld->from;
        id->st.last_replay_end = ld->end;
        if (!ld->resume || partition_leads(ld->p) ||
            ld->end - ld->from >= IDEM_RESUME_LOG_OFFSETS) /* a follower's are routine */
            RL_INFO("%s-%u: producer state %s (%u producers, replayed offsets %lld..%llu)",
                    partition_topic(ld->p), partition_index(ld->p),
                    ld->resume ? "brought up to date" : "loaded", pstate_count(ip->ps),
                    (long long)ld->from, (unsigned long long)ld->end);
    } else {
        RL_ERROR("%s-%u: cannot rebuild producer state from the log: %s",
                 partition_topic(ld->p), partition_index(ld->p), rl_strerror(ld->rc));
    }
    ip->loading = false;
    id->loads_inflight--;
    partition_unpin(ld->p);
    int rc = ld->rc;
    pstate_destroy(ld->ps);
    free(ld->scratch);
    free(ld);
    idem_load_wake(ip, rc);
    idem_load_next(id);
}

/* Reads the next slice of the replay range, on the loop (the log's index lives here); the
 * headers are read on the bg thread. Returns true when the load is over. */
static bool idem_load_slice(struct idem_load *ld)
{
    for (; ld->off < ld->end && ld->slices < IDEM_REPLAY_MAX_SLICES; ld->slices++) {
        if (partition_gone(ld->p)) {
            ld->rc = RL_E_UNKNOWN_TOPIC;
            return true;
        }
        ld->rc = partition_read(ld->p, ld->off, IDEM_REPLAY_READ_BYTES, &ld->slice);
        if (ld->rc)
            return true;
        ld->have_slice = true;
        if (ld->slice.len == 0) {
            ld->end = ld->off; /* nothing readable past here: the table covers no more */
            return true;
        }
        if (!ld->slice.mem) {
            ld->stage = IDEM_LOAD_SLICE;
            ld->rc = bg_submit(ld->id->bg, &ld->job);
            return ld->rc != 0;
        }
        ld->rc = idem_load_scan(ld, &ld->slice); /* memory: nothing to wait for */
        ld->off = ld->slice.next_offset;
        partition_read_release(ld->p, &ld->slice);
        ld->have_slice = false;
        if (ld->rc)
            return true;
    }
    return true;
}

static void idem_load_done(struct bg_job *j)
{
    struct idem_load *ld = (struct idem_load *)j;
    if (ld->rc)
        return idem_load_end(ld);
    if (ld->stage == IDEM_LOAD_SNAPSHOT) {
        /* The range to replay, from what the log holds now. The snapshot was written by an
         * earlier run (a load happens once per run), so nothing it holds can lie past the log
         * end this run opened with, whatever was appended since; and nothing at or past its
         * own next offset is trusted (replay finds what the log really holds there). */
        uint64_t start = partition_start_offset(ld->p);
        ld->end = partition_visible_end(ld->p);
        ld->lead_gen = partition_lead_generation(ld->p);
        uint64_t held = partition_open_end(ld->p) < ld->end ? partition_open_end(ld->p)
                                                              : ld->end;
        if (ld->next > (int64_t)held)
            ld->next = (int64_t)held; /* the log lost a tail after the snapshot */
        pstate_truncate(ld->ps, ld->next);
        ld->from = ld->off = ld->next < (int64_t)start ? start : (uint64_t)ld->next;
    } else {
        ld->off = ld->slice.next_offset;
        partition_read_release(ld->p, &ld->slice);
        ld->have_slice = false;
    }
    if (idem_load_slice(ld))
        idem_load_end(ld);
}

/* A resumed load: no snapshot, the table in memory covers the log below ip->applied (all
 * committed, so still in the log), and replay goes from there to the visible end now. */
static void idem_load_resume(struct idem_load *ld)
{
    struct idem_part *ip = ld->ip;
    ld->ps = ip->ps;
    ld->max_producers = ip->max_producers;
    ip->ps = NULL; /* idem_check waits (IDEM_PENDING) while the bg thread records into it */
    uint64_t start = partition_start_offset(ld->p);
    ld->end = partition_visible_end(ld->p);
    ld->lead_gen = partition_lead_generation(ld->p);
    ld->from = ld->off = ip->applied < start ? start : ip->applied;
    if (ld->end < ld->from)
        ld->end = ld->from; /* cannot happen: the visible end never moves back */
    if (idem_load_slice(ld))
        idem_load_end(ld);
}

/* Starts queued loads while fewer than IDEM_MAX_LOADS run. */
static void idem_load_next(struct idem *id)
{
    while (id->load_head && id->loads_inflight < IDEM_MAX_LOADS) {
        struct idem_part *ip = id->load_head;
        id->load_head = ip->load_next;
        if (!id->load_head)
            id->load_tail = NULL;
        ip->load_queued = false;
        struct idem_load *ld = calloc(1, sizeof(*ld));
        uint8_t *scratch = malloc(CHECKPOINT_MAX_PAYLOAD);
        if (!ld || !scratch) {
            free(ld);
            free(scratch);
            RL_ERROR("out of memory loading producer state");
            idem_load_fail_waiters(ip, -ENOMEM);
            continue;
        }
        *ld = (struct idem_load){.id = id, .io = id->io, .ip = ip, .p = ip->p, .scratch = scratch,
                                 .now_ms = id->now_ms, .stage = IDEM_LOAD_SNAPSHOT,
                                 .resume = ip->ps != NULL,
                                 .min_producers = ip->adopted ? IDEM_PART_FOLLOWER_PRODUCERS
                                                              : IDEM_PART_MIN_PRODUCERS};
        ld->job.run = idem_load_run;
        ld->job.done = idem_load_done;
        idem_part_dir(id, ip->p, ld->dir, sizeof(ld->dir));
        ip->loading = true;
        id->loads_inflight++;
        if (ld->resume) {
            idem_load_resume(ld);
            continue;
        }
        if (bg_submit(id->bg, &ld->job)) {
            ld->rc = RL_E_FULL;
            idem_load_end(ld);
        }
    }
    if (!idem_loads_busy(id))
        idem_loads_drained(id);
}

static void idem_part_queue(struct idem *id, struct idem_part *ip)
{
    partition_pin(ip->p); /* until the load ends: the partition outlives it */
    ip->load_queued = true;
    ip->load_next = NULL;
    if (id->load_tail)
        id->load_tail->load_next = ip;
    else
        id->load_head = ip;
    id->load_tail = ip;
    idem_load_next(id);
}

void idem_part_load(struct idem *id, struct idem_part *ip)
{
    if (ip->ps || ip->loading || ip->load_queued)
        return;
    idem_part_queue(id, ip);
}

void idem_part_resume(struct idem *id, struct idem_part *ip)
{
    if (!ip->ps || ip->loading || ip->load_queued)
        return;
    idem_part_queue(id, ip);
}

bool idem_loads_busy(const struct idem *id)
{
    return id->loads_inflight > 0 || id->load_head != NULL;
}

void idem_wait_loaded(struct idem *id, struct partition *p, struct idem_wait *w)
{
    struct idem_part *ip = idem_part_get(id, p);
    if (!ip) {
        w->done(w, -ENOMEM);
        return;
    }
    w->next = NULL;
    if (ip->waiters_tail)
        ip->waiters_tail->next = w;
    else
        ip->waiters = w;
    ip->waiters_tail = w;
    idem_part_load(id, ip);
}

/* --- snapshots -------------------------------------------------------------------------------- */

static void idem_snap_run(struct bg_job *j)
{
    struct idem_snap *sn = (struct idem_snap *)j;
    sn->rc = checkpoint_save(sn->io, sn->dir, IDEM_SNAPSHOT_NAME, sn->buf, sn->len,
                             CHECKPOINT_DURABLE);
}

static void idem_snap_done(struct bg_job *j)
{
    struct idem_snap *sn = (struct idem_snap *)j;
    struct idem_part *ip = sn->ip;
    if (sn->rc) {
        RL_WARN("%s: cannot write the producer-state snapshot: %s", sn->dir,
                rl_strerror(sn->rc));
        ip->dirty = true; /* the next tick tries again */
    } else {
        sn->id->st.snapshots++;
    }
    ip->snapshot_inflight = false;
    partition_unpin(ip->p);
    free(sn->buf);
    free(sn);
    if (ip->snapshot_wanted && ip->ps && !ip->loading && !partition_gone(ip->p)) {
        ip->snapshot_wanted = false;
        idem_part_snapshot(ip->id, ip, ip->snapshot_ms);
    }
}

void idem_part_snapshot(struct idem *id, struct idem_part *ip, int64_t now_ms)
{
    if (ip->snapshot_inflight) {
        ip->snapshot_wanted = true;
        return;
    }
    struct idem_snap *sn = calloc(1, sizeof(*sn));
    size_t cap = pstate_snapshot_size(ip->ps);
    uint8_t *buf = sn ? malloc(cap) : NULL;
    /* Only what is durable: batches recorded but not yet durable (in flight, or queued
     * behind a full log) are left out, and replay after a restart finds them if they reached
     * the disk. */
    uint64_t upto = partition_visible_end(ip->p);
    if (partition_replicated(ip->p) && !ip->led && ip->applied < upto)
        upto = ip->applied; /* a follower's table covers what it applied, no more */
    int n = buf ? pstate_snapshot_encode(ip->ps, (int64_t)upto, buf, cap) : -ENOMEM;
    if (n < 0) {
        RL_WARN("%s-%u: cannot encode the producer-state snapshot: %s", partition_topic(ip->p),
                partition_index(ip->p), rl_strerror(n));
        free(buf);
        free(sn);
        return;
    }
    *sn = (struct idem_snap){.id = id, .ip = ip, .io = id->io, .buf = buf, .len = (size_t)n};
    sn->job.run = idem_snap_run;
    sn->job.done = idem_snap_done;
    idem_part_dir(id, ip->p, sn->dir, sizeof(sn->dir));
    ip->dirty = false;
    ip->bytes_at_snapshot = partition_stats(ip->p)->bytes_in;
    ip->snapshot_ms = now_ms;
    ip->snapshot_inflight = true;
    partition_pin(ip->p);
    if (bg_submit(id->bg, &sn->job)) {
        sn->rc = RL_E_FULL;
        idem_snap_done(&sn->job);
    }
}
