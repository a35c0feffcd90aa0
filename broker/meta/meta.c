/*
 * meta: see meta.h. The table is a plain array scanned by name: topic lookups happen once per
 * topic per request, not per record, and max.topics bounds the scan.
 */
#include "broker/meta/meta_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/partition/partition.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"
#include "storage/plog.h"

/* --- table helpers ---------------------------------------------------------------------------- */

static int meta_push(void ***arr, size_t *n, size_t *cap, void *x)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        void **na = realloc(*arr, nc * sizeof(*na));
        if (!na)
            return -ENOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = x;
    return 0;
}

static void meta_remove(void **arr, size_t *n, void *x)
{
    for (size_t i = 0; i < *n; i++) {
        if (arr[i] == x) {
            memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof(*arr));
            (*n)--;
            return;
        }
    }
}

#define META_PUSH(arr, n, cap, x) meta_push((void ***)(arr), (n), (cap), (x))
#define META_REMOVE(arr, n, x) meta_remove((void **)(arr), (n), (x))

/* Replication stops for t's partitions (before they are closed or deleted). */
static void meta_detach_topic(struct meta *m, struct meta_topic *t)
{
    if (!m->replicator.detach || !t->replicas)
        return;
    for (uint32_t i = 0; i < t->partition_count; i++)
        if (t->parts[i] && partition_replicated(t->parts[i]))
            m->replicator.detach(m->replicator.ctx, t->parts[i]);
}

/* Replication starts for t's partitions this broker holds. */
static int meta_attach_topic(struct meta *m, struct meta_topic *t)
{
    if (!m->replicator.attach || !t->replicas)
        return 0;
    for (uint32_t i = 0; i < t->partition_count; i++) {
        if (!t->parts[i] || partition_replicated(t->parts[i]))
            continue;
        int rc = m->replicator.attach(m->replicator.ctx, t, i, t->parts[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static void meta_topic_free(struct meta_topic *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_split_keys; i++)
        free((void *)t->split_keys[i].data);
    free(t->split_keys);
    free(t->parts);
    free(t->owners);
    free(t->replicas);
    free(t->targets);
    free(t);
}

size_t meta_topic_count(const struct meta *m)
{
    return m->n_live;
}

const struct meta_topic *meta_topic_at(const struct meta *m, size_t i)
{
    return i < m->n_live ? m->live[i] : NULL;
}

static struct meta_topic *meta_find_in(struct meta_topic *const *arr, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(arr[i]->name, name))
            return arr[i];
    return NULL;
}

static struct meta_topic *meta_find_live(const struct meta *m, const char *name)
{
    return meta_find_in(m->live, m->n_live, name);
}

static struct meta_creating *meta_creating_of(const struct meta *m, const char *name)
{
    for (size_t i = 0; i < m->n_creating; i++)
        if (!strcmp(m->creating[i]->t->name, name))
            return m->creating[i];
    return NULL;
}

static bool meta_is_creating(const struct meta *m, const char *name)
{
    for (size_t i = 0; i < m->n_creating; i++)
        if (!strcmp(m->creating[i]->t->name, name))
            return true;
    return false;
}

bool meta_creating_for(const struct meta *m, const struct meta_proposal *pr)
{
    for (size_t i = 0; i < m->n_creating; i++)
        if (m->creating[i]->pr == pr)
            return true;
    return false;
}

bool meta_topic_internal(const char *name)
{
    return name && name[0] == '_' && name[1] == '_';
}

const struct meta_topic *meta_topic_find(const struct meta *m, const char *name)
{
    return meta_find_live(m, name);
}

struct partition *meta_partition(const struct meta *m, const char *topic, uint32_t index,
                                 int *err)
{
    const struct meta_topic *t = meta_find_live(m, topic);
    if (!t) {
        *err = RL_E_UNKNOWN_TOPIC;
        return NULL;
    }
    if (index >= t->partition_count) {
        *err = RL_E_UNKNOWN_PARTITION;
        return NULL;
    }
    if (!t->parts[index]) {
        *err = RL_E_NOT_LEADER;
        return NULL;
    }
    *err = 0;
    return t->parts[index];
}

static bool meta_holds(const struct meta *m, const struct meta_topic *t, uint32_t i);

const char *meta_not_leader_msg(const struct meta *m, const char *topic, uint32_t index,
                                char *buf, size_t cap)
{
    const struct meta_topic *t = meta_find_live(m, topic);
    if (t && index < t->partition_count && !t->parts[index] && meta_holds(m, t, index)) {
        snprintf(buf, cap, "this broker's (node %u) replica of partition %u of \"%s\" could "
                 "not be opened (its log says why; it is retried): ask Metadata for the "
                 "leader, or retry", m->lim.node_id, index, topic);
        return buf;
    }
    snprintf(buf, cap, "partition %u of \"%s\" is on node %u, not on this broker (node %u): "
             "ask Metadata for its leader and send it there", index, topic,
             t ? meta_partition_owner(t, index) : 0, m->lim.node_id);
    return buf;
}

uint32_t meta_node_id(const struct meta *m)
{
    return m->lim.node_id;
}

uint32_t meta_partition_owner(const struct meta_topic *t, uint32_t i)
{
    return t->owners && i < t->partition_count ? t->owners[i] : 0;
}

const uint32_t *meta_partition_replicas(const struct meta_topic *t, uint32_t i, uint32_t *n)
{
    if (!t->replicas || i >= t->partition_count) {
        *n = 0;
        return NULL;
    }
    *n = t->replication_factor;
    return t->replicas + (size_t)i * t->replication_factor;
}

const uint32_t *meta_partition_target(const struct meta_topic *t, uint32_t i)
{
    if (!t->targets || !t->replicas || i >= t->partition_count)
        return NULL;
    const uint32_t *tg = t->targets + (size_t)i * t->replication_factor;
    return tg[0] ? tg : NULL;
}

bool meta_broker_decommissioned(const struct meta *m, uint32_t id)
{
    for (uint32_t i = 0; id && i < m->n_decommissioned; i++)
        if (m->decommissioned[i] == id)
            return true;
    return false;
}

bool meta_ids_have(const uint32_t *ids, uint32_t n, uint32_t id)
{
    for (uint32_t k = 0; ids && k < n; k++)
        if (ids[k] == id)
            return true;
    return false;
}

uint32_t meta_topic_min_insync(const struct meta_topic *t)
{
    int64_t v = 1;
    if (config_topic_parse_i64(t->cfg.values[CONFIG_MIN_INSYNC_REPLICAS], &v) || v < 1)
        v = 1;
    return (uint32_t)v;
}

/* Whether this broker holds partition i of t (opens its log). */
static bool meta_holds(const struct meta *m, const struct meta_topic *t, uint32_t i)
{
    uint32_t n;
    const uint32_t *r = meta_partition_replicas(t, i, &n);
    if (r)
        return meta_ids_have(r, n, m->lim.node_id) ||
               meta_ids_have(meta_partition_target(t, i), n, m->lim.node_id);
    uint32_t o = meta_partition_owner(t, i);
    return o == 0 || o == m->lim.node_id;
}

struct io *meta_io(const struct meta *m)
{
    return partition_env_io(m->env);
}

int64_t meta_producer_id_block_end(const struct meta *m)
{
    return m->producer_id_block_end;
}

uint32_t meta_partition_count(const struct meta *m)
{
    uint32_t n = 0;
    for (size_t i = 0; i < m->n_live; i++)
        n += m->live[i]->partition_count;
    return n;
}

uint32_t meta_proposals_pending(const struct meta *m)
{
    return m->n_proposals;
}

uint32_t meta_commits_pending(const struct meta *m)
{
    return m->n_commits;
}

uint64_t meta_log_records(const struct meta *m)
{
    return m->log_records;
}

int meta_log_read(struct meta *m, uint64_t first, uint64_t end, size_t max_bytes, uint8_t *out,
                  size_t cap, size_t *len_out, uint32_t *n_out)
{
    return metalog_read_records(m->ml, first, end, max_bytes, out, cap, len_out, n_out);
}

size_t meta_set_configs(const struct topic_config *cfg, struct meta_config *configs)
{
    size_t n = 0;
    for (int k = 0; k < CONFIG_TOPIC_KEY_COUNT; k++) {
        if (!(cfg->set_mask & (1u << k)))
            continue;
        configs[n].key = config_topic_key_name((enum config_topic_key)k);
        configs[n].value = cfg->values[k];
        n++;
    }
    return n;
}

/* --- validation ------------------------------------------------------------------------------- */

static int meta_check_splits(const struct meta_topic_spec *s, char *err, size_t err_cap)
{
    if (s->partitioner == META_PARTITIONER_HASH) {
        if (s->n_split_keys) {
            snprintf(err, err_cap, "split keys are only for the range partitioner");
            return RL_E_INVALID_SPLITS;
        }
        return 0;
    }
    if (s->partitioner != META_PARTITIONER_RANGE) {
        snprintf(err, err_cap, "unknown partitioner %d; use hash or range", (int)s->partitioner);
        return RL_E_INVALID_REQUEST;
    }
    if (s->n_split_keys != (size_t)s->partitions - 1) {
        snprintf(err, err_cap, "range partitioning over %d partitions needs %d split keys, "
                 "got %zu", s->partitions, s->partitions - 1, s->n_split_keys);
        return RL_E_INVALID_SPLITS;
    }
    for (size_t i = 1; i < s->n_split_keys; i++) {
        const struct meta_bytes *a = &s->split_keys[i - 1], *b = &s->split_keys[i];
        size_t n = a->len < b->len ? a->len : b->len;
        int c = n ? memcmp(a->data, b->data, n) : 0;
        if (c > 0 || (c == 0 && a->len >= b->len)) {
            snprintf(err, err_cap, "split keys must be sorted and distinct (key %zu is not "
                     "greater than key %zu)", i, i - 1);
            return RL_E_INVALID_SPLITS;
        }
    }
    return 0;
}

/* The spec on its own: name, counts, partitioner, configs (into *cfg). */
/* min.insync.replicas may not exceed the replicas a partition has: acks=all could never be
 * answered. */
static int meta_check_insync(const struct topic_config *cfg, uint32_t rf, const char *name,
                             char *err, size_t err_cap)
{
    int64_t v = 1;
    if (config_topic_parse_i64(cfg->values[CONFIG_MIN_INSYNC_REPLICAS], &v) || v < 1)
        v = 1;
    if ((uint64_t)v > rf) {
        snprintf(err, err_cap, "min.insync.replicas %lld is larger than the replication factor "
                 "%u of topic \"%s\": acks=all could never be answered; set it to at most %u",
                 (long long)v, rf, name, rf);
        return RL_E_INVALID_CONFIG;
    }
    return 0;
}

static int meta_check_spec(const struct meta *m, const struct meta_topic_spec *s,
                           struct topic_config *cfg, char *err, size_t err_cap)
{
    int rc = config_topic_name_check(s->name, err, err_cap);
    if (rc)
        return rc;
    if (s->partitions <= 0 || s->partitions > META_MAX_PARTITIONS_PER_TOPIC) {
        snprintf(err, err_cap, "partition count must be between 1 and %d (the protocol's "
                 "limit per topic, which clients hold too), got %d",
                 META_MAX_PARTITIONS_PER_TOPIC, s->partitions);
        return RL_E_INVALID_PARTITIONS;
    }
    if ((m->committer.submit || s->n_replicas) && (s->replication_factor < 0 ||
                                s->replication_factor > META_MAX_REPLICATION_FACTOR)) {
        snprintf(err, err_cap, "replication factor %d is not possible: use 1 to %d (at most "
                 "the number of brokers)", s->replication_factor, META_MAX_REPLICATION_FACTOR);
        return RL_E_INVALID_REPLICATION;
    }
    if (!m->committer.submit && !s->n_replicas && s->replication_factor != 0 &&
        s->replication_factor != 1) {
        snprintf(err, err_cap, "replication factor %d is not possible: this cluster has one "
                 "broker; use 1", s->replication_factor);
        return RL_E_INVALID_REPLICATION;
    }
    if (s->n_owners && s->n_owners != (size_t)s->partitions) {
        snprintf(err, err_cap, "the placement names %zu owners for %d partitions",
                 s->n_owners, s->partitions);
        return RL_E_INVALID_ARGUMENT;
    }
    if (s->n_replicas && (s->replication_factor < 2 ||
                          s->n_replicas != (size_t)s->partitions * (size_t)s->replication_factor)) {
        snprintf(err, err_cap, "the placement names %zu replicas for %d partitions of "
                 "replication factor %d", s->n_replicas, s->partitions, s->replication_factor);
        return RL_E_INVALID_ARGUMENT;
    }
    rc = meta_check_splits(s, err, err_cap);
    if (rc)
        return rc;
    *cfg = m->lim.topic_defaults;
    cfg->set_mask = 0;
    for (size_t i = 0; i < s->n_configs; i++) {
        rc = config_topic_set(cfg, s->configs[i].key, s->configs[i].value, err, err_cap);
        if (rc)
            return rc;
    }
    return meta_check_insync(cfg, s->replication_factor > 1 ? (uint32_t)s->replication_factor
                                                            : 1, s->name, err, err_cap);
}

static const char *meta_partitioner_word(int32_t p)
{
    return p == META_PARTITIONER_RANGE ? "range" : "hash";
}

/* The refusal of a name in use: what the existing topic is and how the request differs, so the
 * user can tell a harmless repeat from a conflicting one. */
static void meta_exists_message(const struct meta *m, const struct meta_topic_spec *s,
                                char *err, size_t err_cap)
{
    const struct meta_topic *t = meta_find_live(m, s->name);
    if (!t) {
        snprintf(err, err_cap, "topic \"%s\" already exists (its creation is in progress); "
                 "describe it once created (ringlog topic describe %s) or use another name",
                 s->name, s->name);
        return;
    }
    uint32_t rf = t->replication_factor ? t->replication_factor : 1;
    char diff[200] = "";
    size_t n = 0;
    if ((uint32_t)s->partitions != t->partition_count)
        n += (size_t)snprintf(diff + n, sizeof(diff) - n, ", %d partitions instead of %u",
                              s->partitions, t->partition_count);
    if (s->replication_factor > 0 && (uint32_t)s->replication_factor != rf && n < sizeof(diff))
        n += (size_t)snprintf(diff + n, sizeof(diff) - n, ", replication factor %d instead "
                              "of %u", s->replication_factor, rf);
    if ((enum meta_partitioner)s->partitioner != t->partitioner && n < sizeof(diff))
        snprintf(diff + n, sizeof(diff) - n, ", the %s partitioner instead of %s",
                 meta_partitioner_word(s->partitioner), meta_partitioner_word(t->partitioner));
    snprintf(err, err_cap, "topic \"%s\" already exists with %u partitions, replication factor "
             "%u, %s partitioning; %s%s. Use it as it is, delete it first (ringlog topic delete "
             "%s), or pick another name", s->name, t->partition_count, rf,
             meta_partitioner_word(t->partitioner),
             diff[0] ? "the request asks for" : "the request asks for the same",
             diff[0] ? diff + 1 : "", s->name);
}

int meta_check_create(const struct meta *m, const struct meta_topic_spec *s,
                      struct topic_config *cfg, char *err, size_t err_cap)
{
    int rc = meta_check_spec(m, s, cfg, err, err_cap);
    if (rc)
        return rc;
    if (meta_find_live(m, s->name) || meta_is_creating(m, s->name)) {
        meta_exists_message(m, s, err, err_cap);
        return RL_E_TOPIC_EXISTS;
    }
    if (meta_find_in(m->doomed, m->n_doomed, s->name)) {
        snprintf(err, err_cap, "topic \"%s\" is still being deleted; retry shortly", s->name);
        return RL_E_TOPIC_EXISTS;
    }
    if (m->n_live + m->n_creating >= m->lim.max_topics) {
        snprintf(err, err_cap, "the broker holds its maximum of %u topics (max.topics)",
                 m->lim.max_topics);
        return RL_E_LIMIT;
    }
    if (m->partitions_total + (uint32_t)s->partitions > m->lim.max_partitions) {
        snprintf(err, err_cap, "%d more partitions would exceed the broker's maximum of %u "
                 "(max.partitions; %u in use)", s->partitions, m->lim.max_partitions,
                 m->partitions_total);
        return RL_E_LIMIT;
    }
    return 0;
}

/* The topic's config after setting the listed keys (others keep their values). */
static int meta_check_insync_alter(const struct meta_topic *t, const struct topic_config *cfg,
                                   char *err, size_t err_cap)
{
    return meta_check_insync(cfg, t->replication_factor ? t->replication_factor : 1, t->name,
                             err, err_cap);
}

static int meta_altered_config(const struct meta_topic *t, const struct meta_config *configs,
                               size_t n, struct topic_config *cfg, char *err, size_t err_cap)
{
    *cfg = t->cfg;
    for (size_t i = 0; i < n; i++) {
        int rc = config_topic_set(cfg, configs[i].key, configs[i].value, err, err_cap);
        if (rc)
            return rc;
    }
    return 0;
}

int meta_check_alter(const struct meta *m, const char *name, const struct meta_config *configs,
                     size_t n, char *err, size_t err_cap)
{
    const struct meta_topic *t = meta_find_live(m, name);
    if (!t) {
        snprintf(err, err_cap, "topic \"%s\" does not exist", name);
        return RL_E_UNKNOWN_TOPIC;
    }
    struct topic_config cfg;
    int rc = meta_altered_config(t, configs, n, &cfg, err, err_cap);
    return rc ? rc : meta_check_insync_alter(t, &cfg, err, err_cap);
}

/* The replicated partition a move names, or NULL with a sentence in err. */
static const struct meta_topic *meta_move_topic(const struct meta *m, const struct meta_move *mv,
                                                int *rc, char *err, size_t err_cap)
{
    const struct meta_topic *t = meta_find_live(m, mv->topic);
    *rc = RL_E_UNKNOWN_TOPIC;
    if (!t) {
        snprintf(err, err_cap, "topic \"%s\" does not exist", mv->topic);
        return NULL;
    }
    *rc = RL_E_UNKNOWN_PARTITION;
    if (mv->partition >= t->partition_count) {
        snprintf(err, err_cap, "topic \"%s\" has %u partitions: partition %u does not exist",
                 t->name, t->partition_count, mv->partition);
        return NULL;
    }
    *rc = RL_E_INVALID_ARGUMENT;
    if (!t->replicas) {
        snprintf(err, err_cap, "%s-%u has a single replica: only replicated partitions "
                 "(replication factor > 1) can move", t->name, mv->partition);
        return NULL;
    }
    if (mv->n_replicas != t->replication_factor) {
        snprintf(err, err_cap, "%s-%u has %u replicas (its replication factor), not %u: name "
                 "as many brokers as it has replicas", t->name, mv->partition,
                 t->replication_factor, mv->n_replicas);
        return NULL;
    }
    for (uint32_t k = 0; k < mv->n_replicas; k++) {
        if (mv->replicas[k] == 0 || meta_ids_have(mv->replicas, k, mv->replicas[k])) {
            snprintf(err, err_cap, "%s-%u: replica %u is %s", t->name, mv->partition,
                     mv->replicas[k], mv->replicas[k] ? "named twice" : "no broker id");
            return NULL;
        }
    }
    *rc = 0;
    return t;
}

/* A cancel of partition mv's move: one runs, and mv names its origin (the partition's replicas,
 * unchanged until the move ends), which is not already its target. */
static int meta_check_cancel(const struct meta_topic *t, const struct meta_move *mv, char *err,
                             size_t err_cap)
{
    uint32_t n;
    const uint32_t *r = meta_partition_replicas(t, mv->partition, &n);
    const uint32_t *tg = meta_partition_target(t, mv->partition);
    if (!tg || !memcmp(tg, r, n * sizeof(*r))) {
        snprintf(err, err_cap, "no move of %s-%u's replicas is running%s: nothing to cancel "
                 "(ringlog topic describe %s shows its replicas)", t->name, mv->partition,
                 tg ? " (a cancel already returns it to its replicas)" : "", t->name);
        return RL_E_NO_MOVE_RUNNING;
    }
    if (memcmp(r, mv->replicas, n * sizeof(*r))) {
        snprintf(err, err_cap, "%s-%u: the cancel does not name the replicas the move started "
                 "from; run ringlog topic reassign %s %u --cancel again", t->name,
                 mv->partition, t->name, mv->partition);
        return RL_E_INVALID_ARGUMENT;
    }
    return 0;
}

/* A new move's target names no decommissioned broker (placement never picks one). */
static int meta_check_target_brokers(const struct meta *m, const struct meta_topic *t,
                                     const struct meta_move *mv, char *err, size_t err_cap)
{
    for (uint32_t k = 0; k < mv->n_replicas; k++) {
        if (!meta_broker_decommissioned(m, mv->replicas[k]))
            continue;
        snprintf(err, err_cap, "broker %u is decommissioned (ringlog cluster remove-broker %u): "
                 "no replica of %s-%u can move there; name another broker, or make it "
                 "eligible again with ringlog cluster recommission %u", mv->replicas[k],
                 mv->replicas[k], t->name, mv->partition, mv->replicas[k]);
        return RL_E_BROKER_DECOMMISSIONED;
    }
    return 0;
}

/* One move of a REASSIGN: valid, and a new move of a partition that does not move already
 * (cancel: see meta_check_cancel). */
static int meta_check_move(const struct meta *m, const struct meta_record *rec,
                           const struct meta_move *mv, char *err, size_t err_cap)
{
    int rc;
    const struct meta_topic *t = meta_move_topic(m, mv, &rc, err, err_cap);
    if (!t)
        return rc;
    if (rec->cancel)
        return meta_check_cancel(t, mv, err, err_cap);
    if (meta_partition_target(t, mv->partition)) {
        snprintf(err, err_cap, "a move of %s-%u's replicas is already running; wait for it "
                 "to finish, or stop it with ringlog topic reassign %s %u --cancel (ringlog "
                 "topic describe %s shows its target)", t->name, mv->partition, t->name,
                 mv->partition, t->name);
        return RL_E_REASSIGN_RUNNING;
    }
    if (meta_ids_have(mv->replicas, mv->n_replicas, rec->remove_broker)) {
        snprintf(err, err_cap, "%s-%u: a move off broker %u cannot move onto it", t->name,
                 mv->partition, rec->remove_broker);
        return RL_E_INVALID_ARGUMENT;
    }
    return meta_check_target_brokers(m, t, mv, err, err_cap);
}

/* The broker marks of a REASSIGN: a recommission names a decommissioned broker and comes
 * alone or with the cancel of the moves off it; the table of marks has room. */
static int meta_check_marks(const struct meta *m, const struct meta_record *rec, char *err,
                            size_t err_cap)
{
    uint32_t re = rec->recommission_broker, rm = rec->remove_broker;
    if ((re && (rm || (rec->n_moves && !rec->cancel))) || (rm && rec->cancel)) {
        snprintf(err, err_cap, "a change of replicas either removes a broker, recommissions "
                 "one, or cancels moves (with a recommission: the moves off that broker)");
        return RL_E_INVALID_ARGUMENT;
    }
    if (re && !meta_broker_decommissioned(m, re)) {
        snprintf(err, err_cap, "broker %u is not decommissioned: nothing to recommission "
                 "(ringlog cluster status shows which brokers are)", re);
        return RL_E_INVALID_ARGUMENT;
    }
    if (rm && !meta_broker_decommissioned(m, rm) &&
        m->n_decommissioned == META_MAX_DECOMMISSIONED) {
        snprintf(err, err_cap, "%u brokers are decommissioned already, the most the cluster "
                 "records; recommission one (ringlog cluster recommission N) first",
                 META_MAX_DECOMMISSIONED);
        return RL_E_INVALID_ARGUMENT;
    }
    if (rec->n_moves == 0 && !re && !rm) {
        snprintf(err, err_cap, "no partition to move");
        return RL_E_INVALID_ARGUMENT;
    }
    return 0;
}

/* A REASSIGN: its marks valid, every move valid, no partition twice. */
static int meta_check_reassign(const struct meta *m, const struct meta_record *rec, char *err,
                               size_t err_cap)
{
    int rc = meta_check_marks(m, rec, err, err_cap);
    if (rc)
        return rc;
    for (size_t i = 0; i < rec->n_moves; i++) {
        const struct meta_move *mv = &rec->moves[i];
        if ((rc = meta_check_move(m, rec, mv, err, err_cap)) != 0)
            return rc;
        for (size_t k = 0; k < i; k++) {
            if (!strcmp(rec->moves[k].topic, mv->topic) &&
                rec->moves[k].partition == mv->partition) {
                snprintf(err, err_cap, "%s-%u is named twice", mv->topic, mv->partition);
                return RL_E_INVALID_ARGUMENT;
            }
        }
    }
    return 0;
}

/* A REASSIGN_DONE: the partition's move runs toward exactly these replicas. */
static int meta_check_reassign_done(const struct meta *m, const struct meta_record *rec,
                                    char *err, size_t err_cap)
{
    int rc;
    const struct meta_move *mv = &rec->moves[0];
    const struct meta_topic *t = rec->n_moves == 1 ? meta_move_topic(m, mv, &rc, err, err_cap)
                                                   : NULL;
    if (!t)
        return rec->n_moves == 1 ? rc : RL_E_INVALID_ARGUMENT;
    const uint32_t *tg = meta_partition_target(t, mv->partition);
    if (!tg || memcmp(tg, mv->replicas, mv->n_replicas * sizeof(*tg))) {
        snprintf(err, err_cap, "%s-%u: no move toward these replicas runs", t->name,
                 mv->partition);
        return RL_E_INVALID_ARGUMENT;
    }
    return 0;
}

int meta_validate(const struct meta *m, const struct meta_record *rec, struct topic_config *cfg,
                  char *err, size_t err_cap)
{
    switch (rec->kind) {
    case META_RECORD_REASSIGN:
        if (!m->committer.submit && !m->replaying) {
            snprintf(err, err_cap, "a single broker has no replicas to move");
            return RL_E_INVALID_ARGUMENT;
        }
        return meta_check_reassign(m, rec, err, err_cap);
    case META_RECORD_REASSIGN_DONE:
        return meta_check_reassign_done(m, rec, err, err_cap);
    case META_RECORD_CREATE_TOPIC:
        return meta_check_create(m, &rec->spec, cfg, err, err_cap);
    case META_RECORD_DELETE_TOPIC:
        if (rec->rollback_incarnation)
            return 0; /* a failed creation's undo: a no-op where the topic is unknown */
        if (!meta_find_live(m, rec->name)) {
            snprintf(err, err_cap, "topic \"%s\" does not exist", rec->name);
            return RL_E_UNKNOWN_TOPIC;
        }
        return 0;
    case META_RECORD_ALTER_CONFIGS: {
        const struct meta_topic *t = meta_find_live(m, rec->name);
        if (!t) {
            snprintf(err, err_cap, "topic \"%s\" does not exist", rec->name);
            return RL_E_UNKNOWN_TOPIC;
        }
        return meta_altered_config(t, rec->configs, rec->n_configs, cfg, err, err_cap);
    }
    case META_RECORD_PRODUCER_ID_BLOCK:
        /* In a cluster a block must start past every recorded one: a broker that proposes from
         * a stale view must not get ids another broker's block already holds. */
        if (m->committer.submit &&
            rec->producer_id_block_end - m->producer_id_block_end < META_PRODUCER_ID_BLOCK) {
            snprintf(err, err_cap, "producer-id block end %lld does not leave a block of %d "
                     "past %lld", (long long)rec->producer_id_block_end,
                     META_PRODUCER_ID_BLOCK, (long long)m->producer_id_block_end);
            return RL_E_INVALID_ARGUMENT;
        }
        if (rec->producer_id_block_end <= m->producer_id_block_end) {
            snprintf(err, err_cap, "producer-id block end %lld is not past %lld",
                     (long long)rec->producer_id_block_end, (long long)m->producer_id_block_end);
            return RL_E_INVALID_ARGUMENT;
        }
        return 0;
    default:
        snprintf(err, err_cap, "unknown metadata record kind %d", (int)rec->kind);
        return RL_E_INVALID_ARGUMENT;
    }
}

/* --- apply ------------------------------------------------------------------------------------ */

/* Builds the in-memory topic from a checked spec (no partitions yet). */
static struct meta_topic *meta_topic_build(const struct meta_topic_spec *s,
                                           const struct topic_config *cfg)
{
    struct meta_topic *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    snprintf(t->name, sizeof(t->name), "%s", s->name);
    t->partition_count = (uint32_t)s->partitions;
    t->partitioner = (enum meta_partitioner)s->partitioner;
    t->cfg = *cfg;
    t->max_message_bytes = config_topic_max_message_bytes(cfg);
    t->parts = calloc(t->partition_count, sizeof(*t->parts));
    if (s->n_owners) {
        t->owners = malloc(t->partition_count * sizeof(*t->owners));
        if (!t->owners)
            goto fail;
        memcpy(t->owners, s->owners, t->partition_count * sizeof(*t->owners));
    }
    t->replication_factor = 1;
    t->incarnation = s->incarnation;
    if (s->n_replicas) {
        t->replication_factor = (uint32_t)s->replication_factor;
        t->replicas = malloc(s->n_replicas * sizeof(*t->replicas));
        if (!t->replicas)
            goto fail;
        memcpy(t->replicas, s->replicas, s->n_replicas * sizeof(*t->replicas));
    }
    t->split_keys = s->n_split_keys ? calloc(s->n_split_keys, sizeof(*t->split_keys)) : NULL;
    if (!t->parts || (s->n_split_keys && !t->split_keys))
        goto fail;
    for (size_t i = 0; i < s->n_split_keys; i++) {
        uint8_t *copy = malloc(s->split_keys[i].len + 1);
        if (!copy)
            goto fail;
        if (s->split_keys[i].len)
            memcpy(copy, s->split_keys[i].data, s->split_keys[i].len);
        t->split_keys[i] = (struct meta_bytes){copy, s->split_keys[i].len};
        t->n_split_keys = i + 1;
    }
    return t;
fail:
    meta_topic_free(t);
    return NULL;
}

static void meta_apply_delete(struct meta *m, const char *name, uint64_t incarnation);
static void meta_reap_named(struct meta *m, const char *name);

/* A creation that failed here is kept (without its replicas) when the committed metadata of
 * a cluster says the topic exists and nothing undoes it: another broker proposed it (only the
 * proposer rolls a failed creation back, for every broker) and no deletion came meanwhile.
 * Forgetting it would leave this broker without the topic until its next start. */
static bool meta_keeps_failed_creation(const struct meta *m, const struct meta_creating *c)
{
    return m->committer.submit && !c->pr && !c->deleted;
}

/* Keeps t live with no partition open here; meta_reopen_missing opens its replicas later. */
static void meta_keep_without_replicas(struct meta *m, struct meta_topic *t, const char *err)
{
    meta_detach_topic(m, t);
    for (uint32_t i = 0; i < t->partition_count; i++) {
        if (t->parts[i])
            partition_delete(t->parts[i]);
        t->parts[i] = NULL;
    }
    if (META_PUSH(&m->live, &m->n_live, &m->cap_live, t)) {
        RL_ERROR("topic %s: its replicas here could not be created (%s), and keeping the topic "
                 "failed (out of memory): this broker lacks it until restarted", t->name, err);
        m->partitions_total -= t->partition_count;
        meta_topic_free(t);
        return;
    }
    t->replicas_missing = true;
    t->reopen_tries = 0;
    t->reopen_at_ms = 0;
    m->replicas_missing = true;
    RL_WARN("topic %s: its replicas on this broker could not be created: %s; the topic is "
            "kept (the cluster created it) and the replicas are tried again in 1 s, backing "
            "off to %d s", t->name, err, META_REOPEN_MAX_MS / 1000);
}

/* The partitions of a topic created while serving are open (or failed). */
static void meta_topic_opened(void *ctx, int rc, const char *err)
{
    struct meta_creating *c = ctx;
    struct meta *m = c->m;
    struct meta_topic *t = c->t;
    uint64_t incarnation = t->incarnation; /* t is freed when the creation failed */
    META_REMOVE(m->creating, &m->n_creating, c);
    char aerr[160];
    if (rc == 0 && (rc = meta_attach_topic(m, t)) != 0) {
        snprintf(aerr, sizeof(aerr), "cannot start replicating its partitions: %s",
                 rl_strerror(rc));
        err = aerr;
        meta_detach_topic(m, t);
    }
    if (rc == 0 && META_PUSH(&m->live, &m->n_live, &m->cap_live, t))
        rc = -ENOMEM; /* cannot happen while creating holds a slot; handled all the same */
    if (rc == 0) {
        RL_INFO("created topic %s with %u partitions", t->name, t->partition_count);
        if (c->deleted)
            meta_apply_delete(m, t->name, 0);
    } else if (meta_keeps_failed_creation(m, c)) {
        meta_keep_without_replicas(m, t, err);
    } else {
        RL_WARN("topic %s: creating its partitions failed: %s", t->name, err);
        m->partitions_total -= t->partition_count;
        meta_detach_topic(m, t);
        for (uint32_t i = 0; i < t->partition_count; i++)
            if (t->parts[i])
                partition_delete(t->parts[i]);
        meta_topic_free(t);
    }
    if (c->pr) {
        c->pr->failed_incarnation = rc ? incarnation : 0;
        meta_proposal_created(m, c->pr, rc, err);
    }
    free(c);
}

static int meta_apply_create(struct meta *m, const struct meta_topic_spec *spec)
{
    char err[512];
    struct topic_config cfg;
    if (meta_find_live(m, spec->name) || meta_is_creating(m, spec->name)) {
        RL_WARN("metadata: topic %s created twice; keeping the first", spec->name);
        return 0;
    }
    int rc = meta_check_spec(m, spec, &cfg, err, sizeof(err));
    if (rc) {
        RL_WARN("metadata: skipping topic %s: %s", spec->name, err);
        return 0;
    }
    struct meta_topic *t = meta_topic_build(spec, &cfg);
    if (!t)
        return -ENOMEM;
    if (m->replaying) {
        if (META_PUSH(&m->live, &m->n_live, &m->cap_live, t)) {
            meta_topic_free(t);
            return -ENOMEM;
        }
        m->partitions_total += t->partition_count;
        return 0;
    }
    meta_reap_named(m, spec->name);
    struct meta_creating *c = calloc(1, sizeof(*c));
    if (!c || META_PUSH(&m->creating, &m->n_creating, &m->cap_creating, c)) {
        free(c);
        meta_topic_free(t);
        return -ENOMEM;
    }
    *c = (struct meta_creating){.t = t, .m = m};
    /* The proposal waiting for this topic: locally the one in flight; in a cluster the one
     * the committed record being applied carries (another broker's records carry none). */
    struct meta_proposal *want = m->committer.submit ? m->applying_pr : m->inflight;
    if (want && want->rec.kind == META_RECORD_CREATE_TOPIC && !strcmp(want->rec.spec.name, t->name))
        c->pr = want;
    m->partitions_total += t->partition_count;
    struct plog_config pc;
    config_topic_to_plog(&cfg, &pc);
    bool hold[META_MAX_PARTITIONS_PER_TOPIC];
    for (uint32_t i = 0; i < t->partition_count; i++)
        hold[i] = meta_holds(m, t, i);
    rc = partition_open_all(m->env, m->lim.data_dir, t->name, t->partition_count, &pc,
                            hold, t->parts, meta_topic_opened, c);
    if (rc) {
        META_REMOVE(m->creating, &m->n_creating, c);
        m->partitions_total -= t->partition_count;
        meta_topic_free(t);
        free(c);
    }
    return rc;
}

static void meta_note_gone(struct meta *m, const struct meta_topic *t)
{
    if (m->n_gone == m->cap_gone) {
        size_t nc = m->cap_gone ? m->cap_gone * 2 : 8;
        struct meta_gone *ng = realloc(m->gone, nc * sizeof(*ng));
        if (!ng)
            return; /* only leftover directories are at stake, and the next start retries */
        m->gone = ng;
        m->cap_gone = nc;
    }
    snprintf(m->gone[m->n_gone].name, sizeof(m->gone[0].name), "%s", t->name);
    m->gone[m->n_gone].partitions = t->partition_count;
    m->n_gone++;
}

/* incarnation: 0, or the creation a rollback undoes (another creation of the name stays). */
static void meta_apply_delete(struct meta *m, const char *name, uint64_t incarnation)
{
    struct meta_topic *t = meta_find_live(m, name);
    if (!t) {
        struct meta_creating *c = meta_creating_of(m, name);
        if (c && (!incarnation || c->t->incarnation == incarnation)) {
            c->deleted = true; /* deleted once open (meta_topic_opened) */
            RL_INFO("topic %s is deleted while its partitions open", name);
            return;
        }
        if (incarnation)
            RL_INFO("metadata: topic %s, whose creation failed on its proposer, is not here "
                    "(nothing to undo)", name);
        else
            RL_WARN("metadata: deletion of unknown topic %s skipped", name);
        return;
    }
    if (incarnation && t->incarnation != incarnation) {
        RL_WARN("metadata: the undo of a failed creation of %s names another incarnation; "
                "the topic stays", name);
        return;
    }
    META_REMOVE(m->live, &m->n_live, t);
    m->partitions_total -= t->partition_count;
    if (m->replaying) {
        meta_note_gone(m, t); /* no logs were opened; leftovers are removed after replay */
        meta_topic_free(t);
        return;
    }
    for (uint32_t i = 0; i < t->partition_count; i++)
        if (t->parts[i])
            partition_mark_gone(t->parts[i]);
    if (META_PUSH(&m->doomed, &m->n_doomed, &m->cap_doomed, t)) {
        /* Out of memory: the logs go now if nothing holds them, or leak until restart. */
        RL_ERROR("out of memory deleting topic %s; its logs stay until restart", name);
        return;
    }
    RL_INFO("deleted topic %s", name);
}

static void meta_apply_alter(struct meta *m, const char *name, const struct meta_config *configs,
                             size_t n)
{
    char err[512];
    struct meta_topic *t = meta_find_live(m, name);
    struct topic_config cfg;
    if (!t || meta_altered_config(t, configs, n, &cfg, err, sizeof(err))) {
        RL_WARN("metadata: skipping a config change of %s: %s", name,
                t ? err : "unknown topic");
        return;
    }
    t->cfg = cfg;
    t->max_message_bytes = config_topic_max_message_bytes(&cfg);
    if (m->replaying)
        return;
    struct plog_config pc;
    config_topic_to_plog(&cfg, &pc);
    for (uint32_t i = 0; i < t->partition_count; i++) {
        if (!t->parts[i])
            continue;
        int rc = partition_set_config(t->parts[i], &pc);
        if (rc)
            RL_WARN("%s-%u: config change not applied to the open log: %s", t->name, i,
                    rl_strerror(rc));
    }
}

/* The replicator learns that partition i's replicas or target changed. */
static void meta_moved(struct meta *m, struct meta_topic *t, uint32_t i)
{
    if (!m->replaying && t->parts[i] && m->replicator.moved && partition_replicated(t->parts[i]))
        m->replicator.moved(m->replicator.ctx, t, i, t->parts[i]);
}

/* A replica t holds here is not open; meta_reopen_missing retries it. */
static void meta_note_missing(struct meta *m, struct meta_topic *t)
{
    if (!t->replicas_missing) {
        t->replicas_missing = true;
        t->reopen_tries = 0;
        t->reopen_at_ms = 0;
    }
    m->replicas_missing = true;
}

/* Opens partition i of t that this broker holds (an empty log, or what an earlier try left) and
 * starts its replica when the topic is replicated. Returns 0 or a code with err. */
static int meta_open_held(struct meta *m, struct meta_topic *t, uint32_t i, char *err, size_t cap)
{
    struct plog_config pc;
    config_topic_to_plog(&t->cfg, &pc);
    int rc = partition_open(m->env, m->lim.data_dir, t->name, i, &pc, &t->parts[i], err, cap);
    if (rc) {
        t->parts[i] = NULL;
        return rc;
    }
    if (t->replicas && m->replicator.attach &&
        (rc = m->replicator.attach(m->replicator.ctx, t, i, t->parts[i])) != 0) {
        snprintf(err, cap, "cannot start its replica: %s", rl_strerror(rc));
        partition_delete(t->parts[i]);
        t->parts[i] = NULL;
    }
    return rc;
}

/* This broker is in a move's target: it opens the partition (an empty log, or what an earlier
 * stay left) and starts its replica, which waits outside the group until the leader adds it as
 * a learner. Opening blocks the loop for a directory and an empty segment. */
static void meta_open_moved_in(struct meta *m, struct meta_topic *t, uint32_t i)
{
    char err[400];
    if (meta_open_held(m, t, i, err, sizeof(err)) != 0) {
        RL_ERROR("%s-%u: cannot open the replica moving here: %s (tried again in 1 s)", t->name,
                 i, err);
        meta_note_missing(m, t);
        return;
    }
    RL_INFO("%s-%u: a replica moves here; it joins the group as a learner", t->name, i);
}

/* The decommission marks a REASSIGN changes (checked: room for a new one). */
static void meta_apply_marks(struct meta *m, const struct meta_record *rec)
{
    uint32_t rm = rec->remove_broker, re = rec->recommission_broker;
    if (rm && !meta_broker_decommissioned(m, rm))
        m->decommissioned[m->n_decommissioned++] = rm;
    for (uint32_t i = 0; re && i < m->n_decommissioned; i++) {
        if (m->decommissioned[i] != re)
            continue;
        m->decommissioned[i] = m->decommissioned[--m->n_decommissioned];
        break;
    }
    if (!m->replaying && rm)
        RL_INFO("metadata: broker %u is decommissioned: no replica is placed on it", rm);
    if (!m->replaying && re)
        RL_INFO("metadata: broker %u is recommissioned: placement may pick it again", re);
}

static void meta_apply_reassign(struct meta *m, const struct meta_record *rec)
{
    char err[400];
    if (meta_check_reassign(m, rec, err, sizeof(err))) {
        RL_WARN("metadata: skipping a move of replicas: %s", err);
        return;
    }
    meta_apply_marks(m, rec);
    for (size_t k = 0; k < rec->n_moves; k++) {
        const struct meta_move *mv = &rec->moves[k];
        struct meta_topic *t = meta_find_live(m, mv->topic);
        size_t rf = t->replication_factor;
        if (!t->targets && !(t->targets = calloc(t->partition_count * rf, sizeof(uint32_t)))) {
            RL_ERROR("metadata: out of memory recording the move of %s-%u", t->name,
                     mv->partition);
            continue;
        }
        memcpy(t->targets + mv->partition * rf, mv->replicas, rf * sizeof(uint32_t));
        if (!m->replaying && !t->parts[mv->partition] && meta_holds(m, t, mv->partition))
            meta_open_moved_in(m, t, mv->partition);
        meta_moved(m, t, mv->partition);
    }
}

/* A partition moved off this broker: replication stops, readers are told, and its log is
 * deleted once nothing pins it (meta_reap). */
static void meta_retire(struct meta *m, struct meta_topic *t, uint32_t i)
{
    struct partition *p = t->parts[i];
    t->parts[i] = NULL;
    if (m->replicator.detach && partition_replicated(p))
        m->replicator.detach(m->replicator.ctx, p);
    partition_mark_gone(p);
    if (META_PUSH(&m->retired, &m->n_retired, &m->cap_retired, p)) {
        RL_ERROR("%s-%u: out of memory retiring the replica; its log stays until restart",
                 t->name, i);
        return;
    }
    RL_INFO("%s-%u: its replica moved off this broker; deleting its log", t->name, i);
}

static void meta_apply_reassign_done(struct meta *m, const struct meta_record *rec)
{
    char err[400];
    if (meta_check_reassign_done(m, rec, err, sizeof(err))) {
        RL_WARN("metadata: skipping the end of a move: %s", err);
        return;
    }
    const struct meta_move *mv = &rec->moves[0];
    struct meta_topic *t = meta_find_live(m, mv->topic);
    size_t rf = t->replication_factor;
    memcpy(t->replicas + mv->partition * rf, mv->replicas, rf * sizeof(uint32_t));
    memset(t->targets + mv->partition * rf, 0, rf * sizeof(uint32_t));
    if (t->owners) /* the owner is the preferred replica (what brokers without it name) */
        t->owners[mv->partition] = mv->replicas[0];
    if (!m->replaying)
        RL_INFO("%s-%u: its replicas moved", t->name, mv->partition);
    if (!m->replaying && t->parts[mv->partition] && !meta_holds(m, t, mv->partition))
        meta_retire(m, t, mv->partition);
    else
        meta_moved(m, t, mv->partition);
}

int meta_apply(struct meta *m, const struct meta_record *rec)
{
    switch (rec->kind) {
    case META_RECORD_REASSIGN:
        meta_apply_reassign(m, rec);
        return 0;
    case META_RECORD_REASSIGN_DONE:
        meta_apply_reassign_done(m, rec);
        return 0;
    case META_RECORD_CREATE_TOPIC:
        return meta_apply_create(m, &rec->spec);
    case META_RECORD_DELETE_TOPIC:
        meta_apply_delete(m, rec->name, rec->rollback_incarnation);
        return 0;
    case META_RECORD_ALTER_CONFIGS:
        meta_apply_alter(m, rec->name, rec->configs, rec->n_configs);
        return 0;
    case META_RECORD_PRODUCER_ID_BLOCK:
        if (rec->producer_id_block_end > m->producer_id_block_end)
            m->producer_id_block_end = rec->producer_id_block_end;
        return 0;
    default:
        RL_WARN("metadata: skipping a record of a kind this version does not know");
        return 0;
    }
}

/* --- start-up --------------------------------------------------------------------------------- */

static int meta_replay_one(void *ctx, const uint8_t *payload, uint32_t len)
{
    struct meta *m = ctx;
    struct meta_record_decoded d;
    int rc = meta_record_decode(payload, len, &d);
    if (rc == RL_E_CORRUPT) {
        RL_WARN("metadata log: skipping a record that does not decode (%u bytes)", len);
        return 0;
    }
    if (rc)
        return rc;
    rc = meta_apply(m, &d.rec);
    meta_record_free(&d);
    return rc;
}

struct meta_rm {
    struct io *io;
    const char *dir;
};

static int meta_rm_entry(void *ctx, const char *name)
{
    struct meta_rm *rm = ctx;
    char path[PATH_MAX + 600];
    snprintf(path, sizeof(path), "%s/%s", rm->dir, name);
    int rc = io_path_unlink(rm->io, path);
    if (rc)
        RL_WARN("cannot remove %s: %s", path, rl_strerror(rc));
    return 0;
}

/* Removes the directories of topics whose deletion was recorded but whose logs were not yet
 * deleted when the broker stopped; otherwise a topic created again under the same name would
 * find the old records. A partition directory holds files only. Blocks (runs once, at
 * start-up). */
static void meta_remove_leftovers(struct meta *m)
{
    struct io *io = partition_env_io(m->env);
    for (size_t i = 0; i < m->n_gone; i++) {
        if (meta_find_live(m, m->gone[i].name))
            continue; /* created again after the deletion: the directories are its own */
        for (uint32_t k = 0; k < m->gone[i].partitions; k++) {
            char dir[PATH_MAX + 300];
            if (partition_dir_path(m->lim.data_dir, m->gone[i].name, k, dir, sizeof(dir)) < 0)
                continue;
            struct meta_rm rm = {io, dir};
            int rc = io_dir_list(io, dir, meta_rm_entry, &rm);
            if (rc == -ENOENT || rc == -ENOTDIR)
                continue;
            RL_INFO("removing %s, left over from the deleted topic %s", dir, m->gone[i].name);
            if (rc || (rc = io_dir_remove(io, dir)) != 0)
                RL_WARN("cannot remove %s: %s", dir, rl_strerror(rc));
        }
    }
    free(m->gone);
    m->gone = NULL;
    m->n_gone = m->cap_gone = 0;
}

static void meta_close_partitions(struct meta_topic *t)
{
    /* The replicator was unset (detaching every partition) before meta closes. */
    for (uint32_t k = 0; k < t->partition_count; k++) {
        partition_close(t->parts[k]);
        t->parts[k] = NULL;
    }
}

/* Opens every live topic's partitions, in turn. */
static int meta_open_partitions(struct meta *m, char *err, size_t err_cap)
{
    for (size_t i = 0; i < m->n_live; i++) {
        struct meta_topic *t = m->live[i];
        struct plog_config pc;
        config_topic_to_plog(&t->cfg, &pc);
        for (uint32_t k = 0; k < t->partition_count; k++) {
            if (!meta_holds(m, t, k))
                continue;
            int rc = partition_open(m->env, m->lim.data_dir, t->name, k, &pc, &t->parts[k],
                                    err, err_cap);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static bool meta_topic_pinned(const struct meta_topic *t)
{
    for (uint32_t i = 0; i < t->partition_count; i++)
        if (t->parts[i] && partition_pinned(t->parts[i]))
            return true;
    return false;
}

static void meta_free(struct meta *m)
{
    for (size_t i = 0; i < m->n_live; i++) {
        meta_close_partitions(m->live[i]);
        meta_topic_free(m->live[i]);
    }
    for (size_t i = 0; i < m->n_doomed; i++) {
        /* A log still held is closed instead; the next start removes it (the deletion is
         * recorded). */
        struct meta_topic *t = m->doomed[i];
        bool held = meta_topic_pinned(t);
        for (uint32_t k = 0; k < t->partition_count; k++) {
            if (held)
                partition_close(t->parts[k]);
            else if (t->parts[k])
                partition_delete(t->parts[k]);
        }
        meta_topic_free(t);
    }
    for (size_t i = 0; i < m->n_retired; i++) {
        if (partition_pinned(m->retired[i]))
            partition_close(m->retired[i]); /* the next start leaves the directory alone */
        else
            partition_delete(m->retired[i]);
    }
    free(m->retired);
    while (m->commit_head) {
        struct meta_commit *c = m->commit_head;
        m->commit_head = c->next;
        free(c->payload);
        free(c);
    }
    metalog_close(m->ml);
    free(m->live);
    free(m->doomed);
    free(m->creating);
    free(m->gone);
    free(m);
}

/* Damaged bytes in metadata.log may have held producer-id blocks: ids from a lost block may
 * have been handed out, and handing them out again would make a new producer's batches look
 * like an old one's duplicates. Every record the damage could have held counts as a block of
 * META_DAMAGE_ID_SKIP ids, so ids start past anything it can have reserved. */
static void meta_after_damage(struct meta *m, const struct metalog_stats *ms, const char *path)
{
    if (ms->damaged_bytes == 0)
        return;
    int64_t records = (int64_t)(ms->damaged_bytes / META_MIN_RECORD_BYTES) + 1;
    int64_t from = m->producer_id_block_end;
    m->producer_id_block_end += records * META_DAMAGE_ID_SKIP;
    RL_ERROR("metadata log %s: %llu damaged bytes in %u ranges (see the corruption reports "
             "above); topics created or changed there are lost; producer ids skip from %lld to "
             "%lld in case blocks of ids were recorded there", path,
             (unsigned long long)ms->damaged_bytes, ms->damaged_ranges, (long long)from,
             (long long)m->producer_id_block_end);
}

/* After replay and the removal of leftovers (whose delete records compaction drops): a log
 * holding many records no longer needed is rewritten without them, so starts stay short
 * however many topics came and went. A failure leaves the old log in use. */
static void meta_compact_log(struct meta *m, const struct metalog_stats *ms, const char *path)
{
    if (!m->lim.log_compact_min_dropped || ms->damaged_bytes || ms->damaged_ranges)
        return;
    struct metalog_compact_stats cs;
    int rc = metalog_compact(m->ml, m->lim.log_compact_min_dropped, &cs);
    if (rc) {
        RL_WARN("metadata log %s: compaction failed (%s); the log stays as it was", path,
                rl_strerror(rc));
    } else if (cs.dropped) {
        RL_INFO("metadata log %s compacted: %u records no longer needed dropped, %u kept "
                "(%llu -> %llu bytes)", path, cs.dropped, cs.kept,
                (unsigned long long)cs.bytes_before, (unsigned long long)cs.bytes_after);
        m->log_records = cs.kept;
    }
}

int meta_open(const struct meta_limits *lim, struct partition_env *env, struct bg *bg,
              struct meta **out, char *err, size_t err_cap)
{
    struct meta *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->lim = *lim;
    m->env = env;
    m->bg = bg;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/metadata.log", lim->data_dir);
    struct metalog_stats ms;
    m->replaying = true;
    int rc = metalog_open(partition_env_io(env), path, meta_replay_one, m, &m->ml, &ms);
    m->replaying = false;
    if (rc) {
        snprintf(err, err_cap, "cannot open the metadata log %s: %s", path, rl_strerror(rc));
        meta_free(m);
        return rc;
    }
    meta_after_damage(m, &ms, path);
    m->log_records = ms.records;
    meta_remove_leftovers(m);
    meta_compact_log(m, &ms, path);
    rc = meta_open_partitions(m, err, err_cap);
    if (rc) {
        meta_free(m);
        return rc;
    }
    RL_INFO("metadata: %u records replayed, %zu topics, %u partitions", ms.records, m->n_live,
            m->partitions_total);
    *out = m;
    return 0;
}

void meta_close(struct meta *m)
{
    if (!m)
        return;
    /* Proposals still running (a forced shutdown) finish first: their callbacks touch us. */
    for (uint32_t guard = 0; (m->inflight || m->n_creating || m->commit_inflight) &&
                             guard < 1000000; guard++) {
        bg_drain(m->bg);
        partition_env_settle(m->env);
    }
    meta_free(m);
}

int meta_set_replicator(struct meta *m, const struct meta_replicator *r)
{
    for (size_t i = 0; i < m->n_live; i++)
        meta_detach_topic(m, m->live[i]);
    for (size_t i = 0; i < m->n_doomed; i++)
        meta_detach_topic(m, m->doomed[i]);
    if (!r) {
        memset(&m->replicator, 0, sizeof(m->replicator));
        return 0;
    }
    m->replicator = *r;
    for (size_t i = 0; i < m->n_live; i++) {
        int rc = meta_attach_topic(m, m->live[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* --- maintenance ------------------------------------------------------------------------------ */

static void meta_reap_topic(struct meta *m, struct meta_topic *t)
{
    META_REMOVE(m->doomed, &m->n_doomed, t);
    meta_detach_topic(m, t);
    for (uint32_t k = 0; k < t->partition_count; k++)
        if (t->parts[k])
            partition_delete(t->parts[k]);
    meta_topic_free(t);
}

void meta_reap(struct meta *m)
{
    for (size_t i = 0; i < m->n_retired;) {
        struct partition *p = m->retired[i];
        if (partition_pinned(p)) {
            i++;
            continue;
        }
        META_REMOVE(m->retired, &m->n_retired, p);
        partition_delete(p);
    }
    for (size_t i = 0; i < m->n_doomed;) {
        struct meta_topic *t = m->doomed[i];
        if (meta_topic_pinned(t)) {
            i++;
            continue;
        }
        meta_reap_topic(m, t);
    }
}

/* A creation applied while an earlier topic of the name still waits to be reaped (in a
 * cluster the leader accepts the name once it has reaped it; this broker may not have yet):
 * the old logs go now, so the new ones open in fresh directories (plog_delete renames the old
 * one away first) and the old partition groups leave before the new ones start. */
static void meta_reap_named(struct meta *m, const char *name)
{
    for (size_t i = 0; i < m->n_doomed;) {
        struct meta_topic *t = m->doomed[i];
        if (strcmp(t->name, name)) {
            i++;
            continue;
        }
        if (meta_topic_pinned(t)) {
            RL_WARN("topic %s is created again while its previous logs are still in use; "
                    "they are removed once released", name);
            i++;
            continue;
        }
        meta_reap_topic(m, t);
    }
}

void meta_enforce_retention(struct meta *m, int64_t now_ms)
{
    for (size_t i = 0; i < m->n_live; i++) {
        struct meta_topic *t = m->live[i];
        for (uint32_t k = 0; k < t->partition_count; k++) {
            if (!t->parts[k])
                continue;
            int rc = partition_enforce_retention(t->parts[k], now_ms);
            if (rc > 0)
                RL_INFO("%s-%u: retention deleted %d segments", t->name, k, rc);
        }
    }
}

/* One topic's retry: opens what is missing (within *budget opens). True when none is left. */
static bool meta_reopen_topic(struct meta *m, struct meta_topic *t, uint32_t *budget,
                              int64_t now_ms)
{
    char err[400] = "";
    uint32_t failed = 0, left = 0;
    for (uint32_t i = 0; i < t->partition_count; i++) {
        if (t->parts[i] || !meta_holds(m, t, i))
            continue;
        if (*budget == 0) {
            left++;
            continue;
        }
        (*budget)--;
        if (meta_open_held(m, t, i, err, sizeof(err)) == 0)
            RL_INFO("%s-%u: its replica here is open now", t->name, i);
        else
            failed++;
    }
    if (failed) {
        t->reopen_tries++;
        int64_t wait = 1000ll << (t->reopen_tries < 5 ? t->reopen_tries : 5);
        if (wait > META_REOPEN_MAX_MS)
            wait = META_REOPEN_MAX_MS;
        t->reopen_at_ms = now_ms + wait;
        RL_WARN("topic %s: %u of its replicas on this broker still cannot be opened: %s; next "
                "try in %lld s", t->name, failed, err, (long long)(wait / 1000));
    }
    return failed == 0 && left == 0;
}

void meta_reopen_missing(struct meta *m, int64_t now_ms)
{
    if (!m->replicas_missing || m->replaying)
        return;
    uint32_t budget = META_REOPEN_BUDGET;
    bool any = false;
    for (size_t k = 0; k < m->n_live; k++) {
        struct meta_topic *t = m->live[k];
        if (!t->replicas_missing)
            continue;
        any = true;
        if (t->reopen_at_ms == 0)
            t->reopen_at_ms = now_ms + 1000; /* the first retry, a second after the failure */
        if (now_ms < t->reopen_at_ms)
            continue;
        if (meta_reopen_topic(m, t, &budget, now_ms)) {
            t->replicas_missing = false;
            t->reopen_tries = 0;
            t->reopen_at_ms = 0;
        }
    }
    m->replicas_missing = any;
}

uint32_t meta_replicas_missing(const struct meta *m)
{
    uint32_t n = 0;
    for (size_t k = 0; k < m->n_live; k++) {
        const struct meta_topic *t = m->live[k];
        for (uint32_t i = 0; t->replicas_missing && i < t->partition_count; i++)
            n += !t->parts[i] && meta_holds(m, t, i);
    }
    return n;
}
