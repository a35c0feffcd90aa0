/*
 * rwire: the serialised form of Raft traffic between two brokers: one frame per (node pair,
 * loop turn) carrying every message for every group the pair shares, with heartbeats and their
 * replies coalesced (replication-anchors 6.1). Where it sits: replication driver (repl.h) ->
 * rwire -> the broker's transport (sockets, not in this module). A transport moves frames as
 * opaque bytes; repl builds and reads them.
 *
 * Frame (integers little-endian):
 *   off 0  u32 magic RWIRE_MAGIC ("RLRF") | off 4 u16 version (1) | off 6 u16 flags (0) |
 *   off 8  u32 from node | off 12 u32 to node | off 16 u32 records | off 20 u32 body bytes |
 *   off 24 records...
 * Record: u8 kind, then by kind:
 *   RWIRE_MSG        u64 group | u8 type | u8 flags | u64 term, index, log_term, commit,
 *                    hint_index, hint_term | u32 n_entries | entries | [snapshot meta]
 *     entry:         u64 index | u64 term | u32 count | u8 type | u32 len | len bytes
 *                    (a data entry's bytes are the record batch as stored, copied verbatim and
 *                    never re-encoded; a no-op has none; a configuration carries its payload)
 *     snapshot meta: (type SNAPSHOT only) u64 index, term, config_index | u32 len | config
 *   RWIRE_HB         u64 group | u8 form: 0 id-only (same term and commit as the last full
 *                    heartbeat of this group to this node), 1 full, 2 full and "answer in
 *                    full" | form >= 1: u64 term, u64 commit
 *   RWIRE_HB_RESP    u64 group | u8 form: 0 id-only (same as the last full reply), 1 full, 2 "I
 *                    could not expand your id-only heartbeat: send a full one" | form 1: u64
 *                    term, u64 index, u64 hint_index, u64 commit (the follower's, so the
 *                    leader sends an id-only heartbeat only to a follower that has the commit
 *                    index it would carry), u8 flags
 * A message's `from` and `to` are the frame's. Nothing in a frame is trusted: rwire_next checks
 * every length against the frame and returns RL_E_FRAME_MALFORMED for anything that does not
 * fit; entry bytes are pointers into the frame (valid while the frame is).
 */
#ifndef RL_REPLICATION_RWIRE_H
#define RL_REPLICATION_RWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "replication/raft.h"

#define RWIRE_MAGIC 0x46524c52u /* "RLRF" */
#define RWIRE_VERSION 1
#define RWIRE_HEADER_BYTES 24
#define RWIRE_MAX_FRAME_BYTES (64u << 20) /* a frame larger than this is refused */

enum rwire_kind { RWIRE_MSG = 1, RWIRE_HB = 2, RWIRE_HB_RESP = 3 };

enum rwire_form {
    RWIRE_ID_ONLY = 0,
    RWIRE_FULL = 1,
    RWIRE_FULL_ASK = 2,   /* heartbeat: full, and reply in full */
    RWIRE_NEED_FULL = 2,  /* reply: could not expand an id-only heartbeat */
};

/* A growable output buffer (malloc'ed). */
struct rwire_buf {
    uint8_t *p;
    size_t len, cap;
    uint32_t records;
    size_t base; /* where the frame starts in p (room left before it for a transport) */
};

/* Starts a frame from `from` to `to` in b (discarding what it held). */
int rwire_begin(struct rwire_buf *b, uint32_t from, uint32_t to);
/* The same, with `headroom` bytes left free before the frame (b->base), so a transport can
 * write its own header there and send the buffer as it is. */
int rwire_begin_at(struct rwire_buf *b, size_t headroom, uint32_t from, uint32_t to);
/* Appends a record. Return 0 or -ENOMEM. */
int rwire_put_msg(struct rwire_buf *b, uint64_t group, const struct raft_msg *m);
int rwire_put_hb(struct rwire_buf *b, uint64_t group, uint8_t form, uint64_t term,
                 uint64_t commit);
int rwire_put_hb_resp(struct rwire_buf *b, uint64_t group, uint8_t form, uint64_t term,
                      uint64_t index, uint64_t hint_index, uint64_t commit, uint8_t flags);
/* Appends the records of `src` (a buffer of records without a header) to b. */
int rwire_put_raw(struct rwire_buf *b, const uint8_t *records, size_t len, uint32_t n);
/* Fills in the header's counts; the frame is b->p[0..b->len). */
void rwire_end(struct rwire_buf *b);
void rwire_buf_free(struct rwire_buf *b);

/* One decoded record. For RWIRE_MSG, msg.entries points at the reader's entry array. */
struct rwire_record {
    uint8_t kind;
    uint64_t group;
    uint8_t form;
    struct raft_msg msg;  /* RWIRE_MSG (from/to set from the frame) */
    uint64_t term, commit, index, hint_index; /* RWIRE_HB, RWIRE_HB_RESP */
    uint8_t flags;
};

struct rwire_reader {
    const uint8_t *p;
    size_t len, pos;
    uint32_t from, to, left;
    struct raft_entry entries[RAFT_READY_MAX_ENTRIES];
};

/* Checks a frame's header; returns 0 (and prepares r) or RL_E_FRAME_MALFORMED /
 * RL_E_UNSUPPORTED_VERSION / RL_E_FRAME_TOO_LARGE. */
int rwire_open(struct rwire_reader *r, const uint8_t *frame, size_t len);
/* The next record: 1 with *rec filled, 0 at the end, or RL_E_FRAME_MALFORMED. */
int rwire_next(struct rwire_reader *r, struct rwire_record *rec);

#endif
