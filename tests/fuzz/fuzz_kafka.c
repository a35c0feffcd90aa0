/*
 * fuzz_kafka: the Kafka listener's request path from bytes to checked requests, without the
 * network. The input is a connection's byte stream: frames are cut from it as a connection
 * would (kframe_peek with a 1 MiB cap), each is decoded into an arena reset per request
 * (kmsg_decode_request), and each Produce partition's records go through kbatch_from_kafka in
 * place, as the listener will do. Properties: nothing reads past the input; every refusal has
 * a message; a decoded request re-encodes, decodes again and re-encodes to the same bytes (the
 * codec's two directions agree on every field of every version); every batch kbatch accepts
 * passes batch_validate; an ApiVersions request at an unsupported version gets a fallback
 * answer.
 */
#include <string.h>

#include "broker/kafka/kbatch.h"
#include "broker/kafka/kframe.h"
#include "broker/kafka/kmsg.h"
#include "common/arena.h"
#include "common/batch.h"
#include "common/err.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_FRAME (1u << 20)

static struct arena arena;
static struct kbatch_ctx *kctx;
static uint8_t *frame;

static void check_reencode(const struct kmsg_request *req)
{
    struct kmsg_out a, b;
    FUZZ_CHECK(kmsg_encode_request(&req->hdr, &req->body, &arena, &a) == 0);
    uint8_t *flat = kmsg_flatten(&a, &arena);
    uint8_t *copy = kmsg_flatten(&a, &arena);
    FUZZ_CHECK(flat && copy);
    struct kmsg_request again;
    char err[256];
    FUZZ_CHECK(kmsg_decode_request(copy, a.bytes, &arena, &again, err, sizeof(err)) == 0);
    FUZZ_CHECK(kmsg_encode_request(&again.hdr, &again.body, &arena, &b) == 0);
    FUZZ_CHECK(b.bytes == a.bytes);
    FUZZ_CHECK(memcmp(kmsg_flatten(&b, &arena), flat, a.bytes) == 0);
}

static void produce_batches(struct kmsg_produce_req *p)
{
    for (int32_t t = 0; t < p->n_topics; t++) {
        for (int32_t i = 0; i < p->topics[t].n_partitions; i++) {
            struct kmsg_records *r = &p->topics[t].partitions[i].records;
            if (r->len < 0)
                continue;
            uint8_t *out;
            size_t out_len;
            struct kbatch_header h;
            char err[256] = "";
            int rc = kbatch_from_kafka(kctx, r->data, (size_t)r->len, 4, &arena, &out, &out_len,
                                       &h, err, sizeof(err));
            if (rc == 0)
                FUZZ_CHECK(batch_validate(out, out_len, NULL) == 0);
            else
                FUZZ_CHECK(strlen(err) > 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!kctx) {
        arena_init(&arena, 64 * 1024, 64u << 20);
        kctx = kbatch_ctx_create(4u << 20, 1);
        frame = malloc(FUZZ_MAX_FRAME + 4);
        FUZZ_CHECK(kctx && frame);
    }
    size_t pos = 0;
    for (int frames = 0; frames < 1000 && pos < size; frames++) {
        size_t frame_bytes;
        int rc = kframe_peek(data + pos, size - pos, FUZZ_MAX_FRAME, &frame_bytes);
        if (rc <= 0 || frame_bytes > size - pos)
            break; /* need more bytes, or the connection would be closed */
        memcpy(frame, data + pos, frame_bytes); /* the connection's buffer is writable */
        arena_reset(&arena);
        struct kmsg_request req;
        char err[256] = "";
        rc = kmsg_decode_request(frame, frame_bytes, &arena, &req, err, sizeof(err));
        if (rc == 0) {
            check_reencode(&req);
            if (req.hdr.api_key == KAPI_PRODUCE)
                produce_batches(&req.body.produce);
        } else {
            FUZZ_CHECK(rc == RL_E_FRAME_MALFORMED || rc == RL_E_UNKNOWN_API ||
                       rc == RL_E_UNSUPPORTED_VERSION || rc == RL_E_FULL);
            FUZZ_CHECK(strlen(err) > 0);
            if (rc == RL_E_UNSUPPORTED_VERSION && req.hdr.api_key == KAPI_API_VERSIONS) {
                struct kmsg_out out;
                FUZZ_CHECK(kmsg_encode_api_versions_fallback(&req.hdr, &arena, &out) == 0);
            }
        }
        pos += frame_bytes;
    }
    return 0;
}
