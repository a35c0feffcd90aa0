/*
 * test_tail_cache: the broker's tail cache (storage/tcache.h) end to end, with a real ringlogd.
 * A consumer keeping up with a producer (produce a batch, fetch from where it left off) is
 * answered from the cache: every fetch counts a hit in /metrics and none a miss. After a restart
 * the cache is empty, so the same log is read from the segment files (misses, no hits), and the
 * bytes are identical to what the cache served; reading on sequentially, fetches are answered
 * by the read-ahead of the slice after the previous one (where the file system takes O_DIRECT,
 * which read-ahead uses). A broker started with tail.cache.bytes=0 counts neither. Sizes and
 * counts of the batches come from the run's seed.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"
#include "tests/lib/tl_seed.h"

#define PARTS 2
#define MAX_LOG_BYTES (48u << 20)
#define FETCH_ROUNDS_MAX 100000 /* bound on the read-back loops */

static long long metric(const struct tl_broker *b, const char *name)
{
    static char body[1 << 18];
    int st = tl_http_get(b->host, b->http_port, "/metrics", body, sizeof(body), 5000);
    cr_assert_eq(st, 200, "GET /metrics: %d", st);
    size_t n = strlen(name);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ')
            return atoll(p + n + 1);
    cr_assert_fail("no metric %s in /metrics", name);
    return -1;
}

/* Does the file system under dir take O_DIRECT opens (tmpfs does not)? */
static bool direct_io_works(const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/direct-probe", dir);
    int fd = open(path, O_CREAT | O_RDWR | O_DIRECT, 0600);
    if (fd >= 0)
        close(fd);
    unlink(path);
    return fd >= 0;
}

/* The offset after the last whole batch of a fetch answer. */
static uint64_t next_after(const uint8_t *data, uint32_t len)
{
    uint64_t next = 0;
    for (uint32_t pos = 0; pos < len;) {
        struct batch_header h;
        cr_assert_eq(batch_header_decode(data + pos, len - pos, &h), 0);
        next = h.base_offset + h.last_offset_delta + 1;
        pos += h.batch_len;
    }
    return next;
}

/* Reads partition p from offset 0 to `end`, fetches of up to max_bytes, appending the bytes to
 * buf. Returns the fetches. */
static int read_all(struct tl_conn *c, uint32_t p, uint64_t end, uint32_t max_bytes,
                    uint8_t *buf, size_t *len)
{
    uint64_t at = 0;
    int fetches = 0;
    for (int round = 0; at < end && round < FETCH_ROUNDS_MAX; round++) {
        struct tl_fetch f = {.topic = "tc", .partition = p, .offset = at,
                             .max_bytes = max_bytes};
        struct tl_fetch_result fr;
        cr_assert_eq(tl_fetch(c, &f, &fr), 0, "fetch %u@%llu: %s", p, (unsigned long long)at,
                     fr.error_message ? fr.error_message : "");
        cr_assert_gt(fr.data_len, 0, "nothing at %llu of %llu", (unsigned long long)at,
                     (unsigned long long)end);
        cr_assert_leq(*len + fr.data_len, MAX_LOG_BYTES);
        memcpy(buf + *len, fr.data, fr.data_len);
        *len += fr.data_len;
        at = next_after(fr.data, fr.data_len);
        fetches++;
    }
    cr_assert_eq(at, end, "read back to %llu of %llu", (unsigned long long)at,
                 (unsigned long long)end);
    return fetches;
}

Test(tail_cache, a_tail_consumer_is_served_from_memory_and_the_bytes_match_the_disk,
     .timeout = 120)
{
    uint64_t rnd = tl_rand_init(tl_seed("tail_cache.served_from_memory"), 0x7a11);
    struct tl_broker b;
    static const char *const args[] = {"--set", "tail.cache.bytes=67108864", NULL};
    cr_assert_eq(tl_broker_start(&b, args, 20000), 0);
    struct tl_conn c;
    cr_assert_eq(tl_connect(&c, b.host, b.port, 5000), 0);
    cr_assert_eq(tl_create_topic(&c, "tc", PARTS, NULL, NULL, 0), 0);
    uint64_t end[PARTS] = {0};
    int tail_fetches = 0;
    long long misses0 = metric(&b, "ringlog_tail_cache_misses_total");
    long long hits0 = metric(&b, "ringlog_tail_cache_hits_total");
    int batches = 20 + (int)(tl_rand(&rnd) % 20);
    for (int i = 0; i < batches; i++) {
        uint32_t p = (uint32_t)(tl_rand(&rnd) % PARTS);
        uint8_t *batch;
        int len = tl_make_batch_random(1 + (uint32_t)(tl_rand(&rnd) % 200),
                                       1 + (uint32_t)(tl_rand(&rnd) % 3000), &batch);
        cr_assert_gt(len, 0);
        int64_t base;
        cr_assert_eq(tl_produce(&c, "tc", p, batch, (uint32_t)len, 1, &base), 0);
        free(batch);
        /* The consumer keeps up: it reads what was just acknowledged. */
        struct tl_fetch f = {.topic = "tc", .partition = p, .offset = end[p],
                             .max_bytes = 1u << 20};
        struct tl_fetch_result fr;
        cr_assert_eq(tl_fetch(&c, &f, &fr), 0);
        cr_assert_gt(fr.data_len, 0);
        end[p] = next_after(fr.data, fr.data_len);
        tail_fetches++;
    }
    cr_assert_eq(metric(&b, "ringlog_tail_cache_misses_total"), misses0,
                 "a tail fetch went to the disk");
    cr_assert_eq(metric(&b, "ringlog_tail_cache_hits_total") - hits0, tail_fetches);
    cr_assert_gt(metric(&b, "ringlog_tail_cache_hit_bytes_total"), 0);
    cr_assert_gt(metric(&b, "ringlog_tail_cache_bytes"), 0);

    /* The whole log from the cache, then, after a restart, from the files. */
    uint8_t *mem = malloc(MAX_LOG_BYTES), *disk = malloc(MAX_LOG_BYTES);
    size_t mem_len = 0, disk_len = 0;
    for (uint32_t p = 0; p < PARTS; p++)
        read_all(&c, p, end[p], 1u << 20, mem, &mem_len);
    cr_assert_eq(metric(&b, "ringlog_tail_cache_misses_total"), misses0);
    tl_close(&c);
    cr_assert_eq(tl_broker_stop(&b, SIGTERM, 20000), 0);
    cr_assert_eq(tl_broker_restart(&b, 20000), 0);
    cr_assert_eq(tl_connect(&c, b.host, b.port, 5000), 0);
    /* Fetches of 128 KiB, so that a partition takes several and a read-ahead has a next slice
     * to read (a seed's log can be small: one fetch of 1 MiB would hold a whole partition). */
    int disk_fetches = 0;
    bool read_on = false;
    for (uint32_t p = 0; p < PARTS; p++) {
        int n = read_all(&c, p, end[p], 128u << 10, disk, &disk_len);
        disk_fetches += n;
        read_on |= n > 1;
    }
    cr_assert_eq(metric(&b, "ringlog_tail_cache_hits_total"), 0, "a restart empties the cache");
    long long ra_hits = metric(&b, "ringlog_fetch_readahead_hits_total");
    cr_assert_geq(metric(&b, "ringlog_tail_cache_misses_total"), disk_fetches - ra_hits);
    if (!direct_io_works(b.data_dir))
        cr_log_warn("read-ahead: skipped (no O_DIRECT under %s)", b.data_dir);
    else if (!read_on)
        cr_log_warn("read-ahead: skipped (each partition fit in one fetch)");
    else
        cr_assert_gt(ra_hits, 0, "%d fetches read on in order, none from a read-ahead",
                     disk_fetches);
    cr_assert_eq(disk_len, mem_len);
    cr_assert_eq(memcmp(mem, disk, mem_len), 0, "the cache served other bytes than the disk");
    free(mem);
    free(disk);
    tl_close(&c);
    cr_assert_eq(tl_broker_finish(&b, 20000), 0);
}

Test(tail_cache, a_broker_without_a_cache_counts_nothing, .timeout = 60)
{
    struct tl_broker b;
    static const char *const args[] = {"--set", "tail.cache.bytes=0", NULL};
    cr_assert_eq(tl_broker_start(&b, args, 20000), 0);
    struct tl_conn c;
    cr_assert_eq(tl_connect(&c, b.host, b.port, 5000), 0);
    cr_assert_eq(tl_create_topic(&c, "tc", 1, NULL, NULL, 0), 0);
    uint8_t *batch;
    int len = tl_make_batch_random(10, 100, &batch);
    cr_assert_eq(tl_produce(&c, "tc", 0, batch, (uint32_t)len, 1, NULL), 0);
    free(batch);
    struct tl_fetch f = {.topic = "tc", .max_bytes = 1u << 20};
    struct tl_fetch_result fr;
    cr_assert_eq(tl_fetch(&c, &f, &fr), 0);
    cr_assert_eq(fr.data_len, (uint32_t)len);
    cr_assert_eq(metric(&b, "ringlog_tail_cache_hits_total"), 0);
    cr_assert_eq(metric(&b, "ringlog_tail_cache_misses_total"), 0);
    cr_assert_eq(metric(&b, "ringlog_tail_cache_budget_bytes"), 0);
    tl_close(&c);
    cr_assert_eq(tl_broker_finish(&b, 20000), 0);
}
