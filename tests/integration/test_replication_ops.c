/*
 * test_replication_ops: operating replicated partitions on three real ringlogd processes on
 * 127.0.0.1 (one cluster, --voters, election.timeout.ms=3000 so that a leader lost without a
 * hand-off stalls its partitions for seconds). A topic of 6 partitions with 3 replicas; a
 * producer thread writes keyed, idempotent acks=all records at a steady rate throughout.
 *
 *   1. Preferred leaders: every partition ends up led by the first replica of its placement
 *      (leadership balancing), as every broker's Metadata names it.
 *   2. Rolling restart: each broker in turn gets SIGTERM (it hands its leaderships to the other
 *      replicas, then stops; exit status 0), restarts, catches up (its high watermark of every
 *      partition reaches the leader's as sampled after the restart) and takes back the
 *      partitions it prefers. The longest gap between two acknowledgements of one partition
 *      during each restart is printed and must stay under RINGLOG_OPS_MAX_STALL_MS (default
 *      1500; the target is 1 s, and without the hand-off it is the 3 s election timeout or more).
 *   3. A preferred leader SIGKILLed: the others elect, it restarts and, once caught up, leads
 *      its partitions again.
 * Then every acknowledged record is read back exactly once, each key's records in order.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/ringlog.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

#define N 3
#define PARTS 6
#define KEYS 600
#define START_MS 20000
#define TOPIC "ops"

static struct tl_broker b[N];
static uint16_t ports[N];
static char voters[256];

static void pick_ports(void)
{
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
        cr_assert_eq(bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
        socklen_t len = sizeof(sa);
        getsockname(fds[i], (struct sockaddr *)&sa, &len);
        ports[i] = ntohs(sa.sin_port);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    snprintf(voters, sizeof(voters), "1@127.0.0.1:%u,2@127.0.0.1:%u,3@127.0.0.1:%u", ports[0],
             ports[1], ports[2]);
}

static void start_node(int i)
{
    char listen[32], node[16];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", ports[i]);
    snprintf(node, sizeof(node), "%d", i + 1);
    const char *args[] = {"--listen", listen, "--node-id", node, "--voters", voters,
                          "--set", "election.timeout.ms=3000",
                          "--set", "broker.session.timeout.ms=6000", NULL};
    int rc = tl_broker_start(&b[i], args, START_MS);
    cr_assert_eq(rc, 0, "node %d did not start: %s", i + 1, rl_strerror(rc));
}

static void teardown(void)
{
    for (int i = 0; i < N; i++) {
        int st = tl_broker_finish(&b[i], 20000);
        cr_expect_eq(st, 0, "node %d exit status %d", i + 1, st);
    }
}

/* Node i's Metadata: leader and preferred replica (first of the placement) of every
 * partition. Returns 0, or -1 when it does not answer with all of them. */
static int view_of(int i, int32_t *leaders, int32_t *preferred)
{
    if (!tl_broker_alive(&b[i]))
        return -1;
    struct tl_conn c;
    if (tl_connect(&c, "127.0.0.1", b[i].port, 2000))
        return -1;
    char *names[1] = {TOPIC};
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    mr.n_topics = 1;
    mr.topics = names;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    Ringlog__Response *resp = NULL;
    int rc = -1;
    if (tl_call(&c, &req, NULL, 0, 5000, &resp, NULL, NULL) == 0 &&
        resp->metadata->n_topics == 1 && resp->metadata->topics[0]->error_code == 0 &&
        resp->metadata->topics[0]->n_partitions == PARTS) {
        const Ringlog__TopicMetadata *tm = resp->metadata->topics[0];
        rc = 0;
        for (int k = 0; k < PARTS; k++) {
            const Ringlog__PartitionMetadata *pm = tm->partitions[k];
            if (pm->partition >= PARTS || pm->n_replicas != N) {
                rc = -1;
                break;
            }
            leaders[pm->partition] = pm->leader;
            preferred[pm->partition] = pm->replicas[0];
        }
    }
    tl_close(&c);
    return rc;
}

/* True when every live node names the same leader of every partition (into leaders). */
static bool agreed(int32_t *leaders, int32_t *preferred)
{
    bool any = false;
    for (int i = 0; i < N; i++) {
        int32_t l[PARTS], p[PARTS];
        if (!tl_broker_alive(&b[i]))
            continue;
        if (view_of(i, l, p))
            return false;
        for (int k = 0; k < PARTS; k++) {
            if (l[k] < 1 || l[k] > N || (any && (l[k] != leaders[k] || p[k] != preferred[k])))
                return false;
        }
        memcpy(leaders, l, sizeof(l));
        memcpy(preferred, p, sizeof(p));
        any = true;
    }
    return any;
}

/* Polls until every live node names, for every partition, its preferred replica as leader. */
static void wait_preferred_leaders(uint32_t timeout_ms, const char *when)
{
    int32_t l[PARTS], p[PARTS];
    for (uint64_t until = tl_now_ms() + timeout_ms;; usleep(50000)) {
        bool ok = agreed(l, p);
        for (int k = 0; k < PARTS && ok; k++)
            ok = l[k] == p[k];
        if (ok)
            return;
        cr_assert(tl_now_ms() < until, "%s: leadership did not return to the preferred replicas "
                  "within %u ms", when, timeout_ms);
    }
}

/* The high watermark of partition p on node i, or -1. */
static int64_t hwm_on(int i, uint32_t p)
{
    struct tl_conn c;
    if (tl_connect(&c, "127.0.0.1", b[i].port, 2000))
        return -1;
    struct tl_fetch f = {.topic = TOPIC, .partition = p, .max_bytes = 1};
    struct tl_fetch_result fr;
    int rc = tl_fetch(&c, &f, &fr);
    int64_t h = rc == 0 ? (int64_t)fr.high_watermark : -1;
    tl_close(&c);
    return h;
}

/* Polls until node i's high watermark of every partition reaches what another node reports
 * now. */
static void wait_caught_up(int i)
{
    for (uint32_t p = 0; p < PARTS; p++) {
        int64_t target = -1;
        for (int j = 0; j < N && target < 0; j++)
            if (j != i)
                target = hwm_on(j, p);
        cr_assert_geq(target, 0, "no other node reports %s-%u's high watermark", TOPIC, p);
        for (uint64_t until = tl_now_ms() + 30000; hwm_on(i, p) < target; usleep(20000))
            cr_assert(tl_now_ms() < until, "node %d did not catch up on %s-%u to %" PRId64
                      " within 30 s", i + 1, TOPIC, p, target);
    }
}

/* Acknowledgements: counts, and per partition the time of the last one and the longest gap
 * between two since the gaps were last reset. */
static struct {
    atomic_uint_fast64_t ok, failed;
    atomic_int first_err;
    atomic_uint_fast64_t last_ms[PARTS], max_gap_ms[PARTS];
    atomic_uint_fast64_t gap_end_ms[PARTS]; /* when the longest gap ended */
    atomic_uint_fast64_t reset_ms;
} acks;

static void on_delivery(void *ctx, const struct rl_delivery *d)
{
    (void)ctx;
    if (d->error != 0) {
        atomic_fetch_add(&acks.failed, 1);
        int z = 0;
        atomic_compare_exchange_strong(&acks.first_err, &z, d->error);
        return;
    }
    atomic_fetch_add(&acks.ok, 1);
    if (d->partition < 0 || d->partition >= PARTS)
        return;
    uint64_t now = tl_now_ms();
    uint64_t last = atomic_exchange(&acks.last_ms[d->partition], now);
    uint64_t gap = last && now > last ? now - last : 0;
    if (gap > atomic_load(&acks.max_gap_ms[d->partition])) {
        atomic_store(&acks.max_gap_ms[d->partition], gap);
        atomic_store(&acks.gap_end_ms[d->partition], now);
    }
}

static void gaps_reset(void)
{
    uint64_t now = tl_now_ms();
    atomic_store(&acks.reset_ms, now);
    for (int k = 0; k < PARTS; k++) {
        atomic_store(&acks.last_ms[k], now);
        atomic_store(&acks.max_gap_ms[k], 0);
        atomic_store(&acks.gap_end_ms[k], now);
    }
}

/* When partition k's longest gap began, in ms after the gaps were reset (the SIGTERM). */
static uint64_t gap_began(int k)
{
    uint64_t began = atomic_load(&acks.gap_end_ms[k]) - atomic_load(&acks.max_gap_ms[k]);
    uint64_t reset = atomic_load(&acks.reset_ms);
    return began > reset ? began - reset : 0;
}

/* The longest gap of any partition, counting the time since its last ack as one. */
static uint64_t gaps_max(int *part)
{
    uint64_t now = tl_now_ms(), m = 0;
    for (int k = 0; k < PARTS; k++) {
        uint64_t g = atomic_load(&acks.max_gap_ms[k]);
        uint64_t open = now - atomic_load(&acks.last_ms[k]);
        if (open > g)
            g = open;
        if (g > m) {
            m = g;
            *part = k;
        }
    }
    return m;
}

static struct rl_producer *prod;
static atomic_bool stop_sending;
static atomic_int sent;

/* A steady load (about 2,000 records a second) until stop_sending. */
static void *sender(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000000 && !atomic_load(&stop_sending); i++) {
        char key[16], val[48];
        int k = i % KEYS;
        int kl = snprintf(key, sizeof(key), "k%04d", k);
        int vl = snprintf(val, sizeof(val), "%d:%d", k, i / KEYS);
        int rc = rl_producer_send(prod, TOPIC, RL_PARTITION_ANY, key, (size_t)kl, val,
                                  (size_t)vl, 0, NULL);
        if (rc != 0) {
            fprintf(stderr, "send %d: %s\n", i, rl_producer_last_error(prod));
            break;
        }
        atomic_store(&sent, i + 1);
        if (i % 10 == 9)
            usleep(5000); /* pacing, not synchronization */
    }
    return NULL;
}

/* Waits until at least `more` further records are acknowledged (the load flows). */
static void wait_acks(uint64_t more, const char *when)
{
    uint64_t target = atomic_load(&acks.ok) + more;
    for (uint64_t until = tl_now_ms() + 30000; atomic_load(&acks.ok) < target; usleep(10000))
        cr_assert(tl_now_ms() < until, "%s: acknowledgements stopped (%" PRIu64 " ok, %" PRIu64
                  " failed)", when, (uint64_t)atomic_load(&acks.ok),
                  (uint64_t)atomic_load(&acks.failed));
}

Test(replication_ops, rolling_restart_and_preferred_leaders, .fini = teardown, .timeout = 300)
{
    uint64_t max_stall = 1500;
    const char *env = getenv("RINGLOG_OPS_MAX_STALL_MS");
    if (env && atoi(env) > 0)
        max_stall = (uint64_t)atoi(env);
    pick_ports();
    for (int i = 0; i < N; i++)
        start_node(i);
    char msg[600] = "";
    int rc = -1;
    for (uint64_t until = tl_now_ms() + 20000; rc != 0 && tl_now_ms() < until; usleep(50000)) {
        struct tl_conn c;
        if (tl_connect(&c, "127.0.0.1", b[0].port, 2000))
            continue;
        Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
        spec.name = TOPIC;
        spec.partitions = PARTS;
        spec.replication_factor = N;
        rc = tl_create_topic_spec(&c, &spec, msg, sizeof(msg));
        tl_close(&c);
    }
    cr_assert_eq(rc, 0, "create %s: %s (%s)", TOPIC, rl_strerror(rc), msg);
    wait_preferred_leaders(30000, "after creation");

    char boot[96], err[512];
    snprintf(boot, sizeof(boot), "127.0.0.1:%u,127.0.0.1:%u,127.0.0.1:%u", ports[0], ports[1],
             ports[2]);
    struct rl_conf *conf = rl_conf_new();
    cr_assert(conf);
    const char *kv[][2] = {{"bootstrap.servers", boot}, {"acks", "all"},
                           {"enable.idempotence", "true"}, {"delivery.timeout.ms", "120000"},
                           {"retry.backoff.ms", "20"}, {"retry.backoff.max.ms", "200"},
                           {"log.level", "error"}};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        cr_assert_eq(rl_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err)), 0, "%s", err);
    rl_conf_set_delivery_cb(conf, on_delivery, NULL);
    prod = rl_producer_new(conf, err, sizeof(err));
    cr_assert(prod, "%s", err);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, sender, NULL), 0);
    wait_acks(2000, "before the restarts");

    /* Rolling restart. */
    uint64_t worst = 0;
    for (int i = 0; i < N; i++) {
        gaps_reset();
        uint64_t t0 = tl_now_ms();
        int st = tl_broker_stop(&b[i], SIGTERM, 30000);
        cr_assert_eq(st, 0, "node %d: exit status %d after SIGTERM", i + 1, st);
        uint64_t stopped = tl_now_ms() - t0;
        cr_assert(tl_broker_log_has(&b[i], "handing leadership"), "node %d did not hand off",
                  i + 1);
        cr_assert_eq(tl_broker_restart(&b[i], START_MS), 0, "node %d did not restart", i + 1);
        wait_caught_up(i);
        wait_preferred_leaders(30000, "after a restart");
        wait_acks(500, "after a restart");
        int part = -1;
        uint64_t stall = gaps_max(&part);
        cr_log_info("rolling restart: node %d stopped in %" PRIu64 " ms, back and leading its "
                    "preferred partitions after %" PRIu64 " ms; longest acknowledgement stall "
                    "%" PRIu64 " ms (%s-%d)", i + 1, stopped, tl_now_ms() - t0, stall, TOPIC,
                    part);
        fprintf(stderr, "rolling restart node %d: stopped in %" PRIu64 " ms; longest ack "
                "stall %" PRIu64 " ms (%s-%d), from %" PRIu64 " ms after the SIGTERM\n", i + 1,
                stopped, stall, TOPIC, part, part >= 0 ? gap_began(part) : 0);
        if (stall > worst)
            worst = stall;
        cr_assert_lt(stall, max_stall, "node %d's restart stalled %s-%d's acknowledgements for "
                     "%" PRIu64 " ms (bound %" PRIu64 " ms)", i + 1, TOPIC, part, stall,
                     max_stall);
    }

    /* A preferred leader killed: leadership returns once it is back and caught up. */
    int32_t l[PARTS], p[PARTS];
    cr_assert(agreed(l, p));
    int victim = p[0] - 1;
    tl_broker_kill(&b[victim]);
    for (uint64_t until = tl_now_ms() + 30000;; usleep(50000)) {
        cr_assert(tl_now_ms() < until, "no new leader of %s-0 after node %d was killed", TOPIC,
                  victim + 1);
        if (agreed(l, p) && l[0] != victim + 1)
            break;
    }
    cr_assert_eq(tl_broker_restart(&b[victim], START_MS), 0);
    uint64_t t1 = tl_now_ms();
    wait_caught_up(victim);
    wait_preferred_leaders(30000, "after a kill");
    cr_log_info("node %d killed and restarted: leads its preferred partitions again %" PRIu64
                " ms after its restart", victim + 1, tl_now_ms() - t1);
    wait_acks(500, "after the kill");

    atomic_store(&stop_sending, true);
    pthread_join(th, NULL);
    cr_assert_eq(rl_producer_flush(prod, 120000), 0, "flush: %s", rl_producer_last_error(prod));
    int records = atomic_load(&sent);
    cr_assert_eq(atomic_load(&acks.failed), 0, "%" PRIu64 " records failed, the first with %s",
                 (uint64_t)atomic_load(&acks.failed), rl_strerror(atomic_load(&acks.first_err)));
    cr_assert_eq(atomic_load(&acks.ok), (uint64_t)records);
    rl_producer_destroy(prod, 5000);
    fprintf(stderr, "rolling restart: %d records, worst acknowledgement stall %" PRIu64 " ms\n",
            records, worst);

    struct rl_consumer *k = rl_consumer_new(conf, err, sizeof(err));
    cr_assert(k, "%s", err);
    cr_assert_eq(rl_consumer_assign_topic(k, TOPIC, RL_OFFSET_EARLIEST), PARTS, "%s",
                 rl_consumer_last_error(k));
    int *next = calloc(KEYS, sizeof(int));
    cr_assert(next);
    int total = 0;
    for (uint64_t until = tl_now_ms() + 60000; total < records;) {
        cr_assert(tl_now_ms() < until, "read %d of %d records: %s", total, records,
                  rl_consumer_last_error(k));
        struct rl_record r;
        rc = rl_consumer_poll(k, 200, &r);
        cr_assert_geq(rc, 0, "poll: %s", rl_consumer_last_error(k));
        if (rc == 0)
            continue;
        char val[48];
        cr_assert(r.value_len > 0 && (size_t)r.value_len < sizeof(val));
        memcpy(val, r.value, r.value_len);
        val[r.value_len] = 0;
        int key = -1, seq = -1;
        cr_assert_eq(sscanf(val, "%d:%d", &key, &seq), 2, "value %s", val);
        cr_assert(key >= 0 && key < KEYS);
        cr_assert_eq(seq, next[key], "key %d: record %d where %d was due (%s)", key, seq,
                     next[key], seq < next[key] ? "read twice" : "one lost or out of order");
        next[key]++;
        total++;
    }
    struct rl_record r;
    cr_assert_eq(rl_consumer_poll(k, 500, &r), 0, "a record beyond the %d written", records);
    free(next);
    rl_consumer_destroy(k);
    rl_conf_destroy(conf);
}
