/*
 * bench_replication: what replication costs and how fast it fails over, on three ringlogd
 * brokers it starts on 127.0.0.1 as one cluster (`make bench-replication`; issue 11's
 * Benchmarks). Everything is measured against the raw disk in the same run, because the three
 * brokers write every byte three times to this one disk:
 *
 *   limits    raw O_DIRECT write bandwidth of the disk under --dir (client/cli_probe.c),
 *             measured before and after the phases, the better figure kept, with the
 *             latency of a durable 4 KiB append (write + fdatasync) on the idle disk;
 *   leaders   waits until the topic's leaders have not changed for 6 s (preferred-leader
 *             balancing moves them 5 s after the first elections);
 *   max       closed-loop produce into a topic of --partitions partitions and --replicas
 *             replicas: acks=all, idempotence on, 1 KiB incompressible records, fsync per batch
 *             (the `ringlog bench` phase, client/cli_bench_run.c);
 *   settle    waits until every follower has caught up with what the max phase committed
 *             on a majority, and the page cache it left has reached the disk (otherwise both
 *             land on the first seconds of the next phase);
 *   warm-up   --warmup-seconds (default 0) of the half-load open loop, printed and not
 *             counted;
 *   half      open loop at half that maximum: the p99 of produce-to-acknowledgement latency,
 *             counted from each record's intended send time (no coordinated omission), with
 *             the p99 of each second and each broker's own p99 (from its /metrics histogram)
 *             to tell a broker's latency from the client's or the scheduler's;
 *   floor     the disk's own latency at that load: one perfect group-committing writer per
 *             replica log (partitions x replicas files) appends what the half phase wrote, three
 *             times over, with write + fdatasync and no network or CPU work
 *             (probe_fsync_loaded_run); every acks=all answer waits for such an append on a
 *             follower, so its p99 is the physical limit under the half-load p99;
 *   failover  --kills times: the leader of a partition (from Metadata) is SIGKILLed; a record is
 *             sent to that partition at once and the time from the SIGKILL to its acks=all
 *             acknowledgement (by the successor: the killed broker cannot answer) is one sample;
 *             the killed broker is restarted and every partition must accept an acks=all write
 *             again before the next kill. Median and p99 (nearest rank) over the samples.
 *   idle      (--idle) 1,000 partitions x --replicas on the three brokers, idle: each broker's
 *             CPU from /proc/<pid>/stat over --idle-seconds as % of a core (target < 5%), and
 *             its RSS growth from creating them divided by the replicas it holds.
 *
 * Summary line (the issue's): replication: produce R of disk (ceiling 0.33), p99 L ms at half
 * load; failover median F ms, p99 G ms. The ceiling is 1 / replicas.
 *
 * While ringlogd refuses a replication factor above 1 the bench says so and exits 1 without a
 * figure; `--replicas 1` runs every phase on unreplicated partitions for development (the
 * "failover" of an unreplicated partition is then its broker's restart, and says so).
 *
 *   bench_replication [--replicas N (3)] [--partitions N (6)] [--max-seconds S (10)]
 *                     [--warmup-seconds S (0)] [--seconds S (10)]
 *                     [--half-rps N (half the max)] [--kills K (50)]
 *                     [--dir D ($TMPDIR or /var/tmp)]
 *                     [--disk-mb M (1024)] [--idle] [--idle-partitions N (1000)]
 *                     [--idle-seconds S (30)] [--broker-set KEY=VALUE ...]
 * ringlogd is $RINGLOGD (the Makefile sets it). Brokers die with the bench (tl_broker).
 *
 * Where it sits: bench/ -> libringlog, the `ringlog bench` phases (client/cli_bench_run.c,
 * cli_probe.c) and tests/lib/tl_broker (processes). Never part of make test.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/cli_bench_broker.h"
#include "client/cli_bench_hist.h"
#include "client/cli_bench_payload.h"
#include "client/cli_bench_run.h"
#include "client/cli_probe.h"
#include "client/ringlog.h"
#include "tests/lib/tl_broker.h"

#define RB_BROKERS 3
#define RB_MAX_KILLS 1000
#define RB_MAX_SETS 8
#define RB_MAX_PARTITIONS 64
#define RB_START_MS 30000
#define RB_TOPIC "repl"
#define RB_IDLE_TOPIC "idle"
#define RB_SEGMENT_BYTES (128ull << 20)
#define RB_FAILOVER_DEADLINE_MS 60000
#define RB_HEALTHY_DEADLINE_MS 60000
#define RB_IDLE_SETTLE_S 5
#define RB_FSYNC_PROBES 500 /* durable 4 KiB appends timed, the disk idle */
#define RB_FLOOR_SECONDS 5  /* the loaded probe after the half phase */
#define RB_LEADERS_STABLE_MS 6000    /* a second beyond the balancer's settle time */
#define RB_SETTLE_MS 60000           /* settle's wait for followers and writeback */
#define RB_SETTLE_BYTES (64ll << 20) /* ... until less than this is unwritten */

static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

/* cli_bench_broker.c reports through the tool's cli_error; this program is its own tool. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench-replication: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

struct rb_opts {
    int replicas, partitions, max_seconds, seconds, warmup_seconds, kills, idle_partitions,
        idle_seconds;
    long half_rps; /* the second phase's rate (records/s); 0: half the measured maximum */
    bool idle;
    const char *dir;
    size_t disk_bytes;
    const char *sets[RB_MAX_SETS];
    int nsets;
};

struct rb {
    struct rb_opts o;
    struct tl_broker b[RB_BROKERS];
    uint16_t ports[RB_BROKERS];
    char voters[256], bootstrap[256];
    double disk_mbps;
    double floor_p99_ms; /* the disk's durable-append p99 under the half phase's writes */
};

/* --- the cluster ------------------------------------------------------------------------------ */

/* Free ports for the native listeners: --voters must name them before the brokers start. */
static int pick_ports(struct rb *r)
{
    int fds[RB_BROKERS];
    for (int i = 0; i < RB_BROKERS; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
        socklen_t len = sizeof(sa);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) ||
            getsockname(fds[i], (struct sockaddr *)&sa, &len))
            return -errno;
        r->ports[i] = ntohs(sa.sin_port);
    }
    for (int i = 0; i < RB_BROKERS; i++)
        close(fds[i]);
    snprintf(r->voters, sizeof(r->voters), "1@127.0.0.1:%u,2@127.0.0.1:%u,3@127.0.0.1:%u",
             r->ports[0], r->ports[1], r->ports[2]);
    snprintf(r->bootstrap, sizeof(r->bootstrap), "127.0.0.1:%u,127.0.0.1:%u,127.0.0.1:%u",
             r->ports[0], r->ports[1], r->ports[2]);
    return 0;
}

static int start_cluster(struct rb *r)
{
    int rc = pick_ports(r);
    if (rc)
        return rc;
    for (int i = 0; i < RB_BROKERS; i++) {
        char listen[32], node[8];
        const char *args[TL_BROKER_MAX_ARGS];
        int n = 0;
        snprintf(listen, sizeof(listen), "127.0.0.1:%u", r->ports[i]);
        snprintf(node, sizeof(node), "%d", i + 1);
        args[n++] = "--listen";
        args[n++] = listen;
        args[n++] = "--node-id";
        args[n++] = node;
        args[n++] = "--voters";
        args[n++] = r->voters;
        args[n++] = "--set"; /* before --broker-set, which may turn it off */
        args[n++] = "tail.cache.prefault=1";
        for (int k = 0; k < r->o.nsets; k++) {
            args[n++] = "--set";
            args[n++] = r->o.sets[k];
        }
        args[n] = NULL;
        rc = tl_broker_start(&r->b[i], args, RB_START_MS);
        if (rc) {
            fprintf(stderr, "bench-replication: broker %d did not start: %s\n", i + 1,
                    strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static void stop_cluster(struct rb *r)
{
    for (int i = 0; i < RB_BROKERS; i++)
        if (r->b[i].dir[0])
            tl_broker_finish(&r->b[i], 30000);
}

static struct rl_conf *conf_with(const struct rb *r, const char *const *kv)
{
    struct rl_conf *c = rl_conf_new();
    char err[256];
    if (!c)
        return NULL;
    rl_conf_set(c, "bootstrap.servers", r->bootstrap, err, sizeof(err));
    for (int i = 0; kv && kv[i]; i += 2)
        if (rl_conf_set(c, kv[i], kv[i + 1], err, sizeof(err)))
            fprintf(stderr, "bench-replication: %s\n", err);
    return c;
}

static struct rl_admin *admin_new(const struct rb *r)
{
    static const char *const kv[] = {"request.timeout.ms", "3000", "connect.timeout.ms", "1000",
                                     NULL};
    struct rl_conf *c = conf_with(r, kv);
    char err[256];
    struct rl_admin *a = c ? rl_admin_new(c, err, sizeof(err)) : NULL;
    rl_conf_destroy(c);
    return a;
}

/* Creates the topic, retrying while the cluster elects its controller. Returns 0, 1 when
 * ringlogd refuses the replication factor (its message printed), or -1. */
static int create_topic(const struct rb *r, const char *name, int partitions)
{
    char seg[32];
    snprintf(seg, sizeof(seg), "%llu", RB_SEGMENT_BYTES);
    const char *keys[] = {"flush.policy", "segment.bytes"};
    const char *values[] = {"batch", seg};
    struct rl_topic_spec spec = {.name = name, .partitions = partitions,
                                 .replication_factor = r->o.replicas, .config_keys = keys,
                                 .config_values = values, .config_count = 2};
    uint64_t deadline = tl_now_ms() + RB_START_MS;
    char last[512] = "no answer";
    while (!g_interrupted && tl_now_ms() < deadline) {
        struct rl_admin *a = admin_new(r);
        int rc = a ? rl_admin_create_topic(a, &spec) : RL_E_BROKER_UNAVAILABLE;
        if (a)
            snprintf(last, sizeof(last), "%s", rl_admin_last_error(a));
        rl_admin_destroy(a);
        if (rc == 0 || rc == RL_E_TOPIC_EXISTS) /* a retry of a create that happened */
            return 0;
        /* INVALID_REPLICATION also says "needs 3 live brokers" while brokers register: only
         * the refusal of the replication factor itself ends the bench at once. */
        if (rc == RL_E_INVALID_REPLICATION && strstr(last, "not supported")) {
            printf("bench-replication: ringlogd refuses a topic with %d replicas: \"%s\"\n"
                   "replication: not measured (partitions are not replicated yet; "
                   "--replicas 1, e.g. make bench-replication BENCH_REPL_ARGS='--replicas 1', "
                   "runs the same phases unreplicated for development)\n", r->o.replicas, last);
            return 1;
        }
        poll(NULL, 0, 200);
    }
    fprintf(stderr, "bench-replication: could not create topic %s within %d ms: %s\n", name,
            RB_START_MS, last);
    return -1;
}

/* Every partition of topic has a leader, as the bootstrap brokers say; leaders[] gets them. */
static int leaders(const struct rb *r, const char *topic, int32_t *out, int cap)
{
    struct rl_admin *a = admin_new(r);
    const struct rl_topic_info *t;
    int n = -1;
    if (a && rl_admin_describe_topic(a, topic, &t) == 0) {
        n = t->partition_count;
        for (int32_t p = 0; p < t->partition_count; p++) {
            if (t->partitions[p].error || t->partitions[p].leader < 1)
                n = -1;
            else if (p < cap)
                out[p] = t->partitions[p].leader;
        }
    }
    rl_admin_destroy(a);
    return n;
}

static int wait_leaders(const struct rb *r, const char *topic, uint32_t timeout_ms)
{
    uint64_t deadline = tl_now_ms() + timeout_ms;
    int32_t l[1];
    while (!g_interrupted && tl_now_ms() < deadline) {
        if (leaders(r, topic, l, 0) > 0)
            return 0;
        poll(NULL, 0, 100);
    }
    return -ETIMEDOUT;
}

/* A new topic's leaders are wherever the first elections put them, and preferred-leader
 * balancing hands each to its preferred replica once it has led for REPLICA_BALANCE_SETTLE_MS
 * (5 s): a phase started before that measures leadership moving (clients redirected, a
 * partition without a leader for a round trip; seen as a p99 of 170 ms in seconds 3-4 of a
 * half-load phase). Waits until the leaders have not changed for RB_LEADERS_STABLE_MS. */
static int wait_leaders_stable(const struct rb *r, const char *topic, uint32_t timeout_ms)
{
    uint64_t t0 = tl_now_ms(), deadline = t0 + timeout_ms, since = t0;
    int32_t prev[RB_MAX_PARTITIONS] = {0}, now[RB_MAX_PARTITIONS];
    while (!g_interrupted && tl_now_ms() < deadline) {
        int n = leaders(r, topic, now, RB_MAX_PARTITIONS);
        if (n <= 0 || memcmp(prev, now, (size_t)n * sizeof(now[0])) != 0) {
            if (n > 0)
                memcpy(prev, now, (size_t)n * sizeof(now[0]));
            since = tl_now_ms();
        } else if (tl_now_ms() - since >= RB_LEADERS_STABLE_MS) {
            printf("leaders: unchanged for %d s, %.1f s after the topic had leaders "
                   "(preferred-leader balancing done)\n", RB_LEADERS_STABLE_MS / 1000,
                   (double)(tl_now_ms() - t0) / 1e3);
            return 0;
        }
        poll(NULL, 0, 100);
    }
    return -ETIMEDOUT;
}

static void fill_bbroker(const struct rb *r, int i, struct bbroker *bb);

/* A gauge's value in a /metrics text, or -1. */
static long long metric_value(const char *text, const char *name)
{
    char key[96];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *at = strstr(text, key);
    return at ? strtoll(at + strlen(key), NULL, 10) : -1;
}

/* Every broker knows all three brokers and none is fenced (placement spreads a new topic over
 * all of them only then), and each has faulted its tail cache in. The brokers run with
 * tail.cache.prefault=1, as `ringlog bench` runs its own: otherwise the first few hundred MB of
 * load touch the cache's fresh memory for the first time, which on this machine cost the half
 * phase a p99 of 111 ms in its first second after a 1 s max phase (9.4 ms with the prefault),
 * a cost a broker that has run a while has long paid. */
static int wait_brokers(const struct rb *r, uint32_t timeout_ms)
{
    uint64_t deadline = tl_now_ms() + timeout_ms;
    while (!g_interrupted && tl_now_ms() < deadline) {
        int ok = 0;
        for (int i = 0; i < RB_BROKERS; i++) {
            struct bbroker bb;
            char *text = NULL;
            fill_bbroker(r, i, &bb);
            if (bbroker_metrics(&bb, &text) == 0 &&
                metric_value(text, "ringlog_cluster_brokers") >= RB_BROKERS &&
                metric_value(text, "ringlog_cluster_brokers_fenced") == 0 &&
                metric_value(text, "ringlog_tail_cache_prefaulted_bytes") >=
                    metric_value(text, "ringlog_tail_cache_budget_bytes"))
                ok++;
            free(text);
        }
        if (ok == RB_BROKERS)
            return 0;
        poll(NULL, 0, 100);
    }
    fprintf(stderr, "bench-replication: the brokers did not all see each other within %u ms\n",
            timeout_ms);
    return -ETIMEDOUT;
}

/* --- measured phases ------------------------------------------------------------------------- */

static void fill_bbroker(const struct rb *r, int i, struct bbroker *bb)
{
    memset(bb, 0, sizeof(*bb));
    bb->pid = r->b[i].pid;
    snprintf(bb->native, sizeof(bb->native), "127.0.0.1:%u", r->b[i].port);
    snprintf(bb->http, sizeof(bb->http), "127.0.0.1:%u", r->b[i].http_port);
    snprintf(bb->log_path, sizeof(bb->log_path), "%s", r->b[i].log_path);
}

static struct rl_conf *producer_conf(const struct rb *r)
{
    static const char *const kv[] = {
        "acks", "all", "enable.idempotence", "true", "batch.size", "1048576", "linger.ms", "1",
        "buffer.memory", "33554432", "max.in.flight.per.partition", "5", "compression", "none",
        NULL};
    return conf_with(r, kv);
}

/* CPU seconds each broker has used so far. */
static void cpu_now(const struct rb *r, double *cpu)
{
    for (int i = 0; i < RB_BROKERS; i++) {
        struct bbroker bb;
        fill_bbroker(r, i, &bb);
        cpu[i] = bbroker_cpu_s(&bb);
    }
}

static void print_phase(const struct rb *r, const struct brun_result *res, const double *cpu0)
{
    double cpu1[RB_BROKERS], s = res->secs > 0 ? res->secs : 1;
    cpu_now(r, cpu1);
    printf("%s: %llu records in %.2f s = %.1f MB/s; ack p50 %.2f p99 %.2f p99.9 %.2f max %.2f "
           "ms; CPU of brokers 1-3: %.2f %.2f %.2f cores\n", res->label,
           (unsigned long long)res->acked, res->secs, res->mbps,
           bhist_percentile_ms(res->ack, 50), bhist_percentile_ms(res->ack, 99),
           bhist_percentile_ms(res->ack, 99.9), bhist_percentile_ms(res->ack, 100),
           (cpu1[0] - cpu0[0]) / s, (cpu1[1] - cpu0[1]) / s, (cpu1[2] - cpu0[2]) / s);
}

/* The transport and replication counters of every broker so far (cumulative): what the
 * leaders sent twice, probes, frames dropped, flow-control pauses, the most bytes queued.
 * A peer series is the sum over the broker's peer nodes (bytes_queued_max too: the sum of each
 * node's maximum). */
static void print_counters(const struct rb *r, const char *after)
{
    /* The loop's turns, slow turns, and the time slow turns spent without a CPU (preempted)
     * tell a broker that waited for a core from one that waited for the disk or its peers. */
    static const char *const parts[] = {"ringlog_replication_", "ringlog_peer_", "ringlog_loop_"};
    for (int i = 0; i < RB_BROKERS; i++) {
        struct bbroker bb;
        char *text = NULL;
        fill_bbroker(r, i, &bb);
        if (bbroker_metrics(&bb, &text) != 0) {
            printf("counters after %s: broker %d: /metrics unavailable\n", after, i + 1);
            continue;
        }
        for (int k = 0; k < 3; k++) {
            char line[4096];
            if (bbroker_metrics_matching(text, parts[k], line, sizeof(line)) > 0)
                printf("counters after %s: broker %d: %s\n", after, i + 1, line);
        }
        free(text);
    }
}

/* Bytes of page cache the kernel still has to write to disk (Dirty + Writeback of
 * /proc/meminfo), or -1 when unreadable. */
static long long unwritten_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[128];
    long long kb, total = 0;
    int seen = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Dirty: %lld kB", &kb) == 1 ||
            sscanf(line, "Writeback: %lld kB", &kb) == 1) {
            total += kb;
            seen++;
        }
    fclose(f);
    return seen == 2 ? total * 1024 : -1;
}

/* Bytes the followers of every partition still lack, summed over the brokers' leaders
 * (ringlog_partition_follower_lag_bytes), or -1 when a broker's /metrics does not answer. */
static long long follower_lag_bytes(const struct rb *r)
{
    long long total = 0;
    for (int i = 0; i < RB_BROKERS; i++) {
        struct bbroker bb;
        char *text = NULL, line[256];
        fill_bbroker(r, i, &bb);
        if (bbroker_metrics(&bb, &text) != 0)
            return -1;
        const char *eq = NULL;
        if (bbroker_metrics_matching(text, "follower_lag_bytes", line, sizeof(line)) > 0)
            eq = strchr(line, '=');
        free(text);
        if (eq)
            total += (long long)strtod(eq + 1, NULL);
    }
    return total;
}

/* Between the phases. The closed-loop phase ends when every record is committed, that is on a
 * majority: the third replica of a partition may still be behind, and its catch-up (and the
 * kernel's writeback of the page cache) would land on the next phase, measuring the previous
 * one rather than half load. Waits (up to RB_SETTLE_MS) until every follower has caught up and
 * less than RB_SETTLE_BYTES of page cache is unwritten, and says what it found (on this
 * machine: a few MB of each, gone within 0.1 s). */
static void settle(const struct rb *r)
{
    uint64_t t0 = brun_now_ns(), deadline = t0 + (uint64_t)RB_SETTLE_MS * 1000000u;
    long long lag0 = follower_lag_bytes(r), dirty0 = unwritten_bytes(), lag = lag0,
              dirty = dirty0;
    while ((lag > 0 || dirty > RB_SETTLE_BYTES) && brun_now_ns() < deadline && !g_interrupted) {
        poll(NULL, 0, 50);
        lag = follower_lag_bytes(r);
        dirty = unwritten_bytes();
    }
    printf("settle: followers %.1f MB behind and %.0f MB of page cache unwritten after the max "
           "phase; %.1f MB and %.0f MB after %.1f s%s\n", (double)lag0 / 1e6,
           (double)dirty0 / 1e6, (double)lag / 1e6, (double)dirty / 1e6,
           (double)(brun_now_ns() - t0) / 1e9,
           lag > 0 || dirty > RB_SETTLE_BYTES ? " (deadline or unreadable: starting anyway)" : "");
}

/* Each broker's produce latency histogram (ringlog_request_latency_seconds: arrival to answer
 * sent, so acks=all includes the wait for the commit); n 0 where /metrics does not answer. */
static void broker_hists(const struct rb *r, struct bhist_prom *h)
{
    for (int i = 0; i < RB_BROKERS; i++) {
        struct bbroker bb;
        char *text = NULL;
        fill_bbroker(r, i, &bb);
        h[i].n = 0;
        if (bbroker_metrics(&bb, &text) == 0)
            bhist_prom_parse(text, "produce", &h[i]);
        free(text);
    }
}

/* What the half-load p99 is made of: the p99 of every second (a spread of seconds, or one
 * stall), and each broker's own p99 over the phase (bucket upper bounds), which tells time
 * spent in the broker from time spent in the client or the scheduler. */
static void print_half_breakdown(const struct brun_result *half, const struct bhist_prom *h0,
                                 const struct bhist_prom *h1)
{
    char line[2048];
    int n = snprintf(line, sizeof(line), "half: ack p99 of each second (ms):");
    uint32_t over = 0;
    for (uint32_t i = 0; i < half->nsecs && n < (int)sizeof(line) - 16; i++) {
        double p99 = half->series[i].ack_ms[1];
        n += snprintf(line + n, sizeof(line) - (size_t)n, " %.1f", p99);
        over += !isnan(p99) && p99 >= 10;
    }
    printf("%s; %u of %u seconds at or above 10 ms\n", line, over, half->nsecs);
    printf("half: each broker's own produce p99 (arrival to answer, its histogram's bucket "
           "bounds):");
    for (int i = 0; i < RB_BROKERS; i++) {
        double p = bhist_prom_percentile_ms(&h0[i], &h1[i], 99);
        if (p < 0)
            printf(" broker %d -", i + 1);
        else
            printf(" broker %d <= %g ms", i + 1, p);
    }
    printf("\n");
}

/* Before the measured half-load phase, the same open loop for --warmup-seconds (default 0),
 * printed and not counted: for looking at a start-up effect apart from the steady state. (The
 * one seen, brokers answering their first seconds of load slowly, was the tail cache's first
 * touches of fresh memory; the brokers now fault it in before the phases, see wait_brokers.) */
static int half_warmup(const struct rb *r, const struct brun_env *env,
                       const struct brun_produce *spec)
{
    if (r->o.warmup_seconds == 0)
        return 0;
    struct brun_produce warm = *spec;
    struct brun_result res = {0};
    double cpu0[RB_BROKERS];
    warm.seconds = r->o.warmup_seconds;
    printf("bench-replication: warm-up: the half-load open loop for %d s, not counted\n",
           r->o.warmup_seconds);
    cpu_now(r, cpu0);
    int rc = brun_produce(env, "warm-up", &warm, &res);
    if (rc)
        fprintf(stderr, "bench-replication: warm-up phase: %s\n", res.error);
    else
        print_phase(r, &res, cpu0);
    brun_result_free(&res);
    return rc;
}

/* The disk's latency floor at the half phase's load (header: "floor"). */
static int half_floor(struct rb *r, double half_mbps)
{
    unsigned logs = (unsigned)(r->o.partitions * r->o.replicas);
    double per_log = half_mbps * r->o.replicas / logs;
    struct probe_loaded f;
    char err[512];
    if (probe_fsync_loaded_run(r->o.dir, logs, per_log, RB_FLOOR_SECONDS, &f, err,
                               sizeof(err))) {
        fprintf(stderr, "bench-replication: %s\n", err);
        return -1;
    }
    printf("floor: %u logs, each a perfect group-committing writer of %.1f MB/s (%.0f MB/s in "
           "all, as the half phase wrote), for %d s: %.0f MB durable after %.2f s (%.0f MB/s); "
           "durable-append latency p50 %.2f p99 %.2f ms\n", logs, per_log, per_log * logs,
           RB_FLOOR_SECONDS, (double)f.bytes / 1e6, f.seconds, f.mbps, f.p50_ms, f.p99_ms);
    r->floor_p99_ms = f.p99_ms;
    return 0;
}

/* The max and half-load phases. Fills *ratio (of the disk, measured before) and *p99_ms. */
static int run_produce(struct rb *r, double *max_mbps, double *p99_ms)
{
    struct bbroker bb;
    fill_bbroker(r, 0, &bb);
    struct rl_conf *conf = producer_conf(r);
    struct payload pl;
    char err[256];
    if (!conf || payload_init(&pl, PAYLOAD_RANDOM, 1024, 2u << 20, 1, err, sizeof(err))) {
        fprintf(stderr, "bench-replication: %s\n", conf ? err : "out of memory");
        rl_conf_destroy(conf);
        return -1;
    }
    struct brun_env env = {.conf = conf, .broker = &bb, .t0_ns = brun_now_ns(),
                           .record_size = 1024, .kind = PAYLOAD_RANDOM, .progress_s = 5,
                           .interrupted = &g_interrupted};
    struct brun_result max = {0}, half = {0};
    int rc = -1;
    printf("bench-replication: max: closed-loop produce for %d s (acks=all, idempotent, 1 KiB "
           "records, %d partitions x %d replicas)\n", r->o.max_seconds, r->o.partitions,
           r->o.replicas);
    struct brun_produce spec = {.topic = RB_TOPIC, .payload = &pl,
                                .seconds = r->o.max_seconds, .segment_bytes = RB_SEGMENT_BYTES};
    double cpu0[RB_BROKERS];
    cpu_now(r, cpu0);
    if (brun_produce(&env, "max", &spec, &max)) {
        fprintf(stderr, "bench-replication: max phase: %s\n", max.error);
        goto out;
    }
    print_phase(r, &max, cpu0);
    printf("counters (cumulative; ringlog_peer_* summed over each broker's peer nodes):\n");
    print_counters(r, "max");
    *max_mbps = max.mbps;
    settle(r);
    spec.rate_rps = r->o.half_rps ? (double)r->o.half_rps : (double)max.acked / max.secs / 2;
    spec.seconds = r->o.seconds;
    printf("bench-replication: half: open loop at %.0f records/s (%s) for %d s\n",
           spec.rate_rps, r->o.half_rps ? "--half-rps" : "half the maximum", r->o.seconds);
    if (half_warmup(r, &env, &spec))
        goto out;
    cpu_now(r, cpu0);
    struct bhist_prom hist0[RB_BROKERS], hist1[RB_BROKERS];
    broker_hists(r, hist0);
    if (brun_produce(&env, "half", &spec, &half)) {
        fprintf(stderr, "bench-replication: half-load phase: %s\n", half.error);
        goto out;
    }
    broker_hists(r, hist1);
    print_phase(r, &half, cpu0);
    printf("half: the sender fell behind its schedule by at most %.2f ms\n", half.max_lag_ms);
    print_half_breakdown(&half, hist0, hist1);
    print_counters(r, "half");
    *p99_ms = bhist_percentile_ms(half.ack, 99);
    rc = half_floor(r, half.mbps);
out:
    brun_result_free(&max);
    brun_result_free(&half);
    payload_free(&pl);
    rl_conf_destroy(conf);
    return rc;
}

/* --- failover --------------------------------------------------------------------------------- */

/* One record at a time, so the record sent after a kill is the only one in flight. */
struct probe {
    atomic_int done, error;
    atomic_ullong ack_ns;
};

static void probe_cb(void *ctx, const struct rl_delivery *d)
{
    struct probe *p = ctx;
    atomic_store(&p->ack_ns, brun_now_ns());
    atomic_store(&p->error, d->error);
    atomic_store(&p->done, 1);
}

/* Sends one record to partition and waits for its fate (bounded by timeout_ms). Returns 0 with
 * *ack_ns, or the delivery's error (-ETIMEDOUT when no fate came in time). */
static int probe_send(struct rl_producer *p, struct probe *pr, int32_t partition,
                      uint32_t timeout_ms, uint64_t *ack_ns)
{
    atomic_store(&pr->done, 0);
    int rc = rl_producer_send(p, RB_TOPIC, partition, NULL, 0, "failover-probe", 14, 0, NULL);
    if (rc)
        return rc;
    rl_producer_flush(p, (int)timeout_ms);
    if (!atomic_load(&pr->done))
        return -ETIMEDOUT;
    *ack_ns = atomic_load(&pr->ack_ns);
    return atomic_load(&pr->error);
}

/* Every partition takes an acks=all write again (a quorum is back for each). */
static int wait_healthy(struct rb *r, struct rl_producer *p, struct probe *pr)
{
    uint64_t deadline = tl_now_ms() + RB_HEALTHY_DEADLINE_MS, ack;
    if (wait_brokers(r, RB_HEALTHY_DEADLINE_MS) ||
        wait_leaders(r, RB_TOPIC, RB_HEALTHY_DEADLINE_MS))
        return -ETIMEDOUT;
    for (int32_t part = 0; part < r->o.partitions && !g_interrupted; part++) {
        uint64_t now = tl_now_ms();
        if (now >= deadline ||
            probe_send(p, pr, part, (uint32_t)(deadline - now), &ack) != 0)
            return -ETIMEDOUT;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted samples. */
static double nearest_rank(const double *v, int n, double pct)
{
    int k = (int)ceil(pct / 100.0 * n);
    return v[k < 1 ? 0 : k > n ? n - 1 : k - 1];
}

/* One kill: the leader of `part` dies; the time until a record sent at once is acknowledged.
 * Returns the sample in ms, or a negative code. */
static double one_failover(struct rb *r, struct rl_producer *p, struct probe *pr, int k)
{
    int32_t lead[RB_MAX_PARTITIONS];
    int32_t part = k % r->o.partitions;
    uint64_t ack;
    if (leaders(r, RB_TOPIC, lead, RB_MAX_PARTITIONS) <= part ||
        probe_send(p, pr, part, RB_FAILOVER_DEADLINE_MS, &ack) != 0)
        return -EAGAIN;
    int victim = lead[part];
    uint64_t t_kill = brun_now_ns();
    tl_broker_kill(&r->b[victim - 1]);
    if (r->o.replicas == 1 && tl_broker_restart(&r->b[victim - 1], RB_START_MS))
        return -ECHILD;
    int rc = probe_send(p, pr, part, RB_FAILOVER_DEADLINE_MS, &ack);
    double ms = (double)(ack - t_kill) / 1e6;
    if (r->o.replicas > 1 && tl_broker_restart(&r->b[victim - 1], RB_START_MS))
        return -ECHILD;
    int32_t after[RB_MAX_PARTITIONS];
    int n = leaders(r, RB_TOPIC, after, RB_MAX_PARTITIONS);
    printf("failover %d/%d: broker %d (leader of partition %d) SIGKILLed; %s %.1f ms; leader "
           "now %d\n", k + 1, r->o.kills, victim, part,
           rc ? "no acknowledgement" : "first acks=all acknowledgement after", rc ? 0.0 : ms,
           n > part ? after[part] : -1);
    return rc ? -EIO : ms;
}

static int run_failover(struct rb *r, double *median_ms, double *p99_ms)
{
    static const char *const kv[] = {
        "acks", "all", "enable.idempotence", "true", "linger.ms", "0", "retry.backoff.ms", "10",
        "retry.backoff.max.ms", "100", "delivery.timeout.ms", "60000", "request.timeout.ms",
        "5000", "max.block.ms", "10000", NULL};
    static double samples[RB_MAX_KILLS];
    static struct probe pr;
    struct rl_conf *c = conf_with(r, kv);
    char err[256];
    if (!c)
        return -1;
    rl_conf_set_delivery_cb(c, probe_cb, &pr);
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    rl_conf_destroy(c);
    if (!p) {
        fprintf(stderr, "bench-replication: %s\n", err);
        return -1;
    }
    printf("bench-replication: failover: %d kills of a partition's leader (SIGKILL), each %s; "
           "the probe producer: acks=all, idempotent, retry.backoff.ms 10, "
           "retry.backoff.max.ms 100\n", r->o.kills,
           r->o.replicas > 1 ? "restarted after the successor acknowledged"
                             : "restarted at once (one replica: there is no successor, the "
                               "figure is a restart)");
    int n = 0, failed = 0;
    for (int k = 0; k < r->o.kills && !g_interrupted && failed < 3; k++) {
        double ms = one_failover(r, p, &pr, k);
        if (ms < 0)
            failed++;
        else
            samples[n++] = ms;
        if (wait_healthy(r, p, &pr)) {
            fprintf(stderr, "bench-replication: the cluster did not take an acks=all write on "
                    "every partition within %d ms after kill %d\n", RB_HEALTHY_DEADLINE_MS,
                    k + 1);
            failed = 3;
        }
    }
    rl_producer_destroy(p, 5000);
    if (failed || n == 0) {
        fprintf(stderr, "bench-replication: failover: %d of the kills got no acknowledgement "
                "within %d ms\n", failed, RB_FAILOVER_DEADLINE_MS);
        return -1;
    }
    qsort(samples, (size_t)n, sizeof(samples[0]), cmp_double);
    *median_ms = nearest_rank(samples, n, 50);
    *p99_ms = nearest_rank(samples, n, 99);
    printf("failover: %d kills: min %.1f median %.1f p99 %.1f max %.1f ms\n", n, samples[0],
           *median_ms, *p99_ms, samples[n - 1]);
    return 0;
}

/* --- idle cost -------------------------------------------------------------------------------- */

/* Resident set size of pid in KiB, or -1. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

/* Each broker's CPU over `seconds` (fractions of a core) into cores[]. */
static void idle_cpu(const struct rb *r, int seconds, double *cores)
{
    struct bbroker bb[RB_BROKERS];
    double t0[RB_BROKERS];
    for (int i = 0; i < RB_BROKERS; i++) {
        fill_bbroker(r, i, &bb[i]);
        t0[i] = bbroker_cpu_s(&bb[i]);
    }
    uint64_t start = brun_now_ns(), end = start + (uint64_t)seconds * 1000000000ull;
    while (!g_interrupted && brun_now_ns() < end)
        poll(NULL, 0, 200); /* the measurement window itself, not a wait for anything */
    double secs = (double)(brun_now_ns() - start) / 1e9;
    for (int i = 0; i < RB_BROKERS; i++)
        cores[i] = (bbroker_cpu_s(&bb[i]) - t0[i]) / secs;
}

static int run_idle(struct rb *r)
{
    double base[RB_BROKERS], cores[RB_BROKERS];
    long rss0[RB_BROKERS], rss1[RB_BROKERS];
    int rc = wait_brokers(r, RB_START_MS);
    if (!rc) /* the controller is elected and the replication factor accepted */
        rc = create_topic(r, "warm", 1);
    if (rc)
        return rc;
    printf("bench-replication: idle: the cluster with one topic of 1 partition, for %d s\n",
           r->o.idle_seconds / 3 + 1);
    idle_cpu(r, r->o.idle_seconds / 3 + 1, base);
    for (int i = 0; i < RB_BROKERS; i++)
        rss0[i] = rss_kib(r->b[i].pid);
    uint64_t t = tl_now_ms();
    rc = create_topic(r, RB_IDLE_TOPIC, r->o.idle_partitions);
    if (rc)
        return rc;
    if (wait_leaders(r, RB_IDLE_TOPIC, 120000)) {
        fprintf(stderr, "bench-replication: %d partitions without a leader after 120 s\n",
                r->o.idle_partitions);
        return -1;
    }
    printf("bench-replication: idle: %d partitions x %d replicas created, every one led, in "
           "%llu ms; measuring %d s of idleness after %d s to settle\n", r->o.idle_partitions,
           r->o.replicas, (unsigned long long)(tl_now_ms() - t), r->o.idle_seconds,
           RB_IDLE_SETTLE_S);
    idle_cpu(r, RB_IDLE_SETTLE_S, cores); /* the election storm's aftermath is not idleness */
    idle_cpu(r, r->o.idle_seconds, cores);
    int32_t *lead = calloc((size_t)r->o.idle_partitions, sizeof(*lead));
    int n = lead ? leaders(r, RB_IDLE_TOPIC, lead, r->o.idle_partitions) : -1;
    double worst = 0, per_sum = 0;
    for (int i = 0; i < RB_BROKERS; i++) {
        rss1[i] = rss_kib(r->b[i].pid);
        double held = (double)r->o.idle_partitions * r->o.replicas / RB_BROKERS;
        if (r->o.replicas >= RB_BROKERS)
            held = r->o.idle_partitions;
        else if (r->o.replicas == 1 && n > 0)
            for (int p = held = 0; p < n; p++)
                held += lead[p] == i + 1;
        double per = held > 0 ? (double)(rss1[i] - rss0[i]) / held : NAN;
        per_sum += per / RB_BROKERS;
        worst = fmax(worst, cores[i]);
        printf("idle: broker %d: CPU %.2f%% of a core (%.2f%% before the partitions); RSS %.1f "
               "-> %.1f MiB: %.1f KiB per partition replica (%.0f replicas here)\n", i + 1,
               100 * cores[i], 100 * base[i], rss0[i] / 1024.0, rss1[i] / 1024.0, per, held);
    }
    free(lead);
    if (r->o.replicas != 3)
        printf("note: %d replica%s, not the issue's 3: a development run, not the figure\n",
               r->o.replicas, r->o.replicas > 1 ? "s" : "");
    printf("replication idle: %d partitions x %d replicas on %d brokers: CPU per broker at most "
           "%.2f%% of a core (target < 5%%: %s), memory per partition replica %.1f KiB\n",
           r->o.idle_partitions, r->o.replicas, RB_BROKERS, 100 * worst,
           worst < 0.05 ? "met" : "missed", per_sum);
    return 0;
}

/* --- main ------------------------------------------------------------------------------------- */

static const char usage[] =
    "usage: bench_replication [--replicas N (3)] [--partitions N (6, at most 64)]\n"
    "       [--max-seconds S (10)] [--warmup-seconds S (0)] [--seconds S (10)] [--half-rps N]\n"
    "       [--kills K (50)]\n"
    "       [--dir D ($TMPDIR or /var/tmp)] [--disk-mb M (1024)] [--broker-set KEY=VALUE]\n"
    "       [--idle [--idle-partitions N (1000)] [--idle-seconds S (30)]]\n";

static int parse(int argc, char **argv, struct rb_opts *o)
{
    const char *tmp = getenv("TMPDIR");
    *o = (struct rb_opts){.replicas = 3, .partitions = 6, .max_seconds = 10, .seconds = 10,
                          .warmup_seconds = 0, .kills = 50, .idle_partitions = 1000,
                          .idle_seconds = 30,
                          .dir = tmp && tmp[0] ? tmp : "/var/tmp", .disk_bytes = 1u << 30};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = v ? strtol(v, NULL, 10) : 0;
        if (!strcmp(a, "--idle")) {
            o->idle = true;
            continue;
        }
        if (!v)
            goto bad;
        i++;
        if (!strcmp(a, "--replicas") && n >= 1 && n <= RB_BROKERS)
            o->replicas = (int)n;
        else if (!strcmp(a, "--partitions") && n >= 1 && n <= RB_MAX_PARTITIONS)
            o->partitions = (int)n;
        else if (!strcmp(a, "--max-seconds") && n >= 1 && n <= 3600)
            o->max_seconds = (int)n;
        else if (!strcmp(a, "--seconds") && n >= 1 && n <= 3600)
            o->seconds = (int)n;
        else if (!strcmp(a, "--warmup-seconds") && n >= 0 && n <= 3600)
            o->warmup_seconds = (int)n;
        else if (!strcmp(a, "--half-rps") && n >= 1 && n <= 10000000)
            o->half_rps = n;
        else if (!strcmp(a, "--kills") && n >= 0 && n <= RB_MAX_KILLS)
            o->kills = (int)n;
        else if (!strcmp(a, "--idle-partitions") && n >= 1 && n <= 4096)
            o->idle_partitions = (int)n;
        else if (!strcmp(a, "--idle-seconds") && n >= 3 && n <= 3600)
            o->idle_seconds = (int)n;
        else if (!strcmp(a, "--disk-mb") && n >= 16 && n <= (1 << 20))
            o->disk_bytes = (size_t)n << 20;
        else if (!strcmp(a, "--dir"))
            o->dir = v;
        else if (!strcmp(a, "--broker-set") && strchr(v, '=') && o->nsets < RB_MAX_SETS)
            o->sets[o->nsets++] = v;
        else
            goto bad;
    }
    return 0;
bad:
    fprintf(stderr, "bench-replication: bad or incomplete argument \"%s\"\n%s", argv[argc - 1],
            usage);
    return -1;
}

static int probe(struct rb *r, const char *when)
{
    struct probe_disk d;
    double f50 = 0, f99 = 0;
    char err[512];
    if (probe_disk_run(r->o.dir, r->o.disk_bytes, 1u << 20, 16, &d, err, sizeof(err)) ||
        probe_fsync_run(r->o.dir, RB_FSYNC_PROBES, &f50, &f99, err, sizeof(err))) {
        fprintf(stderr, "bench-replication: %s\n", err);
        return -1;
    }
    printf("limits (%s): raw disk write %.0f MB/s in %s (O_DIRECT, 1 MiB blocks, 16 in "
           "flight); durable 4 KiB append (write + fdatasync) p50 %.2f p99 %.2f ms\n", when,
           d.write_mbps, r->o.dir, f50, f99);
    r->disk_mbps = fmax(r->disk_mbps, d.write_mbps);
    return 0;
}

static int run_throughput_and_failover(struct rb *r)
{
    double max_mbps = 0, p99 = 0, f50 = 0, f99 = 0;
    int rc = wait_brokers(r, RB_START_MS);
    if (!rc)
        rc = create_topic(r, RB_TOPIC, r->o.partitions);
    if (rc)
        return rc;
    if (wait_leaders(r, RB_TOPIC, RB_START_MS)) {
        fprintf(stderr, "bench-replication: partitions without a leader after %d ms\n",
                RB_START_MS);
        return -1;
    }
    if (wait_leaders_stable(r, RB_TOPIC, RB_START_MS)) {
        fprintf(stderr, "bench-replication: the leaders kept changing for %d ms\n",
                RB_START_MS);
        return -1;
    }
    if (probe(r, "before the phases"))
        return -1;
    if (run_produce(r, &max_mbps, &p99))
        return -1;
    bool failover = r->o.kills > 0;
    if (failover && run_failover(r, &f50, &f99))
        return -1;
    if (probe(r, "after the phases; the better figure is used"))
        return -1;
    double ratio = max_mbps / r->disk_mbps, ceiling = 1.0 / r->o.replicas;
    printf("targets: produce >= 0.25 of disk (%s), p99 < 10 ms at half load (%s), failover "
           "median < 1000 ms (%s)\n", ratio >= 0.25 ? "met" : "missed",
           p99 < 10 ? "met" : "missed",
           !failover ? "not measured" : f50 < 1000 ? "met" : "missed");
    printf("latency floor: the half-load p99 (%.2f ms) is %.1fx the disk's own durable-append "
           "p99 at that load (%.2f ms)\n", p99,
           r->floor_p99_ms > 0 ? p99 / r->floor_p99_ms : 0, r->floor_p99_ms);
    if (r->o.replicas != 3)
        printf("note: %d replica%s, not the issue's 3: a development run, not the figure\n",
               r->o.replicas, r->o.replicas > 1 ? "s" : "");
    if (!failover)
        printf("note: --kills 0: failover not measured (printed as 0)\n");
    printf("replication: produce %.3f of disk (ceiling %.2f), p99 %.2f ms at half load; "
           "failover median %.0f ms, p99 %.0f ms\n", ratio, ceiling, p99, f50, f99);
    return 0;
}

int main(int argc, char **argv)
{
    static struct rb r;
    if (parse(argc, argv, &r.o))
        return 2;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    setenv("TMPDIR", r.o.dir, 1); /* the brokers' data on the disk the probe measures */
    printf("bench-replication: %s: 3 brokers on 127.0.0.1 (%s), data in %s\n",
           r.o.idle ? "idle cost" : "throughput, latency and failover", tl_ringlogd_path(),
           r.o.dir);
    int rc = start_cluster(&r);
    if (!rc)
        rc = r.o.idle ? run_idle(&r) : run_throughput_and_failover(&r);
    stop_cluster(&r);
    if (g_interrupted)
        fprintf(stderr, "bench-replication: interrupted\n");
    return rc ? 1 : 0;
}
