/*
 * fuzz: the entry points every libFuzzer harness in tests/fuzz/ defines, declared once so that
 * harnesses compile under the project's -Wmissing-prototypes and link both with libFuzzer
 * (`make fuzz`) and with the corpus replay driver (replay_main.c, run by `make test`).
 *
 * A harness must: never read its input past `size`; abort() (or trip a sanitizer) when a
 * property fails, and only then; keep long-lived state (contexts, buffers) in statics created
 * on first use; bound every loop by the input size; not write files outside $TMPDIR.
 */
#ifndef RL_TESTS_FUZZ_H
#define RL_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs one input. Returns 0 (libFuzzer reserves other values). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional one-time set-up; harnesses may leave it undefined. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Stops the process loudly when a fuzzed property fails, naming it; both libFuzzer and the
 * replay driver report the abort and keep the input that caused it. */
#define FUZZ_CHECK(cond)                                                                        \
    do {                                                                                        \
        if (!(cond))                                                                            \
            fuzz_fail(__FILE__, __LINE__, #cond);                                               \
    } while (0)

static inline _Noreturn void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "fuzz property failed at %s:%d: %s\n", file, line, what);
    abort();
}

#endif
