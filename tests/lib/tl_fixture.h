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

#endif
