/*
 * cli_bench: `ringlog bench`, end-to-end throughput and latency against a broker it starts
 * itself, compared with the raw disk limit measured in the same run (absolute figures drift
 * on shared machines; the ratio is what means something).
 *
 * Steps: raw O_DIRECT writes (1 MiB, 16 in flight; client/cli_probe.c) in the bench directory
 * -> start ringlogd on an ephemeral port with its data there -> create a topic (8 partitions, flush.policy=batch) ->
 * produce incompressible 1 KiB records with acks=1 for --seconds, timing each record from send
 * to acknowledgement -> consume everything back from the earliest offset -> print figures and
 * the summary line `bench: produce P MB/s = R of disk, p99 L ms; consume C MB/s`.
 *
 * Records are keyless by default, as in Kafka's producer-perf-test: the producer fills one
 * partition's batch, then the next, so batches seal one after another and stream to the broker.
 * With --keys every record gets a key and the hash spreads records over all partitions at once:
 * their batches fill (and seal) together, which holds more of buffer.memory in open batches.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/client_internal.h"
#include "client/cli_probe.h"

#define POOL_BYTES (32u * 1024 * 1024) /* random bytes records are cut from: incompressible */
#define HIST_BUCKETS (64 * 16)         /* log-linear latency buckets: 16 per power of two */
#define READY_TIMEOUT_MS 20000

struct bench_opts {
    bool produce_only; /* `ringlog bench produce`: skip the consume phase */
    bool keys;         /* --keys: a decimal key per record, partitioned by its hash */
    int seconds;
    int record_size;
    int partitions;
    const char *dir;
    const char *ringlogd;
    size_t disk_bytes;
    size_t batch_size;
    int linger_ms;
    size_t buffer_memory;
    int max_in_flight_per_partition;
    size_t partition_fetch_bytes;
};

/* Latency histogram in microseconds; written only by the producer's I/O thread. */
struct hist {
    uint64_t buckets[HIST_BUCKETS];
    uint64_t count;
};

static unsigned hist_index(uint64_t us)
{
    if (us < 16)
        return (unsigned)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us);
    unsigned idx = (msb - 3) * 16 + (unsigned)((us >> (msb - 4)) & 15);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The upper edge of a bucket, in microseconds. */
static uint64_t hist_upper(unsigned idx)
{
    if (idx < 16)
        return idx;
    unsigned msb = idx / 16 + 3, sub = idx % 16;
    return ((16ull + sub + 1) << (msb - 4)) - 1;
}

static double hist_pct_ms(const struct hist *h, double pct)
{
    uint64_t want = (uint64_t)((double)h->count * pct / 100.0), seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen > want)
            return (double)hist_upper(i) / 1000.0;
    }
    return 0;
}

/* Set by SIGINT/SIGTERM: the phases stop early and the normal clean-up runs. */
static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

struct bench_state {
    struct hist hist;
    uint64_t failed;
    char first_error[256];
};

static void on_delivery(void *ctx, const struct rl_delivery *d)
{
    struct bench_state *s = ctx;
    if (d->error) {
        if (!s->failed++)
            snprintf(s->first_error, sizeof(s->first_error), "%s", d->error_message);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
    uint64_t sent_us = (uint64_t)(uintptr_t)d->opaque;
    s->hist.buckets[hist_index(now_us - sent_us)]++;
    s->hist.count++;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

/* Starts ringlogd with data in dir and waits for its ready file; fills brokers "H:P". */
static pid_t start_broker(const struct bench_opts *o, const char *dir, char *brokers,
                          size_t len)
{
    char data[PATH_MAX + 64], ready[PATH_MAX + 64], logp[PATH_MAX + 64];
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(ready, sizeof(ready), "%s/ready", dir);
    snprintf(logp, sizeof(logp), "%s/ringlogd.log", dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* If the bench is interrupted, its broker must not outlive it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(o->ringlogd, o->ringlogd, "--data-dir", data, "--listen", "127.0.0.1:0",
              "--http", "127.0.0.1:0", "--ready-file", ready, (char *)NULL);
        _exit(127);
    }
    int64_t deadline = rlc_now_ms() + READY_TIMEOUT_MS;
    while (rlc_now_ms() < deadline) {
        FILE *f = fopen(ready, "r");
        char line[512];
        while (f && fgets(line, sizeof(line), f)) {
            if (strncmp(line, "native=", 7) == 0) {
                line[strcspn(line, "\r\n")] = 0;
                snprintf(brokers, len, "%s", line + 7);
                fclose(f);
                return pid;
            }
        }
        if (f)
            fclose(f);
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            cli_error("ringlogd exited during start-up; see %s", logp);
            return -1;
        }
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL); /* start-up poll: the file appears once, no event to wait on */
    }
    cli_error("ringlogd did not become ready within %d ms; see %s", READY_TIMEOUT_MS, logp);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void stop_broker(pid_t pid)
{
    kill(pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static int create_topic(struct rl_conf *conf, const struct bench_opts *o)
{
    char err[512];
    struct rl_admin *a = rl_admin_new(conf, err, sizeof(err));
    if (!a) {
        cli_error("%s", err);
        return -1;
    }
    const char *keys[] = {"flush.policy"}, *values[] = {"batch"};
    struct rl_topic_spec spec = {.name = "bench", .partitions = o->partitions,
                                 .config_keys = keys, .config_values = values,
                                 .config_count = 1};
    int rc = rl_admin_create_topic(a, &spec);
    if (rc)
        cli_error("%s", rl_admin_last_error(a));
    rl_admin_destroy(a);
    return rc;
}

/* CPU seconds this process (every thread, not the broker) has used so far. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Writes n in decimal into buf (at least 20 bytes), returning the length: the record key, made
 * per record, where snprintf's format parsing would cost more than the key is worth. */
static size_t fmt_u64(char *buf, uint64_t n)
{
    char tmp[20];
    size_t len = 0;
    do {
        tmp[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    for (size_t i = 0; i < len; i++)
        buf[i] = tmp[len - 1 - i];
    return len;
}

/* Sends records for o->seconds, then flushes. Returns records acknowledged, or -1. */
static long long run_produce(struct rl_conf *conf, const struct bench_opts *o,
                             struct bench_state *st, double *secs)
{
    uint8_t *pool = malloc(POOL_BYTES);
    if (!pool)
        return -1;
    uint64_t rnd = now_us() | 1;
    for (size_t i = 0; i < POOL_BYTES / 8; i++) {
        uint64_t v = rlc_rand(&rnd);
        memcpy(pool + i * 8, &v, 8);
    }
    rl_conf_set_delivery_cb(conf, on_delivery, st);
    char err[512];
    struct rl_producer *p = rl_producer_new(conf, err, sizeof(err));
    if (!p) {
        cli_error("%s", err);
        free(pool);
        return -1;
    }
    long long sent = 0;
    uint64_t start = now_us(), end = start + (uint64_t)o->seconds * 1000000;
    size_t span = POOL_BYTES - (size_t)o->record_size;
    int rc = 0;
    size_t next_off = (size_t)(rlc_rand(&rnd) % span);
    while (rc == 0) {
        if ((sent & 255) == 0 && (now_us() >= end || g_interrupted))
            break;
        /* Records are random slices of a pool bigger than the caches; ask for the next one's
         * bytes while this one is sent, as an application would have its record at hand. */
        size_t off = next_off;
        next_off = (size_t)(rlc_rand(&rnd) % span);
        for (int k = 0; k < o->record_size && k < 4096; k += 64)
            __builtin_prefetch(pool + next_off + k);
        char key[24];
        size_t klen = o->keys ? fmt_u64(key, (uint64_t)sent) : 0;
        rc = rl_producer_send(p, "bench", RL_PARTITION_ANY, o->keys ? key : NULL, klen,
                              pool + off, (size_t)o->record_size, 0,
                              (void *)(uintptr_t)now_us());
        sent += rc == 0;
    }
    if (rc)
        cli_error("send failed: %s", rl_producer_last_error(p));
    int frc = rl_producer_flush(p, 60000);
    *secs = (double)(now_us() - start) / 1e6;
    uint64_t acked, failed;
    rl_producer_counts(p, &acked, &failed);
    rl_producer_destroy(p, 0);
    free(pool);
    if (g_interrupted)
        return -1;
    if (rc || frc || failed) {
        cli_error("produce phase: %llu of %lld records failed%s%s", (unsigned long long)failed,
                  sent, st->first_error[0] ? ": " : "", st->first_error);
        return -1;
    }
    return (long long)acked;
}

/* Reads `want` records back from the earliest offsets. Returns records read, or -1. */
static long long run_consume(struct rl_conf *conf, long long want, double *secs,
                             long long *bytes)
{
    char err[512];
    struct rl_consumer *k = rl_consumer_new(conf, err, sizeof(err));
    if (!k) {
        cli_error("%s", err);
        return -1;
    }
    long long n = 0;
    *bytes = 0;
    uint64_t start = now_us();
    int rc = rl_consumer_assign_topic(k, "bench", RL_OFFSET_EARLIEST);
    int idle = 0;
    while (rc >= 0 && n < want && idle < 50 && !g_interrupted) {
        struct rl_record r;
        rc = rl_consumer_poll(k, 200, &r);
        if (rc == 1) {
            n++;
            *bytes += r.value_len + (r.key_len > 0 ? r.key_len : 0);
            idle = 0;
        } else if (rc == 0) {
            idle++; /* bounded: 50 idle polls of 200 ms end the phase */
        }
    }
    *secs = (double)(now_us() - start) / 1e6;
    if (rc < 0)
        cli_error("consume phase: %s", rl_consumer_last_error(k));
    rl_consumer_destroy(k);
    return rc < 0 ? -1 : n;
}

static int parse_bench(struct cli *c, struct bench_opts *o)
{
    static char self[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    *o = (struct bench_opts){.seconds = 10, .record_size = 1024, .partitions = 8,
                             .dir = tmp && tmp[0] ? tmp : "/var/tmp",
                             .partition_fetch_bytes = 1u << 20,
                             .disk_bytes = 1u << 30, .batch_size = 128 * 1024,
                             .linger_ms = 5, .buffer_memory = 4u << 20,
                             .max_in_flight_per_partition = 5};
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 16);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash)
            strcpy(slash + 1, "ringlogd");
        o->ringlogd = self;
    }
    const char *v;
    for (int i = 0; i < c->argc; i++) {
        if ((v = cli_opt(c, &i, "--seconds")))
            o->seconds = (int)cli_int("--seconds", v, 1, 3600);
        else if ((v = cli_opt(c, &i, "--record-size")))
            o->record_size = (int)cli_int("--record-size", v, 1, 1 << 20);
        else if ((v = cli_opt(c, &i, "--partitions")))
            o->partitions = (int)cli_int("--partitions", v, 1, 1024);
        else if ((v = cli_opt(c, &i, "--dir")))
            o->dir = v;
        else if ((v = cli_opt(c, &i, "--ringlogd")))
            o->ringlogd = v;
        else if ((v = cli_opt(c, &i, "--disk-mb")))
            o->disk_bytes = (size_t)cli_int("--disk-mb", v, 16, 1 << 20) << 20;
        else if ((v = cli_opt(c, &i, "--batch-size")))
            o->batch_size = (size_t)cli_int("--batch-size", v, 1024, 16 << 20);
        else if ((v = cli_opt(c, &i, "--linger-ms")))
            o->linger_ms = (int)cli_int("--linger-ms", v, 0, 1000);
        else if ((v = cli_opt(c, &i, "--buffer-mb")))
            o->buffer_memory = (size_t)cli_int("--buffer-mb", v, 1, 4096) << 20;
        else if ((v = cli_opt(c, &i, "--fetch-kb")))
            o->partition_fetch_bytes = (size_t)cli_int("--fetch-kb", v, 64, 65536) << 10;
        else if ((v = cli_opt(c, &i, "--in-flight")))
            o->max_in_flight_per_partition = (int)cli_int("--in-flight", v, 1, 5);
        else if (!strcmp(c->argv[i], "--keys"))
            o->keys = true;
        else if (!strcmp(c->argv[i], "produce"))
            o->produce_only = true;
        else if (strcmp(c->argv[i], "consume")) { /* consume needs the produce phase's data */
            cli_error("unexpected argument \"%s\" for bench; run ringlog --help", c->argv[i]);
            return CLI_EXIT_USAGE;
        }
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
}

static int bench_run(struct cli *c, const struct bench_opts *o, const char *dir)
{
    char err[512], brokers[512];
    printf("bench: measuring the raw disk (O_DIRECT, 1 MiB writes, 16 in flight, %zu MiB) "
           "in %s\n", o->disk_bytes >> 20, dir);
    fflush(stdout);
    struct probe_disk pd;
    if (probe_disk_run(dir, o->disk_bytes, 1u << 20, 16, &pd, err, sizeof(err))) {
        cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }
    double disk = pd.write_mbps;
    printf("disk: %.0f MB/s raw sequential write\n", disk);
    pid_t pid = start_broker(o, dir, brokers, sizeof(brokers));
    if (pid < 0)
        return CLI_EXIT_FAIL;
    bench_conf(c, o, brokers);
    int rc = CLI_EXIT_FAIL;
    struct bench_state *st = calloc(1, sizeof(*st));
    if (!st || create_topic(c->conf, o) != 0)
        goto out;
    printf("bench: broker at %s; producing %d-byte records to %d partitions for %d s "
           "(acks=1, flush.policy=batch, batch.size=%zu, linger.ms=%d, buffer.memory=%zu, "
           "%d batches in flight per partition, %s)\n", brokers, o->record_size, o->partitions,
           o->seconds, o->batch_size, o->linger_ms, o->buffer_memory,
           o->max_in_flight_per_partition, o->keys ? "keyed records, hash-partitioned"
           : "keyless records: each batch fills one partition, then the next");
    fflush(stdout);
    double psecs, csecs, cpu0 = cpu_s();
    long long produced = run_produce(c->conf, o, st, &psecs);
    if (produced < 0)
        goto out;
    double pmb = (double)produced * o->record_size / 1e6 / psecs, cpu1 = cpu_s();
    printf("produce: %lld records in %.2f s: %.0f records/s, %.1f MB/s; latency p50 %.2f ms, "
           "p99 %.2f ms, p99.9 %.2f ms; client CPU %.0f%% of a core\n", produced, psecs,
           (double)produced / psecs, pmb, hist_pct_ms(&st->hist, 50),
           hist_pct_ms(&st->hist, 99), hist_pct_ms(&st->hist, 99.9),
           100 * (cpu1 - cpu0) / psecs);
    fflush(stdout);
    if (o->produce_only) {
        printf("bench: produce %.0f MB/s = %.2f of disk, p99 %.2f ms\n", pmb, pmb / disk,
               hist_pct_ms(&st->hist, 99));
        rc = 0;
        goto out;
    }
    long long bytes;
    long long consumed = run_consume(c->conf, produced, &csecs, &bytes);
    if (consumed != produced) {
        cli_error("consume phase read %lld of %lld records", consumed, produced);
        goto out;
    }
    double cmb = (double)consumed * o->record_size / 1e6 / csecs;
    printf("consume: %lld records in %.2f s: %.0f records/s, %.1f MB/s; client CPU %.0f%% of a "
           "core\n", consumed, csecs, (double)consumed / csecs, cmb,
           100 * (cpu_s() - cpu1) / csecs);
    printf("bench: produce %.0f MB/s = %.2f of disk, p99 %.2f ms; consume %.0f MB/s\n", pmb,
           pmb / disk, hist_pct_ms(&st->hist, 99), cmb);
    rc = 0;
out:
    free(st);
    stop_broker(pid);
    return rc;
}

int cli_bench(struct cli *c)
{
    struct bench_opts o;
    int rc = parse_bench(c, &o);
    if (rc)
        return rc;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/ringlog-bench.XXXXXX", o.dir);
    if (!mkdtemp(dir)) {
        cli_error("cannot create a directory in %s: %s (choose another with --dir)", o.dir,
                  strerror(errno));
        return CLI_EXIT_FAIL;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = bench_run(c, &o, dir);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (g_interrupted) {
        cli_error("interrupted; the broker was stopped and %s removed", dir);
        return CLI_EXIT_FAIL;
    }
    return rc;
}
