/*
 * test_broker_metalog: the metadata log (broker/metalog.h) on a temporary file: records
 * replay in order across reopenings; a torn tail and a corrupt record are cut and later appends
 * continue from the cut.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/meta/metalog.h"
#include "common/err.h"

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
    cr_assert_eq(metalog_open(path, collect, s, &ml, st), 0);
    metalog_close(ml);
}

/* Appended records come back, in order, after reopening. */
Test(metalog, replay_in_order)
{
    struct metalog *ml;
    struct seen s = {0};
    cr_assert_eq(metalog_open(path, collect, &s, &ml, NULL), 0);
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
    cr_assert_eq(metalog_open(path, collect, &s, &ml, NULL), 0);
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
        cr_assert_eq(metalog_open(path, collect, &s, &ml, NULL), 0);
        cr_assert_eq(metalog_append(ml, (const uint8_t *)"lost-record", 11), 0);
        metalog_close(ml);
    }
}

/* A flipped byte in a record's payload stops replay there; the record is cut. */
Test(metalog, corrupt_record_cut)
{
    struct metalog *ml;
    struct seen s = {0};
    cr_assert_eq(metalog_open(path, collect, &s, &ml, NULL), 0);
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
    reopen(&s, NULL);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(metalog_open(path, collect, &s, &ml, NULL), 0);
    cr_assert_eq(metalog_append(ml, (const uint8_t *)"third", 5), 0);
    metalog_close(ml);
    reopen(&s, NULL);
    cr_assert_eq(s.n, 2);
    cr_assert_str_eq(s.rec[1], "third");
}

/* A file that is not a metadata log is refused rather than overwritten. */
Test(metalog, bad_magic_refused)
{
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    cr_assert_eq(write(fd, "NOTMETA!xxxxxxxxxxxx", 20), 20);
    close(fd);
    struct metalog *ml;
    struct seen s = {0};
    cr_assert_eq(metalog_open(path, collect, &s, &ml, NULL), RL_E_CORRUPT);
}
