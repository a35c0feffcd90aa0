/*
 * cli_bench_report: CSV, gnuplot plots and index.html of a bench run (see the header).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/cli_bench_report.h"

#define PLOT_TIMEOUT_S 120

bool breport_target_met(const struct breport_target *t)
{
    if (isnan(t->value))
        return false;
    return t->op[0] == '<' ? t->value < t->target : t->value >= t->target;
}

static FILE *open_in(const char *dir, const char *name, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return f;
}

static int close_checked(FILE *f, const char *dir, const char *name, char *err, size_t errlen)
{
    if (ferror(f) | fclose(f)) {
        snprintf(err, errlen, "writing %s/%s failed: %s", dir, name, strerror(errno));
        return -1;
    }
    return 0;
}

/* A CSV number: empty when unknown, so spreadsheets and gnuplot see a missing value. */
static void csv_num(FILE *f, double v, int prec)
{
    if (isnan(v) || isinf(v))
        fputs(",", f);
    else
        fprintf(f, ",%.*f", prec, v);
}

static void csv_pcts(FILE *f, const double *ms)
{
    for (int i = 0; i < BRUN_PCTS; i++)
        csv_num(f, ms[i], 3);
}

static const char timeseries_header[] =
    "t_s,phase,target_mb_s,produce_mb_s,consume_mb_s,"
    "ack_p50_ms,ack_p99_ms,ack_p999_ms,ack_max_ms,e2e_p50_ms,e2e_p99_ms,e2e_p999_ms,e2e_max_ms,"
    "broker_cpu,client_cpu,segment_rolls,retention_deletes,acked_records,consumed_records\n";

static int write_timeseries(const struct breport_in *in, char *err, size_t errlen)
{
    FILE *f = open_in(in->dir, "timeseries.csv", err, errlen);
    if (!f)
        return -1;
    fputs(timeseries_header, f);
    double mb = (double)in->record_size / 1e6;
    for (size_t p = 0; p < in->nphases; p++) {
        const struct brun_result *r = in->phases[p];
        if (p && r->nsecs)
            fputc('\n', f); /* gnuplot: do not join one phase's line to the next */
        for (uint32_t i = 0; i < r->nsecs; i++) {
            const struct brun_sec *s = &r->series[i];
            double d = s->dur_s > 0.05 ? s->dur_s : NAN; /* a sliver of a second says nothing */
            fprintf(f, "%.3f,%s", s->t_s, r->label);
            csv_num(f, r->open_loop ? r->target_mbps : NAN, 1);
            csv_num(f, r->open_loop || r->acked ? (double)s->acked * mb / d : NAN, 2);
            csv_num(f, s->consumed || r->consume_mbps > 0 ? (double)s->consumed * mb / d : NAN, 2);
            csv_pcts(f, s->ack_ms);
            csv_pcts(f, s->e2e_ms);
            csv_num(f, s->broker_cpu / d, 3);
            csv_num(f, s->client_cpu / d, 3);
            fprintf(f, ",%u,%u,%llu,%llu\n", s->rolls, s->retention,
                    (unsigned long long)s->acked, (unsigned long long)s->consumed);
        }
    }
    return close_checked(f, in->dir, "timeseries.csv", err, errlen);
}

static void run_pcts(const struct bhist *h, double *ms)
{
    for (int i = 0; i < BRUN_PCTS; i++)
        ms[i] = h && h->count ? bhist_percentile_ms(h, brun_pcts[i]) : NAN;
}

static int write_sweep(const struct breport_in *in, char *err, size_t errlen)
{
    FILE *f = open_in(in->dir, "sweep.csv", err, errlen);
    if (!f)
        return -1;
    fputs("pct,target_mb_s,produce_mb_s,consume_mb_s,ack_p50_ms,ack_p99_ms,ack_p999_ms,"
          "ack_max_ms,e2e_p50_ms,e2e_p99_ms,e2e_p999_ms,e2e_max_ms\n", f);
    for (size_t i = 0; i < in->nsweep; i++) {
        const struct brun_result *r = in->sweep[i];
        double ms[BRUN_PCTS];
        fprintf(f, "%.0f", in->sweep_pct[i]);
        csv_num(f, r->target_mbps, 1);
        csv_num(f, r->mbps, 1);
        csv_num(f, r->consume_mbps, 1);
        run_pcts(r->ack, ms);
        csv_pcts(f, ms);
        run_pcts(r->e2e, ms);
        csv_pcts(f, ms);
        fputc('\n', f);
    }
    return close_checked(f, in->dir, "sweep.csv", err, errlen);
}

/* Percentiles at HdrHistogram's ticks: 1 - 10^(-k/20), five decades deep at most, and only as
 * deep as the sample supports (a 99.999th percentile of 1000 values means nothing). */
static int write_cdf(const struct breport_in *in, char *err, size_t errlen)
{
    FILE *f = open_in(in->dir, "cdf.csv", err, errlen);
    if (!f)
        return -1;
    fputs("percentile,ack_ms,e2e_ms\n", f);
    const struct brun_result *r = in->cdf_run;
    uint64_t n = r && r->ack ? r->ack->count : 0;
    for (int k = 0; r && k <= 100; k++) {
        double tail = pow(10, -k / 20.0), pct = 100.0 * (1 - tail);
        if (k && 1 / tail > (double)n)
            break;
        fprintf(f, "%.5f", pct);
        csv_num(f, r->ack->count ? bhist_percentile_ms(r->ack, pct) : NAN, 3);
        csv_num(f, r->e2e->count ? bhist_percentile_ms(r->e2e, pct) : NAN, 3);
        fputc('\n', f);
    }
    return close_checked(f, in->dir, "cdf.csv", err, errlen);
}

static int write_codecs(const struct breport_in *in, char *err, size_t errlen)
{
    FILE *f = open_in(in->dir, "codecs.csv", err, errlen);
    if (!f)
        return -1;
    fputs("payload,compression,produce_mb_s,stored_ratio,client_cpu_s_per_gb,"
          "broker_cpu_s_per_gb,consume_mb_s,consume_cpu_s_per_gb,rate_mb_s,ack_p99_ms,"
          "e2e_p99_ms\n", f);
    for (size_t i = 0; i < in->ncodecs; i++) {
        const struct breport_codec *c = &in->codecs[i];
        fprintf(f, "%s,%s", c->payload, c->compression);
        csv_num(f, c->produce_mbps, 1);
        csv_num(f, c->stored_ratio, 3);
        csv_num(f, c->client_cpu_s_per_gb, 2);
        csv_num(f, c->broker_cpu_s_per_gb, 2);
        csv_num(f, c->consume_mbps, 1);
        csv_num(f, c->consume_cpu_s_per_gb, 2);
        csv_num(f, c->rate_mbps, 1);
        csv_num(f, c->ack_p99_ms, 3);
        csv_num(f, c->e2e_p99_ms, 3);
        fputc('\n', f);
    }
    return close_checked(f, in->dir, "codecs.csv", err, errlen);
}

/* --- plots ----------------------------------------------------------------------------------- */

/* Every plot is drawn twice, as PNG for the page and SVG for print and zoom. */
static const char gp_prelude[] =
    "# Drawn by `ringlog bench --report`; run `gnuplot plots.gp` in this directory to redraw.\n"
    "set datafile separator ','\n"
    "set key below horizontal samplen 2 spacing 1.1\n"
    "set grid lc rgb '#dddddd' lw 1\n"
    "set border lc rgb '#555555'\n"
    "set style line 1 lc rgb '#1f77b4' lw 2\n"             /* produce / p50 */
    "set style line 2 lc rgb '#ff7f0e' lw 2\n"             /* consume / p99 */
    "set style line 3 lc rgb '#2ca02c' lw 2\n"
    "set style line 4 lc rgb '#9467bd' lw 2\n"
    "set style line 5 lc rgb '#d62728' lw 1\n"
    "set style line 6 lc rgb '#777777' lw 1.5 dt 2\n"      /* targets and limits */
    "set style line 7 lc rgb '#999999' lw 2\n"             /* segment rolls */
    "set style line 8 lc rgb '#17becf' lw 2\n"             /* retention deletes */
    "term(fmt, w, h) = fmt eq 'png' ? \\\n"
    "    sprintf(\"set terminal pngcairo size %d,%d font 'sans,11' noenhanced\", w, h) : \\\n"
    "    sprintf(\"set terminal svg size %d,%d dynamic font 'sans,11' noenhanced\", w, h)\n";

/* Vertical dotted lines where each phase starts, and its name written up the line; names of
 * phases that start too close to the last one named (the short tail reads) are left out. */
static void gp_phase_marks(FILE *f, const struct breport_in *in)
{
    double first = NAN, last = NAN, named = -INFINITY;
    for (size_t p = 0; p < in->nphases; p++) {
        const struct brun_result *r = in->phases[p];
        if (r->nsecs && isnan(first))
            first = r->series[0].t_s;
        if (r->nsecs)
            last = r->series[r->nsecs - 1].t_s + r->series[r->nsecs - 1].dur_s;
    }
    fputs("unset arrow; unset label\n", f);
    for (size_t p = 0; p < in->nphases; p++) {
        const struct brun_result *r = in->phases[p];
        if (!r->nsecs)
            continue;
        double x = r->series[0].t_s;
        fprintf(f, "set arrow from %.2f, graph 0 to %.2f, graph 1 nohead lc rgb '#aaaaaa' "
                "dt 3\n", x, x);
        if (x - named < (last - first) * 0.02)
            continue;
        named = x;
        fprintf(f, "set label \"%s\" at %.2f, graph 0.98 rotate by 90 right offset 0.9,0 "
                "font ',9' tc rgb '#555555'\n", r->label, x);
    }
}

static void gp_throughput(FILE *f, const struct breport_in *in)
{
    fputs("do for [fmt in 'png svg'] {\n"
          "eval term(fmt, 1280, 560)\n"
          "set output 'throughput.'.fmt\n"
          "set title 'Throughput over time (record bytes per second)'\n"
          "set xlabel 'seconds since the bench started'; set ylabel 'MB/s'\n"
          "set yrange [0:*]; unset logscale; set autoscale xfix\n", f);
    gp_phase_marks(f, in);
    fprintf(f, "plot 'timeseries.csv' skip 1 using 1:4 with linespoints ls 1 pt 7 ps 0.3 "
            "title 'produce (acknowledged)', \\\n"
            "  '' skip 1 using 1:5 with linespoints ls 2 pt 7 ps 0.3 title 'consume', \\\n"
            "  '' skip 1 using 1:3 with lines ls 6 title 'open-loop target', \\\n"
            "  %.1f with lines ls 5 dt 4 title 'raw disk write %.0f MB/s'\n"
            "}\n", in->disk_write_mbps, in->disk_write_mbps);
}

/* One latency panel: p50, p99, p99.9 and max of columns c..c+3, rolls and retention below. */
static void gp_latency_panel(FILE *f, const char *title, int c)
{
    fprintf(f, "set title '%s'\n"
            "plot 'timeseries.csv' skip 1 using 1:%d with lines ls 1 title 'p50', \\\n"
            "  '' skip 1 using 1:%d with lines ls 2 title 'p99', \\\n"
            "  '' skip 1 using 1:%d with lines ls 4 title 'p99.9', \\\n"
            "  '' skip 1 using 1:%d with lines ls 5 title 'max', \\\n"
            "  '' skip 1 using 1:16 axes x1y2 with impulses ls 7 title 'segment rolls (right "
            "axis)', \\\n"
            "  '' skip 1 using ($1+0.35):17 axes x1y2 with impulses ls 8 title 'retention deletes "
            "(right axis)'\n", title, c, c + 1, c + 2, c + 3);
}

static void gp_latency(FILE *f, const struct breport_in *in)
{
    /* Rolls and retention stand in the lower quarter, under the latency lines. */
    uint32_t events = 1;
    for (size_t p = 0; p < in->nphases; p++)
        for (uint32_t i = 0; i < in->phases[p]->nsecs; i++) {
            const struct brun_sec *s = &in->phases[p]->series[i];
            events = s->rolls > events ? s->rolls : events;
            events = s->retention > events ? s->retention : events;
        }
    fprintf(f, "do for [fmt in 'png svg'] {\n"
            "eval term(fmt, 1280, 900)\n"
            "set output 'latency.'.fmt\n"
            "set multiplot layout 2,1\n"
            "set logscale y; set yrange [*:*]; set ylabel 'ms (log scale)'\n"
            "set y2range [0:%u]; set y2tics 0,%u,%u; set y2label 'events per second'\n"
            "set xlabel 'seconds since the bench started'; set autoscale xfix\n", events * 4,
            events > 4 ? (events + 3) / 4 : 1, events);
    gp_phase_marks(f, in);
    gp_latency_panel(f, "Produce to acknowledgement latency per second (from the intended send "
                        "time; closed-loop phases from the send call)", 6);
    gp_latency_panel(f, "End-to-end latency per second (intended send time to consumer)", 10);
    fputs("unset multiplot\nunset y2tics; unset y2label; unset logscale\n}\n", f);
}

static void gp_cdf(FILE *f, const struct breport_in *in)
{
    fprintf(f, "do for [fmt in 'png svg'] {\n"
            "eval term(fmt, 1100, 600)\n"
            "set output 'cdf.'.fmt\n"
            "unset arrow; unset label\n"
            "set title 'Latency by percentile: %s (%.0f MB/s, open loop)'\n"
            "set logscale x; set logscale y; set yrange [*:*]\n"
            "set xrange [1:*]; set autoscale xfixmax\n"
            /* Tic labels are formats: a percent sign is written %%. */
            "set xtics ('0%%%%' 1, '50%%%%' 2, '90%%%%' 10, '99%%%%' 100, '99.9%%%%' 1000, "
            "'99.99%%%%' 10000, '99.999%%%%' 100000)\n"
            "set xlabel 'percentile'; set ylabel 'ms (log scale)'\n"
            "plot 'cdf.csv' skip 1 using (100/(100-$1)):2 with lines ls 1 title 'produce to "
            "acknowledgement', \\\n"
            "  '' skip 1 using (100/(100-$1)):3 with lines ls 2 title 'end to end'\n"
            "unset logscale; set xtics autofreq; set autoscale x\n}\n",
            in->cdf_run ? in->cdf_run->label : "", in->cdf_run ? in->cdf_run->target_mbps : 0);
}

static void gp_sweep(FILE *f)
{
    fputs("do for [fmt in 'png svg'] {\n"
          "eval term(fmt, 1100, 650)\n"
          "set output 'sweep.'.fmt\n"
          "unset arrow; unset label\n"
          "set title 'Latency against offered load (open loop, each rate held for the same time)'\n"
          "set logscale y; set yrange [*:*]; set xrange [0:*]\n"
          "set xlabel 'offered load: target MB/s (the table gives what was achieved)'; set ylabel 'ms (log scale)'\n"
          "plot 'sweep.csv' skip 1 using 2:5 with linespoints ls 1 pt 7 ps 0.7 "
          "title 'ack p50', \\\n"
          "  '' skip 1 using 2:6 with linespoints ls 2 pt 7 ps 0.7 title 'ack p99', \\\n"
          "  '' skip 1 using 2:7 with linespoints ls 4 pt 7 ps 0.7 title 'ack p99.9', \\\n"
          "  '' skip 1 using 2:9 with linespoints ls 1 dt 2 pt 6 title 'end-to-end p50', \\\n"
          "  '' skip 1 using 2:10 with linespoints ls 2 dt 2 pt 6 title 'end-to-end p99', \\\n"
          "  '' skip 1 using 2:11 with linespoints ls 4 dt 2 pt 6 title 'end-to-end p99.9', \\\n"
          "  '' skip 1 using 2:6:(sprintf('%.0f%%', $1)) with labels offset 0,1 font ',8' "
          "notitle, \\\n"
          "  5 with lines ls 6 title 'target: ack p99 < 5 ms at half load', \\\n"
          "  10 with lines ls 6 dt 4 title 'target: end-to-end p99 < 10 ms'\n"
          "unset logscale; set xrange [*:*]\n}\n", f);
}

static void gp_cpu(FILE *f, const struct breport_in *in)
{
    fputs("do for [fmt in 'png svg'] {\n"
          "eval term(fmt, 1280, 450)\n"
          "set output 'cpu.'.fmt\n"
          "set title 'CPU over time (1.0 = one core busy)'\n"
          "set xlabel 'seconds since the bench started'; set ylabel 'cores'\n"
          "set yrange [0:*]; set autoscale xfix\n", f);
    gp_phase_marks(f, in);
    fprintf(f, "plot 'timeseries.csv' skip 1 using 1:14 with lines ls 1 title 'broker', \\\n"
            "  '' skip 1 using 1:15 with lines ls 2 title 'bench client (producer, consumer)', "
            "\\\n  %ld with lines ls 6 title 'cores on this machine'\n}\n",
            sysconf(_SC_NPROCESSORS_ONLN));
}

/* Runs gnuplot on plots.gp in dir. Returns 0, or 1 with the reason in err. */
static int run_gnuplot(const char *dir, char *err, size_t errlen)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot run gnuplot: %s", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 1);
        alarm(PLOT_TIMEOUT_S); /* a hung gnuplot must not hang the bench */
        if (chdir(dir) == 0)
            execlp("gnuplot", "gnuplot", "plots.gp", (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        snprintf(err, errlen, "gnuplot is not installed, so the plots were not drawn (the CSVs "
                 "and index.html were written); install it with apt-get install gnuplot-nox, "
                 "or run make bench-report, which does");
    else
        snprintf(err, errlen, "gnuplot failed on %s/plots.gp (status %d); its messages are "
                 "above", dir, status);
    return 1;
}

static int write_plots(const struct breport_in *in, char *err, size_t errlen)
{
    FILE *f = open_in(in->dir, "plots.gp", err, errlen);
    if (!f)
        return -1;
    fputs(gp_prelude, f);
    gp_throughput(f, in);
    gp_latency(f, in);
    gp_cpu(f, in);
    if (in->cdf_run)
        gp_cdf(f, in);
    if (in->nsweep)
        gp_sweep(f);
    if (close_checked(f, in->dir, "plots.gp", err, errlen))
        return -1;
    return run_gnuplot(in->dir, err, errlen);
}

/* --- index.html ------------------------------------------------------------------------------ */

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void html_ms(FILE *f, const struct bhist *h, double pct)
{
    if (h && h->count)
        fprintf(f, "<td>%.2f</td>", bhist_percentile_ms(h, pct));
    else
        fputs("<td>-</td>", f);
}

static void html_head(FILE *f, const struct breport_in *in)
{
    struct utsname u;
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
    uname(&u);
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<title>ringlog bench report</title>\n<style>\n"
          "body{font-family:system-ui,sans-serif;max-width:1320px;margin:2em auto;padding:0 1em;"
          "color:#222}\n"
          "table{border-collapse:collapse;margin:0.5em 0 1.5em}\n"
          "td,th{border:1px solid #ccc;padding:0.25em 0.6em;text-align:right}\n"
          "th{background:#f3f3f3}\ntd:first-child,th:first-child{text-align:left}\n"
          ".met{color:#1a7f37;font-weight:bold}.missed{color:#c62828;font-weight:bold}\n"
          "code,pre{background:#f6f8fa;padding:0.2em 0.4em}\nimg{max-width:100%;"
          "border:1px solid #eee}\n</style></head><body>\n"
          "<h1>ringlog bench report</h1>\n", f);
    fprintf(f, "<p>%s on %s (%s %s, %ld cores)</p>\n<pre>", when, u.nodename, u.sysname,
            u.release, sysconf(_SC_NPROCESSORS_ONLN));
    html_text(f, in->summary ? in->summary : "");
    fputs("</pre>\n", f);
}

static void html_targets(FILE *f, const struct breport_in *in)
{
    if (!in->ntargets)
        return;
    fputs("<h2>Figures against the targets</h2>\n<table><tr><th>figure</th><th>measured</th>"
          "<th>target</th><th></th></tr>\n", f);
    for (size_t i = 0; i < in->ntargets; i++) {
        const struct breport_target *t = &in->targets[i];
        bool met = breport_target_met(t);
        fputs("<tr><td>", f);
        html_text(f, t->what);
        if (isnan(t->value))
            fputs("</td><td>-", f);
        else
            fprintf(f, "</td><td>%.2f %s", t->value, t->unit);
        fprintf(f, "</td><td>%s %.2f %s</td><td class=\"%s\">%s</td></tr>\n",
                t->op[0] == '<' ? "&lt;" : "&ge;", t->target, t->unit,
                met ? "met" : "missed", met ? "met" : "missed");
    }
    fputs("</table>\n", f);
}

static void html_settings(FILE *f, const struct breport_in *in)
{
    fputs("<h2>Limits measured in this run</h2>\n<table>\n", f);
    fprintf(f, "<tr><td>raw disk write (O_DIRECT, sequential)</td><td>%.0f MB/s</td></tr>\n"
            "<tr><td>raw disk read (O_DIRECT, sequential)</td><td>%.0f MB/s</td></tr>\n"
            "<tr><td>loopback TCP (one connection, best of three)</td><td>%.0f MB/s</td></tr>\n"
            "<tr><td>durable 4 KiB write (O_DIRECT write + fdatasync), p50 / p99</td>"
            "<td>%.2f / %.2f ms</td></tr>\n</table>\n",
            in->disk_write_mbps, in->disk_read_mbps, in->loopback_mbps, in->fsync_p50_ms,
            in->fsync_p99_ms);
    fputs("<h2>Settings</h2>\n<table>\n", f);
    const char *s = in->settings ? in->settings : "";
    while (*s) {
        size_t n = strcspn(s, "\n"), k = strcspn(s, "\t");
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1),
                 s);
        if (k < n)
            line[k] = 0;
        fputs("<tr><td>", f);
        html_text(f, line);
        fputs("</td><td>", f);
        html_text(f, k < n ? line + k + 1 : "");
        fputs("</td></tr>\n", f);
        s += n + (s[n] == '\n');
    }
    fputs("</table>\n", f);
}

static void html_plot(FILE *f, const char *name, const char *caption)
{
    fprintf(f, "<h3>%s</h3>\n<p><a href=\"%s.svg\"><img src=\"%s.png\" alt=\"%s\"></a></p>\n",
            caption, name, name, caption);
}

static void html_phases(FILE *f, const struct breport_in *in)
{
    fputs("<h2>Phases</h2>\n<table><tr><th>phase</th><th>topic</th><th>mode</th>"
          "<th>target MB/s</th><th>MB/s</th><th>consume MB/s</th><th>records</th>"
          "<th>ack p50</th><th>ack p99</th><th>ack p99.9</th><th>ack max</th>"
          "<th>e2e p50</th><th>e2e p99</th><th>e2e p99.9</th><th>e2e max</th>"
          "<th>client CPU s</th><th>broker CPU s</th></tr>\n", f);
    for (size_t p = 0; p < in->nphases; p++) {
        const struct brun_result *r = in->phases[p];
        bool produce = r->acked > 0 || r->open_loop;
        fputs("<tr><td>", f);
        html_text(f, r->label);
        fputs("</td><td>", f);
        html_text(f, r->topic);
        fprintf(f, "</td><td>%s</td>", !produce ? "consume" : r->open_loop ? "open loop"
                                                                           : "closed loop");
        if (r->open_loop)
            fprintf(f, "<td>%.1f</td>", r->target_mbps);
        else
            fputs("<td>-</td>", f);
        fprintf(f, "<td>%.1f</td><td>%.1f</td><td>%llu</td>", produce ? r->mbps : 0,
                r->consume_mbps, (unsigned long long)(produce ? r->acked : r->consumed));
        for (int i = 0; i < BRUN_PCTS; i++)
            html_ms(f, produce ? r->ack : NULL, brun_pcts[i]);
        for (int i = 0; i < BRUN_PCTS; i++)
            html_ms(f, r->e2e, brun_pcts[i]);
        fprintf(f, "<td>%.1f</td><td>%.1f</td></tr>\n", r->client_cpu_s, r->broker_cpu_s);
    }
    fputs("</table>\n<p>Latencies in ms. Open-loop latencies count from the moment each record "
          "was meant to be sent; closed-loop phases send as fast as the producer takes records, "
          "so their latency is the time a record waits in the producer's buffer.</p>\n", f);
}

static void html_codecs(FILE *f, const struct breport_in *in)
{
    if (!in->ncodecs)
        return;
    fputs("<h2>Compression</h2>\n<table><tr><th>payload</th><th>compression</th>"
          "<th>produce MB/s</th><th>stored / record bytes</th><th>client CPU s/GB</th>"
          "<th>broker CPU s/GB</th><th>catch-up MB/s</th><th>consumer CPU s/GB</th>"
          "<th>open-loop rate MB/s</th><th>ack p99 ms</th><th>e2e p99 ms</th></tr>\n", f);
    for (size_t i = 0; i < in->ncodecs; i++) {
        const struct breport_codec *c = &in->codecs[i];
        fprintf(f, "<tr><td>%s</td><td>%s</td><td>%.0f</td><td>%.3f</td><td>%.2f</td>"
                "<td>%.2f</td><td>%.0f</td><td>%.2f</td><td>%.0f</td><td>%.2f</td>"
                "<td>%.2f</td></tr>\n", c->payload, c->compression, c->produce_mbps,
                c->stored_ratio, c->client_cpu_s_per_gb, c->broker_cpu_s_per_gb,
                c->consume_mbps, c->consume_cpu_s_per_gb, c->rate_mbps, c->ack_p99_ms,
                c->e2e_p99_ms);
    }
    fputs("</table>\n<p>", f);
    html_text(f, in->codec_advice ? in->codec_advice : "");
    fputs("</p>\n", f);
}

static int write_index(const struct breport_in *in, bool plots, char *err, size_t errlen)
{
    FILE *f = open_in(in->dir, "index.html", err, errlen);
    if (!f)
        return -1;
    html_head(f, in);
    html_targets(f, in);
    html_settings(f, in);
    fputs("<h2>Plots</h2>\n", f);
    if (!plots)
        fputs("<p>The plots were not drawn (gnuplot was not available); the CSV files hold "
              "the data.</p>\n", f);
    html_plot(f, "throughput", "Throughput over time");
    html_plot(f, "latency", "Latency percentiles over time, with segment rolls and retention");
    if (in->cdf_run)
        html_plot(f, "cdf", "Latency distribution of the half-load (or --rate) run");
    if (in->nsweep)
        html_plot(f, "sweep", "Latency against throughput (the sweep)");
    html_plot(f, "cpu", "CPU over time");
    html_phases(f, in);
    html_codecs(f, in);
    fputs("<h2>Data</h2>\n<p><a href=\"timeseries.csv\">timeseries.csv</a> (per second), "
          "<a href=\"sweep.csv\">sweep.csv</a>, <a href=\"cdf.csv\">cdf.csv</a>, "
          "<a href=\"codecs.csv\">codecs.csv</a>, <a href=\"summary.txt\">summary.txt</a>, "
          "<a href=\"plots.gp\">plots.gp</a> (redraw with <code>gnuplot plots.gp</code>)."
          "</p>\n</body></html>\n", f);
    return close_checked(f, in->dir, "index.html", err, errlen);
}

int breport_write(const struct breport_in *in, char *err, size_t errlen)
{
    if (mkdir(in->dir, 0755) && errno != EEXIST) {
        snprintf(err, errlen, "cannot create the report directory %s: %s", in->dir,
                 strerror(errno));
        return -1;
    }
    if (write_timeseries(in, err, errlen) || write_sweep(in, err, errlen) ||
        write_cdf(in, err, errlen) || write_codecs(in, err, errlen))
        return -1;
    FILE *f = open_in(in->dir, "summary.txt", err, errlen);
    if (!f)
        return -1;
    fputs(in->summary ? in->summary : "", f);
    if (close_checked(f, in->dir, "summary.txt", err, errlen))
        return -1;
    int plots = write_plots(in, err, errlen);
    if (plots < 0)
        return -1;
    char ierr[512];
    if (write_index(in, plots == 0, ierr, sizeof(ierr))) {
        snprintf(err, errlen, "%s", ierr);
        return -1;
    }
    return plots;
}
