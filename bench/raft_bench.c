/*
 * raft_bench: what the raft core costs and how fast it recovers.
 *
 *  1. Commit throughput: a 3-node group in one process, messages delivered at once, every
 *     append durable at once, the leader proposing batches of 64 entries of 100 bytes (each
 *     entry covering 16 indexes, as a batch of 16 records would), on replication/memlog. The
 *     figure is entries committed per second of wall time; all of it is core work plus the
 *     trivial in-memory log and queue of this harness (no I/O, no copies of payloads).
 *  2. Failover: in the simulator (tests/sim) with a healthy network (delay 0-1 tick), the
 *     ticks from the leader's crash until a new leader commits an entry of its own term,
 *     median and p99 over 10,000 seeds. Election timeout 10 ticks (randomized 10-19),
 *     heartbeat 2, pre-vote and check-quorum on. Measured twice: the survivors finding out by
 *     their election timeout, and told at once that the leader's connection was lost
 *     (raft_leader_unreachable, the simulator's notice).
 *  3. Idle cost of many groups: three brokers in one process, each a replication driver
 *     (replication/repl.h) with its own hard-state store on real files, 1,000 groups of 3
 *     replicas on in-memory logs, frames handed between the drivers each turn. Once every group
 *     has a leader, the CPU time of N idle ticks (heartbeats and replies only) is divided by the
 *     brokers and scaled to a 100 ms tick: the share of one core a broker spends keeping 1,000
 *     idle partitions alive. It leaves out the socket send and receive system calls of a real
 *     transport (one frame per node pair and tick), and counts the in-memory copies instead.
 *
 *   raft_bench [--entries N] [--seeds N] [--groups N]
 */
#include "common/err.h"
#include "io/io.h"
#include "replication/hstore.h"
#include "replication/memlog.h"
#include "replication/raft.h"
#include "replication/repl.h"
#include "tests/sim/sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BN 3
#define BATCH 64
#define PAYLOAD_BYTES 100
#define RECORDS 16            /* records per entry: each entry covers 16 indexes */
#define LOG_KEEP 4096         /* entries kept after a compaction */
#define LOG_COMPACT_AT 65536  /* compact once a log holds this many */
#define QUEUE_MAX 8192

struct bnode {
    struct raft r;
    struct memlog log;
};

static struct bnode nodes[BN];
static struct raft_msg queue[QUEUE_MAX];
static struct raft_entry queue_ents[QUEUE_MAX][BATCH];
static uint32_t q_head, q_len;
static struct raft_ready rd;
static uint8_t payload[PAYLOAD_BYTES];
static uint64_t n_calls;

static void compact(struct bnode *nd)
{
    struct memlog *l = &nd->log;
    uint64_t upto = nd->r.commit < nd->r.durable_index ? nd->r.commit : nd->r.durable_index;
    if (l->n < LOG_COMPACT_AT || upto < l->snap_index + LOG_KEEP * RECORDS)
        return;
    uint64_t term;
    upto = memlog_ops.boundary(l, upto - LOG_KEEP * RECORDS, UINT64_MAX, &term);
    struct raft_snapshot_meta meta;
    if (raft_compact(&nd->r, upto, &meta) < 0 || memlog_compact(l, upto) < 0)
        abort();
}

/* Carries out the ready of node i; appends are durable at once. Bounded: a persisted call
 * produces no appends, so this nests at most one level. */
static void apply(uint32_t i)
{
    struct bnode *nd = &nodes[i];
    struct memlog *l = &nd->log;
    if (rd.has_truncate && memlog_truncate_after(l, rd.truncate_after) < 0)
        abort();
    for (uint32_t k = 0; k < rd.n_append; k++)
        if (memlog_append(l, &rd.append[k]) < 0)
            abort();
    uint32_t appended = rd.n_append;
    for (uint32_t k = 0; k < rd.n_msgs; k++) {
        if (q_len == QUEUE_MAX)
            abort();
        uint32_t slot = (q_head + q_len++) % QUEUE_MAX;
        queue[slot] = rd.msgs[k];
        memcpy(queue_ents[slot], rd.msgs[k].entries,
               rd.msgs[k].n_entries * sizeof(struct raft_entry));
        queue[slot].entries = queue_ents[slot];
    }
    if (appended) {
        uint64_t last = memlog_last(l);
        n_calls++;
        if (raft_persisted(&nd->r, last, memlog_get(l, last)->term, &rd) < 0)
            abort();
        apply(i);
    }
}

static void deliver_all(void)
{
    while (q_len) {
        struct raft_msg m = queue[q_head];
        m.entries = queue_ents[q_head];
        q_head = (q_head + 1) % QUEUE_MAX;
        q_len--;
        n_calls++;
        if (raft_step(&nodes[m.to - 1].r, &m, &rd) < 0)
            abort();
        apply(m.to - 1);
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void throughput(uint64_t target)
{
    struct raft_snapshot_meta snap = {.config = {.n_voters = BN, .voters = {1, 2, 3}}};
    for (uint32_t i = 0; i < BN; i++) {
        memlog_init(&nodes[i].log, 0, 0);
        struct raft_options o = {.id = i + 1, .election_ticks = 10, .heartbeat_ticks = 2,
                                 .max_msg_entries = BATCH, .max_inflight = RAFT_MAX_INFLIGHT,
                                 .max_uncommitted = 4096 * RECORDS, .seed = 7,
                                 .pre_vote = true, .check_quorum = true,
                                 .log_ops = &memlog_ops, .log_ctx = &nodes[i].log};
        if (raft_init(&nodes[i].r, &o, NULL, &snap) < 0)
            abort();
    }
    struct raft *ld = &nodes[0].r;
    for (uint32_t t = 0; t < 100 && ld->role != RAFT_LEADER; t++) {
        raft_tick(ld, &rd);
        apply(0);
        deliver_all();
    }
    if (ld->role != RAFT_LEADER)
        abort();
    struct raft_entry batch[BATCH];
    for (uint32_t k = 0; k < BATCH; k++)
        batch[k] = (struct raft_entry){.data = payload, .len = PAYLOAD_BYTES, .count = RECORDS};
    uint64_t start_commit = ld->commit;
    n_calls = 0;
    double t0 = now_s();
    while (ld->commit - start_commit < target * RECORDS) {
        int rc = raft_propose(ld, batch, BATCH, &rd, NULL);
        n_calls++;
        if (rc < 0 && rc != RL_E_FULL)
            abort();
        apply(0);
        deliver_all();
        for (uint32_t i = 0; i < BN; i++)
            compact(&nodes[i]);
    }
    double dt = now_s() - t0;
    uint64_t done = (ld->commit - start_commit) / RECORDS;
    printf("raft commit throughput (3 nodes in-process, no delay, batches of %d x %d B): "
           "%.2f M entries/s (%" PRIu64 " entries in %.2f s, %.0f ns per core call)\n", BATCH,
           PAYLOAD_BYTES, (double)done / dt / 1e6, done, dt, dt * 1e9 / (double)n_calls);
    for (uint32_t i = 0; i < BN; i++)
        memlog_free(&nodes[i].log);
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

static void failover(uint32_t seeds, bool notice)
{
    int *ticks = malloc(seeds * sizeof(int));
    uint32_t n = 0, failed = 0;
    if (!ticks)
        abort();
    double t0 = now_s();
    for (uint32_t s = 1; s <= seeds; s++) {
        int t = sim_failover_ticks(s, 3, notice);
        if (t < 0)
            failed++;
        else
            ticks[n++] = t;
    }
    qsort(ticks, n, sizeof(int), cmp_int);
    if (n == 0) {
        printf("raft failover: no seed recovered\n");
        free(ticks);
        return;
    }
    printf("raft failover (3 nodes, election timeout 10-19 ticks, heartbeat 2%s): leader crash "
           "-> new leader commits: median %d ticks, p99 %d ticks, max %d (%u seeds, %u "
           "without recovery, %.1f s)\n",
           notice ? ", survivors told the leader's connection was lost" : "", ticks[n / 2],
           ticks[(n * 99) / 100], ticks[n - 1], seeds, failed, now_s() - t0);
    free(ticks);
}

/* ---- 3. idle cost of many groups ------------------------------------------------------- */

#define IDLE_NODES 3
#define IDLE_TICK_MS 100

struct idle_log {
    struct memlog ml;
    struct repl_group *g;
    uint64_t reported;
};

struct idle_frame {
    uint32_t from, to;
    uint8_t *p;
    size_t len;
};

static struct {
    struct idle_frame q[64], next[64];
    uint32_t n_q, n_next;
    uint64_t bytes;
} idle;

static int idle_apply(void *log, const struct raft_ready *ready)
{
    struct idle_log *l = log;
    if (ready->has_truncate && memlog_truncate_after(&l->ml, ready->truncate_after) < 0)
        return -1;
    for (uint32_t i = 0; i < ready->n_append; i++)
        if (memlog_append(&l->ml, &ready->append[i]) < 0) /* no-ops only: no payload to keep */
            return -1;
    if (ready->n_append)
        repl_group_log_durable(l->g);
    return 0;
}

static void idle_ready_done(void *log)
{
    (void)log;
}

static bool idle_take_durable(void *log, uint64_t *index, uint64_t *term)
{
    struct idle_log *l = log;
    uint64_t last = memlog_last(&l->ml);
    if (last == l->reported || !l->ml.n)
        return false;
    l->reported = last;
    *index = last;
    *term = l->ml.e[l->ml.n - 1].term;
    return true;
}

static void idle_set_commit(void *log, uint64_t commit)
{
    (void)log;
    (void)commit;
}

static const struct repl_log_ops idle_ops = {idle_apply, idle_ready_done, idle_take_durable,
                                             idle_set_commit, NULL};

static int idle_send(void *ctx, uint32_t to, const uint8_t *frame, size_t len)
{
    uint32_t from = (uint32_t)(uintptr_t)ctx;
    if (idle.n_next == 64)
        return -1;
    struct idle_frame *f = &idle.next[idle.n_next++];
    f->from = from;
    f->to = to;
    f->len = len;
    f->p = malloc(len);
    if (!f->p)
        abort();
    memcpy(f->p, frame, len);
    idle.bytes += len;
    return 0;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void idle_turn(struct repl **r, struct io **io)
{
    memcpy(idle.q, idle.next, idle.n_next * sizeof(idle.next[0]));
    idle.n_q = idle.n_next;
    idle.n_next = 0;
    for (uint32_t i = 0; i < idle.n_q; i++) {
        repl_receive(r[idle.q[i].to - 1], idle.q[i].from, idle.q[i].p, idle.q[i].len);
        free(idle.q[i].p);
    }
    for (uint32_t k = 0; k < IDLE_NODES; k++) {
        repl_tick(r[k]);
        io_run(io[k], 0);
        repl_flush(r[k]);
    }
}

static uint32_t idle_leaders(struct repl **r, uint32_t groups)
{
    uint32_t n = 0;
    for (uint32_t g = 0; g < groups; g++)
        for (uint32_t k = 0; k < IDLE_NODES; k++)
            n += raft_role(repl_group_raft(repl_group_find(r[k], g))) == RAFT_LEADER;
    return n;
}

static void idle_cost(uint32_t groups, uint32_t ticks)
{
    struct io *io[IDLE_NODES];
    struct hstore *hs[IDLE_NODES];
    struct repl *r[IDLE_NODES];
    char dirs[IDLE_NODES][64];
    struct idle_log *logs = calloc((size_t)groups * IDLE_NODES, sizeof(*logs));
    if (!logs)
        abort();
    for (uint32_t k = 0; k < IDLE_NODES; k++) {
        int err;
        snprintf(dirs[k], sizeof(dirs[k]), "/var/tmp/rl_raft_bench_XXXXXX");
        if (!mkdtemp(dirs[k]) || !(io[k] = io_create(64, &err)) ||
            hstore_open(io[k], dirs[k], &hs[k]) < 0)
            abort();
        struct repl_transport t = {.send = idle_send, .ctx = (void *)(uintptr_t)(k + 1)};
        if (!(r[k] = repl_create(k + 1, hs[k], &t)))
            abort();
        for (uint32_t g = 0; g < groups; g++) {
            struct idle_log *l = &logs[(size_t)g * IDLE_NODES + k];
            memlog_init(&l->ml, 0, 0);
            struct repl_group_options o = {
                .id = g,
                .raft = {.id = k + 1, .election_ticks = 10, .heartbeat_ticks = 2,
                         .seed = g * 31 + k, .pre_vote = true, .check_quorum = true,
                         .log_ops = &memlog_ops, .log_ctx = l},
                .snap = {.config = {.n_voters = 3, .voters = {1, 2, 3}}},
                .log = &idle_ops,
            };
            if (repl_group_add(r[k], &o, &l->g) < 0)
                abort();
        }
    }
    uint32_t t = 0;
    for (; t < 2000 && idle_leaders(r, groups) < groups; t++) {
        idle_turn(r, io);
        for (uint32_t k = 0; k < IDLE_NODES; k++)
            io_run(io[k], 1000000);
    }
    for (uint32_t w = 0; w < 50; w++) /* settle: every heartbeat id-only */
        idle_turn(r, io);
    uint64_t bytes0 = idle.bytes, fsyncs = 0;
    for (uint32_t k = 0; k < IDLE_NODES; k++)
        fsyncs += hstore_flushes(hs[k]);
    double c0 = cpu_s();
    for (uint32_t i = 0; i < ticks; i++)
        idle_turn(r, io);
    double per_tick = (cpu_s() - c0) / ticks / IDLE_NODES;
    printf("raft idle cost (%u groups x 3 replicas on 3 brokers, leaders after %u ticks, %" PRIu64
           " hard-state fsyncs for all elections): %.1f us CPU per broker per tick = %.2f%% of "
           "a core at a %d ms tick; %.0f bytes per node pair per tick; %zu bytes of core and "
           "driver state per replica\n", groups, t, fsyncs, per_tick * 1e6,
           per_tick * 1e3 / IDLE_TICK_MS * 100.0, IDLE_TICK_MS,
           (double)(idle.bytes - bytes0) / ticks / (IDLE_NODES * (IDLE_NODES - 1)),
           repl_group_state_bytes());
    for (uint32_t k = 0; k < IDLE_NODES; k++) {
        repl_destroy(r[k]);
        hstore_close(hs[k]);
        io_destroy(io[k]);
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", dirs[k], HSTORE_FILE);
        unlink(path);
        rmdir(dirs[k]);
    }
    for (size_t i = 0; i < (size_t)groups * IDLE_NODES; i++)
        memlog_free(&logs[i].ml);
    free(logs);
    for (uint32_t i = 0; i < idle.n_next; i++)
        free(idle.next[i].p);
}

int main(int argc, char **argv)
{
    uint64_t entries = 5000000;
    uint32_t seeds = 10000, groups = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--entries"))
            entries = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--seeds"))
            seeds = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--groups"))
            groups = (uint32_t)strtoul(argv[i + 1], NULL, 10);
    }
    memset(payload, 0xab, sizeof(payload));
    throughput(entries);
    failover(seeds, false);
    failover(seeds, true);
    idle_cost(groups, 300);
    return 0;
}
