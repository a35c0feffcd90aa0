/*
 * cluster: see cluster.h.
 */
#include "tests/fault/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/lib/tl_broker.h"

#define ARGV_MAX (CL_MAX_EXTRA + 24)

static int make_tmpdir(char *dir, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, cap, "%s/ringlog-fault-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    return mkdtemp(dir) ? 0 : -errno;
}

static void remove_tree(const char *dir)
{
    const char *base = strrchr(dir, '/');
    if (!dir[0] || !base || strncmp(base, "/ringlog-fault-", 15) || strchr(dir, '\''))
        return; /* only ever remove what make_tmpdir made */
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cluster: could not remove %s\n", dir);
}

/* Waits for pid to exit or ready_path to appear. 1 ready, 0 exited, -ETIMEDOUT. */
static int wait_ready_or_exit(pid_t pid, const char *ready_path, uint32_t timeout_ms,
                              int *status)
{
    uint64_t deadline = tl_now_ms() + timeout_ms;
    while (tl_now_ms() < deadline) {
        if (access(ready_path, F_OK) == 0)
            return 1;
        if (waitpid(pid, status, WNOHANG) == pid)
            return 0;
        poll(NULL, 0, 10);
    }
    return -ETIMEDOUT;
}

static void first_line(const char *path, char *out, size_t cap)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        if (line[0]) {
            snprintf(out, cap, "%s", line);
            break;
        }
    }
    fclose(f);
}

int cl_probe(const struct netns_lab *lab, const char *const *args, char *why, size_t cap)
{
    char dir[256], data[300], log[300], ready[300];
    int rc = make_tmpdir(dir, sizeof(dir));
    if (rc)
        return rc;
    snprintf(data, sizeof(data), "%s/data", dir);
    snprintf(log, sizeof(log), "%s/probe.log", dir);
    snprintf(ready, sizeof(ready), "%s/ready", dir);
    const char *argv[ARGV_MAX];
    int n = 0;
    argv[n++] = tl_ringlogd_path();
    argv[n++] = "--data-dir";
    argv[n++] = data;
    argv[n++] = "--http";
    argv[n++] = "off";
    argv[n++] = "--ready-file";
    argv[n++] = ready;
    for (int i = 0; args && args[i] && n < ARGV_MAX - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = netns_spawn(lab, 0, argv, log);
    if (pid < 0) {
        remove_tree(dir);
        return pid;
    }
    int status = 0;
    rc = wait_ready_or_exit(pid, ready, 20000, &status);
    if (rc == 1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    } else if (rc == 0) {
        first_line(log, why, cap);
        if (!why[0])
            snprintf(why, cap, "ringlogd exited with status %d", WEXITSTATUS(status));
    } else {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        snprintf(why, cap, "ringlogd neither started nor exited within 20 s");
    }
    remove_tree(dir);
    return rc;
}

int cl_probe_voters(const struct netns_lab *lab, char *why, size_t cap)
{
    /* A private port of the sandbox's loopback: nothing else can hold it. */
    static const char *const args[] = {"--listen", "127.0.0.1:19400", "--node-id", "1",
                                       "--voters", "1@127.0.0.1:19400", NULL};
    return cl_probe(lab, args, why, cap);
}

static int spawn(struct cl_cluster *c, int i)
{
    struct cl_broker *b = &c->b[i];
    char http[40], node[16], delay_set[360];
    snprintf(http, sizeof(http), "%s:%d", b->host, CL_HTTP_PORT);
    snprintf(node, sizeof(node), "%d", b->node);
    snprintf(delay_set, sizeof(delay_set), CL_SLOW_DISK_KEY "=%s", b->delay_path);
    const char *argv[ARGV_MAX];
    int n = 0;
    argv[n++] = tl_ringlogd_path();
    argv[n++] = "--data-dir";
    argv[n++] = b->data_dir;
    argv[n++] = "--listen";
    argv[n++] = b->addr;
    argv[n++] = "--http";
    argv[n++] = http;
    argv[n++] = "--ready-file";
    argv[n++] = b->ready_path;
    argv[n++] = "--node-id";
    argv[n++] = node;
    if (c->voters) {
        argv[n++] = "--voters";
        argv[n++] = c->voter_list;
    }
    if (c->slow_disk_hook) {
        argv[n++] = "--set";
        argv[n++] = delay_set;
    }
    for (int k = 0; k < c->n_extra; k++)
        argv[n++] = c->extra[k];
    argv[n] = NULL;
    unlink(b->ready_path);
    pid_t pid = netns_spawn(c->lab, b->node, argv, b->log_path);
    if (pid < 0)
        return pid;
    b->pid = pid;
    b->paused = false;
    return 0;
}

static int wait_broker(struct cl_cluster *c, int i, uint32_t timeout_ms)
{
    int status = 0;
    int rc = wait_ready_or_exit(c->b[i].pid, c->b[i].ready_path, timeout_ms, &status);
    if (rc == 1)
        return 0;
    if (rc == 0)
        c->b[i].pid = 0;
    fprintf(stderr, "cluster: broker %d %s; its log:\n", i,
            rc == 0 ? "exited during start-up" : "not ready in time");
    cl_dump_log(c, i, 30);
    return rc == 0 ? -ECHILD : rc;
}

static void broker_paths(struct cl_cluster *c, int i)
{
    struct cl_broker *b = &c->b[i];
    b->node = i;
    snprintf(b->host, sizeof(b->host), NETNS_SUBNET ".%d", i);
    snprintf(b->addr, sizeof(b->addr), NETNS_SUBNET ".%d:%d", i, CL_PORT);
    snprintf(b->data_dir, sizeof(b->data_dir), "%s/node-%d", c->dir, i);
    snprintf(b->log_path, sizeof(b->log_path), "%s/node-%d.log", c->dir, i);
    snprintf(b->ready_path, sizeof(b->ready_path), "%s/node-%d.ready", c->dir, i);
    snprintf(b->delay_path, sizeof(b->delay_path), "%s/node-%d.io-delay-ms", c->dir, i);
}

int cl_start(struct cl_cluster *c, struct netns_lab *lab, int n, bool voters,
             const char *const *extra, uint32_t timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->lab = lab;
    if (n < 1 || n > lab->n_hosts)
        return -EINVAL;
    int rc = make_tmpdir(c->dir, sizeof(c->dir));
    if (rc)
        return rc;
    c->n = n;
    c->voters = voters;
    for (int k = 0; extra && extra[k] && k < CL_MAX_EXTRA; k++)
        snprintf(c->extra[c->n_extra++], sizeof(c->extra[0]), "%s", extra[k]);
    size_t bl = 0, vl = 0;
    for (int i = 1; i <= n; i++) {
        broker_paths(c, i);
        bl += (size_t)snprintf(c->bootstrap + bl, sizeof(c->bootstrap) - bl, "%s%s",
                               i > 1 ? "," : "", c->b[i].addr);
        vl += (size_t)snprintf(c->voter_list + vl, sizeof(c->voter_list) - vl, "%s%d@%s",
                               i > 1 ? "," : "", i, c->b[i].addr);
    }
    char why[256], set[360];
    snprintf(set, sizeof(set), CL_SLOW_DISK_KEY "=%s/probe-delay", c->dir);
    const char *const probe_args[] = {"--listen", "127.0.0.1:0", "--set", set, NULL};
    c->slow_disk_hook = cl_probe(lab, probe_args, why, sizeof(why)) == 1;
    netns_log(lab, "cluster: %d broker%s%s; slow disk hook (%s): %s", n, n > 1 ? "s" : "",
              voters ? " as one cluster" : "", CL_SLOW_DISK_KEY,
              c->slow_disk_hook ? "yes" : "no (ringlogd refuses the setting)");
    for (int i = 1; i <= n && !rc; i++)
        rc = spawn(c, i);
    for (int i = 1; i <= n && !rc; i++)
        rc = wait_broker(c, i, timeout_ms);
    return rc;
}

void cl_kill(struct cl_cluster *c, int i)
{
    struct cl_broker *b = &c->b[i];
    netns_log(c->lab, "kill -9 broker %d (pid %d)", i, (int)b->pid);
    if (!b->pid)
        return;
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    b->pid = 0;
    b->paused = false;
}

/* Whether broker i's `port` can be bound in its host (as ringlogd binds it): a child joins
 * the host's namespace and tries. 1 free, 0 in use, negative: could not tell. */
static int port_free(struct cl_cluster *c, int i, int port)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        if (netns_enter(c->lab, c->b[i].node) != 0)
            _exit(2);
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        if (fd < 0 || inet_pton(AF_INET, c->b[i].host, &sa.sin_addr) != 1)
            _exit(2);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        _exit(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 0 : 1);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) == 2)
        return -ECHILD;
    return WEXITSTATUS(status) == 0;
}

/* After a SIGKILL the kernel may release the dead broker's listening socket a little after the
 * process is reaped (io_uring requests holding it are torn down asynchronously): a restart at
 * once can fail to bind. Polls until the port is free (bounded; on timeout the restart goes
 * ahead and reports what ringlogd says). */
static void wait_port_free(struct cl_cluster *c, int i, uint32_t timeout_ms)
{
    uint64_t deadline = tl_now_ms() + timeout_ms;
    static const int ports[] = {CL_PORT, CL_HTTP_PORT};
    for (int k = 0; k < 2; k++) {
        int rc;
        while ((rc = port_free(c, i, ports[k])) == 0 && tl_now_ms() < deadline)
            poll(NULL, 0, 20);
        if (rc == 0)
            netns_log(c->lab, "broker %d: port %d still in use after %u ms; restarting anyway",
                      i, ports[k], timeout_ms);
    }
}

int cl_restart(struct cl_cluster *c, int i, uint32_t timeout_ms)
{
    if (c->b[i].pid)
        cl_kill(c, i);
    wait_port_free(c, i, timeout_ms);
    netns_log(c->lab, "restart broker %d", i);
    int rc = spawn(c, i);
    return rc ? rc : wait_broker(c, i, timeout_ms);
}

int cl_pause(struct cl_cluster *c, int i)
{
    netns_log(c->lab, "pause broker %d (SIGSTOP)", i);
    if (!c->b[i].pid || kill(c->b[i].pid, SIGSTOP))
        return -ESRCH;
    c->b[i].paused = true;
    return 0;
}

int cl_resume(struct cl_cluster *c, int i)
{
    netns_log(c->lab, "resume broker %d (SIGCONT)", i);
    if (!c->b[i].pid || kill(c->b[i].pid, SIGCONT))
        return -ESRCH;
    c->b[i].paused = false;
    return 0;
}

bool cl_alive(struct cl_cluster *c, int i)
{
    struct cl_broker *b = &c->b[i];
    if (!b->pid)
        return false;
    if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
        b->pid = 0;
        return false;
    }
    return true;
}

int cl_stop(struct cl_cluster *c, int i, int sig, uint32_t timeout_ms)
{
    struct cl_broker *b = &c->b[i];
    if (!b->pid)
        return -ECHILD;
    netns_log(c->lab, "stop broker %d (signal %d)", i, sig);
    if (b->paused)
        cl_resume(c, i);
    kill(b->pid, sig);
    uint64_t deadline = tl_now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(b->pid, &status, WNOHANG);
        if (r == b->pid) {
            b->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (tl_now_ms() >= deadline) {
            cl_kill(c, i);
            return -ETIMEDOUT;
        }
        poll(NULL, 0, 10);
    }
}

int cl_slow_disk(struct cl_cluster *c, int i, int delay_ms)
{
    if (!c->slow_disk_hook)
        return -EOPNOTSUPP;
    netns_log(c->lab, "slow disk on broker %d: +%d ms per write and fsync", i, delay_ms);
    char tmp[320];
    snprintf(tmp, sizeof(tmp), "%s.tmp", c->b[i].delay_path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", delay_ms);
    if (fclose(f) || rename(tmp, c->b[i].delay_path))
        return -errno;
    return 0;
}

void cl_dump_log(const struct cl_cluster *c, int i, int lines)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' 1>&2", lines, c->b[i].log_path);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log at %s)\n", c->b[i].log_path);
}

void cl_destroy(struct cl_cluster *c, bool keep)
{
    for (int i = 1; i <= c->n; i++)
        if (c->b[i].pid) {
            kill(c->b[i].pid, SIGKILL);
            waitpid(c->b[i].pid, NULL, 0);
            c->b[i].pid = 0;
        }
    if (keep && c->dir[0])
        fprintf(stderr, "cluster: data directories and logs kept in %s\n", c->dir);
    else
        remove_tree(c->dir);
    c->dir[0] = 0;
}
