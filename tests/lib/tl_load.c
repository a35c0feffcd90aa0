/*
 * tl_load: see tl_load.h.
 */
#include "tests/lib/tl_load.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/tl_broker.h"

#define ACK_WAIT_MS 30000
#define FLUSH_MS 120000

static void conf_set(struct rl_conf *conf, const char *key, const char *value)
{
    char err[512];
    cr_assert_eq(rl_conf_set(conf, key, value, err, sizeof(err)), 0, "%s=%s: %s", key, value,
                 err);
}

static void conf_set_ms(struct rl_conf *conf, const char *key, uint32_t ms)
{
    char value[16];
    snprintf(value, sizeof(value), "%" PRIu32, ms);
    conf_set(conf, key, value);
}

struct rl_conf *tl_load_client_conf_new(const struct tl_load *l, rl_delivery_cb cb, void *ctx)
{
    struct rl_conf *conf = rl_conf_new();
    cr_assert(conf);
    conf_set(conf, "bootstrap.servers", l->boot);
    conf_set(conf, "acks", "all");
    conf_set(conf, "enable.idempotence", "true");
    conf_set_ms(conf, "delivery.timeout.ms", l->conf.delivery_timeout_ms);
    conf_set_ms(conf, "retry.backoff.ms", l->conf.retry_backoff_ms);
    conf_set_ms(conf, "retry.backoff.max.ms", l->conf.retry_backoff_max_ms);
    conf_set(conf, "log.level", "error");
    if (cb)
        rl_conf_set_delivery_cb(conf, cb, ctx);
    return conf;
}

/* Notes an acknowledgement of the gap's partition at `now`. */
static void gap_note(struct tl_load_gap *g, uint64_t now)
{
    uint64_t last = atomic_exchange(&g->last_ms, now);
    uint64_t gap = last && now > last ? now - last : 0;
    if (gap > atomic_load(&g->longest_ms)) {
        atomic_store(&g->longest_ms, gap);
        atomic_store(&g->longest_end_ms, now);
    }
}

/* The producer's delivery callback: counts, and the gap of the acknowledged partition. */
static void on_delivery(void *ctx, const struct rl_delivery *d)
{
    struct tl_load *l = ctx;
    tl_cluster_acks_on_delivery(&l->acks, d);
    if (d->error == 0 && d->partition >= 0 && d->partition < l->conf.partitions)
        gap_note(&l->gaps[d->partition], tl_now_ms());
}

/* The sender thread: the keyed stream, paced, until the load is stopped or a send fails (the
 * test then sees the acknowledgements fall short). */
static void *send_until_stopped(void *arg)
{
    struct tl_load *l = arg;
    for (int i = 0; !atomic_load(&l->stop); i++) {
        if (tl_cluster_keyed_send(l->producer, l->conf.topic, i, l->conf.keys) != 0) {
            fprintf(stderr, "send %d: %s\n", i, rl_producer_last_error(l->producer));
            break;
        }
        atomic_store(&l->sent, i + 1);
        if (i % l->conf.pace_every == l->conf.pace_every - 1)
            usleep(l->conf.pace_us); /* pacing, not synchronization */
    }
    return NULL;
}

void tl_load_start(struct tl_load *l, const char *boot, const struct tl_load_conf *conf)
{
    cr_assert(conf->topic && conf->partitions > 0 &&
              conf->partitions <= TL_LOAD_MAX_PARTITIONS && conf->keys > 0 &&
              conf->pace_every > 0);
    memset(l, 0, sizeof(*l));
    l->conf = *conf;
    l->boot = boot;
    char err[512];
    struct rl_conf *pconf = tl_load_client_conf_new(l, on_delivery, l);
    l->producer = rl_producer_new(pconf, err, sizeof(err));
    rl_conf_destroy(pconf);
    cr_assert(l->producer, "%s", err);
    cr_assert_eq(pthread_create(&l->sender, NULL, send_until_stopped, l), 0);
}

void tl_load_wait_acks(struct tl_load *l, uint64_t more, const char *when)
{
    tl_cluster_acks_wait(&l->acks, more, ACK_WAIT_MS, when);
}

void tl_load_gaps_reset(struct tl_load *l)
{
    uint64_t now = tl_now_ms();
    atomic_store(&l->reset_ms, now);
    for (int k = 0; k < l->conf.partitions; k++) {
        atomic_store(&l->gaps[k].last_ms, now);
        atomic_store(&l->gaps[k].longest_ms, 0);
        atomic_store(&l->gaps[k].longest_end_ms, now);
    }
}

uint64_t tl_load_longest_gap(struct tl_load *l, int *part)
{
    uint64_t now = tl_now_ms(), longest = 0;
    for (int k = 0; k < l->conf.partitions; k++) {
        uint64_t g = atomic_load(&l->gaps[k].longest_ms);
        uint64_t open = now - atomic_load(&l->gaps[k].last_ms);
        if (open > g)
            g = open;
        if (g > longest) {
            longest = g;
            *part = k;
        }
    }
    return longest;
}

uint64_t tl_load_gap_began(struct tl_load *l, int part)
{
    const struct tl_load_gap *g = &l->gaps[part];
    uint64_t began = atomic_load(&g->longest_end_ms) - atomic_load(&g->longest_ms);
    uint64_t reset = atomic_load(&l->reset_ms);
    return began > reset ? began - reset : 0;
}

int tl_load_stop(struct tl_load *l)
{
    atomic_store(&l->stop, true);
    pthread_join(l->sender, NULL);
    cr_assert_eq(rl_producer_flush(l->producer, FLUSH_MS), 0, "flush: %s",
                 rl_producer_last_error(l->producer));
    int records = atomic_load(&l->sent);
    tl_cluster_acks_expect(&l->acks, records);
    rl_producer_destroy(l->producer, 5000);
    l->producer = NULL;
    return records;
}

struct rl_consumer *tl_load_reader_new(const struct tl_load *l)
{
    char err[512];
    struct rl_conf *conf = tl_load_client_conf_new(l, NULL, NULL);
    struct rl_consumer *c = rl_consumer_new(conf, err, sizeof(err));
    rl_conf_destroy(conf);
    cr_assert(c, "%s", err);
    cr_assert_eq(rl_consumer_assign_topic(c, l->conf.topic, RL_OFFSET_EARLIEST),
                 l->conf.partitions, "%s", rl_consumer_last_error(c));
    return c;
}
