/*
 * bench_disk: raw sequential-write bandwidth of the disk under a directory, the physical limit
 * that `ringlog bench` reports its produce throughput against. io_uring keeps qd writes of
 * block_bytes in flight on an O_DIRECT file (no page cache), preallocated first so the figure
 * is the device's, not the allocator's; one fdatasync at the end makes the last bytes count.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_disk.h"

#define MAX_QD 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Keeps qd writes in flight until total bytes are written; returns 0 or -errno. */
static int write_all(struct io_uring *ring, int fd, void **bufs, size_t total, size_t block,
                     unsigned qd)
{
    size_t next = 0, done = 0;
    unsigned inflight = 0;
    while (done < total) {
        while (inflight < qd && next < total) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            if (!sqe)
                break;
            io_uring_prep_write(sqe, fd, bufs[inflight % qd], (unsigned)block, next);
            next += block;
            inflight++;
        }
        int rc = io_uring_submit_and_wait(ring, 1);
        if (rc < 0)
            return rc;
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(ring, &cqe) == 0) {
            int res = cqe->res;
            io_uring_cqe_seen(ring, cqe);
            if (res < 0)
                return res;
            if ((size_t)res != block)
                return -EIO;
            done += block;
            inflight--;
        }
    }
    return fdatasync(fd) ? -errno : 0;
}

double bench_disk_write_mbps(const char *dir, size_t total, size_t block, unsigned qd,
                             char *err, size_t errlen)
{
    char path[4096];
    void *bufs[MAX_QD] = {0};
    struct io_uring ring;
    bool ring_ok = false;
    double result;
    int fd = -1, rc;
    if (qd == 0 || qd > MAX_QD || block == 0 || total < block)
        return -EINVAL;
    total -= total % block;
    snprintf(path, sizeof(path), "%s/bench-disk.XXXXXX", dir);
    fd = mkostemp(path, O_DIRECT);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot create an O_DIRECT file in %s: %s", dir, strerror(-rc));
        return rc;
    }
    unlink(path);
    rc = fallocate(fd, 0, 0, (off_t)total) ? -errno : 0;
    for (unsigned i = 0; rc == 0 && i < qd; i++) {
        if (posix_memalign(&bufs[i], 4096, block))
            rc = -ENOMEM;
        else
            memset(bufs[i], (int)(0x5A + i), block);
    }
    if (rc == 0) {
        rc = io_uring_queue_init(qd * 2, &ring, 0);
        ring_ok = rc == 0;
    }
    double t0 = now_s();
    if (rc == 0)
        rc = write_all(&ring, fd, bufs, total, block, qd);
    double secs = now_s() - t0;
    if (rc) {
        snprintf(err, errlen, "raw disk write in %s failed: %s", dir, strerror(-rc));
        result = rc;
    } else {
        result = (double)total / 1e6 / secs;
    }
    if (ring_ok)
        io_uring_queue_exit(&ring);
    for (unsigned i = 0; i < qd; i++)
        free(bufs[i]);
    close(fd);
    return result;
}
