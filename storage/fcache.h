/*
 * fcache: a bounded, least-recently-used cache of open segment file descriptors, shared by all
 * logs of one storage (one shard). A broker with 10,000 partitions keeps at most max_open
 * descriptors open; a file not in the cache is reopened by path when next used.
 *
 * The owner of a descriptor embeds a `struct fcache_ent` (one per file and open mode). An entry
 * in use by in-flight I/O or by a reader's slice is pinned and never evicted; when every open
 * entry is pinned and the cache is full, fcache_get fails with RL_E_FULL (the caller backs off)
 * rather than exceeding the bound.
 */
#ifndef RL_STORAGE_FCACHE_H
#define RL_STORAGE_FCACHE_H

#include <stdbool.h>

struct io;

struct fcache_ent {
    int fd;       /* -1 when closed */
    int oflags;   /* flags it was opened with */
    unsigned pins;
    struct fcache_ent *prev, *next; /* LRU list while open */
};

struct fcache {
    struct io *io;         /* every open and close goes through it */
    unsigned max_open;
    unsigned open;
    struct fcache_ent lru; /* sentinel: lru.next is the least recently used */
    unsigned long opens, evictions; /* counters for tests and metrics */
};

void fcache_init(struct fcache *c, struct io *io, unsigned max_open);

/* Marks an entry closed; call once when embedding it. */
void fcache_ent_init(struct fcache_ent *e);

/* Returns the entry's descriptor, opening `path` with `oflags` (O_CLOEXEC added) when it is
 * closed, after evicting the least recently used unpinned entry if the cache is full. If
 * O_DIRECT is refused by the file system (EINVAL), opens without it and clears *direct (when
 * direct is not NULL). Returns fd >= 0, RL_E_FULL when everything is pinned, or -errno. */
int fcache_get(struct fcache *c, struct fcache_ent *e, const char *path, int oflags,
               bool *direct);

void fcache_pin(struct fcache_ent *e);
void fcache_unpin(struct fcache_ent *e);

/* Closes the entry's descriptor now if open (it must not be pinned). */
void fcache_close(struct fcache *c, struct fcache_ent *e);

#endif
