/*
 * Unit tests of libringlog's pure parts (no network): partitioners, retry backoff, configuration
 * parsing (including the idempotence and group keys), JSON escaping, and the producer and
 * consumer refusal paths that need no broker.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client/client_internal.h"
#include "common/err.h"

/* hash: the partition is xxh3-64 of the key bytes modulo the count; pinned with known xxh3
 * values so every client of the same topic routes a key identically. */
Test(partition, hash_matches_xxh3_vectors)
{
    cr_assert_eq(rlc_part_hash("alice", 5, 8), (int32_t)(5593767425381308080ULL % 8));
    cr_assert_eq(rlc_part_hash("bob", 3, 7), (int32_t)(1442208253991303397ULL % 7));
    cr_assert_eq(rlc_part_hash("carol", 5, 100), (int32_t)(16356433469892447140ULL % 100));
    cr_assert_eq(rlc_part_hash("orders-42", 9, 1), 0);
}

/* hash: over many keys every partition is used and none gets far more than its share. */
Test(partition, hash_spreads_keys)
{
    int counts[8] = {0};
    char key[32];
    for (int i = 0; i < 80000; i++) {
        int n = snprintf(key, sizeof(key), "key-%d", i);
        int32_t p = rlc_part_hash(key, (size_t)n, 8);
        cr_assert(p >= 0 && p < 8);
        counts[p]++;
    }
    for (int i = 0; i < 8; i++)
        cr_assert(counts[i] > 9000 && counts[i] < 11000, "partition %d got %d", i, counts[i]);
}

/* range: partition = number of split keys <= key, bytewise, shorter prefix first. */
Test(partition, range_counts_splits_le_key)
{
    const uint8_t *splits[] = {(const uint8_t *)"g", (const uint8_t *)"p"};
    size_t lens[] = {1, 1};
    struct { const char *key; size_t len; int32_t want; } cases[] = {
        {"", 0, 0}, {"a", 1, 0}, {"f\xff", 2, 0}, {"g", 1, 1}, {"g\0", 2, 1}, {"gg", 2, 1},
        {"h", 1, 1}, {"o", 1, 1}, {"p", 1, 2}, {"pa", 2, 2}, {"z", 1, 2}, {"\xff", 1, 2},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int32_t got = rlc_part_range(cases[i].key, cases[i].len, splits, lens, 2);
        cr_assert_eq(got, cases[i].want, "key #%zu: got %d want %d", i, got, cases[i].want);
    }
    cr_assert_eq(rlc_part_range("anything", 8, splits, lens, 0), 0);
}

/* range: agrees with a linear count over many split sets and keys (binary search check). */
Test(partition, range_agrees_with_linear_count)
{
    uint64_t seed = 12345;
    printf("seed %llu\n", (unsigned long long)seed);
    char store[64][4];
    const uint8_t *splits[64];
    size_t lens[64];
    for (int round = 0; round < 200; round++) {
        size_t n = rlc_rand(&seed) % 64;
        for (size_t i = 0; i < n; i++) {
            /* Sorted distinct 3-byte keys: i-th is a base plus increasing steps. */
            unsigned v = (unsigned)(i * 1000 + rlc_rand(&seed) % 900);
            store[i][0] = (char)('a' + v / 2600 % 26);
            store[i][1] = (char)('a' + v / 100 % 26);
            store[i][2] = (char)('a' + v % 100 / 4);
            splits[i] = (const uint8_t *)store[i];
            lens[i] = 3;
        }
        for (size_t i = 1; i < n; i++)
            if (rlc_key_cmp(splits[i - 1], 3, splits[i], 3) >= 0)
                n = i; /* keep the sorted prefix */
        for (int k = 0; k < 50; k++) {
            char key[3] = {(char)('a' + rlc_rand(&seed) % 26), (char)('a' + rlc_rand(&seed) % 26),
                           (char)('a' + rlc_rand(&seed) % 26)};
            size_t klen = 1 + rlc_rand(&seed) % 3;
            int32_t want = 0;
            for (size_t i = 0; i < n; i++)
                want += rlc_key_cmp(splits[i], 3, key, klen) <= 0;
            cr_assert_eq(rlc_part_range(key, klen, splits, lens, n), want);
        }
    }
}

/* backoff: full jitter stays within [0, min(max, base * 2^(attempt-1))] and reaches its cap. */
Test(backoff, full_jitter_bounds)
{
    cr_assert_eq(rlc_backoff_ms(1, 100, 1000, 0), 0);
    cr_assert_eq(rlc_backoff_ms(1, 100, 1000, 100), 100);
    cr_assert_eq(rlc_backoff_ms(1, 100, 1000, 101), 0);
    cr_assert_eq(rlc_backoff_ms(2, 100, 1000, 200), 200);
    cr_assert_eq(rlc_backoff_ms(3, 100, 1000, 400), 400);
    cr_assert_eq(rlc_backoff_ms(5, 100, 1000, 1000), 1000); /* 1600 capped at 1000 */
    cr_assert_eq(rlc_backoff_ms(1000, 100, 1000, 1000), 1000); /* no overflow on huge attempts */
    uint64_t seed = 99;
    int maxseen = 0, minseen = 1 << 30;
    for (int i = 0; i < 10000; i++) {
        int d = rlc_backoff_ms(4, 50, 10000, rlc_rand(&seed));
        cr_assert(d >= 0 && d <= 400);
        maxseen = d > maxseen ? d : maxseen;
        minseen = d < minseen ? d : minseen;
    }
    cr_assert(maxseen > 380 && minseen < 20, "jitter does not span the range: %d..%d", minseen,
              maxseen);
}

/* config: defaults are what client/ringlog.h documents. */
Test(config, defaults)
{
    struct rl_conf *c = rl_conf_new();
    char buf[256];
    cr_assert_eq(rl_conf_get(c, "bootstrap.servers", buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "127.0.0.1:9400");
    rl_conf_get(c, "acks", buf, sizeof(buf));
    cr_assert_str_eq(buf, "all");
    rl_conf_get(c, "enable.idempotence", buf, sizeof(buf));
    cr_assert_str_eq(buf, "true");
    rl_conf_get(c, "batch.size", buf, sizeof(buf));
    cr_assert_str_eq(buf, "262144");
    rl_conf_get(c, "max.in.flight", buf, sizeof(buf));
    cr_assert_str_eq(buf, "5");
    rl_conf_get(c, "auto.offset.reset", buf, sizeof(buf));
    cr_assert_str_eq(buf, "earliest");
    cr_assert_eq(rl_conf_get(c, "no.such.key", buf, sizeof(buf)), RL_E_NOT_FOUND);
    rl_conf_destroy(c);
}

/* config: good values are stored (and read back); bad ones are refused with a message naming
 * the key and what it accepts, leaving the old value. */
Test(config, set_and_validate)
{
    struct rl_conf *c = rl_conf_new();
    char err[256], buf[256];
    cr_assert_eq(rl_conf_set(c, "acks", "all", err, sizeof(err)), 0);
    rl_conf_get(c, "acks", buf, sizeof(buf));
    cr_assert_str_eq(buf, "all");
    cr_assert_eq(rl_conf_set(c, "linger.ms", "20", err, sizeof(err)), 0);
    cr_assert_eq(c->linger_ms, 20);
    cr_assert_eq(rl_conf_set(c, "buffer.memory", "1048576", err, sizeof(err)), 0);
    cr_assert_eq(c->buffer_memory, 1048576u);
    cr_assert_eq(rl_conf_set(c, "fetch.max.bytes", "2000000", err, sizeof(err)), 0);
    cr_assert_eq(c->fetch_max_bytes, 2000000u);
    cr_assert_eq(rl_conf_set(c, "compression", "zstd", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_set(c, "bootstrap.servers", "a:1,b.example:65535", err, sizeof(err)), 0);
    cr_assert_eq(c->broker_count, 2);
    cr_assert_str_eq(c->brokers[1].host, "b.example");
    cr_assert_eq(c->brokers[1].port, 65535);

    cr_assert_eq(rl_conf_set(c, "acks", "2", err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert(strstr(err, "acks") && strstr(err, "0, 1 or all"), "message: %s", err);
    cr_assert_eq(rl_conf_set(c, "linger.ms", "-1", err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert(strstr(err, "linger.ms"), "message: %s", err);
    cr_assert_eq(c->linger_ms, 20);
    cr_assert_eq(rl_conf_set(c, "batch.size", "12k", err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert_eq(rl_conf_set(c, "max.in.flight", "6", err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert_eq(rl_conf_set(c, "lingr.ms", "5", err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert(strstr(err, "unknown configuration key"), "message: %s", err);
    const char *bad_brokers[] = {"", "host", "host:", ":9400", "h:0", "h:70000", "a:1,,b:2",
                                 "h:12x"};
    for (size_t i = 0; i < sizeof(bad_brokers) / sizeof(bad_brokers[0]); i++)
        cr_assert_eq(rl_conf_set(c, "bootstrap.servers", bad_brokers[i], err, sizeof(err)),
                     RL_E_INVALID_CONFIG, "accepted \"%s\"", bad_brokers[i]);
    cr_assert_eq(c->broker_count, 2);
    rl_conf_destroy(c);
}

static const char *esc(const char *s, size_t len)
{
    static char out[256];
    rlc_json_escape((const uint8_t *)s, len, out, sizeof(out));
    return out;
}

/* json: quotes, backslashes and control characters are escaped; valid UTF-8 passes; invalid
 * bytes become \u00XX so the output is always valid JSON. */
Test(json, escaping)
{
    cr_assert_str_eq(esc("plain", 5), "plain");
    cr_assert_str_eq(esc("a\"b\\c", 5), "a\\\"b\\\\c");
    cr_assert_str_eq(esc("l1\nl2\t\r", 7), "l1\\nl2\\t\\r");
    cr_assert_str_eq(esc("\x01\x1f\x7f", 3), "\\u0001\\u001f\\u007f");
    cr_assert_str_eq(esc("a\0b", 3), "a\\u0000b");
    cr_assert_str_eq(esc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14),
                     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    cr_assert_str_eq(esc("\xff\xfe", 2), "\\u00ff\\u00fe");
    cr_assert_str_eq(esc("\xc3", 1), "\\u00c3");               /* truncated sequence */
    cr_assert_str_eq(esc("\xc0\xaf", 2), "\\u00c0\\u00af");    /* overlong */
    cr_assert_str_eq(esc("\xed\xa0\x80", 3), "\\u00ed\\u00a0\\u0080"); /* surrogate */
}

/* json: like snprintf, the return is the full length even when the buffer is too small, and the
 * output is always terminated. */
Test(json, truncation)
{
    char out[4];
    size_t n = rlc_json_escape((const uint8_t *)"\"\"\"", 3, out, sizeof(out));
    cr_assert_eq(n, 6);
    cr_assert_eq(strlen(out), 3);
    cr_assert_eq(rlc_json_escape((const uint8_t *)"abc", 3, NULL, 0), 3);
}

/* producer: with no broker there, a blocking send (max.block.ms > 0) fails at once with
 * RL_E_BROKER_UNAVAILABLE and a message naming the address; a non-blocking one
 * (max.block.ms=0) queues the record, which fails through its callback after
 * delivery.timeout.ms as TIMED_OUT, NOT_PERSISTED, with a message naming the address. */
struct unreach_cb {
    int calls, error, status, partition;
    char msg[512];
};

static void unreach_delivery(void *ctx, const struct rl_delivery *d)
{
    struct unreach_cb *u = ctx;
    u->calls++;
    u->error = d->error;
    u->status = (int)d->status;
    u->partition = d->partition;
    snprintf(u->msg, sizeof(u->msg), "%s", d->error_message);
}

Test(producer, unreachable_broker_fails_clearly)
{
    for (int nonblocking = 0; nonblocking < 2; nonblocking++) {
        struct rl_conf *c = rl_conf_new();
        char err[256];
        struct unreach_cb u = {0};
        cr_assert_eq(rl_conf_set(c, "bootstrap.servers", "127.0.0.1:1", err, sizeof(err)), 0);
        cr_assert_eq(rl_conf_set(c, "delivery.timeout.ms", "400", err, sizeof(err)), 0);
        cr_assert_eq(rl_conf_set(c, "max.block.ms", nonblocking ? "0" : "5000", err,
                                 sizeof(err)), 0);
        rl_conf_set_delivery_cb(c, unreach_delivery, &u);
        struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
        cr_assert_not_null(p, "%s", err);
        int64_t t0 = rlc_now_ms();
        int rc = rl_producer_send(p, "orders", RL_PARTITION_ANY, "k", 1, "v", 1, 0, NULL);
        cr_assert(rlc_now_ms() - t0 < 2000);
        if (!nonblocking) {
            cr_assert_eq(rc, RL_E_BROKER_UNAVAILABLE, "send: %s", rl_error_name(rc));
            cr_assert(strstr(rl_producer_last_error(p), "127.0.0.1:1"), "message: %s",
                      rl_producer_last_error(p));
            cr_assert_str_eq(rl_last_error(), rl_producer_last_error(p));
        } else {
            cr_assert_eq(rc, 0, "send: %s", rl_error_name(rc));
        }
        cr_assert_eq(rl_producer_flush(p, RL_TIMEOUT_INFINITE), 0);
        cr_assert_eq(u.calls, nonblocking);
        if (nonblocking) {
            cr_assert_eq(u.error, RL_E_TIMED_OUT);
            cr_assert_eq(u.status, RL_DELIVERY_NOT_PERSISTED);
            cr_assert_eq(u.partition, -1);
            cr_assert(strstr(u.msg, "127.0.0.1:1") && strstr(u.msg, "orders"), "message: %s",
                      u.msg);
        }
        cr_assert_eq(rl_producer_destroy(p, 1000), 0);
        rl_conf_destroy(c);
    }
}

/* errors: the public enum is the broker's list (spot checks of each group; the build checks
 * all), retriable and fatal are told apart, and a metadata call to no broker answers
 * BROKER_UNAVAILABLE rather than an errno. */
Test(errors, public_codes_and_classes)
{
    cr_assert_eq(RL_E_INVALID_ARGUMENT, -5000);
    cr_assert_eq(RL_E_FULL, -5002);
    cr_assert_eq(RL_E_BATCH_CHECKSUM, -5103);
    cr_assert_eq(RL_E_UNKNOWN_TOPIC, -5305);
    cr_assert_eq(RL_E_BROKER_UNAVAILABLE, -5317);
    cr_assert_eq(RL_E_PRODUCER_FENCED, -5402);
    cr_assert_eq(RL_E_REBALANCE_IN_PROGRESS, -5504);
    cr_assert(rl_error_is_retriable(RL_E_BROKER_UNAVAILABLE));
    cr_assert(rl_error_is_retriable(RL_E_NOT_LEADER));
    cr_assert(rl_error_is_retriable(-ECONNRESET));
    cr_assert(!rl_error_is_retriable(RL_E_UNKNOWN_TOPIC));
    cr_assert(!rl_error_is_retriable(0));
    cr_assert(rl_error_is_fatal(RL_E_PRODUCER_FENCED));
    cr_assert(!rl_error_is_fatal(RL_E_BROKER_UNAVAILABLE));
    cr_assert(!rl_error_is_fatal(RL_E_UNKNOWN_TOPIC));

    struct rl_conf *c = rl_conf_new();
    char err[256];
    cr_assert_eq(rl_conf_set(c, "bootstrap.servers", "127.0.0.1:1", err, sizeof(err)), 0);
    struct rl_admin *a = rl_admin_new(c, err, sizeof(err));
    cr_assert_not_null(a, "%s", err);
    const struct rl_topic_info *ti;
    size_t n;
    int rc = rl_admin_list_topics(a, &ti, &n);
    cr_assert_eq(rc, RL_E_BROKER_UNAVAILABLE, "got %d (%s)", rc, rl_error_name(rc));
    cr_assert(strstr(rl_admin_last_error(a), "127.0.0.1:1"), "%s", rl_admin_last_error(a));
    rl_admin_destroy(a);
    rl_conf_destroy(c);
}

/* consumer: polling with nothing assigned is an error that says what to do. */
Test(consumer, poll_without_assignment)
{
    struct rl_conf *c = rl_conf_new();
    char err[256];
    struct rl_consumer *k = rl_consumer_new(c, err, sizeof(err));
    cr_assert_not_null(k);
    struct rl_record r;
    cr_assert_eq(rl_consumer_poll(k, 10, &r), RL_E_INVALID_ARGUMENT);
    cr_assert(strstr(rl_consumer_last_error(k), "assign"));
    rl_consumer_destroy(k);
    rl_conf_destroy(c);
}

/* config: the delivery-guarantee keys have their documented defaults, accept what they document
 * and refuse the rest with a message naming the allowed values. */
Test(config, delivery_keys)
{
    struct rl_conf *c = rl_conf_new();
    char buf[64], err[256];
    const char *defaults[][2] = {
        {"enable.idempotence", "true"}, {"max.in.flight.per.partition", "5"},
        {"group.id", ""}, {"session.timeout.ms", "10000"}, {"heartbeat.interval.ms", "3000"},
        {"rebalance.timeout.ms", "30000"}, {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "5000"}, {"partition.assignment.strategy", "range"},
    };
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        cr_assert_eq(rl_conf_get(c, defaults[i][0], buf, sizeof(buf)), 0, "%s", defaults[i][0]);
        cr_assert_str_eq(buf, defaults[i][1], "%s", defaults[i][0]);
    }
    cr_assert_eq(rl_conf_set(c, "enable.idempotence", "false", err, sizeof(err)), 0);
    rl_conf_get(c, "enable.idempotence", buf, sizeof(buf));
    cr_assert_str_eq(buf, "false");
    cr_assert_eq(rl_conf_set(c, "enable.auto.commit", "maybe", err, sizeof(err)),
                 RL_E_INVALID_CONFIG);
    cr_assert(strstr(err, "true or false"), "%s", err);
    cr_assert_eq(rl_conf_set(c, "partition.assignment.strategy", "roundrobin", err,
                             sizeof(err)), 0);
    cr_assert_eq(rl_conf_set(c, "partition.assignment.strategy", "sticky", err, sizeof(err)),
                 RL_E_INVALID_CONFIG);
    cr_assert(strstr(err, "range, roundrobin or cooperative-sticky"), "%s", err);
    cr_assert_eq(rl_conf_set(c, "partition.assignment.strategy", "cooperative-sticky", err,
                             sizeof(err)), 0);
    rl_conf_get(c, "partition.assignment.strategy", buf, sizeof(buf));
    cr_assert_str_eq(buf, "cooperative-sticky");
    cr_assert_eq(rl_conf_set(c, "group.id", "payments", err, sizeof(err)), 0);
    rl_conf_get(c, "group.id", buf, sizeof(buf));
    cr_assert_str_eq(buf, "payments");
    char longid[300];
    memset(longid, 'g', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = 0;
    cr_assert_eq(rl_conf_set(c, "group.id", longid, err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert_eq(rl_conf_set(c, "session.timeout.ms", "0", err, sizeof(err)),
                 RL_E_INVALID_CONFIG);
    rl_conf_destroy(c);
}

/* consumer: subscribing needs group.id, and committing needs a subscription; both say so
 * without touching the network. */
Test(consumer, group_calls_need_a_group)
{
    struct rl_conf *c = rl_conf_new();
    char err[256];
    struct rl_consumer *k = rl_consumer_new(c, err, sizeof(err));
    const char *topics[1] = {"orders"};
    cr_assert_eq(rl_consumer_subscribe(k, topics, 1), RL_E_INVALID_CONFIG);
    cr_assert(strstr(rl_consumer_last_error(k), "group.id"), "%s", rl_consumer_last_error(k));
    cr_assert_eq(rl_consumer_commit(k), RL_E_INVALID_ARGUMENT);
    cr_assert(strstr(rl_consumer_last_error(k), "subscription"));
    cr_assert_eq(rl_consumer_commit_offset(k, "orders", 0, 5), RL_E_INVALID_ARGUMENT);
    cr_assert_eq(rl_consumer_close(k), 0); /* nothing to leave */
    rl_consumer_destroy(k);
    rl_conf_destroy(c);
}

/* config: Kafka's key names are primary and ringlog 0.1's still work as aliases, reading and
 * writing the same setting. */
Test(config, kafka_names_and_aliases)
{
    struct rl_conf *c = rl_conf_new();
    char err[256], buf[64];
    cr_assert_eq(rl_conf_set(c, "compression", "zstd", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rl_conf_get(c, "compression.type", buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "zstd");
    cr_assert_eq(rl_conf_set(c, "max.in.flight.requests.per.connection", "2", err,
                             sizeof(err)), 0, "%s", err);
    cr_assert_eq(rl_conf_get(c, "max.in.flight", buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "2");
    cr_assert_eq(rl_conf_set(c, "connect.timeout.ms", "1234", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_get(c, "socket.connection.setup.timeout.ms", buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "1234");
    cr_assert_eq(rl_conf_set(c, "compression.zstd.level", "3", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_get(c, "compression.level", buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "3");
    cr_assert_eq(rl_conf_set(c, "compression.type", "lz9", err, sizeof(err)),
                 RL_E_INVALID_CONFIG);
    cr_assert(strstr(err, "none or zstd"), "%s", err);
    cr_assert_eq(rl_conf_set(c, "log.level", "loud", err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert_eq(rl_conf_set(c, "log.level", "warn", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_get(c, "log.level", buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "warn");
    rl_conf_destroy(c);
}

/* config: rl_conf_get says when a value did not fit, and rl_conf_get_size how much room the
 * whole value needs. */
Test(config, get_reports_size)
{
    struct rl_conf *c = rl_conf_new();
    char err[256], buf[8];
    const char *servers = "10.0.0.1:9400,10.0.0.2:9400";
    cr_assert_eq(rl_conf_set(c, "bootstrap.servers", servers, err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_get_size(c, "bootstrap.servers"), strlen(servers) + 1);
    cr_assert_eq(rl_conf_get(c, "bootstrap.servers", buf, sizeof(buf)), RL_E_FULL);
    cr_assert_str_eq(buf, "10.0.0.");
    char big[64];
    cr_assert_eq(rl_conf_get(c, "bootstrap.servers", big, rl_conf_get_size(c,
                                                                          "bootstrap.servers")),
                 0);
    cr_assert_str_eq(big, servers);
    cr_assert_eq(rl_conf_get_size(c, "acks"), 4);
    cr_assert_eq(rl_conf_get(c, "acks", buf, 1), RL_E_FULL);
    cr_assert_eq(rl_conf_get_size(c, "no.such.key"), 0);
    cr_assert_eq(rl_conf_get(c, "no.such.key", buf, sizeof(buf)), RL_E_NOT_FOUND);
    rl_conf_destroy(c);
}

/* config: contradictory settings are refused when a handle is made, naming both keys;
 * idempotence left at its default reads false with acks=0, and asked for with acks=0 is an
 * error. */
Test(config, cross_key_checks)
{
    char err[256], buf[16];
    struct rl_conf *c = rl_conf_new();
    cr_assert_eq(rl_conf_check(c, err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_set(c, "session.timeout.ms", "100", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_set(c, "heartbeat.interval.ms", "20000", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_check(c, err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert(strstr(err, "heartbeat.interval.ms=20000") && strstr(err, "session.timeout.ms=100"),
              "%s", err);
    cr_assert_null(rl_producer_new(c, err, sizeof(err)));
    cr_assert(strstr(rl_last_error(), "heartbeat.interval.ms"), "%s", rl_last_error());
    rl_conf_destroy(c);

    c = rl_conf_new();
    cr_assert_eq(rl_conf_set(c, "retry.backoff.ms", "5000", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_check(c, err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert(strstr(err, "retry.backoff.max.ms"), "%s", err);
    rl_conf_destroy(c);

    c = rl_conf_new();
    cr_assert_eq(rl_conf_set(c, "acks", "0", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_get(c, "enable.idempotence", buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "false");
    cr_assert_eq(rl_conf_check(c, err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_set(c, "enable.idempotence", "true", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_check(c, err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert(strstr(err, "enable.idempotence=true") && strstr(err, "acks=0"), "%s", err);
    cr_assert_null(rl_producer_new(c, err, sizeof(err)));
    rl_conf_destroy(c);

    /* Kafka's rule: idempotence needs acks=all; acks=1 turns the default off and refuses an
     * explicit true (before, only acks=0 did). */
    c = rl_conf_new();
    cr_assert_eq(rl_conf_set(c, "acks", "1", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_get(c, "enable.idempotence", buf, sizeof(buf)), 0);
    cr_assert_str_eq(buf, "false");
    cr_assert_eq(rl_conf_check(c, err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_set(c, "enable.idempotence", "true", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_check(c, err, sizeof(err)), RL_E_INVALID_CONFIG);
    cr_assert(strstr(err, "enable.idempotence=true needs acks=all") && strstr(err, "acks=1"),
              "%s", err);
    cr_assert_eq(rl_conf_set(c, "acks", "all", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_check(c, err, sizeof(err)), 0);
    rl_conf_destroy(c);

    /* A consumer is held to the same checks as a producer. */
    c = rl_conf_new();
    cr_assert_eq(rl_conf_set(c, "session.timeout.ms", "100", err, sizeof(err)), 0);
    cr_assert_null(rl_consumer_new(c, err, sizeof(err)));
    cr_assert(strstr(err, "heartbeat.interval.ms") && strstr(err, "session.timeout.ms=100"),
              "%s", err);
    rl_conf_destroy(c);
}

/* Library messages name configuration keys, never the command-line tool's flags: a broker
 * that cannot be reached is reported with bootstrap.servers. */
Test(config, messages_name_keys_not_cli_flags)
{
    char err[256];
    struct rl_conf *c = rl_conf_new();
    cr_assert_eq(rl_conf_set(c, "bootstrap.servers", "127.0.0.1:1", err, sizeof(err)), 0);
    cr_assert_eq(rl_conf_set(c, "request.timeout.ms", "1000", err, sizeof(err)), 0);
    struct rl_admin *a = rl_admin_new(c, err, sizeof(err));
    cr_assert_not_null(a, "%s", err);
    const struct rl_topic_info *ti;
    size_t n;
    cr_assert_lt(rl_admin_list_topics(a, &ti, &n), 0);
    const char *msg = rl_admin_last_error(a);
    cr_assert(strstr(msg, "bootstrap.servers") && !strstr(msg, "--"), "%s", msg);
    rl_admin_destroy(a);
    rl_conf_destroy(c);
}
