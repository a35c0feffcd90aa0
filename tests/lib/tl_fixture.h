/*
 * tl_fixture: what the broker suites of tests/integration share (Criterion only): the standard
 * fixture, one ringlogd and one connection to it, and the raw-socket, /metrics and polling
 * helpers the guard and limit suites used to copy.
 *
 *   static struct tl_broker broker;
 *   static struct tl_conn conn;
 *   static void setup(void) { tl_fixture_start(&broker, &conn, NULL); }
 *   static void teardown(void) { tl_fixture_finish(&broker, &conn); }
 *   TestSuite(x, .init = setup, .fini = teardown);
 *
 * Failures are Criterion assertions; every wait has a deadline. Blocking; not thread-safe.
 */
#ifndef RL_TESTS_TL_FIXTURE_H
#define RL_TESTS_TL_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

/* Starts ringlogd with args (NULL-terminated extra arguments, may be NULL) and connects conn
 * to it; asserts both. */
void tl_fixture_start(struct tl_broker *b, struct tl_conn *conn, const char *const *args);

/* The end of a suite's test: closes conn, stops the broker (SIGTERM, 30 s), removes its
 * directory, and expects exit status 0 (the log tail is printed otherwise). Does nothing for a
 * broker that was never started (b->dir empty). Returns the exit status. */
int tl_fixture_finish(struct tl_broker *b, struct tl_conn *conn);

/* A raw TCP connection to 127.0.0.1:port (for peers that send nothing or not the protocol);
 * asserts. Close it with close(). */
int tl_raw_connect(uint16_t port);

/* True once the peer closed fd (a read returns 0 or an error) within timeout_ms; bytes that
 * arrive first are read and dropped. */
bool tl_expect_closed(int fd, uint32_t timeout_ms);

/* The value of metric `name` in the broker's GET /metrics; asserts the answer and the metric. */
long long tl_metric(const struct tl_broker *b, const char *name);

/* The pace of a polling loop (sleeps ms): never synchronization, always inside a deadline. */
void tl_pace(uint32_t ms);

/* --- clusters: nodes 1..n on 127.0.0.1, the first n_voters the controller quorum ----------- */

/* Picks n free ports on 127.0.0.1 (bound together so they differ, then released) into
 * ports[0..n) and writes the --voters list of nodes 1..n_voters at ports[0..n_voters) into
 * voters; asserts. Node i+1 listens on ports[i]. */
void tl_cluster_ports(uint16_t *ports, int n, int n_voters, char *voters, size_t cap);

/* Starts node i+1 as b with --listen 127.0.0.1:ports[i], --node-id i+1, --voters voters and
 * the suite's extra arguments (NULL-terminated, may be NULL); asserts it started within
 * start_ms. */
void tl_cluster_start_node(struct tl_broker *b, int i, const uint16_t *ports, const char *voters,
                           const char *const *extra, uint32_t start_ms);

/* Stops every node of b[0..n) (SIGTERM, 20 s each) and expects each to exit 0. */
void tl_cluster_finish(struct tl_broker *b, int n);

#endif
