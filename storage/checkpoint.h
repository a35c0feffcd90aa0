/*
 * checkpoint: small state files that must be either wholly old or wholly new after a crash
 * (the log-start offset, the clean-shutdown marker; the broker's leader-epoch and producer-state
 * snapshots may use it too). Where it sits: beside the partition log, under the broker.
 *
 * A checkpoint is written to `<name>.tmp`, fdatasync'ed, renamed over `<name>`, and the
 * directory fsync'ed, so a reader sees the old or the new content, never a mix. The file carries
 * an xxh3-64 checksum, so a damaged checkpoint is detected rather than trusted.
 *
 * On-disk layout (little-endian):
 *   off 0  u32 magic "RLCP" (0x50434c52) | off 4 u32 version (1) | off 8 u32 payload_len |
 *   off 12 payload | then u64 xxh3-64 of bytes [0, 12 + payload_len)
 */
#ifndef RL_STORAGE_CHECKPOINT_H
#define RL_STORAGE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#define CHECKPOINT_MAX_PAYLOAD (1u << 20) /* checkpoints are small; larger ones are refused */

/* Writes `len` bytes atomically as <dir>/<name>. Blocks (two fsyncs). Returns 0 or -errno
 * (RL_E_INVALID_ARGUMENT when len exceeds CHECKPOINT_MAX_PAYLOAD). */
int checkpoint_write(const char *dir, const char *name, const void *data, size_t len);

/* Reads <dir>/<name> into buf (cap bytes). Returns the payload length, -ENOENT when there is no
 * such checkpoint, RL_E_CORRUPT (reported through RL_CORRUPT) when it is damaged, or -ENOBUFS
 * when cap is too small. Blocks. */
int checkpoint_read(const char *dir, const char *name, void *buf, size_t cap);

/* Removes <dir>/<name> and fsyncs the directory. Returns 0 (also when it did not exist). */
int checkpoint_remove(const char *dir, const char *name);

/* fsyncs a directory so entries created, renamed or removed in it are durable. */
int checkpoint_sync_dir(const char *dir);

#endif
