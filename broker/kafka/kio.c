/*
 * kio: the symmetric field codec of kmsg (kmsg_internal.h). Each function either reads a field
 * into the struct or writes it from the struct; writers refuse values their wire form cannot
 * carry (a null where the protocol allows none, a string longer than an i16 length) instead of
 * writing bytes a client would misread.
 */
#include <string.h>

#include "broker/kafka/kmsg_internal.h"
#include "common/arena.h"
#include "common/err.h"

static void unencodable(struct kio *io)
{
    if (!io->err)
        io->err = RL_E_INVALID_ARGUMENT;
}

void kio_i8(struct kio *io, const char *field, int8_t *v)
{
    if (io->decoding)
        *v = kwire_read_i8(&io->r, field);
    else
        kwire_write_i8(&io->w, *v);
}

void kio_i16(struct kio *io, const char *field, int16_t *v)
{
    if (io->decoding)
        *v = kwire_read_i16(&io->r, field);
    else
        kwire_write_i16(&io->w, *v);
}

void kio_i32(struct kio *io, const char *field, int32_t *v)
{
    if (io->decoding)
        *v = kwire_read_i32(&io->r, field);
    else
        kwire_write_i32(&io->w, *v);
}

void kio_i64(struct kio *io, const char *field, int64_t *v)
{
    if (io->decoding)
        *v = kwire_read_i64(&io->r, field);
    else
        kwire_write_i64(&io->w, *v);
}

void kio_bool(struct kio *io, const char *field, int *v)
{
    if (io->decoding)
        *v = kwire_read_bool(&io->r, field);
    else
        kwire_write_bool(&io->w, *v);
}

static void string_io(struct kio *io, const char *field, struct kstr *v, int nullable)
{
    if (io->decoding) {
        *v = nullable ? kwire_read_nstr(&io->r, field) : kwire_read_str(&io->r, field);
        return;
    }
    if ((v->len < 0 && !nullable) || (v->len > 0 && !v->ptr) ||
        (!io->w.flexible && v->len > INT16_MAX)) {
        unencodable(io);
        return;
    }
    kwire_write_str(&io->w, *v);
}

void kio_str(struct kio *io, const char *field, struct kstr *v)
{
    string_io(io, field, v, 0);
}

void kio_nstr(struct kio *io, const char *field, struct kstr *v)
{
    string_io(io, field, v, 1);
}

void kio_bytes(struct kio *io, const char *field, struct kbytes *v)
{
    if (io->decoding) {
        *v = kwire_read_bytes(&io->r, field);
        return;
    }
    if (v->len < 0 || (v->len > 0 && !v->ptr)) {
        unencodable(io);
        return;
    }
    kwire_write_bytes(&io->w, v->ptr, v->len);
}

void kio_records(struct kio *io, const char *field, struct kmsg_records *v)
{
    if (io->decoding) {
        struct kbytes b = kwire_read_nbytes(&io->r, field);
        *v = (struct kmsg_records){.data = b.ptr, .len = b.len};
        return;
    }
    if (!v->iov) {
        if (v->len > 0 && !v->data) {
            unencodable(io);
            return;
        }
        kwire_write_bytes(&io->w, v->data, v->len);
        return;
    }
    size_t total = 0;
    for (int32_t i = 0; i < v->iovcnt; i++)
        total += v->iov[i].iov_len;
    if (v->iovcnt < 0 || v->len < 0 || total != (size_t)v->len) {
        unencodable(io);
        return;
    }
    kwire_write_bytes_length(&io->w, v->len);
    kwire_write_external(&io->w, v->iov, v->iovcnt);
}

void kio_tags(struct kio *io, const char *field)
{
    if (io->decoding)
        kwire_read_tags(&io->r, field);
    else
        kwire_write_tags(&io->w);
}

void kio_i8_since(struct kio *io, int16_t since, const char *field, int8_t *v, int8_t dflt)
{
    if (io->version >= since)
        kio_i8(io, field, v);
    else if (io->decoding)
        *v = dflt;
}

void kio_i32_since(struct kio *io, int16_t since, const char *field, int32_t *v, int32_t dflt)
{
    if (io->version >= since)
        kio_i32(io, field, v);
    else if (io->decoding)
        *v = dflt;
}

void kio_i64_since(struct kio *io, int16_t since, const char *field, int64_t *v, int64_t dflt)
{
    if (io->version >= since)
        kio_i64(io, field, v);
    else if (io->decoding)
        *v = dflt;
}

void kio_bool_since(struct kio *io, int16_t since, const char *field, int *v, int dflt)
{
    if (io->version >= since)
        kio_bool(io, field, v);
    else if (io->decoding)
        *v = dflt;
}

void kio_nstr_since(struct kio *io, int16_t since, const char *field, struct kstr *v)
{
    if (io->version >= since)
        kio_nstr(io, field, v);
    else if (io->decoding)
        *v = KSTR_NULL;
}

int32_t kio_array(struct kio *io, const char *field, void **items, int32_t *n, size_t item_size,
                  size_t min_wire_bytes, int nullable)
{
    if (io->decoding) {
        int32_t count = nullable ? kwire_read_narray(&io->r, field, min_wire_bytes)
                                 : kwire_read_array(&io->r, field, min_wire_bytes);
        *items = NULL;
        *n = count;
        if (count <= 0)
            return 0;
        /* count is bounded by the frame's bytes, so this cannot overflow */
        *items = arena_calloc(io->arena, (size_t)count * item_size);
        if (!*items) {
            if (!io->err)
                io->err = RL_E_FULL;
            *n = 0;
            return 0;
        }
        return count;
    }
    if (*n < 0) {
        if (!nullable)
            unencodable(io);
        else
            kwire_write_array(&io->w, -1);
        return 0;
    }
    if (*n > 0 && !*items) {
        unencodable(io);
        return 0;
    }
    kwire_write_array(&io->w, *n);
    return *n;
}

void kio_i32_array(struct kio *io, const char *field, int32_t **items, int32_t *n, int nullable)
{
    int32_t count = kio_array(io, field, (void **)items, n, sizeof(int32_t), 4, nullable);
    for (int32_t i = 0; i < count && !kio_failed(io); i++)
        kio_i32(io, field, &(*items)[i]);
}

void kio_str_array(struct kio *io, const char *field, struct kstr **items, int32_t *n,
                   int nullable)
{
    int32_t count = kio_array(io, field, (void **)items, n, sizeof(struct kstr), 2, nullable);
    for (int32_t i = 0; i < count && !kio_failed(io); i++)
        kio_str(io, field, &(*items)[i]);
}
