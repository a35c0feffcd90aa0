/*
 * bench_kafka_rd: librdkafka's producer and consumer against ringlog's Kafka listener, tuned
 * as a Kafka user would for throughput: 1 KiB incompressible records, acks=all, idempotence
 * on, linger.ms=5, batch.size 1 MiB, up to 5 requests in flight per connection; the consumer
 * assigns every partition from the beginning and fetches up to 1 MiB per partition. `make
 * bench-kafka` (bench/bench_kafka.sh) runs it beside `ringlog bench` on the native protocol.
 *
 * The payloads are handed over without RD_KAFKA_MSG_F_COPY: they live in a pool that outlives
 * the producer, so librdkafka references them until it builds its batches (one copy, as
 * libringlog makes), instead of copying each record first (measured: ~5% of the machine's
 * CPU in this phase went to that copy).
 *
 *   bench_kafka_rd BOOTSTRAP TOPIC PARTITIONS SECONDS [BROKER_PID]
 *
 * Prints "kafka-bench: produce P MB/s (N records), consume C MB/s" (MB = 10^6 bytes of record
 * values, as ringlog bench counts them), then, for each phase, the CPU this process (librdkafka's
 * threads included) and, given BROKER_PID, the broker used, in cores:
 * "kafka-bench-cpu: produce client X broker Y cores, consume client X broker Y cores".
 * Exits non-zero when a record is not acknowledged or not read back.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define RECORD_BYTES 1024
#define POOL_RECORDS 4096 /* distinct random payloads, cycled */
#define CONSUME_IDLE_S 30 /* give up when nothing arrives for this long */

static long acked, failed;
static long broker_pid; /* 0: not measured */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds used so far by this process, every thread included. */
static double cpu_self_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds used so far by the broker (utime + stime of /proc/PID/stat), or -1. */
static double cpu_broker_s(void)
{
    if (broker_pid <= 0)
        return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", broker_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A phase's CPU: the readings at its start, then the cores used over its wall time. */
struct cpu_span {
    double self0, broker0, t0;
    double client_cores, broker_cores; /* broker_cores < 0: not measured */
};

static void cpu_begin(struct cpu_span *c)
{
    c->self0 = cpu_self_s();
    c->broker0 = cpu_broker_s();
    c->t0 = now_s();
}

static void cpu_end(struct cpu_span *c)
{
    double wall = now_s() - c->t0, b = cpu_broker_s();
    c->client_cores = wall > 0 ? (cpu_self_s() - c->self0) / wall : 0;
    c->broker_cores = wall > 0 && b >= 0 && c->broker0 >= 0 ? (b - c->broker0) / wall : -1;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_kafka_rd: %s: %s\n", what, detail ? detail : "");
    exit(1);
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        die(k, err);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err)
        failed++;
    else
        acked++;
}

/* Produces for `seconds`, then flushes; returns the MB/s of acknowledged record bytes. */
static double produce(const char *bootstrap, const char *topic, double seconds,
                      const unsigned char *pool, struct cpu_span *cpu)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[256];
    set(c, "bootstrap.servers", bootstrap);
    set(c, "enable.idempotence", "true");
    set(c, "acks", "all");
    set(c, "linger.ms", "5");
    set(c, "batch.size", "1048576");
    set(c, "batch.num.messages", "100000");
    set(c, "queue.buffering.max.kbytes", "262144");
    set(c, "queue.buffering.max.messages", "1000000");
    set(c, "compression.codec", "none");
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    if (!rk)
        die("producer", err);
    cpu_begin(cpu);
    double start = now_s(), stop = start + seconds;
    long sent = 0;
    while (now_s() < stop) {
        for (int k = 0; k < 1000; k++, sent++) {
            const unsigned char *v = pool + (size_t)(sent % POOL_RECORDS) * RECORD_BYTES;
            rd_kafka_resp_err_t e;
            while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                          RD_KAFKA_V_VALUE((void *)v, RECORD_BYTES),
                                          RD_KAFKA_V_MSGFLAGS(0), /* pool outlives rk */
                                          RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 1);
            if (e)
                die("produce", rd_kafka_err2str(e));
        }
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 120000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        die("flush", "records unacknowledged after 120 s");
    double elapsed = now_s() - start;
    cpu_end(cpu);
    rd_kafka_destroy(rk);
    if (failed || acked != sent)
        die("produce", "not every record was acknowledged");
    return (double)acked * RECORD_BYTES / 1e6 / elapsed;
}

/* Reads every partition from the beginning until `want` records came; returns MB/s. */
static double consume(const char *bootstrap, const char *topic, int partitions, long want,
                      struct cpu_span *cpu)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[256];
    set(c, "bootstrap.servers", bootstrap);
    set(c, "group.id", "bench-kafka-unused"); /* assign() only: no group traffic */
    set(c, "enable.auto.commit", "false");
    set(c, "max.partition.fetch.bytes", "1048576");
    set(c, "fetch.max.bytes", "52428800");
    set(c, "queued.max.messages.kbytes", "262144");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
    if (!rk)
        die("consumer", err);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    cpu_begin(cpu);
    double start = now_s(), last = start;
    if (rd_kafka_assign(rk, l))
        die("assign", topic);
    rd_kafka_topic_partition_list_destroy(l);
    long got = 0;
    while (got < want && now_s() - last < CONSUME_IDLE_S) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err && m->len == RECORD_BYTES) {
            got++;
            last = now_s();
        }
        rd_kafka_message_destroy(m);
    }
    double elapsed = last - start;
    cpu_end(cpu);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (got != want) {
        char d[80];
        snprintf(d, sizeof(d), "read %ld of %ld records", got, want);
        die("consume", d);
    }
    return (double)got * RECORD_BYTES / 1e6 / elapsed;
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6)
        die("usage", "bench_kafka_rd BOOTSTRAP TOPIC PARTITIONS SECONDS [BROKER_PID]");
    broker_pid = argc == 6 ? atol(argv[5]) : 0;
    int partitions = atoi(argv[3]);
    double seconds = atof(argv[4]);
    unsigned char *pool = malloc((size_t)POOL_RECORDS * RECORD_BYTES);
    if (!pool || partitions < 1 || seconds <= 0)
        die("arguments", "partitions >= 1, seconds > 0");
    srand(12345); /* incompressible, like ringlog bench's random payload */
    for (size_t i = 0; i < (size_t)POOL_RECORDS * RECORD_BYTES; i++)
        pool[i] = (unsigned char)rand();
    struct cpu_span pc, cc;
    double p = produce(argv[1], argv[2], seconds, pool, &pc);
    double c = consume(argv[1], argv[2], partitions, acked, &cc);
    printf("kafka-bench: produce %.0f MB/s (%ld records), consume %.0f MB/s\n", p, acked, c);
    printf("kafka-bench-cpu: produce client %.2f broker %.2f cores, consume client %.2f broker "
           "%.2f cores\n", pc.client_cores, pc.broker_cores, cc.client_cores, cc.broker_cores);
    free(pool);
    return 0;
}
