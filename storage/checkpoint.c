/*
 * checkpoint: atomic, checksummed small state files (contract in checkpoint.h). Used by the
 * partition log for its log-start offset and damaged-range records, by the storage for its
 * clean-shutdown record, and by the broker for producer snapshots.
 */
#include "storage/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"

#define CHECKPOINT_MAGIC 0x50434c52u
#define CHECKPOINT_VERSION 1u
#define CHECKPOINT_HEADER 12u

_Static_assert(CHECKPOINT_OVERHEAD == CHECKPOINT_HEADER + 8, "checkpoint overhead");

size_t checkpoint_encode(const void *data, size_t len, uint8_t *out)
{
    rl_store_le32(out, CHECKPOINT_MAGIC);
    rl_store_le32(out + 4, CHECKPOINT_VERSION);
    rl_store_le32(out + 8, (uint32_t)len);
    if (len > 0)
        memcpy(out + CHECKPOINT_HEADER, data, len);
    rl_store_le64(out + CHECKPOINT_HEADER + len, XXH3_64bits(out, CHECKPOINT_HEADER + len));
    return CHECKPOINT_HEADER + len + 8;
}

int checkpoint_decode(const uint8_t *img, size_t size, const uint8_t **payload)
{
    if (size < CHECKPOINT_OVERHEAD || size > CHECKPOINT_OVERHEAD + CHECKPOINT_LARGE_MAX)
        return RL_E_CORRUPT;
    uint32_t len = rl_load_le32(img + 8);
    if (rl_load_le32(img) != CHECKPOINT_MAGIC || rl_load_le32(img + 4) != CHECKPOINT_VERSION ||
        (uint64_t)CHECKPOINT_OVERHEAD + len != size)
        return RL_E_CORRUPT;
    if (XXH3_64bits(img, CHECKPOINT_HEADER + len) != rl_load_le64(img + CHECKPOINT_HEADER + len))
        return RL_E_CORRUPT;
    *payload = img + CHECKPOINT_HEADER;
    return (int)len;
}

int checkpoint_save(struct io *io, const char *dir, const char *name, const void *data,
                    size_t len, unsigned flags)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (len > ((flags & CHECKPOINT_LARGE) ? CHECKPOINT_LARGE_MAX : CHECKPOINT_MAX_PAYLOAD))
        return RL_E_INVALID_ARGUMENT;
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    uint8_t *buf = malloc(len + CHECKPOINT_OVERHEAD);
    if (buf == NULL)
        return -ENOMEM;
    size_t total = checkpoint_encode(data, len, buf);
    int fd = io_file_open(io, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = fd < 0 ? fd : 0;
    if (rc == 0) {
        ssize_t n = io_file_pwrite(io, fd, buf, total, 0);
        rc = n < 0 ? (int)n : 0;
        if (rc == 0 && (flags & CHECKPOINT_DURABLE))
            rc = io_file_fdatasync(io, fd);
        io_file_close(io, fd);
        if (rc == 0)
            rc = io_path_rename(io, tmp, path);
        if (rc == 0 && (flags & CHECKPOINT_DURABLE))
            rc = io_dir_sync(io, dir);
        else if (rc != 0)
            io_path_unlink(io, tmp);
    }
    free(buf);
    return rc;
}

int checkpoint_load(struct io *io, const char *dir, const char *name, void *out, size_t cap)
{
    char path[PATH_MAX];
    uint8_t *buf = NULL;
    uint64_t size = 0;
    const uint8_t *payload;
    int rc;
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = io_file_open(io, path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    rc = io_file_size(io, fd, &size);
    if (rc < 0)
        goto out;
    if (size < CHECKPOINT_OVERHEAD || size > CHECKPOINT_OVERHEAD + CHECKPOINT_LARGE_MAX) {
        rc = RL_CORRUPT(path, 0, -1, "checkpoint has an impossible size");
        goto out;
    }
    if (size > CHECKPOINT_OVERHEAD + cap) {
        rc = -ENOBUFS;
        goto out;
    }
    buf = malloc(size);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    ssize_t n = io_file_pread(io, fd, buf, size, 0);
    if (n != (ssize_t)size) {
        rc = n < 0 ? (int)n : -EIO;
        goto out;
    }
    rc = checkpoint_decode(buf, size, &payload);
    if (rc < 0) {
        rc = RL_CORRUPT(path, 0, -1, "checkpoint damaged (header or checksum)");
        goto out;
    }
    if ((size_t)rc > cap) {
        rc = -ENOBUFS;
        goto out;
    }
    memcpy(out, payload, (size_t)rc);
out:
    free(buf);
    io_file_close(io, fd);
    return rc;
}

int checkpoint_delete(struct io *io, const char *dir, const char *name, int sync)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int rc = io_path_unlink(io, path);
    if (rc == -ENOENT)
        return 0;
    if (rc == 0 && sync)
        rc = io_dir_sync(io, dir);
    return rc;
}

int checkpoint_write(const char *dir, const char *name, const void *data, size_t len)
{
    return checkpoint_save(NULL, dir, name, data, len, CHECKPOINT_DURABLE);
}

int checkpoint_read(const char *dir, const char *name, void *buf, size_t cap)
{
    return checkpoint_load(NULL, dir, name, buf, cap);
}

int checkpoint_remove(const char *dir, const char *name)
{
    return checkpoint_delete(NULL, dir, name, 1);
}

int checkpoint_sync_dir(const char *dir)
{
    return io_dir_sync(NULL, dir);
}
