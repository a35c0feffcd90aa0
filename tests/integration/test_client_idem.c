/*
 * Idempotent producer against a real ringlogd behind an answer-losing proxy
 * (tests/integration/tl_proxy.h): retried batches that the broker already appended are stored
 * once, in send order, and reported with their original offsets; a producer whose requests
 * vanished past the delivery timeout bumps its epoch and goes on without a gap error; a newer
 * instance of its id fences it; batches in flight when the broker is SIGKILLed are stored once
 * after its restart.
 * Prints "N passed, N failed" and exits non-zero on failure. RINGLOG_TEST_SEED replays a run.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/ringlog.h"
#include "common/batch.h"
#include "common/err.h"
#include "tests/integration/tl_proxy.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
            goto out;                                                                           \
        }                                                                                       \
    } while (0)

#define PARTS 4

static struct tl_broker g_broker;
static uint64_t g_seed;

static struct rl_conf *conf_at(const char *host, uint16_t port, const char *const *kv)
{
    struct rl_conf *c = rl_conf_new();
    char addr[128], err[256];
    snprintf(addr, sizeof(addr), "%s:%u", host, port);
    rl_conf_set(c, "bootstrap.servers", addr, err, sizeof(err));
    for (int i = 0; kv && kv[i]; i += 2)
        if (rl_conf_set(c, kv[i], kv[i + 1], err, sizeof(err)))
            fprintf(stderr, "  conf: %s\n", err);
    return c;
}

static int create_topic(const char *name)
{
    struct rl_conf *c = conf_at(g_broker.host, g_broker.port, NULL);
    char err[256];
    struct rl_admin *a = rl_admin_new(c, err, sizeof(err));
    struct rl_topic_spec spec = {.name = name, .partitions = PARTS};
    int rc = rl_admin_create_topic(a, &spec);
    if (rc)
        fprintf(stderr, "  create %s: %s\n", name, rl_admin_last_error(a));
    rl_admin_destroy(a);
    rl_conf_destroy(c);
    return rc;
}

/* Writes idempotence fields into a built batch and fixes its checksum. */
static void batch_stamp_idem(uint8_t *b, uint32_t len, int64_t pid, int16_t epoch, int32_t seq)
{
    memcpy(b + BATCH_OFF_PRODUCER_ID, &pid, 8); /* little-endian host, as the format */
    memcpy(b + BATCH_OFF_PRODUCER_EPOCH, &epoch, 2);
    memcpy(b + BATCH_OFF_BASE_SEQUENCE, &seq, 4);
    uint64_t sum = batch_compute_checksum(b, len);
    memcpy(b + BATCH_OFF_CHECKSUM, &sum, 8);
}

/* Delivery reports, indexed by the record's number (its value). */
struct reports {
    long n;
    int64_t *offset;  /* -1 until acknowledged */
    int32_t *partition;
    atomic_long acked, failed;
    int first_error;
};

static void report_cb(void *ctx, const struct rl_delivery *d)
{
    struct reports *r = ctx;
    long i = (long)(intptr_t)d->opaque;
    if (d->error) {
        if (atomic_fetch_add(&r->failed, 1) == 0) {
            r->first_error = d->error;
            fprintf(stderr, "  (first failed delivery: %s)\n", d->error_message);
        }
        return;
    }
    r->offset[i] = d->offset;
    r->partition[i] = d->partition;
    atomic_fetch_add(&r->acked, 1);
}

static int reports_init(struct reports *r, long n)
{
    memset(r, 0, sizeof(*r));
    r->n = n;
    r->offset = malloc(sizeof(int64_t) * (size_t)n);
    r->partition = malloc(sizeof(int32_t) * (size_t)n);
    if (!r->offset || !r->partition)
        return -1;
    for (long i = 0; i < n; i++)
        r->offset[i] = -1;
    return 0;
}

static void reports_free(struct reports *r)
{
    free(r->offset);
    free(r->partition);
}

/* Sends records [from, to) keyed over 64 keys, value = the record number. */
static int send_range(struct rl_producer *p, const char *topic, long from, long to)
{
    for (long i = from; i < to; i++) {
        char key[16], val[24];
        int kl = snprintf(key, sizeof(key), "k%ld", i % 64);
        int vl = snprintf(val, sizeof(val), "%ld", i);
        int rc = rl_producer_send(p, topic, RL_PARTITION_ANY, key, (size_t)kl, val, (size_t)vl,
                                  0, (void *)(intptr_t)i);
        if (rc) {
            fprintf(stderr, "  send %ld: %s\n", i, rl_producer_last_error(p));
            return rc;
        }
    }
    return 0;
}

/* Reads the whole topic straight from the broker and checks it against the reports: every
 * record number appears at most once; acknowledged ones appear exactly once, at the offset
 * their report gave; within a partition numbers only grow (send order). `present` (n entries)
 * gets 1 per record number found. Returns 0 or -1. */
static int verify_log(const char *topic, struct reports *r, uint8_t *present, long expect)
{
    const char *kv[] = {"fetch.max.wait.ms", "50", NULL};
    struct rl_conf *c = conf_at(g_broker.host, g_broker.port, kv);
    char err[256];
    struct rl_consumer *k = rl_consumer_new(c, err, sizeof(err));
    int rc = -1;
    long seen = 0, last[PARTS];
    for (int i = 0; i < PARTS; i++)
        last[i] = -1;
    memset(present, 0, (size_t)r->n);
    CHECK(rl_consumer_assign_topic(k, topic, RL_OFFSET_EARLIEST) == PARTS, "%s",
          rl_consumer_last_error(k));
    uint64_t idle_since = tl_now_ms();
    while (tl_now_ms() - idle_since < 1500) {
        struct rl_record rec;
        int got = rl_consumer_poll(k, 100, &rec);
        CHECK(got >= 0, "poll: %s", rl_consumer_last_error(k));
        if (got == 0)
            continue;
        idle_since = tl_now_ms();
        char buf[24];
        int vl = rec.value_len < 23 ? rec.value_len : 23;
        memcpy(buf, rec.value, (size_t)vl);
        buf[vl] = 0;
        long i = strtol(buf, NULL, 10);
        CHECK(i >= 0 && i < r->n, "record at %s/%d@%" PRId64 " has a bad value \"%s\"",
              rec.topic, rec.partition, rec.offset, buf);
        CHECK(!present[i], "record %ld is in the log twice (again at partition %d offset %"
              PRId64 ")", i, rec.partition, rec.offset);
        CHECK(i > last[rec.partition], "partition %d: record %ld after %ld (out of send order)",
              rec.partition, i, last[rec.partition]);
        CHECK(r->offset[i] < 0 || (r->offset[i] == rec.offset && r->partition[i] == rec.partition),
              "record %ld was reported at %d@%" PRId64 " but is at %d@%" PRId64, i,
              r->partition[i], r->offset[i], rec.partition, rec.offset);
        present[i] = 1;
        last[rec.partition] = i;
        seen++;
    }
    for (long i = 0; i < r->n; i++)
        CHECK(r->offset[i] < 0 || present[i], "acknowledged record %ld is missing", i);
    CHECK(expect < 0 || seen == expect, "the log holds %ld records, expected %ld", seen, expect);
    rc = 0;
out:
    rl_consumer_destroy(k);
    rl_conf_destroy(c);
    return rc;
}

/* 100,000 records through a proxy that loses 5% of Produce answers (closing the connection):
 * every record is acknowledged, the log holds each exactly once in send order per partition,
 * at the offset its report gave. */
static int test_dup_retries(void)
{
    const long n = 100000;
    struct tl_proxy px;
    struct reports r;
    uint8_t *present = malloc((size_t)n);
    int rc = -1;
    struct rl_producer *p = NULL;
    struct rl_conf *c = NULL;
    bool proxy_up = false;
    CHECK(present && reports_init(&r, n) == 0, "out of memory");
    CHECK(create_topic("idem") == 0, "create");
    CHECK(tl_proxy_start(&px, g_broker.host, g_broker.port, g_seed) == 0, "proxy");
    proxy_up = true;
    atomic_store(&px.drop_permille, 50);
    const char *kv[] = {"batch.size", "1024", "linger.ms", "2", "retry.backoff.ms", "10",
                        "retry.backoff.max.ms", "100", "request.timeout.ms", "5000",
                        "delivery.timeout.ms", "60000", NULL};
    c = conf_at("127.0.0.1", px.port, kv);
    rl_conf_set_delivery_cb(c, report_cb, &r);
    char err[256];
    p = rl_producer_new(c, err, sizeof(err));
    CHECK(p, "%s", err);
    CHECK(send_range(p, "idem", 0, n) == 0, "send");
    CHECK(rl_producer_flush(p, 90000) == 0, "flush: %s", rl_producer_last_error(p));
    printf("  %ld Produce answers dropped, %ld answers forwarded\n", atomic_load(&px.dropped),
           atomic_load(&px.forwarded));
    CHECK(atomic_load(&r.failed) == 0, "%ld records failed (%s)", atomic_load(&r.failed),
          rl_strerror(r.first_error));
    CHECK(atomic_load(&r.acked) == n, "%ld of %ld acknowledged", atomic_load(&r.acked), n);
    CHECK(atomic_load(&px.dropped) >= 5, "too few answers were dropped (%ld) to test retries",
          atomic_load(&px.dropped));
    rc = verify_log("idem", &r, present, n);
out:
    rl_producer_destroy(p, 5000);
    rl_conf_destroy(c);
    if (proxy_up)
        tl_proxy_stop(&px);
    reports_free(&r);
    free(present);
    return rc;
}

/* Requests vanish (the proxy swallows them and holds answers) until batches run past
 * delivery.timeout.ms: they fail with TIMED_OUT, their sequences never reached the broker, so
 * without an epoch bump every later batch would be a gap. After the proxy recovers, new records
 * are all acknowledged and the log holds the records before and after the outage once each. */
static int test_epoch_bump(void)
{
    const long n = 3000;
    struct tl_proxy px;
    struct reports r;
    uint8_t *present = malloc((size_t)n);
    int rc = -1;
    struct rl_producer *p = NULL;
    struct rl_conf *c = NULL;
    bool proxy_up = false;
    CHECK(present && reports_init(&r, n) == 0, "out of memory");
    CHECK(create_topic("bump") == 0, "create");
    CHECK(tl_proxy_start(&px, g_broker.host, g_broker.port, g_seed) == 0, "proxy");
    proxy_up = true;
    const char *kv[] = {"batch.size", "4096", "linger.ms", "2", "retry.backoff.ms", "20",
                        "retry.backoff.max.ms", "100", "request.timeout.ms", "700",
                        "delivery.timeout.ms", "1500", NULL};
    c = conf_at("127.0.0.1", px.port, kv);
    rl_conf_set_delivery_cb(c, report_cb, &r);
    char err[256];
    p = rl_producer_new(c, err, sizeof(err));
    CHECK(p, "%s", err);
    CHECK(send_range(p, "bump", 0, 1000) == 0 && rl_producer_flush(p, 10000) == 0,
          "before: %s", rl_producer_last_error(p));
    CHECK(atomic_load(&r.acked) == 1000, "before the outage: %ld acknowledged",
          atomic_load(&r.acked));
    atomic_store(&px.stall, true);
    CHECK(send_range(p, "bump", 1000, 2000) == 0, "send during the outage");
    CHECK(rl_producer_flush(p, 10000) == 0, "flush: %s", rl_producer_last_error(p));
    CHECK(atomic_load(&r.failed) == 1000 && r.first_error == RL_E_TIMED_OUT,
          "during the outage: %ld failed (first: %s)", atomic_load(&r.failed),
          rl_error_name(r.first_error));
    atomic_store(&px.stall, false);
    CHECK(send_range(p, "bump", 2000, 3000) == 0, "send after");
    CHECK(rl_producer_flush(p, 15000) == 0, "flush after: %s", rl_producer_last_error(p));
    CHECK(atomic_load(&r.acked) == 2000, "after the outage: %ld of 2000 acknowledged (%s)",
          atomic_load(&r.acked), rl_producer_last_error(p));
    rc = verify_log("bump", &r, present, -1);
    for (long i = 1000; rc == 0 && i < 2000; i++)
        CHECK(!present[i], "record %ld, whose request was swallowed, is in the log", i);
out:
    rl_producer_destroy(p, 5000);
    rl_conf_destroy(c);
    if (proxy_up)
        tl_proxy_stop(&px);
    reports_free(&r);
    free(present);
    return rc;
}

/* The broker is SIGKILLed while batches are in flight (some appended, not yet acknowledged)
 * and restarted on the same port; the producer retries them against the rebuilt producer state:
 * every record is acknowledged and stored exactly once, in order, at its reported offset. */
static int test_broker_restart(void)
{
    const long n = 50000;
    struct reports r;
    uint8_t *present = malloc((size_t)n);
    int rc = -1;
    struct rl_producer *p = NULL;
    struct rl_conf *c = NULL;
    CHECK(present && reports_init(&r, n) == 0, "out of memory");
    CHECK(create_topic("restart") == 0, "create");
    const char *kv[] = {"batch.size", "4096", "linger.ms", "1", "retry.backoff.ms", "20",
                        "retry.backoff.max.ms", "200", "request.timeout.ms", "3000",
                        "delivery.timeout.ms", "60000", NULL};
    c = conf_at(g_broker.host, g_broker.port, kv);
    rl_conf_set_delivery_cb(c, report_cb, &r);
    char err[256];
    p = rl_producer_new(c, err, sizeof(err));
    CHECK(p, "%s", err);
    CHECK(send_range(p, "restart", 0, n / 2) == 0, "send");
    /* Wait for the first acknowledgements, so the kill lands amid appends. */
    for (uint64_t end = tl_now_ms() + 10000; atomic_load(&r.acked) < 1000 && tl_now_ms() < end;)
        poll(NULL, 0, 1);
    long acked_at_kill = atomic_load(&r.acked);
    tl_broker_kill(&g_broker);
    CHECK(tl_broker_restart(&g_broker, 20000) == 0, "restart");
    CHECK(send_range(p, "restart", n / 2, n) == 0, "send after the restart");
    CHECK(rl_producer_flush(p, 60000) == 0, "flush: %s", rl_producer_last_error(p));
    printf("  %ld of %ld records were acknowledged when the broker was killed\n", acked_at_kill,
           n);
    CHECK(atomic_load(&r.failed) == 0 && atomic_load(&r.acked) == n, "%ld acked, %ld failed",
          atomic_load(&r.acked), atomic_load(&r.failed));
    rc = verify_log("restart", &r, present, n);
out:
    rl_producer_destroy(p, 5000);
    rl_conf_destroy(c);
    reports_free(&r);
    free(present);
    return rc;
}

/* A second instance of the producer's id with a newer epoch (InitProducerId with the id and
 * epoch the first one stamped, read from its batch in the log) fences the first: its next
 * records fail with PRODUCER_FENCED, and so does every send after that. */
static int test_fenced(void)
{
    struct reports r;
    int rc = -1;
    struct rl_producer *p = NULL;
    struct rl_conf *c = NULL;
    struct tl_conn tc = {.fd = -1};
    CHECK(reports_init(&r, 10) == 0, "out of memory");
    CHECK(create_topic("fence") == 0, "create");
    c = conf_at(g_broker.host, g_broker.port, NULL);
    rl_conf_set_delivery_cb(c, report_cb, &r);
    char err[256];
    p = rl_producer_new(c, err, sizeof(err));
    CHECK(p, "%s", err);
    CHECK(rl_producer_send(p, "fence", 0, NULL, 0, "0", 1, 0, (void *)0) == 0 &&
          rl_producer_flush(p, 10000) == 0 && atomic_load(&r.acked) == 1, "first record: %s",
          rl_producer_last_error(p));
    CHECK(tl_connect(&tc, g_broker.host, g_broker.port, 5000) == 0, "connect");
    struct tl_fetch f = {.topic = "fence", .partition = 0, .offset = 0, .max_bytes = 65536};
    struct tl_fetch_result fr;
    struct batch_header h;
    CHECK(tl_fetch(&tc, &f, &fr) == 0 && batch_header_decode(fr.data, fr.data_len, &h) == 0,
          "fetch the first batch");
    CHECK(h.producer_id >= 0 && h.producer_epoch >= 0 && h.base_sequence == 0,
          "the batch carries no idempotence fields: id %lld epoch %d seq %d",
          (long long)h.producer_id, h.producer_epoch, h.base_sequence);
    Ringlog__InitProducerIdRequest ir = RINGLOG__INIT_PRODUCER_ID_REQUEST__INIT;
    ir.producer_id = h.producer_id;
    ir.producer_epoch = h.producer_epoch;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_INIT_PRODUCER_ID;
    req.init_producer_id = &ir;
    Ringlog__Response *resp;
    CHECK(tl_call(&tc, &req, NULL, 0, 5000, &resp, NULL, NULL) == 0 && resp->error_code == 0 &&
          resp->body_case == RINGLOG__RESPONSE__BODY_INIT_PRODUCER_ID &&
          resp->init_producer_id->producer_epoch > h.producer_epoch, "the newer instance");
    /* The newer instance appends once, so the partition knows the new epoch. */
    uint8_t *batch;
    int blen = tl_make_batch(1, "new", &batch);
    CHECK(blen > 0, "batch");
    batch_stamp_idem(batch, (uint32_t)blen, h.producer_id,
                     (int16_t)resp->init_producer_id->producer_epoch, 0);
    int prc = tl_produce(&tc, "fence", 0, batch, (uint32_t)blen, 1, NULL);
    free(batch);
    CHECK(prc == 0, "the newer instance's append: %s", rl_error_name(prc));
    CHECK(rl_producer_send(p, "fence", 0, NULL, 0, "1", 1, 0, (void *)1) == 0, "queue");
    rl_producer_flush(p, 10000);
    CHECK(atomic_load(&r.failed) == 1 && r.first_error == RL_E_PRODUCER_FENCED,
          "the old instance's record: %ld failed (%s)", atomic_load(&r.failed),
          rl_error_name(r.first_error));
    CHECK(rl_producer_send(p, "fence", 0, NULL, 0, "2", 1, 0, (void *)2) ==
          RL_E_PRODUCER_FENCED, "a send after fencing: %s", rl_producer_last_error(p));
    rc = 0;
out:
    tl_close(&tc);
    rl_producer_destroy(p, 5000);
    rl_conf_destroy(c);
    reports_free(&r);
    return rc;
}

int main(void)
{
    const char *s = getenv("RINGLOG_TEST_SEED");
    g_seed = s ? strtoull(s, NULL, 0) : (tl_now_ms() ^ (uint64_t)getpid() << 20);
    printf("seed %" PRIu64 " (replay with RINGLOG_TEST_SEED=%" PRIu64 ")\n", g_seed, g_seed);
    if (tl_broker_start(&g_broker, NULL, 20000) != 0) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    struct {
        const char *name;
        int (*fn)(void);
    } tests[] = {{"dup_retries", test_dup_retries}, {"epoch_bump", test_epoch_bump},
                 {"fenced", test_fenced}, {"broker_restart", test_broker_restart}};
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        uint64_t t0 = tl_now_ms();
        int rc = tests[i].fn();
        printf("%s %s (%" PRIu64 " ms)\n", rc == 0 ? "PASS" : "FAIL", tests[i].name,
               tl_now_ms() - t0);
        if (rc == 0)
            passed++;
        else
            failed++;
    }
    if (failed)
        tl_broker_dump_log(&g_broker, 40);
    tl_broker_cleanup(&g_broker);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
