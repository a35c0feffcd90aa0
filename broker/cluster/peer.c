/*
 * peer: see peer.h. Outbound links (one per known node) dial, send the hello and then the queued
 * frames; a one-byte recv kept armed on them notices the far end closing. Inbound links (adopted
 * from the native listener) read the hello, then frames, into a buffer that grows to the largest
 * frame seen (bounded by PEER_MAX_BODY_BYTES).
 */
#include "broker/cluster/peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"

#define PEER_RBUF_BYTES (64u * 1024)
#define PEER_DRAIN_MS 2000

struct pbuf {
    uint8_t *p;
    size_t len, cap, off;
};

enum link_state { L_IDLE, L_CONNECTING, L_UP, L_CLOSING };

struct out_link {
    struct peer *p;
    uint32_t node;
    struct sockaddr_in sa;
    char addr[64];
    int fd;
    uint8_t state;
    struct io_op conn_op, send_op, recv_op;
    bool conn_inflight, send_inflight, recv_inflight;
    bool conn_done, send_done, recv_done;
    int conn_res, send_res, recv_res;
    uint8_t rtiny[16];
    struct pbuf wbuf, qbuf;
    int64_t retry_at_ms;
    bool warned;
    bool lost; /* a connection with it was lost since peer_take_lost last looked */
    struct peer_node_stats st;
};

struct in_link {
    struct peer *p;
    struct in_link *next;
    int fd;
    uint32_t node; /* 0 until the hello is read */
    bool hello_ok, dead;
    struct io_op recv_op;
    bool recv_inflight, recv_done;
    int recv_res;
    uint8_t *rbuf;
    size_t rcap, rlen;
};

struct peer {
    struct io *io;
    uint32_t self;
    uint64_t cluster_id;
    struct peer_host host;
    struct out_link *out[PEER_MAX_NODES];
    uint32_t n_out;
    struct in_link *in;
    uint32_t n_in;
    uint32_t ops;
};

static int64_t peer_now_ms(const struct peer *p)
{
    return (int64_t)(io_now_ns(p->io) / 1000000ull);
}

static int pbuf_reserve(struct pbuf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->len + more)
        nc *= 2;
    uint8_t *np = realloc(b->p, nc);
    if (!np)
        return -ENOMEM;
    b->p = np;
    b->cap = nc;
    return 0;
}

static void pbuf_reset(struct pbuf *b)
{
    b->len = b->off = 0;
}

static struct out_link *peer_out(const struct peer *p, uint32_t node)
{
    for (uint32_t i = 0; i < p->n_out; i++)
        if (p->out[i]->node == node)
            return p->out[i];
    return NULL;
}

bool peer_is_hello(const uint8_t *buf, size_t n)
{
    return n >= 4 && rl_load_le32(buf) == PEER_MAGIC;
}

struct peer *peer_create(struct io *io, uint32_t self, uint64_t cluster_id,
                         const struct peer_host *host)
{
    struct peer *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->io = io;
    p->self = self;
    p->cluster_id = cluster_id;
    p->host = *host;
    return p;
}

int peer_add(struct peer *p, uint32_t node, const char *host, uint16_t port)
{
    if (peer_out(p, node))
        return RL_E_EXISTS;
    if (p->n_out >= PEER_MAX_NODES)
        return RL_E_LIMIT;
    struct out_link *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->sa.sin_family = AF_INET;
    l->sa.sin_port = htons(port);
    const char *h = strcmp(host, "localhost") ? host : "127.0.0.1";
    if (inet_pton(AF_INET, h, &l->sa.sin_addr) != 1) {
        free(l);
        return RL_E_INVALID_CONFIG;
    }
    l->p = p;
    l->node = node;
    l->fd = -1;
    snprintf(l->addr, sizeof(l->addr), "%s:%u", h, port);
    p->out[p->n_out++] = l;
    return 0;
}

/* --- io callbacks: record only ------------------------------------------------------------- */

static void out_conn_cb(struct io_op *op, int res)
{
    struct out_link *l = op->ctx;
    l->p->ops--;
    l->conn_inflight = false;
    l->conn_done = true;
    l->conn_res = res;
}

static void out_send_cb(struct io_op *op, int res)
{
    struct out_link *l = op->ctx;
    l->p->ops--;
    l->send_inflight = false;
    l->send_done = true;
    l->send_res = res;
}

static void out_recv_cb(struct io_op *op, int res)
{
    struct out_link *l = op->ctx;
    l->p->ops--;
    l->recv_inflight = false;
    l->recv_done = true;
    l->recv_res = res;
}

static void in_recv_cb(struct io_op *op, int res)
{
    struct in_link *l = op->ctx;
    l->p->ops--;
    l->recv_inflight = false;
    l->recv_done = true;
    l->recv_res = res;
}

/* --- outbound -------------------------------------------------------------------------------- */

/* An established connection with `l`'s node (either direction) is gone. */
static void out_mark_lost(struct out_link *l)
{
    l->lost = true;
    l->st.losses++;
}

static void out_fail(struct out_link *l, int why)
{
    if (l->state == L_CLOSING || l->state == L_IDLE)
        return;
    if (l->state == L_UP)
        out_mark_lost(l); /* a refused dial is no news: the node was already unreachable */
    if (!l->warned)
        RL_INFO("peer: connection to node %u at %s lost or refused: %s (retrying every %d ms)",
                l->node, l->addr, rl_strerror(why), PEER_RECONNECT_MS);
    l->warned = true;
    l->st.connected = false;
    l->state = L_CLOSING;
    if (l->fd >= 0)
        shutdown(l->fd, SHUT_RDWR);
}

static void out_dial(struct out_link *l)
{
    struct peer *p = l->p;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        l->retry_at_ms = peer_now_ms(p) + PEER_RECONNECT_MS;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    l->fd = fd;
    l->state = L_CONNECTING;
    pbuf_reset(&l->wbuf);
    pbuf_reset(&l->qbuf);
    if (pbuf_reserve(&l->wbuf, PEER_HELLO_BYTES)) {
        out_fail(l, -ENOMEM);
        return;
    }
    uint8_t *h = l->wbuf.p;
    rl_store_le32(h, PEER_MAGIC);
    rl_store_le32(h + 4, PEER_VERSION);
    rl_store_le32(h + 8, p->self);
    rl_store_le32(h + 12, 0);
    rl_store_le64(h + 16, p->cluster_id);
    l->wbuf.len = PEER_HELLO_BYTES;
    l->conn_op.done = out_conn_cb;
    l->conn_op.ctx = l;
    l->conn_inflight = true;
    p->ops++;
    io_prep_connect(p->io, &l->conn_op, fd, (const struct sockaddr *)&l->sa, sizeof(l->sa), 0);
}

static void out_process(struct out_link *l, int64_t now)
{
    struct peer *p = l->p;
    if (l->conn_done) {
        l->conn_done = false;
        if (l->conn_res < 0) {
            out_fail(l, l->conn_res);
        } else if (l->state == L_CONNECTING) {
            l->state = L_UP;
            l->st.connected = true;
            if (l->warned)
                RL_INFO("peer: connected to node %u at %s", l->node, l->addr);
            l->warned = false;
        }
    }
    if (l->send_done) {
        l->send_done = false;
        if (l->send_res <= 0) {
            out_fail(l, l->send_res ? l->send_res : -EPIPE);
        } else {
            l->st.bytes_sent += (uint64_t)l->send_res;
            l->wbuf.off += (size_t)l->send_res;
            if (l->wbuf.off == l->wbuf.len)
                pbuf_reset(&l->wbuf);
        }
    }
    if (l->recv_done) {
        l->recv_done = false;
        if (l->recv_res >= PEER_REJECT_BYTES && rl_load_le32(l->rtiny) == PEER_REJECT_MAGIC &&
            p->host.on_frame)
            p->host.on_frame(p->host.ctx, l->node, PEER_REJECTED, l->rtiny + 8, 8);
        if (l->recv_res <= 0)
            out_fail(l, l->recv_res ? l->recv_res : -ECONNRESET);
    }
    if (l->state == L_CLOSING) {
        if (l->conn_inflight || l->send_inflight || l->recv_inflight)
            return;
        close(l->fd);
        l->fd = -1;
        pbuf_reset(&l->wbuf);
        pbuf_reset(&l->qbuf);
        l->state = L_IDLE;
        l->retry_at_ms = now + PEER_RECONNECT_MS;
        return;
    }
    if (l->state == L_IDLE) {
        if (now >= l->retry_at_ms)
            out_dial(l);
        return;
    }
    if (l->state != L_UP)
        return;
    if (!l->send_inflight) {
        if (l->wbuf.len == 0 && l->qbuf.len > 0) {
            struct pbuf t = l->wbuf;
            l->wbuf = l->qbuf;
            l->qbuf = t;
            pbuf_reset(&l->qbuf);
        }
        if (l->wbuf.len > l->wbuf.off) {
            l->send_op.done = out_send_cb;
            l->send_op.ctx = l;
            l->send_inflight = true;
            l->st.send_calls++;
            p->ops++;
            io_prep_send(p->io, &l->send_op, l->fd, l->wbuf.p + l->wbuf.off,
                         peer_send_chunk(l->wbuf.len - l->wbuf.off), MSG_NOSIGNAL);
        }
    }
    if (!l->recv_inflight) {
        l->recv_op.done = out_recv_cb;
        l->recv_op.ctx = l;
        l->recv_inflight = true;
        p->ops++;
        io_prep_recv(p->io, &l->recv_op, l->fd, l->rtiny, sizeof(l->rtiny), 0);
    }
}

int peer_send(struct peer *p, uint32_t to, uint8_t type, const void *body, size_t len)
{
    struct out_link *l = peer_out(p, to);
    if (!l)
        return RL_E_NOT_FOUND;
    if (l->state != L_UP && l->state != L_CONNECTING) {
        l->st.frames_dropped++;
        return RL_E_BROKER_UNAVAILABLE;
    }
    size_t need = PEER_FRAME_HEADER_BYTES + len;
    if (len > PEER_MAX_BODY_BYTES || l->qbuf.len + need > PEER_MAX_QUEUE_BYTES ||
        pbuf_reserve(&l->qbuf, need)) {
        l->st.frames_dropped++;
        return RL_E_FULL;
    }
    uint8_t *h = l->qbuf.p + l->qbuf.len;
    rl_store_le32(h, (uint32_t)len);
    h[4] = type;
    h[5] = h[6] = h[7] = 0;
    if (len)
        memcpy(h + PEER_FRAME_HEADER_BYTES, body, len);
    l->qbuf.len += need;
    l->st.frames_sent++;
    size_t queued = peer_backlog_bytes(p, to);
    if (queued > l->st.bytes_queued_max)
        l->st.bytes_queued_max = queued;
    return 0;
}

int peer_send_buf(struct peer *p, uint32_t to, uint8_t type, uint8_t **buf, size_t *cap,
                  size_t len)
{
    struct out_link *l = peer_out(p, to);
    if (!l || l->qbuf.len > 0 || len > PEER_MAX_BODY_BYTES || !*buf ||
        (l->state != L_UP && l->state != L_CONNECTING))
        return peer_send(p, to, type, *buf ? *buf + PEER_FRAME_HEADER_BYTES : NULL, len);
    uint8_t *h = *buf;
    rl_store_le32(h, (uint32_t)len);
    h[4] = type;
    h[5] = h[6] = h[7] = 0;
    uint8_t *old = l->qbuf.p;
    size_t old_cap = l->qbuf.cap;
    l->qbuf.p = *buf;
    l->qbuf.cap = *cap;
    l->qbuf.len = PEER_FRAME_HEADER_BYTES + len;
    l->qbuf.off = 0;
    *buf = old;
    *cap = old_cap;
    l->st.frames_sent++;
    size_t queued = peer_backlog_bytes(p, to);
    if (queued > l->st.bytes_queued_max)
        l->st.bytes_queued_max = queued;
    return 0;
}

size_t peer_backlog_bytes(const struct peer *p, uint32_t node)
{
    const struct out_link *l = peer_out(p, node);
    return l ? l->qbuf.len + (l->wbuf.len - l->wbuf.off) : 0;
}

/* --- inbound --------------------------------------------------------------------------------- */

void peer_adopt(struct peer *p, int fd, const uint8_t *pre, size_t n)
{
    struct in_link *l = calloc(1, sizeof(*l));
    size_t cap = n > PEER_RBUF_BYTES ? n : PEER_RBUF_BYTES;
    uint8_t *buf = l ? malloc(cap) : NULL;
    if (!l || !buf || p->n_in >= PEER_MAX_INBOUND) {
        RL_WARN("peer: refusing a connection from another broker (%s)",
                l && buf ? "too many peer connections" : "out of memory");
        free(l);
        free(buf);
        close(fd);
        return;
    }
    if (n)
        memcpy(buf, pre, n);
    l->p = p;
    l->fd = fd;
    l->rbuf = buf;
    l->rcap = cap;
    l->rlen = n;
    l->next = p->in;
    p->in = l;
    p->n_in++;
}

static bool in_hello(struct in_link *l)
{
    struct peer *p = l->p;
    const uint8_t *h = l->rbuf;
    uint32_t version = rl_load_le32(h + 4), from = rl_load_le32(h + 8);
    uint64_t cid = rl_load_le64(h + 16);
    if (rl_load_le32(h) != PEER_MAGIC || version != PEER_VERSION) {
        RL_WARN("peer: a broker spoke peer protocol version %u; this broker speaks %u; "
                "run the same ringlogd version on every node", version, PEER_VERSION);
        return false;
    }
    if (cid != p->cluster_id) {
        /* Tell the dialer why (best effort, non-blocking: 16 bytes fit any socket buffer). */
        uint8_t no[PEER_REJECT_BYTES];
        rl_store_le32(no, PEER_REJECT_MAGIC);
        rl_store_le32(no + 4, p->self);
        rl_store_le64(no + 8, p->cluster_id);
        if (send(l->fd, no, sizeof(no), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            RL_DEBUG("peer: cannot tell node %u why: %s", from, rl_strerror(-errno));
        RL_ERROR("peer: node %u belongs to another cluster (cluster id %016llx, ours %016llx): "
                 "every node must be started with the same --voters list", from,
                 (unsigned long long)cid, (unsigned long long)p->cluster_id);
        return false;
    }
    if (from == p->self || from == 0) {
        RL_ERROR("peer: a broker introduced itself as node %u, which is %s; give every node "
                 "its own --node-id", from, from ? "this node's id" : "not a valid id");
        return false;
    }
    l->node = from;
    l->hello_ok = true;
    return true;
}

static void in_parse(struct in_link *l, int64_t now)
{
    struct peer *p = l->p;
    size_t pos = 0;
    if (!l->hello_ok) {
        if (l->rlen < PEER_HELLO_BYTES)
            return;
        if (!in_hello(l)) {
            l->dead = true;
            return;
        }
        pos = PEER_HELLO_BYTES;
    }
    struct out_link *o = peer_out(p, l->node);
    for (uint32_t guard = 0; guard < 1000000 && !l->dead; guard++) {
        if (l->rlen - pos < PEER_FRAME_HEADER_BYTES)
            break;
        uint32_t body = rl_load_le32(l->rbuf + pos);
        if (body > PEER_MAX_BODY_BYTES) {
            RL_WARN("peer: node %u sent a frame of %u bytes (max %u); closing", l->node, body,
                    PEER_MAX_BODY_BYTES);
            l->dead = true;
            break;
        }
        size_t need = PEER_FRAME_HEADER_BYTES + (size_t)body;
        if (l->rlen - pos < need) {
            if (need > l->rcap) {
                uint8_t *nb = realloc(l->rbuf, need);
                if (!nb) {
                    l->dead = true;
                    break;
                }
                l->rbuf = nb;
                l->rcap = need;
            }
            break;
        }
        uint8_t type = l->rbuf[pos + 4];
        if (o) {
            o->st.frames_received++;
            o->st.bytes_received += need;
            o->st.last_heard_ms = now;
        }
        p->host.on_frame(p->host.ctx, l->node, type, l->rbuf + pos + PEER_FRAME_HEADER_BYTES,
                         body);
        pos += need;
    }
    if (pos) {
        memmove(l->rbuf, l->rbuf + pos, l->rlen - pos);
        l->rlen -= pos;
    }
}

/* Returns false once the link is gone (freed). */
static bool in_process(struct in_link *l, int64_t now)
{
    struct peer *p = l->p;
    if (l->recv_done) {
        l->recv_done = false;
        if (l->recv_res <= 0) {
            struct out_link *o = l->hello_ok && !l->dead ? peer_out(p, l->node) : NULL;
            if (o)
                out_mark_lost(o);
            l->dead = true;
        } else {
            l->rlen += (size_t)l->recv_res;
        }
    }
    if (!l->dead)
        in_parse(l, now);
    if (l->dead) {
        if (l->recv_inflight) {
            shutdown(l->fd, SHUT_RDWR);
            return true;
        }
        close(l->fd);
        free(l->rbuf);
        return false;
    }
    if (!l->recv_inflight && l->rlen < l->rcap) {
        l->recv_op.done = in_recv_cb;
        l->recv_op.ctx = l;
        l->recv_inflight = true;
        p->ops++;
        io_prep_recv(p->io, &l->recv_op, l->fd, l->rbuf + l->rlen, l->rcap - l->rlen, 0);
    }
    return true;
}

void peer_process(struct peer *p)
{
    int64_t now = peer_now_ms(p);
    for (struct in_link **pp = &p->in; *pp;) {
        struct in_link *l = *pp;
        if (in_process(l, now)) {
            pp = &l->next;
        } else {
            *pp = l->next;
            p->n_in--;
            free(l);
        }
    }
    for (uint32_t i = 0; i < p->n_out; i++)
        out_process(p->out[i], now);
}

uint32_t peer_take_lost(struct peer *p, uint32_t *out, uint32_t cap)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < p->n_out && n < cap; i++) {
        if (p->out[i]->lost) {
            p->out[i]->lost = false;
            out[n++] = p->out[i]->node;
        }
    }
    return n;
}

void peer_get_node_stats(const struct peer *p, uint32_t node, struct peer_node_stats *out)
{
    const struct out_link *l = peer_out(p, node);
    if (l) {
        *out = l->st;
        out->bytes_queued = peer_backlog_bytes(p, node);
    } else
        memset(out, 0, sizeof(*out));
}

void peer_destroy(struct peer *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->n_out; i++)
        if (p->out[i]->fd >= 0)
            shutdown(p->out[i]->fd, SHUT_RDWR);
    for (struct in_link *l = p->in; l; l = l->next)
        shutdown(l->fd, SHUT_RDWR);
    uint64_t until = io_now_ns(p->io) + PEER_DRAIN_MS * 1000000ull;
    while (p->ops > 0 && io_now_ns(p->io) < until)
        io_run(p->io, 50000000ull);
    if (p->ops)
        RL_WARN("peer: closing with %u socket operations still in flight", p->ops);
    for (uint32_t i = 0; i < p->n_out; i++) {
        struct out_link *l = p->out[i];
        if (l->fd >= 0)
            close(l->fd);
        free(l->wbuf.p);
        free(l->qbuf.p);
        /* An op still in flight (the drain timed out) points into l: keep it. */
        if (!p->ops)
            free(l);
    }
    while (p->in) {
        struct in_link *l = p->in;
        p->in = l->next;
        close(l->fd);
        free(l->rbuf);
        if (!p->ops)
            free(l);
    }
    if (!p->ops)
        free(p);
}
