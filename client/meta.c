/*
 * meta: the metadata cache of a client handle (topics, partition counts, partitioners, split
 * keys, leaders, broker addresses) and the synchronous request path used by admin calls,
 * metadata refreshes and the consumer's offset lookups. Where it sits: producer / consumer /
 * admin -> rlc_meta -> rlc_conn -> ringlogd.
 *
 * The cache is refreshed on demand: the first use of a topic, and whenever a broker answers
 * NOT_LEADER, UNKNOWN_TOPIC or UNKNOWN_PARTITION (the caller asks with refresh = true). One mutex
 * guards it, so the producer's I/O thread and sending threads can share it. The synchronous
 * connection goes to any broker, except for a partition's own request (the consumer's
 * ListOffsets), which rlc_meta_call_leader sends to that partition's leader.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "common/err.h"

void rlc_meta_init(struct rlc_meta *m, const struct rl_conf *conf)
{
    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    m->conf = conf;
    m->conn.fd = -1;
}

void rlc_topic_free(struct rlc_topic *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->split_count; i++)
        free(t->splits[i]);
    free(t->splits);
    free(t->split_lens);
    free(t->leaders);
    free(t->name);
    memset(t, 0, sizeof(*t));
}

void rlc_meta_destroy(struct rlc_meta *m)
{
    rlc_conn_close(&m->conn);
    for (int i = 0; i < m->topic_count; i++) {
        rlc_topic_free(m->topics[i]);
        free(m->topics[i]);
    }
    m->topic_count = 0;
    pthread_mutex_destroy(&m->lock);
}

/* Opens the metadata connection to the first bootstrap (then known) broker that answers. */
static int meta_connect(struct rlc_meta *m)
{
    if (rlc_conn_is_open(&m->conn))
        return 0;
    int rc = RL_E_BROKER_UNAVAILABLE;
    char first_err[256] = "";
    for (int i = 0; i < m->conf->broker_count + m->broker_count; i++) {
        const struct rlc_addr *a = i < m->conf->broker_count
                                       ? &m->conf->brokers[i]
                                       : &m->brokers[i - m->conf->broker_count].addr;
        rc = rlc_conn_open(&m->conn, a, m->conf->connect_timeout_ms);
        if (rc == 0)
            return 0;
        if (!first_err[0])
            memcpy(first_err, m->conn.err, sizeof(first_err));
    }
    /* Whatever the socket said (refused, unreachable, timed out), the caller's answer is the
     * one the header promises: no broker could be reached. */
    rlc_set_err(m->err, sizeof(m->err), "no broker reachable: %s", first_err);
    return rc == RL_E_BROKER_UNAVAILABLE || rlc_connection_error(rc) ? RL_E_BROKER_UNAVAILABLE
                                                                    : rc;
}

bool rlc_connection_error(int code)
{
    switch (code) {
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -ECONNABORTED:
    case -EPIPE:
    case -ETIMEDOUT:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -ENOTCONN:
    case -EHOSTDOWN:
    case -EADDRNOTAVAIL:
        return true;
    default:
        return false;
    }
}

static int call_locked(struct rlc_meta *m, Ringlog__Request *req, int timeout_ms,
                       Ringlog__Response **resp, const uint8_t **data, size_t *data_len)
{
    *resp = NULL;
    int rc = meta_connect(m);
    if (rc)
        return rc;
    req->client_id = (char *)m->conf->client_id;
    rc = rlc_conn_call(&m->conn, req, timeout_ms, resp, data, data_len);
    if (rc)
        rlc_set_err(m->err, sizeof(m->err), "%s", m->conn.err);
    /* A connection lost mid-call is the broker becoming unavailable, as far as callers care. */
    return rlc_connection_error(rc) ? RL_E_BROKER_UNAVAILABLE : rc;
}

Ringlog__Request *rlc_list_offsets_one(struct rlc_list_offsets *q, const char *topic,
                                       int32_t partition, int64_t when)
{
    ringlog__list_offsets_partition__init(&q->part);
    q->part.partition = (uint32_t)partition;
    q->part.timestamp = when;
    q->partp = &q->part;
    ringlog__list_offsets_topic__init(&q->topic);
    q->topic.name = (char *)topic;
    q->topic.partitions = &q->partp;
    q->topic.n_partitions = 1;
    q->topicp = &q->topic;
    ringlog__list_offsets_request__init(&q->body);
    q->body.topics = &q->topicp;
    q->body.n_topics = 1;
    ringlog__request__init(&q->req);
    q->req.body_case = RINGLOG__REQUEST__BODY_LIST_OFFSETS;
    q->req.list_offsets = &q->body;
    return &q->req;
}

const Ringlog__ListOffsetsPartitionResult *rlc_list_offsets_result(const Ringlog__Response *resp)
{
    if (!resp || resp->body_case != RINGLOG__RESPONSE__BODY_LIST_OFFSETS ||
        resp->list_offsets->n_topics != 1 || resp->list_offsets->topics[0]->n_partitions != 1)
        return NULL;
    return resp->list_offsets->topics[0]->partitions[0];
}

int rlc_meta_call(struct rlc_meta *m, Ringlog__Request *req, int timeout_ms,
                  Ringlog__Response **resp, const uint8_t **data, size_t *data_len)
{
    struct rlc_log_scope ls;
    rlc_log_enter(m->conf, &ls);
    pthread_mutex_lock(&m->lock);
    int rc = call_locked(m, req, timeout_ms, resp, data, data_len);
    pthread_mutex_unlock(&m->lock);
    rlc_log_leave(&ls);
    return rc;
}

static int topic_copy(struct rlc_topic *dst, const struct rlc_topic *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->name = strdup(src->name);
    dst->partitions = src->partitions;
    dst->partitioner = src->partitioner;
    dst->fetched_ms = src->fetched_ms;
    dst->leaders = malloc(sizeof(int32_t) * (size_t)src->partitions);
    dst->split_count = src->split_count;
    dst->splits = calloc(src->split_count + 1, sizeof(uint8_t *));
    dst->split_lens = calloc(src->split_count + 1, sizeof(size_t));
    if (!dst->name || !dst->leaders || !dst->splits || !dst->split_lens)
        goto oom;
    memcpy(dst->leaders, src->leaders, sizeof(int32_t) * (size_t)src->partitions);
    for (size_t i = 0; i < src->split_count; i++) {
        dst->splits[i] = malloc(src->split_lens[i] + 1);
        if (!dst->splits[i])
            goto oom;
        memcpy(dst->splits[i], src->splits[i], src->split_lens[i]);
        dst->split_lens[i] = src->split_lens[i];
    }
    return 0;
oom:
    rlc_topic_free(dst);
    return -ENOMEM;
}

/* Builds a cache entry from a TopicMetadata. */
static int topic_from_proto(struct rlc_topic *t, const Ringlog__TopicMetadata *tm)
{
    struct rlc_topic tmp = {0};
    tmp.name = tm->name;
    tmp.partitions = (int32_t)tm->n_partitions;
    tmp.partitioner = tm->partitioner == RINGLOG__PARTITIONER__PARTITIONER_RANGE
                          ? RL_PARTITIONER_RANGE
                          : RL_PARTITIONER_HASH;
    tmp.fetched_ms = rlc_now_ms();
    int32_t leaders[RLC_MAX_PARTITIONS];
    uint8_t *splits[RLC_MAX_PARTITIONS];
    size_t lens[RLC_MAX_PARTITIONS];
    if (tm->n_partitions == 0 || tm->n_partitions > RLC_MAX_PARTITIONS ||
        tm->n_split_keys >= RLC_MAX_PARTITIONS)
        return RL_E_INVALID_PARTITIONS;
    for (size_t i = 0; i < tm->n_partitions; i++)
        leaders[i] = -1;
    for (size_t i = 0; i < tm->n_partitions; i++) {
        const Ringlog__PartitionMetadata *pm = tm->partitions[i];
        if (pm->partition < tm->n_partitions)
            leaders[pm->partition] = pm->error_code ? -1 : pm->leader;
    }
    for (size_t i = 0; i < tm->n_split_keys; i++) {
        splits[i] = tm->split_keys[i].data;
        lens[i] = tm->split_keys[i].len;
    }
    tmp.leaders = leaders;
    tmp.splits = splits;
    tmp.split_lens = lens;
    tmp.split_count = tm->n_split_keys;
    return topic_copy(t, &tmp);
}

static void store_brokers(struct rlc_meta *m, const Ringlog__MetadataResponse *mr)
{
    m->broker_count = 0;
    for (size_t i = 0; i < mr->n_brokers && m->broker_count < RLC_MAX_BROKERS; i++) {
        const Ringlog__BrokerInfo *b = mr->brokers[i];
        struct rlc_broker *dst = &m->brokers[m->broker_count];
        if (!b->host || !b->host[0] || strlen(b->host) >= RLC_HOST_MAX || b->port == 0 ||
            b->port > 65535)
            continue;
        dst->node_id = b->node_id;
        strcpy(dst->addr.host, b->host);
        dst->addr.port = (uint16_t)b->port;
        m->broker_count++;
    }
}

static struct rlc_topic *find_topic(struct rlc_meta *m, const char *name)
{
    for (int i = 0; i < m->topic_count; i++)
        if (strcmp(m->topics[i]->name, name) == 0)
            return m->topics[i];
    return NULL;
}

/* Asks the brokers about one topic and replaces its cache entry. */
static int fetch_topic(struct rlc_meta *m, const char *topic)
{
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    char *names[1] = {(char *)topic};
    mr.topics = names;
    mr.n_topics = 1;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    Ringlog__Response *resp;
    const uint8_t *data;
    size_t dlen;
    int rc = call_locked(m, &req, m->conf->request_timeout_ms, &resp, &data, &dlen);
    if (rc)
        goto out;
    if (resp->body_case != RINGLOG__RESPONSE__BODY_METADATA || resp->metadata->n_topics != 1) {
        rlc_set_err(m->err, sizeof(m->err), "broker sent a metadata answer without the topic");
        rc = RL_E_FRAME_MALFORMED;
        goto out;
    }
    store_brokers(m, resp->metadata);
    const Ringlog__TopicMetadata *tm = resp->metadata->topics[0];
    if (tm->error_code) {
        rc = tm->error_code;
        if (rc == RL_E_UNKNOWN_TOPIC)
            rlc_set_err(m->err, sizeof(m->err), "topic \"%s\" does not exist; create it "
                        "first (rl_admin_create_topic; from a shell: ringlog topic create %s), "
                        "or check the name", topic, topic);
        else
            rlc_set_err(m->err, sizeof(m->err), "topic \"%s\": %s", topic,
                        tm->error_message && tm->error_message[0] ? tm->error_message
                                                                  : rl_strerror(rc));
        goto out;
    }
    struct rlc_topic *t = find_topic(m, topic);
    if (!t) {
        if (m->topic_count == RLC_MAX_TOPICS) {
            rlc_set_err(m->err, sizeof(m->err), "a client handle tracks at most %d topics",
                        RLC_MAX_TOPICS);
            rc = RL_E_LIMIT;
            goto out;
        }
        t = calloc(1, sizeof(*t));
        if (!t) {
            rc = -ENOMEM;
            goto out;
        }
        m->topics[m->topic_count++] = t;
    } else {
        rlc_topic_free(t);
    }
    rc = topic_from_proto(t, tm);
    if (rc) {
        rlc_set_err(m->err, sizeof(m->err), "topic \"%s\": broker metadata is unusable (%s)",
                    topic, rl_strerror(rc));
        /* A freed entry has no name: drop its slot so lookups never see it. */
        for (int i = 0; i < m->topic_count; i++) {
            if (m->topics[i] == t) {
                m->topics[i] = m->topics[--m->topic_count];
                break;
            }
        }
        free(t);
    }
out:
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    return rc;
}

int rlc_meta_topic(struct rlc_meta *m, const char *topic, bool refresh, struct rlc_topic *out)
{
    struct rlc_log_scope ls;
    rlc_log_enter(m->conf, &ls);
    pthread_mutex_lock(&m->lock);
    int rc = 0;
    struct rlc_topic *t = find_topic(m, topic);
    if (!t || refresh) {
        rc = fetch_topic(m, topic);
        t = rc ? NULL : find_topic(m, topic);
    }
    if (t && out)
        rc = topic_copy(out, t);
    pthread_mutex_unlock(&m->lock);
    rlc_log_leave(&ls);
    return rc;
}

/* The leader's address from the cache (lock held). */
static int leader_locked(struct rlc_meta *m, const char *topic, int32_t partition,
                         struct rlc_addr *out)
{
    int rc = RL_E_NOT_FOUND;
    struct rlc_topic *t = find_topic(m, topic);
    if (!t || partition < 0 || partition >= t->partitions)
        goto out;
    int32_t leader = t->leaders[partition];
    rc = RL_E_NOT_LEADER;
    if (leader < 0)
        goto out;
    for (int i = 0; i < m->broker_count; i++) {
        if (m->brokers[i].node_id == leader) {
            *out = m->brokers[i].addr;
            rc = 0;
            goto out;
        }
    }
    /* A broker that lists no addresses is the one we talk to (a cluster of one). */
    if (m->broker_count == 0) {
        *out = rlc_conn_is_open(&m->conn) ? m->conn.addr : m->conf->brokers[0];
        rc = 0;
    }
out:
    return rc;
}

int rlc_meta_leader(struct rlc_meta *m, const char *topic, int32_t partition,
                    struct rlc_addr *out)
{
    pthread_mutex_lock(&m->lock);
    int rc = leader_locked(m, topic, partition, out);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int rlc_meta_call_leader(struct rlc_meta *m, const char *topic, int32_t partition,
                         Ringlog__Request *req, int timeout_ms, Ringlog__Response **resp,
                         const uint8_t **data, size_t *data_len)
{
    struct rlc_log_scope ls;
    rlc_log_enter(m->conf, &ls);
    pthread_mutex_lock(&m->lock);
    *resp = NULL;
    struct rlc_addr a;
    int rc = leader_locked(m, topic, partition, &a);
    if (rc) {
        rlc_set_err(m->err, sizeof(m->err), "no leader known for %s partition %d", topic,
                    partition);
        rc = RL_E_NOT_LEADER;
        goto out;
    }
    if (rlc_conn_is_open(&m->conn) &&
        (m->conn.addr.port != a.port || strcmp(m->conn.addr.host, a.host) != 0))
        rlc_conn_close(&m->conn);
    if (!rlc_conn_is_open(&m->conn)) {
        rc = rlc_conn_open(&m->conn, &a, m->conf->connect_timeout_ms);
        if (rc) {
            rlc_set_err(m->err, sizeof(m->err), "%s", m->conn.err);
            rc = rlc_connection_error(rc) ? RL_E_BROKER_UNAVAILABLE : rc;
            goto out;
        }
    }
    rc = call_locked(m, req, timeout_ms, resp, data, data_len);
out:
    pthread_mutex_unlock(&m->lock);
    rlc_log_leave(&ls);
    return rc;
}

int rlc_resp_error(const Ringlog__Response *resp, char *err, size_t errlen)
{
    if (!resp->error_code)
        return 0;
    rlc_set_err(err, errlen, "%s", resp->error_message && resp->error_message[0]
                                       ? resp->error_message
                                       : rl_strerror(resp->error_code));
    return resp->error_code;
}

bool rlc_retriable(int code)
{
    switch (code) {
    case RL_E_NOT_LEADER:
    case RL_E_NOT_ENOUGH_REPLICAS: /* a follower may be back in sync soon */
    case RL_E_THROTTLED:
    case RL_E_REQUEST_TIMED_OUT:
    case RL_E_TIMED_OUT:
    case RL_E_BROKER_UNAVAILABLE:
    case RL_E_UNKNOWN_PARTITION:
    case RL_E_UNKNOWN_TOPIC:
    case RL_E_SHUTTING_DOWN:
    case RL_E_TOO_MANY_CONNECTIONS:
    case RL_E_LOG_CLOSED:
    case RL_E_RAFT_NOT_LEADER:
    case RL_E_RAFT_DROPPED:
    case RL_E_PRODUCER_ID_NOT_YET_KNOWN: /* the broker's metadata catches up */
    case -ECONNRESET:
    case -ECONNREFUSED:
    case -EPIPE:
    case -ETIMEDOUT:
    case -ECONNABORTED:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
        return true;
    default:
        return false;
    }
}

bool rlc_needs_metadata(int code)
{
    return code == RL_E_NOT_LEADER || code == RL_E_UNKNOWN_PARTITION ||
           code == RL_E_UNKNOWN_TOPIC || code == RL_E_RAFT_NOT_LEADER;
}
