/*
 * End-to-end tests of libringlog against real ringlogd processes (127.0.0.1, ephemeral ports,
 * temporary data directories, from tests/lib/tl_broker.h): a million records through the
 * producer and back through the consumer, partitioner routing (hash, range, stable across a
 * restart), seeking, the admin API, clear errors, and acknowledged records surviving SIGKILL.
 * Prints "N passed, N failed" and exits non-zero on failure.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "client/ringlog.h"
#include "common/err.h"
#include "tests/integration/tl_proxy.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_delivery.h"

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
            return -1;                                                                          \
        }                                                                                       \
    } while (0)

static struct tl_broker g_broker; /* shared by the tests that need no restart */
static char g_brokers[128];

static struct rl_conf *conf_for(const struct tl_broker *b, const char *const *kv)
{
    struct rl_conf *c = rl_conf_new();
    char addr[128], err[256];
    snprintf(addr, sizeof(addr), "%s:%u", b->host, b->port);
    if (rl_conf_set(c, "bootstrap.servers", addr, err, sizeof(err)))
        fprintf(stderr, "conf: %s\n", err);
    rl_conf_set(c, "request.timeout.ms", "10000", err, sizeof(err));
    for (int i = 0; kv && kv[i]; i += 2)
        if (rl_conf_set(c, kv[i], kv[i + 1], err, sizeof(err)))
            fprintf(stderr, "conf: %s\n", err);
    return c;
}

static int create_topic(const struct tl_broker *b, const char *name, int partitions,
                        const char *const *splits, size_t nsplits)
{
    struct rl_conf *c = conf_for(b, NULL);
    char err[256];
    struct rl_admin *a = rl_admin_new(c, err, sizeof(err));
    const char *keys[] = {"flush.policy"}, *values[] = {"batch"};
    struct rl_topic_spec spec = {
        .name = name, .partitions = partitions,
        .partitioner = splits ? RL_PARTITIONER_RANGE : RL_PARTITIONER_HASH,
        .split_keys = splits, .split_key_count = nsplits,
        .config_keys = keys, .config_values = values, .config_count = 1,
    };
    int rc = rl_admin_create_topic(a, &spec);
    if (rc)
        fprintf(stderr, "  create %s: %s\n", name, rl_admin_last_error(a));
    rl_admin_destroy(a);
    rl_conf_destroy(c);
    return rc;
}

/* --- a million records --------------------------------------------------------------------- */

#define MILLION 1000000

struct million_state {
    int64_t *offset;     /* per record index: offset from its delivery report */
    int32_t *partition;
    atomic_ulong acked, failed;
    int64_t last_offset[8]; /* callbacks run on one thread: no atomics needed */
    long out_of_order;      /* reports whose offset is not after the previous in its partition */
};

static void million_cb(void *ctx, const struct rl_delivery *d)
{
    struct million_state *s = ctx;
    size_t i = (size_t)(uintptr_t)d->opaque;
    if (d->error) {
        if (atomic_fetch_add(&s->failed, 1) < 3)
            fprintf(stderr, "  delivery failed: %s\n", d->error_message);
        return;
    }
    s->offset[i] = d->offset;
    s->partition[i] = d->partition;
    s->out_of_order += d->offset <= s->last_offset[d->partition];
    s->last_offset[d->partition] = d->offset;
    atomic_fetch_add(&s->acked, 1);
}

/* Consumes every partition of `topic` from the earliest offset until `want` records arrived or
 * nothing came for idle_ms; calls fn per record. Returns records seen or a negative code. */
static long consume_all(const struct tl_broker *b, const char *topic, long want, int idle_ms,
                        int (*fn)(void *, const struct rl_record *), void *ctx)
{
    const char *kv[] = {"fetch.max.bytes", "16777216", "max.partition.fetch.bytes", "4194304",
                        "fetch.max.wait.ms", "100", NULL};
    struct rl_conf *c = conf_for(b, kv);
    char err[256];
    struct rl_consumer *k = rl_consumer_new(c, err, sizeof(err));
    long n = 0;
    int rc = rl_consumer_assign_topic(k, topic, RL_OFFSET_EARLIEST);
    uint64_t last = tl_now_ms();
    while (rc >= 0 && n < want && tl_now_ms() - last < (uint64_t)idle_ms) {
        struct rl_record r;
        rc = rl_consumer_poll(k, 100, &r);
        if (rc == 1) {
            n++;
            last = tl_now_ms();
            if (fn && fn(ctx, &r) != 0) {
                rc = -1;
                break;
            }
        } else if (rc < 0 && rlc_retriable(rc)) {
            rc = 0;
        }
    }
    if (rc < 0)
        fprintf(stderr, "  consume: %s\n", rl_consumer_last_error(k));
    rl_consumer_destroy(k);
    rl_conf_destroy(c);
    return rc < 0 ? rc : n;
}

struct verify_state {
    struct million_state *ms;
    uint8_t *seen;
    int64_t last_index[64];
    long bad;
};

static int million_verify(void *ctx, const struct rl_record *r)
{
    struct verify_state *v = ctx;
    char buf[32];
    if (r->value_len <= 0 || r->value_len >= sizeof(buf) || !r->key)
        return fprintf(stderr, "  record at %d/%lld has a bad shape\n", r->partition,
                       (long long)r->offset), -1;
    memcpy(buf, r->value, (size_t)r->value_len);
    buf[r->value_len] = 0;
    long i = strtol(buf + 1, NULL, 10);
    if (i < 0 || i >= MILLION || v->seen[i]++) {
        fprintf(stderr, "  record %ld seen twice or out of range\n", i);
        return -1;
    }
    /* Order within a partition: one sending thread, so indices increase. */
    if (i <= v->last_index[r->partition]) {
        fprintf(stderr, "  partition %d: record %ld after %lld\n", r->partition, i,
                (long long)v->last_index[r->partition]);
        return -1;
    }
    v->last_index[r->partition] = i;
    int32_t want_p = rlc_part_hash(r->key, (size_t)r->key_len, 8);
    if (r->partition != want_p || v->ms->partition[i] != r->partition ||
        v->ms->offset[i] != r->offset) {
        fprintf(stderr, "  record %ld: at %d/%lld, reported %d/%lld, hash says %d\n", i,
                r->partition, (long long)r->offset, v->ms->partition[i],
                (long long)v->ms->offset[i], want_p);
        return -1;
    }
    return 0;
}

/* 1,000,000 keyed records through 8 partitions and back: each arrives exactly once, in order
 * within its partition, in the partition the key hashes to, at the offset its delivery report
 * named; delivery reports come in offset order within each partition. */
static int t_million(void)
{
    CHECK(create_topic(&g_broker, "million", 8, NULL, 0) == 0, "create");
    struct million_state *ms = calloc(1, sizeof(*ms));
    ms->offset = calloc(MILLION, sizeof(int64_t));
    ms->partition = calloc(MILLION, sizeof(int32_t));
    for (int i = 0; i < 8; i++)
        ms->last_offset[i] = -1;
    const char *kv[] = {"batch.size", "1048576", "linger.ms", "5", "max.in.flight.per.partition",
                        "1", NULL};
    struct rl_conf *c = conf_for(&g_broker, kv);
    rl_conf_set_delivery_cb(c, million_cb, ms);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    CHECK(p, "%s", err);
    uint64_t t0 = tl_now_ms();
    for (long i = 0; i < MILLION; i++) {
        char key[16], val[24];
        int kl = snprintf(key, sizeof(key), "k%ld", i % 10007);
        int vl = snprintf(val, sizeof(val), "v%ld", i);
        int rc = rl_producer_send(p, "million", RL_PARTITION_ANY, key, (size_t)kl, val,
                                  (size_t)vl, 0, (void *)(uintptr_t)i);
        CHECK(rc == 0, "send %ld: %s", i, rl_producer_last_error(p));
    }
    CHECK(rl_producer_flush(p, 60000) == 0, "flush: %s", rl_producer_last_error(p));
    uint64_t t1 = tl_now_ms();
    CHECK(rl_producer_destroy(p, 1000) == 0, "destroy");
    CHECK(atomic_load(&ms->acked) == MILLION && atomic_load(&ms->failed) == 0,
          "acked %lu failed %lu", atomic_load(&ms->acked), atomic_load(&ms->failed));
    CHECK(ms->out_of_order == 0, "%ld delivery reports out of partition order",
          ms->out_of_order);
    struct verify_state *v = calloc(1, sizeof(*v));
    v->ms = ms;
    v->seen = calloc(MILLION, 1);
    for (int i = 0; i < 64; i++)
        v->last_index[i] = -1;
    long n = consume_all(&g_broker, "million", MILLION + 1, 2000, million_verify, v);
    uint64_t t2 = tl_now_ms();
    fprintf(stderr, "  produced in %llu ms, consumed in %llu ms\n",
            (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1));
    CHECK(n == MILLION, "consumed %ld records, want %d (nothing missing, nothing extra)", n,
          MILLION);
    free(v->seen);
    free(v);
    free(ms->offset);
    free(ms->partition);
    free(ms);
    rl_conf_destroy(c);
    return 0;
}

/* --- several sending threads ----------------------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 50000

struct thread_arg {
    struct rl_producer *p;
    int id;
    int rc;
};

static void *thread_sender(void *arg)
{
    struct thread_arg *a = arg;
    for (int i = 0; i < PER_THREAD && a->rc == 0; i++) {
        char key[16], val[32];
        int kl = snprintf(key, sizeof(key), "t%d-%d", a->id, i % 97);
        int vl = snprintf(val, sizeof(val), "%d %d", a->id, i);
        a->rc = rl_producer_send(a->p, "threads", RL_PARTITION_ANY, key, (size_t)kl, val,
                                 (size_t)vl, 0, NULL);
    }
    return NULL;
}

struct thread_check {
    int last[THREADS][97]; /* per thread and key: the last sequence seen */
    long n, bad;
};

static int thread_verify(void *ctx, const struct rl_record *r)
{
    struct thread_check *tc = ctx;
    char buf[32];
    int id, seq;
    if (r->value_len <= 0 || r->value_len >= sizeof(buf))
        return -1;
    memcpy(buf, r->value, (size_t)r->value_len);
    buf[r->value_len] = 0;
    if (sscanf(buf, "%d %d", &id, &seq) != 2 || id < 0 || id >= THREADS)
        return -1;
    /* One key lives in one partition, so a thread's records of a key keep their order. */
    tc->bad += seq <= tc->last[id][seq % 97];
    tc->last[id][seq % 97] = seq;
    tc->n++;
    return 0;
}

/* threads: four threads send through one producer at once; every record is acknowledged and
 * read back, and each thread's records of a key stay in the order it sent them. */
static int t_threads(void)
{
    CHECK(create_topic(&g_broker, "threads", 4, NULL, 0) == 0, "create");
    const char *kv[] = {"buffer.memory", "1048576", "batch.size", "65536", NULL};
    struct rl_conf *c = conf_for(&g_broker, kv);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    pthread_t th[THREADS];
    struct thread_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct thread_arg){p, i, 0};
        pthread_create(&th[i], NULL, thread_sender, &args[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].rc == 0, "thread %d: %s", i, rl_producer_last_error(p));
    }
    CHECK(rl_producer_flush(p, 30000) == 0, "%s", rl_producer_last_error(p));
    uint64_t acked, failed;
    rl_producer_counts(p, &acked, &failed);
    CHECK(acked == THREADS * PER_THREAD && failed == 0, "acked %llu failed %llu",
          (unsigned long long)acked, (unsigned long long)failed);
    rl_producer_destroy(p, 1000);
    rl_conf_destroy(c);
    struct thread_check *tc = calloc(1, sizeof(*tc));
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < 97; k++)
            tc->last[i][k] = -1;
    long n = consume_all(&g_broker, "threads", THREADS * PER_THREAD, 3000, thread_verify, tc);
    CHECK(n == THREADS * PER_THREAD && tc->bad == 0, "consumed %ld, %ld out of order", n,
          tc->bad);
    free(tc);
    return 0;
}

/* --- routing ------------------------------------------------------------------------------ */

struct route_state {
    int32_t part[256];
    struct tl_deliveries dv;
};

/* Sends keys[i] for i < n and records the partition each delivery reports. */
static int send_keys(const struct tl_broker *b, const char *topic, const char *const *keys,
                     int n, struct route_state *s)
{
    struct rl_conf *c = conf_for(b, NULL);
    tl_deliveries_init(&s->dv, s->part, 256);
    rl_conf_set_delivery_cb(c, tl_delivery_cb, &s->dv);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = rl_producer_send(p, topic, RL_PARTITION_ANY, keys[i], strlen(keys[i]), "x", 1, 0,
                              (void *)(uintptr_t)i);
    if (rc == 0)
        rc = rl_producer_flush(p, 20000);
    if (rc)
        fprintf(stderr, "  send_keys: %s\n", rl_producer_last_error(p));
    rl_producer_destroy(p, 1000);
    rl_conf_destroy(c);
    return rc;
}

/* hash: a key lands in xxh3(key) % 6 both before and after the broker restarts (metadata and
 * routing survive), so the partition of a key never changes. */
static int t_hash_stable_across_restart(void)
{
    struct tl_broker b;
    CHECK(tl_broker_start(&b, NULL, 10000) == 0, "start broker");
    int rc = create_topic(&b, "stable", 6, NULL, 0);
    CHECK(rc == 0, "create");
    const char *keys[64];
    char store[64][16];
    for (int i = 0; i < 64; i++) {
        snprintf(store[i], sizeof(store[i]), "user-%d", i * 7919);
        keys[i] = store[i];
    }
    struct route_state before, after;
    CHECK(send_keys(&b, "stable", keys, 64, &before) == 0, "send before restart");
    CHECK(tl_broker_stop(&b, SIGTERM, 10000) == 0, "clean stop");
    CHECK(tl_broker_restart(&b, 10000) == 0, "restart");
    CHECK(send_keys(&b, "stable", keys, 64, &after) == 0, "send after restart");
    for (int i = 0; i < 64; i++) {
        int32_t want = rlc_part_hash(keys[i], strlen(keys[i]), 6);
        CHECK(before.part[i] == want && after.part[i] == want,
              "key %s: before %d after %d want %d", keys[i], before.part[i], after.part[i],
              want);
    }
    tl_broker_cleanup(&b);
    return 0;
}

struct range_check {
    long n;
    long wrong;
};

static int range_verify(void *ctx, const struct rl_record *r)
{
    struct range_check *rc = ctx;
    const char *splits[] = {"g", "p"};
    int32_t want = 0;
    for (int i = 0; i < 2; i++)
        want += rlc_key_cmp(splits[i], 1, r->key, (size_t)r->key_len) <= 0;
    rc->wrong += want != r->partition;
    rc->n++;
    return 0;
}

/* range: with split keys g and p, a key goes to the number of splits <= it (a..f -> 0,
 * g..o -> 1, p.. -> 2), both in the delivery report and where the consumer finds it. */
static int t_range_routing(void)
{
    const char *splits[] = {"g", "p"};
    CHECK(create_topic(&g_broker, "ranged", 3, splits, 2) == 0, "create range topic");
    const char *keys[] = {"a", "apple", "f", "fz", "g", "g0", "grape", "o", "ozz", "p", "pear",
                          "zebra", "", "\x7f"};
    int32_t want[] = {0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 0, 2};
    int n = (int)(sizeof(keys) / sizeof(keys[0]));
    struct route_state s;
    CHECK(send_keys(&g_broker, "ranged", keys, n, &s) == 0, "send");
    for (int i = 0; i < n; i++)
        CHECK(s.part[i] == want[i], "key \"%s\" went to %d, want %d", keys[i], s.part[i],
              want[i]);
    struct range_check rc = {0};
    long got = consume_all(&g_broker, "ranged", n, 2000, range_verify, &rc);
    CHECK(got == n && rc.wrong == 0, "consumed %ld (want %d), %ld in the wrong partition", got,
          n, rc.wrong);
    return 0;
}

/* --- compression and keyless records ---------------------------------------------------------- */

struct zstd_check {
    long n, bad;
};

static int zstd_verify(void *ctx, const struct rl_record *r)
{
    struct zstd_check *z = ctx;
    char want[64];
    int len = snprintf(want, sizeof(want), "compressible value %06lld padding padding padding",
                       (long long)(r->key_len > 0 ? strtoll((const char *)r->key + 1, NULL, 10)
                                                  : -1));
    z->bad += r->value_len != (size_t)len || memcmp(r->value, want, (size_t)len) != 0;
    z->n++;
    return 0;
}

/* zstd: batches compressed by the producer come back intact through the consumer. */
static int t_zstd_roundtrip(void)
{
    CHECK(create_topic(&g_broker, "zstd", 2, NULL, 0) == 0, "create");
    const char *kv[] = {"compression", "zstd", "batch.size", "65536", NULL};
    struct rl_conf *c = conf_for(&g_broker, kv);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    for (int i = 0; i < 20000; i++) {
        char key[16], val[64];
        int kl = snprintf(key, sizeof(key), "k%d", i);
        int vl = snprintf(val, sizeof(val), "compressible value %06d padding padding padding",
                          i);
        CHECK(rl_producer_send(p, "zstd", RL_PARTITION_ANY, key, (size_t)kl, val, (size_t)vl,
                               0, NULL) == 0, "send");
    }
    CHECK(rl_producer_flush(p, 20000) == 0, "%s", rl_producer_last_error(p));
    uint64_t acked, failed;
    rl_producer_counts(p, &acked, &failed);
    CHECK(acked == 20000 && failed == 0, "acked %llu", (unsigned long long)acked);
    rl_producer_destroy(p, 1000);
    rl_conf_destroy(c);
    struct zstd_check z = {0};
    long n = consume_all(&g_broker, "zstd", 20000, 3000, zstd_verify, &z);
    CHECK(n == 20000 && z.bad == 0, "consumed %ld, %ld damaged", n, z.bad);
    return 0;
}

struct sticky_state {
    int32_t part[4000];
    struct tl_deliveries dv;
};

/* keyless: records without a key stay in one partition for a whole batch, and successive
 * batches move on, so every partition gets some. */
static int t_keyless_sticky(void)
{
    CHECK(create_topic(&g_broker, "keyless", 4, NULL, 0) == 0, "create");
    const char *kv[] = {"batch.size", "4096", "linger.ms", "1000", NULL};
    struct rl_conf *c = conf_for(&g_broker, kv);
    struct sticky_state *s = calloc(1, sizeof(*s));
    tl_deliveries_init(&s->dv, s->part, 4000);
    rl_conf_set_delivery_cb(c, tl_delivery_cb, &s->dv);
    char err[256], val[100] = {0};
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    for (int i = 0; i < 4000; i++)
        CHECK(rl_producer_send(p, "keyless", RL_PARTITION_ANY, NULL, 0, val, sizeof(val), 0,
                               (void *)(uintptr_t)i) == 0, "send");
    CHECK(rl_producer_flush(p, 20000) == 0, "%s", rl_producer_last_error(p));
    rl_producer_destroy(p, 1000);
    int used[4] = {0}, switches = 0;
    for (int i = 0; i < 4000; i++) {
        CHECK(s->part[i] >= 0 && s->part[i] < 4, "record %d failed", i);
        used[s->part[i]]++;
        switches += i > 0 && s->part[i] != s->part[i - 1];
    }
    /* ~35 records fit in a 4 KiB batch: about 4000/35 switches, each after a full batch. */
    CHECK(used[0] && used[1] && used[2] && used[3], "partitions used %d %d %d %d", used[0],
          used[1], used[2], used[3]);
    CHECK(switches > 50 && switches < 200, "%d partition switches", switches);
    free(s);
    rl_conf_destroy(c);
    return 0;
}

/* --- consumer positions ---------------------------------------------------------------------- */

/* seek: to an offset, to a timestamp (first record with timestamp >= it), to latest (nothing
 * until something new arrives, which then does, with its headers). */
static int t_seek(void)
{
    CHECK(create_topic(&g_broker, "seek", 1, NULL, 0) == 0, "create");
    struct rl_conf *c = conf_for(&g_broker, NULL);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    int64_t t0 = 1700000000000;
    for (int i = 0; i < 100; i++) {
        char v[16];
        int vl = snprintf(v, sizeof(v), "%d", i);
        CHECK(rl_producer_send(p, "seek", 0, NULL, 0, v, (size_t)vl, t0 + i * 10, NULL) == 0,
              "send");
    }
    CHECK(rl_producer_flush(p, 10000) == 0, "flush");
    struct rl_consumer *k = rl_consumer_new(c, err, sizeof(err));
    struct rl_record r;
    CHECK(rl_consumer_assign(k, "seek", 0, 42) == 0, "assign");
    CHECK(rl_consumer_poll(k, 5000, &r) == 1 && r.offset == 42, "offset seek gave %lld",
          (long long)r.offset);
    CHECK(r.timestamp_ms == t0 + 420 && r.key == NULL && r.value_len == 2 &&
          memcmp(r.value, "42", 2) == 0, "record 42 content");
    CHECK(rl_consumer_seek_timestamp(k, "seek", 0, t0 + 555) == 0, "%s",
          rl_consumer_last_error(k));
    CHECK(rl_consumer_poll(k, 5000, &r) == 1 && r.offset == 56, "timestamp seek gave %lld",
          (long long)r.offset);
    CHECK(rl_consumer_seek(k, "seek", 0, RL_OFFSET_LATEST) == 0, "seek latest");
    CHECK(rl_consumer_poll(k, 300, &r) == 0, "a record at latest before any was sent");
    /* Both forms of a produced key: NUL-terminated (key_len 0) and pointer + length. */
    struct rl_header hs[] = {{"trace", "abc", 3, 0}, {"gone-not-this", NULL, 0, 4}};
    struct rl_message m = {.topic = "seek", .partition = 0, .key = "k", .key_len = 1,
                           .value = "new", .value_len = 3, .headers = hs, .header_count = 2};
    CHECK(rl_producer_send_message(p, &m) == 0, "send new");
    CHECK(rl_producer_flush(p, 10000) == 0, "flush");
    CHECK(rl_consumer_poll(k, 5000, &r) == 1 && r.offset == 100 && r.key_len == 1,
          "the new record at 100, got %lld", (long long)r.offset);
    size_t pos = 0;
    struct rl_header h;
    CHECK(r.header_count == 2 && rl_record_header(&r, &pos, &h) == 1 && h.key_len == 5 &&
          !memcmp(h.key, "trace", 5) && h.value_len == 3 && !memcmp(h.value, "abc", 3),
          "first header");
    CHECK(rl_record_header(&r, &pos, &h) == 1 && h.key_len == 4 && !memcmp(h.key, "gone", 4) &&
          h.value == NULL && h.value_len == 0 && rl_record_header(&r, &pos, &h) == 0,
          "second header (null value, key given by length)");
    CHECK(rl_consumer_seek(k, "seek", 0, RL_OFFSET_EARLIEST) == 0, "seek earliest");
    CHECK(rl_consumer_poll(k, 5000, &r) == 1 && r.offset == 0, "earliest gave %lld",
          (long long)r.offset);
    CHECK(rl_consumer_position(k, "seek", 0) == 1, "position after offset 0");
    rl_consumer_destroy(k);
    rl_producer_destroy(p, 1000);
    rl_conf_destroy(c);
    return 0;
}

/* assign while records are buffered: adding a partition mid-stream neither skips nor repeats
 * records of the partitions already assigned. */
static int t_assign_midstream(void)
{
    CHECK(create_topic(&g_broker, "mid", 2, NULL, 0) == 0, "create");
    struct rl_conf *c = conf_for(&g_broker, NULL);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    for (int i = 0; i < 1000; i++)
        CHECK(rl_producer_send(p, "mid", 0, NULL, 0, "a", 1, 0, NULL) == 0, "send");
    for (int i = 0; i < 10; i++)
        CHECK(rl_producer_send(p, "mid", 1, NULL, 0, "b", 1, 0, NULL) == 0, "send");
    CHECK(rl_producer_flush(p, 10000) == 0, "flush");
    rl_producer_destroy(p, 1000);
    struct rl_consumer *k = rl_consumer_new(c, err, sizeof(err));
    struct rl_record r;
    CHECK(rl_consumer_assign(k, "mid", 0, RL_OFFSET_EARLIEST) == 0, "assign 0");
    CHECK(rl_consumer_poll(k, 5000, &r) == 1 && r.offset == 0, "first record");
    CHECK(rl_consumer_assign(k, "mid", 1, RL_OFFSET_EARLIEST) == 0, "assign 1");
    int64_t next[2] = {1, 0};
    for (int n = 0; n < 1009; n++) {
        CHECK(rl_consumer_poll(k, 5000, &r) == 1, "record %d: %s", n, rl_consumer_last_error(k));
        CHECK(r.offset == next[r.partition], "partition %d: offset %lld, want %lld",
              r.partition, (long long)r.offset, (long long)next[r.partition]);
        next[r.partition]++;
    }
    CHECK(next[0] == 1000 && next[1] == 10, "ended at %lld/%lld", (long long)next[0],
          (long long)next[1]);
    CHECK(rl_consumer_poll(k, 200, &r) == 0, "an extra record");
    rl_consumer_destroy(k);
    rl_conf_destroy(c);
    return 0;
}

/* --- admin and errors ----------------------------------------------------------------------- */

/* admin: list, describe (with configs), alter, list offsets, delete; and the errors a person
 * sees for an existing topic, an unknown topic, and bad partition counts. */
static int t_admin(void)
{
    struct rl_conf *c = conf_for(&g_broker, NULL);
    char err[256];
    struct rl_admin *a = rl_admin_new(c, err, sizeof(err));
    struct rl_topic_spec spec = {.name = "adm", .partitions = 3};
    CHECK(rl_admin_create_topic(a, &spec) == 0, "%s", rl_admin_last_error(a));
    CHECK(rl_admin_create_topic(a, &spec) == RL_E_TOPIC_EXISTS, "second create");
    CHECK(strstr(rl_admin_last_error(a), "already exists"), "%s", rl_admin_last_error(a));
    struct rl_topic_spec bad = {.name = "adm-bad", .partitions = 0};
    CHECK(rl_admin_create_topic(a, &bad) == RL_E_INVALID_PARTITIONS, "zero partitions: %s",
          rl_admin_last_error(a));
    const struct rl_topic_info *ti;
    size_t n;
    CHECK(rl_admin_list_topics(a, &ti, &n) == 0, "%s", rl_admin_last_error(a));
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found |= strcmp(ti[i].name, "adm") == 0 && ti[i].partition_count == 3;
    CHECK(found, "adm not listed");
    const char *k[] = {"retention.ms"}, *v[] = {"3600000"};
    CHECK(rl_admin_alter_configs(a, "adm", k, v, 1) == 0, "%s", rl_admin_last_error(a));
    CHECK(rl_admin_describe_topic(a, "adm", &ti) == 0, "%s", rl_admin_last_error(a));
    found = false;
    for (size_t i = 0; i < ti->config_count; i++)
        found |= !strcmp(ti->config_keys[i], "retention.ms") &&
                 !strcmp(ti->config_values[i], "3600000") && !ti->config_is_default[i];
    CHECK(found && ti->partition_count == 3, "describe shows the altered config");
    int64_t off = -5;
    CHECK(rl_admin_list_offsets(a, "adm", 1, RL_OFFSET_LATEST, &off) == 0 && off == 0,
          "latest of an empty partition: %lld", (long long)off);
    CHECK(rl_admin_describe_topic(a, "nope", &ti) == RL_E_UNKNOWN_TOPIC, "describe unknown");
    CHECK(strstr(rl_admin_last_error(a), "does not exist"), "%s", rl_admin_last_error(a));
    CHECK(rl_admin_delete_topic(a, "adm") == 0, "%s", rl_admin_last_error(a));
    CHECK(rl_admin_delete_topic(a, "adm") == RL_E_UNKNOWN_TOPIC, "delete twice");
    rl_admin_destroy(a);
    rl_conf_destroy(c);
    return 0;
}

/* errors: sending to a topic that does not exist fails at once, naming the topic and the
 * command that creates it; an explicit partition past the count is refused. */
static int t_send_errors(void)
{
    struct rl_conf *c = conf_for(&g_broker, NULL);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    int rc = rl_producer_send(p, "orders-missing", RL_PARTITION_ANY, NULL, 0, "v", 1, 0, NULL);
    CHECK(rc == RL_E_UNKNOWN_TOPIC, "rc %d", rc);
    CHECK(strstr(rl_producer_last_error(p), "\"orders-missing\" does not exist; create it first "
                 "(rl_admin_create_topic") && !strstr(rl_producer_last_error(p), "--"),
          "%s", rl_producer_last_error(p));
    CHECK(create_topic(&g_broker, "two", 2, NULL, 0) == 0, "create");
    CHECK(rl_producer_send(p, "two", 2, NULL, 0, "v", 1, 0, NULL) == RL_E_UNKNOWN_PARTITION,
          "partition 2 of 2");
    rl_producer_destroy(p, 1000);
    rl_conf_destroy(c);
    return 0;
}

/* --- crash ---------------------------------------------------------------------------------- */

#define CRASH_MAX 2000000

struct crash_state {
    uint8_t *acked;         /* per record index */
    atomic_long acked_count;
    atomic_long failed_count;
    atomic_bool stop;
    struct rl_producer *p;
    atomic_long sent;
};

static void crash_cb(void *ctx, const struct rl_delivery *d)
{
    struct crash_state *s = ctx;
    if (d->error) {
        if (atomic_fetch_add(&s->failed_count, 1) == 0)
            fprintf(stderr, "  first failure: %s\n", d->error_message);
        return;
    }
    s->acked[(uintptr_t)d->opaque] = 1;
    atomic_fetch_add(&s->acked_count, 1);
}

static void *crash_sender(void *arg)
{
    struct crash_state *s = arg;
    for (long i = 0; i < CRASH_MAX && !atomic_load(&s->stop); i++) {
        char v[24];
        int vl = snprintf(v, sizeof(v), "c%ld", i);
        if (rl_producer_send(s->p, "crash", RL_PARTITION_ANY, v, (size_t)vl, v, (size_t)vl, 0,
                             (void *)(uintptr_t)i) != 0)
            break;
        atomic_store(&s->sent, i + 1);
    }
    return NULL;
}

struct crash_check {
    struct crash_state *s;
    uint8_t *found;
};

static int crash_verify(void *ctx, const struct rl_record *r)
{
    struct crash_check *cc = ctx;
    char buf[24];
    if (r->value_len <= 1 || r->value_len >= sizeof(buf))
        return -1;
    memcpy(buf, r->value, (size_t)r->value_len);
    buf[r->value_len] = 0;
    long i = strtol(buf + 1, NULL, 10);
    if (i >= 0 && i < CRASH_MAX)
        cc->found[i] = 1;
    return 0;
}

/* SIGKILL while a producer sends with acks=1 and flush.policy=batch; restart on the same data:
 * every record whose send was acknowledged is consumed back (duplicates from retries allowed). */
static int t_sigkill_acked_survive(void)
{
    struct tl_broker b;
    CHECK(tl_broker_start(&b, NULL, 10000) == 0, "start broker");
    CHECK(create_topic(&b, "crash", 4, NULL, 0) == 0, "create");
    struct crash_state *s = calloc(1, sizeof(*s));
    s->acked = calloc(CRASH_MAX, 1);
    const char *kv[] = {"acks", "1", "batch.size", "65536", "linger.ms", "2",
                        "delivery.timeout.ms", "30000", "retry.backoff.ms", "50",
                        "buffer.memory", "4194304", NULL};
    struct rl_conf *c = conf_for(&b, kv);
    rl_conf_set_delivery_cb(c, crash_cb, s);
    char err[256];
    s->p = rl_producer_new(c, err, sizeof(err));
    pthread_t th;
    pthread_create(&th, NULL, crash_sender, s);
    uint64_t deadline = tl_now_ms() + 20000;
    while (atomic_load(&s->acked_count) < 50000 && tl_now_ms() < deadline)
        poll(NULL, 0, 5); /* waiting on progress reported by another thread, with a deadline */
    long acked_at_kill = atomic_load(&s->acked_count);
    tl_broker_kill(&b);
    long sent_at_kill = atomic_load(&s->sent);
    poll(NULL, 0, 100); /* let sends run into the dead broker for a moment */
    /* Restart while the sender still runs: it may be blocked on a full buffer, which only the
     * broker's answers can free. */
    int restart_rc = tl_broker_restart(&b, 10000);
    atomic_store(&s->stop, true);
    pthread_join(th, NULL);
    CHECK(acked_at_kill >= 50000, "only %ld acknowledged before the deadline", acked_at_kill);
    CHECK(restart_rc == 0, "restart");
    CHECK(rl_producer_flush(s->p, 40000) == 0, "flush after restart: %s",
          rl_producer_last_error(s->p));
    rl_producer_destroy(s->p, 1000);
    long sent = atomic_load(&s->sent), acked = atomic_load(&s->acked_count);
    fprintf(stderr, "  sent %ld (%ld at kill), acknowledged %ld (%ld at kill), failed %ld\n",
            sent, sent_at_kill, acked, acked_at_kill, atomic_load(&s->failed_count));
    CHECK(acked + atomic_load(&s->failed_count) == sent, "every send settled");
    struct crash_check cc = {s, calloc(CRASH_MAX, 1)};
    long n = consume_all(&b, "crash", CRASH_MAX * 2L, 2000, crash_verify, &cc);
    CHECK(n >= acked, "consumed %ld < acknowledged %ld", n, acked);
    long missing = 0;
    for (long i = 0; i < sent; i++)
        missing += s->acked[i] && !cc.found[i];
    CHECK(missing == 0, "%ld acknowledged records were lost", missing);
    free(cc.found);
    free(s->acked);
    free(s);
    rl_conf_destroy(c);
    tl_broker_cleanup(&b);
    return 0;
}

/* --- a consumer through broker crashes ------------------------------------------------------ */

#define RESTART_RECORDS 200000

struct restart_tally {
    uint8_t *seen;
    long distinct, deliveries;
};

static void restart_count(struct restart_tally *t, const struct rl_record *r)
{
    char buf[24];
    if (r->value_len <= 1 || r->value_len >= sizeof(buf))
        return;
    memcpy(buf, r->value, (size_t)r->value_len);
    buf[r->value_len] = 0;
    long i = strtol(buf + 1, NULL, 10);
    t->deliveries++;
    if (i >= 0 && i < RESTART_RECORDS && !t->seen[i]++)
        t->distinct++;
}

/* consumer_restart: a consumer reading 200,000 records with small fetches (several answers
 * prefetched and waiting in its socket) while the broker is SIGKILLed and restarted three times
 * mid-stream: every record still arrives (at least once). Records fetched but not yet handed
 * out when the connection fails must be fetched again, not skipped. */
static int t_consumer_restart(void)
{
    struct tl_broker b;
    CHECK(tl_broker_start(&b, NULL, 10000) == 0, "start broker");
    int rc = -1;
    struct restart_tally t = {.seen = calloc(RESTART_RECORDS, 1)};
    struct rl_conf *pc = conf_for(&b, NULL), *cc = NULL;
    struct rl_producer *p = NULL;
    struct rl_consumer *k = NULL;
    char err[256];
    if (create_topic(&b, "restart", 4, NULL, 0) != 0 || !t.seen)
        goto out;
    p = rl_producer_new(pc, err, sizeof(err));
    for (long i = 0; p && i < RESTART_RECORDS; i++) {
        char v[24];
        int vl = snprintf(v, sizeof(v), "r%ld", i);
        if (rl_producer_send(p, "restart", RL_PARTITION_ANY, v, (size_t)vl, v, (size_t)vl, 0,
                             NULL) != 0)
            goto out;
    }
    uint64_t acked = 0, failed = 0;
    if (!p || rl_producer_flush(p, 30000) != 0)
        goto out;
    rl_producer_counts(p, &acked, &failed);
    if (acked != RESTART_RECORDS) {
        fprintf(stderr, "  only %llu records acknowledged\n", (unsigned long long)acked);
        goto out;
    }
    const char *kv[] = {"max.partition.fetch.bytes", "8192", "fetch.max.wait.ms", "100",
                        "retry.backoff.ms", "20", "retry.backoff.max.ms", "200", NULL};
    cc = conf_for(&b, kv);
    k = rl_consumer_new(cc, err, sizeof(err));
    if (!k || rl_consumer_assign_topic(k, "restart", RL_OFFSET_EARLIEST) != 4)
        goto out;
    const long kill_at[] = {20000, 70000, 130000};
    size_t kills = 0;
    /* Bounded: 60 s in all, and 5 s without a record once the kills are done (a record that
     * was skipped never comes). */
    uint64_t end = tl_now_ms() + 60000, last = tl_now_ms();
    while (t.distinct < RESTART_RECORDS && tl_now_ms() < end &&
           (kills < 3 || tl_now_ms() - last < 5000)) {
        struct rl_record r;
        int n = rl_consumer_poll(k, 100, &r);
        if (n == 1)
            restart_count(&t, &r), last = tl_now_ms();
        if (n == 1 && t.deliveries % 500 == 0)
            poll(NULL, 0, 1); /* "work": lets answers pile up in the socket */
        if (kills < 3 && t.deliveries >= kill_at[kills]) {
            kills++;
            tl_broker_kill(&b);
            if (tl_broker_restart(&b, 10000) != 0) {
                fprintf(stderr, "  restart %zu failed\n", kills);
                goto out;
            }
        }
    }
    fprintf(stderr, "  %ld of %d records after %zu broker kills (%ld deliveries)\n", t.distinct,
            RESTART_RECORDS, kills, t.deliveries);
    if (kills == 3 && t.distinct == RESTART_RECORDS)
        rc = 0;
out:
    rl_consumer_destroy(k);
    if (p)
        rl_producer_destroy(p, 1000);
    rl_conf_destroy(pc);
    rl_conf_destroy(cc);
    free(t.seen);
    tl_broker_cleanup(&b);
    return rc;
}

/* consumer_silent_path: a consumer reads through a proxy that swallows requests for its first
 * 300 ms of polling, so its first fetch is never answered. With request.timeout.ms 1000 the
 * consumer gives up on it, reconnects and reads everything within a few seconds. */
static int t_consumer_silent_path(void)
{
    struct tl_proxy px;
    CHECK(create_topic(&g_broker, "silent", 1, NULL, 0) == 0, "create");
    CHECK(tl_proxy_start(&px, g_broker.host, g_broker.port, 1) == 0, "proxy");
    struct rl_conf *pc = conf_for(&g_broker, NULL);
    char err[256], addr[64];
    struct rl_producer *p = rl_producer_new(pc, err, sizeof(err));
    int rc = -1;
    long n = 0, want = 2000;
    struct rl_consumer *k = NULL;
    struct rl_conf *cc = NULL;
    for (long i = 0; p && i < want; i++)
        if (rl_producer_send(p, "silent", 0, NULL, 0, "x", 1, 0, NULL) != 0)
            goto out;
    if (!p || rl_producer_flush(p, 10000) != 0)
        goto out;
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", px.port);
    const char *kv[] = {"bootstrap.servers", addr, "request.timeout.ms", "1000",
                        "fetch.max.wait.ms", "100", "max.partition.fetch.bytes", "4096", NULL};
    cc = conf_for(&g_broker, kv);
    k = rl_consumer_new(cc, err, sizeof(err));
    /* Offset 0, not EARLIEST: the first request of the poll is the fetch. */
    if (!k || rl_consumer_assign(k, "silent", 0, 0) != 0)
        goto out;
    uint64_t stalled_at = tl_now_ms(), end = stalled_at + 8000;
    atomic_store(&px.stall, true);
    struct rl_record r;
    n += rl_consumer_poll(k, 300, &r) == 1; /* the fetch vanishes */
    atomic_store(&px.stall, false);
    while (n < want && tl_now_ms() < end)
        n += rl_consumer_poll(k, 100, &r) == 1;
    fprintf(stderr, "  %ld of %ld records, the last %llu ms after the outage began\n", n, want,
            (unsigned long long)(tl_now_ms() - stalled_at));
    rc = n == want ? 0 : -1;
out:
    rl_consumer_destroy(k);
    rl_conf_destroy(cc);
    if (p)
        rl_producer_destroy(p, 1000);
    rl_conf_destroy(pc);
    tl_proxy_stop(&px);
    return rc;
}

/* --- runner --------------------------------------------------------------------------------- */

struct test {
    const char *name;
    int (*fn)(void);
};

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct test tests[] = {
        {"admin", t_admin},
        {"send_errors", t_send_errors},
        {"seek", t_seek},
        {"assign_midstream", t_assign_midstream},
        {"range_routing", t_range_routing},
        {"zstd_roundtrip", t_zstd_roundtrip},
        {"keyless_sticky", t_keyless_sticky},
        {"million", t_million},
        {"threads", t_threads},
        {"hash_stable_across_restart", t_hash_stable_across_restart},
        {"sigkill_acked_survive", t_sigkill_acked_survive},
        {"consumer_restart", t_consumer_restart},
        {"consumer_silent_path", t_consumer_silent_path},
    };
    const char *only = getenv("TEST_ONLY");
    int passed = 0, failed = 0;
    if (tl_broker_start(&g_broker, NULL, 10000) != 0) {
        fprintf(stderr, "cannot start ringlogd (%s)\n", tl_ringlogd_path());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    snprintf(g_brokers, sizeof(g_brokers), "%s:%u", g_broker.host, g_broker.port);
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        if (only && !strstr(tests[i].name, only))
            continue;
        uint64_t t0 = tl_now_ms();
        int rc = tests[i].fn();
        printf("%s %s (%llu ms)\n", rc == 0 ? "ok  " : "FAIL", tests[i].name,
               (unsigned long long)(tl_now_ms() - t0));
        fflush(stdout);
        if (rc == 0)
            passed++;
        else
            failed++;
    }
    if (failed)
        tl_broker_dump_log(&g_broker, 30);
    tl_broker_cleanup(&g_broker);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
