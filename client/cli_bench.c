/*
 * cli_bench: `ringlog bench`, the benchmark people show: throughput and latency of a broker it
 * starts itself, measured the way the OpenMessaging Benchmark measures brokers, with the
 * physical limits measured in the same run (absolute figures drift on shared machines; the
 * ratios are what mean something).
 *
 * A standard run (make bench):
 *   1. limits: raw O_DIRECT write and read bandwidth of the disk under --dir, the latency of
 *      a durable 4 KiB write (the floor under an acknowledgement), loopback TCP (cli_probe);
 *   2. ringlogd on ephemeral ports with its data there (cli_bench_broker); topics with small
 *      segments, so segment rolls happen during the run, and retention on the open-loop topic;
 *   3. max: closed-loop produce, 1 KiB incompressible records, acks=1, flush.policy=batch
 *      (fsync per batch), for --max-seconds;
 *   4. open loop at 50% of that maximum for --seconds (or every step of --sweep), a consumer
 *      reading alongside: produce-ack and end-to-end latency from each record's intended send
 *      time (cli_bench_run);
 *   5. tail: a fresh burst (--tail-mb) read back right after it was written, what consumers
 *      keeping up read; catch-up: the max phase's log read from its start, long after it left
 *      any cache;
 *   6. the summary line, and with --report DIR the CSVs, plots and index.html
 *      (cli_bench_report).
 * --rate runs one open-loop phase instead of 3-5 (with --seconds 1800, the long run);
 * --codecs measures zstd against none on random and JSON records.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/cli_bench_broker.h"
#include "client/cli_bench_report.h"
#include "client/cli_bench_run.h"
#include "client/cli_probe.h"

static const char bench_usage[] =
    "usage: ringlog bench [produce] [options]\n"
    "\n"
    "Starts its own ringlogd, measures the disk and loopback limits, then:\n"
    "  (default)           max throughput (closed loop), open loop at 50% of it with a\n"
    "                      consumer alongside, tail and catch-up consume; prints\n"
    "  bench: produce P MB/s = R of disk, p99 L ms at half load; consume tail T = S of\n"
    "         loopback, catch-up C = Q of disk read\n"
    "  --sweep             open loop at every step from 100/--steps % to 100% of the maximum\n"
    "  --rate MB/s | --rate-records N   one open-loop run at that rate for --seconds\n"
    "                      (--seconds 1800: the long run; segment rolls and retention happen\n"
    "                      during it)\n"
    "  produce             only the closed-loop maximum\n"
    "  --codecs            zstd against none on random and json records (throughput, bytes\n"
    "                      stored, CPU, latency at a common rate)\n"
    "  --report DIR        CSV time series, gnuplot plots (PNG and SVG) and DIR/index.html\n"
    "  --perf DIR          perf record -g of the broker and this process during the max,\n"
    "                      half-load, tail-read and catch-up phases: DIR/<phase>.perf.data\n"
    "\n"
    "options (defaults):\n"
    "  --seconds S (10)        each open-loop run     --max-seconds S (10)  the max phase\n"
    "  --steps N (10)          sweep steps            --record-size B (1024)\n"
    "  --payload random|json (random)                 --compression none|zstd (none)\n"
    "  --partitions N (8)      --keys (a key per record, hash-partitioned)\n"
    "  --batch-size B (1048576) --linger-ms T (1)     --buffer-mb M (32)\n"
    "  --in-flight K (5)       --fetch-kb K (1024)    --tail-mb M (256)\n"
    "  --segment-mb M (128)    segment.bytes of the bench topics (rolls during the run)\n"
    "  --retention-mb M (1024) retention.bytes per partition of the open-loop topic\n"
    "  --disk-mb M (1024)      size of the raw disk probe   --loopback-mb M (4096)\n"
    "  --dir D ($TMPDIR or /var/tmp)  where the broker's data and the disk probe go\n"
    "  --ringlogd PATH         (next to this ringlog)   --broker-set KEY=VALUE (repeatable)\n";

#define MAX_PHASES 96
#define BENCH_OWN_SETS 3 /* broker settings the bench makes itself (bench_run) */
#define BENCH_USER_SETS (BBROKER_MAX_SETS - BENCH_OWN_SETS)
#define MAX_STEPS 20
#define TAIL_MAX_PASSES 8
#define TAIL_MIN_SECONDS 2.0
#define CODEC_SECONDS_MAX 10
#define LOG_MAX (1u << 20)
#define FSYNC_PROBES 200 /* durable 4 KiB writes timed for the latency floor */

/* Set by SIGINT/SIGTERM: the phases stop early and the normal clean-up runs. */
static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

struct bench_opts {
    bool produce_only, sweep, codecs, keys;
    int seconds, max_seconds, steps, record_size, partitions;
    double rate_mbps, rate_rps;
    enum payload_kind payload;
    bool zstd;
    const char *dir, *ringlogd, *report, *perf_dir;
    size_t disk_bytes, loopback_bytes, batch_size, buffer_memory, partition_fetch_bytes;
    int linger_ms, max_in_flight_per_partition;
    uint64_t tail_bytes, segment_bytes, retention_bytes;
    const char *broker_sets[BENCH_USER_SETS];
    size_t nsets;
};

struct bench {
    struct cli *c;
    struct bench_opts o;
    char dir[PATH_MAX];
    struct bbroker broker;
    struct brun_env env;
    struct probe_disk disk;
    double fsync_p50_ms, fsync_p99_ms;
    double loopback_mbps;
    struct payload payload;
    struct brun_result phases[MAX_PHASES];
    size_t nphases;
    int max_i, half_i, catchup_i, sweep_i[MAX_STEPS];
    double sweep_pct[MAX_STEPS];
    int nsweep;
    double tail_mbps;
    struct breport_codec codecs[4];
    size_t ncodecs;
    char advice[1024];
    char *log;
    size_t log_len;
};

/* Prints to stdout and keeps a copy for the report's summary.txt. */
static void say(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct bench *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (!b->log && !(b->log = calloc(1, LOG_MAX)))
        return;
    va_start(ap, fmt);
    int n = vsnprintf(b->log + b->log_len, LOG_MAX - b->log_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->log_len = b->log_len + (size_t)n < LOG_MAX ? b->log_len + (size_t)n : LOG_MAX - 1;
}

static double parse_mbps(const char *opt, const char *v)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d > 0) || d > 1e6) {
        cli_error("%s wants a rate in MB/s above 0 (e.g. 250 or 12.5), got \"%s\"", opt, v);
        exit(CLI_EXIT_USAGE);
    }
    return d;
}

/* Producer defaults are the OpenMessaging Benchmark's Kafka driver's (batch.size 1 MiB,
 * linger.ms 1) with Kafka's buffer.memory (32 MiB): measured here, 128 KiB batches and a
 * 4 MiB buffer could not hold 80 MB/s open loop once fdatasync took its 5-25 ms (the buffer
 * filled, the sender blocked, p99 1.5 s), while 1 MiB and 32 MiB held it at p99 ~90 ms, and the
 * closed-loop maximum was the same either way. */
static void parse_defaults(struct bench_opts *o)
{
    static char self[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    *o = (struct bench_opts){.seconds = 10, .max_seconds = 10, .steps = 10, .record_size = 1024,
                             .partitions = 8, .dir = tmp && tmp[0] ? tmp : "/var/tmp",
                             .disk_bytes = 1u << 30, .loopback_bytes = 4ull << 30,
                             .batch_size = 1u << 20, .buffer_memory = 32u << 20,
                             .partition_fetch_bytes = 1u << 20, .linger_ms = 1,
                             .max_in_flight_per_partition = 5, .tail_bytes = 256ull << 20,
                             .segment_bytes = 128ull << 20, .retention_bytes = 1ull << 30};
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 16);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash)
            strcpy(slash + 1, "ringlogd");
        o->ringlogd = self;
    }
}

/* The options that take a value; returns false when argv[*i] is none of them. */
static bool parse_valued(struct cli *c, struct bench_opts *o, int *i)
{
    const char *v;
    if ((v = cli_opt(c, i, "--seconds")))
        o->seconds = (int)cli_int("--seconds", v, 1, 86400);
    else if ((v = cli_opt(c, i, "--max-seconds")))
        o->max_seconds = (int)cli_int("--max-seconds", v, 1, 3600);
    else if ((v = cli_opt(c, i, "--steps")))
        o->steps = (int)cli_int("--steps", v, 1, MAX_STEPS);
    else if ((v = cli_opt(c, i, "--rate")))
        o->rate_mbps = parse_mbps("--rate", v);
    else if ((v = cli_opt(c, i, "--rate-records")))
        o->rate_rps = (double)cli_int("--rate-records", v, 1, 100000000);
    else if ((v = cli_opt(c, i, "--record-size")))
        o->record_size = (int)cli_int("--record-size", v, 8, 1 << 20);
    else if ((v = cli_opt(c, i, "--partitions")))
        o->partitions = (int)cli_int("--partitions", v, 1, BBROKER_MAX_PARTITIONS);
    else if ((v = cli_opt(c, i, "--dir")))
        o->dir = v;
    else if ((v = cli_opt(c, i, "--ringlogd")))
        o->ringlogd = v;
    else if ((v = cli_opt(c, i, "--report")))
        o->report = v;
    else if ((v = cli_opt(c, i, "--perf")))
        o->perf_dir = v;
    else if ((v = cli_opt(c, i, "--disk-mb")))
        o->disk_bytes = (size_t)cli_int("--disk-mb", v, 16, 1 << 20) << 20;
    else if ((v = cli_opt(c, i, "--loopback-mb")))
        o->loopback_bytes = (size_t)cli_int("--loopback-mb", v, 16, 1 << 20) << 20;
    else if ((v = cli_opt(c, i, "--batch-size")))
        o->batch_size = (size_t)cli_int("--batch-size", v, 1024, 16 << 20);
    else if ((v = cli_opt(c, i, "--linger-ms")))
        o->linger_ms = (int)cli_int("--linger-ms", v, 0, 1000);
    else if ((v = cli_opt(c, i, "--buffer-mb")))
        o->buffer_memory = (size_t)cli_int("--buffer-mb", v, 1, 4096) << 20;
    else if ((v = cli_opt(c, i, "--fetch-kb")))
        o->partition_fetch_bytes = (size_t)cli_int("--fetch-kb", v, 64, 65536) << 10;
    else if ((v = cli_opt(c, i, "--in-flight")))
        o->max_in_flight_per_partition = (int)cli_int("--in-flight", v, 1, 5);
    else if ((v = cli_opt(c, i, "--tail-mb")))
        o->tail_bytes = (uint64_t)cli_int("--tail-mb", v, 1, 1 << 20) << 20;
    else if ((v = cli_opt(c, i, "--segment-mb")))
        o->segment_bytes = (uint64_t)cli_int("--segment-mb", v, 1, 1 << 20) << 20;
    else if ((v = cli_opt(c, i, "--retention-mb")))
        o->retention_bytes = (uint64_t)cli_int("--retention-mb", v, 1, 1 << 30) << 20;
    else
        return false;
    return true;
}

/* The options that are words or choices; returns 0, or an exit status. */
static int parse_word(struct cli *c, struct bench_opts *o, int *i)
{
    const char *a = c->argv[*i], *v;
    if ((v = cli_opt(c, i, "--payload"))) {
        if (payload_parse_kind(v, &o->payload)) {
            cli_error("--payload wants random or json, got \"%s\"", v);
            return CLI_EXIT_USAGE;
        }
    } else if ((v = cli_opt(c, i, "--compression"))) {
        if (strcmp(v, "zstd") && strcmp(v, "none")) {
            cli_error("--compression wants zstd or none, got \"%s\"", v);
            return CLI_EXIT_USAGE;
        }
        o->zstd = !strcmp(v, "zstd");
    } else if ((v = cli_opt(c, i, "--broker-set"))) {
        if (!strchr(v, '=') || o->nsets == BENCH_USER_SETS) {
            cli_error("--broker-set wants KEY=VALUE (at most %d), got \"%s\"", BENCH_USER_SETS,
                      v);
            return CLI_EXIT_USAGE;
        }
        o->broker_sets[o->nsets++] = v;
    } else if (!strcmp(a, "--sweep")) {
        o->sweep = true;
    } else if (!strcmp(a, "--codecs")) {
        o->codecs = true;
    } else if (!strcmp(a, "--keys")) {
        o->keys = true;
    } else if (!strcmp(a, "produce")) {
        o->produce_only = true;
    } else {
        cli_error("unexpected argument \"%s\" for bench; run ringlog bench --help", a);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

static int parse_bench(struct cli *c, struct bench_opts *o)
{
    parse_defaults(o);
    for (int i = 0; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--help") || !strcmp(c->argv[i], "-h")) {
            fputs(bench_usage, stdout);
            return -1;
        }
        if (parse_valued(c, o, &i))
            continue;
        int rc = parse_word(c, o, &i);
        if (rc)
            return rc;
    }
    if ((o->rate_mbps > 0) + (o->rate_rps > 0) + o->sweep + o->produce_only > 1) {
        cli_error("choose one of --rate, --rate-records, --sweep and produce");
        return CLI_EXIT_USAGE;
    }
    if (o->rate_mbps > 0)
        o->rate_rps = o->rate_mbps * 1e6 / o->record_size;
    if ((o->payload == PAYLOAD_JSON || o->codecs) && o->record_size < PAYLOAD_JSON_MIN_BYTES) {
        cli_error("json records need --record-size of at least %d bytes (got %d)",
                  PAYLOAD_JSON_MIN_BYTES, o->record_size);
        return CLI_EXIT_USAGE;
    }
    if (!o->ringlogd || access(o->ringlogd, X_OK) != 0) {
        cli_error("cannot find ringlogd at %s; build it with make, or pass --ringlogd PATH",
                  o->ringlogd ? o->ringlogd : "(unknown)");
        return CLI_EXIT_FAIL;
    }
    return 0;
}

/* Applies the bench's producer and consumer settings to conf. */
static void bench_conf(struct cli *c, const struct bench_opts *o, const char *brokers)
{
    char v[32];
    cli_conf_set(c, "bootstrap.servers", brokers);
    cli_conf_set(c, "acks", "1");
    snprintf(v, sizeof(v), "%zu", o->batch_size);
    cli_conf_set(c, "batch.size", v);
    snprintf(v, sizeof(v), "%d", o->linger_ms);
    cli_conf_set(c, "linger.ms", v);
    snprintf(v, sizeof(v), "%zu", o->buffer_memory);
    cli_conf_set(c, "buffer.memory", v);
    snprintf(v, sizeof(v), "%d", o->max_in_flight_per_partition);
    cli_conf_set(c, "max.in.flight.per.partition", v);
    cli_conf_set(c, "fetch.max.bytes", "67108864");
    snprintf(v, sizeof(v), "%zu", o->partition_fetch_bytes);
    cli_conf_set(c, "max.partition.fetch.bytes", v);
    cli_conf_set(c, "compression", o->zstd ? "zstd" : "none");
}

/* Creates a bench topic: fsync per batch, small segments so rolls happen during the run, and
 * retention (bytes per partition) when asked. */
static int create_topic(struct bench *b, const char *name, uint64_t retention_bytes)
{
    char err[512], seg[32], ret[32];
    struct rl_admin *a = rl_admin_new(b->c->conf, err, sizeof(err));
    if (!a) {
        cli_error("%s", err);
        return -1;
    }
    snprintf(seg, sizeof(seg), "%llu", (unsigned long long)b->o.segment_bytes);
    snprintf(ret, sizeof(ret), "%llu", (unsigned long long)retention_bytes);
    const char *keys[] = {"flush.policy", "segment.bytes", "retention.bytes"};
    const char *values[] = {"batch", seg, ret};
    struct rl_topic_spec spec = {.name = name, .partitions = b->o.partitions,
                                 .config_keys = keys, .config_values = values,
                                 .config_count = retention_bytes ? 3 : 2};
    int rc = rl_admin_create_topic(a, &spec);
    if (rc)
        cli_error("creating topic %s: %s", name, rl_admin_last_error(a));
    rl_admin_destroy(a);
    return rc ? -1 : 0;
}

/* Retention per partition that keeps the bench's topics within half the free space of --dir
 * (a long run must not fill the disk): at most `want`. */
static uint64_t retention_cap(const struct bench *b, uint64_t want, int topics)
{
    struct statvfs sv;
    if (statvfs(b->dir, &sv))
        return want;
    uint64_t room = (uint64_t)sv.f_bavail * sv.f_frsize / 2 /
                    ((uint64_t)topics * (uint64_t)b->o.partitions);
    room -= room % b->o.segment_bytes;
    if (room < 2 * b->o.segment_bytes)
        room = 2 * b->o.segment_bytes;
    return want < room ? want : room;
}

static int bench_probe(struct bench *b)
{
    char err[512];
    say(b, "bench: limits: raw disk in %s (O_DIRECT, 1 MiB blocks, 16 in flight, %zu MiB), "
        "loopback TCP (best of 3 x %zu MiB)\n", b->dir, b->o.disk_bytes >> 20,
        b->o.loopback_bytes / 3 >> 20);
    if (probe_disk_run(b->dir, b->o.disk_bytes, 1u << 20, 16, &b->disk, err, sizeof(err)) ||
        probe_fsync_run(b->dir, FSYNC_PROBES, &b->fsync_p50_ms, &b->fsync_p99_ms, err,
                        sizeof(err))) {
        cli_error("%s", err);
        return -1;
    }
    /* The best of three: a limit is what the machine can do, and on a shared machine a
     * neighbour can only make one try slower, so the ratios against it never flatter. */
    for (int i = 0; i < 3; i++) {
        double mbps;
        if (probe_loopback_run(b->o.loopback_bytes / 3, 1u << 20, &mbps, err, sizeof(err))) {
            cli_error("%s", err);
            return -1;
        }
        b->loopback_mbps = mbps > b->loopback_mbps ? mbps : b->loopback_mbps;
    }
    say(b, "limits: disk write %.0f MB/s, disk read %.0f MB/s, loopback %.0f MB/s; a durable "
        "4 KiB write (write + fdatasync) p50 %.2f p99 %.2f ms\n", b->disk.write_mbps,
        b->disk.read_mbps, b->loopback_mbps, b->fsync_p50_ms, b->fsync_p99_ms);
    return 0;
}

/* The disk measured again once the phases are done, keeping the better figure of each: the
 * disk is shared, and a ratio against a limit measured while a neighbour was busy would
 * flatter (make bench once printed produce at 1.11 of the disk). */
static int bench_reprobe(struct bench *b)
{
    char err[512];
    struct probe_disk again;
    if (probe_disk_run(b->dir, b->o.disk_bytes, 1u << 20, 16, &again, err, sizeof(err))) {
        cli_error("%s", err);
        return -1;
    }
    say(b, "limits again: disk write %.0f MB/s, disk read %.0f MB/s; ratios use the better "
        "of the two measurements: %.0f and %.0f MB/s\n", again.write_mbps, again.read_mbps,
        fmax(again.write_mbps, b->disk.write_mbps), fmax(again.read_mbps, b->disk.read_mbps));
    b->disk.write_mbps = fmax(again.write_mbps, b->disk.write_mbps);
    b->disk.read_mbps = fmax(again.read_mbps, b->disk.read_mbps);
    return 0;
}

static struct brun_result *next_phase(struct bench *b)
{
    if (b->nphases == MAX_PHASES) {
        cli_error("more than %d phases; ask for fewer steps", MAX_PHASES);
        return NULL;
    }
    return &b->phases[b->nphases++];
}

static void say_cpu(struct bench *b, const struct brun_result *r)
{
    double s = r->secs > 0 ? r->secs : 1;
    say(b, "; CPU: client %.2f, broker %.2f cores\n", r->client_cpu_s / s, r->broker_cpu_s / s);
}

static void say_pcts(struct bench *b, const char *what, const struct bhist *h)
{
    say(b, "; %s p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms", what, bhist_percentile_ms(h, 50),
        bhist_percentile_ms(h, 99), bhist_percentile_ms(h, 99.9), bhist_percentile_ms(h, 100));
}

static void say_phase(struct bench *b, const struct brun_result *r)
{
    bool produce = r->acked > 0 || r->open_loop;
    if (!produce) {
        say(b, "%s: read %llu records in %.2f s = %.1f MB/s", r->label,
            (unsigned long long)r->consumed, r->secs, r->mbps);
    } else if (!r->open_loop) {
        say(b, "%s (closed loop): %llu records in %.2f s = %.1f MB/s, %.0f records/s", r->label,
            (unsigned long long)r->acked, r->secs, r->mbps, (double)r->acked / r->secs);
        say_pcts(b, "time in the producer's buffer to ack", r->ack);
    } else {
        say(b, "%s (open loop at %.1f MB/s): %.1f MB/s", r->label, r->target_mbps, r->mbps);
        say_pcts(b, "ack", r->ack);
        if (r->e2e->count)
            say_pcts(b, "end-to-end", r->e2e);
        say(b, "; sender behind schedule at most %.2f ms", r->max_lag_ms);
        if (r->broker_p99_ms >= 0)
            say(b, "; broker's own produce latency p50 <= %g p99 <= %g ms (its histogram)",
                r->broker_p50_ms, r->broker_p99_ms);
    }
    if (r->stored_bytes && r->bytes)
        say(b, "; stored %.3f of the record bytes", (double)r->stored_bytes / (double)r->bytes);
    say_cpu(b, r);
}

/* Runs one produce phase and keeps it; returns its index or -1. */
static int run_produce(struct bench *b, const struct brun_env *env, const char *label,
                       const struct brun_produce *spec)
{
    struct brun_result *r = next_phase(b);
    if (!r)
        return -1;
    if (brun_produce(env, label, spec, r)) {
        if (!g_interrupted)
            cli_error("%s phase: %s", label, r->error);
        return -1;
    }
    say_phase(b, r);
    return (int)(r - b->phases);
}

static int run_read(struct bench *b, const struct brun_env *env, const char *label,
                    const char *topic)
{
    struct brun_result *r = next_phase(b);
    if (!r)
        return -1;
    if (brun_consume(env, label, topic, 0, r)) {
        if (!g_interrupted)
            cli_error("%s phase: %s", label, r->error);
        return -1;
    }
    say_phase(b, r);
    return (int)(r - b->phases);
}

/* --perf: `perf record -g` attached to the broker and to this process for one phase. Returns
 * perf's pid, or -1 when not asked for or perf cannot be started (said once). */
static pid_t perf_start(struct bench *b, const char *name)
{
    char out[PATH_MAX + 64], log[PATH_MAX + 64], pids[64];
    if (!b->o.perf_dir || (mkdir(b->o.perf_dir, 0755) && errno != EEXIST))
        return -1;
    snprintf(out, sizeof(out), "%s/%s.perf.data", b->o.perf_dir, name);
    snprintf(log, sizeof(log), "%s/%s.perf.log", b->o.perf_dir, name);
    snprintf(pids, sizeof(pids), "%d,%d", (int)b->broker.pid, (int)getpid());
    unlink(out);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("perf", "perf", "record", "-g", "-F", "999", "-p", pids, "-o", out,
               (char *)NULL);
        _exit(127);
    }
    /* perf creates its output once it is attached: wait for that (bounded), so the phase's
     * first second is in the profile. */
    for (int i = 0; pid > 0 && i < 100 && access(out, F_OK) != 0; i++) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            cli_error("perf record did not start (see %s; install it with apt-get install "
                      "linux-perf)", log);
            return -1;
        }
    }
    return pid;
}

static void perf_stop(struct bench *b, pid_t pid, const char *name)
{
    if (pid <= 0)
        return;
    kill(pid, SIGINT);
    for (int i = 0; i < 3000 && waitpid(pid, NULL, WNOHANG) != pid; i++) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
        if (i == 2999) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
    }
    say(b, "perf: %s/%s.perf.data (perf report -i ... --no-children --sort comm,dso,sym)\n",
        b->o.perf_dir, name);
}

static int phase_max(struct bench *b)
{
    say(b, "bench: max: closed-loop produce for %d s\n", b->o.max_seconds);
    struct brun_produce spec = {.topic = "bench", .payload = &b->payload,
                                .seconds = b->o.max_seconds,
                                .segment_bytes = b->o.segment_bytes};
    pid_t perf = perf_start(b, "max");
    b->max_i = run_produce(b, &b->env, "max", &spec);
    perf_stop(b, perf, "max");
    return b->max_i < 0 ? -1 : 0;
}

static int phase_open(struct bench *b, const char *label, double rate_rps)
{
    struct brun_produce spec = {.topic = "bench-open", .payload = &b->payload,
                                .rate_rps = rate_rps, .seconds = b->o.seconds, .consume = true,
                                .segment_bytes = b->o.segment_bytes};
    return run_produce(b, &b->env, label, &spec);
}

/* Open loop at fractions of the maximum: every step of the sweep, or just half. The step
 * nearest 50% is the "half load" of the summary. */
static int phase_sweep(struct bench *b)
{
    const struct brun_result *max = &b->phases[b->max_i];
    double max_rps = (double)max->acked / max->secs;
    int steps = b->o.sweep ? b->o.steps : 1;
    if (b->o.sweep)
        say(b, "bench: open loop at %.0f%% to 100%% of the maximum (%.0f records/s) in %d "
            "steps, %d s each, a consumer reading alongside\n", 100.0 / steps, max_rps, steps,
            b->o.seconds);
    else
        say(b, "bench: open loop at 50%% of the maximum (%.0f records/s) for %d s, a consumer "
            "reading alongside\n", max_rps, b->o.seconds);
    int best = -1;
    for (int k = 1; k <= steps; k++) {
        double pct = b->o.sweep ? 100.0 * k / steps : 50.0;
        char label[32];
        snprintf(label, sizeof(label), "%.0f%%", pct);
        pid_t perf = pct == 50 ? perf_start(b, "half") : -1;
        int i = phase_open(b, label, max_rps * pct / 100.0);
        perf_stop(b, perf, "half");
        if (i < 0)
            return -1;
        if (best < 0 || fabs(pct - 50) < fabs(b->sweep_pct[best] - 50))
            best = b->nsweep;
        b->sweep_i[b->nsweep] = i;
        b->sweep_pct[b->nsweep++] = pct;
    }
    b->half_i = b->sweep_i[best];
    return 0;
}

/* Tail: a fresh burst, read back at once, pass after pass until TAIL_MIN_SECONDS of reading. */
static int phase_tail(struct bench *b)
{
    uint64_t records = b->o.tail_bytes / (uint64_t)b->o.record_size;
    say(b, "bench: tail: a burst of %llu MiB, read back right after it was written\n",
        (unsigned long long)(b->o.tail_bytes >> 20));
    struct brun_produce spec = {.topic = "bench-tail", .payload = &b->payload, .seconds = 600,
                                .max_records = records ? records : 1,
                                .segment_bytes = b->o.segment_bytes};
    if (run_produce(b, &b->env, "tail write", &spec) < 0)
        return -1;
    double secs = 0, bytes = 0;
    pid_t perf = perf_start(b, "tail");
    for (int pass = 1; pass <= TAIL_MAX_PASSES && secs < TAIL_MIN_SECONDS; pass++) {
        char label[32];
        snprintf(label, sizeof(label), "tail read %d", pass);
        int i = run_read(b, &b->env, label, "bench-tail");
        if (i < 0) {
            perf_stop(b, perf, "tail");
            return -1;
        }
        secs += b->phases[i].secs;
        bytes += (double)b->phases[i].bytes;
    }
    perf_stop(b, perf, "tail");
    b->tail_mbps = bytes / 1e6 / secs;
    return 0;
}

static int phase_catchup(struct bench *b)
{
    say(b, "bench: catch-up: the max phase's log read from its start\n");
    pid_t perf = perf_start(b, "catchup");
    b->catchup_i = run_read(b, &b->env, "catch-up", "bench");
    perf_stop(b, perf, "catchup");
    return b->catchup_i < 0 ? -1 : 0;
}

/* Prints the tail cache's and the read-ahead's counters the broker exports (if any), after the
 * reads that use them. */
static void say_cache_metrics(struct bench *b)
{
    char *text, line[1024];
    if (bbroker_metrics(&b->broker, &text) != 0)
        return;
    if (bbroker_metrics_matching(text, "cache", line, sizeof(line)) > 0)
        say(b, "broker cache metrics: %s\n", line);
    if (bbroker_metrics_matching(text, "readahead", line, sizeof(line)) > 0)
        say(b, "broker read-ahead metrics: %s\n", line);
    free(text);
}

/* --- compression: zstd against none on random and json records --------------------------- */

struct codec_run {
    struct payload payload;
    struct rl_conf *conf;
    struct brun_env env;
    char topic[64], label[48];
    int produce_i, read_i, open_i;
};

static double per_gb(double cpu_s, uint64_t bytes)
{
    return bytes ? cpu_s / ((double)bytes / 1e9) : NAN;
}

static void codec_figures(struct bench *b, const struct codec_run *cr, struct breport_codec *c)
{
    const struct brun_result *p = &b->phases[cr->produce_i], *r = &b->phases[cr->read_i];
    const struct brun_result *o = cr->open_i >= 0 ? &b->phases[cr->open_i] : NULL;
    snprintf(c->payload, sizeof(c->payload), "%s", payload_kind_name(cr->env.kind));
    snprintf(c->compression, sizeof(c->compression), "%s",
             strstr(cr->label, "zstd") ? "zstd" : "none");
    c->produce_mbps = p->mbps;
    c->stored_ratio = p->bytes ? (double)p->stored_bytes / (double)p->bytes : NAN;
    c->client_cpu_s_per_gb = per_gb(p->client_cpu_s, p->bytes);
    c->broker_cpu_s_per_gb = per_gb(p->broker_cpu_s, p->bytes);
    c->consume_mbps = r->mbps;
    c->consume_cpu_s_per_gb = per_gb(r->client_cpu_s, r->bytes);
    c->rate_mbps = o ? o->target_mbps : NAN;
    c->ack_p99_ms = o ? bhist_percentile_ms(o->ack, 99) : NAN;
    c->e2e_p99_ms = o && o->e2e->count ? bhist_percentile_ms(o->e2e, 99) : NAN;
}

/* The figures in a sentence, and what they recommend for the library's default. */
static void codec_advice(struct bench *b)
{
    const struct breport_codec *rn = &b->codecs[0], *rz = &b->codecs[1];
    const struct breport_codec *jn = &b->codecs[2], *jz = &b->codecs[3];
    bool wins = jz->stored_ratio < 0.8 && jz->produce_mbps >= 0.9 * jn->produce_mbps;
    snprintf(b->advice, sizeof(b->advice),
             "json events: zstd stores %.2f of the record bytes (%.1fx less disk and network), "
             "produces %.2fx the throughput of none at %.2fx the client CPU per GB, reads back at "
             "%.2fx; ack p99 at %.0f MB/s %.2f ms (zstd) vs %.2f ms (none). random bytes: zstd "
             "stores %.3f (batches that do not shrink stay uncompressed), %.2fx the throughput, "
             "%.2fx the client CPU per GB. %s",
             jz->stored_ratio, 1 / jz->stored_ratio, jz->produce_mbps / jn->produce_mbps,
             jz->client_cpu_s_per_gb / jn->client_cpu_s_per_gb,
             jz->consume_mbps / jn->consume_mbps, jz->rate_mbps, jz->ack_p99_ms, jn->ack_p99_ms,
             rz->stored_ratio, rz->produce_mbps / rn->produce_mbps,
             rz->client_cpu_s_per_gb / rn->client_cpu_s_per_gb,
             wins ? "Recommendation: zstd as the default (it wins on event-shaped records)."
                  : "Recommendation: keep none as the default (zstd did not win here).");
    say(b, "codecs: %s\n", b->advice);
}

static int codec_prepare(struct bench *b, struct codec_run *cr, enum payload_kind kind,
                         bool zstd)
{
    char err[512];
    *cr = (struct codec_run){.produce_i = -1, .read_i = -1, .open_i = -1};
    if (payload_init(&cr->payload, kind, (size_t)b->o.record_size, 2 * b->o.batch_size,
                     brun_now_ns(), err, sizeof(err))) {
        cli_error("%s", err);
        return -1;
    }
    cr->conf = rl_conf_dup(b->c->conf);
    if (!cr->conf || rl_conf_set(cr->conf, "compression", zstd ? "zstd" : "none", err,
                                 sizeof(err))) {
        cli_error("compression setting: %s", cr->conf ? err : "out of memory");
        return -1;
    }
    cr->env = b->env;
    cr->env.conf = cr->conf;
    cr->env.kind = kind;
    snprintf(cr->topic, sizeof(cr->topic), "codec-%s-%s", payload_kind_name(kind),
             zstd ? "zstd" : "none");
    snprintf(cr->label, sizeof(cr->label), "%s/%s", payload_kind_name(kind),
             zstd ? "zstd" : "none");
    return create_topic(b, cr->topic, 0);
}

/* Closed loop and read-back for each pair, then open loop at half the slowest maximum, so the
 * four latencies are taken at one rate. */
static int codec_measure(struct bench *b, struct codec_run *runs)
{
    int secs = b->o.max_seconds < CODEC_SECONDS_MAX ? b->o.max_seconds : CODEC_SECONDS_MAX;
    double slowest = INFINITY;
    for (int i = 0; i < 4; i++) {
        struct codec_run *cr = &runs[i];
        struct brun_produce spec = {.topic = cr->topic, .payload = &cr->payload,
                                    .seconds = secs, .segment_bytes = b->o.segment_bytes};
        char label[64];
        cr->produce_i = run_produce(b, &cr->env, cr->label, &spec);
        snprintf(label, sizeof(label), "%s read", cr->label);
        cr->read_i = cr->produce_i < 0 ? -1 : run_read(b, &cr->env, label, cr->topic);
        if (cr->read_i < 0)
            return -1;
        double rps = (double)b->phases[cr->produce_i].acked / b->phases[cr->produce_i].secs;
        slowest = rps < slowest ? rps : slowest;
    }
    for (int i = 0; i < 4; i++) {
        struct codec_run *cr = &runs[i];
        struct brun_produce spec = {.topic = cr->topic, .payload = &cr->payload,
                                    .rate_rps = slowest / 2, .seconds = secs, .consume = true,
                                    .segment_bytes = b->o.segment_bytes};
        char label[64];
        snprintf(label, sizeof(label), "%s open", cr->label);
        cr->open_i = run_produce(b, &cr->env, label, &spec);
        if (cr->open_i < 0)
            return -1;
    }
    return 0;
}

static int phase_codecs(struct bench *b)
{
    struct codec_run runs[4];
    int rc = 0, made = 0;
    say(b, "bench: codecs: random and json records, compression none and zstd\n");
    for (; made < 4 && rc == 0; made++)
        rc = codec_prepare(b, &runs[made], made < 2 ? PAYLOAD_RANDOM : PAYLOAD_JSON,
                           made % 2 == 1);
    if (rc == 0)
        rc = codec_measure(b, runs);
    for (int i = 0; rc == 0 && i < 4; i++)
        codec_figures(b, &runs[i], &b->codecs[b->ncodecs++]);
    if (rc == 0)
        codec_advice(b);
    for (int i = 0; i < made; i++) {
        payload_free(&runs[i].payload);
        rl_conf_destroy(runs[i].conf);
    }
    return rc;
}

/* --- summary and report ------------------------------------------------------------------- */

#define NTARGETS 5

/* The targets, from the phases that measure them (NAN where a phase did not run). */
static void fill_targets(const struct bench *b, struct breport_target *t)
{
    const struct brun_result *max = b->max_i >= 0 ? &b->phases[b->max_i] : NULL;
    const struct brun_result *half = b->half_i >= 0 ? &b->phases[b->half_i] : NULL;
    const struct brun_result *cu = b->catchup_i >= 0 ? &b->phases[b->catchup_i] : NULL;
    t[0] = (struct breport_target){"produce / raw disk write", max ? max->mbps /
                                   b->disk.write_mbps : NAN, ">=", 0.7, ""};
    t[1] = (struct breport_target){"half load: produce-ack p99", half ?
                                   bhist_percentile_ms(half->ack, 99) : NAN, "<", 5, "ms"};
    t[2] = (struct breport_target){"half load: end-to-end p99", half && half->e2e->count ?
                                   bhist_percentile_ms(half->e2e, 99) : NAN, "<", 10, "ms"};
    t[3] = (struct breport_target){"tail consume / loopback", b->tail_mbps > 0 ?
                                   b->tail_mbps / b->loopback_mbps : NAN, ">=", 0.5, ""};
    t[4] = (struct breport_target){"catch-up consume / raw disk read", cu ? cu->mbps /
                                   b->disk.read_mbps : NAN, ">=", 0.8, ""};
}

/* The closing lines: targets, then the summary line that `make bench` ends with. */
static void summary_lines(const struct bench *b, const struct breport_target *t, char *out,
                          size_t len)
{
    const struct brun_result *max = b->max_i >= 0 ? &b->phases[b->max_i] : NULL;
    size_t n = 0;
    if (b->o.rate_rps > 0) {
        const struct brun_result *r = &b->phases[b->half_i];
        snprintf(out, len, "bench: open loop at %.1f MB/s for %d s: produce %.1f MB/s, ack p50 "
                 "%.2f p99 %.2f p99.9 %.2f max %.2f ms; end-to-end p50 %.2f p99 %.2f p99.9 "
                 "%.2f max %.2f ms\n", r->target_mbps, b->o.seconds, r->mbps,
                 bhist_percentile_ms(r->ack, 50), bhist_percentile_ms(r->ack, 99),
                 bhist_percentile_ms(r->ack, 99.9), bhist_percentile_ms(r->ack, 100),
                 bhist_percentile_ms(r->e2e, 50), bhist_percentile_ms(r->e2e, 99),
                 bhist_percentile_ms(r->e2e, 99.9), bhist_percentile_ms(r->e2e, 100));
        return;
    }
    if (b->o.produce_only) {
        snprintf(out, len, "bench: produce %.0f MB/s = %.2f of disk\n", max->mbps, t[0].value);
        return;
    }
    n += (size_t)snprintf(out + n, len - n, "targets:");
    for (int i = 0; i < NTARGETS && n < len; i++)
        n += (size_t)snprintf(out + n, len - n, "%s %s %.2f%s (%s %.2f%s: %s)", i ? ";" : "",
                              t[i].what, t[i].value, t[i].unit, t[i].op, t[i].target,
                              t[i].unit, breport_target_met(&t[i]) ? "met" : "missed");
    if (n < len)
        snprintf(out + n, len - n, "\nbench: produce %.0f MB/s = %.2f of disk, p99 %.2f ms at "
                 "half load; consume tail %.0f MB/s = %.2f of loopback, catch-up %.0f MB/s = "
                 "%.2f of disk read\n", max->mbps, t[0].value, t[1].value, b->tail_mbps,
                 t[3].value, b->phases[b->catchup_i].mbps, t[4].value);
}

/* The broker's tail cache for the bench: room for the tail burst twice over (records, batch
 * headers, extents cut for other partitions); without a tail phase (--rate, produce), 128 MiB,
 * far more than a consumer keeping up needs. */
static uint64_t bench_cache_bytes(const struct bench_opts *o)
{
    uint64_t floor = 128ull << 20;
    uint64_t want = o->rate_rps > 0 || o->produce_only ? floor : 2 * o->tail_bytes;
    return want > floor ? want : floor;
}

/* A metric's value from a /metrics text (the first series of that name), or -1. */
static double metric_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ')
            return atof(p + n + 1);
    return -1;
}

/* Waits (up to 120 s) until the broker has faulted its tail cache in, so first touches of
 * fresh memory, which cost more than the copies on virtual machines, are not measured as the
 * broker's work: a broker that has run a while has long paid for them. */
static void bench_wait_cache(struct bench *b)
{
    uint64_t deadline = brun_now_ns() + 120ull * 1000000000ull;
    double done = -1, budget = -1;
    while (brun_now_ns() < deadline && !g_interrupted) {
        char *text = NULL;
        if (bbroker_metrics(&b->broker, &text) == 0) {
            done = metric_value(text, "ringlog_tail_cache_prefaulted_bytes");
            budget = metric_value(text, "ringlog_tail_cache_budget_bytes");
        }
        free(text);
        if (budget <= 0 || done >= budget)
            return;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    say(b, "bench: the broker faulted in %.0f of %.0f MiB of its tail cache in 120 s; "
        "going on\n", done / 1048576, budget / 1048576);
}

static void settings_text(const struct bench *b, char *s, size_t len)
{
    const struct bench_opts *o = &b->o;
    snprintf(s, len,
             "records\t%d bytes, %s payload, %s, compression %s\n"
             "topics\t%d partitions, flush.policy=batch (fsync per batch), segment.bytes=%llu, "
             "retention.bytes per partition %llu on the open-loop topic\n"
             "producer\tacks=1, batch.size=%zu, linger.ms=%d, buffer.memory=%zu, "
             "max.in.flight.per.partition=%d\n"
             "consumer\tmax.partition.fetch.bytes=%zu\n"
             "phases\tmax %d s closed loop; open loop %d s %s; tail burst %llu MiB\n"
             "broker\t%s (data in %s); tail.cache.bytes=%llu, faulted in before the phases "
             "(as in a broker that has run a while)\n",
             o->record_size, payload_kind_name(o->payload),
             o->keys ? "keyed (hash-partitioned)" : "keyless (one partition per batch)",
             o->zstd ? "zstd" : "none", o->partitions,
             (unsigned long long)o->segment_bytes, (unsigned long long)o->retention_bytes,
             o->batch_size, o->linger_ms, o->buffer_memory, o->max_in_flight_per_partition,
             o->partition_fetch_bytes, o->max_seconds, o->seconds,
             o->rate_rps > 0 ? "at the --rate given" : o->sweep ? "per sweep step"
                                                             : "at 50% of max",
             (unsigned long long)(o->tail_bytes >> 20), o->ringlogd, b->dir,
             (unsigned long long)bench_cache_bytes(o));
}

static int write_report(struct bench *b, const struct breport_target *t)
{
    const struct brun_result *phases[MAX_PHASES], *sweep[MAX_STEPS];
    char settings[8192], err[512];
    for (size_t i = 0; i < b->nphases; i++)
        phases[i] = &b->phases[i];
    for (int i = 0; i < b->nsweep; i++)
        sweep[i] = &b->phases[b->sweep_i[i]];
    settings_text(b, settings, sizeof(settings));
    struct breport_in in = {
        .dir = b->o.report, .settings = settings, .disk_write_mbps = b->disk.write_mbps,
        .disk_read_mbps = b->disk.read_mbps, .loopback_mbps = b->loopback_mbps,
        .fsync_p50_ms = b->fsync_p50_ms, .fsync_p99_ms = b->fsync_p99_ms,
        .phases = phases, .nphases = b->nphases, .sweep = sweep, .sweep_pct = b->sweep_pct,
        .nsweep = (size_t)b->nsweep, .cdf_run = b->half_i >= 0 ? &b->phases[b->half_i] : NULL,
        .codecs = b->codecs, .ncodecs = b->ncodecs, .codec_advice = b->advice,
        .targets = t, .ntargets = b->o.produce_only || b->o.rate_rps > 0 ? 0 : NTARGETS,
        .summary = b->log, .record_size = (size_t)b->o.record_size};
    int rc = breport_write(&in, err, sizeof(err));
    if (rc < 0) {
        cli_error("%s", err);
        return -1;
    }
    if (rc > 0)
        fprintf(stderr, "ringlog: warning: %s\n", err);
    printf("report: %s/index.html\n", b->o.report);
    return 0;
}

/* The phases the options ask for, in order. */
static int bench_phases(struct bench *b)
{
    const struct bench_opts *o = &b->o;
    if (o->rate_rps > 0) {
        say(b, "bench: open loop at %.0f records/s (%.1f MB/s) for %d s, a consumer reading "
            "alongside\n", o->rate_rps, o->rate_rps * o->record_size / 1e6, o->seconds);
        b->half_i = phase_open(b, "rate", o->rate_rps);
        if (b->half_i < 0)
            return -1;
    } else {
        if (phase_max(b))
            return -1;
        if (!o->produce_only && (phase_sweep(b) || phase_tail(b) || phase_catchup(b)))
            return -1;
        if (!o->produce_only)
            say_cache_metrics(b);
        if (bench_reprobe(b))
            return -1;
    }
    return o->codecs ? phase_codecs(b) : 0;
}

static int bench_topics(struct bench *b)
{
    /* The max phase's topic keeps what it can (catch-up reads it); the open-loop topic has
     * retention, so a long run deletes segments while it runs and does not fill the disk. */
    return create_topic(b, "bench", retention_cap(b, UINT64_MAX / 2, 3)) ||
           create_topic(b, "bench-open", retention_cap(b, b->o.retention_bytes, 3)) ||
           create_topic(b, "bench-tail", 0);
}

static int bench_run(struct bench *b)
{
    char err[512];
    char cache_set[64];
    snprintf(cache_set, sizeof(cache_set), "tail.cache.bytes=%llu",
             (unsigned long long)bench_cache_bytes(&b->o));
    /* The user's --broker-set come last, so they override these. */
    const char *sets[BBROKER_MAX_SETS] = {"retention.check.interval.ms=1000", cache_set,
                                          "tail.cache.prefault=1"};
    memcpy(sets + BENCH_OWN_SETS, b->o.broker_sets, b->o.nsets * sizeof(sets[0]));
    if (bench_probe(b) ||
        bbroker_start(&b->broker, b->o.ringlogd, b->dir, sets, b->o.nsets + BENCH_OWN_SETS))
        return CLI_EXIT_FAIL;
    bench_wait_cache(b);
    bench_conf(b->c, &b->o, b->broker.native);
    b->env = (struct brun_env){.conf = b->c->conf, .broker = &b->broker, .t0_ns = brun_now_ns(),
                               .record_size = (size_t)b->o.record_size, .kind = b->o.payload,
                               .keys = b->o.keys, .interrupted = &g_interrupted,
                               .progress_s = b->o.seconds >= 60 ? 10 : 0};
    int rc = CLI_EXIT_FAIL;
    if (payload_init(&b->payload, b->o.payload, (size_t)b->o.record_size, 2 * b->o.batch_size,
                     brun_now_ns(), err, sizeof(err))) {
        cli_error("%s", err);
        goto out;
    }
    char settings[8192];
    settings_text(b, settings, sizeof(settings));
    say(b, "bench: broker at %s (http %s); settings:\n", b->broker.native, b->broker.http);
    for (char *line = settings, *tab; (tab = strchr(line, '\t')); line = strchr(tab, '\n') + 1)
        say(b, "  %.*s: %.*s\n", (int)(tab - line), line, (int)strcspn(tab + 1, "\n"), tab + 1);
    if (bench_topics(b) || bench_phases(b))
        goto out;
    struct breport_target t[NTARGETS];
    char closing[2048];
    fill_targets(b, t);
    summary_lines(b, t, closing, sizeof(closing));
    /* The report's copy of the output ends with the closing lines too; on the terminal they
     * come last, after the report's path. */
    size_t n = strlen(closing), room = b->log ? LOG_MAX - 1 - b->log_len : 0;
    if (b->log && room)
        memcpy(b->log + b->log_len, closing, n < room ? n + 1 : room);
    if (b->o.report && write_report(b, t))
        goto out;
    fputs(closing, stdout);
    rc = 0;
out:
    payload_free(&b->payload);
    bbroker_stop(&b->broker);
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

int cli_bench(struct cli *c)
{
    struct bench *b = calloc(1, sizeof(*b));
    if (!b) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    b->c = c;
    b->max_i = b->half_i = b->catchup_i = -1;
    int rc = parse_bench(c, &b->o);
    if (rc) {
        free(b);
        return rc < 0 ? 0 : rc;
    }
    snprintf(b->dir, sizeof(b->dir), "%s/ringlog-bench.XXXXXX", b->o.dir);
    if (!mkdtemp(b->dir)) {
        cli_error("cannot create a directory in %s: %s (choose another with --dir)", b->o.dir,
                  strerror(errno));
        free(b);
        return CLI_EXIT_FAIL;
    }
    /* A closed stdout (ringlog bench | head) stops the bench like Ctrl-C, with the clean-up. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    rc = bench_run(b);
    nftw(b->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (size_t i = 0; i < b->nphases; i++)
        brun_result_free(&b->phases[i]);
    free(b->log);
    if (g_interrupted) {
        cli_error("interrupted; the broker was stopped and %s removed", b->dir);
        rc = CLI_EXIT_FAIL;
    }
    free(b);
    return rc;
}
