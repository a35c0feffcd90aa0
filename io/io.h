/*
 * io: the one small I/O layer. Everything ringlog does with files, sockets, timers and the
 * monotonic clock goes through here; nothing above this module includes <liburing.h> or reads a
 * clock, so a simulated back-end can stand in for it in tests (Redis ae back-ends, SQLite VFS,
 * TigerBeetle io/).
 *
 * Model: one `struct io` per thread (a shard), owning one io_uring. Callers embed a
 * `struct io_op` in their own objects, prepare it with an io_prep_* call, and are called back
 * from io_run() with the result (>= 0 bytes or fd, or -errno) when it completes. An op must stay
 * alive and unmodified until its callback has run. Prepared ops are submitted in batches by
 * io_submit() or at the next io_run(), so many prepares cost one io_uring_enter.
 *
 * Linking: IO_LINK on an op makes the next prepared op start only after this one succeeds
 * (IOSQE_IO_LINK); this is how a vectored write and its fdatasync go out as one group commit.
 * If a linked op fails, the ops after it complete with -ECANCELED. A chain of up to
 * IO_MAX_CHAIN ops is never split across submissions (which would silently unlink it); the
 * ring must have at least that many entries.
 *
 * Thread safety: a struct io is used by its owner thread only, except io_wake() and io_post(),
 * which any thread may call (an eventfd read kept armed in the ring makes a blocked io_run()
 * return), and the synchronous file calls of the io_uring back-end (plain system calls).
 *
 * Back-ends: io_create() gives the io_uring one. io_create_sim() (io/io_sim.h) gives a
 * deterministic simulated one for tests: in-memory files that keep written-but-unsynced bytes
 * apart from synced ones (so a test can cut the power), seeded fault injection (EIO, ENOSPC on
 * any write, fsync, fallocate or rename) and a simulated clock. Code above this layer cannot
 * tell them apart, as long as it does all file I/O through the calls below.
 */
#ifndef RL_IO_IO_H
#define RL_IO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

struct io;
struct io_op;

typedef void (*io_done_fn)(struct io_op *op, int result);

#define IO_MAX_CHAIN 4

enum io_op_flags {
    IO_LINK = 1u << 0, /* the next prepared op waits for this one (IOSQE_IO_LINK) */
};

/* Embedded by callers; fields are the layer's business except done/ctx. */
struct io_op {
    io_done_fn done;
    void *ctx;        /* free for the caller */
    uint64_t user;    /* free for the caller */
    uint64_t timeout_ns_storage[2]; /* backing store for a timeout's timespec */
    struct io_op *next_pending; /* simulated back-ends and the layer's own queues */
    uint8_t kind;
};

/* Creates an io with a submission queue of `entries` (rounded to a power of two; 256 is a good
 * default). Returns NULL and sets *err to -errno when the kernel refuses (e.g. io_uring disabled). */
struct io *io_create(unsigned entries, int *err);

/* Destroys the ring. Ops still in flight are abandoned (their callbacks never run); callers must
 * drain first if they care. */
void io_destroy(struct io *io);

/* Monotonic clock, nanoseconds (CLOCK_MONOTONIC) and milliseconds since the epoch
 * (CLOCK_REALTIME, for record timestamps). */
uint64_t io_now_ns(struct io *io);
int64_t io_wall_ms(struct io *io);

/* File ops. offsets are byte positions; len/iov as for pread/pwritev. */
void io_prep_read(struct io *io, struct io_op *op, int fd, void *buf, size_t len, uint64_t offset,
                  unsigned flags);
void io_prep_write(struct io *io, struct io_op *op, int fd, const void *buf, size_t len,
                   uint64_t offset, unsigned flags);
void io_prep_writev(struct io *io, struct io_op *op, int fd, const struct iovec *iov, int iovcnt,
                    uint64_t offset, unsigned flags);
void io_prep_fdatasync(struct io *io, struct io_op *op, int fd, unsigned flags);
/* fallocate(2) mode 0 through the ring: reserves [offset, offset + len). */
void io_prep_fallocate(struct io *io, struct io_op *op, int fd, uint64_t offset, uint64_t len,
                       unsigned flags);
void io_prep_close(struct io *io, struct io_op *op, int fd, unsigned flags);

/* Socket ops. accept completes with the new fd (non-blocking, close-on-exec). */
void io_prep_accept(struct io *io, struct io_op *op, int listen_fd, unsigned flags);
void io_prep_connect(struct io *io, struct io_op *op, int fd, const struct sockaddr *addr,
                     socklen_t addrlen, unsigned flags);
void io_prep_recv(struct io *io, struct io_op *op, int fd, void *buf, size_t len, unsigned flags);
void io_prep_send(struct io *io, struct io_op *op, int fd, const void *buf, size_t len,
                  unsigned flags);
void io_prep_sendmsg(struct io *io, struct io_op *op, int fd, const struct msghdr *msg,
                     unsigned flags);
/* splice(2): moves up to len bytes between fd_in and fd_out, one of which must be a pipe;
 * off_in/off_out are file positions, or -1 for a pipe or socket. Two linked splices (file ->
 * pipe, pipe -> socket) send file bytes without a user-space copy. Completes with the bytes
 * moved or -errno. */
void io_prep_splice(struct io *io, struct io_op *op, int fd_in, int64_t off_in, int fd_out,
                    int64_t off_out, size_t len, unsigned flags);

/* Timers: completes with 0 after timeout_ns (or -ECANCELED when cancelled). */
void io_prep_timeout(struct io *io, struct io_op *op, uint64_t timeout_ns, unsigned flags);
/* Asks the kernel to cancel `target` (which completes with -ECANCELED if it was still pending);
 * `op` itself completes with 0, -ENOENT or -EALREADY. */
void io_prep_cancel(struct io *io, struct io_op *op, struct io_op *target, unsigned flags);

/* Submits prepared ops. Returns the number submitted or -errno. */
int io_submit(struct io *io);

/* Submits prepared ops, waits until at least one completion is ready or timeout_ns passes
 * (UINT64_MAX: no timeout; 0: do not wait), then runs every ready callback. Returns the number
 * of callbacks run (0 on timeout) or -errno. Callbacks may prepare new ops. */
int io_run(struct io *io, uint64_t timeout_ns);

/* Ops prepared or in flight, not yet completed. */
unsigned io_inflight(const struct io *io);

/* Wakes a blocked io_run() from any thread; async-signal-safe. */
void io_wake(struct io *io);

/* Completes `op` with `result` from any thread: its callback runs on the owner thread in a
 * later io_run() (which this wakes). This is how a background thread hands finished work back
 * to the loop. The op must not be prepared or in flight otherwise. */
void io_post(struct io *io, struct io_op *op, int result);

/* Runs work(op) where blocking is allowed and completes op with its return value. Only the
 * simulated back-end implements it (it runs the work at a seeded moment inside io_run, so a
 * background thread's jobs interleave deterministically with the loop's I/O); on the io_uring
 * back-end the work runs at once, inside this call, and completes at the next io_run. */
typedef int (*io_work_fn)(struct io_op *op);
void io_prep_work(struct io *io, struct io_op *op, io_work_fn work, unsigned flags);

/* Fault hook for tests (ringlogd's io.fault.delay.file): from now on the completion of every
 * write, writev and fdatasync is held for the number of milliseconds the file at `path` holds
 * (re-read at most every 100 ms while ops complete; missing, empty or 0: no delay; capped at
 * 60 s), so one broker's disk looks slow while the others' is not. Completions keep their order.
 * The op still reaches the kernel at once; only its callback waits (io_run wakes for it). The
 * path is copied. Returns 0, -ENOMEM, or -EOPNOTSUPP on the simulated back-end (which has its
 * own fault injection). */
int io_fault_delay_file(struct io *io, const char *path);

/* True for the simulated back-end. Background threads use it to decide whether they may run
 * (a simulated io is single-threaded: its jobs go through io_prep_work instead). */
bool io_is_sim(const struct io *io);

/* --- files: synchronous calls -----------------------------------------------------------------
 * For start-up, recovery, clean shutdown and background threads, never a busy loop's hot path.
 * Every file, directory and path operation of storage (and of the broker's metadata log and
 * snapshots) goes through these or the io_prep_* file ops, so the simulated back-end sees all
 * of it. Each returns 0 (or a count, or a descriptor) or -errno. Descriptors are the back-end's
 * own: pass them only to io calls (on the io_uring back-end they are ordinary descriptors).
 * Flags and modes are those of open(2); O_CLOEXEC is always added. A NULL io means the plain
 * system calls (for code that has no io at hand; prefer passing one). */
int io_file_open(struct io *io, const char *path, int flags, unsigned mode);
int io_file_close(struct io *io, int fd);
/* Reads up to len bytes at off, retrying short reads; returns the bytes read (< len only at the
 * end of the file). */
ssize_t io_file_pread(struct io *io, int fd, void *buf, size_t len, uint64_t off);
/* Writes all len bytes at off or fails; a file system out of space gives -ENOSPC, never a short
 * count. */
ssize_t io_file_pwrite(struct io *io, int fd, const void *buf, size_t len, uint64_t off);
int io_file_fdatasync(struct io *io, int fd);
int io_file_fsync(struct io *io, int fd);
int io_file_truncate(struct io *io, int fd, uint64_t size);
/* Reserves [off, off + len), growing the file to off + len (fallocate mode 0). -EOPNOTSUPP when
 * the file system cannot. */
int io_file_allocate(struct io *io, int fd, uint64_t off, uint64_t len);
int io_file_size(struct io *io, int fd, uint64_t *size);
/* Size of the file at path; -ENOENT when there is none. */
int io_path_size(struct io *io, const char *path, uint64_t *size);
int io_path_rename(struct io *io, const char *from, const char *to);
int io_path_unlink(struct io *io, const char *path);
/* mkdir(2): -EEXIST when something is there already. */
int io_dir_make(struct io *io, const char *path, unsigned mode);
int io_dir_remove(struct io *io, const char *path);
/* fsync of a directory: entries created, renamed or removed in it become durable. */
int io_dir_sync(struct io *io, const char *path);
/* syncfs(2) of the file system holding path: every file's data and metadata become durable in
 * one call (what a clean shutdown of thousands of logs needs instead of one fsync each). */
int io_fs_sync(struct io *io, const char *path);
/* Calls fn(ctx, name) for every entry of the directory except "." and ".." (in no particular
 * order); stops early when fn returns non-zero and returns that value. */
typedef int (*io_dir_entry_fn)(void *ctx, const char *name);
int io_dir_list(struct io *io, const char *path, io_dir_entry_fn fn, void *ctx);

/* Counts of file operations issued through this io since creation, synchronous and
 * asynchronous together (for tests, benchmarks and metrics: "how many fsyncs did a clean
 * shutdown cost"). Safe to read from the owner thread while background threads add to it. */
struct io_file_stats {
    uint64_t opens, reads, writes, fdatasyncs, fsyncs, dir_syncs, fs_syncs, truncates,
        allocates, renames, unlinks, mkdirs;
};
void io_file_stats(struct io *io, struct io_file_stats *out);

#endif
