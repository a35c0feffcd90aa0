/*
 * replica_cost: what one partition replica costs when the partition log is the Raft log.
 *
 * Three brokers in one process, each with its own io_uring, storage, hard-state store, read
 * arena and replication driver (replication/repl.h), and N partition groups of 3 replicas whose
 * logs are real plogs (storage/) under raftlogs (replication/raftlog.h) in a temporary
 * directory on disk. Frames go between the drivers in memory each turn (no sockets).
 *
 *  1. Memory per replica: heap bytes (mallinfo2: in use + mmapped) and resident set growth
 *     while broker 1 opens its N plogs and raftlogs and adds their groups, divided by N. The
 *     core (struct raft) and driver state are inside the group figure; file descriptors and
 *     the kernel's inodes are not counted.
 *  2. Idle CPU: once every group has a leader that committed its no-op, the process CPU time
 *     of T idle turns (a tick, heartbeats and replies, no appends) is divided by the brokers
 *     and scaled to the broker's 100 ms tick: the share of one core a broker spends keeping N
 *     idle partitions alive (without the socket system calls of a real transport).
 *
 *   replica_cost [--groups N] [--ticks T]        (make bench-replica)
 */
#include "common/err.h"
#include "io/io.h"
#include "replication/hstore.h"
#include "replication/raftlog.h"
#include "replication/repl.h"
#include "storage/plog.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NODES 3
#define TICK_MS 100
#define MAX_FRAMES 64

struct node {
    uint32_t id;
    struct io *io;
    struct storage *st;
    struct hstore *hs;
    struct raftlog_arena *arena;
    struct repl *r;
    char dir[64];
    struct plog **plog;
    struct raftlog **rl;
    struct repl_group **g;
};

static struct node nodes[NODES];
static struct {
    uint32_t from, to;
    uint8_t *p;
    size_t len;
} q[MAX_FRAMES], nq[MAX_FRAMES];
static uint32_t n_q, n_nq;

static int send_frame(void *ctx, uint32_t to, const uint8_t *frame, size_t len)
{
    if (n_nq == MAX_FRAMES)
        return RL_E_FULL;
    nq[n_nq].from = (uint32_t)(uintptr_t)ctx;
    nq[n_nq].to = to;
    nq[n_nq].len = len;
    nq[n_nq].p = malloc(len);
    if (!nq[n_nq].p)
        abort();
    memcpy(nq[n_nq].p, frame, len);
    n_nq++;
    return 0;
}

static void notify(void *ctx)
{
    repl_group_log_durable(ctx);
}

static void turn(void)
{
    memcpy(q, nq, n_nq * sizeof(nq[0]));
    n_q = n_nq;
    n_nq = 0;
    for (uint32_t i = 0; i < n_q; i++) {
        repl_receive(nodes[q[i].to - 1].r, q[i].from, q[i].p, q[i].len);
        free(q[i].p);
    }
    for (uint32_t k = 0; k < NODES; k++) {
        repl_tick(nodes[k].r);
        io_run(nodes[k].io, 0);
        repl_flush(nodes[k].r);
    }
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (size_t)sysconf(_SC_PAGESIZE);
}

static void open_groups(struct node *n, uint32_t groups)
{
    struct raft_config initial = {.n_voters = NODES, .voters = {1, 2, 3}};
    for (uint32_t g = 0; g < groups; g++) {
        char sub[128];
        snprintf(sub, sizeof(sub), "%s/p-%u", n->dir, g);
        struct plog_config cfg;
        plog_config_default(&cfg);
        cfg.retention_ms = -1;
        struct raft_snapshot_meta snap;
        if (plog_open(n->st, sub, &cfg, NULL, &n->plog[g]) < 0 ||
            raftlog_open(n->io, n->plog[g], sub, n->arena, &n->rl[g]) < 0 ||
            raftlog_snapshot(n->rl[g], &initial, &snap) < 0) {
            fprintf(stderr, "replica_cost: cannot open %s\n", sub);
            exit(1);
        }
        struct repl_group_options o = {
            .id = 100 + g,
            .raft = {.id = n->id, .election_ticks = 10, .heartbeat_ticks = 1,
                     .seed = g * 31 + n->id, .pre_vote = true, .check_quorum = true,
                     .log_ops = &raftlog_ops, .log_ctx = n->rl[g]},
            .snap = snap,
            .log = &repl_raftlog_ops,
        };
        if (repl_group_add(n->r, &o, &n->g[g]) < 0)
            abort();
        raftlog_set_notify(n->rl[g], notify, n->g[g]);
    }
}

static uint32_t ready_leaders(uint32_t groups)
{
    uint32_t n = 0;
    for (uint32_t g = 0; g < groups; g++)
        for (uint32_t k = 0; k < NODES; k++)
            n += raft_leader_ready(repl_group_raft(nodes[k].g[g]));
    return n;
}

int main(int argc, char **argv)
{
    uint32_t groups = 1000, ticks = 300;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--groups"))
            groups = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--ticks"))
            ticks = (uint32_t)strtoul(argv[i + 1], NULL, 10);
    }
    size_t heap0 = 0, rss0 = 0, heap1 = 0, rss1 = 0;
    for (uint32_t k = 0; k < NODES; k++) {
        struct node *n = &nodes[k];
        int err;
        n->id = k + 1;
        snprintf(n->dir, sizeof(n->dir), "/var/tmp/rl_replica_cost_XXXXXX");
        if (!mkdtemp(n->dir) || !(n->io = io_create(256, &err)) ||
            storage_create(n->io, 256, &n->st) < 0 || hstore_open(n->io, n->dir, &n->hs) < 0 ||
            !(n->arena = raftlog_arena_create((8u << 20) + (8u << 20))))
            abort();
        struct repl_transport t = {.send = send_frame, .ctx = (void *)(uintptr_t)n->id};
        n->r = repl_create(n->id, n->hs, &t);
        n->plog = calloc(groups, sizeof(*n->plog));
        n->rl = calloc(groups, sizeof(*n->rl));
        n->g = calloc(groups, sizeof(*n->g));
        if (!n->r || !n->plog || !n->rl || !n->g)
            abort();
        if (k == 0) {
            heap0 = heap_bytes();
            rss0 = rss_bytes();
        }
        open_groups(n, groups);
        if (k == 0) {
            heap1 = heap_bytes();
            rss1 = rss_bytes();
        }
    }
    uint32_t t = 0;
    for (; t < 5000 && ready_leaders(groups) < groups; t++) {
        turn();
        for (uint32_t k = 0; k < NODES; k++)
            io_run(nodes[k].io, 1000000);
    }
    for (uint32_t w = 0; w < 50; w++) /* settle: durability reported, heartbeats id-only */
        turn();
    uint32_t failed = 0;
    for (uint32_t k = 0; k < NODES; k++)
        for (uint32_t g = 0; g < groups; g++)
            failed += repl_group_failed(nodes[k].g[g]) != 0;
    uint32_t led = ready_leaders(groups);
    size_t heap2 = heap_bytes(), rss2 = rss_bytes();
    double c0 = cpu_s();
    for (uint32_t i = 0; i < ticks; i++)
        turn();
    double per_tick = (cpu_s() - c0) / ticks / NODES;
    printf("replica cost, %u partitions x 3 replicas on 3 brokers (plog + raftlog + raft + repl "
           "group): %u of %u groups led after %u turns, %u replicas failed\n", groups, led, groups, t,
           failed);
    printf("  memory per replica at open: %.0f bytes heap, %.0f bytes resident "
           "(struct raft %zu, driver group %zu)\n",
           (double)(heap1 - heap0) / groups, (double)(rss1 - rss0) / groups, sizeof(struct raft),
           repl_group_state_bytes());
    printf("  memory per replica once led and idle (3 brokers' growth / 3N): %.0f bytes heap, "
           "%.0f bytes resident\n", (double)(heap2 - heap0) / groups / NODES,
           (double)(rss2 - rss0) / groups / NODES);
    printf("  idle CPU: %.1f us per broker per tick = %.2f%% of a core at a %d ms tick\n",
           per_tick * 1e6, per_tick * 1e3 / TICK_MS * 100.0, TICK_MS);
    for (uint32_t k = 0; k < NODES; k++) {
        struct node *n = &nodes[k];
        repl_destroy(n->r);
        for (uint32_t g = 0; g < groups; g++) {
            raftlog_close(n->rl[g]);
            plog_delete(n->plog[g]);
        }
        storage_destroy(n->st);
        hstore_close(n->hs);
        raftlog_arena_destroy(n->arena);
        io_destroy(n->io);
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", n->dir, HSTORE_FILE);
        unlink(path);
        rmdir(n->dir);
        free(n->plog);
        free(n->rl);
        free(n->g);
    }
    for (uint32_t i = 0; i < n_nq; i++)
        free(nq[i].p);
    return 0;
}
