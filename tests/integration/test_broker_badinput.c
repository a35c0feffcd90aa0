/*
 * test_broker_badinput: every kind of bad input gets a clear error from a real ringlogd, and
 * the broker keeps serving other connections meanwhile (each test ends by checking that a
 * second, well-behaved connection still gets answers).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "proto/frame.h"
#include "common/batch.h"
#include "common/err.h"
#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_client.h"

static struct tl_broker broker;
static struct tl_conn conn, bystander;

static void setup(void)
{
    static const char *const args[] = {"--set", "max.frame.bytes=1048576", "--set",
                                       "max.connections=8", NULL};
    int rc = tl_broker_start(&broker, args, 20000);
    cr_assert_eq(rc, 0, "ringlogd did not start: %s", rl_strerror(rc));
    cr_assert_eq(tl_connect(&conn, broker.host, broker.port, 5000), 0);
    cr_assert_eq(tl_connect(&bystander, broker.host, broker.port, 5000), 0);
    /* Checked by every test through assert_still_serving (an assertion failing here would
     * skip the teardown and leave the broker running). */
    tl_create_topic(&bystander, "ok", 2, NULL, NULL, 0);
}

static void teardown(void)
{
    tl_close(&conn);
    tl_close(&bystander);
    int st = tl_broker_finish(&broker, 20000);
    cr_expect_eq(st, 0, "broker exit status %d", st);
}

TestSuite(badinput, .init = setup, .fini = teardown, .timeout = 60);

/* The well-behaved connection is still served: it produces and reads back one record. */
static void assert_still_serving(void)
{
    uint8_t *b;
    int len = tl_make_batch(1, "alive", &b);
    int64_t base;
    cr_assert_eq(tl_produce(&bystander, "ok", 0, b, (uint32_t)len, 1, &base), 0);
    free(b);
    struct tl_fetch f = {.topic = "ok", .offset = (uint64_t)base};
    struct tl_fetch_result fr;
    cr_assert_eq(tl_fetch(&bystander, &f, &fr), 0);
    cr_assert_eq(fr.records, 1);
}

/* Reads the one response a failed request gets and checks its code and that it has a message. */
static void expect_error(int want)
{
    Ringlog__Response *resp;
    cr_assert_eq(tl_recv(&conn, 5000, &resp, NULL, NULL), 0);
    cr_assert_eq(resp->error_code, want, "got %d (%s): %s", resp->error_code,
                 rl_error_name(resp->error_code), resp->error_message);
    cr_assert_gt(strlen(resp->error_message), 10, "message too short: \"%s\"",
                 resp->error_message);
}

/* Random bytes (seeded) are answered with an error frame and a closed connection. */
Test(badinput, random_bytes)
{
    unsigned seed = (unsigned)time(NULL);
    fprintf(stderr, "random_bytes seed %u\n", seed);
    srand(seed);
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)rand();
    /* Make the first length land over the limit half of the time, malformed otherwise. */
    junk[0] = (seed & 1) ? 0xff : 0x00;
    junk[1] = (seed & 1) ? 0xff : 0x00;
    junk[2] = 0x00;
    junk[3] = 0x10;
    cr_assert_eq(tl_send_raw(&conn, junk, sizeof(junk)), 0);
    Ringlog__Response *resp;
    int rc = tl_recv(&conn, 5000, &resp, NULL, NULL);
    if (rc == 0) {
        cr_assert_lt(resp->error_code, 0);
        cr_assert_gt(strlen(resp->error_message), 10);
    } else {
        cr_assert_eq(rc, RL_E_CLOSED, "%s", rl_strerror(rc));
    }
    cr_assert(tl_wait_closed(&conn, 5000));
    assert_still_serving();
}

/* A frame cut short by the client closing its side gets FRAME_MALFORMED naming the cut. */
Test(badinput, truncated_frame)
{
    uint8_t hdr[8];
    frame_write_header(hdr, 60, 40);
    cr_assert_eq(tl_send_raw(&conn, hdr, sizeof(hdr)), 0);
    uint8_t part[20] = {0x08, 0x01};
    cr_assert_eq(tl_send_raw(&conn, part, sizeof(part)), 0);
    shutdown(conn.fd, SHUT_WR);
    expect_error(RL_E_FRAME_MALFORMED);
    cr_assert(tl_wait_closed(&conn, 5000));
    assert_still_serving();
}

/* A frame over max.frame.bytes gets FRAME_TOO_LARGE and the connection is closed. */
Test(badinput, frame_too_large)
{
    uint8_t hdr[8];
    frame_write_header(hdr, 10, 2u * 1024 * 1024);
    cr_assert_eq(tl_send_raw(&conn, hdr, sizeof(hdr)), 0);
    expect_error(RL_E_FRAME_TOO_LARGE);
    cr_assert(tl_wait_closed(&conn, 5000));
    assert_still_serving();
}

/* An envelope that is not a protobuf Request gets FRAME_MALFORMED and a close. */
Test(badinput, undecodable_envelope)
{
    uint8_t buf[8 + 6];
    frame_write_header(buf, 6, 0);
    memcpy(buf + 8, "\xff\xff\xff\xff\xff\xff", 6);
    cr_assert_eq(tl_send_raw(&conn, buf, sizeof(buf)), 0);
    expect_error(RL_E_FRAME_MALFORMED);
    cr_assert(tl_wait_closed(&conn, 5000));
    assert_still_serving();
}

/* True once the broker's log holds `needle` (polled until the deadline: the log is written by
 * another process). */
static bool log_has(const char *needle, uint32_t timeout_ms)
{
    for (uint64_t until = tl_now_ms() + timeout_ms;;) {
        FILE *f = fopen(broker.log_path, "r");
        char line[1024];
        bool found = false;
        while (f && !found && fgets(line, sizeof(line), f))
            found = strstr(line, needle) != NULL;
        if (f)
            fclose(f);
        if (found || tl_now_ms() >= until)
            return found;
        struct timespec ts = {0, 20 * 1000000L}; /* polling pace */
        nanosleep(&ts, NULL);
    }
}

/* A peer's protocol error is written to the broker's log with the peer's address (the
 * rate limiter lets the first ones of each second through). */
Test(badinput, protocol_errors_are_logged)
{
    uint8_t buf[8 + 6];
    frame_write_header(buf, 6, 0);
    memcpy(buf + 8, "\xff\xff\xff\xff\xff\xff", 6);
    cr_assert_eq(tl_send_raw(&conn, buf, sizeof(buf)), 0);
    expect_error(RL_E_FRAME_MALFORMED);
    cr_assert(log_has("connection 127.0.0.1:", 5000), "no protocol warning in the log");
    cr_assert(log_has("does not decode as a ringlog Request", 5000));
    cr_assert_not(log_has("protocol errors were not logged", 0));
    assert_still_serving();
}

/* A request without a known body gets UNKNOWN_API, and the same connection stays usable. */
Test(badinput, unknown_api)
{
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    cr_assert_geq(tl_send(&conn, &req, NULL, 0), 0);
    expect_error(RL_E_UNKNOWN_API);
    /* An unknown field number (a future API) is the same. */
    uint8_t buf[8 + 3];
    uint8_t env[] = {0xc2, 0x02, 0x00}; /* field 40, wire type 2, length 0 */
    frame_write_header(buf, sizeof(env), 0);
    memcpy(buf + 8, env, sizeof(env));
    cr_assert_eq(tl_send_raw(&conn, buf, 8 + sizeof(env)), 0);
    expect_error(RL_E_UNKNOWN_API);
    req.body_case = RINGLOG__REQUEST__BODY_API_VERSIONS;
    Ringlog__ApiVersionsRequest av = RINGLOG__API_VERSIONS_REQUEST__INIT;
    req.api_versions = &av;
    req.correlation_id = 0;
    Ringlog__Response *resp;
    cr_assert_eq(tl_call(&conn, &req, NULL, 0, 5000, &resp, NULL, NULL), 0);
    cr_assert_eq(resp->error_code, 0);
    /* A version the broker does not speak. */
    req.version = 7;
    req.correlation_id = 0;
    cr_assert_geq(tl_send(&conn, &req, NULL, 0), 0);
    expect_error(RL_E_UNSUPPORTED_VERSION);
    assert_still_serving();
}

/* A batch whose checksum does not match is refused with BATCH_CHECKSUM and nothing is stored;
 * a batch over the topic's max.message.bytes gets MESSAGE_TOO_LARGE. */
Test(badinput, corrupt_batch_and_too_large)
{
    char msg[256];
    static const char *const cfg[] = {"max.message.bytes=200", NULL};
    cr_assert_eq(tl_create_topic(&conn, "small", 1, cfg, msg, sizeof(msg)), 0, "%s", msg);
    uint8_t *b;
    int len = tl_make_batch(3, "payload", &b);
    b[len - 2] ^= 0x40;
    cr_assert_eq(tl_produce(&conn, "ok", 1, b, (uint32_t)len, 1, NULL), RL_E_BATCH_CHECKSUM);
    b[len - 2] ^= 0x40;
    int64_t off = -1;
    cr_assert_eq(tl_list_offset(&conn, "ok", 1, -1, &off), 0);
    cr_assert_eq(off, 0, "a corrupt batch was stored");
    free(b);
    len = tl_make_batch(40, "a-longer-payload-", &b);
    cr_assert_gt(len, 200);
    cr_assert_eq(tl_produce(&conn, "small", 0, b, (uint32_t)len, 1, NULL),
                 RL_E_MESSAGE_TOO_LARGE);
    /* A data section shorter than the batch it declares. */
    cr_assert_eq(tl_produce(&conn, "ok", 1, b, 40, 1, NULL), RL_E_BATCH_SHORT);
    free(b);
    assert_still_serving();
}

/* Topic names that are empty, too long or have bad characters get INVALID_TOPIC_NAME. */
Test(badinput, invalid_topic_names)
{
    char msg[256], longname[300];
    memset(longname, 'x', 250);
    longname[250] = 0;
    const char *bad[] = {"", longname, "has space", "slash/name", "..", "tab\tname", "ümlaut"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = tl_create_topic(&conn, bad[i], 1, NULL, msg, sizeof(msg));
        cr_assert_eq(rc, RL_E_INVALID_TOPIC_NAME, "name %zu: %d %s", i, rc, msg);
        cr_assert_gt(strlen(msg), 10);
    }
    longname[249] = 0;
    cr_assert_eq(tl_create_topic(&conn, longname, 1, NULL, msg, sizeof(msg)), 0, "%s", msg);
    assert_still_serving();
}

/* Zero or negative partition counts get INVALID_PARTITIONS; bad configs INVALID_CONFIG. */
Test(badinput, invalid_partitions_and_configs)
{
    char msg[256];
    cr_assert_eq(tl_create_topic(&conn, "z", 0, NULL, msg, sizeof(msg)), RL_E_INVALID_PARTITIONS);
    cr_assert_eq(tl_create_topic(&conn, "z", -3, NULL, msg, sizeof(msg)), RL_E_INVALID_PARTITIONS);
    static const char *const c1[] = {"flush.policy=sometimes", NULL};
    cr_assert_eq(tl_create_topic(&conn, "z", 1, c1, msg, sizeof(msg)), RL_E_INVALID_CONFIG);
    cr_assert_not_null(strstr(msg, "flush.policy"), "%s", msg);
    static const char *const c2[] = {"no.such.key=1", NULL};
    cr_assert_eq(tl_create_topic(&conn, "z", 1, c2, msg, sizeof(msg)), RL_E_INVALID_CONFIG);
    assert_still_serving();
}

/* Requests naming a topic or partition that does not exist get UNKNOWN_TOPIC/PARTITION. */
Test(badinput, unknown_topic_and_partition)
{
    uint8_t *b;
    int len = tl_make_batch(1, "v", &b);
    cr_assert_eq(tl_produce(&conn, "nope", 0, b, (uint32_t)len, 1, NULL), RL_E_UNKNOWN_TOPIC);
    cr_assert_eq(tl_produce(&conn, "ok", 9, b, (uint32_t)len, 1, NULL), RL_E_UNKNOWN_PARTITION);
    free(b);
    struct tl_fetch f = {.topic = "nope"};
    struct tl_fetch_result fr;
    cr_assert_eq(tl_fetch(&conn, &f, &fr), RL_E_UNKNOWN_TOPIC);
    cr_assert_not_null(strstr(fr.error_message, "nope"));
    cr_assert_eq(tl_list_offset(&conn, "nope", 0, -1, NULL), RL_E_UNKNOWN_TOPIC);
    cr_assert_eq(tl_delete_topic(&conn, "nope"), RL_E_UNKNOWN_TOPIC);
    assert_still_serving();
}

/* A fetch past the log end (or before its start) gets OFFSET_OUT_OF_RANGE with the range. */
Test(badinput, fetch_out_of_range)
{
    uint8_t *b;
    int len = tl_make_batch(3, "v", &b);
    cr_assert_eq(tl_produce(&conn, "ok", 1, b, (uint32_t)len, 1, NULL), 0);
    free(b);
    struct tl_fetch f = {.topic = "ok", .partition = 1, .offset = 1000};
    struct tl_fetch_result fr;
    cr_assert_eq(tl_fetch(&conn, &f, &fr), RL_E_OFFSET_OUT_OF_RANGE);
    cr_assert_not_null(strstr(fr.error_message, "0 to 3"), "%s", fr.error_message);
    f.offset = 3; /* the log end itself is fine: nothing yet */
    cr_assert_eq(tl_fetch(&conn, &f, &fr), 0);
    cr_assert_eq(fr.data_len, 0);
    assert_still_serving();
}

/* Connections over max.connections and its operator reserve (4, which serve admin requests
 * such as ApiVersions) get TOO_MANY_CONNECTIONS and are closed. */
Test(badinput, too_many_connections)
{
    struct tl_conn extra[12];
    int opened = 0, rejected = 0;
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(tl_connect(&extra[i], broker.host, broker.port, 5000), 0);
        opened++;
        Ringlog__ApiVersionsRequest av = RINGLOG__API_VERSIONS_REQUEST__INIT;
        Ringlog__Request req = RINGLOG__REQUEST__INIT;
        req.body_case = RINGLOG__REQUEST__BODY_API_VERSIONS;
        req.api_versions = &av;
        Ringlog__Response *resp;
        int rc = tl_call(&extra[i], &req, NULL, 0, 5000, &resp, NULL, NULL);
        if (rc == 0 && resp->error_code == RL_E_TOO_MANY_CONNECTIONS) {
            rejected++;
            cr_assert_not_null(strstr(resp->error_message, "max.connections"));
        } else if (rc != 0) {
            rejected++; /* the rejection frame may be lost to a reset; the close is what counts */
        }
    }
    cr_assert_eq(rejected, 2, "8 allowed and 4 reserved, 2 held by the fixture, 12 more tried: "
                 "%d rejected", rejected);
    for (int i = 0; i < opened; i++)
        tl_close(&extra[i]);
    assert_still_serving();
}

static int create_range(const char *name, int32_t partitions, const char *const *keys, size_t n)
{
    ProtobufCBinaryData bk[8];
    for (size_t i = 0; i < n; i++) {
        bk[i].len = strlen(keys[i]);
        bk[i].data = (uint8_t *)keys[i];
    }
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = (char *)name;
    spec.partitions = partitions;
    spec.partitioner = RINGLOG__PARTITIONER__PARTITIONER_RANGE;
    spec.n_split_keys = n;
    spec.split_keys = bk;
    char msg[256];
    int rc = tl_create_topic_spec(&conn, &spec, msg, sizeof(msg));
    if (rc)
        cr_assert_gt(strlen(msg), 10);
    return rc;
}

/* Range split keys must be partitions-1 long, sorted and distinct; hash takes none; a
 * replication factor above 1 is refused on a single broker. */
Test(badinput, invalid_range_splits_and_replication)
{
    const char *ok[] = {"g", "p"};
    const char *unsorted[] = {"p", "g"};
    const char *dup[] = {"g", "g"};
    cr_assert_eq(create_range("r1", 3, ok, 1), RL_E_INVALID_SPLITS);
    cr_assert_eq(create_range("r1", 3, unsorted, 2), RL_E_INVALID_SPLITS);
    cr_assert_eq(create_range("r1", 3, dup, 2), RL_E_INVALID_SPLITS);
    cr_assert_eq(create_range("r1", 3, ok, 2), 0);
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    spec.name = (char *)"r2";
    spec.partitions = 2;
    spec.replication_factor = 3;
    cr_assert_eq(tl_create_topic_spec(&conn, &spec, NULL, 0), RL_E_INVALID_REPLICATION);
    assert_still_serving();
}
