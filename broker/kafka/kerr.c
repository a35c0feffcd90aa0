/*
 * kerr: ringlog codes -> Kafka codes, in one table (see kerr.h). Why each choice: batch damage
 * is CORRUPT_MESSAGE (retriable, so a batch damaged in flight is sent again); states that pass
 * (full queues, throttling, a dropped Raft proposal, a closed log) map to codes that make the
 * client refresh metadata and retry; storage failures are KAFKA_STORAGE_ERROR, which clients
 * treat as "try another replica later".
 */
#include "broker/kafka/kerr.h"

#include <errno.h>
#include <stddef.h>

#include "common/err.h"

struct kerr_map {
    int rl;
    int16_t kafka;
};

/* Codes whose Kafka meaning is the same wherever they arise. */
static const struct kerr_map any_scope[] = {
    {0, KERR_NONE},
    {RL_E_INVALID_ARGUMENT, KERR_INVALID_REQUEST},
    {RL_E_CORRUPT, KERR_CORRUPT_MESSAGE},
    {RL_E_FULL, KERR_REQUEST_TIMED_OUT},
    {RL_E_TIMED_OUT, KERR_REQUEST_TIMED_OUT},
    {RL_E_REQUEST_TIMED_OUT, KERR_REQUEST_TIMED_OUT},
    {RL_E_THROTTLED, KERR_REQUEST_TIMED_OUT},
    {RL_E_INTERNAL, KERR_UNKNOWN_SERVER_ERROR},
    {RL_E_LIMIT, KERR_INVALID_REQUEST},
    {RL_E_BATCH_SHORT, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_MAGIC, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_LENGTH, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_CHECKSUM, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_VARINT, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_DECOMPRESS, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_COUNT, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_CODEC, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_RECORD, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_EMPTY, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_OFFSETS, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_TOO_LARGE, KERR_MESSAGE_TOO_LARGE},
    /* What full validation (batch_validate_full) refuses: a decompression bomb is too large;
     * timestamps out of bounds are Kafka's INVALID_TIMESTAMP; the rest is a malformed batch. */
    {RL_E_BATCH_DECOMPRESS_LIMIT, KERR_MESSAGE_TOO_LARGE},
    {RL_E_BATCH_FLAGS, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_RECORD_ATTRIBUTES, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_HEADERS, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_FIRST_TIMESTAMP, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_MAX_TIMESTAMP, KERR_CORRUPT_MESSAGE},
    {RL_E_BATCH_TIMESTAMP_RANGE, KERR_INVALID_TIMESTAMP},
    {RL_E_BATCH_TIMESTAMP_FUTURE, KERR_INVALID_TIMESTAMP},
    {RL_E_BATCH_TIMESTAMP_PAST, KERR_INVALID_TIMESTAMP},
    {RL_E_MESSAGE_TOO_LARGE, KERR_MESSAGE_TOO_LARGE},
    {RL_E_OFFSET_OUT_OF_RANGE, KERR_OFFSET_OUT_OF_RANGE},
    {RL_E_LOG_FAILED, KERR_KAFKA_STORAGE_ERROR},
    {RL_E_DISK_FULL, KERR_KAFKA_STORAGE_ERROR}, /* retriable for Kafka clients, as it is here */
    {RL_E_FRAME_TOO_LARGE, KERR_INVALID_REQUEST},
    {RL_E_FRAME_MALFORMED, KERR_INVALID_REQUEST},
    {RL_E_INVALID_REQUEST, KERR_INVALID_REQUEST},
    {RL_E_UNSUPPORTED_VERSION, KERR_UNSUPPORTED_VERSION},
    {RL_E_UNKNOWN_API, KERR_UNSUPPORTED_VERSION},
    {RL_E_UNKNOWN_TOPIC, KERR_UNKNOWN_TOPIC_OR_PARTITION},
    {RL_E_UNKNOWN_PARTITION, KERR_UNKNOWN_TOPIC_OR_PARTITION},
    {RL_E_TOPIC_EXISTS, KERR_TOPIC_ALREADY_EXISTS},
    {RL_E_INVALID_TOPIC_NAME, KERR_INVALID_TOPIC_EXCEPTION},
    {RL_E_INVALID_PARTITIONS, KERR_INVALID_PARTITIONS},
    {RL_E_INVALID_REPLICATION, KERR_INVALID_REPLICATION_FACTOR},
    {RL_E_INVALID_CONFIG, KERR_INVALID_CONFIG},
    {RL_E_INVALID_SPLITS, KERR_INVALID_CONFIG},
    {RL_E_INTERNAL_TOPIC, KERR_INVALID_TOPIC_EXCEPTION}, /* as Kafka: internal topics */
    {RL_E_BROKER_UNAVAILABLE, KERR_LEADER_NOT_AVAILABLE},
    {RL_E_NOT_ENOUGH_REPLICAS, KERR_NOT_ENOUGH_REPLICAS},
    {RL_E_OUT_OF_ORDER_SEQUENCE, KERR_OUT_OF_ORDER_SEQUENCE_NUMBER},
    {RL_E_DUPLICATE_SEQUENCE, KERR_DUPLICATE_SEQUENCE_NUMBER},
    {RL_E_PRODUCER_FENCED, KERR_INVALID_PRODUCER_EPOCH},
    {RL_E_INVALID_PRODUCER_EPOCH, KERR_INVALID_PRODUCER_EPOCH},
    {RL_E_UNKNOWN_PRODUCER_ID, KERR_UNKNOWN_PRODUCER_ID},
    /* A broker whose metadata lags: retriable, unlike UNKNOWN_PRODUCER_ID (which makes a
     * client give up the batch's sequence). */
    {RL_E_PRODUCER_ID_NOT_YET_KNOWN, KERR_REQUEST_TIMED_OUT},
    {RL_E_COORDINATOR_NOT_AVAILABLE, KERR_COORDINATOR_NOT_AVAILABLE},
    {RL_E_NOT_COORDINATOR, KERR_NOT_COORDINATOR},
    {RL_E_COORDINATOR_LOADING, KERR_COORDINATOR_LOAD_IN_PROGRESS},
    {RL_E_UNKNOWN_MEMBER_ID, KERR_UNKNOWN_MEMBER_ID},
    {RL_E_ILLEGAL_GENERATION, KERR_ILLEGAL_GENERATION},
    {RL_E_REBALANCE_IN_PROGRESS, KERR_REBALANCE_IN_PROGRESS},
    {RL_E_GROUP_ID_NOT_FOUND, KERR_GROUP_ID_NOT_FOUND},
    {RL_E_INVALID_SESSION_TIMEOUT, KERR_INVALID_SESSION_TIMEOUT},
    {RL_E_INCONSISTENT_PROTOCOL, KERR_INCONSISTENT_GROUP_PROTOCOL},
    {RL_E_INVALID_GROUP_ID, KERR_INVALID_GROUP_ID},
    {RL_E_RAFT_CONF_PENDING, KERR_REQUEST_TIMED_OUT},
    {RL_E_RAFT_CATCHING_UP, KERR_REQUEST_TIMED_OUT}, /* a voter change waits for catch-up */
    {RL_E_REASSIGN_RUNNING, KERR_REASSIGNMENT_IN_PROGRESS},
    {RL_E_UNKNOWN_BROKER, KERR_INVALID_REPLICA_ASSIGNMENT}, /* as Kafka's reassignment says */
    {RL_E_BROKER_DECOMMISSIONED, KERR_INVALID_REPLICA_ASSIGNMENT},
    {RL_E_NO_MOVE_RUNNING, KERR_NO_REASSIGNMENT_IN_PROGRESS}, /* a cancel with nothing running */
    {-EIO, KERR_KAFKA_STORAGE_ERROR},
    {-ENOSPC, KERR_KAFKA_STORAGE_ERROR},
    {-EDQUOT, KERR_KAFKA_STORAGE_ERROR},
    {-EROFS, KERR_KAFKA_STORAGE_ERROR},
    {-ENOMEM, KERR_REQUEST_TIMED_OUT},
};

/* "This broker is not where that lives" and "that does not exist", by scope. */
static int16_t scoped(int rl, enum kerr_scope scope)
{
    int leadership = rl == RL_E_NOT_LEADER || rl == RL_E_RAFT_NOT_LEADER ||
                     rl == RL_E_RAFT_DROPPED || rl == RL_E_RAFT_TRANSFERRING ||
                     rl == RL_E_LOG_CLOSED || rl == RL_E_SHUTTING_DOWN;
    switch (scope) {
    case KERR_SCOPE_PARTITION:
        if (leadership)
            return KERR_NOT_LEADER_OR_FOLLOWER;
        if (rl == RL_E_NOT_FOUND)
            return KERR_UNKNOWN_TOPIC_OR_PARTITION;
        break;
    case KERR_SCOPE_GROUP:
        if (leadership)
            return KERR_NOT_COORDINATOR;
        if (rl == RL_E_NOT_FOUND)
            return KERR_GROUP_ID_NOT_FOUND;
        break;
    case KERR_SCOPE_ADMIN:
        if (leadership)
            return KERR_NOT_CONTROLLER;
        if (rl == RL_E_NOT_FOUND)
            return KERR_UNKNOWN_TOPIC_OR_PARTITION;
        if (rl == RL_E_EXISTS)
            return KERR_TOPIC_ALREADY_EXISTS;
        break;
    case KERR_SCOPE_PRODUCER:
        if (leadership)
            return KERR_COORDINATOR_NOT_AVAILABLE;
        break;
    }
    return KERR_UNKNOWN_SERVER_ERROR;
}

int16_t kerr_from_rl(int rl_code, enum kerr_scope scope)
{
    for (size_t i = 0; i < sizeof(any_scope) / sizeof(any_scope[0]); i++)
        if (any_scope[i].rl == rl_code)
            return any_scope[i].kafka;
    return scoped(rl_code, scope);
}

int16_t kerr_invalid_batch(int16_t produce_version)
{
    return produce_version >= 8 ? KERR_INVALID_RECORD : KERR_CORRUPT_MESSAGE;
}

const char *kerr_name(int16_t code)
{
    switch (code) {
#define KERR_NAME(name, num, retriable)                                                         \
    case num:                                                                                   \
        return #name;
        KERR_LIST(KERR_NAME)
#undef KERR_NAME
    }
    return "UNKNOWN";
}

int kerr_retriable(int16_t code)
{
    switch (code) {
#define KERR_RETRIABLE(name, num, retriable)                                                    \
    case num:                                                                                   \
        return retriable;
        KERR_LIST(KERR_RETRIABLE)
#undef KERR_RETRIABLE
    }
    return 0;
}
