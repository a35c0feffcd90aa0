/*
 * examples/consumer.c: a complete libringlog group consumer, written against ringlog.h alone.
 *
 *   consumer --brokers HOST:PORT GROUP TOPIC [MAX]
 *
 * Joins GROUP with a subscription to TOPIC and prints each record's partition, offset, key and
 * value, until MAX records were read (100 by default) or nothing arrived for 3 seconds. Then
 * it commits what it processed and leaves the group, so the partitions move to the other
 * members at once. It shows:
 *  - a consumer group (group.id, rl_consumer_subscribe); each partition starts at the group's
 *    committed offset, or at auto.offset.reset when the group never committed;
 *  - at-least-once processing: auto-commit is off, and rl_consumer_commit runs after the
 *    records were processed;
 *  - the poll loop: 1 with a record, 0 when none arrived within the timeout, a negative code
 *    on error (retriable ones are worth another poll).
 * Build: cc -std=c99 consumer.c $(pkg-config --cflags --libs ringlog)
 * Prints "consumed N" and exits 0 unless an error stopped it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringlog.h"

static int set(struct rl_conf *conf, const char *key, const char *value)
{
    char err[256];
    if (rl_conf_set(conf, key, value, err, sizeof(err)) == 0)
        return 0;
    fprintf(stderr, "consumer: %s\n", err);
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 5 || strcmp(argv[1], "--brokers") != 0) {
        fprintf(stderr, "usage: consumer --brokers HOST:PORT GROUP TOPIC [MAX]\n");
        return 2;
    }
    const char *topics[1] = {argv[4]};
    long max = argc > 5 ? strtol(argv[5], NULL, 10) : 100;

    struct rl_conf *conf = rl_conf_new();
    if (!conf || set(conf, "bootstrap.servers", argv[2]) || set(conf, "group.id", argv[3]) ||
        set(conf, "auto.offset.reset", "earliest") || set(conf, "enable.auto.commit", "false"))
        return 1;
    char err[256];
    struct rl_consumer *c = rl_consumer_new(conf, err, sizeof(err));
    rl_conf_destroy(conf);
    if (!c) {
        fprintf(stderr, "consumer: %s\n", err);
        return 1;
    }
    int rc = rl_consumer_subscribe(c, topics, 1);
    if (rc) {
        fprintf(stderr, "consumer: subscribe: %s (%s)\n", rl_error_name(rc),
                rl_consumer_last_error(c));
        rl_consumer_destroy(c);
        return 1;
    }

    long consumed = 0;
    int idle_polls = 0, status = 0;
    while (consumed < max && idle_polls < 6) {
        struct rl_record rec;
        rc = rl_consumer_poll(c, 500, &rec);
        if (rc == 0) {
            idle_polls++;
            continue;
        }
        if (rc < 0) {
            fprintf(stderr, "consumer: poll: %s (%s)\n", rl_error_name(rc),
                    rl_consumer_last_error(c));
            if (rl_error_is_retriable(rc))
                continue;
            status = 1;
            break;
        }
        idle_polls = 0;
        consumed++;
        printf("%s/%d@%lld %.*s = %.*s\n", rec.topic, (int)rec.partition, (long long)rec.offset,
               rec.key ? (int)rec.key_len : 0, rec.key ? (const char *)rec.key : "",
               rec.value ? (int)rec.value_len : 0, rec.value ? (const char *)rec.value : "");
        /* Processing done: commit every 50 records (and at the end), at least once. */
        if (consumed % 50 == 0 && (rc = rl_consumer_commit(c)) != 0)
            fprintf(stderr, "consumer: commit: %s\n", rl_error_name(rc));
    }
    if ((rc = rl_consumer_commit(c)) != 0)
        fprintf(stderr, "consumer: commit: %s (%s)\n", rl_error_name(rc),
                rl_consumer_last_error(c));
    rl_consumer_close(c);
    rl_consumer_destroy(c);
    printf("consumed %ld\n", consumed);
    return status;
}
