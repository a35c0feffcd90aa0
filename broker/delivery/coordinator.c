/*
 * coordinator: group coordination and committed offsets on a single broker (see
 * coordinator.h).
 *
 * A group lives in the table while it has members; coord_tick drops groups left empty (their
 * committed offsets stay in the offset table and in __consumer_offsets until
 * offsets.retention.minutes passes, see coordinator.h "Retention"). Memberships are not
 * persisted: after a restart members get UNKNOWN_MEMBER_ID and rejoin, as Kafka's do after a
 * coordinator moves.
 */
#include "broker/delivery/coordinator.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/meta/meta.h"
#include "broker/svc/bg.h"
#include "broker/svc/svc.h"
#include "common/arena.h"
#include "common/batch.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"
#include "storage/checkpoint.h"

#define COORD_REPLAY_BUF_BYTES (COORD_BATCH_MAX_BYTES + (1u << 20))
#define COORD_LIST_MAX 100000

struct coord_group {
    struct coord_group *next;
    struct group *g;
};

/* Snapshot state of one partition of __consumer_offsets. */
struct coord_part {
    uint64_t commits;          /* commit requests applied since the last snapshot began */
    int64_t first_dirty_ms;    /* when the first of them was applied */
    uint32_t gen;              /* the file (0, 1) the next snapshot goes to */
    int64_t prev_next;         /* the next offset of the newest durable snapshot (-1: none) */
    bool inflight;
    /* Replicated partitions (a cluster): this broker coordinates k's groups only while it leads
     * k; `served` once it loaded k's commits in its leadership `lead_gen`. */
    bool served;
    uint64_t lead_gen;
};

/* A snapshot on its way to the disk (bg job). */
struct coord_snap {
    struct bg_job job;         /* first */
    struct coord *c;
    struct io *io;
    struct partition *p;
    uint32_t k;
    int64_t next;
    uint64_t commits;
    char dir[PATH_MAX + 300];
    char name[64];
    uint8_t *img;
    size_t len;
    int rc;
};

struct coord {
    struct coord_config cfg;
    struct meta *meta;
    struct offsets_table *offsets;
    struct coord_group *buckets[COORD_GROUP_BUCKETS];
    uint32_t n_groups;
    uint64_t nonce;
    bool stopped;
    struct batch_builder *bb;
    struct coord_stats st;
    /* __consumer_offsets is created on the first commit, in the background; commits wait. */
    bool offsets_creating;
    struct meta_topic_spec offsets_spec;
    struct meta_proposal offsets_pr;
    struct coord_pending *waiting, *waiting_tail;
    /* Snapshots: per partition of __consumer_offsets (once it exists). */
    struct bg *bg;
    struct io *io;
    struct coord_part *parts;
    uint32_t n_parts;
    /* Retention: the next check, and tombstone batches still on their way. */
    int64_t next_expiry_ms;
    uint32_t expiry_inflight;
    struct coord_expiry *expiry_spent; /* answered, freed at the next tick (see done) */
};

/* Tombstones of expired commits of one partition of __consumer_offsets, on their way. */
struct coord_expiry {
    struct partition_append pa; /* first: the append callback gets &pa */
    struct coord *c;
    struct coord_expiry *next_spent;
    uint32_t k, n;
    size_t used;
    uint8_t keys[COORD_EXPIRE_BATCH_KEYS * (2 + OFFSETS_KEY_MAX)]; /* n x (u16 len | key) */
};

/* A request waiting for a join answer or a commit's append (in the request's arena). */
struct coord_pending {
    struct partition_append pa; /* first: the append callback gets &pa */
    struct svc_req *r;
    struct coord *c;
    struct coord_join *join;
    struct coord_sync *sync;
    struct coord_commit *commit;
    int64_t now_ms;
    struct coord_pending *next_waiting; /* waiting for __consumer_offsets to be created */
};

/* --- group table ------------------------------------------------------------------------------ */

static uint32_t coord_bucket(const char *id)
{
    uint32_t h = 2166136261u;
    for (const char *s = id; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % COORD_GROUP_BUCKETS;
}

static int coord_check_id(const char *id, char *msg, size_t cap)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > GROUP_ID_MAX) {
        snprintf(msg, cap, "group id must be 1-%d bytes, got %zu", GROUP_ID_MAX, n);
        return RL_E_INVALID_GROUP_ID;
    }
    for (size_t i = 0; i < n; i++) {
        if ((uint8_t)id[i] < 0x20 || id[i] == 0x7f) {
            snprintf(msg, cap, "group id contains a control byte at %zu", i);
            return RL_E_INVALID_GROUP_ID;
        }
    }
    return 0;
}

static struct group *coord_lookup(const struct coord *c, const char *id)
{
    for (struct coord_group *cg = c->buckets[coord_bucket(id)]; cg; cg = cg->next)
        if (!strcmp(group_id_of(cg->g), id))
            return cg->g;
    return NULL;
}

static int coord_partitions(void *arg, const char *topic)
{
    struct coord *c = arg;
    const struct meta_topic *t = meta_topic_find(c->meta, topic);
    return t ? (int)t->partition_count : RL_E_UNKNOWN_TOPIC;
}

static void coord_join_done(void *token, const struct group_join_result *res);
static void coord_sync_done(void *token, int error, const uint8_t *assignment, uint32_t len);

static struct group *coord_get_or_create(struct coord *c, const char *id, int *err)
{
    struct group *g = coord_lookup(c, id);
    if (g)
        return g;
    if (c->n_groups >= c->cfg.max_groups) {
        *err = RL_E_LIMIT;
        return NULL;
    }
    struct coord_group *cg = calloc(1, sizeof(*cg));
    g = cg ? group_create(id, &c->cfg.group, c->nonce++, coord_partitions, c, coord_join_done)
           : NULL;
    if (!g) {
        free(cg);
        *err = -ENOMEM;
        return NULL;
    }
    cg->g = g;
    group_set_sync_done(g, coord_sync_done);
    uint32_t b = coord_bucket(id);
    cg->next = c->buckets[b];
    c->buckets[b] = cg;
    c->n_groups++;
    return g;
}

/* --- replay of __consumer_offsets ------------------------------------------------------------- */

/* Damage at `offset` of an offsets partition (a read refused, or a batch that does not check):
 * the log contains it and tells the range, which is skipped; committed offsets in it are
 * lost (a later commit of the same key brings them back). Returns the offset to read on from,
 * or 0 with *rc set when the log cannot say. */
static uint64_t coord_replay_skip(struct coord *c, struct partition *p, uint64_t offset,
                                  uint64_t batch_end, int *rc)
{
    uint64_t from = offset, to = offset;
    int r = partition_report_damage(p, offset, &from, &to);
    if (r == RL_E_CORRUPT && to > offset) {
        RL_ERROR("%s-%u: committed offsets in [%llu, %llu) are damaged and skipped; groups "
                 "that committed there resume from an older commit (or their reset policy)",
                 partition_topic(p), partition_index(p), (unsigned long long)from,
                 (unsigned long long)to);
        c->st.replay_damaged++;
        return to;
    }
    if ((r == 0 || r == RL_E_FULL) && batch_end > offset) {
        /* Intact on disk (the damage was in our copy) or not checkable now: skip the batch. */
        char where[300];
        snprintf(where, sizeof(where), "%s-%u", partition_topic(p), partition_index(p));
        RL_CORRUPT(where, -1, (int64_t)offset, "commit batch does not decode; skipped");
        c->st.replay_damaged++;
        return batch_end;
    }
    *rc = r ? r : RL_E_CORRUPT;
    return 0;
}

/* Applies the records at or past `from` of the whole batches in buf. Returns the offset after
 * the last batch applied; stops at a batch that does not read and sets *bad to its offset and
 * *bad_end to the offset after it. */
static uint64_t coord_replay_batches(struct coord *c, struct batch_reader *rd, const uint8_t *buf,
                                     int len, const struct partition *p, uint64_t from,
                                     uint64_t *bad, uint64_t *bad_end)
{
    uint64_t next = from;
    for (int pos = 0; pos + RL_BATCH_HEADER_SIZE <= len;) {
        struct batch_header h;
        if (batch_header_decode(buf + pos, (size_t)(len - pos), &h) || h.batch_len == 0) {
            *bad = *bad_end = next;
            return next;
        }
        uint64_t end = h.base_offset + h.record_count;
        if (h.flags & BATCH_FLAG_CONTROL) {
            /* A replicated partition's Raft entries (leader no-ops, configurations): not
             * commits, and not damage either. */
            next = end;
            pos += (int)h.batch_len;
            continue;
        }
        int rc = batch_reader_open(rd, buf + pos, (size_t)(len - pos), &h);
        struct batch_record rec;
        for (uint32_t i = 0; rc >= 0 && i <= h.record_count; i++) {
            if ((rc = batch_reader_next(rd, &rec)) != 1)
                break;
            if ((uint64_t)rec.offset < from)
                continue; /* read again: the slice began inside this batch */
            c->st.replayed_records++;
            if (offsets_apply_record(c->offsets, rec.key, rec.key_len, rec.value,
                                     rec.value_len) != 0) {
                char where[300];
                snprintf(where, sizeof(where), "%s-%u", partition_topic(p),
                         partition_index(p));
                RL_CORRUPT(where, 0, rec.offset, "commit record does not decode; skipped");
            }
        }
        if (rc < 0) {
            *bad = h.base_offset;
            *bad_end = end;
            return next;
        }
        next = end;
        pos += (int)h.batch_len;
    }
    return next;
}

/* Replays one partition of __consumer_offsets from `off` to its visible end; damaged ranges
 * are reported and skipped, never a reason to refuse to start. */
static int coord_replay_partition(struct coord *c, struct partition *p, uint64_t off,
                                  uint8_t *buf, struct batch_reader *rd)
{
    uint64_t end = partition_visible_end(p);
    int rc = 0;
    for (uint32_t guard = 0; off < end && guard < (1u << 24); guard++) {
        int n = partition_read_copy(p, off, COORD_REPLAY_BUF_BYTES / 2, buf,
                                    COORD_REPLAY_BUF_BYTES);
        if (n == RL_E_CORRUPT) {
            off = coord_replay_skip(c, p, off, 0, &rc);
            if (rc)
                return rc;
            continue;
        }
        if (n <= 0)
            return n;
        uint64_t bad = UINT64_MAX, bad_end = 0;
        uint64_t next = coord_replay_batches(c, rd, buf, n, p, off, &bad, &bad_end);
        if (bad != UINT64_MAX)
            next = coord_replay_skip(c, p, bad, bad_end, &rc);
        if (rc)
            return rc;
        if (next <= off)
            return RL_E_CORRUPT; /* no progress: cannot happen with whole batches */
        off = next;
    }
    return 0;
}

/* Whether this broker holds partition k of __consumer_offsets and coordinates its groups: an
 * unreplicated partition it holds, or a replicated one it leads and has loaded (coord_serve). */
static bool coord_part_here(struct coord *c, uint32_t k)
{
    const struct meta_topic *t = meta_topic_find(c->meta, OFFSETS_TOPIC);
    if (!t || !c->parts || k >= c->n_parts || t->partition_count != c->n_parts || !t->parts[k])
        return false;
    struct partition *p = t->parts[k];
    return !partition_replicated(p) ||
           (c->parts[k].served && partition_leads(p) &&
            partition_lead_generation(p) == c->parts[k].lead_gen);
}

/* --- snapshots of committed offsets ----------------------------------------------------------- */

/* The snapshot state of every partition of __consumer_offsets; NULL while it does not exist
 * (or when out of memory: then no snapshot is taken). */
static struct coord_part *coord_parts(struct coord *c, const struct meta_topic **tp)
{
    const struct meta_topic *t = meta_topic_find(c->meta, OFFSETS_TOPIC);
    *tp = t;
    if (!t)
        return NULL;
    if (!c->parts) {
        c->parts = calloc(t->partition_count, sizeof(*c->parts));
        if (!c->parts)
            return NULL;
        c->n_parts = t->partition_count;
        for (uint32_t k = 0; k < c->n_parts; k++)
            c->parts[k].prev_next = -1;
    }
    return t->partition_count == c->n_parts ? c->parts : NULL;
}

static void coord_snap_name(char *out, size_t cap, uint32_t gen)
{
    snprintf(out, cap, "%s.%u", COORD_SNAPSHOT_NAME, gen);
}

/* Reads snapshot file `gen` of p into a malloc'ed payload. Returns its length, -ENOENT, or
 * another negative code (damage is reported by checkpoint_load). */
static int coord_snap_read(struct coord *c, struct partition *p, uint32_t gen, uint8_t **out)
{
    char name[64], path[PATH_MAX + 400];
    coord_snap_name(name, sizeof(name), gen);
    snprintf(path, sizeof(path), "%s/%s", partition_dir(p), name);
    uint64_t size = 0;
    int rc = io_path_size(c->io, path, &size);
    if (rc)
        return rc;
    if (size < CHECKPOINT_OVERHEAD || size - CHECKPOINT_OVERHEAD > CHECKPOINT_LARGE_MAX)
        return RL_CORRUPT(path, 0, -1, "offsets snapshot has an impossible size; ignored");
    uint8_t *buf = malloc((size_t)size);
    if (!buf)
        return -ENOMEM;
    rc = checkpoint_load(c->io, partition_dir(p), name, buf, (size_t)size);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    return rc;
}

/* Applies partition k's newest readable snapshot; returns the offset replay goes on from. */
static uint64_t coord_snap_load(struct coord *c, uint32_t k, struct partition *p)
{
    uint8_t *img[2] = {NULL, NULL};
    int len[2];
    int64_t next[2] = {-1, -1};
    for (uint32_t g = 0; g < 2; g++) {
        uint32_t count;
        len[g] = coord_snap_read(c, p, g, &img[g]);
        if (len[g] >= 0 &&
            offsets_snapshot_header(img[g], (size_t)len[g], &next[g], &count) != 0) {
            RL_CORRUPT(partition_dir(p), 0, -1, "offsets snapshot does not decode; ignored");
            next[g] = -1;
        }
    }
    uint32_t best = next[1] > next[0] ? 1 : 0;
    uint64_t from = partition_start_offset(p);
    if (next[best] >= 0) {
        int rc = offsets_snapshot_apply(c->offsets, img[best], (size_t)len[best]);
        if (rc)
            RL_ERROR("%s: offsets snapshot %u: %s; replaying the whole log", partition_dir(p),
                     best, rl_strerror(rc));
        else if ((uint64_t)next[best] > from)
            from = (uint64_t)next[best];
        if (c->parts) {
            c->parts[k].gen = best ^ 1;
            c->parts[k].prev_next = next[best];
        }
    }
    free(img[0]);
    free(img[1]);
    return from;
}

static void coord_snap_run(struct bg_job *j)
{
    struct coord_snap *sn = (struct coord_snap *)j;
    sn->rc = checkpoint_save(sn->io, sn->dir, sn->name, sn->img, sn->len,
                             CHECKPOINT_DURABLE | CHECKPOINT_LARGE);
}

/* The snapshot is durable (or failed): the log start may move up to the previous snapshot's
 * next offset (the older file stays readable for a newer one that turns out damaged). */
static void coord_snap_done(struct bg_job *j)
{
    struct coord_snap *sn = (struct coord_snap *)j;
    struct coord *c = sn->c;
    struct coord_part *cp = &c->parts[sn->k];
    cp->inflight = false;
    if (sn->rc) {
        RL_WARN("%s: cannot write the offsets snapshot: %s; retrying later", sn->dir,
                rl_strerror(sn->rc));
        cp->commits += sn->commits;
    } else {
        c->st.snapshots++;
        cp->gen ^= 1;
        int64_t keep_from = cp->prev_next;
        cp->prev_next = sn->next;
        /* A replicated partition keeps its log: a replica caught up from the leader's log
         * start would lack the snapshot that stands for what lies below it. */
        if (keep_from > (int64_t)partition_start_offset(sn->p) && !partition_gone(sn->p) &&
            !partition_replicated(sn->p)) {
            int rc = partition_advance_start(sn->p, (uint64_t)keep_from);
            if (rc < 0)
                RL_WARN("%s: cannot move the log start to %lld: %s", sn->dir,
                        (long long)keep_from, rl_strerror(rc));
        }
    }
    partition_unpin(sn->p);
    free(sn->img);
    free(sn);
}

static bool coord_snap_keep(void *arg, const char *group)
{
    const uint32_t *kn = arg;
    return offsets_partition_for(group, kn[1]) == kn[0];
}

/* Starts a snapshot of partition k: every commit applied so far is below the visible end
 * (commits are applied when committed) and none above it, so the table's commits of k's groups
 * are the log's as of that offset. */
static void coord_snap_start(struct coord *c, uint32_t k, struct partition *p, int64_t now_ms)
{
    struct coord_part *cp = &c->parts[k];
    struct coord_snap *sn = calloc(1, sizeof(*sn));
    uint32_t kn[2] = {k, c->n_parts};
    int64_t next = (int64_t)partition_visible_end(p);
    int rc = sn ? offsets_snapshot_encode(c->offsets, coord_snap_keep, kn, next,
                                          CHECKPOINT_LARGE_MAX, &sn->img, &sn->len)
                : -ENOMEM;
    cp->first_dirty_ms = now_ms; /* a failure retries one interval later */
    if (rc) {
        RL_WARN("%s: cannot encode the offsets snapshot: %s", partition_dir(p), rl_strerror(rc));
        free(sn);
        return;
    }
    sn->c = c;
    sn->io = c->io;
    sn->p = p;
    sn->k = k;
    sn->next = next;
    sn->commits = cp->commits;
    snprintf(sn->dir, sizeof(sn->dir), "%s", partition_dir(p));
    coord_snap_name(sn->name, sizeof(sn->name), cp->gen);
    sn->job.run = coord_snap_run;
    sn->job.done = coord_snap_done;
    cp->commits = 0;
    cp->inflight = true;
    partition_pin(p);
    if (bg_submit(c->bg, &sn->job)) {
        sn->rc = RL_E_FULL;
        coord_snap_done(&sn->job);
    }
}

/* From coord_tick: snapshots of the partitions that are due. */
static void coord_snap_tick(struct coord *c, int64_t now_ms)
{
    const struct meta_topic *t;
    struct coord_part *parts = c->bg ? coord_parts(c, &t) : NULL;
    for (uint32_t k = 0; parts && k < c->n_parts; k++) {
        struct coord_part *cp = &parts[k];
        /* Only a partition served here: another broker's table of it may be partial, and a
         * snapshot of it would stand for commits it does not hold. */
        if (cp->inflight || cp->commits == 0 || !coord_part_here(c, k) ||
            partition_gone(t->parts[k]))
            continue;
        if (cp->commits >= COORD_SNAPSHOT_EVERY_COMMITS ||
            now_ms - cp->first_dirty_ms >= COORD_SNAPSHOT_INTERVAL_MS)
            coord_snap_start(c, k, t->parts[k], now_ms);
    }
}

/* A commit to group_id was applied: counts toward its partition's next snapshot. */
static void coord_snap_count(struct coord *c, const char *group_id, int64_t now_ms)
{
    const struct meta_topic *t;
    struct coord_part *parts = coord_parts(c, &t);
    if (!parts)
        return;
    struct coord_part *cp = &parts[offsets_partition_for(group_id, c->n_parts)];
    if (cp->commits++ == 0)
        cp->first_dirty_ms = now_ms;
}

/* --- retention of committed offsets ---------------------------------------------------------- */

/* The tombstones are durable: the keys go from the table too (in the log's order, so the table
 * stays the log's latest record per key, which snapshots rely on). */
static void coord_expiry_done(struct partition_append *pa, int result)
{
    struct coord_expiry *e = (struct coord_expiry *)pa;
    struct coord *c = e->c;
    c->expiry_inflight--;
    if (result) {
        RL_WARN("%s-%u: cannot write tombstones of %u expired commits: %s; retried at the "
                "next check", OFFSETS_TOPIC, e->k, e->n, rl_strerror(result));
    } else {
        size_t pos = 0;
        for (uint32_t i = 0; i < e->n; i++) {
            uint16_t kl = (uint16_t)(e->keys[pos] | e->keys[pos + 1] << 8);
            offsets_apply_record(c->offsets, e->keys + pos + 2, kl, NULL, -1);
            pos += 2u + kl;
        }
        c->st.offsets_expired += e->n;
        if (c->parts && e->k < c->n_parts && c->parts[e->k].commits++ == 0)
            c->parts[e->k].first_dirty_ms = io_wall_ms(c->io);
        RL_INFO("%s-%u: %u committed offsets expired (offsets.retention.minutes after their "
                "group was last live)", OFFSETS_TOPIC, e->k, e->n);
    }
    /* Not freed here: partition_log_done reads the append after its done returns. */
    e->next_spent = c->expiry_spent;
    c->expiry_spent = e;
}

static void coord_expiry_free_spent(struct coord *c)
{
    for (uint32_t guard = 0; c->expiry_spent && guard < UINT32_MAX; guard++) {
        struct coord_expiry *e = c->expiry_spent;
        c->expiry_spent = e->next_spent;
        free(e);
    }
}

struct coord_expire_scan {
    struct coord *c;
    struct coord_expiry **batches; /* per partition of __consumer_offsets, made on demand */
    bool full;                     /* a batch filled up: check again soon */
};

static bool coord_expire_live(void *arg, const char *group)
{
    const struct coord_expire_scan *s = arg;
    return coord_lookup(s->c, group) != NULL;
}

static bool coord_expire_take(void *arg, const char *group, const char *topic,
                              uint32_t partition)
{
    struct coord_expire_scan *s = arg;
    uint32_t k = offsets_partition_for(group, s->c->n_parts);
    if (!coord_part_here(s->c, k))
        return false; /* another broker coordinates k's groups (or held them before) */
    struct coord_expiry *e = s->batches[k];
    if (!e && !(e = s->batches[k] = calloc(1, sizeof(*e))))
        return false;
    if (e->n >= COORD_EXPIRE_BATCH_KEYS) {
        s->full = true;
        return false;
    }
    int kl = offsets_encode_key(group, topic, partition, e->keys + e->used + 2, OFFSETS_KEY_MAX);
    if (kl <= 0)
        return false;
    e->keys[e->used] = (uint8_t)kl;
    e->keys[e->used + 1] = (uint8_t)(kl >> 8);
    e->used += 2u + (size_t)kl;
    e->n++;
    return true;
}

/* Appends partition k's tombstone batch; frees it when the append cannot start. */
static void coord_expire_append(struct coord *c, struct partition *p, struct coord_expiry *e,
                                uint32_t k, int64_t now_ms)
{
    batch_builder_reset(c->bb, -1, -1, -1);
    int rc = 0;
    for (size_t pos = 0, i = 0; i < e->n && rc == 0; i++) {
        size_t kl = (size_t)(e->keys[pos] | e->keys[pos + 1] << 8);
        struct batch_record_in rec = {.key = e->keys + pos + 2, .key_len = kl,
                                      .timestamp = now_ms};
        rc = batch_builder_add(c->bb, &rec);
        pos += 2 + kl;
    }
    const uint8_t *batch = NULL;
    int len = rc ? rc : batch_builder_finish(c->bb, &batch);
    e->c = c;
    e->k = k;
    e->pa = (struct partition_append){.batch = batch, .len = (uint32_t)len, .records = e->n,
                                      .ack = PARTITION_ACK_ALL, .done = coord_expiry_done,
                                      .ctx = e};
    if (len <= 0 || (rc = partition_append(p, &e->pa)) != 0) {
        RL_WARN("%s-%u: cannot append tombstones of %u expired commits: %s; retried at the "
                "next check", OFFSETS_TOPIC, k, e->n, rl_strerror(len <= 0 ? len : rc));
        free(e);
        return;
    }
    c->expiry_inflight++;
}

/* One retention check: commits of groups with members are kept (and marked active now); the
 * others, past retention, get tombstones. */
static void coord_expire(struct coord *c, int64_t now_ms)
{
    c->next_expiry_ms = now_ms + (int64_t)c->cfg.offsets_retention_check_ms;
    const struct meta_topic *t;
    struct coord_part *parts = coord_parts(c, &t);
    if (!parts)
        return;
    struct coord_expire_scan s = {.c = c, .batches = calloc(c->n_parts, sizeof(*s.batches))};
    if (!s.batches)
        return;
    offsets_expire_scan(c->offsets, now_ms, now_ms - c->cfg.offsets_retention_ms,
                        coord_expire_live, coord_expire_take, &s,
                        COORD_EXPIRE_BATCH_KEYS * c->n_parts);
    for (uint32_t k = 0; k < c->n_parts; k++) {
        if (!s.batches[k])
            continue;
        if (s.batches[k]->n == 0 || !coord_part_here(c, k) || partition_gone(t->parts[k]))
            free(s.batches[k]);
        else
            coord_expire_append(c, t->parts[k], s.batches[k], k, now_ms);
    }
    free(s.batches);
    if (s.full)
        c->next_expiry_ms = now_ms + COORD_EXPIRE_AGAIN_MS;
}

static int coord_replay(struct coord *c)
{
    const struct meta_topic *t;
    coord_parts(c, &t);
    if (!t)
        return 0;
    int rc = 0;
    uint8_t *buf = malloc(COORD_REPLAY_BUF_BYTES);
    struct batch_reader *rd = batch_reader_create(RL_BATCH_MAX_BYTES);
    if (!buf || !rd) {
        rc = -ENOMEM;
        goto out;
    }
    for (uint32_t k = 0; k < t->partition_count && rc == 0; k++) {
        struct partition *p = t->parts[k];
        if (!p || partition_replicated(p))
            continue; /* not here, or loaded when this broker leads it (coord_serve) */
        rc = coord_replay_partition(c, p, coord_snap_load(c, k, p), buf, rd);
    }
out:
    free(buf);
    batch_reader_destroy(rd);
    return rc;
}

int coord_create(const struct coord_config *cfg, struct meta *meta, struct bg *bg,
                 int64_t now_ms, struct coord **out, char *err, size_t err_cap)
{
    struct coord *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cfg = *cfg;
    c->meta = meta;
    c->bg = bg;
    c->io = meta_io(meta);
    c->nonce = (uint64_t)now_ms << 16;
    /* Live groups rejoin within their session timeout after a restart: none is judged before. */
    int64_t grace_ms = cfg->group.max_session_timeout_ms > 0 ? cfg->group.max_session_timeout_ms
                                                              : 0;
    c->next_expiry_ms = now_ms + (grace_ms > (int64_t)cfg->offsets_retention_check_ms
                                      ? grace_ms : (int64_t)cfg->offsets_retention_check_ms);
    c->offsets = offsets_table_create(COORD_MAX_OFFSETS);
    c->bb = batch_builder_create(COORD_BATCH_MAX_BYTES, BATCH_CODEC_NONE, 0);
    if (!c->offsets || !c->bb) {
        coord_destroy(c);
        return -ENOMEM;
    }
    int rc = coord_replay(c);
    if (rc) {
        snprintf(err, err_cap, "cannot replay committed offsets from %s: %s", OFFSETS_TOPIC,
                 rl_strerror(rc));
        coord_destroy(c);
        return rc;
    }
    if (offsets_count(c->offsets))
        RL_INFO("committed offsets: %u keys from %s (%llu records replayed after its "
                "snapshots)", offsets_count(c->offsets), OFFSETS_TOPIC,
                (unsigned long long)c->st.replayed_records);
    *out = c;
    return 0;
}

void coord_stop(struct coord *c)
{
    if (!c || c->stopped)
        return;
    c->stopped = true;
    if (c->bg)
        bg_drain(c->bg); /* a snapshot in flight touches c and its partition */
    for (uint32_t b = 0; b < COORD_GROUP_BUCKETS; b++) {
        while (c->buckets[b]) {
            struct coord_group *cg = c->buckets[b];
            c->buckets[b] = cg->next;
            group_destroy(cg->g); /* answers pending joins */
            free(cg);
        }
    }
    c->n_groups = 0;
}

void coord_destroy(struct coord *c)
{
    if (!c)
        return;
    coord_stop(c);
    coord_expiry_free_spent(c);
    free(c->parts);
    offsets_table_destroy(c->offsets);
    batch_builder_destroy(c->bb);
    free(c);
}

static void coord_serve_tick(struct coord *c);

void coord_tick(struct coord *c, int64_t now_ms)
{
    if (c->stopped)
        return;
    coord_serve_tick(c);
    coord_snap_tick(c, now_ms);
    coord_expiry_free_spent(c);
    if (c->cfg.offsets_retention_ms > 0 && c->expiry_inflight == 0 &&
        now_ms >= c->next_expiry_ms)
        coord_expire(c, now_ms);
    for (uint32_t b = 0; b < COORD_GROUP_BUCKETS; b++) {
        struct coord_group **pp = &c->buckets[b];
        while (*pp) {
            struct coord_group *cg = *pp;
            c->st.members_expired += group_tick(cg->g, now_ms);
            if (group_get_state(cg->g) == GROUP_EMPTY && group_member_count(cg->g) == 0) {
                /* Retention of its commits counts from now. */
                if (c->cfg.offsets_retention_ms > 0)
                    offsets_touch_group(c->offsets, group_id_of(cg->g), now_ms);
                *pp = cg->next;
                group_destroy(cg->g);
                free(cg);
                c->n_groups--;
            } else {
                pp = &cg->next;
            }
        }
    }
}

void coord_get_stats(const struct coord *c, struct coord_stats *out)
{
    *out = c->st;
    out->groups = c->n_groups;
    out->members = 0;
    for (uint32_t b = 0; b < COORD_GROUP_BUCKETS; b++)
        for (struct coord_group *cg = c->buckets[b]; cg; cg = cg->next)
            out->members += group_member_count(cg->g);
    out->committed_offsets = offsets_count(c->offsets);
}

/* --- coordination follows the leadership of __consumer_offsets (a cluster) --------------------
 *
 * In a cluster __consumer_offsets is replicated (placed by the controller like any topic) and
 * the coordinator of a group is the ready leader of the group's partition. A broker that
 * becomes that leader loads the partition's commits from its log (everything in a ready
 * leader's log is committed) on the first request for one of its groups; one that stops
 * leading drops the partition's groups and commits (coord_tick) and answers NOT_COORDINATOR
 * naming the leader it knows, so clients find the coordinator again. */

static void coord_offsets_create(struct coord *c);

/* Forgets partition k's groups (pending joins are answered COORDINATOR_NOT_AVAILABLE) and
 * commits: another broker coordinates them now, or they are about to be reloaded. */
static void coord_part_drop(struct coord *c, uint32_t k)
{
    for (uint32_t b = 0; b < COORD_GROUP_BUCKETS; b++) {
        for (struct coord_group **pp = &c->buckets[b]; *pp;) {
            struct coord_group *cg = *pp;
            if (offsets_partition_for(group_id_of(cg->g), c->n_parts) != k) {
                pp = &cg->next;
                continue;
            }
            *pp = cg->next;
            group_destroy(cg->g);
            free(cg);
            c->n_groups--;
        }
    }
    uint32_t n = offsets_count(c->offsets);
    const char **ids = n ? calloc(n, sizeof(*ids)) : NULL;
    uint32_t got = ids ? offsets_list_groups(c->offsets, ids, n) : 0, mine = 0;
    for (uint32_t i = 0; i < got; i++) /* copied first: deleting frees the table's strings */
        if (offsets_partition_for(ids[i], c->n_parts) == k && (ids[i] = strdup(ids[i])))
            ids[mine++] = ids[i];
    for (uint32_t i = 0; i < mine; i++) {
        offsets_delete_group(c->offsets, ids[i]);
        free((void *)ids[i]);
    }
    free(ids);
    c->parts[k].served = false;
    c->parts[k].commits = 0;
}

/* Loads partition k's commits from its (committed) log: its newest snapshot, then the rest. */
static int coord_part_load(struct coord *c, struct partition *p, uint32_t k)
{
    coord_part_drop(c, k);
    uint64_t before = c->st.replayed_records;
    uint8_t *buf = malloc(COORD_REPLAY_BUF_BYTES);
    struct batch_reader *rd = batch_reader_create(RL_BATCH_MAX_BYTES);
    int rc = buf && rd ? coord_replay_partition(c, p, coord_snap_load(c, k, p), buf, rd)
                       : -ENOMEM;
    free(buf);
    batch_reader_destroy(rd);
    if (rc == 0)
        RL_INFO("coordinating the groups of %s-%u (term %llu): %llu commit records loaded",
                OFFSETS_TOPIC, k, (unsigned long long)partition_term(p),
                (unsigned long long)(c->st.replayed_records - before));
    return rc;
}

/* The leader of partition k this broker knows: the replica's view, or the preferred replica
 * (the owner) where it holds no replica; 0 when none is known. */
static uint32_t coord_part_leader(const struct meta_topic *t, uint32_t k)
{
    if (t->parts[k])
        return partition_leader(t->parts[k]);
    uint32_t n = 0;
    const uint32_t *r = meta_partition_replicas(t, k, &n);
    return r && n ? r[0] : meta_partition_owner(t, k);
}

/* Whether this broker coordinates group_id now (loading its partition's commits when it just
 * became the leader). Returns 0, or NOT_COORDINATOR / COORDINATOR_NOT_AVAILABLE /
 * COORDINATOR_LOADING with msg. */
static int coord_serve(struct coord *c, const char *group_id, char *msg, size_t cap)
{
    if (meta_node_id(c->meta) == 0)
        return 0; /* a single broker coordinates every group */
    const struct meta_topic *t;
    struct coord_part *parts = coord_parts(c, &t);
    if (!t) {
        coord_offsets_create(c);
        snprintf(msg, cap, "%s is being created; find the coordinator again in a moment",
                 OFFSETS_TOPIC);
        return RL_E_COORDINATOR_NOT_AVAILABLE;
    }
    if (!parts)
        return -ENOMEM;
    uint32_t k = offsets_partition_for(group_id, c->n_parts);
    struct partition *p = t->parts[k];
    if (p && !partition_replicated(p))
        return 0; /* one replica, here (or an older cluster's copy on every broker) */
    if (!p || !partition_leads(p)) {
        uint32_t leader = coord_part_leader(t, k);
        if (p && leader == meta_node_id(c->meta)) {
            /* Elected, its first entry not yet committed: the coordinator is here in a moment.
             * Kafka clients retry COORDINATOR_LOAD_IN_PROGRESS where they are; librdkafka
             * does not retry an OffsetFetch refused with NOT_AVAILABLE, and its partition then
             * waits for the next rebalance. */
            snprintf(msg, cap, "node %u was just elected leader of %s-%u, which holds group "
                     "\"%s\", and is loading its commits: retry in a moment",
                     leader, OFFSETS_TOPIC, k, group_id);
            return RL_E_COORDINATOR_LOADING;
        }
        snprintf(msg, cap, "group \"%s\" is coordinated by the leader of %s-%u (%s%u), not by "
                 "this broker (node %u): find the coordinator again", group_id, OFFSETS_TOPIC,
                 k, leader ? "node " : "none known yet, election under way: ", leader,
                 meta_node_id(c->meta));
        return leader && leader != meta_node_id(c->meta) ? RL_E_NOT_COORDINATOR
                                                         : RL_E_COORDINATOR_NOT_AVAILABLE;
    }
    uint64_t gen = partition_lead_generation(p);
    if (parts[k].served && parts[k].lead_gen == gen)
        return 0;
    int rc = coord_part_load(c, p, k);
    if (rc) {
        snprintf(msg, cap, "cannot load the committed offsets of %s-%u: %s; retry",
                 OFFSETS_TOPIC, k, rl_strerror(rc));
        return RL_E_COORDINATOR_NOT_AVAILABLE;
    }
    parts[k].served = true;
    parts[k].lead_gen = gen;
    return 0;
}

/* From coord_tick: a partition this broker no longer leads (or led again since it loaded it)
 * stops being served here; its groups and commits are dropped. */
static void coord_serve_tick(struct coord *c)
{
    const struct meta_topic *t;
    struct coord_part *parts = meta_node_id(c->meta) ? coord_parts(c, &t) : NULL;
    for (uint32_t k = 0; parts && k < c->n_parts; k++) {
        if (!parts[k].served || coord_part_here(c, k))
            continue;
        RL_INFO("no longer coordinating the groups of %s-%u (leader now: node %u)",
                OFFSETS_TOPIC, k, t->parts[k] ? partition_leader(t->parts[k]) : 0);
        coord_part_drop(c, k);
    }
}

/* Checks that group requests can be served now and the group id is valid. */
static int coord_precheck(struct coord *c, const char *group_id, char *msg, size_t cap)
{
    if (!c || c->stopped) {
        snprintf(msg, cap, "the broker is shutting down; find the coordinator again and retry");
        return RL_E_COORDINATOR_NOT_AVAILABLE;
    }
    int rc = group_id ? coord_check_id(group_id, msg, cap) : 0;
    return rc || !group_id ? rc : coord_serve(c, group_id, msg, cap);
}

/* A message in the request's arena: msg when set, else the code's own sentence. */
static const char *coord_msg(struct svc_req *r, int rc, const char *msg)
{
    if (!rc)
        return NULL;
    const char *m = arena_strdup(r->arena, msg && msg[0] ? msg : rl_strerror(rc));
    return m ? m : rl_strerror(rc);
}

int coord_find(struct coord *c, const char *group_id, char *msg, size_t cap)
{
    int rc = coord_precheck(c, group_id, msg, cap);
    if (rc != RL_E_COORDINATOR_LOADING)
        return rc;
    msg[0] = 0; /* the coordinator, in a moment: its group requests are told to retry here */
    return 0;
}

uint32_t coord_leader_of(struct coord *c, const char *group_id)
{
    const struct meta_topic *t;
    if (!group_id || meta_node_id(c->meta) == 0 || !coord_parts(c, &t))
        return 0;
    return coord_part_leader(t, offsets_partition_for(group_id, c->n_parts));
}

/* --- JoinGroup -------------------------------------------------------------------------------- */

static void coord_answer(struct svc_req *r)
{
    struct coord_pending *cp = r->state;
    if (cp->join)
        cp->join->done(r, cp->join);
    else if (cp->sync)
        cp->sync->done(r, cp->sync);
    else
        cp->commit->done(r, cp->commit);
}

/* The deferred work of r is over: the loop answers. */
static void coord_pending_over(struct svc_req *r)
{
    RL_ASSERT(r->pending > 0);
    svc_req_op_ended(r);
}

/* The leader's answer of a client-side group: every member's metadata, copied into r's
 * arena (the group's copies change at the next join). */
static int coord_join_members(struct svc_req *r, const struct group *g, struct coord_join *j)
{
    uint32_t n = group_member_count(g);
    j->members = arena_calloc(r->arena, (n + 1) * sizeof(*j->members));
    if (!j->members)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const char *id;
        const uint8_t *md, *as;
        uint32_t md_len, as_len;
        group_member_protocol(g, i, &id, &md, &md_len, &as, &as_len);
        struct coord_join_member *m = &j->members[i];
        m->member_id = arena_strdup(r->arena, id);
        uint8_t *copy = arena_alloc(r->arena, md_len ? md_len : 1);
        if (!m->member_id || !copy)
            return -ENOMEM;
        if (md_len)
            memcpy(copy, md, md_len);
        m->metadata = copy;
        m->metadata_len = md_len;
    }
    j->n_members = n;
    return 0;
}

static void coord_join_done(void *token, const struct group_join_result *res)
{
    struct svc_req *r = token;
    struct coord_pending *cp = r->state;
    struct coord_join *j = cp->join;
    if (res->error) {
        j->rc = res->error;
        j->msg = coord_msg(r, res->error, NULL);
    } else {
        j->generation = res->generation;
        j->member_id_out = arena_strdup(r->arena, res->member_id);
        j->leader_id = arena_strdup(r->arena, res->leader_id);
        j->assignor = arena_strdup(r->arena, res->assignor ? res->assignor : "");
        j->member_count = res->member_count;
        bool leader = res->group && !strcmp(res->member_id, res->leader_id);
        if (!j->member_id_out || !j->leader_id || !j->assignor ||
            (leader && coord_join_members(r, res->group, j))) {
            j->member_id_out = j->leader_id = j->assignor = "";
            j->rc = RL_E_LIMIT;
            j->msg = "out of request memory";
        }
        cp->c->st.rebalances_completed++;
    }
    coord_pending_over(r);
}

static const char *coord_join_msg(int rc)
{
    switch (rc) {
    case RL_E_INVALID_SESSION_TIMEOUT:
        return "session_timeout_ms is outside [group.min.session.timeout.ms, "
               "group.max.session.timeout.ms]";
    case RL_E_INCONSISTENT_PROTOCOL:
        return "the member's assignors (range, roundrobin, cooperative-sticky) share none with the "
               "group's members";
    case RL_E_UNKNOWN_MEMBER_ID:
        return "unknown member id; join again with an empty member id";
    case RL_E_LIMIT:
        return "the group has its maximum of members (group.max.members) or the broker its "
               "maximum of groups (max.groups)";
    case RL_E_INVALID_ARGUMENT:
        return "invalid subscription: topics must be non-empty names (at most 256)";
    default:
        return NULL;
    }
}

/* Starts the join of j into group g. Returns 0 when pending (answered through
 * coord_join_done, maybe already), or the error at once. */
static int coord_join_start(struct coord *c, struct svc_req *r, struct coord_join *j,
                            struct group *g)
{
    struct group_member_spec spec = {
        .member_id = j->member_id,
        .client_id = j->client_id && j->client_id[0] ? j->client_id : svc_req_peer(r),
        .session_timeout_ms = (int32_t)j->session_timeout_ms,
        .rebalance_timeout_ms = j->rebalance_timeout_ms ? (int32_t)j->rebalance_timeout_ms
                                                        : (int32_t)j->session_timeout_ms,
        .topics = j->topics,
        .topic_count = (uint32_t)(j->n_topics > UINT32_MAX ? UINT32_MAX : j->n_topics),
        .assignors = j->assignors,
        .assignor_count = (uint32_t)j->n_assignors,
        .protocol_type = j->protocol_type,
        .protocols = j->protocols,
        .protocol_count = (uint32_t)(j->n_protocols > UINT32_MAX ? UINT32_MAX : j->n_protocols),
    };
    int64_t now_ms = io_wall_ms(r->io);
    r->pending++;
    int rc = group_join(g, &spec, now_ms, r);
    if (rc == 0)
        return 0;
    r->pending--;
    if (group_member_count(g) == 0 && group_get_state(g) == GROUP_EMPTY)
        coord_tick(c, now_ms); /* drop the group this failed join created */
    return rc;
}

void coord_join(struct coord *c, struct svc_req *r, struct coord_join *j)
{
    struct coord_pending *cp = arena_calloc(r->arena, sizeof(*cp));
    j->member_id_out = j->leader_id = j->assignor = "";
    j->members = NULL;
    j->n_members = 0;
    j->rc = 0;
    j->msg = NULL;
    if (!cp) {
        j->rc = RL_E_LIMIT;
        j->msg = "out of request memory";
        return j->done(r, j);
    }
    *cp = (struct coord_pending){.r = r, .c = c, .join = j};
    r->state = cp;
    r->finish = coord_answer;
    char msg[COORD_MSG_MAX] = "";
    int rc = coord_precheck(c, j->group_id, msg, sizeof(msg));
    if (rc == 0 && (j->session_timeout_ms > INT32_MAX || j->rebalance_timeout_ms > INT32_MAX))
        rc = RL_E_INVALID_SESSION_TIMEOUT;
    if (rc == 0 && strlen(j->member_id) > GROUP_MEMBER_ID_MAX)
        rc = RL_E_UNKNOWN_MEMBER_ID;
    struct group *g = rc ? NULL : coord_get_or_create(c, j->group_id, &rc);
    if (g && (rc = coord_join_start(c, r, j, g)) == 0)
        return; /* answered through coord_join_done */
    if (!msg[0] && coord_join_msg(rc))
        snprintf(msg, sizeof(msg), "%s", coord_join_msg(rc));
    j->rc = rc;
    j->msg = coord_msg(r, rc, msg);
    j->done(r, j);
}

/* --- SyncGroup / Heartbeat / LeaveGroup ------------------------------------------------------- */

/* Looks the group up for a member request; unknown groups answer UNKNOWN_MEMBER_ID (after a
 * restart memberships are gone and members must rejoin). Returns the group, or NULL with *rc
 * and msg set. */
static struct group *coord_member_group(struct coord *c, const char *group_id,
                                        const char *member_id, int *rc, char *msg, size_t cap)
{
    *rc = coord_precheck(c, group_id, msg, cap);
    struct group *g = *rc ? NULL : coord_lookup(c, group_id);
    if (!*rc && (!g || !member_id || !member_id[0])) {
        *rc = RL_E_UNKNOWN_MEMBER_ID;
        snprintf(msg, cap, "%s", !g ? "group has no members on this coordinator; join it "
                 "again with an empty member id" : "member id is empty; join first");
        g = NULL;
    }
    return g;
}

static void coord_member_msg(int rc, char *msg, size_t cap)
{
    const char *m = NULL;
    switch (rc) {
    case RL_E_UNKNOWN_MEMBER_ID: m = "unknown member (removed after its session timeout or a "
                                     "leave); join again with an empty member id"; break;
    case RL_E_ILLEGAL_GENERATION: m = "stale generation; join the group again"; break;
    case RL_E_REBALANCE_IN_PROGRESS: m = "the group is rebalancing; join again"; break;
    default: break;
    }
    snprintf(msg, cap, "%s", m ? m : "");
}

int coord_sync(struct coord *c, const char *group_id, const char *member_id, int32_t generation,
               int64_t now_ms, const struct group_tp **tps, uint32_t *n, char *msg, size_t cap)
{
    int rc;
    *n = 0;
    struct group *g = coord_member_group(c, group_id, member_id, &rc, msg, cap);
    if (!g)
        return rc;
    rc = group_sync(g, member_id, generation, now_ms, tps, n);
    coord_member_msg(rc, msg, cap);
    return rc;
}

static void coord_sync_done(void *token, int error, const uint8_t *assignment, uint32_t len)
{
    struct svc_req *r = token;
    struct coord_pending *cp = r->state;
    struct coord_sync *s = cp->sync;
    s->rc = error;
    if (error) {
        char msg[COORD_MSG_MAX];
        coord_member_msg(error, msg, sizeof(msg));
        s->msg = coord_msg(r, error, msg);
    } else {
        uint8_t *copy = arena_alloc(r->arena, len ? len : 1);
        if (!copy) {
            s->rc = RL_E_LIMIT;
            s->msg = "out of request memory";
        } else {
            if (len)
                memcpy(copy, assignment, len);
            s->assignment = copy;
            s->assignment_len = len;
        }
    }
    coord_pending_over(r);
}

void coord_sync_client(struct coord *c, struct svc_req *r, struct coord_sync *s)
{
    struct coord_pending *cp = arena_calloc(r->arena, sizeof(*cp));
    s->rc = 0;
    s->msg = NULL;
    s->assignment = NULL;
    s->assignment_len = 0;
    if (!cp) {
        s->rc = RL_E_LIMIT;
        s->msg = "out of request memory";
        return s->done(r, s);
    }
    *cp = (struct coord_pending){.r = r, .c = c, .sync = s};
    r->state = cp;
    r->finish = coord_answer;
    char msg[COORD_MSG_MAX] = "";
    int rc;
    struct group *g = coord_member_group(c, s->group_id, s->member_id, &rc, msg, sizeof(msg));
    if (g) {
        r->pending++;
        rc = group_sync_client(g, s->member_id, s->generation, io_wall_ms(r->io),
                               s->assignments, (uint32_t)s->n_assignments, r);
        if (rc == 0)
            return; /* answered through coord_sync_done, maybe already */
        r->pending--;
        coord_member_msg(rc, msg, sizeof(msg));
        if (rc == RL_E_INCONSISTENT_PROTOCOL)
            snprintf(msg, sizeof(msg), "the group assigns on the coordinator (native "
                     "clients); a Kafka client cannot sync in it");
    }
    s->rc = rc;
    s->msg = coord_msg(r, rc, msg);
    s->done(r, s);
}

int coord_heartbeat(struct coord *c, const char *group_id, const char *member_id,
                    int32_t generation, int64_t now_ms, char *msg, size_t cap)
{
    int rc;
    struct group *g = coord_member_group(c, group_id, member_id, &rc, msg, cap);
    if (!g)
        return rc;
    rc = group_heartbeat(g, member_id, generation, now_ms);
    coord_member_msg(rc, msg, cap);
    return rc;
}

int coord_leave(struct coord *c, const char *group_id, const char *member_id, int64_t now_ms,
                char *msg, size_t cap)
{
    int rc;
    struct group *g = coord_member_group(c, group_id, member_id, &rc, msg, cap);
    if (!g)
        return rc;
    rc = group_leave(g, member_id, now_ms);
    coord_member_msg(rc, msg, cap);
    return rc;
}

/* --- OffsetCommit ----------------------------------------------------------------------------- */

static void coord_commit_done(struct partition_append *pa, int result)
{
    struct coord_pending *cp = (struct coord_pending *)pa;
    struct coord *c = cp->c;
    struct coord_commit *cm = cp->commit;
    if (result == RL_E_NOT_LEADER)
        result = RL_E_NOT_COORDINATOR; /* leadership moved: so did the coordinator */
    for (size_t i = 0; i < cm->n_items; i++) {
        struct coord_commit_item *it = &cm->items[i];
        if (it->rc)
            continue;
        int rc = result;
        if (rc == 0) {
            struct offsets_commit oc = {.offset = it->offset, .commit_ms = cp->now_ms,
                                        .metadata = it->metadata};
            rc = offsets_put(c->offsets, cm->group_id, it->topic, it->partition, &oc);
        }
        if (rc) {
            it->rc = rc;
            it->msg = rl_strerror(rc);
            c->st.commit_errors++;
        }
    }
    c->st.commits++;
    if (result == 0)
        coord_snap_count(c, cm->group_id, cp->now_ms);
    coord_pending_over(cp->r);
}

/* Validates one item of a commit; returns 0 or its error (message in the item). */
static int coord_commit_check(struct coord *c, struct svc_req *r, struct coord_commit_item *it)
{
    int rc;
    const char *why = NULL;
    /* A partition another broker owns (cluster placement) exists all the same. */
    if (!meta_partition(c->meta, it->topic, it->partition, &rc) && rc != RL_E_NOT_LEADER)
        why = rc == RL_E_UNKNOWN_TOPIC ? "topic does not exist" : "partition does not exist";
    else if (it->offset < 0 && (rc = RL_E_INVALID_REQUEST))
        why = "offset must be >= 0 (the next offset to consume)";
    else if (strlen(it->metadata) > OFFSETS_METADATA_MAX && (rc = RL_E_INVALID_REQUEST))
        why = "metadata is longer than 1024 bytes";
    if (why) {
        it->rc = rc;
        it->msg = arena_printf(r->arena, "%s-%u: %s", it->topic, it->partition, why);
    }
    return why ? rc : 0;
}

/* Encodes the valid items as one batch in the coordinator's builder. Returns its length or an
 * error. */
static int coord_commit_batch(struct coord *c, const struct coord_commit *cm, int64_t now_ms,
                              uint32_t *records, const uint8_t **out)
{
    uint8_t key[OFFSETS_KEY_MAX], value[OFFSETS_VALUE_MAX];
    batch_builder_reset(c->bb, -1, -1, -1);
    *records = 0;
    for (size_t i = 0; i < cm->n_items; i++) {
        const struct coord_commit_item *it = &cm->items[i];
        if (it->rc)
            continue;
        struct offsets_commit oc = {.offset = it->offset, .commit_ms = now_ms,
                                    .metadata = it->metadata};
        int kl = offsets_encode_key(cm->group_id, it->topic, it->partition, key, sizeof(key));
        int vl = offsets_encode_value(&oc, value, sizeof(value));
        if (kl < 0 || vl < 0)
            return kl < 0 ? kl : vl;
        struct batch_record_in rec = {.key = key, .key_len = (size_t)kl, .value = value,
                                      .value_len = (size_t)vl, .timestamp = now_ms};
        int rc = batch_builder_add(c->bb, &rec);
        if (rc)
            return rc;
        (*records)++;
    }
    return batch_builder_finish(c->bb, out);
}

/* May this commit go ahead for its group? 0, or the error with msg. */
static int coord_commit_group_check(struct coord *c, const struct coord_commit *cm, char *msg,
                                    size_t cap)
{
    int rc = coord_precheck(c, cm->group_id, msg, cap);
    if (rc)
        return rc;
    const struct group *g = coord_lookup(c, cm->group_id);
    if (!g) {
        if (cm->member_id[0] || cm->generation != -1) {
            snprintf(msg, cap, "group %s has no members on this coordinator; a member commit "
                     "needs a current membership (join again), a standalone commit uses an "
                     "empty member id and generation -1", cm->group_id);
            return RL_E_UNKNOWN_MEMBER_ID;
        }
        return 0;
    }
    rc = group_check_commit(g, cm->member_id, cm->generation);
    if (rc)
        snprintf(msg, cap, "%s", rc == RL_E_ILLEGAL_GENERATION
                 ? "commit for a stale generation; join the group again"
                 : "unknown member (or a standalone commit to a group with members); join "
                   "again");
    return rc;
}

/* Fails every valid item of a commit that never reached the log. */
static void coord_commit_fail(struct coord_pending *cp, int rc, const char *msg)
{
    struct coord_commit *cm = cp->commit;
    const char *m = coord_msg(cp->r, rc, msg);
    for (size_t i = 0; i < cm->n_items; i++) {
        if (cm->items[i].rc)
            continue;
        cm->items[i].rc = rc;
        cm->items[i].msg = m;
    }
    cp->c->st.commit_errors++;
}

/* Appends the commit's batch to the group's partition of __consumer_offsets (which exists).
 * Returns 0 when the append is under way (r->pending counts it), else the error. */
static int coord_commit_append(struct coord_pending *cp, char *msg, size_t cap)
{
    struct coord *c = cp->c;
    const struct meta_topic *t = meta_topic_find(c->meta, OFFSETS_TOPIC);
    if (!t) { /* created at another broker's request, not yet known here */
        snprintf(msg, cap, "%s is being created; retry in a moment", OFFSETS_TOPIC);
        return RL_E_COORDINATOR_NOT_AVAILABLE;
    }
    uint32_t k = offsets_partition_for(cp->commit->group_id, t->partition_count);
    struct partition *p = t->parts[k];
    if (!p) {
        snprintf(msg, cap, "%s-%u, which holds group \"%s\", is on node %u, not on this broker: "
                 "find the coordinator again", OFFSETS_TOPIC, k, cp->commit->group_id,
                 coord_part_leader(t, k));
        return RL_E_NOT_COORDINATOR;
    }
    const uint8_t *batch = NULL;
    uint32_t records = 0;
    cp->now_ms = io_wall_ms(cp->r->io);
    int len = coord_commit_batch(c, cp->commit, cp->now_ms, &records, &batch);
    if (len <= 0)
        return len ? len : RL_E_INTERNAL;
    cp->pa.batch = batch;
    cp->pa.len = (uint32_t)len;
    cp->pa.records = records;
    cp->pa.ack = PARTITION_ACK_ALL;
    cp->pa.done = coord_commit_done;
    cp->pa.ctx = cp;
    int rc = partition_append(p, &cp->pa);
    if (rc == 0)
        cp->r->pending++;
    return rc == RL_E_NOT_LEADER ? RL_E_NOT_COORDINATOR : rc;
}

/* __consumer_offsets now exists (or could not be created): the commits that waited for it go
 * on. Runs from the loop (the proposal's completion). */
static void coord_offsets_created(struct meta_proposal *pr)
{
    struct coord *c = pr->ctx;
    c->offsets_creating = false;
    if (pr->rc == 0)
        RL_INFO("created %s with %u partitions", OFFSETS_TOPIC, c->cfg.offsets_topic_partitions);
    else if (pr->rc == RL_E_TOPIC_EXISTS) /* another broker's request for it came first */
        RL_INFO("%s exists: created at another broker's request", OFFSETS_TOPIC);
    else
        RL_WARN("cannot create %s: %s; groups have no coordinator until it exists (the next "
                "FindCoordinator tries again)", OFFSETS_TOPIC, pr->msg);
    for (uint32_t guard = 0; c->waiting && guard < 10000000; guard++) {
        struct coord_pending *cp = c->waiting;
        c->waiting = cp->next_waiting;
        char msg[sizeof(pr->msg) + 64] = "";
        int rc = pr->rc == RL_E_TOPIC_EXISTS ? 0 : pr->rc;
        if (rc)
            snprintf(msg, sizeof(msg), "cannot create %s: %s", OFFSETS_TOPIC, pr->msg);
        else
            rc = coord_commit_append(cp, msg, sizeof(msg));
        if (rc)
            coord_commit_fail(cp, rc, msg);
        coord_pending_over(cp->r); /* the wait is over; an append counts on its own */
    }
    c->waiting_tail = NULL;
}

/* Parks a commit until __consumer_offsets exists, starting its creation (in the background:
 * a metadata record and one log per partition) if nobody has. */
static void coord_commit_wait_topic(struct coord_pending *cp)
{
    struct coord *c = cp->c;
    cp->next_waiting = NULL;
    if (c->waiting_tail)
        c->waiting_tail->next_waiting = cp;
    else
        c->waiting = cp;
    c->waiting_tail = cp;
    cp->r->pending++;
    coord_offsets_create(c);
}

/* Starts creating __consumer_offsets unless under way. In a cluster the controller places it
 * like any topic, with offsets.topic.replication.factor replicas (0: min(3, live brokers)). */
static void coord_offsets_create(struct coord *c)
{
    if (c->offsets_creating)
        return;
    c->offsets_creating = true;
    c->offsets_spec = (struct meta_topic_spec){
        .name = OFFSETS_TOPIC, .partitions = (int32_t)c->cfg.offsets_topic_partitions,
        .replication_factor = (int32_t)c->cfg.offsets_topic_replication_factor};
    c->offsets_pr.done = coord_offsets_created;
    c->offsets_pr.ctx = c;
    meta_propose_create(c->meta, &c->offsets_pr, &c->offsets_spec);
}

void coord_commit(struct coord *c, struct svc_req *r, struct coord_commit *cm)
{
    struct coord_pending *cp = arena_calloc(r->arena, sizeof(*cp));
    char msg[COORD_MSG_MAX] = "";
    cm->rc = 0;
    cm->msg = NULL;
    for (size_t i = 0; i < cm->n_items; i++) {
        cm->items[i].rc = 0;
        cm->items[i].msg = NULL;
    }
    if (!cp) {
        cm->rc = RL_E_LIMIT;
        cm->msg = "out of request memory";
        return cm->done(r, cm);
    }
    *cp = (struct coord_pending){.r = r, .c = c, .commit = cm};
    r->state = cp;
    r->finish = coord_answer;
    int grc = coord_commit_group_check(c, cm, msg, sizeof(msg));
    size_t valid = 0;
    const char *gmsg = grc ? coord_msg(r, grc, msg) : NULL;
    for (size_t i = 0; i < cm->n_items; i++) {
        if (grc) {
            cm->items[i].rc = grc;
            cm->items[i].msg = gmsg;
        } else if (coord_commit_check(c, r, &cm->items[i]) == 0) {
            valid++;
        }
    }
    if (grc == RL_E_INVALID_GROUP_ID || grc == RL_E_COORDINATOR_NOT_AVAILABLE ||
        grc == RL_E_NOT_COORDINATOR || grc == RL_E_COORDINATOR_LOADING) {
        cm->rc = grc;
        cm->msg = gmsg;
    }
    if (valid == 0)
        return cm->done(r, cm);
    if (!meta_topic_find(c->meta, OFFSETS_TOPIC))
        return coord_commit_wait_topic(cp); /* answered once created and durable */
    msg[0] = 0;
    int rc = coord_commit_append(cp, msg, sizeof(msg));
    if (rc == 0)
        return; /* answered once durable */
    coord_commit_fail(cp, rc, msg);
    cm->done(r, cm);
}

/* --- OffsetFetch ------------------------------------------------------------------------------ */

int coord_offsets_check(struct coord *c, const char *group_id, char *msg, size_t cap)
{
    return coord_precheck(c, group_id, msg, cap);
}

int coord_offset_get(const struct coord *c, const char *group_id, const char *topic,
                     uint32_t partition, struct offsets_commit *out)
{
    return offsets_get(c->offsets, group_id, topic, partition, out);
}

void coord_offsets_visit(const struct coord *c, const char *group_id, offsets_visit_fn fn,
                         void *arg)
{
    offsets_visit_group(c->offsets, group_id, fn, arg);
}

/* --- ListGroups / DescribeGroups -------------------------------------------------------------- */

int coord_list_groups(struct coord *c, struct svc_req *r, struct coord_listing **out,
                      size_t *n_out, char *msg, size_t cap)
{
    *out = NULL;
    *n_out = 0;
    int rc = coord_precheck(c, NULL, msg, cap);
    if (rc)
        return rc;
    uint32_t max = offsets_count(c->offsets) < COORD_LIST_MAX ? offsets_count(c->offsets)
                                                              : COORD_LIST_MAX;
    const char **committed = arena_calloc(r->arena, (max + 1) * sizeof(*committed));
    struct coord_listing *gl = arena_calloc(r->arena, (c->n_groups + max + 1) * sizeof(*gl));
    if (!committed || !gl)
        return -ENOMEM;
    uint32_t n_committed = offsets_list_groups(c->offsets, committed, max);
    size_t n = 0;
    for (uint32_t b = 0; b < COORD_GROUP_BUCKETS; b++)
        for (struct coord_group *cg = c->buckets[b]; cg; cg = cg->next)
            gl[n++] = (struct coord_listing){group_id_of(cg->g), group_state_label(cg->g),
                                             group_protocol_type(cg->g)};
    for (uint32_t i = 0; i < n_committed; i++)
        if (!coord_lookup(c, committed[i]))
            gl[n++] = (struct coord_listing){committed[i], group_state_name(GROUP_EMPTY), ""};
    *out = gl;
    *n_out = n;
    return 0;
}

static void coord_count_visit(void *arg, const char *topic, uint32_t partition,
                              const struct offsets_commit *oc)
{
    (void)topic;
    (void)partition;
    (void)oc;
    (*(uint32_t *)arg)++;
}

/* The members of a live group, copied into r's arena. */
static uint32_t coord_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The partitions in a Kafka "consumer" protocol assignment (version i16, then [topic: i16
 * length + bytes, [partition i32]], then user data), so `ringlog group describe` shows what a
 * Kafka member owns. Bytes that do not parse leave the list empty: they are the clients' own
 * and only shown here. Returns 0 or -ENOMEM. */
static int coord_consumer_assignment(struct svc_req *r, const uint8_t *b, uint32_t len,
                                     struct coord_member_desc *md)
{
    if (len < 6)
        return 0;
    uint32_t pos = 2, n_topics = coord_be32(b + pos), total = 0;
    pos += 4;
    /* First pass: count (and bound) the partitions. */
    uint32_t p = pos;
    for (uint32_t t = 0; t < n_topics; t++) {
        if (len - p < 2)
            return 0;
        uint32_t tl = (uint32_t)b[p] << 8 | b[p + 1];
        if (tl > len - p - 2 || len - p - 2 - tl < 4)
            return 0;
        p += 2 + tl;
        uint32_t np = coord_be32(b + p);
        p += 4;
        if (np > (len - p) / 4)
            return 0;
        p += 4 * np;
        total += np;
    }
    struct group_tp *tps = arena_calloc(r->arena, (total + 1) * sizeof(*tps));
    if (!tps)
        return -ENOMEM;
    uint32_t k = 0;
    for (uint32_t t = 0; t < n_topics; t++) {
        uint32_t tl = (uint32_t)b[pos] << 8 | b[pos + 1];
        char *topic = arena_alloc(r->arena, tl + 1);
        if (!topic)
            return -ENOMEM;
        memcpy(topic, b + pos + 2, tl);
        topic[tl] = 0;
        pos += 2 + tl;
        uint32_t np = coord_be32(b + pos);
        pos += 4;
        for (uint32_t i = 0; i < np; i++, pos += 4)
            tps[k++] = (struct group_tp){.topic = topic, .partition = coord_be32(b + pos)};
    }
    md->assignment = tps;
    md->n_assignment = total;
    return 0;
}

static int coord_describe_members(struct svc_req *r, const struct group *g,
                                  struct coord_group_desc *d)
{
    uint32_t n = group_member_count(g);
    d->members = arena_calloc(r->arena, (n + 1) * sizeof(*d->members));
    if (!d->members)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const char *mid, *cid;
        const struct group_tp *tps;
        uint32_t count;
        struct coord_member_desc *md = &d->members[i];
        group_member_at(g, i, &mid, &cid, &tps, &count);
        md->member_id = arena_strdup(r->arena, mid);
        md->client_id = arena_strdup(r->arena, cid ? cid : "");
        struct group_tp *copy = arena_calloc(r->arena, (count + 1) * sizeof(*copy));
        if (!md->member_id || !md->client_id || !copy)
            return -ENOMEM;
        for (uint32_t k = 0; k < count; k++) {
            copy[k].topic = arena_strdup(r->arena, tps[k].topic);
            copy[k].partition = tps[k].partition;
            if (!copy[k].topic)
                return -ENOMEM;
        }
        md->assignment = copy;
        md->n_assignment = count;
        const uint8_t *meta, *as;
        uint32_t meta_len, as_len;
        if (group_member_protocol(g, i, &mid, &meta, &meta_len, &as, &as_len) == 0) {
            uint8_t *mc = arena_alloc(r->arena, meta_len + 1);
            uint8_t *ac = arena_alloc(r->arena, as_len + 1);
            if (!mc || !ac)
                return -ENOMEM;
            if (meta_len)
                memcpy(mc, meta, meta_len);
            if (as_len)
                memcpy(ac, as, as_len);
            md->metadata = mc;
            md->metadata_len = meta_len;
            md->assigned = ac;
            md->assigned_len = as_len;
            if (!strcmp(group_protocol_type(g), "consumer") &&
                coord_consumer_assignment(r, ac, as_len, md))
                return -ENOMEM;
        }
    }
    d->n_members = n;
    return 0;
}

int coord_describe(struct coord *c, struct svc_req *r, const char *group_id,
                   struct coord_group_desc *d)
{
    char msg[COORD_MSG_MAX] = "";
    memset(d, 0, sizeof(*d));
    int rc = coord_precheck(c, group_id, msg, sizeof(msg));
    const struct group *g = rc ? NULL : coord_lookup(c, group_id);
    uint32_t commits = 0;
    if (rc == 0 && !g)
        offsets_visit_group(c->offsets, group_id, coord_count_visit, &commits);
    if (rc == 0 && !g && commits == 0) {
        rc = RL_E_GROUP_ID_NOT_FOUND;
        snprintf(msg, sizeof(msg), "group %s has no members and no committed offsets",
                 group_id);
    }
    d->state = g ? group_state_label(g) : group_state_name(GROUP_EMPTY);
    d->assignor = "";
    d->protocol_type = g ? group_protocol_type(g) : "";
    d->rc = rc;
    if (rc || !g) {
        d->msg = rc ? arena_strdup(r->arena, msg) : NULL;
        return 0;
    }
    d->generation = group_generation(g);
    const char *assignor = group_assignor_of(g);
    d->assignor = assignor ? assignor : "";
    return coord_describe_members(r, g, d);
}
