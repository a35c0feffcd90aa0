/*
 * test_frame: the native protocol's framing (broker/frame.h) and the request arena
 * (broker/arena.h), without sockets: header parsing limits, encode/decode round trips,
 * request checks, and arena bounds and reuse.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "common/arena.h"
#include "proto/frame.h"
#include "common/err.h"

/* Headers shorter than 8 bytes need more; oversize and inconsistent ones are refused. */
Test(frame, parse_header_limits)
{
    uint8_t h[8];
    struct frame_info fi;
    frame_write_header(h, 10, 20);
    cr_assert_eq(frame_parse_header(h, 7, 1000, &fi), 0);
    cr_assert_eq(frame_parse_header(h, 8, 1000, &fi), 1);
    cr_assert_eq(fi.frame_len, 34);
    cr_assert_eq(fi.envelope_len, 10);
    cr_assert_eq(fi.data_len, 20);
    cr_assert_eq(fi.total_bytes, 38);
    cr_assert_eq(frame_parse_header(h, 8, 33, &fi), RL_E_FRAME_TOO_LARGE);
    /* frame_len < 4, or an envelope longer than the frame. */
    memset(h, 0, 8);
    h[3] = 3;
    cr_assert_eq(frame_parse_header(h, 8, 1000, &fi), RL_E_FRAME_MALFORMED);
    h[3] = 8;
    h[7] = 5;
    cr_assert_eq(frame_parse_header(h, 8, 1000, &fi), RL_E_FRAME_MALFORMED);
    h[7] = 4;
    cr_assert_eq(frame_parse_header(h, 8, 1000, &fi), 1);
    cr_assert_eq(fi.data_len, 0);
    /* The largest lengths do not overflow. */
    memset(h, 0xff, 8);
    cr_assert_eq(frame_parse_header(h, 8, UINT32_MAX, &fi), RL_E_FRAME_MALFORMED);
    h[4] = 0;
    cr_assert_eq(frame_parse_header(h, 8, UINT32_MAX, &fi), 1);
    cr_assert_eq(fi.total_bytes, 4ull + UINT32_MAX);
}

/* A Request encodes and decodes back with its fields; the data length is in the header. */
Test(frame, request_roundtrip)
{
    struct arena a;
    arena_init(&a, 1024, 1 << 20);
    char *names[2] = {"a", "bb"};
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    mr.n_topics = 2;
    mr.topics = names;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.correlation_id = 77;
    req.client_id = "tester";
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    uint8_t buf[256];
    size_t n = frame_request_envelope_bytes(&req);
    cr_assert_lt(n, sizeof(buf));
    cr_assert_eq(frame_encode_request(&req, 0, buf), n);
    struct frame_info fi;
    cr_assert_eq(frame_parse_header(buf, n, 1 << 20, &fi), 1);
    cr_assert_eq(fi.total_bytes, n);
    Ringlog__Request *out;
    cr_assert_eq(frame_decode_request(buf, &fi, &a, &out), 0);
    cr_assert_eq(out->correlation_id, 77);
    cr_assert_str_eq(out->client_id, "tester");
    cr_assert_eq(frame_request_api(out), RINGLOG__API__API_METADATA);
    cr_assert_eq(out->metadata->n_topics, 2);
    cr_assert_str_eq(out->metadata->topics[1], "bb");
    char msg[128];
    cr_assert_eq(frame_check_request(out, 0, msg, sizeof(msg)), 0);
    cr_assert_eq(frame_check_request(out, 5, msg, sizeof(msg)), RL_E_INVALID_REQUEST);
    cr_assert_str_eq(frame_api_name(frame_request_api(out)), "metadata");
    arena_destroy(&a);
}

/* Produce's declared data lengths must add up to the data section; acks must be 0, 1 or -1;
 * a missing body is UNKNOWN_API and a non-zero version UNSUPPORTED_VERSION. */
Test(frame, check_request)
{
    Ringlog__ProducePartition p1 = RINGLOG__PRODUCE_PARTITION__INIT, p2 = p1;
    p1.data_len = 100;
    p2.data_len = 50;
    Ringlog__ProducePartition *pps[2] = {&p1, &p2};
    Ringlog__ProduceTopic pt = RINGLOG__PRODUCE_TOPIC__INIT;
    pt.n_partitions = 2;
    pt.partitions = pps;
    Ringlog__ProduceTopic *pts[1] = {&pt};
    Ringlog__ProduceRequest pr = RINGLOG__PRODUCE_REQUEST__INIT;
    pr.acks = 1;
    pr.n_topics = 1;
    pr.topics = pts;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_PRODUCE;
    req.produce = &pr;
    char msg[200];
    cr_assert_eq(frame_check_request(&req, 150, msg, sizeof(msg)), 0);
    cr_assert_eq(frame_check_request(&req, 149, msg, sizeof(msg)), RL_E_INVALID_REQUEST);
    cr_assert_not_null(strstr(msg, "150"), "%s", msg);
    pr.acks = 2;
    cr_assert_eq(frame_check_request(&req, 150, msg, sizeof(msg)), RL_E_INVALID_REQUEST);
    pr.acks = -1;
    req.version = 1;
    cr_assert_eq(frame_check_request(&req, 150, msg, sizeof(msg)), RL_E_UNSUPPORTED_VERSION);
    req.version = 0;
    req.body_case = RINGLOG__REQUEST__BODY__NOT_SET;
    cr_assert_eq(frame_check_request(&req, 0, msg, sizeof(msg)), RL_E_UNKNOWN_API);
    cr_assert_gt(strlen(msg), 10);
}

/* Bytes that are not a protobuf Request are FRAME_MALFORMED, not a crash. */
Test(frame, decode_garbage)
{
    struct arena a;
    arena_init(&a, 1024, 1 << 20);
    uint8_t buf[8 + 6];
    frame_write_header(buf, 6, 0);
    memset(buf + 8, 0xff, 6);
    struct frame_info fi;
    cr_assert_eq(frame_parse_header(buf, sizeof(buf), 1000, &fi), 1);
    Ringlog__Request *out;
    cr_assert_eq(frame_decode_request(buf, &fi, &a, &out), RL_E_FRAME_MALFORMED);
    arena_destroy(&a);
}

/* The arena hands out aligned memory, chains chunks for big requests, refuses past its bound,
 * and a reset keeps only the first chunk. */
Test(arena, bounds_and_reset)
{
    struct arena a;
    arena_init(&a, 4096, 64 * 1024);
    void *p = arena_alloc(&a, 3);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % 16, 0);
    cr_assert_eq(arena_held_bytes(&a), 4096);
    void *big = arena_alloc(&a, 20000);
    cr_assert_not_null(big);
    memset(big, 1, 20000);
    cr_assert_gt(arena_held_bytes(&a), 4096);
    cr_assert_null(arena_alloc(&a, 100 * 1024), "an allocation past max_bytes succeeded");
    int failures = 0;
    for (int i = 0; i < 100; i++)
        failures += arena_alloc(&a, 4000) == NULL;
    cr_assert_gt(failures, 0, "the arena grew past its bound");
    arena_reset(&a);
    cr_assert_eq(arena_held_bytes(&a), 4096);
    cr_assert_not_null(arena_alloc(&a, 0));
    cr_assert_str_eq(arena_strdup(&a, "hello"), "hello");
    cr_assert_str_eq(arena_printf(&a, "%d-%s", 7, "x"), "7-x");
    arena_destroy(&a);
}

/* protobuf-c decodes through the arena allocator: a request with many fields costs no malloc
 * per field and is gone after a reset. */
Test(arena, protobuf_allocator)
{
    struct arena a;
    arena_init(&a, 256, 1 << 20);
    char *names[64];
    char store[64][16];
    for (int i = 0; i < 64; i++) {
        snprintf(store[i], sizeof(store[i]), "t%d", i);
        names[i] = store[i];
    }
    Ringlog__MetadataRequest mr = RINGLOG__METADATA_REQUEST__INIT;
    mr.n_topics = 64;
    mr.topics = names;
    Ringlog__Request req = RINGLOG__REQUEST__INIT;
    req.body_case = RINGLOG__REQUEST__BODY_METADATA;
    req.metadata = &mr;
    uint8_t buf[2048];
    frame_encode_request(&req, 0, buf);
    struct frame_info fi;
    cr_assert_eq(frame_parse_header(buf, sizeof(buf), 1 << 20, &fi), 1);
    for (int round = 0; round < 3; round++) {
        Ringlog__Request *out;
        cr_assert_eq(frame_decode_request(buf, &fi, &a, &out), 0);
        cr_assert_str_eq(out->metadata->topics[63], "t63");
        arena_reset(&a);
        cr_assert_eq(arena_held_bytes(&a), 256);
    }
    arena_destroy(&a);
}
