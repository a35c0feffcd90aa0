/*
 * nemesis: see nemesis.h.
 */
#include "tests/fault/nemesis.h"

#include <errno.h>
#include <signal.h>

static const char *const kind_names[NEM_KINDS] = {
    "kill", "pause", "partition-halves", "isolate", "one-way", "loss", "delay", "slow-disk",
    "slow-link",
};

const char *nem_kind_name(enum nem_kind k)
{
    return k < NEM_KINDS ? kind_names[k] : "?";
}

uint32_t nem_rand(struct nem *n, uint32_t bound)
{
    uint64_t x = n->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    n->rng = x;
    return bound ? (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 33) % bound : 0;
}

void nem_init(struct nem *n, struct cl_cluster *c, uint64_t seed, unsigned kinds)
{
    *n = (struct nem){.c = c, .rng = seed ? seed : 0x9E3779B97F4A7C15ull, .kinds = kinds};
    struct netns_lab *lab = c->lab;
    if (lab->firewall == NETNS_FW_NONE)
        n->kinds &= ~(1u << NEM_PARTITION_HALVES | 1u << NEM_ISOLATE | 1u << NEM_ONE_WAY);
    if (lab->firewall != NETNS_FW_NFT && !lab->have_netem)
        n->kinds &= ~(1u << NEM_LOSS);
    if (!lab->have_netem)
        n->kinds &= ~(1u << NEM_DELAY);
    if (!lab->have_tbf)
        n->kinds &= ~(1u << NEM_SLOW_LINK);
    if (!c->slow_disk_hook)
        n->kinds &= ~(1u << NEM_SLOW_DISK);
    if (lab->n_hosts < 2)
        n->kinds &= ~(1u << NEM_PARTITION_HALVES | 1u << NEM_ISOLATE | 1u << NEM_ONE_WAY);
}

static int pick_broker(struct nem *n, bool *targeted)
{
    int b = n->pick ? n->pick(n->pick_ctx) : 0;
    *targeted = b >= 1 && b <= n->c->n;
    return *targeted ? b : 1 + (int)nem_rand(n, (uint32_t)n->c->n);
}

static int partition_halves(struct nem *n)
{
    struct netns_lab *lab = n->c->lab;
    int a[NETNS_MAX_HOSTS], b[NETNS_MAX_HOSTS], na = 0, nb = 0;
    uint32_t mask;
    do /* every host on a random side, both sides non-empty */
        mask = nem_rand(n, 1u << lab->n_hosts);
    while (mask == 0 || mask == (1u << lab->n_hosts) - 1);
    for (int h = 1; h <= lab->n_hosts; h++) {
        if (mask >> (h - 1) & 1)
            a[na++] = h;
        else
            b[nb++] = h;
    }
    return netns_partition(lab, a, na, b, nb);
}

/* The next kind from a shuffled deck of every available kind, dealt again when empty: any
 * run of as many steps as there are kinds meets each kind once (a short suite covers them
 * all), and long runs stay balanced. */
static enum nem_kind choose(struct nem *n)
{
    if (n->deck_n == 0) {
        for (int k = 0; k < NEM_KINDS; k++)
            if (n->kinds >> k & 1)
                n->deck[n->deck_n++] = (uint8_t)k;
        for (int i = n->deck_n - 1; i > 0; i--) {
            int j = (int)nem_rand(n, (uint32_t)i + 1);
            uint8_t t = n->deck[i];
            n->deck[i] = n->deck[j];
            n->deck[j] = t;
        }
    }
    return (enum nem_kind)n->deck[--n->deck_n];
}

int nem_begin(struct nem *n)
{
    if (!n->kinds || n->active)
        return -EINVAL;
    struct netns_lab *lab = n->c->lab;
    enum nem_kind k = choose(n);
    bool targeted = false;
    int rc = 0, hosts = lab->n_hosts;
    n->hold_ms = 500 + nem_rand(n, 3000);
    switch (k) {
    case NEM_KILL:
        n->target = pick_broker(n, &targeted);
        if (n->before_kill)
            n->before_kill(n->pick_ctx, n->target, targeted);
        cl_kill(n->c, n->target);
        n->targeted_kills += targeted;
        break;
    case NEM_PAUSE:
        n->target = pick_broker(n, &targeted);
        n->hold_ms = NEM_PAUSE_MIN_MS + nem_rand(n, 3000); /* past an election timeout */
        rc = cl_pause(n->c, n->target);
        break;
    case NEM_PARTITION_HALVES:
        rc = partition_halves(n);
        break;
    case NEM_ISOLATE:
        n->target = 1 + (int)nem_rand(n, (uint32_t)hosts);
        rc = netns_isolate(lab, n->target);
        break;
    case NEM_ONE_WAY: {
        int from = 1 + (int)nem_rand(n, (uint32_t)hosts);
        int to = 1 + (int)nem_rand(n, (uint32_t)hosts - 1);
        to += to >= from; /* any host but `from` */
        n->target = to;
        rc = netns_drop_from(lab, to, from);
        break;
    }
    case NEM_LOSS:
        n->target = 1 + (int)nem_rand(n, (uint32_t)hosts);
        rc = netns_loss(lab, n->target, 10 + (int)nem_rand(n, 21));
        break;
    case NEM_DELAY:
        n->target = 1 + (int)nem_rand(n, (uint32_t)hosts);
        rc = netns_delay(lab, n->target, 20 + (int)nem_rand(n, 80), 10);
        break;
    case NEM_SLOW_LINK: /* 0.5-4 Mbit/s: replication under load sends far more */
        n->target = 1 + (int)nem_rand(n, (uint32_t)hosts);
        rc = netns_slow_link(lab, n->target, 500 + (int)nem_rand(n, 3500),
                             50 + (int)nem_rand(n, 350));
        break;
    case NEM_SLOW_DISK:
        n->target = pick_broker(n, &targeted);
        rc = cl_slow_disk(n->c, n->target, 5 + (int)nem_rand(n, 50));
        break;
    default:
        return -EINVAL;
    }
    n->kind = k;
    n->active = true;
    n->count[k]++;
    return rc ? rc : (int)k;
}

int nem_end(struct nem *n, uint32_t timeout_ms)
{
    if (!n->active)
        return 0;
    n->active = false;
    switch (n->kind) {
    case NEM_KILL:
        return cl_restart(n->c, n->target, timeout_ms);
    case NEM_PAUSE:
        return cl_resume(n->c, n->target);
    case NEM_SLOW_DISK:
        return cl_slow_disk(n->c, n->target, 0);
    default:
        return netns_heal(n->c->lab);
    }
}

int nem_heal_all(struct nem *n, uint32_t timeout_ms)
{
    int first = nem_end(n, timeout_ms);
    for (int i = 1; i <= n->c->n; i++) {
        int rc = 0;
        if (n->c->b[i].paused)
            rc = cl_resume(n->c, i);
        else if (!cl_alive(n->c, i))
            rc = cl_restart(n->c, i, timeout_ms);
        if (n->c->slow_disk_hook)
            cl_slow_disk(n->c, i, 0);
        if (rc && !first)
            first = rc;
    }
    int rc = netns_heal(n->c->lab);
    return first ? first : rc;
}
