/*
 * bench_disk: the raw disk limit that benchmarks compare against, measured in the same run:
 * sequential O_DIRECT writes through io_uring (block_bytes each, qd in flight) into a
 * preallocated file in dir, then removed. Used by `ringlog bench`.
 */
#ifndef RL_BENCH_DISK_H
#define RL_BENCH_DISK_H

#include <stddef.h>

/* Returns the write bandwidth in MB/s (10^6 bytes per second), or a negative errno with a
 * message in err. Blocks for the duration of the writes; allocates block_bytes * qd. */
double bench_disk_write_mbps(const char *dir, size_t total_bytes, size_t block_bytes,
                             unsigned qd, char *err, size_t errlen);

#endif
