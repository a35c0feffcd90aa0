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
 *    the code the broker answered with. Handles also keep the last error's full message (with
 *    the broker's own text when it sent one): rl_*_last_error().
 *  - Ownership: the library never keeps a pointer the caller passed in after the call returns,
 *    except where a function says so. Pointers the library returns belong to the handle and stay
 *    valid for the period each function states.
 *  - Thread safety: a configuration is not thread-safe (build it on one thread, then only read
 *    it). A producer is fully thread-safe: any number of threads may call rl_producer_send and
 *    rl_producer_flush at once. A consumer and an admin handle are single-threaded objects: use
 *    each from one thread at a time (different handles on different threads are independent).
 *  - Blocking: calls that talk to a broker block the calling thread, each bounded by a timeout
 *    (request.timeout.ms unless the call takes its own). None blocks forever.
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

/* Message for any return code: 0, -errno or RL_E_*. Static storage; never NULL. */
const char *rl_strerror(int code);
/* Symbolic name of a code ("UNKNOWN_TOPIC", "ECONNREFUSED", "OK"). Static; never NULL. */
const char *rl_error_name(int code);
/* The library version, "0.1.0". Static. */
const char *rl_version(void);

/* --- configuration ---------------------------------------------------------------------------
 *
 * A configuration is a set of `key = value` strings, checked when set. Keys (defaults):
 *   bootstrap.servers      brokers to start from, "host:port,..." (127.0.0.1:9400)
 *   client.id              sent with every request (ringlog)
 *   request.timeout.ms     bound on each request to a broker (30000)
 *   connect.timeout.ms     bound on a TCP connect (5000)
 *   retry.backoff.ms       first retry delay; doubles per attempt, full jitter (100)
 *   retry.backoff.max.ms   cap of the retry delay (1000)
 *  producer:
 *   acks                   0, 1 or all (1)
 *   batch.size             max uncompressed record bytes per batch and partition (262144)
 *   linger.ms              how long a partition's batch waits for more records (5)
 *   compression            none or zstd (none)
 *   compression.level      zstd level, 1 fastest (1)
 *   buffer.memory          bound on bytes of records not yet acknowledged (67108864)
 *   max.block.ms           how long rl_producer_send waits for buffer space (60000)
 *   delivery.timeout.ms    bound on a record's whole life: batching, retries, answers (120000)
 *   max.in.flight          produce requests in flight per broker connection, 1..5 (5)
 *   max.in.flight.per.partition  batches in flight per partition, 1..5; with idempotence
 *                          order is kept through retries; without it, above 1 a retry may
 *                          reorder records of that partition (5)
 *   enable.idempotence     true or false (true; off when acks=0): each batch carries the
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
 *   heartbeat.interval.ms  how often the consumer's heartbeat thread heartbeats (3000)
 *   max.poll.interval.ms   a member that does not call rl_consumer_poll for this long leaves
 *                          the group (its next poll gets LOST, then rejoins) (300000)
 *   rebalance.timeout.ms   how long a rebalance waits for members to rejoin (30000)
 *   partition.assignment.strategy  range or roundrobin (range)
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

/* Reads a key's current value into buf. Returns 0, or RL_E_NOT_FOUND for an unknown key. */
int rl_conf_get(const struct rl_conf *conf, const char *key, char *buf, size_t buflen);

/* A record's fate, passed to the delivery callback. Pointers are valid only during the call. */
struct rl_delivery {
    const char *topic;
    int32_t partition;
    int64_t offset; /* the record's offset when error == 0; -1 otherwise (or when acks=0) */
    int error;      /* 0 when the broker acknowledged the record */
    const char *error_message; /* "" on success; the broker's message or the library's */
    void *opaque;   /* what was given to rl_producer_send */
};

/* Called once per record sent, on the producer's background thread, in the order the records of
 * a partition were sent. It must not block for long and must not call rl_producer_send,
 * rl_producer_flush or rl_producer_destroy of the same producer (they wait for this thread). */
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
 *  - REVOKED with the partitions held, before the member rejoins or leaves. The member is
 *    still their owner: the callback may commit (rl_consumer_commit, ..._commit_offset).
 *  - LOST with the partitions held when the member learns it was dropped from the group
 *    (session.timeout.ms without a heartbeat reaching the coordinator, max.poll.interval.ms
 *    without a poll, or the coordinator answering that the member or its generation is
 *    unknown). Another member may own them already, so nothing can be committed for them;
 *    drop per-partition state. LOST always comes before the next ASSIGNED, and no REVOKED
 *    follows it for the same partitions.
 *  - ASSIGNED with the new partitions once the group is in sync. Their positions are already
 *    resolved to offsets (the committed offset, or auto.offset.reset looked up at the broker),
 *    so rl_consumer_position returns a real offset inside the callback, and the callback may
 *    rl_consumer_seek / rl_consumer_seek_timestamp them; the first record poll returns for a
 *    partition is then the one at the position the callback left.
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
 * Blocks: the first record for a topic fetches its metadata (bounded by request.timeout.ms);
 * when buffer.memory is used up it waits up to max.block.ms for acknowledgements to free space.
 * Returns 0 when queued (the delivery callback will report the outcome), or: RL_E_FULL (buffer
 * still full after max.block.ms), RL_E_UNKNOWN_TOPIC, RL_E_UNKNOWN_PARTITION,
 * RL_E_BATCH_TOO_LARGE (one record larger than batch.size), RL_E_BROKER_UNAVAILABLE,
 * RL_E_CLOSED (the producer is being destroyed). No callback runs for a record that was refused. */
int rl_producer_send(struct rl_producer *p, const char *topic, int32_t partition,
                     const void *key, size_t key_len, const void *value, size_t value_len,
                     int64_t timestamp_ms, void *opaque);

/* A record header: key (a NUL-terminated string) and value bytes (NULL for a null value). */
struct rl_header {
    const char *key;
    const void *value;
    size_t value_len;
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
 * callback has run), or timeout_ms passes (< 0: wait up to delivery.timeout.ms). Returns 0, or
 * RL_E_TIMED_OUT. Records sent by other threads during the flush are waited for as well. */
int rl_producer_flush(struct rl_producer *p, int timeout_ms);

/* Counters since the producer started: records acknowledged and records failed. */
void rl_producer_counts(struct rl_producer *p, uint64_t *acked, uint64_t *failed);

/* Flushes (up to timeout_ms; < 0 as in flush), then fails what is left with RL_E_SHUTTING_DOWN
 * through the callback, stops the I/O thread and frees everything. Returns the flush result.
 * p is invalid afterwards. */
int rl_producer_destroy(struct rl_producer *p, int timeout_ms);

/* The message of the producer's most recent failure, whichever thread met it (a refused send,
 * a failed flush, a record the I/O thread gave up on). Owned by p; read it right after the
 * failing call, since another thread's failure may overwrite it. Never NULL. */
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
    const uint8_t *key;   /* NULL when the record has no key */
    int32_t key_len;      /* -1 when no key */
    const uint8_t *value; /* NULL for a null value */
    int32_t value_len;    /* -1 when null */
    uint32_t header_count;
    const uint8_t *headers_raw; /* encoded headers; walk them with rl_record_header */
    size_t headers_len;
};

/* Walks a record's headers: *pos starts at 0. Returns 1 with key/value filled (pointers valid
 * like the record's), 0 at the end, or a negative code when malformed. */
int rl_record_header(const struct rl_record *rec, size_t *pos, const uint8_t **key,
                     int32_t *key_len, const uint8_t **value, int32_t *value_len);

/* Creates a consumer (conf copied). Does not connect yet. NULL with a message in err on failure. */
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

/* Timeouts (the one meaning every timeout_ms of this API has): > 0 waits up to that many ms,
 * 0 does not wait (returns what is already there), RL_TIMEOUT_INFINITE (any negative value)
 * waits until the call has its answer; for rl_consumer_poll, a record, an error, or
 * rl_consumer_wakeup. */
#ifndef RL_TIMEOUT_INFINITE
#define RL_TIMEOUT_INFINITE (-1)
#endif

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
