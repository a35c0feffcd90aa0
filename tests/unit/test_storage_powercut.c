/*
 * powercut: seeded power cuts against the partition log on the simulated back-end of io/.
 * Each seed runs a random workload (appends with several outstanding, rolls of small segments,
 * retention, advance_start, truncate_to, clean restarts through the storage-wide record) with
 * flush policy `batch`, and turns the power off just before a seeded file operation (a write, a
 * sync, a rename, a truncate, a create, a remove). The disk comes back as a real one would (what
 * was synced survives; of the rest, a seeded subset of 512-byte sectors and a seeded prefix of
 * the directory operations), the storage is opened again, and the log must be a prefix of what
 * was written (every batch byte for byte at its offset, nothing invented), hold every
 * acknowledged append at or past its start exactly once, report no damage (a power cut is not
 * corruption), and take appends again.
 *
 * RINGLOG_POWERCUT_SEEDS=N runs seeds 1..N (default 5000, about 5 s; `make test-powercut
 * POWERCUT_SEEDS=100000` runs more), RINGLOG_POWERCUT_SEED=S runs seed S alone and tells what
 * it does. Every failure prints its seed and the command that replays it. Prints
 * "N passed, N failed".
 */
#include <stdarg.h>

#include "common/log.h"
#include "io/io_sim.h"
#include "storage/plog_debug.h"
#include "storage_testutil.h"

#define MAX_BATCHES 4096   /* appends per seed, at most */
#define MAX_STEPS 300
#define OUTSTANDING 8
#define STATE_DIR "/pc"
#define LOG_DIR "/pc/log"

struct entry {
    uint64_t offset; /* base offset */
    uint64_t tag;    /* what was written there (tu_build's tag) */
    uint32_t records;
    bool acked;
};

/* What the log must hold: the batches in offset order as written, truncations applied. */
struct history {
    struct entry e[MAX_BATCHES];
    uint32_t n;
};

struct run {
    uint64_t seed, rng;
    bool verbose;
    struct io *io;
    struct storage *st;
    struct plog *log;
    struct plog_config cfg;
    struct history h;       /* the log as it must be */
    struct history pre;     /* the log before a truncation the cut interrupted */
    bool pre_valid;
    uint64_t trunc_point;   /* where that truncation cut: acked entries past it may go */
    uint64_t max_start;     /* the furthest the log start got */
    uint64_t next_tag;
    struct slot {
        struct plog_append req;
        struct tu_batch b;
        struct run *r;
        uint64_t tag;
        uint32_t idx;       /* index in h.e */
        bool busy;
    } slots[OUTSTANDING];
    char why[512];
};

static uint64_t rnd(struct run *r, uint64_t n)
{
    return n ? tu_rand(&r->rng) % n : 0;
}

static void say(struct run *r, const char *fmt, ...)
{
    if (!r->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static bool fail(struct run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
    return false;
}

/* The batch a tag stands for: size and record count derive from it. */
static struct tu_batch batch_for(uint64_t tag)
{
    return tu_build(1 + (uint32_t)(tag % 3), 40 + (size_t)(tag * 2654435761u % 1800), tag,
                    (int64_t)(1000 + tag));
}

static void append_done(struct plog_append *req, int result)
{
    struct slot *s = req->ctx;
    s->busy = false;
    if (result != 0)
        return;
    struct run *r = s->r;
    /* The entry may have been truncated away meanwhile; only a live one counts. */
    if (s->idx < r->h.n && r->h.e[s->idx].offset == req->base_offset &&
        r->h.e[s->idx].tag == s->tag)
        r->h.e[s->idx].acked = true;
}

static void append_some(struct run *r)
{
    int k = 1 + (int)rnd(r, 4);
    for (int i = 0; i < OUTSTANDING && k > 0 && r->h.n < MAX_BATCHES; i++) {
        struct slot *s = &r->slots[i];
        if (s->busy)
            continue;
        free(s->b.data);
        uint64_t tag = r->next_tag++;
        s->b = batch_for(tag);
        s->r = r;
        s->req = (struct plog_append){.batch = s->b.data, .len = s->b.len, .done = append_done,
                                      .ctx = s};
        int rc = plog_append(r->log, &s->req);
        if (rc != 0)
            return; /* a full buffer or a failed log: try later (or the power is off) */
        s->busy = true;
        s->tag = tag;
        s->idx = r->h.n;
        r->h.e[r->h.n++] = (struct entry){s->req.base_offset, tag, s->b.records, false};
        k--;
    }
}

/* A batch boundary at or past the log start, or the end. */
static uint64_t some_boundary(struct run *r)
{
    uint64_t start = plog_start_offset(r->log);
    uint32_t first = 0;
    while (first < r->h.n && r->h.e[first].offset < start)
        first++;
    if (first >= r->h.n)
        return plog_end_offset(r->log);
    return r->h.e[first + rnd(r, r->h.n - first)].offset;
}

static void truncate_history(struct history *h, uint64_t offset)
{
    while (h->n > 0 && h->e[h->n - 1].offset >= offset)
        h->n--;
}

static int reopen(struct run *r)
{
    struct storage_options opt = {.max_open_files = 16, .state_dir = STATE_DIR};
    int rc = storage_open(r->io, &opt, &r->st);
    if (rc == 0) {
        rc = plog_open(r->st, LOG_DIR, &r->cfg, NULL, &r->log);
        if (rc < 0) {
            storage_destroy(r->st);
            r->st = NULL;
        }
    } else {
        r->st = NULL;
    }
    return rc;
}

static void teardown(struct run *r)
{
    if (r->st != NULL)
        storage_destroy(r->st); /* closes the log */
    r->st = NULL;
    r->log = NULL;
}

/* One step of the workload; false when the power went off. */
static bool step(struct run *r)
{
    uint64_t x = rnd(r, 100);
    if (x < 70) {
        append_some(r);
    } else if (x < 78) {
        int64_t now = io_wall_ms(r->io);
        say(r, "retention: %d segments deleted", plog_enforce_retention(r->log, now));
    } else if (x < 82) {
        uint64_t b = some_boundary(r);
        say(r, "advance_start %llu", (unsigned long long)b);
        plog_advance_start(r->log, b);
    } else if (x < 87) {
        uint64_t b = some_boundary(r);
        r->pre = r->h;
        int rc = plog_truncate_to(r->log, b);
        say(r, "truncate_to %llu: %s", (unsigned long long)b, rl_strerror(rc));
        if (rc == 0) {
            truncate_history(&r->h, b);
        } else if (io_sim_powered_off(r->io)) {
            r->pre_valid = true; /* the log is cut somewhere between the two */
            r->trunc_point = b;
            truncate_history(&r->h, b);
        }
    } else if (x < 90) {
        say(r, "clean restart");
        teardown(r);
        if (io_sim_powered_off(r->io) || reopen(r) != 0)
            return false;
    } else {
        io_sim_advance(r->io, rnd(r, 2000) * 1000000ull);
    }
    if (r->log != NULL) {
        uint64_t s = plog_start_offset(r->log);
        if (s > r->max_start)
            r->max_start = s;
    }
    io_run(r->io, rnd(r, 3) == 0 ? 1000000ull : 0);
    return !io_sim_powered_off(r->io);
}

/* Checks the log as recovered against the history h: a prefix of it, holding every
 * acknowledged entry below must_until. */
static bool check_against(struct run *r, const struct history *h, uint64_t must_until)
{
    static uint8_t buf[1 << 16];
    uint64_t start = plog_start_offset(r->log), end = plog_end_offset(r->log);
    if (start > r->max_start && start > 0)
        return fail(r, "log start %llu is past any start it had (%llu)",
                    (unsigned long long)start, (unsigned long long)r->max_start);
    uint64_t off = start;
    uint32_t i = 0;
    while (i < h->n && h->e[i].offset + h->e[i].records <= start)
        i++;
    for (; i < h->n && off < end; i++) {
        const struct entry *e = &h->e[i];
        if (e->offset != off && !(e->offset < off && off < e->offset + e->records))
            return fail(r, "offset %llu: the log has a batch where the history has %llu",
                        (unsigned long long)off, (unsigned long long)e->offset);
        int len = plog_read_copy(r->log, off, 1, UINT64_MAX, buf, sizeof(buf));
        struct tu_batch b = batch_for(e->tag);
        bool same = len == (int)b.len && tu_same_batch(buf, &b, e->offset);
        free(b.data);
        if (!same)
            return fail(r, "offset %llu: batch differs from what was written (read %d: %s)",
                        (unsigned long long)off, len, len < 0 ? rl_strerror(len) : "bytes");
        off = e->offset + e->records;
    }
    if (off != end)
        return fail(r, "the log ends at %llu, past what was written (%llu)",
                    (unsigned long long)end, (unsigned long long)off);
    for (; i < h->n; i++)
        if (h->e[i].acked && h->e[i].offset < must_until)
            return fail(r, "acknowledged append at offset %llu (tag %llu) lost; log end %llu",
                        (unsigned long long)h->e[i].offset, (unsigned long long)h->e[i].tag,
                        (unsigned long long)end);
    return true;
}

static int dump_one(void *ctx, const char *name)
{
    struct run *r = ctx;
    char path[256];
    snprintf(path, sizeof(path), LOG_DIR "/%s", name);
    say(r, "  %s: %lld bytes", name, (long long)tu_file_size(r->io, path));
    return 0;
}

static bool verify(struct run *r)
{
    if (r->verbose) {
        say(r, "files after the cut:");
        io_dir_list(r->io, LOG_DIR, dump_one, r);
        for (uint32_t i = 0; i < r->h.n; i++)
            say(r, "  history: offset %llu +%u%s", (unsigned long long)r->h.e[i].offset,
                r->h.e[i].records, r->h.e[i].acked ? " acked" : "");
        for (uint32_t i = 0; r->pre_valid && i < r->pre.n; i++)
            say(r, "  before the truncation: offset %llu +%u%s",
                (unsigned long long)r->pre.e[i].offset, r->pre.e[i].records,
                r->pre.e[i].acked ? " acked" : "");
    }
    int rc = reopen(r);
    if (rc != 0)
        return fail(r, "reopen after the power cut failed: %s", rl_strerror(rc));
    if (plog_damaged_ranges(r->log) != 0)
        return fail(r, "the power cut was reported as %u damaged ranges",
                    plog_damaged_ranges(r->log));
    bool ok = check_against(r, &r->h, UINT64_MAX);
    if (!ok && r->pre_valid) {
        char first[512], second[512];
        snprintf(first, sizeof(first), "%s", r->why);
        ok = check_against(r, &r->pre, r->trunc_point);
        snprintf(second, sizeof(second), "%s", r->why);
        if (!ok)
            return fail(r, "%s (and against the log before the interrupted truncation: %s)",
                        first, second);
    }
    if (!ok)
        return false;
    /* The log takes appends again, at its end. */
    struct tu_batch b = batch_for(r->next_tag);
    uint64_t base = 0, end = plog_end_offset(r->log);
    rc = tu_append_wait(r->io, r->log, &b, &base);
    free(b.data);
    if (rc != 0 || base != end)
        return fail(r, "append after recovery: %s at %llu (end %llu)", rl_strerror(rc),
                    (unsigned long long)base, (unsigned long long)end);
    return true;
}

static bool run_seed(uint64_t seed, bool verbose, char *why, size_t cap)
{
    static struct run r;
    for (int i = 0; i < OUTSTANDING; i++)
        free(r.slots[i].b.data);
    memset(&r, 0, sizeof(r));
    r.seed = seed;
    r.rng = seed * 0x9e3779b97f4a7c15ull + 7;
    r.verbose = verbose;
    struct io_sim_config sc = {.seed = seed,
                               .keep_permille = (unsigned)rnd(&r, 1001),
                               .delay_permille = (unsigned)rnd(&r, 400)};
    int err;
    r.io = io_create_sim(&sc, &err);
    plog_config_default(&r.cfg);
    r.cfg.segment_bytes = 4096 + rnd(&r, 4) * 4096;
    r.cfg.index_interval_bytes = 256 + (uint32_t)rnd(&r, 1024);
    r.cfg.retention_bytes = rnd(&r, 2) ? (int64_t)(16384 + rnd(&r, 32768)) : -1;
    r.cfg.retention_ms = -1;
    r.next_tag = seed * 100000;
    io_dir_make(r.io, STATE_DIR, 0755);
    bool ok = reopen(&r) == 0;
    if (!ok)
        fail(&r, "first open failed");
    uint64_t cut = 1 + rnd(&r, 800);
    io_sim_cut_power_at(r.io, io_sim_mutations(r.io) + cut);
    say(&r, "seed %llu: cut before file operation %llu from now, keep %u/1000 of unsynced "
        "sectors, segment %llu bytes", (unsigned long long)seed, (unsigned long long)cut,
        sc.keep_permille, (unsigned long long)r.cfg.segment_bytes);
    for (int i = 0; ok && i < MAX_STEPS && step(&r); i++)
        ;
    if (ok && !io_sim_powered_off(r.io))
        io_sim_cut_power_now(r.io); /* the workload ended first: cut at its end */
    say(&r, "power off after %llu file operations; %u batches written",
        (unsigned long long)io_sim_mutations(r.io), r.h.n);
    teardown(&r);
    io_sim_restart(r.io);
    if (ok)
        ok = verify(&r);
    teardown(&r);
    io_destroy(r.io);
    snprintf(why, cap, "%s", r.why);
    return ok;
}

int main(void)
{
    const char *one = getenv("RINGLOG_POWERCUT_SEED");
    const char *n_env = getenv("RINGLOG_POWERCUT_SEEDS");
    uint64_t first = 1, last = n_env ? strtoull(n_env, NULL, 0) : 5000;
    if (one != NULL)
        first = last = strtoull(one, NULL, 0);
    rl_log_set_level(one != NULL ? RL_LOG_INFO : RL_LOG_OFF);
    int pass = 0, failed = 0;
    char why[512];
    for (uint64_t seed = first; seed <= last; seed++) {
        if (run_seed(seed, one != NULL, why, sizeof(why))) {
            pass++;
            continue;
        }
        failed++;
        printf("FAIL powercut seed %llu: %s\n  replay: RINGLOG_POWERCUT_SEED=%llu "
               "build/tests/unit/test_storage_powercut\n", (unsigned long long)seed, why,
               (unsigned long long)seed);
        if (failed >= 20) {
            printf("(stopping after 20 failures)\n");
            break;
        }
    }
    printf("powercut: %llu seeds from %llu\n", (unsigned long long)(last - first + 1),
           (unsigned long long)first);
    printf("%d passed, %d failed\n", pass, failed);
    return failed == 0 ? 0 : 1;
}
