/*
 * meta_propose: the proposal queue (see meta.h). One proposal at a time:
 *
 *   meta_process (loop)  validate against the state -> encode the record (as stored: a create
 *                        keeps only the keys set explicitly) -> bg job
 *   bg thread            metalog_append: write + fdatasync (the record is committed)
 *   meta_appended (loop) decode the committed bytes and meta_apply them (exactly what a replay
 *                        or a controller would apply) -> done, or for a create, done once its
 *                        partitions are open (meta_proposal_created)
 *
 * A create whose partitions cannot be created is rolled back: its deletion is recorded too, so
 * a restart does not bring it back, and the proposal reports the original error.
 */
#include "broker/meta/meta_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

static void meta_proposal_finish(struct meta *m, struct meta_proposal *pr)
{
    RL_ASSERT(m->inflight == pr);
    m->inflight = NULL;
    m->n_proposals--;
    free(pr->payload);
    pr->payload = NULL;
    pr->done(pr);
}

static void meta_proposal_fail(struct meta *m, struct meta_proposal *pr, int rc, const char *why)
{
    pr->rc = rc;
    if (why)
        snprintf(pr->msg, sizeof(pr->msg), "%s", why);
    meta_proposal_finish(m, pr);
}

static struct meta_proposal *meta_job_proposal(struct bg_job *j)
{
    return (struct meta_proposal *)((char *)j - offsetof(struct meta_proposal, job));
}

static void meta_append_run(struct bg_job *j)
{
    struct meta_proposal *pr = meta_job_proposal(j);
    struct meta *m = pr->owner;
    pr->append_rc = metalog_append(m->ml, pr->payload, (uint32_t)pr->payload_len);
}

static void meta_appended(struct bg_job *j);

/* Encodes rec and hands its append to the bg thread. */
static int meta_start_append(struct meta *m, struct meta_proposal *pr,
                             const struct meta_record *rec)
{
    free(pr->payload);
    pr->payload = NULL;
    int rc = meta_record_encode(rec, &pr->payload, &pr->payload_len);
    if (rc)
        return rc;
    if (pr->payload_len > METALOG_MAX_RECORD_BYTES)
        return RL_E_INVALID_ARGUMENT;
    pr->owner = m;
    pr->job.run = meta_append_run;
    pr->job.done = meta_appended;
    return bg_submit(m->bg, &pr->job);
}

/* Why a committed change could not be recorded, as each admin request says it. */
static void meta_record_failed(const struct meta_record *rec, int rc, char *out, size_t cap)
{
    switch (rec->kind) {
    case META_RECORD_CREATE_TOPIC:
        snprintf(out, cap, "cannot record topic \"%s\" in the metadata log: %s",
                 rec->spec.name, rl_strerror(rc));
        break;
    case META_RECORD_DELETE_TOPIC:
        snprintf(out, cap, "cannot record the deletion of \"%s\": %s", rec->name,
                 rl_strerror(rc));
        break;
    case META_RECORD_ALTER_CONFIGS:
        snprintf(out, cap, "cannot record the config change: %s", rl_strerror(rc));
        break;
    case META_RECORD_REASSIGN:
    case META_RECORD_REASSIGN_DONE:
        snprintf(out, cap, "cannot record the move of replicas: %s", rl_strerror(rc));
        break;
    default:
        snprintf(out, cap, "cannot record a block of producer ids in the metadata log: %s",
                 rl_strerror(rc));
        break;
    }
}

/* The record as stored: a create with its replication factor (1 on a single broker) and only the explicitly set keys,
 * an alter with every explicitly set key after the change. */
static int meta_proposal_record(struct meta *m, struct meta_proposal *pr)
{
    struct topic_config cfg;
    struct meta_config set[CONFIG_TOPIC_KEY_COUNT];
    int rc = meta_validate(m, &pr->rec, &cfg, pr->msg, sizeof(pr->msg));
    if (rc)
        return rc;
    struct meta_record rec = pr->rec;
    if (rec.kind == META_RECORD_CREATE_TOPIC) {
        /* A cluster keeps the factor (the controller places that many replicas); an internal
         * topic's 0 lets the controller choose (min(3, live brokers)). */
        if (!m->committer.submit ||
            (rec.spec.replication_factor < 1 && !meta_topic_internal(rec.spec.name)))
            rec.spec.replication_factor = 1;
        rec.spec.n_configs = meta_set_configs(&cfg, set);
        rec.spec.configs = set;
    } else if (rec.kind == META_RECORD_ALTER_CONFIGS) {
        rec.n_configs = meta_set_configs(&cfg, set);
        rec.configs = set;
    }
    if (m->committer.submit) {
        free(pr->payload);
        pr->payload = NULL;
        rc = meta_record_encode(&rec, &pr->payload, &pr->payload_len);
        if (rc == 0 && pr->payload_len > METALOG_MAX_RECORD_BYTES)
            rc = RL_E_INVALID_ARGUMENT;
        if (rc == 0) {
            pr->submitted = true;
            m->committer.submit(m->committer.ctx, pr, pr->payload, pr->payload_len);
            return 0;
        }
    } else {
        rc = meta_start_append(m, pr, &rec);
    }
    if (rc)
        meta_record_failed(&pr->rec, rc, pr->msg, sizeof(pr->msg));
    return rc;
}

static void meta_appended(struct bg_job *j)
{
    struct meta_proposal *pr = meta_job_proposal(j);
    struct meta *m = pr->owner;
    char why[sizeof(pr->msg)];
    if (pr->rolling_back) {
        if (pr->append_rc)
            RL_ERROR("metadata: cannot record the rollback of topic %s: %s",
                     pr->rec.spec.name, rl_strerror(pr->append_rc));
        return meta_proposal_finish(m, pr); /* rc and msg hold the creation's failure */
    }
    if (pr->append_rc) {
        meta_record_failed(&pr->rec, pr->append_rc, why, sizeof(why));
        return meta_proposal_fail(m, pr, pr->append_rc, why);
    }
    m->log_records++;
    /* Apply what was committed, decoded as a replay would see it. */
    struct meta_record_decoded d;
    int rc = meta_record_decode(pr->payload, pr->payload_len, &d);
    if (rc == 0) {
        rc = meta_apply(m, &d.rec);
        meta_record_free(&d);
    }
    if (rc)
        return meta_proposal_fail(m, pr, rc, "cannot apply the change (out of memory)");
    if (pr->rec.kind != META_RECORD_CREATE_TOPIC)
        return meta_proposal_finish(m, pr);
    /* A create ends in meta_proposal_created, once its partitions are open; unless applying
     * it created nothing (it contradicted the state), which validation rules out. */
    if (!meta_creating_for(m, pr))
        return meta_proposal_fail(m, pr, RL_E_INTERNAL, "the recorded topic was not applied");
}

/* A cluster: the creation is in the controller's log, so its undo goes there too (every broker
 * deletes that incarnation, even one still opening it); the proposal ends with the creation's
 * error once the undo is committed or refused. */
static void meta_rollback_submit(struct meta *m, struct meta_proposal *pr)
{
    pr->rolling_back = true;
    struct meta_record del = {.kind = META_RECORD_DELETE_TOPIC, .name = pr->rec.spec.name,
                              .rollback_incarnation = pr->failed_incarnation};
    free(pr->payload);
    pr->payload = NULL;
    int rc = pr->failed_incarnation ? meta_record_encode(&del, &pr->payload, &pr->payload_len)
                                    : RL_E_INVALID_ARGUMENT; /* a record without one */
    if (rc) {
        RL_ERROR("metadata: cannot propose the undo of topic %s's creation: %s",
                 pr->rec.spec.name, rl_strerror(rc));
        return meta_proposal_finish(m, pr); /* the controller's log keeps the topic */
    }
    RL_WARN("metadata: topic %s could not be created here; proposing its deletion",
            pr->rec.spec.name);
    pr->submitted = true;
    m->committer.submit(m->committer.ctx, pr, pr->payload, pr->payload_len);
}

void meta_proposal_created(struct meta *m, struct meta_proposal *pr, int rc, const char *err)
{
    if (rc == 0)
        return meta_proposal_finish(m, pr);
    pr->rc = rc;
    snprintf(pr->msg, sizeof(pr->msg), "%s", err);
    if (m->committer.submit)
        return meta_rollback_submit(m, pr);
    pr->rolling_back = true;
    struct meta_record del = {.kind = META_RECORD_DELETE_TOPIC, .name = pr->rec.spec.name};
    int arc = meta_start_append(m, pr, &del);
    if (arc) {
        RL_ERROR("metadata: cannot record the rollback of topic %s: %s", pr->rec.spec.name,
                 rl_strerror(arc));
        meta_proposal_finish(m, pr);
    }
}

static void meta_enqueue(struct meta *m, struct meta_proposal *pr)
{
    pr->rc = 0;
    pr->msg[0] = 0;
    pr->next = NULL;
    pr->payload = NULL;
    pr->rolling_back = false;
    pr->submitted = false;
    if (m->queue_tail)
        m->queue_tail->next = pr;
    else
        m->queue_head = pr;
    m->queue_tail = pr;
    m->n_proposals++;
}

void meta_process(struct meta *m)
{
    meta_process_commits(m);
    for (uint32_t guard = 0; !m->inflight && m->queue_head && guard < 100000; guard++) {
        struct meta_proposal *pr = m->queue_head;
        m->queue_head = pr->next;
        if (!m->queue_head)
            m->queue_tail = NULL;
        m->inflight = pr;
        int rc = meta_proposal_record(m, pr);
        if (rc) {
            pr->rc = rc;
            meta_proposal_finish(m, pr);
        }
    }
}

void meta_propose_create(struct meta *m, struct meta_proposal *pr,
                         const struct meta_topic_spec *spec)
{
    pr->rec = (struct meta_record){.kind = META_RECORD_CREATE_TOPIC, .spec = *spec};
    meta_enqueue(m, pr);
}

void meta_propose_delete(struct meta *m, struct meta_proposal *pr, const char *name)
{
    pr->rec = (struct meta_record){.kind = META_RECORD_DELETE_TOPIC, .name = name};
    meta_enqueue(m, pr);
}

void meta_propose_alter(struct meta *m, struct meta_proposal *pr, const char *name,
                        const struct meta_config *configs, size_t n)
{
    pr->rec = (struct meta_record){.kind = META_RECORD_ALTER_CONFIGS, .name = name,
                                   .n_configs = n, .configs = configs};
    meta_enqueue(m, pr);
}

void meta_propose_producer_ids(struct meta *m, struct meta_proposal *pr, int64_t block_end)
{
    pr->rec = (struct meta_record){.kind = META_RECORD_PRODUCER_ID_BLOCK,
                                   .producer_id_block_end = block_end};
    meta_enqueue(m, pr);
}

void meta_propose_reassign(struct meta *m, struct meta_proposal *pr, const struct meta_move *moves,
                           size_t n)
{
    pr->rec = (struct meta_record){.kind = META_RECORD_REASSIGN, .n_moves = n, .moves = moves};
    meta_enqueue(m, pr);
}

void meta_propose_replica_change(struct meta *m, struct meta_proposal *pr,
                                 const struct meta_record *rec)
{
    pr->rec = *rec;
    pr->rec.kind = META_RECORD_REASSIGN;
    meta_enqueue(m, pr);
}

void meta_propose_reassign_done(struct meta *m, struct meta_proposal *pr,
                                const struct meta_move *mv)
{
    pr->rec = (struct meta_record){.kind = META_RECORD_REASSIGN_DONE, .n_moves = 1, .moves = mv};
    meta_enqueue(m, pr);
}

/* --- a cluster's controller as the committer (meta.h) ----------------------------------------- */

void meta_set_committer(struct meta *m, const struct meta_committer *c)
{
    if (c)
        m->committer = *c;
    else
        memset(&m->committer, 0, sizeof(m->committer));
}

void meta_proposal_refused(struct meta *m, struct meta_proposal *pr, int rc, const char *msg)
{
    RL_ASSERT(pr->submitted && m->inflight == pr);
    pr->submitted = false;
    if (pr->rolling_back) {
        RL_ERROR("metadata: the undo of topic %s's failed creation was refused: %s (%s); the "
                 "topic stays on the brokers that created it", pr->rec.spec.name,
                 rl_strerror(rc), msg ? msg : "");
        return meta_proposal_finish(m, pr); /* rc and msg hold the creation's failure */
    }
    meta_proposal_fail(m, pr, rc, msg);
}

int meta_check_record(const struct meta *m, const uint8_t *payload, size_t len, char *err,
                      size_t err_cap)
{
    struct meta_record_decoded d;
    int rc = meta_record_decode(payload, len, &d);
    if (rc) {
        snprintf(err, err_cap, "the metadata record does not decode");
        return rc;
    }
    struct topic_config cfg;
    rc = meta_validate(m, &d.rec, &cfg, err, err_cap);
    meta_record_free(&d);
    return rc;
}

int meta_commit_record(struct meta *m, const uint8_t *payload, size_t len,
                       struct meta_proposal *pr)
{
    struct meta_commit *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    if (payload) {
        c->payload = malloc(len ? len : 1);
        if (!c->payload) {
            free(c);
            return -ENOMEM;
        }
        memcpy(c->payload, payload, len);
    }
    c->len = len;
    c->pr = pr;
    c->m = m;
    if (m->commit_tail)
        m->commit_tail->next = c;
    else
        m->commit_head = c;
    m->commit_tail = c;
    m->n_commits++;
    return 0;
}

static struct meta_creating *meta_creating_named(struct meta *m, const char *name)
{
    for (size_t i = 0; i < m->n_creating; i++)
        if (!strcmp(m->creating[i]->t->name, name))
            return m->creating[i];
    return NULL;
}

/* The committed record of pr (or a marker behind it) has been applied: pr ends, a create once
 * its partitions are open. */
static void meta_commit_settle(struct meta *m, struct meta_proposal *pr)
{
    pr->submitted = false;
    if (pr->rolling_back) {
        RL_INFO("metadata: the failed creation of topic %s is undone", pr->rec.spec.name);
        return meta_proposal_finish(m, pr); /* rc and msg hold the creation's failure */
    }
    if (pr->rec.kind != META_RECORD_CREATE_TOPIC)
        return meta_proposal_finish(m, pr);
    if (meta_creating_for(m, pr))
        return; /* ends in meta_proposal_created */
    struct meta_creating *c = meta_creating_named(m, pr->rec.spec.name);
    if (c && !c->pr) {
        c->pr = pr;
        return;
    }
    if (meta_topic_find(m, pr->rec.spec.name))
        return meta_proposal_finish(m, pr);
    meta_proposal_fail(m, pr, RL_E_INTERNAL,
                       "the committed topic was not applied on this broker (see its log)");
}

static void meta_commit_free(struct meta *m, struct meta_commit *c)
{
    m->commit_inflight = NULL;
    m->n_commits--;
    free(c->payload);
    free(c);
}

static void meta_commit_run(struct bg_job *j)
{
    struct meta_commit *c = (struct meta_commit *)((char *)j - offsetof(struct meta_commit, job));
    c->append_rc = metalog_append(c->m->ml, c->payload, (uint32_t)c->len);
}

static void meta_commit_appended(struct bg_job *j)
{
    struct meta_commit *c = (struct meta_commit *)((char *)j - offsetof(struct meta_commit, job));
    struct meta *m = c->m;
    struct meta_proposal *pr = c->pr;
    if (c->append_rc) {
        RL_ERROR("metadata: cannot record a committed record in the metadata log: %s; this "
                 "broker stops applying metadata (restart it once the disk is healthy)",
                 rl_strerror(c->append_rc));
        m->commit_failed = true;
        int rc = c->append_rc;
        meta_commit_free(m, c);
        if (pr) {
            pr->submitted = false;
            meta_proposal_fail(m, pr, rc, "cannot record the committed change on this broker");
        }
        return;
    }
    m->log_records++;
    struct meta_record_decoded d;
    int rc = meta_record_decode(c->payload, c->len, &d);
    if (rc == 0) {
        m->applying_pr = pr;
        rc = meta_apply(m, &d.rec);
        m->applying_pr = NULL;
        meta_record_free(&d);
    } else {
        RL_WARN("metadata: a committed record does not decode (%zu bytes); skipped", c->len);
        rc = 0;
    }
    meta_commit_free(m, c);
    if (pr && rc) {
        pr->submitted = false;
        return meta_proposal_fail(m, pr, rc, "cannot apply the change (out of memory)");
    }
    if (pr)
        meta_commit_settle(m, pr);
}

void meta_process_commits(struct meta *m)
{
    for (uint32_t guard = 0; !m->commit_inflight && m->commit_head && !m->commit_failed &&
                             guard < 100000; guard++) {
        struct meta_commit *c = m->commit_head;
        m->commit_head = c->next;
        if (!m->commit_head)
            m->commit_tail = NULL;
        m->commit_inflight = c;
        if (!c->payload) {
            struct meta_proposal *pr = c->pr;
            meta_commit_free(m, c);
            if (pr)
                meta_commit_settle(m, pr);
            continue;
        }
        c->job.run = meta_commit_run;
        c->job.done = meta_commit_appended;
        int rc = bg_submit(m->bg, &c->job);
        if (rc) {
            /* The queue is full: try again next turn. */
            m->commit_inflight = NULL;
            c->next = m->commit_head;
            m->commit_head = c;
            if (!m->commit_tail)
                m->commit_tail = c;
            break;
        }
    }
}
