/*
 * frame: the native protocol's framing and envelope codec (proto/ringlog.proto, top comment).
 * Request path: connection bytes -> frame_parse_header -> frame_decode_request (protobuf-c into
 * a per-request arena) -> frame_check_request (the envelope agrees with the data section) ->
 * broker handler. Response path: handler fills a Ringlog__Response -> frame_encode_response
 * writes header + envelope into one buffer; raw batch bytes follow as separate iovecs.
 *
 * Pure functions: no I/O, no global state, so the fuzz harness (tests/fuzz/fuzz_frame.c) and
 * the test client (tests/lib) use exactly what the broker uses.
 *
 * Frame layout (big-endian lengths):
 *   off 0  u32 frame_len     bytes after this field: 4 + envelope_len + data_len
 *   off 4  u32 envelope_len  bytes of the protobuf envelope
 *   off 8  envelope, then data_len bytes of raw batches
 */
#ifndef RL_PROTO_FRAME_H
#define RL_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "proto/ringlog.pb-c.h"

struct arena;

#define FRAME_HEADER_BYTES 8u
/* Default maximum frame_len (max.frame.bytes). */
#define FRAME_DEFAULT_MAX_BYTES (100u * 1024 * 1024)
/* The smallest maximum a broker may be configured with: a frame must hold a maximal batch. */
#define FRAME_MIN_MAX_BYTES (64u * 1024)
/* Partitions one topic may have: a limit of the protocol, held by the broker (CreateTopics
 * refuses more) and by libringlog (which sizes its per-topic routing tables by it), so a topic
 * the broker creates is always one the client can use. */
#define FRAME_MAX_PARTITIONS_PER_TOPIC 4096
/* The protocol version every API speaks today. */
#define FRAME_VERSION 0u

struct frame_info {
    uint32_t frame_len;    /* as on the wire */
    uint32_t envelope_len;
    uint32_t data_len;     /* frame_len - 4 - envelope_len */
    uint64_t total_bytes;  /* 4 + frame_len: bytes the whole frame occupies */
};

/* Parses the 8-byte frame header at buf (len bytes available). Returns 1 and fills *fi when
 * the header is complete and sane, 0 when fewer than 8 bytes are available, RL_E_FRAME_TOO_LARGE
 * when frame_len exceeds max_frame_bytes, or RL_E_FRAME_MALFORMED when the envelope cannot fit
 * in the frame. Does not look past the header. */
int frame_parse_header(const uint8_t *buf, size_t len, uint32_t max_frame_bytes,
                       struct frame_info *fi);

/* Writes a frame header for an envelope of envelope_len and data_len data bytes. */
void frame_write_header(uint8_t out[8], uint32_t envelope_len, uint32_t data_len);

/* Decodes the Request envelope of a complete frame (frame points at its header) into arena
 * memory. Returns 0 and *out (valid until the arena is reset), or RL_E_FRAME_MALFORMED. */
int frame_decode_request(const uint8_t *frame, const struct frame_info *fi, struct arena *a,
                         Ringlog__Request **out);

/* The same for a Response (clients and tests). */
int frame_decode_response(const uint8_t *frame, const struct frame_info *fi, struct arena *a,
                          Ringlog__Response **out);

/* Checks what framing alone can check about a decoded request: version, a known body, and that
 * the envelope's data lengths add up to the data section (Produce) or that there is no data
 * section (everything else). Returns 0, or RL_E_UNSUPPORTED_VERSION / RL_E_UNKNOWN_API /
 * RL_E_INVALID_REQUEST with a message in msg (msg_cap bytes, NUL-terminated). */
int frame_check_request(const Ringlog__Request *req, uint32_t data_len, char *msg,
                        size_t msg_cap);

/* The Api of a request body case (API_NONE when not set or unknown). */
Ringlog__Api frame_request_api(const Ringlog__Request *req);

/* Short lower-case name of an API for logs and metrics ("produce", "fetch", "unknown"). */
const char *frame_api_name(Ringlog__Api api);

/* Bytes frame_encode_response / frame_encode_request will write (header + envelope). */
size_t frame_response_envelope_bytes(const Ringlog__Response *resp);
size_t frame_request_envelope_bytes(const Ringlog__Request *req);

/* Writes header + envelope into out (frame_*_envelope_bytes of room); data_len data bytes are
 * declared in the header and must follow on the wire. Returns the bytes written. */
size_t frame_encode_response(const Ringlog__Response *resp, uint32_t data_len, uint8_t *out);
size_t frame_encode_request(const Ringlog__Request *req, uint32_t data_len, uint8_t *out);

#endif
