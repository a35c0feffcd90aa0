/*
 * loopclock: see loopclock.h.
 */
#include "broker/server/loopclock.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
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

/* Reads "<ns on cpu> <ns waiting on a runqueue> <timeslices>" and the voluntary switches. */
static void loopclock_sample(struct loopclock *lc, uint64_t now_ns)
{
    char buf[96];
    unsigned long long on_cpu, delay;
    struct rusage ru;
    lc->last.at_ns = now_ns;
    ssize_t n = lc->fd >= 0 ? pread(lc->fd, buf, sizeof(buf) - 1, 0) : -1;
    if (n <= 0)
        return;
    buf[n] = 0;
    if (sscanf(buf, "%llu %llu", &on_cpu, &delay) != 2)
        return;
    lc->last.on_cpu_ns = on_cpu;
    lc->last.run_delay_ns = delay;
    if (getrusage(RUSAGE_THREAD, &ru) == 0)
        lc->last.voluntary = (uint64_t)ru.ru_nvcsw;
}

void loopclock_turn_start(struct loopclock *lc, uint64_t now_ns, bool exact)
{
    if (exact || now_ns - lc->last.at_ns >= LOOPCLOCK_SAMPLE_NS)
        loopclock_sample(lc, now_ns);
    lc->turn_start_ns = now_ns;
    lc->start = lc->last;
}

uint64_t loopclock_turn_end(struct loopclock *lc, uint64_t now_ns)
{
    uint64_t wall = now_ns - lc->turn_start_ns;
    if (wall <= LOOPCLOCK_EXACT_NS || lc->fd < 0)
        return wall;
    loopclock_sample(lc, now_ns);
    uint64_t cpu = lc->last.on_cpu_ns - lc->start.on_cpu_ns;
    uint64_t waited = lc->last.run_delay_ns - lc->start.run_delay_ns;
    uint64_t turn;
    if (lc->last.voluntary == lc->start.voluntary)
        turn = cpu < wall ? cpu : wall; /* never slept: all it did was compute */
    else
        turn = waited < wall ? wall - waited : 0;
    lc->preempted_ns += wall - turn;
    return turn;
}
