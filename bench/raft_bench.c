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
 *     heartbeat 2, pre-vote and check-quorum on.
 *
 *   raft_bench [--entries N] [--seeds N]
 */
#include "common/err.h"
#include "replication/memlog.h"
#include "replication/raft.h"
#include "tests/sim/sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static void failover(uint32_t seeds)
{
    int *ticks = malloc(seeds * sizeof(int));
    uint32_t n = 0, failed = 0;
    if (!ticks)
        abort();
    double t0 = now_s();
    for (uint32_t s = 1; s <= seeds; s++) {
        int t = sim_failover_ticks(s, 3);
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
    printf("raft failover (3 nodes, election timeout 10-19 ticks, heartbeat 2): leader crash "
           "-> new leader commits: median %d ticks, p99 %d ticks, max %d (%u seeds, %u "
           "without recovery, %.1f s)\n", ticks[n / 2], ticks[(n * 99) / 100], ticks[n - 1],
           seeds, failed, now_s() - t0);
    free(ticks);
}

int main(int argc, char **argv)
{
    uint64_t entries = 5000000;
    uint32_t seeds = 10000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--entries"))
            entries = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--seeds"))
            seeds = (uint32_t)strtoul(argv[i + 1], NULL, 10);
    }
    memset(payload, 0xab, sizeof(payload));
    throughput(entries);
    failover(seeds);
    return 0;
}
