/*
 * config: the `key = value` settings of every libringlog handle, checked when set so a typo
 * fails at start-up with a message naming the key and what it accepts, not later with odd
 * behaviour. Where it sits: application -> rl_conf -> producer / consumer / admin (each copies
 * the struct when it is created, so a configuration can be reused or freed at once).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"

void rlc_set_err(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

void rlc_conf_defaults(struct rl_conf *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->brokers[0].host, sizeof(c->brokers[0].host), "127.0.0.1");
    c->brokers[0].port = 9400;
    c->broker_count = 1;
    snprintf(c->client_id, sizeof(c->client_id), "ringlog");
    c->request_timeout_ms = 30000;
    c->connect_timeout_ms = 5000;
    c->retry_backoff_ms = 100;
    c->retry_backoff_max_ms = 1000;
    c->acks = -1; /* all, as Kafka since 3.0: what idempotence needs */
    c->batch_size = 256 * 1024;
    c->linger_ms = 5;
    c->compression = BATCH_CODEC_NONE;
    c->compression_level = 1;
    c->buffer_memory = 64u * 1024 * 1024;
    c->max_block_ms = 60000;
    c->delivery_timeout_ms = 120000;
    c->max_in_flight = 5;
    c->max_in_flight_per_partition = 5;
    c->fetch_min_bytes = 1;
    c->fetch_max_wait_ms = 500;
    c->fetch_max_bytes = 50u * 1024 * 1024;
    c->max_partition_fetch_bytes = 1024 * 1024;
    c->auto_offset_reset = RL_OFFSET_EARLIEST;
    c->enable_idempotence = true;
    c->session_timeout_ms = 10000;
    c->heartbeat_interval_ms = 3000;
    c->max_poll_interval_ms = 300000;
    c->rebalance_timeout_ms = 30000;
    c->enable_auto_commit = true;
    c->auto_commit_interval_ms = 5000;
    snprintf(c->assignor, sizeof(c->assignor), "range");
    c->log_level = rl_log_get_level(); /* RINGLOG_LOG, else info */
}

struct rl_conf *rl_conf_new(void)
{
    struct rl_conf *c = malloc(sizeof(*c));
    if (c)
        rlc_conf_defaults(c);
    return c;
}

struct rl_conf *rl_conf_dup(const struct rl_conf *conf)
{
    struct rl_conf *c = malloc(sizeof(*c));
    if (c)
        *c = *conf;
    return c;
}

void rl_conf_destroy(struct rl_conf *conf)
{
    free(conf);
}

void rl_conf_set_delivery_cb(struct rl_conf *conf, rl_delivery_cb cb, void *ctx)
{
    conf->delivery_cb = cb;
    conf->delivery_ctx = ctx;
}

void rl_conf_set_rebalance_cb(struct rl_conf *conf, rl_rebalance_cb cb, void *ctx)
{
    conf->rebalance_cb = cb;
    conf->rebalance_ctx = ctx;
}

void rl_conf_set_log_cb(struct rl_conf *conf, rl_log_cb cb, void *ctx)
{
    conf->log_cb = cb;
    conf->log_ctx = ctx;
}

void rlc_log_enter(const struct rl_conf *conf, struct rlc_log_scope *saved)
{
    struct rl_log_sink sink = {.fn = conf->log_cb, .ctx = conf->log_ctx,
                               .level = (enum rl_log_level)conf->log_level, .set = 1};
    struct rl_log_sink old;
    rl_log_swap_thread_sink(&sink, &old);
    saved->fn = (void *)old.fn;
    saved->ctx = old.ctx;
    saved->level = (int)old.level;
    saved->set = old.set;
}

void rlc_log_leave(const struct rlc_log_scope *saved)
{
    struct rl_log_sink old = {.fn = (rl_log_sink_fn)saved->fn, .ctx = saved->ctx,
                              .level = (enum rl_log_level)saved->level, .set = saved->set};
    rl_log_swap_thread_sink(&old, NULL);
}

int rlc_parse_brokers(const char *s, struct rlc_addr *addrs, int max, char *err, size_t errlen)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0)
            goto bad;
        if (n == max) {
            rlc_set_err(err, errlen, "too many brokers in \"%s\" (at most %d)", s, max);
            return RL_E_INVALID_CONFIG;
        }
        const char *colon = memrchr(p, ':', len);
        if (!colon || colon == p || (size_t)(colon - p) >= RLC_HOST_MAX)
            goto bad;
        char port[8];
        size_t plen = len - (size_t)(colon - p) - 1;
        if (plen == 0 || plen >= sizeof(port))
            goto bad;
        memcpy(port, colon + 1, plen);
        port[plen] = 0;
        char *pe;
        long v = strtol(port, &pe, 10);
        if (*pe || v < 1 || v > 65535)
            goto bad;
        memcpy(addrs[n].host, p, (size_t)(colon - p));
        addrs[n].host[colon - p] = 0;
        addrs[n].port = (uint16_t)v;
        n++;
        p += len;
        if (*p == ',')
            p++;
    }
    if (n == 0)
        goto bad;
    return n;
bad:
    rlc_set_err(err, errlen,
                "bad broker list \"%s\": expected host:port[,host:port...], e.g. 127.0.0.1:9400",
                s);
    return RL_E_INVALID_CONFIG;
}

/* Parses a decimal integer in [min, max]; returns false when the text is not one. */
static bool parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

enum key_kind { K_INT, K_SIZE, K_SPECIAL };

/* Every key, where its value lives, and its bounds: one table, so get and set cannot drift. */
struct key_def {
    const char *name;
    enum key_kind kind;
    size_t off;
    long long min, max;
};

/* Names of ringlog 0.1 that Kafka spells differently: still accepted, read and written as the
 * Kafka name. */
static const struct {
    const char *alias, *name;
} aliases[] = {
    {"compression", "compression.type"},
    {"compression.level", "compression.zstd.level"},
    {"max.in.flight", "max.in.flight.requests.per.connection"},
    {"connect.timeout.ms", "socket.connection.setup.timeout.ms"},
};

#define OFF(f) offsetof(struct rl_conf, f)
static const struct key_def keys[] = {
    {"bootstrap.servers", K_SPECIAL, 0, 0, 0},
    {"client.id", K_SPECIAL, 0, 0, 0},
    {"acks", K_SPECIAL, 0, 0, 0},
    {"compression.type", K_SPECIAL, 0, 0, 0},
    {"log.level", K_SPECIAL, 0, 0, 0},
    {"auto.offset.reset", K_SPECIAL, 0, 0, 0},
    {"enable.idempotence", K_SPECIAL, 0, 0, 0},
    {"enable.auto.commit", K_SPECIAL, 0, 0, 0},
    {"group.id", K_SPECIAL, 0, 0, 0},
    {"partition.assignment.strategy", K_SPECIAL, 0, 0, 0},
    {"session.timeout.ms", K_INT, OFF(session_timeout_ms), 1, 3600000},
    {"heartbeat.interval.ms", K_INT, OFF(heartbeat_interval_ms), 1, 3600000},
    {"max.poll.interval.ms", K_INT, OFF(max_poll_interval_ms), 1, 86400000},
    {"rebalance.timeout.ms", K_INT, OFF(rebalance_timeout_ms), 1, 3600000},
    {"auto.commit.interval.ms", K_INT, OFF(auto_commit_interval_ms), 1, 86400000},
    {"request.timeout.ms", K_INT, OFF(request_timeout_ms), 1, 3600000},
    {"socket.connection.setup.timeout.ms", K_INT, OFF(connect_timeout_ms), 1, 600000},
    {"retry.backoff.ms", K_INT, OFF(retry_backoff_ms), 1, 600000},
    {"retry.backoff.max.ms", K_INT, OFF(retry_backoff_max_ms), 1, 600000},
    {"batch.size", K_SIZE, OFF(batch_size), 1024, RL_BATCH_MAX_BYTES - 4096},
    {"linger.ms", K_INT, OFF(linger_ms), 0, 600000},
    {"compression.zstd.level", K_INT, OFF(compression_level), 1, 19},
    {"buffer.memory", K_SIZE, OFF(buffer_memory), 65536, 1LL << 40},
    {"max.block.ms", K_INT, OFF(max_block_ms), 0, 3600000},
    {"delivery.timeout.ms", K_INT, OFF(delivery_timeout_ms), 1, 86400000},
    {"max.in.flight.requests.per.connection", K_INT, OFF(max_in_flight), 1, 5},
    {"max.in.flight.per.partition", K_INT, OFF(max_in_flight_per_partition), 1, 5},
    {"fetch.min.bytes", K_INT, OFF(fetch_min_bytes), 0, RLC_MAX_FRAME_BYTES},
    {"fetch.max.wait.ms", K_INT, OFF(fetch_max_wait_ms), 0, 600000},
    {"fetch.max.bytes", K_INT, OFF(fetch_max_bytes), 1024, RLC_MAX_FRAME_BYTES / 2},
    {"max.partition.fetch.bytes", K_INT, OFF(max_partition_fetch_bytes), 1024,
     RLC_MAX_FRAME_BYTES / 2},
};
#undef OFF

static const struct key_def *key_find(const char *key)
{
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (strcmp(aliases[i].alias, key) == 0)
            key = aliases[i].name;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(keys[i].name, key) == 0)
            return &keys[i];
    return NULL;
}

/* Field widths differ (int, uint32_t, size_t); store through the right type. */
static void store_num(struct rl_conf *c, const struct key_def *k, long long v)
{
    void *f = (char *)c + k->off;
    if (k->kind == K_SIZE)
        *(size_t *)f = (size_t)v;
    else if (strstr(k->name, "bytes"))
        *(uint32_t *)f = (uint32_t)v;
    else
        *(int *)f = (int)v;
}

static long long load_num(const struct rl_conf *c, const struct key_def *k)
{
    const void *f = (const char *)c + k->off;
    if (k->kind == K_SIZE)
        return (long long)*(const size_t *)f;
    if (strstr(k->name, "bytes"))
        return *(const uint32_t *)f;
    return *(const int *)f;
}

static int set_special(struct rl_conf *c, const char *key, const char *v, char *err,
                       size_t errlen)
{
    if (strcmp(key, "bootstrap.servers") == 0) {
        struct rlc_addr tmp[RLC_MAX_BROKERS];
        int n = rlc_parse_brokers(v, tmp, RLC_MAX_BROKERS, err, errlen);
        if (n < 0)
            return n;
        memcpy(c->brokers, tmp, sizeof(tmp));
        c->broker_count = n;
        return 0;
    }
    if (strcmp(key, "client.id") == 0) {
        if (strlen(v) >= sizeof(c->client_id)) {
            rlc_set_err(err, errlen, "client.id is longer than %zu characters",
                        sizeof(c->client_id) - 1);
            return RL_E_INVALID_CONFIG;
        }
        snprintf(c->client_id, sizeof(c->client_id), "%s", v);
        return 0;
    }
    if (strcmp(key, "acks") == 0) {
        if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0)
            c->acks = v[0] - '0';
        else if (strcmp(v, "all") == 0 || strcmp(v, "-1") == 0)
            c->acks = -1;
        else
            goto bad;
        return 0;
    }
    if (strcmp(key, "enable.idempotence") == 0 || strcmp(key, "enable.auto.commit") == 0) {
        bool *f = key[7] == 'i' ? &c->enable_idempotence : &c->enable_auto_commit;
        if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
            *f = true;
        else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
            *f = false;
        else
            goto bad;
        if (f == &c->enable_idempotence)
            c->idempotence_set = true;
        return 0;
    }
    if (strcmp(key, "group.id") == 0) {
        if (strlen(v) >= sizeof(c->group_id)) {
            rlc_set_err(err, errlen, "group.id is longer than %zu characters",
                        sizeof(c->group_id) - 1);
            return RL_E_INVALID_CONFIG;
        }
        snprintf(c->group_id, sizeof(c->group_id), "%s", v);
        return 0;
    }
    if (strcmp(key, "partition.assignment.strategy") == 0) {
        if (strcmp(v, "range") != 0 && strcmp(v, "roundrobin") != 0 &&
            strcmp(v, "cooperative-sticky") != 0)
            goto bad;
        snprintf(c->assignor, sizeof(c->assignor), "%s", v);
        return 0;
    }
    if (strcmp(key, "log.level") == 0) {
        static const char *const names[] = {"debug", "info", "warn", "error", "off"};
        for (int i = 0; i < 5; i++) {
            if (strcmp(v, names[i]) == 0) {
                c->log_level = RL_LOG_DEBUG + i;
                return 0;
            }
        }
        goto bad;
    }
    if (strcmp(key, "compression.type") == 0) {
        if (strcmp(v, "none") == 0)
            c->compression = BATCH_CODEC_NONE;
        else if (strcmp(v, "zstd") == 0)
            c->compression = BATCH_CODEC_ZSTD;
        else
            goto bad;
        return 0;
    }
    if (strcmp(v, "earliest") == 0)
        c->auto_offset_reset = RL_OFFSET_EARLIEST;
    else if (strcmp(v, "latest") == 0)
        c->auto_offset_reset = RL_OFFSET_LATEST;
    else if (strcmp(v, "none") == 0)
        c->auto_offset_reset = 0;
    else
        goto bad;
    return 0;
bad:
    rlc_set_err(err, errlen, "bad value \"%s\" for %s: use %s", v, key,
                strcmp(key, "acks") == 0          ? "0, 1 or all"
                : strcmp(key, "compression.type") == 0 ? "none or zstd"
                : strcmp(key, "log.level") == 0 ? "debug, info, warn, error or off"
                : strncmp(key, "enable.", 7) == 0 ? "true or false"
                : strcmp(key, "partition.assignment.strategy") == 0
                    ? "range, roundrobin or cooperative-sticky"
                                                  : "earliest, latest or none");
    return RL_E_INVALID_CONFIG;
}

int rl_conf_set(struct rl_conf *conf, const char *key, const char *value, char *err,
                size_t errlen)
{
    if (!conf || !key || !value) {
        rlc_set_err(err, errlen, "rl_conf_set: NULL argument");
        return RL_E_INVALID_ARGUMENT;
    }
    const struct key_def *k = key_find(key);
    if (!k) {
        rlc_set_err(err, errlen, "unknown configuration key \"%s\"", key);
        return RL_E_INVALID_CONFIG;
    }
    if (k->kind == K_SPECIAL)
        return set_special(conf, k->name, value, err, errlen);
    long long v;
    if (!parse_int(value, k->min, k->max, &v)) {
        rlc_set_err(err, errlen, "bad value \"%s\" for %s: expected an integer in [%lld, %lld]",
                    value, key, k->min, k->max);
        return RL_E_INVALID_CONFIG;
    }
    store_num(conf, k, v);
    return 0;
}

/* Writes key's value into buf like snprintf and returns the length of the whole value. */
static size_t conf_format(const struct rl_conf *c, const struct key_def *k, char *buf,
                          size_t buflen)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", "off"};
    const char *key = k->name;
    if (buflen)
        buf[0] = 0;
    if (k->kind != K_SPECIAL)
        return (size_t)snprintf(buf, buflen, "%lld", load_num(c, k));
    if (strcmp(key, "bootstrap.servers") == 0) {
        size_t used = 0;
        for (int i = 0; i < c->broker_count; i++) {
            size_t room = used < buflen ? buflen - used : 0;
            used += (size_t)snprintf(room ? buf + used : NULL, room, "%s%s:%u", i ? "," : "",
                                     c->brokers[i].host, c->brokers[i].port);
        }
        return used;
    }
    const char *v;
    if (strcmp(key, "client.id") == 0)
        v = c->client_id;
    else if (strcmp(key, "acks") == 0)
        v = c->acks < 0 ? "all" : c->acks ? "1" : "0";
    else if (strcmp(key, "compression.type") == 0)
        v = c->compression == BATCH_CODEC_ZSTD ? "zstd" : "none";
    else if (strcmp(key, "log.level") == 0)
        v = levels[c->log_level >= 0 && c->log_level <= RL_LOG_OFF ? c->log_level : 1];
    else if (strcmp(key, "enable.idempotence") == 0)
        v = rlc_conf_idempotent(c) ? "true" : "false";
    else if (strcmp(key, "enable.auto.commit") == 0)
        v = c->enable_auto_commit ? "true" : "false";
    else if (strcmp(key, "group.id") == 0)
        v = c->group_id;
    else if (strcmp(key, "partition.assignment.strategy") == 0)
        v = c->assignor;
    else
        v = c->auto_offset_reset == RL_OFFSET_EARLIEST ? "earliest"
            : c->auto_offset_reset == RL_OFFSET_LATEST ? "latest"
                                                       : "none";
    return (size_t)snprintf(buf, buflen, "%s", v);
}

int rl_conf_get(const struct rl_conf *c, const char *key, char *buf, size_t buflen)
{
    const struct key_def *k = c && key ? key_find(key) : NULL;
    if (!k)
        return RL_E_NOT_FOUND;
    size_t len = conf_format(c, k, buf, buflen);
    return len < buflen ? 0 : RL_E_FULL;
}

size_t rl_conf_get_size(const struct rl_conf *c, const char *key)
{
    const struct key_def *k = c && key ? key_find(key) : NULL;
    return k ? conf_format(c, k, NULL, 0) + 1 : 0;
}

bool rlc_conf_idempotent(const struct rl_conf *c)
{
    /* Kafka's rule: idempotence needs acks=all. With acks=0 there is no answer to deduplicate
     * retries against; with acks=1 a batch acknowledged by a leader that then loses it can be
     * retried under a sequence the next leader never saw. Left at its default, idempotence
     * turns off with acks 0 or 1; asked for explicitly it is refused (rl_conf_check). */
    return c->enable_idempotence && c->acks < 0;
}

int rl_conf_check(const struct rl_conf *c, char *err, size_t errlen)
{
    if (c->heartbeat_interval_ms >= c->session_timeout_ms) {
        rlc_set_err(err, errlen, "heartbeat.interval.ms=%d must be below session.timeout.ms=%d "
                    "(a third of it is usual), or the member is dropped between heartbeats; "
                    "lower heartbeat.interval.ms or raise session.timeout.ms",
                    c->heartbeat_interval_ms, c->session_timeout_ms);
        return RL_E_INVALID_CONFIG;
    }
    if (c->retry_backoff_ms > c->retry_backoff_max_ms) {
        rlc_set_err(err, errlen, "retry.backoff.ms=%d is above retry.backoff.max.ms=%d; raise "
                    "retry.backoff.max.ms or lower retry.backoff.ms", c->retry_backoff_ms,
                    c->retry_backoff_max_ms);
        return RL_E_INVALID_CONFIG;
    }
    if (c->idempotence_set && c->enable_idempotence && c->acks >= 0) {
        rlc_set_err(err, errlen, "enable.idempotence=true needs acks=all, but acks=%d (an "
                    "acknowledgement from the leader alone cannot keep retries from "
                    "duplicating or losing records): set acks=all, or enable.idempotence=false",
                    c->acks);
        return RL_E_INVALID_CONFIG;
    }
    return 0;
}

const char *rl_version(void)
{
    return RL_VERSION_STRING;
}
