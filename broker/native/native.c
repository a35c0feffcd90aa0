/*
 * native: see native.h. The dispatch table below is the one list of the request types this
 * broker serves: dispatch looks handlers up in it and ApiVersions answers from it (the frame
 * codec, proto/frame.c, knows which body is which Api).
 */
#include "broker/native/native_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "proto/frame.h"

#define NATIVE_SOFTWARE "ringlogd 0.1"
#define NATIVE_APIS (RINGLOG__API__API_ALTER_REPLICAS + 1)

static void native_api_versions(struct native *n, struct svc_req *r,
                                const Ringlog__Request *rq, const uint8_t *data);

static const native_handler_fn native_handlers[NATIVE_APIS] = {
    [RINGLOG__API__API_VERSIONS] = native_api_versions,
    [RINGLOG__API__API_METADATA] = native_metadata,
    [RINGLOG__API__API_CREATE_TOPICS] = native_create_topics,
    [RINGLOG__API__API_DELETE_TOPICS] = native_delete_topics,
    [RINGLOG__API__API_DESCRIBE_CONFIGS] = native_describe_configs,
    [RINGLOG__API__API_ALTER_CONFIGS] = native_alter_configs,
    [RINGLOG__API__API_PRODUCE] = native_produce,
    [RINGLOG__API__API_FETCH] = native_fetch,
    [RINGLOG__API__API_LIST_OFFSETS] = native_list_offsets,
    [RINGLOG__API__API_INIT_PRODUCER_ID] = native_init_producer_id,
    [RINGLOG__API__API_FIND_COORDINATOR] = native_find_coordinator,
    [RINGLOG__API__API_JOIN_GROUP] = native_join_group,
    [RINGLOG__API__API_SYNC_GROUP] = native_sync_group,
    [RINGLOG__API__API_HEARTBEAT] = native_heartbeat,
    [RINGLOG__API__API_LEAVE_GROUP] = native_leave_group,
    [RINGLOG__API__API_OFFSET_COMMIT] = native_offset_commit,
    [RINGLOG__API__API_OFFSET_FETCH] = native_offset_fetch,
    [RINGLOG__API__API_LIST_GROUPS] = native_list_groups,
    [RINGLOG__API__API_DESCRIBE_GROUPS] = native_describe_groups,
    [RINGLOG__API__API_ALTER_REPLICAS] = native_alter_replicas,
};

int native_create(const struct native_host *host, struct meta *meta, struct delivery *dv,
                  struct native **out)
{
    struct native *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    n->host = host;
    n->meta = meta;
    n->dv = dv;
    *out = n;
    return 0;
}

void native_destroy(struct native *n)
{
    free(n);
}

void native_set_cluster(struct native *n, void (*view)(void *ctx, struct native_cluster_view *out),
                        void *ctx)
{
    n->cluster_view = view;
    n->cluster_ctx = ctx;
}

void native_set_listener(struct native *n, int32_t node_id, const char *host, uint16_t port)
{
    n->node_id = node_id;
    snprintf(n->listen_host, sizeof(n->listen_host), "%s", host);
    n->port = port;
}

bool native_serves(Ringlog__Api api)
{
    return (unsigned)api < NATIVE_APIS && native_handlers[api] != NULL;
}

void native_oom(struct native *n, struct svc_req *r)
{
    n->host->respond_error(r, RL_E_LIMIT, "request needs more broker memory than one request "
                           "may use; split it (fewer topics or partitions per request)");
}

void native_set_error(struct svc_req *r, Ringlog__Response *resp, int rc, const char *msg)
{
    resp->error_code = rc;
    if (rc) {
        resp->error_message = arena_strdup(r->arena, msg && msg[0] ? msg : rl_strerror(rc));
        if (!resp->error_message)
            resp->error_message = (char *)rl_strerror(rc);
    }
}

void native_dispatch(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                     const uint8_t *data, uint32_t data_len)
{
    (void)data_len; /* frame_check_request matched it against the envelope */
    Ringlog__Api api = frame_request_api(rq);
    if (!native_serves(api))
        return n->host->respond_error(r, RL_E_UNKNOWN_API, "unknown request type");
    native_handlers[api](n, r, rq, data);
}

/* --- ApiVersions ------------------------------------------------------------------------------ */

static void native_api_versions(struct native *n, struct svc_req *r,
                                const Ringlog__Request *rq, const uint8_t *data)
{
    (void)rq;
    (void)data;
    Ringlog__Response *resp = n->host->response(r);
    Ringlog__ApiVersionsResponse *body =
        NATIVE_NEW(r, Ringlog__ApiVersionsResponse, ringlog__api_versions_response__init);
    Ringlog__ApiVersion *vs = native_alloc(r, NATIVE_APIS * sizeof(*vs));
    Ringlog__ApiVersion **ptrs = native_alloc(r, NATIVE_APIS * sizeof(*ptrs));
    if (!resp || !body || !vs || !ptrs)
        return native_oom(n, r);
    size_t k = 0;
    for (unsigned a = 0; a < NATIVE_APIS; a++) {
        if (!native_handlers[a])
            continue;
        ringlog__api_version__init(&vs[k]);
        vs[k].api = (Ringlog__Api)a;
        vs[k].min_version = FRAME_VERSION;
        vs[k].max_version = FRAME_VERSION;
        ptrs[k] = &vs[k];
        k++;
    }
    body->n_apis = k;
    body->apis = ptrs;
    body->broker_software = (char *)NATIVE_SOFTWARE;
    body->node_id = n->node_id;
    resp->body_case = RINGLOG__RESPONSE__BODY_API_VERSIONS;
    resp->api_versions = body;
    n->host->respond(r, resp, NULL, NULL, NULL, 0);
}
