/*
 * http: the broker's admin endpoint on --http. GET /metrics answers in the Prometheus text
 * format (names prefixed ringlog_), GET /v1/status with JSON. One request per connection
 * (Connection: close), requests up to HTTP_REQ_MAX_BYTES, at most SHARD_MAX_HTTP_CONNS at once;
 * the sockets go through the shard's io ring like everything else.
 *
 * An operator can always get in: at the limit, a new connection makes room by shutting down the
 * oldest one still waiting for its request (http_evict_oldest), and a connection that sent no
 * whole request within connections.max.idle.ms is shut down (http_tick).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/delivery/delivery.h"
#include "broker/meta/meta.h"
#include "broker/partition/partition.h"
#include "broker/server/shard_internal.h"
#include "broker/svc/bg.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/plog.h"
#include "storage/tcache.h"

const uint64_t metrics_bucket_bounds_us[METRICS_BUCKETS - 1] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 10000000,
};

static void metrics_count(struct api_metrics *m, uint64_t latency_us, bool error)
{
    m->requests++;
    if (error)
        m->errors++;
    m->sum_us += latency_us;
    unsigned b = 0;
    while (b < METRICS_BUCKETS - 1 && latency_us > metrics_bucket_bounds_us[b])
        b++;
    m->buckets[b]++;
}

void metrics_record(struct shard *sh, Ringlog__Api api, uint64_t latency_us, bool error)
{
    unsigned a = (unsigned)api < METRICS_APIS ? (unsigned)api : 0;
    metrics_count(&sh->m.api[a], latency_us, error);
}

void metrics_record_kafka(struct shard *sh, int16_t api_key, uint64_t latency_us)
{
    /* Keys the listener does not serve share the last slot ("unserved"). */
    unsigned k = api_key >= 0 && api_key < METRICS_KAFKA_KEYS - 1 && kafka_api_name(api_key)
                     ? (unsigned)api_key
                     : METRICS_KAFKA_KEYS - 1;
    metrics_count(&sh->m.kafka_api[k], latency_us, false);
}

static const uint64_t metrics_turn_bounds_ns[METRICS_TURN_BUCKETS - 1] = {
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 25000000, 50000000,
    100000000, 250000000, 1000000000,
};

void metrics_record_turn(struct shard *sh, uint64_t ns, enum turn_cause cause)
{
    if (ns > METRICS_SLOW_TURN_NS)
        sh->m.slow_turns[cause]++;
    unsigned b = 0;
    while (b < METRICS_TURN_BUCKETS - 1 && ns > metrics_turn_bounds_ns[b])
        b++;
    sh->m.turns[b]++;
    sh->m.turns_sum_ns += ns;
    if (ns > sh->m.turn_max_ns)
        sh->m.turn_max_ns = ns;
}

/* A growable text buffer; on allocation failure it stops growing and reports failure. */
struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !b->failed; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = (b->cap + (size_t)n + 1) * 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
}

/* --- partition metrics, formatted off the loop --------------------------------------------- */

#define METRICS_PART_VALUES 9

static const char *const metrics_part_names[METRICS_PART_VALUES] = {
    "records_in_total", "bytes_in_total", "records_out_total", "bytes_out_total",
    "log_end_offset", "log_start_offset", "high_watermark", "size_bytes",
    "pending_fsync_bytes",
};

struct metrics_row {
    uint32_t topic, partition;
    uint64_t v[METRICS_PART_VALUES];
};

/* A /metrics answer being built: the loop renders the broker-wide part and copies every
 * partition's numbers (a few hundred nanoseconds each); the HTTP background thread formats
 * them (thousands of lines: most of the work). */
struct metrics_job {
    struct bg_job job;             /* first: the job's callbacks get &job */
    struct http_conn *h;
    struct sbuf body;
    char **topics;
    size_t n_topics;
    struct metrics_row *rows;
    size_t n_rows;
};

static int metrics_snapshot(struct shard *sh, struct metrics_job *mj)
{
    struct meta *m = sh->svc.meta;
    size_t n_topics = meta_topic_count(m);
    mj->topics = calloc(n_topics + 1, sizeof(*mj->topics));
    mj->rows = calloc(meta_partition_count(m) + 1, sizeof(*mj->rows));
    if (!mj->topics || !mj->rows)
        return -ENOMEM;
    for (size_t i = 0; i < n_topics; i++) {
        const struct meta_topic *t = meta_topic_at(m, i);
        if (!(mj->topics[i] = strdup(t->name)))
            return -ENOMEM;
        mj->n_topics = i + 1;
        for (uint32_t k = 0; k < t->partition_count; k++) {
            const struct partition *p = t->parts[k];
            if (!p)
                continue; /* placed on another broker */
            const struct partition_stats *ps = partition_stats(p);
            mj->rows[mj->n_rows++] = (struct metrics_row){
                (uint32_t)i, k,
                {ps->records_in, ps->bytes_in, ps->records_out, ps->bytes_out,
                 partition_log_end(p), partition_start_offset(p), partition_visible_end(p),
                 partition_size_bytes(p), partition_unsynced_bytes(p)}};
        }
    }
    return 0;
}

static void metrics_job_run(struct bg_job *j)
{
    struct metrics_job *mj = (struct metrics_job *)j;
    struct sbuf *b = &mj->body;
    for (size_t m = 0; m < METRICS_PART_VALUES; m++) {
        const char *name = metrics_part_names[m];
        bool counter = strstr(name, "_total") != NULL;
        sb_printf(b, "# TYPE ringlog_partition_%s %s\n", name, counter ? "counter" : "gauge");
        for (size_t i = 0; i < mj->n_rows; i++) {
            const struct metrics_row *r = &mj->rows[i];
            sb_printf(b, "ringlog_partition_%s{topic=\"%s\",partition=\"%u\"} %llu\n", name,
                      mj->topics[r->topic], r->partition, (unsigned long long)r->v[m]);
        }
    }
}

static void metrics_job_free(struct metrics_job *mj)
{
    for (size_t i = 0; i < mj->n_topics; i++)
        free(mj->topics[i]);
    free(mj->topics);
    free(mj->rows);
    free(mj);
}

/* One API's series of a latency histogram family (upper bounds metrics_bucket_bounds_us). */
static void metrics_histogram(struct sbuf *b, const char *family, const char *api,
                              const struct api_metrics *m)
{
    uint64_t cum = 0;
    for (unsigned k = 0; k < METRICS_BUCKETS; k++) {
        cum += m->buckets[k];
        if (k < METRICS_BUCKETS - 1)
            sb_printf(b, "%s_bucket{api=\"%s\",le=\"%g\"} %llu\n", family, api,
                      (double)metrics_bucket_bounds_us[k] / 1e6, (unsigned long long)cum);
        else
            sb_printf(b, "%s_bucket{api=\"%s\",le=\"+Inf\"} %llu\n", family, api,
                      (unsigned long long)cum);
    }
    sb_printf(b, "%s_sum{api=\"%s\"} %.6f\n", family, api, (double)m->sum_us / 1e6);
    sb_printf(b, "%s_count{api=\"%s\"} %llu\n", family, api, (unsigned long long)m->requests);
}

static void metrics_apis(struct shard *sh, struct sbuf *b)
{
    sb_printf(b, "# TYPE ringlog_requests_total counter\n");
    sb_printf(b, "# TYPE ringlog_request_errors_total counter\n");
    for (unsigned a = 0; a < METRICS_APIS; a++) {
        const struct api_metrics *m = &sh->m.api[a];
        const char *api = frame_api_name((Ringlog__Api)a);
        sb_printf(b, "ringlog_requests_total{api=\"%s\"} %llu\n", api,
                  (unsigned long long)m->requests);
        sb_printf(b, "ringlog_request_errors_total{api=\"%s\"} %llu\n", api,
                  (unsigned long long)m->errors);
    }
    sb_printf(b, "# TYPE ringlog_request_latency_seconds histogram\n");
    for (unsigned a = 0; a < METRICS_APIS; a++)
        metrics_histogram(b, "ringlog_request_latency_seconds", frame_api_name((Ringlog__Api)a),
                          &sh->m.api[a]);
}

/* The Kafka listener's requests by Kafka API (the ones it serves, then "unserved"), from frame
 * arrival to the answer's last byte sent, as the native families count. */
static void metrics_kafka_apis(struct shard *sh, struct sbuf *b)
{
    if (!sh->svc.kafka)
        return;
    sb_printf(b, "# TYPE ringlog_kafka_requests_total counter\n");
    for (int k = 0; k < METRICS_KAFKA_KEYS; k++) {
        const char *name = k < METRICS_KAFKA_KEYS - 1 ? kafka_api_name((int16_t)k) : "unserved";
        if (name)
            sb_printf(b, "ringlog_kafka_requests_total{api=\"%s\"} %llu\n", name,
                      (unsigned long long)sh->m.kafka_api[k].requests);
    }
    sb_printf(b, "# TYPE ringlog_kafka_request_latency_seconds histogram\n");
    for (int k = 0; k < METRICS_KAFKA_KEYS; k++) {
        const char *name = k < METRICS_KAFKA_KEYS - 1 ? kafka_api_name((int16_t)k) : "unserved";
        if (name)
            metrics_histogram(b, "ringlog_kafka_request_latency_seconds", name,
                              &sh->m.kafka_api[k]);
    }
}

static void metrics_turns(struct shard *sh, struct sbuf *b)
{
    const struct shard_metrics *m = &sh->m;
    uint64_t cum = 0;
    sb_printf(b, "# TYPE ringlog_loop_turn_seconds histogram\n");
    for (unsigned k = 0; k < METRICS_TURN_BUCKETS; k++) {
        cum += m->turns[k];
        if (k < METRICS_TURN_BUCKETS - 1)
            sb_printf(b, "ringlog_loop_turn_seconds_bucket{le=\"%g\"} %llu\n",
                      (double)metrics_turn_bounds_ns[k] / 1e9, (unsigned long long)cum);
        else
            sb_printf(b, "ringlog_loop_turn_seconds_bucket{le=\"+Inf\"} %llu\n",
                      (unsigned long long)cum);
    }
    sb_printf(b, "ringlog_loop_turn_seconds_sum %.6f\n", (double)m->turns_sum_ns / 1e9);
    sb_printf(b, "ringlog_loop_turn_seconds_count %llu\n", (unsigned long long)cum);
    sb_printf(b, "# TYPE ringlog_loop_turn_max_seconds gauge\n"
              "ringlog_loop_turn_max_seconds %.6f\n", (double)m->turn_max_ns / 1e9);
    static const char *const causes[TURN_CAUSES] = {"topic_create", "segment_roll", "other"};
    sb_printf(b, "# TYPE ringlog_loop_slow_turns_total counter\n");
    for (unsigned c = 0; c < TURN_CAUSES; c++)
        sb_printf(b, "ringlog_loop_slow_turns_total{work=\"%s\"} %llu\n", causes[c],
                  (unsigned long long)m->slow_turns[c]);
    sb_printf(b, "# TYPE ringlog_loop_preempted_seconds_total counter\n"
              "ringlog_loop_preempted_seconds_total %.6f\n",
              (double)sh->clock.preempted_ns / 1e9);
}

static void metrics_delivery(const struct delivery_stats *ds, struct sbuf *b)
{
    const struct coord_stats *cs = &ds->coord;
    const struct idem_stats *is = &ds->idem;
#define G(name, type, v)                                                                        \
    sb_printf(b, "# TYPE ringlog_" name " " type "\nringlog_" name " %llu\n",                   \
              (unsigned long long)(v))
    G("groups", "gauge", cs->groups);
    G("group_members", "gauge", cs->members);
    G("committed_offsets", "gauge", cs->committed_offsets);
    G("offsets_expired_total", "counter", cs->offsets_expired);
    G("offset_commits_total", "counter", cs->commits);
    G("offset_commit_errors_total", "counter", cs->commit_errors);
    G("group_rebalance_joins_total", "counter", cs->rebalances_completed);
    G("group_members_expired_total", "counter", cs->members_expired);
    G("producer_ids", "gauge", is->producers);
    G("producer_state_partitions", "gauge", is->partitions_loaded);
    G("producer_states", "gauge", is->partition_producers);
    G("produce_duplicates_total", "counter", is->duplicates);
    G("produce_out_of_order_total", "counter", is->out_of_order);
    G("produce_fenced_total", "counter", is->fenced);
    G("produce_duplicate_waits_total", "counter", ds->produce.duplicate_waits);
    G("producer_snapshots_total", "counter", is->snapshots);
    G("producers_expired_total", "counter", is->expired);
    G("fetch_readahead_reads_total", "counter", ds->fetch.readahead_reads);
    G("fetch_readahead_hits_total", "counter", ds->fetch.readahead_hits);
    G("fetch_readahead_wasted_total", "counter", ds->fetch.readahead_wasted);
#undef G
}

static void metrics_render(struct shard *sh, struct sbuf *b)
{
    const struct shard_metrics *m = &sh->m;
    struct delivery_stats ds;
    delivery_get_stats(sh->svc.dv, &ds);
    uint64_t pending = 0;
    for (size_t i = 0; i < meta_topic_count(sh->svc.meta); i++) {
        const struct meta_topic *t = meta_topic_at(sh->svc.meta, i);
        for (uint32_t k = 0; k < t->partition_count; k++)
            if (t->parts[k])
                pending += partition_unsynced_bytes(t->parts[k]);
    }
#define G(name, type, v)                                                                        \
    sb_printf(b, "# TYPE ringlog_" name " " type "\nringlog_" name " %llu\n",                   \
              (unsigned long long)(v))
    G("connections", "gauge", sh->nconns);
    G("connections_accepted_total", "counter", m->connections_accepted);
    G("connections_rejected_total", "counter", m->connections_rejected);
    G("network_received_bytes_total", "counter", m->bytes_received);
    G("network_sent_bytes_total", "counter", m->bytes_sent);
    G("frames_malformed_total", "counter", m->frames_malformed);
    G("frames_too_large_total", "counter", m->frames_too_large);
    G("throttled_responses_total", "counter", m->throttled_responses);
    G("memory_pauses_total", "counter", m->mem_pauses);
    G("connection_memory_pauses_total", "counter", m->conn_mem_pauses);
    G("frames_timed_out_total", "counter", m->frames_timed_out);
    G("connections_idle_closed_total", "counter", m->connections_idle_closed);
    G("connections_reserved_total", "counter", m->connections_reserved);
    G("http_connections", "gauge", sh->nhconns);
    G("http_connections_evicted_total", "counter", m->http_evicted);
    G("http_connections_idle_closed_total", "counter", m->http_idle_closed);
    G("disk_full_logs", "gauge", storage_disk_full_logs(sh->st));
    G("produce_deferred_batches_total", "counter", ds.produce.deferred_batches);
    G("inflight_bytes", "gauge", sh->mem_used);
    G("inflight_bytes_limit", "gauge", sh->cfg.max_inflight_bytes);
    G("inflight_bytes_peak", "gauge", sh->mem_high);
    G("pending_fsync_bytes", "gauge", pending);
    G("topics", "gauge", meta_topic_count(sh->svc.meta));
    G("replicas_missing", "gauge", meta_replicas_missing(sh->svc.meta));
    G("uptime_seconds", "gauge", (io_now_ns(sh->io) - sh->start_ns) / 1000000000ull);
    struct tcache_stats tc;
    storage_tail_cache_stats(sh->st, &tc);
    G("tail_cache_hits_total", "counter", tc.hits);
    G("tail_cache_misses_total", "counter", tc.misses);
    G("tail_cache_hit_bytes_total", "counter", tc.hit_bytes);
    G("tail_cache_put_bytes_total", "counter", tc.put_bytes);
    G("tail_cache_evictions_total", "counter", tc.evictions);
    G("tail_cache_skipped_total", "counter", tc.skipped);
    G("tail_cache_bytes", "gauge", tc.cached_bytes);
    G("tail_cache_budget_bytes", "gauge", tc.budget_bytes);
    G("tail_cache_prefaulted_bytes", "gauge", tc.prefaulted_bytes);
#undef G
    char *cl = services_cluster_text(sh, true);
    if (cl)
        sb_printf(b, "%s", cl);
    free(cl);
    metrics_delivery(&ds, b);
    metrics_turns(sh, b);
    metrics_apis(sh, b);
    metrics_kafka_apis(sh, b);
}

/* Copies s into out as the inside of a JSON string (quotes, backslashes, control bytes). */
static void json_escape(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n] = 0;
}

static void status_render(struct shard *sh, struct sbuf *b)
{
    char dir[2 * PATH_MAX];
    json_escape(sh->cfg.data_dir, dir, sizeof(dir));
    uint64_t partitions = 0, records = 0;
    for (size_t i = 0; i < meta_topic_count(sh->svc.meta); i++) {
        const struct meta_topic *t = meta_topic_at(sh->svc.meta, i);
        partitions += t->partition_count;
        for (uint32_t k = 0; k < t->partition_count; k++)
            if (t->parts[k])
                records += partition_visible_end(t->parts[k]) -
                           partition_start_offset(t->parts[k]);
    }
    /* Appends wait for space (and produce gets DISK_FULL) while reads go on: not "serving". */
    unsigned disk_full = storage_disk_full_logs(sh->st);
    sb_printf(b, "{\"status\":\"%s\",\"node_id\":%d,\"listen\":\"%s:%u\",\"http\":\"%s:%u\","
              "\"data_dir\":\"%s\",\"uptime_ms\":%llu,\"started_at_ms\":%lld,"
              "\"connections\":%u,\"topics\":%zu,\"partitions\":%llu,\"records\":%llu,"
              "\"inflight_bytes\":%llu,\"disk_full_logs\":%u}\n",
              sh->stopping ? "stopping" : disk_full ? "disk_full" : "serving",
              sh->cfg.node_id, sh->cfg.listen_host,
              sh->port, sh->cfg.http_host, sh->http_port, dir,
              (unsigned long long)((io_now_ns(sh->io) - sh->start_ns) / 1000000ull),
              (long long)sh->start_wall_ms, sh->nconns, meta_topic_count(sh->svc.meta),
              (unsigned long long)partitions, (unsigned long long)records,
              (unsigned long long)sh->mem_used, disk_full);
}

/* --- connections ------------------------------------------------------------------------------ */

static void http_op_done(struct io_op *op, int result)
{
    struct http_conn *h = op->ctx;
    shard_op_ended(h->sh);
    h->op_inflight = false;
    h->op_completed = true;
    h->op_result = result;
    if (!h->in_ready) {
        h->in_ready = true;
        h->ready_next = h->sh->hready;
        h->sh->hready = h;
    }
}

static void http_arm(struct http_conn *h)
{
    h->op.done = http_op_done;
    h->op.ctx = h;
    h->op_inflight = true;
    shard_op_started(h->sh);
    if (h->sending)
        io_prep_send(h->sh->io, &h->op, h->fd, h->out + h->out_sent, h->out_len - h->out_sent, 0);
    else
        io_prep_recv(h->sh->io, &h->op, h->fd, h->in + h->in_len,
                     sizeof(h->in) - 1 - h->in_len, 0);
}

void http_conn_start(struct shard *sh, int fd)
{
    struct http_conn *h = calloc(1, sizeof(*h));
    if (!h) {
        close(fd);
        return;
    }
    h->sh = sh;
    h->fd = fd;
    h->start_ns = io_now_ns(sh->io);
    h->next = sh->hconns;
    sh->hconns = h;
    sh->nhconns++;
    http_arm(h);
}

static void http_free(struct http_conn *h)
{
    struct shard *sh = h->sh;
    for (struct http_conn **pp = &sh->hconns; *pp; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    }
    for (struct http_conn **pp = &sh->hready; *pp; pp = &(*pp)->ready_next) {
        if (*pp == h) {
            *pp = h->ready_next;
            break;
        }
    }
    sh->nhconns--;
    close(h->fd);
    free(h->out);
    free(h);
}

static void http_reply(struct http_conn *h, int code, const char *reason, const char *type,
                       struct sbuf *body)
{
    struct sbuf out = {0};
    sb_printf(&out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Connection: close\r\n\r\n%s", code, reason, type, body->len,
              body->p ? body->p : "");
    free(body->p);
    h->out = out.p;
    h->out_len = out.failed ? 0 : out.len;
    h->out_sent = 0;
    h->sending = true;
}

static void http_metrics_done(struct bg_job *j)
{
    struct metrics_job *mj = (struct metrics_job *)j;
    struct http_conn *h = mj->h;
    h->rendering = false;
    http_reply(h, 200, "OK", "text/plain; version=0.0.4", &mj->body);
    mj->body.p = NULL;
    metrics_job_free(mj);
    if (h->out_len == 0) {
        http_free(h);
        return;
    }
    http_arm(h);
}

/* /metrics: the loop renders the broker-wide part and snapshots the partitions' numbers; the
 * HTTP thread formats them (see struct metrics_job), then the answer goes out. */
static void http_metrics_start(struct http_conn *h)
{
    struct shard *sh = h->sh;
    struct metrics_job *mj = calloc(1, sizeof(*mj));
    if (!mj || metrics_snapshot(sh, mj)) {
        struct sbuf body = {0};
        if (mj)
            metrics_job_free(mj);
        sb_printf(&body, "out of memory rendering metrics\n");
        return http_reply(h, 500, "Internal Server Error", "text/plain", &body);
    }
    metrics_render(sh, &mj->body);
    mj->h = h;
    mj->job.run = metrics_job_run;
    mj->job.done = http_metrics_done;
    h->rendering = true;
    if (bg_submit(sh->bg_http, &mj->job)) {
        metrics_job_run(&mj->job); /* the queue is full: format here rather than fail */
        http_metrics_done(&mj->job);
    }
}

static void http_route(struct http_conn *h)
{
    struct shard *sh = h->sh;
    struct sbuf body = {0};
    char method[8] = "", path[256] = "";
    sh->m.http_requests++;
    if (sscanf(h->in, "%7s %255s", method, path) != 2) {
        sb_printf(&body, "malformed HTTP request line\n");
        return http_reply(h, 400, "Bad Request", "text/plain", &body);
    }
    char *q = strchr(path, '?');
    if (q)
        *q = 0;
    if (strcmp(method, "GET")) {
        sb_printf(&body, "only GET is served\n");
        return http_reply(h, 405, "Method Not Allowed", "text/plain", &body);
    }
    if (!strcmp(path, "/metrics"))
        return http_metrics_start(h);
    if (!strcmp(path, "/v1/status")) {
        status_render(sh, &body);
        return http_reply(h, 200, "OK", "application/json", &body);
    }
    if (!strcmp(path, "/v1/cluster")) {
        char *json = services_cluster_json(sh);
        sb_printf(&body, "%s", json ? json : "{\"cluster\":false}\n");
        free(json);
        return http_reply(h, 200, "OK", "application/json", &body);
    }
    sb_printf(&body, "not found: %s (try /metrics, /v1/status or /v1/cluster)\n", path);
    http_reply(h, 404, "Not Found", "text/plain", &body);
}

static void http_step(struct http_conn *h)
{
    h->op_completed = false;
    int n = h->op_result;
    if (n <= 0) {
        http_free(h);
        return;
    }
    if (h->sending) {
        h->out_sent += (size_t)n;
        if (h->out_sent >= h->out_len) {
            http_free(h);
            return;
        }
    } else {
        h->in_len += (size_t)n;
        h->in[h->in_len] = 0;
        if (strstr(h->in, "\r\n\r\n") || strstr(h->in, "\n\n")) {
            http_route(h);
            if (h->rendering)
                return; /* answered from http_metrics_done */
            if (h->out_len == 0) {
                http_free(h);
                return;
            }
        } else if (h->in_len >= sizeof(h->in) - 1) {
            struct sbuf body = {0};
            sb_printf(&body, "request header too large (limit %d bytes)\n", HTTP_REQ_MAX_BYTES);
            http_reply(h, 431, "Request Header Fields Too Large", "text/plain", &body);
        }
    }
    http_arm(h);
}

void http_process(struct shard *sh)
{
    bg_reap(sh->bg_http);
    for (uint32_t guard = 0; sh->hready && guard < 100000; guard++) {
        struct http_conn *h = sh->hready;
        sh->hready = h->ready_next;
        h->in_ready = false;
        if (h->op_completed)
            http_step(h);
    }
}

/* A connection still waiting for (the rest of) its request, with a receive in flight. */
static bool http_waiting(const struct http_conn *h)
{
    return !h->sending && !h->rendering && h->op_inflight && !h->evicting;
}

bool http_evict_oldest(struct shard *sh)
{
    struct http_conn *oldest = NULL;
    for (struct http_conn *h = sh->hconns; h; h = h->next)
        if (http_waiting(h) && (!oldest || h->start_ns < oldest->start_ns))
            oldest = h;
    if (!oldest)
        return false;
    /* The pending receive completes with an error or end of file and the loop frees it. */
    oldest->evicting = true;
    shutdown(oldest->fd, SHUT_RDWR);
    sh->m.http_evicted++;
    return true;
}

void http_tick(struct shard *sh, uint64_t now_ns)
{
    uint64_t idle_ns = (uint64_t)sh->cfg.connections_max_idle_ms * 1000000ull;
    for (struct http_conn *h = sh->hconns; h; h = h->next) {
        if (http_waiting(h) && now_ns - h->start_ns > idle_ns) {
            h->evicting = true;
            shutdown(h->fd, SHUT_RDWR);
            sh->m.http_idle_closed++;
        }
    }
}

uint32_t http_close_idle(struct shard *sh)
{
    uint32_t left = 0;
    for (struct http_conn *h = sh->hconns, *next; h; h = next) {
        next = h->next;
        if (!h->op_inflight && !h->op_completed && !h->rendering)
            http_free(h);
        else if (h->op_inflight)
            shutdown(h->fd, SHUT_RDWR), left++;
        else
            left++;
    }
    return left;
}
