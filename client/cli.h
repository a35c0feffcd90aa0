/*
 * cli: the `ringlog` command-line tool (client/cli*.c), a thin shell over libringlog.
 * cli.c parses the global options and dispatches; cli_topic.c holds `topic`, cli_io.c `produce`
 * and `consume`, cli_group.c `group`, cli_bench.c `bench`, cli_cluster.c `cluster` and `topic reassign`. Every failure prints one line naming the problem and what
 * to do, and the process exits non-zero (1 for failures, 2 for usage errors).
 */
#ifndef RL_CLIENT_CLI_H
#define RL_CLIENT_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "client/ringlog.h"

/* Options every command shares. */
struct cli {
    struct rl_conf *conf; /* --brokers and -X key=value applied */
    const char *brokers;
    int argc;             /* the command's own arguments (after the command word) */
    char **argv;
};

#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* Prints "ringlog: error: ..." to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Option helpers over cli->argv: returns the value after `name` at argv[*i] (advancing *i), or
 * NULL when argv[*i] is not that option; a missing value is a usage error (exits). */
const char *cli_opt(struct cli *c, int *i, const char *name);

/* Parses an integer option value in [min, max] or exits with a usage error naming the option. */
long long cli_int(const char *opt, const char *value, long long min, long long max);

/* Sets a library config key or exits with the library's message. */
void cli_conf_set(struct cli *c, const char *key, const char *value);

int cli_topic(struct cli *c);
int cli_produce(struct cli *c);
int cli_consume(struct cli *c);
int cli_bench(struct cli *c);
int cli_group(struct cli *c);
int cli_cluster(struct cli *c);
/* `topic reassign TOPIC PARTITION --replicas 1,2,4` (cli_cluster.c). */
int cli_topic_reassign(struct cli *c);
/* Prints each partition's replicas, in-sync replicas and move target of a replicated topic
 * (nothing for a topic with one replica). Returns 0 or a code. */
int cli_topic_replicas(const struct rl_conf *conf, const char *topic);

#endif
