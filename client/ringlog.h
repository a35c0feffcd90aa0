/*
 * ringlog.h: libringlog, the C client of ringlog (producer, consumer, admin).
 *
 * Where it sits: application -> libringlog -> native protocol over TCP -> ringlogd. The library
 * depends on nothing of the broker; it speaks the protocol of proto/ringlog.proto and builds
 * record batches (common/batch.h) itself, so a record is copied exactly once, from the caller's
 * buffer into the batch being built, and never re-encoded after that.
 *
 * Conventions (in the manner of lmdb.h):
 *  - Functions return 0 (or a count) on success and a negative code on failure: -errno for an
 *    operating-system failure, RL_E_* (in [-5999, -5000]) for ringlog's own. rl_strerror()
 *    explains any of them; the same numbers travel in broker responses, so a client sees exactly
 *    the code the broker answered with (enum rl_error below). Each thread keeps the message
 *    of its last failed call (with the broker's own text when it sent one): rl_last_error(),
 *    and per handle rl_*_last_error().
 *  - Ownership: the library never keeps a pointer the caller passed in after the call returns,
 *    except where a function says so. Pointers the library returns belong to the handle and stay
 *    valid for the period each function states.
 *  - Thread safety: a configuration is not thread-safe (build it on one thread, then only read
 *    it). A producer is fully thread-safe: any number of threads may call rl_producer_send and
 *    rl_producer_flush at once. A consumer and an admin handle are single-threaded objects: use
 *    each from one thread at a time (different handles on different threads are independent);
 *    rl_consumer_wakeup is the one consumer call safe from any thread.
 *  - Blocking: calls that talk to a broker block the calling thread, each bounded by a timeout
 *    (request.timeout.ms unless the call takes its own; RL_TIMEOUT_INFINITE below says what a
 *    timeout argument means). None blocks forever, except rl_consumer_poll given
 *    RL_TIMEOUT_INFINITE, which waits for a record (rl_consumer_wakeup ends the wait).
 *    rl_producer_send blocks at most max.block.ms, and not at all with max.block.ms=0.
 *
 * Build with `pkg-config --cflags --libs ringlog`.
 */
#ifndef RINGLOG_H
#define RINGLOG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RL_VERSION_STRING "0.1.0"

/* Special start positions for rl_consumer_assign / rl_consumer_seek and timestamps for
 * rl_admin_list_offsets (the same values as the protocol's ListOffsets). */
#define RL_OFFSET_EARLIEST (-2)
#define RL_OFFSET_LATEST (-1)
/* Partition argument of rl_producer_send: let the topic's partitioner choose. */
#define RL_PARTITION_ANY (-1)

/* Timeouts: every timeout_ms argument of this API means the same thing. A positive value
 * waits at most that many milliseconds, 0 does not wait (only checks), and RL_TIMEOUT_INFINITE
 * (any negative value) waits until the call's work is done. Where the library bounds that work
 * itself (a record settles within delivery.timeout.ms), "infinite" still ends. */
#ifndef RL_TIMEOUT_INFINITE
#define RL_TIMEOUT_INFINITE (-1)
#endif

/* --- errors ------------------------------------------------------------------------------------
 *
 * Every function that can fail returns 0 (or a count) on success and a negative code: -errno
 * for an operating-system failure (-ENOMEM, -EDEADLK...) or one of enum rl_error, ringlog's own
 * codes, in [-5999, -5000] so they never collide with an errno. They are the numbers the broker
 * sends in its answers, unchanged: the list is generated from the broker's (common/err.h) and a
 * build-time check keeps them equal. Numbers never change; new codes are appended.
 *
 * What to do with a code: rl_error_is_retriable() says the same call may succeed if repeated
 * later (the library has usually retried already, within its timeouts); rl_error_is_fatal()
 * says the handle cannot do its work any more (a fenced producer, a broker too old): destroy it
 * and create a new one. A code that is neither is a problem with this call's input or state
 * (an unknown topic, an invalid argument), which repeating will not fix.
 */
#ifndef RL_ERROR_ENUM_DEFINED
#define RL_ERROR_ENUM_DEFINED
/* BEGIN rl_error: generated from common/err.h by tools/gen_errors.sh; do not edit */
enum rl_error {
    RL_E_INVALID_ARGUMENT = -5000, /**< invalid argument */
    RL_E_CORRUPT = -5001, /**< data is corrupt (checksum or structure mismatch) */
    RL_E_FULL = -5002, /**< buffer or queue is full; retry after in-flight work completes */
    RL_E_TIMED_OUT = -5003, /**< operation timed out */
    RL_E_SHUTTING_DOWN = -5004, /**< shutting down; no new work is accepted, and work still
        waiting (an append waiting for disk space) is answered without being stored; retry once
        it runs */
    RL_E_CLOSED = -5005, /**< object is closed */
    RL_E_NOT_FOUND = -5006, /**< not found */
    RL_E_EXISTS = -5007, /**< already exists */
    RL_E_LIMIT = -5008, /**< a configured limit was reached */
    RL_E_INTERNAL = -5009, /**< internal error (a bug); see the broker log */
    RL_E_BATCH_SHORT = -5100, /**< batch is shorter than its header or its stated length */
    RL_E_BATCH_MAGIC = -5101, /**< batch has an unknown magic byte (expected 2) */
    RL_E_BATCH_LENGTH = -5102, /**< batch length field is out of range */
    RL_E_BATCH_CHECKSUM = -5103, /**< batch checksum mismatch: the bytes were damaged */
    RL_E_BATCH_VARINT = -5104, /**< batch record has a malformed varint */
    RL_E_BATCH_DECOMPRESS = -5105, /**< batch records failed to decompress */
    RL_E_BATCH_COUNT = -5106, /**< batch record count does not match its records */
    RL_E_BATCH_CODEC = -5107, /**< batch uses an unsupported compression codec */
    RL_E_BATCH_RECORD = -5108, /**< batch record is malformed (lengths exceed the record) */
    RL_E_BATCH_TOO_LARGE = -5109, /**< batch exceeds the maximum size */
    RL_E_BATCH_EMPTY = -5110, /**< batch holds no records */
    RL_E_BATCH_OFFSETS = -5111, /**< batch offset deltas are not 0..record_count-1 in order */
    RL_E_BATCH_DECOMPRESS_LIMIT = -5112, /**< batch records decompress past the size limit; send
        smaller batches (lower batch.size) */
    RL_E_BATCH_FLAGS = -5113, /**< batch sets flags a producer may not (control, log-append time
        or reserved bits); send codec bits only */
    RL_E_BATCH_RECORD_ATTRIBUTES = -5114, /**< batch record attributes byte is not 0 (it is
        reserved in v2 records); the producer must write 0 */
    RL_E_BATCH_HEADERS = -5115, /**< batch record headers are malformed (count or lengths exceed
        the record, or a null key) */
    RL_E_BATCH_FIRST_TIMESTAMP = -5116, /**< batch first_timestamp is not its first record's
        timestamp (record 0 needs timestamp delta 0) */
    RL_E_BATCH_MAX_TIMESTAMP = -5117, /**< batch max_timestamp is not the largest record
        timestamp; the producer must set it from the records */
    RL_E_BATCH_TIMESTAMP_RANGE = -5118, /**< batch record timestamp is negative or overflows;
        timestamps are milliseconds since 1970 */
    RL_E_BATCH_TIMESTAMP_FUTURE = -5119, /**< record timestamp is too far ahead of the broker's
        clock (message.timestamp.after.max.ms); fix the producer's clock, and send milliseconds,
        not micro- or nanoseconds */
    RL_E_BATCH_TIMESTAMP_PAST = -5120, /**< record timestamp is older than the broker accepts
        (message.timestamp.before.max.ms); fix the producer's clock or its timestamps */
    RL_E_OFFSET_OUT_OF_RANGE = -5200, /**< offset is outside the log (before log start or after
        end) */
    RL_E_LOG_FAILED = -5201, /**< log refused the write after an earlier I/O failure; restart
        needed */
    RL_E_LOG_CLOSED = -5202, /**< log is closed */
    RL_E_SEGMENT_FULL = -5203, /**< segment is full */
    RL_E_STALE_OFFSET = -5204, /**< batch base offset does not follow the log end offset */
    RL_E_DISK_FULL = -5205, /**< disk full (no space left on device): appends resume by
        themselves once space is freed (delete topics, lower retention, or grow the volume);
        reads continue */
    RL_E_FRAME_TOO_LARGE = -5300, /**< frame exceeds the maximum frame size */
    RL_E_FRAME_MALFORMED = -5301, /**< frame could not be decoded */
    RL_E_UNSUPPORTED_VERSION = -5302, /**< unsupported protocol version */
    RL_E_UNKNOWN_API = -5303, /**< unknown request type */
    RL_E_INVALID_REQUEST = -5304, /**< request is invalid */
    RL_E_UNKNOWN_TOPIC = -5305, /**< topic does not exist */
    RL_E_UNKNOWN_PARTITION = -5306, /**< partition does not exist */
    RL_E_TOPIC_EXISTS = -5307, /**< topic already exists */
    RL_E_INVALID_TOPIC_NAME = -5308, /**< invalid topic name (1-249 chars of [A-Za-z0-9._-]) */
    RL_E_INVALID_PARTITIONS = -5309, /**< invalid partition count */
    RL_E_INVALID_REPLICATION = -5310, /**< invalid replication factor */
    RL_E_INVALID_CONFIG = -5311, /**< invalid configuration */
    RL_E_MESSAGE_TOO_LARGE = -5312, /**< batch is larger than the topic's max.message.bytes */
    RL_E_NOT_LEADER = -5313, /**< this broker is not the leader for the partition */
    RL_E_TOO_MANY_CONNECTIONS = -5314, /**< broker connection limit reached */
    RL_E_THROTTLED = -5315, /**< broker is over its memory budget; retry after the throttle time */
    RL_E_REQUEST_TIMED_OUT = -5316, /**< request timed out in the broker */
    RL_E_BROKER_UNAVAILABLE = -5317, /**< broker is not reachable */
    RL_E_INVALID_SPLITS = -5318, /**< range split keys must be sorted, distinct and partitions-1
        long */
    RL_E_INTERNAL_TOPIC = -5330, /**< topic is internal to the broker (names starting with __):
        clients may not produce to, delete or reconfigure it */
    RL_E_DATA_DIR_LOCKED = -5331, /**< data directory is in use by another ringlogd process */
    RL_E_NOT_ENOUGH_REPLICAS = -5332, /**< fewer in-sync replicas than the topic's
        min.insync.replicas */
    RL_E_OUT_OF_ORDER_SEQUENCE = -5400, /**< producer sequence has a gap */
    RL_E_DUPLICATE_SEQUENCE = -5401, /**< producer sequence is a duplicate */
    RL_E_PRODUCER_FENCED = -5402, /**< producer epoch is older than the current one (fenced) */
    RL_E_UNKNOWN_PRODUCER_ID = -5403, /**< producer id is unknown */
    RL_E_INVALID_PRODUCER_EPOCH = -5404, /**< producer epoch is invalid */
    RL_E_PRODUCER_ID_NOT_YET_KNOWN = -5405, /**< producer id lies past every id block this
        broker has seen recorded: its metadata lags the broker that handed the id out; retry
        shortly */
    RL_E_COORDINATOR_NOT_AVAILABLE = -5500, /**< group coordinator is not available; retry */
    RL_E_NOT_COORDINATOR = -5501, /**< this broker is not the group's coordinator */
    RL_E_UNKNOWN_MEMBER_ID = -5502, /**< unknown group member id; rejoin the group */
    RL_E_ILLEGAL_GENERATION = -5503, /**< stale group generation; rejoin the group */
    RL_E_REBALANCE_IN_PROGRESS = -5504, /**< group is rebalancing; rejoin the group */
    RL_E_GROUP_ID_NOT_FOUND = -5505, /**< group does not exist */
    RL_E_INVALID_SESSION_TIMEOUT = -5506, /**< session timeout is outside the broker's allowed
        range */
    RL_E_INCONSISTENT_PROTOCOL = -5507, /**< member's assignors share none with the group */
    RL_E_INVALID_GROUP_ID = -5508, /**< invalid group id */
    RL_E_COORDINATOR_LOADING = -5509, /**< the group coordinator was just elected and is loading
        the group's committed offsets; retry shortly */
    RL_E_RAFT_NOT_LEADER = -5600, /**< raft node is not the leader */
    RL_E_RAFT_DROPPED = -5601, /**< raft proposal was dropped (leadership changed) */
    RL_E_RAFT_CONF_PENDING = -5602, /**< a membership change is already in progress */
    RL_E_RAFT_TRANSFERRING = -5603, /**< leadership transfer in progress */
    RL_E_RAFT_CATCHING_UP = -5604, /**< the new configuration's voters lag behind the commit
        index; retry once they have caught up */
    RL_E_REASSIGN_RUNNING = -5605, /**< a move of the partition's replicas is already running */
    RL_E_UNKNOWN_BROKER = -5606, /**< no broker with that node id is registered in the cluster */
    RL_E_BROKER_DECOMMISSIONED = -5607, /**< broker is decommissioned: nothing is placed on it */
    RL_E_NO_MOVE_RUNNING = -5608, /**< no move of the partition's replicas is running */
};
/* END rl_error */
#endif

/* Message for any return code: 0, -errno or RL_E_*. Static storage; never NULL. */
const char *rl_strerror(int code);
/* Symbolic name of a code ("UNKNOWN_TOPIC", "ECONNREFUSED", "OK"). Static; never NULL. */
const char *rl_error_name(int code);
/* 1 when repeating the operation later may succeed: connection loss, no leader yet, broker
 * unavailable or throttling, timeouts, a rebalance in progress. 0 otherwise (also for 0). */
int rl_error_is_retriable(int code);
/* 1 when the handle that returned the code can do no more work and should be destroyed:
 * RL_E_PRODUCER_FENCED, RL_E_INVALID_PRODUCER_EPOCH, RL_E_UNSUPPORTED_VERSION, RL_E_UNKNOWN_API
 * (the broker lacks an API the handle needs). 0 otherwise. */
int rl_error_is_fatal(int code);
/* The message of the calling thread's most recent failed libringlog call (any handle), with
 * the broker's own text when it sent one; "" when none failed yet. Thread-local storage, valid
 * until the thread's next failing call. Never NULL. */
const char *rl_last_error(void);
/* The library version, "0.1.0". Static. */
const char *rl_version(void);

/* --- configuration ---------------------------------------------------------------------------
 *
 * A configuration is a set of `key = value` strings, checked when set; settings that contradict
 * each other are refused when a handle is created (see rl_conf_check). Keys carry Kafka's names
 * where Kafka has the setting; the names of ringlog 0.1 still work as aliases (in brackets).
 * Keys (defaults):
 *   bootstrap.servers      brokers to start from, "host:port,..." (127.0.0.1:9400)
 *   client.id              sent with every request (ringlog)
 *   request.timeout.ms     bound on each request to a broker (30000)
 *   socket.connection.setup.timeout.ms  bound on a TCP connect (5000) [connect.timeout.ms]
 *   log.level              debug, info, warn, error or off: the least severe message the
 *                          handle logs (the RINGLOG_LOG environment variable, else info); see
 *                          rl_conf_set_log_cb
 *   retry.backoff.ms       first retry delay; doubles per attempt, full jitter (100)
 *   retry.backoff.max.ms   cap of the retry delay (1000)
 *  producer:
 *   acks                   0, 1 or all (all)
 *   batch.size             max uncompressed record bytes per batch and partition (262144)
 *   linger.ms              how long a partition's batch waits for more records (5)
 *   compression.type       none or zstd (none) [compression]
 *   compression.zstd.level zstd level, 1 fastest (1) [compression.level]
 *   buffer.memory          bound on bytes of records not yet acknowledged (67108864)
 *   max.block.ms           how long rl_producer_send may wait: for buffer space, and for a new
 *                          topic's metadata; 0 makes send never block (see rl_producer_send)
 *                          (60000)
 *   delivery.timeout.ms    bound on a record's whole life: batching, retries, answers (120000)
 *   max.in.flight.requests.per.connection  produce requests in flight per broker connection,
 *                          1..5 (5) [max.in.flight]
 *   max.in.flight.per.partition  batches in flight per partition, 1..5; with idempotence
 *                          order is kept through retries; without it, above 1 a retry may
 *                          reorder records of that partition (5)
 *   enable.idempotence     true or false (true). Needs acks=all, as in Kafka: with acks 0
 *                          or 1 it reads false unless set, and set to true it is refused
 *                          (rl_conf_check). Each batch carries the
 *                          producer id, epoch and a per-partition sequence, so the broker
 *                          appends a retried batch once and keeps a partition's batches in
 *                          order; see "producer" below
 *  consumer:
 *   fetch.min.bytes        a fetch waits until this much data is there... (1)
 *   fetch.max.wait.ms      ...or this long (500)
 *   fetch.max.bytes        bound on one fetch response (52428800)
 *   max.partition.fetch.bytes  bound per partition in one fetch (1048576)
 *   auto.offset.reset      where to go after OFFSET_OUT_OF_RANGE, and where a group member
 *                          starts a partition the group never committed: earliest, latest or
 *                          none (none: rl_consumer_poll returns the error) (earliest)
 *  consumer groups (rl_consumer_subscribe):
 *   group.id               the group to join ("": none)
 *   session.timeout.ms     the coordinator drops a member it has not heard from this long (10000)
 *   heartbeat.interval.ms  how often the consumer's heartbeat thread heartbeats; must be below
 *                          session.timeout.ms (3000)
 *   max.poll.interval.ms   a member that does not call rl_consumer_poll for this long leaves
 *                          the group (its next poll gets LOST, then rejoins) (300000)
 *   rebalance.timeout.ms   how long a rebalance waits for members to rejoin (30000)
 *   partition.assignment.strategy  range, roundrobin or cooperative-sticky (range); the
 *                          first two are eager (every member gives up everything at each
 *                          rebalance), cooperative-sticky is incremental: see "consumer groups"
 *   enable.auto.commit     true or false (true): commit what poll has handed out, every
 *                          auto.commit.interval.ms, before partitions are revoked and on close
 *   auto.commit.interval.ms  (5000)
 */
struct rl_conf;

/* Creates a configuration holding the defaults. Returns NULL when out of memory.
 * The caller owns it; free with rl_conf_destroy. */
struct rl_conf *rl_conf_new(void);
/* Copies a configuration (NULL when out of memory). */
struct rl_conf *rl_conf_dup(const struct rl_conf *conf);
void rl_conf_destroy(struct rl_conf *conf);

/* Sets one key. Returns 0, or RL_E_INVALID_CONFIG with a message naming the key, the bad value
 * and what is allowed written to err (errlen bytes, NUL-terminated; err may be NULL). Copies
 * key and value. */
int rl_conf_set(struct rl_conf *conf, const char *key, const char *value, char *err,
                size_t errlen);

/* Reads a key's current value (or an alias's) into buf, NUL-terminated when buflen > 0.
 * Returns 0, RL_E_NOT_FOUND for an unknown key, or RL_E_FULL when the value did not fit (buf
 * then holds as much as fits; rl_conf_get_size says how much is needed). */
int rl_conf_get(const struct rl_conf *conf, const char *key, char *buf, size_t buflen);

/* The buffer size rl_conf_get needs for key's value, counting the terminating NUL; 0 for an
 * unknown key. */
size_t rl_conf_get_size(const struct rl_conf *conf, const char *key);

/* Checks the settings against each other, as rl_producer_new and rl_consumer_new do:
 * heartbeat.interval.ms below session.timeout.ms, retry.backoff.ms at most
 * retry.backoff.max.ms, enable.idempotence=true only with acks=all. Returns 0, or
 * RL_E_INVALID_CONFIG with a message naming both keys and the fix in err (errlen bytes; err
 * may be NULL). */
int rl_conf_check(const struct rl_conf *conf, char *err, size_t errlen);

/* --- logging ---------------------------------------------------------------------------------
 *
 * The library logs what an operator may want to know (connections lost and regained, metadata
 * refreshes at debug level). Without a callback, messages go to stderr, one line each. */
enum rl_loglevel {
    RL_LOGLEVEL_DEBUG = 0,
    RL_LOGLEVEL_INFO = 1,
    RL_LOGLEVEL_WARN = 2,
    RL_LOGLEVEL_ERROR = 3,
};

/* Receives each message at or above log.level of a handle made from this configuration.
 * Called on whichever thread logs (the producer's I/O thread, a consumer's heartbeat thread,
 * or the thread calling into a consumer or admin handle); message is valid during the call
 * only and has no newline. It must not call back into the handle that logs. */
typedef void (*rl_log_cb)(void *ctx, int level, const char *message);

/* Stores the log callback and its context (NULL cb: back to stderr). */
void rl_conf_set_log_cb(struct rl_conf *conf, rl_log_cb cb, void *ctx);

/* Whether a record is in the log, as far as the producer can know (librdkafka's message
 * status). A failed record that was never sent, or that the broker refused, is NOT_PERSISTED;
 * one whose request went out and got no answer (connection lost, timed out) may be in the log:
 * POSSIBLY_PERSISTED, and a consumer may yet see it. With acks=0 success is only POSSIBLY. */
enum rl_delivery_status {
    RL_DELIVERY_NOT_PERSISTED = 0,
    RL_DELIVERY_POSSIBLY_PERSISTED = 1,
    RL_DELIVERY_PERSISTED = 2,
};

/* A record's fate, passed to the delivery callback. Pointers are valid only during the call. */
struct rl_delivery {
    const char *topic;
    int32_t partition; /* -1 when the record failed before a partition was chosen */
    int64_t offset; /* the record's offset when error == 0; -1 otherwise (or when acks=0) */
    int error;      /* 0 when the broker acknowledged the record */
    const char *error_message; /* "" on success; the broker's message or the library's */
    void *opaque;   /* what was given to rl_producer_send */
    enum rl_delivery_status status;
};

/* Called once per record sent, on the producer's I/O thread (never on the thread that sent),
 * in the order the records of a partition were sent. It should return quickly: while it runs
 * no answer is read and no batch is sent. It must not call rl_producer_send,
 * rl_producer_flush or rl_producer_destroy of the same producer: they would wait for the
 * thread that runs the callback, so they return -EDEADLK at once instead (with a message in
 * rl_last_error). */
typedef void (*rl_delivery_cb)(void *ctx, const struct rl_delivery *d);

/* Stores the delivery callback and its context (the library keeps ctx; the caller keeps it
 * alive for the producer's lifetime). */
void rl_conf_set_delivery_cb(struct rl_conf *conf, rl_delivery_cb cb, void *ctx);

struct rl_consumer;

/* A partition named in a rebalance callback. */
struct rl_topic_partition {
    const char *topic;
    int32_t partition;
};

/* What a rebalance callback is told (see "consumer groups" below for when each comes). */
enum rl_rebalance_event {
    RL_REBALANCE_REVOKED = 1,  /* the partitions are about to be given up, in order */
    RL_REBALANCE_ASSIGNED = 2, /* the partitions are now this member's */
    RL_REBALANCE_LOST = 3,     /* the partitions were already taken away: the member was
                                  dropped from the group and others may own them now */
};

/* Called by a group member inside rl_consumer_poll (or rl_consumer_close) on the caller's
 * thread, never on the library's threads:
 *  - REVOKED with the partitions held, before the member rejoins or leaves (cooperative
 *    rebalancing: only the partitions that move to another member). The member is still
 *    their owner: the callback may commit (rl_consumer_commit, ..._commit_offset).
 *  - LOST with the partitions held when the member learns it was dropped from the group
 *    (session.timeout.ms without a heartbeat reaching the coordinator, max.poll.interval.ms
 *    without a poll, or the coordinator answering that the member or its generation is
 *    unknown). Another member may own them already, so nothing can be committed for them;
 *    drop per-partition state. LOST always comes before the next ASSIGNED, and no REVOKED
 *    follows it for the same partitions.
 *  - ASSIGNED with the new partitions once the group is in sync (cooperative: only those
 *    added in this generation, possibly none; retained ones are not named). Their positions
 *    are already resolved to offsets (the committed offset, or auto.offset.reset looked up
 *    at the broker), so rl_consumer_position returns a real offset inside the callback, and
 *    the callback may rl_consumer_seek / rl_consumer_seek_timestamp them; the first record
 *    poll returns for a partition is then the one at the position the callback left.
 * The callback must not call rl_consumer_poll, close or destroy. Pointers are valid during the
 * call only. */
typedef void (*rl_rebalance_cb)(void *ctx, struct rl_consumer *c, enum rl_rebalance_event event,
                                const struct rl_topic_partition *parts, size_t count);
void rl_conf_set_rebalance_cb(struct rl_conf *conf, rl_rebalance_cb cb, void *ctx);

/* --- producer ---------------------------------------------------------------------------------
 *
 * Records are batched per partition. A batch is sent when it reaches batch.size, when it has
 * waited linger.ms, or on rl_producer_flush. A background I/O thread per producer sends batches
 * (one connection per broker, up to max.in.flight requests in flight on each), matches answers,
 * retries retriable failures (connection loss, NOT_LEADER, UNKNOWN_TOPIC/PARTITION after a
 * metadata refresh, throttling, timeouts) with exponential backoff and full jitter until
 * delivery.timeout.ms, and reports each record's fate through the delivery callback.
 *
 * Idempotence (enable.idempotence, the default): the I/O thread asks for a producer id and epoch
 * (InitProducerId) before the first batch goes out; each batch gets its partition's next
 * sequence when it is first sent. Up to max.in.flight.per.partition batches per partition are in
 * flight; a retried batch keeps its sequence and the partition's later batches go again in order
 * after it, so the broker appends every record once and in send order (a retry of a batch it
 * already has is answered with the original offsets). When a sent batch ends without an answer
 * (delivery.timeout.ms) or with an error, the broker may or may not hold its sequence: the
 * producer lets every other sent batch settle, then bumps its epoch and restarts sequences at 0.
 * A producer fenced by a newer instance of its id fails further records with
 * RL_E_PRODUCER_FENCED, as does a broker that cannot hand out producer ids.
 */
struct rl_producer;

/* Creates a producer from conf (copied; the caller keeps conf). Starts its I/O thread; does not
 * connect yet. Returns NULL with a message in err when the configuration is unusable or a
 * resource cannot be had. */
struct rl_producer *rl_producer_new(const struct rl_conf *conf, char *err, size_t errlen);

/* Queues one record. partition is RL_PARTITION_ANY (use the topic's partitioner: hash ->
 * xxh3-64(key) % partitions, range -> number of split keys <= key; keyless records stick to one
 * partition per batch) or an explicit partition. key may be NULL (no key); value may be NULL
 * (a tombstone). timestamp_ms <= 0 means now. Key and value are copied before it returns.
 *
 * Blocks at most max.block.ms. The I/O thread fetches each new topic's metadata; once it is
 * known, records queue through broker outages (bounded by buffer.memory and
 * delivery.timeout.ms). Before that, it depends on max.block.ms:
 *  - max.block.ms > 0 (the default): send waits for the metadata answer and fails when there is
 *    none: RL_E_UNKNOWN_TOPIC (the broker does not have it), RL_E_BROKER_UNAVAILABLE (no broker
 *    reachable), RL_E_TIMED_OUT (no answer within max.block.ms). When buffer.memory is used up,
 *    send waits up to max.block.ms for acknowledgements to free space, then fails with
 *    RL_E_FULL.
 *  - max.block.ms = 0 (non-blocking): send never waits. A record for a topic whose metadata is
 *    pending waits in a queue of its own (counted in buffer.memory) and goes out once a broker
 *    answers; an unknown topic, or no answer within delivery.timeout.ms, fails it through the
 *    delivery callback. The only failure the network can cause is RL_E_FULL, at once.
 *
 * Returns 0 when queued (the delivery callback will report the outcome), or: RL_E_FULL,
 * RL_E_UNKNOWN_TOPIC, RL_E_BROKER_UNAVAILABLE, RL_E_TIMED_OUT (see above),
 * RL_E_UNKNOWN_PARTITION (an explicit partition the known topic lacks), RL_E_BATCH_TOO_LARGE
 * (one record larger than batch.size), RL_E_INVALID_ARGUMENT, RL_E_CLOSED (the producer is being
 * destroyed), a fatal code (RL_E_PRODUCER_FENCED...), or -EDEADLK from inside a delivery
 * callback. No callback runs for a record that was refused. */
int rl_producer_send(struct rl_producer *p, const char *topic, int32_t partition,
                     const void *key, size_t key_len, const void *value, size_t value_len,
                     int64_t timestamp_ms, void *opaque);

/* A record header, in the same form when produced (rl_message.headers) and when consumed
 * (rl_record_header): key bytes and their length, value bytes and their length (value NULL:
 * a null value, value_len 0). Producing, key_len 0 means key is a NUL-terminated string (so
 * `{"trace", "abc", 3}` still works); a consumed key is not NUL-terminated: use key_len. */
struct rl_header {
    const char *key;
    const void *value;
    size_t value_len;
    size_t key_len;
};

#define RL_MAX_HEADERS 64 /* headers per record */

/* A record with every field, for rl_producer_send_message. All pointers are the caller's and
 * are only read during the call (the bytes are copied into the batch). */
struct rl_message {
    const char *topic;
    int32_t partition; /* RL_PARTITION_ANY or an explicit partition */
    const void *key;   /* NULL: no key */
    size_t key_len;
    const void *value; /* NULL: a null value (tombstone) */
    size_t value_len;
    int64_t timestamp_ms; /* <= 0: now */
    const struct rl_header *headers;
    uint32_t header_count; /* at most RL_MAX_HEADERS */
    void *opaque;          /* handed back in the delivery callback */
};

/* rl_producer_send with headers: the same contract, plus RL_E_INVALID_ARGUMENT for more than
 * RL_MAX_HEADERS headers. rl_producer_send is this call without headers. */
int rl_producer_send_message(struct rl_producer *p, const struct rl_message *m);

/* Sends every queued record now and waits until each has been acknowledged or has failed (its
 * callback has run), or timeout_ms passes (RL_TIMEOUT_INFINITE: until every record settled,
 * which delivery.timeout.ms bounds). Returns 0, RL_E_TIMED_OUT, or -EDEADLK from inside a
 * delivery callback. Records sent by other threads during the flush are waited for as well. */
int rl_producer_flush(struct rl_producer *p, int timeout_ms);

/* Counters since the producer started: records acknowledged and records failed. */
void rl_producer_counts(struct rl_producer *p, uint64_t *acked, uint64_t *failed);

/* A snapshot of a producer's work. Fields may be added at the end; pass sizeof(struct
 * rl_producer_stats) so an older program keeps working with a newer library. */
struct rl_producer_stats {
    uint64_t queued_records;    /* accepted, not yet in a request (waiting for metadata, a
                                 * leader, linger.ms or a free slot) */
    uint64_t in_flight_records; /* in requests sent and not yet answered */
    uint64_t in_flight_requests;
    uint64_t buffer_bytes;      /* of buffer.memory, in use by records not yet settled */
    uint64_t acked_records;     /* since the producer started */
    uint64_t failed_records;
    uint64_t retries;           /* batches sent again after a retriable failure */
    uint64_t requests;          /* produce requests answered */
    uint64_t rtt_avg_us;        /* request round trip, send to answer, over all answers */
    uint64_t rtt_max_us;
    uint64_t rtt_last_us;
};

/* Fills *out (size bytes of it: sizeof(*out)). Returns 0, or RL_E_INVALID_ARGUMENT. */
int rl_producer_stats(struct rl_producer *p, struct rl_producer_stats *out, size_t size);

/* Flushes (up to timeout_ms, as in flush), then fails what is left with RL_E_SHUTTING_DOWN
 * through the callback, stops the I/O thread and frees everything. Returns the flush result.
 * p is invalid afterwards. From inside a delivery callback it returns -EDEADLK and does
 * nothing. */
int rl_producer_destroy(struct rl_producer *p, int timeout_ms);

/* The message of the last failure the calling thread met in a call on this producer (a refused
 * send, a failed flush); when this thread has none, the producer's latest failure from any
 * thread (a record the I/O thread gave up on). Owned by the library; valid until the thread's
 * next call on p. Never NULL. */
const char *rl_producer_last_error(struct rl_producer *p);

/* --- consumer ---------------------------------------------------------------------------------
 *
 * A consumer reads assigned partitions by offset. rl_consumer_poll returns one record at a time
 * from batches already fetched; as soon as a fetch answer arrives it sends the next fetch, so the
 * broker reads ahead while the application works (prefetching). While partitions have data each
 * gets its own fetch (several in flight per broker); once all are caught up one fetch long-polls
 * for all of them (fetch.max.wait.ms). Every batch's checksum is checked before any of its
 * records is returned, and a record that does not decode ends its batch with an error; a
 * damaged batch is reported (RL_E_BATCH_CHECKSUM...) and fetched again on the next poll.
 */
struct rl_consumer;

/* A record returned by rl_consumer_poll. Every pointer in it is owned by the consumer and valid
 * until the next rl_consumer_poll, seek, assign or destroy on the same consumer. */
struct rl_record {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;
    const uint8_t *key;   /* NULL when the record has no key (an empty key is not NULL) */
    size_t key_len;       /* 0 when no key */
    const uint8_t *value; /* NULL for a null value (a tombstone; an empty value is not NULL) */
    size_t value_len;     /* 0 when null */
    uint32_t header_count;
    const uint8_t *headers_raw; /* encoded headers; walk them with rl_record_header */
    size_t headers_len;
};

/* Walks a record's headers: *pos starts at 0. Returns 1 with *out filled (key and key_len;
 * value and value_len, value NULL for a null value; pointers valid like the record's, the key
 * not NUL-terminated), 0 at the end, or a negative code when malformed. */
int rl_record_header(const struct rl_record *rec, size_t *pos, struct rl_header *out);

/* Creates a consumer (conf copied). Does not connect yet. NULL with a message in err on failure:
 * contradictory settings (rl_conf_check), or out of memory. */
struct rl_consumer *rl_consumer_new(const struct rl_conf *conf, char *err, size_t errlen);
void rl_consumer_destroy(struct rl_consumer *c);

/* Adds a partition to the assignment and sets its position: an offset >= 0,
 * RL_OFFSET_EARLIEST or RL_OFFSET_LATEST. Fetches metadata when the topic is new to the consumer.
 * Returns 0, RL_E_UNKNOWN_TOPIC, RL_E_UNKNOWN_PARTITION, RL_E_LIMIT (more than 4096 partitions
 * assigned), RL_E_INVALID_ARGUMENT after rl_consumer_subscribe (a group member's partitions
 * come from the group), or a connection error. */
int rl_consumer_assign(struct rl_consumer *c, const char *topic, int32_t partition,
                       int64_t offset);

/* Assigns every partition of a topic at the same start position. Returns the partition count
 * or a negative code. */
int rl_consumer_assign_topic(struct rl_consumer *c, const char *topic, int64_t offset);

/* Moves an assigned partition's position (offset >= 0, RL_OFFSET_EARLIEST or LATEST). Records
 * already fetched for it are dropped. Returns 0 or RL_E_NOT_FOUND when not assigned. Allowed
 * inside an ASSIGNED rebalance callback. */
int rl_consumer_seek(struct rl_consumer *c, const char *topic, int32_t partition, int64_t offset);

/* Moves an assigned partition to the first record whose timestamp is >= timestamp_ms (asks the
 * broker; blocks up to request.timeout.ms). When no record is that recent, the position becomes
 * the log end. Returns 0 or a negative code. */
int rl_consumer_seek_timestamp(struct rl_consumer *c, const char *topic, int32_t partition,
                               int64_t timestamp_ms);

/* The next offset the consumer will return for a partition: always an offset (>= 0), never
 * RL_OFFSET_EARLIEST / LATEST. A partition assigned or sought to EARLIEST / LATEST is resolved
 * here when poll has not done it yet (asks the broker: blocks up to request.timeout.ms).
 * Returns the offset, RL_E_NOT_FOUND when the partition is not assigned, or the lookup's
 * error. */
int64_t rl_consumer_position(struct rl_consumer *c, const char *topic, int32_t partition);

/* Returns the next record: 1 with *rec filled; 0 when none arrived within timeout_ms (never
 * with RL_TIMEOUT_INFINITE, unless rl_consumer_wakeup was called); or a negative code
 * (RL_E_BATCH_CHECKSUM and friends for a damaged batch, OFFSET_OUT_OF_RANGE when
 * auto.offset.reset is none, connection errors after retries ran out within timeout_ms, group
 * errors). Rebalance callbacks run inside it. A group member's poll may take longer than
 * timeout_ms while a rebalance completes (see "consumer groups" below). */
int rl_consumer_poll(struct rl_consumer *c, int timeout_ms, struct rl_record *rec);

/* Makes a poll in progress on another thread (or the next poll) return 0 at once. The one
 * consumer call that is safe from any thread, and from a signal handler. */
void rl_consumer_wakeup(struct rl_consumer *c);

const char *rl_consumer_last_error(struct rl_consumer *c);

/* A snapshot of a consumer's work. Fields may be added at the end; pass sizeof(struct
 * rl_consumer_stats) so an older program keeps working with a newer library. */
struct rl_consumer_stats {
    uint64_t assigned_partitions;
    uint64_t buffered_bytes;    /* fetched and not yet handed out by poll (queued) */
    uint64_t in_flight_fetches; /* fetch requests sent and not yet answered */
    uint64_t records;           /* handed out by poll since the consumer was created */
    uint64_t bytes;             /* key and value bytes of those records */
    uint64_t fetches;           /* fetch answers received */
    uint64_t retries;           /* connections started over (failure, silent peer) and damaged
                                 * batches fetched again */
    uint64_t rtt_avg_us;        /* fetch round trip, send to answer, over all answers; a
                                 * long-poll's wait (fetch.max.wait.ms) counts */
    uint64_t rtt_max_us;
    uint64_t rtt_last_us;
    int64_t lag;                /* sum of the partitions' known lags */
};

/* One assigned partition in rl_consumer_stats. */
struct rl_partition_stats {
    const char *topic;      /* owned by the consumer; valid until its next call */
    int32_t partition;
    int64_t position;       /* the next offset poll hands out; -1 while unresolved */
    int64_t high_watermark; /* as of its last fetch answer; -1 before the first */
    int64_t lag;            /* high_watermark - position: records not yet consumed; -1 unknown */
    int64_t committed;      /* group members: the last offset committed; -1 unknown */
};

/* Fills *out (size bytes of it: sizeof(*out)) and up to parts_max entries of parts, one per
 * assigned partition in assignment order (parts may be NULL when parts_max is 0). Returns the
 * number of assigned partitions (which may exceed parts_max), or RL_E_INVALID_ARGUMENT.
 * Reads the consumer's own state only: no I/O, no allocation. Same thread rules as poll. */
int rl_consumer_stats(struct rl_consumer *c, struct rl_consumer_stats *out, size_t size,
                      struct rl_partition_stats *parts, size_t parts_max);

/* --- consumer groups ----------------------------------------------------------------------------
 *
 * With group.id set, rl_consumer_subscribe makes the consumer a member of that group: the
 * group's coordinator spreads the subscribed topics' partitions over its members (range or
 * roundrobin) and moves them when members join, leave or go silent. Liveness has two
 * separate bounds, as in Kafka's clients:
 *  - session.timeout.ms: a background thread of the consumer sends a heartbeat every
 *    heartbeat.interval.ms, whatever the application is doing, so processing a record may take
 *    longer than the session timeout. When no heartbeat has reached the coordinator for
 *    session.timeout.ms (the coordinator unreachable, the process stopped), the member counts
 *    itself dropped: the next poll calls LOST, then rejoins.
 *  - max.poll.interval.ms: an application that does not call rl_consumer_poll for this long is
 *    taken to be stuck. The heartbeat thread sends LeaveGroup at once, so the group gives its
 *    partitions to others without waiting for a session timeout; the next poll calls LOST,
 *    then rejoins as a new member.
 * Rebalances (joins, syncs, callbacks) run inside poll on the caller's thread, which may then
 * take longer than its timeout: up to about rebalance.timeout.ms + request.timeout.ms (plus
 * the callbacks' own time). When the group cannot be joined in that time (the coordinator is
 * unreachable), poll returns the error and the next poll tries again. Each partition starts at the
 * group's committed offset, or auto.offset.reset when nothing is committed, resolved to an
 * offset before ASSIGNED is called.
 *
 * Eager or cooperative (partition.assignment.strategy). With range or roundrobin (eager), a
 * member that learns of a rebalance commits (auto-commit), gets REVOKED for all its partitions
 * and drops them, then rejoins; nothing is consumed until ASSIGNED. With cooperative-sticky
 * (incremental, Kafka's KIP-429) a rebalance does not stop the group: the member rejoins
 * keeping its partitions, and poll goes on handing out their records while the JoinGroup
 * waits (the coordinator computes a sticky assignment: members keep what they can). A
 * partition that moves is taken from its owner first: the owner gets REVOKED for just the
 * partitions it loses (after auto-commit) and rejoins at once; the group gives them to their
 * new owner in the following round, whose ASSIGNED names only the partitions it gains (it may
 * name none). A partition is never held by two members at once, and a retained partition keeps
 * its position and prefetched records. Every member of a group must use the same kind: a
 * cooperative member names only cooperative-sticky, so joining an eager group fails with
 * RL_E_INCONSISTENT_PROTOCOL. While a cooperative JoinGroup is pending, rl_consumer_commit
 * returns RL_E_REBALANCE_IN_PROGRESS (retriable; the generation is about to change).
 *
 * At-least-once: commit after processing. rl_consumer_commit commits every partition's position
 * (the offset after the last record poll handed out); with enable.auto.commit (default) that
 * happens every auto.commit.interval.ms when poll is entered, before partitions are revoked,
 * and on close. A member dropped from the group cannot commit (ILLEGAL_GENERATION or
 * UNKNOWN_MEMBER_ID), so it never overwrites the new owner's progress.
 */

/* Joins (at the next poll) the group of group.id with a subscription to these topics (copied).
 * Returns 0, RL_E_INVALID_CONFIG without group.id, RL_E_UNKNOWN_TOPIC, RL_E_INVALID_ARGUMENT
 * when partitions were assigned by hand (rl_consumer_assign), or a connection error. Blocks
 * for a metadata lookup per topic. Starts the consumer's heartbeat thread. */
int rl_consumer_subscribe(struct rl_consumer *c, const char *const *topics, size_t count);

/* Commits the position of every assigned partition that moved since its last commit. Blocks up
 * to request.timeout.ms. Returns 0 or the coordinator's code (RL_E_REBALANCE_IN_PROGRESS while
 * the member is between generations, RL_E_ILLEGAL_GENERATION, RL_E_UNKNOWN_MEMBER_ID...). */
int rl_consumer_commit(struct rl_consumer *c);

/* Commits one partition's next offset to consume (the offset after the last record processed). */
int rl_consumer_commit_offset(struct rl_consumer *c, const char *topic, int32_t partition,
                              int64_t offset);

/* Leaves the group: commits positions (with auto-commit), calls the REVOKED callback, sends
 * LeaveGroup so the partitions move at once (not after the session timeout). Returns the
 * commit's result. rl_consumer_destroy does this too when it was not done. */
int rl_consumer_close(struct rl_consumer *c);

/* --- admin ------------------------------------------------------------------------------------ */

struct rl_admin;

struct rl_admin *rl_admin_new(const struct rl_conf *conf, char *err, size_t errlen);
void rl_admin_destroy(struct rl_admin *a);

enum rl_partitioner { RL_PARTITIONER_HASH = 0, RL_PARTITIONER_RANGE = 1 };

/* A topic to create. All pointers are the caller's and only read during the call. */
struct rl_topic_spec {
    const char *name;
    int32_t partitions;
    int32_t replication_factor; /* 0: the broker's default */
    enum rl_partitioner partitioner;
    const char *const *split_keys; /* RANGE: partitions - 1 sorted keys (NUL-terminated) */
    size_t split_key_count;
    const char *const *config_keys; /* topic configs, e.g. "flush.policy" */
    const char *const *config_values;
    size_t config_count;
};

/* Creates a topic. Returns 0 or the broker's code (RL_E_TOPIC_EXISTS, RL_E_INVALID_TOPIC_NAME,
 * RL_E_INVALID_PARTITIONS, RL_E_INVALID_SPLITS, RL_E_INVALID_CONFIG...) with its message in
 * rl_admin_last_error. Blocks up to request.timeout.ms. */
int rl_admin_create_topic(struct rl_admin *a, const struct rl_topic_spec *spec);
int rl_admin_delete_topic(struct rl_admin *a, const char *name);

struct rl_partition_info {
    int32_t partition;
    int32_t leader; /* node id, -1 when none */
    uint32_t leader_epoch;
    int error;
};

/* A topic as described by the broker. Owned by the admin handle; valid until the next call on
 * it. */
struct rl_topic_info {
    const char *name;
    enum rl_partitioner partitioner;
    int32_t partition_count;
    int32_t replication_factor;
    const struct rl_partition_info *partitions;
    const uint8_t *const *split_keys;
    const size_t *split_key_lens;
    size_t split_key_count;
    const char *const *config_keys;   /* filled by rl_admin_describe_topic only */
    const char *const *config_values;
    const int *config_is_default;
    size_t config_count;
};

/* Lists every topic: *out points to *count descriptions (no configs). Returns 0 or a code. */
int rl_admin_list_topics(struct rl_admin *a, const struct rl_topic_info **out, size_t *count);

/* Describes one topic, with its configs. RL_E_UNKNOWN_TOPIC when it does not exist. */
int rl_admin_describe_topic(struct rl_admin *a, const char *name,
                            const struct rl_topic_info **out);

/* Sets topic configs (others keep their values). Returns 0 or the broker's code. */
int rl_admin_alter_configs(struct rl_admin *a, const char *topic, const char *const *keys,
                           const char *const *values, size_t count);

/* Asks for one partition's offset: timestamp RL_OFFSET_EARLIEST (log start), RL_OFFSET_LATEST
 * (log end) or a time in ms (first offset whose record timestamp is >= it). */
int rl_admin_list_offsets(struct rl_admin *a, const char *topic, int32_t partition,
                          int64_t timestamp, int64_t *offset);

const char *rl_admin_last_error(struct rl_admin *a);

#ifdef __cplusplus
}
#endif
#endif
