/*
 * topics: see topics.h. The table is a plain array scanned by name: topic lookups happen once
 * per topic per request, not per record, and max.topics bounds the scan.
 */
#include "broker/meta/topics.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/meta/metalog.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/plog.h"

/* A single broker is a cluster of one; partitions per topic are bounded too. */
#define TOPICS_MAX_PARTITIONS_PER_TOPIC 100000

/* A topic the metadata log deleted during replay, whose directories may still exist (the
 * broker stopped between recording the deletion and deleting the logs). */
struct topics_gone {
    char name[CONFIG_TOPIC_NAME_MAX + 1];
    uint32_t partitions;
};

struct topics {
    struct broker_config cfg;
    struct partition_env *env;
    struct metalog *ml;
    struct topic **live;
    size_t n_live, cap_live;
    struct topic **doomed;   /* deleted, logs not yet deleted */
    size_t n_doomed, cap_doomed;
    uint32_t partitions_total;
    bool replaying;          /* metadata replay: build the table, open logs afterwards */
    int64_t producer_id_block_end; /* ids below were handed out or reserved */
    struct topics_gone *gone; /* replay only */
    size_t n_gone, cap_gone;
};

/* --- table helpers ---------------------------------------------------------------------------- */

static int topics_push(struct topic ***arr, size_t *n, size_t *cap, struct topic *t)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct topic **na = realloc(*arr, nc * sizeof(*na));
        if (!na)
            return -ENOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = t;
    return 0;
}

static void topics_remove_at(struct topic **arr, size_t *n, size_t i)
{
    memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof(*arr));
    (*n)--;
}

static void topic_free(struct topic *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_split_keys; i++)
        free(t->split_keys[i].data);
    free(t->split_keys);
    free(t->parts);
    free(t);
}

size_t topics_count(const struct topics *tp)
{
    return tp->n_live;
}

struct topic *topics_at(const struct topics *tp, size_t i)
{
    return i < tp->n_live ? tp->live[i] : NULL;
}

struct topic *topics_find(const struct topics *tp, const char *name)
{
    for (size_t i = 0; i < tp->n_live; i++)
        if (!strcmp(tp->live[i]->name, name))
            return tp->live[i];
    return NULL;
}

static struct topic *topics_find_doomed(const struct topics *tp, const char *name)
{
    for (size_t i = 0; i < tp->n_doomed; i++)
        if (!strcmp(tp->doomed[i]->name, name))
            return tp->doomed[i];
    return NULL;
}

struct partition *topics_partition(const struct topics *tp, const char *name, uint32_t index,
                                   int *err)
{
    struct topic *t = topics_find(tp, name);
    if (!t) {
        *err = RL_E_UNKNOWN_TOPIC;
        return NULL;
    }
    if (index >= t->partition_count) {
        *err = RL_E_UNKNOWN_PARTITION;
        return NULL;
    }
    *err = 0;
    return t->parts[index];
}

/* --- partitions ------------------------------------------------------------------------------- */

/* Opens the logs of t; on failure closes those opened and returns the code. */
static int topic_open_logs(struct topics *tp, struct topic *t, char *err, size_t err_cap)
{
    struct plog_config pc;
    config_topic_to_plog(&t->cfg, &pc);
    for (uint32_t i = 0; i < t->partition_count; i++) {
        int rc = partition_open(tp->env, tp->cfg.data_dir, t->name, i, &pc, &t->parts[i], err,
                                err_cap);
        if (rc) {
            for (uint32_t j = 0; j < i; j++) {
                partition_close(t->parts[j]);
                t->parts[j] = NULL;
            }
            return rc;
        }
    }
    return 0;
}

/* --- validation ------------------------------------------------------------------------------- */

static int topics_check_splits(const Ringlog__TopicSpec *s, char *err, size_t err_cap)
{
    if (s->partitioner == RINGLOG__PARTITIONER__PARTITIONER_HASH) {
        if (s->n_split_keys) {
            snprintf(err, err_cap, "split keys are only for the range partitioner");
            return RL_E_INVALID_SPLITS;
        }
        return 0;
    }
    if (s->partitioner != RINGLOG__PARTITIONER__PARTITIONER_RANGE) {
        snprintf(err, err_cap, "unknown partitioner %d; use hash or range", (int)s->partitioner);
        return RL_E_INVALID_REQUEST;
    }
    if (s->n_split_keys != (size_t)s->partitions - 1) {
        snprintf(err, err_cap, "range partitioning over %d partitions needs %d split keys, "
                 "got %zu", s->partitions, s->partitions - 1, s->n_split_keys);
        return RL_E_INVALID_SPLITS;
    }
    for (size_t i = 1; i < s->n_split_keys; i++) {
        const ProtobufCBinaryData *a = &s->split_keys[i - 1], *b = &s->split_keys[i];
        size_t m = a->len < b->len ? a->len : b->len;
        int c = m ? memcmp(a->data, b->data, m) : 0;
        if (c > 0 || (c == 0 && a->len >= b->len)) {
            snprintf(err, err_cap, "split keys must be sorted and distinct (key %zu is not "
                     "greater than key %zu)", i, i - 1);
            return RL_E_INVALID_SPLITS;
        }
    }
    return 0;
}

static int topics_check_spec(struct topics *tp, const Ringlog__TopicSpec *s,
                             struct topic_config *cfg, char *err, size_t err_cap)
{
    int rc = config_topic_name_check(s->name, err, err_cap);
    if (rc)
        return rc;
    if (s->partitions <= 0 || s->partitions > TOPICS_MAX_PARTITIONS_PER_TOPIC) {
        snprintf(err, err_cap, "partition count must be between 1 and %d, got %d",
                 TOPICS_MAX_PARTITIONS_PER_TOPIC, s->partitions);
        return RL_E_INVALID_PARTITIONS;
    }
    if (s->replication_factor != 0 && s->replication_factor != 1) {
        snprintf(err, err_cap, "replication factor %d is not possible: this cluster has one "
                 "broker; use 1", s->replication_factor);
        return RL_E_INVALID_REPLICATION;
    }
    rc = topics_check_splits(s, err, err_cap);
    if (rc)
        return rc;
    *cfg = tp->cfg.topic_defaults;
    cfg->set_mask = 0;
    for (size_t i = 0; i < s->n_configs; i++) {
        rc = config_topic_set(cfg, s->configs[i]->key, s->configs[i]->value, err, err_cap);
        if (rc)
            return rc;
    }
    if (tp->replaying)
        return 0;
    if (topics_find(tp, s->name)) {
        snprintf(err, err_cap, "topic \"%s\" already exists", s->name);
        return RL_E_TOPIC_EXISTS;
    }
    if (topics_find_doomed(tp, s->name)) {
        snprintf(err, err_cap, "topic \"%s\" is still being deleted; retry shortly", s->name);
        return RL_E_TOPIC_EXISTS;
    }
    if (tp->n_live >= tp->cfg.max_topics) {
        snprintf(err, err_cap, "the broker holds its maximum of %u topics (max.topics)",
                 tp->cfg.max_topics);
        return RL_E_LIMIT;
    }
    if (tp->partitions_total + (uint32_t)s->partitions > tp->cfg.max_partitions) {
        snprintf(err, err_cap, "%d more partitions would exceed the broker's maximum of %u "
                 "(max.partitions; %u in use)", s->partitions, tp->cfg.max_partitions,
                 tp->partitions_total);
        return RL_E_LIMIT;
    }
    return 0;
}

/* Builds the in-memory topic from a checked spec (no logs opened). */
static struct topic *topic_build(const Ringlog__TopicSpec *s, const struct topic_config *cfg)
{
    struct topic *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    snprintf(t->name, sizeof(t->name), "%s", s->name);
    t->partition_count = (uint32_t)s->partitions;
    t->partitioner = s->partitioner;
    t->cfg = *cfg;
    t->max_message_bytes = config_topic_max_message_bytes(cfg);
    t->parts = calloc(t->partition_count, sizeof(*t->parts));
    t->split_keys = s->n_split_keys ? calloc(s->n_split_keys, sizeof(*t->split_keys)) : NULL;
    if (!t->parts || (s->n_split_keys && !t->split_keys))
        goto fail;
    for (size_t i = 0; i < s->n_split_keys; i++) {
        t->split_keys[i].len = s->split_keys[i].len;
        t->split_keys[i].data = malloc(s->split_keys[i].len + 1);
        if (!t->split_keys[i].data)
            goto fail;
        t->n_split_keys = i + 1;
        if (s->split_keys[i].len)
            memcpy(t->split_keys[i].data, s->split_keys[i].data, s->split_keys[i].len);
    }
    return t;
fail:
    topic_free(t);
    return NULL;
}

/* --- metadata records ------------------------------------------------------------------------- */

static int topics_persist(struct topics *tp, const Ringlog__MetaRecord *rec)
{
    size_t n = ringlog__meta_record__get_packed_size(rec);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return -ENOMEM;
    ringlog__meta_record__pack(rec, buf);
    int rc = metalog_append(tp->ml, buf, (uint32_t)n);
    free(buf);
    return rc;
}

/* Fills entries/ptrs (CONFIG_TOPIC_KEY_COUNT room) with the explicitly set keys of cfg. */
static size_t topics_set_entries(const struct topic_config *cfg, Ringlog__ConfigEntry *entries,
                                 Ringlog__ConfigEntry **ptrs)
{
    size_t n = 0;
    for (int k = 0; k < CONFIG_TOPIC_KEY_COUNT; k++) {
        if (!(cfg->set_mask & (1u << k)))
            continue;
        ringlog__config_entry__init(&entries[n]);
        entries[n].key = (char *)config_topic_key_name((enum config_topic_key)k);
        entries[n].value = (char *)cfg->values[k];
        ptrs[n] = &entries[n];
        n++;
    }
    return n;
}

/* --- create / delete / alter ------------------------------------------------------------------ */

static int topics_add(struct topics *tp, const Ringlog__TopicSpec *s,
                      const struct topic_config *cfg, char *err, size_t err_cap)
{
    struct topic *t = topic_build(s, cfg);
    if (!t || topics_push(&tp->live, &tp->n_live, &tp->cap_live, t)) {
        topic_free(t);
        snprintf(err, err_cap, "out of memory creating topic \"%s\"", s->name);
        return -ENOMEM;
    }
    tp->partitions_total += t->partition_count;
    return 0;
}

int topics_create(struct topics *tp, const Ringlog__TopicSpec *spec, bool validate_only,
                  char *err, size_t err_cap)
{
    struct topic_config cfg;
    int rc = topics_check_spec(tp, spec, &cfg, err, err_cap);
    if (rc || validate_only)
        return rc;
    rc = topics_add(tp, spec, &cfg, err, err_cap);
    if (rc)
        return rc;
    struct topic *t = tp->live[tp->n_live - 1];
    /* Logs first, then the durable record: a crash in between leaves empty directories the
     * next start ignores, never a recorded topic without logs. */
    rc = topic_open_logs(tp, t, err, err_cap);
    if (rc)
        goto undo;
    Ringlog__ConfigEntry entries[CONFIG_TOPIC_KEY_COUNT], *ptrs[CONFIG_TOPIC_KEY_COUNT];
    Ringlog__TopicSpec rec_spec = *spec;
    rec_spec.replication_factor = 1;
    rec_spec.n_configs = topics_set_entries(&cfg, entries, ptrs);
    rec_spec.configs = ptrs;
    Ringlog__MetaRecord rec = RINGLOG__META_RECORD__INIT;
    rec.body_case = RINGLOG__META_RECORD__BODY_CREATE_TOPIC;
    rec.create_topic = &rec_spec;
    rc = topics_persist(tp, &rec);
    if (rc) {
        snprintf(err, err_cap, "cannot record topic \"%s\" in the metadata log: %s",
                 spec->name, rl_strerror(rc));
        for (uint32_t i = 0; i < t->partition_count; i++)
            partition_delete(t->parts[i]);
        goto undo;
    }
    RL_INFO("created topic %s with %u partitions", t->name, t->partition_count);
    return 0;
undo:
    tp->partitions_total -= t->partition_count;
    tp->n_live--;
    topic_free(t);
    return rc;
}

/* Takes t out of the live table; its logs stay open until reaped. */
static void topics_unlink(struct topics *tp, struct topic *t)
{
    for (size_t i = 0; i < tp->n_live; i++) {
        if (tp->live[i] == t) {
            topics_remove_at(tp->live, &tp->n_live, i);
            break;
        }
    }
    tp->partitions_total -= t->partition_count;
    t->deleted = true;
    for (uint32_t i = 0; i < t->partition_count; i++)
        if (t->parts[i])
            partition_mark_gone(t->parts[i]);
}

static void topics_note_gone(struct topics *tp, const struct topic *t)
{
    if (tp->n_gone == tp->cap_gone) {
        size_t nc = tp->cap_gone ? tp->cap_gone * 2 : 8;
        struct topics_gone *ng = realloc(tp->gone, nc * sizeof(*ng));
        if (!ng)
            return; /* only leftover directories are at stake, and the next start retries */
        tp->gone = ng;
        tp->cap_gone = nc;
    }
    snprintf(tp->gone[tp->n_gone].name, sizeof(tp->gone[0].name), "%s", t->name);
    tp->gone[tp->n_gone].partitions = t->partition_count;
    tp->n_gone++;
}

static int topics_rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type == FTW_DP ? rmdir(path) : unlink(path))
        RL_WARN("cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* Removes the directories of topics whose deletion was recorded but whose logs were not yet
 * deleted when the broker stopped; otherwise a topic created again under the same name would
 * find the old records. Blocks (runs once, at start-up). */
static void topics_remove_leftovers(struct topics *tp)
{
    for (size_t i = 0; i < tp->n_gone; i++) {
        if (topics_find(tp, tp->gone[i].name))
            continue; /* created again after the deletion: the directories are its own */
        for (uint32_t k = 0; k < tp->gone[i].partitions; k++) {
            char dir[PATH_MAX + 300];
            struct stat sb;
            partition_dir_path(tp->cfg.data_dir, tp->gone[i].name, k, dir, sizeof(dir));
            if (stat(dir, &sb) || !S_ISDIR(sb.st_mode))
                continue;
            RL_INFO("removing %s, left over from the deleted topic %s", dir, tp->gone[i].name);
            nftw(dir, topics_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        }
    }
    free(tp->gone);
    tp->gone = NULL;
    tp->n_gone = tp->cap_gone = 0;
}

int topics_delete(struct topics *tp, const char *name, char *err, size_t err_cap)
{
    struct topic *t = topics_find(tp, name);
    if (!t) {
        snprintf(err, err_cap, "topic \"%s\" does not exist", name);
        return RL_E_UNKNOWN_TOPIC;
    }
    if (!tp->replaying) {
        Ringlog__MetaRecord rec = RINGLOG__META_RECORD__INIT;
        rec.body_case = RINGLOG__META_RECORD__BODY_DELETE_TOPIC;
        rec.delete_topic = t->name;
        int rc = topics_persist(tp, &rec);
        if (rc) {
            snprintf(err, err_cap, "cannot record the deletion of \"%s\": %s", name,
                     rl_strerror(rc));
            return rc;
        }
    }
    topics_unlink(tp, t);
    if (tp->replaying)
        topics_note_gone(tp, t);
    if (tp->replaying || topics_push(&tp->doomed, &tp->n_doomed, &tp->cap_doomed, t)) {
        /* Replay: no logs were opened. Out of memory: drop logs now (nothing pins them yet
         * only if no request holds them; the reap path is the careful one). */
        if (!tp->replaying)
            for (uint32_t i = 0; i < t->partition_count; i++)
                partition_delete(t->parts[i]);
        topic_free(t);
    }
    RL_INFO("deleted topic %s", name);
    return 0;
}

int topics_alter(struct topics *tp, const char *name, Ringlog__ConfigEntry *const *entries,
                 size_t n, bool validate_only, char *err, size_t err_cap)
{
    struct topic *t = topics_find(tp, name);
    if (!t) {
        snprintf(err, err_cap, "topic \"%s\" does not exist", name);
        return RL_E_UNKNOWN_TOPIC;
    }
    struct topic_config cfg = t->cfg;
    for (size_t i = 0; i < n; i++) {
        int rc = config_topic_set(&cfg, entries[i]->key, entries[i]->value, err, err_cap);
        if (rc)
            return rc;
    }
    if (validate_only)
        return 0;
    if (!tp->replaying) {
        Ringlog__ConfigEntry ents[CONFIG_TOPIC_KEY_COUNT], *ptrs[CONFIG_TOPIC_KEY_COUNT];
        Ringlog__TopicConfigs tc = RINGLOG__TOPIC_CONFIGS__INIT;
        tc.name = t->name;
        tc.n_configs = topics_set_entries(&cfg, ents, ptrs);
        tc.configs = ptrs;
        Ringlog__MetaRecord rec = RINGLOG__META_RECORD__INIT;
        rec.body_case = RINGLOG__META_RECORD__BODY_ALTER_CONFIGS;
        rec.alter_configs = &tc;
        int rc = topics_persist(tp, &rec);
        if (rc) {
            snprintf(err, err_cap, "cannot record the config change: %s", rl_strerror(rc));
            return rc;
        }
    }
    t->cfg = cfg;
    t->max_message_bytes = config_topic_max_message_bytes(&cfg);
    if (!tp->replaying) {
        struct plog_config pc;
        config_topic_to_plog(&cfg, &pc);
        for (uint32_t i = 0; i < t->partition_count; i++) {
            int rc = partition_set_config(t->parts[i], &pc);
            if (rc)
                RL_WARN("%s-%u: config change not applied to the open log: %s", t->name, i,
                        rl_strerror(rc));
        }
    }
    return 0;
}

int64_t topics_producer_id_block_end(const struct topics *tp)
{
    return tp->producer_id_block_end;
}

int topics_reserve_producer_ids(struct topics *tp, int64_t block_end)
{
    if (block_end <= tp->producer_id_block_end)
        return RL_E_INVALID_ARGUMENT;
    Ringlog__MetaRecord rec = RINGLOG__META_RECORD__INIT;
    rec.body_case = RINGLOG__META_RECORD__BODY_PRODUCER_ID_BLOCK_END;
    rec.producer_id_block_end = block_end;
    int rc = topics_persist(tp, &rec);
    if (rc == 0)
        tp->producer_id_block_end = block_end;
    return rc;
}

/* --- open / close / maintenance --------------------------------------------------------------- */

static int topics_replay_one(void *ctx, const uint8_t *payload, uint32_t len)
{
    struct topics *tp = ctx;
    char err[512];
    Ringlog__MetaRecord *rec = ringlog__meta_record__unpack(NULL, len, payload);
    if (!rec) {
        RL_WARN("metadata log: skipping a record that does not decode (%u bytes)", len);
        return 0;
    }
    int rc = 0;
    struct topic_config cfg;
    switch (rec->body_case) {
    case RINGLOG__META_RECORD__BODY_CREATE_TOPIC:
        if (topics_find(tp, rec->create_topic->name)) {
            RL_WARN("metadata log: topic %s created twice; keeping the first",
                    rec->create_topic->name);
            break;
        }
        rc = topics_check_spec(tp, rec->create_topic, &cfg, err, sizeof(err));
        if (rc) {
            RL_WARN("metadata log: skipping topic %s: %s", rec->create_topic->name, err);
            rc = 0;
            break;
        }
        rc = topics_add(tp, rec->create_topic, &cfg, err, sizeof(err));
        break;
    case RINGLOG__META_RECORD__BODY_DELETE_TOPIC:
        topics_delete(tp, rec->delete_topic, err, sizeof(err));
        break;
    case RINGLOG__META_RECORD__BODY_PRODUCER_ID_BLOCK_END:
        if (rec->producer_id_block_end > tp->producer_id_block_end)
            tp->producer_id_block_end = rec->producer_id_block_end;
        break;
    case RINGLOG__META_RECORD__BODY_ALTER_CONFIGS:
        if (topics_alter(tp, rec->alter_configs->name, rec->alter_configs->configs,
                         rec->alter_configs->n_configs, false, err, sizeof(err)))
            RL_WARN("metadata log: skipping a config change of %s: %s",
                    rec->alter_configs->name, err);
        break;
    default:
        RL_WARN("metadata log: skipping a record of unknown kind %d", (int)rec->body_case);
        break;
    }
    ringlog__meta_record__free_unpacked(rec, NULL);
    return rc;
}

int topics_open(const struct broker_config *cfg, struct partition_env *env, struct topics **out,
                char *err, size_t err_cap)
{
    struct topics *tp = calloc(1, sizeof(*tp));
    if (!tp)
        return -ENOMEM;
    tp->cfg = *cfg;
    tp->env = env;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/metadata.log", cfg->data_dir);
    struct metalog_stats ms;
    tp->replaying = true;
    int rc = metalog_open(path, topics_replay_one, tp, &tp->ml, &ms);
    tp->replaying = false;
    if (rc) {
        snprintf(err, err_cap, "cannot open the metadata log %s: %s", path, rl_strerror(rc));
        free(tp->gone);
        goto fail;
    }
    topics_remove_leftovers(tp);
    for (size_t i = 0; i < tp->n_live; i++) {
        rc = topic_open_logs(tp, tp->live[i], err, err_cap);
        if (rc) {
            for (size_t j = 0; j < i; j++)
                for (uint32_t k = 0; k < tp->live[j]->partition_count; k++)
                    partition_close(tp->live[j]->parts[k]);
            metalog_close(tp->ml);
            goto fail;
        }
    }
    RL_INFO("metadata: %u records replayed, %zu topics, %u partitions", ms.records, tp->n_live,
            tp->partitions_total);
    *out = tp;
    return 0;
fail:
    for (size_t i = 0; i < tp->n_live; i++)
        topic_free(tp->live[i]);
    free(tp->live);
    free(tp);
    return rc;
}

static bool topic_pinned(const struct topic *t)
{
    for (uint32_t i = 0; i < t->partition_count; i++)
        if (partition_pinned(t->parts[i]))
            return true;
    return false;
}

void topics_reap(struct topics *tp)
{
    for (size_t i = 0; i < tp->n_doomed;) {
        struct topic *t = tp->doomed[i];
        if (topic_pinned(t)) {
            i++;
            continue;
        }
        topics_remove_at(tp->doomed, &tp->n_doomed, i);
        for (uint32_t k = 0; k < t->partition_count; k++)
            partition_delete(t->parts[k]);
        topic_free(t);
    }
}

void topics_enforce_retention(struct topics *tp, int64_t now_ms)
{
    for (size_t i = 0; i < tp->n_live; i++) {
        struct topic *t = tp->live[i];
        for (uint32_t k = 0; k < t->partition_count; k++) {
            int rc = partition_enforce_retention(t->parts[k], now_ms);
            if (rc > 0)
                RL_INFO("%s-%u: retention deleted %d segments", t->name, k, rc);
        }
    }
}

void topics_close(struct topics *tp)
{
    if (!tp)
        return;
    for (size_t i = 0; i < tp->n_doomed; i++) {
        for (uint32_t k = 0; k < tp->doomed[i]->partition_count; k++)
            partition_delete(tp->doomed[i]->parts[k]);
        topic_free(tp->doomed[i]);
    }
    for (size_t i = 0; i < tp->n_live; i++) {
        for (uint32_t k = 0; k < tp->live[i]->partition_count; k++)
            partition_close(tp->live[i]->parts[k]);
        topic_free(tp->live[i]);
    }
    metalog_close(tp->ml);
    free(tp->live);
    free(tp->doomed);
    free(tp);
}
