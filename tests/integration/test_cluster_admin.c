/*
 * test_cluster_admin: operating a cluster of three real ringlogd voters on 127.0.0.1. Checks:
 * `ringlog cluster status` shows which broker leads the controller, the replicas each broker
 * hosts and leads, and each voter's commit and applied index; creating an existing topic says
 * how the request differs from it; a creation that fails on the broker that proposed it (a
 * file where its partition directory goes) is rolled back on every broker and works once the
 * cause is gone; a replicated topic deleted and created again at once works on every broker
 * (new partition group ids per creation); a broker whose --voters list disagrees with the
 * voters' exits 1 naming the problem, as does a --listen address --voters gives to another node;
 * a restart reads the controller log only after its apply checkpoint (the metrics say how much
 * it read), after a clean stop and after SIGKILL, keeping every topic; a creation that fails
 * on a broker that did not propose it leaves the topic there (the other replicas serve it) and
 * that broker opens its replica once the cause is gone, catching up byte for byte.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_cli.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_cluster.h"

#define N 3
#define START_MS 20000
#define WAIT_MS 20000

static const char *const node_args[] = {"--set", "election.timeout.ms=1000", NULL};
static struct tl_cluster cl;

/* The three voters, and one spare port (cl.ports[N]) that no node listens on. */
static void start_all(void)
{
    tl_cluster_init(&cl, &(struct tl_cluster_conf){.nodes = N, .spare_ports = 1,
                                                   .args = node_args, .start_ms = START_MS});
    tl_cluster_start_all(&cl);
}

static long long metric(int i, const char *name)
{
    static char body[1 << 20];
    if (tl_http_get("127.0.0.1", cl.b[i].http_port, "/metrics", body, sizeof(body), 5000) != 200)
        return -1;
    char pat[128];
    snprintf(pat, sizeof(pat), "\n%s ", name);
    const char *p = strstr(body, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* The controller leader's node id as node i's metrics give it (0: none). */
static int leader_of(int i)
{
    long long l = metric(i, "ringlog_controller_leader");
    return l > 0 ? (int)l : 0;
}

static int wait_leader(void)
{
    uint64_t until = tl_now_ms() + WAIT_MS;
    for (;;) {
        int l = leader_of(0);
        if (l && leader_of(1) == l && leader_of(2) == l &&
            metric(l - 1, "ringlog_cluster_brokers") == N)
            return l;
        cr_assert(tl_now_ms() < until, "no controller leader with every broker registered");
        usleep(20000); /* poll interval; the deadline decides */
    }
}

/* 1: node i's Metadata lists the topic, 0: it says unknown, <0: could not ask. */
static int has_topic(int i, const char *name)
{
    struct tl_conn c;
    Ringlog__MetadataResponse *md;
    if (tl_cluster_metadata(&cl, i, &c, name, &md))
        return -1;
    int out = md->n_topics == 1 && md->topics[0]->error_code == 0;
    tl_close(&c);
    return out;
}

/* Waits until every node says `want` (1 present, 0 absent) about the topic. */
static bool wait_topic(const char *name, int want)
{
    uint64_t until = tl_now_ms() + WAIT_MS;
    for (;;) {
        int agree = 0;
        for (int i = 0; i < N; i++)
            agree += has_topic(i, name) == want;
        if (agree == N)
            return true;
        if (tl_now_ms() > until)
            return false;
        usleep(20000);
    }
}

static int create_on(int i, const char *name, int32_t parts, int32_t rf, char *msg, size_t cap)
{
    struct tl_conn c;
    int rc = tl_cluster_connect(&cl, i, &c);
    if (rc)
        return rc;
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = (char *)name;
    spec.partitions = parts;
    spec.replication_factor = rf;
    rc = tl_create_topic_spec(&c, &spec, msg, cap);
    tl_close(&c);
    return rc;
}

static int delete_on(int i, const char *name)
{
    struct tl_conn c;
    int rc = tl_cluster_connect(&cl, i, &c);
    if (rc)
        return rc;
    rc = tl_delete_topic(&c, name);
    tl_close(&c);
    return rc;
}

static void teardown(void)
{
    tl_cluster_finish(&cl);
}

static void init(void)
{
    signal(SIGPIPE, SIG_IGN);
}

TestSuite(cluster_admin, .init = init, .fini = teardown, .timeout = 240);

/* Runs ringlogd (fresh data directory) with a node id, listener and voters list; returns its
 * exit status (killed after 20 s), its output in out. */
static int run_node(const char *node, const char *listen, const char *vlist, char *out,
                    size_t cap)
{
    char dir[] = "/tmp/ringlog-admin-XXXXXX", outfile[PATH_MAX];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(outfile, sizeof(outfile), "%s/out", dir);
    int fd = open(outfile, O_RDWR | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        char data[PATH_MAX];
        snprintf(data, sizeof(data), "%s/data", dir);
        execl(tl_ringlogd_path(), tl_ringlogd_path(), "--data-dir", data, "--listen", listen,
              "--http", "off", "--node-id", node, "--voters", vlist, (char *)NULL);
        _exit(127);
    }
    int st = -1;
    uint64_t until = tl_now_ms() + 20000;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (tl_now_ms() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            break;
        }
        usleep(10000);
    }
    ssize_t got = pread(fd, out, cap - 1, 0);
    out[got > 0 ? got : 0] = 0;
    close(fd);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void cli_path(char *cli, size_t cap)
{
    snprintf(cli, cap, "%s", tl_ringlogd_path());
    cr_assert_eq(strcmp(cli + strlen(cli) - 9, "/ringlogd"), 0, "%s", cli);
    cli[strlen(cli) - 1] = 0; /* bin/ringlog beside bin/ringlogd */
}

static void check_status(int leader)
{
    char bs[64], cli[PATH_MAX];
    snprintf(bs, sizeof(bs), "127.0.0.1:%u", cl.b[leader % N].port); /* a follower */
    cli_path(cli, sizeof(cli));
    struct tl_cli_run r;
    cr_assert_eq(tl_cli_run(&r, cli, bs, NULL, "cluster", "status", NULL), 0);
    cr_assert(r.status == 0 && strstr(r.out, "APPLIED") && strstr(r.out, "REPLICAS") &&
              strstr(r.out, "LEADS") && strstr(r.out, "CONTROLLER"),
              "status %d out:\n%s\nerr: %s", r.status, r.out, r.err);
    /* The leader's broker line says "leader"; every voter shows its own applied index. */
    char want[64];
    snprintf(want, sizeof(want), "\n%-6d 127.0.0.1:%u", leader, cl.b[leader - 1].port);
    const char *line = strstr(r.out, want);
    cr_assert(line && strstr(line, " leader "), "no leader line for node %d:\n%s", leader,
              r.out);
    for (int i = 1; i <= N; i++) {
        snprintf(want, sizeof(want), "\n%-6d %-10s ", i, "yes");
        line = strstr(r.out, want);
        cr_assert(line, "no voter line for node %d:\n%s", i, r.out);
        unsigned long long commit, applied;
        cr_assert_eq(sscanf(line + strlen(want), "%llu %llu", &commit, &applied), 2,
                     "voter %d has no commit and applied index:\n%s", i, r.out);
        cr_assert(applied > 0 && applied <= commit, "voter %d: %s", i, r.out);
    }
    /* "admin" has 3 partitions of 2 replicas: 6 replicas hosted over the brokers. */
    unsigned hosted = 0, led = 0;
    for (int i = 1; i <= N; i++) {
        snprintf(want, sizeof(want), "\n%-6d 127.0.0.1:%u", i, cl.b[i - 1].port);
        line = strstr(r.out, want);
        cr_assert(line, "no broker line for node %d:\n%s", i, r.out);
        char state[16], role[16];
        unsigned h, l;
        cr_assert_eq(sscanf(line + strlen(want), "%15s %15s %u %u", state, role, &h, &l), 4,
                     "%s", r.out);
        hosted += h;
        led += l;
    }
    cr_assert(hosted == 6 && led == 3, "hosted %u led %u:\n%s", hosted, led, r.out);
    tl_cli_run_free(&r);
}

Test(cluster_admin, status_errors_rollback_and_recreate)
{
    start_all();
    int leader = wait_leader();
    char msg[1024];
    int rc = create_on(leader % N, "admin", 3, 2, msg, sizeof(msg));
    cr_assert_eq(rc, 0, "create: %s %s", rl_strerror(rc), msg);
    cr_assert(wait_topic("admin", 1));
    uint64_t until = tl_now_ms() + WAIT_MS;
    for (;;) { /* every partition has elected its leader (status counts them) */
        long long sum = 0;
        for (int i = 0; i < N; i++)
            sum += metric(i, "ringlog_replica_leading");
        if (sum == 3 || tl_now_ms() > until)
            break;
        usleep(50000);
    }
    check_status(leader);

    /* The same name again: the refusal says what exists and how the request differs. */
    rc = create_on((leader + 1) % N, "admin", 4, 2, msg, sizeof(msg));
    cr_assert_eq(rc, RL_E_TOPIC_EXISTS, "%s %s", rl_strerror(rc), msg);
    cr_assert(strstr(msg, "already exists with 3 partitions, replication factor 2") &&
              strstr(msg, "4 partitions instead of 3"), "%s", msg);

    /* A creation failing on its proposer (a file where its partition directory goes) leaves
     * the topic on no broker, and works once the file is gone. */
    int p = (leader + 1) % N;
    char path[PATH_MAX];
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof(path), "%s/undo-%d", cl.b[p].data_dir, k);
        int fd = open(path, O_WRONLY | O_CREAT, 0644);
        cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
        close(fd);
    }
    rc = create_on(p, "undo", 3, 1, msg, sizeof(msg));
    cr_assert_neq(rc, 0, "the creation should fail on node %d", p + 1);
    cr_assert(wait_topic("undo", 0), "the failed creation was not undone everywhere");
    cr_assert(tl_broker_log_has(&cl.b[p], "proposing its deletion"));
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof(path), "%s/undo-%d", cl.b[p].data_dir, k);
        unlink(path);
    }
    uint64_t retry_until = tl_now_ms() + WAIT_MS;
    while ((rc = create_on(p, "undo", 3, 1, msg, sizeof(msg))) == RL_E_TOPIC_EXISTS &&
           tl_now_ms() < retry_until) /* "still being deleted; retry shortly" */
        usleep(50000);
    cr_assert_eq(rc, 0, "%s %s", rl_strerror(rc), msg);
    cr_assert(wait_topic("undo", 1));

    /* A replicated topic deleted and created again at once, a few times: every broker
     * starts its groups (they have new ids per creation). */
    for (int round = 0; round < 10; round++) {
        /* Through each broker in turn: the proposer and the controller leader accept the
         * name again once they have reaped the old topic, maybe before the third broker has
         * (which then must not start groups of the old ids nor reuse the old directories). */
        rc = create_on(round % N, "again", 2, 3, msg, sizeof(msg));
        uint64_t u = tl_now_ms() + WAIT_MS;
        while (rc == RL_E_TOPIC_EXISTS && tl_now_ms() < u) {
            usleep(5000);
            rc = create_on(round % N, "again", 2, 3, msg, sizeof(msg));
        }
        cr_assert_eq(rc, 0, "round %d: %s %s", round, rl_strerror(rc), msg);
        cr_assert(wait_topic("again", 1), "round %d: not on every broker", round);
        cr_assert_eq(delete_on(leader - 1, "again"), 0);
    }
    for (int i = 0; i < N; i++)
        cr_assert(!tl_broker_log_has(&cl.b[i], "cannot start its raft group"),
                  "node %d could not start a group", i + 1);
}

Test(cluster_admin, disagreeing_voters_and_a_taken_listen_address_exit_1)
{
    start_all();
    wait_leader();
    char out[16384], other[256], listen[32];
    /* Node 4 (outside the quorum) names voter 3 at another port: voters 1, 2 and 3 refuse
     * it, a majority, and it exits saying so. */
    snprintf(other, sizeof(other), "1@127.0.0.1:%u,2@127.0.0.1:%u,3@127.0.0.1:%u", cl.ports[0],
             cl.ports[1], cl.ports[3]);
    snprintf(listen, sizeof(listen), "127.0.0.1:0");
    int st = run_node("4", listen, other, out, sizeof(out));
    cr_assert(st == 1 && strstr(out, "--voters disagrees with the majority of the voters") &&
              strstr(out, "same --voters"), "exit %d:\n%s", st, out);
    /* --listen at the address --voters gives node 2. */
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", cl.ports[1]);
    st = run_node("4", listen, cl.voters, out, sizeof(out));
    cr_assert(st != 0 && strstr(out, "is the address --voters gives to node 2"), "exit %d:\n%s",
              st, out);
    /* The cluster is untouched. */
    char msg[512];
    cr_assert_eq(create_on(0, "still", 1, 1, msg, sizeof(msg)), 0, "%s", msg);
}

/* Waits until node i has applied the controller log up to `index`; returns its
 * ringlog_controller_start_entries_read then (-1 on timeout). */
static long long read_at_start(int i, long long index)
{
    uint64_t until = tl_now_ms() + WAIT_MS;
    while (metric(i, "ringlog_controller_applied_index") < index) {
        if (tl_now_ms() > until)
            return -1;
        usleep(20000);
    }
    return metric(i, "ringlog_controller_start_entries_read");
}

Test(cluster_admin, restart_replays_the_controller_log_after_its_checkpoint)
{
    start_all();
    int leader = wait_leader();
    enum { TOPICS = 90 };
    char name[32], msg[512];
    for (int t = 0; t < TOPICS; t++) {
        snprintf(name, sizeof(name), "ck%02d", t);
        int rc = create_on(leader - 1, name, 1, 1, msg, sizeof(msg));
        cr_assert_eq(rc, 0, "%s: %s %s", name, rl_strerror(rc), msg);
    }
    int f = leader % N; /* a follower */
    cr_assert(wait_topic("ck89", 1));
    long long ck = metric(f, "ringlog_controller_checkpoint_index");
    long long applied = metric(f, "ringlog_controller_applied_index");
    cr_assert(ck >= 64 && applied >= TOPICS, "checkpoint %lld applied %lld", ck, applied);

    /* A clean stop checkpoints what it applied: the restart reads (almost) nothing. */
    cr_assert_eq(tl_broker_stop(&cl.b[f], SIGTERM, 20000), 0);
    cr_assert_eq(tl_broker_restart(&cl.b[f], START_MS), 0);
    cr_assert(wait_topic("ck00", 1) && wait_topic("ck89", 1));
    long long read = read_at_start(f, applied);
    cr_assert(read >= 0 && read < 10, "a restart after a clean stop read %lld entries", read);

    /* SIGKILL: at most the entries since the last periodic checkpoint. */
    for (int t = TOPICS; t < TOPICS + 20; t++) {
        snprintf(name, sizeof(name), "ck%02d", t);
        cr_assert_eq(create_on(leader - 1, name, 1, 1, msg, sizeof(msg)), 0, "%s", msg);
    }
    cr_assert(wait_topic("ck109", 1));
    long long total = metric(f, "ringlog_controller_applied_index");
    tl_broker_kill(&cl.b[f]);
    cr_assert_eq(tl_broker_restart(&cl.b[f], START_MS), 0);
    cr_assert(wait_topic("ck109", 1) && wait_topic("ck00", 1));
    read = read_at_start(f, total);
    cr_assert(read >= 0 && read <= 64 + 8 && read < total - 20,
              "a restart after SIGKILL read %lld of %lld entries", read, total);
    for (int t = 0; t < TOPICS + 20; t += 7) {
        snprintf(name, sizeof(name), "ck%02d", t);
        cr_assert_eq(has_topic(f, name), 1, "%s lost", name);
    }
}

/* The node (0-based) leading partition 0 of `topic` by the nodes' metrics, other than `skip`;
 * -1 when none says so yet. */
static int partition_leader(const char *topic, int skip)
{
    char name[160];
    snprintf(name, sizeof(name),
             "ringlog_partition_role{topic=\"%s\",partition=\"0\",role=\"leader\"}", topic);
    for (int i = 0; i < N; i++)
        if (i != skip && metric(i, name) == 1)
            return i;
    return -1;
}

Test(cluster_admin, a_replica_that_cannot_be_created_is_retried_until_it_opens)
{
    start_all();
    int leader = wait_leader();
    int p = leader % N, q = (p + 1) % N; /* p proposes; q cannot create its replica */
    char path[PATH_MAX], msg[1024];
    snprintf(path, sizeof(path), "%s/held-0", cl.b[q].data_dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    close(fd);
    int rc = create_on(p, "held", 1, 3, msg, sizeof(msg));
    cr_assert_eq(rc, 0, "create through node %d: %s %s", p + 1, rl_strerror(rc), msg);
    cr_assert(wait_topic("held", 1), "node %d does not list the topic its replica failed in",
              q + 1);
    cr_assert(tl_broker_log_has(&cl.b[q], "could not be created"));
    cr_assert_eq(metric(q, "ringlog_replicas_missing"), 1);

    /* The two other replicas elect a leader and commit acks=all writes meanwhile. */
    int pl = -1;
    for (uint64_t until = tl_now_ms() + WAIT_MS; (pl = partition_leader("held", q)) < 0;
         usleep(20000))
        cr_assert(tl_now_ms() < until, "no leader of held-0 among the two open replicas");
    uint8_t *batch = NULL;
    int blen = tl_make_batch_sized(16, 1000, &batch);
    cr_assert_gt(blen, 0);
    struct tl_conn lc;
    cr_assert_eq(tl_cluster_connect(&cl, pl, &lc), 0);
    for (int k = 0; k < 20; k++)
        for (uint64_t until = tl_now_ms() + 10000;; usleep(20000)) {
            int prc = tl_produce(&lc, "held", 0, batch, (uint32_t)blen, -1, NULL);
            if (prc == 0)
                break; /* the first tries may come before the leader's no-op commits */
            cr_assert(tl_now_ms() < until, "acks=all produce %d: %s", k, rl_strerror(prc));
        }
    tl_close(&lc);
    free(batch);
    /* A retry with the file still in its way fails and keeps the replica missing. */
    for (uint64_t until = tl_now_ms() + 15000;
         !tl_broker_log_has(&cl.b[q], "still cannot be opened"); usleep(50000))
        cr_assert(tl_now_ms() < until, "node %d never retried its replica", q + 1);
    cr_assert_eq(metric(q, "ringlog_replicas_missing"), 1, "the replica counts as open with "
                 "the file still in its way");

    /* The cause gone, the next retry opens the replica, which catches up from the leader. */
    cr_assert_eq(unlink(path), 0);
    for (uint64_t until = tl_now_ms() + 45000; metric(q, "ringlog_replicas_missing") != 0;
         usleep(50000))
        cr_assert(tl_now_ms() < until, "node %d did not open its replica after the file went",
                  q + 1);
    cr_assert(tl_broker_log_has(&cl.b[q], "its replica here is open now"));
    int nodes[N] = {0, 1, 2};
    tl_cluster_expect_same_log(&cl, "held", 0, nodes, N);
}
