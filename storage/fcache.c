/*
 * fcache: bounded LRU of open segment descriptors (contract in fcache.h). Where it sits: under
 * the partition log's writer and reader, above open(2)/close(2).
 */
#include "storage/fcache.h"

#include <errno.h>
#include <fcntl.h>

#include "common/err.h"
#include "common/log.h"
#include "io/io.h"

void fcache_init(struct fcache *c, struct io *io, unsigned max_open)
{
    c->io = io;
    c->max_open = max_open < 2 ? 2 : max_open;
    c->open = 0;
    c->lru.prev = c->lru.next = &c->lru;
    c->opens = c->evictions = 0;
}

void fcache_ent_init(struct fcache_ent *e)
{
    e->fd = -1;
    e->oflags = 0;
    e->pins = 0;
    e->prev = e->next = NULL;
}

static void lru_unlink(struct fcache_ent *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_mru(struct fcache *c, struct fcache_ent *e)
{
    e->prev = c->lru.prev;
    e->next = &c->lru;
    c->lru.prev->next = e;
    c->lru.prev = e;
}

void fcache_close(struct fcache *c, struct fcache_ent *e)
{
    if (e->fd < 0)
        return;
    RL_ASSERTF(e->pins == 0, "closing a pinned descriptor (%u pins)", e->pins);
    lru_unlink(e);
    io_file_close(c->io, e->fd);
    e->fd = -1;
    c->open--;
}

/* Evicts the least recently used unpinned entry. Returns false when all are pinned. The scan
 * is bounded by the number of open entries. */
static bool fcache_evict_one(struct fcache *c)
{
    unsigned seen = 0;
    for (struct fcache_ent *e = c->lru.next; e != &c->lru && seen < c->open; e = e->next) {
        seen++;
        if (e->pins == 0) {
            fcache_close(c, e);
            c->evictions++;
            return true;
        }
    }
    return false;
}

int fcache_get(struct fcache *c, struct fcache_ent *e, const char *path, int oflags,
               bool *direct)
{
    if (e->fd >= 0) {
        lru_unlink(e);
        lru_push_mru(c, e);
        return e->fd;
    }
    while (c->open >= c->max_open)
        if (!fcache_evict_one(c))
            return RL_E_FULL;
    int fd = io_file_open(c->io, path, oflags, 0644);
    if (fd == -EMFILE && fcache_evict_one(c))
        fd = io_file_open(c->io, path, oflags, 0644);
    if (fd == -EINVAL && (oflags & O_DIRECT)) {
        /* tmpfs and some others refuse O_DIRECT; the writer's aligned buffers work without. */
        oflags &= ~O_DIRECT;
        fd = io_file_open(c->io, path, oflags, 0644);
        if (fd >= 0 && direct != NULL)
            *direct = false;
    }
    if (fd < 0)
        return fd;
    e->fd = fd;
    e->oflags = oflags;
    c->open++;
    c->opens++;
    lru_push_mru(c, e);
    return fd;
}

void fcache_pin(struct fcache_ent *e)
{
    e->pins++;
}

void fcache_unpin(struct fcache_ent *e)
{
    RL_ASSERT(e->pins > 0);
    e->pins--;
}
