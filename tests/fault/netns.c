/*
 * netns: see netns.h. Commands (ip, tc, nft, iptables) run in a forked child that has joined
 * the host's namespace with setns(2); nothing here speaks netlink itself.
 */
#include "tests/fault/netns.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BRIDGE "rlbr0"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

double netns_elapsed_s(const struct netns_lab *lab)
{
    return (double)(now_ms() - lab->t0_ms) / 1000.0;
}

void netns_log(const struct netns_lab *lab, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    double t = lab ? netns_elapsed_s(lab) : 0;
    fprintf(stderr, "[fault +%8.3f] %s\n", t, msg);
    if (lab && lab->log) {
        fprintf(lab->log, "[fault +%8.3f] %s\n", t, msg);
        fflush(lab->log);
    }
}

/* True when the namespace we are in has no IPv4 route and no interface but lo. */
static bool no_route_out(char *why, size_t cap)
{
    char line[512];
    int routes = -1, ifaces = 0;
    FILE *f = fopen("/proc/net/route", "r");
    if (f) {
        routes = 0; /* an empty table may print no header either */
        while (fgets(line, sizeof(line), f))
            routes += strncmp(line, "Iface", 5) != 0;
        fclose(f);
    }
    f = fopen("/proc/net/dev", "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            char name[64];
            if (sscanf(line, " %63[^:]:", name) == 1 && strchr(line, ':') && strcmp(name, "lo"))
                ifaces++;
        }
        fclose(f);
    }
    if (routes != 0 || ifaces != 0) {
        snprintf(why, cap, "the new namespace is not empty (%d routes, %d interfaces besides lo)",
                 routes, ifaces);
        return false;
    }
    return true;
}

int netns_sandbox_enter(char *why, size_t why_cap)
{
    if (unshare(CLONE_NEWNET) != 0) {
        int e = errno;
        snprintf(why, why_cap, "cannot create a network namespace (unshare: %s); the fault "
                 "tests need root or CAP_SYS_ADMIN", strerror(e));
        return -e;
    }
    if (!no_route_out(why, why_cap))
        return -EEXIST;
    int st = system("ip link set lo up >/dev/null 2>&1");
    if (st != 0) {
        snprintf(why, why_cap, "cannot bring up lo in the sandbox (is iproute2 installed?)");
        return -ENOENT;
    }
    return 0;
}

int netns_enter(const struct netns_lab *lab, int host)
{
    int fd = host == 0 ? lab->outer_fd : lab->host[host].ns_fd;
    if (host < 0 || host > lab->n_hosts || fd < 0)
        return -EINVAL;
    return setns(fd, CLONE_NEWNET) == 0 ? 0 : -errno;
}

/* In a forked child: die with the parent, join the host, send output to fd (if >= 0). */
static void child_setup(const struct netns_lab *lab, int host, pid_t parent, int out_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (netns_enter(lab, host) != 0)
        _exit(126);
    if (out_fd >= 0) {
        dup2(out_fd, 1);
        dup2(out_fd, 2);
        close(out_fd);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2(devnull, 0);
        close(devnull);
    }
}

pid_t netns_spawn(const struct netns_lab *lab, int host, const char *const *argv,
                  const char *log_path)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int fd = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;
        child_setup(lab, host, parent, fd);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "netns: cannot exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Reads pid's output pipe into out until it closes, and reaps pid; both within timeout_ms
 * (then pid is killed). Returns pid's exit status or -ETIMEDOUT. */
static int wait_output(pid_t pid, int rfd, char *out, size_t cap, uint32_t timeout_ms)
{
    size_t len = 0;
    uint64_t deadline = now_ms() + timeout_ms;
    bool pipe_open = true, reaped = false;
    int status = 0;
    while (pipe_open || !reaped) {
        if (now_ms() > deadline) {
            if (!reaped) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
            }
            return -ETIMEDOUT;
        }
        if (pipe_open) {
            struct pollfd p = {.fd = rfd, .events = POLLIN};
            if (poll(&p, 1, 20) > 0) {
                char buf[512];
                ssize_t n = read(rfd, buf, sizeof(buf));
                if (n <= 0)
                    pipe_open = false;
                for (ssize_t i = 0; i < n && out && len + 1 < cap; i++)
                    out[len++] = buf[i];
            }
        } else {
            poll(NULL, 0, 2);
        }
        if (!reaped && waitpid(pid, &status, WNOHANG) == pid)
            reaped = true;
    }
    if (out && cap)
        out[len] = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int netns_sh(const struct netns_lab *lab, int host, char *out, size_t out_cap,
             const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pfd[0]);
        close(pfd[1]);
        return -e;
    }
    if (pid == 0) {
        child_setup(lab, host, parent, dup(pfd[1]));
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    int rc = wait_output(pid, pfd[0], out, out_cap, NETNS_CMD_TIMEOUT_MS);
    close(pfd[0]);
    return rc;
}

/* Runs a command that must succeed; logs its output when it does not. */
static int must(const struct netns_lab *lab, int host, const char *cmd)
{
    char out[1024];
    int rc = netns_sh(lab, host, out, sizeof(out), "%s", cmd);
    if (rc != 0)
        netns_log(lab, "command failed in host %d (status %d): %s: %s", host, rc, cmd, out);
    return rc == 0 ? 0 : rc < 0 ? rc : -EIO;
}

/* A holder: a child in a new network namespace that lives until its pipe closes. */
static int host_create(struct netns_lab *lab, int i)
{
    struct netns_host *h = &lab->host[i];
    int ready[2], hold[2];
    if (pipe2(ready, O_CLOEXEC) || pipe2(hold, O_CLOEXEC))
        return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        /* Keep nothing else open: a copy of another holder's pipe would keep it alive. */
        if (dup2(hold[0], 0) < 0 || dup2(ready[1], 1) < 0)
            _exit(1);
        close_range(3, ~0u, 0);
        char ok = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
        if (write(1, &ok, 1) != 1)
            _exit(1);
        char c;
        while (read(0, &c, 1) > 0) /* until the test closes its end (or dies) */
            ;
        _exit(0);
    }
    close(ready[1]);
    close(hold[0]);
    h->holder = pid;
    h->holder_fd = hold[1];
    char ok = 0;
    struct pollfd p = {.fd = ready[0], .events = POLLIN};
    if (poll(&p, 1, NETNS_CMD_TIMEOUT_MS) <= 0 || read(ready[0], &ok, 1) != 1 || ok != 'y') {
        close(ready[0]);
        return -ECHILD;
    }
    close(ready[0]);
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
    h->ns_fd = open(path, O_RDONLY | O_CLOEXEC);
    snprintf(h->addr, sizeof(h->addr), NETNS_SUBNET ".%d", i);
    return h->ns_fd >= 0 ? 0 : -errno;
}

static int host_wire(struct netns_lab *lab, int i)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "ip link add vh%d type veth peer name eth0 netns %d && "
             "ip link set vh%d master " BRIDGE " && ip link set vh%d up",
             i, (int)lab->host[i].holder, i, i);
    int rc = must(lab, 0, cmd);
    if (rc)
        return rc;
    snprintf(cmd, sizeof(cmd),
             "ip link set lo up && ip addr add %s/24 dev eth0 && ip link set eth0 up",
             lab->host[i].addr);
    return must(lab, i, cmd);
}

/* What this kernel can do: netem (tried on a host's eth0), and a firewall. */
static void probe(struct netns_lab *lab)
{
    lab->have_netem = netns_sh(lab, 1, NULL, 0,
                               "tc qdisc add dev eth0 root netem delay 1ms 2>&1 && "
                               "tc qdisc del dev eth0 root") == 0;
    lab->have_tbf = netns_sh(lab, 1, NULL, 0,
                             "tc qdisc add dev eth0 root tbf rate 1mbit burst 32kbit latency "
                             "100ms 2>&1 && tc qdisc del dev eth0 root") == 0;
    if (netns_sh(lab, 1, NULL, 0, "nft add table inet probe && nft delete table inet probe") == 0)
        lab->firewall = NETNS_FW_NFT;
    else if (netns_sh(lab, 1, NULL, 0, "iptables -L INPUT -n >/dev/null") == 0)
        lab->firewall = NETNS_FW_IPTABLES;
    else
        lab->firewall = NETNS_FW_NONE;
}

/* A base firewall in every host: table inet fault with input and output chains. */
static int firewall_reset(struct netns_lab *lab, int i)
{
    if (lab->firewall == NETNS_FW_NFT)
        return must(lab, i,
                    "nft delete table inet fault 2>/dev/null; nft add table inet fault && "
                    "nft add chain inet fault input '{ type filter hook input priority 0; }' && "
                    "nft add chain inet fault output '{ type filter hook output priority 0; }'");
    if (lab->firewall == NETNS_FW_IPTABLES)
        return must(lab, i, "iptables -F INPUT && iptables -F OUTPUT");
    return 0;
}

int netns_lab_create(struct netns_lab *lab, int n_hosts, const char *log_path, char *why,
                     size_t why_cap)
{
    memset(lab, 0, sizeof(*lab));
    lab->t0_ms = now_ms();
    lab->outer_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    for (int i = 0; i <= NETNS_MAX_HOSTS; i++)
        lab->host[i].ns_fd = lab->host[i].holder_fd = -1;
    if (n_hosts < 1 || n_hosts > NETNS_MAX_HOSTS || lab->outer_fd < 0) {
        snprintf(why, why_cap, "bad host count %d (1..%d)", n_hosts, NETNS_MAX_HOSTS);
        return -EINVAL;
    }
    if (log_path)
        lab->log = fopen(log_path, "a");
    int rc = must(lab, 0, "ip link add " BRIDGE " type bridge && "
                          "ip addr add " NETNS_CONTROL_ADDR "/24 dev " BRIDGE " && "
                          "ip link set " BRIDGE " up");
    if (rc) {
        snprintf(why, why_cap, "cannot make the bridge (ip link add type bridge failed)");
        return rc;
    }
    for (int i = 1; i <= n_hosts; i++) {
        lab->n_hosts = i;
        rc = host_create(lab, i);
        if (!rc)
            rc = host_wire(lab, i);
        if (rc) {
            snprintf(why, why_cap, "cannot make host %d (%s)", i, strerror(-rc));
            return rc;
        }
    }
    probe(lab);
    for (int i = 1; i <= n_hosts && !rc; i++)
        rc = firewall_reset(lab, i);
    netns_log(lab, "lab: %d hosts on %s.0/24, control node %s; %s", n_hosts, NETNS_SUBNET,
              NETNS_CONTROL_ADDR, netns_capabilities(lab));
    return rc;
}

void netns_lab_destroy(struct netns_lab *lab)
{
    for (int i = 1; i <= lab->n_hosts; i++) {
        struct netns_host *h = &lab->host[i];
        if (h->holder_fd >= 0)
            close(h->holder_fd);
        if (h->holder > 0)
            waitpid(h->holder, NULL, 0); /* it exits as soon as its pipe closes */
        if (h->ns_fd >= 0)
            close(h->ns_fd);
        h->holder = 0;
        h->holder_fd = h->ns_fd = -1;
    }
    netns_sh(lab, 0, NULL, 0, "ip link del " BRIDGE " 2>/dev/null");
    if (lab->outer_fd >= 0)
        close(lab->outer_fd);
    lab->outer_fd = -1;
    if (lab->log)
        fclose(lab->log);
    lab->log = NULL;
    lab->n_hosts = 0;
}

const char *netns_capabilities(const struct netns_lab *lab)
{
    static char buf[200];
    snprintf(buf, sizeof(buf), "netem: %s; tbf (slow links): %s; firewall (partitions%s): %s",
             lab->have_netem ? "yes" : "no (sch_netem missing: delay cases skip)",
             lab->have_tbf ? "yes" : "no (slow-link cases skip)",
             lab->have_netem ? "" : ", loss",
             lab->firewall == NETNS_FW_NFT        ? "nftables"
             : lab->firewall == NETNS_FW_IPTABLES ? "iptables"
                                                  : "none (partition cases skip)");
    return buf;
}

/* --- faults ----------------------------------------------------------------------------------- */

/* Receiver drops on input what sender sends. */
static int drop_rule(struct netns_lab *lab, int receiver, int sender)
{
    char cmd[256];
    if (lab->firewall == NETNS_FW_NFT)
        snprintf(cmd, sizeof(cmd), "nft add rule inet fault input ip saddr %s drop",
                 lab->host[sender].addr);
    else if (lab->firewall == NETNS_FW_IPTABLES)
        snprintf(cmd, sizeof(cmd), "iptables -A INPUT -s %s -j DROP", lab->host[sender].addr);
    else
        return -EOPNOTSUPP;
    return must(lab, receiver, cmd);
}

static bool valid_host(const struct netns_lab *lab, int h)
{
    return h >= 1 && h <= lab->n_hosts;
}

static void hosts_text(const int *hs, int n, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n && len + 8 < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%d", i ? "," : "", hs[i]);
}

int netns_partition(struct netns_lab *lab, const int *a, int na, const int *b, int nb)
{
    char ta[64], tb[64];
    hosts_text(a, na, ta, sizeof(ta));
    hosts_text(b, nb, tb, sizeof(tb));
    netns_log(lab, "partition {%s} | {%s}", ta, tb);
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++) {
            if (!valid_host(lab, a[i]) || !valid_host(lab, b[j]) || a[i] == b[j])
                return -EINVAL;
            int rc = drop_rule(lab, a[i], b[j]);
            if (!rc)
                rc = drop_rule(lab, b[j], a[i]);
            if (rc)
                return rc;
        }
    return 0;
}

int netns_drop_from(struct netns_lab *lab, int receiver, int sender)
{
    netns_log(lab, "one-way partition: host %d drops what host %d sends", receiver, sender);
    if (!valid_host(lab, receiver) || !valid_host(lab, sender) || receiver == sender)
        return -EINVAL;
    return drop_rule(lab, receiver, sender);
}

int netns_isolate(struct netns_lab *lab, int host)
{
    int others[NETNS_MAX_HOSTS], n = 0;
    for (int i = 1; i <= lab->n_hosts; i++)
        if (i != host)
            others[n++] = i;
    return n ? netns_partition(lab, &host, 1, others, n) : 0;
}

/* The root qdisc `qdisc` (e.g. "netem delay 20ms") on both ends of host's link, replacing
 * what was there. */
static int qdisc_both_ends(struct netns_lab *lab, int host, const char *qdisc)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "tc qdisc replace dev eth0 root %s", qdisc);
    int rc = must(lab, host, cmd);
    if (rc)
        return rc;
    snprintf(cmd, sizeof(cmd), "tc qdisc replace dev vh%d root %s", host, qdisc);
    return must(lab, 0, cmd);
}

/* netem with `spec` on both ends of host's link. */
static int netem_both_ends(struct netns_lab *lab, int host, const char *spec)
{
    char qdisc[192];
    snprintf(qdisc, sizeof(qdisc), "netem %s", spec);
    return qdisc_both_ends(lab, host, qdisc);
}

static int netem_spec(const struct netns_host *h, char *spec, size_t cap)
{
    int n = 0;
    if (h->delay_ms)
        n += snprintf(spec + n, cap - (size_t)n, "delay %dms %dms distribution normal ",
                      h->delay_ms, h->delay_ms / 5);
    if (h->loss_percent)
        n += snprintf(spec + n, cap - (size_t)n, "loss %d%% 25%%", h->loss_percent);
    return n;
}

int netns_loss(struct netns_lab *lab, int host, int percent)
{
    if (!valid_host(lab, host) || percent < 0 || percent > 100)
        return -EINVAL;
    struct netns_host *h = &lab->host[host];
    h->loss_percent = percent;
    char cmd[256];
    if (lab->have_netem) {
        char spec[128];
        netem_spec(h, spec, sizeof(spec));
        netns_log(lab, "loss %d%% on host %d's link (netem, both ends)", percent, host);
        return netem_both_ends(lab, host, spec);
    }
    netns_log(lab, "loss %d%% on host %d's link (firewall, input and output)", percent, host);
    if (lab->firewall == NETNS_FW_NFT)
        snprintf(cmd, sizeof(cmd),
                 "nft add rule inet fault input iifname eth0 numgen random mod 100 '<' %d counter "
                 "drop && nft add rule inet fault output oifname eth0 numgen random mod 100 "
                 "'<' %d counter drop", percent, percent);
    else if (lab->firewall == NETNS_FW_IPTABLES)
        snprintf(cmd, sizeof(cmd),
                 "iptables -A INPUT -i eth0 -m statistic --mode random --probability %.2f "
                 "-j DROP && iptables -A OUTPUT -o eth0 -m statistic --mode random "
                 "--probability %.2f -j DROP", percent / 100.0, percent / 100.0);
    else
        return -EOPNOTSUPP;
    return must(lab, host, cmd);
}

long netns_dropped(struct netns_lab *lab, int host)
{
    char out[4096];
    if (!valid_host(lab, host))
        return -EINVAL;
    if (lab->have_netem) {
        if (netns_sh(lab, host, out, sizeof(out), "tc -s qdisc show dev eth0") != 0)
            return -EIO;
        const char *p = strstr(out, "dropped ");
        return p ? atol(p + 8) : 0;
    }
    if (lab->firewall != NETNS_FW_NFT)
        return -EOPNOTSUPP;
    if (netns_sh(lab, host, out, sizeof(out), "nft list table inet fault") != 0)
        return -EIO;
    long total = 0;
    for (const char *p = out; (p = strstr(p, "counter packets ")) != NULL; p += 16)
        total += atol(p + 16);
    return total;
}

int netns_delay(struct netns_lab *lab, int host, int delay_ms, int jitter_ms)
{
    if (!valid_host(lab, host) || delay_ms < 0)
        return -EINVAL;
    if (!lab->have_netem)
        return -EOPNOTSUPP;
    lab->host[host].delay_ms = delay_ms;
    char spec[128];
    int n = snprintf(spec, sizeof(spec), "delay %dms %dms distribution normal", delay_ms,
                     jitter_ms);
    if (lab->host[host].loss_percent)
        snprintf(spec + n, sizeof(spec) - (size_t)n, " loss %d%% 25%%",
                 lab->host[host].loss_percent);
    netns_log(lab, "delay %d ms +- %d on host %d's link (netem, both ends)", delay_ms, jitter_ms,
              host);
    return netem_both_ends(lab, host, spec);
}

int netns_slow_link(struct netns_lab *lab, int host, int kbit, int queue_ms)
{
    if (!valid_host(lab, host) || kbit <= 0 || queue_ms <= 0)
        return -EINVAL;
    if (!lab->have_tbf)
        return -EOPNOTSUPP;
    char qdisc[128];
    /* A burst of 32 kbit (4 KB) lets a heartbeat through an idle link at once; anything that
     * would wait longer than queue_ms behind the rate is dropped. */
    snprintf(qdisc, sizeof(qdisc), "tbf rate %dkbit burst 32kbit latency %dms", kbit, queue_ms);
    netns_log(lab, "slow link on host %d: %d kbit/s each way, drops past %d ms of queue (tbf, "
              "both ends)", host, kbit, queue_ms);
    lab->host[host].slow_kbit = kbit;
    return qdisc_both_ends(lab, host, qdisc);
}

/* Logs what a slow link did on host's side (tbf's counts of packets held back and dropped),
 * so a log shows the fault took effect. */
static void slow_link_report(struct netns_lab *lab, int host)
{
    char out[2048];
    if (netns_sh(lab, host, out, sizeof(out), "tc -s qdisc show dev eth0") != 0)
        return;
    const char *sent = strstr(out, "Sent "), *dropped = strstr(out, "dropped ");
    const char *over = strstr(out, "overlimits ");
    netns_log(lab, "slow link on host %d ends: sent %ld bytes, %ld packets dropped, %ld over "
              "the rate", host, sent ? atol(sent + 5) : -1, dropped ? atol(dropped + 8) : -1,
              over ? atol(over + 11) : -1);
}

int netns_heal(struct netns_lab *lab)
{
    netns_log(lab, "heal: every partition, loss, delay and slow link removed");
    int first = 0;
    for (int i = 1; i <= lab->n_hosts; i++) {
        int rc = firewall_reset(lab, i);
        if (lab->host[i].slow_kbit)
            slow_link_report(lab, i);
        if (lab->have_netem || lab->have_tbf) {
            netns_sh(lab, i, NULL, 0, "tc qdisc del dev eth0 root 2>/dev/null");
            netns_sh(lab, 0, NULL, 0, "tc qdisc del dev vh%d root 2>/dev/null", i);
        }
        lab->host[i].loss_percent = lab->host[i].delay_ms = lab->host[i].slow_kbit = 0;
        if (rc && !first)
            first = rc;
    }
    return first;
}
