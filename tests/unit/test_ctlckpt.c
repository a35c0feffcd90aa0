/*
 * test_ctlckpt: the controller's apply checkpoint file (broker/cluster/ctlckpt.h) in a
 * temporary directory: none reads as 0; a written checkpoint reads back field for field (index,
 * metadata records covered, every broker with its addresses); a rewrite replaces it; any
 * flipped byte or a truncated file reads as RL_E_CORRUPT, so ctl replays the whole log instead.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
