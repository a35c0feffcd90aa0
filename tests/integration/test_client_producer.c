/*
 * The producer's contract with a broker that comes and goes, against real ringlogd processes
 * (127.0.0.1, ephemeral ports): non-blocking send (max.block.ms=0) queues while the broker is
 * down and delivers once it is back, both before the topic's metadata is known and after;
 * send fails only with RL_E_FULL; delivery reports say PERSISTED, POSSIBLY_PERSISTED or
 * NOT_PERSISTED; calls from inside a delivery callback fail with -EDEADLK instead of stalling;
 * the last error is per thread; the codes the broker sends are the public enum's; statistics
 * and the log callback report. Prints "N passed, N failed" and exits non-zero on failure.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ringlog.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_delivery.h"

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
            return -1;                                                                          \
        }                                                                                       \
    } while (0)

static struct rl_conf *conf_for(const struct tl_broker *b, const char *const *kv)
{
    struct rl_conf *c = rl_conf_new();
    char addr[128], err[256];
    snprintf(addr, sizeof(addr), "%s:%u", b->host, b->port);
    if (rl_conf_set(c, "bootstrap.servers", addr, err, sizeof(err)))
        fprintf(stderr, "conf: %s\n", err);
    rl_conf_set(c, "request.timeout.ms", "10000", err, sizeof(err));
    for (int i = 0; kv && kv[i]; i += 2)
        if (rl_conf_set(c, kv[i], kv[i + 1], err, sizeof(err)))
            fprintf(stderr, "conf %s: %s\n", kv[i], err);
    return c;
}

static int create_topic(const struct tl_broker *b, const char *name, int partitions)
{
    struct rl_conf *c = conf_for(b, NULL);
    char err[256];
    struct rl_admin *a = rl_admin_new(c, err, sizeof(err));
    struct rl_topic_spec spec = {.name = name, .partitions = partitions};
    int rc = rl_admin_create_topic(a, &spec);
    if (rc)
        fprintf(stderr, "  create %s: %s\n", name, rl_admin_last_error(a));
    rl_admin_destroy(a);
    rl_conf_destroy(c);
    return rc;
}

/* Sends n records with max.block.ms=0, checking each send returns 0 at once. */
static int send_burst(struct rl_producer *p, const char *topic, int n, uint64_t *worst_ms)
{
    char key[32], val[64];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(val, sizeof(val), "value %d", i);
        uint64_t t0 = tl_now_ms();
        int rc = rl_producer_send(p, topic, RL_PARTITION_ANY, key, strlen(key), val,
                                  strlen(val), 0, NULL);
        uint64_t took = tl_now_ms() - t0;
        if (took > *worst_ms)
            *worst_ms = took;
        CHECK(rc == 0, "send %d: %s (%s)", i, rl_error_name(rc), rl_last_error());
    }
    return 0;
}

/* Broker down before the topic's metadata was ever fetched, then again once it is known: every
 * send returns 0 at once, records wait (stats say queued), and all arrive, in order per
 * partition, once the broker is back. */
static int t_nonblocking_broker_down(void)
{
    struct tl_broker b = {0};
    CHECK(tl_broker_start(&b, NULL, 10000) == 0, "start broker");
    CHECK(create_topic(&b, "nb", 4) == 0, "create");
    CHECK(tl_broker_stop(&b, SIGTERM, 10000) == 0, "stop");
    struct tl_deliveries r;
    tl_deliveries_init(&r, NULL, 0);
    const char *kv[] = {"max.block.ms", "0", "delivery.timeout.ms", "60000",
                        "retry.backoff.max.ms", "200", NULL};
    struct rl_conf *c = conf_for(&b, kv);
    rl_conf_set_delivery_cb(c, tl_delivery_cb, &r);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    CHECK(p, "producer: %s", err);
    uint64_t worst = 0;
    if (send_burst(p, "nb", 1000, &worst))
        return -1;
    struct rl_producer_stats st;
    CHECK(rl_producer_stats(p, &st, sizeof(st)) == 0, "stats");
    CHECK(st.queued_records == 1000 && st.acked_records == 0, "queued %llu acked %llu",
          (unsigned long long)st.queued_records, (unsigned long long)st.acked_records);
    CHECK(rl_producer_flush(p, 0) == RL_E_TIMED_OUT, "flush(0) with records queued");
    CHECK(tl_broker_restart(&b, 10000) == 0, "restart");
    CHECK(rl_producer_flush(p, 30000) == 0, "flush after restart: %s",
          rl_producer_last_error(p));
    CHECK(r.persisted == 1000 && r.failed == 0, "persisted %ld failed %ld (%s)",
          (long)r.persisted, (long)r.failed, r.first_msg);
    /* Now the metadata is known: the broker goes away again, and records queue as before. */
    CHECK(tl_broker_stop(&b, SIGTERM, 10000) == 0, "stop again");
    if (send_burst(p, "nb", 1000, &worst))
        return -1;
    CHECK(tl_broker_restart(&b, 10000) == 0, "restart again");
    CHECK(rl_producer_flush(p, RL_TIMEOUT_INFINITE) == 0, "flush: %s", rl_producer_last_error(p));
    CHECK(r.persisted == 2000 && r.failed == 0 && r.out_of_order == 0,
          "persisted %ld failed %ld out of order %ld (%s)", (long)r.persisted, (long)r.failed,
          (long)r.out_of_order, r.first_msg);
    CHECK(rl_producer_stats(p, &st, sizeof(st)) == 0, "stats");
    CHECK(st.acked_records == 2000 && st.queued_records == 0 && st.in_flight_records == 0 &&
          st.requests > 0 && st.rtt_avg_us > 0 && st.rtt_max_us >= st.rtt_avg_us,
          "acked %llu queued %llu requests %llu rtt %llu/%llu us",
          (unsigned long long)st.acked_records, (unsigned long long)st.queued_records,
          (unsigned long long)st.requests, (unsigned long long)st.rtt_avg_us,
          (unsigned long long)st.rtt_max_us);
    CHECK(worst < 200, "a non-blocking send took %llu ms", (unsigned long long)worst);
    fprintf(stderr, "  2000 records through two outages; slowest send %llu ms, %llu requests, "
            "rtt avg %llu us, retries %llu\n", (unsigned long long)worst,
            (unsigned long long)st.requests, (unsigned long long)st.rtt_avg_us,
            (unsigned long long)st.retries);
    rl_producer_destroy(p, 5000);
    rl_conf_destroy(c);
    CHECK(tl_broker_finish(&b, 10000) == 0, "broker exit");
    return 0;
}

/* With the broker down and buffer.memory full, a non-blocking send fails at once with
 * RL_E_FULL, naming buffer.memory; that is the only way it fails. */
static int t_nonblocking_full(void)
{
    struct tl_broker b = {0};
    CHECK(tl_broker_start(&b, NULL, 10000) == 0, "start broker");
    CHECK(tl_broker_stop(&b, SIGTERM, 10000) == 0, "stop");
    const char *kv[] = {"max.block.ms", "0", "buffer.memory", "65536", NULL};
    struct rl_conf *c = conf_for(&b, kv);
    char err[256], val[1000];
    memset(val, 'x', sizeof(val));
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    CHECK(p, "producer: %s", err);
    int rc = 0, sent = 0;
    uint64_t t0 = tl_now_ms();
    while (sent < 1000 && (rc = rl_producer_send(p, "full", RL_PARTITION_ANY, NULL, 0, val,
                                                  sizeof(val), 0, NULL)) == 0)
        sent++;
    CHECK(rc == RL_E_FULL, "send %d: %s", sent, rl_error_name(rc));
    CHECK(tl_now_ms() - t0 < 1000, "RL_E_FULL took %llu ms", (unsigned long long)(tl_now_ms() - t0));
    CHECK(sent > 30 && sent < 70, "%d records fit in 64 KiB", sent);
    CHECK(strstr(rl_last_error(), "buffer.memory") && strstr(rl_producer_last_error(p),
                                                               "buffer.memory"),
          "%s", rl_last_error());
    CHECK(rl_producer_destroy(p, 0) == RL_E_TIMED_OUT, "destroy with records left");
    rl_conf_destroy(c);
    tl_broker_cleanup(&b);
    return 0;
}

/* A broker that stops answering (SIGSTOP) after taking the request: the records fail as
 * POSSIBLY_PERSISTED, since the broker may have written them. */
static int t_possibly_persisted(void)
{
    struct tl_broker b = {0};
    CHECK(tl_broker_start(&b, NULL, 10000) == 0, "start broker");
    CHECK(create_topic(&b, "maybe", 1) == 0, "create");
    struct tl_deliveries r;
    tl_deliveries_init(&r, NULL, 0);
    const char *kv[] = {"request.timeout.ms", "300", "delivery.timeout.ms", "1500",
                        "linger.ms", "0", NULL};
    struct rl_conf *c = conf_for(&b, kv);
    rl_conf_set(c, "request.timeout.ms", "300", NULL, 0);
    rl_conf_set_delivery_cb(c, tl_delivery_cb, &r);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    CHECK(p, "producer: %s", err);
    CHECK(rl_producer_send(p, "maybe", 0, "a", 1, "b", 1, 0, NULL) == 0, "send");
    CHECK(rl_producer_flush(p, 10000) == 0, "first flush");
    CHECK(r.persisted == 1, "first record persisted");
    kill(b.pid, SIGSTOP);
    for (int i = 0; i < 10; i++)
        CHECK(rl_producer_send(p, "maybe", 0, "a", 1, "b", 1, 0, NULL) == 0, "send");
    int frc = rl_producer_flush(p, 10000);
    kill(b.pid, SIGCONT);
    CHECK(frc == 0, "flush: %s", rl_producer_last_error(p));
    /* The records of requests the stopped broker took are POSSIBLY_PERSISTED; how many of the
     * ten made it into a request before delivery.timeout.ms depends on batching, and those that
     * never left are NOT_PERSISTED. None may be reported persisted. */
    CHECK(r.persisted == 1 && r.possibly >= 1 && r.possibly + r.not_persisted == 10 &&
          r.first_error == RL_E_TIMED_OUT, "persisted %ld possibly %ld not %ld error %s (%s)",
          (long)r.persisted, (long)r.possibly, (long)r.not_persisted,
          rl_error_name(r.first_error), r.first_msg);
    rl_producer_destroy(p, 5000);
    rl_conf_destroy(c);
    CHECK(tl_broker_finish(&b, 10000) == 0, "broker exit");
    return 0;
}

/* The broker's codes are the public enum's: a topic it does not have (send waiting for the
 * answer, and a non-blocking send's report), an existing topic, a missing partition. */
static struct tl_broker g_broker;

static int t_broker_codes(void)
{
    struct rl_conf *c = conf_for(&g_broker, NULL);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    CHECK(p, "producer: %s", err);
    int rc = rl_producer_send(p, "missing", RL_PARTITION_ANY, NULL, 0, "v", 1, 0, NULL);
    CHECK(rc == RL_E_UNKNOWN_TOPIC && rc == -5305, "rc %d", rc);
    CHECK(strstr(rl_producer_last_error(p), "\"missing\" does not exist"), "%s",
          rl_producer_last_error(p));
    CHECK(!rl_error_is_retriable(rc) && !rl_error_is_fatal(rc), "classes of UNKNOWN_TOPIC");
    CHECK(create_topic(&g_broker, "codes", 2) == 0, "create");
    CHECK(create_topic(&g_broker, "codes", 2) == RL_E_TOPIC_EXISTS, "TOPIC_EXISTS from broker");
    rc = rl_producer_send(p, "codes", 7, NULL, 0, "v", 1, 0, NULL);
    CHECK(rc == RL_E_UNKNOWN_PARTITION, "rc %d", rc);
    rl_producer_destroy(p, 1000);
    rl_conf_destroy(c);

    struct tl_deliveries r;
    tl_deliveries_init(&r, NULL, 0);
    const char *kv[] = {"max.block.ms", "0", NULL};
    c = conf_for(&g_broker, kv);
    rl_conf_set_delivery_cb(c, tl_delivery_cb, &r);
    p = rl_producer_new(c, err, sizeof(err));
    CHECK(p, "producer: %s", err);
    CHECK(rl_producer_send(p, "missing2", RL_PARTITION_ANY, NULL, 0, "v", 1, 0, NULL) == 0,
          "non-blocking send queues");
    CHECK(rl_producer_flush(p, 10000) == 0, "flush");
    CHECK(r.not_persisted == 1 && r.first_error == RL_E_UNKNOWN_TOPIC, "report: %s (%s)",
          rl_error_name(r.first_error), r.first_msg);
    rl_producer_destroy(p, 1000);
    rl_conf_destroy(c);
    return 0;
}

/* send, flush and destroy from inside a delivery callback fail at once with -EDEADLK and a
 * message saying why, instead of stalling the I/O thread. */
struct reentry {
    struct rl_producer *p;
    int send_rc, flush_rc, destroy_rc;
    uint64_t took_ms;
    char msg[512];
};

static void reentry_cb(void *ctx, const struct rl_delivery *d)
{
    struct reentry *e = ctx;
    uint64_t t0 = tl_now_ms();
    e->flush_rc = rl_producer_flush(e->p, 5000);
    snprintf(e->msg, sizeof(e->msg), "%s", rl_last_error());
    e->send_rc = rl_producer_send(e->p, d->topic, d->partition, NULL, 0, "again", 5, 0, NULL);
    e->destroy_rc = rl_producer_destroy(e->p, 5000);
    e->took_ms = tl_now_ms() - t0;
}

static int t_callback_reentry(void)
{
    CHECK(create_topic(&g_broker, "reentry", 1) == 0, "create");
    struct reentry e = {0};
    struct rl_conf *c = conf_for(&g_broker, NULL);
    rl_conf_set_delivery_cb(c, reentry_cb, &e);
    char err[256];
    e.p = rl_producer_new(c, err, sizeof(err));
    CHECK(e.p, "producer: %s", err);
    CHECK(rl_producer_send(e.p, "reentry", 0, NULL, 0, "v", 1, 0, NULL) == 0, "send");
    CHECK(rl_producer_flush(e.p, 10000) == 0, "flush");
    CHECK(e.flush_rc == -EDEADLK && e.send_rc == -EDEADLK && e.destroy_rc == -EDEADLK,
          "flush %d send %d destroy %d", e.flush_rc, e.send_rc, e.destroy_rc);
    CHECK(strstr(e.msg, "rl_producer_flush called from inside"), "%s", e.msg);
    CHECK(e.took_ms < 1000, "the refused calls took %llu ms (flush would wait 5000)",
          (unsigned long long)e.took_ms);
    rl_producer_destroy(e.p, 1000);
    rl_conf_destroy(c);
    return 0;
}

/* Each thread reads its own last error. */
struct other_thread {
    struct rl_producer *p;
    char msg[512];
};

static void *fail_elsewhere(void *arg)
{
    struct other_thread *o = arg;
    rl_producer_send(o->p, "nope-other", RL_PARTITION_ANY, NULL, 0, "v", 1, 0, NULL);
    snprintf(o->msg, sizeof(o->msg), "%s", rl_producer_last_error(o->p));
    return NULL;
}

static int t_last_error_per_thread(void)
{
    CHECK(create_topic(&g_broker, "lasterr", 1) == 0, "create");
    struct rl_conf *c = conf_for(&g_broker, NULL);
    char err[256];
    struct other_thread o = {0};
    o.p = rl_producer_new(c, err, sizeof(err));
    CHECK(o.p, "producer: %s", err);
    CHECK(rl_producer_send(o.p, "lasterr", 5, NULL, 0, "v", 1, 0, NULL) ==
          RL_E_UNKNOWN_PARTITION, "partition 5");
    pthread_t th;
    pthread_create(&th, NULL, fail_elsewhere, &o);
    pthread_join(th, NULL);
    CHECK(strstr(o.msg, "nope-other"), "other thread: %s", o.msg);
    CHECK(strstr(rl_producer_last_error(o.p), "no partition 5"), "this thread: %s",
          rl_producer_last_error(o.p));
    CHECK(strstr(rl_last_error(), "no partition 5"), "rl_last_error: %s", rl_last_error());
    rl_producer_destroy(o.p, 1000);
    rl_conf_destroy(c);
    return 0;
}

/* log.level=debug with a log callback: the producer's messages reach the callback. */
static atomic_int g_log_lines, g_log_meta;

static void log_cb(void *ctx, int level, const char *message)
{
    (void)ctx;
    atomic_fetch_add(&g_log_lines, 1);
    if (level == RL_LOGLEVEL_DEBUG && strstr(message, "metadata of logged"))
        atomic_fetch_add(&g_log_meta, 1);
}

static int t_log_callback(void)
{
    CHECK(create_topic(&g_broker, "logged", 1) == 0, "create");
    const char *kv[] = {"log.level", "debug", NULL};
    struct rl_conf *c = conf_for(&g_broker, kv);
    rl_conf_set_log_cb(c, log_cb, NULL);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    CHECK(p, "producer: %s", err);
    CHECK(rl_producer_send(p, "logged", 0, NULL, 0, "v", 1, 0, NULL) == 0, "send");
    CHECK(rl_producer_flush(p, 10000) == 0, "flush");
    rl_producer_destroy(p, 1000);
    rl_conf_destroy(c);
    CHECK(g_log_meta >= 1 && g_log_lines >= 2, "log lines %d, metadata lines %d",
          (int)g_log_lines, (int)g_log_meta);
    return 0;
}

struct test {
    const char *name;
    int (*fn)(void);
};

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct test tests[] = {
        {"broker_codes", t_broker_codes},
        {"callback_reentry", t_callback_reentry},
        {"last_error_per_thread", t_last_error_per_thread},
        {"log_callback", t_log_callback},
        {"nonblocking_broker_down", t_nonblocking_broker_down},
        {"nonblocking_full", t_nonblocking_full},
        {"possibly_persisted", t_possibly_persisted},
    };
    const char *only = getenv("TEST_ONLY");
    int passed = 0, failed = 0;
    if (tl_broker_start(&g_broker, NULL, 10000) != 0) {
        fprintf(stderr, "cannot start ringlogd (%s)\n", tl_ringlogd_path());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        if (only && !strstr(tests[i].name, only))
            continue;
        uint64_t t0 = tl_now_ms();
        int rc = tests[i].fn();
        printf("%s %s (%llu ms)\n", rc == 0 ? "ok  " : "FAIL", tests[i].name,
               (unsigned long long)(tl_now_ms() - t0));
        fflush(stdout);
        if (rc == 0)
            passed++;
        else
            failed++;
    }
    if (failed)
        tl_broker_dump_log(&g_broker, 30);
    tl_broker_cleanup(&g_broker);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
