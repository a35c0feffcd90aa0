/*
 * cli_bench_run: produce and consume phases of `ringlog bench` (see cli_bench_run.h).
 *
 * Threads of a produce phase: the calling thread sends (paced in open loop); the producer's
 * I/O thread runs the delivery callback, which records acknowledgement latency into the ack
 * lane; a consumer thread (when asked) records end-to-end latency into the e2e lane; a monitor
 * thread samples CPU and the broker's metrics once a second and prints progress. Each lane has
 * exactly one writer; the per-second slots a lane has finished are published with a release
 * store, so the monitor can print them while the phase runs.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include "client/cli_bench_run.h"

const double brun_pcts[BRUN_PCTS] = {50, 99, 99.9, 100};

#define NS 1000000000ull
#define WARMUP_OPAQUE ((void *)(uintptr_t)1) /* the records sent before the clock starts */
#define WARMUP_MAX_PARTITIONS 4096          /* partitions warmed up one record each, at most */
#define FLUSH_TIMEOUT_MS 120000
#define SLACK_SECS 8 /* per-second slots kept beyond the phase's planned length */

uint64_t brun_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static double cpu_self_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* --- lanes: per-second latency and counts, one writer each ---------------------------------- */

struct lane_sec {
    uint64_t count;
    double ms[BRUN_PCTS];
};

struct lane {
    struct bhist cur;   /* the second being filled */
    struct bhist total; /* every finished second */
    uint64_t t0_ns;
    uint32_t sec;       /* which second `cur` covers */
    uint64_t count;     /* records in that second (with or without a latency) */
    uint32_t cap;
    struct lane_sec *secs;
    atomic_uint published; /* slots [0, published) are final */
};

static struct lane *lane_new(uint64_t t0_ns, uint32_t cap)
{
    struct lane *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->secs = calloc(cap, sizeof(*l->secs));
    if (!l->secs) {
        free(l);
        return NULL;
    }
    l->t0_ns = t0_ns;
    l->cap = cap;
    return l;
}

static void lane_free(struct lane *l)
{
    if (l)
        free(l->secs);
    free(l);
}

/* Finishes every second before `upto`: percentiles of the second into its slot, its values
 * into the total. Seconds past the slots still count in the total. */
static void lane_roll(struct lane *l, uint32_t upto)
{
    while (l->sec < upto) {
        if (l->sec < l->cap) {
            struct lane_sec *s = &l->secs[l->sec];
            s->count = l->count;
            for (int i = 0; i < BRUN_PCTS; i++)
                s->ms[i] = l->cur.count ? bhist_percentile_ms(&l->cur, brun_pcts[i]) : NAN;
            atomic_store_explicit(&l->published, l->sec + 1, memory_order_release);
        }
        if (l->cur.count) {
            bhist_merge(&l->total, &l->cur);
            bhist_reset(&l->cur);
        }
        l->count = 0;
        l->sec++;
    }
}

static inline void lane_add(struct lane *l, uint64_t now_ns, uint64_t records)
{
    uint32_t sec = now_ns > l->t0_ns ? (uint32_t)((now_ns - l->t0_ns) / NS) : 0;
    if (sec != l->sec && sec > l->sec)
        lane_roll(l, sec);
    l->count += records;
}

static inline void lane_latency(struct lane *l, uint64_t now_ns, uint64_t since_ns)
{
    lane_add(l, now_ns, 1);
    bhist_record(&l->cur, now_ns > since_ns ? (now_ns - since_ns) / 1000 : 0);
}

/* --- the monitor: CPU, rolls, retention and progress once a second -------------------------- */

struct mon_sec {
    double broker_cpu, client_cpu;
    uint32_t rolls, retention;
};

struct monitor {
    const struct brun_env *env;
    const char *label;
    const char *topic;
    uint64_t segment_bytes;
    uint64_t t0_ns;
    uint32_t cap;
    struct mon_sec *secs;
    struct lane *ack, *e2e; /* for progress lines; either may be NULL */
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    struct bbroker_topic *prev, *cur; /* metrics of the topic, last second and now */
    bool have_prev;                   /* prev holds a sample (deltas need two) */
    double prev_broker, prev_client;
};

/* Counts segments started (bytes appended crossing segment.bytes) and partitions whose log
 * start moved between two samples of the topic's metrics. */
static void mon_topic_delta(struct monitor *m, struct mon_sec *s)
{
    uint32_t n = m->cur->partitions > m->prev->partitions ? m->cur->partitions
                                                          : m->prev->partitions;
    for (uint32_t p = 0; p < n; p++) {
        if (m->segment_bytes)
            s->rolls += (uint32_t)(m->cur->part_bytes_in[p] / m->segment_bytes -
                                   m->prev->part_bytes_in[p] / m->segment_bytes);
        s->retention += m->cur->part_log_start[p] > m->prev->part_log_start[p];
    }
}

/* Samples the broker's topic metrics into m->cur; false when they could not be read. */
static bool mon_scrape(struct monitor *m)
{
    char *text = NULL;
    if (!m->topic || bbroker_metrics(m->env->broker, &text) != 0)
        return false;
    bbroker_topic_parse(text, m->topic, m->cur);
    free(text);
    return true;
}

static void mon_progress(struct monitor *m, uint32_t sec)
{
    double mb = (double)m->env->record_size / 1e6;
    char line[256];
    int n = snprintf(line, sizeof(line), "  [%s] %u s:", m->label, sec + 1);
    struct lane *lanes[2] = {m->ack, m->e2e};
    const char *names[2] = {"produce", "consume"}, *lat[2] = {"ack", "end-to-end"};
    for (int i = 0; i < 2; i++) {
        struct lane *l = lanes[i];
        unsigned pub = l ? atomic_load_explicit(&l->published, memory_order_acquire) : 0;
        if (!pub)
            continue;
        const struct lane_sec *s = &l->secs[pub - 1];
        n += snprintf(line + n, sizeof(line) - (size_t)n, " %s %.0f MB/s", names[i],
                      (double)s->count * mb);
        if (!isnan(s->ms[1]) && n < (int)sizeof(line))
            n += snprintf(line + n, sizeof(line) - (size_t)n, " (%s p99 %.2f ms)", lat[i],
                          s->ms[1]);
        if (n >= (int)sizeof(line))
            break;
    }
    printf("%s\n", line);
    fflush(stdout);
}

static void mon_sample(struct monitor *m, uint32_t sec)
{
    double b = bbroker_cpu_s(m->env->broker), c = cpu_self_s();
    struct mon_sec *s = &m->secs[sec < m->cap ? sec : m->cap - 1];
    s->broker_cpu = b >= 0 && m->prev_broker >= 0 ? b - m->prev_broker : NAN;
    s->client_cpu = c - m->prev_client;
    m->prev_broker = b;
    m->prev_client = c;
    if (mon_scrape(m)) {
        if (m->have_prev)
            mon_topic_delta(m, s);
        m->have_prev = true;
        struct bbroker_topic *t = m->prev;
        m->prev = m->cur;
        m->cur = t;
    }
    if (m->env->progress_s > 0 && (sec + 1) % (uint32_t)m->env->progress_s == 0)
        mon_progress(m, sec);
}

static void *mon_main(void *arg)
{
    struct monitor *m = arg;
    pthread_mutex_lock(&m->mu);
    for (uint32_t sec = 0; !m->stop; sec++) {
        uint64_t at = m->t0_ns + (uint64_t)(sec + 1) * NS;
        struct timespec ts = {(time_t)(at / NS), (long)(at % NS)};
        while (!m->stop && pthread_cond_timedwait(&m->cv, &m->mu, &ts) != ETIMEDOUT)
            ;
        if (m->stop)
            break;
        pthread_mutex_unlock(&m->mu);
        mon_sample(m, sec);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static struct monitor *mon_start(const struct brun_env *env, const char *label,
                                 const char *topic, uint64_t segment_bytes, uint64_t t0_ns,
                                 uint32_t cap, struct lane *ack, struct lane *e2e)
{
    struct monitor *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    *m = (struct monitor){.env = env, .label = label, .topic = topic,
                          .segment_bytes = segment_bytes, .t0_ns = t0_ns, .cap = cap,
                          .ack = ack, .e2e = e2e};
    m->secs = calloc(cap, sizeof(*m->secs));
    m->prev = calloc(1, sizeof(*m->prev));
    m->cur = calloc(1, sizeof(*m->cur));
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&m->mu, NULL);
    for (uint32_t i = 0; m->secs && i < cap; i++)
        m->secs[i].broker_cpu = m->secs[i].client_cpu = NAN;
    m->prev_broker = bbroker_cpu_s(env->broker);
    m->prev_client = cpu_self_s();
    if (m->secs && m->prev && m->cur && mon_scrape(m)) {
        struct bbroker_topic *t = m->prev; /* the first sample is the baseline */
        m->prev = m->cur;
        m->cur = t;
        m->have_prev = true;
    }
    if (!m->secs || !m->prev || !m->cur || pthread_create(&m->tid, NULL, mon_main, m)) {
        free(m->secs);
        free(m->prev);
        free(m->cur);
        free(m);
        return NULL;
    }
    return m;
}

/* Stops the monitor thread; the samples stay readable until mon_free. */
static void mon_stop(struct monitor *m)
{
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->tid, NULL);
}

static void mon_free(struct monitor *m)
{
    if (!m)
        return;
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m->secs);
    free(m->prev);
    free(m->cur);
    free(m);
}

/* --- topic offsets ------------------------------------------------------------------------- */

struct offsets {
    int32_t n;
    int64_t start[BBROKER_MAX_PARTITIONS], end[BBROKER_MAX_PARTITIONS];
};

/* Asks the broker for every partition's log start and end. Returns 0 or -1 with err set. */
static int topic_offsets(const struct brun_env *env, const char *topic, struct offsets *o,
                         char *err, size_t errlen)
{
    struct rl_admin *a = rl_admin_new(env->conf, err, errlen);
    if (!a)
        return -1;
    const struct rl_topic_info *ti;
    int rc = rl_admin_describe_topic(a, topic, &ti);
    o->n = rc ? 0 : ti->partition_count;
    if (o->n > BBROKER_MAX_PARTITIONS)
        o->n = BBROKER_MAX_PARTITIONS;
    for (int32_t p = 0; rc == 0 && p < o->n; p++) {
        rc = rl_admin_list_offsets(a, topic, p, RL_OFFSET_EARLIEST, &o->start[p]);
        if (rc == 0)
            rc = rl_admin_list_offsets(a, topic, p, RL_OFFSET_LATEST, &o->end[p]);
    }
    if (rc)
        snprintf(err, errlen, "offsets of topic %s: %s", topic, rl_admin_last_error(a));
    rl_admin_destroy(a);
    return rc ? -1 : 0;
}

/* The broker's produce latency histogram now (n 0 when /metrics does not answer). */
static void broker_produce_hist(const struct brun_env *env, struct bhist_prom *h)
{
    char *text;
    h->n = 0;
    if (bbroker_metrics(env->broker, &text) != 0)
        return;
    bhist_prom_parse(text, "produce", h);
    free(text);
}

/* Bytes the broker has appended to topic since it started (0 when its metrics cannot be read). */
static uint64_t topic_bytes_in(const struct brun_env *env, const char *topic)
{
    char *text;
    if (bbroker_metrics(env->broker, &text) != 0)
        return 0;
    struct bbroker_topic *t = malloc(sizeof(*t));
    uint64_t v = 0;
    if (t) {
        bbroker_topic_parse(text, topic, t);
        v = t->bytes_in;
    }
    free(t);
    free(text);
    return v;
}

/* --- consuming ------------------------------------------------------------------------------- */

#define CONSUME_CLOCK_EVERY 32 /* records between clock reads when no latency is measured */

struct consume_state {
    const struct brun_env *env;
    struct rl_consumer *k;
    struct lane *lane;
    bool latency;            /* records carry send stamps to measure end-to-end latency */
    uint64_t phase_start_ns;
    _Atomic uint64_t expect;      /* stop after this many records (UINT64_MAX: not known yet) */
    _Atomic uint64_t deadline_ns; /* give up waiting for more at this time */
    uint64_t consumed, bytes, bad;
    uint64_t last_ns;
    int error;
    char msg[256];
    pthread_t tid;
};

/* Takes one record: its end-to-end latency, or just its count. */
static void consume_one(struct consume_state *s, const struct rl_record *r, uint64_t *now,
                        unsigned *unclocked)
{
    s->consumed++;
    s->bytes += (uint64_t)(r->value_len > 0 ? r->value_len : 0) +
                (uint64_t)(r->key_len > 0 ? r->key_len : 0);
    if (!s->latency) {
        /* Throughput only: read the clock every few records, not for each. */
        if (++*unclocked == CONSUME_CLOCK_EVERY) {
            *now = brun_now_ns();
            lane_add(s->lane, *now, *unclocked);
            *unclocked = 0;
        }
        return;
    }
    *now = brun_now_ns();
    uint64_t stamp;
    if (payload_stamp(s->env->kind, r->value, r->value_len > 0 ? (size_t)r->value_len : 0,
                      &stamp) || stamp < s->phase_start_ns || stamp > *now) {
        s->bad++; /* not a record of this phase, or a damaged stamp: counted, then an error */
        lane_add(s->lane, *now, 1);
        return;
    }
    lane_latency(s->lane, *now, stamp);
}

static void *consume_main(void *arg)
{
    struct consume_state *s = arg;
    uint64_t now = brun_now_ns(), last_record = now;
    unsigned unclocked = 0;
    while (!*s->env->interrupted && s->consumed < atomic_load(&s->expect)) {
        struct rl_record r;
        int rc = rl_consumer_poll(s->k, 100, &r);
        if (rc < 0) {
            s->error = rc;
            snprintf(s->msg, sizeof(s->msg), "%s", rl_consumer_last_error(s->k));
            break;
        }
        if (rc == 1) {
            consume_one(s, &r, &now, &unclocked);
            last_record = now;
            continue;
        }
        now = brun_now_ns();
        if (now > atomic_load(&s->deadline_ns) ||
            (!s->latency && now - last_record > BRUN_IDLE_S * NS))
            break;
    }
    now = brun_now_ns();
    if (unclocked)
        lane_add(s->lane, now, unclocked);
    s->last_ns = s->consumed ? now : 0;
    return NULL;
}

static struct rl_consumer *consumer_at(const struct brun_env *env, const char *topic,
                                       const struct offsets *o, bool from_end, char *err,
                                       size_t errlen)
{
    struct rl_consumer *k = rl_consumer_new(env->conf, err, errlen);
    for (int32_t p = 0; k && p < o->n; p++) {
        if (rl_consumer_assign(k, topic, p, from_end ? o->end[p] : o->start[p])) {
            snprintf(err, errlen, "%s", rl_consumer_last_error(k));
            rl_consumer_destroy(k);
            return NULL;
        }
    }
    return k;
}

/* --- producing ------------------------------------------------------------------------------- */

/* Written by the producer's I/O thread (the delivery callback) until the producer is
 * destroyed, which joins that thread; read by the calling thread afterwards. */
struct ack_state {
    struct lane *lane;
    uint64_t acked, failed, last_ns;
    char first_error[256];
};

static void on_delivery(void *ctx, const struct rl_delivery *d)
{
    struct ack_state *s = ctx;
    if (d->error) {
        if (!s->failed++)
            snprintf(s->first_error, sizeof(s->first_error), "%s",
                     d->error_message[0] ? d->error_message : rl_strerror(d->error));
        return;
    }
    if (d->opaque == WARMUP_OPAQUE)
        return;
    uint64_t now = brun_now_ns();
    lane_latency(s->lane, now, (uint64_t)(uintptr_t)d->opaque);
    s->acked++;
    s->last_ns = now;
}

/* Writes n in decimal into buf (at least 20 bytes), returning the length: the record key, made
 * per record, where snprintf's format parsing would cost more than the key is worth. */
static size_t fmt_u64(char *buf, uint64_t n)
{
    char tmp[20];
    size_t len = 0;
    do {
        tmp[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    for (size_t i = 0; i < len; i++)
        buf[i] = tmp[len - 1 - i];
    return len;
}

struct sender {
    const struct brun_env *env;
    const struct brun_produce *spec;
    struct rl_producer *p;
    uint64_t start_ns, end_ns;
    uint64_t sent;
    uint64_t max_lag_ns;
};

static int send_one(struct sender *s, uint64_t intended_ns)
{
    char key[24];
    size_t klen = s->env->keys ? fmt_u64(key, s->sent) : 0;
    const uint8_t *v = payload_next(s->spec->payload, intended_ns);
    int rc = rl_producer_send(s->p, s->spec->topic, RL_PARTITION_ANY, s->env->keys ? key : NULL,
                              klen, v, s->env->record_size, 0, (void *)(uintptr_t)intended_ns);
    s->sent += rc == 0;
    return rc;
}

/* Closed loop: records are stamped with the moment they are handed to the producer, read from
 * the clock once every CLOSED_CLOCK_EVERY records (a clock read costs ~90 ns on this virtual
 * machine; a shared stamp is at most a few microseconds early, which only adds latency). */
#define CLOSED_CLOCK_EVERY 16

static int send_closed(struct sender *s)
{
    uint64_t limit = s->spec->max_records ? s->spec->max_records : UINT64_MAX, now = 0;
    while (s->sent < limit) {
        if (s->sent % CLOSED_CLOCK_EVERY == 0) {
            now = brun_now_ns();
            if (now >= s->end_ns || *s->env->interrupted)
                break;
        }
        int rc = send_one(s, now);
        if (rc)
            return rc;
    }
    return 0;
}

/* Open loop: record i is due at start + i / rate, and is stamped with that due time whenever
 * it is actually sent (no coordinated omission: the sender's own lateness counts as latency).
 * The sender wakes at most once per OPEN_QUANTUM_NS and then sends every record that is due:
 * waking for each record (about 1 us apart at the maximum rate) cost a whole core in timer
 * wake-ups and clock reads on this 2-core machine, starving the broker it measures. A record
 * waits at most one quantum for its wake-up, which its latency includes. When the sender falls
 * behind (the producer blocked it) it sends the overdue records at once, each still stamped
 * with its own due time. */
#define OPEN_QUANTUM_NS 50000
#define OPEN_CLOCK_EVERY 64 /* records sent between clock reads within one burst */

static int send_open(struct sender *s)
{
    double interval_ns = 1e9 / s->spec->rate_rps;
    uint64_t limit = s->spec->max_records ? s->spec->max_records : UINT64_MAX;
    /* A 1 us timer slack keeps the wake-ups on schedule (the default is 50 us). */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    uint64_t now = brun_now_ns();
    unsigned unclocked = 0;
    while (s->sent < limit && !*s->env->interrupted) {
        uint64_t due = s->start_ns + (uint64_t)((double)s->sent * interval_ns);
        if (due >= s->end_ns)
            break;
        if (due > now || ++unclocked == OPEN_CLOCK_EVERY) {
            now = brun_now_ns();
            unclocked = 0;
        }
        if (due > now) {
            uint64_t wake = due - now < OPEN_QUANTUM_NS ? now + OPEN_QUANTUM_NS : due;
            struct timespec ts = {(time_t)(wake / NS), (long)(wake % NS)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            now = brun_now_ns();
            continue;
        }
        if (now - due > s->max_lag_ns)
            s->max_lag_ns = now - due;
        int rc = send_one(s, due);
        if (rc)
            return rc;
    }
    prctl(PR_SET_TIMERSLACK, 0UL, 0, 0, 0);
    return 0;
}

/* --- phases ---------------------------------------------------------------------------------- */

/* What a phase measures with, from start to the series it leaves. */
struct phase {
    const struct brun_env *env;
    struct brun_result *out;
    uint64_t t0_ns;
    uint32_t cap;
    struct lane *ack, *e2e;
    struct monitor *mon;
    double cpu0, broker_cpu0;
};

static int phase_init(struct phase *ph, const struct brun_env *env, struct brun_result *out,
                      const char *label, const char *topic, double seconds)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->label, sizeof(out->label), "%s", label);
    snprintf(out->topic, sizeof(out->topic), "%s", topic);
    *ph = (struct phase){.env = env, .out = out,
                         .cap = (uint32_t)seconds + BRUN_DRAIN_S + BRUN_IDLE_S + SLACK_SECS};
    ph->ack = lane_new(0, ph->cap);
    ph->e2e = lane_new(0, ph->cap);
    out->ack = calloc(1, sizeof(*out->ack));
    out->e2e = calloc(1, sizeof(*out->e2e));
    if (!ph->ack || !ph->e2e || !out->ack || !out->e2e) {
        snprintf(out->error, sizeof(out->error), "out of memory");
        return -1;
    }
    return 0;
}

/* Starts the clock and the monitor; lanes count seconds from now on. */
static void phase_start(struct phase *ph, const char *topic, uint64_t segment_bytes)
{
    ph->cpu0 = cpu_self_s();
    ph->broker_cpu0 = bbroker_cpu_s(ph->env->broker);
    ph->t0_ns = brun_now_ns();
    ph->ack->t0_ns = ph->e2e->t0_ns = ph->t0_ns;
    ph->mon = mon_start(ph->env, ph->out->label, topic, segment_bytes, ph->t0_ns, ph->cap,
                        ph->ack, ph->e2e);
}

/* Fills the per-second series from the lanes and the monitor, for seconds up to last_ns. */
static void phase_series(struct phase *ph, uint64_t last_ns)
{
    struct brun_result *out = ph->out;
    double span = last_ns > ph->t0_ns ? (double)(last_ns - ph->t0_ns) / 1e9 : 0;
    uint32_t n = (uint32_t)floor(span) + 1; /* the second last_ns falls in is the last */
    lane_roll(ph->ack, n);
    lane_roll(ph->e2e, n);
    bhist_merge(out->ack, &ph->ack->total);
    bhist_merge(out->e2e, &ph->e2e->total);
    if (n > ph->cap)
        n = ph->cap;
    out->series = calloc(n ? n : 1, sizeof(*out->series));
    if (!out->series)
        return;
    out->nsecs = n;
    double base = (double)(ph->t0_ns - ph->env->t0_ns) / 1e9;
    for (uint32_t i = 0; i < n; i++) {
        struct brun_sec *s = &out->series[i];
        s->t_s = base + i;
        s->dur_s = i + 1 < n ? 1.0 : span - i;
        s->acked = ph->ack->secs[i].count;
        s->consumed = ph->e2e->secs[i].count;
        memcpy(s->ack_ms, ph->ack->secs[i].ms, sizeof(s->ack_ms));
        memcpy(s->e2e_ms, ph->e2e->secs[i].ms, sizeof(s->e2e_ms));
        s->broker_cpu = s->client_cpu = NAN;
        if (ph->mon) {
            s->broker_cpu = ph->mon->secs[i].broker_cpu;
            s->client_cpu = ph->mon->secs[i].client_cpu;
            s->rolls = ph->mon->secs[i].rolls;
            s->retention = ph->mon->secs[i].retention;
        }
    }
}

static void phase_end(struct phase *ph, uint64_t last_ns)
{
    if (ph->mon)
        mon_stop(ph->mon);
    ph->out->client_cpu_s = cpu_self_s() - ph->cpu0;
    double b = bbroker_cpu_s(ph->env->broker);
    ph->out->broker_cpu_s = b >= 0 && ph->broker_cpu0 >= 0 ? b - ph->broker_cpu0 : NAN;
    if (ph->t0_ns && ph->ack && ph->e2e && ph->out->ack && ph->out->e2e)
        phase_series(ph, last_ns); /* only a phase that started has seconds to show */
    mon_free(ph->mon);
    lane_free(ph->ack);
    lane_free(ph->e2e);
    ph->mon = NULL;
    ph->ack = ph->e2e = NULL;
}

/* A producer warmed up before the clock starts, so no measured record pays for a start-up
 * cost: its first record fetches the topic's metadata, then one record to every partition
 * (explicit partitions until the producer refuses one past the last) opens the connection to
 * every leader and settles every partition's first idempotent batch. Measured: without the
 * per-partition records, a replicated half-load phase's first second had a p99 of 36 ms
 * against 4-7 ms for the others. */
static struct rl_producer *producer_warm(const struct brun_env *env,
                                         const struct brun_produce *spec, struct ack_state *st,
                                         char *err, size_t errlen)
{
    struct rl_conf *conf = rl_conf_dup(env->conf);
    if (!conf) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rl_conf_set_delivery_cb(conf, on_delivery, st);
    struct rl_producer *p = rl_producer_new(conf, err, errlen);
    rl_conf_destroy(conf);
    if (!p)
        return NULL;
    const uint8_t *v = payload_next(spec->payload, brun_now_ns());
    int rc = rl_producer_send(p, spec->topic, RL_PARTITION_ANY, NULL, 0, v, env->record_size, 0,
                              WARMUP_OPAQUE);
    if (rc == 0)
        rc = rl_producer_flush(p, FLUSH_TIMEOUT_MS);
    for (int32_t k = 0; rc == 0 && !st->failed && k < WARMUP_MAX_PARTITIONS; k++) {
        rc = rl_producer_send(p, spec->topic, k, NULL, 0, v, env->record_size, 0,
                              WARMUP_OPAQUE);
        if (rc == RL_E_UNKNOWN_PARTITION) {
            rc = 0;
            break;
        }
    }
    if (rc == 0)
        rc = rl_producer_flush(p, FLUSH_TIMEOUT_MS);
    if (rc || st->failed) {
        snprintf(err, errlen, "warm-up records to %s: %s", spec->topic,
                 st->failed ? st->first_error : rl_producer_last_error(p));
        rl_producer_destroy(p, 0);
        return NULL;
    }
    return p;
}

/* Starts the consumer thread reading alongside from the topic's current end. */
static int alongside_start(const struct brun_env *env, const char *topic,
                           struct consume_state *cs, struct lane *lane, char *err,
                           size_t errlen)
{
    struct offsets *o = malloc(sizeof(*o));
    int rc = o ? topic_offsets(env, topic, o, err, errlen) : -1;
    if (rc == 0) {
        cs->k = consumer_at(env, topic, o, true, err, errlen);
        rc = cs->k ? 0 : -1;
    }
    free(o);
    if (rc)
        return -1;
    struct rl_record r;
    /* Connects now, so the first measured record does not pay for the connection. */
    if (rl_consumer_poll(cs->k, 20, &r) < 0) {
        snprintf(err, errlen, "%s", rl_consumer_last_error(cs->k));
        return -1;
    }
    cs->env = env;
    cs->lane = lane;
    cs->latency = true;
    atomic_store(&cs->expect, UINT64_MAX);
    atomic_store(&cs->deadline_ns, UINT64_MAX);
    return 0;
}

/* After the producer is done: the consumer stops once it has every acknowledged record or
 * BRUN_DRAIN_S later. */
static void alongside_finish(struct consume_state *cs, uint64_t acked, struct brun_result *out)
{
    atomic_store(&cs->deadline_ns, brun_now_ns() + BRUN_DRAIN_S * NS);
    atomic_store(&cs->expect, acked);
    pthread_join(cs->tid, NULL);
    out->consumed = cs->consumed;
    out->bad_stamps = cs->bad;
    if (cs->error)
        snprintf(out->error, sizeof(out->error), "consumer: %s", cs->msg);
    else if (cs->bad)
        snprintf(out->error, sizeof(out->error), "consumer: %llu records without a valid send "
                 "stamp of this phase", (unsigned long long)cs->bad);
    else if (cs->consumed != acked && !out->error[0])
        snprintf(out->error, sizeof(out->error), "consumer read %llu of %llu acknowledged "
                 "records within %d s", (unsigned long long)cs->consumed,
                 (unsigned long long)acked, BRUN_DRAIN_S);
}

/* Fills the produce figures once the producer is gone. */
static void produce_figures(const struct brun_env *env, const struct brun_produce *spec,
                            struct phase *ph, const struct sender *s,
                            const struct ack_state *st, const struct consume_state *cs)
{
    struct brun_result *out = ph->out;
    out->open_loop = spec->rate_rps > 0;
    out->target_mbps = spec->rate_rps * (double)env->record_size / 1e6;
    out->sent = s->sent;
    out->acked = st->acked;
    out->failed = st->failed;
    out->bytes = st->acked * env->record_size;
    out->max_lag_ms = (double)s->max_lag_ns / 1e6;
    uint64_t last = st->last_ns > ph->t0_ns ? st->last_ns : brun_now_ns();
    out->secs = (double)(last - ph->t0_ns) / 1e9;
    out->mbps = out->secs > 0 ? (double)out->bytes / 1e6 / out->secs : 0;
    if (cs && cs->last_ns > ph->t0_ns) {
        out->consume_mbps = (double)cs->bytes / 1e6 / ((double)(cs->last_ns - ph->t0_ns) / 1e9);
        if (cs->last_ns > last)
            last = cs->last_ns;
    }
    phase_end(ph, last);
}

int brun_produce(const struct brun_env *env, const char *label, const struct brun_produce *spec,
                 struct brun_result *out)
{
    struct phase ph;
    struct ack_state st = {0};
    struct consume_state cs = {0};
    struct sender s = {.env = env, .spec = spec};
    bool consuming = false;
    if (phase_init(&ph, env, out, label, spec->topic, spec->seconds))
        goto fail;
    st.lane = ph.ack;
    s.p = producer_warm(env, spec, &st, out->error, sizeof(out->error));
    if (!s.p)
        goto fail;
    if (spec->consume &&
        alongside_start(env, spec->topic, &cs, ph.e2e, out->error, sizeof(out->error)))
        goto fail;
    uint64_t stored0 = topic_bytes_in(env, spec->topic);
    struct bhist_prom hist0, hist1;
    broker_produce_hist(env, &hist0);
    phase_start(&ph, spec->topic, spec->segment_bytes);
    cs.phase_start_ns = s.start_ns = ph.t0_ns;
    s.end_ns = s.start_ns + (uint64_t)(spec->seconds * 1e9);
    if (spec->consume && pthread_create(&cs.tid, NULL, consume_main, &cs) == 0)
        consuming = true;
    int rc = spec->rate_rps > 0 ? send_open(&s) : send_closed(&s);
    if (rc)
        snprintf(out->error, sizeof(out->error), "send: %s", rl_producer_last_error(s.p));
    /* Interrupted: a short flush, so Ctrl-C does not wait for a saturated broker's backlog. */
    int frc = rl_producer_flush(s.p, *env->interrupted ? 5000 : FLUSH_TIMEOUT_MS);
    rl_producer_destroy(s.p, 0); /* joins the I/O thread: st is ours from here on */
    s.p = NULL;
    if (frc && !out->error[0])
        snprintf(out->error, sizeof(out->error), "flush: not every record was answered in %d s",
                 FLUSH_TIMEOUT_MS / 1000);
    if (st.failed && !out->error[0])
        snprintf(out->error, sizeof(out->error), "%llu records failed: %s",
                 (unsigned long long)st.failed, st.first_error);
    if (consuming)
        alongside_finish(&cs, st.acked, out);
    out->stored_bytes = topic_bytes_in(env, spec->topic) - stored0;
    broker_produce_hist(env, &hist1);
    out->broker_p50_ms = bhist_prom_percentile_ms(&hist0, &hist1, 50);
    out->broker_p99_ms = bhist_prom_percentile_ms(&hist0, &hist1, 99);
    produce_figures(env, spec, &ph, &s, &st, consuming ? &cs : NULL);
    if (cs.k)
        rl_consumer_destroy(cs.k);
    if (spec->consume && !consuming && !out->error[0])
        snprintf(out->error, sizeof(out->error), "cannot start the consumer thread");
    return out->error[0] || *env->interrupted ? -1 : 0;
fail:
    if (s.p)
        rl_producer_destroy(s.p, 0);
    if (cs.k)
        rl_consumer_destroy(cs.k);
    phase_end(&ph, brun_now_ns());
    return -1;
}

int brun_consume(const struct brun_env *env, const char *label, const char *topic,
                 uint64_t records, struct brun_result *out)
{
    struct phase ph;
    struct consume_state cs = {.env = env};
    struct offsets *o = malloc(sizeof(*o));
    if (phase_init(&ph, env, out, label, topic, 3600) || !o ||
        topic_offsets(env, topic, o, out->error, sizeof(out->error)))
        goto fail;
    uint64_t total = 0;
    for (int32_t p = 0; p < o->n; p++)
        total += (uint64_t)(o->end[p] - o->start[p]);
    cs.k = consumer_at(env, topic, o, false, out->error, sizeof(out->error));
    if (!cs.k)
        goto fail;
    cs.lane = ph.e2e;
    atomic_store(&cs.expect, records ? records : total);
    atomic_store(&cs.deadline_ns, UINT64_MAX);
    phase_start(&ph, NULL, 0);
    consume_main(&cs);
    out->consumed = cs.consumed;
    out->bytes = cs.bytes;
    uint64_t last = cs.last_ns ? cs.last_ns : brun_now_ns();
    out->secs = (double)(last - ph.t0_ns) / 1e9;
    out->mbps = out->consume_mbps = out->secs > 0 ? (double)cs.bytes / 1e6 / out->secs : 0;
    if (cs.error)
        snprintf(out->error, sizeof(out->error), "consumer: %s", cs.msg);
    else if (cs.consumed != atomic_load(&cs.expect) && !*env->interrupted)
        snprintf(out->error, sizeof(out->error), "read %llu of %llu records (nothing came for "
                 "%d s)", (unsigned long long)cs.consumed,
                 (unsigned long long)atomic_load(&cs.expect), BRUN_IDLE_S);
    phase_end(&ph, last);
    rl_consumer_destroy(cs.k);
    free(o);
    return out->error[0] || *env->interrupted ? -1 : 0;
fail:
    if (cs.k)
        rl_consumer_destroy(cs.k);
    free(o);
    phase_end(&ph, brun_now_ns());
    return -1;
}

void brun_result_free(struct brun_result *r)
{
    free(r->ack);
    free(r->e2e);
    free(r->series);
    r->ack = r->e2e = NULL;
    r->series = NULL;
}
