/*
 * ctlckpt: see ctlckpt.h. The file is small (at most CTL_MAX_BROKERS entries) and written
 * every CTLCKPT_EVERY applied controller entries, so a blocking write on the loop is cheap
 * next to the entries' own appends.
 */
#include "broker/cluster/ctlckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "common/endian.h"
#include "common/err.h"

_Static_assert(CTLCKPT_BROKER_BYTES == 24 + 64 + 64, "broker entry layout");
#define CTLCKPT_MAX_BYTES (CTLCKPT_HEADER_BYTES + CTL_MAX_BROKERS * CTLCKPT_BROKER_BYTES + 8)

void ctlckpt_put_broker(uint8_t *p, const struct ctl_broker *b)
{
    memset(p, 0, CTLCKPT_BROKER_BYTES);
    rl_store_le32(p, b->id);
    rl_store_le64(p + 4, b->incarnation);
    rl_store_le64(p + 12, b->epoch);
    rl_store_le16(p + 20, b->port);
    rl_store_le16(p + 22, b->kafka_port);
    memcpy(p + 24, b->host, strnlen(b->host, 63));
    memcpy(p + 88, b->kafka_host, strnlen(b->kafka_host, 63));
}

void ctlckpt_get_broker(const uint8_t *p, struct ctl_broker *b)
{
    memset(b, 0, sizeof(*b));
    b->id = rl_load_le32(p);
    b->incarnation = rl_load_le64(p + 4);
    b->epoch = rl_load_le64(p + 12);
    b->port = rl_load_le16(p + 20);
    b->kafka_port = rl_load_le16(p + 22);
    memcpy(b->host, p + 24, 63);
    memcpy(b->kafka_host, p + 88, 63);
}

static int ctlckpt_write_file(const char *path, const uint8_t *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = write(fd, buf, len) == (ssize_t)len ? 0 : -EIO;
    if (rc == 0 && fdatasync(fd))
        rc = -errno;
    close(fd);
    return rc;
}

int ctlckpt_write(const char *dir, const struct ctlckpt *ck)
{
    static uint8_t buf[CTLCKPT_MAX_BYTES]; /* the loop's thread only */
    uint32_t nb = ck->n_brokers < CTL_MAX_BROKERS ? ck->n_brokers : CTL_MAX_BROKERS;
    rl_store_le32(buf, CTLCKPT_MAGIC);
    rl_store_le32(buf + 4, CTLCKPT_VERSION);
    rl_store_le64(buf + 8, ck->applied);
    rl_store_le64(buf + 16, ck->meta_seen);
    rl_store_le32(buf + 24, nb);
    size_t len = CTLCKPT_HEADER_BYTES;
    for (uint32_t i = 0; i < nb; i++, len += CTLCKPT_BROKER_BYTES)
        ctlckpt_put_broker(buf + len, &ck->brokers[i]);
    rl_store_le64(buf + len, XXH3_64bits(buf, len));
    len += 8;
    char path[PATH_MAX + 32], tmp[PATH_MAX + 48];
    snprintf(path, sizeof(path), "%s/%s", dir, CTLCKPT_FILE);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int rc = ctlckpt_write_file(tmp, buf, len);
    if (rc == 0 && rename(tmp, path))
        rc = -errno;
    if (rc)
        return rc;
    /* The rename is durable only once the directory is. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    rc = fsync(dfd) ? -errno : 0;
    close(dfd);
    return rc;
}

int ctlckpt_read(const char *dir, struct ctlckpt *out)
{
    static uint8_t buf[CTLCKPT_MAX_BYTES + 1];
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", dir, CTLCKPT_FILE);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    ssize_t n = read(fd, buf, sizeof(buf));
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    if (n < CTLCKPT_HEADER_BYTES + 8 || rl_load_le32(buf) != CTLCKPT_MAGIC ||
        rl_load_le32(buf + 4) != CTLCKPT_VERSION)
        return RL_E_CORRUPT;
    uint32_t nb = rl_load_le32(buf + 24);
    size_t len = CTLCKPT_HEADER_BYTES + (size_t)nb * CTLCKPT_BROKER_BYTES;
    if (nb > CTL_MAX_BROKERS || (size_t)n != len + 8 ||
        rl_load_le64(buf + len) != XXH3_64bits(buf, len))
        return RL_E_CORRUPT;
    memset(out, 0, sizeof(*out));
    out->applied = rl_load_le64(buf + 8);
    out->meta_seen = rl_load_le64(buf + 16);
    out->n_brokers = nb;
    for (uint32_t i = 0; i < nb; i++)
        ctlckpt_get_broker(buf + CTLCKPT_HEADER_BYTES + (size_t)i * CTLCKPT_BROKER_BYTES,
                           &out->brokers[i]);
    return 1;
}

size_t ctlckpt_chunk_bytes(uint32_t n_brokers, size_t records_len)
{
    return CTLCKPT_CHUNK_HEADER_BYTES + (size_t)n_brokers * CTLCKPT_BROKER_BYTES + records_len +
           8;
}

size_t ctlckpt_chunk_encode(uint8_t *buf, uint64_t req_id, int status, const struct ctlckpt *ck,
                            uint64_t first, const uint8_t *recs, size_t recs_len, uint32_t n)
{
    uint32_t nb = status ? 0 : ck->n_brokers;
    if (status)
        recs_len = n = 0;
    rl_store_le64(buf, req_id);
    rl_store_le32(buf + 8, (uint32_t)status);
    rl_store_le64(buf + 12, status ? 0 : ck->applied);
    rl_store_le64(buf + 20, status ? 0 : ck->meta_seen);
    rl_store_le64(buf + 28, first);
    rl_store_le32(buf + 36, n);
    rl_store_le32(buf + 40, nb);
    size_t at = CTLCKPT_CHUNK_HEADER_BYTES;
    for (uint32_t i = 0; i < nb; i++, at += CTLCKPT_BROKER_BYTES)
        ctlckpt_put_broker(buf + at, &ck->brokers[i]);
    if (recs_len)
        memcpy(buf + at, recs, recs_len);
    at += recs_len;
    rl_store_le64(buf + at, XXH3_64bits(buf, at));
    return at + 8;
}

/* Checks the n records at p (end: the byte after them); 0 or RL_E_CORRUPT. */
static int ctlckpt_chunk_check_records(const uint8_t *p, const uint8_t *end, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if ((size_t)(end - p) < CTLCKPT_CHUNK_RECORD_HEADER)
            return RL_E_CORRUPT;
        uint32_t len = rl_load_le32(p);
        if ((size_t)(end - p) - CTLCKPT_CHUNK_RECORD_HEADER < len)
            return RL_E_CORRUPT;
        XXH3_state_t st;
        XXH3_64bits_reset(&st);
        XXH3_64bits_update(&st, p, 4);
        XXH3_64bits_update(&st, p + CTLCKPT_CHUNK_RECORD_HEADER, len);
        if (XXH3_64bits_digest(&st) != rl_load_le64(p + 4))
            return RL_E_CORRUPT;
        p += CTLCKPT_CHUNK_RECORD_HEADER + (size_t)len;
    }
    return p == end ? 0 : RL_E_CORRUPT;
}

int ctlckpt_chunk_decode(const uint8_t *buf, size_t len, struct ctlckpt_chunk *out,
                         struct ctlckpt *ck)
{
    if (len < CTLCKPT_CHUNK_HEADER_BYTES + 8 ||
        rl_load_le64(buf + len - 8) != XXH3_64bits(buf, len - 8))
        return RL_E_CORRUPT;
    uint32_t nb = rl_load_le32(buf + 40);
    size_t at = CTLCKPT_CHUNK_HEADER_BYTES + (size_t)nb * CTLCKPT_BROKER_BYTES;
    if (nb > CTL_MAX_BROKERS || len - 8 < at)
        return RL_E_CORRUPT;
    memset(out, 0, sizeof(*out));
    out->req_id = rl_load_le64(buf);
    out->status = (int)(int32_t)rl_load_le32(buf + 8);
    out->first = rl_load_le64(buf + 28);
    out->n_records = rl_load_le32(buf + 36);
    out->records = buf + at;
    out->records_len = len - 8 - at;
    int rc = ctlckpt_chunk_check_records(out->records, buf + len - 8, out->n_records);
    if (rc)
        return rc;
    memset(ck, 0, sizeof(*ck));
    ck->applied = rl_load_le64(buf + 12);
    ck->meta_seen = rl_load_le64(buf + 20);
    ck->n_brokers = nb;
    for (uint32_t i = 0; i < nb; i++)
        ctlckpt_get_broker(buf + CTLCKPT_CHUNK_HEADER_BYTES + (size_t)i * CTLCKPT_BROKER_BYTES,
                           &ck->brokers[i]);
    return 0;
}
