/*
 * test_broker_metalog: the metadata log (broker/meta/metalog.h) on a temporary file: records
 * replay in order across reopenings; a torn tail and a corrupt last record are cut and later
 * appends continue from the cut; damage in the middle is skipped and the records after it
 * kept; seeded power cuts on the simulated back-end never lose an acknowledged record. And its format, pinned: a metadata.log written by the broker of
 * commit c904487 decodes into the records it holds, and encoding those records again
 * (broker/meta/meta_record.h) reproduces the file byte for byte.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/meta/meta_record.h"
#include "broker/meta/metalog.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"
#include "io/io_sim.h"
#include "tests/lib/tl_seed.h"

struct seen {
    int n;
    char rec[16][32];
};

static int collect(void *ctx, const uint8_t *p, uint32_t len)
{
    struct seen *s = ctx;
    cr_assert_lt(s->n, 16);
    cr_assert_lt(len, 32);
    memcpy(s->rec[s->n], p, len);
    s->rec[s->n][len] = 0;
    s->n++;
    return 0;
}

static char path[64];

static void setup(void)
{
    snprintf(path, sizeof(path), "/tmp/ringlog-metalog-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    unlink(path);
}

static void teardown(void)
{
    unlink(path);
}

TestSuite(metalog, .init = setup, .fini = teardown);

static void reopen(struct seen *s, struct metalog_stats *st)
{
    struct metalog *ml;
    memset(s, 0, sizeof(*s));
    cr_assert_eq(metalog_open(NULL, path, collect, s, &ml, st), 0);
    metalog_close(ml);
}

/* Appended records come back, in order, after reopening. */
Test(metalog, replay_in_order)
{
    struct metalog *ml;
    struct seen s = {0};
    cr_assert_eq(metalog_open(NULL, path, collect, &s, &ml, NULL), 0);
    cr_assert_eq(s.n, 0);
    cr_assert_eq(metalog_append(ml, (const uint8_t *)"one", 3), 0);
    cr_assert_eq(metalog_append(ml, (const uint8_t *)"", 0), 0);
    cr_assert_eq(metalog_append(ml, (const uint8_t *)"three", 5), 0);
    metalog_close(ml);
    struct metalog_stats st;
    reopen(&s, &st);
    cr_assert_eq(s.n, 3);
    cr_assert_str_eq(s.rec[0], "one");
    cr_assert_str_eq(s.rec[1], "");
    cr_assert_str_eq(s.rec[2], "three");
    cr_assert_eq(st.records, 3);
    cr_assert_eq(st.bytes_truncated, 0);
}

/* Every cut inside the last record loses exactly that record, and appends continue. */
Test(metalog, torn_tail_every_length)
{
    struct metalog *ml;
    struct seen s = {0};
    cr_assert_eq(metalog_open(NULL, path, collect, &s, &ml, NULL), 0);
    cr_assert_eq(metalog_append(ml, (const uint8_t *)"keep", 4), 0);
    uint64_t good = metalog_size(ml);
    cr_assert_eq(metalog_append(ml, (const uint8_t *)"lost-record", 11), 0);
    uint64_t full = metalog_size(ml);
    metalog_close(ml);
    for (uint64_t cut = good + 1; cut < full; cut++) {
        cr_assert_eq(truncate(path, (off_t)cut), 0);
        struct metalog_stats st;
        reopen(&s, &st);
        cr_assert_eq(s.n, 1, "cut at %llu", (unsigned long long)cut);
        cr_assert_str_eq(s.rec[0], "keep");
        cr_assert_eq(st.bytes_truncated, cut - good);
        struct stat sb;
        cr_assert_eq(stat(path, &sb), 0);
        cr_assert_eq((uint64_t)sb.st_size, good);
        /* Rebuild the tail for the next cut. */
        cr_assert_eq(metalog_open(NULL, path, collect, &s, &ml, NULL), 0);
        cr_assert_eq(metalog_append(ml, (const uint8_t *)"lost-record", 11), 0);
        metalog_close(ml);
    }
}

/* A flipped byte in the last record's payload (nothing good after it) is a damaged tail: the
 * record is cut, counted as damage (it may have been acknowledged), and appends continue. */
Test(metalog, corrupt_record_cut)
{
    struct metalog *ml;
    struct seen s = {0};
    cr_assert_eq(metalog_open(NULL, path, collect, &s, &ml, NULL), 0);
    cr_assert_eq(metalog_append(ml, (const uint8_t *)"first", 5), 0);
    uint64_t good = metalog_size(ml);
    cr_assert_eq(metalog_append(ml, (const uint8_t *)"second", 6), 0);
    metalog_close(ml);
    int fd = open(path, O_RDWR);
    uint8_t c;
    cr_assert_eq(pread(fd, &c, 1, (off_t)good + 14), 1);
    c ^= 0x20;
    cr_assert_eq(pwrite(fd, &c, 1, (off_t)good + 14), 1);
    close(fd);
    struct metalog_stats st;
    reopen(&s, &st);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(st.damaged_bytes, 18);
    cr_assert_eq(st.bytes_truncated, 18);
    cr_assert_eq(metalog_open(NULL, path, collect, &s, &ml, NULL), 0);
    cr_assert_eq(metalog_append(ml, (const uint8_t *)"third", 5), 0);
    metalog_close(ml);
    reopen(&s, NULL);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.rec[1], "third");
}

/* Damage in the middle (a flipped payload byte, then a broken length field) is reported and
 * skipped: the records after it are replayed and kept, the file is not cut, the stats count
 * the damaged bytes, and appends go on after the last record. */
Test(metalog, damaged_range_skipped)
{
    struct metalog *ml;
    struct seen s = {0};
    cr_assert_eq(metalog_open(NULL, path, collect, &s, &ml, NULL), 0);
    uint64_t at[5];
    const char *recs[5] = {"first", "second", "third", "fourth", "fifth"};
    for (int i = 0; i < 5; i++) {
        at[i] = metalog_size(ml);
        cr_assert_eq(metalog_append(ml, (const uint8_t *)recs[i], (uint32_t)strlen(recs[i])), 0);
    }
    uint64_t size = metalog_size(ml);
    metalog_close(ml);
    int fd = open(path, O_RDWR);
    uint8_t c;
    cr_assert_eq(pread(fd, &c, 1, (off_t)at[1] + 14), 1);
    c ^= 0x20;
    cr_assert_eq(pwrite(fd, &c, 1, (off_t)at[1] + 14), 1); /* "second": payload */
    c = 0xff;
    cr_assert_eq(pwrite(fd, &c, 1, (off_t)at[3] + 3), 1);  /* "fourth": length field */
    close(fd);
    struct metalog_stats st;
    reopen(&s, &st);
    cr_assert_eq(s.n, 3, "replay stopped at the damage (%d records)", s.n);
    cr_assert_str_eq(s.rec[0], "first");
    cr_assert_str_eq(s.rec[1], "third");
    cr_assert_str_eq(s.rec[2], "fifth");
    cr_assert_eq(st.damaged_ranges, 2);
    cr_assert_eq(st.damaged_bytes, (at[2] - at[1]) + (at[4] - at[3]));
    cr_assert_eq(st.bytes_truncated, 0);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq((uint64_t)sb.st_size, size, "good records after the damage were cut");
    cr_assert_eq(metalog_open(NULL, path, collect, &s, &ml, NULL), 0);
    cr_assert_eq(metalog_append(ml, (const uint8_t *)"sixth", 5), 0);
    metalog_close(ml);
    reopen(&s, &st);
    cr_assert_eq(s.n, 4);
    cr_assert_str_eq(s.rec[3], "sixth");
}

/* A file that is not a metadata log is refused rather than overwritten. */
Test(metalog, bad_magic_refused)
{
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    cr_assert_eq(write(fd, "NOTMETA!xxxxxxxxxxxx", 20), 20);
    close(fd);
    struct metalog *ml;
    struct seen s = {0};
    cr_assert_eq(metalog_open(NULL, path, collect, &s, &ml, NULL), RL_E_CORRUPT);
}

/* metadata.log of tests/fixtures/datadir-v1.tar.gz (written by the broker of commit c904487):
 * create plain (2 partitions, retention.ms=86400000), create ranged (range, split "m"), alter
 * ranged (segment.bytes=65536), create idem (segment.bytes=4096), create gone (3), delete
 * gone, producer-id block end 1000, create __consumer_offsets (8). */
static const uint8_t golden_metalog[] = {
  0x52, 0x4c, 0x4d, 0x45, 0x54, 0x41, 0x30, 0x31, 0x27, 0x00, 0x00, 0x00,
  0x07, 0xb4, 0x43, 0xf7, 0x8a, 0xde, 0xfe, 0x2f, 0x0a, 0x25, 0x0a, 0x05,
  0x70, 0x6c, 0x61, 0x69, 0x6e, 0x10, 0x02, 0x18, 0x01, 0x32, 0x18, 0x0a,
  0x0c, 0x72, 0x65, 0x74, 0x65, 0x6e, 0x74, 0x69, 0x6f, 0x6e, 0x2e, 0x6d,
  0x73, 0x12, 0x08, 0x38, 0x36, 0x34, 0x30, 0x30, 0x30, 0x30, 0x30, 0x13,
  0x00, 0x00, 0x00, 0x0c, 0xf3, 0x36, 0x02, 0x54, 0x67, 0x4e, 0x91, 0x0a,
  0x11, 0x0a, 0x06, 0x72, 0x61, 0x6e, 0x67, 0x65, 0x64, 0x10, 0x02, 0x18,
  0x01, 0x20, 0x01, 0x2a, 0x01, 0x6d, 0x22, 0x00, 0x00, 0x00, 0x01, 0x7c,
  0x17, 0x77, 0xa5, 0xcc, 0x4a, 0x5c, 0x1a, 0x20, 0x0a, 0x06, 0x72, 0x61,
  0x6e, 0x67, 0x65, 0x64, 0x22, 0x16, 0x0a, 0x0d, 0x73, 0x65, 0x67, 0x6d,
  0x65, 0x6e, 0x74, 0x2e, 0x62, 0x79, 0x74, 0x65, 0x73, 0x12, 0x05, 0x36,
  0x35, 0x35, 0x33, 0x36, 0x23, 0x00, 0x00, 0x00, 0x4b, 0x5c, 0xae, 0xe8,
  0x9e, 0x5a, 0x63, 0xbd, 0x0a, 0x21, 0x0a, 0x04, 0x69, 0x64, 0x65, 0x6d,
  0x10, 0x01, 0x18, 0x01, 0x32, 0x15, 0x0a, 0x0d, 0x73, 0x65, 0x67, 0x6d,
  0x65, 0x6e, 0x74, 0x2e, 0x62, 0x79, 0x74, 0x65, 0x73, 0x12, 0x04, 0x34,
  0x30, 0x39, 0x36, 0x0c, 0x00, 0x00, 0x00, 0x08, 0x95, 0xcb, 0xc2, 0x70,
  0x7c, 0xda, 0xb0, 0x0a, 0x0a, 0x0a, 0x04, 0x67, 0x6f, 0x6e, 0x65, 0x10,
  0x03, 0x18, 0x01, 0x06, 0x00, 0x00, 0x00, 0x13, 0xf5, 0x0a, 0x38, 0xcc,
  0x32, 0x62, 0x7f, 0x12, 0x04, 0x67, 0x6f, 0x6e, 0x65, 0x03, 0x00, 0x00,
  0x00, 0x05, 0xcc, 0x24, 0xf8, 0x5a, 0xe8, 0xf3, 0x29, 0x20, 0xe8, 0x07,
  0x1a, 0x00, 0x00, 0x00, 0x26, 0xc3, 0xbc, 0xe5, 0xbd, 0x8d, 0xf2, 0x7e,
  0x0a, 0x18, 0x0a, 0x12, 0x5f, 0x5f, 0x63, 0x6f, 0x6e, 0x73, 0x75, 0x6d,
  0x65, 0x72, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x10, 0x08,
  0x18, 0x01
};

struct golden_replay {
    struct metalog *out;   /* the copy being written through the encoder */
    int n;
    struct meta_record_decoded recs[8];
};

/* Decodes each record, keeps it, and appends its re-encoding to the copy. */
static int golden_collect(void *ctx, const uint8_t *p, uint32_t len)
{
    struct golden_replay *g = ctx;
    cr_assert_lt(g->n, 8);
    cr_assert_eq(meta_record_decode(p, len, &g->recs[g->n]), 0);
    uint8_t *enc;
    size_t enc_len;
    cr_assert_eq(meta_record_encode(&g->recs[g->n].rec, &enc, &enc_len), 0);
    cr_assert_eq(enc_len, len, "record %d re-encodes to %zu bytes, not %u", g->n, enc_len, len);
    cr_assert_eq(memcmp(enc, p, len), 0, "record %d re-encodes differently", g->n);
    cr_assert_eq(metalog_append(g->out, enc, (uint32_t)enc_len), 0);
    free(enc);
    g->n++;
    return 0;
}

/* The committed bytes decode into the records they hold, and the encoder reproduces them. */
Test(metalog, golden_format)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    cr_assert_eq(write(fd, golden_metalog, sizeof(golden_metalog)),
                 (ssize_t)sizeof(golden_metalog));
    close(fd);
    char copy[80];
    snprintf(copy, sizeof(copy), "%s.copy", path);
    unlink(copy);
    struct golden_replay g = {0};
    cr_assert_eq(metalog_open(NULL, copy, collect, &(struct seen){0}, &g.out, NULL), 0);
    struct metalog *ml;
    cr_assert_eq(metalog_open(NULL, path, golden_collect, &g, &ml, NULL), 0);
    metalog_close(ml);
    metalog_close(g.out);
    cr_assert_eq(g.n, 8);
    const struct meta_record *r = &g.recs[0].rec;
    cr_assert_eq(r->kind, META_RECORD_CREATE_TOPIC);
    cr_assert_str_eq(r->spec.name, "plain");
    cr_assert_eq(r->spec.partitions, 2);
    cr_assert_eq(r->spec.replication_factor, 1);
    cr_assert_eq(r->spec.n_configs, 1);
    cr_assert_str_eq(r->spec.configs[0].key, "retention.ms");
    cr_assert_str_eq(r->spec.configs[0].value, "86400000");
    r = &g.recs[1].rec;
    cr_assert_eq(r->spec.partitioner, META_PARTITIONER_RANGE);
    cr_assert_eq(r->spec.n_split_keys, 1);
    cr_assert_eq(r->spec.split_keys[0].len, 1);
    cr_assert_eq(r->spec.split_keys[0].data[0], 'm');
    r = &g.recs[2].rec;
    cr_assert_eq(r->kind, META_RECORD_ALTER_CONFIGS);
    cr_assert_str_eq(r->name, "ranged");
    cr_assert_eq(r->n_configs, 1);
    cr_assert_str_eq(r->configs[0].value, "65536");
    cr_assert_eq(g.recs[5].rec.kind, META_RECORD_DELETE_TOPIC);
    cr_assert_str_eq(g.recs[5].rec.name, "gone");
    cr_assert_eq(g.recs[6].rec.kind, META_RECORD_PRODUCER_ID_BLOCK);
    cr_assert_eq(g.recs[6].rec.producer_id_block_end, 1000);
    cr_assert_str_eq(g.recs[7].rec.spec.name, "__consumer_offsets");
    cr_assert_eq(g.recs[7].rec.spec.partitions, 8);
    for (int i = 0; i < g.n; i++)
        meta_record_free(&g.recs[i]);
    /* The copy written through the encoder is the same file. */
    uint8_t buf[sizeof(golden_metalog) + 1];
    fd = open(copy, O_RDONLY);
    cr_assert_eq(read(fd, buf, sizeof(buf)), (ssize_t)sizeof(golden_metalog));
    close(fd);
    unlink(copy);
    cr_assert_eq(memcmp(buf, golden_metalog, sizeof(golden_metalog)), 0);
}

/* Seeded power cuts and failed syncs on the simulated back-end: records are appended until the
 * power goes off before a seeded file operation (or a seeded fdatasync fails, after which the
 * log refuses appends); after the restart the replay is a prefix of what was appended that
 * holds every acknowledged record, and appends go on. */
Test(metalog, power_cuts_sim)
{
    uint64_t seed = tl_seed("metalog.power_cuts_sim");
    rl_log_set_level(RL_LOG_OFF);
    for (uint64_t i = 0; i < 300; i++) {
        uint64_t rng = tl_rand_init(seed, i);
        struct io_sim_config sc = {.seed = tl_rand(&rng), .keep_permille =
                                   (unsigned)(tl_rand(&rng) % 1001)};
        int err;
        struct io *io = io_create_sim(&sc, &err);
        cr_assert_not_null(io);
        cr_assert_eq(io_dir_make(io, "/m", 0755), 0);
        cr_assert_eq(io_dir_sync(io, "/"), 0);
        struct metalog *ml;
        struct seen s = {0};
        cr_assert_eq(metalog_open(io, "/m/metadata.log", collect, &s, &ml, NULL), 0);
        if (tl_rand(&rng) % 4 == 0)
            io_sim_fail_nth(io, IO_SIM_OP_SYNC, 1 + tl_rand(&rng) % 12, -EIO);
        io_sim_cut_power_at(io, io_sim_mutations(io) + 1 + tl_rand(&rng) % 40);
        int acked = 0, written = 0;
        bool failed = false;
        for (int k = 0; k < 14 && !io_sim_powered_off(io); k++) {
            char rec[16];
            int len = snprintf(rec, sizeof(rec), "rec-%d", k);
            written = k + 1;
            int rc = metalog_append(ml, (const uint8_t *)rec, (uint32_t)len);
            if (rc == 0) {
                cr_assert_not(failed, "seed %llu #%llu: an append after a failure succeeded",
                              (unsigned long long)seed, (unsigned long long)i);
                acked = k + 1;
            } else {
                failed = true;
            }
        }
        metalog_close(ml);
        io_sim_cut_power_now(io);
        io_sim_restart(io);
        memset(&s, 0, sizeof(s));
        cr_assert_eq(metalog_open(io, "/m/metadata.log", collect, &s, &ml, NULL), 0,
                     "seed %llu #%llu: reopen", (unsigned long long)seed, (unsigned long long)i);
        cr_assert(s.n >= acked && s.n <= written, "seed %llu #%llu: %d records back, %d "
                  "acknowledged, %d written", (unsigned long long)seed, (unsigned long long)i,
                  s.n, acked, written);
        for (int k = 0; k < s.n; k++) {
            char rec[16];
            snprintf(rec, sizeof(rec), "rec-%d", k);
            cr_assert_str_eq(s.rec[k], rec, "seed %llu #%llu", (unsigned long long)seed,
                             (unsigned long long)i);
        }
        cr_assert_eq(metalog_append(ml, (const uint8_t *)"after", 5), 0);
        metalog_close(ml);
        io_destroy(io);
    }
}
