/*
 * cli_cluster: `ringlog cluster status`: the cluster's brokers (alive or fenced), the controller
 * leader and its term, and the controller's commit index as the voters report it. Asks one
 * broker for Metadata over the library's synchronous request path (rlc_meta_call), then, when
 * another broker leads the controller, asks the leader too: only the leader knows how far each
 * voter's copy of the controller log reaches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"
#include "client/client_internal.h"
#include "common/err.h"

static int cluster_metadata(const struct rl_conf *conf, int timeout_ms,
                            Ringlog__Response **resp, char *err, size_t cap)
{
    struct rlc_meta m;
    rlc_meta_init(&m, conf);
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    mr.n_topics = 1;
    char *none = "";
    mr.topics = &none; /* no topic wanted: only the brokers and the controller */
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

static void cluster_print(const Ringlog__MetadataResponse *mr, const Ringlog__MetadataResponse *ld)
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
    printf("%-6s %-10s %-12s %s\n", "VOTER", "REACHABLE", "COMMIT", "LOG ON LEADER");
    for (size_t i = 0; i < mr->n_voters; i++) {
        const Ringlog__ControllerVoter *v = mr->voters[i];
        const Ringlog__ControllerVoter *lv = NULL;
        for (size_t k = 0; ld && k < ld->n_voters; k++)
            if (ld->voters[k]->node_id == v->node_id)
                lv = ld->voters[k];
        char commit[32] = "-", match[32] = "-";
        if (v->node_id == mr->answered_by)
            snprintf(commit, sizeof(commit), "%llu", (unsigned long long)mr->controller_commit);
        else if (ld && v->node_id == ld->answered_by)
            snprintf(commit, sizeof(commit), "%llu", (unsigned long long)ld->controller_commit);
        if (lv)
            snprintf(match, sizeof(match), "%llu", (unsigned long long)lv->match_index);
        printf("%-6d %-10s %-12s %s\n", v->node_id, v->reachable ? "yes" : "no", commit, match);
    }
    printf("%-6s %-22s %s\n", "BROKER", "ADDRESS", "STATE");
    for (size_t i = 0; i < mr->n_brokers; i++) {
        const Ringlog__BrokerInfo *b = mr->brokers[i];
        char addr[96];
        snprintf(addr, sizeof(addr), "%s:%u", b->host, b->port);
        printf("%-6d %-22s %s\n", b->node_id, addr, b->fenced ? "fenced" : "alive");
    }
}

int cli_cluster(struct cli *c)
{
    if (c->argc < 1 || strcmp(c->argv[0], "status")) {
        cli_error("usage: ringlog [--brokers H:P,...] cluster status");
        return CLI_EXIT_USAGE;
    }
    char v[32], err[600];
    rl_conf_get(c->conf, "request.timeout.ms", v, sizeof(v));
    int timeout_ms = atoi(v);
    Ringlog__Response *resp = NULL, *lresp = NULL;
    int rc = cluster_metadata(c->conf, timeout_ms, &resp, err, sizeof(err));
    if (rc) {
        cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }
    const Ringlog__MetadataResponse *mr = resp->metadata, *ld = NULL;
    if (mr->controller_id > 0 && mr->controller_id != mr->answered_by) {
        for (size_t i = 0; i < mr->n_brokers; i++) {
            if (mr->brokers[i]->node_id != mr->controller_id)
                continue;
            char addr[96];
            snprintf(addr, sizeof(addr), "%s:%u", mr->brokers[i]->host, mr->brokers[i]->port);
            struct rl_conf *lc = rl_conf_new();
            if (lc && rl_conf_set(lc, "bootstrap.servers", addr, err, sizeof(err)) == 0 &&
                cluster_metadata(lc, timeout_ms, &lresp, err, sizeof(err)) == 0)
                ld = lresp->metadata;
            rl_conf_destroy(lc);
        }
    } else if (mr->controller_id > 0) {
        ld = mr;
    }
    cluster_print(mr, ld);
    ringlog__response__free_unpacked(resp, NULL);
    if (lresp)
        ringlog__response__free_unpacked(lresp, NULL);
    return 0;
}
