/*
 * arena: a bump allocator reset per request (nginx pools). Request path: connection -> frame ->
 * protobuf-c unpack into an arena -> handler builds its response in the same arena -> the
 * response is sent -> arena_reset. One request costs a handful of pointer bumps instead of a
 * malloc per protobuf field, and everything the request owned goes away in one step.
 *
 * The first chunk is kept across resets; bigger requests chain extra chunks, which a reset
 * frees. max_bytes bounds what one request may take (a hostile frame full of tiny repeated
 * fields cannot blow memory up): past it, allocations fail and protobuf-c reports the frame as
 * malformed. Single-threaded; owned by whoever owns the request.
 */
#ifndef RL_COMMON_ARENA_H
#define RL_COMMON_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *head;   /* current chunk (the newest) */
    struct arena_chunk *first;  /* kept across resets */
    size_t chunk_bytes;         /* size of the first chunk and the minimum of later ones */
    size_t max_bytes;           /* bound on the bytes one lifetime (between resets) may take */
    size_t used_bytes;          /* bytes of chunks held beyond the first */
    ProtobufCAllocator pb;      /* protobuf-c view of this arena */
};

/* Sets up an arena whose first chunk holds chunk_bytes; allocates that chunk lazily. */
void arena_init(struct arena *a, size_t chunk_bytes, size_t max_bytes);

/* Frees every chunk. The arena may be initialised again afterwards. */
void arena_destroy(struct arena *a);

/* Returns 16-byte aligned memory valid until the next reset, or NULL when max_bytes would be
 * exceeded or malloc fails. Never returns memory of size 0 as NULL (a 0-byte request gets a
 * valid pointer). */
void *arena_alloc(struct arena *a, size_t len);

/* arena_alloc, zero-filled. */
void *arena_calloc(struct arena *a, size_t len);

/* Copies a string into the arena; NULL on failure. */
char *arena_strdup(struct arena *a, const char *s);

/* printf into the arena; returns "" (static) when out of memory. */
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Releases everything allocated since the last reset, keeping the first chunk. */
void arena_reset(struct arena *a);

/* Bytes held by the arena right now (chunks, not what was asked for). */
size_t arena_held_bytes(const struct arena *a);

#endif
