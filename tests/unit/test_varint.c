/* varint: zigzag LEB128 encode/decode round trips, sizes, and every malformed-input rejection. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/varint.h"

/* Known encodings from Kafka's ByteUtils tests: zigzag maps small magnitudes to one byte. */
Test(varint, known_encodings)
{
    uint8_t buf[VARLONG_MAX_BYTES];
    cr_assert_eq(varint_write32(buf, 0), 1);
    cr_assert_eq(buf[0], 0x00);
    cr_assert_eq(varint_write32(buf, -1), 1);
    cr_assert_eq(buf[0], 0x01);
    cr_assert_eq(varint_write32(buf, 1), 1);
    cr_assert_eq(buf[0], 0x02);
    cr_assert_eq(varint_write32(buf, 63), 1);
    cr_assert_eq(buf[0], 0x7e);
    cr_assert_eq(varint_write32(buf, 64), 2);
    cr_assert_eq(buf[0], 0x80);
    cr_assert_eq(buf[1], 0x01);
    cr_assert_eq(varint_write32(buf, INT32_MIN), 5);
    cr_assert_eq(buf[0], 0xff);
    cr_assert_eq(buf[4], 0x0f);
    cr_assert_eq(varint_write64(buf, INT64_MIN), 10);
    cr_assert_eq(buf[9], 0x01);
}

/* Every boundary value survives write -> read with the predicted size, for both widths. */
Test(varint, boundaries_round_trip)
{
    static const int64_t vals[] = {0, 1, -1, 63, -64, 64, -65, 8191, 8192, -8193, INT32_MAX,
                                   INT32_MIN, (int64_t)INT32_MAX + 1, INT64_MAX, INT64_MIN,
                                   (int64_t)1 << 62, -((int64_t)1 << 62)};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        uint8_t buf[VARLONG_MAX_BYTES];
        int64_t v = vals[i], got = 0;
        size_t n = varint_write64(buf, v);
        cr_assert_eq(n, varint_size64(v), "size of %lld", (long long)v);
        cr_assert_eq(varint_read64(buf, n, &got), n);
        cr_assert_eq(got, v);
        if (v >= INT32_MIN && v <= INT32_MAX) {
            int32_t g32 = 0;
            size_t m = varint_write32(buf, (int32_t)v);
            cr_assert_eq(m, varint_size32((int32_t)v));
            cr_assert_eq(m, n, "32 and 64-bit encodings agree for %lld", (long long)v);
            cr_assert_eq(varint_read32(buf, m, &g32), m);
            cr_assert_eq(g32, (int32_t)v);
        }
    }
}

/* Truncated encodings (continuation bit on the last available byte) are rejected. */
Test(varint, truncated_is_rejected)
{
    uint8_t buf[VARLONG_MAX_BYTES];
    int32_t v32 = 7;
    int64_t v64 = 7;
    size_t n = varint_write32(buf, INT32_MAX);
    for (size_t len = 0; len < n; len++)
        cr_assert_eq(varint_read32(buf, len, &v32), 0, "len %zu", len);
    cr_assert_eq(v32, 7, "output untouched on failure");
    n = varint_write64(buf, INT64_MIN);
    for (size_t len = 0; len < n; len++)
        cr_assert_eq(varint_read64(buf, len, &v64), 0, "len %zu", len);
    cr_assert_eq(v64, 7);
}

/* Encodings longer than the type allows, or with bits beyond its width, are rejected. */
Test(varint, too_long_and_overflow_are_rejected)
{
    int32_t v32;
    int64_t v64;
    const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    cr_assert_eq(varint_read32(six, sizeof(six), &v32), 0);
    const uint8_t wide32[] = {0xff, 0xff, 0xff, 0xff, 0x1f}; /* 33 bits */
    cr_assert_eq(varint_read32(wide32, sizeof(wide32), &v32), 0);
    const uint8_t max32[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    cr_assert_eq(varint_read32(max32, sizeof(max32), &v32), 5);
    cr_assert_eq(v32, INT32_MIN);
    const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    cr_assert_eq(varint_read64(eleven, sizeof(eleven), &v64), 0);
    const uint8_t wide64[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    cr_assert_eq(varint_read64(wide64, sizeof(wide64), &v64), 0);
}

/* Non-minimal encodings are accepted (Kafka accepts them) and decode to the same value. */
Test(varint, non_minimal_is_accepted)
{
    const uint8_t zero2[] = {0x80, 0x00};
    int32_t v = 5;
    cr_assert_eq(varint_read32(zero2, sizeof(zero2), &v), 2);
    cr_assert_eq(v, 0);
}

/* Seeded random values of every magnitude round-trip through both widths. */
Test(varint, random_round_trip)
{
    unsigned seed = (unsigned)time(NULL);
    if (getenv("RINGLOG_SEED"))
        seed = (unsigned)strtoul(getenv("RINGLOG_SEED"), NULL, 10);
    printf("varint.random_round_trip seed %u (RINGLOG_SEED=%u to replay)\n", seed, seed);
    srand(seed);
    for (int i = 0; i < 200000; i++) {
        uint64_t r = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
        int64_t v = (int64_t)(r >> (rand() % 64));
        if (rand() & 1)
            v = -v;
        uint8_t buf[VARLONG_MAX_BYTES];
        int64_t got;
        size_t n = varint_write64(buf, v);
        cr_assert_eq(varint_read64(buf, n, &got), n, "seed %u value %lld", seed, (long long)v);
        cr_assert_eq(got, v, "seed %u", seed);
        int32_t g32, v32 = (int32_t)(uint32_t)v;
        n = varint_write32(buf, v32);
        cr_assert_eq(varint_read32(buf, n, &g32), n, "seed %u", seed);
        cr_assert_eq(g32, v32, "seed %u", seed);
    }
}
