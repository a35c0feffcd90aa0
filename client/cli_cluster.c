/*
 * cli_cluster: `ringlog cluster status | remove-broker N [--cancel] | recommission N`,
 * `ringlog topic reassign [--cancel]` and the replicas part of `ringlog topic describe`.
 *
 * status: the cluster's brokers (alive or fenced, whether placement may pick each or it is
 * decommissioned, whether each leads the controller, how many partition replicas each hosts
 * and leads), the controller leader and its term, and for each
 * voter the controller commit index it knows and the index it has applied. Asks one broker for
 * Metadata of every topic over the library's synchronous request path (rlc_meta_call), then
 * asks each voter for its own view (commit and applied are per node), and the leader's answer
 * gives how far each voter's copy of the log reaches.
 *
 * remove-broker, recommission, reassign and their --cancel: one AlterReplicas request
 * (answered once the controller recorded the moves and marks; the partition leaders move the
 * replicas afterwards). Errors are the broker's sentences.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"
#include "client/client_internal.h"
#include "common/err.h"

/* Metadata from the brokers conf names: all topics (the replica counts) or none. */
static int cluster_metadata(const struct rl_conf *conf, int timeout_ms, bool topics,
                            Ringlog__Response **resp, char *err, size_t cap)
{
    struct rlc_meta m;
    rlc_meta_init(&m, conf);
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    char *none = "";
    if (!topics) {
        mr.n_topics = 1;
        mr.topics = &none; /* no topic wanted: only the brokers and the controller */
    }
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    const uint8_t *data;
    size_t dlen;
    int rc = rlc_meta_call(&m, &req, timeout_ms, resp, &data, &dlen);
    if (rc == 0 && (*resp)->body_case != RINGLOG__RESPONSE__BODY_METADATA) {
        rc = RL_E_FRAME_MALFORMED;
        snprintf(m.err, sizeof(m.err), "the broker's answer is malformed");
    }
    if (rc)
        snprintf(err, cap, "%s", m.err);
    rlc_meta_destroy(&m);
    return rc;
}

/* The view of the broker `id` of mr's list (its own commit and applied index), or NULL. */
static Ringlog__Response *cluster_ask(const Ringlog__MetadataResponse *mr, int32_t id,
                                      int timeout_ms)
{
    for (size_t i = 0; i < mr->n_brokers; i++) {
        if (mr->brokers[i]->node_id != id || mr->brokers[i]->fenced)
            continue;
        char addr[96], err[600];
        snprintf(addr, sizeof(addr), "%s:%u", mr->brokers[i]->host, mr->brokers[i]->port);
        struct rl_conf *lc = rl_conf_new();
        Ringlog__Response *r = NULL;
        if (lc && (rl_conf_set(lc, "bootstrap.servers", addr, err, sizeof(err)) ||
                   cluster_metadata(lc, timeout_ms, false, &r, err, sizeof(err))))
            r = NULL;
        rl_conf_destroy(lc);
        /* Only the node asked for: bootstrap may have answered from another one. */
        if (r && r->metadata->answered_by != id) {
            ringlog__response__free_unpacked(r, NULL);
            r = NULL;
        }
        return r;
    }
    return NULL;
}

/* Partition replicas broker `id` hosts and leads, over every topic of mr. */
static void cluster_count(const Ringlog__MetadataResponse *mr, int32_t id, unsigned *hosted,
                          unsigned *led)
{
    *hosted = *led = 0;
    for (size_t t = 0; t < mr->n_topics; t++) {
        const Ringlog__TopicMetadata *tm = mr->topics[t];
        for (size_t p = 0; p < tm->n_partitions; p++) {
            const Ringlog__PartitionMetadata *pm = tm->partitions[p];
            bool host = pm->n_replicas == 0 && pm->leader == id;
            for (size_t r = 0; r < pm->n_replicas; r++)
                host |= pm->replicas[r] == id;
            *hosted += host;
            *led += pm->leader == id;
        }
    }
}

static bool cluster_is_voter(const Ringlog__MetadataResponse *mr, int32_t id)
{
    for (size_t i = 0; i < mr->n_voters; i++)
        if (mr->voters[i]->node_id == id)
            return true;
    return false;
}

static void cluster_print_voters(const Ringlog__MetadataResponse *mr,
                                 const Ringlog__MetadataResponse *ld,
                                 Ringlog__Response *const *views)
{
    printf("%-6s %-10s %-10s %-10s %s\n", "VOTER", "REACHABLE", "COMMIT", "APPLIED",
           "LOG ON LEADER");
    for (size_t i = 0; i < mr->n_voters; i++) {
        const Ringlog__ControllerVoter *v = mr->voters[i];
        const Ringlog__ControllerVoter *lv = NULL;
        for (size_t k = 0; ld && k < ld->n_voters; k++)
            if (ld->voters[k]->node_id == v->node_id)
                lv = ld->voters[k];
        char commit[32] = "-", applied[32] = "-", match[32] = "-";
        if (views[i]) {
            const Ringlog__MetadataResponse *vv = views[i]->metadata;
            snprintf(commit, sizeof(commit), "%llu", (unsigned long long)vv->controller_commit);
            snprintf(applied, sizeof(applied), "%llu",
                     (unsigned long long)vv->controller_applied);
        }
        if (lv)
            snprintf(match, sizeof(match), "%llu", (unsigned long long)lv->match_index);
        printf("%-6d %-10s %-10s %-10s %s\n", v->node_id, v->reachable ? "yes" : "no", commit,
               applied, match);
    }
}

static void cluster_print(const Ringlog__MetadataResponse *mr, const Ringlog__MetadataResponse *ld,
                          Ringlog__Response *const *views)
{
    if (mr->answered_by == 0 && mr->controller_term == 0) {
        printf("a single broker (no --voters): node %d at %s:%u\n", mr->controller_id,
               mr->n_brokers ? mr->brokers[0]->host : "?",
               mr->n_brokers ? mr->brokers[0]->port : 0);
        return;
    }
    printf("cluster %s\n", mr->cluster_id);
    if (mr->controller_id > 0)
        printf("controller: leader node %d, term %llu\n", mr->controller_id,
               (unsigned long long)mr->controller_term);
    else
        printf("controller: no leader (term %llu): a majority of the voters must be running "
               "and reach each other\n", (unsigned long long)mr->controller_term);
    cluster_print_voters(mr, ld, views);
    /* PLACEMENT last: scripts reading the earlier columns by position keep working. */
    printf("%-6s %-22s %-7s %-11s %-9s %-6s %s\n", "BROKER", "ADDRESS", "STATE", "CONTROLLER",
           "REPLICAS", "LEADS", "PLACEMENT");
    /* By node id, whatever order the brokers registered in (a selection over a few rows). */
    int32_t last = INT32_MIN;
    for (size_t n = 0; n < mr->n_brokers; n++) {
        const Ringlog__BrokerInfo *b = NULL;
        for (size_t i = 0; i < mr->n_brokers; i++)
            if (mr->brokers[i]->node_id > last && (!b || mr->brokers[i]->node_id < b->node_id))
                b = mr->brokers[i];
        if (!b)
            break;
        last = b->node_id;
        char addr[96];
        snprintf(addr, sizeof(addr), "%s:%u", b->host, b->port);
        unsigned hosted, led;
        cluster_count(mr, b->node_id, &hosted, &led);
        const char *role = b->node_id == mr->controller_id ? "leader"
                           : cluster_is_voter(mr, b->node_id) ? "voter" : "-";
        printf("%-6d %-22s %-7s %-11s %-9u %-6u %s\n", b->node_id, addr,
               b->fenced ? "fenced" : "alive", role, hosted, led,
               b->decommissioned ? "decommissioned" : "eligible");
    }
}

static int cli_timeout_ms(const struct rl_conf *conf)
{
    char v[32];
    rl_conf_get(conf, "request.timeout.ms", v, sizeof(v));
    return atoi(v);
}

/* Prints a list of node ids as "1,2,4". */
static void cli_print_ids(const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%s%d", i ? "," : "", ids[i]);
}

/* What the controller recorded besides the moves it lists. */
static void cluster_print_recorded(const Ringlog__AlterReplicasRequest *ar, size_t n_moves)
{
    if (ar->recommission_broker)
        printf("broker %u is recommissioned: new topics and moves may place replicas on it "
               "again\n", ar->recommission_broker);
    else if (ar->remove_broker && ar->cancel)
        printf("the removal of broker %u is cancelled (%zu running move%s back to %s "
               "replicas); it is eligible for placement again\n", ar->remove_broker, n_moves,
               n_moves == 1 ? " goes" : "s go", n_moves == 1 ? "its" : "their");
    else if (ar->remove_broker)
        printf("broker %u is decommissioned: no new replica is placed on it (ringlog cluster "
               "recommission %u undoes it)%s\n", ar->remove_broker, ar->remove_broker,
               n_moves ? "" : "; it holds no replica: nothing to move");
}

/* Sends an AlterReplicas request and prints the moves the controller recorded. */
static int cluster_alter_replicas(struct cli *c, Ringlog__AlterReplicasRequest *ar)
{
    struct rlc_meta m;
    rlc_meta_init(&m, c->conf);
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_ALTER_REPLICAS;
    req.alter_replicas = ar;
    Ringlog__Response *resp = NULL;
    const uint8_t *data;
    size_t dlen;
    int rc = rlc_meta_call(&m, &req, cli_timeout_ms(c->conf), &resp, &data, &dlen);
    if (rc == 0)
        rc = rlc_resp_error(resp, m.err, sizeof(m.err));
    if (rc == 0 && resp->body_case != RINGLOG__RESPONSE__BODY_ALTER_REPLICAS) {
        rc = RL_E_FRAME_MALFORMED;
        snprintf(m.err, sizeof(m.err), "the broker does not know AlterReplicas (an older "
                 "broker?)");
    }
    if (rc)
        cli_error("%s", m.err);
    else
        cluster_print_recorded(ar, resp->alter_replicas->n_moves);
    if (rc == 0 && resp->alter_replicas->n_moves) {
        for (size_t i = 0; i < resp->alter_replicas->n_moves; i++) {
            const Ringlog__PartitionMove *pm = resp->alter_replicas->moves[i];
            printf("%s %s-%u to replicas ", ar->cancel ? "cancelled: moving back" : "moving",
                   pm->topic, pm->partition);
            for (size_t k = 0; k < pm->n_replicas; k++)
                printf("%s%u", k ? "," : "", pm->replicas[k]);
            printf("\n");
        }
        printf("the partition leaders move the replicas now; ringlog topic describe TOPIC "
               "shows the progress\n");
    }
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    rlc_meta_destroy(&m);
    return rc ? CLI_EXIT_FAIL : 0;
}

/* `ringlog topic reassign TOPIC PARTITION --cancel`: the running move goes back to the
 * replicas it started from. */
static int cli_topic_reassign_cancel(struct cli *c)
{
    Ringlog__PartitionMove pm = RINGLOG__PARTITION_MOVE__INIT;
    Ringlog__PartitionMove *pp = &pm;
    pm.topic = c->argv[1];
    pm.partition = (uint32_t)cli_int("PARTITION", c->argv[2], 0, INT32_MAX);
    Ringlog__AlterReplicasRequest ar = RINGLOG__ALTER_REPLICAS_REQUEST__INIT;
    ar.n_moves = 1;
    ar.moves = &pp;
    ar.cancel = true;
    return cluster_alter_replicas(c, &ar);
}

/* `ringlog topic reassign TOPIC PARTITION --replicas 1,2,4 | --cancel` */
int cli_topic_reassign(struct cli *c)
{
    const char *usage = "usage: ringlog topic reassign TOPIC PARTITION --replicas ID,ID,... | "
                        "--cancel";
    const char *list = NULL;
    bool cancel = false;
    for (int i = 3; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--cancel")) {
            cancel = true;
        } else if (!(list = cli_opt(c, &i, "--replicas"))) {
            cli_error("%s (unknown option %s)", usage, c->argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    if (c->argc < 3 || !list == !cancel) {
        cli_error("%s", usage);
        return CLI_EXIT_USAGE;
    }
    if (cancel)
        return cli_topic_reassign_cancel(c);
    uint32_t ids[16];
    size_t n = 0;
    for (const char *p = list; *p && n < 16;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > INT32_MAX || (*end && *end != ',')) {
            cli_error("--replicas: \"%s\" is not a list of broker ids (1,2,4)", list);
            return CLI_EXIT_USAGE;
        }
        ids[n++] = (uint32_t)v;
        p = *end ? end + 1 : end;
    }
    Ringlog__PartitionMove pm = RINGLOG__PARTITION_MOVE__INIT;
    Ringlog__PartitionMove *pp = &pm;
    pm.topic = c->argv[1];
    pm.partition = (uint32_t)cli_int("PARTITION", c->argv[2], 0, INT32_MAX);
    pm.n_replicas = n;
    pm.replicas = ids;
    Ringlog__AlterReplicasRequest ar = RINGLOG__ALTER_REPLICAS_REQUEST__INIT;
    ar.n_moves = 1;
    ar.moves = &pp;
    return cluster_alter_replicas(c, &ar);
}

int cli_topic_replicas(const struct rl_conf *conf, const char *topic)
{
    struct rlc_meta m;
    rlc_meta_init(&m, conf);
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    char *t = (char *)topic;
    mr.n_topics = 1;
    mr.topics = &t;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    Ringlog__Response *resp = NULL;
    const uint8_t *data;
    size_t dlen;
    int rc = rlc_meta_call(&m, &req, cli_timeout_ms(conf), &resp, &data, &dlen);
    if (rc == 0 && (resp->body_case != RINGLOG__RESPONSE__BODY_METADATA ||
                    resp->metadata->n_topics != 1))
        rc = RL_E_FRAME_MALFORMED;
    const Ringlog__TopicMetadata *tm = rc ? NULL : resp->metadata->topics[0];
    if (tm && tm->replication_factor > 1 && !tm->error_code) {
        printf("%-10s %-12s %-12s %s\n", "partition", "replicas", "in-sync", "moving to");
        for (size_t i = 0; i < tm->n_partitions; i++) {
            const Ringlog__PartitionMetadata *pm = tm->partitions[i];
            char a[64], b[64];
            int na = 0, nb = 0;
            for (size_t k = 0; k < pm->n_replicas && na < 50; k++)
                na += snprintf(a + na, sizeof(a) - (size_t)na, "%s%d", k ? "," : "",
                               pm->replicas[k]);
            for (size_t k = 0; k < pm->n_isr && nb < 50; k++)
                nb += snprintf(b + nb, sizeof(b) - (size_t)nb, "%s%d", k ? "," : "",
                               pm->isr[k]);
            printf("%-10u %-12s %-12s ", pm->partition, na ? a : "-", nb ? b : "-");
            if (pm->n_target_replicas)
                cli_print_ids(pm->target_replicas, pm->n_target_replicas);
            else
                printf("-");
            printf("\n");
        }
    }
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    rlc_meta_destroy(&m);
    return rc;
}

int cli_cluster(struct cli *c)
{
    bool cancel = c->argc == 3 && !strcmp(c->argv[2], "--cancel");
    if ((c->argc == 2 || cancel) && !strcmp(c->argv[0], "remove-broker")) {
        Ringlog__AlterReplicasRequest ar = RINGLOG__ALTER_REPLICAS_REQUEST__INIT;
        ar.remove_broker = (uint32_t)cli_int("remove-broker", c->argv[1], 1, INT32_MAX);
        ar.cancel = cancel;
        return cluster_alter_replicas(c, &ar);
    }
    if (c->argc == 2 && !strcmp(c->argv[0], "recommission")) {
        Ringlog__AlterReplicasRequest ar = RINGLOG__ALTER_REPLICAS_REQUEST__INIT;
        ar.recommission_broker = (uint32_t)cli_int("recommission", c->argv[1], 1, INT32_MAX);
        return cluster_alter_replicas(c, &ar);
    }
    if (c->argc < 1 || strcmp(c->argv[0], "status")) {
        cli_error("usage: ringlog [--brokers H:P,...] cluster status | remove-broker N "
                  "[--cancel] | recommission N");
        return CLI_EXIT_USAGE;
    }
    char v[32], err[600];
    rl_conf_get(c->conf, "request.timeout.ms", v, sizeof(v));
    int timeout_ms = atoi(v);
    Ringlog__Response *resp = NULL;
    int rc = cluster_metadata(c->conf, timeout_ms, true, &resp, err, sizeof(err));
    if (rc) {
        cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }
    const Ringlog__MetadataResponse *mr = resp->metadata, *ld = NULL;
    /* Each voter's own view: the commit index it knows and the index it applied. */
    Ringlog__Response *views[16] = {0};
    size_t nv = mr->n_voters < 16 ? mr->n_voters : 16;
    for (size_t i = 0; i < nv; i++) {
        if (mr->voters[i]->node_id == mr->answered_by)
            continue;
        views[i] = cluster_ask(mr, mr->voters[i]->node_id, timeout_ms);
        if (views[i] && mr->voters[i]->node_id == mr->controller_id)
            ld = views[i]->metadata;
    }
    for (size_t i = 0; i < nv; i++)
        if (mr->voters[i]->node_id == mr->answered_by)
            views[i] = resp; /* printed from, freed once below */
    if (mr->controller_id > 0 && mr->controller_id == mr->answered_by)
        ld = mr;
    cluster_print(mr, ld, views);
    for (size_t i = 0; i < nv; i++)
        if (views[i] && views[i] != resp)
            ringlog__response__free_unpacked(views[i], NULL);
    ringlog__response__free_unpacked(resp, NULL);
    return 0;
}
