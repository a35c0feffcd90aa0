/*
 * The `ringlog` tool's consumer-group commands against a real ringlogd: produce --idempotent,
 * consume --group (what was printed is committed before exit, so the next run of the group
 * continues exactly there), group list and group describe (members, committed offsets, lag).
 * Runs build/bin/ringlog as a child process with pipes, every run bounded by a deadline.
 * Prints "N passed, N failed".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_cli.h"

#define CHECK TL_CHECK
#define run_cli(r, input, ...) tl_cli_run((r), g_cli, g_brokers, (input), __VA_ARGS__)
#define run_free tl_cli_run_free
#define count_lines tl_count_lines

static struct tl_broker g_broker;
static char g_brokers[128];
static char g_cli[PATH_MAX];

/* 100 lines produced idempotently; a group consumes 40 then the rest (60) in a second run,
 * none twice; list and describe show the group with committed offsets at the log end (lag 0). */
static int t_group_roundtrip(void)
{
    char input[2048] = "";
    size_t len = 0;
    for (int i = 0; i < 100; i++)
        len += (size_t)snprintf(input + len, sizeof(input) - len, "k%d:v%d\n", i, i);
    struct tl_cli_run r;
    run_cli(&r, NULL, "topic", "create", "gt", "--partitions", "3", NULL);
    CHECK(r.status == 0, "create: %s", r.err);
    run_free(&r);
    run_cli(&r, input, "produce", "gt", "--key-separator", ":", "--idempotent", NULL);
    CHECK(r.status == 0, "produce: %s", r.err);
    run_free(&r);
    run_cli(&r, NULL, "produce", "gt", "--idempotent", "--acks", "0", NULL);
    CHECK(r.status == 2 && strstr(r.err, "--idempotent needs --acks all"), "%s", r.err);
    run_free(&r);
    static char seen[100];
    int total = 0;
    const char *counts[2] = {"40", "60"};
    for (int run = 0; run < 2; run++) {
        run_cli(&r, NULL, "consume", "gt", "--group", "cg", "--from", "earliest", "--count",
                counts[run], NULL);
        CHECK(r.status == 0 && count_lines(r.out) == atoi(counts[run]), "run %d: %d lines, %s",
              run, count_lines(r.out), r.err);
        for (char *p = r.out; (p = strstr(p, "v")); p++) {
            int v = atoi(p + 1);
            CHECK(v >= 0 && v < 100 && !seen[v], "record v%d printed twice", v);
            seen[v] = 1;
            total++;
        }
        run_free(&r);
    }
    CHECK(total == 100, "%d distinct records over both runs", total);
    run_cli(&r, NULL, "group", "list", NULL);
    CHECK(r.status == 0 && strstr(r.out, "cg") && strstr(r.out, "Empty"), "%s%s", r.out, r.err);
    run_free(&r);
    run_cli(&r, NULL, "group", "describe", "cg", NULL);
    CHECK(r.status == 0 && strstr(r.out, "group cg: state Empty"), "%s%s", r.out, r.err);
    int rows = 0;
    for (char *p = r.out; (p = strstr(p, "\ngt ")); p++) {
        int part;
        long long committed, end, lag;
        CHECK(sscanf(p + 1, "gt %d %lld %lld %lld", &part, &committed, &end, &lag) == 4,
              "row: %.60s", p + 1);
        CHECK(committed == end && lag == 0, "partition %d committed %lld of %lld", part,
              committed, end);
        rows++;
    }
    CHECK(rows == 3, "%d partition rows:\n%s", rows, r.out);
    run_free(&r);
    run_cli(&r, NULL, "group", "describe", "nosuch", NULL);
    CHECK(r.status == 1 && strstr(r.err, "nosuch"), "%d %s", r.status, r.err);
    run_free(&r);
    run_cli(&r, NULL, "group", "frobnicate", NULL);
    CHECK(r.status == 2 && strstr(r.err, "usage"), "%s", r.err);
    run_free(&r);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (tl_cli_path(g_cli, sizeof(g_cli)) != 0 || access(g_cli, X_OK) != 0 ||
        tl_broker_start(&g_broker, NULL, 10000) != 0) {
        fprintf(stderr, "cannot run %s or start ringlogd\n", g_cli);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    snprintf(g_brokers, sizeof(g_brokers), "%s:%u", g_broker.host, g_broker.port);
    uint64_t t0 = tl_now_ms();
    int rc = t_group_roundtrip();
    printf("%s group_roundtrip (%llu ms)\n", rc == 0 ? "ok  " : "FAIL",
           (unsigned long long)(tl_now_ms() - t0));
    if (rc)
        tl_broker_dump_log(&g_broker, 30);
    tl_broker_cleanup(&g_broker);
    printf("%d passed, %d failed\n", rc == 0, rc != 0);
    return rc ? 1 : 0;
}
