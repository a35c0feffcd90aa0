/*
 * cli_bench_broker: the ringlogd that `ringlog bench` starts for itself (data in the bench
 * directory, ephemeral ports, killed with the bench if the bench dies), and what the bench reads
 * from it while it runs: its CPU time from /proc and its Prometheus metrics over HTTP (bytes
 * stored per topic, log start offsets, any cache counters it exports).
 *
 * Where it sits: cli_bench -> cli_bench_broker -> ringlogd (a child process). Blocking calls,
 * each bounded; nothing here is on a per-record path.
 */
#ifndef RL_CLIENT_CLI_BENCH_BROKER_H
#define RL_CLIENT_CLI_BENCH_BROKER_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BBROKER_MAX_PARTITIONS 1024
#define BBROKER_MAX_SETS 32

struct bbroker {
    pid_t pid;
    char native[128]; /* "127.0.0.1:PORT" */
    char http[128];
    char log_path[PATH_MAX];
};

/* Starts ringlogd with its data in dir/data, `--set` each of sets ("key=value"), and waits up to
 * 20 s for its ready file. Returns 0, or -1 after printing why (and where its log is). */
int bbroker_start(struct bbroker *b, const char *ringlogd, const char *dir,
                  const char *const *sets, size_t nsets);

/* SIGTERM, then SIGKILL after 10 s. */
void bbroker_stop(struct bbroker *b);

/* CPU seconds (user + system) the broker has used, or -1 when /proc cannot tell. */
double bbroker_cpu_s(const struct bbroker *b);

/* One topic's partitions as /metrics shows them. */
struct bbroker_topic {
    uint32_t partitions; /* highest partition seen + 1 */
    uint64_t bytes_in;   /* sum over partitions: bytes appended since the broker started */
    uint64_t part_bytes_in[BBROKER_MAX_PARTITIONS];
    int64_t part_log_start[BBROKER_MAX_PARTITIONS];
};

/* Fetches GET /metrics into *text (malloc'd, NUL-terminated; the caller frees). Returns 0 or a
 * negative errno (the connection or read failed, or the answer is over 16 MiB). Bounded by 5 s. */
int bbroker_metrics(const struct bbroker *b, char **text);

/* Fills *out with topic's partition series from a /metrics text. */
void bbroker_topic_parse(const char *text, const char *topic, struct bbroker_topic *out);

/* Sums every series of each metric whose name contains `part` (e.g. "cache"), writing
 * "name=value" pairs separated by spaces into buf. Returns how many metrics matched. */
int bbroker_metrics_matching(const char *text, const char *part, char *buf, size_t len);

#endif
