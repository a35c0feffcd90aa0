/* io: the io_uring back-end against real files, loopback sockets, timers and threads, and the
 * simulated back-end: power cuts, torn sectors, injected faults, a full disk, O_DIRECT rules. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/io.h"
#include "io/io_sim.h"

/* Every wait in these tests is bounded by this. */
#define TEST_DEADLINE_NS (5ull * 1000000000ull)

struct result {
    int calls;
    int res;
    int order; /* completion order stamp */
};

static int g_order;

static void record_done(struct io_op *op, int result)
{
    struct result *r = op->ctx;
    r->calls++;
    r->res = result;
    r->order = ++g_order;
}

static struct io *make_io(void)
{
    int err = 0;
    struct io *io = io_create(64, &err);
    cr_assert_not_null(io, "io_create failed: %d", err);
    return io;
}

/* Runs the ring until `r` has completed or the deadline passes. */
static void run_until(struct io *io, const struct result *r)
{
    uint64_t deadline = io_now_ns(io) + TEST_DEADLINE_NS;
    while (r->calls == 0 && io_now_ns(io) < deadline)
        cr_assert_geq(io_run(io, 100 * 1000000ull), 0);
    cr_assert_eq(r->calls, 1, "op did not complete within the deadline");
}

static int temp_file(char *path, size_t cap)
{
    snprintf(path, cap, "/tmp/rl_test_io_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    return fd;
}

/* A write, an fdatasync and a read of the same bytes complete with their byte counts. */
Test(io, write_fsync_read)
{
    struct io *io = make_io();
    char path[64];
    int fd = temp_file(path, sizeof(path));
    const char msg[] = "ringlog io layer";
    char back[sizeof(msg)] = {0};
    struct result rw = {0}, rs = {0}, rr = {0};
    struct io_op w = {.done = record_done, .ctx = &rw};
    struct io_op s = {.done = record_done, .ctx = &rs};
    struct io_op r = {.done = record_done, .ctx = &rr};

    io_prep_write(io, &w, fd, msg, sizeof(msg), 100, 0);
    cr_assert_eq(io_inflight(io), 1);
    run_until(io, &rw);
    cr_assert_eq(rw.res, (int)sizeof(msg));
    io_prep_fdatasync(io, &s, fd, 0);
    run_until(io, &rs);
    cr_assert_eq(rs.res, 0);
    io_prep_read(io, &r, fd, back, sizeof(back), 100, 0);
    run_until(io, &rr);
    cr_assert_eq(rr.res, (int)sizeof(msg));
    cr_assert_str_eq(back, msg);
    cr_assert_eq(io_inflight(io), 0);
    close(fd);
    io_destroy(io);
}

/* A vectored write linked to an fdatasync: both succeed, the sync completes after the write. */
Test(io, linked_writev_then_fsync)
{
    struct io *io = make_io();
    char path[64];
    int fd = temp_file(path, sizeof(path));
    char a[100], b[200], back[300];
    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    struct iovec iov[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
    struct result rw = {0}, rs = {0};
    struct io_op w = {.done = record_done, .ctx = &rw};
    struct io_op s = {.done = record_done, .ctx = &rs};

    io_prep_writev(io, &w, fd, iov, 2, 0, IO_LINK);
    io_prep_fdatasync(io, &s, fd, 0);
    cr_assert_geq(io_submit(io), 0);
    run_until(io, &rs);
    cr_assert_eq(rw.calls, 1);
    cr_assert_eq(rw.res, 300);
    cr_assert_eq(rs.res, 0);
    cr_assert_lt(rw.order, rs.order, "the linked sync completed before its write");
    cr_assert_eq(pread(fd, back, sizeof(back), 0), 300);
    cr_assert_eq(memcmp(back, a, 100), 0);
    cr_assert_eq(memcmp(back + 100, b, 200), 0);
    close(fd);
    io_destroy(io);
}

/* A failing op in a link chain cancels the ops after it. */
Test(io, failed_link_cancels_the_rest)
{
    struct io *io = make_io();
    char buf[16] = "x";
    struct result rw = {0}, rs = {0};
    struct io_op w = {.done = record_done, .ctx = &rw};
    struct io_op s = {.done = record_done, .ctx = &rs};
    io_prep_write(io, &w, 12345, buf, sizeof(buf), 0, IO_LINK); /* not an open descriptor */
    io_prep_fdatasync(io, &s, 12345, 0);
    run_until(io, &rs);
    cr_assert_eq(rw.res, -EBADF);
    cr_assert_eq(rs.res, -ECANCELED);
    io_destroy(io);
}

/* A timeout fires with 0 after at least its delay; a cancelled one completes with -ECANCELED. */
Test(io, timeout_and_cancel)
{
    struct io *io = make_io();
    struct result rt = {0}, rt2 = {0}, rc = {0};
    struct io_op t = {.done = record_done, .ctx = &rt};
    struct io_op t2 = {.done = record_done, .ctx = &rt2};
    struct io_op c = {.done = record_done, .ctx = &rc};

    uint64_t start = io_now_ns(io);
    io_prep_timeout(io, &t, 20 * 1000000ull, 0);
    run_until(io, &rt);
    cr_assert_eq(rt.res, 0);
    cr_assert_geq(io_now_ns(io) - start, 20 * 1000000ull, "timer fired early");

    io_prep_timeout(io, &t2, 60ull * 1000000000ull, 0);
    io_submit(io);
    io_prep_cancel(io, &c, &t2, 0);
    run_until(io, &rt2);
    run_until(io, &rc);
    cr_assert_eq(rt2.res, -ECANCELED);
    cr_assert_eq(rc.res, 0);
    cr_assert_eq(io_inflight(io), 0);
    io_destroy(io);
}

/* io_run with a timeout and nothing to do returns 0 after roughly that time, not at once. */
Test(io, run_times_out)
{
    struct io *io = make_io();
    uint64_t start = io_now_ns(io);
    cr_assert_eq(io_run(io, 30 * 1000000ull), 0);
    uint64_t took = io_now_ns(io) - start;
    cr_assert_geq(took, 25 * 1000000ull, "returned after %llu ns", (unsigned long long)took);
    cr_assert_eq(io_run(io, 0), 0);
    cr_assert_gt(io_wall_ms(io), 1600000000000ll);
    io_destroy(io);
}

struct sock_pair_state {
    struct result acc, con, snd, rcv;
};

/* accept, connect, send and recv on 127.0.0.1 move bytes end to end. */
Test(io, loopback_accept_connect_send_recv)
{
    struct io *io = make_io();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(lfd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(addr);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    cr_assert_eq(listen(lfd, 8), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&addr, &alen), 0);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    struct sock_pair_state s = {0};
    struct io_op acc = {.done = record_done, .ctx = &s.acc};
    struct io_op con = {.done = record_done, .ctx = &s.con};
    io_prep_accept(io, &acc, lfd, 0);
    io_prep_connect(io, &con, cfd, (struct sockaddr *)&addr, sizeof(addr), 0);
    run_until(io, &s.acc);
    run_until(io, &s.con);
    cr_assert_eq(s.con.res, 0);
    cr_assert_geq(s.acc.res, 0, "accept failed: %d", s.acc.res);
    int sfd = s.acc.res;
    cr_assert(fcntl(sfd, F_GETFL) & O_NONBLOCK, "accepted socket is not non-blocking");

    char out[] = "hello over loopback";
    char in[64] = {0};
    struct io_op snd = {.done = record_done, .ctx = &s.snd};
    struct io_op rcv = {.done = record_done, .ctx = &s.rcv};
    io_prep_recv(io, &rcv, sfd, in, sizeof(in), 0);
    io_prep_send(io, &snd, cfd, out, sizeof(out), 0);
    run_until(io, &s.snd);
    run_until(io, &s.rcv);
    cr_assert_eq(s.snd.res, (int)sizeof(out));
    cr_assert_eq(s.rcv.res, (int)sizeof(out));
    cr_assert_str_eq(in, out);

    /* A send to a closed peer fails with -EPIPE instead of raising SIGPIPE. */
    close(sfd);
    struct result r2 = {0};
    struct io_op snd2 = {.done = record_done, .ctx = &r2};
    int bad = 0;
    for (int i = 0; i < 50 && bad == 0; i++) {
        memset(&r2, 0, sizeof(r2));
        io_prep_send(io, &snd2, cfd, out, sizeof(out), 0);
        run_until(io, &r2);
        if (r2.res < 0)
            bad = r2.res;
    }
    cr_assert(bad == -EPIPE || bad == -ECONNRESET, "send to closed peer gave %d", bad);
    close(cfd);
    close(lfd);
    io_destroy(io);
}

/* splice moves file bytes through a pipe without user-space copies. */
Test(io, splice_file_to_pipe)
{
    struct io *io = make_io();
    char path[64];
    int fd = temp_file(path, sizeof(path));
    cr_assert_eq(pwrite(fd, "0123456789", 10, 0), 10);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct result r = {0};
    struct io_op op = {.done = record_done, .ctx = &r};
    io_prep_splice(io, &op, fd, 3, p[1], -1, 5, 0);
    run_until(io, &r);
    cr_assert_eq(r.res, 5);
    char back[8] = {0};
    cr_assert_eq(read(p[0], back, 5), 5);
    cr_assert_str_eq(back, "34567");
    close(p[0]);
    close(p[1]);
    close(fd);
    io_destroy(io);
}

struct waker {
    struct io *io;
    int delay_ms;
};

static void *wake_thread(void *arg)
{
    struct waker *w = arg;
    usleep((useconds_t)w->delay_ms * 1000); /* the delay is the thing under test, not a sync */
    io_wake(w->io);
    return NULL;
}

/* io_wake from another thread makes an io_run blocked without a timeout return. */
Test(io, wake_from_another_thread)
{
    struct io *io = make_io();
    struct waker w = {.io = io, .delay_ms = 30};
    pthread_t th;
    /* A watchdog timer bounds the wait in case the wake is lost; it must not be what ends it. */
    struct result rt = {0};
    struct io_op t = {.done = record_done, .ctx = &rt};
    io_prep_timeout(io, &t, TEST_DEADLINE_NS, 0);
    cr_assert_eq(pthread_create(&th, NULL, wake_thread, &w), 0);
    uint64_t start = io_now_ns(io);
    cr_assert_geq(io_run(io, UINT64_MAX), 0);
    uint64_t took = io_now_ns(io) - start;
    pthread_join(th, NULL);
    cr_assert_eq(rt.calls, 0, "only the watchdog ended the wait: the wake was lost");
    cr_assert_lt(took, TEST_DEADLINE_NS / 2);

    /* The wake op was re-armed: a second wake works too. */
    cr_assert_eq(pthread_create(&th, NULL, wake_thread, &w), 0);
    cr_assert_geq(io_run(io, UINT64_MAX), 0);
    pthread_join(th, NULL);
    cr_assert_eq(rt.calls, 0, "the second wake was lost");
    io_destroy(io);
}

/* More ops than the submission queue holds are all submitted and completed. */
Test(io, more_ops_than_ring_entries)
{
    int err;
    struct io *io = io_create(8, &err);
    cr_assert_not_null(io);
    enum { N = 200 };
    static struct result rs[N];
    static struct io_op ops[N];
    memset(rs, 0, sizeof(rs));
    for (int i = 0; i < N; i++) {
        ops[i] = (struct io_op){.done = record_done, .ctx = &rs[i]};
        io_prep_timeout(io, &ops[i], 1000, 0);
    }
    uint64_t deadline = io_now_ns(io) + TEST_DEADLINE_NS;
    while (io_inflight(io) > 0 && io_now_ns(io) < deadline)
        io_run(io, 10 * 1000000ull);
    for (int i = 0; i < N; i++)
        cr_assert_eq(rs[i].calls, 1, "op %d completed %d times", i, rs[i].calls);
    io_destroy(io);
}

/* A linked write+fsync prepared when the submission queue is nearly full is not split across
 * submissions: both complete, the sync after the write, and the earlier ops complete too. */
Test(io, link_chain_survives_a_nearly_full_ring)
{
    int err;
    struct io *io = io_create(8, &err);
    cr_assert_not_null(io);
    char path[64];
    int fd = temp_file(path, sizeof(path));
    struct result rt[6], rw = {0}, rs = {0};
    struct io_op t[6];
    memset(rt, 0, sizeof(rt));
    for (int i = 0; i < 6; i++) {
        t[i] = (struct io_op){.done = record_done, .ctx = &rt[i]};
        io_prep_timeout(io, &t[i], 1000, 0);
    }
    char buf[4096];
    memset(buf, 'z', sizeof(buf));
    struct io_op w = {.done = record_done, .ctx = &rw};
    struct io_op s = {.done = record_done, .ctx = &rs};
    io_prep_write(io, &w, fd, buf, sizeof(buf), 0, IO_LINK);
    io_prep_fdatasync(io, &s, fd, 0);
    run_until(io, &rs);
    cr_assert_eq(rw.calls, 1);
    cr_assert_eq(rw.res, (int)sizeof(buf));
    cr_assert_eq(rs.res, 0);
    cr_assert_lt(rw.order, rs.order);
    for (int i = 0; i < 6; i++)
        run_until(io, &rt[i]);
    close(fd);
    io_destroy(io);
}

/* io_run without a timeout blocks until something completes: it returns the timer's callback
 * (never 0 at once), and only after the timer's delay. */
Test(io, run_without_timeout_blocks_until_a_completion)
{
    struct io *io = make_io();
    struct result rt = {0};
    struct io_op t = {.done = record_done, .ctx = &rt};
    io_prep_timeout(io, &t, 50 * 1000000ull, 0);
    uint64_t start = io_now_ns(io);
    int ran = io_run(io, UINT64_MAX);
    uint64_t took = io_now_ns(io) - start;
    cr_assert_eq(ran, 1, "io_run(UINT64_MAX) returned %d without waiting", ran);
    cr_assert_eq(rt.calls, 1);
    cr_assert_geq(took, 45 * 1000000ull, "returned after %llu ns", (unsigned long long)took);
    io_destroy(io);
}

/* A completion posted by another thread runs on the owner's io_run, and wakes a blocked one. */
struct poster {
    struct io *io;
    struct io_op *op;
};

static void *post_thread(void *arg)
{
    struct poster *p = arg;
    usleep(20 * 1000); /* the delay is what is tested: io_run must be blocked by then */
    io_post(p->io, p->op, 42);
    return NULL;
}

Test(io, post_from_another_thread)
{
    struct io *io = make_io();
    struct result r = {0};
    struct io_op op = {.done = record_done, .ctx = &r};
    struct poster p = {io, &op};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, post_thread, &p), 0);
    run_until(io, &r);
    pthread_join(th, NULL);
    cr_assert_eq(r.res, 42);
    io_destroy(io);
}

/* The synchronous file calls work on real files and are counted. */
Test(io, sync_file_calls_and_counts)
{
    struct io *io = make_io();
    char dir[64] = "/tmp/rl_test_io_dir_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char a[128], b[128];
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    int fd = io_file_open(io, a, O_RDWR | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(io_file_pwrite(io, fd, "hello", 5, 10), 5);
    cr_assert_eq(io_file_fdatasync(io, fd), 0);
    uint64_t size;
    cr_assert_eq(io_file_size(io, fd, &size), 0);
    cr_assert_eq(size, 15);
    char back[8] = {0};
    cr_assert_eq(io_file_pread(io, fd, back, 8, 10), 5, "a read at the end is short");
    cr_assert_str_eq(back, "hello");
    cr_assert_eq(io_file_truncate(io, fd, 3), 0);
    cr_assert_eq(io_file_close(io, fd), 0);
    cr_assert_eq(io_path_rename(io, a, b), 0);
    cr_assert_eq(io_path_size(io, b, &size), 0);
    cr_assert_eq(size, 3);
    cr_assert_eq(io_dir_sync(io, dir), 0);
    cr_assert_eq(io_path_unlink(io, b), 0);
    cr_assert_eq(io_path_unlink(io, b), -ENOENT);
    cr_assert_eq(io_dir_remove(io, dir), 0);
    struct io_file_stats st;
    io_file_stats(io, &st);
    cr_assert_eq(st.fdatasyncs, 1);
    cr_assert_eq(st.renames, 1);
    cr_assert_eq(st.dir_syncs, 1);
    cr_assert_eq(st.truncates, 1);
    io_destroy(io);
}

/* --- the simulated back-end -------------------------------------------------------------- */

static struct io *make_sim(uint64_t seed, unsigned keep_permille)
{
    int err = 0;
    struct io_sim_config cfg = {.seed = seed, .keep_permille = keep_permille};
    struct io *io = io_create_sim(&cfg, &err);
    cr_assert_not_null(io, "io_create_sim: %d", err);
    cr_assert(io_is_sim(io));
    cr_assert_eq(io_dir_make(io, "/d", 0755), 0);
    cr_assert_eq(io_dir_sync(io, "/"), 0);
    return io;
}

static void sim_put(struct io *io, const char *path, const char *text, bool sync)
{
    int fd = io_file_open(io, path, O_RDWR | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(io_file_pwrite(io, fd, text, strlen(text), 0), (ssize_t)strlen(text));
    if (sync)
        cr_assert_eq(io_file_fdatasync(io, fd), 0);
    io_file_close(io, fd);
}

static ssize_t sim_get(struct io *io, const char *path, char *buf, size_t cap)
{
    memset(buf, 0, cap);
    int fd = io_file_open(io, path, O_RDONLY, 0);
    if (fd < 0)
        return fd;
    ssize_t n = io_file_pread(io, fd, buf, cap - 1, 0);
    io_file_close(io, fd);
    return n;
}

/* A power cut keeps what was synced (data and, after a directory sync, names) and drops what
 * was not, with keep 0; every op fails with EIO while the power is off. */
Test(io_sim, power_cut_keeps_synced_drops_unsynced)
{
    struct io *io = make_sim(1, 0);
    char buf[64];
    sim_put(io, "/d/synced", "durable bytes", true);
    cr_assert_eq(io_dir_sync(io, "/d"), 0);
    sim_put(io, "/d/synced", "DURABLE", false); /* overwritten, not synced */
    sim_put(io, "/d/unnamed", "synced data, name not synced", true);
    cr_assert_eq(sim_get(io, "/d/synced", buf, sizeof(buf)), 13);
    cr_assert_str_eq(buf, "DURABLE bytes");
    io_sim_cut_power_now(io);
    cr_assert(io_sim_powered_off(io));
    cr_assert_eq(io_file_open(io, "/d/synced", O_RDONLY, 0), -EIO);
    io_sim_restart(io);
    cr_assert_eq(sim_get(io, "/d/synced", buf, sizeof(buf)), 13);
    cr_assert_str_eq(buf, "durable bytes", "unsynced bytes survived with keep 0");
    cr_assert_eq(sim_get(io, "/d/unnamed", buf, sizeof(buf)), -ENOENT,
                 "a name never made durable survived");
    io_destroy(io);
}

/* Unsynced bytes survive sector by sector: with keep 1000 all of them, and a torn result is
 * always whole 512-byte sectors of old or new content. */
Test(io_sim, unsynced_sectors_survive_whole)
{
    for (uint64_t seed = 1; seed <= 50; seed++) {
        struct io *io = make_sim(seed, seed == 1 ? 1000 : 500);
        static uint8_t old[4096], new[4096], back[4096];
        memset(old, 'o', sizeof(old));
        memset(new, 'n', sizeof(new));
        int fd = io_file_open(io, "/d/f", O_RDWR | O_CREAT, 0644);
        cr_assert_eq(io_file_pwrite(io, fd, old, sizeof(old), 0), (ssize_t)sizeof(old));
        cr_assert_eq(io_file_fsync(io, fd), 0);
        cr_assert_eq(io_dir_sync(io, "/d"), 0);
        cr_assert_eq(io_file_pwrite(io, fd, new, sizeof(new), 0), (ssize_t)sizeof(new));
        io_sim_cut_power_now(io);
        io_sim_restart(io);
        fd = io_file_open(io, "/d/f", O_RDONLY, 0);
        cr_assert_eq(io_file_pread(io, fd, back, sizeof(back), 0), (ssize_t)sizeof(back));
        for (size_t s = 0; s < sizeof(back); s += 512) {
            cr_assert(memcmp(back + s, old, 512) == 0 || memcmp(back + s, new, 512) == 0,
                      "seed %llu: sector %zu is neither old nor new", (unsigned long long)seed,
                      s / 512);
            if (seed == 1)
                cr_assert_eq(back[s], 'n', "keep 1000 lost a sector");
        }
        io_destroy(io);
    }
}

/* A chosen op fails with a chosen error and changes nothing; a full file system refuses
 * writes with ENOSPC until space is freed. */
Test(io_sim, injected_faults_and_capacity)
{
    struct io *io = make_sim(3, 0);
    int fd = io_file_open(io, "/d/f", O_RDWR | O_CREAT, 0644);
    io_sim_fail_nth(io, IO_SIM_OP_WRITE, 2, -EIO);
    cr_assert_eq(io_file_pwrite(io, fd, "a", 1, 0), 1);
    cr_assert_eq(io_file_pwrite(io, fd, "b", 1, 1), -EIO);
    cr_assert_eq(io_file_pwrite(io, fd, "c", 1, 1), 1);
    io_sim_fail_nth(io, IO_SIM_OP_SYNC, 1, -EIO);
    cr_assert_eq(io_file_fdatasync(io, fd), -EIO);
    io_sim_fail_nth(io, IO_SIM_OP_RENAME, 1, -ENOSPC);
    cr_assert_eq(io_path_rename(io, "/d/f", "/d/g"), -ENOSPC);
    cr_assert_eq(io_sim_used_bytes(io), 4096);
    io_sim_set_capacity(io, 8192);
    static uint8_t big[8192];
    cr_assert_eq(io_file_pwrite(io, fd, big, sizeof(big), 1), -ENOSPC);
    cr_assert_eq(io_file_allocate(io, fd, 0, 16384), -ENOSPC);
    int fd2 = io_file_open(io, "/d/h", O_RDWR | O_CREAT, 0644);
    cr_assert_eq(io_file_pwrite(io, fd2, big, 4096, 0), 4096);
    cr_assert_eq(io_file_pwrite(io, fd, big, 4097, 0), -ENOSPC);
    io_file_close(io, fd2);
    cr_assert_eq(io_path_unlink(io, "/d/h"), 0);
    cr_assert_eq(io_file_pwrite(io, fd, big, sizeof(big), 0), (ssize_t)sizeof(big),
                 "space freed by an unlink was not reusable");
    io_file_close(io, fd);
    io_destroy(io);
}

/* O_DIRECT descriptors refuse unaligned I/O; async ops run inside io_run, a linked chain in
 * order; a timer jumps the simulated clock. */
Test(io_sim, direct_alignment_links_and_clock)
{
    struct io *io = make_sim(4, 0);
    int fd = io_file_open(io, "/d/f", O_RDWR | O_CREAT | O_DIRECT, 0644);
    static uint8_t buf[4096] __attribute__((aligned(4096)));
    cr_assert_eq(io_file_pwrite(io, fd, buf + 1, 512, 0), -EINVAL);
    cr_assert_eq(io_file_pwrite(io, fd, buf, 100, 0), -EINVAL);
    cr_assert_eq(io_file_pwrite(io, fd, buf, 512, 1), -EINVAL);
    cr_assert_eq(io_file_pwrite(io, fd, buf, 512, 512), 512);
    for (int round = 0; round < 20; round++) {
        struct result rw = {0}, rs = {0};
        struct io_op w = {.done = record_done, .ctx = &rw};
        struct io_op s = {.done = record_done, .ctx = &rs};
        io_prep_write(io, &w, fd, buf, 4096, 0, IO_LINK);
        io_prep_fdatasync(io, &s, fd, 0);
        cr_assert_eq(rw.calls + rs.calls, 0, "ran before io_run");
        while (rs.calls == 0)
            io_run(io, 0);
        cr_assert_eq(rw.res, 4096);
        cr_assert_lt(rw.order, rs.order);
    }
    struct result rt = {0};
    struct io_op t = {.done = record_done, .ctx = &rt};
    uint64_t start = io_now_ns(io);
    io_prep_timeout(io, &t, 3600ull * 1000000000ull, 0);
    cr_assert_eq(io_run(io, UINT64_MAX), 1);
    cr_assert_eq(rt.calls, 1);
    cr_assert_geq(io_now_ns(io) - start, 3600ull * 1000000000ull);
    io_file_close(io, fd);
    io_destroy(io);
}

/* Writes `ms` into the delay file at path (what a fault test does to slow one broker's disk). */
static void put_delay(const char *path, const char *ms)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(ms, f);
    cr_assert_eq(fclose(f), 0);
}

/* The slow-disk hook: with 80 in the file, a write + fdatasync chain completes no sooner than
 * 80 ms after submission and in order, while a timer of 1 ms is not held; after the file says 0
 * (re-read within 100 ms) a chain completes at once again. */
Test(io, fault_delay_file_slows_writes_and_fsyncs)
{
    struct io *io = make_io();
    char dpath[64], fpath[64];
    snprintf(dpath, sizeof(dpath), "/tmp/rl_test_io_delay_XXXXXX");
    int dfd = mkstemp(dpath);
    cr_assert_geq(dfd, 0);
    close(dfd);
    put_delay(dpath, "80\n");
    cr_assert_eq(io_fault_delay_file(io, dpath), 0);
    int fd = temp_file(fpath, sizeof(fpath));
    static char buf[4096];
    struct result w = {0}, s = {0}, t = {0};
    struct io_op wop = {.done = record_done, .ctx = &w}, sop = {.done = record_done, .ctx = &s};
    struct io_op top = {.done = record_done, .ctx = &t};
    uint64_t t0 = io_now_ns(io);
    io_prep_write(io, &wop, fd, buf, sizeof(buf), 0, IO_LINK);
    io_prep_fdatasync(io, &sop, fd, 0);
    io_prep_timeout(io, &top, 1000000ull, 0);
    run_until(io, &t);
    cr_assert_lt(io_now_ns(io) - t0, 70000000ull, "a timer was held like a write");
    run_until(io, &s);
    uint64_t took = io_now_ns(io) - t0;
    cr_assert_eq(w.calls, 1);
    cr_assert_eq(w.res, (int)sizeof(buf));
    cr_assert_eq(s.res, 0);
    cr_assert_lt(w.order, s.order, "completions left their order");
    cr_assert_geq(took, 80000000ull, "the chain completed after %llu ns, under the 80 ms delay",
                  (unsigned long long)took);
    cr_assert_eq(io_inflight(io), 0);

    put_delay(dpath, "0\n");
    uint64_t wait_until = io_now_ns(io) + 150000000ull; /* past the 100 ms re-read period */
    while (io_now_ns(io) < wait_until)
        io_run(io, wait_until - io_now_ns(io));
    struct result w2 = {0};
    struct io_op w2op = {.done = record_done, .ctx = &w2};
    io_prep_write(io, &w2op, fd, buf, sizeof(buf), 0, 0);
    t0 = io_now_ns(io);
    run_until(io, &w2);
    cr_assert_lt(io_now_ns(io) - t0, 60000000ull, "a delay of 0 still held the write");
    close(fd);
    unlink(dpath);
    io_destroy(io);
}
