/*
 * workload: see workload.h.
 */
#include "tests/fault/workload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/ringlog.h"
#include "common/batch.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"
#include "tests/fault/cluster.h"

#define WL_REFUSED_BACKOFF_MS 20
#define WL_DUMP_MAX_BYTES (1u << 20)

static struct rl_conf *conf_new(const char *bootstrap, const char *const *kv)
{
    struct rl_conf *c = rl_conf_new();
    char err[256];
    if (!c)
        return NULL;
    if (rl_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof(err)))
        goto bad;
    for (int i = 0; kv && kv[i]; i += 2)
        if (kv[i + 1] && rl_conf_set(c, kv[i], kv[i + 1], err, sizeof(err)))
            goto bad;
    return c;
bad:
    fprintf(stderr, "workload: configuration refused: %s\n", err);
    rl_conf_destroy(c);
    return NULL;
}

int wl_create_topic(const char *bootstrap, const char *topic, int partitions, int replicas,
                    char *why, size_t cap)
{
    static const char *const kv[] = {"request.timeout.ms", "10000", NULL};
    struct rl_conf *conf = conf_new(bootstrap, kv);
    char err[256] = "";
    struct rl_admin *a = conf ? rl_admin_new(conf, err, sizeof(err)) : NULL;
    int rc = a ? 0 : RL_E_INVALID_CONFIG;
    if (a) {
        struct rl_topic_spec spec = {.name = topic, .partitions = partitions,
                                     .replication_factor = replicas};
        rc = rl_admin_create_topic(a, &spec);
        snprintf(why, cap, "%s", rc ? rl_admin_last_error(a) : "");
        rl_admin_destroy(a);
    } else {
        snprintf(why, cap, "%s", err);
    }
    rl_conf_destroy(conf);
    return rc;
}

static void delivered(void *ctx, const struct rl_delivery *d)
{
    struct wl_producer *p = ctx;
    uint32_t seq = (uint32_t)(uintptr_t)d->opaque;
    hist_complete(p->w->h, p->writer, seq, d->error ? HIST_INFO : HIST_OK,
                  d->error ? -1 : d->offset, -1, 0);
    atomic_fetch_add(&p->completed, 1);
}

static struct rl_producer *producer_new(struct wl_producer *p)
{
    const struct wl_config *cfg = &p->w->cfg;
    char dt[16], rt[16];
    snprintf(dt, sizeof(dt), "%d", cfg->delivery_timeout_ms);
    snprintf(rt, sizeof(rt), "%d", cfg->request_timeout_ms);
    const char *const kv[] = {"acks", cfg->acks,
                              "enable.idempotence", cfg->idempotent ? "true" : "false",
                              "delivery.timeout.ms", dt, "request.timeout.ms", rt,
                              "connect.timeout.ms", "2000", "linger.ms", "2",
                              "max.block.ms", "2000", "retry.backoff.max.ms", "500", NULL};
    struct rl_conf *conf = conf_new(cfg->bootstrap, kv);
    if (!conf)
        return NULL;
    rl_conf_set_delivery_cb(conf, delivered, p);
    char err[200];
    struct rl_producer *prod = rl_producer_new(conf, err, sizeof(err));
    if (!prod)
        snprintf(p->error, sizeof(p->error), "rl_producer_new: %s", err);
    rl_conf_destroy(conf);
    return prod;
}

/* True when the producer may send record `seq` now (window and rate). */
static bool may_send(struct wl_producer *p, uint32_t seq, uint64_t t0)
{
    const struct wl_config *cfg = &p->w->cfg;
    if (atomic_load(&p->sent) - atomic_load(&p->completed) >= cfg->window)
        return false;
    return !cfg->rate || (uint64_t)seq * 1000 <= (tl_now_ms() - t0) * (uint64_t)cfg->rate;
}

static void *producer_main(void *arg)
{
    struct wl_producer *p = arg;
    struct wl *w = p->w;
    int idx = (int)(p - w->prod);
    int rc = netns_enter(w->lab, w->cfg.producer_host[idx]);
    struct rl_producer *prod = rc ? NULL : producer_new(p);
    if (!prod) {
        if (rc)
            snprintf(p->error, sizeof(p->error), "cannot enter host: %s", strerror(-rc));
        return NULL;
    }
    uint64_t t0 = tl_now_ms();
    for (uint32_t seq = 0; !atomic_load(&w->stop);) {
        if (!may_send(p, seq, t0)) {
            poll(NULL, 0, 1);
            continue;
        }
        uint32_t part = seq % (uint32_t)w->cfg.partitions;
        if (hist_invoke(w->h, p->writer, seq, part))
            break;
        char val[32];
        int len = hist_value_format(p->writer, seq, val, sizeof(val));
        atomic_fetch_add(&p->sent, 1);
        rc = rl_producer_send(prod, w->cfg.topic, (int32_t)part, NULL, 0, val, (size_t)len, 0,
                              (void *)(uintptr_t)seq);
        if (rc) { /* refused: it never left this process */
            hist_complete(w->h, p->writer, seq, HIST_FAIL, -1, -1, 0);
            atomic_fetch_add(&p->completed, 1);
            poll(NULL, 0, WL_REFUSED_BACKOFF_MS);
        }
        seq++;
    }
    rl_producer_flush(prod, atomic_load(&w->flush_ms));
    rl_producer_destroy(prod, 0); /* what is left is reported (as indeterminate) now */
    return NULL;
}

static struct rl_consumer *consumer_new(struct wl *w, const char *bootstrap)
{
    static const char *const kv[] = {"fetch.max.wait.ms", "200", "request.timeout.ms", "3000",
                                     "connect.timeout.ms", "2000",
                                     "auto.offset.reset", "earliest", NULL};
    struct rl_conf *conf = conf_new(bootstrap, kv);
    if (!conf)
        return NULL;
    char err[256];
    struct rl_consumer *c = rl_consumer_new(conf, err, sizeof(err));
    if (!c)
        fprintf(stderr, "workload: rl_consumer_new: %s\n", err);
    rl_conf_destroy(conf);
    (void)w;
    return c;
}

static void *consumer_main(void *arg)
{
    struct wl_consumer *cs = arg;
    struct wl *w = cs->w;
    int rc = netns_enter(w->lab, w->cfg.consumer_host[cs->index]);
    struct rl_consumer *c = rc ? NULL : consumer_new(w, w->cfg.bootstrap);
    if (!c) {
        snprintf(cs->error, sizeof(cs->error), "cannot start the consumer");
        return NULL;
    }
    bool assigned = false;
    while (!atomic_load(&w->stop)) {
        if (!assigned) { /* the broker may be unreachable for a while: try again */
            assigned = rl_consumer_assign_topic(c, w->cfg.topic, RL_OFFSET_EARLIEST) > 0;
            if (!assigned)
                poll(NULL, 0, 100);
            continue;
        }
        struct rl_record rec;
        rc = rl_consumer_poll(c, 100, &rec);
        if (rc == 1)
            hist_read(w->h, cs->source, (uint32_t)rec.partition, rec.offset, rec.value,
                      rec.value_len > 0 ? (size_t)rec.value_len : 0, 0);
        else if (rc < 0)
            poll(NULL, 0, 20); /* faults make errors; the consumer retries on the next poll */
    }
    rl_consumer_destroy(c);
    return NULL;
}

int wl_start(struct wl *w, const struct wl_config *cfg, struct netns_lab *lab, struct hist *h)
{
    memset(w, 0, sizeof(*w));
    w->cfg = *cfg;
    w->lab = lab;
    w->h = h;
    if (!w->cfg.window)
        w->cfg.window = 200;
    if (!w->cfg.delivery_timeout_ms)
        w->cfg.delivery_timeout_ms = 20000;
    if (!w->cfg.request_timeout_ms)
        w->cfg.request_timeout_ms = 3000;
    if (!w->cfg.acks)
        w->cfg.acks = "all";
    if (cfg->producers > WL_MAX_CLIENTS || cfg->consumers > WL_MAX_CLIENTS)
        return -EINVAL;
    for (int i = 0; i < cfg->producers; i++) {
        struct wl_producer *p = &w->prod[i];
        p->w = w;
        p->writer = hist_writer_add(h, cfg->idempotent);
        if (p->writer < 0 || pthread_create(&p->thread, NULL, producer_main, p))
            return -EAGAIN;
    }
    for (int i = 0; i < cfg->consumers; i++) {
        struct wl_consumer *c = &w->cons[i];
        char name[32];
        snprintf(name, sizeof(name), "consumer-%d", i);
        c->w = w;
        c->index = i;
        c->source = hist_source_add(h, HIST_CONSUMER, -1, name);
        if (c->source < 0 || pthread_create(&c->thread, NULL, consumer_main, c))
            return -EAGAIN;
    }
    w->started = true;
    return 0;
}

int wl_stop(struct wl *w, uint32_t flush_timeout_ms)
{
    if (!w->started)
        return 0;
    atomic_store(&w->flush_ms, (int)flush_timeout_ms);
    atomic_store(&w->stop, true);
    int rc = 0;
    for (int i = 0; i < w->cfg.producers; i++) {
        pthread_join(w->prod[i].thread, NULL);
        if (w->prod[i].error[0]) {
            fprintf(stderr, "workload: producer %d: %s\n", i, w->prod[i].error);
            rc = -EIO;
        }
    }
    for (int i = 0; i < w->cfg.consumers; i++) {
        pthread_join(w->cons[i].thread, NULL);
        if (w->cons[i].error[0]) {
            fprintf(stderr, "workload: consumer %d: %s\n", i, w->cons[i].error);
            rc = -EIO;
        }
    }
    w->started = false;
    return rc;
}

int wl_wait_acks(struct wl *w, long more, uint32_t timeout_ms)
{
    long target = hist_acked(w->h) + more;
    uint64_t deadline = tl_now_ms() + timeout_ms;
    while (hist_acked(w->h) < target) {
        if (tl_now_ms() >= deadline)
            return -ETIMEDOUT;
        poll(NULL, 0, 5);
    }
    return 0;
}

long wl_acks_within(struct wl *w, uint32_t window_ms)
{
    long before = hist_acked(w->h);
    uint64_t end = tl_now_ms() + window_ms;
    while (tl_now_ms() < end)
        poll(NULL, 0, 10); /* a measuring window, not a synchronization */
    return hist_acked(w->h) - before;
}

/* The end offset of every partition, asked of the bootstrap brokers. */
/* One admin per broker of bootstrap ("h:p,h:p,..."): ListOffsets goes to the broker it is
 * sent to, and only a partition's leader answers it. Returns how many were made. */
static int admins_per_broker(const char *bootstrap, struct rl_admin **out, int cap)
{
    static const char *const kv[] = {"request.timeout.ms", "3000", NULL};
    char list[256];
    snprintf(list, sizeof(list), "%s", bootstrap);
    int n = 0;
    for (char *save, *tok = strtok_r(list, ",", &save); tok && n < cap;
         tok = strtok_r(NULL, ",", &save)) {
        struct rl_conf *conf = conf_new(tok, kv);
        char err[256];
        out[n] = conf ? rl_admin_new(conf, err, sizeof(err)) : NULL;
        rl_conf_destroy(conf);
        n += out[n] != NULL;
    }
    return n;
}

static int end_offsets(const char *bootstrap, const char *topic, int partitions, int64_t *end,
                       uint32_t timeout_ms, char *why, size_t cap)
{
    struct rl_admin *a[WL_MAX_CLIENTS];
    int na = admins_per_broker(bootstrap, a, WL_MAX_CLIENTS);
    if (na == 0) {
        snprintf(why, cap, "admin: no broker in \"%s\"", bootstrap);
        return RL_E_INVALID_CONFIG;
    }
    int rc = 0;
    uint64_t deadline = tl_now_ms() + timeout_ms;
    for (int p = 0; p < partitions; p++) {
        /* The partition's leader answers; the others say NOT_LEADER. A broker just restarted
         * or a leader moving: ask again until the deadline. */
        for (int i = 0;; i = (i + 1) % na) {
            rc = rl_admin_list_offsets(a[i], topic, p, RL_OFFSET_LATEST, &end[p]);
            if (!rc || tl_now_ms() >= deadline)
                break;
            if (i == na - 1)
                poll(NULL, 0, 100);
        }
        if (rc) {
            snprintf(why, cap, "end offset of partition %d: %s", p, rl_admin_last_error(a[0]));
            break;
        }
    }
    for (int i = 0; i < na; i++)
        rl_admin_destroy(a[i]);
    return rc;
}

static bool drained(struct rl_consumer *c, const char *topic, int partitions,
                    const int64_t *end)
{
    for (int p = 0; p < partitions; p++)
        if (rl_consumer_position(c, topic, p) < end[p])
            return false;
    return true;
}

long wl_drain(struct hist *h, const char *bootstrap, const char *topic, int partitions,
              const char *name, uint32_t timeout_ms, char *why, size_t cap)
{
    int64_t *end = calloc((size_t)partitions, sizeof(*end));
    int source = hist_source_add(h, HIST_CONSUMER, -1, name);
    uint64_t deadline = tl_now_ms() + timeout_ms;
    long n = 0;
    struct rl_consumer *c = NULL;
    int rc = !end || source < 0 ? -ENOMEM : 0;
    if (!rc)
        rc = end_offsets(bootstrap, topic, partitions, end, timeout_ms, why, cap);
    if (!rc && !(c = consumer_new(NULL, bootstrap)))
        rc = -ENOMEM;
    for (int p = 0; !rc && p < partitions; p++)
        rc = rl_consumer_assign(c, topic, p, RL_OFFSET_EARLIEST);
    while (!rc && !drained(c, topic, partitions, end)) {
        if (tl_now_ms() >= deadline) {
            snprintf(why, cap, "drain: not at the end after %u ms (%ld records read)",
                     timeout_ms, n);
            rc = -ETIMEDOUT;
            break;
        }
        struct rl_record rec;
        int r = rl_consumer_poll(c, 200, &rec);
        if (r == 1) {
            hist_read(h, source, (uint32_t)rec.partition, rec.offset, rec.value,
                      rec.value_len > 0 ? (size_t)rec.value_len : 0, 0);
            n++;
        }
    }
    if (rc && rc != -ETIMEDOUT && !why[0])
        snprintf(why, cap, "drain: %s", c ? rl_consumer_last_error(c) : rl_strerror(rc));
    if (c)
        rl_consumer_destroy(c);
    free(end);
    return rc ? rc : n;
}

/* Records every record at or past *next of the batches in data, and moves *next past them
 * (control batches too: their offsets hold nothing to read). */
static long record_batches(struct hist *h, int source, uint32_t p, struct batch_reader *r,
                           const uint8_t *data, uint32_t len, int64_t *next)
{
    long n = 0;
    for (uint32_t pos = 0; pos + RL_BATCH_HEADER_SIZE <= len;) {
        struct batch_header bh;
        int rc = batch_reader_open(r, data + pos, len - pos, &bh);
        if (rc)
            return rc;
        struct batch_record rec;
        while (!(bh.flags & BATCH_FLAG_CONTROL) && (rc = batch_reader_next(r, &rec)) == 1) {
            if (rec.offset < *next)
                continue;
            hist_read(h, source, p, rec.offset, rec.value,
                      rec.value_len > 0 ? (size_t)rec.value_len : 0, bh.leader_epoch);
            n++;
        }
        if (rc < 0)
            return rc;
        int64_t after = (int64_t)(bh.base_offset + bh.last_offset_delta + 1);
        if (after > *next)
            *next = after;
        pos += bh.batch_len;
    }
    return n;
}

static long dump_partition(struct hist *h, int source, struct tl_conn *c, struct batch_reader *r,
                           const char *topic, uint32_t p, uint64_t deadline, char *why,
                           size_t cap)
{
    int64_t hw = 0, next = 0;
    int rc = tl_list_offset(c, topic, p, -1, &hw);
    if (!rc)
        rc = tl_list_offset(c, topic, p, -2, &next);
    long n = 0;
    while (!rc && next < hw) {
        struct tl_fetch f = {.topic = topic, .partition = p, .offset = (uint64_t)next,
                             .max_bytes = WL_DUMP_MAX_BYTES};
        struct tl_fetch_result res;
        rc = tl_fetch(c, &f, &res);
        if (rc)
            break;
        int64_t before = next;
        long got = record_batches(h, source, p, r, res.data, res.data_len, &next);
        if (got < 0) {
            rc = (int)got;
            break;
        }
        n += got;
        if (next == before && tl_now_ms() >= deadline)
            rc = -ETIMEDOUT;
        else if (next == before)
            poll(NULL, 0, 20); /* nothing new yet: ask again shortly */
    }
    if (rc)
        snprintf(why, cap, "dump of partition %u: %s", p, rl_strerror(rc));
    return rc ? rc : n;
}

long wl_dump_replica(struct hist *h, int source, const char *host, uint16_t port,
                     const char *topic, int partitions, uint32_t timeout_ms, char *why,
                     size_t cap)
{
    uint64_t deadline = tl_now_ms() + timeout_ms;
    struct tl_conn c;
    int rc = tl_connect(&c, host, port, timeout_ms);
    if (rc) {
        snprintf(why, cap, "connect to %s:%u: %s", host, port, rl_strerror(rc));
        return rc;
    }
    struct batch_reader *r = batch_reader_create(16u << 20);
    long total = r ? 0 : -ENOMEM;
    hist_source_reset(h, source);
    for (int p = 0; total >= 0 && p < partitions; p++) {
        long n = dump_partition(h, source, &c, r, topic, (uint32_t)p, deadline, why, cap);
        if (n == RL_E_NOT_LEADER) { /* a follower or a non-owner serves no reads */
            why[0] = 0;
            continue;
        }
        total = n < 0 ? n : total + n;
    }
    batch_reader_destroy(r);
    tl_close(&c);
    return total;
}

/* Whether the broker on c serves `partition` up to `end` (its visible end, the commit index it
 * knows, has reached it): a fetch at `end` succeeds on a replica whose visible end is there,
 * and is refused (NOT_LEADER, out of range) on one behind. */
static bool replica_reached(struct tl_conn *c, const char *topic, uint32_t partition,
                            int64_t end)
{
    struct tl_fetch f = {.topic = topic, .partition = partition, .offset = (uint64_t)end,
                         .max_bytes = 1};
    struct tl_fetch_result res;
    return tl_fetch(c, &f, &res) == 0 && res.high_watermark >= (uint64_t)end;
}

int wl_wait_replicas(struct cl_cluster *c, const char *topic, int partitions,
                     bool every_partition, uint32_t timeout_ms, char *why, size_t cap)
{
    int64_t *end = calloc((size_t)partitions, sizeof(*end));
    if (!end)
        return -ENOMEM;
    int rc = end_offsets(c->bootstrap, topic, partitions, end, timeout_ms, why, cap);
    if (rc) {
        free(end);
        return rc;
    }
    uint64_t deadline = tl_now_ms() + timeout_ms;
    for (int i = 1; i <= c->n; i++) {
        if (!cl_alive(c, i))
            continue;
        for (int p = 0; p < partitions; p++) {
            bool reached = false;
            while (!reached && tl_now_ms() < deadline) {
                struct tl_conn conn;
                if (tl_connect(&conn, c->b[i].host, CL_PORT, 2000) == 0) {
                    reached = replica_reached(&conn, topic, (uint32_t)p, end[p]);
                    tl_close(&conn);
                }
                if (!reached && !every_partition)
                    break; /* it may hold no replica of p */
                if (!reached)
                    poll(NULL, 0, 50);
            }
            if (!reached && every_partition) {
                snprintf(why, cap, "broker %d's replica of partition %d did not reach the "
                         "leader's end %lld within %u ms after healing", i, p,
                         (long long)end[p], timeout_ms);
                free(end);
                return -ETIMEDOUT;
            }
        }
    }
    free(end);
    return 0;
}

long wl_verify(struct hist *h, struct cl_cluster *c, const char *topic, int partitions,
               const struct hist_check_opts *opts, uint32_t timeout_ms)
{
    char why[256] = "";
    netns_log(c->lab, "verify: final drain and replica dumps from the control node");
    long n = wl_drain(h, c->bootstrap, topic, partitions, "final-drain", timeout_ms, why,
                      sizeof(why));
    if (n < 0)
        netns_log(c->lab, "verify: %s", why);
    for (int i = 1; i <= c->n; i++) {
        if (!cl_alive(c, i))
            continue;
        char name[32];
        snprintf(name, sizeof(name), "replica-%d", i);
        int src = hist_source_add(h, HIST_REPLICA, i, name);
        long m = src < 0 ? src : wl_dump_replica(h, src, c->b[i].host, CL_PORT, topic,
                                                 partitions, timeout_ms, why, sizeof(why));
        if (m < 0)
            netns_log(c->lab, "verify: broker %d: %s", i, why);
    }
    struct hist_report *rep = malloc(sizeof(*rep));
    if (!rep)
        return -ENOMEM;
    long anomalies = hist_check(h, opts, rep);
    hist_report_print(rep, stderr);
    if (anomalies != 0) {
        char path[320];
        snprintf(path, sizeof(path), "%s/history.txt", c->dir);
        hist_dump(h, path);
        netns_log(c->lab, "verify: %ld anomalies; history written to %s", anomalies, path);
    }
    free(rep);
    return n < 0 && anomalies == 0 ? n : anomalies;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The segment files (*.log) of one partition directory, sorted by base offset (their names
 * are zero-padded offsets). Returns how many (<= cap), names malloc'ed. */
static int segment_names(const char *dir, char **names, int cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".log"))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof(*names), cmp_name);
    return n;
}

/* Records every batch of one segment file until its end or the first byte that is no batch
 * (a preallocated or torn tail). */
static long dump_segment(struct hist *h, int source, uint32_t p, struct batch_reader *r,
                         const char *path, int64_t *next)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    long n = 0;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            n = -errno;
        } else {
            uint32_t len = 0;
            struct batch_header bh;
            while (len < st.st_size &&
                   batch_validate(map + len, (size_t)st.st_size - len, &bh) == 0)
                len += bh.batch_len;
            n = record_batches(h, source, p, r, map, len, next);
            munmap(map, (size_t)st.st_size);
        }
    }
    close(fd);
    return n;
}

long wl_dump_data_dir(struct hist *h, int source, const char *data_dir, const char *topic,
                      int partitions, bool every_partition, char *why, size_t cap)
{
    struct batch_reader *r = batch_reader_create(16u << 20);
    long total = r ? 0 : -ENOMEM;
    hist_source_reset(h, source);
    for (int p = 0; total >= 0 && p < partitions; p++) {
        char dir[600], *names[1024];
        snprintf(dir, sizeof(dir), "%s/%s-%d", data_dir, topic, p);
        int k = segment_names(dir, names, 1024);
        if (k == -ENOENT && !every_partition)
            continue; /* no replica of this partition here */
        if (k < 0) {
            snprintf(why, cap, "%s: %s", dir, strerror(-k));
            total = k;
            break;
        }
        int64_t next = 0;
        for (int i = 0; i < k; i++) {
            char path[1200];
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
            long n = total >= 0 ? dump_segment(h, source, (uint32_t)p, r, path, &next) : 0;
            if (n < 0)
                snprintf(why, cap, "%s: %s", path, rl_strerror((int)n));
            total = n < 0 ? n : total + n;
            free(names[i]);
        }
    }
    batch_reader_destroy(r);
    return total;
}

long wl_claims_from_log(struct hist *h, const char *log_path, const char *topic, int node)
{
    FILE *f = fopen(log_path, "r");
    if (!f)
        return -errno;
    char line[1024], pat[200];
    snprintf(pat, sizeof(pat), "leader of %s-", topic);
    long n = 0;
    while (fgets(line, sizeof(line), f)) {
        const char *at = strstr(line, pat);
        unsigned p, term;
        if (at && sscanf(at + strlen(pat), "%u in term %u", &p, &term) == 2) {
            hist_leader(h, p, term, node, "broker log");
            n++;
        }
    }
    fclose(f);
    return n;
}

int wl_log_latest_claim(const char *log_path, const char *topic, uint32_t partition,
                        uint32_t *term)
{
    FILE *f = fopen(log_path, "r");
    if (!f)
        return -errno;
    char line[1024], pat[200];
    snprintf(pat, sizeof(pat), "leader of %s-", topic);
    int found = 0;
    *term = 0;
    while (fgets(line, sizeof(line), f)) {
        const char *at = strstr(line, pat);
        unsigned p, t;
        if (at && sscanf(at + strlen(pat), "%u in term %u", &p, &t) == 2 && p == partition &&
            t >= *term) {
            *term = t;
            found = 1;
        }
    }
    fclose(f);
    return found;
}
