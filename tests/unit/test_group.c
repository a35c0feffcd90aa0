/* group: membership state machine (join, rebalance, heartbeat, leave, session expiry) and the
 * range and round-robin assignors, driven with explicit times. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/delivery/group.h"
#include "common/err.h"

#define MAX_JOINS 16

/* Join answers recorded by the callback; token is the index of the join in this table. */
struct join_slot {
    bool done;
    struct group_join_result res;
    char member_id[GROUP_MEMBER_ID_MAX + 1];
};
static struct join_slot joins[MAX_JOINS];
static struct group *g;

static void on_join(void *token, const struct group_join_result *res)
{
    struct join_slot *s = &joins[(intptr_t)token];
    cr_assert_not(s->done, "join answered twice");
    s->done = true;
    s->res = *res;
    snprintf(s->member_id, sizeof(s->member_id), "%s", res->member_id);
    s->res.member_id = s->member_id;
}

static int partitions_of(void *arg, const char *topic)
{
    if (!strcmp(topic, "orders"))
        return 6;
    if (!strcmp(topic, "payments"))
        return 3;
    return RL_E_UNKNOWN_TOPIC;
}

static void setup(void)
{
    memset(joins, 0, sizeof(joins));
    struct group_limits lim = {.max_members = 8, .min_session_timeout_ms = 100,
                               .max_session_timeout_ms = 60000};
    g = group_create("g1", &lim, 0xabc, partitions_of, NULL, on_join);
    cr_assert_not_null(g);
}

static void teardown(void)
{
    group_destroy(g);
}

TestSuite(group, .init = setup, .fini = teardown);

static const char *topics_orders[] = {"orders"};
static const char *assignors_both[] = {"range", "roundrobin"};

static int join(int slot, const char *member_id, int64_t now_ms)
{
    struct group_member_spec spec = {
        .member_id = member_id, .client_id = "c", .session_timeout_ms = 1000,
        .rebalance_timeout_ms = 5000, .topics = topics_orders, .topic_count = 1,
        .assignors = assignors_both, .assignor_count = 2,
    };
    return group_join(g, &spec, now_ms, (void *)(intptr_t)slot);
}

static uint32_t assigned(const char *member_id, int32_t gen)
{
    const struct group_tp *tps;
    uint32_t n;
    cr_assert_eq(group_sync(g, member_id, gen, 0, &tps, &n), 0);
    return n;
}

/* The first member completes a rebalance at once and gets every partition. */
Test(group, first_member_gets_everything)
{
    cr_assert_eq(join(0, "", 0), 0);
    cr_assert(joins[0].done);
    cr_assert_eq(joins[0].res.error, 0);
    cr_assert_eq(joins[0].res.generation, 1);
    cr_assert_str_eq(joins[0].res.assignor, "range");
    cr_assert_eq(group_get_state(g), GROUP_STABLE);
    cr_assert_eq(assigned(joins[0].member_id, 1), 6);
}

/* A second member triggers a rebalance; the first learns from its heartbeat and rejoins; then
 * the partitions are split and stale generations are refused. */
Test(group, second_member_rebalances_and_splits)
{
    join(0, "", 0);
    const char *a = joins[0].member_id;
    cr_assert_eq(join(1, "", 10), 0);
    cr_assert_not(joins[1].done, "join must wait for the existing member to rejoin");
    cr_assert_eq(group_heartbeat(g, a, 1, 20), RL_E_REBALANCE_IN_PROGRESS);
    cr_assert_eq(join(2, a, 30), 0);
    cr_assert(joins[1].done && joins[2].done);
    cr_assert_eq(joins[2].res.generation, 2);
    cr_assert_eq(assigned(a, 2) + assigned(joins[1].member_id, 2), 6);
    cr_assert_eq(assigned(a, 2), 3);
    cr_assert_eq(group_heartbeat(g, a, 1, 40), RL_E_ILLEGAL_GENERATION);
    cr_assert_eq(group_heartbeat(g, "nobody", 2, 40), RL_E_UNKNOWN_MEMBER_ID);
    cr_assert_eq(group_check_commit(g, a, 1), RL_E_ILLEGAL_GENERATION);
    cr_assert_eq(group_check_commit(g, a, 2), 0);
}

/* A member that stops heartbeating loses its partitions after its session timeout. */
Test(group, session_timeout_removes_member)
{
    join(0, "", 0);
    join(1, "", 0);
    join(2, joins[0].member_id, 0);
    const char *a = joins[0].member_id, *b = joins[1].member_id;
    cr_assert_eq(group_generation(g), 2);
    cr_assert_eq(group_tick(g, 900), 0);
    cr_assert_eq(group_heartbeat(g, a, 2, 900), 0);
    cr_assert_eq(group_tick(g, 1500), 1, "b should expire, a is alive");
    cr_assert_eq(group_heartbeat(g, b, 2, 1500), RL_E_UNKNOWN_MEMBER_ID);
    cr_assert_eq(group_heartbeat(g, a, 2, 1500), RL_E_REBALANCE_IN_PROGRESS);
    cr_assert_eq(join(3, a, 1600), 0);
    cr_assert_eq(joins[3].res.generation, 3);
    cr_assert_eq(assigned(a, 3), 6);
}

/* Leaving rebalances; members that never rejoin are dropped at the rebalance deadline. */
Test(group, leave_and_rebalance_deadline)
{
    join(0, "", 0);
    join(1, "", 0);
    join(2, joins[0].member_id, 0);
    join(3, "", 100); /* third member: a and b must rejoin */
    cr_assert_eq(group_leave(g, joins[1].member_id, 200), 0);
    cr_assert_not(joins[3].done);
    /* a keeps heartbeating (so its session stays alive) but never rejoins. */
    for (int64_t t = 1000; t <= 5000; t += 1000) {
        cr_assert_eq(group_heartbeat(g, joins[0].member_id, 2, t), RL_E_REBALANCE_IN_PROGRESS);
        cr_assert_eq(group_tick(g, t), 0);
        cr_assert_not(joins[3].done);
    }
    cr_assert_eq(group_tick(g, 100 + 5000), 0);
    cr_assert(joins[3].done, "deadline must complete the rebalance");
    cr_assert_eq(group_member_count(g), 1, "a did not rejoin and is dropped");
    cr_assert_eq(group_leave(g, joins[3].member_id, 6000), 0);
    cr_assert_eq(group_get_state(g), GROUP_EMPTY);
    cr_assert_eq(group_check_commit(g, "", -1), 0);
}

/* Bad joins are refused with their documented errors. */
Test(group, bad_joins_are_refused)
{
    struct group_member_spec spec = {.member_id = "", .session_timeout_ms = 10,
                                     .topics = topics_orders, .topic_count = 1,
                                     .assignors = assignors_both, .assignor_count = 2};
    cr_assert_eq(group_join(g, &spec, 0, NULL), RL_E_INVALID_SESSION_TIMEOUT);
    spec.session_timeout_ms = 1000;
    static const char *weird[] = {"sticky"};
    spec.assignors = weird;
    spec.assignor_count = 1;
    cr_assert_eq(group_join(g, &spec, 0, NULL), RL_E_INCONSISTENT_PROTOCOL);
    cr_assert_eq(join(0, "stale-id", 0), RL_E_UNKNOWN_MEMBER_ID);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(join(i, "", 0), 0);
    cr_assert_eq(join(8, "", 0), RL_E_LIMIT);
}

/* Range gives contiguous blocks, round-robin alternates; every partition has one owner. */
Test(group, assignors_cover_every_partition_once)
{
    uint32_t parts[2] = {7, 3};
    bool subs[3 * 2] = {true, true, true, false, true, true};
    int32_t owner[10];
    group_assign_range(2, parts, 3, subs, owner);
    int32_t want_range[10] = {0, 0, 0, 1, 1, 2, 2, 0, 0, 2};
    cr_assert_arr_eq(owner, want_range, sizeof(owner));
    group_assign_roundrobin(2, parts, 3, subs, owner);
    int32_t want_rr[10] = {0, 1, 2, 0, 1, 2, 0, 2, 0, 2};
    cr_assert_arr_eq(owner, want_rr, sizeof(owner));
}

/* Cooperative-sticky: previous owners keep their fair share; a partition that must move is
 * withheld (-1) in the generation that takes it away, and goes to its new owner only when its
 * old owner no longer holds it. */
Test(group, cooperative_assignor_is_sticky_and_incremental)
{
    uint32_t parts[1] = {6};
    bool subs[3] = {true, true, true};
    int32_t prev[6] = {0, 0, 0, 1, 1, 1}, owner[6];
    group_assign_cooperative(1, parts, 3, subs, prev, owner);
    int32_t want[6] = {0, 0, -1, 1, 1, -1}; /* 2 and 5 move to member 2: withheld for now */
    cr_assert_arr_eq(owner, want, sizeof(owner));
    int32_t prev2[6] = {0, 0, -1, 1, 1, -1};
    group_assign_cooperative(1, parts, 3, subs, prev2, owner);
    int32_t want2[6] = {0, 0, 2, 1, 1, 2};
    cr_assert_arr_eq(owner, want2, sizeof(owner));
    int32_t none[6] = {-1, -1, -1, -1, -1, -1}; /* a fresh group: balanced, everyone owned */
    group_assign_cooperative(1, parts, 3, subs, none, owner);
    int32_t want3[6] = {0, 1, 2, 0, 1, 2};
    cr_assert_arr_eq(owner, want3, sizeof(owner));
}

static const char *assignors_coop[] = {"cooperative-sticky"};

static int join_coop(int slot, const char *member_id, int64_t now_ms)
{
    struct group_member_spec spec = {
        .member_id = member_id, .client_id = "c", .session_timeout_ms = 1000,
        .rebalance_timeout_ms = 5000, .topics = topics_orders, .topic_count = 1,
        .assignors = assignors_coop, .assignor_count = 1,
    };
    return group_join(g, &spec, now_ms, (void *)(intptr_t)slot);
}

static bool owns(const char *member_id, int32_t gen, uint32_t partition)
{
    const struct group_tp *tps;
    uint32_t n;
    cr_assert_eq(group_sync(g, member_id, gen, 0, &tps, &n), 0);
    for (uint32_t i = 0; i < n; i++)
        if (tps[i].partition == partition)
            return true;
    return false;
}

/* Through the state machine: a third member joining two keeps their partitions where it can;
 * in the first generation nobody holds a moving partition, in the next the newcomer does. No
 * generation gives a partition to two members. Eager range is unchanged (tests above). */
Test(group, cooperative_rebalance_moves_only_what_it_must)
{
    join_coop(0, "", 0);
    char a[GROUP_MEMBER_ID_MAX + 1], b[GROUP_MEMBER_ID_MAX + 1], cm[GROUP_MEMBER_ID_MAX + 1];
    snprintf(a, sizeof(a), "%s", joins[0].member_id);
    cr_assert_str_eq(joins[0].res.assignor, "cooperative-sticky");
    cr_assert_eq(assigned(a, joins[0].res.generation), 6);
    join_coop(1, "", 10);
    join_coop(2, a, 20);
    snprintf(b, sizeof(b), "%s", joins[1].member_id);
    cr_assert_eq(assigned(b, joins[2].res.generation), 0, "a's partitions wait a round");
    cr_assert_eq(assigned(a, joins[2].res.generation), 3);
    join_coop(9, a, 25); /* a revoked 3..5 and rejoins; b follows */
    join_coop(10, b, 26);
    int32_t gen = joins[9].res.generation;
    uint32_t before_a = assigned(a, gen), before_b = assigned(b, gen);
    cr_assert_eq(before_a + before_b, 6);
    cr_assert(before_a >= 2 && before_b >= 2, "%u %u", before_a, before_b);
    bool held_a[6], held_b[6];
    for (uint32_t p = 0; p < 6; p++) {
        held_a[p] = owns(a, gen, p);
        held_b[p] = owns(b, gen, p);
    }
    join_coop(3, "", 30); /* the newcomer */
    join_coop(4, a, 40);
    join_coop(5, b, 50);
    cr_assert(joins[3].done && joins[4].done && joins[5].done);
    snprintf(cm, sizeof(cm), "%s", joins[3].member_id);
    gen = joins[4].res.generation;
    uint32_t moved = 0;
    for (uint32_t p = 0; p < 6; p++) {
        bool na = owns(a, gen, p), nb = owns(b, gen, p), nc = owns(cm, gen, p);
        cr_assert(!nc, "partition %u given to the newcomer while its owner holds it", p);
        cr_assert(!(na && !held_a[p]) && !(nb && !held_b[p]), "partition %u moved between "
                  "old members", p);
        moved += !na && !nb;
    }
    cr_assert_eq(moved, 2, "two partitions move to the third member");
    /* The owners revoked them and rejoin: the next generation hands them over. */
    join_coop(6, a, 60);
    join_coop(7, b, 70);
    join_coop(8, cm, 80);
    cr_assert(joins[6].done && joins[7].done && joins[8].done);
    gen = joins[6].res.generation;
    cr_assert_eq(assigned(a, gen), 2);
    cr_assert_eq(assigned(b, gen), 2);
    cr_assert_eq(assigned(cm, gen), 2);
    for (uint32_t p = 0; p < 6; p++)
        cr_assert_eq(owns(a, gen, p) + owns(b, gen, p) + owns(cm, gen, p), 1);
}

/* A member that never synced the generation that took partitions from it has not revoked
 * them: the next generation still counts them as its own and withholds them again, instead
 * of handing them to someone else while it may still consume them. */
Test(group, cooperative_waits_for_the_owner_to_sync)
{
    join_coop(0, "", 0);
    char a[GROUP_MEMBER_ID_MAX + 1], b[GROUP_MEMBER_ID_MAX + 1];
    snprintf(a, sizeof(a), "%s", joins[0].member_id);
    cr_assert_eq(assigned(a, joins[0].res.generation), 6);
    join_coop(1, "", 10);
    join_coop(2, a, 20); /* generation 2: 3..5 withheld from a; a does not sync it */
    snprintf(b, sizeof(b), "%s", joins[1].member_id);
    cr_assert(joins[2].done);
    join_coop(3, a, 30);
    join_coop(4, b, 40);
    int32_t gen = joins[3].res.generation;
    cr_assert_eq(assigned(b, gen), 0, "b got partitions a may still hold");
    cr_assert_eq(assigned(a, gen), 3);
    join_coop(5, a, 50); /* synced now: a revoked 3..5 */
    join_coop(6, b, 60);
    gen = joins[5].res.generation;
    cr_assert_eq(assigned(b, gen), 3);
    cr_assert_eq(assigned(a, gen), 3);
}
