/*
 * ctl: see ctl.h. Three parts: the identity file, group 0 on the replication driver (the log,
 * the transport, ticks, committed entries applied in order), and proposals (one local change at
 * a time per broker; at the leader, one queued change proposed at a time, each checked against
 * the state every earlier committed change produced).
 */
#include "broker/cluster/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "broker/cluster/ctlckpt.h"
#include "broker/cluster/peer.h"
#include "broker/cluster/replica.h"
#include "broker/meta/meta.h"
#include "broker/meta/metalog.h"
#include "common/batch.h"
#include "common/endian.h"
#include "common/err.h"
#include "common/log.h"
#include "io/io.h"
#include "replication/hstore.h"
#include "replication/raftlog.h"
#include "replication/repl.h"
#include "storage/plog.h"

#define CTL_GROUP 0
#define CTL_MAX_RECORD_BYTES (16u << 20)
#define CTL_KEY_META 'm'
#define CTL_KEY_REG 'r'
#define CTL_APPLY_BATCH 64
#define CTL_REG_RESEND_MS 1000
#define CTL_PING_MS 500 /* liveness pings to every other node (soft state, never logged) */

/* A change waiting at the leader. */
struct ctl_item {
    uint32_t from;   /* 0: this broker */
    int64_t queued_ms;
    uint64_t req_id;
    uint8_t kind;
    uint8_t *payload;
    size_t len;
};

/* This broker's own metadata change on its way through the controller. */
struct ctl_local {
    bool active, answered;
    uint64_t req_id;
    struct meta_proposal *pr;
    uint8_t *payload;
    size_t len;
    int64_t deadline_ms, sent_ms;
    uint32_t sent_to;
    uint64_t index; /* answered: the committed entry */
    /* Refused: delivered once this broker has applied what the leader had applied when it
     * refused (refuse_index), so the change's proposer (a retry, a client's next request)
     * sees at least the state the leader checked against. */
    bool refused;
    int refuse_rc;
    uint64_t refuse_index;
    char refuse_msg[520];
};

/* A fetch of the metadata behind a snapshot install (ctl.h): the records held so far, the
 * request out, and, once every record is here, the checkpoint to take. */
struct ctl_install {
    bool active;
    bool final;            /* every record of `ck` is recorded or queued: take ck once done */
    uint64_t have;         /* group 0's "m" records metadata.log holds or will hold */
    uint64_t req_id;
    int64_t sent_ms;       /* 0: ask at once */
    uint32_t attempt;
    uint64_t installs, failures;
    struct ctlckpt *ck;    /* the answering node's checkpoint (final) */
};

struct ctl {
    /* Raft frames (every group's appends, heartbeats and answers) sent and received. */
    uint64_t raft_bytes_sent, raft_bytes_received;
    struct ctl_config cfg;
    struct io *io;
    struct meta *meta;
    uint64_t cluster_id, incarnation;
    uint64_t legacy_records; /* metadata.log records from before the cluster */
    uint64_t skip_meta;      /* "m" records of group 0 already in metadata.log */
    uint64_t meta_seen;
    struct peer *peer;
    struct hstore *hs;
    struct plog *plog;
    struct raftlog *rl;
    struct raftlog_arena *arena;
    struct repl *repl;
    struct repl_group *g;
    struct batch_builder *bb;
    struct batch_reader *br;
    uint64_t applied;
    int64_t last_tick_ms;
    bool stopping;
    uint64_t next_req;
    struct ctl_local local;
    /* registration */
    char kafka_host[64];  /* this broker's Kafka listener as registered (port 0: none) */
    uint16_t kafka_port;
    bool registered;
    int64_t reg_sent_ms;
    /* leader */
    struct ctl_item queue[CTL_MAX_QUEUE];
    uint32_t q_head, q_len;
    bool cur_active;
    struct ctl_item cur;
    uint64_t cur_index, cur_term;
    struct ctl_broker brokers[CTL_MAX_BROKERS];
    uint32_t n_brokers;
    uint32_t last_leader;
    uint64_t last_term;
    int64_t last_ping_ms;
    bool voter;              /* this node is one of --voters (else a learner of group 0) */
    /* Voters that refused this node's hello: their --voters list makes another cluster id. */
    uint32_t rejected_by[CTL_MAX_VOTERS];
    uint64_t rejected_cid[CTL_MAX_VOTERS];
    uint32_t n_rejected;
    /* Start-up replay (ctlckpt.h): the checkpoint's index, the log's last index at open and
     * the entries read up to it, for the metrics. */
    uint64_t ckpt_index, start_last_index, start_entries_read;
    bool ckpt_warned;
    /* Snapshots (ctl.h): the last checkpoint written durably (served to nodes behind a log
     * start; its index bounds the log start), and a fetch of the metadata behind an install. */
    struct ctlckpt *durable_ck;
    bool has_durable_ck;
    bool ckpt_due;       /* write a checkpoint as soon as metadata.log holds what was applied */
    uint64_t compactions;
    struct ctl_install inst;
    struct replicas *replicas; /* partitions with more than one replica (replica.h) */
};

static int64_t ctl_now_ms(const struct ctl *c)
{
    return (int64_t)(io_now_ns(c->io) / 1000000ull);
}

/* --- identity -------------------------------------------------------------------------------- */

static uint64_t ctl_cluster_id(const struct ctl_config *cfg)
{
    /* The voters in id order, so the order they are listed in does not matter. */
    struct ctl_voter v[CTL_MAX_VOTERS];
    memcpy(v, cfg->voters, cfg->n_voters * sizeof(v[0]));
    for (uint32_t i = 1; i < cfg->n_voters; i++)
        for (uint32_t j = i; j > 0 && v[j - 1].id > v[j].id; j--) {
            struct ctl_voter t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    char buf[CTL_MAX_VOTERS * 96] = "";
    size_t n = 0;
    for (uint32_t i = 0; i < cfg->n_voters; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%u@%s:%u,", v[i].id, v[i].host,
                              v[i].port);
    return XXH3_64bits(buf, n);
}

static int ctl_identity_write(const char *data_dir, uint32_t node, uint64_t cid,
                              uint64_t legacy)
{
    char path[PATH_MAX + 32], tmp[PATH_MAX + 48], text[160];
    snprintf(path, sizeof(path), "%s/%s", data_dir, CTL_IDENTITY_FILE);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int n = snprintf(text, sizeof(text), "node.id=%u\ncluster.id=%016" PRIx64
                     "\nlegacy.records=%" PRIu64 "\n", node, cid, legacy);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = write(fd, text, (size_t)n) == n ? 0 : -EIO;
    if (rc == 0 && fdatasync(fd))
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path))
        rc = -errno;
    if (rc == 0) {
        int dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return rc;
}

/* Reads <dir>/node.id: 1 and the fields, 0 when absent, or a negative code. */
static int ctl_identity_read(const char *data_dir, uint32_t *node, uint64_t *cid,
                             uint64_t *legacy)
{
    char path[PATH_MAX + 32], text[256];
    snprintf(path, sizeof(path), "%s/%s", data_dir, CTL_IDENTITY_FILE);
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = 0;
    unsigned long long c = 0, l = 0;
    unsigned nd = 0;
    if (sscanf(text, "node.id=%u\ncluster.id=%llx\nlegacy.records=%llu", &nd, &c, &l) != 3)
        return RL_E_CORRUPT;
    *node = nd;
    *cid = c;
    *legacy = l;
    return 1;
}

int ctl_check_standalone(const char *data_dir, char *err, size_t err_cap)
{
    uint32_t node;
    uint64_t cid, legacy;
    int rc = ctl_identity_read(data_dir, &node, &cid, &legacy);
    if (rc <= 0)
        return 0;
    snprintf(err, err_cap, "the data directory %s belongs to node %u of a cluster (cluster id "
             "%016" PRIx64 "); start it with --node-id %u and the cluster's --voters, or use "
             "another --data-dir for a single broker", data_dir, node, cid, node);
    return RL_E_INVALID_CONFIG;
}

static int ctl_identity(struct ctl *c, char *err, size_t err_cap)
{
    const struct ctl_config *cfg = &c->cfg;
    uint32_t node;
    uint64_t cid, legacy;
    int rc = ctl_identity_read(cfg->data_dir, &node, &cid, &legacy);
    if (rc < 0) {
        snprintf(err, err_cap, "cannot read %s/%s: %s; restore it or use a fresh --data-dir",
                 cfg->data_dir, CTL_IDENTITY_FILE, rl_strerror(rc));
        return rc;
    }
    if (rc == 0) {
        c->legacy_records = meta_log_records(c->meta);
        rc = ctl_identity_write(cfg->data_dir, cfg->self, c->cluster_id, c->legacy_records);
        if (rc) {
            snprintf(err, err_cap, "cannot write %s/%s: %s", cfg->data_dir, CTL_IDENTITY_FILE,
                     rl_strerror(rc));
            return rc;
        }
        if (c->legacy_records)
            RL_INFO("cluster: this data directory joins a cluster with %" PRIu64 " metadata "
                    "records of its own (kept on this broker)", c->legacy_records);
        return 0;
    }
    if (node != cfg->self) {
        snprintf(err, err_cap, "the data directory %s belongs to node %u, not node %u: start it "
                 "with --node-id %u, or give node %u a data directory of its own",
                 cfg->data_dir, node, cfg->self, node, cfg->self);
        return RL_E_INVALID_CONFIG;
    }
    if (cid != c->cluster_id) {
        snprintf(err, err_cap, "the data directory %s belongs to another cluster (cluster id "
                 "%016" PRIx64 "; these --voters make %016" PRIx64 "): start it with the "
                 "voters it was created with, the same list on every node, or use a fresh "
                 "--data-dir", cfg->data_dir, cid, c->cluster_id);
        return RL_E_INVALID_CONFIG;
    }
    c->legacy_records = legacy;
    return 0;
}

/* --- broker table ---------------------------------------------------------------------------- */

static struct ctl_broker *ctl_broker_find(struct ctl *c, uint32_t id)
{
    for (uint32_t i = 0; i < c->n_brokers; i++)
        if (c->brokers[i].id == id)
            return &c->brokers[i];
    return NULL;
}

static void ctl_apply_registration(struct ctl *c, const uint8_t *p, size_t len, uint64_t index)
{
    if (len < 15 || len < 15u + p[14]) {
        RL_WARN("controller: a registration at index %" PRIu64 " does not decode; skipped",
                index);
        return;
    }
    uint32_t id = rl_load_le32(p);
    struct ctl_broker *b = ctl_broker_find(c, id);
    if (!b) {
        if (c->n_brokers == CTL_MAX_BROKERS)
            return;
        b = &c->brokers[c->n_brokers++];
    }
    b->id = id;
    b->incarnation = rl_load_le64(p + 4);
    b->port = rl_load_le16(p + 12);
    size_t hl = p[14] < sizeof(b->host) ? p[14] : sizeof(b->host) - 1;
    memcpy(b->host, p + 15, hl);
    b->host[hl] = 0;
    b->epoch = index;
    /* The Kafka listener's address, when the registration has the tail (older ones do not). */
    size_t at = 15u + p[14];
    b->kafka_port = 0;
    b->kafka_host[0] = 0;
    if (len >= at + 3 && len >= at + 3 + p[at + 2]) {
        size_t kl = p[at + 2] < sizeof(b->kafka_host) ? p[at + 2] : sizeof(b->kafka_host) - 1;
        b->kafka_port = rl_load_le16(p + at);
        memcpy(b->kafka_host, p + at + 3, kl);
        b->kafka_host[kl] = 0;
    }
    if (id != c->cfg.self && b->port) {
        int rc = peer_add(c->peer, id, b->host, b->port); /* a broker outside the voters */
        if (rc && rc != RL_E_EXISTS)
            RL_WARN("controller: cannot reach broker %u at %s:%u: %s", id, b->host, b->port,
                    rl_strerror(rc));
    }
    if (id == c->cfg.self && b->incarnation == c->incarnation && !c->registered) {
        c->registered = true;
        RL_INFO("controller: node %u registered (incarnation %016" PRIx64 ", broker epoch %"
                PRIu64 ")", id, b->incarnation, index);
    }
}

/* --- answers --------------------------------------------------------------------------------- */

static void ctl_local_clear(struct ctl *c)
{
    free(c->local.payload);
    memset(&c->local, 0, sizeof(c->local));
}

/* Delivers a refusal once this broker has applied up to the leader's state at the time (or at
 * once when `now`: the deadline passed). */
static void ctl_local_refuse_due(struct ctl *c, bool now)
{
    struct ctl_local *l = &c->local;
    if (!l->active || !l->refused)
        return;
    if (!now && (c->applied < l->refuse_index || meta_commits_pending(c->meta)))
        return;
    struct meta_proposal *pr = l->pr;
    int rc = l->refuse_rc;
    char msg[sizeof(l->refuse_msg)];
    snprintf(msg, sizeof(msg), "%s", l->refuse_msg);
    ctl_local_clear(c);
    meta_proposal_refused(c->meta, pr, rc, msg);
}

/* The leader's answer to this broker's change (req_id): rc 0 with the committed index, or a
 * refusal with the leader's applied index. */
static void ctl_local_answer(struct ctl *c, uint64_t req_id, int rc, uint64_t index,
                             const char *msg)
{
    struct ctl_local *l = &c->local;
    if (!l->active || l->answered || l->refused || l->req_id != req_id)
        return; /* a registration's answer, or an answer to a resend already settled */
    if (rc == RL_E_RAFT_NOT_LEADER) {
        l->sent_to = 0; /* leadership moved: the next tick sends it to the new leader */
        return;
    }
    if (rc) {
        l->refused = true;
        l->refuse_rc = rc;
        l->refuse_index = index;
        snprintf(l->refuse_msg, sizeof(l->refuse_msg), "%s", msg ? msg : "");
        ctl_local_refuse_due(c, false);
        return;
    }
    l->answered = true;
    l->index = index;
    if (c->applied >= index) {
        /* Already handed to meta without its proposal: a marker behind it ends it. */
        struct meta_proposal *pr = l->pr;
        ctl_local_clear(c);
        if (meta_commit_record(c->meta, NULL, 0, pr))
            meta_proposal_refused(c->meta, pr, -ENOMEM, "out of memory");
    }
}

static void ctl_answer(struct ctl *c, const struct ctl_item *it, int rc, uint64_t index,
                       const char *msg)
{
    if (it->from == 0 || it->from == c->cfg.self) {
        ctl_local_answer(c, it->req_id, rc, index, msg);
        return;
    }
    uint8_t buf[8 + 4 + 8 + 2 + 512];
    size_t ml = msg ? strlen(msg) : 0;
    if (ml > 512)
        ml = 512;
    rl_store_le64(buf, it->req_id);
    rl_store_le32(buf + 8, (uint32_t)rc);
    rl_store_le64(buf + 12, index);
    rl_store_le16(buf + 20, (uint16_t)ml);
    if (ml)
        memcpy(buf + 22, msg, ml);
    peer_send(c->peer, it->from, PEER_FWD_RESP, buf, 22 + ml);
}

/* --- the leader's queue ---------------------------------------------------------------------- */

static void ctl_enqueue(struct ctl *c, uint32_t from, uint64_t req_id, uint8_t kind,
                        const uint8_t *payload, size_t len)
{
    struct ctl_item it = {.from = from, .req_id = req_id, .kind = kind,
                          .queued_ms = ctl_now_ms(c)};
    const struct raft *rf = repl_group_raft(c->g);
    if (raft_role(rf) != RAFT_LEADER) {
        ctl_answer(c, &it, RL_E_RAFT_NOT_LEADER, 0, "this node no longer leads the controller");
        return;
    }
    /* A resend of a change already queued or in flight is not queued twice. */
    if (c->cur_active && c->cur.from == from && c->cur.req_id == req_id)
        return;
    for (uint32_t i = 0; i < c->q_len; i++) {
        const struct ctl_item *q = &c->queue[(c->q_head + i) % CTL_MAX_QUEUE];
        if (q->from == from && q->req_id == req_id)
            return;
    }
    if (c->q_len == CTL_MAX_QUEUE || len > CTL_MAX_RECORD_BYTES) {
        ctl_answer(c, &it, RL_E_FULL, 0, "the controller has too many changes queued; retry");
        return;
    }
    it.payload = malloc(len ? len : 1);
    if (!it.payload) {
        ctl_answer(c, &it, -ENOMEM, 0, "the controller is out of memory");
        return;
    }
    memcpy(it.payload, payload, len);
    it.len = len;
    c->queue[(c->q_head + c->q_len) % CTL_MAX_QUEUE] = it;
    c->q_len++;
}

static void ctl_fail_queue(struct ctl *c, int rc, const char *msg)
{
    if (c->cur_active) {
        ctl_answer(c, &c->cur, rc, 0, msg);
        free(c->cur.payload);
        c->cur_active = false;
    }
    while (c->q_len) {
        struct ctl_item *it = &c->queue[c->q_head];
        ctl_answer(c, it, rc, 0, msg);
        free(it->payload);
        c->q_head = (c->q_head + 1) % CTL_MAX_QUEUE;
        c->q_len--;
    }
}

/* Builds the one-record batch of an entry into a malloc'ed buffer. */
static int ctl_batch(struct ctl *c, uint8_t kind, const uint8_t *payload, size_t len,
                     uint8_t **out, uint32_t *out_len)
{
    batch_builder_reset(c->bb, -1, -1, -1);
    struct batch_record_in r = {.key = &kind, .key_len = 1, .value = payload,
                                .value_len = len, .timestamp = io_wall_ms(c->io)};
    int rc = batch_builder_add(c->bb, &r);
    if (rc)
        return rc;
    const uint8_t *b;
    int n = batch_builder_finish(c->bb, &b);
    if (n < 0)
        return n;
    *out = malloc((size_t)n);
    if (!*out)
        return -ENOMEM;
    memcpy(*out, b, (size_t)n);
    *out_len = (uint32_t)n;
    return 0;
}

/* Leader: a registered broker outside the configuration joins group 0 as a learner, so it
 * receives the controller log (one membership change at a time; the core refuses another
 * while one is pending, and this is retried every turn). */
static void ctl_add_learners(struct ctl *c, const struct raft *rf)
{
    if (!raft_leader_ready(rf) || rf->pending_conf_index > rf->commit)
        return;
    for (uint32_t i = 0; i < c->n_brokers; i++) {
        uint32_t id = c->brokers[i].id;
        if (raft_config_is_voter(&rf->config, id) || raft_config_is_learner(&rf->config, id))
            continue;
        uint64_t index;
        int rc = repl_conf_change(c->repl, c->g, RAFT_CONF_ADD_LEARNER, id, &index);
        if (rc == 0)
            RL_INFO("controller: broker %u joins the controller log as a learner", id);
        else if (rc != RL_E_RAFT_CONF_PENDING)
            RL_WARN("controller: cannot add broker %u as a learner: %s", id, rl_strerror(rc));
        return;
    }
}

/* The sentence refusing a topic whose rf replicas do not fit on the n brokers placement may
 * pick: what is missing, and the fix (decommissioned brokers named: they may be why). */
static void ctl_place_refusal(const struct ctl_status *st, uint32_t rf, uint32_t n,
                              const char *topic, char *err, size_t err_cap)
{
    char decom[160] = "";
    size_t dn = 0;
    uint32_t nd = 0;
    for (uint32_t i = 0; i < st->n_brokers && dn < sizeof(decom) - 16; i++) {
        if (!st->brokers[i].decommissioned)
            continue;
        dn += (size_t)snprintf(decom + dn, sizeof(decom) - dn, "%s%u", nd ? "," : "",
                               st->brokers[i].id);
        nd++;
    }
    if (nd == 0) {
        snprintf(err, err_cap, "replication factor %u for topic \"%s\" needs %u live brokers, "
                 "but the controller hears from %u of the %u registered: start more brokers "
                 "(ringlog cluster status shows them) or create the topic with "
                 "--replicas %u or less", rf, topic, rf, n, st->n_brokers, n);
        return;
    }
    snprintf(err, err_cap, "replication factor %u for topic \"%s\" needs %u live brokers that "
             "are not decommissioned, but only %u of the %u registered are (decommissioned: "
             "%s): create the topic with --replicas %u or less, start more brokers, or make a "
             "decommissioned broker eligible again with ringlog cluster recommission N", rf,
             topic, rf, n, st->n_brokers, decom, n);
}

/* Proposes the next queued change once everything committed before it is applied here. */
/* Placement (the leader, before it proposes a topic's creation): each partition of a new
 * topic gets an owner, round-robin over the registered brokers it hears from that are not
 * decommissioned (in id order; a decommissioned broker receives nothing new),
 * starting at the number of partitions already live so topics spread too. The owners are part
 * of the committed record, so every broker applies the same placement whatever it sees of the
 * others. Internal topics (__consumer_offsets) are placed too, with min(3, live brokers) replicas
 * unless the creation asks for a number. Replaces it->payload;
 * returns 0 or a code with a sentence in err. */
static int ctl_place(struct ctl *c, struct ctl_item *it, char *err, size_t err_cap)
{
    struct meta_record_decoded d;
    int rc = meta_record_decode(it->payload, it->len, &d);
    if (rc) {
        snprintf(err, err_cap, "the change does not decode: %s", rl_strerror(rc));
        return rc;
    }
    struct meta_record *rec = &d.rec;
    if (rec->kind != META_RECORD_CREATE_TOPIC || rec->spec.n_owners) {
        meta_record_free(&d);
        return 0;
    }
    struct ctl_status st;
    ctl_get_status(c, &st);
    uint32_t ids[CTL_MAX_BROKERS], n = 0;
    for (uint32_t i = 0; i < st.n_brokers; i++) {
        if (!st.brokers[i].alive || st.brokers[i].decommissioned)
            continue;
        uint32_t k = n++;
        for (; k > 0 && ids[k - 1] > st.brokers[i].id; k--)
            ids[k] = ids[k - 1];
        ids[k] = st.brokers[i].id;
    }
    if (n == 0) {
        snprintf(err, err_cap, "no registered broker is alive and not decommissioned to place "
                 "topic \"%s\" on; wait for the brokers to register (ringlog cluster status), "
                 "or recommission one (ringlog cluster recommission N), and retry",
                 rec->spec.name);
        meta_record_free(&d); /* after the message: the name lives in the decoded record */
        return RL_E_BROKER_UNAVAILABLE;
    }
    uint32_t parts = (uint32_t)rec->spec.partitions;
    uint32_t rf = rec->spec.replication_factor > 1 ? (uint32_t)rec->spec.replication_factor : 1;
    if (meta_topic_internal(rec->spec.name) && rec->spec.replication_factor <= 0) {
        rf = n < 3 ? n : 3; /* __consumer_offsets by default: Kafka's min(3, brokers) */
        rec->spec.replication_factor = (int32_t)rf;
    }
    if (rf > n) {
        ctl_place_refusal(&st, rf, n, rec->spec.name, err, err_cap);
        meta_record_free(&d);
        return RL_E_INVALID_REPLICATION;
    }
    uint32_t *owners = malloc((parts ? parts : 1) * sizeof(*owners));
    uint32_t *replicas = rf > 1 ? malloc((size_t)parts * rf * sizeof(*replicas)) : NULL;
    if (!owners || (rf > 1 && !replicas)) {
        free(owners);
        free(replicas);
        meta_record_free(&d);
        return -ENOMEM;
    }
    /* Partition i's replicas are rf consecutive brokers from its round-robin start; the first
     * is its preferred leader (and its owner, for readers of the placement that know owners
     * only). */
    uint32_t start = meta_partition_count(c->meta);
    for (uint32_t i = 0; i < parts; i++) {
        owners[i] = ids[(start + i) % n];
        for (uint32_t k = 0; k < rf && replicas; k++)
            replicas[(size_t)i * rf + k] = ids[(start + i + k) % n];
    }
    rec->spec.owners = owners;
    rec->spec.n_owners = parts;
    /* The index the record is about to take: unique among committed records, so a name
     * deleted and created again gets new partition group ids (replicas_group_id). */
    rec->spec.incarnation = raft_last_index(repl_group_raft(c->g)) + 1;
    if (replicas) {
        rec->spec.replicas = replicas;
        rec->spec.n_replicas = (size_t)parts * rf;
    }
    uint8_t *out = NULL;
    size_t len = 0;
    rc = meta_record_encode(rec, &out, &len);
    free(owners);
    free(replicas);
    meta_record_free(&d);
    if (rc) {
        snprintf(err, err_cap, "cannot encode the placement: %s", rl_strerror(rc));
        return rc;
    }
    free(it->payload);
    it->payload = out;
    it->len = len;
    return 0;
}

/* A topic's creation asking for more replicas than the brokers the leader hears from waits at
 * the head of the queue (up to CTL_PLACE_WAIT_MS) while the cluster's members are enough to
 * hold them: at a cluster's start the brokers register a moment after the leader is elected. */
static bool ctl_place_waits(struct ctl *c, const struct ctl_item *it)
{
    if (it->kind != CTL_KEY_META || ctl_now_ms(c) - it->queued_ms >= CTL_PLACE_WAIT_MS)
        return false;
    struct meta_record_decoded d;
    if (meta_record_decode(it->payload, it->len, &d))
        return false;
    int32_t rf = d.rec.kind == META_RECORD_CREATE_TOPIC ? d.rec.spec.replication_factor : 0;
    meta_record_free(&d);
    if (rf <= 1)
        return false;
    struct ctl_status st;
    ctl_get_status(c, &st);
    uint32_t alive = 0, members = c->cfg.n_voters;
    for (uint32_t i = 0; i < st.n_brokers; i++) {
        bool decom = st.brokers[i].decommissioned; /* never placed on: not waited for */
        alive += st.brokers[i].alive && !decom;
        bool voter = false;
        for (uint32_t k = 0; k < c->cfg.n_voters; k++)
            voter |= c->cfg.voters[k].id == st.brokers[i].id;
        members += !voter && !decom;
        members -= voter && decom;
    }
    return (uint32_t)rf > alive && (uint32_t)rf <= members;
}

/* Moves the first queued registration to the head of the queue (a waiting topic must not hold
 * up the registrations it waits for). Returns whether there was one. */
static bool ctl_registration_first(struct ctl *c)
{
    for (uint32_t i = 1; i < c->q_len; i++) {
        uint32_t at = (c->q_head + i) % CTL_MAX_QUEUE;
        if (c->queue[at].kind != CTL_KEY_REG)
            continue;
        struct ctl_item reg = c->queue[at];
        for (uint32_t k = i; k > 0; k--)
            c->queue[(c->q_head + k) % CTL_MAX_QUEUE] =
                c->queue[(c->q_head + k - 1) % CTL_MAX_QUEUE];
        c->queue[c->q_head] = reg;
        return true;
    }
    return false;
}

static void ctl_lead(struct ctl *c)
{
    const struct raft *rf = repl_group_raft(c->g);
    if (raft_role(rf) != RAFT_LEADER) {
        if (c->cur_active || c->q_len)
            ctl_fail_queue(c, RL_E_RAFT_NOT_LEADER, "the controller leader changed; retry");
        return;
    }
    if (c->cur_active) {
        if (raft_term(rf) != c->cur_term) {
            ctl_fail_queue(c, RL_E_RAFT_NOT_LEADER, "the controller leader changed; retry");
            return;
        }
        if (c->applied < c->cur_index || meta_commits_pending(c->meta))
            return;
        ctl_answer(c, &c->cur, 0, c->cur_index, NULL);
        free(c->cur.payload);
        c->cur_active = false;
    }
    ctl_add_learners(c, rf);
    for (uint32_t guard = 0; guard < CTL_MAX_QUEUE && c->q_len && !c->cur_active; guard++) {
        if (!raft_leader_ready(rf) || c->applied < raft_commit(rf) ||
            meta_commits_pending(c->meta))
            return;
        if (ctl_place_waits(c, &c->queue[c->q_head]) && !ctl_registration_first(c))
            return;
        struct ctl_item it = c->queue[c->q_head];
        c->q_head = (c->q_head + 1) % CTL_MAX_QUEUE;
        c->q_len--;
        char err[800] = "";
        int rc = 0;
        if (it.kind == CTL_KEY_META)
            rc = meta_check_record(c->meta, it.payload, it.len, err, sizeof(err));
        if (rc == 0 && it.kind == CTL_KEY_META)
            rc = ctl_place(c, &it, err, sizeof(err));
        uint8_t *batch = NULL;
        uint32_t blen = 0;
        uint64_t last = 0;
        if (rc == 0)
            rc = ctl_batch(c, it.kind, it.payload, it.len, &batch, &blen);
        if (rc == 0) {
            rc = repl_propose(c->repl, c->g, &batch, &blen, 1, &last);
            if (rc)
                snprintf(err, sizeof(err), "the controller could not take the change: %s",
                         rl_strerror(rc));
        }
        free(batch);
        if (rc) {
            ctl_answer(c, &it, rc, c->applied, err);
            free(it.payload);
            continue;
        }
        c->cur = it;
        c->cur_active = true;
        c->cur_index = last;
        c->cur_term = raft_term(rf);
    }
}

/* --- applying committed entries -------------------------------------------------------------- */

static void ctl_apply_entry(struct ctl *c, const struct raft_entry *e)
{
    if (e->type != RAFT_ENTRY_NORMAL || e->len == 0)
        return;
    struct batch_header h;
    struct batch_record rec;
    if (batch_reader_open(c->br, e->data, e->len, &h) || (h.flags & BATCH_FLAG_CONTROL) ||
        batch_reader_next(c->br, &rec) != 1 || rec.key_len != 1 || rec.value_len < 0) {
        if (!(h.flags & BATCH_FLAG_CONTROL))
            RL_WARN("controller: entry %" PRIu64 " is not a controller record; skipped",
                    e->index);
        return;
    }
    if (rec.key[0] == CTL_KEY_REG) {
        ctl_apply_registration(c, rec.value, (size_t)rec.value_len, e->index);
        return;
    }
    if (rec.key[0] != CTL_KEY_META)
        return;
    if (++c->meta_seen <= c->skip_meta)
        return; /* in metadata.log already (replayed at start) */
    struct meta_proposal *pr = NULL;
    if (c->local.active && c->local.answered && c->local.index == e->index) {
        pr = c->local.pr;
        ctl_local_clear(c);
    }
    if (meta_commit_record(c->meta, rec.value, (size_t)rec.value_len, pr)) {
        RL_ERROR("controller: out of memory applying entry %" PRIu64, e->index);
        if (pr)
            meta_proposal_refused(c->meta, pr, -ENOMEM, "out of memory");
    }
}

/* Truncates the controller log up to the last durable checkpoint once more than
 * snapshot_entries entries lie before it. Never past that checkpoint: everything up to it is
 * in this node's metadata.log and checkpoint, both synced (the invariant in ctl.h). Called
 * after each checkpoint written. */
static void ctl_compact(struct ctl *c)
{
    if (!c->has_durable_ck || c->inst.active)
        return;
    uint64_t upto = c->durable_ck->applied, start = raftlog_log_start(c->rl);
    /* A leader keeps what the members it hears from still need, so a follower that is merely
     * slow gets entries, not a snapshot; a member silent past the session timeout gets a
     * snapshot when it is back. */
    const struct raft *rf = repl_group_raft(c->g);
    int64_t now = ctl_now_ms(c);
    for (uint32_t i = 0; raft_role(rf) == RAFT_LEADER && i < rf->n_progress; i++) {
        const struct raft_progress *pr = &rf->progress[i];
        struct peer_node_stats ps;
        peer_get_node_stats(c->peer, pr->id, &ps);
        if (pr->id != c->cfg.self && ps.last_heard_ms &&
            now - ps.last_heard_ms < (int64_t)c->cfg.session_timeout_ms && pr->match < upto)
            upto = pr->match;
    }
    /* After an install the checkpoint may lie past what the log holds yet (the fetched
     * checkpoint is the answering node's): the core compacts only committed entries. */
    if (upto > raft_commit(rf))
        upto = raft_commit(rf);
    if (upto <= start || upto - start <= c->cfg.snapshot_entries)
        return;
    RL_ASSERTF(upto <= c->applied && upto <= c->durable_ck->applied,
               "controller: truncation to %" PRIu64 " past applied %" PRIu64, upto, c->applied);
    int rc = plog_advance_start(c->plog, upto);
    if (rc) {
        RL_WARN("controller: cannot truncate the controller log to index %" PRIu64 ": %s",
                upto, rl_strerror(rc));
        return;
    }
    c->compactions++;
    RL_INFO("controller: log truncated: it now starts after index %" PRIu64 " (was %" PRIu64
            ")", upto, start);
}

/* Records how far this broker applied, once `every` entries past the last checkpoint and once
 * metadata.log holds every record applied (the checkpoint counts them). */
static void ctl_checkpoint(struct ctl *c, uint64_t every)
{
    if (c->applied < c->ckpt_index + every || meta_commits_pending(c->meta))
        return;
    struct ctlckpt *ck = calloc(1, sizeof(*ck));
    if (!ck)
        return;
    ck->applied = c->applied;
    ck->meta_seen = c->meta_seen;
    ck->n_brokers = c->n_brokers;
    memcpy(ck->brokers, c->brokers, c->n_brokers * sizeof(c->brokers[0]));
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/%s", c->cfg.data_dir, CTL_DIR);
    int rc = ctlckpt_write(dir, ck);
    if (rc == 0) {
        c->ckpt_index = c->applied;
        c->ckpt_due = false;
        *c->durable_ck = *ck; /* served to nodes behind a log start; bounds our own */
        c->has_durable_ck = true;
        free(ck);
        ctl_compact(c);
        return;
    }
    free(ck);
    c->ckpt_index = c->applied; /* retried after the next `every` entries, not every turn */
    c->ckpt_due = false;
    if (!c->ckpt_warned)
        RL_WARN("controller: cannot write the apply checkpoint in %s: %s (a restart replays "
                "more of the controller log)", dir, rl_strerror(rc));
    c->ckpt_warned = true;
}

/* Start-up: resumes applying after the checkpoint, with the broker table it recorded. Ignored
 * (the whole log is replayed) when it does not check or covers metadata records that
 * metadata.log lost (an unsynced tail). */
static void ctl_checkpoint_load(struct ctl *c)
{
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/%s", c->cfg.data_dir, CTL_DIR);
    struct ctlckpt *ck = calloc(1, sizeof(*ck));
    int rc = ck ? ctlckpt_read(dir, ck) : -ENOMEM;
    if (rc == 1 && ck->meta_seen > c->skip_meta)
        RL_WARN("controller: the apply checkpoint covers %" PRIu64 " metadata records but "
                "metadata.log holds %" PRIu64 "; replaying the whole controller log",
                ck->meta_seen, c->skip_meta);
    else if (rc == 1) {
        c->applied = c->ckpt_index = ck->applied;
        *c->durable_ck = *ck;
        c->has_durable_ck = true;
        c->meta_seen = ck->meta_seen;
        c->n_brokers = ck->n_brokers;
        memcpy(c->brokers, ck->brokers, ck->n_brokers * sizeof(ck->brokers[0]));
        for (uint32_t i = 0; i < c->n_brokers; i++) {
            const struct ctl_broker *b = &c->brokers[i];
            if (b->id != c->cfg.self && b->port)
                peer_add(c->peer, b->id, b->host, b->port); /* voters are there already */
        }
    } else if (rc < 0)
        RL_WARN("controller: the apply checkpoint in %s is unusable (%s); replaying the whole "
                "controller log", dir, rl_strerror(rc));
    free(ck);
}

/* --- snapshot install: the metadata behind a log start (ctl.h) ------------------------------ */

/* Snapshot chunk request, PEER_CTL_IMAGE_REQ (little-endian): off 0 u64 req_id | 8 u64 the
 * asker's log start (the answering checkpoint must cover it) | 16 u64 first "m" record wanted
 * | 24 u32 max record bytes. The answer is a chunk (ctlckpt.h). */
#define CTL_IMAGE_REQ_BYTES 28

static void ctl_image_answer(struct ctl *c, uint32_t to, uint64_t req_id, int status,
                             const uint8_t *recs, size_t recs_len, uint32_t n_recs,
                             uint64_t first)
{
    size_t cap = ctlckpt_chunk_bytes(status ? 0 : c->durable_ck->n_brokers, recs_len);
    uint8_t *buf = malloc(cap);
    if (!buf)
        return; /* the asker asks again */
    size_t len = ctlckpt_chunk_encode(buf, req_id, status, c->durable_ck, first, recs, recs_len,
                                      n_recs);
    peer_send(c->peer, to, PEER_CTL_IMAGE_RESP, buf, len);
    free(buf);
}

/* Serves one chunk from this node's last durable checkpoint: the "m" records [first, M) of
 * group 0, which follow this broker's legacy records in its metadata.log. */
static void ctl_image_serve(struct ctl *c, uint32_t from, const uint8_t *body, size_t len)
{
    if (len < CTL_IMAGE_REQ_BYTES)
        return;
    uint64_t req_id = rl_load_le64(body), want = rl_load_le64(body + 8);
    uint64_t first = rl_load_le64(body + 16);
    size_t max_bytes = rl_load_le32(body + 24);
    const struct ctlckpt *ck = c->durable_ck;
    if (!c->has_durable_ck || ck->applied < want || first > ck->meta_seen) {
        ctl_image_answer(c, from, req_id, RL_E_OFFSET_OUT_OF_RANGE, NULL, 0, 0, first);
        return;
    }
    if (max_bytes > CTL_IMAGE_CHUNK_BYTES || max_bytes == 0)
        max_bytes = CTL_IMAGE_CHUNK_BYTES;
    size_t cap = CTL_IMAGE_CHUNK_BYTES, got = 0;
    uint32_t n = 0;
    uint8_t *recs = malloc(cap);
    int rc = recs ? 0 : -ENOMEM;
    if (rc == 0 && first < ck->meta_seen)
        rc = meta_log_read(c->meta, c->legacy_records + first,
                           c->legacy_records + ck->meta_seen, max_bytes, recs, cap, &got, &n);
    if (rc == -ENOBUFS) { /* one record larger than a chunk: it goes alone */
        free(recs);
        cap = METALOG_MAX_RECORD_BYTES + CTLCKPT_CHUNK_RECORD_HEADER;
        recs = malloc(cap);
        rc = recs ? meta_log_read(c->meta, c->legacy_records + first, c->legacy_records +
                                  first + 1, cap, recs, cap, &got, &n) : -ENOMEM;
    }
    if (rc) {
        RL_WARN("controller: cannot serve metadata records from %" PRIu64 " to node %u: %s",
                first, from, rl_strerror(rc));
        ctl_image_answer(c, from, req_id, rc, NULL, 0, 0, first);
    } else
        ctl_image_answer(c, from, req_id, 0, recs, got, n, first);
    free(recs);
}

static void ctl_image_ask(struct ctl *c, int64_t now)
{
    struct ctl_install *in = &c->inst;
    uint32_t leader = raft_leader(repl_group_raft(c->g)), to = 0;
    /* The leader (its checkpoint covers its own log start) and, every other try, the voters
     * in turn: a snapshot from a former leader may be ahead of the new one's checkpoint. */
    if (leader && leader != c->cfg.self && in->attempt % 2 == 0)
        to = leader;
    for (uint32_t k = 0; !to && k < c->cfg.n_voters; k++) {
        uint32_t id = c->cfg.voters[(in->attempt / 2 + k) % c->cfg.n_voters].id;
        if (id != c->cfg.self)
            to = id;
    }
    in->attempt++;
    in->sent_ms = now;
    if (in->attempt % 30 == 0)
        RL_WARN("controller: still fetching the metadata behind the log start (index %" PRIu64
                ") after %u requests, %" PRIu64 " records held; the answering nodes are behind "
                "it, unreachable, or send chunks that do not check (%" PRIu64 " so far)",
                raftlog_log_start(c->rl), in->attempt, in->have, in->failures);
    if (!to)
        return;
    uint8_t req[CTL_IMAGE_REQ_BYTES];
    rl_store_le64(req, ++in->req_id);
    rl_store_le64(req + 8, raftlog_log_start(c->rl));
    rl_store_le64(req + 16, in->have);
    rl_store_le32(req + 24, CTL_IMAGE_CHUNK_BYTES);
    peer_send(c->peer, to, PEER_CTL_IMAGE_REQ, req, sizeof(req));
}

/* A chunk: checked whole (ctlckpt_chunk_decode), then its records queued for metadata.log in
 * order; once they reach the answering checkpoint's M, that checkpoint is taken once they are
 * recorded (ctl_install_step). */
static void ctl_image_take(struct ctl *c, const uint8_t *body, size_t len)
{
    struct ctl_install *in = &c->inst;
    if (!in->active || in->final || len < 8 || rl_load_le64(body) != in->req_id)
        return; /* late, or an answer to an earlier request */
    struct ctlckpt_chunk ch;
    if (ctlckpt_chunk_decode(body, len, &ch, in->ck)) {
        in->failures++;
        RL_WARN("controller: a snapshot chunk does not check (%zu bytes); asking again", len);
        return; /* the retry timer asks again */
    }
    const struct ctlckpt *ck = in->ck;
    if (ch.status || ck->applied < raftlog_log_start(c->rl) || ck->meta_seen < in->have ||
        ch.first != in->have || ch.n_records > ck->meta_seen - in->have) {
        RL_DEBUG("controller: snapshot chunk not served (%s); asking again later",
                 rl_strerror(ch.status));
        return;
    }
    const uint8_t *p = ch.records;
    for (uint32_t i = 0; i < ch.n_records; i++) {
        uint32_t rl = rl_load_le32(p);
        if (meta_commit_record(c->meta, p + CTLCKPT_CHUNK_RECORD_HEADER, rl, NULL))
            return; /* out of memory: what was queued is a prefix; asked again from there */
        in->have++;
        p += CTLCKPT_CHUNK_RECORD_HEADER + (size_t)rl;
    }
    in->sent_ms = 0; /* the next chunk at once (once these are recorded) */
    in->final = in->have == ck->meta_seen;
}

/* Takes the fetched checkpoint once metadata.log holds every record it covers. */
static void ctl_install_finish(struct ctl *c)
{
    struct ctl_install *in = &c->inst;
    const struct ctlckpt *ck = in->ck;
    c->applied = ck->applied;
    c->meta_seen = ck->meta_seen;
    c->n_brokers = ck->n_brokers;
    memcpy(c->brokers, ck->brokers, ck->n_brokers * sizeof(ck->brokers[0]));
    for (uint32_t i = 0; i < c->n_brokers; i++) {
        const struct ctl_broker *b = &c->brokers[i];
        if (b->id != c->cfg.self && b->port)
            peer_add(c->peer, b->id, b->host, b->port);
        if (b->id == c->cfg.self && b->incarnation == c->incarnation)
            c->registered = true;
    }
    /* This broker's own change, committed at an index the install covered: it is in the
     * records just recorded, so a marker behind them ends it (as ctl_local_answer does). */
    if (c->local.active && c->local.answered && c->local.index <= c->applied) {
        struct meta_proposal *pr = c->local.pr;
        ctl_local_clear(c);
        if (meta_commit_record(c->meta, NULL, 0, pr))
            meta_proposal_refused(c->meta, pr, -ENOMEM, "out of memory");
    }
    in->active = in->final = false;
    in->installs++;
    c->ckpt_due = true; /* written below, before anything past it is applied */
    ctl_checkpoint(c, 0);
    RL_INFO("controller: snapshot installed: metadata as of controller index %" PRIu64 " (%"
            PRIu64 " records), %u brokers; applying the log after it", c->applied,
            c->meta_seen, c->n_brokers);
}

/* This node's applied index lies below its log start (a snapshot was installed, or the
 * checkpoint was lost): fetch the metadata up to a checkpoint at or past the log start. */
static void ctl_install_step(struct ctl *c)
{
    struct ctl_install *in = &c->inst;
    if (!in->active) {
        in->active = true;
        in->final = false;
        in->attempt = 0;
        in->sent_ms = 0;
        in->have = c->meta_seen > c->skip_meta ? c->meta_seen : c->skip_meta;
        RL_INFO("controller: the log starts after index %" PRIu64 " but this node applied up "
                "to %" PRIu64 "; fetching the metadata from %" PRIu64 " records on",
                raftlog_log_start(c->rl), c->applied, in->have);
    }
    if (meta_commits_pending(c->meta))
        return; /* one chunk at a time in memory */
    if (in->final) {
        ctl_install_finish(c);
        return;
    }
    int64_t now = ctl_now_ms(c);
    if (in->sent_ms == 0 || now - in->sent_ms >= CTL_IMAGE_RETRY_MS)
        ctl_image_ask(c, now);
}

static void ctl_apply(struct ctl *c)
{
    if (c->inst.active || raftlog_log_start(c->rl) > c->applied) {
        ctl_install_step(c);
        return;
    }
    uint64_t commit = raft_commit(repl_group_raft(c->g));
    struct raft_entry ents[CTL_APPLY_BATCH];
    for (uint32_t guard = 0; c->applied < commit && guard < 1024; guard++) {
        int n = raftlog_ops.entries(c->rl, c->applied + 1, commit, 4u << 20, ents,
                                    CTL_APPLY_BATCH);
        if (n <= 0) {
            raftlog_ready_done(c->rl);
            break; /* not yet written here (RL_E_FULL): a later turn applies it */
        }
        for (int i = 0; i < n; i++) {
            ctl_apply_entry(c, &ents[i]);
            c->applied = ents[i].index;
            c->start_entries_read += c->applied <= c->start_last_index;
        }
        raftlog_ready_done(c->rl);
    }
    ctl_checkpoint(c, c->ckpt_due ? 0 : CTLCKPT_EVERY);
}

/* A voter refused our hello: its voters list differs from ours. Once a majority of the voters
 * do, this node is the odd one out (ctl_fatal stops it); one refusing voter alone is the
 * misconfigured one and stops itself when the others refuse it. */
static void ctl_note_rejection(struct ctl *c, uint32_t from, uint64_t cid)
{
    bool voter = false;
    for (uint32_t i = 0; i < c->cfg.n_voters; i++)
        voter |= c->cfg.voters[i].id == from;
    if (!voter || cid == c->cluster_id)
        return;
    for (uint32_t i = 0; i < c->n_rejected; i++)
        if (c->rejected_by[i] == from)
            return;
    if (c->n_rejected == CTL_MAX_VOTERS)
        return;
    c->rejected_by[c->n_rejected] = from;
    c->rejected_cid[c->n_rejected++] = cid;
    RL_WARN("controller: voter %u refuses this node: its --voters list differs from ours "
            "(cluster id %016" PRIx64 ", ours %016" PRIx64 ")", from, cid, c->cluster_id);
}

int ctl_fatal(const struct ctl *c, char *err, size_t err_cap)
{
    if (c->n_rejected < c->cfg.n_voters / 2 + 1)
        return 0;
    char ids[CTL_MAX_VOTERS * 12] = "";
    size_t n = 0;
    for (uint32_t i = 0; i < c->n_rejected && n < sizeof(ids); i++)
        n += (size_t)snprintf(ids + n, sizeof(ids) - n, "%s%u", i ? ", " : "",
                              c->rejected_by[i]);
    snprintf(err, err_cap, "--voters disagrees with the majority of the voters: nodes %s "
             "(%u of %u voters) run another voters list (cluster id %016" PRIx64 ", this "
             "node's list makes %016" PRIx64 "); start this node with the same --voters "
             "string as the other nodes (same ids and host:port for every voter)", ids,
             c->n_rejected, c->cfg.n_voters, c->rejected_cid[0], c->cluster_id);
    return RL_E_INVALID_CONFIG;
}

/* --- transport ------------------------------------------------------------------------------- */

static int ctl_send(void *ctx, uint32_t to, const uint8_t *frame, size_t len)
{
    struct ctl *c = ctx;
    int rc = peer_send(c->peer, to, PEER_RAFT, frame, len);
    if (rc == 0)
        c->raft_bytes_sent += len;
    return rc;
}

static int ctl_send_buf(void *ctx, uint32_t to, uint8_t **buf, size_t *cap, size_t len)
{
    struct ctl *c = ctx;
    int rc = peer_send_buf(c->peer, to, PEER_RAFT, buf, cap, len);
    if (rc == 0)
        c->raft_bytes_sent += (uint64_t)len;
    return rc;
}

static size_t ctl_backlog(void *ctx, uint32_t to)
{
    struct ctl *c = ctx;
    return peer_backlog_bytes(c->peer, to);
}

static void ctl_on_frame(void *ctx, uint32_t from, uint8_t type, const uint8_t *body,
                         size_t len)
{
    struct ctl *c = ctx;
    switch (type) {
    case PEER_RAFT: {
        c->raft_bytes_received += len;
        int rc = repl_receive(c->repl, from, body, len);
        if (rc)
            RL_DEBUG("controller: a frame from node %u was malformed: %s", from,
                     rl_strerror(rc));
        return;
    }
    case PEER_PING:
        return; /* the transport noted when it arrived */
    case PEER_REJECTED:
        if (len >= 8)
            ctl_note_rejection(c, from, rl_load_le64(body));
        return;
    case PEER_FWD:
        if (len >= 9)
            ctl_enqueue(c, from, rl_load_le64(body), body[8], body + 9, len - 9);
        return;
    case PEER_CTL_IMAGE_REQ:
        ctl_image_serve(c, from, body, len);
        return;
    case PEER_CTL_IMAGE_RESP:
        ctl_image_take(c, body, len);
        return;
    case PEER_FWD_RESP: {
        if (len < 22)
            return;
        size_t ml = rl_load_le16(body + 20);
        char msg[520];
        if (ml > len - 22 || ml >= sizeof(msg))
            return;
        memcpy(msg, body + 22, ml);
        msg[ml] = 0;
        ctl_local_answer(c, rl_load_le64(body), (int)(int32_t)rl_load_le32(body + 8),
                         rl_load_le64(body + 12), msg);
        return;
    }
    default:
        RL_DEBUG("controller: unknown peer frame type %u from node %u", type, from);
    }
}

/* Sends a change to the leader (or queues it here when this node leads). */
static void ctl_forward(struct ctl *c, uint64_t req_id, uint8_t kind, const uint8_t *payload,
                        size_t len)
{
    uint32_t leader = raft_leader(repl_group_raft(c->g));
    if (leader == c->cfg.self) {
        ctl_enqueue(c, 0, req_id, kind, payload, len);
        return;
    }
    uint8_t *buf = malloc(9 + len);
    if (!buf)
        return;
    rl_store_le64(buf, req_id);
    buf[8] = kind;
    memcpy(buf + 9, payload, len);
    peer_send(c->peer, leader, PEER_FWD, buf, 9 + len);
    free(buf);
}

static void ctl_submit(void *ctx, struct meta_proposal *pr, const uint8_t *payload, size_t len)
{
    struct ctl *c = ctx;
    RL_ASSERT(!c->local.active); /* meta proposes one change at a time */
    if (c->stopping) {
        meta_proposal_refused(c->meta, pr, RL_E_SHUTTING_DOWN, "the broker is shutting down");
        return;
    }
    c->local.payload = malloc(len ? len : 1);
    if (!c->local.payload) {
        meta_proposal_refused(c->meta, pr, -ENOMEM, "out of memory");
        return;
    }
    memcpy(c->local.payload, payload, len);
    c->local.len = len;
    c->local.active = true;
    c->local.pr = pr;
    c->local.req_id = ++c->next_req;
    c->local.deadline_ms = ctl_now_ms(c) + CTL_PROPOSAL_TIMEOUT_MS;
    uint32_t leader = raft_leader(repl_group_raft(c->g));
    if (leader) {
        c->local.sent_to = leader;
        c->local.sent_ms = ctl_now_ms(c);
        ctl_forward(c, c->local.req_id, CTL_KEY_META, payload, len);
    }
}

/* --- group 0 --------------------------------------------------------------------------------- */

static void ctl_on_commit(void *ctx, struct repl_group *g, uint64_t commit)
{
    (void)ctx;
    (void)g;
    (void)commit; /* applied by ctl_turn, outside the driver's calls */
}

static void ctl_on_role(void *ctx, struct repl_group *g, enum raft_role role, uint64_t term,
                        uint32_t leader)
{
    struct ctl *c = ctx;
    (void)g;
    if (leader != c->last_leader || term != c->last_term) {
        if (leader)
            RL_INFO("controller: node %u leads in term %" PRIu64 "%s", leader, term,
                    leader == c->cfg.self ? " (this node)" : "");
        c->last_leader = leader;
        c->last_term = term;
    }
    (void)role;
}

static void ctl_durable_notify(void *ctx)
{
    repl_group_log_durable(ctx);
}

static int ctl_open_log(struct ctl *c, struct storage *st, char *err, size_t err_cap)
{
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/%s", c->cfg.data_dir, CTL_DIR);
    if (mkdir(dir, 0755) && errno != EEXIST) {
        int rc = -errno;
        snprintf(err, err_cap, "cannot create %s: %s", dir, rl_strerror(rc));
        return rc;
    }
    struct plog_config pc;
    plog_config_default(&pc);
    pc.retention_ms = -1;
    pc.retention_bytes = -1;
    pc.segment_bytes = 64u << 20;
    pc.segment_ms = INT64_MAX / 4;
    pc.max_batch_bytes = CTL_MAX_RECORD_BYTES + 4096;
    int rc = plog_open(st, dir, &pc, NULL, &c->plog);
    if (rc == 0)
        rc = raftlog_open(c->io, c->plog, dir, c->arena, &c->rl);
    if (rc == 0)
        rc = hstore_open(c->io, c->cfg.data_dir, &c->hs);
    if (rc)
        snprintf(err, err_cap, "cannot open the controller log in %s: %s", dir,
                 rl_strerror(rc));
    return rc;
}

static int ctl_open_group(struct ctl *c)
{
    struct repl_transport tr = {.send = ctl_send, .ctx = c, .backlog = ctl_backlog,
                                .send_buf = ctl_send_buf, .headroom = PEER_FRAME_HEADER_BYTES};
    c->repl = repl_create(c->cfg.self, c->hs, &tr);
    if (!c->repl)
        return -ENOMEM;
    uint32_t ticks = c->cfg.election_timeout_ms / c->cfg.tick_ms;
    struct repl_group_options o = {
        .id = CTL_GROUP,
        .raft = {.id = c->cfg.self, .election_ticks = ticks < 3 ? 3 : ticks,
                 .heartbeat_ticks = 1, .seed = c->incarnation ^ c->cfg.self, .pre_vote = true,
                 .check_quorum = true, .log_ops = &raftlog_ops, .log_ctx = c->rl},
        .log = &repl_raftlog_ops,
        .on_commit = ctl_on_commit,
        .on_role = ctl_on_role,
        .ctx = c,
    };
    struct raft_config initial = {.n_voters = c->cfg.n_voters};
    for (uint32_t i = 0; i < c->cfg.n_voters; i++)
        initial.voters[i] = c->cfg.voters[i].id;
    /* What the log starts after: a truncation or an installed snapshot moved it. */
    int rc = raftlog_snapshot(c->rl, &initial, &o.snap);
    if (rc)
        return rc;
    rc = repl_group_add(c->repl, &o, &c->g);
    if (rc)
        return rc;
    raftlog_set_notify(c->rl, ctl_durable_notify, c->g);
    return 0;
}

static uint64_t ctl_random64(void)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
            v = 0;
        close(fd);
    }
    if (!v) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
    }
    return v ? v : 1;
}

static int ctl_check_config(const struct ctl_config *cfg, char *err, size_t err_cap)
{
    const struct ctl_voter *me = NULL;
    for (uint32_t i = 0; i < cfg->n_voters; i++)
        if (cfg->voters[i].id == cfg->self)
            me = &cfg->voters[i];
    if (cfg->self == 0) {
        snprintf(err, err_cap, "--voters needs --node-id N (N >= 1, this node's id in the "
                 "voters list)");
        return RL_E_INVALID_CONFIG;
    }
    for (uint32_t i = 0; i < cfg->n_voters; i++) {
        const struct ctl_voter *v = &cfg->voters[i];
        if (v->id == cfg->self || v->port != cfg->listen_port ||
            strcmp(v->host, cfg->listen_host))
            continue;
        /* Two nodes on one address: the peers would take this node for the other one. */
        snprintf(err, err_cap, "--listen %s:%u is the address --voters gives to node %u, not "
                 "to this node %u: start this node with its own --listen address (and, if it "
                 "is a voter, the same one in --voters), or with --node-id %u", cfg->listen_host,
                 cfg->listen_port, v->id, cfg->self, v->id);
        return RL_E_INVALID_CONFIG;
    }
    if (!me)
        return 0; /* a broker outside the quorum: it joins group 0 as a learner */
    if (me->port != cfg->listen_port) {
        snprintf(err, err_cap, "--voters gives node %u the address %s:%u but it listens on "
                 "%s:%u; the voters list must name each node's --listen address", cfg->self,
                 me->host, me->port, cfg->listen_host, cfg->listen_port);
        return RL_E_INVALID_CONFIG;
    }
    return 0;
}

int ctl_open(struct io *io, struct storage *st, struct meta *m, const struct ctl_config *cfg,
             struct ctl **out, char *err, size_t err_cap)
{
    int rc = ctl_check_config(cfg, err, err_cap);
    if (rc)
        return rc;
    struct ctl *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cfg = *cfg;
    if (!c->cfg.snapshot_entries)
        c->cfg.snapshot_entries = CTL_SNAPSHOT_ENTRIES_DEFAULT;
    c->io = io;
    c->meta = m;
    c->cluster_id = ctl_cluster_id(cfg);
    for (uint32_t i = 0; i < cfg->n_voters; i++)
        if (cfg->voters[i].id == cfg->self)
            c->voter = true;
    c->incarnation = ctl_random64();
    rc = ctl_identity(c, err, err_cap);
    if (rc)
        goto fail;
    c->skip_meta = meta_log_records(m) - c->legacy_records;
    struct peer_host ph = {ctl_on_frame, c};
    c->peer = peer_create(io, cfg->self, c->cluster_id, &ph);
    c->arena = raftlog_arena_create((8u << 20) + CTL_MAX_RECORD_BYTES + 4096);
    if (c->arena)
        raftlog_arena_set_catchup_rate(c->arena, io, cfg->catchup_bytes_per_sec);
    c->bb = batch_builder_create(CTL_MAX_RECORD_BYTES, BATCH_CODEC_NONE, 0);
    c->br = batch_reader_create(64 * 1024);
    c->durable_ck = calloc(1, sizeof(*c->durable_ck));
    c->inst.ck = calloc(1, sizeof(*c->inst.ck));
    if (!c->peer || !c->arena || !c->bb || !c->br || !c->durable_ck || !c->inst.ck) {
        rc = -ENOMEM;
        snprintf(err, err_cap, "out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < cfg->n_voters; i++) {
        if (cfg->voters[i].id == cfg->self)
            continue;
        rc = peer_add(c->peer, cfg->voters[i].id, cfg->voters[i].host, cfg->voters[i].port);
        if (rc) {
            snprintf(err, err_cap, "voter %u: bad address %s:%u", cfg->voters[i].id,
                     cfg->voters[i].host, cfg->voters[i].port);
            goto fail;
        }
    }
    rc = ctl_open_log(c, st, err, err_cap);
    if (rc)
        goto fail;
    ctl_checkpoint_load(c);
    rc = ctl_open_group(c);
    if (rc) {
        snprintf(err, err_cap, "cannot start the controller group: %s", rl_strerror(rc));
        goto fail;
    }
    c->start_last_index = raft_last_index(repl_group_raft(c->g));
    struct meta_committer mc = {ctl_submit, c};
    meta_set_committer(m, &mc);
    uint32_t ticks = c->cfg.election_timeout_ms / c->cfg.tick_ms;
    struct replicas_config rc_cfg = {.self = cfg->self, .election_ticks = ticks < 3 ? 3 : ticks,
                                     .tick_ms = cfg->tick_ms,
                                     .seed = c->incarnation ^ cfg->self,
                                     .leader_balance = cfg->leader_balance};
    rc = replicas_create(io, c->repl, c->arena, c->peer, m, &rc_cfg, &c->replicas, err,
                         err_cap);
    if (rc)
        goto fail;
    c->last_tick_ms = ctl_now_ms(c);
    RL_INFO("cluster %016" PRIx64 ": node %u, %s of %u voters, incarnation %016" PRIx64
            ", %" PRIu64 " controller records already applied, replay from index %" PRIu64
            " (checkpoint) to %" PRIu64, c->cluster_id, cfg->self,
            c->voter ? "one" : "a broker outside the quorum", cfg->n_voters, c->incarnation,
            c->skip_meta, c->ckpt_index + 1, c->start_last_index);
    *out = c;
    return 0;
fail:
    ctl_close(c);
    return rc;
}

uint32_t ctl_handoff(struct ctl *c)
{
    uint32_t led = c->replicas ? replicas_handoff(c->replicas) : 0;
    const struct raft *rf = repl_group_raft(c->g);
    if (raft_role(rf) != RAFT_LEADER || repl_group_failed(c->g))
        return led;
    /* The controller too: to the live voter holding the most of its log. */
    if (rf->transferee == 0) {
        uint32_t best = 0;
        uint64_t best_match = 0;
        int64_t now = ctl_now_ms(c);
        for (uint32_t i = 0; i < c->cfg.n_voters; i++) {
            uint32_t id = c->cfg.voters[i].id;
            const struct raft_progress *pr = raft_progress_of(rf, id);
            struct peer_node_stats ps;
            peer_get_node_stats(c->peer, id, &ps);
            if (id == c->cfg.self || !pr || !pr->voter || !ps.connected || !ps.last_heard_ms ||
                now - ps.last_heard_ms > (int64_t)c->cfg.election_timeout_ms)
                continue;
            if (!best || pr->match > best_match) {
                best = id;
                best_match = pr->match;
            }
        }
        if (!best || repl_transfer(c->repl, c->g, best) != 0)
            return led; /* no voter to take it: nothing to wait for */
    }
    return led + 1;
}

void ctl_begin_stop(struct ctl *c)
{
    c->stopping = true;
    if (c->local.active) {
        struct meta_proposal *pr = c->local.pr;
        ctl_local_clear(c);
        meta_proposal_refused(c->meta, pr, RL_E_SHUTTING_DOWN, "the broker is shutting down");
    }
}

void ctl_close(struct ctl *c)
{
    if (!c)
        return;
    if (c->g && c->meta)
        ctl_checkpoint(c, 1); /* a clean stop: the next start reads nothing it applied */
    if (c->meta)
        meta_set_committer(c->meta, NULL);
    if (c->cur_active)
        free(c->cur.payload);
    while (c->q_len) {
        free(c->queue[c->q_head].payload);
        c->q_head = (c->q_head + 1) % CTL_MAX_QUEUE;
        c->q_len--;
    }
    ctl_local_clear(c);
    /* Appends still in flight complete while raftlog_close waits for them: they must not
     * report to a group that is gone. */
    if (c->rl)
        raftlog_set_notify(c->rl, NULL, NULL);
    replicas_destroy(c->replicas); /* the partitions' groups leave the driver first */
    if (c->repl)
        repl_destroy(c->repl);
    if (c->rl)
        raftlog_close(c->rl);
    if (c->plog)
        plog_close(c->plog);
    if (c->hs)
        hstore_close(c->hs);
    peer_destroy(c->peer);
    if (c->arena)
        raftlog_arena_destroy(c->arena);
    batch_builder_destroy(c->bb);
    batch_reader_destroy(c->br);
    free(c->durable_ck);
    free(c->inst.ck);
    free(c);
}

bool ctl_adopt(struct ctl *c, int fd, const uint8_t *pre, size_t n)
{
    if (!peer_is_hello(pre, n))
        return false;
    peer_adopt(c->peer, fd, pre, n);
    return true;
}

/* --- the loop -------------------------------------------------------------------------------- */

void ctl_turn(struct ctl *c)
{
    peer_process(c->peer);
    if (c->replicas)
        replicas_watch_peers(c->replicas); /* a dead leader's followers campaign early */
    ctl_apply(c);
    ctl_local_refuse_due(c, false);
    ctl_lead(c);
    repl_flush(c->repl);
    peer_process(c->peer); /* what the flush queued goes out now, not next turn */
}

static void ctl_register(struct ctl *c, int64_t now)
{
    uint32_t leader = raft_leader(repl_group_raft(c->g));
    if (c->registered || c->stopping || (!leader && c->voter) ||
        now - c->reg_sent_ms < CTL_REG_RESEND_MS)
        return;
    uint8_t p[15 + 64 + 3 + 64];
    size_t hl = strlen(c->cfg.listen_host);
    if (hl > 63)
        hl = 63;
    rl_store_le32(p, c->cfg.self);
    rl_store_le64(p + 4, c->incarnation);
    rl_store_le16(p + 12, c->cfg.listen_port);
    p[14] = (uint8_t)hl;
    memcpy(p + 15, c->cfg.listen_host, hl);
    size_t len = 15 + hl;
    if (c->kafka_port) {
        size_t kl = strlen(c->kafka_host);
        rl_store_le16(p + len, c->kafka_port);
        p[len + 2] = (uint8_t)kl;
        memcpy(p + len + 3, c->kafka_host, kl);
        len += 3 + kl;
    }
    c->reg_sent_ms = now;
    if (leader) {
        ctl_forward(c, ++c->next_req, CTL_KEY_REG, p, len);
        return;
    }
    /* A learner learns the leader only from its appends, which come once it is registered:
     * it asks every voter, and the leader among them takes it. */
    uint8_t buf[9 + sizeof(p)];
    rl_store_le64(buf, ++c->next_req);
    buf[8] = CTL_KEY_REG;
    memcpy(buf + 9, p, len);
    for (uint32_t i = 0; i < c->cfg.n_voters; i++)
        peer_send(c->peer, c->cfg.voters[i].id, PEER_FWD, buf, 9 + len);
}

void ctl_set_kafka_address(struct ctl *c, const char *host, uint16_t port)
{
    snprintf(c->kafka_host, sizeof(c->kafka_host), "%s", host);
    c->kafka_port = port;
}

static void ctl_local_timers(struct ctl *c, int64_t now)
{
    struct ctl_local *l = &c->local;
    if (l->active && l->refused && now >= l->deadline_ms)
        ctl_local_refuse_due(c, true);
    if (!l->active || l->answered || l->refused)
        return;
    uint32_t leader = raft_leader(repl_group_raft(c->g));
    if (now >= l->deadline_ms) {
        char msg[300];
        snprintf(msg, sizeof(msg), "the controller did not commit the change within %d ms "
                 "(%s); a majority of the %u voters must be running and reachable",
                 CTL_PROPOSAL_TIMEOUT_MS, leader ? "its leader did not answer"
                                                  : "no controller leader is elected",
                 c->cfg.n_voters);
        struct meta_proposal *pr = l->pr;
        ctl_local_clear(c);
        meta_proposal_refused(c->meta, pr, RL_E_REQUEST_TIMED_OUT, msg);
        return;
    }
    if (leader && (l->sent_to != leader || now - l->sent_ms >= CTL_RESEND_MS)) {
        l->sent_to = leader;
        l->sent_ms = now;
        ctl_forward(c, l->req_id, CTL_KEY_META, l->payload, l->len);
    }
}

void ctl_tick(struct ctl *c)
{
    int64_t now = ctl_now_ms(c);
    for (uint32_t guard = 0; now - c->last_tick_ms >= (int64_t)c->cfg.tick_ms; guard++) {
        if (guard == 20) {
            c->last_tick_ms = now; /* the loop stalled: do not replay a burst of ticks */
            break;
        }
        repl_tick(c->repl);
        c->last_tick_ms += c->cfg.tick_ms;
    }
    if (c->replicas)
        replicas_tick(c->replicas);
    ctl_local_timers(c, now);
    ctl_register(c, now);
    if (now - c->last_ping_ms >= CTL_PING_MS) {
        c->last_ping_ms = now;
        for (uint32_t i = 0; i < c->cfg.n_voters; i++)
            if (c->cfg.voters[i].id != c->cfg.self)
                peer_send(c->peer, c->cfg.voters[i].id, PEER_PING, NULL, 0);
        for (uint32_t i = 0; i < c->n_brokers; i++) {
            uint32_t id = c->brokers[i].id;
            bool is_voter = false;
            for (uint32_t k = 0; k < c->cfg.n_voters; k++)
                is_voter |= c->cfg.voters[k].id == id;
            if (id != c->cfg.self && !is_voter)
                peer_send(c->peer, id, PEER_PING, NULL, 0);
        }
    }
    ctl_turn(c);
}

/* --- status ---------------------------------------------------------------------------------- */

void ctl_get_status(const struct ctl *c, struct ctl_status *out)
{
    memset(out, 0, sizeof(*out));
    const struct raft *rf = repl_group_raft(c->g);
    out->self = c->cfg.self;
    out->cluster_id = c->cluster_id;
    out->role = raft_role_name(raft_role(rf));
    out->leader = raft_leader(rf);
    out->term = raft_term(rf);
    out->commit = raft_commit(rf);
    out->applied = c->applied;
    out->last_index = raft_last_index(rf);
    out->log_start = raftlog_log_start(c->rl);
    out->installing = c->inst.active;
    out->n_voters = c->cfg.n_voters;
    int64_t now = ctl_now_ms(c);
    for (uint32_t i = 0; i < c->cfg.n_voters; i++) {
        uint32_t id = c->cfg.voters[i].id;
        const struct raft_progress *pr = raft_progress_of(rf, id);
        struct peer_node_stats ps;
        peer_get_node_stats(c->peer, id, &ps);
        out->voters[i].id = id;
        out->voters[i].match = pr ? pr->match : 0;
        if (id == c->cfg.self && raft_role(rf) == RAFT_LEADER)
            out->voters[i].match = rf->durable_index;
        out->voters[i].reachable = id == c->cfg.self ||
            (ps.last_heard_ms && now - ps.last_heard_ms < c->cfg.session_timeout_ms);
    }
    out->n_brokers = c->n_brokers;
    for (uint32_t i = 0; i < c->n_brokers; i++) {
        struct ctl_broker b = c->brokers[i];
        struct peer_node_stats ps;
        peer_get_node_stats(c->peer, b.id, &ps);
        b.alive = b.id == c->cfg.self ||
                  (ps.last_heard_ms && now - ps.last_heard_ms < c->cfg.session_timeout_ms);
        b.decommissioned = meta_broker_decommissioned(c->meta, b.id);
        out->brokers[i] = b;
    }
}

size_t ctl_status_json(const struct ctl *c, char *buf, size_t cap)
{
    struct ctl_status s;
    ctl_get_status(c, &s);
    size_t n = 0;
#define OUT(...)                                                                                \
    do {                                                                                        \
        if (n < cap)                                                                            \
            n += (size_t)snprintf(buf + n, cap - n, __VA_ARGS__);                               \
    } while (0)
    OUT("{\"node_id\":%u,\"cluster_id\":\"%016" PRIx64 "\",\"controller\":{\"role\":\"%s\","
        "\"leader\":%u,\"term\":%" PRIu64 ",\"commit\":%" PRIu64 ",\"applied\":%" PRIu64
        ",\"last_index\":%" PRIu64 ",\"log_start\":%" PRIu64 "},\"voters\":[", s.self,
        s.cluster_id, s.role, s.leader, s.term, s.commit, s.applied, s.last_index, s.log_start);
    int64_t now = ctl_now_ms(c);
    for (uint32_t i = 0; i < c->cfg.n_voters; i++) {
        const struct ctl_voter *v = &c->cfg.voters[i];
        struct peer_node_stats ps;
        peer_get_node_stats(c->peer, v->id, &ps);
        bool self = v->id == c->cfg.self;
        OUT("%s{\"id\":%u,\"address\":\"%s:%u\",\"connected\":%s,\"last_heard_ms_ago\":%lld}",
            i ? "," : "", v->id, v->host, v->port, self || ps.connected ? "true" : "false",
            self ? 0LL : ps.last_heard_ms ? (long long)(now - ps.last_heard_ms) : -1LL);
    }
    OUT("],\"brokers\":[");
    for (uint32_t i = 0; i < s.n_brokers; i++) {
        const struct ctl_broker *b = &s.brokers[i];
        OUT("%s{\"id\":%u,\"address\":\"%s:%u\",\"incarnation\":\"%016" PRIx64 "\","
            "\"epoch\":%" PRIu64 ",\"state\":\"%s\",\"decommissioned\":%s", i ? "," : "",
            b->id, b->host, b->port, b->incarnation, b->epoch, b->alive ? "alive" : "fenced",
            b->decommissioned ? "true" : "false");
        if (b->kafka_port)
            OUT(",\"kafka\":\"%s:%u\"", b->kafka_host, b->kafka_port);
        OUT("}");
    }
    OUT("]}\n");
#undef OUT
    if (n >= cap && cap)
        n = cap - 1;
    return n;
}

/* The transport per peer node: frames sent and dropped, bytes queued now and at most. */
static size_t ctl_peer_metrics_text(const struct ctl *c, char *buf, size_t cap)
{
    static const char *const names[] = {"frames_sent_total", "frames_dropped_total",
                                        "bytes_queued", "bytes_queued_max", "send_calls_total"};
    static const char *const types[] = {"counter", "counter", "gauge", "gauge", "counter"};
    size_t n = 0;
    for (uint32_t k = 0; k < 5; k++) {
        if (n < cap)
            n += (size_t)snprintf(buf + n, cap - n, "# TYPE ringlog_peer_%s %s\n", names[k],
                                  types[k]);
        for (uint32_t i = 0; i < c->n_brokers && n < cap; i++) {
            uint32_t id = c->brokers[i].id;
            if (id == c->cfg.self)
                continue;
            struct peer_node_stats ps;
            peer_get_node_stats(c->peer, id, &ps);
            uint64_t v[] = {ps.frames_sent, ps.frames_dropped, ps.bytes_queued,
                            ps.bytes_queued_max, ps.send_calls};
            n += (size_t)snprintf(buf + n, cap - n, "ringlog_peer_%s{node=\"%u\"} %" PRIu64
                                  "\n", names[k], id, v[k]);
        }
    }
    return n;
}

size_t ctl_metrics_text(const struct ctl *c, char *buf, size_t cap)
{
    struct ctl_status s;
    ctl_get_status(c, &s);
    struct repl_stats rs;
    repl_get_stats(c->repl, &rs);
    uint32_t fenced = 0, decom = 0;
    for (uint32_t i = 0; i < s.n_brokers; i++) {
        fenced += !s.brokers[i].alive;
        decom += s.brokers[i].decommissioned;
    }
    size_t n = 0;
#define M(name, type, v)                                                                        \
    do {                                                                                        \
        if (n < cap)                                                                            \
            n += (size_t)snprintf(buf + n, cap - n, "# TYPE ringlog_" name " " type             \
                                  "\nringlog_" name " %llu\n", (unsigned long long)(v));       \
    } while (0)
    M("controller_leader", "gauge", s.leader);
    M("controller_is_leader", "gauge", s.leader == s.self);
    M("controller_term", "gauge", s.term);
    M("controller_commit_index", "gauge", s.commit);
    M("controller_applied_index", "gauge", s.applied);
    M("controller_checkpoint_index", "gauge", c->ckpt_index);
    M("controller_start_entries_read", "gauge", c->start_entries_read);
    M("controller_log_start", "gauge", s.log_start);
    M("controller_snapshot_index", "gauge", repl_group_raft(c->g)->snap_index);
    M("controller_log_truncations_total", "counter", c->compactions);
    M("controller_snapshot_installing", "gauge", s.installing);
    M("controller_snapshot_installs_total", "counter", c->inst.installs);
    M("controller_snapshot_chunk_failures_total", "counter", c->inst.failures);
    M("controller_elections_total", "counter", rs.elections);
    M("controller_leader_changes_total", "counter", rs.leader_changes);
    M("controller_hardstate_fsyncs_total", "counter", rs.hstore_flushes);
    M("cluster_brokers", "gauge", s.n_brokers);
    M("cluster_brokers_fenced", "gauge", fenced);
    M("cluster_brokers_decommissioned", "gauge", decom);
    M("replication_sent_bytes_total", "counter", c->raft_bytes_sent);
    M("replication_received_bytes_total", "counter", c->raft_bytes_received);
    M("replication_appends_sent_total", "counter", rs.appends_sent);
    M("replication_probe_appends_total", "counter", rs.probe_appends);
    M("replication_entries_sent_total", "counter", rs.entries_sent);
    M("replication_entries_resent_total", "counter", rs.entries_resent);
    M("replication_bytes_resent_total", "counter", rs.bytes_resent);
    M("replication_stall_probes_total", "counter", rs.stall_probes);
    M("replication_flow_pauses_total", "counter", rs.flow_pauses);
    M("replication_flow_paused_appends_total", "counter", rs.flow_paused_appends);
    M("replication_frames_dropped_total", "counter", rs.frames_dropped);
    struct raftlog_arena_stats as = {0};
    if (c->arena)
        raftlog_arena_get_stats(c->arena, &as);
    M("replication_log_reads_total", "counter", as.send_reads);
    M("replication_log_read_bytes_total", "counter", as.send_read_bytes);
#undef M
    if (n < cap)
        n += ctl_peer_metrics_text(c, buf + n, cap - n);
    if (c->replicas && n < cap)
        n += replicas_metrics_text(c->replicas, buf + n, cap - n);
    if (n >= cap && cap)
        n = cap - 1;
    return n;
}
