/*
 * cli_bench_report: `ringlog bench --report DIR`, the run written down for people: the time
 * series and sweep as CSV, plots drawn by gnuplot as PNG and SVG (throughput over time, latency
 * percentiles over time with segment rolls and retention marked, the latency distribution, the
 * sweep's latency against throughput, CPU over time), and an index.html that shows them with
 * the run's settings, the limits measured and the figures against their targets.
 *
 * Files (columns are named in each CSV's header line):
 *   timeseries.csv  one row per second of every phase (MB/s, latency percentiles, CPU, rolls,
 *                   retention, records); a blank line separates phases
 *   sweep.csv       one row per open-loop rate of the sweep
 *   cdf.csv         latency at percentiles of the main open-loop run (HdrHistogram's ticks)
 *   codecs.csv      payload x compression: throughput, bytes stored, CPU, latency
 *   plots.gp        the gnuplot script (re-run it to redraw), *.png, *.svg, index.html
 *
 * Where it sits: cli_bench -> cli_bench_report -> files, and gnuplot as a child process. When
 * gnuplot is missing the CSVs and index.html are still written and breport_write says so.
 */
#ifndef RL_CLIENT_CLI_BENCH_REPORT_H
#define RL_CLIENT_CLI_BENCH_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "client/cli_bench_run.h"

/* A figure held against the target ("produce / disk", 0.72, ">=", 0.7). */
struct breport_target {
    const char *what;
    double value;
    const char *op; /* ">=" or "<" */
    double target;
    const char *unit;
};

/* One payload x compression measurement. */
struct breport_codec {
    char payload[16], compression[16];
    double produce_mbps;       /* record bytes per second, closed loop */
    double stored_ratio;       /* bytes the broker stored / record bytes */
    double client_cpu_s_per_gb; /* producer process CPU seconds per GB of records */
    double broker_cpu_s_per_gb;
    double consume_mbps;       /* reading it all back (catch-up) */
    double consume_cpu_s_per_gb;
    double rate_mbps;          /* the common open-loop rate the latency was taken at */
    double ack_p99_ms, e2e_p99_ms;
};

struct breport_in {
    const char *dir;
    const char *settings;       /* "name\tvalue\n" lines */
    double disk_write_mbps, disk_read_mbps, loopback_mbps;
    double fsync_p50_ms, fsync_p99_ms; /* a durable 4 KiB write: the floor under an ack */
    const struct brun_result *const *phases; /* every phase, in run order */
    size_t nphases;
    const struct brun_result *const *sweep;  /* the sweep's open-loop steps */
    const double *sweep_pct;
    size_t nsweep;
    const struct brun_result *cdf_run;       /* the open-loop run whose distribution is drawn */
    const struct breport_codec *codecs;
    size_t ncodecs;
    const char *codec_advice;
    const struct breport_target *targets;
    size_t ntargets;
    const char *summary;        /* what the bench printed, ending with its summary line */
    size_t record_size;
};

/* Writes the report into in->dir (created if needed). Returns 0; 1 when everything but the
 * plots was written (gnuplot missing or failing: the reason is in err); -1 with err set when a
 * file could not be written. */
int breport_write(const struct breport_in *in, char *err, size_t errlen);

/* Whether a figure meets its target. */
bool breport_target_met(const struct breport_target *t);

#endif
