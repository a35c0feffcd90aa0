/*
 * checkpoint: atomic, checksummed small state files (contract in checkpoint.h). Used by the
 * partition log for its log-start offset and clean-shutdown marker.
 */
#include "storage/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/err.h"
#include "common/log.h"

#define CHECKPOINT_MAGIC 0x50434c52u
#define CHECKPOINT_VERSION 1u
#define CHECKPOINT_HEADER 12u

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int checkpoint_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int checkpoint_write(const char *dir, const char *name, const void *data, size_t len)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    uint8_t *buf = NULL;
    int fd = -1, rc;
    if (len > CHECKPOINT_MAX_PAYLOAD)
        return RL_E_INVALID_ARGUMENT;
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    size_t total = CHECKPOINT_HEADER + len + 8;
    buf = malloc(total);
    if (buf == NULL)
        return -ENOMEM;
    put_u32(buf, CHECKPOINT_MAGIC);
    put_u32(buf + 4, CHECKPOINT_VERSION);
    put_u32(buf + 8, (uint32_t)len);
    if (len > 0)
        memcpy(buf + CHECKPOINT_HEADER, data, len);
    uint64_t sum = XXH3_64bits(buf, CHECKPOINT_HEADER + len);
    for (int i = 0; i < 8; i++)
        buf[CHECKPOINT_HEADER + len + (size_t)i] = (uint8_t)(sum >> (8 * i));

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    rc = write_all(fd, buf, total);
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc == 0)
        rc = checkpoint_sync_dir(dir);
    else
        unlink(tmp);
out:
    free(buf);
    return rc;
}

int checkpoint_read(const char *dir, const char *name, void *out, size_t cap)
{
    char path[PATH_MAX];
    uint8_t *buf = NULL;
    int rc;
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < (off_t)(CHECKPOINT_HEADER + 8) ||
        size > (off_t)(CHECKPOINT_HEADER + 8 + CHECKPOINT_MAX_PAYLOAD)) {
        rc = RL_CORRUPT(path, 0, -1, "checkpoint has an impossible size");
        goto out;
    }
    buf = malloc((size_t)size);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if (pread(fd, buf, (size_t)size, 0) != size) {
        rc = -EIO;
        goto out;
    }
    uint32_t len = get_u32(buf + 8);
    uint64_t want = 0;
    if (get_u32(buf) != CHECKPOINT_MAGIC || get_u32(buf + 4) != CHECKPOINT_VERSION ||
        (off_t)(CHECKPOINT_HEADER + (uint64_t)len + 8) != size) {
        rc = RL_CORRUPT(path, 0, -1, "checkpoint header is damaged");
        goto out;
    }
    for (int i = 7; i >= 0; i--)
        want = want << 8 | buf[CHECKPOINT_HEADER + len + (size_t)i];
    if (XXH3_64bits(buf, CHECKPOINT_HEADER + len) != want) {
        rc = RL_CORRUPT(path, 0, -1, "checkpoint checksum mismatch");
        goto out;
    }
    if (len > cap) {
        rc = -ENOBUFS;
        goto out;
    }
    memcpy(out, buf + CHECKPOINT_HEADER, len);
    rc = (int)len;
out:
    free(buf);
    close(fd);
    return rc;
}

int checkpoint_remove(const char *dir, const char *name)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    if (unlink(path) < 0)
        return errno == ENOENT ? 0 : -errno;
    return checkpoint_sync_dir(dir);
}
