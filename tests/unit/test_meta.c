/*
 * test_meta: topics and metadata as a state machine (broker/meta/meta.h) on a real data
 * directory: a proposal is validated, recorded (metadata.log) and applied, and a create is
 * answered once its partitions exist; reopening replays the same records into the same table;
 * applying a record twice changes nothing; a create whose partitions cannot be made is rolled
 * back (and stays rolled back after a restart); producer-id blocks only grow; a metadata.log
 * holding many records no longer needed is compacted at open, to the same table
 * (compacted_at_open); moves of replicas are encoded, validated and applied (reassign_records).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/meta/meta.h"
#include "broker/partition/partition.h"
#include "broker/svc/bg.h"
#include "common/err.h"
#include "io/io.h"
#include "proto/ringlog.pb-c.h"
#include "storage/plog.h"

#define MT_DEADLINE_NS (30ull * 1000000000ull)

static char dir[256];
static struct io *io;
static struct storage *st;
static struct bg *bg;
static struct partition_env *env;
static struct meta *m;

static int mt_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static uint32_t compact_min; /* log_compact_min_dropped of the next open */

static void mt_open(void)
{
    struct meta_limits lim = {.max_topics = 10, .max_partitions = 50,
                              .log_compact_min_dropped = compact_min};
    config_topic_default(&lim.topic_defaults);
    snprintf(lim.data_dir, sizeof(lim.data_dir), "%s", dir);
    char err[512];
    int rc = meta_open(&lim, env, bg, &m, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s", err);
}

static void setup(void)
{
    const char *base = getenv("RINGLOG_TEST_DIR") ? getenv("RINGLOG_TEST_DIR") : "/var/tmp";
    snprintf(dir, sizeof(dir), "%s/rl_meta_XXXXXX", base);
    cr_assert_not_null(mkdtemp(dir));
    int rc;
    io = io_create(256, &rc);
    cr_assert_not_null(io);
    cr_assert_eq(storage_create(io, 64, &st), 0);
    cr_assert_eq(bg_create(io, "test", &bg), 0);
    struct partition_env_hooks hooks = {0};
    cr_assert_eq(partition_env_create(io, st, &hooks, &env), 0);
    mt_open();
}

static void teardown(void)
{
    meta_close(m);
    bg_destroy(bg);
    partition_env_destroy(env);
    storage_destroy(st);
    io_destroy(io);
    nftw(dir, mt_rm, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(meta, .init = setup, .fini = teardown, .timeout = 60);

static void mt_reopen(void)
{
    meta_close(m);
    mt_open();
}

struct mt_prop {
    struct meta_proposal pr;
    bool done;
};

static void mt_done(struct meta_proposal *pr)
{
    ((struct mt_prop *)pr)->done = true;
}

/* Runs the loop until the proposal is done; returns its code. */
static int mt_run(struct mt_prop *p)
{
    uint64_t until = io_now_ns(io) + MT_DEADLINE_NS;
    while (!p->done && io_now_ns(io) < until) {
        meta_process(m);
        io_run(io, 1000000ull);
        bg_reap(bg);
        partition_env_process(env);
    }
    cr_assert(p->done, "proposal never completed");
    return p->pr.rc;
}

static int mt_create(const char *name, int32_t partitions, const char *key, const char *value)
{
    struct meta_config cfg = {key, value};
    struct meta_topic_spec spec = {.name = name, .partitions = partitions,
                                   .n_configs = key ? 1 : 0, .configs = &cfg};
    struct mt_prop p = {.pr = {.done = mt_done}};
    meta_propose_create(m, &p.pr, &spec);
    cr_assert_not(p.done, "done ran inside the proposal");
    return mt_run(&p);
}

static int mt_delete(const char *name)
{
    struct mt_prop p = {.pr = {.done = mt_done}};
    meta_propose_delete(m, &p.pr, name);
    return mt_run(&p);
}

/* A create is recorded, applied, and answered once its partitions exist; the table survives a
 * reopen with the same content, and validation sees what was applied before. */
Test(meta, create_apply_replay)
{
    cr_assert_null(meta_topic_find(m, "orders"));
    cr_assert_eq(mt_create("orders", 3, "retention.ms", "1000"), 0);
    const struct meta_topic *t = meta_topic_find(m, "orders");
    cr_assert_not_null(t);
    cr_assert_eq(t->partition_count, 3);
    for (uint32_t i = 0; i < 3; i++)
        cr_assert_not_null(t->parts[i]);
    cr_assert_str_eq(t->cfg.values[CONFIG_RETENTION_MS], "1000");
    cr_assert_eq(mt_create("orders", 1, NULL, NULL), RL_E_TOPIC_EXISTS);
    cr_assert_eq(mt_create("bad name", 1, NULL, NULL), RL_E_INVALID_TOPIC_NAME);
    cr_assert_eq(mt_create("huge", 48, NULL, NULL), RL_E_LIMIT, "max.partitions not checked");
    mt_reopen();
    t = meta_topic_find(m, "orders");
    cr_assert_not_null(t, "the topic did not survive a reopen");
    cr_assert_eq(t->partition_count, 3);
    cr_assert_str_eq(t->cfg.values[CONFIG_RETENTION_MS], "1000");
    cr_assert(t->cfg.set_mask & (1u << CONFIG_RETENTION_MS));
    cr_assert_eq(meta_topic_count(m), 1);
}

/* Applying a committed record twice (a replayed log may hold both) changes nothing. */
Test(meta, apply_twice)
{
    struct meta_topic_spec spec = {.name = "twice", .partitions = 1};
    struct meta_record rec = {.kind = META_RECORD_CREATE_TOPIC, .spec = spec};
    cr_assert_eq(mt_create("twice", 2, NULL, NULL), 0);
    cr_assert_eq(meta_apply(m, &rec), 0);
    cr_assert_eq(meta_topic_find(m, "twice")->partition_count, 2, "a second create applied");
    struct meta_record del = {.kind = META_RECORD_DELETE_TOPIC, .name = "nothing"};
    cr_assert_eq(meta_apply(m, &del), 0);
    cr_assert_eq(meta_topic_count(m), 1);
}

/* A deleted topic leaves the table at once, is reaped once unpinned, stays deleted after a
 * reopen, and its name can be used again. */
Test(meta, delete_reap_reuse)
{
    cr_assert_eq(mt_create("gone", 2, NULL, NULL), 0);
    struct partition *p = meta_topic_find(m, "gone")->parts[0];
    partition_pin(p);
    cr_assert_eq(mt_delete("gone"), 0);
    cr_assert_null(meta_topic_find(m, "gone"));
    cr_assert(partition_gone(p));
    cr_assert_eq(mt_create("gone", 1, NULL, NULL), RL_E_TOPIC_EXISTS, "while still pinned");
    meta_reap(m);
    partition_unpin(p);
    meta_reap(m);
    cr_assert_eq(mt_delete("gone"), RL_E_UNKNOWN_TOPIC);
    mt_reopen();
    cr_assert_null(meta_topic_find(m, "gone"));
    cr_assert_eq(mt_create("gone", 1, NULL, NULL), 0);
    cr_assert_eq(meta_topic_find(m, "gone")->partition_count, 1);
}

/* A topic whose partition directory cannot be made is not created, and its record is rolled
 * back, so a reopen does not bring it back. */
Test(meta, failed_create_rolls_back)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/blocked-0", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0644); /* a file where the directory goes */
    cr_assert_geq(fd, 0);
    close(fd);
    int rc = mt_create("blocked", 2, NULL, NULL);
    cr_assert_neq(rc, 0);
    cr_assert_null(meta_topic_find(m, "blocked"));
    unlink(path);
    mt_reopen();
    cr_assert_null(meta_topic_find(m, "blocked"), "a rolled-back topic came back");
    cr_assert_eq(mt_create("blocked", 2, NULL, NULL), 0);
}

/* Producer-id blocks are metadata: recorded, applied, replayed, and never moved back. */
Test(meta, producer_id_blocks)
{
    cr_assert_eq(meta_producer_id_block_end(m), 0);
    struct mt_prop p = {.pr = {.done = mt_done}};
    meta_propose_producer_ids(m, &p.pr, 1000);
    cr_assert_eq(mt_run(&p), 0);
    cr_assert_eq(meta_producer_id_block_end(m), 1000);
    struct mt_prop back = {.pr = {.done = mt_done}};
    meta_propose_producer_ids(m, &back.pr, 500);
    cr_assert_eq(mt_run(&back), RL_E_INVALID_ARGUMENT);
    mt_reopen();
    cr_assert_eq(meta_producer_id_block_end(m), 1000);
}

/* Damage in the middle of metadata.log is contained: the record it hit (topic "b") is lost
 * and reported, the records after it (topic "c", a producer-id block) still apply, and
 * producer ids skip ahead in case the damaged bytes held a block of them. */
Test(meta, damaged_metadata_log_contained)
{
    cr_assert_eq(mt_create("a", 1, NULL, NULL), 0);
    cr_assert_eq(mt_create("b", 1, NULL, NULL), 0);
    cr_assert_eq(mt_create("c", 1, NULL, NULL), 0);
    struct mt_prop p = {.pr = {.done = mt_done}};
    meta_propose_producer_ids(m, &p.pr, 1000);
    cr_assert_eq(mt_run(&p), 0);
    meta_close(m);
    /* Records: magic (8 bytes), then u32 len | u64 sum | payload; the second is "b". */
    char path[400];
    snprintf(path, sizeof(path), "%s/metadata.log", dir);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t len[4];
    cr_assert_eq(pread(fd, len, 4, 8), 4);
    off_t second = 8 + 12 + (off_t)(len[0] | len[1] << 8 | len[2] << 16 | (uint32_t)len[3] << 24);
    uint8_t c;
    cr_assert_eq(pread(fd, &c, 1, second + 13), 1);
    c ^= 0x40;
    cr_assert_eq(pwrite(fd, &c, 1, second + 13), 1);
    close(fd);
    mt_open();
    cr_assert_not_null(meta_topic_find(m, "a"));
    cr_assert_null(meta_topic_find(m, "b"), "a damaged record was applied");
    cr_assert_not_null(meta_topic_find(m, "c"), "the records after the damage were lost");
    cr_assert_gt(meta_producer_id_block_end(m), 1000,
                 "producer ids do not skip past what the damage may have reserved");
    int64_t skipped = meta_producer_id_block_end(m);
    struct mt_prop q = {.pr = {.done = mt_done}};
    meta_propose_producer_ids(m, &q.pr, skipped + 1000);
    cr_assert_eq(mt_run(&q), 0);
    mt_reopen();
    cr_assert_geq(meta_producer_id_block_end(m), skipped + 1000);
    cr_assert_not_null(meta_topic_find(m, "c"));
}

/* Topics created and deleted 30 times over leave 60 records no longer needed: with compaction
 * on (at 20) the next open rewrites metadata.log to the live topics' creates, the reopen after
 * that replays only those, the table is the same, and a deleted name can be created again with
 * nothing of its old data. Below the threshold nothing is rewritten. */
Test(meta, compacted_at_open)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/metadata.log", dir);
    for (int i = 0; i < 30; i++) {
        char name[32];
        snprintf(name, sizeof(name), "churn%d", i % 3);
        cr_assert_eq(mt_create(name, 1, "retention.ms", "60000"), 0);
        cr_assert_eq(mt_delete(name), 0);
        meta_reap(m);
    }
    cr_assert_eq(mt_create("keep", 2, "retention.ms", "12345"), 0);
    cr_assert_eq(mt_create("also", 1, NULL, NULL), 0);
    cr_assert_eq(meta_log_records(m), 62);
    struct stat st0, st1;
    cr_assert_eq(stat(path, &st0), 0);
    compact_min = 100; /* more than can go: nothing is rewritten */
    mt_reopen();
    cr_assert_eq(meta_log_records(m), 62);
    compact_min = 20;
    mt_reopen();
    cr_assert_eq(meta_log_records(m), 2, "%llu records after compaction",
                 (unsigned long long)meta_log_records(m));
    cr_assert_eq(stat(path, &st1), 0);
    cr_assert_lt(st1.st_size, st0.st_size / 10, "metadata.log %lld -> %lld bytes",
                 (long long)st0.st_size, (long long)st1.st_size);
    compact_min = 0;
    mt_reopen();
    cr_assert_eq(meta_log_records(m), 2);
    const struct meta_topic *t = meta_topic_find(m, "keep");
    cr_assert_not_null(t);
    cr_assert_eq(t->partition_count, 2);
    cr_assert_not_null(meta_topic_find(m, "also"));
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "churn%d", i);
        cr_assert_null(meta_topic_find(m, name), "%s came back", name);
    }
    cr_assert_eq(mt_create("churn0", 1, NULL, NULL), 0);
    cr_assert_eq(partition_visible_end(meta_topic_find(m, "churn0")->parts[0]), 0);
}

static void mt_submit(void *ctx, struct meta_proposal *pr, const uint8_t *payload, size_t len)
{
    (void)ctx;
    (void)pr;
    (void)payload;
    (void)len;
}

/* Checks an encoded record as the controller leader would; returns the code, err the sentence. */
static int mt_check(const struct meta_record *rec, char *err, size_t cap)
{
    uint8_t *buf;
    size_t len;
    cr_assert_eq(meta_record_encode(rec, &buf, &len), 0);
    struct meta_record_decoded d;
    cr_assert_eq(meta_record_decode(buf, len, &d), 0);
    cr_assert_eq(d.rec.kind, rec->kind);
    cr_assert_eq(d.rec.n_moves, rec->n_moves);
    cr_assert_eq(d.rec.remove_broker, rec->remove_broker);
    cr_assert_eq(d.rec.recommission_broker, rec->recommission_broker);
    cr_assert_eq(d.rec.cancel, rec->cancel);
    for (size_t i = 0; i < rec->n_moves; i++) {
        cr_assert_str_eq(d.rec.moves[i].topic, rec->moves[i].topic);
        cr_assert_eq(d.rec.moves[i].partition, rec->moves[i].partition);
        cr_assert_eq(d.rec.moves[i].n_replicas, rec->moves[i].n_replicas);
        cr_assert_arr_eq(d.rec.moves[i].replicas, rec->moves[i].replicas,
                         rec->moves[i].n_replicas * sizeof(uint32_t));
    }
    meta_record_free(&d);
    err[0] = 0;
    int rc = meta_check_record(m, buf, len, err, cap);
    free(buf);
    return rc;
}

/* Moves of replicas: reassign and reassign-done records round-trip through their encoding, are
 * validated (count, duplicates, single-replica partitions, one move per partition, done only for
 * the running target), and applying them sets and clears the target and replaces the replicas
 * (and the owner). */
Test(meta, reassign_records)
{
    static const struct meta_committer cm = {mt_submit, NULL};
    uint32_t owners[2] = {1, 2}, reps[6] = {1, 2, 3, 2, 3, 1};
    struct meta_topic_spec spec = {.name = "mv", .partitions = 2, .replication_factor = 3,
                                   .n_owners = 2, .owners = owners, .n_replicas = 6,
                                   .replicas = reps};
    struct meta_record create = {.kind = META_RECORD_CREATE_TOPIC, .spec = spec};
    cr_assert_eq(meta_apply(m, &create), 0);
    const struct meta_topic *t = NULL;
    for (uint64_t until = io_now_ns(io) + MT_DEADLINE_NS;
         !(t = meta_topic_find(m, "mv")) && io_now_ns(io) < until;) {
        io_run(io, 1000000ull);
        partition_env_process(env);
    }
    cr_assert_not_null(t);
    cr_assert_null(meta_partition_target(t, 0));
    char err[512];
    uint32_t to[3] = {4, 2, 3}, two[2] = {4, 2}, dup[3] = {4, 4, 3};
    struct meta_move mv = {"mv", 0, 3, to};
    struct meta_record ra = {.kind = META_RECORD_REASSIGN, .n_moves = 1, .moves = &mv};
    cr_assert_eq(mt_check(&ra, err, sizeof(err)), RL_E_INVALID_ARGUMENT, "single broker: %s",
                 err);
    meta_set_committer(m, &cm);
    cr_assert_eq(mt_check(&ra, err, sizeof(err)), 0, "%s", err);
    struct meta_move bad = {"mv", 0, 2, two};
    struct meta_record rb = {.kind = META_RECORD_REASSIGN, .n_moves = 1, .moves = &bad};
    cr_assert_eq(mt_check(&rb, err, sizeof(err)), RL_E_INVALID_ARGUMENT);
    cr_assert(strstr(err, "name as many brokers"), "%s", err);
    bad = (struct meta_move){"mv", 0, 3, dup};
    cr_assert_eq(mt_check(&rb, err, sizeof(err)), RL_E_INVALID_ARGUMENT);
    cr_assert(strstr(err, "named twice"), "%s", err);
    bad = (struct meta_move){"mv", 7, 3, to};
    cr_assert_eq(mt_check(&rb, err, sizeof(err)), RL_E_UNKNOWN_PARTITION);
    struct meta_record done = {.kind = META_RECORD_REASSIGN_DONE, .n_moves = 1, .moves = &mv};
    cr_assert_eq(mt_check(&done, err, sizeof(err)), RL_E_INVALID_ARGUMENT, "no move runs");

    cr_assert_eq(meta_apply(m, &ra), 0);
    const uint32_t *tg = meta_partition_target(t, 0);
    cr_assert_not_null(tg);
    cr_assert_arr_eq(tg, to, sizeof(to));
    cr_assert_null(meta_partition_target(t, 1));
    cr_assert_eq(mt_check(&ra, err, sizeof(err)), RL_E_REASSIGN_RUNNING);
    cr_assert(strstr(err, "already running"), "%s", err);
    uint32_t other[3] = {2, 3, 4};
    struct meta_move om = {"mv", 0, 3, other};
    struct meta_record od = {.kind = META_RECORD_REASSIGN_DONE, .n_moves = 1, .moves = &om};
    cr_assert_eq(mt_check(&od, err, sizeof(err)), RL_E_INVALID_ARGUMENT, "another target");
    cr_assert_eq(mt_check(&done, err, sizeof(err)), 0, "%s", err);

    cr_assert_eq(meta_apply(m, &done), 0);
    uint32_t n;
    cr_assert_arr_eq(meta_partition_replicas(t, 0, &n), to, sizeof(to));
    cr_assert_eq(meta_partition_owner(t, 0), 4);
    cr_assert_null(meta_partition_target(t, 0));
    cr_assert_arr_eq(meta_partition_replicas(t, 1, &n), reps + 3, 3 * sizeof(uint32_t));
    cr_assert_eq(meta_apply(m, &done), 0, "a second end changes nothing");
    cr_assert_arr_eq(meta_partition_replicas(t, 0, &n), to, sizeof(to));
    meta_set_committer(m, NULL);
}

/* Commits a record as the controller would deliver it (appended to metadata.log, applied). */
static void mt_commit(const struct meta_record *rec)
{
    uint8_t *buf;
    size_t len;
    cr_assert_eq(meta_record_encode(rec, &buf, &len), 0);
    cr_assert_eq(meta_commit_record(m, buf, len, NULL), 0);
    free(buf);
    uint64_t until = io_now_ns(io) + MT_DEADLINE_NS;
    while (meta_commits_pending(m) && io_now_ns(io) < until) {
        meta_process(m);
        io_run(io, 1000000ull);
        bg_reap(bg);
        partition_env_process(env);
    }
    cr_assert_eq(meta_commits_pending(m), 0, "the record was not applied");
}

/* Decommission marks and cancels: a reassign record written without the new fields decodes to
 * no mark; remove_broker marks a broker (also with no move) and the mark survives a replay of
 * metadata.log; a move onto it is refused naming the fix; recommission clears it (only a marked
 * broker); a cancel needs a running move and its origin, makes the origin the target, and the
 * end of the move then leaves the replicas where they were. */
Test(meta, decommission_and_cancel_records)
{
    static const struct meta_committer cm = {mt_submit, NULL};
    uint32_t owners[1] = {1}, reps[3] = {1, 2, 3};
    struct meta_topic_spec spec = {.name = "dc", .partitions = 1, .replication_factor = 3,
                                   .n_owners = 1, .owners = owners, .n_replicas = 3,
                                   .replicas = reps};
    meta_set_committer(m, &cm);
    mt_commit(&(struct meta_record){.kind = META_RECORD_CREATE_TOPIC, .spec = spec});
    char err[512];
    /* An older record: MetaRecord.reassign with moves only. */
    uint32_t to[3] = {4, 2, 3};
    Ringlog__PartitionMove pm = RINGLOG__PARTITION_MOVE__INIT;
    Ringlog__PartitionMove *pp = &pm;
    pm.topic = "dc";
    pm.n_replicas = 3;
    pm.replicas = to;
    Ringlog__AlterReplicasRequest ar = RINGLOG__ALTER_REPLICAS_REQUEST__INIT;
    ar.n_moves = 1;
    ar.moves = &pp;
    Ringlog__MetaRecord mr = RINGLOG__META_RECORD__INIT;
    mr.body_case = RINGLOG__META_RECORD__BODY_REASSIGN;
    mr.reassign = &ar;
    uint8_t old[128];
    size_t old_len = ringlog__meta_record__pack(&mr, old);
    struct meta_record_decoded d;
    cr_assert_eq(meta_record_decode(old, old_len, &d), 0);
    cr_assert(d.rec.kind == META_RECORD_REASSIGN && d.rec.n_moves == 1 &&
              !d.rec.remove_broker && !d.rec.recommission_broker && !d.rec.cancel);
    meta_record_free(&d);

    struct meta_record rm = {.kind = META_RECORD_REASSIGN, .remove_broker = 4};
    cr_assert_eq(mt_check(&rm, err, sizeof(err)), 0, "%s", err);
    cr_assert_not(meta_broker_decommissioned(m, 4));
    mt_commit(&rm);
    cr_assert(meta_broker_decommissioned(m, 4));
    cr_assert_not(meta_broker_decommissioned(m, 3));
    mt_reopen();
    meta_set_committer(m, &cm);
    cr_assert(meta_broker_decommissioned(m, 4), "the mark did not survive the replay");
    struct meta_move mv = {"dc", 0, 3, to};
    struct meta_record ra = {.kind = META_RECORD_REASSIGN, .n_moves = 1, .moves = &mv};
    cr_assert_eq(mt_check(&ra, err, sizeof(err)), RL_E_BROKER_DECOMMISSIONED);
    cr_assert(strstr(err, "ringlog cluster recommission 4"), "%s", err);
    struct meta_record re3 = {.kind = META_RECORD_REASSIGN, .recommission_broker = 3};
    cr_assert_eq(mt_check(&re3, err, sizeof(err)), RL_E_INVALID_ARGUMENT);
    cr_assert(strstr(err, "nothing to recommission"), "%s", err);
    struct meta_record re4 = {.kind = META_RECORD_REASSIGN, .recommission_broker = 4};
    mt_commit(&re4);
    cr_assert_not(meta_broker_decommissioned(m, 4));

    uint32_t origin[3] = {1, 2, 3}, wrong[3] = {3, 2, 1};
    struct meta_move cm0 = {"dc", 0, 3, origin};
    struct meta_record cancel = {.kind = META_RECORD_REASSIGN, .n_moves = 1, .moves = &cm0,
                                 .cancel = true};
    cr_assert_eq(mt_check(&cancel, err, sizeof(err)), RL_E_NO_MOVE_RUNNING);
    cr_assert(strstr(err, "nothing to cancel"), "%s", err);
    mt_commit(&ra);
    const struct meta_topic *t = meta_topic_find(m, "dc");
    cr_assert_arr_eq(meta_partition_target(t, 0), to, sizeof(to));
    struct meta_move cw = {"dc", 0, 3, wrong};
    struct meta_record cancel_wrong = {.kind = META_RECORD_REASSIGN, .n_moves = 1,
                                       .moves = &cw, .cancel = true};
    cr_assert_eq(mt_check(&cancel_wrong, err, sizeof(err)), RL_E_INVALID_ARGUMENT);
    cr_assert_eq(mt_check(&cancel, err, sizeof(err)), 0, "%s", err);
    mt_commit(&cancel);
    cr_assert_arr_eq(meta_partition_target(t, 0), origin, sizeof(origin));
    cr_assert_eq(mt_check(&cancel, err, sizeof(err)), RL_E_NO_MOVE_RUNNING, "cancelled twice");
    cr_assert_eq(mt_check(&ra, err, sizeof(err)), RL_E_REASSIGN_RUNNING);
    struct meta_record done = {.kind = META_RECORD_REASSIGN_DONE, .n_moves = 1, .moves = &cm0};
    mt_commit(&done);
    uint32_t n;
    cr_assert_arr_eq(meta_partition_replicas(t, 0, &n), origin, sizeof(origin));
    cr_assert_null(meta_partition_target(t, 0));
    meta_set_committer(m, NULL);
}
