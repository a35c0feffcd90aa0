/*
 * io: the io_uring back-end of the I/O layer (contract in io.h). Where it sits: under every
 * subsystem that touches a file, a socket, a timer or the clock; above only the kernel.
 *
 * Each op's address is its io_uring user_data, so a completion finds its op without a lookup.
 * The ring also keeps one internal op armed: a read of an eventfd, which io_wake() writes from
 * any thread, so a blocked io_run() returns. Ops that cannot get a submission entry even after
 * flushing the queue (the kernel refused the submit, e.g. a completion-queue overflow) are
 * completed with that error through a deferred list instead of being lost.
 */
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "io/io_int.h"

/* How the layer translates a completion for each kind of op. */
enum io_kind {
    IO_KIND_PLAIN = 0,
    IO_KIND_TIMEOUT = 1, /* the kernel's -ETIME on expiry means success here */
    IO_KIND_WAKE = 2,    /* the internal eventfd read */
    IO_KIND_DISK = 3,    /* a write or fdatasync: what io.fault.delay.file slows down */
};

/* io.fault.delay.file is re-read at most this often (a test changes it while the broker runs). */
#define IO_DELAY_REREAD_NS (100ull * 1000000ull)
/* The largest delay the hook takes from its file (a typo must not stall a test for hours). */
#define IO_DELAY_MAX_MS 60000

/* The completion queue is this many times the submission queue, so bursts of completions
 * (accepts, timers firing together) do not overflow it. */
#define IO_CQ_FACTOR 4
/* io_run() runs at most this many callbacks per call, so one busy ring cannot starve the
 * caller's other duties (the remaining completions stay queued for the next call). */
#define IO_MAX_CALLBACKS_PER_RUN 4096

struct io {
    struct io_sim *sim; /* the simulated back-end, or NULL for io_uring */
    struct io_file_stats stats; /* updated with relaxed atomics (background threads add too) */
    pthread_mutex_t post_mu;    /* io_post: completions handed over by other threads */
    struct io_op *post_head, *post_tail;
    int posted;                 /* atomic: the post list is not empty */
    struct io_uring ring;
    int wake_fd;
    uint64_t wake_buf;
    struct io_op wake_op;
    unsigned inflight; /* caller ops prepared or in flight (the wake op is not counted) */
    bool in_chain;     /* the last prepared op had IO_LINK */
    struct io_op *deferred_head; /* ops completed without reaching the kernel */
    struct io_op *deferred_tail;
    /* The slow-disk fault hook (io_fault_delay_file): completions of writes and fdatasyncs
     * wait in a FIFO until their due time (timeout_ns_storage[0]; the result in [1]). */
    char *delay_path;
    uint64_t delay_ns, delay_read_ns;
    struct io_op *slow_head, *slow_tail;
};

static void io_wake_rearm(struct io *io);

static void io_count(struct io *io, uint64_t *field)
{
    (void)io;
    __atomic_fetch_add(field, 1, __ATOMIC_RELAXED);
}

/* Hands a prepared op to the simulated back-end, when that is what this io is. */
#define IO_SIM_PREP(io, op, flags, ...)                                                         \
    do {                                                                                       \
        if ((io)->sim != NULL) {                                                               \
            struct io_sim_req r_ = {__VA_ARGS__};                                              \
            (io)->inflight++;                                                                  \
            io_sim_prep((io)->sim, (op), &r_, (flags));                                        \
            return;                                                                            \
        }                                                                                      \
    } while (0)

struct io *io_create(unsigned entries, int *err)
{
    struct io *io = calloc(1, sizeof(*io));
    int rc;
    if (io == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&io->post_mu, NULL);
    if (entries < 8)
        entries = 8;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
    p.cq_entries = entries * IO_CQ_FACTOR;
    rc = io_uring_queue_init_params(entries, &io->ring, &p);
    if (rc == -EINVAL) {
        /* Older kernels lack the optional flags; the layer works without them. */
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = entries * IO_CQ_FACTOR;
        rc = io_uring_queue_init_params(entries, &io->ring, &p);
    }
    if (rc < 0)
        goto fail;
    io->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (io->wake_fd < 0) {
        rc = -errno;
        io_uring_queue_exit(&io->ring);
        goto fail;
    }
    io->wake_op.kind = IO_KIND_WAKE;
    io_wake_rearm(io);
    return io;
fail:
    free(io);
    *err = rc;
    return NULL;
}

struct io *io_create_sim(const struct io_sim_config *cfg, int *err)
{
    struct io *io = calloc(1, sizeof(*io));
    if (io == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&io->post_mu, NULL);
    io->wake_fd = -1;
    io->sim = io_sim_new(io, cfg);
    if (io->sim == NULL) {
        free(io);
        *err = -ENOMEM;
        return NULL;
    }
    return io;
}

void io_destroy(struct io *io)
{
    if (io == NULL)
        return;
    if (io->sim != NULL) {
        io_sim_free(io->sim);
    } else {
        io_uring_queue_exit(&io->ring);
        close(io->wake_fd);
    }
    pthread_mutex_destroy(&io->post_mu);
    free(io->delay_path);
    free(io);
}

struct io_sim *io_sim_of(struct io *io)
{
    return io->sim;
}

bool io_is_sim(const struct io *io)
{
    return io->sim != NULL;
}

struct io_file_stats *io_stats_ptr(struct io *io)
{
    return &io->stats;
}

void io_file_stats(struct io *io, struct io_file_stats *out)
{
    const uint64_t *src = (const uint64_t *)&io->stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

uint64_t io_now_ns(struct io *io)
{
    if (io->sim != NULL)
        return io_sim_now_ns(io->sim);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t io_wall_ms(struct io *io)
{
    if (io->sim != NULL)
        return io_sim_wall_ms(io->sim);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void io_defer(struct io *io, struct io_op *op, int result)
{
    /* The result rides in `user` of the op's pending link; callers own `user`, so keep the
     * result in the spare timeout storage, which a failed op no longer needs. */
    op->timeout_ns_storage[1] = (uint64_t)(int64_t)result;
    op->next_pending = NULL;
    if (io->deferred_tail != NULL)
        io->deferred_tail->next_pending = op;
    else
        io->deferred_head = op;
    io->deferred_tail = op;
}

/* Gets a submission entry for `op`, flushing the queue to the kernel when it is full. Returns
 * NULL after deferring op's completion with the error when no entry can be had. */
static struct io_uring_sqe *io_sqe(struct io *io, struct io_op *op, unsigned flags, uint8_t kind)
{
    /* A link chain cut by a submission boundary would lose its ordering (the kernel ends the
     * chain at the end of each submission), so an op that starts or continues a chain first
     * makes room for the whole chain. */
    if ((flags & IO_LINK) && !io->in_chain && io_uring_sq_space_left(&io->ring) < IO_MAX_CHAIN)
        io_uring_submit(&io->ring);
    io->in_chain = (flags & IO_LINK) != 0;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
    op->kind = kind;
    if (op != &io->wake_op)
        io->inflight++;
    if (sqe == NULL) {
        int rc = io_uring_submit(&io->ring);
        sqe = io_uring_get_sqe(&io->ring);
        if (sqe == NULL) {
            io_defer(io, op, rc < 0 ? rc : -EBUSY);
            return NULL;
        }
    }
    return sqe;
}

static void io_finish_sqe(struct io_uring_sqe *sqe, struct io_op *op, unsigned flags)
{
    io_uring_sqe_set_data(sqe, op);
    if (flags & IO_LINK)
        sqe->flags |= IOSQE_IO_LINK;
}

static void io_wake_rearm(struct io *io)
{
    struct io_uring_sqe *sqe = io_sqe(io, &io->wake_op, 0, IO_KIND_WAKE);
    if (sqe == NULL)
        return; /* re-armed when the deferred completion is delivered */
    io_uring_prep_read(sqe, io->wake_fd, &io->wake_buf, sizeof(io->wake_buf), 0);
    io_finish_sqe(sqe, &io->wake_op, 0);
}

void io_prep_read(struct io *io, struct io_op *op, int fd, void *buf, size_t len, uint64_t offset,
                  unsigned flags)
{
    io_count(io, &io->stats.reads);
    IO_SIM_PREP(io, op, flags, .kind = IOS_READ, .fd = fd, .buf = buf, .len = len,
                .offset = offset);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_PLAIN);
    if (sqe == NULL)
        return;
    io_uring_prep_read(sqe, fd, buf, (unsigned)len, offset);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_write(struct io *io, struct io_op *op, int fd, const void *buf, size_t len,
                   uint64_t offset, unsigned flags)
{
    io_count(io, &io->stats.writes);
    IO_SIM_PREP(io, op, flags, .kind = IOS_WRITE, .fd = fd, .cbuf = buf, .len = len,
                .offset = offset);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_DISK);
    if (sqe == NULL)
        return;
    io_uring_prep_write(sqe, fd, buf, (unsigned)len, offset);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_writev(struct io *io, struct io_op *op, int fd, const struct iovec *iov, int iovcnt,
                    uint64_t offset, unsigned flags)
{
    io_count(io, &io->stats.writes);
    IO_SIM_PREP(io, op, flags, .kind = IOS_WRITEV, .fd = fd, .iov = iov, .iovcnt = iovcnt,
                .offset = offset);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_DISK);
    if (sqe == NULL)
        return;
    io_uring_prep_writev(sqe, fd, iov, (unsigned)iovcnt, offset);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_fdatasync(struct io *io, struct io_op *op, int fd, unsigned flags)
{
    io_count(io, &io->stats.fdatasyncs);
    IO_SIM_PREP(io, op, flags, .kind = IOS_FDATASYNC, .fd = fd);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_DISK);
    if (sqe == NULL)
        return;
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_fallocate(struct io *io, struct io_op *op, int fd, uint64_t offset, uint64_t len,
                       unsigned flags)
{
    io_count(io, &io->stats.allocates);
    IO_SIM_PREP(io, op, flags, .kind = IOS_FALLOCATE, .fd = fd, .offset = offset, .len = len);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_PLAIN);
    if (sqe == NULL)
        return;
    io_uring_prep_fallocate(sqe, fd, 0, offset, len);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_work(struct io *io, struct io_op *op, io_work_fn work, unsigned flags)
{
    IO_SIM_PREP(io, op, flags, .kind = IOS_WORK, .work = work);
    /* No worker here: run it now and deliver the result at the next io_run, as a completion
     * would be. */
    io->inflight++;
    io_defer(io, op, work(op));
}

void io_prep_close(struct io *io, struct io_op *op, int fd, unsigned flags)
{
    IO_SIM_PREP(io, op, flags, .kind = IOS_CLOSE, .fd = fd);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_PLAIN);
    if (sqe == NULL)
        return;
    io_uring_prep_close(sqe, fd);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_accept(struct io *io, struct io_op *op, int listen_fd, unsigned flags)
{
    IO_SIM_PREP(io, op, flags, .kind = IOS_UNSUPPORTED, .fd = listen_fd);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_PLAIN);
    if (sqe == NULL)
        return;
    io_uring_prep_accept(sqe, listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_connect(struct io *io, struct io_op *op, int fd, const struct sockaddr *addr,
                     socklen_t addrlen, unsigned flags)
{
    IO_SIM_PREP(io, op, flags, .kind = IOS_UNSUPPORTED, .fd = fd);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_PLAIN);
    if (sqe == NULL)
        return;
    io_uring_prep_connect(sqe, fd, addr, addrlen);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_recv(struct io *io, struct io_op *op, int fd, void *buf, size_t len, unsigned flags)
{
    IO_SIM_PREP(io, op, flags, .kind = IOS_UNSUPPORTED, .fd = fd);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_PLAIN);
    if (sqe == NULL)
        return;
    io_uring_prep_recv(sqe, fd, buf, len, 0);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_send(struct io *io, struct io_op *op, int fd, const void *buf, size_t len,
                  unsigned flags)
{
    IO_SIM_PREP(io, op, flags, .kind = IOS_UNSUPPORTED, .fd = fd);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_PLAIN);
    if (sqe == NULL)
        return;
    /* A peer that went away must surface as -EPIPE on this op, not as a process-killing
     * SIGPIPE. */
    io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_sendmsg(struct io *io, struct io_op *op, int fd, const struct msghdr *msg,
                     unsigned flags)
{
    IO_SIM_PREP(io, op, flags, .kind = IOS_UNSUPPORTED, .fd = fd);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_PLAIN);
    if (sqe == NULL)
        return;
    io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_splice(struct io *io, struct io_op *op, int fd_in, int64_t off_in, int fd_out,
                    int64_t off_out, size_t len, unsigned flags)
{
    IO_SIM_PREP(io, op, flags, .kind = IOS_UNSUPPORTED, .fd = fd_in);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_PLAIN);
    if (sqe == NULL)
        return;
    io_uring_prep_splice(sqe, fd_in, off_in, fd_out, off_out, (unsigned)len, 0);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_timeout(struct io *io, struct io_op *op, uint64_t timeout_ns, unsigned flags)
{
    IO_SIM_PREP(io, op, flags, .kind = IOS_TIMEOUT, .timeout_ns = timeout_ns);
    _Static_assert(sizeof(op->timeout_ns_storage) >= sizeof(struct __kernel_timespec),
                   "io_op timeout storage too small for a kernel timespec");
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_TIMEOUT);
    if (sqe == NULL)
        return;
    struct __kernel_timespec *ts = (struct __kernel_timespec *)(void *)op->timeout_ns_storage;
    ts->tv_sec = (long long)(timeout_ns / 1000000000ull);
    ts->tv_nsec = (long long)(timeout_ns % 1000000000ull);
    io_uring_prep_timeout(sqe, ts, 0, 0);
    io_finish_sqe(sqe, op, flags);
}

void io_prep_cancel(struct io *io, struct io_op *op, struct io_op *target, unsigned flags)
{
    IO_SIM_PREP(io, op, flags, .kind = IOS_CANCEL, .target = target);
    struct io_uring_sqe *sqe = io_sqe(io, op, flags, IO_KIND_PLAIN);
    if (sqe == NULL)
        return;
    io_uring_prep_cancel(sqe, target, 0);
    io_finish_sqe(sqe, op, flags);
}

int io_submit(struct io *io)
{
    if (io->sim != NULL)
        return 0; /* the simulation starts ops inside io_run */
    return io_uring_submit(&io->ring);
}

int io_fault_delay_file(struct io *io, const char *path)
{
    if (io->sim != NULL)
        return -EOPNOTSUPP;
    char *copy = strdup(path);
    if (copy == NULL)
        return -ENOMEM;
    free(io->delay_path);
    io->delay_path = copy;
    io->delay_read_ns = 0;
    return 0;
}

/* Re-reads the delay file when the last reading is older than IO_DELAY_REREAD_NS: a missing,
 * empty or unparsable file means no delay. */
static void io_delay_refresh(struct io *io, uint64_t now_ns)
{
    if (io->delay_read_ns != 0 && now_ns - io->delay_read_ns < IO_DELAY_REREAD_NS)
        return;
    io->delay_read_ns = now_ns;
    io->delay_ns = 0;
    int fd = open(io->delay_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    char *end;
    long ms = strtol(buf, &end, 10);
    if (end != buf && ms > 0)
        io->delay_ns = (uint64_t)(ms < IO_DELAY_MAX_MS ? ms : IO_DELAY_MAX_MS) * 1000000ull;
}

/* Holds a write's or fdatasync's completion until now + the delay (never before the one held
 * before it, so completions keep their order). Returns false when there is no delay. */
static bool io_delay_hold(struct io *io, struct io_op *op, int res)
{
    if (io->delay_path == NULL || op->kind != IO_KIND_DISK)
        return false;
    uint64_t now = io_now_ns(io);
    io_delay_refresh(io, now);
    if (io->delay_ns == 0 && io->slow_head == NULL)
        return false;
    uint64_t due = now + io->delay_ns;
    if (io->slow_tail != NULL && io->slow_tail->timeout_ns_storage[0] > due)
        due = io->slow_tail->timeout_ns_storage[0];
    op->timeout_ns_storage[0] = due;
    op->timeout_ns_storage[1] = (uint64_t)(int64_t)res;
    op->next_pending = NULL;
    if (io->slow_tail != NULL)
        io->slow_tail->next_pending = op;
    else
        io->slow_head = op;
    io->slow_tail = op;
    return true;
}

/* Delivers the held completions that are due. Returns how many callbacks ran. */
static int io_delay_release(struct io *io, int budget)
{
    int ran = 0;
    uint64_t now = io->slow_head != NULL ? io_now_ns(io) : 0;
    while (io->slow_head != NULL && ran < budget &&
           io->slow_head->timeout_ns_storage[0] <= now) {
        struct io_op *op = io->slow_head;
        io->slow_head = op->next_pending;
        if (io->slow_head == NULL)
            io->slow_tail = NULL;
        RL_ASSERT(io->inflight > 0);
        io->inflight--;
        op->done(op, (int)(int64_t)op->timeout_ns_storage[1]);
        ran++;
    }
    return ran;
}

/* How long io_run may wait: no longer than until the first held completion is due. */
static uint64_t io_delay_bound(struct io *io, uint64_t timeout_ns)
{
    if (io->slow_head == NULL)
        return timeout_ns;
    uint64_t now = io_now_ns(io), due = io->slow_head->timeout_ns_storage[0];
    uint64_t left = due > now ? due - now : 0;
    return left < timeout_ns ? left : timeout_ns;
}

/* Delivers one completion: the layer's own wake op is re-armed, every other op is handed to its
 * owner. Returns 1 when a caller's callback ran. */
static int io_complete(struct io *io, struct io_op *op, int res)
{
    if (op == &io->wake_op) {
        /* -EAGAIN: woken with nothing to read (a racing reader); either way, re-arm. */
        io_wake_rearm(io);
        return 0;
    }
    if (io_delay_hold(io, op, res))
        return 0;
    RL_ASSERT(io->inflight > 0);
    io->inflight--;
    if (op->kind == IO_KIND_TIMEOUT && res == -ETIME)
        res = 0;
    op->done(op, res);
    return 1;
}

void io_deliver(struct io *io, struct io_op *op, int res)
{
    RL_ASSERT(io->inflight > 0);
    io->inflight--;
    op->done(op, res);
}

void io_post(struct io *io, struct io_op *op, int result)
{
    op->timeout_ns_storage[1] = (uint64_t)(int64_t)result;
    op->next_pending = NULL;
    pthread_mutex_lock(&io->post_mu);
    if (io->post_tail != NULL)
        io->post_tail->next_pending = op;
    else
        io->post_head = op;
    io->post_tail = op;
    __atomic_store_n(&io->posted, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&io->post_mu);
    if (io->sim == NULL)
        io_wake(io);
}

bool io_has_posted(struct io *io)
{
    return __atomic_load_n(&io->posted, __ATOMIC_ACQUIRE) != 0;
}

/* Runs the callbacks of ops posted by other threads. Returns how many ran. */
int io_run_posted(struct io *io)
{
    if (!io_has_posted(io))
        return 0;
    pthread_mutex_lock(&io->post_mu);
    struct io_op *op = io->post_head;
    io->post_head = io->post_tail = NULL;
    __atomic_store_n(&io->posted, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&io->post_mu);
    int ran = 0;
    while (op != NULL) {
        struct io_op *next = op->next_pending;
        op->done(op, (int)(int64_t)op->timeout_ns_storage[1]);
        op = next;
        ran++;
    }
    return ran;
}

int io_run(struct io *io, uint64_t timeout_ns)
{
    struct io_uring_cqe *cqe = NULL;
    int rc;
    int ran = 0;

    if (io->sim != NULL)
        return io_sim_run(io->sim, timeout_ns);
    timeout_ns = io_delay_bound(io, timeout_ns);
    if (io->deferred_head != NULL || io_has_posted(io)) {
        rc = io_uring_submit(&io->ring);
    } else if (timeout_ns == 0) {
        rc = io_uring_submit(&io->ring);
    } else if (timeout_ns == UINT64_MAX) {
        rc = io_uring_submit_and_wait(&io->ring, 1);
    } else {
        struct __kernel_timespec ts = {
            .tv_sec = (long long)(timeout_ns / 1000000000ull),
            .tv_nsec = (long long)(timeout_ns % 1000000000ull),
        };
        rc = io_uring_submit_and_wait_timeout(&io->ring, &cqe, 1, &ts, NULL);
        if (rc == -ETIME)
            rc = 0;
    }
    if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
        return rc;

    while (io->deferred_head != NULL && ran < IO_MAX_CALLBACKS_PER_RUN) {
        struct io_op *op = io->deferred_head;
        io->deferred_head = op->next_pending;
        if (io->deferred_head == NULL)
            io->deferred_tail = NULL;
        ran += io_complete(io, op, (int)(int64_t)op->timeout_ns_storage[1]);
    }
    /* Mark each completion seen before running its callback, so a callback may itself call
     * io_run (a blocking close draining its log) without seeing the same completion twice. */
    while (ran < IO_MAX_CALLBACKS_PER_RUN && io_uring_peek_cqe(&io->ring, &cqe) == 0) {
        struct io_op *op = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&io->ring, cqe);
        ran += io_complete(io, op, res);
    }
    ran += io_delay_release(io, IO_MAX_CALLBACKS_PER_RUN - ran);
    return ran + io_run_posted(io);
}

unsigned io_inflight(const struct io *io)
{
    return io->inflight;
}

void io_wake(struct io *io)
{
    if (io->sim != NULL)
        return; /* single-threaded: nothing can be blocked */
    uint64_t one = 1;
    /* write(2) is async-signal-safe; a full counter (EAGAIN) already means "wake". */
    ssize_t n = write(io->wake_fd, &one, sizeof(one));
    (void)n;
}
