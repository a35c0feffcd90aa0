/*
 * bench_kafka_rd: librdkafka's producer and consumer against ringlog's Kafka listener, tuned
 * as a Kafka user would for throughput: 1 KiB incompressible records, acks=all, idempotence
 * on, linger.ms=5, batch.size 1 MiB, up to 5 requests in flight per connection; the consumer
 * assigns every partition from the beginning and fetches up to 1 MiB per partition. `make
 * bench-kafka` (bench/bench_kafka.sh) runs it beside `ringlog bench` on the native protocol.
 *
 *   bench_kafka_rd BOOTSTRAP TOPIC PARTITIONS SECONDS
 *
 * Prints "kafka-bench: produce P MB/s (N records), consume C MB/s" (MB = 10^6 bytes of record
 * values, as ringlog bench counts them). Exits non-zero when a record is not acknowledged or
 * not read back.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECORD_BYTES 1024
#define POOL_RECORDS 4096 /* distinct random payloads, cycled */
#define CONSUME_IDLE_S 30 /* give up when nothing arrives for this long */

static long acked, failed;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
                      const unsigned char *pool)
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
    double start = now_s(), stop = start + seconds;
    long sent = 0;
    while (now_s() < stop) {
        for (int k = 0; k < 1000; k++, sent++) {
            const unsigned char *v = pool + (size_t)(sent % POOL_RECORDS) * RECORD_BYTES;
            rd_kafka_resp_err_t e;
            while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                          RD_KAFKA_V_VALUE((void *)v, RECORD_BYTES),
                                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
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
    rd_kafka_destroy(rk);
    if (failed || acked != sent)
        die("produce", "not every record was acknowledged");
    return (double)acked * RECORD_BYTES / 1e6 / elapsed;
}

/* Reads every partition from the beginning until `want` records came; returns MB/s. */
static double consume(const char *bootstrap, const char *topic, int partitions, long want)
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
    if (argc != 5)
        die("usage", "bench_kafka_rd BOOTSTRAP TOPIC PARTITIONS SECONDS");
    int partitions = atoi(argv[3]);
    double seconds = atof(argv[4]);
    unsigned char *pool = malloc((size_t)POOL_RECORDS * RECORD_BYTES);
    if (!pool || partitions < 1 || seconds <= 0)
        die("arguments", "partitions >= 1, seconds > 0");
    srand(12345); /* incompressible, like ringlog bench's random payload */
    for (size_t i = 0; i < (size_t)POOL_RECORDS * RECORD_BYTES; i++)
        pool[i] = (unsigned char)rand();
    double p = produce(argv[1], argv[2], seconds, pool);
    double c = consume(argv[1], argv[2], partitions, acked);
    printf("kafka-bench: produce %.0f MB/s (%ld records), consume %.0f MB/s\n", p, acked, c);
    free(pool);
    return 0;
}
