/*
 * native_int: what the native handler files share: native.c (dispatch, ApiVersions),
 * native_topics.c (Metadata and topic admin), native_data.c (Produce, Fetch, ListOffsets) and
 * native_groups.c (producer ids, groups, offsets). Nothing outside broker/native includes this.
 */
#ifndef RL_BROKER_NATIVE_INT_H
#define RL_BROKER_NATIVE_INT_H

#include "broker/native/native.h"
#include "broker/svc/svc.h"
#include "common/arena.h"

#define NATIVE_HOST_MAX 64

struct native {
    const struct native_host *host;
    struct meta *meta;
    struct delivery *dv;
    int32_t node_id;
    char listen_host[NATIVE_HOST_MAX];
    uint16_t port;
    void (*cluster_view)(void *ctx, struct native_cluster_view *out);
    void *cluster_ctx;
};

typedef void (*native_handler_fn)(struct native *n, struct svc_req *r,
                                  const Ringlog__Request *rq, const uint8_t *data);

/* Zeroed arena memory (never NULL for a zero size unless out of memory). */
static inline void *native_alloc(struct svc_req *r, size_t bytes)
{
    return arena_calloc(r->arena, bytes ? bytes : 1);
}

#define NATIVE_NEW(r, type, init)                                                               \
    __extension__({                                                                             \
        type *x__ = arena_alloc((r)->arena, sizeof(type));                                      \
        if (x__)                                                                                \
            init(x__);                                                                          \
        x__;                                                                                    \
    })

/* Answers that the request needs more memory than one request may use. */
void native_oom(struct native *n, struct svc_req *r);

/* A response-level error into resp: the code, and msg (or the code's own sentence). */
void native_set_error(struct svc_req *r, Ringlog__Response *resp, int rc, const char *msg);

/* Handlers, by file. */
void native_metadata(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                     const uint8_t *data);
void native_create_topics(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                          const uint8_t *data);
void native_delete_topics(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                          const uint8_t *data);
void native_describe_configs(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                             const uint8_t *data);
void native_alter_configs(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                          const uint8_t *data);
void native_produce(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                    const uint8_t *data);
void native_fetch(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                  const uint8_t *data);
void native_list_offsets(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                         const uint8_t *data);
void native_init_producer_id(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                             const uint8_t *data);
void native_find_coordinator(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                             const uint8_t *data);
void native_join_group(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                       const uint8_t *data);
void native_sync_group(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                       const uint8_t *data);
void native_heartbeat(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                      const uint8_t *data);
void native_leave_group(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                        const uint8_t *data);
void native_offset_commit(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                          const uint8_t *data);
void native_offset_fetch(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                         const uint8_t *data);
void native_list_groups(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                        const uint8_t *data);
void native_describe_groups(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                            const uint8_t *data);
void native_alter_replicas(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                           const uint8_t *data);

#endif
