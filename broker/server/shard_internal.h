/*
 * shard_internal: the structures shared by the server's files: shard.c (the loop, accepts,
 * ticks, memory budget, start and stop), conn.c (connections: receive, parse, send, splice),
 * req.c (a request's life, and the server's side of the svc and native contracts), services.c
 * (the subsystems below the server, built and driven in one place) and http.c (admin
 * endpoints and metrics). Nothing outside broker/server includes this.
 */
#ifndef RL_BROKER_SHARD_INTERNAL_H
#define RL_BROKER_SHARD_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "broker/kafka/kafka.h"
#include "broker/native/native.h"
#include "broker/server/config.h"
#include "broker/server/loopclock.h"
#include "broker/server/shard.h"
#include "broker/svc/bg.h"
#include "broker/svc/svc.h"
#include "common/arena.h"
#include "io/io.h"
#include "proto/frame.h"

#define CONN_RBUF_BYTES (64u * 1024) /* receive buffer every connection keeps */
#define CONN_MAX_IOV 128             /* iovecs gathered into one sendmsg */
#define CONN_BIG_POOL 8              /* idle big-frame buffers a shard keeps for reuse ... */
#define CONN_BIG_POOL_MAX_BYTES (8u << 20) /* ... each at most this large */
#define REQ_ARENA_CHUNK_BYTES (8u * 1024)
#define REQ_ARENA_MAX_BYTES (64u * 1024 * 1024) /* one request's decode + response structures */
#define SHARD_REQ_POOL_MAX 512       /* idle request objects kept for reuse */
#define SHARD_MAX_HTTP_CONNS 64
/* Native connections past max.connections kept for an operator: they carry admin requests only
 * (conn_admin_api) and close after SHARD_RESERVE_IDLE_MS idle, so busy or idle clients at the
 * limit cannot lock the CLI out. */
#define SHARD_NATIVE_RESERVE 4
#define SHARD_RESERVE_IDLE_MS 10000
#define HTTP_REQ_MAX_BYTES 8192
#define SHARD_TICK_MS 100            /* group timers; slower upkeep counts its own interval */
#define SHARD_SLOW_TICK_MS 1000      /* deleted topics reaped, accept backoff cleared */
#define METRICS_BUCKETS 16
#define METRICS_APIS 20              /* Ringlog__Api values 0..19 */
#define METRICS_KAFKA_KEYS 64        /* Kafka api_key values 0..63 (the served ones are below) */

struct shard;
struct conn;
struct bg;
struct partition_env;
struct meta;
struct delivery;
struct ctl;

/* One request on a connection, from its frame to its response being sent. */
struct req {
    struct svc_req svc;      /* what handlers and services see (broker/svc/svc.h) */
    struct req *next;        /* connection queue, limbo list or free pool */
    struct conn *conn;       /* NULL once detached (connection gone; in limbo) */
    struct shard *sh;
    struct arena arena;      /* decode, handler state and response structures */
    Ringlog__Api api;
    uint32_t correlation_id;
    uint64_t start_ns;
    int32_t error_code;      /* request-level code, for metrics */
    bool ready;              /* response encoded (iov/n_iov valid) */
    bool close_after;        /* close the connection once this response is sent */
    bool needs_finish;       /* async work completed; the loop should finish the response */
    bool counted;            /* latency recorded */
    bool kafka;              /* a Kafka request: counted by kafka_api, not api */
    int16_t kafka_api;       /* its api_key (METRICS_KAFKA_KEYS - 1 when out of range) */
    struct iovec *iov;       /* [0]: frame header + envelope; then raw batch data */
    int *seg_fd;             /* NULL, or per iov: -1 for memory, else a file segment of iov_len
                                bytes at seg_pos in seg_fd (sent by splice; iov_base NULL) */
    uint64_t *seg_pos;
    uint32_t n_iov;
    uint64_t total_bytes, sent_bytes;
    uint64_t mem_bytes;      /* charged to the shard's in-flight budget */
    uint64_t arena_charged;  /* of which the arena's growth beyond its first chunk */
    uint8_t fallback[96];    /* an error response when the arena is exhausted */
    struct iovec fallback_iov;
};

/* The subsystems below the server, in dependency order (services.c). Adding one means adding
 * it here and to services.c; the loop calls services_turn/tick/begin_stop and nothing else. */
struct services {
    struct bg *bg;                   /* metadata appends and new partitions, off the loop */
    struct bg *bg_state;             /* producer-state loads and snapshots, off the loop */
    struct partition_env *penv;      /* what the partitions share (deferred appends, opening) */
    struct meta *meta;               /* topics and cluster metadata */
    struct delivery *dv;             /* produce, fetch, producer ids, groups, offsets */
    struct native *native;           /* the native protocol's handlers */
    struct kafka *kafka;             /* the Kafka protocol's handlers (kafka.listen) */
    struct ctl *ctl;                 /* the cluster's controller (NULL: a cluster of one) */
    int64_t last_slow_tick_ms;
    int64_t last_retention_ms;
};

struct conn {
    struct shard *sh;
    struct conn *prev, *next;        /* shard's list */
    struct conn *ready_next;
    bool in_ready;
    int fd;
    bool kafka;                      /* accepted on the Kafka listener: Kafka framing */
    uint64_t id;
    char peer[64];
    struct io_op recv_op, send_op, cancel_op;
    bool recv_inflight, send_inflight, cancel_inflight;
    bool recv_completed;             /* recv_result waits for the loop */
    int recv_result;
    bool send_completed;
    int send_result;
    bool eof, closing, mem_paused;
    bool conn_paused;                /* over max.connection.inflight.bytes: no new requests */
    uint64_t req_bytes;              /* charged to the budget by its queued requests */
    uint64_t last_active_ns;         /* last byte received or sent (connections.max.idle.ms) */
    uint64_t partial_deadline_ns;    /* 0, or when a partial frame times out (while reading) */
    uint64_t partial_progress;       /* bytes received since that deadline was set */
    bool dead;                       /* a send failed: nothing more can be delivered */
    bool first_checked;              /* its first bytes were checked for a peer hello */
    bool reserved;                   /* past max.connections: admin requests only */
    uint8_t *rbuf;
    size_t rcap, rstart, rend;       /* unparsed bytes are rbuf[rstart, rend) */
    uint8_t *big;                    /* a frame larger than rbuf, being received */
    uint64_t big_len, big_have, big_cap;
    bool header_first;               /* the last frame was big: read the next header alone */
    struct req *head, *tail;
    uint32_t nreq;
    struct msghdr msg;
    struct iovec iov[CONN_MAX_IOV];
    uint64_t send_len;
    /* File segments go file -> pipe -> socket by splice (no copy through user space). */
    int pipe_rd, pipe_wr;            /* -1 until the first file segment */
    uint32_t pipe_cap;
    uint64_t pipe_bytes;             /* spliced in, not yet out */
    struct io_op splice_in_op;
    bool splice_in_inflight;
    int splice_in_result;
    uint8_t send_mode;               /* enum conn_send_mode of the op in flight */
};

struct http_conn {
    struct shard *sh;
    struct http_conn *next;          /* shard's list */
    struct http_conn *ready_next;
    bool in_ready;
    bool evicting;                   /* shut down to make room for a newer connection */
    int fd;
    uint64_t start_ns;               /* accepted at (connections.max.idle.ms, eviction) */
    struct io_op op;
    bool op_inflight, op_completed, sending;
    bool rendering;                  /* /metrics being formatted on the HTTP thread */
    int op_result;
    char in[HTTP_REQ_MAX_BYTES];
    size_t in_len;
    char *out;
    size_t out_len, out_sent;
};

struct api_metrics {
    uint64_t requests, errors;
    uint64_t buckets[METRICS_BUCKETS]; /* latency histogram, see metrics_bucket_bounds_us */
    uint64_t sum_us;
};

/* Event-loop turns: the loop's work between two waits for events (io_run's return to its
 * next call), by duration (upper bounds in metrics_turn_bounds_ns). */
#define METRICS_TURN_BUCKETS 14

/* What a slow turn (over METRICS_SLOW_TURN_NS) did, so it can be told apart. */
enum turn_cause { TURN_TOPIC_CREATE, TURN_SEGMENT_ROLL, TURN_OTHER, TURN_CAUSES };
#define METRICS_SLOW_TURN_NS 10000000ull

struct shard_metrics {
    struct api_metrics api[METRICS_APIS];
    struct api_metrics kafka_api[METRICS_KAFKA_KEYS]; /* errors unused: Kafka answers carry
                                                       * them per partition, unseen here */
    uint64_t turns[METRICS_TURN_BUCKETS];
    uint64_t turns_sum_ns, turn_max_ns;
    uint64_t slow_turns[TURN_CAUSES];
    uint64_t connections_accepted, connections_rejected, connections_closed;
    uint64_t bytes_received, bytes_sent;
    uint64_t frames_malformed, frames_too_large;
    uint64_t throttled_responses, mem_pauses;
    uint64_t conn_mem_pauses;        /* reads held for max.connection.inflight.bytes */
    uint64_t frames_timed_out;       /* partial frames closed by frame.receive.timeout.ms */
    uint64_t connections_idle_closed; /* closed by connections.max.idle.ms */
    uint64_t connections_reserved;    /* accepted into the operator reserve */
    uint64_t http_requests;
    uint64_t http_evicted, http_idle_closed; /* HTTP connections closed to make room / idle */
};

struct shard {
    struct broker_config cfg;
    struct io *io;
    struct storage *st;
    struct services svc;
    struct bg *bg_http;              /* formats /metrics off the loop */
    int listen_fd, http_fd, kafka_fd;
    int lock_fd;                     /* holds the data directory's lock (dirlock.h) */
    uint16_t port, http_port, kafka_port;
    struct io_op accept_op, http_accept_op, tick_op, cancel_accept_op, cancel_http_op;
    struct io_op kafka_accept_op, cancel_kafka_op;
    bool kafka_accept_inflight, kafka_accept_completed;
    int kafka_accept_result;
    struct io_op cancel_tick_op;
    bool accept_inflight, http_accept_inflight, tick_inflight;
    bool accept_completed, http_accept_completed, tick_completed;
    bool accept_backoff;             /* accept failed for lack of descriptors: wait a tick */
    int accept_result, http_accept_result;
    uint32_t ticks;
    uint32_t ops;                    /* our io ops in flight (drained before teardown) */
    struct conn *conns;
    uint32_t nconns;
    uint64_t next_conn_id;
    struct conn *ready;              /* connections the loop must look at */
    struct http_conn *hconns, *hready;
    uint32_t nhconns;
    struct req *limbo;               /* sent or detached requests still waiting for ops */
    struct req *pool;
    uint32_t npool;
    uint64_t mem_used;               /* in-flight bytes charged to max.inflight.bytes */
    uint64_t mem_peak;               /* highest mem_used since memory was last trimmed */
    uint64_t mem_high;               /* highest mem_used since start (a metric) */
    struct bg_job trim_job;          /* malloc_trim on the HTTP thread, off the loop */
    bool trim_busy;
    struct conn *big_exempt;         /* the one large frame that may complete over budget */
    /* Idle buffers of big frames (conn.c), reused so a stream of large produce requests does
     * not allocate and fault in a fresh buffer per frame; at most CONN_BIG_POOL of them. */
    uint8_t *big_pool[CONN_BIG_POOL];
    uint64_t big_pool_cap[CONN_BIG_POOL];
    uint32_t n_big_pool;
    bool mem_paused_any;
    volatile sig_atomic_t stop_requested;
    int exit_rc;                  /* non-zero: a fatal condition stopped the loop (ctl_fatal) */
    uint64_t handoff_deadline_ns;   /* 0: no hand-off began */
    bool stopping;
    uint64_t stop_deadline_ns;
    uint64_t start_ns;
    int64_t start_wall_ms;
    struct shard_metrics m;
    struct loopclock clock;          /* times loop turns (ringlog_loop_turn_seconds) */
    uint64_t warn_sec;               /* rate limit of protocol-error log lines */
    uint32_t warn_count, warn_suppressed;
};

/* --- shard.c ---------------------------------------------------------------------------------- */

/* Queues c for the loop. Safe inside io callbacks. */
void shard_mark_conn(struct conn *c);
/* Charges / refunds bytes against max.inflight.bytes. */
void shard_mem_charge(struct shard *sh, uint64_t bytes);
void shard_mem_refund(struct shard *sh, uint64_t bytes);
/* Every connection paused for memory looks again (one of them may take the exemption). */
void shard_mem_wake(struct shard *sh);
/* Throttle time to put in responses now (0 when under budget). */
uint32_t shard_throttle_ms(const struct shard *sh);
/* Counts the shard's own io ops in flight (drained before teardown): call at prepare time. */
void shard_op_started(struct shard *sh);
void shard_op_ended(struct shard *sh);

/* --- req.c ------------------------------------------------------------------------------------ */

/* The server's side of the contracts its handlers are written against. */
extern const struct svc_host req_svc_host;
extern const struct native_host req_native_host;
extern const struct kafka_host req_kafka_host;

/* A new request at the tail of c's queue (arena ready), or NULL when out of memory. */
struct req *req_get(struct conn *c);
/* The response is sent (or will never be): free r now, or from limbo once its ops end. */
void req_retire(struct req *r);
/* Frees the limbo's requests whose ops have all ended. */
void req_reap_limbo(struct shard *sh);
/* Charges what r's arena grew beyond its first chunk since the last call (decode memory is
 * counted as soon as the frame is decoded, not only once a response is built). */
void req_charge_arena(struct req *r);
/* Frees r for good (releases, refunds, back to the pool). */
void req_free(struct req *r);
/* Encodes resp (+ data; fds[i] >= 0 makes data[i] the iov_len bytes at pos[i] of fds[i]) as
 * r's response and marks it ready. */
void req_respond(struct req *r, Ringlog__Response *resp, const struct iovec *data,
                 const int *fds, const uint64_t *pos, uint32_t n_data);
/* Responds with only an error code and message. */
void req_respond_error(struct req *r, int code, const char *msg);

/* --- conn.c ----------------------------------------------------------------------------------- */

/* An accepted connection joins the shard (kafka: it came to the Kafka listener). */
/* Returns the new connection, or NULL (out of memory; fd is closed). */
struct conn *conn_create(struct shard *sh, int fd, bool kafka);
/* Loop work for one connection marked ready: finish, parse, send, re-arm, maybe free. */
void conn_process(struct conn *c);
/* A peer's protocol error: logged (rate-limited) with the peer's address; c closes once the
 * responses already queued have gone. */
void conn_protocol_error(struct conn *c, const char *msg);
/* Long polls of c answer now (the peer closes, or the broker stops). */
void conn_interrupt(struct conn *c);
/* Every tick: closes connections idle for connections.max.idle.ms and those whose partial
 * frame made no progress for frame.receive.timeout.ms. */
void conn_tick(struct shard *sh, uint64_t now_ns);
/* Frees the shard's idle big-frame buffers (shard_destroy). */
void conn_pool_destroy(struct shard *sh);

/* --- services.c ------------------------------------------------------------------------------- */

/* Builds the subsystems (after storage is open). Returns 0, or a code with err. Blocks
 * (recovery, replays). */
int services_open(struct shard *sh, char *err, size_t err_cap);
/* Once per loop turn: background completions, partition work, metadata proposals. */
void services_turn(struct shard *sh);
/* Every SHARD_TICK_MS: group timers, producer upkeep, deferred retries, reaping, retention. */
void services_tick(struct shard *sh, int64_t now_ms);
/* Shutdown begins. */
void services_begin_stop(struct shard *sh);
/* At SIGTERM, before services_begin_stop: hands leadership of the replicated partitions this
 * broker leads to other replicas (ctl_handoff); every turn until it returns 0. */
uint32_t services_handoff(struct shard *sh);
/* True while metadata or partitions are being changed in the background (turns are then
 * timed exactly). */
bool services_changing(const struct shard *sh);

/* Counts of the work turns do, to tell what a slow turn did. */
struct services_work {
    uint64_t topic_create;   /* logs opened, and metadata or new-partition work completed */
    uint64_t segment_rolls;  /* appends that rolled a log */
};
void services_work(const struct shard *sh, struct services_work *out);
/* A connection's first bytes (pre, n >= 4) are a peer hello: the controller takes fd. Returns
 * false when they are not (or there is no cluster). */
bool services_adopt_peer(struct shard *sh, int fd, const uint8_t *pre, size_t n);
/* The cluster's status as JSON, or its metrics lines (metrics true) (malloc'ed,
 * NUL-terminated), or NULL without a cluster. */
char *services_cluster_text(const struct shard *sh, bool metrics);
/* The cluster's status as JSON (malloc'ed, NUL-terminated) or NULL without a cluster. */
char *services_cluster_json(const struct shard *sh);
/* Closes everything (logs cleanly). NULL members are fine. Blocks. */
void services_close(struct shard *sh);

/* --- http.c ----------------------------------------------------------------------------------- */

/* Accepted HTTP socket: starts reading a request. */
void http_conn_start(struct shard *sh, int fd);
/* Loop work for HTTP connections marked ready. */
void http_process(struct shard *sh);
/* Closes every HTTP connection that has no op in flight; returns how many remain. */
uint32_t http_close_idle(struct shard *sh);
/* Makes room for one more HTTP connection at the limit: shuts down the oldest one still
 * waiting for its request. Returns false when every one is being answered. */
bool http_evict_oldest(struct shard *sh);
/* Every tick: shuts down HTTP connections waiting for a request past connections.max.idle.ms. */
void http_tick(struct shard *sh, uint64_t now_ns);

/* Latency histogram upper bounds in microseconds (METRICS_BUCKETS - 1 finite ones). */
extern const uint64_t metrics_bucket_bounds_us[METRICS_BUCKETS - 1];
void metrics_record(struct shard *sh, Ringlog__Api api, uint64_t latency_us, bool error);
void metrics_record_kafka(struct shard *sh, int16_t api_key, uint64_t latency_us);
void metrics_record_turn(struct shard *sh, uint64_t ns, enum turn_cause cause);

#endif
