/*
 * cli: entry point of the `ringlog` tool. Parses the global options (--brokers, -X key=value),
 * then runs one command: topic, produce, consume, group, bench (cluster status is answered with
 * a clear "not supported yet").
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"

static const char usage_text[] =
    "usage: ringlog [--brokers H:P,...] [-X key=value ...] COMMAND ...\n"
    "\n"
    "  topic create NAME --partitions N [--replicas R] [--partitioner hash|range\n"
    "               --splits K1,K2,...] [--config k=v ...]\n"
    "  topic list | describe NAME | delete NAME | alter NAME --config k=v ...\n"
    "  produce TOPIC [--key-separator C] [--acks 0|1|all] [--partition P] [--header k=v ...]\n"
    "                [--idempotent]   (one record per line on stdin)\n"
    "  consume TOPIC [--partition P] [--from earliest|latest|OFFSET|@TIMESTAMP_MS]\n"
    "                [--count N] [--format text|json] [--key-separator C] [--idle-exit-ms T]\n"
    "                [--group G]\n"
    "  group list | describe GROUP\n"
    "  bench [produce] [--sweep | --rate MB/s | --rate-records N] [--seconds S]\n"
    "        [--payload random|json] [--compression none|zstd] [--codecs] [--report DIR]\n"
    "        [--dir D] ...   (every option: ringlog bench --help)\n"
    "  topic reassign NAME PARTITION --replicas ID,ID,...  (move a partition's replicas)\n"
    "  topic reassign NAME PARTITION --cancel  (the running move goes back where it started)\n"
    "  cluster status | remove-broker N  (move every replica off broker N; decommission it)\n"
    "  cluster remove-broker N --cancel  (stop those moves; N is eligible again)\n"
    "  cluster recommission N  (placement may pick decommissioned broker N again)\n"
    "\n"
    "consume starts at --from latest unless told otherwise and runs until --count records\n"
    "(or --idle-exit-ms without any); text prints values (key<C>value with --key-separator C),\n"
    "json one object per line. produce exits 0 only when every line was acknowledged\n"
    "(idempotent by default: retries never duplicate; --idempotent insists on it).\n"
    "consume --group G joins group G: the group shares the topic's partitions, each starts at\n"
    "the group's committed offset (--from earliest|latest where none), and what was printed\n"
    "is committed before exit (also on SIGINT/SIGTERM).\n"
    "--brokers defaults to 127.0.0.1:9400. -X sets any libringlog configuration key\n"
    "(batch.size, linger.ms, compression, request.timeout.ms, ...; see client/ringlog.h).\n";

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ringlog: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const char *cli_opt(struct cli *c, int *i, const char *name)
{
    if (strcmp(c->argv[*i], name) != 0)
        return NULL;
    if (*i + 1 >= c->argc) {
        cli_error("option %s needs a value; run ringlog --help", name);
        exit(CLI_EXIT_USAGE);
    }
    *i += 1;
    return c->argv[*i];
}

long long cli_int(const char *opt, const char *value, long long min, long long max)
{
    char *end;
    long long v = strtoll(value, &end, 10);
    if (end == value || *end || v < min || v > max) {
        cli_error("%s wants an integer in [%lld, %lld], got \"%s\"", opt, min, max, value);
        exit(CLI_EXIT_USAGE);
    }
    return v;
}

void cli_conf_set(struct cli *c, const char *key, const char *value)
{
    char err[512];
    if (rl_conf_set(c->conf, key, value, err, sizeof(err)) != 0) {
        cli_error("%s", err);
        exit(CLI_EXIT_USAGE);
    }
}

/* Pulls the global options out of argv wherever they appear; returns the remaining count. */
static int global_options(struct cli *c, int argc, char **argv, char **rest)
{
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--brokers") || !strcmp(argv[i], "-X")) {
            if (i + 1 >= argc) {
                cli_error("option %s needs a value", argv[i]);
                exit(CLI_EXIT_USAGE);
            }
            if (argv[i][1] == '-') {
                c->brokers = argv[++i];
                cli_conf_set(c, "bootstrap.servers", c->brokers);
                continue;
            }
            char *kv = argv[++i], *eq = strchr(kv, '=');
            if (!eq) {
                cli_error("-X wants key=value, got \"%s\"", kv);
                exit(CLI_EXIT_USAGE);
            }
            *eq = 0;
            cli_conf_set(c, kv, eq + 1);
            continue;
        }
        rest[n++] = argv[i];
    }
    return n;
}

int main(int argc, char **argv)
{
    struct cli c = {.brokers = "127.0.0.1:9400"};
    c.conf = rl_conf_new();
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    if (!c.conf || !rest) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    int n = global_options(&c, argc, argv, rest);
    if (n == 0 || !strcmp(rest[0], "--help") || !strcmp(rest[0], "-h") ||
        !strcmp(rest[0], "help")) {
        fputs(usage_text, n ? stdout : stderr);
        return n ? 0 : CLI_EXIT_USAGE;
    }
    if (!strcmp(rest[0], "--version")) {
        printf("ringlog %s\n", rl_version());
        return 0;
    }
    c.argc = n - 1;
    c.argv = rest + 1;
    int rc;
    if (!strcmp(rest[0], "topic")) {
        rc = cli_topic(&c);
    } else if (!strcmp(rest[0], "produce")) {
        rc = cli_produce(&c);
    } else if (!strcmp(rest[0], "consume")) {
        rc = cli_consume(&c);
    } else if (!strcmp(rest[0], "group")) {
        rc = cli_group(&c);
    } else if (!strcmp(rest[0], "bench")) {
        rc = cli_bench(&c);
    } else if (!strcmp(rest[0], "cluster")) {
        rc = cli_cluster(&c);
    } else {
        cli_error("unknown command \"%s\"; run ringlog --help", rest[0]);
        rc = CLI_EXIT_USAGE;
    }
    rl_conf_destroy(c.conf);
    free(rest);
    return rc;
}
