/*
 * io_file: the I/O layer's synchronous file calls (contract in io.h). On the io_uring back-end
 * they are the plain system calls, safe from any thread; on the simulated one they act on its
 * in-memory files. Every call is counted (io_file_stats), so a test or benchmark can say how
 * many fsyncs or renames something cost.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"
#include "io/io_int.h"

static void count(struct io *io, uint64_t *field)
{
    (void)io;
    __atomic_fetch_add(field, 1, __ATOMIC_RELAXED);
}

/* A NULL io means the plain system calls, for code not yet given an io (counted apart). */
static struct io_file_stats g_null_stats;
#define STATS(io) ((io) != NULL ? io_stats_ptr(io) : &g_null_stats)
#define SIM(io) ((io) != NULL ? io_sim_of(io) : NULL)

int io_file_open(struct io *io, const char *path, int flags, unsigned mode)
{
    count(io, &STATS(io)->opens);
    if (SIM(io) != NULL)
        return io_sim_file_open(SIM(io), path, flags, mode);
    int fd = open(path, flags | O_CLOEXEC, (mode_t)mode);
    return fd < 0 ? -errno : fd;
}

int io_file_close(struct io *io, int fd)
{
    if (SIM(io) != NULL)
        return io_sim_file_close(SIM(io), fd);
    return close(fd) < 0 ? -errno : 0;
}

ssize_t io_file_pread(struct io *io, int fd, void *buf, size_t len, uint64_t off)
{
    count(io, &STATS(io)->reads);
    if (SIM(io) != NULL)
        return io_sim_file_pread(SIM(io), fd, buf, len, off);
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

ssize_t io_file_pwrite(struct io *io, int fd, const void *buf, size_t len, uint64_t off)
{
    count(io, &STATS(io)->writes);
    if (SIM(io) != NULL)
        return io_sim_file_pwrite(SIM(io), fd, buf, len, off);
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENOSPC; /* a regular file that takes nothing more is full */
        done += (size_t)n;
    }
    return (ssize_t)done;
}

int io_file_fdatasync(struct io *io, int fd)
{
    count(io, &STATS(io)->fdatasyncs);
    if (SIM(io) != NULL)
        return io_sim_file_sync(SIM(io), fd);
    return fdatasync(fd) < 0 ? -errno : 0;
}

int io_file_fsync(struct io *io, int fd)
{
    count(io, &STATS(io)->fsyncs);
    if (SIM(io) != NULL)
        return io_sim_file_sync(SIM(io), fd);
    return fsync(fd) < 0 ? -errno : 0;
}

int io_file_truncate(struct io *io, int fd, uint64_t size)
{
    count(io, &STATS(io)->truncates);
    if (SIM(io) != NULL)
        return io_sim_file_truncate(SIM(io), fd, size);
    return ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
}

int io_file_allocate(struct io *io, int fd, uint64_t off, uint64_t len)
{
    count(io, &STATS(io)->allocates);
    if (SIM(io) != NULL)
        return io_sim_file_allocate(SIM(io), fd, off, len);
    if (fallocate(fd, 0, (off_t)off, (off_t)len) < 0)
        return errno == ENOSYS ? -EOPNOTSUPP : -errno;
    return 0;
}

int io_file_size(struct io *io, int fd, uint64_t *size)
{
    if (SIM(io) != NULL)
        return io_sim_file_size(SIM(io), fd, size);
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return -errno;
    *size = (uint64_t)sb.st_size;
    return 0;
}

int io_path_size(struct io *io, const char *path, uint64_t *size)
{
    if (SIM(io) != NULL)
        return io_sim_path_size(SIM(io), path, size);
    struct stat sb;
    if (stat(path, &sb) < 0)
        return -errno;
    *size = (uint64_t)sb.st_size;
    return 0;
}

int io_path_rename(struct io *io, const char *from, const char *to)
{
    count(io, &STATS(io)->renames);
    if (SIM(io) != NULL)
        return io_sim_path_rename(SIM(io), from, to);
    return rename(from, to) < 0 ? -errno : 0;
}

int io_path_unlink(struct io *io, const char *path)
{
    count(io, &STATS(io)->unlinks);
    if (SIM(io) != NULL)
        return io_sim_path_unlink(SIM(io), path);
    return unlink(path) < 0 ? -errno : 0;
}

int io_dir_make(struct io *io, const char *path, unsigned mode)
{
    count(io, &STATS(io)->mkdirs);
    if (SIM(io) != NULL)
        return io_sim_dir_make(SIM(io), path);
    return mkdir(path, (mode_t)mode) < 0 ? -errno : 0;
}

int io_dir_remove(struct io *io, const char *path)
{
    count(io, &STATS(io)->unlinks);
    if (SIM(io) != NULL)
        return io_sim_dir_remove(SIM(io), path);
    return rmdir(path) < 0 ? -errno : 0;
}

int io_dir_sync(struct io *io, const char *path)
{
    count(io, &STATS(io)->dir_syncs);
    if (SIM(io) != NULL)
        return io_sim_dir_sync(SIM(io), path);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int io_fs_sync(struct io *io, const char *path)
{
    count(io, &STATS(io)->fs_syncs);
    if (SIM(io) != NULL)
        return io_sim_fs_sync(SIM(io));
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = syncfs(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int io_dir_list(struct io *io, const char *path, io_dir_entry_fn fn, void *ctx)
{
    if (SIM(io) != NULL)
        return io_sim_dir_list(SIM(io), path, fn, ctx);
    DIR *d = opendir(path);
    if (d == NULL)
        return -errno;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        rc = fn(ctx, e->d_name);
    }
    closedir(d);
    return rc;
}
