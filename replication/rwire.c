/*
 * rwire: encoding and decoding of the frames Raft traffic travels in between brokers (see
 * rwire.h for the layout). Encoding appends to a growable buffer; decoding walks a frame with
 * every length checked against what is left.
 */
#include "replication/rwire.h"

#include "common/endian.h"
#include "common/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoding ------------------------------------------------------------------------- */

static int reserve(struct rwire_buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static void put8(struct rwire_buf *b, uint8_t v)
{
    b->p[b->len++] = v;
}

static void put32(struct rwire_buf *b, uint32_t v)
{
    rl_store_le32(b->p + b->len, v);
    b->len += 4;
}

static void put64(struct rwire_buf *b, uint64_t v)
{
    rl_store_le64(b->p + b->len, v);
    b->len += 8;
}

int rwire_begin(struct rwire_buf *b, uint32_t from, uint32_t to)
{
    return rwire_begin_at(b, 0, from, to);
}

int rwire_begin_at(struct rwire_buf *b, size_t headroom, uint32_t from, uint32_t to)
{
    b->len = 0;
    b->records = 0;
    b->base = 0;
    int rc = reserve(b, headroom + RWIRE_HEADER_BYTES);
    if (rc < 0)
        return rc;
    b->base = headroom;
    b->len = headroom;
    put32(b, RWIRE_MAGIC);
    rl_store_le16(b->p + headroom + 4, RWIRE_VERSION);
    rl_store_le16(b->p + headroom + 6, 0);
    b->len = headroom + 8;
    put32(b, from);
    put32(b, to);
    put32(b, 0);
    put32(b, 0);
    return 0;
}

void rwire_end(struct rwire_buf *b)
{
    rl_store_le32(b->p + b->base + 16, b->records);
    rl_store_le32(b->p + b->base + 20, (uint32_t)(b->len - b->base - RWIRE_HEADER_BYTES));
}

void rwire_buf_free(struct rwire_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

int rwire_put_msg(struct rwire_buf *b, uint64_t group, const struct raft_msg *m)
{
    size_t need = 1 + 8 + 2 + 6 * 8 + 4 + 3 * 8 + 4 + RAFT_CONFIG_MAX_BYTES;
    for (uint32_t i = 0; i < m->n_entries; i++)
        need += 8 + 8 + 4 + 1 + 4 + m->entries[i].len;
    int rc = reserve(b, need);
    if (rc < 0)
        return rc;
    put8(b, RWIRE_MSG);
    put64(b, group);
    put8(b, m->type);
    put8(b, m->flags);
    put64(b, m->term);
    put64(b, m->index);
    put64(b, m->log_term);
    put64(b, m->commit);
    put64(b, m->hint_index);
    put64(b, m->hint_term);
    put32(b, m->n_entries);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct raft_entry *e = &m->entries[i];
        put64(b, e->index);
        put64(b, e->term);
        put32(b, e->count);
        put8(b, e->type);
        put32(b, e->len);
        if (e->len)
            memcpy(b->p + b->len, e->data, e->len);
        b->len += e->len;
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        put64(b, m->snap.index);
        put64(b, m->snap.term);
        put64(b, m->snap.config_index);
        uint32_t len = raft_config_encode(&m->snap.config, b->p + b->len + 4);
        put32(b, len);
        b->len += len;
    }
    b->records++;
    return 0;
}

int rwire_put_hb(struct rwire_buf *b, uint64_t group, uint8_t form, uint64_t term,
                 uint64_t commit)
{
    int rc = reserve(b, 1 + 8 + 1 + 16);
    if (rc < 0)
        return rc;
    put8(b, RWIRE_HB);
    put64(b, group);
    put8(b, form);
    if (form != RWIRE_ID_ONLY) {
        put64(b, term);
        put64(b, commit);
    }
    b->records++;
    return 0;
}

int rwire_put_hb_resp(struct rwire_buf *b, uint64_t group, uint8_t form, uint64_t term,
                      uint64_t index, uint64_t hint_index, uint64_t commit, uint8_t flags)
{
    int rc = reserve(b, 1 + 8 + 1 + 33);
    if (rc < 0)
        return rc;
    put8(b, RWIRE_HB_RESP);
    put64(b, group);
    put8(b, form);
    if (form == RWIRE_FULL) {
        put64(b, term);
        put64(b, index);
        put64(b, hint_index);
        put64(b, commit);
        put8(b, flags);
    }
    b->records++;
    return 0;
}

int rwire_put_raw(struct rwire_buf *b, const uint8_t *records, size_t len, uint32_t n)
{
    if (len == 0) {
        b->records += n;
        return 0;
    }
    int rc = reserve(b, len);
    if (rc < 0)
        return rc;
    memcpy(b->p + b->len, records, len);
    b->len += len;
    b->records += n;
    return 0;
}

/* ---- decoding ------------------------------------------------------------------------- */

int rwire_open(struct rwire_reader *r, const uint8_t *frame, size_t len)
{
    if (len < RWIRE_HEADER_BYTES || rl_load_le32(frame) != RWIRE_MAGIC)
        return RL_E_FRAME_MALFORMED;
    if (rl_load_le16(frame + 4) != RWIRE_VERSION)
        return RL_E_UNSUPPORTED_VERSION;
    if (len > RWIRE_MAX_FRAME_BYTES)
        return RL_E_FRAME_TOO_LARGE;
    if (rl_load_le32(frame + 20) != len - RWIRE_HEADER_BYTES)
        return RL_E_FRAME_MALFORMED;
    r->p = frame;
    r->len = len;
    r->pos = RWIRE_HEADER_BYTES;
    r->from = rl_load_le32(frame + 8);
    r->to = rl_load_le32(frame + 12);
    r->left = rl_load_le32(frame + 16);
    return 0;
}

static bool have(const struct rwire_reader *r, size_t n)
{
    return r->len - r->pos >= n;
}

static uint8_t get8(struct rwire_reader *r)
{
    return r->p[r->pos++];
}

static uint32_t get32(struct rwire_reader *r)
{
    uint32_t v = rl_load_le32(r->p + r->pos);
    r->pos += 4;
    return v;
}

static uint64_t get64(struct rwire_reader *r)
{
    uint64_t v = rl_load_le64(r->p + r->pos);
    r->pos += 8;
    return v;
}

static int next_msg(struct rwire_reader *r, struct rwire_record *rec)
{
    struct raft_msg *m = &rec->msg;
    if (!have(r, 8 + 2 + 6 * 8 + 4))
        return RL_E_FRAME_MALFORMED;
    memset(m, 0, sizeof(*m));
    rec->group = get64(r);
    m->type = get8(r);
    m->flags = get8(r);
    m->term = get64(r);
    m->index = get64(r);
    m->log_term = get64(r);
    m->commit = get64(r);
    m->hint_index = get64(r);
    m->hint_term = get64(r);
    m->n_entries = get32(r);
    m->from = r->from;
    m->to = r->to;
    if (m->n_entries > RAFT_READY_MAX_ENTRIES || m->type >= RAFT_MSG_TYPE_COUNT)
        return RL_E_FRAME_MALFORMED;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        struct raft_entry *e = &r->entries[i];
        if (!have(r, 8 + 8 + 4 + 1 + 4))
            return RL_E_FRAME_MALFORMED;
        e->index = get64(r);
        e->term = get64(r);
        e->count = get32(r);
        e->type = get8(r);
        e->len = get32(r);
        if (!have(r, e->len))
            return RL_E_FRAME_MALFORMED;
        e->data = e->len ? r->p + r->pos : NULL;
        r->pos += e->len;
    }
    m->entries = m->n_entries ? r->entries : NULL;
    if (m->type == RAFT_MSG_SNAPSHOT) {
        if (!have(r, 3 * 8 + 4))
            return RL_E_FRAME_MALFORMED;
        m->snap.index = get64(r);
        m->snap.term = get64(r);
        m->snap.config_index = get64(r);
        uint32_t len = get32(r);
        if (!have(r, len) || raft_config_decode(r->p + r->pos, len, &m->snap.config) < 0)
            return RL_E_FRAME_MALFORMED;
        r->pos += len;
    }
    return 1;
}

int rwire_next(struct rwire_reader *r, struct rwire_record *rec)
{
    if (r->left == 0)
        return r->pos == r->len ? 0 : RL_E_FRAME_MALFORMED;
    r->left--;
    if (!have(r, 1 + 8 + 1))
        return RL_E_FRAME_MALFORMED;
    rec->kind = get8(r);
    if (rec->kind == RWIRE_MSG)
        return next_msg(r, rec);
    rec->group = get64(r);
    rec->form = get8(r);
    if (rec->kind == RWIRE_HB) {
        if (rec->form > RWIRE_FULL_ASK)
            return RL_E_FRAME_MALFORMED;
        if (rec->form != RWIRE_ID_ONLY) {
            if (!have(r, 16))
                return RL_E_FRAME_MALFORMED;
            rec->term = get64(r);
            rec->commit = get64(r);
        }
        return 1;
    }
    if (rec->kind != RWIRE_HB_RESP || rec->form > RWIRE_NEED_FULL)
        return RL_E_FRAME_MALFORMED;
    if (rec->form == RWIRE_FULL) {
        if (!have(r, 33))
            return RL_E_FRAME_MALFORMED;
        rec->term = get64(r);
        rec->index = get64(r);
        rec->hint_index = get64(r);
        rec->commit = get64(r);
        rec->flags = get8(r);
    }
    return 1;
}
