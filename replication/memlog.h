/*
 * memlog: a Raft log in memory, implementing struct raft_log_ops (raft.h) exactly as the
 * contract states it. Where it sits: under the raft core in the unit tests, the deterministic
 * simulator (tests/sim) and the core benchmark; it is also the reference a durable log adapter
 * (replication/raftlog.h) is checked against.
 *
 * Entries are kept by value in index order (entry k covers (index - count, index]), the log
 * starting after a snapshot point (snap_index, snap_term). Lookups by index are binary
 * searches. Payload pointers are stored, not copied: the caller keeps payloads alive as long
 * as the entries (the simulator uses a per-run arena). A durable prefix (durable_n entries)
 * lets a simulation drop what a crash would lose. Configuration entries are also listed by
 * index so the configuration in effect at any index is found without a scan.
 *
 * Not thread-safe; allocates as it grows (malloc), frees with memlog_free.
 */
#ifndef RL_REPLICATION_MEMLOG_H
#define RL_REPLICATION_MEMLOG_H

#include <stdint.h>

#include "replication/raft.h"

struct memlog {
    struct raft_entry *e; /* e[0..n): entry k ends at e[k].index */
    uint64_t n, cap;
    uint64_t durable_n; /* e[0..durable_n) survive memlog_crash */
    uint64_t snap_index; /* the log starts after this index (0: at the beginning) */
    uint64_t snap_term;
    uint64_t *conf; /* indexes of CONFIG entries in the log, ascending */
    uint64_t n_conf, conf_cap;
};

/* The raft_log_ops of a memlog; log_ctx is the struct memlog. */
extern const struct raft_log_ops memlog_ops;

/* An empty log starting after (snap_index, snap_term). Allocates nothing yet. */
void memlog_init(struct memlog *l, uint64_t snap_index, uint64_t snap_term);
void memlog_free(struct memlog *l);

/* The index after the last entry (the snapshot index when empty). */
uint64_t memlog_last(const struct memlog *l);

/* Appends e, which must start where the log ends (e->index - e->count == memlog_last) with
 * count >= 1 and a term no lower than the last entry's. Returns 0 or RL_E_INVALID_ARGUMENT. */
int memlog_append(struct memlog *l, const struct raft_entry *e);

/* Removes entries ending after `index`, which must be an entry boundary of the log (or the
 * snapshot index). Returns 0 or RL_E_INVALID_ARGUMENT. */
int memlog_truncate_after(struct memlog *l, uint64_t index);

/* Drops entries ending at or below `index` (a boundary); the log then starts after (index,
 * term of that entry). Returns 0 or RL_E_INVALID_ARGUMENT. */
int memlog_compact(struct memlog *l, uint64_t index);

/* Discards the whole log; it now starts after (index, term). */
void memlog_reset(struct memlog *l, uint64_t index, uint64_t term);

/* The entry ending exactly at `index`, or NULL. */
const struct raft_entry *memlog_get(const struct memlog *l, uint64_t index);

/* Position (0-based) of the first entry whose index is >= `index` (n when none). */
uint64_t memlog_lower_bound(const struct memlog *l, uint64_t index);

/* Marks everything up to the entry ending at `index` durable (ignored if no entry ends
 * there); memlog_crash drops what is not. */
void memlog_set_durable(struct memlog *l, uint64_t index);
void memlog_crash(struct memlog *l);
/* The index after the last durable entry. */
uint64_t memlog_durable_last(const struct memlog *l);

#endif
