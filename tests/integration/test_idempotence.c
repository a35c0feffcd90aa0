/*
 * test_idempotence: the broker side of idempotent producers through the wire, against real
 * ringlogd processes: InitProducerId (ids never reused across restarts, epoch bumps fence),
 * duplicates answered with the original offsets and not appended (also pipelined, and after
 * SIGKILL + restart from the rebuilt state, with and without snapshots), sequence gaps and bad
 * fields rejected with their documented errors.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

static struct tl_broker broker;
static struct tl_conn conn;

static void start_with(const char *const *args)
{
    int rc = tl_broker_start(&broker, args, 20000);
    cr_assert_eq(rc, 0, "ringlogd did not start: %s", rl_strerror(rc));
    cr_assert_eq(tl_connect(&conn, broker.host, broker.port, 5000), 0);
}

static void setup(void)
{
    start_with(NULL);
}

static void teardown(void)
{
    tl_close(&conn);
    int st = tl_broker_finish(&broker, 20000);
    cr_expect_eq(st, 0, "broker exit status %d", st);
}

static void restart_after_kill(void)
{
    tl_close(&conn);
    tl_broker_kill(&broker);
    int rc = tl_broker_restart(&broker, 20000);
    cr_assert_eq(rc, 0, "restart failed: %s", rl_strerror(rc));
    cr_assert_eq(tl_connect(&conn, broker.host, broker.port, 5000), 0);
}

/* InitProducerId; returns the response code. */
static int init_pid(struct tl_conn *c, int64_t pid, int32_t epoch, int64_t *out_pid,
                    int16_t *out_epoch)
{
    int rc = tl_init_producer_id(c, pid, epoch, out_pid, out_epoch);
    cr_assert(rc >= 0 || rc <= -5000, "InitProducerId transport: %s", rl_strerror(rc));
    return rc;
}

/* A batch of `count` records "<seq>" from (pid, epoch) starting at seq. Caller frees. */
static int idem_batch(int64_t pid, int16_t epoch, int32_t seq, uint32_t count, uint8_t **out)
{
    struct batch_builder *b = batch_builder_create(1 << 20, BATCH_CODEC_NONE, 0);
    cr_assert(b);
    batch_builder_reset(b, pid, epoch, seq);
    for (uint32_t i = 0; i < count; i++) {
        char v[32];
        int n = snprintf(v, sizeof(v), "r%d", seq + (int32_t)i);
        struct batch_record_in rec = {.value = v, .value_len = (size_t)n, .timestamp = 1000};
        cr_assert_eq(batch_builder_add(b, &rec), 0);
    }
    const uint8_t *p;
    int len = batch_builder_finish(b, &p);
    cr_assert_gt(len, 0);
    *out = malloc((size_t)len);
    memcpy(*out, p, (size_t)len);
    batch_builder_destroy(b);
    return len;
}

static int produce_idem(struct tl_conn *c, const char *topic, uint32_t part, int64_t pid,
                        int16_t epoch, int32_t seq, uint32_t count, int64_t *base)
{
    uint8_t *b;
    int len = idem_batch(pid, epoch, seq, count, &b);
    int rc = tl_produce(c, topic, part, b, (uint32_t)len, 1, base);
    free(b);
    return rc;
}

/* Sends a produce without waiting; returns the correlation id. */
static int64_t send_produce(struct tl_conn *c, const char *topic, uint32_t part,
                            const uint8_t *data, uint32_t len, int32_t acks)
{
    int64_t corr = tl_send_produce(c, topic, part, data, len, acks);
    cr_assert_geq(corr, 0);
    return corr;
}

static int recv_produce(struct tl_conn *c, int64_t *base)
{
    Ringlog__Response *resp;
    int rc = tl_recv(c, 10000, &resp, NULL, NULL);
    cr_assert_eq(rc, 0, "recv: %s", rl_strerror(rc));
    if (resp->error_code)
        return resp->error_code;
    Ringlog__ProducePartitionResult *res = resp->produce->topics[0]->partitions[0];
    *base = res->base_offset;
    return res->error_code;
}

/* A counter or gauge from /metrics (-1 when absent). */
static long long metric(const char *name)
{
    static char body[1 << 17];
    cr_assert_eq(tl_http_get(broker.host, broker.http_port, "/metrics", body, sizeof(body),
                             5000), 200);
    char key[160];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *m = strstr(body, key);
    return m ? atoll(m + strlen(key)) : -1;
}

static int64_t log_end(const char *topic, uint32_t part)
{
    int64_t off = -1;
    cr_assert_eq(tl_list_offset(&conn, topic, part, -1, &off), 0);
    return off;
}

TestSuite(idem, .init = setup, .fini = teardown, .timeout = 120);

/* Ids are distinct and never reused after a SIGKILL; a bump fences the older epoch. */
Test(idem, init_producer_id_blocks_and_epochs)
{
    int64_t a, b, c;
    int16_t ea, eb;
    cr_assert_eq(init_pid(&conn, -1, 0, &a, &ea), 0);
    cr_assert_eq(init_pid(&conn, -1, 0, &b, &eb), 0);
    cr_assert_neq(a, b);
    cr_assert_eq(ea, 0);
    cr_assert_eq(init_pid(&conn, a, 0, NULL, &ea), 0);
    cr_assert_eq(ea, 1, "epoch bump");
    cr_assert_eq(init_pid(&conn, a, 0, NULL, NULL), RL_E_PRODUCER_FENCED);
    cr_assert_eq(init_pid(&conn, a, 7, NULL, NULL), RL_E_INVALID_PRODUCER_EPOCH);
    cr_assert_eq(init_pid(&conn, a, -3, NULL, NULL), RL_E_INVALID_PRODUCER_EPOCH);
    cr_assert_eq(init_pid(&conn, 1 << 30, 0, NULL, NULL), RL_E_UNKNOWN_PRODUCER_ID);
    cr_assert_eq(init_pid(&conn, -5, 0, NULL, NULL), RL_E_UNKNOWN_PRODUCER_ID);
    restart_after_kill();
    cr_assert_eq(init_pid(&conn, -1, 0, &c, NULL), 0);
    cr_assert_gt(c, a);
    cr_assert_gt(c, b, "an id handed out before the crash came back: %lld", (long long)c);
    /* The old id is still known (handed out before the restart) and can be bumped. */
    cr_assert_eq(init_pid(&conn, a, 1, NULL, &ea), 0);
    cr_assert_eq(ea, 2);
}

/* A duplicate is answered with the original offset and not appended; a gap is rejected. */
Test(idem, duplicates_and_gaps)
{
    cr_assert_eq(tl_create_topic(&conn, "t", 2, NULL, NULL, 0), 0);
    int64_t pid, base = -1;
    cr_assert_eq(init_pid(&conn, -1, 0, &pid, NULL), 0);
    cr_assert_eq(produce_idem(&conn, "t", 0, pid, 0, 0, 3, &base), 0);
    cr_assert_eq(base, 0);
    cr_assert_eq(produce_idem(&conn, "t", 0, pid, 0, 3, 2, &base), 0);
    cr_assert_eq(base, 3);
    cr_assert_eq(produce_idem(&conn, "t", 0, pid, 0, 0, 3, &base), 0, "duplicate accepted");
    cr_assert_eq(base, 0, "duplicate answered with its original offset");
    cr_assert_eq(log_end("t", 0), 5, "a duplicate was appended");
    cr_assert_eq(produce_idem(&conn, "t", 0, pid, 0, 9, 1, &base), RL_E_OUT_OF_ORDER_SEQUENCE);
    cr_assert_eq(produce_idem(&conn, "t", 0, pid, 0, 1, 3, &base), RL_E_OUT_OF_ORDER_SEQUENCE,
                 "overlapping but not equal range");
    /* Sequences are per partition: partition 1 starts at 0. */
    cr_assert_eq(produce_idem(&conn, "t", 1, pid, 0, 5, 1, &base), RL_E_UNKNOWN_PRODUCER_ID);
    cr_assert_eq(produce_idem(&conn, "t", 1, pid, 0, 0, 1, &base), 0);
    cr_assert_eq(log_end("t", 0), 5);
    cr_assert_eq(log_end("t", 1), 1);
    /* Bad fields. */
    cr_assert_eq(produce_idem(&conn, "t", 0, pid, -2, 5, 1, &base), RL_E_INVALID_PRODUCER_EPOCH);
    cr_assert_eq(produce_idem(&conn, "t", 0, pid, 0, -7, 1, &base), RL_E_OUT_OF_ORDER_SEQUENCE);
    cr_assert_eq(produce_idem(&conn, "t", 0, pid + 5000, 0, 0, 1, &base),
                 RL_E_UNKNOWN_PRODUCER_ID, "an id never handed out");
    cr_assert_eq(log_end("t", 0), 5, "a rejected batch was appended");
    cr_assert_eq(produce_idem(&conn, "t", 0, pid, 0, 5, 1, &base), 0);
    cr_assert_eq(base, 5);
}

/* A second instance bumping the epoch fences the first, also on partitions the new epoch has
 * not written yet. */
Test(idem, fencing)
{
    cr_assert_eq(tl_create_topic(&conn, "f", 2, NULL, NULL, 0), 0);
    int64_t pid, base;
    int16_t e1;
    cr_assert_eq(init_pid(&conn, -1, 0, &pid, NULL), 0);
    cr_assert_eq(produce_idem(&conn, "f", 0, pid, 0, 0, 2, &base), 0);
    cr_assert_eq(produce_idem(&conn, "f", 1, pid, 0, 0, 2, &base), 0);
    /* The second instance takes over. */
    struct tl_conn c2;
    cr_assert_eq(tl_connect(&c2, broker.host, broker.port, 5000), 0);
    cr_assert_eq(init_pid(&c2, pid, 0, NULL, &e1), 0);
    cr_assert_eq(e1, 1);
    cr_assert_eq(produce_idem(&c2, "f", 0, pid, 1, 0, 1, &base), 0);
    cr_assert_eq(base, 2);
    /* The first instance is fenced everywhere. */
    cr_assert_eq(produce_idem(&conn, "f", 0, pid, 0, 2, 1, &base), RL_E_PRODUCER_FENCED);
    cr_assert_eq(produce_idem(&conn, "f", 1, pid, 0, 2, 1, &base), RL_E_PRODUCER_FENCED);
    cr_assert_eq(init_pid(&conn, pid, 0, NULL, NULL), RL_E_PRODUCER_FENCED);
    cr_assert_eq(log_end("f", 0), 3);
    cr_assert_eq(log_end("f", 1), 2);
    /* Still fenced after a restart (rebuilt from the log). */
    tl_close(&c2);
    restart_after_kill();
    /* The fenced instance cannot bump itself back to the epoch that fenced it. */
    cr_assert_eq(init_pid(&conn, pid, 0, NULL, NULL), RL_E_PRODUCER_FENCED);
    cr_assert_eq(produce_idem(&conn, "f", 0, pid, 0, 2, 1, &base), RL_E_PRODUCER_FENCED);
    cr_assert_eq(produce_idem(&conn, "f", 0, pid, 1, 1, 1, &base), 0);
    cr_assert_eq(base, 3);
}

/* Five batches pipelined on one connection, then all five retried pipelined: the retries are
 * answered with the original offsets and the log holds each batch once. */
Test(idem, pipelined_retries)
{
    cr_assert_eq(tl_create_topic(&conn, "p", 1, NULL, NULL, 0), 0);
    int64_t pid;
    cr_assert_eq(init_pid(&conn, -1, 0, &pid, NULL), 0);
    uint8_t *b[5];
    int len[5];
    int64_t first[5], again[5];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 5; i++)
            len[i] = idem_batch(pid, 0, round * 50 + i * 10, 10, &b[i]);
        for (int i = 0; i < 5; i++)
            send_produce(&conn, "p", 0, b[i], (uint32_t)len[i], 1);
        for (int i = 0; i < 5; i++)
            cr_assert_eq(recv_produce(&conn, &first[i]), 0, "round %d batch %d", round, i);
        /* Retries, interleaved with a new batch's first send. */
        for (int i = 0; i < 5; i++)
            send_produce(&conn, "p", 0, b[i], (uint32_t)len[i], i % 2 ? 1 : -1);
        for (int i = 0; i < 5; i++) {
            cr_assert_eq(recv_produce(&conn, &again[i]), 0);
            cr_assert_eq(again[i], first[i], "retry %d answered %lld, original %lld", i,
                         (long long)again[i], (long long)first[i]);
            cr_assert_eq(first[i], round * 50 + i * 10);
        }
        for (int i = 0; i < 5; i++)
            free(b[i]);
    }
    cr_assert_eq(log_end("p", 0), 150);
    /* Two batches in one request for the same partition: the second follows the first. */
    uint8_t *x, *y;
    int lx = idem_batch(pid, 0, 150, 4, &x), ly = idem_batch(pid, 0, 154, 4, &y);
    uint8_t *both = malloc((size_t)(lx + ly));
    memcpy(both, x, (size_t)lx);
    memcpy(both + lx, y, (size_t)ly);
    int64_t base;
    cr_assert_eq(tl_produce(&conn, "p", 0, both, (uint32_t)(lx + ly), 1, &base), 0);
    cr_assert_eq(base, 150);
    cr_assert_eq(tl_produce(&conn, "p", 0, both, (uint32_t)(lx + ly), 1, &base), 0);
    cr_assert_eq(base, 150, "a retried two-batch request");
    cr_assert_eq(log_end("p", 0), 158);
    /* Retries sent right behind their originals (still being written) are answered once the
     * originals are durable, with their offsets; acks 0 retries get the offset at once. */
    int32_t seq = 158;
    for (int i = 0; i < 20; i++) {
        uint8_t *d;
        int dl = idem_batch(pid, 0, seq, 3, &d);
        send_produce(&conn, "p", 0, d, (uint32_t)dl, 1);
        send_produce(&conn, "p", 0, d, (uint32_t)dl, i % 4 == 3 ? 0 : -1);
        send_produce(&conn, "p", 0, d, (uint32_t)dl, 1);
        int64_t o1, o2, o3;
        cr_assert_eq(recv_produce(&conn, &o1), 0);
        cr_assert_eq(recv_produce(&conn, &o2), 0);
        cr_assert_eq(recv_produce(&conn, &o3), 0);
        cr_assert_eq(o1, seq);
        cr_assert_eq(o2, seq);
        cr_assert_eq(o3, seq);
        free(d);
        seq += 3;
    }
    cr_assert_eq(log_end("p", 0), seq);
    cr_assert_gt(metric("ringlog_produce_duplicate_waits_total"), 0,
                 "no retry found its original still in flight");
    free(x);
    free(y);
    free(both);
}

/* Rewrites a batch's idempotence fields and checksum. */
static void stamp(uint8_t *b, uint32_t len, int64_t pid, int16_t epoch, int32_t seq)
{
    for (int i = 0; i < 8; i++)
        b[BATCH_OFF_PRODUCER_ID + i] = (uint8_t)((uint64_t)pid >> (8 * i));
    for (int i = 0; i < 2; i++)
        b[BATCH_OFF_PRODUCER_EPOCH + i] = (uint8_t)((uint16_t)epoch >> (8 * i));
    for (int i = 0; i < 4; i++)
        b[BATCH_OFF_BASE_SEQUENCE + i] = (uint8_t)((uint32_t)seq >> (8 * i));
    uint64_t sum = batch_compute_checksum(b, len);
    for (int i = 0; i < 8; i++)
        b[BATCH_OFF_CHECKSUM + i] = (uint8_t)(sum >> (8 * i));
}

/* One request of 80 idempotent 1 MiB batches for one partition, more than a log queues at
 * once, so the later ones wait behind the full log with predicted offsets; the last five (the
 * batches a producer may have in flight, and here still waiting) are retried right behind it.
 * The log holds each batch once, and retrying each of the last five later is answered with
 * the offset it really got. */
Test(idem, full_log_predicted_offsets)
{
    char msg[256];
    static const char *const cfg[] = {"max.message.bytes=2000000", NULL};
    cr_assert_eq(tl_create_topic(&conn, "full", 1, cfg, msg, sizeof(msg)), 0, "%s", msg);
    int64_t pid;
    cr_assert_eq(init_pid(&conn, -1, 0, &pid, NULL), 0);
    enum { N = 80, RECS = 1000, KEPT = 5 };
    uint8_t *one;
    int len = tl_make_batch_sized(RECS, 1000, &one);
    cr_assert_gt(len, 0);
    uint8_t *all = malloc((size_t)len * N);
    cr_assert(all);
    for (int i = 0; i < N; i++) {
        memcpy(all + (size_t)i * len, one, (size_t)len);
        stamp(all + (size_t)i * len, (uint32_t)len, pid, 0, i * RECS);
    }
    send_produce(&conn, "full", 0, all, (uint32_t)len * N, 1);
    send_produce(&conn, "full", 0, all + (size_t)len * (N - KEPT), (uint32_t)len * KEPT, -1);
    int64_t base = -1;
    cr_assert_eq(recv_produce(&conn, &base), 0);
    cr_assert_eq(base, 0);
    int rc = recv_produce(&conn, &base);
    cr_assert_eq(rc, 0, "the retried request: %s", rl_strerror(rc));
    cr_assert_eq(base, (N - KEPT) * RECS);
    cr_assert_eq(log_end("full", 0), N * RECS, "a batch was appended twice or lost");
    long long deferred = metric("ringlog_produce_deferred_batches_total");
    fprintf(stderr, "full_log_predicted_offsets: %lld batches deferred, %lld duplicates waited\n",
            deferred, metric("ringlog_produce_duplicate_waits_total"));
    for (int i = N - KEPT; i < N; i++) {
        cr_assert_eq(tl_produce(&conn, "full", 0, all + (size_t)i * len, (uint32_t)len, 1,
                                &base), 0);
        cr_assert_eq(base, (int64_t)i * RECS, "batch %d recorded at %lld", i, (long long)base);
    }
    cr_assert_eq(produce_idem(&conn, "full", 0, pid, 0, N * RECS, 1, &base), 0);
    cr_assert_eq(base, N * RECS);
    free(all);
    free(one);
}

/* The log end seen through a second connection (the first has a produce in flight). */
static int64_t log_end_via_second_connection(const char *topic, uint32_t part)
{
    struct tl_conn c2;
    cr_assert_eq(tl_connect(&c2, broker.host, broker.port, 5000), 0);
    int64_t off = -1;
    cr_assert_eq(tl_list_offset(&c2, topic, part, -1, &off), 0);
    tl_close(&c2);
    return off;
}

/* SIGKILL between a batch's append and its acknowledgement, then the retry after a restart:
 * the batch is sent, the test waits (through a second connection) until the log holds it,
 * and kills the broker before reading the answer, so the producer never saw the ack. After
 * the restart the log holds it exactly once, the retry is answered as a duplicate with its
 * original offset from the state rebuilt from the log, and so is a retry after a second
 * restart. Rounds alternate between the state coming back from the log alone and from a
 * snapshot taken before the batch (segments roll every few batches). */
Test(idem, kill_between_append_and_ack)
{
    const char *cfg[] = {"segment.bytes=4096", NULL};
    cr_assert_eq(tl_create_topic(&conn, "k", 1, cfg, NULL, 0), 0);
    int64_t pid, base;
    cr_assert_eq(init_pid(&conn, -1, 0, &pid, NULL), 0);
    cr_assert_eq(produce_idem(&conn, "k", 0, pid, 0, 0, 5, &base), 0);
    int32_t seq = 5;
    for (int round = 0; round < 6; round++) {
        uint8_t *b;
        int len = idem_batch(pid, 0, seq, 7, &b);
        send_produce(&conn, "k", 0, b, (uint32_t)len, 1);
        int64_t end = -1;
        for (uint64_t until = tl_now_ms() + 10000; end != seq + 7 && tl_now_ms() < until;) {
            end = log_end_via_second_connection("k", 0);
            if (end != seq + 7)
                usleep(1000); /* polling pace */
        }
        cr_assert_eq(end, seq + 7, "round %d: the batch never reached the log", round);
        restart_after_kill(); /* the answer is lost with the connection, unread */
        cr_assert_eq(log_end("k", 0), seq + 7, "round %d: the appended batch was lost", round);
        int rc = tl_produce(&conn, "k", 0, b, (uint32_t)len, 1, &base);
        if (rc)
            tl_broker_dump_log(&broker, 20);
        cr_assert_eq(rc, 0, "retry after restart: %s", rl_strerror(rc));
        cr_assert_eq(base, seq, "round %d: retry after restart answered %lld", round,
                     (long long)base);
        cr_assert_eq(log_end("k", 0), seq + 7, "round %d: not exactly once", round);
        restart_after_kill();
        cr_assert_eq(tl_produce(&conn, "k", 0, b, (uint32_t)len, 1, &base), 0);
        cr_assert_eq(base, seq, "duplicate after a second restart");
        cr_assert_eq(log_end("k", 0), seq + 7);
        free(b);
        seq += 7;
        /* Filler batches roll segments, so later rounds start from a snapshot. */
        for (int i = 0; i < round; i++, seq += 7)
            cr_assert_eq(produce_idem(&conn, "k", 0, pid, 0, seq, 7, &base), 0);
    }
    cr_assert_eq(produce_idem(&conn, "k", 0, pid, 0, seq, 1, &base), 0);
    cr_assert_eq(base, seq);
}

/* With small segments the state is snapshotted at rolls; after a SIGKILL it comes back from the
 * snapshot plus the tail of the log: batches appended after the snapshot (which only the
 * replay of the tail can know) are recognised as duplicates, with their offsets. */
Test(idem, snapshot_at_roll)
{
    char msg[256];
    const char *cfg[] = {"segment.bytes=8192", NULL};
    cr_assert_eq(tl_create_topic(&conn, "s", 1, cfg, msg, sizeof(msg)), 0, "%s", msg);
    int64_t pids[3], base;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(init_pid(&conn, -1, 0, &pids[i], NULL), 0);
    uint32_t seq[3] = {0, 0, 0};
    int64_t expect_end = 0;
    for (int i = 0; i < 120; i++) {
        int p = i % 3;
        cr_assert_eq(produce_idem(&conn, "s", 0, pids[p], 0, (int32_t)seq[p], 10, &base), 0);
        cr_assert_eq(base, expect_end);
        seq[p] += 10;
        expect_end += 10;
    }
    /* Let the 1 s upkeep notice the rolls and write a snapshot. */
    bool snap = false;
    for (uint64_t until = tl_now_ms() + 10000; !snap && tl_now_ms() < until;) {
        snap = metric("ringlog_producer_snapshots_total") > 0;
        if (!snap)
            usleep(100000); /* polling pace */
    }
    cr_assert(snap, "no snapshot written after segment rolls");
    /* After the snapshot, one more batch per producer: too little to roll, so no later
     * snapshot holds them (checked), only the log's tail. */
    long long snaps = metric("ringlog_producer_snapshots_total");
    for (int p = 0; p < 3; p++) {
        cr_assert_eq(produce_idem(&conn, "s", 0, pids[p], 0, (int32_t)seq[p], 2, &base), 0);
        cr_assert_eq(base, expect_end);
        seq[p] += 2;
        expect_end += 2;
    }
    cr_assert_eq(metric("ringlog_producer_snapshots_total"), snaps,
                 "a snapshot covered the tail: the test would not replay it");
    restart_after_kill();
    /* The last batch of each producer (in the tail) is a duplicate; the next is accepted. */
    for (int p = 0; p < 3; p++) {
        cr_assert_eq(produce_idem(&conn, "s", 0, pids[p], 0, (int32_t)seq[p] - 2, 2, &base),
                     0);
        cr_assert_eq(base, expect_end - 6 + p * 2, "producer %d duplicate offset", p);
    }
    cr_assert_eq(log_end("s", 0), expect_end);
    cr_assert_eq(produce_idem(&conn, "s", 0, pids[0], 0, (int32_t)seq[0] + 2, 1, &base),
                 RL_E_OUT_OF_ORDER_SEQUENCE);
    cr_assert_eq(produce_idem(&conn, "s", 0, pids[0], 0, (int32_t)seq[0], 1, &base), 0);
    cr_assert_eq(base, expect_end);
}

/* Producers idle past producer.id.expiration.ms are forgotten: a batch not starting at 0 is
 * then UNKNOWN_PRODUCER_ID, and one starting at 0 is accepted. */
Test(idem, expiration, .init = NULL)
{
    const char *args[] = {"--set", "producer.id.expiration.ms=1000", NULL};
    start_with(args);
    cr_assert_eq(tl_create_topic(&conn, "e", 1, NULL, NULL, 0), 0);
    int64_t pid, base;
    cr_assert_eq(init_pid(&conn, -1, 0, &pid, NULL), 0);
    cr_assert_eq(produce_idem(&conn, "e", 0, pid, 0, 0, 2, &base), 0);
    cr_assert_eq(produce_idem(&conn, "e", 0, pid, 0, 2, 2, &base), 0);
    int rc = 0;
    for (uint64_t until = tl_now_ms() + 10000; rc != RL_E_UNKNOWN_PRODUCER_ID &&
                                               tl_now_ms() < until;) {
        rc = produce_idem(&conn, "e", 0, pid, 0, 2, 2, &base); /* a duplicate while known */
        cr_assert(rc == 0 || rc == RL_E_UNKNOWN_PRODUCER_ID, "rc %d", rc);
        if (rc == 0)
            usleep(50000); /* polling pace, not synchronization */
    }
    cr_assert_eq(rc, RL_E_UNKNOWN_PRODUCER_ID, "the idle producer was not forgotten");
    cr_assert_eq(produce_idem(&conn, "e", 0, pid, 0, 0, 1, &base), 0);
    cr_assert_eq(base, 4);
}

/* Nobody but the coordinator writes __consumer_offsets. */
Test(idem, internal_topic_is_not_produced)
{
    cr_assert_eq(tl_create_topic(&conn, "__consumer_offsets", 2, NULL, NULL, 0),
                 RL_E_INTERNAL_TOPIC);
    uint8_t *b;
    int len = tl_make_batch(2, "x", &b);
    cr_assert_eq(tl_produce(&conn, "__consumer_offsets", 0, b, (uint32_t)len, 1, NULL),
                 RL_E_INTERNAL_TOPIC);
    free(b);
}

/* Waits until the 1 s upkeep wrote a producer snapshot (it looks at every partition in the same
 * pass), then returns how many partitions hold producer state. */
static long long loaded_after_snapshot(void)
{
    bool snap = false;
    for (uint64_t until = tl_now_ms() + 10000; !snap && tl_now_ms() < until;) {
        snap = metric("ringlog_producer_snapshots_total") > 0;
        if (!snap)
            usleep(100000); /* polling pace */
    }
    cr_assert(snap, "no snapshot written after segment rolls");
    return metric("ringlog_producer_state_partitions");
}

/* Producer state exists only for partitions idempotent producers use: a topic written without
 * producer ids, rolling segment after segment, never has its log replayed (before a restart or
 * after), while the idempotent topic's state is loaded (in the background) at its first batch
 * after the restart. Both topics roll, so the upkeep pass that snapshots the idempotent one
 * has seen the other one roll too. */
Test(idem, state_only_where_used)
{
    const char *cfg[] = {"segment.bytes=8192", NULL};
    cr_assert_eq(tl_create_topic(&conn, "plain", 1, cfg, NULL, 0), 0);
    cr_assert_eq(tl_create_topic(&conn, "used", 1, cfg, NULL, 0), 0);
    int64_t pid, base;
    cr_assert_eq(init_pid(&conn, -1, 0, &pid, NULL), 0);
    uint8_t *b;
    int len = tl_make_batch_sized(20, 200, &b);
    for (int i = 0; i < 60; i++)
        cr_assert_eq(tl_produce(&conn, "plain", 0, b, (uint32_t)len, 1, NULL), 0);
    int32_t seq = 0;
    for (int i = 0; i < 120; i++, seq += 10)
        cr_assert_eq(produce_idem(&conn, "used", 0, pid, 0, seq, 10, &base), 0);
    cr_assert_eq(loaded_after_snapshot(), 1, "producer state held for another partition");
    restart_after_kill();
    for (int i = 0; i < 60; i++)
        cr_assert_eq(tl_produce(&conn, "plain", 0, b, (uint32_t)len, 1, NULL), 0);
    cr_assert_eq(produce_idem(&conn, "used", 0, pid, 0, seq - 10, 10, &base), 0);
    cr_assert_eq(base, (int64_t)seq - 10, "the reloaded state lost the last batch");
    for (int i = 0; i < 120; i++, seq += 10)
        cr_assert_eq(produce_idem(&conn, "used", 0, pid, 0, seq, 10, &base), 0);
    cr_assert_eq(loaded_after_snapshot(), 1, "after the restart, state for another partition");
    free(b);
}
