/*
 * shard: one broker thread and everything it owns: an io ring, the services (metadata state,
 * partitions, delivery, the native protocol; services.c), the native listener and its
 * connections, and the HTTP admin listener. DESIGN's unit of ownership: a later multi-core
 * broker runs several shards and hands work for another shard's partitions over by message
 * passing. Today ringlogd runs one.
 *
 * Request path: accept -> conn recv (io_uring) -> frame (proto/frame.h) -> req (svc_req) ->
 * native dispatch -> delivery/meta service -> partition -> storage -> response queued in
 * request order -> one sendmsg gathers every finished response.
 * Every io callback only records what happened and queues its connection; the shard's loop
 * does the work afterwards, so nothing runs re-entrantly when storage drives the ring itself
 * (plog_close, plog_delete) and objects are freed by the loop, never inside a callback.
 */
#ifndef RL_BROKER_SHARD_H
#define RL_BROKER_SHARD_H

#include <stdint.h>

#include "broker/server/config.h"

struct shard;

/* Creates the shard: creates the data directory, opens storage and topics (recovering logs),
 * binds both listeners. Returns 0 and *out, or a negative code with a sentence in err.
 * Blocks during recovery. */
int shard_create(const struct broker_config *cfg, struct shard **out, char *err,
                 size_t err_cap);

/* Ports actually bound (useful when the config asked for port 0). */
uint16_t shard_port(const struct shard *sh);
uint16_t shard_http_port(const struct shard *sh);
/* The Kafka listener's port (0 when kafka.listen is off). */
uint16_t shard_kafka_port(const struct shard *sh);

/* Serves until shard_request_stop, then stops accepting, answers in-flight requests (waiting
 * at most shutdown.timeout.ms), and returns 0. Blocks. */
int shard_run(struct shard *sh);

/* Asks a running shard to stop. Async-signal-safe; callable from any thread. */
void shard_request_stop(struct shard *sh);

/* Closes every log cleanly (marking a clean shutdown) and frees the shard. Blocks. */
void shard_destroy(struct shard *sh);

#endif
