/*
 * fuzz_batch: the batch codec against arbitrary bytes, three ways per input.
 *
 *  1. As a batch, unchanged: header decode, validate, reader open/next/header walk, deep
 *     validation and the broker's full validation (batch_validate_full) must agree with each
 *     other, return only 0 or RL_E_BATCH_* codes, never read outside the input (ASan) and stop
 *     within record_count + 1 steps. The property the broker relies on: what full validation
 *     accepts, a reader (same scratch size as the validator) iterates to the end, and its
 *     records satisfy what validation promises (timestamps >= 0, first and max consistent);
 *     what the reader refuses, full validation refuses with the same code.
 *  2. As a batch with the magic, length, count and checksum fixed up, so mutations of the
 *     records section (and of zstd frames) get past the checksum and reach the record parser;
 *     then again with the flags and max_timestamp made consistent, so the clock bounds are
 *     reached too.
 *  3. As a script of records fed to builders (both codecs, several size limits): whatever the
 *     records, every finished batch validates (fully, with the verdict on timestamps the
 *     records predict), reads back exactly what was added, survives stamping, and any flipped
 *     byte in its checksummed range is caught.
 */
#include "tests/fuzz/fuzz.h"

#include <endian.h>
#include <string.h>

#include "common/batch.h"
#include "common/err.h"

/* Limits of this harness (not of the codec): they keep one input fast. */
#define FZ_SCRATCH_BYTES (1024u * 1024)
#define FZ_MAX_RECORDS 512   /* records remembered per built batch */
#define FZ_MAX_HEADERS 3     /* headers per scripted record */
#define FZ_MAX_STEPS 4096    /* script steps per input */
#define FZ_POOL_BYTES (128u * 1024)

static const size_t fz_caps[4] = {128, 1024, 16 * 1024, 256 * 1024};

/* The broker's clock in this harness (fixed, so every input replays the same way) and two sets
 * of bounds: the broker's defaults, and none at all. */
#define FZ_NOW_MS INT64_C(1700000000000)
static const struct batch_limits fz_default_limits = {
    .now_ms = FZ_NOW_MS,
    .after_max_ms = RL_BATCH_TIMESTAMP_AFTER_MAX_MS,
    .before_max_ms = RL_BATCH_TIMESTAMP_BEFORE_MAX_MS,
};
static const struct batch_limits fz_open_limits = {
    .now_ms = FZ_NOW_MS, .after_max_ms = INT64_MAX, .before_max_ms = INT64_MAX};

static struct batch_reader *fz_reader;
static struct batch_reader *fz_validator; /* same scratch size as fz_reader */
static struct batch_builder *fz_builders[2][4];
static uint8_t fz_pool[FZ_POOL_BYTES];

static void fz_init(void)
{
    if (fz_reader)
        return;
    fz_reader = batch_reader_create(FZ_SCRATCH_BYTES);
    fz_validator = batch_reader_create(FZ_SCRATCH_BYTES);
    FUZZ_CHECK(fz_reader != NULL && fz_validator != NULL);
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 4; i++) {
            fz_builders[c][i] =
                batch_builder_create(fz_caps[i], c ? BATCH_CODEC_ZSTD : BATCH_CODEC_NONE, 1);
            FUZZ_CHECK(fz_builders[c][i] != NULL);
        }
    /* Half compressible, half not, so zstd both pays and falls back. */
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < FZ_POOL_BYTES; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        fz_pool[i] = i < FZ_POOL_BYTES / 2 ? (uint8_t)(i % 13) : (uint8_t)x;
    }
}

/* The batch codec's own codes: the -51xx group of err.h. */
static int is_batch_code(int rc)
{
    return rc <= RL_E_BATCH_SHORT && rc > RL_E_BATCH_SHORT - 100;
}

/* Reads every byte a record exposes (so ASan sees any out-of-bounds pointer) and walks its
 * headers, which must be consistent once batch_reader_next accepted the record. */
static unsigned touch_record(const struct batch_record *rec)
{
    unsigned sum = 0;
    for (int32_t i = 0; i < rec->key_len; i++)
        sum += rec->key[i];
    for (int32_t i = 0; i < rec->value_len; i++)
        sum += rec->value[i];
    FUZZ_CHECK(rec->key_len >= -1 && rec->value_len >= -1);
    FUZZ_CHECK((rec->key == NULL) == (rec->key_len == -1));
    FUZZ_CHECK((rec->value == NULL) == (rec->value_len == -1));
    size_t pos = 0;
    struct batch_record_header hd;
    uint32_t n = 0;
    int rc;
    while ((rc = batch_header_next(rec, &pos, &hd)) == 1) {
        FUZZ_CHECK(++n <= rec->header_count);
        for (int32_t i = 0; i < hd.key_len; i++)
            sum += hd.key[i];
        for (int32_t i = 0; i < hd.value_len; i++)
            sum += hd.value[i];
    }
    FUZZ_CHECK(rc == 0 && n == rec->header_count);
    return sum;
}

/* What the reader saw of one batch, for checking full validation's verdict. */
struct seen {
    int rc;                 /* the reader's verdict: 0 when every record was read */
    uint32_t records;
    int64_t first_ts, min_ts, max_ts;
};

/* Full validation against what the reader saw: accepted implies the reader read everything and
 * the timestamps hold what validation promises; the reader's refusals are validation's too;
 * the clock bounds only ever refuse more. */
static void check_full(const uint8_t *data, size_t size, const struct batch_header *h,
                       const struct seen *s)
{
    int open = batch_validate_full(fz_validator, data, size, &fz_open_limits, NULL);
    int dflt = batch_validate_full(fz_validator, data, size, &fz_default_limits, NULL);
    FUZZ_CHECK(open == 0 || is_batch_code(open));
    FUZZ_CHECK(dflt == 0 || is_batch_code(dflt));
    FUZZ_CHECK(batch_reader_detail(fz_validator)[0] == '\0' || dflt != 0);
    if (s->rc != 0) {
        FUZZ_CHECK(open == s->rc && dflt == s->rc);
        return;
    }
    if (dflt == 0)
        FUZZ_CHECK(open == 0);
    if (open != 0) {
        FUZZ_CHECK(dflt == open);
        return;
    }
    FUZZ_CHECK(s->records == h->record_count);
    FUZZ_CHECK((h->flags & ~BATCH_FLAG_CODEC_MASK) == 0);
    FUZZ_CHECK(s->first_ts == h->first_timestamp && s->max_ts == h->max_timestamp);
    FUZZ_CHECK(s->min_ts >= 0);
    int future = s->max_ts > FZ_NOW_MS + RL_BATCH_TIMESTAMP_AFTER_MAX_MS;
    FUZZ_CHECK(dflt == (future ? RL_E_BATCH_TIMESTAMP_FUTURE : 0));
}

/* Property 1 (and the body of 2): the entry points agree on any bytes. */
static void check_bytes(const uint8_t *data, size_t size)
{
    struct batch_header h, hv, ho;
    int rc_h = batch_header_decode(data, size, &h);
    int rc_v = batch_validate(data, size, &hv);
    FUZZ_CHECK(rc_h == 0 || is_batch_code(rc_h));
    FUZZ_CHECK(rc_v == 0 || is_batch_code(rc_v));
    if (rc_h)
        FUZZ_CHECK(rc_v == rc_h);
    if (size >= 12 && rc_h == 0)
        FUZZ_CHECK(batch_peek_len(data) == h.batch_len);
    int rc_o = batch_reader_open(fz_reader, data, size, &ho);
    if (rc_v)
        FUZZ_CHECK(rc_o == rc_v);
    else
        FUZZ_CHECK(rc_o == 0 || rc_o == RL_E_BATCH_DECOMPRESS ||
                   rc_o == RL_E_BATCH_DECOMPRESS_LIMIT || rc_o == RL_E_BATCH_COUNT);
    int rc_iter = rc_o;
    if (rc_o == 0) {
        FUZZ_CHECK(ho.batch_len == hv.batch_len && ho.checksum == hv.checksum &&
                   ho.record_count == hv.record_count && ho.base_offset == hv.base_offset);
        struct batch_record rec;
        uint64_t steps = 0;
        volatile unsigned sink = 0;
        struct seen seen = {0};
        while ((rc_iter = batch_reader_next(fz_reader, &rec)) == 1) {
            FUZZ_CHECK(++steps <= ho.record_count);
            FUZZ_CHECK(rec.offset == (int64_t)(ho.base_offset + steps - 1));
            sink += touch_record(&rec);
            if (steps == 1)
                seen.first_ts = seen.min_ts = seen.max_ts = rec.timestamp;
            seen.min_ts = rec.timestamp < seen.min_ts ? rec.timestamp : seen.min_ts;
            seen.max_ts = rec.timestamp > seen.max_ts ? rec.timestamp : seen.max_ts;
        }
        FUZZ_CHECK(rc_iter == 0 || is_batch_code(rc_iter));
        FUZZ_CHECK(batch_reader_detail(fz_reader)[0] != '\0' || rc_iter == 0);
        if (rc_iter == 0)
            FUZZ_CHECK(steps == ho.record_count);
        seen.rc = rc_iter;
        seen.records = (uint32_t)steps;
        check_full(data, size, &ho, &seen);
        (void)sink;
    } else {
        int full = batch_validate_full(fz_validator, data, size, &fz_open_limits, NULL);
        FUZZ_CHECK(full == rc_o);
    }
    FUZZ_CHECK(batch_validate_deep(fz_reader, data, size) == rc_iter);
}

/* After a fixed-up batch reads cleanly: keep the codec bits only and set max_timestamp from
 * the records, so the input reaches the timestamp and clock checks of full validation. */
static void fix_timestamps(uint8_t *buf, size_t size)
{
    if (batch_reader_open(fz_reader, buf, size, NULL) != 0)
        return;
    struct batch_record rec;
    int64_t max = INT64_MIN;
    int rc;
    while ((rc = batch_reader_next(fz_reader, &rec)) == 1)
        max = rec.timestamp > max ? rec.timestamp : max;
    if (rc != 0)
        return;
    buf[BATCH_OFF_FLAGS] &= BATCH_FLAG_CODEC_MASK;
    buf[BATCH_OFF_FLAGS + 1] = 0;
    uint64_t v = htole64((uint64_t)max);
    memcpy(buf + BATCH_OFF_MAX_TIMESTAMP, &v, 8);
    v = htole64(batch_compute_checksum(buf, (uint32_t)size));
    memcpy(buf + BATCH_OFF_CHECKSUM, &v, 8);
    check_bytes(buf, size);
}

/* Property 2: make the header plausible and the checksum right, then check as in 1. */
static void check_fixed_up(const uint8_t *data, size_t size)
{
    if (size < RL_BATCH_HEADER_SIZE || size > RL_BATCH_MAX_BYTES)
        return;
    uint8_t *buf = malloc(size); /* exact size: ASan catches reads past the batch */
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, data, size);
    buf[BATCH_OFF_MAGIC] = RL_BATCH_MAGIC;
    uint32_t v = htole32((uint32_t)size);
    memcpy(buf + BATCH_OFF_BATCH_LEN, &v, 4);
    uint32_t count;
    memcpy(&count, buf + BATCH_OFF_RECORD_COUNT, 4);
    count = le32toh(count);
    if (count == 0 || count > RL_BATCH_MAX_RECORDS)
        count = 1 + count % 64;
    v = htole32(count);
    memcpy(buf + BATCH_OFF_RECORD_COUNT, &v, 4);
    v = htole32(count - 1);
    memcpy(buf + BATCH_OFF_LAST_OFFSET_DELTA, &v, 4);
    uint64_t sum = htole64(batch_compute_checksum(buf, (uint32_t)size));
    memcpy(buf + BATCH_OFF_CHECKSUM, &sum, 8);
    int rc = batch_validate(buf, size, NULL);
    FUZZ_CHECK(rc == 0 || rc == RL_E_BATCH_CODEC);
    check_bytes(buf, size);
    fix_timestamps(buf, size);
    free(buf);
}

/* --- property 3: scripted records through the builder ------------------------------------- */

struct script {
    const uint8_t *p, *end;
};

static uint32_t take(struct script *s, unsigned nbytes)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < nbytes; i++)
        v = (v << 8) | (s->p < s->end ? *s->p++ : 0);
    return v;
}

/* Bytes for a key or value: from the input itself when it has enough left, else the pool. */
static const uint8_t *take_bytes(struct script *s, size_t len)
{
    if ((size_t)(s->end - s->p) >= len) {
        const uint8_t *b = s->p;
        s->p += len;
        return b;
    }
    return fz_pool + take(s, 2) % (FZ_POOL_BYTES - len);
}

/* Records added to the current batch, plus one slot for the record being tried. */
struct expected {
    struct batch_record_in in[FZ_MAX_RECORDS + 1];
    struct batch_record_header hdrs[FZ_MAX_RECORDS + 1][FZ_MAX_HEADERS];
    uint32_t n;
};

static int64_t next_timestamp(struct script *s, uint8_t mode, int64_t prev)
{
    switch (mode) {
    case 0:
        return prev;
    case 1:
        return (int64_t)((uint64_t)prev + (uint64_t)(int64_t)(int8_t)take(s, 1)); /* wraps */
    case 2:
        return (int64_t)(((uint64_t)take(s, 4) << 32) | take(s, 4));
    default:
        return (take(s, 1) & 1) ? INT64_MAX : INT64_MIN;
    }
}

/* Decodes one scripted record into e->in[e->n] (not yet counted). */
static void script_record(struct script *s, struct expected *e, int64_t *ts)
{
    struct batch_record_in *in = &e->in[e->n];
    uint8_t c = (uint8_t)take(s, 1);
    memset(in, 0, sizeof(*in));
    unsigned kmode = c & 3, vmode = (c >> 2) & 3;
    if (kmode) {
        in->key_len = kmode == 1 ? 0 : take(s, 1) % 64;
        in->key = take_bytes(s, in->key_len);
    }
    if (vmode) {
        in->value_len = vmode == 1 ? 0 : vmode == 2 ? take(s, 1) : take(s, 2) * 2;
        in->value = take_bytes(s, in->value_len);
    }
    *ts = next_timestamp(s, (c >> 4) & 3, *ts);
    in->timestamp = *ts;
    in->header_count = c >> 6;
    in->headers = in->header_count ? e->hdrs[e->n] : NULL;
    for (uint32_t j = 0; j < in->header_count; j++) {
        struct batch_record_header *hd = &e->hdrs[e->n][j];
        uint8_t hc = (uint8_t)take(s, 1);
        hd->key_len = hc % 16;
        hd->key = take_bytes(s, (size_t)hd->key_len);
        hd->value_len = (hc >> 4) == 15 ? -1 : hc >> 4;
        hd->value = hd->value_len < 0 ? NULL : take_bytes(s, (size_t)hd->value_len);
    }
}

static void same_bytes(const uint8_t *got, int32_t got_len, const void *want, size_t want_len)
{
    if (!want) {
        FUZZ_CHECK(got == NULL && got_len == -1);
        return;
    }
    FUZZ_CHECK(got != NULL && (size_t)got_len == want_len);
    FUZZ_CHECK(want_len == 0 || memcmp(got, want, want_len) == 0);
}

static void verify_record(const struct batch_record *rec, const struct batch_record_in *in)
{
    FUZZ_CHECK(rec->timestamp == in->timestamp);
    same_bytes(rec->key, rec->key_len, in->key, in->key_len);
    same_bytes(rec->value, rec->value_len, in->value, in->value_len);
    FUZZ_CHECK(rec->header_count == in->header_count);
    size_t pos = 0;
    struct batch_record_header hd;
    for (uint32_t j = 0; j < in->header_count; j++) {
        FUZZ_CHECK(batch_header_next(rec, &pos, &hd) == 1);
        same_bytes(hd.key, hd.key_len, in->headers[j].key ? (const void *)in->headers[j].key : "",
                   (size_t)in->headers[j].key_len);
        same_bytes(hd.value, hd.value_len, in->headers[j].value,
                   in->headers[j].value ? (size_t)in->headers[j].value_len : 0);
    }
    FUZZ_CHECK(batch_header_next(rec, &pos, &hd) == 0);
}

/* Finishes the builder's batch and checks it against what was added. */
static void verify_batch(struct batch_builder *b, const struct expected *e, uint64_t base)
{
    const uint8_t *out;
    int len = batch_builder_finish(b, &out);
    if (e->n == 0) {
        FUZZ_CHECK(len == RL_E_BATCH_EMPTY);
        return;
    }
    FUZZ_CHECK(len > 0);
    uint8_t *copy = malloc((size_t)len); /* exact size for ASan */
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, out, (size_t)len);
    batch_stamp(copy, base, (uint32_t)base);
    struct batch_header h;
    FUZZ_CHECK(batch_validate(copy, (size_t)len, &h) == 0);
    FUZZ_CHECK(h.record_count == e->n && h.base_offset == base);
    FUZZ_CHECK(batch_reader_open(fz_reader, copy, (size_t)len, NULL) == 0);
    struct batch_record rec;
    for (uint32_t i = 0; i < e->n; i++) {
        FUZZ_CHECK(batch_reader_next(fz_reader, &rec) == 1);
        FUZZ_CHECK(rec.offset == (int64_t)(base + i));
        verify_record(&rec, &e->in[i]);
    }
    FUZZ_CHECK(batch_reader_next(fz_reader, &rec) == 0);
    /* Full validation: the builder's batches fail only on timestamps, as the records predict. */
    int64_t min = e->in[0].timestamp, max = e->in[0].timestamp;
    for (uint32_t i = 1; i < e->n; i++) {
        min = e->in[i].timestamp < min ? e->in[i].timestamp : min;
        max = e->in[i].timestamp > max ? e->in[i].timestamp : max;
    }
    int want_open = min < 0 ? RL_E_BATCH_TIMESTAMP_RANGE : 0;
    int future = max > FZ_NOW_MS + RL_BATCH_TIMESTAMP_AFTER_MAX_MS;
    int want_dflt = want_open ? want_open : future ? RL_E_BATCH_TIMESTAMP_FUTURE : 0;
    FUZZ_CHECK(batch_validate_full(fz_validator, copy, (size_t)len, &fz_open_limits, NULL) ==
               want_open);
    FUZZ_CHECK(batch_validate_full(fz_validator, copy, (size_t)len, &fz_default_limits, NULL) ==
               want_dflt);
    /* Any damaged byte in the checksummed range is caught by the cheap check. */
    size_t at = RL_BATCH_CHECKSUM_FROM + (size_t)(base % ((uint64_t)len - RL_BATCH_CHECKSUM_FROM));
    copy[at] ^= (uint8_t)(1u << (base % 8));
    FUZZ_CHECK(batch_validate(copy, (size_t)len, NULL) != 0);
    free(copy);
}

static void check_round_trip(const uint8_t *data, size_t size)
{
    static struct expected e;
    struct script s = {data, data + size};
    uint8_t cfg = (uint8_t)take(&s, 1);
    struct batch_builder *b = fz_builders[cfg & 1][(cfg >> 1) & 3];
    batch_builder_reset(b, -1, -1, -1);
    e.n = 0;
    int64_t ts = 1700000000000;
    for (int step = 0; step < FZ_MAX_STEPS && s.p < s.end; step++) {
        script_record(&s, &e, &ts);
        int64_t first = e.n ? e.in[0].timestamp : ts, delta;
        int overflow = __builtin_sub_overflow(ts, first, &delta);
        int rc = e.n == FZ_MAX_RECORDS ? RL_E_FULL : batch_builder_add(b, &e.in[e.n]);
        if (rc == RL_E_FULL) {
            FUZZ_CHECK(e.n > 0);
            verify_batch(b, &e, (uint64_t)step * 1000003u);
            batch_builder_reset(b, -1, -1, -1);
            e.in[0] = e.in[e.n];
            memcpy(e.hdrs[0], e.hdrs[e.n], sizeof(e.hdrs[0]));
            e.in[0].headers = e.in[0].header_count ? e.hdrs[0] : NULL;
            e.n = 0;
            rc = batch_builder_add(b, &e.in[0]);
            overflow = 0;
        }
        if (rc == 0) {
            FUZZ_CHECK(!overflow);
            e.n++;
        } else {
            FUZZ_CHECK(rc == RL_E_BATCH_TOO_LARGE || (rc == RL_E_INVALID_ARGUMENT && overflow));
            FUZZ_CHECK(batch_builder_count(b) == e.n);
        }
    }
    verify_batch(b, &e, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    check_bytes(data, size);
    check_fixed_up(data, size);
    check_round_trip(data, size);
    return 0;
}
