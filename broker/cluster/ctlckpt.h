/*
 * ctlckpt: the controller's apply checkpoint, <data>/__controller/applied. It records how far
 * this broker has applied the controller log (group 0) and what the apply produced outside
 * metadata.log (the broker table), so a restart resumes applying after it instead of reading
 * the controller log from index 1. Where it sits: ctl -> ctlckpt (a file beside the controller's
 * plog). The metadata records themselves are durable in metadata.log; the checkpoint counts
 * how many of them it covers (meta_seen) and ctl ignores it when metadata.log holds fewer.
 *
 * Format (little-endian), written to applied.tmp, fdatasync'ed, renamed, directory fsync'ed:
 *   off 0 u32 CTLCKPT_MAGIC ("RLCA") | off 4 u32 version (1) | off 8 u64 applied index |
 *   off 16 u64 meta_seen | off 24 u32 n_brokers | off 28 n_brokers x CTLCKPT_BROKER_BYTES |
 *   then u64 xxh3-64 of everything before it.
 *   broker: off 0 u32 id | 4 u64 incarnation | 12 u64 epoch | 20 u16 port | 22 u16 kafka port |
 *           24 host[64] (NUL-padded) | 88 kafka host[64]
 * The table holds registrations only. Whether a broker is decommissioned (remove-broker) is
 * metadata (meta_broker_decommissioned), rebuilt from metadata.log and carried by a snapshot
 * chunk's records, so neither this file nor the chunk format changed for it.
 */
#ifndef RL_BROKER_CLUSTER_CTLCKPT_H
#define RL_BROKER_CLUSTER_CTLCKPT_H

#include <stddef.h>
#include <stdint.h>

#include "broker/cluster/ctl.h"

#define CTLCKPT_FILE "applied"
#define CTLCKPT_MAGIC 0x41434c52u /* bytes "RLCA" */
#define CTLCKPT_VERSION 1
#define CTLCKPT_HEADER_BYTES 28
#define CTLCKPT_BROKER_BYTES 152
#define CTLCKPT_EVERY 64 /* applied entries between two checkpoints */

struct ctlckpt {
    uint64_t applied;   /* controller log index applied */
    uint64_t meta_seen; /* metadata ("m") records of group 0 up to it */
    uint32_t n_brokers;
    struct ctl_broker brokers[CTL_MAX_BROKERS];
};

/* One broker entry in the format above (CTLCKPT_BROKER_BYTES at p); also the broker table's
 * format in a controller snapshot transfer (ctl.c). */
void ctlckpt_put_broker(uint8_t *p, const struct ctl_broker *b);
void ctlckpt_get_broker(const uint8_t *p, struct ctl_broker *b);

/*
 * A snapshot chunk (ctl.h: PEER_CTL_IMAGE_RESP), the answer to a node behind the controller
 * log's start: the answering node's last durable checkpoint and some of the metadata records
 * it covers. Little-endian:
 *   off 0 u64 req_id | 8 u32 status (0, or a negative code: not served, ask again later) |
 *   12 u64 checkpoint index C | 20 u64 its meta_seen M | 28 u64 first record | 36 u32 n
 *   records | 40 u32 n brokers | 44 n brokers x CTLCKPT_BROKER_BYTES | the records as
 *   metadata.log holds them (u32 len | u64 xxh3(len field || payload) | payload) |
 *   u64 xxh3-64 of everything before it.
 * A chunk with a status carries no brokers, no records and C = M = 0.
 */
#define CTLCKPT_CHUNK_HEADER_BYTES 44
#define CTLCKPT_CHUNK_RECORD_HEADER 12

struct ctlckpt_chunk {
    uint64_t req_id;
    int status;
    uint64_t first;            /* number of the first record (group 0's "m" records, from 0) */
    uint32_t n_records;
    const uint8_t *records;    /* into the decoded buffer: n_records records, checked */
    size_t records_len;
};

/* Bytes of a chunk with n_brokers brokers and records_len bytes of records. */
size_t ctlckpt_chunk_bytes(uint32_t n_brokers, size_t records_len);

/* Writes a chunk into buf (ctlckpt_chunk_bytes of it): ck's index, meta_seen and brokers, and
 * records (n of them, in the metadata.log format, recs_len bytes); with status != 0, ck and
 * recs are ignored (may be NULL). Returns the length. */
size_t ctlckpt_chunk_encode(uint8_t *buf, uint64_t req_id, int status, const struct ctlckpt *ck,
                            uint64_t first, const uint8_t *recs, size_t recs_len, uint32_t n);

/* Checks a whole chunk (sizes, its checksum, every record's length and checksum) and decodes
 * it: *out (records pointing into buf) and *ck (index, meta_seen, brokers). Returns 0 or
 * RL_E_CORRUPT; nothing of a chunk that does not check may be used. */
int ctlckpt_chunk_decode(const uint8_t *buf, size_t len, struct ctlckpt_chunk *out,
                         struct ctlckpt *ck);

/* Writes dir/applied atomically and durably. Blocks (a small file, two fsyncs). Returns 0 or a
 * negative code. */
int ctlckpt_write(const char *dir, const struct ctlckpt *ck);

/* Reads dir/applied: 1 and *out, 0 when there is none, RL_E_CORRUPT when it does not check
 * (the caller replays the whole log), or -errno. Blocks. */
int ctlckpt_read(const char *dir, struct ctlckpt *out);

#endif
