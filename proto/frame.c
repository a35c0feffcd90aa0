/*
 * frame: see frame.h. Big-endian on the wire for lengths (network order, like every framing a
 * person will read in a packet capture); batches inside stay little-endian.
 */
#include "proto/frame.h"

#include <stdio.h>
#include <string.h>

#include "common/arena.h"
#include "common/err.h"

static uint32_t frame_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void frame_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int frame_parse_header(const uint8_t *buf, size_t len, uint32_t max_frame_bytes,
                       struct frame_info *fi)
{
    if (len < FRAME_HEADER_BYTES)
        return 0;
    uint32_t frame_len = frame_get_be32(buf);
    uint32_t env_len = frame_get_be32(buf + 4);
    if (frame_len > max_frame_bytes)
        return RL_E_FRAME_TOO_LARGE;
    if (frame_len < 4 || env_len > frame_len - 4)
        return RL_E_FRAME_MALFORMED;
    fi->frame_len = frame_len;
    fi->envelope_len = env_len;
    fi->data_len = frame_len - 4 - env_len;
    fi->total_bytes = 4ull + frame_len;
    return 1;
}

void frame_write_header(uint8_t out[8], uint32_t envelope_len, uint32_t data_len)
{
    frame_put_be32(out, 4u + envelope_len + data_len);
    frame_put_be32(out + 4, envelope_len);
}

int frame_decode_request(const uint8_t *frame, const struct frame_info *fi, struct arena *a,
                         Ringlog__Request **out)
{
    Ringlog__Request *r =
        ringlog__request__unpack(&a->pb, fi->envelope_len, frame + FRAME_HEADER_BYTES);
    if (!r)
        return RL_E_FRAME_MALFORMED;
    *out = r;
    return 0;
}

int frame_decode_response(const uint8_t *frame, const struct frame_info *fi, struct arena *a,
                          Ringlog__Response **out)
{
    Ringlog__Response *r =
        ringlog__response__unpack(&a->pb, fi->envelope_len, frame + FRAME_HEADER_BYTES);
    if (!r)
        return RL_E_FRAME_MALFORMED;
    *out = r;
    return 0;
}

Ringlog__Api frame_request_api(const Ringlog__Request *req)
{
    switch (req->body_case) {
    case RINGLOG__REQUEST__BODY_API_VERSIONS:
    case RINGLOG__REQUEST__BODY_METADATA:
    case RINGLOG__REQUEST__BODY_CREATE_TOPICS:
    case RINGLOG__REQUEST__BODY_DELETE_TOPICS:
    case RINGLOG__REQUEST__BODY_DESCRIBE_CONFIGS:
    case RINGLOG__REQUEST__BODY_ALTER_CONFIGS:
    case RINGLOG__REQUEST__BODY_PRODUCE:
    case RINGLOG__REQUEST__BODY_FETCH:
    case RINGLOG__REQUEST__BODY_LIST_OFFSETS:
    case RINGLOG__REQUEST__BODY_INIT_PRODUCER_ID:
    case RINGLOG__REQUEST__BODY_FIND_COORDINATOR:
    case RINGLOG__REQUEST__BODY_JOIN_GROUP:
    case RINGLOG__REQUEST__BODY_SYNC_GROUP:
    case RINGLOG__REQUEST__BODY_HEARTBEAT:
    case RINGLOG__REQUEST__BODY_LEAVE_GROUP:
    case RINGLOG__REQUEST__BODY_OFFSET_COMMIT:
    case RINGLOG__REQUEST__BODY_OFFSET_FETCH:
    case RINGLOG__REQUEST__BODY_LIST_GROUPS:
    case RINGLOG__REQUEST__BODY_DESCRIBE_GROUPS:
    case RINGLOG__REQUEST__BODY_ALTER_REPLICAS:
        /* Field numbers are the Api values plus 9 (see the proto). */
        return (Ringlog__Api)(req->body_case - 9);
    default:
        return RINGLOG__API__API_NONE;
    }
}

const char *frame_api_name(Ringlog__Api api)
{
    switch (api) {
    case RINGLOG__API__API_VERSIONS: return "api_versions";
    case RINGLOG__API__API_METADATA: return "metadata";
    case RINGLOG__API__API_CREATE_TOPICS: return "create_topics";
    case RINGLOG__API__API_DELETE_TOPICS: return "delete_topics";
    case RINGLOG__API__API_DESCRIBE_CONFIGS: return "describe_configs";
    case RINGLOG__API__API_ALTER_CONFIGS: return "alter_configs";
    case RINGLOG__API__API_PRODUCE: return "produce";
    case RINGLOG__API__API_FETCH: return "fetch";
    case RINGLOG__API__API_LIST_OFFSETS: return "list_offsets";
    case RINGLOG__API__API_INIT_PRODUCER_ID: return "init_producer_id";
    case RINGLOG__API__API_FIND_COORDINATOR: return "find_coordinator";
    case RINGLOG__API__API_JOIN_GROUP: return "join_group";
    case RINGLOG__API__API_SYNC_GROUP: return "sync_group";
    case RINGLOG__API__API_HEARTBEAT: return "heartbeat";
    case RINGLOG__API__API_LEAVE_GROUP: return "leave_group";
    case RINGLOG__API__API_OFFSET_COMMIT: return "offset_commit";
    case RINGLOG__API__API_OFFSET_FETCH: return "offset_fetch";
    case RINGLOG__API__API_LIST_GROUPS: return "list_groups";
    case RINGLOG__API__API_DESCRIBE_GROUPS: return "describe_groups";
    case RINGLOG__API__API_ALTER_REPLICAS: return "alter_replicas";
    default: return "unknown";
    }
}

static int frame_check_produce(const Ringlog__ProduceRequest *p, uint32_t data_len, char *msg,
                               size_t msg_cap)
{
    uint64_t sum = 0;
    if (p->acks != 0 && p->acks != 1 && p->acks != -1) {
        snprintf(msg, msg_cap, "produce acks must be 0, 1 or -1 (all), got %d", p->acks);
        return RL_E_INVALID_REQUEST;
    }
    for (size_t t = 0; t < p->n_topics; t++)
        for (size_t i = 0; i < p->topics[t]->n_partitions; i++)
            sum += p->topics[t]->partitions[i]->data_len;
    if (sum != data_len) {
        snprintf(msg, msg_cap,
                 "produce partitions declare %llu data bytes but the frame carries %u",
                 (unsigned long long)sum, data_len);
        return RL_E_INVALID_REQUEST;
    }
    return 0;
}

int frame_check_request(const Ringlog__Request *req, uint32_t data_len, char *msg,
                        size_t msg_cap)
{
    msg[0] = 0;
    Ringlog__Api api = frame_request_api(req);
    if (api == RINGLOG__API__API_NONE) {
        snprintf(msg, msg_cap, "request has no body this broker knows (body field %d); "
                 "ApiVersions lists what it serves", (int)req->body_case);
        return RL_E_UNKNOWN_API;
    }
    if (req->version != FRAME_VERSION) {
        snprintf(msg, msg_cap, "%s version %u is not supported (this broker speaks version %u)",
                 frame_api_name(api), req->version, FRAME_VERSION);
        return RL_E_UNSUPPORTED_VERSION;
    }
    if (api == RINGLOG__API__API_PRODUCE)
        return frame_check_produce(req->produce, data_len, msg, msg_cap);
    if (data_len != 0) {
        snprintf(msg, msg_cap, "%s request carries %u data bytes but takes none",
                 frame_api_name(api), data_len);
        return RL_E_INVALID_REQUEST;
    }
    return 0;
}

size_t frame_response_envelope_bytes(const Ringlog__Response *resp)
{
    return FRAME_HEADER_BYTES + ringlog__response__get_packed_size(resp);
}

size_t frame_request_envelope_bytes(const Ringlog__Request *req)
{
    return FRAME_HEADER_BYTES + ringlog__request__get_packed_size(req);
}

size_t frame_encode_response(const Ringlog__Response *resp, uint32_t data_len, uint8_t *out)
{
    size_t n = ringlog__response__pack(resp, out + FRAME_HEADER_BYTES);
    frame_write_header(out, (uint32_t)n, data_len);
    return FRAME_HEADER_BYTES + n;
}

size_t frame_encode_request(const Ringlog__Request *req, uint32_t data_len, uint8_t *out)
{
    size_t n = ringlog__request__pack(req, out + FRAME_HEADER_BYTES);
    frame_write_header(out, (uint32_t)n, data_len);
    return FRAME_HEADER_BYTES + n;
}
