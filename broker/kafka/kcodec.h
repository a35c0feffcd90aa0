/*
 * kcodec: the compression codecs of Kafka's RecordBatch v2 (attributes bits 0-2): none, gzip,
 * snappy, lz4 (the LZ4 frame format) and zstd. Kafka listener path: produce -> kbatch finds a
 * gzip/snappy/lz4 batch -> kcodec_decompress into a reused scratch buffer -> the records are
 * stored uncompressed or re-compressed with zstd (the codecs ringlog stores, readable by
 * libringlog and every Kafka client); fetch at a version without zstd -> kcodec_decompress of
 * a stored zstd batch. Compression of the other codecs exists for tests and benchmarks, which
 * build the batches Kafka clients send.
 *
 * Snappy comes in two framings: librdkafka writes raw snappy; the Java client and kafka-python
 * write xerial's (magic, version, then i32-length-prefixed blocks). Both are read.
 * Input is hostile: output is bounded by the caller's capacity (a decompression bomb stops at
 * it with RL_E_BATCH_TOO_LARGE), and malformed input is RL_E_BATCH_DECOMPRESS.
 * A struct kcodec holds one context per library, reused across batches; single-threaded.
 */
#ifndef RL_BROKER_KAFKA_KCODEC_H
#define RL_BROKER_KAFKA_KCODEC_H

#include <stddef.h>
#include <stdint.h>

enum kcodec_id {
    KCODEC_NONE = 0,
    KCODEC_GZIP = 1,
    KCODEC_SNAPPY = 2,
    KCODEC_LZ4 = 3,
    KCODEC_ZSTD = 4,
    /* compression only: snappy in xerial framing (on the wire it is KCODEC_SNAPPY) */
    KCODEC_SNAPPY_XERIAL = 0x102,
};

struct kcodec;

/* Creates the codec contexts. NULL on allocation failure. */
struct kcodec *kcodec_create(void);
void kcodec_destroy(struct kcodec *c);

/* "none", "gzip", "snappy", "lz4", "zstd", or "unknown". */
const char *kcodec_name(int codec);

/* Decompresses len bytes of codec into out (cap bytes). Returns the decompressed size, or
 * RL_E_BATCH_TOO_LARGE when it would exceed cap, RL_E_BATCH_DECOMPRESS when the input is
 * malformed (or truncated), RL_E_BATCH_CODEC for an unknown codec. KCODEC_NONE copies. */
int64_t kcodec_decompress(struct kcodec *c, int codec, const uint8_t *in, size_t len,
                          uint8_t *out, size_t cap);

/* The most bytes kcodec_compress may write for len input bytes. */
size_t kcodec_compress_bound(int codec, size_t len);

/* Compresses len bytes into out (at least kcodec_compress_bound bytes). level: the codec's
 * level (0 = its default). Returns the compressed size or a negative code. */
int64_t kcodec_compress(struct kcodec *c, int codec, int level, const uint8_t *in, size_t len,
                        uint8_t *out, size_t cap);

#endif
