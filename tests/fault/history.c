/*
 * history: see history.h. The checker works on copies: observations (acknowledged offsets and
 * reads) sorted by (partition, offset) for the offset checks and by (partition, value) for the
 * value checks, and one pass over the reads in the order they were recorded for the per-source
 * order checks. Each check is O(n log n) at worst, so a history of a million events checks in
 * well under a second.
 */
#include "tests/fault/history.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VALUE_NONE UINT64_MAX /* a read whose bytes are no value of ours */

struct hwrite {
    int64_t ack_offset;  /* the acknowledged offset, -1 when none */
    int64_t seen_offset; /* where it was first read, -1 when never */
    uint64_t replicas;   /* bit s: replica source s holds it */
    uint32_t partition;
    uint8_t status;      /* enum hist_status */
    uint8_t completed;
};

struct hwriter {
    struct hwrite *w;
    uint32_t n, cap;
    bool idempotent;
};

struct hreadev {
    int64_t offset;
    uint64_t value; /* writer << 32 | seq, or VALUE_NONE */
    uint32_t partition;
    uint32_t term;
    uint16_t source;
    uint16_t session;
};

struct hsource {
    enum hist_source_kind kind;
    int32_t node;
    uint16_t session;
    char name[32];
};

struct hclaim {
    uint32_t partition, term;
    int32_t node;
    const char *how;
};

/* A leader kill as recorded (hist_leader_kill). */
struct hkill {
    uint32_t partition, term;
    int32_t node;
    bool under_load;
    bool stale;  /* a higher term was already claimed for the partition at the kill */
};

struct hist {
    pthread_mutex_t mu;
    struct hkill kills[HIST_MAX_KILLS];
    long n_kills;
    uint64_t last_ack_ms; /* monotonic time of the latest acknowledgement */
    uint32_t partitions;
    struct hwriter writer[HIST_MAX_WRITERS];
    int n_writers;
    struct hsource source[HIST_MAX_SOURCES];
    int n_sources;
    struct hreadev *reads;
    size_t n_reads, cap_reads;
    struct hclaim *claims;
    size_t n_claims, cap_claims;
    long acked;
    long harness_errors; /* completions of writes never invoked, or twice */
    char harness_example[200];
};

/* Grows *arr (elem bytes each) to hold one more; returns 0 or -ENOMEM. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 1024;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct hist *hist_new(uint32_t partitions)
{
    struct hist *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    pthread_mutex_init(&h->mu, NULL);
    h->partitions = partitions;
    return h;
}

void hist_free(struct hist *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->n_writers; i++)
        free(h->writer[i].w);
    free(h->reads);
    free(h->claims);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int hist_writer_add(struct hist *h, bool idempotent)
{
    pthread_mutex_lock(&h->mu);
    int id = h->n_writers < HIST_MAX_WRITERS ? h->n_writers++ : -ENOSPC;
    if (id >= 0)
        h->writer[id].idempotent = idempotent;
    pthread_mutex_unlock(&h->mu);
    return id;
}

int hist_source_add(struct hist *h, enum hist_source_kind kind, int32_t node, const char *name)
{
    pthread_mutex_lock(&h->mu);
    int id = h->n_sources < HIST_MAX_SOURCES ? h->n_sources++ : -ENOSPC;
    if (id >= 0) {
        h->source[id].kind = kind;
        h->source[id].node = node;
        snprintf(h->source[id].name, sizeof(h->source[id].name), "%s", name ? name : "?");
    }
    pthread_mutex_unlock(&h->mu);
    return id;
}

int hist_invoke(struct hist *h, int writer, uint32_t seq, uint32_t partition)
{
    int rc = -EINVAL;
    pthread_mutex_lock(&h->mu);
    if (writer < 0 || writer >= h->n_writers || partition >= h->partitions)
        goto out;
    struct hwriter *wr = &h->writer[writer];
    if (seq != wr->n)
        goto out;
    size_t cap = wr->cap;
    rc = grow((void **)&wr->w, &cap, wr->n, sizeof(*wr->w));
    if (rc)
        goto out;
    wr->cap = (uint32_t)cap;
    wr->w[wr->n++] = (struct hwrite){.ack_offset = -1, .seen_offset = -1, .partition = partition};
out:
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static int add_claim_locked(struct hist *h, uint32_t partition, uint32_t term, int32_t node,
                            const char *how)
{
    if (grow((void **)&h->claims, &h->cap_claims, h->n_claims, sizeof(*h->claims)))
        return -ENOMEM;
    h->claims[h->n_claims++] = (struct hclaim){partition, term, node, how};
    return 0;
}

int hist_complete(struct hist *h, int writer, uint32_t seq, enum hist_status st,
                  int64_t offset, int32_t node, uint32_t term)
{
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    struct hwrite *w = NULL;
    if (writer >= 0 && writer < h->n_writers && seq < h->writer[writer].n)
        w = &h->writer[writer].w[seq];
    if (!w || w->completed) {
        if (h->harness_errors++ == 0)
            snprintf(h->harness_example, sizeof(h->harness_example),
                     "harness: w%d-%u completed %s", writer, seq,
                     w ? "twice" : "without an invoke");
        rc = -EINVAL;
        goto out;
    }
    w->completed = 1;
    w->status = (uint8_t)st;
    if (st == HIST_OK) {
        w->ack_offset = offset;
        h->acked++;
        h->last_ack_ms = mono_ms();
        if (node >= 0 && term > 0)
            rc = add_claim_locked(h, w->partition, term, node, "acknowledgement");
    }
out:
    pthread_mutex_unlock(&h->mu);
    return rc;
}

int hist_value_format(int writer, uint32_t seq, char *buf, size_t cap)
{
    return snprintf(buf, cap, "w%d-%u", writer, seq);
}

int hist_value_parse(const void *bytes, size_t len, int *writer, uint32_t *seq)
{
    const char *s = bytes;
    if (!s || len < 4 || len > 23 || s[0] != 'w')
        return -EINVAL;
    uint64_t a = 0, b = 0;
    size_t i = 1, digits = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
        a = a * 10 + (uint64_t)(s[i] - '0');
    if (!digits || i >= len || s[i] != '-' || a >= HIST_MAX_WRITERS)
        return -EINVAL;
    for (i++, digits = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
        b = b * 10 + (uint64_t)(s[i] - '0');
    if (!digits || i != len || b > UINT32_MAX)
        return -EINVAL;
    *writer = (int)a;
    *seq = (uint32_t)b;
    return 0;
}

int hist_read(struct hist *h, int source, uint32_t partition, int64_t offset,
              const void *value, size_t value_len, uint32_t term)
{
    int writer;
    uint32_t seq;
    uint64_t v = VALUE_NONE;
    if (value && hist_value_parse(value, value_len, &writer, &seq) == 0)
        v = (uint64_t)writer << 32 | seq;
    int rc = -EINVAL;
    pthread_mutex_lock(&h->mu);
    if (source < 0 || source >= h->n_sources)
        goto out;
    rc = grow((void **)&h->reads, &h->cap_reads, h->n_reads, sizeof(*h->reads));
    if (rc)
        goto out;
    h->reads[h->n_reads++] = (struct hreadev){
        .offset = offset, .value = v, .partition = partition, .term = term,
        .source = (uint16_t)source, .session = h->source[source].session};
out:
    pthread_mutex_unlock(&h->mu);
    return rc;
}

void hist_source_reset(struct hist *h, int source)
{
    pthread_mutex_lock(&h->mu);
    if (source >= 0 && source < h->n_sources)
        h->source[source].session++;
    pthread_mutex_unlock(&h->mu);
}

int hist_leader(struct hist *h, uint32_t partition, uint32_t term, int32_t node, const char *how)
{
    pthread_mutex_lock(&h->mu);
    int rc = add_claim_locked(h, partition, term, node, how);
    pthread_mutex_unlock(&h->mu);
    return rc;
}

int hist_leader_kill(struct hist *h, int32_t node, uint32_t partition, uint32_t term)
{
    pthread_mutex_lock(&h->mu);
    int rc = -ENOMEM;
    if (h->n_kills < HIST_MAX_KILLS && partition < h->partitions) {
        struct hkill *k = &h->kills[h->n_kills++];
        *k = (struct hkill){.partition = partition, .term = term, .node = node};
        k->under_load = h->last_ack_ms && mono_ms() - h->last_ack_ms <= HIST_LOAD_WINDOW_MS;
        for (size_t i = 0; i < h->n_claims; i++)
            k->stale |= h->claims[i].partition == partition && h->claims[i].term > term;
        rc = add_claim_locked(h, partition, term, node, "metadata before a kill");
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

/* Leader kills under load after which the partition had an election: a claim of a higher
 * term (by any node: the restarted victim may win it, which is still a failover). */
static void count_leader_kills(struct hist *h, struct hist_report *rep)
{
    rep->leader_kills = h->n_kills;
    for (long i = 0; i < h->n_kills; i++) {
        const struct hkill *k = &h->kills[i];
        bool elected = false;
        for (size_t c = 0; c < h->n_claims && !elected; c++)
            elected = h->claims[c].partition == k->partition && h->claims[c].term > k->term;
        rep->leader_kills_under_load += k->under_load && !k->stale && elected;
    }
}

long hist_acked(struct hist *h)
{
    pthread_mutex_lock(&h->mu);
    long n = h->acked;
    pthread_mutex_unlock(&h->mu);
    return n;
}

long hist_reads(struct hist *h)
{
    pthread_mutex_lock(&h->mu);
    long n = (long)h->n_reads;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* --- the checker ------------------------------------------------------------------------------ */

static const char *const anomaly_names[HIST_ANOMALY_KINDS] = {
    [HIST_LOST] = "lost",
    [HIST_UNSEEN] = "unseen",
    [HIST_DUPLICATE] = "duplicate",
    [HIST_INCONSISTENT_OFFSET] = "inconsistent-offset",
    [HIST_G1A] = "G1a (failed write read)",
    [HIST_UNKNOWN_VALUE] = "unknown-value",
    [HIST_REORDER] = "reorder (idempotent sequence)",
    [HIST_NONMONOTONIC] = "nonmonotonic-read",
    [HIST_SKIP] = "poll-skip",
    [HIST_REPLICA_GAP] = "replica-gap",
    [HIST_TERM_REGRESSION] = "term-regression",
    [HIST_TWO_LEADERS] = "two-leaders-one-term",
    [HIST_VACUOUS] = "vacuous",
};

const char *hist_anomaly_name(enum hist_anomaly a)
{
    return a < HIST_ANOMALY_KINDS ? anomaly_names[a] : "?";
}

static void found(struct hist_report *rep, enum hist_anomaly kind, const char *fmt, ...)
{
    long i = rep->count[kind]++;
    rep->total++;
    if (i >= HIST_MAX_EXAMPLES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->example[kind][i], sizeof(rep->example[kind][i]), fmt, ap);
    va_end(ap);
}

/* An observation: an acknowledged offset (src -1) or a read (src = index into reads). */
struct obs {
    uint32_t partition;
    int64_t offset;
    uint64_t value;
    long src;
};

static int cmp_by_offset(const void *pa, const void *pb)
{
    const struct obs *a = pa, *b = pb;
    if (a->partition != b->partition)
        return a->partition < b->partition ? -1 : 1;
    if (a->offset != b->offset)
        return a->offset < b->offset ? -1 : 1;
    return a->value < b->value ? -1 : a->value > b->value;
}

static int cmp_by_value(const void *pa, const void *pb)
{
    const struct obs *a = pa, *b = pb;
    if (a->partition != b->partition)
        return a->partition < b->partition ? -1 : 1;
    if (a->value != b->value)
        return a->value < b->value ? -1 : 1;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

static const char *obs_source(const struct hist *h, const struct obs *o, char *buf, size_t cap)
{
    if (o->src < 0)
        return "ack";
    snprintf(buf, cap, "%s", h->source[h->reads[o->src].source].name);
    return buf;
}

/* The write a value names, or NULL when it names none of ours (or of another partition). */
static struct hwrite *write_of(struct hist *h, uint64_t v, uint32_t partition)
{
    if (v == VALUE_NONE)
        return NULL;
    uint32_t writer = (uint32_t)(v >> 32), seq = (uint32_t)v;
    if (writer >= (uint32_t)h->n_writers || seq >= h->writer[writer].n)
        return NULL;
    struct hwrite *w = &h->writer[writer].w[seq];
    return w->partition == partition ? w : NULL;
}

/* One offset, two values: reads, acks and replicas must all agree on what an offset holds. */
static void check_offsets(struct hist *h, struct obs *o, size_t n, struct hist_report *rep)
{
    qsort(o, n, sizeof(*o), cmp_by_offset);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && o[j].partition == o[i].partition && o[j].offset == o[i].offset)
            j++;
        if (o[j - 1].value != o[i].value) {
            char a[40], b[40];
            found(rep, HIST_INCONSISTENT_OFFSET,
                  "partition %u offset %" PRId64 ": w%u-%u (%s) and w%u-%u (%s)",
                  o[i].partition, o[i].offset, (unsigned)(o[i].value >> 32),
                  (unsigned)o[i].value, obs_source(h, &o[i], a, sizeof(a)),
                  (unsigned)(o[j - 1].value >> 32), (unsigned)o[j - 1].value,
                  obs_source(h, &o[j - 1], b, sizeof(b)));
        }
        i = j;
    }
}

/* One value, two offsets (a duplicate append, or an acknowledgement that named the wrong
 * offset). Sorts o by value. */
static void check_values(struct hist *h, struct obs *o, size_t n, struct hist_report *rep)
{
    qsort(o, n, sizeof(*o), cmp_by_value);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && o[j].partition == o[i].partition && o[j].value == o[i].value)
            j++;
        if (o[j - 1].offset != o[i].offset) {
            char a[40], b[40];
            found(rep, HIST_DUPLICATE,
                  "partition %u: w%u-%u at offset %" PRId64 " (%s) and %" PRId64 " (%s)",
                  o[i].partition, (unsigned)(o[i].value >> 32), (unsigned)o[i].value,
                  o[i].offset, obs_source(h, &o[i], a, sizeof(a)), o[j - 1].offset,
                  obs_source(h, &o[j - 1], b, sizeof(b)));
        }
        i = j;
    }
}

/* Is an offset strictly between lo and hi known (acknowledged or read) in partition p? o is
 * sorted by offset. */
static bool known_between(const struct obs *o, size_t n, uint32_t p, int64_t lo, int64_t hi)
{
    size_t a = 0, b = n;
    while (a < b) { /* first observation > (p, lo) */
        size_t m = a + (b - a) / 2;
        if (o[m].partition < p || (o[m].partition == p && o[m].offset <= lo))
            a = m + 1;
        else
            b = m;
    }
    return a < n && o[a].partition == p && o[a].offset < hi;
}

struct source_pos {
    uint16_t session;
    bool started;
    int64_t offset;
    uint32_t term;
};

/* Per source and partition, in recording order: offsets rise, nothing known is jumped over,
 * terms never fall. o is sorted by offset. */
static int check_source_order(struct hist *h, const struct obs *o, size_t n,
                              struct hist_report *rep)
{
    size_t np = h->partitions;
    struct source_pos *pos = calloc((size_t)h->n_sources * np, sizeof(*pos));
    if (!pos)
        return -ENOMEM;
    for (size_t i = 0; i < h->n_reads; i++) {
        const struct hreadev *r = &h->reads[i];
        if (r->partition >= np)
            continue;
        struct source_pos *s = &pos[(size_t)r->source * np + r->partition];
        const char *name = h->source[r->source].name;
        if (s->started && s->session == r->session) {
            if (r->offset <= s->offset)
                found(rep, HIST_NONMONOTONIC,
                      "%s partition %u: offset %" PRId64 " after %" PRId64, name,
                      r->partition, r->offset, s->offset);
            else if (known_between(o, n, r->partition, s->offset, r->offset))
                found(rep, HIST_SKIP,
                      "%s partition %u: from offset %" PRId64 " to %" PRId64
                      " past a known record", name, r->partition, s->offset, r->offset);
            if (r->term && s->term && r->term < s->term)
                found(rep, HIST_TERM_REGRESSION,
                      "%s partition %u: offset %" PRId64 " has term %u after term %u", name,
                      r->partition, r->offset, r->term, s->term);
        }
        *s = (struct source_pos){r->session, true, r->offset, r->term ? r->term : s->term};
    }
    free(pos);
    return 0;
}

/* Marks reads on their writes, and finds reads of failed or unknown writes. Fills max_read
 * (per partition) and per replica source its highest offset (rmax, sources x partitions). */
static void check_reads(struct hist *h, int64_t *max_read, int64_t *rmax,
                        struct hist_report *rep)
{
    for (size_t i = 0; i < h->n_reads; i++) {
        const struct hreadev *r = &h->reads[i];
        const char *name = h->source[r->source].name;
        struct hwrite *w = r->partition < h->partitions ? write_of(h, r->value, r->partition)
                                                        : NULL;
        if (!w) {
            found(rep, HIST_UNKNOWN_VALUE, "%s partition %u offset %" PRId64 ": %s", name,
                  r->partition, r->offset,
                  r->value == VALUE_NONE ? "bytes that are no value of this test"
                                         : "a value never written to this partition");
            continue;
        }
        if (r->offset > max_read[r->partition])
            max_read[r->partition] = r->offset;
        if (h->source[r->source].kind == HIST_REPLICA) {
            w->replicas |= 1ull << r->source;
            int64_t *m = &rmax[(size_t)r->source * h->partitions + r->partition];
            if (r->offset > *m)
                *m = r->offset;
        }
        if (w->seen_offset < 0)
            w->seen_offset = r->offset;
        if (w->status == HIST_FAIL)
            found(rep, HIST_G1A, "%s partition %u offset %" PRId64 ": w%u-%u, which failed",
                  name, r->partition, r->offset, (unsigned)(r->value >> 32),
                  (unsigned)r->value);
    }
}

/* Acknowledged writes: read somewhere (lost/unseen), held by every replica below its end. */
static void check_acked(struct hist *h, const int64_t *max_read, const int64_t *rmax,
                        struct hist_report *rep)
{
    for (int wi = 0; wi < h->n_writers; wi++) {
        for (uint32_t s = 0; s < h->writer[wi].n; s++) {
            const struct hwrite *w = &h->writer[wi].w[s];
            if (w->status != HIST_OK)
                continue;
            if (w->seen_offset < 0) {
                bool below = w->ack_offset >= 0 && w->ack_offset <= max_read[w->partition];
                found(rep, below ? HIST_LOST : HIST_UNSEEN,
                      "w%d-%u acknowledged at partition %u offset %" PRId64 ", never read%s",
                      wi, s, w->partition, w->ack_offset,
                      below ? " though later offsets were" : "");
            }
            for (int src = 0; src < h->n_sources; src++) {
                if (h->source[src].kind != HIST_REPLICA || (w->replicas >> src & 1))
                    continue;
                int64_t end = rmax[(size_t)src * h->partitions + w->partition];
                int64_t at = w->seen_offset >= 0 ? w->seen_offset : w->ack_offset;
                if (at >= 0 && at < end)
                    found(rep, HIST_REPLICA_GAP,
                          "%s partition %u: lacks w%d-%u (offset %" PRId64
                          ") below its end %" PRId64, h->source[src].name, w->partition, wi,
                          s, at, end);
            }
        }
    }
}

/* An idempotent writer's records of one partition sit at rising offsets in sequence order. */
static int check_sequence_order(struct hist *h, struct hist_report *rep)
{
    int64_t *last = malloc(sizeof(*last) * h->partitions);
    uint32_t *last_seq = malloc(sizeof(*last_seq) * h->partitions);
    int rc = last && last_seq ? 0 : -ENOMEM;
    for (int wi = 0; !rc && wi < h->n_writers; wi++) {
        if (!h->writer[wi].idempotent)
            continue;
        for (uint32_t p = 0; p < h->partitions; p++)
            last[p] = -1;
        for (uint32_t s = 0; s < h->writer[wi].n; s++) {
            const struct hwrite *w = &h->writer[wi].w[s];
            int64_t at = w->seen_offset >= 0 ? w->seen_offset : w->ack_offset;
            if (at < 0)
                continue;
            if (last[w->partition] >= 0 && at <= last[w->partition])
                found(rep, HIST_REORDER,
                      "partition %u: w%d-%u at offset %" PRId64 " but w%d-%u at %" PRId64,
                      w->partition, wi, last_seq[w->partition], last[w->partition], wi, s,
                      at);
            last[w->partition] = at;
            last_seq[w->partition] = s;
        }
    }
    free(last);
    free(last_seq);
    return rc;
}

static int cmp_claim(const void *pa, const void *pb)
{
    const struct hclaim *a = pa, *b = pb;
    if (a->partition != b->partition)
        return a->partition < b->partition ? -1 : 1;
    if (a->term != b->term)
        return a->term < b->term ? -1 : 1;
    return a->node < b->node ? -1 : a->node > b->node;
}

static int check_leaders(struct hist *h, struct hist_report *rep)
{
    struct hclaim *c = malloc(sizeof(*c) * (h->n_claims + 1));
    if (!c)
        return -ENOMEM;
    if (h->n_claims)
        memcpy(c, h->claims, sizeof(*c) * h->n_claims);
    qsort(c, h->n_claims, sizeof(*c), cmp_claim);
    for (size_t i = 0; i < h->n_claims;) {
        size_t j = i + 1;
        while (j < h->n_claims && c[j].partition == c[i].partition && c[j].term == c[i].term)
            j++;
        if (c[j - 1].node != c[i].node)
            found(rep, HIST_TWO_LEADERS, "partition %u term %u: node %d (%s) and node %d (%s)",
                  c[i].partition, c[i].term, c[i].node, c[i].how, c[j - 1].node,
                  c[j - 1].how);
        i = j;
    }
    free(c);
    return 0;
}

/* Builds the observations: every acknowledged offset and every read of a known value. */
static struct obs *collect(struct hist *h, size_t *n_out)
{
    size_t n = 0, cap = (size_t)h->acked + h->n_reads + 1;
    struct obs *o = malloc(sizeof(*o) * cap);
    if (!o)
        return NULL;
    for (int wi = 0; wi < h->n_writers; wi++)
        for (uint32_t s = 0; s < h->writer[wi].n; s++) {
            const struct hwrite *w = &h->writer[wi].w[s];
            if (w->status == HIST_OK && w->ack_offset >= 0 && n < cap)
                o[n++] = (struct obs){w->partition, w->ack_offset,
                                      (uint64_t)wi << 32 | s, -1};
        }
    for (size_t i = 0; i < h->n_reads && n < cap; i++)
        if (h->reads[i].value != VALUE_NONE)
            o[n++] = (struct obs){h->reads[i].partition, h->reads[i].offset,
                                  h->reads[i].value, (long)i};
    *n_out = n;
    return o;
}

static void tally(struct hist *h, struct hist_report *rep)
{
    for (int wi = 0; wi < h->n_writers; wi++)
        for (uint32_t s = 0; s < h->writer[wi].n; s++) {
            uint8_t st = h->writer[wi].w[s].status;
            rep->writes++;
            rep->acked += st == HIST_OK;
            rep->failed += st == HIST_FAIL;
            rep->info += st == HIST_INFO || st == HIST_PENDING;
        }
    rep->reads = (long)h->n_reads;
    rep->claims = (long)h->n_claims;
}

long hist_check(struct hist *h, const struct hist_check_opts *opts, struct hist_report *rep)
{
    memset(rep, 0, sizeof(*rep));
    tally(h, rep);
    count_leader_kills(h, rep);
    for (int wi = 0; wi < h->n_writers; wi++)
        for (uint32_t s = 0; s < h->writer[wi].n; s++) {
            h->writer[wi].w[s].seen_offset = -1;
            h->writer[wi].w[s].replicas = 0;
        }
    size_t n = 0, np = h->partitions;
    struct obs *o = collect(h, &n);
    int64_t *max_read = malloc(sizeof(int64_t) * (np + 1));
    int64_t *rmax = malloc(sizeof(int64_t) * ((size_t)h->n_sources * np + 1));
    long rc = -ENOMEM;
    if (!o || !max_read || !rmax)
        goto out;
    for (size_t p = 0; p < np; p++)
        max_read[p] = -1;
    for (size_t i = 0; i < (size_t)h->n_sources * np; i++)
        rmax[i] = -1;
    if (h->harness_errors)
        found(rep, HIST_UNKNOWN_VALUE, "%s (%ld such)", h->harness_example, h->harness_errors);
    check_reads(h, max_read, rmax, rep);
    check_acked(h, max_read, rmax, rep);
    if (check_sequence_order(h, rep) || check_leaders(h, rep))
        goto out;
    check_values(h, o, n, rep);
    check_offsets(h, o, n, rep); /* leaves o sorted by offset, as the order check needs */
    if (check_source_order(h, o, n, rep))
        goto out;
    if (opts && (rep->acked < opts->min_acked || rep->reads < opts->min_reads))
        found(rep, HIST_VACUOUS, "%ld acknowledged writes (need %ld), %ld reads (need %ld)",
              rep->acked, opts->min_acked, rep->reads, opts->min_reads);
    rc = rep->total;
out:
    free(o);
    free(max_read);
    free(rmax);
    return rc;
}

void hist_report_print(const struct hist_report *rep, FILE *out)
{
    fprintf(out, "checker: %ld writes (%ld acknowledged, %ld failed, %ld indeterminate), "
                 "%ld reads, %ld leadership claims: %ld anomalies\n",
            rep->writes, rep->acked, rep->failed, rep->info, rep->reads, rep->claims,
            rep->total);
    if (rep->leader_kills)
        fprintf(out, "checker: %ld leader kills, %ld of them under load and followed by an "
                     "election\n", rep->leader_kills, rep->leader_kills_under_load);
    for (int k = 0; k < HIST_ANOMALY_KINDS; k++) {
        if (!rep->count[k])
            continue;
        fprintf(out, "  %s: %ld\n", anomaly_names[k], rep->count[k]);
        for (long i = 0; i < rep->count[k] && i < HIST_MAX_EXAMPLES; i++)
            fprintf(out, "    %s\n", rep->example[k][i]);
    }
}

int hist_dump(struct hist *h, const char *path)
{
    static const char *const st[] = {"pending", "ok", "fail", "info"};
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    for (int wi = 0; wi < h->n_writers; wi++)
        for (uint32_t s = 0; s < h->writer[wi].n; s++) {
            const struct hwrite *w = &h->writer[wi].w[s];
            fprintf(f, "write w%d-%u partition %u %s offset %" PRId64 "\n", wi, s,
                    w->partition, st[w->status & 3], w->ack_offset);
        }
    for (size_t i = 0; i < h->n_reads; i++) {
        const struct hreadev *r = &h->reads[i];
        fprintf(f, "read %s session %u partition %u offset %" PRId64 " term %u ",
                h->source[r->source].name, r->session, r->partition, r->offset, r->term);
        if (r->value == VALUE_NONE)
            fprintf(f, "?\n");
        else
            fprintf(f, "w%u-%u\n", (unsigned)(r->value >> 32), (unsigned)r->value);
    }
    for (size_t i = 0; i < h->n_claims; i++)
        fprintf(f, "leader partition %u term %u node %d (%s)\n", h->claims[i].partition,
                h->claims[i].term, h->claims[i].node, h->claims[i].how);
    return fclose(f) ? -errno : 0;
}
