/*
 * tl_cli: runs the `ringlog` tool as a child process for integration tests, feeding stdin from
 * a string and collecting stdout and stderr, every run bounded by a deadline (the child is
 * SIGKILLed when it passes). Shared by the CLI suites.
 */
#ifndef RL_TESTS_TL_CLI_H
#define RL_TESTS_TL_CLI_H

#include <stddef.h>
#include <stdio.h>

/* Output kept per stream; a run producing more is cut there. */
#define TL_CLI_OUT_MAX (8u << 20)
#define TL_CLI_TIMEOUT_MS 30000

/* Fails the current test function (which returns int) with a message naming the check. */
#define TL_CHECK(cond, ...)                                                                     \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
            return -1;                                                                          \
        }                                                                                       \
    } while (0)

struct tl_cli_run {
    int status; /* exit status, 128 + signal, or -1 when killed at the deadline */
    char *out;  /* NUL-terminated; owned by the run, freed by tl_cli_run_free */
    size_t out_len;
    char *err;
    size_t err_len;
};

/* Runs `cli --brokers BROKERS ARGS...` (ARGS NULL-terminated, at most 28) with `input` on stdin
 * (NULL: empty). Blocks until the child exits or TL_CLI_TIMEOUT_MS passes. Returns 0 (see
 * r->status) or -errno when the child could not be started. Always call tl_cli_run_free. */
int tl_cli_run(struct tl_cli_run *r, const char *cli, const char *brokers, const char *input,
               ...);
void tl_cli_run_free(struct tl_cli_run *r);

/* The `ringlog` binary beside the ringlogd the tests run (tl_ringlogd_path), written into out.
 * Returns 0, or -ENAMETOOLONG. */
int tl_cli_path(char *out, size_t cap);

/* Number of '\n' in s. */
int tl_count_lines(const char *s);

#endif
