/*
 * gen_corpus_recovery: writes the seed corpus of the recovery harness (fuzz_recovery.c) into the
 * directory given as argv[1]: real segments written by the partition log, then torn, damaged,
 * padded, with and without an index and a clean-shutdown marker. Deterministic output.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/batch.h"
#include "io/io.h"
#include "storage/plog.h"

static uint8_t seg[16384], idx[4096];
static size_t seg_len, idx_len;

static void done(struct plog_append *req, int result)
{
    (void)result;
    *(int *)req->ctx += 1;
}

static size_t slurp(const char *path, uint8_t *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? 0 : read(fd, buf, cap);
    if (fd >= 0)
        close(fd);
    return n > 0 ? (size_t)n : 0;
}

/* Writes a 6-batch log with the real writer and keeps its segment and index bytes. */
static void make_log(void)
{
    char dir[] = "/tmp/rl_gen_corpus_XXXXXX", path[256];
    int err, acked = 0;
    if (mkdtemp(dir) == NULL)
        exit(1);
    struct io *io = io_create(64, &err);
    struct storage *st;
    struct plog *log;
    struct plog_config cfg;
    plog_config_default(&cfg);
    cfg.index_interval_bytes = 256;
    if (io == NULL || storage_create(io, 8, &st) || plog_open(st, dir, &cfg, NULL, &log))
        exit(1);
    struct batch_builder *b = batch_builder_create(8192, BATCH_CODEC_NONE, 0);
    static struct plog_append reqs[6];
    static uint8_t copies[6][2048];
    for (int i = 0; i < 6; i++) {
        char val[200];
        memset(val, 'a' + i, sizeof(val));
        batch_builder_reset(b, -1, -1, -1);
        for (int r = 0; r <= i % 3; r++) {
            struct batch_record_in rec = {.key = "key", .key_len = 3, .value = val,
                                          .value_len = 50 + (size_t)i * 30, .timestamp = 1000 + i};
            batch_builder_add(b, &rec);
        }
        const uint8_t *out;
        int n = batch_builder_finish(b, &out);
        memcpy(copies[i], out, (size_t)n);
        reqs[i] = (struct plog_append){.batch = copies[i], .len = (uint32_t)n, .done = done,
                                       .ctx = &acked};
        plog_append(log, &reqs[i]);
    }
    while (acked < 6)
        io_run(io, UINT64_MAX);
    plog_close(log);
    snprintf(path, sizeof(path), "%s/00000000000000000000.log", dir);
    seg_len = slurp(path, seg, sizeof(seg));
    unlink(path);
    snprintf(path, sizeof(path), "%s/00000000000000000000.index", dir);
    idx_len = slurp(path, idx, sizeof(idx));
    unlink(path);
    snprintf(path, sizeof(path), "%s/00000000000000000000.timeindex", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/clean-shutdown", dir);
    unlink(path);
    rmdir(dir);
    batch_builder_destroy(b);
    storage_destroy(st);
    io_destroy(io);
}

static void emit(const char *outdir, const char *name, uint8_t flags, uint16_t leo,
                 const uint8_t *index, size_t ilen, const uint8_t *log, size_t llen)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", outdir, name);
    FILE *f = fopen(path, "wb");
    uint8_t hdr[4] = {flags, (uint8_t)leo, (uint8_t)(leo >> 8), (uint8_t)(ilen / 8)};
    fwrite(hdr, 1, 4, f);
    fwrite(index, 1, ilen, f);
    fwrite(log, 1, llen, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    make_log();
    uint8_t work[16384 + 8192];
    uint16_t leo = 1 + 2 + 3 + 1 + 2 + 3; /* records in the six batches */
    emit(argv[1], "valid", 0, 0, NULL, 0, seg, seg_len);
    emit(argv[1], "torn", 0, 0, NULL, 0, seg, seg_len - 100);
    memcpy(work, seg, seg_len);
    work[seg_len / 2] ^= 0x40;
    emit(argv[1], "flipped", 0, 0, NULL, 0, work, seg_len);
    emit(argv[1], "clean", 1, leo, idx, idx_len, seg, seg_len);
    emit(argv[1], "clean-wrong-end", 3, 3, idx, idx_len, seg, seg_len);
    emit(argv[1], "index-unclean", 2, 0, idx, idx_len, seg, seg_len);
    memcpy(work, seg, seg_len);
    memset(work + seg_len, 0, 5000);
    emit(argv[1], "zero-tail", 0, 0, NULL, 0, work, seg_len + 5000);
    memset(work + seg_len, 0xa5, 300);
    emit(argv[1], "junk-tail", 0, 0, NULL, 0, work, seg_len + 300);
    emit(argv[1], "empty", 0, 0, NULL, 0, seg, 0);
    return 0;
}
