/*
 * test_ctl_snapshot: the controller log is truncated and start-up replay stays bounded, on
 * real ringlogd processes on 127.0.0.1 with controller.snapshot.entries=20 (the log is cut
 * at every apply checkpoint, CTLCKPT_EVERY = 64 entries). Checks: after many topic creations
 * every voter's controller log starts past index 0 (ringlog_controller_log_start); a voter
 * restarted keeps every topic and reads only the entries after its checkpoint; a follower
 * back within the session timeout from a restart across the leader's checkpoint gets
 * entries, not a snapshot; a voter killed while the leader truncates past it catches up by
 * snapshot install (metadata fetched from the leader:
 * ringlog_controller_snapshot_installs_total) and names every topic, also when killed as its
 * install starts and after a further restart; a brand-new broker (node 4, outside the
 * voters) started after truncation gets every topic the same way.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_cluster.h"

#define NV 3
#define START_MS 20000
#define WAIT_MS 30000

static const char *const node_args[] = {"--set", "election.timeout.ms=1000", "--set",
                                        "controller.snapshot.entries=20", "--set",
                                        "broker.session.timeout.ms=3000", NULL};
/* The first test: a longer session, so a follower down for a moment is still "heard". */
static const char *const node_args_slow[] = {"--set", "election.timeout.ms=1000", "--set",
                                             "controller.snapshot.entries=20", "--set",
                                             "broker.session.timeout.ms=8000", NULL};
static struct tl_cluster cl;

static void teardown(void)
{
    tl_cluster_finish(&cl);
}

static long long metric(int i, const char *name)
{
    return tl_cluster_metric(&cl, i, name);
}

/* The controller leader every running voter agrees on, with `brokers` registered (0: none). */
static int wait_leader(const bool *up, int brokers)
{
    uint64_t until = tl_now_ms() + WAIT_MS;
    for (;; usleep(20000)) {
        int l = 0, agree = 1;
        for (int i = 0; i < NV; i++) {
            if (!up[i])
                continue;
            long long v = metric(i, "ringlog_controller_leader");
            if (l == 0 && v > 0)
                l = (int)v;
            agree &= v == l;
        }
        if (l && agree && metric(l - 1, "ringlog_cluster_brokers") >= brokers)
            return l;
        cr_assert(tl_now_ms() < until, "no controller leader agreed on");
    }
}

static void create_range(int via, int from, int to)
{
    char name[32], msg[512];
    for (int t = from; t < to; t++) {
        snprintf(name, sizeof(name), "cs%03d", t);
        Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
        spec.name = name;
        spec.partitions = 1;
        spec.replication_factor = 1;
        int rc = tl_cluster_create_topic(&cl, via, &spec, msg, sizeof(msg), 200, 10000);
        cr_assert_eq(rc, 0, "%s: %s %s", name, rl_strerror(rc), msg);
    }
}

/* Waits until node i names every topic cs000..cs<n-1> (checked from the last). */
static void expect_all_topics(int i, int n)
{
    char name[32];
    uint64_t until = tl_now_ms() + WAIT_MS;
    for (int t = n - 1; t >= 0; t--) {
        snprintf(name, sizeof(name), "cs%03d", t);
        while (!tl_cluster_has_topic(&cl, i, name)) {
            cr_assert(tl_now_ms() < until, "node %d does not name %s", i + 1, name);
            usleep(50000);
        }
    }
}

/* Waits until node i's metric reaches at least `min`; returns it. */
static long long wait_metric(int i, const char *name, long long min)
{
    uint64_t until = tl_now_ms() + WAIT_MS;
    for (;; usleep(50000)) {
        long long v = metric(i, name);
        if (v >= min)
            return v;
        cr_assert(tl_now_ms() < until, "node %d: %s is %lld, not >= %lld", i + 1, name, v, min);
    }
}

Test(ctl_snapshot, every_voter_truncates_and_a_restart_reads_only_after_its_snapshot,
     .fini = teardown)
{
    tl_cluster_init(&cl, &(struct tl_cluster_conf){.nodes = NV, .args = node_args_slow,
                                                   .start_ms = START_MS});
    tl_cluster_start_all(&cl);
    bool up[NV] = {true, true, true};
    int leader = wait_leader(up, NV);
    enum { TOPICS = 150 };
    create_range(leader - 1, 0, TOPICS);
    for (int i = 0; i < NV; i++) {
        expect_all_topics(i, TOPICS);
        /* Applied >= 150 entries: checkpoints at 64 and 128, each truncating the log. */
        long long start = wait_metric(i, "ringlog_controller_log_start", 64);
        long long ck = metric(i, "ringlog_controller_checkpoint_index");
        cr_assert(start <= ck, "node %d: log start %lld past its checkpoint %lld", i + 1, start,
                  ck);
        cr_assert_geq(metric(i, "ringlog_controller_log_truncations_total"), 1);
        cr_assert_eq(metric(i, "ringlog_controller_snapshot_installs_total"), 0,
                     "node %d installed a snapshot with every voter up", i + 1);
    }
    /* A follower restarted after a kill resumes after its checkpoint: it reads at most the
     * entries since it, never the truncated ones, and keeps every topic. */
    int f = leader % NV;
    long long applied = metric(f, "ringlog_controller_applied_index");
    long long start = metric(f, "ringlog_controller_log_start");
    tl_broker_kill(&cl.b[f]);
    cr_assert_eq(tl_broker_restart(&cl.b[f], START_MS), 0);
    expect_all_topics(f, TOPICS);
    wait_metric(f, "ringlog_controller_applied_index", applied);
    long long read = metric(f, "ringlog_controller_start_entries_read");
    cr_assert(read >= 0 && read <= applied - start && read <= 64 + 8,
              "node %d read %lld entries at start (applied %lld, log start %lld)", f + 1, read,
              applied, start);
    cr_assert_geq(metric(f, "ringlog_controller_log_start"), start);
    cr_assert_eq(metric(f, "ringlog_controller_snapshot_installs_total"), 0);
    /* A follower back within the session timeout (killed and restarted while the leader
     * passed its next checkpoint) is still counted: the leader truncates no further than its
     * match, so it gets entries, not a snapshot. */
    leader = wait_leader(up, NV);
    int l = leader - 1, s = (leader + 1) % NV, next = TOPICS;
    long long ck = metric(l, "ringlog_controller_checkpoint_index");
    while (metric(l, "ringlog_controller_applied_index") < ck + 64 - 3) {
        create_range(l, next, next + 1);
        next++;
    }
    long long before = metric(l, "ringlog_controller_log_start");
    tl_broker_kill(&cl.b[s]);
    uint64_t killed = tl_now_ms();
    while (metric(l, "ringlog_controller_checkpoint_index") <= ck) {
        cr_assert(tl_now_ms() - killed < 4000, "no checkpoint on the leader meanwhile");
        create_range(l, next, next + 1);
        next++;
    }
    cr_assert_eq(tl_broker_restart(&cl.b[s], START_MS), 0);
    uint64_t down_ms = tl_now_ms() - killed;
    cr_assert_gt(metric(l, "ringlog_controller_log_start"), before,
                 "the leader did not truncate at its checkpoint");
    expect_all_topics(s, next);
    if (down_ms < 6000) /* the session timeout is 8 s */
        cr_assert_eq(metric(s, "ringlog_controller_snapshot_installs_total"), 0,
                     "node %d, down %llu ms, was sent a snapshot", s + 1,
                     (unsigned long long)down_ms);
    /* The cluster keeps taking changes. */
    create_range(l, next, next + 5);
    for (int i = 0; i < NV; i++)
        expect_all_topics(i, next + 5);
}

Test(ctl_snapshot, a_voter_behind_the_log_start_and_a_new_broker_catch_up_by_install,
     .fini = teardown)
{
    tl_cluster_init(&cl, &(struct tl_cluster_conf){.nodes = NV + 1, .voters = NV,
                                                   .args = node_args, .start_ms = START_MS});
    for (int i = 0; i < NV; i++)
        tl_cluster_start_node(&cl, i);
    bool up[NV] = {true, true, true};
    int leader = wait_leader(up, NV);
    create_range(leader - 1, 0, 10);
    int f = leader % NV;
    expect_all_topics(f, 10);
    tl_broker_kill(&cl.b[f]);
    up[f] = false;
    /* With f down the other two commit; the leader truncates far past what f holds. */
    leader = wait_leader(up, 0);
    enum { TOPICS = 200 };
    create_range(leader - 1, 10, TOPICS);
    long long lstart = wait_metric(leader - 1, "ringlog_controller_log_start", 128);
    cr_assert_gt(lstart, 20, "the leader did not truncate past the killed voter");

    cr_assert_eq(tl_broker_restart(&cl.b[f], START_MS), 0);
    up[f] = true;
    /* Killed as soon as it starts fetching, which usually lands mid-install (some records in
     * metadata.log, the old checkpoint below the log start): the next start fetches the rest
     * from what metadata.log holds. */
    for (uint64_t until = tl_now_ms() + WAIT_MS;
         !tl_broker_log_has(&cl.b[f], "fetching the metadata"); usleep(500))
        cr_assert(tl_now_ms() < until, "node %d never fetched the metadata", f + 1);
    bool mid = !tl_broker_log_has(&cl.b[f], "snapshot installed");
    tl_broker_kill(&cl.b[f]);
    printf("node %d killed %s its install\n", f + 1, mid ? "during" : "after");
    cr_assert_eq(tl_broker_restart(&cl.b[f], START_MS), 0);
    expect_all_topics(f, TOPICS);
    if (mid)
        cr_assert_geq(wait_metric(f, "ringlog_controller_snapshot_installs_total", 1), 1);
    cr_assert_geq(metric(f, "ringlog_controller_applied_index"), lstart);
    cr_assert_eq(metric(f, "ringlog_controller_snapshot_chunk_failures_total"), 0);

    /* Installed state survives a restart: read only after the installed checkpoint. */
    cr_assert_eq(tl_broker_stop(&cl.b[f], SIGTERM, 20000), 0);
    cr_assert_eq(tl_broker_restart(&cl.b[f], START_MS), 0);
    expect_all_topics(f, TOPICS);
    long long read = metric(f, "ringlog_controller_start_entries_read");
    cr_assert(read >= 0 && read < 10, "node %d read %lld entries after its install", f + 1,
              read);

    /* A brand-new broker outside the voters joins after the truncation. */
    tl_cluster_start_node(&cl, NV);
    expect_all_topics(NV, TOPICS);
    cr_assert_geq(wait_metric(NV, "ringlog_controller_snapshot_installs_total", 1), 1);
    /* Everyone keeps taking changes, the new broker included. */
    leader = wait_leader(up, NV + 1);
    create_range(NV, TOPICS, TOPICS + 3);
    for (int i = 0; i <= NV; i++)
        expect_all_topics(i, TOPICS + 3);
}
