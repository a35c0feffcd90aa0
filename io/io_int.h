/*
 * io_int: what the I/O layer's files share and nothing else includes: the hooks between the
 * dispatching front (io.c), the synchronous file calls (io_file.c) and the simulated back-end
 * (io_sim.c).
 */
#ifndef RL_IO_IO_INT_H
#define RL_IO_IO_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "io/io.h"
#include "io/io_sim.h"

enum io_sim_kind {
    IOS_READ,
    IOS_WRITE,
    IOS_WRITEV,
    IOS_FDATASYNC,
    IOS_FALLOCATE,
    IOS_CLOSE,
    IOS_TIMEOUT,
    IOS_CANCEL,
    IOS_WORK,
    IOS_UNSUPPORTED, /* sockets and splice: the simulation has no network */
};

/* The parameters of one prepared op, as the simulation needs them. */
struct io_sim_req {
    enum io_sim_kind kind;
    int fd;
    void *buf;
    const void *cbuf;
    size_t len;
    uint64_t offset;
    const struct iovec *iov;
    int iovcnt;
    uint64_t timeout_ns;
    struct io_op *target;
    io_work_fn work;
};

struct io_sim;

/* io.c */
struct io_sim *io_sim_of(struct io *io);
struct io_file_stats *io_stats_ptr(struct io *io);
/* Completes an op the simulation ran: counts it out of io_inflight and calls its callback. */
void io_deliver(struct io *io, struct io_op *op, int res);
/* Callbacks of ops that other threads completed through io_post. */
int io_run_posted(struct io *io);
bool io_has_posted(struct io *io);

/* io_sim.c */
struct io_sim *io_sim_new(struct io *io, const struct io_sim_config *cfg);
void io_sim_free(struct io_sim *s);
uint64_t io_sim_now_ns(struct io_sim *s);
int64_t io_sim_wall_ms(struct io_sim *s);
void io_sim_prep(struct io_sim *s, struct io_op *op, const struct io_sim_req *req,
                 unsigned flags);
int io_sim_run(struct io_sim *s, uint64_t timeout_ns);

int io_sim_file_open(struct io_sim *s, const char *path, int flags, unsigned mode);
int io_sim_file_close(struct io_sim *s, int fd);
ssize_t io_sim_file_pread(struct io_sim *s, int fd, void *buf, size_t len, uint64_t off);
ssize_t io_sim_file_pwrite(struct io_sim *s, int fd, const void *buf, size_t len, uint64_t off);
int io_sim_file_sync(struct io_sim *s, int fd);
int io_sim_file_truncate(struct io_sim *s, int fd, uint64_t size);
int io_sim_file_allocate(struct io_sim *s, int fd, uint64_t off, uint64_t len);
int io_sim_file_size(struct io_sim *s, int fd, uint64_t *size);
int io_sim_path_size(struct io_sim *s, const char *path, uint64_t *size);
int io_sim_path_rename(struct io_sim *s, const char *from, const char *to);
int io_sim_path_unlink(struct io_sim *s, const char *path);
int io_sim_dir_make(struct io_sim *s, const char *path);
int io_sim_dir_remove(struct io_sim *s, const char *path);
int io_sim_dir_sync(struct io_sim *s, const char *path);
int io_sim_fs_sync(struct io_sim *s);
int io_sim_dir_list(struct io_sim *s, const char *path, io_dir_entry_fn fn, void *ctx);

#endif
