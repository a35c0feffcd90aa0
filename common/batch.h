/*
 * batch: the record batch codec. A batch is the unit that travels and rests: the same bytes are
 * built by the producer, checked and stamped by the broker, written to segment files, and sent
 * to consumers. Data path: client builds -> broker validates + stamps -> storage appends ->
 * reader serves the unchanged bytes -> consumer iterates records.
 *
 * On-disk and wire layout (all integers little-endian, no padding; RL_BATCH_HEADER_SIZE = 65):
 *
 *   off  size  field
 *     0     8  base_offset         stamped by the leader; offset of the first record
 *     8     4  batch_len           total bytes of this batch, header included
 *    12     4  leader_epoch        stamped by the leader (the Raft term)
 *    16     8  checksum            xxh3-64 of bytes [24, batch_len)
 *    24     1  magic               RL_BATCH_MAGIC (2)
 *    25     2  flags               bits 0-2 codec (0 none, 4 zstd), bit 3 timestamp type
 *                                  (0 create, 1 log-append), bit 5 control batch
 *    27     4  record_count        >= 1
 *    31     4  last_offset_delta   record_count - 1 (offsets in a batch are contiguous)
 *    35     8  first_timestamp     ms since the epoch, of the first record
 *    43     8  max_timestamp       largest record timestamp in the batch
 *    51     8  producer_id         -1 when not idempotent
 *    59     2  producer_epoch      -1 when not idempotent
 *    61     4  base_sequence       -1 when not idempotent
 *    65     -  records             Kafka v2 record encoding, zstd-compressed when codec says so
 *
 * The checksum leaves out base_offset, batch_len and leader_epoch so the leader can stamp them
 * without rehashing; batch_len is still bounded by the bytes that were checksummed, because the
 * records section ends exactly where batch_len says.
 *
 * Each record (Kafka's v2 encoding; varints are zigzag LEB128):
 *   length varint | attributes i8 (0) | timestamp_delta varlong | offset_delta varint |
 *   key_len varint (-1 = null) | key | value_len varint (-1 = null) | value |
 *   header_count varint | { hkey_len varint | hkey | hval_len varint (-1 = null) | hval } *
 *
 * Nothing here allocates per record. A builder owns one growable scratch buffer reused across
 * batches; a reader decompresses into a caller-owned scratch buffer reused across batches.
 */
#ifndef RL_COMMON_BATCH_H
#define RL_COMMON_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RL_BATCH_HEADER_SIZE 65
#define RL_BATCH_MAGIC 2
#define RL_BATCH_CHECKSUM_FROM 24 /* the checksum covers bytes from here to batch_len */
/* A batch may never exceed this, whatever the configs say (the length field is u32, and the
 * broker must be able to hold one batch in memory). */
#define RL_BATCH_MAX_BYTES (64u * 1024 * 1024)
/* Records in one batch are bounded too, so a hostile count cannot drive long loops. */
#define RL_BATCH_MAX_RECORDS (1u << 24)

/* Byte offsets of the header fields, for code that patches bytes in place. */
enum batch_field_offset {
    BATCH_OFF_BASE_OFFSET = 0,
    BATCH_OFF_BATCH_LEN = 8,
    BATCH_OFF_LEADER_EPOCH = 12,
    BATCH_OFF_CHECKSUM = 16,
    BATCH_OFF_MAGIC = 24,
    BATCH_OFF_FLAGS = 25,
    BATCH_OFF_RECORD_COUNT = 27,
    BATCH_OFF_LAST_OFFSET_DELTA = 31,
    BATCH_OFF_FIRST_TIMESTAMP = 35,
    BATCH_OFF_MAX_TIMESTAMP = 43,
    BATCH_OFF_PRODUCER_ID = 51,
    BATCH_OFF_PRODUCER_EPOCH = 59,
    BATCH_OFF_BASE_SEQUENCE = 61,
    BATCH_OFF_RECORDS = 65,
};

enum batch_codec {
    BATCH_CODEC_NONE = 0,
    BATCH_CODEC_ZSTD = 4,
};
#define BATCH_FLAG_CODEC_MASK 0x7u
#define BATCH_FLAG_LOG_APPEND_TIME 0x8u
#define BATCH_FLAG_CONTROL 0x20u

/* The decoded header. */
struct batch_header {
    uint64_t base_offset;
    uint32_t batch_len;
    uint32_t leader_epoch;
    uint64_t checksum;
    uint8_t magic;
    uint16_t flags;
    uint32_t record_count;
    uint32_t last_offset_delta;
    int64_t first_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
};

/* One record as seen by a reader: pointers into the batch (or the reader's scratch buffer),
 * valid until the next batch_reader_next / batch_reader_open on the same reader. */
struct batch_record {
    int64_t offset;     /* base_offset + offset_delta */
    int64_t timestamp;  /* first_timestamp + timestamp_delta */
    const uint8_t *key; /* NULL when the key is null */
    int32_t key_len;    /* -1 when null */
    const uint8_t *value;
    int32_t value_len;  /* -1 when null */
    uint32_t header_count;
    const uint8_t *headers; /* raw encoded headers; walk them with batch_header_next */
    size_t headers_len;
};

/* One record header, decoded by batch_header_next. */
struct batch_record_header {
    const uint8_t *key;
    int32_t key_len;
    const uint8_t *value; /* NULL when null */
    int32_t value_len;
};

/* A record to add to a builder; the builder copies the bytes, the caller keeps ownership.
 * A NULL key (value) is a null key (value) and needs key_len (value_len) 0; an empty one is a
 * non-NULL pointer with length 0. headers may be NULL only when header_count is 0. In a header
 * the key is never null (NULL with key_len 0 is written as empty) and a NULL value is null
 * (value_len -1 or 0). */
struct batch_record_in {
    const void *key; /* NULL for a null key */
    size_t key_len;
    const void *value; /* NULL for a null value (a tombstone) */
    size_t value_len;
    int64_t timestamp;
    const struct batch_record_header *headers;
    uint32_t header_count;
};

/* --- header access (no allocation, no checksum work) ---------------------------------------- */

/* Decodes the fixed header of `buf` (len bytes available) into *h and checks what a header alone
 * can show: len >= header size (RL_E_BATCH_SHORT), magic (RL_E_BATCH_MAGIC), batch_len within
 * [header size, RL_BATCH_MAX_BYTES] (RL_E_BATCH_LENGTH), record_count in [1, max] and
 * last_offset_delta == record_count - 1 (RL_E_BATCH_COUNT), codec known (RL_E_BATCH_CODEC).
 * Does not require len >= batch_len: callers reading a stream use h->batch_len to know how much
 * more to read. Returns 0 or an RL_E_BATCH_* code. */
int batch_header_decode(const uint8_t *buf, size_t len, struct batch_header *h);

/* Reads just batch_len from the first 12 bytes (buf must hold >= 12). */
uint32_t batch_peek_len(const uint8_t *buf);

/* Writes base_offset and leader_epoch into the header in place. The checksum stays valid. */
void batch_stamp(uint8_t *batch, uint64_t base_offset, uint32_t leader_epoch);

/* Computes the checksum a batch of batch_len bytes should carry (0 when batch_len < 24). Uses an
 * AVX2 build of XXH3 for large batches when the CPU has it; the value is the same either way. */
uint64_t batch_compute_checksum(const uint8_t *batch, uint32_t batch_len);

/* Header check plus: len >= batch_len (RL_E_BATCH_SHORT) and checksum (RL_E_BATCH_CHECKSUM).
 * This is the broker's and recovery's check: cheap (one xxh3 pass), never decompresses.
 * On success fills *h when h is not NULL. */
int batch_validate(const uint8_t *buf, size_t len, struct batch_header *h);

/* --- builder (producer side) ------------------------------------------------------------------ */

struct batch_builder;

/* zstd gives up on incompressible records: a batch that zstd shrinks by less than
 * 1/BATCH_ZSTD_MIN_SAVING makes the builder send the next BATCH_ZSTD_GIVE_UP batches
 * uncompressed without trying (measured: on random bytes a full zstd pass per batch cut a
 * producer's throughput to 0.62x at 3.3x its CPU per GB). */
#define BATCH_ZSTD_MIN_SAVING 32
#define BATCH_ZSTD_GIVE_UP 16

/* Creates a builder whose batches hold at most max_batch_bytes uncompressed record bytes plus the
 * header (max_batch_bytes <= RL_BATCH_MAX_BYTES). codec is BATCH_CODEC_NONE or _ZSTD; level is
 * the zstd level (ignored otherwise; 0 means the default, 1 is fastest). Allocates the scratch
 * buffers and a zstd context once. Returns NULL on bad arguments or allocation failure. */
struct batch_builder *batch_builder_create(size_t max_batch_bytes, enum batch_codec codec,
                                           int level);
void batch_builder_destroy(struct batch_builder *b);

/* Starts a new batch (discarding any unfinished one) with these idempotence fields (-1, -1, -1
 * when not idempotent). */
void batch_builder_reset(struct batch_builder *b, int64_t producer_id, int16_t producer_epoch,
                         int32_t base_sequence);

/* Appends one record. Returns 0, or RL_E_FULL when it does not fit (the batch is unchanged;
 * finish it and start another; a record that cannot fit even in an empty batch gets
 * RL_E_BATCH_TOO_LARGE), or RL_E_INVALID_ARGUMENT (pointer/length mismatch as described at
 * struct batch_record_in, or a timestamp whose delta from the batch's first record overflows
 * int64). On any error the batch is unchanged. Copies key, value and headers; no allocation. */
int batch_builder_add(struct batch_builder *b, const struct batch_record_in *rec);

/* Records and uncompressed record bytes added since the last reset. */
uint32_t batch_builder_count(const struct batch_builder *b);
size_t batch_builder_bytes(const struct batch_builder *b);

/* Finishes the batch: compresses if configured (falling back to no compression when zstd
 * would not shrink the records), fills the header (base_offset 0, leader_epoch 0) and the
 * checksum. *out points into the builder's buffer and stays valid until the next reset/add/
 * destroy. Returns the batch length (> 0), or RL_E_BATCH_EMPTY when no record was added, or
 * another negative code. More records may be added after finish; finishing again then yields
 * one batch holding every record since the reset. */
int batch_builder_finish(struct batch_builder *b, const uint8_t **out);

/* Finishes the batch as batch_builder_finish does, then hands over the buffer that holds it
 * instead of copying it out: *out is the batch (at its first byte) in a buffer of
 * batch_builder_capacity(b) bytes that the caller now owns (free() or reuse it), and the builder
 * continues with `fresh`, a buffer of the same size the caller gives up. The builder must be
 * reset before the next add. Returns the batch length, or a negative code as
 * batch_builder_finish (nothing is swapped then, and the caller still owns fresh). */
int batch_builder_finish_swap(struct batch_builder *b, uint8_t *fresh, uint8_t **out);

/* The size of the builder's buffers: max_batch_bytes as created. */
size_t batch_builder_capacity(const struct batch_builder *b);

/* --- reader (consumer side, and deep validation) ---------------------------------------------- */

struct batch_reader;

/* Creates a reader whose scratch buffer (for decompression) holds at most max_records_bytes
 * (clamped to RL_BATCH_MAX_BYTES), allocated here once, with one zstd context.
 * Returns NULL on allocation failure. */
struct batch_reader *batch_reader_create(size_t max_records_bytes);
void batch_reader_destroy(struct batch_reader *r);

/* Opens one whole batch for iteration: validates it (batch_validate) and decompresses its records
 * section into the scratch buffer when compressed (RL_E_BATCH_DECOMPRESS when the bytes are not
 * valid zstd, RL_E_BATCH_DECOMPRESS_LIMIT when the result would exceed the scratch size: a frame
 * declaring a larger size is refused before any work). Also RL_E_BATCH_COUNT when the
 * (decompressed) records section is too small to hold record_count records (each takes at
 * least 7 bytes). The batch bytes must stay valid while iterating. Fills *h when not NULL.
 * Returns 0 or a negative code; after a failed open, batch_reader_next returns that code. */
int batch_reader_open(struct batch_reader *r, const uint8_t *batch, size_t len,
                      struct batch_header *h);

/* Decodes the next record into *rec. Returns 1 when a record was produced, 0 at the end (after
 * checking that exactly record_count records were present and the section was consumed exactly:
 * RL_E_BATCH_COUNT otherwise), or RL_E_BATCH_VARINT / RL_E_BATCH_RECORD / RL_E_BATCH_HEADERS /
 * RL_E_BATCH_OFFSETS for a malformed record: VARINT for an encoding that is too long or
 * overflows, RECORD for lengths that exceed the record (or a record that does not end where its
 * length says), HEADERS for a header count or header lengths the record cannot hold or a null
 * header key, OFFSETS when the offset delta of record i is not i. Headers are checked here too,
 * so batch_header_next cannot fail on a record this returned. Timestamps are first_timestamp +
 * delta with wrap-around (batch_validate_full refuses batches where it wraps). Errors are
 * sticky until the next open. */
int batch_reader_next(struct batch_reader *r, struct batch_record *rec);

/* Walks the headers of a record: *pos starts at 0. Returns 1 with *out filled, 0 when done, or a
 * negative code when malformed. */
int batch_header_next(const struct batch_record *rec, size_t *pos,
                      struct batch_record_header *out);

/* Structural validation: batch_reader_open then every record; returns 0 or the first error.
 * What this accepts, a reader with a scratch buffer at least as large reads to the end. */
int batch_validate_deep(struct batch_reader *r, const uint8_t *batch, size_t len);

/* A description of the reader's last failure (which record, which field, what values), for
 * error messages; "" when the last open or next succeeded. Static storage inside the reader,
 * overwritten by the next call on it. Written only on failure, so the good path pays nothing. */
const char *batch_reader_detail(const struct batch_reader *r);

/* --- full validation (what a broker acknowledges) --------------------------------------------- */

/* How far record timestamps may stray from the broker's clock, as Kafka's topic configs
 * message.timestamp.after.max.ms and message.timestamp.before.max.ms. These are the defaults
 * until topics carry the configs: one hour into the future (Kafka 4.0's default; it was
 * unbounded before), and no bound into the past (Kafka's default: replaying old events with
 * their original timestamps is a normal use). A timestamp far in the future would exempt its
 * segment from time retention; microseconds sent as milliseconds land 54,000 years ahead. */
#define RL_BATCH_TIMESTAMP_AFTER_MAX_MS INT64_C(3600000)
#define RL_BATCH_TIMESTAMP_BEFORE_MAX_MS INT64_MAX

/* The broker's side of a validation: its clock and the timestamp bounds (>= 0; INT64_MAX means
 * no bound). */
struct batch_limits {
    int64_t now_ms;        /* the broker's wall clock, ms since 1970 */
    int64_t after_max_ms;  /* a record may be at most this far ahead of now_ms */
    int64_t before_max_ms; /* a record may be at most this far behind now_ms */
    /* The caller computed the checksum over these very bytes itself (a batch the broker
     * built, as the Kafka listener does from a batch whose CRC-32C it checked): it is not
     * computed again. Everything else is checked as usual. */
    bool checksum_known;
};

/* Everything a broker must check before acknowledging a produced batch, so that every consumer
 * can read what it stores: batch_validate_deep (header, checksum, zstd decompression into the
 * reader's scratch buffer with its size as the hard cap, record count, offset deltas 0..n-1,
 * every varint and length, headers), then what only a producer's batch must satisfy:
 *   - flags hold codec bits only (RL_E_BATCH_FLAGS: control batches and log-append time are
 *     the broker's to write, reserved bits must be 0);
 *   - every record's attributes byte is 0 (RL_E_BATCH_RECORD_ATTRIBUTES);
 *   - record timestamps are >= 0 and first_timestamp + delta does not overflow
 *     (RL_E_BATCH_TIMESTAMP_RANGE); record 0's delta is 0 (RL_E_BATCH_FIRST_TIMESTAMP);
 *     max_timestamp equals the largest record timestamp (RL_E_BATCH_MAX_TIMESTAMP);
 *   - every record timestamp lies in [now - before_max, now + after_max]
 *     (RL_E_BATCH_TIMESTAMP_FUTURE / _PAST).
 * The reader's verdict comes first: a batch the reader refuses gets the reader's code, so
 * whatever a reader refuses is refused here with the same code, and whatever is accepted here a
 * reader with as large a scratch buffer iterates to the end.
 * Create r with RL_BATCH_MAX_BYTES, the scratch size every consumer's reader uses, so a batch
 * accepted here decompresses in every consumer (a smaller r refuses more, never less). Reuses
 * r's buffer and zstd context: no allocation. Fills *h when not NULL. Returns 0 or the code of
 * the first problem found; batch_reader_detail(r) then says where. */
int batch_validate_full(struct batch_reader *r, const uint8_t *batch, size_t len,
                        const struct batch_limits *lim, struct batch_header *h);

#endif
