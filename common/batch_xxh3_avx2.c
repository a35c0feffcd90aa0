/*
 * batch_xxh3_avx2: XXH3-64 inlined into a file the build compiles with -mavx2 (see
 * common/module.mk), so xxHash selects its AVX2 kernel here while the rest of the project keeps
 * the baseline instruction set. batch.c calls it only after checking the CPU.
 */
#include "common/batch_xxh3.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t batch_xxh3_avx2(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}
