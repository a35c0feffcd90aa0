/*
 * endian: little-endian loads and stores at any alignment, for the on-disk and wire formats
 * (batch headers, metadata-log records, checkpoints). One definition so every format agrees and
 * a big-endian host would still read and write the same bytes.
 */
#ifndef RL_COMMON_ENDIAN_H
#define RL_COMMON_ENDIAN_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t rl_load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return le64toh(v);
}

static inline uint32_t rl_load_le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}

static inline uint16_t rl_load_le16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return le16toh(v);
}

static inline void rl_store_le64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof(v));
}

static inline void rl_store_le32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof(v));
}

static inline void rl_store_le16(uint8_t *p, uint16_t v)
{
    v = htole16(v);
    memcpy(p, &v, sizeof(v));
}

#endif
