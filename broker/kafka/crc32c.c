/*
 * crc32c: CRC-32C with the SSE4.2 instruction (three interleaved streams) or slicing-by-8 (see
 * crc32c.h). Internally the register is the un-inverted CRC state; the public functions invert
 * on the way in and out, so partial results chain.
 *
 * Joining streams: the state after data D from state s is M^|D| s xor g(D), where g(D) is the
 * state after D from 0 and M^n is the linear map "append n zero bytes". So three streams over
 * blocks A, B, C (B and C started from 0) combine as shift(shift(a, |B|) ^ b, |C|) ^ c. shift by
 * a fixed length is a 32x32 bit matrix, applied a byte at a time through four 256-entry tables.
 */
#include "broker/kafka/crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82f63b78u
#define CRC32C_LONG 8192u /* bytes per stream in the long interleaved loop */
#define CRC32C_SHORT 256u /* bytes per stream in the short interleaved loop */

static uint32_t slice_table[8][256];
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];
static int have_sse42;
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

/* A 32x32 matrix over GF(2): column i is the image of bit i. */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;
    for (int i = 0; vec; i++, vec >>= 1)
        if (vec & 1)
            sum ^= mat[i];
    return sum;
}

static void gf2_compose(uint32_t *out, const uint32_t *a, const uint32_t *b)
{
    uint32_t tmp[32];
    for (int i = 0; i < 32; i++)
        tmp[i] = gf2_times(a, b[i]);
    memcpy(out, tmp, sizeof(tmp));
}

/* Fills table with the operator "append len zero bytes" applied byte-wise. */
static void build_shift_table(uint32_t table[4][256], size_t len)
{
    uint32_t op[32], acc[32];
    op[0] = CRC32C_POLY; /* one zero bit: state >> 1, xor POLY when bit 0 was set */
    for (int i = 1; i < 32; i++)
        op[i] = 1u << (i - 1);
    for (int i = 0; i < 3; i++) /* 1 bit -> 2 -> 4 -> 8 bits: one zero byte */
        gf2_compose(op, op, op);
    for (int i = 0; i < 32; i++)
        acc[i] = 1u << i; /* identity */
    for (size_t n = len; n; n >>= 1) {
        if (n & 1)
            gf2_compose(acc, op, acc);
        gf2_compose(op, op, op);
    }
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++)
            table[k][b] = gf2_times(acc, b << (8 * k));
}

static void build_tables(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        slice_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int k = 1; k < 8; k++)
            slice_table[k][n] =
                (slice_table[k - 1][n] >> 8) ^ slice_table[0][slice_table[k - 1][n] & 0xff];
    build_shift_table(shift_long, CRC32C_LONG);
    build_shift_table(shift_short, CRC32C_SHORT);
#if defined(__x86_64__)
    __builtin_cpu_init();
    have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
}

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static uint32_t table_state(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len >= 8) {
        uint64_t w = load_le64(p) ^ crc;
        crc = slice_table[7][w & 0xff] ^ slice_table[6][(w >> 8) & 0xff] ^
              slice_table[5][(w >> 16) & 0xff] ^ slice_table[4][(w >> 24) & 0xff] ^
              slice_table[3][(w >> 32) & 0xff] ^ slice_table[2][(w >> 40) & 0xff] ^
              slice_table[1][(w >> 48) & 0xff] ^ slice_table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ slice_table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__)
static inline uint32_t shift(const uint32_t table[4][256], uint32_t crc)
{
    return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^ table[2][(crc >> 16) & 0xff] ^
           table[3][crc >> 24];
}

/* Three streams of `block` bytes each, joined; returns the state after 3 * block bytes. */
__attribute__((target("sse4.2"))) static uint64_t
hw_three(uint64_t crc0, const uint8_t *p, size_t block, const uint32_t table[4][256])
{
    uint64_t crc1 = 0, crc2 = 0;
    for (const uint8_t *end = p + block; p < end; p += 8) {
        crc0 = __builtin_ia32_crc32di(crc0, load_le64(p));
        crc1 = __builtin_ia32_crc32di(crc1, load_le64(p + block));
        crc2 = __builtin_ia32_crc32di(crc2, load_le64(p + 2 * block));
    }
    crc0 = shift(table, (uint32_t)crc0) ^ crc1;
    return shift(table, (uint32_t)crc0) ^ crc2;
}

__attribute__((target("sse4.2"))) static uint32_t hw_state(uint32_t crc, const uint8_t *p,
                                                          size_t len)
{
    uint64_t c = crc;
    while (len >= 3 * CRC32C_LONG) {
        c = hw_three(c, p, CRC32C_LONG, shift_long);
        p += 3 * CRC32C_LONG;
        len -= 3 * CRC32C_LONG;
    }
    while (len >= 3 * CRC32C_SHORT) {
        c = hw_three(c, p, CRC32C_SHORT, shift_short);
        p += 3 * CRC32C_SHORT;
        len -= 3 * CRC32C_SHORT;
    }
    for (; len >= 8; p += 8, len -= 8)
        c = __builtin_ia32_crc32di(c, load_le64(p));
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&tables_once, build_tables);
#if defined(__x86_64__)
    if (have_sse42)
        return ~hw_state(~crc, buf, len);
#endif
    return ~table_state(~crc, buf, len);
}

uint32_t crc32c_update_table(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&tables_once, build_tables);
    return ~table_state(~crc, buf, len);
}

int crc32c_hardware(void)
{
    pthread_once(&tables_once, build_tables);
    return have_sse42;
}
