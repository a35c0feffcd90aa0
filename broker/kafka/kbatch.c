/*
 * kbatch: RecordBatch v2 <-> ringlog batch translation (see kbatch.h). The records section is
 * never re-encoded: on produce it stays in the request buffer (or is decompressed once and
 * optionally re-compressed with zstd), on fetch it is referenced where it is stored.
 */
#include "broker/kafka/kbatch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/kafka/crc32c.h"
#include "broker/kafka/kcodec.h"
#include "common/arena.h"
#include "common/batch.h"
#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"
#include "common/varint.h"

/* The Kafka CRC-32C of a stored batch, keyed by what determines it: the stored xxh3 checksum
 * (which covers every byte the Kafka CRC does: flags, counts, timestamps, producer fields and
 * records) and batch_len. Produce fills it with the CRC the client sent when the stored batch
 * is the client's (codec none or zstd, header unchanged), fetch reads it instead of a pass
 * over the records, and fills it on a miss for the next consumer. Direct-mapped, fixed size.
 * A wrong hit needs an xxh3-64 collision and can only make a consumer see a bad CRC. */
#define KBATCH_CRC_CACHE_SLOTS 65536u /* 1 MiB */
struct kbatch_crc_slot {
    uint64_t checksum;
    uint32_t batch_len;
    uint32_t crc;
};

struct kbatch_ctx {
    struct kcodec *codec;
    size_t max_batch_bytes;
    int zstd_level;
    uint8_t *scratch; /* decompressed records; max_batch_bytes, allocated at first need */
    struct kbatch_crc_slot *crcs; /* KBATCH_CRC_CACHE_SLOTS */
};

static void crc_cache_put(struct kbatch_ctx *ctx, uint64_t checksum, uint32_t batch_len,
                          uint32_t crc)
{
    ctx->crcs[checksum & (KBATCH_CRC_CACHE_SLOTS - 1)] =
        (struct kbatch_crc_slot){checksum, batch_len, crc};
}

static bool crc_cache_get(const struct kbatch_ctx *ctx, uint64_t checksum, uint32_t batch_len,
                          uint32_t *crc)
{
    const struct kbatch_crc_slot *s = &ctx->crcs[checksum & (KBATCH_CRC_CACHE_SLOTS - 1)];
    if (s->checksum != checksum || s->batch_len != batch_len || batch_len == 0)
        return false;
    *crc = s->crc;
    return true;
}

_Static_assert(RL_BATCH_HEADER_SIZE == KBATCH_HEADER_SIZE + 4,
               "in-place produce writes the ringlog header over the Kafka header and the "
               "4-byte records length before it");

struct kbatch_ctx *kbatch_ctx_create(size_t max_batch_bytes, int zstd_level)
{
    struct kbatch_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    ctx->codec = kcodec_create();
    ctx->crcs = calloc(KBATCH_CRC_CACHE_SLOTS, sizeof(*ctx->crcs));
    if (!ctx->codec || !ctx->crcs) {
        kcodec_destroy(ctx->codec);
        free(ctx->crcs);
        free(ctx);
        return NULL;
    }
    if (max_batch_bytes > RL_BATCH_MAX_BYTES || max_batch_bytes < RL_BATCH_HEADER_SIZE)
        max_batch_bytes = RL_BATCH_MAX_BYTES;
    ctx->max_batch_bytes = max_batch_bytes;
    ctx->zstd_level = zstd_level;
    return ctx;
}

void kbatch_ctx_destroy(struct kbatch_ctx *ctx)
{
    if (!ctx)
        return;
    kcodec_destroy(ctx->codec);
    free(ctx->scratch);
    free(ctx->crcs);
    free(ctx);
}

__attribute__((format(printf, 4, 5))) static int fail(int code, char *err, size_t errlen,
                                                       const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static void read_header(const uint8_t *b, struct kbatch_header *h)
{
    h->base_offset = (int64_t)kwire_load_be64(b + KBATCH_OFF_BASE_OFFSET);
    h->batch_length = (int32_t)kwire_load_be32(b + KBATCH_OFF_BATCH_LENGTH);
    h->leader_epoch = (int32_t)kwire_load_be32(b + KBATCH_OFF_LEADER_EPOCH);
    h->magic = (int8_t)b[KBATCH_OFF_MAGIC];
    h->crc = kwire_load_be32(b + KBATCH_OFF_CRC);
    h->attributes = (int16_t)kwire_load_be16(b + KBATCH_OFF_ATTRIBUTES);
    h->last_offset_delta = (int32_t)kwire_load_be32(b + KBATCH_OFF_LAST_OFFSET_DELTA);
    h->base_timestamp = (int64_t)kwire_load_be64(b + KBATCH_OFF_BASE_TIMESTAMP);
    h->max_timestamp = (int64_t)kwire_load_be64(b + KBATCH_OFF_MAX_TIMESTAMP);
    h->producer_id = (int64_t)kwire_load_be64(b + KBATCH_OFF_PRODUCER_ID);
    h->producer_epoch = (int16_t)kwire_load_be16(b + KBATCH_OFF_PRODUCER_EPOCH);
    h->base_sequence = (int32_t)kwire_load_be32(b + KBATCH_OFF_BASE_SEQUENCE);
    h->records_count = (int32_t)kwire_load_be32(b + KBATCH_OFF_RECORDS_COUNT);
}

/* Lengths and magic: what must hold before the CRC can even be computed. */
static int check_frame(const uint8_t *b, size_t len, struct kbatch_header *h, char *err,
                       size_t errlen)
{
    if (len < 17)
        return fail(RL_E_BATCH_SHORT, err, errlen, "records hold %zu bytes, less than a "
                    "RecordBatch header (61)", len);
    if (b[KBATCH_OFF_MAGIC] != KBATCH_MAGIC)
        return fail(RL_E_BATCH_MAGIC, err, errlen, "record batch magic %d: only RecordBatch "
                    "v2 (magic 2) is accepted; legacy message sets are not",
                    (int8_t)b[KBATCH_OFF_MAGIC]);
    if (len < KBATCH_HEADER_SIZE)
        return fail(RL_E_BATCH_SHORT, err, errlen, "records hold %zu bytes, less than a "
                    "RecordBatch header (61)", len);
    read_header(b, h);
    if (h->batch_length < KBATCH_LENGTH_OVERHEAD)
        return fail(RL_E_BATCH_LENGTH, err, errlen, "batchLength %d is below the minimum 49",
                    h->batch_length);
    if ((size_t)h->batch_length + 12 > len)
        return fail(RL_E_BATCH_SHORT, err, errlen, "batchLength %d needs %lld bytes but the "
                    "records hold %zu", h->batch_length, (long long)h->batch_length + 12, len);
    if ((size_t)h->batch_length + 12 < len)
        return fail(RL_E_BATCH_LENGTH, err, errlen, "records hold more than one batch (%zu "
                    "bytes after the first); Produce v3+ allows exactly one per partition",
                    len - ((size_t)h->batch_length + 12));
    if (len + 4 > RL_BATCH_MAX_BYTES)
        return fail(RL_E_BATCH_TOO_LARGE, err, errlen, "batch of %zu bytes exceeds the "
                    "broker's limit of %u", len, RL_BATCH_MAX_BYTES);
    return 0;
}

int kbatch_check(const uint8_t *batch, size_t len, struct kbatch_header *h, char *err,
                 size_t errlen)
{
    int rc = check_frame(batch, len, h, err, errlen);
    if (rc)
        return rc;
    uint32_t crc = crc32c_update(0, batch + KBATCH_CRC_FROM, len - KBATCH_CRC_FROM);
    if (crc != h->crc)
        return fail(RL_E_BATCH_CHECKSUM, err, errlen, "CRC-32C mismatch: the batch says "
                    "%08x, its bytes give %08x (damaged in flight?)", h->crc, crc);
    int codec = h->attributes & KBATCH_ATTR_CODEC_MASK;
    if (codec > KCODEC_ZSTD)
        return fail(RL_E_BATCH_CODEC, err, errlen, "unknown compression codec %d (known: 0 "
                    "none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)", codec);
    if (h->attributes & KBATCH_ATTR_TRANSACTIONAL)
        return fail(RL_E_INVALID_REQUEST, err, errlen, "transactional batches are not "
                    "supported (use an idempotent, non-transactional producer)");
    if (h->attributes & KBATCH_ATTR_CONTROL)
        return fail(RL_E_INVALID_REQUEST, err, errlen, "clients may not write control "
                    "batches");
    if (h->attributes & ~(KBATCH_ATTR_CODEC_MASK | KBATCH_ATTR_LOG_APPEND_TIME))
        return fail(RL_E_INVALID_REQUEST, err, errlen, "unknown batch attribute bits 0x%x",
                    (unsigned)(uint16_t)h->attributes);
    if (h->records_count < 1 || (uint32_t)h->records_count > RL_BATCH_MAX_RECORDS)
        return fail(RL_E_BATCH_COUNT, err, errlen, "recordsCount %d is outside 1..%u",
                    h->records_count, RL_BATCH_MAX_RECORDS);
    if (h->last_offset_delta != h->records_count - 1)
        return fail(RL_E_BATCH_OFFSETS, err, errlen, "lastOffsetDelta %d with %d records: "
                    "offsets in a batch must be contiguous", h->last_offset_delta,
                    h->records_count);
    return 0;
}

/* Writes the ringlog header for batch_len bytes at out (records already at out + 65) and its
 * checksum. */
static void write_ringlog_header(uint8_t *out, const struct kbatch_header *h, uint16_t flags,
                                 uint32_t batch_len)
{
    rl_store_le64(out + BATCH_OFF_BASE_OFFSET, 0);
    rl_store_le32(out + BATCH_OFF_BATCH_LEN, batch_len);
    rl_store_le32(out + BATCH_OFF_LEADER_EPOCH, 0);
    out[BATCH_OFF_MAGIC] = RL_BATCH_MAGIC;
    rl_store_le16(out + BATCH_OFF_FLAGS, flags);
    rl_store_le32(out + BATCH_OFF_RECORD_COUNT, (uint32_t)h->records_count);
    rl_store_le32(out + BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)h->last_offset_delta);
    rl_store_le64(out + BATCH_OFF_FIRST_TIMESTAMP, (uint64_t)h->base_timestamp);
    rl_store_le64(out + BATCH_OFF_MAX_TIMESTAMP, (uint64_t)h->max_timestamp);
    rl_store_le64(out + BATCH_OFF_PRODUCER_ID, (uint64_t)h->producer_id);
    rl_store_le16(out + BATCH_OFF_PRODUCER_EPOCH, (uint16_t)h->producer_epoch);
    rl_store_le32(out + BATCH_OFF_BASE_SEQUENCE, (uint32_t)h->base_sequence);
    rl_store_le64(out + BATCH_OFF_CHECKSUM, batch_compute_checksum(out, batch_len));
    struct batch_header check;
    RL_ASSERT(batch_header_decode(out, batch_len, &check) == 0);
}

/* A zigzag varint of at most 10 bytes from p[*pos..end); 0, or -1 when malformed. */
static int read_varlong(const uint8_t *p, size_t end, size_t *pos, int64_t *out)
{
    uint64_t u = 0;
    for (unsigned shift = 0; shift < 70 && *pos < end; shift += 7) {
        uint8_t b = p[(*pos)++];
        u |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            return 0;
        }
    }
    return -1;
}

/* Some clients (sarama 1.22) send maxTimestamp -1; Kafka's broker sets it from the records,
 * and so does this, so the batch passes the produce service's check that it matches them.
 * Records that do not walk leave it as sent: validation then says what is wrong. */
static void fix_max_timestamp(struct kbatch_header *h, const uint8_t *rec, size_t len)
{
    if (h->max_timestamp >= 0)
        return;
    int64_t max_delta = 0;
    size_t pos = 0;
    for (int32_t i = 0; i < h->records_count; i++) {
        int64_t rlen, delta;
        if (read_varlong(rec, len, &pos, &rlen) || rlen < 2 || (uint64_t)rlen > len - pos)
            return;
        size_t end = pos + (size_t)rlen, p = pos + 1; /* past the attributes byte */
        if (read_varlong(rec, end, &p, &delta))
            return;
        if (i == 0 || delta > max_delta)
            max_delta = delta;
        pos = end;
    }
    if (h->base_timestamp >= 0 && max_delta >= 0 && max_delta <= INT64_MAX - h->base_timestamp)
        h->max_timestamp = h->base_timestamp + max_delta;
}

static int ensure_scratch(struct kbatch_ctx *ctx)
{
    if (!ctx->scratch)
        ctx->scratch = malloc(ctx->max_batch_bytes);
    return ctx->scratch ? 0 : -ENOMEM;
}

/* gzip, snappy or lz4: decompress, then store re-compressed with zstd when that is on and
 * shrinks the records, uncompressed otherwise. */
static int convert(struct kbatch_ctx *ctx, struct kbatch_header *h, const uint8_t *records,
                   size_t rlen, struct arena *a, uint8_t **out, size_t *out_len, char *err,
                   size_t errlen)
{
    int codec = h->attributes & KBATCH_ATTR_CODEC_MASK;
    if (ensure_scratch(ctx))
        return fail(RL_E_FULL, err, errlen, "no memory to decompress a %s batch",
                    kcodec_name(codec));
    size_t cap = ctx->max_batch_bytes - RL_BATCH_HEADER_SIZE;
    int64_t n = kcodec_decompress(ctx->codec, codec, records, rlen, ctx->scratch, cap);
    if (n == RL_E_BATCH_TOO_LARGE)
        return fail(RL_E_BATCH_TOO_LARGE, err, errlen, "%s records decompress to more than "
                    "the broker's batch limit of %zu bytes", kcodec_name(codec), cap);
    if (n < 0)
        return fail((int)n, err, errlen, "%s records failed to decompress (%s)",
                    kcodec_name(codec), rl_error_name((int)n));
    if (n == 0)
        return fail(RL_E_BATCH_COUNT, err, errlen, "%s records decompress to nothing but "
                    "recordsCount is %d", kcodec_name(codec), h->records_count);
    size_t raw = (size_t)n, bound = raw;
    fix_max_timestamp(h, ctx->scratch, raw);
    if (ctx->zstd_level > 0)
        bound = kcodec_compress_bound(KCODEC_ZSTD, raw);
    uint8_t *b = arena_alloc(a, RL_BATCH_HEADER_SIZE + bound);
    if (!b)
        return fail(RL_E_FULL, err, errlen, "request memory limit reached converting a %s "
                    "batch", kcodec_name(codec));
    uint16_t flags = (uint16_t)(h->attributes & KBATCH_ATTR_LOG_APPEND_TIME);
    size_t body = raw;
    int64_t z = -1;
    if (ctx->zstd_level > 0)
        z = kcodec_compress(ctx->codec, KCODEC_ZSTD, ctx->zstd_level, ctx->scratch, raw,
                            b + RL_BATCH_HEADER_SIZE, bound);
    if (z > 0 && (size_t)z < raw) {
        flags |= BATCH_CODEC_ZSTD;
        body = (size_t)z;
    } else {
        memcpy(b + RL_BATCH_HEADER_SIZE, ctx->scratch, raw);
    }
    write_ringlog_header(b, h, flags, (uint32_t)(RL_BATCH_HEADER_SIZE + body));
    *out = b;
    *out_len = RL_BATCH_HEADER_SIZE + body;
    return 0;
}

int kbatch_from_kafka(struct kbatch_ctx *ctx, uint8_t *kafka, size_t len, size_t room_before,
                      struct arena *a, uint8_t **out, size_t *out_len, struct kbatch_header *h,
                      char *err, size_t errlen)
{
    int rc = kbatch_check(kafka, len, h, err, errlen);
    if (rc)
        return rc;
    int codec = h->attributes & KBATCH_ATTR_CODEC_MASK;
    const uint8_t *records = kafka + KBATCH_HEADER_SIZE;
    size_t rlen = len - KBATCH_HEADER_SIZE;
    if (codec != KCODEC_NONE && codec != KCODEC_ZSTD)
        return convert(ctx, h, records, rlen, a, out, out_len, err, errlen);
    if (codec == KCODEC_ZSTD && rlen == 0)
        return fail(RL_E_BATCH_DECOMPRESS, err, errlen, "zstd records section is empty");
    int64_t sent_max_timestamp = h->max_timestamp;
    if (codec == KCODEC_NONE)
        fix_max_timestamp(h, records, rlen);
    uint8_t *b;
    if (room_before >= RL_BATCH_HEADER_SIZE - KBATCH_HEADER_SIZE) {
        b = kafka - (RL_BATCH_HEADER_SIZE - KBATCH_HEADER_SIZE); /* records stay in place */
    } else {
        b = arena_alloc(a, RL_BATCH_HEADER_SIZE + rlen);
        if (!b)
            return fail(RL_E_FULL, err, errlen, "request memory limit reached");
        memcpy(b + RL_BATCH_HEADER_SIZE, records, rlen);
    }
    uint16_t flags = (uint16_t)(h->attributes & (KBATCH_ATTR_CODEC_MASK |
                                                 KBATCH_ATTR_LOG_APPEND_TIME));
    write_ringlog_header(b, h, flags, (uint32_t)(RL_BATCH_HEADER_SIZE + rlen));
    /* The stored batch's Kafka view is the client's batch (attributes are codec and timestamp
     * type only, kbatch_check): its CRC is the one the client sent, unless maxTimestamp was
     * set here. */
    if (h->max_timestamp == sent_max_timestamp)
        crc_cache_put(ctx, rl_load_le64(b + BATCH_OFF_CHECKSUM),
                      (uint32_t)(RL_BATCH_HEADER_SIZE + rlen), h->crc);
    *out = b;
    *out_len = RL_BATCH_HEADER_SIZE + rlen;
    return 0;
}

/* The header fields of h, all but the CRC. */
static void write_kafka_fields(uint8_t hdr[KBATCH_HEADER_SIZE], const struct kbatch_header *h,
                               size_t records_len)
{
    kwire_store_be64(hdr + KBATCH_OFF_BASE_OFFSET, (uint64_t)h->base_offset);
    kwire_store_be32(hdr + KBATCH_OFF_BATCH_LENGTH,
                     (uint32_t)(KBATCH_LENGTH_OVERHEAD + records_len));
    kwire_store_be32(hdr + KBATCH_OFF_LEADER_EPOCH, (uint32_t)h->leader_epoch);
    hdr[KBATCH_OFF_MAGIC] = KBATCH_MAGIC;
    kwire_store_be16(hdr + KBATCH_OFF_ATTRIBUTES, (uint16_t)h->attributes);
    kwire_store_be32(hdr + KBATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)h->last_offset_delta);
    kwire_store_be64(hdr + KBATCH_OFF_BASE_TIMESTAMP, (uint64_t)h->base_timestamp);
    kwire_store_be64(hdr + KBATCH_OFF_MAX_TIMESTAMP, (uint64_t)h->max_timestamp);
    kwire_store_be64(hdr + KBATCH_OFF_PRODUCER_ID, (uint64_t)h->producer_id);
    kwire_store_be16(hdr + KBATCH_OFF_PRODUCER_EPOCH, (uint16_t)h->producer_epoch);
    kwire_store_be32(hdr + KBATCH_OFF_BASE_SEQUENCE, (uint32_t)h->base_sequence);
    kwire_store_be32(hdr + KBATCH_OFF_RECORDS_COUNT, (uint32_t)h->records_count);
}

static uint32_t kafka_crc(const uint8_t hdr[KBATCH_HEADER_SIZE], const uint8_t *records,
                          size_t records_len)
{
    uint32_t crc = crc32c_update(0, hdr + KBATCH_CRC_FROM, KBATCH_HEADER_SIZE - KBATCH_CRC_FROM);
    return crc32c_update(crc, records, records_len);
}

void kbatch_write_header(uint8_t hdr[KBATCH_HEADER_SIZE], const struct kbatch_header *h,
                         const uint8_t *records, size_t records_len)
{
    write_kafka_fields(hdr, h, records_len);
    kwire_store_be32(hdr + KBATCH_OFF_CRC, kafka_crc(hdr, records, records_len));
}

/* The Kafka view of a stored batch's header. */
static void kafka_view(const struct batch_header *s, uint16_t flags, struct kbatch_header *k)
{
    *k = (struct kbatch_header){
        .base_offset = (int64_t)s->base_offset,
        .leader_epoch = (int32_t)s->leader_epoch,
        .magic = KBATCH_MAGIC,
        .attributes = (int16_t)flags,
        .last_offset_delta = (int32_t)s->last_offset_delta,
        .base_timestamp = s->first_timestamp,
        .max_timestamp = s->max_timestamp,
        .producer_id = s->producer_id,
        .producer_epoch = s->producer_epoch,
        .base_sequence = s->base_sequence,
        .records_count = (int32_t)s->record_count,
    };
}

/* Counts the whole batches at the front of [stored, stored + len). */
static int count_batches(const uint8_t *stored, size_t len, size_t *whole_bytes)
{
    size_t pos = 0;
    int n = 0;
    while (len - pos >= RL_BATCH_HEADER_SIZE) {
        struct batch_header h;
        int rc = batch_header_decode(stored + pos, len - pos, &h);
        if (rc)
            return rc;
        /* A response holds at most INT32_MAX record bytes; stop before that. */
        if (h.batch_len > len - pos || pos + h.batch_len > INT32_MAX)
            break;
        pos += h.batch_len;
        n++;
    }
    *whole_bytes = pos;
    return n;
}

/* Decompresses a stored zstd records section into the arena for a client without zstd. */
static int down_convert(struct kbatch_ctx *ctx, const uint8_t **records, size_t *rlen,
                        struct arena *a)
{
    if (ensure_scratch(ctx))
        return RL_E_FULL;
    int64_t n = kcodec_decompress(ctx->codec, KCODEC_ZSTD, *records, *rlen, ctx->scratch,
                                  ctx->max_batch_bytes);
    if (n < 0)
        return (int)n;
    uint8_t *copy = arena_alloc(a, (size_t)n);
    if (!copy)
        return RL_E_FULL;
    memcpy(copy, ctx->scratch, (size_t)n);
    *records = copy;
    *rlen = (size_t)n;
    return 0;
}

/* The control type a stored control batch names: its one record's key is version 0 (i16) and
 * the type (i16), big-endian, as Kafka's control records are (replication/raftlog.c writes
 * Raft's no-op and configuration entries so). KBATCH_CONTROL_TYPE_OTHER when it does not
 * parse as that. */
static uint16_t stored_control_type(const uint8_t *records, size_t rlen)
{
    size_t pos = 0, n;
    int32_t v32;
    int64_t v64;
    if (!(n = varint_read32(records, rlen, &v32)) || v32 < 0 || (size_t)v32 > rlen - n)
        return KBATCH_CONTROL_TYPE_OTHER;
    rlen = n + (size_t)v32; /* the first record's end */
    pos = n + 1;            /* its attributes */
    if (pos > rlen || !(n = varint_read64(records + pos, rlen - pos, &v64)))
        return KBATCH_CONTROL_TYPE_OTHER;
    pos += n;
    if (!(n = varint_read32(records + pos, rlen - pos, &v32)))
        return KBATCH_CONTROL_TYPE_OTHER;
    pos += n;
    if (!(n = varint_read32(records + pos, rlen - pos, &v32)) || v32 != 4 ||
        rlen - pos - n < 4 || records[pos + n] != 0 || records[pos + n + 1] != 0)
        return KBATCH_CONTROL_TYPE_OTHER;
    return (uint16_t)(records[pos + n + 2] << 8 | records[pos + n + 3]);
}

size_t kbatch_control_record(uint8_t out[KBATCH_CONTROL_RECORD_MAX], int32_t offset_delta,
                             uint16_t type)
{
    uint8_t body[KBATCH_CONTROL_RECORD_MAX];
    size_t k = 0;
    body[k++] = 0;                             /* attributes */
    k += varint_write64(body + k, 0);          /* timestamp delta */
    k += varint_write32(body + k, offset_delta);
    k += varint_write32(body + k, 4);          /* key: version 0, type */
    body[k++] = 0;
    body[k++] = 0;
    body[k++] = (uint8_t)(type >> 8);
    body[k++] = (uint8_t)type;
    k += varint_write32(body + k, 6);          /* value: version 0, coordinator epoch 0 */
    memset(body + k, 0, 6);
    k += 6;
    k += varint_write32(body + k, 0);          /* no headers */
    size_t n = varint_write32(out, (int32_t)k);
    memcpy(out + n, body, k);
    return n + k;
}

/* A stored control batch (a replicated log's Raft entry) as a Kafka control batch: the
 * control attribute, no producer, its offsets and timestamps, and one control record at its
 * last offset (Kafka's transaction-marker layout, with the stored type), built in the arena
 * in place of the stored record, whose value (a Raft configuration) is not for clients.
 * Clients skip the record but store its offset, so their position and committed offset
 * reach the high watermark. Fills hdr and *rec / *rlen; returns 0 or RL_E_FULL. */
static int serve_control(const struct batch_header *s, const uint8_t *stored_records,
                         size_t stored_rlen, struct arena *a, uint8_t hdr[KBATCH_HEADER_SIZE],
                         const uint8_t **rec, size_t *rlen)
{
    uint8_t *r = arena_alloc(a, KBATCH_CONTROL_RECORD_MAX);
    if (!r)
        return RL_E_FULL;
    *rlen = kbatch_control_record(r, (int32_t)s->last_offset_delta,
                                  stored_control_type(stored_records, stored_rlen));
    *rec = r;
    struct kbatch_header k;
    kafka_view(s, KBATCH_ATTR_CONTROL, &k);
    k.producer_id = -1;
    k.producer_epoch = -1;
    k.base_sequence = -1;
    k.records_count = 1;
    write_kafka_fields(hdr, &k, *rlen);
    kwire_store_be32(hdr + KBATCH_OFF_CRC, kafka_crc(hdr, r, *rlen));
    return 0;
}

/* A stored data batch as a Kafka batch: its header in hdr, *records / *rlen its records
 * (decompressed into the arena for a client without zstd). The CRC comes from the cache when
 * the records are served as stored. Returns 0, RL_E_FULL or a decompression error. */
static int serve_data(struct kbatch_ctx *ctx, const struct batch_header *s, int allow_zstd,
                      struct arena *a, uint8_t hdr[KBATCH_HEADER_SIZE], const uint8_t **records,
                      size_t *rlen)
{
    uint16_t flags = s->flags & (BATCH_FLAG_CODEC_MASK | BATCH_FLAG_LOG_APPEND_TIME);
    bool as_stored = true;
    if ((flags & BATCH_FLAG_CODEC_MASK) == BATCH_CODEC_ZSTD && !allow_zstd) {
        int rc = down_convert(ctx, records, rlen, a);
        if (rc)
            return rc;
        flags &= (uint16_t)~BATCH_FLAG_CODEC_MASK;
        as_stored = false;
    }
    struct kbatch_header k;
    kafka_view(s, flags, &k);
    write_kafka_fields(hdr, &k, *rlen);
    uint32_t crc;
    if (!as_stored) {
        crc = kafka_crc(hdr, *records, *rlen);
    } else if (!crc_cache_get(ctx, s->checksum, s->batch_len, &crc)) {
        crc = kafka_crc(hdr, *records, *rlen);
        crc_cache_put(ctx, s->checksum, s->batch_len, crc);
    }
    kwire_store_be32(hdr + KBATCH_OFF_CRC, crc);
    return 0;
}

int kbatch_serve(struct kbatch_ctx *ctx, const uint8_t *stored, size_t len, int allow_zstd,
                 int with_control, struct arena *a, struct kmsg_records *out)
{
    *out = (struct kmsg_records){.data = NULL, .len = 0};
    size_t whole;
    int n = count_batches(stored, len, &whole);
    if (n <= 0)
        return n;
    struct iovec *iov = arena_alloc(a, (size_t)n * 2 * sizeof(*iov));
    uint8_t *hdrs = arena_alloc(a, (size_t)n * KBATCH_HEADER_SIZE);
    if (!iov || !hdrs)
        return RL_E_FULL;
    size_t pos = 0, total = 0;
    int served = 0;
    for (int i = 0; i < n; i++) {
        struct batch_header s;
        batch_header_decode(stored + pos, len - pos, &s); /* checked by count_batches */
        const uint8_t *records = stored + pos + RL_BATCH_HEADER_SIZE;
        size_t rlen = s.batch_len - RL_BATCH_HEADER_SIZE;
        pos += s.batch_len;
        uint8_t *hdr = hdrs + (size_t)served * KBATCH_HEADER_SIZE;
        int rc;
        /* A replicated log's control batches (Raft no-ops, configurations) are served as
         * Kafka control batches, or left out (a gap in the offsets) for a client that would
         * hand their records to the application (kbatch.h). */
        if (!(s.flags & BATCH_FLAG_CONTROL))
            rc = serve_data(ctx, &s, allow_zstd, a, hdr, &records, &rlen);
        else if (with_control)
            rc = serve_control(&s, records, rlen, a, hdr, &records, &rlen);
        else
            continue;
        if (rc)
            return rc;
        iov[2 * served] = (struct iovec){hdr, KBATCH_HEADER_SIZE};
        iov[2 * served + 1] = (struct iovec){(void *)(uintptr_t)records, rlen};
        total += KBATCH_HEADER_SIZE + rlen;
        served++;
    }
    if (total > INT32_MAX)
        return RL_E_BATCH_TOO_LARGE; /* only after down-conversion growth */
    if (served)
        *out = (struct kmsg_records){.len = (int32_t)total, .iov = iov, .iovcnt = 2 * served};
    return served;
}

int64_t kbatch_build_kafka(struct kbatch_ctx *ctx, const struct kbatch_header *h, int codec,
                           int level, const uint8_t *records, size_t records_len, uint8_t *out,
                           size_t cap)
{
    if (cap < KBATCH_HEADER_SIZE)
        return RL_E_BATCH_TOO_LARGE;
    int64_t n = kcodec_compress(ctx->codec, codec, level, records, records_len,
                                out + KBATCH_HEADER_SIZE, cap - KBATCH_HEADER_SIZE);
    if (n < 0)
        return n;
    struct kbatch_header k = *h;
    int wire_codec = codec == KCODEC_SNAPPY_XERIAL ? KCODEC_SNAPPY : codec;
    k.attributes = (int16_t)((k.attributes & ~KBATCH_ATTR_CODEC_MASK) | wire_codec);
    kbatch_write_header(out, &k, out + KBATCH_HEADER_SIZE, (size_t)n);
    return KBATCH_HEADER_SIZE + n;
}
