/*
 * fuzz_recovery: partition-log recovery from arbitrary segment bytes. Each input becomes a log
 * directory: a segment file 00000000000000000000.log, optionally an offset index and a
 * clean-shutdown marker. The log must always open, and then serve only whole batches with
 * contiguous, increasing offsets (and, when recovery scanned the file, valid checksums); an
 * append after recovery must land right after the recovered end and read back intact.
 *
 * Input layout: byte 0 flags (bit 0: write a clean-shutdown marker claiming log end
 * bytes[1..2]; bit 1: write bytes[3] * 8 bytes after the header as the .index file), bytes 1-3
 * as said, then the segment bytes. Inputs shorter than 4 bytes are all segment bytes.
 */
#include "tests/fuzz/fuzz.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/batch.h"
#include "common/err.h"
#include "io/io.h"
#include "common/log.h"
#include "storage/checkpoint.h"
#include "storage/plog.h"
#include "storage/plog_debug.h"

static struct io *g_io;
static struct storage *g_st;
static char g_base[PATH_MAX - 64];
static unsigned long g_runs;
static uint8_t g_batch[RL_BATCH_HEADER_SIZE + 64];
static uint32_t g_batch_len;
static uint8_t g_buf[1 << 20];

static void put_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(n == 0 || write(fd, p, n) == (ssize_t)n);
    close(fd);
}

static void setup_once(void)
{
    if (g_io != NULL)
        return;
    /* Every damaged input is reported as corruption; at thousands of inputs a second the
     * reports would cost more than the recovery under test. */
    rl_log_set_level(RL_LOG_OFF);
    int err;
    g_io = io_create(64, &err);
    FUZZ_CHECK(g_io != NULL);
    FUZZ_CHECK(storage_create(g_io, 16, &g_st) == 0);
    const char *tmp = getenv("TMPDIR");
    snprintf(g_base, sizeof(g_base), "%s/rl_fuzz_recovery_%d", tmp ? tmp : "/tmp", (int)getpid());
    mkdir(g_base, 0755);
    /* The batch appended after recovery: one record, built once with the real codec. */
    struct batch_builder *b = batch_builder_create(4096, BATCH_CODEC_NONE, 0);
    struct batch_record_in r = {.key = "k", .key_len = 1, .value = "after-recovery",
                                .value_len = 14, .timestamp = 7};
    const uint8_t *out;
    batch_builder_reset(b, -1, -1, -1);
    FUZZ_CHECK(batch_builder_add(b, &r) == 0);
    int n = batch_builder_finish(b, &out);
    FUZZ_CHECK(n > 0 && (size_t)n <= sizeof(g_batch));
    memcpy(g_batch, out, (size_t)n);
    g_batch_len = (uint32_t)n;
    batch_builder_destroy(b);
}

struct ack {
    int calls, result;
};

static void ack_done(struct plog_append *req, int result)
{
    struct ack *a = req->ctx;
    a->calls++;
    a->result = result;
}

/* Walks the log from start to end checking the serving invariants. */
static void check_served(struct plog *log, bool verified)
{
    uint64_t off = plog_start_offset(log), end = plog_end_offset(log);
    /* Bounded: every step advances off by at least one record. */
    while (off < end) {
        int n = plog_read_copy(log, off, 1, UINT64_MAX, g_buf, sizeof(g_buf));
        FUZZ_CHECK(n > 0);
        struct batch_header h;
        FUZZ_CHECK(batch_header_decode(g_buf, (size_t)n, &h) == 0);
        FUZZ_CHECK(h.batch_len == (uint32_t)n);
        FUZZ_CHECK(h.base_offset == off);
        if (verified)
            FUZZ_CHECK(batch_validate(g_buf, (size_t)n, NULL) == 0);
        off = h.base_offset + h.last_offset_delta + 1;
    }
    FUZZ_CHECK(off == end);
    struct plog_slice s;
    FUZZ_CHECK(plog_read(log, end, 1 << 20, UINT64_MAX, &s) == 0 && s.len == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    char dir[PATH_MAX];
    mkdir(g_base, 0755);
    snprintf(dir, sizeof(dir), "%s/run%lu", g_base, g_runs++);
    FUZZ_CHECK(mkdir(dir, 0755) == 0);
    uint8_t flags = size >= 4 ? data[0] : 0;
    size_t hdr = size >= 4 ? 4 : 0;
    size_t index_len = (flags & 2) ? (size_t)data[3] * 8 : 0;
    if (index_len > size - hdr)
        index_len = size - hdr;
    if (flags & 2)
        put_file(dir, "00000000000000000000.index", data + hdr, index_len);
    put_file(dir, "00000000000000000000.log", data + hdr + index_len, size - hdr - index_len);
    if (flags & 1) {
        uint64_t marker[2] = {(uint64_t)data[1] | (uint64_t)data[2] << 8, 0};
        FUZZ_CHECK(checkpoint_write(dir, "clean-shutdown", marker, sizeof(marker)) == 0);
    }

    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.flush_policy = PLOG_FLUSH_NONE; /* no fsync per input: the fuzzer wants speed */
    cfg.index_interval_bytes = 256;
    struct plog_recovery_report rep;
    struct plog *log = NULL;
    FUZZ_CHECK(plog_open(g_st, dir, &cfg, &rep, &log) == 0);
    FUZZ_CHECK(plog_end_offset(log) >= plog_start_offset(log));
    check_served(log, !rep.clean);

    /* The writer must continue exactly at the recovered end (partial last block and all). */
    uint64_t end = plog_end_offset(log);
    struct ack a = {0, 0};
    struct plog_append req = {.batch = g_batch, .len = g_batch_len, .done = ack_done,
                              .ctx = &a};
    FUZZ_CHECK(plog_append(log, &req) == 0);
    FUZZ_CHECK(req.base_offset == end);
    for (int i = 0; i < 1000 && a.calls == 0; i++)
        io_run(g_io, 10 * 1000000ull);
    FUZZ_CHECK(a.calls == 1 && a.result == 0);
    int n = plog_read_copy(log, end, 1 << 20, UINT64_MAX, g_buf, sizeof(g_buf));
    FUZZ_CHECK(n == (int)g_batch_len);
    FUZZ_CHECK(memcmp(g_buf + 16, g_batch + 16, g_batch_len - 16) == 0);
    check_served(log, !rep.clean);
    FUZZ_CHECK(plog_delete(log) == 0);
    /* Leave nothing behind, even when the process ends right after this input. */
    storage_debug_sync_background(g_st);
    rmdir(g_base);
    return 0;
}
