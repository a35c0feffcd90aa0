/*
 * conn: the shard's native-protocol connections. Each reads into one receive buffer
 * (CONN_RBUF_BYTES, or a buffer of its own for a larger frame, charged to max.inflight.bytes)
 * and parses frames into requests (req.c) handed to broker/native. Reads stop while a
 * connection has max.requests.per.connection requests queued or the shard is over its memory
 * budget: TCP's window fills and producers slow down, instead of the broker growing.
 * Responses leave in request order; every response ready at the head of the queue goes out in
 * one sendmsg, and file ranges of fetch answers go file -> pipe -> socket by splice.
 *
 * Limits against peers that hold memory or connections (conn_tick, every shard tick):
 *   - a frame larger than the receive buffer is charged to max.inflight.bytes as its bytes
 *     arrive, not when its header announces it, so a header alone reserves nothing; over the
 *     budget one such frame (the first to get there) may still complete, so frames being
 *     received can never wait for each other;
 *   - over the budget (or its own share) a connection dispatches no new frame, but its standing
 *     buffer keeps being filled, so a peer that leaves is noticed;
 *   - a partial frame must make progress (a receive buffer's worth of bytes) every
 *     frame.receive.timeout.ms, or the connection is answered REQUEST_TIMED_OUT and closed;
 *   - a connection whose requests hold more than max.connection.inflight.bytes reads no new
 *     request until they are answered, so a few clients that never read cannot take the whole
 *     budget;
 *   - a connection idle for connections.max.idle.ms (nothing received or sent, and nothing
 *     being worked on; or answers waiting for a peer that does not read them) is closed.
 *
 * Every io callback here only records its result and marks the connection; conn_process, run
 * by the loop, does the work.
 */
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
#include <unistd.h>

#include "broker/kafka/kframe.h"
#include "common/err.h"
#include "common/log.h"

static void conn_big_free(struct conn *c);
static void conn_sent(struct conn *c, uint64_t bytes);

#define CONN_COMPACT_BELOW_BYTES (16u * 1024)
#define CONN_PEER_WARNS_PER_SEC 10
#define CONN_PIPE_BYTES (1024 * 1024) /* splice chunk: the pipe's capacity, if granted */

void conn_interrupt(struct conn *c)
{
    for (struct req *r = c->head; r; r = r->next)
        if (r->svc.interrupt)
            r->svc.interrupt(&r->svc);
}

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

struct conn *conn_create(struct shard *sh, int fd, bool kafka)
{
    struct conn *c = calloc(1, sizeof(*c));
    uint8_t *buf = malloc(CONN_RBUF_BYTES);
    if (!c || !buf) {
        free(c);
        free(buf);
        close(fd);
        RL_WARN("out of memory accepting a connection");
        return NULL;
    }
    c->sh = sh;
    c->fd = fd;
    c->kafka = kafka;
    c->rbuf = buf;
    c->rcap = CONN_RBUF_BYTES;
    c->pipe_rd = c->pipe_wr = -1;
    c->id = ++sh->next_conn_id;
    c->last_active_ns = io_now_ns(sh->io);
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
    return c;
}

/* What an operator needs on a reserved connection: looking at and changing topics, configs,
 * offsets and groups; nothing that carries data or holds group membership. */
static bool conn_admin_api(Ringlog__Api api)
{
    switch (api) {
    case RINGLOG__API__API_VERSIONS:
    case RINGLOG__API__API_METADATA:
    case RINGLOG__API__API_CREATE_TOPICS:
    case RINGLOG__API__API_DELETE_TOPICS:
    case RINGLOG__API__API_DESCRIBE_CONFIGS:
    case RINGLOG__API__API_ALTER_CONFIGS:
    case RINGLOG__API__API_LIST_OFFSETS:
    case RINGLOG__API__API_FIND_COORDINATOR:
    case RINGLOG__API__API_OFFSET_FETCH:
    case RINGLOG__API__API_LIST_GROUPS:
    case RINGLOG__API__API_DESCRIBE_GROUPS:
    case RINGLOG__API__API_ALTER_REPLICAS:
        return true;
    default:
        return false;
    }
}

static void conn_free(struct conn *c)
{
    struct shard *sh = c->sh;
    while (c->head) {
        struct req *r = c->head;
        c->head = r->next;
        if (r->svc.abandon)
            r->svc.abandon(&r->svc);
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
    if (c->fd >= 0)
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

/* A buffer of at least `need` bytes for a big frame: the smallest idle one of the shard's pool
 * that fits, or a new one (NULL when memory is short). */
static uint8_t *conn_pool_take(struct shard *sh, uint64_t need, uint64_t *cap)
{
    uint32_t best = UINT32_MAX;
    for (uint32_t i = 0; i < sh->n_big_pool; i++)
        if (sh->big_pool_cap[i] >= need &&
            (best == UINT32_MAX || sh->big_pool_cap[i] < sh->big_pool_cap[best]))
            best = i;
    if (best != UINT32_MAX) {
        uint8_t *b = sh->big_pool[best];
        *cap = sh->big_pool_cap[best];
        sh->n_big_pool--;
        sh->big_pool[best] = sh->big_pool[sh->n_big_pool];
        sh->big_pool_cap[best] = sh->big_pool_cap[sh->n_big_pool];
        return b;
    }
    *cap = need;
    return malloc(need);
}

/* Keeps an idle big-frame buffer for the next big frame, or frees it (too large to keep, or
 * the pool is full: then the smallest kept buffer makes room for a larger one). */
static void conn_pool_put(struct shard *sh, uint8_t *buf, uint64_t cap)
{
    if (cap > CONN_BIG_POOL_MAX_BYTES) {
        free(buf);
        return;
    }
    if (sh->n_big_pool == CONN_BIG_POOL) {
        uint32_t small = 0;
        for (uint32_t i = 1; i < sh->n_big_pool; i++)
            if (sh->big_pool_cap[i] < sh->big_pool_cap[small])
                small = i;
        if (sh->big_pool_cap[small] >= cap) {
            free(buf);
            return;
        }
        free(sh->big_pool[small]);
        sh->big_pool[small] = buf;
        sh->big_pool_cap[small] = cap;
        return;
    }
    sh->big_pool[sh->n_big_pool] = buf;
    sh->big_pool_cap[sh->n_big_pool++] = cap;
}

void conn_pool_destroy(struct shard *sh)
{
    while (sh->n_big_pool)
        free(sh->big_pool[--sh->n_big_pool]);
}

/* A frame larger than the standing buffer gets a buffer of its own (from the shard's pool of
 * idle ones), charged to the memory budget, filled by recvs aimed at exactly its missing bytes,
 * and given back as soon as the frame is dispatched. Called only with no recv in flight.
 * Returns false when the budget says wait (the connection stops reading until memory is
 * released). */
static bool conn_big_start(struct conn *c, uint64_t need)
{
    struct shard *sh = c->sh;
    /* The pages are charged only as bytes arrive: the header's word alone reserves nothing
     * (a peer sending 8 bytes must not hold 100 MiB of budget). */
    uint64_t cap;
    uint8_t *big = conn_pool_take(sh, need, &cap);
    if (!big) {
        c->mem_paused = true;
        sh->mem_paused_any = true;
        return false;
    }
    c->big = big;
    c->big_cap = cap;
    c->big_len = need;
    c->big_have = c->rend - c->rstart;
    shard_mem_charge(sh, c->big_have);
    memcpy(big, c->rbuf + c->rstart, c->big_have);
    c->rstart = c->rend = 0;
    return true;
}

static void conn_big_free(struct conn *c)
{
    if (!c->big)
        return;
    struct shard *sh = c->sh;
    conn_pool_put(sh, c->big, c->big_cap);
    uint64_t charged = c->big_have;
    c->big = NULL;
    c->big_len = c->big_have = c->big_cap = 0;
    if (sh->big_exempt == c) {
        /* Another frame being received may now complete over the budget. */
        sh->big_exempt = NULL;
        shard_mem_wake(sh);
    }
    shard_mem_refund(sh, charged);
}

/* True when c must not read now for memory (then it waits for a refund to wake it). Over the
 * shard's budget only the one connection receiving a large frame that got there first goes
 * on (frames already started always complete, and only one can exceed the budget); a
 * connection over its own share reads again once its requests are answered. */
static bool conn_mem_wait(struct conn *c)
{
    struct shard *sh = c->sh;
    bool over = sh->mem_used >= sh->cfg.max_inflight_bytes;
    if (over && c->big && (!sh->big_exempt || sh->big_exempt == c)) {
        sh->big_exempt = c;
        return false;
    }
    if (over) {
        if (!c->mem_paused)
            sh->m.mem_pauses++;
        c->mem_paused = true;
        sh->mem_paused_any = true;
        return true;
    }
    /* The frame in progress completes; new requests wait while c holds its share. */
    if (!c->big && c->req_bytes >= sh->cfg.max_connection_inflight_bytes) {
        if (!c->conn_paused)
            sh->m.conn_mem_pauses++;
        c->conn_paused = true;
        return true;
    }
    c->conn_paused = false;
    return false;
}

/* Logs a peer's protocol error, at most CONN_PEER_WARNS_PER_SEC a second, so a flood of bad
 * clients cannot flood the log; the count of suppressed lines is logged with the next one. */
static void conn_warn_peer(struct shard *sh, const struct conn *c, const char *msg)
{
    uint64_t sec = io_now_ns(sh->io) / 1000000000ull;
    if (sec != sh->warn_sec) {
        if (sh->warn_suppressed)
            RL_WARN("%u more protocol errors were not logged", sh->warn_suppressed);
        sh->warn_sec = sec;
        sh->warn_count = 0;
        sh->warn_suppressed = 0;
    }
    if (sh->warn_count++ < CONN_PEER_WARNS_PER_SEC)
        RL_WARN("connection %s: %s", c->peer, msg);
    else
        sh->warn_suppressed++;
}

void conn_protocol_error(struct conn *c, const char *msg)
{
    conn_warn_peer(c->sh, c, msg);
    c->sh->m.frames_malformed++;
    c->closing = true;
}

/* A protocol error that ends the connection: answer once, then close after sending. Kafka
 * has no error frame outside a request's own response, so a Kafka connection just closes. */
static void conn_fail(struct conn *c, int code, const char *msg)
{
    conn_warn_peer(c->sh, c, msg);
    c->closing = true;
    if (c->kafka)
        return;
    struct req *r = req_get(c);
    if (!r)
        return;
    r->close_after = true;
    req_respond_error(r, code, msg);
}

static void conn_dispatch(struct conn *c, uint8_t *frame, uint64_t total)
{
    struct shard *sh = c->sh;
    struct req *r = req_get(c);
    if (!r) {
        c->closing = true;
        return;
    }
    if (c->kafka) {
        r->kafka = true;
        r->kafka_api = kafka_frame_api_key(frame, (size_t)total);
        return kafka_dispatch(sh->svc.kafka, &r->svc, frame, (size_t)total);
    }
    struct frame_info fi_;
    const struct frame_info *fi = &fi_;
    int prc = frame_parse_header(frame, total, UINT32_MAX, &fi_);
    RL_ASSERT(prc == 1 && fi_.total_bytes == total);
    Ringlog__Request *rq = NULL;
    if (frame_decode_request(frame, fi, &r->arena, &rq)) {
        sh->m.frames_malformed++;
        r->close_after = true;
        c->closing = true;
        char msg[160];
        snprintf(msg, sizeof(msg), "request envelope (%u bytes) does not decode as a ringlog "
                 "Request; closing the connection", fi->envelope_len);
        conn_warn_peer(sh, c, msg);
        req_respond_error(r, RL_E_FRAME_MALFORMED, msg);
        return;
    }
    req_charge_arena(r); /* what decoding took counts against the budget from now on */
    r->correlation_id = rq->correlation_id;
    r->api = frame_request_api(rq);
    char msg[256];
    if (c->reserved && !conn_admin_api(r->api)) {
        snprintf(msg, sizeof(msg), "broker connection limit of %u reached (max.connections): "
                 "this connection is one of %u kept for operators and takes admin requests "
                 "only; retry later or raise the limit", sh->cfg.max_connections,
                 SHARD_NATIVE_RESERVE);
        r->close_after = true;
        c->closing = true;
        req_respond_error(r, RL_E_TOO_MANY_CONNECTIONS, msg);
        return;
    }
    int rc = frame_check_request(rq, fi->data_len, msg, sizeof(msg));
    if (rc) {
        req_respond_error(r, rc, msg);
        return;
    }
    native_dispatch(sh->svc.native, &r->svc, rq, frame + FRAME_HEADER_BYTES + fi->envelope_len,
                    fi->data_len);
    req_charge_arena(r); /* and what the handler built (r is queued until its answer leaves) */
}

/* Is a frame's size prefix at buf? 1 with *total (the whole frame's bytes), 0 when more bytes
 * are needed, or a negative code for a prefix that cannot be right. */
static int conn_peek(const struct conn *c, const uint8_t *buf, size_t len, uint64_t *total)
{
    uint32_t max = c->sh->cfg.max_frame_bytes;
    if (c->kafka) {
        size_t fb = 0;
        int rc = kframe_peek(buf, len, max, &fb);
        *total = fb;
        return rc;
    }
    struct frame_info fi;
    int rc = frame_parse_header(buf, len, max, &fi);
    *total = rc == 1 ? fi.total_bytes : 0;
    return rc;
}

static void conn_parse(struct conn *c)
{
    struct shard *sh = c->sh;
    uint32_t max_reqs = sh->cfg.max_requests_per_connection;
    if (c->big) {
        if (c->big_have < c->big_len || c->closing || c->nreq >= max_reqs)
            return;
        conn_dispatch(c, c->big, c->big_len);
        conn_big_free(c);
        /* A peer sending big frames usually sends more: read the next header alone, so the
         * frame's body lands in its own buffer directly instead of partly in rbuf first (a
         * copy of up to CONN_RBUF_BYTES per frame). */
        c->header_first = true;
    }
    if (!c->first_checked && c->rend - c->rstart >= 4 && !c->recv_inflight) {
        /* Another broker of the cluster: its connection belongs to the controller's
         * transport (broker/cluster/peer.h), not to the native protocol. */
        c->first_checked = true;
        if (c->nreq == 0 &&
            services_adopt_peer(sh, c->fd, c->rbuf + c->rstart, c->rend - c->rstart)) {
            c->fd = -1;
            c->rstart = c->rend = 0;
            c->closing = true;
            return;
        }
    }
    for (uint32_t guard = 0; guard < 100000 && !c->closing && c->nreq < max_reqs; guard++) {
        if (c->rend > c->rstart && conn_mem_wait(c))
            break; /* decoding takes memory too: the rest waits for room */
        uint64_t total = 0;
        int rc = conn_peek(c, c->rbuf + c->rstart, c->rend - c->rstart, &total);
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
            } else if (c->kafka) {
                sh->m.frames_malformed++;
                snprintf(msg, sizeof(msg), "Kafka frame size %d is negative or smaller than a "
                         "request header; closing the connection", (int32_t)flen);
            } else {
                sh->m.frames_malformed++;
                snprintf(msg, sizeof(msg), "frame header is inconsistent (frame_len %u cannot "
                         "hold the envelope length it declares); closing the connection", flen);
            }
            conn_fail(c, rc, msg);
            break;
        }
        if (total <= c->rcap)
            c->header_first = false;
        if (c->rend - c->rstart < total) {
            /* A recv in flight writes into the buffer as it is: wait for its completion. */
            if (total > c->rcap && !c->recv_inflight)
                conn_big_start(c, total);
            break;
        }
        conn_dispatch(c, c->rbuf + c->rstart, total);
        c->rstart += total;
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

/* Retires answered requests at the head that send nothing (a Kafka Produce with acks=0, a
 * request whose connection is being closed): nothing else would take them off the queue. */
static void conn_pop_empty(struct conn *c)
{
    for (uint32_t guard = 0; guard < 100000 && c->head; guard++) {
        struct req *r = c->head;
        if (!r->ready || r->total_bytes != 0)
            return;
        c->head = r->next;
        if (!c->head)
            c->tail = NULL;
        c->nreq--;
        if (r->close_after)
            c->closing = true;
        req_retire(r);
    }
}

static void conn_try_send(struct conn *c)
{
    struct shard *sh = c->sh;
    if (c->send_inflight || c->splice_in_inflight)
        return;
    conn_pop_empty(c);
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
    if (bytes)
        c->last_active_ns = io_now_ns(c->sh->io);
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

static bool conn_can_read(struct conn *c)
{
    const struct shard *sh = c->sh;
    if (c->recv_inflight || c->closing || c->eof || sh->stopping ||
        c->nreq >= sh->cfg.max_requests_per_connection)
        return false;
    /* A frame with a buffer of its own is received only while memory allows. The standing
     * buffer is paid for already, so it is always filled: over the budget it is dispatching
     * that waits (conn_parse), and a peer that goes away is still noticed (its long polls
     * answer, its connection is freed) instead of holding its memory until it times out. */
    if (c->big)
        return c->big_have < c->big_len && !conn_mem_wait(c);
    return c->rend < c->rcap;
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
    else if (c->header_first && c->rend == c->rstart)
        io_prep_recv(c->sh->io, &c->recv_op, c->fd, c->rbuf + c->rend, FRAME_HEADER_BYTES, 0);
    else
        io_prep_recv(c->sh->io, &c->recv_op, c->fd, c->rbuf + c->rend, c->rcap - c->rend, 0);
}

static void conn_handle_recv(struct conn *c)
{
    c->recv_completed = false;
    int n = c->recv_result;
    if (n > 0) {
        if (c->big) {
            c->big_have += (uint64_t)n;
            shard_mem_charge(c->sh, (uint64_t)n);
        } else {
            c->rend += (size_t)n;
        }
        c->sh->m.bytes_received += (uint64_t)n;
        c->last_active_ns = io_now_ns(c->sh->io);
        c->partial_progress += (uint64_t)n;
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

/* Keeps the deadline of a partial frame (after the receive is re-armed): the clock runs only
 * while the broker is reading, so a connection held back by the broker (pipelining depth,
 * memory) is never timed out for it. It starts when a frame is partial and read, is pushed back
 * each time a receive buffer's worth of bytes arrived, and stops when no frame is partial. */
static void conn_partial_track(struct conn *c)
{
    bool partial = c->big || c->rend > c->rstart;
    if (!partial || !c->recv_inflight) {
        c->partial_deadline_ns = 0;
        if (!partial)
            c->partial_progress = 0;
        return;
    }
    if (c->partial_deadline_ns == 0 || c->partial_progress >= CONN_RBUF_BYTES) {
        uint64_t timeout_ns = (uint64_t)c->sh->cfg.frame_receive_timeout_ms * 1000000ull;
        c->partial_deadline_ns = io_now_ns(c->sh->io) + timeout_ns;
        c->partial_progress = 0;
    }
}

void conn_tick(struct shard *sh, uint64_t now_ns)
{
    uint64_t idle_ns = (uint64_t)sh->cfg.connections_max_idle_ms * 1000000ull;
    uint64_t reserve_idle_ns = idle_ns < SHARD_RESERVE_IDLE_MS * 1000000ull
                                   ? idle_ns : SHARD_RESERVE_IDLE_MS * 1000000ull;
    for (struct conn *c = sh->conns; c; c = c->next) {
        if (c->closing || c->dead)
            continue;
        if (c->partial_deadline_ns && now_ns > c->partial_deadline_ns) {
            char msg[200];
            sh->m.frames_timed_out++;
            snprintf(msg, sizeof(msg), "a frame was still incomplete (%llu bytes received) "
                     "after %u ms without progress (frame.receive.timeout.ms); closing the "
                     "connection", (unsigned long long)(c->big ? c->big_have
                                                        : c->rend - c->rstart),
                     sh->cfg.frame_receive_timeout_ms);
            conn_fail(c, RL_E_REQUEST_TIMED_OUT, msg);
            shard_mark_conn(c);
            continue;
        }
        if (now_ns - c->last_active_ns <= (c->reserved ? reserve_idle_ns : idle_ns))
            continue;
        /* Idle: nothing moved either way for connections.max.idle.ms, and the broker is not
         * working on anything for it (or only holds answers the peer does not read). */
        if (c->nreq == 0 && !c->big && c->rend == c->rstart) {
            RL_DEBUG("connection %s idle for %u ms (connections.max.idle.ms); closing", c->peer,
                     sh->cfg.connections_max_idle_ms);
            c->closing = true;
        } else if (c->head && c->head->ready) {
            RL_INFO("connection %s has not read its answers for %u ms "
                    "(connections.max.idle.ms); closing", c->peer,
                    sh->cfg.connections_max_idle_ms);
            c->dead = true;
        } else {
            continue;
        }
        sh->m.connections_idle_closed++;
        shard_mark_conn(c);
    }
}

void conn_process(struct conn *c)
{
    if (c->recv_completed) {
        conn_handle_recv(c);
        if (c->eof)
            conn_interrupt(c); /* nobody will wait for a long poll on a closed peer */
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
            if (r->svc.finish)
                r->svc.finish(&r->svc);
        }
    }
    if (!c->dead) {
        conn_parse(c);
        conn_try_send(c);
        if (conn_can_read(c))
            conn_arm_recv(c);
        conn_partial_track(c);
    }
    bool done = c->dead || (c->closing && !c->head);
    bool busy = c->recv_inflight || c->send_inflight || c->splice_in_inflight;
    if (done && busy)
        if (c->fd >= 0)
            shutdown(c->fd, c->dead ? SHUT_RDWR : SHUT_RD); /* wakes pending ops */
    if (done && !busy)
        conn_free(c);
}
