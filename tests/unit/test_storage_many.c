/* storage many: 10,000 partition logs open at once in a process limited to 256 descriptors
 * (RLIMIT_NOFILE), with a 64-descriptor segment cache: appends, reads, close and reopen all
 * work, and the cache never holds more than its bound. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <sys/resource.h>

#include "storage/plog_debug.h"
#include "storage_testutil.h"

#define NLOGS 10000
#define MAX_OPEN 64
#define FD_LIMIT 256

static unsigned count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    unsigned n = 0;
    if (d == NULL)
        return 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static void cb_done(struct plog_append *req, int result)
{
    int *acked = req->ctx;
    cr_assert_eq(result, 0, "append failed: %s", rl_strerror(result));
    (*acked)++;
}

/* 10,000 logs: one batch appended to each, all read back, closed and reopened, under a low
 * descriptor limit. Metadata-heavy, so it runs on tmpfs when available (fsync is then free);
 * the bound under test is the descriptor count, not the disk. */
Test(many, ten_thousand_logs_low_fd_limit, .timeout = 240)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = FD_LIMIT;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    int err;
    struct io *io = io_create(256, &err);
    struct storage *st;
    cr_assert_eq(storage_create(io, MAX_OPEN, &st), 0);
    char root[256];
    struct stat sb;
    if (getenv("RINGLOG_TEST_DIR") == NULL && stat("/dev/shm", &sb) == 0)
        setenv("RINGLOG_TEST_DIR", "/dev/shm", 1);
    tu_mkdtemp(io, root, sizeof(root), "many");

    static struct plog *logs[NLOGS];
    static struct plog_append reqs[NLOGS];
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.segment_bytes = 16 * 1024;
    struct tu_batch b = tu_build(2, 200, 1, 1000);
    int acked = 0;
    unsigned max_fds = 0;
    char dir[400];
    for (int i = 0; i < NLOGS; i++) {
        snprintf(dir, sizeof(dir), "%s/topic-%d", root, i);
        int rc = plog_open(st, dir, &cfg, NULL, &logs[i]);
        cr_assert_eq(rc, 0, "open log %d: %s", i, rl_strerror(rc));
        reqs[i] = (struct plog_append){.batch = b.data, .len = b.len, .done = cb_done,
                                       .ctx = &acked};
        rc = plog_append(logs[i], &reqs[i]);
        for (int tries = 0; rc == RL_E_FULL && tries < 1000; tries++) {
            io_run(io, 10 * 1000000ull);
            rc = plog_append(logs[i], &reqs[i]);
        }
        cr_assert_eq(rc, 0, "append to log %d: %s", i, rl_strerror(rc));
        if (i % 64 == 0) {
            io_run(io, 0);
            unsigned n = count_fds();
            max_fds = n > max_fds ? n : max_fds;
            cr_assert_leq(storage_debug_open_files(st), MAX_OPEN);
        }
    }
    cr_assert(tu_run_until(io, &acked, NLOGS), "%d of %d appends acknowledged", acked, NLOGS);
    uint8_t buf[4096];
    for (int i = 0; i < NLOGS; i++) {
        int n = plog_read_copy(logs[i], 0, 4096, UINT64_MAX, buf, sizeof(buf));
        cr_assert_eq(n, (int)b.len, "read log %d: %s", i, rl_strerror(n));
        cr_assert(tu_same_batch(buf, &b, 0));
        cr_assert_leq(storage_debug_open_files(st), MAX_OPEN);
    }
    for (int i = 0; i < NLOGS; i++)
        plog_close(logs[i]);
    for (int i = 0; i < NLOGS; i++) {
        struct plog_recovery_report rep;
        snprintf(dir, sizeof(dir), "%s/topic-%d", root, i);
        cr_assert_eq(plog_open(st, dir, &cfg, &rep, &logs[i]), 0);
        cr_assert(rep.clean);
        cr_assert_eq(plog_end_offset(logs[i]), 2);
    }
    printf("many: %d logs, at most %u descriptors in the process, cache bound %d\n", NLOGS,
           max_fds, MAX_OPEN);
    storage_destroy(st); /* closes the 10,000 reopened logs */
    io_destroy(io);
    tu_rm_rf_real(root);
    free(b.data);
}
