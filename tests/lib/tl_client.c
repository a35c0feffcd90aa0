/*
 * tl_client: see tl_client.h.
 */
#include "tests/lib/tl_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/frame.h"
#include "common/batch.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"

#define TL_MAX_FRAME (128u * 1024 * 1024)

static int tl_tcp_connect(const char *host, uint16_t port, uint32_t timeout_ms)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
        int e = -errno;
        close(fd);
        return e;
    }
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof(err);
    if (poll(&p, 1, (int)timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) ||
        err) {
        close(fd);
        return err ? -err : -ETIMEDOUT;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int tl_connect(struct tl_conn *c, const char *host, uint16_t port, uint32_t timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->fd = tl_tcp_connect(host, port, timeout_ms);
    if (c->fd < 0)
        return c->fd;
    arena_init(&c->arena, 64 * 1024, 256u * 1024 * 1024);
    return 0;
}

void tl_close(struct tl_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    arena_destroy(&c->arena);
    free(c->buf);
    c->buf = NULL;
}

/* Waits until fd is ready for `events` or the deadline passes. */
static int tl_wait(int fd, short events, uint64_t deadline_ms)
{
    uint64_t now = tl_now_ms();
    if (now >= deadline_ms)
        return -ETIMEDOUT;
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, (int)(deadline_ms - now));
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    return n == 0 ? -ETIMEDOUT : 0;
}

int tl_send_raw(struct tl_conn *c, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint64_t deadline = tl_now_ms() + 30000;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                return -errno;
            int rc = tl_wait(c->fd, POLLOUT, deadline);
            if (rc)
                return rc;
            continue;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int64_t tl_send(struct tl_conn *c, Ringlog__Request *req, const void *data, uint32_t data_len)
{
    if (req->correlation_id == 0)
        req->correlation_id = ++c->next_correlation;
    size_t n = frame_request_envelope_bytes(req);
    uint8_t *buf = malloc(n);
    if (!buf)
        return -ENOMEM;
    frame_encode_request(req, data_len, buf);
    int rc = tl_send_raw(c, buf, n);
    free(buf);
    if (!rc && data_len)
        rc = tl_send_raw(c, data, data_len);
    return rc ? rc : (int64_t)req->correlation_id;
}

static int tl_read_full(struct tl_conn *c, uint8_t *buf, size_t len, uint64_t deadline)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(c->fd, buf + got, len - got, 0);
        if (n == 0)
            return RL_E_CLOSED;
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                return -errno;
            int rc = tl_wait(c->fd, POLLIN, deadline);
            if (rc)
                return rc;
            continue;
        }
        got += (size_t)n;
    }
    return 0;
}

int tl_recv(struct tl_conn *c, uint32_t timeout_ms, Ringlog__Response **resp,
            const uint8_t **data, uint32_t *data_len)
{
    uint64_t deadline = tl_now_ms() + timeout_ms;
    uint8_t hdr[FRAME_HEADER_BYTES];
    int rc = tl_read_full(c, hdr, sizeof(hdr), deadline);
    if (rc)
        return rc;
    struct frame_info fi;
    rc = frame_parse_header(hdr, sizeof(hdr), TL_MAX_FRAME, &fi);
    if (rc <= 0)
        return RL_E_FRAME_MALFORMED;
    if (c->cap < fi.total_bytes) {
        uint8_t *nb = realloc(c->buf, fi.total_bytes);
        if (!nb)
            return -ENOMEM;
        c->buf = nb;
        c->cap = fi.total_bytes;
    }
    memcpy(c->buf, hdr, sizeof(hdr));
    rc = tl_read_full(c, c->buf + sizeof(hdr), fi.total_bytes - sizeof(hdr), deadline);
    if (rc)
        return rc;
    arena_reset(&c->arena);
    rc = frame_decode_response(c->buf, &fi, &c->arena, resp);
    if (rc)
        return rc;
    if (data)
        *data = c->buf + FRAME_HEADER_BYTES + fi.envelope_len;
    if (data_len)
        *data_len = fi.data_len;
    return 0;
}

int tl_call(struct tl_conn *c, Ringlog__Request *req, const void *data, uint32_t data_len,
            uint32_t timeout_ms, Ringlog__Response **resp, const uint8_t **out,
            uint32_t *out_len)
{
    int64_t corr = tl_send(c, req, data, data_len);
    if (corr < 0)
        return (int)corr;
    int rc = tl_recv(c, timeout_ms, resp, out, out_len);
    if (rc)
        return rc;
    if ((*resp)->correlation_id != (uint32_t)corr && (*resp)->correlation_id != 0)
        return RL_E_INTERNAL;
    return 0;
}

bool tl_wait_closed(struct tl_conn *c, uint32_t timeout_ms)
{
    uint64_t deadline = tl_now_ms() + timeout_ms;
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n == 0)
            return true;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return errno == ECONNRESET;
        if (n < 0 && tl_wait(c->fd, POLLIN, deadline))
            return false;
    }
}

/* --- helpers ---------------------------------------------------------------------------------- */

int tl_create_topic(struct tl_conn *c, const char *name, int32_t partitions,
                    const char *const *configs, char *msg, size_t msg_cap)
{
    Ringlog__ConfigEntry ents[16], *ptrs[16];
    char keys[16][64];
    size_t n = 0;
    for (; configs && configs[n] && n < 16; n++) {
        ringlog__config_entry__init(&ents[n]);
        snprintf(keys[n], sizeof(keys[n]), "%s", configs[n]);
        char *eq = strchr(keys[n], '=');
        if (eq)
            *eq = 0;
        ents[n].key = keys[n];
        ents[n].value = eq ? eq + 1 : (char *)"";
        ptrs[n] = &ents[n];
    }
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = (char *)name;
    spec.partitions = partitions;
    spec.n_configs = n;
    spec.configs = ptrs;
    return tl_create_topic_spec(c, &spec, msg, msg_cap);
}

int tl_create_topic_spec(struct tl_conn *c, Ringlog__TopicSpec *spec, char *msg, size_t msg_cap)
{
    Ringlog__TopicSpec *specs[1] = {spec};
    Ringlog__CreateTopicsRequest ct = RINGLOG__CREATE_TOPICS_REQUEST__INIT;
    ct.n_topics = 1;
    ct.topics = specs;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_CREATE_TOPICS;
    req.create_topics = &ct;
    Ringlog__Response *resp;
    int rc = tl_call(c, &req, NULL, 0, 10000, &resp, NULL, NULL);
    if (rc)
        return rc;
    if (resp->error_code)
        rc = resp->error_code;
    else if (!resp->create_topics || resp->create_topics->n_topics != 1)
        rc = RL_E_INTERNAL;
    else
        rc = resp->create_topics->topics[0]->error_code;
    if (msg && msg_cap) {
        const char *m = resp->error_code ? resp->error_message
                        : (resp->create_topics && resp->create_topics->n_topics)
                            ? resp->create_topics->topics[0]->error_message : "";
        snprintf(msg, msg_cap, "%s", m ? m : "");
    }
    return rc;
}

/* tl_call without data; a response carrying a request-level error returns that code. */
static int tl_call_answered(struct tl_conn *c, Ringlog__Request *req, Ringlog__Response **resp)
{
    int rc = tl_call(c, req, NULL, 0, 10000, resp, NULL, NULL);
    return rc ? rc : (*resp)->error_code;
}

int tl_delete_topic(struct tl_conn *c, const char *name)
{
    char *names[1] = {(char *)name};
    Ringlog__DeleteTopicsRequest dt = RINGLOG__DELETE_TOPICS_REQUEST__INIT;
    dt.n_names = 1;
    dt.names = names;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_DELETE_TOPICS;
    req.delete_topics = &dt;
    Ringlog__Response *resp;
    int rc = tl_call_answered(c, &req, &resp);
    if (rc)
        return rc;
    if (!resp->delete_topics || resp->delete_topics->n_topics != 1)
        return RL_E_INTERNAL;
    return resp->delete_topics->topics[0]->error_code;
}

/* Builds a batch; values are "<prefix><i>" padded with 'x' to pad_to bytes (0: no padding). */
static int tl_build(uint32_t count, const char *prefix, uint32_t pad_to, uint8_t **out)
{
    size_t max = (size_t)count * (pad_to + 64) + 4096;
    struct batch_builder *bb = batch_builder_create(max < RL_BATCH_MAX_BYTES ? max
                                                        : RL_BATCH_MAX_BYTES,
                                                    BATCH_CODEC_NONE, 0);
    char *v = malloc(pad_to + 128);
    if (!bb || !v) {
        free(v);
        batch_builder_destroy(bb);
        return -ENOMEM;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    batch_builder_reset(bb, -1, -1, -1);
    int rc = 0;
    for (uint32_t i = 0; i < count && rc == 0; i++) {
        int n = snprintf(v, 128, "%s%u", prefix, i);
        if ((uint32_t)n < pad_to) {
            memset(v + n, 'x', pad_to - (uint32_t)n);
            n = (int)pad_to;
        }
        struct batch_record_in rec = {.value = v, .value_len = (size_t)n, .timestamp = now_ms};
        rc = batch_builder_add(bb, &rec);
    }
    const uint8_t *b = NULL;
    int len = rc ? rc : batch_builder_finish(bb, &b);
    if (len > 0) {
        *out = malloc((size_t)len);
        if (*out)
            memcpy(*out, b, (size_t)len);
        else
            len = -ENOMEM;
    }
    batch_builder_destroy(bb);
    free(v);
    return len;
}

int tl_make_batch(uint32_t count, const char *prefix, uint8_t **out)
{
    return tl_build(count, prefix, 0, out);
}

int tl_make_batch_sized(uint32_t count, uint32_t value_bytes, uint8_t **out)
{
    return tl_build(count, "", value_bytes, out);
}

int tl_make_batch_random(uint32_t count, uint32_t value_bytes, uint8_t **out)
{
    size_t max = (size_t)count * (value_bytes + 64) + 4096;
    struct batch_builder *bb = batch_builder_create(max < RL_BATCH_MAX_BYTES ? max
                                                        : RL_BATCH_MAX_BYTES,
                                                    BATCH_CODEC_NONE, 0);
    uint8_t *v = malloc(value_bytes ? value_bytes : 1);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int rc = bb && v ? 0 : -ENOMEM;
    if (bb)
        batch_builder_reset(bb, -1, -1, -1);
    for (uint32_t i = 0; i < count && rc == 0; i++) {
        for (uint32_t k = 0; k < value_bytes; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            v[k] = (uint8_t)x;
        }
        struct batch_record_in r = {.value = v, .value_len = value_bytes, .timestamp = 1};
        rc = batch_builder_add(bb, &r);
    }
    const uint8_t *b = NULL;
    int len = rc ? rc : batch_builder_finish(bb, &b);
    if (len > 0) {
        *out = malloc((size_t)len);
        if (*out)
            memcpy(*out, b, (size_t)len);
        else
            len = -ENOMEM;
    }
    batch_builder_destroy(bb);
    free(v);
    return len;
}

int64_t tl_send_produce(struct tl_conn *c, const char *topic, uint32_t partition,
                        const void *data, uint32_t len, int32_t acks)
{
    Ringlog__ProducePartition pp = RINGLOG__PRODUCE_PARTITION__INIT;
    pp.partition = partition;
    pp.data_len = len;
    Ringlog__ProducePartition *pps[1] = {&pp};
    Ringlog__ProduceTopic pt = RINGLOG__PRODUCE_TOPIC__INIT;
    pt.name = (char *)topic;
    pt.n_partitions = 1;
    pt.partitions = pps;
    Ringlog__ProduceTopic *pts[1] = {&pt};
    Ringlog__ProduceRequest pr = RINGLOG__PRODUCE_REQUEST__INIT;
    pr.acks = acks;
    pr.timeout_ms = 10000;
    pr.n_topics = 1;
    pr.topics = pts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_PRODUCE;
    req.produce = &pr;
    return tl_send(c, &req, data, len);
}

int tl_init_producer_id(struct tl_conn *c, int64_t pid, int32_t epoch, int64_t *out_pid,
                        int16_t *out_epoch)
{
    Ringlog__InitProducerIdRequest ip = RINGLOG__INIT_PRODUCER_ID_REQUEST__INIT;
    ip.producer_id = pid;
    ip.producer_epoch = epoch;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_INIT_PRODUCER_ID;
    req.init_producer_id = &ip;
    Ringlog__Response *resp;
    int rc = tl_call_answered(c, &req, &resp);
    if (rc)
        return rc;
    if (resp->body_case != RINGLOG__RESPONSE__BODY_INIT_PRODUCER_ID)
        return RL_E_FRAME_MALFORMED;
    if (out_pid)
        *out_pid = resp->init_producer_id->producer_id;
    if (out_epoch)
        *out_epoch = (int16_t)resp->init_producer_id->producer_epoch;
    return 0;
}

int tl_produce(struct tl_conn *c, const char *topic, uint32_t partition, const void *data,
               uint32_t len, int32_t acks, int64_t *base_offset)
{
    int64_t corr = tl_send_produce(c, topic, partition, data, len, acks);
    if (corr < 0)
        return (int)corr;
    Ringlog__Response *resp;
    int rc = tl_recv(c, 10000, &resp, NULL, NULL);
    if (rc)
        return rc;
    if (resp->correlation_id != (uint32_t)corr && resp->correlation_id != 0)
        return RL_E_INTERNAL;
    if (resp->error_code)
        return resp->error_code;
    if (!resp->produce || resp->produce->n_topics != 1 ||
        resp->produce->topics[0]->n_partitions != 1)
        return RL_E_INTERNAL;
    Ringlog__ProducePartitionResult *res = resp->produce->topics[0]->partitions[0];
    if (base_offset)
        *base_offset = res->base_offset;
    return res->error_code;
}

/* Counts records at offsets >= from in whole batches. */
static uint32_t tl_count_records(const uint8_t *d, uint32_t len, uint64_t from)
{
    uint32_t pos = 0, n = 0;
    while (pos + RL_BATCH_HEADER_SIZE <= len) {
        struct batch_header h;
        if (batch_header_decode(d + pos, len - pos, &h) || h.batch_len > len - pos)
            break;
        for (uint32_t i = 0; i < h.record_count; i++)
            if (h.base_offset + i >= from)
                n++;
        pos += h.batch_len;
    }
    return n;
}

int64_t tl_send_fetch(struct tl_conn *c, const struct tl_fetch *f)
{
    Ringlog__FetchPartition fp = RINGLOG__FETCH_PARTITION__INIT;
    fp.partition = f->partition;
    fp.fetch_offset = f->offset;
    fp.max_bytes = f->max_bytes;
    Ringlog__FetchPartition *fps[1] = {&fp};
    Ringlog__FetchTopic ft = RINGLOG__FETCH_TOPIC__INIT;
    ft.name = (char *)f->topic;
    ft.n_partitions = 1;
    ft.partitions = fps;
    Ringlog__FetchTopic *fts[1] = {&ft};
    Ringlog__FetchRequest fr = RINGLOG__FETCH_REQUEST__INIT;
    fr.max_wait_ms = f->max_wait_ms;
    fr.min_bytes = f->min_bytes;
    fr.max_bytes = f->max_bytes;
    fr.n_topics = 1;
    fr.topics = fts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_FETCH;
    req.fetch = &fr;
    return tl_send(c, &req, NULL, 0);
}

int tl_fetch(struct tl_conn *c, const struct tl_fetch *f, struct tl_fetch_result *out)
{
    memset(out, 0, sizeof(*out));
    int64_t corr = tl_send_fetch(c, f);
    if (corr < 0)
        return out->error_code = (int)corr;
    Ringlog__Response *resp;
    const uint8_t *data;
    uint32_t dlen;
    int rc = tl_recv(c, f->max_wait_ms + 10000, &resp, &data, &dlen);
    if (!rc && resp->correlation_id != (uint32_t)corr && resp->correlation_id != 0)
        rc = RL_E_INTERNAL;
    if (rc)
        return out->error_code = rc;
    if (resp->error_code) {
        out->error_message = resp->error_message;
        return out->error_code = resp->error_code;
    }
    if (!resp->fetch || resp->fetch->n_topics != 1 || resp->fetch->topics[0]->n_partitions != 1)
        return out->error_code = RL_E_INTERNAL;
    Ringlog__FetchPartitionResult *res = resp->fetch->topics[0]->partitions[0];
    out->error_code = res->error_code;
    out->error_message = res->error_message;
    out->high_watermark = res->high_watermark;
    out->log_start_offset = res->log_start_offset;
    out->data = data;
    out->data_len = res->data_len;
    out->records = tl_count_records(data, res->data_len, f->offset);
    return out->error_code;
}

int tl_list_offset(struct tl_conn *c, const char *topic, uint32_t partition, int64_t timestamp,
                   int64_t *offset)
{
    Ringlog__ListOffsetsPartition lp = RINGLOG__LIST_OFFSETS_PARTITION__INIT;
    lp.partition = partition;
    lp.timestamp = timestamp;
    Ringlog__ListOffsetsPartition *lps[1] = {&lp};
    Ringlog__ListOffsetsTopic lt = RINGLOG__LIST_OFFSETS_TOPIC__INIT;
    lt.name = (char *)topic;
    lt.n_partitions = 1;
    lt.partitions = lps;
    Ringlog__ListOffsetsTopic *lts[1] = {&lt};
    Ringlog__ListOffsetsRequest lr = RINGLOG__LIST_OFFSETS_REQUEST__INIT;
    lr.n_topics = 1;
    lr.topics = lts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_LIST_OFFSETS;
    req.list_offsets = &lr;
    Ringlog__Response *resp;
    int rc = tl_call(c, &req, NULL, 0, 10000, &resp, NULL, NULL);
    if (rc)
        return rc;
    if (resp->error_code)
        return resp->error_code;
    if (!resp->list_offsets || resp->list_offsets->n_topics != 1 ||
        resp->list_offsets->topics[0]->n_partitions != 1)
        return RL_E_INTERNAL;
    Ringlog__ListOffsetsPartitionResult *res = resp->list_offsets->topics[0]->partitions[0];
    if (offset)
        *offset = res->offset;
    return res->error_code;
}

int tl_http_get(const char *host, uint16_t port, const char *path, char *body, size_t cap,
                uint32_t timeout_ms)
{
    struct tl_conn c;
    int rc = tl_connect(&c, host, port, timeout_ms);
    if (rc)
        return rc;
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);
    rc = tl_send_raw(&c, req, (size_t)n);
    size_t cap_all = 1u << 20, got = 0;
    char *all = malloc(cap_all + 1);
    uint64_t deadline = tl_now_ms() + timeout_ms;
    while (!rc && all && got < cap_all) {
        ssize_t r = recv(c.fd, all + got, cap_all - got, 0);
        if (r == 0)
            break;
        if (r < 0) {
            if (errno != EAGAIN && errno != EINTR)
                rc = -errno;
            else
                rc = tl_wait(c.fd, POLLIN, deadline);
            continue;
        }
        got += (size_t)r;
    }
    int status = -EPROTO;
    if (!rc && all) {
        all[got] = 0;
        sscanf(all, "HTTP/1.%*d %d", &status);
        const char *b = strstr(all, "\r\n\r\n");
        snprintf(body, cap, "%s", b ? b + 4 : "");
    }
    free(all);
    tl_close(&c);
    return rc ? rc : status;
}
