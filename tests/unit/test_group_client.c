/* group, client-side assignment (Kafka clients): the leader's join answer carries every
 * member's protocol metadata, followers' SyncGroups wait for the leader's and get its bytes
 * unchanged, a rebalance answers parked syncs, the protocol is chosen by vote, server-side and
 * client-side members never mix, and an empty group's first rebalance waits the initial delay.
 * Driven with explicit times. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/delivery/group.h"
#include "common/err.h"

#define SLOTS 16
#define DELAY_MS 300

struct join_slot {
    bool done;
    int error;
    int32_t generation;
    char member_id[GROUP_MEMBER_ID_MAX + 1];
    char leader_id[GROUP_MEMBER_ID_MAX + 1];
    char protocol[GROUP_PROTOCOL_NAME_MAX + 1];
    uint32_t n_metadata;      /* members whose metadata came with the answer */
    char metadata[4][32];     /* their metadata, as strings */
};
struct sync_slot {
    bool done;
    int error;
    char assignment[64];
};
static struct join_slot joins[SLOTS];
static struct sync_slot syncs[SLOTS];
static struct group *g;

static void on_join(void *token, const struct group_join_result *res)
{
    struct join_slot *s = &joins[(intptr_t)token];
    cr_assert_not(s->done, "join answered twice");
    s->done = true;
    s->error = res->error;
    s->generation = res->generation;
    snprintf(s->member_id, sizeof(s->member_id), "%s", res->member_id);
    snprintf(s->leader_id, sizeof(s->leader_id), "%s", res->leader_id);
    snprintf(s->protocol, sizeof(s->protocol), "%s", res->assignor);
    if (!res->group || strcmp(res->member_id, res->leader_id))
        return;
    for (uint32_t i = 0; i < group_member_count(res->group) && i < 4; i++) {
        const char *id;
        const uint8_t *md, *as;
        uint32_t md_len, as_len;
        cr_assert_eq(group_member_protocol(res->group, i, &id, &md, &md_len, &as, &as_len), 0);
        snprintf(s->metadata[i], sizeof(s->metadata[i]), "%.*s", (int)md_len, (const char *)md);
        s->n_metadata++;
    }
}

static void on_sync(void *token, int error, const uint8_t *a, uint32_t len)
{
    struct sync_slot *s = &syncs[(intptr_t)token];
    cr_assert_not(s->done, "sync answered twice");
    s->done = true;
    s->error = error;
    snprintf(s->assignment, sizeof(s->assignment), "%.*s", (int)len, (const char *)a);
}

static int partitions_of(void *arg, const char *topic)
{
    (void)arg;
    (void)topic;
    return 6;
}

static void make_group(int32_t delay_ms)
{
    memset(joins, 0, sizeof(joins));
    memset(syncs, 0, sizeof(syncs));
    struct group_limits lim = {.max_members = 8, .min_session_timeout_ms = 100,
                               .max_session_timeout_ms = 60000,
                               .initial_rebalance_delay_ms = delay_ms};
    g = group_create("kg", &lim, 0x5eed, partitions_of, NULL, on_join);
    cr_assert_not_null(g);
    group_set_sync_done(g, on_sync);
}

static void setup(void)
{
    make_group(0);
}

static void teardown(void)
{
    group_destroy(g);
}

TestSuite(group_client, .init = setup, .fini = teardown);

/* A Kafka member naming protocols (name:metadata ...) in order of preference. */
static int kjoin(int slot, const char *member_id, int64_t now_ms, const char *p1,
                 const char *m1, const char *p2, const char *m2)
{
    struct group_protocol ps[2] = {
        {p1, (const uint8_t *)m1, (uint32_t)strlen(m1)},
        {p2, (const uint8_t *)m2, m2 ? (uint32_t)strlen(m2) : 0},
    };
    struct group_member_spec spec = {
        .member_id = member_id, .client_id = "rdkafka", .session_timeout_ms = 1000,
        .rebalance_timeout_ms = 5000, .protocol_type = "consumer", .protocols = ps,
        .protocol_count = p2 ? 2 : 1,
    };
    return group_join(g, &spec, now_ms, (void *)(intptr_t)slot);
}

static int ksync(int slot, const char *member_id, int32_t gen, int64_t now_ms,
                 const struct group_sync_assignment *a, uint32_t n)
{
    return group_sync_client(g, member_id, gen, now_ms, a, n, (void *)(intptr_t)slot);
}

/* Two members: the leader alone gets both members' metadata; the follower's sync waits for the
 * leader's, then each gets exactly the bytes the leader assigned it. */
Test(group_client, leader_assigns_and_followers_wait)
{
    cr_assert_eq(kjoin(0, "", 0, "range", "sub-a", NULL, NULL), 0);
    cr_assert(joins[0].done && joins[0].generation == 1);
    cr_assert_eq(kjoin(1, "", 10, "range", "sub-b", NULL, NULL), 0);
    cr_assert_not(joins[1].done);
    cr_assert_eq(kjoin(2, joins[0].member_id, 20, "range", "sub-a2", NULL, NULL), 0);
    cr_assert(joins[1].done && joins[2].done);
    const char *a = joins[2].member_id, *b = joins[1].member_id;
    struct join_slot *leader = !strcmp(joins[2].leader_id, a) ? &joins[2] : &joins[1];
    struct join_slot *follower = leader == &joins[2] ? &joins[1] : &joins[2];
    cr_assert_str_eq(leader->protocol, "range");
    cr_assert_eq(leader->n_metadata, 2, "the leader gets every member's metadata");
    cr_assert_eq(follower->n_metadata, 0, "a follower gets none");
    bool a_first = strcmp(a, b) < 0; /* members are kept sorted by id */
    cr_assert_str_eq(leader->metadata[a_first ? 0 : 1], "sub-a2", "the rejoin's metadata");
    cr_assert_str_eq(group_state_label(g), "CompletingRebalance");
    cr_assert_eq(ksync(0, follower->member_id, 2, 30, NULL, 0), 0);
    cr_assert_not(syncs[0].done, "a follower's sync waits for the leader's");
    cr_assert_eq(group_heartbeat(g, follower->member_id, 2, 35), 0,
                 "heartbeats succeed while the leader assigns");
    struct group_sync_assignment as[2] = {
        {a, (const uint8_t *)"parts-of-a", 10}, {b, (const uint8_t *)"parts-of-b", 10}};
    cr_assert_eq(ksync(1, leader->member_id, 2, 40, as, 2), 0);
    cr_assert(syncs[0].done && syncs[1].done);
    cr_assert_eq(syncs[0].error, 0);
    bool follower_is_a = !strcmp(follower->member_id, a);
    cr_assert_str_eq(syncs[0].assignment, follower_is_a ? "parts-of-a" : "parts-of-b");
    cr_assert_str_eq(syncs[1].assignment, follower_is_a ? "parts-of-b" : "parts-of-a");
    cr_assert_str_eq(group_state_label(g), "Stable");
    /* A late sync of the same generation gets the stored bytes at once. */
    cr_assert_eq(ksync(2, follower->member_id, 2, 50, NULL, 0), 0);
    cr_assert(syncs[2].done);
    cr_assert_str_eq(syncs[2].assignment, syncs[0].assignment);
}

/* A rebalance starting while a follower waits answers it REBALANCE_IN_PROGRESS; leaving
 * answers a member's own parked sync. */
Test(group_client, rebalance_answers_parked_syncs)
{
    kjoin(0, "", 0, "range", "x", NULL, NULL);
    kjoin(1, "", 0, "range", "y", NULL, NULL);
    kjoin(2, joins[0].member_id, 0, "range", "x", NULL, NULL);
    const char *leader = joins[2].leader_id;
    const char *follower = strcmp(joins[1].member_id, leader) ? joins[1].member_id
                                                              : joins[2].member_id;
    cr_assert_eq(ksync(0, follower, 2, 10, NULL, 0), 0);
    cr_assert_not(syncs[0].done);
    cr_assert_eq(kjoin(3, "", 20, "range", "z", NULL, NULL), 0); /* a third member arrives */
    cr_assert(syncs[0].done);
    cr_assert_eq(syncs[0].error, RL_E_REBALANCE_IN_PROGRESS);
    cr_assert_eq(ksync(1, leader, 2, 30, NULL, 0), RL_E_REBALANCE_IN_PROGRESS);
}

/* The protocol every member supports that most members prefer wins. */
Test(group_client, protocol_chosen_by_vote)
{
    kjoin(0, "", 0, "roundrobin", "", "range", "");
    kjoin(1, "", 0, "range", "", "roundrobin", "");
    kjoin(2, "", 0, "range", "", "roundrobin", "");
    kjoin(3, joins[0].member_id, 0, "roundrobin", "", "range", "");
    cr_assert(joins[1].done && joins[2].done && joins[3].done);
    cr_assert_str_eq(joins[3].protocol, "range", "two of three prefer range");
    cr_assert_eq(kjoin(4, "", 10, "cooperative-sticky", "", NULL, NULL),
                 RL_E_INCONSISTENT_PROTOCOL, "a member sharing no protocol is refused");
}

/* Server-side (native) and client-side (Kafka) members never share a group. */
Test(group_client, native_and_kafka_members_do_not_mix)
{
    kjoin(0, "", 0, "range", "", NULL, NULL);
    static const char *topics[] = {"orders"};
    static const char *assignors[] = {"range"};
    struct group_member_spec native = {
        .member_id = "", .client_id = "c", .session_timeout_ms = 1000,
        .rebalance_timeout_ms = 5000, .topics = topics, .topic_count = 1,
        .assignors = assignors, .assignor_count = 1};
    cr_assert_eq(group_join(g, &native, 10, (void *)(intptr_t)1), RL_E_INCONSISTENT_PROTOCOL);
    const struct group_tp *tps;
    uint32_t n;
    cr_assert_eq(group_sync(g, joins[0].member_id, 1, 20, &tps, &n), 0);
    cr_assert_eq(n, 0, "a client-side group has no server-side assignment");
    /* Once the Kafka member leaves, the empty group takes a native member again. */
    cr_assert_eq(group_leave(g, joins[0].member_id, 30), 0);
    cr_assert_eq(group_join(g, &native, 40, (void *)(intptr_t)2), 0);
    cr_assert(joins[2].done && joins[2].error == 0);
    cr_assert_eq(ksync(0, joins[2].member_id, joins[2].generation, 50, NULL, 0),
                 RL_E_INCONSISTENT_PROTOCOL);
}

/* An empty group's first rebalance waits the initial delay, so members starting together
 * share one generation; later rebalances do not wait. */
Test(group_client, initial_delay_gathers_members)
{
    group_destroy(g);
    make_group(DELAY_MS);
    cr_assert_eq(kjoin(0, "", 0, "range", "", NULL, NULL), 0);
    cr_assert_not(joins[0].done, "the first join waits the initial delay");
    cr_assert_eq(kjoin(1, "", 100, "range", "", NULL, NULL), 0);
    group_tick(g, DELAY_MS - 1);
    cr_assert_not(joins[0].done || joins[1].done);
    group_tick(g, DELAY_MS);
    cr_assert(joins[0].done && joins[1].done);
    cr_assert_eq(joins[0].generation, 1);
    cr_assert_eq(joins[1].generation, 1);
    cr_assert_eq(group_member_count(g), 2);
    cr_assert_eq(group_leave(g, joins[1].member_id, 400), 0);
    cr_assert_eq(kjoin(2, joins[0].member_id, 410, "range", "", NULL, NULL), 0);
    cr_assert(joins[2].done, "a rebalance of a non-empty group does not wait");
}
