/*
 * config_topic: see config_topic.h.
 */
#include "broker/meta/config_topic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "common/err.h"
#include "storage/plog.h"

/* --- topic configs ---------------------------------------------------------------------------- */

enum config_kind { KIND_INT, KIND_FLUSH, KIND_CLEANUP };

struct config_key_def {
    const char *name;
    const char *def;
    enum config_kind kind;
    int64_t min, max;
};

static const struct config_key_def topic_keys[CONFIG_TOPIC_KEY_COUNT] = {
    [CONFIG_RETENTION_MS] = {"retention.ms", "604800000", KIND_INT, -1, INT64_MAX},
    [CONFIG_RETENTION_BYTES] = {"retention.bytes", "-1", KIND_INT, -1, INT64_MAX},
    [CONFIG_SEGMENT_BYTES] = {"segment.bytes", "1073741824", KIND_INT, 4096, 1ll << 40},
    [CONFIG_SEGMENT_MS] = {"segment.ms", "604800000", KIND_INT, 1, INT64_MAX},
    /* At most 31 MiB: one log's write buffer must hold a batch (storage/plog.h). */
    [CONFIG_MAX_MESSAGE_BYTES] = {"max.message.bytes", "8388608", KIND_INT,
                                  RL_BATCH_HEADER_SIZE + 1, 31ll * 1024 * 1024},
    [CONFIG_FLUSH_POLICY] = {"flush.policy", "batch", KIND_FLUSH, 0, 0},
    [CONFIG_MIN_INSYNC_REPLICAS] = {"min.insync.replicas", "1", KIND_INT, 1, 255},
    [CONFIG_CLEANUP_POLICY] = {"cleanup.policy", "delete", KIND_CLEANUP, 0, 0},
};

void config_topic_default(struct topic_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (int k = 0; k < CONFIG_TOPIC_KEY_COUNT; k++)
        snprintf(cfg->values[k], CONFIG_VALUE_MAX, "%s", topic_keys[k].def);
}

const char *config_topic_key_name(enum config_topic_key k)
{
    return (unsigned)k < CONFIG_TOPIC_KEY_COUNT ? topic_keys[k].name : "?";
}

int config_topic_key_find(const char *name)
{
    for (int k = 0; k < CONFIG_TOPIC_KEY_COUNT; k++)
        if (!strcmp(name, topic_keys[k].name))
            return k;
    return -1;
}

int config_topic_parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

/* "batch", "none" or "interval:<ms>" with 1 <= ms <= 3600000. */
static int config_parse_flush(const char *v, enum plog_flush_policy *pol, uint32_t *ms)
{
    int64_t n = 0;
    *ms = 0;
    if (!strcmp(v, "batch")) {
        *pol = PLOG_FLUSH_BATCH;
        return 0;
    }
    if (!strcmp(v, "none")) {
        *pol = PLOG_FLUSH_NONE;
        return 0;
    }
    if (!strncmp(v, "interval:", 9) && !config_topic_parse_i64(v + 9, &n) && n >= 1 && n <= 3600000) {
        *pol = PLOG_FLUSH_INTERVAL;
        *ms = (uint32_t)n;
        return 0;
    }
    return -1;
}

int config_topic_set(struct topic_config *cfg, const char *key, const char *value, char *err,
                     size_t err_cap)
{
    int k = config_topic_key_find(key);
    if (k < 0) {
        snprintf(err, err_cap, "unknown topic config key \"%s\" (known: retention.ms, "
                 "retention.bytes, segment.bytes, segment.ms, max.message.bytes, flush.policy, "
                 "min.insync.replicas, cleanup.policy)", key);
        return RL_E_INVALID_CONFIG;
    }
    const struct config_key_def *d = &topic_keys[k];
    if (strlen(value) >= CONFIG_VALUE_MAX) {
        snprintf(err, err_cap, "value of %s is too long (max %d chars)", key,
                 CONFIG_VALUE_MAX - 1);
        return RL_E_INVALID_CONFIG;
    }
    int64_t n;
    enum plog_flush_policy pol;
    uint32_t ms;
    switch (d->kind) {
    case KIND_INT:
        if (config_topic_parse_i64(value, &n) || n < d->min || n > d->max) {
            snprintf(err, err_cap, "%s must be an integer in [%lld, %lld], got \"%s\"", key,
                     (long long)d->min, (long long)d->max, value);
            return RL_E_INVALID_CONFIG;
        }
        snprintf(cfg->values[k], CONFIG_VALUE_MAX, "%lld", (long long)n);
        break;
    case KIND_FLUSH:
        if (config_parse_flush(value, &pol, &ms)) {
            snprintf(err, err_cap, "flush.policy must be batch, none or interval:<ms> "
                     "(1-3600000), got \"%s\"", value);
            return RL_E_INVALID_CONFIG;
        }
        snprintf(cfg->values[k], CONFIG_VALUE_MAX, "%s", value);
        break;
    case KIND_CLEANUP:
        if (strcmp(value, "delete")) {
            snprintf(err, err_cap, "cleanup.policy \"%s\" is not supported; use delete "
                     "(compaction is not available yet)", value);
            return RL_E_INVALID_CONFIG;
        }
        snprintf(cfg->values[k], CONFIG_VALUE_MAX, "%s", value);
        break;
    }
    cfg->set_mask |= 1u << k;
    return 0;
}

static int64_t config_topic_i64(const struct topic_config *cfg, enum config_topic_key k)
{
    int64_t v = 0;
    if (config_topic_parse_i64(cfg->values[k], &v))
        config_topic_parse_i64(topic_keys[k].def, &v);
    return v;
}

int config_topic_to_plog(const struct topic_config *cfg, struct plog_config *out)
{
    /* Filled field by field rather than from plog_config_default so that every field has a
     * value this module chose on purpose. */
    memset(out, 0, sizeof(*out));
    out->index_interval_bytes = 4096;
    out->retention_ms = config_topic_i64(cfg, CONFIG_RETENTION_MS);
    out->retention_bytes = config_topic_i64(cfg, CONFIG_RETENTION_BYTES);
    out->segment_bytes = (uint64_t)config_topic_i64(cfg, CONFIG_SEGMENT_BYTES);
    out->segment_ms = config_topic_i64(cfg, CONFIG_SEGMENT_MS);
    out->max_batch_bytes = config_topic_max_message_bytes(cfg);
    if (config_parse_flush(cfg->values[CONFIG_FLUSH_POLICY], &out->flush_policy,
                           &out->flush_interval_ms))
        out->flush_policy = PLOG_FLUSH_BATCH;
    return 0;
}

uint32_t config_topic_max_message_bytes(const struct topic_config *cfg)
{
    return (uint32_t)config_topic_i64(cfg, CONFIG_MAX_MESSAGE_BYTES);
}

/* --- topic names ------------------------------------------------------------------------------ */

int config_topic_name_check(const char *name, char *err, size_t err_cap)
{
    size_t n = strlen(name);
    if (n == 0) {
        snprintf(err, err_cap, "topic name is empty; use 1-%d chars of [A-Za-z0-9._-]",
                 CONFIG_TOPIC_NAME_MAX);
        return RL_E_INVALID_TOPIC_NAME;
    }
    if (n > CONFIG_TOPIC_NAME_MAX) {
        snprintf(err, err_cap, "topic name is %zu chars long; the limit is %d", n,
                 CONFIG_TOPIC_NAME_MAX);
        return RL_E_INVALID_TOPIC_NAME;
    }
    if (!strcmp(name, ".") || !strcmp(name, "..")) {
        snprintf(err, err_cap, "topic name \"%s\" is reserved", name);
        return RL_E_INVALID_TOPIC_NAME;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok) {
            snprintf(err, err_cap, "topic name has a bad character (byte 0x%02x at position "
                     "%zu); use only [A-Za-z0-9._-]", c, i);
            return RL_E_INVALID_TOPIC_NAME;
        }
    }
    return 0;
}
