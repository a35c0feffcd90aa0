/*
 * test_replication: replicated partitions on three real ringlogd processes on 127.0.0.1 (one
 * cluster, --voters). A topic of 6 partitions with 3 replicas each; libringlog writes keyed,
 * idempotent acks=all records while the leader of partition 0 is SIGKILLed twice (each time
 * while records are in flight; the killed node restarts once another replica leads). Checks:
 * every record is acknowledged; a consumer reads every one back exactly once, each key's
 * records in the order they were sent, and nothing more; every replica's high watermark reaches
 * the leader's (the killed nodes caught up) and the committed prefix of every partition is
 * byte for byte the same on all three; a produce sent to a follower gets NOT_LEADER; an
 * idempotent batch whose producer id lies past every recorded id block gets the retriable
 * PRODUCER_ID_NOT_YET_KNOWN; an epoch bumped on one broker can be bumped again on another; a
 * replication factor above the brokers and min.insync.replicas above the factor are refused.
 * Failover times (SIGKILL to the first new leader in every live broker's Metadata) are printed.
 * RINGLOG_REPL_RECORDS=N sets the record count (default 100000).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/ringlog.h"
#include "common/batch.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_cluster.h"

#define N 3
#define PARTS 6
#define KEYS 600
#define START_MS 20000
#define TOPIC "replicated"
#define REFUSALS "refusals" /* a topic for the produces that must be refused */

static const char *const node_args[] = {"--set", "election.timeout.ms=1000",
                                         "--set", "broker.session.timeout.ms=2000", NULL};
static struct tl_cluster cl;

static void teardown(void)
{
    tl_cluster_finish(&cl);
}

static int create_topic(int i, const char *name, int32_t partitions, int32_t rf,
                        const char *insync, char *msg, size_t cap)
{
    struct tl_conn c;
    int rc = tl_cluster_connect(&cl, i, &c);
    if (rc)
        return rc;
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = (char *)name;
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

/* The leader of partition 0 that every live node names (1..N), or 0 while they disagree (a
 * restarted node names the preferred replica until it hears from the leader). */
static int agreed_leader0(int except)
{
    return tl_cluster_agreed_leader(&cl, TOPIC, PARTS, 0, except);
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
    tl_broker_kill(&cl.b[victim]);
    uint64_t took = 0;
    for (uint64_t until = t0 + 15000; !took; usleep(20000)) {
        cr_assert(tl_now_ms() < until, "no new leader of %s-0 15 s after node %d was killed",
                  TOPIC, victim + 1);
        int l = agreed_leader0(victim);
        if (l && l != leader)
            took = tl_now_ms() - t0;
    }
    cr_assert_eq(tl_broker_restart(&cl.b[victim], START_MS), 0, "node %d did not restart",
                 victim + 1);
    for (uint64_t until = tl_now_ms() + 15000; !agreed_leader0(-1); usleep(20000))
        cr_assert(tl_now_ms() < until, "restarted node %d does not name %s-0's leader",
                  victim + 1, TOPIC);
    cr_log_info("failover: node %d killed, a new leader of %s-0 named by both others after "
                "%" PRIu64 " ms", victim + 1, TOPIC, took);
    return took;
}

/* A follower of REFUSALS-0 refuses a produce with NOT_LEADER. A produce another node takes
 * means that node leads now (balancing moved it): asked again of a follower of the leader named
 * then, bounded by 15 s. */
static void follower_refuses_a_produce(void)
{
    uint8_t *batch;
    int blen = tl_make_batch(2, "direct", &batch);
    cr_assert_gt(blen, 0);
    struct tl_conn c;
    int32_t leader[1];
    int rc = 0;
    for (uint64_t until = tl_now_ms() + 15000; rc != RL_E_NOT_LEADER; usleep(50000)) {
        cr_assert(tl_now_ms() < until, "no follower of %s-0 refused a produce: %s", REFUSALS,
                  rl_strerror(rc));
        tl_cluster_wait_leaders(&cl, REFUSALS, 1, N, leader, 15000);
        int follower = leader[0] % N; /* node leader[0] + 1, 0-based */
        cr_assert_eq(tl_cluster_connect(&cl, follower, &c), 0);
        rc = tl_produce(&c, REFUSALS, 0, batch, (uint32_t)blen, -1, NULL);
        tl_close(&c);
        cr_assert(rc == 0 || rc == RL_E_NOT_LEADER, "produce to follower node %d of %s-0: %s",
                  follower + 1, REFUSALS, rl_strerror(rc));
    }
    free(batch);
}

/* In a cluster a producer id past every block the leader has seen recorded may come from
 * another broker whose block this one has not applied yet: a retriable answer, never the gap
 * (UNKNOWN_PRODUCER_ID) that would make a producer restart its sequences and write a batch
 * another leader took a second time. */
static void an_id_past_the_known_blocks_is_retriable(void)
{
    struct batch_builder *bb = batch_builder_create(4096, BATCH_CODEC_NONE, 0);
    cr_assert(bb);
    batch_builder_reset(bb, (int64_t)1 << 40, 0, 0);
    struct batch_record_in rec = {.value = "v", .value_len = 1, .timestamp = 1000};
    cr_assert_eq(batch_builder_add(bb, &rec), 0);
    const uint8_t *idem;
    int blen = batch_builder_finish(bb, &idem);
    cr_assert_gt(blen, 0);
    struct tl_conn c;
    int32_t leader[1];
    int rc = RL_E_NOT_LEADER; /* asked again where leadership moved meanwhile (balancing) */
    for (uint64_t until = tl_now_ms() + 15000; rc == RL_E_NOT_LEADER; usleep(50000)) {
        cr_assert(tl_now_ms() < until, "%s-0 has no stable leader", REFUSALS);
        tl_cluster_wait_leaders(&cl, REFUSALS, 1, N, leader, 15000);
        cr_assert_eq(tl_cluster_connect(&cl, leader[0] - 1, &c), 0);
        rc = tl_produce(&c, REFUSALS, 0, idem, (uint32_t)blen, -1, NULL);
        tl_close(&c);
    }
    cr_assert_eq(rc, RL_E_PRODUCER_ID_NOT_YET_KNOWN, "an idempotent batch of an id past every "
                 "recorded block, to leader node %d of %s-0: %s", leader[0], REFUSALS,
                 rl_strerror(rc));
    batch_builder_destroy(bb);
}

/* Each broker knows only the epochs it handed out: an id from node 1, bumped on node 2, then
 * bumped on node 1 again (which knows only epoch 0) goes on to epoch 2. */
static void an_epoch_bumped_elsewhere_bumps_again(void)
{
    struct tl_conn c1, c2;
    cr_assert_eq(tl_cluster_connect(&cl, 0, &c1), 0);
    cr_assert_eq(tl_cluster_connect(&cl, 1, &c2), 0);
    int64_t pid = -1;
    int16_t epoch = -1;
    cr_assert_eq(tl_init_producer_id(&c1, -1, 0, &pid, &epoch), 0);
    cr_assert_eq(epoch, 0);
    int rc = RL_E_PRODUCER_ID_NOT_YET_KNOWN; /* until node 2 applied node 1's block of ids */
    for (uint64_t until = tl_now_ms() + 15000; rc == RL_E_PRODUCER_ID_NOT_YET_KNOWN;
         usleep(20000)) {
        cr_assert(tl_now_ms() < until, "node 2 never learnt producer id %lld", (long long)pid);
        rc = tl_init_producer_id(&c2, pid, 0, NULL, &epoch);
    }
    cr_assert_eq(rc, 0, "bump of producer %lld on node 2: %s", (long long)pid, rl_strerror(rc));
    cr_assert_eq(epoch, 1);
    rc = tl_init_producer_id(&c1, pid, 1, NULL, &epoch);
    cr_assert_eq(rc, 0, "bump of producer %lld epoch 1 (from node 2) on node 1: %s",
                 (long long)pid, rl_strerror(rc));
    cr_assert_eq(epoch, 2);
    tl_close(&c1);
    tl_close(&c2);
}

static void send_range(struct rl_producer *p, int from, int to)
{
    for (int i = from; i < to; i++) {
        int rc = tl_cluster_keyed_send(p, TOPIC, i, KEYS);
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
    tl_cluster_init(&cl, &(struct tl_cluster_conf){.nodes = N, .args = node_args,
                                                   .start_ms = START_MS});
    tl_cluster_start_all(&cl);
    char msg[600] = "";
    /* Refusals that name the numbers: more replicas than brokers, min.insync above the
     * factor. The create retries while the brokers register. */
    int rc = -1;
    for (uint64_t until = tl_now_ms() + 20000; tl_now_ms() < until; usleep(50000)) {
        rc = create_topic(0, TOPIC, PARTS, N + 1, NULL, msg, sizeof(msg));
        if (rc == RL_E_INVALID_REPLICATION && strstr(msg, "hears from 3"))
            break;
    }
    cr_assert_eq(rc, RL_E_INVALID_REPLICATION, "replication factor 4 on 3 brokers: %s (%s)",
                 rl_strerror(rc), msg);
    cr_assert(strstr(msg, "needs 4 live brokers"), "%s", msg);
    rc = create_topic(1, TOPIC, PARTS, N, "4", msg, sizeof(msg));
    cr_assert_eq(rc, RL_E_INVALID_CONFIG, "min.insync.replicas 4 with 3 replicas: %s (%s)",
                 rl_strerror(rc), msg);
    rc = create_topic(1, TOPIC, PARTS, N, "2", msg, sizeof(msg));
    cr_assert_eq(rc, 0, "%s", msg);
    /* The refusals below go to a topic of their own: one a leadership move let through (the
     * follower asked had just become the leader) cannot add records to the one read back. */
    rc = create_topic(1, REFUSALS, 1, N, NULL, msg, sizeof(msg));
    cr_assert_eq(rc, 0, "%s", msg);

    /* Every partition led, as every broker sees it. */
    tl_cluster_wait_leaders(&cl, TOPIC, PARTS, N, NULL, 15000);
    follower_refuses_a_produce();
    an_id_past_the_known_blocks_is_retriable();
    an_epoch_bumped_elsewhere_bumps_again();

    char err[512];
    struct rl_conf *conf = rl_conf_new();
    cr_assert(conf);
    cr_assert_eq(rl_conf_set(conf, "bootstrap.servers", cl.boot, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rl_conf_set(conf, "acks", "all", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rl_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(rl_conf_set(conf, "delivery.timeout.ms", "90000", err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(rl_conf_set(conf, "log.level", "error", err, sizeof(err)), 0, "%s", err);
    static struct tl_cluster_acks acks;
    rl_conf_set_delivery_cb(conf, tl_cluster_acks_on_delivery, &acks);
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
    tl_cluster_acks_expect(&acks, records);
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
        tl_cluster_keyed_expect_next(next, KEYS, &r);
        total++;
    }
    struct rl_record r;
    cr_assert_eq(rl_consumer_poll(k, 500, &r), 0, "a record beyond the %d written", records);
    free(next);
    rl_consumer_destroy(k);
    rl_conf_destroy(conf);

    /* Every replica catches up, and their committed logs are the same bytes. */
    static const int all[N] = {0, 1, 2};
    for (uint32_t part = 0; part < PARTS; part++)
        tl_cluster_expect_same_log(&cl, TOPIC, part, all, N);
}
