/*
 * cli_bench_run: one phase of `ringlog bench`, measured the way the OpenMessaging Benchmark
 * measures brokers, through libringlog's public API only.
 *
 *  - A produce phase sends records for a time, either closed loop (as fast as the producer
 *    takes them: the maximum throughput) or open loop at a fixed rate. In open loop record i is
 *    meant to leave at start + i / rate; that time is stamped into the record and handed to the
 *    delivery callback, so produce-to-acknowledgement latency and (with a consumer reading
 *    alongside from the log end) end-to-end latency both count from when the record was meant
 *    to be sent. A broker that stalls the sender cannot hide the records that queue up behind
 *    the stall (no coordinated omission).
 *  - A consume phase reads a topic from its earliest offsets as fast as the consumer takes it
 *    (catch-up from disk, or a fresh burst from the tail).
 *
 * Each phase keeps whole-phase latency histograms and a per-second series (throughput,
 * latency percentiles, broker and client CPU, segment rolls and retention seen in the broker's
 * metrics) for the report. Recording a record is an histogram increment on the recording
 * thread's own histogram: no lock, no allocation per record.
 *
 * Where it sits: cli_bench -> cli_bench_run -> libringlog (producer, consumer, admin).
 */
#ifndef RL_CLIENT_CLI_BENCH_RUN_H
#define RL_CLIENT_CLI_BENCH_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/cli_bench_broker.h"
#include "client/cli_bench_hist.h"
#include "client/cli_bench_payload.h"
#include "client/ringlog.h"

#define BRUN_PCTS 4 /* p50, p99, p99.9, max */
#define BRUN_DRAIN_S 30 /* how long a consumer may take to catch up after the producer stops */
#define BRUN_IDLE_S 10  /* a consume phase ends after this long without a record */

extern const double brun_pcts[BRUN_PCTS];

/* What every phase shares. */
struct brun_env {
    const struct rl_conf *conf; /* bootstrap servers, producer and consumer settings */
    const struct bbroker *broker;
    uint64_t t0_ns;             /* start of the bench: series times are relative to it */
    size_t record_size;
    enum payload_kind kind;
    bool keys;                  /* a decimal key per record (hash-partitioned) */
    int progress_s;             /* print a progress line this often (0: never) */
    volatile sig_atomic_t *interrupted;
};

/* One second of a phase. Latencies in ms, NAN where nothing completed in that second. */
struct brun_sec {
    double t_s;    /* start of the second, since the bench started */
    double dur_s;  /* 1, or less for the phase's last second */
    uint64_t acked, consumed; /* records completed in the second */
    double ack_ms[BRUN_PCTS], e2e_ms[BRUN_PCTS];
    double broker_cpu, client_cpu; /* cores busy (1.0 = one core); NAN when unknown */
    uint32_t rolls;     /* segments started, estimated from bytes appended / segment.bytes */
    uint32_t retention; /* partitions whose log start moved (retention deleted segments) */
};

struct brun_produce {
    const char *topic;
    struct payload *payload;
    double rate_rps;        /* records per second; 0: closed loop */
    double seconds;
    uint64_t max_records;   /* stop after this many (0: no limit) */
    bool consume;           /* a consumer reads alongside from the log end */
    uint64_t segment_bytes; /* the topic's segment.bytes, to count rolls */
};

struct brun_result {
    char label[48];
    char topic[64];
    bool open_loop;
    double target_mbps;  /* open loop: the rate asked for */
    uint64_t sent, acked, failed, consumed, bad_stamps;
    uint64_t bytes;      /* record bytes acknowledged (produce) or read (consume) */
    double secs;         /* produce: first send to last acknowledgement; consume: the read */
    double mbps;         /* bytes / secs, 10^6 bytes per second */
    double consume_mbps; /* produce phases with a consumer: what it read per second */
    double max_lag_ms;   /* open loop: how late the sender got behind the schedule at worst */
    /* The broker's own produce latency over the phase (arrival to answer sent, bucket upper
     * bounds of its histogram): what of the client's ack latency the broker accounts for.
     * -1: unknown. */
    double broker_p50_ms, broker_p99_ms;
    double client_cpu_s, broker_cpu_s;
    uint64_t stored_bytes; /* bytes the broker appended to the topic (after compression) */
    struct bhist *ack, *e2e; /* whole phase; freed by brun_result_free */
    struct brun_sec *series;
    uint32_t nsecs;
    char error[640];     /* why the phase failed; "" when it did not */
};

/* Runs a produce phase. Returns 0 with *out filled (free with brun_result_free), or -1 with
 * out->error set (a refused send, a failed record, a consumer error or missing records). */
int brun_produce(const struct brun_env *env, const char *label, const struct brun_produce *spec,
                 struct brun_result *out);

/* Reads `records` records of topic from its earliest offsets. Returns 0 or -1 as above. */
int brun_consume(const struct brun_env *env, const char *label, const char *topic,
                 uint64_t records, struct brun_result *out);

void brun_result_free(struct brun_result *r);

/* Monotonic clock in nanoseconds (the clock records are stamped with). */
uint64_t brun_now_ns(void);

#endif
