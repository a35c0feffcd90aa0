/*
 * conn: one TCP connection to a broker speaking the framed native protocol
 * (proto/ringlog.proto: u32 frame_len | u32 envelope_len | envelope | data, big-endian).
 * Where it sits: producer I/O thread / consumer / admin -> rlc_conn -> socket -> ringlogd.
 *
 * The socket is non-blocking; callers drive it with rlc_conn_flush / rlc_conn_read and wait with
 * poll(2) (rlc_conn_wait, or the producer's own poll over many connections). Outgoing batch bytes
 * are never copied: a frame is a small owned head (length prefix + envelope) followed by iovecs
 * into the caller's batches, written with writev. Incoming frames are read into one growable
 * buffer and handed out in place, so a fetched batch is iterated where the kernel put it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "common/err.h"

#define RECV_CHUNK (256 * 1024) /* bytes asked of recv when the frame size is not known yet */
#define WRITEV_MAX 256          /* iovecs gathered into one writev */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Waits for a non-blocking connect to finish; returns 0 or -errno. */
static int connect_wait(int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int64_t deadline = rlc_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - rlc_now_ms();
        if (left < 0)
            return -ETIMEDOUT;
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -ETIMEDOUT;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            return -errno;
        return soerr ? -soerr : 0;
    }
}

int rlc_conn_open(struct rlc_conn *c, const struct rlc_addr *addr, int timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->addr = *addr;
    c->next_corr = 1;
    char port[8];
    snprintf(port, sizeof(port), "%u", addr->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(addr->host, port, &hints, &res);
    if (gai != 0) {
        rlc_set_err(c->err, sizeof(c->err), "cannot resolve broker host \"%s\": %s",
                    addr->host, gai_strerror(gai));
        return RL_E_BROKER_UNAVAILABLE;
    }
    int rc = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        rc = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : -errno;
        if (rc == -EINPROGRESS)
            rc = connect_wait(fd, timeout_ms);
        if (rc == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            c->fd = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (rc)
        rlc_set_err(c->err, sizeof(c->err),
                    "cannot connect to broker %s:%u: %s; is ringlogd running there? "
                    "(set the address in bootstrap.servers)",
                    addr->host, addr->port, strerror(-rc));
    return rc;
}

void rlc_conn_close(struct rlc_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    while (c->out_count) {
        free(c->out[c->out_head].head);
        c->out_head = (c->out_head + 1) % RLC_MAX_PENDING_FRAMES;
        c->out_count--;
    }
    c->out_off = 0;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = c->in_consumed = 0;
}

int rlc_conn_queue(struct rlc_conn *c, Ringlog__Request *req, const struct iovec *data,
                   int datacnt, uint32_t *corr)
{
    if (c->out_count == RLC_MAX_PENDING_FRAMES)
        return RL_E_FULL;
    if (datacnt < 0 || datacnt > RLC_FRAME_IOV - 1)
        return RL_E_INVALID_ARGUMENT;
    req->correlation_id = c->next_corr++;
    if (corr)
        *corr = req->correlation_id;
    size_t env = ringlog__request__get_packed_size(req);
    size_t data_len = 0;
    for (int i = 0; i < datacnt; i++)
        data_len += data[i].iov_len;
    if (4 + env + data_len > RLC_MAX_FRAME_BYTES)
        return RL_E_FRAME_TOO_LARGE;
    uint8_t *head = malloc(8 + env);
    if (!head)
        return -ENOMEM;
    put_be32(head, (uint32_t)(4 + env + data_len));
    put_be32(head + 4, (uint32_t)env);
    ringlog__request__pack(req, head + 8);
    struct rlc_frame *f = &c->out[(c->out_head + c->out_count) % RLC_MAX_PENDING_FRAMES];
    f->head = head;
    f->iov[0].iov_base = head;
    f->iov[0].iov_len = 8 + env;
    for (int i = 0; i < datacnt; i++)
        f->iov[1 + i] = data[i];
    f->iovcnt = 1 + datacnt;
    c->out_count++;
    return 0;
}

/* Gathers the unwritten parts of queued frames into iov; returns how many. */
static int gather(struct rlc_conn *c, struct iovec *iov)
{
    int n = 0;
    size_t skip = c->out_off;
    for (unsigned k = 0; k < c->out_count && n < WRITEV_MAX; k++) {
        struct rlc_frame *f = &c->out[(c->out_head + k) % RLC_MAX_PENDING_FRAMES];
        for (int i = 0; i < f->iovcnt && n < WRITEV_MAX; i++) {
            size_t len = f->iov[i].iov_len;
            if (skip >= len) {
                skip -= len;
                continue;
            }
            iov[n].iov_base = (uint8_t *)f->iov[i].iov_base + skip;
            iov[n].iov_len = len - skip;
            skip = 0;
            n++;
        }
    }
    return n;
}

/* Drops frames fully covered by `written` more bytes. */
static void advance(struct rlc_conn *c, size_t written)
{
    c->out_off += written;
    while (c->out_count) {
        struct rlc_frame *f = &c->out[c->out_head];
        size_t total = 0;
        for (int i = 0; i < f->iovcnt; i++)
            total += f->iov[i].iov_len;
        if (c->out_off < total)
            break;
        c->out_off -= total;
        free(f->head);
        f->head = NULL;
        c->out_head = (c->out_head + 1) % RLC_MAX_PENDING_FRAMES;
        c->out_count--;
    }
}

int rlc_conn_flush(struct rlc_conn *c)
{
    struct iovec iov[WRITEV_MAX];
    while (c->out_count) {
        int n = gather(c, iov);
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            int e = -errno;
            rlc_set_err(c->err, sizeof(c->err), "lost connection to broker %s:%u: %s",
                        c->addr.host, c->addr.port, strerror(-e));
            return e;
        }
        advance(c, (size_t)w);
    }
    return 0;
}

static int grow_in(struct rlc_conn *c, size_t need)
{
    if (need <= c->in_cap)
        return 0;
    size_t cap = c->in_cap ? c->in_cap : RECV_CHUNK;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(c->in, cap);
    if (!p)
        return -ENOMEM;
    c->in = p;
    c->in_cap = cap;
    return 0;
}

/* Decodes the whole frame at the start of c->in (frame_len bytes after the prefix). */
static int decode_frame(struct rlc_conn *c, uint32_t frame_len, Ringlog__Response **resp,
                        const uint8_t **data, size_t *data_len)
{
    uint32_t env = frame_len >= 4 ? get_be32(c->in + 4) : UINT32_MAX;
    if (env > frame_len - 4) {
        rlc_set_err(c->err, sizeof(c->err), "broker %s:%u sent a malformed frame",
                    c->addr.host, c->addr.port);
        return RL_E_FRAME_MALFORMED;
    }
    *resp = ringlog__response__unpack(NULL, env, c->in + 8);
    if (!*resp) {
        rlc_set_err(c->err, sizeof(c->err), "broker %s:%u sent an undecodable response",
                    c->addr.host, c->addr.port);
        return RL_E_FRAME_MALFORMED;
    }
    *data = c->in + 8 + env;
    *data_len = frame_len - 4 - env;
    c->in_consumed = 4 + (size_t)frame_len;
    return 1;
}

int rlc_conn_read(struct rlc_conn *c, Ringlog__Response **resp, const uint8_t **data,
                  size_t *data_len)
{
    if (c->in_consumed) {
        memmove(c->in, c->in + c->in_consumed, c->in_len - c->in_consumed);
        c->in_len -= c->in_consumed;
        c->in_consumed = 0;
    }
    for (;;) {
        size_t want = RECV_CHUNK;
        if (c->in_len >= 4) {
            uint32_t frame_len = get_be32(c->in);
            if (frame_len > RLC_MAX_FRAME_BYTES) {
                rlc_set_err(c->err, sizeof(c->err), "broker %s:%u sent a %u-byte frame "
                            "(client limit %u)", c->addr.host, c->addr.port, frame_len,
                            RLC_MAX_FRAME_BYTES);
                return RL_E_FRAME_TOO_LARGE;
            }
            if (c->in_len >= 4 + (size_t)frame_len)
                return decode_frame(c, frame_len, resp, data, data_len);
            want = 4 + (size_t)frame_len - c->in_len;
            if (want < RECV_CHUNK)
                want = RECV_CHUNK;
        }
        if (grow_in(c, c->in_len + want))
            return -ENOMEM;
        /* Read the rest of this frame plus at most a chunk: what is read past the frame is
         * moved to the front when the frame is dropped, so it must stay small. */
        ssize_t r = recv(c->fd, c->in + c->in_len, want, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r <= 0) {
            int e = r == 0 ? -ECONNRESET : -errno;
            rlc_set_err(c->err, sizeof(c->err), "lost connection to broker %s:%u: %s",
                        c->addr.host, c->addr.port,
                        r == 0 ? "closed by the broker" : strerror(-e));
            return e;
        }
        c->in_len += (size_t)r;
    }
}

int rlc_conn_wait(struct rlc_conn *c, int64_t deadline_ms)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (rlc_conn_wants_write(c))
        pfd.events |= POLLOUT;
    for (;;) {
        int64_t left = deadline_ms - rlc_now_ms();
        if (left < 0)
            left = 0;
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 ? -errno : r;
    }
}

int rlc_conn_call(struct rlc_conn *c, Ringlog__Request *req, int timeout_ms,
                  Ringlog__Response **resp, const uint8_t **data, size_t *data_len)
{
    *resp = NULL;
    int64_t deadline = rlc_now_ms() + timeout_ms;
    uint32_t corr;
    int rc = rlc_conn_queue(c, req, NULL, 0, &corr);
    if (rc)
        goto fail;
    for (;;) {
        rc = rlc_conn_flush(c);
        if (rc)
            goto fail;
        rc = rlc_conn_read(c, resp, data, data_len);
        if (rc < 0)
            goto fail;
        if (rc == 1) {
            if ((*resp)->correlation_id == corr)
                break;
            /* An answer to an earlier request we gave up on: skip it. */
            ringlog__response__free_unpacked(*resp, NULL);
            *resp = NULL;
            continue;
        }
        rc = rlc_conn_wait(c, deadline);
        if (rc < 0)
            goto fail;
        if (rc == 0) {
            rlc_set_err(c->err, sizeof(c->err),
                        "broker %s:%u did not answer within %d ms (request.timeout.ms)",
                        c->addr.host, c->addr.port, timeout_ms);
            rc = RL_E_TIMED_OUT;
            goto fail;
        }
    }
    if ((*resp)->error_code) {
        rc = (*resp)->error_code;
        rlc_set_err(c->err, sizeof(c->err), "%s", (*resp)->error_message &&
                    (*resp)->error_message[0] ? (*resp)->error_message : rl_strerror(rc));
        return rc;
    }
    return 0;
fail:
    rlc_conn_close(c);
    return rc;
}
