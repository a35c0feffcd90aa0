/*
 * tl_client: a small blocking client of the native protocol for tests: send Request frames
 * (or raw bytes), read Response frames with a deadline, and one-call helpers for the common
 * requests. It uses the broker's own framing code (proto/frame.h), so tests exercise the
 * real encoder and decoder; decoded responses live in the connection's arena until the next
 * receive.
 *
 *   struct tl_conn c;
 *   tl_connect(&c, b.host, b.port, 5000);
 *   tl_create_topic(&c, "orders", 4, NULL, msg, sizeof(msg));   // 0 or the topic's error code
 *   uint8_t *batch; int len = tl_make_batch(3, "v", &batch);   // 3 records "v0".."v2"
 *   tl_produce(&c, "orders", 0, batch, len, 1, &base);          // 0 or the partition's code
 *   tl_fetch(&c, &(struct tl_fetch){.topic = "orders", .max_wait_ms = 100}, &out);
 *   tl_close(&c);
 *
 * Return values: 0 or a negative code (-errno, -ETIMEDOUT, RL_E_* from a response). Blocking;
 * one thread per connection.
 */
#ifndef RL_TESTS_TL_CLIENT_H
#define RL_TESTS_TL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "proto/ringlog.pb-c.h"

struct tl_conn {
    int fd;
    uint32_t next_correlation;
    struct arena arena;     /* the last response (reset by every receive) */
    uint8_t *buf;           /* the last response frame */
    size_t cap;
};

int tl_connect(struct tl_conn *c, const char *host, uint16_t port, uint32_t timeout_ms);
void tl_close(struct tl_conn *c);

/* Writes all of buf. */
int tl_send_raw(struct tl_conn *c, const void *buf, size_t len);

/* Frames and sends req followed by data_len data bytes; fills req->correlation_id when it is 0
 * and returns it (>= 0), or a negative code. */
int64_t tl_send(struct tl_conn *c, Ringlog__Request *req, const void *data, uint32_t data_len);

/* Reads one Response frame. On success *resp (and *data, *data_len; both may be NULL) stay valid
 * until the next receive on c. Returns 0, -ETIMEDOUT, RL_E_CLOSED at end of stream, or
 * RL_E_FRAME_MALFORMED. */
int tl_recv(struct tl_conn *c, uint32_t timeout_ms, Ringlog__Response **resp,
            const uint8_t **data, uint32_t *data_len);

/* tl_send then tl_recv; checks the correlation id (RL_E_INTERNAL on mismatch). */
int tl_call(struct tl_conn *c, Ringlog__Request *req, const void *data, uint32_t data_len,
            uint32_t timeout_ms, Ringlog__Response **resp, const uint8_t **out,
            uint32_t *out_len);

/* True when the broker closed the connection within timeout_ms (reads and drops any frames
 * that arrive first). */
bool tl_wait_closed(struct tl_conn *c, uint32_t timeout_ms);

/* --- helpers for common requests ------------------------------------------------------------- */

/* Creates a hash-partitioned topic; configs are "key=value" strings (NULL-terminated list or
 * NULL). Returns the topic's error code; msg (may be NULL) gets its error message. */
int tl_create_topic(struct tl_conn *c, const char *name, int32_t partitions,
                    const char *const *configs, char *msg, size_t msg_cap);

/* Creates the topic `spec` describes (for partitioners, split keys or replication factors
 * tl_create_topic does not set). Returns and fills msg as tl_create_topic. */
int tl_create_topic_spec(struct tl_conn *c, Ringlog__TopicSpec *spec, char *msg, size_t msg_cap);

/* Deletes a topic; returns its error code. */
int tl_delete_topic(struct tl_conn *c, const char *name);

/* Builds a batch of `count` uncompressed records with values "<prefix><i>", no keys, and
 * timestamp now. *out is malloc'ed (free it). Returns the batch length or a negative code. */
int tl_make_batch(uint32_t count, const char *prefix, uint8_t **out);

/* Like tl_make_batch with every value exactly value_bytes long ("<i>" then 'x' padding), for
 * tests that need large frames. */
int tl_make_batch_sized(uint32_t count, uint32_t value_bytes, uint8_t **out);

/* Sends a Produce of one partition's data (timeout_ms 10000) without waiting for the answer.
 * Returns the correlation id (>= 0) or a negative code; read the answer with tl_recv. */
int64_t tl_send_produce(struct tl_conn *c, const char *topic, uint32_t partition,
                        const void *data, uint32_t len, int32_t acks);

/* A batch of `count` uncompressed records of value_bytes incompressible bytes each (a fixed
 * xorshift stream, so every call builds the same bytes), no keys, timestamp 1: for benchmarks.
 * *out is malloc'ed (free it). Returns the batch length or a negative code. */
int tl_make_batch_random(uint32_t count, uint32_t value_bytes, uint8_t **out);

/* InitProducerId(pid, epoch): pid -1 for a new id. Returns the response's error code (0 with
 * *out_pid and *out_epoch set; either may be NULL) or a negative transport code. */
int tl_init_producer_id(struct tl_conn *c, int64_t pid, int32_t epoch, int64_t *out_pid,
                        int16_t *out_epoch);

/* Produces one partition's data (one or more batches). Returns the partition's error code
 * (request-level codes too); *base_offset (may be NULL) gets the assigned base offset. */
int tl_produce(struct tl_conn *c, const char *topic, uint32_t partition, const void *data,
               uint32_t len, int32_t acks, int64_t *base_offset);

struct tl_fetch {
    const char *topic;
    uint32_t partition;
    uint64_t offset;
    uint32_t max_wait_ms, min_bytes, max_bytes;
};

struct tl_fetch_result {
    int error_code;          /* the partition's (or the request's) code */
    const char *error_message;
    uint64_t high_watermark, log_start_offset;
    const uint8_t *data;     /* whole batches; valid until the next receive */
    uint32_t data_len;
    uint32_t records;        /* records at offsets >= the fetch offset */
};

/* Sends the Fetch of tl_fetch without waiting (for long polls a test watches). Returns the
 * correlation id (>= 0) or a negative code; read the answer with tl_recv. */
int64_t tl_send_fetch(struct tl_conn *c, const struct tl_fetch *f);

/* Fetches one partition and counts the records it returned. Returns out->error_code, or a
 * transport code. */
int tl_fetch(struct tl_conn *c, const struct tl_fetch *f, struct tl_fetch_result *out);

/* ListOffsets for one partition: timestamp -2 earliest, -1 latest. Returns the code. */
int tl_list_offset(struct tl_conn *c, const char *topic, uint32_t partition, int64_t timestamp,
                   int64_t *offset);

/* GET http://host:port/path; the body (NUL-terminated, truncated to cap) goes to body.
 * Returns the HTTP status or a negative code. */
int tl_http_get(const char *host, uint16_t port, const char *path, char *body, size_t cap,
                uint32_t timeout_ms);

#endif
