/*
 * arena: see arena.h. Chunks are singly linked, newest first; allocation bumps a position in the
 * newest chunk and starts a new chunk (at least twice the request, at least chunk_bytes) when it
 * does not fit.
 */
#include "common/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_chunk {
    struct arena_chunk *next;
    size_t cap;
    size_t pos;
    _Alignas(16) unsigned char mem[];
};

#define ARENA_ALIGN 16u

static void *arena_pb_alloc(void *data, size_t size)
{
    return arena_alloc(data, size);
}

static void arena_pb_free(void *data, void *ptr)
{
    /* Memory goes back all at once at reset. */
    (void)data;
    (void)ptr;
}

void arena_init(struct arena *a, size_t chunk_bytes, size_t max_bytes)
{
    memset(a, 0, sizeof(*a));
    a->chunk_bytes = chunk_bytes < 256 ? 256 : chunk_bytes;
    a->max_bytes = max_bytes < a->chunk_bytes ? a->chunk_bytes : max_bytes;
    a->pb.alloc = arena_pb_alloc;
    a->pb.free = arena_pb_free;
    a->pb.allocator_data = a;
}

static void arena_free_chain(struct arena_chunk *c, const struct arena_chunk *stop)
{
    while (c && c != stop) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
}

void arena_destroy(struct arena *a)
{
    arena_free_chain(a->head, NULL);
    a->head = a->first = NULL;
    a->used_bytes = 0;
}

static struct arena_chunk *arena_new_chunk(struct arena *a, size_t need)
{
    size_t cap = a->chunk_bytes;
    if (a->first) {
        if (cap < 2 * need)
            cap = 2 * need;
        if (a->used_bytes + cap > a->max_bytes) {
            cap = need;
            if (a->used_bytes + cap > a->max_bytes)
                return NULL;
        }
    } else if (cap < need) {
        return NULL;
    }
    struct arena_chunk *c = malloc(sizeof(*c) + cap);
    if (!c)
        return NULL;
    c->cap = cap;
    c->pos = 0;
    c->next = a->head;
    a->head = c;
    if (!a->first)
        a->first = c;
    else
        a->used_bytes += cap;
    return c;
}

void *arena_alloc(struct arena *a, size_t len)
{
    size_t need = (len + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need == 0)
        need = ARENA_ALIGN;
    if (len > a->max_bytes)
        return NULL;
    struct arena_chunk *c = a->head;
    if (!c || c->cap - c->pos < need) {
        if (!a->first && need > a->chunk_bytes) {
            /* The first chunk is the fixed one; make it then chain a big one. */
            if (!arena_new_chunk(a, 0))
                return NULL;
        }
        c = arena_new_chunk(a, need);
        if (!c)
            return NULL;
    }
    void *p = c->mem + c->pos;
    c->pos += need;
    return p;
}

void *arena_calloc(struct arena *a, size_t len)
{
    void *p = arena_alloc(a, len);
    if (p)
        memset(p, 0, len);
    return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = arena_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return (char *)"";
    char *p = arena_alloc(a, (size_t)n + 1);
    if (!p)
        return (char *)"";
    if ((size_t)n < sizeof(small)) {
        memcpy(p, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return p;
}

void arena_reset(struct arena *a)
{
    if (!a->first)
        return;
    arena_free_chain(a->head, a->first);
    a->head = a->first;
    a->first->next = NULL;
    a->first->pos = 0;
    a->used_bytes = 0;
}

size_t arena_held_bytes(const struct arena *a)
{
    return (a->first ? a->first->cap : 0) + a->used_bytes;
}
