/*
 * offsets: committed offsets and their record encoding (see offsets.h).
 */
#include "broker/delivery/offsets.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/endian.h"
#include "common/err.h"

#define OFFSETS_RECORD_VERSION 1
#define OFFSETS_BUCKETS_MAX (1u << 16)

struct offsets_node {
    struct offsets_node *next;
    uint64_t hash;
    char *group;
    char *topic;
    uint32_t partition;
    int64_t offset;
    int64_t commit_ms;
    int64_t active_ms; /* retention: the later of commit_ms and when its group was last live */
    char *metadata; /* NULL when empty */
};

struct offsets_table {
    struct offsets_node **buckets;
    uint32_t mask;
    uint32_t count;
    uint32_t max_entries;
};

uint32_t offsets_partition_for(const char *group_id, uint32_t partition_count)
{
    if (partition_count == 0)
        return 0;
    return (uint32_t)(XXH3_64bits(group_id, strlen(group_id)) % partition_count);
}

static uint8_t *put_name(uint8_t *p, const char *s, size_t len)
{
    rl_store_le16(p, (uint16_t)len);
    memcpy(p + 2, s, len);
    return p + 2 + len;
}

int offsets_encode_key(const char *group, const char *topic, uint32_t partition, uint8_t *buf,
                       size_t cap)
{
    size_t gl = group ? strlen(group) : 0, tl = topic ? strlen(topic) : 0;
    if (gl == 0 || gl > OFFSETS_NAME_MAX || tl == 0 || tl > OFFSETS_NAME_MAX ||
        cap < OFFSETS_KEY_MAX)
        return RL_E_INVALID_ARGUMENT;
    uint8_t *p = buf;
    *p++ = OFFSETS_RECORD_VERSION;
    p = put_name(p, group, gl);
    p = put_name(p, topic, tl);
    rl_store_le32(p, partition);
    return (int)(p + 4 - buf);
}

int offsets_encode_value(const struct offsets_commit *c, uint8_t *buf, size_t cap)
{
    size_t ml = c->metadata ? strlen(c->metadata) : 0;
    if (c->offset < 0 || ml > OFFSETS_METADATA_MAX || cap < OFFSETS_VALUE_MAX)
        return RL_E_INVALID_ARGUMENT;
    uint8_t *p = buf;
    *p++ = OFFSETS_RECORD_VERSION;
    rl_store_le64(p, (uint64_t)c->offset);
    rl_store_le64(p + 8, (uint64_t)c->commit_ms);
    p = put_name(p + 16, c->metadata ? c->metadata : "", ml);
    return (int)(p - buf);
}

struct offsets_table *offsets_table_create(uint32_t max_entries)
{
    if (max_entries == 0)
        return NULL;
    uint32_t buckets = 16;
    while (buckets < max_entries && buckets < OFFSETS_BUCKETS_MAX)
        buckets <<= 1;
    struct offsets_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->buckets = calloc(buckets, sizeof(*t->buckets));
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    t->mask = buckets - 1;
    t->max_entries = max_entries;
    return t;
}

static void offsets_node_free(struct offsets_node *n)
{
    free(n->group);
    free(n->topic);
    free(n->metadata);
    free(n);
}

void offsets_table_destroy(struct offsets_table *t)
{
    if (!t)
        return;
    for (uint32_t b = 0; b <= t->mask; b++) {
        struct offsets_node *n = t->buckets[b];
        while (n) {
            struct offsets_node *next = n->next;
            offsets_node_free(n);
            n = next;
        }
    }
    free(t->buckets);
    free(t);
}

static uint64_t offsets_hash(const char *group, const char *topic, uint32_t partition)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, group, strlen(group) + 1);
    XXH3_64bits_update(&st, topic, strlen(topic) + 1);
    XXH3_64bits_update(&st, &partition, sizeof(partition));
    return XXH3_64bits_digest(&st);
}

static struct offsets_node **offsets_slot(const struct offsets_table *t, const char *group,
                                          const char *topic, uint32_t partition, uint64_t hash)
{
    struct offsets_node **link = &t->buckets[hash & t->mask];
    for (; *link; link = &(*link)->next) {
        struct offsets_node *n = *link;
        if (n->hash == hash && n->partition == partition && !strcmp(n->group, group) &&
            !strcmp(n->topic, topic))
            break;
    }
    return link;
}

static int offsets_set_metadata(struct offsets_node *n, const char *metadata)
{
    char *copy = NULL;
    if (metadata && metadata[0] && !(copy = strdup(metadata)))
        return -ENOMEM;
    free(n->metadata);
    n->metadata = copy;
    return 0;
}

int offsets_put(struct offsets_table *t, const char *group, const char *topic,
                uint32_t partition, const struct offsets_commit *c)
{
    uint64_t hash = offsets_hash(group, topic, partition);
    struct offsets_node **link = offsets_slot(t, group, topic, partition, hash);
    struct offsets_node *n = *link;
    if (!n) {
        if (t->count >= t->max_entries)
            return RL_E_LIMIT;
        n = calloc(1, sizeof(*n));
        if (!n || !(n->group = strdup(group)) || !(n->topic = strdup(topic))) {
            if (n)
                offsets_node_free(n);
            return -ENOMEM;
        }
        n->hash = hash;
        n->partition = partition;
        *link = n;
        t->count++;
    }
    int rc = offsets_set_metadata(n, c->metadata);
    if (rc < 0)
        return rc;
    n->offset = c->offset;
    n->commit_ms = c->commit_ms;
    if (c->commit_ms > n->active_ms)
        n->active_ms = c->commit_ms;
    return 0;
}

int offsets_get(const struct offsets_table *t, const char *group, const char *topic,
                uint32_t partition, struct offsets_commit *out)
{
    uint64_t hash = offsets_hash(group, topic, partition);
    struct offsets_node *n = *offsets_slot(t, group, topic, partition, hash);
    if (!n)
        return RL_E_NOT_FOUND;
    out->offset = n->offset;
    out->commit_ms = n->commit_ms;
    out->metadata = n->metadata ? n->metadata : "";
    return 0;
}

static void offsets_remove(struct offsets_table *t, struct offsets_node **link)
{
    struct offsets_node *n = *link;
    *link = n->next;
    offsets_node_free(n);
    t->count--;
}

uint32_t offsets_delete_group(struct offsets_table *t, const char *group)
{
    uint32_t removed = 0;
    for (uint32_t b = 0; b <= t->mask; b++) {
        struct offsets_node **link = &t->buckets[b];
        while (*link) {
            if (!strcmp((*link)->group, group)) {
                offsets_remove(t, link);
                removed++;
            } else {
                link = &(*link)->next;
            }
        }
    }
    return removed;
}

void offsets_touch_group(struct offsets_table *t, const char *group, int64_t now_ms)
{
    for (uint32_t b = 0; b <= t->mask; b++)
        for (struct offsets_node *n = t->buckets[b]; n; n = n->next)
            if (n->active_ms < now_ms && !strcmp(n->group, group))
                n->active_ms = now_ms;
}

uint32_t offsets_expire_scan(struct offsets_table *t, int64_t now_ms, int64_t before_ms,
                             offsets_live_fn live, offsets_expired_fn expired, void *arg,
                             uint32_t max)
{
    uint32_t n_expired = 0;
    for (uint32_t b = 0; b <= t->mask; b++) {
        for (struct offsets_node *n = t->buckets[b]; n; n = n->next) {
            if (live(arg, n->group)) {
                if (n->active_ms < now_ms)
                    n->active_ms = now_ms;
            } else if (n->active_ms <= before_ms && n_expired < max &&
                       expired(arg, n->group, n->topic, n->partition)) {
                n_expired++;
            }
        }
    }
    return n_expired;
}

/* Reads a u16-length-prefixed name at *pos into out (NUL-terminated); false when malformed. */
static bool offsets_read_name(const uint8_t *buf, size_t len, size_t *pos, char *out,
                              size_t out_cap)
{
    if (len - *pos < 2)
        return false;
    uint16_t n = rl_load_le16(buf + *pos);
    *pos += 2;
    if (n >= out_cap || len - *pos < n)
        return false;
    memcpy(out, buf + *pos, n);
    out[n] = '\0';
    *pos += n;
    return true;
}

int offsets_apply_record(struct offsets_table *t, const uint8_t *key, int32_t key_len,
                         const uint8_t *value, int32_t value_len)
{
    char group[OFFSETS_NAME_MAX + 1], topic[OFFSETS_NAME_MAX + 1];
    char metadata[OFFSETS_METADATA_MAX + 1];
    size_t pos = 1, klen = key_len > 0 ? (size_t)key_len : 0;
    uint32_t partition;
    if (!key || klen < 1 || key[0] != OFFSETS_RECORD_VERSION ||
        !offsets_read_name(key, klen, &pos, group, sizeof(group)) || !group[0] ||
        !offsets_read_name(key, klen, &pos, topic, sizeof(topic)) || !topic[0] ||
        klen - pos != 4)
        return RL_E_CORRUPT;
    partition = rl_load_le32(key + pos);
    if (!value || value_len < 0) {
        struct offsets_node **link =
            offsets_slot(t, group, topic, partition, offsets_hash(group, topic, partition));
        if (*link)
            offsets_remove(t, link);
        return 0;
    }
    size_t vlen = (size_t)value_len;
    struct offsets_commit c = {.metadata = metadata};
    pos = 17;
    if (vlen < 17 || value[0] != OFFSETS_RECORD_VERSION ||
        !offsets_read_name(value, vlen, &pos, metadata, sizeof(metadata)) || pos != vlen)
        return RL_E_CORRUPT;
    c.offset = (int64_t)rl_load_le64(value + 1);
    c.commit_ms = (int64_t)rl_load_le64(value + 9);
    if (c.offset < 0)
        return RL_E_CORRUPT;
    int rc = offsets_put(t, group, topic, partition, &c);
    return rc == -ENOMEM ? rc : (rc < 0 ? RL_E_LIMIT : 0);
}

uint32_t offsets_visit_group(const struct offsets_table *t, const char *group,
                             offsets_visit_fn fn, void *arg)
{
    uint32_t visited = 0;
    for (uint32_t b = 0; b <= t->mask; b++)
        for (struct offsets_node *n = t->buckets[b]; n; n = n->next) {
            if (strcmp(n->group, group))
                continue;
            struct offsets_commit c = {.offset = n->offset, .commit_ms = n->commit_ms,
                                       .metadata = n->metadata ? n->metadata : ""};
            fn(arg, n->topic, n->partition, &c);
            visited++;
        }
    return visited;
}

uint32_t offsets_list_groups(const struct offsets_table *t, const char **groups, uint32_t max)
{
    uint32_t found = 0;
    for (uint32_t b = 0; b <= t->mask; b++)
        for (struct offsets_node *n = t->buckets[b]; n; n = n->next) {
            bool seen = false;
            for (uint32_t i = 0; i < found && !seen; i++)
                seen = !strcmp(groups[i], n->group);
            if (!seen && found < max)
                groups[found++] = n->group;
        }
    return found;
}

uint32_t offsets_count(const struct offsets_table *t)
{
    return t->count;
}

/* --- snapshots -------------------------------------------------------------------------------- */

#define OFFSETS_SNAPSHOT_MAGIC 0x534f4c52u /* "RLOS" */

/* Bytes one node takes in an image. */
static size_t offsets_node_bytes(const struct offsets_node *n)
{
    size_t ml = n->metadata ? strlen(n->metadata) : 0;
    return 2 + (1 + 2 + strlen(n->group) + 2 + strlen(n->topic) + 4) + 2 + (1 + 8 + 8 + 2 + ml);
}

static uint8_t *offsets_put_node(uint8_t *p, const struct offsets_node *n)
{
    uint8_t *klen = p;
    int k = offsets_encode_key(n->group, n->topic, n->partition, p + 2, OFFSETS_KEY_MAX);
    rl_store_le16(klen, (uint16_t)k);
    p += 2 + k;
    struct offsets_commit c = {.offset = n->offset, .commit_ms = n->commit_ms,
                               .metadata = n->metadata};
    uint8_t *vlen = p;
    int v = offsets_encode_value(&c, p + 2, OFFSETS_VALUE_MAX);
    rl_store_le16(vlen, (uint16_t)v);
    return p + 2 + v;
}

int offsets_snapshot_encode(const struct offsets_table *t, offsets_keep_fn keep, void *arg,
                            int64_t next_offset, size_t max_bytes, uint8_t **out, size_t *len)
{
    size_t need = OFFSETS_SNAPSHOT_HEAD;
    uint32_t count = 0;
    for (uint32_t b = 0; b <= t->mask; b++)
        for (struct offsets_node *n = t->buckets[b]; n; n = n->next)
            if (!keep || keep(arg, n->group)) {
                need += offsets_node_bytes(n);
                count++;
            }
    if (need > max_bytes)
        return RL_E_LIMIT;
    /* The encoders check their room against the largest key and value. */
    uint8_t *img = malloc(need + OFFSETS_KEY_MAX + OFFSETS_VALUE_MAX + 4);
    if (!img)
        return -ENOMEM;
    rl_store_le32(img, OFFSETS_SNAPSHOT_MAGIC);
    rl_store_le32(img + 4, OFFSETS_SNAPSHOT_VERSION);
    rl_store_le64(img + 8, (uint64_t)next_offset);
    rl_store_le32(img + 16, count);
    uint8_t *p = img + OFFSETS_SNAPSHOT_HEAD;
    for (uint32_t b = 0; b <= t->mask; b++)
        for (struct offsets_node *n = t->buckets[b]; n; n = n->next)
            if (!keep || keep(arg, n->group))
                p = offsets_put_node(p, n);
    *out = img;
    *len = (size_t)(p - img);
    return 0;
}

int offsets_snapshot_header(const uint8_t *img, size_t len, int64_t *next_offset,
                            uint32_t *count)
{
    if (len < OFFSETS_SNAPSHOT_HEAD || rl_load_le32(img) != OFFSETS_SNAPSHOT_MAGIC ||
        rl_load_le32(img + 4) != OFFSETS_SNAPSHOT_VERSION)
        return RL_E_CORRUPT;
    *next_offset = (int64_t)rl_load_le64(img + 8);
    *count = rl_load_le32(img + 16);
    return *next_offset < 0 ? RL_E_CORRUPT : 0;
}

int offsets_snapshot_apply(struct offsets_table *t, const uint8_t *img, size_t len)
{
    int64_t next;
    uint32_t count;
    if (offsets_snapshot_header(img, len, &next, &count))
        return RL_E_CORRUPT;
    size_t pos = OFFSETS_SNAPSHOT_HEAD;
    for (uint32_t i = 0; i < count; i++) {
        if (len - pos < 2)
            return RL_E_CORRUPT;
        uint16_t kl = rl_load_le16(img + pos);
        if (len - pos - 2 < (size_t)kl + 2)
            return RL_E_CORRUPT;
        const uint8_t *key = img + pos + 2;
        pos += 2 + kl;
        uint16_t vl = rl_load_le16(img + pos);
        if (len - pos - 2 < vl)
            return RL_E_CORRUPT;
        const uint8_t *value = img + pos + 2;
        pos += 2 + (size_t)vl;
        int rc = offsets_apply_record(t, key, kl, value, vl);
        if (rc)
            return rc;
    }
    return pos == len ? 0 : RL_E_CORRUPT;
}
