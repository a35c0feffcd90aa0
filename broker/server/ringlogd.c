/*
 * ringlogd: the broker program. Parses the config (file + flags), creates one shard, serves
 * until SIGTERM or SIGINT, then shuts down cleanly (in-flight requests answered, logs flushed
 * and marked clean). Exit status 0 after a clean stop, 1 on a start-up error, 2 on bad usage.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/server/config.h"
#include "broker/server/shard.h"
#include "common/err.h"
#include "common/log.h"

static struct shard *ringlogd_shard;

static void ringlogd_on_signal(int sig)
{
    (void)sig;
    if (ringlogd_shard)
        shard_request_stop(ringlogd_shard);
}

/* Writes "native=H:P\nhttp=H:P\nkafka=H:P\npid=N\n" (http and kafka when enabled) to path by
 * write-temp-then-rename, so a reader sees either nothing or the whole file. */
static int ringlogd_write_ready(const struct broker_config *cfg, const struct shard *sh)
{
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof(tmp), "%s.tmp", cfg->ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "native=%s:%u\n", cfg->listen_host, shard_port(sh));
    if (cfg->http_enabled)
        fprintf(f, "http=%s:%u\n", cfg->http_host, shard_http_port(sh));
    if (cfg->kafka_enabled)
        fprintf(f, "kafka=%s:%u\n", cfg->kafka_host, shard_kafka_port(sh));
    fprintf(f, "pid=%d\n", (int)getpid());
    if (fclose(f))
        return -errno;
    if (rename(tmp, cfg->ready_file))
        return -errno;
    return 0;
}

int main(int argc, char **argv)
{
    static struct broker_config cfg;
    char err[1024] = "";
    int rc = config_broker_from_args(&cfg, argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc) {
        fprintf(stderr, "ringlogd: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct shard *sh = NULL;
    rc = shard_create(&cfg, &sh, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "ringlogd: %s\n", err[0] ? err : rl_strerror(rc));
        return 1;
    }
    ringlogd_shard = sh;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ringlogd_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    RL_INFO("ringlogd node %d serving on %s:%u (HTTP %s), data in %s", cfg.node_id,
            cfg.listen_host, shard_port(sh),
            cfg.http_enabled ? "on" : "off", cfg.data_dir);
    if (cfg.kafka_enabled)
        RL_INFO("Kafka clients: bootstrap.servers=%s:%u", cfg.kafka_host, shard_kafka_port(sh));
    if (cfg.http_enabled)
        RL_INFO("metrics: http://%s:%u/metrics  status: http://%s:%u/v1/status", cfg.http_host,
                shard_http_port(sh), cfg.http_host, shard_http_port(sh));
    if (cfg.ready_file[0] && (rc = ringlogd_write_ready(&cfg, sh)) != 0)
        RL_WARN("cannot write the ready file %s: %s", cfg.ready_file, rl_strerror(rc));
    rc = shard_run(sh);
    ringlogd_shard = NULL;
    shard_destroy(sh);
    RL_INFO("ringlogd stopped cleanly");
    return rc ? 1 : 0;
}
