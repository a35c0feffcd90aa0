/*
 * kafka: the Kafka-protocol listener's handlers, beside broker/native and over the same
 * protocol-neutral services (broker/meta for topics, broker/delivery for produce, fetch,
 * producer ids, groups and offsets). The server (broker/server) accepts Kafka connections,
 * cuts frames with kframe_peek and hands each whole frame here; a handler decodes it (kmsg),
 * calls the services and answers through struct kafka_host. Request path:
 *
 *   conn (kafka listener) -> kframe_peek -> kafka_dispatch -> kmsg_decode_request ->
 *   handler (kserve*.c) -> produce/fetch/coord/meta -> kmsg_encode_response -> host->respond
 *
 * Records cross without re-encoding: Produce batches become ringlog batches in place
 * (kbatch_from_kafka) and stored batches go out as Kafka batches by reference (kbatch_serve).
 * What is decoded from a frame (names, member ids) is a view into the frame, which the server
 * may reuse once kafka_dispatch returns: handlers copy what a later answer needs into the
 * request's arena before returning.
 *
 * Protocol errors (bytes that do not parse, an API key or version outside the kapi table other
 * than ApiVersions) close the connection after the responses already due, with a logged reason,
 * as Kafka does; ApiVersions at too high a version gets UNSUPPORTED_VERSION with the served
 * ranges. Single-threaded: the shard's loop.
 */
#ifndef RL_BROKER_KAFKA_KAFKA_H
#define RL_BROKER_KAFKA_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kafka;
struct kmsg_out;
struct meta;
struct delivery;
struct svc_req;

/* What the handlers need from the server's framing. */
struct kafka_host {
    /* Sends out (whole frames: size prefix included) as r's response. out->iov and the
     * memory it points to must stay valid until r is released (r's arena, stored batches the
     * request holds). */
    void (*respond)(struct svc_req *r, const struct kmsg_out *out);
    /* r gets no response (Produce with acks=0); later responses are not held up by it. */
    void (*respond_none)(struct svc_req *r);
    /* A protocol error: logs reason with the peer's address, sends nothing for r, and closes
     * the connection once the responses before r have gone. */
    void (*close)(struct svc_req *r, const char *reason);
};

/* The listener's identity as clients should see it. */
struct kafka_listener {
    int32_t node_id;
    const char *host;        /* copied */
    uint16_t port;
    uint32_t max_frame_bytes;
};

#define KAFKA_MAX_BROKERS 64

/* A cluster as Metadata shows it to Kafka clients: the registered brokers with a Kafka listener
 * (their advertised address) and the controller leader. */
struct kafka_cluster_view {
    char cluster_id[24];
    int32_t controller_id; /* -1: none known */
    uint32_t n_brokers;
    struct {
        int32_t id;
        char host[64];
        uint16_t port;
    } brokers[KAFKA_MAX_BROKERS];
};

/* host is borrowed (it must outlive k). Returns 0 and *out, or -ENOMEM. */
int kafka_create(const struct kafka_host *host, struct meta *meta, struct delivery *dv,
                 struct kafka **out);
void kafka_destroy(struct kafka *k);

/* The address Metadata and FindCoordinator tell clients (call once the port is bound). */
void kafka_set_listener(struct kafka *k, const struct kafka_listener *l);

/* In a cluster: Metadata lists the brokers view fills in (this broker is always listed, with
 * its own listener's address), and each partition's replicas and known leader; without it
 * this broker is the only one. */
void kafka_set_cluster(struct kafka *k, void (*view)(void *ctx, struct kafka_cluster_view *out),
                       void *ctx);

/* Topic auto-creation, Kafka's auto.create.topics.enable (off by default), with Kafka's
 * num.partitions and default.replication.factor for the topics it creates (and for a
 * CreateTopics request's -1 "broker default" counts; 1 and 1 until set). */
struct kafka_auto_create {
    bool enable;
    int32_t partitions;
    int32_t replication_factor;
};

/* Creations started by auto-creation that may be in flight at once; a request naming another
 * unknown topic meanwhile is answered LEADER_NOT_AVAILABLE (clients retry). */
#define KAFKA_AUTO_CREATE_MAX 64

/* Turns auto-creation on or off. On: a Metadata request allowing it (allow_auto_topic_creation,
 * always before v4) or a Produce naming a topic that does not exist starts its creation through
 * CreateTopics' path (a meta proposal, which the controller places in a cluster) without
 * waiting for it, and is answered with a retriable error (LEADER_NOT_AVAILABLE in Metadata,
 * UNKNOWN_TOPIC_OR_PARTITION in Produce) until the topic is live. Allocates the table of
 * creations in flight once. Returns 0 or -ENOMEM. */
int kafka_set_auto_create(struct kafka *k, const struct kafka_auto_create *ac);

/* Handles one whole frame (size prefix included: len = 4 + size, as kframe_peek measured it).
 * frame is writable and valid only during the call. Answers at once or leaves async work that
 * ends in an answer, exactly once, through the host. */
void kafka_dispatch(struct kafka *k, struct svc_req *r, uint8_t *frame, size_t len);

/* For the server's per-API metrics: the api_key of a whole request frame (as kafka_dispatch
 * takes it), or -1 when it is too short to hold one; and Kafka's name of an API the listener
 * serves ("Produce"), or NULL for any other key. */
int16_t kafka_frame_api_key(const uint8_t *frame, size_t len);
const char *kafka_api_name(int16_t api_key);

#endif
