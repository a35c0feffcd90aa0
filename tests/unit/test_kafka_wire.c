/* kafka wire: CRC-32C (known vectors, hardware = table, chaining), the kwire reader on valid and
 * hostile bytes (every failure names its field), the two-pass writer, kframe_peek, and the error
 * map. Random inputs print their seed; RL_TEST_SEED=N replays one. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/kafka/crc32c.h"
#include "broker/kafka/kerr.h"
#include "broker/kafka/kframe.h"
#include "broker/kafka/kwire.h"
#include "common/err.h"

static unsigned test_seed(void)
{
    const char *s = getenv("RL_TEST_SEED");
    unsigned seed = s ? (unsigned)strtoul(s, NULL, 10) : (unsigned)time(NULL);
    fprintf(stderr, "seed %u (replay with RL_TEST_SEED=%u)\n", seed, seed);
    return seed;
}

/* The check value of CRC-32C, and the 4.3 test vector's CRC from the protocol reference. */
Test(crc32c, known_vectors)
{
    cr_assert_eq(crc32c_update(0, "123456789", 9), 0xe3069283u);
    cr_assert_eq(crc32c_update_table(0, "123456789", 9), 0xe3069283u);
    cr_assert_eq(crc32c_update(0, "", 0), 0);
    /* RFC 3720 B.4: 32 bytes of zeros -> 0x8a9136aa; of 0xff -> 0x62a8ab43. */
    uint8_t z[32] = {0}, f[32];
    memset(f, 0xff, sizeof(f));
    cr_assert_eq(crc32c_update(0, z, 32), 0x8a9136aau);
    cr_assert_eq(crc32c_update(0, f, 32), 0x62a8ab43u);
    /* Attributes..end of the reference's one-record batch (section 4.3). */
    static const uint8_t tail[] = {
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00,
        0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x10, 0x00,
        0x00, 0x00, 0x01, 0x04, 0x68, 0x69, 0x00};
    cr_assert_eq(crc32c_update(0, tail, sizeof(tail)), 0xbbcc4115u);
}

/* Every length (crossing the 256-byte and 8 KiB interleave boundaries) and alignment gives
 * the same CRC through the hardware path, the table path, and chained pieces. */
Test(crc32c, paths_agree_and_chain)
{
    unsigned seed = test_seed();
    srand(seed);
    size_t cap = 3 * 8192 * 2 + 777;
    uint8_t *buf = malloc(cap + 8);
    for (size_t i = 0; i < cap + 8; i++)
        buf[i] = (uint8_t)rand();
    static const size_t lens[] = {0, 1, 7, 8, 9, 255, 256, 767, 768, 769, 24575, 24576, 24577,
                                  3 * 8192 * 2 + 777};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        for (size_t align = 0; align < 8; align += 3) {
            size_t len = lens[k];
            uint32_t a = crc32c_update(0, buf + align, len);
            uint32_t b = crc32c_update_table(0, buf + align, len);
            cr_assert_eq(a, b, "len %zu align %zu (seed %u)", len, align, seed);
            size_t cut = len ? (size_t)rand() % len : 0;
            uint32_t c = crc32c_update(crc32c_update(0, buf + align, cut), buf + align + cut,
                                       len - cut);
            cr_assert_eq(a, c, "chained at %zu of %zu (seed %u)", cut, len, seed);
        }
    }
    free(buf);
    fprintf(stderr, "crc32c hardware path: %s\n", crc32c_hardware() ? "sse4.2" : "table");
}

/* Fixed-width big-endian reads, and a truncated read naming its field. */
Test(kwire, fixed_width_and_truncation)
{
    uint8_t b[] = {0x80, 0x01, 0x02, 0xff, 0xff, 0xff, 0xfe, 0x00, 0x00, 0x00, 0x00,
                   0x00, 0x00, 0x01, 0x00, 0x01, 0x07};
    struct kwire_reader r;
    kwire_reader_init(&r, b, sizeof(b), 0);
    cr_assert_eq(kwire_read_i8(&r, "a"), -128);
    cr_assert_eq(kwire_read_i16(&r, "b"), 0x0102);
    cr_assert_eq(kwire_read_i32(&r, "c"), -2);
    cr_assert_eq(kwire_read_i64(&r, "d"), 256);
    cr_assert_eq(kwire_read_bool(&r, "e"), 1);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(kwire_read_i16(&r, "the_field"), 0); /* one byte left */
    cr_assert_eq(r.err, RL_E_FRAME_MALFORMED);
    cr_assert_str_eq(r.field, "the_field");
    cr_assert(strstr(r.problem, "truncated"));
    /* Sticky: later reads return zero and keep the first failure. */
    cr_assert_eq(kwire_read_i8(&r, "later"), 0);
    cr_assert_str_eq(r.field, "the_field");
}

/* Strings and bytes: values, null where allowed, null refused where not, lengths < -1
 * refused, and lengths past the end refused. */
Test(kwire, strings_bytes_and_nulls)
{
    uint8_t ok[] = {0x00, 0x02, 'h', 'i', 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 'x',
                    0xff, 0xff, 0xff, 0xff};
    struct kwire_reader r;
    kwire_reader_init(&r, ok, sizeof(ok), 0);
    struct kstr s = kwire_read_str(&r, "s");
    cr_assert(kstr_eq(s, "hi"));
    cr_assert_eq(kwire_read_nstr(&r, "n").len, -1);
    struct kbytes by = kwire_read_bytes(&r, "b");
    cr_assert_eq(by.len, 1);
    cr_assert_eq(by.ptr[0], 'x');
    cr_assert_eq(kwire_read_nbytes(&r, "nb").len, -1);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(kwire_remaining(&r), 0);

    uint8_t null_str[] = {0xff, 0xff};
    kwire_reader_init(&r, null_str, sizeof(null_str), 0);
    kwire_read_str(&r, "topic");
    cr_assert_eq(r.err, RL_E_FRAME_MALFORMED);
    cr_assert_str_eq(r.field, "topic");
    cr_assert(strstr(r.problem, "null"));

    uint8_t neg[] = {0xff, 0xfe};
    kwire_reader_init(&r, neg, sizeof(neg), 0);
    kwire_read_nstr(&r, "x");
    cr_assert(strstr(r.problem, "negative"));

    uint8_t past[] = {0x00, 0x00, 0x00, 0x10, 'a'};
    kwire_reader_init(&r, past, sizeof(past), 0);
    kwire_read_bytes(&r, "records");
    cr_assert_str_eq(r.field, "records");
    cr_assert(strstr(r.problem, "truncated"));
}

/* Array counts: a count the remaining bytes cannot hold is refused before any allocation. */
Test(kwire, array_counts_are_bounded)
{
    uint8_t b[] = {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    struct kwire_reader r;
    kwire_reader_init(&r, b, sizeof(b), 0);
    cr_assert_eq(kwire_read_array(&r, "topics", 6), 0);
    cr_assert_eq(r.err, RL_E_FRAME_MALFORMED);
    cr_assert(strstr(r.problem, "array count"));

    uint8_t two[] = {0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8};
    kwire_reader_init(&r, two, sizeof(two), 0);
    cr_assert_eq(kwire_read_array(&r, "ids", 4), 2);
    kwire_reader_init(&r, two, sizeof(two), 0);
    cr_assert_eq(kwire_read_array(&r, "ids", 5), 0); /* 2 x 5 > 8 bytes left */
    cr_assert_neq(r.err, 0);

    uint8_t null_arr[] = {0xff, 0xff, 0xff, 0xff};
    kwire_reader_init(&r, null_arr, sizeof(null_arr), 0);
    cr_assert_eq(kwire_read_narray(&r, "topics", 2), -1);
    cr_assert_eq(r.err, 0);
    kwire_reader_init(&r, null_arr, sizeof(null_arr), 0);
    kwire_read_array(&r, "topics", 2);
    cr_assert_neq(r.err, 0);
}

/* Compact (flexible) forms: uvarint(len + 1), 0 = null; unsigned varints bounded to 32 bits. */
Test(kwire, compact_forms_and_uvarints)
{
    uint8_t b[] = {0x03, 'o', 'k', 0x00, 0x03, 0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f};
    struct kwire_reader r;
    kwire_reader_init(&r, b, sizeof(b), 1);
    cr_assert(kstr_eq(kwire_read_str(&r, "name"), "ok"));
    cr_assert_eq(kwire_read_nstr(&r, "n").len, -1);
    cr_assert_eq(kwire_read_array(&r, "arr", 4), 2);
    kwire_read_i16(&r, "skip"); /* the two array "items" */
    cr_assert_eq(kwire_read_uvarint(&r, "u"), 0xffffffffu);
    cr_assert_eq(r.err, 0);

    uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0x1f};
    kwire_reader_init(&r, over, sizeof(over), 1);
    kwire_read_uvarint(&r, "u");
    cr_assert(strstr(r.problem, "overflows"));
    uint8_t cont[] = {0x80, 0x80};
    kwire_reader_init(&r, cont, sizeof(cont), 1);
    kwire_read_uvarint(&r, "u");
    cr_assert(strstr(r.problem, "truncated"));
}

/* Tagged fields: unknown tags are skipped; out-of-order tags and overlong sections refused;
 * a non-flexible reader reads no tag section at all. */
Test(kwire, tagged_fields)
{
    uint8_t b[] = {0x02, 0x00, 0x02, 0xaa, 0xbb, 0x05, 0x01, 0xcc, 0x42};
    struct kwire_reader r;
    kwire_reader_init(&r, b, sizeof(b), 1);
    kwire_read_tags(&r, "tags");
    cr_assert_eq(r.err, 0);
    cr_assert_eq(kwire_read_i8(&r, "after"), 0x42);

    uint8_t order[] = {0x02, 0x05, 0x00, 0x01, 0x00};
    kwire_reader_init(&r, order, sizeof(order), 1);
    kwire_read_tags(&r, "tags");
    cr_assert(strstr(r.problem, "ascending"));

    uint8_t many[] = {0x7f, 0x00};
    kwire_reader_init(&r, many, sizeof(many), 1);
    kwire_read_tags(&r, "tags");
    cr_assert_neq(r.err, 0);

    kwire_reader_init(&r, b, sizeof(b), 0);
    kwire_read_tags(&r, "tags");
    cr_assert_eq(kwire_remaining(&r), sizeof(b));
}

/* The writer's measuring pass predicts the bytes and iovecs of the writing pass; external
 * buffers are referenced, not copied. */
Test(kwire, two_pass_writer_with_external_data)
{
    static uint8_t records[100];
    struct iovec ext[2] = {{records, 60}, {records + 60, 40}};
    struct kwire_writer w;
    for (int pass = 0; pass < 2; pass++) {
        static uint8_t buf[64];
        static struct iovec iov[8];
        size_t inline_len = 0;
        int iov_n = 0;
        if (pass == 0)
            kwire_writer_measure(&w, 0);
        else
            kwire_writer_init(&w, buf, sizeof(buf), iov, 8, 0);
        kwire_write_i32(&w, 7);
        kwire_write_str(&w, kstr_of("topic"));
        kwire_write_bytes_length(&w, 100);
        kwire_write_external(&w, ext, 2);
        kwire_write_i16(&w, -1);
        kwire_writer_finish(&w);
        if (pass == 0) {
            inline_len = w.inline_len;
            iov_n = w.iov_n;
            cr_assert_eq(inline_len, 4 + 7 + 4 + 2);
            cr_assert_eq(iov_n, 4);
            cr_assert_eq(w.total, inline_len + 100);
        } else {
            cr_assert_eq(w.overflow, 0);
            cr_assert_eq(w.iov_n, 4);
            cr_assert_eq(iov[1].iov_base, records);
            cr_assert_eq(iov[2].iov_base, records + 60);
            cr_assert_eq(iov[0].iov_len, 15);
            cr_assert_eq(iov[3].iov_len, 2);
            cr_assert_eq(memcmp(buf + 4, "\x00\x05topic\x00\x00\x00\x64", 11), 0);
        }
    }
    /* A writer too small for its data reports overflow instead of writing past its buffer. */
    uint8_t small[3];
    kwire_writer_init(&w, small, sizeof(small), NULL, 0, 0);
    kwire_write_i32(&w, 1);
    cr_assert_eq(w.overflow, 1);
}

/* Compact writes: uvarint(len + 1) and the empty tag section, read back by a flexible reader. */
Test(kwire, compact_write_reads_back)
{
    uint8_t buf[64];
    struct iovec iov[2];
    struct kwire_writer w;
    kwire_writer_init(&w, buf, sizeof(buf), iov, 2, 1);
    kwire_write_str(&w, kstr_of("abc"));
    kwire_write_str(&w, KSTR_NULL);
    kwire_write_array(&w, 200);
    kwire_write_tags(&w);
    kwire_writer_finish(&w);
    cr_assert_eq(w.inline_len, 4 + 1 + 2 + 1);
    cr_assert_eq(buf[0], 4);
    cr_assert_eq(buf[4], 0);
    cr_assert_eq(buf[5], 0xc9); /* 201 = 0xc9 0x01 */
    cr_assert_eq(buf[6], 0x01);
    cr_assert_eq(buf[7], 0x00);
}

/* Frame size prefixes: incomplete, too large, negative or too small to hold a header. */
Test(kframe, peek)
{
    size_t n = 0;
    uint8_t b[4] = {0, 0, 0, 0x24};
    cr_assert_eq(kframe_peek(b, 3, 1000, &n), 0);
    cr_assert_eq(kframe_peek(b, 4, 1000, &n), 1);
    cr_assert_eq(n, 4 + 0x24);
    cr_assert_eq(kframe_peek(b, 4, 0x23, &n), RL_E_FRAME_TOO_LARGE);
    uint8_t neg[4] = {0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(kframe_peek(neg, 4, 1000, &n), RL_E_FRAME_MALFORMED);
    uint8_t tiny[4] = {0, 0, 0, 9};
    cr_assert_eq(kframe_peek(tiny, 4, 1000, &n), RL_E_FRAME_MALFORMED);
}

/* The error map: one code per meaning, scope-dependent leadership, errno, unknown codes. */
Test(kerr, mapping)
{
    cr_assert_eq(kerr_from_rl(0, KERR_SCOPE_PARTITION), 0);
    cr_assert_eq(kerr_from_rl(RL_E_UNKNOWN_TOPIC, KERR_SCOPE_PARTITION), 3);
    cr_assert_eq(kerr_from_rl(RL_E_BATCH_CHECKSUM, KERR_SCOPE_PARTITION), 2);
    cr_assert_eq(kerr_from_rl(RL_E_MESSAGE_TOO_LARGE, KERR_SCOPE_PARTITION), 10);
    cr_assert_eq(kerr_from_rl(RL_E_OFFSET_OUT_OF_RANGE, KERR_SCOPE_PARTITION), 1);
    cr_assert_eq(kerr_from_rl(RL_E_OUT_OF_ORDER_SEQUENCE, KERR_SCOPE_PARTITION), 45);
    cr_assert_eq(kerr_from_rl(RL_E_PRODUCER_FENCED, KERR_SCOPE_PARTITION), 47);
    cr_assert_eq(kerr_from_rl(RL_E_LOG_FAILED, KERR_SCOPE_PARTITION), 56);
    cr_assert_eq(kerr_from_rl(-EIO, KERR_SCOPE_PARTITION), 56);
    cr_assert_eq(kerr_from_rl(RL_E_NOT_LEADER, KERR_SCOPE_PARTITION), 6);
    cr_assert_eq(kerr_from_rl(RL_E_NOT_LEADER, KERR_SCOPE_GROUP), 16);
    cr_assert_eq(kerr_from_rl(RL_E_NOT_LEADER, KERR_SCOPE_ADMIN), 41);
    cr_assert_eq(kerr_from_rl(RL_E_RAFT_NOT_LEADER, KERR_SCOPE_ADMIN), 41);
    cr_assert_eq(kerr_from_rl(RL_E_NOT_FOUND, KERR_SCOPE_GROUP), 69);
    cr_assert_eq(kerr_from_rl(RL_E_TOPIC_EXISTS, KERR_SCOPE_ADMIN), 36);
    cr_assert_eq(kerr_from_rl(RL_E_ILLEGAL_GENERATION, KERR_SCOPE_GROUP), 22);
    cr_assert_eq(kerr_from_rl(RL_E_REBALANCE_IN_PROGRESS, KERR_SCOPE_GROUP), 27);
    cr_assert_eq(kerr_from_rl(RL_E_UNKNOWN_MEMBER_ID, KERR_SCOPE_GROUP), 25);
    /* An elected coordinator not yet ready: clients retry where they are, not elsewhere. */
    cr_assert_eq(kerr_from_rl(RL_E_COORDINATOR_LOADING, KERR_SCOPE_GROUP), 14);
    cr_assert_eq(kerr_from_rl(-EPERM, KERR_SCOPE_PARTITION), -1);
    cr_assert_eq(kerr_from_rl(RL_E_SEGMENT_FULL, KERR_SCOPE_PARTITION), -1);
    cr_assert_eq(kerr_invalid_batch(3), 2);
    cr_assert_eq(kerr_invalid_batch(8), 87);
    cr_assert_str_eq(kerr_name(16), "NOT_COORDINATOR");
    cr_assert_str_eq(kerr_name(9999), "UNKNOWN");
    cr_assert_eq(kerr_retriable(6), 1);
    cr_assert_eq(kerr_retriable(47), 0);
}

/* Every ringlog code maps to a listed Kafka code (a new RL_E_* must be placed in the table
 * deliberately: this fails when one falls through to UNKNOWN_SERVER_ERROR unplanned). */
Test(kerr, every_project_code_is_mapped)
{
    static const int unknown_on_purpose[] = {RL_E_SEGMENT_FULL, RL_E_STALE_OFFSET,
                                             RL_E_CLOSED, RL_E_EXISTS, RL_E_NOT_FOUND,
                                             RL_E_INTERNAL, RL_E_TOO_MANY_CONNECTIONS,
                                             RL_E_DATA_DIR_LOCKED /* never sent */};
    for (int code = RL_ERR_MAX; code >= RL_ERR_MIN; code--) {
        if (strcmp(rl_error_name(code), "UNKNOWN") == 0 ||
            strncmp(rl_strerror(code), "unknown", 7) == 0)
            continue;
        int16_t k = kerr_from_rl(code, KERR_SCOPE_PARTITION);
        int expected_unknown = 0;
        for (size_t i = 0; i < sizeof(unknown_on_purpose) / sizeof(int); i++)
            expected_unknown |= unknown_on_purpose[i] == code;
        if (k == -1 && !expected_unknown && kerr_from_rl(code, KERR_SCOPE_GROUP) == -1 &&
            kerr_from_rl(code, KERR_SCOPE_ADMIN) == -1)
            cr_assert_fail("%s (%d) has no Kafka code", rl_error_name(code), code);
        cr_assert_str_neq(kerr_name(k), "UNKNOWN", "%s maps to %d", rl_error_name(code), k);
    }
}
