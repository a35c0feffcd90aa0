/* err: every project code has a distinct message and name, and errno codes are explained too. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "common/err.h"

Test(err, project_codes_have_messages_and_names)
{
    static const int codes[] = {
#define X(name, num, msg) num,
        RL_ERROR_LIST(X)
#undef X
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        cr_assert(rl_is_project_error(codes[i]), "code %d outside the project range", codes[i]);
        cr_assert_str_neq(rl_strerror(codes[i]), "unknown error code");
        cr_assert_str_neq(rl_error_name(codes[i]), "UNKNOWN");
        for (size_t j = 0; j < i; j++)
            cr_assert_neq(codes[i], codes[j], "duplicate code %d", codes[i]);
    }
}

Test(err, errno_codes_are_explained)
{
    cr_assert_str_eq(rl_error_name(-ENOENT), "ENOENT");
    cr_assert_str_eq(rl_strerror(-ENOSPC), strerror(ENOSPC));
    cr_assert_not(rl_is_project_error(-EIO));
    cr_assert_str_eq(rl_strerror(0), "success");
}
