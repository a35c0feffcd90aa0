/*
 * tl_fixture: see tl_fixture.h.
 */
#include "tests/lib/tl_fixture.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"

void tl_fixture_start(struct tl_broker *b, struct tl_conn *conn, const char *const *args)
{
    int rc = tl_broker_start(b, args, 20000);
    cr_assert_eq(rc, 0, "ringlogd did not start: %s", rl_strerror(rc));
    cr_assert_eq(tl_connect(conn, b->host, b->port, 5000), 0, "cannot connect to ringlogd");
}

int tl_fixture_finish(struct tl_broker *b, struct tl_conn *conn)
{
    if (!b->dir[0])
        return 0;
    tl_close(conn);
    int st = tl_broker_finish(b, 30000);
    cr_expect_eq(st, 0, "broker exit status %d", st);
    return st;
}

int tl_raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect to port %u: %s",
                 port, strerror(errno));
    return fd;
}

bool tl_expect_closed(int fd, uint32_t timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[256];
    for (uint64_t until = tl_now_ms() + timeout_ms; tl_now_ms() <= until;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return true;
    }
    return false;
}

long long tl_metric(const struct tl_broker *b, const char *name)
{
    static char body[1 << 20];
    int st = tl_http_get(b->host, b->http_port, "/metrics", body, sizeof(body), 5000);
    cr_assert_eq(st, 200, "GET /metrics: %d", st);
    char key[200];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *m = strstr(body, key);
    cr_assert_not_null(m, "no metric %s", name);
    return atoll(m + strlen(key));
}

void tl_pace(uint32_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
