/*
 * The example programs of examples/ run as documented against a live ringlogd (127.0.0.1,
 * ephemeral port): examples/producer delivers 1000 records to a topic, and examples/consumer,
 * a group member, reads all 1000 back and commits; a second consumer run in the same group
 * then starts after the commit and reads none. Each program is a child process bounded by a
 * deadline (tests/lib/tl_cli). Prints "N passed, N failed".
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ringlog.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_cli.h"

static struct tl_broker g_broker;
static char g_brokers[128];

static const char *example(const char *name)
{
    static char path[2][256];
    const char *build = getenv("BUILD");
    char *p = path[strcmp(name, "producer") == 0 ? 0 : 1];
    snprintf(p, sizeof(path[0]), "%s/examples/%s", build && build[0] ? build : "build", name);
    return p;
}

static int create_topic(const char *name, int partitions)
{
    struct rl_conf *c = rl_conf_new();
    char err[256];
    rl_conf_set(c, "bootstrap.servers", g_brokers, err, sizeof(err));
    struct rl_admin *a = rl_admin_new(c, err, sizeof(err));
    struct rl_topic_spec spec = {.name = name, .partitions = partitions};
    int rc = a ? rl_admin_create_topic(a, &spec) : -1;
    rl_admin_destroy(a);
    rl_conf_destroy(c);
    return rc;
}

static int t_examples(void)
{
    TL_CHECK(create_topic("events", 3) == 0, "create topic");
    struct tl_cli_run r;
    int rc = tl_cli_run(&r, example("producer"), g_brokers, NULL, "events", "1000", NULL);
    TL_CHECK(rc == 0 && r.status == 0 && strstr(r.out, "delivered 1000, failed 0"),
             "producer: status %d out %s err %s", r.status, r.out, r.err);
    tl_cli_run_free(&r);
    rc = tl_cli_run(&r, example("consumer"), g_brokers, NULL, "readers", "events", "1000", NULL);
    TL_CHECK(rc == 0 && r.status == 0 && strstr(r.out, "consumed 1000\n") &&
             tl_count_lines(r.out) == 1001 && strstr(r.out, "= {\"event\": 999}"),
             "consumer: status %d lines %d err %s", r.status, tl_count_lines(r.out), r.err);
    tl_cli_run_free(&r);
    /* The group committed: the next member to join starts after the last record. */
    rc = tl_cli_run(&r, example("consumer"), g_brokers, NULL, "readers", "events", "1000", NULL);
    TL_CHECK(rc == 0 && r.status == 0 && strstr(r.out, "consumed 0\n"),
             "second consumer: status %d out %s err %s", r.status, r.out, r.err);
    tl_cli_run_free(&r);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (tl_broker_start(&g_broker, NULL, 10000) != 0) {
        fprintf(stderr, "cannot start ringlogd (%s)\n", tl_ringlogd_path());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    snprintf(g_brokers, sizeof(g_brokers), "%s:%u", g_broker.host, g_broker.port);
    uint64_t t0 = tl_now_ms();
    int rc = t_examples();
    printf("%s examples (%llu ms)\n", rc == 0 ? "ok  " : "FAIL",
           (unsigned long long)(tl_now_ms() - t0));
    if (rc)
        tl_broker_dump_log(&g_broker, 30);
    tl_broker_cleanup(&g_broker);
    printf("%d passed, %d failed\n", rc == 0, rc != 0);
    return rc != 0;
}
