/*
 * batch: see batch.h for the layout and the contracts. This file is on every data path (the
 * producer builds, the broker and recovery validate, the consumer iterates), so the rules are:
 *
 *  - Hostile bytes: every length read from a batch is checked against the bytes that remain
 *    before it is used; arithmetic on lengths is done in 64 bits on values already bounded by
 *    RL_BATCH_MAX_BYTES, so it cannot wrap; every loop is bounded by the record count, which is
 *    itself bounded by the bytes available (a record takes at least RECORD_MIN_BYTES).
 *  - One error code per kind of damage, so a log line or a response says what was wrong.
 *  - No allocation after create: the builder writes records straight into one buffer sized for
 *    the largest batch, zstd compresses into a second one; the reader decompresses into one
 *    scratch buffer. zstd contexts are created once and reused.
 *  - Speed: adding a large value is one memcpy, finishing is one xxh3 pass (plus zstd when
 *    configured), validating is one xxh3 pass; xxHash is inlined so no call goes through the
 *    shared library, and large batches use an AVX2 build of XXH3 when the CPU has it
 *    (batch_xxh3.h).
 */
#include "common/batch.h"
#include "common/endian.h"
#include "common/batch_xxh3.h"
#include "common/err.h"
#include "common/log.h"
#include "common/varint.h"

#include <endian.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

_Static_assert(BATCH_OFF_RECORDS == RL_BATCH_HEADER_SIZE, "header layout");
_Static_assert(BATCH_OFF_BASE_SEQUENCE + 4 == RL_BATCH_HEADER_SIZE, "header layout");
_Static_assert(RL_BATCH_MAX_BYTES <= INT32_MAX, "batch lengths must fit the int return");

/* The smallest possible record: length, attributes, timestamp delta, offset delta, null key,
 * null value and header count, one byte each. */
#define RECORD_MIN_BYTES 7u
/* The smallest possible record header: an empty key and a null value. */
#define RECORD_HEADER_MIN_BYTES 2u

/* --- header access -------------------------------------------------------------------------- */

int batch_header_decode(const uint8_t *buf, size_t len, struct batch_header *h)
{
    if (len < RL_BATCH_HEADER_SIZE)
        return RL_E_BATCH_SHORT;
    h->base_offset = rl_load_le64(buf + BATCH_OFF_BASE_OFFSET);
    h->batch_len = rl_load_le32(buf + BATCH_OFF_BATCH_LEN);
    h->leader_epoch = rl_load_le32(buf + BATCH_OFF_LEADER_EPOCH);
    h->checksum = rl_load_le64(buf + BATCH_OFF_CHECKSUM);
    h->magic = buf[BATCH_OFF_MAGIC];
    h->flags = rl_load_le16(buf + BATCH_OFF_FLAGS);
    h->record_count = rl_load_le32(buf + BATCH_OFF_RECORD_COUNT);
    h->last_offset_delta = rl_load_le32(buf + BATCH_OFF_LAST_OFFSET_DELTA);
    h->first_timestamp = (int64_t)rl_load_le64(buf + BATCH_OFF_FIRST_TIMESTAMP);
    h->max_timestamp = (int64_t)rl_load_le64(buf + BATCH_OFF_MAX_TIMESTAMP);
    h->producer_id = (int64_t)rl_load_le64(buf + BATCH_OFF_PRODUCER_ID);
    h->producer_epoch = (int16_t)rl_load_le16(buf + BATCH_OFF_PRODUCER_EPOCH);
    h->base_sequence = (int32_t)rl_load_le32(buf + BATCH_OFF_BASE_SEQUENCE);

    if (h->magic != RL_BATCH_MAGIC)
        return RL_E_BATCH_MAGIC;
    if (h->batch_len < RL_BATCH_HEADER_SIZE || h->batch_len > RL_BATCH_MAX_BYTES)
        return RL_E_BATCH_LENGTH;
    if (h->record_count < 1 || h->record_count > RL_BATCH_MAX_RECORDS ||
        h->last_offset_delta != h->record_count - 1)
        return RL_E_BATCH_COUNT;
    unsigned codec = h->flags & BATCH_FLAG_CODEC_MASK;
    if (codec != BATCH_CODEC_NONE && codec != BATCH_CODEC_ZSTD)
        return RL_E_BATCH_CODEC;
    return 0;
}

uint32_t batch_peek_len(const uint8_t *buf)
{
    return rl_load_le32(buf + BATCH_OFF_BATCH_LEN);
}

void batch_stamp(uint8_t *batch, uint64_t base_offset, uint32_t leader_epoch)
{
    rl_store_le64(batch + BATCH_OFF_BASE_OFFSET, base_offset);
    rl_store_le32(batch + BATCH_OFF_LEADER_EPOCH, leader_epoch);
}

uint64_t batch_compute_checksum(const uint8_t *batch, uint32_t batch_len)
{
    if (batch_len < RL_BATCH_CHECKSUM_FROM)
        return 0;
    const uint8_t *p = batch + RL_BATCH_CHECKSUM_FROM;
    size_t n = batch_len - RL_BATCH_CHECKSUM_FROM;
#if defined(__x86_64__) && defined(RL_HAVE_XXH3_AVX2)
    /* Small batches gain nothing from the wider kernel; large ones hash about twice as fast. */
    if (n >= 1024 && __builtin_cpu_supports("avx2"))
        return batch_xxh3_avx2(p, n);
#endif
    return XXH3_64bits(p, n);
}

int batch_validate(const uint8_t *buf, size_t len, struct batch_header *h)
{
    struct batch_header tmp;
    struct batch_header *hp = h ? h : &tmp;
    int rc = batch_header_decode(buf, len, hp);
    if (rc)
        return rc;
    if (len < hp->batch_len)
        return RL_E_BATCH_SHORT;
    if (batch_compute_checksum(buf, hp->batch_len) != hp->checksum)
        return RL_E_BATCH_CHECKSUM;
    return 0;
}

/* --- builder ---------------------------------------------------------------------------------- */

struct batch_builder {
    uint8_t *buf;      /* header + uncompressed records; cap bytes */
    uint8_t *zbuf;     /* header + compressed records; cap bytes; zstd only */
    size_t cap;        /* max_batch_bytes */
    ZSTD_CCtx *cctx;   /* zstd only */
    enum batch_codec codec;
    size_t records_len; /* uncompressed record bytes after the header */
    uint32_t count;
    int64_t first_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    uint32_t zstd_skip; /* batches left to send uncompressed after one that did not shrink */
};

struct batch_builder *batch_builder_create(size_t max_batch_bytes, enum batch_codec codec,
                                           int level)
{
    if (max_batch_bytes < RL_BATCH_HEADER_SIZE + RECORD_MIN_BYTES ||
        max_batch_bytes > RL_BATCH_MAX_BYTES)
        return NULL;
    if (codec != BATCH_CODEC_NONE && codec != BATCH_CODEC_ZSTD)
        return NULL;
    if (codec == BATCH_CODEC_ZSTD && (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()))
        return NULL;
    struct batch_builder *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->cap = max_batch_bytes;
    b->codec = codec;
    b->buf = malloc(max_batch_bytes);
    if (!b->buf)
        goto fail;
    if (codec == BATCH_CODEC_ZSTD) {
        b->zbuf = malloc(max_batch_bytes);
        b->cctx = ZSTD_createCCtx();
        if (!b->zbuf || !b->cctx)
            goto fail;
        /* zstd itself reads level 0 as its default level. Its frame checksum is left off:
         * the batch checksum already covers the compressed bytes. */
        if (ZSTD_isError(ZSTD_CCtx_setParameter(b->cctx, ZSTD_c_compressionLevel, level)) ||
            ZSTD_isError(ZSTD_CCtx_setParameter(b->cctx, ZSTD_c_checksumFlag, 0)))
            goto fail;
    }
    batch_builder_reset(b, -1, -1, -1);
    return b;
fail:
    batch_builder_destroy(b);
    return NULL;
}

void batch_builder_destroy(struct batch_builder *b)
{
    if (!b)
        return;
    ZSTD_freeCCtx(b->cctx);
    free(b->zbuf);
    free(b->buf);
    free(b);
}

void batch_builder_reset(struct batch_builder *b, int64_t producer_id, int16_t producer_epoch,
                         int32_t base_sequence)
{
    b->records_len = 0;
    b->count = 0;
    b->first_timestamp = 0;
    b->max_timestamp = 0;
    b->producer_id = producer_id;
    b->producer_epoch = producer_epoch;
    b->base_sequence = base_sequence;
}

uint32_t batch_builder_count(const struct batch_builder *b)
{
    return b->count;
}

size_t batch_builder_bytes(const struct batch_builder *b)
{
    return b->records_len;
}

/* Encoded size of a length-prefixed byte string (-1 length when null). */
static inline size_t bytes_field_size(const void *p, size_t len)
{
    return p ? varint_size32((int32_t)len) + len : 1;
}

/* Checks a record's arguments and computes the size of its body (everything after the length
 * varint). Lengths are first bounded by cap (<= RL_BATCH_MAX_BYTES), so the sums cannot wrap.
 * Returns 0, RL_E_BATCH_TOO_LARGE, or RL_E_INVALID_ARGUMENT. */
static int record_body_size(const struct batch_record_in *rec, size_t cap, int64_t ts_delta,
                            uint32_t offset_delta, size_t *body_out)
{
    if ((!rec->key && rec->key_len) || (!rec->value && rec->value_len) ||
        (!rec->headers && rec->header_count))
        return RL_E_INVALID_ARGUMENT;
    if (rec->key_len > cap || rec->value_len > cap || rec->header_count > cap)
        return RL_E_BATCH_TOO_LARGE;
    size_t body = 1 + varint_size64(ts_delta) + varint_size32((int32_t)offset_delta) +
                  bytes_field_size(rec->key, rec->key_len) +
                  bytes_field_size(rec->value, rec->value_len) +
                  varint_size32((int32_t)rec->header_count);
    for (uint32_t i = 0; i < rec->header_count; i++) {
        const struct batch_record_header *hd = &rec->headers[i];
        if (hd->key_len < 0 || (!hd->key && hd->key_len) || (!hd->value && hd->value_len > 0) ||
            (hd->value && hd->value_len < 0))
            return RL_E_INVALID_ARGUMENT;
        if ((size_t)hd->key_len > cap || (hd->value && (size_t)hd->value_len > cap))
            return RL_E_BATCH_TOO_LARGE;
        body += varint_size32(hd->key_len) + (size_t)hd->key_len +
                bytes_field_size(hd->value, hd->value ? (size_t)hd->value_len : 0);
        if (body > cap)
            return RL_E_BATCH_TOO_LARGE;
    }
    if (body > cap)
        return RL_E_BATCH_TOO_LARGE;
    *body_out = body;
    return 0;
}

static inline uint8_t *put_bytes(uint8_t *p, const void *src, size_t len)
{
    if (!src) {
        p += varint_write32(p, -1);
        return p;
    }
    p += varint_write32(p, (int32_t)len);
    if (len)
        memcpy(p, src, len);
    return p + len;
}

int batch_builder_add(struct batch_builder *b, const struct batch_record_in *rec)
{
    if (!rec)
        return RL_E_INVALID_ARGUMENT;
    int64_t first_ts = b->count ? b->first_timestamp : rec->timestamp;
    int64_t ts_delta;
    if (__builtin_sub_overflow(rec->timestamp, first_ts, &ts_delta))
        return RL_E_INVALID_ARGUMENT;
    if (b->count >= RL_BATCH_MAX_RECORDS)
        return RL_E_FULL;
    size_t body;
    int rc = record_body_size(rec, b->cap, ts_delta, b->count, &body);
    if (rc)
        return rc;
    size_t rec_size = varint_size32((int32_t)body) + body;
    if (RL_BATCH_HEADER_SIZE + rec_size > b->cap)
        return RL_E_BATCH_TOO_LARGE;
    if (RL_BATCH_HEADER_SIZE + b->records_len + rec_size > b->cap)
        return RL_E_FULL;

    uint8_t *p = b->buf + RL_BATCH_HEADER_SIZE + b->records_len;
    p += varint_write32(p, (int32_t)body);
    *p++ = 0; /* attributes: unused in v2 records */
    p += varint_write64(p, ts_delta);
    p += varint_write32(p, (int32_t)b->count);
    p = put_bytes(p, rec->key, rec->key_len);
    p = put_bytes(p, rec->value, rec->value_len);
    p += varint_write32(p, (int32_t)rec->header_count);
    for (uint32_t i = 0; i < rec->header_count; i++) {
        const struct batch_record_header *hd = &rec->headers[i];
        p += varint_write32(p, hd->key_len);
        if (hd->key_len)
            memcpy(p, hd->key, (size_t)hd->key_len);
        p += hd->key_len;
        p = put_bytes(p, hd->value, hd->value ? (size_t)hd->value_len : 0);
    }
    RL_ASSERT(p == b->buf + RL_BATCH_HEADER_SIZE + b->records_len + rec_size);

    if (b->count == 0) {
        b->first_timestamp = rec->timestamp;
        b->max_timestamp = rec->timestamp;
    } else if (rec->timestamp > b->max_timestamp) {
        b->max_timestamp = rec->timestamp;
    }
    b->records_len += rec_size;
    b->count++;
    return 0;
}

static void header_write(uint8_t *out, const struct batch_builder *b, uint32_t batch_len,
                         uint16_t flags)
{
    rl_store_le64(out + BATCH_OFF_BASE_OFFSET, 0);
    rl_store_le32(out + BATCH_OFF_BATCH_LEN, batch_len);
    rl_store_le32(out + BATCH_OFF_LEADER_EPOCH, 0);
    out[BATCH_OFF_MAGIC] = RL_BATCH_MAGIC;
    rl_store_le16(out + BATCH_OFF_FLAGS, flags);
    rl_store_le32(out + BATCH_OFF_RECORD_COUNT, b->count);
    rl_store_le32(out + BATCH_OFF_LAST_OFFSET_DELTA, b->count - 1);
    rl_store_le64(out + BATCH_OFF_FIRST_TIMESTAMP, (uint64_t)b->first_timestamp);
    rl_store_le64(out + BATCH_OFF_MAX_TIMESTAMP, (uint64_t)b->max_timestamp);
    rl_store_le64(out + BATCH_OFF_PRODUCER_ID, (uint64_t)b->producer_id);
    rl_store_le16(out + BATCH_OFF_PRODUCER_EPOCH, (uint16_t)b->producer_epoch);
    rl_store_le32(out + BATCH_OFF_BASE_SEQUENCE, (uint32_t)b->base_sequence);
    rl_store_le64(out + BATCH_OFF_CHECKSUM, batch_compute_checksum(out, batch_len));
}

int batch_builder_finish(struct batch_builder *b, const uint8_t **out)
{
    if (b->count == 0)
        return RL_E_BATCH_EMPTY;
    uint8_t *dst = b->buf;
    size_t section = b->records_len;
    uint16_t flags = BATCH_CODEC_NONE;
    if (b->codec == BATCH_CODEC_ZSTD && b->zstd_skip > 0) {
        b->zstd_skip--;
    } else if (b->codec == BATCH_CODEC_ZSTD && section > 1) {
        /* Give zstd one byte less than the input: if the result does not fit, compression
         * does not pay, and the records go out as they are. */
        size_t n = ZSTD_compress2(b->cctx, b->zbuf + RL_BATCH_HEADER_SIZE, section - 1,
                                  b->buf + RL_BATCH_HEADER_SIZE, section);
        if (!ZSTD_isError(n)) {
            dst = b->zbuf;
            section = n;
            flags = BATCH_CODEC_ZSTD;
        }
        /* Incompressible records (already compressed or encrypted payloads) cost a full
         * compression pass per batch for nothing: after a batch that saved less than
         * 1/BATCH_ZSTD_MIN_SAVING, the next BATCH_ZSTD_GIVE_UP batches go out as they are,
         * then zstd is tried again (the records may have changed). */
        if (ZSTD_isError(n) || n > b->records_len - b->records_len / BATCH_ZSTD_MIN_SAVING)
            b->zstd_skip = BATCH_ZSTD_GIVE_UP;
    }
    uint32_t batch_len = (uint32_t)(RL_BATCH_HEADER_SIZE + section);
    header_write(dst, b, batch_len, flags);
    *out = dst;
    return (int)batch_len;
}

int batch_builder_finish_swap(struct batch_builder *b, uint8_t *fresh, uint8_t **out)
{
    const uint8_t *done;
    int len = batch_builder_finish(b, &done);
    if (len < 0)
        return len;
    uint8_t **slot = done == b->buf ? &b->buf : &b->zbuf;
    *out = *slot;
    *slot = fresh;
    return len;
}

size_t batch_builder_capacity(const struct batch_builder *b)
{
    return b->cap;
}

/* --- reader ----------------------------------------------------------------------------------- */

#define READER_DETAIL_BYTES 256

struct batch_reader {
    uint8_t *scratch;  /* decompressed records section */
    size_t scratch_cap;
    ZSTD_DCtx *dctx;
    struct batch_header h;
    const uint8_t *section; /* start of the (decompressed) records section */
    const uint8_t *pos;     /* next record */
    const uint8_t *end;     /* end of the records section */
    uint32_t index;         /* records returned so far */
    int err;                /* sticky: once a batch is found bad, iteration stops there */
    /* Of the record last returned, for batch_validate_full (the public record leaves them out:
     * consumers have no use for them). */
    uint8_t attributes;
    int64_t ts_delta;
    char detail[READER_DETAIL_BYTES]; /* batch_reader_detail; written only on failure */
};

struct batch_reader *batch_reader_create(size_t max_records_bytes)
{
    struct batch_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (max_records_bytes > RL_BATCH_MAX_BYTES)
        max_records_bytes = RL_BATCH_MAX_BYTES;
    r->scratch_cap = max_records_bytes;
    r->scratch = malloc(max_records_bytes ? max_records_bytes : 1);
    r->dctx = ZSTD_createDCtx();
    if (!r->scratch || !r->dctx) {
        batch_reader_destroy(r);
        return NULL;
    }
    r->err = RL_E_INVALID_ARGUMENT; /* nothing open yet */
    snprintf(r->detail, sizeof(r->detail), "no batch is open");
    return r;
}

void batch_reader_destroy(struct batch_reader *r)
{
    if (!r)
        return;
    ZSTD_freeDCtx(r->dctx);
    free(r->scratch);
    free(r);
}

const char *batch_reader_detail(const struct batch_reader *r)
{
    return r->detail;
}

/* Makes code the reader's sticky error and says where it was found. Returns code. */
__attribute__((format(printf, 3, 4))) static int reader_fail(struct batch_reader *r, int code,
                                                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
    r->err = code;
    return code;
}

/* Describes why batch_validate refused the batch at open. */
static int reader_fail_header(struct batch_reader *r, int rc, size_t len)
{
    const struct batch_header *h = &r->h;
    switch (rc) {
    case RL_E_BATCH_SHORT:
        if (len < RL_BATCH_HEADER_SIZE)
            return reader_fail(r, rc, "%zu bytes, fewer than the %d-byte header", len,
                               RL_BATCH_HEADER_SIZE);
        return reader_fail(r, rc, "%zu bytes, but batch_len says %u", len, h->batch_len);
    case RL_E_BATCH_MAGIC:
        return reader_fail(r, rc, "magic byte %u", h->magic);
    case RL_E_BATCH_LENGTH:
        return reader_fail(r, rc, "batch_len %u is outside [%d, %u]", h->batch_len,
                           RL_BATCH_HEADER_SIZE, RL_BATCH_MAX_BYTES);
    case RL_E_BATCH_COUNT:
        return reader_fail(r, rc, "record_count %u, last_offset_delta %u (the count must be 1.."
                           "%u and last_offset_delta the count - 1)", h->record_count,
                           h->last_offset_delta, RL_BATCH_MAX_RECORDS);
    case RL_E_BATCH_CODEC:
        return reader_fail(r, rc, "codec %u (0 none and 4 zstd are supported)",
                           h->flags & BATCH_FLAG_CODEC_MASK);
    case RL_E_BATCH_CHECKSUM:
        return reader_fail(r, rc, "stored checksum %016llx does not match bytes %d..%u",
                           (unsigned long long)h->checksum, RL_BATCH_CHECKSUM_FROM,
                           h->batch_len);
    default:
        return reader_fail(r, rc, "%s", rl_strerror(rc));
    }
}

/* Decompresses the records section into the scratch buffer, whose size is the hard cap: a frame
 * declaring more is refused before any work, and one that does not declare its size stops when
 * the buffer is full. Returns 0 with *out_len set, or a code. */
static int reader_decompress(struct batch_reader *r, const uint8_t *src, size_t src_len,
                             size_t *out_len)
{
    unsigned long long declared = ZSTD_getFrameContentSize(src, src_len);
    if (declared == ZSTD_CONTENTSIZE_ERROR)
        return reader_fail(r, RL_E_BATCH_DECOMPRESS, "the %zu-byte records section is not a "
                           "zstd frame", src_len);
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > r->scratch_cap)
        return reader_fail(r, RL_E_BATCH_DECOMPRESS_LIMIT, "its zstd frame declares %llu "
                           "bytes; the limit is %zu", declared, r->scratch_cap);
    size_t n = ZSTD_decompressDCtx(r->dctx, r->scratch, r->scratch_cap, src, src_len);
    if (ZSTD_isError(n)) {
        if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
            return reader_fail(r, RL_E_BATCH_DECOMPRESS_LIMIT, "its records decompress to "
                               "more than the limit of %zu bytes", r->scratch_cap);
        return reader_fail(r, RL_E_BATCH_DECOMPRESS, "zstd: %s", ZSTD_getErrorName(n));
    }
    *out_len = n;
    return 0;
}

/* batch_validate without the checksum: the header and the length. */
static int batch_check_header(const uint8_t *buf, size_t len, struct batch_header *h)
{
    int rc = batch_header_decode(buf, len, h);
    if (rc)
        return rc;
    return len < h->batch_len ? RL_E_BATCH_SHORT : 0;
}

static int reader_open(struct batch_reader *r, const uint8_t *batch, size_t len,
                       struct batch_header *h, bool checksum)
{
    int rc = checksum ? batch_validate(batch, len, &r->h)
                      : batch_check_header(batch, len, &r->h);
    if (rc)
        return reader_fail_header(r, rc, len);
    const uint8_t *section = batch + RL_BATCH_HEADER_SIZE;
    size_t section_len = r->h.batch_len - RL_BATCH_HEADER_SIZE;
    if ((r->h.flags & BATCH_FLAG_CODEC_MASK) == BATCH_CODEC_ZSTD) {
        rc = reader_decompress(r, section, section_len, &section_len);
        if (rc)
            return rc;
        section = r->scratch;
    }
    /* Each record takes at least RECORD_MIN_BYTES, so a count the bytes cannot hold is caught
     * here, before any loop runs. */
    if ((uint64_t)r->h.record_count * RECORD_MIN_BYTES > section_len)
        return reader_fail(r, RL_E_BATCH_COUNT, "record_count %u needs at least %llu bytes; the "
                           "records section has %zu", r->h.record_count,
                           (unsigned long long)r->h.record_count * RECORD_MIN_BYTES,
                           section_len);
    r->section = r->pos = section;
    r->end = section + section_len;
    r->index = 0;
    r->err = 0;
    r->detail[0] = '\0';
    if (h)
        *h = r->h;
    return 0;
}

int batch_reader_open(struct batch_reader *r, const uint8_t *batch, size_t len,
                      struct batch_header *h)
{
    return reader_open(r, batch, len, h, true);
}

/* Reads a varint field of a record whose bytes end at rec_end. A varint cut short by the end of
 * the record is the record's fault (RL_E_BATCH_RECORD); one that is malformed however many
 * bytes follow is the varint's (RL_E_BATCH_VARINT). Returns bytes read or a negative code. */
static int field_read32(const uint8_t *p, const uint8_t *rec_end, const uint8_t *section_end,
                        int32_t *out)
{
    size_t n = varint_read32(p, (size_t)(rec_end - p), out);
    if (n)
        return (int)n;
    int32_t ignored;
    return varint_read32(p, (size_t)(section_end - p), &ignored) ? RL_E_BATCH_RECORD
                                                                   : RL_E_BATCH_VARINT;
}

static int field_read64(const uint8_t *p, const uint8_t *rec_end, const uint8_t *section_end,
                        int64_t *out)
{
    size_t n = varint_read64(p, (size_t)(rec_end - p), out);
    if (n)
        return (int)n;
    int64_t ignored;
    return varint_read64(p, (size_t)(section_end - p), &ignored) ? RL_E_BATCH_RECORD
                                                                   : RL_E_BATCH_VARINT;
}

/* Reads a length-prefixed byte string (null allowed when nullable): sets *data (NULL when null)
 * and *len. Returns bytes consumed or a negative code. */
static int field_read_bytes(const uint8_t *p, const uint8_t *rec_end, const uint8_t *section_end,
                            int nullable, const uint8_t **data, int32_t *len)
{
    int n = field_read32(p, rec_end, section_end, len);
    if (n < 0)
        return n;
    if (*len == -1 && nullable) {
        *data = NULL;
        return n;
    }
    if (*len < 0 || (size_t)*len > (size_t)(rec_end - p) - (size_t)n)
        return RL_E_BATCH_RECORD;
    *data = p + n;
    return n + *len;
}

/* Decodes one record header at p (bounded by rec_end). Returns bytes consumed or a code: a
 * structural problem inside a header is RL_E_BATCH_HEADERS, a bad varint RL_E_BATCH_VARINT. */
static int header_decode_one(const uint8_t *p, const uint8_t *rec_end, const uint8_t *section_end,
                             struct batch_record_header *out)
{
    int n = field_read_bytes(p, rec_end, section_end, 0, &out->key, &out->key_len);
    if (n < 0)
        return n == RL_E_BATCH_RECORD ? RL_E_BATCH_HEADERS : n;
    int m = field_read_bytes(p + n, rec_end, section_end, 1, &out->value, &out->value_len);
    if (m < 0)
        return m == RL_E_BATCH_RECORD ? RL_E_BATCH_HEADERS : m;
    return n + m;
}

/* Says which field of the current record is bad. Returns code. */
static int record_fail(struct batch_reader *r, int code, const char *field)
{
    int zstd = (r->h.flags & BATCH_FLAG_CODEC_MASK) == BATCH_CODEC_ZSTD;
    return reader_fail(r, code, "record %u (byte %zu of the %srecords section): %s", r->index,
                       (size_t)(r->pos - r->section), zstd ? "decompressed " : "", field);
}

/* Decodes the headers of a record (header_count varint included) at p, bounded by rend. Returns
 * bytes consumed or a code. */
static int record_decode_headers(struct batch_reader *r, const uint8_t *p, const uint8_t *rend,
                                 struct batch_record *rec)
{
    const uint8_t *start = p;
    int32_t header_count;
    int n = field_read32(p, rend, r->end, &header_count);
    if (n < 0)
        return record_fail(r, n, "header count");
    p += n;
    if (header_count < 0 ||
        (size_t)header_count > (size_t)(rend - p) / RECORD_HEADER_MIN_BYTES)
        return record_fail(r, RL_E_BATCH_HEADERS, "header count exceeds the record");
    rec->headers = p;
    rec->header_count = (uint32_t)header_count;
    for (int32_t i = 0; i < header_count; i++) {
        struct batch_record_header hd;
        if ((n = header_decode_one(p, rend, r->end, &hd)) < 0)
            return record_fail(r, n, "a header");
        p += n;
    }
    rec->headers_len = (size_t)(p - rec->headers);
    return (int)(p - start);
}

/* Decodes the record at r->pos into *rec and advances. Returns 0 or a negative code (with the
 * reader's detail written). */
static int record_decode(struct batch_reader *r, struct batch_record *rec)
{
    const uint8_t *p = r->pos;
    const uint8_t *send = r->end;
    int32_t body_len;
    int n = field_read32(p, send, send, &body_len);
    if (n < 0)
        return record_fail(r, n, "record length");
    p += n;
    if (body_len < (int32_t)RECORD_MIN_BYTES - 1 || (size_t)body_len > (size_t)(send - p))
        return record_fail(r, RL_E_BATCH_RECORD, "record length out of range");
    const uint8_t *rend = p + body_len;
    r->attributes = *p++; /* unused in v2 records; batch_validate_full requires 0 */
    int32_t offset_delta;
    if ((n = field_read64(p, rend, send, &r->ts_delta)) < 0)
        return record_fail(r, n, "timestamp delta");
    p += n;
    if ((n = field_read32(p, rend, send, &offset_delta)) < 0)
        return record_fail(r, n, "offset delta");
    p += n;
    if ((uint32_t)offset_delta != r->index)
        return reader_fail(r, RL_E_BATCH_OFFSETS, "record %u has offset delta %d (deltas must "
                           "run 0, 1, 2, ...)", r->index, offset_delta);
    if ((n = field_read_bytes(p, rend, send, 1, &rec->key, &rec->key_len)) < 0)
        return record_fail(r, n, "key");
    p += n;
    if ((n = field_read_bytes(p, rend, send, 1, &rec->value, &rec->value_len)) < 0)
        return record_fail(r, n, "value");
    p += n;
    if ((n = record_decode_headers(r, p, rend, rec)) < 0)
        return n;
    p += n;
    if (p != rend)
        return record_fail(r, RL_E_BATCH_RECORD, "bytes left over after the headers");
    rec->offset = (int64_t)(r->h.base_offset + (uint64_t)offset_delta);
    rec->timestamp = (int64_t)((uint64_t)r->h.first_timestamp + (uint64_t)r->ts_delta);
    r->pos = rend;
    return 0;
}

int batch_reader_next(struct batch_reader *r, struct batch_record *rec)
{
    if (r->err)
        return r->err;
    if (r->index == r->h.record_count) {
        if (r->pos != r->end)
            return reader_fail(r, RL_E_BATCH_COUNT, "%zu bytes follow record %u, the last one "
                               "record_count %u allows", (size_t)(r->end - r->pos),
                               r->index - 1, r->h.record_count);
        return 0;
    }
    if (r->pos == r->end)
        return reader_fail(r, RL_E_BATCH_COUNT, "the records section ends after %u records; "
                           "record_count says %u", r->index, r->h.record_count);
    int rc = record_decode(r, rec);
    if (rc)
        return rc;
    r->index++;
    return 1;
}

int batch_header_next(const struct batch_record *rec, size_t *pos,
                      struct batch_record_header *out)
{
    if (*pos >= rec->headers_len)
        return 0;
    const uint8_t *p = rec->headers + *pos;
    const uint8_t *end = rec->headers + rec->headers_len;
    int n = header_decode_one(p, end, end, out);
    if (n < 0)
        return n;
    *pos += (size_t)n;
    return 1;
}

int batch_validate_deep(struct batch_reader *r, const uint8_t *batch, size_t len)
{
    int rc = batch_reader_open(r, batch, len, NULL);
    if (rc)
        return rc;
    struct batch_record rec;
    /* At most record_count records and one end check. */
    for (uint64_t i = 0; i <= r->h.record_count; i++) {
        rc = batch_reader_next(r, &rec);
        if (rc <= 0)
            return rc;
    }
    return RL_E_INTERNAL;
}

/* --- full validation -------------------------------------------------------------------------- */

/* What full validation learns while the reader walks the records. The reader's own verdict
 * comes first (so a batch the reader refuses gets the reader's code, whatever else is wrong with
 * it); the first producer-side problem is remembered and reported only when the walk succeeds. */
struct full_check {
    int64_t min_ts, max_ts;        /* smallest and largest record timestamps */
    uint32_t min_index, max_index; /* and which records hold them */
    int code;                      /* the first producer-side problem, 0 while none */
    uint32_t index;                /* its record */
    int64_t value;                 /* attributes, delta or timestamp, by code */
    bool overflow;                 /* RANGE: first_timestamp + delta overflowed */
};

/* The producer-only checks of the record batch_reader_next just returned (index r->index - 1). */
static void record_check(const struct batch_reader *r, struct full_check *fc)
{
    if (fc->code)
        return;
    uint32_t i = r->index - 1;
    int64_t ts = 0;
    if (r->attributes != 0) {
        fc->code = RL_E_BATCH_RECORD_ATTRIBUTES;
        fc->value = r->attributes;
    } else if (i == 0 && r->ts_delta != 0) {
        fc->code = RL_E_BATCH_FIRST_TIMESTAMP;
        fc->value = r->ts_delta;
    } else if (__builtin_add_overflow(r->h.first_timestamp, r->ts_delta, &ts)) {
        fc->code = RL_E_BATCH_TIMESTAMP_RANGE;
        fc->value = r->ts_delta;
        fc->overflow = true;
    } else if (ts < 0) {
        fc->code = RL_E_BATCH_TIMESTAMP_RANGE;
        fc->value = ts;
    }
    if (fc->code) {
        fc->index = i;
        return;
    }
    if (i == 0 || ts < fc->min_ts) {
        fc->min_ts = ts;
        fc->min_index = i;
    }
    if (i == 0 || ts > fc->max_ts) {
        fc->max_ts = ts;
        fc->max_index = i;
    }
}

/* Reports the problem record_check remembered. Returns its code. */
static int record_check_fail(struct batch_reader *r, const struct full_check *fc)
{
    switch (fc->code) {
    case RL_E_BATCH_RECORD_ATTRIBUTES:
        return reader_fail(r, fc->code, "record %u has attributes 0x%02x", fc->index,
                           (unsigned)fc->value);
    case RL_E_BATCH_FIRST_TIMESTAMP:
        return reader_fail(r, fc->code, "record 0 has timestamp delta %lld; first_timestamp "
                           "must be its timestamp", (long long)fc->value);
    default:
        if (fc->overflow)
            return reader_fail(r, fc->code, "record %u: first_timestamp %lld + delta %lld "
                               "overflows", fc->index, (long long)r->h.first_timestamp,
                               (long long)fc->value);
        return reader_fail(r, fc->code, "record %u has timestamp %lld", fc->index,
                           (long long)fc->value);
    }
}

/* The header's max_timestamp against the records, then the records against the clock. All
 * timestamps are >= 0 here, so the differences below are exact in 64 unsigned bits. */
static int timestamps_check(struct batch_reader *r, const struct full_check *fc,
                            const struct batch_limits *lim)
{
    if (r->h.max_timestamp != fc->max_ts)
        return reader_fail(r, RL_E_BATCH_MAX_TIMESTAMP, "max_timestamp is %lld, but the largest "
                           "record timestamp is %lld (record %u)", (long long)r->h.max_timestamp,
                           (long long)fc->max_ts, fc->max_index);
    if (fc->max_ts > lim->now_ms &&
        (uint64_t)fc->max_ts - (uint64_t)lim->now_ms > (uint64_t)lim->after_max_ms)
        return reader_fail(r, RL_E_BATCH_TIMESTAMP_FUTURE, "record %u has timestamp %lld, %llu "
                           "ms after the broker's clock (%lld); at most %lld ms are allowed",
                           fc->max_index, (long long)fc->max_ts,
                           (unsigned long long)((uint64_t)fc->max_ts - (uint64_t)lim->now_ms),
                           (long long)lim->now_ms, (long long)lim->after_max_ms);
    if (fc->min_ts < lim->now_ms &&
        (uint64_t)lim->now_ms - (uint64_t)fc->min_ts > (uint64_t)lim->before_max_ms)
        return reader_fail(r, RL_E_BATCH_TIMESTAMP_PAST, "record %u has timestamp %lld, %llu "
                           "ms before the broker's clock (%lld); at most %lld ms are allowed",
                           fc->min_index, (long long)fc->min_ts,
                           (unsigned long long)((uint64_t)lim->now_ms - (uint64_t)fc->min_ts),
                           (long long)lim->now_ms, (long long)lim->before_max_ms);
    return 0;
}

int batch_validate_full(struct batch_reader *r, const uint8_t *batch, size_t len,
                        const struct batch_limits *lim, struct batch_header *h)
{
    int rc = reader_open(r, batch, len, h, !lim->checksum_known);
    if (rc)
        return rc;
    struct full_check fc = {0};
    struct batch_record rec;
    /* At most record_count records and one end check. */
    for (uint64_t i = 0; i <= r->h.record_count; i++) {
        rc = batch_reader_next(r, &rec);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
        record_check(r, &fc);
    }
    if (rc != 0)
        return reader_fail(r, RL_E_INTERNAL, "record walk did not end");
    if (r->h.flags & ~BATCH_FLAG_CODEC_MASK)
        return reader_fail(r, RL_E_BATCH_FLAGS, "flags 0x%04x; only the codec bits (0x%x) may "
                           "be set", r->h.flags, BATCH_FLAG_CODEC_MASK);
    if (fc.code)
        return record_check_fail(r, &fc);
    return timestamps_check(r, &fc, lim);
}
