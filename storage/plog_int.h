/*
 * plog_int: the partition log's private structures, shared by its four files: plog.c (storage
 * context, clean-shutdown record, close, delete, config), plog_recover.c (open and recovery,
 * synchronous or on the background thread), plog_write.c (append path: write buffer, group
 * commit, acknowledgements, roll, background finishing, disk-full retries) and plog_read.c
 * (reads, time lookups, retention, truncation). Nothing outside storage/ includes this.
 *
 * Write buffer. Appended batches are copied into 256 KiB chunks of 4 KiB-aligned memory taken
 * from the storage's pool. A chunk maps a range of one segment file starting at a 4 KiB
 * boundary, so writes go out with O_DIRECT straight from the chunks (one iovec per chunk: one
 * vectored write). The last, partly filled block of a write is padded with zeros and written
 * again, completed, by the next write (the Redpanda scheme); two writes that touch the same
 * block are never in flight together. When a log goes idle it returns its last chunk to the
 * pool after copying the partial block into `tail_block`, so an idle partition holds 4 KiB.
 *
 * Positions in the append stream are "lsn": bytes appended since the log was opened, counted
 * across segments (file position p of segment s is lsn s->lsn_base + p). Four cursors, always
 * appended >= issued >= written >= durable, drive everything:
 *   appended  bytes copied into chunks by plog_append
 *   issued    bytes covered by writes handed to the ring
 *   written   bytes whose writes (and every earlier write) completed: readable, and
 *             acknowledged under flush policies `none` and `interval`
 *   durable   bytes covered by a completed fdatasync: acknowledged under `batch`
 *
 * Background work of a log (log->jobs counts it; blocking calls wait for it): a new segment is
 * created and preallocated by a roll job, and only then `ready` for writes (appends to it wait
 * in the write buffer meanwhile); a sealed segment whose writes all completed is finished by a
 * finish job (fdatasync unless already durable, trim, index files) and only then `finalized`,
 * which retention and advance_start wait for; the log-start checkpoint is written by a
 * checkpoint job (one at a time, the latest value wins). Jobs of one storage run one at a time
 * in submission order, so a file removed by an earlier job is gone before a later job creates
 * one with the same name.
 *
 * Disk full: a write completing with -ENOSPC (or short) sets disk_full; no further write is
 * issued, and once the writes in flight have completed, issued_lsn goes back to written_lsn
 * (the chunks from there on are still held) and a timer retries every
 * PLOG_DISK_FULL_RETRY_MS: the retry lets writes go out again (disk_full_retrying), and
 * disk_full ends when one of them succeeds. Any other write or fsync error sets `failed`
 * (sticky).
 *
 * Damaged ranges live in their segment (segment.h: holes); offsets missing between two
 * segments are a range of the log itself (segs[i]->next_offset < segs[i + 1]->base_offset).
 */
#ifndef RL_STORAGE_PLOG_INT_H
#define RL_STORAGE_PLOG_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "io/io.h"
#include "storage/bio.h"
#include "storage/fcache.h"
#include "storage/plog.h"
#include "storage/segment.h"
#include "storage/tcache.h"

#define PLOG_ALIGN 4096u                   /* O_DIRECT alignment of buffers, offsets, lengths */
#define PLOG_CHUNK_BYTES (256u << 10)      /* one write-buffer chunk */
#define PLOG_QD 16                         /* data writes in flight per log (queue depth) */
#define PLOG_MAX_WOPS 32                   /* write slots: completed writes wait in order */
#define PLOG_MAX_IOV 64                    /* chunks per vectored write */
#define PLOG_MAX_WRITE_BYTES ((PLOG_MAX_IOV - 2) * PLOG_CHUNK_BYTES)
#define PLOG_WRITE_UNIT (1u << 20)         /* with writes in flight, issue in pieces this big */
#define PLOG_LOG_MAX_CHUNKS 256            /* 64 MiB buffered per log, then RL_E_FULL */
#define STORAGE_MAX_CHUNKS 1024            /* 256 MiB of write buffer per storage */
#define PLOG_SLAB_BYTES (2u << 20)         /* chunks come in huge-page slabs of this size */
#define STORAGE_MAX_SLABS (STORAGE_MAX_CHUNKS / (PLOG_SLAB_BYTES / PLOG_CHUNK_BYTES))
#define STORAGE_FREE_RINGS_KEPT 64         /* idle write-slot rings kept for reuse */
#define PLOG_FALLOC_MIN (1u << 20)         /* first preallocation of a segment */
#define PLOG_FALLOC_MAX (256u << 20)       /* preallocation doubles up to this step */
#define PLOG_SCAN_BUF_BYTES (1u << 20)     /* recovery read window */
#define PLOG_HDR_WINDOW (64u << 10)        /* read path: header bytes read per pread */
/* Batches at least this big get their headers read alone: a window would copy mostly record
 * bytes out of the page cache (a 64 KiB window per 256 KiB batch is a quarter of the data
 * again), and one more small pread costs less than copying a few KiB. */
#define PLOG_HDR_BIG_BATCH (8u << 10)
#define PLOG_HDR_SMALL_READ 512u           /* header bytes read per pread for big batches */
#define PLOG_DRAIN_TIMEOUT_NS (120ull * 1000000000ull) /* blocking calls give up after this */
#define PLOG_MAX_BATCH_LIMIT ((PLOG_LOG_MAX_CHUNKS - 4) * PLOG_CHUNK_BYTES)
#define PLOG_DISK_FULL_RETRY_MS 1000       /* a write refused for space is retried this often */
/* A dropped segment's data file is freed PLOG_REMOVE_STEP_BYTES at a time, PLOG_REMOVE_PAUSE_US
 * apart, on the storage's reaper thread (bio_remove_gradually says why). */
#define PLOG_REMOVE_STEP_BYTES (8u << 20)
#define PLOG_REMOVE_PAUSE_US 2000
#define PLOG_FD_RETRY_MS 10                /* every descriptor pinned: try again this soon */
#define STORAGE_CLEAN_RECORD "storage-clean"
#define PLOG_LEGACY_CLEAN_MARKER "clean-shutdown" /* per-log marker of the first version */
#define PLOG_LOG_START_CHECKPOINT "log-start"
#define PLOG_RESET_CHECKPOINT "log-reset"  /* where plog_reset_to restarted the log, and its meta */

struct chunk {
    uint8_t *buf;          /* PLOG_CHUNK_BYTES, PLOG_ALIGN-aligned */
    struct chunk *next;
    struct segment *seg;   /* the segment file this chunk maps */
    uint64_t file_pos;     /* file position of buf[0]; a multiple of PLOG_ALIGN */
    uint32_t fill;         /* bytes of buf holding data */
};

/* One write in flight (with its linked fdatasync under flush policy `batch`). */
struct wop {
    struct io_op wr;
    struct io_op sync;
    struct plog *log;
    struct segment *seg;
    int64_t lsn_end;       /* the write covers appended data up to here */
    uint32_t expect_bytes; /* a shorter write is a failure */
    int res;               /* first error seen, or 0 */
    bool res_from_sync;    /* that error came from the fdatasync (always sticky) */
    unsigned pending;      /* ops of this wop not yet completed */
    bool has_write, has_sync;
    int iovcnt;
    struct iovec iov[PLOG_MAX_IOV];
};

/* The in-flight write slots of a busy log (about 17 KiB), lent from the storage so idle logs,
 * the many, do not carry them. */
struct wop_ring {
    struct wop w[PLOG_MAX_WOPS];
    struct wop_ring *next;
};

struct slab {
    uint8_t *mem;         /* PLOG_SLAB_BYTES */
    struct chunk *chunks; /* its chunk descriptors */
};

/* One log's entry in the storage-wide clean-shutdown record (little-endian on disk, in this
 * order, 48 bytes each after a u32 count; see plog.c). */
struct clean_entry {
    uint64_t dir_hash;     /* xxh3-64 of the log's directory path as given to plog_open */
    uint64_t next_offset;  /* the log end offset */
    uint64_t start_offset;
    uint64_t active_base;  /* base offset of the active segment */
    uint64_t active_end;   /* bytes of batches in it (the file may be longer: preallocation) */
    uint64_t flags;        /* reserved, 0 */
};
#define CLEAN_ENTRY_BYTES 48

struct clean_table {
    struct clean_entry *e; /* open addressing on dir_hash; dir_hash 0 = free */
    uint32_t cap, n;
};

struct storage {
    struct io *io;
    struct fcache fc;
    struct bio *bio;
    struct bio *reaper;       /* frees dropped segments' data files in steps (remove_done) */
    char *state_dir;          /* NULL: no clean-shutdown record */
    struct clean_table clean; /* logs closed cleanly (read at open, added by plog_close) */
    uint8_t *job_scan_buf;    /* PLOG_SCAN_BUF_BYTES for background recovery (one job at a time) */
    unsigned disk_full_logs;
    struct chunk *free_chunks;
    unsigned n_free, n_alloc; /* chunks on the free list / allocated in total */
    struct slab slabs[STORAGE_MAX_SLABS];
    unsigned n_slabs;
    struct wop_ring *free_rings;
    unsigned n_free_rings;
    struct plog *logs;        /* every open log, for storage_destroy */
    uint8_t *scan_buf;        /* PLOG_SCAN_BUF_BYTES, for recovery and reads */
    /* The read path's window of batch headers: scan_buf holds bytes [hw_pos, hw_pos + hw_len)
     * of segment hw_seg (readable, hence immutable, bytes). Dropped whenever a segment is
     * truncated or freed, or scan_buf is used for anything else. */
    const struct segment *hw_seg;
    uint64_t hw_pos;
    size_t hw_len;
    uint32_t hw_last_batch_len; /* of the last header decoded: sizes the next window */
    uint64_t delete_seq;      /* makes names of files being deleted unique */
    bool direct;              /* O_DIRECT works here (cleared when the file system refuses) */
    struct tcache *tcache;    /* recently appended batches of every log (tcache.h) */
};

struct plog {
    struct storage *st;
    char *dir;
    struct plog_config cfg;
    struct segment **segs;   /* ascending base offsets; the last one is active */
    uint32_t nsegs, cap_segs;
    uint64_t start_offset, next_offset;
    uint64_t size_bytes;     /* sum of segments' end_pos */

    struct chunk *ch_head, *ch_tail;
    unsigned n_chunks;
    int64_t appended_lsn, issued_lsn, written_lsn, durable_lsn;
    struct wop_ring *wops;   /* writes in flight, completed in order; held only while busy */
    unsigned wop_head, wop_count;
    unsigned wops_busy;      /* slots whose ops have not all completed (<= PLOG_QD) */
    struct wop syncop;       /* a standalone fdatasync (interval policy) */
    bool sync_inflight;
    struct io_op timer;      /* interval flush timer */
    bool timer_armed;
    struct io_op kick;       /* group-commit trigger: see plog_append */
    bool kick_armed;
    struct plog_append *q_head, *q_tail; /* appends not yet acknowledged, in order */
    struct plog_append *q_read;          /* first of them not yet readable */
    uint8_t *tail_block;     /* PLOG_ALIGN bytes: the active segment's partial last block */
    int failed;              /* sticky: the first write/fsync error, or 0 */
    int fault_next;          /* test hook: error to report for the next write completion */
    bool disk_full;          /* a write was refused for space; retried by `retry` */
    bool disk_full_rewind;   /* issued_lsn must go back once the writes in flight are done */
    bool disk_full_retrying; /* the retry may issue writes; the first to succeed ends it */
    bool retry_armed;
    struct io_op retry;      /* disk-full and descriptor retries */
    unsigned jobs;           /* background jobs in flight */
    bool falloc_busy, falloc_warned; /* preallocation through the ring */
    struct segment *falloc_seg;
    uint64_t falloc_target;
    struct io_op falloc_op;
    bool trunc_busy;         /* a truncation is waiting or running: appends wait */
    bool trunc_waiting;      /* it waits for the writes and jobs in flight to end */
    uint64_t trunc_offset;
    plog_truncate_done_fn trunc_done;
    void *trunc_ctx;
    bool start_job_busy, start_dirty; /* the log-start checkpoint job */
    struct bio_job start_job;
    uint64_t start_job_value;
    bool closing;
    bool linked;             /* in st->logs */
    struct plog *next_log, *prev_log;
    struct tcache_owner tc;  /* this log's batches in the tail cache */
    uint64_t truncations;    /* cuts made by truncate_to (readers holding bytes compare it) */
};

/* plog_write.c */
void plog_pump(struct plog *log);
void plog_release_idle(struct plog *log);
int plog_roll(struct plog *log);
int plog_drain(struct plog *log);
void plog_chunks_free_all(struct plog *log);
void plog_job_submit(struct plog *log, struct bio_job *job, bio_work_fn work, bio_done_fn done);
void plog_job_finished(struct plog *log);
void plog_fail(struct plog *log, int err);

/* plog_bg.c */
int plog_finish_sync(struct plog *log, struct segment *seg, bool sync);
void plog_finish_submit(struct plog *log, struct segment *seg, bool sync);
void plog_roll_submit(struct plog *log, struct segment *seg);
/* Starts reserving space in seg when a write up to `upto` needs it; returns true when that
 * write must wait for it (falloc_done pumps again). */
bool plog_prealloc_first(struct plog *log, struct segment *seg, int fd, uint64_t upto);
void plog_retry_arm(struct plog *log, uint32_t ms);
void plog_enter_disk_full(struct plog *log, int err);
void plog_leave_disk_full(struct plog *log);

/* plog.c */
int plog_seg_read_fd(struct plog *log, struct segment *seg);
int plog_seg_write_fd(struct plog *log, struct segment *seg);
int plog_segs_push(struct plog *log, struct segment *seg);
void plog_segment_remove_files(struct io *io, const struct segment *seg);
void plog_segment_drop(struct plog *log, struct segment *seg);
int plog_load_tail_block(struct plog *log);
uint64_t plog_dir_hash(const char *dir);
const struct clean_entry *clean_find(const struct clean_table *t, uint64_t dir_hash);
int clean_put(struct clean_table *t, const struct clean_entry *e);
void clean_del(struct clean_table *t, uint64_t dir_hash);
struct plog *plog_alloc(struct storage *st, const char *dir, const struct plog_config *cfg);
void plog_free(struct plog *log);
void plog_link(struct plog *log);
int plog_config_check(const struct plog_config *cfg);

/* plog_recover.c: runs on the caller's thread (plog_open) or the background thread
 * (plog_open_async); touches only the log, its files, `clean` and `scan_buf`. */
int plog_recover(struct plog *log, const struct clean_entry *clean, uint8_t *scan_buf,
                 struct plog_recovery_report *rep);

/* plog_read.c */
void plog_hdr_window_drop(struct storage *st);
int plog_read_header(struct plog *log, struct segment *seg, uint64_t pos,
                     struct batch_header *h);
void plog_start_checkpoint(struct plog *log);
void plog_truncate_resume(struct plog *log);

#endif
