/*
 * error: the public side of ringlog's error codes for libringlog users: which codes are worth
 * retrying, which end a handle, and each thread's last error message. Where it sits: every
 * rl_ call that fails -> rlc_fail (the thread's message) -> rl_last_error / rl_*_last_error.
 *
 * The codes themselves are common/err.h's, the numbers the broker sends. client/ringlog.h
 * carries a generated copy of that enum (tools/gen_errors.sh) because common/err.h is not
 * installed; the assertions below make the build fail when the copy and the list disagree, in
 * number or in name, so an application always sees exactly the broker's code.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "client/client_internal.h" /* includes client/ringlog.h first: its enum is the one */
#include "common/err.h"
#include "common/log.h"

/* Every code of the broker's list exists in the public header with the same number (a code
 * missing from ringlog.h fails to compile; a different number fails the assertion). */
#define RL_ERR_CHECK(name, num, msg)                                                            \
    _Static_assert(RL_E_##name == (num), "client/ringlog.h: RL_E_" #name " differs from "      \
                   "common/err.h; run sh tools/gen_errors.sh --write");
RL_ERROR_LIST(RL_ERR_CHECK)
#undef RL_ERR_CHECK

/* The public log levels are the internal ones (common/log.h), so no mapping is needed. */
_Static_assert(RL_LOGLEVEL_DEBUG == (int)RL_LOG_DEBUG && RL_LOGLEVEL_INFO == (int)RL_LOG_INFO &&
               RL_LOGLEVEL_WARN == (int)RL_LOG_WARN && RL_LOGLEVEL_ERROR == (int)RL_LOG_ERROR,
               "rl_loglevel must match enum rl_log_level");

int rl_error_is_retriable(int code)
{
    switch (code) {
    case RL_E_NOT_LEADER:
    case RL_E_NOT_ENOUGH_REPLICAS:
    case RL_E_THROTTLED:
    case RL_E_REQUEST_TIMED_OUT:
    case RL_E_TIMED_OUT:
    case RL_E_BROKER_UNAVAILABLE:
    case RL_E_TOO_MANY_CONNECTIONS:
    case RL_E_LOG_CLOSED:
    case RL_E_DISK_FULL:
    case RL_E_SHUTTING_DOWN:
    case RL_E_COORDINATOR_NOT_AVAILABLE:
    case RL_E_NOT_COORDINATOR:
    case RL_E_COORDINATOR_LOADING:
    case RL_E_REBALANCE_IN_PROGRESS:
    case RL_E_RAFT_NOT_LEADER:
    case RL_E_RAFT_DROPPED:
    case RL_E_RAFT_CONF_PENDING:
    case RL_E_RAFT_TRANSFERRING:
    case RL_E_RAFT_CATCHING_UP:
    case -EAGAIN:
    case -EINTR:
    case -ECONNRESET:
    case -ECONNREFUSED:
    case -EPIPE:
    case -ETIMEDOUT:
    case -ECONNABORTED:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -ENOTCONN:
        return 1;
    default:
        return 0;
    }
}

int rl_error_is_fatal(int code)
{
    return code == RL_E_PRODUCER_FENCED || code == RL_E_INVALID_PRODUCER_EPOCH ||
           code == RL_E_UNSUPPORTED_VERSION || code == RL_E_UNKNOWN_API;
}

static __thread char tls_err[512];
static __thread const void *tls_err_handle;

const char *rl_last_error(void)
{
    return tls_err;
}

const char *rlc_thread_error(const void *handle)
{
    return handle && tls_err_handle == handle ? tls_err : NULL;
}

int rlc_fail(const void *handle, int code, const char *fmt, ...)
{
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tls_err, sizeof(tls_err), fmt, ap);
        va_end(ap);
    } else {
        snprintf(tls_err, sizeof(tls_err), "%s", rl_strerror(code));
    }
    tls_err_handle = handle;
    return code;
}
