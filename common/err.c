/*
 * err: the messages and names behind the codes of err.h. Pure table lookups, no allocation.
 */
#include "common/err.h"

#include <errno.h>
#include <string.h>

const char *rl_strerror(int code)
{
    if (code == 0)
        return "success";
    switch (code) {
#define RL_ERR_MSG(name, num, msg) case num: return msg;
        RL_ERROR_LIST(RL_ERR_MSG)
#undef RL_ERR_MSG
    default:
        break;
    }
    if (code < 0 && code > -4096)
        return strerror(-code);
    return "unknown error code";
}

const char *rl_error_name(int code)
{
    if (code == 0)
        return "OK";
    switch (code) {
#define RL_ERR_NAME(name, num, msg) case num: return #name;
        RL_ERROR_LIST(RL_ERR_NAME)
#undef RL_ERR_NAME
    default:
        break;
    }
    if (code < 0 && code > -4096) {
        const char *n = strerrorname_np(-code);
        return n ? n : "ERRNO";
    }
    return "UNKNOWN";
}
