/*
 * tl_proxy: the answer-losing TCP proxy of the client integration tests (see tl_proxy.h).
 * Requests flow client -> proxy -> broker byte for byte; answers are cut into frames
 * (u32 frame_len | u32 envelope_len | envelope | data) so that one can be dropped whole, or a
 * Metadata / FindCoordinator answer re-encoded with the proxy's own address.
 */
#include "tests/integration/tl_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/frame.h"
#include "proto/ringlog.pb-c.h"

#define PROXY_BUF_MAX (160u * 1024 * 1024) /* the largest answer frame it will hold */

struct pair {
    struct tl_proxy *px;
    int cfd, bfd;
    uint8_t *in; /* answer bytes from the broker not yet forwarded */
    size_t in_len, in_cap;
};

static uint64_t proxy_rand(struct tl_proxy *px)
{
    uint64_t x = atomic_load(&px->rnd);
    uint64_t n;
    do {
        n = x;
        n ^= n >> 12;
        n ^= n << 25;
        n ^= n >> 27;
    } while (!atomic_compare_exchange_weak(&px->rnd, &x, n));
    return n * 0x2545F4914F6CDD1DULL;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int connect_broker(const struct tl_proxy *px)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(px->broker_port)};
    inet_pton(AF_INET, px->broker_host, &sa.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A whole answer frame's header (the broker's own framing, proto/frame.h). */
static bool proxy_frame(const uint8_t *frame, size_t len, struct frame_info *fi)
{
    return frame_parse_header(frame, len, UINT32_MAX, fi) == 1 && fi->total_bytes == len;
}

/* Re-encodes an answer whose body names brokers, pointing them at the proxy. Returns a new
 * frame (malloc'ed, *out_len bytes) or NULL to forward the original. */
static uint8_t *rewrite(struct tl_proxy *px, const uint8_t *frame, size_t len, size_t *out_len)
{
    struct frame_info fi;
    if (!proxy_frame(frame, len, &fi))
        return NULL;
    Ringlog__Response *r = ringlog__response__unpack(NULL, fi.envelope_len,
                                                     frame + FRAME_HEADER_BYTES);
    if (!r)
        return NULL;
    bool changed = false;
    if (r->body_case == RINGLOG__RESPONSE__BODY_METADATA) {
        for (size_t i = 0; i < r->metadata->n_brokers; i++) {
            r->metadata->brokers[i]->port = px->port;
            changed = true;
        }
    } else if (r->body_case == RINGLOG__RESPONSE__BODY_FIND_COORDINATOR &&
               r->find_coordinator->port) {
        r->find_coordinator->port = px->port;
        changed = true;
    }
    uint8_t *out = NULL;
    if (changed) {
        size_t head = frame_response_envelope_bytes(r);
        out = malloc(head + fi.data_len);
        if (out) {
            size_t n = frame_encode_response(r, fi.data_len, out);
            memcpy(out + n, frame + FRAME_HEADER_BYTES + fi.envelope_len, fi.data_len);
            *out_len = n + fi.data_len;
        }
    }
    ringlog__response__free_unpacked(r, NULL);
    return out;
}

/* Is this frame the answer to a Produce? (Only those are dropped: the test is about retries
 * of appended batches.) */
static bool is_produce(const uint8_t *frame, size_t len)
{
    struct frame_info fi;
    if (!proxy_frame(frame, len, &fi))
        return false;
    Ringlog__Response *r = ringlog__response__unpack(NULL, fi.envelope_len,
                                                     frame + FRAME_HEADER_BYTES);
    bool yes = r && r->body_case == RINGLOG__RESPONSE__BODY_PRODUCE;
    if (r)
        ringlog__response__free_unpacked(r, NULL);
    return yes;
}

/* Forwards every whole answer frame buffered in pr->in. Returns -1 when the pair must close
 * (an answer dropped on purpose, or a write failed). */
static int forward_frames(struct pair *pr)
{
    struct tl_proxy *px = pr->px;
    size_t off = 0;
    int rc = 0;
    for (;;) {
        struct frame_info fi;
        int hr = frame_parse_header(pr->in + off, pr->in_len - off, UINT32_MAX, &fi);
        if (hr < 0) {
            rc = -1; /* the broker never sends that: close rather than guess */
            break;
        }
        size_t flen = (size_t)fi.total_bytes;
        if (hr == 0 || pr->in_len - off < flen)
            break;
        const uint8_t *f = pr->in + off;
        int permille = atomic_load(&px->drop_permille);
        if (permille > 0 && is_produce(f, flen) && proxy_rand(px) % 1000 < (uint64_t)permille) {
            atomic_fetch_add(&px->dropped, 1);
            rc = -1;
            break;
        }
        size_t nlen = 0;
        uint8_t *n = rewrite(px, f, flen, &nlen);
        int w = n ? write_all(pr->cfd, n, nlen) : write_all(pr->cfd, f, flen);
        free(n);
        if (w) {
            rc = -1;
            break;
        }
        atomic_fetch_add(&px->forwarded, 1);
        off += flen;
    }
    if (off > 0) {
        memmove(pr->in, pr->in + off, pr->in_len - off);
        pr->in_len -= off;
    }
    return rc;
}

/* Reads what the broker sent into pr->in. Returns -1 on EOF, error or an oversized frame. */
static int read_broker(struct pair *pr)
{
    if (pr->in_cap - pr->in_len < 65536) {
        size_t cap = pr->in_cap ? pr->in_cap * 2 : 1u << 20;
        if (cap > PROXY_BUF_MAX)
            return -1;
        uint8_t *n = realloc(pr->in, cap);
        if (!n)
            return -1;
        pr->in = n;
        pr->in_cap = cap;
    }
    ssize_t r = read(pr->bfd, pr->in + pr->in_len, pr->in_cap - pr->in_len);
    if (r <= 0)
        return -1;
    pr->in_len += (size_t)r;
    return 0;
}

static void *pair_main(void *arg)
{
    struct pair *pr = arg;
    struct tl_proxy *px = pr->px;
    uint8_t buf[65536];
    while (!atomic_load(&px->stop)) {
        struct pollfd pfd[2] = {{.fd = pr->cfd, .events = POLLIN},
                                {.fd = pr->bfd, .events = POLLIN}};
        if (poll(pfd, 2, 50) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents) {
            ssize_t r = read(pr->cfd, buf, sizeof(buf));
            if (r <= 0)
                break;
            /* While stalled, requests vanish: the broker never sees them. */
            if (!atomic_load(&px->stall) && write_all(pr->bfd, buf, (size_t)r))
                break;
        }
        if (pfd[1].revents && read_broker(pr))
            break;
        if (!atomic_load(&px->stall) && forward_frames(pr))
            break;
    }
    close(pr->cfd);
    close(pr->bfd);
    free(pr->in);
    free(pr);
    atomic_fetch_sub(&px->live_pairs, 1);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct tl_proxy *px = arg;
    while (!atomic_load(&px->stop)) {
        struct pollfd pfd = {.fd = px->listen_fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int cfd = accept4(px->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0)
            continue;
        int one = 1;
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        int bfd = connect_broker(px);
        int n = atomic_load(&px->live_pairs);
        struct pair *pr = bfd >= 0 && n < TL_PROXY_MAX_PAIRS ? calloc(1, sizeof(*pr)) : NULL;
        if (!pr) {
            fprintf(stderr, "  proxy: cannot serve a connection (%d pairs so far)\n", n);
            close(cfd);
            if (bfd >= 0)
                close(bfd);
            continue;
        }
        *pr = (struct pair){.px = px, .cfd = cfd, .bfd = bfd};
        pthread_t t;
        atomic_fetch_add(&px->live_pairs, 1);
        if (pthread_create(&t, NULL, pair_main, pr) != 0) {
            atomic_fetch_sub(&px->live_pairs, 1);
            close(cfd);
            close(bfd);
            free(pr);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

int tl_proxy_start(struct tl_proxy *px, const char *broker_host, uint16_t broker_port,
                   uint64_t seed)
{
    memset(px, 0, sizeof(*px));
    snprintf(px->broker_host, sizeof(px->broker_host), "%s", broker_host);
    px->broker_port = broker_port;
    atomic_store(&px->rnd, seed | 1);
    px->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (px->listen_fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t sl = sizeof(sa);
    if (bind(px->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(px->listen_fd, 64) != 0 ||
        getsockname(px->listen_fd, (struct sockaddr *)&sa, &sl) != 0) {
        int e = -errno;
        close(px->listen_fd);
        return e;
    }
    px->port = ntohs(sa.sin_port);
    int rc = pthread_create(&px->accept_thread, NULL, accept_main, px);
    if (rc) {
        close(px->listen_fd);
        return -rc;
    }
    return 0;
}

void tl_proxy_stop(struct tl_proxy *px)
{
    atomic_store(&px->stop, true);
    pthread_join(px->accept_thread, NULL);
    /* Pair threads notice the flag within one 50 ms poll; wait for them, bounded. */
    for (int i = 0; i < 200 && atomic_load(&px->live_pairs) > 0; i++)
        poll(NULL, 0, 10);
    close(px->listen_fd);
}
