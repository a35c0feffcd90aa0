/*
 * test_broker_guard: the broker's guards against operators' and clients' mistakes, each against
 * real ringlogd processes:
 *   - a second ringlogd on a data directory in use refuses to start, names the holder's pid and
 *     changes no byte of the directory (issue 9, item 1);
 *   - internal topics (__consumer_offsets) cannot be created, deleted, reconfigured or produced
 *     to by clients, and committed offsets survive the attempts and a restart (item 12);
 *   - the broker and libringlog agree on the partitions a topic may have: one more is refused
 *     with a message naming the limit, and a topic at the limit is usable from libringlog
 *     (item 15).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/ringlog.h"
#include "common/err.h"
#include "proto/frame.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_fixture.h"

static struct tl_broker broker;
static struct tl_conn conn;

static void setup(void)
{
    tl_fixture_start(&broker, &conn, NULL);
}

static void teardown(void)
{
    tl_fixture_finish(&broker, &conn);
}

TestSuite(guard, .init = setup, .fini = teardown, .timeout = 120);

/* --- the data-directory lock ------------------------------------------------------------------ */

/* A digest of every file under a directory: names, sizes and contents (FNV-1a). */
static uint64_t dir_digest;
static size_t dir_files;

static int digest_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type != FTW_F)
        return 0;
    for (const char *p = path; *p; p++)
        dir_digest = (dir_digest ^ (uint8_t)*p) * 0x100000001b3ull;
    dir_digest = (dir_digest ^ (uint64_t)st->st_size) * 0x100000001b3ull;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    uint8_t buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        for (ssize_t i = 0; i < n; i++)
            dir_digest = (dir_digest ^ buf[i]) * 0x100000001b3ull;
    close(fd);
    dir_files++;
    return 0;
}

static uint64_t digest_dir(const char *dir)
{
    dir_digest = 0xcbf29ce484222325ull;
    dir_files = 0;
    cr_assert_eq(nftw(dir, digest_one, 16, FTW_PHYS), 0);
    return dir_digest;
}

/* Runs a second ringlogd on `data_dir` (ephemeral ports, no HTTP), its output to out_path; waits
 * up to timeout_ms for it to exit. Returns its exit status, or -1 when it was still running at
 * the deadline (it is then killed: it started where it must not). */
static int run_second(const char *data_dir, const char *out_path, uint32_t timeout_ms)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(tl_ringlogd_path(), tl_ringlogd_path(), "--data-dir", data_dir, "--listen",
              "127.0.0.1:0", "--http", "off", (char *)NULL);
        _exit(127);
    }
    for (uint64_t until = tl_now_ms() + timeout_ms; tl_now_ms() < until;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        struct timespec ts = {0, 10 * 1000000L}; /* polling pace */
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static char *slurp(const char *path)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    return buf;
}

static void produce_n(const char *topic, uint32_t batches, uint32_t per_batch)
{
    for (uint32_t i = 0; i < batches; i++) {
        uint8_t *b;
        int len = tl_make_batch(per_batch, "rec-", &b);
        cr_assert_gt(len, 0);
        cr_assert_eq(tl_produce(&conn, topic, 0, b, (uint32_t)len, 1, NULL), 0);
        free(b);
    }
}

/* A second ringlogd on the running broker's data directory exits with status 1 before opening
 * any log, naming the pid that holds the directory; not one byte under the directory changes,
 * and every record the first broker acknowledged, before and after, is there after a restart. */
Test(guard, second_broker_on_data_dir_refuses)
{
    cr_assert_eq(tl_create_topic(&conn, "held", 1, NULL, NULL, 0), 0);
    produce_n("held", 20, 10);
    uint64_t before = digest_dir(broker.data_dir);
    size_t files = dir_files;
    cr_assert_geq(files, 2, "the data directory holds the metadata and a log");
    char out[400];
    snprintf(out, sizeof(out), "%s/second.out", broker.dir);
    int st = run_second(broker.data_dir, out, 15000);
    const char *text = slurp(out);
    cr_assert_eq(st, 1, "the second ringlogd %s (status %d); its output:\n%s",
                 st < 0 ? "kept running on a directory in use" : "exited unexpectedly", st,
                 text);
    char want[64];
    snprintf(want, sizeof(want), "pid %d", (int)broker.pid);
    cr_assert_not_null(strstr(text, want), "the refusal does not name %s:\n%s", want, text);
    cr_assert_not_null(strstr(text, "in use"), "%s", text);
    cr_assert_eq(digest_dir(broker.data_dir), before, "the refused broker changed the data "
                 "directory");
    cr_assert_eq(dir_files, files);
    /* The first broker goes on; everything it acknowledged survives a restart. */
    produce_n("held", 5, 10);
    cr_assert_eq(tl_broker_stop(&broker, SIGTERM, 20000), 0);
    cr_assert_eq(tl_broker_restart(&broker, 20000), 0);
    tl_close(&conn);
    cr_assert_eq(tl_connect(&conn, broker.host, broker.port, 5000), 0);
    int64_t end = -1;
    cr_assert_eq(tl_list_offset(&conn, "held", 0, -1, &end), 0);
    cr_assert_eq(end, 250, "log end %lld after restart, want 250", (long long)end);
    /* After the holder stops, the directory is free again (the lock dies with its process). */
    tl_broker_kill(&broker);
    st = run_second(broker.data_dir, out, 2000);
    cr_assert_eq(st, -1, "a ringlogd could not take over a directory whose holder died:\n%s",
                 slurp(out));
}

/* --- internal topics -------------------------------------------------------------------------- */

static Ringlog__Response *call(Ringlog__Request *req)
{
    Ringlog__Response *resp;
    int rc = tl_call(&conn, req, NULL, 0, 10000, &resp, NULL, NULL);
    cr_assert_eq(rc, 0, "transport: %s", rl_strerror(rc));
    return resp;
}

static int commit(const char *group, const char *topic, int64_t offset)
{
    Ringlog__OffsetCommitPartition p = RINGLOG__OFFSET_COMMIT_PARTITION__INIT;
    p.offset = offset;
    p.metadata = (char *)"";
    Ringlog__OffsetCommitPartition *ps[1] = {&p};
    Ringlog__OffsetCommitTopic t = RINGLOG__OFFSET_COMMIT_TOPIC__INIT;
    t.name = (char *)topic;
    t.n_partitions = 1;
    t.partitions = ps;
    Ringlog__OffsetCommitTopic *ts[1] = {&t};
    Ringlog__OffsetCommitRequest oc = RINGLOG__OFFSET_COMMIT_REQUEST__INIT;
    oc.group_id = (char *)group;
    oc.member_id = (char *)"";
    oc.generation = -1;
    oc.n_topics = 1;
    oc.topics = ts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_OFFSET_COMMIT;
    req.offset_commit = &oc;
    Ringlog__Response *resp = call(&req);
    if (resp->error_code)
        return resp->error_code;
    return resp->offset_commit->topics[0]->partitions[0]->error_code;
}

static int fetch_committed(const char *group, const char *topic, int64_t *offset)
{
    uint32_t parts[1] = {0};
    Ringlog__OffsetFetchTopic t = RINGLOG__OFFSET_FETCH_TOPIC__INIT;
    t.name = (char *)topic;
    t.n_partitions = 1;
    t.partitions = parts;
    Ringlog__OffsetFetchTopic *ts[1] = {&t};
    Ringlog__OffsetFetchRequest of = RINGLOG__OFFSET_FETCH_REQUEST__INIT;
    of.group_id = (char *)group;
    of.n_topics = 1;
    of.topics = ts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_OFFSET_FETCH;
    req.offset_fetch = &of;
    Ringlog__Response *resp = call(&req);
    if (resp->error_code)
        return resp->error_code;
    Ringlog__OffsetFetchPartitionResult *p = resp->offset_fetch->topics[0]->partitions[0];
    *offset = p->offset;
    return p->error_code;
}

/* One AlterConfigs of one key; returns the topic's code, message into msg. */
static int alter(const char *topic, const char *key, const char *value, char *msg, size_t cap)
{
    Ringlog__ConfigEntry e = RINGLOG__CONFIG_ENTRY__INIT;
    e.key = (char *)key;
    e.value = (char *)value;
    Ringlog__ConfigEntry *es[1] = {&e};
    Ringlog__TopicConfigs tc = RINGLOG__TOPIC_CONFIGS__INIT;
    tc.name = (char *)topic;
    tc.n_configs = 1;
    tc.configs = es;
    Ringlog__TopicConfigs *tcs[1] = {&tc};
    Ringlog__AlterConfigsRequest ac = RINGLOG__ALTER_CONFIGS_REQUEST__INIT;
    ac.n_topics = 1;
    ac.topics = tcs;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_ALTER_CONFIGS;
    req.alter_configs = &ac;
    Ringlog__Response *resp = call(&req);
    if (resp->error_code)
        return resp->error_code;
    Ringlog__TopicResult *tr = resp->alter_configs->topics[0];
    snprintf(msg, cap, "%s", tr->error_message ? tr->error_message : "");
    return tr->error_code;
}

/* Deleting, reconfiguring, producing to or creating __consumer_offsets is refused with
 * INTERNAL_TOPIC and a message naming the topic; the group's committed offset is still there,
 * also after a restart. */
Test(guard, internal_topics_are_protected)
{
    const char *ot = "__consumer_offsets";
    char msg[512];
    cr_assert_eq(tl_create_topic(&conn, ot, 3, NULL, msg, sizeof(msg)), RL_E_INTERNAL_TOPIC,
                 "a client created %s", ot);
    cr_assert_not_null(strstr(msg, ot), "%s", msg);
    cr_assert_eq(tl_create_topic(&conn, "t", 1, NULL, NULL, 0), 0);
    cr_assert_eq(commit("g1", "t", 7), 0);
    int64_t off = -1;
    cr_assert_eq(fetch_committed("g1", "t", &off), 0);
    cr_assert_eq(off, 7);

    cr_assert_eq(tl_delete_topic(&conn, ot), RL_E_INTERNAL_TOPIC, "%s was deleted", ot);
    cr_assert_eq(alter(ot, "retention.ms", "1", msg, sizeof(msg)), RL_E_INTERNAL_TOPIC);
    cr_assert_not_null(strstr(msg, "internal"), "%s", msg);
    cr_assert_eq(alter(ot, "flush.policy", "none", msg, sizeof(msg)), RL_E_INTERNAL_TOPIC);
    uint8_t *b;
    int len = tl_make_batch(2, "x", &b);
    cr_assert_eq(tl_produce(&conn, ot, 0, b, (uint32_t)len, 1, NULL), RL_E_INTERNAL_TOPIC);
    free(b);
    /* An ordinary topic is deleted as before. */
    cr_assert_eq(tl_create_topic(&conn, "plain", 1, NULL, NULL, 0), 0);
    cr_assert_eq(tl_delete_topic(&conn, "plain"), 0);

    cr_assert_eq(tl_broker_stop(&broker, SIGTERM, 20000), 0);
    cr_assert_eq(tl_broker_restart(&broker, 20000), 0);
    tl_close(&conn);
    cr_assert_eq(tl_connect(&conn, broker.host, broker.port, 5000), 0);
    off = -1;
    cr_assert_eq(fetch_committed("g1", "t", &off), 0);
    cr_assert_eq(off, 7, "group g1's commit was lost");
}

/* --- partition limits ------------------------------------------------------------------------- */

static int delivered, failed;

static void on_delivery(void *ctx, const struct rl_delivery *d)
{
    (void)ctx;
    if (d->error == 0)
        delivered++;
    else
        failed++;
}

/* A topic of FRAME_MAX_PARTITIONS_PER_TOPIC + 1 partitions is refused with a message naming
 * the limit; one of exactly the limit is created and libringlog produces to its last
 * partition (before, the broker took 100,000 and the client then refused the metadata). */
Test(guard, partition_limit_shared_with_client, .timeout = 240)
{
    char msg[512];
    static const char *const cfg[] = {"segment.bytes=1048576", NULL};
    int max = FRAME_MAX_PARTITIONS_PER_TOPIC;
    cr_assert_eq(tl_create_topic(&conn, "wide", max + 1, cfg, msg, sizeof(msg)),
                 RL_E_INVALID_PARTITIONS, "the broker created a topic the client cannot use");
    char want[32];
    snprintf(want, sizeof(want), "%d", max);
    cr_assert_not_null(strstr(msg, want), "the refusal does not name the limit: %s", msg);
    /* Creating thousands of partitions takes longer than tl_create_topic waits. */
    Ringlog__ConfigEntry e = RINGLOG__CONFIG_ENTRY__INIT;
    e.key = (char *)"segment.bytes";
    e.value = (char *)"1048576";
    Ringlog__ConfigEntry *es[1] = {&e};
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = (char *)"wide";
    spec.partitions = max;
    spec.n_configs = 1;
    spec.configs = es;
    Ringlog__TopicSpec *specs[1] = {&spec};
    Ringlog__CreateTopicsRequest ct = RINGLOG__CREATE_TOPICS_REQUEST__INIT;
    ct.n_topics = 1;
    ct.topics = specs;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_CREATE_TOPICS;
    req.create_topics = &ct;
    Ringlog__Response *resp;
    uint64_t t0 = tl_now_ms();
    cr_assert_eq(tl_call(&conn, &req, NULL, 0, 180000, &resp, NULL, NULL), 0);
    cr_assert_eq(resp->error_code, 0, "%s", resp->error_message);
    cr_assert_eq(resp->create_topics->topics[0]->error_code, 0, "%s",
                 resp->create_topics->topics[0]->error_message);
    fprintf(stderr, "created %d partitions in %llu ms\n", max,
            (unsigned long long)(tl_now_ms() - t0));

    struct rl_conf *c = rl_conf_new();
    char addr[128], err[256];
    snprintf(addr, sizeof(addr), "%s:%u", broker.host, broker.port);
    cr_assert_eq(rl_conf_set(c, "bootstrap.servers", addr, err, sizeof(err)), 0, "%s", err);
    rl_conf_set_delivery_cb(c, on_delivery, NULL);
    struct rl_producer *p = rl_producer_new(c, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    int rc = rl_producer_send(p, "wide", max - 1, "k", 1, "v", 1, 0, NULL);
    cr_assert_eq(rc, 0, "libringlog refused a topic the broker made: %s",
                 rl_producer_last_error(p));
    cr_assert_eq(rl_producer_flush(p, 30000), 0, "%s", rl_producer_last_error(p));
    cr_assert_eq(delivered, 1);
    cr_assert_eq(failed, 0);
    rl_producer_destroy(p, 10000);
    rl_conf_destroy(c);
    int64_t end = -1;
    cr_assert_eq(tl_list_offset(&conn, "wide", (uint32_t)max - 1, -1, &end), 0);
    cr_assert_eq(end, 1);
}
