/*
 * Consumer groups of libringlog against a real ringlogd: at-least-once processing while members
 * join, leave and are killed (SIGKILL), committed offsets surviving a broker restart, and
 * auto-commit committing exactly what poll handed out; the rebalance events (LOST after a
 * session timeout or a member that stopped polling, processing longer than the session
 * timeout without losing partitions, positions resolved and seekable inside ASSIGNED) and
 * poll's RL_TIMEOUT_INFINITE. Members of at_least_once are child processes that log
 * every record they process and every commit that succeeded to one shared file (O_APPEND,
 * one write per line, so lines from different processes never interleave and a killed process
 * leaves only whole lines). Prints "N passed, N failed"; RINGLOG_TEST_SEED replays a run.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/ringlog.h"
#include "common/err.h"
#include "tests/integration/tl_proxy.h"
#include "tests/lib/tl_broker.h"

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
            goto out;                                                                           \
        }                                                                                       \
    } while (0)

#define PARTS 12
#define RECORDS 300000
#define MAX_MEMBERS 16
#define MEMBER_RATE_PER_10MS 100 /* records a member processes per 10 ms ("work") */

static struct tl_broker g_broker;
static uint64_t g_seed;
static char g_log_path[400];

static struct rl_conf *conf_for(const char *const *kv)
{
    struct rl_conf *c = rl_conf_new();
    char addr[128], err[256];
    snprintf(addr, sizeof(addr), "%s:%u", g_broker.host, g_broker.port);
    rl_conf_set(c, "bootstrap.servers", addr, err, sizeof(err));
    rl_conf_set(c, "request.timeout.ms", "5000", err, sizeof(err));
    for (int i = 0; kv && kv[i]; i += 2)
        if (rl_conf_set(c, kv[i], kv[i + 1], err, sizeof(err)))
            fprintf(stderr, "  conf: %s\n", err);
    return c;
}

static int create_topic(const char *name, int parts)
{
    struct rl_conf *c = conf_for(NULL);
    char err[256];
    struct rl_admin *a = rl_admin_new(c, err, sizeof(err));
    struct rl_topic_spec spec = {.name = name, .partitions = parts};
    int rc = rl_admin_create_topic(a, &spec);
    if (rc)
        fprintf(stderr, "  create %s: %s\n", name, rl_admin_last_error(a));
    rl_admin_destroy(a);
    rl_conf_destroy(c);
    return rc;
}

/* Produces n records keyed over 1000 keys; returns 0 when all were acknowledged. */
static int produce(const char *topic, long n)
{
    struct rl_conf *c = conf_for(NULL);
    char err[256];
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    int rc = p ? 0 : -1;
    for (long i = 0; rc == 0 && i < n; i++) {
        char key[16], val[24];
        int kl = snprintf(key, sizeof(key), "k%ld", i % 1000);
        int vl = snprintf(val, sizeof(val), "%ld", i);
        rc = rl_producer_send(p, topic, RL_PARTITION_ANY, key, (size_t)kl, val, (size_t)vl, 0,
                              NULL);
    }
    if (rc == 0)
        rc = rl_producer_flush(p, 30000);
    uint64_t acked = 0, failed = 0;
    if (p)
        rl_producer_counts(p, &acked, &failed);
    if (rc || failed || acked != (uint64_t)n)
        fprintf(stderr, "  produce: rc %d, %" PRIu64 " acked, %" PRIu64 " failed: %s\n", rc,
                acked, failed, p ? rl_producer_last_error(p) : err);
    rl_producer_destroy(p, 5000);
    rl_conf_destroy(c);
    return rc || failed || acked != (uint64_t)n ? -1 : 0;
}

/* --- a member (child process) ------------------------------------------------------------------ */

static volatile sig_atomic_t g_leave;

static void on_term(int sig)
{
    (void)sig;
    g_leave = 1;
}

struct member {
    int log_fd;
    int id;
    struct rl_topic_partition held[PARTS];
    char topics[PARTS][32];
    size_t held_count;
};

static void log_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(int fd, const char *fmt, ...)
{
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ssize_t w = write(fd, buf, (size_t)n);
    (void)w;
}

/* Commits positions; after success logs each held partition's committed position. */
static void member_commit(struct member *m, struct rl_consumer *k)
{
    if (rl_consumer_commit(k) != 0)
        return;
    for (size_t i = 0; i < m->held_count; i++) {
        int64_t pos = rl_consumer_position(k, m->held[i].topic, m->held[i].partition);
        if (pos >= 0)
            log_line(m->log_fd, "C %d %d %" PRId64 "\n", m->id, m->held[i].partition, pos);
    }
}

static void member_rebalance(void *ctx, struct rl_consumer *k, enum rl_rebalance_event event,
                             const struct rl_topic_partition *parts, size_t count)
{
    struct member *m = ctx;
    if (event == RL_REBALANCE_REVOKED)
        member_commit(m, k);
    if (event != RL_REBALANCE_ASSIGNED) { /* LOST: another member may own them; no commit */
        m->held_count = 0;
        return;
    }
    m->held_count = 0;
    for (size_t i = 0; i < count && i < PARTS; i++) {
        snprintf(m->topics[i], sizeof(m->topics[i]), "%s", parts[i].topic);
        m->held[i] = (struct rl_topic_partition){m->topics[i], parts[i].partition};
        m->held_count++;
    }
}

/* The member's life: process records (log each), commit every 200 ms, leave on SIGTERM. */
static int member_main(int id, const char *topic)
{
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    struct member m = {.id = id};
    m.log_fd = open(g_log_path, O_WRONLY | O_APPEND | O_CLOEXEC);
    const char *kv[] = {"group.id", "alo", "session.timeout.ms", "1500",
                        "heartbeat.interval.ms", "300", "rebalance.timeout.ms", "3000",
                        "enable.auto.commit", "false", "auto.offset.reset", "earliest",
                        "fetch.max.wait.ms", "100", NULL};
    struct rl_conf *c = conf_for(kv);
    rl_conf_set_rebalance_cb(c, member_rebalance, &m);
    char err[256];
    struct rl_consumer *k = rl_consumer_new(c, err, sizeof(err));
    const char *topics[1] = {topic};
    if (m.log_fd < 0 || !k || rl_consumer_subscribe(k, topics, 1) != 0)
        return 3;
    uint64_t next_commit = tl_now_ms() + 200, end = tl_now_ms() + 120000;
    int batch = 0;
    while (!g_leave && tl_now_ms() < end) {
        struct rl_record r;
        int rc = rl_consumer_poll(k, 100, &r);
        if (rc == 1) {
            log_line(m.log_fd, "R %d %d %" PRId64 "\n", id, r.partition, r.offset);
            if (++batch == MEMBER_RATE_PER_10MS) {
                batch = 0;
                poll(NULL, 0, 10); /* the "work" that makes rebalances happen mid-stream */
            }
        } else if (rc < 0) {
            fprintf(stderr, "  member %d: poll: %s\n", id, rl_consumer_last_error(k));
        }
        if (tl_now_ms() >= next_commit) {
            next_commit = tl_now_ms() + 200;
            member_commit(&m, k);
        }
    }
    member_commit(&m, k);
    rl_consumer_close(k);
    rl_consumer_destroy(k);
    rl_conf_destroy(c);
    return 0;
}

static pid_t member_start(int id, const char *topic)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0)
        _exit(member_main(id, topic));
    return pid;
}

/* --- the parent: schedule, log reading, checks ---------------------------------------------- */

struct tally {
    int64_t end[PARTS];      /* log end per partition */
    uint8_t *seen[PARTS];
    long distinct, deliveries, violations;
    int64_t committed[PARTS]; /* highest committed so far, in log order */
    int fd;
    char buf[1 << 16];
    size_t len;
};

/* Takes the whole lines written since the last call. A record processed again below an offset
 * whose commit had already succeeded is a violation of at-least-once-without-rewind. */
static void tally_read(struct tally *t)
{
    for (;;) {
        ssize_t r = read(t->fd, t->buf + t->len, sizeof(t->buf) - 1 - t->len);
        if (r <= 0)
            return;
        t->len += (size_t)r;
        t->buf[t->len] = 0;
        char *line = t->buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = 0;
            char kind;
            int id, p;
            int64_t o;
            if (sscanf(line, "%c %d %d %" SCNd64, &kind, &id, &p, &o) == 4 && p >= 0 &&
                p < PARTS && o >= 0) {
                if (kind == 'C' && o > t->committed[p])
                    t->committed[p] = o;
                if (kind == 'R' && o < t->end[p]) {
                    t->deliveries++;
                    if (!t->seen[p][o]++)
                        t->distinct++;
                    if (o < t->committed[p] && t->violations++ < 3)
                        fprintf(stderr, "  member %d processed %d@%" PRId64 " after offset %"
                                PRId64 " was committed\n", id, p, o, t->committed[p]);
                }
            }
            line = nl + 1;
        }
        t->len -= (size_t)(line - t->buf);
        memmove(t->buf, line, t->len);
    }
}

static int end_offsets_n(const char *topic, int64_t *end, int parts)
{
    struct rl_conf *c = conf_for(NULL);
    char err[256];
    struct rl_admin *a = rl_admin_new(c, err, sizeof(err));
    int rc = 0;
    for (int p = 0; p < parts && rc == 0; p++)
        rc = rl_admin_list_offsets(a, topic, p, RL_OFFSET_LATEST, &end[p]);
    rl_admin_destroy(a);
    rl_conf_destroy(c);
    return rc;
}

static int end_offsets(const char *topic, int64_t *end)
{
    return end_offsets_n(topic, end, PARTS);
}

/* Waits for a child, bounded; SIGKILLs it past the deadline. Returns its exit code or -1. */
static int reap(pid_t pid, uint64_t timeout_ms)
{
    uint64_t end = tl_now_ms() + timeout_ms;
    int st;
    while (tl_now_ms() < end) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        poll(NULL, 0, 20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

struct step {
    double at;   /* fraction of records processed */
    char what;   /* 'k' SIGKILL, 't' SIGTERM (leave), 's' start */
    int member;
};

/* 300,000 records over 12 partitions, processed by a group whose members are killed, leave
 * and join while it works: every record is processed at least once, no record is processed
 * again below an offset already committed, and after a broker restart a new member finds every
 * partition committed at its end (it receives nothing). */
static int test_at_least_once(void)
{
    struct tally t = {0};
    pid_t pids[MAX_MEMBERS] = {0};
    int rc = -1, started = 0;
    t.fd = -1;
    CHECK(create_topic("alo", PARTS) == 0, "create");
    CHECK(produce("alo", RECORDS) == 0, "produce");
    CHECK(end_offsets("alo", t.end) == 0, "end offsets");
    for (int p = 0; p < PARTS; p++) {
        t.seen[p] = calloc((size_t)t.end[p] + 1, 1);
        CHECK(t.seen[p], "oom");
    }
    snprintf(g_log_path, sizeof(g_log_path), "%s/members.log", g_broker.dir);
    int wfd = open(g_log_path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    CHECK(wfd >= 0, "%s", strerror(errno));
    close(wfd);
    t.fd = open(g_log_path, O_RDONLY | O_CLOEXEC);
    for (; started < 3; started++)
        pids[started] = member_start(started, "alo");
    const struct step plan[] = {
        {0.15, 'k', 0}, {0.15, 's', 3}, {0.35, 't', 1}, {0.35, 's', 4}, {0.50, 's', 5},
        {0.65, 'k', 2}, {0.65, 'k', 5}, {0.65, 's', 6},
    };
    size_t next = 0;
    uint64_t deadline = tl_now_ms() + 120000;
    while (t.distinct < RECORDS && tl_now_ms() < deadline) {
        poll(NULL, 0, 50);
        tally_read(&t);
        while (next < sizeof(plan) / sizeof(plan[0]) &&
               t.distinct >= (long)(plan[next].at * RECORDS)) {
            const struct step *s = &plan[next++];
            printf("  at %ld records: %s member %d\n", t.distinct,
                   s->what == 'k' ? "SIGKILL" : s->what == 't' ? "SIGTERM" : "start", s->member);
            if (s->what == 's')
                pids[s->member] = member_start(s->member, "alo"), started++;
            else
                kill(pids[s->member], s->what == 'k' ? SIGKILL : SIGTERM);
        }
    }
    for (int i = 0; i < MAX_MEMBERS; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    for (int i = 0; i < MAX_MEMBERS; i++)
        if (pids[i] > 0)
            reap(pids[i], 15000), pids[i] = 0;
    tally_read(&t);
    printf("  %ld records processed %ld times (%ld re-deliveries)\n", t.distinct, t.deliveries,
           t.deliveries - t.distinct);
    CHECK(t.distinct == RECORDS, "only %ld of %d records were processed", t.distinct, RECORDS);
    CHECK(t.violations == 0, "%ld records processed again below a committed offset",
          t.violations);
    for (int p = 0; p < PARTS; p++)
        CHECK(t.committed[p] == t.end[p], "partition %d: committed %" PRId64 " of %" PRId64, p,
              t.committed[p], t.end[p]);
    /* Committed offsets survive a crash of the broker. */
    tl_broker_kill(&g_broker);
    CHECK(tl_broker_restart(&g_broker, 20000) == 0, "restart");
    const char *kv[] = {"group.id", "alo", "session.timeout.ms", "1500",
                        "heartbeat.interval.ms", "300", "auto.offset.reset", "earliest",
                        "fetch.max.wait.ms", "100", NULL};
    struct rl_conf *c = conf_for(kv);
    char err[256];
    struct rl_consumer *k = rl_consumer_new(c, err, sizeof(err));
    const char *topics[1] = {"alo"};
    int got = 0;
    CHECK(k, "consumer: %s", err);
    rc = rl_consumer_subscribe(k, topics, 1);
    for (uint64_t end = tl_now_ms() + 3000; rc == 0 && tl_now_ms() < end;) {
        struct rl_record r;
        int n = rl_consumer_poll(k, 100, &r);
        got += n == 1;
    }
    for (int p = 0; rc == 0 && p < PARTS; p++)
        if (rl_consumer_position(k, "alo", p) != t.end[p])
            rc = -1, fprintf(stderr, "  after the restart partition %d starts at %" PRId64
                             ", not at its committed %" PRId64 "\n", p,
                             rl_consumer_position(k, "alo", p), t.end[p]);
    if (got)
        rc = -1, fprintf(stderr, "  after the restart %d records came again\n", got);
    rl_consumer_destroy(k);
    rl_conf_destroy(c);
out:
    for (int i = 0; i < MAX_MEMBERS; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGKILL), reap(pids[i], 5000);
    for (int p = 0; p < PARTS; p++)
        free(t.seen[p]);
    if (t.fd >= 0)
        close(t.fd);
    return rc;
}

/* Polls up to `want` records within timeout_ms; marks each value in seen[] and counts repeats. */
static long take(struct rl_consumer *k, long want, uint8_t *seen, long n, long *repeats,
                 uint64_t timeout_ms)
{
    long got = 0;
    for (uint64_t end = tl_now_ms() + timeout_ms; got < want && tl_now_ms() < end;) {
        struct rl_record r;
        if (rl_consumer_poll(k, 100, &r) != 1)
            continue;
        char buf[24];
        int vl = r.value_len < 23 ? r.value_len : 23;
        memcpy(buf, r.value, (size_t)vl);
        buf[vl] = 0;
        long i = strtol(buf, NULL, 10);
        if (i >= 0 && i < n && seen[i]++)
            (*repeats)++;
        got++;
    }
    return got;
}

/* Auto-commit commits exactly what poll handed out: a member takes 300 of 1,000 records and
 * closes; the next member of the group gets the other 700, none of the first 300 again. */
static int test_auto_commit(void)
{
    const long n = 1000;
    uint8_t seen[1000] = {0};
    long repeats = 0;
    int rc = -1;
    struct rl_consumer *k = NULL;
    const char *kv[] = {"group.id", "ac", "auto.offset.reset", "earliest",
                        "auto.commit.interval.ms", "100000", "fetch.max.wait.ms", "100", NULL};
    struct rl_conf *c = conf_for(kv);
    CHECK(create_topic("ac", 2) == 0 && produce("ac", n) == 0, "setup");
    char err[256];
    const char *topics[1] = {"ac"};
    k = rl_consumer_new(c, err, sizeof(err));
    CHECK(k && rl_consumer_subscribe(k, topics, 1) == 0, "subscribe");
    long a = take(k, 300, seen, n, &repeats, 20000);
    CHECK(a == 300, "first member got %ld", a);
    CHECK(rl_consumer_close(k) == 0, "close: %s", rl_consumer_last_error(k));
    rl_consumer_destroy(k);
    k = rl_consumer_new(c, err, sizeof(err));
    CHECK(k && rl_consumer_subscribe(k, topics, 1) == 0, "subscribe again");
    long b = take(k, n - a, seen, n, &repeats, 10000);
    struct rl_record extra;
    CHECK(rl_consumer_poll(k, 300, &extra) == 0, "a record beyond the 1,000 came");
    CHECK(a + b == n && repeats == 0, "second member got %ld (%ld repeats)", b, repeats);
    rc = 0;
out:
    rl_consumer_destroy(k);
    rl_conf_destroy(c);
    return rc;
}

/* --- rebalance events ------------------------------------------------------------------------ */

#define WATCH_MAX 32

/* The rebalance callbacks one member saw, in order. Written on the member's polling thread,
 * read by the test's thread: under a lock. */
struct watch {
    pthread_mutex_t lock;
    int events[WATCH_MAX];
    size_t counts[WATCH_MAX];
    int n;
    atomic_int held; /* partitions held according to the callbacks */
    long bad_positions; /* positions that were not offsets inside ASSIGNED */
    /* Seek inside ASSIGNED: every assigned partition goes to seek_to (when >= 0), and the
     * position seen before the seek is kept. */
    int64_t seek_to, position_seen;
};

static void watch_init(struct watch *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    w->seek_to = -1;
    w->position_seen = -100;
}

static void watch_cb(void *ctx, struct rl_consumer *k, enum rl_rebalance_event event,
                     const struct rl_topic_partition *parts, size_t count)
{
    struct watch *w = ctx;
    for (size_t i = 0; event == RL_REBALANCE_ASSIGNED && i < count; i++) {
        int64_t pos = rl_consumer_position(k, parts[i].topic, parts[i].partition);
        w->bad_positions += pos < 0;
        w->position_seen = pos;
        if (w->seek_to >= 0)
            rl_consumer_seek(k, parts[i].topic, parts[i].partition, w->seek_to);
    }
    pthread_mutex_lock(&w->lock);
    if (w->n < WATCH_MAX) {
        w->events[w->n] = event;
        w->counts[w->n] = count;
        w->n++;
    }
    pthread_mutex_unlock(&w->lock);
    atomic_store(&w->held, event == RL_REBALANCE_ASSIGNED ? (int)count : 0);
}

static int watch_count(struct watch *w)
{
    pthread_mutex_lock(&w->lock);
    int n = w->n;
    pthread_mutex_unlock(&w->lock);
    return n;
}

static int watch_event(struct watch *w, int i, size_t *count)
{
    pthread_mutex_lock(&w->lock);
    int e = i < w->n ? w->events[i] : 0;
    if (count)
        *count = i < w->n ? w->counts[i] : 0;
    pthread_mutex_unlock(&w->lock);
    return e;
}

static const char *event_name(int e)
{
    return e == RL_REBALANCE_ASSIGNED ? "ASSIGNED" : e == RL_REBALANCE_REVOKED ? "REVOKED"
           : e == RL_REBALANCE_LOST   ? "LOST" : "none";
}

static void watch_print(struct watch *w, const char *who)
{
    pthread_mutex_lock(&w->lock);
    fprintf(stderr, "  %s saw:", who);
    for (int i = 0; i < w->n; i++)
        fprintf(stderr, " %s(%zu)", event_name(w->events[i]), w->counts[i]);
    fprintf(stderr, "\n");
    pthread_mutex_unlock(&w->lock);
}

/* A group member with a watch, its own configuration and (optionally) its own thread. */
struct gm {
    struct watch w;
    struct rl_conf *conf;
    struct rl_consumer *k;
    pthread_t th;
    bool threaded;
    atomic_bool stop;
    atomic_long records;
};

/* Opens and subscribes m; its rebalance callback is cb(ctx), or watch_cb on m's watch. */
static int gm_open(struct gm *m, const char *group, const char *topic, const char *const *kv,
                   const char *bootstrap, rl_rebalance_cb cb, void *ctx)
{
    watch_init(&m->w);
    m->conf = conf_for(kv);
    char err[256];
    rl_conf_set(m->conf, "group.id", group, err, sizeof(err));
    if (bootstrap)
        rl_conf_set(m->conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rl_conf_set_rebalance_cb(m->conf, cb ? cb : watch_cb, cb ? ctx : &m->w);
    m->k = rl_consumer_new(m->conf, err, sizeof(err));
    const char *topics[1] = {topic};
    return m->k && rl_consumer_subscribe(m->k, topics, 1) == 0 ? 0 : -1;
}

static void gm_poll(struct gm *m, int timeout_ms)
{
    struct rl_record r;
    if (rl_consumer_poll(m->k, timeout_ms, &r) == 1)
        atomic_fetch_add(&m->records, 1);
}

/* Polls until the member holds `want` partitions by its callbacks, bounded by timeout_ms. */
static bool gm_poll_until_held(struct gm *m, int want, uint64_t timeout_ms)
{
    for (uint64_t end = tl_now_ms() + timeout_ms; tl_now_ms() < end;) {
        if (atomic_load(&m->w.held) == want && watch_count(&m->w) > 0)
            return true;
        gm_poll(m, 50);
    }
    return atomic_load(&m->w.held) == want;
}

static void *gm_main(void *arg)
{
    struct gm *m = arg;
    for (uint64_t end = tl_now_ms() + 60000; !atomic_load(&m->stop) && tl_now_ms() < end;)
        gm_poll(m, 50);
    return NULL;
}

static int gm_start_thread(struct gm *m)
{
    m->threaded = pthread_create(&m->th, NULL, gm_main, m) == 0;
    return m->threaded ? 0 : -1;
}

static void gm_close(struct gm *m)
{
    if (m->threaded) {
        atomic_store(&m->stop, true);
        pthread_join(m->th, NULL);
        m->threaded = false;
    }
    rl_consumer_destroy(m->k);
    rl_conf_destroy(m->conf);
    m->k = NULL;
    m->conf = NULL;
    pthread_mutex_destroy(&m->w.lock);
}

/* Waits (bounded) until another thread's member holds `want` partitions. */
static bool held_within(struct gm *m, int want, uint64_t timeout_ms)
{
    uint64_t end = tl_now_ms() + timeout_ms;
    while (atomic_load(&m->w.held) != want && tl_now_ms() < end)
        poll(NULL, 0, 10); /* checking another thread's progress against a deadline */
    return atomic_load(&m->w.held) == want;
}

static atomic_ullong g_lost_at; /* when LOST came */

struct stall_ctx {
    struct watch *w;
    struct tl_proxy *px;
};

/* LOST ends the outage, so the member can rejoin right after the callback. */
static void stall_cb(void *ctx, struct rl_consumer *k, enum rl_rebalance_event event,
                     const struct rl_topic_partition *parts, size_t count)
{
    struct stall_ctx *sc = ctx;
    watch_cb(sc->w, k, event, parts, count);
    if (event == RL_REBALANCE_LOST) {
        atomic_store(&g_lost_at, tl_now_ms());
        atomic_store(&sc->px->stall, false);
    }
}

/* lost_after_session_timeout: a member behind a proxy holds both partitions; the proxy then
 * swallows everything (no heartbeat reaches the coordinator) for longer than
 * session.timeout.ms. The member's next events are LOST with the two partitions, then
 * ASSIGNED once it rejoined: never REVOKED, and LOST before the next ASSIGNED. */
static int test_lost_after_session_timeout(void)
{
    struct tl_proxy px;
    struct gm m = {0};
    struct stall_ctx sc = {&m.w, &px};
    int rc = -1;
    bool proxy = false;
    CHECK(create_topic("lost", 2) == 0 && produce("lost", 100) == 0, "setup");
    CHECK(tl_proxy_start(&px, g_broker.host, g_broker.port, g_seed) == 0, "proxy");
    proxy = true;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", px.port);
    const char *kv[] = {"session.timeout.ms", "1000", "heartbeat.interval.ms", "200",
                        "rebalance.timeout.ms", "3000", "request.timeout.ms", "3000",
                        "enable.auto.commit", "false", NULL};
    CHECK(gm_open(&m, "lost", "lost", kv, addr, stall_cb, &sc) == 0, "member");
    CHECK(gm_poll_until_held(&m, 2, 10000), "never assigned");
    uint64_t t0 = tl_now_ms();
    atomic_store(&px.stall, true);
    for (uint64_t end = t0 + 15000; tl_now_ms() < end && watch_count(&m.w) < 3;)
        gm_poll(&m, 100);
    watch_print(&m.w, "member");
    uint64_t lost_ms = atomic_load(&g_lost_at) - t0;
    printf("  LOST %llu ms after the outage began (session.timeout.ms 1000)\n",
           (unsigned long long)lost_ms);
    size_t lost_count;
    CHECK(watch_event(&m.w, 1, &lost_count) == RL_REBALANCE_LOST, "second event is %s, not "
          "LOST", event_name(watch_event(&m.w, 1, NULL)));
    CHECK(lost_count == 2, "LOST named %zu partitions, not 2", lost_count);
    CHECK(watch_event(&m.w, 2, NULL) == RL_REBALANCE_ASSIGNED, "no ASSIGNED after LOST");
    CHECK(m.w.bad_positions == 0, "%ld positions inside ASSIGNED were not offsets",
          m.w.bad_positions);
    CHECK(lost_ms < 2500, "LOST came %llu ms after the outage began (session.timeout.ms 1000)",
          (unsigned long long)lost_ms);
    rc = 0;
out:
    if (m.conf)
        gm_close(&m);
    if (proxy)
        tl_proxy_stop(&px);
    return rc;
}

/* slow_processing_keeps_partitions: a member with session.timeout.ms 1000 spends 2,500 ms
 * "processing" one record between polls (well within max.poll.interval.ms): the heartbeat
 * thread keeps it in the group, so it sees no callback after its first ASSIGNED and goes on
 * with the next record. */
static int test_slow_processing(void)
{
    struct gm m = {0};
    int rc = -1;
    CHECK(create_topic("slow", 2) == 0 && produce("slow", 50) == 0, "setup");
    const char *kv[] = {"session.timeout.ms", "1000", "heartbeat.interval.ms", "200",
                        "max.poll.interval.ms", "20000", "rebalance.timeout.ms", "3000",
                        "auto.offset.reset", "earliest", NULL};
    CHECK(gm_open(&m, "slow", "slow", kv, NULL, NULL, NULL) == 0, "member");
    for (uint64_t end = tl_now_ms() + 10000; atomic_load(&m.records) == 0 && tl_now_ms() < end;)
        gm_poll(&m, 100);
    CHECK(atomic_load(&m.records) == 1, "no first record");
    for (int round = 0; round < 2; round++) {
        poll(NULL, 0, 2500); /* the application's work on a record: not a synchronization */
        gm_poll(&m, 1000);
    }
    for (uint64_t end = tl_now_ms() + 1000; tl_now_ms() < end;)
        gm_poll(&m, 100); /* give news of a lost membership every chance to arrive */
    watch_print(&m.w, "member");
    CHECK(watch_count(&m.w) == 1 && watch_event(&m.w, 0, NULL) == RL_REBALANCE_ASSIGNED,
          "the member saw %d rebalance events, not just its first ASSIGNED",
          watch_count(&m.w));
    CHECK(atomic_load(&m.records) > 3, "only %ld records", atomic_load(&m.records));
    rc = 0;
out:
    if (m.conf)
        gm_close(&m);
    return rc;
}

/* stopped_polling_is_removed: members a (max.poll.interval.ms 1500, session.timeout.ms
 * 10000) and b (its own thread) share four partitions. a stops polling: within far less than
 * its session timeout, b holds all four (a left the group by itself). When a polls again its
 * first event is LOST with its two partitions, then ASSIGNED after it rejoined. */
static int test_stopped_polling(void)
{
    struct gm a = {0}, b = {0};
    int rc = -1;
    CHECK(create_topic("stuck", 4) == 0 && produce("stuck", 200) == 0, "setup");
    const char *kva[] = {"session.timeout.ms", "10000", "heartbeat.interval.ms", "200",
                         "max.poll.interval.ms", "1500", "rebalance.timeout.ms", "5000", NULL};
    const char *kvb[] = {"session.timeout.ms", "10000", "heartbeat.interval.ms", "200",
                         "rebalance.timeout.ms", "5000", NULL};
    CHECK(gm_open(&a, "stuck", "stuck", kva, NULL, NULL, NULL) == 0, "member a");
    CHECK(gm_poll_until_held(&a, 4, 10000), "a never held 4");
    CHECK(gm_open(&b, "stuck", "stuck", kvb, NULL, NULL, NULL) == 0, "member b");
    CHECK(gm_start_thread(&b) == 0, "b's thread");
    bool both = false;
    for (uint64_t end = tl_now_ms() + 15000; !both && tl_now_ms() < end;) {
        gm_poll(&a, 50);
        both = atomic_load(&a.w.held) == 2 && atomic_load(&b.w.held) == 2;
    }
    CHECK(both, "a holds %d, b %d", atomic_load(&a.w.held), atomic_load(&b.w.held));
    int seen_a = watch_count(&a.w);
    uint64_t t0 = tl_now_ms();
    CHECK(held_within(&b, 4, 8000), "b holds %d partitions %llu ms after a stopped polling",
          atomic_load(&b.w.held), (unsigned long long)(tl_now_ms() - t0));
    uint64_t moved_ms = tl_now_ms() - t0;
    printf("  b held all 4 partitions %llu ms after a stopped polling\n",
           (unsigned long long)moved_ms);
    CHECK(watch_count(&a.w) == seen_a, "a saw a callback without polling");
    for (uint64_t end = tl_now_ms() + 10000; tl_now_ms() < end && watch_count(&a.w) < seen_a + 2;)
        gm_poll(&a, 50);
    watch_print(&a.w, "a");
    size_t n;
    CHECK(watch_event(&a.w, seen_a, &n) == RL_REBALANCE_LOST && n == 2, "a's first event "
          "after it polled again is %s(%zu), not LOST(2)", event_name(watch_event(&a.w, seen_a,
          NULL)), n);
    CHECK(watch_event(&a.w, seen_a + 1, NULL) == RL_REBALANCE_ASSIGNED, "no ASSIGNED after LOST");
    rc = 0;
out:
    if (b.conf)
        gm_close(&b);
    if (a.conf)
        gm_close(&a);
    return rc;
}

/* assigned_positions: inside ASSIGNED a partition's position is a real offset (with
 * auto.offset.reset latest, the log end: 50), and a seek made there decides the first record
 * poll returns (offset 20). */
static int test_assigned_positions(void)
{
    struct gm m = {0};
    int rc = -1;
    CHECK(create_topic("pos", 1) == 0 && produce("pos", 50) == 0, "setup");
    const char *kv[] = {"auto.offset.reset", "latest", NULL};
    CHECK(gm_open(&m, "pos", "pos", kv, NULL, NULL, NULL) == 0, "member");
    m.w.seek_to = 20; /* read by the callback, which runs on this thread */
    struct rl_record r;
    int got = 0;
    for (uint64_t end = tl_now_ms() + 10000; got != 1 && tl_now_ms() < end;)
        got = rl_consumer_poll(m.k, 100, &r);
    CHECK(m.w.position_seen == 50, "position inside ASSIGNED was %lld, not 50",
          (long long)m.w.position_seen);
    CHECK(got == 1 && r.offset == 20, "first record: rc %d offset %lld, not 20", got,
          (long long)r.offset);
    rc = 0;
out:
    if (m.conf)
        gm_close(&m);
    return rc;
}

/* unreachable_coordinator_bounds_poll: a member behind a proxy that swallows everything, for
 * good: LOST comes after the session timeout, and no single rl_consumer_poll(100) call takes
 * much longer than rebalance.timeout.ms + request.timeout.ms (3,000 ms) while it fails to
 * rejoin. Once the path works again, the member is ASSIGNED again. */
static int test_unreachable_coordinator(void)
{
    struct tl_proxy px;
    struct gm m = {0};
    int rc = -1;
    bool proxy = false;
    CHECK(create_topic("unreach", 2) == 0, "setup");
    CHECK(tl_proxy_start(&px, g_broker.host, g_broker.port, g_seed) == 0, "proxy");
    proxy = true;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", px.port);
    const char *kv[] = {"session.timeout.ms", "1000", "heartbeat.interval.ms", "200",
                        "rebalance.timeout.ms", "2000", "request.timeout.ms", "1000",
                        "connect.timeout.ms", "1000", "retry.backoff.max.ms", "200", NULL};
    CHECK(gm_open(&m, "unreach", "unreach", kv, addr, NULL, NULL) == 0, "member");
    CHECK(gm_poll_until_held(&m, 2, 10000), "never assigned");
    atomic_store(&px.stall, true);
    uint64_t longest = 0, t0 = tl_now_ms();
    int errors = 0;
    while (tl_now_ms() - t0 < 8000) {
        struct rl_record r;
        uint64_t a = tl_now_ms();
        errors += rl_consumer_poll(m.k, 100, &r) < 0;
        longest = tl_now_ms() - a > longest ? tl_now_ms() - a : longest;
    }
    atomic_store(&px.stall, false);
    printf("  longest poll(100) while the coordinator was unreachable: %llu ms, %d errors\n",
           (unsigned long long)longest, errors);
    CHECK(watch_event(&m.w, 1, NULL) == RL_REBALANCE_LOST, "no LOST during the outage");
    CHECK(longest < 6000, "one poll(100) took %llu ms", (unsigned long long)longest);
    CHECK(errors > 0, "poll never said it could not rejoin");
    CHECK(gm_poll_until_held(&m, 2, 15000), "not assigned again after the outage");
    watch_print(&m.w, "member");
    rc = 0;
out:
    if (m.conf)
        gm_close(&m);
    if (proxy)
        tl_proxy_stop(&px);
    return rc;
}

struct waker {
    struct rl_consumer *k;
    int after_ms;
};

static void *waker_main(void *arg)
{
    struct waker *w = arg;
    poll(NULL, 0, w->after_ms); /* the moment to wake at: the thing under test */
    rl_consumer_wakeup(w->k);
    return NULL;
}

/* poll_infinite: rl_consumer_poll with RL_TIMEOUT_INFINITE on a caught-up consumer waits
 * (it does not return at once) until rl_consumer_wakeup from another thread, then returns 0;
 * with a timeout of 0 it returns at once. */
static int test_poll_infinite(void)
{
    struct rl_conf *c = conf_for(NULL);
    char err[256];
    struct rl_consumer *k = rl_consumer_new(c, err, sizeof(err));
    int rc = -1;
    pthread_t th;
    bool started = false;
    CHECK(create_topic("inf", 1) == 0, "setup");
    CHECK(k && rl_consumer_assign(k, "inf", 0, RL_OFFSET_LATEST) == 0, "assign");
    CHECK(rl_consumer_position(k, "inf", 0) == 0, "position of an empty partition at latest");
    struct rl_record r;
    uint64_t t0 = tl_now_ms();
    CHECK(rl_consumer_poll(k, 0, &r) == 0 && tl_now_ms() - t0 < 1000, "poll(0)");
    struct waker w = {k, 400};
    started = pthread_create(&th, NULL, waker_main, &w) == 0;
    CHECK(started, "thread");
    t0 = tl_now_ms();
    int got = rl_consumer_poll(k, RL_TIMEOUT_INFINITE, &r);
    uint64_t took = tl_now_ms() - t0;
    CHECK(got == 0 && took >= 350, "poll(RL_TIMEOUT_INFINITE) returned %d after %llu ms", got,
          (unsigned long long)took);
    rc = 0;
out:
    if (started)
        pthread_join(th, NULL);
    rl_consumer_destroy(k);
    rl_conf_destroy(c);
    return rc;
}

/* --- cooperative rebalancing ------------------------------------------------------------------ */

#define COOP_PARTS 6
#define COOP_RECORDS 60000
#define COOP_EVENTS 32

/* A member of the cooperative test, run by a thread of its own (a consumer is used by one
 * thread at a time; each has its own). Events and counters are read by the main thread under
 * `lock`. */
struct coop_member {
    pthread_t th;
    struct rl_conf *conf;
    struct rl_consumer *k;
    pthread_mutex_t lock;
    atomic_bool stop;
    bool held[COOP_PARTS];
    int events[COOP_EVENTS];        /* RL_REBALANCE_* in order */
    unsigned event_parts[COOP_EVENTS]; /* bit p: partition p named */
    uint64_t event_ms[COOP_EVENTS];
    int event_count;
    int64_t last[COOP_PARTS];       /* last offset handed out per partition (-1: none) */
    long breaks[COOP_PARTS];        /* a record that did not follow the last one */
    long records;
    long retained_during;           /* records of partitions it keeps, in the watched window */
    atomic_bool watching;
    const char *err;
};

static pthread_mutex_t g_coop_seen_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *g_coop_seen[COOP_PARTS];
static int64_t g_coop_end[COOP_PARTS];
static long g_coop_distinct;

static void coop_cb(void *ctx, struct rl_consumer *k, enum rl_rebalance_event event,
                    const struct rl_topic_partition *parts, size_t count)
{
    (void)k;
    struct coop_member *m = ctx;
    pthread_mutex_lock(&m->lock);
    unsigned bits = 0;
    for (size_t i = 0; i < count; i++)
        if (parts[i].partition >= 0 && parts[i].partition < COOP_PARTS) {
            bits |= 1u << parts[i].partition;
            m->held[parts[i].partition] = event == RL_REBALANCE_ASSIGNED;
            m->last[parts[i].partition] = -1; /* starts again where the group says */
        }
    if (m->event_count < COOP_EVENTS) {
        m->events[m->event_count] = event;
        m->event_parts[m->event_count] = bits;
        m->event_ms[m->event_count++] = tl_now_ms();
    }
    pthread_mutex_unlock(&m->lock);
}

static void *coop_main(void *arg)
{
    struct coop_member *m = arg;
    int batch = 0;
    for (uint64_t end = tl_now_ms() + 90000; !atomic_load(&m->stop) && tl_now_ms() < end;) {
        struct rl_record r;
        int rc = rl_consumer_poll(m->k, 50, &r);
        if (rc < 0)
            fprintf(stderr, "  coop member: poll: %s\n", rl_consumer_last_error(m->k));
        if (rc != 1 || r.partition < 0 || r.partition >= COOP_PARTS)
            continue;
        pthread_mutex_lock(&m->lock);
        int p = r.partition;
        if (m->last[p] >= 0 && r.offset != m->last[p] + 1)
            m->breaks[p]++;
        m->last[p] = r.offset;
        m->records++;
        if (atomic_load(&m->watching))
            m->retained_during++;
        pthread_mutex_unlock(&m->lock);
        pthread_mutex_lock(&g_coop_seen_lock);
        if (r.offset < g_coop_end[p] && !g_coop_seen[p][r.offset]++)
            g_coop_distinct++;
        pthread_mutex_unlock(&g_coop_seen_lock);
        if (++batch == 50) {
            batch = 0;
            poll(NULL, 0, 5); /* the application's work: spreads consumption over seconds */
        }
    }
    return NULL;
}

static int coop_start(struct coop_member *m, const char *strategy)
{
    const char *kv[] = {"group.id", "coop", "partition.assignment.strategy", strategy,
                        "session.timeout.ms", "3000", "heartbeat.interval.ms", "200",
                        "rebalance.timeout.ms", "5000", "auto.commit.interval.ms", "300",
                        "auto.offset.reset", "earliest", "fetch.max.wait.ms", "100", NULL};
    pthread_mutex_init(&m->lock, NULL);
    for (int p = 0; p < COOP_PARTS; p++)
        m->last[p] = -1;
    m->conf = conf_for(kv);
    rl_conf_set_rebalance_cb(m->conf, coop_cb, m);
    char err[256];
    m->k = rl_consumer_new(m->conf, err, sizeof(err));
    const char *topics[1] = {"coop"};
    if (!m->k || rl_consumer_subscribe(m->k, topics, 1) != 0)
        return -1;
    return pthread_create(&m->th, NULL, coop_main, m) == 0 ? 0 : -1;
}

static void coop_stop(struct coop_member *m)
{
    if (!m->k)
        return;
    atomic_store(&m->stop, true);
    rl_consumer_wakeup(m->k);
    pthread_join(m->th, NULL);
    rl_consumer_close(m->k);
    rl_consumer_destroy(m->k);
    rl_conf_destroy(m->conf);
    pthread_mutex_destroy(&m->lock);
    m->k = NULL;
}

static unsigned coop_held(struct coop_member *m)
{
    pthread_mutex_lock(&m->lock);
    unsigned bits = 0;
    for (int p = 0; p < COOP_PARTS; p++)
        bits |= m->held[p] ? 1u << p : 0;
    pthread_mutex_unlock(&m->lock);
    return bits;
}

/* Polls (with a deadline) until the members hold `want` partitions each, all 6 covered. */
static bool coop_wait_split(struct coop_member *ms, int n, int want, uint64_t timeout_ms)
{
    for (uint64_t end = tl_now_ms() + timeout_ms; tl_now_ms() < end; poll(NULL, 0, 20)) {
        unsigned all = 0;
        bool ok = true;
        for (int i = 0; i < n; i++) {
            unsigned h = coop_held(&ms[i]);
            ok = ok && __builtin_popcount(h) == want && !(all & h);
            all |= h;
        }
        if (ok && all == (1u << COOP_PARTS) - 1)
            return true;
    }
    return false;
}

/* cooperative_rebalance: two members of a cooperative-sticky group consume 6 partitions; a
 * third joins mid-stream. The two keep the partitions they retain throughout: no REVOKED or
 * LOST names one, their records keep coming in offset order with no rewind (also while the
 * rebalance runs), and only the two partitions that move are revoked, then assigned to the
 * newcomer in a later generation. Every record is consumed. With eager range the same run
 * revokes everything (the check that fails then is the first one). */
static int test_cooperative_rebalance(void)
{
    struct coop_member ms[3];
    memset(ms, 0, sizeof(ms));
    int rc = -1;
    int marks[2] = {0, 0};
    unsigned base[2] = {0, 0};
    CHECK(create_topic("coop", COOP_PARTS) == 0, "create");
    CHECK(produce("coop", COOP_RECORDS) == 0, "produce");
    CHECK(end_offsets_n("coop", g_coop_end, COOP_PARTS) == 0, "end offsets");
    for (int p = 0; p < COOP_PARTS; p++)
        CHECK((g_coop_seen[p] = calloc((size_t)g_coop_end[p] + 1, 1)), "oom");
    const char *strategy = getenv("COOP_STRATEGY") ? getenv("COOP_STRATEGY")
                                                   : "cooperative-sticky";
    CHECK(coop_start(&ms[0], strategy) == 0 && coop_start(&ms[1], strategy) == 0, "members");
    CHECK(coop_wait_split(ms, 2, 3, 20000), "two members never split 6 partitions 3 + 3");
    for (int i = 0; i < 2; i++) {
        pthread_mutex_lock(&ms[i].lock);
        marks[i] = ms[i].event_count;
        base[i] = 0;
        for (int p = 0; p < COOP_PARTS; p++)
            base[i] |= ms[i].held[p] ? 1u << p : 0;
        pthread_mutex_unlock(&ms[i].lock);
        atomic_store(&ms[i].watching, true);
    }
    long before = g_coop_distinct;
    uint64_t t_join = tl_now_ms();
    CHECK(coop_start(&ms[2], strategy) == 0, "third member");
    CHECK(coop_wait_split(ms, 3, 2, 20000), "three members never split 6 partitions 2 + 2 + 2");
    for (int i = 0; i < 2; i++)
        atomic_store(&ms[i].watching, false);
    printf("  rebalance took %llu ms; %ld records consumed before it\n",
           (unsigned long long)(tl_now_ms() - t_join), before);
    for (int i = 0; i < 2; i++) {
        unsigned now = coop_held(&ms[i]), kept = base[i] & now, moved = base[i] & ~now;
        pthread_mutex_lock(&ms[i].lock);
        long during = ms[i].retained_during;
        int events = ms[i].event_count;
        bool bad = false;
        for (int e = marks[i]; e < events; e++) {
            printf("  member %d: %s %#x\n", i, event_name(ms[i].events[e]),
                   ms[i].event_parts[e]);
            /* No event names a kept partition: not REVOKED, and not ASSIGNED again either
             * (ASSIGNED names only what a member gains; these two gain nothing). */
            if ((ms[i].event_parts[e] & kept) || ms[i].events[e] == RL_REBALANCE_LOST ||
                (ms[i].events[e] == RL_REBALANCE_REVOKED && ms[i].event_parts[e] != moved))
                bad = true;
        }
        long breaks = 0;
        for (int p = 0; p < COOP_PARTS; p++)
            breaks += kept & (1u << p) ? ms[i].breaks[p] : 0;
        pthread_mutex_unlock(&ms[i].lock);
        CHECK(!bad, "member %d: an event named a partition it kept (%#x), or REVOKED was "
              "not exactly the moved ones (%#x), or LOST came", i, kept, moved);
        CHECK(now == kept && __builtin_popcount(moved) == 1, "member %d: held %#x, now %#x",
              i, base[i], now);
        CHECK(breaks == 0, "member %d: %ld records of kept partitions out of offset order",
              i, breaks);
        CHECK(during > 0, "member %d consumed nothing while the third joined", i);
    }
    pthread_mutex_lock(&ms[2].lock);
    bool newcomer_ok = ms[2].event_count >= 1 &&
                       ms[2].events[ms[2].event_count - 1] == RL_REBALANCE_ASSIGNED;
    for (int e = 0; e < ms[2].event_count; e++)
        newcomer_ok = newcomer_ok && ms[2].events[e] == RL_REBALANCE_ASSIGNED;
    pthread_mutex_unlock(&ms[2].lock);
    CHECK(newcomer_ok, "the newcomer saw something other than ASSIGNED");
    for (uint64_t end = tl_now_ms() + 60000; tl_now_ms() < end; poll(NULL, 0, 50)) {
        pthread_mutex_lock(&g_coop_seen_lock);
        long d = g_coop_distinct;
        pthread_mutex_unlock(&g_coop_seen_lock);
        if (d == COOP_RECORDS)
            break;
    }
    pthread_mutex_lock(&g_coop_seen_lock);
    long distinct = g_coop_distinct;
    pthread_mutex_unlock(&g_coop_seen_lock);
    printf("  %ld of %d records consumed; members took %ld, %ld, %ld\n", distinct,
           COOP_RECORDS, ms[0].records, ms[1].records, ms[2].records);
    CHECK(distinct == COOP_RECORDS, "only %ld of %d records consumed", distinct, COOP_RECORDS);
    rc = 0;
out:
    for (int i = 0; i < 3; i++)
        coop_stop(&ms[i]);
    for (int p = 0; p < COOP_PARTS; p++) {
        free(g_coop_seen[p]);
        g_coop_seen[p] = NULL;
    }
    return rc;
}

/* consumer_stats: a consumer of 2 partitions holding 1,000 records reports what it handed out,
 * its fetches and their round trips, and each partition's lag (high watermark - position),
 * which falls to 0 once everything is consumed. */
static int test_consumer_stats(void)
{
    struct rl_conf *c = NULL;
    struct rl_consumer *k = NULL;
    int rc = -1;
    CHECK(create_topic("stats", 2) == 0 && produce("stats", 1000) == 0, "setup");
    const char *kv[] = {"fetch.max.wait.ms", "100", "max.partition.fetch.bytes", "4096", NULL};
    c = conf_for(kv);
    char err[256];
    k = rl_consumer_new(c, err, sizeof(err));
    CHECK(k && rl_consumer_assign_topic(k, "stats", RL_OFFSET_EARLIEST) == 2, "assign");
    struct rl_consumer_stats st;
    struct rl_partition_stats ps[2];
    long n = 0;
    bool both = false;
    for (uint64_t end = tl_now_ms() + 10000; tl_now_ms() < end && (n < 100 || !both);) {
        struct rl_record r;
        n += rl_consumer_poll(k, 100, &r) == 1;
        CHECK(rl_consumer_stats(k, &st, sizeof(st), ps, 2) == 2, "stats");
        both = ps[0].high_watermark >= 0 && ps[1].high_watermark >= 0;
    }
    CHECK(both && n >= 100, "%ld records, high watermarks %lld %lld", n,
          (long long)ps[0].high_watermark, (long long)ps[1].high_watermark);
    printf("  after %ld records: lag %lld, %llu fetches, rtt avg %llu us max %llu us, "
           "%llu bytes buffered, %llu fetches in flight\n", n, (long long)st.lag,
           (unsigned long long)st.fetches, (unsigned long long)st.rtt_avg_us,
           (unsigned long long)st.rtt_max_us, (unsigned long long)st.buffered_bytes,
           (unsigned long long)st.in_flight_fetches);
    CHECK(st.records == (uint64_t)n && st.assigned_partitions == 2, "records %llu of %ld",
          (unsigned long long)st.records, n);
    CHECK(ps[0].high_watermark + ps[1].high_watermark == 1000, "high watermarks %lld + %lld",
          (long long)ps[0].high_watermark, (long long)ps[1].high_watermark);
    CHECK(ps[0].position + ps[1].position == n, "positions %lld + %lld, %ld handed out",
          (long long)ps[0].position, (long long)ps[1].position, n);
    CHECK(st.lag == 1000 - n && ps[0].lag + ps[1].lag == 1000 - n, "lag %lld after %ld of 1000",
          (long long)st.lag, n);
    CHECK(st.fetches >= 1 && st.rtt_avg_us > 0 && st.rtt_max_us >= st.rtt_avg_us &&
          st.rtt_last_us > 0, "fetches %llu, rtt %llu/%llu/%llu us",
          (unsigned long long)st.fetches, (unsigned long long)st.rtt_avg_us,
          (unsigned long long)st.rtt_max_us, (unsigned long long)st.rtt_last_us);
    CHECK(st.bytes >= (uint64_t)n * 3, "%llu key and value bytes", (unsigned long long)st.bytes);
    for (uint64_t end = tl_now_ms() + 10000; tl_now_ms() < end && n < 1000;) {
        struct rl_record r;
        n += rl_consumer_poll(k, 100, &r) == 1;
    }
    CHECK(rl_consumer_stats(k, &st, sizeof(st), ps, 1) == 2, "stats with room for one");
    CHECK(n == 1000 && st.lag == 0 && ps[0].lag == 0, "%ld consumed, lag %lld", n,
          (long long)st.lag);
    struct rl_consumer_stats small = {0};
    CHECK(rl_consumer_stats(k, &small, sizeof(uint64_t), NULL, 0) == 2 &&
          small.assigned_partitions == 2 && small.records == 0, "a shorter struct");
    CHECK(rl_consumer_stats(k, NULL, sizeof(st), NULL, 0) == RL_E_INVALID_ARGUMENT, "NULL");
    rc = 0;
out:
    rl_consumer_destroy(k);
    rl_conf_destroy(c);
    return rc;
}

struct log_seen {
    pthread_mutex_t lock;
    int count, joined;
};

static void log_cb(void *ctx, int level, const char *msg)
{
    (void)level;
    struct log_seen *ls = ctx;
    pthread_mutex_lock(&ls->lock);
    ls->count++;
    ls->joined += strstr(msg, "group logs: joined as") != NULL;
    pthread_mutex_unlock(&ls->lock);
}

/* consumer_logs_through_callback: with rl_conf_set_log_cb, a group member's messages (joins,
 * fetch answers, at log.level debug) reach the callback and nothing of them reaches stderr
 * (redirected to a file for the test). */
static int test_consumer_logs(void)
{
    struct log_seen seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct rl_conf *c = NULL;
    struct rl_consumer *k = NULL;
    int rc = -1, saved = -1;
    char path[400], text[4096] = "";
    CHECK(create_topic("logs", 1) == 0 && produce("logs", 10) == 0, "setup");
    const char *kv[] = {"group.id", "logs", "log.level", "debug", "fetch.max.wait.ms", "100",
                        NULL};
    c = conf_for(kv);
    rl_conf_set_log_cb(c, log_cb, &seen);
    snprintf(path, sizeof(path), "%s/stderr.txt", g_broker.dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
    CHECK(fd >= 0, "%s", strerror(errno));
    fflush(stderr);
    saved = dup(2);
    dup2(fd, 2);
    close(fd);
    char err[256];
    k = rl_consumer_new(c, err, sizeof(err));
    const char *topics[1] = {"logs"};
    int got = 0;
    if (k && rl_consumer_subscribe(k, topics, 1) == 0)
        for (uint64_t end = tl_now_ms() + 10000; tl_now_ms() < end && got < 10;) {
            struct rl_record r;
            got += rl_consumer_poll(k, 100, &r) == 1;
        }
    rl_consumer_destroy(k);
    k = NULL;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    saved = -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t len = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
    if (fd >= 0)
        close(fd);
    text[len > 0 ? len : 0] = 0;
    CHECK(got == 10, "consumed %d of 10", got);
    CHECK(seen.count > 0 && seen.joined > 0, "%d messages through the callback, %d joins",
          seen.count, seen.joined);
    CHECK(!strstr(text, "group logs") && !strstr(text, "consumer:"), "on stderr: %s", text);
    printf("  %d messages through the callback, none on stderr\n", seen.count);
    rc = 0;
out:
    if (saved >= 0) {
        dup2(saved, 2);
        close(saved);
    }
    rl_consumer_destroy(k);
    rl_conf_destroy(c);
    return rc;
}

int main(void)
{
    const char *s = getenv("RINGLOG_TEST_SEED");
    g_seed = s ? strtoull(s, NULL, 0) : tl_now_ms();
    printf("seed %" PRIu64 "\n", g_seed);
    if (tl_broker_start(&g_broker, NULL, 20000) != 0) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    struct {
        const char *name;
        int (*fn)(void);
    } tests[] = {
        {"auto_commit", test_auto_commit},
        {"assigned_positions", test_assigned_positions},
        {"poll_infinite", test_poll_infinite},
        {"slow_processing_keeps_partitions", test_slow_processing},
        {"stopped_polling_is_removed", test_stopped_polling},
        {"lost_after_session_timeout", test_lost_after_session_timeout},
        {"unreachable_coordinator_bounds_poll", test_unreachable_coordinator},
        {"at_least_once", test_at_least_once},
        {"cooperative_rebalance", test_cooperative_rebalance},
        {"consumer_stats", test_consumer_stats},
        {"consumer_logs_through_callback", test_consumer_logs},
    };
    const char *only = getenv("TEST_ONLY");
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        if (only && !strstr(tests[i].name, only))
            continue;
        uint64_t t0 = tl_now_ms();
        int rc = tests[i].fn();
        printf("%s %s (%" PRIu64 " ms)\n", rc == 0 ? "PASS" : "FAIL", tests[i].name,
               tl_now_ms() - t0);
        rc == 0 ? passed++ : failed++;
    }
    if (failed)
        tl_broker_dump_log(&g_broker, 40);
    tl_broker_cleanup(&g_broker);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
