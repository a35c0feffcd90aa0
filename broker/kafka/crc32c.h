/*
 * crc32c: CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, initial value and final xor
 * 0xFFFFFFFF), the checksum of Kafka's RecordBatch v2. Kafka listener path: produce checks a
 * client batch's CRC before translating it (kbatch); fetch computes it for every stored batch it
 * serves as a Kafka batch, over the unchanged records.
 *
 * On x86-64 with SSE4.2 the crc32 instruction runs three independent streams over 8 KiB (then
 * 256-byte) blocks and joins them with precomputed shift tables, since one stream is bound by
 * the instruction's 3-cycle latency; elsewhere a slicing-by-8 table does 8 bytes per step. Both
 * give the same value; the choice is made once at run time. Debian 12 packages no maintained
 * CRC-32C library for C (Google's crc32c is not in bookworm), hence this module.
 * Thread-safe; tables are built once on first use; nothing allocates.
 */
#ifndef RL_BROKER_KAFKA_CRC32C_H
#define RL_BROKER_KAFKA_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc, the CRC-32C of earlier bytes (0 for none), over len more bytes:
 * crc32c_update(crc32c_update(0, a, n), b, m) == CRC-32C of a followed by b. */
uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len);

/* The same with the portable table code only (tests compare the two paths). */
uint32_t crc32c_update_table(uint32_t crc, const void *buf, size_t len);

/* 1 when crc32c_update uses the SSE4.2 instruction on this machine. */
int crc32c_hardware(void);

#endif
