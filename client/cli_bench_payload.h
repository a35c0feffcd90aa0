/*
 * cli_bench_payload: the records `ringlog bench` sends, each carrying the time it was meant to
 * be sent, so a consumer can measure end-to-end latency from that moment (no coordinated
 * omission: a record held up by a slow broker still counts from when it should have left).
 *
 * Kinds:
 *  - random: consecutive slices of a pool of random bytes (incompressible: no two records of a
 *    batch share bytes while the pool holds more than a batch); the stamp is the first 8
 *    bytes, little-endian nanoseconds.
 *  - json: events shaped like what services send (an order or page-view event: ids, a user from
 *    a fixed population, a device, line items, a free-text note), built once into a pool of
 *    distinct events; repeated field names and ids make it compressible the way real events
 *    are. The stamp is the first field, "sent_ns", as 20 decimal digits at a fixed offset.
 *
 * Every record is exactly record_size bytes. Pools are built by payload_init; payload_next
 * costs a stamp write and never allocates. One payload has one user thread at a time.
 */
#ifndef RL_CLIENT_CLI_BENCH_PAYLOAD_H
#define RL_CLIENT_CLI_BENCH_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

enum payload_kind { PAYLOAD_RANDOM = 0, PAYLOAD_JSON = 1 };

#define PAYLOAD_JSON_MIN_BYTES 64 /* the stamp field and a closing note */
#define PAYLOAD_STAMP_BYTES 8

struct payload {
    enum payload_kind kind;
    size_t record_size;
    uint8_t *pool;
    size_t pool_bytes;
    size_t slots;      /* json: events in the pool */
    size_t next;       /* random: offset of the next record; json: its slot */
    uint64_t rng;
    uint8_t *stamped;  /* random: the record last handed out, whose first bytes... */
    uint8_t saved[PAYLOAD_STAMP_BYTES]; /* ...were these before its stamp */
};

/* Builds the pool for records of record_size bytes: pool_bytes (at least 4 MiB; give it twice
 * the producer's batch.size, so a batch never wraps around the pool). Returns 0, or -EINVAL
 * with a message in err (json below PAYLOAD_JSON_MIN_BYTES, random below PAYLOAD_STAMP_BYTES),
 * or -ENOMEM. */
int payload_init(struct payload *p, enum payload_kind kind, size_t record_size,
                 size_t pool_bytes, uint64_t seed, char *err, size_t errlen);
void payload_free(struct payload *p);

/* The next record, stamped with stamp_ns; record_size bytes valid until the next call. */
const uint8_t *payload_next(struct payload *p, uint64_t stamp_ns);

/* Reads the stamp of a record built by payload_next. Returns 0, or -EINVAL when the record is
 * too short or its stamp field is malformed. */
int payload_stamp(enum payload_kind kind, const uint8_t *value, size_t len, uint64_t *stamp_ns);

/* "random" / "json" <-> kind. parse returns 0 or -EINVAL. */
int payload_parse_kind(const char *name, enum payload_kind *out);
const char *payload_kind_name(enum payload_kind kind);

#endif
