/*
 * client_internal.h: what the modules of libringlog share and the public header hides.
 *
 *   rlc_conf_*   configuration keys, parsed and checked (config.c)
 *   rlc_fail     the calling thread's last error (error.c)
 *   rlc_part_*   partitioners: hash and range (partition.c)
 *   rlc_backoff_ retry delays with exponential growth and full jitter (partition.c)
 *   rlc_json_*   JSON string escaping for the ringlog tool (json.c)
 *   rlc_conn_*   one TCP connection speaking the framed native protocol (conn.c)
 *   rlc_meta_*   metadata cache and the synchronous request path (meta.c)
 *
 * Nothing here is exported from libringlog.so (the version script keeps only the rl_ API).
 * Internal names use rlc_ so they can never clash with the broker's modules in a test binary
 * that links both.
 */
#ifndef RL_CLIENT_INTERNAL_H
#define RL_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "client/ringlog.h"
#include "proto/frame.h"
#include "proto/ringlog.pb-c.h"

/* --- configuration ---------------------------------------------------------------------------- */

#define RLC_MAX_BROKERS 16 /* bootstrap.servers entries */
#define RLC_HOST_MAX 256
#define RLC_MAX_FRAME_BYTES (128u * 1024 * 1024) /* the largest answer the client accepts */

struct rlc_addr {
    char host[RLC_HOST_MAX];
    uint16_t port;
};

struct rl_conf {
    struct rlc_addr brokers[RLC_MAX_BROKERS];
    int broker_count;
    char client_id[64];
    int request_timeout_ms;
    int connect_timeout_ms;
    int retry_backoff_ms;
    int retry_backoff_max_ms;
    int acks;
    size_t batch_size;
    int linger_ms;
    int compression; /* enum batch_codec */
    int compression_level;
    size_t buffer_memory;
    int max_block_ms;
    int delivery_timeout_ms;
    int max_in_flight;
    int max_in_flight_per_partition;
    uint32_t fetch_min_bytes;
    int fetch_max_wait_ms;
    uint32_t fetch_max_bytes;
    uint32_t max_partition_fetch_bytes;
    int auto_offset_reset; /* RL_OFFSET_EARLIEST, RL_OFFSET_LATEST, or 0 for none */
    bool enable_idempotence;
    char group_id[256]; /* "" without a group */
    int session_timeout_ms;
    int heartbeat_interval_ms;
    int max_poll_interval_ms;
    int rebalance_timeout_ms;
    bool enable_auto_commit;
    int auto_commit_interval_ms;
    char assignor[32]; /* "range", "roundrobin" or "cooperative-sticky" */
    rl_rebalance_cb rebalance_cb;
    void *rebalance_ctx;
    rl_delivery_cb delivery_cb;
    void *delivery_ctx;
    rl_log_cb log_cb;
    void *log_ctx;
    int log_level;        /* enum rl_log_level: the least severe message logged */
    bool idempotence_set; /* enable.idempotence was set explicitly */
};

/* Routes the calling thread's log messages to conf's log callback and level until the matching
 * rlc_log_leave (which restores what was there). Scopes nest; the saved state is the caller's. */
struct rlc_log_scope {
    void *fn, *ctx;
    int level;
    bool set;
};
void rlc_log_enter(const struct rl_conf *conf, struct rlc_log_scope *saved);
void rlc_log_leave(const struct rlc_log_scope *saved);

/* --- errors (error.c) ------------------------------------------------------------------------ */

/* Records a failure of a call on `handle` as the calling thread's last error (rl_last_error):
 * the formatted message, or rl_strerror(code) when fmt is NULL. Returns code. */
int rlc_fail(const void *handle, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The calling thread's last error message when its last failing call was on `handle`, else
 * NULL. */
const char *rlc_thread_error(const void *handle);

/* Fills conf with the defaults. */
void rlc_conf_defaults(struct rl_conf *conf);

/* Whether a producer made from conf is idempotent: enable.idempotence, and acks != 0. */
bool rlc_conf_idempotent(const struct rl_conf *conf);

/* Parses "host:port,host:port" into addrs (at most max). Returns the count (>= 1) or
 * RL_E_INVALID_CONFIG with a message in err. */
int rlc_parse_brokers(const char *s, struct rlc_addr *addrs, int max, char *err, size_t errlen);

/* --- partitioners and backoff -------------------------------------------------------------- */

/* hash: xxh3-64 of the key modulo the partition count (partitions >= 1). */
int32_t rlc_part_hash(const void *key, size_t key_len, int32_t partitions);

/* range: the number of split keys <= key in bytewise order (a shorter key that is a prefix
 * of a longer one sorts first). splits are sorted; the result is in [0, count]. */
int32_t rlc_part_range(const void *key, size_t key_len, const uint8_t *const *splits,
                       const size_t *split_lens, size_t count);

/* Bytewise comparison with prefix-shorter-first, as for the range partitioner. */
int rlc_key_cmp(const void *a, size_t alen, const void *b, size_t blen);

/* Full-jitter delay before retry number `attempt` (1 = first retry): a uniform draw in
 * [0, min(max_ms, base_ms * 2^(attempt-1))], from `rnd` (any 64-bit random number). */
int rlc_backoff_ms(int attempt, int base_ms, int max_ms, uint64_t rnd);

/* xorshift64*: small, fast, thread-private random numbers for jitter. *state must be nonzero. */
uint64_t rlc_rand(uint64_t *state);

/* Monotonic milliseconds and wall-clock milliseconds. */
int64_t rlc_now_ms(void);
int64_t rlc_now_us(void);
int64_t rlc_wall_ms(void);
/* Wall-clock ms from the kernel's last tick (at most a tick behind; record timestamps). */
int64_t rlc_wall_ms_coarse(void);

/* --- JSON ------------------------------------------------------------------------------------ */

/* Writes bytes as a JSON string body (no surrounding quotes) into out (outlen bytes, always
 * NUL-terminated when outlen > 0). Escapes ", \ and control characters; bytes that are not valid
 * UTF-8 become \u00XX (the byte read as Latin-1), so any input yields valid JSON. Returns the
 * length the full escape needs (excluding the NUL), like snprintf. */
size_t rlc_json_escape(const uint8_t *s, size_t len, char *out, size_t outlen);

/* --- connection ------------------------------------------------------------------------------- */

/* A frame waiting to be written: up to RLC_FRAME_IOV pieces. The first piece is the 8-byte
 * length prefix plus envelope, owned by the frame (freed once written); the rest point into
 * batches owned by the caller, who keeps them alive until the answer arrives. */
#define RLC_FRAME_IOV 64
#define RLC_MAX_PENDING_FRAMES 64

struct rlc_frame {
    struct iovec iov[RLC_FRAME_IOV];
    int iovcnt;
    uint8_t *head; /* owned: length prefix + envelope */
};

struct rlc_conn {
    int fd;
    struct rlc_addr addr;
    uint32_t next_corr;
    /* Outgoing frames, a ring of RLC_MAX_PENDING_FRAMES; written in order. */
    struct rlc_frame out[RLC_MAX_PENDING_FRAMES];
    unsigned out_head, out_count;
    size_t out_off; /* bytes of out[out_head] already written */
    /* Incoming bytes; one frame is handed out at a time and dropped on the next read. */
    uint8_t *in;
    size_t in_len, in_cap, in_consumed;
    char err[256];
};

/* Connects (blocking, bounded by timeout_ms) and leaves the socket non-blocking. Returns 0 or
 * -errno / RL_E_BROKER_UNAVAILABLE, with a message in c->err. */
int rlc_conn_open(struct rlc_conn *c, const struct rlc_addr *addr, int timeout_ms);
void rlc_conn_close(struct rlc_conn *c);
static inline bool rlc_conn_is_open(const struct rlc_conn *c) { return c->fd >= 0; }

/* Encodes req (its correlation_id is set here and returned in *corr) and queues the frame, with
 * the data pieces after it. Returns 0, RL_E_FULL when RLC_MAX_PENDING_FRAMES are queued, or
 * RL_E_INVALID_ARGUMENT for too many pieces. Allocates the envelope buffer. */
int rlc_conn_queue(struct rlc_conn *c, Ringlog__Request *req, const struct iovec *data,
                   int datacnt, uint32_t *corr);

/* Writes what the socket takes without blocking. Returns 0 (maybe with frames left), or -errno. */
int rlc_conn_flush(struct rlc_conn *c);
static inline bool rlc_conn_wants_write(const struct rlc_conn *c) { return c->out_count > 0; }

/* Reads what is there without blocking and, when a whole frame is buffered, decodes it:
 * returns 1 with *resp (caller frees with ringlog__response__free_unpacked) and *data, *data_len
 * (the frame's data section, valid until the next rlc_conn_read on c), 0 when no whole frame yet,
 * or a negative code (-ECONNRESET on EOF, RL_E_FRAME_TOO_LARGE, RL_E_FRAME_MALFORMED). */
int rlc_conn_read(struct rlc_conn *c, Ringlog__Response **resp, const uint8_t **data,
                  size_t *data_len);

/* Waits with poll(2) until c can make progress (readable, or writable when frames wait) or
 * deadline_ms (monotonic) passes. Returns 1 ready, 0 timeout, -errno. */
int rlc_conn_wait(struct rlc_conn *c, int64_t deadline_ms);

/* Sends req and waits for its answer (bounded by timeout_ms): the synchronous path of the admin
 * API, metadata and the consumer's list-offsets. Returns 0 with *resp owned by the caller, or a
 * negative code; on any failure the connection is closed (it may hold half a frame). A
 * request-level error in the answer is returned as its code with the message in c->err (and
 * *resp still set, to be freed). */
int rlc_conn_call(struct rlc_conn *c, Ringlog__Request *req, int timeout_ms,
                  Ringlog__Response **resp, const uint8_t **data, size_t *data_len);

/* --- metadata --------------------------------------------------------------------------------- */

#define RLC_MAX_TOPICS 1024 /* topics a handle keeps metadata for */
/* Partitions per topic the client accepts: the protocol's limit, which the broker holds too. */
#define RLC_MAX_PARTITIONS FRAME_MAX_PARTITIONS_PER_TOPIC

struct rlc_topic {
    char *name;
    int32_t partitions;
    int partitioner; /* RL_PARTITIONER_* */
    uint8_t **splits;
    size_t *split_lens;
    size_t split_count;
    int32_t *leaders; /* node id per partition */
    int64_t fetched_ms;
};

struct rlc_broker {
    int32_t node_id;
    struct rlc_addr addr;
};

/* The metadata cache of one client handle, with its own synchronous connection (bootstrap
 * brokers first, then any known broker). Thread-safe: every function takes the lock. */
struct rlc_meta {
    pthread_mutex_t lock;
    const struct rl_conf *conf;
    struct rlc_conn conn;
    struct rlc_topic *topics[RLC_MAX_TOPICS];
    int topic_count;
    struct rlc_broker brokers[RLC_MAX_BROKERS];
    int broker_count;
    char err[512];
};

void rlc_meta_init(struct rlc_meta *m, const struct rl_conf *conf);
void rlc_meta_destroy(struct rlc_meta *m);

/* Looks a topic up, asking the brokers when it is unknown or `refresh` is set. On success fills
 * *out with a deep copy the caller owns (free with rlc_topic_free). Returns 0,
 * RL_E_UNKNOWN_TOPIC (message in m->err), or a connection error. */
int rlc_meta_topic(struct rlc_meta *m, const char *topic, bool refresh, struct rlc_topic *out);
void rlc_topic_free(struct rlc_topic *t);

/* The address of the leader of (topic, partition), from the cache. Returns 0 or RL_E_NOT_FOUND /
 * RL_E_NOT_LEADER (no leader known). */
int rlc_meta_leader(struct rlc_meta *m, const char *topic, int32_t partition,
                    struct rlc_addr *out);

/* Sends req on the metadata connection (connecting to the first reachable broker) and waits.
 * As rlc_conn_call; the message of a failure is in m->err. Caller frees *resp. */
int rlc_meta_call(struct rlc_meta *m, Ringlog__Request *req, int timeout_ms,
                  Ringlog__Response **resp, const uint8_t **data, size_t *data_len);

/* As rlc_meta_call, but on a connection to the leader of (topic, partition) (the metadata
 * connection moves there; a cluster of one is the bootstrap broker). Returns as rlc_meta_call,
 * or RL_E_NOT_LEADER when the cache names no leader. */
int rlc_meta_call_leader(struct rlc_meta *m, const char *topic, int32_t partition,
                         Ringlog__Request *req, int timeout_ms, Ringlog__Response **resp,
                         const uint8_t **data, size_t *data_len);

/* A ListOffsets request for one partition at `when` (RL_OFFSET_EARLIEST, RL_OFFSET_LATEST or a
 * timestamp), built in q: the request points into it, so q must outlive the call. */
struct rlc_list_offsets {
    Ringlog__ListOffsetsPartition part, *partp;
    Ringlog__ListOffsetsTopic topic, *topicp;
    Ringlog__ListOffsetsRequest body;
    Ringlog__Request req;
};
Ringlog__Request *rlc_list_offsets_one(struct rlc_list_offsets *q, const char *topic,
                                       int32_t partition, int64_t when);

/* The one partition's result in the answer to such a request, or NULL when the answer is not a
 * ListOffsets answer for one partition (a malformed one). */
const Ringlog__ListOffsetsPartitionResult *rlc_list_offsets_result(const Ringlog__Response *resp);

/* Copies the first error found in a response (request level) into err and returns its code. */
int rlc_resp_error(const Ringlog__Response *resp, char *err, size_t errlen);

/* Is this code worth retrying (connection trouble, leadership, throttling, timeouts)? */
bool rlc_retriable(int code);

/* Is this -errno a connection failing (refused, reset, unreachable, timed out)? Calls that
 * meet one before or during a request return RL_E_BROKER_UNAVAILABLE instead. */
bool rlc_connection_error(int code);

/* Does this code mean metadata is stale? */
bool rlc_needs_metadata(int code);

void rlc_set_err(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* --- consumer internals the group module drives (consumer.c) -------------------------------- */

/* Assigned partitions, in assignment order. */
int rlc_consumer_part_count(struct rl_consumer *c);
/* The i-th assigned partition: its topic (valid until the next unassign), position (the next
 * offset to hand out; negative while it waits for earliest/latest) and last committed offset
 * (-1 when unknown). */
void rlc_consumer_part_at(struct rl_consumer *c, int i, const char **topic, int32_t *partition,
                          int64_t *position, int64_t *committed);
void rlc_consumer_set_committed(struct rl_consumer *c, const char *topic, int32_t partition,
                                int64_t committed);
/* Adds a partition at `start` (an offset, RL_OFFSET_EARLIEST or LATEST), noting `committed`. */
int rlc_consumer_assign_at(struct rl_consumer *c, const char *topic, int32_t partition,
                           int64_t start, int64_t committed);
/* Drops every partition and everything fetched or in flight for them (connections close, so
 * no late answer can be taken for a partition assigned again later). */
void rlc_consumer_unassign_all(struct rl_consumer *c);
/* Drops one partition (cooperative rebalancing) and what was fetched for it; the others keep
 * their positions. Returns 0 or RL_E_NOT_FOUND. */
int rlc_consumer_unassign(struct rl_consumer *c, const char *topic, int32_t partition);
bool rlc_consumer_has(struct rl_consumer *c, const char *topic, int32_t partition);
/* Turns every position still waiting for earliest/latest into an offset (ListOffsets; blocks
 * up to request.timeout.ms per partition). Returns 0 or a code, message in last_error. */
int rlc_consumer_resolve(struct rl_consumer *c);
/* Wakes a poll waiting on another thread (it runs its group duty). Thread-safe, no lock. */
void rlc_consumer_wake(struct rl_consumer *c);

/* --- consumer groups (group.c) ---------------------------------------------------------------
 *
 * The membership of one consumer in its group: rebalances, commits and callbacks driven from
 * rl_consumer_poll on the consumer's thread, heartbeats from a thread of its own (started by
 * rlc_group_subscribe, stopped by rlc_group_free). See group.c for the protocol. */
struct rlc_group;

/* Creates the membership state (no I/O). conf and meta belong to the consumer and outlive it.
 * NULL when out of memory. */
struct rlc_group *rlc_group_new(struct rl_consumer *c, const struct rl_conf *conf,
                                struct rlc_meta *meta);
void rlc_group_free(struct rlc_group *g);
/* Sets the subscription (copied); the next duty (re)joins. Starts the heartbeat thread. */
int rlc_group_subscribe(struct rlc_group *g, const char *const *topics, size_t count);
/* Subscribed and not closed. */
bool rlc_group_active(const struct rlc_group *g);
/* Acts on the heartbeat thread's news (LOST, rejoin), auto-commits and rejoins as due, and
 * restarts the max.poll.interval.ms clock. Blocks for a rebalance (bounded by the rebalance
 * and request timeouts). Returns 0 or a code with the message in rlc_group_error. */
int rlc_group_duty(struct rlc_group *g);
/* When the next duty is due (monotonic ms; 0 when news waits): poll never waits past it. */
int64_t rlc_group_due_ms(const struct rlc_group *g);
/* A cooperative member's JoinGroup in flight: the connection poll also waits on (its answer
 * makes the next duty due), or -1. */
int rlc_group_fd(const struct rlc_group *g);
/* Commits every assigned partition's position that moved since its last commit. */
int rlc_group_commit_positions(struct rlc_group *g);
int rlc_group_commit_offset(struct rlc_group *g, const char *topic, int32_t partition,
                            int64_t offset);
/* Commits (auto-commit), revokes (or loses), leaves the group, stops heartbeating. Returns the
 * commit's result. */
int rlc_group_close(struct rlc_group *g);
const char *rlc_group_error(const struct rlc_group *g);

#endif
