/*
 * plog: the partition log's life cycle (contract in plog.h, internals in plog_int.h): the
 * storage context shared by a shard's logs, configuration, opening with recovery, closing with
 * the clean-shutdown marker, and deletion. Append path in plog_write.c, reads and maintenance
 * in plog_read.c.
 *
 * Recovery (plog_open). Without the clean-shutdown marker, the active (last) segment is scanned
 * whole, every batch's length, checksum and offsets verified, its indexes rebuilt, and the file
 * cut at the first bad byte; older segments were finished (fsynced, trimmed, indexed) when they
 * were rolled, so only their tail after the last index entry is verified. A bad batch in an
 * older segment cuts that segment and drops every later one: a log has no holes. Zero bytes
 * after the last good batch are unwritten preallocation or block padding, not damage: they are
 * trimmed without a report. With the marker, indexes are trusted (still checked for
 * consistency) and only the headers after the last index entry are read, to find the end.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/checkpoint.h"
#include "storage/plog_debug.h"
#include "storage/plog_int.h"

#define CLEAN_MARKER "clean-shutdown"
#define LOG_START_CHECKPOINT "log-start"
#define PLOG_MAX_SEGMENTS_LISTED (1u << 20) /* more segment files than this is not a log */

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

static int config_check(const struct plog_config *cfg)
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
    int rc = config_check(cfg);
    if (rc < 0)
        return rc;
    log->cfg = *cfg;
    plog_pump(log);
    return 0;
}

/* --- storage context -------------------------------------------------------------------- */

int storage_create(struct io *io, unsigned max_open_files, struct storage **out)
{
    struct storage *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    st->io = io;
    st->direct = true;
    fcache_init(&st->fc, max_open_files);
    st->scan_buf = malloc(PLOG_SCAN_BUF_BYTES);
    int rc = st->scan_buf == NULL ? -ENOMEM : bio_create(&st->bio);
    if (rc < 0) {
        free(st->scan_buf);
        free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void storage_destroy(struct storage *st)
{
    if (st == NULL)
        return;
    while (st->logs != NULL)
        plog_close(st->logs);
    bio_destroy(st->bio);
    for (unsigned i = 0; i < st->n_slabs; i++) {
        free(st->slabs[i].mem);
        free(st->slabs[i].chunks);
    }
    while (st->free_rings != NULL) {
        struct wop_ring *r = st->free_rings;
        st->free_rings = r->next;
        free(r);
    }
    free(st->scan_buf);
    free(st);
}

void storage_debug_sync_background(struct storage *st)
{
    bio_drain(st->bio);
}

unsigned storage_debug_open_files(const struct storage *st)
{
    return st->fc.open;
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

/* Renames a segment's files out of the way (synchronously, so the names are free at once) and
 * leaves the unlinking to the background thread. */
void plog_segment_remove_files(struct plog *log, struct segment *seg)
{
    static const char *const exts[] = {".log", ".index", ".timeindex"};
    char path[PATH_MAX], gone[PATH_MAX];
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        if (segment_path(seg, exts[i], path, sizeof(path)) < 0 ||
            snprintf(gone, sizeof(gone), "%s.%llu.deleted", path,
                     (unsigned long long)++log->st->delete_seq) >= (int)sizeof(gone))
            continue;
        if (rename(path, gone) == 0)
            bio_remove(log->st->bio, gone, 0);
        else if (errno != ENOENT)
            RL_WARN("%s: cannot remove: %s", path, strerror(errno));
    }
}

static void segment_close_fds(struct plog *log, struct segment *seg)
{
    fcache_close(&log->st->fc, &seg->rd);
    fcache_close(&log->st->fc, &seg->wr);
    fcache_close(&log->st->fc, &seg->drd);
}

/* Removes a segment that the caller already took out of log->segs. */
void plog_segment_drop(struct plog *log, struct segment *seg)
{
    plog_hdr_window_drop(log->st);
    log->size_bytes -= seg->end_pos;
    plog_segment_remove_files(log, seg);
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
    if (len == 0)
        return 0;
    int fd = plog_seg_read_fd(log, seg);
    if (fd < 0)
        return fd;
    ssize_t n = pread(fd, log->tail_block, len, (off_t)blk);
    return n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
}

/* --- recovery --------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the base offsets of B.log files in dir (sorted) and removes leftovers of interrupted
 * work: temp files and files renamed for deletion. */
static int list_segments(const char *dir, uint64_t **out, uint32_t *n)
{
    DIR *d = opendir(dir);
    uint32_t cap = 0;
    struct dirent *e;
    char path[PATH_MAX];
    *out = NULL;
    *n = 0;
    if (d == NULL)
        return -errno;
    while ((e = readdir(d)) != NULL && *n < PLOG_MAX_SEGMENTS_LISTED) {
        size_t len = strlen(e->d_name);
        if ((len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0) ||
            (len > 8 && strcmp(e->d_name + len - 8, ".deleted") == 0)) {
            if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path))
                unlink(path);
            continue;
        }
        if (len != 24 || strcmp(e->d_name + 20, ".log") != 0)
            continue;
        bool digits = true;
        for (int i = 0; i < 20; i++)
            digits = digits && isdigit((unsigned char)e->d_name[i]);
        if (!digits)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *p = realloc(*out, cap * sizeof(**out));
            if (p == NULL) {
                closedir(d);
                return -ENOMEM;
            }
            *out = p;
        }
        (*out)[(*n)++] = strtoull(e->d_name, NULL, 10);
    }
    closedir(d);
    if (*n > 1)
        qsort(*out, *n, sizeof(**out), cmp_u64);
    return 0;
}

/* What recovery learned from one segment. */
struct seg_outcome {
    bool damaged; /* a bad batch (not zero padding) was cut off */
};

static void report_cut(struct plog_recovery_report *rep, const char *path,
                       const struct seg_scan *sc, uint64_t size)
{
    char what[160];
    snprintf(what, sizeof(what), "bad batch in recovery (%s); %llu bytes cut off",
             rl_strerror(sc->bad_code), (unsigned long long)(size - sc->valid_end));
    RL_CORRUPT(path, (int64_t)sc->valid_end, (int64_t)sc->next_offset, what);
    if (rep->truncated_at_position < 0) {
        rep->truncated_at_position = (int64_t)sc->valid_end;
        snprintf(rep->truncated_reason, sizeof(rep->truncated_reason), "%s",
                 rl_strerror(sc->bad_code));
    }
    rep->bytes_truncated += size - sc->valid_end;
}

/* Scans one segment as the recovery rules say, then cuts it at the first bad byte. */
static int recover_segment(struct plog *log, struct segment *seg, bool is_last, bool clean,
                           struct plog_recovery_report *rep, struct seg_outcome *oc)
{
    char path[PATH_MAX];
    struct stat sb;
    struct seg_scan sc;
    int rc = segment_path(seg, ".log", path, sizeof(path));
    int fd = rc < 0 ? rc : open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return rc < 0 ? rc : -errno;
    if (fstat(fd, &sb) < 0) {
        rc = -errno;
        goto out;
    }
    uint64_t size = (uint64_t)sb.st_size;
    int idx = segment_index_load(seg, size);
    bool full = idx < 0 || (is_last && !clean);
    if (idx < 0)
        rep->indexes_rebuilt++;
    if (!full) {
        uint64_t from = seg->last_index_pos;
        uint64_t min = seg->base_offset + (seg->n_oidx ? seg->oidx[seg->n_oidx - 1].rel : 0);
        rc = segment_scan(seg, fd, from, size, min, !clean, false, log->cfg.index_interval_bytes,
                          log->st->scan_buf, PLOG_SCAN_BUF_BYTES, &sc);
        if (rc < 0)
            goto out;
        if (sc.bad_code != 0 && sc.valid_end == from && from > 0) {
            /* The last index entry does not point at a good batch: the index is stale or
             * damaged (the log may be fine), so rebuild it from the whole file. */
            RL_WARN("%s: index inconsistent with the log; rebuilding", path);
            rep->indexes_rebuilt++;
            full = true;
        } else if (sc.max_ts > seg->max_ts) {
            seg->max_ts = sc.max_ts;
        }
    }
    if (full) {
        segment_index_clear(seg);
        rc = segment_scan(seg, fd, 0, size, seg->base_offset, !clean || idx < 0, true,
                          log->cfg.index_interval_bytes, log->st->scan_buf, PLOG_SCAN_BUF_BYTES,
                          &sc);
        if (rc < 0)
            goto out;
    }
    rep->bytes_scanned += sc.bytes_scanned;
    if (sc.bad_code != 0) {
        if (!sc.tail_zero) {
            report_cut(rep, path, &sc, size);
            oc->damaged = true;
        }
        segment_index_truncate(seg, sc.valid_end);
        if (sc.max_ts > seg->max_ts)
            seg->max_ts = sc.max_ts;
        if (ftruncate(fd, (off_t)sc.valid_end) < 0 || fdatasync(fd) < 0) {
            rc = -errno;
            goto out;
        }
    }
    seg->end_pos = seg->readable_pos = sc.valid_end;
    seg->next_offset = seg->readable_next = sc.next_offset;
    seg->falloc_end = sc.valid_end;
    rc = 0;
out:
    close(fd);
    return rc;
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

static int create_first_segment(struct plog *log, uint64_t base)
{
    /* plog_roll needs an active segment to seal; start from an empty placeholder. */
    char path[PATH_MAX];
    struct segment *seg = segment_new(log->dir, base);
    if (seg == NULL)
        return -ENOMEM;
    int rc = segment_path(seg, ".log", path, sizeof(path));
    int fd = rc < 0 ? rc : open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        segment_free(seg);
        return rc < 0 ? rc : -errno;
    }
    close(fd);
    rc = checkpoint_sync_dir(log->dir);
    if (rc == 0)
        rc = plog_segs_push(log, seg);
    if (rc < 0) {
        segment_free(seg);
        return rc;
    }
    return 0;
}

/* Drops segments [from, nsegs): they follow damage or do not continue the log. */
static void drop_segments_from(struct plog *log, uint32_t from, struct plog_recovery_report *rep)
{
    while (log->nsegs > from) {
        struct segment *s = log->segs[--log->nsegs];
        char path[PATH_MAX];
        segment_path(s, ".log", path, sizeof(path));
        RL_CORRUPT(path, 0, (int64_t)s->base_offset,
                   "segment follows damaged or missing data; dropped");
        rep->bytes_truncated += s->end_pos;
        plog_segment_drop(log, s);
    }
}

static int recover_all(struct plog *log, bool clean, struct plog_recovery_report *rep)
{
    uint64_t *bases;
    uint32_t n;
    int rc = list_segments(log->dir, &bases, &n);
    if (rc < 0)
        return rc;
    rep->segments = n;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        struct segment *seg = segment_new(log->dir, bases[i]);
        struct seg_outcome oc = {false};
        rc = seg == NULL ? -ENOMEM : plog_segs_push(log, seg);
        if (rc < 0) {
            segment_free(seg);
            break;
        }
        rc = recover_segment(log, seg, i == n - 1, clean, rep, &oc);
        if (rc < 0)
            break;
        log->size_bytes += seg->end_pos;
        seg->sealed = seg->finalized = true;
        seg->lsn_base = INT64_MIN;
        bool gap = i > 0 && log->segs[i - 1]->next_offset != seg->base_offset;
        if (gap) {
            drop_segments_from(log, log->nsegs - 1, rep);
            break;
        }
        if (oc.damaged && i + 1 < n) {
            /* Later segments would leave a hole after the cut; they go too. */
            for (uint32_t j = i + 1; j < n; j++) {
                struct segment *s = segment_new(log->dir, bases[j]);
                if (s == NULL)
                    continue;
                char path[PATH_MAX];
                struct stat sb;
                segment_path(s, ".log", path, sizeof(path));
                if (stat(path, &sb) == 0)
                    rep->bytes_truncated += (uint64_t)sb.st_size;
                plog_segment_remove_files(log, s);
                segment_free(s);
            }
            break;
        }
    }
    free(bases);
    return rc;
}

/* Reads the clean-shutdown marker: 0 with *leo filled when present and intact. */
static int read_clean_marker(const char *dir, uint64_t *leo)
{
    uint8_t buf[16];
    int n = checkpoint_read(dir, CLEAN_MARKER, buf, sizeof(buf));
    if (n != (int)sizeof(buf))
        return n < 0 ? n : RL_E_CORRUPT;
    memcpy(leo, buf, 8);
    return 0;
}

static int plog_recover(struct plog *log, struct plog_recovery_report *rep)
{
    uint64_t marker_leo = 0, start = 0;
    bool clean = read_clean_marker(log->dir, &marker_leo) == 0;
    int rc = recover_all(log, clean, rep);
    if (rc == 0 && clean && log->nsegs > 0 &&
        log->segs[log->nsegs - 1]->next_offset != marker_leo) {
        /* The marker disagrees with the files: trust neither and recover fully. */
        RL_WARN("%s: clean-shutdown marker does not match the log; scanning it", log->dir);
        plog_free_segments(log);
        log->size_bytes = 0;
        memset(rep, 0, sizeof(*rep));
        rep->truncated_at_position = -1;
        clean = false;
        rc = recover_all(log, clean, rep);
    }
    if (rc < 0)
        return rc;
    rep->clean = clean;
    uint8_t buf[8];
    if (checkpoint_read(log->dir, LOG_START_CHECKPOINT, buf, sizeof(buf)) == 8)
        memcpy(&start, buf, 8);
    if (log->nsegs == 0) {
        rc = create_first_segment(log, start);
        if (rc < 0)
            return rc;
    }
    struct segment *act = log->segs[log->nsegs - 1];
    act->sealed = act->finalized = false;
    act->lsn_base = 0;
    act->created_ms = io_wall_ms(log->st->io);
    log->next_offset = act->next_offset;
    log->start_offset = log->segs[0]->base_offset;
    if (start > log->start_offset && start <= log->next_offset)
        log->start_offset = start;
    log->appended_lsn = log->issued_lsn = log->written_lsn = log->durable_lsn =
        (int64_t)act->end_pos;
    rc = plog_load_tail_block(log);
    /* From here a crash must not look clean: the marker goes before the first append. */
    if (rc == 0 && clean)
        rc = checkpoint_remove(log->dir, CLEAN_MARKER);
    return rc;
}

static int mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) < 0)
        return errno == EEXIST ? 0 : -errno;
    /* A new log's directory entry must be durable before anything in it is acknowledged. */
    char *slash = strrchr(tmp, '/');
    if (slash == NULL)
        return checkpoint_sync_dir(".");
    if (slash == tmp)
        return checkpoint_sync_dir("/");
    *slash = '\0';
    return checkpoint_sync_dir(tmp);
}

static void plog_free(struct plog *log)
{
    plog_chunks_free_all(log);
    plog_free_segments(log);
    if (log->prev_log != NULL)
        log->prev_log->next_log = log->next_log;
    else if (log->st->logs == log)
        log->st->logs = log->next_log;
    if (log->next_log != NULL)
        log->next_log->prev_log = log->prev_log;
    free(log->segs);
    free(log->tail_block);
    free(log->dir);
    free(log);
}

int plog_open(struct storage *st, const char *dir, const struct plog_config *cfg,
              struct plog_recovery_report *report, struct plog **out)
{
    struct plog_recovery_report local;
    struct plog_recovery_report *rep = report != NULL ? report : &local;
    memset(rep, 0, sizeof(*rep));
    rep->truncated_at_position = -1;
    int rc = config_check(cfg);
    if (rc < 0)
        return rc;
    rc = mkdir_p(dir);
    if (rc < 0)
        return rc;
    struct plog *log = calloc(1, sizeof(*log));
    if (log == NULL)
        return -ENOMEM;
    log->st = st;
    log->cfg = *cfg;
    log->dir = strdup(dir);
    if (log->dir == NULL || posix_memalign((void **)&log->tail_block, PLOG_ALIGN, PLOG_ALIGN)) {
        free(log->dir);
        free(log);
        return -ENOMEM;
    }
    plog_hdr_window_drop(st); /* recovery reads through scan_buf */
    rc = plog_recover(log, rep);
    if (rc < 0) {
        plog_free(log);
        return rc;
    }
    log->next_log = st->logs;
    if (st->logs != NULL)
        st->logs->prev_log = log;
    st->logs = log;
    *out = log;
    return 0;
}

/* --- close and delete ------------------------------------------------------------------- */

static void cancel_done(struct io_op *op, int result)
{
    (void)result;
    *(bool *)op->ctx = true;
}

/* Stops the interval timer and waits (bounded) until both it and the cancel completed. */
static void stop_timer(struct plog *log)
{
    if (!log->timer_armed)
        return;
    bool cancelled = false;
    struct io_op cancel = {.done = cancel_done, .ctx = &cancelled};
    io_prep_cancel(log->st->io, &cancel, &log->timer, 0);
    uint64_t deadline = io_now_ns(log->st->io) + PLOG_DRAIN_TIMEOUT_NS;
    while ((log->timer_armed || !cancelled) && io_now_ns(log->st->io) < deadline)
        io_run(log->st->io, 100 * 1000000ull);
    RL_ASSERTF(!log->timer_armed && cancelled, "%s: flush timer did not stop", log->dir);
}

/* Makes the whole log durable and trimmed, then writes the marker that lets the next open skip
 * the scan. */
static int close_cleanly(struct plog *log)
{
    for (uint32_t i = 0; i + 1 < log->nsegs; i++)
        if (!log->segs[i]->finalized) {
            int rc = plog_finalize_segment(log, log->segs[i], true);
            if (rc < 0)
                return rc;
        }
    struct segment *act = log->segs[log->nsegs - 1];
    int rc = plog_finalize_segment(log, act, true);
    if (rc < 0)
        return rc;
    uint64_t marker[2] = {log->next_offset, log->start_offset};
    return checkpoint_write(log->dir, CLEAN_MARKER, marker, sizeof(marker));
}

void plog_close(struct plog *log)
{
    log->closing = true;
    int rc = plog_drain(log);
    stop_timer(log);
    if (rc == 0 && log->failed == 0) {
        rc = close_cleanly(log);
        if (rc < 0)
            RL_ERROR("%s: clean close failed (%s); the next open will recover", log->dir,
                     rl_strerror(rc));
    }
    plog_free(log);
}

int plog_delete(struct plog *log)
{
    char gone[PATH_MAX];
    log->closing = true;
    plog_drain(log);
    stop_timer(log);
    plog_chunks_free_all(log);
    /* Rename first, so the name is free for a new log at once and a late background unlink
     * can never hit it; the pid keeps names unique across restarts that left one behind. */
    int rc = -EEXIST;
    for (int tries = 0; tries < 16 && rc != 0; tries++) {
        int n = snprintf(gone, sizeof(gone), "%s.%d.%llu.deleted", log->dir, (int)getpid(),
                         (unsigned long long)++log->st->delete_seq);
        if (n >= (int)sizeof(gone))
            break;
        rc = rename(log->dir, gone) == 0 ? 0 : -errno;
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
