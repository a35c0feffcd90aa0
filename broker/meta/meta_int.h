/*
 * meta_int: the structures shared by meta.c (the table, apply, start-up, maintenance) and
 * meta_propose.c (the proposal queue). Nothing outside broker/meta includes this.
 *
 * Invariants:
 *  - A topic name is in at most one of live, creating and doomed.
 *  - partitions_total counts the partitions of live and creating topics (the limit
 *    max.partitions applies to both).
 *  - At most one proposal is in flight (inflight); queued ones wait in order. A proposal is
 *    validated only when it becomes the one in flight, against everything applied before.
 */
#ifndef RL_BROKER_META_INT_H
#define RL_BROKER_META_INT_H

#include "broker/meta/meta.h"
#include "broker/meta/metalog.h"
#include "proto/frame.h"

/* A single broker is a cluster of one; partitions per topic are bounded by the protocol's limit,
 * which libringlog holds too (proto/frame.h). */
#define META_MAX_PARTITIONS_PER_TOPIC FRAME_MAX_PARTITIONS_PER_TOPIC

/* A topic the metadata log deleted during replay, whose directories may still exist (the
 * broker stopped between recording the deletion and deleting the logs). */
struct meta_gone {
    char name[CONFIG_TOPIC_NAME_MAX + 1];
    uint32_t partitions;
};

/* A committed record on its way into metadata.log and the table (cluster mode). */
struct meta_commit {
    struct meta_commit *next;
    uint8_t *payload;             /* NULL: a marker for pr only */
    size_t len;
    struct meta_proposal *pr;
    int append_rc;
    struct meta *m;
    struct bg_job job;
};

/* A topic whose partitions are being created. */
struct meta_creating {
    struct meta_topic *t;
    struct meta *m;
    struct meta_proposal *pr;   /* the proposal waiting for it, or NULL */
    bool deleted;               /* its deletion was applied while its partitions opened */
};

struct meta {
    struct meta_limits lim;
    struct partition_env *env;
    struct bg *bg;
    struct metalog *ml;
    struct meta_topic **live;
    size_t n_live, cap_live;
    struct meta_topic **doomed;   /* deleted, logs not yet deleted */
    size_t n_doomed, cap_doomed;
    struct meta_creating **creating;
    size_t n_creating, cap_creating;
    uint32_t partitions_total;
    bool replaying;               /* start-up: build the table, open logs afterwards */
    bool replicas_missing;        /* some live topic may have replicas_missing set */
    int64_t producer_id_block_end;
    struct meta_gone *gone;       /* replay only */
    size_t n_gone, cap_gone;
    struct meta_proposal *queue_head, *queue_tail, *inflight;
    uint32_t n_proposals;
    uint64_t log_records;         /* records in metadata.log */
    struct meta_committer committer; /* submit NULL: the local metadata log commits */
    struct meta_replicator replicator; /* attach NULL: no partition is replicated */
    struct meta_commit *commit_head, *commit_tail, *commit_inflight;
    uint32_t n_commits;
    struct meta_proposal *applying_pr; /* the proposal of the committed record being applied */
    bool commit_failed;           /* metadata.log refused a committed record: applying stopped */
    struct partition **retired;   /* moved off this broker: deleted once unpinned (meta_reap) */
    size_t n_retired, cap_retired;
    uint32_t decommissioned[META_MAX_DECOMMISSIONED]; /* brokers placement skips (unordered) */
    uint32_t n_decommissioned;
};

/* A metadata record is at least its 12-byte header; each one damaged bytes could have held is
 * assumed to have reserved this many producer ids (meta_after_damage). */
#define META_MIN_RECORD_BYTES 12u
#define META_DAMAGE_ID_SKIP (1ll << 20)

/* meta.c, for meta_propose.c */
int meta_validate(const struct meta *m, const struct meta_record *rec, struct topic_config *cfg,
                  char *err, size_t err_cap);
/* Fills configs (CONFIG_TOPIC_KEY_COUNT room) with the explicitly set keys of cfg. */
size_t meta_set_configs(const struct topic_config *cfg, struct meta_config *configs);
/* Whether a topic is being created for proposal pr. */
bool meta_creating_for(const struct meta *m, const struct meta_proposal *pr);
/* Loop work of the committed-record queue (cluster mode). */
void meta_process_commits(struct meta *m);
/* The proposal waiting for the topic's creation, when the creation ends. */
void meta_proposal_created(struct meta *m, struct meta_proposal *pr, int rc, const char *err);

#endif
