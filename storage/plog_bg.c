/*
 * plog_bg: the partition log's background work and retries (internals in plog_int.h). Where it
 * sits: beside the append path (plog_write.c), which hands it what must not run on the loop:
 * creating and preallocating a new segment (roll), finishing a sealed one (fdatasync unless
 * already durable, trim, index files), growing the active segment's preallocation (through the
 * ring), and the timer that retries writes refused for space.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "storage/plog_int.h"

static uint64_t align_up(uint64_t v)
{
    return (v + PLOG_ALIGN - 1) & ~(uint64_t)(PLOG_ALIGN - 1);
}

/* --- jobs ------------------------------------------------------------------------------- */

void plog_job_submit(struct plog *log, struct bio_job *job, bio_work_fn work, bio_done_fn done)
{
    job->work = work;
    job->done = done;
    log->jobs++;
    bio_submit(log->st->bio, job);
}

void plog_job_finished(struct plog *log)
{
    RL_ASSERT(log->jobs > 0);
    log->jobs--;
}

/* --- roll: the next segment is created and preallocated in the background --------------- */

struct roll_job {
    struct bio_job job;
    struct plog *log;
    struct segment *seg;
    uint64_t prealloc;
    uint64_t allocated; /* out: what the file has reserved */
};

static int roll_work(struct bio_job *job)
{
    struct roll_job *r = job->ctx;
    struct io *io = r->log->st->io;
    char path[PATH_MAX];
    int rc = segment_path(r->seg, ".log", path, sizeof(path));
    int fd = rc < 0 ? rc : io_file_open(io, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fd;
    rc = io_file_allocate(io, fd, 0, r->prealloc);
    if (rc == 0)
        r->allocated = r->prealloc;
    else if (rc == -EOPNOTSUPP)
        rc = 0; /* the writes extend the file instead */
    io_file_close(io, fd);
    /* The new file's directory entry must be durable before anything in it is acknowledged. */
    if (rc == 0)
        rc = io_dir_sync(io, r->log->dir);
    if (rc < 0)
        io_path_unlink(io, path);
    return rc;
}

static void roll_done(struct bio_job *job, int result)
{
    struct roll_job *r = job->ctx;
    struct plog *log = r->log;
    struct segment *seg = r->seg;
    plog_job_finished(log);
    seg->roll_busy = false;
    if (result == 0) {
        seg->ready = true;
        seg->falloc_end = r->allocated;
    } else if (result == -ENOSPC || result == -EDQUOT) {
        plog_enter_disk_full(log, result); /* the retry timer submits the roll again */
    } else {
        plog_fail(log, result);
    }
    free(r);
    plog_pump(log);
}

/* Queues the creation of `seg` (not ready until it completes). */
void plog_roll_submit(struct plog *log, struct segment *seg)
{
    struct roll_job *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        plog_fail(log, -ENOMEM);
        return;
    }
    uint64_t pre = PLOG_FALLOC_MIN;
    if (pre > align_up(log->cfg.segment_bytes))
        pre = align_up(log->cfg.segment_bytes);
    *r = (struct roll_job){.log = log, .seg = seg, .prealloc = pre};
    r->job.ctx = r;
    seg->roll_busy = true;
    plog_job_submit(log, &r->job, roll_work, roll_done);
}

/* --- finishing a sealed segment --------------------------------------------------------- */

/* The work of finishing: fdatasync (when asked), trim to the batches, index files. A failed
 * sync is the log's failure (*sync_rc); a failed trim or index write only costs space or a
 * rebuild at the next open (returned). */
static int finish_files(struct io *io, struct segment *seg, bool sync, int *sync_rc)
{
    char path[PATH_MAX];
    *sync_rc = 0;
    int rc = segment_path(seg, ".log", path, sizeof(path));
    int fd = rc < 0 ? rc : io_file_open(io, path, O_RDWR, 0);
    if (fd < 0) {
        *sync_rc = fd;
        return fd;
    }
    if (sync)
        *sync_rc = io_file_fdatasync(io, fd);
    rc = *sync_rc;
    if (rc == 0)
        rc = io_file_truncate(io, fd, seg->end_pos);
    io_file_close(io, fd);
    if (*sync_rc == 0) {
        int irc = segment_index_save(io, seg, 0);
        if (rc == 0)
            rc = irc;
    }
    return rc;
}

struct finish_job {
    struct bio_job job;
    struct plog *log;
    struct segment *seg;
    bool sync;
    int sync_rc;
};

static int finish_work(struct bio_job *job)
{
    struct finish_job *f = job->ctx;
    return finish_files(f->log->st->io, f->seg, f->sync, &f->sync_rc);
}

static void finish_done(struct bio_job *job, int result)
{
    struct finish_job *f = job->ctx;
    struct plog *log = f->log;
    struct segment *seg = f->seg;
    plog_job_finished(log);
    seg->finishing = false;
    if (--seg->refs == 0 && seg->deleted) {
        /* Retention took it meanwhile (its removal job runs after this one). */
        fcache_close(seg->fc, &seg->rd);
        fcache_close(seg->fc, &seg->wr);
        fcache_close(seg->fc, &seg->drd);
        segment_free(seg);
        free(f);
        plog_pump(log);
        return;
    }
    if (seg->deleted) {
        free(f);
        plog_pump(log);
        return;
    }
    if (f->sync_rc < 0) {
        plog_fail(log, f->sync_rc);
    } else {
        if (result < 0)
            RL_WARN("%s: finishing segment %llu: %s (its index is rebuilt at the next open)",
                    log->dir, (unsigned long long)seg->base_offset, rl_strerror(result));
        seg->falloc_end = seg->end_pos;
        seg->finalized = true;
    }
    free(f);
    plog_pump(log);
}

void plog_finish_submit(struct plog *log, struct segment *seg, bool sync)
{
    struct finish_job *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        plog_fail(log, -ENOMEM);
        return;
    }
    fcache_close(&log->st->fc, &seg->wr);
    *f = (struct finish_job){.log = log, .seg = seg, .sync = sync};
    f->job.ctx = f;
    seg->finishing = true;
    seg->refs++; /* retention may drop it meanwhile; the job still reads it */
    plog_job_submit(log, &f->job, finish_work, finish_done);
}

int plog_finish_sync(struct plog *log, struct segment *seg, bool sync)
{
    int sync_rc;
    fcache_close(&log->st->fc, &seg->wr);
    int rc = finish_files(log->st->io, seg, sync, &sync_rc);
    if (sync_rc < 0)
        return sync_rc;
    if (rc < 0)
        RL_WARN("%s: finishing segment %llu: %s", log->dir,
                (unsigned long long)seg->base_offset, rl_strerror(rc));
    seg->falloc_end = seg->end_pos;
    seg->finalized = true;
    return 0;
}

/* --- preallocation ahead of the writes -------------------------------------------------- */

static void falloc_done(struct io_op *op, int result)
{
    struct plog *log = op->ctx;
    struct segment *seg = log->falloc_seg;
    log->falloc_busy = false;
    log->falloc_seg = NULL;
    fcache_unpin(&seg->wr);
    if (result == 0) {
        if (log->falloc_target > seg->falloc_end)
            seg->falloc_end = log->falloc_target;
    } else if (!log->falloc_warned) {
        /* Not fatal: writes extend the file instead (slower), and a write that finds no
         * space reports it itself. */
        log->falloc_warned = true;
        RL_WARN("%s: preallocation failed: %s", log->dir, rl_strerror(result));
    }
    plog_pump(log);
}

bool plog_prealloc_first(struct plog *log, struct segment *seg, int fd, uint64_t upto)
{
    if (upto <= seg->falloc_end || log->falloc_warned || seg->sealed)
        return false;
    if (log->falloc_busy)
        return true; /* the write waits for the reservation under way */
    uint64_t step = seg->falloc_end < PLOG_FALLOC_MIN ? PLOG_FALLOC_MIN : seg->falloc_end;
    if (step > PLOG_FALLOC_MAX)
        step = PLOG_FALLOC_MAX;
    uint64_t target = seg->falloc_end + step;
    if (target < upto)
        target = align_up(upto) + step;
    /* Never reserve much past the segment size: 10,000 small partitions must not pin
     * gigabytes of disk. */
    uint64_t limit = align_up(log->cfg.segment_bytes);
    if (target > limit)
        target = upto > limit ? align_up(upto) : limit;
    /* Not KEEP_SIZE: the file grows to the reserved size at once, so appends are overwrites
     * inside the file, never extending writes. ext4 serializes extending O_DIRECT writes (and
     * makes each fdatasync also log a size change), which measured at about half the disk's
     * bandwidth. The price is that after a crash the file ends in zeros past the last batch;
     * recovery recognizes them as unwritten space and trims them.
     * The write waits for the reservation rather than going out beside it: fallocate holds
     * the inode lock and waits for direct I/O in flight, so a write submitted meanwhile would
     * be handed to io_uring's worker threads, which run writes to one file one at a time. */
    log->falloc_busy = true;
    log->falloc_seg = seg;
    log->falloc_target = target;
    fcache_pin(&seg->wr);
    log->falloc_op = (struct io_op){.done = falloc_done, .ctx = log};
    io_prep_fallocate(log->st->io, &log->falloc_op, fd, seg->falloc_end,
                      target - seg->falloc_end, 0);
    return true;
}

/* --- retries ---------------------------------------------------------------------------- */

static void retry_done(struct io_op *op, int result)
{
    struct plog *log = op->ctx;
    log->retry_armed = false;
    if (result < 0 || log->closing || log->failed)
        return;
    struct segment *act = log->segs[log->nsegs - 1];
    if (log->disk_full && !log->disk_full_rewind) {
        if (log->written_lsn >= log->appended_lsn && act->ready)
            plog_leave_disk_full(log); /* nothing is waiting for space */
        else
            log->disk_full_retrying = true;
    }
    if (!act->ready && !act->roll_busy)
        plog_roll_submit(log, act);
    plog_pump(log);
}

void plog_retry_arm(struct plog *log, uint32_t ms)
{
    if (log->retry_armed || log->closing)
        return;
    log->retry_armed = true;
    log->retry = (struct io_op){.done = retry_done, .ctx = log};
    io_prep_timeout(log->st->io, &log->retry, (uint64_t)ms * 1000000ull, 0);
}

void plog_leave_disk_full(struct plog *log)
{
    if (!log->disk_full)
        return;
    log->disk_full = false;
    log->disk_full_retrying = false;
    log->st->disk_full_logs--;
    RL_INFO("%s: space is available again; appends resume", log->dir);
}

void plog_enter_disk_full(struct plog *log, int err)
{
    log->disk_full_retrying = false;
    if (!log->disk_full) {
        RL_ERROR("%s: %s (%s); appends already accepted wait and are retried every %u ms, new "
                 "ones are refused until then", log->dir, rl_strerror(RL_E_DISK_FULL),
                 rl_strerror(err), PLOG_DISK_FULL_RETRY_MS);
        log->disk_full = true;
        log->st->disk_full_logs++;
    }
    if (log->wop_count > 0)
        log->disk_full_rewind = true; /* issued_lsn goes back once the writes in flight end */
    else
        plog_retry_arm(log, PLOG_DISK_FULL_RETRY_MS);
}
