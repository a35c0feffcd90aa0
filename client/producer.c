/*
 * producer: the batching, sending and retrying half of libringlog. Data path:
 *   rl_producer_send -> partitioner -> the partition's batch builder (record bytes copied once)
 *   -> sealed batch (batch.size reached, linger.ms passed, or flush) -> the I/O thread ->
 *   Produce request (one batch per partition, batches written with writev straight from their
 *   buffers) -> ringlogd -> answer -> delivery callback per record.
 *
 * Threads: callers of rl_producer_send / flush, and one I/O thread per producer. One mutex
 * (p->lock) guards the partitions, their queues and the memory count; the I/O thread holds it
 * only to pick work and to file answers, never across a system call that waits, so senders are
 * not stalled by the network. Delivery callbacks run on the I/O thread without the lock.
 *
 * Topics whose metadata is not known yet (new, or no broker reachable) keep their records in a
 * queue of their own, one growing buffer per topic (no allocation per record); the I/O thread
 * asks for the metadata with backoff, then moves the records into partitions in send order.
 * So send never waits for the network beyond max.block.ms: with max.block.ms=0 it returns at
 * once, failing only with RL_E_FULL (or for a bad argument).
 *
 * Delivery callbacks run on the I/O thread; send, flush and destroy of the same producer called
 * from inside one would wait for that very thread, so they fail with -EDEADLK instead. Each
 * record's report says whether it is in the log (PERSISTED), may be (POSSIBLY_PERSISTED: a
 * request carrying it went unanswered), or is not (NOT_PERSISTED).
 *
 * Limits: buffer.memory bounds bytes of records accepted and not yet settled (send waits up to
 * max.block.ms, then fails with RL_E_FULL); max.in.flight bounds requests per connection;
 * max.in.flight.per.partition bounds batches per partition (5); delivery.timeout.ms bounds a
 * record's life.
 *
 * Idempotence (the default): a batch gets (producer id, epoch, base sequence) when it is first
 * taken for sending (idem_stamp), so sequence order is queue order. Batches that come back for a
 * retry are put back in seal order (requeue) and only the head of a partition's queue may go, so
 * a retried batch and the later batches of its partition go again in order with the same
 * sequences. A gap answer (OUT_OF_ORDER_SEQUENCE, UNKNOWN_PRODUCER_ID) while an earlier batch of
 * the partition is unresolved means "wait for it" (idem_gap); with none unresolved, the broker
 * has neither that batch nor any later one: they lose their sequences and wait for an epoch
 * bump. Any stamped batch that ends without success sets need_bump: new batches hold back,
 * stamped ones settle, then the producer bumps its epoch itself (idem_init; the id is its
 * alone) and sequences restart at 0. InitProducerId is asked only for the first id and for a
 * fresh one when the epoch would pass INT16_MAX. A gap answer is trusted only from the
 * partition's producer state: a broker that cannot vouch for the id yet (its metadata lags)
 * answers PRODUCER_ID_NOT_YET_KNOWN, retried like NOT_LEADER.
 * Without idempotence, max.in.flight.per.partition above 1 lets a retry reorder records.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"

#define RECORD_OVERHEAD 32   /* bytes counted per record beyond key and value */
#define MAX_REQ_BYTES (16u * 1024 * 1024) /* batch bytes in one Produce request (soft) */
#define MAX_REQ_BATCHES (RLC_FRAME_IOV - 1)
#define MAX_INFLIGHT_REQS 5
#define MAX_INFLIGHT_PART 5 /* the bound of max.in.flight.per.partition */
/* Idle batch.size buffers kept for reuse. A sealed batch that fills at least half its builder
 * buffer takes that buffer along instead of being copied out, and the builder continues with a
 * pooled one: no copy, and no fresh large allocation (mmap, page faults, zeroed pages) per
 * batch. Emptier batches are copied into an allocation of their size, so buffers are never
 * held by mostly empty batches (at most 2 * buffer.memory / batch.size are in use). */
#define MAX_POOLED_BUFS 32

struct ptopic;

/* A sealed batch: waiting in its partition's queue, in flight, or being settled. */
struct pbatch {
    struct pbatch *next;
    struct ppart *part;  /* NULL for records that failed before reaching a partition */
    struct ptopic *topic;
    uint64_t seq;        /* seal order, producer-wide: callbacks run in this order */
    uint32_t len;
    uint32_t count;
    void **opaques;      /* count entries, or NULL without a delivery callback */
    size_t mem;          /* bytes counted against buffer.memory */
    int64_t deadline_ms; /* delivery.timeout.ms after its first record was sent */
    int64_t retry_at_ms;
    int attempts;
    int error;           /* when settled */
    bool stamped;        /* idempotence: carries (producer id, epoch, base_seq) and was sent */
    bool maybe_written;  /* a request carrying it ended unanswered: it may be in the log */
    int32_t fail_partition; /* the partition named in a failure report when part is NULL */
    int32_t base_seq;    /* idempotence: valid while stamped */
    int64_t base_offset; /* when settled successfully */
    char *error_message; /* owned, or NULL */
    uint8_t *data;       /* the batch: `tail` below, or a batch.size buffer taken from the
                          * builder (pooled) */
    bool pooled;
    uint8_t tail[];
};

struct ppart {
    struct ptopic *topic;
    int32_t id;
    int broker;                 /* index into p->brokers, -1 when the leader is unknown */
    struct batch_builder *bld;  /* created on first use */
    void **opaques;
    uint32_t opq_cap;
    int64_t first_ms;           /* monotonic time of the open batch's first record; 0 = empty */
    int64_t open_deadline_ms;
    size_t open_mem;
    struct pbatch *q_head, *q_tail; /* sealed, in send order */
    int inflight;
    /* Idempotence. next_seq: the sequence the next batch sent for the first time gets;
     * seal_seq: the sequence the open batch will most likely get, written into it when it is
     * started so that stamping at send time rarely has to rewrite the header. unres_seq holds
     * the seal order (pbatch.seq) of stamped batches whose fate is not known yet: at most
     * max.in.flight.per.partition, because a batch is stamped only when every stamped batch of
     * its partition is in flight and fewer than that many are. */
    int32_t next_seq, seal_seq;
    uint64_t unres_seq[MAX_INFLIGHT_PART];
    int unres_count;
    /* The latest seal order (pbatch.seq) acknowledged while stamped, under epoch acked_epoch
     * (-1: none): the broker takes a partition's sequences only in order, so every stamped
     * batch sealed before it was appended too, whatever the broker now says of it. */
    uint64_t acked_seq;
    int32_t acked_epoch;
};

struct ptopic {
    int idx;               /* position in p->topics (topics are never removed) */
    struct rlc_topic meta;
    struct ppart *parts;
    int32_t sticky;        /* partition for keyless records, -1 to pick the next */
    uint32_t sticky_next;
    bool refresh;          /* metadata is stale */
    /* Until the first metadata answer (known == false) the topic has no partitions: its
     * records wait in `pend` (struct prec entries, each followed by its bytes), in send order.
     * meta_tries counts finished metadata attempts (senders wait for one, up to max.block.ms);
     * meta_error is the last attempt's result; want_meta asks the I/O thread for one now. */
    bool known;
    bool want_meta;
    int meta_tries;
    int meta_error;
    char meta_err[256]; /* the last attempt's message */
    int64_t meta_next_ms;
    uint8_t *pend;
    size_t pend_len, pend_cap, pend_off;
    uint32_t pend_count;
};

/* A record waiting for its topic's metadata, followed by key, value and headers (each header:
 * struct prec_hdr, then key and value bytes). Entries are 8-byte aligned. */
struct prec {
    int64_t deadline_ms;
    int64_t timestamp_ms;
    void *opaque;
    size_t mem;
    uint32_t size; /* bytes of the entry, header included, aligned */
    int32_t partition;
    uint32_t key_len, value_len;
    uint32_t header_count;
    bool key_null, value_null;
};

struct prec_hdr {
    uint32_t key_len;
    int32_t value_len; /* -1: null */
};

struct preq {
    uint32_t corr;
    int n;
    int64_t sent_ms;
    int64_t sent_us; /* for the round-trip statistics */
    struct pbatch *batches[MAX_REQ_BATCHES];
};

struct pbroker {
    struct rlc_addr addr;
    struct rlc_conn conn;
    struct preq reqs[MAX_INFLIGHT_REQS]; /* FIFO ring: answers come in request order */
    unsigned req_head, req_count;
    int64_t next_try_ms; /* reconnect / throttle gate */
    int failures;
    bool want; /* some partition led by this broker has a batch to send */
};

struct rl_producer {
    struct rl_conf conf;
    struct rlc_meta meta;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* memory freed, records settled */
    pthread_t thread;
    int wake_fd;
    bool wake_pending; /* written to wake_fd since the I/O thread's last pass began */
    bool stop;
    int flushers;
    int rr_topic;   /* where the next request's walk over partitions starts */
    int32_t rr_part;
    int mem_waiters; /* senders waiting for buffer memory: seal lingering batches at once */
    int64_t refreshed_ms;
    struct ptopic *topics[RLC_MAX_TOPICS];
    int topic_count;
    struct ptopic *last_topic; /* topic_find's first guess (lock held) */
    struct pbroker brokers[RLC_MAX_BROKERS];
    int broker_count;
    uint8_t *bufs[MAX_POOLED_BUFS]; /* idle batch.size buffers (see MAX_POOLED_BUFS) */
    int buf_count;
    size_t mem_used;
    size_t mem_sealed; /* of mem_used: bytes in sealed batches (queued or in flight) */
    uint64_t pending; /* records accepted and not yet settled */
    uint64_t acked, failed;
    uint64_t inflight_records, retries, answered, rtt_sum_us, rtt_max_us, rtt_last_us;
    uint64_t next_seq;
    uint64_t rnd;
    /* Idempotence (enable.idempotence and acks != 0): the producer id and epoch from
     * InitProducerId (-1 until known). need_bump is set when a stamped batch ended without
     * success (its sequence may have left a gap): no new batch is stamped until every stamped
     * batch is resolved, then the epoch is bumped and sequences restart at 0. fatal is a
     * sticky PRODUCER_FENCED: another instance took over this producer id. */
    bool idem;
    int64_t pid;
    int16_t epoch;
    bool need_bump;
    int unresolved; /* stamped batches not yet settled, all partitions */
    int fatal;
    int init_failures;
    int64_t init_next_ms;
    char err[512];
};

/* Wakes the I/O thread (lock held). One eventfd write per pass of its loop is enough: the
 * thread clears wake_pending under the lock before it looks at the partitions, so whatever
 * changed before a skipped write is seen by that pass, and a wake after it writes again. This
 * saves a system call on most seals and batch starts. */
static void wake(struct rl_producer *p)
{
    if (p->wake_pending)
        return;
    p->wake_pending = true;
    uint64_t one = 1;
    ssize_t r = write(p->wake_fd, &one, sizeof(one));
    (void)r; /* a full eventfd counter still wakes the thread */
}

static void *io_main(void *arg);

/* The producer whose delivery callback this thread is running (NULL outside callbacks): send,
 * flush and destroy of that producer would wait for this very thread. */
static __thread const struct rl_producer *in_callback;

/* Refuses a call made from inside one of p's delivery callbacks (see in_callback). */
static int callback_guard(struct rl_producer *p, const char *what)
{
    if (in_callback != p)
        return 0;
    return rlc_fail(p, -EDEADLK, "%s called from inside the producer's delivery callback, which "
                    "runs on its I/O thread; call it from another thread (the callback must "
                    "return for records to move)", what);
}

/* Notes a failed call on p for the calling thread and for the producer (lock held). */
static int send_fail(struct rl_producer *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int send_fail(struct rl_producer *p, int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rlc_set_err(p->err, sizeof(p->err), "%s", msg);
    return rlc_fail(p, code, "%s", msg);
}

struct rl_producer *rl_producer_new(const struct rl_conf *conf, char *err, size_t errlen)
{
    if (!conf) {
        rlc_set_err(err, errlen, "rl_producer_new: conf is NULL");
        return NULL;
    }
    if (rl_conf_check(conf, err, errlen) != 0) {
        rlc_fail(NULL, RL_E_INVALID_CONFIG, "%s", err ? err : "contradictory configuration");
        return NULL;
    }
    struct rl_producer *p = calloc(1, sizeof(*p));
    if (!p) {
        rlc_set_err(err, errlen, "out of memory");
        return NULL;
    }
    p->conf = *conf;
    rlc_meta_init(&p->meta, &p->conf);
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    p->rnd = (uint64_t)rlc_wall_ms() ^ (uint64_t)(uintptr_t)p ^ 0x9E3779B97F4A7C15ULL;
    p->idem = rlc_conf_idempotent(conf);
    p->pid = -1;
    p->epoch = -1;
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->wake_fd < 0) {
        rlc_set_err(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    int rc = pthread_create(&p->thread, NULL, io_main, p);
    if (rc) {
        rlc_set_err(err, errlen, "cannot start the producer thread: %s", strerror(rc));
        close(p->wake_fd);
        goto fail;
    }
    return p;
fail:
    rlc_meta_destroy(&p->meta);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
    return NULL;
}

/* --- sending side (caller threads) ---------------------------------------------------------- */

/* Senders name the same topic record after record: the last one found is compared first, so
 * a producer of many topics pays one comparison per record, not one per topic. */
static struct ptopic *topic_find(struct rl_producer *p, const char *name)
{
    struct ptopic *last = p->last_topic;
    if (last && strcmp(last->meta.name, name) == 0)
        return last;
    for (int i = 0; i < p->topic_count; i++)
        if (strcmp(p->topics[i]->meta.name, name) == 0)
            return p->last_topic = p->topics[i];
    return NULL;
}

static int broker_index(struct rl_producer *p, const struct rlc_addr *a)
{
    for (int i = 0; i < p->broker_count; i++)
        if (p->brokers[i].addr.port == a->port && strcmp(p->brokers[i].addr.host, a->host) == 0)
            return i;
    if (p->broker_count == RLC_MAX_BROKERS)
        return -1;
    struct pbroker *b = &p->brokers[p->broker_count];
    memset(b, 0, sizeof(*b));
    b->addr = *a;
    b->conn.fd = -1;
    return p->broker_count++;
}

/* Points every partition of t at its leader's connection (lock held). A partition that moved
 * to a new leader sends its queued batches at once: their back-off was for the old leader
 * (gone or no longer leading), and the new one is known to be there (fast failover). */
static void topic_route(struct rl_producer *p, struct ptopic *t, int64_t now)
{
    for (int32_t i = 0; i < t->meta.partitions; i++) {
        struct ppart *pt = &t->parts[i];
        struct rlc_addr a;
        int old = pt->broker;
        pt->broker = -1;
        if (rlc_meta_leader(&p->meta, t->meta.name, i, &a) == 0)
            pt->broker = broker_index(p, &a);
        if (pt->broker < 0 || pt->broker == old)
            continue;
        for (struct pbatch *b = pt->q_head; b; b = b->next)
            if (b->retry_at_ms > now)
                b->retry_at_ms = now;
    }
}

/* Gives a topic its metadata and partitions once the first answer arrived (lock held). The
 * placeholder's name stays (sending threads may hold it); the answer's copy is dropped. */
static int topic_install(struct rl_producer *p, struct ptopic *t, struct rlc_topic *meta)
{
    struct ppart *parts = calloc((size_t)meta->partitions, sizeof(struct ppart));
    if (!parts)
        return -ENOMEM;
    free(meta->name);
    meta->name = t->meta.name;
    t->meta = *meta;
    memset(meta, 0, sizeof(*meta));
    t->parts = parts;
    for (int32_t i = 0; i < t->meta.partitions; i++) {
        t->parts[i].topic = t;
        t->parts[i].id = i;
        t->parts[i].broker = -1;
        t->parts[i].acked_epoch = -1;
    }
    topic_route(p, t, rlc_now_ms());
    t->known = true;
    return 0;
}

/* Finds or creates the producer's state for a topic (lock held). A new topic starts without
 * metadata; the I/O thread fetches it. */
static int topic_lookup(struct rl_producer *p, const char *name, struct ptopic **out)
{
    *out = topic_find(p, name);
    if (*out)
        return 0;
    struct ptopic *t = p->topic_count < RLC_MAX_TOPICS ? calloc(1, sizeof(*t)) : NULL;
    char *copy = t ? strdup(name) : NULL;
    if (!copy) {
        free(t);
        if (p->topic_count == RLC_MAX_TOPICS)
            return send_fail(p, RL_E_LIMIT, "cannot track topic \"%s\": one producer sends to "
                             "at most %d topics", name, RLC_MAX_TOPICS);
        return send_fail(p, -ENOMEM, "cannot track topic \"%s\": out of memory", name);
    }
    t->meta.name = copy;
    t->sticky = -1;
    t->sticky_next = (uint32_t)rlc_rand(&p->rnd);
    t->want_meta = true;
    t->idx = p->topic_count;
    p->topics[p->topic_count++] = t;
    *out = t;
    return 0;
}

/* With max.block.ms > 0, waits (lock held) for an answer about a topic whose metadata is not
 * known: the first one, or a fresh one once the last failure's backoff has passed. Returns 0
 * when the metadata is known, else the failure with its message: RL_E_UNKNOWN_TOPIC,
 * RL_E_BROKER_UNAVAILABLE (no broker reachable), or RL_E_TIMED_OUT (no answer within
 * max.block.ms). With max.block.ms = 0 it returns 0 at once: the record then waits in the
 * topic's queue for the I/O thread's answer. */
static int topic_wait(struct rl_producer *p, struct ptopic *t)
{
    int64_t now = rlc_now_ms();
    if (t->known || p->conf.max_block_ms == 0)
        return 0;
    int target = t->meta_tries;
    if (t->meta_tries == 0 || now >= t->meta_next_ms) {
        target = t->meta_tries + 1;
        t->want_meta = true;
        t->meta_next_ms = 0;
        wake(p);
        int64_t deadline = now + p->conf.max_block_ms;
        struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
        while (!t->known && t->meta_tries < target && !p->stop) {
            if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT &&
                rlc_now_ms() >= deadline)
                break;
        }
    }
    if (t->known)
        return 0;
    if (p->stop)
        return send_fail(p, RL_E_CLOSED, "the producer is being destroyed");
    if (t->meta_tries < target)
        return send_fail(p, RL_E_TIMED_OUT, "no metadata for topic \"%s\" within "
                         "max.block.ms=%d; is the broker overloaded? (max.block.ms=0 queues "
                         "the record instead)", t->meta.name, p->conf.max_block_ms);
    if (t->meta_error == RL_E_UNKNOWN_TOPIC)
        return send_fail(p, RL_E_UNKNOWN_TOPIC, "topic \"%s\" does not exist; create it first "
                         "(rl_admin_create_topic; from a shell: ringlog topic create %s), or "
                         "check the name", t->meta.name, t->meta.name);
    int code = t->meta_error == RL_E_BROKER_UNAVAILABLE || rlc_connection_error(t->meta_error)
                   ? RL_E_BROKER_UNAVAILABLE : t->meta_error;
    return send_fail(p, code, "%s", t->meta_err);
}

/* Sequences count records and wrap from INT32_MAX to 0, as the broker expects. */
static int32_t seq_add(int32_t seq, uint32_t count)
{
    return (int32_t)(((uint32_t)seq + count) & (uint32_t)INT32_MAX);
}

/* Starts the partition's next batch with the idempotence fields it will most likely carry, so
 * the header rarely needs rewriting (and rehashing) when the batch is first sent (lock held). */
static void part_reset(struct rl_producer *p, struct ppart *pt)
{
    if (p->idem && p->pid >= 0)
        batch_builder_reset(pt->bld, p->pid, p->epoch, pt->seal_seq);
    else
        batch_builder_reset(pt->bld, -1, -1, -1);
}

/* Makes a sealed batch of the open batch of a partition: takes the builder's buffer when the
 * batch fills at least half of it, copies the batch out otherwise (lock held). */
static struct pbatch *batch_take(struct rl_producer *p, struct ppart *pt, int *err)
{
    size_t cap = batch_builder_capacity(pt->bld);
    if (batch_builder_bytes(pt->bld) < cap / 2) {
        const uint8_t *out;
        int len = batch_builder_finish(pt->bld, &out);
        struct pbatch *b = len < 0 ? NULL : malloc(sizeof(*b) + (size_t)len);
        *err = len < 0 ? len : -ENOMEM;
        if (!b)
            return NULL;
        memset(b, 0, sizeof(*b));
        b->data = b->tail;
        memcpy(b->data, out, (size_t)len);
        b->len = (uint32_t)len;
        return b;
    }
    struct pbatch *b = malloc(sizeof(*b));
    uint8_t *fresh = p->buf_count ? p->bufs[--p->buf_count] : malloc(cap);
    int len = b && fresh ? batch_builder_finish_swap(pt->bld, fresh, &b->data) : -ENOMEM;
    if (len < 0) {
        free(b);
        free(fresh);
        *err = len;
        return NULL;
    }
    uint8_t *data = b->data;
    memset(b, 0, sizeof(*b));
    b->data = data;
    b->pooled = true;
    b->len = (uint32_t)len;
    return b;
}

/* Seals the open batch of a partition into its send queue (lock held). */
static int part_seal(struct rl_producer *p, struct ppart *pt)
{
    int len;
    struct pbatch *b = batch_take(p, pt, &len);
    if (!b)
        return len;
    b->part = pt;
    b->topic = pt->topic;
    b->seq = p->next_seq++;
    b->count = batch_builder_count(pt->bld);
    b->opaques = pt->opaques;
    b->mem = pt->open_mem;
    p->mem_sealed += b->mem;
    b->deadline_ms = pt->open_deadline_ms;
    pt->opaques = NULL;
    pt->opq_cap = 0;
    pt->first_ms = 0;
    pt->open_mem = 0;
    pt->seal_seq = seq_add(pt->seal_seq, b->count);
    part_reset(p, pt);
    if (pt->q_tail)
        pt->q_tail->next = b;
    else
        pt->q_head = b;
    pt->q_tail = b;
    if (pt->topic->sticky == pt->id)
        pt->topic->sticky = -1; /* keyless records move on to the next partition */
    return 0;
}

static int32_t choose_partition(struct ptopic *t, const void *key, size_t key_len)
{
    const struct rlc_topic *m = &t->meta;
    if (key && m->partitioner == RL_PARTITIONER_RANGE)
        return rlc_part_range(key, key_len, (const uint8_t *const *)m->splits, m->split_lens,
                              m->split_count);
    if (key)
        return rlc_part_hash(key, key_len, m->partitions);
    if (t->sticky < 0)
        t->sticky = (int32_t)(t->sticky_next++ % (uint32_t)m->partitions);
    return t->sticky;
}

/* Waits (lock held) until `need` more bytes fit in buffer.memory, up to max.block.ms. */
static int wait_memory(struct rl_producer *p, size_t need)
{
    if (p->mem_used + need <= p->conf.buffer_memory || p->mem_used == 0)
        return 0;
    int64_t deadline = rlc_now_ms() + p->conf.max_block_ms;
    struct timespec ts;
    ts.tv_sec = deadline / 1000;
    ts.tv_nsec = (deadline % 1000) * 1000000;
    /* Batches still lingering hold memory too: ask the I/O thread to send them now. */
    p->mem_waiters++;
    wake(p);
    int rc = 0;
    while (p->mem_used + need > p->conf.buffer_memory && p->mem_used > 0 && !p->stop) {
        if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT &&
            rlc_now_ms() >= deadline) {
            rlc_set_err(p->err, sizeof(p->err),
                        "producer buffer is full: %zu of buffer.memory=%zu bytes are waiting "
                        "for acknowledgement after max.block.ms=%d; the broker is slow or "
                        "unreachable (raise buffer.memory or max.block.ms, or send slower)",
                        p->mem_used, p->conf.buffer_memory, p->conf.max_block_ms);
            rc = RL_E_FULL;
            break;
        }
    }
    p->mem_waiters--;
    return rc ? rc : p->stop ? RL_E_CLOSED : 0;
}

/* Makes room for one more opaque pointer before the record goes in, so a failed allocation
 * never leaves a record in the batch without its callback context. */
static int opaque_reserve(struct rl_producer *p, struct ppart *pt)
{
    if (!p->conf.delivery_cb)
        return 0;
    uint32_t n = batch_builder_count(pt->bld);
    if (n < pt->opq_cap)
        return 0;
    uint32_t cap = pt->opq_cap ? pt->opq_cap * 2 : 256;
    void **o = realloc(pt->opaques, sizeof(void *) * cap);
    if (!o)
        return -ENOMEM;
    pt->opaques = o;
    pt->opq_cap = cap;
    return 0;
}

/* Copies one record into the partition's open batch (lock held). */
static int part_add(struct rl_producer *p, struct ppart *pt, const struct batch_record_in *rec,
                    void *opaque, size_t mem)
{
    if (!pt->bld) {
        pt->bld = batch_builder_create(p->conf.batch_size, p->conf.compression,
                                       p->conf.compression_level);
        if (!pt->bld)
            return -ENOMEM;
        part_reset(p, pt);
    }
    int rc = opaque_reserve(p, pt);
    if (rc == 0)
        rc = batch_builder_add(pt->bld, rec);
    if (rc == RL_E_FULL) {
        rc = part_seal(p, pt);
        if (rc)
            return rc;
        wake(p);
        rc = opaque_reserve(p, pt);
        if (rc == 0)
            rc = batch_builder_add(pt->bld, rec);
    }
    if (rc)
        return rc;
    uint32_t n = batch_builder_count(pt->bld);
    if (p->conf.delivery_cb)
        pt->opaques[n - 1] = opaque;
    if (n == 1) {
        pt->first_ms = rlc_now_ms();
        pt->open_deadline_ms = pt->first_ms + p->conf.delivery_timeout_ms;
        wake(p); /* the I/O thread arms its linger timer */
    }
    pt->open_mem += mem;
    p->mem_used += mem;
    p->pending++;
    return 0;
}

/* A header key's length: key_len, or the NUL-terminated key's when key_len is 0. */
static size_t hdr_key_len(const struct rl_header *h)
{
    return !h->key ? 0 : h->key_len ? h->key_len : strlen(h->key);
}

/* Converts the public headers into the codec's form (no allocation: at most RL_MAX_HEADERS)
 * and returns the bytes they add to the record, or a negative code. */
static long headers_in(const struct rl_message *m, struct batch_record_header *out)
{
    long bytes = 0;
    if (m->header_count > RL_MAX_HEADERS || (m->header_count && !m->headers))
        return RL_E_INVALID_ARGUMENT;
    for (uint32_t i = 0; i < m->header_count; i++) {
        const struct rl_header *h = &m->headers[i];
        size_t klen = hdr_key_len(h);
        if (klen > INT32_MAX || h->value_len > INT32_MAX)
            return RL_E_INVALID_ARGUMENT;
        out[i] = (struct batch_record_header){
            .key = (const uint8_t *)(h->key ? h->key : ""), .key_len = (int32_t)klen,
            .value = h->value, .value_len = h->value ? (int32_t)h->value_len : -1,
        };
        bytes += (long)(klen + h->value_len + 8);
    }
    return bytes;
}

/* Appends a record to the queue of a topic without metadata (lock held). One buffer per topic
 * grows by doubling, so records do not cost an allocation each. */
static int pend_push(struct rl_producer *p, struct ptopic *t, const struct rl_message *m,
                     int64_t timestamp_ms, size_t mem)
{
    size_t need = sizeof(struct prec) + m->key_len + m->value_len;
    for (uint32_t i = 0; i < m->header_count; i++)
        need += sizeof(struct prec_hdr) + hdr_key_len(&m->headers[i]) + m->headers[i].value_len;
    need = (need + 7) & ~(size_t)7;
    if (t->pend_len + need > t->pend_cap) {
        if (t->pend_off) { /* drop the drained front first */
            memmove(t->pend, t->pend + t->pend_off, t->pend_len - t->pend_off);
            t->pend_len -= t->pend_off;
            t->pend_off = 0;
        }
        size_t cap = t->pend_cap ? t->pend_cap : 4096;
        while (cap < t->pend_len + need)
            cap *= 2;
        uint8_t *nb = cap != t->pend_cap ? realloc(t->pend, cap) : t->pend;
        if (!nb)
            return -ENOMEM;
        t->pend = nb;
        t->pend_cap = cap;
    }
    struct prec *r = (struct prec *)(t->pend + t->pend_len);
    *r = (struct prec){
        .deadline_ms = rlc_now_ms() + p->conf.delivery_timeout_ms, .timestamp_ms = timestamp_ms,
        .opaque = m->opaque, .mem = mem, .size = (uint32_t)need, .partition = m->partition,
        .key_len = m->key ? (uint32_t)m->key_len : 0,
        .value_len = m->value ? (uint32_t)m->value_len : 0, .header_count = m->header_count,
        .key_null = !m->key, .value_null = !m->value,
    };
    uint8_t *w = (uint8_t *)(r + 1);
    if (r->key_len)
        memcpy(w, m->key, r->key_len);
    w += r->key_len;
    if (r->value_len)
        memcpy(w, m->value, r->value_len);
    w += r->value_len;
    for (uint32_t i = 0; i < m->header_count; i++) {
        const struct rl_header *h = &m->headers[i];
        struct prec_hdr ph = {.key_len = (uint32_t)hdr_key_len(h),
                              .value_len = h->value ? (int32_t)h->value_len : -1};
        memcpy(w, &ph, sizeof(ph));
        w += sizeof(ph);
        memcpy(w, h->key ? h->key : "", ph.key_len);
        w += ph.key_len;
        if (ph.value_len > 0)
            memcpy(w, h->value, (size_t)ph.value_len);
        w += ph.value_len > 0 ? ph.value_len : 0;
    }
    t->pend_len += need;
    t->pend_count++;
    p->mem_used += mem;
    p->pending++;
    wake(p);
    return 0;
}

int rl_producer_send_message(struct rl_producer *p, const struct rl_message *m)
{
    struct ptopic *t;
    struct batch_record_header hdrs[RL_MAX_HEADERS];
    int rc = callback_guard(p, "rl_producer_send");
    if (rc)
        return rc;
    if (!m || !m->topic)
        return rlc_fail(p, RL_E_INVALID_ARGUMENT, "rl_producer_send: no topic");
    long hbytes = headers_in(m, hdrs);
    if (hbytes < 0)
        return rlc_fail(p, (int)hbytes, "bad headers: at most %d, each with a key",
                        RL_MAX_HEADERS);
    size_t mem = m->key_len + m->value_len + (size_t)hbytes + RECORD_OVERHEAD;
    pthread_mutex_lock(&p->lock);
    int32_t partition = m->partition;
    if (p->stop) {
        rc = send_fail(p, RL_E_CLOSED, "the producer is being destroyed");
        goto out;
    }
    if (p->fatal) {
        rc = rlc_fail(p, p->fatal, "%s", p->err);
        goto out;
    }
    rc = topic_lookup(p, m->topic, &t);
    if (rc == 0)
        rc = topic_wait(p, t);
    if (rc)
        goto out;
    if (t->known && partition != RL_PARTITION_ANY &&
        (partition < 0 || partition >= t->meta.partitions)) {
        rc = send_fail(p, RL_E_UNKNOWN_PARTITION, "topic \"%s\" has no partition %d (it has "
                       "%d)", m->topic, partition, t->meta.partitions);
        goto out;
    }
    rc = wait_memory(p, mem);
    if (rc) {
        rlc_fail(p, rc, "%s", p->err);
        goto out;
    }
    int64_t ts_ms = m->timestamp_ms > 0 ? m->timestamp_ms : rlc_wall_ms_coarse();
    if (!t->known || t->pend_count) { /* behind records still waiting for metadata */
        /* The builder's exact check comes later; refuse what can never fit now. */
        if (mem + RL_BATCH_HEADER_SIZE > p->conf.batch_size + RECORD_OVERHEAD) {
            rc = send_fail(p, RL_E_BATCH_TOO_LARGE, "record of %zu bytes does not fit in a "
                           "batch (batch.size=%zu); raise batch.size",
                           m->key_len + m->value_len, p->conf.batch_size);
            goto out;
        }
        rc = pend_push(p, t, m, ts_ms, mem);
        if (rc)
            send_fail(p, rc, "cannot queue record: %s", rl_strerror(rc));
        goto out;
    }
    if (partition == RL_PARTITION_ANY)
        partition = choose_partition(t, m->key, m->key_len);
    struct batch_record_in rec = {
        .key = m->key, .key_len = m->key ? m->key_len : 0, .value = m->value,
        .value_len = m->value ? m->value_len : 0, .timestamp = ts_ms,
        .headers = m->header_count ? hdrs : NULL, .header_count = m->header_count,
    };
    rc = part_add(p, &t->parts[partition], &rec, m->opaque, mem);
    if (rc == RL_E_BATCH_TOO_LARGE)
        send_fail(p, rc, "record of %zu bytes does not fit in a batch (batch.size=%zu); raise "
                  "batch.size", m->key_len + m->value_len, p->conf.batch_size);
    else if (rc)
        send_fail(p, rc, "cannot queue record: %s", rl_strerror(rc));
out:
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int rl_producer_send(struct rl_producer *p, const char *topic, int32_t partition,
                     const void *key, size_t key_len, const void *value, size_t value_len,
                     int64_t timestamp_ms, void *opaque)
{
    struct rl_message m = {
        .topic = topic, .partition = partition, .key = key, .key_len = key_len,
        .value = value, .value_len = value_len, .timestamp_ms = timestamp_ms, .opaque = opaque,
    };
    return rl_producer_send_message(p, &m);
}

int rl_producer_flush(struct rl_producer *p, int timeout_ms)
{
    int rc = callback_guard(p, "rl_producer_flush");
    if (rc)
        return rc;
    /* RL_TIMEOUT_INFINITE: until every record settled, which delivery.timeout.ms bounds. */
    bool forever = timeout_ms < 0;
    int64_t deadline = rlc_now_ms() + (forever ? 0 : timeout_ms);
    struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
    pthread_mutex_lock(&p->lock);
    p->flushers++;
    wake(p);
    while (p->pending > 0) {
        if (forever) {
            pthread_cond_wait(&p->cond, &p->lock);
            continue;
        }
        if (rlc_now_ms() >= deadline ||
            (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT &&
             rlc_now_ms() >= deadline)) {
            if (p->pending == 0)
                break;
            rc = send_fail(p, RL_E_TIMED_OUT, "flush timed out after %d ms with %llu records "
                           "not yet acknowledged", timeout_ms, (unsigned long long)p->pending);
            break;
        }
    }
    p->flushers--;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void rl_producer_counts(struct rl_producer *p, uint64_t *acked, uint64_t *failed)
{
    pthread_mutex_lock(&p->lock);
    if (acked)
        *acked = p->acked;
    if (failed)
        *failed = p->failed;
    pthread_mutex_unlock(&p->lock);
}

int rl_producer_stats(struct rl_producer *p, struct rl_producer_stats *out, size_t size)
{
    if (!p || !out || size == 0)
        return RL_E_INVALID_ARGUMENT;
    struct rl_producer_stats st = {0};
    pthread_mutex_lock(&p->lock);
    st.in_flight_records = p->inflight_records;
    st.queued_records = p->pending - p->inflight_records;
    for (int i = 0; i < p->broker_count; i++)
        st.in_flight_requests += p->brokers[i].req_count;
    st.buffer_bytes = p->mem_used;
    st.acked_records = p->acked;
    st.failed_records = p->failed;
    st.retries = p->retries;
    st.requests = p->answered;
    st.rtt_avg_us = p->answered ? p->rtt_sum_us / p->answered : 0;
    st.rtt_max_us = p->rtt_max_us;
    st.rtt_last_us = p->rtt_last_us;
    pthread_mutex_unlock(&p->lock);
    memcpy(out, &st, size < sizeof(st) ? size : sizeof(st));
    return 0;
}

const char *rl_producer_last_error(struct rl_producer *p)
{
    const char *mine = rlc_thread_error(p);
    return mine ? mine : p->err;
}

/* Frees a settled batch; its builder buffer goes back to the pool when there is room (lock
 * held). */
static void batch_free(struct rl_producer *p, struct pbatch *b)
{
    if (b->pooled && p->buf_count < MAX_POOLED_BUFS)
        p->bufs[p->buf_count++] = b->data;
    else if (b->pooled)
        free(b->data);
    free(b->opaques);
    free(b->error_message);
    free(b);
}

int rl_producer_destroy(struct rl_producer *p, int timeout_ms)
{
    if (!p)
        return 0;
    int rc = callback_guard(p, "rl_producer_destroy");
    if (rc)
        return rc;
    rc = rl_producer_flush(p, timeout_ms);
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->cond);
    wake(p);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    for (int i = 0; i < p->topic_count; i++) {
        struct ptopic *t = p->topics[i];
        for (int32_t j = 0; j < t->meta.partitions; j++) {
            batch_builder_destroy(t->parts[j].bld);
            free(t->parts[j].opaques);
        }
        free(t->parts);
        free(t->pend);
        if (!t->known)
            free(t->meta.name); /* a placeholder has only its name */
        else
            rlc_topic_free(&t->meta);
        free(t);
    }
    for (int i = 0; i < p->broker_count; i++)
        rlc_conn_close(&p->brokers[i].conn);
    while (p->buf_count)
        free(p->bufs[--p->buf_count]);
    rlc_meta_destroy(&p->meta);
    close(p->wake_fd);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
    return rc;
}

/* --- the I/O thread --------------------------------------------------------------------------- */

/* Puts a batch back into its partition's queue in seal order (lock held). Batches coming back
 * were sent before every batch still queued, so the walk stops within the few retried ones at
 * the front; seal order is sequence order, which is what the broker accepts. */
static void requeue(struct ppart *pt, struct pbatch *b)
{
    struct pbatch **pp = &pt->q_head;
    while (*pp && (*pp)->seq < b->seq)
        pp = &(*pp)->next;
    b->next = *pp;
    *pp = b;
    if (!b->next)
        pt->q_tail = b;
}

/* Gives a batch its producer id, epoch and base sequence as it is sent for the first time
 * under the current epoch (lock held). The header was usually started with these values
 * (part_reset); when not (the first batches, or after an epoch bump) it is rewritten and its
 * checksum recomputed. */
static void idem_stamp(struct rl_producer *p, struct ppart *pt, struct pbatch *b)
{
    b->base_seq = pt->next_seq;
    pt->next_seq = seq_add(pt->next_seq, b->count);
    struct batch_header h;
    if (batch_header_decode(b->data, b->len, &h) != 0 || h.producer_id != p->pid ||
        h.producer_epoch != p->epoch || h.base_sequence != b->base_seq) {
        uint8_t *d = b->data;
        uint64_t pid = (uint64_t)p->pid;
        uint16_t ep = (uint16_t)p->epoch;
        uint32_t sq = (uint32_t)b->base_seq;
        for (int i = 0; i < 8; i++)
            d[BATCH_OFF_PRODUCER_ID + i] = (uint8_t)(pid >> (8 * i));
        for (int i = 0; i < 2; i++)
            d[BATCH_OFF_PRODUCER_EPOCH + i] = (uint8_t)(ep >> (8 * i));
        for (int i = 0; i < 4; i++)
            d[BATCH_OFF_BASE_SEQUENCE + i] = (uint8_t)(sq >> (8 * i));
        uint64_t sum = batch_compute_checksum(d, b->len);
        for (int i = 0; i < 8; i++)
            d[BATCH_OFF_CHECKSUM + i] = (uint8_t)(sum >> (8 * i));
    }
    b->stamped = true;
    RL_ASSERT(pt->unres_count < MAX_INFLIGHT_PART);
    pt->unres_seq[pt->unres_count++] = b->seq;
    p->unresolved++;
}

/* The batch's fate is now known (or given up on): it no longer holds back an epoch bump. */
static void idem_unstamp(struct rl_producer *p, struct pbatch *b)
{
    if (!b->stamped)
        return;
    struct ppart *pt = b->part;
    for (int i = 0; i < pt->unres_count; i++) {
        if (pt->unres_seq[i] == b->seq) {
            pt->unres_seq[i] = pt->unres_seq[--pt->unres_count];
            break;
        }
    }
    b->stamped = false;
    p->unresolved--;
}

/* A stamped batch ends without success: the broker may or may not have its sequence, so later
 * batches could meet a gap. Sequences restart under a bumped epoch once nothing stamped is
 * left unresolved (lock held). */
static void idem_settle_failed(struct rl_producer *p, struct pbatch *b)
{
    if (!b->stamped)
        return;
    idem_unstamp(p, b);
    if (!p->fatal)
        p->need_bump = true;
}

/* Is a batch sealed before b, of the same partition, still waiting for its fate? Then a gap
 * the broker reports for b is that predecessor's doing, and b only has to be sent again. */
static bool idem_predecessor_pending(const struct pbatch *b)
{
    const struct ppart *pt = b->part;
    for (int i = 0; i < pt->unres_count; i++)
        if (pt->unres_seq[i] < b->seq)
            return true;
    return false;
}

/* Records that stamped batch b was acknowledged (lock held, before it is unstamped). */
static void idem_note_acked(struct rl_producer *p, const struct pbatch *b)
{
    struct ppart *pt = b->part;
    if (!b->stamped)
        return;
    if (pt->acked_epoch != p->epoch || b->seq > pt->acked_seq) {
        pt->acked_epoch = p->epoch;
        pt->acked_seq = b->seq;
    }
}

/* A gap reported for a stamped batch sealed before one already acknowledged under the same
 * epoch: the broker appended it (its answer was lost, e.g. on a leader that stopped answering,
 * and the broker's window of recent batches no longer holds it). Resending it under a new
 * epoch would write it twice. */
static bool idem_known_appended(const struct rl_producer *p, const struct pbatch *b)
{
    const struct ppart *pt = b->part;
    return b->stamped && pt->acked_epoch == p->epoch && p->epoch >= 0 && pt->acked_seq > b->seq;
}

/* OUT_OF_ORDER_SEQUENCE or UNKNOWN_PRODUCER_ID for a stamped batch (lock held). With a
 * predecessor pending the batch waits behind it and goes again with the same sequence.
 * Otherwise the broker certainly did not append it, nor any later batch of the partition:
 * they are unstamped and wait for the epoch bump that restarts sequences. */
static void idem_gap(struct rl_producer *p, struct pbatch *b, int64_t now, const char *why)
{
    struct ppart *pt = b->part;
    if (!idem_predecessor_pending(b)) {
        RL_INFO("producer: %s-%d: the broker lacks the batch at sequence %u (%s); it and the "
                "partition's later batches go again under a new epoch", pt->topic->meta.name,
                pt->id, (unsigned)b->base_seq, why && why[0] ? why : "a sequence gap");
        idem_unstamp(p, b);
        for (struct pbatch *q = pt->q_head; q; q = q->next)
            if (q->stamped && q->seq > b->seq)
                idem_unstamp(p, q);
        if (!p->fatal)
            p->need_bump = true;
    }
    b->retry_at_ms = now;
    requeue(pt, b);
}

/* Settles a batch now or puts it back in its queue for a retry (lock held). */
static void retry_or_fail(struct rl_producer *p, struct pbatch *b, int code, const char *msg,
                          int64_t now, struct pbatch **done)
{
    struct ppart *pt = b->part;
    if (rlc_retriable(code) && now < b->deadline_ms && !p->stop && !p->fatal) {
        b->attempts++;
        p->retries++;
        b->retry_at_ms = now + rlc_backoff_ms(b->attempts, p->conf.retry_backoff_ms,
                                              p->conf.retry_backoff_max_ms, rlc_rand(&p->rnd));
        requeue(pt, b);
        if (rlc_needs_metadata(code) || code < 0)
            pt->topic->refresh = true;
        return;
    }
    if (code == RL_E_PRODUCER_FENCED && !p->fatal) {
        p->fatal = code;
        rlc_set_err(p->err, sizeof(p->err), "producer fenced: another producer instance took "
                    "over producer id %lld with a newer epoch; this producer can send no more",
                    (long long)p->pid);
    }
    idem_settle_failed(p, b);
    b->error = code;
    if (code == RL_E_TIMED_OUT || rlc_retriable(code)) {
        char buf[512];
        snprintf(buf, sizeof(buf), "not acknowledged within delivery.timeout.ms=%d after %d "
                 "attempts; last error: %s", p->conf.delivery_timeout_ms, b->attempts + 1, msg);
        b->error_message = strdup(buf);
        b->error = RL_E_TIMED_OUT;
    } else {
        b->error_message = strdup(msg);
    }
    b->next = *done;
    *done = b;
}

/* Fails every request in flight on a broker connection and closes it (lock held). */
static void fail_conn(struct rl_producer *p, struct pbroker *br, int code, const char *msg,
                      int64_t now, struct pbatch **done)
{
    /* Newest first, each pushed to the front of its queue: the oldest ends up first again. */
    while (br->req_count) {
        struct preq *r = &br->reqs[(br->req_head + br->req_count - 1) % MAX_INFLIGHT_REQS];
        for (int i = r->n - 1; i >= 0; i--) {
            /* The request may have reached the broker: its batches may be in the log. */
            r->batches[i]->maybe_written = true;
            r->batches[i]->part->inflight--;
            p->inflight_records -= r->batches[i]->count;
            retry_or_fail(p, r->batches[i], code, msg, now, done);
        }
        br->req_count--;
    }
    RL_DEBUG("producer: connection to %s:%u failed: %s", br->addr.host, br->addr.port, msg);
    rlc_conn_close(&br->conn);
    br->failures++;
    br->next_try_ms = now + rlc_backoff_ms(br->failures, p->conf.retry_backoff_ms,
                                           p->conf.retry_backoff_max_ms, rlc_rand(&p->rnd));
    for (int i = 0; i < p->topic_count; i++)
        p->topics[i]->refresh = true;
    rlc_set_err(p->err, sizeof(p->err), "%s", msg);
}

/* Makes a failure report for n consecutive records of a topic's metadata queue, starting at
 * byte `off` (lock held). The records stay counted in mem_used and pending until settle. */
static int pend_fail_run(struct rl_producer *p, struct ptopic *t, size_t off, uint32_t n,
                         int code, const char *msg, int32_t partition, struct pbatch **done)
{
    struct pbatch *b = calloc(1, sizeof(*b));
    void **opq = b && p->conf.delivery_cb ? malloc(sizeof(void *) * n) : NULL;
    char *m = b ? strdup(msg) : NULL;
    if (!b || !m || (p->conf.delivery_cb && !opq)) {
        free(b);
        free(opq);
        free(m);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct prec *r = (const struct prec *)(t->pend + off);
        if (opq)
            opq[i] = r->opaque;
        b->mem += r->mem;
        off += r->size;
    }
    b->topic = t;
    b->fail_partition = partition;
    b->seq = p->next_seq++;
    b->count = n;
    b->opaques = opq;
    b->error = code;
    b->error_message = m;
    p->mem_sealed += b->mem; /* settle takes it off with mem_used */
    b->next = *done;
    *done = b;
    return 0;
}

/* Fails the records of a topic's metadata queue: all of them, or those past their delivery
 * timeout (the queue is in send order, so they are a prefix) (lock held). */
static void pend_expire(struct rl_producer *p, struct ptopic *t, bool all, int code,
                        const char *msg, int64_t now, struct pbatch **done)
{
    uint32_t n = 0;
    size_t off = t->pend_off, end = t->pend_off;
    while (n < t->pend_count) {
        const struct prec *r = (const struct prec *)(t->pend + end);
        if (!all && r->deadline_ms > now)
            break;
        end += r->size;
        n++;
    }
    if (n == 0 || pend_fail_run(p, t, off, n, code, msg, -1, done) != 0)
        return; /* without memory for the report, the next pass tries again */
    t->pend_off = end;
    t->pend_count -= n;
    if (t->pend_count == 0)
        t->pend_off = t->pend_len = 0;
}

/* Moves a topic's queued records into its partitions once its metadata is known, in send
 * order, keeping each record's delivery deadline (lock held). */
static void pend_drain(struct rl_producer *p, struct ptopic *t, struct pbatch **done)
{
    struct batch_record_header hdrs[RL_MAX_HEADERS];
    while (t->pend_count) {
        const struct prec *r = (const struct prec *)(t->pend + t->pend_off);
        const uint8_t *q = (const uint8_t *)(r + 1);
        struct batch_record_in rec = {
            .key = r->key_null ? NULL : q, .key_len = r->key_len,
            .value = r->value_null ? NULL : q + r->key_len, .value_len = r->value_len,
            .timestamp = r->timestamp_ms, .header_count = r->header_count,
            .headers = r->header_count ? hdrs : NULL,
        };
        q += r->key_len + r->value_len;
        for (uint32_t i = 0; i < r->header_count; i++) {
            struct prec_hdr ph;
            memcpy(&ph, q, sizeof(ph));
            q += sizeof(ph);
            hdrs[i] = (struct batch_record_header){
                .key = q, .key_len = (int32_t)ph.key_len, .value = q + ph.key_len,
                .value_len = ph.value_len};
            q += ph.key_len + (ph.value_len > 0 ? (uint32_t)ph.value_len : 0);
        }
        int32_t part = r->partition;
        int rc = RL_E_UNKNOWN_PARTITION;
        char msg[300];
        snprintf(msg, sizeof(msg), "topic \"%s\" has no partition %d (it has %d)",
                 t->meta.name, part, t->meta.partitions);
        if (part == RL_PARTITION_ANY)
            part = choose_partition(t, rec.key, rec.key_len);
        if (part >= 0 && part < t->meta.partitions) {
            struct ppart *pt = &t->parts[part];
            p->mem_used -= r->mem; /* part_add counts the record again */
            p->pending--;
            rc = part_add(p, pt, &rec, r->opaque, r->mem);
            if (rc == 0 && r->deadline_ms < pt->open_deadline_ms)
                pt->open_deadline_ms = r->deadline_ms;
            if (rc) {
                p->mem_used += r->mem;
                p->pending++;
                snprintf(msg, sizeof(msg), "%s", rc == RL_E_BATCH_TOO_LARGE ? "record does not "
                         "fit in a batch; raise batch.size" : rl_strerror(rc));
            }
        }
        if (rc && pend_fail_run(p, t, t->pend_off, 1, rc, msg, r->partition, done) != 0)
            return; /* no memory for the report: the record stays queued */
        t->pend_off += r->size;
        t->pend_count--;
    }
    free(t->pend);
    t->pend = NULL;
    t->pend_len = t->pend_cap = t->pend_off = 0;
}

/* Why a queued batch is given up (malloc'ed). One that was tried already says so with the
 * same words as a failed attempt's expiry (retry_or_fail): whether its deadline passes while
 * it waits for a retry or while it is in flight is a matter of timing. */
static char *expired_message(const struct rl_producer *p, const struct pbatch *b)
{
    if (p->stop)
        return strdup("producer closed before the batch was sent");
    if (p->fatal)
        return strdup(p->err);
    char buf[sizeof(p->err) + 128];
    if (b->attempts > 0)
        snprintf(buf, sizeof(buf), "not acknowledged within delivery.timeout.ms=%d after %d "
                 "attempts; last error: %s", p->conf.delivery_timeout_ms, b->attempts,
                 p->err[0] ? p->err : "none recorded");
    else
        snprintf(buf, sizeof(buf), "not sent within delivery.timeout.ms=%d; is the "
                 "partition's leader reachable?", p->conf.delivery_timeout_ms);
    return strdup(buf);
}

/* Seals lingering batches, expires old ones, notes which brokers have work (lock held). */
static int64_t scan(struct rl_producer *p, int64_t now, struct pbatch **done)
{
    int64_t wake_at = now + 100; /* request and delivery timeouts are checked at least this often */
    /* Senders waiting for memory make lingering batches go at once, but only while sealed
     * batches hold too little to free it by themselves: sealing on every wait would cut the
     * records added between two waits into tiny batches, and tiny batches are slow. */
    bool starving = p->mem_waiters > 0 && p->mem_sealed < p->conf.buffer_memory / 2;
    bool hurry = p->flushers > 0 || starving || p->stop;
    for (int i = 0; i < p->broker_count; i++)
        p->brokers[i].want = false;
    for (int i = 0; i < p->topic_count; i++) {
        struct ptopic *t = p->topics[i];
        if (t->pend_count) {
            char msg[600];
            snprintf(msg, sizeof(msg), "%s", p->stop ? "producer closed before the topic's "
                     "metadata arrived" : p->fatal ? p->err : "");
            if (!p->stop && !p->fatal)
                snprintf(msg, sizeof(msg), "no metadata for topic \"%s\" within "
                         "delivery.timeout.ms=%d; last error: %s", t->meta.name,
                         p->conf.delivery_timeout_ms, t->meta_error
                         ? t->meta_err : "no answer yet");
            pend_expire(p, t, p->stop || p->fatal, p->stop ? RL_E_SHUTTING_DOWN
                        : p->fatal ? p->fatal : RL_E_TIMED_OUT, msg, now, done);
        }
        for (int32_t j = 0; j < t->meta.partitions; j++) {
            struct ppart *pt = &t->parts[j];
            if (pt->first_ms) {
                int64_t due = pt->first_ms + p->conf.linger_ms;
                if (hurry || now >= due)
                    part_seal(p, pt);
                else if (due < wake_at)
                    wake_at = due;
            }
            struct pbatch **pp = &pt->q_head, *last = NULL;
            while (*pp) {
                struct pbatch *b = *pp;
                if (now >= b->deadline_ms || p->stop || p->fatal) {
                    *pp = b->next;
                    idem_settle_failed(p, b);
                    b->error = p->stop ? RL_E_SHUTTING_DOWN : p->fatal ? p->fatal
                                                                       : RL_E_TIMED_OUT;
                    b->error_message = expired_message(p, b);
                    b->next = *done;
                    *done = b;
                    continue;
                }
                last = b;
                pp = &b->next;
            }
            pt->q_tail = last;
            if (!pt->q_head)
                continue;
            if (pt->broker < 0)
                t->refresh = true;
            else if (pt->inflight < p->conf.max_in_flight_per_partition)
                p->brokers[pt->broker].want = true;
            if (pt->q_head->retry_at_ms > now && pt->q_head->retry_at_ms < wake_at)
                wake_at = pt->q_head->retry_at_ms;
        }
    }
    for (int i = 0; i < p->broker_count; i++) {
        struct pbroker *br = &p->brokers[i];
        if (br->req_count &&
            now - br->reqs[br->req_head].sent_ms > p->conf.request_timeout_ms) {
            char msg[300];
            snprintf(msg, sizeof(msg), "broker %s:%u did not answer a produce request within "
                     "request.timeout.ms=%d", br->addr.host, br->addr.port,
                     p->conf.request_timeout_ms);
            fail_conn(p, br, RL_E_REQUEST_TIMED_OUT, msg, now, done);
        }
        if (br->want && !rlc_conn_is_open(&br->conn) && br->next_try_ms > now &&
            br->next_try_ms < wake_at)
            wake_at = br->next_try_ms;
    }
    /* Stale metadata is asked again as soon as the refresh interval allows, not when some
     * batch's back-off ends: a new leader is then used the moment it is known. */
    int64_t refresh_at = p->refreshed_ms + p->conf.retry_backoff_ms;
    for (int i = 0; i < p->topic_count && p->conf.retry_backoff_ms > 0; i++)
        if (p->topics[i]->refresh && p->topics[i]->known && refresh_at < wake_at)
            wake_at = refresh_at > now ? refresh_at : now;
    return wake_at;
}

/* Brokers are appended by sending threads (under the lock) when a topic names a new leader;
 * the I/O thread reads the count under the lock and then uses entries below it, which never
 * move. */
static int brokers_known(struct rl_producer *p)
{
    pthread_mutex_lock(&p->lock);
    int n = p->broker_count;
    pthread_mutex_unlock(&p->lock);
    return n;
}

/* Asks for the metadata of topics that have none yet and records wait for it (or a sender
 * does), with backoff between attempts (lock NOT held: the request waits on the network). The
 * answer installs the partitions and moves the queued records into them; a broker saying the
 * topic does not exist fails them (NOT_PERSISTED); no answer leaves them queued, bounded by
 * their delivery timeout. Senders waiting in topic_wait are woken either way. */
static void fetch_new_topics(struct rl_producer *p, int64_t now, struct pbatch **done)
{
    for (int i = 0; i < RLC_MAX_TOPICS; i++) {
        pthread_mutex_lock(&p->lock);
        struct ptopic *t = i < p->topic_count ? p->topics[i] : NULL;
        bool go = t && !t->known && (t->want_meta || t->pend_count) && now >= t->meta_next_ms &&
                  !p->stop;
        bool again = t && t->meta_tries > 0;
        pthread_mutex_unlock(&p->lock);
        if (!t)
            break;
        if (!go)
            continue;
        struct rlc_topic m;
        int rc = rlc_meta_topic(&p->meta, t->meta.name, again, &m);
        pthread_mutex_lock(&p->lock);
        if (rc == 0) {
            rc = topic_install(p, t, &m);
            rlc_topic_free(&m);
        }
        t->meta_tries++;
        t->meta_error = rc;
        t->want_meta = false;
        t->meta_next_ms = rlc_now_ms() + rlc_backoff_ms(t->meta_tries, p->conf.retry_backoff_ms,
                                                        p->conf.retry_backoff_max_ms,
                                                        rlc_rand(&p->rnd));
        if (rc == 0) {
            RL_DEBUG("producer: metadata of %s: %d partitions", t->meta.name,
                     t->meta.partitions);
            pend_drain(p, t, done);
        } else {
            RL_DEBUG("producer: metadata of %s: %s", t->meta.name, p->meta.err);
            rlc_set_err(t->meta_err, sizeof(t->meta_err), "%s", p->meta.err);
            rlc_set_err(p->err, sizeof(p->err), "%s", p->meta.err);
            if (rc == RL_E_UNKNOWN_TOPIC)
                pend_expire(p, t, true, rc, p->meta.err, now, done);
        }
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
    }
}

/* Refreshes stale topic metadata and opens connections that have work (lock NOT held: both may
 * wait on the network). */
static void prepare_network(struct rl_producer *p, int64_t now, struct pbatch **done)
{
    fetch_new_topics(p, now, done);
    if (now - p->refreshed_ms >= p->conf.retry_backoff_ms) {
        for (int i = 0; i < RLC_MAX_TOPICS; i++) {
            pthread_mutex_lock(&p->lock);
            struct ptopic *t = i < p->topic_count ? p->topics[i] : NULL;
            bool stale = t && t->refresh;
            pthread_mutex_unlock(&p->lock);
            if (!t)
                break;
            if (!stale || !t->known)
                continue;
            struct rlc_topic m;
            p->refreshed_ms = now;
            if (rlc_meta_topic(&p->meta, t->meta.name, true, &m) != 0) {
                RL_DEBUG("producer: metadata refresh of %s failed: %s", t->meta.name,
                         p->meta.err);
                continue; /* batches wait; their deadline bounds the wait */
            }
            RL_DEBUG("producer: metadata of %s refreshed", t->meta.name);
            pthread_mutex_lock(&p->lock);
            if (m.partitions == t->meta.partitions)
                memcpy(t->meta.leaders, m.leaders, sizeof(int32_t) * (size_t)m.partitions);
            topic_route(p, t, rlc_now_ms());
            t->refresh = false;
            pthread_mutex_unlock(&p->lock);
            rlc_topic_free(&m);
        }
    }
    int nb = brokers_known(p);
    for (int i = 0; i < nb; i++) {
        struct pbroker *br = &p->brokers[i];
        if (!br->want || rlc_conn_is_open(&br->conn) || br->next_try_ms > now)
            continue;
        if (rlc_conn_open(&br->conn, &br->addr, p->conf.connect_timeout_ms) == 0) {
            RL_DEBUG("producer: connected to %s:%u", br->addr.host, br->addr.port);
            br->failures = 0;
            continue;
        }
        RL_DEBUG("producer: %s", br->conn.err);
        pthread_mutex_lock(&p->lock);
        br->failures++;
        br->next_try_ms = rlc_now_ms() + rlc_backoff_ms(br->failures, p->conf.retry_backoff_ms,
                                                        p->conf.retry_backoff_max_ms,
                                                        rlc_rand(&p->rnd));
        rlc_set_err(p->err, sizeof(p->err), "%s", br->conn.err);
        for (int j = 0; j < p->topic_count; j++)
            p->topics[j]->refresh = true;
        pthread_mutex_unlock(&p->lock);
    }
}

/* Takes the batch at the head of a partition's queue into r when it may go now; returns false
 * when the request is full. */
static bool take_batch(struct rl_producer *p, struct ppart *pt, int bi, int64_t now,
                       struct preq *r, size_t *bytes)
{
    struct pbatch *b = pt->q_head;
    if (!b || pt->broker != bi || b->retry_at_ms > now ||
        pt->inflight >= p->conf.max_in_flight_per_partition)
        return true;
    /* A batch gets its sequence only when it may go: the producer id is known, no epoch bump
     * is waiting (then only batches already stamped go, to learn their fate). */
    if (p->idem && !b->stamped && (p->pid < 0 || p->need_bump || p->fatal))
        return true;
    if (r->n > 0 && *bytes + b->len > MAX_REQ_BYTES)
        return false;
    if (p->idem && !b->stamped)
        idem_stamp(p, pt, b);
    pt->q_head = b->next;
    if (!pt->q_head)
        pt->q_tail = NULL;
    b->next = NULL;
    pt->inflight++;
    p->inflight_records += b->count;
    *bytes += b->len;
    r->batches[r->n++] = b;
    return r->n < MAX_REQ_BATCHES;
}

/* Picks at most one batch per partition led by broker bi into r (lock held). The walk starts
 * where the previous request's stopped (p->rr_topic, p->rr_part), so when a request fills up
 * the partitions after it go first next time instead of starving. Batches end up grouped by
 * topic, in topic order, as the request's layout needs. */
static void pick_batches(struct rl_producer *p, int bi, int64_t now, struct preq *r)
{
    size_t bytes = 0, total = 0;
    r->n = 0;
    if (p->topic_count == 0)
        return;
    for (int i = 0; i < p->topic_count; i++)
        total += (size_t)p->topics[i]->meta.partitions;
    int ti = p->rr_topic % p->topic_count;
    int32_t j = p->rr_part;
    bool more = true;
    for (size_t visited = 0; visited < total && more; visited++, j++) {
        while (j >= p->topics[ti]->meta.partitions) {
            ti = (ti + 1) % p->topic_count;
            j = 0;
        }
        more = take_batch(p, &p->topics[ti]->parts[j], bi, now, r, &bytes);
        p->rr_topic = ti;
        p->rr_part = j + 1;
    }
    /* Stable insertion sort by topic: after a wrap, a topic's partitions may be split. */
    for (int a = 1; a < r->n; a++) {
        struct pbatch *b = r->batches[a];
        int k = a;
        while (k > 0 && r->batches[k - 1]->part->topic->idx > b->part->topic->idx) {
            r->batches[k] = r->batches[k - 1];
            k--;
        }
        r->batches[k] = b;
    }
}

/* Encodes and queues one Produce request for the batches in r (lock held). */
static int queue_request(struct rl_producer *p, struct pbroker *br, struct preq *r)
{
    Ringlog__ProduceTopic tps[MAX_REQ_BATCHES], *tpp[MAX_REQ_BATCHES];
    Ringlog__ProducePartition pps[MAX_REQ_BATCHES], *ppp[MAX_REQ_BATCHES];
    struct iovec iov[MAX_REQ_BATCHES];
    size_t nt = 0;
    for (int i = 0; i < r->n; i++) {
        struct pbatch *b = r->batches[i];
        ringlog__produce_partition__init(&pps[i]);
        pps[i].partition = (uint32_t)b->part->id;
        pps[i].data_len = b->len;
        ppp[i] = &pps[i];
        iov[i].iov_base = b->data;
        iov[i].iov_len = b->len;
        /* Batches of one topic are adjacent (picked topic by topic): group them. */
        if (nt == 0 || strcmp(tps[nt - 1].name, b->part->topic->meta.name) != 0) {
            ringlog__produce_topic__init(&tps[nt]);
            tps[nt].name = b->part->topic->meta.name;
            tps[nt].partitions = &ppp[i];
            tpp[nt] = &tps[nt];
            nt++;
        }
        tps[nt - 1].n_partitions++;
    }
    Ringlog__ProduceRequest pr = RINGLOG__PRODUCE_REQUEST__INIT;
    pr.acks = p->conf.acks;
    pr.timeout_ms = (uint32_t)p->conf.request_timeout_ms;
    pr.topics = tpp;
    pr.n_topics = nt;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.client_id = p->conf.client_id;
    req.body_case = RINGLOG__REQUEST__BODY_PRODUCE;
    req.produce = &pr;
    return rlc_conn_queue(&br->conn, &req, iov, r->n, &r->corr);
}

static void fill_requests(struct rl_producer *p, int64_t now, struct pbatch **done)
{
    for (int i = 0; i < p->broker_count; i++) {
        struct pbroker *br = &p->brokers[i];
        while (br->want && rlc_conn_is_open(&br->conn) && br->next_try_ms <= now &&
               br->req_count < (unsigned)p->conf.max_in_flight) {
            struct preq *r = &br->reqs[(br->req_head + br->req_count) % MAX_INFLIGHT_REQS];
            pick_batches(p, i, now, r);
            if (r->n == 0)
                break;
            r->sent_ms = now;
            r->sent_us = rlc_now_us();
            br->req_count++;
            int rc = queue_request(p, br, r);
            if (rc) {
                fail_conn(p, br, rc, "cannot encode a produce request", now, done);
                break;
            }
        }
    }
}

/* Finds a partition's result in a Produce answer. */
static const Ringlog__ProducePartitionResult *find_result(const Ringlog__ProduceResponse *pr,
                                                          const struct pbatch *b)
{
    for (size_t i = 0; pr && i < pr->n_topics; i++) {
        const Ringlog__ProduceTopicResult *tr = pr->topics[i];
        if (!tr->name || strcmp(tr->name, b->part->topic->meta.name) != 0)
            continue;
        for (size_t j = 0; j < tr->n_partitions; j++)
            if (tr->partitions[j]->partition == (uint32_t)b->part->id)
                return tr->partitions[j];
    }
    return NULL;
}

/* Files the answer to the oldest request in flight on br (lock held). */
static void handle_answer(struct rl_producer *p, struct pbroker *br, Ringlog__Response *resp,
                          int64_t now, struct pbatch **done)
{
    if (br->req_count == 0 || resp->correlation_id != br->reqs[br->req_head].corr) {
        if (p->conf.acks == 0)
            return; /* answers to acks=0 requests we already settled */
        fail_conn(p, br, RL_E_FRAME_MALFORMED, "broker answered out of order", now, done);
        return;
    }
    struct preq *r = &br->reqs[br->req_head];
    br->req_head = (br->req_head + 1) % MAX_INFLIGHT_REQS;
    br->req_count--;
    if (resp->throttle_ms)
        br->next_try_ms = now + resp->throttle_ms;
    uint64_t rtt = (uint64_t)(rlc_now_us() - r->sent_us);
    p->answered++;
    p->rtt_sum_us += rtt;
    p->rtt_last_us = rtt;
    if (rtt > p->rtt_max_us)
        p->rtt_max_us = rtt;
    const Ringlog__ProduceResponse *pr =
        resp->body_case == RINGLOG__RESPONSE__BODY_PRODUCE ? resp->produce : NULL;
    for (int i = 0; i < r->n; i++) {
        struct pbatch *b = r->batches[i];
        b->part->inflight--;
        p->inflight_records -= b->count;
        const Ringlog__ProducePartitionResult *res = resp->error_code ? NULL
                                                                      : find_result(pr, b);
        int code = resp->error_code ? resp->error_code : res ? res->error_code
                                                             : RL_E_FRAME_MALFORMED;
        /* A duplicate is a retry of a batch the broker already has: the answer carries the
         * original offsets, and for the application it is simply delivered. */
        if (code == RL_E_DUPLICATE_SEQUENCE && b->stamped)
            code = 0;
        if ((code == RL_E_OUT_OF_ORDER_SEQUENCE || code == RL_E_UNKNOWN_PRODUCER_ID) &&
            idem_known_appended(p, b)) {
            code = 0; /* delivered; its offset is no longer known */
            res = NULL;
        }
        if ((code == RL_E_OUT_OF_ORDER_SEQUENCE || code == RL_E_UNKNOWN_PRODUCER_ID) &&
            b->stamped && now < b->deadline_ms && !p->stop) {
            idem_gap(p, b, now, resp->error_code ? resp->error_message
                                : res              ? res->error_message
                                                   : NULL);
            continue;
        }
        if (code == 0) {
            idem_note_acked(p, b);
            idem_unstamp(p, b);
            b->base_offset = res ? res->base_offset : -1;
            b->next = *done;
            *done = b;
            continue;
        }
        const char *msg = resp->error_code ? resp->error_message
                          : res            ? res->error_message
                                           : "broker's answer lacks the partition";
        char buf[400];
        snprintf(buf, sizeof(buf), "topic \"%s\" partition %d: %s", b->part->topic->meta.name,
                 b->part->id, msg && msg[0] ? msg : rl_strerror(code));
        retry_or_fail(p, b, code, buf, now, done);
    }
}

/* With acks=0 a request is settled once its bytes are written (lock held). */
static void settle_written(struct rl_producer *p, struct pbroker *br, struct pbatch **done)
{
    while (p->conf.acks == 0 && br->req_count > br->conn.out_count) {
        struct preq *r = &br->reqs[br->req_head];
        for (int i = 0; i < r->n; i++) {
            r->batches[i]->part->inflight--;
            p->inflight_records -= r->batches[i]->count;
            r->batches[i]->base_offset = -1;
            r->batches[i]->next = *done;
            *done = r->batches[i];
        }
        br->req_head = (br->req_head + 1) % MAX_INFLIGHT_REQS;
        br->req_count--;
    }
}

/* Writes and reads one broker connection after poll said it is ready. */
static void service(struct rl_producer *p, struct pbroker *br, short revents,
                    struct pbatch **done)
{
    int rc = rlc_conn_flush(&br->conn);
    pthread_mutex_lock(&p->lock);
    settle_written(p, br, done);
    pthread_mutex_unlock(&p->lock);
    while (rc == 0 && (revents & (POLLIN | POLLERR | POLLHUP))) {
        Ringlog__Response *resp;
        const uint8_t *data;
        size_t dlen;
        rc = rlc_conn_read(&br->conn, &resp, &data, &dlen);
        if (rc <= 0)
            break;
        pthread_mutex_lock(&p->lock);
        handle_answer(p, br, resp, rlc_now_ms(), done);
        pthread_mutex_unlock(&p->lock);
        ringlog__response__free_unpacked(resp, NULL);
        rc = 0;
        if (!rlc_conn_is_open(&br->conn))
            return;
    }
    if (rc < 0) {
        pthread_mutex_lock(&p->lock);
        fail_conn(p, br, rc, br->conn.err, rlc_now_ms(), done);
        pthread_mutex_unlock(&p->lock);
    }
}

/* Runs delivery callbacks for settled batches, then frees them and their memory. */
static int seq_cmp(const void *a, const void *b)
{
    uint64_t x = (*(struct pbatch *const *)a)->seq, y = (*(struct pbatch *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Puts settled batches back in seal order: they were collected in whatever order answers,
 * failures and expiries came, and callbacks promise a partition's records in send order. */
static struct pbatch *sort_by_seq(struct pbatch *done)
{
    size_t n = 0;
    for (struct pbatch *b = done; b; b = b->next)
        n++;
    struct pbatch **v = n > 1 ? malloc(n * sizeof(*v)) : NULL;
    if (!v)
        return done; /* one batch, or no memory: a best-effort order */
    n = 0;
    for (struct pbatch *b = done; b; b = b->next)
        v[n++] = b;
    qsort(v, n, sizeof(*v), seq_cmp);
    for (size_t i = 0; i + 1 < n; i++)
        v[i]->next = v[i + 1];
    v[n - 1]->next = NULL;
    done = v[0];
    free(v);
    return done;
}

static void settle(struct rl_producer *p, struct pbatch *done)
{
    if (!done)
        return;
    done = sort_by_seq(done);
    if (p->conf.delivery_cb) {
        in_callback = p;
        for (struct pbatch *b = done; b; b = b->next) {
            struct rl_delivery d = {
                .topic = b->topic->meta.name, .partition = b->part ? b->part->id
                                                                   : b->fail_partition,
                .error = b->error, .error_message = b->error_message ? b->error_message : "",
                .status = b->error ? (b->maybe_written ? RL_DELIVERY_POSSIBLY_PERSISTED
                                                       : RL_DELIVERY_NOT_PERSISTED)
                          : p->conf.acks == 0 ? RL_DELIVERY_POSSIBLY_PERSISTED
                                              : RL_DELIVERY_PERSISTED,
            };
            for (uint32_t i = 0; i < b->count; i++) {
                d.offset = b->error || b->base_offset < 0 ? -1 : b->base_offset + i;
                d.opaque = b->opaques ? b->opaques[i] : NULL;
                p->conf.delivery_cb(p->conf.delivery_ctx, &d);
            }
        }
        in_callback = NULL;
    }
    pthread_mutex_lock(&p->lock);
    while (done) {
        struct pbatch *b = done;
        done = b->next;
        p->mem_used -= b->mem;
        p->mem_sealed -= b->mem;
        p->pending -= b->count;
        if (b->error) {
            p->failed += b->count;
            if (b->error_message)
                rlc_set_err(p->err, sizeof(p->err), "%s", b->error_message);
        } else {
            p->acked += b->count;
        }
        batch_free(p, b);
    }
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* Waits for socket readiness, the wake-up eventfd, or the next timer; then services sockets. */
static void wait_and_service(struct rl_producer *p, int64_t wake_at, struct pbatch **done)
{
    struct pollfd pfd[RLC_MAX_BROKERS + 1];
    int idx[RLC_MAX_BROKERS + 1];
    int n = 0;
    pfd[n].fd = p->wake_fd;
    pfd[n].events = POLLIN;
    idx[n++] = -1;
    int nb = brokers_known(p);
    for (int i = 0; i < nb; i++) {
        struct pbroker *br = &p->brokers[i];
        if (!rlc_conn_is_open(&br->conn))
            continue;
        pfd[n].fd = br->conn.fd;
        pfd[n].events = POLLIN | (rlc_conn_wants_write(&br->conn) ? POLLOUT : 0);
        idx[n++] = i;
    }
    int64_t left = wake_at - rlc_now_ms();
    int r = poll(pfd, (nfds_t)n, left > 0 ? (int)left : 0);
    if (r <= 0)
        return;
    if (pfd[0].revents) {
        uint64_t v;
        ssize_t rd = read(p->wake_fd, &v, sizeof(v));
        (void)rd;
    }
    for (int k = 1; k < n; k++)
        if (pfd[k].revents)
            service(p, &p->brokers[idx[k]], pfd[k].revents, done);
}

/* After InitProducerId answered (lock held): sequences restart at 0 under the new epoch. Every
 * queued batch is unstamped (nothing stamped is unresolved when this runs), so each gets its
 * new sequence as it is sent, in queue order. */
static void idem_restart(struct rl_producer *p, int64_t pid, int16_t epoch)
{
    p->pid = pid;
    p->epoch = epoch;
    p->need_bump = false;
    for (int i = 0; i < p->topic_count; i++) {
        struct ptopic *t = p->topics[i];
        for (int32_t j = 0; j < t->meta.partitions; j++) {
            struct ppart *pt = &t->parts[j];
            RL_ASSERT(pt->unres_count == 0);
            pt->next_seq = 0;
            pt->seal_seq = 0;
            for (struct pbatch *b = pt->q_head; b; b = b->next)
                pt->seal_seq = seq_add(pt->seal_seq, b->count);
        }
    }
}

/* Asks for a producer id (the first time, or when the epoch would overflow) or bumps the epoch
 * (need_bump, once no stamped batch is unresolved). Asking goes on the metadata connection
 * (lock NOT held: it waits on the network, bounded by request.timeout.ms). A failure is
 * retried with backoff; batches wait meanwhile, bounded by their delivery timeout. A broker
 * without the API, or a fenced producer, is fatal. */
static void idem_init(struct rl_producer *p, int64_t now)
{
    pthread_mutex_lock(&p->lock);
    bool go = p->idem && !p->fatal && !p->stop && p->topic_count > 0 && now >= p->init_next_ms &&
              (p->pid < 0 || (p->need_bump && p->unresolved == 0));
    if (go && p->pid >= 0 && p->epoch < INT16_MAX) {
        /* The id is this producer's alone, so it bumps the epoch itself (as Kafka's idempotent
         * producers do): no broker round trip, and no broker whose view of the id's epochs
         * lags another's to ask. Each partition fences the old epoch once the new one wrote. */
        RL_INFO("producer: id %lld epoch %d (bumped: sequences restart at 0)", (long long)p->pid,
                p->epoch + 1);
        idem_restart(p, p->pid, (int16_t)(p->epoch + 1));
        go = false;
    }
    Ringlog__InitProducerIdRequest ir = RINGLOG__INIT_PRODUCER_ID_REQUEST__INIT;
    ir.producer_id = -1; /* the first id, or a fresh one once the epochs are used up */
    pthread_mutex_unlock(&p->lock);
    if (!go)
        return;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_INIT_PRODUCER_ID;
    req.init_producer_id = &ir;
    Ringlog__Response *resp = NULL;
    const uint8_t *data;
    size_t dlen;
    int rc = rlc_meta_call(&p->meta, &req, p->conf.request_timeout_ms, &resp, &data, &dlen);
    if (rc == 0 && (resp->body_case != RINGLOG__RESPONSE__BODY_INIT_PRODUCER_ID ||
                    resp->init_producer_id->producer_id < 0 ||
                    resp->init_producer_id->producer_epoch < 0 ||
                    resp->init_producer_id->producer_epoch > INT16_MAX)) {
        rc = RL_E_FRAME_MALFORMED;
        rlc_set_err(p->meta.err, sizeof(p->meta.err), "InitProducerId answer is malformed");
    }
    pthread_mutex_lock(&p->lock);
    if (rc == 0) {
        RL_DEBUG("producer: id %lld epoch %d", (long long)resp->init_producer_id->producer_id,
                 resp->init_producer_id->producer_epoch);
        idem_restart(p, resp->init_producer_id->producer_id,
                     (int16_t)resp->init_producer_id->producer_epoch);
        p->init_failures = 0;
    } else if (rc == RL_E_UNKNOWN_API || rc == RL_E_UNSUPPORTED_VERSION ||
               rc == RL_E_PRODUCER_FENCED || rc == RL_E_INVALID_PRODUCER_EPOCH) {
        p->fatal = rc;
        rlc_set_err(p->err, sizeof(p->err), rc == RL_E_PRODUCER_FENCED ||
                    rc == RL_E_INVALID_PRODUCER_EPOCH ? "producer fenced: %s" :
                    "the broker cannot give an idempotent producer its id (%s); set "
                    "enable.idempotence=false to produce without it", p->meta.err);
    } else {
        p->init_failures++;
        p->init_next_ms = rlc_now_ms() + rlc_backoff_ms(p->init_failures,
                                                        p->conf.retry_backoff_ms,
                                                        p->conf.retry_backoff_max_ms,
                                                        rlc_rand(&p->rnd));
        rlc_set_err(p->err, sizeof(p->err), "cannot get a producer id: %s", p->meta.err);
    }
    pthread_mutex_unlock(&p->lock);
    if (resp)
        ringlog__response__free_unpacked(resp, NULL);
}

static void *io_main(void *arg)
{
    struct rl_producer *p = arg;
    struct rlc_log_scope ls; /* this thread logs through the producer's log settings */
    rlc_log_enter(&p->conf, &ls);
    for (;;) {
        struct pbatch *done = NULL;
        pthread_mutex_lock(&p->lock);
        p->wake_pending = false;
        bool stop = p->stop;
        int64_t now = rlc_now_ms();
        if (stop) {
            for (int i = 0; i < p->broker_count; i++)
                fail_conn(p, &p->brokers[i], RL_E_SHUTTING_DOWN, "producer closed before the "
                          "broker answered", now, &done);
        }
        int64_t wake_at = scan(p, now, &done);
        pthread_mutex_unlock(&p->lock);
        settle(p, done);
        if (stop)
            break;
        done = NULL;
        idem_init(p, rlc_now_ms());
        prepare_network(p, rlc_now_ms(), &done);
        pthread_mutex_lock(&p->lock);
        now = rlc_now_ms();
        fill_requests(p, now, &done);
        int nb = p->broker_count;
        pthread_mutex_unlock(&p->lock);
        for (int i = 0; i < nb; i++) {
            struct pbroker *br = &p->brokers[i];
            if (rlc_conn_is_open(&br->conn) && rlc_conn_wants_write(&br->conn))
                service(p, br, 0, &done);
        }
        settle(p, done);
        done = NULL;
        wait_and_service(p, wake_at, &done);
        settle(p, done);
    }
    return NULL;
}
