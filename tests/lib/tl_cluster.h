/*
 * tl_cluster: the scaffolding of the multi-node integration suites (Criterion only): a cluster
 * of real ringlogd processes on 127.0.0.1 whose --voters list names free ports picked before
 * any of them starts, the Metadata, fetch and read-back helpers the replication suites ask
 * their nodes with, and the checks of the keyed record stream their producers write.
 *
 *   static const char *const node_args[] = {"--set", "election.timeout.ms=1000", NULL};
 *   static struct tl_cluster cl;
 *   static void teardown(void) { tl_cluster_finish(&cl); }
 *   Test(x, y, .fini = teardown) {
 *       tl_cluster_init(&cl, &(struct tl_cluster_conf){.nodes = 3, .voters = 3,
 *                                                      .args = node_args});
 *       tl_cluster_start_all(&cl);                    // node i is --node-id i + 1
 *       tl_cluster_wait_leaders(&cl, "t", 6, 3, leaders, 15000);
 *       ... cl.b[i] is node i + 1's tl_broker, cl.boot its bootstrap.servers list ...
 *   }
 *
 * Built on tl_broker and tl_client. Failures are Criterion assertions where the contract says
 * "asserts"; every wait has a deadline and polls at a fixed pace, never sleeping to
 * synchronize. Blocking; not thread-safe (the keyed-stream helpers excepted, see below).
 */
#ifndef RL_TESTS_TL_CLUSTER_H
#define RL_TESTS_TL_CLUSTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/ringlog.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

#define TL_CLUSTER_MAX_NODES 8

struct tl_cluster_conf {
    int nodes;                /* brokers, node ids 1..nodes (<= TL_CLUSTER_MAX_NODES) */
    int voters;               /* the first `voters` nodes are --voters; 0: all of them */
    int spare_ports;          /* free ports picked beyond the nodes' (cl->ports[nodes..]) */
    const char *const *args;  /* extra ringlogd arguments of every node (NULL-terminated, may
                               * be NULL); must outlive the cluster (static) */
    uint32_t start_ms;        /* start and restart deadline; 0: 20000 */
};

struct tl_cluster {
    struct tl_cluster_conf conf;
    int n;                                    /* conf.nodes */
    struct tl_broker b[TL_CLUSTER_MAX_NODES]; /* node i + 1 */
    uint16_t ports[TL_CLUSTER_MAX_NODES + 2]; /* native listeners, then the spare ports */
    char voters[256];                         /* "1@127.0.0.1:p1,2@..." */
    char boot[256];                           /* "127.0.0.1:p1,..." of every node */
};

/* Picks the free ports (bound together, so they differ, then released) and fills cl from
 * conf; starts nothing. Asserts. */
void tl_cluster_init(struct tl_cluster *cl, const struct tl_cluster_conf *conf);

/* Starts node i (0-based) with --listen, --node-id i + 1, --voters and conf.args. Asserts. */
void tl_cluster_start_node(struct tl_cluster *cl, int i);

/* Starts every node in order. Asserts. */
void tl_cluster_start_all(struct tl_cluster *cl);

/* The end of a cluster test: tl_broker_finish on every node (20 s each), expecting exit
 * status 0 (cr_expect). Nodes never started are skipped. */
void tl_cluster_finish(struct tl_cluster *cl);

/* tl_connect to node i (2 s). Returns 0 or a negative code. */
int tl_cluster_connect(struct tl_cluster *cl, int i, struct tl_conn *c);

/* Connects c to node i and asks its Metadata of `topic` (NULL: no topic, brokers only).
 * Returns 0 with *md valid until tl_close(c), which the caller does; or a negative code, and
 * c is closed. */
int tl_cluster_metadata(struct tl_cluster *cl, int i, struct tl_conn *c, const char *topic,
                        Ringlog__MetadataResponse **md);

/* True when node i's Metadata lists `topic` without error. */
bool tl_cluster_has_topic(struct tl_cluster *cl, int i, const char *topic);

/* The leader of each partition (leaders[partition], partitions below cap) as running node i's
 * Metadata names it. Returns the partition count, or -1 (node down, no answer, or a partition
 * without `replicas` replicas when replicas > 0). */
int tl_cluster_leaders_on(struct tl_cluster *cl, int i, const char *topic, int32_t *leaders,
                          int cap, int replicas);

/* The leader (1..n) of topic-part that every node but `except` (-1: none) names, with all
 * `parts` partitions listed; 0 while they disagree or one does not answer. */
int tl_cluster_agreed_leader(struct tl_cluster *cl, const char *topic, int parts, int part,
                             int except);

/* Polls until every node names the same leader of each of the topic's `parts` partitions
 * (each with `replicas` replicas when > 0); leaders (may be NULL) gets them. Asserts within
 * timeout_ms. */
void tl_cluster_wait_leaders(struct tl_cluster *cl, const char *topic, int parts, int replicas,
                             int32_t *leaders, uint32_t timeout_ms);

/* Creates `spec` through node i, retrying every retry_ms while it fails (the brokers register
 * a moment after the controller is elected), until timeout_ms. Returns the last code; msg gets
 * the last message. */
int tl_cluster_create_topic(struct tl_cluster *cl, int i, Ringlog__TopicSpec *spec, char *msg,
                            size_t cap, uint32_t retry_ms, uint32_t timeout_ms);

/* The value of the /metrics line of node i that starts with `prefix` and a space (-1 when
 * absent or the node does not answer). */
int64_t tl_cluster_metric(struct tl_cluster *cl, int i, const char *prefix);

/* The high watermark of topic-p on node i, or -1. */
int64_t tl_cluster_hwm(struct tl_cluster *cl, int i, const char *topic, uint32_t p);

/* Node i's whole batches of topic-p from offset `from` below `end`, fetched and concatenated
 * (malloc'ed, the caller frees; *len bytes). Asserts every fetch. */
uint8_t *tl_cluster_read_log(struct tl_cluster *cl, int i, const char *topic, uint32_t p,
                             uint64_t from, uint64_t end, size_t *len);

/* Polls (30 s) until nodes[0..n) report the same positive high watermark of topic-p, then
 * expects their committed bytes below it to be identical. Asserts. */
void tl_cluster_expect_same_log(struct tl_cluster *cl, const char *topic, uint32_t p,
                                const int *nodes, int n);

/* --- the keyed record stream ------------------------------------------------------------------
 * Record i of the stream has key "k%04d" of k = i % keys and value "k:i / keys", so a reader
 * can check each key's records arrive once and in order. The acknowledgement counters are
 * atomics: the delivery callback runs on the producer's thread. */

struct tl_cluster_acks {
    atomic_uint_fast64_t ok, failed;
    atomic_int first_err; /* the first failure's code */
    char first_msg[256];  /* ... and its message (written once, by the failure that set it) */
};

/* A delivery callback (ctx: a struct tl_cluster_acks) counting acknowledgements and failures. */
void tl_cluster_acks_on_delivery(void *ctx, const struct rl_delivery *d);

/* Polls until `more` acknowledgements beyond the current count arrived. Asserts within
 * timeout_ms, the message naming `when`. */
void tl_cluster_acks_wait(struct tl_cluster_acks *a, uint64_t more, uint32_t timeout_ms,
                          const char *when);

/* Asserts no failure and exactly `records` acknowledgements. */
void tl_cluster_acks_expect(struct tl_cluster_acks *a, int records);

/* Sends record i of the keyed stream to topic (any partition). Returns rl_producer_send's. */
int tl_cluster_keyed_send(struct rl_producer *p, const char *topic, int i, int keys);

/* Checks that r is the next record due of its key (next[key], keys counters) and counts it.
 * Asserts. */
void tl_cluster_keyed_expect_next(int *next, int keys, const struct rl_record *r);

#endif
