/*
 * tl_cluster: see tl_cluster.h.
 */
#include "tests/lib/tl_cluster.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/err.h"
#include "tests/lib/tl_fixture.h"

void tl_cluster_init(struct tl_cluster *cl, const struct tl_cluster_conf *conf)
{
    int n_ports = conf->nodes + conf->spare_ports;
    cr_assert(conf->nodes > 0 && conf->nodes <= TL_CLUSTER_MAX_NODES && conf->spare_ports >= 0 &&
              conf->spare_ports <= 2 && conf->voters <= conf->nodes);
    memset(cl, 0, sizeof(*cl));
    cl->conf = *conf;
    cl->n = conf->nodes;
    if (!cl->conf.voters)
        cl->conf.voters = conf->nodes;
    if (!cl->conf.start_ms)
        cl->conf.start_ms = 20000;
    /* Below the ephemeral range: a node started (or restarted) later must find its port free,
     * though the others' connections took source ports meanwhile. */
    int prc = tl_pick_ports(cl->ports, n_ports);
    cr_assert_eq(prc, 0, "cannot pick %d free ports: %s", n_ports, strerror(-prc));
    for (int i = 0; i < cl->conf.voters; i++)
        snprintf(cl->voters + strlen(cl->voters), sizeof(cl->voters) - strlen(cl->voters),
                 "%s%d@127.0.0.1:%u", i ? "," : "", i + 1, cl->ports[i]);
    for (int i = 0; i < cl->n; i++)
        snprintf(cl->boot + strlen(cl->boot), sizeof(cl->boot) - strlen(cl->boot),
                 "%s127.0.0.1:%u", i ? "," : "", cl->ports[i]);
}

void tl_cluster_start_node(struct tl_cluster *cl, int i)
{
    cr_assert(i >= 0 && i < cl->n);
    char listen[32], node[16];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", cl->ports[i]);
    snprintf(node, sizeof(node), "%d", i + 1);
    const char *args[TL_BROKER_MAX_ARGS + 1] = {"--listen", listen, "--node-id", node,
                                                "--voters", cl->voters};
    int n = 6;
    for (int k = 0; cl->conf.args && cl->conf.args[k]; k++) {
        cr_assert_lt(n, TL_BROKER_MAX_ARGS, "too many ringlogd arguments");
        args[n++] = cl->conf.args[k];
    }
    args[n] = NULL;
    int rc = tl_broker_start(&cl->b[i], args, cl->conf.start_ms);
    cr_assert_eq(rc, 0, "node %d did not start: %s", i + 1, rl_strerror(rc));
}

void tl_cluster_start_all(struct tl_cluster *cl)
{
    for (int i = 0; i < cl->n; i++)
        tl_cluster_start_node(cl, i);
}

void tl_cluster_finish(struct tl_cluster *cl)
{
    for (int i = 0; i < cl->n; i++) {
        int st = tl_broker_finish(&cl->b[i], 20000);
        cr_expect_eq(st, 0, "node %d exit status %d", i + 1, st);
    }
}

int tl_cluster_connect(struct tl_cluster *cl, int i, struct tl_conn *c)
{
    return tl_connect(c, "127.0.0.1", cl->b[i].port, 2000);
}

int tl_cluster_metadata(struct tl_cluster *cl, int i, struct tl_conn *c, const char *topic,
                        Ringlog__MetadataResponse **md)
{
    int rc = tl_cluster_connect(cl, i, c);
    if (rc)
        return rc;
    char *names[1] = {(char *)(topic ? topic : "")};
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    mr.n_topics = 1;
    mr.topics = names;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    Ringlog__Response *resp = NULL;
    rc = tl_call(c, &req, NULL, 0, 5000, &resp, NULL, NULL);
    if (rc == 0 && !resp->metadata)
        rc = RL_E_INTERNAL;
    if (rc) {
        tl_close(c);
        return rc;
    }
    *md = resp->metadata;
    return 0;
}

bool tl_cluster_has_topic(struct tl_cluster *cl, int i, const char *topic)
{
    struct tl_conn c;
    Ringlog__MetadataResponse *md;
    if (tl_cluster_metadata(cl, i, &c, topic, &md))
        return false;
    bool ok = md->n_topics == 1 && md->topics[0]->error_code == 0;
    tl_close(&c); /* frees md */
    return ok;
}

int tl_cluster_leaders_on(struct tl_cluster *cl, int i, const char *topic, int32_t *leaders,
                          int cap, int replicas)
{
    if (!tl_broker_alive(&cl->b[i]))
        return -1;
    struct tl_conn c;
    Ringlog__MetadataResponse *md;
    if (tl_cluster_metadata(cl, i, &c, topic, &md))
        return -1;
    int n = -1;
    if (md->n_topics == 1 && md->topics[0]->error_code == 0) {
        const Ringlog__TopicMetadata *tm = md->topics[0];
        n = (int)tm->n_partitions;
        for (int k = 0; k < n && k < cap; k++) {
            const Ringlog__PartitionMetadata *pm = tm->partitions[k];
            if (pm->partition < (uint32_t)cap)
                leaders[pm->partition] = pm->leader;
            if (replicas > 0 && pm->n_replicas != (size_t)replicas)
                n = -1;
        }
    }
    tl_close(&c);
    return n;
}

int tl_cluster_agreed_leader(struct tl_cluster *cl, const char *topic, int parts, int part,
                             int except)
{
    int leader = 0;
    int32_t seen[64];
    cr_assert(parts > 0 && parts <= 64 && part < parts);
    for (int i = 0; i < cl->n; i++) {
        if (i == except)
            continue;
        if (tl_cluster_leaders_on(cl, i, topic, seen, parts, 0) != parts || seen[part] < 1 ||
            seen[part] > cl->n || (leader && seen[part] != leader))
            return 0;
        leader = seen[part];
    }
    return leader;
}

/* True when every node names the same leader (1..n) of every partition (into out). */
static bool tl_cluster_leaders_agreed(struct tl_cluster *cl, const char *topic, int parts,
                                      int replicas, int32_t *out)
{
    int32_t seen[64];
    for (int i = 0; i < cl->n; i++) {
        if (tl_cluster_leaders_on(cl, i, topic, seen, parts, replicas) != parts)
            return false;
        for (int k = 0; k < parts; k++)
            if (seen[k] < 1 || seen[k] > cl->n || (i && seen[k] != out[k]))
                return false;
        memcpy(out, seen, (size_t)parts * sizeof(int32_t));
    }
    return true;
}

void tl_cluster_wait_leaders(struct tl_cluster *cl, const char *topic, int parts, int replicas,
                             int32_t *leaders, uint32_t timeout_ms)
{
    int32_t l[64];
    cr_assert(parts > 0 && parts <= 64);
    for (uint64_t until = tl_now_ms() + timeout_ms;
         !tl_cluster_leaders_agreed(cl, topic, parts, replicas, l); tl_pace(20))
        cr_assert(tl_now_ms() < until, "the partitions of %s got no agreed leaders within %u ms",
                  topic, timeout_ms);
    if (leaders)
        memcpy(leaders, l, (size_t)parts * sizeof(int32_t));
}

int tl_cluster_create_topic(struct tl_cluster *cl, int i, Ringlog__TopicSpec *spec, char *msg,
                            size_t cap, uint32_t retry_ms, uint32_t timeout_ms)
{
    int rc = RL_E_BROKER_UNAVAILABLE;
    for (uint64_t until = tl_now_ms() + timeout_ms; rc && tl_now_ms() < until;
         tl_pace(retry_ms)) {
        struct tl_conn c;
        if (tl_cluster_connect(cl, i, &c))
            continue;
        rc = tl_create_topic_spec(&c, spec, msg, cap);
        tl_close(&c);
        if (rc == 0)
            break;
    }
    return rc;
}

int64_t tl_cluster_metric(struct tl_cluster *cl, int i, const char *prefix)
{
    static char body[1 << 20];
    if (tl_http_get("127.0.0.1", cl->b[i].http_port, "/metrics", body, sizeof(body), 3000) != 200)
        return -1;
    size_t pl = strlen(prefix);
    for (const char *s = body; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL)
        if (!strncmp(s, prefix, pl) && s[pl] == ' ')
            return strtoll(s + pl + 1, NULL, 10);
    return -1;
}

int64_t tl_cluster_hwm(struct tl_cluster *cl, int i, const char *topic, uint32_t p)
{
    struct tl_conn c;
    if (tl_cluster_connect(cl, i, &c))
        return -1;
    struct tl_fetch f = {.topic = topic, .partition = p, .max_bytes = 1};
    struct tl_fetch_result fr;
    int rc = tl_fetch(&c, &f, &fr);
    int64_t h = rc == 0 ? (int64_t)fr.high_watermark : -1;
    tl_close(&c);
    return h;
}

/* Appends the whole batches of one fetch answer below `end` to *buf; returns the bytes taken
 * and moves *off past the last batch taken. */
static uint32_t tl_cluster_take_batches(const struct tl_fetch_result *fr, uint64_t end,
                                        uint8_t **buf, size_t *n, size_t *cap, uint64_t *off)
{
    uint32_t pos = 0;
    for (uint32_t guard = 0; pos < fr->data_len && guard < 1000000; guard++) {
        struct batch_header h;
        if (batch_header_decode(fr->data + pos, fr->data_len - pos, &h) ||
            h.batch_len > fr->data_len - pos || h.base_offset >= end)
            break;
        if (*n + h.batch_len > *cap) {
            *cap = (*n + h.batch_len) * 2;
            *buf = realloc(*buf, *cap);
            cr_assert(*buf);
        }
        memcpy(*buf + *n, fr->data + pos, h.batch_len);
        *n += h.batch_len;
        pos += h.batch_len;
        *off = h.base_offset + h.last_offset_delta + 1;
    }
    return pos;
}

uint8_t *tl_cluster_read_log(struct tl_cluster *cl, int i, const char *topic, uint32_t p,
                             uint64_t from, uint64_t end, size_t *len)
{
    struct tl_conn c;
    cr_assert_eq(tl_cluster_connect(cl, i, &c), 0);
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    cr_assert(buf);
    uint64_t off = from;
    for (uint32_t guard = 0; off < end && guard < 100000; guard++) {
        struct tl_fetch f = {.topic = topic, .partition = p, .offset = off,
                             .max_bytes = 1 << 20};
        struct tl_fetch_result fr;
        int rc = tl_fetch(&c, &f, &fr);
        cr_assert_eq(rc, 0, "fetch %s-%u at %" PRIu64 " from node %d: %s", topic, p, off, i + 1,
                     rl_strerror(rc));
        cr_assert_gt(fr.data_len, 0, "node %d returned nothing at %" PRIu64 " below %" PRIu64,
                     i + 1, off, end);
        uint32_t pos = tl_cluster_take_batches(&fr, end, &buf, &n, &cap, &off);
        cr_assert_gt(pos, 0, "node %d: no whole batch at %" PRIu64, i + 1, off);
    }
    tl_close(&c);
    *len = n;
    return buf;
}

void tl_cluster_expect_same_log(struct tl_cluster *cl, const char *topic, uint32_t p,
                                const int *nodes, int n)
{
    int64_t h[TL_CLUSTER_MAX_NODES] = {0};
    cr_assert(n >= 2 && n <= TL_CLUSTER_MAX_NODES);
    for (uint64_t until = tl_now_ms() + 30000;; tl_pace(20)) {
        bool met = true;
        for (int r = 0; r < n; r++) {
            h[r] = tl_cluster_hwm(cl, nodes[r], topic, p);
            met &= h[r] > 0 && h[r] == h[0];
        }
        if (met)
            break;
        cr_assert(tl_now_ms() < until, "%s-%u: high watermarks %" PRId64 "/%" PRId64 "/%"
                  PRId64 " did not meet within 30 s", topic, p, h[0], h[1], h[n - 1]);
    }
    size_t len0 = 0;
    uint8_t *log0 = tl_cluster_read_log(cl, nodes[0], topic, p, 0, (uint64_t)h[0], &len0);
    for (int r = 1; r < n; r++) {
        size_t len = 0;
        uint8_t *log = tl_cluster_read_log(cl, nodes[r], topic, p, 0, (uint64_t)h[0], &len);
        cr_assert_eq(len, len0, "%s-%u: node %d holds %zu committed bytes, node %d %zu", topic,
                     p, nodes[r] + 1, len, nodes[0] + 1, len0);
        cr_assert(!memcmp(log, log0, len), "%s-%u: node %d's committed bytes differ from node "
                  "%d's", topic, p, nodes[r] + 1, nodes[0] + 1);
        free(log);
    }
    free(log0);
}

void tl_cluster_acks_on_delivery(void *ctx, const struct rl_delivery *d)
{
    struct tl_cluster_acks *a = ctx;
    if (d->error == 0) {
        atomic_fetch_add(&a->ok, 1);
        return;
    }
    atomic_fetch_add(&a->failed, 1);
    int z = 0;
    if (atomic_compare_exchange_strong(&a->first_err, &z, d->error))
        snprintf(a->first_msg, sizeof(a->first_msg), "%s",
                 d->error_message ? d->error_message : "");
}

void tl_cluster_acks_wait(struct tl_cluster_acks *a, uint64_t more, uint32_t timeout_ms,
                          const char *when)
{
    uint64_t target = atomic_load(&a->ok) + more;
    for (uint64_t until = tl_now_ms() + timeout_ms; atomic_load(&a->ok) < target; tl_pace(10))
        cr_assert(tl_now_ms() < until, "%s: acknowledgements stopped (%" PRIu64 " ok, %" PRIu64
                  " failed)", when, (uint64_t)atomic_load(&a->ok),
                  (uint64_t)atomic_load(&a->failed));
}

void tl_cluster_acks_expect(struct tl_cluster_acks *a, int records)
{
    cr_assert_eq(atomic_load(&a->failed), 0, "%" PRIu64 " records failed, the first with %d "
                 "(%s): %s", (uint64_t)atomic_load(&a->failed), atomic_load(&a->first_err),
                 rl_strerror(atomic_load(&a->first_err)), a->first_msg);
    cr_assert_eq(atomic_load(&a->ok), (uint64_t)records);
}

int tl_cluster_keyed_send(struct rl_producer *p, const char *topic, int i, int keys)
{
    char key[16], val[48];
    int k = i % keys;
    int kl = snprintf(key, sizeof(key), "k%04d", k);
    int vl = snprintf(val, sizeof(val), "%d:%d", k, i / keys);
    return rl_producer_send(p, topic, RL_PARTITION_ANY, key, (size_t)kl, val, (size_t)vl, 0,
                            NULL);
}

/* Where each key's last record was read (the offset, +1; 0: none yet), so a record read twice
 * says whether the log holds it twice (a later offset: a broker bug) or the consumer read an
 * offset again (the same or an earlier one: a client bug). */
#define TL_KEYED_MAX_KEYS 8192
static int64_t keyed_last_offset[TL_KEYED_MAX_KEYS];

void tl_cluster_keyed_expect_next(int *next, int keys, const struct rl_record *r)
{
    char val[48];
    cr_assert(r->value_len > 0 && (size_t)r->value_len < sizeof(val));
    memcpy(val, r->value, r->value_len);
    val[r->value_len] = 0;
    int key = -1, seq = -1;
    cr_assert_eq(sscanf(val, "%d:%d", &key, &seq), 2, "value %s", val);
    cr_assert(key >= 0 && key < keys);
    int64_t *last = key < TL_KEYED_MAX_KEYS ? &keyed_last_offset[key] : NULL;
    if (last && next[key] == 0)
        *last = 0; /* a new read-back */
    cr_assert_eq(seq, next[key], "key %d: record %d where %d was due (%s), at %s-%d offset %"
                 PRId64 "; the key's previous record was read at offset %" PRId64 " (%s)", key,
                 seq, next[key], seq < next[key] ? "read twice" : "one lost or out of order",
                 r->topic, r->partition, r->offset, last && *last ? *last - 1 : -1,
                 !last || !*last ? "none" : r->offset > *last - 1 ?
                 "a later offset: the log holds it twice" : "the consumer read back");
    if (last)
        *last = r->offset + 1;
    next[key]++;
}
