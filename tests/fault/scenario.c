/*
 * scenario: see scenario.h.
 */
#include "tests/fault/scenario.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ringlog.h"
#include "tests/fault/workload.h"
#include "tests/lib/tl_broker.h"

#define TOPIC "fault"
#define START_MS 30000
#define OBSERVE_EVERY_MS 250

struct scn {
    const struct scn_config *cfg;
    struct netns_lab *lab;
    struct cl_cluster cl;
    struct hist *h;
    struct wl wl;
    struct nem nem;
    pthread_t observer;
    bool observing;
    atomic_bool stop_observer;
    struct scn_result *res;
    int32_t picked_node, picked_part; /* pick_leader's last answer (node -1: none) */
    uint32_t picked_term;
};

static struct rl_admin *admin_for(const char *bootstrap)
{
    struct rl_conf *conf = rl_conf_new();
    char err[256];
    struct rl_admin *a = NULL;
    if (conf && !rl_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) &&
        !rl_conf_set(conf, "request.timeout.ms", "1000", err, sizeof(err)) &&
        !rl_conf_set(conf, "connect.timeout.ms", "1000", err, sizeof(err)))
        a = rl_admin_new(conf, err, sizeof(err));
    rl_conf_destroy(conf);
    return a;
}

/* Every broker's view of each partition's leader and epoch, as leadership claims. */
static void *observer_main(void *arg)
{
    struct scn *s = arg;
    while (!atomic_load(&s->stop_observer)) {
        for (int i = 1; i <= s->cl.n && !atomic_load(&s->stop_observer); i++) {
            struct rl_admin *a = admin_for(s->cl.b[i].addr);
            const struct rl_topic_info *t;
            if (a && rl_admin_describe_topic(a, TOPIC, &t) == 0)
                for (int32_t p = 0; p < t->partition_count; p++)
                    /* Epoch 0 is no term (Raft's start at 1): a broker that does not know it
                     * claims nothing the checker could hold against another. */
                    if (t->partitions[p].leader >= 0 && !t->partitions[p].error &&
                        t->partitions[p].leader_epoch > 0)
                        hist_leader(s->h, (uint32_t)p, t->partitions[p].leader_epoch,
                                    t->partitions[p].leader, "metadata");
            rl_admin_destroy(a);
        }
        poll(NULL, 0, OBSERVE_EVERY_MS);
    }
    return NULL;
}

/* Records the pick as a leader for before_kill when the evidence holds: Metadata's epoch when
 * it has one; else the brokers' own log lines ("leader of <topic>-<p> in term <t>"), where the
 * highest term logged for the partition must be the named leader's. */
static void pick_confirm(struct scn *s, int32_t leader, int32_t part, uint32_t epoch)
{
    uint32_t best = 0, term;
    int32_t best_node = -1;
    for (int i = 1; epoch == 0 && i <= s->cl.n; i++)
        if (wl_log_latest_claim(s->cl.b[i].log_path, TOPIC, (uint32_t)part, &term) == 1 &&
            term > best) {
            best = term;
            best_node = i;
        }
    if (epoch == 0 && best_node != leader)
        return;
    s->picked_node = leader;
    s->picked_part = part;
    s->picked_term = epoch ? epoch : best;
}

/* The nemesis's target: the leader of a random partition, as the cluster tells it now. */
static int pick_leader(void *ctx)
{
    struct scn *s = ctx;
    uint32_t r = nem_rand(&s->nem, 1u << 30); /* drawn whatever the answer, for replays */
    struct rl_admin *a = admin_for(s->cl.bootstrap);
    const struct rl_topic_info *t;
    int leader = 0;
    s->picked_node = -1;
    if (a && rl_admin_describe_topic(a, TOPIC, &t) == 0 && t->partition_count > 0) {
        const struct rl_partition_info *pi = &t->partitions[r % (uint32_t)t->partition_count];
        leader = pi->leader;
        if (!pi->error && leader > 0)
            pick_confirm(s, leader, pi->partition, pi->leader_epoch);
    }
    rl_admin_destroy(a);
    return leader;
}

/* A kill of the broker pick_leader named: recorded in the history as a leader kill, which the
 * checker counts when acknowledgements were arriving and an election followed. */
static void before_kill(void *ctx, int target, bool targeted)
{
    struct scn *s = ctx;
    if (targeted && target == s->picked_node && s->h)
        hist_leader_kill(s->h, target, (uint32_t)s->picked_part, s->picked_term);
}

/* Every partition has a leader (a fresh cluster elects them after the topic is made). */
static int wait_leaders(struct scn *s, uint32_t timeout_ms)
{
    uint64_t deadline = tl_now_ms() + timeout_ms;
    for (;;) {
        struct rl_admin *a = admin_for(s->cl.bootstrap);
        const struct rl_topic_info *t;
        bool all = a && rl_admin_describe_topic(a, TOPIC, &t) == 0;
        for (int32_t p = 0; all && p < t->partition_count; p++)
            all = t->partitions[p].leader >= 0 && !t->partitions[p].error;
        rl_admin_destroy(a);
        if (all)
            return 0;
        if (tl_now_ms() >= deadline)
            return -ETIMEDOUT;
        poll(NULL, 0, 100);
    }
}

#define FAIL_IF(cond, ...)                                                                      \
    do {                                                                                        \
        if (cond) {                                                                             \
            snprintf(s->res->why, sizeof(s->res->why), __VA_ARGS__);                            \
            return -1;                                                                          \
        }                                                                                       \
    } while (0)

static int setup(struct scn *s)
{
    const struct scn_config *cfg = s->cfg;
    int rc = cl_start(&s->cl, s->lab, cfg->brokers, cfg->cluster, NULL, START_MS);
    FAIL_IF(rc, "brokers did not start: %s", strerror(-rc));
    char why[256];
    /* A fresh cluster elects its controller and registers its brokers first: creation is
     * retried until then (a create that timed out but happened answers TOPIC_EXISTS). */
    uint64_t deadline = tl_now_ms() + START_MS;
    bool refused = false;
    for (;;) {
        rc = wl_create_topic(s->cl.bootstrap, TOPIC, cfg->partitions, cfg->replicas, why,
                             sizeof(why));
        if (rc == RL_E_TOPIC_EXISTS)
            rc = 0;
        /* INVALID_REPLICATION also says "needs 3 live brokers" while brokers register: only
         * the refusal of the replication factor itself ends the scenario at once. */
        refused = rc == RL_E_INVALID_REPLICATION && strstr(why, "not supported");
        if (!rc || refused || tl_now_ms() >= deadline)
            break;
        poll(NULL, 0, 250);
    }
    if (refused) {
        snprintf(s->res->why, sizeof(s->res->why), "create topic: %s", why);
        return SCN_REFUSED;
    }
    FAIL_IF(rc, "create topic: %s", why);
    FAIL_IF(wait_leaders(s, START_MS), "partitions without a leader after %d ms", START_MS);
    s->h = hist_new((uint32_t)cfg->partitions);
    FAIL_IF(!s->h, "out of memory");
    struct wl_config wc = {.bootstrap = s->cl.bootstrap, .topic = TOPIC,
                           .partitions = cfg->partitions, .producers = cfg->producers,
                           .consumers = cfg->consumers, .window = 64, .rate = 1000,
                           .idempotent = true, .acks = "all"};
    for (int i = 0; i < WL_MAX_CLIENTS; i++) /* the two hosts after the brokers */
        wc.producer_host[i] = wc.consumer_host[i] = cfg->brokers + 1 + i % 2;
    FAIL_IF(wl_start(&s->wl, &wc, s->lab, s->h), "workload did not start");
    if (cfg->cluster) {
        s->observing = pthread_create(&s->observer, NULL, observer_main, s) == 0;
        FAIL_IF(!s->observing, "observer thread did not start");
    }
    FAIL_IF(wl_wait_acks(&s->wl, 100, cfg->recover_ms), "no progress before any fault");
    return 0;
}

static int schedule(struct scn *s)
{
    const struct scn_config *cfg = s->cfg;
    nem_init(&s->nem, &s->cl, cfg->seed, cfg->kinds);
    if (cfg->target_leaders) {
        s->nem.pick = pick_leader;
        s->nem.pick_ctx = s;
        s->nem.before_kill = before_kill;
    }
    FAIL_IF(!s->nem.kinds, "no fault of the asked kinds works here");
    for (int step = 0; step < cfg->steps; step++) {
        int k = nem_begin(&s->nem);
        FAIL_IF(k < 0, "step %d: the fault could not be started (%s)", step, strerror(-k));
        uint64_t until = tl_now_ms() + s->nem.hold_ms;
        while (tl_now_ms() < until)
            poll(NULL, 0, 20); /* the fault holds; the workload runs */
        int rc = nem_end(&s->nem, START_MS);
        FAIL_IF(rc, "step %d: ending %s failed (%s)", step, nem_kind_name((enum nem_kind)k),
                strerror(-rc));
        FAIL_IF(wl_wait_acks(&s->wl, 20, cfg->recover_ms),
                "step %d: no progress within %u ms after %s ended (liveness)", step,
                cfg->recover_ms, nem_kind_name((enum nem_kind)k));
    }
    return 0;
}

/* Heal, stop, verify while running, then stop every broker cleanly and read its files. */
static int verify(struct scn *s)
{
    const struct scn_config *cfg = s->cfg;
    int rc = nem_heal_all(&s->nem, START_MS);
    FAIL_IF(rc, "heal failed: %s", strerror(-rc));
    FAIL_IF(wl_wait_acks(&s->wl, 100, cfg->recover_ms), "no progress after healing");
    FAIL_IF(wl_stop(&s->wl, 30000), "workload ended with an error");
    if (s->observing) {
        atomic_store(&s->stop_observer, true);
        pthread_join(s->observer, NULL);
        s->observing = false;
    }
    struct hist_check_opts opts = {.min_acked = cfg->min_acked, .min_reads = cfg->min_acked};
    long a = wl_verify(s->h, &s->cl, TOPIC, cfg->partitions, &opts, 60000);
    FAIL_IF(a, "checker (while running): %ld anomalies, or the drain failed", a);
    /* A replica that has not caught up may hold a deposed leader's uncommitted appends on
     * disk (Raft allows it); its files are read as its copy, so wait for every replica to
     * reach the end first (and a replica that never does is a liveness failure). */
    bool every_replica = !cfg->cluster || cfg->replicas >= cfg->brokers;
    char cwhy[256] = "";
    rc = wl_wait_replicas(&s->cl, TOPIC, cfg->partitions, every_replica, cfg->recover_ms, cwhy,
                          sizeof(cwhy));
    FAIL_IF(rc, "replicas did not catch up: %s", cwhy);
    for (int i = 1; i <= s->cl.n; i++) {
        rc = cl_stop(&s->cl, i, SIGTERM, 30000);
        FAIL_IF(rc, "broker %d: exit status %d after SIGTERM", i, rc);
        char name[32], why[256];
        snprintf(name, sizeof(name), "disk-%d", i);
        int src = hist_source_add(s->h, HIST_REPLICA, i, name);
        /* Every broker holds every partition when there are as many replicas as brokers. */
        bool every = !cfg->cluster || cfg->replicas >= cfg->brokers;
        long n = wl_dump_data_dir(s->h, src, s->cl.b[i].data_dir, TOPIC, cfg->partitions,
                                  every, why, sizeof(why));
        FAIL_IF(n < 0, "reading broker %d's files: %s", i, why);
        wl_claims_from_log(s->h, s->cl.b[i].log_path, TOPIC, i);
    }
    struct hist_report *rep = malloc(sizeof(*rep));
    FAIL_IF(!rep, "out of memory");
    a = hist_check(s->h, &opts, rep);
    s->res->acked = rep->acked;
    s->res->reads = rep->reads;
    s->res->leader_kills = rep->leader_kills_under_load;
    s->res->anomalies = a;
    if (a)
        hist_report_print(rep, stderr);
    free(rep);
    FAIL_IF(a, "checker (with every broker's files): %ld anomalies", a);
    return 0;
}

int scn_run(struct netns_lab *lab, const struct scn_config *cfg, struct scn_result *res)
{
    static struct scn s; /* large; one scenario at a time */
    memset(&s, 0, sizeof(s));
    memset(res, 0, sizeof(*res));
    s.cfg = cfg;
    s.lab = lab;
    s.res = res;
    netns_log(lab, "scenario: seed %llu, %d broker%s%s, %d partitions x %d replicas, %d steps",
              (unsigned long long)cfg->seed, cfg->brokers, cfg->brokers > 1 ? "s" : "",
              cfg->cluster ? " (one cluster)" : "", cfg->partitions, cfg->replicas,
              cfg->steps);
    int rc = setup(&s);
    if (!rc)
        rc = schedule(&s);
    if (!rc)
        rc = verify(&s);
    if (s.wl.started)
        wl_stop(&s.wl, 5000);
    if (s.observing) {
        atomic_store(&s.stop_observer, true);
        pthread_join(s.observer, NULL);
    }
    for (int k = 0; k < NEM_KINDS; k++)
        res->faults[k] = s.nem.count[k];
    res->targeted_kills = s.nem.targeted_kills;
    if (rc == SCN_REFUSED) { /* nothing ran: nothing to keep */
        netns_log(lab, "scenario not run: %s", res->why);
        netns_heal(lab);
        cl_destroy(&s.cl, false);
        hist_free(s.h);
        return SCN_REFUSED;
    }
    if (rc) {
        netns_log(lab, "scenario failed: %s", res->why);
        for (int i = 1; i <= s.cl.n; i++) {
            fprintf(stderr, "--- broker %d log tail\n", i);
            cl_dump_log(&s.cl, i, 15);
        }
        if (s.h && s.cl.dir[0]) {
            char path[320];
            snprintf(path, sizeof(path), "%s/history.txt", s.cl.dir);
            hist_dump(s.h, path);
        }
    }
    netns_heal(lab);
    cl_destroy(&s.cl, rc != 0);
    hist_free(s.h);
    return rc;
}
