/*
 * kbatch: Kafka RecordBatch v2 <-> ringlog batch (common/batch.h). The two share the records
 * encoding (Kafka's v2 records) and differ only in the header: Kafka's is 61 big-endian bytes
 * with a CRC-32C over attributes..end; ringlog's is 65 little-endian bytes with an xxh3-64 over
 * magic..end. Kafka listener path:
 *   produce: Produce partition records -> kbatch_from_kafka (check magic, lengths, CRC-32C;
 *            convert the codec when needed; write the ringlog header) -> produce service
 *   fetch:   stored ringlog batches -> kbatch_serve (a Kafka header per batch with its CRC-32C
 *            over the unchanged records) -> Fetch response iovecs -> socket
 *
 * Zero copy where it can be:
 *   - Produce, codec none or zstd: the ringlog header (65 bytes) is written over the Kafka
 *     header (61 bytes) and the 4 bytes before it, which in Produce v3-v8 are the records'
 *     i32 length prefix, already decoded. The records stay where the client put them.
 *   - Fetch: the response is [61-byte Kafka header][stored records] per batch, the records
 *     referenced by iovec. Only a down-conversion (zstd data to a client whose Fetch version
 *     predates zstd) copies: it decompresses.
 * Codecs: ringlog stores none or zstd, so that every stored batch is readable by libringlog and
 * by every Kafka client. gzip, snappy and lz4 batches are decompressed on produce and stored
 * re-compressed with zstd (or uncompressed when zstd would not shrink them, or when the
 * context's zstd level is 0). zstd batches are stored as sent. See docs/architecture.md (Kafka)
 * for the measured cost.
 *
 * Kafka rules kept: exactly one batch per Produce partition (v3+), magic 2 only (legacy message
 * sets are refused), no transactional or control batches from clients, contiguous offsets
 * (lastOffsetDelta = recordsCount - 1); a maxTimestamp of -1 (sarama 1.22 sends it) is set
 * from the records, as Kafka's broker does, for uncompressed and converted batches. Every
 * batch kbatch_from_kafka returns has a valid ringlog header and checksum (batch_validate
 * passes); record-level validation is the produce service's, as for native batches.
 */
#ifndef RL_BROKER_KAFKA_KBATCH_H
#define RL_BROKER_KAFKA_KBATCH_H

#include <stddef.h>
#include <stdint.h>

#include "broker/kafka/kmsg.h"

struct arena;

#define KBATCH_HEADER_SIZE 61
#define KBATCH_MAGIC 2
/* Bytes of a Kafka batch after its batchLength field, not counting records. */
#define KBATCH_LENGTH_OVERHEAD 49
#define KBATCH_CRC_FROM 21 /* the CRC covers bytes from here to the end */

/* Byte offsets of the Kafka header fields (big-endian). */
enum kbatch_field_offset {
    KBATCH_OFF_BASE_OFFSET = 0,
    KBATCH_OFF_BATCH_LENGTH = 8,
    KBATCH_OFF_LEADER_EPOCH = 12,
    KBATCH_OFF_MAGIC = 16,
    KBATCH_OFF_CRC = 17,
    KBATCH_OFF_ATTRIBUTES = 21,
    KBATCH_OFF_LAST_OFFSET_DELTA = 23,
    KBATCH_OFF_BASE_TIMESTAMP = 27,
    KBATCH_OFF_MAX_TIMESTAMP = 35,
    KBATCH_OFF_PRODUCER_ID = 43,
    KBATCH_OFF_PRODUCER_EPOCH = 51,
    KBATCH_OFF_BASE_SEQUENCE = 53,
    KBATCH_OFF_RECORDS_COUNT = 57,
};

#define KBATCH_ATTR_CODEC_MASK 0x07
#define KBATCH_ATTR_LOG_APPEND_TIME 0x08
#define KBATCH_ATTR_TRANSACTIONAL 0x10
#define KBATCH_ATTR_CONTROL 0x20
#define KBATCH_ATTR_DELETE_HORIZON 0x40

/* A decoded Kafka batch header. */
struct kbatch_header {
    int64_t base_offset;
    int32_t batch_length;
    int32_t leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t records_count;
};

/* Per-listener state reused across batches: codec contexts and one decompression buffer. */
struct kbatch_ctx;

/* max_batch_bytes bounds a decompressed batch (<= RL_BATCH_MAX_BYTES; the decompression buffer
 * is allocated at first need, at most this size). zstd_level is the level gzip/snappy/lz4
 * batches are re-compressed at (0: store them uncompressed). NULL on allocation failure. */
struct kbatch_ctx *kbatch_ctx_create(size_t max_batch_bytes, int zstd_level);
void kbatch_ctx_destroy(struct kbatch_ctx *ctx);

/* Reads and checks one Kafka batch that must fill exactly len bytes: length fields, magic 2,
 * CRC-32C, record count and last offset delta, known codec, no transactional/control/unknown
 * attribute bits, size <= RL_BATCH_MAX_BYTES. Fills *h. Returns 0 or an RL_E_BATCH_* code and
 * a message for the client's log. */
int kbatch_check(const uint8_t *batch, size_t len, struct kbatch_header *h, char *err,
                 size_t errlen);

/* Produce: turns the Kafka batch at kafka (len bytes: one partition's whole records field) into
 * a ringlog batch. room_before is how many writable bytes precede kafka that may be
 * overwritten (4 for a decoded Produce v3-v8 request: the records length). For codec none/zstd
 * with room_before >= 4 the result is in place at kafka - 4; otherwise it is allocated from a.
 * On success *out and *out_len are the ringlog batch (base_offset 0, leader_epoch 0) and *h the
 * Kafka header as sent (but for a maxTimestamp of -1 set from the records). Returns 0, an
 * RL_E_BATCH_* code (bad batch: the client gets kerr_invalid_batch / MESSAGE_TOO_LARGE
 * through kerr), or RL_E_FULL (arena). The input bytes are left unspecified on failure only
 * when the in-place path was taken after all checks, which cannot fail; a refused batch is
 * never modified. */
int kbatch_from_kafka(struct kbatch_ctx *ctx, uint8_t *kafka, size_t len, size_t room_before,
                      struct arena *a, uint8_t **out, size_t *out_len, struct kbatch_header *h,
                      char *err, size_t errlen);

/* Fetch: serves the stored ringlog batches in [stored, stored + len) as Kafka batches. Whole
 * batches only: a trailing partial batch is left out (Kafka clients drop one anyway, and its
 * CRC could not be computed). When allow_zstd is 0 (Fetch < v10) zstd batches are
 * decompressed and served uncompressed. Builds out->iov (headers in the arena, records by
 * reference into stored or decompressed copies in the arena) and out->len. Returns the number
 * of batches served (>= 0), or RL_E_BATCH_* when a stored batch has a bad header (the stored
 * bytes must have passed batch_validate when appended), or RL_E_FULL (arena).
 *
 * Control batches (a replicated log's Raft no-ops and configuration entries): with
 * with_control, each is served as a Kafka control batch (attribute 0x20, producer -1, the
 * stored offsets, leader epoch and timestamps) holding one control record at its last offset,
 * built in the arena (kbatch_control_record; the stored record's value, a Raft configuration,
 * is not served). Kafka clients skip control records but advance past them, and librdkafka
 * also stores their offsets, so a consumer's position and committed offset reach the high
 * watermark; this is how a Kafka broker's transaction markers look. A control batch is served
 * in about 80 bytes whatever its stored size, so an answer can differ from the stored bytes'
 * size by that much per control batch. Without with_control they are left out, a gap in the
 * offsets (for Kafka clients that would hand control records to the application: see
 * docs/architecture.md, Kafka listener, Fetch). */
int kbatch_serve(struct kbatch_ctx *ctx, const uint8_t *stored, size_t len, int allow_zstd,
                 int with_control, struct arena *a, struct kmsg_records *out);

/* The control record of a served control batch: Kafka's control-record layout (key version
 * i16 0 + type i16; value version i16 0 + coordinator epoch i32 0, which sarama 1.22 reads
 * and fails without), timestamp delta 0, offset delta offset_delta, no headers. type is the
 * stored record's (ringlog's Raft types, 100 no-op and 101 configuration: no Kafka client acts
 * on them, as on Kafka's 0 abort and 1 commit), else KBATCH_CONTROL_TYPE_OTHER. Writes the
 * length-prefixed record to out and returns its size. */
#define KBATCH_CONTROL_RECORD_MAX 32
#define KBATCH_CONTROL_TYPE_OTHER 99
size_t kbatch_control_record(uint8_t out[KBATCH_CONTROL_RECORD_MAX], int32_t offset_delta,
                             uint16_t type);

/* Writes a Kafka header for records_len bytes of records described by h (crc and
 * batch_length computed here) into hdr[61]; the CRC covers hdr[21..61) then the records. Used
 * by kbatch_serve, and by tests and tools that build the batches clients send. */
void kbatch_write_header(uint8_t hdr[KBATCH_HEADER_SIZE], const struct kbatch_header *h,
                         const uint8_t *records, size_t records_len);

/* Builds a whole Kafka batch in out (cap bytes) from uncompressed v2 records, compressed with
 * codec (enum kcodec_id; level 0 = default). h supplies the header fields (attributes' codec
 * bits are set from codec). Returns the batch length or a negative code. For tests, benchmarks
 * and tools. */
int64_t kbatch_build_kafka(struct kbatch_ctx *ctx, const struct kbatch_header *h, int codec,
                           int level, const uint8_t *records, size_t records_len, uint8_t *out,
                           size_t cap);

#endif
