/* bench_kvtc.c: KVTC transform coding on one CPU core: per-stage times for 1024-token chunks at p = 64, 128, 1024, and bit allocation alone. */
/* build: cc -std=c99 -O2 -march=native -I. bench/bench_kvtc.c -lm -o build/bench_kvtc */
/* run:   ./build/bench_kvtc [--reps R] [--calib-reps R] [--quick]   (--quick: p = 64 and 128 only) */
/*
 * Per p: n_cal = max(4096, 16 p) calibration vectors and one chunk of
 * n = 1024 tokens from the same synthetic distribution, x = mu + H S diag(sqrt(lambda)) g
 * (H the normalized Walsh-Hadamard matrix, S random signs, g ~ N(0, I),
 * lambda_i = (i+1)^-1.5 + 1e-3: a decaying spectrum like real keys). The
 * coder: budget B = 2p bits per token (about 8x vs fp16), b_max 8, the
 * default quantizer (GAUSSIAN), no sink/window tokens (every token goes
 * through every stage).
 *   1. validate: kvtc_tc_encode + kvtc_tc_decode once (every status
 *      checked); the staged pipeline below must give the same record bytes
 *      and the same decoded floats bit for bit, and the measured error per
 *      token must be within 20% of its prediction sum lambda_i D(b_i) (the
 *      sample eigenvalues of n_cal = 16 p vectors under-estimate the flat
 *      tail of the spectrum by a few %: +2% at p = 64, +10% at p = 1024);
 *      otherwise the row is reported FAILED and not timed;
 *   2. each stage: one warm-up call, then `reps` (>= 20) timed calls,
 *      CLOCK_MONOTONIC around each; median and p10/p90.
 * Stages (the functions kvtc_tc_encode/decode are made of):
 *   calibrate   kvtc_tc_calibrate on 4096 vectors (mean, covariance, eigendecomposition)
 *   allocate    kvtc_bit_alloc over the p eigenvalues
 *   project     z = (x - mu) V^T onto the coded components
 *   quantize    per-component parameters + indices
 *   pack        variable-width bit packing of the indices
 *   unpack, dequantize, reconstruct (x = z V + mu): the decoder
 *   encode/decode: the public calls end to end (checksum, header, ... included)
 * Baselines in the same run on the same chunk: memcpy of its fp32 bytes
 * (the floor) and a conversion to fp16 (what storing it uncompressed costs).
 * Caches are not scrubbed; the chunk and the basis fit in L2 for p <= 128.
 * Single-threaded: pin it (`taskset -c 1`) on a shared machine.
 * Exit status: 0 if every row validated, 1 otherwise, 2 on usage.
 */
#define _POSIX_C_SOURCE 200112L
#define KVTC_IMPLEMENTATION
#include "kvtc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct bench_stats {
    double med, p10, p90; /* seconds */
} bench_stats;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

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

/* Everything one stage call needs. */
typedef struct bench_ctx {
    int p;
    size_t n, n_cal, n_cal_time, rec_bytes, scratch_bytes;
    const float *xcal, *x;
    float *y, *z, *xc;
    uint16_t *idx;
    uint8_t *rec, *wact, *params, *f16;
    void *scratch;
    kvtc_tc_calib *cal;
    kvtc_tc *tc;
    kvtc__tc_comp *comps;
    kvtc_tc_calib_params cp;
    uint8_t *bits;
    void *alloc_scratch;
    size_t alloc_bytes;
    int budget;
    volatile float sink;
} bench_ctx;

typedef void (*bench_fn)(bench_ctx *);

static void st_calibrate(bench_ctx *c) {
    kvtc_tc_calib *cal = NULL;
    if (kvtc_tc_calibrate(&c->cp, c->xcal, c->n_cal_time, &cal) != KVTC_OK) abort();
    kvtc_tc_calib_destroy(cal);
}
static void st_allocate(bench_ctx *c) {
    if (kvtc_bit_alloc(c->cal->eigenvalues, c->cal->rank, c->budget, 8, c->bits, (size_t)c->cal->rank,
                       c->alloc_scratch, c->alloc_bytes, NULL) != KVTC_OK)
        abort();
}
static void st_project(bench_ctx *c) {
    int nf = 0;
    kvtc__tc_project(c->tc, c->x, c->n, c->z, c->xc, &nf);
}
static void st_quantize(bench_ctx *c) {
    kvtc__tc_fit(c->tc, c->z, c->n, c->comps, c->params);
    kvtc__tc_quantize(c->comps, (size_t)c->tc->n_active, c->z, c->n, c->idx);
}
static void st_pack(bench_ctx *c) {
    kvtc__pack_var_u16(c->idx, c->n, c->wact, (size_t)c->tc->n_active, c->rec);
}
static void st_unpack(bench_ctx *c) {
    size_t bytes = ((size_t)c->n * (size_t)c->tc->row_bits + 7) / 8;
    kvtc__unpack_var_u16(c->rec, c->n, c->wact, (size_t)c->tc->n_active, bytes, c->idx);
}
static void st_dequantize(bench_ctx *c) {
    kvtc__tc_dequantize(c->comps, (size_t)c->tc->n_active, c->idx, c->n, c->z);
}
static void st_reconstruct(bench_ctx *c) {
    kvtc__tc_reconstruct(c->cal, c->tc->active, (size_t)c->tc->n_active, c->z, c->n, c->y);
}
static void st_encode(bench_ctx *c) {
    if (kvtc_tc_encode(c->tc, c->x, c->n, c->rec, c->rec_bytes, c->scratch, c->scratch_bytes) != KVTC_OK) abort();
}
static void st_decode(bench_ctx *c) {
    if (kvtc_tc_decode(c->tc, c->rec, c->rec_bytes, c->y, c->n * (size_t)c->p, c->scratch, c->scratch_bytes) != KVTC_OK)
        abort();
}
static void st_memcpy(bench_ctx *c) {
    memcpy(c->y, c->x, c->n * (size_t)c->p * sizeof(float));
    c->sink = c->y[c->n * (size_t)c->p / 2];
}
static void st_fp16(bench_ctx *c) {
    size_t i, m = c->n * (size_t)c->p;
    uint16_t *h = (uint16_t *)c->f16;
    for (i = 0; i < m; ++i) h[i] = kvtc_f32_to_f16(c->x[i]);
    c->sink = (float)h[m / 2];
}

static bench_stats bench_time(bench_ctx *c, bench_fn fn, int reps) {
    double *t = (double *)malloc(sizeof(double) * (size_t)reps);
    bench_stats s;
    int r;
    fn(c); /* warm-up */
    for (r = 0; r < reps; ++r) {
        double t0 = now_s();
        fn(c);
        t[r] = now_s() - t0;
    }
    s = stats_of(t, reps);
    free(t);
    return s;
}

static void print_time(double s, char *buf, size_t cap) {
    if (s < 1e-3) snprintf(buf, cap, "%.1f us", s * 1e6);
    else if (s < 1.0) snprintf(buf, cap, "%.2f ms", s * 1e3);
    else snprintf(buf, cap, "%.2f s", s);
}

static void print_row(int p, const char *stage, bench_stats s, int reps, size_t tokens) {
    char m[32], a[32], b[32], pt[32];
    print_time(s.med, m, sizeof m);
    print_time(s.p10, a, sizeof a);
    print_time(s.p90, b, sizeof b);
    if (tokens) snprintf(pt, sizeof pt, "%.1f ns", s.med / (double)tokens * 1e9);
    else snprintf(pt, sizeof pt, "-");
    printf("| %4d | %-22s | %10s | %10s | %10s | %4d | %10s |\n", p, stage, m, a, b, reps, pt);
}

/* x = mu + H S diag(sqrt(lambda)) g for n rows (p a power of two). */
static void make_data(float *x, size_t n, int p, uint64_t seed) {
    kvtc_rng r, rs;
    size_t t;
    int i;
    float *sign = (float *)malloc(sizeof(float) * (size_t)p);
    kvtc_rng_seed(&rs, 1234);
    for (i = 0; i < p; ++i) sign[i] = (kvtc_rng_u64(&rs) >> 63) ? -1.0f : 1.0f;
    kvtc_rng_seed(&r, seed);
    for (t = 0; t < n; ++t) {
        float *xt = x + t * (size_t)p;
        for (i = 0; i < p; ++i) xt[i] = sign[i] * (float)(kvtc_rng_gaussian(&r) * sqrt(pow(i + 1.0, -1.5) + 1e-3));
        kvtc_fwht(xt, p);
        for (i = 0; i < p; ++i) xt[i] += (float)(0.2 * sin(0.3 * i));
    }
    free(sign);
}

/* Validate the staged pipeline against the public calls; 1 if it holds. */
static int validate(bench_ctx *c) {
    size_t na = (size_t)c->tc->n_active, i, geom_idx;
    uint8_t *rec2 = (uint8_t *)malloc(c->rec_bytes);
    float *y2 = (float *)malloc(sizeof(float) * c->n * (size_t)c->p);
    double err = 0.0, pred = 0.0;
    int ok = 1, k;
    kvtc__tc_geom g;
    if (kvtc_tc_encode(c->tc, c->x, c->n, c->rec, c->rec_bytes, c->scratch, c->scratch_bytes) != KVTC_OK ||
        kvtc_tc_decode(c->tc, c->rec, c->rec_bytes, c->y, c->n * (size_t)c->p, c->scratch, c->scratch_bytes) != KVTC_OK)
        ok = 0;
    kvtc__tc_geom_n(c->tc, c->n, &g);
    geom_idx = g.idx;
    /* staged: the same record payload and the same floats */
    memcpy(rec2, c->rec, c->rec_bytes);
    memset(rec2 + geom_idx, 0, c->rec_bytes - geom_idx);
    st_project(c);
    kvtc__tc_fit(c->tc, c->z, c->n, c->comps, rec2 + g.params);
    kvtc__tc_quantize(c->comps, na, c->z, c->n, c->idx);
    for (i = 0; i < na; ++i) c->wact[i] = (uint8_t)c->comps[i].width;
    kvtc__pack_var_u16(c->idx, c->n, c->wact, na, rec2 + geom_idx);
    if (memcmp(rec2 + g.params, c->rec + g.params, c->rec_bytes - g.params) != 0) ok = 0;
    memcpy(y2, c->y, sizeof(float) * c->n * (size_t)c->p);
    kvtc__unpack_var_u16(rec2 + geom_idx, c->n, c->wact, na, g.idx_bytes, c->idx);
    st_dequantize(c);
    st_reconstruct(c);
    if (memcmp(y2, c->y, sizeof(float) * c->n * (size_t)c->p) != 0) ok = 0;
    for (i = 0; i < c->n * (size_t)c->p; ++i) err += ((double)c->x[i] - c->y[i]) * ((double)c->x[i] - c->y[i]);
    err /= (double)c->n;
    for (k = 0; k < c->cal->rank; ++k) {
        int b = c->tc->widths[k];
        pred += c->cal->eigenvalues[k] * (b ? c->tc->codebook_mse[b - 1] : 1.0);
    }
    if (!(fabs(err - pred) <= 0.2 * pred)) ok = 0;
    printf("  p=%d: calibrated on %zu vectors; %d of %d components coded, %d bits/token, record %zu B (%.2fx vs fp16), "
           "error/token %.4g, predicted %.4g: %s\n",
           c->p, c->n_cal, c->tc->n_active, c->cal->rank, c->tc->row_bits, c->rec_bytes,
           (double)c->n * c->p * 2.0 / (double)c->rec_bytes, err, pred, ok ? "valid" : "FAILED");
    free(rec2);
    free(y2);
    return ok;
}

int main(int argc, char **argv) {
    static const int dims[3] = {64, 128, 1024};
    int reps = 20, calib_reps = 20, quick = 0, i, di, all_ok = 1;
    for (i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--calib-reps") == 0 && i + 1 < argc) calib_reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else {
            fprintf(stderr, "usage: %s [--reps R] [--calib-reps R] [--quick]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1 || calib_reps < 1) return 2;
    printf("kvtc %s KVTC bench: 1024-token chunks, B = 2p bits/token, b_max 8, GAUSSIAN, no sink/window\n\n",
           kvtc_version());
    printf("| p    | stage                  | median     | p10        | p90        | reps | per token  |\n");
    printf("|------|------------------------|------------|------------|------------|------|------------|\n");
    for (di = 0; di < (quick ? 2 : 3); ++di) {
        bench_ctx c;
        kvtc_tc_params tp;
        size_t na;
        float *xcal, *x;
        memset(&c, 0, sizeof c);
        c.p = dims[di];
        c.n = 1024;
        c.n_cal = c.p * 16 > 4096 ? (size_t)c.p * 16 : 4096;
        c.n_cal_time = 4096;
        xcal = (float *)malloc(sizeof(float) * c.n_cal * (size_t)c.p);
        x = (float *)malloc(sizeof(float) * c.n * (size_t)c.p);
        make_data(xcal, c.n_cal, c.p, 1);
        make_data(x, c.n, c.p, 2);
        c.xcal = xcal;
        c.x = x;
        c.cp.dim = c.p;
        if (kvtc_tc_calibrate(&c.cp, xcal, c.n_cal, &c.cal) != KVTC_OK) return 1;
        memset(&tp, 0, sizeof tp);
        c.budget = tp.budget_bits = 2 * c.p;
        tp.n_sink = KVTC_TC_NONE;
        tp.n_window = KVTC_TC_NONE;
        if (kvtc_tc_create(&tp, c.cal, &c.tc) != KVTC_OK || kvtc_tc_chunk_bytes(c.tc, c.n, &c.rec_bytes) != KVTC_OK ||
            kvtc_tc_scratch_bytes(c.tc, c.n, &c.scratch_bytes) != KVTC_OK ||
            kvtc_bit_alloc_scratch_bytes(c.p, &c.alloc_bytes) != KVTC_OK)
            return 1;
        na = (size_t)c.tc->n_active;
        c.rec = (uint8_t *)malloc(c.rec_bytes);
        c.scratch = malloc(c.scratch_bytes);
        c.alloc_scratch = malloc(c.alloc_bytes);
        c.bits = (uint8_t *)malloc((size_t)c.p);
        c.y = (float *)malloc(sizeof(float) * c.n * (size_t)c.p);
        c.z = (float *)malloc(sizeof(float) * c.n * (na ? na : 1));
        c.xc = (float *)malloc(sizeof(float) * KVTC__TC_BLOCK * (size_t)c.p);
        c.idx = (uint16_t *)malloc(sizeof(uint16_t) * c.n * (na ? na : 1));
        c.comps = (kvtc__tc_comp *)malloc(sizeof(kvtc__tc_comp) * (na ? na : 1));
        c.wact = (uint8_t *)malloc(na ? na : 1);
        c.params = (uint8_t *)malloc(8 * (na ? na : 1));
        c.f16 = (uint8_t *)malloc(2 * c.n * (size_t)c.p);
        if (!validate(&c)) {
            printf("| %4d | FAILED validation: not timed |\n", c.p);
            all_ok = 0;
        } else {
            size_t n = c.n;
            print_row(c.p, "calibrate (4096 vec)", bench_time(&c, st_calibrate, c.p >= 1024 ? calib_reps : reps),
                      c.p >= 1024 ? calib_reps : reps, 0);
            print_row(c.p, "allocate", bench_time(&c, st_allocate, reps), reps, 0);
            print_row(c.p, "project", bench_time(&c, st_project, reps), reps, n);
            print_row(c.p, "quantize", bench_time(&c, st_quantize, reps), reps, n);
            print_row(c.p, "pack", bench_time(&c, st_pack, reps), reps, n);
            print_row(c.p, "unpack", bench_time(&c, st_unpack, reps), reps, n);
            print_row(c.p, "dequantize", bench_time(&c, st_dequantize, reps), reps, n);
            print_row(c.p, "reconstruct", bench_time(&c, st_reconstruct, reps), reps, n);
            print_row(c.p, "encode (public)", bench_time(&c, st_encode, reps), reps, n);
            print_row(c.p, "decode (public)", bench_time(&c, st_decode, reps), reps, n);
            print_row(c.p, "baseline: memcpy fp32", bench_time(&c, st_memcpy, reps), reps, n);
            print_row(c.p, "baseline: to fp16", bench_time(&c, st_fp16, reps), reps, n);
        }
        kvtc_tc_destroy(c.tc);
        kvtc_tc_calib_destroy(c.cal);
        free(xcal);
        free(x);
        free(c.rec);
        free(c.scratch);
        free(c.alloc_scratch);
        free(c.bits);
        free(c.y);
        free(c.z);
        free(c.xc);
        free(c.idx);
        free(c.comps);
        free(c.wact);
        free(c.params);
        free(c.f16);
    }
    { /* bit allocation alone: dim 64, B 358, b_max 16 (target <= 50 us) */
        double lam[64], *t = (double *)malloc(sizeof(double) * (size_t)(reps * 50));
        uint8_t bits[64];
        size_t bytes;
        void *s;
        bench_stats st;
        int r, k;
        for (k = 0; k < 64; ++k) lam[k] = pow(k + 1.0, -1.5);
        kvtc_bit_alloc_scratch_bytes(64, &bytes);
        s = malloc(bytes);
        kvtc_bit_alloc(lam, 64, 358, 16, bits, 64, s, bytes, NULL);
        for (r = 0; r < reps * 50; ++r) {
            double t0 = now_s();
            kvtc_bit_alloc(lam, 64, 358, 16, bits, 64, s, bytes, NULL);
            t[r] = now_s() - t0;
        }
        st = stats_of(t, reps * 50);
        print_row(64, "bit_alloc B=358 bmax=16", st, reps * 50, 0);
        printf("\nbit allocation, dim 64, B 358, b_max 16: median %.2f us (target <= 50 us): %s\n", st.med * 1e6,
               st.med <= 50e-6 ? "met" : "MISSED");
        free(s);
        free(t);
    }
    return all_ok ? 0 : 1;
}
