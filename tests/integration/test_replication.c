/*
 * test_replication: replicated partitions on three real ringlogd processes on 127.0.0.1 (one
 * cluster, --voters). A topic of 6 partitions with 3 replicas each; libringlog writes keyed,
 * idempotent acks=all records while the leader of partition 0 is SIGKILLed twice (each time
 * while records are in flight; the killed node restarts once another replica leads). Checks:
 * every record is acknowledged; a consumer reads every one back exactly once, each key's
 * records in the order they were sent, and nothing more; every replica's high watermark reaches
 * the leader's (the killed nodes caught up) and the committed prefix of every partition is
 * byte for byte the same on all three; a produce sent to a follower gets NOT_LEADER; a replication
 * factor above the brokers and min.insync.replicas above the factor are refused. Failover times
 * (SIGKILL to the first new leader in every live broker's Metadata) are printed.
 * RINGLOG_REPL_RECORDS=N sets the record count (default 100000).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/ringlog.h"
#include "common/batch.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

#define N 3
#define PARTS 6
#define KEYS 600
#define START_MS 20000
#define TOPIC "replicated"

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
                          "--set", "election.timeout.ms=1000",
                          "--set", "broker.session.timeout.ms=2000", NULL};
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

static int create_topic(int i, int32_t partitions, int32_t rf, const char *insync, char *msg,
                        size_t cap)
{
    struct tl_conn c;
    int rc = tl_connect(&c, "127.0.0.1", b[i].port, 2000);
    if (rc)
        return rc;
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = TOPIC;
    spec.partitions = partitions;
    spec.replication_factor = rf;
    Ringlog__ConfigEntry ce = RINGLOG__CONFIG_ENTRY__INIT, *cep = &ce;
    if (insync) {
        ce.key = "min.insync.replicas";
        ce.value = (char *)insync;
        spec.n_configs = 1;
        spec.configs = &cep;
    }
    rc = tl_create_topic_spec(&c, &spec, msg, cap);
    tl_close(&c);
    return rc;
}

/* The leader of each partition as node i's Metadata names it. Returns the partition count or
 * -1. */
static int leaders_on(int i, int32_t *leaders)
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
    int n = -1;
    if (tl_call(&c, &req, NULL, 0, 5000, &resp, NULL, NULL) == 0 &&
        resp->metadata->n_topics == 1 && resp->metadata->topics[0]->error_code == 0) {
        const Ringlog__TopicMetadata *tm = resp->metadata->topics[0];
        n = (int)tm->n_partitions;
        for (int k = 0; k < n && k < PARTS; k++) {
            leaders[tm->partitions[k]->partition] = tm->partitions[k]->leader;
            if (tm->partitions[k]->n_replicas != N)
                n = -1;
        }
    }
    tl_close(&c);
    return n;
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

/* Node i's committed bytes of partition p from offset 0 up to `end` (malloc'ed, *len). */
static uint8_t *read_all(int i, uint32_t p, uint64_t end, size_t *len)
{
    struct tl_conn c;
    cr_assert_eq(tl_connect(&c, "127.0.0.1", b[i].port, 2000), 0);
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    cr_assert(buf);
    uint64_t off = 0;
    for (uint32_t guard = 0; off < end && guard < 100000; guard++) {
        struct tl_fetch f = {.topic = TOPIC, .partition = p, .offset = off,
                             .max_bytes = 1 << 20};
        struct tl_fetch_result fr;
        int rc = tl_fetch(&c, &f, &fr);
        cr_assert_eq(rc, 0, "fetch %s-%u at %" PRIu64 " from node %d: %s", TOPIC, p, off, i + 1,
                     rl_strerror(rc));
        cr_assert_gt(fr.data_len, 0, "node %d returned nothing at %" PRIu64 " below %" PRIu64,
                     i + 1, off, end);
        /* Whole batches; the next offset is past the last one returned. */
        uint32_t pos = 0;
        for (uint32_t g2 = 0; pos < fr.data_len && g2 < 1000000; g2++) {
            struct batch_header h;
            if (batch_header_decode(fr.data + pos, fr.data_len - pos, &h) ||
                h.batch_len > fr.data_len - pos || h.base_offset >= end)
                break;
            if (n + h.batch_len > cap) {
                cap = (n + h.batch_len) * 2;
                buf = realloc(buf, cap);
                cr_assert(buf);
            }
            memcpy(buf + n, fr.data + pos, h.batch_len);
            n += h.batch_len;
            pos += h.batch_len;
            off = h.base_offset + h.last_offset_delta + 1;
        }
        cr_assert_gt(pos, 0, "node %d: no whole batch at %" PRIu64, i + 1, off);
    }
    tl_close(&c);
    *len = n;
    return buf;
}

struct acks {
    atomic_uint_fast64_t ok, failed;
    atomic_int first_err;
};

static void on_delivery(void *ctx, const struct rl_delivery *d)
{
    struct acks *a = ctx;
    if (d->error == 0) {
        atomic_fetch_add(&a->ok, 1);
    } else {
        atomic_fetch_add(&a->failed, 1);
        int z = 0;
        atomic_compare_exchange_strong(&a->first_err, &z, d->error);
    }
}

/* The leader of partition 0 that every live node names (1..N), or 0 while they disagree (a
 * restarted node names the preferred replica until it hears from the leader). */
static int agreed_leader0(int except)
{
    int leader = 0;
    for (int i = 0; i < N; i++) {
        if (i == except)
            continue;
        int32_t seen[PARTS];
        if (leaders_on(i, seen) != PARTS || seen[0] < 1 || seen[0] > N ||
            (leader && seen[0] != leader))
            return 0;
        leader = seen[0];
    }
    return leader;
}

/* Kills the leader of partition 0 (as every node names it) while records are in flight, waits
 * until the other two name a new one, restarts the killed node and waits until it names the
 * same. Returns the milliseconds from the kill to the new leader. */
static uint64_t kill_leader(void)
{
    int leader = 0;
    for (uint64_t until = tl_now_ms() + 15000; !(leader = agreed_leader0(-1)); usleep(20000))
        cr_assert(tl_now_ms() < until, "the nodes do not agree on a leader of %s-0", TOPIC);
    int victim = leader - 1;
    uint64_t t0 = tl_now_ms();
    tl_broker_kill(&b[victim]);
    uint64_t took = 0;
    for (uint64_t until = t0 + 15000; !took; usleep(20000)) {
        cr_assert(tl_now_ms() < until, "no new leader of %s-0 15 s after node %d was killed",
                  TOPIC, victim + 1);
        int l = agreed_leader0(victim);
        if (l && l != leader)
            took = tl_now_ms() - t0;
    }
    cr_assert_eq(tl_broker_restart(&b[victim], START_MS), 0, "node %d did not restart",
                 victim + 1);
    for (uint64_t until = tl_now_ms() + 15000; !agreed_leader0(-1); usleep(20000))
        cr_assert(tl_now_ms() < until, "restarted node %d does not name %s-0's leader",
                  victim + 1, TOPIC);
    cr_log_info("failover: node %d killed, a new leader of %s-0 named by both others after "
                "%" PRIu64 " ms", victim + 1, TOPIC, took);
    return took;
}

static void send_range(struct rl_producer *p, int from, int to)
{
    for (int i = from; i < to; i++) {
        char key[16], val[48];
        int k = i % KEYS;
        int kl = snprintf(key, sizeof(key), "k%04d", k);
        int vl = snprintf(val, sizeof(val), "%d:%d", k, i / KEYS);
        int rc = rl_producer_send(p, TOPIC, RL_PARTITION_ANY, key, (size_t)kl, val, (size_t)vl,
                                  0, NULL);
        cr_assert_eq(rc, 0, "send %d: %s", i, rl_producer_last_error(p));
    }
}

Test(replication, acknowledged_records_survive_two_leader_kills, .fini = teardown,
     .timeout = 240)
{
    int records = 100000;
    const char *env = getenv("RINGLOG_REPL_RECORDS");
    if (env && atoi(env) > 0)
        records = atoi(env);
    pick_ports();
    for (int i = 0; i < N; i++)
        start_node(i);
    char msg[600] = "";
    /* Refusals that name the numbers: more replicas than brokers, min.insync above the
     * factor. The create retries while the brokers register. */
    int rc = -1;
    for (uint64_t until = tl_now_ms() + 20000; tl_now_ms() < until; usleep(50000)) {
        rc = create_topic(0, PARTS, N + 1, NULL, msg, sizeof(msg));
        if (rc == RL_E_INVALID_REPLICATION && strstr(msg, "hears from 3"))
            break;
    }
    cr_assert_eq(rc, RL_E_INVALID_REPLICATION, "replication factor 4 on 3 brokers: %s (%s)",
                 rl_strerror(rc), msg);
    cr_assert(strstr(msg, "needs 4 live brokers"), "%s", msg);
    rc = create_topic(1, PARTS, N, "4", msg, sizeof(msg));
    cr_assert_eq(rc, RL_E_INVALID_CONFIG, "min.insync.replicas 4 with 3 replicas: %s (%s)",
                 rl_strerror(rc), msg);
    rc = create_topic(1, PARTS, N, "2", msg, sizeof(msg));
    cr_assert_eq(rc, 0, "%s", msg);

    /* Every partition led, as every broker sees it. */
    int32_t l[PARTS];
    for (uint64_t until = tl_now_ms() + 15000;; usleep(20000)) {
        cr_assert(tl_now_ms() < until, "the partitions got no leaders within 15 s");
        bool all = true;
        for (int i = 0; i < N && all; i++)
            all = leaders_on(i, l) == PARTS;
        for (int k = 0; k < PARTS && all; k++)
            all = l[k] >= 1 && l[k] <= N;
        if (all)
            break;
    }
    /* A follower refuses a produce. */
    uint8_t *batch;
    int blen = tl_make_batch(2, "direct", &batch);
    cr_assert_gt(blen, 0);
    struct tl_conn c;
    int follower = l[0] % N; /* node l[0] + 1, 0-based */
    cr_assert_eq(tl_connect(&c, "127.0.0.1", b[follower].port, 2000), 0);
    rc = tl_produce(&c, TOPIC, 0, batch, (uint32_t)blen, -1, NULL);
    cr_assert_eq(rc, RL_E_NOT_LEADER, "produce to follower node %d of %s-0: %s", follower + 1,
                 rl_strerror(rc));
    tl_close(&c);
    free(batch);

    char boot[96], err[512];
    snprintf(boot, sizeof(boot), "127.0.0.1:%u,127.0.0.1:%u,127.0.0.1:%u", ports[0], ports[1],
             ports[2]);
    struct rl_conf *conf = rl_conf_new();
    cr_assert(conf);
    cr_assert_eq(rl_conf_set(conf, "bootstrap.servers", boot, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rl_conf_set(conf, "acks", "all", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rl_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(rl_conf_set(conf, "delivery.timeout.ms", "90000", err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(rl_conf_set(conf, "log.level", "error", err, sizeof(err)), 0, "%s", err);
    static struct acks acks;
    rl_conf_set_delivery_cb(conf, on_delivery, &acks);
    struct rl_producer *p = rl_producer_new(conf, err, sizeof(err));
    cr_assert(p, "%s", err);
    uint64_t t0 = tl_now_ms();
    send_range(p, 0, records / 3);
    kill_leader(); /* records in flight */
    send_range(p, records / 3, 2 * records / 3);
    kill_leader();
    send_range(p, 2 * records / 3, records);
    cr_assert_eq(rl_producer_flush(p, 120000), 0, "flush: %s", rl_producer_last_error(p));
    uint64_t took = tl_now_ms() - t0;
    cr_assert_eq(atomic_load(&acks.failed), 0, "%" PRIu64 " records failed, the first with %s",
                 (uint64_t)atomic_load(&acks.failed), rl_strerror(atomic_load(&acks.first_err)));
    cr_assert_eq(atomic_load(&acks.ok), (uint64_t)records);
    rl_producer_destroy(p, 5000);
    cr_log_info("%d idempotent acks=all records acknowledged in %" PRIu64 " ms through two "
                "leader kills", records, took);

    /* Read back: each record once, each key's records in order, nothing more. */
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
        if (rc < 0 && strstr(rl_consumer_last_error(k), "no leader known"))
            continue; /* a leadership moving (balancing after the restarts): asked again */
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

    /* Every replica catches up, and their committed logs are the same bytes. */
    for (uint32_t part = 0; part < PARTS; part++) {
        int64_t h[N];
        for (uint64_t until = tl_now_ms() + 30000;; usleep(20000)) {
            cr_assert(tl_now_ms() < until, "%s-%u: high watermarks %" PRId64 "/%" PRId64
                      "/%" PRId64 " did not meet within 30 s", TOPIC, part, h[0], h[1], h[2]);
            for (int i = 0; i < N; i++)
                h[i] = hwm_on(i, part);
            if (h[0] > 0 && h[0] == h[1] && h[1] == h[2])
                break;
        }
        size_t len0 = 0;
        uint8_t *log0 = read_all(0, part, (uint64_t)h[0], &len0);
        for (int i = 1; i < N; i++) {
            size_t len = 0;
            uint8_t *log = read_all(i, part, (uint64_t)h[0], &len);
            cr_assert_eq(len, len0, "%s-%u: node %d holds %zu committed bytes, node 1 %zu",
                         TOPIC, part, i + 1, len, len0);
            cr_assert(!memcmp(log, log0, len), "%s-%u: node %d's committed bytes differ from "
                      "node 1's", TOPIC, part, i + 1);
            free(log);
        }
        free(log0);
    }
}
