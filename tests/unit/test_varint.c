/* varint: zigzag LEB128 encode/decode round trips, sizes, and every malformed-input rejection. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/varint.h"
#include "tests/lib/tl_seed.h"

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

/* Seeded random values of every magnitude round-trip through both widths (tests/lib/tl_seed.h:
 * RINGLOG_SEED replays). */
Test(varint, random_round_trip)
{
    uint64_t seed = tl_seed("varint.random_round_trip");
    uint64_t rs = tl_rand_init(seed, 1);
    for (int i = 0; i < 200000; i++) {
        uint64_t r = tl_rand(&rs);
        int64_t v = (int64_t)(r >> (tl_rand(&rs) % 64));
        if (tl_rand(&rs) & 1)
            v = -v;
        uint8_t buf[VARLONG_MAX_BYTES];
        int64_t got;
        size_t n = varint_write64(buf, v);
        cr_assert_eq(varint_read64(buf, n, &got), n, "seed %" PRIu64 " value %lld", seed,
                     (long long)v);
        cr_assert_eq(got, v, "seed %" PRIu64, seed);
        int32_t g32, v32 = (int32_t)(uint32_t)v;
        n = varint_write32(buf, v32);
        cr_assert_eq(varint_read32(buf, n, &g32), n, "seed %" PRIu64, seed);
        cr_assert_eq(g32, v32, "seed %" PRIu64, seed);
    }
}

/* Golden bytes: the longest encodings of each width, written out in full, decode to their
 * values and are what the writers produce (a change of byte order or zigzag mapping fails
 * here even if it round-trips). */
Test(varint, golden_long_encodings)
{
    static const struct {
        int64_t v;
        int wide; /* 64-bit only */
        uint8_t n, bytes[VARLONG_MAX_BYTES];
    } golden[] = {
        {INT32_MAX, 0, 5, {0xfe, 0xff, 0xff, 0xff, 0x0f}},
        {INT32_MIN, 0, 5, {0xff, 0xff, 0xff, 0xff, 0x0f}},
        {300, 0, 2, {0xd8, 0x04}},
        {-300, 0, 2, {0xd7, 0x04}},
        {1700000000000, 1, 6, {0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62}},
        {INT64_MAX, 1, 10, {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
        {INT64_MIN, 1, 10, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
    };
    for (size_t i = 0; i < sizeof(golden) / sizeof(golden[0]); i++) {
        uint8_t buf[VARLONG_MAX_BYTES];
        int64_t got64;
        cr_assert_eq(varint_write64(buf, golden[i].v), golden[i].n, "case %zu", i);
        cr_assert(memcmp(buf, golden[i].bytes, golden[i].n) == 0, "case %zu bytes", i);
        cr_assert_eq(varint_read64(golden[i].bytes, golden[i].n, &got64), golden[i].n);
        cr_assert_eq(got64, golden[i].v, "case %zu", i);
        if (golden[i].wide)
            continue;
        int32_t got32;
        cr_assert_eq(varint_write32(buf, (int32_t)golden[i].v), golden[i].n, "case %zu", i);
        cr_assert(memcmp(buf, golden[i].bytes, golden[i].n) == 0, "case %zu bytes", i);
        cr_assert_eq(varint_read32(golden[i].bytes, golden[i].n, &got32), golden[i].n);
        cr_assert_eq(got32, (int32_t)golden[i].v, "case %zu", i);
    }
}
