/*
 * tl_seed: one replayable seed for every random test (header-only, so any test program can use
 * it, Criterion or not, linked with the test library or not).
 *
 * The seed comes from the environment variable RINGLOG_SEED (decimal, or hex with 0x). The test
 * runner (tests/run-tests.sh) picks one per `make test` run, prints it, and gives the same value
 * to every suite; `make test SEED=N` (or `make test-asan SEED=N`) replays a whole run, and
 * `RINGLOG_SEED=N build/tests/unit/test_x` replays one program. A program run by hand without
 * the variable seeds itself from the clock. Either way tl_seed prints the seed and the command
 * that replays it, so a failure's log always holds what is needed to reproduce it.
 *
 * A test that draws several streams from the seed should mix a constant of its own into the
 * state (tl_rand_init) rather than read the variable again.
 */
#ifndef RL_TESTS_TL_SEED_H
#define RL_TESTS_TL_SEED_H

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define TL_SEED_ENV "RINGLOG_SEED"

/* The run's seed, printed with the replay command under the name `what` (the test's name).
 * Exits with status 2 when RINGLOG_SEED is set but is not a number: a replay that silently used
 * another seed would be worse than none. */
static inline uint64_t tl_seed(const char *what)
{
    const char *s = getenv(TL_SEED_ENV);
    uint64_t seed;
    if (s && *s) {
        char *end;
        errno = 0;
        seed = strtoull(s, &end, 0);
        if (errno || *end) {
            fprintf(stderr, "%s: %s=\"%s\" is not a number; give a decimal or 0x-hex seed\n",
                    what, TL_SEED_ENV, s);
            exit(2);
        }
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^
               ((uint64_t)getpid() << 20);
        seed &= 0xffffffffu; /* short enough to type */
    }
    /* The executable's path, not argv[0]: Criterion runs tests in re-executed workers that
     * rename themselves. */
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        n = snprintf(exe, sizeof(exe), "%s", program_invocation_name);
    exe[n < (ssize_t)sizeof(exe) ? n : (ssize_t)sizeof(exe) - 1] = '\0';
    printf("%s: seed %" PRIu64 " (replay: %s=%" PRIu64 " %s, or make test SEED=%" PRIu64 ")\n",
           what, seed, TL_SEED_ENV, seed, exe, seed);
    fflush(stdout);
    return seed;
}

/* A random stream: state from a seed and a constant that tells streams of one test apart. */
static inline uint64_t tl_rand_init(uint64_t seed, uint64_t stream)
{
    return seed ^ (stream * 0x9e3779b97f4a7c15ull);
}

/* splitmix64: the next value of the stream. Deterministic on every platform. */
static inline uint64_t tl_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
