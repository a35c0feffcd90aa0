/*
 * fetch: the read side of the broker, protocol-neutral: Fetch (with long polls) and
 * ListOffsets take and return plain C structs, so the native protocol and a Kafka listener
 * share them. Read path:
 *
 *   handler -> fetch_start -> per partition: partition_read (whole batches up to the visible
 *   end) -> fewer than min_bytes? wait on the partitions' waiter lists and a timer, until an
 *   append makes enough visible or max_wait passes -> file slices read with O_DIRECT into
 *   pooled 2 MiB buffers (or mapped when cached, or left for the server to splice) ->
 *   q->done -> the handler answers with each part's bytes
 *
 * The bytes a part answers with stay valid until the request is released (svc_req release):
 * memory (data) or, for a spliced part, a range of a file descriptor (fd, file_position).
 *
 * Single-threaded: the shard's loop.
 */
#ifndef RL_BROKER_DELIVERY_FETCH_H
#define RL_BROKER_DELIVERY_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct meta;
struct fetch;
struct fetch_part_state;
struct svc_req;

#define FETCH_DEFAULT_MAX_BYTES (50u * 1024 * 1024) /* when a fetch says max_bytes 0 */
#define FETCH_MAX_WAIT_MS 300000u    /* longest long-poll a client may ask for */
/* Fetched slices are read with O_DIRECT into buffers of this size (a slice whose aligned range
 * is larger goes by splice or a buffered read), and at most this many idle ones are kept. */
#define FETCH_DIRECT_BUF_BYTES (2u * 1024 * 1024)
#define FETCH_MAX_IDLE_DIRECT_BUFS 16
/* Catch-up read-ahead: slices read ahead for the next fetch of a partition, at most this many
 * at once, each released when no fetch took it within this many ticks (100 ms each). */
#define FETCH_RA_SLOTS 16
#define FETCH_RA_IDLE_TICKS 3

struct fetch_stats {
    uint64_t readahead_reads;    /* next slices read ahead */
    uint64_t readahead_hits;     /* fetches answered with one */
    uint64_t readahead_wasted;   /* read ahead, then released unused (expired, stale, evicted) */
};

/* One requested partition. */
struct fetch_part {
    /* in */
    const char *topic;
    uint32_t partition;
    uint64_t offset;
    uint32_t max_bytes;          /* 0: no per-partition cap */
    /* out */
    int32_t error_code;
    const char *error_message;
    uint64_t high_watermark, log_start_offset, log_end_offset;
    uint32_t data_len;           /* bytes of whole batches answered (0: none) */
    const uint8_t *data;         /* the bytes in memory, or NULL for a file range: */
    int fd;                      /* ... data_len bytes at file_position of fd */
    uint64_t file_position;
    struct fetch_part_state *st; /* the service's own */
};

struct fetch_request {
    uint32_t min_bytes, max_bytes, max_wait_ms;
    size_t n_parts;
    struct fetch_part *parts;    /* in the request's arena */
    /* Every part's bytes in memory, never a file range (the Kafka listener rewrites each
     * batch's header and computes its CRC over the records). */
    bool memory_only;
    /* Leave out what only a replicated log's control batches (Raft no-ops, configurations)
     * would answer (needs memory_only): when every part's bytes are control batches only,
     * those parts' offsets move past them (part.offset is updated) and the fetch reads again,
     * long-polling for what remains of max_wait. The answer may still carry control batches
     * beside data; the caller leaves them out (offset gaps are legal for Kafka clients). */
    bool skip_control;
    /* Called once with the answer ready: within fetch_start, or later from the loop. */
    void (*done)(struct svc_req *r, struct fetch_request *q);
    void *ctx;
};

/* splice: file slices too large for a pooled buffer may be left for the server to splice
 * (fetch.splice); otherwise they are read into memory. */
int fetch_create(struct meta *meta, bool splice, struct fetch **out);
void fetch_destroy(struct fetch *f);

/* Periodic upkeep (every loop tick): releases read-aheads nobody took. */
void fetch_tick(struct fetch *f);

/* Shutdown begins: read-aheads are released (those still reading once their read ends), and
 * no new ones start. Call while the partitions are still open. */
void fetch_begin_stop(struct fetch *f);

void fetch_get_stats(const struct fetch *f, struct fetch_stats *out);

/* Starts q for r. Sets r->state, finish, release and interrupt (a long poll answers at once
 * when the peer closes or the broker stops) and abandon (the connection is gone). */
void fetch_start(struct fetch *f, struct svc_req *r, struct fetch_request *q);

/* ListOffsets for one partition: timestamp -2 earliest, -1 latest (the visible end), or ms
 * since the epoch (the first offset whose batch is at least that recent). */
struct fetch_offset {
    int32_t error_code;
    const char *error_message;   /* in r's arena */
    int64_t offset, timestamp;
};
void fetch_list_offset(struct fetch *f, struct svc_req *r, const char *topic, uint32_t partition,
                       int64_t timestamp, struct fetch_offset *out);

#endif
