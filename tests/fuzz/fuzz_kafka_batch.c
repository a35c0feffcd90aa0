/*
 * fuzz_kafka_batch: RecordBatch v2 translation both ways on hostile bytes. The first input
 * byte picks a mode: raw (the bytes are one Produce partition's records as sent), or fixed up
 * (magic 2, batchLength and CRC-32C made right, so the fuzzer reaches the codecs and record
 * counts behind the CRC). Properties: nothing reads past the input; a refused batch is left
 * unchanged and has a message; every accepted batch passes batch_validate; served back as a
 * Kafka batch (stamped, with and without zstd) it passes kbatch_check and translates again to
 * a batch with the same records section; flagged as a control batch (a Raft entry), it is left
 * out, or served as one Kafka control batch with a right CRC-32C and the fixed control record.
 */
#include <string.h>

#include "broker/kafka/crc32c.h"
#include "broker/kafka/kbatch.h"
#include "broker/kafka/kwire.h"
#include "common/arena.h"
#include "common/batch.h"
#include "common/endian.h"
#include "common/varint.h"
#include "common/err.h"
#include "tests/fuzz/fuzz.h"

static struct arena arena;
static struct kbatch_ctx *ctx_zstd, *ctx_raw;
static uint8_t *buf, *before;
#define FUZZ_MAX_BATCH (1u << 20)

static void serve_back(const uint8_t *stored, size_t len)
{
    uint8_t *copy = arena_alloc(&arena, len);
    FUZZ_CHECK(copy);
    memcpy(copy, stored, len);
    batch_stamp(copy, 5000, 3);
    for (int allow_zstd = 0; allow_zstd < 2; allow_zstd++) {
        struct kmsg_records rec;
        int n = kbatch_serve(ctx_zstd, copy, len, allow_zstd, 1, &arena, &rec);
        if (n < 0) {
            /* only a zstd section that does not decompress may fail, and only when converting */
            FUZZ_CHECK(!allow_zstd && (n == RL_E_BATCH_DECOMPRESS || n == RL_E_BATCH_TOO_LARGE));
            continue;
        }
        FUZZ_CHECK(n == 1);
        struct kmsg_out o = {(struct iovec *)rec.iov, rec.iovcnt, (size_t)rec.len};
        uint8_t *flat = kmsg_flatten(&o, &arena);
        FUZZ_CHECK(flat);
        struct kbatch_header k;
        char err[256];
        FUZZ_CHECK(kbatch_check(flat, (size_t)rec.len, &k, err, sizeof(err)) == 0);
        FUZZ_CHECK(k.base_offset == 5000 && k.leader_epoch == 3);
        uint8_t *again;
        size_t again_len;
        FUZZ_CHECK(kbatch_from_kafka(ctx_raw, flat, (size_t)rec.len, 0, &arena, &again,
                                     &again_len, &k, err, sizeof(err)) == 0);
        if (allow_zstd)
            FUZZ_CHECK(again_len == len && memcmp(again + RL_BATCH_HEADER_SIZE,
                                                  copy + RL_BATCH_HEADER_SIZE,
                                                  len - RL_BATCH_HEADER_SIZE) == 0);
    }
}

/* The same stored bytes flagged as a control batch (a replicated log's Raft entry): left out
 * without with_control; with it, one Kafka control batch of one record at its last offset,
 * whatever the stored record holds, with a right CRC-32C. */
static void serve_as_control(const uint8_t *stored, size_t len)
{
    uint8_t *copy = arena_alloc(&arena, len);
    FUZZ_CHECK(copy);
    memcpy(copy, stored, len);
    rl_store_le16(copy + BATCH_OFF_FLAGS, BATCH_FLAG_CONTROL);
    rl_store_le64(copy + BATCH_OFF_CHECKSUM, batch_compute_checksum(copy, (uint32_t)len));
    batch_stamp(copy, 7000, 4);
    struct kmsg_records rec;
    FUZZ_CHECK(kbatch_serve(ctx_zstd, copy, len, 1, 0, &arena, &rec) == 0 && rec.len == 0);
    FUZZ_CHECK(kbatch_serve(ctx_zstd, copy, len, 0, 1, &arena, &rec) == 1);
    FUZZ_CHECK(rec.len > KBATCH_HEADER_SIZE &&
               rec.len <= KBATCH_HEADER_SIZE + KBATCH_CONTROL_RECORD_MAX);
    struct kmsg_out o = {(struct iovec *)rec.iov, rec.iovcnt, (size_t)rec.len};
    uint8_t *flat = kmsg_flatten(&o, &arena);
    FUZZ_CHECK(flat);
    FUZZ_CHECK(kwire_load_be32(flat + KBATCH_OFF_BATCH_LENGTH) == (uint32_t)rec.len - 12);
    FUZZ_CHECK(kwire_load_be16(flat + KBATCH_OFF_ATTRIBUTES) == KBATCH_ATTR_CONTROL);
    FUZZ_CHECK(kwire_load_be64(flat + KBATCH_OFF_BASE_OFFSET) == 7000);
    FUZZ_CHECK(kwire_load_be32(flat + KBATCH_OFF_RECORDS_COUNT) == 1);
    FUZZ_CHECK(kwire_load_be32(flat + KBATCH_OFF_CRC) ==
               crc32c_update(0, flat + KBATCH_CRC_FROM, (size_t)rec.len - KBATCH_CRC_FROM));
    /* The record: length, attributes, timestamp delta, offset delta, key length, then the key
     * (version 0, type), whose type is the only byte pair not fixed by the header. */
    int32_t delta = (int32_t)kwire_load_be32(flat + KBATCH_OFF_LAST_OFFSET_DELTA);
    uint8_t want[KBATCH_CONTROL_RECORD_MAX];
    size_t n = kbatch_control_record(
        want, delta, kwire_load_be16(flat + KBATCH_HEADER_SIZE + 6 + varint_size32(delta)));
    FUZZ_CHECK(n == (size_t)rec.len - KBATCH_HEADER_SIZE &&
               memcmp(want, flat + KBATCH_HEADER_SIZE, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx_zstd) {
        arena_init(&arena, 1 << 20, 256u << 20);
        ctx_zstd = kbatch_ctx_create(4u << 20, 1);
        ctx_raw = kbatch_ctx_create(4u << 20, 0);
        buf = malloc(FUZZ_MAX_BATCH + 4);
        before = malloc(FUZZ_MAX_BATCH + 4);
        FUZZ_CHECK(ctx_zstd && ctx_raw && buf && before);
    }
    if (size < 1 || size - 1 > FUZZ_MAX_BATCH)
        return 0;
    int mode = data[0];
    size_t len = size - 1;
    uint8_t *k = buf + 4;
    memcpy(k, data + 1, len);
    if ((mode & 1) && len >= KBATCH_HEADER_SIZE) {
        k[16] = 2;
        uint32_t bl = (uint32_t)(len - 12);
        k[8] = (uint8_t)(bl >> 24);
        k[9] = (uint8_t)(bl >> 16);
        k[10] = (uint8_t)(bl >> 8);
        k[11] = (uint8_t)bl;
        uint32_t crc = crc32c_update(0, k + 21, len - 21);
        k[17] = (uint8_t)(crc >> 24);
        k[18] = (uint8_t)(crc >> 16);
        k[19] = (uint8_t)(crc >> 8);
        k[20] = (uint8_t)crc;
    }
    memcpy(before, buf, len + 4);
    arena_reset(&arena);
    struct kbatch_ctx *ctx = mode & 2 ? ctx_raw : ctx_zstd;
    uint8_t *out;
    size_t out_len;
    struct kbatch_header h;
    char err[256] = "";
    int rc = kbatch_from_kafka(ctx, k, len, mode & 4 ? 0 : 4, &arena, &out, &out_len, &h, err,
                               sizeof(err));
    if (rc != 0) {
        FUZZ_CHECK(strlen(err) > 0);
        FUZZ_CHECK(memcmp(before, buf, len + 4) == 0);
        return 0;
    }
    FUZZ_CHECK(batch_validate(out, out_len, NULL) == 0);
    serve_back(out, out_len);
    serve_as_control(out, out_len);
    return 0;
}
