/*
 * kserve_int: what the Kafka handler files share: kserve.c (dispatch, ApiVersions, Metadata),
 * kserve_data.c (Produce, Fetch, ListOffsets, InitProducerId), kserve_group.c
 * (FindCoordinator, the group APIs, OffsetCommit/OffsetFetch, ListGroups/DescribeGroups),
 * kserve_admin.c (CreateTopics, DeleteTopics, DescribeConfigs) and kserve_auto.c (topic
 * auto-creation for Metadata and Produce).
 * Nothing outside broker/kafka includes this.
 */
#ifndef RL_BROKER_KAFKA_KSERVE_INT_H
#define RL_BROKER_KAFKA_KSERVE_INT_H

#include "broker/kafka/kafka.h"
#include "broker/kafka/kerr.h"
#include "broker/kafka/kmsg.h"
#include "broker/svc/svc.h"
#include "common/arena.h"

#define KSERVE_HOST_MAX 256

struct kbatch_ctx;
struct kserve_auto;

struct kafka {
    const struct kafka_host *host;
    struct meta *meta;
    struct delivery *dv;
    struct kbatch_ctx *bctx;     /* codec contexts, reused across batches */
    int32_t node_id;
    char host_name[KSERVE_HOST_MAX];
    uint16_t port;
    int64_t unknown_topic_logged_ms; /* rate limit of the "no auto-creation" log line */
    struct kafka_auto_create auto_cfg; /* also CreateTopics' defaults for -1 counts */
    struct kserve_auto *autos;   /* KAFKA_AUTO_CREATE_MAX slots when auto-creation is on */
    int64_t auto_logged_ms;      /* rate limit of auto-creation's refusal log lines */
    void (*cluster_view)(void *ctx, struct kafka_cluster_view *out); /* NULL: no cluster */
    void *cluster_ctx;
};

/* One request being served: its header (client_id copied), the decoded body, and the
 * response body the handler fills. In the request's arena. */
struct kserve_req {
    struct kafka *k;
    struct kreq_header hdr;
    const char *client_id;       /* "" when null */
    union kmsg_req_body *body;
    union kmsg_resp_body resp;
    void *op;                    /* the handler's own async state */
};

typedef void (*kserve_fn)(struct kserve_req *kr, struct svc_req *r);

/* Encodes kr->resp and sends it; a response that cannot be encoded closes the connection. */
void kserve_answer(struct kserve_req *kr, struct svc_req *r);

/* A NUL-terminated copy of s in r's arena ("" for null); NULL when out of memory. */
char *kserve_cstr(struct svc_req *r, struct kstr s);

/* Zeroed arena memory for n items (at least one byte); NULL when out of memory. */
static inline void *kserve_alloc(struct svc_req *r, size_t n, size_t size)
{
    size_t bytes = n * size;
    return arena_calloc(r->arena, bytes ? bytes : 1);
}

/* Closes the connection: the request needs more memory than one request may use. */
void kserve_oom(struct kserve_req *kr, struct svc_req *r);

/* Auto-creation (kserve_auto.c) of topic `name`, which does not exist, for a Metadata request
 * (produce false) or a Produce: starts its creation unless one is under way or failed less than
 * a second ago, never waiting for it. Returns the Kafka error code to answer for the topic:
 * LEADER_NOT_AVAILABLE (Metadata) or UNKNOWN_TOPIC_OR_PARTITION (Produce) while it is being
 * created, INVALID_TOPIC_EXCEPTION for a name that cannot be a topic, or why it cannot be
 * created (Metadata: INVALID_REPLICATION_FACTOR when there are too few brokers). Logs why. */
int16_t kserve_auto_create(struct kserve_req *kr, struct svc_req *r, const char *name,
                           bool produce);

/* Frees the auto-creation table (no creation may be in flight: meta is closed first). */
void kserve_auto_destroy(struct kafka *k);

/* Handlers, by file. */
void kserve_metadata(struct kserve_req *kr, struct svc_req *r);
void kserve_produce(struct kserve_req *kr, struct svc_req *r);
void kserve_fetch(struct kserve_req *kr, struct svc_req *r);
void kserve_list_offsets(struct kserve_req *kr, struct svc_req *r);
void kserve_init_producer_id(struct kserve_req *kr, struct svc_req *r);
void kserve_find_coordinator(struct kserve_req *kr, struct svc_req *r);
void kserve_join_group(struct kserve_req *kr, struct svc_req *r);
void kserve_sync_group(struct kserve_req *kr, struct svc_req *r);
void kserve_heartbeat(struct kserve_req *kr, struct svc_req *r);
void kserve_leave_group(struct kserve_req *kr, struct svc_req *r);
void kserve_offset_commit(struct kserve_req *kr, struct svc_req *r);
void kserve_offset_fetch(struct kserve_req *kr, struct svc_req *r);
void kserve_list_groups(struct kserve_req *kr, struct svc_req *r);
void kserve_describe_groups(struct kserve_req *kr, struct svc_req *r);
void kserve_create_topics(struct kserve_req *kr, struct svc_req *r);
void kserve_delete_topics(struct kserve_req *kr, struct svc_req *r);
void kserve_describe_configs(struct kserve_req *kr, struct svc_req *r);

#endif
