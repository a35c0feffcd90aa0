/*
 * kmsg_internal: the symmetric field codec the per-API message functions are written in. One
 * function per message walks its fields in wire order; a kio either reads them from bytes into
 * the struct (decoding; arrays allocated from the arena) or writes them from the struct
 * (measuring or encoding), so a field cannot be read in one order and written in another.
 * Version-dependent fields take the first version that has them and, for decoding, the value
 * Kafka uses when a version lacks them.
 */
#ifndef RL_BROKER_KAFKA_KMSG_INTERNAL_H
#define RL_BROKER_KAFKA_KMSG_INTERNAL_H

#include "broker/kafka/kmsg.h"

struct kio {
    int decoding;
    struct kwire_reader r;   /* decoding */
    struct kwire_writer w;   /* measuring or encoding */
    struct arena *arena;     /* decoding: where arrays go */
    int16_t version;
    int err;                 /* RL_E_FULL (arena) or RL_E_INVALID_ARGUMENT (unencodable) */
};

static inline int kio_failed(const struct kio *io)
{
    return io->err || io->r.err || io->w.overflow;
}

void kio_i8(struct kio *io, const char *field, int8_t *v);
void kio_i16(struct kio *io, const char *field, int16_t *v);
void kio_i32(struct kio *io, const char *field, int32_t *v);
void kio_i64(struct kio *io, const char *field, int64_t *v);
void kio_bool(struct kio *io, const char *field, int *v);
void kio_str(struct kio *io, const char *field, struct kstr *v);
void kio_nstr(struct kio *io, const char *field, struct kstr *v);
void kio_bytes(struct kio *io, const char *field, struct kbytes *v);
void kio_records(struct kio *io, const char *field, struct kmsg_records *v);
void kio_tags(struct kio *io, const char *field);

/* Versioned fields: present from version `since`; decoding an older version stores dflt. */
void kio_i8_since(struct kio *io, int16_t since, const char *field, int8_t *v, int8_t dflt);
void kio_i32_since(struct kio *io, int16_t since, const char *field, int32_t *v, int32_t dflt);
void kio_i64_since(struct kio *io, int16_t since, const char *field, int64_t *v, int64_t dflt);
void kio_bool_since(struct kio *io, int16_t since, const char *field, int *v, int dflt);
void kio_nstr_since(struct kio *io, int16_t since, const char *field, struct kstr *v);

/* An array of structs of item_size bytes (each at least min_wire_bytes on the wire). Decoding
 * reads the count and allocates zeroed items; encoding writes *n (-1 = null when nullable).
 * Returns the number of items to walk (0 for null or after a failure). */
int32_t kio_array(struct kio *io, const char *field, void **items, int32_t *n, size_t item_size,
                  size_t min_wire_bytes, int nullable);
/* Arrays of i32 and of strings (no per-item tags even when flexible). */
void kio_i32_array(struct kio *io, const char *field, int32_t **items, int32_t *n, int nullable);
void kio_str_array(struct kio *io, const char *field, struct kstr **items, int32_t *n,
                   int nullable);

#define KIO_ARRAY(io, field, ptr, n, min_wire, nullable)                                        \
    kio_array((io), (field), (void **)&(ptr), &(n), sizeof(*(ptr)), (min_wire), (nullable))

/* Per-API codecs (the kapi table points at these). body is the API's request or response. */
void kmsg_api_versions_req_io(struct kio *io, void *body);
void kmsg_api_versions_resp_io(struct kio *io, void *body);
void kmsg_metadata_req_io(struct kio *io, void *body);
void kmsg_metadata_resp_io(struct kio *io, void *body);
void kmsg_produce_req_io(struct kio *io, void *body);
void kmsg_produce_resp_io(struct kio *io, void *body);
void kmsg_fetch_req_io(struct kio *io, void *body);
void kmsg_fetch_resp_io(struct kio *io, void *body);
void kmsg_list_offsets_req_io(struct kio *io, void *body);
void kmsg_list_offsets_resp_io(struct kio *io, void *body);
void kmsg_offset_commit_req_io(struct kio *io, void *body);
void kmsg_offset_commit_resp_io(struct kio *io, void *body);
void kmsg_offset_fetch_req_io(struct kio *io, void *body);
void kmsg_offset_fetch_resp_io(struct kio *io, void *body);
void kmsg_find_coordinator_req_io(struct kio *io, void *body);
void kmsg_find_coordinator_resp_io(struct kio *io, void *body);
void kmsg_join_group_req_io(struct kio *io, void *body);
void kmsg_join_group_resp_io(struct kio *io, void *body);
void kmsg_heartbeat_req_io(struct kio *io, void *body);
void kmsg_leave_group_req_io(struct kio *io, void *body);
void kmsg_group_status_resp_io(struct kio *io, void *body);
void kmsg_sync_group_req_io(struct kio *io, void *body);
void kmsg_sync_group_resp_io(struct kio *io, void *body);
void kmsg_describe_groups_req_io(struct kio *io, void *body);
void kmsg_describe_groups_resp_io(struct kio *io, void *body);
void kmsg_list_groups_req_io(struct kio *io, void *body);
void kmsg_list_groups_resp_io(struct kio *io, void *body);
void kmsg_create_topics_req_io(struct kio *io, void *body);
void kmsg_create_topics_resp_io(struct kio *io, void *body);
void kmsg_delete_topics_req_io(struct kio *io, void *body);
void kmsg_delete_topics_resp_io(struct kio *io, void *body);
void kmsg_init_producer_id_req_io(struct kio *io, void *body);
void kmsg_init_producer_id_resp_io(struct kio *io, void *body);
void kmsg_describe_configs_req_io(struct kio *io, void *body);
void kmsg_describe_configs_resp_io(struct kio *io, void *body);

#endif
