/*
 * test_broker_metalog: the metadata log (broker/meta/metalog.h) on a temporary file: records
 * replay in order across reopenings; a torn tail and a corrupt last record are cut and later
 * appends continue from the cut; damage in the middle is skipped and the records after it
 * kept; seeded power cuts on the simulated back-end never lose an acknowledged record.
 * Compaction (metalog_compact): a seeded history of creates, alters, deletes and producer-id
 * blocks replays to the same state before and after it, with the records it no longer needs
 * gone (compact_same_state); seeded power cuts at every point of a compaction leave a log that
 * replays to that state and takes appends (compact_power_cuts_sim); damage is left alone and
 * a leftover .compact file is removed (compact_leaves_damage). And its format, pinned: a
 * metadata.log written by the broker of commit c904487 decodes into the records it holds, and encoding those records again
 * (broker/meta/meta_record.h) reproduces the file byte for byte. Records read back by number
 * for a controller snapshot transfer (read_records_ranges_and_damage).
 */
#include <criterion/criterion.h>
#include <errno.h>
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

/* metalog_read_records (a controller snapshot transfer): records [first, end) come back in
 * the file's format, stopping before max_bytes (at least one); more than the file holds is
 * RL_E_OFFSET_OUT_OF_RANGE, a first record too large for the buffer -ENOBUFS, and a damaged
 * record before `end` RL_E_CORRUPT (numbering past damage is unreliable). */
Test(metalog, read_records_ranges_and_damage)
{
    struct metalog *ml;
    struct seen s = {0};
    cr_assert_eq(metalog_open(NULL, path, collect, &s, &ml, NULL), 0);
    const char *recs[5] = {"first", "second", "third", "fourth", "fifth"};
    uint64_t at[5];
    for (int i = 0; i < 5; i++) {
        at[i] = metalog_size(ml);
        cr_assert_eq(metalog_append(ml, (const uint8_t *)recs[i], (uint32_t)strlen(recs[i])), 0);
    }
    uint8_t out[256];
    size_t len;
    uint32_t n;
    cr_assert_eq(metalog_read_records(ml, 1, 4, 1000, out, sizeof(out), &len, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(len, at[4] - at[1]);
    size_t p = 0;
    for (int i = 1; i < 4; i++) {
        uint32_t rl = out[p] | out[p + 1] << 8;
        cr_assert(rl == strlen(recs[i]) && !memcmp(out + p + 12, recs[i], rl), "record %d", i);
        p += 12 + rl;
    }
    /* max_bytes: the records that fit, at least one. */
    cr_assert_eq(metalog_read_records(ml, 0, 5, 12 + 5 + 12 + 6, out, sizeof(out), &len, &n), 0);
    cr_assert(n == 2 && len == at[2] - at[0] && !memcmp(out + 12, "first", 5));
    cr_assert_eq(metalog_read_records(ml, 2, 5, 1, out, sizeof(out), &len, &n), 0);
    cr_assert(n == 1 && !memcmp(out + 12, "third", 5));
    cr_assert_eq(metalog_read_records(ml, 5, 5, 1000, out, sizeof(out), &len, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(metalog_read_records(ml, 3, 6, 1000, out, sizeof(out), &len, &n),
                 RL_E_OFFSET_OUT_OF_RANGE);
    cr_assert_eq(metalog_read_records(ml, 1, 2, 1000, out, 10, &len, &n), -ENOBUFS);
    int fd = open(path, O_RDWR);
    uint8_t c;
    cr_assert_eq(pread(fd, &c, 1, (off_t)at[2] + 13), 1);
    c ^= 0x20;
    cr_assert_eq(pwrite(fd, &c, 1, (off_t)at[2] + 13), 1); /* "third": payload */
    close(fd);
    cr_assert_eq(metalog_read_records(ml, 0, 2, 1000, out, sizeof(out), &len, &n), 0);
    cr_assert_eq(metalog_read_records(ml, 3, 5, 1000, out, sizeof(out), &len, &n),
                 RL_E_CORRUPT);
    metalog_close(ml);
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

/* --- compaction --------------------------------------------------------------------------------
 * A model of the state the records build (what meta_apply keeps: live topics in creation order
 * with their partitions and explicit configs, and the producer-id block), as one string. */

#define MODEL_NAMES 8
#define MODEL_TEXT 4096

struct model {
    bool live[MODEL_NAMES];
    int order[MODEL_NAMES]; /* creation sequence number of each live topic */
    int seq;
    int32_t partitions[MODEL_NAMES];
    char configs[MODEL_NAMES][64];
    int64_t block;
    uint32_t records;
};

static int model_index(const char *name)
{
    cr_assert(name && name[0] == 't' && name[1] >= '0' && name[1] < '0' + MODEL_NAMES, "%s",
              name ? name : "(null)");
    return name[1] - '0';
}

static void model_configs(char *out, size_t cap, const struct meta_config *c, size_t n)
{
    out[0] = 0;
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s=%s;", c[i].key, c[i].value);
}

static int model_apply(void *ctx, const uint8_t *p, uint32_t len)
{
    struct model *m = ctx;
    struct meta_record_decoded d;
    cr_assert_eq(meta_record_decode(p, len, &d), 0);
    const struct meta_record *r = &d.rec;
    m->records++;
    if (r->kind == META_RECORD_CREATE_TOPIC) {
        int i = model_index(r->spec.name);
        cr_assert_not(m->live[i], "create of a live topic %s", r->spec.name);
        m->live[i] = true;
        m->order[i] = m->seq++;
        m->partitions[i] = r->spec.partitions;
        model_configs(m->configs[i], sizeof(m->configs[i]), r->spec.configs, r->spec.n_configs);
    } else if (r->kind == META_RECORD_ALTER_CONFIGS) {
        int i = model_index(r->name);
        cr_assert(m->live[i], "alter of a topic that is not live: %s", r->name);
        model_configs(m->configs[i], sizeof(m->configs[i]), r->configs, r->n_configs);
    } else if (r->kind == META_RECORD_DELETE_TOPIC) {
        int i = model_index(r->name);
        cr_assert(m->live[i], "delete of a topic that is not live: %s", r->name);
        m->live[i] = false;
    } else if (r->kind == META_RECORD_PRODUCER_ID_BLOCK) {
        if (r->producer_id_block_end > m->block)
            m->block = r->producer_id_block_end;
    }
    meta_record_free(&d);
    return 0;
}

/* The model as text: live topics in creation order, then the block. */
static void model_text(const struct model *m, char *out)
{
    out[0] = 0;
    for (int seq = 0; seq < m->seq; seq++)
        for (int i = 0; i < MODEL_NAMES; i++)
            if (m->live[i] && m->order[i] == seq)
                snprintf(out + strlen(out), MODEL_TEXT - strlen(out), "t%d:%d:%s|", i,
                         m->partitions[i], m->configs[i]);
    snprintf(out + strlen(out), MODEL_TEXT - strlen(out), "block=%lld", (long long)m->block);
}

static void append_record(struct metalog *ml, const struct meta_record *r)
{
    uint8_t *buf;
    size_t len;
    cr_assert_eq(meta_record_encode(r, &buf, &len), 0);
    cr_assert_eq(metalog_append(ml, buf, (uint32_t)len), 0);
    free(buf);
}

/* Appends n records of a seeded, valid history over MODEL_NAMES topics. */
static void append_history(struct metalog *ml, uint64_t *rng, int n, struct model *m)
{
    for (int k = 0; k < n; k++) {
        int i = (int)(tl_rand(rng) % MODEL_NAMES);
        char name[8], value[24];
        snprintf(name, sizeof(name), "t%d", i);
        snprintf(value, sizeof(value), "%llu", (unsigned long long)(tl_rand(rng) % 100000));
        struct meta_config cfg = {"retention.ms", value};
        struct meta_record r = {0};
        unsigned pick = (unsigned)(tl_rand(rng) % 10);
        if (!m->live[i]) {
            r.kind = META_RECORD_CREATE_TOPIC;
            r.spec = (struct meta_topic_spec){.name = name,
                                              .partitions = 1 + (int32_t)(tl_rand(rng) % 4),
                                              .n_configs = pick % 2, .configs = &cfg};
        } else if (pick < 4) {
            r.kind = META_RECORD_ALTER_CONFIGS;
            r.name = name;
            r.n_configs = 1;
            r.configs = &cfg;
        } else if (pick < 7) {
            r.kind = META_RECORD_DELETE_TOPIC;
            r.name = name;
        } else {
            r.kind = META_RECORD_PRODUCER_ID_BLOCK;
            r.producer_id_block_end = (m->block > 0 ? m->block : 0) + (1 << 20);
        }
        append_record(ml, &r);
        uint8_t *buf;
        size_t len;
        cr_assert_eq(meta_record_encode(&r, &buf, &len), 0);
        model_apply(m, buf, (uint32_t)len);
        free(buf);
    }
}

/* A seeded history of 400 records over 8 topics replays to the same state after compaction,
 * which keeps at most one create and one alter per live topic and one producer-id block; the
 * log takes appends after it, and a second compaction finds nothing to drop. */
Test(metalog, compact_same_state)
{
    uint64_t seed = tl_seed("metalog.compact_same_state");
    uint64_t rng = tl_rand_init(seed, 0);
    rl_log_set_level(RL_LOG_OFF);
    struct metalog *ml;
    struct model built = {0}, before = {0}, after = {0};
    cr_assert_eq(metalog_open(NULL, path, model_apply, &before, &ml, NULL), 0);
    append_history(ml, &rng, 400, &built);
    metalog_close(ml);
    cr_assert_eq(metalog_open(NULL, path, model_apply, &before, &ml, NULL), 0);
    char want[MODEL_TEXT], got[MODEL_TEXT];
    model_text(&built, want);
    model_text(&before, got);
    cr_assert_str_eq(got, want);
    struct metalog_compact_stats cs;
    cr_assert_eq(metalog_compact(ml, 1, &cs), 0);
    uint32_t live = 0;
    for (int i = 0; i < MODEL_NAMES; i++)
        live += built.live[i];
    cr_assert_gt(cs.dropped, 0, "nothing dropped (seed %llu)", (unsigned long long)seed);
    cr_assert_eq(cs.kept + cs.dropped, 400);
    cr_assert_leq(cs.kept, 2 * live + 1, "%u records kept for %u live topics", cs.kept, live);
    cr_assert_lt(cs.bytes_after, cs.bytes_before);
    metalog_close(ml);
    cr_assert_eq(metalog_open(NULL, path, model_apply, &after, &ml, NULL), 0);
    model_text(&after, got);
    cr_assert_str_eq(got, want, "seed %llu: the compacted log replays to another state",
                     (unsigned long long)seed);
    cr_assert_eq(after.records, cs.kept);
    cr_assert_eq(metalog_compact(ml, 1, &cs), 0);
    cr_assert_eq(cs.dropped, 0, "a compacted log had %u more records to drop", cs.dropped);
    append_history(ml, &rng, 20, &built);
    metalog_close(ml);
    struct model again = {0};
    cr_assert_eq(metalog_open(NULL, path, model_apply, &again, &ml, NULL), 0);
    model_text(&built, want);
    model_text(&again, got);
    cr_assert_str_eq(got, want, "appends after a compaction");
    metalog_close(ml);
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%s.compact", path);
    cr_assert_neq(access(tmp, F_OK), 0, "the .compact file stayed");
}

/* A log with a damaged range is not compacted (its damage tells every open to skip producer
 * ids), and a .compact file left by a cut-short compaction is removed at open. */
/* Counts the records replayed (damage loses some: no model to keep). */
static int count_only(void *ctx, const uint8_t *p, uint32_t len)
{
    (void)p;
    (void)len;
    (*(uint32_t *)ctx)++;
    return 0;
}

Test(metalog, compact_leaves_damage)
{
    rl_log_set_level(RL_LOG_OFF);
    uint64_t rng = tl_rand_init(7, 0);
    struct metalog *ml;
    struct model m = {0};
    uint32_t seen = 0;
    cr_assert_eq(metalog_open(NULL, path, count_only, &seen, &ml, NULL), 0);
    append_history(ml, &rng, 100, &m);
    metalog_close(ml);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t junk[4] = {0xde, 0xad, 0xbe, 0xef};
    cr_assert_eq(pwrite(fd, junk, sizeof(junk), 30), (ssize_t)sizeof(junk));
    close(fd);
    struct stat st0, st1;
    cr_assert_eq(stat(path, &st0), 0);
    struct metalog_stats ms;
    cr_assert_eq(metalog_open(NULL, path, count_only, &seen, &ml, &ms), 0);
    cr_assert_gt(ms.damaged_ranges, 0);
    struct metalog_compact_stats cs;
    cr_assert_eq(metalog_compact(ml, 1, &cs), 0);
    cr_assert_eq(cs.dropped, 0, "a damaged log was compacted");
    metalog_close(ml);
    cr_assert_eq(stat(path, &st1), 0);
    cr_assert_eq(st0.st_size, st1.st_size);
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%s.compact", path);
    fd = open(tmp, O_WRONLY | O_CREAT, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(metalog_open(NULL, path, count_only, &seen, &ml, NULL), 0);
    metalog_close(ml);
    cr_assert_neq(access(tmp, F_OK), 0, "the leftover .compact file stayed");
}

/* Seeded power cuts (and failed syncs) at any point of a compaction on the simulated back-end:
 * the log found after the restart replays to the state before the compaction (whichever file
 * survived), with no .compact file left, and takes appends; a compaction that reported success
 * left the compacted log. RINGLOG_METALOG_COMPACT_SEEDS sets the number of cuts (500). */
Test(metalog, compact_power_cuts_sim, .timeout = 300)
{
    uint64_t seed = tl_seed("metalog.compact_power_cuts_sim");
    rl_log_set_level(RL_LOG_OFF);
    const char *env = getenv("RINGLOG_METALOG_COMPACT_SEEDS");
    uint64_t runs = env ? strtoull(env, NULL, 10) : 500;
    uint32_t cut_during = 0, succeeded = 0;
    for (uint64_t i = 0; i < runs; i++) {
        uint64_t rng = tl_rand_init(seed, i);
        struct io_sim_config sc = {.seed = tl_rand(&rng), .keep_permille =
                                   (unsigned)(tl_rand(&rng) % 1001)};
        int err;
        struct io *io = io_create_sim(&sc, &err);
        cr_assert_not_null(io);
        cr_assert_eq(io_dir_make(io, "/m", 0755), 0);
        cr_assert_eq(io_dir_sync(io, "/"), 0);
        struct metalog *ml;
        struct model built = {0}, seen = {0};
        cr_assert_eq(metalog_open(io, "/m/metadata.log", model_apply, &seen, &ml, NULL), 0);
        append_history(ml, &rng, 40 + (int)(tl_rand(&rng) % 40), &built);
        char want[MODEL_TEXT], got[MODEL_TEXT];
        model_text(&built, want);
        if (tl_rand(&rng) % 4 == 0)
            io_sim_fail_nth(io, IO_SIM_OP_SYNC, 1 + tl_rand(&rng) % 4, -EIO);
        uint64_t at = io_sim_mutations(io) + 1 + tl_rand(&rng) % 30;
        io_sim_cut_power_at(io, at);
        struct metalog_compact_stats cs;
        int rc_compact = metalog_compact(ml, 1, &cs);
        bool off = io_sim_powered_off(io);
        cut_during += off;
        metalog_close(ml);
        io_sim_cut_power_now(io);
        io_sim_restart(io);
        struct model back = {0};
        int rc = metalog_open(io, "/m/metadata.log", model_apply, &back, &ml, NULL);
        cr_assert_eq(rc, 0, "seed %llu #%llu: reopen: %s", (unsigned long long)seed,
                     (unsigned long long)i, rl_strerror(rc));
        model_text(&back, got);
        cr_assert_str_eq(got, want, "seed %llu #%llu (cut at mutation %llu%s): another state "
                         "after the restart", (unsigned long long)seed, (unsigned long long)i,
                         (unsigned long long)at, off ? ", during the compaction" : "");
        if (rc_compact == 0 && cs.dropped > 0)
            cr_assert_eq(back.records, cs.kept, "seed %llu #%llu: a compaction that succeeded "
                         "left %u records, not %u", (unsigned long long)seed,
                         (unsigned long long)i, back.records, cs.kept);
        succeeded += rc_compact == 0 && cs.dropped > 0;
        uint64_t size;
        cr_assert_neq(io_path_size(io, "/m/metadata.log.compact", &size), 0,
                      "seed %llu #%llu: a .compact file stayed", (unsigned long long)seed,
                      (unsigned long long)i);
        append_history(ml, &rng, 3, &built);
        metalog_close(ml);
        memset(&back, 0, sizeof(back));
        cr_assert_eq(metalog_open(io, "/m/metadata.log", model_apply, &back, &ml, NULL), 0);
        model_text(&built, want);
        model_text(&back, got);
        cr_assert_str_eq(got, want, "seed %llu #%llu: appends after the restart",
                         (unsigned long long)seed, (unsigned long long)i);
        metalog_close(ml);
        io_destroy(io);
    }
    fprintf(stderr, "metalog.compact_power_cuts_sim: %llu runs, %u cut during a compaction, %u "
            "compactions finished\n", (unsigned long long)runs, cut_during, succeeded);
    cr_assert_gt(cut_during, runs / 4, "too few cuts landed inside a compaction");
    cr_assert_gt(succeeded, runs / 20, "too few compactions finished");
}
