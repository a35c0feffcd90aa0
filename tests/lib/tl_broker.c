/*
 * tl_broker: see tl_broker.h.
 */
#include "tests/lib/tl_broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t tl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits without busy-spinning; not for synchronization, only the polling interval. */
static void tl_pause_ms(int ms)
{
    poll(NULL, 0, ms);
}

const char *tl_ringlogd_path(void)
{
    static char path[PATH_MAX + 32];
    const char *env = getenv("RINGLOGD");
    if (env && env[0])
        return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return "build/bin/ringlogd";
    exe[n] = 0;
    /* <build>/tests/<suite>/<program>: strip three components. */
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(exe, '/');
        if (!slash)
            return "build/bin/ringlogd";
        *slash = 0;
    }
    snprintf(path, sizeof(path), "%s/bin/ringlogd", exe);
    return path;
}

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TL_SANITIZED_BUILD 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TL_SANITIZED_BUILD 1
#endif

bool tl_sanitized(void)
{
#ifdef TL_SANITIZED_BUILD
    return true;
#else
    return strstr(tl_ringlogd_path(), "/asan/") != NULL;
#endif
}

static int tl_spawn(struct tl_broker *b, const char *listen, const char *http)
{
    const char *argv[TL_BROKER_MAX_ARGS + 16];
    int n = 0;
    argv[n++] = tl_ringlogd_path();
    argv[n++] = "--data-dir";
    argv[n++] = b->data_dir;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--http";
    argv[n++] = http;
    argv[n++] = "--ready-file";
    argv[n++] = b->ready_path;
    for (int i = 0; i < b->n_extra; i++)
        argv[n++] = b->extra[i];
    argv[n] = NULL;
    unlink(b->ready_path);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* A test that dies (crash, timeout) takes its broker with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "tl_broker: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    b->pid = pid;
    return 0;
}

static int tl_read_ready(struct tl_broker *b)
{
    FILE *f = fopen(b->ready_path, "r");
    if (!f)
        return -errno;
    char line[256];
    int found = 0;
    while (fgets(line, sizeof(line), f)) {
        char host[64];
        unsigned port;
        if (sscanf(line, "native=%63[^:]:%u", host, &port) == 2) {
            snprintf(b->host, sizeof(b->host), "%s", host);
            b->port = (uint16_t)port;
            found |= 1;
        } else if (sscanf(line, "http=%63[^:]:%u", host, &port) == 2) {
            b->http_port = (uint16_t)port;
            found |= 2;
        }
    }
    fclose(f);
    return found & 1 ? 0 : -EAGAIN;
}

static int tl_wait_ready(struct tl_broker *b, uint32_t timeout_ms)
{
    uint64_t deadline = tl_now_ms() + timeout_ms;
    while (tl_now_ms() < deadline) {
        if (tl_read_ready(b) == 0)
            return 0;
        if (!tl_broker_alive(b)) {
            fprintf(stderr, "tl_broker: ringlogd exited during start-up; its log:\n");
            tl_broker_dump_log(b, 30);
            return -ECHILD;
        }
        tl_pause_ms(5);
    }
    fprintf(stderr, "tl_broker: ringlogd not ready after %u ms; its log:\n", timeout_ms);
    tl_broker_dump_log(b, 30);
    return -ETIMEDOUT;
}

/* Reserves port for this process: an flock held on TL_PORT_LOCK_DIR/PORT by a descriptor that
 * stays open (close-on-exec, so brokers do not inherit it). False when another live process
 * holds it. */
static bool tl_port_reserve(uint16_t port)
{
    char path[96];
    if (mkdir(TL_PORT_LOCK_DIR, 01777) != 0 && errno != EEXIST)
        return true; /* no lock directory: the bind check alone */
    snprintf(path, sizeof(path), "%s/%u", TL_PORT_LOCK_DIR, port);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return true;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return false;
    }
    return true; /* fd is deliberately kept: the reservation lasts until this process ends */
}

int tl_pick_ports(uint16_t *ports, int n)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() ^ (unsigned)tl_now_ms();
    int fds[64], got = 0, rc = 0;
    if (n > 64)
        return -EINVAL;
    for (int tries = 0; got < n && tries < 1000; tries++) {
        uint16_t port =
            (uint16_t)(TL_PORT_LOW + (unsigned)rand_r(&seed) % (TL_PORT_HIGH - TL_PORT_LOW));
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            break;
        }
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(0x7f000001)};
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || !tl_port_reserve(port)) {
            close(fd); /* taken, reserved by another test, or one of ours already */
            continue;
        }
        fds[got] = fd;
        ports[got++] = port;
    }
    for (int i = 0; i < got; i++)
        close(fds[i]);
    return got == n ? 0 : rc ? rc : -EADDRINUSE;
}

int tl_broker_start(struct tl_broker *b, const char *const *extra_args, uint32_t timeout_ms)
{
    memset(b, 0, sizeof(*b));
    const char *tmp = getenv("TMPDIR");
    snprintf(b->dir, sizeof(b->dir), "%s/ringlog-test-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(b->dir))
        return -errno;
    snprintf(b->data_dir, sizeof(b->data_dir), "%s/data", b->dir);
    snprintf(b->log_path, sizeof(b->log_path), "%s/ringlogd.log", b->dir);
    snprintf(b->ready_path, sizeof(b->ready_path), "%s/ready", b->dir);
    snprintf(b->host, sizeof(b->host), "127.0.0.1");
    for (int i = 0; extra_args && extra_args[i] && i < TL_BROKER_MAX_ARGS; i++) {
        snprintf(b->extra[i], sizeof(b->extra[i]), "%s", extra_args[i]);
        b->n_extra = i + 1;
    }
    /* Picked ports can still be taken by another test's pick before ringlogd binds them: a
     * start that fails on an address in use is tried again on new ports. */
    int rc = -EADDRINUSE;
    for (int attempt = 0; attempt < 3 && rc == -EADDRINUSE; attempt++) {
        uint16_t ports[2];
        char listen[32], http[32];
        if ((rc = tl_pick_ports(ports, 2)) != 0)
            break;
        snprintf(listen, sizeof(listen), "127.0.0.1:%u", ports[0]);
        snprintf(http, sizeof(http), "127.0.0.1:%u", ports[1]);
        rc = tl_spawn(b, listen, http);
        if (!rc)
            rc = tl_wait_ready(b, timeout_ms);
        if (rc == -ECHILD && tl_broker_log_has(b, "in use"))
            rc = -EADDRINUSE;
    }
    if (rc)
        tl_broker_cleanup(b); /* its log was shown; leave no process or directory behind */
    return rc;
}

int tl_broker_restart(struct tl_broker *b, uint32_t timeout_ms)
{
    char listen[96], http[96];
    if (b->pid)
        tl_broker_kill(b);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", b->port);
    snprintf(http, sizeof(http), "127.0.0.1:%u", b->http_port);
    int rc = tl_spawn(b, listen, http);
    return rc ? rc : tl_wait_ready(b, timeout_ms);
}

bool tl_broker_alive(struct tl_broker *b)
{
    if (!b->pid)
        return false;
    int status;
    pid_t r = waitpid(b->pid, &status, WNOHANG);
    if (r == b->pid) {
        b->pid = 0;
        return false;
    }
    return true;
}

int tl_broker_stop(struct tl_broker *b, int sig, uint32_t timeout_ms)
{
    if (!b->pid)
        return -ECHILD;
    kill(b->pid, sig);
    uint64_t deadline = tl_now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(b->pid, &status, WNOHANG);
        if (r == b->pid) {
            b->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (r < 0) {
            b->pid = 0;
            return -errno;
        }
        if (tl_now_ms() >= deadline) {
            tl_broker_kill(b);
            return -ETIMEDOUT;
        }
        tl_pause_ms(5);
    }
}

void tl_broker_kill(struct tl_broker *b)
{
    if (!b->pid)
        return;
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    b->pid = 0;
}

void tl_broker_dump_log(const struct tl_broker *b, int lines)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' 1>&2", lines, b->log_path);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log at %s)\n", b->log_path);
}

bool tl_broker_log_has(const struct tl_broker *b, const char *needle)
{
    FILE *f = fopen(b->log_path, "r");
    char line[4096];
    bool found = false;
    for (int n = 0; f && !found && n < 10000000 && fgets(line, sizeof(line), f); n++)
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

void tl_broker_cleanup(struct tl_broker *b)
{
    tl_broker_kill(b);
    const char *keep = getenv("TL_KEEP_DIRS");
    if (keep && keep[0] == '1') {
        if (b->dir[0])
            fprintf(stderr, "tl_broker: kept %s (TL_KEEP_DIRS=1)\n", b->dir);
        b->dir[0] = 0;
        return; /* a failed run's logs and data, for a post-mortem */
    }
    const char *base = strrchr(b->dir, '/');
    if (!b->dir[0] || !base || strncmp(base, "/ringlog-test-", 14) || strchr(b->dir, '\''))
        return; /* only ever remove what tl_broker_start created */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", b->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "tl_broker: could not remove %s\n", b->dir);
    b->dir[0] = 0;
}

int tl_broker_finish(struct tl_broker *b, uint32_t timeout_ms)
{
    int st = b->pid ? tl_broker_stop(b, SIGTERM, timeout_ms) : 0;
    if (st != 0)
        tl_broker_dump_log(b, 40);
    tl_broker_cleanup(b);
    return st;
}
