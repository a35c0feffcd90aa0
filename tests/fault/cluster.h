/*
 * cluster: ringlogd brokers inside the fault lab's hosts (tests/fault/netns.h), and the process
 * faults on them. Broker i runs in host i and listens on 10.77.0.i:9400 (HTTP :9401): fixed
 * ports are safe here because every host is a private network namespace, and a cluster needs
 * its voters' addresses before any of them starts. With `voters` the brokers start as one
 * cluster (`--node-id i --voters 1@10.77.0.1:9400,...`, the contract of issue 10); without,
 * each is a cluster of one, as ringlogd is today.
 *
 * Where it sits: fault suites and the soak -> cluster (brokers) + netns (network) -> ringlogd.
 *
 * Process faults, each logged with a timestamp: SIGKILL (a crash; restart later on the same
 * data directory), SIGSTOP/SIGCONT (a pause: the process holds its sockets but answers nothing;
 * a resumed leader is the stale-leader case), SIGTERM (a clean stop), and a slow disk through
 * the I/O layer's injected delay: ringlogd's `io.fault.delay.file` setting names a file whose
 * content (a number of milliseconds) the I/O layer adds to every write and fsync completion,
 * re-read while running. That hook belongs to the I/O layer; until ringlogd accepts the
 * setting, cl_slow_disk returns -EOPNOTSUPP (detected by starting ringlogd with it, never
 * assumed), and the caller reports the case skipped.
 *
 * Each broker keeps its data directory, log and ready file under one temporary directory
 * (ringlog-fault-XXXXXX under $TMPDIR or /tmp), removed by cl_destroy unless asked to keep it
 * (a failed run keeps it for reading). Blocking; one thread.
 */
#ifndef RL_TESTS_FAULT_CLUSTER_H
#define RL_TESTS_FAULT_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/fault/netns.h"

#define CL_MAX_BROKERS NETNS_MAX_HOSTS
#define CL_PORT 9400
#define CL_HTTP_PORT 9401
#define CL_MAX_EXTRA 16
#define CL_SLOW_DISK_KEY "io.fault.delay.file"

struct cl_broker {
    int node;  /* node id, the host's number */
    pid_t pid; /* 0 when not running */
    bool paused;
    char data_dir[300], log_path[300], ready_path[300], delay_path[300];
    char host[16]; /* 10.77.0.<node> */
    char addr[32]; /* host:9400 */
};

struct cl_cluster {
    struct netns_lab *lab;
    int n;                /* brokers 1..n */
    bool voters;          /* started as one replicated cluster */
    bool slow_disk_hook;  /* ringlogd accepts io.fault.delay.file */
    char dir[256];
    char bootstrap[256];  /* "10.77.0.1:9400,10.77.0.2:9400,..." */
    char voter_list[256]; /* "1@10.77.0.1:9400,..." */
    struct cl_broker b[CL_MAX_BROKERS + 1];
    char extra[CL_MAX_EXTRA][160];
    int n_extra;
};

/* Whether ringlogd starts with `args` added to a loopback-only command line in the sandbox
 * (data in a temporary directory, stopped at once). Returns 1 when it started, 0 when it
 * refused (why gets the first line it printed), or a negative code when the probe itself
 * failed. */
int cl_probe(const struct netns_lab *lab, const char *const *args, char *why, size_t cap);

/* Whether ringlogd takes the cluster flags (--node-id, --voters): cl_probe with a one-voter
 * list. Same returns. */
int cl_probe_voters(const struct netns_lab *lab, char *why, size_t cap);

/* Starts n brokers in hosts 1..n (n <= lab->n_hosts), with extra ringlogd arguments (NULL-
 * terminated, may be NULL), and waits up to timeout_ms for each ready file. Returns 0 or a
 * negative code (the failing broker's log tail is printed). */
int cl_start(struct cl_cluster *c, struct netns_lab *lab, int n, bool voters,
             const char *const *extra, uint32_t timeout_ms);

/* SIGKILL broker i and reap it. */
void cl_kill(struct cl_cluster *c, int i);

/* Starts broker i again on its data directory and address; waits for its ready file. */
int cl_restart(struct cl_cluster *c, int i, uint32_t timeout_ms);

/* SIGSTOP / SIGCONT broker i. */
int cl_pause(struct cl_cluster *c, int i);
int cl_resume(struct cl_cluster *c, int i);

/* Sends sig (resuming a paused broker first) and waits up to timeout_ms. Returns the exit
 * status (0..255), 128 + signal, or -ETIMEDOUT (then it was SIGKILLed). */
int cl_stop(struct cl_cluster *c, int i, int sig, uint32_t timeout_ms);

/* True while broker i runs (reaps it when it exited). */
bool cl_alive(struct cl_cluster *c, int i);

/* Makes broker i's disk slow by delay_ms per write and fsync (0: normal). -EOPNOTSUPP when
 * ringlogd has no such hook. */
int cl_slow_disk(struct cl_cluster *c, int i, int delay_ms);

/* Prints the last lines of broker i's log to stderr. */
void cl_dump_log(const struct cl_cluster *c, int i, int lines);

/* Kills every broker; removes the directory unless keep (then prints where it is). */
void cl_destroy(struct cl_cluster *c, bool keep);

#endif
