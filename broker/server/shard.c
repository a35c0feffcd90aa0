/*
 * shard: see shard.h. The loop:
 *
 *   io_run (callbacks record results and queue connections) -> shard_process (parse frames,
 *   dispatch, finish async responses, send, re-arm reads, close) -> repeat
 *
 * Connections read into one receive buffer each (CONN_RBUF_BYTES, grown to fit a larger frame
 * and charged to max.inflight.bytes). Reads stop while a connection has
 * max.requests.per.connection requests queued or the shard is over its memory budget; that is
 * the backpressure: TCP's window fills and producers slow down, instead of the broker growing.
 * Responses leave in request order; every response that is ready at the head of the queue
 * goes out in one sendmsg.
 */
#include "broker/delivery/delivery.h"
#include "broker/server/shard_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/meta/meta.h"
#include "broker/svc/bg.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/plog.h"

static void conn_process(struct conn *c);
static void conn_big_free(struct conn *c);
static void conn_sent(struct conn *c, uint64_t bytes);

#define SHARD_BIND_ATTEMPTS 100 /* x SHARD_BIND_RETRY_MS: how long a restart waits for its port */
#define SHARD_BIND_RETRY_MS 50
#define CONN_COMPACT_BELOW_BYTES (16u * 1024)
#define SHARD_PEER_WARNS_PER_SEC 10
#define CONN_PIPE_BYTES (1024 * 1024) /* splice chunk: the pipe's capacity, if granted */
#define SHARD_BUSY_WAIT_NS 500000ull  /* longest sleep while background work needs turns */

/* --- small helpers ---------------------------------------------------------------------------- */

void shard_op_started(struct shard *sh)
{
    sh->ops++;
}

void shard_op_ended(struct shard *sh)
{
    RL_ASSERT(sh->ops > 0);
    sh->ops--;
}

void shard_mark_conn(struct conn *c)
{
    if (c->in_ready)
        return;
    c->in_ready = true;
    c->ready_next = c->sh->ready;
    c->sh->ready = c;
}

void shard_mem_charge(struct shard *sh, uint64_t bytes)
{
    sh->mem_used += bytes;
}

void shard_mem_refund(struct shard *sh, uint64_t bytes)
{
    RL_ASSERT(sh->mem_used >= bytes);
    sh->mem_used -= bytes;
    if (sh->mem_paused_any && sh->mem_used < sh->cfg.max_inflight_bytes) {
        sh->mem_paused_any = false;
        for (struct conn *c = sh->conns; c; c = c->next) {
            if (c->mem_paused) {
                c->mem_paused = false;
                shard_mark_conn(c);
            }
        }
    }
}

static void shard_mem_hook(void *arg, int64_t delta)
{
    if (delta >= 0)
        shard_mem_charge(arg, (uint64_t)delta);
    else
        shard_mem_refund(arg, (uint64_t)-delta);
}

uint32_t shard_throttle_ms(const struct shard *sh)
{
    /* Above three quarters of the budget, ask clients to slow down, more the fuller it is. */
    uint64_t b = sh->cfg.max_inflight_bytes;
    if (sh->mem_used * 4 <= b * 3)
        return 0;
    return sh->mem_used >= b ? 500 : 100;
}

static int shard_listen(const char *host, uint16_t port, int *fd_out, uint16_t *bound)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return RL_E_INVALID_CONFIG;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* After a crash the previous process's listener can outlive it briefly (an io_uring's
     * pending accept holds it until the kernel tears the ring down asynchronously), so a
     * restart retries an address in use for a bounded time instead of failing at once. */
    int rc = 0;
    for (int attempt = 0; attempt < SHARD_BIND_ATTEMPTS; attempt++) {
        rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
        if (rc != -EADDRINUSE || port == 0)
            break;
        if (attempt == 0)
            RL_INFO("%s:%u is in use; retrying for up to %d ms (a previous broker may still be "
                    "releasing it)", host, port, SHARD_BIND_ATTEMPTS * SHARD_BIND_RETRY_MS);
        struct timespec ts = {0, SHARD_BIND_RETRY_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc || listen(fd, 1024)) {
        int e = rc ? rc : -errno;
        close(fd);
        return e;
    }
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *bound = ntohs(sa.sin_port);
    *fd_out = fd;
    return 0;
}

/* --- requests --------------------------------------------------------------------------------- */

static struct req *req_get(struct conn *c)
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

static void req_free(struct req *r)
{
    struct shard *sh = r->sh;
    if (r->release)
        r->release(r);
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
    metrics_record(r->sh, r->api, us, r->error_code != 0);
}

/* The response is sent (or will never be): free r now or once its ops complete. */
static void req_retire(struct req *r)
{
    req_account(r);
    r->conn = NULL;
    if (r->pending) {
        r->next = r->sh->limbo;
        r->sh->limbo = r;
    } else {
        req_free(r);
    }
}

static void shard_reap_limbo(struct shard *sh)
{
    struct req **pp = &sh->limbo;
    while (*pp) {
        struct req *r = *pp;
        if (r->pending == 0) {
            *pp = r->next;
            req_free(r);
        } else {
            pp = &r->next;
        }
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

Ringlog__Response *req_response(struct req *r)
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
                 uint32_t n_data)
{
    req_respond_segs(r, resp, data, NULL, NULL, n_data);
}

void req_respond_segs(struct req *r, Ringlog__Response *resp, const struct iovec *data,
                      const int *fds, const uint64_t *pos, uint32_t n_data)
{
    struct shard *sh = r->sh;
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
    /* Charge what the arena grew beyond its first chunk. */
    size_t held = arena_held_bytes(&r->arena);
    if (held > REQ_ARENA_CHUNK_BYTES) {
        uint64_t extra = held - REQ_ARENA_CHUNK_BYTES;
        shard_mem_charge(sh, extra);
        r->mem_bytes += extra;
    }
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
    req_respond(r, resp, NULL, 0);
}

/* --- connections ------------------------------------------------------------------------------ */

static void conn_recv_done(struct io_op *op, int result)
{
    struct conn *c = op->ctx;
    shard_op_ended(c->sh);
    c->recv_inflight = false;
    c->recv_completed = true;
    c->recv_result = result;
    shard_mark_conn(c);
}

static void conn_send_done(struct io_op *op, int result)
{
    struct conn *c = op->ctx;
    shard_op_ended(c->sh);
    c->send_inflight = false;
    c->send_completed = true;
    c->send_result = result;
    shard_mark_conn(c);
}

static void conn_create(struct shard *sh, int fd)
{
    struct conn *c = calloc(1, sizeof(*c));
    uint8_t *buf = malloc(CONN_RBUF_BYTES);
    if (!c || !buf) {
        free(c);
        free(buf);
        close(fd);
        RL_WARN("out of memory accepting a connection");
        return;
    }
    c->sh = sh;
    c->fd = fd;
    c->rbuf = buf;
    c->rcap = CONN_RBUF_BYTES;
    c->pipe_rd = c->pipe_wr = -1;
    c->id = ++sh->next_conn_id;
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    char host[INET_ADDRSTRLEN] = "?";
    if (!getpeername(fd, (struct sockaddr *)&sa, &len))
        inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
    snprintf(c->peer, sizeof(c->peer), "%s:%u", host, ntohs(sa.sin_port));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Blocking mode: io_uring's recv and sendmsg poll for readiness either way, but a splice
     * into a non-blocking socket fails with EAGAIN when the socket is full instead of waiting
     * (in an io_uring worker) for room. Nothing else touches this socket directly. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    c->next = sh->conns;
    if (sh->conns)
        sh->conns->prev = c;
    sh->conns = c;
    sh->nconns++;
    sh->m.connections_accepted++;
    RL_DEBUG("connection %llu from %s", (unsigned long long)c->id, c->peer);
    shard_mark_conn(c);
}

/* Answers a connection over the limit with one error frame, then closes it. The socket is
 * non-blocking and the frame is tiny, so this never stalls the loop. */
static void shard_reject(struct shard *sh, int fd, int code, const char *msg)
{
    uint8_t buf[512];
    Ringlog__Response resp = RINGLOG__RESPONSE__INIT;
    resp.error_code = code;
    resp.error_message = (char *)msg;
    if (frame_response_envelope_bytes(&resp) <= sizeof(buf)) {
        size_t n = frame_encode_response(&resp, 0, buf);
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    close(fd);
    sh->m.connections_rejected++;
}

static void conn_free(struct conn *c)
{
    struct shard *sh = c->sh;
    while (c->head) {
        struct req *r = c->head;
        c->head = r->next;
        api_fetch_abandon(r);
        req_retire(r);
    }
    c->tail = NULL;
    c->nreq = 0;
    conn_big_free(c);
    if (c->in_ready) {
        for (struct conn **pp = &sh->ready; *pp; pp = &(*pp)->ready_next) {
            if (*pp == c) {
                *pp = c->ready_next;
                break;
            }
        }
    }
    close(c->fd);
    if (c->pipe_rd >= 0) {
        close(c->pipe_rd);
        close(c->pipe_wr);
    }
    free(c->rbuf);
    if (c->prev)
        c->prev->next = c->next;
    else
        sh->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    sh->nconns--;
    sh->m.connections_closed++;
    RL_DEBUG("connection %llu from %s closed", (unsigned long long)c->id, c->peer);
    free(c);
}

/* A frame larger than the standing buffer gets a buffer of its own, charged to the memory
 * budget, filled by recvs aimed at exactly its missing bytes, and freed as soon as the frame is
 * dispatched. Called only with no recv in flight. Returns false when the budget says wait (the
 * connection stops reading until memory is released). */
static bool conn_big_start(struct conn *c, const struct frame_info *fi)
{
    struct shard *sh = c->sh;
    uint64_t need = fi->total_bytes;
    if (sh->mem_used + need > sh->cfg.max_inflight_bytes && sh->mem_used > 0) {
        if (!c->mem_paused)
            sh->m.mem_pauses++;
        c->mem_paused = true;
        sh->mem_paused_any = true;
        return false;
    }
    uint8_t *big = malloc(need);
    if (!big) {
        c->mem_paused = true;
        sh->mem_paused_any = true;
        return false;
    }
    shard_mem_charge(sh, need);
    c->big = big;
    c->big_len = need;
    c->big_have = c->rend - c->rstart;
    memcpy(big, c->rbuf + c->rstart, c->big_have);
    c->rstart = c->rend = 0;
    return true;
}

static void conn_big_free(struct conn *c)
{
    if (!c->big)
        return;
    free(c->big);
    shard_mem_refund(c->sh, c->big_len);
    c->big = NULL;
    c->big_len = c->big_have = 0;
}

/* Logs a peer's protocol error, at most SHARD_PEER_WARNS_PER_SEC a second, so a flood of bad
 * clients cannot flood the log; the count of suppressed lines is logged with the next one. */
static void shard_warn_peer(struct shard *sh, const struct conn *c, const char *msg)
{
    uint64_t sec = io_now_ns(sh->io) / 1000000000ull;
    if (sec != sh->warn_sec) {
        if (sh->warn_suppressed)
            RL_WARN("%u more protocol errors were not logged", sh->warn_suppressed);
        sh->warn_sec = sec;
        sh->warn_count = 0;
        sh->warn_suppressed = 0;
    }
    if (sh->warn_count++ < SHARD_PEER_WARNS_PER_SEC)
        RL_WARN("connection %s: %s", c->peer, msg);
    else
        sh->warn_suppressed++;
}

/* A protocol error that ends the connection: answer once, then close after sending. */
static void conn_fail(struct conn *c, int code, const char *msg)
{
    shard_warn_peer(c->sh, c, msg);
    struct req *r = req_get(c);
    c->closing = true;
    if (!r)
        return;
    r->close_after = true;
    req_respond_error(r, code, msg);
}

static void conn_dispatch(struct conn *c, const uint8_t *frame, const struct frame_info *fi)
{
    struct shard *sh = c->sh;
    struct req *r = req_get(c);
    if (!r) {
        c->closing = true;
        return;
    }
    Ringlog__Request *rq = NULL;
    if (frame_decode_request(frame, fi, &r->arena, &rq)) {
        sh->m.frames_malformed++;
        r->close_after = true;
        c->closing = true;
        char msg[160];
        snprintf(msg, sizeof(msg), "request envelope (%u bytes) does not decode as a ringlog "
                 "Request; closing the connection", fi->envelope_len);
        shard_warn_peer(sh, c, msg);
        req_respond_error(r, RL_E_FRAME_MALFORMED, msg);
        return;
    }
    r->correlation_id = rq->correlation_id;
    r->api = frame_request_api(rq);
    char msg[256];
    int rc = frame_check_request(rq, fi->data_len, msg, sizeof(msg));
    if (rc) {
        req_respond_error(r, rc, msg);
        return;
    }
    api_dispatch(r, rq, frame + FRAME_HEADER_BYTES + fi->envelope_len, fi->data_len);
}

static void conn_parse(struct conn *c)
{
    struct shard *sh = c->sh;
    uint32_t max_reqs = sh->cfg.max_requests_per_connection;
    if (c->big) {
        if (c->big_have < c->big_len || c->closing || c->nreq >= max_reqs)
            return;
        struct frame_info fi;
        int rc = frame_parse_header(c->big, c->big_len, UINT32_MAX, &fi);
        RL_ASSERT(rc == 1 && fi.total_bytes == c->big_len);
        conn_dispatch(c, c->big, &fi);
        conn_big_free(c);
    }
    for (uint32_t guard = 0; guard < 100000 && !c->closing && c->nreq < max_reqs; guard++) {
        struct frame_info fi;
        int rc = frame_parse_header(c->rbuf + c->rstart, c->rend - c->rstart,
                                    sh->cfg.max_frame_bytes, &fi);
        if (rc == 0)
            break;
        if (rc < 0) {
            char msg[200];
            const uint8_t *h = c->rbuf + c->rstart;
            uint32_t flen = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) |
                            ((uint32_t)h[2] << 8) | h[3];
            if (rc == RL_E_FRAME_TOO_LARGE) {
                sh->m.frames_too_large++;
                snprintf(msg, sizeof(msg), "frame of %u bytes exceeds the maximum frame size of "
                         "%u bytes (max.frame.bytes); closing the connection", flen,
                         sh->cfg.max_frame_bytes);
            } else {
                sh->m.frames_malformed++;
                snprintf(msg, sizeof(msg), "frame header is inconsistent (frame_len %u cannot "
                         "hold the envelope length it declares); closing the connection", flen);
            }
            conn_fail(c, rc, msg);
            break;
        }
        if (c->rend - c->rstart < fi.total_bytes) {
            /* A recv in flight writes into the buffer as it is: wait for its completion. */
            if (fi.total_bytes > c->rcap && !c->recv_inflight)
                conn_big_start(c, &fi);
            break;
        }
        conn_dispatch(c, c->rbuf + c->rstart, &fi);
        c->rstart += fi.total_bytes;
    }
    if (c->recv_inflight) {
        /* The buffer may be reorganised only when no recv is writing into it; the recv's
         * completion brings the connection back here. */
        return;
    }
    if (c->rstart == c->rend) {
        c->rstart = c->rend = 0;
    } else if (c->rstart > 0 && (c->rcap - c->rend < CONN_COMPACT_BELOW_BYTES ||
                                 c->rend == c->rcap)) {
        /* Little room left after a partial frame (or a partial header): move it to the front
         * so the next recv has space (a frame that fits the buffer then fits whole). */
        memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
        c->rend -= c->rstart;
        c->rstart = 0;
    }
}

enum conn_send_mode { SEND_MSG, SEND_SPLICE, SEND_DRAIN };

static void conn_splice_in_done(struct io_op *op, int result)
{
    struct conn *c = op->ctx;
    shard_op_ended(c->sh);
    c->splice_in_inflight = false;
    c->splice_in_result = result;
    shard_mark_conn(c);
}

/* The connection's pipe, made on first use; false when the kernel refuses one. */
static bool conn_pipe(struct conn *c)
{
    if (c->pipe_rd >= 0)
        return true;
    int p[2];
    if (pipe2(p, O_CLOEXEC))
        return false;
    int cap = fcntl(p[1], F_SETPIPE_SZ, CONN_PIPE_BYTES);
    if (cap <= 0)
        cap = fcntl(p[1], F_GETPIPE_SZ);
    if (cap <= 0) {
        close(p[0]);
        close(p[1]);
        return false;
    }
    c->pipe_rd = p[0];
    c->pipe_wr = p[1];
    c->pipe_cap = (uint32_t)cap;
    return true;
}

/* Moves up to a pipe's worth of a file segment to the socket: file -> pipe, linked with
 * pipe -> socket. The pipe is empty here, so the first splice never blocks. */
static void conn_splice(struct conn *c, int fd, uint64_t pos, uint64_t len)
{
    struct shard *sh = c->sh;
    if (!conn_pipe(c)) {
        RL_ERROR("connection %s: no pipe for splice; closing", c->peer);
        c->dead = true;
        return;
    }
    size_t chunk = len < c->pipe_cap ? (size_t)len : c->pipe_cap;
    c->splice_in_op.done = conn_splice_in_done;
    c->splice_in_op.ctx = c;
    c->splice_in_inflight = true;
    shard_op_started(sh);
    io_prep_splice(sh->io, &c->splice_in_op, fd, (int64_t)pos, c->pipe_wr, -1, chunk, IO_LINK);
    c->send_op.done = conn_send_done;
    c->send_op.ctx = c;
    c->send_inflight = true;
    c->send_mode = SEND_SPLICE;
    shard_op_started(sh);
    io_prep_splice(sh->io, &c->send_op, c->pipe_rd, -1, c->fd, -1, chunk, 0);
}

/* Sends what a short socket splice left in the pipe. */
static void conn_drain_pipe(struct conn *c)
{
    c->send_op.done = conn_send_done;
    c->send_op.ctx = c;
    c->send_inflight = true;
    c->send_mode = SEND_DRAIN;
    shard_op_started(c->sh);
    io_prep_splice(c->sh->io, &c->send_op, c->pipe_rd, -1, c->fd, -1, (size_t)c->pipe_bytes, 0);
}

static void conn_try_send(struct conn *c)
{
    struct shard *sh = c->sh;
    if (c->send_inflight || c->splice_in_inflight)
        return;
    if (c->pipe_bytes > 0)
        return conn_drain_pipe(c);
    uint32_t n = 0;
    uint64_t len = 0;
    for (struct req *r = c->head; r && r->ready && n < CONN_MAX_IOV; r = r->next) {
        uint64_t skip = r->sent_bytes;
        for (uint32_t i = 0; i < r->n_iov && n < CONN_MAX_IOV; i++) {
            size_t l = r->iov[i].iov_len;
            if (skip >= l) {
                skip -= l;
                continue;
            }
            if (r->seg_fd && r->seg_fd[i] >= 0) {
                /* A file segment: send the memory gathered before it first. */
                if (n == 0)
                    return conn_splice(c, r->seg_fd[i], r->seg_pos[i] + skip, l - skip);
                goto send;
            }
            c->iov[n].iov_base = (uint8_t *)r->iov[i].iov_base + skip;
            c->iov[n].iov_len = l - skip;
            len += l - skip;
            skip = 0;
            n++;
        }
    }
send:
    if (n == 0)
        return;
    memset(&c->msg, 0, sizeof(c->msg));
    c->msg.msg_iov = c->iov;
    c->msg.msg_iovlen = n;
    c->send_len = len;
    c->send_op.done = conn_send_done;
    c->send_op.ctx = c;
    shard_op_started(sh);
    c->send_inflight = true;
    c->send_mode = SEND_MSG;
    io_prep_sendmsg(sh->io, &c->send_op, c->fd, &c->msg, 0);
}

/* Accounts a finished send (sendmsg, splice pair or pipe drain). */
static void conn_send_finished(struct conn *c)
{
    int out = c->send_result;
    if (c->send_mode == SEND_SPLICE) {
        int in = c->splice_in_result;
        if (in <= 0) {
            /* A file shorter than its slice, or a read error: the response cannot be
             * completed, so the connection cannot continue. */
            RL_ERROR("connection %s: splice from the log failed: %s", c->peer,
                     in ? rl_strerror(in) : "unexpected end of file");
            c->dead = true;
            return;
        }
        c->pipe_bytes += (uint64_t)in;
        if (out == -ECANCELED)
            return; /* the read was short; the pipe is drained next */
    }
    if (out <= 0) {
        RL_DEBUG("connection %s: send failed: %s", c->peer, rl_strerror(out));
        c->dead = true;
        return;
    }
    if (c->send_mode != SEND_MSG)
        c->pipe_bytes -= (uint64_t)out;
    conn_sent(c, (uint64_t)out);
}

static void conn_sent(struct conn *c, uint64_t bytes)
{
    c->sh->m.bytes_sent += bytes;
    while (bytes > 0 && c->head) {
        struct req *r = c->head;
        uint64_t left = r->total_bytes - r->sent_bytes;
        uint64_t take = bytes < left ? bytes : left;
        r->sent_bytes += take;
        bytes -= take;
        if (r->sent_bytes < r->total_bytes)
            break;
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        c->nreq--;
        if (r->close_after)
            c->closing = true;
        req_retire(r);
    }
}

static bool conn_can_read(const struct conn *c)
{
    const struct shard *sh = c->sh;
    return !c->recv_inflight && !c->closing && !c->eof && !sh->stopping && !c->mem_paused &&
           c->nreq < sh->cfg.max_requests_per_connection &&
           (c->big ? c->big_have < c->big_len : c->rend < c->rcap);
}

static void conn_arm_recv(struct conn *c)
{
    c->recv_op.done = conn_recv_done;
    c->recv_op.ctx = c;
    c->recv_inflight = true;
    shard_op_started(c->sh);
    if (c->big)
        io_prep_recv(c->sh->io, &c->recv_op, c->fd, c->big + c->big_have,
                     c->big_len - c->big_have, 0);
    else
        io_prep_recv(c->sh->io, &c->recv_op, c->fd, c->rbuf + c->rend, c->rcap - c->rend, 0);
}

static void conn_handle_recv(struct conn *c)
{
    c->recv_completed = false;
    int n = c->recv_result;
    if (n > 0) {
        if (c->big)
            c->big_have += (uint64_t)n;
        else
            c->rend += (size_t)n;
        c->sh->m.bytes_received += (uint64_t)n;
        return;
    }
    c->eof = true;
    if (n < 0 && n != -ECANCELED)
        RL_DEBUG("connection %s: recv failed: %s", c->peer, rl_strerror(n));
    if ((c->rend > c->rstart || c->big) && !c->closing && n == 0) {
        /* The peer closed its side mid-frame: say so before closing ours. */
        char msg[160];
        snprintf(msg, sizeof(msg), "connection closed after %llu bytes of an incomplete frame",
                 (unsigned long long)(c->big ? c->big_have : c->rend - c->rstart));
        c->sh->m.frames_malformed++;
        conn_fail(c, RL_E_FRAME_MALFORMED, msg);
    }
    c->closing = true;
}

static void conn_process(struct conn *c)
{
    if (c->recv_completed) {
        conn_handle_recv(c);
        if (c->eof)
            api_fetch_wake_all(c); /* nobody will wait for a long poll on a closed peer */
    }
    if (c->send_completed && !c->splice_in_inflight) {
        c->send_completed = false;
        conn_send_finished(c);
        if (c->dead)
            c->closing = true;
    }
    for (struct req *r = c->head; r; r = r->next) {
        if (r->needs_finish) {
            r->needs_finish = false;
            if (r->finish)
                r->finish(r);
        }
    }
    if (!c->dead) {
        conn_parse(c);
        conn_try_send(c);
        if (conn_can_read(c))
            conn_arm_recv(c);
    }
    bool done = c->dead || (c->closing && !c->head);
    bool busy = c->recv_inflight || c->send_inflight || c->splice_in_inflight;
    if (done && busy)
        shutdown(c->fd, c->dead ? SHUT_RDWR : SHUT_RD); /* wakes pending ops */
    if (done && !busy)
        conn_free(c);
}

/* --- accept, tick, loop ----------------------------------------------------------------------- */

static void shard_accept_done(struct io_op *op, int result)
{
    struct shard *sh = op->ctx;
    shard_op_ended(sh);
    if (op == &sh->accept_op) {
        sh->accept_inflight = false;
        sh->accept_completed = true;
        sh->accept_result = result;
    } else {
        sh->http_accept_inflight = false;
        sh->http_accept_completed = true;
        sh->http_accept_result = result;
    }
}

static void shard_tick_done(struct io_op *op, int result)
{
    struct shard *sh = op->ctx;
    shard_op_ended(sh);
    sh->tick_inflight = false;
    sh->tick_completed = true;
}

static void shard_cancel_done(struct io_op *op, int result)
{
    shard_op_ended(op->ctx);
}

static void shard_arm_accepts(struct shard *sh)
{
    if (sh->stopping)
        return;
    if (!sh->accept_inflight && !sh->accept_completed && !sh->accept_backoff) {
        sh->accept_op.done = shard_accept_done;
        sh->accept_op.ctx = sh;
        sh->accept_inflight = true;
        shard_op_started(sh);
        io_prep_accept(sh->io, &sh->accept_op, sh->listen_fd, 0);
    }
    if (sh->http_fd >= 0 && !sh->http_accept_inflight && !sh->http_accept_completed) {
        sh->http_accept_op.done = shard_accept_done;
        sh->http_accept_op.ctx = sh;
        sh->http_accept_inflight = true;
        shard_op_started(sh);
        io_prep_accept(sh->io, &sh->http_accept_op, sh->http_fd, 0);
    }
}

static void shard_arm_tick(struct shard *sh)
{
    sh->tick_op.done = shard_tick_done;
    sh->tick_op.ctx = sh;
    sh->tick_inflight = true;
    shard_op_started(sh);
    uint32_t ms = sh->cfg.retention_check_interval_ms < SHARD_TICK_MS
                      ? sh->cfg.retention_check_interval_ms : SHARD_TICK_MS;
    io_prep_timeout(sh->io, &sh->tick_op, (uint64_t)ms * 1000000ull, 0);
}

static void shard_handle_accepts(struct shard *sh)
{
    if (sh->accept_completed) {
        sh->accept_completed = false;
        int fd = sh->accept_result;
        if (fd >= 0) {
            if (sh->stopping) {
                shard_reject(sh, fd, RL_E_SHUTTING_DOWN, "broker is shutting down");
            } else if (sh->nconns >= sh->cfg.max_connections) {
                char msg[160];
                snprintf(msg, sizeof(msg), "broker connection limit of %u reached "
                         "(max.connections); retry later or raise the limit",
                         sh->cfg.max_connections);
                shard_reject(sh, fd, RL_E_TOO_MANY_CONNECTIONS, msg);
            } else {
                conn_create(sh, fd);
            }
        } else if (fd != -ECANCELED) {
            RL_WARN("accept failed: %s", rl_strerror(fd));
            if (fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM)
                sh->accept_backoff = true; /* retry at the next tick, not in a hot loop */
        }
    }
    if (sh->http_accept_completed) {
        sh->http_accept_completed = false;
        int fd = sh->http_accept_result;
        if (fd >= 0) {
            if (sh->stopping || sh->nhconns >= SHARD_MAX_HTTP_CONNS)
                close(fd);
            else
                http_conn_start(sh, fd);
        }
    }
}

static void shard_handle_tick(struct shard *sh)
{
    if (!sh->tick_completed)
        return;
    sh->tick_completed = false;
    sh->ticks++;
    sh->accept_backoff = false; /* re-arm an accept that failed for lack of fds */
    partition_env_tick(sh->penv); /* room may have come from elsewhere (descriptors) */
    meta_reap(sh->meta);
    uint64_t now = io_now_ns(sh->io);
    if (now - sh->last_retention_ns >= (uint64_t)sh->cfg.retention_check_interval_ms * 1000000ull) {
        sh->last_retention_ns = now;
        meta_enforce_retention(sh->meta, io_wall_ms(sh->io));
    }
    if (!sh->stopping)
        shard_arm_tick(sh);
}

static void shard_process(struct shard *sh)
{
    shard_handle_accepts(sh);
    for (uint32_t guard = 0; sh->ready && guard < 1000000; guard++) {
        struct conn *c = sh->ready;
        sh->ready = c->ready_next;
        c->in_ready = false;
        conn_process(c);
    }
    http_process(sh);
    bg_reap(sh->bg);
    partition_env_process(sh->penv);
    meta_process(sh->meta);
    delivery_process(sh);
    shard_reap_limbo(sh);
    shard_handle_tick(sh);
    shard_arm_accepts(sh);
}

static void shard_cancel(struct shard *sh, struct io_op *cancel, struct io_op *target)
{
    cancel->done = shard_cancel_done;
    cancel->ctx = sh;
    shard_op_started(sh);
    io_prep_cancel(sh->io, cancel, target, 0);
}

static void shard_begin_stop(struct shard *sh)
{
    RL_INFO("stopping: no new connections; finishing in-flight requests");
    sh->stopping = true;
    sh->stop_deadline_ns = io_now_ns(sh->io) + (uint64_t)sh->cfg.shutdown_timeout_ms * 1000000ull;
    if (sh->accept_inflight)
        shard_cancel(sh, &sh->cancel_accept_op, &sh->accept_op);
    if (sh->http_accept_inflight)
        shard_cancel(sh, &sh->cancel_http_op, &sh->http_accept_op);
    for (struct conn *c = sh->conns; c; c = c->next) {
        c->closing = true;
        api_fetch_wake_all(c);
        shard_mark_conn(c);
    }
    delivery_begin_stop(sh); /* pending joins are answered, not left to the deadline */
}

static void shard_force_close(struct shard *sh)
{
    RL_WARN("shutdown timeout: closing %u connections with requests still in flight",
            sh->nconns);
    for (struct conn *c = sh->conns; c; c = c->next) {
        c->dead = true;
        shard_mark_conn(c);
    }
}

int shard_run(struct shard *sh)
{
    loopclock_open(&sh->clock);
    shard_arm_accepts(sh);
    shard_arm_tick(sh);
    bool forced = false;
    for (;;) {
        /* While partitions are being opened a few per turn, the loop comes back for more
         * after at most SHARD_BUSY_WAIT_NS; waiting (rather than spinning) between slices
         * keeps it a thread the scheduler wakes promptly instead of one it preempts. */
        uint64_t wait_ns = partition_env_busy(sh->penv) ? SHARD_BUSY_WAIT_NS
                           : sh->stopping ? 100000000ull : UINT64_MAX;
        int rc = io_run(sh->io, wait_ns);
        if (rc < 0 && rc != -EINTR && rc != -ETIME) {
            RL_ERROR("io_run failed: %s", rl_strerror(rc));
            return rc;
        }
        loopclock_turn_start(&sh->clock, io_now_ns(sh->io));
        if (sh->stop_requested && !sh->stopping)
            shard_begin_stop(sh);
        shard_process(sh);
        metrics_record_turn(sh, loopclock_turn_end(&sh->clock, io_now_ns(sh->io)));
        if (!sh->stopping)
            continue;
        if (!sh->conns && !sh->limbo)
            break;
        if (!forced && io_now_ns(sh->io) > sh->stop_deadline_ns) {
            shard_force_close(sh);
            forced = true;
        }
    }
    /* Drain our own ops (cancelled accepts, the tick, HTTP) with a bound. */
    if (sh->tick_inflight)
        shard_cancel(sh, &sh->cancel_tick_op, &sh->tick_op);
    uint64_t until = io_now_ns(sh->io) + 2000000000ull;
    while ((sh->ops > 0 || sh->hconns) && io_now_ns(sh->io) < until) {
        http_close_idle(sh);
        io_run(sh->io, 50000000ull);
        shard_process(sh);
    }
    if (sh->ops)
        RL_WARN("stopping with %u io ops still in flight", sh->ops);
    loopclock_close(&sh->clock);
    return 0;
}

void shard_request_stop(struct shard *sh)
{
    sh->stop_requested = 1;
    io_wake(sh->io);
}

uint16_t shard_port(const struct shard *sh)
{
    return sh->port;
}

uint16_t shard_http_port(const struct shard *sh)
{
    return sh->http_port;
}

static int shard_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST)
        return -errno;
    return 0;
}

int shard_create(const struct broker_config *cfg, struct shard **out, char *err, size_t err_cap)
{
    int rc;
    struct shard *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return -ENOMEM;
    sh->cfg = *cfg;
    sh->listen_fd = sh->http_fd = -1;
    sh->clock.fd = -1;
    sh->splice_ok = cfg->fetch_splice != 0;
    rc = shard_mkdirs(cfg->data_dir);
    if (rc) {
        snprintf(err, err_cap, "cannot create the data directory %s: %s", cfg->data_dir,
                 rl_strerror(rc));
        goto fail;
    }
    sh->io = io_create(1024, &rc);
    if (!sh->io) {
        snprintf(err, err_cap, "cannot create an io_uring (%s); is io_uring enabled "
                 "(sysctl kernel.io_uring_disabled)?", rl_strerror(rc));
        goto fail;
    }
    sh->start_ns = io_now_ns(sh->io);
    sh->last_retention_ns = sh->start_ns;
    sh->start_wall_ms = io_wall_ms(sh->io);
    struct storage_options sopt = {.max_open_files = cfg->max_open_files,
                                   .state_dir = cfg->data_dir};
    rc = storage_open(sh->io, &sopt, &sh->st);
    if (rc) {
        snprintf(err, err_cap, "cannot start storage: %s", rl_strerror(rc));
        goto fail;
    }
    rc = bg_create(sh->io, "broker", &sh->bg);
    if (rc) {
        snprintf(err, err_cap, "cannot start the background thread: %s", rl_strerror(rc));
        goto fail;
    }
    struct partition_env_hooks hooks = {.mem = shard_mem_hook, .arg = sh};
    rc = partition_env_create(sh->io, sh->st, sh->bg, &hooks, &sh->penv);
    if (rc) {
        snprintf(err, err_cap, "out of memory");
        goto fail;
    }
    struct meta_limits lim = {.max_topics = cfg->max_topics,
                              .max_partitions = cfg->max_partitions,
                              .topic_defaults = cfg->topic_defaults};
    snprintf(lim.data_dir, sizeof(lim.data_dir), "%s", cfg->data_dir);
    rc = meta_open(&lim, sh->penv, sh->bg, &sh->meta, err, err_cap);
    if (rc)
        goto fail;
    rc = delivery_open(sh, err, err_cap);
    if (rc)
        goto fail;
    rc = shard_listen(cfg->listen_host, cfg->listen_port, &sh->listen_fd, &sh->port);
    if (rc) {
        snprintf(err, err_cap, "cannot listen on %s:%u: %s", cfg->listen_host,
                 cfg->listen_port, rl_strerror(rc));
        goto fail;
    }
    if (cfg->http_enabled) {
        rc = shard_listen(cfg->http_host, cfg->http_port, &sh->http_fd, &sh->http_port);
        if (rc) {
            snprintf(err, err_cap, "cannot listen for HTTP on %s:%u: %s", cfg->http_host,
                     cfg->http_port, rl_strerror(rc));
            goto fail;
        }
    }
    *out = sh;
    return 0;
fail:
    shard_destroy(sh);
    return rc;
}

void shard_destroy(struct shard *sh)
{
    if (!sh)
        return;
    if (sh->listen_fd >= 0)
        close(sh->listen_fd);
    if (sh->http_fd >= 0)
        close(sh->http_fd);
    /* Closing the logs waits for their appends; the callbacks may touch limbo requests, so
     * those are freed only afterwards. */
    meta_close(sh->meta);
    sh->meta = NULL;
    delivery_close(sh); /* after the logs: commit callbacks may still run while they close */
    bg_destroy(sh->bg);
    partition_env_destroy(sh->penv);
    if (sh->st)
        storage_destroy(sh->st);
    while (sh->limbo) {
        struct req *r = sh->limbo;
        sh->limbo = r->next;
        /* Its ops never completed and the logs are closed: just let the memory go. */
        r->pending = 0;
        r->release = NULL;
        req_free(r);
    }
    while (sh->pool) {
        struct req *r = sh->pool;
        sh->pool = r->next;
        arena_destroy(&r->arena);
        free(r);
    }
    if (sh->io)
        io_destroy(sh->io);
    while (sh->n_direct_bufs)
        free(sh->direct_bufs[--sh->n_direct_bufs]);
    free(sh);
}
