/*
 * test_decom: decommissioned brokers stay out of placement, and a running move can be
 * cancelled, on four real ringlogd processes on 127.0.0.1 (nodes 1-3 vote in the controller,
 * node 4 is a broker outside the quorum).
 *
 *   1. decommission_survives_restart_and_install: `ringlog cluster remove-broker 4` on a broker
 *      holding nothing still marks it (cluster status, Metadata, /v1/cluster and /metrics on
 *      every node); a topic with 3 replicas (live brokers - 1) over 4 partitions never lands on
 *      it, one needing it (4 replicas) and a reassign naming it are refused with the fix in the
 *      message; the mark survives a restart of every node; `ringlog cluster recommission 4`
 *      makes it eligible (a 4-replica topic is created); decommissioned again while a voter is
 *      down and the controller log is truncated past it (controller.snapshot.entries), the
 *      voter catches up by snapshot install and knows the mark.
 *   2. cancel_a_move: the broker a partition moves to is stopped (SIGSTOP) so its learner never
 *      catches up; `ringlog topic reassign T P --cancel` returns the partition to its original
 *      replicas (the learner removed, `topic describe` shows no target), a second --cancel says
 *      there is nothing to cancel; `ringlog cluster remove-broker N --cancel` does the same for
 *      the moves off N and clears N's mark; once continued, the stopped broker deletes the
 *      replica it never got.
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

#define N 4
#define RF 3
#define START_MS 20000
#define WAIT_MS 30000

/* Snapshots every checkpoint (64 applied entries) once 20 entries lie before it. */
static const char *const decom_args[] = {"--set", "election.timeout.ms=1500",
                                         "--set", "broker.session.timeout.ms=6000",
                                         "--set", "controller.snapshot.entries=20", NULL};
/* A stopped broker stays "alive" for the whole test (moves may still name it). */
static const char *const cancel_args[] = {"--set", "election.timeout.ms=1500",
                                          "--set", "broker.session.timeout.ms=120000", NULL};
static struct tl_cluster cl;
static char cli[PATH_MAX];
static char cli_boot[256];

static void start_cluster(const char *const *args)
{
    tl_cluster_init(&cl, &(struct tl_cluster_conf){.nodes = N, .voters = 3, .args = args,
                                                   .start_ms = START_MS});
    snprintf(cli_boot, sizeof(cli_boot), "%s", cl.boot);
    cr_assert_eq(tl_cli_path(cli, sizeof(cli)), 0);
    tl_cluster_start_all(&cl);
}

static void teardown(void)
{
    for (int i = 0; i < N; i++) /* a broker a failed check left stopped */
        if (cl.b[i].pid > 0)
            kill(cl.b[i].pid, SIGCONT);
    tl_cluster_finish(&cl);
}

/* The CLI is given every broker but node `id` (0: all of them). */
static void cli_without(int32_t id)
{
    cli_boot[0] = 0;
    for (int i = 0; i < N; i++)
        if (i != id - 1)
            snprintf(cli_boot + strlen(cli_boot), sizeof(cli_boot) - strlen(cli_boot),
                     "%s127.0.0.1:%u", cli_boot[0] ? "," : "", cl.ports[i]);
}

/* Runs `ringlog ARGS`, checks its exit status and that stdout (want_out) or stderr (want_err)
 * says the text given (NULL: anything). */
#define CLI_EXPECT(want_status, want_out, want_err, ...)                                       \
    do {                                                                                        \
        struct tl_cli_run r_;                                                                   \
        cr_assert_eq(tl_cli_run(&r_, cli, cli_boot, NULL, __VA_ARGS__, NULL), 0);               \
        cr_assert_eq(r_.status, (want_status), "ringlog exit %d, want %d; stdout: %s "         \
                     "stderr: %s", r_.status, (want_status), r_.out, r_.err);                   \
        const char *o_ = (want_out), *e_ = (want_err);                                          \
        cr_assert(!o_ || strstr(r_.out, o_), "stdout \"%s\" does not say \"%s\"", r_.out, o_);  \
        cr_assert(!e_ || strstr(r_.err, e_), "stderr \"%s\" does not say \"%s\"", r_.err, e_);  \
        tl_cli_run_free(&r_);                                                                   \
    } while (0)

/* Node i's Metadata of the brokers: how many it lists, and whether `id` is decommissioned
 * there (-1: node i does not answer). */
static int decommissioned_on(int i, int32_t id, uint32_t *brokers)
{
    struct tl_conn c;
    Ringlog__MetadataResponse *md;
    if (!tl_broker_alive(&cl.b[i]) || tl_cluster_metadata(&cl, i, &c, NULL, &md))
        return -1;
    int d = 0;
    for (size_t k = 0; k < md->n_brokers; k++)
        d |= md->brokers[k]->node_id == id && md->brokers[k]->decommissioned;
    if (brokers)
        *brokers = (uint32_t)md->n_brokers;
    tl_close(&c);
    return d;
}

/* Whether node i's /v1/cluster says broker `id` is decommissioned (-1: no answer). */
static int decommissioned_json(int i, int32_t id)
{
    static char body[1 << 16];
    if (tl_http_get("127.0.0.1", cl.b[i].http_port, "/v1/cluster", body, sizeof(body), 3000) !=
        200)
        return -1;
    char key[32];
    snprintf(key, sizeof(key), "{\"id\":%d,", id);
    const char *b = strstr(body, key), *end = b ? strchr(b, '}') : NULL;
    const char *d = b ? strstr(b, "\"decommissioned\":true") : NULL;
    return b && end ? d && d < end : -1;
}

/* Waits until every running node agrees on whether `id` is decommissioned (Metadata,
 * /v1/cluster, the gauge) with all N brokers registered. */
static void wait_mark(int32_t id, bool want)
{
    for (uint64_t until = tl_now_ms() + WAIT_MS;; usleep(50000)) {
        bool ok = true;
        for (int i = 0; i < N && ok; i++) {
            if (!tl_broker_alive(&cl.b[i]))
                continue;
            uint32_t nb = 0;
            ok = decommissioned_on(i, id, &nb) == want && nb == N &&
                 decommissioned_json(i, id) == want &&
                 tl_cluster_metric(&cl, i, "ringlog_cluster_brokers_decommissioned") == want;
        }
        if (ok)
            return;
        cr_assert(tl_now_ms() < until, "the nodes do not agree that broker %d is %s", id,
                  want ? "decommissioned" : "eligible");
    }
}

/* The replicas of every partition of `topic` as node i sees them (rf each, into r). Returns
 * the partition count, or -1 while node i does not know every partition's replicas. */
static int replicas_on(int i, const char *topic, int32_t *r, uint32_t rf, uint32_t max_parts)
{
    struct tl_conn c;
    Ringlog__MetadataResponse *md;
    if (tl_cluster_metadata(&cl, i, &c, topic, &md))
        return -1;
    int n = -1;
    if (md->n_topics == 1 && md->topics[0]->error_code == 0 &&
        md->topics[0]->n_partitions <= max_parts) {
        n = (int)md->topics[0]->n_partitions;
        for (size_t k = 0; k < md->topics[0]->n_partitions && n > 0; k++) {
            const Ringlog__PartitionMetadata *pm = md->topics[0]->partitions[k];
            if (pm->n_replicas != rf || pm->partition >= max_parts)
                n = -1;
            else
                memcpy(r + (size_t)pm->partition * rf, pm->replicas, rf * sizeof(int32_t));
        }
    }
    tl_close(&c);
    return n;
}

static Ringlog__TopicSpec spec_of(const char *name, int parts, int rf)
{
    Ringlog__TopicSpec s = RINGLOG__TOPIC_SPEC__INIT;
    s.name = (char *)name;
    s.partitions = parts;
    s.replication_factor = rf;
    return s;
}

/* Creates a topic through node `via` and checks that none of its replicas is on `avoid`. */
static void create_avoiding(int via, const char *name, int parts, int32_t avoid)
{
    char msg[800] = "";
    Ringlog__TopicSpec s = spec_of(name, parts, RF);
    int rc = tl_cluster_create_topic(&cl, via, &s, msg, sizeof(msg), 100, WAIT_MS);
    cr_assert_eq(rc, 0, "topic %s: %s (%s)", name, rl_strerror(rc), msg);
    int32_t r[8 * RF];
    int n = -1;
    for (uint64_t until = tl_now_ms() + WAIT_MS; (n = replicas_on(via, name, r, RF, 8)) != parts;
         usleep(50000))
        cr_assert(tl_now_ms() < until, "node %d does not show %s's replicas", via + 1, name);
    for (int k = 0; k < parts * RF; k++)
        cr_assert_neq(r[k], avoid, "%s-%d has a replica on decommissioned broker %d", name,
                      k / RF, avoid);
}

/* A creation needing the decommissioned broker is refused, naming the fix. */
static void expect_create_refused(int via, const char *name, int rf)
{
    char msg[800] = "";
    Ringlog__TopicSpec s = spec_of(name, 1, rf);
    int rc = tl_cluster_create_topic(&cl, via, &s, msg, sizeof(msg), 200, 2000);
    cr_assert_eq(rc, RL_E_INVALID_REPLICATION, "topic %s: %s (%s)", name, rl_strerror(rc), msg);
    cr_assert(strstr(msg, "decommissioned") && strstr(msg, "ringlog cluster recommission"),
              "the refusal does not name the decommissioned broker and the fix: %s", msg);
}

/* The controller leader's node index, once the voters agree on one. */
static int ctl_leader(void)
{
    for (uint64_t until = tl_now_ms() + WAIT_MS;; usleep(50000)) {
        int64_t l = -1;
        bool agree = true;
        for (int i = 0; i < 3; i++) {
            if (!tl_broker_alive(&cl.b[i]))
                continue;
            int64_t v = tl_cluster_metric(&cl, i, "ringlog_controller_leader");
            agree &= l < 0 || v == l;
            l = v;
        }
        if (agree && l > 0)
            return (int)l - 1;
        cr_assert(tl_now_ms() < until, "no controller leader agreed on");
    }
}

Test(decom, decommission_survives_restart_and_install, .fini = teardown, .timeout = 400)
{
    start_cluster(decom_args);
    for (uint64_t until = tl_now_ms() + WAIT_MS;; usleep(50000)) {
        uint32_t nb = 0;
        if (decommissioned_on(0, 4, &nb) == 0 && nb == N)
            break;
        cr_assert(tl_now_ms() < until, "the %d brokers did not register", N);
    }
    /* Broker 4 holds nothing: the removal has no move but still records the mark. */
    CLI_EXPECT(0, "broker 4 is decommissioned", NULL, "cluster", "remove-broker", "4");
    wait_mark(4, true);
    {
        struct tl_cli_run r;
        cr_assert_eq(tl_cli_run(&r, cli, cli_boot, NULL, "cluster", "status", NULL), 0);
        cr_assert_eq(r.status, 0, "%s", r.err);
        const char *row = strstr(r.out, "\n4 ");
        const char *first = strstr(r.out, "decommissioned");
        cr_assert(row && first > row && !strstr(first + 1, "decommissioned"),
                  "cluster status does not show broker 4 (only) decommissioned: %s", r.out);
        fprintf(stderr, "cluster status after remove-broker 4:\n%s", r.out);
        tl_cli_run_free(&r);
    }
    create_avoiding(0, "d3", 4, 4);
    expect_create_refused(1, "d4", 4);
    int32_t r[8 * RF];
    cr_assert_eq(replicas_on(0, "d3", r, RF, 8), 4);
    char list[32];
    snprintf(list, sizeof(list), "%d,%d,4", r[0], r[1]);
    CLI_EXPECT(1, NULL, "ringlog cluster recommission 4", "topic", "reassign", "d3", "0",
               "--replicas", list);
    CLI_EXPECT(1, NULL, "not decommissioned", "cluster", "recommission", "3");

    /* Every node restarts (metadata.log replay, or the apply checkpoint and what follows). */
    for (int i = 0; i < N; i++)
        cr_assert_eq(tl_broker_stop(&cl.b[i], SIGTERM, 20000), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(tl_broker_restart(&cl.b[i], START_MS), 0);
    wait_mark(4, true);
    create_avoiding(2, "d3b", 4, 4);
    expect_create_refused(0, "d4", 4);

    /* Recommissioned, broker 4 may be placed on: a topic needing all four is created. */
    CLI_EXPECT(0, "recommissioned", NULL, "cluster", "recommission", "4");
    wait_mark(4, false);
    char msg[800] = "";
    Ringlog__TopicSpec s = spec_of("e4", 1, 4);
    int rc = tl_cluster_create_topic(&cl, 0, &s, msg, sizeof(msg), 100, WAIT_MS);
    cr_assert_eq(rc, 0, "topic e4 after recommission: %s (%s)", rl_strerror(rc), msg);
    CLI_EXPECT(0, NULL, NULL, "topic", "delete", "e4");

    /* Decommissioned while voter f is down; the leader truncates its controller log past f,
     * which then catches up by snapshot install and must know the mark. */
    int l = ctl_leader(), f = (l + 1) % 3;
    tl_broker_kill(&cl.b[f]);
    cli_without(f + 1);
    CLI_EXPECT(0, "broker 4 is decommissioned", NULL, "cluster", "remove-broker", "4");
    int64_t start = tl_cluster_metric(&cl, l, "ringlog_controller_log_start");
    char name[32];
    for (int t = 0; tl_cluster_metric(&cl, l, "ringlog_controller_log_start") < start + 128;
         t++) {
        cr_assert_lt(t, 600, "the leader's controller log start stays at %" PRId64,
                     tl_cluster_metric(&cl, l, "ringlog_controller_log_start"));
        snprintf(name, sizeof(name), "s%03d", t);
        Ringlog__TopicSpec one = spec_of(name, 1, 1);
        rc = tl_cluster_create_topic(&cl, l, &one, msg, sizeof(msg), 100, WAIT_MS);
        cr_assert_eq(rc, 0, "%s: %s (%s)", name, rl_strerror(rc), msg);
    }
    cr_assert_eq(tl_broker_restart(&cl.b[f], START_MS), 0);
    for (uint64_t until = tl_now_ms() + WAIT_MS;
         tl_cluster_metric(&cl, f, "ringlog_controller_snapshot_installs_total") < 1;
         usleep(50000))
        cr_assert(tl_now_ms() < until, "node %d did not install a controller snapshot", f + 1);
    cli_without(0);
    wait_mark(4, true);
    create_avoiding(f, "d3c", 4, 4);
}

/* --- cancel ---------------------------------------------------------------------------------- */

/* Partition 0 of `topic` as node i sees it: replicas and target (n_target 0: no move). */
struct p0 {
    int32_t replicas[RF], target[RF];
    uint32_t n_target;
    int32_t leader;
};

static int p0_on(int i, const char *topic, struct p0 *p)
{
    struct tl_conn c;
    Ringlog__MetadataResponse *md;
    if (!tl_broker_alive(&cl.b[i]) || tl_cluster_metadata(&cl, i, &c, topic, &md))
        return -1;
    int rc = -1;
    if (md->n_topics == 1 && md->topics[0]->error_code == 0 &&
        md->topics[0]->n_partitions >= 1 && md->topics[0]->partitions[0]->n_replicas == RF) {
        const Ringlog__PartitionMetadata *pm = md->topics[0]->partitions[0];
        memcpy(p->replicas, pm->replicas, sizeof(p->replicas));
        p->n_target = pm->n_target_replicas <= RF ? (uint32_t)pm->n_target_replicas : 0;
        if (p->n_target) /* target_replicas is NULL when there is none */
            memcpy(p->target, pm->target_replicas, p->n_target * sizeof(int32_t));
        p->leader = pm->leader;
        rc = 0;
    }
    tl_close(&c);
    return rc;
}

/* Waits until every node but `skip` (stopped; 0: none) shows partition 0 with exactly the
 * replicas `want`, no move running, and a leader. */
static void wait_back(const char *topic, const int32_t *want, int32_t skip)
{
    struct p0 p = {0};
    for (uint64_t until = tl_now_ms() + WAIT_MS;; usleep(50000)) {
        bool ok = true;
        for (int i = 0; i < N && ok; i++)
            if (i != skip - 1)
                ok = p0_on(i, topic, &p) == 0 && p.n_target == 0 && p.leader > 0 &&
                     !memcmp(p.replicas, want, sizeof(p.replicas));
        if (ok)
            return;
        cr_assert(tl_now_ms() < until, "%s-0 did not return to %d,%d,%d (shows %d,%d,%d, "
                  "%u targets)", topic, want[0], want[1], want[2], p.replicas[0],
                  p.replicas[1], p.replicas[2], p.n_target);
    }
}

/* Waits until node i's log says `what` about broker `id` ("move: adding learner 4"). */
static void wait_log(int i, const char *what, int32_t id)
{
    char needle[96];
    snprintf(needle, sizeof(needle), "%s %d", what, id);
    for (uint64_t until = tl_now_ms() + WAIT_MS; !tl_broker_log_has(&cl.b[i], needle);
         usleep(20000))
        cr_assert(tl_now_ms() < until, "node %d never logged \"%s\"", i + 1, needle);
}

/* `topic describe` shows partition 0's row with a target (moving) or "-". */
static void expect_describe(const char *topic, bool moving)
{
    struct tl_cli_run r;
    cr_assert_eq(tl_cli_run(&r, cli, cli_boot, NULL, "topic", "describe", topic, NULL), 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *hdr = strstr(r.out, "moving to\n"); /* the replicas table's header */
    const char *row = hdr ? hdr + strlen("moving to\n") : NULL;
    const char *eol = row && !strncmp(row, "0 ", 2) ? strchr(row, '\n') : NULL;
    cr_assert(row && eol, "topic describe %s: %s", topic, r.out);
    bool dash = eol[-1] == '-';
    cr_assert(dash != moving, "topic describe %s %s a move: %s", topic,
              moving ? "does not show" : "still shows", r.out);
    tl_cli_run_free(&r);
}

Test(decom, cancel_a_move, .fini = teardown, .timeout = 300)
{
    start_cluster(cancel_args);
    for (uint64_t until = tl_now_ms() + WAIT_MS;; usleep(50000)) {
        uint32_t nb = 0;
        if (decommissioned_on(0, 4, &nb) == 0 && nb == N)
            break;
        cr_assert(tl_now_ms() < until, "the %d brokers did not register", N);
    }
    char msg[800] = "";
    Ringlog__TopicSpec s = spec_of("mc", 1, RF);
    int rc = tl_cluster_create_topic(&cl, 0, &s, msg, sizeof(msg), 100, WAIT_MS);
    cr_assert_eq(rc, 0, "topic mc: %s (%s)", rl_strerror(rc), msg);
    struct p0 p;
    for (uint64_t until = tl_now_ms() + WAIT_MS; p0_on(0, "mc", &p) || p.leader <= 0;
         usleep(50000))
        cr_assert(tl_now_ms() < until, "mc-0 has no leader");
    int32_t orig[RF], in = 0, out = 0;
    memcpy(orig, p.replicas, sizeof(orig));
    for (int32_t id = 1; id <= N; id++) {
        bool has = false;
        for (int k = 0; k < RF; k++)
            has |= orig[k] == id;
        if (!has)
            in = id;
        else if (id != p.leader)
            out = id;
    }
    cr_assert(in && out);
    CLI_EXPECT(1, NULL, "nothing to cancel", "topic", "reassign", "mc", "0", "--cancel");
    /* The broker moving in never catches up: stopped before the move starts. */
    cli_without(in);
    cr_assert_eq(kill(cl.b[in - 1].pid, SIGSTOP), 0);
    char list[32];
    int32_t to[RF];
    for (int k = 0; k < RF; k++)
        to[k] = orig[k] == out ? in : orig[k];
    snprintf(list, sizeof(list), "%d,%d,%d", to[0], to[1], to[2]);
    CLI_EXPECT(0, "moving mc-0", NULL, "topic", "reassign", "mc", "0", "--replicas", list);
    wait_log(p.leader - 1, "move: adding learner", in);
    expect_describe("mc", true);
    CLI_EXPECT(0, "cancelled", NULL, "topic", "reassign", "mc", "0", "--cancel");
    wait_back("mc", orig, in);
    wait_log(p.leader - 1, "move: removing learner", in);
    expect_describe("mc", false);
    CLI_EXPECT(1, NULL, "nothing to cancel", "topic", "reassign", "mc", "0", "--cancel");

    /* remove-broker's moves, cancelled: back to the origin, and the broker eligible again. */
    char os[16];
    snprintf(os, sizeof(os), "%d", out);
    CLI_EXPECT(0, "moving mc-0", NULL, "cluster", "remove-broker", os);
    for (uint64_t until = tl_now_ms() + WAIT_MS; decommissioned_on(0, out, NULL) != 1;
         usleep(50000))
        cr_assert(tl_now_ms() < until, "broker %d is not shown decommissioned", out);
    expect_describe("mc", true);
    CLI_EXPECT(0, "cancelled", NULL, "cluster", "remove-broker", os, "--cancel");
    wait_back("mc", orig, in);
    for (int i = 0; i < N; i++)
        if (i != in - 1)
            cr_assert_eq(decommissioned_on(i, out, NULL), 0, "node %d: broker %d still "
                         "decommissioned after the cancelled removal", i + 1, out);
    CLI_EXPECT(1, NULL, "no removal to cancel", "cluster", "remove-broker", os, "--cancel");

    /* Continued, the broker that never caught up deletes the replica it was given. */
    cr_assert_eq(kill(cl.b[in - 1].pid, SIGCONT), 0);
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/mc-0", cl.b[in - 1].data_dir);
    struct stat st;
    for (uint64_t until = tl_now_ms() + WAIT_MS; stat(dir, &st) == 0; usleep(50000))
        cr_assert(tl_now_ms() < until, "node %d still holds %s", in, dir);
    cli_without(0);
    wait_back("mc", orig, 0);
}
