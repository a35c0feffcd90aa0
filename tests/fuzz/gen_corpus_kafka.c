/*
 * gen_corpus_kafka: writes the seed corpora of fuzz_kafka and fuzz_kafka_batch (normally via
 * `make fuzz-corpus-kafka`): every served API at its lowest and highest version, kafka-python's
 * pipelined probe, an ApiVersions request above the range; and Kafka batches in every codec,
 * raw and fixed-up, plus broken ones. Deterministic, so regenerating yields the same files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/kafka/kbatch.h"
#include "broker/kafka/kcodec.h"
#include "broker/kafka/kmsg.h"
#include "common/arena.h"
#include "common/batch.h"
#include "tests/unit/test_kafka_samples.h"

static struct arena arena;

static void emit(const char *dir, const char *name, const uint8_t *a, size_t alen,
                 const uint8_t *b, size_t blen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, alen, f) != alen || (blen && fwrite(b, 1, blen, f) != blen) ||
        fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static uint8_t *request(int16_t key, int16_t version, size_t *len)
{
    union kmsg_req_body body;
    kafka_sample_request(key, &body);
    struct kreq_header h = {key, version, 7, kstr_of("rdkafka"), 0};
    struct kmsg_out out;
    if (kmsg_encode_request(&h, &body, &arena, &out) != 0) {
        fprintf(stderr, "gen_corpus_kafka: cannot encode %d v%d\n", key, version);
        exit(1);
    }
    *len = out.bytes;
    return kmsg_flatten(&out, &arena);
}

static void requests(const char *dir)
{
    for (int i = 0; i < kapi_count(); i++) {
        const struct kapi *api = kapi_at(i);
        int16_t versions[2] = {api->min_version, api->max_version};
        for (int j = 0; j < (versions[0] == versions[1] ? 1 : 2); j++) {
            size_t len;
            uint8_t *f = request(api->key, versions[j], &len);
            char name[64];
            snprintf(name, sizeof(name), "%s-v%d", api->name, versions[j]);
            emit(dir, name, f, len, NULL, 0);
        }
    }
    size_t a, b;
    uint8_t *av = request(KAPI_API_VERSIONS, 0, &a);
    uint8_t *md = request(KAPI_METADATA, 0, &b);
    emit(dir, "probe-ApiVersions-v0-Metadata-v0", av, a, md, b);
    uint8_t *v3 = request(KAPI_API_VERSIONS, 3, &a);
    v3[7] = 4; /* version 4: above the range */
    emit(dir, "ApiVersions-v4-unsupported", v3, a, NULL, 0);
}

static void batches(const char *dir)
{
    struct kbatch_ctx *ctx = kbatch_ctx_create(1 << 20, 1);
    struct batch_builder *bb = batch_builder_create(1 << 16, BATCH_CODEC_NONE, 0);
    batch_builder_reset(bb, -1, -1, -1);
    static const struct batch_record_header hdr = {(const uint8_t *)"h", 1,
                                                   (const uint8_t *)"v", 1};
    for (int i = 0; i < 20; i++) {
        char v[64];
        int n = snprintf(v, sizeof(v), "value number %d of the seed corpus", i);
        struct batch_record_in r = {.key = i % 2 ? "k" : NULL, .key_len = i % 2,
                                    .value = v, .value_len = (size_t)n,
                                    .timestamp = 1700000000000 + i,
                                    .headers = i % 3 ? NULL : &hdr,
                                    .header_count = i % 3 ? 0 : 1};
        batch_builder_add(bb, &r);
    }
    const uint8_t *batch;
    int blen = batch_builder_finish(bb, &batch);
    const uint8_t *records = batch + RL_BATCH_HEADER_SIZE;
    size_t rlen = (size_t)blen - RL_BATCH_HEADER_SIZE;
    struct kbatch_header h = {.magic = 2, .last_offset_delta = 19,
                              .base_timestamp = 1700000000000,
                              .max_timestamp = 1700000000019, .producer_id = 9,
                              .producer_epoch = 1, .base_sequence = 0, .records_count = 20};
    static const int codecs[] = {KCODEC_NONE, KCODEC_GZIP, KCODEC_SNAPPY, KCODEC_SNAPPY_XERIAL,
                                 KCODEC_LZ4, KCODEC_ZSTD};
    static uint8_t out[1 << 16];
    for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]); c++) {
        int64_t n = kbatch_build_kafka(ctx, &h, codecs[c], 0, records, rlen, out, sizeof(out));
        char name[64];
        uint8_t mode = 0; /* raw, re-compress, in place */
        snprintf(name, sizeof(name), "batch-%s%s", kcodec_name(codecs[c] & 7),
                 codecs[c] == KCODEC_SNAPPY_XERIAL ? "-xerial" : "");
        emit(dir, name, &mode, 1, out, (size_t)n);
        mode = 1 | 2; /* fixed up, stored uncompressed */
        out[n / 2] ^= 0x5a;
        snprintf(name, sizeof(name), "fixedup-damaged-%s%s", kcodec_name(codecs[c] & 7),
                 codecs[c] == KCODEC_SNAPPY_XERIAL ? "-xerial" : "");
        emit(dir, name, &mode, 1, out, (size_t)n);
    }
    uint8_t mode = 4; /* raw, no room before: copied */
    emit(dir, "reference-4.3", &mode, 1, kafka_sample_batch, sizeof(kafka_sample_batch));
    uint8_t two[140];
    memcpy(two, kafka_sample_batch, 70);
    memcpy(two + 70, kafka_sample_batch, 70);
    emit(dir, "two-batches", &mode, 1, two, sizeof(two));
    uint8_t legacy[40] = {0};
    legacy[11] = 28;
    legacy[16] = 1;
    emit(dir, "legacy-magic1", &mode, 1, legacy, sizeof(legacy));
    batch_builder_destroy(bb);
    kbatch_ctx_destroy(ctx);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen_corpus_kafka REQUEST_DIR BATCH_DIR\n");
        return 2;
    }
    arena_init(&arena, 1 << 20, 64u << 20);
    requests(argv[1]);
    batches(argv[2]);
    arena_destroy(&arena);
    return 0;
}
