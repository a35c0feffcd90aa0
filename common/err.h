/*
 * err: ringlog's error codes, shared by every layer and carried unchanged in protocol responses.
 *
 * Functions return 0 (or a count) on success, -errno for operating-system failures, and one of
 * the RL_E_* codes below for ringlog's own failures. Project codes live in [-5999, -5000], far
 * below any errno (the kernel's are all above -4096), so one int carries either kind without
 * ambiguity and rl_strerror() explains both. A response's error_code field holds the same value,
 * so a client sees exactly what the broker saw.
 *
 * Adding a code: append it to its group in RL_ERROR_LIST with a fresh number; never renumber,
 * since the numbers travel on the wire and are written in logs. Then run
 * `sh tools/gen_errors.sh --write` so client/ringlog.h publishes it (the build fails until then).
 */
#ifndef RL_COMMON_ERR_H
#define RL_COMMON_ERR_H

#define RL_ERR_MIN (-5999)
#define RL_ERR_MAX (-5000)

/* X(NAME, number, message a person can act on) */
#define RL_ERROR_LIST(X)                                                                        \
    /* general */                                                                               \
    X(INVALID_ARGUMENT, -5000, "invalid argument")                                              \
    X(CORRUPT, -5001, "data is corrupt (checksum or structure mismatch)")                       \
    X(FULL, -5002, "buffer or queue is full; retry after in-flight work completes")             \
    X(TIMED_OUT, -5003, "operation timed out")                                                  \
    X(SHUTTING_DOWN, -5004, "shutting down; no new work is accepted, and work still waiting "  \
      "(an append waiting for disk space) is answered without being stored; retry once it runs")\
    X(CLOSED, -5005, "object is closed")                                                        \
    X(NOT_FOUND, -5006, "not found")                                                            \
    X(EXISTS, -5007, "already exists")                                                          \
    X(LIMIT, -5008, "a configured limit was reached")                                           \
    X(INTERNAL, -5009, "internal error (a bug); see the broker log")                            \
    /* batch codec */                                                                           \
    X(BATCH_SHORT, -5100, "batch is shorter than its header or its stated length")              \
    X(BATCH_MAGIC, -5101, "batch has an unknown magic byte (expected 2)")                       \
    X(BATCH_LENGTH, -5102, "batch length field is out of range")                                \
    X(BATCH_CHECKSUM, -5103, "batch checksum mismatch: the bytes were damaged")                 \
    X(BATCH_VARINT, -5104, "batch record has a malformed varint")                               \
    X(BATCH_DECOMPRESS, -5105, "batch records failed to decompress")                            \
    X(BATCH_COUNT, -5106, "batch record count does not match its records")                      \
    X(BATCH_CODEC, -5107, "batch uses an unsupported compression codec")                        \
    X(BATCH_RECORD, -5108, "batch record is malformed (lengths exceed the record)")             \
    X(BATCH_TOO_LARGE, -5109, "batch exceeds the maximum size")                                 \
    X(BATCH_EMPTY, -5110, "batch holds no records")                                             \
    X(BATCH_OFFSETS, -5111, "batch offset deltas are not 0..record_count-1 in order")           \
    X(BATCH_DECOMPRESS_LIMIT, -5112, "batch records decompress past the size limit; send "      \
                                     "smaller batches (lower batch.size)")                      \
    X(BATCH_FLAGS, -5113, "batch sets flags a producer may not (control, log-append time or "   \
                          "reserved bits); send codec bits only")                               \
    X(BATCH_RECORD_ATTRIBUTES, -5114, "batch record attributes byte is not 0 (it is reserved "  \
                                      "in v2 records); the producer must write 0")              \
    X(BATCH_HEADERS, -5115, "batch record headers are malformed (count or lengths exceed the "  \
                            "record, or a null key)")                                           \
    X(BATCH_FIRST_TIMESTAMP, -5116, "batch first_timestamp is not its first record's "          \
                                    "timestamp (record 0 needs timestamp delta 0)")             \
    X(BATCH_MAX_TIMESTAMP, -5117, "batch max_timestamp is not the largest record timestamp; "   \
                                  "the producer must set it from the records")                  \
    X(BATCH_TIMESTAMP_RANGE, -5118, "batch record timestamp is negative or overflows; "         \
                                    "timestamps are milliseconds since 1970")                   \
    X(BATCH_TIMESTAMP_FUTURE, -5119, "record timestamp is too far ahead of the broker's clock " \
                                     "(message.timestamp.after.max.ms); fix the producer's "    \
                                     "clock, and send milliseconds, not micro- or nanoseconds") \
    X(BATCH_TIMESTAMP_PAST, -5120, "record timestamp is older than the broker accepts "         \
                                   "(message.timestamp.before.max.ms); fix the producer's "     \
                                   "clock or its timestamps")                                   \
    /* storage */                                                                               \
    X(OFFSET_OUT_OF_RANGE, -5200, "offset is outside the log (before log start or after end)")  \
    X(LOG_FAILED, -5201, "log refused the write after an earlier I/O failure; restart needed")  \
    X(LOG_CLOSED, -5202, "log is closed")                                                       \
    X(SEGMENT_FULL, -5203, "segment is full")                                                   \
    X(STALE_OFFSET, -5204, "batch base offset does not follow the log end offset")              \
    X(DISK_FULL, -5205, "disk full (no space left on device): appends resume by themselves once " \
      "space is freed (delete topics, lower retention, or grow the volume); reads continue")     \
    /* protocol and broker */                                                                   \
    X(FRAME_TOO_LARGE, -5300, "frame exceeds the maximum frame size")                           \
    X(FRAME_MALFORMED, -5301, "frame could not be decoded")                                     \
    X(UNSUPPORTED_VERSION, -5302, "unsupported protocol version")                               \
    X(UNKNOWN_API, -5303, "unknown request type")                                               \
    X(INVALID_REQUEST, -5304, "request is invalid")                                             \
    X(UNKNOWN_TOPIC, -5305, "topic does not exist")                                             \
    X(UNKNOWN_PARTITION, -5306, "partition does not exist")                                     \
    X(TOPIC_EXISTS, -5307, "topic already exists")                                              \
    X(INVALID_TOPIC_NAME, -5308, "invalid topic name (1-249 chars of [A-Za-z0-9._-])")          \
    X(INVALID_PARTITIONS, -5309, "invalid partition count")                                     \
    X(INVALID_REPLICATION, -5310, "invalid replication factor")                                 \
    X(INVALID_CONFIG, -5311, "invalid configuration")                                           \
    X(MESSAGE_TOO_LARGE, -5312, "batch is larger than the topic's max.message.bytes")           \
    X(NOT_LEADER, -5313, "this broker is not the leader for the partition")                     \
    X(TOO_MANY_CONNECTIONS, -5314, "broker connection limit reached")                           \
    X(THROTTLED, -5315, "broker is over its memory budget; retry after the throttle time")      \
    X(REQUEST_TIMED_OUT, -5316, "request timed out in the broker")                              \
    X(BROKER_UNAVAILABLE, -5317, "broker is not reachable")                                     \
    X(INVALID_SPLITS, -5318, "range split keys must be sorted, distinct and partitions-1 long") \
    X(INTERNAL_TOPIC, -5330, "topic is internal to the broker (names starting with __): "     \
      "clients may not produce to, delete or reconfigure it")                                   \
    X(DATA_DIR_LOCKED, -5331, "data directory is in use by another ringlogd process")          \
    X(NOT_ENOUGH_REPLICAS, -5332, "fewer in-sync replicas than the topic's min.insync.replicas") \
    /* idempotent producers */                                                                  \
    X(OUT_OF_ORDER_SEQUENCE, -5400, "producer sequence has a gap")                              \
    X(DUPLICATE_SEQUENCE, -5401, "producer sequence is a duplicate")                            \
    X(PRODUCER_FENCED, -5402, "producer epoch is older than the current one (fenced)")          \
    X(UNKNOWN_PRODUCER_ID, -5403, "producer id is unknown")                                     \
    X(INVALID_PRODUCER_EPOCH, -5404, "producer epoch is invalid")                               \
    X(PRODUCER_ID_NOT_YET_KNOWN, -5405, "producer id lies past every id block this broker has " \
      "seen recorded: its metadata lags the broker that handed the id out; retry shortly")      \
    /* consumer groups */                                                                       \
    X(COORDINATOR_NOT_AVAILABLE, -5500, "group coordinator is not available; retry")            \
    X(NOT_COORDINATOR, -5501, "this broker is not the group's coordinator")                     \
    X(UNKNOWN_MEMBER_ID, -5502, "unknown group member id; rejoin the group")                    \
    X(ILLEGAL_GENERATION, -5503, "stale group generation; rejoin the group")                    \
    X(REBALANCE_IN_PROGRESS, -5504, "group is rebalancing; rejoin the group")                   \
    X(GROUP_ID_NOT_FOUND, -5505, "group does not exist")                                        \
    X(INVALID_SESSION_TIMEOUT, -5506, "session timeout is outside the broker's allowed range")  \
    X(INCONSISTENT_PROTOCOL, -5507, "member's assignors share none with the group")             \
    X(INVALID_GROUP_ID, -5508, "invalid group id")                                              \
    X(COORDINATOR_LOADING, -5509, "the group coordinator was just elected and is loading the "  \
      "group's committed offsets; retry shortly")                                               \
    /* replication */                                                                           \
    X(RAFT_NOT_LEADER, -5600, "raft node is not the leader")                                    \
    X(RAFT_DROPPED, -5601, "raft proposal was dropped (leadership changed)")                    \
    X(RAFT_CONF_PENDING, -5602, "a membership change is already in progress")                   \
    X(RAFT_TRANSFERRING, -5603, "leadership transfer in progress")                             \
    X(RAFT_CATCHING_UP, -5604, "the new configuration's voters lag behind the commit index; "   \
                               "retry once they have caught up")                            \
    X(REASSIGN_RUNNING, -5605, "a move of the partition's replicas is already running")       \
    X(UNKNOWN_BROKER, -5606, "no broker with that node id is registered in the cluster")   \
    X(BROKER_DECOMMISSIONED, -5607, "broker is decommissioned: nothing is placed on it")   \
    X(NO_MOVE_RUNNING, -5608, "no move of the partition's replicas is running")

/* client/ringlog.h publishes the same enum (generated from this list by tools/gen_errors.sh,
 * checked at build time by client/error.c); whichever header comes first defines it. */
#ifndef RL_ERROR_ENUM_DEFINED
#define RL_ERROR_ENUM_DEFINED
enum rl_error {
#define RL_ERR_ENUM(name, num, msg) RL_E_##name = (num),
    RL_ERROR_LIST(RL_ERR_ENUM)
#undef RL_ERR_ENUM
};
#endif

/* Message for any return code: 0, -errno, or RL_E_*. Never NULL; static storage. */
const char *rl_strerror(int code);

/* Symbolic name ("BATCH_CHECKSUM", "ENOENT", "OK"); never NULL; static storage. */
const char *rl_error_name(int code);

/* True when code is one of ringlog's own (not an errno). */
static inline int rl_is_project_error(int code)
{
    return code >= RL_ERR_MIN && code <= RL_ERR_MAX;
}

#endif
