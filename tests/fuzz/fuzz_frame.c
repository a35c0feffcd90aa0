/*
 * fuzz_frame: the broker's request path from bytes to a checked request, without the network.
 * The input is a connection's byte stream: frames are cut from it exactly as a connection does
 * (frame_parse_header with a 1 MiB limit), each envelope is decoded into an arena reset per
 * request, checked (frame_check_request), and for Produce every batch of every partition is
 * validated as the broker validates it. Properties: nothing reads past the input; every check
 * failure has a message; a decoded request re-encodes to the size protobuf-c computed and, when
 * that decodes again, to the same size (no state leaks between requests through the arena).
 */
#include <string.h>

#include "common/arena.h"
#include "proto/frame.h"
#include "common/batch.h"
#include "common/err.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_FRAME (1u << 20)

static struct arena arena;
static struct arena arena2;
static uint8_t *scratch;
static size_t scratch_cap;

static void fuzz_produce_data(const Ringlog__ProduceRequest *p, const uint8_t *data,
                              uint32_t data_len)
{
    uint64_t pos = 0;
    for (size_t t = 0; t < p->n_topics; t++) {
        for (size_t i = 0; i < p->topics[t]->n_partitions; i++) {
            uint32_t len = p->topics[t]->partitions[i]->data_len;
            FUZZ_CHECK(pos + len <= data_len); /* frame_check_request guaranteed it */
            uint32_t off = 0;
            while (off < len) {
                struct batch_header h;
                if (batch_validate(data + pos + off, len - off, &h))
                    break;
                FUZZ_CHECK(h.batch_len >= RL_BATCH_HEADER_SIZE && h.batch_len <= len - off);
                off += h.batch_len;
            }
            pos += len;
        }
    }
}

static void fuzz_roundtrip(const Ringlog__Request *req)
{
    size_t n = frame_request_envelope_bytes(req);
    if (n > scratch_cap) {
        uint8_t *nb = realloc(scratch, n);
        if (!nb)
            return;
        scratch = nb;
        scratch_cap = n;
    }
    size_t w = frame_encode_request(req, 0, scratch);
    FUZZ_CHECK(w == n);
    struct frame_info fi;
    FUZZ_CHECK(frame_parse_header(scratch, w, UINT32_MAX, &fi) == 1);
    arena_reset(&arena2);
    Ringlog__Request *again = NULL;
    /* protobuf-c keeps unknown fields and writes them back as they came, including keys it
     * tolerated on input but refuses on a second pass (field number 0 in a non-minimal varint),
     * so only a request without such fields must decode again; when it does, its encoding
     * must be stable. */
    if (frame_decode_request(scratch, &fi, &arena2, &again) == 0)
        FUZZ_CHECK(frame_request_envelope_bytes(again) == n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!arena.pb.alloc) {
        arena_init(&arena, 8192, 16u << 20);
        arena_init(&arena2, 8192, 64u << 20);
    }
    size_t pos = 0;
    for (int frames = 0; frames < 1000 && pos < size; frames++) {
        struct frame_info fi;
        int rc = frame_parse_header(data + pos, size - pos, FUZZ_MAX_FRAME, &fi);
        if (rc <= 0)
            break; /* need more bytes, or the connection would be closed */
        FUZZ_CHECK(fi.total_bytes == 4ull + fi.frame_len);
        FUZZ_CHECK(FRAME_HEADER_BYTES + (uint64_t)fi.envelope_len + fi.data_len == fi.total_bytes);
        if (size - pos < fi.total_bytes)
            break;
        arena_reset(&arena);
        Ringlog__Request *req = NULL;
        if (frame_decode_request(data + pos, &fi, &arena, &req) == 0) {
            char msg[256];
            rc = frame_check_request(req, fi.data_len, msg, sizeof(msg));
            FUZZ_CHECK(rc == 0 || rc == RL_E_UNKNOWN_API || rc == RL_E_UNSUPPORTED_VERSION ||
                       rc == RL_E_INVALID_REQUEST);
            FUZZ_CHECK(rc == 0 || strlen(msg) > 0);
            if (rc == 0 && req->body_case == RINGLOG__REQUEST__BODY_PRODUCE)
                fuzz_produce_data(req->produce, data + pos + FRAME_HEADER_BYTES +
                                  fi.envelope_len, fi.data_len);
            fuzz_roundtrip(req);
        }
        pos += fi.total_bytes;
    }
    return 0;
}
