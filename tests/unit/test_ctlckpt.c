/*
 * test_ctlckpt: the controller's apply checkpoint file (broker/cluster/ctlckpt.h) in a
 * temporary directory: none reads as 0; a written checkpoint reads back field for field (index,
 * metadata records covered, every broker with its addresses); a rewrite replaces it; any
 * flipped byte or a truncated file reads as RL_E_CORRUPT, so ctl replays the whole log instead.
 * The snapshot chunk (the checkpoint and metadata records a node behind the controller log's
 * start fetches) round-trips, and any damage to it is RL_E_CORRUPT.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "broker/cluster/ctlckpt.h"
#include "common/err.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ringlog-ctlckpt-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, CTLCKPT_FILE);
    unlink(p);
    rmdir(dir);
}

TestSuite(ctlckpt, .init = setup, .fini = teardown);

static void fill(struct ctlckpt *ck, uint32_t n)
{
    memset(ck, 0, sizeof(*ck));
    ck->applied = 1000 + n;
    ck->meta_seen = 700 + n;
    ck->n_brokers = n;
    for (uint32_t i = 0; i < n; i++) {
        struct ctl_broker *b = &ck->brokers[i];
        b->id = i + 1;
        b->incarnation = 0x1234567890abcdefull ^ i;
        b->epoch = 10 + i;
        snprintf(b->host, sizeof(b->host), "10.0.0.%u", i + 1);
        b->port = (uint16_t)(9400 + i);
        if (i % 2) {
            snprintf(b->kafka_host, sizeof(b->kafka_host), "kafka-%u.example", i);
            b->kafka_port = (uint16_t)(9092 + i);
        }
    }
}

Test(ctlckpt, absent_round_trip_and_rewrite)
{
    struct ctlckpt *w = malloc(sizeof(*w)), *r = malloc(sizeof(*r));
    cr_assert_eq(ctlckpt_read(dir, r), 0);
    for (uint32_t n = 0; n <= CTL_MAX_BROKERS; n += CTL_MAX_BROKERS / 2) {
        fill(w, n);
        cr_assert_eq(ctlckpt_write(dir, w), 0);
        cr_assert_eq(ctlckpt_read(dir, r), 1);
        cr_assert(r->applied == w->applied && r->meta_seen == w->meta_seen &&
                  r->n_brokers == n);
        for (uint32_t i = 0; i < n; i++) {
            const struct ctl_broker *a = &w->brokers[i], *b = &r->brokers[i];
            cr_assert(a->id == b->id && a->incarnation == b->incarnation &&
                      a->epoch == b->epoch && a->port == b->port &&
                      a->kafka_port == b->kafka_port && !strcmp(a->host, b->host) &&
                      !strcmp(a->kafka_host, b->kafka_host), "broker %u", i);
        }
    }
    free(w);
    free(r);
}

Test(ctlckpt, damage_reads_as_corrupt)
{
    struct ctlckpt *w = malloc(sizeof(*w)), *r = malloc(sizeof(*r));
    fill(w, 3);
    cr_assert_eq(ctlckpt_write(dir, w), 0);
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, CTLCKPT_FILE);
    struct stat sb;
    cr_assert_eq(stat(p, &sb), 0);
    cr_assert_eq(sb.st_size, CTLCKPT_HEADER_BYTES + 3 * CTLCKPT_BROKER_BYTES + 8);
    for (off_t at = 0; at < sb.st_size; at += 7) {
        int fd = open(p, O_RDWR);
        uint8_t byte;
        cr_assert_eq(pread(fd, &byte, 1, at), 1);
        byte ^= 0x40;
        cr_assert_eq(pwrite(fd, &byte, 1, at), 1);
        cr_assert_eq(ctlckpt_read(dir, r), RL_E_CORRUPT, "byte %lld flipped", (long long)at);
        byte ^= 0x40;
        cr_assert_eq(pwrite(fd, &byte, 1, at), 1);
        close(fd);
    }
    cr_assert_eq(ctlckpt_read(dir, r), 1);
    cr_assert_eq(truncate(p, sb.st_size - 1), 0);
    cr_assert_eq(ctlckpt_read(dir, r), RL_E_CORRUPT);
    free(w);
    free(r);
}

/* Records r0..r{n-1} in metadata.log's format (u32 len | u64 xxh3(len field || payload) |
 * payload), as metalog_read_records copies them. */
static size_t records(uint8_t *buf, uint32_t n)
{
    size_t at = 0;
    for (uint32_t i = 0; i < n; i++) {
        char text[32];
        uint32_t len = (uint32_t)snprintf(text, sizeof(text), "record %u of %u", i, n);
        uint8_t lenf[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                           (uint8_t)(len >> 24)};
        XXH3_state_t st;
        XXH3_64bits_reset(&st);
        XXH3_64bits_update(&st, lenf, 4);
        XXH3_64bits_update(&st, text, len);
        uint64_t sum = XXH3_64bits_digest(&st);
        memcpy(buf + at, lenf, 4);
        for (int k = 0; k < 8; k++)
            buf[at + 4 + k] = (uint8_t)(sum >> (8 * k));
        memcpy(buf + at + 12, text, len);
        at += 12 + len;
    }
    return at;
}

/* A snapshot chunk round-trips (checkpoint, brokers, records, request id, first record); a
 * refusal carries its status and nothing else; any flipped byte, a cut chunk, or a record
 * whose own checksum is wrong under a recomputed chunk checksum is RL_E_CORRUPT, so nothing
 * of a damaged chunk is ever taken. */
Test(ctlckpt, snapshot_chunk_round_trip_and_damage)
{
    struct ctlckpt *w = malloc(sizeof(*w)), *r = malloc(sizeof(*r));
    fill(w, 5);
    uint8_t recs[1024];
    size_t rl = records(recs, 7);
    size_t cap = ctlckpt_chunk_bytes(5, rl);
    uint8_t *buf = malloc(cap);
    size_t len = ctlckpt_chunk_encode(buf, 42, 0, w, 300, recs, rl, 7);
    cr_assert_eq(len, cap);
    struct ctlckpt_chunk ch;
    cr_assert_eq(ctlckpt_chunk_decode(buf, len, &ch, r), 0);
    cr_assert(ch.req_id == 42 && ch.status == 0 && ch.first == 300 && ch.n_records == 7 &&
              ch.records_len == rl && !memcmp(ch.records, recs, rl));
    cr_assert(r->applied == w->applied && r->meta_seen == w->meta_seen && r->n_brokers == 5);
    for (uint32_t i = 0; i < 5; i++)
        cr_assert(r->brokers[i].id == w->brokers[i].id &&
                  !strcmp(r->brokers[i].kafka_host, w->brokers[i].kafka_host));
    for (size_t at = 0; at < len; at++) {
        buf[at] ^= 0x10;
        cr_assert_eq(ctlckpt_chunk_decode(buf, len, &ch, r), RL_E_CORRUPT, "byte %zu", at);
        buf[at] ^= 0x10;
    }
    for (size_t cut = 0; cut < len; cut += 5)
        cr_assert_eq(ctlckpt_chunk_decode(buf, cut, &ch, r), RL_E_CORRUPT, "cut at %zu", cut);
    /* A record's payload changed and the chunk's checksum recomputed over it: the record's
     * own checksum still catches it. */
    size_t rec_at = CTLCKPT_CHUNK_HEADER_BYTES + 5 * CTLCKPT_BROKER_BYTES + 12;
    buf[rec_at] ^= 1;
    uint64_t sum = XXH3_64bits(buf, len - 8);
    for (int k = 0; k < 8; k++)
        buf[len - 8 + k] = (uint8_t)(sum >> (8 * k));
    cr_assert_eq(ctlckpt_chunk_decode(buf, len, &ch, r), RL_E_CORRUPT);
    /* A refusal. */
    len = ctlckpt_chunk_encode(buf, 43, RL_E_OFFSET_OUT_OF_RANGE, NULL, 9, NULL, 0, 0);
    cr_assert_eq(len, ctlckpt_chunk_bytes(0, 0));
    cr_assert_eq(ctlckpt_chunk_decode(buf, len, &ch, r), 0);
    cr_assert(ch.req_id == 43 && ch.status == RL_E_OFFSET_OUT_OF_RANGE && ch.n_records == 0 &&
              ch.first == 9 && r->n_brokers == 0 && r->applied == 0);
    free(buf);
    free(w);
    free(r);
}
