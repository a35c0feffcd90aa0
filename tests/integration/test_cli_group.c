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

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
            return -1;                                                                          \
        }                                                                                       \
    } while (0)

#define OUT_MAX (8u << 20)
#define RUN_TIMEOUT_MS 30000

static struct tl_broker g_broker;
static char g_brokers[128];
static char g_cli[PATH_MAX];

struct run {
    int status; /* exit status, or -1 when killed at the deadline */
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
};

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* Drains readable pipe fds into their buffers; returns false at EOF. */
static bool drain(int fd, char *buf, size_t *len)
{
    ssize_t n = read(fd, buf + *len, OUT_MAX - 1 - *len);
    if (n <= 0)
        return false;
    *len += (size_t)n;
    buf[*len] = 0;
    return *len < OUT_MAX - 1;
}

/* Runs ringlog --brokers <test broker> ARGS... with `input` on stdin (NULL: empty). */
static int run_cli(struct run *r, const char *input, ...)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = g_cli;
    argv[n++] = "--brokers";
    argv[n++] = g_brokers;
    va_list ap;
    va_start(ap, input);
    for (const char *a; n < 31 && (a = va_arg(ap, const char *));)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    memset(r, 0, sizeof(*r));
    r->out = calloc(1, OUT_MAX);
    r->err = calloc(1, OUT_MAX);
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
        return -errno;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execv(g_cli, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    size_t in_len = input ? strlen(input) : 0, in_off = 0;
    if (in_len == 0) {
        close(in[1]);
        in[1] = -1;
    }
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    uint64_t deadline = tl_now_ms() + RUN_TIMEOUT_MS;
    bool out_open = true, err_open = true;
    while ((out_open || err_open) && tl_now_ms() < deadline) {
        struct pollfd p[3] = {{out_open ? out[0] : -1, POLLIN, 0},
                              {err_open ? err[0] : -1, POLLIN, 0},
                              {in[1], POLLOUT, 0}};
        if (poll(p, 3, 200) <= 0)
            continue;
        if (p[0].revents)
            out_open = drain(out[0], r->out, &r->out_len);
        if (p[1].revents)
            err_open = drain(err[0], r->err, &r->err_len);
        if (in[1] >= 0 && p[2].revents) {
            ssize_t w = write(in[1], input + in_off, in_len - in_off);
            in_off += w > 0 ? (size_t)w : 0;
            if (w < 0 || in_off == in_len) {
                close(in[1]);
                in[1] = -1;
            }
        }
    }
    if (in[1] >= 0)
        close(in[1]);
    close(out[0]);
    close(err[0]);
    int st;
    if (out_open || err_open) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        r->status = -1;
        return 0;
    }
    waitpid(pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 0;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* 100 lines produced idempotently; a group consumes 40 then the rest (60) in a second run,
 * none twice; list and describe show the group with committed offsets at the log end (lag 0). */
static int t_group_roundtrip(void)
{
    char input[2048] = "";
    size_t len = 0;
    for (int i = 0; i < 100; i++)
        len += (size_t)snprintf(input + len, sizeof(input) - len, "k%d:v%d\n", i, i);
    struct run r;
    run_cli(&r, NULL, "topic", "create", "gt", "--partitions", "3", NULL);
    CHECK(r.status == 0, "create: %s", r.err);
    run_free(&r);
    run_cli(&r, input, "produce", "gt", "--key-separator", ":", "--idempotent", NULL);
    CHECK(r.status == 0, "produce: %s", r.err);
    run_free(&r);
    run_cli(&r, NULL, "produce", "gt", "--idempotent", "--acks", "0", NULL);
    CHECK(r.status == 2 && strstr(r.err, "--idempotent needs acknowledgements"), "%s", r.err);
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
    snprintf(g_cli, sizeof(g_cli), "%s", tl_ringlogd_path());
    char *slash = strrchr(g_cli, '/');
    if (slash)
        strcpy(slash + 1, "ringlog");
    if (access(g_cli, X_OK) != 0 || tl_broker_start(&g_broker, NULL, 10000) != 0) {
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
