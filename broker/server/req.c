/*
 * req: one request's life on the server, from its frame to its response having left:
 *
 *   conn_dispatch -> req_get (arena, queue) -> native handler (svc_req) -> ... ->
 *   req_respond (encode into the arena, mark ready) -> conn_try_send -> req_retire ->
 *   freed, or kept in limbo until the request's async ops (appends, reads, timers) end
 *
 * It also implements the server's side of the two contracts handlers are written against:
 * struct svc_host (broker/svc/svc.h: finish later, charge memory, may I wait, the peer) and
 * struct native_host (broker/native/native.h: build and send a protobuf Response).
 */
#include "broker/server/shard_internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/kafka/kmsg.h"
#include "common/err.h"
#include "common/log.h"

struct req *req_get(struct conn *c)
{
    struct shard *sh = c->sh;
    struct req *r = sh->pool;
    if (r) {
        sh->pool = r->next;
        sh->npool--;
    } else {
        r = calloc(1, sizeof(*r));
        if (!r)
            return NULL;
        arena_init(&r->arena, REQ_ARENA_CHUNK_BYTES, REQ_ARENA_MAX_BYTES);
    }
    struct arena keep = r->arena;
    memset(r, 0, sizeof(*r));
    r->arena = keep;
    r->arena.pb.allocator_data = &r->arena;
    r->sh = sh;
    r->svc.host = &req_svc_host;
    r->svc.arena = &r->arena;
    r->svc.io = sh->io;
    r->conn = c;
    r->start_ns = io_now_ns(sh->io);
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->nreq++;
    return r;
}

void req_free(struct req *r)
{
    struct shard *sh = r->sh;
    if (r->svc.release)
        r->svc.release(&r->svc);
    if (r->mem_bytes)
        shard_mem_refund(sh, r->mem_bytes);
    r->mem_bytes = 0;
    arena_reset(&r->arena);
    if (sh->npool < SHARD_REQ_POOL_MAX) {
        r->next = sh->pool;
        sh->pool = r;
        sh->npool++;
    } else {
        arena_destroy(&r->arena);
        free(r);
    }
}

static void req_account(struct req *r)
{
    if (r->counted)
        return;
    r->counted = true;
    uint64_t us = (io_now_ns(r->sh->io) - r->start_ns) / 1000;
    if (r->kafka)
        metrics_record_kafka(r->sh, r->kafka_api, us);
    else
        metrics_record(r->sh, r->api, us, r->error_code != 0);
}

/* The response is sent (or will never be): free r now or once its ops complete. */
void req_retire(struct req *r)
{
    req_account(r);
    if (r->conn)
        r->conn->req_bytes -= r->mem_bytes;
    r->conn = NULL;
    if (r->svc.pending) {
        r->next = r->sh->limbo;
        r->sh->limbo = r;
    } else {
        req_free(r);
    }
}

void req_reap_limbo(struct shard *sh)
{
    struct req **pp = &sh->limbo;
    while (*pp) {
        struct req *r = *pp;
        if (r->svc.pending == 0) {
            *pp = r->next;
            req_free(r);
        } else {
            pp = &r->next;
        }
    }
}

/* Charges bytes to the shard's budget, as r's (and its connection's, while it has one). */
static void req_charge(struct req *r, uint64_t bytes)
{
    shard_mem_charge(r->sh, bytes);
    r->mem_bytes += bytes;
    if (r->conn)
        r->conn->req_bytes += bytes;
}

void req_charge_arena(struct req *r)
{
    size_t held = arena_held_bytes(&r->arena);
    if (held > REQ_ARENA_CHUNK_BYTES + r->arena_charged) {
        uint64_t extra = held - REQ_ARENA_CHUNK_BYTES - r->arena_charged;
        r->arena_charged += extra;
        req_charge(r, extra);
    }
}

static bool req_copy_segs(struct req *r, const int *fds, const uint64_t *pos, uint32_t n)
{
    r->seg_fd = arena_alloc(&r->arena, (n + 1) * sizeof(*r->seg_fd));
    r->seg_pos = arena_alloc(&r->arena, (n + 1) * sizeof(*r->seg_pos));
    if (!r->seg_fd || !r->seg_pos) {
        r->seg_fd = NULL;
        r->seg_pos = NULL;
        return false;
    }
    r->seg_fd[0] = -1;
    r->seg_pos[0] = 0;
    memcpy(r->seg_fd + 1, fds, n * sizeof(*fds));
    memcpy(r->seg_pos + 1, pos, n * sizeof(*pos));
    return true;
}

static Ringlog__Response *req_response(struct req *r)
{
    Ringlog__Response *resp = arena_alloc(&r->arena, sizeof(*resp));
    if (!resp)
        return NULL;
    ringlog__response__init(resp);
    resp->correlation_id = r->correlation_id;
    resp->throttle_ms = shard_throttle_ms(r->sh);
    if (resp->throttle_ms)
        r->sh->m.throttled_responses++;
    return resp;
}

void req_respond(struct req *r, Ringlog__Response *resp, const struct iovec *data,
                 const int *fds, const uint64_t *pos, uint32_t n_data)
{
    if (r->ready)
        return; /* answered already (e.g. out of memory before async work completed) */
    uint64_t data_len = 0;
    for (uint32_t i = 0; i < n_data; i++)
        data_len += data[i].iov_len;
    size_t env = frame_response_envelope_bytes(resp);
    uint8_t *out = arena_alloc(&r->arena, env);
    r->iov = arena_alloc(&r->arena, (n_data + 1) * sizeof(*r->iov));
    if (!out || !r->iov || data_len > UINT32_MAX - env) {
        /* Out of request memory: a response without data still tells the client. */
        Ringlog__Response small = RINGLOG__RESPONSE__INIT;
        small.correlation_id = r->correlation_id;
        small.error_code = RL_E_LIMIT;
        small.error_message = (char *)"response too large for the broker's request memory";
        size_t n = frame_encode_response(&small, 0, r->fallback);
        r->fallback_iov.iov_base = r->fallback;
        r->fallback_iov.iov_len = n;
        r->iov = &r->fallback_iov;
        r->n_iov = 1;
        r->total_bytes = n;
        r->error_code = RL_E_LIMIT;
    } else {
        size_t n = frame_encode_response(resp, (uint32_t)data_len, out);
        r->iov[0].iov_base = out;
        r->iov[0].iov_len = n;
        for (uint32_t i = 0; i < n_data; i++)
            r->iov[i + 1] = data[i];
        r->n_iov = n_data + 1;
        if (fds && !req_copy_segs(r, fds, pos, n_data)) {
            r->ready = false;
            r->iov = NULL;
            return req_respond_error(r, RL_E_LIMIT, "out of request memory");
        }
        r->total_bytes = n + data_len;
        if (resp->error_code)
            r->error_code = resp->error_code;
    }
    req_charge_arena(r); /* what the arena grew since the decode was charged */
    r->ready = true;
    if (r->conn)
        shard_mark_conn(r->conn);
}

void req_respond_error(struct req *r, int code, const char *msg)
{
    Ringlog__Response *resp = req_response(r);
    Ringlog__Response stack = RINGLOG__RESPONSE__INIT;
    if (!resp) {
        resp = &stack;
        resp->correlation_id = r->correlation_id;
    }
    resp->error_code = code;
    resp->error_message = (char *)(msg && msg[0] ? msg : rl_strerror(code));
    r->error_code = code;
    req_respond(r, resp, NULL, NULL, NULL, 0);
}

/* --- the svc contract ------------------------------------------------------------------------- */

static struct req *req_of(const struct svc_req *s)
{
    return (struct req *)((char *)s - offsetof(struct req, svc));
}

static void req_svc_complete(struct svc_req *s)
{
    struct req *r = req_of(s);
    if (r->conn) {
        r->needs_finish = true;
        shard_mark_conn(r->conn);
    }
}

static void req_svc_charge(struct svc_req *s, uint64_t bytes)
{
    req_charge(req_of(s), bytes);
}

static bool req_svc_has_room(const struct svc_req *s, uint64_t bytes)
{
    const struct shard *sh = req_of(s)->sh;
    return sh->mem_used + bytes <= sh->cfg.max_inflight_bytes;
}

static bool req_svc_may_wait(const struct svc_req *s)
{
    const struct req *r = req_of(s);
    return !r->sh->stopping && r->conn && !r->conn->eof;
}

static const char *req_svc_peer(const struct svc_req *s)
{
    const struct req *r = req_of(s);
    return r->conn ? r->conn->peer : "";
}

const struct svc_host req_svc_host = {
    .complete = req_svc_complete,
    .charge = req_svc_charge,
    .has_room = req_svc_has_room,
    .may_wait = req_svc_may_wait,
    .peer = req_svc_peer,
};

/* --- the native contract ---------------------------------------------------------------------- */

static Ringlog__Response *req_native_response(struct svc_req *s)
{
    return req_response(req_of(s));
}

static void req_native_respond(struct svc_req *s, Ringlog__Response *resp,
                               const struct iovec *data, const int *fds, const uint64_t *pos,
                               uint32_t n_data)
{
    req_respond(req_of(s), resp, data, fds, pos, n_data);
}

static void req_native_respond_error(struct svc_req *s, int code, const char *msg)
{
    req_respond_error(req_of(s), code, msg);
}

const struct native_host req_native_host = {
    .response = req_native_response,
    .respond = req_native_respond,
    .respond_error = req_native_respond_error,
};

/* --- the Kafka contract ----------------------------------------------------------------------- */

/* Charges what r's arena grew beyond its first chunk, and marks r ready to send. */
static void req_ready(struct req *r)
{
    size_t held = arena_held_bytes(&r->arena);
    if (held > REQ_ARENA_CHUNK_BYTES + r->mem_bytes) {
        uint64_t extra = held - REQ_ARENA_CHUNK_BYTES - r->mem_bytes;
        shard_mem_charge(r->sh, extra);
        r->mem_bytes += extra;
    }
    r->ready = true;
    if (r->conn)
        shard_mark_conn(r->conn);
}

static void req_kafka_respond(struct svc_req *s, const struct kmsg_out *out)
{
    struct req *r = req_of(s);
    if (r->ready)
        return;
    r->iov = out->iov;
    r->n_iov = (uint32_t)out->iovcnt;
    r->total_bytes = out->bytes;
    req_ready(r);
}

static void req_kafka_respond_none(struct svc_req *s)
{
    struct req *r = req_of(s);
    if (r->ready)
        return;
    r->n_iov = 0;
    r->total_bytes = 0;
    req_ready(r);
}

static void req_kafka_close(struct svc_req *s, const char *reason)
{
    struct req *r = req_of(s);
    if (r->ready)
        return;
    r->close_after = true;
    r->error_code = RL_E_FRAME_MALFORMED;
    if (r->conn)
        conn_protocol_error(r->conn, reason);
    req_kafka_respond_none(s);
}

const struct kafka_host req_kafka_host = {
    .respond = req_kafka_respond,
    .respond_none = req_kafka_respond_none,
    .close = req_kafka_close,
};
