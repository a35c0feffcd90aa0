/*
 * cli_probe: the physical limits `ringlog bench` compares its figures against, measured in the
 * same run because absolute figures drift on shared machines and only ratios travel:
 *
 *  - raw disk write and read bandwidth of the file system under a directory: sequential
 *    O_DIRECT writes, then reads, of block_bytes each with qd of them in flight, on a
 *    preallocated file (the way the partition log writes its preallocated segments), so the
 *    figure is the device's and not the page cache's or the block allocator's;
 *  - the latency of a durable 4 KiB append (O_DIRECT write + fdatasync), the floor under any
 *    acknowledgement that waits for the disk, alone or while the disk takes a write load;
 *  - loopback TCP bandwidth: one connection on 127.0.0.1, one thread sending, one receiving,
 *    as a broker sends fetched data to one consumer connection.
 *
 * qd is kept by qd threads doing pread/pwrite, not by io_uring: the tool stays free of the I/O
 * layer's dependencies (at 1 MiB per call, system-call cost is far below the device's time).
 * Both probes block for their duration and allocate their buffers once.
 */
#ifndef RL_CLIENT_CLI_PROBE_H
#define RL_CLIENT_CLI_PROBE_H

#include <stddef.h>
#include <stdint.h>

#define PROBE_MAX_QD 64

struct probe_disk {
    double write_mbps; /* 10^6 bytes per second, including one fdatasync at the end */
    double read_mbps;
};

/* Writes total_bytes to a fresh unlinked O_DIRECT file in dir, then reads them back. Returns 0,
 * or a negative errno with a message naming the directory and the fix in err. */
int probe_disk_run(const char *dir, size_t total_bytes, size_t block_bytes, unsigned qd,
                   struct probe_disk *out, char *err, size_t errlen);

/* The latency floor of an acknowledgement with flush.policy=batch: `count` times, one 4 KiB
 * O_DIRECT write at the end of a preallocated file in dir followed by fdatasync, timed
 * together. Fills the p50 and p99 in milliseconds. Returns 0 or a negative errno with a
 * message in err. */
int probe_fsync_run(const char *dir, unsigned count, double *p50_ms, double *p99_ms, char *err,
                    size_t errlen);

/* What a durable append costs while the disk takes a given write load. */
struct probe_loaded {
    double p50_ms, p99_ms; /* of each 4 KiB unit, from when it was due to when it was durable */
    uint64_t bytes;        /* what the streams wrote: every unit due before the run's end */
    double seconds;        /* from the start until the last of them was durable */
    double mbps;           /* bytes / seconds, in 10^6 bytes per second: below what was asked,
                            * the disk fell behind */
};

/* The latency floor of an acknowledgement under load: `streams` threads (the logs of the
 * brokers sharing the disk), each a perfect group-committing writer of its own preallocated
 * O_DIRECT file in dir: the data due at `mbps` MB/s (per stream) is written in one write of at
 * most 1 MiB, then fdatasync, again and again until everything due within `seconds` is durable
 * (the file is rewritten from its start every PROBE_LOADED_WRAP bytes). Each 4 KiB unit's
 * latency runs from the time it was due to the end of the fdatasync that covered it, so a disk
 * that falls behind the pace shows in the figure (no coordinated omission). No network and no
 * CPU work: what a broker adds to it is its own cost. Returns 0 or a negative errno with a
 * message in err. */
#define PROBE_LOADED_WRAP (32u << 20)
int probe_fsync_loaded_run(const char *dir, unsigned streams, double mbps, double seconds,
                           struct probe_loaded *out, char *err, size_t errlen);

/* Sends total_bytes over one loopback TCP connection in chunk_bytes writes. Fills *mbps.
 * Returns 0 or a negative errno with a message in err. */
int probe_loopback_run(size_t total_bytes, size_t chunk_bytes, double *mbps, char *err,
                       size_t errlen);

#endif
