/*
 * netns: the fault lab's network. A test program first moves itself into a fresh network
 * namespace that has nothing but a loopback (netns_sandbox_enter: no route out, so no packet
 * can leave the machine), then builds hosts inside it: each host is a network namespace of its
 * own with one interface, eth0 = 10.77.0.<i>/24, joined by a veth pair to a bridge in the
 * sandbox, whose own address 10.77.0.254 is where the test itself (the control node, as in
 * Jepsen) talks from. Brokers and clients run inside hosts; faults are rules and queueing
 * disciplines inside the hosts, so the control node's view is never cut off.
 *
 * Where it sits: tests/fault programs -> netns (this) and cluster (brokers in hosts) ->
 * ip, tc, nft or iptables, run inside the host's namespace with setns(2).
 *
 * Faults (each one logged with a timestamp through netns_log, so a failure can be read):
 *   - symmetric partition between two sets of hosts: each side drops what the other sends;
 *   - one-way partition: the receiver drops on input what one sender sends (established TCP
 *     connections then lose one direction only, new ones fail both ways);
 *   - packet loss on a host's link, both directions: tc netem on both veth ends when the kernel
 *     has sch_netem, else a firewall rule dropping a random share (nft numgen or iptables
 *     statistic) on the host's input and output;
 *   - delay on a host's link: tc netem on both veth ends; -EOPNOTSUPP without sch_netem (the
 *     caller reports the case skipped, never passed);
 *   - a slow link: tc tbf on both veth ends, a rate far below what replication sends, and
 *     packets that would queue longer than a bound dropped: what crosses the link is delayed
 *     by its queue (up to the bound) and the rest lost, as on a congested or degraded link.
 *     Works without sch_netem (tbf is a separate qdisc);
 *   - heal: every rule and qdisc removed.
 * Hosts are held by a small process each (it owns the namespace and dies with the test), so
 * nothing is named in /run/netns and parallel test runs cannot collide.
 *
 * Every wait polls with a deadline; commands run with a timeout. Blocking; the lab is used from
 * one thread, except netns_enter, which any thread may call for itself.
 */
#ifndef RL_TESTS_FAULT_NETNS_H
#define RL_TESTS_FAULT_NETNS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define NETNS_MAX_HOSTS 8
#define NETNS_SUBNET "10.77.0"      /* host i is 10.77.0.i */
#define NETNS_CONTROL_ADDR "10.77.0.254"
#define NETNS_CMD_TIMEOUT_MS 10000  /* bound on one ip/tc/nft command */

enum netns_firewall { NETNS_FW_NONE = 0, NETNS_FW_NFT, NETNS_FW_IPTABLES };

struct netns_host {
    pid_t holder;   /* the process that holds the namespace */
    int holder_fd;  /* write end of its pipe: closing it lets the holder exit */
    int ns_fd;      /* /proc/<holder>/ns/net */
    char addr[16];  /* "10.77.0.<i>" */
    int loss_percent, delay_ms;
    int slow_kbit;  /* a slow link's rate, 0: none */
};

struct netns_lab {
    int n_hosts;                               /* hosts 1..n_hosts */
    struct netns_host host[NETNS_MAX_HOSTS + 1];
    int outer_fd;                              /* the sandbox namespace itself (host 0) */
    bool have_netem;                           /* tc qdisc netem works here */
    bool have_tbf;                             /* tc qdisc tbf works here (slow links) */
    enum netns_firewall firewall;              /* what partitions are made with */
    uint64_t t0_ms;                            /* when the lab was made (log timestamps) */
    FILE *log;                                 /* the fault log (besides stderr), may be NULL */
};

/* Moves the calling process into a fresh network namespace with only a loopback, and checks
 * that it has no route out. Call it first in main(), before any thread exists. Returns 0, or a
 * negative code with the reason in why (no privilege, no namespaces): report "skipped". */
int netns_sandbox_enter(char *why, size_t why_cap);

/* Builds n_hosts hosts (1..NETNS_MAX_HOSTS) on a bridge and probes what faults this kernel
 * supports (netem, nftables or iptables). log_path (may be NULL) also receives the fault log.
 * Returns 0, or a negative code with the reason in why. */
int netns_lab_create(struct netns_lab *lab, int n_hosts, const char *log_path, char *why,
                     size_t why_cap);

/* Removes every host (its namespace goes when its last process goes). */
void netns_lab_destroy(struct netns_lab *lab);

/* The calling thread joins host `host`'s namespace (0: the sandbox itself, the control node).
 * Sockets it (and threads it creates afterwards) opens live there. Returns 0 or -errno. */
int netns_enter(const struct netns_lab *lab, int host);

/* Starts argv (argv[0] a path) inside host `host`, stdout and stderr appended to log_path,
 * killed (SIGKILL) if the test process dies. Returns the pid (> 0) or -errno. */
pid_t netns_spawn(const struct netns_lab *lab, int host, const char *const *argv,
                  const char *log_path);

/* Runs `sh -c <cmd>` inside host `host` and waits up to NETNS_CMD_TIMEOUT_MS. Its output
 * (stdout and stderr, truncated) goes to out when not NULL. Returns its exit status (0..255),
 * or -ETIMEDOUT (killed), or -errno. */
int netns_sh(const struct netns_lab *lab, int host, char *out, size_t out_cap,
             const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Appends "[fault +S.mmm] message" to stderr and the lab's log. */
void netns_log(const struct netns_lab *lab, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Seconds since the lab was made, for messages. */
double netns_elapsed_s(const struct netns_lab *lab);

/* --- faults ----------------------------------------------------------------------------------- */

/* Hosts in a (na of them) and hosts in b stop hearing each other, both ways. Returns 0 or a
 * negative code (no firewall: -EOPNOTSUPP). */
int netns_partition(struct netns_lab *lab, const int *a, int na, const int *b, int nb);

/* `receiver` drops on input everything `sender` sends (a one-way partition). */
int netns_drop_from(struct netns_lab *lab, int receiver, int sender);

/* `host` stops hearing every other host, and they it (the control node still reaches it). */
int netns_isolate(struct netns_lab *lab, int host);

/* Drops `percent` of the packets of host's link in each direction (netem on both veth ends, or
 * the firewall without netem). Returns 0 or a negative code. */
int netns_loss(struct netns_lab *lab, int host, int percent);

/* Packets host's loss fault has dropped so far (netem's count on its eth0, or the nftables
 * counters), to show a loss fault took effect; -EOPNOTSUPP with iptables. */
long netns_dropped(struct netns_lab *lab, int host);

/* Delays host's link by delay_ms (+- jitter_ms, normal) in each direction: netem on both veth
 * ends. Returns -EOPNOTSUPP when the kernel has no sch_netem. */
int netns_delay(struct netns_lab *lab, int host, int delay_ms, int jitter_ms);

/* Slows host's link to kbit kbit/s in each direction, dropping what would queue longer than
 * queue_ms (tbf on both veth ends). Returns -EOPNOTSUPP when the kernel has no sch_tbf. */
int netns_slow_link(struct netns_lab *lab, int host, int kbit, int queue_ms);

/* Removes every partition rule, loss and delay. Returns 0 or the first failure's code. */
int netns_heal(struct netns_lab *lab);

/* What this lab can do, one line ("netem: no (sch_netem missing); firewall: nftables"). */
const char *netns_capabilities(const struct netns_lab *lab);

#endif
