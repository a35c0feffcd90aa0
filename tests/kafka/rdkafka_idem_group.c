/*
 * rdkafka_idem_group: librdkafka from C against the Kafka listener. CreateTopics makes a topic
 * of 6 partitions; an idempotent producer writes 100,000 records (acks=all); then a group of 3
 * consumers reads them, one member leaving part way, and every record must be read exactly
 * once: offsets are stored only after a record is processed and committed when partitions are
 * revoked, so no record is read twice across the rebalance and none is skipped.
 * Exits 0 when that held; prints what went wrong otherwise.
 */
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECORDS 100000
#define PARTITIONS 6
#define MEMBERS 3
#define LEAVE_AFTER 30000
#define DEADLINE_S 180
#define POLL_BURST 1000 /* messages one member takes per round */

static char topic[64];
static unsigned char seen[RECORDS];
static long delivered, failed_deliveries;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "rdkafka_idem_group: %s: %s\n", what, detail ? detail : "");
    exit(1);
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        die(k, err);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err)
        failed_deliveries++;
    else
        delivered++;
}

static void create_topic(rd_kafka_t *rk)
{
    char err[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, PARTITIONS, 1, err, sizeof(err));
    if (!nt)
        die("NewTopic", err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev || rd_kafka_event_error(ev))
        die("CreateTopics", ev ? rd_kafka_event_error_string(ev) : "no answer in 30 s");
    size_t n;
    const rd_kafka_topic_result_t **r =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    if (n != 1 || rd_kafka_topic_result_error(r[0]))
        die("CreateTopics", n == 1 ? rd_kafka_topic_result_error_string(r[0]) : "no result");
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
}

static void produce(const char *bootstrap)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[256];
    set(c, "bootstrap.servers", bootstrap);
    set(c, "enable.idempotence", "true");
    set(c, "linger.ms", "5");
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    if (!rk)
        die("producer", err);
    create_topic(rk);
    for (int i = 0; i < RECORDS; i++) {
        char v[16];
        int len = snprintf(v, sizeof(v), "%d", i);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(v, len),
                                      RD_KAFKA_V_VALUE(v, len), RD_KAFKA_V_MSGFLAGS(
                                          RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        if (e)
            die("produce", rd_kafka_err2str(e));
    }
    if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        die("flush", "records still unacknowledged after 60 s");
    if (delivered != RECORDS || failed_deliveries)
        die("delivery", "not every record was acknowledged exactly once");
    rd_kafka_destroy(rk);
}

/* Until all members hold partitions, assigned partitions stay paused: members joining at
 * different times (a loaded machine) must not let the first ones read everything alone. */
static int has_partitions[MEMBERS], formed;

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    int idx = (int)(intptr_t)opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        has_partitions[idx] = parts->cnt > 0;
        if (!formed)
            rd_kafka_pause_partitions(rk, parts);
        return;
    }
    rd_kafka_commit(rk, NULL, 0); /* what was processed; NO_OFFSET when nothing was */
    rd_kafka_assign(rk, NULL);
    has_partitions[idx] = 0;
}

/* Once every member holds partitions, they all start reading. */
static void start_when_formed(rd_kafka_t **m)
{
    for (int i = 0; i < MEMBERS; i++)
        if (!has_partitions[i])
            return;
    formed = 1;
    for (int i = 0; i < MEMBERS; i++) {
        rd_kafka_topic_partition_list_t *l;
        if (rd_kafka_assignment(m[i], &l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_resume_partitions(m[i], l);
            rd_kafka_topic_partition_list_destroy(l);
        }
    }
}

static rd_kafka_t *member(const char *bootstrap, const char *group, int idx)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[256];
    set(c, "bootstrap.servers", bootstrap);
    set(c, "group.id", group);
    set(c, "auto.offset.reset", "earliest");
    set(c, "enable.auto.commit", "false");
    set(c, "enable.auto.offset.store", "false");
    set(c, "heartbeat.interval.ms", "500"); /* members notice the leave sooner */
    rd_kafka_conf_set_rebalance_cb(c, on_rebalance);
    rd_kafka_conf_set_opaque(c, (void *)(intptr_t)idx);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
    if (!rk)
        die("consumer", err);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    if (rd_kafka_subscribe(rk, sub))
        die("subscribe", topic);
    rd_kafka_topic_partition_list_destroy(sub);
    return rk;
}

/* Processes one message: exactly-once bookkeeping, then the offset is stored. */
static int process(rd_kafka_t *rk, rd_kafka_message_t *m)
{
    char v[16] = {0};
    memcpy(v, m->payload, m->len < 15 ? m->len : 15);
    int i = atoi(v);
    if (i < 0 || i >= RECORDS)
        die("record out of range", v);
    if (seen[i])
        die("record read twice", v);
    seen[i] = 1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, m->partition)->offset = m->offset + 1;
    rd_kafka_offsets_store(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return 1;
}

int main(void)
{
    const char *bootstrap = getenv("KAFKA_BOOTSTRAP");
    if (!bootstrap)
        die("KAFKA_BOOTSTRAP", "not set");
    snprintf(topic, sizeof(topic), "idem-%d", (int)getpid());
    char group[64];
    snprintf(group, sizeof(group), "idem-g-%d", (int)getpid());
    produce(bootstrap);
    rd_kafka_t *m[MEMBERS];
    for (int i = 0; i < MEMBERS; i++)
        m[i] = member(bootstrap, group, i);
    long got = 0, reads[MEMBERS] = {0};
    int left = 0, left_member = -1;
    time_t end = time(NULL) + DEADLINE_S;
    while (got < RECORDS && time(NULL) < end) {
        /* Each member drains what it has without waiting (a member with nothing queued must
         * not slow the others down); only a round where nobody had anything waits, briefly,
         * on one member's queue. */
        long before = got;
        for (int i = 0; i < MEMBERS; i++) {
            for (int k = 0; m[i] && k < POLL_BURST; k++) {
                rd_kafka_message_t *msg = rd_kafka_consumer_poll(m[i], 0);
                if (!msg)
                    break;
                if (!msg->err) {
                    got += process(m[i], msg);
                    reads[i]++;
                }
                rd_kafka_message_destroy(msg);
                if (got % 5000 == 0)
                    rd_kafka_commit(m[i], NULL, 1);
            }
        }
        if (!formed)
            start_when_formed(m);
        int w = 0;
        while (w < MEMBERS - 1 && !m[w])
            w++; /* the member that waits: any that is still in the group */
        if (got == before && m[w]) {
            rd_kafka_message_t *msg = rd_kafka_consumer_poll(m[w], 10);
            if (msg) {
                if (!msg->err) {
                    got += process(m[w], msg);
                    reads[w]++;
                }
                rd_kafka_message_destroy(msg);
            }
        }
        if (!left && got >= LEAVE_AFTER) {
            /* The member that leaves is one that holds partitions and has read from them, so
             * its partitions move to the others part way (the last such member). */
            int who = -1;
            for (int i = 0; i < MEMBERS; i++)
                if (reads[i] > 0 && has_partitions[i])
                    who = i;
            if (who >= 0) {
                rd_kafka_consumer_close(m[who]); /* revokes: commits what it processed */
                rd_kafka_destroy(m[who]);
                m[who] = NULL;
                left_member = who;
                left = 1;
            }
        }
    }
    for (int i = 0; i < MEMBERS; i++)
        if (m[i]) {
            rd_kafka_consumer_close(m[i]);
            rd_kafka_destroy(m[i]);
        }
    if (got != RECORDS) {
        fprintf(stderr, "rdkafka_idem_group: read %ld of %d records in %d s%s\n", got, RECORDS,
                DEADLINE_S, formed ? "" : " (the group of 3 never formed)");
        return 1;
    }
    /* The group formed with all members holding partitions (formed), more than one of them
     * read, and one that had read left part way. */
    int readers = 0;
    for (int i = 0; i < MEMBERS; i++)
        readers += reads[i] > 0;
    if (!formed || readers < 2 || left_member < 0) {
        fprintf(stderr, "rdkafka_idem_group: the group did not share the work: formed %d, "
                "members read %ld, %ld, %ld, member %d left\n", formed, reads[0], reads[1],
                reads[2], left_member);
        return 1;
    }
    printf("rdkafka idempotent produce + group of %d (member %d left): %d records exactly once "
           "(members read %ld, %ld, %ld)\n", MEMBERS, left_member, RECORDS, reads[0], reads[1],
           reads[2]);
    return 0;
}
