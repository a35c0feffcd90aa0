/*
 * checkpoint: small state files that must be either wholly old or wholly new after a crash
 * (the log-start offset, the storage's clean-shutdown record, a segment's damaged ranges; the
 * broker's producer-state snapshots use it too). Where it sits: beside the partition log, under
 * the broker; all file I/O through io/.
 *
 * A durable checkpoint is written to `<name>.tmp`, fdatasync'ed, renamed over `<name>`, and the
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

struct io;

#define CHECKPOINT_MAX_PAYLOAD (1u << 20) /* checkpoints are small; larger ones are refused */
#define CHECKPOINT_LARGE_MAX (256u << 20)  /* ... unless written with CHECKPOINT_LARGE */
#define CHECKPOINT_OVERHEAD 20u            /* header and checksum bytes around the payload */

enum checkpoint_flags {
    /* fdatasync the file before the rename and fsync the directory after it (two syncs). Without
     * it the new content is atomic but may be lost in a crash (for state that can be rebuilt
     * or that something else makes durable, such as a syncfs at shutdown). */
    CHECKPOINT_DURABLE = 1u << 0,
    /* Allows a payload up to CHECKPOINT_LARGE_MAX (the storage's clean-shutdown record of
     * tens of thousands of logs); the reader's cap decides what it accepts. */
    CHECKPOINT_LARGE = 1u << 1,
};

/* Writes `len` bytes atomically as <dir>/<name> through io (NULL: plain system calls). Blocks.
 * Returns 0 or -errno (RL_E_INVALID_ARGUMENT when len exceeds CHECKPOINT_MAX_PAYLOAD). */
int checkpoint_save(struct io *io, const char *dir, const char *name, const void *data,
                    size_t len, unsigned flags);

/* Reads <dir>/<name> into buf (cap bytes). Returns the payload length, -ENOENT when there is no
 * such checkpoint, RL_E_CORRUPT (reported through RL_CORRUPT) when it is damaged, or -ENOBUFS
 * when cap is too small (checked before the file is read). Blocks. */
int checkpoint_load(struct io *io, const char *dir, const char *name, void *buf, size_t cap);

/* Removes <dir>/<name>; with sync, fsyncs the directory. Returns 0 (also when it did not
 * exist) or -errno. */
int checkpoint_delete(struct io *io, const char *dir, const char *name, int sync);

/* The file image of a checkpoint: encode writes CHECKPOINT_OVERHEAD + len bytes into out;
 * decode checks an image (of at most CHECKPOINT_LARGE_MAX payload bytes) and points *payload
 * into it. decode returns the payload length or RL_E_CORRUPT (not reported: the caller knows
 * the path). */
size_t checkpoint_encode(const void *data, size_t len, uint8_t *out);
int checkpoint_decode(const uint8_t *img, size_t size, const uint8_t **payload);

/* The calls of the first version, on plain system calls, kept for callers that have no io yet
 * (the broker's producer snapshots): durable save, load, remove with a directory sync. */
int checkpoint_write(const char *dir, const char *name, const void *data, size_t len);
int checkpoint_read(const char *dir, const char *name, void *buf, size_t cap);
int checkpoint_remove(const char *dir, const char *name);
int checkpoint_sync_dir(const char *dir);

#endif
