/*
 * cli_bench_payload: stamped benchmark records, random or JSON events (see the header).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "client/cli_bench_payload.h"

/* Pools are walked in order, one record after the next, so the records of a batch never share
 * bytes (zstd finds nothing to take out of a random batch) as long as the pool holds more than
 * a batch, while the pool stays small enough to sit in the last-level cache, as an
 * application's freshly built record would: records fetched from DRAM would cost the bench
 * more than the broker it measures (on this machine ~300 ns a record at 32 MiB, ~20 at 4). */
#define POOL_MIN_BYTES (4u * 1024 * 1024)
#define JSON_STAMP_OFFSET 12 /* after {"sent_ns":" */
#define JSON_STAMP_DIGITS 20
#define JSON_USERS 50000u
#define JSON_SKUS 2000u

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: fast, and good enough to pick words and fill pools. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t pick(uint64_t *s, uint32_t n)
{
    return (uint32_t)(rng_next(s) % n);
}

/* A user id drawn from a skewed population: a few users send much of the traffic, as in life
 * (two uniform draws, keep the smaller: density falls linearly with the id). */
static uint32_t pick_user(uint64_t *s)
{
    uint32_t a = pick(s, JSON_USERS), b = pick(s, JSON_USERS);
    return a < b ? a : b;
}

/* A bounded writer into one pool slot. */
struct out {
    char *buf;
    size_t len, cap;
};

/* Appends the formatted text if it fits in the slot while leaving `keep` bytes free; returns
 * whether it did (a field that does not fit is left out whole). */
static bool out_add(struct out *o, size_t keep, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool out_add(struct out *o, size_t keep, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp) || o->len + (size_t)n + keep > o->cap)
        return false;
    memcpy(o->buf + o->len, tmp, (size_t)n);
    o->len += (size_t)n;
    return true;
}

static const char *const k_types[] = {"page_view", "add_to_cart", "order_placed",
                                      "payment_captured", "search", "login"};
static const char *const k_countries[] = {"DE", "US", "FR", "GB", "IN", "BR", "JP", "NL"};
static const char *const k_plans[] = {"free", "pro", "team", "enterprise"};
static const char *const k_os[] = {"android", "ios", "web", "windows", "macos"};
static const char *const k_currencies[] = {"EUR", "USD", "GBP", "JPY"};
static const char *const k_words[] = {
    "delivery", "window", "customer", "asked", "for", "gift", "wrapping", "and", "a",
    "note", "leave", "at", "the", "front", "door", "please", "call", "on", "arrival",
    "second", "floor", "no", "bell", "express", "standard", "return", "label", "included"};
#define NWORDS(a) (sizeof(a) / sizeof((a)[0]))

/* The line items of an order: as many as fit (at most JSON_MAX_ITEMS), keeping room for the
 * total and a short note, so a big event is mostly structured fields as real ones are. */
#define JSON_MAX_ITEMS 32
#define JSON_ITEMS_KEEP 64

static void json_items(struct out *o, uint64_t *s, size_t keep)
{
    if (!out_add(o, keep, ",\"items\":["))
        return;
    uint32_t total = 0;
    for (uint32_t i = 0; i < JSON_MAX_ITEMS; i++) {
        uint32_t qty = 1 + pick(s, 3), price = 199 + pick(s, 9800);
        if (!out_add(o, keep + JSON_ITEMS_KEEP,
                     "%s{\"sku\":\"SKU-%05u\",\"qty\":%u,\"price_cents\":%u}", i ? "," : "",
                     pick(s, JSON_SKUS), qty, price))
            break;
        total += qty * price;
    }
    out_add(o, keep, "]");
    out_add(o, keep, ",\"total_cents\":%u,\"currency\":\"%s\"", total,
            k_currencies[pick(s, NWORDS(k_currencies))]);
}

/* Fills slot (size bytes) with one event; the stamp digits are zeros until payload_next. */
static void json_event(char *slot, size_t size, uint64_t *s, uint64_t seq)
{
    /* Room kept for the closing ,"note":"..."} (11 bytes with an empty note). */
    const size_t tail = 11;
    struct out o = {.buf = slot, .cap = size};
    out_add(&o, 0, "{\"sent_ns\":\"%0*d\"", JSON_STAMP_DIGITS, 0);
    out_add(&o, tail, ",\"event_id\":\"%08x-%04x-%04x-%04x-%012llx\"",
            (unsigned)rng_next(s), pick(s, 65536), pick(s, 65536), pick(s, 65536),
            (unsigned long long)(rng_next(s) & 0xFFFFFFFFFFFFull));
    out_add(&o, tail, ",\"type\":\"%s\"", k_types[pick(s, NWORDS(k_types))]);
    out_add(&o, tail, ",\"ts\":\"2024-05-%02uT%02u:%02u:%02u.%03uZ\"", 1 + (unsigned)(seq % 28),
            (unsigned)(seq / 3600 % 24), (unsigned)(seq / 60 % 60), (unsigned)(seq % 60),
            pick(s, 1000));
    out_add(&o, tail, ",\"user\":{\"id\":\"user-%07u\",\"country\":\"%s\",\"plan\":\"%s\"}",
            pick_user(s), k_countries[pick(s, NWORDS(k_countries))],
            k_plans[pick(s, NWORDS(k_plans))]);
    out_add(&o, tail, ",\"session_id\":\"s-%08x\"", (unsigned)rng_next(s));
    out_add(&o, tail, ",\"device\":{\"os\":\"%s\",\"app_version\":\"%u.%u.%u\"}",
            k_os[pick(s, NWORDS(k_os))], 4 + pick(s, 3), pick(s, 20), pick(s, 10));
    json_items(&o, s, tail);
    out_add(&o, 2, ",\"note\":\"");
    /* Words until the slot is full but for the closing quote and brace. */
    while (o.len < size - 2) {
        const char *w = k_words[pick(s, NWORDS(k_words))];
        size_t wl = strlen(w), room = size - 2 - o.len;
        if (wl + 1 > room) {
            memset(o.buf + o.len, 'x', room);
            o.len += room;
            break;
        }
        memcpy(o.buf + o.len, w, wl);
        o.buf[o.len + wl] = ' ';
        o.len += wl + 1;
    }
    memcpy(o.buf + size - 2, "\"}", 2);
}

/* Pools live in transparent huge pages where the kernel allows it: records are picked at
 * random offsets, and with 4 KiB pages nearly every record would cost a TLB miss (a page walk,
 * which a virtual machine makes several times dearer). */
static uint8_t *pool_alloc(size_t bytes)
{
    const size_t huge = 2u << 20;
    size_t rounded = (bytes + huge - 1) & ~(huge - 1);
    void *mem = NULL;
    if (posix_memalign(&mem, huge, rounded))
        return NULL;
    madvise(mem, rounded, MADV_HUGEPAGE); /* advice only: without it the pool still works */
    return mem;
}

static int json_init(struct payload *p, uint64_t seed)
{
    p->slots = p->pool_bytes / p->record_size;
    if (p->slots < 64)
        p->slots = 64;
    p->pool_bytes = p->slots * p->record_size;
    p->pool = pool_alloc(p->pool_bytes);
    if (!p->pool)
        return -ENOMEM;
    uint64_t s = seed | 1;
    for (size_t i = 0; i < p->slots; i++)
        json_event((char *)p->pool + i * p->record_size, p->record_size, &s, i);
    return 0;
}

static int random_init(struct payload *p, uint64_t seed)
{
    if (p->pool_bytes < 4 * p->record_size)
        p->pool_bytes = 4 * p->record_size;
    p->pool_bytes = (p->pool_bytes + 7) & ~(size_t)7;
    p->pool = pool_alloc(p->pool_bytes);
    if (!p->pool)
        return -ENOMEM;
    uint64_t s = seed | 1;
    for (size_t i = 0; i < p->pool_bytes / 8; i++) {
        uint64_t v = rng_next(&s);
        memcpy(p->pool + i * 8, &v, 8);
    }
    p->rng = s;
    return 0;
}

int payload_init(struct payload *p, enum payload_kind kind, size_t record_size,
                 size_t pool_bytes, uint64_t seed, char *err, size_t errlen)
{
    *p = (struct payload){.kind = kind, .record_size = record_size,
                          .pool_bytes = pool_bytes > POOL_MIN_BYTES ? pool_bytes
                                                                    : POOL_MIN_BYTES};
    if (kind == PAYLOAD_JSON && record_size < PAYLOAD_JSON_MIN_BYTES) {
        snprintf(err, errlen, "--payload json needs --record-size of at least %d bytes (got %zu)",
                 PAYLOAD_JSON_MIN_BYTES, record_size);
        return -EINVAL;
    }
    if (record_size < PAYLOAD_STAMP_BYTES) {
        snprintf(err, errlen, "--record-size must be at least %d bytes to carry the send time "
                 "(got %zu)", PAYLOAD_STAMP_BYTES, record_size);
        return -EINVAL;
    }
    int rc = kind == PAYLOAD_JSON ? json_init(p, seed) : random_init(p, seed);
    if (rc)
        snprintf(err, errlen, "out of memory building the %s payload pool",
                 payload_kind_name(kind));
    return rc;
}

void payload_free(struct payload *p)
{
    free(p->pool);
    p->pool = NULL;
}

const uint8_t *payload_next(struct payload *p, uint64_t stamp_ns)
{
    uint8_t *rec;
    if (p->kind == PAYLOAD_JSON) {
        rec = p->pool + p->next * p->record_size;
        p->next = p->next + 1 == p->slots ? 0 : p->next + 1;
        /* Two digits per division: this runs once per record. */
        static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                    "25262728293031323334353637383940414243444546474849"
                                    "50515253545556575859606162636465666768697071727374"
                                    "75767778798081828384858687888990919293949596979899";
        char *d = (char *)rec + JSON_STAMP_OFFSET + JSON_STAMP_DIGITS;
        for (int i = 0; i < JSON_STAMP_DIGITS / 2; i++) {
            d -= 2;
            memcpy(d, pairs + 2 * (stamp_ns % 100), 2);
            stamp_ns /= 100;
        }
        return rec;
    }
    /* The stamp is written into the pool, so the record is not copied; the bytes it covered
     * are put back at the next call. Left in place, stamps would pile up in the pool cycle
     * after cycle (at shifting offsets, with their high bytes alike) and make "random"
     * batches compressible: zstd took 20-35% off them before this. */
    if (p->stamped)
        memcpy(p->stamped, p->saved, PAYLOAD_STAMP_BYTES);
    rec = p->pool + p->next;
    p->next += p->record_size;
    if (p->next + p->record_size > p->pool_bytes)
        p->next = (size_t)(rng_next(&p->rng) % 4096); /* wrap to a new alignment */
    memcpy(p->saved, rec, PAYLOAD_STAMP_BYTES);
    p->stamped = rec;
    for (int i = 0; i < PAYLOAD_STAMP_BYTES; i++)
        rec[i] = (uint8_t)(stamp_ns >> (8 * i));
    return rec;
}

int payload_stamp(enum payload_kind kind, const uint8_t *value, size_t len, uint64_t *stamp_ns)
{
    uint64_t v = 0;
    if (kind == PAYLOAD_JSON) {
        if (len < JSON_STAMP_OFFSET + JSON_STAMP_DIGITS ||
            memcmp(value, "{\"sent_ns\":\"", JSON_STAMP_OFFSET) != 0)
            return -EINVAL;
        for (int i = 0; i < JSON_STAMP_DIGITS; i++) {
            unsigned d = (unsigned)value[JSON_STAMP_OFFSET + i] - '0';
            if (d > 9)
                return -EINVAL;
            v = v * 10 + d;
        }
    } else {
        if (len < PAYLOAD_STAMP_BYTES)
            return -EINVAL;
        for (int i = PAYLOAD_STAMP_BYTES - 1; i >= 0; i--)
            v = v << 8 | value[i];
    }
    *stamp_ns = v;
    return 0;
}

int payload_parse_kind(const char *name, enum payload_kind *out)
{
    if (!strcmp(name, "random"))
        *out = PAYLOAD_RANDOM;
    else if (!strcmp(name, "json"))
        *out = PAYLOAD_JSON;
    else
        return -EINVAL;
    return 0;
}

const char *payload_kind_name(enum payload_kind kind)
{
    return kind == PAYLOAD_JSON ? "json" : "random";
}
