/*
 * test_cluster: three real ringlogd processes on 127.0.0.1 as one cluster (--node-id,
 * --voters). Checks: the voters elect one controller leader and every broker registers; a topic
 * created through a follower is seen by all three; after the leader's SIGKILL another voter
 * leads within twice the longest election timeout and topic creation works again (the times are
 * printed); the killed node restarts, keeps what it had and catches up with what it missed;
 * `ringlog cluster status` names the leader, its term and the brokers; a lone voter (no
 * majority) refuses a change and says why. A second test starts ringlogd with bad cluster
 * input (wrong node id for a directory, another voters list, a voter id of 0, duplicate ids,
 * a listener the list does not name, a cluster's directory without --voters)
 * and checks each is refused at start with a message that names the problem. A third runs
 * three voters and a broker outside them: topics created through each are seen by all, every
 * node restarts in turn keeping them, and the broker killed and kept down is reported fenced.
 * A fourth turns a single broker's directory into a one-voter cluster keeping its topic.
 * A fifth places a 6-partition topic over three brokers: every broker's Metadata names the
 * same owner per partition, each broker owns some and keeps no log of the others, a produce,
 * fetch or list-offsets sent to a non-owner gets NOT_LEADER, and libringlog bootstrapped to one
 * broker writes 1,000 keyed records to all partitions that a consumer reads back exactly once.
 * RINGLOG_CLUSTER_FAILOVERS=N (default 2) sets how many leader kills the first test times.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/ringlog.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_cli.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_cluster.h"

#define N 3  /* voters */
#define NB 4 /* brokers: the voters and one outside the quorum */
#define ELECTION_MS 1000 /* election.timeout.ms (the default): elections after [1, 2) s */
#define START_MS 20000
#define SESSION_MS "2000" /* broker.session.timeout.ms: a silent broker is fenced after 2 s */

static const char *const node_args[] = {"--set", "election.timeout.ms=1000",
                                         "--set", "broker.session.timeout.ms=" SESSION_MS, NULL};
/* Free ports for the native listeners: --voters must name them before the brokers start. */
static const struct tl_cluster_conf cluster_conf = {.nodes = NB, .voters = N, .args = node_args,
                                                    .start_ms = START_MS};
static struct tl_cluster cl;

/* A number after "key": in a JSON body, or -1. */
static long long json_num(const char *body, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(body, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* GET /v1/cluster of node i: 0 with the body, or an error. */
static int cluster_json(int i, char *body, size_t cap)
{
    if (!tl_broker_alive(&cl.b[i]))
        return -ECHILD;
    int st = tl_http_get("127.0.0.1", cl.b[i].http_port, "/v1/cluster", body, cap, 2000);
    return st == 200 ? 0 : st < 0 ? st : -EPROTO;
}

/* The node (1..N) every live node names as leader, with a term above min_term, once that node
 * says it leads; 0 when not (yet) agreed. */
static int agreed_leader(long long min_term, long long *term)
{
    static char body[65536];
    int leader = 0;
    for (int i = 0; i < NB; i++) {
        if (!tl_broker_alive(&cl.b[i]))
            continue;
        if (cluster_json(i, body, sizeof(body)))
            return 0;
        long long l = json_num(body, "leader"), t = json_num(body, "term");
        if (l <= 0 || t <= min_term || (leader && l != leader))
            return 0;
        leader = (int)l;
        *term = t;
    }
    if (!leader || cluster_json(leader - 1, body, sizeof(body)) ||
        !strstr(body, "\"role\":\"leader\""))
        return 0;
    return leader;
}

static int wait_leader(long long min_term, long long *term, uint32_t deadline_ms)
{
    uint64_t until = tl_now_ms() + deadline_ms;
    for (;;) {
        int l = agreed_leader(min_term, term);
        if (l || tl_now_ms() > until)
            return l;
        usleep(20000); /* poll interval, not synchronization: the deadline decides */
    }
}

/* Whether node i's Metadata lists topic `name` without error. */
static bool has_topic(int i, const char *name)
{
    return tl_cluster_has_topic(&cl, i, name);
}

static bool wait_topic_everywhere(const char *name, uint32_t deadline_ms)
{
    uint64_t until = tl_now_ms() + deadline_ms;
    for (;;) {
        bool all = true;
        for (int i = 0; i < NB; i++)
            if (tl_broker_alive(&cl.b[i]) && !has_topic(i, name))
                all = false;
        if (all)
            return true;
        if (tl_now_ms() > until)
            return false;
        usleep(20000);
    }
}

static int create_on(int i, const char *name, char *msg, size_t cap)
{
    struct tl_conn c;
    int rc = tl_cluster_connect(&cl, i, &c);
    if (rc)
        return rc;
    rc = tl_create_topic(&c, name, 2, NULL, msg, cap);
    tl_close(&c);
    return rc;
}

static void init(void)
{
    signal(SIGPIPE, SIG_IGN);
}

/* InitProducerId (new producer) on node i: the response code, the id in *pid. */
static int init_pid_on(int i, int64_t *pid)
{
    struct tl_conn c;
    cr_assert_eq(tl_cluster_connect(&cl, i, &c), 0);
    Ringlog__InitProducerIdRequest ip = RINGLOG__INIT_PRODUCER_ID_REQUEST__INIT;
    ip.producer_id = -1;
    ip.producer_epoch = -1;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_INIT_PRODUCER_ID;
    req.init_producer_id = &ip;
    Ringlog__Response *resp;
    int rc = tl_call(&c, &req, NULL, 0, 10000, &resp, NULL, NULL);
    cr_assert_eq(rc, 0, "InitProducerId transport: %s", rl_strerror(rc));
    rc = resp->error_code;
    *pid = resp->init_producer_id ? resp->init_producer_id->producer_id : -1;
    tl_close(&c);
    return rc;
}

static void teardown(void)
{
    tl_cluster_finish(&cl);
}

TestSuite(cluster, .init = init, .fini = teardown, .timeout = 240);

Test(cluster, three_voters_elect_share_metadata_fail_over_and_catch_up)
{
    tl_cluster_init(&cl, &cluster_conf);
    for (int i = 0; i < N; i++)
        tl_cluster_start_node(&cl, i);
    long long term = 0;
    int leader = wait_leader(0, &term, 10000);
    cr_assert_gt(leader, 0, "no controller leader within 10 s");
    /* Every broker registers (node id + incarnation) through the controller log. */
    static char body[65536];
    uint64_t until = tl_now_ms() + 10000;
    for (;;) {
        cr_assert_eq(cluster_json(leader - 1, body, sizeof(body)), 0);
        int n = 0;
        for (const char *p = body; (p = strstr(p, "\"incarnation\"")); p++)
            n++;
        if (n == N)
            break;
        cr_assert(tl_now_ms() < until, "only %d of %d brokers registered: %s", n, N, body);
        usleep(20000);
    }
    /* A topic created through a follower is committed by the leader and seen by all. */
    int follower = leader % N; /* index of node leader+1 (mod N): not the leader */
    char msg[512] = "";
    cr_assert_eq(create_on(follower, "orders", msg, sizeof(msg)), 0, "%s", msg);
    cr_assert(has_topic(follower, "orders"), "the proposer answered before applying");
    cr_assert(wait_topic_everywhere("orders", 5000), "orders not on every broker");
    /* Created twice through another node: refused by the leader's check. */
    cr_assert_eq(create_on((follower + 1) % N, "orders", msg, sizeof(msg)), RL_E_TOPIC_EXISTS,
                 "%s", msg);

    /* The same new topic created at once through two brokers: each passes its own broker's
     * check, and the leader's check against everything committed before lets one through. */
    struct tl_conn c1, c2;
    cr_assert_eq(tl_connect(&c1, "127.0.0.1", cl.b[0].port, 2000), 0);
    cr_assert_eq(tl_connect(&c2, "127.0.0.1", cl.b[1].port, 2000), 0);
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = "twice";
    spec.partitions = 1;
    Ringlog__TopicSpec *specs[1] = {&spec};
    Ringlog__CreateTopicsRequest ct = RINGLOG__CREATE_TOPICS_REQUEST__INIT;
    ct.n_topics = 1;
    ct.topics = specs;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_CREATE_TOPICS;
    req.create_topics = &ct;
    cr_assert_geq(tl_send(&c1, &req, NULL, 0), 0);
    req.correlation_id = 0;
    cr_assert_geq(tl_send(&c2, &req, NULL, 0), 0);
    int codes[2];
    struct tl_conn *cs[2] = {&c1, &c2};
    for (int k = 0; k < 2; k++) {
        Ringlog__Response *resp;
        cr_assert_eq(tl_recv(cs[k], 10000, &resp, NULL, NULL), 0);
        codes[k] = resp->create_topics->topics[0]->error_code;
    }
    tl_close(&c1);
    tl_close(&c2);
    cr_assert((codes[0] == 0) != (codes[1] == 0) &&
                  (codes[0] == RL_E_TOPIC_EXISTS || codes[1] == RL_E_TOPIC_EXISTS),
              "two creations of one topic answered %d and %d", codes[0], codes[1]);

    /* Producer ids come in blocks recorded through the controller: every broker gets ids,
     * and no two brokers hand out the same one (their blocks never overlap). */
    int64_t pids[N][3];
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 3; k++)
            cr_assert_eq(init_pid_on(i, &pids[i][k]), 0, "InitProducerId on node %d", i + 1);
    for (int i = 0; i < N; i++)
        for (int k = 0; k < 3; k++)
            for (int j = 0; j < N; j++)
                for (int l = 0; l < 3; l++)
                    cr_assert(i == j || pids[i][k] / 1000 != pids[j][l] / 1000,
                              "nodes %d and %d hand out ids of one block (%lld, %lld)", i + 1,
                              j + 1, (long long)pids[i][k], (long long)pids[j][l]);

    /* `ringlog cluster status` names the leader, its term and the three brokers. */
    char bs[64];
    snprintf(bs, sizeof(bs), "127.0.0.1:%u", cl.b[follower].port);
    char cli[PATH_MAX];
    snprintf(cli, sizeof(cli), "%s", tl_ringlogd_path());
    cr_assert_eq(strcmp(cli + strlen(cli) - 9, "/ringlogd"), 0, "%s", cli);
    cli[strlen(cli) - 1] = 0; /* bin/ringlog beside bin/ringlogd */
    struct tl_cli_run r;
    cr_assert_eq(tl_cli_run(&r, cli, bs, NULL, "cluster", "status", NULL), 0);
    char want[64];
    snprintf(want, sizeof(want), "controller: leader node %d, term %lld", leader, term);
    cr_assert(r.status == 0 && strstr(r.out, want) && tl_count_lines(r.out) >= 9,
              "status %d out:\n%s\nerr: %s", r.status, r.out, r.err);
    tl_cli_run_free(&r);
    static char metrics[1 << 20];
    cr_assert_eq(tl_http_get("127.0.0.1", cl.b[leader - 1].http_port, "/metrics", metrics,
                             sizeof(metrics), 5000), 200);
    cr_assert(strstr(metrics, "ringlog_controller_is_leader 1\n") &&
              strstr(metrics, "ringlog_cluster_brokers 3\n"), "%s", metrics);

    /* SIGKILL the leader: another voter leads within twice the longest election timeout, and
     * a topic can be created again. */
    const char *env = getenv("RINGLOG_CLUSTER_FAILOVERS");
    int kills = env ? atoi(env) : 2;
    for (int k = 0; k < kills; k++) {
        int victim = leader - 1;
        tl_broker_kill(&cl.b[victim]);
        uint64_t t0 = tl_now_ms();
        long long old_term = term;
        leader = wait_leader(old_term, &term, 2 * 2 * ELECTION_MS);
        uint64_t t_elect = tl_now_ms() - t0;
        cr_assert_gt(leader, 0, "no new leader within %d ms of the leader's SIGKILL",
                     2 * 2 * ELECTION_MS);
        cr_assert_neq(leader, victim + 1);
        char name[32];
        snprintf(name, sizeof(name), "after-kill-%d", k);
        int rc = -1;
        int via = leader % N == victim ? (leader + 1) % N : leader % N; /* a live node */
        while (rc && tl_now_ms() - t0 < 20000)
            rc = create_on(via, name, msg, sizeof(msg));
        uint64_t t_create = tl_now_ms() - t0;
        cr_assert_eq(rc, 0, "no topic creation within 20 s of the kill: %s", msg);
        printf("failover %d: node %d killed; node %d leads term %lld after %" PRIu64
               " ms; first topic creation after %" PRIu64 " ms\n", k + 1, victim + 1, leader,
               term, t_elect, t_create);
        /* The killed node restarts, keeps what it had and catches up with what it missed. */
        cr_assert_eq(tl_broker_restart(&cl.b[victim], START_MS), 0);
        cr_assert(wait_topic_everywhere(name, 10000), "node %d did not catch up", victim + 1);
        cr_assert(has_topic(victim, "orders"));
        long long t2;
        cr_assert_gt(wait_leader(0, &t2, 10000), 0);
    }

    /* A lone voter (the other two stopped) refuses to change metadata and says why. */
    int lone = leader - 1;
    for (int i = 0; i < N; i++) {
        if (i == lone)
            continue;
        int st = tl_broker_stop(&cl.b[i], SIGTERM, 20000);
        if (st)
            tl_broker_dump_log(&cl.b[i], 80);
        cr_assert_eq(st, 0, "node %d stopped with status %d", i + 1, st);
    }
    int rc = create_on(lone, "no-quorum", msg, sizeof(msg));
    cr_assert_eq(rc, RL_E_REQUEST_TIMED_OUT, "%d: %s", rc, msg);
    cr_assert(strstr(msg, "a majority of the 3 voters must be running"), "%s", msg);
}

/* Runs ringlogd with args on data_dir; returns its exit status, its stderr in err. */
static int run_bad(const char *data_dir, const char *node, const char *listen,
                   const char *vlist, char *err, size_t cap)
{
    char errfile[] = "/tmp/ringlog-cluster-errXXXXXX";
    int efd = mkstemp(errfile);
    cr_assert_geq(efd, 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(efd, 2);
        dup2(efd, 1);
        const char *argv[16];
        int n = 0;
        argv[n++] = tl_ringlogd_path();
        argv[n++] = "--data-dir";
        argv[n++] = data_dir;
        argv[n++] = "--listen";
        argv[n++] = listen;
        argv[n++] = "--http";
        argv[n++] = "off";
        if (node) {
            argv[n++] = "--node-id";
            argv[n++] = node;
        }
        if (vlist) {
            argv[n++] = "--voters";
            argv[n++] = vlist;
        }
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
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
    ssize_t got = pread(efd, err, cap - 1, 0);
    err[got > 0 ? got : 0] = 0;
    close(efd);
    unlink(errfile);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(cluster, bad_cluster_input_is_refused_at_start)
{
    tl_cluster_init(&cl, &cluster_conf);
    tl_cluster_start_node(&cl, 0); /* binds node 1 and the cluster's id to its directory */
    cr_assert_eq(tl_broker_stop(&cl.b[0], SIGTERM, 20000), 0);
    char listen[32], listen2[32], err[8192], other[256];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", cl.ports[0]);
    snprintf(listen2, sizeof(listen2), "127.0.0.1:%u", cl.ports[1]);
    const char *dir = cl.b[0].data_dir;
    struct {
        const char *what, *node, *listen, *voters, *want;
    } cases[] = {
        {"wrong node id for the directory", "2", listen2, NULL, "belongs to node 1, not node 2"},
        {"another voters list", "1", NULL, other, "belongs to another cluster"},
        {"a voter with id 0", "1", NULL, "0@127.0.0.1:1", "with an id >= 1"},
        {"duplicate ids", "1", NULL, "1@127.0.0.1:1,1@127.0.0.1:2", "appears twice"},
        {"a listener the list does not name", "1", "127.0.0.1:1", NULL,
         "the voters list must name each node's --listen address"},
        {"a cluster's directory without --voters", NULL, NULL, "", "belongs to node 1 of a "
         "cluster"},
        {"--voters without --node-id", NULL, NULL, NULL, "--voters needs --node-id"},
    };
    snprintf(other, sizeof(other), "1@127.0.0.1:%u,2@127.0.0.1:%u", cl.ports[0], cl.ports[1]);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *v = cases[i].voters ? (cases[i].voters[0] ? cases[i].voters : NULL)
                                        : cl.voters;
        int st = run_bad(dir, cases[i].node, cases[i].listen ? cases[i].listen : listen, v, err,
                         sizeof(err));
        cr_expect(st != 0 && strstr(err, cases[i].want),
                  "%s: exit %d, expected \"%s\" in:\n%s", cases[i].what, st, cases[i].want,
                  err);
    }
    /* Still the same node of the same cluster: it starts as it did. */
    cr_assert_eq(tl_broker_restart(&cl.b[0], START_MS), 0);
}

Test(cluster, a_broker_outside_the_voters_joins_and_every_node_restarts_in_turn)
{
    /* Three voters and node 4, which --voters does not name: it registers, joins the
     * controller log as a learner, and applies what the voters commit. Topics created through
     * each of the four are seen by all; restarting each node in turn (SIGTERM, start) keeps
     * every topic, and the cluster keeps taking changes. */
    tl_cluster_init(&cl, &cluster_conf);
    for (int i = 0; i < NB; i++)
        tl_cluster_start_node(&cl, i);
    long long term = 0;
    cr_assert_gt(wait_leader(0, &term, 10000), 0, "no controller leader within 10 s");
    const char *names[NB] = {"from-1", "from-2", "from-3", "from-4"};
    char msg[512];
    for (int i = 0; i < NB; i++) {
        int rc = -1;
        uint64_t until = tl_now_ms() + 10000; /* node 4 forwards once it knows the leader */
        while (rc && tl_now_ms() < until)
            rc = create_on(i, names[i], msg, sizeof(msg));
        cr_assert_eq(rc, 0, "create through node %d: %s", i + 1, msg);
    }
    for (int i = 0; i < NB; i++)
        cr_assert(wait_topic_everywhere(names[i], 5000), "%s not on every broker", names[i]);
    for (int i = 0; i < NB; i++) {
        cr_assert_eq(tl_broker_stop(&cl.b[i], SIGTERM, 20000), 0, "node %d stop", i + 1);
        cr_assert_eq(tl_broker_restart(&cl.b[i], START_MS), 0, "node %d restart", i + 1);
        cr_assert_gt(wait_leader(0, &term, 10000), 0, "no leader after node %d restarted",
                     i + 1);
        for (int k = 0; k < NB; k++)
            cr_assert(has_topic(i, names[k]), "node %d lost %s across its restart", i + 1,
                      names[k]);
        char name[32];
        snprintf(name, sizeof(name), "after-restart-%d", i + 1);
        int rc = -1;
        uint64_t until = tl_now_ms() + 10000;
        while (rc && tl_now_ms() < until)
            rc = create_on(i, name, msg, sizeof(msg));
        cr_assert_eq(rc, 0, "create through node %d after its restart: %s", i + 1, msg);
        cr_assert(wait_topic_everywhere(name, 5000), "%s not on every broker", name);
    }
    /* Node 4 killed and kept down is reported fenced by the leader once its session times
     * out; back, it is alive again. */
    int leader = wait_leader(0, &term, 10000);
    cr_assert_gt(leader, 0);
    tl_broker_kill(&cl.b[3]);
    static char body[65536];
    const char *fenced = "{\"id\":4,";
    for (uint64_t until = tl_now_ms() + 10000;; usleep(50000)) {
        cr_assert_eq(cluster_json(leader - 1, body, sizeof(body)), 0);
        const char *p = strstr(strstr(body, "\"brokers\""), fenced);
        if (p && !strncmp(strstr(p, "\"state\":"), "\"state\":\"fenced\"", 16))
            break;
        cr_assert(tl_now_ms() < until, "node 4 not fenced 10 s after its kill: %s", body);
    }
    cr_assert_eq(tl_broker_restart(&cl.b[3], START_MS), 0);
    for (uint64_t until = tl_now_ms() + 10000;; usleep(50000)) {
        cr_assert_eq(cluster_json(leader - 1, body, sizeof(body)), 0);
        const char *p = strstr(strstr(body, "\"brokers\""), fenced);
        if (p && !strncmp(strstr(p, "\"state\":"), "\"state\":\"alive\"", 15))
            break;
        cr_assert(tl_now_ms() < until, "node 4 not alive again: %s", body);
    }
}

Test(cluster, a_single_brokers_directory_joins_a_cluster_keeping_its_topics)
{
    /* A directory written by a single broker (no --voters) starts as node 1 of a one-voter
     * cluster: its topic is kept, topics created through the controller are added, and
     * after another restart both are there exactly once (the controller records already in
     * metadata.log are not applied again, the new ones are). */
    tl_cluster_init(&cl, &cluster_conf);
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", cl.ports[0]);
    const char *single[] = {"--listen", listen, NULL};
    cr_assert_eq(tl_broker_start(&cl.b[0], single, START_MS), 0);
    char msg[512];
    cr_assert_eq(create_on(0, "legacy", msg, sizeof(msg)), 0, "%s", msg);
    cr_assert_eq(tl_broker_stop(&cl.b[0], SIGTERM, 20000), 0);
    snprintf(cl.voters, sizeof(cl.voters), "1@127.0.0.1:%u", cl.ports[0]);
    snprintf(cl.b[0].extra[cl.b[0].n_extra++], sizeof(cl.b[0].extra[0]), "--node-id");
    snprintf(cl.b[0].extra[cl.b[0].n_extra++], sizeof(cl.b[0].extra[0]), "1");
    snprintf(cl.b[0].extra[cl.b[0].n_extra++], sizeof(cl.b[0].extra[0]), "--voters");
    snprintf(cl.b[0].extra[cl.b[0].n_extra++], sizeof(cl.b[0].extra[0]), "%s", cl.voters);
    cr_assert_eq(tl_broker_restart(&cl.b[0], START_MS), 0);
    long long term;
    cr_assert_eq(wait_leader(0, &term, 10000), 1);
    cr_assert(has_topic(0, "legacy"), "the single broker's topic was lost");
    cr_assert_eq(create_on(0, "joined", msg, sizeof(msg)), 0, "%s", msg);
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(tl_broker_stop(&cl.b[0], SIGTERM, 20000), 0);
        cr_assert_eq(tl_broker_restart(&cl.b[0], START_MS), 0);
        cr_assert_eq(wait_leader(0, &term, 10000), 1);
        cr_assert(has_topic(0, "legacy") && has_topic(0, "joined"), "restart %d lost a topic",
                  k + 1);
        char name[32];
        snprintf(name, sizeof(name), "restart-%d", k + 1);
        cr_assert_eq(create_on(0, name, msg, sizeof(msg)), 0, "%s", msg);
        cr_assert_eq(create_on(0, "joined", msg, sizeof(msg)), RL_E_TOPIC_EXISTS, "%s", msg);
    }
    cr_assert(has_topic(0, "restart-1") && has_topic(0, "restart-2"));
}

/* The leader (owner) node of each partition of `topic` as node i's Metadata names them, the
 * brokers it lists in *n_brokers. Returns the partition count, or -1. */
static int leaders_on(int i, const char *topic, int32_t *leaders, int cap, int *n_brokers)
{
    struct tl_conn c;
    Ringlog__MetadataResponse *md;
    if (tl_cluster_metadata(&cl, i, &c, topic, &md))
        return -1;
    int n = -1;
    if (md->n_topics == 1 && md->topics[0]->error_code == 0) {
        const Ringlog__TopicMetadata *tm = md->topics[0];
        n = (int)tm->n_partitions;
        for (int k = 0; k < n && k < cap; k++)
            leaders[tm->partitions[k]->partition] = tm->partitions[k]->leader;
        *n_brokers = (int)md->n_brokers;
    }
    tl_close(&c);
    return n;
}

/* Brokers the leader's /v1/cluster reports alive. */
static int alive_brokers(int leader)
{
    static char body[65536];
    if (cluster_json(leader - 1, body, sizeof(body)))
        return 0;
    const char *p = strstr(body, "\"brokers\"");
    int n = 0;
    for (; p && (p = strstr(p, "\"state\":\"alive\"")); p++)
        n++;
    return n;
}

#define PLACED_PARTS 6
#define PLACED_RECORDS 1000

Test(cluster, partitions_are_placed_over_brokers_and_clients_follow_the_placement)
{
    tl_cluster_init(&cl, &cluster_conf);
    for (int i = 0; i < N; i++)
        tl_cluster_start_node(&cl, i);
    long long term = 0;
    int leader = wait_leader(0, &term, 10000);
    cr_assert_gt(leader, 0, "no controller leader within 10 s");
    for (uint64_t until = tl_now_ms() + 10000; alive_brokers(leader) < N; usleep(20000))
        cr_assert(tl_now_ms() < until, "only %d of %d brokers registered and alive",
                  alive_brokers(leader), N);
    /* Created through a follower: the leader's record places the partitions. */
    int follower = leader % N;
    struct tl_conn c;
    char msg[512] = "";
    cr_assert_eq(tl_connect(&c, "127.0.0.1", cl.b[follower].port, 2000), 0);
    cr_assert_eq(tl_create_topic(&c, "placed", PLACED_PARTS, NULL, msg, sizeof(msg)), 0, "%s",
                 msg);
    tl_close(&c);
    cr_assert(wait_topic_everywhere("placed", 5000), "placed not on every broker");

    /* Every broker names the same owner for each partition, and each owns some. */
    int32_t owner[PLACED_PARTS], seen[PLACED_PARTS];
    int n_brokers = 0;
    cr_assert_eq(leaders_on(0, "placed", owner, PLACED_PARTS, &n_brokers), PLACED_PARTS);
    cr_assert_eq(n_brokers, N, "Metadata lists %d brokers", n_brokers);
    int owned[N + 1] = {0};
    for (int k = 0; k < PLACED_PARTS; k++) {
        cr_assert(owner[k] >= 1 && owner[k] <= N, "partition %d led by %d", k, owner[k]);
        owned[owner[k]]++;
    }
    for (int i = 1; i <= N; i++)
        cr_assert_gt(owned[i], 0, "node %d owns no partition of 6", i);
    for (int i = 1; i < N; i++) {
        cr_assert_eq(leaders_on(i, "placed", seen, PLACED_PARTS, &n_brokers), PLACED_PARTS);
        for (int k = 0; k < PLACED_PARTS; k++)
            cr_assert_eq(seen[k], owner[k], "node %d names %d for partition %d, node 1 %d",
                         i + 1, seen[k], k, owner[k]);
    }
    /* A non-owner keeps no log of the partition and refuses its produce, fetch and offsets. */
    uint8_t *batch;
    int blen = tl_make_batch(3, "direct", &batch);
    cr_assert_gt(blen, 0);
    for (int k = 0; k < PLACED_PARTS; k++) {
        int own = owner[k] - 1, other = (own + 1) % N;
        char dir[600];
        snprintf(dir, sizeof(dir), "%s/placed-%d", cl.b[other].data_dir, k);
        cr_assert_neq(access(dir, F_OK), 0, "node %d keeps %s, owned by node %d", other + 1,
                      dir, own + 1);
        snprintf(dir, sizeof(dir), "%s/placed-%d", cl.b[own].data_dir, k);
        cr_assert_eq(access(dir, F_OK), 0, "owner node %d has no %s", own + 1, dir);
        cr_assert_eq(tl_connect(&c, "127.0.0.1", cl.b[other].port, 2000), 0);
        int rc = tl_produce(&c, "placed", (uint32_t)k, batch, (uint32_t)blen, 1, NULL);
        cr_assert_eq(rc, RL_E_NOT_LEADER, "produce to non-owner node %d: %s", other + 1,
                     rl_strerror(rc));
        struct tl_fetch f = {.topic = "placed", .partition = (uint32_t)k, .max_bytes = 1 << 20};
        struct tl_fetch_result fr;
        rc = tl_fetch(&c, &f, &fr);
        cr_assert_eq(rc, RL_E_NOT_LEADER, "fetch from non-owner: %s", rl_strerror(rc));
        char says[64];
        snprintf(says, sizeof(says), "is on node %d", own + 1);
        cr_assert(fr.error_message && strstr(fr.error_message, says),
                  "the refusal does not name the owner: %s", fr.error_message);
        int64_t off;
        rc = tl_list_offset(&c, "placed", (uint32_t)k, -2, &off);
        cr_assert_eq(rc, RL_E_NOT_LEADER, "list offsets at non-owner: %s", rl_strerror(rc));
        tl_close(&c);
    }
    free(batch);

    /* libringlog, bootstrapped to one broker, follows the placement. */
    char boot[32], err[512];
    snprintf(boot, sizeof(boot), "127.0.0.1:%u", cl.b[follower].port);
    struct rl_conf *conf = rl_conf_new();
    cr_assert(conf);
    cr_assert_eq(rl_conf_set(conf, "bootstrap.servers", boot, err, sizeof(err)), 0, "%s", err);
    struct rl_producer *p = rl_producer_new(conf, err, sizeof(err));
    cr_assert(p, "%s", err);
    for (int i = 0; i < PLACED_RECORDS; i++) {
        char key[16], val[32];
        int kl = snprintf(key, sizeof(key), "k%04d", i);
        int vl = snprintf(val, sizeof(val), "value-%d", i);
        int rc = rl_producer_send(p, "placed", RL_PARTITION_ANY, key, (size_t)kl, val,
                                  (size_t)vl, 0, NULL);
        cr_assert_eq(rc, 0, "send %d: %s", i, rl_producer_last_error(p));
    }
    cr_assert_eq(rl_producer_flush(p, 30000), 0, "flush: %s", rl_producer_last_error(p));
    uint64_t acked, failed;
    rl_producer_counts(p, &acked, &failed);
    cr_assert_eq(acked, PLACED_RECORDS, "acked %llu failed %llu: %s",
                 (unsigned long long)acked, (unsigned long long)failed,
                 rl_producer_last_error(p));
    cr_assert_eq(failed, 0);
    rl_producer_destroy(p, 5000);

    struct rl_consumer *k = rl_consumer_new(conf, err, sizeof(err));
    cr_assert(k, "%s", err);
    cr_assert_eq(rl_consumer_assign_topic(k, "placed", RL_OFFSET_EARLIEST), PLACED_PARTS, "%s",
                 rl_consumer_last_error(k));
    static uint8_t got[PLACED_RECORDS];
    memset(got, 0, sizeof(got));
    int total = 0, per_part[PLACED_PARTS] = {0};
    for (uint64_t until = tl_now_ms() + 30000; total < PLACED_RECORDS;) {
        cr_assert(tl_now_ms() < until, "read %d of %d records: %s", total, PLACED_RECORDS,
                  rl_consumer_last_error(k));
        struct rl_record r;
        int rc = rl_consumer_poll(k, 200, &r);
        cr_assert_geq(rc, 0, "poll: %s", rl_consumer_last_error(k));
        if (rc == 0)
            continue;
        cr_assert_eq(r.key_len, 5);
        int idx = atoi((const char *)r.key + 1);
        cr_assert(idx >= 0 && idx < PLACED_RECORDS);
        char want[32];
        int wl = snprintf(want, sizeof(want), "value-%d", idx);
        cr_assert(r.value_len == (size_t)wl && !memcmp(r.value, want, (size_t)wl), "record %d", idx);
        cr_assert_eq(got[idx], 0, "record %d read twice", idx);
        got[idx] = 1;
        per_part[r.partition]++;
        total++;
    }
    /* Nothing more arrives: each record was stored once. */
    struct rl_record r;
    cr_assert_eq(rl_consumer_poll(k, 500, &r), 0, "a record beyond the %d written",
                 PLACED_RECORDS);
    for (int i = 0; i < PLACED_PARTS; i++)
        cr_assert_gt(per_part[i], 0, "partition %d got no record", i);
    rl_consumer_destroy(k);
    rl_conf_destroy(conf);
    cr_log_info("placement: partitions per node 1/2/3 = %d/%d/%d", owned[1], owned[2],
                owned[3]);
}
