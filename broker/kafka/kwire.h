/*
 * kwire: Kafka's wire primitives, read from hostile bytes and written without copies of record
 * data. Kafka listener path: connection bytes -> kframe (size prefix, request header) -> kmsg
 * (one codec per API, built on these primitives) -> protocol-neutral services; responses go
 * back through kmsg into a kwire_writer.
 *
 * Encodings (big-endian fixed-width integers throughout):
 *   i8 i16 i32 i64, bool (1 byte)   fixed width
 *   uvarint                          unsigned LEB128 (flexible versions only), <= 5 bytes
 *   str / nstr                       i16 length + bytes (nstr: -1 = null)
 *   bytes / nbytes                   i32 length + bytes (nbytes: -1 = null)
 *   [X] / n[X]                       i32 count + items (n[X]: -1 = null)
 *   compact forms (flexible)         uvarint(length + 1) or uvarint(count + 1); 0 = null
 *   tagged fields (flexible)         uvarint n, then n x {uvarint tag, uvarint size, bytes};
 *                                    one such section ends every struct; unknown tags are skipped
 * A reader or writer in flexible mode switches every string, bytes and array to its compact form
 * and makes kwire_read_tags / kwire_write_tags real; otherwise those two do nothing.
 *
 * Reading: every read checks the bytes left. The first failure is sticky: it records the field
 * name and the problem, later reads return zero values and change nothing, and the decoder
 * checks r->err once at the end (array loops also stop early on it). Decoded strings and bytes
 * are views into the caller's buffer (no copy); arrays are counted here and allocated by the
 * caller (kmsg, from the request's arena), after kwire_read_array has bounded the count by the
 * bytes left, so a hostile count cannot allocate more than the frame could describe.
 *
 * Writing is two passes over the same code: a measuring writer (no buffer) counts the inline
 * bytes and the iovecs needed, then a writer over a buffer of that size fills it. Record data
 * (Fetch) is not copied: kwire_write_external closes the inline segment and appends the caller's
 * iovecs, so the response is inline segments interleaved with references to stored batches.
 */
#ifndef RL_BROKER_KAFKA_KWIRE_H
#define RL_BROKER_KAFKA_KWIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* A string as it travels: not NUL-terminated; len -1 is null. */
struct kstr {
    const char *ptr;
    int32_t len;
};

/* Bytes as they travel (a view into the frame for decoded requests); len -1 is null. */
struct kbytes {
    uint8_t *ptr;
    int32_t len;
};

#define KSTR_NULL ((struct kstr){NULL, -1})
#define KBYTES_NULL ((struct kbytes){NULL, -1})

/* A kstr of a C string (NULL gives null). */
struct kstr kstr_of(const char *s);

/* 1 when a equals the C string s (a null kstr equals nothing). */
int kstr_eq(struct kstr a, const char *s);

struct kwire_reader {
    uint8_t *pos;
    uint8_t *end;
    int flexible;
    int err;             /* 0, or RL_E_FRAME_MALFORMED after the first failed read */
    const char *field;   /* the field whose read failed (static string) */
    const char *problem; /* what was wrong with it (static string) */
};

void kwire_reader_init(struct kwire_reader *r, uint8_t *buf, size_t len, int flexible);

static inline size_t kwire_remaining(const struct kwire_reader *r)
{
    return (size_t)(r->end - r->pos);
}

/* Records a failure (only the first one sticks) and returns RL_E_FRAME_MALFORMED. */
int kwire_fail(struct kwire_reader *r, const char *field, const char *problem);

int8_t kwire_read_i8(struct kwire_reader *r, const char *field);
int16_t kwire_read_i16(struct kwire_reader *r, const char *field);
int32_t kwire_read_i32(struct kwire_reader *r, const char *field);
int64_t kwire_read_i64(struct kwire_reader *r, const char *field);
/* Kafka reads any non-zero byte as true; so does this. Returns 0 or 1. */
int kwire_read_bool(struct kwire_reader *r, const char *field);
/* An unsigned LEB128 of at most 5 bytes whose value fits 32 bits. */
uint32_t kwire_read_uvarint(struct kwire_reader *r, const char *field);

/* Strings: str refuses null, nstr allows it. The bytes are not checked for UTF-8. */
struct kstr kwire_read_str(struct kwire_reader *r, const char *field);
struct kstr kwire_read_nstr(struct kwire_reader *r, const char *field);
/* Bytes (and the records type): the same with an i32 (or compact) length. */
struct kbytes kwire_read_bytes(struct kwire_reader *r, const char *field);
struct kbytes kwire_read_nbytes(struct kwire_reader *r, const char *field);

/* Array counts. Each item takes at least min_item_bytes on the wire (in a flexible version at
 * least 1), so a count larger than the bytes left allow fails here. kwire_read_array refuses
 * null; kwire_read_narray returns -1 for it. Returns 0 after a failure. */
int32_t kwire_read_array(struct kwire_reader *r, const char *field, size_t min_item_bytes);
int32_t kwire_read_narray(struct kwire_reader *r, const char *field, size_t min_item_bytes);

/* Flexible only (a no-op otherwise): skips a tagged-field section. Tags must be strictly
 * ascending, as Kafka writes them. */
void kwire_read_tags(struct kwire_reader *r, const char *field);

/* --- writing ------------------------------------------------------------------------------------ */

struct kwire_writer {
    uint8_t *buf;        /* NULL while measuring */
    size_t cap;          /* bytes of buf */
    size_t inline_len;   /* bytes of buf used (or measured) */
    size_t total;        /* all bytes written: inline plus external */
    struct iovec *iov;   /* NULL while measuring */
    int iov_cap;
    int iov_n;           /* iovecs used (or needed) */
    size_t seg_start;    /* where in buf the open inline segment starts */
    int flexible;
    int overflow;        /* set when a write did not fit; the output is then unusable */
};

/* A measuring writer: counts inline bytes and iovecs, writes nothing. */
void kwire_writer_measure(struct kwire_writer *w, int flexible);

/* A writer over buf (cap bytes) and iov (iov_cap entries), sized by a measuring pass. */
void kwire_writer_init(struct kwire_writer *w, uint8_t *buf, size_t cap, struct iovec *iov,
                       int iov_cap, int flexible);

void kwire_write_i8(struct kwire_writer *w, int8_t v);
void kwire_write_i16(struct kwire_writer *w, int16_t v);
void kwire_write_i32(struct kwire_writer *w, int32_t v);
void kwire_write_i64(struct kwire_writer *w, int64_t v);
void kwire_write_bool(struct kwire_writer *w, int v);
void kwire_write_uvarint(struct kwire_writer *w, uint32_t v);
void kwire_write_raw(struct kwire_writer *w, const void *p, size_t len);

/* Strings and bytes in the writer's form; a null value needs the n- variant's meaning (the
 * caller's codec decides which fields may be null). */
void kwire_write_str(struct kwire_writer *w, struct kstr s);
void kwire_write_bytes(struct kwire_writer *w, const uint8_t *p, int32_t len);
/* Only the length prefix of a bytes field whose len bytes the caller writes next (raw or
 * external). */
void kwire_write_bytes_length(struct kwire_writer *w, int32_t len);
/* An array count (-1 for null). */
void kwire_write_array(struct kwire_writer *w, int32_t count);
/* An empty tagged-field section when flexible; nothing otherwise. */
void kwire_write_tags(struct kwire_writer *w);

/* Appends iovcnt external buffers by reference (no copy): the open inline segment is closed and
 * the iovecs follow it. The caller keeps them alive until the output is sent. */
void kwire_write_external(struct kwire_writer *w, const struct iovec *iov, int iovcnt);

/* Closes the last inline segment. After it w->iov[0..iov_n) is the whole output. */
void kwire_writer_finish(struct kwire_writer *w);

/* Big-endian loads and stores at any alignment (the Kafka formats are big-endian). */
uint16_t kwire_load_be16(const uint8_t *p);
uint32_t kwire_load_be32(const uint8_t *p);
uint64_t kwire_load_be64(const uint8_t *p);
void kwire_store_be16(uint8_t *p, uint16_t v);
void kwire_store_be32(uint8_t *p, uint32_t v);
void kwire_store_be64(uint8_t *p, uint64_t v);

#endif
