/*
 * plog_recover: opening a partition log (contract in plog.h "Damaged ranges", internals in
 * plog_int.h). Where it sits: plog_open (the caller's thread) and plog_open_async (the storage's
 * background thread) -> plog_recover -> segment scans -> io.
 *
 * Rules, per segment, oldest first:
 *  - The active (last) segment is always verified batch by batch, checksums included. After an
 *    unclean stop a bad batch there is the torn end of the log: the file is cut at it (and the
 *    cut reported unless the rest is zeros: unwritten preallocation or block padding). After a
 *    clean stop (the storage's record matches) its batches end where the record says, and a
 *    bad batch before that is corruption.
 *  - A sealed segment was synced, trimmed and indexed when it was finished: with the record,
 *    its index is trusted and only the headers after the last index entry are read; without it,
 *    the batches after the last index entry are verified too. A missing or inconsistent index
 *    is rebuilt by a full verified scan. Zeros at its end are an unfinished trim: cut silently.
 *  - Corruption (a bad batch where good data must be) becomes a damaged range: reported through
 *    RL_CORRUPT with file, position and offsets; the scan searches forward for the next valid
 *    batch and goes on from there; the range is written to the segment's `.damaged` file.
 *  - Offsets missing between two segments are reported as a damaged range of the log; a segment
 *    overlapping the one before it is stale (an interrupted truncation) and is removed.
 *
 * Everything here touches only the log being opened, its files and the scan buffer it is
 * given, so it may run on the background thread.
 */
#include <ctype.h>
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
#include "storage/checkpoint.h"
#include "storage/plog_int.h"

#define PLOG_MAX_SEGMENTS_LISTED (1u << 20) /* more segment files than this is not a log */
#define HOLE_END_OPEN UINT64_MAX             /* a tail range whose end offset comes later */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct list_ctx {
    struct io *io;
    const char *dir;
    uint64_t *bases;
    uint32_t n, cap;
    int rc;
};

static int list_one(void *arg, const char *name)
{
    struct list_ctx *c = arg;
    size_t len = strlen(name);
    char path[PATH_MAX];
    if ((len > 4 && strcmp(name + len - 4, ".tmp") == 0) ||
        (len > 8 && strcmp(name + len - 8, ".deleted") == 0)) {
        /* Leftovers of interrupted work: temp files and files renamed for deletion. */
        if (snprintf(path, sizeof(path), "%s/%s", c->dir, name) < (int)sizeof(path))
            io_path_unlink(c->io, path);
        return 0;
    }
    if (len != 24 || strcmp(name + 20, ".log") != 0)
        return 0;
    for (int i = 0; i < 20; i++)
        if (!isdigit((unsigned char)name[i]))
            return 0;
    if (c->n >= PLOG_MAX_SEGMENTS_LISTED)
        return 1;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        uint64_t *p = realloc(c->bases, c->cap * sizeof(*p));
        if (p == NULL) {
            c->rc = -ENOMEM;
            return 1;
        }
        c->bases = p;
    }
    c->bases[c->n++] = strtoull(name, NULL, 10);
    return 0;
}

/* Lists the base offsets of B.log files in dir (sorted); removes leftovers on the way. */
static int list_segments(struct io *io, const char *dir, uint64_t **out, uint32_t *n)
{
    struct list_ctx c = {.io = io, .dir = dir};
    int rc = io_dir_list(io, dir, list_one, &c);
    if (rc < 0 || c.rc < 0) {
        free(c.bases);
        return rc < 0 ? rc : c.rc;
    }
    if (c.n > 1)
        qsort(c.bases, c.n, sizeof(*c.bases), cmp_u64);
    *out = c.bases;
    *n = c.n;
    return 0;
}

static void report_cut(struct plog_recovery_report *rep, const char *path,
                       const struct seg_scan *sc, uint64_t size)
{
    char what[160];
    snprintf(what, sizeof(what), "torn end of the log after an unclean stop (%s); %llu bytes "
             "cut off", rl_strerror(sc->bad_code), (unsigned long long)(size - sc->valid_end));
    RL_CORRUPT(path, (int64_t)sc->valid_end, (int64_t)sc->next_offset, what);
    if (rep->truncated_at_position < 0) {
        rep->truncated_at_position = (int64_t)sc->valid_end;
        snprintf(rep->truncated_reason, sizeof(rep->truncated_reason), "%s",
                 rl_strerror(sc->bad_code));
    }
    rep->bytes_truncated += size - sc->valid_end;
}

static void report_hole(const char *path, const struct seg_hole *h, int code)
{
    char what[256];
    char end[32];
    if (h->end_offset == HOLE_END_OPEN)
        snprintf(end, sizeof(end), "the segment's end");
    else
        snprintf(end, sizeof(end), "%llu", (unsigned long long)h->end_offset);
    snprintf(what, sizeof(what), "damaged range: bytes %llu..%llu hold no valid batch (%s); "
             "offsets %llu..%s are lost, the batches after them are kept",
             (unsigned long long)h->pos, (unsigned long long)h->end_pos, rl_strerror(code),
             (unsigned long long)h->offset, end);
    RL_CORRUPT(path, (int64_t)h->pos, (int64_t)h->offset, what);
}

/* What one segment's recovery needs and learns. */
struct seg_rec {
    struct io *io;
    struct plog *log;
    struct segment *seg;
    const char *path;
    int fd;
    uint64_t size;      /* file size */
    uint64_t data_end;  /* where batches (or damage) end: the record's end, or the file size */
    bool corruption;    /* a bad batch here is damage, not a torn tail */
    bool new_holes;     /* ranges found now: write .damaged */
    uint8_t *buf;
    struct plog_recovery_report *rep;
};

/* Scans on from a bad batch: records damaged ranges and resumes after each, until the data
 * ends. sc holds the scan that stopped at the bad batch and is updated. */
static int contain_damage(struct seg_rec *r, struct seg_scan *sc)
{
    struct segment *seg = r->seg;
    while (sc->bad_code != 0 && sc->valid_end < r->data_end) {
        uint64_t q;
        struct batch_header h;
        int found = segment_resync(r->io, seg, r->fd, sc->valid_end + 1, r->data_end,
                                   sc->next_offset, r->buf, PLOG_SCAN_BUF_BYTES, &q, &h);
        if (found < 0)
            return found;
        struct seg_hole hole = {sc->valid_end, found ? q : r->data_end, sc->next_offset,
                                found ? h.base_offset : HOLE_END_OPEN};
        report_hole(r->path, &hole, sc->bad_code);
        int rc = segment_hole_add(seg, &hole);
        if (rc < 0)
            return rc;
        r->new_holes = true;
        if (!found) {
            sc->valid_end = r->data_end;
            sc->bad_code = 0;
            break;
        }
        /* Reads after the range start from an index entry at its end. */
        rc = segment_index_insert(seg, sc->valid_end, q, h.base_offset);
        if (rc < 0)
            return rc;
        struct seg_scan more;
        rc = segment_scan(r->io, seg, r->fd, q, r->data_end, h.base_offset, true, true,
                          r->log->cfg.index_interval_bytes, r->buf, PLOG_SCAN_BUF_BYTES, &more);
        if (rc < 0)
            return rc;
        more.bytes_scanned += sc->bytes_scanned;
        if (sc->max_ts > more.max_ts)
            more.max_ts = sc->max_ts;
        *sc = more;
    }
    return 0;
}

/* The scan of a segment as the rules say; fills sc. The active segment is always scanned
 * whole and verified; a sealed one from its last index entry, verified unless trusted. */
static int scan_segment(struct seg_rec *r, bool is_last, bool trust_index, struct seg_scan *sc)
{
    struct segment *seg = r->seg;
    uint32_t interval = r->log->cfg.index_interval_bytes;
    int idx = segment_index_load(r->io, seg, r->data_end);
    bool full = idx < 0 || is_last;
    if (idx < 0)
        r->rep->indexes_rebuilt++;
    if (!full) {
        uint64_t from = seg->last_index_pos;
        uint64_t min = seg->base_offset + (seg->n_oidx ? seg->oidx[seg->n_oidx - 1].rel : 0);
        int rc = segment_scan(r->io, seg, r->fd, from, r->data_end, min, !trust_index, true,
                              interval, r->buf, PLOG_SCAN_BUF_BYTES, sc);
        if (rc < 0)
            return rc;
        if (sc->bad_code != 0 && sc->valid_end == from && from > 0) {
            /* The last index entry does not point at a good batch: the index is stale or
             * damaged (the log may be fine), so rebuild it from the whole file. */
            RL_WARN("%s: index inconsistent with the log; rebuilding", r->path);
            r->rep->indexes_rebuilt++;
            full = true;
        } else if (sc->max_ts > seg->max_ts) {
            seg->max_ts = sc->max_ts;
        }
    }
    if (full) {
        segment_index_clear(seg);
        int rc = segment_scan(r->io, seg, r->fd, 0, r->data_end, seg->base_offset, true, true,
                              interval, r->buf, PLOG_SCAN_BUF_BYTES, sc);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Recovers one segment: scan, contain corruption or cut a torn tail, set its positions. */
static int recover_segment(struct plog *log, struct segment *seg, bool is_last,
                           const struct clean_entry *clean, uint8_t *buf,
                           struct plog_recovery_report *rep, bool *new_holes)
{
    struct io *io = log->st->io;
    char path[PATH_MAX];
    struct seg_scan sc;
    int rc = segment_path(seg, ".log", path, sizeof(path));
    int fd = rc < 0 ? rc : io_file_open(io, path, O_RDWR, 0);
    if (fd < 0)
        return fd;
    struct seg_rec r = {.io = io, .log = log, .seg = seg, .path = path, .fd = fd, .buf = buf,
                        .rep = rep, .corruption = !is_last || clean != NULL};
    rc = io_file_size(io, fd, &r.size);
    if (rc < 0)
        goto out;
    r.data_end = is_last && clean != NULL ? clean->active_end : r.size;
    if (segment_holes_load(io, seg, r.data_end) < 0)
        RL_WARN("%s: damaged-range record unreadable; the scan finds the ranges again", path);
    rc = scan_segment(&r, is_last, clean != NULL && !is_last, &sc);
    if (rc < 0)
        goto out;
    rep->bytes_scanned += sc.bytes_scanned;
    if (sc.bad_code != 0 && r.corruption && !(sc.tail_zero && !is_last)) {
        rc = contain_damage(&r, &sc);
        if (rc < 0)
            goto out;
    }
    if (sc.bad_code != 0) {
        /* A torn tail (unclean stop) or an unfinished trim (zeros): cut the file there. */
        if (!sc.tail_zero)
            report_cut(rep, path, &sc, r.size);
        segment_index_truncate(seg, sc.valid_end);
        rc = io_file_truncate(io, fd, sc.valid_end);
        if (rc == 0)
            rc = io_file_fdatasync(io, fd);
        if (rc < 0)
            goto out;
        r.size = sc.valid_end;
    }
    if (sc.max_ts > seg->max_ts)
        seg->max_ts = sc.max_ts;
    seg->end_pos = seg->readable_pos = sc.valid_end;
    seg->next_offset = seg->readable_next = sc.next_offset;
    seg->falloc_end = is_last ? r.size : sc.valid_end;
    *new_holes = r.new_holes;
    rc = 0;
out:
    io_file_close(io, fd);
    return rc;
}

/* Removes segments [from, nsegs): they overlap what comes before them (stale files of an
 * interrupted truncation), so they cannot be part of the log. */
static void drop_segments_from(struct plog *log, uint32_t from, struct plog_recovery_report *rep)
{
    while (log->nsegs > from) {
        struct segment *s = log->segs[--log->nsegs];
        char path[PATH_MAX];
        segment_path(s, ".log", path, sizeof(path));
        RL_CORRUPT(path, 0, (int64_t)s->base_offset,
                   "segment overlaps the one before it (a stale file of an interrupted "
                   "truncation); removed");
        rep->bytes_truncated += s->end_pos;
        plog_segment_remove_files(log->st->io, s);
        segment_free(s);
    }
}

/* Closes ranges left open at a segment's end (their end offset is where the next segment
 * starts), reports offsets missing between segments, and writes new .damaged files. */
static int settle_ranges(struct plog *log, const bool *new_holes, const struct clean_entry *clean,
                         struct plog_recovery_report *rep)
{
    for (uint32_t i = 0; i < log->nsegs; i++) {
        struct segment *seg = log->segs[i];
        uint64_t next_base = i + 1 < log->nsegs ? log->segs[i + 1]->base_offset : UINT64_MAX;
        for (uint32_t k = 0; k < seg->n_holes; k++) {
            struct seg_hole *h = &seg->holes[k];
            if (h->end_offset == HOLE_END_OPEN)
                h->end_offset = next_base != UINT64_MAX ? next_base
                                : clean != NULL          ? clean->next_offset
                                                         : h->offset;
            rep->damaged_bytes += h->end_pos - h->pos;
            if (rep->damaged_ranges++ == 0) {
                rep->damaged_offset = h->offset;
                rep->damaged_end_offset = h->end_offset;
            }
        }
        if (seg->n_holes > 0 && seg->holes[seg->n_holes - 1].end_pos == seg->end_pos)
            seg->next_offset = seg->readable_next = seg->holes[seg->n_holes - 1].end_offset;
        if (new_holes[i]) {
            int rc = segment_holes_save(log->st->io, seg);
            if (rc < 0)
                return rc;
        }
        if (next_base != UINT64_MAX && seg->next_offset < next_base) {
            char path[PATH_MAX];
            char what[160];
            segment_path(log->segs[i + 1], ".log", path, sizeof(path));
            snprintf(what, sizeof(what), "offsets %llu..%llu are missing before this segment "
                     "(a lost or damaged segment file); later segments are kept",
                     (unsigned long long)seg->next_offset, (unsigned long long)next_base);
            RL_CORRUPT(path, 0, (int64_t)seg->next_offset, what);
            if (rep->damaged_ranges++ == 0) {
                rep->damaged_offset = seg->next_offset;
                rep->damaged_end_offset = next_base;
            }
        }
    }
    return 0;
}

/* Whether segment `base` starts with a whole, valid batch of that base offset. */
static bool segment_has_batch(struct plog *log, uint64_t base, uint8_t *buf)
{
    struct io *io = log->st->io;
    struct segment *seg = segment_new(log->dir, base);
    char path[PATH_MAX];
    struct batch_header h;
    bool ok = false;
    int fd = seg != NULL && segment_path(seg, ".log", path, sizeof(path)) == 0
                 ? io_file_open(io, path, O_RDONLY, 0)
                 : -ENOMEM;
    ssize_t n = fd >= 0 ? io_file_pread(io, fd, buf, PLOG_SCAN_BUF_BYTES, 0) : -1;
    if (n >= (ssize_t)RL_BATCH_HEADER_SIZE &&
        batch_header_decode(buf, RL_BATCH_HEADER_SIZE, &h) == 0 && h.batch_len <= (size_t)n)
        ok = h.base_offset == base && batch_validate(buf, h.batch_len, &h) == 0;
    if (fd >= 0)
        io_file_close(io, fd);
    segment_free(seg);
    return ok;
}

/* After an unclean stop, trailing segments holding no batch are files a roll created before
 * the power went: nothing in them was ever acknowledged, and the segment before them may have
 * lost its unsynced end. They go, so the last segment with data is recovered as the torn end
 * of the log rather than as damage. */
static void drop_empty_tail(struct plog *log, const uint64_t *bases, uint32_t *n, uint8_t *buf)
{
    while (*n > 1 && !segment_has_batch(log, bases[*n - 1], buf)) {
        struct segment *s = segment_new(log->dir, bases[*n - 1]);
        if (s == NULL)
            return;
        plog_segment_remove_files(log->st->io, s);
        segment_free(s);
        (*n)--;
    }
}

static int recover_all(struct plog *log, const struct clean_entry *clean, uint8_t *buf,
                       struct plog_recovery_report *rep)
{
    uint64_t *bases = NULL;
    uint32_t n = 0;
    int rc = list_segments(log->st->io, log->dir, &bases, &n);
    if (rc < 0)
        return rc;
    if (clean == NULL)
        drop_empty_tail(log, bases, &n, buf);
    rep->segments = n;
    bool *new_holes = calloc(n + 1, sizeof(*new_holes));
    if (new_holes == NULL) {
        free(bases);
        return -ENOMEM;
    }
    if (clean != NULL && (n == 0 || bases[n - 1] != clean->active_base))
        clean = NULL; /* the record describes other files */
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        struct segment *seg = segment_new(log->dir, bases[i]);
        rc = seg == NULL ? -ENOMEM : plog_segs_push(log, seg);
        if (rc < 0) {
            segment_free(seg);
            break;
        }
        rc = recover_segment(log, seg, i == n - 1, clean, buf, rep, &new_holes[log->nsegs - 1]);
        if (rc < 0)
            break;
        seg->sealed = seg->finalized = seg->ready = true;
        seg->lsn_base = INT64_MIN;
        if (log->nsegs > 1) {
            struct segment *prev = log->segs[log->nsegs - 2];
            bool open_tail = prev->n_holes > 0 &&
                             prev->holes[prev->n_holes - 1].end_offset == HOLE_END_OPEN;
            if (!open_tail && prev->next_offset > seg->base_offset) {
                drop_segments_from(log, log->nsegs - 1, rep);
                for (uint32_t j = i + 1; j < n; j++) {
                    struct segment *s = segment_new(log->dir, bases[j]);
                    if (s != NULL)
                        plog_segment_remove_files(log->st->io, s);
                    segment_free(s);
                }
                break;
            }
        }
        log->size_bytes += seg->end_pos;
    }
    if (rc == 0)
        rc = settle_ranges(log, new_holes, clean, rep);
    free(new_holes);
    free(bases);
    return rc;
}

static void free_segments_raw(struct plog *log)
{
    for (uint32_t i = 0; i < log->nsegs; i++)
        segment_free(log->segs[i]);
    log->nsegs = 0;
    log->size_bytes = 0;
}

/* The per-log marker of the first version (16 bytes: LEO, start) is read as a clean entry
 * (its active segment was trimmed, so the file size is where the batches end) and removed. */
static int legacy_marker(struct plog *log, struct clean_entry *e)
{
    struct io *io = log->st->io;
    uint8_t buf[16];
    int n = checkpoint_load(io, log->dir, PLOG_LEGACY_CLEAN_MARKER, buf, sizeof(buf));
    if (n == -ENOENT)
        return 0;
    int rc = checkpoint_delete(io, log->dir, PLOG_LEGACY_CLEAN_MARKER, 1);
    if (n != (int)sizeof(buf) || rc < 0)
        return rc;
    uint64_t *bases = NULL;
    uint32_t count = 0;
    char path[PATH_MAX];
    uint64_t size = 0;
    if (list_segments(io, log->dir, &bases, &count) < 0 || count == 0) {
        free(bases);
        return 0;
    }
    if (snprintf(path, sizeof(path), "%s/%020llu.log", log->dir,
                 (unsigned long long)bases[count - 1]) < (int)sizeof(path) &&
        io_path_size(io, path, &size) == 0) {
        *e = (struct clean_entry){plog_dir_hash(log->dir), rl_load_le64(buf),
                                  rl_load_le64(buf + 8), bases[count - 1], size, 0};
        rc = 1;
    }
    free(bases);
    return rc;
}

static int mkdir_p(struct io *io, const char *dir)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = io_dir_make(io, tmp, 0755);
        if (rc < 0 && rc != -EEXIST)
            return rc;
        *p = '/';
    }
    int rc = io_dir_make(io, tmp, 0755);
    if (rc < 0)
        return rc == -EEXIST ? 0 : rc;
    /* A new log's directory entry must be durable before anything in it is acknowledged. */
    char *slash = strrchr(tmp, '/');
    if (slash == NULL)
        return io_dir_sync(io, ".");
    if (slash == tmp)
        return io_dir_sync(io, "/");
    *slash = '\0';
    return io_dir_sync(io, tmp);
}

static int create_first_segment(struct plog *log, uint64_t base)
{
    struct io *io = log->st->io;
    char path[PATH_MAX];
    struct segment *seg = segment_new(log->dir, base);
    if (seg == NULL)
        return -ENOMEM;
    int rc = segment_path(seg, ".log", path, sizeof(path));
    int fd = rc < 0 ? rc : io_file_open(io, path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0) {
        segment_free(seg);
        return fd;
    }
    io_file_close(io, fd);
    rc = io_dir_sync(io, log->dir);
    if (rc == 0)
        rc = plog_segs_push(log, seg);
    if (rc < 0) {
        segment_free(seg);
        return rc;
    }
    seg->ready = true;
    return 0;
}

static void report_reset(struct plog_recovery_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    rep->truncated_at_position = -1;
}

/* The clean entry applies only when the recovered log ends where it says. */
static bool clean_matches(const struct plog *log, const struct clean_entry *clean)
{
    const struct segment *act = log->nsegs ? log->segs[log->nsegs - 1] : NULL;
    return act != NULL && act->base_offset == clean->active_base &&
           act->end_pos == clean->active_end && act->next_offset == clean->next_offset;
}

/* Makes the last segment the active one and sets the cursors from it. */
static int activate(struct plog *log, uint64_t start)
{
    if (log->nsegs == 0) {
        int rc = create_first_segment(log, start);
        if (rc < 0)
            return rc;
    }
    struct segment *act = log->segs[log->nsegs - 1];
    act->sealed = act->finalized = false;
    act->ready = true;
    act->lsn_base = 0;
    act->created_ms = io_wall_ms(log->st->io);
    log->next_offset = act->next_offset;
    log->start_offset = log->segs[0]->base_offset;
    if (start > log->start_offset && start <= log->next_offset)
        log->start_offset = start;
    log->appended_lsn = log->issued_lsn = log->written_lsn = log->durable_lsn =
        (int64_t)act->end_pos;
    return plog_load_tail_block(log);
}

/* --- restarting the log at an offset (plog_reset_to) -------------------------------------- */

/* Unlinks one segment's files, its .log last: a segment whose .log survives a cut may still
 * have its other files, and one whose .log is gone has none left to be taken up by a later
 * segment of the same name. */
static int reset_remove_segment(struct io *io, const char *dir, uint64_t base)
{
    static const char *const exts[] = {".damaged", ".timeindex", ".index", ".log"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        if (snprintf(path, sizeof(path), "%s/%020llu%s", dir, (unsigned long long)base,
                     exts[i]) >= (int)sizeof(path))
            return -ENAMETOOLONG;
        int rc = io_path_unlink(io, path);
        if (rc < 0 && rc != -ENOENT)
            return rc;
    }
    return 0;
}

/* Removes the files of segments bases[0..n): every one but the lowest first, a directory sync,
 * then the lowest and another sync. The lowest lies below the reset offset, so while it is on
 * disk recovery knows the reset is unfinished and does it again. */
static int reset_remove_all(struct io *io, const char *dir, const uint64_t *bases, uint32_t n)
{
    int rc = 0;
    for (uint32_t i = n; i > 1 && rc == 0; i--)
        rc = reset_remove_segment(io, dir, bases[i - 1]);
    if (rc == 0 && n > 1)
        rc = io_dir_sync(io, dir);
    if (rc == 0 && n > 0)
        rc = reset_remove_segment(io, dir, bases[0]);
    if (rc == 0 && n > 0)
        rc = io_dir_sync(io, dir);
    return rc;
}

/* The reset record: u64 offset, then the caller's meta. Returns the meta length with *offset
 * set, -ENOENT when the log was never reset, or another negative code. */
static int reset_record_load(struct io *io, const char *dir, uint64_t *offset, uint8_t *meta,
                             size_t cap)
{
    uint8_t buf[8 + PLOG_RESET_META_MAX];
    int n = checkpoint_load(io, dir, PLOG_RESET_CHECKPOINT, buf, sizeof(buf));
    if (n < 0)
        return n;
    if (n < 8)
        return RL_CORRUPT(dir, 0, n, "log-reset record is shorter than its offset");
    *offset = rl_load_le64(buf);
    size_t len = (size_t)n - 8;
    if (meta != NULL && len > cap)
        return -ENOBUFS;
    if (meta != NULL)
        memcpy(meta, buf + 8, len);
    return (int)len;
}

/* Finishes a reset that a crash interrupted: while a segment below the reset offset is left,
 * the reset record is newer than the files, so they all go (none of them belongs to the new
 * log: it takes appends only once the old files are gone). */
static int reset_redo(struct plog *log, uint64_t offset)
{
    uint64_t *bases = NULL;
    uint32_t n = 0;
    int rc = list_segments(log->st->io, log->dir, &bases, &n);
    if (rc == 0 && n > 0 && bases[0] < offset) {
        RL_WARN("%s: finishing a restart of the log at offset %llu that a crash interrupted",
                log->dir, (unsigned long long)offset);
        rc = reset_remove_all(log->st->io, log->dir, bases, n);
    }
    free(bases);
    return rc;
}

int plog_reset_meta(struct plog *log, uint64_t *offset, void *meta, size_t cap)
{
    return reset_record_load(log->st->io, log->dir, offset, meta, cap);
}

int plog_reset_to(struct plog *log, uint64_t offset, const void *meta, uint32_t meta_len)
{
    struct io *io = log->st->io;
    if (log->closing)
        return RL_E_LOG_CLOSED;
    if (log->failed)
        return RL_E_LOG_FAILED;
    if (log->trunc_busy)
        return RL_E_FULL;
    if (meta_len > PLOG_RESET_META_MAX || (meta_len > 0 && meta == NULL))
        return RL_E_INVALID_ARGUMENT;
    if (offset <= log->segs[0]->base_offset || offset <= log->start_offset)
        return RL_E_OFFSET_OUT_OF_RANGE;
    int rc = plog_drain(log);
    if (rc < 0)
        return rc;
    /* The commit point: once the record is durable, recovery finishes the reset. */
    uint8_t rec[8 + PLOG_RESET_META_MAX];
    rl_store_le64(rec, offset);
    if (meta_len)
        memcpy(rec + 8, meta, meta_len);
    rc = checkpoint_save(io, log->dir, PLOG_RESET_CHECKPOINT, rec, 8 + meta_len,
                         CHECKPOINT_DURABLE);
    if (rc < 0) {
        /* The rename may have reached the disk: only recovery can tell which log is there. */
        plog_fail(log, rc);
        return rc;
    }
    uint64_t *bases = malloc((size_t)log->nsegs * sizeof(*bases));
    if (bases == NULL) {
        plog_fail(log, -ENOMEM);
        return -ENOMEM;
    }
    uint32_t n = log->nsegs;
    for (uint32_t i = 0; i < n; i++)
        bases[i] = log->segs[i]->base_offset;
    /* In memory at once: the old segments go (a reader's slice keeps its own). */
    plog_chunks_free_all(log);
    plog_hdr_window_drop(log->st);
    tcache_drop_from(log->st->tcache, &log->tc, 0);
    log->truncations++;
    for (uint32_t i = 0; i < n; i++) {
        struct segment *seg = log->segs[i];
        if (seg->refs > 0) {
            /* A reader's slice (or a job) still holds it, maybe with its descriptor pinned:
             * the last release closes the descriptors and frees it. */
            seg->deleted = true;
            continue;
        }
        fcache_close(&log->st->fc, &seg->rd);
        fcache_close(&log->st->fc, &seg->wr);
        fcache_close(&log->st->fc, &seg->drd);
        segment_free(seg);
    }
    log->nsegs = 0;
    log->size_bytes = 0;
    log->falloc_seg = NULL;
    rc = reset_remove_all(io, log->dir, bases, n);
    free(bases);
    if (rc == 0)
        rc = create_first_segment(log, offset);
    if (rc == 0) {
        struct segment *act = log->segs[0];
        act->lsn_base = 0;
        act->created_ms = io_wall_ms(io);
        log->start_offset = log->next_offset = offset;
        log->appended_lsn = log->issued_lsn = log->written_lsn = log->durable_lsn = 0;
        memset(log->tail_block, 0, PLOG_ALIGN);
    }
    if (rc < 0) {
        RL_ERROR("%s: restarting the log at offset %llu failed (%s); the next open finishes it",
                 log->dir, (unsigned long long)offset, rl_strerror(rc));
        plog_fail(log, rc);
    }
    return rc;
}

int plog_recover(struct plog *log, const struct clean_entry *clean, uint8_t *buf,
                 struct plog_recovery_report *rep)
{
    struct io *io = log->st->io;
    struct clean_entry legacy;
    uint8_t sbuf[8];
    uint64_t start = 0;
    int rc = mkdir_p(io, log->dir);
    if (rc < 0)
        return rc;
    int lg = legacy_marker(log, &legacy);
    if (lg < 0)
        return lg;
    if (lg > 0)
        clean = &legacy;
    uint64_t reset_at = 0;
    rc = reset_record_load(io, log->dir, &reset_at, NULL, 0);
    if (rc >= 0)
        rc = reset_redo(log, reset_at);
    else if (rc == -ENOENT)
        rc = 0;
    if (rc < 0)
        return rc;
    rc = recover_all(log, clean, buf, rep);
    if (rc == 0 && clean != NULL && !clean_matches(log, clean)) {
        RL_WARN("%s: the clean-shutdown record does not match the files; recovering the log "
                "as after a crash", log->dir);
        free_segments_raw(log);
        report_reset(rep);
        clean = NULL;
        rc = recover_all(log, NULL, buf, rep);
    }
    if (rc < 0)
        return rc;
    rep->clean = clean != NULL;
    if (checkpoint_load(io, log->dir, PLOG_LOG_START_CHECKPOINT, sbuf, sizeof(sbuf)) == 8)
        start = rl_load_le64(sbuf);
    if (clean != NULL && clean->start_offset > start)
        start = clean->start_offset;
    if (reset_at > start)
        start = reset_at; /* the new log may have lost its empty first segment */
    return activate(log, start);
}

/* --- open ------------------------------------------------------------------------------- */

/* Takes the log's entry out of the clean table (from now on it is open, so not clean). */
static bool take_clean(struct storage *st, const char *dir, struct clean_entry *out)
{
    uint64_t h = plog_dir_hash(dir);
    const struct clean_entry *e = clean_find(&st->clean, h);
    if (e == NULL)
        return false;
    *out = *e;
    clean_del(&st->clean, h);
    return true;
}

int plog_open(struct storage *st, const char *dir, const struct plog_config *cfg,
              struct plog_recovery_report *report, struct plog **out)
{
    struct plog_recovery_report local;
    struct plog_recovery_report *rep = report != NULL ? report : &local;
    struct clean_entry clean;
    report_reset(rep);
    int rc = plog_config_check(cfg);
    if (rc < 0)
        return rc;
    struct plog *log = plog_alloc(st, dir, cfg);
    if (log == NULL)
        return -ENOMEM;
    bool has_clean = take_clean(st, dir, &clean);
    plog_hdr_window_drop(st); /* recovery reads through scan_buf */
    rc = plog_recover(log, has_clean ? &clean : NULL, st->scan_buf, rep);
    if (rc < 0) {
        plog_free(log);
        return rc;
    }
    plog_link(log);
    *out = log;
    return 0;
}

struct open_job {
    struct bio_job job;
    struct plog *log;
    struct clean_entry clean;
    bool has_clean;
    struct plog_recovery_report rep;
    plog_open_done_fn done;
    void *ctx;
};

static int open_work(struct bio_job *job)
{
    struct open_job *o = job->ctx;
    return plog_recover(o->log, o->has_clean ? &o->clean : NULL, o->log->st->job_scan_buf,
                        &o->rep);
}

static void open_done(struct bio_job *job, int result)
{
    struct open_job *o = job->ctx;
    struct plog *log = o->log;
    if (result < 0) {
        plog_free(log);
        log = NULL;
    } else {
        plog_link(log);
    }
    o->done(o->ctx, log, result, &o->rep);
    free(o);
}

int plog_open_async(struct storage *st, const char *dir, const struct plog_config *cfg,
                    plog_open_done_fn done, void *ctx)
{
    int rc = plog_config_check(cfg);
    if (rc < 0)
        return rc;
    struct open_job *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return -ENOMEM;
    o->log = plog_alloc(st, dir, cfg);
    if (o->log == NULL) {
        free(o);
        return -ENOMEM;
    }
    report_reset(&o->rep);
    o->has_clean = take_clean(st, dir, &o->clean);
    o->done = done;
    o->ctx = ctx;
    o->job = (struct bio_job){.work = open_work, .done = open_done, .ctx = o};
    bio_submit(st->bio, &o->job);
    return 0;
}
