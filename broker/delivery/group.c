/*
 * group: consumer-group membership and assignment (see group.h for the state machine).
 */
#include "broker/delivery/group.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

enum { ASSIGNOR_RANGE = 1u << 0, ASSIGNOR_ROUNDROBIN = 1u << 1, ASSIGNOR_COOPERATIVE = 1u << 2 };
#define ASSIGNOR_KINDS 3

/* A client-side member's protocol: owned copies. */
struct member_protocol {
    char *name;
    uint8_t *metadata;
    uint32_t metadata_len;
};

struct group_member {
    char id[GROUP_MEMBER_ID_MAX + 1];
    char client_id[GROUP_CLIENT_ID_MAX + 1];
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms;
    int64_t last_seen_ms;
    char **topics; /* owned copies */
    uint32_t topic_count;
    uint8_t prefs[ASSIGNOR_KINDS]; /* assignor bits in order of preference */
    uint32_t pref_count;
    bool join_pending;
    void *join_token;
    struct group_tp *assignment; /* owned; topic pointers into the group's topic table */
    uint32_t assignment_count;
    /* Cooperative groups: what the member was last handed by SyncGroup (owned copies), i.e.
     * what it may still hold. A member that never synced a generation that took partitions
     * from it has not revoked them, so they stay its until it syncs one. */
    struct group_tp *synced;
    uint32_t synced_count;
    /* client-side groups */
    struct member_protocol *protocols; /* owned, in order of preference */
    uint32_t protocol_count;
    uint8_t *assigned;           /* owned: the leader's bytes for this member */
    uint32_t assigned_len;
    bool sync_pending;
    void *sync_token;
};

struct group {
    char id[GROUP_ID_MAX + 1];
    struct group_limits limits;
    uint64_t nonce;
    uint64_t next_member_seq;
    group_partitions_fn partitions;
    void *partitions_arg;
    group_join_done_fn join_done;
    enum group_state state;
    int32_t generation;
    int64_t rebalance_deadline_ms;
    int64_t complete_not_before_ms; /* the initial delay of a client-side group */
    struct group_member *members; /* members[0..member_count), grown on join */
    uint32_t member_count;
    uint32_t member_cap;
    char leader_id[GROUP_MEMBER_ID_MAX + 1];
    const char *assignor;
    char **topic_table; /* sorted union of subscriptions at the last rebalance */
    uint32_t topic_table_count;
    /* client-side assignment (fixed by the first member of an empty group) */
    bool client_side;
    bool awaiting_sync;          /* completed; the leader's SyncGroup has not come */
    char protocol_type[GROUP_PROTOCOL_NAME_MAX + 1];
    char protocol[GROUP_PROTOCOL_NAME_MAX + 1]; /* the chosen one */
    group_sync_done_fn sync_done;
};

const char *group_state_name(enum group_state s)
{
    switch (s) {
    case GROUP_EMPTY: return "Empty";
    case GROUP_PREPARING_REBALANCE: return "PreparingRebalance";
    case GROUP_STABLE: return "Stable";
    }
    return "Unknown";
}

struct group *group_create(const char *group_id, const struct group_limits *limits,
                           uint64_t id_nonce, group_partitions_fn partitions, void *arg,
                           group_join_done_fn join_done)
{
    size_t len = group_id ? strlen(group_id) : 0;
    if (len == 0 || len > GROUP_ID_MAX || !limits || limits->max_members == 0 || !partitions ||
        !join_done)
        return NULL;
    struct group *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    memcpy(g->id, group_id, len + 1);
    g->limits = *limits;
    g->nonce = id_nonce;
    g->partitions = partitions;
    g->partitions_arg = arg;
    g->join_done = join_done;
    g->state = GROUP_EMPTY;
    return g;
}

static void member_free_topics(struct group_member *m)
{
    for (uint32_t i = 0; i < m->topic_count; i++)
        free(m->topics[i]);
    free(m->topics);
    m->topics = NULL;
    m->topic_count = 0;
}

static void member_free_protocols(struct group_member *m)
{
    for (uint32_t i = 0; i < m->protocol_count; i++) {
        free(m->protocols[i].name);
        free(m->protocols[i].metadata);
    }
    free(m->protocols);
    m->protocols = NULL;
    m->protocol_count = 0;
}

static void member_free_synced(struct group_member *m)
{
    for (uint32_t i = 0; i < m->synced_count; i++)
        free((char *)m->synced[i].topic);
    free(m->synced);
    m->synced = NULL;
    m->synced_count = 0;
}

static void member_free(struct group_member *m)
{
    member_free_synced(m);
    member_free_topics(m);
    member_free_protocols(m);
    free(m->assignment);
    m->assignment = NULL;
    m->assignment_count = 0;
    free(m->assigned);
    m->assigned = NULL;
    m->assigned_len = 0;
}

/* Answers a member's parked SyncGroup (client-side groups). */
static void group_answer_sync(struct group *g, struct group_member *m, int error)
{
    if (!m->sync_pending)
        return;
    m->sync_pending = false;
    if (g->sync_done)
        g->sync_done(m->sync_token, error, error ? NULL : m->assigned,
                     error ? 0 : m->assigned_len);
}

static void group_free_topic_table(struct group *g)
{
    for (uint32_t i = 0; i < g->topic_table_count; i++)
        free(g->topic_table[i]);
    free(g->topic_table);
    g->topic_table = NULL;
    g->topic_table_count = 0;
}

static void group_answer_join(struct group *g, struct group_member *m, int error)
{
    if (!m->join_pending)
        return;
    m->join_pending = false;
    struct group_join_result res = {
        .error = error,
        .generation = g->generation,
        .member_id = m->id,
        .leader_id = g->leader_id,
        .assignor = g->assignor ? g->assignor : "",
        .member_count = g->member_count,
        .group = g->client_side && !error ? g : NULL,
    };
    g->join_done(m->join_token, &res);
}

void group_destroy(struct group *g)
{
    if (!g)
        return;
    for (uint32_t i = 0; i < g->member_count; i++) {
        group_answer_join(g, &g->members[i], RL_E_COORDINATOR_NOT_AVAILABLE);
        group_answer_sync(g, &g->members[i], RL_E_COORDINATOR_NOT_AVAILABLE);
        member_free(&g->members[i]);
    }
    free(g->members);
    group_free_topic_table(g);
    free(g);
}

static struct group_member *group_find(const struct group *g, const char *member_id)
{
    if (!member_id || !member_id[0])
        return NULL;
    for (uint32_t i = 0; i < g->member_count; i++)
        if (!strcmp(g->members[i].id, member_id))
            return &g->members[i];
    return NULL;
}

static void group_remove_member(struct group *g, struct group_member *m)
{
    group_answer_sync(g, m, RL_E_UNKNOWN_MEMBER_ID);
    member_free(m);
    uint32_t idx = (uint32_t)(m - g->members);
    memmove(m, m + 1, sizeof(*m) * (g->member_count - idx - 1));
    g->member_count--;
}

/* --- assignors -------------------------------------------------------------------------------- */

void group_assign_range(uint32_t topic_count, const uint32_t *partitions, uint32_t member_count,
                        const bool *subscribed, int32_t *member_of)
{
    uint32_t k = 0;
    for (uint32_t t = 0; t < topic_count; t++) {
        uint32_t subs = 0;
        for (uint32_t m = 0; m < member_count; m++)
            subs += subscribed[m * topic_count + t];
        uint32_t n = partitions[t];
        if (subs == 0) {
            for (uint32_t p = 0; p < n; p++)
                member_of[k++] = -1;
            continue;
        }
        /* Each subscriber gets n / subs contiguous partitions; the first n % subs get one more. */
        uint32_t share = n / subs, extra = n % subs, p = 0, rank = 0;
        for (uint32_t m = 0; m < member_count && p < n; m++) {
            if (!subscribed[m * topic_count + t])
                continue;
            uint32_t take = share + (rank < extra ? 1 : 0);
            for (uint32_t i = 0; i < take; i++, p++)
                member_of[k++] = (int32_t)m;
            rank++;
        }
    }
}

void group_assign_roundrobin(uint32_t topic_count, const uint32_t *partitions,
                             uint32_t member_count, const bool *subscribed, int32_t *member_of)
{
    uint32_t k = 0, cursor = 0;
    for (uint32_t t = 0; t < topic_count; t++) {
        for (uint32_t p = 0; p < partitions[t]; p++) {
            member_of[k] = -1;
            for (uint32_t step = 0; step < member_count; step++) {
                uint32_t m = (cursor + step) % member_count;
                if (subscribed[m * topic_count + t]) {
                    member_of[k] = (int32_t)m;
                    cursor = m + 1;
                    break;
                }
            }
            k++;
        }
    }
}

void group_assign_cooperative(uint32_t topic_count, const uint32_t *partitions,
                              uint32_t member_count, const bool *subscribed,
                              const int32_t *prev_owner, int32_t *member_of)
{
    uint32_t total = 0;
    for (uint32_t t = 0; t < topic_count; t++)
        total += partitions[t];
    uint32_t *load = calloc(member_count ? member_count : 1, sizeof(*load));
    if (!load) {
        group_assign_roundrobin(topic_count, partitions, member_count, subscribed, member_of);
        return;
    }
    uint32_t floor_share = member_count ? total / member_count : 0;
    uint32_t extra = member_count ? total % member_count : 0; /* members that may hold one more */
    /* Sticky: a previous owner still subscribed keeps up to its fair share. */
    for (int pass = 0; pass < 2; pass++) {
        uint32_t k = 0;
        for (uint32_t t = 0; t < topic_count; t++)
            for (uint32_t p = 0; p < partitions[t]; p++, k++) {
                int32_t o = prev_owner[k];
                if (pass == 0)
                    member_of[k] = -1;
                if (o < 0 || (uint32_t)o >= member_count || member_of[k] >= 0 ||
                    !subscribed[(uint32_t)o * topic_count + t])
                    continue;
                bool keep = pass == 0 ? load[o] < floor_share
                                      : load[o] == floor_share && extra > 0;
                if (!keep)
                    continue;
                extra -= pass == 1;
                member_of[k] = o;
                load[o]++;
            }
    }
    /* The rest goes to the least loaded subscriber (lowest index on ties). */
    uint32_t k = 0;
    for (uint32_t t = 0; t < topic_count; t++)
        for (uint32_t p = 0; p < partitions[t]; p++, k++) {
            if (member_of[k] >= 0)
                continue;
            int32_t best = -1;
            for (uint32_t m = 0; m < member_count; m++)
                if (subscribed[m * topic_count + t] && (best < 0 || load[m] < load[best]))
                    best = (int32_t)m;
            member_of[k] = best;
            if (best >= 0)
                load[best]++;
        }
    /* Incremental: a partition moving away from a member still in the group goes to nobody in
     * this generation. Its owner sees it missing, revokes it and rejoins; the next rebalance
     * finds it unowned and hands it over, so no two members ever hold it at once. */
    k = 0;
    for (uint32_t t = 0; t < topic_count; t++)
        for (uint32_t p = 0; p < partitions[t]; p++, k++)
            if (prev_owner[k] >= 0 && (uint32_t)prev_owner[k] < member_count &&
                member_of[k] != prev_owner[k])
                member_of[k] = -1;
    free(load);
}

/* --- rebalance completion --------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_member(const void *a, const void *b)
{
    return strcmp(((const struct group_member *)a)->id, ((const struct group_member *)b)->id);
}

/* Rebuilds the sorted union of every member's subscriptions. */
static int group_build_topic_table(struct group *g)
{
    group_free_topic_table(g);
    uint32_t total = 0;
    for (uint32_t i = 0; i < g->member_count; i++)
        total += g->members[i].topic_count;
    if (total == 0)
        return 0;
    char **all = malloc(sizeof(*all) * total);
    if (!all)
        return -ENOMEM;
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->member_count; i++)
        for (uint32_t t = 0; t < g->members[i].topic_count; t++)
            all[n++] = g->members[i].topics[t];
    qsort(all, n, sizeof(*all), cmp_str);
    uint32_t uniq = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (uniq > 0 && !strcmp(all[uniq - 1], all[i]))
            continue;
        all[uniq++] = all[i];
    }
    for (uint32_t i = 0; i < uniq; i++) {
        all[i] = strdup(all[i]);
        if (!all[i]) {
            g->topic_table = all;
            g->topic_table_count = i;
            return -ENOMEM;
        }
    }
    g->topic_table = all;
    g->topic_table_count = uniq;
    return 0;
}

static const char *group_choose_assignor(const struct group *g)
{
    unsigned common = ASSIGNOR_RANGE | ASSIGNOR_ROUNDROBIN | ASSIGNOR_COOPERATIVE;
    for (uint32_t i = 0; i < g->member_count; i++) {
        unsigned mask = 0;
        for (uint32_t p = 0; p < g->members[i].pref_count; p++)
            mask |= g->members[i].prefs[p];
        common &= mask;
    }
    const struct group_member *first = &g->members[0];
    for (uint32_t p = 0; p < first->pref_count; p++)
        if (first->prefs[p] & common)
            return first->prefs[p] == ASSIGNOR_RANGE        ? GROUP_ASSIGNOR_RANGE
                   : first->prefs[p] == ASSIGNOR_ROUNDROBIN ? GROUP_ASSIGNOR_ROUNDROBIN
                                                            : GROUP_ASSIGNOR_COOPERATIVE;
    return GROUP_ASSIGNOR_RANGE; /* unreachable: joins keep the common set non-empty */
}

static bool member_supports(const struct group_member *m, const char *name, uint32_t *rank)
{
    for (uint32_t p = 0; p < m->protocol_count; p++) {
        if (!strcmp(m->protocols[p].name, name)) {
            if (rank)
                *rank = p;
            return true;
        }
    }
    return false;
}

/* Kafka's choice: among the protocols every member supports, each member votes for the one it
 * prefers most; the most votes win, ties going to the first member's order. */
static void group_choose_protocol(struct group *g)
{
    const struct group_member *first = &g->members[0];
    uint32_t best_votes = 0;
    const char *best = NULL;
    for (uint32_t c = 0; c < first->protocol_count; c++) {
        const char *cand = first->protocols[c].name;
        bool common = true;
        for (uint32_t i = 1; i < g->member_count && common; i++)
            common = member_supports(&g->members[i], cand, NULL);
        if (!common)
            continue;
        uint32_t votes = 0;
        for (uint32_t i = 0; i < g->member_count; i++) {
            const struct group_member *m = &g->members[i];
            const char *fav = NULL;
            for (uint32_t p = 0; p < m->protocol_count && !fav; p++) {
                bool all = true;
                for (uint32_t j = 0; j < g->member_count && all; j++)
                    all = member_supports(&g->members[j], m->protocols[p].name, NULL);
                if (all)
                    fav = m->protocols[p].name;
            }
            votes += fav && !strcmp(fav, cand);
        }
        if (!best || votes > best_votes) {
            best = cand;
            best_votes = votes;
        }
    }
    /* Joins keep a common protocol, so best is set; the fallback only guards the invariant. */
    snprintf(g->protocol, sizeof(g->protocol), "%s", best ? best : first->protocols[0].name);
}

/* Hands each member its partitions per member_of; returns 0 or -ENOMEM. */
static int group_store_assignment(struct group *g, const uint32_t *partitions,
                                  const int32_t *member_of)
{
    uint32_t tcount = g->topic_table_count;
    for (uint32_t m = 0; m < g->member_count; m++) {
        struct group_member *mem = &g->members[m];
        free(mem->assignment);
        mem->assignment = NULL;
        mem->assignment_count = 0;
        uint32_t n = 0, k = 0;
        for (uint32_t t = 0; t < tcount; t++)
            for (uint32_t p = 0; p < partitions[t]; p++, k++)
                n += member_of[k] == (int32_t)m;
        if (n == 0)
            continue;
        mem->assignment = malloc(sizeof(*mem->assignment) * n);
        if (!mem->assignment)
            return -ENOMEM;
        k = 0;
        for (uint32_t t = 0; t < tcount; t++)
            for (uint32_t p = 0; p < partitions[t]; p++, k++)
                if (member_of[k] == (int32_t)m)
                    mem->assignment[mem->assignment_count++] =
                        (struct group_tp){.topic = g->topic_table[t], .partition = p};
    }
    return 0;
}

/* Cooperative: who may hold each topic-partition k of the new table (-1: nobody in the group):
 * what each member was last handed by SyncGroup. */
static void group_prev_owners(const struct group *g, const uint32_t *partitions,
                              int32_t *prev_owner, uint32_t total)
{
    for (uint32_t k = 0; k < total; k++)
        prev_owner[k] = -1;
    uint32_t tcount = g->topic_table_count;
    for (uint32_t m = 0; m < g->member_count; m++) {
        const struct group_member *mem = &g->members[m];
        for (uint32_t i = 0; i < mem->synced_count; i++) {
            const char *key = mem->synced[i].topic;
            char **hit = bsearch(&key, g->topic_table, tcount, sizeof(char *), cmp_str);
            if (!hit)
                continue;
            uint32_t t = (uint32_t)(hit - g->topic_table), k = 0;
            for (uint32_t u = 0; u < t; u++)
                k += partitions[u];
            if (mem->synced[i].partition < partitions[t] &&
                prev_owner[k + mem->synced[i].partition] < 0)
                prev_owner[k + mem->synced[i].partition] = (int32_t)m;
        }
    }
}

static int group_assign(struct group *g)
{
    /* The old table stays until the new assignment replaces the members' pointers into it. */
    char **old_table = g->topic_table;
    uint32_t old_count = g->topic_table_count;
    g->topic_table = NULL;
    g->topic_table_count = 0;
    int rc = group_build_topic_table(g);
    uint32_t tcount = g->topic_table_count, total = 0;
    uint32_t *partitions = calloc(tcount ? tcount : 1, sizeof(*partitions));
    bool *subscribed = calloc((size_t)g->member_count * (tcount ? tcount : 1), sizeof(bool));
    int32_t *member_of = NULL, *prev_owner = NULL;
    if (rc < 0)
        goto out;
    rc = -ENOMEM;
    if (!partitions || !subscribed)
        goto out;
    for (uint32_t t = 0; t < tcount; t++) {
        int n = g->partitions(g->partitions_arg, g->topic_table[t]);
        partitions[t] = n > 0 ? (uint32_t)n : 0;
        total += partitions[t];
    }
    for (uint32_t m = 0; m < g->member_count; m++)
        for (uint32_t i = 0; i < g->members[m].topic_count; i++) {
            char *key = g->members[m].topics[i];
            char **hit = bsearch(&key, g->topic_table, tcount, sizeof(char *), cmp_str);
            subscribed[m * tcount + (uint32_t)(hit - g->topic_table)] = true;
        }
    member_of = malloc(sizeof(*member_of) * (total ? total : 1));
    prev_owner = malloc(sizeof(*prev_owner) * (total ? total : 1));
    if (!member_of || !prev_owner)
        goto out;
    if (!strcmp(g->assignor, GROUP_ASSIGNOR_COOPERATIVE)) {
        group_prev_owners(g, partitions, prev_owner, total);
        group_assign_cooperative(tcount, partitions, g->member_count, subscribed, prev_owner,
                                 member_of);
    } else if (!strcmp(g->assignor, GROUP_ASSIGNOR_ROUNDROBIN))
        group_assign_roundrobin(tcount, partitions, g->member_count, subscribed, member_of);
    else
        group_assign_range(tcount, partitions, g->member_count, subscribed, member_of);
    rc = group_store_assignment(g, partitions, member_of);
out:
    if (rc < 0)
        for (uint32_t m = 0; m < g->member_count; m++) { /* no pointer into the old table */
            free(g->members[m].assignment);
            g->members[m].assignment = NULL;
            g->members[m].assignment_count = 0;
        }
    for (uint32_t i = 0; i < old_count; i++)
        free(old_table[i]);
    free(old_table);
    free(partitions);
    free(subscribed);
    free(member_of);
    free(prev_owner);
    return rc;
}

static void group_go_empty(struct group *g)
{
    g->state = GROUP_EMPTY;
    g->generation++;
    g->leader_id[0] = '\0';
    g->assignor = NULL;
    g->client_side = false; /* the next first member decides again */
    g->awaiting_sync = false;
    g->protocol[0] = '\0';
    g->protocol_type[0] = '\0';
    group_free_topic_table(g);
}

/* Completes the rebalance: drops members that did not rejoin, bumps the generation, assigns
 * partitions and answers every pending join. */
static void group_complete_rebalance(struct group *g, int64_t now_ms)
{
    for (uint32_t i = g->member_count; i-- > 0;)
        if (!g->members[i].join_pending)
            group_remove_member(g, &g->members[i]);
    if (g->member_count == 0) {
        group_go_empty(g);
        return;
    }
    qsort(g->members, g->member_count, sizeof(*g->members), cmp_member);
    g->generation++;
    if (!group_find(g, g->leader_id))
        snprintf(g->leader_id, sizeof(g->leader_id), "%s", g->members[0].id);
    int rc = 0;
    if (g->client_side) {
        group_choose_protocol(g);
        g->assignor = g->protocol;
        g->awaiting_sync = true;
        for (uint32_t i = 0; i < g->member_count; i++) {
            free(g->members[i].assigned);
            g->members[i].assigned = NULL;
            g->members[i].assigned_len = 0;
        }
    } else {
        g->assignor = group_choose_assignor(g);
        rc = group_assign(g);
    }
    if (rc < 0)
        RL_ERROR("group %s: assignment failed: %s", g->id, rl_strerror(rc));
    g->state = GROUP_STABLE;
    for (uint32_t i = 0; i < g->member_count; i++) {
        g->members[i].last_seen_ms = now_ms;
        group_answer_join(g, &g->members[i], rc < 0 ? RL_E_COORDINATOR_NOT_AVAILABLE : 0);
    }
}

static void group_maybe_complete(struct group *g, int64_t now_ms)
{
    if (g->state != GROUP_PREPARING_REBALANCE)
        return;
    bool all = now_ms >= g->complete_not_before_ms;
    for (uint32_t i = 0; i < g->member_count && all; i++)
        all = g->members[i].join_pending;
    if (all || now_ms >= g->rebalance_deadline_ms)
        group_complete_rebalance(g, now_ms);
}

static void group_start_rebalance(struct group *g, int64_t now_ms)
{
    if (g->member_count == 0) {
        if (g->state != GROUP_EMPTY)
            group_go_empty(g);
        return;
    }
    if (g->state == GROUP_PREPARING_REBALANCE)
        return;
    g->complete_not_before_ms = 0;
    if (g->state == GROUP_EMPTY && g->client_side && g->limits.initial_rebalance_delay_ms > 0)
        g->complete_not_before_ms = now_ms + g->limits.initial_rebalance_delay_ms;
    g->awaiting_sync = false;
    for (uint32_t i = 0; i < g->member_count; i++)
        group_answer_sync(g, &g->members[i], RL_E_REBALANCE_IN_PROGRESS);
    int32_t longest_ms = 0;
    for (uint32_t i = 0; i < g->member_count; i++)
        if (g->members[i].rebalance_timeout_ms > longest_ms)
            longest_ms = g->members[i].rebalance_timeout_ms;
    g->state = GROUP_PREPARING_REBALANCE;
    g->rebalance_deadline_ms = now_ms + longest_ms;
    if (g->rebalance_deadline_ms < g->complete_not_before_ms)
        g->rebalance_deadline_ms = g->complete_not_before_ms;
}

/* --- requests --------------------------------------------------------------------------------- */

/* Validates a join's subscription and assignors; fills prefs. */
static int group_parse_spec(const struct group *g, const struct group_member_spec *spec,
                            uint8_t prefs[ASSIGNOR_KINDS], uint32_t *pref_count)
{
    if (spec->session_timeout_ms < g->limits.min_session_timeout_ms ||
        spec->session_timeout_ms > g->limits.max_session_timeout_ms)
        return RL_E_INVALID_SESSION_TIMEOUT;
    if (spec->protocols) {
        *pref_count = 0;
        if (spec->rebalance_timeout_ms < 0 || !spec->protocol_type ||
            strlen(spec->protocol_type) > GROUP_PROTOCOL_NAME_MAX)
            return RL_E_INVALID_ARGUMENT;
        if (spec->protocol_count == 0 || spec->protocol_count > GROUP_PROTOCOLS_MAX)
            return RL_E_INCONSISTENT_PROTOCOL;
        for (uint32_t i = 0; i < spec->protocol_count; i++) {
            const struct group_protocol *p = &spec->protocols[i];
            if (!p->name || !p->name[0] || strlen(p->name) > GROUP_PROTOCOL_NAME_MAX ||
                p->metadata_len > GROUP_PROTOCOL_METADATA_MAX ||
                (p->metadata_len && !p->metadata))
                return RL_E_INVALID_ARGUMENT;
        }
        return 0;
    }
    if (spec->rebalance_timeout_ms < 0 || spec->topic_count > GROUP_TOPICS_PER_MEMBER_MAX ||
        (spec->topic_count && !spec->topics))
        return RL_E_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < spec->topic_count; i++)
        if (!spec->topics[i] || !spec->topics[i][0])
            return RL_E_INVALID_ARGUMENT;
    *pref_count = 0;
    unsigned seen = 0;
    for (uint32_t i = 0; i < spec->assignor_count && spec->assignors; i++) {
        const char *a = spec->assignors[i];
        unsigned bit = !a ? 0
                       : !strcmp(a, GROUP_ASSIGNOR_RANGE)      ? ASSIGNOR_RANGE
                       : !strcmp(a, GROUP_ASSIGNOR_ROUNDROBIN) ? ASSIGNOR_ROUNDROBIN
                       : !strcmp(a, GROUP_ASSIGNOR_COOPERATIVE) ? ASSIGNOR_COOPERATIVE
                                                                : 0;
        if (bit && !(seen & bit)) {
            seen |= bit;
            prefs[(*pref_count)++] = (uint8_t)bit;
        }
    }
    return *pref_count ? 0 : RL_E_INCONSISTENT_PROTOCOL;
}

/* A client-side member must share the protocol type and one protocol with every other member
 * (and a server-side group takes no client-side member, nor the other way round). */
static int group_check_client_protocol(const struct group *g, const struct group_member *self,
                                       const struct group_member_spec *spec)
{
    bool others = g->member_count > (self ? 1u : 0u);
    if (!others)
        return 0;
    if (!g->client_side || !spec->protocols || strcmp(g->protocol_type, spec->protocol_type))
        return RL_E_INCONSISTENT_PROTOCOL;
    for (uint32_t p = 0; p < spec->protocol_count; p++) {
        bool all = true;
        for (uint32_t i = 0; i < g->member_count && all; i++)
            if (&g->members[i] != self)
                all = member_supports(&g->members[i], spec->protocols[p].name, NULL);
        if (all)
            return 0;
    }
    return RL_E_INCONSISTENT_PROTOCOL;
}

/* A joining member must share an assignor with every other member. */
static int group_check_protocol(const struct group *g, const struct group_member *self,
                                const uint8_t *prefs, uint32_t pref_count)
{
    bool others = g->member_count > (self ? 1u : 0u);
    if (others && g->client_side)
        return RL_E_INCONSISTENT_PROTOCOL;
    unsigned mask = 0;
    for (uint32_t p = 0; p < pref_count; p++)
        mask |= prefs[p];
    for (uint32_t i = 0; i < g->member_count; i++) {
        if (&g->members[i] == self)
            continue;
        unsigned other = 0;
        for (uint32_t p = 0; p < g->members[i].pref_count; p++)
            other |= g->members[i].prefs[p];
        mask &= other;
    }
    return mask ? 0 : RL_E_INCONSISTENT_PROTOCOL;
}

static struct group_member *group_add_member(struct group *g, const char *client_id)
{
    if (g->member_count >= g->limits.max_members)
        return NULL;
    if (g->member_count == g->member_cap) {
        uint32_t cap = g->member_cap ? g->member_cap * 2 : 4;
        if (cap > g->limits.max_members)
            cap = g->limits.max_members;
        struct group_member *grown = realloc(g->members, sizeof(*grown) * cap);
        if (!grown)
            return NULL;
        g->members = grown;
        g->member_cap = cap;
    }
    struct group_member *m = &g->members[g->member_count++];
    memset(m, 0, sizeof(*m));
    snprintf(m->client_id, sizeof(m->client_id), "%s", client_id ? client_id : "");
    /* Ids are unique within this coordinator's life (seq) and across restarts (nonce). */
    snprintf(m->id, sizeof(m->id), "%.80s-%016llx-%llu", m->client_id[0] ? m->client_id : "member",
             (unsigned long long)g->nonce, (unsigned long long)++g->next_member_seq);
    return m;
}

static int member_set_topics(struct group_member *m, const struct group_member_spec *spec)
{
    member_free_topics(m);
    if (spec->topic_count == 0)
        return 0;
    m->topics = calloc(spec->topic_count, sizeof(char *));
    if (!m->topics)
        return -ENOMEM;
    for (uint32_t i = 0; i < spec->topic_count; i++) {
        m->topics[i] = strdup(spec->topics[i]);
        if (!m->topics[i])
            return -ENOMEM;
        m->topic_count = i + 1;
    }
    return 0;
}

static int member_set_protocols(struct group_member *m, const struct group_member_spec *spec)
{
    member_free_protocols(m);
    if (!spec->protocols)
        return 0;
    m->protocols = calloc(spec->protocol_count, sizeof(*m->protocols));
    if (!m->protocols)
        return -ENOMEM;
    for (uint32_t i = 0; i < spec->protocol_count; i++) {
        const struct group_protocol *p = &spec->protocols[i];
        struct member_protocol *mp = &m->protocols[i];
        m->protocol_count = i + 1;
        mp->name = strdup(p->name);
        mp->metadata = malloc(p->metadata_len ? p->metadata_len : 1);
        if (!mp->name || !mp->metadata)
            return -ENOMEM;
        if (p->metadata_len)
            memcpy(mp->metadata, p->metadata, p->metadata_len);
        mp->metadata_len = p->metadata_len;
    }
    return 0;
}

int group_join(struct group *g, const struct group_member_spec *spec, int64_t now_ms, void *token)
{
    uint8_t prefs[ASSIGNOR_KINDS];
    uint32_t pref_count;
    int rc = group_parse_spec(g, spec, prefs, &pref_count);
    if (rc < 0)
        return rc;
    bool is_new = !spec->member_id || !spec->member_id[0];
    struct group_member *m = is_new ? NULL : group_find(g, spec->member_id);
    if (!is_new && !m)
        return RL_E_UNKNOWN_MEMBER_ID;
    rc = spec->protocols ? group_check_client_protocol(g, m, spec)
                         : group_check_protocol(g, m, prefs, pref_count);
    if (rc < 0)
        return rc;
    if (is_new && !(m = group_add_member(g, spec->client_id)))
        return g->member_count >= g->limits.max_members ? RL_E_LIMIT : -ENOMEM;
    if (g->member_count == 1) {
        /* The only member decides how the group assigns. */
        g->client_side = spec->protocols != NULL;
        snprintf(g->protocol_type, sizeof(g->protocol_type), "%s",
                 spec->protocols ? spec->protocol_type : "");
    }
    rc = spec->protocols ? member_set_protocols(m, spec) : member_set_topics(m, spec);
    if (rc < 0) {
        if (is_new)
            group_remove_member(g, m);
        return rc;
    }
    memcpy(m->prefs, prefs, sizeof(prefs));
    m->pref_count = pref_count;
    m->session_timeout_ms = spec->session_timeout_ms;
    m->rebalance_timeout_ms = spec->rebalance_timeout_ms;
    m->last_seen_ms = now_ms;
    group_answer_join(g, m, RL_E_REBALANCE_IN_PROGRESS); /* an older pending join, if any */
    m->join_pending = true;
    m->join_token = token;
    group_start_rebalance(g, now_ms);
    group_maybe_complete(g, now_ms);
    return 0;
}

/* Shared checks of sync and heartbeat. */
static int group_check_member(struct group *g, const char *member_id, int32_t generation,
                              int64_t now_ms)
{
    struct group_member *m = group_find(g, member_id);
    if (!m)
        return RL_E_UNKNOWN_MEMBER_ID;
    m->last_seen_ms = now_ms;
    if (g->state == GROUP_PREPARING_REBALANCE)
        return RL_E_REBALANCE_IN_PROGRESS;
    if (generation != g->generation)
        return RL_E_ILLEGAL_GENERATION;
    return 0;
}

int group_sync(struct group *g, const char *member_id, int32_t generation, int64_t now_ms,
               const struct group_tp **assignment, uint32_t *count)
{
    int rc = group_check_member(g, member_id, generation, now_ms);
    if (rc < 0)
        return rc;
    struct group_member *m = group_find(g, member_id);
    if (g->assignor && !strcmp(g->assignor, GROUP_ASSIGNOR_COOPERATIVE)) {
        /* Remember what the member was told: the next cooperative assignment counts these as
         * its own until it syncs again (allocates; cooperative groups only). */
        struct group_tp *copy = calloc(m->assignment_count ? m->assignment_count : 1,
                                       sizeof(*copy));
        if (!copy)
            return -ENOMEM;
        uint32_t n = 0;
        for (; n < m->assignment_count; n++) {
            copy[n].partition = m->assignment[n].partition;
            if (!(copy[n].topic = strdup(m->assignment[n].topic)))
                break;
        }
        if (n < m->assignment_count) {
            for (uint32_t i = 0; i < n; i++)
                free((char *)copy[i].topic);
            free(copy);
            return -ENOMEM;
        }
        member_free_synced(m);
        m->synced = copy;
        m->synced_count = n;
    }
    *assignment = m->assignment;
    *count = m->assignment_count;
    return 0;
}

void group_set_sync_done(struct group *g, group_sync_done_fn sync_done)
{
    g->sync_done = sync_done;
}

/* Stores the leader's assignment: every named member's bytes (members it does not name get
 * none). Returns 0, RL_E_INVALID_ARGUMENT or -ENOMEM; on failure nothing changed. */
static int group_store_client_assignment(struct group *g,
                                         const struct group_sync_assignment *a, uint32_t n)
{
    uint8_t **bufs = calloc(g->member_count, sizeof(*bufs));
    uint32_t *lens = calloc(g->member_count, sizeof(*lens));
    int rc = bufs && lens ? 0 : -ENOMEM;
    for (uint32_t k = 0; k < n && rc == 0; k++) {
        struct group_member *m = group_find(g, a[k].member_id);
        if (!m || a[k].len > GROUP_ASSIGNMENT_MAX || (a[k].len && !a[k].data))
            continue; /* Kafka ignores assignments for members that are gone */
        uint32_t idx = (uint32_t)(m - g->members);
        free(bufs[idx]);
        bufs[idx] = malloc(a[k].len ? a[k].len : 1);
        if (!bufs[idx]) {
            rc = -ENOMEM;
            break;
        }
        if (a[k].len)
            memcpy(bufs[idx], a[k].data, a[k].len);
        lens[idx] = a[k].len;
    }
    for (uint32_t i = 0; i < g->member_count && bufs; i++) {
        if (rc == 0) {
            free(g->members[i].assigned);
            g->members[i].assigned = bufs[i];
            g->members[i].assigned_len = lens[i];
        } else {
            free(bufs[i]);
        }
    }
    free(bufs);
    free(lens);
    return rc;
}

int group_sync_client(struct group *g, const char *member_id, int32_t generation,
                      int64_t now_ms, const struct group_sync_assignment *assignments,
                      uint32_t count, void *token)
{
    int rc = group_check_member(g, member_id, generation, now_ms);
    if (rc < 0)
        return rc;
    if (!g->client_side)
        return RL_E_INCONSISTENT_PROTOCOL;
    struct group_member *m = group_find(g, member_id);
    bool leader = !strcmp(member_id, g->leader_id);
    if (leader && g->awaiting_sync) {
        rc = group_store_client_assignment(g, assignments, count);
        if (rc < 0)
            return rc;
        g->awaiting_sync = false;
    }
    group_answer_sync(g, m, RL_E_REBALANCE_IN_PROGRESS); /* an older parked sync, if any */
    m->sync_pending = true;
    m->sync_token = token;
    if (g->awaiting_sync)
        return 0; /* parked until the leader's SyncGroup */
    if (leader) {
        for (uint32_t i = 0; i < g->member_count; i++)
            group_answer_sync(g, &g->members[i], 0);
    } else {
        group_answer_sync(g, m, 0);
    }
    return 0;
}

int group_member_protocol(const struct group *g, uint32_t i, const char **member_id,
                          const uint8_t **metadata, uint32_t *metadata_len,
                          const uint8_t **assignment, uint32_t *assignment_len)
{
    if (i >= g->member_count || !g->client_side)
        return RL_E_INVALID_ARGUMENT;
    const struct group_member *m = &g->members[i];
    uint32_t rank = 0;
    bool has = g->protocol[0] && member_supports(m, g->protocol, &rank);
    *member_id = m->id;
    *metadata = has ? m->protocols[rank].metadata : NULL;
    *metadata_len = has ? m->protocols[rank].metadata_len : 0;
    *assignment = m->assigned;
    *assignment_len = m->assigned_len;
    return 0;
}

int group_client_side(const struct group *g)
{
    return g->client_side;
}

const char *group_protocol_type(const struct group *g)
{
    return g->protocol_type;
}

const char *group_state_label(const struct group *g)
{
    if (g->state == GROUP_STABLE && g->awaiting_sync)
        return "CompletingRebalance";
    return group_state_name(g->state);
}

int group_heartbeat(struct group *g, const char *member_id, int32_t generation, int64_t now_ms)
{
    return group_check_member(g, member_id, generation, now_ms);
}

int group_leave(struct group *g, const char *member_id, int64_t now_ms)
{
    struct group_member *m = group_find(g, member_id);
    if (!m)
        return RL_E_UNKNOWN_MEMBER_ID;
    group_answer_join(g, m, RL_E_UNKNOWN_MEMBER_ID);
    group_remove_member(g, m);
    group_start_rebalance(g, now_ms);
    group_maybe_complete(g, now_ms);
    return 0;
}

uint32_t group_tick(struct group *g, int64_t now_ms)
{
    uint32_t removed = 0;
    for (uint32_t i = g->member_count; i-- > 0;) {
        struct group_member *m = &g->members[i];
        /* A member waiting in a rebalance is bounded by the rebalance deadline instead. */
        if (!m->join_pending && now_ms - m->last_seen_ms > m->session_timeout_ms) {
            RL_INFO("group %s: member %s missed its %d ms session timeout", g->id, m->id,
                    m->session_timeout_ms);
            group_remove_member(g, m);
            removed++;
        }
    }
    if (removed)
        group_start_rebalance(g, now_ms);
    group_maybe_complete(g, now_ms);
    return removed;
}

int group_check_commit(const struct group *g, const char *member_id, int32_t generation)
{
    if ((!member_id || !member_id[0]) && generation < 0)
        return g->member_count == 0 ? 0 : RL_E_UNKNOWN_MEMBER_ID;
    if (!group_find(g, member_id))
        return RL_E_UNKNOWN_MEMBER_ID;
    /* Commits of the current generation stay allowed while a rebalance is prepared, so members
     * can commit what they processed before giving their partitions up. */
    return generation == g->generation ? 0 : RL_E_ILLEGAL_GENERATION;
}

const char *group_id_of(const struct group *g)
{
    return g->id;
}

const char *group_assignor_of(const struct group *g)
{
    return g->assignor;
}

enum group_state group_get_state(const struct group *g)
{
    return g->state;
}

int32_t group_generation(const struct group *g)
{
    return g->generation;
}

uint32_t group_member_count(const struct group *g)
{
    return g->member_count;
}

int group_member_at(const struct group *g, uint32_t i, const char **member_id,
                    const char **client_id, const struct group_tp **assignment, uint32_t *count)
{
    if (i >= g->member_count)
        return RL_E_INVALID_ARGUMENT;
    const struct group_member *m = &g->members[i];
    *member_id = m->id;
    *client_id = m->client_id;
    *assignment = m->assignment;
    *count = m->assignment_count;
    return 0;
}
