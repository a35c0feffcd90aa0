/*
 * test_reassign: moving partition replicas on four real ringlogd processes on 127.0.0.1 (nodes
 * 1-3 are the controller's voters, node 4 a broker outside the quorum).
 *
 *   1. remove_broker_under_load: a topic of 3 partitions with 3 replicas takes keyed,
 *      idempotent acks=all records from a producer thread while `ringlog cluster remove-broker`
 *      moves every replica off the broker holding the most; every partition's replicas (in every
 *      live broker's Metadata) end up without it, with no move left running, within a deadline;
 *      the time is printed. Bad requests are refused with clear errors (unknown broker, replica
 *      count mismatch, a move already running, removing a broker when no other is free). Then
 *      every acknowledged record is read back exactly once, each key in order, the new replicas'
 *      committed logs equal the others' byte for byte, and the removed broker deletes its logs.
 *   2. leader_killed_mid_move: `ringlog topic reassign` moves a partition off its leader, and the
 *      leader is SIGKILLed right after it added the learner; a second move of the partition is
 *      refused while this one runs; the new leader finishes the move and nothing acknowledged is
 *      lost; the replica that moved in restarts and holds the same committed bytes as the others.
 *      Then the partition moves back onto the old leader, whose replica left the group: it
 *      rejoins as a learner from what its earlier stay left (or from nothing), catches up under
 *      load and is promoted, and the replica that had moved in leaves again.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/ringlog.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_cli.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_cluster.h"
#include "tests/lib/tl_load.h"

#define N 4
#define RF 3
#define MAXP 3
#define KEYS 300
#define START_MS 20000
#define MOVE_MS 60000

static const char *const node_args[] = {"--set", "election.timeout.ms=1500",
                                         "--set", "broker.session.timeout.ms=6000", NULL};
static struct tl_cluster cl;
static char cli[PATH_MAX];
static char cli_boot[256]; /* the brokers the CLI is given: the live ones */
static const char *topic;
static uint32_t parts;

/* Nodes 1-3 vote, node 4 does not; the CLI binary sits beside ringlogd. */
static void start_cluster(void)
{
    tl_cluster_init(&cl, &(struct tl_cluster_conf){.nodes = N, .voters = 3, .args = node_args,
                                                   .start_ms = START_MS});
    snprintf(cli_boot, sizeof(cli_boot), "%s", cl.boot);
    cr_assert_eq(tl_cli_path(cli, sizeof(cli)), 0);
    tl_cluster_start_all(&cl);
}

static void teardown(void)
{
    tl_cluster_finish(&cl);
}

/* One partition as a node's Metadata shows it. */
struct view {
    int32_t leader;
    uint32_t n_replicas, n_target;
    int32_t replicas[RF], target[RF];
};

/* Node i's Metadata of the topic (every partition), and the brokers it knows in *brokers.
 * Returns 0 or -1. */
static int view_of(int i, struct view *v, uint32_t *brokers)
{
    if (!tl_broker_alive(&cl.b[i]))
        return -1;
    struct tl_conn c;
    Ringlog__MetadataResponse *md;
    if (tl_cluster_metadata(&cl, i, &c, topic, &md))
        return -1;
    int rc = -1;
    if (md->n_topics == 1 && md->topics[0]->error_code == 0 &&
        md->topics[0]->n_partitions == parts) {
        const Ringlog__TopicMetadata *tm = md->topics[0];
        rc = 0;
        if (brokers)
            *brokers = (uint32_t)md->n_brokers;
        for (uint32_t k = 0; k < parts; k++) {
            const Ringlog__PartitionMetadata *pm = tm->partitions[k];
            if (pm->partition >= parts || pm->n_replicas != RF || pm->n_target_replicas > RF) {
                rc = -1;
                break;
            }
            struct view *x = &v[pm->partition];
            x->leader = pm->leader;
            x->n_replicas = RF;
            memcpy(x->replicas, pm->replicas, RF * sizeof(int32_t));
            x->n_target = (uint32_t)pm->n_target_replicas;
            if (x->n_target)
                memcpy(x->target, pm->target_replicas, x->n_target * sizeof(int32_t));
        }
    }
    tl_close(&c);
    return rc;
}

static bool has(const int32_t *ids, uint32_t n, int32_t id)
{
    for (uint32_t k = 0; k < n; k++)
        if (ids[k] == id)
            return true;
    return false;
}

/* The brokers node i's Metadata lists, or 0. */
static uint32_t brokers_of(int i)
{
    struct tl_conn c;
    Ringlog__MetadataResponse *md;
    if (tl_cluster_metadata(&cl, i, &c, NULL, &md))
        return 0;
    uint32_t n = (uint32_t)md->n_brokers;
    tl_close(&c);
    return n;
}

/* Whether node i's Metadata reports broker `id` fenced. */
static bool fenced_on(int i, int32_t id)
{
    struct tl_conn c;
    Ringlog__MetadataResponse *md;
    if (tl_cluster_metadata(&cl, i, &c, NULL, &md))
        return false;
    bool f = false;
    for (size_t k = 0; k < md->n_brokers; k++)
        f |= md->brokers[k]->node_id == id && md->brokers[k]->fenced;
    tl_close(&c);
    return f;
}

/* Waits for the four registrations, creates the topic, and waits until every node knows a
 * leader of every partition. */
static void create_topic(const char *name, uint32_t n)
{
    topic = name;
    parts = n;
    for (uint64_t until = tl_now_ms() + 30000; brokers_of(0) < N; usleep(50000))
        cr_assert(tl_now_ms() < until, "the %d brokers did not register within 30 s", N);
    char msg[600] = "";
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = (char *)name;
    spec.partitions = (int32_t)n;
    spec.replication_factor = RF;
    int rc = tl_cluster_create_topic(&cl, 0, &spec, msg, sizeof(msg), 50, 30000);
    cr_assert_eq(rc, 0, "topic %s: %s (%s)", name, rl_strerror(rc), msg);
    struct view v[MAXP];
    for (uint64_t until = tl_now_ms() + 30000;; usleep(50000)) {
        bool ok = true;
        for (int i = 0; i < N && ok; i++) {
            ok = view_of(i, v, NULL) == 0;
            for (uint32_t k = 0; k < n && ok; k++)
                ok = v[k].leader > 0;
        }
        if (ok)
            return;
        cr_assert(tl_now_ms() < until, "topic %s: no leader of every partition within 30 s",
                  name);
    }
}

/* Polls until every live node shows every partition without `gone` among its replicas, with
 * no move running, and a leader known (gone 0: only no move running). Returns the ms taken. */
static uint64_t wait_moved(int32_t gone, const int32_t *want0, uint64_t timeout_ms)
{
    uint64_t t0 = tl_now_ms();
    struct view v[MAXP];
    for (uint64_t until = t0 + timeout_ms;; usleep(50000)) {
        bool ok = true, any = false;
        for (int i = 0; i < N && ok; i++) {
            if (!tl_broker_alive(&cl.b[i]))
                continue;
            ok = view_of(i, v, NULL) == 0;
            any = true;
            for (uint32_t k = 0; k < parts && ok; k++) {
                ok = v[k].n_target == 0 && v[k].leader > 0 && !has(v[k].replicas, RF, gone);
                for (uint32_t r = 0; want0 && k == 0 && r < RF && ok; r++)
                    ok = has(v[0].replicas, RF, want0[r]);
            }
        }
        if (ok && any)
            return tl_now_ms() - t0;
        cr_assert(tl_now_ms() < until, "the replicas did not move off node %d within %" PRIu64
                  " ms (partition 0 shows replicas %d,%d,%d, %u targets)", gone, timeout_ms,
                  v[0].replicas[0], v[0].replicas[1], v[0].replicas[2], v[0].n_target);
    }
}

/* --- load and read-back ----------------------------------------------------------------------- */

static struct tl_load load;
static int preload_records, preload_read;

/* The load: tl_load's keyed stream, about 2,000 records a second. */
static struct tl_load_conf load_conf(void)
{
    return (struct tl_load_conf){.topic = topic, .partitions = (int)parts, .keys = KEYS,
                                 .pace_every = 10, .pace_us = 5000,
                                 .delivery_timeout_ms = 120000, .retry_backoff_ms = 20,
                                 .retry_backoff_max_ms = 200};
}

/* RINGLOG_REASSIGN_PRELOAD_MB=M: M MiB of 1 KiB records (values starting with 'p') written
 * before the move by a producer of their own, so its catch-up has a log of that size to copy
 * (default 0). */
static void preload(void)
{
    const char *env = getenv("RINGLOG_REASSIGN_PRELOAD_MB");
    int mb = env ? atoi(env) : 0;
    if (mb <= 0)
        return;
    static struct tl_cluster_acks acks;
    static char val[1024];
    char err[512];
    struct tl_load settings = {.conf = load_conf(), .boot = cl.boot};
    struct rl_conf *conf = tl_load_client_conf_new(&settings, tl_cluster_acks_on_delivery, &acks);
    struct rl_producer *prod = rl_producer_new(conf, err, sizeof(err));
    rl_conf_destroy(conf);
    cr_assert(prod, "%s", err);
    uint64_t x = 88172645463325252ull, t0 = tl_now_ms();
    for (int i = 0; i < mb * 1024; i++) {
        for (size_t k = 1; k < sizeof(val); k++) { /* incompressible: a compressed batch */
            x ^= x << 13;                          /* would copy far fewer bytes */
            x ^= x >> 7;
            x ^= x << 17;
            val[k] = (char)(' ' + x % 94);
        }
        val[0] = 'p';
        char key[16];
        int kl = snprintf(key, sizeof(key), "p%d", i % 64);
        int rc = rl_producer_send(prod, topic, RL_PARTITION_ANY, key, (size_t)kl, val,
                                  sizeof(val), 0, NULL);
        cr_assert_eq(rc, 0, "preload: %s", rl_producer_last_error(prod));
    }
    cr_assert_eq(rl_producer_flush(prod, 300000), 0, "preload: %s", rl_producer_last_error(prod));
    preload_records = mb * 1024;
    tl_cluster_acks_expect(&acks, preload_records);
    rl_producer_destroy(prod, 5000);
    fprintf(stderr, "preloaded %d MiB (%d records of 1 KiB) in %" PRIu64 " ms\n", mb,
            preload_records, tl_now_ms() - t0);
}

static void start_load(void)
{
    if (!strcmp(topic, "mv"))
        preload();
    struct tl_load_conf lc = load_conf();
    tl_load_start(&load, cl.boot, &lc);
}

/* Stops the load, checks that every record was acknowledged and reads each back exactly once,
 * each key's records in order (and the preload's records, once each, besides). */
static void stop_load_and_read(void)
{
    int records = tl_load_stop(&load);
    struct rl_consumer *k = tl_load_reader_new(&load);
    int *next = calloc(KEYS, sizeof(int));
    cr_assert(next);
    int total = 0;
    for (uint64_t until = tl_now_ms() + 60000; total < records;) {
        cr_assert(tl_now_ms() < until, "read %d of %d records: %s", total, records,
                  rl_consumer_last_error(k));
        struct rl_record r;
        int rc = rl_consumer_poll(k, 200, &r);
        cr_assert_geq(rc, 0, "poll: %s", rl_consumer_last_error(k));
        if (rc == 0)
            continue;
        if (r.value_len > 0 && ((const char *)r.value)[0] == 'p') {
            preload_read++; /* a preload record (RINGLOG_REASSIGN_PRELOAD_MB) */
            continue;
        }
        tl_cluster_keyed_expect_next(next, KEYS, &r);
        total++;
    }
    struct rl_record r;
    for (uint64_t until = tl_now_ms() + 60000; preload_read < preload_records;) {
        cr_assert(tl_now_ms() < until, "read %d of %d preload records", preload_read,
                  preload_records);
        int rc = rl_consumer_poll(k, 200, &r);
        cr_assert_geq(rc, 0, "poll: %s", rl_consumer_last_error(k));
        preload_read += rc > 0 && r.value_len > 0 && ((const char *)r.value)[0] == 'p';
        cr_assert(rc == 0 || (r.value_len > 0 && ((const char *)r.value)[0] == 'p'),
                  "a record beyond the %d written", records);
    }
    cr_assert_eq(rl_consumer_poll(k, 500, &r), 0, "a record beyond the %d written", records);
    free(next);
    rl_consumer_destroy(k);
    fprintf(stderr, "%s: %d acknowledged records read back exactly once\n", topic, records);
}

/* --- byte-equal logs -------------------------------------------------------------------------- */

/* Every replica of every partition holds the same committed bytes. */
static void check_logs_equal(void)
{
    struct view v[MAXP];
    cr_assert_eq(view_of(0, v, NULL), 0);
    for (uint32_t p = 0; p < parts; p++) {
        int nodes[RF];
        for (int r = 0; r < RF; r++)
            nodes[r] = v[p].replicas[r] - 1;
        tl_cluster_expect_same_log(&cl, topic, p, nodes, RF);
    }
}

/* The CLI is given every broker but node `id` (stopped: a connection to it would fail). */
static void cli_without(int32_t id)
{
    cli_boot[0] = 0;
    for (int i = 0; i < N; i++)
        if (i != id - 1)
            snprintf(cli_boot + strlen(cli_boot), sizeof(cli_boot) - strlen(cli_boot),
                     "%s127.0.0.1:%u", cli_boot[0] ? "," : "", cl.ports[i]);
}

/* --- the CLI ---------------------------------------------------------------------------------- */

/* Runs `ringlog ARGS` and checks its exit status and, when want_err is set, that its stderr
 * says it. */
#define CLI_EXPECT(want_status, want_err, ...)                                                 \
    do {                                                                                        \
        struct tl_cli_run r_;                                                                   \
        cr_assert_eq(tl_cli_run(&r_, cli, cli_boot, NULL, __VA_ARGS__, NULL), 0);               \
        cr_assert_eq(r_.status, (want_status), "ringlog exit %d, want %d; stdout: %s "         \
                     "stderr: %s", r_.status, (want_status), r_.out, r_.err);                   \
        const char *w_ = (want_err);                                                            \
        cr_assert(!w_ || strstr(r_.err, w_), "stderr \"%s\" does not say \"%s\"", r_.err, w_);  \
        tl_cli_run_free(&r_);                                                                   \
    } while (0)

Test(reassign, remove_broker_under_load, .fini = teardown, .timeout = 400)
{
    start_cluster();
    create_topic("mv", 3);
    struct view v[MAXP];
    cr_assert_eq(view_of(0, v, NULL), 0);
    int count[N + 1] = {0};
    for (uint32_t p = 0; p < parts; p++)
        for (int r = 0; r < RF; r++)
            count[v[p].replicas[r]]++;
    int32_t gone = 1;
    for (int32_t id = 2; id <= N; id++)
        if (count[id] > count[gone])
            gone = id;
    start_load();
    tl_load_wait_acks(&load, 1000, "before the move");

    CLI_EXPECT(1, "not registered", "cluster", "remove-broker", "9");
    CLI_EXPECT(1, "name as many brokers", "topic", "reassign", "mv", "0", "--replicas", "1,2");
    CLI_EXPECT(1, "not registered", "topic", "reassign", "mv", "0", "--replicas", "1,2,7");
    CLI_EXPECT(1, "does not exist", "topic", "reassign", "nope", "0", "--replicas", "1,2,3");
    CLI_EXPECT(2, NULL, "topic", "reassign", "mv", "0");

    char gs[16];
    snprintf(gs, sizeof(gs), "%d", gone);
    uint64_t t0 = tl_now_ms();
    CLI_EXPECT(0, NULL, "cluster", "remove-broker", gs);
    /* A second move of a moving partition is refused while the first runs. */
    struct view w[MAXP];
    cr_assert_eq(view_of(0, w, NULL), 0);
    int running = -1;
    for (uint32_t p = 0; p < parts && running < 0; p++)
        if (w[p].n_target)
            running = (int)p;
    if (running >= 0) {
        char ps[16], list[32];
        snprintf(ps, sizeof(ps), "%d", running);
        snprintf(list, sizeof(list), "%d,%d,%d", w[running].target[1], w[running].target[2],
                 w[running].target[0]);
        CLI_EXPECT(1, "already running", "topic", "reassign", "mv", ps, "--replicas", list);
        struct tl_cli_run r;
        cr_assert_eq(tl_cli_run(&r, cli, cli_boot, NULL, "topic", "describe", "mv", NULL), 0);
        cr_assert(strstr(r.out, "moving to"), "topic describe shows no move: %s", r.out);
        const char *tbl = strstr(r.out, "partition  replicas");
        fprintf(stderr, "topic describe mv during the move:\n%s", tbl ? tbl : r.out);
        tl_cli_run_free(&r);
    }
    uint64_t took = wait_moved(gone, NULL, MOVE_MS);
    uint64_t total = tl_now_ms() - t0;
    fprintf(stderr, "remove-broker %d (%d replicas of %u partitions) under acks=all load: all "
            "moved %" PRIu64 " ms after the command (%" PRIu64 " ms after it returned)\n", gone,
            count[gone], parts, total, took);
    cr_log_info("remove-broker took %" PRIu64 " ms", total);
    tl_load_wait_acks(&load, 500, "after the move");

    stop_load_and_read();
    check_logs_equal();

    /* The removed broker deletes its logs of the topic. */
    for (uint32_t p = 0; p < parts; p++) {
        char dir[600];
        snprintf(dir, sizeof(dir), "%s/mv-%u", cl.b[gone - 1].data_dir, p);
        struct stat st;
        for (uint64_t until = tl_now_ms() + 30000; stat(dir, &st) == 0; usleep(50000))
            cr_assert(tl_now_ms() < until, "node %d still holds %s", gone, dir);
    }

    /* The removed broker is shut down; once it is fenced, three brokers are left for replicas
     * of 3, and none of them can go. */
    cr_assert_eq(tl_broker_stop(&cl.b[gone - 1], SIGTERM, 20000), 0);
    cli_without(gone);
    for (uint64_t until = tl_now_ms() + 30000; !fenced_on(gone == 1 ? 1 : 0, gone);
         usleep(100000))
        cr_assert(tl_now_ms() < until, "node %d is not reported fenced", gone);
    int32_t other = gone == 1 ? 2 : 1;
    snprintf(gs, sizeof(gs), "%d", other);
    CLI_EXPECT(1, "no other live broker is free", "cluster", "remove-broker", gs);
}

Test(reassign, leader_killed_mid_move, .fini = teardown, .timeout = 300)
{
    start_cluster();
    create_topic("mk", 1);
    start_load();
    tl_load_wait_acks(&load, 1000, "before the move");
    struct view v[MAXP];
    cr_assert_eq(view_of(0, v, NULL), 0);
    int32_t leader = v[0].leader, in = 0;
    for (int32_t id = 1; id <= N; id++)
        if (!has(v[0].replicas, RF, id))
            in = id;
    int32_t want[RF];
    uint32_t n = 0;
    for (int r = 0; r < RF; r++)
        if (v[0].replicas[r] != leader)
            want[n++] = v[0].replicas[r];
    want[n++] = in;
    cr_assert_eq(n, RF);
    char list[32];
    snprintf(list, sizeof(list), "%d,%d,%d", want[0], want[1], want[2]);
    CLI_EXPECT(0, NULL, "topic", "reassign", "mk", "0", "--replicas", list);
    /* Mid-move: the leader has added the learner, and is killed before anything else. */
    for (uint64_t until = tl_now_ms() + 30000;
         !tl_broker_log_has(&cl.b[leader - 1], "move: adding learner"); usleep(2000))
        cr_assert(tl_now_ms() < until, "leader %d did not start the move", leader);
    tl_broker_kill(&cl.b[leader - 1]);
    cli_without(leader);
    /* The move cannot end before another replica is elected: a second one is refused. */
    char back[32];
    snprintf(back, sizeof(back), "%d,%d,%d", v[0].replicas[0], v[0].replicas[1],
             v[0].replicas[2]);
    CLI_EXPECT(1, "already running", "topic", "reassign", "mk", "0", "--replicas", back);
    uint64_t took = wait_moved(leader, want, MOVE_MS);
    bool finished_by_other = false;
    for (int i = 0; i < N; i++)
        finished_by_other |= i != leader - 1 &&
                             tl_broker_log_has(&cl.b[i], "recording the end of the move");
    cr_assert(finished_by_other, "no new leader recorded the end of the move");
    fprintf(stderr, "leader %d killed mid-move: the move to %s finished %" PRIu64 " ms later\n",
            leader, list, took);
    tl_load_wait_acks(&load, 500, "after the move");
    cr_assert_eq(tl_broker_restart(&cl.b[leader - 1], START_MS), 0);
    /* The replica that moved in restarts: its membership comes back from its own log. */
    cr_assert_eq(tl_broker_stop(&cl.b[in - 1], SIGTERM, 20000), 0);
    cr_assert_eq(tl_broker_restart(&cl.b[in - 1], START_MS), 0);
    tl_load_wait_acks(&load, 500, "after the new replica restarted");

    /* Back onto the old leader, whose replica left the group while it was down, once every
     * node lists it registered again (a move naming an unregistered broker is refused). */
    for (int i = 0; i < N; i++)
        for (uint64_t until = tl_now_ms() + 30000;
             brokers_of(i) < N || fenced_on(i, leader); usleep(50000))
            cr_assert(tl_now_ms() < until, "node %d does not list node %d registered again "
                      "within 30 s of its restart", i + 1, leader);
    snprintf(cli_boot, sizeof(cli_boot), "%s", cl.boot);
    CLI_EXPECT(0, NULL, "topic", "reassign", "mk", "0", "--replicas", back);
    took = wait_moved(in, v[0].replicas, MOVE_MS);
    fprintf(stderr, "moved back to %s (onto node %d, which had left the group) in %" PRIu64
            " ms\n", back, leader, took);
    tl_load_wait_acks(&load, 500, "after the move back");
    stop_load_and_read();
    check_logs_equal();
}
