/*
 * kerr: Kafka's error codes and the one table that maps ringlog's codes (common/err.h) onto
 * them. Kafka listener path: a service returns 0 / RL_E_* / -errno -> kerr_from_rl -> the i16
 * error_code of the Kafka response. Clients act on these codes (retry, refresh metadata,
 * re-find the coordinator, rejoin), so the mapping follows what each code makes a client do
 * (reference/kafka-protocol-subset.md section 5), not just the closest name.
 *
 * Some ringlog codes mean different things by where they arise: "not the leader" is
 * NOT_LEADER_OR_FOLLOWER for a partition, NOT_COORDINATOR for a group and NOT_CONTROLLER for
 * topic administration. The caller says where with a scope.
 */
#ifndef RL_BROKER_KAFKA_KERR_H
#define RL_BROKER_KAFKA_KERR_H

#include <stdint.h>

/* X(NAME, code, retriable) — the Kafka codes ringlog returns or names. */
#define KERR_LIST(X)                                                                            \
    X(UNKNOWN_SERVER_ERROR, -1, 0)                                                              \
    X(NONE, 0, 0)                                                                               \
    X(OFFSET_OUT_OF_RANGE, 1, 0)                                                                \
    X(CORRUPT_MESSAGE, 2, 1)                                                                    \
    X(UNKNOWN_TOPIC_OR_PARTITION, 3, 1)                                                         \
    X(LEADER_NOT_AVAILABLE, 5, 1)                                                               \
    X(NOT_LEADER_OR_FOLLOWER, 6, 1)                                                             \
    X(REQUEST_TIMED_OUT, 7, 1)                                                                  \
    X(MESSAGE_TOO_LARGE, 10, 0)                                                                 \
    X(COORDINATOR_LOAD_IN_PROGRESS, 14, 1)                                                      \
    X(COORDINATOR_NOT_AVAILABLE, 15, 1)                                                         \
    X(NOT_COORDINATOR, 16, 1)                                                                   \
    X(INVALID_TOPIC_EXCEPTION, 17, 0)                                                           \
    X(NOT_ENOUGH_REPLICAS, 19, 1)                                                               \
    X(NOT_ENOUGH_REPLICAS_AFTER_APPEND, 20, 1)                                                  \
    X(INVALID_REQUIRED_ACKS, 21, 0)                                                             \
    X(ILLEGAL_GENERATION, 22, 0)                                                                \
    X(INCONSISTENT_GROUP_PROTOCOL, 23, 0)                                                       \
    X(INVALID_GROUP_ID, 24, 0)                                                                  \
    X(UNKNOWN_MEMBER_ID, 25, 0)                                                                 \
    X(INVALID_SESSION_TIMEOUT, 26, 0)                                                           \
    X(REBALANCE_IN_PROGRESS, 27, 0)                                                             \
    X(INVALID_TIMESTAMP, 32, 0)                                                                 \
    X(UNSUPPORTED_VERSION, 35, 0)                                                               \
    X(TOPIC_ALREADY_EXISTS, 36, 0)                                                              \
    X(INVALID_PARTITIONS, 37, 0)                                                                \
    X(INVALID_REPLICATION_FACTOR, 38, 0)                                                        \
    X(INVALID_REPLICA_ASSIGNMENT, 39, 0)                                                        \
    X(INVALID_CONFIG, 40, 0)                                                                    \
    X(NOT_CONTROLLER, 41, 1)                                                                    \
    X(INVALID_REQUEST, 42, 0)                                                                   \
    X(UNSUPPORTED_FOR_MESSAGE_FORMAT, 43, 0)                                                    \
    X(OUT_OF_ORDER_SEQUENCE_NUMBER, 45, 0)                                                      \
    X(DUPLICATE_SEQUENCE_NUMBER, 46, 0)                                                         \
    X(INVALID_PRODUCER_EPOCH, 47, 0)                                                            \
    X(KAFKA_STORAGE_ERROR, 56, 1)                                                               \
    X(UNKNOWN_PRODUCER_ID, 59, 0)                                                               \
    X(REASSIGNMENT_IN_PROGRESS, 60, 0)                                                          \
    X(GROUP_ID_NOT_FOUND, 69, 0)                                                                \
    X(FETCH_SESSION_ID_NOT_FOUND, 70, 1)                                                        \
    X(UNSUPPORTED_COMPRESSION_TYPE, 76, 0)                                                      \
    X(MEMBER_ID_REQUIRED, 79, 0)                                                                \
    X(NO_REASSIGNMENT_IN_PROGRESS, 85, 0)                                                       \
    X(INVALID_RECORD, 87, 0)

enum kerr_code {
#define KERR_ENUM(name, code, retriable) KERR_##name = (code),
    KERR_LIST(KERR_ENUM)
#undef KERR_ENUM
};

/* Where a ringlog code arose; it decides the few codes whose Kafka meaning depends on it. */
enum kerr_scope {
    KERR_SCOPE_PARTITION, /* Produce, Fetch, ListOffsets, Metadata partitions */
    KERR_SCOPE_GROUP,     /* FindCoordinator, the group APIs, OffsetCommit/OffsetFetch */
    KERR_SCOPE_ADMIN,     /* CreateTopics, DeleteTopics, DescribeConfigs */
    KERR_SCOPE_PRODUCER,  /* InitProducerId */
};

/* The Kafka error code for a ringlog return code (0, RL_E_*, or -errno) arising in scope.
 * Unknown codes give UNKNOWN_SERVER_ERROR (-1). */
int16_t kerr_from_rl(int rl_code, enum kerr_scope scope);

/* Produce's code for a batch that breaks the batch rules: CORRUPT_MESSAGE before Produce v8
 * (clients older than KIP-467 know no INVALID_RECORD), INVALID_RECORD from v8. */
int16_t kerr_invalid_batch(int16_t produce_version);

/* Kafka's name for a code ("NOT_COORDINATOR"), or "UNKNOWN" for one not in KERR_LIST. */
const char *kerr_name(int16_t code);

/* 1 when clients retry on this code (Kafka's RetriableException subclasses). */
int kerr_retriable(int16_t code);

#endif
