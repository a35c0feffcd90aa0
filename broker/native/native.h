/*
 * native: the native protocol's requests mapped onto the broker's services. The server
 * (broker/server) frames and decodes a request, checks what framing can check, and hands it
 * here; each handler turns the protobuf request into the plain C structs of a service
 * (broker/meta for topics, broker/delivery for produce, fetch, producer ids, groups and
 * offsets), and the service's answer back into a protobuf Response. This is the only place
 * that knows the protocol's messages besides the server's framing; a Kafka listener
 * (broker/kafka) will sit beside it and call the same services.
 *
 *   server: frame -> Ringlog__Request -> native_dispatch -> handler (table by Api)
 *   handler: protobuf -> service call -> ... -> protobuf Response -> host->respond
 *
 * The request types are listed once, in the dispatch table of native.c; ApiVersions answers
 * from it. Single-threaded: the shard's loop.
 */
#ifndef RL_BROKER_NATIVE_NATIVE_H
#define RL_BROKER_NATIVE_NATIVE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "proto/ringlog.pb-c.h"

struct native;
struct meta;
struct delivery;
struct svc_req;

/* What native needs from the server to answer (the server's framing). */
struct native_host {
    /* A fresh Response for r (correlation id and throttle filled) in r's arena; NULL when out
     * of request memory. */
    Ringlog__Response *(*response)(struct svc_req *r);
    /* Encodes resp as r's response, followed by n_data raw data pieces: data[i] in memory, or,
     * when fds is given and fds[i] >= 0, the data[i].iov_len bytes at pos[i] of fds[i] (sent by
     * splice; they must stay open until the request is released). */
    void (*respond)(struct svc_req *r, Ringlog__Response *resp, const struct iovec *data,
                    const int *fds, const uint64_t *pos, uint32_t n_data);
    /* Answers with only an error code and a message. */
    void (*respond_error)(struct svc_req *r, int code, const char *msg);
};

/* host is borrowed (it must outlive n). Returns 0 and *out, or -ENOMEM. */
int native_create(const struct native_host *host, struct meta *meta, struct delivery *dv,
                  struct native **out);
void native_destroy(struct native *n);

/* The address clients are told to use for this broker (Metadata, FindCoordinator). */
void native_set_listener(struct native *n, int32_t node_id, const char *host, uint16_t port);

/* A cluster's brokers and controller, as Metadata lists them. */
#define NATIVE_MAX_BROKERS 64
struct native_cluster_view {
    int32_t controller_id; /* -1: no controller leader known */
    char cluster_id[40];
    uint64_t term, commit;  /* the controller's, as this broker knows them */
    uint64_t applied;       /* the controller log index this broker has applied */
    int32_t self;
    uint32_t n_brokers;
    struct native_cluster_broker {
        int32_t id;
        char host[64];
        uint16_t port;
        bool fenced;
        bool decommissioned; /* placement and new moves leave it out (meta.h) */
    } brokers[NATIVE_MAX_BROKERS];
    uint32_t n_voters;
    struct {
        int32_t id;
        uint64_t match;     /* 0 unless this broker leads */
        bool reachable;
    } voters[16];
};

/* In a cluster, Metadata asks view() for the brokers and the controller (NULL: a cluster of
 * one, this broker alone). */
void native_set_cluster(struct native *n, void (*view)(void *ctx, struct native_cluster_view *out),
                        void *ctx);

/* Handles a decoded request that passed frame_check_request. data/data_len: the frame's data
 * section, valid only during the call. Either answers at once or leaves async work that ends
 * in an answer. */
void native_dispatch(struct native *n, struct svc_req *r, const Ringlog__Request *rq,
                     const uint8_t *data, uint32_t data_len);

/* Whether this broker serves `api` (ApiVersions lists exactly these). */
bool native_serves(Ringlog__Api api);

#endif
