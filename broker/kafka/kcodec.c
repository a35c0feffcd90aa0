/*
 * kcodec: Kafka's record codecs over zlib, snappy, liblz4 and zstd (see kcodec.h). Every
 * decompressor writes into the caller's buffer and stops at its capacity; none allocates per
 * call (the zlib stream, lz4 and zstd contexts live in struct kcodec).
 */
#include "broker/kafka/kcodec.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "broker/kafka/kwire.h"
#include "common/err.h"

struct kcodec {
    z_stream inflate;
    int inflate_ready;
    LZ4F_dctx *lz4;
    ZSTD_DCtx *zd;
    ZSTD_CCtx *zc;
};

/* xerial snappy: 8-byte magic, i32 version, i32 compatible version, then blocks. */
static const uint8_t xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define XERIAL_HEADER_BYTES 16u
#define XERIAL_BLOCK_BYTES (32u * 1024) /* what the Java client writes */

struct kcodec *kcodec_create(void)
{
    struct kcodec *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    /* 15 window bits + 32: accept gzip (what Kafka clients write) and zlib headers. */
    if (inflateInit2(&c->inflate, 15 + 32) != Z_OK)
        goto fail;
    c->inflate_ready = 1;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&c->lz4, LZ4F_VERSION)))
        goto fail;
    c->zd = ZSTD_createDCtx();
    c->zc = ZSTD_createCCtx();
    if (!c->zd || !c->zc)
        goto fail;
    return c;
fail:
    kcodec_destroy(c);
    return NULL;
}

void kcodec_destroy(struct kcodec *c)
{
    if (!c)
        return;
    if (c->inflate_ready)
        inflateEnd(&c->inflate);
    LZ4F_freeDecompressionContext(c->lz4);
    ZSTD_freeDCtx(c->zd);
    ZSTD_freeCCtx(c->zc);
    free(c);
}

const char *kcodec_name(int codec)
{
    static const char *names[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    return codec >= 0 && codec <= 4 ? names[codec] : "unknown";
}

/* gzip: one or more members (Java's GZIPInputStream reads concatenated members too). */
static int64_t gzip_decompress(struct kcodec *c, const uint8_t *in, size_t len, uint8_t *out,
                               size_t cap)
{
    z_stream *z = &c->inflate;
    size_t done = 0;
    while (len > 0) {
        if (inflateReset(z) != Z_OK)
            return RL_E_BATCH_DECOMPRESS;
        /* zlib counts in uInt; batches are far below 4 GiB (RL_BATCH_MAX_BYTES) */
        z->next_in = (Bytef *)(uintptr_t)in;
        z->avail_in = (uInt)len;
        z->next_out = out + done;
        z->avail_out = (uInt)(cap - done);
        int rc = inflate(z, Z_FINISH);
        done = cap - z->avail_out;
        if (rc == Z_BUF_ERROR && z->avail_out == 0)
            return RL_E_BATCH_TOO_LARGE;
        if (rc != Z_STREAM_END)
            return RL_E_BATCH_DECOMPRESS;
        size_t used = len - z->avail_in;
        in += used;
        len -= used;
    }
    return (int64_t)done;
}

static int64_t snappy_raw(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t n = 0;
    if (snappy_uncompressed_length((const char *)in, len, &n) != SNAPPY_OK)
        return RL_E_BATCH_DECOMPRESS;
    if (n > cap)
        return RL_E_BATCH_TOO_LARGE;
    if (snappy_uncompress((const char *)in, len, (char *)out, &n) != SNAPPY_OK)
        return RL_E_BATCH_DECOMPRESS;
    return (int64_t)n;
}

static int64_t snappy_decompress(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    if (len < XERIAL_HEADER_BYTES || memcmp(in, xerial_magic, sizeof(xerial_magic)) != 0)
        return snappy_raw(in, len, out, cap);
    size_t pos = XERIAL_HEADER_BYTES, done = 0;
    while (pos < len) {
        if (len - pos < 4)
            return RL_E_BATCH_DECOMPRESS;
        uint32_t block = kwire_load_be32(in + pos);
        pos += 4;
        if (block > len - pos)
            return RL_E_BATCH_DECOMPRESS;
        int64_t n = snappy_raw(in + pos, block, out + done, cap - done);
        if (n < 0)
            return n;
        done += (size_t)n;
        pos += block;
    }
    return (int64_t)done;
}

/* The LZ4 frame format; consecutive frames are read one after another. */
static int64_t lz4_decompress(struct kcodec *c, const uint8_t *in, size_t len, uint8_t *out,
                              size_t cap)
{
    size_t done = 0;
    LZ4F_resetDecompressionContext(c->lz4);
    while (len > 0) {
        size_t out_n = cap - done, in_n = len;
        size_t hint = LZ4F_decompress(c->lz4, out + done, &out_n, in, &in_n, NULL);
        if (LZ4F_isError(hint))
            return RL_E_BATCH_DECOMPRESS;
        done += out_n;
        in += in_n;
        len -= in_n;
        if (hint == 0)
            continue; /* a frame ended; another may follow */
        if (len == 0)
            return RL_E_BATCH_DECOMPRESS; /* the input ends inside a frame */
        if (done == cap)
            return RL_E_BATCH_TOO_LARGE;
        if (in_n == 0 && out_n == 0)
            return RL_E_BATCH_DECOMPRESS; /* no progress */
    }
    return (int64_t)done;
}

static int64_t zstd_decompress(struct kcodec *c, const uint8_t *in, size_t len, uint8_t *out,
                               size_t cap)
{
    size_t n = ZSTD_decompressDCtx(c->zd, out, cap, in, len);
    if (!ZSTD_isError(n))
        return (int64_t)n;
    return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? RL_E_BATCH_TOO_LARGE
                                                                : RL_E_BATCH_DECOMPRESS;
}

int64_t kcodec_decompress(struct kcodec *c, int codec, const uint8_t *in, size_t len,
                          uint8_t *out, size_t cap)
{
    switch (codec) {
    case KCODEC_NONE:
        if (len > cap)
            return RL_E_BATCH_TOO_LARGE;
        if (len)
            memcpy(out, in, len);
        return (int64_t)len;
    case KCODEC_GZIP:
        return gzip_decompress(c, in, len, out, cap);
    case KCODEC_SNAPPY:
        return snappy_decompress(in, len, out, cap);
    case KCODEC_LZ4:
        return lz4_decompress(c, in, len, out, cap);
    case KCODEC_ZSTD:
        return zstd_decompress(c, in, len, out, cap);
    }
    return RL_E_BATCH_CODEC;
}

size_t kcodec_compress_bound(int codec, size_t len)
{
    switch (codec) {
    case KCODEC_GZIP:
        return compressBound((uLong)len) + 32; /* + gzip header and trailer */
    case KCODEC_SNAPPY:
        return snappy_max_compressed_length(len);
    case KCODEC_SNAPPY_XERIAL:
        return XERIAL_HEADER_BYTES + (len / XERIAL_BLOCK_BYTES + 1) *
               (4 + snappy_max_compressed_length(XERIAL_BLOCK_BYTES));
    case KCODEC_LZ4:
        return LZ4F_compressFrameBound(len, NULL);
    case KCODEC_ZSTD:
        return ZSTD_compressBound(len);
    }
    return len;
}

static int64_t gzip_compress(int level, const uint8_t *in, size_t len, uint8_t *out,
                             size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, level ? level : Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return RL_E_INTERNAL;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    int64_t n = (int64_t)(cap - z.avail_out);
    deflateEnd(&z);
    return rc == Z_STREAM_END ? n : RL_E_BATCH_TOO_LARGE;
}

static int64_t snappy_compress_xerial(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    if (cap < XERIAL_HEADER_BYTES)
        return RL_E_BATCH_TOO_LARGE;
    memcpy(out, xerial_magic, sizeof(xerial_magic));
    kwire_store_be32(out + 8, 1);
    kwire_store_be32(out + 12, 1);
    size_t pos = XERIAL_HEADER_BYTES;
    for (size_t off = 0; off < len; off += XERIAL_BLOCK_BYTES) {
        size_t chunk = len - off < XERIAL_BLOCK_BYTES ? len - off : XERIAL_BLOCK_BYTES;
        size_t n = cap - pos - 4;
        if (cap - pos < 4 || snappy_compress((const char *)in + off, chunk,
                                             (char *)out + pos + 4, &n) != SNAPPY_OK)
            return RL_E_BATCH_TOO_LARGE;
        kwire_store_be32(out + pos, (uint32_t)n);
        pos += 4 + n;
    }
    return (int64_t)pos;
}

int64_t kcodec_compress(struct kcodec *c, int codec, int level, const uint8_t *in, size_t len,
                        uint8_t *out, size_t cap)
{
    switch (codec) {
    case KCODEC_NONE:
        return kcodec_decompress(c, KCODEC_NONE, in, len, out, cap);
    case KCODEC_GZIP:
        return gzip_compress(level, in, len, out, cap);
    case KCODEC_SNAPPY: {
        size_t n = cap;
        if (snappy_compress((const char *)in, len, (char *)out, &n) != SNAPPY_OK)
            return RL_E_BATCH_TOO_LARGE;
        return (int64_t)n;
    }
    case KCODEC_SNAPPY_XERIAL:
        return snappy_compress_xerial(in, len, out, cap);
    case KCODEC_LZ4: {
        LZ4F_preferences_t prefs;
        memset(&prefs, 0, sizeof(prefs));
        prefs.compressionLevel = level;
        size_t n = LZ4F_compressFrame(out, cap, in, len, &prefs);
        return LZ4F_isError(n) ? RL_E_BATCH_TOO_LARGE : (int64_t)n;
    }
    case KCODEC_ZSTD: {
        size_t n = ZSTD_compressCCtx(c->zc, out, cap, in, len, level);
        return ZSTD_isError(n) ? RL_E_BATCH_TOO_LARGE : (int64_t)n;
    }
    }
    return RL_E_BATCH_CODEC;
}
