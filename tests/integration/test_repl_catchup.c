/*
 * test_repl_catchup: a follower that fell behind the leader's log start catches up through a
 * snapshot install, and the replication metrics say what happens. Three real ringlogd on
 * 127.0.0.1 (one cluster); one partition with 3 replicas, 16 KiB segments and 64 KiB retention
 * (checked every 200 ms). A follower is SIGKILLed; 512 KiB are produced with acks=all through
 * the leader until retention moved the leader's log start past the killed follower's log end.
 * Checks, on the leader's /metrics: in-sync replicas 2 and a positive lag (records and bytes)
 * for the killed follower while it is down; bytes replicated out at least the bytes produced.
 * After the restart: the follower's log starts exactly at the leader's log start and ends at
 * its high watermark, and its bytes from there are identical to the leader's; the leader then
 * reports 3 in-sync replicas and no lag, and the follower counts the bytes it received.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
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
#define START_MS 20000
#define TOPIC "shrinking"
#define PRODUCE_BYTES (512u << 10)

static const char *const node_args[] = {"--set", "election.timeout.ms=1000",
                                         "--set", "broker.session.timeout.ms=2000",
                                         "--set", "retention.check.interval.ms=200", NULL};
static struct tl_cluster cl;

static void teardown(void)
{
    tl_cluster_finish(&cl);
}

/* Node i's log start and high watermark of partition 0 (-1 when it does not answer). */
static void state_on(int i, int64_t *start, int64_t *hwm)
{
    *start = *hwm = -1;
    struct tl_conn c;
    if (!tl_broker_alive(&cl.b[i]) || tl_cluster_connect(&cl, i, &c))
        return;
    struct tl_fetch f = {.topic = TOPIC, .partition = 0, .max_bytes = 1};
    struct tl_fetch_result fr;
    if (tl_fetch(&c, &f, &fr) == 0 || fr.high_watermark) {
        *start = (int64_t)fr.log_start_offset;
        *hwm = (int64_t)fr.high_watermark;
    }
    tl_close(&c);
}

/* The leader of partition 0 as node i knows it on its /metrics (its role line), 0 if not. */
static int leads(int i)
{
    return tl_cluster_metric(&cl, i, "ringlog_partition_role{topic=\"" TOPIC "\",partition=\"0\","
                        "role=\"leader\"}") == 1;
}

Test(repl_catchup, a_follower_behind_the_log_start_is_installed_and_streamed, .fini = teardown,
     .timeout = 300)
{
    tl_cluster_init(&cl, &(struct tl_cluster_conf){.nodes = N, .args = node_args,
                                                   .start_ms = START_MS});
    tl_cluster_start_all(&cl);
    char msg[512] = "";
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = TOPIC;
    spec.partitions = 1;
    spec.replication_factor = 3;
    Ringlog__ConfigEntry ce[2] = {RINGLOG__CONFIG_ENTRY__INIT, RINGLOG__CONFIG_ENTRY__INIT};
    Ringlog__ConfigEntry *cep[2] = {&ce[0], &ce[1]};
    ce[0].key = "segment.bytes";
    ce[0].value = "16384";
    ce[1].key = "retention.bytes";
    ce[1].value = "65536";
    spec.n_configs = 2;
    spec.configs = cep;
    int rc = tl_cluster_create_topic(&cl, 0, &spec, msg, sizeof(msg), 100, 20000);
    cr_assert_eq(rc, 0, "create %s: %s (%s)", TOPIC, rl_strerror(rc), msg);
    int leader = -1;
    for (uint64_t until = tl_now_ms() + 15000; leader < 0; usleep(50000)) {
        cr_assert(tl_now_ms() < until, "no leader of %s-0 after 15 s", TOPIC);
        for (int i = 0; i < N && leader < 0; i++)
            if (leads(i))
                leader = i;
    }
    int victim = (leader + 1) % N;
    uint8_t *batch = NULL;
    int blen = tl_make_batch_sized(16, 1000, &batch); /* ~16 KiB: a segment each */
    cr_assert_gt(blen, 0);
    struct tl_conn lc;
    cr_assert_eq(tl_cluster_connect(&cl, leader, &lc), 0);
    /* The role metric says leader as soon as it is elected; produce is taken only once its
     * no-op has committed, so the first writes poll (bounded) for that. */
    for (int k = 0; k < 2; k++)
        for (uint64_t until = tl_now_ms() + 10000;; usleep(20000)) {
            int prc = tl_produce(&lc, TOPIC, 0, batch, (uint32_t)blen, -1, NULL);
            if (prc == 0)
                break;
            cr_assert(tl_now_ms() < until, "warm-up produce %d: %s", k, rl_strerror(prc));
        }
    int64_t v_start, v_end, l_start, l_end;
    for (uint64_t until = tl_now_ms() + 10000;; usleep(20000)) {
        state_on(victim, &v_start, &v_end);
        state_on(leader, &l_start, &l_end);
        if (v_end > 0 && v_end == l_end)
            break;
        cr_assert(tl_now_ms() < until, "node %d does not follow (%" PRId64 " vs %" PRId64 ")",
                  victim + 1, v_end, l_end);
    }
    tl_broker_kill(&cl.b[victim]);
    cr_log_info("leader node %d; follower node %d killed with its log at [%" PRId64 ", %" PRId64
                ")", leader + 1, victim + 1, v_start, v_end);
    int64_t sent0 = tl_cluster_metric(&cl, leader, "ringlog_replication_sent_bytes_total");
    uint64_t produced = 0;
    for (uint32_t k = 0; produced < PRODUCE_BYTES && k < 1000; k++) {
        int prc = tl_produce(&lc, TOPIC, 0, batch, (uint32_t)blen, -1, NULL);
        cr_assert_eq(prc, 0, "acks=all produce %u with one follower down: %s", k,
                     rl_strerror(prc));
        produced += (uint64_t)blen;
    }
    char lag_r[160], lag_b[160], isr[160];
    snprintf(lag_r, sizeof(lag_r), "ringlog_partition_follower_lag_records{topic=\"" TOPIC
             "\",partition=\"0\",follower=\"%d\"}", victim + 1);
    snprintf(lag_b, sizeof(lag_b), "ringlog_partition_follower_lag_bytes{topic=\"" TOPIC
             "\",partition=\"0\",follower=\"%d\"}", victim + 1);
    snprintf(isr, sizeof(isr), "ringlog_partition_in_sync_replicas{topic=\"" TOPIC
             "\",partition=\"0\"}");
    int64_t lr = tl_cluster_metric(&cl, leader, lag_r), lb = tl_cluster_metric(&cl, leader, lag_b);
    cr_assert_geq(lr, 16 * 32, "lag of the stopped follower: %" PRId64 " records", lr);
    cr_assert_gt(lb, 0, "lag of the stopped follower: %" PRId64 " bytes", lb);
    int64_t sent = tl_cluster_metric(&cl, leader, "ringlog_replication_sent_bytes_total") - sent0;
    cr_assert_geq(sent, (int64_t)produced, "leader replicated %" PRId64 " bytes out for %"
                  PRIu64 " produced", sent, produced);
    for (uint64_t until = tl_now_ms() + 10000; tl_cluster_metric(&cl, leader, isr) != 2;
         usleep(50000))
        cr_assert(tl_now_ms() < until, "the leader does not count 2 in-sync replicas");
    cr_log_info("follower down: lag %" PRId64 " records, ~%" PRId64 " bytes; leader sent %"
                PRId64 " bytes for %" PRIu64 " produced", lr, lb, sent, produced);
    for (uint64_t until = tl_now_ms() + 15000;; usleep(50000)) {
        state_on(leader, &l_start, &l_end);
        if (l_start > v_end)
            break;
        cr_assert(tl_now_ms() < until, "retention did not move the log start past %" PRId64
                  " (it is %" PRId64 ")", v_end, l_start);
    }
    cr_assert_eq(tl_broker_restart(&cl.b[victim], START_MS), 0, "node %d did not restart",
                 victim + 1);
    for (uint64_t until = tl_now_ms() + 30000;; usleep(50000)) {
        state_on(leader, &l_start, &l_end);
        state_on(victim, &v_start, &v_end);
        if (v_end == l_end && v_start == l_start)
            break;
        cr_assert(tl_now_ms() < until, "node %d did not catch up: [%" PRId64 ", %" PRId64
                  ") vs the leader's [%" PRId64 ", %" PRId64 ")", victim + 1, v_start, v_end,
                  l_start, l_end);
    }
    size_t ln, vn;
    uint8_t *lb_bytes = tl_cluster_read_log(&cl, leader, TOPIC, 0, (uint64_t)l_start,
                                            (uint64_t)l_end, &ln);
    uint8_t *vb_bytes = tl_cluster_read_log(&cl, victim, TOPIC, 0, (uint64_t)l_start,
                                            (uint64_t)l_end, &vn);
    cr_assert_gt(ln, 0);
    cr_assert_eq(ln, vn, "leader holds %zu bytes from %" PRId64 ", follower %zu", ln, l_start,
                 vn);
    cr_assert_eq(memcmp(lb_bytes, vb_bytes, ln), 0, "the caught-up log differs from the leader's");
    free(lb_bytes);
    free(vb_bytes);
    for (uint64_t until = tl_now_ms() + 10000;
         tl_cluster_metric(&cl, leader, isr) != 3 || tl_cluster_metric(&cl, leader, lag_r) != 0;
         usleep(50000))
        cr_assert(tl_now_ms() < until, "the leader does not count the follower in sync again");
    int64_t recv = tl_cluster_metric(&cl, victim, "ringlog_replication_received_bytes_total");
    cr_assert_geq(recv, (int64_t)ln, "the follower counts %" PRId64 " bytes received for %zu "
                  "caught up", recv, ln);
    cr_log_info("caught up: follower log [%" PRId64 ", %" PRId64 ") = the leader's, %zu bytes "
                "identical; it received %" PRId64 " bytes", v_start, v_end, ln, recv);
    tl_close(&lc);
    free(batch);
}
