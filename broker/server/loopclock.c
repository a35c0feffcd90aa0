/*
 * loopclock: see loopclock.h.
 */
#include "broker/server/loopclock.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void loopclock_open(struct loopclock *lc)
{
    *lc = (struct loopclock){.fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)};
}

void loopclock_close(struct loopclock *lc)
{
    if (lc->fd >= 0)
        close(lc->fd);
    lc->fd = -1;
}

/* Reads the thread's run delay: "<ns on cpu> <ns waiting on a runqueue> <timeslices>". */
static void loopclock_sample(struct loopclock *lc, uint64_t now_ns)
{
    char buf[96];
    ssize_t n = lc->fd >= 0 ? pread(lc->fd, buf, sizeof(buf) - 1, 0) : -1;
    unsigned long long on_cpu, delay;
    lc->sample_ns = now_ns;
    if (n <= 0)
        return;
    buf[n] = 0;
    if (sscanf(buf, "%llu %llu", &on_cpu, &delay) == 2)
        lc->run_delay_ns = delay;
}

void loopclock_turn_start(struct loopclock *lc, uint64_t now_ns)
{
    if (now_ns - lc->sample_ns >= LOOPCLOCK_SAMPLE_NS)
        loopclock_sample(lc, now_ns);
    lc->turn_start_ns = now_ns;
    lc->turn_delay_ns = lc->run_delay_ns;
}

uint64_t loopclock_turn_end(struct loopclock *lc, uint64_t now_ns)
{
    uint64_t wall = now_ns - lc->turn_start_ns;
    if (wall <= LOOPCLOCK_EXACT_NS || lc->fd < 0)
        return wall;
    loopclock_sample(lc, now_ns);
    uint64_t waited = lc->run_delay_ns - lc->turn_delay_ns;
    if (waited > wall)
        waited = wall;
    lc->preempted_ns += waited;
    return wall - waited;
}
