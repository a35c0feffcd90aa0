/*
 * test_broker_chaos: many short-lived connections that pipeline a random mix of requests
 * (produce, corrupt produce, metadata, long-poll fetches, list offsets) and then vanish at a
 * random point: cut mid-frame, reset (SO_LINGER 0), half-closed, or closed with responses
 * unread. Afterwards the broker must be serving, hold no connection and no in-flight memory,
 * and stop cleanly (exit 0, which under the sanitizers also means no leak or error). Seeded;
 * the seed is printed (RINGLOG_TEST_SEED=N reproduces a run).
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "proto/frame.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_fixture.h"

#define CHAOS_CONNECTIONS 300
#define CHAOS_MAX_FRAMES 40

static uint8_t *frames[6];
static size_t frame_len[6];

/* Encodes a request with its data into a malloc'ed frame. */
static void make_frame(int i, Ringlog__Request *req, const uint8_t *data, uint32_t dlen)
{
    size_t n = frame_request_envelope_bytes(req);
    frames[i] = malloc(n + dlen);
    cr_assert_not_null(frames[i]);
    frame_encode_request(req, dlen, frames[i]);
    if (dlen)
        memcpy(frames[i] + n, data, dlen);
    frame_len[i] = n + dlen;
}

static void build_frames(void)
{
    uint8_t *b;
    int len = tl_make_batch(20, "chaos-", &b);
    cr_assert_gt(len, 0);
    Ringlog__ProducePartition pp = RINGLOG__PRODUCE_PARTITION__INIT;
    pp.partition = 1;
    pp.data_len = (uint32_t)len;
    Ringlog__ProducePartition *pps[1] = {&pp};
    Ringlog__ProduceTopic pt = RINGLOG__PRODUCE_TOPIC__INIT;
    pt.name = (char *)"chaos";
    pt.n_partitions = 1;
    pt.partitions = pps;
    Ringlog__ProduceTopic *pts[1] = {&pt};
    Ringlog__ProduceRequest pr = RINGLOG__PRODUCE_REQUEST__INIT;
    pr.acks = 1;
    pr.n_topics = 1;
    pr.topics = pts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.correlation_id = 1;
    req.body_case = RINGLOG__REQUEST__BODY_PRODUCE;
    req.produce = &pr;
    make_frame(0, &req, b, (uint32_t)len);
    pr.acks = 0;
    b[len - 3] ^= 1; /* corrupt: answered with BATCH_CHECKSUM */
    make_frame(1, &req, b, (uint32_t)len);
    free(b);
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    make_frame(2, &req, NULL, 0);
    /* A long poll on the empty partition 0: waits until its connection goes away. */
    Ringlog__FetchPartition fp = RINGLOG__FETCH_PARTITION__INIT;
    Ringlog__FetchPartition *fps[1] = {&fp};
    Ringlog__FetchTopic ft = RINGLOG__FETCH_TOPIC__INIT;
    ft.name = (char *)"chaos";
    ft.n_partitions = 1;
    ft.partitions = fps;
    Ringlog__FetchTopic *fts[1] = {&ft};
    Ringlog__FetchRequest fr = RINGLOG__FETCH_REQUEST__INIT;
    fr.max_wait_ms = 30000;
    fr.min_bytes = 1;
    fr.n_topics = 1;
    fr.topics = fts;
    req.body_case = RINGLOG__REQUEST__BODY_FETCH;
    req.fetch = &fr;
    make_frame(3, &req, NULL, 0);
    fp.partition = 1; /* a fetch that has data */
    make_frame(4, &req, NULL, 0);
    Ringlog__ListOffsetsPartition lp = RINGLOG__LIST_OFFSETS_PARTITION__INIT;
    lp.timestamp = -1;
    Ringlog__ListOffsetsPartition *lps[1] = {&lp};
    Ringlog__ListOffsetsTopic lt = RINGLOG__LIST_OFFSETS_TOPIC__INIT;
    lt.name = (char *)"chaos";
    lt.n_partitions = 1;
    lt.partitions = lps;
    Ringlog__ListOffsetsTopic *lts[1] = {&lt};
    Ringlog__ListOffsetsRequest lr = RINGLOG__LIST_OFFSETS_REQUEST__INIT;
    lr.n_topics = 1;
    lr.topics = lts;
    req.body_case = RINGLOG__REQUEST__BODY_LIST_OFFSETS;
    req.list_offsets = &lr;
    make_frame(5, &req, NULL, 0);
}

/* One connection: pipeline a random run of frames, cut at a random byte, leave a random way. */
static void chaos_connection(const struct tl_broker *b, unsigned *seed)
{
    struct tl_conn c;
    cr_assert_eq(tl_connect(&c, b->host, b->port, 5000), 0);
    static uint8_t buf[CHAOS_MAX_FRAMES * 4096];
    size_t len = 0;
    int k = 1 + rand_r(seed) % CHAOS_MAX_FRAMES;
    for (int i = 0; i < k; i++) {
        int f = rand_r(seed) % 6;
        if (len + frame_len[f] > sizeof(buf))
            break;
        memcpy(buf + len, frames[f], frame_len[f]);
        len += frame_len[f];
    }
    size_t cut = rand_r(seed) % 2 ? len : (size_t)rand_r(seed) % (len + 1);
    tl_send_raw(&c, buf, cut); /* may fail once the broker closed a bad stream: fine */
    switch (rand_r(seed) % 4) {
    case 0: { /* reset */
        struct linger lg = {1, 0};
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        break;
    }
    case 1: /* half-close, then read what comes for a moment */
        shutdown(c.fd, SHUT_WR);
        tl_wait_closed(&c, 50);
        break;
    case 2: { /* read a little, then go */
        Ringlog__Response *resp;
        tl_recv(&c, 20, &resp, NULL, NULL);
        break;
    }
    default: /* just go, responses unread */
        break;
    }
    tl_close(&c);
}

/* Hundreds of connections behaving badly leave no trace: the broker serves, holds no
 * connection and no in-flight memory afterwards, and stops cleanly. */
Test(chaos, abrupt_connections, .timeout = 120)
{
    const char *env = getenv("RINGLOG_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    fprintf(stderr, "chaos seed %u (RINGLOG_TEST_SEED=%u reproduces)\n", seed, seed);
    struct tl_broker b;
    static const char *const args[] = {"--set", "max.inflight.bytes=1048576", NULL};
    cr_assert_eq(tl_broker_start(&b, args, 20000), 0);
    struct tl_conn admin;
    cr_assert_eq(tl_connect(&admin, b.host, b.port, 5000), 0);
    cr_assert_eq(tl_create_topic(&admin, "chaos", 2, NULL, NULL, 0), 0);
    build_frames();
    for (int i = 0; i < CHAOS_CONNECTIONS; i++)
        chaos_connection(&b, &seed);
    /* Still serving, and every connection but ours is gone (poll with a deadline). */
    int64_t end = -1;
    cr_assert_eq(tl_list_offset(&admin, "chaos", 1, -1, &end), 0);
    cr_assert_eq(end % 20, 0, "a partial batch became visible: end %lld", (long long)end);
    long long conns = -1, mem = -1;
    uint64_t deadline = tl_now_ms() + 20000;
    while (tl_now_ms() < deadline) {
        conns = tl_metric(&b, "ringlog_connections");
        mem = tl_metric(&b, "ringlog_inflight_bytes");
        if (conns == 1 && mem == 0)
            break;
        tl_pace(20);
    }
    cr_assert_eq(conns, 1, "connections left over: %lld", conns);
    cr_assert_eq(mem, 0, "in-flight bytes left over: %lld", mem);
    tl_close(&admin);
    for (int i = 0; i < 6; i++)
        free(frames[i]);
    int st = tl_broker_finish(&b, 20000);
    cr_assert_eq(st, 0, "exit status %d", st);
}
