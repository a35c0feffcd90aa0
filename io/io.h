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
 * Thread safety: a struct io is used by its owner thread only, except io_wake(), which any
 * thread may call to make a blocked io_run() return (an eventfd read kept armed in the ring).
 */
#ifndef RL_IO_IO_H
#define RL_IO_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
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

#endif
