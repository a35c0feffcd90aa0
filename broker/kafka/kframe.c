/* kframe: Kafka framing and request/response headers (see kframe.h). */
#include "broker/kafka/kframe.h"

#include "broker/kafka/kapi.h"
#include "common/err.h"

int kframe_peek(const uint8_t *buf, size_t len, uint32_t max_frame_bytes, size_t *frame_bytes)
{
    if (len < KFRAME_SIZE_BYTES)
        return 0;
    int32_t size = (int32_t)kwire_load_be32(buf);
    if (size < 0 || (uint32_t)size < KFRAME_MIN_REQUEST_BYTES)
        return RL_E_FRAME_MALFORMED;
    if ((uint32_t)size > max_frame_bytes)
        return RL_E_FRAME_TOO_LARGE;
    *frame_bytes = KFRAME_SIZE_BYTES + (size_t)size;
    return 1;
}

int kframe_read_header(struct kwire_reader *r, struct kreq_header *h)
{
    h->api_key = kwire_read_i16(r, "request_api_key");
    h->api_version = kwire_read_i16(r, "request_api_version");
    h->correlation_id = kwire_read_i32(r, "correlation_id");
    h->client_id = kwire_read_nstr(r, "client_id");
    h->flexible = 0;
    return r->err;
}

void kframe_write_request_header(struct kwire_writer *w, const struct kreq_header *h)
{
    int flexible = w->flexible;
    w->flexible = 0; /* client_id keeps its i16 length in every header version */
    kwire_write_i16(w, h->api_key);
    kwire_write_i16(w, h->api_version);
    kwire_write_i32(w, h->correlation_id);
    kwire_write_str(w, h->client_id);
    w->flexible = flexible;
    if (h->flexible)
        kwire_write_uvarint(w, 0);
}

int kframe_response_header_flexible(const struct kreq_header *h)
{
    return h->flexible && h->api_key != KAPI_API_VERSIONS;
}

void kframe_write_response_header(struct kwire_writer *w, const struct kreq_header *h)
{
    kwire_write_i32(w, h->correlation_id);
    if (kframe_response_header_flexible(h))
        kwire_write_uvarint(w, 0);
}
