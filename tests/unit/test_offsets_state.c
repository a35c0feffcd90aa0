/*
 * test_offsets_state: committed offsets across restarts, damage and power cuts, with the
 * coordinator (broker/delivery/coordinator.c) on the broker's metadata and partitions over the
 * simulated back-end of io/ (tests/unit/broker_sim.h).
 *
 *  - damaged_ranges_skipped: bytes flipped in a sealed segment and in the active segment of
 *    __consumer_offsets; the broker starts, reports and skips the damaged batches, and every
 *    other commit comes back.
 *  - snapshot_bounds_replay: thousands of commits roll the offsets log; snapshots are taken,
 *    the log start moves up, and a restart replays only the tail after the snapshot, with
 *    every group's latest commit back (also an idle group's, committed once long before).
 *  - damaged_snapshot_falls_back: the newest snapshot file damaged; the older one and the log
 *    after it still give every commit.
 *  - retention_expires_empty_groups: offsets.retention.minutes (30 s here, on the simulated
 *    clock): nothing expires within the grace after a start, a standalone commit expires
 *    once retention has passed since it was made, a group's commits are kept however old while
 *    it has members and expire retention after it emptied;
 *    expiry writes tombstones, so neither a restart (replay) nor a snapshot brings them back.
 *  - power_cuts: seeded cuts while commits and snapshots run; every acknowledged commit (or a
 *    later one of the same key) is back after the restart. RINGLOG_SEED replays a run.
 */
#include <fcntl.h>

#include "broker_sim.h"
#include "broker/svc/svc.h"
#include "common/arena.h"
#include "common/log.h"
#include "storage/checkpoint.h"
#include "tests/lib/tl_seed.h"

static struct broker b;

/* --- a commit through the coordinator, as a request would make it ----------------------------- */

struct creq {
    struct svc_req r;
    struct creq *next_abandoned;
    struct arena arena;
    struct coord_commit cm;
    struct coord_commit_item it;
    bool completed, answered;
};

static void host_complete(struct svc_req *r)
{
    ((struct creq *)r)->completed = true;
}

static void host_charge(struct svc_req *r, uint64_t bytes)
{
    (void)r;
    (void)bytes;
}

static bool host_yes(const struct svc_req *r, uint64_t bytes)
{
    (void)r;
    (void)bytes;
    return true;
}

static bool host_may_wait(const struct svc_req *r)
{
    (void)r;
    return true;
}

static const char *host_peer(const struct svc_req *r)
{
    (void)r;
    return "";
}

static struct creq *abandoned; /* commits left unanswered by a power cut */

static const struct svc_host host = {host_complete, host_charge, host_yes, host_may_wait,
                                     host_peer};

static void commit_answered(struct svc_req *r, struct coord_commit *cm)
{
    (void)cm;
    ((struct creq *)r)->answered = true;
}

/* Starts a commit of (group, "x", 0) at `offset` by member (standalone: "", -1); run the loop
 * until q->answered. */
static void commit_start_as(struct creq *q, const char *group, const char *member, int32_t gen,
                            int64_t offset)
{
    memset(q, 0, sizeof(*q));
    arena_init(&q->arena, 4096, 1 << 20);
    q->r = (struct svc_req){.host = &host, .arena = &q->arena, .io = b.io};
    q->it = (struct coord_commit_item){.topic = "x", .partition = 0, .offset = offset,
                                       .metadata = ""};
    q->cm = (struct coord_commit){.group_id = group, .member_id = member, .generation = gen,
                                  .items = &q->it, .n_items = 1, .done = commit_answered};
    coord_commit(b.coord, &q->r, &q->cm);
}

static void commit_start(struct creq *q, const char *group, int64_t offset)
{
    commit_start_as(q, group, "", -1, offset);
}

/* Runs the loop until q is answered; returns the item's code. After a power cut some I/O
 * never completes (the machine is off): a commit not answered soon after is not acknowledged
 * (-EIO), as a client would see its connection die. */
static int commit_wait(struct creq *q)
{
    int off_turns = 0;
    for (int i = 0; !q->answered && i < LOOP_GUARD && off_turns < 200; i++) {
        if (q->completed) {
            q->completed = false;
            q->r.finish(&q->r);
            continue;
        }
        loop_once(&b);
        off_turns += io_sim_powered_off(b.io);
    }
    if (!q->answered && io_sim_powered_off(b.io)) {
        /* The append may still hold it: kept until the broker is closed. */
        q->next_abandoned = abandoned;
        abandoned = q;
        return -EIO;
    }
    cr_assert(q->answered, "the commit was never answered");
    int rc = q->cm.rc ? q->cm.rc : q->it.rc;
    arena_destroy(&q->arena);
    return rc;
}

static int commit(const char *group, int64_t offset)
{
    struct creq *q = malloc(sizeof(*q));
    cr_assert_not_null(q);
    commit_start(q, group, offset);
    int rc = commit_wait(q);
    if (abandoned != q)
        free(q);
    return rc;
}

/* After broker_close: nothing refers to abandoned commits any more. */
static void free_abandoned(void)
{
    while (abandoned) {
        struct creq *q = abandoned;
        abandoned = q->next_abandoned;
        arena_destroy(&q->arena);
        free(q);
    }
}

/* The committed offset of (group, "x", 0), or -1. */
static int64_t committed(const char *group)
{
    struct offsets_commit oc;
    return coord_offset_get(b.coord, group, "x", 0, &oc) == 0 ? oc.offset : -1;
}

static int64_t start_retention_ms; /* offsets retention of the next start (0: none) */

static void start(uint64_t seed, const char *segment_bytes)
{
    struct io_sim_config sc = {.seed = seed, .wall_start_ms = NOW_MS};
    int err = 0;
    memset(&b, 0, sizeof(b));
    b.segment_bytes = segment_bytes;
    b.offsets_retention_ms = start_retention_ms;
    b.io = io_create_sim(&sc, &err);
    cr_assert_not_null(b.io);
    cr_assert_eq(io_dir_make(b.io, DATA_DIR, 0755), 0);
    cr_assert_eq(io_dir_sync(b.io, "/"), 0);
    cr_assert_eq(broker_open(&b), 0);
    struct meta_config cfg = {"flush.policy", "batch"};
    struct meta_topic_spec spec = {.name = "x", .partitions = 1, .n_configs = 1,
                                   .configs = &cfg};
    struct prop p = {.pr = {.done = prop_done}};
    meta_propose_create(b.m, &p.pr, &spec);
    for (int i = 0; !p.done && i < LOOP_GUARD; i++)
        loop_once(&b);
    cr_assert(p.done && p.pr.rc == 0, "topic x not created");
}

static void free_abandoned(void);

static void restart(void)
{
    broker_close(&b);
    free_abandoned();
    int rc = broker_open(&b);
    cr_assert_eq(rc, 0, "the broker did not start again: %s", rl_strerror(rc));
}

static void finish(void)
{
    broker_close(&b);
    free_abandoned();
    io_destroy(b.io);
}

static struct coord_stats stats(void)
{
    struct coord_stats cs;
    coord_get_stats(b.coord, &cs);
    return cs;
}

static struct partition *offsets_part(void)
{
    int err = 0;
    struct partition *p = meta_partition(b.m, OFFSETS_TOPIC, 0, &err);
    cr_assert_not_null(p);
    return p;
}

static void quiet(void)
{
    if (!getenv("RINGLOG_TEST_VERBOSE"))
        rl_log_set_level(RL_LOG_OFF);
}

TestSuite(offsets_state, .init = quiet, .timeout = 120);

/* Flips one byte at `pos` of a file of the simulated disk. */
static void flip(const char *path, uint64_t pos)
{
    int fd = io_file_open(b.io, path, O_RDWR, 0);
    cr_assert_geq(fd, 0, "%s: %s", path, rl_strerror(fd));
    uint8_t c;
    cr_assert_eq(io_file_pread(b.io, fd, &c, 1, pos), 1);
    c ^= 0x5a;
    cr_assert_eq(io_file_pwrite(b.io, fd, &c, 1, pos), 1);
    cr_assert_eq(io_file_fdatasync(b.io, fd), 0);
    io_file_close(b.io, fd);
}

struct seglist {
    char names[64][64];
    int n;
};

static int seg_entry(void *ctx, const char *name)
{
    struct seglist *l = ctx;
    size_t len = strlen(name);
    if (len > 4 && strcmp(name + len - 4, ".log") == 0 && l->n < 64)
        snprintf(l->names[l->n++], sizeof(l->names[0]), "%s", name);
    return 0;
}

static int name_cmp(const void *a, const void *c)
{
    return strcmp(a, c);
}

/* A byte flipped in the middle of the first (sealed) segment and of the last (active) one:
 * start-up reports and skips the damaged batches instead of refusing to start, and the
 * commits of every other group come back. */
Test(offsets_state, damaged_ranges_skipped)
{
    start(11, "4096");
    enum { GROUPS = 120 };
    char g[GROUPS][16];
    for (int i = 0; i < GROUPS; i++) {
        snprintf(g[i], sizeof(g[i]), "g%03d", i);
        cr_assert_eq(commit(g[i], 1000 + i), 0);
    }
    restart(); /* a clean stop: sealed segments are trusted, the active one verified */
    struct seglist l = {.n = 0};
    char dir[64];
    snprintf(dir, sizeof(dir), DATA_DIR "/%s-0", OFFSETS_TOPIC);
    cr_assert_eq(io_dir_list(b.io, dir, seg_entry, &l), 0);
    cr_assert_geq(l.n, 3, "the offsets log did not roll (%d segments)", l.n);
    qsort(l.names, (size_t)l.n, sizeof(l.names[0]), name_cmp);
    broker_close(&b);
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", dir, l.names[0]);
    flip(path, 700);
    snprintf(path, sizeof(path), "%s/%s", dir, l.names[l.n - 1]);
    uint64_t size = 0;
    cr_assert_eq(io_path_size(b.io, path, &size), 0);
    flip(path, 100);
    int rc = broker_open(&b);
    cr_assert_eq(rc, 0, "one damaged commit stopped the broker from starting: %s",
                 rl_strerror(rc));
    struct coord_stats cs = stats();
    cr_assert_geq(cs.replay_damaged, 2, "damage was not reported (%llu)",
                  (unsigned long long)cs.replay_damaged);
    int back = 0;
    for (int i = 0; i < GROUPS; i++)
        back += committed(g[i]) == 1000 + i;
    cr_assert_geq(back, GROUPS - 8, "only %d of %d commits came back", back, GROUPS);
    cr_assert_lt(back, GROUPS, "no commit was damaged: the test flipped nothing that counts");
    /* The group whose commit was the last one of the log is after every damage. */
    cr_assert_eq(committed(g[GROUPS - 1]), 1000 + GROUPS - 1);
    cr_assert_eq(commit("after", 7), 0);
    finish();
}

/* Runs the coordinator's upkeep as if `ms` had passed since the commits. */
static void tick_after(int64_t ms)
{
    coord_tick(b.coord, io_wall_ms(b.io) + ms);
    bg_reap(b.bg);
}

/* Commits n rounds over ten groups: group i gets base + round. */
static void commit_rounds(int64_t base, int n)
{
    for (int round = 0; round < n; round++)
        for (int i = 0; i < 10; i++) {
            char g[16];
            snprintf(g, sizeof(g), "busy%d", i);
            cr_assert_eq(commit(g, base + round), 0);
        }
}

static void check_busy(int64_t last)
{
    for (int i = 0; i < 10; i++) {
        char g[16];
        snprintf(g, sizeof(g), "busy%d", i);
        cr_assert_eq(committed(g), last, "group %s: %lld, not %lld", g,
                     (long long)committed(g), (long long)last);
    }
}

/* Commits in three phases with a snapshot after the first two: the second snapshot moves the
 * log start up to the first one's offset (segments go), and a restart replays only the third
 * phase; every group's latest commit is back, the idle group's too (its only commit is long
 * gone from the log). */
Test(offsets_state, snapshot_bounds_replay)
{
    start(12, "4096");
    cr_assert_eq(commit("idle", 5), 0);
    commit_rounds(0, 100);               /* 1,000 commits */
    tick_after(COORD_SNAPSHOT_INTERVAL_MS);
    cr_assert_eq(stats().snapshots, 1);
    uint64_t first_next = partition_visible_end(offsets_part());
    commit_rounds(1000, 100);
    tick_after(COORD_SNAPSHOT_INTERVAL_MS);
    cr_assert_eq(stats().snapshots, 2);
    uint64_t log_start = partition_start_offset(offsets_part());
    cr_assert(log_start > 0 && log_start <= first_next, "the log start is %llu, not in (0, "
              "%llu]", (unsigned long long)log_start, (unsigned long long)first_next);
    commit_rounds(2000, 20);             /* 200 commits after the last snapshot */
    restart();
    struct coord_stats cs = stats();
    cr_assert_leq(cs.replayed_records, 200, "start-up replayed %llu records, not the 200 after "
                  "the snapshot", (unsigned long long)cs.replayed_records);
    check_busy(2019);
    cr_assert_eq(committed("idle"), 5, "the idle group's commit was lost");
    finish();
}

/* The newest snapshot file damaged: start-up reports it, takes the older one and replays the
 * log from there (the log start never passes the older one), and every commit is back. */
Test(offsets_state, damaged_snapshot_falls_back)
{
    start(13, "4096");
    cr_assert_eq(commit("idle", 5), 0);
    commit_rounds(0, 50);
    tick_after(COORD_SNAPSHOT_INTERVAL_MS);
    commit_rounds(1000, 50);
    cr_assert_eq(commit("mid", 9), 0); /* only between the two snapshots */
    tick_after(COORD_SNAPSHOT_INTERVAL_MS);
    cr_assert_eq(stats().snapshots, 2);
    commit_rounds(2000, 5);
    broker_close(&b);
    flip(DATA_DIR "/" OFFSETS_TOPIC "-0/" COORD_SNAPSHOT_NAME ".1", 40);
    cr_assert_eq(broker_open(&b), 0);
    check_busy(2004);
    cr_assert_eq(committed("idle"), 5);
    cr_assert_eq(committed("mid"), 9, "the log no longer held what the older snapshot lacks");
    cr_assert_gt(stats().replayed_records, 5, "the damaged snapshot was used");
    finish();
}

/* --- retention -------------------------------------------------------------------------------- */

static void join_done(struct svc_req *r, struct coord_join *j)
{
    (void)j;
    ((struct creq *)r)->answered = true;
}

/* Joins `group` as its only member (server-side assignment of x); fills member (copied) and
 * *gen. */
static void join_alone(const char *group, char *member, size_t cap, int32_t *gen)
{
    struct creq q;
    memset(&q, 0, sizeof(q));
    arena_init(&q.arena, 4096, 1 << 20);
    q.r = (struct svc_req){.host = &host, .arena = &q.arena, .io = b.io};
    static const char *const topics[] = {"x"};
    static const char *const assignors[] = {"range"};
    struct coord_join j = {.group_id = group, .member_id = "", .client_id = "t",
                           .session_timeout_ms = 60000, .topics = topics, .n_topics = 1,
                           .assignors = assignors, .n_assignors = 1, .done = join_done};
    coord_join(b.coord, &q.r, &j);
    for (int i = 0; !q.answered && i < LOOP_GUARD; i++) {
        if (q.completed) {
            q.completed = false;
            q.r.finish(&q.r);
            continue;
        }
        coord_tick(b.coord, io_wall_ms(b.io));
        loop_once(&b);
    }
    cr_assert(q.answered && j.rc == 0, "join of %s: %d %s", group, j.rc, j.msg ? j.msg : "");
    snprintf(member, cap, "%s", j.member_id_out);
    *gen = j.generation;
    arena_destroy(&q.arena);
}

/* A member commit of (group, "x", 0). */
static int member_commit(const char *group, const char *member, int32_t gen, int64_t offset)
{
    struct creq *q = malloc(sizeof(*q));
    cr_assert_not_null(q);
    commit_start_as(q, group, member, gen, offset);
    int rc = commit_wait(q);
    free(q);
    return rc;
}

/* Runs the coordinator's upkeep at wall time `at` (members heartbeat first when live), then the
 * loop until `expired` commits have expired in all, and checks that no more did. */
static void tick_at(int64_t at, uint64_t expired)
{
    coord_tick(b.coord, at);
    bg_reap(b.bg); /* a snapshot it started */
    for (int i = 0; stats().offsets_expired < expired && i < LOOP_GUARD; i++)
        loop_once(&b);
    for (int i = 0; i < 50; i++) /* and any expiry not expected has time to complete */
        loop_once(&b);
    cr_assert_eq(stats().offsets_expired, expired, "at +%lld ms: %llu commits expired, not "
                 "%llu", (long long)(at - NOW_MS), (unsigned long long)stats().offsets_expired,
                 (unsigned long long)expired);
}

Test(offsets_state, retention_expires_empty_groups)
{
    start_retention_ms = 30000; /* shorter than the start's grace (the 60 s session timeout) */
    start(21, NULL);
    int64_t t0 = io_wall_ms(b.io);
    cr_assert_eq(commit("standalone", 5), 0);
    char member[128];
    int32_t gen;
    join_alone("live", member, sizeof(member), &gen);
    cr_assert_eq(member_commit("live", member, gen, 9), 0);
    char msg[256];
    /* Within the first minute after start nothing is judged (members rejoin first), though
     * the standalone commit is past retention at +50 s. */
    cr_assert_eq(coord_heartbeat(b.coord, "live", member, gen, t0 + 50000, msg, sizeof(msg)), 0,
                 "%s", msg);
    tick_at(t0 + 50000, 0);
    /* Past retention: the standalone commit goes, the live group's (as old) stays. */
    cr_assert_eq(coord_heartbeat(b.coord, "live", member, gen, t0 + 70000, msg, sizeof(msg)), 0,
                 "%s", msg);
    tick_at(t0 + 70000, 1);
    cr_assert_eq(committed("standalone"), -1, "an expired commit is still served");
    cr_assert_eq(committed("live"), 9, "a live group's commit expired");
    /* The group empties at +70.5 s (between two checks): its commit lives until +100.5 s. */
    cr_assert_eq(coord_leave(b.coord, "live", member, t0 + 70500, msg, sizeof(msg)), 0, "%s",
                 msg);
    tick_at(t0 + 70500, 1);
    tick_at(t0 + 100200, 1);
    cr_assert_eq(committed("live"), 9, "expired before retention passed since it emptied");
    cr_assert_geq(stats().snapshots, 2, "no snapshot was taken after the expiry");
    restart(); /* the in-memory activity goes: commit times and a new start's grace */
    cr_assert_eq(committed("standalone"), -1, "a restart brought an expired commit back");
    cr_assert_eq(committed("live"), 9);
    int64_t t1 = t0 + 100200;
    tick_at(t1 + 1000, 1); /* the restart's grace over, the group gone since: expires */
    cr_assert_eq(committed("live"), -1, "an empty group's commit outlived retention");
    /* No snapshot since: the replay meets the tombstone. (The standalone commit's expiry was
     * taken into a snapshot before the first restart.) */
    restart();
    cr_assert_eq(committed("standalone"), -1, "a restart brought an expired commit back");
    cr_assert_eq(committed("live"), -1, "a restart brought an expired commit back");
    cr_assert_eq(stats().committed_offsets, 0);
    cr_assert_eq(commit("standalone", 6), 0); /* a new commit of an expired key is kept */
    restart();
    cr_assert_eq(committed("standalone"), 6);
    start_retention_ms = 0;
    finish();
}

/* Seeded power cuts while commits and snapshots run: after the restart every group has its
 * last acknowledged commit or a later attempted one, never an older one, and commits go on. */
Test(offsets_state, power_cuts)
{
    uint64_t seed = tl_seed("offsets_state.power_cuts");
    for (uint64_t i = 0; i < 60; i++) {
        uint64_t rng = tl_rand_init(seed, i);
        start(tl_rand(&rng), "4096");
        int64_t acked[4] = {-1, -1, -1, -1}, tried[4] = {-1, -1, -1, -1};
        io_sim_cut_power_at(b.io, io_sim_mutations(b.io) + 1 + tl_rand(&rng) % 400);
        for (int k = 0; k < 300 && !io_sim_powered_off(b.io); k++) {
            int gi = (int)(tl_rand(&rng) % 4);
            char g[16];
            snprintf(g, sizeof(g), "p%d", gi);
            tried[gi] = k;
            if (commit(g, k) == 0)
                acked[gi] = k;
            if (tl_rand(&rng) % 40 == 0)
                tick_after(COORD_SNAPSHOT_INTERVAL_MS);
        }
        io_sim_cut_power_now(b.io);
        broker_close(&b);
        free_abandoned();
        io_sim_restart(b.io);
        int rc = broker_open(&b);
        cr_assert_eq(rc, 0, "seed %llu #%llu: no start after the cut: %s",
                     (unsigned long long)seed, (unsigned long long)i, rl_strerror(rc));
        for (int gi = 0; gi < 4; gi++) {
            char g[16];
            snprintf(g, sizeof(g), "p%d", gi);
            int64_t got = committed(g);
            cr_assert(got >= acked[gi] && got <= tried[gi], "seed %llu #%llu: group %s has "
                      "%lld; acknowledged %lld, last tried %lld", (unsigned long long)seed,
                      (unsigned long long)i, g, (long long)got, (long long)acked[gi],
                      (long long)tried[gi]);
        }
        cr_assert_eq(commit("p0", 1000), 0, "seed %llu #%llu: commit after the restart",
                     (unsigned long long)seed, (unsigned long long)i);
        finish();
    }
}
