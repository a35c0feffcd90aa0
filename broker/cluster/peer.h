/*
 * peer: the broker-to-broker transport of a cluster. Where it sits: controller (ctl.h) -> peer ->
 * io (io_uring sockets). Brokers talk over their native listeners: a broker dials every other
 * node it knows and writes its frames on that connection only; it reads what the others send on
 * the connections they dialed, which the native listener hands over (peer_adopt) when the first
 * bytes are a peer hello instead of a native frame. One connection per direction of a node pair
 * keeps the frames of a pair in order (the replication transport contract, repl.h).
 *
 * Wire (integers little-endian):
 *   hello, once per connection, 24 bytes: off 0 u32 PEER_MAGIC | off 4 u32 version (1) |
 *     off 8 u32 from node | off 12 u32 0 | off 16 u64 cluster id
 *   then frames: off 0 u32 body bytes | off 4 u8 type (enum peer_frame_type) | 3 bytes 0 |
 *     off 8 body
 * PEER_MAGIC's bytes are "RLPR"; read as a native frame's big-endian length it is over a
 * gigabyte, more than any native frame may be, so the listener cannot mistake one for the other.
 * A hello from another cluster (a different cluster id) or of another version is refused with
 * an error in the log naming both ids, and the connection is closed.
 *
 * Outbound queues are bounded (PEER_MAX_QUEUE_BYTES per node): a frame that does not fit is
 * dropped and counted (Raft tolerates loss; the sender retries). The replication driver keeps
 * far below that bound by pausing appends to a node whose backlog (peer_backlog_bytes) is
 * high (repl.h, REPL_FLOW_PAUSE_BYTES), so a drop means a real overload. One send call writes
 * at most PEER_MAX_SEND_BYTES, so one node's backlog cannot hold a huge socket write and
 * frames queued meanwhile join the next write in order. A lost connection drops what
 * was queued on it and is dialed again after PEER_RECONNECT_MS.
 *
 * io callbacks only record results; peer_process (once per loop turn) does the work, so frames
 * reach the host's on_frame outside any io callback. Not thread-safe: the loop's thread only.
 */
#ifndef RL_BROKER_CLUSTER_PEER_H
#define RL_BROKER_CLUSTER_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct io;
struct peer;

#define PEER_MAGIC 0x52504c52u /* bytes "RLPR" */
#define PEER_VERSION 1
#define PEER_HELLO_BYTES 24
#define PEER_FRAME_HEADER_BYTES 8
#define PEER_MAX_BODY_BYTES (80u << 20)   /* a larger frame closes the connection */
#define PEER_MAX_QUEUE_BYTES (32u << 20)  /* queued for one node before frames are dropped */
#define PEER_MAX_SEND_BYTES (1u << 20)    /* written to a socket by one send call */
#define PEER_MAX_NODES 64
#define PEER_MAX_INBOUND 128
#define PEER_RECONNECT_MS 200
/* A node refusing a hello of another cluster writes back 16 bytes before it closes: u32
 * PEER_REJECT_MAGIC ("RLNO") | u32 its node id | u64 its cluster id, so the dialing node learns
 * that its --voters list disagrees (the outbound link's receive sees them). */
#define PEER_REJECT_MAGIC 0x4f4e4c52u
#define PEER_REJECT_BYTES 16

enum peer_frame_type {
    PEER_RAFT = 1,     /* an rwire frame (replication/rwire.h) */
    PEER_FWD = 2,      /* a change for the controller leader (ctl.c) */
    PEER_FWD_RESP = 3, /* the controller leader's answer */
    PEER_PING = 4,     /* empty: "I am alive" (broker liveness as every node sees it) */
    /* Never on the wire as a frame: reported to the host when a node refused our hello because
     * its cluster id differs. Body: u64 its cluster id (le). See PEER_REJECT_MAGIC. */
    PEER_REJECTED = 5,
    PEER_CTL_IMAGE_REQ = 6,  /* a node behind a controller snapshot asks for metadata (ctl.c) */
    PEER_CTL_IMAGE_RESP = 7, /* a chunk of the metadata image */
};

struct peer_host {
    /* A whole frame from node `from` (body valid only during the call). */
    void (*on_frame)(void *ctx, uint32_t from, uint8_t type, const uint8_t *body, size_t len);
    void *ctx;
};

struct peer_node_stats {
    bool connected;         /* our connection to it is up */
    int64_t last_heard_ms;  /* monotonic ms of its last frame to us (0: never) */
    uint64_t frames_sent, frames_dropped, frames_received, bytes_sent, bytes_received;
    uint64_t losses;        /* established connections to or from it that were lost */
    uint64_t bytes_queued;      /* now: queued or being written, not yet sent */
    uint64_t bytes_queued_max;  /* the most ever queued at once */
    uint64_t send_calls;        /* socket send operations */
};

/* Creates the transport of node `self` of cluster `cluster_id` on `io` (borrowed). NULL on
 * allocation failure. */
struct peer *peer_create(struct io *io, uint32_t self, uint64_t cluster_id,
                         const struct peer_host *host);
/* Closes every connection, waits (bounded, 2 s) for their io ops, frees. Blocks. */
void peer_destroy(struct peer *p);

/* Adds node `node` at host:port (IPv4) to dial. Returns 0, RL_E_EXISTS, RL_E_LIMIT or
 * RL_E_INVALID_CONFIG. */
int peer_add(struct peer *p, uint32_t node, const char *host, uint16_t port);

/* Queues a frame for `to` (copied). Returns 0, RL_E_NOT_FOUND (unknown node), or RL_E_FULL
 * (queue over its bound: dropped and counted) or RL_E_BROKER_UNAVAILABLE (not connected:
 * dropped). */
int peer_send(struct peer *p, uint32_t to, uint8_t type, const void *body, size_t len);

/* As peer_send for a body at (*buf)[PEER_FRAME_HEADER_BYTES, + len) of a malloc'ed buffer of
 * *cap bytes: the header is written in front of it and, when nothing is queued for `to`, the
 * buffer itself becomes the queue (no copy) and the caller gets the queue's old buffer back in
 * *buf and *cap (possibly NULL and 0). Otherwise the body is copied as peer_send does. */
int peer_send_buf(struct peer *p, uint32_t to, uint8_t type, uint8_t **buf, size_t *cap,
                  size_t len);

/* Takes over an accepted connection whose first bytes (pre[0..n), n may be 0) began a peer
 * hello. The caller no longer owns fd. */
void peer_adopt(struct peer *p, int fd, const uint8_t *pre, size_t n);

/* Whether bytes that begin a connection are a peer hello (n >= 4). */
bool peer_is_hello(const uint8_t *buf, size_t n);

/* Loop work: completions, inbound frames to on_frame, sends, dials due. */
void peer_process(struct peer *p);

/* Bytes queued for `node` and not yet written to its socket (0 for an unknown node). */
size_t peer_backlog_bytes(const struct peer *p, uint32_t node);

/* The length one send call writes of `pending` bytes (at most PEER_MAX_SEND_BYTES). */
static inline size_t peer_send_chunk(size_t pending)
{
    return pending < PEER_MAX_SEND_BYTES ? pending : PEER_MAX_SEND_BYTES;
}

void peer_get_node_stats(const struct peer *p, uint32_t node, struct peer_node_stats *out);

/* Nodes whose connection was lost since the last call: an established connection to or from
 * them closed or was reset (a dead process's kernel resets both at once). A hint for fast
 * failover (raft_leader_unreachable), never proof: a connection also drops when the far end
 * merely restarts it. Fills out[0..cap) with distinct ids and forgets them; returns the count
 * (nodes beyond cap stay pending for the next call). One consumer: the replicas (replica.h). */
uint32_t peer_take_lost(struct peer *p, uint32_t *out, uint32_t cap);

#endif
