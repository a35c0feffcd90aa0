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
 */
#ifndef RL_BROKER_CLUSTER_CTLCKPT_H
#define RL_BROKER_CLUSTER_CTLCKPT_H

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

/* Writes dir/applied atomically and durably. Blocks (a small file, two fsyncs). Returns 0 or a
 * negative code. */
int ctlckpt_write(const char *dir, const struct ctlckpt *ck);

/* Reads dir/applied: 1 and *out, 0 when there is none, RL_E_CORRUPT when it does not check
 * (the caller replays the whole log), or -errno. Blocks. */
int ctlckpt_read(const char *dir, struct ctlckpt *out);

#endif
