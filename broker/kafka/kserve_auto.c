/*
 * kserve_auto: topic auto-creation for Kafka clients (auto.create.topics.enable, off by
 * default). Metadata (kserve.c) and Produce (kserve_data.c) call kserve_auto_create for a topic
 * that does not exist; it starts the topic's creation through the path CreateTopics takes
 * (meta_propose_create: recorded locally on a single broker, placed and committed by the
 * controller in a cluster) and returns at once with the retriable error Kafka answers
 * meanwhile, so the loop never waits for a creation and clients retry until the topic is live.
 *
 * A fixed table of KAFKA_AUTO_CREATE_MAX slots, allocated when auto-creation is turned on,
 * holds the creations in flight by name: concurrent requests for one topic start one creation,
 * and a creation that failed is answered with its error for KSERVE_AUTO_RETRY_MS before another
 * attempt (so a replication factor the cluster cannot hold is not proposed on every Metadata
 * request). A slot's proposal belongs to meta until its `done` runs.
 */
#include "broker/kafka/kserve_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/meta/meta.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"

/* How long a finished creation's outcome answers for its topic before another attempt: long
 * enough to absorb a client's retries, short enough that starting the missing brokers (or a
 * topic deleted since) is noticed soon. */
#define KSERVE_AUTO_RETRY_MS 1000

struct kserve_auto {
    struct meta_proposal pr;              /* meta's while busy */
    struct meta_topic_spec spec;          /* what pr proposes; spec.name is name */
    struct kafka *k;
    char name[CONFIG_TOPIC_NAME_MAX + 1]; /* "": never used */
    bool busy;                            /* the creation is in flight */
    int rc;                               /* the last creation's outcome: 0 or why it failed */
    int64_t ended_ms;                     /* when it ended (monotonic) */
};

static int64_t kserve_auto_now_ms(const struct kafka *k)
{
    return (int64_t)(io_now_ns(meta_io(k->meta)) / 1000000u);
}

int kafka_set_auto_create(struct kafka *k, const struct kafka_auto_create *ac)
{
    k->auto_cfg = *ac;
    if (!ac->enable || k->autos)
        return 0;
    k->autos = calloc(KAFKA_AUTO_CREATE_MAX, sizeof(*k->autos));
    if (!k->autos)
        return -ENOMEM;
    for (int i = 0; i < KAFKA_AUTO_CREATE_MAX; i++)
        k->autos[i].k = k;
    return 0;
}

static void kserve_auto_done(struct meta_proposal *pr)
{
    struct kserve_auto *a = pr->ctx;
    a->busy = false;
    /* Another broker (or a CreateTopics) created it first: it is live, or soon will be here. */
    a->rc = pr->rc == RL_E_TOPIC_EXISTS ? 0 : pr->rc;
    a->ended_ms = kserve_auto_now_ms(a->k);
    if (a->rc)
        RL_WARN("Kafka auto-creation of topic \"%s\" (num.partitions %d, "
                "default.replication.factor %d) failed: %s", a->name, a->spec.partitions,
                a->spec.replication_factor, pr->msg[0] ? pr->msg : rl_strerror(pr->rc));
    else
        RL_DEBUG("Kafka auto-creation: topic \"%s\" is created", a->name);
}

/* The slot of topic `name`, else a free one (never used, or ended long enough ago that its
 * outcome no longer answers), else NULL with *named false. */
static struct kserve_auto *kserve_auto_slot(struct kafka *k, const char *name, int64_t now,
                                            bool *named)
{
    struct kserve_auto *free_slot = NULL;
    *named = false;
    for (int i = 0; i < KAFKA_AUTO_CREATE_MAX; i++) {
        struct kserve_auto *a = &k->autos[i];
        if (a->name[0] && !strcmp(a->name, name)) {
            *named = true;
            return a;
        }
        if (!free_slot && !a->busy && (!a->name[0] || now - a->ended_ms >= KSERVE_AUTO_RETRY_MS))
            free_slot = a;
    }
    return free_slot;
}

/* What a refused creation answers: INVALID_TOPIC_EXCEPTION for a name that cannot be a topic;
 * in Metadata, Kafka's errors for a count the broker cannot hold; otherwise the retriable
 * "not yet" of the request kind (the refusal may pass: brokers start, a controller is elected). */
static int16_t kserve_auto_refused(int rc, bool produce)
{
    if (rc == RL_E_INVALID_TOPIC_NAME)
        return KERR_INVALID_TOPIC_EXCEPTION;
    if (produce)
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    if (rc == RL_E_INVALID_REPLICATION)
        return KERR_INVALID_REPLICATION_FACTOR;
    if (rc == RL_E_INVALID_PARTITIONS)
        return KERR_INVALID_PARTITIONS;
    return KERR_LEADER_NOT_AVAILABLE;
}

/* Logs a refusal, at most once a second (clients retry quickly). */
static void kserve_auto_log_refusal(struct kafka *k, struct svc_req *r, const char *name,
                                    const char *why)
{
    int64_t now = kserve_auto_now_ms(k);
    if (now - k->auto_logged_ms < 1000)
        return;
    k->auto_logged_ms = now;
    RL_WARN("Kafka client %s asked for topic \"%s\", which does not exist and is not "
            "auto-created: %s", svc_req_peer(r), name, why);
}

int16_t kserve_auto_create(struct kserve_req *kr, struct svc_req *r, const char *name,
                           bool produce)
{
    struct kafka *k = kr->k;
    int16_t creating = produce ? KERR_UNKNOWN_TOPIC_OR_PARTITION : KERR_LEADER_NOT_AVAILABLE;
    int64_t now = kserve_auto_now_ms(k);
    bool named;
    struct kserve_auto *a = kserve_auto_slot(k, name, now, &named);
    if (named && a->busy)
        return creating; /* one creation per topic, however many ask meanwhile */
    if (named && now - a->ended_ms < KSERVE_AUTO_RETRY_MS)
        return a->rc ? kserve_auto_refused(a->rc, produce) : creating;
    if (meta_topic_internal(name)) {
        kserve_auto_log_refusal(k, r, name, "names starting with __ are the broker's own");
        return KERR_UNKNOWN_TOPIC_OR_PARTITION;
    }
    struct meta_topic_spec spec = {.name = name, .partitions = k->auto_cfg.partitions,
                                   .replication_factor = k->auto_cfg.replication_factor,
                                   .partitioner = META_PARTITIONER_HASH};
    struct topic_config cfg;
    char msg[512] = "";
    int rc = meta_check_create(k->meta, &spec, &cfg, msg, sizeof(msg));
    if (rc == RL_E_TOPIC_EXISTS)
        return creating; /* being created by another request (CreateTopics) */
    if (rc) {
        kserve_auto_log_refusal(k, r, name, msg[0] ? msg : rl_strerror(rc));
        return kserve_auto_refused(rc, produce);
    }
    if (!a) {
        snprintf(msg, sizeof(msg), "%d topics are being auto-created already; the client "
                 "retries", KAFKA_AUTO_CREATE_MAX);
        kserve_auto_log_refusal(k, r, name, msg);
        return creating;
    }
    snprintf(a->name, sizeof(a->name), "%s", name);
    a->spec = spec;
    a->spec.name = a->name;
    a->busy = true;
    a->rc = 0;
    a->pr.done = kserve_auto_done;
    a->pr.ctx = a;
    RL_INFO("Kafka client %s: creating topic \"%s\" on first %s (auto.create.topics.enable): "
            "%d partitions (num.partitions), replication factor %d (default.replication.factor)",
            svc_req_peer(r), name, produce ? "produce" : "metadata request", spec.partitions,
            spec.replication_factor);
    meta_propose_create(k->meta, &a->pr, &a->spec);
    return creating;
}

void kserve_auto_destroy(struct kafka *k)
{
    free(k->autos);
    k->autos = NULL;
}
