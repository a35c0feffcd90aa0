/*
 * Functional tests of `ringlog bench` (client/cli_bench*.c): short open-loop runs against the
 * real ringlogd the bench starts itself, checking what the bench promises rather than how fast
 * anything is (no check here depends on timing):
 *  - a 2 s run at 2 MB/s with --report sends exactly rate x seconds records (the open-loop
 *    schedule), the consumer reads every one back, and the report holds the CSVs with their
 *    columns, per-second rows whose percentiles are ordered, a monotone latency distribution,
 *    index.html, and (when gnuplot is installed) the PNG and SVG plots;
 *  - json records with zstd carry their send stamps end to end;
 *  - bad options fail with exit status 2 and a message naming the option.
 * Prints "N passed, N failed[, N skipped]".
 */
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/tl_broker.h"
#include "tests/lib/tl_cli.h"

#define CHECK TL_CHECK
#define TS_COLUMNS 19

static char g_cli[PATH_MAX], g_ringlogd[PATH_MAX], g_tmp[PATH_MAX];
static int g_skipped;

static const char ts_header[] =
    "t_s,phase,target_mb_s,produce_mb_s,consume_mb_s,"
    "ack_p50_ms,ack_p99_ms,ack_p999_ms,ack_max_ms,e2e_p50_ms,e2e_p99_ms,e2e_p999_ms,e2e_max_ms,"
    "broker_cpu,client_cpu,segment_rolls,retention_deletes,acked_records,consumed_records";

/* Reads a whole file into a NUL-terminated buffer (NULL when it cannot). */
static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

/* Splits a CSV line into fields (empty fields kept); returns the count. */
static int csv_split(char *line, char **fields, int max)
{
    int n = 0;
    for (char *p = line; n < max;) {
        fields[n++] = p;
        char *comma = strchr(p, ',');
        if (!comma)
            break;
        *comma = 0;
        p = comma + 1;
    }
    return n;
}

static double num(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    return end == s || *end ? NAN : v;
}

/* p50 <= p99 <= p99.9 <= max, all positive, or all four empty. */
static int check_pcts(char **f, const char *what, int row)
{
    if (!f[0][0]) {
        for (int i = 1; i < 4; i++)
            CHECK(!f[i][0], "row %d: %s percentiles partly empty", row, what);
        return 0;
    }
    double prev = 0;
    for (int i = 0; i < 4; i++) {
        double v = num(f[i]);
        CHECK(!isnan(v) && v >= prev, "row %d: %s percentile %d is \"%s\" after %.3f", row,
              what, i, f[i], prev);
        prev = v;
    }
    return 0;
}

/* The time series of a --rate run: columns, ordered percentiles, and record counts. */
static int check_timeseries(const char *dir, unsigned long long *acked,
                            unsigned long long *consumed)
{
    char *csv = slurp(dir, "timeseries.csv", NULL);
    CHECK(csv, "no timeseries.csv in %s", dir);
    char *save, *line = strtok_r(csv, "\n", &save);
    CHECK(line && !strcmp(line, ts_header), "timeseries header is \"%s\"", line ? line : "");
    int rows = 0;
    *acked = *consumed = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *f[TS_COLUMNS + 1];
        int n = csv_split(line, f, TS_COLUMNS + 1);
        CHECK(n == TS_COLUMNS, "row %d has %d columns", rows, n);
        CHECK(!strcmp(f[1], "rate"), "row %d is of phase \"%s\"", rows, f[1]);
        CHECK(num(f[2]) == 2.0, "row %d: target %s MB/s, not 2", rows, f[2]);
        if (check_pcts(f + 5, "ack", rows) || check_pcts(f + 9, "e2e", rows))
            return -1;
        *acked += (unsigned long long)num(f[17]);
        *consumed += (unsigned long long)num(f[18]);
        rows++;
    }
    free(csv);
    CHECK(rows >= 2, "only %d per-second rows for a 2 s run", rows);
    return 0;
}

/* cdf.csv: percentiles rising from 0, latencies never falling. */
static int check_cdf(const char *dir)
{
    char *csv = slurp(dir, "cdf.csv", NULL);
    CHECK(csv, "no cdf.csv");
    char *save, *line = strtok_r(csv, "\n", &save);
    CHECK(line && !strcmp(line, "percentile,ack_ms,e2e_ms"), "cdf header \"%s\"", line);
    double pp = -1, pa = 0, pe = 0;
    int rows = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *f[4];
        CHECK(csv_split(line, f, 4) == 3, "cdf row %d: %s", rows, line);
        double p = num(f[0]), a = num(f[1]), e = num(f[2]);
        CHECK(p > pp && a >= pa && e >= pe, "cdf row %d falls: %s", rows, line);
        pp = p, pa = a, pe = e;
        rows++;
    }
    free(csv);
    CHECK(rows >= 20, "cdf has %d rows", rows);
    return 0;
}

/* The plots, when gnuplot is there to draw them. */
static int check_plots(const char *dir, const char *err)
{
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        CHECK(strstr(err, "gnuplot is not installed"), "no gnuplot, and no word of it: %s",
              err);
        printf("  [SKIP] plots: gnuplot is not installed (make bench-report installs it)\n");
        g_skipped++;
        return 0;
    }
    static const char *const names[] = {"throughput", "latency", "cdf", "cpu"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char png[64], svg[64];
        snprintf(png, sizeof(png), "%s.png", names[i]);
        snprintf(svg, sizeof(svg), "%s.svg", names[i]);
        size_t len = 0;
        char *p = slurp(dir, png, &len), *s = slurp(dir, svg, NULL);
        CHECK(p && len > 1000 && !memcmp(p, "\x89PNG", 4), "%s missing or not a PNG", png);
        CHECK(s && strstr(s, "<svg"), "%s missing or not SVG", svg);
        free(p);
        free(s);
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* A 2 s open-loop run at 2 MB/s with a report. */
static int t_rate_report(void)
{
    char report[PATH_MAX + 16];
    snprintf(report, sizeof(report), "%s/report", g_tmp);
    struct tl_cli_run r;
    tl_cli_run(&r, g_cli, "127.0.0.1:1", NULL, "bench", "--rate", "2", "--seconds", "2",
               "--partitions", "2", "--disk-mb", "16", "--loopback-mb", "32", "--dir", g_tmp,
               "--ringlogd", g_ringlogd, "--report", report, NULL);
    CHECK(r.status == 0, "exit %d: %s%s", r.status, r.out, r.err);
    CHECK(strstr(r.out, "limits: disk write") && strstr(r.out, "loopback"), "%s", r.out);
    CHECK(strstr(r.out, "bench: open loop at 2.0 MB/s for 2 s: produce"), "%s", r.out);
    unsigned long long acked, consumed;
    if (check_timeseries(report, &acked, &consumed) || check_cdf(report) ||
        check_plots(report, r.err))
        return -1;
    /* Record i is due at i / rate: 2 s at 2 MB/s of 1 KiB records is 3907 records due. */
    CHECK(acked == 3907 && consumed == acked, "acked %llu, consumed %llu, want 3907 each", acked,
          consumed);
    static const char *const files[] = {"sweep.csv", "codecs.csv", "summary.txt", "plots.gp"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *s = slurp(report, files[i], NULL);
        CHECK(s, "no %s in the report", files[i]);
        free(s);
    }
    char *html = slurp(report, "index.html", NULL);
    CHECK(html && strstr(html, "ringlog bench report") && strstr(html, "timeseries.csv") &&
          strstr(html, "loopback TCP"), "index.html incomplete");
    free(html);
    tl_cli_run_free(&r);
    nftw(report, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* json events compressed with zstd: stamps survive, every record comes back. */
static int t_json_zstd(void)
{
    struct tl_cli_run r;
    tl_cli_run(&r, g_cli, "127.0.0.1:1", NULL, "bench", "--rate-records", "1000", "--seconds",
               "1", "--payload", "json", "--compression", "zstd", "--record-size", "600",
               "--partitions", "1", "--disk-mb", "16", "--loopback-mb", "32", "--dir", g_tmp,
               "--ringlogd", g_ringlogd, NULL);
    CHECK(r.status == 0, "exit %d: %s%s", r.status, r.out, r.err);
    CHECK(strstr(r.out, "rate (open loop at 0.6 MB/s)") && strstr(r.out, "end-to-end p50"),
          "%s", r.out);
    tl_cli_run_free(&r);
    return 0;
}

/* Bad options: exit 2, naming the option; nothing is started. */
static int t_bad_options(void)
{
    static const char *const cases[][4] = {
        {"--payload", "xml", "--payload", NULL},
        {"--rate", "0", "--rate", NULL},
        {"--compression", "lz4", "--compression", NULL},
        {"--steps", "99", "--steps", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tl_cli_run r;
        tl_cli_run(&r, g_cli, "127.0.0.1:1", NULL, "bench", cases[i][0], cases[i][1], NULL);
        CHECK(r.status == 2 && strstr(r.err, cases[i][2]), "%s %s: exit %d: %s", cases[i][0],
              cases[i][1], r.status, r.err);
        tl_cli_run_free(&r);
    }
    struct tl_cli_run r;
    tl_cli_run(&r, g_cli, "127.0.0.1:1", NULL, "bench", "--rate", "5", "--sweep", NULL);
    CHECK(r.status == 2 && strstr(r.err, "choose one"), "rate and sweep: %d %s", r.status,
          r.err);
    tl_cli_run_free(&r);
    tl_cli_run(&r, g_cli, "127.0.0.1:1", NULL, "bench", "--payload", "json", "--record-size",
               "32", NULL);
    CHECK(r.status == 2 && strstr(r.err, "at least 64"), "tiny json: %d %s", r.status, r.err);
    tl_cli_run_free(&r);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    static const struct {
        const char *name;
        int (*fn)(void);
    } tests[] = {
        {"rate_report", t_rate_report},
        {"json_zstd", t_json_zstd},
        {"bad_options", t_bad_options},
    };
    snprintf(g_ringlogd, sizeof(g_ringlogd), "%s", tl_ringlogd_path());
    snprintf(g_tmp, sizeof(g_tmp), "/tmp/rl-test-bench.XXXXXX");
    if (tl_cli_path(g_cli, sizeof(g_cli)) != 0 || access(g_cli, X_OK) != 0 || !mkdtemp(g_tmp)) {
        fprintf(stderr, "cannot run %s or create %s\n", g_cli, g_tmp);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int rc = tests[i].fn();
        printf("%s %s\n", rc == 0 ? "PASS" : "FAIL", tests[i].name);
        fflush(stdout);
        rc == 0 ? passed++ : failed++;
    }
    nftw(g_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, g_skipped);
    return failed ? 1 : 0;
}
