/*
 * cli_probe: raw disk (O_DIRECT write and read) and loopback TCP bandwidth, the limits
 * `ringlog bench` prints its ratios against (see cli_probe.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/cli_probe.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One pass over the file: qd workers take block numbers from one counter, so qd requests are
 * in flight and the device sees one sequential stream. */
struct disk_pass {
    int fd;
    bool write;
    size_t block;
    size_t blocks;
    atomic_size_t next;
    atomic_int error; /* first -errno met by any worker */
};

struct disk_worker {
    struct disk_pass *pass;
    void *buf;
    pthread_t tid;
};

static void *disk_worker_main(void *arg)
{
    struct disk_worker *w = arg;
    struct disk_pass *p = w->pass;
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->blocks || atomic_load(&p->error))
            return NULL;
        off_t off = (off_t)(i * p->block);
        ssize_t n = p->write ? pwrite(p->fd, w->buf, p->block, off)
                             : pread(p->fd, w->buf, p->block, off);
        if (n != (ssize_t)p->block) {
            int e = n < 0 ? -errno : -EIO;
            int zero = 0;
            atomic_compare_exchange_strong(&p->error, &zero, e);
            return NULL;
        }
    }
}

/* Runs one pass with qd workers; returns seconds taken (> 0) or a negative errno. */
static double disk_pass_run(struct disk_pass *p, struct disk_worker *w, unsigned qd)
{
    atomic_store(&p->next, 0);
    atomic_store(&p->error, 0);
    double t0 = now_s();
    unsigned started = 0;
    for (; started < qd; started++) {
        w[started].pass = p;
        if (pthread_create(&w[started].tid, NULL, disk_worker_main, &w[started]))
            break;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(w[i].tid, NULL);
    if (started < qd)
        return -EAGAIN;
    if (p->write && atomic_load(&p->error) == 0 && fdatasync(p->fd))
        return -errno;
    double secs = now_s() - t0;
    return atomic_load(&p->error) ? atomic_load(&p->error) : (secs > 0 ? secs : 1e-9);
}

int probe_disk_run(const char *dir, size_t total, size_t block, unsigned qd,
                   struct probe_disk *out, char *err, size_t errlen)
{
    struct disk_worker w[PROBE_MAX_QD] = {0};
    char path[4096];
    int rc = 0;
    if (qd == 0 || qd > PROBE_MAX_QD || block == 0 || block % 4096 || total < block)
        return -EINVAL;
    total -= total % block;
    snprintf(path, sizeof(path), "%s/probe-disk.XXXXXX", dir);
    int fd = mkostemp(path, O_DIRECT | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot create an O_DIRECT file in %s: %s (the bench needs a file "
                 "system with O_DIRECT; choose another with --dir)", dir, strerror(-rc));
        return rc;
    }
    unlink(path);
    if (fallocate(fd, 0, 0, (off_t)total))
        rc = -errno;
    for (unsigned i = 0; rc == 0 && i < qd; i++) {
        if (posix_memalign(&w[i].buf, 4096, block))
            rc = -ENOMEM;
        else
            memset(w[i].buf, (int)(0x5A + i), block);
    }
    struct disk_pass p = {.fd = fd, .write = true, .block = block, .blocks = total / block};
    double wsecs = rc ? rc : disk_pass_run(&p, w, qd);
    p.write = false;
    double rsecs = wsecs > 0 ? disk_pass_run(&p, w, qd) : wsecs;
    if (wsecs < 0 || rsecs < 0) {
        rc = (int)(wsecs < 0 ? wsecs : rsecs);
        snprintf(err, errlen, "raw disk %s in %s failed: %s", wsecs < 0 ? "write" : "read", dir,
                 strerror(-rc));
    } else {
        out->write_mbps = (double)total / 1e6 / wsecs;
        out->read_mbps = (double)total / 1e6 / rsecs;
    }
    for (unsigned i = 0; i < qd; i++)
        free(w[i].buf);
    close(fd);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int probe_fsync_run(const char *dir, unsigned count, double *p50_ms, double *p99_ms, char *err,
                    size_t errlen)
{
    char path[4096];
    double *ms = calloc(count ? count : 1, sizeof(*ms));
    void *buf = NULL;
    int rc = 0;
    snprintf(path, sizeof(path), "%s/probe-fsync.XXXXXX", dir);
    int fd = mkostemp(path, O_DIRECT | O_CLOEXEC);
    if (fd < 0 || !ms || posix_memalign(&buf, 4096, 4096)) {
        rc = fd < 0 ? -errno : -ENOMEM;
        goto out;
    }
    unlink(path);
    memset(buf, 0x5A, 4096);
    if (fallocate(fd, 0, 0, (off_t)count * 4096)) {
        rc = -errno;
        goto out;
    }
    for (unsigned i = 0; i < count && rc == 0; i++) {
        double t0 = now_s();
        ssize_t n = pwrite(fd, buf, 4096, (off_t)i * 4096);
        if (n != 4096)
            rc = n < 0 ? -errno : -EIO;
        else if (fdatasync(fd))
            rc = -errno;
        ms[i] = (now_s() - t0) * 1e3;
    }
    if (rc == 0 && count) {
        qsort(ms, count, sizeof(*ms), cmp_double);
        *p50_ms = ms[count / 2];
        *p99_ms = ms[(count * 99) / 100 < count ? (count * 99) / 100 : count - 1];
    }
out:
    if (rc)
        snprintf(err, errlen, "fdatasync probe in %s failed: %s", dir, strerror(-rc));
    if (fd >= 0)
        close(fd);
    free(buf);
    free(ms);
    return rc;
}

/* The loaded probe's latencies: a shared histogram of PROBE_BUCKET_US buckets. */
#define PROBE_UNIT 4096u
#define PROBE_MAX_WRITE (1u << 20)
#define PROBE_BUCKET_US 20
#define PROBE_BUCKETS 250000u /* 5 s; slower units count in the last bucket */

struct loaded_stream {
    int fd;
    void *buf;
    double rate;     /* bytes per second */
    double t0, end;  /* monotonic seconds */
    atomic_uint *hist;
    uint64_t written; /* units */
    double finished;  /* when its last unit was durable (monotonic seconds) */
    int error;
    pthread_t tid;
};

static void sleep_until(double t)
{
    struct timespec ts = {.tv_sec = (time_t)t, .tv_nsec = (long)((t - (double)(time_t)t) * 1e9)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* One write + fdatasync of the k units due from unit `first`; counts each unit's latency. */
static int loaded_write(struct loaded_stream *s, uint64_t first, uint64_t k)
{
    uint64_t wrap_units = PROBE_LOADED_WRAP / PROBE_UNIT;
    off_t off = (off_t)((first % wrap_units) * PROBE_UNIT);
    ssize_t n = pwrite(s->fd, s->buf, (size_t)(k * PROBE_UNIT), off);
    if (n != (ssize_t)(k * PROBE_UNIT))
        return n < 0 ? -errno : -EIO;
    if (fdatasync(s->fd))
        return -errno;
    double done = now_s();
    for (uint64_t j = first; j < first + k; j++) {
        double due = s->t0 + (double)(j + 1) * PROBE_UNIT / s->rate;
        double us = done > due ? (done - due) * 1e6 : 0;
        size_t b = (size_t)(us / PROBE_BUCKET_US);
        atomic_fetch_add_explicit(&s->hist[b < PROBE_BUCKETS ? b : PROBE_BUCKETS - 1], 1,
                                  memory_order_relaxed);
    }
    return 0;
}

/* Writes every unit due before the run's end, however late the disk makes the last ones: a
 * unit left out would leave the percentiles, and a disk that falls behind would read fast. */
static void *loaded_stream_main(void *arg)
{
    struct loaded_stream *s = arg;
    uint64_t wrap_units = PROBE_LOADED_WRAP / PROBE_UNIT;
    uint64_t total = (uint64_t)((s->end - s->t0) * s->rate / PROBE_UNIT);
    sleep_until(s->t0); /* before it nothing is due (and now - t0 would be negative) */
    for (;;) {
        double now = now_s();
        if (s->written >= total) {
            s->finished = now;
            return NULL;
        }
        uint64_t due = (uint64_t)((now - s->t0) * s->rate / PROBE_UNIT);
        due = due < total ? due : total;
        if (due <= s->written) { /* nothing due: wait for the next unit */
            sleep_until(s->t0 + (double)(s->written + 1) * PROBE_UNIT / s->rate);
            continue;
        }
        uint64_t k = due - s->written;
        uint64_t room = wrap_units - s->written % wrap_units; /* up to the wrap */
        k = k < PROBE_MAX_WRITE / PROBE_UNIT ? k : PROBE_MAX_WRITE / PROBE_UNIT;
        k = k < room ? k : room;
        s->error = loaded_write(s, s->written, k);
        if (s->error)
            return NULL;
        s->written += k;
    }
}

/* A stream's file (preallocated, unlinked) and buffer. Returns 0 or a negative errno. */
static int loaded_open(const char *dir, struct loaded_stream *s)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/probe-loaded.XXXXXX", dir);
    s->fd = mkostemp(path, O_DIRECT | O_CLOEXEC);
    if (s->fd < 0)
        return -errno;
    unlink(path);
    if (fallocate(s->fd, 0, 0, PROBE_LOADED_WRAP))
        return -errno;
    if (posix_memalign(&s->buf, PROBE_UNIT, PROBE_MAX_WRITE))
        return -ENOMEM;
    memset(s->buf, 0x5A, PROBE_MAX_WRITE);
    return 0;
}

/* The bucket's upper bound in ms at quantile q of the histogram's n units. */
static double loaded_quantile(const atomic_uint *hist, uint64_t n, double q)
{
    uint64_t want = (uint64_t)((double)n * q), seen = 0;
    for (size_t b = 0; b < PROBE_BUCKETS; b++) {
        seen += atomic_load(&hist[b]);
        if (seen > want)
            return (double)(b + 1) * PROBE_BUCKET_US / 1e3;
    }
    return (double)PROBE_BUCKETS * PROBE_BUCKET_US / 1e3;
}

int probe_fsync_loaded_run(const char *dir, unsigned streams, double mbps, double seconds,
                           struct probe_loaded *out, char *err, size_t errlen)
{
    if (streams == 0 || streams > 256 || !(mbps > 0) || !(seconds > 0)) {
        snprintf(err, errlen, "loaded fdatasync probe: bad arguments (%u streams, %.1f MB/s, "
                 "%.1f s)", streams, mbps, seconds);
        return -EINVAL;
    }
    struct loaded_stream *s = calloc(streams, sizeof(*s));
    atomic_uint *hist = calloc(PROBE_BUCKETS, sizeof(*hist));
    int rc = s && hist ? 0 : -ENOMEM;
    unsigned opened = 0, started = 0;
    for (; rc == 0 && opened < streams; opened++)
        rc = loaded_open(dir, &s[opened]);
    double t0 = now_s() + 0.01;
    for (unsigned i = 0; rc == 0 && i < streams; i++) {
        s[i] = (struct loaded_stream){.fd = s[i].fd, .buf = s[i].buf, .rate = mbps * 1e6,
                                      .t0 = t0, .end = t0 + seconds, .hist = hist};
        if (pthread_create(&s[i].tid, NULL, loaded_stream_main, &s[i]))
            rc = -EAGAIN;
        else
            started++;
    }
    uint64_t units = 0;
    double last = t0;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(s[i].tid, NULL);
        rc = rc ? rc : s[i].error;
        units += s[i].written;
        last = s[i].finished > last ? s[i].finished : last;
    }
    if (rc == 0) {
        out->p50_ms = loaded_quantile(hist, units, 0.50);
        out->p99_ms = loaded_quantile(hist, units, 0.99);
        out->bytes = units * PROBE_UNIT;
        out->seconds = last - t0;
        out->mbps = out->seconds > 0 ? (double)out->bytes / 1e6 / out->seconds : 0;
    } else {
        snprintf(err, errlen, "loaded fdatasync probe in %s failed: %s", dir, strerror(-rc));
    }
    for (unsigned i = 0; s && i < opened; i++) {
        if (s[i].fd >= 0)
            close(s[i].fd);
        free(s[i].buf);
    }
    free(s);
    free(hist);
    return rc;
}

struct loop_sender {
    int fd;
    size_t total, chunk;
    void *buf;
    int error;
};

static void *loop_sender_main(void *arg)
{
    struct loop_sender *s = arg;
    size_t sent = 0;
    while (sent < s->total) {
        size_t want = s->total - sent < s->chunk ? s->total - sent : s->chunk;
        ssize_t n = send(s->fd, s->buf, want, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            s->error = n < 0 ? -errno : -EPIPE;
            break;
        }
        sent += (size_t)n;
    }
    shutdown(s->fd, SHUT_WR);
    return NULL;
}

/* Opens a connected pair of loopback TCP sockets (listener on an ephemeral port). */
static int loop_pair(int *a, int *b)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int rc = 0, l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    *a = *b = -1;
    if (l < 0)
        return -errno;
    if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&sa, &len)) {
        rc = -errno;
        goto out;
    }
    *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*a < 0 || connect(*a, (struct sockaddr *)&sa, sizeof(sa))) {
        rc = -errno;
        goto out;
    }
    *b = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (*b < 0)
        rc = -errno;
out:
    close(l);
    return rc;
}

int probe_loopback_run(size_t total, size_t chunk, double *mbps, char *err, size_t errlen)
{
    struct loop_sender s = {.total = total, .chunk = chunk};
    int rx = -1, rc = loop_pair(&s.fd, &rx);
    void *rbuf = malloc(chunk);
    s.buf = malloc(chunk);
    if (!rc && (!rbuf || !s.buf))
        rc = -ENOMEM;
    pthread_t tid;
    if (!rc) {
        memset(s.buf, 0x5A, chunk);
        double t0 = now_s();
        if (pthread_create(&tid, NULL, loop_sender_main, &s)) {
            rc = -EAGAIN;
        } else {
            size_t got = 0;
            while (got < total) {
                ssize_t n = recv(rx, rbuf, chunk, 0);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0) {
                    rc = n < 0 ? -errno : -EPIPE;
                    break;
                }
                got += (size_t)n;
            }
            double secs = now_s() - t0;
            if (rc)
                shutdown(rx, SHUT_RDWR); /* so a sender blocked in send() gets an error */
            pthread_join(tid, NULL);
            rc = rc ? rc : s.error;
            *mbps = (double)total / 1e6 / (secs > 0 ? secs : 1e-9);
        }
    }
    if (rc)
        snprintf(err, errlen, "loopback TCP probe failed: %s", strerror(-rc));
    if (s.fd >= 0)
        close(s.fd);
    if (rx >= 0)
        close(rx);
    free(rbuf);
    free(s.buf);
    return rc;
}
