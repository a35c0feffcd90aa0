/*
 * crash: durability of acknowledged appends across kill -9. Each round forks a child that
 * appends batches to the same log with flush policy `batch`, 16 outstanding, and reports every
 * append it was told is durable through a pipe; the parent kills it with SIGKILL after a seeded
 * random number of reports, reopens the log (recovery) and checks that every reported append is
 * there, byte for byte, in order, and that the whole log reads back as valid batches.
 * Rounds named kill_between_append_and_ack make the case exact instead of likely: the child
 * kills itself inside the append callback of a seeded append, after the log has made the
 * batch durable and before the acknowledgement leaves the process (it reports the batch as
 * "durable, not acknowledged" first). The batch must then be in the log exactly once.
 * RINGLOG_SEED=<n> replays a run; prints "N passed, N failed".
 */
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "../unit/storage_testutil.h"

#define ROUNDS 6
#define ACK_ROUNDS 3            /* kill_between_append_and_ack rounds */
#define PENDING (1ull << 63)    /* report flag: durable, acknowledgement not sent */
#define OUTSTANDING 16
#define MAX_APPENDS_PER_CHILD 200000
#define MAX_REPORTS (MAX_APPENDS_PER_CHILD)
#define ROUND_DEADLINE_S 60 /* a round whose child has not been killed by then is stalled */

struct report {
    uint64_t base;
    uint64_t tag;
};

static int g_pass, g_fail;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                               \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
            return false;                                                                      \
        }                                                                                      \
    } while (0)

/* The batch for a tag: size and record count derive from it, so the parent can rebuild it. */
static struct tu_batch batch_for(uint64_t tag)
{
    return tu_build(1 + (uint32_t)(tag % 3), 50 + (size_t)(tag * 7919 % 3000), tag,
                    (int64_t)(1000 + tag));
}

struct child_slot {
    struct tu_append a;
    struct tu_batch b;
    uint64_t tag;
    bool busy;
};

static int g_pipe_fd;
static uint64_t g_kill_at_ack, g_acks; /* kill_between_append_and_ack: die at this ack */

static void child_done(struct plog_append *req, int result)
{
    struct child_slot *s = req->ctx;
    s->busy = false;
    if (result != 0)
        _exit(3);
    if (g_kill_at_ack != 0 && ++g_acks == g_kill_at_ack) {
        /* The batch is durable (this callback runs after its fdatasync); the acknowledgement
         * would go out now. Tell the parent, then die before it does. */
        struct report p = {req->base_offset, s->tag | PENDING};
        if (write(g_pipe_fd, &p, sizeof(p)) != (ssize_t)sizeof(p))
            _exit(4);
        raise(SIGKILL);
    }
    struct report r = {req->base_offset, s->tag};
    if (write(g_pipe_fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        _exit(4);
}

static void child_main(const char *dir, int fd, uint64_t round, uint64_t kill_at_ack)
{
    g_kill_at_ack = kill_at_ack;
    int err;
    struct io *io = io_create(64, &err);
    struct storage *st;
    struct plog *log;
    struct plog_config cfg;
    g_pipe_fd = fd;
    plog_config_default(&cfg);
    cfg.segment_bytes = 256 * 1024; /* rolls happen during the run, too */
    if (io == NULL || storage_create(io, 32, &st) != 0 || plog_open(st, dir, &cfg, NULL, &log))
        _exit(2);
    static struct child_slot slots[OUTSTANDING];
    uint64_t seq = 0;
    while (seq < MAX_APPENDS_PER_CHILD) {
        for (int i = 0; i < OUTSTANDING && seq < MAX_APPENDS_PER_CHILD; i++) {
            if (slots[i].busy)
                continue;
            free(slots[i].b.data);
            slots[i].tag = round * 1000000 + seq++;
            slots[i].b = batch_for(slots[i].tag);
            slots[i].a.req = (struct plog_append){.batch = slots[i].b.data,
                                                  .len = slots[i].b.len,
                                                  .done = child_done, .ctx = &slots[i]};
            if (plog_append(log, &slots[i].a.req) != 0)
                _exit(5);
            slots[i].busy = true;
        }
        io_run(io, UINT64_MAX);
    }
    _exit(0);
}

static bool verify_round(const char *dir, const struct report *reps, size_t n, uint64_t seed,
                         int round, const struct report *pending)
{
    int err;
    struct io *io = io_create(64, &err);
    struct storage *st;
    struct plog *log;
    struct plog_config cfg;
    struct plog_recovery_report rep;
    plog_config_default(&cfg);
    cfg.segment_bytes = 256 * 1024;
    CHECK(io != NULL && storage_create(io, 32, &st) == 0, "setup");
    int rc = plog_open(st, dir, &cfg, &rep, &log);
    CHECK(rc == 0, "seed %llu round %d: reopen failed: %s", (unsigned long long)seed, round,
          rl_strerror(rc));
    static uint8_t buf[1 << 16];
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        if (i > 0 && reps[i].base <= reps[i - 1].base) {
            fprintf(stderr, "FAIL seed %llu round %d: acks out of order\n",
                    (unsigned long long)seed, round);
            ok = false;
            break;
        }
        struct tu_batch b = batch_for(reps[i].tag);
        int len = plog_read_copy(log, reps[i].base, 1, UINT64_MAX, buf, sizeof(buf));
        if (len != (int)b.len || !tu_same_batch(buf, &b, reps[i].base)) {
            fprintf(stderr,
                    "FAIL seed %llu round %d: acknowledged append %zu (offset %llu) lost or "
                    "changed (read %d bytes, want %u; log end %llu)\n",
                    (unsigned long long)seed, round, i, (unsigned long long)reps[i].base, len,
                    b.len, (unsigned long long)plog_end_offset(log));
            ok = false;
        }
        free(b.data);
    }
    if (ok && pending != NULL) {
        struct tu_batch b = batch_for(pending->tag & ~PENDING);
        int len = plog_read_copy(log, pending->base, 1, UINT64_MAX, buf, sizeof(buf));
        if (len != (int)b.len || !tu_same_batch(buf, &b, pending->base)) {
            fprintf(stderr, "FAIL seed %llu round %d: the append durable but not acknowledged "
                    "at the kill (offset %llu) is not in the log\n", (unsigned long long)seed,
                    round, (unsigned long long)pending->base);
            ok = false;
        }
        free(b.data);
    }
    /* The whole log reads back as contiguous, valid batches. */
    uint64_t off = plog_start_offset(log);
    while (ok && off < plog_end_offset(log)) {
        int len = plog_read_copy(log, off, 1, UINT64_MAX, buf, sizeof(buf));
        struct batch_header h;
        if (len <= 0 || batch_validate(buf, (size_t)len, &h) != 0 || h.base_offset != off) {
            fprintf(stderr, "FAIL seed %llu round %d: bad batch at offset %llu\n",
                    (unsigned long long)seed, round, (unsigned long long)off);
            ok = false;
            break;
        }
        off += h.last_offset_delta + 1;
    }
    printf("round %d: %zu acknowledged appends verified; log end %llu, %u segments, "
           "recovery scanned %llu bytes, cut %llu\n",
           round, n, (unsigned long long)plog_end_offset(log), plog_segment_count(log),
           (unsigned long long)rep.bytes_scanned, (unsigned long long)rep.bytes_truncated);
    plog_close(log);
    storage_destroy(st);
    io_destroy(io);
    return ok;
}

static bool run_round(const char *dir, uint64_t seed, uint64_t *state, int round,
                      bool at_ack)
{
    int p[2];
    CHECK(pipe(p) == 0, "pipe");
    size_t kill_after = 1 + (size_t)(tu_rand(state) % 1500);
    uint64_t kill_at_ack = at_ack ? kill_after : 0;
    if (at_ack)
        kill_after = SIZE_MAX; /* the child kills itself */
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        close(p[0]);
        child_main(dir, p[1], (uint64_t)round + 1, kill_at_ack);
    }
    close(p[1]);
    static struct report reps[MAX_REPORTS];
    size_t n = 0, got = 0;
    uint8_t *raw = (uint8_t *)reps;
    bool killed = false, stalled = false;
    time_t deadline = time(NULL) + ROUND_DEADLINE_S;
    /* Bounded: the child stops after MAX_APPENDS_PER_CHILD and the pipe then hits EOF; a child
     * that stops reporting is killed at the deadline so the round fails instead of hanging. */
    for (;;) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        if (poll(&pfd, 1, 1000) <= 0) {
            if (time(NULL) < deadline)
                continue;
            kill(pid, SIGKILL);
            stalled = true;
            break;
        }
        ssize_t r = read(p[0], raw + got, sizeof(reps) - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        n = got / sizeof(struct report);
        if (!killed && n >= kill_after) {
            kill(pid, SIGKILL);
            killed = true;
        }
    }
    close(p[0]);
    int status;
    waitpid(pid, &status, 0);
    CHECK(!stalled, "seed %llu round %d: child neither reported %zu appends nor ended within "
          "%d s (a hung append?); replay with RINGLOG_SEED=%llu", (unsigned long long)seed,
          round, kill_after, ROUND_DEADLINE_S, (unsigned long long)seed);
    if (at_ack) {
        CHECK(n >= 1 && (reps[n - 1].tag & PENDING) && WIFSIGNALED(status) &&
                  WTERMSIG(status) == SIGKILL,
              "seed %llu round %d: the child was to die between a durable append and its "
              "acknowledgement (ack %llu) but did not (%zu reports, status %d)",
              (unsigned long long)seed, round, (unsigned long long)kill_at_ack, n, status);
        printf("round %d (kill_between_append_and_ack): killed after the append at offset %llu "
               "became durable, before its acknowledgement (ack %llu)\n", round,
               (unsigned long long)reps[n - 1].base, (unsigned long long)kill_at_ack);
        return verify_round(dir, reps, n - 1, seed, round, &reps[n - 1]);
    }
    CHECK(killed && WIFSIGNALED(status), "seed %llu round %d: child ended by itself (status %d)",
          (unsigned long long)seed, round, status);
    printf("round %d: killed after %zu reports (asked %zu)\n", round, n, kill_after);
    return verify_round(dir, reps, n, seed, round, NULL);
}

int main(void)
{
    const char *s = getenv("RINGLOG_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
    uint64_t state = seed;
    char dir[256];
    printf("crash: seed %llu (replay with RINGLOG_SEED=%llu)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    tu_mkdtemp_real(dir, sizeof(dir), "crash");
    for (int round = 0; round < ROUNDS + ACK_ROUNDS; round++) {
        if (run_round(dir, seed, &state, round, round >= ROUNDS))
            g_pass++;
        else
            g_fail++;
    }
    tu_rm_rf_real(dir);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail == 0 ? 0 : 1;
}
