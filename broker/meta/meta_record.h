/*
 * meta_record: the records of the metadata log, as plain C structs and as the bytes stored.
 * Topic path: admin service -> meta_propose (a struct meta_record) -> meta_record_encode ->
 * metalog (durable) -> meta_apply; start-up: metalog replay -> meta_record_decode ->
 * meta_apply. The same records will be the entries of the controller's Raft log.
 *
 * Stored form: the protobuf message MetaRecord of proto/ringlog.proto (the format of
 * <data>/metadata.log since its first version; it must not change). This file is the only
 * place in broker/meta that knows protobuf.
 *
 *   MetaRecord { oneof body {
 *     TopicSpec    create_topic = 1;  // configs hold only the keys set explicitly; owners
 *                                     // (cluster) the node owning each partition
 *     string       delete_topic = 2;
 *     TopicConfigs alter_configs = 3; // the full set of explicitly set keys after the change
 *     int64        producer_id_block_end = 4;
 *     AlterReplicasRequest reassign = 5;  // moves: each partition's target replicas;
 *                                         // remove_broker: decommissions it too;
 *                                         // recommission_broker: clears the mark; cancel:
 *                                         // moves carry the origin, which becomes the target
 *     PartitionMove reassign_done = 6; } } // a move finished: the replicas now
 *
 * A reassign record written before remove_broker, recommission_broker and cancel were stored
 * decodes with all three 0: it decommissions nothing, as it did when it was written.
 */
#ifndef RL_BROKER_META_RECORD_H
#define RL_BROKER_META_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum meta_partitioner {
    META_PARTITIONER_HASH = 0,  /* xxh3-64(key) % partitions */
    META_PARTITIONER_RANGE = 1, /* partition = number of split keys <= key */
};

struct meta_bytes {
    const uint8_t *data;
    size_t len;
};

struct meta_config {
    const char *key;
    const char *value;
};

/* A topic as CreateTopics describes it (and as its record stores it). */
struct meta_topic_spec {
    const char *name;
    int32_t partitions;
    int32_t replication_factor;   /* 0: the broker's default */
    int32_t partitioner;          /* enum meta_partitioner (anything else is refused) */
    size_t n_split_keys;
    const struct meta_bytes *split_keys;
    size_t n_configs;
    const struct meta_config *configs;
    size_t n_owners;              /* 0, or partitions: the node owning each (cluster placement) */
    const uint32_t *owners;
    size_t n_replicas;            /* 0, or partitions * replication_factor: each partition's
                                   * replicas, the preferred leader first (cluster placement) */
    const uint32_t *replicas;
    uint64_t incarnation;         /* cluster: unique per creation (set by the controller); 0:
                                   * a single broker or an older record */
};

/* A partition's replicas to be (REASSIGN) or now (REASSIGN_DONE). */
struct meta_move {
    const char *topic;
    uint32_t partition;
    uint32_t n_replicas;
    const uint32_t *replicas;
};

enum meta_record_kind {
    META_RECORD_UNKNOWN = 0,
    META_RECORD_CREATE_TOPIC,      /* spec (configs: only the keys set explicitly) */
    META_RECORD_DELETE_TOPIC,      /* name */
    META_RECORD_ALTER_CONFIGS,     /* name, configs: every explicitly set key after the change */
    META_RECORD_PRODUCER_ID_BLOCK, /* producer ids below block_end were handed out or reserved */
    META_RECORD_REASSIGN,          /* moves: partitions whose replicas move to these targets */
    META_RECORD_REASSIGN_DONE,     /* moves[0]: a move finished with these replicas */
};

struct meta_record {
    enum meta_record_kind kind;
    struct meta_topic_spec spec;   /* CREATE_TOPIC */
    const char *name;              /* DELETE_TOPIC, ALTER_CONFIGS */
    size_t n_configs;              /* ALTER_CONFIGS */
    const struct meta_config *configs;
    int64_t producer_id_block_end; /* PRODUCER_ID_BLOCK */
    uint64_t rollback_incarnation; /* DELETE_TOPIC: non-zero: undoes that creation (meta.c) */
    size_t n_moves;                /* REASSIGN (>= 1 unless it only (de/re)commissions a
                                    * broker), REASSIGN_DONE (1) */
    const struct meta_move *moves;
    uint32_t remove_broker;        /* REASSIGN: > 0: decommissions this broker (the moves are
                                    * the ones off it) */
    uint32_t recommission_broker;  /* REASSIGN: > 0: clears this broker's mark */
    bool cancel;                   /* REASSIGN: each move's replicas are the partition's replicas
                                    * (the origin of the running move), recorded as its target */
};

/* Encodes rec into a malloc'ed buffer (*out, *len). Returns 0, RL_E_INVALID_ARGUMENT for an
 * unknown kind, or -ENOMEM. */
int meta_record_encode(const struct meta_record *rec, uint8_t **out, size_t *len);

/* A decoded record; its pointers live in `owner` until meta_record_free. */
struct meta_record_decoded {
    struct meta_record rec;
    void *owner;
};

/* Decodes one stored record. Returns 0 (rec.kind META_RECORD_UNKNOWN for a kind this version
 * does not know), or RL_E_CORRUPT when the bytes do not decode. */
int meta_record_decode(const uint8_t *buf, size_t len, struct meta_record_decoded *out);
void meta_record_free(struct meta_record_decoded *d);

#endif
