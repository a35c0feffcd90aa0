/*
 * metalog: see metalog.h. The whole file is read at open (it is small: one record per topic
 * change) and replayed from memory.
 */
#include "broker/meta/metalog.h"
#include "common/endian.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "common/err.h"
#include "common/log.h"

#define METALOG_MAGIC "RLMETA01"
#define METALOG_MAGIC_BYTES 8u
#define METALOG_REC_HEADER 12u

struct metalog {
    int fd;
    uint64_t size;
    bool failed;
    char path[4096];
};

static uint64_t metalog_checksum(const uint8_t *len_field, const uint8_t *payload, uint32_t len)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, len_field, 4);
    XXH3_64bits_update(&st, payload, len);
    return XXH3_64bits_digest(&st);
}

static int metalog_write_all(int fd, const uint8_t *buf, size_t len, uint64_t pos)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, buf, len, (off_t)pos);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
        pos += (uint64_t)n;
    }
    return 0;
}

static int metalog_read_file(int fd, uint8_t **out, uint64_t *len)
{
    struct stat stt;
    if (fstat(fd, &stt))
        return -errno;
    uint8_t *buf = malloc((size_t)stt.st_size + 1);
    if (!buf)
        return -ENOMEM;
    uint64_t got = 0;
    while (got < (uint64_t)stt.st_size) {
        ssize_t n = pread(fd, buf + got, (size_t)stt.st_size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? -errno : -EIO;
            free(buf);
            return e;
        }
        got += (uint64_t)n;
    }
    *out = buf;
    *len = got;
    return 0;
}

/* Replays records from buf; returns the position after the last good record in *good_end. */
static int metalog_replay(struct metalog *ml, const uint8_t *buf, uint64_t len,
                          metalog_replay_fn fn, void *ctx, uint64_t *good_end,
                          struct metalog_stats *stats)
{
    uint64_t pos = METALOG_MAGIC_BYTES;
    while (len - pos >= METALOG_REC_HEADER) {
        uint32_t plen = rl_load_le32(buf + pos);
        uint64_t sum = rl_load_le64(buf + pos + 4);
        if (plen > METALOG_MAX_RECORD_BYTES || len - pos - METALOG_REC_HEADER < plen)
            break;
        const uint8_t *payload = buf + pos + METALOG_REC_HEADER;
        if (metalog_checksum(buf + pos, payload, plen) != sum) {
            RL_CORRUPT(ml->path, (int64_t)pos, -1, "metadata record checksum mismatch");
            break;
        }
        int rc = fn(ctx, payload, plen);
        if (rc)
            return rc;
        stats->records++;
        pos += METALOG_REC_HEADER + plen;
    }
    *good_end = pos;
    return 0;
}

static int metalog_init_file(struct metalog *ml)
{
    int rc = metalog_write_all(ml->fd, (const uint8_t *)METALOG_MAGIC, METALOG_MAGIC_BYTES, 0);
    if (!rc && fdatasync(ml->fd))
        rc = -errno;
    ml->size = METALOG_MAGIC_BYTES;
    return rc;
}

int metalog_open(const char *path, metalog_replay_fn fn, void *ctx, struct metalog **out,
                 struct metalog_stats *stats)
{
    struct metalog_stats local = {0};
    uint8_t *buf = NULL;
    uint64_t len = 0, good_end = 0;
    int rc;
    struct metalog *ml = calloc(1, sizeof(*ml));
    if (!ml)
        return -ENOMEM;
    snprintf(ml->path, sizeof(ml->path), "%s", path);
    ml->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (ml->fd < 0) {
        rc = -errno;
        goto fail;
    }
    rc = metalog_read_file(ml->fd, &buf, &len);
    if (rc)
        goto fail;
    if (len < METALOG_MAGIC_BYTES) {
        /* New, or torn while writing the magic: nothing was ever acknowledged from it. */
        if (ftruncate(ml->fd, 0) || (rc = metalog_init_file(ml)) != 0) {
            rc = rc ? rc : -errno;
            goto fail;
        }
        goto done;
    }
    if (memcmp(buf, METALOG_MAGIC, METALOG_MAGIC_BYTES)) {
        rc = RL_CORRUPT(path, 0, -1, "metadata log has a bad magic (not a ringlog metadata log)");
        goto fail;
    }
    rc = metalog_replay(ml, buf, len, fn, ctx, &good_end, &local);
    if (rc)
        goto fail;
    if (good_end < len) {
        RL_WARN("metadata log %s: cutting %llu bytes of torn tail at position %llu", path,
                (unsigned long long)(len - good_end), (unsigned long long)good_end);
        if (ftruncate(ml->fd, (off_t)good_end) || fdatasync(ml->fd)) {
            rc = -errno;
            goto fail;
        }
        local.bytes_truncated = len - good_end;
    }
    ml->size = good_end;
done:
    free(buf);
    if (stats)
        *stats = local;
    *out = ml;
    return 0;
fail:
    free(buf);
    if (ml->fd >= 0)
        close(ml->fd);
    free(ml);
    return rc;
}

int metalog_append(struct metalog *ml, const uint8_t *payload, uint32_t len)
{
    if (ml->failed)
        return RL_E_LOG_FAILED;
    if (len > METALOG_MAX_RECORD_BYTES)
        return RL_E_INVALID_ARGUMENT;
    uint8_t hdr[METALOG_REC_HEADER];
    rl_store_le32(hdr, len);
    rl_store_le64(hdr + 4, metalog_checksum(hdr, payload, len));
    int rc = metalog_write_all(ml->fd, hdr, sizeof(hdr), ml->size);
    if (!rc)
        rc = metalog_write_all(ml->fd, payload, len, ml->size + sizeof(hdr));
    if (!rc && fdatasync(ml->fd))
        rc = -errno;
    if (rc) {
        ml->failed = true;
        RL_ERROR("metadata log %s: append failed (%s); refusing further changes", ml->path,
                 rl_strerror(rc));
        return rc;
    }
    ml->size += sizeof(hdr) + len;
    return 0;
}

uint64_t metalog_size(const struct metalog *ml)
{
    return ml->size;
}

void metalog_close(struct metalog *ml)
{
    if (!ml)
        return;
    close(ml->fd);
    free(ml);
}
