/*
 * kapi: the one table of Kafka APIs the listener serves, with the version range it advertises in
 * ApiVersions and dispatches on. Kafka listener path: kmsg_decode_request looks the request's
 * api_key up here, refuses versions outside the range, and runs the codec hooks; ApiVersions
 * answers with exactly these ranges.
 *
 * Honest ranges: every version listed is decoded and encoded end to end by kmsg. Why these
 * (reference/kafka-protocol-subset.md section 2): librdkafka 2.0.2 picks the highest version in
 * both ranges and turns features off unless the broker's *minimum* is low enough (MsgVer2 needs
 * Produce 3 and Fetch 4; ZSTD needs Produce 7 and Fetch 10; consumer groups need FindCoordinator
 * 0 and the group APIs at 0; idempotence needs InitProducerId 0). kafka-python 2.0.2 infers a
 * broker release from probes (Fetch v10 in range => 2.1) and then sends fixed versions, all
 * inside these ranges. kafkajs 2.2.4 sends min(its max, broker max) for each API.
 */
#ifndef RL_BROKER_KAFKA_KAPI_H
#define RL_BROKER_KAFKA_KAPI_H

#include <stdint.h>

enum kapi_key {
    KAPI_PRODUCE = 0,
    KAPI_FETCH = 1,
    KAPI_LIST_OFFSETS = 2,
    KAPI_METADATA = 3,
    KAPI_OFFSET_COMMIT = 8,
    KAPI_OFFSET_FETCH = 9,
    KAPI_FIND_COORDINATOR = 10,
    KAPI_JOIN_GROUP = 11,
    KAPI_HEARTBEAT = 12,
    KAPI_LEAVE_GROUP = 13,
    KAPI_SYNC_GROUP = 14,
    KAPI_DESCRIBE_GROUPS = 15,
    KAPI_LIST_GROUPS = 16,
    KAPI_API_VERSIONS = 18,
    KAPI_CREATE_TOPICS = 19,
    KAPI_DELETE_TOPICS = 20,
    KAPI_INIT_PRODUCER_ID = 22,
    KAPI_DESCRIBE_CONFIGS = 32,
};

struct kio;

struct kapi {
    int16_t key;
    const char *name;         /* Kafka's name: "Produce" */
    int16_t min_version;      /* advertised and accepted range */
    int16_t max_version;
    int16_t first_flexible;   /* first flexible version in Kafka's schema (INT16_MAX: none) */
    /* Codec hooks (kmsg): one function per direction reads or writes every version. */
    void (*request_io)(struct kio *io, void *body);
    void (*response_io)(struct kio *io, void *body);
};

/* The entry for api_key, or NULL when the listener does not serve it. */
const struct kapi *kapi_lookup(int16_t api_key);

/* Entries in key order: kapi_count() of them, kapi_at(0 .. count-1). */
int kapi_count(void);
const struct kapi *kapi_at(int i);

/* 1 when version is inside the advertised range. */
int kapi_supports(const struct kapi *api, int16_t version);

/* 1 when version of this API uses the flexible encoding (and request header v2). */
int kapi_flexible(const struct kapi *api, int16_t version);

#endif
