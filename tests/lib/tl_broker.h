/*
 * tl_broker: start, stop, kill and restart real ringlogd processes for integration tests.
 * Each broker gets a fresh temporary directory (ringlog-test-XXXXXX under $TMPDIR, else /tmp)
 * holding its data directory (data/), its log (ringlogd.log: stdout and stderr) and its ready
 * file; it listens on 127.0.0.1 on ports tl_pick_ports chose (native and HTTP), which a restart
 * keeps.
 *
 *   struct tl_broker b;
 *   tl_broker_start(&b, NULL, 10000);           // extra ringlogd args may be given
 *   ... connect to b.host:b.port (tests/lib/tl_client.h) ...
 *   tl_broker_kill(&b);                          // SIGKILL: a crash
 *   tl_broker_restart(&b, 10000);                // same data directory, same ports
 *   int status = tl_broker_stop(&b, SIGTERM, 10000);  // exit status, 0 after a clean stop
 *   tl_broker_cleanup(&b);                       // kills if running, removes the directory
 *
 * The ringlogd binary is $RINGLOGD when set, else bin/ringlogd of the build directory the test
 * program lives in (build/tests/x/test -> build/bin/ringlogd; build/asan/... likewise), so
 * `make test-asan` tests the sanitizer build of the broker. Every wait has a deadline; nothing
 * sleeps for synchronization. A broker is SIGKILLed when the process (thread) that started it
 * dies, so a crashed or timed-out test leaves none behind. Blocking; not thread-safe.
 */
#ifndef RL_TESTS_TL_BROKER_H
#define RL_TESTS_TL_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define TL_BROKER_MAX_ARGS 24

struct tl_broker {
    pid_t pid;                 /* 0 when not running */
    char dir[256];             /* the temporary directory */
    char data_dir[300];
    char log_path[300];
    char ready_path[300];
    char host[64];             /* "127.0.0.1" */
    uint16_t port, http_port;  /* known once started */
    char extra[TL_BROKER_MAX_ARGS][256]; /* extra arguments, kept for restarts */
    int n_extra;
};

/* Path of the ringlogd binary to test (static storage). */
const char *tl_ringlogd_path(void);

/* True when the broker under test runs under a sanitizer (this program was built with one, as
 * `make test-asan` builds both, or the ringlogd tested is a build/asan one): its times and RSS
 * then measure the instrumentation, so tests check correctness only. */
bool tl_sanitized(void);

/* Creates the temporary directory and starts ringlogd with `extra_args` (NULL-terminated, may be
 * NULL) added to its command line, then waits up to timeout_ms for its ready file. Returns 0, or
 * -ETIMEDOUT / -ECHILD (the broker exited) / -errno; on failure the broker's log tail is printed
 * to stderr and the process and directory are gone. */
int tl_broker_start(struct tl_broker *b, const char *const *extra_args, uint32_t timeout_ms);

/* Picks n distinct free TCP ports of 127.0.0.1 in [TL_PORT_LOW, TL_PORT_HIGH), below the
 * kernel's ephemeral range, at random, each checked by binding, and reserves each for the rest
 * of this process's life: an flock on TL_PORT_LOCK_DIR/PORT, held by a descriptor kept open
 * (the kernel drops it when the process ends, however it ends), so no other test process
 * picks a port whose broker is down for a restart. Not bind(0)'s ephemeral ports: between the
 * pick and a broker's bind (or its restart after SIGKILL) any process's outgoing connection
 * could take one of those as its source port. The Kafka scripts pick from TL_PORT_HIGH up
 * (tests/kafka/kcluster.py), so the two never meet. Returns 0 or -errno. */
#define TL_PORT_LOW 20000
#define TL_PORT_HIGH 26000
#define TL_PORT_LOCK_DIR "/tmp/ringlog-test-ports"
int tl_pick_ports(uint16_t *ports, int n);

/* Starts the broker again on the same directory and the same ports (after a stop or kill).
 * Returns as tl_broker_start. */
int tl_broker_restart(struct tl_broker *b, uint32_t timeout_ms);

/* Sends `sig` and waits up to timeout_ms for the process to exit. Returns its exit status
 * (0..255), 128 + signal if a signal ended it, or -ETIMEDOUT (then it is SIGKILLed). */
int tl_broker_stop(struct tl_broker *b, int sig, uint32_t timeout_ms);

/* SIGKILL and reap. */
void tl_broker_kill(struct tl_broker *b);

/* True while the process runs (reaps it when it has exited). */
bool tl_broker_alive(struct tl_broker *b);

/* Prints the last `lines` lines of the broker's log to stderr (for failing tests). */
void tl_broker_dump_log(const struct tl_broker *b, int lines);

/* True when a line of the broker's log (its stdout and stderr) contains needle. */
bool tl_broker_log_has(const struct tl_broker *b, const char *needle);

/* Kills the broker if running and removes its temporary directory (with TL_KEEP_DIRS=1 in the
 * environment the directory stays, and its path is printed: logs and data for a post-mortem). */
void tl_broker_cleanup(struct tl_broker *b);

/* The end of a test's broker: SIGTERM and wait up to timeout_ms (when it runs), print the log
 * tail when the exit status is not 0, then tl_broker_cleanup. Returns the exit status as
 * tl_broker_stop (0 when the broker was not running); a clean stop is 0. */
int tl_broker_finish(struct tl_broker *b, uint32_t timeout_ms);

/* Monotonic milliseconds, for deadlines. */
uint64_t tl_now_ms(void);

#endif
