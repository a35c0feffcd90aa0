/*
 * varint: Kafka's zigzag LEB128 integers, as used inside v2 records (see batch.h). A signed value
 * is zigzag-mapped (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) so small magnitudes of either sign
 * take few bytes, then written 7 bits at a time, low bits first, with the top bit of each byte
 * saying "more follows". A varint holds 32 bits in at most 5 bytes, a varlong 64 bits in at most
 * 10.
 *
 * Decoders read hostile bytes: they never read past `len`, stop after the maximum byte count,
 * and reject encodings whose value does not fit the type (bits set beyond bit 31 or 63). They
 * accept non-minimal encodings (0x80 0x00 for zero), as Kafka does. Nothing here allocates.
 *
 * Sizes are computed inline; the one-byte case of reads and writes (values -64..63, i.e. most
 * deltas, counts and short lengths) is inline too, longer encodings go through varint.c.
 */
#ifndef RL_COMMON_VARINT_H
#define RL_COMMON_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define VARINT_MAX_BYTES 5   /* a zigzag varint (32 bits) */
#define VARLONG_MAX_BYTES 10 /* a zigzag varlong (64 bits) */

static inline uint32_t varint_zigzag32(int32_t v)
{
    return ((uint32_t)v << 1) ^ (uint32_t)(v >> 31);
}

static inline int32_t varint_unzigzag32(uint32_t u)
{
    return (int32_t)((u >> 1) ^ (0u - (u & 1)));
}

static inline uint64_t varint_zigzag64(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t varint_unzigzag64(uint64_t u)
{
    return (int64_t)((u >> 1) ^ (0u - (u & 1)));
}

static inline size_t varint_uleb_size(uint64_t u)
{
    /* 7 value bits per byte: bytes = ceil(significant bits / 7), at least 1. */
    return u < 0x80 ? 1 : (size_t)(64 - __builtin_clzll(u) + 6) / 7;
}

/* Bytes the encoding of v takes (1..5 for a varint, 1..10 for a varlong). */
static inline size_t varint_size32(int32_t v)
{
    return varint_uleb_size(varint_zigzag32(v));
}

static inline size_t varint_size64(int64_t v)
{
    return varint_uleb_size(varint_zigzag64(v));
}

/* Out-of-line writer for any encoding length; prefer varint_write32/64 below. */
size_t varint_write_slow(uint8_t *out, uint64_t u);

/* Writes v at out, which must have room for varint_size32(v) (at most VARINT_MAX_BYTES) or
 * varint_size64(v) bytes. Returns the number of bytes written. */
static inline size_t varint_write32(uint8_t *out, int32_t v)
{
    uint32_t u = varint_zigzag32(v);
    if (u < 0x80) {
        out[0] = (uint8_t)u;
        return 1;
    }
    return varint_write_slow(out, u);
}

static inline size_t varint_write64(uint8_t *out, int64_t v)
{
    uint64_t u = varint_zigzag64(v);
    if (u < 0x80) {
        out[0] = (uint8_t)u;
        return 1;
    }
    return varint_write_slow(out, u);
}

/* Out-of-line readers for any encoding length; prefer varint_read32/64 below. */
size_t varint_read32_slow(const uint8_t *buf, size_t len, int32_t *out);
size_t varint_read64_slow(const uint8_t *buf, size_t len, int64_t *out);

/* Reads one varint (varlong) from the len bytes at buf into *out. Returns the number of bytes
 * consumed (1..5, or 1..10), or 0 when the encoding is truncated (runs past len), too long, or
 * overflows the type; *out is then untouched. */
static inline size_t varint_read32(const uint8_t *buf, size_t len, int32_t *out)
{
    if (len > 0 && buf[0] < 0x80) {
        *out = varint_unzigzag32(buf[0]);
        return 1;
    }
    return varint_read32_slow(buf, len, out);
}

static inline size_t varint_read64(const uint8_t *buf, size_t len, int64_t *out)
{
    if (len > 0 && buf[0] < 0x80) {
        *out = varint_unzigzag64(buf[0]);
        return 1;
    }
    return varint_read64_slow(buf, len, out);
}

#endif
