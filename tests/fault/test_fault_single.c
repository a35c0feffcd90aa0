/*
 * test_fault_single: the fault lab proven on one broker. The program moves itself into a
 * network namespace with no route out, builds three hosts on a bridge (broker in host 1, an
 * idempotent acks=all producer in host 2, a consumer in host 3) and runs each fault while the
 * producer writes: a partition between producer and broker (no acknowledgement gets through
 * while it holds), one-way partitions both ways (requests lost; answers lost, so idempotent
 * retries must not duplicate), packet loss, delay, SIGSTOP/SIGCONT, SIGKILL and restart, a slow
 * disk. After healing, progress must resume, and the checker reads the history (final drain
 * and a dump of the broker's log): nothing acknowledged lost, nothing duplicated, order kept.
 * A case the kernel or ringlogd cannot do (no sch_netem, no slow-disk hook) says "skipped".
 * Prints "N passed, N failed, N skipped"; an argument runs only the cases whose name holds it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fault/cluster.h"
#include "tests/fault/history.h"
#include "tests/fault/netns.h"
#include "tests/fault/workload.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

#define TOPIC "fault"
#define PARTS 3
#define BROKER_HOST 1
#define PRODUCER_HOST 2
#define CONSUMER_HOST 3
#define START_MS 20000
#define RECOVER_MS 30000 /* generous: the machine is shared */
#define SETTLE_MS 400    /* let a fault take hold before measuring */
#define HOLD_MS 1500     /* how long a stalling fault is watched */

enum outcome { PASS, FAIL, SKIP };

struct ctx {
    struct netns_lab lab;
    struct cl_cluster cl;
    struct hist *h;
    struct wl wl;
    char why[512];
};

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            snprintf(x->why, sizeof(x->why), __VA_ARGS__);                                      \
            return FAIL;                                                                        \
        }                                                                                       \
    } while (0)

/* A broker, a topic, the workload running and warmed up. */
static enum outcome setup(struct ctx *x)
{
    int rc = cl_start(&x->cl, &x->lab, 1, false, NULL, START_MS);
    CHECK(rc == 0, "broker did not start: %s", strerror(-rc));
    char why[256];
    rc = wl_create_topic(x->cl.bootstrap, TOPIC, PARTS, 0, why, sizeof(why));
    CHECK(rc == 0, "create topic: %s", why);
    x->h = hist_new(PARTS);
    CHECK(x->h, "out of memory");
    struct wl_config cfg = {.bootstrap = x->cl.bootstrap, .topic = TOPIC, .partitions = PARTS,
                            .producers = 1, .consumers = 1,
                            .producer_host = {PRODUCER_HOST}, .consumer_host = {CONSUMER_HOST},
                            .window = 64, .rate = 1500, .idempotent = true, .acks = "all"};
    CHECK(wl_start(&x->wl, &cfg, &x->lab, x->h) == 0, "workload did not start");
    CHECK(wl_wait_acks(&x->wl, 200, RECOVER_MS) == 0, "no progress before any fault");
    return PASS;
}

/* After healing: progress resumes, then the checker finds nothing. */
static enum outcome finish(struct ctx *x)
{
    CHECK(wl_wait_acks(&x->wl, 200, RECOVER_MS) == 0,
          "no progress within %d ms of healing", RECOVER_MS);
    int rc = wl_stop(&x->wl, 20000);
    CHECK(rc == 0, "workload ended with an error");
    struct hist_check_opts opts = {.min_acked = 300, .min_reads = 300}; /* >= 400 are awaited */
    long anomalies = wl_verify(x->h, &x->cl, TOPIC, PARTS, &opts, 30000);
    CHECK(anomalies == 0, "checker: %ld anomalies (report above)", anomalies);
    /* The broker's files after a clean stop hold the same records as it served. */
    rc = cl_stop(&x->cl, 1, SIGTERM, 20000);
    CHECK(rc == 0, "broker exit status %d after SIGTERM", rc);
    char why[256];
    int src = hist_source_add(x->h, HIST_REPLICA, 1, "disk-1");
    long n = wl_dump_data_dir(x->h, src, x->cl.b[1].data_dir, TOPIC, PARTS, true, why,
                              sizeof(why));
    CHECK(n > 0, "reading the broker's files: %s", why);
    struct hist_report rep;
    anomalies = hist_check(x->h, &opts, &rep);
    if (anomalies)
        hist_report_print(&rep, stderr);
    CHECK(anomalies == 0, "checker with the broker's files: %ld anomalies", anomalies);
    return PASS;
}

/* Acknowledgements while a stalling fault holds: none may arrive. */
static enum outcome expect_stall(struct ctx *x, const char *fault)
{
    wl_acks_within(&x->wl, SETTLE_MS);
    long n = wl_acks_within(&x->wl, HOLD_MS);
    CHECK(n == 0, "%ld records acknowledged during %s", n, fault);
    return PASS;
}

static enum outcome case_sandbox(struct ctx *x)
{
    /* No route out of the lab, from a host or from the control node: `ip route get` asks the
     * kernel's routing table and sends nothing. */
    char out[256];
    for (int host = 0; host <= 2; host++) {
        int rc = netns_sh(&x->lab, host, out, sizeof(out), "ip route get 192.0.2.1");
        CHECK(rc != 0, "host %d has a route out: %s", host, out);
        rc = netns_sh(&x->lab, host, out, sizeof(out), "ip route get " NETNS_SUBNET ".1");
        CHECK(rc == 0, "host %d cannot route to the lab: %s", host, out);
    }
    return PASS;
}

static enum outcome case_partition(struct ctx *x)
{
    enum outcome o = setup(x);
    if (o != PASS)
        return o;
    int a[] = {BROKER_HOST}, b[] = {PRODUCER_HOST};
    CHECK(netns_partition(&x->lab, a, 1, b, 1) == 0, "partition failed");
    if ((o = expect_stall(x, "a partition between producer and broker")) != PASS)
        return o;
    CHECK(netns_heal(&x->lab) == 0, "heal failed");
    return finish(x);
}

static enum outcome case_one_way(struct ctx *x)
{
    enum outcome o = setup(x);
    if (o != PASS)
        return o;
    /* Requests vanish: nothing can be acknowledged. */
    CHECK(netns_drop_from(&x->lab, BROKER_HOST, PRODUCER_HOST) == 0, "rule failed");
    if ((o = expect_stall(x, "a one-way partition (requests dropped)")) != PASS)
        return o;
    CHECK(netns_heal(&x->lab) == 0, "heal failed");
    CHECK(wl_wait_acks(&x->wl, 100, RECOVER_MS) == 0, "no progress after the first heal");
    /* Answers vanish: the broker appends, the producer retries; idempotence keeps one copy. */
    CHECK(netns_drop_from(&x->lab, PRODUCER_HOST, BROKER_HOST) == 0, "rule failed");
    if ((o = expect_stall(x, "a one-way partition (answers dropped)")) != PASS)
        return o;
    CHECK(netns_heal(&x->lab) == 0, "heal failed");
    return finish(x);
}

static enum outcome case_loss(struct ctx *x)
{
    enum outcome o = setup(x);
    if (o != PASS)
        return o;
    int rc = netns_loss(&x->lab, PRODUCER_HOST, 20);
    if (rc == -EOPNOTSUPP) {
        snprintf(x->why, sizeof(x->why), "no netem and no firewall to drop packets with");
        return SKIP;
    }
    CHECK(rc == 0, "loss failed");
    /* 20% loss slows TCP down but does not stop it. */
    CHECK(wl_wait_acks(&x->wl, 200, RECOVER_MS) == 0, "no progress under 20%% loss");
    long dropped = netns_dropped(&x->lab, PRODUCER_HOST);
    CHECK(dropped > 0 || dropped == -EOPNOTSUPP, "the loss fault dropped nothing (%ld)",
          dropped);
    netns_log(&x->lab, "loss fault dropped %ld packets", dropped);
    CHECK(netns_heal(&x->lab) == 0, "heal failed");
    return finish(x);
}

struct probe_arg {
    struct ctx *x;
    int host;
    long ms;
};

static void *connect_probe(void *arg)
{
    struct probe_arg *a = arg;
    a->ms = -1;
    if (netns_enter(&a->x->lab, a->host) != 0)
        return NULL;
    struct tl_conn c;
    uint64_t t0 = tl_now_ms();
    if (tl_connect(&c, a->x->cl.b[1].host, CL_PORT, 10000) == 0) {
        a->ms = (long)(tl_now_ms() - t0);
        tl_close(&c);
    }
    return NULL;
}

/* Milliseconds a TCP connect to the broker takes from `host` (-1 on failure). */
static long connect_ms(struct ctx *x, int host)
{
    struct probe_arg a = {x, host, -1};
    pthread_t t;
    if (pthread_create(&t, NULL, connect_probe, &a))
        return -1;
    pthread_join(t, NULL);
    return a.ms;
}

static enum outcome case_delay(struct ctx *x)
{
    if (!x->lab.have_netem) {
        snprintf(x->why, sizeof(x->why), "the kernel has no sch_netem (tc qdisc netem refused)");
        return SKIP;
    }
    enum outcome o = setup(x);
    if (o != PASS)
        return o;
    CHECK(netns_delay(&x->lab, PRODUCER_HOST, 50, 10) == 0, "delay failed");
    /* A TCP handshake from the producer's host takes a round trip: >= ~100 ms now. */
    long ms = connect_ms(x, PRODUCER_HOST);
    CHECK(ms >= 80, "a 50 ms delay each way is not visible in a TCP handshake (%ld ms)", ms);
    CHECK(wl_wait_acks(&x->wl, 50, RECOVER_MS) == 0, "no progress under delay");
    CHECK(netns_heal(&x->lab) == 0, "heal failed");
    return finish(x);
}

static enum outcome case_pause(struct ctx *x)
{
    enum outcome o = setup(x);
    if (o != PASS)
        return o;
    CHECK(cl_pause(&x->cl, 1) == 0, "pause failed");
    if ((o = expect_stall(x, "a paused broker")) != PASS)
        return o;
    CHECK(cl_resume(&x->cl, 1) == 0, "resume failed");
    return finish(x);
}

static enum outcome case_kill(struct ctx *x)
{
    enum outcome o = setup(x);
    if (o != PASS)
        return o;
    for (int round = 0; round < 2; round++) {
        cl_kill(&x->cl, 1);
        if ((o = expect_stall(x, "a killed broker")) != PASS)
            return o;
        int rc = cl_restart(&x->cl, 1, START_MS);
        CHECK(rc == 0, "restart failed: %s", strerror(-rc));
        CHECK(wl_wait_acks(&x->wl, 200, RECOVER_MS) == 0, "no progress after restart %d",
              round + 1);
    }
    return finish(x);
}

static enum outcome case_slow_disk(struct ctx *x)
{
    enum outcome o = setup(x);
    if (o != PASS)
        return o;
    int rc = cl_slow_disk(&x->cl, 1, 20);
    if (rc == -EOPNOTSUPP) {
        snprintf(x->why, sizeof(x->why),
                 "ringlogd has no %s setting (the I/O layer's delay hook)", CL_SLOW_DISK_KEY);
        wl_stop(&x->wl, 20000);
        return SKIP;
    }
    CHECK(rc == 0, "slow disk failed");
    CHECK(wl_wait_acks(&x->wl, 50, RECOVER_MS) == 0, "no progress on a slow disk");
    /* The delay reaches the broker: at 400 ms per write and fsync, appends complete in bursts
     * 400 ms apart, so some 150 ms window sees no acknowledgement (on a normal disk the
     * workload's 1,000 records a second are acknowledged every few milliseconds). */
    CHECK(cl_slow_disk(&x->cl, 1, 400) == 0, "slow disk failed");
    bool gap = false;
    for (int i = 0; i < 20 && !gap; i++)
        gap = wl_acks_within(&x->wl, 150) == 0;
    CHECK(gap, "acknowledgements kept flowing with 400 ms added to every write and fsync");
    CHECK(cl_slow_disk(&x->cl, 1, 0) == 0, "disk not restored");
    CHECK(wl_wait_acks(&x->wl, 50, RECOVER_MS) == 0, "no progress after the disk recovered");
    return finish(x);
}

struct test_case {
    const char *name;
    enum outcome (*run)(struct ctx *);
};

static const struct test_case cases[] = {
    {"sandbox_has_no_route_out", case_sandbox},
    {"partition_producer_from_broker", case_partition},
    {"one_way_partitions", case_one_way},
    {"packet_loss", case_loss},
    {"packet_delay", case_delay},
    {"pause_broker", case_pause},
    {"kill_and_restart_broker", case_kill},
    {"slow_disk", case_slow_disk},
};

static enum outcome run_case(struct ctx *x, const struct test_case *tc)
{
    x->why[0] = 0;
    memset(&x->cl, 0, sizeof(x->cl));
    x->h = NULL;
    uint64_t t0 = tl_now_ms();
    netns_log(&x->lab, "=== %s", tc->name);
    enum outcome o = tc->run(x);
    if (x->wl.started)
        wl_stop(&x->wl, 5000);
    netns_heal(&x->lab);
    if (o == FAIL && x->cl.n)
        cl_dump_log(&x->cl, 1, 20);
    if (x->cl.n || x->cl.dir[0])
        cl_destroy(&x->cl, o == FAIL);
    hist_free(x->h);
    double secs = (double)(tl_now_ms() - t0) / 1000.0;
    if (o == PASS)
        printf("ok       %s (%.1fs)\n", tc->name, secs);
    else if (o == SKIP)
        printf("skipped  %s: %s\n", tc->name, x->why);
    else
        printf("FAIL     %s (%.1fs): %s\n", tc->name, secs, x->why);
    fflush(stdout);
    return o;
}

int main(int argc, char **argv)
{
    static struct ctx x;
    signal(SIGPIPE, SIG_IGN);
    char why[256];
    if (netns_sandbox_enter(why, sizeof(why)) != 0) {
        printf("skipped  every case: %s\n0 passed, 0 failed, %zu skipped\n", why,
               sizeof(cases) / sizeof(cases[0]));
        return 0;
    }
    if (netns_lab_create(&x.lab, 3, NULL, why, sizeof(why)) != 0) {
        printf("skipped  every case: %s\n0 passed, 0 failed, %zu skipped\n", why,
               sizeof(cases) / sizeof(cases[0]));
        netns_lab_destroy(&x.lab);
        return 0;
    }
    printf("fault lab: %s\n", netns_capabilities(&x.lab));
    int counts[3] = {0};
    const char *only = argc > 1 ? argv[1] : NULL;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (!only || strstr(cases[i].name, only))
            counts[run_case(&x, &cases[i])]++;
    netns_lab_destroy(&x.lab);
    printf("%d passed, %d failed, %d skipped\n", counts[PASS], counts[FAIL], counts[SKIP]);
    return counts[FAIL] ? 1 : 0;
}
