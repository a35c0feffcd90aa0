/*
 * cli_bench_broker: the bench's own ringlogd, its CPU time and its metrics (see the header).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/cli.h"
#include "client/cli_bench_broker.h"

#define READY_TIMEOUT_MS 20000
#define STOP_TIMEOUT_MS 10000
#define METRICS_MAX_BYTES (16u << 20)
#define METRICS_TIMEOUT_S 5

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void exec_broker(const char *ringlogd, const char *dir, const char *const *sets,
                        size_t nsets, const char *logp)
{
    char data[PATH_MAX + 16], ready[PATH_MAX + 16];
    const char *argv[12 + 2 * BBROKER_MAX_SETS];
    size_t n = 0;
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(ready, sizeof(ready), "%s/ready", dir);
    /* If the bench dies, its broker must not outlive it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    argv[n++] = ringlogd;
    argv[n++] = "--data-dir";
    argv[n++] = data;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--http";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--ready-file";
    argv[n++] = ready;
    for (size_t i = 0; i < nsets && i < BBROKER_MAX_SETS; i++) {
        argv[n++] = "--set";
        argv[n++] = sets[i];
    }
    argv[n] = NULL;
    execv(ringlogd, (char *const *)argv);
    _exit(127);
}

/* Reads the ready file once; true when it names both listeners. */
static bool read_ready(struct bbroker *b, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    bool native = false, http = false;
    while (f && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!strncmp(line, "native=", 7))
            native = snprintf(b->native, sizeof(b->native), "%s", line + 7) > 0;
        else if (!strncmp(line, "http=", 5))
            http = snprintf(b->http, sizeof(b->http), "%s", line + 5) > 0;
    }
    if (f)
        fclose(f);
    return native && http;
}

int bbroker_start(struct bbroker *b, const char *ringlogd, const char *dir,
                  const char *const *sets, size_t nsets)
{
    char ready[PATH_MAX + 16];
    *b = (struct bbroker){.pid = -1};
    snprintf(ready, sizeof(ready), "%s/ready", dir);
    snprintf(b->log_path, sizeof(b->log_path), "%s/ringlogd.log", dir);
    fflush(NULL);
    b->pid = fork();
    if (b->pid < 0) {
        cli_error("cannot start ringlogd: fork: %s", strerror(errno));
        return -1;
    }
    if (b->pid == 0)
        exec_broker(ringlogd, dir, sets, nsets, b->log_path);
    int64_t deadline = mono_ms() + READY_TIMEOUT_MS;
    while (mono_ms() < deadline) {
        if (read_ready(b, ready))
            return 0;
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
            cli_error("ringlogd exited during start-up; see %s", b->log_path);
            b->pid = -1;
            return -1;
        }
        sleep_ms(20); /* start-up poll: the file appears once, there is no event to wait on */
    }
    cli_error("ringlogd did not become ready within %d ms; see %s", READY_TIMEOUT_MS,
              b->log_path);
    bbroker_stop(b);
    return -1;
}

void bbroker_stop(struct bbroker *b)
{
    if (b->pid <= 0)
        return;
    kill(b->pid, SIGTERM);
    for (int64_t deadline = mono_ms() + STOP_TIMEOUT_MS; mono_ms() < deadline; sleep_ms(20))
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
            b->pid = -1;
            return;
        }
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    b->pid = -1;
}

double bbroker_cpu_s(const struct bbroker *b)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)b->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields after the command name (which may hold spaces) start after the last ')';
     * utime and stime are fields 14 and 15, the 12th and 13th after it. */
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                     &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int http_connect(const char *hostport)
{
    char host[128];
    snprintf(host, sizeof(host), "%s", hostport);
    char *colon = strrchr(host, ':');
    if (!colon)
        return -EINVAL;
    *colon = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {METRICS_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

int bbroker_metrics(const struct bbroker *b, char **text)
{
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: ringlogd\r\n\r\n";
    *text = NULL;
    int fd = http_connect(b->http), rc = 0;
    if (fd < 0)
        return fd;
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap);
    if (!buf || send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1))
        rc = buf ? -EIO : -ENOMEM;
    while (rc == 0) {
        if (len + 1 == cap) {
            char *nb = cap >= METRICS_MAX_BYTES ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                rc = -EFBIG;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -errno;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[len] = 0;
    char *body = strstr(buf, "\r\n\r\n");
    if (body)
        memmove(buf, body + 4, len - (size_t)(body + 4 - buf) + 1);
    *text = buf;
    return 0;
}

static const char *next_line(const char *line)
{
    const char *nl = strchr(line, '\n');
    return nl ? nl + 1 : NULL;
}

/* Parses `NAME{topic="T",partition="P"} VALUE` for one topic; returns the partition or -1. */
static int series_partition(const char *text, const char *topic, double *value)
{
    char want[300], line[512];
    size_t n = strcspn(text, "\n");
    if (n >= sizeof(line))
        return -1;
    memcpy(line, text, n); /* the search must not run on into later lines */
    line[n] = 0;
    snprintf(want, sizeof(want), "{topic=\"%s\",partition=\"", topic);
    const char *p = strstr(line, want);
    if (!p)
        return -1;
    char *end;
    long part = strtol(p + strlen(want), &end, 10);
    const char *v = strchr(end, ' ');
    if (part < 0 || part >= BBROKER_MAX_PARTITIONS || !v)
        return -1;
    *value = strtod(v + 1, NULL);
    return (int)part;
}

void bbroker_topic_parse(const char *text, const char *topic, struct bbroker_topic *out)
{
    memset(out, 0, sizeof(*out));
    for (const char *line = text; line && *line; line = next_line(line)) {
        bool bytes = !strncmp(line, "ringlog_partition_bytes_in_total{", 33);
        bool start = !strncmp(line, "ringlog_partition_log_start_offset{", 35);
        double v;
        int part = bytes || start ? series_partition(line, topic, &v) : -1;
        if (part < 0)
            continue;
        if (bytes) {
            out->part_bytes_in[part] = (uint64_t)v;
            out->bytes_in += (uint64_t)v;
        } else {
            out->part_log_start[part] = (int64_t)v;
        }
        if ((uint32_t)part + 1 > out->partitions)
            out->partitions = (uint32_t)part + 1;
    }
}

int bbroker_metrics_matching(const char *text, const char *part, char *buf, size_t len)
{
    char names[32][128];
    double sums[32];
    int n = 0;
    for (const char *line = text; line && *line; line = next_line(line)) {
        size_t nl = strcspn(line, "{ \n");
        if (line[0] == '#' || nl == 0 || nl >= sizeof(names[0]) || line[nl] == '\n')
            continue;
        char name[128];
        memcpy(name, line, nl);
        name[nl] = 0;
        if (!strstr(name, part) || strstr(name, "_bucket"))
            continue;
        const char *v = line[nl] == '{' ? strchr(line + nl, '}') : line + nl;
        if (!v || !(v = strchr(v, ' ')))
            continue;
        int i = 0;
        while (i < n && strcmp(names[i], name))
            i++;
        if (i == n) {
            if (n == 32)
                continue;
            snprintf(names[n], sizeof(names[n]), "%s", name);
            sums[n++] = 0;
        }
        sums[i] += strtod(v + 1, NULL);
    }
    size_t off = 0;
    buf[0] = 0;
    for (int i = 0; i < n && off < len; i++) /* counts whole, seconds to the microsecond */
        off += (size_t)snprintf(buf + off, len - off,
                                sums[i] == (double)(long long)sums[i] ? "%s%s=%.0f" : "%s%s=%.6f",
                                i ? " " : "", names[i], sums[i]);
    return n;
}
