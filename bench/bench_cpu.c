/* bench_cpu.c: kvtc codec encode/decode throughput on one CPU core (TQ_MSE Hadamard/dense, TQ_PROD, AFFINE): vectors/s and GB/s, median and p10/p90, memcpy floor in the same run. */
/* build: cc -std=c99 -O2 -march=native -I. bench/bench_cpu.c -lm -o build/bench_cpu */
/* run:   ./build/bench_cpu [--quick] [--n N] [--reps R] [--scrub] [FILTER]   (FILTER: substring of a row name, e.g. mse-had-d128) */
/*
 * Per row: one codec, one batch of n random N(0,1) vectors (fixed seed per head_dim).
 *   1. validate: encode + decode once, every status checked; the relative MSE
 *      sum||x - x_hat||^2 / sum||x||^2 must be within REL_TOL of its model
 *      (TQ: the codebook's mse_unit, see expected_rel_mse; AFFINE: step^2/12),
 *      else the row is reported as FAILED and not timed;
 *   2. warm up, then `reps` (>= 20) timed encodes of the whole batch, then as
 *      many timed decodes, CLOCK_MONOTONIC around each call;
 *   3. report the median and the p10/p90 of throughput over the repetitions.
 * GB/s counts bytes the call must touch: encode reads n*d*4 fp32 bytes and
 * writes the encoded page; decode reads the page and writes n*d*4 bytes
 * (1 GB = 1e9 B). The floor is memcpy of the n*d*4 fp32 bytes of the same
 * batch (GB/s counts read + write); "x memcpy" is median time / memcpy median.
 * Caches are not scrubbed unless --scrub (which streams 64 MiB between
 * repetitions); the working set of each row is printed in the notes.
 * The library is single-threaded, so each call runs on one core; pin with
 * `taskset -c 1 ./build/bench_cpu` on a shared machine.
 * --quick: head_dim 128 only, n = 4096, 20 repetitions (runs in a few seconds).
 * Exit status: 0 if every selected row validated, 1 otherwise, 2 on usage.
 */
#define _POSIX_C_SOURCE 200112L
#define KVTC_IMPLEMENTATION
#include "kvtc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Relative tolerance of the validation. With n >= 4096 vectors the sampling
 * error of the batch MSE is below 1%; the rest covers the norm-correction
 * approximation below and the AFFINE endpoint effect (see expected_rel_mse). */
#define REL_TOL 0.05

typedef struct bench_row {
    const char *name;
    int head_dim, bits;
    kvtc_method method;
    kvtc_rotation_kind rotation;
} bench_row;

typedef struct bench_stats {
    double med, p10, p90; /* seconds per batch: median, 10th and 90th percentile */
} bench_stats;

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One timed repetition: wall time (CLOCK_MONOTONIC) and this thread's CPU
 * time, which leaves out time the scheduler gave to other processes. */
typedef struct bench_clock {
    double wall, cpu;
} bench_clock;

static bench_clock clock_now(void) {
    bench_clock c;
    c.cpu = clock_s(CLOCK_THREAD_CPUTIME_ID);
    c.wall = clock_s(CLOCK_MONOTONIC);
    return c;
}

static void clock_since(bench_clock t0, double *wall, double *cpu) {
    double w = clock_s(CLOCK_MONOTONIC), c = clock_s(CLOCK_THREAD_CPUTIME_ID);
    *wall = w - t0.wall;
    *cpu = c - t0.cpu;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Percentile q in [0, 1] of sorted t[0..n), linear interpolation. */
static double percentile(const double *t, int n, double q) {
    double pos = q * (n - 1);
    int i = (int)pos;
    if (i >= n - 1) return t[n - 1];
    return t[i] + (pos - i) * (t[i + 1] - t[i]);
}

static bench_stats stats_of(double *t, int n) {
    bench_stats s;
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    s.med = percentile(t, n, 0.5);
    s.p10 = percentile(t, n, 0.1);
    s.p90 = percentile(t, n, 0.9);
    return s;
}

/* Stream a buffer larger than the last-level cache (--scrub). */
static volatile unsigned scrub_sink;
static void scrub(unsigned char *buf, size_t bytes) {
    size_t i;
    unsigned acc = 0;
    if (!buf) return;
    for (i = 0; i < bytes; i += 64) acc += ++buf[i];
    scrub_sink += acc;
}

/* First line of `cmd`'s output into out (without newline), or "" on failure. */
static void shell_line(const char *cmd, char *out, size_t cap) {
    FILE *f = popen(cmd, "r");
    out[0] = '\0';
    if (!f) return;
    if (fgets(out, (int)cap, f)) out[strcspn(out, "\n")] = '\0';
    else out[0] = '\0';
    pclose(f);
}

static void cpu_model(char *out, size_t cap) {
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(out, cap, "unknown (no /proc/cpuinfo)");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v) {
                v += 1 + (v[1] == ' ');
                v[strcspn(v, "\n")] = '\0';
                snprintf(out, cap, "%s", v);
            }
            break;
        }
    }
    fclose(f);
}

/* First line of a file (without newline), or "" if unreadable. */
static void first_line(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    if (!f) return;
    if (fgets(out, (int)cap, f)) out[strcspn(out, "\n")] = '\0';
    else out[0] = '\0';
    fclose(f);
}

/* "L2 1024K, L3 32768K" from sysfs (per-core L2, shared L3 on most x86). */
static void cache_sizes(char *out, size_t cap) {
    char l2[32], l3[32];
    first_line("/sys/devices/system/cpu/cpu0/cache/index2/size", l2, sizeof l2);
    first_line("/sys/devices/system/cpu/cpu0/cache/index3/size", l3, sizeof l3);
    snprintf(out, cap, "L2 %s, L3 %s", l2[0] ? l2 : "?", l3[0] ? l3 : "?");
}

static const char *method_name(kvtc_method m) {
    return m == KVTC_METHOD_TQ_PROD ? "TQ_PROD" : m == KVTC_METHOD_AFFINE ? "AFFINE" : "TQ_MSE";
}
static const char *rotation_name(kvtc_rotation_kind r) {
    return r == KVTC_ROTATION_HADAMARD ? "hadamard" : r == KVTC_ROTATION_DENSE ? "dense" : "none";
}

/* Model of the batch relative MSE of decode(encode(x)).
 * TQ: u = x/||x|| rotated is uniform on the sphere for Gaussian x, so
 *   ||u - c||^2 has mean m = mse_unit (Lloyd-Max: E<u,c> = E||c||^2 = 1 - m).
 *   With norm correction x_hat = ||x|| c/||c||, and ||u - c/||c|| ||^2 =
 *   2 - 2<u,c>/||c|| ~ 2 - 2 sqrt(1 - m) = m + m^2/4 + ... (concentration of
 *   <u,c> and ||c|| in high dimension). fp16 norms add ~1e-7.
 * AFFINE: uniform rounding error step^2/12 per coordinate, step = (max-min)/(2^b-1)
 *   of the group, for all but the group's minimum and maximum, which land on
 *   a level up to fp16 rounding of min and scale (hence group_size - 2). */
static double expected_rel_mse(const kvtc_codec *c, const float *x, size_t n) {
    const kvtc_codec_params *p = &c->params;
    if (p->method != KVTC_METHOD_AFFINE) {
        double m = c->codebook_mse_unit;
        return p->norm_correction > 0 ? 2.0 - 2.0 * sqrt(1.0 - m) : m;
    } else {
        double err = 0.0, tot = 0.0, qmax = (double)((1u << p->bits) - 1u);
        size_t i, d = (size_t)p->head_dim, gs = (size_t)p->group_size, g, j;
        for (i = 0; i < n; ++i)
            for (g = 0; g < d; g += gs) {
                const float *xg = x + i * d + g;
                float lo = xg[0], hi = xg[0];
                double step;
                for (j = 0; j < gs; ++j) {
                    lo = xg[j] < lo ? xg[j] : lo;
                    hi = xg[j] > hi ? xg[j] : hi;
                    tot += (double)xg[j] * xg[j];
                }
                step = ((double)hi - lo) / qmax;
                err += (double)(gs > 2 ? gs - 2 : 0) * step * step / 12.0;
            }
        return err / tot;
    }
}

#define MAX_REPS 1000

typedef struct bench_cfg {
    size_t n;
    int reps, warmup, quick, scrub;
    const char *filter;
    unsigned char *scrub_buf;
    size_t scrub_bytes;
} bench_cfg;

/* memcpy floor for one head_dim: st[0] wall, st[1] CPU time. Returns 0 on success. */
static int run_memcpy(const bench_cfg *cfg, int d, const float *x, float *y, bench_stats st[2]) {
    double t[MAX_REPS], tc[MAX_REPS];
    size_t bytes = cfg->n * (size_t)d * sizeof(float);
    int r;
    for (r = 0; r < cfg->warmup; ++r) memcpy(y, x, bytes);
    for (r = 0; r < cfg->reps; ++r) {
        bench_clock t0;
        scrub(cfg->scrub_buf, cfg->scrub_bytes);
        t0 = clock_now();
        memcpy(y, x, bytes);
        clock_since(t0, &t[r], &tc[r]);
        if (y[cfg->n * (size_t)d - 1] != x[cfg->n * (size_t)d - 1]) return 1;
    }
    st[0] = stats_of(t, cfg->reps);
    st[1] = stats_of(tc, cfg->reps);
    return 0;
}

/* Mvec/s median | p10-p90 of throughput (p10 comes from the slow p90 time) | Mvec/s median of CPU time |
 * GB/s median | x memcpy */
static void print_tput(double n, double bytes, bench_stats s, bench_stats cpu, double floor_med) {
    printf(" %.3f | %.3f-%.3f | %.3f | %.2f | %.1fx |", n / s.med * 1e-6, n / s.p90 * 1e-6, n / s.p10 * 1e-6,
           n / cpu.med * 1e-6, bytes / s.med * 1e-9, s.med / floor_med);
}

/* One codec row. Returns 0 if it validated and was timed, 1 otherwise. */
static int run_row(const bench_cfg *cfg, const bench_row *row, const float *x, float *y, double floor_med,
                   double enc_mvps[2]) {
    kvtc_codec_params p;
    kvtc_codec *c = NULL;
    kvtc_status st;
    size_t n = cfg->n, d = (size_t)row->head_dim, nf = n * d, enc_bytes = 0, i;
    unsigned char *enc = NULL;
    double t_enc[MAX_REPS], t_dec[MAX_REPS], c_enc[MAX_REPS], c_dec[MAX_REPS], err = 0.0, tot = 0.0, rel, want, bpc = 0.0;
    bench_stats se, sd, ce, cd;
    int r, rc = 1;

    memset(&p, 0, sizeof p);
    p.head_dim = row->head_dim;
    p.bits = row->bits;
    p.method = row->method;
    p.rotation = row->rotation;
    p.seed = 42;
    if ((st = kvtc_codec_create(&p, &c)) != KVTC_OK) {
        fprintf(stderr, "%s: kvtc_codec_create: %s\n", row->name, kvtc_status_string(st));
        goto done;
    }
    if ((st = kvtc_codec_encoded_bytes(c, n, &enc_bytes)) != KVTC_OK) {
        fprintf(stderr, "%s: kvtc_codec_encoded_bytes: %s\n", row->name, kvtc_status_string(st));
        goto done;
    }
    if ((st = kvtc_codec_bits_per_coord(c, &bpc)) != KVTC_OK) {
        fprintf(stderr, "%s: kvtc_codec_bits_per_coord: %s\n", row->name, kvtc_status_string(st));
        goto done;
    }
    enc = (unsigned char *)malloc(enc_bytes);
    if (!enc) {
        fprintf(stderr, "%s: out of memory (%zu bytes)\n", row->name, enc_bytes);
        goto done;
    }

    /* 1. validate */
    if ((st = kvtc_codec_encode(c, x, n, enc, enc_bytes)) != KVTC_OK) {
        fprintf(stderr, "%s: kvtc_codec_encode: %s\n", row->name, kvtc_status_string(st));
        goto done;
    }
    if ((st = kvtc_codec_decode(c, enc, enc_bytes, n, y, nf)) != KVTC_OK) {
        fprintf(stderr, "%s: kvtc_codec_decode: %s\n", row->name, kvtc_status_string(st));
        goto done;
    }
    for (i = 0; i < nf; ++i) {
        double e = (double)x[i] - y[i];
        err += e * e;
        tot += (double)x[i] * x[i];
    }
    rel = err / tot;
    want = expected_rel_mse(c, x, n);
    if (!(fabs(rel / want - 1.0) <= REL_TOL)) {
        fflush(stdout);
        fprintf(stderr, "%s: validation FAILED: relative MSE %.6g, expected %.6g (tolerance %.0f%%); row not timed\n",
                row->name, rel, want, REL_TOL * 100.0);
        printf("| %s | %d | %d | %s | %s | %.3f | %.5f (%.5f) | FAILED validation | | | | | | | | | |\n", row->name,
               row->head_dim, row->bits, method_name(row->method), rotation_name(c->params.rotation), bpc, rel,
               want);
        fflush(stdout);
        goto done;
    }

    /* 2. warm up, then time */
    for (r = 0; r < cfg->warmup; ++r) {
        if ((st = kvtc_codec_encode(c, x, n, enc, enc_bytes)) != KVTC_OK ||
            (st = kvtc_codec_decode(c, enc, enc_bytes, n, y, nf)) != KVTC_OK) {
            fprintf(stderr, "%s: warm-up: %s\n", row->name, kvtc_status_string(st));
            goto done;
        }
    }
    for (r = 0; r < cfg->reps; ++r) {
        bench_clock t0;
        scrub(cfg->scrub_buf, cfg->scrub_bytes);
        t0 = clock_now();
        st = kvtc_codec_encode(c, x, n, enc, enc_bytes);
        clock_since(t0, &t_enc[r], &c_enc[r]);
        if (st != KVTC_OK) {
            fprintf(stderr, "%s: kvtc_codec_encode (rep %d): %s\n", row->name, r, kvtc_status_string(st));
            goto done;
        }
    }
    for (r = 0; r < cfg->reps; ++r) {
        bench_clock t0;
        scrub(cfg->scrub_buf, cfg->scrub_bytes);
        t0 = clock_now();
        st = kvtc_codec_decode(c, enc, enc_bytes, n, y, nf);
        clock_since(t0, &t_dec[r], &c_dec[r]);
        if (st != KVTC_OK) {
            fprintf(stderr, "%s: kvtc_codec_decode (rep %d): %s\n", row->name, r, kvtc_status_string(st));
            goto done;
        }
    }
    se = stats_of(t_enc, cfg->reps);
    sd = stats_of(t_dec, cfg->reps);
    ce = stats_of(c_enc, cfg->reps);
    cd = stats_of(c_dec, cfg->reps);
    enc_mvps[0] = (double)n / se.med * 1e-6;
    enc_mvps[1] = (double)n / ce.med * 1e-6;

    printf("| %s | %d | %d | %s | %s | %.3f | %.5f (%.5f) |", row->name, row->head_dim, row->bits,
           method_name(row->method), rotation_name(c->params.rotation), bpc, rel, want);
    print_tput((double)n, (double)(nf * sizeof(float) + enc_bytes), se, ce, floor_med);
    print_tput((double)n, (double)(nf * sizeof(float) + enc_bytes), sd, cd, floor_med);
    printf("\n");
    fflush(stdout);
    rc = 0;
done:
    free(enc);
    kvtc_codec_destroy(c);
    return rc;
}

static int usage(const char *argv0) {
    fprintf(stderr, "usage: %s [--quick] [--n N] [--reps R (>= 20)] [--scrub] [FILTER]\n", argv0);
    return 2;
}

int main(int argc, char **argv) {
    static const int dims[] = {64, 96, 128, 256};
    bench_row rows[64];
    bench_cfg cfg;
    char cpu[256], caches[128], loadavg[64], commit[128], dirty[256], datebuf[64], cmdline[1024];
    int n_rows = 0, i, k, failed = 0, ran = 0, n_reps_arg = 0;
    size_t n_arg = 0, len = 0;
    double target_mvps = -1.0, target_cpu = -1.0;
    time_t now = time(NULL);

    memset(&cfg, 0, sizeof cfg);
    for (i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--quick") == 0) cfg.quick = 1;
        else if (strcmp(argv[i], "--scrub") == 0) cfg.scrub = 1;
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) n_arg = (size_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) n_reps_arg = atoi(argv[++i]);
        else if (argv[i][0] == '-') return usage(argv[0]);
        else cfg.filter = argv[i];
    }
    cfg.n = n_arg ? n_arg : cfg.quick ? 4096 : 16384;
    cfg.reps = n_reps_arg ? n_reps_arg : cfg.quick ? 20 : 25;
    cfg.warmup = cfg.quick ? 1 : 2;
    if (cfg.reps < 20 || cfg.reps > MAX_REPS || cfg.n < 1 || cfg.n > ((size_t)1 << 24)) return usage(argv[0]);
    if (cfg.scrub) {
        cfg.scrub_bytes = (size_t)64 << 20;
        cfg.scrub_buf = (unsigned char *)calloc(cfg.scrub_bytes, 1);
        if (!cfg.scrub_buf) {
            fprintf(stderr, "out of memory for the scrub buffer\n");
            return 1;
        }
    }

    /* rows: per head_dim, TQ_MSE x {hadamard, dense} x bits {2,3,4}; at d=128 also TQ_PROD and AFFINE 4-bit */
    for (k = 0; k < (int)(sizeof dims / sizeof dims[0]); ++k) {
        static char names[64][40];
        int rot, b, d = dims[k];
        if (cfg.quick && d != 128) continue;
        for (rot = 0; rot < 2; ++rot)
            for (b = 2; b <= 4; ++b) {
                bench_row *r = &rows[n_rows];
                if (cfg.quick && rot == 1 && b != 4) continue;
                sprintf(names[n_rows], "mse-%s-d%d-b%d", rot ? "dense" : "had", d, b);
                r->name = names[n_rows];
                r->head_dim = d;
                r->bits = b;
                r->method = KVTC_METHOD_TQ_MSE;
                r->rotation = rot ? KVTC_ROTATION_DENSE : KVTC_ROTATION_HADAMARD;
                ++n_rows;
            }
        if (d == 128) {
            rows[n_rows].name = "prod-had-d128-b4";
            rows[n_rows].head_dim = 128;
            rows[n_rows].bits = 4;
            rows[n_rows].method = KVTC_METHOD_TQ_PROD;
            rows[n_rows].rotation = KVTC_ROTATION_HADAMARD;
            ++n_rows;
            rows[n_rows].name = "affine-d128-b4";
            rows[n_rows].head_dim = 128;
            rows[n_rows].bits = 4;
            rows[n_rows].method = KVTC_METHOD_AFFINE;
            rows[n_rows].rotation = KVTC_ROTATION_NONE;
            ++n_rows;
        }
    }

    /* header */
    cpu_model(cpu, sizeof cpu);
    cache_sizes(caches, sizeof caches);
    {
        double l1, l5, l15;
        first_line("/proc/loadavg", loadavg, sizeof loadavg);
        if (sscanf(loadavg, "%lf %lf %lf", &l1, &l5, &l15) == 3)
            snprintf(loadavg, sizeof loadavg, "%.2f %.2f %.2f", l1, l5, l15);
        else
            snprintf(loadavg, sizeof loadavg, "unknown");
    }
    shell_line("git rev-parse --short HEAD 2>/dev/null", commit, sizeof commit);
    shell_line("git status --porcelain -- kvtc.h codebooks.h bench/bench_cpu.c 2>/dev/null | "
               "awk '{print $2}' | paste -sd, -",
               dirty, sizeof dirty);
    strftime(datebuf, sizeof datebuf, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    cmdline[0] = '\0';
    for (i = 0; i < argc && len + 2 < sizeof cmdline; ++i)
        len += (size_t)snprintf(cmdline + len, sizeof cmdline - len, "%s%s", i ? " " : "", argv[i]);
    printf("kvtc %s bench_cpu: codec encode/decode throughput, one core\n\n", kvtc_version());
    printf("- date: %s\n", datebuf);
    printf("- cpu: %s, %s; load average at start %s (other jobs share the cores)\n", cpu, caches, loadavg);
#ifdef __VERSION__
    printf("- compiler: %s%s%s%s%s\n",
#if defined(__clang__)
           "clang ",
#elif defined(__GNUC__)
           "gcc ",
#else
           "",
#endif
           __VERSION__,
#ifdef __OPTIMIZE__
           ", optimized",
#else
           ", NOT optimized",
#endif
#ifdef __AVX2__
           ", AVX2",
#else
           "",
#endif
#ifdef __AVX512F__
           ", AVX-512F"
#else
           ""
#endif
    );
#else
    printf("- compiler: unknown\n");
#endif
    printf("- commit: %s%s%s\n", commit[0] ? commit : "unknown", dirty[0] ? " + uncommitted " : "", dirty);
    printf("- command: `%s`\n", cmdline);
    printf("- batch: n = %zu random N(0,1) vectors per row, %d warm-up + %d timed repetitions, caches %s\n", cfg.n,
           cfg.warmup, cfg.reps, cfg.scrub ? "scrubbed (64 MiB streamed) before each repetition" : "not scrubbed");
    printf("- Mvec/s: from the median wall time (CLOCK_MONOTONIC), p10-p90 of throughput; CPU Mvec/s: from the median "
           "thread CPU time, which excludes time the scheduler gave other processes; GB/s: (n*d*4 fp32 + encoded "
           "bytes) / median wall time; x memcpy: median wall time / memcpy median wall time of the n*d*4 fp32 bytes\n\n");
    printf("| row | d | b | method | rotation | bits/coord | rel MSE (model) | enc Mvec/s | enc p10-p90 | enc CPU Mvec/s "
           "| enc GB/s | enc x memcpy | dec Mvec/s | dec p10-p90 | dec CPU Mvec/s | dec GB/s | dec x memcpy |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);

    for (k = 0; k < (int)(sizeof dims / sizeof dims[0]); ++k) {
        int d = dims[k], any = 0;
        size_t nf = cfg.n * (size_t)d, j;
        float *x, *y;
        kvtc_rng rng;
        bench_stats fl[2];
        fl[0].med = fl[0].p10 = fl[0].p90 = 1.0;
        for (i = 0; i < n_rows; ++i)
            if (rows[i].head_dim == d && (!cfg.filter || strstr(rows[i].name, cfg.filter))) any = 1;
        if (!any) continue;
        x = (float *)malloc(nf * sizeof(float));
        y = (float *)malloc(nf * sizeof(float));
        if (!x || !y) {
            fprintf(stderr, "d=%d: out of memory\n", d);
            free(x);
            free(y);
            free(cfg.scrub_buf);
            return 1;
        }
        kvtc_rng_seed(&rng, 1000u + (unsigned)d);
        for (j = 0; j < nf; ++j) x[j] = (float)kvtc_rng_gaussian(&rng);
        if (run_memcpy(&cfg, d, x, y, fl) != 0) {
            fprintf(stderr, "d=%d: memcpy baseline copied wrong data\n", d);
            ++failed;
        } else {
            printf("| memcpy-d%d (floor) | %d | 32 | fp32 copy | - | 32.000 | 0 |", d, d);
            printf(" %.3f | %.3f-%.3f | %.3f | %.2f | 1.0x | - | - | - | - | - |\n", (double)cfg.n / fl[0].med * 1e-6,
                   (double)cfg.n / fl[0].p90 * 1e-6, (double)cfg.n / fl[0].p10 * 1e-6, (double)cfg.n / fl[1].med * 1e-6,
                   2.0 * (double)(nf * sizeof(float)) / fl[0].med * 1e-9);
            fflush(stdout);
        }
        for (i = 0; i < n_rows; ++i) {
            double mvps[2] = {0.0, 0.0};
            if (rows[i].head_dim != d || (cfg.filter && !strstr(rows[i].name, cfg.filter))) continue;
            ++ran;
            if (run_row(&cfg, &rows[i], x, y, fl[0].med, mvps) != 0) ++failed;
            else if (strcmp(rows[i].name, "mse-had-d128-b4") == 0) {
                target_mvps = mvps[0];
                target_cpu = mvps[1];
            }
        }
        free(x);
        free(y);
    }
    printf("\n- working set per row: n*d*4 bytes of fp32 input, as much fp32 output, and the encoded page "
           "(d=128, 4 bits: %.1f + %.1f + %.1f MiB)\n",
           (double)cfg.n * 128 * 4 / 1048576.0, (double)cfg.n * 128 * 4 / 1048576.0,
           (double)cfg.n * 66 / 1048576.0);
    if (target_mvps >= 0.0)
        printf("- target (mse-had-d128-b4 encode >= 1 M vectors/s on one core): %.3f M vectors/s wall, %.3f CPU, %s\n",
               target_mvps, target_cpu, target_mvps >= 1.0 ? "met" : target_cpu >= 1.0 ? "met in CPU time only" : "NOT met");
    printf("- rows: %d run, %d failed\n", ran, failed);
    free(cfg.scrub_buf);
    return failed ? 1 : 0;
}
