/*
 * test_repl_groups: a consumer group keeps its committed offsets when its coordinator's broker
 * is SIGKILLed. Three real ringlogd processes on 127.0.0.1 form one cluster; __consumer_offsets
 * is replicated (min(3, brokers) replicas) and the coordinator of a group is the leader of its
 * partition of it. A topic of 3 partitions x 3 replicas holds 3,000 records; one group member
 * consumes and commits every 50 records. Halfway, the broker FindCoordinator names is killed.
 * Checks: FindCoordinator names the leader of the group's offsets partition (before and after
 * the kill, and the new one is another broker); after the kill the member finds the new
 * coordinator and goes on; no record it receives afterwards lies below the offset that was
 * acknowledged as committed for its partition before the kill (the committed offsets survived),
 * and the committed offsets the member reads at its new assignment are at least those; every
 * record of every partition is consumed (nothing skipped); a final commit succeeds and a new
 * member of the group starts exactly at the end.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/ringlog.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_cluster.h"

#define N 3
#define PARTS 3
#define PER_PART 1000
#define START_MS 20000
#define TOPIC "grouped"
#define GROUP "survivors"

static const char *const node_args[] = {"--set", "election.timeout.ms=1000",
                                         "--set", "broker.session.timeout.ms=2000",
                                         "--set", "offsets.topic.num.partitions=4", NULL};
static struct tl_cluster cl;

static void teardown(void)
{
    tl_cluster_finish(&cl);
}

/* FindCoordinator on node i: the node id it names (0 on an error). */
static int coordinator_on(int i)
{
    if (!tl_broker_alive(&cl.b[i]))
        return 0;
    struct tl_conn c;
    if (tl_cluster_connect(&cl, i, &c))
        return 0;
    Ringlog__FindCoordinatorRequest fr = RINGLOG__FIND_COORDINATOR_REQUEST__INIT;
    fr.group_id = GROUP;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_FIND_COORDINATOR;
    req.find_coordinator = &fr;
    Ringlog__Response *resp = NULL;
    int node = 0;
    if (tl_call(&c, &req, NULL, 0, 5000, &resp, NULL, NULL) == 0 && resp->error_code == 0 &&
        resp->body_case == RINGLOG__RESPONSE__BODY_FIND_COORDINATOR)
        node = resp->find_coordinator->node_id;
    tl_close(&c); /* frees the answer (the connection's arena) */
    return node;
}

/* The coordinator every live node names (all the same), or 0 while they disagree. */
static int agreed_coordinator(int except)
{
    int node = 0;
    for (int i = 0; i < N; i++) {
        if (i == except)
            continue;
        int c = coordinator_on(i);
        if (c < 1 || c > N || (node && c != node))
            return 0;
        node = c;
    }
    return node;
}

static void produce_all(void)
{
    struct rl_conf *conf = rl_conf_new();
    char err[512];
    cr_assert_eq(rl_conf_set(conf, "bootstrap.servers", cl.boot, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(rl_conf_set(conf, "acks", "all", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rl_conf_set(conf, "log.level", "error", err, sizeof(err)), 0, "%s", err);
    struct rl_producer *p = rl_producer_new(conf, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    for (int i = 0; i < PARTS * PER_PART; i++) {
        char val[32];
        int vl = snprintf(val, sizeof(val), "v%d", i);
        int rc = rl_producer_send(p, TOPIC, i % PARTS, NULL, 0, val, (size_t)vl, 0, NULL);
        cr_assert_eq(rc, 0, "send %d: %s", i, rl_producer_last_error(p));
    }
    cr_assert_eq(rl_producer_flush(p, 60000), 0, "flush: %s", rl_producer_last_error(p));
    rl_producer_destroy(p, 5000);
    rl_conf_destroy(conf);
}

/* What the first member's rebalance callback saw after the kill. */
static struct {
    bool killed;
    int assigned_after;       /* ASSIGNED events after the kill */
    int64_t floor[PARTS];     /* acknowledged commits before the kill */
    int64_t first[PARTS];     /* first offset polled per partition since the last ASSIGNED */
    int64_t start[PARTS];     /* the position ASSIGNED resolved (the committed offset) */
} rb;

static void on_rebalance(void *ctx, struct rl_consumer *c, enum rl_rebalance_event event,
                         const struct rl_topic_partition *parts, size_t count)
{
    (void)ctx;
    if (event != RL_REBALANCE_ASSIGNED || !rb.killed)
        return;
    rb.assigned_after++;
    for (size_t i = 0; i < count; i++) {
        int p = parts[i].partition;
        if (p < 0 || p >= PARTS)
            continue;
        rb.first[p] = -1;
        rb.start[p] = rl_consumer_position(c, parts[i].topic, p);
    }
}

static struct rl_consumer *member(struct rl_conf **confp)
{
    struct rl_conf *conf = rl_conf_new();
    char err[512];
    const char *kv[][2] = {{"bootstrap.servers", cl.boot}, {"group.id", GROUP},
                           {"enable.auto.commit", "false"}, {"auto.offset.reset", "earliest"},
                           {"session.timeout.ms", "4000"}, {"heartbeat.interval.ms", "300"},
                           {"request.timeout.ms", "3000"}, {"log.level", "error"}};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        cr_assert_eq(rl_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err)), 0, "%s", err);
    rl_conf_set_rebalance_cb(conf, on_rebalance, NULL);
    struct rl_consumer *k = rl_consumer_new(conf, err, sizeof(err));
    cr_assert_not_null(k, "%s", err);
    const char *topics[] = {TOPIC};
    cr_assert_eq(rl_consumer_subscribe(k, topics, 1), 0, "%s", rl_consumer_last_error(k));
    *confp = conf;
    return k;
}

/* Each partition's position (the next offset poll hands out; -1: unknown). */
static void positions_of(struct rl_consumer *k, int64_t *out)
{
    struct rl_consumer_stats st;
    struct rl_partition_stats ps[PARTS];
    for (int p = 0; p < PARTS; p++)
        out[p] = -1;
    int n = rl_consumer_stats(k, &st, sizeof(st), ps, PARTS);
    for (int i = 0; i < n && i < PARTS; i++)
        if (ps[i].partition >= 0 && ps[i].partition < PARTS)
            out[ps[i].partition] = ps[i].position;
}

/* Each partition's committed offset as the member knows it (-1: unknown). */
static void committed_of(struct rl_consumer *k, int64_t *out)
{
    struct rl_consumer_stats st;
    struct rl_partition_stats ps[PARTS];
    for (int p = 0; p < PARTS; p++)
        out[p] = -1;
    int n = rl_consumer_stats(k, &st, sizeof(st), ps, PARTS);
    for (int i = 0; i < n && i < PARTS; i++)
        if (ps[i].partition >= 0 && ps[i].partition < PARTS)
            out[ps[i].partition] = ps[i].committed;
}

Test(repl_groups, committed_offsets_survive_the_coordinators_sigkill, .fini = teardown,
     .timeout = 300)
{
    tl_cluster_init(&cl, &(struct tl_cluster_conf){.nodes = N, .args = node_args,
                                                   .start_ms = START_MS});
    tl_cluster_start_all(&cl);
    char msg[512] = "";
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = TOPIC;
    spec.partitions = PARTS;
    spec.replication_factor = 3;
    /* The brokers register a moment after the controller is elected: retry the creation. */
    int rc = tl_cluster_create_topic(&cl, 0, &spec, msg, sizeof(msg), 100, 20000);
    cr_assert_eq(rc, 0, "create %s: %s (%s)", TOPIC, rl_strerror(rc), msg);
    produce_all();
    cr_log_info("%d records produced to %s", PARTS * PER_PART, TOPIC);

    struct rl_conf *conf;
    struct rl_consumer *k = member(&conf);
    static uint8_t seen[PARTS * PER_PART]; /* by the index the value carries */
    memset(seen, 0, sizeof(seen));
    int64_t acked[PARTS] = {0, 0, 0}; /* committed offsets the coordinator acknowledged */
    int64_t last_off[PARTS] = {0, 0, 0}; /* past the highest offset polled */
    int distinct = 0, polled = 0, coord = 0, victim = -1;
    uint64_t t_kill = 0, t_resumed = 0;
    /* Until every record was seen and, after the kill, the member was assigned again by the
     * new coordinator and committed through it. */
    bool committed_after = false;
    for (uint64_t until = tl_now_ms() + 120000;
         distinct < PARTS * PER_PART || !rb.assigned_after || !committed_after;) {
        cr_assert(tl_now_ms() < until, "consumed %d of %d distinct records in 120 s (last "
                  "error: %s)", distinct, PARTS * PER_PART, rl_consumer_last_error(k));
        struct rl_record r;
        rc = rl_consumer_poll(k, 200, &r);
        if (rc == 1) {
            int v = -1;
            if (r.value && r.value_len > 1 && r.value_len < 16 && r.value[0] == 'v')
                v = atoi((const char *)r.value + 1); /* "v<i>" stops at the value's end */
            cr_assert(r.partition >= 0 && r.partition < PARTS && v >= 0 &&
                      v < PARTS * PER_PART && v % PARTS == r.partition,
                      "record at %d/%" PRId64 " holds %d", r.partition, r.offset, v);
            if (rb.assigned_after && rb.first[r.partition] < 0) {
                rb.first[r.partition] = r.offset;
                cr_assert_geq(r.offset, rb.floor[r.partition],
                              "partition %d restarted at %" PRId64 " after the coordinator's "
                              "kill, below %" PRId64 " which was acknowledged as committed",
                              r.partition, r.offset, rb.floor[r.partition]);
                if (!t_resumed)
                    t_resumed = tl_now_ms();
            }
            if (r.offset + 1 > last_off[r.partition])
                last_off[r.partition] = r.offset + 1;
            distinct += !seen[v];
            seen[v] = 1;
            polled++;
        }
        if (((rc == 1 && polled % 50 == 0) || (rc != 1 && rb.assigned_after)) &&
            rl_consumer_commit(k) == 0) {
            int64_t cm[PARTS];
            committed_of(k, cm);
            for (int p = 0; p < PARTS; p++)
                if (cm[p] > acked[p])
                    acked[p] = cm[p];
            committed_after = rb.assigned_after > 0;
        }
        if (victim < 0 && distinct >= PARTS * PER_PART / 2 && acked[0] + acked[1] + acked[2]) {
            for (uint64_t u = tl_now_ms() + 15000; !(coord = agreed_coordinator(-1));
                 usleep(50000))
                cr_assert(tl_now_ms() < u, "the brokers do not agree on the coordinator");
            victim = coord - 1;
            memcpy(rb.floor, acked, sizeof(acked));
            rb.killed = true;
            cr_log_info("coordinator of %s is node %d; committed %" PRId64 "/%" PRId64 "/%"
                        PRId64 "; killing it", GROUP, coord, acked[0], acked[1], acked[2]);
            t_kill = tl_now_ms();
            tl_broker_kill(&cl.b[victim]);
        }
    }
    cr_assert_geq(victim, 0, "the coordinator was never killed");
    for (int p = 0; p < PARTS; p++) {
        cr_assert_geq(rb.start[p], rb.floor[p], "partition %d: the new coordinator's "
                      "committed offset %" PRId64 " is below %" PRId64 ", acknowledged as "
                      "committed before the kill", p, rb.start[p], rb.floor[p]);
        cr_assert_geq(acked[p], rb.floor[p], "partition %d: committed went back", p);
        for (int o = p; o < PARTS * PER_PART; o += PARTS)
            cr_assert(seen[o], "record %d (partition %d) was skipped", o, p);
    }
    int now_coord = 0;
    for (uint64_t u = tl_now_ms() + 15000;
         (now_coord = agreed_coordinator(victim)) == 0 || now_coord == coord; usleep(50000))
        cr_assert(tl_now_ms() < u, "the live brokers do not name a new coordinator (%d)",
                  now_coord);
    cr_log_info("new coordinator: node %d; the member was assigned again and polled a record "
                "%" PRIu64 " ms after the kill; committed before it %" PRId64 "/%" PRId64 "/%"
                PRId64 ", the new assignment started at %" PRId64 "/%" PRId64 "/%" PRId64,
                now_coord, t_resumed ? t_resumed - t_kill : 0, rb.floor[0], rb.floor[1],
                rb.floor[2], rb.start[0], rb.start[1], rb.start[2]);
    int64_t cm[PARTS] = {-1, -1, -1}, end[PARTS] = {-1, -1, -1};
    for (uint64_t u = tl_now_ms() + 30000;;) {
        struct rl_record r;
        rc = rl_consumer_poll(k, 100, &r); /* records after the last commit come again */
        cr_assert(rc != 1 || (r.partition >= 0 && r.partition < PARTS),
                  "a record of partition %d", r.partition);
        if (rc != 1 && rl_consumer_commit(k) == 0) {
            committed_of(k, cm);
            positions_of(k, end);
            int done = 0;
            for (int p = 0; p < PARTS; p++)
                done += cm[p] == end[p] && cm[p] >= last_off[p];
            if (done == PARTS)
                break;
        }
        cr_assert(tl_now_ms() < u, "the final commit did not reach the positions: committed %"
                  PRId64 "/%" PRId64 "/%" PRId64 ", positions %" PRId64 "/%" PRId64 "/%" PRId64
                  ", polled up to %" PRId64 "/%" PRId64 "/%" PRId64 " (%s)", cm[0], cm[1], cm[2],
                  end[0], end[1], end[2], last_off[0], last_off[1], last_off[2],
                  rl_consumer_last_error(k));
    }
    rl_consumer_close(k);
    rl_consumer_destroy(k);
    rl_conf_destroy(conf);
    /* A new member starts at the committed end: no record is handed out again. */
    k = member(&conf);
    int assigned = 0;
    for (uint64_t u = tl_now_ms() + 20000; assigned < PARTS; usleep(1000)) {
        struct rl_record r;
        rc = rl_consumer_poll(k, 100, &r);
        cr_assert_neq(rc, 1, "a new member got %d/%" PRId64 " again", r.partition, r.offset);
        committed_of(k, cm);
        assigned = 0;
        for (int p = 0; p < PARTS; p++)
            assigned += cm[p] == end[p] && cm[p] >= last_off[p];
        cr_assert(tl_now_ms() < u, "a new member does not see the committed end (%" PRId64
                  "/%" PRId64 "/%" PRId64 ")", cm[0], cm[1], cm[2]);
    }
    rl_consumer_close(k);
    rl_consumer_destroy(k);
    rl_conf_destroy(conf);
    cr_assert_eq(tl_broker_restart(&cl.b[victim], START_MS), 0, "node %d did not restart", coord);
}
