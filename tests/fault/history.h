/*
 * history: what a fault test saw, and the checker that reads it afterwards (Jepsen's Kafka
 * checker, scaled down; ../shared/reference/replication-anchors.md, "Checker design").
 *
 * Where it sits: the workload (tests/fault/workload.h) and hand-written unit tests record into
 * a history while faults happen; after healing and a final drain, hist_check() derives each
 * partition's version order from acknowledged offsets and reads (offsets make it explicit, so
 * every check is a sort and a linear pass, no linearizability search) and reports anomalies.
 *
 * Values. Every value written is unique: a writer (one producer of the workload, numbered by
 * hist_writer_add) and that writer's sequence number, 0, 1, 2... in send order. On the wire a
 * value is the text "w<writer>-<seq>" (hist_value_format), so a read can name its write.
 *
 * Events:
 *   - a write: invoked (hist_invoke) then completed once (hist_complete) as OK (acknowledged,
 *     with its offset), FAIL (definitely not written: refused before it was sent, or an error
 *     the broker gives only before appending) or INFO (indeterminate: timed out, connection
 *     lost; it may or may not be in the log). A write never completed counts as INFO.
 *   - a read: one record seen at (partition, offset) by a source: a consumer, or a dump of one
 *     replica's log (hist_source_add says which), with the leader epoch (term) of its batch
 *     when the source knows it (0 when not). A source's reads of one partition are expected
 *     in increasing offset order until hist_source_reset (a seek, a new assignment).
 *   - a leadership claim: node N led partition P in term T (from metadata answers, from an
 *     acknowledgement whose answering node and term are known, or from broker logs).
 *
 * Anomalies hist_check finds (enum hist_anomaly): see hist_anomaly_name and the list in
 * history.c. Vacuous runs (too few acknowledged writes or reads) are an anomaly too.
 *
 * Thread safety: recording functions may be called from any thread (one mutex); hist_check and
 * hist_dump must not run concurrently with recording. Memory grows geometrically with the
 * events recorded (no allocation per event on average); nothing is freed before hist_free.
 */
#ifndef RL_TESTS_FAULT_HISTORY_H
#define RL_TESTS_FAULT_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HIST_MAX_WRITERS 256
#define HIST_MAX_SOURCES 64
#define HIST_MAX_EXAMPLES 5 /* examples kept per anomaly kind */

enum hist_status { HIST_PENDING = 0, HIST_OK, HIST_FAIL, HIST_INFO };

enum hist_anomaly {
    HIST_LOST = 0,           /* acknowledged, at or below the highest offset read, never read */
    HIST_UNSEEN,             /* acknowledged, never read, above everything read */
    HIST_DUPLICATE,          /* one value at two offsets */
    HIST_INCONSISTENT_OFFSET,/* one offset, two values (reads, acks, replicas, over time) */
    HIST_G1A,                /* a failed write was read */
    HIST_UNKNOWN_VALUE,      /* a value read that was never written to that partition */
    HIST_REORDER,            /* an idempotent writer's records out of its sequence order */
    HIST_NONMONOTONIC,       /* a source read an offset at or below one it read before */
    HIST_SKIP,               /* a source jumped over an offset known to hold a record */
    HIST_REPLICA_GAP,        /* a replica's dump lacks an acknowledged record below its end */
    HIST_TERM_REGRESSION,    /* a record of a lower term after one of a higher term */
    HIST_TWO_LEADERS,        /* two nodes claimed one partition in one term */
    HIST_VACUOUS,            /* too few acknowledged writes or reads to mean anything */
    HIST_ANOMALY_KINDS
};

/* A source's kind: consumers read up to the high watermark through the client; a replica
 * dump reads one broker's log (its node id is the source's node). */
enum hist_source_kind { HIST_CONSUMER = 0, HIST_REPLICA };

struct hist;

/* A new, empty history of a topic with `partitions` partitions. NULL when out of memory. */
struct hist *hist_new(uint32_t partitions);
void hist_free(struct hist *h);

/* Registers a writer. idempotent: its records of one partition must land in sequence order.
 * Returns the writer id (>= 0) or -ENOSPC past HIST_MAX_WRITERS. */
int hist_writer_add(struct hist *h, bool idempotent);

/* Registers a read source (a consumer, or a replica dump of broker `node`). Returns its id
 * (>= 0) or -ENOSPC. */
int hist_source_add(struct hist *h, enum hist_source_kind kind, int32_t node, const char *name);

/* A write of seq (the writer's next sequence: 0, 1, 2... with no gaps) to a partition is
 * about to be sent. Returns 0, -EINVAL for a seq out of order or a bad partition, -ENOMEM. */
int hist_invoke(struct hist *h, int writer, uint32_t seq, uint32_t partition);

/* The write's outcome: status OK with the acknowledged offset (else offset -1). node and term
 * (-1 and 0 when unknown) say who acknowledged it in which term; both known adds a leadership
 * claim. Completing twice, or a write never invoked, returns -EINVAL (and is recorded as a
 * harness error the checker reports as an anomaly of kind HIST_UNKNOWN_VALUE). */
int hist_complete(struct hist *h, int writer, uint32_t seq, enum hist_status st,
                  int64_t offset, int32_t node, uint32_t term);

/* One record read by `source` at (partition, offset): the value's bytes as read (parsed here;
 * bytes that are not a value this history could have written count as UNKNOWN_VALUE) and the
 * batch's term (0 when unknown). Returns 0 or -ENOMEM. */
int hist_read(struct hist *h, int source, uint32_t partition, int64_t offset,
              const void *value, size_t value_len, uint32_t term);

/* The source starts over (seek, restart, new assignment): order checks restart from here. */
void hist_source_reset(struct hist *h, int source);

/* Node `node` led `partition` in `term`; `how` (static string) says what showed it. */
int hist_leader(struct hist *h, uint32_t partition, uint32_t term, int32_t node,
                const char *how);

/* A partition's leader is about to be SIGKILLed: `node` led `partition` in `term`, as the
 * cluster's metadata said just before. Recorded with whether the workload was under load then
 * (an acknowledgement within the last HIST_LOAD_WINDOW_MS) and with the claims known so far.
 * hist_check counts it as a leader kill under load when, besides, the victim's claim was still
 * the highest term claimed for the partition at the kill (the metadata was not stale) and a
 * claim of a higher term for the partition exists at check time (an election followed; the
 * restarted victim may have won it): the kills `make soak` reports. Returns 0 or -ENOMEM. */
#define HIST_LOAD_WINDOW_MS 1000
#define HIST_MAX_KILLS 4096
int hist_leader_kill(struct hist *h, int32_t node, uint32_t partition, uint32_t term);

/* Writes "w<writer>-<seq>" into buf; returns its length (buf holds >= 24 bytes). */
int hist_value_format(int writer, uint32_t seq, char *buf, size_t cap);

/* Parses a value; returns 0 with writer and seq, or -EINVAL. */
int hist_value_parse(const void *bytes, size_t len, int *writer, uint32_t *seq);

/* What the checker requires and found. */
struct hist_check_opts {
    long min_acked; /* fewer acknowledged writes: VACUOUS */
    long min_reads; /* fewer records read: VACUOUS */
};

struct hist_report {
    long writes, acked, failed, info, reads, claims;
    long leader_kills;          /* hist_leader_kill calls */
    long leader_kills_under_load; /* of them: under load, not stale, an election after */
    long count[HIST_ANOMALY_KINDS];
    long total; /* anomalies of every kind */
    char example[HIST_ANOMALY_KINDS][HIST_MAX_EXAMPLES][200];
};

/* Runs every check. Returns the number of anomalies (0: the history is clean). Sorts internal
 * copies; the history itself is unchanged and may be checked again after more events. Returns
 * -ENOMEM when the working copies cannot be had. */
long hist_check(struct hist *h, const struct hist_check_opts *opts, struct hist_report *rep);

/* Prints the report: the tallies, then each kind found with its examples. */
void hist_report_print(const struct hist_report *rep, FILE *out);

/* The anomaly's name ("lost", "duplicate", ...). Static. */
const char *hist_anomaly_name(enum hist_anomaly a);

/* Writes every event, one per line, for a post-mortem of a failed run. Returns 0 or -errno. */
int hist_dump(struct hist *h, const char *path);

/* Counters a workload watches while it runs (acknowledged writes so far, records read). */
long hist_acked(struct hist *h);
long hist_reads(struct hist *h);

#endif
