/*
 * workload: the clients of a fault test. Producers and consumers run as threads of the test
 * program, each inside a lab host (its thread joins the host's network namespace before it
 * opens a socket, so libringlog's I/O thread, created afterwards, lives there too), and record
 * everything into a history (tests/fault/history.h):
 *   - a producer (libringlog, acks and idempotence as configured) sends unique values
 *     "w<writer>-<seq>" to explicit partitions, round-robin, keeping at most `window` records
 *     unanswered; each send is invoked in the history first and completed from the delivery
 *     callback: OK with the acknowledged offset, INFO for any error (a timed-out or failed
 *     delivery may still have been appended), FAIL only when rl_producer_send refused the
 *     record (it never left the process);
 *   - a consumer reads every partition from the earliest offset and records each record.
 * After the faults, from the control node: wl_drain reads every partition to its end through
 * libringlog, and wl_dump_replica reads one broker's log through the raw protocol, batch by
 * batch, recording each record with its batch's leader epoch (the term).
 *
 * Where it sits: fault suites -> workload -> libringlog / tests/lib/tl_client -> ringlogd.
 * Every loop is bounded by the stop flag or a deadline.
 */
#ifndef RL_TESTS_FAULT_WORKLOAD_H
#define RL_TESTS_FAULT_WORKLOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "tests/fault/cluster.h"
#include "tests/fault/history.h"
#include "tests/fault/netns.h"

#define WL_MAX_CLIENTS 16

struct wl_config {
    const char *bootstrap; /* "host:port,..." */
    const char *topic;
    int partitions;
    int producers, consumers;
    int producer_host[WL_MAX_CLIENTS], consumer_host[WL_MAX_CLIENTS]; /* lab hosts */
    int window;            /* records unanswered per producer (default 200) */
    int rate;              /* records per second per producer, 0: as the window allows */
    bool idempotent;
    const char *acks;      /* "all", "1", "0" */
    int delivery_timeout_ms, request_timeout_ms; /* defaults 20000, 3000 */
};

struct wl;

struct wl_producer {
    struct wl *w;
    int writer; /* the history's writer id */
    pthread_t thread;
    atomic_long sent, completed;
    char error[256]; /* why the thread stopped early, "" otherwise */
};

struct wl_consumer {
    struct wl *w;
    int source;
    int index;
    pthread_t thread;
    char error[256];
};

struct wl {
    struct wl_config cfg;
    struct netns_lab *lab;
    struct hist *h;
    atomic_bool stop;
    atomic_int flush_ms; /* the producers' final flush bound, set by wl_stop */
    struct wl_producer prod[WL_MAX_CLIENTS];
    struct wl_consumer cons[WL_MAX_CLIENTS];
    bool started;
};

/* Creates the topic through the broker(s) in bootstrap, from the calling thread. replicas 0:
 * the broker's default. Returns 0 or the code, with the broker's message in why. */
int wl_create_topic(const char *bootstrap, const char *topic, int partitions, int replicas,
                    char *why, size_t cap);

/* Starts the producer and consumer threads. Returns 0 or a negative code. */
int wl_start(struct wl *w, const struct wl_config *cfg, struct netns_lab *lab, struct hist *h);

/* Stops sending, waits up to flush_timeout_ms for answers to what was sent, stops every
 * thread. Unanswered records stay indeterminate. Returns 0 or -ETIMEDOUT. */
int wl_stop(struct wl *w, uint32_t flush_timeout_ms);

/* Waits until `more` acknowledgements arrive after the call (0 on success, -ETIMEDOUT). */
int wl_wait_acks(struct wl *w, long more, uint32_t timeout_ms);

/* Acknowledgements arriving within window_ms (the progress probe of a fault: under a full
 * partition it must be 0, after healing above 0). */
long wl_acks_within(struct wl *w, uint32_t window_ms);

/* Reads every partition from the earliest offset to its end (asked once at the start, from
 * the bootstrap brokers) through libringlog, from the calling thread, as a new consumer source
 * named `name`. Returns records read (>= 0) or a negative code with a message in why. */
long wl_drain(struct hist *h, const char *bootstrap, const char *topic, int partitions,
              const char *name, uint32_t timeout_ms, char *why, size_t cap);

/* Reads broker host:port's log of every partition, from offset 0 up to its high watermark,
 * through the raw protocol, recording each record with its batch's term under `source` (a
 * replica source of the history). Partitions the broker answers NOT_LEADER for (a follower,
 * or a broker that holds no replica) are skipped: their copies are read from the files after
 * the clean stop. Returns records read or a negative code. */
long wl_dump_replica(struct hist *h, int source, const char *host, uint16_t port,
                     const char *topic, int partitions, uint32_t timeout_ms, char *why,
                     size_t cap);

/* Reads one stopped broker's copy of the topic straight from its data directory
 * (the segment files <data_dir>/<topic>-<p>/NNN.log, batches in file order up to the first byte that is no valid
 * batch), recording each record with its batch's term under `source` (a replica source).
 * every_partition: the broker must hold every partition (a missing directory is an error);
 * else a partition without a directory holds no replica here and is skipped. Read-only; the
 * broker must be stopped (a clean stop leaves no preallocated tail). Returns records read or a
 * negative code with the reason in why. */
long wl_dump_data_dir(struct hist *h, int source, const char *data_dir, const char *topic,
                      int partitions, bool every_partition, char *why, size_t cap);

/* Waits until every running broker's replica of every partition serves up to the partition's
 * end (the leader's high watermark, read first): its log then equals the leader's up to
 * there, so a clean stop leaves no divergent uncommitted tail (a deposed leader's appends the
 * new leader has not yet cut) below the end for wl_dump_data_dir to read as the replica's
 * copy. every_partition: each broker holds every partition. Returns 0, or -ETIMEDOUT (or the
 * end offsets' error) with the reason in why. */
int wl_wait_replicas(struct cl_cluster *c, const char *topic, int partitions,
                     bool every_partition, uint32_t timeout_ms, char *why, size_t cap);

/* Leadership claims from a broker's log: every line holding "leader of <topic>-<p> in term <t>"
 * (the phrase a broker logs when it becomes a partition's leader) is recorded as node `node`
 * leading p in term t. Returns the claims found or -errno. */
long wl_claims_from_log(struct hist *h, const char *log_path, const char *topic, int node);

/* The highest term in which the broker whose log is at log_path logged becoming leader of
 * topic's partition ("leader of <topic>-<p> in term <t>"). Returns 1 with *term, 0 when it
 * never did, or -errno. */
int wl_log_latest_claim(const char *log_path, const char *topic, uint32_t partition,
                        uint32_t *term);

/* The end of a fault run, after healing: drains every partition through the bootstrap
 * brokers, dumps every running broker's log as a replica source, runs the checker and prints
 * its report; a history with anomalies is written to <cluster dir>/history.txt. Returns the
 * anomalies found (0: clean), or a negative code when the drain itself failed and nothing
 * else was wrong (a drain that cannot finish is a failure too). */
long wl_verify(struct hist *h, struct cl_cluster *c, const char *topic, int partitions,
               const struct hist_check_opts *opts, uint32_t timeout_ms);

#endif
