/*
 * test_broker_diskfull: a real ringlogd whose data directory is on a small tmpfs runs out of
 * space (issue 9, item 11). Produce is answered DISK_FULL with a message saying what to do,
 * /v1/status says "disk_full" and ringlog_disk_full_logs counts the waiting log, reads go on,
 * and once space is freed (a ballast file removed, nothing done to the broker) appends resume
 * by themselves; every acknowledged record is there, also after a restart.
 *
 * sigterm_while_waiting_for_space: SIGTERM while an append waits for space ends within the
 * shutdown bound, well before shutdown.timeout.ms: the waiting append is answered with an error
 * that says it was not stored, the broker exits 0, and a restart holds every acknowledged record.
 *
 * The tmpfs is mounted in a private mount namespace of the test process (the broker it starts
 * inherits it), so nothing outside the test sees it; without the privileges for that the test
 * says "skipped".
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_fixture.h"

#define SMALL_FS_BYTES (12u << 20)
#define BALLAST_BYTES (3u << 20)

static struct tl_broker broker;
static struct tl_conn conn;
static char mnt[128];
static bool mounted;

static void teardown(void)
{
    tl_fixture_finish(&broker, &conn);
    if (mounted)
        umount2(mnt, MNT_DETACH);
    if (mnt[0])
        rmdir(mnt);
}

TestSuite(diskfull, .fini = teardown, .timeout = 120);

/* A private tmpfs of SMALL_FS_BYTES at mnt, or a skip. */
static void mount_small_fs(void)
{
    snprintf(mnt, sizeof(mnt), "/tmp/ringlog-diskfull-XXXXXX");
    cr_assert_not_null(mkdtemp(mnt));
    char opts[64];
    snprintf(opts, sizeof(opts), "size=%u", SMALL_FS_BYTES);
    if (unshare(CLONE_NEWNS) || mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
        mount("tmpfs", mnt, "tmpfs", 0, opts)) {
        int e = errno;
        rmdir(mnt);
        mnt[0] = 0;
        /* tests/run-tests.sh counts the skip (from Criterion's TAP report), so a machine
         * that cannot mount (a chroot, no CAP_SYS_ADMIN) shows a skip, not a suite that ran
         * nothing. */
        cr_skip_test("skipped: cannot mount a private tmpfs (%s); needs CAP_SYS_ADMIN",
                     strerror(e));
    }
    mounted = true;
}

static void write_ballast(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    static uint8_t buf[1 << 16];
    memset(buf, 0xab, sizeof(buf));
    for (uint32_t off = 0; off < BALLAST_BYTES; off += sizeof(buf))
        cr_assert_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    close(fd);
}

/* The answer to a produce sent on c: the partition's code, its message into msg; -ETIMEDOUT
 * when none came within timeout_ms. */
static int produce_answer(struct tl_conn *c, uint32_t timeout_ms, char *msg, size_t cap)
{
    Ringlog__Response *resp;
    int rc = tl_recv(c, timeout_ms, &resp, NULL, NULL);
    if (rc == -ETIMEDOUT)
        return rc;
    cr_assert_eq(rc, 0, "%s", rl_strerror(rc));
    if (resp->error_code) {
        snprintf(msg, cap, "%s", resp->error_message);
        return resp->error_code;
    }
    Ringlog__ProducePartitionResult *p = resp->produce->topics[0]->partitions[0];
    snprintf(msg, cap, "%s", p->error_message ? p->error_message : "");
    return p->error_code;
}

/* One produce (acks=1) on c; as produce_answer. */
static int produce_on(struct tl_conn *c, const uint8_t *b, uint32_t len, uint32_t timeout_ms,
                      char *msg, size_t cap)
{
    cr_assert_geq(tl_send_produce(c, "t", 0, b, len, 1), 0);
    return produce_answer(c, timeout_ms, msg, cap);
}

static void status(char *body, size_t cap)
{
    int st = tl_http_get(broker.host, broker.http_port, "/v1/status", body, cap, 5000);
    cr_assert_eq(st, 200);
}

Test(diskfull, reported_and_resumed)
{
    mount_small_fs();
    char ballast[200], data[200];
    snprintf(ballast, sizeof(ballast), "%s/ballast", mnt);
    snprintf(data, sizeof(data), "%s/data", mnt);
    write_ballast(ballast);
    const char *args[] = {"--data-dir", data, NULL};
    tl_fixture_start(&broker, &conn, args);
    static const char *const cfg[] = {"segment.bytes=1048576", NULL};
    cr_assert_eq(tl_create_topic(&conn, "t", 1, cfg, NULL, 0), 0);

    uint8_t *b;
    int len = tl_make_batch_sized(4, 60 * 1024, &b); /* ~240 KiB, 4 records */
    cr_assert_gt(len, 0);
    char msg[512];
    int64_t acked = 0;
    int last = 0;
    /* Until the disk fills: the append that finds no space is kept and waits for it (no
     * answer yet: acknowledging means durable), and the next ones are refused. */
    bool parked = false;
    for (int i = 0; i < 200 && last == 0; i++) {
        last = produce_on(&conn, b, (uint32_t)len, 3000, msg, sizeof(msg));
        if (last == 0)
            acked += 4;
    }
    struct tl_conn other;
    cr_assert_eq(tl_connect(&other, broker.host, broker.port, 5000), 0);
    if (last == -ETIMEDOUT) {
        parked = true;
        last = produce_on(&other, b, (uint32_t)len, 5000, msg, sizeof(msg));
    }
    cr_assert_eq(last, RL_E_DISK_FULL, "after %lld records: %d (%s) %s", (long long)acked, last,
                 rl_error_name(last), msg);
    cr_assert_not_null(strstr(msg, "no space left on device"), "%s", msg);
    cr_assert_not_null(strstr(msg, "resume"), "the message does not say what happens: %s", msg);
    fprintf(stderr, "disk full after %lld acknowledged records: %s\n", (long long)acked, msg);

    char body[4096];
    status(body, sizeof(body));
    cr_assert_not_null(strstr(body, "\"status\":\"disk_full\""), "%s", body);
    cr_assert_geq(tl_metric(&broker, "ringlog_disk_full_logs"), 1);
    /* Reads go on. */
    struct tl_fetch f = {.topic = "t", .offset = 0, .max_bytes = 1 << 20};
    struct tl_fetch_result fr;
    cr_assert_eq(tl_fetch(&other, &f, &fr), 0);
    cr_assert_gt(fr.records, 0);

    /* Space comes back; the broker is not touched. The kept append is acknowledged, and new
     * ones are taken again. */
    cr_assert_eq(unlink(ballast), 0);
    if (parked) {
        int rcw = produce_answer(&conn, 20000, msg, sizeof(msg));
        cr_assert_eq(rcw, 0, "the append kept while the disk was full: %d %s", rcw, msg);
        acked += 4;
    }
    int rcp = -1;
    for (uint64_t until = tl_now_ms() + 30000; tl_now_ms() < until && rcp != 0;) {
        rcp = produce_on(&other, b, (uint32_t)len, 10000, msg, sizeof(msg));
        if (rcp == 0)
            acked += 4;
        else
            tl_pace(200);
    }
    tl_close(&other);
    cr_assert_eq(rcp, 0, "appends did not resume after space was freed: %s", msg);
    for (uint64_t until = tl_now_ms() + 10000; tl_now_ms() < until;) {
        status(body, sizeof(body));
        if (strstr(body, "\"status\":\"serving\""))
            break;
        tl_pace(100);
    }
    cr_assert_not_null(strstr(body, "\"status\":\"serving\""), "%s", body);
    cr_assert_eq(tl_metric(&broker, "ringlog_disk_full_logs"), 0);
    free(b);

    /* Every acknowledged record, also after a restart. */
    int64_t end = -1;
    cr_assert_eq(tl_list_offset(&conn, "t", 0, -1, &end), 0);
    cr_assert_eq(end, acked, "log end %lld, acknowledged %lld", (long long)end,
                 (long long)acked);
    cr_assert_eq(tl_broker_stop(&broker, SIGTERM, 20000), 0);
    cr_assert_eq(tl_broker_restart(&broker, 20000), 0);
    tl_close(&conn);
    cr_assert_eq(tl_connect(&conn, broker.host, broker.port, 5000), 0);
    cr_assert_eq(tl_list_offset(&conn, "t", 0, -1, &end), 0);
    cr_assert_eq(end, acked, "after restart: log end %lld, acknowledged %lld", (long long)end,
                 (long long)acked);
}

/* Produces ~240 KiB batches on c until one is not answered within 3 s (it waits for space) or is
 * refused; returns the records acknowledged, *parked tells which. */
static int64_t fill_disk(struct tl_conn *c, const uint8_t *b, uint32_t len, bool *parked)
{
    char msg[512];
    int64_t acked = 0;
    int last = 0;
    for (int i = 0; i < 200 && last == 0; i++) {
        last = produce_on(c, b, len, 3000, msg, sizeof(msg));
        if (last == 0)
            acked += 4;
    }
    *parked = last == -ETIMEDOUT;
    cr_assert(last == -ETIMEDOUT || last == RL_E_DISK_FULL, "after %lld records: %d (%s) %s",
              (long long)acked, last, rl_error_name(last), msg);
    return acked;
}

Test(diskfull, sigterm_while_waiting_for_space)
{
    mount_small_fs();
    char ballast[200], data[200];
    snprintf(ballast, sizeof(ballast), "%s/ballast", mnt);
    snprintf(data, sizeof(data), "%s/data", mnt);
    write_ballast(ballast);
    /* A long shutdown bound: the waiting append must not need it. */
    const char *args[] = {"--data-dir", data, "--set", "shutdown.timeout.ms=60000", NULL};
    tl_fixture_start(&broker, &conn, args);
    static const char *const cfg[] = {"segment.bytes=1048576", NULL};
    cr_assert_eq(tl_create_topic(&conn, "t", 1, cfg, NULL, 0), 0);
    uint8_t *b;
    int len = tl_make_batch_sized(4, 60 * 1024, &b);
    cr_assert_gt(len, 0);
    bool parked = false;
    int64_t acked = fill_disk(&conn, b, (uint32_t)len, &parked);
    free(b);
    cr_assert(parked, "no append waited for space (each was refused at once)");

    uint64_t t0 = tl_now_ms();
    cr_assert_eq(kill(broker.pid, SIGTERM), 0);
    char msg[512] = "";
    int answer = produce_answer(&conn, 10000, msg, sizeof(msg));
    cr_assert_neq(answer, -ETIMEDOUT, "the waiting append got no answer at SIGTERM");
    cr_assert_neq(answer, 0, "an append that never reached the disk was acknowledged");
    cr_assert_not_null(strstr(msg, "without being stored"), "unclear answer %d (%s): %s", answer,
                       rl_error_name(answer), msg);
    int st = tl_broker_stop(&broker, SIGTERM, 10000);
    uint64_t took = tl_now_ms() - t0;
    cr_assert_eq(st, 0, "exit status %d", st);
    cr_assert_lt(took, 10000, "the stop took %llu ms", (unsigned long long)took);
    fprintf(stderr, "stopped in %llu ms while disk full; the waiting append got %s: %s\n",
            (unsigned long long)took, rl_error_name(answer), msg);

    cr_assert_eq(unlink(ballast), 0);
    cr_assert_eq(tl_broker_restart(&broker, 20000), 0);
    tl_close(&conn);
    cr_assert_eq(tl_connect(&conn, broker.host, broker.port, 5000), 0);
    int64_t end = -1;
    cr_assert_eq(tl_list_offset(&conn, "t", 0, -1, &end), 0);
    cr_assert_eq(end, acked, "after restart: log end %lld, acknowledged %lld", (long long)end,
                 (long long)acked);
}
