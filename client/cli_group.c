/*
 * cli_group: `ringlog group list` and `ringlog group describe G` (members, assignments,
 * committed offsets and lag per partition). Speaks the group APIs directly over the library's
 * synchronous request path (rlc_meta_call / rlc_conn_call): ListGroups to the brokers, then
 * FindCoordinator, DescribeGroups and OffsetFetch to the group's coordinator, and ListOffsets
 * (latest) for the lag.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"
#include "client/client_internal.h"
#include "common/err.h"

/* One request on the metadata connection; prints the failure and returns its code. */
static int meta_req(struct rlc_meta *m, Ringlog__Request *req, Ringlog__Response__BodyCase want,
                    Ringlog__Response **resp, int timeout_ms)
{
    const uint8_t *data;
    size_t dlen;
    int rc = rlc_meta_call(m, req, timeout_ms, resp, &data, &dlen);
    if (rc == 0 && (*resp)->body_case != want) {
        rc = RL_E_FRAME_MALFORMED;
        snprintf(m->err, sizeof(m->err), "the broker's answer is malformed");
    }
    if (rc)
        cli_error("%s", m->err);
    return rc;
}

static int group_list(struct rlc_meta *m, int timeout_ms)
{
    Ringlog__ListGroupsRequest lg = RINGLOG__LIST_GROUPS_REQUEST__INIT;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_LIST_GROUPS;
    req.list_groups = &lg;
    Ringlog__Response *resp = NULL;
    int rc = meta_req(m, &req, RINGLOG__RESPONSE__BODY_LIST_GROUPS, &resp, timeout_ms);
    if (rc == 0) {
        if (resp->list_groups->n_groups == 0)
            fprintf(stderr, "no consumer groups yet; consumers create one with "
                    "ringlog consume TOPIC --group NAME\n");
        else
            printf("%-40s %s\n", "GROUP", "STATE");
        for (size_t i = 0; i < resp->list_groups->n_groups; i++)
            printf("%-40s %s\n", resp->list_groups->groups[i]->group_id,
                   resp->list_groups->groups[i]->state);
    }
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    return rc;
}

/* The log end offset of a partition (ListOffsets latest), or -1 when it cannot be had. */
static int64_t log_end(struct rlc_meta *m, const char *topic, uint32_t partition, int timeout_ms)
{
    struct rlc_list_offsets q;
    Ringlog__Request *req = rlc_list_offsets_one(&q, topic, (int32_t)partition, RL_OFFSET_LATEST);
    Ringlog__Response *resp = NULL;
    const uint8_t *data;
    size_t dlen;
    int64_t off = -1;
    if (rlc_meta_call(m, req, timeout_ms, &resp, &data, &dlen) == 0) {
        const Ringlog__ListOffsetsPartitionResult *r = rlc_list_offsets_result(resp);
        if (r && r->error_code == 0)
            off = r->offset;
    }
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    return off;
}

/* Who holds (topic, partition) in the description, or "-". */
static const char *owner_of(const Ringlog__GroupDescription *d, const char *topic,
                            uint32_t partition)
{
    for (size_t i = 0; i < d->n_members; i++) {
        const Ringlog__GroupMemberDescription *mb = d->members[i];
        for (size_t j = 0; j < mb->n_assignment; j++) {
            if (strcmp(mb->assignment[j]->topic, topic) != 0)
                continue;
            for (size_t k = 0; k < mb->assignment[j]->n_partitions; k++)
                if (mb->assignment[j]->partitions[k] == partition)
                    return mb->member_id;
        }
    }
    return "-";
}

static void print_description(const Ringlog__GroupDescription *d)
{
    printf("group %s: state %s, generation %d, assignor %s, %zu members\n", d->group_id,
           d->state, d->generation, d->assignor && d->assignor[0] ? d->assignor : "-",
           d->n_members);
    for (size_t i = 0; i < d->n_members; i++) {
        const Ringlog__GroupMemberDescription *mb = d->members[i];
        printf("  member %s (client %s):", mb->member_id, mb->client_id);
        for (size_t j = 0; j < mb->n_assignment; j++) {
            printf(" %s[", mb->assignment[j]->topic);
            for (size_t k = 0; k < mb->assignment[j]->n_partitions; k++)
                printf("%s%u", k ? "," : "", mb->assignment[j]->partitions[k]);
            printf("]");
        }
        if (mb->n_assignment == 0)
            printf(" no partitions");
        printf("\n");
    }
}

/* Does the OffsetFetch answer hold a committed offset for (topic, partition)? */
static bool committed_in(const Ringlog__OffsetFetchResponse *of, const char *topic,
                         uint32_t partition)
{
    for (size_t i = 0; i < of->n_topics; i++) {
        if (strcmp(of->topics[i]->name, topic) != 0)
            continue;
        for (size_t j = 0; j < of->topics[i]->n_partitions; j++) {
            const Ringlog__OffsetFetchPartitionResult *p = of->topics[i]->partitions[j];
            if (p->partition == partition && p->error_code == 0 && p->offset >= 0)
                return true;
        }
    }
    return false;
}

/* Committed offsets (every topic the group committed for, and every assigned partition) with
 * lag against the log end. */
static int print_offsets(struct rlc_meta *m, struct rlc_conn *coord, const char *group,
                         const Ringlog__GroupDescription *d, int timeout_ms)
{
    Ringlog__OffsetFetchRequest of = RINGLOG__OFFSET_FETCH_REQUEST__INIT;
    of.group_id = (char *)group;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_OFFSET_FETCH;
    req.offset_fetch = &of;
    Ringlog__Response *resp = NULL;
    const uint8_t *data;
    size_t dlen;
    req.client_id = (char *)m->conf->client_id;
    int rc = rlc_conn_call(coord, &req, timeout_ms, &resp, &data, &dlen);
    if (rc == 0 && resp->body_case != RINGLOG__RESPONSE__BODY_OFFSET_FETCH)
        rc = RL_E_FRAME_MALFORMED;
    if (rc) {
        cli_error("cannot read the committed offsets of group \"%s\": %s", group,
                  coord->err[0] ? coord->err : rl_strerror(rc));
        goto out;
    }
    printf("%-24s %9s %12s %12s %10s  %s\n", "TOPIC", "PARTITION", "COMMITTED", "LOG-END",
           "LAG", "MEMBER");
    for (size_t i = 0; i < resp->offset_fetch->n_topics; i++) {
        const Ringlog__OffsetFetchTopicResult *t = resp->offset_fetch->topics[i];
        for (size_t j = 0; j < t->n_partitions; j++) {
            const Ringlog__OffsetFetchPartitionResult *p = t->partitions[j];
            if (p->error_code || p->offset < 0)
                continue;
            int64_t end = log_end(m, t->name, p->partition, timeout_ms);
            char lag[24] = "?";
            if (end >= 0)
                snprintf(lag, sizeof(lag), "%lld", (long long)(end - p->offset));
            printf("%-24s %9u %12lld %12lld %10s  %s\n", t->name, p->partition,
                   (long long)p->offset, (long long)end, lag, owner_of(d, t->name, p->partition));
        }
    }
    /* Assigned partitions the group has not committed for yet: their whole log is lag. */
    for (size_t i = 0; i < d->n_members; i++) {
        const Ringlog__GroupMemberDescription *mb = d->members[i];
        for (size_t j = 0; j < mb->n_assignment; j++) {
            const Ringlog__TopicPartitions *tp = mb->assignment[j];
            for (size_t k = 0; k < tp->n_partitions; k++) {
                if (committed_in(resp->offset_fetch, tp->topic, tp->partitions[k]))
                    continue;
                int64_t end = log_end(m, tp->topic, tp->partitions[k], timeout_ms);
                printf("%-24s %9u %12s %12lld %10s  %s\n", tp->topic, tp->partitions[k], "-",
                       (long long)end, "-", mb->member_id);
            }
        }
    }
    if (resp->offset_fetch->n_topics == 0 && d->n_members == 0)
        printf("(nothing committed yet)\n");
out:
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    return rc;
}

static int group_describe(struct rlc_meta *m, const char *group, int timeout_ms)
{
    Ringlog__FindCoordinatorRequest fr = RINGLOG__FIND_COORDINATOR_REQUEST__INIT;
    fr.group_id = (char *)group;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_FIND_COORDINATOR;
    req.find_coordinator = &fr;
    Ringlog__Response *resp = NULL, *dresp = NULL;
    struct rlc_conn coord = {.fd = -1};
    int rc = meta_req(m, &req, RINGLOG__RESPONSE__BODY_FIND_COORDINATOR, &resp, timeout_ms);
    if (rc)
        goto out;
    struct rlc_addr addr = {.port = (uint16_t)resp->find_coordinator->port};
    snprintf(addr.host, sizeof(addr.host), "%s", resp->find_coordinator->host);
    rc = rlc_conn_open(&coord, &addr, m->conf->connect_timeout_ms);
    if (rc) {
        cli_error("cannot reach the coordinator of group \"%s\": %s", group, coord.err);
        goto out;
    }
    char *ids[1] = {(char *)group};
    Ringlog__DescribeGroupsRequest dg = RINGLOG__DESCRIBE_GROUPS_REQUEST__INIT;
    dg.group_ids = ids;
    dg.n_group_ids = 1;
    Ringlog__Request dreq = RINGLOG__REQUEST__INIT;
    dreq.body_case = RINGLOG__REQUEST__BODY_DESCRIBE_GROUPS;
    dreq.describe_groups = &dg;
    dreq.client_id = (char *)m->conf->client_id;
    const uint8_t *data;
    size_t dlen;
    rc = rlc_conn_call(&coord, &dreq, timeout_ms, &dresp, &data, &dlen);
    if (rc == 0 && (dresp->body_case != RINGLOG__RESPONSE__BODY_DESCRIBE_GROUPS ||
                    dresp->describe_groups->n_groups != 1))
        rc = RL_E_FRAME_MALFORMED;
    if (rc == 0)
        rc = dresp->describe_groups->groups[0]->error_code;
    if (rc) {
        const char *msg = rc == RL_E_GROUP_ID_NOT_FOUND ? "no such group; ringlog group list "
                          "shows the groups there are" : coord.err[0] ? coord.err
                          : dresp && dresp->describe_groups && dresp->describe_groups->n_groups
                              ? dresp->describe_groups->groups[0]->error_message
                              : rl_strerror(rc);
        cli_error("group \"%s\": %s", group, msg);
        goto out;
    }
    print_description(dresp->describe_groups->groups[0]);
    rc = print_offsets(m, &coord, group, dresp->describe_groups->groups[0], timeout_ms);
out:
    rlc_conn_close(&coord);
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    if (dresp)
        ringlog__response__free_unpacked(dresp, NULL);
    return rc;
}

int cli_group(struct cli *c)
{
    const char *sub = c->argc > 0 ? c->argv[0] : NULL;
    bool list = sub && !strcmp(sub, "list") && c->argc == 1;
    bool describe = sub && !strcmp(sub, "describe") && c->argc == 2;
    if (!list && !describe) {
        cli_error("usage: ringlog group list | ringlog group describe GROUP");
        return CLI_EXIT_USAGE;
    }
    char v[32];
    rl_conf_get(c->conf, "request.timeout.ms", v, sizeof(v));
    int timeout_ms = atoi(v);
    struct rlc_meta m;
    rlc_meta_init(&m, c->conf);
    int rc = list ? group_list(&m, timeout_ms) : group_describe(&m, c->argv[1], timeout_ms);
    rlc_meta_destroy(&m);
    return rc ? CLI_EXIT_FAIL : 0;
}
