/*
 * tl_cli: see tl_cli.h. The parent polls the child's stdout and stderr and writes stdin
 * non-blocking in the same loop, so a child that fills a pipe never deadlocks the test.
 */
#include "tests/lib/tl_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/tl_broker.h"

void tl_cli_run_free(struct tl_cli_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

int tl_count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Reads what a pipe has into its buffer; returns false at EOF, error or a full buffer. */
static bool cli_drain(int fd, char *buf, size_t *len)
{
    ssize_t n = read(fd, buf + *len, TL_CLI_OUT_MAX - 1 - *len);
    if (n <= 0)
        return false;
    *len += (size_t)n;
    buf[*len] = 0;
    return *len < TL_CLI_OUT_MAX - 1;
}

static pid_t cli_spawn(const char *cli, const char *const *argv, int in[2], int out[2],
                       int err[2])
{
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
        return -errno;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execv(cli, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    return pid;
}

/* Pumps stdin and collects stdout/stderr until both close or the deadline passes; returns
 * true when the child closed its outputs in time. */
static bool cli_pump(struct tl_cli_run *r, const char *input, int in_fd, int out_fd, int err_fd)
{
    size_t in_len = input ? strlen(input) : 0, in_off = 0;
    if (in_len == 0) {
        close(in_fd);
        in_fd = -1;
    } else {
        fcntl(in_fd, F_SETFL, O_NONBLOCK);
    }
    uint64_t deadline = tl_now_ms() + TL_CLI_TIMEOUT_MS;
    bool out_open = true, err_open = true;
    while ((out_open || err_open) && tl_now_ms() < deadline) {
        struct pollfd p[3] = {{out_open ? out_fd : -1, POLLIN, 0},
                              {err_open ? err_fd : -1, POLLIN, 0},
                              {in_fd, POLLOUT, 0}};
        if (poll(p, 3, 200) <= 0)
            continue;
        if (p[0].revents)
            out_open = cli_drain(out_fd, r->out, &r->out_len);
        if (p[1].revents)
            err_open = cli_drain(err_fd, r->err, &r->err_len);
        if (in_fd >= 0 && p[2].revents) {
            ssize_t w = write(in_fd, input + in_off, in_len - in_off);
            in_off += w > 0 ? (size_t)w : 0;
            if (w < 0 || in_off == in_len) {
                close(in_fd);
                in_fd = -1;
            }
        }
    }
    if (in_fd >= 0)
        close(in_fd);
    return !out_open && !err_open;
}

int tl_cli_run(struct tl_cli_run *r, const char *cli, const char *brokers, const char *input,
               ...)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = cli;
    argv[n++] = "--brokers";
    argv[n++] = brokers;
    va_list ap;
    va_start(ap, input);
    for (const char *a; n < 31 && (a = va_arg(ap, const char *));)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    memset(r, 0, sizeof(*r));
    r->out = calloc(1, TL_CLI_OUT_MAX);
    r->err = calloc(1, TL_CLI_OUT_MAX);
    if (!r->out || !r->err)
        return -ENOMEM;
    int in[2], out[2], err[2];
    pid_t pid = cli_spawn(cli, argv, in, out, err);
    if (pid < 0)
        return (int)pid;
    bool finished = cli_pump(r, input, in[1], out[0], err[0]);
    close(out[0]);
    close(err[0]);
    int st;
    if (!finished) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        r->status = -1;
        return 0;
    }
    waitpid(pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return 0;
}

int tl_cli_path(char *out, size_t cap)
{
    const char *d = tl_ringlogd_path();
    const char *slash = strrchr(d, '/');
    size_t dir = slash ? (size_t)(slash - d) + 1 : 0;
    int n = snprintf(out, cap, "%.*sringlog", (int)dir, d);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}
