/*
 * test_groups: consumer groups and committed offsets through the wire, against real ringlogd
 * processes: FindCoordinator, join (answers deferred until every member rejoined), sync with
 * the coordinator's assignment, heartbeats, leave, session timeouts removing a silent member,
 * OffsetCommit/OffsetFetch surviving SIGKILL + restart, List/DescribeGroups, and bad input
 * (unknown groups, members, topics, partitions, stale generations) answered with its
 * documented error without changing what was committed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

static struct tl_broker broker;
static struct tl_conn conn;

static void setup(void)
{
    const char *args[] = {"--set", "group.min.session.timeout.ms=200", NULL};
    int rc = tl_broker_start(&broker, args, 20000);
    cr_assert_eq(rc, 0, "ringlogd did not start: %s", rl_strerror(rc));
    cr_assert_eq(tl_connect(&conn, broker.host, broker.port, 5000), 0);
}

static void teardown(void)
{
    tl_close(&conn);
    int st = tl_broker_finish(&broker, 20000);
    cr_expect_eq(st, 0, "broker exit status %d", st);
}

TestSuite(groups, .init = setup, .fini = teardown, .timeout = 120);

static Ringlog__Response *call(struct tl_conn *c, Ringlog__Request *req)
{
    Ringlog__Response *resp;
    int rc = tl_call(c, req, NULL, 0, 10000, &resp, NULL, NULL);
    cr_assert_eq(rc, 0, "transport: %s", rl_strerror(rc));
    return resp;
}

struct member {
    struct tl_conn c;
    char id[160];
    int32_t generation;
    uint32_t member_count;
    char leader[160];
    uint32_t assigned;        /* partitions after the last sync */
    uint32_t parts[64];
};

static const char *default_topics[] = {"t1", NULL};

/* Sends a JoinGroup (answer read by join_recv). */
static void join_send(struct member *m, const char *group, uint32_t session_ms,
                      const char **topics, const char *assignor)
{
    Ringlog__JoinGroupRequest j = RINGLOG__JOIN_GROUP_REQUEST__INIT;
    j.group_id = (char *)group;
    j.member_id = m->id;
    j.session_timeout_ms = session_ms;
    j.rebalance_timeout_ms = 3000;
    size_t n = 0;
    while (topics[n])
        n++;
    j.n_topics = n;
    j.topics = (char **)topics;
    char *as[1] = {(char *)(assignor ? assignor : "range")};
    j.n_assignors = 1;
    j.assignors = as;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_JOIN_GROUP;
    req.join_group = &j;
    cr_assert_geq(tl_send(&m->c, &req, NULL, 0), 0);
}

static int join_recv(struct member *m, uint32_t timeout_ms)
{
    Ringlog__Response *resp;
    int rc = tl_recv(&m->c, timeout_ms, &resp, NULL, NULL);
    if (rc)
        return rc;
    cr_assert_eq(resp->body_case, RINGLOG__RESPONSE__BODY_JOIN_GROUP);
    if (resp->error_code)
        return resp->error_code;
    snprintf(m->id, sizeof(m->id), "%s", resp->join_group->member_id);
    snprintf(m->leader, sizeof(m->leader), "%s", resp->join_group->leader_id);
    m->generation = resp->join_group->generation;
    m->member_count = resp->join_group->member_count;
    return 0;
}

static int sync_group(struct member *m, const char *group)
{
    Ringlog__SyncGroupRequest s = RINGLOG__SYNC_GROUP_REQUEST__INIT;
    s.group_id = (char *)group;
    s.member_id = m->id;
    s.generation = m->generation;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_SYNC_GROUP;
    req.sync_group = &s;
    Ringlog__Response *resp = call(&m->c, &req);
    cr_assert_eq(resp->body_case, RINGLOG__RESPONSE__BODY_SYNC_GROUP);
    if (resp->error_code)
        return resp->error_code;
    m->assigned = 0;
    for (size_t i = 0; i < resp->sync_group->n_assignment; i++)
        for (size_t k = 0; k < resp->sync_group->assignment[i]->n_partitions; k++)
            if (m->assigned < 64)
                m->parts[m->assigned++] = resp->sync_group->assignment[i]->partitions[k];
    return 0;
}

static int heartbeat(struct tl_conn *c, const char *group, const char *member, int32_t gen)
{
    Ringlog__HeartbeatRequest h = RINGLOG__HEARTBEAT_REQUEST__INIT;
    h.group_id = (char *)group;
    h.member_id = (char *)member;
    h.generation = gen;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_HEARTBEAT;
    req.heartbeat = &h;
    return call(c, &req)->error_code;
}

static int leave(struct tl_conn *c, const char *group, const char *member)
{
    Ringlog__LeaveGroupRequest l = RINGLOG__LEAVE_GROUP_REQUEST__INIT;
    l.group_id = (char *)group;
    l.member_id = (char *)member;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_LEAVE_GROUP;
    req.leave_group = &l;
    return call(c, &req)->error_code;
}

/* Commits one partition; returns the partition's (or the request's) code. */
static int commit(struct tl_conn *c, const char *group, const char *member, int32_t gen,
                  const char *topic, uint32_t part, int64_t offset, const char *meta)
{
    Ringlog__OffsetCommitPartition p = RINGLOG__OFFSET_COMMIT_PARTITION__INIT;
    p.partition = part;
    p.offset = offset;
    p.metadata = (char *)(meta ? meta : "");
    Ringlog__OffsetCommitPartition *ps[1] = {&p};
    Ringlog__OffsetCommitTopic t = RINGLOG__OFFSET_COMMIT_TOPIC__INIT;
    t.name = (char *)topic;
    t.n_partitions = 1;
    t.partitions = ps;
    Ringlog__OffsetCommitTopic *ts[1] = {&t};
    Ringlog__OffsetCommitRequest oc = RINGLOG__OFFSET_COMMIT_REQUEST__INIT;
    oc.group_id = (char *)group;
    oc.member_id = (char *)member;
    oc.generation = gen;
    oc.n_topics = 1;
    oc.topics = ts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_OFFSET_COMMIT;
    req.offset_commit = &oc;
    Ringlog__Response *resp = call(c, &req);
    if (resp->error_code)
        return resp->error_code;
    cr_assert_eq(resp->body_case, RINGLOG__RESPONSE__BODY_OFFSET_COMMIT);
    cr_assert_eq(resp->offset_commit->n_topics, 1);
    cr_assert_eq(resp->offset_commit->topics[0]->n_partitions, 1);
    return resp->offset_commit->topics[0]->partitions[0]->error_code;
}

/* Fetches one committed offset (-1 when none); returns the code. */
static int fetch_offset(struct tl_conn *c, const char *group, const char *topic, uint32_t part,
                        int64_t *offset, char *meta, size_t meta_cap)
{
    uint32_t parts[1] = {part};
    Ringlog__OffsetFetchTopic t = RINGLOG__OFFSET_FETCH_TOPIC__INIT;
    t.name = (char *)topic;
    t.n_partitions = 1;
    t.partitions = parts;
    Ringlog__OffsetFetchTopic *ts[1] = {&t};
    Ringlog__OffsetFetchRequest of = RINGLOG__OFFSET_FETCH_REQUEST__INIT;
    of.group_id = (char *)group;
    of.n_topics = 1;
    of.topics = ts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_OFFSET_FETCH;
    req.offset_fetch = &of;
    Ringlog__Response *resp = call(c, &req);
    if (resp->error_code)
        return resp->error_code;
    cr_assert_eq(resp->offset_fetch->n_topics, 1);
    cr_assert_eq(resp->offset_fetch->topics[0]->n_partitions, 1);
    const Ringlog__OffsetFetchPartitionResult *r = resp->offset_fetch->topics[0]->partitions[0];
    *offset = r->offset;
    if (meta)
        snprintf(meta, meta_cap, "%s", r->metadata);
    return r->error_code;
}

static void member_connect(struct member *m)
{
    memset(m, 0, sizeof(*m));
    cr_assert_eq(tl_connect(&m->c, broker.host, broker.port, 5000), 0);
}

/* FindCoordinator answers with this broker; a bad group id is INVALID_GROUP_ID. */
Test(groups, find_coordinator)
{
    Ringlog__FindCoordinatorRequest f = RINGLOG__FIND_COORDINATOR_REQUEST__INIT;
    f.group_id = (char *)"g";
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_FIND_COORDINATOR;
    req.find_coordinator = &f;
    Ringlog__Response *resp = call(&conn, &req);
    cr_assert_eq(resp->error_code, 0);
    cr_assert_eq(resp->find_coordinator->port, broker.port);
    cr_assert_str_eq(resp->find_coordinator->host, broker.host);
    f.group_id = (char *)"";
    resp = call(&conn, &req);
    cr_assert_eq(resp->error_code, RL_E_INVALID_GROUP_ID);
}

/* Two members: the second join makes the first rejoin (its heartbeat says so); both answers
 * arrive together with generation + 1, and the assignment splits the partitions. A leave
 * gives the rest everything. */
Test(groups, join_sync_heartbeat_leave)
{
    cr_assert_eq(tl_create_topic(&conn, "t1", 4, NULL, NULL, 0), 0);
    struct member a, b;
    member_connect(&a);
    member_connect(&b);
    join_send(&a, "g", 5000, default_topics, "range");
    cr_assert_eq(join_recv(&a, 5000), 0);
    cr_assert_eq(a.member_count, 1);
    cr_assert_str_eq(a.leader, a.id);
    cr_assert_eq(sync_group(&a, "g"), 0);
    cr_assert_eq(a.assigned, 4);
    cr_assert_eq(heartbeat(&a.c, "g", a.id, a.generation), 0);
    int32_t gen1 = a.generation;
    /* b joins: its answer waits for a's rejoin. */
    join_send(&b, "g", 5000, default_topics, "range");
    int hb = 0;
    for (uint64_t until = tl_now_ms() + 5000; hb == 0 && tl_now_ms() < until;)
        hb = heartbeat(&a.c, "g", a.id, a.generation); /* until b's join has arrived */
    cr_assert_eq(hb, RL_E_REBALANCE_IN_PROGRESS);
    cr_assert_eq(join_recv(&b, 200), -ETIMEDOUT, "b's join answered before a rejoined");
    join_send(&a, "g", 5000, default_topics, "range");
    cr_assert_eq(join_recv(&a, 5000), 0);
    cr_assert_eq(join_recv(&b, 5000), 0);
    cr_assert_eq(a.generation, gen1 + 1);
    cr_assert_eq(b.generation, a.generation);
    cr_assert_eq(a.member_count, 2);
    cr_assert_eq(sync_group(&a, "g"), 0);
    cr_assert_eq(sync_group(&b, "g"), 0);
    cr_assert_eq(a.assigned + b.assigned, 4);
    cr_assert_eq(a.assigned, 2);
    bool seen[4] = {false};
    for (uint32_t i = 0; i < a.assigned; i++)
        seen[a.parts[i]] = true;
    for (uint32_t i = 0; i < b.assigned; i++) {
        cr_assert(!seen[b.parts[i]], "partition %u assigned twice", b.parts[i]);
        seen[b.parts[i]] = true;
    }
    /* Stale generation and unknown member. */
    cr_assert_eq(heartbeat(&a.c, "g", a.id, gen1), RL_E_ILLEGAL_GENERATION);
    cr_assert_eq(heartbeat(&a.c, "g", "nobody", a.generation), RL_E_UNKNOWN_MEMBER_ID);
    cr_assert_eq(heartbeat(&a.c, "nogroup", a.id, a.generation), RL_E_UNKNOWN_MEMBER_ID);
    /* b leaves: a rejoins alone and gets all four. */
    cr_assert_eq(leave(&b.c, "g", b.id), 0);
    cr_assert_eq(leave(&b.c, "g", b.id), RL_E_UNKNOWN_MEMBER_ID);
    cr_assert_eq(heartbeat(&a.c, "g", a.id, a.generation), RL_E_REBALANCE_IN_PROGRESS);
    join_send(&a, "g", 5000, default_topics, "range");
    cr_assert_eq(join_recv(&a, 5000), 0);
    cr_assert_eq(a.member_count, 1);
    cr_assert_eq(sync_group(&a, "g"), 0);
    cr_assert_eq(a.assigned, 4);
    tl_close(&a.c);
    tl_close(&b.c);
}

/* A member that stops heartbeating is removed after its session timeout; the survivor is told
 * to rejoin and then owns every partition. Measures the time from the last heartbeat to the
 * survivor's new assignment. */
Test(groups, session_timeout)
{
    cr_assert_eq(tl_create_topic(&conn, "t1", 6, NULL, NULL, 0), 0);
    struct member a, b;
    member_connect(&a);
    member_connect(&b);
    join_send(&a, "g", 5000, default_topics, "roundrobin");
    cr_assert_eq(join_recv(&a, 5000), 0);
    join_send(&b, "g", 600, default_topics, "roundrobin");
    int hb = 0;
    for (uint64_t until = tl_now_ms() + 5000; hb == 0 && tl_now_ms() < until;)
        hb = heartbeat(&a.c, "g", a.id, a.generation); /* until b's join has arrived */
    cr_assert_eq(hb, RL_E_REBALANCE_IN_PROGRESS);
    join_send(&a, "g", 5000, default_topics, "roundrobin");
    cr_assert_eq(join_recv(&a, 5000), 0);
    cr_assert_eq(join_recv(&b, 5000), 0);
    cr_assert_eq(sync_group(&a, "g"), 0);
    cr_assert_eq(sync_group(&b, "g"), 0);
    cr_assert_eq(a.assigned, 3);
    cr_assert_eq(b.assigned, 3);
    uint64_t t0 = tl_now_ms();
    cr_assert_eq(heartbeat(&b.c, "g", b.id, b.generation), 0); /* b's last sign of life */
    int rc = 0;
    for (uint64_t until = t0 + 10000; rc == 0 && tl_now_ms() < until;) {
        rc = heartbeat(&a.c, "g", a.id, a.generation);
        if (rc == 0)
            usleep(50000); /* a's heartbeat interval */
    }
    cr_assert_eq(rc, RL_E_REBALANCE_IN_PROGRESS, "b was not expired");
    join_send(&a, "g", 5000, default_topics, "roundrobin");
    cr_assert_eq(join_recv(&a, 5000), 0);
    cr_assert_eq(sync_group(&a, "g"), 0);
    uint64_t took = tl_now_ms() - t0;
    cr_assert_eq(a.assigned, 6);
    cr_assert_eq(a.member_count, 1);
    cr_assert_geq(took, 600);
    cr_assert_lt(took, 600 + 1000, "took %llu ms", (unsigned long long)took);
    fprintf(stderr, "session_timeout: 600 ms session, partitions reassigned after %llu ms\n",
            (unsigned long long)took);
    cr_assert_eq(heartbeat(&b.c, "g", b.id, b.generation), RL_E_UNKNOWN_MEMBER_ID);
    tl_close(&a.c);
    tl_close(&b.c);
}

/* Commits by members and standalone commits are stored, fetched back (with metadata) and
 * survive a SIGKILL + restart; the memberships do not (members are told to rejoin). */
Test(groups, offsets_survive_restart)
{
    cr_assert_eq(tl_create_topic(&conn, "t1", 3, NULL, NULL, 0), 0);
    struct member a;
    member_connect(&a);
    join_send(&a, "g", 5000, default_topics, "range");
    cr_assert_eq(join_recv(&a, 5000), 0);
    cr_assert_eq(sync_group(&a, "g"), 0);
    int64_t off;
    cr_assert_eq(fetch_offset(&conn, "g", "t1", 0, &off, NULL, 0), 0);
    cr_assert_eq(off, -1, "nothing committed yet");
    for (int round = 1; round <= 5; round++)
        for (uint32_t p = 0; p < 3; p++)
            cr_assert_eq(commit(&a.c, "g", a.id, a.generation, "t1", p, round * 100 + p,
                                "m"), 0);
    cr_assert_eq(commit(&conn, "solo", "", -1, "t1", 1, 42, "standalone"), 0);
    char meta[64];
    cr_assert_eq(fetch_offset(&conn, "g", "t1", 2, &off, meta, sizeof(meta)), 0);
    cr_assert_eq(off, 502);
    cr_assert_str_eq(meta, "m");
    tl_close(&a.c);
    tl_close(&conn);
    tl_broker_kill(&broker);
    cr_assert_eq(tl_broker_restart(&broker, 20000), 0);
    cr_assert_eq(tl_connect(&conn, broker.host, broker.port, 5000), 0);
    for (uint32_t p = 0; p < 3; p++) {
        cr_assert_eq(fetch_offset(&conn, "g", "t1", p, &off, meta, sizeof(meta)), 0);
        cr_assert_eq(off, 500 + p, "partition %u: %lld after restart", p, (long long)off);
    }
    cr_assert_eq(fetch_offset(&conn, "solo", "t1", 1, &off, meta, sizeof(meta)), 0);
    cr_assert_eq(off, 42);
    cr_assert_str_eq(meta, "standalone");
    /* The old membership is gone: heartbeat and member commits say rejoin. */
    cr_assert_eq(heartbeat(&conn, "g", a.id, a.generation), RL_E_UNKNOWN_MEMBER_ID);
    cr_assert_eq(commit(&conn, "g", a.id, a.generation, "t1", 0, 1, NULL),
                 RL_E_UNKNOWN_MEMBER_ID);
    cr_assert_eq(fetch_offset(&conn, "g", "t1", 0, &off, NULL, 0), 0);
    cr_assert_eq(off, 500, "a rejected commit changed the offset");
    /* Everything the group committed (no topics listed), and every partition of one topic. */
    Ringlog__OffsetFetchRequest of = RINGLOG__OFFSET_FETCH_REQUEST__INIT;
    of.group_id = (char *)"g";
    Ringlog__Request freq = RINGLOG__REQUEST__INIT;
    freq.body_case = RINGLOG__REQUEST__BODY_OFFSET_FETCH;
    freq.offset_fetch = &of;
    Ringlog__Response *fresp = call(&conn, &freq);
    cr_assert_eq(fresp->error_code, 0);
    cr_assert_eq(fresp->offset_fetch->n_topics, 1);
    cr_assert_str_eq(fresp->offset_fetch->topics[0]->name, "t1");
    cr_assert_eq(fresp->offset_fetch->topics[0]->n_partitions, 3);
    int64_t sum = 0;
    for (size_t i = 0; i < 3; i++)
        sum += fresp->offset_fetch->topics[0]->partitions[i]->offset;
    cr_assert_eq(sum, 500 + 501 + 502);
    Ringlog__OffsetFetchTopic ft = RINGLOG__OFFSET_FETCH_TOPIC__INIT;
    ft.name = (char *)"t1";
    Ringlog__OffsetFetchTopic *fts[1] = {&ft};
    of.n_topics = 1;
    of.topics = fts;
    fresp = call(&conn, &freq);
    cr_assert_eq(fresp->error_code, 0);
    cr_assert_eq(fresp->offset_fetch->n_topics, 1);
    cr_assert_eq(fresp->offset_fetch->topics[0]->n_partitions, 3);
    /* ListGroups shows both groups (no members: Empty). */
    Ringlog__ListGroupsRequest lg = RINGLOG__LIST_GROUPS_REQUEST__INIT;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_LIST_GROUPS;
    req.list_groups = &lg;
    Ringlog__Response *resp = call(&conn, &req);
    cr_assert_eq(resp->error_code, 0);
    cr_assert_eq(resp->list_groups->n_groups, 2);
}

/* Bad commits get their documented error and change nothing. */
Test(groups, bad_commits)
{
    cr_assert_eq(tl_create_topic(&conn, "t1", 2, NULL, NULL, 0), 0);
    struct member a;
    member_connect(&a);
    join_send(&a, "g", 5000, default_topics, "range");
    cr_assert_eq(join_recv(&a, 5000), 0);
    cr_assert_eq(sync_group(&a, "g"), 0);
    cr_assert_eq(commit(&a.c, "g", a.id, a.generation, "t1", 0, 10, NULL), 0);
    cr_assert_eq(commit(&a.c, "g", a.id, a.generation, "nosuch", 0, 11, NULL),
                 RL_E_UNKNOWN_TOPIC);
    cr_assert_eq(commit(&a.c, "g", a.id, a.generation, "t1", 9, 11, NULL),
                 RL_E_UNKNOWN_PARTITION);
    cr_assert_eq(commit(&a.c, "g", a.id, a.generation, "t1", 0, -5, NULL),
                 RL_E_INVALID_REQUEST);
    cr_assert_eq(commit(&a.c, "g", a.id, a.generation + 1, "t1", 0, 11, NULL),
                 RL_E_ILLEGAL_GENERATION);
    cr_assert_eq(commit(&a.c, "g", "intruder", a.generation, "t1", 0, 11, NULL),
                 RL_E_UNKNOWN_MEMBER_ID);
    cr_assert_eq(commit(&a.c, "g", "", -1, "t1", 0, 11, NULL), RL_E_UNKNOWN_MEMBER_ID,
                 "a standalone commit to a group with members");
    cr_assert_eq(commit(&a.c, "nogroup", "someone", 3, "t1", 0, 11, NULL),
                 RL_E_UNKNOWN_MEMBER_ID);
    cr_assert_eq(commit(&a.c, "", "", -1, "t1", 0, 11, NULL), RL_E_INVALID_GROUP_ID);
    char big[1100];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    cr_assert_eq(commit(&a.c, "g", a.id, a.generation, "t1", 0, 11, big), RL_E_INVALID_REQUEST);
    int64_t off;
    cr_assert_eq(fetch_offset(&conn, "g", "t1", 0, &off, NULL, 0), 0);
    cr_assert_eq(off, 10, "a rejected commit changed the offset");
    cr_assert_eq(fetch_offset(&conn, "g", "nosuch", 0, &off, NULL, 0), RL_E_UNKNOWN_TOPIC);
    cr_assert_eq(fetch_offset(&conn, "g", "t1", 7, &off, NULL, 0), RL_E_UNKNOWN_PARTITION);
    cr_assert_eq(fetch_offset(&conn, "", "t1", 0, &off, NULL, 0), RL_E_INVALID_GROUP_ID);
    /* Bad joins. */
    struct member x;
    member_connect(&x);
    join_send(&x, "g", 50, default_topics, "range");
    cr_assert_eq(join_recv(&x, 5000), RL_E_INVALID_SESSION_TIMEOUT);
    join_send(&x, "g", 5000, default_topics, "sticky");
    cr_assert_eq(join_recv(&x, 5000), RL_E_INCONSISTENT_PROTOCOL);
    snprintf(x.id, sizeof(x.id), "made-up");
    join_send(&x, "g", 5000, default_topics, "range");
    cr_assert_eq(join_recv(&x, 5000), RL_E_UNKNOWN_MEMBER_ID);
    x.id[0] = 0;
    join_send(&x, "", 5000, default_topics, "range");
    cr_assert_eq(join_recv(&x, 5000), RL_E_INVALID_GROUP_ID);
    /* The group is untouched: a is still the only member at its generation. */
    cr_assert_eq(heartbeat(&a.c, "g", a.id, a.generation), 0);
    cr_assert_eq(sync_group(&x, "g"), RL_E_UNKNOWN_MEMBER_ID);
    /* DescribeGroups: g with its member, an unknown group with GROUP_ID_NOT_FOUND. */
    char *ids[2] = {(char *)"g", (char *)"unknown"};
    Ringlog__DescribeGroupsRequest dg = RINGLOG__DESCRIBE_GROUPS_REQUEST__INIT;
    dg.n_group_ids = 2;
    dg.group_ids = ids;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_DESCRIBE_GROUPS;
    req.describe_groups = &dg;
    Ringlog__Response *resp = call(&conn, &req);
    cr_assert_eq(resp->describe_groups->n_groups, 2);
    const Ringlog__GroupDescription *g0 = resp->describe_groups->groups[0];
    cr_assert_eq(g0->error_code, 0);
    cr_assert_str_eq(g0->state, "Stable");
    cr_assert_str_eq(g0->assignor, "range");
    cr_assert_eq(g0->n_members, 1);
    cr_assert_str_eq(g0->members[0]->member_id, a.id);
    cr_assert_eq(g0->members[0]->n_assignment, 1);
    cr_assert_eq(g0->members[0]->assignment[0]->n_partitions, 2);
    cr_assert_eq(resp->describe_groups->groups[1]->error_code, RL_E_GROUP_ID_NOT_FOUND);
    tl_close(&a.c);
    tl_close(&x.c);
}

/* A broker asked to stop while a join waits for a rebalance answers it and exits cleanly. */
Test(groups, stop_with_pending_join)
{
    cr_assert_eq(tl_create_topic(&conn, "t1", 2, NULL, NULL, 0), 0);
    struct member a, b;
    member_connect(&a);
    member_connect(&b);
    join_send(&a, "g", 5000, default_topics, "range");
    cr_assert_eq(join_recv(&a, 5000), 0);
    join_send(&b, "g", 5000, default_topics, "range");
    cr_assert_eq(join_recv(&b, 200), -ETIMEDOUT);
    uint64_t t0 = tl_now_ms();
    int st = tl_broker_stop(&broker, SIGTERM, 20000);
    cr_assert_eq(st, 0);
    cr_assert_lt(tl_now_ms() - t0, 5000, "shutdown waited for the pending join");
    tl_close(&a.c);
    tl_close(&b.c);
}
