/*
 * kframe: Kafka's framing and headers. Kafka listener path: connection bytes -> kframe_peek (is
 * a whole frame here? is it within the cap?) -> kmsg_decode_request, which reads the request
 * header through kframe_read_header -> per-API body codec. Responses start with the header
 * written by kframe_write_response_header.
 *
 * Frame: i32 size (bytes that follow, not counting itself), header, body.
 * Request header v1: api_key i16, api_version i16, correlation_id i32, client_id nstr (always the
 * i16-length form, even in v2); v2 (flexible APIs) adds a tagged-field section. v0 (no client_id)
 * is only ControlledShutdown v0, which ringlog does not serve.
 * Response header v0: correlation_id i32; v1 (flexible APIs) adds a tagged-field section, except
 * that ApiVersions always answers with v0 so a client can read it before it knows what the
 * broker speaks.
 * Pure functions: no I/O, no state.
 */
#ifndef RL_BROKER_KAFKA_KFRAME_H
#define RL_BROKER_KAFKA_KFRAME_H

#include <stddef.h>
#include <stdint.h>

#include "broker/kafka/kwire.h"

#define KFRAME_SIZE_BYTES 4u
/* Default cap on a request's size field: Kafka's socket.request.max.bytes. */
#define KFRAME_DEFAULT_MAX_BYTES (100u * 1024 * 1024)
/* The smallest request header: key, version, correlation id, client_id length. */
#define KFRAME_MIN_REQUEST_BYTES 10u

struct kreq_header {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    struct kstr client_id; /* may be null */
    int flexible;          /* header v2 (and a flexible body) */
};

/* Looks at the size prefix of the bytes at buf (len available). Returns 1 with *frame_bytes =
 * 4 + size when the prefix is there and sane (the frame may not be complete yet: compare
 * *frame_bytes with what has arrived), 0 when fewer than 4 bytes are available,
 * RL_E_FRAME_TOO_LARGE when size > max_frame_bytes, RL_E_FRAME_MALFORMED when the size is
 * negative or smaller than any request header. Either error means: close the connection. */
int kframe_peek(const uint8_t *buf, size_t len, uint32_t max_frame_bytes, size_t *frame_bytes);

/* Reads the fixed prefix every request header version shares (api_key, api_version,
 * correlation_id, client_id) from r, which must be non-flexible. h->flexible is left 0; the
 * caller, knowing the API, reads the header's tagged fields when the version is flexible.
 * Returns 0 or RL_E_FRAME_MALFORMED (r says which field). */
int kframe_read_header(struct kwire_reader *r, struct kreq_header *h);

/* Writes a request header (tests and tools speak as clients). */
void kframe_write_request_header(struct kwire_writer *w, const struct kreq_header *h);

/* 1 when the response to this request carries response header v1 (a tagged-field section). */
int kframe_response_header_flexible(const struct kreq_header *h);

/* Writes the response header (correlation id, and tags when flexible) to a non-flexible w. */
void kframe_write_response_header(struct kwire_writer *w, const struct kreq_header *h);

#endif
