/*
 * examples/producer.c: a complete libringlog producer, written against ringlog.h alone.
 *
 *   producer --brokers HOST:PORT TOPIC [COUNT]
 *
 * Sends COUNT keyed records (1000 by default) to TOPIC and waits until the broker has
 * acknowledged each one. It shows the parts of the API every producer needs:
 *  - configuration with Kafka's key names, checked when set (rl_conf_set's message says what
 *    is wrong);
 *  - a delivery callback, the only place a record's fate is known: it runs on the producer's
 *    I/O thread, so it only counts here;
 *  - non-blocking send (max.block.ms=0): send never waits for the network; when the buffer is
 *    full it fails with RL_E_FULL and the program lets acknowledgements drain, then retries;
 *  - flush before exit, then destroy.
 * Build: cc -std=c99 producer.c $(pkg-config --cflags --libs ringlog)
 * Prints "delivered N, failed M" and exits 0 when every record was delivered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringlog.h"

struct counts {
    unsigned long delivered, failed;
};

/* Runs on the producer's I/O thread, once per record. Keep it short; never call
 * rl_producer_flush, send or destroy from here (they would return -EDEADLK). */
static void on_delivery(void *ctx, const struct rl_delivery *d)
{
    struct counts *c = ctx;
    if (d->error == 0) {
        c->delivered++;
        return;
    }
    if (c->failed++ == 0)
        fprintf(stderr, "record to %s failed: %s (%s)%s\n", d->topic, rl_error_name(d->error),
                d->error_message, d->status == RL_DELIVERY_POSSIBLY_PERSISTED
                                      ? "; it may be in the log anyway" : "");
}

static int set(struct rl_conf *conf, const char *key, const char *value)
{
    char err[256];
    if (rl_conf_set(conf, key, value, err, sizeof(err)) == 0)
        return 0;
    fprintf(stderr, "producer: %s\n", err);
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 4 || strcmp(argv[1], "--brokers") != 0) {
        fprintf(stderr, "usage: producer --brokers HOST:PORT TOPIC [COUNT]\n");
        return 2;
    }
    const char *topic = argv[3];
    long count = argc > 4 ? strtol(argv[4], NULL, 10) : 1000;
    struct counts counts = {0, 0};

    struct rl_conf *conf = rl_conf_new();
    if (!conf || set(conf, "bootstrap.servers", argv[2]) || set(conf, "acks", "all") ||
        set(conf, "linger.ms", "5") || set(conf, "compression.type", "zstd") ||
        set(conf, "max.block.ms", "0") || set(conf, "delivery.timeout.ms", "30000"))
        return 1;
    rl_conf_set_delivery_cb(conf, on_delivery, &counts);
    char err[256];
    struct rl_producer *p = rl_producer_new(conf, err, sizeof(err));
    rl_conf_destroy(conf); /* the producer keeps its own copy */
    if (!p) {
        fprintf(stderr, "producer: %s\n", err);
        return 1;
    }

    for (long i = 0; i < count; i++) {
        char key[32], value[64];
        snprintf(key, sizeof(key), "user-%ld", i % 100);
        snprintf(value, sizeof(value), "{\"event\": %ld}", i);
        int rc;
        /* RL_E_FULL: buffer.memory holds records not yet acknowledged; wait for some. */
        while ((rc = rl_producer_send(p, topic, RL_PARTITION_ANY, key, strlen(key), value,
                                      strlen(value), 0, NULL)) == RL_E_FULL)
            rl_producer_flush(p, 100);
        if (rc != 0) {
            fprintf(stderr, "producer: send: %s (%s)\n", rl_error_name(rc), rl_last_error());
            rl_producer_destroy(p, 0);
            return 1;
        }
    }
    /* Waits for every record's report; delivery.timeout.ms bounds it. */
    int rc = rl_producer_flush(p, RL_TIMEOUT_INFINITE);
    struct rl_producer_stats st;
    if (rl_producer_stats(p, &st, sizeof(st)) == 0)
        fprintf(stderr, "producer: %lu requests, round trip %lu us on average, %lu retries\n",
                (unsigned long)st.requests, (unsigned long)st.rtt_avg_us,
                (unsigned long)st.retries);
    rl_producer_destroy(p, 0);
    printf("delivered %lu, failed %lu\n", counts.delivered, counts.failed);
    return rc == 0 && counts.failed == 0 && counts.delivered == (unsigned long)count ? 0 : 1;
}
