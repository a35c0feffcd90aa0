/*
 * bench_idempotence: what idempotence costs the broker, measured with the thinnest client
 * (tests/lib, one connection, requests pipelined) so the figure is the broker's. One ringlogd,
 * one topic of 8 partitions; phases alternate plain batches (producer id -1) and idempotent
 * batches (one producer id, a sequence per partition), ABAB..., each PHASE_SECONDS long, so
 * drift on a shared machine hits both sides alike; the first pair warms up (segment
 * preallocation) and is not counted, and each side reports its median phase. Every batch's
 * header is rewritten and its checksum recomputed in both modes, so the client does the same
 * work either way.
 *
 * Also prints the broker's CPU time per record in each mode (/proc/PID/schedstat), which the
 * load of a shared machine disturbs far less than throughput.
 * Ends with: bench-idempotence: plain R1 rec/s, idempotent R2 rec/s (medians), cost P%
 * Usage: RINGLOGD=build/bin/ringlogd bench_idempotence [PHASE_SECONDS] [PHASES] [WINDOW]
 *        (defaults 1, 10, 16); $BENCH_FLUSH_POLICY sets the topic's flush.policy (batch;
 *        "none" leaves fsync out and shows the broker's CPU cost alone).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/batch.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

#define BI_PARTITIONS 8
#define BI_RECORDS 64
#define BI_RECORD_BYTES 200
#define BI_MAX_WINDOW 128
#define BI_MAX_PHASES 32 /* per mode */

static int bi_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double bi_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), bi_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the idempotence fields and the checksum (the same work in both modes). */
static void bi_stamp(uint8_t *b, uint32_t len, int64_t pid, int16_t epoch, int32_t seq)
{
    put_le(b + BATCH_OFF_PRODUCER_ID, (uint64_t)pid, 8);
    put_le(b + BATCH_OFF_PRODUCER_EPOCH, (uint64_t)(uint16_t)epoch, 2);
    put_le(b + BATCH_OFF_BASE_SEQUENCE, (uint64_t)(uint32_t)seq, 4);
    put_le(b + BATCH_OFF_CHECKSUM, batch_compute_checksum(b, len), 8);
}

/* Nanoseconds the broker process has run on a CPU (all threads; /proc/PID/schedstat), or 0.
 * Unlike throughput, this hardly depends on what else the shared machine is doing. */
static uint64_t bi_cpu_ns(pid_t pid)
{
    char path[64];
    unsigned long long ns = 0;
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%llu", &ns) != 1)
            ns = 0;
        fclose(f);
    }
    return ns;
}

/* One phase; returns records per second, or -1 when a request failed; *records gets the
 * records acknowledged. */
static double bi_phase(struct tl_conn *c, uint8_t *b, uint32_t len, double seconds,
                       unsigned window, int64_t pid, int32_t seq[BI_PARTITIONS],
                       uint64_t *records)
{
    uint64_t t0 = tl_now_ms(), end = t0 + (uint64_t)(seconds * 1000), sent = 0, got = 0;
    while (got < sent || tl_now_ms() < end) {
        while (sent - got < window && tl_now_ms() < end) {
            uint32_t p = (uint32_t)(sent % BI_PARTITIONS);
            bi_stamp(b, len, pid, pid >= 0 ? 0 : -1, pid >= 0 ? seq[p] : -1);
            if (tl_send_produce(c, "bench", p, b, len, 1) < 0)
                return -1;
            if (pid >= 0)
                seq[p] += BI_RECORDS;
            sent++;
        }
        Ringlog__Response *resp = NULL;
        int rc = tl_recv(c, 30000, &resp, NULL, NULL);
        if (rc == 0)
            rc = resp->error_code ? resp->error_code
                                  : resp->produce->topics[0]->partitions[0]->error_code;
        if (rc) {
            fprintf(stderr, "bench_idempotence: produce failed: %s\n", rl_strerror(rc));
            return -1;
        }
        got++;
    }
    double secs = (double)(tl_now_ms() - t0) / 1000.0;
    *records = got * BI_RECORDS;
    return (double)got * BI_RECORDS / secs;
}

static int64_t bi_init_pid(struct tl_conn *c)
{
    Ringlog__InitProducerIdRequest ip = RINGLOG__INIT_PRODUCER_ID_REQUEST__INIT;
    ip.producer_id = -1;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_INIT_PRODUCER_ID;
    req.init_producer_id = &ip;
    Ringlog__Response *resp;
    if (tl_call(c, &req, NULL, 0, 10000, &resp, NULL, NULL) || resp->error_code)
        return -1;
    return resp->init_producer_id->producer_id;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1;
    int phases = argc > 2 ? atoi(argv[2]) : 10;
    unsigned window = argc > 3 ? (unsigned)atoi(argv[3]) : 16;
    if (seconds <= 0 || phases < 4 || phases > 2 * BI_MAX_PHASES || window < 1 ||
        window > BI_MAX_WINDOW) {
        fprintf(stderr, "usage: bench_idempotence [PHASE_SECONDS] [PHASES 4-%d] [WINDOW]\n",
                2 * BI_MAX_PHASES);
        return 2;
    }
    const char *dir = getenv("BENCH_DIR");
    dir = dir && dir[0] ? dir : "build";
    mkdir(dir, 0755);
    setenv("TMPDIR", dir, 1);
    struct tl_broker br;
    struct tl_conn c;
    if (tl_broker_start(&br, NULL, 20000) || tl_connect(&c, br.host, br.port, 5000)) {
        fprintf(stderr, "bench_idempotence: ringlogd did not start (%s)\n", tl_ringlogd_path());
        return 1;
    }
    const char *flush = getenv("BENCH_FLUSH_POLICY");
    char flush_kv[64], err[256] = "";
    snprintf(flush_kv, sizeof(flush_kv), "flush.policy=%s", flush && flush[0] ? flush : "batch");
    const char *const cfg[] = {flush_kv, NULL};
    uint8_t *b = NULL;
    int len = tl_make_batch_random(BI_RECORDS, BI_RECORD_BYTES, &b);
    int64_t pid = -1;
    double res[2][BI_MAX_PHASES], cpu[2][BI_MAX_PHASES];
    int n[2] = {0, 0};
    int rc = 1;
    int32_t seq[BI_PARTITIONS] = {0};
    if (len <= 0 || tl_create_topic(&c, "bench", BI_PARTITIONS, cfg, err, sizeof(err)) ||
        (pid = bi_init_pid(&c)) < 0)
        goto out;
    printf("produce: %u requests in flight, %d x %d-byte records per batch, acks=1, %s, "
           "%d partitions, %d phases of %.1f s\n", window, BI_RECORDS, BI_RECORD_BYTES,
           flush_kv, BI_PARTITIONS, phases, seconds);
    for (int i = 0; i < phases; i++) {
        int idem = i % 2;
        uint64_t recs = 0, cpu0 = bi_cpu_ns(br.pid);
        double r = bi_phase(&c, b, (uint32_t)len, seconds, window, idem ? pid : -1, seq, &recs);
        if (r < 0)
            goto out;
        double ns_per_rec = recs ? (double)(bi_cpu_ns(br.pid) - cpu0) / (double)recs : 0;
        printf("phase %d %-10s %.0f records/s, broker CPU %.0f ns/record%s\n", i,
               idem ? "idempotent" : "plain", r, ns_per_rec,
               i < 2 ? " (warm-up, not counted)" : "");
        if (i >= 2) {
            cpu[idem][n[idem]] = ns_per_rec;
            res[idem][n[idem]++] = r;
        }
    }
    rc = 0;
out:
    free(b);
    tl_close(&c);
    tl_broker_stop(&br, SIGTERM, 30000);
    tl_broker_cleanup(&br);
    if (rc) {
        fprintf(stderr, "bench_idempotence: failed (%s)\n", err);
        return rc;
    }
    /* Each pair (plain phase, the idempotent phase right after) gives one cost; their median
     * shrugs off phases that hit a stall of the shared machine. */
    double cost[BI_MAX_PHASES];
    int pairs = n[0] < n[1] ? n[0] : n[1];
    for (int i = 0; i < pairs; i++)
        cost[i] = (res[0][i] - res[1][i]) / res[0][i] * 100.0;
    double c_med = bi_median(cost, pairs);
    double plain = bi_median(res[0], n[0]), idem = bi_median(res[1], n[1]);
    double cpu_plain = bi_median(cpu[0], n[0]), cpu_idem = bi_median(cpu[1], n[1]);
    printf("broker CPU per record (medians): plain %.0f ns, idempotent %.0f ns (%+.1f%%)\n",
           cpu_plain, cpu_idem, cpu_plain > 0 ? (cpu_idem - cpu_plain) / cpu_plain * 100 : 0);
    printf("bench-idempotence: plain %.0f rec/s, idempotent %.0f rec/s (medians), cost %.1f%% "
           "(median of %d adjacent pairs)\n", plain, idem, c_med, pairs);
    return 0;
}
