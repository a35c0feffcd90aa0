/*
 * varint: see varint.h. Plain loops bounded by the maximum encoding length; the decoders check
 * the last permitted byte for bits that would not fit the type, so every accepted encoding maps
 * to exactly one value of the type.
 */
#include "common/varint.h"

size_t varint_write_slow(uint8_t *out, uint64_t u)
{
    size_t n = 0;
    while (u >= 0x80) {
        out[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    out[n++] = (uint8_t)u;
    return n;
}

/* Reads an unsigned LEB128 of at most max_bytes bytes whose value fits value_bits bits.
 * Returns bytes consumed, or 0 when truncated, too long, or overflowing. */
static size_t uleb_read(const uint8_t *buf, size_t len, size_t max_bytes, unsigned value_bits,
                        uint64_t *out)
{
    uint64_t u = 0;
    size_t limit = len < max_bytes ? len : max_bytes;
    for (size_t i = 0; i < limit; i++) {
        uint64_t b = buf[i];
        unsigned shift = (unsigned)(7 * i);
        if (i == max_bytes - 1) {
            /* The last byte may carry only the bits left over, and no continuation. */
            unsigned left = value_bits - shift;
            if (b >> left)
                return 0;
        }
        u |= (b & 0x7f) << shift;
        if (b < 0x80) {
            *out = u;
            return i + 1;
        }
    }
    return 0;
}

size_t varint_read32_slow(const uint8_t *buf, size_t len, int32_t *out)
{
    uint64_t u;
    size_t n = uleb_read(buf, len, VARINT_MAX_BYTES, 32, &u);
    if (n)
        *out = varint_unzigzag32((uint32_t)u);
    return n;
}

size_t varint_read64_slow(const uint8_t *buf, size_t len, int64_t *out)
{
    uint64_t u;
    size_t n = uleb_read(buf, len, VARLONG_MAX_BYTES, 64, &u);
    if (n)
        *out = varint_unzigzag64(u);
    return n;
}
