/*
 * kmsg: Kafka requests and responses as plain C structs, and their codecs for every version in
 * the kapi table. Kafka listener path: frame -> kmsg_decode_request (header + body into structs
 * allocated from the request's arena) -> the wiring calls the protocol-neutral services with
 * these fields -> it fills the response struct -> kmsg_encode_response (iovecs: inline bytes
 * plus references to stored record data) -> socket.
 *
 * The structs follow the protocol's shape (topic -> partition arrays) so each maps onto a service
 * call without reshaping: Produce partitions carry the client's RecordBatch bytes (a view into
 * the frame, writable so kbatch can translate it in place); Fetch partitions answer with
 * kmsg_records, a list of iovecs that kbatch_serve built over stored batches.
 *
 * Conventions: every array is a pointer plus an int32_t count; a count of -1 marks a null array
 * where the protocol allows one. Strings are kstr views (len -1 = null). Fields that a version
 * lacks decode to Kafka's default for them (noted beside the field) and are not written.
 * Decoded views point into the caller's frame and the arena: both must outlive the struct.
 * Both directions of both messages are implemented (tests and tools act as clients), with one
 * function per message so that reading and writing cannot disagree on a field.
 */
#ifndef RL_BROKER_KAFKA_KMSG_H
#define RL_BROKER_KAFKA_KMSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "broker/kafka/kapi.h"
#include "broker/kafka/kframe.h"
#include "broker/kafka/kwire.h"

struct arena;

/* Record data (the `records` type). Decoded: data/len view the frame (len -1 = null). To encode
 * without copying, set iov/iovcnt (len = their total); otherwise data/len are written inline. */
struct kmsg_records {
    uint8_t *data;
    int32_t len;
    const struct iovec *iov;
    int32_t iovcnt;
};

/* --- ApiVersions (18) -------------------------------------------------------------------------- */
struct kmsg_api_versions_req {
    struct kstr client_software_name;    /* v3+ */
    struct kstr client_software_version; /* v3+ */
};
struct kmsg_api_version {
    int16_t api_key, min_version, max_version;
};
struct kmsg_api_versions_resp {
    int16_t error_code;
    struct kmsg_api_version *apis;
    int32_t n_apis;
    int32_t throttle_ms; /* v1+ */
};

/* --- Metadata (3) ------------------------------------------------------------------------------ */
struct kmsg_metadata_req {
    struct kstr *topics;
    int32_t n_topics;
    /* All topics: v0 sends an empty list, v1+ a null one (then an empty list means none). Set
     * on decode; on encode it picks the form for the version. */
    int all_topics;
    int allow_auto_topic_creation; /* v4+; default 1 */
};
struct kmsg_metadata_broker {
    int32_t node_id;
    struct kstr host;
    int32_t port;
    struct kstr rack; /* v1+; null */
};
struct kmsg_metadata_partition {
    int16_t error_code;
    int32_t partition;
    int32_t leader;
    int32_t *replicas;
    int32_t n_replicas;
    int32_t *isr;
    int32_t n_isr;
};
struct kmsg_metadata_topic {
    int16_t error_code;
    struct kstr name;
    int is_internal; /* v1+ */
    struct kmsg_metadata_partition *partitions;
    int32_t n_partitions;
};
struct kmsg_metadata_resp {
    int32_t throttle_ms; /* v3+ */
    struct kmsg_metadata_broker *brokers;
    int32_t n_brokers;
    struct kstr cluster_id; /* v2+; null */
    int32_t controller_id;  /* v1+; -1 */
    struct kmsg_metadata_topic *topics;
    int32_t n_topics;
};

/* --- Produce (0) ------------------------------------------------------------------------------- */
struct kmsg_produce_partition {
    int32_t partition;
    struct kmsg_records records; /* v3+: exactly one RecordBatch v2 (kbatch checks it) */
};
struct kmsg_produce_topic {
    struct kstr name;
    struct kmsg_produce_partition *partitions;
    int32_t n_partitions;
};
struct kmsg_produce_req {
    struct kstr transactional_id; /* null unless transactional (not served) */
    int16_t acks;                 /* 0: no response at all; 1; -1: all in-sync replicas */
    int32_t timeout_ms;
    struct kmsg_produce_topic *topics;
    int32_t n_topics;
};
struct kmsg_produce_partition_resp {
    int32_t partition;
    int16_t error_code;
    int64_t base_offset;
    int64_t log_append_time_ms; /* -1 unless the topic uses LogAppendTime */
    int64_t log_start_offset;   /* v5+; -1 */
};
struct kmsg_produce_topic_resp {
    struct kstr name;
    struct kmsg_produce_partition_resp *partitions;
    int32_t n_partitions;
};
struct kmsg_produce_resp {
    struct kmsg_produce_topic_resp *topics;
    int32_t n_topics;
    int32_t throttle_ms;
};

/* --- Fetch (1) --------------------------------------------------------------------------------- */
struct kmsg_fetch_partition {
    int32_t partition;
    int32_t current_leader_epoch; /* v9+; -1 = do not check */
    int64_t fetch_offset;
    int64_t log_start_offset; /* v5+; -1 (followers only) */
    int32_t max_bytes;
};
struct kmsg_fetch_topic {
    struct kstr name;
    struct kmsg_fetch_partition *partitions;
    int32_t n_partitions;
};
struct kmsg_forgotten_topic {
    struct kstr name;
    int32_t *partitions;
    int32_t n_partitions;
};
struct kmsg_fetch_req {
    int32_t replica_id; /* -1 for consumers */
    int32_t max_wait_ms;
    int32_t min_bytes;
    int32_t max_bytes;       /* v3+ */
    int8_t isolation_level;  /* v4+: 0 read_uncommitted, 1 read_committed */
    int32_t session_id;      /* v7+; 0 */
    int32_t session_epoch;   /* v7+; -1 */
    struct kmsg_fetch_topic *topics;
    int32_t n_topics;
    struct kmsg_forgotten_topic *forgotten; /* v7+ */
    int32_t n_forgotten;
};
struct kmsg_aborted_txn {
    int64_t producer_id;
    int64_t first_offset;
};
struct kmsg_fetch_partition_resp {
    int32_t partition;
    int16_t error_code;
    int64_t high_watermark;
    int64_t last_stable_offset; /* v4+; -1 */
    int64_t log_start_offset;   /* v5+; -1 */
    struct kmsg_aborted_txn *aborted; /* v4+; null (-1) or empty */
    int32_t n_aborted;
    struct kmsg_records records; /* never null in a response: len 0 when empty */
};
struct kmsg_fetch_topic_resp {
    struct kstr name;
    struct kmsg_fetch_partition_resp *partitions;
    int32_t n_partitions;
};
struct kmsg_fetch_resp {
    int32_t throttle_ms;
    int16_t error_code; /* v7+ */
    int32_t session_id; /* v7+; 0: no session */
    struct kmsg_fetch_topic_resp *topics;
    int32_t n_topics;
};

/* --- ListOffsets (2) --------------------------------------------------------------------------- */
#define KMSG_LIST_OFFSETS_LATEST (-1)
#define KMSG_LIST_OFFSETS_EARLIEST (-2)
struct kmsg_list_offsets_partition {
    int32_t partition;
    int64_t timestamp; /* -1 latest, -2 earliest, >= 0 first offset with timestamp >= it */
};
struct kmsg_list_offsets_topic {
    struct kstr name;
    struct kmsg_list_offsets_partition *partitions;
    int32_t n_partitions;
};
struct kmsg_list_offsets_req {
    int32_t replica_id;
    int8_t isolation_level; /* v2+; 0 */
    struct kmsg_list_offsets_topic *topics;
    int32_t n_topics;
};
struct kmsg_list_offsets_partition_resp {
    int32_t partition;
    int16_t error_code;
    int64_t timestamp; /* -1 for latest/earliest and for no match */
    int64_t offset;    /* -1 for no match */
};
struct kmsg_list_offsets_topic_resp {
    struct kstr name;
    struct kmsg_list_offsets_partition_resp *partitions;
    int32_t n_partitions;
};
struct kmsg_list_offsets_resp {
    int32_t throttle_ms; /* v2+ */
    struct kmsg_list_offsets_topic_resp *topics;
    int32_t n_topics;
};

/* --- OffsetCommit (8) -------------------------------------------------------------------------- */
struct kmsg_offset_commit_partition {
    int32_t partition;
    int64_t committed_offset; /* the next offset to read */
    struct kstr metadata;     /* nullable */
};
struct kmsg_offset_commit_topic {
    struct kstr name;
    struct kmsg_offset_commit_partition *partitions;
    int32_t n_partitions;
};
struct kmsg_offset_commit_req {
    struct kstr group_id;
    int32_t generation_id; /* -1 with member "" = a commit outside any generation */
    struct kstr member_id;
    int64_t retention_time_ms; /* v2-v4; -1 = the broker's default */
    struct kmsg_offset_commit_topic *topics;
    int32_t n_topics;
};
struct kmsg_partition_error {
    int32_t partition;
    int16_t error_code;
};
struct kmsg_offset_commit_topic_resp {
    struct kstr name;
    struct kmsg_partition_error *partitions;
    int32_t n_partitions;
};
struct kmsg_offset_commit_resp {
    int32_t throttle_ms; /* v3+ */
    struct kmsg_offset_commit_topic_resp *topics;
    int32_t n_topics;
};

/* --- OffsetFetch (9) --------------------------------------------------------------------------- */
struct kmsg_offset_fetch_topic {
    struct kstr name;
    int32_t *partitions;
    int32_t n_partitions;
};
struct kmsg_offset_fetch_req {
    struct kstr group_id;
    struct kmsg_offset_fetch_topic *topics; /* v2+: null (-1) = every committed partition */
    int32_t n_topics;
};
struct kmsg_offset_fetch_partition_resp {
    int32_t partition;
    int64_t committed_offset; /* -1 when nothing is committed */
    struct kstr metadata;     /* nullable */
    int16_t error_code;
};
struct kmsg_offset_fetch_topic_resp {
    struct kstr name;
    struct kmsg_offset_fetch_partition_resp *partitions;
    int32_t n_partitions;
};
struct kmsg_offset_fetch_resp {
    int32_t throttle_ms; /* v3+ */
    struct kmsg_offset_fetch_topic_resp *topics;
    int32_t n_topics;
    int16_t error_code; /* v2+ */
};

/* --- FindCoordinator (10) ---------------------------------------------------------------------- */
struct kmsg_find_coordinator_req {
    struct kstr key; /* the group id */
    int8_t key_type; /* v1+; 0 group, 1 transaction */
};
struct kmsg_find_coordinator_resp {
    int32_t throttle_ms; /* v1+ */
    int16_t error_code;
    struct kstr error_message; /* v1+; null */
    int32_t node_id;
    struct kstr host;
    int32_t port;
};

/* --- JoinGroup (11), SyncGroup (14), Heartbeat (12), LeaveGroup (13) --------------------------- */
struct kmsg_join_group_protocol {
    struct kstr name;       /* assignor: "range", "roundrobin", "cooperative-sticky" */
    struct kbytes metadata; /* opaque subscription bytes, stored and forwarded */
};
struct kmsg_join_group_req {
    struct kstr group_id;
    int32_t session_timeout_ms;
    int32_t rebalance_timeout_ms; /* v1+; v0: session_timeout_ms */
    struct kstr member_id;        /* "" on the first join */
    struct kstr protocol_type;    /* "consumer" */
    struct kmsg_join_group_protocol *protocols;
    int32_t n_protocols;
};
struct kmsg_join_group_member {
    struct kstr member_id;
    struct kbytes metadata; /* that member's bytes for the chosen protocol */
};
struct kmsg_join_group_resp {
    int32_t throttle_ms; /* v2+ */
    int16_t error_code;
    int32_t generation_id;
    struct kstr protocol_name;
    struct kstr leader;
    struct kstr member_id;
    struct kmsg_join_group_member *members; /* the leader's response only */
    int32_t n_members;
};
struct kmsg_sync_group_assignment {
    struct kstr member_id;
    struct kbytes assignment;
};
struct kmsg_sync_group_req {
    struct kstr group_id;
    int32_t generation_id;
    struct kstr member_id;
    struct kmsg_sync_group_assignment *assignments; /* the leader's; followers send none */
    int32_t n_assignments;
};
struct kmsg_sync_group_resp {
    int32_t throttle_ms; /* v1+ */
    int16_t error_code;
    struct kbytes assignment; /* this member's bytes from the leader, unchanged */
};
struct kmsg_heartbeat_req {
    struct kstr group_id;
    int32_t generation_id;
    struct kstr member_id;
};
struct kmsg_leave_group_req {
    struct kstr group_id;
    struct kstr member_id;
};
/* Heartbeat's and LeaveGroup's responses. */
struct kmsg_group_status_resp {
    int32_t throttle_ms; /* v1+ */
    int16_t error_code;
};

/* --- DescribeGroups (15), ListGroups (16) ------------------------------------------------------ */
struct kmsg_describe_groups_req {
    struct kstr *groups;
    int32_t n_groups;
};
struct kmsg_group_member_desc {
    struct kstr member_id;
    struct kstr client_id;
    struct kstr client_host;
    struct kbytes member_metadata;
    struct kbytes member_assignment;
};
struct kmsg_group_desc {
    int16_t error_code;
    struct kstr group_id;
    struct kstr state; /* "Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead" */
    struct kstr protocol_type;
    struct kstr protocol_data; /* the chosen protocol's name */
    struct kmsg_group_member_desc *members;
    int32_t n_members;
};
struct kmsg_describe_groups_resp {
    int32_t throttle_ms; /* v1+ */
    struct kmsg_group_desc *groups;
    int32_t n_groups;
};
struct kmsg_list_groups_req {
    int unused; /* the request body is empty */
};
struct kmsg_listed_group {
    struct kstr group_id;
    struct kstr protocol_type;
};
struct kmsg_list_groups_resp {
    int32_t throttle_ms; /* v1+ */
    int16_t error_code;
    struct kmsg_listed_group *groups;
    int32_t n_groups;
};

/* --- CreateTopics (19), DeleteTopics (20) ------------------------------------------------------ */
struct kmsg_create_topic_assignment {
    int32_t partition;
    int32_t *broker_ids;
    int32_t n_broker_ids;
};
struct kmsg_config_entry {
    struct kstr name;
    struct kstr value; /* nullable */
};
struct kmsg_create_topic {
    struct kstr name;
    int32_t num_partitions;     /* -1: broker default (v4+) or manual assignment */
    int16_t replication_factor; /* -1: broker default (v4+) or manual assignment */
    struct kmsg_create_topic_assignment *assignments;
    int32_t n_assignments;
    struct kmsg_config_entry *configs;
    int32_t n_configs;
};
struct kmsg_create_topics_req {
    struct kmsg_create_topic *topics;
    int32_t n_topics;
    int32_t timeout_ms;
    int validate_only; /* v1+ */
};
struct kmsg_topic_error {
    struct kstr name;
    int16_t error_code;
    struct kstr error_message; /* CreateTopics v1+; nullable */
};
struct kmsg_create_topics_resp {
    int32_t throttle_ms; /* v2+ */
    struct kmsg_topic_error *topics;
    int32_t n_topics;
};
struct kmsg_delete_topics_req {
    struct kstr *topic_names;
    int32_t n_topic_names;
    int32_t timeout_ms;
};
struct kmsg_delete_topics_resp {
    int32_t throttle_ms; /* v1+ */
    struct kmsg_topic_error *topics; /* error_message is not on the wire */
    int32_t n_topics;
};

/* --- InitProducerId (22) ----------------------------------------------------------------------- */
struct kmsg_init_producer_id_req {
    struct kstr transactional_id; /* null for an idempotent (non-transactional) producer */
    int32_t transaction_timeout_ms;
};
struct kmsg_init_producer_id_resp {
    int32_t throttle_ms;
    int16_t error_code;
    int64_t producer_id;
    int16_t producer_epoch;
};

/* --- DescribeConfigs (32) ---------------------------------------------------------------------- */
#define KMSG_RESOURCE_TOPIC 2
#define KMSG_RESOURCE_BROKER 4
enum kmsg_config_source {
    KMSG_CONFIG_SOURCE_UNKNOWN = 0,
    KMSG_CONFIG_SOURCE_TOPIC = 1,
    KMSG_CONFIG_SOURCE_DYNAMIC_BROKER = 2,
    KMSG_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER = 3,
    KMSG_CONFIG_SOURCE_STATIC_BROKER = 4,
    KMSG_CONFIG_SOURCE_DEFAULT = 5,
};
struct kmsg_describe_configs_resource {
    int8_t resource_type;
    struct kstr resource_name;
    struct kstr *config_names; /* null (-1): every config */
    int32_t n_config_names;
};
struct kmsg_describe_configs_req {
    struct kmsg_describe_configs_resource *resources;
    int32_t n_resources;
    int include_synonyms; /* v1+ */
};
struct kmsg_config_synonym {
    struct kstr name;
    struct kstr value;
    int8_t source;
};
struct kmsg_config_desc {
    struct kstr name;
    struct kstr value; /* nullable (sensitive values are null) */
    int read_only;
    int is_default;        /* v0 only */
    int8_t config_source;  /* v1+ */
    int is_sensitive;
    struct kmsg_config_synonym *synonyms; /* v1+ */
    int32_t n_synonyms;
};
struct kmsg_describe_configs_result {
    int16_t error_code;
    struct kstr error_message;
    int8_t resource_type;
    struct kstr resource_name;
    struct kmsg_config_desc *configs;
    int32_t n_configs;
};
struct kmsg_describe_configs_resp {
    int32_t throttle_ms;
    struct kmsg_describe_configs_result *results;
    int32_t n_results;
};

/* --- one request or response of any API ------------------------------------------------------- */
union kmsg_req_body {
    struct kmsg_produce_req produce;
    struct kmsg_fetch_req fetch;
    struct kmsg_list_offsets_req list_offsets;
    struct kmsg_metadata_req metadata;
    struct kmsg_offset_commit_req offset_commit;
    struct kmsg_offset_fetch_req offset_fetch;
    struct kmsg_find_coordinator_req find_coordinator;
    struct kmsg_join_group_req join_group;
    struct kmsg_heartbeat_req heartbeat;
    struct kmsg_leave_group_req leave_group;
    struct kmsg_sync_group_req sync_group;
    struct kmsg_describe_groups_req describe_groups;
    struct kmsg_list_groups_req list_groups;
    struct kmsg_api_versions_req api_versions;
    struct kmsg_create_topics_req create_topics;
    struct kmsg_delete_topics_req delete_topics;
    struct kmsg_init_producer_id_req init_producer_id;
    struct kmsg_describe_configs_req describe_configs;
};

union kmsg_resp_body {
    struct kmsg_produce_resp produce;
    struct kmsg_fetch_resp fetch;
    struct kmsg_list_offsets_resp list_offsets;
    struct kmsg_metadata_resp metadata;
    struct kmsg_offset_commit_resp offset_commit;
    struct kmsg_offset_fetch_resp offset_fetch;
    struct kmsg_find_coordinator_resp find_coordinator;
    struct kmsg_join_group_resp join_group;
    struct kmsg_group_status_resp heartbeat;
    struct kmsg_group_status_resp leave_group;
    struct kmsg_sync_group_resp sync_group;
    struct kmsg_describe_groups_resp describe_groups;
    struct kmsg_list_groups_resp list_groups;
    struct kmsg_api_versions_resp api_versions;
    struct kmsg_create_topics_resp create_topics;
    struct kmsg_delete_topics_resp delete_topics;
    struct kmsg_init_producer_id_resp init_producer_id;
    struct kmsg_describe_configs_resp describe_configs;
};

struct kmsg_request {
    struct kreq_header hdr;
    const struct kapi *api; /* NULL when the key is not served */
    union kmsg_req_body body;
};

/* An encoded message: iovcnt iovecs totalling bytes (size prefix included), living in the
 * arena (inline parts) and in the caller's buffers (record data referenced by kmsg_records). */
struct kmsg_out {
    struct iovec *iov;
    int iovcnt;
    size_t bytes;
};

/* Decodes one whole request frame (frame points at the size prefix; len = 4 + size, as
 * kframe_peek gave it) into *req, allocating arrays from a. Returns:
 *   0                         decoded; req->api and req->body are set
 *   RL_E_UNKNOWN_API          the key is not served; req->hdr is set
 *   RL_E_UNSUPPORTED_VERSION  the version is outside the range; req->hdr and req->api are set
 *   RL_E_FRAME_MALFORMED      the bytes do not parse (req->hdr may be partly set)
 *   RL_E_FULL                 the arena's limit was reached (a request too big for memory)
 * and writes a message naming the API, version, field and problem into err. What Kafka does
 * next, and so the listener: an ApiVersions request at an unsupported version is answered with
 * kmsg_encode_api_versions_fallback; every other failure closes the connection. The body's
 * views point into frame, which stays writable (kbatch translates Produce batches in place). */
int kmsg_decode_request(uint8_t *frame, size_t len, struct arena *a, struct kmsg_request *req,
                        char *err, size_t errlen);

/* Encodes the response to the request with header hdr (its api_key and api_version pick the
 * layout) from body, into inline bytes allocated from a plus the body's record iovecs.
 * Returns 0, RL_E_FULL (arena limit), or RL_E_INVALID_ARGUMENT (unknown API, or a string,
 * array or record length that does not fit its wire form). */
int kmsg_encode_response(const struct kreq_header *hdr, const union kmsg_resp_body *body,
                         struct arena *a, struct kmsg_out *out);

/* Fills an ApiVersions response body from the kapi table (error 0, throttle 0). */
void kmsg_api_versions_fill(struct kmsg_api_versions_resp *resp, struct arena *a);

/* The answer to ApiVersions at a version above the supported maximum: a v0-layout body with
 * UNSUPPORTED_VERSION and every served range (the client retries at a version it finds there). */
int kmsg_encode_api_versions_fallback(const struct kreq_header *hdr, struct arena *a,
                                      struct kmsg_out *out);

/* The client side, for tests and tools: encode a request (hdr->flexible is derived from the
 * table), and decode a response frame (size prefix included) to a request of key/version. */
int kmsg_encode_request(const struct kreq_header *hdr, const union kmsg_req_body *body,
                        struct arena *a, struct kmsg_out *out);
int kmsg_decode_response(int16_t api_key, int16_t api_version, uint8_t *frame, size_t len,
                         struct arena *a, int32_t *correlation_id, union kmsg_resp_body *body,
                         char *err, size_t errlen);

/* Copies an encoded message into one contiguous buffer from a (tests; fuzzing). NULL when the
 * arena is full. */
uint8_t *kmsg_flatten(const struct kmsg_out *out, struct arena *a);

#endif
