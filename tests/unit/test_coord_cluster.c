/*
 * test_coord_cluster: which broker of a cluster answers for a group (broker/delivery/
 * coordinator.c), by the role of the replica of the group's __consumer_offsets partition held
 * here. The partition is made replicated by a scripted replicator and its role is set by hand,
 * as the Raft group reports it: no leader known, another node leading, this node elected but
 * its first entry not yet committed, this node the ready leader.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "broker_sim.h"

#define GROUP "g"
#define SELF 1u

static struct broker b;
static struct partition *g_p; /* this node's replica of __consumer_offsets-0 */

static int no_propose(void *ctx, uint8_t *batch, uint32_t len, bool all, uint64_t *end)
{
    (void)ctx, (void)batch, (void)len, (void)all, (void)end;
    return RL_E_NOT_LEADER;
}

static uint32_t none_in_sync(void *ctx, uint32_t *out, uint32_t cap)
{
    (void)ctx, (void)out, (void)cap;
    return 0;
}

static int attach(void *ctx, const struct meta_topic *t, uint32_t i, struct partition *p)
{
    (void)ctx, (void)t, (void)i;
    static const struct partition_replicator r = {no_propose, none_in_sync, NULL};
    partition_set_replicator(p, &r);
    g_p = p;
    return 0;
}

static void detach(void *ctx, struct partition *p)
{
    (void)ctx;
    partition_set_replicator(p, NULL);
}

static void start(void)
{
    memset(&b, 0, sizeof(b));
    g_p = NULL;
    b.node_id = SELF;
    broker_sim_start(&b);
    static const struct meta_replicator mr = {attach, detach, NULL, NULL};
    cr_assert_eq(meta_set_replicator(b.m, &mr), 0);
    /* As the controller records it: 1 partition (the coordinator's offsets_topic_partitions),
     * replicas 1, 2, 3. */
    uint32_t owners[1] = {SELF}, replicas[3] = {SELF, 2, 3};
    struct meta_record create = {
        .kind = META_RECORD_CREATE_TOPIC,
        .spec = {.name = "__consumer_offsets", .partitions = 1, .replication_factor = 3,
                 .n_owners = 1, .owners = owners, .n_replicas = 3, .replicas = replicas,
                 .incarnation = 1}};
    cr_assert_eq(meta_apply(b.m, &create), 0);
    for (int i = 0; !meta_topic_find(b.m, "__consumer_offsets") && i < LOOP_GUARD; i++)
        loop_once(&b);
    cr_assert_not_null(meta_topic_find(b.m, "__consumer_offsets"));
    cr_assert_not_null(g_p, "the replicator was not attached to the partition");
    cr_assert(partition_replicated(g_p));
}

static void finish(void)
{
    broker_close(&b);
    io_destroy(b.io);
}

TestSuite(coord_cluster, .init = start, .fini = finish, .timeout = 60);

/* FindCoordinator's answer here (0: this node) and a group request's (OffsetFetch's check),
 * each with its sentence. */
static void answers(int *find, int *group, char *msg, size_t cap)
{
    char fmsg[COORD_MSG_MAX] = "";
    *find = coord_find(b.coord, GROUP, fmsg, sizeof(fmsg));
    msg[0] = 0;
    *group = coord_offsets_check(b.coord, GROUP, msg, cap);
}

Test(coord_cluster, the_groups_are_answered_for_by_the_role_of_their_offsets_partition)
{
    char msg[COORD_MSG_MAX];
    int find, group;

    partition_repl_role(g_p, false, 0, 1); /* an election under way: no leader known */
    answers(&find, &group, msg, sizeof(msg));
    cr_assert_eq(find, RL_E_COORDINATOR_NOT_AVAILABLE, "%s", rl_strerror(find));
    cr_assert_eq(group, RL_E_COORDINATOR_NOT_AVAILABLE, "%s", rl_strerror(group));
    cr_assert(strstr(msg, "election under way"), "%s", msg);

    partition_repl_role(g_p, false, 2, 2); /* node 2 leads: it coordinates */
    answers(&find, &group, msg, sizeof(msg));
    cr_assert_eq(find, RL_E_NOT_COORDINATOR, "%s", rl_strerror(find));
    cr_assert_eq(group, RL_E_NOT_COORDINATOR, "%s", rl_strerror(group));
    cr_assert_eq(coord_leader_of(b.coord, GROUP), 2);
    cr_assert(strstr(msg, "node 2"), "%s", msg);

    /* Elected here, its first entry not yet committed: FindCoordinator names this node, and
     * the group's requests are told to retry here (Kafka's COORDINATOR_LOAD_IN_PROGRESS), not
     * to look elsewhere (librdkafka gives up an OffsetFetch refused with NOT_AVAILABLE). */
    partition_repl_role(g_p, false, SELF, 3);
    answers(&find, &group, msg, sizeof(msg));
    cr_assert_eq(find, 0, "%s", rl_strerror(find));
    cr_assert_eq(group, RL_E_COORDINATOR_LOADING, "%s", rl_strerror(group));
    cr_assert(strstr(msg, "loading"), "%s", msg);

    partition_repl_role(g_p, true, SELF, 3); /* ready: it loads the (empty) commits and serves */
    answers(&find, &group, msg, sizeof(msg));
    cr_assert_eq(find, 0, "%s", rl_strerror(find));
    cr_assert_eq(group, 0, "%s: %s", rl_strerror(group), msg);

    partition_repl_role(g_p, false, 3, 4); /* deposed: node 3 leads now */
    answers(&find, &group, msg, sizeof(msg));
    cr_assert_eq(find, RL_E_NOT_COORDINATOR, "%s", rl_strerror(find));
    cr_assert_eq(group, RL_E_NOT_COORDINATOR, "%s", rl_strerror(group));
}
