/*
 * io_sim: the simulated back-end of the I/O layer (contract in io_sim.h). Where it sits: in
 * place of io_uring and the kernel's file system, under storage, in tests.
 *
 * Model. An inode holds the bytes readers see (`cur`, cur_len) and the bytes that survive a
 * power cut (`dur`, dur_len), plus the range of `cur` changed since the last sync, so a sync
 * copies only that. Bytes past a buffer's fill up to the file's length read as zeros
 * (fallocate and growing truncates cost no memory). The namespace is two flat tables of
 * path -> inode: the current one and the durable one; every create, rename and remove changes
 * the current table at once and is queued as a pending directory op, applied to the durable
 * table when a sync of a directory it touches (or syncfs) makes it durable. The tables are
 * small (a test's files), so lookups scan them.
 *
 * Async ops are queued at prepare time with the link flag; io_run starts every queued op (a
 * chain in order, chains in a seeded order), may keep some in flight for a later run, and
 * delivers completions in the order the ops ran.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "io/io_int.h"
#include "io/io_sim.h"

#define SIM_MAX_FDS 4096
#define SIM_MAX_FAULTS 8
#define SIM_FD_BASE 1000 /* descriptors start here, far from a test's real ones */
#define SIM_OP_COST_NS 20000ull /* simulated time each started op takes */
#define SIM_RUN_MAX_CALLBACKS 4096

struct sim_inode {
    bool is_dir;
    uint8_t *cur;
    uint64_t cur_fill, cur_cap, cur_len; /* bytes in cur; capacity; the file's size */
    uint8_t *dur;
    uint64_t dur_fill, dur_len;
    uint64_t dirty_lo, dirty_hi;  /* cur bytes changed since the last sync (lo >= hi: none) */
    unsigned nlink;               /* entries in the current table */
    unsigned opens;               /* open descriptors */
    uint64_t charged;             /* bytes counted against the capacity */
    struct sim_inode *next_all;
};

struct sim_entry {
    char *path;
    struct sim_inode *ino;
};

struct sim_table {
    struct sim_entry *e;
    size_t n, cap;
};

enum sim_dirop_kind { DIROP_LINK, DIROP_UNLINK, DIROP_RENAME };

struct sim_dirop {
    enum sim_dirop_kind kind;
    char *path, *path2;     /* path2: the new name of a rename */
    struct sim_inode *ino;  /* DIROP_LINK: what path now names */
    struct sim_dirop *next;
};

struct sim_fd {
    struct sim_inode *ino;
    int flags;
    bool used;
};

struct sim_op {
    struct io_op *op;
    struct io_sim_req req;
    bool link;        /* the next op of the queue waits for this one */
    uint64_t deadline; /* timers */
    int result;
    struct sim_op *next;
};

struct sim_fault {
    unsigned mask;
    uint64_t left;
    int err;
};

struct io_sim {
    struct io *io;
    struct io_sim_config cfg;
    uint64_t rng;
    uint64_t now_ns;
    struct sim_inode *inodes;
    struct sim_table cur, dur;
    struct sim_dirop *dirops_head, *dirops_tail;
    struct sim_fd fds[SIM_MAX_FDS];
    struct sim_op *queued_head, *queued_tail; /* prepared, not started */
    struct sim_op *held;                       /* started chains kept in flight, in order */
    struct sim_op *timers;
    struct sim_op *done_head, *done_tail;      /* completed, callbacks not yet run */
    struct sim_fault faults[SIM_MAX_FAULTS];
    uint64_t used_bytes;
    uint64_t mutations, cut_at;
    bool off;
};

static uint64_t sim_rand(struct io_sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool sim_chance(struct io_sim *s, unsigned permille)
{
    return permille > 0 && sim_rand(s) % 1000 < permille;
}

static struct io_sim *SIMOF(struct io *io)
{
    struct io_sim *s = io_sim_of(io);
    RL_ASSERTF(s != NULL, "a simulation call on an io_uring io");
    return s;
}

/* --- inodes and capacity ------------------------------------------------------------------ */

static uint64_t round_block(uint64_t v)
{
    return (v + 4095) & ~(uint64_t)4095;
}

static bool inode_live(const struct sim_inode *ino)
{
    return ino->nlink > 0 || ino->opens > 0;
}

/* Re-charges an inode's size against the capacity; fails with -ENOSPC (changing nothing) when
 * growing to new_len would pass it. */
static int charge(struct io_sim *s, struct sim_inode *ino, uint64_t new_len)
{
    uint64_t want = inode_live(ino) ? round_block(new_len) : 0;
    if (want > ino->charged && s->cfg.capacity_bytes != 0 &&
        s->used_bytes + (want - ino->charged) > s->cfg.capacity_bytes)
        return -ENOSPC;
    s->used_bytes = s->used_bytes - ino->charged + want;
    ino->charged = want;
    return 0;
}

static struct sim_inode *inode_new(struct io_sim *s, bool is_dir)
{
    struct sim_inode *ino = calloc(1, sizeof(*ino));
    RL_ASSERT(ino != NULL);
    ino->is_dir = is_dir;
    ino->next_all = s->inodes;
    s->inodes = ino;
    return ino;
}

static void buf_reserve(uint8_t **buf, uint64_t *cap, uint64_t need)
{
    if (need <= *cap)
        return;
    uint64_t ncap = *cap ? *cap : 4096;
    while (ncap < need)
        ncap *= 2;
    uint8_t *p = realloc(*buf, ncap);
    RL_ASSERT(p != NULL);
    *buf = p;
    *cap = ncap;
}

static void mark_dirty(struct sim_inode *ino, uint64_t lo, uint64_t hi)
{
    if (ino->dirty_lo >= ino->dirty_hi) {
        ino->dirty_lo = lo;
        ino->dirty_hi = hi;
        return;
    }
    if (lo < ino->dirty_lo)
        ino->dirty_lo = lo;
    if (hi > ino->dirty_hi)
        ino->dirty_hi = hi;
}

/* Writes into an inode's current bytes. */
static int inode_write(struct io_sim *s, struct sim_inode *ino, const void *src, uint64_t len,
                       uint64_t off)
{
    uint64_t end = off + len;
    if (end > ino->cur_len) {
        int rc = charge(s, ino, end);
        if (rc < 0)
            return rc;
        ino->cur_len = end;
    }
    if (end > ino->cur_fill) {
        buf_reserve(&ino->cur, &ino->cur_cap, end);
        memset(ino->cur + ino->cur_fill, 0, end - ino->cur_fill);
        ino->cur_fill = end;
    }
    if (len > 0)
        memcpy(ino->cur + off, src, len);
    mark_dirty(ino, off, end);
    return 0;
}

static uint64_t inode_read(const struct sim_inode *ino, void *dst, uint64_t len, uint64_t off)
{
    if (off >= ino->cur_len)
        return 0;
    if (len > ino->cur_len - off)
        len = ino->cur_len - off;
    uint64_t from_buf = off < ino->cur_fill ? ino->cur_fill - off : 0;
    if (from_buf > len)
        from_buf = len;
    if (from_buf > 0)
        memcpy(dst, ino->cur + off, from_buf);
    memset((uint8_t *)dst + from_buf, 0, len - from_buf);
    return len;
}

static void inode_set_len(struct sim_inode *ino, uint64_t len)
{
    if (len < ino->cur_fill) {
        mark_dirty(ino, len, ino->cur_fill);
        ino->cur_fill = len;
    }
    ino->cur_len = len;
}

/* Makes the inode's current bytes and size durable: the bytes changed since the last sync,
 * and any the file grew by, are copied. */
static void inode_sync(struct sim_inode *ino)
{
    bool dirty = ino->dirty_lo < ino->dirty_hi;
    uint64_t lo = dirty ? ino->dirty_lo : ino->cur_fill;
    uint64_t hi = dirty ? ino->dirty_hi : 0;
    if (ino->cur_fill > ino->dur_fill) {
        if (lo > ino->dur_fill)
            lo = ino->dur_fill;
        hi = ino->cur_fill;
    }
    if (hi > ino->cur_fill)
        hi = ino->cur_fill;
    uint8_t *p = realloc(ino->dur, ino->cur_fill ? ino->cur_fill : 1);
    RL_ASSERT(p != NULL);
    ino->dur = p;
    if (lo < hi)
        memcpy(ino->dur + lo, ino->cur + lo, hi - lo);
    ino->dur_fill = ino->cur_fill;
    ino->dur_len = ino->cur_len;
    ino->dirty_lo = ino->dirty_hi = 0;
}

/* Brings an inode back after a cut: durable bytes, plus each changed sector with the
 * configured chance; the size is the old or the new one. */
static void inode_after_cut(struct io_sim *s, struct sim_inode *ino)
{
    uint64_t len = ino->dur_len;
    if (ino->cur_len != ino->dur_len && sim_rand(s) % 2 == 0)
        len = ino->cur_len;
    uint8_t *img = calloc(1, len ? len : 1);
    RL_ASSERT(img != NULL);
    uint64_t durable = ino->dur_fill < len ? ino->dur_fill : len;
    if (durable > 0)
        memcpy(img, ino->dur, durable);
    if (ino->dirty_lo < ino->dirty_hi) {
        uint64_t lo = ino->dirty_lo / IO_SIM_SECTOR * IO_SIM_SECTOR;
        for (uint64_t sec = lo; sec < ino->dirty_hi && sec < len; sec += IO_SIM_SECTOR) {
            if (!sim_chance(s, s->cfg.keep_permille))
                continue;
            uint64_t n = len - sec < IO_SIM_SECTOR ? len - sec : IO_SIM_SECTOR;
            uint64_t have = sec < ino->cur_fill ? ino->cur_fill - sec : 0;
            if (have > n)
                have = n;
            if (have > 0)
                memcpy(img + sec, ino->cur + sec, have);
            memset(img + sec + have, 0, n - have);
        }
    }
    free(ino->cur);
    ino->cur = img;
    ino->cur_cap = len ? len : 1;
    ino->cur_fill = ino->cur_len = len;
    ino->dirty_lo = 0; /* the whole image becomes the durable one */
    ino->dirty_hi = len;
    ino->dur_fill = 0;
    inode_sync(ino);
}

/* --- namespace ---------------------------------------------------------------------------- */

static struct sim_entry *table_find(struct sim_table *t, const char *path)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->e[i].path, path) == 0)
            return &t->e[i];
    return NULL;
}

static void table_set(struct sim_table *t, const char *path, struct sim_inode *ino)
{
    struct sim_entry *e = table_find(t, path);
    if (e != NULL) {
        e->ino = ino;
        return;
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->e = realloc(t->e, t->cap * sizeof(*t->e));
        RL_ASSERT(t->e != NULL);
    }
    t->e[t->n].path = strdup(path);
    RL_ASSERT(t->e[t->n].path != NULL);
    t->e[t->n++].ino = ino;
}

static void table_del(struct sim_table *t, const char *path)
{
    struct sim_entry *e = table_find(t, path);
    if (e == NULL)
        return;
    free(e->path);
    *e = t->e[--t->n];
}

static bool has_prefix_dir(const char *path, const char *dir, size_t dlen)
{
    return strncmp(path, dir, dlen) == 0 && path[dlen] == '/';
}

/* Renames `from` (and, for a directory, everything under it) to `to` in a table. */
static void table_rename(struct sim_table *t, const char *from, const char *to)
{
    struct sim_entry *e = table_find(t, from);
    if (e == NULL)
        return;
    struct sim_inode *ino = e->ino;
    table_del(t, from);
    table_set(t, to, ino);
    size_t flen = strlen(from), tlen = strlen(to);
    for (size_t i = 0; i < t->n; i++) {
        if (!has_prefix_dir(t->e[i].path, from, flen))
            continue;
        size_t rest = strlen(t->e[i].path + flen);
        char *p = malloc(tlen + rest + 1);
        RL_ASSERT(p != NULL);
        memcpy(p, to, tlen);
        memcpy(p + tlen, t->e[i].path + flen, rest + 1);
        free(t->e[i].path);
        t->e[i].path = p;
    }
}

/* The parent directory of path ("" for a name without a slash, "/" for a top-level name). */
static void parent_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : (slash == path ? 1 : (size_t)(slash - path));
    if (n >= cap)
        n = cap - 1;
    memcpy(out, path, n);
    out[n] = '\0';
}

/* A directory exists when it is the root, or a directory entry of the current table. */
static bool dir_exists(struct io_sim *s, const char *dir)
{
    if (dir[0] == '\0' || strcmp(dir, "/") == 0)
        return true;
    struct sim_entry *e = table_find(&s->cur, dir);
    return e != NULL && e->ino->is_dir;
}

static bool parent_exists(struct io_sim *s, const char *path)
{
    char dir[4096];
    parent_of(path, dir, sizeof(dir));
    return dir_exists(s, dir);
}

static void dirop_queue(struct io_sim *s, enum sim_dirop_kind kind, const char *path,
                        const char *path2, struct sim_inode *ino)
{
    struct sim_dirop *d = calloc(1, sizeof(*d));
    RL_ASSERT(d != NULL);
    d->kind = kind;
    d->path = strdup(path);
    d->path2 = path2 ? strdup(path2) : NULL;
    d->ino = ino;
    if (s->dirops_tail != NULL)
        s->dirops_tail->next = d;
    else
        s->dirops_head = d;
    s->dirops_tail = d;
}

static void dirop_apply(struct io_sim *s, const struct sim_dirop *d)
{
    switch (d->kind) {
    case DIROP_LINK:
        table_set(&s->dur, d->path, d->ino);
        break;
    case DIROP_UNLINK:
        table_del(&s->dur, d->path);
        break;
    case DIROP_RENAME:
        table_rename(&s->dur, d->path, d->path2);
        break;
    }
}

static void dirop_free(struct sim_dirop *d)
{
    free(d->path);
    free(d->path2);
    free(d);
}

static bool dirop_touches(const struct sim_dirop *d, const char *dir)
{
    char p[4096];
    parent_of(d->path, p, sizeof(p));
    if (strcmp(p, dir) == 0)
        return true;
    if (d->path2 == NULL)
        return false;
    parent_of(d->path2, p, sizeof(p));
    return strcmp(p, dir) == 0;
}

/* Applies pending directory ops to the durable table: those touching `dir`, or all (NULL). */
static void dirops_make_durable(struct io_sim *s, const char *dir)
{
    struct sim_dirop **pp = &s->dirops_head;
    s->dirops_tail = NULL;
    while (*pp != NULL) {
        struct sim_dirop *d = *pp;
        if (dir == NULL || dirop_touches(d, dir)) {
            dirop_apply(s, d);
            *pp = d->next;
            dirop_free(d);
        } else {
            s->dirops_tail = d;
            pp = &d->next;
        }
    }
}

/* --- faults and power --------------------------------------------------------------------- */

/* Counts a mutation of the given kind; returns the error it must fail with, or 0. */
static int mutate(struct io_sim *s, unsigned kind)
{
    if (s->off)
        return -EIO;
    s->mutations++;
    if (s->cut_at != 0 && s->mutations >= s->cut_at) {
        s->off = true;
        return -EIO;
    }
    for (int i = 0; i < SIM_MAX_FAULTS; i++) {
        struct sim_fault *f = &s->faults[i];
        if (f->left == 0 || !(f->mask & kind))
            continue;
        if (--f->left == 0)
            return f->err;
    }
    return 0;
}

void io_sim_fail_nth(struct io *io, unsigned mask, uint64_t n, int err)
{
    struct io_sim *s = SIMOF(io);
    for (int i = 0; i < SIM_MAX_FAULTS; i++)
        if (s->faults[i].left == 0) {
            s->faults[i] = (struct sim_fault){mask, n, err};
            return;
        }
    RL_ASSERTF(false, "more than %d simulated faults armed", SIM_MAX_FAULTS);
}

void io_sim_set_capacity(struct io *io, uint64_t bytes)
{
    SIMOF(io)->cfg.capacity_bytes = bytes;
}

uint64_t io_sim_used_bytes(struct io *io)
{
    return SIMOF(io)->used_bytes;
}

uint64_t io_sim_mutations(struct io *io)
{
    return SIMOF(io)->mutations;
}

void io_sim_cut_power_at(struct io *io, uint64_t n)
{
    SIMOF(io)->cut_at = n;
}

void io_sim_cut_power_now(struct io *io)
{
    SIMOF(io)->off = true;
}

bool io_sim_powered_off(struct io *io)
{
    return SIMOF(io)->off;
}

void io_sim_advance(struct io *io, uint64_t ns)
{
    SIMOF(io)->now_ns += ns;
}

static void free_op_list(struct sim_op *o)
{
    while (o != NULL) {
        struct sim_op *n = o->next;
        free(o);
        o = n;
    }
}

void io_sim_restart(struct io *io)
{
    struct io_sim *s = SIMOF(io);
    /* A seeded prefix of the directory ops not yet durable survives, in order. */
    size_t pending = 0;
    for (struct sim_dirop *d = s->dirops_head; d != NULL; d = d->next)
        pending++;
    size_t keep = pending ? (size_t)(sim_rand(s) % (pending + 1)) : 0;
    for (size_t i = 0; i < keep; i++) {
        struct sim_dirop *d = s->dirops_head;
        dirop_apply(s, d);
        s->dirops_head = d->next;
        dirop_free(d);
    }
    while (s->dirops_head != NULL) {
        struct sim_dirop *d = s->dirops_head;
        s->dirops_head = d->next;
        dirop_free(d);
    }
    s->dirops_tail = NULL;
    for (int i = 0; i < SIM_MAX_FDS; i++)
        s->fds[i] = (struct sim_fd){0};
    /* The current table becomes the durable one; inodes come back as they survived. */
    for (size_t i = 0; i < s->cur.n; i++)
        free(s->cur.e[i].path);
    s->cur.n = 0;
    for (struct sim_inode *ino = s->inodes; ino != NULL; ino = ino->next_all) {
        ino->nlink = 0;
        ino->opens = 0;
        ino->charged = 0;
    }
    for (size_t i = 0; i < s->dur.n; i++) {
        table_set(&s->cur, s->dur.e[i].path, s->dur.e[i].ino);
        s->dur.e[i].ino->nlink++;
    }
    s->used_bytes = 0;
    for (struct sim_inode *ino = s->inodes; ino != NULL; ino = ino->next_all) {
        if (ino->nlink == 0)
            continue;
        inode_after_cut(s, ino);
        uint64_t cap = s->cfg.capacity_bytes;
        s->cfg.capacity_bytes = 0; /* what survived is there, whatever the capacity */
        charge(s, ino, ino->cur_len);
        s->cfg.capacity_bytes = cap;
    }
    free_op_list(s->queued_head);
    free_op_list(s->held);
    free_op_list(s->timers);
    free_op_list(s->done_head);
    s->queued_head = s->queued_tail = s->held = s->timers = NULL;
    s->done_head = s->done_tail = NULL;
    s->off = false;
    s->cut_at = 0;
    for (int i = 0; i < SIM_MAX_FAULTS; i++)
        s->faults[i].left = 0;
}

/* --- descriptors and synchronous calls ---------------------------------------------------- */

static struct sim_fd *fd_get(struct io_sim *s, int fd)
{
    int i = fd - SIM_FD_BASE;
    if (i < 0 || i >= SIM_MAX_FDS || !s->fds[i].used)
        return NULL;
    return &s->fds[i];
}

static void inode_unref_check(struct io_sim *s, struct sim_inode *ino)
{
    if (!inode_live(ino))
        charge(s, ino, 0);
}

int io_sim_file_open(struct io_sim *s, const char *path, int flags, unsigned mode)
{
    (void)mode;
    if (s->off)
        return -EIO;
    if (flags & O_DIRECTORY)
        return -EOPNOTSUPP;
    struct sim_entry *e = table_find(&s->cur, path);
    struct sim_inode *ino = e ? e->ino : NULL;
    if (ino != NULL && ino->is_dir)
        return -EISDIR;
    if (ino != NULL && (flags & O_CREAT) && (flags & O_EXCL))
        return -EEXIST;
    if (ino == NULL && !(flags & O_CREAT))
        return -ENOENT;
    if (!parent_exists(s, path))
        return -ENOENT;
    int slot = -1;
    for (int i = 0; i < SIM_MAX_FDS && slot < 0; i++)
        if (!s->fds[i].used)
            slot = i;
    if (slot < 0)
        return -EMFILE;
    if (ino == NULL) {
        int rc = mutate(s, IO_SIM_OP_CREATE);
        if (rc < 0)
            return rc;
        ino = inode_new(s, false);
        ino->nlink = 1;
        table_set(&s->cur, path, ino);
        dirop_queue(s, DIROP_LINK, path, NULL, ino);
    } else if ((flags & O_TRUNC) && ino->cur_len > 0 && (flags & O_ACCMODE) != O_RDONLY) {
        int rc = mutate(s, IO_SIM_OP_TRUNCATE);
        if (rc < 0)
            return rc;
        inode_set_len(ino, 0);
        charge(s, ino, 0);
    }
    ino->opens++;
    s->fds[slot] = (struct sim_fd){ino, flags, true};
    return SIM_FD_BASE + slot;
}

int io_sim_file_close(struct io_sim *s, int fd)
{
    struct sim_fd *f = fd_get(s, fd);
    if (f == NULL)
        return -EBADF;
    f->ino->opens--;
    inode_unref_check(s, f->ino);
    *f = (struct sim_fd){0};
    return 0;
}

static int check_direct(const struct sim_fd *f, const void *buf, uint64_t len, uint64_t off)
{
    if (!(f->flags & O_DIRECT))
        return 0;
    if (off % IO_SIM_SECTOR || len % IO_SIM_SECTOR || (uintptr_t)buf % IO_SIM_SECTOR)
        return -EINVAL;
    return 0;
}

ssize_t io_sim_file_pread(struct io_sim *s, int fd, void *buf, size_t len, uint64_t off)
{
    struct sim_fd *f = fd_get(s, fd);
    if (s->off)
        return -EIO;
    if (f == NULL || (f->flags & O_ACCMODE) == O_WRONLY)
        return -EBADF;
    int rc = check_direct(f, buf, len, off);
    if (rc < 0)
        return rc;
    return (ssize_t)inode_read(f->ino, buf, len, off);
}

static int writable(struct io_sim *s, int fd, struct sim_fd **out)
{
    struct sim_fd *f = fd_get(s, fd);
    if (s->off)
        return -EIO;
    if (f == NULL || (f->flags & O_ACCMODE) == O_RDONLY)
        return -EBADF;
    *out = f;
    return 0;
}

ssize_t io_sim_file_pwrite(struct io_sim *s, int fd, const void *buf, size_t len, uint64_t off)
{
    struct sim_fd *f;
    int rc = writable(s, fd, &f);
    if (rc == 0)
        rc = check_direct(f, buf, len, off);
    if (rc == 0)
        rc = mutate(s, IO_SIM_OP_WRITE);
    if (rc == 0)
        rc = inode_write(s, f->ino, buf, len, off);
    return rc < 0 ? rc : (ssize_t)len;
}

int io_sim_file_sync(struct io_sim *s, int fd)
{
    struct sim_fd *f = fd_get(s, fd);
    if (f == NULL && !s->off)
        return -EBADF;
    int rc = mutate(s, IO_SIM_OP_SYNC);
    if (rc < 0)
        return rc;
    inode_sync(f->ino);
    return 0;
}

int io_sim_file_truncate(struct io_sim *s, int fd, uint64_t size)
{
    struct sim_fd *f;
    int rc = writable(s, fd, &f);
    if (rc == 0)
        rc = mutate(s, IO_SIM_OP_TRUNCATE);
    if (rc == 0 && size > f->ino->cur_len)
        rc = charge(s, f->ino, size);
    if (rc < 0)
        return rc;
    inode_set_len(f->ino, size);
    charge(s, f->ino, size);
    return 0;
}

int io_sim_file_allocate(struct io_sim *s, int fd, uint64_t off, uint64_t len)
{
    struct sim_fd *f;
    int rc = writable(s, fd, &f);
    if (rc == 0)
        rc = mutate(s, IO_SIM_OP_ALLOCATE);
    if (rc == 0 && off + len > f->ino->cur_len) {
        rc = charge(s, f->ino, off + len);
        if (rc == 0)
            inode_set_len(f->ino, off + len);
    }
    return rc;
}

int io_sim_file_size(struct io_sim *s, int fd, uint64_t *size)
{
    struct sim_fd *f = fd_get(s, fd);
    if (f == NULL)
        return -EBADF;
    *size = f->ino->cur_len;
    return 0;
}

int io_sim_path_size(struct io_sim *s, const char *path, uint64_t *size)
{
    struct sim_entry *e = table_find(&s->cur, path);
    if (e == NULL)
        return -ENOENT;
    *size = e->ino->cur_len;
    return 0;
}

int io_sim_path_rename(struct io_sim *s, const char *from, const char *to)
{
    struct sim_entry *e = table_find(&s->cur, from);
    if (s->off)
        return -EIO;
    if (e == NULL || !parent_exists(s, to))
        return -ENOENT;
    struct sim_entry *t = table_find(&s->cur, to);
    if (t != NULL && t->ino->is_dir)
        return e->ino->is_dir ? -ENOTEMPTY : -EISDIR;
    int rc = mutate(s, IO_SIM_OP_RENAME);
    if (rc < 0)
        return rc;
    if (t != NULL) {
        struct sim_inode *old = t->ino;
        table_del(&s->cur, to);
        old->nlink--;
        inode_unref_check(s, old);
    }
    table_rename(&s->cur, from, to);
    dirop_queue(s, DIROP_RENAME, from, to, NULL);
    return 0;
}

static int remove_entry(struct io_sim *s, const char *path, bool dir)
{
    struct sim_entry *e = table_find(&s->cur, path);
    if (s->off)
        return -EIO;
    if (e == NULL)
        return -ENOENT;
    if (e->ino->is_dir != dir)
        return dir ? -ENOTDIR : -EISDIR;
    if (dir) {
        size_t len = strlen(path);
        for (size_t i = 0; i < s->cur.n; i++)
            if (has_prefix_dir(s->cur.e[i].path, path, len))
                return -ENOTEMPTY;
    }
    int rc = mutate(s, IO_SIM_OP_REMOVE);
    if (rc < 0)
        return rc;
    struct sim_inode *ino = e->ino;
    table_del(&s->cur, path);
    ino->nlink--;
    inode_unref_check(s, ino);
    dirop_queue(s, DIROP_UNLINK, path, NULL, NULL);
    return 0;
}

int io_sim_path_unlink(struct io_sim *s, const char *path)
{
    return remove_entry(s, path, false);
}

int io_sim_dir_remove(struct io_sim *s, const char *path)
{
    return remove_entry(s, path, true);
}

int io_sim_dir_make(struct io_sim *s, const char *path)
{
    if (s->off)
        return -EIO;
    if (dir_exists(s, path) || table_find(&s->cur, path) != NULL)
        return -EEXIST;
    if (!parent_exists(s, path))
        return -ENOENT;
    int rc = mutate(s, IO_SIM_OP_CREATE);
    if (rc < 0)
        return rc;
    struct sim_inode *ino = inode_new(s, true);
    ino->nlink = 1;
    table_set(&s->cur, path, ino);
    dirop_queue(s, DIROP_LINK, path, NULL, ino);
    return 0;
}

int io_sim_dir_sync(struct io_sim *s, const char *path)
{
    if (!s->off && !dir_exists(s, path))
        return -ENOENT;
    int rc = mutate(s, IO_SIM_OP_SYNC);
    if (rc < 0)
        return rc;
    dirops_make_durable(s, path);
    return 0;
}

int io_sim_fs_sync(struct io_sim *s)
{
    int rc = mutate(s, IO_SIM_OP_SYNC);
    if (rc < 0)
        return rc;
    dirops_make_durable(s, NULL);
    for (struct sim_inode *ino = s->inodes; ino != NULL; ino = ino->next_all)
        if (inode_live(ino))
            inode_sync(ino);
    return 0;
}

int io_sim_dir_list(struct io_sim *s, const char *path, io_dir_entry_fn fn, void *ctx)
{
    if (s->off)
        return -EIO;
    if (!dir_exists(s, path))
        return -ENOENT;
    /* Names are collected first: fn may create or remove entries. */
    size_t len = strlen(path), n = 0;
    char **names = calloc(s->cur.n + 1, sizeof(*names));
    RL_ASSERT(names != NULL);
    for (size_t i = 0; i < s->cur.n; i++) {
        const char *p = s->cur.e[i].path;
        if (has_prefix_dir(p, path, len) && strchr(p + len + 1, '/') == NULL)
            names[n++] = strdup(p + len + 1);
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = fn(ctx, names[i]);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* --- async ops ---------------------------------------------------------------------------- */

struct io_sim *io_sim_new(struct io *io, const struct io_sim_config *cfg)
{
    struct io_sim *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->io = io;
    s->cfg = *cfg;
    if (s->cfg.wall_start_ms == 0)
        s->cfg.wall_start_ms = 1780000000000ll;
    s->rng = cfg->seed ^ 0x5eed5eed5eedull;
    s->now_ns = 1000000000ull;
    return s;
}

void io_sim_free(struct io_sim *s)
{
    free_op_list(s->queued_head);
    free_op_list(s->held);
    free_op_list(s->timers);
    free_op_list(s->done_head);
    while (s->dirops_head != NULL) {
        struct sim_dirop *d = s->dirops_head;
        s->dirops_head = d->next;
        dirop_free(d);
    }
    struct sim_table *ts[2] = {&s->cur, &s->dur};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < ts[k]->n; i++)
            free(ts[k]->e[i].path);
        free(ts[k]->e);
    }
    while (s->inodes != NULL) {
        struct sim_inode *ino = s->inodes;
        s->inodes = ino->next_all;
        free(ino->cur);
        free(ino->dur);
        free(ino);
    }
    free(s);
}

uint64_t io_sim_now_ns(struct io_sim *s)
{
    return s->now_ns;
}

int64_t io_sim_wall_ms(struct io_sim *s)
{
    return s->cfg.wall_start_ms + (int64_t)(s->now_ns / 1000000ull);
}

void io_sim_prep(struct io_sim *s, struct io_op *op, const struct io_sim_req *req,
                 unsigned flags)
{
    struct sim_op *o = calloc(1, sizeof(*o));
    RL_ASSERT(o != NULL);
    o->op = op;
    o->req = *req;
    o->link = (flags & IO_LINK) != 0;
    if (s->queued_tail != NULL)
        s->queued_tail->next = o;
    else
        s->queued_head = o;
    s->queued_tail = o;
}

static void complete(struct io_sim *s, struct sim_op *o, int result)
{
    o->result = result;
    o->next = NULL;
    if (s->done_tail != NULL)
        s->done_tail->next = o;
    else
        s->done_head = o;
    s->done_tail = o;
}

static ssize_t run_writev(struct io_sim *s, const struct io_sim_req *r)
{
    struct sim_fd *f;
    int rc = writable(s, r->fd, &f);
    uint64_t total = 0;
    for (int i = 0; rc == 0 && i < r->iovcnt; i++) {
        rc = check_direct(f, r->iov[i].iov_base, r->iov[i].iov_len, r->offset + total);
        total += r->iov[i].iov_len;
    }
    if (rc == 0)
        rc = mutate(s, IO_SIM_OP_WRITE);
    /* Gathered into one buffer first, so a write refused for space changes nothing. */
    uint8_t *tmp = rc == 0 ? malloc(total ? total : 1) : NULL;
    uint64_t at = 0;
    for (int i = 0; tmp != NULL && i < r->iovcnt; i++) {
        memcpy(tmp + at, r->iov[i].iov_base, r->iov[i].iov_len);
        at += r->iov[i].iov_len;
    }
    if (rc == 0)
        rc = inode_write(s, f->ino, tmp, total, r->offset);
    free(tmp);
    return rc < 0 ? rc : (ssize_t)total;
}

/* Carries out one started op and returns its result. */
static int run_one(struct io_sim *s, struct sim_op *o)
{
    const struct io_sim_req *r = &o->req;
    s->now_ns += SIM_OP_COST_NS;
    switch (r->kind) {
    case IOS_READ:
        return (int)io_sim_file_pread(s, r->fd, r->buf, r->len, r->offset);
    case IOS_WRITE:
        return (int)io_sim_file_pwrite(s, r->fd, r->cbuf, r->len, r->offset);
    case IOS_WRITEV:
        return (int)run_writev(s, r);
    case IOS_FDATASYNC:
        return io_sim_file_sync(s, r->fd);
    case IOS_FALLOCATE:
        return io_sim_file_allocate(s, r->fd, r->offset, r->len);
    case IOS_CLOSE:
        return io_sim_file_close(s, r->fd);
    case IOS_WORK:
        return r->work(o->op);
    case IOS_UNSUPPORTED:
    default:
        return -EOPNOTSUPP;
    }
}

/* Cancels a pending timer (the only op that waits long enough to be cancelled). */
static int run_cancel(struct io_sim *s, struct io_op *target)
{
    for (struct sim_op **pp = &s->timers; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->op != target)
            continue;
        struct sim_op *t = *pp;
        *pp = t->next;
        complete(s, t, -ECANCELED);
        return 0;
    }
    return -ENOENT;
}

/* Runs a chain in order; an op failing cancels the rest of its chain. */
static void run_chain(struct io_sim *s, struct sim_op *o)
{
    bool failed = false;
    while (o != NULL) {
        struct sim_op *next = o->link ? o->next : NULL;
        if (o->req.kind == IOS_TIMEOUT && !failed) {
            o->deadline = s->now_ns + o->req.timeout_ns;
            o->next = s->timers;
            s->timers = o;
        } else if (failed) {
            complete(s, o, -ECANCELED);
        } else {
            int rc = o->req.kind == IOS_CANCEL ? run_cancel(s, o->req.target) : run_one(s, o);
            failed = rc < 0 && o->link;
            complete(s, o, rc);
        }
        o = next;
    }
}

/* Starts every queued op: chains are cut from the queue, then run in a seeded order, some
 * kept back for the next run. */
static void start_queued(struct io_sim *s)
{
    struct sim_op *chains[256];
    size_t n = 0;
    /* Chains held back last time go first this time (they were in flight). */
    while (s->held != NULL && n < 256) {
        struct sim_op *c = s->held;
        struct sim_op *last = c;
        while (last->link && last->next != NULL)
            last = last->next;
        s->held = last->next;
        last->next = NULL;
        chains[n++] = c;
    }
    size_t n_held = n;
    while (s->queued_head != NULL && n < 256) {
        struct sim_op *c = s->queued_head, *last = c;
        while (last->link && last->next != NULL)
            last = last->next;
        s->queued_head = last->next;
        if (s->queued_head == NULL)
            s->queued_tail = NULL;
        last->next = NULL;
        chains[n++] = c;
    }
    /* Shuffle the newly started chains among themselves (Fisher-Yates), then put the
     * background jobs back in the order they were queued, in the places jobs took: the jobs
     * of a background thread run one after another, in order. */
    struct sim_op *works[256];
    size_t n_works = 0;
    for (size_t i = n_held; i < n; i++)
        if (chains[i]->req.kind == IOS_WORK)
            works[n_works++] = chains[i];
    for (size_t i = n; i > n_held + 1; i--) {
        size_t j = n_held + (size_t)(sim_rand(s) % (i - n_held));
        struct sim_op *t = chains[i - 1];
        chains[i - 1] = chains[j];
        chains[j] = t;
    }
    for (size_t i = n_held, w = 0; i < n; i++)
        if (chains[i]->req.kind == IOS_WORK)
            chains[i] = works[w++];
    struct sim_op *held_tail = NULL;
    bool work_held = false; /* a job kept in flight keeps the later jobs behind it */
    for (size_t i = 0; i < n; i++) {
        bool is_work = chains[i]->req.kind == IOS_WORK;
        bool keep = i >= n_held && chains[i]->req.kind != IOS_TIMEOUT &&
                    ((is_work && work_held) || sim_chance(s, s->cfg.delay_permille));
        if (keep && is_work)
            work_held = true;
        if (!keep) {
            run_chain(s, chains[i]);
            continue;
        }
        struct sim_op *last = chains[i];
        while (last->next != NULL)
            last = last->next;
        if (held_tail != NULL)
            held_tail->next = chains[i];
        else
            s->held = chains[i];
        held_tail = last;
    }
}

static uint64_t next_timer(const struct io_sim *s)
{
    uint64_t t = UINT64_MAX;
    for (const struct sim_op *o = s->timers; o != NULL; o = o->next)
        if (o->deadline < t)
            t = o->deadline;
    return t;
}

static void fire_timers(struct io_sim *s)
{
    for (struct sim_op **pp = &s->timers; *pp != NULL;) {
        struct sim_op *o = *pp;
        if (o->deadline <= s->now_ns) {
            *pp = o->next;
            complete(s, o, 0);
        } else {
            pp = &o->next;
        }
    }
}

int io_sim_run(struct io_sim *s, uint64_t timeout_ns)
{
    int ran = io_run_posted(s->io);
    start_queued(s);
    fire_timers(s);
    if (s->done_head == NULL && s->held == NULL && ran == 0 && timeout_ns > 0) {
        /* Nothing can complete without time passing: jump to the next timer (or the end of
         * the wait), as an idle machine would. */
        uint64_t t = next_timer(s);
        uint64_t until = timeout_ns == UINT64_MAX ? t : s->now_ns + timeout_ns;
        if (t < until)
            until = t;
        if (until != UINT64_MAX && until > s->now_ns)
            s->now_ns = until;
        fire_timers(s);
    }
    while (s->done_head != NULL && ran < SIM_RUN_MAX_CALLBACKS) {
        struct sim_op *o = s->done_head;
        s->done_head = o->next;
        if (s->done_head == NULL)
            s->done_tail = NULL;
        struct io_op *op = o->op;
        int res = o->result;
        free(o);
        io_deliver(s->io, op, res);
        ran++;
    }
    return ran;
}
