/*
 * kwire: Kafka's wire primitives (see kwire.h). The reader's failures are sticky so that codecs
 * read straight through a structure and check once; the writer's two passes share one code path
 * so measured and written sizes cannot disagree.
 */
#include "broker/kafka/kwire.h"

#include <endian.h>
#include <string.h>

#include "common/err.h"

uint16_t kwire_load_be16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return be16toh(v);
}

uint32_t kwire_load_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return be32toh(v);
}

uint64_t kwire_load_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return be64toh(v);
}

void kwire_store_be16(uint8_t *p, uint16_t v)
{
    v = htobe16(v);
    memcpy(p, &v, sizeof(v));
}

void kwire_store_be32(uint8_t *p, uint32_t v)
{
    v = htobe32(v);
    memcpy(p, &v, sizeof(v));
}

void kwire_store_be64(uint8_t *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, sizeof(v));
}

struct kstr kstr_of(const char *s)
{
    if (!s)
        return KSTR_NULL;
    return (struct kstr){s, (int32_t)strlen(s)};
}

int kstr_eq(struct kstr a, const char *s)
{
    return a.len >= 0 && (size_t)a.len == strlen(s) && memcmp(a.ptr, s, (size_t)a.len) == 0;
}

/* --- reading ------------------------------------------------------------------------------------ */

void kwire_reader_init(struct kwire_reader *r, uint8_t *buf, size_t len, int flexible)
{
    r->pos = buf;
    r->end = buf + len;
    r->flexible = flexible;
    r->err = 0;
    r->field = NULL;
    r->problem = NULL;
}

int kwire_fail(struct kwire_reader *r, const char *field, const char *problem)
{
    if (!r->err) {
        r->err = RL_E_FRAME_MALFORMED;
        r->field = field;
        r->problem = problem;
        r->pos = r->end; /* nothing more is read after a failure */
    }
    return RL_E_FRAME_MALFORMED;
}

/* Returns a pointer to n readable bytes and consumes them, or NULL (and fails). */
static uint8_t *take(struct kwire_reader *r, const char *field, size_t n)
{
    if (r->err)
        return NULL;
    if (kwire_remaining(r) < n) {
        kwire_fail(r, field, "truncated: the frame ends inside this field");
        return NULL;
    }
    uint8_t *p = r->pos;
    r->pos += n;
    return p;
}

int8_t kwire_read_i8(struct kwire_reader *r, const char *field)
{
    uint8_t *p = take(r, field, 1);
    return p ? (int8_t)p[0] : 0;
}

int16_t kwire_read_i16(struct kwire_reader *r, const char *field)
{
    uint8_t *p = take(r, field, 2);
    return p ? (int16_t)kwire_load_be16(p) : 0;
}

int32_t kwire_read_i32(struct kwire_reader *r, const char *field)
{
    uint8_t *p = take(r, field, 4);
    return p ? (int32_t)kwire_load_be32(p) : 0;
}

int64_t kwire_read_i64(struct kwire_reader *r, const char *field)
{
    uint8_t *p = take(r, field, 8);
    return p ? (int64_t)kwire_load_be64(p) : 0;
}

int kwire_read_bool(struct kwire_reader *r, const char *field)
{
    uint8_t *p = take(r, field, 1);
    return p ? p[0] != 0 : 0;
}

uint32_t kwire_read_uvarint(struct kwire_reader *r, const char *field)
{
    uint32_t v = 0;
    for (int i = 0; i < 5; i++) {
        uint8_t *p = take(r, field, 1);
        if (!p)
            return 0;
        if (i == 4 && (p[0] & 0xf0)) {
            kwire_fail(r, field, "unsigned varint overflows 32 bits");
            return 0;
        }
        v |= (uint32_t)(p[0] & 0x7f) << (7 * i);
        if (!(p[0] & 0x80))
            return v;
    }
    kwire_fail(r, field, "unsigned varint longer than 5 bytes");
    return 0;
}

/* Reads a length in the reader's form: i16 or i32 (wide) when not flexible, uvarint(len + 1)
 * when flexible. Returns -1 for null, -2 after a failure. */
static int64_t read_length(struct kwire_reader *r, const char *field, int wide)
{
    int64_t n;
    if (r->flexible) {
        uint32_t u = kwire_read_uvarint(r, field);
        n = (int64_t)u - 1;
    } else {
        n = wide ? kwire_read_i32(r, field) : kwire_read_i16(r, field);
    }
    if (r->err)
        return -2;
    if (n < -1) {
        kwire_fail(r, field, "negative length other than -1 (null)");
        return -2;
    }
    return n;
}

static struct kbytes read_sized(struct kwire_reader *r, const char *field, int wide, int nullable)
{
    int64_t n = read_length(r, field, wide);
    if (n == -2)
        return KBYTES_NULL;
    if (n == -1) {
        if (!nullable)
            kwire_fail(r, field, "null where the protocol requires a value");
        return KBYTES_NULL;
    }
    uint8_t *p = take(r, field, (size_t)n);
    if (!p)
        return KBYTES_NULL;
    return (struct kbytes){p, (int32_t)n};
}

struct kstr kwire_read_str(struct kwire_reader *r, const char *field)
{
    struct kbytes b = read_sized(r, field, 0, 0);
    return (struct kstr){(const char *)b.ptr, b.len};
}

struct kstr kwire_read_nstr(struct kwire_reader *r, const char *field)
{
    struct kbytes b = read_sized(r, field, 0, 1);
    return (struct kstr){(const char *)b.ptr, b.len};
}

struct kbytes kwire_read_bytes(struct kwire_reader *r, const char *field)
{
    return read_sized(r, field, 1, 0);
}

struct kbytes kwire_read_nbytes(struct kwire_reader *r, const char *field)
{
    return read_sized(r, field, 1, 1);
}

static int32_t read_count(struct kwire_reader *r, const char *field, size_t min_item_bytes,
                          int nullable)
{
    int64_t n = read_length(r, field, 1);
    if (n == -2)
        return 0;
    if (n == -1) {
        if (!nullable) {
            kwire_fail(r, field, "null array where the protocol requires one");
            return 0;
        }
        return -1;
    }
    size_t min = r->flexible || min_item_bytes == 0 ? 1 : min_item_bytes;
    if ((uint64_t)n > kwire_remaining(r) / min) {
        kwire_fail(r, field, "array count larger than the bytes left could hold");
        return 0;
    }
    return (int32_t)n;
}

int32_t kwire_read_array(struct kwire_reader *r, const char *field, size_t min_item_bytes)
{
    return read_count(r, field, min_item_bytes, 0);
}

int32_t kwire_read_narray(struct kwire_reader *r, const char *field, size_t min_item_bytes)
{
    return read_count(r, field, min_item_bytes, 1);
}

void kwire_read_tags(struct kwire_reader *r, const char *field)
{
    if (!r->flexible)
        return;
    uint32_t n = kwire_read_uvarint(r, field);
    if (n > kwire_remaining(r) / 2) { /* each tagged field takes at least 2 bytes */
        kwire_fail(r, field, "tagged-field count larger than the bytes left could hold");
        return;
    }
    int64_t last = -1;
    for (uint32_t i = 0; i < n && !r->err; i++) {
        uint32_t tag = kwire_read_uvarint(r, field);
        uint32_t size = kwire_read_uvarint(r, field);
        if (r->err)
            return;
        if ((int64_t)tag <= last) {
            kwire_fail(r, field, "tagged fields not in strictly ascending tag order");
            return;
        }
        last = tag;
        take(r, field, size); /* unknown to this version: skipped */
    }
}

/* --- writing ------------------------------------------------------------------------------------ */

void kwire_writer_measure(struct kwire_writer *w, int flexible)
{
    memset(w, 0, sizeof(*w));
    w->flexible = flexible;
}

void kwire_writer_init(struct kwire_writer *w, uint8_t *buf, size_t cap, struct iovec *iov,
                       int iov_cap, int flexible)
{
    memset(w, 0, sizeof(*w));
    w->buf = buf;
    w->cap = cap;
    w->iov = iov;
    w->iov_cap = iov_cap;
    w->flexible = flexible;
}

void kwire_write_raw(struct kwire_writer *w, const void *p, size_t len)
{
    if (w->buf) {
        if (w->cap - w->inline_len < len) {
            w->overflow = 1;
            return;
        }
        if (len)
            memcpy(w->buf + w->inline_len, p, len);
    }
    w->inline_len += len;
    w->total += len;
}

void kwire_write_i8(struct kwire_writer *w, int8_t v)
{
    kwire_write_raw(w, &v, 1);
}

void kwire_write_i16(struct kwire_writer *w, int16_t v)
{
    uint8_t b[2];
    kwire_store_be16(b, (uint16_t)v);
    kwire_write_raw(w, b, 2);
}

void kwire_write_i32(struct kwire_writer *w, int32_t v)
{
    uint8_t b[4];
    kwire_store_be32(b, (uint32_t)v);
    kwire_write_raw(w, b, 4);
}

void kwire_write_i64(struct kwire_writer *w, int64_t v)
{
    uint8_t b[8];
    kwire_store_be64(b, (uint64_t)v);
    kwire_write_raw(w, b, 8);
}

void kwire_write_bool(struct kwire_writer *w, int v)
{
    kwire_write_i8(w, v ? 1 : 0);
}

void kwire_write_uvarint(struct kwire_writer *w, uint32_t v)
{
    uint8_t b[5];
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    kwire_write_raw(w, b, n);
}

static void write_length(struct kwire_writer *w, int32_t len, int wide)
{
    if (w->flexible)
        kwire_write_uvarint(w, (uint32_t)((int64_t)len + 1));
    else if (wide)
        kwire_write_i32(w, len);
    else
        kwire_write_i16(w, (int16_t)len);
}

void kwire_write_str(struct kwire_writer *w, struct kstr s)
{
    int32_t len = s.len < 0 ? -1 : s.len;
    write_length(w, len, 0);
    if (len > 0)
        kwire_write_raw(w, s.ptr, (size_t)len);
}

void kwire_write_bytes(struct kwire_writer *w, const uint8_t *p, int32_t len)
{
    len = len < 0 ? -1 : len;
    write_length(w, len, 1);
    if (len > 0)
        kwire_write_raw(w, p, (size_t)len);
}

void kwire_write_bytes_length(struct kwire_writer *w, int32_t len)
{
    write_length(w, len < 0 ? -1 : len, 1);
}

void kwire_write_array(struct kwire_writer *w, int32_t count)
{
    write_length(w, count < 0 ? -1 : count, 1);
}

void kwire_write_tags(struct kwire_writer *w)
{
    if (w->flexible)
        kwire_write_uvarint(w, 0);
}

/* Ends the open inline segment as an iovec (when it holds bytes). */
static void close_segment(struct kwire_writer *w)
{
    if (w->inline_len == w->seg_start)
        return;
    if (w->iov) {
        if (w->iov_n >= w->iov_cap) {
            w->overflow = 1;
            return;
        }
        w->iov[w->iov_n] = (struct iovec){w->buf + w->seg_start, w->inline_len - w->seg_start};
    }
    w->iov_n++;
    w->seg_start = w->inline_len;
}

void kwire_write_external(struct kwire_writer *w, const struct iovec *iov, int iovcnt)
{
    close_segment(w);
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0)
            continue;
        if (w->iov) {
            if (w->iov_n >= w->iov_cap) {
                w->overflow = 1;
                return;
            }
            w->iov[w->iov_n] = iov[i];
        }
        w->iov_n++;
        w->total += iov[i].iov_len;
    }
}

void kwire_writer_finish(struct kwire_writer *w)
{
    close_segment(w);
}
