/*
 * kmsg: the top of the Kafka codec (see kmsg.h): header handling, dispatch through the kapi
 * table, and the two-pass encoder (measure, allocate once from the arena, write).
 */
#include "broker/kafka/kmsg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker/kafka/kmsg_internal.h"
#include "common/arena.h"
#include "common/err.h"
#include "common/log.h"

__attribute__((format(printf, 3, 4))) static void errf(char *err, size_t errlen,
                                                        const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The outcome of a decoding kio, with a message naming what failed. */
static int decode_result(const struct kio *io, const char *what, const char *name,
                         int16_t version, char *err, size_t errlen)
{
    if (io->err == RL_E_FULL) {
        errf(err, errlen, "Kafka %s v%d %s: too large for the request memory limit; send "
             "smaller requests", name, version, what);
        return RL_E_FULL;
    }
    if (io->r.err) {
        errf(err, errlen, "Kafka %s v%d %s: field %s: %s", name, version, what, io->r.field,
             io->r.problem);
        return RL_E_FRAME_MALFORMED;
    }
    if (kwire_remaining(&io->r) != 0) {
        errf(err, errlen, "Kafka %s v%d %s: %zu unexpected bytes after the body (a version "
             "mismatch between client and broker?)", name, version, what,
             kwire_remaining(&io->r));
        return RL_E_FRAME_MALFORMED;
    }
    return 0;
}

static int check_size_prefix(const uint8_t *frame, size_t len, char *err, size_t errlen)
{
    if (len < KFRAME_SIZE_BYTES || kwire_load_be32(frame) != len - KFRAME_SIZE_BYTES) {
        errf(err, errlen, "Kafka frame: the size prefix does not match the %zu bytes given",
             len);
        return RL_E_FRAME_MALFORMED;
    }
    return 0;
}

int kmsg_decode_request(uint8_t *frame, size_t len, struct arena *a, struct kmsg_request *req,
                        char *err, size_t errlen)
{
    memset(req, 0, sizeof(*req));
    int rc = check_size_prefix(frame, len, err, errlen);
    if (rc)
        return rc;
    struct kio io = {.decoding = 1, .arena = a};
    kwire_reader_init(&io.r, frame + KFRAME_SIZE_BYTES, len - KFRAME_SIZE_BYTES, 0);
    if (kframe_read_header(&io.r, &req->hdr)) {
        errf(err, errlen, "Kafka request header: field %s: %s", io.r.field, io.r.problem);
        return RL_E_FRAME_MALFORMED;
    }
    const struct kapi *api = kapi_lookup(req->hdr.api_key);
    if (!api) {
        errf(err, errlen, "Kafka API key %d is not served by this broker (ApiVersions lists "
             "what is)", req->hdr.api_key);
        return RL_E_UNKNOWN_API;
    }
    req->api = api;
    int16_t v = req->hdr.api_version;
    if (!kapi_supports(api, v)) {
        errf(err, errlen, "Kafka %s v%d is not served; this broker serves v%d to v%d", api->name,
             v, api->min_version, api->max_version);
        return RL_E_UNSUPPORTED_VERSION;
    }
    req->hdr.flexible = kapi_flexible(api, v);
    io.r.flexible = req->hdr.flexible;
    io.version = v;
    kio_tags(&io, "request header tags");
    if (io.r.err)
        return decode_result(&io, "request header", api->name, v, err, errlen);
    api->request_io(&io, &req->body);
    return decode_result(&io, "request", api->name, v, err, errlen);
}

typedef void (*kmsg_io_fn)(struct kio *io, void *body);

/* One pass of the encoder: size placeholder, header, body. */
static void encode_pass(struct kio *io, const struct kreq_header *hdr, int request,
                        kmsg_io_fn fn, void *body)
{
    kwire_write_i32(&io->w, 0); /* the size, patched once known */
    if (request)
        kframe_write_request_header(&io->w, hdr);
    else
        kframe_write_response_header(&io->w, hdr);
    io->w.flexible = hdr->flexible;
    fn(io, body);
    kwire_writer_finish(&io->w);
}

static int encode(const struct kreq_header *hdr, int request, kmsg_io_fn fn, const void *body,
                  struct arena *a, struct kmsg_out *out)
{
    /* The codec functions take non-const bodies because the same code decodes; in this mode
     * they only read from it. */
    void *b = (void *)(uintptr_t)body;
    struct kio io = {.decoding = 0, .version = hdr->api_version};
    kwire_writer_measure(&io.w, 0);
    encode_pass(&io, hdr, request, fn, b);
    if (io.err)
        return io.err;
    if (io.w.total - KFRAME_SIZE_BYTES > INT32_MAX)
        return RL_E_INVALID_ARGUMENT;
    size_t inline_bytes = io.w.inline_len, total = io.w.total;
    int iov_n = io.w.iov_n;
    uint8_t *buf = arena_alloc(a, inline_bytes);
    struct iovec *iov = arena_alloc(a, (size_t)iov_n * sizeof(*iov));
    if (!buf || !iov)
        return RL_E_FULL;
    io = (struct kio){.decoding = 0, .version = hdr->api_version};
    kwire_writer_init(&io.w, buf, inline_bytes, iov, iov_n, 0);
    encode_pass(&io, hdr, request, fn, b);
    RL_ASSERT(!io.err && !io.w.overflow && io.w.total == total && io.w.iov_n == iov_n);
    kwire_store_be32(buf, (uint32_t)(total - KFRAME_SIZE_BYTES));
    *out = (struct kmsg_out){iov, iov_n, total};
    return 0;
}

int kmsg_encode_response(const struct kreq_header *hdr, const union kmsg_resp_body *body,
                         struct arena *a, struct kmsg_out *out)
{
    const struct kapi *api = kapi_lookup(hdr->api_key);
    if (!api)
        return RL_E_INVALID_ARGUMENT;
    struct kreq_header h = *hdr;
    h.flexible = kapi_flexible(api, h.api_version);
    return encode(&h, 0, api->response_io, body, a, out);
}

int kmsg_encode_request(const struct kreq_header *hdr, const union kmsg_req_body *body,
                        struct arena *a, struct kmsg_out *out)
{
    const struct kapi *api = kapi_lookup(hdr->api_key);
    if (!api)
        return RL_E_INVALID_ARGUMENT;
    struct kreq_header h = *hdr;
    h.flexible = kapi_flexible(api, h.api_version);
    return encode(&h, 1, api->request_io, body, a, out);
}

void kmsg_api_versions_fill(struct kmsg_api_versions_resp *resp, struct arena *a)
{
    int n = kapi_count();
    memset(resp, 0, sizeof(*resp));
    resp->apis = arena_alloc(a, (size_t)n * sizeof(*resp->apis));
    if (!resp->apis)
        return; /* encoding an empty list is still a valid answer */
    for (int i = 0; i < n; i++) {
        const struct kapi *api = kapi_at(i);
        resp->apis[i] = (struct kmsg_api_version){api->key, api->min_version, api->max_version};
    }
    resp->n_apis = n;
}

int kmsg_encode_api_versions_fallback(const struct kreq_header *hdr, struct arena *a,
                                      struct kmsg_out *out)
{
    union kmsg_resp_body body;
    kmsg_api_versions_fill(&body.api_versions, a);
    body.api_versions.error_code = 35; /* UNSUPPORTED_VERSION */
    struct kreq_header h = *hdr;
    h.api_key = KAPI_API_VERSIONS;
    h.api_version = 0;
    h.flexible = 0;
    return encode(&h, 0, kmsg_api_versions_resp_io, &body, a, out);
}

int kmsg_decode_response(int16_t api_key, int16_t api_version, uint8_t *frame, size_t len,
                         struct arena *a, int32_t *correlation_id, union kmsg_resp_body *body,
                         char *err, size_t errlen)
{
    memset(body, 0, sizeof(*body));
    const struct kapi *api = kapi_lookup(api_key);
    if (!api) {
        errf(err, errlen, "Kafka API key %d has no codec", api_key);
        return RL_E_UNKNOWN_API;
    }
    int rc = check_size_prefix(frame, len, err, errlen);
    if (rc)
        return rc;
    struct kreq_header h = {.api_key = api_key, .api_version = api_version,
                            .flexible = kapi_flexible(api, api_version)};
    struct kio io = {.decoding = 1, .arena = a, .version = api_version};
    kwire_reader_init(&io.r, frame + KFRAME_SIZE_BYTES, len - KFRAME_SIZE_BYTES, 0);
    *correlation_id = kwire_read_i32(&io.r, "correlation_id");
    io.r.flexible = h.flexible;
    if (kframe_response_header_flexible(&h))
        kio_tags(&io, "response header tags");
    api->response_io(&io, body);
    return decode_result(&io, "response", api->name, api_version, err, errlen);
}

uint8_t *kmsg_flatten(const struct kmsg_out *out, struct arena *a)
{
    uint8_t *buf = arena_alloc(a, out->bytes);
    if (!buf)
        return NULL;
    size_t pos = 0;
    for (int i = 0; i < out->iovcnt; i++) {
        memcpy(buf + pos, out->iov[i].iov_base, out->iov[i].iov_len);
        pos += out->iov[i].iov_len;
    }
    return buf;
}
