/*
 * cli_topic: `ringlog topic create | list | describe | delete | alter`, over the admin API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cli.h"

#define MAX_CONFIGS 32
#define MAX_SPLITS 4096

static struct rl_admin *admin_open(struct cli *c)
{
    char err[512];
    struct rl_admin *a = rl_admin_new(c->conf, err, sizeof(err));
    if (!a)
        cli_error("%s", err);
    return a;
}

/* Splits "k=v" into the arrays; exits on a malformed pair. */
static void add_config(char *kv, const char **keys, const char **values, size_t *n)
{
    char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        cli_error("--config wants key=value (e.g. flush.policy=batch), got \"%s\"", kv);
        exit(CLI_EXIT_USAGE);
    }
    if (*n == MAX_CONFIGS) {
        cli_error("at most %d --config options", MAX_CONFIGS);
        exit(CLI_EXIT_USAGE);
    }
    *eq = 0;
    keys[*n] = kv;
    values[*n] = eq + 1;
    (*n)++;
}

/* Splits "a,b,c" in place into keys; returns the count. */
static size_t split_keys(char *s, const char **out)
{
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok && n < MAX_SPLITS; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

static int topic_create(struct cli *c, struct rl_admin *a)
{
    struct rl_topic_spec spec = {.partitions = -1};
    static const char *keys[MAX_CONFIGS], *values[MAX_CONFIGS], *splits[MAX_SPLITS];
    size_t nconf = 0;
    const char *v;
    for (int i = 1; i < c->argc; i++) {
        if ((v = cli_opt(c, &i, "--partitions"))) {
            spec.partitions = (int32_t)cli_int("--partitions", v, -1000000, 1000000);
        } else if ((v = cli_opt(c, &i, "--replicas"))) {
            spec.replication_factor = (int32_t)cli_int("--replicas", v, 1, 100);
        } else if ((v = cli_opt(c, &i, "--partitioner"))) {
            if (strcmp(v, "hash") && strcmp(v, "range")) {
                cli_error("--partitioner is hash or range, got \"%s\"", v);
                return CLI_EXIT_USAGE;
            }
            spec.partitioner = v[0] == 'r' ? RL_PARTITIONER_RANGE : RL_PARTITIONER_HASH;
        } else if ((v = cli_opt(c, &i, "--splits"))) {
            spec.split_key_count = split_keys(c->argv[i], splits);
            spec.split_keys = splits;
        } else if ((v = cli_opt(c, &i, "--config"))) {
            add_config(c->argv[i], keys, values, &nconf);
        } else if (c->argv[i][0] == '-') {
            cli_error("unknown option \"%s\" for topic create", c->argv[i]);
            return CLI_EXIT_USAGE;
        } else if (!spec.name) {
            spec.name = c->argv[i];
        } else {
            cli_error("topic create takes one NAME; got also \"%s\"", c->argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    if (!spec.name || spec.partitions == -1) {
        cli_error("usage: ringlog topic create NAME --partitions N [--partitioner hash|range "
                  "--splits K1,K2,...] [--config k=v ...]");
        return CLI_EXIT_USAGE;
    }
    if (spec.partitioner == RL_PARTITIONER_RANGE && spec.partitions > 0 &&
        spec.split_key_count != (size_t)spec.partitions - 1) {
        cli_error("a range topic with %d partitions needs %d sorted split keys in --splits "
                  "(got %zu)", spec.partitions, spec.partitions - 1, spec.split_key_count);
        return CLI_EXIT_USAGE;
    }
    spec.config_keys = keys;
    spec.config_values = values;
    spec.config_count = nconf;
    int rc = rl_admin_create_topic(a, &spec);
    if (rc) {
        cli_error("%s", rl_admin_last_error(a));
        return CLI_EXIT_FAIL;
    }
    printf("created topic \"%s\" with %d partitions\n", spec.name, spec.partitions);
    return 0;
}

static void print_key(const uint8_t *k, size_t len)
{
    for (size_t i = 0; i < len; i++)
        putchar(k[i] >= 0x20 && k[i] < 0x7F ? k[i] : '?');
}

static int topic_describe(struct cli *c, struct rl_admin *a, const char *name)
{
    const struct rl_topic_info *t;
    if (rl_admin_describe_topic(a, name, &t)) {
        cli_error("%s", rl_admin_last_error(a));
        return CLI_EXIT_FAIL;
    }
    printf("topic: %s\npartitions: %d\nreplication factor: %d\npartitioner: %s\n", t->name,
           t->partition_count, t->replication_factor,
           t->partitioner == RL_PARTITIONER_RANGE ? "range" : "hash");
    if (t->split_key_count) {
        printf("split keys:");
        for (size_t i = 0; i < t->split_key_count; i++) {
            printf(i ? "," : " ");
            print_key(t->split_keys[i], t->split_key_lens[i]);
        }
        printf("\n");
    }
    printf("configs:\n");
    for (size_t i = 0; i < t->config_count; i++)
        printf("  %s = %s%s\n", t->config_keys[i], t->config_values[i],
               t->config_is_default[i] ? " (default)" : "");
    printf("%-10s %-8s %s\n", "partition", "leader", "leader epoch");
    for (int32_t i = 0; i < t->partition_count; i++)
        printf("%-10d %-8d %u%s%s\n", t->partitions[i].partition, t->partitions[i].leader,
               t->partitions[i].leader_epoch, t->partitions[i].error ? "  error: " : "",
               t->partitions[i].error ? rl_strerror(t->partitions[i].error) : "");
    if (t->replication_factor > 1)
        cli_topic_replicas(c->conf, name); /* replicas and moves: best effort */
    return 0;
}

static int topic_alter(struct cli *c, struct rl_admin *a)
{
    static const char *keys[MAX_CONFIGS], *values[MAX_CONFIGS];
    size_t n = 0;
    const char *name = NULL, *v;
    for (int i = 1; i < c->argc; i++) {
        if ((v = cli_opt(c, &i, "--config")))
            add_config(c->argv[i], keys, values, &n);
        else if (!name && c->argv[i][0] != '-')
            name = c->argv[i];
        else {
            cli_error("unexpected argument \"%s\" for topic alter", c->argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    if (!name || n == 0) {
        cli_error("usage: ringlog topic alter NAME --config k=v [--config k=v ...]");
        return CLI_EXIT_USAGE;
    }
    if (rl_admin_alter_configs(a, name, keys, values, n)) {
        cli_error("%s", rl_admin_last_error(a));
        return CLI_EXIT_FAIL;
    }
    printf("altered %zu config(s) of topic \"%s\"\n", n, name);
    return 0;
}

static int topic_run(struct cli *c, struct rl_admin *a)
{
    const char *sub = c->argv[0];
    if (!strcmp(sub, "create"))
        return topic_create(c, a);
    if (!strcmp(sub, "alter"))
        return topic_alter(c, a);
    if (!strcmp(sub, "reassign"))
        return cli_topic_reassign(c);
    if (!strcmp(sub, "list")) {
        const struct rl_topic_info *t;
        size_t n;
        if (rl_admin_list_topics(a, &t, &n)) {
            cli_error("%s", rl_admin_last_error(a));
            return CLI_EXIT_FAIL;
        }
        for (size_t i = 0; i < n; i++)
            printf("%s\t%d partitions\t%s\n", t[i].name, t[i].partition_count,
                   t[i].partitioner == RL_PARTITIONER_RANGE ? "range" : "hash");
        if (n == 0)
            fprintf(stderr, "no topics yet; create one with: ringlog topic create NAME "
                    "--partitions N\n");
        return 0;
    }
    if ((!strcmp(sub, "describe") || !strcmp(sub, "delete")) && c->argc == 2) {
        if (sub[1] == 'e' && sub[2] == 's')
            return topic_describe(c, a, c->argv[1]);
        if (rl_admin_delete_topic(a, c->argv[1])) {
            cli_error("%s", rl_admin_last_error(a));
            return CLI_EXIT_FAIL;
        }
        printf("deleted topic \"%s\"\n", c->argv[1]);
        return 0;
    }
    cli_error("usage: ringlog topic create|list|describe NAME|delete NAME|alter NAME ...|"
              "reassign NAME PARTITION --replicas ID,... | --cancel");
    return CLI_EXIT_USAGE;
}

int cli_topic(struct cli *c)
{
    if (c->argc < 1) {
        cli_error("usage: ringlog topic create|list|describe|delete|alter ...");
        return CLI_EXIT_USAGE;
    }
    struct rl_admin *a = admin_open(c);
    if (!a)
        return CLI_EXIT_FAIL;
    int rc = topic_run(c, a);
    rl_admin_destroy(a);
    return rc;
}
