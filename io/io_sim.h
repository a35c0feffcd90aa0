/*
 * io_sim: the simulated back-end of the I/O layer, for tests (SQLite's test VFS and crash
 * simulator, TigerBeetle's simulated io). Storage code runs on it unchanged: io_create_sim()
 * returns a `struct io` like io_create() does.
 *
 * Files live in memory. Each file keeps what was written apart from what was made durable (by
 * fdatasync, fsync or syncfs); each directory keeps its entries apart from the entries made
 * durable by a sync of that directory (or syncfs). A power cut (io_sim_cut_power_at/now) turns
 * the machine off: every later op fails with -EIO. io_sim_restart() then brings it back as a
 * disk would come back: durable data survives; of the bytes written but not synced, each
 * 512-byte sector survives or not (seeded), and a file whose size changed without a sync comes
 * back at the old or the new size (new bytes that did not survive read as zeros); directory
 * operations not made durable survive as a seeded prefix, in the order they were made (a
 * journal replays in order).
 *
 * Async ops run inside io_run(): every op prepared since the last run starts, chains linked
 * with IO_LINK in order, unlinked ops in a seeded random order, and some (seeded) stay in
 * flight until a later run, as a busy disk's would. Timers use a simulated clock that advances
 * only inside io_run (to the next timer when nothing else can complete), so a test of hours of
 * retention runs in milliseconds. Everything is deterministic for a given seed and sequence of
 * calls. Single-threaded: only the owner thread may use a simulated io (background jobs go
 * through io_prep_work, which runs them at a seeded moment inside io_run).
 *
 * Faults: io_sim_fail_nth() fails a chosen later op of some kinds with a chosen error (EIO,
 * ENOSPC); io_sim_set_capacity() makes the file system full at a size, so writes and
 * allocations beyond it fail with ENOSPC until something is deleted or the capacity is raised.
 * O_DIRECT descriptors refuse unaligned offsets, lengths and buffers (512 bytes) with -EINVAL,
 * as the kernel does. Sockets are not simulated (those ops complete with -EOPNOTSUPP).
 */
#ifndef RL_IO_IO_SIM_H
#define RL_IO_IO_SIM_H

#include <stdbool.h>
#include <stdint.h>

struct io;

struct io_sim_config {
    uint64_t seed;
    uint64_t capacity_bytes;    /* 0: unlimited */
    unsigned keep_permille;     /* chance (per mille) that an unsynced sector survives a cut;
                                   0 means "drop every unsynced byte" */
    unsigned delay_permille;    /* chance that a started op stays in flight one more run */
    int64_t wall_start_ms;      /* io_wall_ms() at time 0 (0: a fixed date in 2026) */
};

#define IO_SIM_SECTOR 512u

/* Creates a simulated io. Returns NULL and sets *err on allocation failure. */
struct io *io_create_sim(const struct io_sim_config *cfg, int *err);

/* Kinds of ops for fault injection and counting. */
enum io_sim_op_mask {
    IO_SIM_OP_WRITE = 1u << 0,    /* write, writev, pwrite */
    IO_SIM_OP_SYNC = 1u << 1,     /* fdatasync, fsync, directory sync, syncfs */
    IO_SIM_OP_ALLOCATE = 1u << 2, /* fallocate */
    IO_SIM_OP_RENAME = 1u << 3,
    IO_SIM_OP_TRUNCATE = 1u << 4,
    IO_SIM_OP_CREATE = 1u << 5,   /* open with O_CREAT of a new file, mkdir */
    IO_SIM_OP_REMOVE = 1u << 6,   /* unlink, rmdir */
    IO_SIM_OP_ALL = 0x7f,
};

/* The n-th op (n >= 1, counted from now) whose kind is in `mask` fails with `err` and changes
 * nothing. Up to 8 such faults may be armed at once. */
void io_sim_fail_nth(struct io *io, unsigned mask, uint64_t n, int err);

/* Bytes the files may occupy in all (0: unlimited); beyond it writes, allocations and growing
 * truncations fail with -ENOSPC. Lowering it below what is used is allowed. */
void io_sim_set_capacity(struct io *io, uint64_t bytes);
uint64_t io_sim_used_bytes(struct io *io);

/* Ops that change files or directories (the kinds in IO_SIM_OP_ALL) since creation. A power cut
 * "at op n" lands just before the n-th of them. */
uint64_t io_sim_mutations(struct io *io);

/* Turns the power off just before mutation number `n` (as counted by io_sim_mutations) runs;
 * 0 disarms. io_sim_cut_power_now() turns it off at once. */
void io_sim_cut_power_at(struct io *io, uint64_t n);
void io_sim_cut_power_now(struct io *io);
bool io_sim_powered_off(struct io *io);

/* Turns the power back on: files and directories as they survived (see above), every
 * descriptor closed, ops still in flight dropped (their callbacks never run). Objects that used
 * the io before the cut must have been torn down first. */
void io_sim_restart(struct io *io);

/* Moves the simulated clock forward (as if the machine sat idle). */
void io_sim_advance(struct io *io, uint64_t ns);

#endif
