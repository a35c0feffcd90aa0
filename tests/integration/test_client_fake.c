/*
 * libringlog against a scripted fake broker on 127.0.0.1 (a thread in this process speaking the
 * native protocol), for the failure paths a healthy ringlogd never shows on demand: a fetched
 * batch with a damaged checksum, NOT_LEADER answers that must be retried after a metadata
 * refresh, a leader that moves to another broker (the batch goes there at once), a
 * non-retriable error, a broker that never answers (request and delivery timeouts),
 * a full producer buffer, and an idempotent producer's answers to a broker whose metadata lags
 * (retried with the same sequence) and to a sequence gap (an epoch bump of its own, without
 * InitProducerId). Prints "N passed, N failed".
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "client/ringlog.h"
#include "common/batch.h"
#include "common/err.h"

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
            return -1;                                                                          \
        }                                                                                       \
    } while (0)

#define MAX_CONNS 8

/* What the fake broker does; set by each test before it starts talking. */
struct fake {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    atomic_bool stop;
    /* script */
    atomic_int produce_errors_left; /* answer this many produces with produce_error */
    atomic_int produce_error;
    atomic_bool produce_silent;     /* never answer produces */
    atomic_int corrupt_fetches_left; /* damage the batch in this many fetch answers */
    atomic_bool two_nodes;      /* Metadata names two brokers (both this fake, by two names) */
    atomic_int leader;          /* ... and this one (1 or 2) as the partition's leader */
    atomic_bool move_on_error;  /* a scripted produce error moves the leader to node 2 */
    atomic_llong moved_ms;      /* when it did */
    /* counters */
    atomic_int metadata_requests, produce_requests, fetch_requests, init_requests;
    /* each produced batch's producer epoch and base sequence, in arrival order */
    atomic_int produced;
    int16_t produced_epoch[64];
    int32_t produced_seq[64];
    uint8_t *batch; /* the partition's one batch (3 records), served by fetch */
    int batch_len;
};

static struct fake g_fake;

static int read_full(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, (uint8_t *)buf + got, len - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static int send_response(int fd, Ringlog__Response *resp, const void *data, size_t data_len)
{
    size_t env = ringlog__response__get_packed_size(resp);
    uint8_t *buf = malloc(8 + env + data_len);
    uint32_t flen = (uint32_t)(4 + env + data_len), elen = (uint32_t)env;
    uint8_t hdr[8] = {flen >> 24, flen >> 16, flen >> 8, flen, elen >> 24, elen >> 16,
                      elen >> 8, elen};
    memcpy(buf, hdr, 8);
    ringlog__response__pack(resp, buf + 8);
    if (data_len)
        memcpy(buf + 8 + env, data, data_len);
    ssize_t w = send(fd, buf, 8 + env + data_len, MSG_NOSIGNAL);
    free(buf);
    return w == (ssize_t)(8 + env + data_len) ? 0 : -1;
}

static void answer_metadata(int fd, Ringlog__Response *resp)
{
    atomic_fetch_add(&g_fake.metadata_requests, 1);
    Ringlog__PartitionMetadata pm = RINGLOG__PARTITION_METADATA__INIT, *pmp = &pm;
    Ringlog__TopicMetadata tm = RINGLOG__TOPIC_METADATA__INIT, *tmp = &tm;
    tm.name = "t";
    tm.partitions = &pmp;
    tm.n_partitions = 1;
    Ringlog__MetadataResponse mr = RINGLOG__METADATA_RESPONSE__INIT;
    mr.topics = &tmp;
    mr.n_topics = 1;
    /* Two node ids for one fake: the client keys brokers by address, so "localhost" is
     * another broker to it than "127.0.0.1". */
    Ringlog__BrokerInfo b1 = RINGLOG__BROKER_INFO__INIT, b2 = RINGLOG__BROKER_INFO__INIT;
    Ringlog__BrokerInfo *bs[2] = {&b1, &b2};
    if (atomic_load(&g_fake.two_nodes)) {
        b1.node_id = 1;
        b1.host = "127.0.0.1";
        b1.port = g_fake.port;
        b2.node_id = 2;
        b2.host = "localhost";
        b2.port = g_fake.port;
        mr.brokers = bs;
        mr.n_brokers = 2;
        pm.leader = atomic_load(&g_fake.leader);
    }
    resp->body_case = RINGLOG__RESPONSE__BODY_METADATA;
    resp->metadata = &mr;
    send_response(fd, resp, NULL, 0);
}

/* InitProducerId: producer id 7, epoch 0 (the fake hands out one id). */
static void answer_init_producer_id(int fd, Ringlog__Response *resp)
{
    atomic_fetch_add(&g_fake.init_requests, 1);
    Ringlog__InitProducerIdResponse ir = RINGLOG__INIT_PRODUCER_ID_RESPONSE__INIT;
    ir.producer_id = 7;
    ir.producer_epoch = 0;
    resp->body_case = RINGLOG__RESPONSE__BODY_INIT_PRODUCER_ID;
    resp->init_producer_id = &ir;
    send_response(fd, resp, NULL, 0);
}

/* Notes the epoch and base sequence of the request's first batch. */
static void note_batch(const uint8_t *data, size_t len)
{
    struct batch_header h;
    if (batch_header_decode(data, len, &h) != 0)
        return;
    int i = atomic_fetch_add(&g_fake.produced, 1);
    if (i < 64) {
        g_fake.produced_epoch[i] = h.producer_epoch;
        g_fake.produced_seq[i] = h.base_sequence;
    }
}

static void answer_produce(int fd, Ringlog__Response *resp, const uint8_t *data, size_t len)
{
    int n = atomic_fetch_add(&g_fake.produce_requests, 1);
    note_batch(data, len);
    if (g_fake.produce_silent)
        return;
    Ringlog__ProducePartitionResult pr = RINGLOG__PRODUCE_PARTITION_RESULT__INIT, *prp = &pr;
    Ringlog__ProduceTopicResult tr = RINGLOG__PRODUCE_TOPIC_RESULT__INIT, *trp = &tr;
    tr.name = "t";
    tr.partitions = &prp;
    tr.n_partitions = 1;
    if (atomic_fetch_sub(&g_fake.produce_errors_left, 1) > 0) {
        pr.error_code = g_fake.produce_error;
        pr.error_message = "scripted failure from the fake broker";
        if (atomic_load(&g_fake.move_on_error)) {
            atomic_store(&g_fake.leader, 2);
            atomic_store(&g_fake.moved_ms, rlc_now_ms());
        }
    } else {
        pr.base_offset = 100 + n;
    }
    Ringlog__ProduceResponse body = RINGLOG__PRODUCE_RESPONSE__INIT;
    body.topics = &trp;
    body.n_topics = 1;
    resp->body_case = RINGLOG__RESPONSE__BODY_PRODUCE;
    resp->produce = &body;
    send_response(fd, resp, NULL, 0);
}

static void answer_fetch(int fd, Ringlog__Response *resp, const Ringlog__FetchRequest *fr)
{
    atomic_fetch_add(&g_fake.fetch_requests, 1);
    uint64_t off = fr->n_topics && fr->topics[0]->n_partitions
                       ? fr->topics[0]->partitions[0]->fetch_offset : 0;
    Ringlog__FetchPartitionResult pr = RINGLOG__FETCH_PARTITION_RESULT__INIT, *prp = &pr;
    Ringlog__FetchTopicResult tr = RINGLOG__FETCH_TOPIC_RESULT__INIT, *trp = &tr;
    tr.name = "t";
    tr.partitions = &prp;
    tr.n_partitions = 1;
    pr.high_watermark = pr.log_end_offset = 3;
    uint8_t *data = NULL;
    if (off < 3) {
        data = malloc((size_t)g_fake.batch_len);
        memcpy(data, g_fake.batch, (size_t)g_fake.batch_len);
        if (atomic_fetch_sub(&g_fake.corrupt_fetches_left, 1) > 0)
            data[g_fake.batch_len - 2] ^= 0x40; /* one bit in the last record's value */
        pr.data_len = (uint32_t)g_fake.batch_len;
    } else {
        poll(NULL, 0, 20); /* a short long-poll, so an idle consumer does not spin */
    }
    Ringlog__FetchResponse body = RINGLOG__FETCH_RESPONSE__INIT;
    body.topics = &trp;
    body.n_topics = 1;
    resp->body_case = RINGLOG__RESPONSE__BODY_FETCH;
    resp->fetch = &body;
    send_response(fd, resp, data, pr.data_len);
    free(data);
}

static void answer_list_offsets(int fd, Ringlog__Response *resp)
{
    Ringlog__ListOffsetsPartitionResult pr = RINGLOG__LIST_OFFSETS_PARTITION_RESULT__INIT;
    Ringlog__ListOffsetsPartitionResult *prp = &pr;
    Ringlog__ListOffsetsTopicResult tr = RINGLOG__LIST_OFFSETS_TOPIC_RESULT__INIT, *trp = &tr;
    tr.name = "t";
    tr.partitions = &prp;
    tr.n_partitions = 1;
    Ringlog__ListOffsetsResponse body = RINGLOG__LIST_OFFSETS_RESPONSE__INIT;
    body.topics = &trp;
    body.n_topics = 1;
    resp->body_case = RINGLOG__RESPONSE__BODY_LIST_OFFSETS;
    resp->list_offsets = &body;
    send_response(fd, resp, NULL, 0);
}

/* Reads one request frame from fd and answers it; returns -1 when the peer is gone. */
static int serve_one(int fd)
{
    uint8_t hdr[8];
    if (read_full(fd, hdr, 8))
        return -1;
    uint32_t flen = (uint32_t)hdr[0] << 24 | hdr[1] << 16 | hdr[2] << 8 | hdr[3];
    uint32_t elen = (uint32_t)hdr[4] << 24 | hdr[5] << 16 | hdr[6] << 8 | hdr[7];
    if (flen < 4 || elen > flen - 4 || flen > (64u << 20))
        return -1;
    uint8_t *buf = malloc(flen - 4);
    if (read_full(fd, buf, flen - 4)) {
        free(buf);
        return -1;
    }
    Ringlog__Request *rq = ringlog__request__unpack(NULL, elen, buf);
    if (!rq) {
        free(buf);
        return -1;
    }
    Ringlog__Response resp = RINGLOG__RESPONSE__INIT;
    resp.correlation_id = rq->correlation_id;
    switch (rq->body_case) {
    case RINGLOG__REQUEST__BODY_METADATA: answer_metadata(fd, &resp); break;
    case RINGLOG__REQUEST__BODY_PRODUCE:
        answer_produce(fd, &resp, buf + elen, flen - 4 - elen);
        break;
    case RINGLOG__REQUEST__BODY_INIT_PRODUCER_ID: answer_init_producer_id(fd, &resp); break;
    case RINGLOG__REQUEST__BODY_FETCH: answer_fetch(fd, &resp, rq->fetch); break;
    case RINGLOG__REQUEST__BODY_LIST_OFFSETS: answer_list_offsets(fd, &resp); break;
    default:
        resp.error_code = RL_E_UNKNOWN_API;
        send_response(fd, &resp, NULL, 0);
    }
    ringlog__request__free_unpacked(rq, NULL);
    free(buf);
    return 0;
}

static void *fake_main(void *arg)
{
    (void)arg;
    int conns[MAX_CONNS];
    int n = 0;
    while (!atomic_load(&g_fake.stop)) {
        struct pollfd p[MAX_CONNS + 1];
        p[0] = (struct pollfd){g_fake.listen_fd, POLLIN, 0};
        for (int i = 0; i < n; i++)
            p[i + 1] = (struct pollfd){conns[i], POLLIN, 0};
        if (poll(p, (nfds_t)n + 1, 50) <= 0)
            continue;
        if (p[0].revents && n < MAX_CONNS) {
            int fd = accept(g_fake.listen_fd, NULL, NULL);
            if (fd >= 0)
                conns[n++] = fd;
        }
        for (int i = n - 1; i >= 0; i--) {
            if (p[i + 1].revents && serve_one(conns[i]) < 0) {
                close(conns[i]);
                conns[i] = conns[--n];
            }
        }
    }
    for (int i = 0; i < n; i++)
        close(conns[i]);
    return NULL;
}

static int fake_start(void)
{
    memset(&g_fake, 0, sizeof(g_fake));
    g_fake.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (bind(g_fake.listen_fd, (struct sockaddr *)&a, sizeof(a)) || listen(g_fake.listen_fd, 8) ||
        getsockname(g_fake.listen_fd, (struct sockaddr *)&a, &al))
        return -errno;
    g_fake.port = ntohs(a.sin_port);
    struct batch_builder *b = batch_builder_create(4096, BATCH_CODEC_NONE, 0);
    batch_builder_reset(b, -1, -1, -1);
    const char *vals[] = {"zero", "one", "two"};
    for (int i = 0; i < 3; i++) {
        struct batch_record_in r = {.value = vals[i], .value_len = strlen(vals[i]),
                                    .timestamp = 1000 + i};
        batch_builder_add(b, &r);
    }
    const uint8_t *out;
    g_fake.batch_len = batch_builder_finish(b, &out);
    g_fake.batch = malloc((size_t)g_fake.batch_len);
    memcpy(g_fake.batch, out, (size_t)g_fake.batch_len);
    batch_builder_destroy(b);
    return pthread_create(&g_fake.thread, NULL, fake_main, NULL) ? -1 : 0;
}

static void fake_stop(void)
{
    atomic_store(&g_fake.stop, true);
    pthread_join(g_fake.thread, NULL);
    close(g_fake.listen_fd);
    free(g_fake.batch);
}

static struct rl_conf *conf_with(const char *const *kv)
{
    struct rl_conf *c = rl_conf_new();
    char addr[64], err[256];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", g_fake.port);
    rl_conf_set(c, "bootstrap.servers", addr, err, sizeof(err));
    rl_conf_set(c, "retry.backoff.ms", "10", err, sizeof(err));
    rl_conf_set(c, "retry.backoff.max.ms", "50", err, sizeof(err));
    /* The fake answers Metadata and Produce only; these tests are about plain retries. */
    rl_conf_set(c, "enable.idempotence", "false", err, sizeof(err));
    rl_conf_set(c, "max.in.flight.per.partition", "1", err, sizeof(err));
    for (int i = 0; kv && kv[i]; i += 2)
        if (rl_conf_set(c, kv[i], kv[i + 1], err, sizeof(err)))
            fprintf(stderr, "  conf: %s\n", err);
    return c;
}

struct reports {
    atomic_int n, errors;
    int64_t offset[64];
    int error[64];
    char message[256];
};

static void report_cb(void *ctx, const struct rl_delivery *d)
{
    struct reports *r = ctx;
    int i = atomic_fetch_add(&r->n, 1);
    if (i < 64) {
        r->offset[i] = d->offset;
        r->error[i] = d->error;
    }
    if (d->error && atomic_fetch_add(&r->errors, 1) == 0)
        snprintf(r->message, sizeof(r->message), "%s", d->error_message);
}

/* A producer of conf c (reports to rep) that sent one record to partition 0 and flushed it. */
static int sent_one(struct rl_conf *c, struct reports *rep, struct rl_producer **out)
{
    rl_conf_set_delivery_cb(c, report_cb, rep);
    char err[256];
    struct rl_producer *p = *out = rl_producer_new(c, err, sizeof(err));
    CHECK(p, "%s", err);
    CHECK(rl_producer_send(p, "t", 0, NULL, 0, "v", 1, 0, NULL) == 0, "%s",
          rl_producer_last_error(p));
    CHECK(rl_producer_flush(p, 5000) == 0, "%s", rl_producer_last_error(p));
    return 0;
}

/* A damaged batch is refused with a checksum error naming the partition and offset; the next
 * poll fetches it again from the same position and, undamaged now, returns its records. */
static int t_checksum_damage_detected(void)
{
    atomic_store(&g_fake.corrupt_fetches_left, 1);
    struct rl_conf *c = conf_with(NULL);
    char err[256];
    struct rl_consumer *k = rl_consumer_new(c, err, sizeof(err));
    CHECK(rl_consumer_assign(k, "t", 0, RL_OFFSET_EARLIEST) == 0, "%s",
          rl_consumer_last_error(k));
    struct rl_record r;
    int rc = rl_consumer_poll(k, 2000, &r);
    CHECK(rc == RL_E_BATCH_CHECKSUM, "poll gave %d (%s)", rc, rl_consumer_last_error(k));
    CHECK(strstr(rl_consumer_last_error(k), "partition 0") &&
          strstr(rl_consumer_last_error(k), "damaged"), "%s", rl_consumer_last_error(k));
    for (int i = 0; i < 3; i++) {
        rc = rl_consumer_poll(k, 2000, &r);
        CHECK(rc == 1 && r.offset == i, "record %d: rc %d offset %lld", i, rc,
              (long long)r.offset);
    }
    CHECK(r.value_len == 3 && memcmp(r.value, "two", 3) == 0 && r.timestamp_ms == 1002,
          "last record's content");
    rl_consumer_destroy(k);
    rl_conf_destroy(c);
    return 0;
}

/* NOT_LEADER is retried after a metadata refresh; the delivery then reports the offset the
 * broker gave to the retried batch. */
static int t_not_leader_retried(void)
{
    g_fake.produce_error = RL_E_NOT_LEADER;
    atomic_store(&g_fake.produce_errors_left, 2);
    atomic_store(&g_fake.produce_requests, 0);
    atomic_store(&g_fake.metadata_requests, 0);
    struct reports rep = {0};
    struct rl_conf *c = conf_with(NULL);
    rl_conf_set_delivery_cb(c, report_cb, &rep);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    CHECK(rl_producer_send(p, "t", RL_PARTITION_ANY, "k", 1, "v", 1, 0, NULL) == 0, "%s",
          rl_producer_last_error(p));
    CHECK(rl_producer_flush(p, 5000) == 0, "%s", rl_producer_last_error(p));
    CHECK(atomic_load(&rep.n) == 1 && rep.error[0] == 0 && rep.offset[0] == 102,
          "n %d error %d offset %lld", atomic_load(&rep.n), rep.error[0],
          (long long)rep.offset[0]);
    CHECK(atomic_load(&g_fake.produce_requests) == 3, "produce requests %d",
          atomic_load(&g_fake.produce_requests));
    CHECK(atomic_load(&g_fake.metadata_requests) >= 2, "no metadata refresh (%d requests)",
          atomic_load(&g_fake.metadata_requests));
    rl_producer_destroy(p, 1000);
    rl_conf_destroy(c);
    return 0;
}

/* A partition whose leader moved (NOT_LEADER, then Metadata naming another broker) sends its
 * batch to the new leader as soon as the refresh names it, not when its retry back-off (here
 * random up to 2 s) ends. Four rounds, so that a back-off that happens to be short cannot
 * hide a producer that waits it out (each round has a 70% chance to expose one). */
static int t_new_leader_gets_the_batch_at_once(void)
{
    const char *kv[] = {"retry.backoff.ms", "2000", "retry.backoff.max.ms", "2000", NULL};
    for (int round = 0; round < 4; round++) {
        g_fake.produce_error = RL_E_NOT_LEADER;
        atomic_store(&g_fake.produce_errors_left, 1);
        atomic_store(&g_fake.leader, 1);
        atomic_store(&g_fake.two_nodes, true);
        atomic_store(&g_fake.move_on_error, true);
        atomic_store(&g_fake.moved_ms, 0);
        struct reports rep = {0};
        struct rl_conf *c = conf_with(kv);
        struct rl_producer *p;
        if (sent_one(c, &rep, &p) != 0)
            return -1;
        int64_t took = rlc_now_ms() - atomic_load(&g_fake.moved_ms);
        CHECK(atomic_load(&rep.n) == 1 && rep.error[0] == 0, "n %d error %d",
              atomic_load(&rep.n), rep.error[0]);
        CHECK(atomic_load(&g_fake.moved_ms) > 0, "the leader never moved");
        CHECK(took < 600, "round %d: acknowledged %lld ms after the leader moved: the batch "
              "waited out its back-off", round, (long long)took);
        rl_producer_destroy(p, 1000);
        rl_conf_destroy(c);
    }
    atomic_store(&g_fake.two_nodes, false);
    atomic_store(&g_fake.move_on_error, false);
    return 0;
}

/* A non-retriable error fails the records at once with the broker's message. */
static int t_fatal_error_not_retried(void)
{
    g_fake.produce_error = RL_E_MESSAGE_TOO_LARGE;
    atomic_store(&g_fake.produce_errors_left, 1);
    atomic_store(&g_fake.produce_requests, 0);
    struct reports rep = {0};
    /* One batch, sent by the flush: with a short linger a loaded machine could pause between
     * two sends long enough to split the records into two requests, and only the first is
     * scripted to fail. */
    const char *kv[] = {"linger.ms", "60000", NULL};
    struct rl_conf *c = conf_with(kv);
    rl_conf_set_delivery_cb(c, report_cb, &rep);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    for (int i = 0; i < 3; i++)
        CHECK(rl_producer_send(p, "t", 0, NULL, 0, "v", 1, 0, NULL) == 0, "send");
    CHECK(rl_producer_flush(p, 5000) == 0, "%s", rl_producer_last_error(p));
    CHECK(atomic_load(&rep.n) == 3 && atomic_load(&rep.errors) == 3 &&
          rep.error[0] == RL_E_MESSAGE_TOO_LARGE, "n %d errors %d", atomic_load(&rep.n),
          atomic_load(&rep.errors));
    CHECK(strstr(rep.message, "scripted failure"), "message: %s", rep.message);
    CHECK(atomic_load(&g_fake.produce_requests) == 1, "retried a fatal error");
    uint64_t acked, failed;
    rl_producer_counts(p, &acked, &failed);
    CHECK(acked == 0 && failed == 3, "counts %llu/%llu", (unsigned long long)acked,
          (unsigned long long)failed);
    rl_producer_destroy(p, 1000);
    rl_conf_destroy(c);
    return 0;
}

/* A broker that never answers: each request times out (request.timeout.ms), is retried, and
 * the record fails with a message naming delivery.timeout.ms once that passes. */
static int t_silent_broker_times_out(void)
{
    g_fake.produce_silent = true;
    struct reports rep = {0};
    const char *kv[] = {"request.timeout.ms", "150", "delivery.timeout.ms", "700", NULL};
    struct rl_conf *c = conf_with(kv);
    rl_conf_set_delivery_cb(c, report_cb, &rep);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    int64_t t0 = rlc_now_ms();
    CHECK(rl_producer_send(p, "t", 0, NULL, 0, "v", 1, 0, NULL) == 0, "send");
    CHECK(rl_producer_flush(p, 5000) == 0, "%s", rl_producer_last_error(p));
    int64_t took = rlc_now_ms() - t0;
    CHECK(atomic_load(&rep.n) == 1 && rep.error[0] == RL_E_TIMED_OUT, "error %d",
          rep.error[0]);
    CHECK(strstr(rep.message, "delivery.timeout.ms=700"), "message: %s", rep.message);
    CHECK(took >= 600 && took < 3000, "took %lld ms", (long long)took);
    rl_producer_destroy(p, 1000);
    rl_conf_destroy(c);
    g_fake.produce_silent = false;
    return 0;
}

/* With nothing acknowledged, send waits for buffer space up to max.block.ms, then fails with
 * RL_E_FULL and a message naming buffer.memory; destroy settles what is left. */
static int t_buffer_full(void)
{
    g_fake.produce_silent = true;
    struct reports rep = {0};
    const char *kv[] = {"buffer.memory", "65536", "max.block.ms", "300", "batch.size", "16384",
                        "linger.ms", "0", NULL};
    struct rl_conf *c = conf_with(kv);
    rl_conf_set_delivery_cb(c, report_cb, &rep);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    char val[1024] = {0};
    int rc = 0, sent = 0;
    int64_t t_full = 0;
    for (int i = 0; i < 1000 && rc == 0; i++) {
        t_full = rlc_now_ms();
        rc = rl_producer_send(p, "t", 0, NULL, 0, val, sizeof(val), 0, NULL);
        sent += rc == 0;
    }
    int64_t blocked = rlc_now_ms() - t_full;
    CHECK(rc == RL_E_FULL, "rc %d after %d sends", rc, sent);
    CHECK(sent >= 32 && sent <= 64, "%d records fit in 64 KiB", sent);
    CHECK(blocked >= 290 && blocked < 2000, "blocked %lld ms", (long long)blocked);
    CHECK(strstr(rl_producer_last_error(p), "buffer.memory=65536"), "%s",
          rl_producer_last_error(p));
    rl_producer_destroy(p, 0);
    CHECK(atomic_load(&rep.n) == sent && atomic_load(&rep.errors) == sent,
          "settled %d of %d", atomic_load(&rep.n), sent);
    rl_conf_destroy(c);
    g_fake.produce_silent = false;
    return 0;
}

/* An idempotent producer sends one record; the fake answers its first produces with `error`
 * (`errors` times), then takes the batch. Returns 0 once delivered (report checked). */
static int idem_send_one(int error, int errors)
{
    g_fake.produce_error = error;
    atomic_store(&g_fake.produce_errors_left, errors);
    atomic_store(&g_fake.produce_requests, 0);
    atomic_store(&g_fake.init_requests, 0);
    atomic_store(&g_fake.produced, 0);
    struct reports rep = {0};
    const char *kv[] = {"enable.idempotence", "true", "max.in.flight.per.partition", "5", NULL};
    struct rl_conf *c = conf_with(kv);
    struct rl_producer *p;
    if (sent_one(c, &rep, &p) != 0)
        return -1;
    CHECK(atomic_load(&rep.n) == 1 && rep.error[0] == 0, "n %d error %d: %s",
          atomic_load(&rep.n), rep.error[0], rep.message);
    CHECK(atomic_load(&g_fake.produced) == errors + 1, "%d batches sent for %d errors",
          atomic_load(&g_fake.produced), errors);
    rl_producer_destroy(p, 1000);
    rl_conf_destroy(c);
    return 0;
}

/* In a cluster a broker whose metadata has not applied the id's block yet answers
 * PRODUCER_ID_NOT_YET_KNOWN: retried with the same epoch and sequence (it says nothing about
 * the batch). Taking it as a gap would bump the epoch and, where another broker had appended
 * the batch, write it twice. */
static int t_idem_id_not_yet_known_is_retried(void)
{
    if (idem_send_one(RL_E_PRODUCER_ID_NOT_YET_KNOWN, 2) != 0)
        return -1;
    for (int i = 0; i < 3; i++)
        CHECK(g_fake.produced_epoch[i] == 0 && g_fake.produced_seq[i] == 0,
              "send %d carried epoch %d sequence %d, not epoch 0 sequence 0", i,
              g_fake.produced_epoch[i], g_fake.produced_seq[i]);
    CHECK(atomic_load(&g_fake.init_requests) == 1, "%d InitProducerIds",
          atomic_load(&g_fake.init_requests));
    return 0;
}

/* A gap with nothing unresolved (UNKNOWN_PRODUCER_ID: the partition has no state for the
 * producer) restarts sequences under a bumped epoch, which the producer sets itself: the
 * batch goes again as epoch 1 sequence 0, and InitProducerId was asked once, for the id. */
static int t_idem_gap_bumps_the_epoch_locally(void)
{
    if (idem_send_one(RL_E_UNKNOWN_PRODUCER_ID, 1) != 0)
        return -1;
    CHECK(g_fake.produced_epoch[0] == 0 && g_fake.produced_seq[0] == 0,
          "first send: epoch %d sequence %d", g_fake.produced_epoch[0], g_fake.produced_seq[0]);
    CHECK(g_fake.produced_epoch[1] == 1 && g_fake.produced_seq[1] == 0,
          "resend: epoch %d sequence %d, not epoch 1 sequence 0", g_fake.produced_epoch[1],
          g_fake.produced_seq[1]);
    CHECK(atomic_load(&g_fake.init_requests) == 1, "%d InitProducerIds (the bump needs none)",
          atomic_load(&g_fake.init_requests));
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct {
        const char *name;
        int (*fn)(void);
    } tests[] = {
        {"checksum_damage_detected", t_checksum_damage_detected},
        {"not_leader_retried", t_not_leader_retried},
        {"new_leader_gets_the_batch_at_once", t_new_leader_gets_the_batch_at_once},
        {"fatal_error_not_retried", t_fatal_error_not_retried},
        {"silent_broker_times_out", t_silent_broker_times_out},
        {"buffer_full", t_buffer_full},
        {"idem_id_not_yet_known_is_retried", t_idem_id_not_yet_known_is_retried},
        {"idem_gap_bumps_the_epoch_locally", t_idem_gap_bumps_the_epoch_locally},
    };
    if (fake_start() != 0) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int64_t t0 = rlc_now_ms();
        int rc = tests[i].fn();
        printf("%s %s (%lld ms)\n", rc == 0 ? "ok  " : "FAIL", tests[i].name,
               (long long)(rlc_now_ms() - t0));
        fflush(stdout);
        rc == 0 ? passed++ : failed++;
    }
    fake_stop();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
