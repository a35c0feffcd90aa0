/*
 * test_history: the fault checker (tests/fault/history.h) on hand-built histories. A clean
 * history passes; then each anomaly is planted into an otherwise clean history and the checker
 * must name exactly that kind (a checker that cannot fail is a defect). No network, no broker.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/fault/history.h"
#include "tests/fault/workload.h"

#define PARTS 2
#define PER_PART 5

/* A clean base: one idempotent writer, 10 writes alternating over 2 partitions, all
 * acknowledged at offsets 0..4 of their partition; a consumer reads everything in order; a
 * replica dump of node 1 holds everything in term 1; node 1 led both partitions in term 1. */
struct base {
    struct hist *h;
    int writer, consumer, replica;
};

static void read_value(struct hist *h, int src, uint32_t p, int64_t off, int writer,
                       uint32_t seq, uint32_t term)
{
    char v[32];
    int n = hist_value_format(writer, seq, v, sizeof(v));
    cr_assert_eq(hist_read(h, src, p, off, v, (size_t)n, term), 0);
}

/* seq -> partition seq % 2, offset seq / 2. */
static void base_init(struct base *b, bool reads)
{
    b->h = hist_new(PARTS);
    cr_assert_not_null(b->h);
    b->writer = hist_writer_add(b->h, true);
    b->consumer = hist_source_add(b->h, HIST_CONSUMER, -1, "consumer");
    b->replica = hist_source_add(b->h, HIST_REPLICA, 1, "replica-1");
    for (uint32_t s = 0; s < PARTS * PER_PART; s++) {
        cr_assert_eq(hist_invoke(b->h, b->writer, s, s % PARTS), 0);
        cr_assert_eq(hist_complete(b->h, b->writer, s, HIST_OK, s / PARTS, -1, 0), 0);
    }
    for (uint32_t p = 0; p < PARTS; p++)
        cr_assert_eq(hist_leader(b->h, p, 1, 1, "metadata"), 0);
    if (!reads)
        return;
    for (uint32_t s = 0; s < PARTS * PER_PART; s++)
        read_value(b->h, b->consumer, s % PARTS, s / PARTS, b->writer, s, 0);
    for (uint32_t s = 0; s < PARTS * PER_PART; s++)
        read_value(b->h, b->replica, s % PARTS, s / PARTS, b->writer, s, 1);
}

static const struct hist_check_opts loose = {.min_acked = 1, .min_reads = 1};

/* Checks and asserts that exactly `kind` was found (want of them), nothing else. */
static void expect_only(struct hist *h, enum hist_anomaly kind, long want)
{
    struct hist_report rep;
    long n = hist_check(h, &loose, &rep);
    if (n != want || rep.count[kind] != want)
        hist_report_print(&rep, stderr);
    cr_assert_eq(rep.count[kind], want, "%s: found %ld, want %ld", hist_anomaly_name(kind),
                 rep.count[kind], want);
    cr_assert_eq(n, want, "other anomalies besides %s", hist_anomaly_name(kind));
}

Test(history, clean_history_passes)
{
    struct base b;
    base_init(&b, true);
    struct hist_report rep;
    long n = hist_check(b.h, &loose, &rep);
    if (n)
        hist_report_print(&rep, stderr);
    cr_assert_eq(n, 0);
    cr_assert_eq(rep.acked, 10);
    cr_assert_eq(rep.reads, 20);
    hist_free(b.h);
}

Test(history, value_format_round_trips_and_rejects_garbage)
{
    char v[32];
    int n = hist_value_format(17, 123456, v, sizeof(v));
    int w;
    uint32_t s;
    cr_assert_eq(hist_value_parse(v, (size_t)n, &w, &s), 0);
    cr_assert_eq(w, 17);
    cr_assert_eq(s, 123456);
    cr_assert_lt(hist_value_parse("w17-", 4, &w, &s), 0);
    cr_assert_lt(hist_value_parse("x1-2", 4, &w, &s), 0);
    cr_assert_lt(hist_value_parse("w1-2x", 5, &w, &s), 0);
    cr_assert_lt(hist_value_parse("w999-2", 6, &w, &s), 0);
}

/* An acknowledged write nobody read, with later offsets read: lost. */
Test(history, lost_write)
{
    struct base b;
    base_init(&b, false);
    for (uint32_t s = 0; s < PARTS * PER_PART; s++)
        if (s != 4) /* partition 0, offset 2 */
            read_value(b.h, b.consumer, s % PARTS, s / PARTS, b.writer, s, 0);
    /* the consumer jumped from 1 to 3 over the acknowledged offset 2: a skip as well */
    struct hist_report rep;
    hist_check(b.h, &loose, &rep);
    cr_assert_eq(rep.count[HIST_LOST], 1);
    cr_assert_eq(rep.count[HIST_SKIP], 1);
    cr_assert_eq(rep.total, 2);
    hist_free(b.h);
}

/* An acknowledged write beyond everything read: unseen (the final drain fell short). */
Test(history, unseen_write)
{
    struct base b;
    base_init(&b, false);
    for (uint32_t s = 0; s < PARTS * PER_PART - 2; s++)
        read_value(b.h, b.consumer, s % PARTS, s / PARTS, b.writer, s, 0);
    expect_only(b.h, HIST_UNSEEN, 2);
    hist_free(b.h);
}

/* One value at two offsets (appended twice). */
Test(history, duplicate)
{
    struct base b;
    base_init(&b, true);
    read_value(b.h, b.replica, 0, 5, b.writer, 0, 1); /* w0-0 again at offset 5 */
    expect_only(b.h, HIST_DUPLICATE, 1);
    hist_free(b.h);
}

/* Two reads disagree about one offset. */
Test(history, inconsistent_offset_between_reads)
{
    struct base b;
    base_init(&b, true);
    int c2 = hist_source_add(b.h, HIST_CONSUMER, -1, "consumer-2");
    cr_assert_eq(hist_invoke(b.h, b.writer, 10, 0), 0);
    cr_assert_eq(hist_complete(b.h, b.writer, 10, HIST_INFO, -1, -1, 0), 0);
    read_value(b.h, c2, 0, 0, b.writer, 10, 0); /* offset 0 held w0-0, now w0-10 */
    /* w0-10 (seq 10) also sits below w0-8 (offset 4) in partition 0: a reorder too */
    struct hist_report rep;
    hist_check(b.h, &loose, &rep);
    cr_assert_eq(rep.count[HIST_INCONSISTENT_OFFSET], 1);
    cr_assert_eq(rep.count[HIST_REORDER], 1);
    cr_assert_eq(rep.total, 2);
    hist_free(b.h);
}

/* The offset an acknowledgement named holds another record (over time: ack, then a read):
 * the acknowledged write is lost, and the offset is inconsistent. */
Test(history, acknowledged_offset_later_holds_another_record)
{
    struct base b;
    base_init(&b, true);
    cr_assert_eq(hist_invoke(b.h, b.writer, 10, 1), 0);
    cr_assert_eq(hist_complete(b.h, b.writer, 10, HIST_OK, 5, -1, 0), 0);
    int w1 = hist_writer_add(b.h, false);
    cr_assert_eq(hist_invoke(b.h, w1, 0, 1), 0);
    cr_assert_eq(hist_complete(b.h, w1, 0, HIST_INFO, -1, -1, 0), 0);
    read_value(b.h, b.consumer, 1, 5, w1, 0, 0); /* offset 5 holds w1-0 */
    struct hist_report rep;
    hist_check(b.h, &loose, &rep);
    cr_assert_eq(rep.count[HIST_INCONSISTENT_OFFSET], 1, "ack/read disagreement");
    cr_assert_eq(rep.count[HIST_LOST], 1, "w0-10 is gone");
    cr_assert_eq(rep.total, 2);
    hist_free(b.h);
}

/* Two replicas hold different records at one offset (divergent logs). */
Test(history, replicas_disagree)
{
    struct base b;
    base_init(&b, true);
    int r2 = hist_source_add(b.h, HIST_REPLICA, 2, "replica-2");
    int w1 = hist_writer_add(b.h, false);
    cr_assert_eq(hist_invoke(b.h, w1, 0, 1), 0);
    cr_assert_eq(hist_complete(b.h, w1, 0, HIST_INFO, -1, -1, 0), 0);
    for (uint32_t s = 0; s < PARTS * PER_PART; s++) {
        if (s == 9) /* partition 1 offset 4: w1-0 instead of w0-9 */
            read_value(b.h, r2, 1, 4, w1, 0, 1);
        else
            read_value(b.h, r2, s % PARTS, s / PARTS, b.writer, s, 1);
    }
    struct hist_report rep;
    hist_check(b.h, &loose, &rep);
    cr_assert_eq(rep.count[HIST_INCONSISTENT_OFFSET], 1);
    cr_assert_eq(rep.total, 1);
    hist_free(b.h);
}

/* A write that definitely failed was read (G1a, aborted read). */
Test(history, failed_write_read)
{
    struct base b;
    base_init(&b, true);
    cr_assert_eq(hist_invoke(b.h, b.writer, 10, 0), 0);
    cr_assert_eq(hist_complete(b.h, b.writer, 10, HIST_FAIL, -1, -1, 0), 0);
    read_value(b.h, b.consumer, 0, 5, b.writer, 10, 0);
    expect_only(b.h, HIST_G1A, 1);
    hist_free(b.h);
}

/* An indeterminate write may be read once: no anomaly. */
Test(history, indeterminate_write_read_once_is_fine)
{
    struct base b;
    base_init(&b, true);
    cr_assert_eq(hist_invoke(b.h, b.writer, 10, 0), 0);
    cr_assert_eq(hist_complete(b.h, b.writer, 10, HIST_INFO, -1, -1, 0), 0);
    read_value(b.h, b.consumer, 0, 5, b.writer, 10, 0);
    struct hist_report rep;
    cr_assert_eq(hist_check(b.h, &loose, &rep), 0);
    hist_free(b.h);
}

/* Bytes that are no value of the test, and a value of another partition. */
Test(history, unknown_values)
{
    struct base b;
    base_init(&b, true);
    cr_assert_eq(hist_read(b.h, b.consumer, 0, 5, "garbage", 7, 0), 0);
    read_value(b.h, b.consumer, 1, 5, b.writer, 0, 0); /* w0-0 went to partition 0 */
    expect_only(b.h, HIST_UNKNOWN_VALUE, 2);
    hist_free(b.h);
}

/* An idempotent writer's records out of sequence order. */
Test(history, idempotent_reorder)
{
    /* partition 0 holds w0-2 at offset 0 and w0-0 at offset 1 (acks agree with the log) */
    struct hist *h = hist_new(1);
    int w = hist_writer_add(h, true);
    int c = hist_source_add(h, HIST_CONSUMER, -1, "consumer");
    for (uint32_t s = 0; s < 3; s++)
        cr_assert_eq(hist_invoke(h, w, s, 0), 0);
    cr_assert_eq(hist_complete(h, w, 0, HIST_OK, 2, -1, 0), 0);
    cr_assert_eq(hist_complete(h, w, 1, HIST_OK, 1, -1, 0), 0);
    cr_assert_eq(hist_complete(h, w, 2, HIST_OK, 0, -1, 0), 0);
    read_value(h, c, 0, 0, w, 2, 0);
    read_value(h, c, 0, 1, w, 1, 0);
    read_value(h, c, 0, 2, w, 0, 0);
    expect_only(h, HIST_REORDER, 2);
    hist_free(h);
    /* The same history from a writer without idempotence is no anomaly. */
    h = hist_new(1);
    w = hist_writer_add(h, false);
    c = hist_source_add(h, HIST_CONSUMER, -1, "consumer");
    for (uint32_t s = 0; s < 3; s++) {
        cr_assert_eq(hist_invoke(h, w, s, 0), 0);
        cr_assert_eq(hist_complete(h, w, s, HIST_OK, 2 - s, -1, 0), 0);
    }
    for (uint32_t s = 0; s < 3; s++)
        read_value(h, c, 0, s, w, 2 - s, 0);
    struct hist_report rep;
    cr_assert_eq(hist_check(h, &loose, &rep), 0);
    hist_free(h);
}

/* A consumer goes back within one session: nonmonotonic. After a reset it may. */
Test(history, nonmonotonic_read)
{
    struct base b;
    base_init(&b, true);
    read_value(b.h, b.consumer, 0, 3, b.writer, 6, 0); /* consumer was at offset 4 */
    expect_only(b.h, HIST_NONMONOTONIC, 1);
    hist_source_reset(b.h, b.consumer);
    read_value(b.h, b.consumer, 1, 0, b.writer, 1, 0);
    expect_only(b.h, HIST_NONMONOTONIC, 1);
    hist_free(b.h);
}

/* A replica dump without an acknowledged record below its end. */
Test(history, replica_gap)
{
    struct base b;
    base_init(&b, false);
    for (uint32_t s = 0; s < PARTS * PER_PART; s++)
        read_value(b.h, b.consumer, s % PARTS, s / PARTS, b.writer, s, 0);
    int r2 = hist_source_add(b.h, HIST_REPLICA, 2, "replica-2");
    hist_source_reset(b.h, r2);
    for (uint32_t s = 0; s < PARTS * PER_PART; s++)
        if (s != 2) /* partition 0 offset 1 missing; later ones there */
            read_value(b.h, r2, s % PARTS, s / PARTS, b.writer, s, 1);
    struct hist_report rep;
    hist_check(b.h, &loose, &rep);
    cr_assert_eq(rep.count[HIST_REPLICA_GAP], 1);
    cr_assert_eq(rep.count[HIST_SKIP], 1, "the dump jumped over offset 1");
    cr_assert_eq(rep.total, 2);
    hist_free(b.h);
}

/* A record of term 1 after one of term 2 in a log: a stale leader's write got in. */
Test(history, term_regression)
{
    struct base b;
    base_init(&b, false);
    for (uint32_t s = 0; s < PARTS * PER_PART; s++)
        read_value(b.h, b.consumer, s % PARTS, s / PARTS, b.writer, s, 0);
    for (uint32_t s = 0; s < PARTS * PER_PART; s++)
        read_value(b.h, b.replica, s % PARTS, s / PARTS, b.writer, s, s == 2 ? 2 : 1);
    expect_only(b.h, HIST_TERM_REGRESSION, 1);
    hist_free(b.h);
}

/* Two nodes claim one partition in one term: from metadata, and from acknowledgements. */
Test(history, two_leaders_in_one_term)
{
    struct base b;
    base_init(&b, true);
    cr_assert_eq(hist_leader(b.h, 0, 1, 2, "metadata"), 0);
    expect_only(b.h, HIST_TWO_LEADERS, 1);
    hist_free(b.h);

    base_init(&b, true);
    cr_assert_eq(hist_invoke(b.h, b.writer, 10, 1), 0);
    cr_assert_eq(hist_complete(b.h, b.writer, 10, HIST_OK, 5, 3, 1), 0); /* node 3, term 1 */
    read_value(b.h, b.consumer, 1, 5, b.writer, 10, 0);
    read_value(b.h, b.replica, 1, 5, b.writer, 10, 1);
    expect_only(b.h, HIST_TWO_LEADERS, 1);
    hist_free(b.h);
}

/* Too little happened to mean anything. */
Test(history, vacuous_run)
{
    struct base b;
    base_init(&b, true);
    struct hist_check_opts strict = {.min_acked = 1000, .min_reads = 1};
    struct hist_report rep;
    cr_assert_eq(hist_check(b.h, &strict, &rep), 1);
    cr_assert_eq(rep.count[HIST_VACUOUS], 1);
    hist_free(b.h);
}

/* A harness that completes a write twice is caught, not absorbed. */
Test(history, harness_misuse_is_reported)
{
    struct base b;
    base_init(&b, true);
    cr_assert_lt(hist_complete(b.h, b.writer, 0, HIST_OK, 0, -1, 0), 0);
    cr_assert_lt(hist_invoke(b.h, b.writer, 99, 0), 0, "sequence gap refused");
    expect_only(b.h, HIST_UNKNOWN_VALUE, 1);
    hist_free(b.h);
}

/* A large history checks quickly and cleanly (sorting, not quadratic scans). */
Test(history, large_history_is_linear_enough, .timeout = 30)
{
    struct hist *h = hist_new(6);
    int w[4], c = hist_source_add(h, HIST_CONSUMER, -1, "consumer");
    int64_t next[6] = {0};
    for (int i = 0; i < 4; i++)
        w[i] = hist_writer_add(h, true);
    for (uint32_t s = 0; s < 50000; s++)
        for (int i = 0; i < 4; i++) {
            uint32_t p = (s + (uint32_t)i) % 6;
            cr_assert_eq(hist_invoke(h, w[i], s, p), 0);
            cr_assert_eq(hist_complete(h, w[i], s, HIST_OK, next[p]++, -1, 0), 0);
        }
    int64_t pos[6] = {0};
    for (uint32_t s = 0; s < 50000; s++)
        for (int i = 0; i < 4; i++) {
            uint32_t p = (s + (uint32_t)i) % 6;
            read_value(h, c, p, pos[p]++, w[i], s, 0);
        }
    struct hist_report rep;
    struct hist_check_opts opts = {.min_acked = 200000, .min_reads = 200000};
    cr_assert_eq(hist_check(h, &opts, &rep), 0);
    hist_free(h);
}

/* Leadership claims read from broker logs: two brokers that both logged leading one partition in
 * one term are two leaders. */
Test(history, two_leaders_from_broker_logs)
{
    char dir[] = "/tmp/ringlog-hist-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char a[64], b[64];
    snprintf(a, sizeof(a), "%s/1.log", dir);
    snprintf(b, sizeof(b), "%s/2.log", dir);
    FILE *f = fopen(a, "w");
    fprintf(f, "INFO raft: became leader of fault-3 in term 7\nINFO other line\n");
    fclose(f);
    f = fopen(b, "w");
    fprintf(f, "INFO raft: became leader of fault-3 in term 8\n");
    fclose(f);
    struct hist *h = hist_new(6);
    cr_assert_eq(wl_claims_from_log(h, a, "fault", 1), 1);
    cr_assert_eq(wl_claims_from_log(h, b, "fault", 2), 1);
    struct hist_check_opts none = {0};
    struct hist_report rep;
    cr_assert_eq(hist_check(h, &none, &rep), 0, "different terms: fine");
    f = fopen(b, "a");
    fprintf(f, "INFO raft: became leader of fault-3 in term 7\n");
    fclose(f);
    cr_assert_eq(wl_claims_from_log(h, b, "fault", 2), 2);
    cr_assert_eq(hist_check(h, &none, &rep), 1);
    cr_assert_eq(rep.count[HIST_TWO_LEADERS], 1);
    hist_free(h);
    unlink(a);
    unlink(b);
    rmdir(dir);
}

/* Leader kills: counted under load only when acknowledgements were arriving, the metadata that
 * named the victim was not stale (no higher term claimed before the kill), and the partition
 * was later claimed in a higher term (an election followed, whoever won it). None of this is
 * an anomaly. */
Test(history, leader_kills_are_counted_only_with_load_and_an_election)
{
    struct base b;
    base_init(&b, true); /* acknowledgements just now: under load; node 1 leads in term 1 */
    cr_assert_eq(hist_leader_kill(b.h, 1, 0, 1), 0); /* node 2 wins term 2 below: counted */
    cr_assert_eq(hist_leader_kill(b.h, 1, 1, 1), 0); /* the victim wins term 2: counted */
    cr_assert_eq(hist_leader(b.h, 0, 2, 2, "metadata"), 0);
    cr_assert_eq(hist_leader_kill(b.h, 1, 0, 1), 0); /* stale: term 2 was claimed already */
    cr_assert_eq(hist_leader(b.h, 1, 2, 1, "metadata"), 0);
    struct hist_report rep;
    cr_assert_eq(hist_check(b.h, &loose, &rep), 0);
    cr_assert_eq(rep.leader_kills, 3);
    cr_assert_eq(rep.leader_kills_under_load, 2);
    hist_free(b.h);

    /* No election after the kill (the same term claimed again): not counted. */
    base_init(&b, true);
    cr_assert_eq(hist_leader_kill(b.h, 1, 0, 1), 0);
    cr_assert_eq(hist_leader(b.h, 0, 1, 1, "log"), 0);
    cr_assert_eq(hist_check(b.h, &loose, &rep), 0);
    cr_assert_eq(rep.leader_kills, 1);
    cr_assert_eq(rep.leader_kills_under_load, 0);
    hist_free(b.h);

    /* No acknowledgement ever: never under load, even with an election after. */
    struct hist *h = hist_new(PARTS);
    cr_assert_eq(hist_leader(h, 0, 1, 1, "metadata"), 0);
    cr_assert_eq(hist_leader_kill(h, 1, 0, 1), 0);
    cr_assert_eq(hist_leader(h, 0, 2, 3, "metadata"), 0);
    struct hist_check_opts none = {0};
    cr_assert_eq(hist_check(h, &none, &rep), 0);
    cr_assert_eq(rep.leader_kills, 1);
    cr_assert_eq(rep.leader_kills_under_load, 0);
    hist_free(h);
}
