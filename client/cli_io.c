/*
 * cli_io: `ringlog produce` (records from stdin lines) and `ringlog consume` (records to stdout
 * as text or JSON lines). produce exits 0 only when every record was acknowledged.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/client_internal.h"

#define MAX_REPORTED_ERRORS 5 /* failed records whose error is printed; the rest are counted */

struct produce_state {
    unsigned long long failed;
    char first_error[512];
};

/* Runs on the producer's I/O thread; produce_state is only touched here until flush returns. */
static void on_delivery(void *ctx, const struct rl_delivery *d)
{
    struct produce_state *s = ctx;
    if (!d->error)
        return;
    if (s->failed < MAX_REPORTED_ERRORS)
        fprintf(stderr, "ringlog: error: record to %s partition %d failed: %s\n", d->topic,
                d->partition, d->error_message[0] ? d->error_message : rl_strerror(d->error));
    s->failed++;
}

/* Prints progress on a terminal at most once a second. */
static void progress(const char *verb, unsigned long long n, int64_t *last_ms)
{
    if (!isatty(STDERR_FILENO))
        return;
    int64_t now = rlc_now_ms();
    if (now - *last_ms < 1000)
        return;
    *last_ms = now;
    fprintf(stderr, "\r%s %llu records", verb, n);
}

#define CLI_MAX_HEADERS 16

static int produce_lines(struct rl_producer *p, const char *topic, int32_t partition, int sep,
                         const struct rl_header *hdrs, uint32_t nhdrs,
                         unsigned long long *sent)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t last = rlc_now_ms();
    int rc = 0;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = 0;
        const char *key = NULL, *value = line;
        size_t klen = 0, vlen = (size_t)len;
        char *s = sep >= 0 ? memchr(line, sep, (size_t)len) : NULL;
        if (s) {
            key = line;
            klen = (size_t)(s - line);
            value = s + 1;
            vlen = (size_t)len - klen - 1;
        }
        struct rl_message m = {.topic = topic, .partition = partition, .key = key,
                               .key_len = klen, .value = value, .value_len = vlen,
                               .headers = hdrs, .header_count = nhdrs};
        rc = rl_producer_send_message(p, &m);
        if (rc) {
            cli_error("%s", rl_producer_last_error(p));
            break;
        }
        (*sent)++;
        if ((*sent & 0xFFF) == 0)
            progress("produced", *sent, &last);
    }
    free(line);
    return rc;
}

int cli_produce(struct cli *c)
{
    const char *topic = NULL, *v;
    int sep = -1;
    int32_t partition = RL_PARTITION_ANY;
    struct rl_header hdrs[CLI_MAX_HEADERS];
    uint32_t nhdrs = 0;
    bool idempotent = false;
    for (int i = 0; i < c->argc; i++) {
        if ((v = cli_opt(c, &i, "--key-separator"))) {
            if (strlen(v) != 1) {
                cli_error("--key-separator is one character, got \"%s\"", v);
                return CLI_EXIT_USAGE;
            }
            sep = (unsigned char)v[0];
        } else if ((v = cli_opt(c, &i, "--acks"))) {
            cli_conf_set(c, "acks", v);
        } else if ((v = cli_opt(c, &i, "--partition"))) {
            partition = (int32_t)cli_int("--partition", v, 0, RLC_MAX_PARTITIONS - 1);
        } else if ((v = cli_opt(c, &i, "--header"))) {
            char *eq = strchr(c->argv[i], '=');
            if (!eq || eq == c->argv[i] || nhdrs == CLI_MAX_HEADERS) {
                cli_error("--header wants key=value (at most %d), got \"%s\"",
                          CLI_MAX_HEADERS, v);
                return CLI_EXIT_USAGE;
            }
            hdrs[nhdrs++] = (struct rl_header){.key = c->argv[i],
                                               .key_len = (size_t)(eq - c->argv[i]),
                                               .value = eq + 1, .value_len = strlen(eq + 1)};
        } else if (!strcmp(c->argv[i], "--idempotent")) {
            /* The library's default; the flag insists, even over -X enable.idempotence. */
            idempotent = true;
        } else if (c->argv[i][0] == '-' || topic) {
            cli_error("unexpected argument \"%s\"; usage: ringlog produce TOPIC "
                      "[--key-separator C] [--acks 0|1|all]", c->argv[i]);
            return CLI_EXIT_USAGE;
        } else {
            topic = c->argv[i];
        }
    }
    if (!topic) {
        cli_error("usage: ringlog produce TOPIC [--key-separator C] [--acks 0|1|all] "
                  "(records are read from stdin, one per line)");
        return CLI_EXIT_USAGE;
    }
    if (idempotent) {
        char acks[8];
        rl_conf_get(c->conf, "acks", acks, sizeof(acks));
        if (strcmp(acks, "all") != 0) {
            cli_error("--idempotent needs --acks all");
            return CLI_EXIT_USAGE;
        }
        cli_conf_set(c, "enable.idempotence", "true");
    }
    struct produce_state st = {0};
    rl_conf_set_delivery_cb(c->conf, on_delivery, &st);
    char err[512];
    struct rl_producer *p = rl_producer_new(c->conf, err, sizeof(err));
    if (!p) {
        cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }
    unsigned long long sent = 0;
    int rc = produce_lines(p, topic, partition, sep, hdrs, nhdrs, &sent);
    int frc = rl_producer_flush(p, -1);
    if (frc)
        cli_error("%s", rl_producer_last_error(p));
    uint64_t acked = 0, failed = 0;
    rl_producer_destroy(p, 0);
    /* After destroy every callback has run: the counts are final. */
    rl_conf_set_delivery_cb(c->conf, NULL, NULL);
    failed = st.failed;
    acked = sent - failed;
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "\r");
    if (failed)
        cli_error("%llu of %llu records sent were not acknowledged",
                  (unsigned long long)failed, sent);
    else if (rc && sent)
        cli_error("stopped reading stdin after %llu records (all acknowledged)", sent);
    if (rc || frc || failed)
        return CLI_EXIT_FAIL;
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "produced %llu records to %s\n", (unsigned long long)acked, topic);
    return 0;
}

/* --- consume ---------------------------------------------------------------------------------- */

struct consume_opts {
    const char *topic;
    int32_t partition; /* -1: all */
    int64_t from;      /* offset >= 0, RL_OFFSET_EARLIEST/LATEST */
    int64_t from_ts;   /* >= 0 when --from @TS */
    long long count;   /* -1: no limit */
    bool json;
    int sep;
    long long idle_exit_ms; /* -1: wait forever */
    const char *group;      /* --group: subscribe as a member instead of assigning */
};

/* SIGINT / SIGTERM end a consume between records, so a group member commits what it printed
 * and leaves the group instead of waiting out its session. */
static volatile sig_atomic_t g_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

#define GROUP_COMMIT_EVERY_MS 1000

/* What was printed is committed: stdout is flushed first, then positions (the offsets after
 * the records handed out, all of which were printed) are committed. */
static int flush_and_commit(struct rl_consumer *k)
{
    fflush(stdout);
    return rl_consumer_commit(k);
}

static void on_rebalance(void *ctx, struct rl_consumer *k, enum rl_rebalance_event event,
                         const struct rl_topic_partition *parts, size_t count)
{
    (void)ctx;
    (void)parts;
    if (event == RL_REBALANCE_REVOKED && count > 0 && flush_and_commit(k) != 0)
        fprintf(stderr, "ringlog: warning: commit before rebalance failed: %s\n",
                rl_consumer_last_error(k));
}

/* Escapes into a growing buffer reused across records (one allocation per growth, not per
 * record). */
static const char *json_str(const uint8_t *s, size_t len, char **buf, size_t *cap)
{
    size_t need = rlc_json_escape(s, len, *buf, *cap) + 1;
    if (need > *cap) {
        char *n = realloc(*buf, need * 2);
        if (!n)
            return "";
        *buf = n;
        *cap = need * 2;
        rlc_json_escape(s, len, *buf, *cap);
    }
    return *buf;
}

static void print_json(const struct rl_record *r, char **buf, size_t *cap)
{
    printf("{\"topic\":\"%s\",\"partition\":%d,\"offset\":%lld,\"timestamp\":%lld,\"key\":",
           json_str((const uint8_t *)r->topic, strlen(r->topic), buf, cap), r->partition,
           (long long)r->offset, (long long)r->timestamp_ms);
    if (r->key)
        printf("\"%s\"", json_str(r->key, (size_t)r->key_len, buf, cap));
    else
        fputs("null", stdout);
    fputs(",\"value\":", stdout);
    if (r->value)
        printf("\"%s\"", json_str(r->value, (size_t)r->value_len, buf, cap));
    else
        fputs("null", stdout);
    fputs(",\"headers\":{", stdout);
    size_t pos = 0;
    struct rl_header h;
    for (int n = 0; rl_record_header(r, &pos, &h) == 1; n++) {
        printf("%s\"%s\":", n ? "," : "", json_str((const uint8_t *)h.key, h.key_len, buf, cap));
        if (h.value)
            printf("\"%s\"", json_str(h.value, h.value_len, buf, cap));
        else
            fputs("null", stdout);
    }
    fputs("}}\n", stdout);
}

static void print_text(const struct rl_record *r, int sep)
{
    if (sep >= 0 && r->key) {
        fwrite(r->key, 1, (size_t)r->key_len, stdout);
        putchar(sep);
    }
    if (r->value)
        fwrite(r->value, 1, (size_t)r->value_len, stdout);
    putchar('\n');
}

static int parse_consume(struct cli *c, struct consume_opts *o)
{
    const char *v;
    *o = (struct consume_opts){.partition = -1, .from = RL_OFFSET_LATEST, .from_ts = -1,
                               .count = -1, .sep = -1, .idle_exit_ms = -1};
    for (int i = 0; i < c->argc; i++) {
        if ((v = cli_opt(c, &i, "--partition"))) {
            o->partition = (int32_t)cli_int("--partition", v, 0, RLC_MAX_PARTITIONS - 1);
        } else if ((v = cli_opt(c, &i, "--from"))) {
            if (!strcmp(v, "earliest"))
                o->from = RL_OFFSET_EARLIEST;
            else if (!strcmp(v, "latest"))
                o->from = RL_OFFSET_LATEST;
            else if (v[0] == '@')
                o->from_ts = cli_int("--from @TIMESTAMP_MS", v + 1, 0, INT64_MAX);
            else
                o->from = cli_int("--from (earliest, latest, OFFSET or @TIMESTAMP_MS)", v, 0,
                                  INT64_MAX);
        } else if ((v = cli_opt(c, &i, "--count"))) {
            o->count = cli_int("--count", v, 0, INT64_MAX);
        } else if ((v = cli_opt(c, &i, "--idle-exit-ms"))) {
            o->idle_exit_ms = cli_int("--idle-exit-ms", v, 0, INT32_MAX);
        } else if ((v = cli_opt(c, &i, "--format"))) {
            if (strcmp(v, "text") && strcmp(v, "json")) {
                cli_error("--format is text or json, got \"%s\"", v);
                return CLI_EXIT_USAGE;
            }
            o->json = v[0] == 'j';
        } else if ((v = cli_opt(c, &i, "--key-separator"))) {
            o->sep = (unsigned char)v[0];
        } else if ((v = cli_opt(c, &i, "--group"))) {
            o->group = v;
        } else if (c->argv[i][0] == '-' || o->topic) {
            cli_error("unexpected argument \"%s\"; run ringlog --help", c->argv[i]);
            return CLI_EXIT_USAGE;
        } else {
            o->topic = c->argv[i];
        }
    }
    if (!o->topic) {
        cli_error("usage: ringlog consume TOPIC [--partition P] [--from earliest|latest|OFFSET|"
                  "@TIMESTAMP_MS] [--count N] [--format text|json] [--group G]");
        return CLI_EXIT_USAGE;
    }
    if (o->group && (o->partition >= 0 || o->from >= 0 || o->from_ts >= 0)) {
        cli_error("with --group the group decides partitions and positions; --from may only "
                  "be earliest or latest (where to start when the group committed nothing)");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* Joins the group: commits are made by this tool (flush_and_commit), not by auto-commit, so
 * that nothing is committed before it has reached stdout. */
static int consume_subscribe(struct cli *c, struct rl_consumer **k, const struct consume_opts *o)
{
    cli_conf_set(c, "group.id", o->group);
    cli_conf_set(c, "enable.auto.commit", "false");
    cli_conf_set(c, "auto.offset.reset", o->from == RL_OFFSET_EARLIEST ? "earliest" : "latest");
    rl_conf_set_rebalance_cb(c->conf, on_rebalance, NULL);
    char err[512];
    *k = rl_consumer_new(c->conf, err, sizeof(err));
    if (!*k) {
        cli_error("%s", err);
        return CLI_EXIT_FAIL;
    }
    const char *topics[1] = {o->topic};
    return rl_consumer_subscribe(*k, topics, 1);
}

/* Assigns the partitions asked for at the start asked for. */
static int consume_assign(struct rl_consumer *k, const struct consume_opts *o)
{
    int n = 1, rc;
    if (o->partition >= 0)
        rc = rl_consumer_assign(k, o->topic, o->partition, o->from_ts >= 0 ? 0 : o->from);
    else
        rc = n = rl_consumer_assign_topic(k, o->topic, o->from_ts >= 0 ? 0 : o->from);
    if (rc < 0)
        return rc;
    for (int32_t p = 0; o->from_ts >= 0 && p < n; p++) {
        rc = rl_consumer_seek_timestamp(k, o->topic, o->partition >= 0 ? o->partition : p,
                                        o->from_ts);
        if (rc)
            return rc;
    }
    return 0;
}

static int consume_loop(struct rl_consumer *k, const struct consume_opts *o)
{
    char *buf = NULL;
    size_t cap = 0;
    long long n = 0;
    int64_t last_record = rlc_now_ms(), last_progress = last_record;
    int rc = 0;
    bool warned = false, idle = false;
    int64_t next_commit = o->group ? rlc_now_ms() + GROUP_COMMIT_EVERY_MS : INT64_MAX;
    while ((o->count < 0 || n < o->count) && !g_stop) {
        struct rl_record r;
        if (o->group && (n & 0xFF) == 0 && rlc_now_ms() >= next_commit) {
            next_commit = rlc_now_ms() + GROUP_COMMIT_EVERY_MS;
            if (flush_and_commit(k) != 0)
                fprintf(stderr, "ringlog: warning: commit failed: %s\n",
                        rl_consumer_last_error(k));
        }
        rc = rl_consumer_poll(k, 200, &r);
        if (rc == 1) {
            if (o->json)
                print_json(&r, &buf, &cap);
            else
                print_text(&r, o->sep);
            n++;
            idle = false;
            warned = false;
            continue;
        }
        if (rc < 0 && !rlc_retriable(rc))
            break;
        if (rc < 0 && !warned) {
            fprintf(stderr, "ringlog: warning: %s; retrying\n", rl_consumer_last_error(k));
            warned = true;
        }
        if (!idle) {
            idle = true; /* the clock is read when records stop, not per record */
            last_record = rlc_now_ms();
        }
        fflush(stdout); /* idle: let a reader see what came so far */
        if (!isatty(STDOUT_FILENO))
            progress("consumed", (unsigned long long)n, &last_progress);
        if (o->idle_exit_ms >= 0 && rlc_now_ms() - last_record >= o->idle_exit_ms) {
            if (rc < 0)
                break;
            rc = 0;
            break;
        }
        rc = 0;
    }
    fflush(stdout);
    free(buf);
    return rc < 0 ? rc : 0;
}

int cli_consume(struct cli *c)
{
    struct consume_opts o;
    int rc = parse_consume(c, &o);
    if (rc)
        return rc;
    char err[512];
    struct rl_consumer *k = NULL;
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (o.group) {
        rc = consume_subscribe(c, &k, &o);
        if (rc == CLI_EXIT_FAIL)
            return rc;
    } else {
        k = rl_consumer_new(c->conf, err, sizeof(err));
        if (!k) {
            cli_error("%s", err);
            return CLI_EXIT_FAIL;
        }
        rc = consume_assign(k, &o);
    }
    if (rc == 0)
        rc = consume_loop(k, &o);
    if (rc == 0 && o.group) {
        /* What was printed is committed before exit; then leave, so partitions move at once. */
        rc = flush_and_commit(k);
        if (rc == 0)
            rc = rl_consumer_close(k);
        else
            rl_consumer_close(k);
    }
    if (rc)
        cli_error("%s", rl_consumer_last_error(k));
    rl_consumer_destroy(k);
    return rc ? CLI_EXIT_FAIL : 0;
}
