/*
 * shard: see shard.h. The loop:
 *
 *   io_run (callbacks record results and mark connections) -> shard_process: accepts,
 *   connections (conn.c: finish async answers, parse and dispatch frames, send, re-arm reads),
 *   HTTP, services_turn (background completions, partitions being opened, metadata
 *   proposals), limbo requests, the tick (services_tick) -> repeat
 *
 * Each turn is timed for ringlog_loop_turn_seconds (loopclock.h). The loop never blocks on a
 * disk: blocking work runs on the services' background thread and completes back here.
 */
#include "broker/server/shard_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker/cluster/ctl.h"
#include "broker/partition/partition.h"
#include "broker/server/dirlock.h"
#include "broker/svc/bg.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/plog.h"

#define SHARD_BIND_ATTEMPTS 100 /* x SHARD_BIND_RETRY_MS: how long a restart waits for its port */
#define SHARD_BIND_RETRY_MS 50
#define SHARD_TRIM_AFTER_BYTES (64ull * 1024 * 1024) /* peak in-flight memory worth trimming */
#define SHARD_FD_SLACK 256      /* descriptors beyond connections and files: rings, pipes, logs */

/* --- small helpers ---------------------------------------------------------------------------- */

void shard_op_started(struct shard *sh)
{
    sh->ops++;
}

void shard_op_ended(struct shard *sh)
{
    RL_ASSERT(sh->ops > 0);
    sh->ops--;
}

void shard_mark_conn(struct conn *c)
{
    if (c->in_ready)
        return;
    c->in_ready = true;
    c->ready_next = c->sh->ready;
    c->sh->ready = c;
}

void shard_mem_charge(struct shard *sh, uint64_t bytes)
{
    sh->mem_used += bytes;
    if (sh->mem_used > sh->mem_peak)
        sh->mem_peak = sh->mem_used;
    if (sh->mem_used > sh->mem_high)
        sh->mem_high = sh->mem_used;
}

void shard_mem_refund(struct shard *sh, uint64_t bytes)
{
    RL_ASSERT(sh->mem_used >= bytes);
    sh->mem_used -= bytes;
    if (sh->mem_used < sh->cfg.max_inflight_bytes)
        shard_mem_wake(sh);
}

void shard_mem_wake(struct shard *sh)
{
    if (!sh->mem_paused_any)
        return;
    sh->mem_paused_any = false;
    for (struct conn *c = sh->conns; c; c = c->next) {
        if (c->mem_paused) {
            c->mem_paused = false;
            shard_mark_conn(c);
        }
    }
}

uint32_t shard_throttle_ms(const struct shard *sh)
{
    /* Above three quarters of the budget, ask clients to slow down, more the fuller it is. */
    uint64_t b = sh->cfg.max_inflight_bytes;
    if (sh->mem_used * 4 <= b * 3)
        return 0;
    return sh->mem_used >= b ? 500 : 100;
}

static int shard_listen(const char *host, uint16_t port, int *fd_out, uint16_t *bound)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return RL_E_INVALID_CONFIG;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* After a crash the previous process's listener can outlive it briefly (an io_uring's
     * pending accept holds it until the kernel tears the ring down asynchronously), so a
     * restart retries an address in use for a bounded time instead of failing at once. */
    int rc = 0;
    for (int attempt = 0; attempt < SHARD_BIND_ATTEMPTS; attempt++) {
        rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
        if (rc != -EADDRINUSE || port == 0)
            break;
        if (attempt == 0)
            RL_INFO("%s:%u is in use; retrying for up to %d ms (a previous broker may still be "
                    "releasing it)", host, port, SHARD_BIND_ATTEMPTS * SHARD_BIND_RETRY_MS);
        struct timespec ts = {0, SHARD_BIND_RETRY_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc || listen(fd, 1024)) {
        int e = rc ? rc : -errno;
        close(fd);
        return e;
    }
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *bound = ntohs(sa.sin_port);
    *fd_out = fd;
    return 0;
}

/* Answers a connection over the limit with one error frame, then closes it. The socket is
 * non-blocking and the frame is tiny, so this never stalls the loop. */
static void shard_reject(struct shard *sh, int fd, int code, const char *msg)
{
    uint8_t buf[512];
    Ringlog__Response resp = RINGLOG__RESPONSE__INIT;
    resp.error_code = code;
    resp.error_message = (char *)msg;
    if (frame_response_envelope_bytes(&resp) <= sizeof(buf)) {
        size_t n = frame_encode_response(&resp, 0, buf);
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    close(fd);
    sh->m.connections_rejected++;
}

/* --- accept, tick, loop ----------------------------------------------------------------------- */

static void shard_accept_done(struct io_op *op, int result)
{
    struct shard *sh = op->ctx;
    shard_op_ended(sh);
    if (op == &sh->accept_op) {
        sh->accept_inflight = false;
        sh->accept_completed = true;
        sh->accept_result = result;
    } else if (op == &sh->kafka_accept_op) {
        sh->kafka_accept_inflight = false;
        sh->kafka_accept_completed = true;
        sh->kafka_accept_result = result;
    } else {
        sh->http_accept_inflight = false;
        sh->http_accept_completed = true;
        sh->http_accept_result = result;
    }
}

static void shard_tick_done(struct io_op *op, int result)
{
    struct shard *sh = op->ctx;
    shard_op_ended(sh);
    sh->tick_inflight = false;
    sh->tick_completed = true;
}

static void shard_cancel_done(struct io_op *op, int result)
{
    shard_op_ended(op->ctx);
}

static void shard_arm_accepts(struct shard *sh)
{
    if (sh->stopping)
        return;
    if (!sh->accept_inflight && !sh->accept_completed && !sh->accept_backoff) {
        sh->accept_op.done = shard_accept_done;
        sh->accept_op.ctx = sh;
        sh->accept_inflight = true;
        shard_op_started(sh);
        io_prep_accept(sh->io, &sh->accept_op, sh->listen_fd, 0);
    }
    if (sh->kafka_fd >= 0 && !sh->kafka_accept_inflight && !sh->kafka_accept_completed &&
        !sh->accept_backoff) {
        sh->kafka_accept_op.done = shard_accept_done;
        sh->kafka_accept_op.ctx = sh;
        sh->kafka_accept_inflight = true;
        shard_op_started(sh);
        io_prep_accept(sh->io, &sh->kafka_accept_op, sh->kafka_fd, 0);
    }
    if (sh->http_fd >= 0 && !sh->http_accept_inflight && !sh->http_accept_completed) {
        sh->http_accept_op.done = shard_accept_done;
        sh->http_accept_op.ctx = sh;
        sh->http_accept_inflight = true;
        shard_op_started(sh);
        io_prep_accept(sh->io, &sh->http_accept_op, sh->http_fd, 0);
    }
}

static void shard_arm_tick(struct shard *sh)
{
    sh->tick_op.done = shard_tick_done;
    sh->tick_op.ctx = sh;
    sh->tick_inflight = true;
    shard_op_started(sh);
    uint32_t ms = sh->cfg.retention_check_interval_ms < SHARD_TICK_MS
                      ? sh->cfg.retention_check_interval_ms : SHARD_TICK_MS;
    io_prep_timeout(sh->io, &sh->tick_op, (uint64_t)ms * 1000000ull, 0);
}

/* A connection accepted on either protocol's listener. */
static void shard_accepted(struct shard *sh, int fd, bool kafka)
{
    if (kafka && fd >= 0 && (sh->stopping || sh->nconns >= sh->cfg.max_connections)) {
        /* Kafka has no frame for "go away": a closed connection makes clients retry. */
        RL_WARN("Kafka connection refused: %s", sh->stopping ? "broker is shutting down"
                : "connection limit reached (max.connections)");
        close(fd);
        sh->m.connections_rejected++;
        return;
    }
    if (kafka && fd >= 0) {
        conn_create(sh, fd, true);
        return;
    }
    if (fd >= 0) {
        if (sh->stopping) {
            shard_reject(sh, fd, RL_E_SHUTTING_DOWN, "broker is shutting down");
        } else if (sh->nconns >= sh->cfg.max_connections + SHARD_NATIVE_RESERVE) {
            char msg[160];
            snprintf(msg, sizeof(msg), "broker connection limit of %u reached "
                     "(max.connections); retry later or raise the limit",
                     sh->cfg.max_connections);
            shard_reject(sh, fd, RL_E_TOO_MANY_CONNECTIONS, msg);
        } else {
            bool reserve = sh->nconns >= sh->cfg.max_connections;
            struct conn *c = conn_create(sh, fd, false);
            if (c && reserve) {
                c->reserved = true; /* admin requests only, a short idle timeout */
                sh->m.connections_reserved++;
                RL_INFO("connection %s taken into the operator reserve (max.connections=%u "
                        "reached): admin requests only", c->peer, sh->cfg.max_connections);
            }
        }
    } else if (fd != -ECANCELED) {
        RL_WARN("accept failed: %s", rl_strerror(fd));
        if (fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM)
            sh->accept_backoff = true; /* retry at the next tick, not in a hot loop */
    }
}

static void shard_handle_accepts(struct shard *sh)
{
    if (sh->accept_completed) {
        sh->accept_completed = false;
        shard_accepted(sh, sh->accept_result, false);
    }
    if (sh->kafka_accept_completed) {
        sh->kafka_accept_completed = false;
        shard_accepted(sh, sh->kafka_accept_result, true);
    }
    if (sh->http_accept_completed) {
        sh->http_accept_completed = false;
        int fd = sh->http_accept_result;
        if (fd >= 0) {
            /* At the limit, the oldest connection still waiting for its request makes room:
             * idle or slow HTTP peers cannot lock an operator out of /metrics and /v1/status. */
            if (sh->stopping ||
                (sh->nhconns >= SHARD_MAX_HTTP_CONNS && !http_evict_oldest(sh)))
                close(fd);
            else
                http_conn_start(sh, fd);
        }
    }
}

static void shard_trim_run(struct bg_job *j)
{
    (void)j;
    malloc_trim(0);
}

static void shard_trim_done(struct bg_job *j)
{
    struct shard *sh = (struct shard *)((char *)j - offsetof(struct shard, trim_job));
    sh->trim_busy = false;
}

/* After a burst of requests (large decodes, big frames) has drained, gives the freed heap back
 * to the system: the allocator would otherwise keep the burst's peak resident for good. The
 * trim walks the whole heap, so it runs on the HTTP thread, not the loop. */
static void shard_trim_memory(struct shard *sh)
{
    if (sh->trim_busy || sh->mem_peak < SHARD_TRIM_AFTER_BYTES ||
        sh->mem_used > sh->mem_peak / 4)
        return;
    sh->mem_peak = sh->mem_used;
    sh->trim_job = (struct bg_job){.run = shard_trim_run, .done = shard_trim_done};
    if (bg_submit(sh->bg_http, &sh->trim_job) == 0)
        sh->trim_busy = true;
}

static void shard_handle_tick(struct shard *sh)
{
    if (!sh->tick_completed)
        return;
    sh->tick_completed = false;
    sh->ticks++;
    sh->accept_backoff = false; /* re-arm an accept that failed for lack of fds */
    uint64_t now_ns = io_now_ns(sh->io);
    conn_tick(sh, now_ns);
    http_tick(sh, now_ns);
    shard_trim_memory(sh);
    services_tick(sh, io_wall_ms(sh->io));
    if (!sh->stopping)
        shard_arm_tick(sh);
}

static void shard_process(struct shard *sh)
{
    shard_handle_accepts(sh);
    for (uint32_t guard = 0; sh->ready && guard < 1000000; guard++) {
        struct conn *c = sh->ready;
        sh->ready = c->ready_next;
        c->in_ready = false;
        conn_process(c);
    }
    http_process(sh);
    services_turn(sh);
    req_reap_limbo(sh);
    shard_handle_tick(sh);
    shard_arm_accepts(sh);
}

static void shard_cancel(struct shard *sh, struct io_op *cancel, struct io_op *target)
{
    cancel->done = shard_cancel_done;
    cancel->ctx = sh;
    shard_op_started(sh);
    io_prep_cancel(sh->io, cancel, target, 0);
}

static void shard_begin_stop(struct shard *sh)
{
    RL_INFO("stopping: no new connections; finishing in-flight requests");
    sh->stopping = true;
    sh->stop_deadline_ns = io_now_ns(sh->io) + (uint64_t)sh->cfg.shutdown_timeout_ms * 1000000ull;
    if (sh->accept_inflight)
        shard_cancel(sh, &sh->cancel_accept_op, &sh->accept_op);
    if (sh->http_accept_inflight)
        shard_cancel(sh, &sh->cancel_http_op, &sh->http_accept_op);
    if (sh->kafka_accept_inflight)
        shard_cancel(sh, &sh->cancel_kafka_op, &sh->kafka_accept_op);
    for (struct conn *c = sh->conns; c; c = c->next) {
        c->closing = true;
        conn_interrupt(c);
        shard_mark_conn(c);
    }
    services_begin_stop(sh); /* pending joins are answered, not left to the deadline */
}

/* SIGTERM: leadership of the replicated partitions this broker leads goes to other replicas
 * first (bounded by shutdown.handoff.timeout.ms), the broker serving meanwhile (a produce to a
 * partition being handed off gets NOT_LEADER and goes to the new leader); then the stop as
 * always. The hand-off keeps being asked while the broker stops, so a leadership that comes
 * back (balancing elsewhere) leaves again. */
static void shard_handoff(struct shard *sh)
{
    uint64_t now = io_now_ns(sh->io);
    uint32_t led = sh->cfg.shutdown_handoff_timeout_ms ? services_handoff(sh) : 0;
    if (sh->stopping)
        return;
    if (!sh->handoff_deadline_ns)
        sh->handoff_deadline_ns =
            now + (uint64_t)sh->cfg.shutdown_handoff_timeout_ms * 1000000ull + 1;
    if (led == 0 || now >= sh->handoff_deadline_ns) {
        if (led)
            RL_WARN("stopping while still leading %u replicated partitions: they were not handed "
                    "off within shutdown.handoff.timeout.ms (%u ms)", led,
                    sh->cfg.shutdown_handoff_timeout_ms);
        shard_begin_stop(sh);
    }
}

static void shard_force_close(struct shard *sh)
{
    RL_WARN("shutdown timeout: closing %u connections with requests still in flight",
            sh->nconns);
    for (struct conn *c = sh->conns; c; c = c->next) {
        c->dead = true;
        shard_mark_conn(c);
    }
}

int shard_run(struct shard *sh)
{
    loopclock_open(&sh->clock);
    shard_arm_accepts(sh);
    shard_arm_tick(sh);
    bool forced = false;
    for (;;) {
        /* Background work (storage's, the services' bg threads) completes through the ring,
         * so the loop sleeps until something happens. */
        uint64_t wait_ns = sh->stopping ? 100000000ull : UINT64_MAX;
        int rc = io_run(sh->io, wait_ns);
        if (rc < 0 && rc != -EINTR && rc != -ETIME) {
            RL_ERROR("io_run failed: %s", rl_strerror(rc));
            return rc;
        }
        struct services_work before, after;
        services_work(sh, &before);
        loopclock_turn_start(&sh->clock, io_now_ns(sh->io), services_changing(sh));
        if (sh->stop_requested)
            shard_handoff(sh);
        shard_process(sh);
        uint64_t turn_ns = loopclock_turn_end(&sh->clock, io_now_ns(sh->io));
        services_work(sh, &after);
        metrics_record_turn(sh, turn_ns,
                            after.topic_create != before.topic_create ? TURN_TOPIC_CREATE
                            : after.segment_rolls != before.segment_rolls ? TURN_SEGMENT_ROLL
                            : TURN_OTHER);
        if (!sh->stopping)
            continue;
        /* Appends waiting for disk space would hold the stop until space comes back (or the
         * deadline): they are answered now, not stored. */
        if (storage_disk_full_logs(sh->st) > 0 &&
            storage_abandon_space_waits(sh->st, RL_E_SHUTTING_DOWN) > 0)
            continue;
        if (!sh->conns && !sh->limbo)
            break;
        if (!forced && io_now_ns(sh->io) > sh->stop_deadline_ns) {
            shard_force_close(sh);
            forced = true;
        }
    }
    /* Drain our own ops (cancelled accepts, the tick, HTTP) with a bound. */
    if (sh->tick_inflight)
        shard_cancel(sh, &sh->cancel_tick_op, &sh->tick_op);
    uint64_t until = io_now_ns(sh->io) + 2000000000ull;
    while ((sh->ops > 0 || sh->hconns) && io_now_ns(sh->io) < until) {
        http_close_idle(sh);
        io_run(sh->io, 50000000ull);
        shard_process(sh);
    }
    if (sh->ops)
        RL_WARN("stopping with %u io ops still in flight", sh->ops);
    loopclock_close(&sh->clock);
    return sh->exit_rc;
}

void shard_request_stop(struct shard *sh)
{
    sh->stop_requested = 1;
    io_wake(sh->io);
}

uint16_t shard_port(const struct shard *sh)
{
    return sh->port;
}

uint16_t shard_http_port(const struct shard *sh)
{
    return sh->http_port;
}

/* Raises the soft descriptor limit to the hard one (Redis and Kafka's start scripts do the
 * same), so reaching max.connections never leaves the HTTP listener unable to accept for lack
 * of descriptors; says so when the hard limit is below what the configured limits can use
 * (connections of both listeners, open segments with their read descriptors). */
static void shard_raise_fd_limit(const struct broker_config *cfg)
{
    uint64_t need = (uint64_t)cfg->max_connections + SHARD_NATIVE_RESERVE +
                    SHARD_MAX_HTTP_CONNS + 2ull * cfg->max_open_files + SHARD_FD_SLACK;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl)) {
        RL_WARN("cannot read the descriptor limit (%s); accepts may fail before "
                "max.connections", strerror(errno));
        return;
    }
    rlim_t was = rl.rlim_cur;
    /* An unlimited hard limit cannot be a soft one (the kernel caps it at nr_open): ask for
     * what the limits need, or keep a higher soft limit. */
    rlim_t want = rl.rlim_max != RLIM_INFINITY ? rl.rlim_max : need > was ? need : was;
    if (want > was) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl)) {
            RL_WARN("cannot raise the descriptor limit from %llu to %llu (%s)",
                    (unsigned long long)was, (unsigned long long)want, strerror(errno));
            want = was;
        } else {
            RL_INFO("descriptor limit raised from %llu to %llu (the hard limit)",
                    (unsigned long long)was, (unsigned long long)want);
        }
    } else {
        want = was;
    }
    if (want < need)
        RL_WARN("the descriptor limit (%llu) is below what max.connections=%u and "
                "max.open.files=%u can use (%llu): accepts may fail before those limits; raise "
                "the hard limit (ulimit -Hn, LimitNOFILE=) or lower them",
                (unsigned long long)want, cfg->max_connections, cfg->max_open_files,
                (unsigned long long)need);
}

uint16_t shard_kafka_port(const struct shard *sh)
{
    return sh->kafka_port;
}

static int shard_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = io_dir_make(NULL, tmp, 0755); /* before the io exists: plain system calls */
        if (rc && rc != -EEXIST)
            return rc;
        *p = '/';
    }
    int rc = io_dir_make(NULL, tmp, 0755);
    return rc == -EEXIST ? 0 : rc;
}

int shard_create(const struct broker_config *cfg, struct shard **out, char *err, size_t err_cap)
{
    int rc;
    struct shard *sh = calloc(1, sizeof(*sh));
    if (!sh)
        return -ENOMEM;
    sh->cfg = *cfg;
    sh->listen_fd = sh->http_fd = sh->lock_fd = sh->kafka_fd = -1;
    sh->clock.fd = -1;
    rc = shard_mkdirs(cfg->data_dir);
    if (rc) {
        snprintf(err, err_cap, "cannot create the data directory %s: %s", cfg->data_dir,
                 rl_strerror(rc));
        goto fail;
    }
    /* Before anything opens a log: a second broker on this directory stops here. */
    rc = dirlock_acquire(cfg->data_dir, err, err_cap);
    if (rc < 0)
        goto fail;
    sh->lock_fd = rc;
    rc = 0;
    sh->io = io_create(1024, &rc);
    if (!sh->io) {
        snprintf(err, err_cap, "cannot create an io_uring (%s); is io_uring enabled "
                 "(sysctl kernel.io_uring_disabled)?", rl_strerror(rc));
        goto fail;
    }
    if (cfg->io_fault_delay_file[0]) {
        rc = io_fault_delay_file(sh->io, cfg->io_fault_delay_file);
        if (rc) {
            snprintf(err, err_cap, "io.fault.delay.file: %s", rl_strerror(rc));
            goto fail;
        }
        RL_WARN("io.fault.delay.file=%s: writes and fsyncs are delayed by the milliseconds "
                 "it holds (a fault-test setting)", cfg->io_fault_delay_file);
    }
    shard_raise_fd_limit(cfg);
    sh->start_ns = io_now_ns(sh->io);
    sh->start_wall_ms = io_wall_ms(sh->io);
    struct storage_options sopt = {.max_open_files = cfg->max_open_files,
                                   .tail_cache_bytes = cfg->tail_cache_bytes,
                                   .tail_cache_prefault = cfg->tail_cache_prefault != 0,
                                   .state_dir = cfg->data_dir};
    rc = storage_open(sh->io, &sopt, &sh->st);
    if (rc) {
        snprintf(err, err_cap, "cannot start storage: %s", rl_strerror(rc));
        goto fail;
    }
    rc = bg_create(sh->io, "http", &sh->bg_http);
    if (rc) {
        snprintf(err, err_cap, "cannot start the HTTP thread: %s", rl_strerror(rc));
        goto fail;
    }
    rc = services_open(sh, err, err_cap);
    if (rc)
        goto fail;
    rc = shard_listen(cfg->listen_host, cfg->listen_port, &sh->listen_fd, &sh->port);
    if (rc) {
        snprintf(err, err_cap, "cannot listen on %s:%u: %s", cfg->listen_host,
                 cfg->listen_port, rl_strerror(rc));
        goto fail;
    }
    native_set_listener(sh->svc.native, cfg->node_id, cfg->listen_host, sh->port);
    if (cfg->kafka_enabled) {
        rc = shard_listen(cfg->kafka_host, cfg->kafka_port, &sh->kafka_fd, &sh->kafka_port);
        if (rc) {
            snprintf(err, err_cap, "cannot listen for Kafka clients on %s:%u (kafka.listen): %s",
                     cfg->kafka_host, cfg->kafka_port, rl_strerror(rc));
            goto fail;
        }
        bool adv = cfg->kafka_advertise_host[0] != 0;
        struct kafka_listener kl = {.node_id = cfg->node_id,
                                    .host = adv ? cfg->kafka_advertise_host : cfg->kafka_host,
                                    .port = adv ? cfg->kafka_advertise_port : sh->kafka_port,
                                    .max_frame_bytes = cfg->max_frame_bytes};
        kafka_set_listener(sh->svc.kafka, &kl);
        if (sh->svc.ctl) /* registered with the broker (ctl.h) */
            ctl_set_kafka_address(sh->svc.ctl, kl.host, kl.port);
    }
    if (cfg->http_enabled) {
        rc = shard_listen(cfg->http_host, cfg->http_port, &sh->http_fd, &sh->http_port);
        if (rc) {
            snprintf(err, err_cap, "cannot listen for HTTP on %s:%u: %s", cfg->http_host,
                     cfg->http_port, rl_strerror(rc));
            goto fail;
        }
    }
    *out = sh;
    return 0;
fail:
    shard_destroy(sh);
    return rc;
}

void shard_destroy(struct shard *sh)
{
    if (!sh)
        return;
    if (sh->listen_fd >= 0)
        close(sh->listen_fd);
    if (sh->http_fd >= 0)
        close(sh->http_fd);
    if (sh->kafka_fd >= 0)
        close(sh->kafka_fd);
    /* Closing the logs waits for their appends; the callbacks may touch limbo requests, so
     * those are freed only afterwards. */
    services_close(sh);
    bg_destroy(sh->bg_http);
    if (sh->st)
        storage_destroy(sh->st);
    while (sh->limbo) {
        struct req *r = sh->limbo;
        sh->limbo = r->next;
        /* Its ops never completed and the logs are closed: just let the memory go. */
        r->svc.pending = 0;
        r->svc.release = NULL;
        req_free(r);
    }
    while (sh->pool) {
        struct req *r = sh->pool;
        sh->pool = r->next;
        arena_destroy(&r->arena);
        free(r);
    }
    conn_pool_destroy(sh);
    if (sh->io)
        io_destroy(sh->io);
    dirlock_release(sh->lock_fd); /* last: every log is closed */
    free(sh);
}
