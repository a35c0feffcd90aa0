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
#include <netinet/in.h>
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
#define START_MS 20000
#define TOPIC "shrinking"
#define PRODUCE_BYTES (512u << 10)

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
                          "--set", "broker.session.timeout.ms=2000",
                          "--set", "retention.check.interval.ms=200", NULL};
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

/* Node i's log start and high watermark of partition 0 (-1 when it does not answer). */
static void state_on(int i, int64_t *start, int64_t *hwm)
{
    *start = *hwm = -1;
    struct tl_conn c;
    if (!tl_broker_alive(&b[i]) || tl_connect(&c, "127.0.0.1", b[i].port, 2000))
        return;
    struct tl_fetch f = {.topic = TOPIC, .partition = 0, .max_bytes = 1};
    struct tl_fetch_result fr;
    if (tl_fetch(&c, &f, &fr) == 0 || fr.high_watermark) {
        *start = (int64_t)fr.log_start_offset;
        *hwm = (int64_t)fr.high_watermark;
    }
    tl_close(&c);
}

/* The value of a /metrics line starting with `prefix` on node i (-1 when absent). */
static int64_t metric_on(int i, const char *prefix)
{
    static char body[1 << 20];
    if (tl_http_get("127.0.0.1", b[i].http_port, "/metrics", body, sizeof(body), 3000) != 200)
        return -1;
    size_t pl = strlen(prefix);
    for (const char *s = body; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL)
        if (!strncmp(s, prefix, pl) && s[pl] == ' ')
            return strtoll(s + pl + 1, NULL, 10);
    return -1;
}

/* The leader of partition 0 as node i knows it on its /metrics (its role line), 0 if not. */
static int leads(int i)
{
    return metric_on(i, "ringlog_partition_role{topic=\"" TOPIC "\",partition=\"0\","
                        "role=\"leader\"}") == 1;
}

/* Node i's bytes of partition 0 from `from` to `end` (malloc'ed, *len). */
static uint8_t *read_range(int i, uint64_t from, uint64_t end, size_t *len)
{
    struct tl_conn c;
    cr_assert_eq(tl_connect(&c, "127.0.0.1", b[i].port, 2000), 0);
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    cr_assert(buf);
    uint64_t off = from;
    for (uint32_t guard = 0; off < end && guard < 100000; guard++) {
        struct tl_fetch f = {.topic = TOPIC, .partition = 0, .offset = off,
                             .max_bytes = 1 << 20};
        struct tl_fetch_result fr;
        int rc = tl_fetch(&c, &f, &fr);
        cr_assert_eq(rc, 0, "fetch at %" PRIu64 " from node %d: %s", off, i + 1,
                     rl_strerror(rc));
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

Test(repl_catchup, a_follower_behind_the_log_start_is_installed_and_streamed, .fini = teardown,
     .timeout = 300)
{
    pick_ports();
    for (int i = 0; i < N; i++)
        start_node(i);
    char msg[512] = "";
    int rc = RL_E_BROKER_UNAVAILABLE;
    for (uint64_t until = tl_now_ms() + 20000; rc && tl_now_ms() < until; usleep(100000)) {
        struct tl_conn c;
        if (tl_connect(&c, "127.0.0.1", b[0].port, 2000))
            continue;
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
        rc = tl_create_topic_spec(&c, &spec, msg, sizeof(msg));
        tl_close(&c);
    }
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
    cr_assert_eq(tl_connect(&lc, "127.0.0.1", b[leader].port, 2000), 0);
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
    tl_broker_kill(&b[victim]);
    cr_log_info("leader node %d; follower node %d killed with its log at [%" PRId64 ", %" PRId64
                ")", leader + 1, victim + 1, v_start, v_end);
    int64_t sent0 = metric_on(leader, "ringlog_replication_sent_bytes_total");
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
    int64_t lr = metric_on(leader, lag_r), lb = metric_on(leader, lag_b);
    cr_assert_geq(lr, 16 * 32, "lag of the stopped follower: %" PRId64 " records", lr);
    cr_assert_gt(lb, 0, "lag of the stopped follower: %" PRId64 " bytes", lb);
    int64_t sent = metric_on(leader, "ringlog_replication_sent_bytes_total") - sent0;
    cr_assert_geq(sent, (int64_t)produced, "leader replicated %" PRId64 " bytes out for %"
                  PRIu64 " produced", sent, produced);
    for (uint64_t until = tl_now_ms() + 10000; metric_on(leader, isr) != 2; usleep(50000))
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
    cr_assert_eq(tl_broker_restart(&b[victim], START_MS), 0, "node %d did not restart",
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
    uint8_t *lb_bytes = read_range(leader, (uint64_t)l_start, (uint64_t)l_end, &ln);
    uint8_t *vb_bytes = read_range(victim, (uint64_t)l_start, (uint64_t)l_end, &vn);
    cr_assert_gt(ln, 0);
    cr_assert_eq(ln, vn, "leader holds %zu bytes from %" PRId64 ", follower %zu", ln, l_start,
                 vn);
    cr_assert_eq(memcmp(lb_bytes, vb_bytes, ln), 0, "the caught-up log differs from the leader's");
    free(lb_bytes);
    free(vb_bytes);
    for (uint64_t until = tl_now_ms() + 10000;
         metric_on(leader, isr) != 3 || metric_on(leader, lag_r) != 0; usleep(50000))
        cr_assert(tl_now_ms() < until, "the leader does not count the follower in sync again");
    int64_t recv = metric_on(victim, "ringlog_replication_received_bytes_total");
    cr_assert_geq(recv, (int64_t)ln, "the follower counts %" PRId64 " bytes received for %zu "
                  "caught up", recv, ln);
    cr_log_info("caught up: follower log [%" PRId64 ", %" PRId64 ") = the leader's, %zu bytes "
                "identical; it received %" PRId64 " bytes", v_start, v_end, ln, recv);
    tl_close(&lc);
    free(batch);
}
