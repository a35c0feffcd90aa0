/*
 * bench_delivery: what libringlog's delivery guarantees cost, against a ringlogd it starts
 * (tests/lib/tl_broker.h; data under $TMPDIR, else /tmp):
 *   idempotence: produce throughput through libringlog with enable.idempotence off and on, in
 *                the same run, phases alternating (off, on, off, on...) so drift on a shared
 *                machine hits both; 8 partitions, 100-byte incompressible records, acks=1, the
 *                same batch.size / linger.ms / 5 batches in flight per partition for both,
 *                after a one-second warm-up of each (printed, not counted).
 *   takeover:    the time from a group member's SIGKILL to the first record another member
 *                consumes from one of its partitions, with session.timeout.ms=1000 and a
 *                record produced to every partition every 5 ms. Target: the session timeout
 *                plus under a second.
 * Ends with: bench-delivery: idempotence on/off R (cost C%), takeover T ms (session S ms)
 * Usage: RINGLOGD=build/bin/ringlogd bench_delivery [PHASE_SECONDS] [ROUNDS] (defaults 3, 2)
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/ringlog.h"
#include "tests/lib/tl_broker.h"

#define BD_PARTITIONS 8
#define BD_RECORD_BYTES 100
#define BD_POOL_BYTES (8u << 20)
#define BD_TAKEOVER_PARTS 4
#define BD_SESSION_MS 1000
#define BD_TAKEOVER_ROUNDS 3

static struct tl_broker g_b;
static char g_addr[128];

static struct rl_conf *conf_with(const char *const *kv)
{
    struct rl_conf *c = rl_conf_new();
    char err[256];
    rl_conf_set(c, "bootstrap.servers", g_addr, err, sizeof(err));
    for (int i = 0; kv && kv[i]; i += 2)
        if (rl_conf_set(c, kv[i], kv[i + 1], err, sizeof(err)))
            fprintf(stderr, "bench-delivery: %s\n", err);
    return c;
}

static int create_topic(const char *name, int parts)
{
    struct rl_conf *c = conf_with(NULL);
    char err[256];
    struct rl_admin *a = rl_admin_new(c, err, sizeof(err));
    struct rl_topic_spec spec = {.name = name, .partitions = parts};
    int rc = rl_admin_create_topic(a, &spec);
    if (rc)
        fprintf(stderr, "bench-delivery: %s\n", rl_admin_last_error(a));
    rl_admin_destroy(a);
    rl_conf_destroy(c);
    return rc;
}

/* One produce phase: records per second acknowledged, or -1. */
static double produce_phase(bool idem, int seconds, const uint8_t *pool)
{
    const char *kv[] = {"enable.idempotence", idem ? "true" : "false", "acks", "all",
                        "batch.size", "262144", "linger.ms", "5",
                        "max.in.flight.per.partition", "5", "buffer.memory", "33554432", NULL};
    struct rl_conf *c = conf_with(kv);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "bench-delivery: %s\n", err);
        rl_conf_destroy(c);
        return -1;
    }
    uint64_t start = tl_now_ms(), end = start + (uint64_t)seconds * 1000, rnd = start | 1;
    long sent = 0;
    int rc = 0;
    while (rc == 0 && ((sent & 1023) || tl_now_ms() < end)) {
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        size_t off = (size_t)(rnd % (BD_POOL_BYTES - BD_RECORD_BYTES));
        rc = rl_producer_send(p, "idem", (int32_t)(sent % BD_PARTITIONS), NULL, 0, pool + off,
                              BD_RECORD_BYTES, 0, NULL);
        sent += rc == 0;
    }
    if (rc == 0)
        rc = rl_producer_flush(p, 60000);
    double secs = (double)(tl_now_ms() - start) / 1000.0;
    uint64_t acked = 0, failed = 0;
    rl_producer_counts(p, &acked, &failed);
    if (rc || failed)
        fprintf(stderr, "bench-delivery: produce failed: %s\n", rl_producer_last_error(p));
    rl_producer_destroy(p, 5000);
    rl_conf_destroy(c);
    return rc || failed ? -1 : (double)acked / secs;
}

/* --- takeover ---------------------------------------------------------------------------------- */

static atomic_bool g_feed_stop;

/* Keeps every partition of "take" receiving a record every 5 ms. */
static void *feed_main(void *arg)
{
    struct rl_producer *p = arg;
    while (!atomic_load(&g_feed_stop)) {
        for (int32_t i = 0; i < BD_TAKEOVER_PARTS; i++)
            rl_producer_send(p, "take", i, NULL, 0, "x", 1, 0, NULL);
        poll(NULL, 0, 5);
    }
    return NULL;
}

static const char *const g_member_kv[] = {
    "group.id", "takeover", "session.timeout.ms", "1000", "heartbeat.interval.ms", "200",
    "rebalance.timeout.ms", "2000", "auto.offset.reset", "latest", "fetch.max.wait.ms", "50",
    "auto.commit.interval.ms", "200", NULL};

/* The member that gets killed: consumes until SIGKILL. */
static void victim_main(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct rl_conf *c = conf_with(g_member_kv);
    char err[256];
    struct rl_consumer *k = rl_consumer_new(c, err, sizeof(err));
    const char *topics[1] = {"take"};
    if (!k || rl_consumer_subscribe(k, topics, 1) != 0)
        _exit(3);
    for (uint64_t end = tl_now_ms() + 60000; tl_now_ms() < end;) {
        struct rl_record r;
        rl_consumer_poll(k, 100, &r);
    }
    _exit(0);
}

struct survivor {
    bool held[BD_TAKEOVER_PARTS];
    int held_count;
};

static void survivor_cb(void *ctx, struct rl_consumer *k, enum rl_rebalance_event event,
                        const struct rl_topic_partition *parts, size_t count)
{
    (void)k;
    struct survivor *s = ctx;
    if (event != RL_REBALANCE_ASSIGNED) { /* REVOKED or LOST */
        memset(s->held, 0, sizeof(s->held));
        s->held_count = 0;
        return;
    }
    for (size_t i = 0; i < count; i++)
        if (parts[i].partition >= 0 && parts[i].partition < BD_TAKEOVER_PARTS)
            s->held[parts[i].partition] = true, s->held_count++;
}

/* One round: the survivor shares the partitions with a victim, the victim is SIGKILLed, and
 * the survivor polls until a record of a partition it did not hold arrives. Returns ms or -1. */
static long takeover_round(struct rl_consumer *k, struct survivor *s)
{
    pid_t pid = fork();
    if (pid == 0)
        victim_main();
    long ms = -1;
    uint64_t deadline = tl_now_ms() + 20000;
    while (s->held_count != BD_TAKEOVER_PARTS / 2 && tl_now_ms() < deadline) {
        struct rl_record r;
        rl_consumer_poll(k, 50, &r); /* until the group is in sync with two members */
    }
    /* Let the victim fetch for a moment, so it really consumes its partitions. */
    for (uint64_t end = tl_now_ms() + 500; tl_now_ms() < end;) {
        struct rl_record r;
        rl_consumer_poll(k, 50, &r);
    }
    if (s->held_count == BD_TAKEOVER_PARTS / 2) {
        bool before[BD_TAKEOVER_PARTS];
        memcpy(before, s->held, sizeof(before));
        uint64_t t0 = tl_now_ms();
        kill(pid, SIGKILL);
        while (ms < 0 && tl_now_ms() < t0 + 20000) {
            struct rl_record r;
            if (rl_consumer_poll(k, 50, &r) == 1 && !before[r.partition])
                ms = (long)(tl_now_ms() - t0);
        }
    } else {
        fprintf(stderr, "bench-delivery: the group never settled with two members\n");
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return ms;
}

static long takeover(void)
{
    if (create_topic("take", BD_TAKEOVER_PARTS))
        return -1;
    struct rl_conf *pc = conf_with(NULL);
    char err[256];
    struct rl_producer *p = rl_producer_new(pc, err, sizeof(err));
    struct survivor s = {0};
    struct rl_conf *cc = conf_with(g_member_kv);
    rl_conf_set_rebalance_cb(cc, survivor_cb, &s);
    struct rl_consumer *k = rl_consumer_new(cc, err, sizeof(err));
    const char *topics[1] = {"take"};
    pthread_t feeder;
    long worst = -1;
    if (!p || !k || rl_consumer_subscribe(k, topics, 1) != 0 ||
        pthread_create(&feeder, NULL, feed_main, p) != 0)
        goto out;
    for (int i = 0; i < BD_TAKEOVER_ROUNDS; i++) {
        long ms = takeover_round(k, &s);
        printf("takeover: round %d: partitions of the killed member consumed after %ld ms\n",
               i + 1, ms);
        fflush(stdout);
        if (ms < 0) {
            worst = -1;
            break;
        }
        worst = ms > worst ? ms : worst;
    }
    atomic_store(&g_feed_stop, true);
    pthread_join(feeder, NULL);
out:
    rl_consumer_destroy(k);
    rl_producer_destroy(p, 5000);
    rl_conf_destroy(cc);
    rl_conf_destroy(pc);
    return worst;
}

int main(int argc, char **argv)
{
    int seconds = argc > 1 ? atoi(argv[1]) : 3, rounds = argc > 2 ? atoi(argv[2]) : 2;
    if (seconds < 1 || rounds < 1) {
        fprintf(stderr, "usage: bench_delivery [PHASE_SECONDS] [ROUNDS]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    uint8_t *pool = malloc(BD_POOL_BYTES);
    uint64_t rnd = tl_now_ms() | 1;
    for (size_t i = 0; pool && i < BD_POOL_BYTES; i++) {
        rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
        pool[i] = (uint8_t)rnd;
    }
    if (!pool || tl_broker_start(&g_b, NULL, 20000) != 0)
        return 1;
    snprintf(g_addr, sizeof(g_addr), "%s:%u", g_b.host, g_b.port);
    int rc = 1;
    if (create_topic("idem", BD_PARTITIONS))
        goto out;
    /* Warm-up, not counted: the first idempotent producer on a partition makes the broker
     * load its producer state (replaying the log written so far), a one-time cost that is
     * not what this measures; it is printed so it is seen. */
    for (int idem = 0; idem < 2; idem++) {
        uint64_t t0 = tl_now_ms();
        double rps = produce_phase(idem, 1, pool);
        if (rps < 0)
            goto out;
        printf("warm-up, idempotence %s: %.0f records/s (%" PRIu64 " ms)\n", idem ? "on " : "off",
               rps, tl_now_ms() - t0);
    }
    double sum[2] = {0, 0};
    for (int r = 0; r < rounds; r++) {
        for (int idem = 0; idem < 2; idem++) {
            double rps = produce_phase(idem, seconds, pool);
            if (rps < 0)
                goto out;
            printf("idempotence %s: %.0f records/s (%.1f MB/s)\n", idem ? "on " : "off", rps,
                   rps * BD_RECORD_BYTES / 1e6);
            fflush(stdout);
            sum[idem] += rps;
        }
    }
    double ratio = sum[1] / sum[0];
    long ms = takeover();
    printf("bench-delivery: idempotence on/off %.3f (cost %.1f%%, target < 5%%), takeover %ld ms "
           "(session %d ms, target < %d ms)\n", ratio, 100.0 * (1.0 - ratio), ms, BD_SESSION_MS,
           BD_SESSION_MS + 1000);
    rc = ms < 0;
out:
    tl_broker_cleanup(&g_b);
    free(pool);
    return rc;
}
