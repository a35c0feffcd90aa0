/*
 * ctl: the controller of a cluster: Raft group 0 over the voters of --voters, whose log holds
 * the metadata records (broker/meta's vocabulary) and broker registrations. Where it sits:
 * server -> ctl -> meta (the state machine it feeds), replication (repl, raftlog over a plog,
 * hstore) and peer (the broker-to-broker transport over the native listener).
 *
 *   propose (any broker): admin request -> meta validates -> meta_committer.submit -> ctl ->
 *     the controller leader (itself, or forwarded over peer) -> the leader checks the record
 *     against its applied state, proposes it to group 0, and answers once it is committed and
 *     applied there -> the proposer's meta ends the request once it has applied the record
 *   apply (every broker): committed entries of group 0, in order -> meta_commit_record
 *     (metadata.log, then the table) and registrations -> the broker table
 *
 * Placement: before proposing a topic's creation the leader writes each partition's owner into
 * the record (round-robin over the registered brokers it hears from that are not decommissioned:
 * meta_broker_decommissioned); every broker opens only its own partitions and answers
 * NOT_LEADER for the others (broker/meta).
 *
 * A controller entry is a record batch of one record: key "m" with a MetaRecord value, or key
 * "r" with a registration (u32 node | u64 incarnation | u16 port | u8 host length | host, then,
 * from a broker with a Kafka listener, u16 Kafka port | u8 Kafka host length | Kafka host: a
 * registration without the tail, as older brokers wrote it, has no Kafka listener). A
 * broker's metadata.log holds every metadata record it applied, after the records it held
 * before it first joined a cluster (counted in the identity file), so a restart replays
 * metadata.log and skips that many "m" records of group 0.
 *
 * A node not in --voters is a broker outside the quorum: once its registration commits, the
 * leader adds it to group 0 as a learner (RAFT_MAX_LEARNERS of them), so it receives and applies
 * the controller log like the voters but never votes.
 *
 * Identity: <data>/node.id binds the directory to a node id and a cluster id (a hash of the
 * voters list) at first start; a later start with another id or another voters list refuses.
 *
 * Snapshots (truncation of the controller log). The applied checkpoint (ctlckpt.h, written
 * once metadata.log durably holds every record applied) is this node's snapshot: once the log
 * holds more than cfg.snapshot_entries entries before the last checkpoint written, the node
 * moves its log start to that checkpoint's index (plog_advance_start; the core follows,
 * raft_compact); a leader stops short of the match index of any member it heard from within
 * the session timeout (a slow follower gets entries; one down gets a snapshot once back).
 * Invariant: the log start never passes an index this node's own metadata.log and checkpoint
 * durably cover, so a restart resumes after the checkpoint and reads only the entries after
 * it.
 *
 * Catch-up past a log start (a node down while the leader truncated, a new broker): the
 * leader's core sends a snapshot message naming its log start S and the node's log restarts
 * empty at S (raftlog). Its applied index A is then below its log start, so it fetches the
 * metadata it lacks (PEER_CTL_IMAGE_REQ / RESP, bounded chunks): the answering node (the
 * leader, or another voter) serves from its own last durable checkpoint (index C >= S,
 * meta_seen M, broker table) the "m" records the asker lacks, read from its metadata.log
 * (every cluster node's metadata.log holds group 0's "m" records in log order after its own
 * legacy ones), each with its metadata.log checksum and the chunk with one more. The asker
 * checks a whole chunk before taking any of it, records its records in metadata.log through
 * meta_commit_record (each a state the log passed through: metadata is never a mix of two
 * histories), and once it holds M of them takes C as applied and the table, and writes its
 * checkpoint. A crash in between leaves metadata.log a prefix of the history and the old
 * checkpoint below the log start: the next start asks again from what metadata.log holds. A
 * chunk that does not check, a node not yet at S, or no answer: asked again after
 * CTL_IMAGE_RETRY_MS (of the next node). Serving a chunk reads the answering node's
 * metadata.log on the loop (blocking; rare: only nodes behind a log start ask). A node of an
 * earlier version neither serves nor asks: upgrade every node before one can fall behind.
 *
 * Files: <data>/raft-hardstate (hstore: term and vote), <data>/__controller/ (the plog of group
 * 0 and its raftlog checkpoint). Single-threaded: the shard's loop.
 */
#ifndef RL_BROKER_CLUSTER_CTL_H
#define RL_BROKER_CLUSTER_CTL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct io;
struct storage;
struct meta;
struct ctl;

#define CTL_IDENTITY_FILE "node.id"
#define CTL_DIR "__controller"
#define CTL_MAX_VOTERS 9
#define CTL_MAX_BROKERS 64
#define CTL_MAX_QUEUE 256             /* changes waiting at the leader; more are refused */
#define CTL_PROPOSAL_TIMEOUT_MS 6000 /* a change no leader committed by then fails */
#define CTL_RESEND_MS 2000            /* a forwarded change unanswered this long goes again */
#define CTL_SNAPSHOT_ENTRIES_DEFAULT 10000 /* controller.snapshot.entries */
#define CTL_IMAGE_CHUNK_BYTES (1u << 20) /* metadata records in one snapshot chunk (at least
                                          * one record, however large) */
#define CTL_IMAGE_RETRY_MS 1000           /* an unanswered or refused chunk request goes again */
#define CTL_PLACE_WAIT_MS 4000        /* a replicated topic waits this long for brokers to
                                       * register before too few are refused */

struct ctl_voter {
    uint32_t id;
    char host[64];
    uint16_t port;
};

struct ctl_config {
    uint32_t self;
    uint32_t n_voters;
    struct ctl_voter voters[CTL_MAX_VOTERS];
    char data_dir[PATH_MAX];
    char listen_host[64];       /* this broker's native listener, as registered */
    uint16_t listen_port;
    uint32_t tick_ms;           /* Raft tick */
    uint32_t election_timeout_ms;
    uint32_t session_timeout_ms; /* a broker silent this long is reported fenced */
    uint64_t catchup_bytes_per_sec; /* the loop's catch-up budget (raftlog.h; 0: no limit) */
    bool leader_balance;            /* preferred-leader balancing of replicated partitions */
    uint32_t snapshot_entries;      /* log entries before the checkpoint that trigger a
                                     * truncation (0: CTL_SNAPSHOT_ENTRIES_DEFAULT) */
};

/* Checks the identity file of data_dir against cfg (writing it on first start), opens group 0
 * and its transport, and makes itself meta's committer. Blocks. Returns 0 and *out, or a code
 * with a sentence in err (wrong node id, another cluster's directory, a voters list without
 * this node, ...). */
int ctl_open(struct io *io, struct storage *st, struct meta *m, const struct ctl_config *cfg,
             struct ctl **out, char *err, size_t err_cap);

/* A broker started without --voters: refuses a data directory that belongs to a cluster.
 * Returns 0 or RL_E_INVALID_CONFIG with err. */
int ctl_check_standalone(const char *data_dir, char *err, size_t err_cap);

/* A stopping broker, before ctl_begin_stop: hands leadership of the partitions it leads
 * (replicas_handoff) and of the controller to other in-sync replicas. Call it every turn until
 * it returns 0 (nothing led here any more) or the caller's deadline passes. */
uint32_t ctl_handoff(struct ctl *c);

/* Fails the change waiting for the controller (shutdown) and stops proposing. */
void ctl_begin_stop(struct ctl *c);
/* Closes group 0, its log and the transport. Blocks. */
void ctl_close(struct ctl *c);

/* A condition this node cannot run under, found after start (a majority of the voters refuse
 * this node's --voters list): returns its code with a sentence in err, or 0. The caller stops
 * the broker and exits non-zero. */
int ctl_fatal(const struct ctl *c, char *err, size_t err_cap);

/* Loop work, every turn: frames in, committed entries applied, the leader's queue, frames out. */
void ctl_turn(struct ctl *c);
/* Timers: Raft ticks due since the last call, resends, timeouts, registration. */
void ctl_tick(struct ctl *c);

/* The advertised address of this broker's Kafka listener, carried by its registration (call
 * before the loop runs, once the port is bound; host is copied, at most 63 bytes). */
void ctl_set_kafka_address(struct ctl *c, const char *host, uint16_t port);

/* Takes an accepted connection whose first bytes (pre, n) are a peer hello. Returns false when
 * they are not one (the caller keeps fd). */
bool ctl_adopt(struct ctl *c, int fd, const uint8_t *pre, size_t n);

/* One broker as the controller's log registered it. */
struct ctl_broker {
    uint32_t id;
    uint64_t incarnation;
    uint64_t epoch;   /* controller log index of its registration */
    char host[64];
    uint16_t port;
    char kafka_host[64]; /* its Kafka listener's advertised address; port 0: none */
    uint16_t kafka_port;
    bool alive;       /* this node heard from it within the session timeout (itself: true) */
    bool decommissioned; /* ctl_get_status: meta_broker_decommissioned (metadata, not part of
                          * the registration nor of the checkpoint's broker table) */
};

struct ctl_status {
    uint32_t self;
    uint64_t cluster_id;
    const char *role;  /* "leader", "follower", "candidate", "pre-candidate" */
    uint32_t leader;   /* 0: none known */
    uint64_t term, commit, applied, last_index;
    uint64_t log_start;       /* the controller log starts after this index */
    bool installing;          /* fetching the metadata behind a snapshot install */
    uint32_t n_voters;
    struct {
        uint32_t id;
        uint64_t match;  /* this node leads: the voter's log is durable up to here; else 0 */
        bool reachable;  /* heard from within the session timeout (itself: true) */
    } voters[CTL_MAX_VOTERS];
    uint32_t n_brokers;
    struct ctl_broker brokers[CTL_MAX_BROKERS];
};

void ctl_get_status(const struct ctl *c, struct ctl_status *out);
/* Prometheus lines (ringlog_controller_*, ringlog_cluster_*) into buf (NUL-terminated,
 * truncated to cap). Returns the length. */
size_t ctl_metrics_text(const struct ctl *c, char *buf, size_t cap);

/* The status as JSON into buf (NUL-terminated, truncated to cap). Returns the length. */
size_t ctl_status_json(const struct ctl *c, char *buf, size_t cap);

#endif
