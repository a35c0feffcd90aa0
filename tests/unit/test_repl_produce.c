/*
 * test_repl_produce: the produce path of a replicated partition (broker/delivery/produce.c over
 * broker/partition) with a scripted replicator in place of the Raft group, on the simulated
 * back-end of io/. The replicator's reports (durable, commit, role) are made by hand, in the
 * orders a deposed leader can see them, to check the acknowledgement rule: an acks=all batch,
 * or an idempotent retry of it, is answered success only when the entry committed at its
 * offsets is the one this leader appended in its term; otherwise NOT_LEADER (the producer
 * retries, and its idempotence makes the retry safe).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/delivery/produce.h"
#include "broker/svc/svc.h"
#include "broker_sim.h"
#include "common/arena.h"

static struct broker b;

/* --- the scripted replicator: proposals take the next offsets, nothing more ------------------ */

static uint64_t g_next;      /* the log end the leader's proposals reach */
static bool g_write;         /* proposals (and follower appends) go to the plog too */
static struct partition *g_p;

static uint32_t g_appends, g_appended; /* plog appends made, and completed */

static void log_done(struct plog_append *pa, int result)
{
    cr_assert_eq(result, 0);
    g_appended++;
    free(pa);
}

/* Appends a batch to the partition's plog as the group would (term stamped). */
static void log_append(const uint8_t *batch, uint32_t len, uint32_t term)
{
    struct plog_append *pa = calloc(1, sizeof(*pa));
    pa->batch = batch;
    pa->len = len;
    pa->leader_epoch = term;
    pa->done = log_done;
    cr_assert_eq(plog_append(partition_plog(g_p), pa), 0);
    g_appends++;
    cr_assert_eq(pa->base_offset, g_next);
    g_next = pa->last_offset + 1;
}

static int fake_propose(void *ctx, uint8_t *batch, uint32_t len, bool all, uint64_t *end)
{
    (void)ctx;
    (void)all;
    struct batch_header h;
    cr_assert_eq(batch_header_decode(batch, len, &h), 0);
    if (g_write)
        log_append(batch, len, (uint32_t)partition_term(g_p));
    else
        g_next += h.record_count;
    *end = g_next;
    return 0;
}

static uint32_t fake_in_sync(void *ctx, uint32_t *out, uint32_t cap)
{
    (void)ctx;
    (void)out;
    (void)cap;
    return 0;
}

/* --- produce requests as the server makes them ------------------------------------------------ */

struct preq {
    struct svc_req r;
    struct arena arena;
    struct produce_request q;
    struct produce_part part;
    uint8_t *data;
    bool answered;
};

static void host_complete(struct svc_req *r)
{
    r->finish(r);
}

static void host_charge(struct svc_req *r, uint64_t bytes)
{
    (void)r;
    (void)bytes;
}

static bool host_yes(const struct svc_req *r, uint64_t bytes)
{
    (void)r;
    (void)bytes;
    return true;
}

static bool host_may_wait(const struct svc_req *r)
{
    (void)r;
    return true;
}

static const char *host_peer(const struct svc_req *r)
{
    (void)r;
    return "";
}

static const struct svc_host host = {host_complete, host_charge, host_yes, host_may_wait,
                                     host_peer};

static void produce_answered(struct svc_req *r, struct produce_request *q)
{
    (void)q;
    ((struct preq *)r)->answered = true;
}

static void produce_send(struct produce *ps, struct preq *q, const uint8_t *batch, uint32_t len)
{
    memset(q, 0, sizeof(*q));
    arena_init(&q->arena, 4096, 1 << 20);
    q->r = (struct svc_req){.host = &host, .arena = &q->arena, .io = b.io};
    q->data = malloc(len);
    memcpy(q->data, batch, len);
    q->part = (struct produce_part){.topic = TOPIC, .partition = 0, .data = q->data,
                                    .data_len = len};
    q->q = (struct produce_request){.acks = -1, .n_parts = 1, .parts = &q->part,
                                    .done = produce_answered};
    produce_start(ps, &q->r, &q->q);
}

static void preq_free(struct preq *q)
{
    arena_destroy(&q->arena);
    free(q->data);
}

struct init {
    struct idem_init in;
    bool done;
};

static void init_done(struct idem_init *in)
{
    ((struct init *)in)->done = true;
}

static int64_t new_producer(void)
{
    struct init w = {.in = {.producer_id = -1, .done = init_done}};
    int rc = idem_init_producer(b.id, &w.in, NOW_MS);
    for (int i = 0; rc == 1 && !w.done && i < LOOP_GUARD; i++)
        loop_once(&b);
    cr_assert(rc == 0 || w.done, "InitProducerId never answered");
    cr_assert_eq(w.in.rc, 0, "InitProducerId: %s", w.in.msg);
    return w.in.out_id;
}

/* An idempotent batch of 3 records (pid, epoch 0, sequence seq), copied to buf; returns its
 * length. */
static uint32_t build_seq(int64_t pid, int32_t seq, uint8_t *buf, size_t cap)
{
    memset(buf, 0, cap < 64 ? cap : 64);
    batch_builder_reset(b.bb, pid, 0, seq);
    for (int i = 0; i < 3; i++) {
        struct batch_record_in rec = {.value = (const uint8_t *)"v", .value_len = 1,
                                      .timestamp = NOW_MS};
        cr_assert_eq(batch_builder_add(b.bb, &rec), 0);
    }
    const uint8_t *p;
    int len = batch_builder_finish(b.bb, &p);
    cr_assert(len > 0 && (size_t)len <= cap);
    memcpy(buf, p, (size_t)len);
    return (uint32_t)len;
}

static uint32_t build(int64_t pid, uint8_t *buf, size_t cap)
{
    return build_seq(pid, 0, buf, cap);
}

static void run_until(bool *flag)
{
    for (int i = 0; !*flag && i < 1000; i++)
        loop_once(&b);
}

static struct produce *g_ps;
static int64_t g_pid;

static void start(void)
{
    memset(&b, 0, sizeof(b));
    g_write = false;
    g_appends = g_appended = 0;
    broker_sim_start(&b);
    cr_assert_eq(create_topic(&b, "batch"), 0);
    g_p = part(&b);
    g_next = plog_end_offset(partition_plog(g_p));
    struct partition_replicator r = {fake_propose, fake_in_sync, NULL};
    partition_set_replicator(g_p, &r);
    partition_repl_role(g_p, true, 1, 2); /* node 1 leads in term 2, ready */
    cr_assert_eq(produce_create(b.m, b.id, &g_ps), 0);
    g_pid = new_producer();
}

static void finish(void)
{
    produce_destroy(g_ps);
    partition_set_replicator(g_p, NULL);
    broker_close(&b);
    io_destroy(b.io);
}

TestSuite(repl_produce, .init = start, .fini = finish, .timeout = 60);

Test(repl_produce, a_retry_waiting_for_its_original_fails_when_the_leader_is_deposed)
{
    /* Leader (term 2) appends the batch at 0..2, not yet committed; the producer's retry of it
     * is a duplicate that waits for the original. The leader is deposed (its pending answer
     * fails), and another leader's entries commit at 0..2: the retry must not be answered
     * success with offsets that hold another producer's records. */
    static uint8_t batch[4096];
    uint32_t len = build(g_pid, batch, sizeof(batch));
    struct preq *q1 = calloc(1, sizeof(*q1)), *q2 = calloc(1, sizeof(*q2));
    produce_send(g_ps, q1, batch, len);
    for (int i = 0; g_next == 0 && i < 1000; i++)
        loop_once(&b); /* the producer state loads first */
    cr_assert_eq(g_next, 3, "the batch was not proposed");
    cr_assert(!q1->answered, "acks=all answered before the commit");
    produce_send(g_ps, q2, batch, len);
    run_until(&q2->answered);
    cr_assert(!q2->answered, "the retry did not wait for its original");
    cr_assert_eq(g_next, 3, "the retry was proposed again");
    partition_repl_role(g_p, false, 3, 3);
    run_until(&q1->answered);
    cr_assert(q1->answered && q1->part.error_code == RL_E_NOT_LEADER);
    /* Node 3's term-3 entries fill 0..2 and commit; this replica follows. */
    partition_repl_durable(g_p, 3);
    partition_repl_commit(g_p, 3);
    run_until(&q2->answered);
    cr_assert(q2->answered, "the retry was never answered");
    cr_assert_eq(q2->part.error_code, RL_E_NOT_LEADER,
                 "the retry was answered %d (base offset %lld) for offsets another leader "
                 "filled", q2->part.error_code, (long long)q2->part.base_offset);
    preq_free(q1);
    preq_free(q2);
    free(q1);
    free(q2);
}

Test(repl_produce, an_append_of_an_earlier_term_is_not_acknowledged_by_a_later_commit)
{
    /* The batch is proposed in term 2; the replica is reported leading again in term 4 (its
     * deposal in between unseen) when offsets 0..2 commit: they were committed in term 4's
     * log, which need not hold the term-2 entry, so the answer is NOT_LEADER. */
    static uint8_t batch[4096];
    uint32_t len = build(g_pid, batch, sizeof(batch));
    struct preq *q1 = calloc(1, sizeof(*q1));
    produce_send(g_ps, q1, batch, len);
    for (int i = 0; g_next == 0 && i < 1000; i++)
        loop_once(&b);
    cr_assert_eq(g_next, 3);
    partition_repl_role(g_p, true, 1, 4);
    partition_repl_durable(g_p, 3);
    partition_repl_commit(g_p, 3);
    run_until(&q1->answered);
    cr_assert(q1->answered);
    cr_assert_eq(q1->part.error_code, RL_E_NOT_LEADER,
                 "a term-2 append was answered %d at a term-4 commit", q1->part.error_code);
    preq_free(q1);
    free(q1);
}

Test(repl_produce, a_committed_append_of_this_leadership_is_acknowledged)
{
    static uint8_t batch[4096];
    uint32_t len = build(g_pid, batch, sizeof(batch));
    struct preq *q1 = calloc(1, sizeof(*q1)), *q2 = calloc(1, sizeof(*q2));
    produce_send(g_ps, q1, batch, len);
    for (int i = 0; g_next == 0 && i < 1000; i++)
        loop_once(&b);
    produce_send(g_ps, q2, batch, len); /* a retry while the original waits */
    partition_repl_durable(g_p, 3);
    partition_repl_commit(g_p, 3);
    run_until(&q2->answered);
    cr_assert(q1->answered && q2->answered);
    cr_assert_eq(q1->part.error_code, 0);
    cr_assert_eq(q1->part.base_offset, 0);
    cr_assert_eq(q2->part.error_code, 0, "the retry: %d", q2->part.error_code);
    cr_assert_eq(q2->part.base_offset, 0, "the retry names the original's offsets");
    cr_assert_eq(g_next, 3, "the retry was appended again");
    preq_free(q1);
    preq_free(q2);
    free(q1);
    free(q2);
}

Test(repl_produce, a_new_leader_knows_the_batches_it_appended_as_a_follower)
{
    /* Producer state follows the log across leaderships: this replica leads term 2 (its state
     * loaded then), follows node 2 in term 3 while node 2 appends producer P's batch at 3..5,
     * and leads again in term 4. P's retry of that batch (its answer was lost with node 2) is a
     * duplicate answered with the original's offsets, not appended a second time. */
    g_write = true;
    static uint8_t other[4096], batch[4096];
    int64_t pid2 = new_producer();
    uint32_t olen = build(pid2, other, sizeof(other));
    uint32_t len = build(g_pid, batch, sizeof(batch));
    struct preq *q1 = calloc(1, sizeof(*q1)), *q2 = calloc(1, sizeof(*q2));
    produce_send(g_ps, q1, other, olen);
    for (int i = 0; g_next == 0 && i < 1000; i++)
        loop_once(&b); /* the producer state loads in this leadership */
    cr_assert_eq(g_next, 3);
    for (int i = 0; i < 50; i++)
        loop_once(&b);
    partition_repl_durable(g_p, 3);
    partition_repl_commit(g_p, 3);
    run_until(&q1->answered);
    cr_assert(q1->answered && q1->part.error_code == 0);
    partition_repl_role(g_p, false, 2, 3);
    log_append(batch, len, 3); /* node 2's entry, replicated here */
    for (int i = 0; i < 50; i++)
        loop_once(&b);
    partition_repl_durable(g_p, 6);
    partition_repl_commit(g_p, 6);
    partition_repl_role(g_p, true, 1, 4);
    produce_send(g_ps, q2, batch, len);
    run_until(&q2->answered);
    cr_assert(q2->answered, "the retry was never answered");
    cr_assert_eq(q2->part.error_code, 0, "the retry: %d", q2->part.error_code);
    cr_assert_eq(g_next, 6, "the retry was appended a second time, at %llu",
                 (unsigned long long)(g_next - 3));
    cr_assert_eq(q2->part.base_offset, 3, "the retry names the original's offsets");
    preq_free(q1);
    preq_free(q2);
    free(q1);
    free(q2);
}

/* Runs the producer-state upkeep as the loop does every second, and lets its loads finish. */
static void idem_second(int64_t *now)
{
    *now += 1000;
    idem_tick(b.id, *now);
    for (int i = 0; i < 50; i++)
        loop_once(&b);
}

/* Node 2's entry, replicated to this follower, made durable and committed. */
static void follow_append(const uint8_t *batch, uint32_t len, uint32_t term)
{
    log_append(batch, len, term);
    for (int i = 0; g_appended < g_appends && i < 1000; i++)
        loop_once(&b);
    cr_assert_eq(g_appended, g_appends, "the follower's append never completed");
    partition_repl_durable(g_p, g_next);
    partition_repl_commit(g_p, g_next);
}

Test(repl_produce, a_follower_keeps_producer_state_so_a_new_leader_replays_only_the_tail)
{
    /* This replica leads term 2, then follows node 2 in term 3 while node 2 appends 400
     * batches of another producer and then P's, each committed, the loop's upkeep running
     * every 20 batches. Leading again in term 4, P's retry is recognised at once: the new leader's
     * state load replays nothing (the follower applied what committed), where a rebuild
     * replayed the whole log. */
    g_write = true;
    int64_t now = NOW_MS;
    static uint8_t batch[4096], other[4096];
    struct preq *q1 = calloc(1, sizeof(*q1)), *q2 = calloc(1, sizeof(*q2));
    uint32_t olen = build(new_producer(), other, sizeof(other));
    produce_send(g_ps, q1, other, olen);
    for (int i = 0; g_next == 0 && i < 1000; i++)
        loop_once(&b);
    cr_assert_eq(g_next, 3);
    for (int i = 0; g_appended < g_appends && i < 1000; i++)
        loop_once(&b);
    partition_repl_durable(g_p, 3);
    partition_repl_commit(g_p, 3);
    run_until(&q1->answered);
    cr_assert(q1->answered && q1->part.error_code == 0);
    partition_repl_role(g_p, false, 2, 3);
    idem_second(&now);
    int64_t q = new_producer();
    for (int k = 0; k < 400; k++) {
        olen = build_seq(q, 3 * k, other, sizeof(other));
        follow_append(other, olen, 3);
        if (k % 20 == 19)
            idem_second(&now);
    }
    uint32_t len = build(g_pid, batch, sizeof(batch));
    uint64_t p_base = g_next;
    follow_append(batch, len, 3);
    idem_second(&now);
    struct idem_stats st;
    idem_get_stats(b.id, &st);
    cr_assert_eq(st.last_replay_end, g_next, "the follower did not apply up to the commit");
    cr_assert_gt(st.snapshots, 0, "the follower never snapshotted its state (its log rolled)");
    uint64_t resumes = st.resumes;
    partition_repl_role(g_p, true, 1, 4);
    uint64_t end = g_next;
    produce_send(g_ps, q2, batch, len);
    run_until(&q2->answered);
    cr_assert(q2->answered, "the retry was never answered");
    cr_assert_eq(q2->part.error_code, 0, "the retry: %d", q2->part.error_code);
    cr_assert_eq(q2->part.base_offset, (int64_t)p_base, "the retry names the original's offsets");
    cr_assert_eq(g_next, end, "the retry was appended a second time");
    idem_get_stats(b.id, &st);
    fprintf(stderr, "repl_produce: the new leader replayed offsets %llu..%llu of a log of %llu "
            "(%llu offsets replayed since start)\n", (unsigned long long)st.last_replay_from,
            (unsigned long long)st.last_replay_end, (unsigned long long)g_next,
            (unsigned long long)st.replayed_offsets);
    cr_assert_eq(st.resumes, resumes + 1, "the new leader did not go on from the follower's state");
    cr_assert_eq(st.last_replay_end - st.last_replay_from, 0,
                 "the new leader replayed offsets %llu..%llu",
                 (unsigned long long)st.last_replay_from, (unsigned long long)st.last_replay_end);
    preq_free(q1);
    preq_free(q2);
    free(q1);
    free(q2);
}

Test(repl_produce, a_truncation_on_a_follower_removes_the_cut_producers_sequence)
{
    /* This replica leads term 2 and appends P's batch at 0..2, never committed; node 3 leads
     * term 3 and cuts it here (its own entry, another producer's, fills 0..2 and commits). The
     * upkeep of the deposed replica rolls its state back. Leading again in term 4, P's retry
     * of the cut batch is new: appended at 3..5, not answered with offsets 0..2, which hold
     * the other producer's records. */
    g_write = true;
    int64_t now = NOW_MS;
    static uint8_t batch[4096], other[4096];
    struct preq *q1 = calloc(1, sizeof(*q1)), *q2 = calloc(1, sizeof(*q2));
    uint32_t len = build(g_pid, batch, sizeof(batch));
    produce_send(g_ps, q1, batch, len);
    for (int i = 0; g_next == 0 && i < 1000; i++)
        loop_once(&b);
    cr_assert_eq(g_next, 3);
    partition_repl_durable(g_p, 3);
    partition_repl_role(g_p, false, 3, 3);
    run_until(&q1->answered);
    cr_assert(q1->answered && q1->part.error_code == RL_E_NOT_LEADER);
    idem_second(&now); /* the deposal seen before the cut */
    cr_assert_eq(plog_truncate_to(partition_plog(g_p), 0), 0);
    g_next = 0;
    uint32_t olen = build(new_producer(), other, sizeof(other));
    follow_append(other, olen, 3);
    idem_second(&now);
    idem_second(&now);
    partition_repl_role(g_p, true, 1, 4);
    produce_send(g_ps, q2, batch, len);
    for (int i = 0; g_next == 3 && i < 1000; i++)
        loop_once(&b);
    cr_assert_eq(g_next, 6, "the retry of a cut batch was not appended (answered %d at %lld)",
                 q2->part.error_code, (long long)q2->part.base_offset);
    partition_repl_durable(g_p, 6);
    partition_repl_commit(g_p, 6);
    run_until(&q2->answered);
    cr_assert(q2->answered && q2->part.error_code == 0, "the retry: %d", q2->part.error_code);
    cr_assert_eq(q2->part.base_offset, 3);
    preq_free(q1);
    preq_free(q2);
    free(q1);
    free(q2);
}

Test(repl_produce, a_follower_takes_up_producer_state_it_never_held)
{
    /* This replica only follows (node 2 leads term 3) and has no producer state: once the
     * committed log holds more than the leaders' control entries, the upkeep takes the state
     * up and keeps it current, so at its first leadership P's retry is recognised after a
     * replay of nothing. */
    g_write = true;
    int64_t now = NOW_MS;
    static uint8_t batch[4096], other[4096];
    struct preq *q2 = calloc(1, sizeof(*q2));
    partition_repl_role(g_p, false, 2, 3);
    int64_t q = new_producer();
    for (int k = 0; k < 40; k++) {
        uint32_t olen = build_seq(q, 3 * k, other, sizeof(other));
        follow_append(other, olen, 3);
        if (k % 10 == 9)
            idem_second(&now);
    }
    uint32_t len = build(g_pid, batch, sizeof(batch));
    uint64_t p_base = g_next;
    follow_append(batch, len, 3);
    idem_second(&now);
    struct idem_stats st;
    idem_get_stats(b.id, &st);
    cr_assert_eq(st.last_replay_end, g_next, "the follower did not take up the state");
    partition_repl_role(g_p, true, 1, 4);
    uint64_t end = g_next;
    produce_send(g_ps, q2, batch, len);
    run_until(&q2->answered);
    cr_assert(q2->answered, "the retry was never answered");
    cr_assert_eq(q2->part.error_code, 0, "the retry: %d", q2->part.error_code);
    cr_assert_eq(q2->part.base_offset, (int64_t)p_base);
    cr_assert_eq(g_next, end, "the retry was appended a second time");
    idem_get_stats(b.id, &st);
    cr_assert_eq(st.last_replay_end - st.last_replay_from, 0,
                 "the new leader replayed offsets %llu..%llu",
                 (unsigned long long)st.last_replay_from, (unsigned long long)st.last_replay_end);
    preq_free(q2);
    free(q2);
}
