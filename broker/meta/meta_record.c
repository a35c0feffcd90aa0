/*
 * meta_record: see meta_record.h. Encoding builds the protobuf structs on the stack (and two
 * small arrays) and packs them; decoding unpacks with protobuf-c and points the plain structs
 * into the unpacked message, which the decoded record owns.
 */
#include "broker/meta/meta_record.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proto/ringlog.pb-c.h"

struct meta_record_owner {
    Ringlog__MetaRecord *msg;
    struct meta_bytes *keys;
    struct meta_config *configs;
    struct meta_move *moves;
};

/* Encodes a REASSIGN or REASSIGN_DONE record into msg (pm/pp: n_moves room each). */
static void meta_record_put_moves(const struct meta_record *rec, Ringlog__MetaRecord *msg,
                                  Ringlog__AlterReplicasRequest *ar, Ringlog__PartitionMove *pm,
                                  Ringlog__PartitionMove **pp)
{
    for (size_t i = 0; i < rec->n_moves; i++) {
        ringlog__partition_move__init(&pm[i]);
        pm[i].topic = (char *)rec->moves[i].topic;
        pm[i].partition = rec->moves[i].partition;
        pm[i].n_replicas = rec->moves[i].n_replicas;
        pm[i].replicas = (uint32_t *)rec->moves[i].replicas;
        pp[i] = &pm[i];
    }
    if (rec->kind == META_RECORD_REASSIGN_DONE) {
        msg->body_case = RINGLOG__META_RECORD__BODY_REASSIGN_DONE;
        msg->reassign_done = &pm[0];
        return;
    }
    ar->n_moves = rec->n_moves;
    ar->moves = pp;
    ar->remove_broker = rec->remove_broker;
    ar->recommission_broker = rec->recommission_broker;
    ar->cancel = rec->cancel;
    msg->body_case = RINGLOG__META_RECORD__BODY_REASSIGN;
    msg->reassign = ar;
}

/* The plain moves of decoded PartitionMove messages (NULL when out of memory). */
static struct meta_move *meta_record_get_moves(Ringlog__PartitionMove *const *pm, size_t n)
{
    struct meta_move *mv = calloc(n + 1, sizeof(*mv));
    for (size_t i = 0; mv && i < n; i++)
        mv[i] = (struct meta_move){pm[i]->topic, pm[i]->partition, (uint32_t)pm[i]->n_replicas,
                                   pm[i]->replicas};
    return mv;
}

/* Fills entries/ptrs (n of them) from configs. */
static void meta_record_put_configs(const struct meta_config *configs, size_t n,
                                    Ringlog__ConfigEntry *entries, Ringlog__ConfigEntry **ptrs)
{
    for (size_t i = 0; i < n; i++) {
        ringlog__config_entry__init(&entries[i]);
        entries[i].key = (char *)configs[i].key;
        entries[i].value = (char *)configs[i].value;
        ptrs[i] = &entries[i];
    }
}

int meta_record_encode(const struct meta_record *rec, uint8_t **out, size_t *len)
{
    Ringlog__MetaRecord msg = RINGLOG__META_RECORD__INIT;
    Ringlog__TopicSpec spec = RINGLOG__TOPIC_SPEC__INIT;
    Ringlog__TopicConfigs tc = RINGLOG__TOPIC_CONFIGS__INIT;
    size_t n_cfg = rec->kind == META_RECORD_CREATE_TOPIC ? rec->spec.n_configs : rec->n_configs;
    size_t n_keys = rec->kind == META_RECORD_CREATE_TOPIC ? rec->spec.n_split_keys : 0;
    Ringlog__ConfigEntry *entries = calloc(n_cfg + 1, sizeof(*entries));
    Ringlog__ConfigEntry **ptrs = calloc(n_cfg + 1, sizeof(*ptrs));
    ProtobufCBinaryData *keys = calloc(n_keys + 1, sizeof(*keys));
    Ringlog__AlterReplicasRequest ar = RINGLOG__ALTER_REPLICAS_REQUEST__INIT;
    size_t n_mv = rec->kind == META_RECORD_REASSIGN || rec->kind == META_RECORD_REASSIGN_DONE ?
                  rec->n_moves : 0;
    Ringlog__PartitionMove *pm = calloc(n_mv + 1, sizeof(*pm));
    Ringlog__PartitionMove **pp = calloc(n_mv + 1, sizeof(*pp));
    int rc = 0;
    if (!entries || !ptrs || !keys || !pm || !pp) {
        rc = -ENOMEM;
        goto out;
    }
    switch (rec->kind) {
    case META_RECORD_CREATE_TOPIC:
        spec.name = (char *)rec->spec.name;
        spec.partitions = rec->spec.partitions;
        spec.replication_factor = rec->spec.replication_factor;
        spec.partitioner = (Ringlog__Partitioner)rec->spec.partitioner;
        for (size_t i = 0; i < n_keys; i++) {
            keys[i].data = (uint8_t *)rec->spec.split_keys[i].data;
            keys[i].len = rec->spec.split_keys[i].len;
        }
        spec.n_split_keys = n_keys;
        spec.split_keys = keys;
        meta_record_put_configs(rec->spec.configs, n_cfg, entries, ptrs);
        spec.n_configs = n_cfg;
        spec.configs = ptrs;
        spec.n_owners = rec->spec.n_owners;
        spec.owners = (uint32_t *)rec->spec.owners;
        spec.n_replicas = rec->spec.n_replicas;
        spec.replicas = (uint32_t *)rec->spec.replicas;
        spec.incarnation = rec->spec.incarnation;
        msg.body_case = RINGLOG__META_RECORD__BODY_CREATE_TOPIC;
        msg.create_topic = &spec;
        break;
    case META_RECORD_DELETE_TOPIC:
        msg.body_case = RINGLOG__META_RECORD__BODY_DELETE_TOPIC;
        msg.delete_topic = (char *)rec->name;
        msg.rollback_incarnation = rec->rollback_incarnation;
        break;
    case META_RECORD_ALTER_CONFIGS:
        tc.name = (char *)rec->name;
        meta_record_put_configs(rec->configs, n_cfg, entries, ptrs);
        tc.n_configs = n_cfg;
        tc.configs = ptrs;
        msg.body_case = RINGLOG__META_RECORD__BODY_ALTER_CONFIGS;
        msg.alter_configs = &tc;
        break;
    case META_RECORD_PRODUCER_ID_BLOCK:
        msg.body_case = RINGLOG__META_RECORD__BODY_PRODUCER_ID_BLOCK_END;
        msg.producer_id_block_end = rec->producer_id_block_end;
        break;
    case META_RECORD_REASSIGN:
    case META_RECORD_REASSIGN_DONE:
        if ((n_mv == 0 && !rec->remove_broker && !rec->recommission_broker) ||
            (rec->kind == META_RECORD_REASSIGN_DONE && n_mv != 1)) {
            rc = RL_E_INVALID_ARGUMENT;
            goto out;
        }
        meta_record_put_moves(rec, &msg, &ar, pm, pp);
        break;
    default:
        rc = RL_E_INVALID_ARGUMENT;
        goto out;
    }
    *len = ringlog__meta_record__get_packed_size(&msg);
    *out = malloc(*len ? *len : 1);
    if (!*out) {
        rc = -ENOMEM;
        goto out;
    }
    ringlog__meta_record__pack(&msg, *out);
out:
    free(entries);
    free(ptrs);
    free(keys);
    free(pm);
    free(pp);
    return rc;
}

static struct meta_config *meta_record_get_configs(Ringlog__ConfigEntry **entries, size_t n)
{
    struct meta_config *c = calloc(n + 1, sizeof(*c));
    for (size_t i = 0; c && i < n; i++) {
        c[i].key = entries[i]->key;
        c[i].value = entries[i]->value;
    }
    return c;
}

int meta_record_decode(const uint8_t *buf, size_t len, struct meta_record_decoded *out)
{
    memset(out, 0, sizeof(*out));
    struct meta_record_owner *o = calloc(1, sizeof(*o));
    if (!o)
        return -ENOMEM;
    o->msg = ringlog__meta_record__unpack(NULL, len, buf);
    if (!o->msg) {
        free(o);
        return RL_E_CORRUPT;
    }
    out->owner = o;
    struct meta_record *rec = &out->rec;
    const Ringlog__MetaRecord *m = o->msg;
    switch (m->body_case) {
    case RINGLOG__META_RECORD__BODY_CREATE_TOPIC: {
        const Ringlog__TopicSpec *s = m->create_topic;
        o->keys = calloc(s->n_split_keys + 1, sizeof(*o->keys));
        o->configs = meta_record_get_configs(s->configs, s->n_configs);
        if (!o->keys || !o->configs)
            goto oom;
        for (size_t i = 0; i < s->n_split_keys; i++)
            o->keys[i] = (struct meta_bytes){s->split_keys[i].data, s->split_keys[i].len};
        rec->kind = META_RECORD_CREATE_TOPIC;
        rec->spec = (struct meta_topic_spec){
            .name = s->name, .partitions = s->partitions,
            .replication_factor = s->replication_factor, .partitioner = (int32_t)s->partitioner,
            .n_split_keys = s->n_split_keys, .split_keys = o->keys,
            .n_configs = s->n_configs, .configs = o->configs,
            .n_owners = s->n_owners, .owners = s->owners,
            .n_replicas = s->n_replicas, .replicas = s->replicas,
            .incarnation = s->incarnation};
        break;
    }
    case RINGLOG__META_RECORD__BODY_DELETE_TOPIC:
        rec->kind = META_RECORD_DELETE_TOPIC;
        rec->name = m->delete_topic;
        rec->rollback_incarnation = m->rollback_incarnation;
        break;
    case RINGLOG__META_RECORD__BODY_ALTER_CONFIGS:
        o->configs = meta_record_get_configs(m->alter_configs->configs,
                                             m->alter_configs->n_configs);
        if (!o->configs)
            goto oom;
        rec->kind = META_RECORD_ALTER_CONFIGS;
        rec->name = m->alter_configs->name;
        rec->n_configs = m->alter_configs->n_configs;
        rec->configs = o->configs;
        break;
    case RINGLOG__META_RECORD__BODY_PRODUCER_ID_BLOCK_END:
        rec->kind = META_RECORD_PRODUCER_ID_BLOCK;
        rec->producer_id_block_end = m->producer_id_block_end;
        break;
    case RINGLOG__META_RECORD__BODY_REASSIGN:
    case RINGLOG__META_RECORD__BODY_REASSIGN_DONE: {
        bool done = m->body_case == RINGLOG__META_RECORD__BODY_REASSIGN_DONE;
        Ringlog__PartitionMove *const one[1] = {m->reassign_done};
        size_t n = done ? 1 : m->reassign->n_moves;
        o->moves = meta_record_get_moves(done ? one : m->reassign->moves, n);
        if (!o->moves)
            goto oom;
        rec->kind = done ? META_RECORD_REASSIGN_DONE : META_RECORD_REASSIGN;
        rec->n_moves = n;
        rec->moves = o->moves;
        if (!done) {
            rec->remove_broker = m->reassign->remove_broker;
            rec->recommission_broker = m->reassign->recommission_broker;
            rec->cancel = m->reassign->cancel;
        }
        break;
    }
    default:
        rec->kind = META_RECORD_UNKNOWN;
        break;
    }
    return 0;
oom:
    meta_record_free(out);
    return -ENOMEM;
}

void meta_record_free(struct meta_record_decoded *d)
{
    struct meta_record_owner *o = d->owner;
    if (!o)
        return;
    ringlog__meta_record__free_unpacked(o->msg, NULL);
    free(o->keys);
    free(o->configs);
    free(o->moves);
    free(o);
    d->owner = NULL;
}
