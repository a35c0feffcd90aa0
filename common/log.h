/*
 * log: leveled logging to stderr and the single place corruption is reported.
 *
 * RL_CORRUPT() is ringlog's SQLITE_CORRUPT_BKPT: every detection of damaged data goes through
 * it, so there is one format in the logs and one function (rl_log_corrupt) to break on.
 * RL_ASSERT() stays on in release builds; a broken invariant stops the process loudly.
 */
#ifndef RL_COMMON_LOG_H
#define RL_COMMON_LOG_H

#include <stdint.h>

enum rl_log_level { RL_LOG_DEBUG, RL_LOG_INFO, RL_LOG_WARN, RL_LOG_ERROR, RL_LOG_OFF };

/* Messages below this level are dropped. Default INFO; RINGLOG_LOG=debug|info|warn|error|off. */
void rl_log_set_level(enum rl_log_level level);
enum rl_log_level rl_log_get_level(void);

void rl_log_write(enum rl_log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A per-thread destination for messages (libringlog's log callback): while set on a thread,
 * that thread's messages at or above `level` go to fn (or to stderr when fn is NULL) instead of
 * being filtered by the process-wide level. message has no newline and is valid during the call. */
typedef void (*rl_log_sink_fn)(void *ctx, int level, const char *message);
struct rl_log_sink {
    rl_log_sink_fn fn;
    void *ctx;
    enum rl_log_level level;
    int set;
};
/* Installs *sink for the calling thread (NULL: none) and stores the previous one in *old (may
 * be NULL), so scopes can nest. */
void rl_log_swap_thread_sink(const struct rl_log_sink *sink, struct rl_log_sink *old);

/* Reports corruption found in `path` at byte `position` (offset: the log offset, or -1).
 * Returns RL_E_CORRUPT so callers can write `return RL_CORRUPT(...)`. */
int rl_log_corrupt(const char *src_file, int src_line, const char *path, int64_t position,
                   int64_t offset, const char *what);

_Noreturn void rl_assert_fail(const char *expr, const char *file, int line, const char *fmt,
                              ...) __attribute__((format(printf, 4, 5)));

#define RL_DEBUG(...) rl_log_write(RL_LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
#define RL_INFO(...) rl_log_write(RL_LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define RL_WARN(...) rl_log_write(RL_LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define RL_ERROR(...) rl_log_write(RL_LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)

#define RL_CORRUPT(path, position, offset, what)                                                \
    rl_log_corrupt(__FILE__, __LINE__, (path), (position), (offset), (what))

#define RL_ASSERT(expr)                                                                         \
    ((expr) ? (void)0 : rl_assert_fail(#expr, __FILE__, __LINE__, " "))
#define RL_ASSERTF(expr, ...)                                                                   \
    ((expr) ? (void)0 : rl_assert_fail(#expr, __FILE__, __LINE__, __VA_ARGS__))

#endif
