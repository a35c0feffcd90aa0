/*
 * batch_xxh3: the batch checksum's hash function, picked once per call by CPU: XXH3-64 built
 * for AVX2 where the CPU has it, else the baseline (SSE2 on x86-64) build. Both give the same
 * value; only the speed differs (about twice as fast with AVX2 on large batches). Internal to
 * the batch codec; everyone else calls batch_compute_checksum().
 */
#ifndef RL_COMMON_BATCH_XXH3_H
#define RL_COMMON_BATCH_XXH3_H

#include <stddef.h>
#include <stdint.h>

/* XXH3_64bits(data, len) compiled with -mavx2 (batch_xxh3_avx2.c); callers must check
 * __builtin_cpu_supports("avx2") first. Only on x86-64. */
uint64_t batch_xxh3_avx2(const void *data, size_t len);

#endif
