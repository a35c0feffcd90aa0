/*
 * log: see log.h. Each message is formatted into one buffer and written with a single write(2)
 * so lines from different threads do not interleave.
 */
#include "common/log.h"
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum rl_log_level log_level = RL_LOG_INFO;
static int log_level_loaded;

static void log_load_env(void)
{
    const char *v = getenv("RINGLOG_LOG");
    log_level_loaded = 1;
    if (!v)
        return;
    if (!strcmp(v, "debug"))
        log_level = RL_LOG_DEBUG;
    else if (!strcmp(v, "info"))
        log_level = RL_LOG_INFO;
    else if (!strcmp(v, "warn"))
        log_level = RL_LOG_WARN;
    else if (!strcmp(v, "error"))
        log_level = RL_LOG_ERROR;
    else if (!strcmp(v, "off"))
        log_level = RL_LOG_OFF;
}

void rl_log_set_level(enum rl_log_level level)
{
    log_level_loaded = 1;
    log_level = level;
}

enum rl_log_level rl_log_get_level(void)
{
    if (!log_level_loaded)
        log_load_env();
    return log_level;
}

static void log_vwrite(enum rl_log_level level, const char *file, int line, const char *fmt,
                       va_list ap)
{
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};
    char buf[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    if (n < 0)
        return;
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(buf) - 64)
        len = sizeof(buf) - 64;
    if (level >= RL_LOG_WARN || log_level == RL_LOG_DEBUG)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, " (%s:%d)", file, line);
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

static __thread struct rl_log_sink thread_sink;

void rl_log_swap_thread_sink(const struct rl_log_sink *sink, struct rl_log_sink *old)
{
    if (old)
        *old = thread_sink;
    if (sink)
        thread_sink = *sink;
    else
        memset(&thread_sink, 0, sizeof(thread_sink));
}

void rl_log_write(enum rl_log_level level, const char *file, int line, const char *fmt, ...)
{
    if (level < (thread_sink.set ? thread_sink.level : rl_log_get_level()))
        return;
    va_list ap;
    va_start(ap, fmt);
    if (thread_sink.set && thread_sink.fn) {
        char msg[1024];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        thread_sink.fn(thread_sink.ctx, (int)level, msg);
    } else {
        log_vwrite(level, file, line, fmt, ap);
    }
    va_end(ap);
}

int rl_log_corrupt(const char *src_file, int src_line, const char *path, int64_t position,
                   int64_t offset, const char *what)
{
    rl_log_write(RL_LOG_ERROR, src_file, src_line,
                 "corruption: %s in %s at position %lld (offset %lld)", what,
                 path ? path : "(memory)", (long long)position, (long long)offset);
    return RL_E_CORRUPT;
}

void rl_assert_fail(const char *expr, const char *file, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "assertion failed: %s at %s:%d:%s\n", expr, file, line, msg);
    fflush(stderr);
    abort();
}
