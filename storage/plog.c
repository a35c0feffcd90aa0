/*
 * plog: the partition log's life cycle (contract in plog.h, internals in plog_int.h): the
 * storage context shared by a shard's logs and its clean-shutdown record, configuration,
 * closing, and deletion. Opening and recovery in plog_recover.c, the append path in
 * plog_write.c, reads and maintenance in plog_read.c.
 *
 * The clean-shutdown record, `<state_dir>/storage-clean`, is a checkpoint (checkpoint.h) whose
 * payload is a u32 count followed by that many 48-byte entries (struct clean_entry, each field
 * a little-endian u64 in declaration order). storage_open reads it into `clean` and removes the
 * file; plog_open looks its directory up there; plog_close puts an entry back; storage_destroy
 * makes everything durable with one syncfs and writes the record again. A log entry that does
 * not match the files (other end offset, other active segment) is ignored: the log is then
 * recovered as after a crash.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/batch.h"
#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/checkpoint.h"
#include "storage/plog_debug.h"
#include "storage/plog_int.h"

#define CLEAN_RECORD_MAX_LOGS (1u << 22)

/* --- configuration ---------------------------------------------------------------------- */

void plog_config_default(struct plog_config *cfg)
{
    cfg->segment_bytes = 1ull << 30;
    cfg->segment_ms = 7ll * 24 * 3600 * 1000;
    cfg->retention_ms = 7ll * 24 * 3600 * 1000;
    cfg->retention_bytes = -1;
    cfg->flush_policy = PLOG_FLUSH_BATCH;
    cfg->flush_interval_ms = 1000;
    cfg->index_interval_bytes = 4096;
    cfg->max_batch_bytes = 8u << 20;
}

int plog_parse_flush_policy(const char *text, struct plog_config *cfg)
{
    if (strcmp(text, "batch") == 0) {
        cfg->flush_policy = PLOG_FLUSH_BATCH;
        return 0;
    }
    if (strcmp(text, "none") == 0) {
        cfg->flush_policy = PLOG_FLUSH_NONE;
        return 0;
    }
    if (strncmp(text, "interval:", 9) == 0 && isdigit((unsigned char)text[9])) {
        char *end;
        errno = 0;
        unsigned long ms = strtoul(text + 9, &end, 10);
        if (*end != '\0' || errno != 0 || ms == 0 || ms > 24ul * 3600 * 1000)
            return RL_E_INVALID_CONFIG;
        cfg->flush_policy = PLOG_FLUSH_INTERVAL;
        cfg->flush_interval_ms = (uint32_t)ms;
        return 0;
    }
    return RL_E_INVALID_CONFIG;
}

int plog_config_check(const struct plog_config *cfg)
{
    if (cfg->segment_bytes < 4096 || cfg->segment_bytes > SEGMENT_MAX_BYTES ||
        cfg->segment_ms <= 0 || cfg->index_interval_bytes == 0 ||
        cfg->max_batch_bytes < RL_BATCH_HEADER_SIZE ||
        cfg->max_batch_bytes > PLOG_MAX_BATCH_LIMIT ||
        cfg->max_batch_bytes > RL_BATCH_MAX_BYTES || cfg->flush_policy > PLOG_FLUSH_NONE ||
        (cfg->flush_policy == PLOG_FLUSH_INTERVAL && cfg->flush_interval_ms == 0))
        return RL_E_INVALID_CONFIG;
    return 0;
}

int plog_set_config(struct plog *log, const struct plog_config *cfg)
{
    int rc = plog_config_check(cfg);
    if (rc < 0)
        return rc;
    log->cfg = *cfg;
    plog_pump(log);
    return 0;
}

/* --- the clean-shutdown table ----------------------------------------------------------- */

uint64_t plog_dir_hash(const char *dir)
{
    uint64_t h = XXH3_64bits(dir, strlen(dir));
    return h != 0 ? h : 1; /* 0 marks a free slot */
}

static uint32_t clean_slot(const struct clean_table *t, uint64_t dir_hash)
{
    uint32_t i = (uint32_t)dir_hash & (t->cap - 1);
    while (t->e[i].dir_hash != 0 && t->e[i].dir_hash != dir_hash)
        i = (i + 1) & (t->cap - 1);
    return i;
}

const struct clean_entry *clean_find(const struct clean_table *t, uint64_t dir_hash)
{
    if (t->cap == 0)
        return NULL;
    uint32_t i = clean_slot(t, dir_hash);
    return t->e[i].dir_hash == dir_hash ? &t->e[i] : NULL;
}

int clean_put(struct clean_table *t, const struct clean_entry *e)
{
    if ((t->n + 1) * 2 > t->cap) {
        struct clean_table g = {calloc(t->cap ? t->cap * 2 : 64, sizeof(*g.e)),
                                t->cap ? t->cap * 2 : 64, 0};
        if (g.e == NULL)
            return -ENOMEM;
        for (uint32_t i = 0; i < t->cap; i++)
            if (t->e[i].dir_hash != 0) {
                g.e[clean_slot(&g, t->e[i].dir_hash)] = t->e[i];
                g.n++;
            }
        free(t->e);
        *t = g;
    }
    uint32_t i = clean_slot(t, e->dir_hash);
    if (t->e[i].dir_hash == 0)
        t->n++;
    t->e[i] = *e;
    return 0;
}

void clean_del(struct clean_table *t, uint64_t dir_hash)
{
    if (t->cap == 0)
        return;
    uint32_t i = clean_slot(t, dir_hash);
    if (t->e[i].dir_hash == 0)
        return;
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    t->e[i].dir_hash = 0;
    t->n--;
    for (uint32_t j = (i + 1) & (t->cap - 1); t->e[j].dir_hash != 0; j = (j + 1) & (t->cap - 1)) {
        struct clean_entry moved = t->e[j];
        t->e[j].dir_hash = 0;
        t->e[clean_slot(t, moved.dir_hash)] = moved;
    }
}

static int clean_record_load(struct storage *st)
{
    size_t cap = 4 + (size_t)CLEAN_RECORD_MAX_LOGS * CLEAN_ENTRY_BYTES;
    char path[PATH_MAX];
    uint64_t size = 0;
    if (snprintf(path, sizeof(path), "%s/%s", st->state_dir, STORAGE_CLEAN_RECORD) >=
        (int)sizeof(path))
        return -ENAMETOOLONG;
    int rc = io_path_size(st->io, path, &size);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0 || size > cap + CHECKPOINT_OVERHEAD)
        return rc < 0 ? rc : RL_CORRUPT(path, 0, -1, "clean-shutdown record too large");
    uint8_t *buf = malloc(size);
    if (buf == NULL)
        return -ENOMEM;
    int n = checkpoint_load(st->io, st->state_dir, STORAGE_CLEAN_RECORD, buf, size);
    rc = n < 0 ? n : 0;
    if (n >= 4 && (size_t)n == 4 + (size_t)rl_load_le32(buf) * CLEAN_ENTRY_BYTES) {
        for (uint32_t i = 0; rc == 0 && i < rl_load_le32(buf); i++) {
            const uint8_t *p = buf + 4 + (size_t)i * CLEAN_ENTRY_BYTES;
            struct clean_entry e = {rl_load_le64(p), rl_load_le64(p + 8), rl_load_le64(p + 16),
                                    rl_load_le64(p + 24), rl_load_le64(p + 32),
                                    rl_load_le64(p + 40)};
            if (e.dir_hash != 0)
                rc = clean_put(&st->clean, &e);
        }
    } else if (n >= 0) {
        rc = RL_CORRUPT(path, 0, -1, "clean-shutdown record has a bad length");
    }
    free(buf);
    if (rc == RL_E_CORRUPT) {
        /* Every log is then recovered as after a crash: slower, never wrong. */
        st->clean.n = 0;
        memset(st->clean.e, 0, st->clean.cap * sizeof(*st->clean.e));
        rc = 0;
    }
    return rc;
}

static int clean_record_save(struct storage *st)
{
    size_t len = 4 + (size_t)st->clean.n * CLEAN_ENTRY_BYTES;
    uint8_t *buf = malloc(len);
    if (buf == NULL)
        return -ENOMEM;
    uint32_t k = 0;
    for (uint32_t i = 0; i < st->clean.cap; i++) {
        const struct clean_entry *e = &st->clean.e[i];
        if (e->dir_hash == 0)
            continue;
        uint8_t *p = buf + 4 + (size_t)k++ * CLEAN_ENTRY_BYTES;
        const uint64_t v[6] = {e->dir_hash, e->next_offset, e->start_offset, e->active_base,
                               e->active_end, e->flags};
        for (int j = 0; j < 6; j++)
            rl_store_le64(p + 8 * j, v[j]);
    }
    rl_store_le32(buf, k);
    unsigned flags = CHECKPOINT_DURABLE;
    int rc = checkpoint_save(st->io, st->state_dir, STORAGE_CLEAN_RECORD, buf, len,
                             flags | CHECKPOINT_LARGE);
    free(buf);
    return rc;
}

/* --- storage context -------------------------------------------------------------------- */

int storage_open(struct io *io, const struct storage_options *opt, struct storage **out)
{
    struct storage *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    st->io = io;
    st->direct = true;
    fcache_init(&st->fc, io, opt->max_open_files);
    st->scan_buf = malloc(PLOG_SCAN_BUF_BYTES);
    st->job_scan_buf = malloc(PLOG_SCAN_BUF_BYTES);
    int rc = st->scan_buf == NULL || st->job_scan_buf == NULL ? -ENOMEM : 0;
    if (rc == 0 && opt->state_dir != NULL && (st->state_dir = strdup(opt->state_dir)) == NULL)
        rc = -ENOMEM;
    if (rc == 0 && st->state_dir != NULL) {
        rc = clean_record_load(st);
        /* From here a crash must not look clean: the record goes before any log changes. */
        if (rc == 0)
            rc = checkpoint_delete(io, st->state_dir, STORAGE_CLEAN_RECORD, 1);
    }
    if (rc == 0)
        rc = tcache_create(opt->tail_cache_bytes, opt->tail_cache_prefault, &st->tcache);
    if (rc == 0)
        rc = bio_create(io, &st->bio);
    if (rc == 0) {
        rc = bio_create(io, &st->reaper);
        if (rc < 0)
            bio_destroy(st->bio);
    }
    if (rc < 0) {
        tcache_destroy(st->tcache);
        free(st->scan_buf);
        free(st->job_scan_buf);
        free(st->state_dir);
        free(st->clean.e);
        free(st);
        return rc;
    }
    *out = st;
    return 0;
}

int storage_create(struct io *io, unsigned max_open_files, struct storage **out)
{
    struct storage_options opt = {.max_open_files = max_open_files};
    return storage_open(io, &opt, out);
}

void storage_destroy(struct storage *st)
{
    if (st == NULL)
        return;
    bio_drain(st->bio); /* asynchronous opens hand over their logs first */
    while (st->logs != NULL)
        plog_close(st->logs);
    bio_destroy(st->bio);
    bio_destroy(st->reaper); /* after bio: its removals queue gradual ones (no pauses now) */
    if (st->state_dir != NULL && st->clean.n > 0) {
        /* One syncfs makes every closed log's data and index files durable, then one record
         * says they are complete: a few syncs for any number of logs. */
        int rc = io_fs_sync(st->io, st->state_dir);
        if (rc == 0)
            rc = clean_record_save(st);
        if (rc < 0)
            RL_ERROR("%s: cannot write the clean-shutdown record (%s); the next start will "
                     "recover every log as after a crash", st->state_dir, rl_strerror(rc));
    }
    for (unsigned i = 0; i < st->n_slabs; i++) {
        free(st->slabs[i].mem);
        free(st->slabs[i].chunks);
    }
    while (st->free_rings != NULL) {
        struct wop_ring *r = st->free_rings;
        st->free_rings = r->next;
        free(r);
    }
    tcache_destroy(st->tcache);
    free(st->clean.e);
    free(st->state_dir);
    free(st->scan_buf);
    free(st->job_scan_buf);
    free(st);
}

void storage_tail_cache_stats(const struct storage *st, struct tcache_stats *out)
{
    tcache_get_stats(st->tcache, out);
}

unsigned storage_disk_full_logs(const struct storage *st)
{
    return st->disk_full_logs;
}

struct io *storage_io(const struct storage *st)
{
    return st->io;
}

void storage_debug_sync_background(struct storage *st)
{
    bio_drain(st->bio);
    bio_drain(st->reaper); /* the removals bio's jobs handed over */
}

unsigned storage_debug_open_files(const struct storage *st)
{
    return st->fc.open;
}

void storage_debug_forget_clean(struct storage *st)
{
    if (st->clean.e != NULL)
        memset(st->clean.e, 0, st->clean.cap * sizeof(*st->clean.e));
    st->clean.n = 0;
}

void plog_debug_fail_next_io(struct plog *log, int err)
{
    log->fault_next = err;
}

/* --- segment helpers shared by the log's files ------------------------------------------ */

int plog_seg_read_fd(struct plog *log, struct segment *seg)
{
    char path[PATH_MAX];
    int rc = segment_path(seg, ".log", path, sizeof(path));
    return rc < 0 ? rc : fcache_get(&log->st->fc, &seg->rd, path, O_RDONLY, NULL);
}

int plog_seg_write_fd(struct plog *log, struct segment *seg)
{
    char path[PATH_MAX];
    int rc = segment_path(seg, ".log", path, sizeof(path));
    int flags = O_RDWR | (log->st->direct ? O_DIRECT : 0);
    return rc < 0 ? rc : fcache_get(&log->st->fc, &seg->wr, path, flags, &log->st->direct);
}

int plog_segs_push(struct plog *log, struct segment *seg)
{
    if (log->nsegs == log->cap_segs) {
        uint32_t ncap = log->cap_segs ? log->cap_segs * 2 : 8;
        struct segment **p = realloc(log->segs, ncap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        log->segs = p;
        log->cap_segs = ncap;
    }
    seg->fc = &log->st->fc;
    log->segs[log->nsegs++] = seg;
    return 0;
}

/* Unlinks a segment's files. Runs in background jobs (FIFO with the jobs that create files,
 * so a later segment of the same name is never hit) and in recovery. */
void plog_segment_remove_files(struct io *io, const struct segment *seg)
{
    static const char *const exts[] = {".log", ".index", ".timeindex", ".damaged"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        if (segment_path(seg, exts[i], path, sizeof(path)) < 0)
            continue;
        int rc = io_path_unlink(io, path);
        if (rc < 0 && rc != -ENOENT)
            RL_WARN("%s: cannot remove: %s", path, rl_strerror(rc));
    }
}

static void segment_close_fds(struct plog *log, struct segment *seg)
{
    fcache_close(&log->st->fc, &seg->rd);
    fcache_close(&log->st->fc, &seg->wr);
    fcache_close(&log->st->fc, &seg->drd);
}

/* A job removing one dropped segment's files: it owns a copy of the segment's stem. */
struct remove_job {
    struct bio_job job;
    struct plog *log;
    struct segment *stub; /* only its stem is used */
    bool renamed;         /* the data file is now `gone`, for the reaper */
    char gone[PATH_MAX];
};

/* Renames the data file (a fast step, in order with the jobs that create files, so its name is
 * free at once) for the reaper to free in steps, and removes the small files now. */
static int remove_work(struct bio_job *job)
{
    struct remove_job *r = job->ctx;
    struct io *io = storage_io(r->log->st);
    char path[PATH_MAX];
    if (segment_path(r->stub, ".log", path, sizeof(path)) == 0 &&
        snprintf(r->gone, sizeof(r->gone), "%s.deleted", path) < (int)sizeof(r->gone) &&
        io_path_rename(io, path, r->gone) == 0)
        r->renamed = true;
    plog_segment_remove_files(io, r->stub);
    return 0;
}

static void remove_done(struct bio_job *job, int result)
{
    struct remove_job *r = job->ctx;
    (void)result;
    /* Without memory for the job the file stays as <stem>.log.deleted, which the log's next
     * open removes. */
    if (r->renamed && bio_remove_gradually(r->log->st->reaper, r->gone, PLOG_REMOVE_STEP_BYTES,
                                           PLOG_REMOVE_PAUSE_US) < 0)
        RL_WARN("%s: out of memory; removed at the next start", r->gone);
    plog_job_finished(r->log);
    if (r->log->trunc_waiting)
        plog_truncate_resume(r->log);
    segment_free(r->stub);
    free(r);
}

/* Removes a segment that the caller already took out of log->segs: its files go in the
 * background (in order with every other job), its memory when no slice holds it. */
void plog_segment_drop(struct plog *log, struct segment *seg)
{
    plog_hdr_window_drop(log->st);
    log->size_bytes -= seg->end_pos;
    struct remove_job *r = calloc(1, sizeof(*r));
    struct segment *stub = r != NULL ? segment_new(log->dir, seg->base_offset) : NULL;
    if (stub != NULL) {
        r->log = log;
        r->stub = stub;
        r->job.ctx = r;
        plog_job_submit(log, &r->job, remove_work, remove_done);
    } else {
        segment_free(stub);
        free(r);
        plog_segment_remove_files(log->st->io, seg); /* out of memory: do it here */
    }
    if (seg->refs > 0) {
        seg->deleted = true; /* a reader's slice still holds it; freed on release */
        return;
    }
    segment_close_fds(log, seg);
    segment_free(seg);
}

int plog_load_tail_block(struct plog *log)
{
    struct segment *seg = log->segs[log->nsegs - 1];
    uint64_t blk = seg->end_pos & ~(uint64_t)(PLOG_ALIGN - 1);
    size_t len = (size_t)(seg->end_pos - blk);
    char path[PATH_MAX];
    if (len == 0)
        return 0;
    /* A descriptor of its own: this may run on the background thread (plog_open_async), which
     * must not touch the descriptor cache. */
    int rc = segment_path(seg, ".log", path, sizeof(path));
    int fd = rc < 0 ? rc : io_file_open(log->st->io, path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    ssize_t n = io_file_pread(log->st->io, fd, log->tail_block, len, blk);
    io_file_close(log->st->io, fd);
    return n == (ssize_t)len ? 0 : (n < 0 ? (int)n : -EIO);
}

/* --- allocation and linking ------------------------------------------------------------- */

struct plog *plog_alloc(struct storage *st, const char *dir, const struct plog_config *cfg)
{
    struct plog *log = calloc(1, sizeof(*log));
    if (log == NULL)
        return NULL;
    log->st = st;
    log->cfg = *cfg;
    log->dir = strdup(dir);
    if (log->dir == NULL || posix_memalign((void **)&log->tail_block, PLOG_ALIGN, PLOG_ALIGN)) {
        free(log->dir);
        free(log);
        return NULL;
    }
    return log;
}

static void plog_free_segments(struct plog *log)
{
    plog_hdr_window_drop(log->st);
    for (uint32_t i = 0; i < log->nsegs; i++) {
        struct segment *seg = log->segs[i];
        fcache_close(&log->st->fc, &seg->wr);
        if (seg->refs > 0) {
            /* A reader still holds a slice (a send in flight): the segment outlives its log
             * and plog_slice_release frees it. */
            seg->deleted = true;
            continue;
        }
        segment_close_fds(log, seg);
        segment_free(seg);
    }
    log->nsegs = 0;
}

void plog_link(struct plog *log)
{
    struct storage *st = log->st;
    log->next_log = st->logs;
    if (st->logs != NULL)
        st->logs->prev_log = log;
    st->logs = log;
    log->linked = true;
}

void plog_free(struct plog *log)
{
    tcache_drop_owner(log->st->tcache, &log->tc);
    plog_chunks_free_all(log);
    plog_free_segments(log);
    if (log->disk_full)
        log->st->disk_full_logs--;
    if (log->linked) {
        if (log->prev_log != NULL)
            log->prev_log->next_log = log->next_log;
        else if (log->st->logs == log)
            log->st->logs = log->next_log;
        if (log->next_log != NULL)
            log->next_log->prev_log = log->prev_log;
    }
    free(log->segs);
    free(log->tail_block);
    free(log->dir);
    free(log);
}

/* --- close and delete ------------------------------------------------------------------- */

static void cancel_done(struct io_op *op, int result)
{
    (void)result;
    *(bool *)op->ctx = true;
}

/* Stops a timer of the log and waits (bounded) until both it and the cancel completed. */
static void stop_timer(struct plog *log, struct io_op *timer, bool *armed)
{
    if (!*armed)
        return;
    bool cancelled = false;
    struct io_op cancel = {.done = cancel_done, .ctx = &cancelled};
    io_prep_cancel(log->st->io, &cancel, timer, 0);
    uint64_t deadline = io_now_ns(log->st->io) + PLOG_DRAIN_TIMEOUT_NS;
    while ((*armed || !cancelled) && io_now_ns(log->st->io) < deadline)
        io_run(log->st->io, 100 * 1000000ull);
    RL_ASSERTF(!*armed && cancelled, "%s: a timer of the log did not stop", log->dir);
}

/* Makes the whole log durable where its policy left it behind and its index files current,
 * then remembers it as clean. The syncfs and the record come in storage_destroy. */
static int close_cleanly(struct plog *log)
{
    struct io *io = log->st->io;
    for (uint32_t i = 0; i + 1 < log->nsegs; i++) {
        struct segment *seg = log->segs[i];
        if (!seg->finalized) {
            int rc = plog_finish_sync(log, seg, true);
            if (rc < 0)
                return rc;
        } else if (!seg->index_saved) {
            segment_index_save(io, seg, SEGMENT_INDEX_IN_PLACE); /* an entry after damage */
        }
    }
    struct segment *act = log->segs[log->nsegs - 1];
    if (log->durable_lsn < log->appended_lsn) {
        int fd = plog_seg_write_fd(log, act);
        int rc = fd < 0 ? fd : io_file_fdatasync(io, fd);
        if (rc < 0)
            return rc;
        log->durable_lsn = log->appended_lsn;
    }
    fcache_close(&log->st->fc, &act->wr);
    /* In place, without a sync: the syncfs before the record makes them durable, and a torn
     * index is caught by the checks at load. The active segment is not trimmed: the record
     * says where its batches end, and the preallocation is used again after the restart. */
    int rc = segment_index_save(io, act, SEGMENT_INDEX_IN_PLACE);
    if (rc < 0)
        RL_WARN("%s: cannot write index files (%s); they will be rebuilt", log->dir,
                rl_strerror(rc));
    struct clean_entry e = {plog_dir_hash(log->dir), log->next_offset, log->start_offset,
                            act->base_offset, act->end_pos, 0};
    return clean_put(&log->st->clean, &e);
}

/* Appends still queued when a log closes without having written them (the disk was full)
 * were never acknowledged: their callers hear so. */
static void fail_queued(struct plog *log, int code)
{
    struct plog_append *r;
    while ((r = log->q_head) != NULL) {
        log->q_head = r->next;
        if (log->q_head == NULL)
            log->q_tail = NULL;
        r->next = NULL;
        r->done(r, code);
    }
    log->q_read = NULL;
}

static unsigned count_queued(const struct plog *log)
{
    unsigned n = 0;
    for (const struct plog_append *r = log->q_head; r && n < UINT32_MAX; r = r->next)
        n++;
    return n;
}

/* A log waiting for space gives its waiting appends up: they fail with `code`, and the log
 * refuses (sticky) everything after, so a retry timer cannot write them later; it is not
 * closed cleanly, and the next open recovers it to what reached the disk. */
static void abandon_space_wait(struct plog *log, int code)
{
    RL_WARN("%s: stopping while the disk is full: %u appends waiting for space are answered "
            "\"%s\" and not stored; the next start recovers the log", log->dir,
            count_queued(log), rl_strerror(code));
    log->disk_full = false;
    log->disk_full_rewind = false;
    log->disk_full_retrying = false;
    log->st->disk_full_logs--;
    log->failed = code;
    stop_timer(log, &log->retry, &log->retry_armed);
    fail_queued(log, code);
}

unsigned storage_abandon_space_waits(struct storage *st, int code)
{
    unsigned n = 0;
    for (struct plog *log = st->logs; log && st->disk_full_logs > 0; log = log->next_log)
        if (log->disk_full && log->failed == 0) {
            abandon_space_wait(log, code);
            n++;
        }
    return n;
}

void plog_close(struct plog *log)
{
    log->closing = true;
    int rc = plog_drain(log);
    stop_timer(log, &log->timer, &log->timer_armed);
    stop_timer(log, &log->retry, &log->retry_armed);
    if (rc == 0 && log->failed == 0 && !log->disk_full) {
        rc = close_cleanly(log);
        if (rc < 0)
            RL_ERROR("%s: clean close failed (%s); the next open will recover", log->dir,
                     rl_strerror(rc));
    } else if (log->disk_full) {
        RL_ERROR("%s: closed while the disk was full; appends not yet written are dropped "
                 "(they were never acknowledged) and the next open recovers the log",
                 log->dir);
    }
    fail_queued(log, log->failed ? log->failed : RL_E_DISK_FULL);
    plog_free(log);
}

int plog_delete(struct plog *log)
{
    char gone[PATH_MAX];
    struct io *io = log->st->io;
    log->closing = true;
    plog_drain(log);
    stop_timer(log, &log->timer, &log->timer_armed);
    stop_timer(log, &log->retry, &log->retry_armed);
    fail_queued(log, log->failed ? log->failed : RL_E_DISK_FULL);
    plog_chunks_free_all(log);
    clean_del(&log->st->clean, plog_dir_hash(log->dir));
    /* Rename first, so the name is free for a new log at once and a late background unlink
     * can never hit it; the pid keeps names unique across restarts that left one behind. */
    int rc = -EEXIST;
    for (int tries = 0; tries < 16 && rc != 0; tries++) {
        int n = snprintf(gone, sizeof(gone), "%s.%d.%llu.deleted", log->dir, (int)getpid(),
                         (unsigned long long)++log->st->delete_seq);
        if (n >= (int)sizeof(gone))
            break;
        rc = io_path_rename(io, log->dir, gone);
        if (rc != 0 && rc != -EEXIST && rc != -ENOTEMPTY)
            break;
    }
    if (rc == 0) {
        rc = bio_remove(log->st->bio, gone, 1);
    } else {
        /* Cannot rename: remove in place, now, so nothing is left to race a new log. */
        RL_WARN("%s: cannot rename for deletion (%s); removing in place", log->dir,
                rl_strerror(rc));
        rc = bio_remove(log->st->bio, log->dir, 1);
        bio_drain(log->st->bio);
    }
    plog_free(log);
    return rc;
}

/* --- positions -------------------------------------------------------------------------- */

uint64_t plog_start_offset(const struct plog *log)
{
    return log->start_offset;
}

uint64_t plog_end_offset(const struct plog *log)
{
    return log->next_offset;
}

uint64_t plog_size_bytes(const struct plog *log)
{
    return log->size_bytes;
}

uint32_t plog_segment_count(const struct plog *log)
{
    return log->nsegs;
}

uint64_t plog_unsynced_bytes(const struct plog *log)
{
    return (uint64_t)(log->appended_lsn - log->durable_lsn);
}

bool plog_disk_full(const struct plog *log)
{
    return log->disk_full;
}

uint32_t plog_damaged_ranges(const struct plog *log)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < log->nsegs; i++) {
        n += log->segs[i]->n_holes;
        if (i + 1 < log->nsegs && log->segs[i]->next_offset < log->segs[i + 1]->base_offset)
            n++;
    }
    return n;
}
