/*
 * consumer: the reading half of libringlog. Data path:
 *   rl_consumer_poll -> records of the batch being iterated (checksum checked when the batch is
 *   opened) -> when the fetched answer is used up, the next one, which was asked for as soon as
 *   the previous answer arrived (prefetching) -> Fetch (long-poll) -> ringlogd.
 *
 * Single-threaded: everything runs on the caller's thread inside rl_consumer_poll, bounded by its
 * timeout. One connection per leader broker. At most one fetch per partition is in flight (the
 * next one's start is only known from the previous answer), but while partitions stream each
 * has its own, so up to MAX_FETCHES_INFLIGHT are pipelined on a connection; once all partitions
 * are caught up, one combined fetch long-polls (see fetch_more). A fetched answer is iterated in
 * place in the connection's receive buffer (no copy of record bytes), and the next answer is not
 * read from the socket until the current one is used up, so that buffer stays valid while the
 * records it holds are handed out; answers behind it wait in the socket buffer.
 *
 * Positions: each assigned partition has `position`, the next offset to hand out, and
 * `fetch_offset`, where the next fetch starts (ahead of position by what is buffered). A record
 * below position is skipped (a fetch that starts inside a batch returns the whole batch). A seek
 * bumps the partition's epoch, so answers to fetches sent before it are ignored.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"

#define NEEDS_RESET INT64_MIN /* position must be resolved with ListOffsets */
/* Fetches in flight per broker connection while partitions stream (one per partition). */
#define MAX_FETCHES_INFLIGHT 32

struct cpart {
    char *topic;
    int32_t partition;
    int64_t position;
    int64_t reset_to;     /* RL_OFFSET_EARLIEST / LATEST / timestamp >= 0 when NEEDS_RESET */
    int64_t fetch_offset;
    uint32_t epoch;       /* bumped by seek */
    uint32_t req_epoch;   /* epoch when the partition's fetch in flight was sent */
    uint32_t buf_epoch;   /* epoch of the fetch whose answer is being iterated */
    int broker;           /* index into c->brokers, -1 when the leader is unknown */
    bool inflight;        /* a fetch for it is in flight */
    bool had_data;        /* its last answer carried data (or it was just positioned) */
    bool pick;            /* chosen for the fetch being built (send_fetch clears it) */
    /* After a seek by time: records older than this are skipped until the first that is not.
     * The broker answers at batch granularity; this makes the seek exact per record. */
    int64_t skip_before_ts;
    int64_t committed;    /* group members: the last offset committed for it, -1 if unknown */
    int64_t high_watermark; /* from its last fetch answer, -1 before one (rl_consumer_stats) */
};

struct cbroker {
    struct rlc_addr addr;
    struct rlc_conn conn;
    int inflight; /* fetches in flight, at most MAX_FETCHES_INFLIGHT */
    /* When each fetch in flight was sent (a ring: answers come in request order), for the
     * round trips of rl_consumer_stats. */
    int64_t sent_us[MAX_FETCHES_INFLIGHT];
    int sent_head;
    /* When the broker last showed progress: the first fetch in flight was sent, or an answer
     * came. With fetches in flight and nothing for request.timeout.ms beyond the long-poll
     * wait, the path is dead (a silent peer, a lost answer): the connection is started over. */
    int64_t progress_ms;
    int64_t next_try_ms;
    int failures;
    /* The answer being iterated (resp NULL when none). */
    Ringlog__Response *resp;
    const uint8_t *data;
    size_t data_len;
    size_t ti, pi;          /* topic and partition result being walked */
    size_t sec_off, sec_end; /* the current partition's section of data */
    struct cpart *cur;      /* its consumer partition, NULL when skipped */
    bool batch_open;
};

struct rl_consumer {
    struct rl_conf conf;
    struct rlc_meta meta;
    struct cpart *parts;
    int part_count, part_cap;
    struct cbroker brokers[RLC_MAX_BROKERS];
    int broker_count;
    struct batch_reader *reader;
    bool needs_route;
    bool refresh;      /* metadata is stale: ask again before routing */
    int pending_error; /* a partition error to report from the next poll */
    struct rlc_group *group; /* after rl_consumer_subscribe */
    /* Wakes a waiting poll (an eventfd): rl_consumer_wakeup from any thread, and the group's
     * heartbeat thread when it has news for the member (a rebalance, a lost membership). */
    int wake_fd;
    atomic_bool wakeup; /* rl_consumer_wakeup was called: the poll returns 0 */
    /* rl_consumer_stats: since creation. */
    uint64_t records, bytes, fetches, retries, rtt_sum_us, rtt_max_us, rtt_last_us;
    bool group_ready;   /* the group's JoinGroup answer arrived: run the duty */
    uint64_t rnd;
    char err[512];
};

struct rl_consumer *rl_consumer_new(const struct rl_conf *conf, char *err, size_t errlen)
{
    if (!conf) {
        rlc_set_err(err, errlen, "rl_consumer_new: conf is NULL");
        return NULL;
    }
    /* The same cross-key checks as a producer (session and heartbeat above all). */
    if (rl_conf_check(conf, err, errlen) != 0) {
        rlc_fail(NULL, RL_E_INVALID_CONFIG, "%s", err ? err : "contradictory configuration");
        return NULL;
    }
    struct rl_consumer *c = calloc(1, sizeof(*c));
    if (!c) {
        rlc_set_err(err, errlen, "out of memory");
        return NULL;
    }
    c->conf = *conf;
    rlc_meta_init(&c->meta, &c->conf);
    c->reader = batch_reader_create(RL_BATCH_MAX_BYTES);
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!c->reader || c->wake_fd < 0) {
        rlc_set_err(err, errlen, "%s", c->reader ? strerror(errno) : "out of memory");
        if (c->wake_fd >= 0)
            close(c->wake_fd);
        batch_reader_destroy(c->reader);
        rlc_meta_destroy(&c->meta);
        free(c);
        return NULL;
    }
    c->rnd = (uint64_t)rlc_wall_ms() | 1;
    return c;
}

static void broker_drop_answer(struct cbroker *b)
{
    if (b->resp)
        ringlog__response__free_unpacked(b->resp, NULL);
    b->resp = NULL;
    b->cur = NULL;
    b->batch_open = false;
}

void rl_consumer_destroy(struct rl_consumer *c)
{
    if (!c)
        return;
    if (c->group) {
        struct rlc_log_scope ls;
        rlc_log_enter(&c->conf, &ls); /* the group's last words go to the log callback */
        rlc_group_close(c->group);
        rlc_group_free(c->group);
        rlc_log_leave(&ls);
    }
    for (int i = 0; i < c->broker_count; i++) {
        broker_drop_answer(&c->brokers[i]);
        rlc_conn_close(&c->brokers[i].conn);
    }
    for (int i = 0; i < c->part_count; i++)
        free(c->parts[i].topic);
    free(c->parts);
    batch_reader_destroy(c->reader);
    rlc_meta_destroy(&c->meta);
    close(c->wake_fd);
    free(c);
}

void rlc_consumer_wake(struct rl_consumer *c)
{
    uint64_t one = 1;
    ssize_t w = write(c->wake_fd, &one, sizeof(one)); /* EAGAIN: a wake is pending already */
    (void)w;
}

void rl_consumer_wakeup(struct rl_consumer *c)
{
    atomic_store(&c->wakeup, true);
    rlc_consumer_wake(c);
}

const char *rl_consumer_last_error(struct rl_consumer *c)
{
    return c->err;
}

static struct cpart *part_find(struct rl_consumer *c, const char *topic, int32_t partition)
{
    for (int i = 0; i < c->part_count; i++)
        if (c->parts[i].partition == partition && strcmp(c->parts[i].topic, topic) == 0)
            return &c->parts[i];
    return NULL;
}

static int broker_index(struct rl_consumer *c, const struct rlc_addr *a)
{
    for (int i = 0; i < c->broker_count; i++)
        if (c->brokers[i].addr.port == a->port && strcmp(c->brokers[i].addr.host, a->host) == 0)
            return i;
    if (c->broker_count == RLC_MAX_BROKERS)
        return -1;
    struct cbroker *b = &c->brokers[c->broker_count];
    memset(b, 0, sizeof(*b));
    b->addr = *a;
    b->conn.fd = -1;
    return c->broker_count++;
}

/* Sets a partition's position; anything buffered or in flight for it is ignored from now on. */
static void part_set(struct cpart *p, int64_t offset)
{
    p->epoch++;
    p->had_data = true;
    p->skip_before_ts = INT64_MIN;
    if (offset >= 0) {
        p->position = offset;
        p->fetch_offset = offset;
    } else {
        p->position = NEEDS_RESET;
        p->reset_to = offset;
    }
}

/* Rewinds a partition to what it has handed out: its next fetch starts at its position, and
 * answers sent before (buffered or in flight) are ignored from now on. */
static void part_rewind(struct cpart *p)
{
    if (p->position == NEEDS_RESET || p->fetch_offset == p->position)
        return;
    int64_t skip = p->skip_before_ts;
    part_set(p, p->position);
    p->skip_before_ts = skip;
}

static int assign_one(struct rl_consumer *c, const char *topic, int32_t partition,
                      int64_t offset)
{
    struct cpart *p = part_find(c, topic, partition);
    if (p) {
        part_set(p, offset);
        return 0;
    }
    if (c->part_count == RLC_MAX_PARTITIONS) {
        rlc_set_err(c->err, sizeof(c->err), "a consumer takes at most %d partitions",
                    RLC_MAX_PARTITIONS);
        return RL_E_LIMIT;
    }
    if (c->part_count == c->part_cap) {
        int cap = c->part_cap ? c->part_cap * 2 : 16;
        struct cpart *n = realloc(c->parts, sizeof(*n) * (size_t)cap);
        if (!n)
            return -ENOMEM;
        c->parts = n;
        c->part_cap = cap;
    }
    p = &c->parts[c->part_count];
    memset(p, 0, sizeof(*p));
    p->topic = strdup(topic);
    if (!p->topic)
        return -ENOMEM;
    p->partition = partition;
    p->broker = -1;
    p->committed = -1;
    p->high_watermark = -1;
    part_set(p, offset);
    c->part_count++;
    c->needs_route = true;
    /* Answers being iterated may point at parts[] entries that moved: drop them, and rewind
     * every partition to what it has handed out, so the dropped records are fetched again. */
    for (int i = 0; i < c->broker_count; i++)
        broker_drop_answer(&c->brokers[i]);
    for (int i = 0; i < c->part_count - 1; i++)
        part_rewind(&c->parts[i]);
    return 0;
}

static int topic_partitions(struct rl_consumer *c, const char *topic)
{
    struct rlc_topic t;
    int rc = rlc_meta_topic(&c->meta, topic, false, &t);
    if (rc) {
        rlc_set_err(c->err, sizeof(c->err), "%s", c->meta.err);
        return rc;
    }
    int n = t.partitions;
    rlc_topic_free(&t);
    return n;
}

/* A group member's partitions come from its group only. */
static int check_manual(struct rl_consumer *c)
{
    if (!c->group)
        return 0;
    rlc_set_err(c->err, sizeof(c->err), "this consumer subscribed to a group, which assigns its "
                "partitions: use a consumer without rl_consumer_subscribe to assign by hand");
    return RL_E_INVALID_ARGUMENT;
}

int rl_consumer_assign(struct rl_consumer *c, const char *topic, int32_t partition,
                       int64_t offset)
{
    int n = check_manual(c);
    if (n == 0)
        n = topic_partitions(c, topic);
    if (n < 0)
        return n;
    if (partition < 0 || partition >= n) {
        rlc_set_err(c->err, sizeof(c->err), "topic \"%s\" has no partition %d (it has %d: "
                    "0..%d)", topic, partition, n, n - 1);
        return RL_E_UNKNOWN_PARTITION;
    }
    return assign_one(c, topic, partition, offset);
}

int rl_consumer_assign_topic(struct rl_consumer *c, const char *topic, int64_t offset)
{
    int n = check_manual(c);
    if (n == 0)
        n = topic_partitions(c, topic);
    for (int32_t i = 0; i < n; i++) {
        int rc = assign_one(c, topic, i, offset);
        if (rc)
            return rc;
    }
    return n;
}

int rl_consumer_seek(struct rl_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    struct cpart *p = part_find(c, topic, partition);
    if (!p) {
        rlc_set_err(c->err, sizeof(c->err), "%s partition %d is not assigned", topic, partition);
        return RL_E_NOT_FOUND;
    }
    part_set(p, offset < 0 && offset != RL_OFFSET_LATEST ? RL_OFFSET_EARLIEST : offset);
    return 0;
}

static int resolve_part(struct rl_consumer *c, struct cpart *p);

int64_t rl_consumer_position(struct rl_consumer *c, const char *topic, int32_t partition)
{
    struct cpart *p = part_find(c, topic, partition);
    if (!p) {
        rlc_set_err(c->err, sizeof(c->err), "%s partition %d is not assigned", topic, partition);
        return RL_E_NOT_FOUND;
    }
    struct rlc_log_scope ls;
    rlc_log_enter(&c->conf, &ls);
    int rc = resolve_part(c, p);
    rlc_log_leave(&ls);
    return rc ? rc : p->position;
}

/* Asks for one partition's offset at `when` (earliest, latest or a timestamp). */
static int list_offset(struct rl_consumer *c, const char *topic, int32_t partition, int64_t when,
                       int64_t *offset)
{
    struct rlc_list_offsets q;
    Ringlog__Request *req = rlc_list_offsets_one(&q, topic, partition, when);
    Ringlog__Response *resp = NULL;
    const uint8_t *data;
    size_t dlen;
    /* The partition's leader answers; a stale view (NOT_LEADER) is refreshed and asked once
     * more. */
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (resp)
            ringlog__response__free_unpacked(resp, NULL);
        resp = NULL;
        struct rlc_topic t;
        rc = rlc_meta_topic(&c->meta, topic, attempt > 0, &t);
        if (rc)
            break;
        rlc_topic_free(&t);
        rc = rlc_meta_call_leader(&c->meta, topic, partition, req, c->conf.request_timeout_ms,
                                  &resp, &data, &dlen);
        if (rc == RL_E_NOT_LEADER)
            continue;
        const Ringlog__ListOffsetsPartitionResult *r = rc ? NULL : rlc_list_offsets_result(resp);
        if (!r || r->error_code != RL_E_NOT_LEADER)
            break;
    }
    if (rc) {
        rlc_set_err(c->err, sizeof(c->err), "list offsets: %s", c->meta.err);
        goto out;
    }
    const Ringlog__ListOffsetsPartitionResult *r = rlc_list_offsets_result(resp);
    if (!r) {
        rc = RL_E_FRAME_MALFORMED;
        rlc_set_err(c->err, sizeof(c->err), "broker sent a malformed list-offsets answer");
        goto out;
    }
    rc = r->error_code;
    if (rc) {
        rlc_set_err(c->err, sizeof(c->err), "topic \"%s\" partition %d: %s", topic, partition,
                    r->error_message && r->error_message[0] ? r->error_message
                                                            : rl_strerror(rc));
        goto out;
    }
    *offset = r->offset;
out:
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
    return rc;
}

int rl_consumer_seek_timestamp(struct rl_consumer *c, const char *topic, int32_t partition,
                               int64_t timestamp_ms)
{
    struct cpart *p = part_find(c, topic, partition);
    if (!p) {
        rlc_set_err(c->err, sizeof(c->err), "%s partition %d is not assigned", topic, partition);
        return RL_E_NOT_FOUND;
    }
    int64_t off;
    int rc = list_offset(c, topic, partition, timestamp_ms < 0 ? 0 : timestamp_ms, &off);
    if (rc == 0 && off < 0)
        rc = list_offset(c, topic, partition, RL_OFFSET_LATEST, &off);
    if (rc)
        return rc;
    part_set(p, off);
    p->skip_before_ts = timestamp_ms;
    return 0;
}

/* Turns a position waiting for earliest/latest into an offset (asks the broker). */
static int resolve_part(struct rl_consumer *c, struct cpart *p)
{
    if (p->position != NEEDS_RESET)
        return 0;
    int64_t off;
    int rc = list_offset(c, p->topic, p->partition, p->reset_to, &off);
    if (rc)
        return rc;
    uint32_t epoch = p->epoch;
    RL_DEBUG("consumer: %s-%d reset (%lld) to offset %lld", p->topic, p->partition,
             (long long)p->reset_to, (long long)off);
    part_set(p, off);
    p->epoch = epoch; /* nothing was fetched at the unresolved position */
    return 0;
}

int rlc_consumer_resolve(struct rl_consumer *c)
{
    for (int i = 0; i < c->part_count; i++) {
        int rc = resolve_part(c, &c->parts[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* Resolves positions waiting for earliest/latest and routes partitions to their leaders. */
static int prepare(struct rl_consumer *c)
{
    int rc = rlc_consumer_resolve(c);
    if (rc)
        return rc;
    if (!c->needs_route)
        return 0;
    c->needs_route = false;
    for (int i = 0; c->refresh && i < c->part_count; i++) {
        /* One metadata request per topic: partitions of a topic are assigned together. */
        if (i > 0 && strcmp(c->parts[i - 1].topic, c->parts[i].topic) == 0)
            continue;
        struct rlc_topic t;
        if (rlc_meta_topic(&c->meta, c->parts[i].topic, true, &t) == 0)
            rlc_topic_free(&t);
    }
    c->refresh = false;
    for (int i = 0; i < c->part_count; i++) {
        struct cpart *p = &c->parts[i];
        struct rlc_addr a;
        if (rlc_meta_leader(&c->meta, p->topic, p->partition, &a) != 0) {
            struct rlc_topic t;
            if (rlc_meta_topic(&c->meta, p->topic, true, &t) == 0)
                rlc_topic_free(&t);
            if (rlc_meta_leader(&c->meta, p->topic, p->partition, &a) != 0) {
                p->broker = -1;
                c->needs_route = true;
                continue;
            }
        }
        p->broker = broker_index(c, &a);
    }
    return 0;
}

/* --- fetching --------------------------------------------------------------------------------- */

static bool fetch_ready(const struct cpart *p, int bi)
{
    return p->broker == bi && p->position != NEEDS_RESET && !p->inflight;
}

static bool picked(const struct cpart *p, int bi)
{
    return p->pick && fetch_ready(p, bi);
}

/* Sends one Fetch for the ready partitions of broker bi marked `pick`, and clears the marks.
 * Returns 0, 1 when nothing was asked, or a negative code. */
static int send_fetch(struct rl_consumer *c, int bi, uint32_t max_wait_ms)
{
    struct cbroker *b = &c->brokers[bi];
    int n = 0;
    for (int i = 0; i < c->part_count; i++)
        n += picked(&c->parts[i], bi);
    if (n == 0) {
        for (int i = 0; i < c->part_count; i++)
            c->parts[i].pick = false;
        return 1;
    }
    Ringlog__FetchPartition *fps = calloc((size_t)n, sizeof(*fps));
    Ringlog__FetchPartition **fpp = calloc((size_t)n, sizeof(*fpp));
    Ringlog__FetchTopic *fts = calloc((size_t)n, sizeof(*fts));
    Ringlog__FetchTopic **ftp = calloc((size_t)n, sizeof(*ftp));
    int rc = -ENOMEM;
    if (!fps || !fpp || !fts || !ftp)
        goto out;
    size_t nt = 0;
    int k = 0;
    /* Group by topic; partitions are laid out topic by topic so each topic's pointers are
     * contiguous in fpp. */
    for (int i = 0; i < c->part_count; i++) {
        struct cpart *p = &c->parts[i];
        if (!picked(p, bi))
            continue;
        bool seen = false;
        for (size_t t = 0; t < nt && !seen; t++)
            seen = strcmp(fts[t].name, p->topic) == 0;
        if (seen)
            continue;
        ringlog__fetch_topic__init(&fts[nt]);
        fts[nt].name = p->topic;
        fts[nt].partitions = &fpp[k];
        for (int j = i; j < c->part_count; j++) {
            struct cpart *q = &c->parts[j];
            if (!picked(q, bi) || strcmp(q->topic, p->topic))
                continue;
            ringlog__fetch_partition__init(&fps[k]);
            fps[k].partition = (uint32_t)q->partition;
            fps[k].fetch_offset = (uint64_t)q->fetch_offset;
            fps[k].max_bytes = c->conf.max_partition_fetch_bytes;
            fpp[k] = &fps[k];
            k++;
            fts[nt].n_partitions++;
        }
        ftp[nt] = &fts[nt];
        nt++;
    }
    Ringlog__FetchRequest fr = RINGLOG__FETCH_REQUEST__INIT;
    fr.max_wait_ms = max_wait_ms;
    fr.min_bytes = c->conf.fetch_min_bytes;
    fr.max_bytes = c->conf.fetch_max_bytes;
    fr.topics = ftp;
    fr.n_topics = nt;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.client_id = c->conf.client_id;
    req.body_case = RINGLOG__REQUEST__BODY_FETCH;
    req.fetch = &fr;
    rc = rlc_conn_queue(&b->conn, &req, NULL, 0, NULL);
    if (rc == 0)
        rc = rlc_conn_flush(&b->conn);
    if (rc == 0) {
        if (b->inflight == 0) {
            b->progress_ms = rlc_now_ms();
            b->sent_head = 0;
        }
        b->sent_us[(b->sent_head + b->inflight) % MAX_FETCHES_INFLIGHT] = rlc_now_us();
        b->inflight++;
        for (int i = 0; i < c->part_count; i++) {
            struct cpart *q = &c->parts[i];
            if (picked(q, bi)) {
                q->inflight = true;
                q->req_epoch = q->epoch;
            }
        }
    }
out:
    for (int i = 0; i < c->part_count; i++)
        c->parts[i].pick = false;
    free(fps);
    free(fpp);
    free(fts);
    free(ftp);
    return rc;
}

/* Keeps the broker busy. While partitions stream (their last answers carried data), each ready
 * one gets its own fetch that does not wait (max_wait 0), so several are in flight and the
 * broker works while the application iterates; partitions that were caught up ride along in
 * the next such fetch instead of spinning on fetches of their own. Once every partition is
 * caught up, one combined fetch long-polls for all of them: a per-partition long poll would
 * hold back, by the in-order rule, the answers of partitions behind it. Returns 0 or a
 * negative code. */
static int fetch_more(struct rl_consumer *c, int bi)
{
    struct cbroker *b = &c->brokers[bi];
    bool streaming = false;
    for (int i = 0; i < c->part_count && !streaming; i++)
        streaming = c->parts[i].broker == bi && c->parts[i].had_data &&
                    c->parts[i].position != NEEDS_RESET;
    if (!streaming) {
        if (b->inflight > 0)
            return 0;
        for (int i = 0; i < c->part_count; i++)
            c->parts[i].pick = true;
        int rc = send_fetch(c, bi, (uint32_t)c->conf.fetch_max_wait_ms);
        return rc > 0 ? 0 : rc;
    }
    bool idle_taken = false;
    for (int i = 0; i < c->part_count && b->inflight < MAX_FETCHES_INFLIGHT; i++) {
        if (!fetch_ready(&c->parts[i], bi) || !c->parts[i].had_data)
            continue;
        c->parts[i].pick = true;
        for (int j = 0; j < c->part_count && !idle_taken; j++)
            if (fetch_ready(&c->parts[j], bi) && !c->parts[j].had_data)
                c->parts[j].pick = true;
        idle_taken = true;
        int rc = send_fetch(c, bi, 0);
        if (rc == RL_E_FULL)
            return 0;
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The connection to b failed. The answer being iterated is dropped with it, and its
 * partitions' fetch_offset had already moved past its records when it was taken (answers still
 * in the buffer or in flight had not moved anything): those partitions start their next fetch
 * at their position again, or the records between position and fetch_offset would be skipped. */
static void conn_failed(struct rl_consumer *c, struct cbroker *b, int code)
{
    rlc_set_err(c->err, sizeof(c->err), "%s", b->conn.err[0] ? b->conn.err : rl_strerror(code));
    const Ringlog__FetchResponse *fr = b->resp ? b->resp->fetch : NULL;
    for (size_t i = 0; fr && i < fr->n_topics; i++)
        for (size_t j = 0; j < fr->topics[i]->n_partitions; j++) {
            struct cpart *p = part_find(c, fr->topics[i]->name,
                                        (int32_t)fr->topics[i]->partitions[j]->partition);
            if (p)
                part_rewind(p);
        }
    broker_drop_answer(b);
    rlc_conn_close(&b->conn);
    b->inflight = 0;
    for (int i = 0; i < c->part_count; i++)
        if (c->parts[i].broker == b - c->brokers)
            c->parts[i].inflight = false;
    c->retries++;
    b->failures++;
    b->next_try_ms = rlc_now_ms() + rlc_backoff_ms(b->failures, c->conf.retry_backoff_ms,
                                                   c->conf.retry_backoff_max_ms,
                                                   rlc_rand(&c->rnd));
    c->refresh = true;
    c->needs_route = true;
}

/* Handles a partition-level error in a fetch answer. */
static void part_error(struct rl_consumer *c, struct cpart *p, int code, const char *msg)
{
    if (code == RL_E_OFFSET_OUT_OF_RANGE && c->conf.auto_offset_reset != 0) {
        part_set(p, c->conf.auto_offset_reset);
        return;
    }
    if (rlc_needs_metadata(code) || rlc_retriable(code)) {
        c->refresh = true;
        c->needs_route = true;
        return;
    }
    if (!c->pending_error) {
        c->pending_error = code;
        rlc_set_err(c->err, sizeof(c->err), "topic \"%s\" partition %d at offset %lld: %s",
                    p->topic, p->partition, (long long)p->fetch_offset,
                    msg && msg[0] ? msg : rl_strerror(code));
    }
}

/* Where the next fetch of a partition starts after a section of whole batches. */
static void advance_fetch_offset(struct cpart *p, const uint8_t *sec, size_t len)
{
    size_t off = 0;
    while (len - off >= RL_BATCH_HEADER_SIZE) {
        struct batch_header h;
        if (batch_header_decode(sec + off, len - off, &h) != 0 || h.batch_len > len - off)
            break;
        int64_t next = (int64_t)h.base_offset + h.last_offset_delta + 1;
        if (next > p->fetch_offset)
            p->fetch_offset = next;
        off += h.batch_len;
    }
}

/* Takes a fetch answer for iteration and notes where the next fetch of each partition starts. */
static void install_answer(struct rl_consumer *c, struct cbroker *b, Ringlog__Response *resp,
                           const uint8_t *data, size_t len)
{
    if (b->inflight > 0) {
        uint64_t rtt = (uint64_t)(rlc_now_us() - b->sent_us[b->sent_head]);
        b->sent_head = (b->sent_head + 1) % MAX_FETCHES_INFLIGHT;
        c->fetches++;
        c->rtt_sum_us += rtt;
        c->rtt_last_us = rtt;
        c->rtt_max_us = rtt > c->rtt_max_us ? rtt : c->rtt_max_us;
    }
    b->inflight--;
    if (resp->error_code || resp->body_case != RINGLOG__RESPONSE__BODY_FETCH) {
        /* A request-level failure (throttling, a malformed request): start the connection
         * over, so no partition is left waiting for an answer that will not come. */
        int code = resp->error_code ? resp->error_code : RL_E_FRAME_MALFORMED;
        char msg[400];
        snprintf(msg, sizeof(msg), "fetch failed: %s", resp->error_message &&
                 resp->error_message[0] ? resp->error_message : rl_strerror(code));
        uint32_t throttle_ms = resp->throttle_ms;
        ringlog__response__free_unpacked(resp, NULL);
        conn_failed(c, b, code);
        if (throttle_ms)
            b->next_try_ms = rlc_now_ms() + throttle_ms;
        if (!c->pending_error && !rlc_retriable(code)) {
            c->pending_error = code;
            rlc_set_err(c->err, sizeof(c->err), "%s", msg);
        }
        return;
    }
    size_t off = 0;
    const Ringlog__FetchResponse *fr = resp->fetch;
    for (size_t i = 0; i < fr->n_topics; i++) {
        for (size_t j = 0; j < fr->topics[i]->n_partitions; j++) {
            const Ringlog__FetchPartitionResult *r = fr->topics[i]->partitions[j];
            size_t sec = r->data_len <= len - off ? r->data_len : len - off;
            struct cpart *p = part_find(c, fr->topics[i]->name, (int32_t)r->partition);
            if (p && !r->error_code)
                p->high_watermark = (int64_t)r->high_watermark;
            if (p) {
                p->buf_epoch = p->req_epoch; /* the prefetch will overwrite req_epoch */
                p->inflight = false;
                p->had_data = sec > 0 || r->error_code;
            }
            if (p && p->req_epoch == p->epoch && p->position != NEEDS_RESET) {
                if (r->error_code)
                    part_error(c, p, r->error_code, r->error_message);
                else
                    advance_fetch_offset(p, data + off, sec);
            }
            off += sec;
        }
    }
    RL_DEBUG("consumer: answer of %zu bytes from %s:%u, %d fetches still in flight", len,
             b->addr.host, b->addr.port, b->inflight);
    b->resp = resp;
    b->data = data;
    b->data_len = len;
    b->ti = 0;
    b->pi = 0;
    b->sec_off = b->sec_end = 0;
    b->cur = NULL;
    b->batch_open = false;
    b->pi = (size_t)-1; /* the walk starts by stepping to the first section */
}

/* Steps to the next partition section of the answer; false at its end. */
static bool next_section(struct rl_consumer *c, struct cbroker *b)
{
    const Ringlog__FetchResponse *fr = b->resp->fetch;
    b->sec_off = b->sec_end;
    b->pi++;
    while (b->ti < fr->n_topics && b->pi >= fr->topics[b->ti]->n_partitions) {
        b->ti++;
        b->pi = 0;
    }
    if (b->ti >= fr->n_topics)
        return false;
    const Ringlog__FetchPartitionResult *r = fr->topics[b->ti]->partitions[b->pi];
    size_t left = b->data_len - b->sec_off;
    b->sec_end = b->sec_off + (r->data_len <= left ? r->data_len : left);
    struct cpart *p = part_find(c, fr->topics[b->ti]->name, (int32_t)r->partition);
    b->cur = p && !r->error_code && p->buf_epoch == p->epoch && p->position != NEEDS_RESET
                 ? p : NULL;
    return true;
}

static void fill_record(struct rl_record *rec, const struct cpart *p,
                        const struct batch_record *r)
{
    rec->topic = p->topic;
    rec->partition = p->partition;
    rec->offset = r->offset;
    rec->timestamp_ms = r->timestamp;
    rec->key = r->key; /* NULL for a null key (a length of -1 in the batch) */
    rec->key_len = r->key_len > 0 ? (size_t)r->key_len : 0;
    rec->value = r->value;
    rec->value_len = r->value_len > 0 ? (size_t)r->value_len : 0;
    rec->header_count = r->header_count;
    rec->headers_raw = r->headers;
    rec->headers_len = r->headers_len;
}

/* A damaged batch: report it and fetch the partition again from its position. */
static int batch_damaged(struct rl_consumer *c, struct cbroker *b, int code, int64_t at)
{
    struct cpart *p = b->cur;
    rlc_set_err(c->err, sizeof(c->err), "topic \"%s\" partition %d: batch at offset %lld from "
                "broker %s:%u is damaged: %s", p->topic, p->partition, (long long)at,
                b->addr.host, b->addr.port, rl_strerror(code));
    part_set(p, p->position);
    b->batch_open = false;
    b->cur = NULL;
    c->retries++;
    return code;
}

/* Hands out the next record of the answer being iterated: 1, 0 when used up, or an error. */
static int iter_next(struct rl_consumer *c, struct cbroker *b, struct rl_record *rec)
{
    while (b->resp) {
        if (b->cur && b->cur->epoch != b->cur->buf_epoch) {
            b->cur = NULL; /* sought since the fetch: drop what is left of it */
            b->batch_open = false;
        }
        if (b->batch_open) {
            struct batch_record r;
            int rc = batch_reader_next(c->reader, &r);
            if (rc == 1 && r.offset < b->cur->position)
                continue;
            if (rc == 1 && r.timestamp < b->cur->skip_before_ts) {
                b->cur->position = r.offset + 1;
                continue;
            }
            if (rc == 1) {
                b->cur->skip_before_ts = INT64_MIN;
                fill_record(rec, b->cur, &r);
                b->cur->position = r.offset + 1;
                c->records++;
                c->bytes += rec->key_len + rec->value_len;
                return 1;
            }
            if (rc < 0)
                return batch_damaged(c, b, rc, b->cur->position);
            b->batch_open = false;
            b->sec_off += batch_peek_len(b->data + b->sec_off);
            continue;
        }
        size_t left = b->sec_end - b->sec_off;
        if (b->cur && left >= RL_BATCH_HEADER_SIZE) {
            const uint8_t *at = b->data + b->sec_off;
            struct batch_header h;
            int rc = batch_header_decode(at, left, &h);
            if (rc == 0 && h.batch_len <= left &&
                (int64_t)(h.base_offset + h.last_offset_delta) < b->cur->position) {
                b->sec_off += h.batch_len; /* wholly before the position: nothing to return */
                continue;
            }
            if (rc == 0 && h.batch_len <= left && (h.flags & BATCH_FLAG_CONTROL)) {
                /* A replicated log's control batch (a leader's no-op or a configuration):
                 * no records for the application; the position moves past it. */
                b->cur->position = (int64_t)(h.base_offset + h.last_offset_delta) + 1;
                b->sec_off += h.batch_len;
                continue;
            }
            if (rc == 0 && h.batch_len > left) {
                b->sec_off = b->sec_end; /* a partial batch at the end: fetched again later */
                continue;
            }
            if (rc)
                return batch_damaged(c, b, rc, b->cur->position);
            rc = batch_reader_open(c->reader, at, h.batch_len, NULL);
            if (rc)
                return batch_damaged(c, b, rc, (int64_t)h.base_offset);
            b->batch_open = true;
            continue;
        }
        if (!next_section(c, b))
            broker_drop_answer(b);
    }
    return 0;
}

/* Asks every broker that has ready partitions and no fetch in flight; connects when needed.
 * Returns the last connection error seen, or 0. */
static int send_fetches(struct rl_consumer *c, int64_t now)
{
    int last = 0;
    for (int i = 0; i < c->broker_count; i++) {
        struct cbroker *b = &c->brokers[i];
        if (b->resp || b->next_try_ms > now)
            continue;
        bool any = false;
        for (int j = 0; j < c->part_count && !any; j++)
            any = fetch_ready(&c->parts[j], i);
        if (!any)
            continue;
        if (!rlc_conn_is_open(&b->conn)) {
            int rc = rlc_conn_open(&b->conn, &b->addr, c->conf.connect_timeout_ms);
            if (rc) {
                conn_failed(c, b, rc);
                last = rc;
                continue;
            }
        }
        int rc = fetch_more(c, i);
        if (rc < 0) {
            conn_failed(c, b, rc);
            last = rc;
        }
    }
    return last;
}

/* Reads one answer from broker bi if a whole one is there (in the buffer or the socket), takes
 * it for iteration and at once sends the next fetches (prefetch). Returns 1 when an answer was
 * taken, 0 when none is complete yet. */
static int take_answer(struct rl_consumer *c, int bi)
{
    struct cbroker *b = &c->brokers[bi];
    int rc = rlc_conn_flush(&b->conn);
    Ringlog__Response *resp = NULL;
    const uint8_t *data;
    size_t len;
    if (rc == 0)
        rc = rlc_conn_read(&b->conn, &resp, &data, &len);
    if (rc < 0) {
        conn_failed(c, b, rc);
        return 0;
    }
    if (rc == 0)
        return 0;
    install_answer(c, b, resp, data, len);
    b->progress_ms = rlc_now_ms();
    if (!b->next_try_ms || b->next_try_ms <= rlc_now_ms()) {
        b->failures = 0;
        int src = fetch_more(c, bi);
        if (src < 0)
            conn_failed(c, b, src);
    }
    return 1;
}

static bool awaiting(const struct cbroker *b)
{
    return b->inflight > 0 && !b->resp && rlc_conn_is_open(&b->conn);
}

/* Starts over the connections whose fetches went unanswered past request.timeout.ms (plus the
 * long-poll wait) and moves *wake to the next such deadline. True when one was started over. */
static bool timed_out_fetches(struct rl_consumer *c, int64_t *wake)
{
    int64_t now = rlc_now_ms();
    int64_t bound = (int64_t)c->conf.request_timeout_ms + c->conf.fetch_max_wait_ms;
    bool any = false;
    for (int i = 0; i < c->broker_count; i++) {
        struct cbroker *b = &c->brokers[i];
        if (!awaiting(b))
            continue;
        if (now >= b->progress_ms + bound) {
            rlc_set_err(b->conn.err, sizeof(b->conn.err), "no answer to a fetch from broker "
                        "%s:%u within request.timeout.ms (%d ms): reconnecting", b->addr.host,
                        b->addr.port, c->conf.request_timeout_ms);
            conn_failed(c, b, RL_E_TIMED_OUT);
            any = true;
        } else if (b->progress_ms + bound < *wake) {
            *wake = b->progress_ms + bound;
        }
    }
    return any;
}

/* Waits until some broker's answer arrives, the consumer is woken (rlc_consumer_wake) or
 * deadline_ms. Answers already read into a connection's buffer are taken first: a single recv
 * can bring several small answers, and poll(2) says nothing about those. */
static int wait_answers(struct rl_consumer *c, int64_t deadline_ms)
{
    int taken = 0;
    for (int i = 0; i < c->broker_count; i++)
        if (awaiting(&c->brokers[i]))
            taken += take_answer(c, i);
    if (taken)
        return 0;
    struct pollfd pfd[RLC_MAX_BROKERS + 2];
    int idx[RLC_MAX_BROKERS], n = 0;
    int64_t wake = deadline_ms;
    for (int i = 0; i < c->broker_count; i++) {
        struct cbroker *b = &c->brokers[i];
        if (awaiting(b)) {
            pfd[n].fd = b->conn.fd;
            pfd[n].events = POLLIN | (rlc_conn_wants_write(&b->conn) ? POLLOUT : 0);
            idx[n++] = i;
        } else if (b->next_try_ms > rlc_now_ms() && b->next_try_ms < wake) {
            wake = b->next_try_ms;
        }
    }
    if (c->needs_route && rlc_now_ms() + c->conf.retry_backoff_ms < wake)
        wake = rlc_now_ms() + c->conf.retry_backoff_ms;
    if (n > 0 && timed_out_fetches(c, &wake))
        return 0; /* a connection was started over: send again before waiting */
    int nb = n; /* broker slots: pfd[0..nb) */
    int gfd = c->group ? rlc_group_fd(c->group) : -1;
    if (gfd >= 0) { /* a cooperative member's JoinGroup: its answer is a duty */
        pfd[n].fd = gfd;
        pfd[n].events = POLLIN;
        pfd[n++].revents = 0;
    }
    pfd[n].fd = c->wake_fd;
    pfd[n].events = POLLIN;
    pfd[n].revents = 0;
    int64_t left = wake - rlc_now_ms();
    left = left < 0 ? 0 : left > INT_MAX ? INT_MAX : left;
    int r = poll(pfd, (nfds_t)n + 1, (int)left);
    if (r <= 0)
        return r < 0 && errno != EINTR ? -errno : 0;
    if (gfd >= 0 && pfd[nb].revents)
        c->group_ready = true;
    if (pfd[n].revents) {
        uint64_t v;
        ssize_t got = read(c->wake_fd, &v, sizeof(v)); /* consumes every wake so far */
        (void)got;
    }
    for (int k = 0; k < nb; k++)
        if (pfd[k].revents && awaiting(&c->brokers[idx[k]]))
            take_answer(c, idx[k]);
    return 0;
}

/* --- what the group module drives ------------------------------------------------------------ */

int rlc_consumer_part_count(struct rl_consumer *c)
{
    return c->part_count;
}

void rlc_consumer_part_at(struct rl_consumer *c, int i, const char **topic, int32_t *partition,
                          int64_t *position, int64_t *committed)
{
    const struct cpart *p = &c->parts[i];
    *topic = p->topic;
    *partition = p->partition;
    *position = p->position == NEEDS_RESET ? -1 : p->position;
    *committed = p->committed;
}

void rlc_consumer_set_committed(struct rl_consumer *c, const char *topic, int32_t partition,
                                int64_t committed)
{
    struct cpart *p = part_find(c, topic, partition);
    if (p)
        p->committed = committed;
}

int rlc_consumer_assign_at(struct rl_consumer *c, const char *topic, int32_t partition,
                           int64_t start, int64_t committed)
{
    int rc = assign_one(c, topic, partition, start);
    if (rc == 0)
        part_find(c, topic, partition)->committed = committed;
    return rc;
}

bool rlc_consumer_has(struct rl_consumer *c, const char *topic, int32_t partition)
{
    return part_find(c, topic, partition) != NULL;
}

int rlc_consumer_unassign(struct rl_consumer *c, const char *topic, int32_t partition)
{
    struct cpart *p = part_find(c, topic, partition);
    if (!p)
        return RL_E_NOT_FOUND;
    /* A fetch of it in flight dies with its connection (no late answer can be taken for it if
     * it comes back); the other partitions there are fetched again from their positions. */
    if (p->inflight && p->broker >= 0) {
        struct cbroker *b = &c->brokers[p->broker];
        broker_drop_answer(b);
        rlc_conn_close(&b->conn);
        b->inflight = 0;
        for (int i = 0; i < c->part_count; i++)
            if (c->parts[i].broker == p->broker)
                c->parts[i].inflight = false;
    }
    /* Answers being iterated point into parts[], which moves: drop them and rewind every
     * partition to what it has handed out, as assign_one does. */
    for (int i = 0; i < c->broker_count; i++)
        broker_drop_answer(&c->brokers[i]);
    for (int i = 0; i < c->part_count; i++)
        part_rewind(&c->parts[i]);
    free(p->topic);
    int idx = (int)(p - c->parts);
    memmove(p, p + 1, sizeof(*p) * (size_t)(c->part_count - idx - 1));
    c->part_count--;
    return 0;
}

void rlc_consumer_unassign_all(struct rl_consumer *c)
{
    for (int i = 0; i < c->broker_count; i++) {
        struct cbroker *b = &c->brokers[i];
        broker_drop_answer(b);
        rlc_conn_close(&b->conn);
        b->inflight = 0;
    }
    for (int i = 0; i < c->part_count; i++)
        free(c->parts[i].topic);
    c->part_count = 0;
    c->pending_error = 0;
}

/* --- groups ---------------------------------------------------------------------------------- */

int rl_consumer_subscribe(struct rl_consumer *c, const char *const *topics, size_t count)
{
    if (!c->conf.group_id[0]) {
        rlc_set_err(c->err, sizeof(c->err), "subscribing needs a group: set group.id");
        return RL_E_INVALID_CONFIG;
    }
    if (!c->group && c->part_count > 0) {
        rlc_set_err(c->err, sizeof(c->err), "partitions were assigned by hand "
                    "(rl_consumer_assign): subscribe with a new consumer");
        return RL_E_INVALID_ARGUMENT;
    }
    if (!c->group && !(c->group = rlc_group_new(c, &c->conf, &c->meta)))
        return -ENOMEM;
    for (size_t i = 0; i < count; i++) {
        int n = topics && topics[i] ? topic_partitions(c, topics[i]) : RL_E_INVALID_ARGUMENT;
        if (n < 0)
            return n;
    }
    int rc = rlc_group_subscribe(c->group, topics, count);
    if (rc)
        rlc_set_err(c->err, sizeof(c->err), "%s", rlc_group_error(c->group));
    return rc;
}

static int group_result(struct rl_consumer *c, int rc)
{
    if (rc)
        rlc_set_err(c->err, sizeof(c->err), "%s", rlc_group_error(c->group));
    return rc;
}

int rl_consumer_commit(struct rl_consumer *c)
{
    if (!c->group || !rlc_group_active(c->group)) {
        rlc_set_err(c->err, sizeof(c->err), "commit needs a subscription (group.id and "
                    "rl_consumer_subscribe)");
        return RL_E_INVALID_ARGUMENT;
    }
    return group_result(c, rlc_group_commit_positions(c->group));
}

int rl_consumer_commit_offset(struct rl_consumer *c, const char *topic, int32_t partition,
                              int64_t offset)
{
    if (!c->group || !rlc_group_active(c->group) || offset < 0) {
        rlc_set_err(c->err, sizeof(c->err), "commit needs a subscription and an offset >= 0");
        return RL_E_INVALID_ARGUMENT;
    }
    return group_result(c, rlc_group_commit_offset(c->group, topic, partition, offset));
}

int rl_consumer_close(struct rl_consumer *c)
{
    if (!c->group)
        return 0;
    struct rlc_log_scope ls;
    rlc_log_enter(&c->conf, &ls);
    int rc = group_result(c, rlc_group_close(c->group));
    rlc_log_leave(&ls);
    return rc;
}

/* One rl_consumer_poll. Its loop ends when a record or an error is there, at the deadline, or
 * on rl_consumer_wakeup; with RL_TIMEOUT_INFINITE only the first and the last. Each turn waits
 * (wait_answers) for an answer, a wake or the next group duty. */
static int consumer_poll(struct rl_consumer *c, int timeout_ms, struct rl_record *rec)
{
    int64_t deadline = -1; /* read the clock only when a wait is possible: not per record */
    int last = 0;
    bool grouped = c->group && rlc_group_active(c->group);
    if (grouped) {
        /* Before handing out another record: whatever was handed out so far has been dealt
         * with, so auto-commit may cover it. */
        int rc = rlc_group_duty(c->group);
        if (rc)
            return group_result(c, rc);
    }
    for (;;) {
        for (int i = 0; i < c->broker_count; i++) {
            int rc = c->brokers[i].resp ? iter_next(c, &c->brokers[i], rec) : 0;
            if (rc)
                return rc;
        }
        if (atomic_load_explicit(&c->wakeup, memory_order_relaxed) &&
            atomic_exchange(&c->wakeup, false))
            return 0;
        if (deadline < 0)
            deadline = timeout_ms < 0 ? INT64_MAX : rlc_now_ms() + timeout_ms;
        if (c->pending_error) {
            int rc = c->pending_error;
            c->pending_error = 0;
            return rc;
        }
        if (c->part_count == 0 && !grouped) {
            rlc_set_err(c->err, sizeof(c->err), "no partition is assigned; call "
                        "rl_consumer_assign first");
            return RL_E_INVALID_ARGUMENT;
        }
        int rc = prepare(c);
        if (rc && !rlc_retriable(rc))
            return rc;
        bool unprepared = rc != 0; /* try again after a backoff, not at the deadline */
        last = rc ? rc : last;
        int64_t now = rlc_now_ms();
        rc = send_fetches(c, now);
        last = rc ? rc : last;
        if (now >= deadline)
            return last; /* c->err still says what `last` was */
        /* A member never waits past its next group duty (auto-commit, news from the heartbeat
         * thread, the poll-interval clock). */
        int64_t until = grouped && rlc_group_due_ms(c->group) < deadline
                            ? rlc_group_due_ms(c->group) : deadline;
        if (unprepared && now + c->conf.retry_backoff_ms < until)
            until = now + c->conf.retry_backoff_ms;
        rc = wait_answers(c, until);
        if (rc < 0)
            return rc;
        if (grouped && (c->group_ready || rlc_now_ms() >= rlc_group_due_ms(c->group))) {
            c->group_ready = false;
            rc = rlc_group_duty(c->group);
            if (rc)
                return group_result(c, rc);
        }
    }
}

int rl_consumer_stats(struct rl_consumer *c, struct rl_consumer_stats *out, size_t size,
                      struct rl_partition_stats *parts, size_t parts_max)
{
    if (!c || !out || size == 0 || (parts_max && !parts))
        return RL_E_INVALID_ARGUMENT;
    struct rl_consumer_stats st = {0};
    st.assigned_partitions = (uint64_t)c->part_count;
    for (int i = 0; i < c->broker_count; i++) {
        const struct cbroker *b = &c->brokers[i];
        st.in_flight_fetches += (uint64_t)b->inflight;
        if (b->resp && b->data_len > b->sec_off)
            st.buffered_bytes += b->data_len - b->sec_off;
    }
    st.records = c->records;
    st.bytes = c->bytes;
    st.fetches = c->fetches;
    st.retries = c->retries;
    st.rtt_avg_us = c->fetches ? c->rtt_sum_us / c->fetches : 0;
    st.rtt_max_us = c->rtt_max_us;
    st.rtt_last_us = c->rtt_last_us;
    for (int i = 0; i < c->part_count; i++) {
        const struct cpart *p = &c->parts[i];
        int64_t pos = p->position == NEEDS_RESET ? -1 : p->position;
        int64_t lag = pos >= 0 && p->high_watermark >= 0
                          ? (p->high_watermark > pos ? p->high_watermark - pos : 0) : -1;
        if (lag > 0)
            st.lag += lag;
        if ((size_t)i < parts_max)
            parts[i] = (struct rl_partition_stats){
                .topic = p->topic, .partition = p->partition, .position = pos,
                .high_watermark = p->high_watermark, .lag = lag, .committed = p->committed,
            };
    }
    memcpy(out, &st, size < sizeof(st) ? size : sizeof(st));
    return c->part_count;
}

/* Whatever poll logs goes to the consumer's log callback (log.level), not to stderr. The scope
 * is two stores of a thread-local; poll is entered per record. */
int rl_consumer_poll(struct rl_consumer *c, int timeout_ms, struct rl_record *rec)
{
    struct rlc_log_scope ls;
    rlc_log_enter(&c->conf, &ls);
    int rc = consumer_poll(c, timeout_ms, rec);
    rlc_log_leave(&ls);
    return rc;
}

int rl_record_header(const struct rl_record *rec, size_t *pos, struct rl_header *out)
{
    struct batch_record r = {
        .header_count = rec->header_count, .headers = rec->headers_raw,
        .headers_len = rec->headers_len,
    };
    struct batch_record_header h;
    int rc = batch_header_next(&r, pos, &h);
    if (rc == 1) {
        out->key = (const char *)h.key;
        out->key_len = h.key_len > 0 ? (size_t)h.key_len : 0;
        out->value = h.value;
        out->value_len = h.value && h.value_len > 0 ? (size_t)h.value_len : 0;
    }
    return rc;
}
