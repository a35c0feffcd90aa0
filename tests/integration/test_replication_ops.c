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
 *
 * And on a cluster of its own: a produce reaching a leader while it hands its leadership over
 * (SIGTERM, the followers paused with SIGSTOP so the transfer stays under way) is answered
 * NOT_LEADER, which clients retry on the next leader, never the Raft core's own refusal.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/ringlog.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_cluster.h"
#include "tests/lib/tl_load.h"

#define N 3
#define PARTS 6
#define KEYS 600
#define START_MS 20000
#define TOPIC "ops"

static const char *const node_args[] = {"--set", "election.timeout.ms=3000",
                                         "--set", "broker.session.timeout.ms=6000", NULL};
static struct tl_cluster cl;

static void teardown(void)
{
    for (int i = 0; i < cl.n; i++)
        if (cl.b[i].pid > 0)
            kill(cl.b[i].pid, SIGCONT); /* a node a test paused */
    tl_cluster_finish(&cl);
}

/* Node i's Metadata: leader and preferred replica (first of the placement) of every
 * partition. Returns 0, or -1 when it does not answer with all of them. */
static int view_of(int i, int32_t *leaders, int32_t *preferred)
{
    if (!tl_broker_alive(&cl.b[i]))
        return -1;
    struct tl_conn c;
    Ringlog__MetadataResponse *md;
    if (tl_cluster_metadata(&cl, i, &c, TOPIC, &md))
        return -1;
    int rc = -1;
    if (md->n_topics == 1 && md->topics[0]->error_code == 0 &&
        md->topics[0]->n_partitions == PARTS) {
        const Ringlog__TopicMetadata *tm = md->topics[0];
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
        if (!tl_broker_alive(&cl.b[i]))
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

/* Polls until node i's high watermark of every partition reaches what another node reports
 * now. */
static void wait_caught_up(int i)
{
    for (uint32_t p = 0; p < PARTS; p++) {
        int64_t target = -1;
        for (int j = 0; j < N && target < 0; j++)
            if (j != i)
                target = tl_cluster_hwm(&cl, j, TOPIC, p);
        cr_assert_geq(target, 0, "no other node reports %s-%u's high watermark", TOPIC, p);
        for (uint64_t until = tl_now_ms() + 30000; tl_cluster_hwm(&cl, i, TOPIC, p) < target;
             usleep(20000))
            cr_assert(tl_now_ms() < until, "node %d did not catch up on %s-%u to %" PRId64
                      " within 30 s", i + 1, TOPIC, p, target);
    }
}

/* The load: about 2,000 keyed records a second. */
static struct tl_load load;
static const struct tl_load_conf load_conf = {
    .topic = TOPIC, .partitions = PARTS, .keys = KEYS, .pace_every = 10, .pace_us = 5000,
    .delivery_timeout_ms = 120000, .retry_backoff_ms = 20, .retry_backoff_max_ms = 200};

Test(replication_ops, rolling_restart_and_preferred_leaders, .fini = teardown, .timeout = 300)
{
    uint64_t max_stall = 1500;
    const char *env = getenv("RINGLOG_OPS_MAX_STALL_MS");
    if (env && atoi(env) > 0)
        max_stall = (uint64_t)atoi(env);
    tl_cluster_init(&cl, &(struct tl_cluster_conf){.nodes = N, .args = node_args,
                                                   .start_ms = START_MS});
    tl_cluster_start_all(&cl);
    char msg[600] = "";
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = TOPIC;
    spec.partitions = PARTS;
    spec.replication_factor = N;
    int rc = tl_cluster_create_topic(&cl, 0, &spec, msg, sizeof(msg), 50, 20000);
    cr_assert_eq(rc, 0, "create %s: %s (%s)", TOPIC, rl_strerror(rc), msg);
    wait_preferred_leaders(30000, "after creation");

    tl_load_start(&load, cl.boot, &load_conf);
    tl_load_wait_acks(&load, 2000, "before the restarts");

    /* Rolling restart. */
    uint64_t worst = 0;
    for (int i = 0; i < N; i++) {
        tl_load_gaps_reset(&load);
        uint64_t t0 = tl_now_ms();
        int st = tl_broker_stop(&cl.b[i], SIGTERM, 30000);
        cr_assert_eq(st, 0, "node %d: exit status %d after SIGTERM", i + 1, st);
        uint64_t stopped = tl_now_ms() - t0;
        cr_assert(tl_broker_log_has(&cl.b[i], "handing leadership"), "node %d did not hand off",
                  i + 1);
        cr_assert_eq(tl_broker_restart(&cl.b[i], START_MS), 0, "node %d did not restart", i + 1);
        wait_caught_up(i);
        wait_preferred_leaders(30000, "after a restart");
        tl_load_wait_acks(&load, 500, "after a restart");
        int part = -1;
        uint64_t stall = tl_load_longest_gap(&load, &part);
        cr_log_info("rolling restart: node %d stopped in %" PRIu64 " ms, back and leading its "
                    "preferred partitions after %" PRIu64 " ms; longest acknowledgement stall "
                    "%" PRIu64 " ms (%s-%d)", i + 1, stopped, tl_now_ms() - t0, stall, TOPIC,
                    part);
        fprintf(stderr, "rolling restart node %d: stopped in %" PRIu64 " ms; longest ack "
                "stall %" PRIu64 " ms (%s-%d), from %" PRIu64 " ms after the SIGTERM\n", i + 1,
                stopped, stall, TOPIC, part, part >= 0 ? tl_load_gap_began(&load, part) : 0);
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
    tl_broker_kill(&cl.b[victim]);
    for (uint64_t until = tl_now_ms() + 30000;; usleep(50000)) {
        cr_assert(tl_now_ms() < until, "no new leader of %s-0 after node %d was killed", TOPIC,
                  victim + 1);
        if (agreed(l, p) && l[0] != victim + 1)
            break;
    }
    cr_assert_eq(tl_broker_restart(&cl.b[victim], START_MS), 0);
    uint64_t t1 = tl_now_ms();
    wait_caught_up(victim);
    wait_preferred_leaders(30000, "after a kill");
    cr_log_info("node %d killed and restarted: leads its preferred partitions again %" PRIu64
                " ms after its restart", victim + 1, tl_now_ms() - t1);
    tl_load_wait_acks(&load, 500, "after the kill");

    int records = tl_load_stop(&load);
    fprintf(stderr, "rolling restart: %d records, worst acknowledgement stall %" PRIu64 " ms\n",
            records, worst);

    struct rl_consumer *k = tl_load_reader_new(&load);
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
        tl_cluster_keyed_expect_next(next, KEYS, &r);
        total++;
    }
    struct rl_record r;
    cr_assert_eq(rl_consumer_poll(k, 500, &r), 0, "a record beyond the %d written", records);
    free(next);
    rl_consumer_destroy(k);
}

Test(replication_ops, produce_during_handoff_is_redirected, .fini = teardown, .timeout = 120)
{
    tl_cluster_init(&cl, &(struct tl_cluster_conf){.nodes = N, .args = node_args,
                                                   .start_ms = START_MS});
    tl_cluster_start_all(&cl);
    char msg[600] = "";
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = "handoff";
    spec.partitions = 1;
    spec.replication_factor = N;
    int rc = tl_cluster_create_topic(&cl, 0, &spec, msg, sizeof(msg), 50, 20000);
    cr_assert_eq(rc, 0, "create handoff: %s (%s)", rl_strerror(rc), msg);
    uint8_t *batch = NULL;
    int len = tl_make_batch(1, "handoff", &batch);
    cr_assert_gt(len, 0);
    int64_t base = -1;
    /* The leader named is asked again where leadership moved meanwhile (balancing). */
    struct tl_conn c;
    int l = -1;
    rc = RL_E_NOT_LEADER;
    for (uint64_t until = tl_now_ms() + 30000; rc == RL_E_NOT_LEADER; usleep(50000)) {
        cr_assert(tl_now_ms() < until, "handoff-0 has no stable leader");
        if (l >= 0)
            tl_close(&c);
        int32_t leader;
        tl_cluster_wait_leaders(&cl, "handoff", 1, N, &leader, 30000);
        l = leader - 1;
        cr_assert_eq(tl_cluster_connect(&cl, l, &c), 0);
        rc = tl_produce(&c, "handoff", 0, batch, (uint32_t)len, -1, &base);
    }
    cr_assert_eq(rc, 0, "produce before the hand-off: %s", rl_strerror(rc));

    /* Paused followers never take over, so the leader's transfer stays under way (until the
     * election timeout, 3 s, well past the produce below); they still count as in sync. */
    for (int i = 0; i < N; i++)
        if (i != l)
            cr_assert_eq(kill(cl.b[i].pid, SIGSTOP), 0);
    cr_assert_eq(kill(cl.b[l].pid, SIGTERM), 0);
    for (uint64_t until = tl_now_ms() + 2000; !tl_broker_log_has(&cl.b[l], "handing leadership");
         usleep(10000))
        cr_assert(tl_now_ms() < until, "node %d does not hand its leadership over", l + 1);
    rc = tl_produce(&c, "handoff", 0, batch, (uint32_t)len, -1, &base);
    cr_assert_eq(rc, RL_E_NOT_LEADER, "a produce during the hand-off was answered %d (%s), "
                 "not NOT_LEADER: clients would not retry it on the next leader", rc,
                 rl_strerror(rc));
    tl_close(&c);
    free(batch);
    for (int i = 0; i < N; i++)
        if (i != l)
            cr_assert_eq(kill(cl.b[i].pid, SIGCONT), 0);
}
