/* kvtc GPU tests of KVTC transform coding (kvtc_cuda.cuh >>tc-gpu) against kvtc.h's kvtc_tc_encode / kvtc_tc_decode.
 * nvcc -std=c++17 -O2 -arch=sm_90 -I. -DKVTC_CUDA_MINIMAL tests/test_tc_cuda.cu -o build/test_tc_cuda && ./build/test_tc_cuda [filter|quick]
 * Without a CUDA device every test reports SKIP. Ends with "N passed, N failed, N skipped".
 * Parity lines ("parity: ...") give the counts the issue asks for: record bytes, quantizer cells that differ
 * from the CPU's (projection summed in another order), reconstruction error, cosine and ratio of both paths. */
#include <stdio.h>
#define KVTC_CUDA_LOG(call, err, file, line) fprintf(stderr, "  %s:%d: %s: %s\n", file, line, call, cudaGetErrorString(err))
#define KVTC_IMPLEMENTATION
#define KVTC_CUDA_IMPLEMENTATION
#include "kvtc_cuda.cuh"
#include "tests/test_common.h"
#include <algorithm>
#include <vector>

static int g_have_device = 0;
static char g_skip_reason[256];
static int g_quick = 0; /* "quick": smaller sizes (for compute-sanitizer) */

#define CUDA_OK(call)                                                                                                  \
    do {                                                                                                               \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess) {                                                                                       \
            printf("  %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));                           \
            return T_FAIL;                                                                                             \
        }                                                                                                              \
    } while (0)
#define NEED_DEVICE()                                                                                                  \
    do {                                                                                                               \
        if (!g_have_device) {                                                                                          \
            printf("  skipped: %s\n", g_skip_reason);                                                                  \
            return T_SKIP;                                                                                             \
        }                                                                                                              \
    } while (0)
#define RUN(call)                                                                                                      \
    do {                                                                                                               \
        int r_ = (call);                                                                                               \
        if (r_ != T_PASS) return r_;                                                                                   \
    } while (0)

struct dbuf {
    void *p = nullptr;
    size_t n = 0;
    explicit dbuf(size_t bytes) : n(bytes) {
        if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) p = nullptr;
    }
    ~dbuf() { cudaFree(p); }
    dbuf(const dbuf &) = delete;
    dbuf &operator=(const dbuf &) = delete;
};

/* ---- coders and plans ------------------------------------------------------ */
/* A random linear model per "part" (head_dim coordinates): x = mu + R (s .* g), s_k = (k+1)^-0.8. */
struct partgen {
    int d;
    std::vector<float> mu, R, s;
};
static void partgen_make(partgen &pg, int d, uint64_t seed) {
    kvtc_rng r;
    kvtc_rng_seed(&r, seed);
    pg.d = d;
    pg.mu.resize(d);
    pg.R.resize((size_t)d * d);
    pg.s.resize(d);
    for (int i = 0; i < d; ++i) pg.mu[i] = (float)(0.3 * kvtc_rng_gaussian(&r));
    for (size_t i = 0; i < pg.R.size(); ++i) pg.R[i] = (float)(kvtc_rng_gaussian(&r) / sqrt((double)d));
    for (int k = 0; k < d; ++k) pg.s[k] = (float)pow(k + 1.0, -0.8) * 2.0f;
}
static void partgen_sample(const partgen &pg, kvtc_rng *r, float *out) {
    std::vector<double> g(pg.d);
    for (int k = 0; k < pg.d; ++k) g[k] = kvtc_rng_gaussian(r) * pg.s[k];
    for (int i = 0; i < pg.d; ++i) {
        double acc = pg.mu[i];
        for (int k = 0; k < pg.d; ++k) acc += pg.R[(size_t)i * pg.d + k] * g[k];
        out[i] = (float)acc;
    }
}

struct tcset {
    std::vector<kvtc_tc_calib *> calibs;
    std::vector<kvtc_tc *> tcs;
    ~tcset() {
        for (kvtc_tc *t : tcs) kvtc_tc_destroy(t);
        for (kvtc_tc_calib *c : calibs) kvtc_tc_calib_destroy(c);
    }
};

/* Coders for G groups of dim p calibrated on cal (G x n_cal x p). */
static int tcset_make(tcset &s, int G, int p, const std::vector<float> &cal, size_t n_cal, const kvtc_tc_params &tp) {
    for (int g = 0; g < G; ++g) {
        kvtc_tc_calib_params cp;
        memset(&cp, 0, sizeof cp);
        cp.dim = p;
        kvtc_tc_calib *c = nullptr;
        CHECK_OK(kvtc_tc_calibrate(&cp, cal.data() + (size_t)g * n_cal * p, n_cal, &c));
        s.calibs.push_back(c);
        kvtc_tc *t = nullptr;
        CHECK_OK(kvtc_tc_create(&tp, c, &t));
        s.tcs.push_back(t);
    }
    return T_PASS;
}

struct gplan {
    kvtc_cuda_tc plan;
    dbuf *mem = nullptr;
    ~gplan() { delete mem; }
};
static int gplan_make(gplan &gp, const kvtc_cuda_tc_params &p, const tcset &s) {
    size_t pb, ub;
    const kvtc_tc *const *t = s.tcs.data();
    CHECK_OK(kvtc_cuda_tc_plan_bytes(&p, t, (int)s.tcs.size(), &pb, &ub));
    gp.mem = new dbuf(pb);
    dbuf up(ub);
    CHECK(gp.mem->p && up.p);
    CHECK_OK(kvtc_cuda_tc_plan_init(&p, t, (int)s.tcs.size(), gp.mem->p, pb, up.p, ub, &gp.plan, 0));
    CUDA_OK(cudaStreamSynchronize(0));
    return T_PASS;
}

static kvtc_tc_params tc_params(kvtc_tc_quantizer q, int budget, int max_bits, int sink, int window) {
    kvtc_tc_params t;
    memset(&t, 0, sizeof t);
    t.quantizer = q;
    t.budget_bits = budget;
    t.max_bits = max_bits;
    t.n_sink = sink;
    t.n_window = window;
    return t;
}

/* ---- comparisons ------------------------------------------------------------- */
struct parity {
    long long records = 0, records_same = 0, cells = 0, cells_diff = 0, side = 0, side_diff = 0;
    long long other_bytes_diff = 0; /* header (w/o checksum), widths, sink/window bytes */
};

/* Compare two records of coder tc (same chunk): exact byte equality, or per section. */
static int record_compare(const kvtc_tc *tc, const unsigned char *a, const unsigned char *b, size_t bytes, parity *pr) {
    kvtc_tc_chunk_header ha, hb;
    CHECK_OK(kvtc_tc_chunk_info(a, bytes, &ha));
    CHECK_OK(kvtc_tc_chunk_info(b, bytes, &hb));
    CHECK(ha.record_bytes == bytes && hb.record_bytes == bytes);
    pr->records++;
    if (memcmp(a, b, bytes) == 0) {
        pr->records_same++;
    }
    const int rank = tc->calib->rank, p = tc->calib->dim, na = tc->n_active;
    size_t nu = 0;
    for (int i = 0; i < rank; ++i) nu += tc->widths[i] > 0 && (tc->params.quantizer == KVTC_TC_QUANT_UNIFORM || tc->widths[i] > 8);
    const size_t params = 64 + rank, sink = params + 8 * nu, idx = sink + 2 * (size_t)p * (ha.n_sink + ha.n_window);
    for (size_t i = 0; i < params; ++i)
        if ((i < 48 || i >= 56) && a[i] != b[i]) pr->other_bytes_diff++;
    for (size_t i = sink; i < idx; ++i) pr->other_bytes_diff += a[i] != b[i];
    for (size_t u = 0; u < nu; ++u) {
        pr->side++;
        pr->side_diff += memcmp(a + params + 8 * u, b + params + 8 * u, 8) != 0;
    }
    const size_t m = ha.n_tokens - ha.n_sink - ha.n_window;
    if (m > 0 && na > 0) {
        std::vector<uint8_t> w(na);
        for (int k = 0; k < na; ++k) w[k] = tc->widths[tc->active[k]];
        std::vector<uint16_t> ia(m * na), ib(m * na);
        CHECK_OK(kvtc_unpack_var(a + idx, bytes - idx, m, w.data(), na, ia.data(), ia.size()));
        CHECK_OK(kvtc_unpack_var(b + idx, bytes - idx, m, w.data(), na, ib.data(), ib.size()));
        for (size_t i = 0; i < ia.size(); ++i) pr->cells_diff += ia[i] != ib[i];
        pr->cells += (long long)ia.size();
    }
    return T_PASS;
}

static double mean_cosine(const float *x, const float *y, size_t n_vec, int d, long long *used) {
    double s = 0;
    long long k = 0;
    for (size_t v = 0; v < n_vec; ++v) {
        double xy = 0, xx = 0, yy = 0;
        int ok = 1;
        for (int j = 0; j < d; ++j) {
            double a = x[v * d + j], b = y[v * d + j];
            if (!isfinite(a) || !isfinite(b)) ok = 0;
            xy += a * b, xx += a * a, yy += b * b;
        }
        if (!ok || xx == 0 || yy == 0) continue;
        s += xy / sqrt(xx * yy);
        ++k;
    }
    if (used) *used = k;
    return k ? s / k : 1.0;
}

/* ---- flat encode/decode against kvtc_tc_encode/decode --------------------------- */
struct flat_cfg {
    int G, p, n;
    kvtc_cuda_tc_gemm gemm;
    kvtc_tc_quantizer q;
    int budget, max_bits, sink, window;
    int anomalies; /* NaN/Inf/huge values planted */
};

static const char *gemm_name(kvtc_cuda_tc_gemm g) {
    return g == KVTC_CUDA_TC_GEMM_EXACT ? "EXACT" : g == KVTC_CUDA_TC_GEMM_F16 ? "F16" : "TF32X3";
}

static int flat_case(const flat_cfg &c, uint64_t seed, parity *pr, double *rec_err, double *cos_diff) {
    const int G = c.G, p = c.p, n = c.n;
    const size_t n_cal = (size_t)std::max(4 * p, 512);
    std::vector<partgen> gens(G);
    for (int g = 0; g < G; ++g) partgen_make(gens[g], p, seed * 100 + g);
    std::vector<float> cal((size_t)G * n_cal * p), x((size_t)G * n * p);
    kvtc_rng r;
    kvtc_rng_seed(&r, seed);
    for (int g = 0; g < G; ++g) {
        for (size_t t = 0; t < n_cal; ++t) partgen_sample(gens[g], &r, &cal[((size_t)g * n_cal + t) * p]);
        for (int t = 0; t < n; ++t) partgen_sample(gens[g], &r, &x[((size_t)g * n + t) * p]);
    }
    if (c.anomalies && n > 6) {
        x[((size_t)0 * n + n / 2) * p + 3] = NAN;                /* coded token */
        x[((size_t)(G - 1) * n + 1) * p + 0] = INFINITY;         /* sink token */
        x[((size_t)(G - 1) * n + n - 1) * p + 2] = -INFINITY;    /* window token */
        /* fp16 overflow in a sink: ERR_RANGE. Without sinks token 0 is coded, and F16 cannot take |x - mu| > 65504
           (kvtc_cuda.cuh >>tc-gpu: it becomes Inf and spoils the chunk's UNIFORM ranges), so F16 then goes without it */
        if (G > 1 && (c.sink != KVTC_TC_NONE || c.gemm != KVTC_CUDA_TC_GEMM_F16)) x[((size_t)1 * n + 0) * p + 5] = 1e5f;
        /* large, finite, coded: with a UNIFORM quantizer it sets the range of every component, and F16's
           2^-11 error on it moves lo/scale enough to shift whole grids, so F16 gets it only with GAUSSIAN */
        if (c.q == KVTC_TC_QUANT_GAUSSIAN || c.gemm != KVTC_CUDA_TC_GEMM_F16) x[((size_t)0 * n + n / 3) * p + 1] = 3e4f;
    }
    tcset s;
    RUN(tcset_make(s, G, p, cal, n_cal, tc_params(c.q, c.budget, c.max_bits, c.sink, c.window)));
    kvtc_cuda_tc_params gpp;
    memset(&gpp, 0, sizeof gpp);
    gpp.head_dim = p;
    gpp.n_layers = G / 2 > 0 && G % 2 == 0 ? G / 2 : 1;
    gpp.n_kv_heads = 1;
    gpp.kv = G % 2 == 0 ? KVTC_CUDA_TC_KV_SEPARATE : KVTC_CUDA_TC_KV_CONCAT;
    if (G % 2 != 0) { /* odd G: CONCAT groups of head_dim p/2 (any p works for flat data) */
        if (p % 4 != 0 || G != 1) {
            printf("  flat case needs even G or G = 1 with p %% 4 == 0\n");
            return T_FAIL;
        }
        gpp.head_dim = p / 2;
    }
    gpp.gemm = c.gemm;
    gplan gp;
    RUN(gplan_make(gp, gpp, s));
    size_t rb, wb;
    CHECK_OK(kvtc_cuda_tc_records_bytes(&gp.plan, n, &rb));
    CHECK_OK(kvtc_cuda_tc_workspace_bytes(&gp.plan, n, &wb));
    std::vector<size_t> off(G), len(G);
    CHECK_OK(kvtc_cuda_tc_record_offsets(&gp.plan, n, off.data(), len.data(), G));
    /* CPU */
    std::vector<unsigned char> rec_cpu(rb, 0), rec_gpu(rb);
    std::vector<kvtc_status> st_cpu(G);
    size_t sc;
    CHECK_OK(kvtc_tc_scratch_bytes(s.tcs[0], n, &sc));
    for (int g = 1; g < G; ++g) {
        size_t t2;
        CHECK_OK(kvtc_tc_scratch_bytes(s.tcs[g], n, &t2));
        sc = std::max(sc, t2);
    }
    std::vector<double> scratch(sc / 8 + 2);
    for (int g = 0; g < G; ++g) {
        size_t bytes;
        CHECK_OK(kvtc_tc_chunk_bytes(s.tcs[g], n, &bytes));
        CHECK(bytes == len[g]);
        st_cpu[g] = kvtc_tc_encode(s.tcs[g], &x[(size_t)g * n * p], n, &rec_cpu[off[g]], bytes, scratch.data(), sc);
        CHECK(st_cpu[g] == KVTC_OK || st_cpu[g] == KVTC_ERR_NONFINITE || st_cpu[g] == KVTC_ERR_RANGE);
    }
    /* GPU encode */
    dbuf dx(x.size() * 4), drec(rb), drec2(rb), dws(wb), dst(G * 4), dout(x.size() * 4);
    CHECK(dx.p && drec.p && drec2.p && dws.p && dst.p && dout.p);
    CUDA_OK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemset(drec.p, 0xA5, rb)); /* poison: every record byte must be written */
    CHECK_OK(kvtc_cuda_tc_encode(&gp.plan, (const float *)dx.p, n, drec.p, rb, (int32_t *)dst.p, dws.p, wb, nullptr, 0));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<int32_t> st_gpu(G);
    CUDA_OK(cudaMemcpy(rec_gpu.data(), drec.p, rb, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(st_gpu.data(), dst.p, G * 4, cudaMemcpyDeviceToHost));
    for (int g = 0; g < G; ++g) {
        if (st_gpu[g] != (int32_t)st_cpu[g])
            printf("  group %d: GPU status %s, CPU %s\n", g, kvtc_status_string((kvtc_status)st_gpu[g]),
                   kvtc_status_string(st_cpu[g]));
        CHECK(st_gpu[g] == (int32_t)st_cpu[g]);
        RUN(record_compare(s.tcs[g], &rec_cpu[off[g]], &rec_gpu[off[g]], len[g], pr));
    }
    /* CPU decodes the GPU's records, the GPU decodes the CPU's */
    std::vector<float> dec_cpu(x.size()), dec_gpu_of_cpu(x.size()), dec_cpu_of_gpu(x.size()), dec_gpu(x.size());
    for (int g = 0; g < G; ++g) {
        CHECK_OK(kvtc_tc_decode(s.tcs[g], &rec_cpu[off[g]], len[g], &dec_cpu[(size_t)g * n * p], (size_t)n * p,
                                scratch.data(), sc));
        CHECK_OK(kvtc_tc_decode(s.tcs[g], &rec_gpu[off[g]], len[g], &dec_cpu_of_gpu[(size_t)g * n * p], (size_t)n * p,
                                scratch.data(), sc));
    }
    CUDA_OK(cudaMemcpy(drec2.p, rec_cpu.data(), rb, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemset(dout.p, 0xff, x.size() * 4));
    CHECK_OK(kvtc_cuda_tc_decode(&gp.plan, drec2.p, rb, n, (float *)dout.p, x.size(), (int32_t *)dst.p, dws.p, wb, nullptr, 0));
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(dec_gpu_of_cpu.data(), dout.p, x.size() * 4, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(st_gpu.data(), dst.p, G * 4, cudaMemcpyDeviceToHost));
    for (int g = 0; g < G; ++g) CHECK(st_gpu[g] == KVTC_OK);
    CHECK_OK(kvtc_cuda_tc_decode(&gp.plan, drec.p, rb, n, (float *)dout.p, x.size(), (int32_t *)dst.p, dws.p, wb, nullptr, 0));
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(dec_gpu.data(), dout.p, x.size() * 4, cudaMemcpyDeviceToHost));
    double e2 = 0, r2 = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        CHECK(isfinite(dec_gpu_of_cpu[i]) || !isfinite(dec_cpu[i]));
        double d = (double)dec_gpu_of_cpu[i] - dec_cpu[i];
        e2 += d * d, r2 += (double)dec_cpu[i] * dec_cpu[i];
    }
    *rec_err = r2 > 0 ? sqrt(e2 / r2) : sqrt(e2);
    if (c.gemm == KVTC_CUDA_TC_GEMM_EXACT) {
        CHECK(memcmp(dec_gpu_of_cpu.data(), dec_cpu.data(), x.size() * 4) == 0);
        CHECK(memcmp(dec_cpu_of_gpu.data(), dec_cpu.data(), x.size() * 4) == 0);
    }
    long long u1, u2;
    double c_cpu = mean_cosine(x.data(), dec_cpu.data(), (size_t)G * n, p, &u1);
    double c_gpu = mean_cosine(x.data(), dec_gpu.data(), (size_t)G * n, p, &u2);
    *cos_diff = fabs(c_cpu - c_gpu);
    CHECK(u1 == u2);
    return T_PASS;
}

static int run_flat(const flat_cfg *cs, int nc, kvtc_cuda_tc_gemm gemm, double max_rate, double max_err) {
    parity pr;
    double worst_err = 0, worst_cos = 0;
    for (int i = 0; i < nc; ++i) {
        flat_cfg c = cs[i];
        c.gemm = gemm;
        if (g_quick && c.n > 200) c.n = 200;
        double e = 0, cd = 0;
        parity one;
        int rr = flat_case(c, 1000 + i * 7 + (int)gemm, &one, &e, &cd);
        if (rr != T_PASS) {
            printf("  case %d (G=%d p=%d n=%d %s q=%d B=%d) failed\n", i, c.G, c.p, c.n, gemm_name(gemm), (int)c.q, c.budget);
            return rr;
        }
        printf("  case %d: G=%d p=%d n=%d q=%s B=%d: records same %lld/%lld, cells differ %lld/%lld, side %lld/%lld, "
               "rel err %.2e, |dcos| %.1e\n",
               i, c.G, c.p, c.n, c.q == KVTC_TC_QUANT_UNIFORM ? "uniform" : "gaussian", c.budget, one.records_same,
               one.records, one.cells_diff, one.cells, one.side_diff, one.side, e, cd);
        pr.records += one.records, pr.records_same += one.records_same, pr.cells += one.cells;
        pr.cells_diff += one.cells_diff, pr.side += one.side, pr.side_diff += one.side_diff;
        pr.other_bytes_diff += one.other_bytes_diff;
        worst_err = std::max(worst_err, e), worst_cos = std::max(worst_cos, cd);
        CHECK(one.other_bytes_diff == 0);
        CHECK(e <= max_err);
        CHECK(cd <= 1e-3);
    }
    const double rate = pr.cells ? (double)pr.cells_diff / (double)pr.cells : 0.0;
    printf("  parity: %s flat: %lld/%lld records identical, %lld of %lld cells differ (rate %.2e), %lld of %lld "
           "uniform (lo, scale) differ, reconstruction rel err <= %.2e, |cos gpu - cos cpu| <= %.1e\n",
           gemm_name(gemm), pr.records_same, pr.records, pr.cells_diff, pr.cells, rate, pr.side_diff, pr.side, worst_err,
           worst_cos);
    CHECK(rate <= max_rate);
    if (gemm == KVTC_CUDA_TC_GEMM_EXACT) CHECK(pr.records_same == pr.records);
    return T_PASS;
}

static const flat_cfg k_flat[] = {
    {2, 64, 300, KVTC_CUDA_TC_GEMM_DEFAULT, KVTC_TC_QUANT_GAUSSIAN, 128, 0, 4, 16, 1},
    {2, 80, 77, KVTC_CUDA_TC_GEMM_DEFAULT, KVTC_TC_QUANT_UNIFORM, 240, 0, KVTC_TC_NONE, 8, 1},
    {2, 96, 150, KVTC_CUDA_TC_GEMM_DEFAULT, KVTC_TC_QUANT_GAUSSIAN, 480, 12, 2, 3, 0},
    {2, 64, 5, KVTC_CUDA_TC_GEMM_DEFAULT, KVTC_TC_QUANT_UNIFORM, 128, 0, 4, 16, 0},  /* n < n_sink + n_window */
    {2, 64, 1, KVTC_CUDA_TC_GEMM_DEFAULT, KVTC_TC_QUANT_GAUSSIAN, 128, 0, KVTC_TC_NONE, KVTC_TC_NONE, 0},
    {1, 136, 261, KVTC_CUDA_TC_GEMM_DEFAULT, KVTC_TC_QUANT_GAUSSIAN, 200, 0, KVTC_TC_NONE, KVTC_TC_NONE, 1},
    {4, 32, 129, KVTC_CUDA_TC_GEMM_DEFAULT, KVTC_TC_QUANT_UNIFORM, 40, 4, 1, 1, 1},
    /* many records: warps of checksum pieces that span records (the one-token rows above: records shorter than
       one piece, two in a warp), records of hundreds of pieces with a short last one, index streams of several
       pack/unpack blocks, odd row widths */
    {48, 128, 1100, KVTC_CUDA_TC_GEMM_DEFAULT, KVTC_TC_QUANT_GAUSSIAN, 251, 0, 4, 16, 1},
    {64, 64, 130, KVTC_CUDA_TC_GEMM_DEFAULT, KVTC_TC_QUANT_UNIFORM, 97, 0, KVTC_TC_NONE, 3, 0},
};

static int test_flat_exact(void) {
    NEED_DEVICE();
    return run_flat(k_flat, (int)(sizeof k_flat / sizeof k_flat[0]), KVTC_CUDA_TC_GEMM_EXACT, 0.0, 0.0);
}
static int test_flat_tf32x3(void) {
    NEED_DEVICE();
    return run_flat(k_flat, (int)(sizeof k_flat / sizeof k_flat[0]), KVTC_CUDA_TC_GEMM_TF32X3, 1e-3, 1e-4);
}
static int test_flat_f16(void) {
    NEED_DEVICE();
    /* fp16 operands: a 9..12-bit UNIFORM component (case 2) has cells narrower than F16's rounding */
    return run_flat(k_flat, (int)(sizeof k_flat / sizeof k_flat[0]), KVTC_CUDA_TC_GEMM_F16, 1e-1, 5e-3);
}

/* ---- paged caches with RoPE ----------------------------------------------------- */
struct paged_cfg {
    int L, H, hd, gl, gh;
    kvtc_cuda_tc_kv kv;
    kvtc_rope_style style;
    int rotary;
    double theta;
    int n, start, bs;
    kvtc_tc_quantizer q;
    int budget_per_part; /* bits per token per head_dim part */
    int sink, window;
    int explicit_pos;
    kvtc_dtype dtype;
};

struct paged_out {
    parity pr;
    long long cache_vals = 0, cache_diff = 0, untouched_bad = 0;
    double rec_err = 0, cos_cpu = 0, cos_gpu = 0, ratio = 0;
};

static uint16_t to_dt(float v, kvtc_dtype dt) {
    return dt == KVTC_DTYPE_BF16 ? kvtc_f32_to_bf16(v) : kvtc_f32_to_f16(v);
}
static float from_dt(uint16_t h, kvtc_dtype dt) {
    return dt == KVTC_DTYPE_BF16 ? kvtc_bf16_to_f32(h) : kvtc_f16_to_f32(h);
}

/* Heads' data x[kind][layer][token][head][hd] (pre-RoPE) -> paged cache; CPU oracle; GPU compress/decompress. */
static int paged_case(const paged_cfg &c, kvtc_cuda_tc_gemm gemm, const float *given /* may be NULL */, uint64_t seed,
                      paged_out *out) {
    const int L = c.L, H = c.H, hd = c.hd, n = c.n, bs = c.bs;
    kvtc_cuda_tc_params gpp;
    memset(&gpp, 0, sizeof gpp);
    gpp.head_dim = hd;
    gpp.n_layers = L;
    gpp.n_kv_heads = H;
    gpp.group_layers = c.gl;
    gpp.group_heads = c.gh;
    gpp.kv = c.kv;
    gpp.rope.style = c.style;
    gpp.rope.rotary_dim = c.rotary;
    gpp.rope.theta = c.theta;
    gpp.gemm = gemm;
    int G, p;
    CHECK_OK(kvtc_cuda_tc_groups(&gpp, &G, &p));
    const int concat = c.kv == KVTC_CUDA_TC_KV_CONCAT, nparts = p / hd;
    /* part -> (kind, layer, head) of group g, as documented */
    auto part_of = [&](int g, int part, int *kind, int *layer, int *head) {
        int h = part % c.gh, rest = part / c.gh, l = rest % c.gl, k = rest / c.gl;
        int nlg = L / c.gl, nhg = H / c.gh, lgi, hgi;
        if (concat) *kind = k, lgi = g / nhg, hgi = g % nhg;
        else *kind = g / (nlg * nhg), lgi = (g % (nlg * nhg)) / nhg, hgi = g % nhg;
        *layer = lgi * c.gl + l, *head = hgi * c.gh + h;
    };
    /* data: pre-RoPE heads [kind][layer][token][head][hd], one generator per (kind, layer, head); real data
       (given) is coded and also serves as its own calibration set */
    const size_t n_cal = given ? (size_t)n : g_quick ? 256 : 1024;
    std::vector<float> xt((size_t)2 * L * n * H * hd), xc((size_t)2 * L * n_cal * H * hd);
    kvtc_rng r;
    kvtc_rng_seed(&r, seed);
    if (given) {
        memcpy(xt.data(), given, xt.size() * 4);
        memcpy(xc.data(), given, xc.size() * 4);
    } else {
        for (int kind = 0; kind < 2; ++kind)
            for (int l = 0; l < L; ++l)
                for (int h = 0; h < H; ++h) {
                    partgen pg;
                    partgen_make(pg, hd, seed * 1000 + (kind * L + l) * H + h);
                    for (size_t t = 0; t < n_cal; ++t)
                        partgen_sample(pg, &r, &xc[((((size_t)kind * L + l) * n_cal + t) * H + h) * hd]);
                    for (int t = 0; t < n; ++t) partgen_sample(pg, &r, &xt[((((size_t)kind * L + l) * n + t) * H + h) * hd]);
                }
    }
    /* calibration per group: concatenate its parts */
    std::vector<float> cal((size_t)G * n_cal * p);
    for (int g = 0; g < G; ++g)
        for (int part = 0; part < nparts; ++part) {
            int kind, layer, head;
            part_of(g, part, &kind, &layer, &head);
            for (size_t t = 0; t < n_cal; ++t)
                memcpy(&cal[((size_t)g * n_cal + t) * p + (size_t)part * hd],
                       &xc[((((size_t)kind * L + layer) * n_cal + t) * H + head) * hd], hd * 4);
        }
    tcset s;
    RUN(tcset_make(s, G, p, cal, n_cal, tc_params(c.q, c.budget_per_part * nparts, 0, c.sink, c.window)));
    gplan gp;
    RUN(gplan_make(gp, gpp, s));
    /* positions and the RoPE'd, rounded cache */
    std::vector<int64_t> pos(n);
    for (int t = 0; t < n; ++t) pos[t] = c.explicit_pos ? 3 * (c.start + t) + 11 : c.start + t;
    kvtc_rope_params rp;
    memset(&rp, 0, sizeof rp);
    rp.head_dim = hd;
    rp.n_heads = H;
    rp.style = c.style;
    rp.rotary_dim = c.rotary;
    rp.theta = c.theta;
    const int max_blocks = (c.start + n + bs - 1) / bs + 1, n_blocks = max_blocks + 5;
    std::vector<int32_t> table(max_blocks);
    {
        std::vector<int32_t> perm(n_blocks);
        for (int i = 0; i < n_blocks; ++i) perm[i] = i;
        for (int i = n_blocks - 1; i > 0; --i) std::swap(perm[i], perm[kvtc_rng_below(&r, (uint64_t)i + 1)]);
        for (int i = 0; i < max_blocks; ++i) table[i] = perm[i];
    }
    const size_t layer_elems = (size_t)n_blocks * bs * H * hd, cache_elems = (size_t)L * layer_elems;
    const uint16_t sentinel = 0x1234;
    std::vector<uint16_t> cache[2];
    for (int kind = 0; kind < 2; ++kind) cache[kind].assign(cache_elems, sentinel);
    for (int kind = 0; kind < 2; ++kind)
        for (int l = 0; l < L; ++l) {
            std::vector<float> tok((size_t)n * H * hd);
            memcpy(tok.data(), &xt[(((size_t)kind * L + l) * n) * H * hd], tok.size() * 4);
            if (kind == 0) CHECK_OK(kvtc_rope_apply(&rp, tok.data(), n, pos.data()));
            for (int t = 0; t < n; ++t) {
                const long long ti = c.start + t;
                const size_t base = l * layer_elems + ((size_t)table[ti / bs] * bs + ti % bs) * H * hd;
                for (int i = 0; i < H * hd; ++i) cache[kind][base + i] = to_dt(tok[(size_t)t * H * hd + i], c.dtype);
            }
        }
    /* CPU oracle: read back, RoPE removed, group vectors, kvtc_tc_encode */
    std::vector<float> X((size_t)G * n * p);
    std::vector<float> heads[2];
    for (int kind = 0; kind < 2; ++kind) {
        heads[kind].resize((size_t)L * n * H * hd);
        for (int l = 0; l < L; ++l) {
            float *tok = &heads[kind][(size_t)l * n * H * hd];
            for (int t = 0; t < n; ++t) {
                const long long ti = c.start + t;
                const size_t base = l * layer_elems + ((size_t)table[ti / bs] * bs + ti % bs) * H * hd;
                for (int i = 0; i < H * hd; ++i) tok[(size_t)t * H * hd + i] = from_dt(cache[kind][base + i], c.dtype);
            }
            if (kind == 0) CHECK_OK(kvtc_rope_remove(&rp, tok, n, pos.data()));
        }
    }
    for (int g = 0; g < G; ++g)
        for (int part = 0; part < nparts; ++part) {
            int kind, layer, head;
            part_of(g, part, &kind, &layer, &head);
            for (int t = 0; t < n; ++t)
                memcpy(&X[((size_t)g * n + t) * p + (size_t)part * hd], &heads[kind][(((size_t)layer * n + t) * H + head) * hd],
                       hd * 4);
        }
    size_t rb, wb;
    CHECK_OK(kvtc_cuda_tc_records_bytes(&gp.plan, n, &rb));
    CHECK_OK(kvtc_cuda_tc_workspace_bytes(&gp.plan, n, &wb));
    std::vector<size_t> off(G), len(G);
    CHECK_OK(kvtc_cuda_tc_record_offsets(&gp.plan, n, off.data(), len.data(), G));
    std::vector<unsigned char> rec_cpu(rb, 0), rec_gpu(rb);
    size_t sc = 0;
    for (int g = 0; g < G; ++g) {
        size_t t2;
        CHECK_OK(kvtc_tc_scratch_bytes(s.tcs[g], n, &t2));
        sc = std::max(sc, t2);
    }
    std::vector<double> scratch(sc / 8 + 2);
    std::vector<kvtc_status> st_cpu(G);
    size_t fp16_bytes = 0, rec_bytes = 0;
    for (int g = 0; g < G; ++g) {
        st_cpu[g] = kvtc_tc_encode(s.tcs[g], &X[(size_t)g * n * p], n, &rec_cpu[off[g]], len[g], scratch.data(), sc);
        CHECK(st_cpu[g] == KVTC_OK);
        fp16_bytes += (size_t)n * p * 2, rec_bytes += len[g];
    }
    out->ratio = (double)fp16_bytes / (double)rec_bytes;
    /* GPU compress */
    const size_t cb = cache_elems * (c.dtype == KVTC_DTYPE_F32 ? 4 : 2);
    dbuf dk(cb), dv(cb), dk2(cb), dv2(cb), dtab(max_blocks * 4), dpos(n * 8), drec(rb), drec2(rb), dws(wb), dst(G * 4);
    CHECK(dk.p && dv.p && dk2.p && dv2.p && dtab.p && dpos.p && drec.p && drec2.p && dws.p && dst.p);
    CHECK(c.dtype != KVTC_DTYPE_F32);
    CUDA_OK(cudaMemcpy(dk.p, cache[0].data(), cb, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dv.p, cache[1].data(), cb, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dtab.p, table.data(), max_blocks * 4, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dpos.p, pos.data(), n * 8, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemset(drec.p, 0x5a, rb));
    kvtc_cuda_tc_cache cc;
    memset(&cc, 0, sizeof cc);
    cc.d_k = dk.p;
    cc.d_v = dv.p;
    cc.dtype = c.dtype;
    cc.block_size = bs;
    cc.n_blocks = n_blocks;
    cc.d_block_table = (const int32_t *)dtab.p;
    cc.max_blocks = max_blocks;
    cc.start = c.start;
    cc.d_positions = c.explicit_pos ? (const int64_t *)dpos.p : nullptr;
    CHECK_OK(kvtc_cuda_tc_compress(&gp.plan, &cc, n, drec.p, rb, (int32_t *)dst.p, dws.p, wb, nullptr, 0));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<int32_t> st_gpu(G);
    CUDA_OK(cudaMemcpy(rec_gpu.data(), drec.p, rb, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(st_gpu.data(), dst.p, G * 4, cudaMemcpyDeviceToHost));
    for (int g = 0; g < G; ++g) {
        CHECK(st_gpu[g] == KVTC_OK);
        RUN(record_compare(s.tcs[g], &rec_cpu[off[g]], &rec_gpu[off[g]], len[g], &out->pr));
    }
    CHECK(out->pr.other_bytes_diff == 0);
    /* GPU decompress of the CPU's records into a sentinel-filled cache; CPU oracle: decode, RoPE, round */
    std::vector<float> dec((size_t)G * n * p);
    for (int g = 0; g < G; ++g)
        CHECK_OK(kvtc_tc_decode(s.tcs[g], &rec_cpu[off[g]], len[g], &dec[(size_t)g * n * p], (size_t)n * p, scratch.data(), sc));
    std::vector<uint16_t> want[2], got[2];
    for (int kind = 0; kind < 2; ++kind) want[kind].assign(cache_elems, sentinel);
    for (int kind = 0; kind < 2; ++kind)
        for (int l = 0; l < L; ++l) {
            std::vector<float> tok((size_t)n * H * hd);
            for (int g = 0; g < G; ++g)
                for (int part = 0; part < nparts; ++part) {
                    int kd, layer, head;
                    part_of(g, part, &kd, &layer, &head);
                    if (kd != kind || layer != l) continue;
                    for (int t = 0; t < n; ++t)
                        memcpy(&tok[((size_t)t * H + head) * hd], &dec[((size_t)g * n + t) * p + (size_t)part * hd], hd * 4);
                }
            if (kind == 0) CHECK_OK(kvtc_rope_apply(&rp, tok.data(), n, pos.data()));
            for (int t = 0; t < n; ++t) {
                const long long ti = c.start + t;
                const size_t base = l * layer_elems + ((size_t)table[ti / bs] * bs + ti % bs) * H * hd;
                for (int i = 0; i < H * hd; ++i) want[kind][base + i] = to_dt(tok[(size_t)t * H * hd + i], c.dtype);
            }
        }
    CUDA_OK(cudaMemcpy(dk2.p, std::vector<uint16_t>(cache_elems, sentinel).data(), cb, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dv2.p, std::vector<uint16_t>(cache_elems, sentinel).data(), cb, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(drec2.p, rec_cpu.data(), rb, cudaMemcpyHostToDevice));
    cc.d_k = dk2.p;
    cc.d_v = dv2.p;
    CHECK_OK(kvtc_cuda_tc_decompress(&gp.plan, drec2.p, rb, n, &cc, (int32_t *)dst.p, dws.p, wb, nullptr, 0));
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(st_gpu.data(), dst.p, G * 4, cudaMemcpyDeviceToHost));
    for (int g = 0; g < G; ++g) CHECK(st_gpu[g] == KVTC_OK);
    double e2 = 0, r2 = 0;
    for (int kind = 0; kind < 2; ++kind) {
        got[kind].resize(cache_elems);
        CUDA_OK(cudaMemcpy(got[kind].data(), kind ? dv2.p : dk2.p, cb, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < cache_elems; ++i) {
            if (want[kind][i] == sentinel && got[kind][i] != sentinel) out->untouched_bad++;
            if (want[kind][i] == sentinel) continue;
            out->cache_vals++;
            out->cache_diff += got[kind][i] != want[kind][i];
            const double a = from_dt(got[kind][i], c.dtype), b = from_dt(want[kind][i], c.dtype);
            e2 += (a - b) * (a - b), r2 += b * b;
        }
    }
    out->rec_err = r2 > 0 ? sqrt(e2 / r2) : 0;
    CHECK(out->untouched_bad == 0);
    /* both paths end to end: cosine of the decompressed cache against the original, per head vector */
    CUDA_OK(cudaMemcpy(drec2.p, rec_gpu.data(), rb, cudaMemcpyHostToDevice));
    CHECK_OK(kvtc_cuda_tc_decompress(&gp.plan, drec2.p, rb, n, &cc, (int32_t *)dst.p, dws.p, wb, nullptr, 0));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> orig, a_cpu, a_gpu;
    for (int kind = 0; kind < 2; ++kind) {
        CUDA_OK(cudaMemcpy(got[kind].data(), kind ? dv2.p : dk2.p, cb, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < cache_elems; ++i) {
            if (want[kind][i] == sentinel) continue;
            orig.push_back(from_dt(cache[kind][i], c.dtype));
            a_cpu.push_back(from_dt(want[kind][i], c.dtype));
            a_gpu.push_back(from_dt(got[kind][i], c.dtype));
        }
    }
    out->cos_cpu = mean_cosine(orig.data(), a_cpu.data(), orig.size() / hd, hd, nullptr);
    out->cos_gpu = mean_cosine(orig.data(), a_gpu.data(), orig.size() / hd, hd, nullptr);
    return T_PASS;
}

static const paged_cfg k_paged[] = {
    /* L, H, hd, gl, gh, kv, style, rotary, theta, n, start, bs, q, B/part, sink, window, explicit pos, dtype */
    {2, 2, 64, 1, 1, KVTC_CUDA_TC_KV_SEPARATE, KVTC_ROPE_HALF, 0, 10000.0, 300, 37, 16, KVTC_TC_QUANT_GAUSSIAN, 128, 4,
     32, 0, KVTC_DTYPE_F16},
    {2, 2, 64, 1, 2, KVTC_CUDA_TC_KV_SEPARATE, KVTC_ROPE_INTERLEAVED, 32, 500000.0, 211, 5, 16, KVTC_TC_QUANT_UNIFORM,
     160, 4, KVTC_TC_NONE, 1, KVTC_DTYPE_F16},
    {2, 2, 32, 2, 2, KVTC_CUDA_TC_KV_CONCAT, KVTC_ROPE_HALF, 0, 10000.0, 190, 0, 8, KVTC_TC_QUANT_GAUSSIAN, 48,
     KVTC_TC_NONE, 16, 0, KVTC_DTYPE_BF16},
    /* rotary_dim / 2 = 10, not a multiple of 4: gather and scatter one pair per thread (the others take 4) */
    {2, 2, 48, 1, 1, KVTC_CUDA_TC_KV_SEPARATE, KVTC_ROPE_HALF, 20, 10000.0, 150, 3, 16, KVTC_TC_QUANT_GAUSSIAN, 96, 2, 8,
     1, KVTC_DTYPE_F16},
};

static int run_paged(kvtc_cuda_tc_gemm gemm, double max_rate, double max_err) {
    for (size_t i = 0; i < sizeof k_paged / sizeof k_paged[0]; ++i) {
        paged_cfg c = k_paged[i];
        if (g_quick) c.n = c.n > 120 ? 120 : c.n;
        paged_out o;
        int rr = paged_case(c, gemm, nullptr, 77 + i, &o);
        if (rr != T_PASS) {
            printf("  paged case %zu failed\n", i);
            return rr;
        }
        const double rate = o.pr.cells ? (double)o.pr.cells_diff / o.pr.cells : 0.0;
        printf("  parity: %s paged case %zu (%s, %d layers x %d heads x %d, groups %dx%d%s, n=%d): records identical "
               "%lld/%lld, cells differ %lld/%lld (rate %.2e), side %lld/%lld; decompressed cache (CPU records): %lld of "
               "%lld values differ, rel err %.2e; ratio %.3f; cosine cpu %.6f gpu %.6f\n",
               gemm_name(gemm), i, c.dtype == KVTC_DTYPE_BF16 ? "bf16" : "fp16", c.L, c.H, c.hd, c.gl, c.gh,
               c.kv == KVTC_CUDA_TC_KV_CONCAT ? " KV concat" : "", c.n, o.pr.records_same, o.pr.records, o.pr.cells_diff,
               o.pr.cells, rate, o.pr.side_diff, o.pr.side, o.cache_diff, o.cache_vals, o.rec_err, o.ratio, o.cos_cpu,
               o.cos_gpu);
        CHECK(rate <= max_rate);
        CHECK(o.rec_err <= max_err);
        CHECK(fabs(o.cos_cpu - o.cos_gpu) <= 1e-3);
        if (gemm == KVTC_CUDA_TC_GEMM_EXACT) CHECK(o.pr.cells_diff <= 2 && o.cache_diff <= 8); /* RoPE cosines: last bits */
    }
    return T_PASS;
}

static int test_paged_exact(void) {
    NEED_DEVICE();
    return run_paged(KVTC_CUDA_TC_GEMM_EXACT, 1e-4, 1e-4);
}
static int test_paged_tf32x3(void) {
    NEED_DEVICE();
    return run_paged(KVTC_CUDA_TC_GEMM_TF32X3, 1e-3, 1e-3);
}
static int test_paged_f16(void) {
    NEED_DEVICE();
    return run_paged(KVTC_CUDA_TC_GEMM_F16, 5e-2, 1e-2);
}

/* ---- the real sample ------------------------------------------------------------- */
static int test_real_smollm2(void) {
    NEED_DEVICE();
    FILE *f = fopen("data/smollm2_kv.bin", "rb");
    if (!f) {
        printf("  skipped: data/smollm2_kv.bin not found (run from the repository root)\n");
        return T_SKIP;
    }
    unsigned char hdr[64];
    CHECK(fread(hdr, 1, 64, f) == 64);
    CHECK(memcmp(hdr, "KVTCKV01", 8) == 0);
    uint32_t u[8];
    memcpy(u, hdr + 8, 32);
    const int nl = (int)u[1], nh = (int)u[2], hd = (int)u[3], nt = (int)u[4];
    float theta;
    memcpy(&theta, hdr + 28, 4);
    CHECK(u[7] == 1 && u[6] == 0); /* fp16 payload, RoPE convention 0 (interleaved pairs) */
    std::vector<uint16_t> raw((size_t)2 * nl * nt * nh * hd);
    CHECK(fread(raw.data(), 2, raw.size(), f) == raw.size());
    fclose(f);
    const int n = g_quick ? 256 : nt;
    /* pre-RoPE heads in the layout paged_case takes: [kind][layer][token][head][hd] */
    std::vector<float> x((size_t)2 * nl * n * nh * hd);
    kvtc_rope_params rp;
    memset(&rp, 0, sizeof rp);
    rp.head_dim = hd;
    rp.n_heads = nh;
    rp.style = KVTC_ROPE_INTERLEAVED;
    rp.theta = theta;
    for (int kind = 0; kind < 2; ++kind)
        for (int l = 0; l < nl; ++l) {
            float *dst = &x[(((size_t)kind * nl + l) * n) * nh * hd];
            const uint16_t *src = &raw[(((size_t)kind * nl + l) * nt) * nh * hd];
            for (size_t i = 0; i < (size_t)n * nh * hd; ++i) dst[i] = kvtc_f16_to_f32(src[i]);
            if (kind == 0) CHECK_OK(kvtc_rope_remove(&rp, dst, n, nullptr));
        }
    /* per head and per layer, 8x-ish budgets (2 bits per coordinate), default sink/window */
    paged_cfg cs[2] = {
        {nl, nh, hd, 1, 1, KVTC_CUDA_TC_KV_SEPARATE, KVTC_ROPE_INTERLEAVED, 0, (double)theta, n, 0, 16,
         KVTC_TC_QUANT_GAUSSIAN, 2 * hd, 4, 16, 0, KVTC_DTYPE_F16},
        {nl, nh, hd, 1, nh, KVTC_CUDA_TC_KV_SEPARATE, KVTC_ROPE_INTERLEAVED, 0, (double)theta, n, 0, 16,
         KVTC_TC_QUANT_GAUSSIAN, 2 * hd, 4, 16, 0, KVTC_DTYPE_F16},
    };
    for (int i = 0; i < 2; ++i) {
        paged_out o;
        RUN(paged_case(cs[i], KVTC_CUDA_TC_GEMM_TF32X3, x.data(), 5 + i, &o));
        const double rate = o.pr.cells ? (double)o.pr.cells_diff / o.pr.cells : 0.0;
        printf("  parity: real SmolLM2 K/V (%d layers x %d heads x %d, n=%d, %s, TF32X3): records identical %lld/%lld, "
               "cells differ %lld/%lld (rate %.2e); cache values differ %lld/%lld (rel err %.2e); ratio %.3f; cosine "
               "cpu %.6f gpu %.6f\n",
               nl, nh, hd, n, i ? "per layer" : "per head", o.pr.records_same, o.pr.records, o.pr.cells_diff, o.pr.cells,
               rate, o.cache_diff, o.cache_vals, o.rec_err, o.ratio, o.cos_cpu, o.cos_gpu);
        CHECK(rate <= 1e-3);
        CHECK(fabs(o.cos_cpu - o.cos_gpu) <= 1e-3);
    }
    return T_PASS;
}

/* ---- bad arguments and bad records --------------------------------------------- */
static int test_bad_args(void) {
    NEED_DEVICE();
    const int p = 64, n = 100, G = 2;
    const size_t n_cal = 512;
    std::vector<float> cal((size_t)G * n_cal * p), x((size_t)G * n * p);
    kvtc_rng r;
    kvtc_rng_seed(&r, 9);
    partgen pg;
    partgen_make(pg, p, 3);
    for (size_t t = 0; t < (size_t)G * n_cal; ++t) partgen_sample(pg, &r, &cal[t * p]);
    for (size_t t = 0; t < (size_t)G * n; ++t) partgen_sample(pg, &r, &x[t * p]);
    tcset s;
    RUN(tcset_make(s, G, p, cal, n_cal, tc_params(KVTC_TC_QUANT_GAUSSIAN, 128, 0, 4, 8)));
    kvtc_cuda_tc_params gpp, bad, rr;
    memset(&gpp, 0, sizeof gpp);
    gpp.head_dim = p;
    gpp.n_layers = 1;
    gpp.n_kv_heads = 1;
    CHECK_ST(kvtc_cuda_tc_params_resolved(nullptr, &rr), KVTC_ERR_NULL);
    bad = gpp, bad.head_dim = 0;
    CHECK_ST(kvtc_cuda_tc_params_resolved(&bad, &rr), KVTC_ERR_DIM);
    bad = gpp, bad.head_dim = 63;
    CHECK_ST(kvtc_cuda_tc_params_resolved(&bad, &rr), KVTC_ERR_DIM);
    bad = gpp, bad.n_layers = 0;
    CHECK_ST(kvtc_cuda_tc_params_resolved(&bad, &rr), KVTC_ERR_ARG);
    bad = gpp, bad.n_layers = 3, bad.group_layers = 2;
    CHECK_ST(kvtc_cuda_tc_params_resolved(&bad, &rr), KVTC_ERR_ARG);
    bad = gpp, bad.gemm = (kvtc_cuda_tc_gemm)99;
    CHECK_ST(kvtc_cuda_tc_params_resolved(&bad, &rr), KVTC_ERR_ARG);
    bad = gpp, bad.kv = (kvtc_cuda_tc_kv)-1;
    CHECK_ST(kvtc_cuda_tc_params_resolved(&bad, &rr), KVTC_ERR_ARG);
    bad = gpp, bad.rope.rotary_dim = 33;
    CHECK_ST(kvtc_cuda_tc_params_resolved(&bad, &rr), KVTC_ERR_ARG);
    bad = gpp, bad.rope.theta = -1.0;
    CHECK_ST(kvtc_cuda_tc_params_resolved(&bad, &rr), KVTC_ERR_ARG);
    bad = gpp, bad.rope.theta = NAN;
    CHECK_ST(kvtc_cuda_tc_params_resolved(&bad, &rr), KVTC_ERR_ARG);
    bad = gpp, bad.keys_no_rope = 2;
    CHECK_ST(kvtc_cuda_tc_params_resolved(&bad, &rr), KVTC_ERR_ARG);
    CHECK_OK(kvtc_cuda_tc_params_resolved(&gpp, &rr));
    CHECK(rr.group_layers == 1 && rr.gemm == KVTC_CUDA_TC_GEMM_TF32X3 && rr.rope.theta == 10000.0 && rr.rope.rotary_dim == p);
    size_t pb, ub;
    const kvtc_tc *const *t = s.tcs.data();
    CHECK_ST(kvtc_cuda_tc_plan_bytes(&gpp, nullptr, G, &pb, &ub), KVTC_ERR_NULL);
    CHECK_ST(kvtc_cuda_tc_plan_bytes(&gpp, t, 1, &pb, &ub), KVTC_ERR_ARG);
    bad = gpp, bad.head_dim = 32;
    CHECK_ST(kvtc_cuda_tc_plan_bytes(&bad, t, G, &pb, &ub), KVTC_ERR_DIM);
    {
        const kvtc_tc *withnull[2] = {t[0], nullptr};
        CHECK_ST(kvtc_cuda_tc_plan_bytes(&gpp, withnull, G, &pb, &ub), KVTC_ERR_NULL);
        kvtc_tc *other = nullptr;
        kvtc_tc_params tp2 = tc_params(KVTC_TC_QUANT_GAUSSIAN, 128, 0, 2, 8); /* another n_sink */
        CHECK_OK(kvtc_tc_create(&tp2, s.calibs[1], &other));
        const kvtc_tc *mixed[2] = {t[0], other};
        kvtc_status st = kvtc_cuda_tc_plan_bytes(&gpp, mixed, G, &pb, &ub);
        kvtc_tc_destroy(other);
        CHECK_ST(st, KVTC_ERR_ARG);
    }
    CHECK_OK(kvtc_cuda_tc_plan_bytes(&gpp, t, G, &pb, &ub));
    dbuf pm(pb), up(ub);
    kvtc_cuda_tc plan;
    CHECK_ST(kvtc_cuda_tc_plan_init(&gpp, t, G, pm.p, pb - 1, up.p, ub, &plan, 0), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_cuda_tc_plan_init(&gpp, t, G, pm.p, pb, up.p, ub - 1, &plan, 0), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_cuda_tc_plan_init(&gpp, t, G, (char *)pm.p + 16, pb, up.p, ub, &plan, 0), KVTC_ERR_ARG);
    CHECK_ST(kvtc_cuda_tc_plan_init(&gpp, t, G, pm.p, pb, up.p, ub, nullptr, 0), KVTC_ERR_NULL);
    CHECK_OK(kvtc_cuda_tc_plan_init(&gpp, t, G, pm.p, pb, up.p, ub, &plan, 0));
    size_t rb, wb;
    CHECK_ST(kvtc_cuda_tc_records_bytes(&plan, 0, &rb), KVTC_ERR_ARG);
    CHECK_ST(kvtc_cuda_tc_records_bytes(&plan, (size_t)1 << 33, &rb), KVTC_ERR_ARG);
    CHECK_ST(kvtc_cuda_tc_workspace_bytes(&plan, 0, &wb), KVTC_ERR_ARG);
    CHECK_ST(kvtc_cuda_tc_records_bytes(nullptr, n, &rb), KVTC_ERR_NULL);
    CHECK_OK(kvtc_cuda_tc_records_bytes(&plan, n, &rb));
    CHECK_OK(kvtc_cuda_tc_workspace_bytes(&plan, n, &wb));
    size_t offs[2];
    CHECK_ST(kvtc_cuda_tc_record_offsets(&plan, n, offs, nullptr, 1), KVTC_ERR_SMALL);
    dbuf dx(x.size() * 4), drec(rb + 16), dws(wb + 256), dst(G * 4), dout(x.size() * 4);
    CUDA_OK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    const float *X = (const float *)dx.p;
    CHECK_ST(kvtc_cuda_tc_encode(&plan, X, n, drec.p, rb - 1, nullptr, dws.p, wb, nullptr, 0), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_cuda_tc_encode(&plan, X, n, drec.p, rb, nullptr, dws.p, wb - 1, nullptr, 0), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_cuda_tc_encode(&plan, X, n, (char *)drec.p + 8, rb, nullptr, dws.p, wb, nullptr, 0), KVTC_ERR_ARG);
    CHECK_ST(kvtc_cuda_tc_encode(&plan, X, n, drec.p, rb, nullptr, (char *)dws.p + 16, wb, nullptr, 0), KVTC_ERR_ARG);
    CHECK_ST(kvtc_cuda_tc_encode(&plan, nullptr, n, drec.p, rb, nullptr, dws.p, wb, nullptr, 0), KVTC_ERR_NULL);
    CHECK_ST(kvtc_cuda_tc_encode(&plan, X, 0, drec.p, rb, nullptr, dws.p, wb, nullptr, 0), KVTC_ERR_ARG);
    CHECK_ST(kvtc_cuda_tc_encode(nullptr, X, n, drec.p, rb, nullptr, dws.p, wb, nullptr, 0), KVTC_ERR_NULL);
    CHECK_ST(kvtc_cuda_tc_decode(&plan, drec.p, rb, n, (float *)dout.p, x.size() - 1, nullptr, dws.p, wb, nullptr, 0),
             KVTC_ERR_SMALL);
    CHECK_ST(kvtc_cuda_tc_decode(&plan, nullptr, rb, n, (float *)dout.p, x.size(), nullptr, dws.p, wb, nullptr, 0),
             KVTC_ERR_NULL);
    kvtc_cuda_tc_cache cc;
    memset(&cc, 0, sizeof cc);
    int32_t tab[16];
    for (int i = 0; i < 16; ++i) tab[i] = i;
    dbuf dtab(sizeof tab), dk(16 * 16 * p * 2), dv(16 * 16 * p * 2);
    CUDA_OK(cudaMemcpy(dtab.p, tab, sizeof tab, cudaMemcpyHostToDevice));
    cc.d_k = dk.p, cc.d_v = dv.p, cc.block_size = 16, cc.n_blocks = 16, cc.d_block_table = (const int32_t *)dtab.p;
    cc.max_blocks = 7; /* 100 tokens need 7 pages */
    CHECK_ST(kvtc_cuda_tc_compress(&plan, nullptr, n, drec.p, rb, nullptr, dws.p, wb, nullptr, 0), KVTC_ERR_NULL);
    kvtc_cuda_tc_cache cb = cc;
    cb.start = 13; /* tokens 13..112 need page 7 */
    CHECK_ST(kvtc_cuda_tc_compress(&plan, &cb, n, drec.p, rb, nullptr, dws.p, wb, nullptr, 0), KVTC_ERR_ARG);
    cb = cc, cb.dtype = (kvtc_dtype)9;
    CHECK_ST(kvtc_cuda_tc_compress(&plan, &cb, n, drec.p, rb, nullptr, dws.p, wb, nullptr, 0), KVTC_ERR_ARG);
    cb = cc, cb.d_v = nullptr;
    CHECK_ST(kvtc_cuda_tc_compress(&plan, &cb, n, drec.p, rb, nullptr, dws.p, wb, nullptr, 0), KVTC_ERR_NULL);
    cb = cc, cb.block_size = 0;
    CHECK_ST(kvtc_cuda_tc_compress(&plan, &cb, n, drec.p, rb, nullptr, dws.p, wb, nullptr, 0), KVTC_ERR_ARG);
    cb = cc, cb.start = -1;
    CHECK_ST(kvtc_cuda_tc_compress(&plan, &cb, n, drec.p, rb, nullptr, dws.p, wb, nullptr, 0), KVTC_ERR_ARG);
    /* a page outside the cache: ERR_ARG in the record's status (that token reads as zeros), both directions */
    CUDA_OK(cudaMemset(dk.p, 0, 16 * 16 * p * 2));
    CUDA_OK(cudaMemset(dv.p, 0, 16 * 16 * p * 2));
    tab[3] = 99;
    CUDA_OK(cudaMemcpy(dtab.p, tab, sizeof tab, cudaMemcpyHostToDevice));
    CHECK_OK(kvtc_cuda_tc_compress(&plan, &cc, n, drec.p, rb, (int32_t *)dst.p, dws.p, wb, nullptr, 0));
    int32_t sts[2];
    CUDA_OK(cudaMemcpy(sts, dst.p, 8, cudaMemcpyDeviceToHost));
    CHECK(sts[0] == KVTC_ERR_ARG && sts[1] == KVTC_ERR_ARG);
    CHECK_OK(kvtc_cuda_tc_decompress(&plan, drec.p, rb, n, &cc, (int32_t *)dst.p, dws.p, wb, nullptr, 0));
    CUDA_OK(cudaMemcpy(sts, dst.p, 8, cudaMemcpyDeviceToHost));
    CHECK(sts[0] == KVTC_ERR_ARG && sts[1] == KVTC_ERR_ARG);
    /* damaged records: the GPU's status equals kvtc_tc_decode's */
    CHECK_OK(kvtc_cuda_tc_encode(&plan, X, n, drec.p, rb, (int32_t *)dst.p, dws.p, wb, nullptr, 0));
    std::vector<unsigned char> good(rb), dam;
    CUDA_OK(cudaMemcpy(good.data(), drec.p, rb, cudaMemcpyDeviceToHost));
    size_t off[2], len[2], sc;
    CHECK_OK(kvtc_cuda_tc_record_offsets(&plan, n, off, len, 2));
    CHECK_OK(kvtc_tc_scratch_bytes(s.tcs[1], n, &sc));
    std::vector<double> scratch(sc / 8 + 2);
    std::vector<float> xo((size_t)n * p);
    struct damage { size_t at; unsigned char x; const char *what; };
    const damage ds[] = {{0, 0x01, "magic"}, {4, 0x02, "version"}, {6, 0x03, "quantizer"}, {7, 0x01, "flags"},
                         {12, 0x01, "rank"}, {16, 0x01, "n_tokens"}, {20, 0x01, "n_sink"}, {28, 0x01, "row_bits"},
                         {33, 0x10, "calib id"}, {40, 0x01, "record_bytes"}, {50, 0x40, "checksum"}, {57, 0x01, "reserved"},
                         {64, 0x01, "a width"}, {len[1] - 1, 0x80, "last index byte"}, {len[1] / 2, 0x04, "payload"}};
    for (const damage &d : ds) {
        dam = good;
        dam[off[1] + d.at] ^= d.x;
        kvtc_status want = kvtc_tc_decode(s.tcs[1], &dam[off[1]], len[1], xo.data(), xo.size(), scratch.data(), sc);
        CUDA_OK(cudaMemcpy(drec.p, dam.data(), rb, cudaMemcpyHostToDevice));
        CHECK_OK(kvtc_cuda_tc_decode(&plan, drec.p, rb, n, (float *)dout.p, x.size(), (int32_t *)dst.p, dws.p, wb, nullptr, 0));
        CUDA_OK(cudaMemcpy(sts, dst.p, 8, cudaMemcpyDeviceToHost));
        if (sts[1] != (int32_t)want)
            printf("  damaged %s: GPU %s, CPU %s\n", d.what, kvtc_status_string((kvtc_status)sts[1]), kvtc_status_string(want));
        CHECK(want != KVTC_OK);
        CHECK(sts[0] == KVTC_OK);
        CHECK(sts[1] == (int32_t)want);
    }
    /* a record of another calibration: MISMATCH */
    {
        dam = good;
        kvtc_tc_chunk_header h0;
        CHECK_OK(kvtc_tc_chunk_info(&dam[off[0]], len[0], &h0));
        CUDA_OK(cudaMemcpy(drec.p, dam.data(), rb, cudaMemcpyHostToDevice));
        /* swap the two records' ids (they have different calibrations) */
        for (int i = 0; i < 8; ++i) std::swap(dam[off[0] + 32 + i], dam[off[1] + 32 + i]);
        CUDA_OK(cudaMemcpy(drec.p, dam.data(), rb, cudaMemcpyHostToDevice));
        CHECK_OK(kvtc_cuda_tc_decode(&plan, drec.p, rb, n, (float *)dout.p, x.size(), (int32_t *)dst.p, dws.p, wb, nullptr, 0));
        CUDA_OK(cudaMemcpy(sts, dst.p, 8, cudaMemcpyDeviceToHost));
        CHECK(sts[0] == KVTC_ERR_MISMATCH && sts[1] == KVTC_ERR_MISMATCH);
    }
    /* a record of another length than this call's (valid, but n_tokens differ): UNSUPPORTED / CORRUPT */
    return T_PASS;
}

/* ---- timing and graph capture ------------------------------------------------------ */
static int test_timing_graph(void) {
    NEED_DEVICE();
    paged_cfg c = k_paged[0];
    const int p = c.hd, n = g_quick ? 100 : 400, G = 2 * c.L * c.H;
    const size_t n_cal = 512;
    std::vector<float> cal((size_t)G * n_cal * p), x((size_t)G * n * p);
    kvtc_rng r;
    kvtc_rng_seed(&r, 21);
    partgen pg;
    partgen_make(pg, p, 4);
    for (size_t t = 0; t < (size_t)G * n_cal; ++t) partgen_sample(pg, &r, &cal[t * p]);
    for (size_t t = 0; t < (size_t)G * n; ++t) partgen_sample(pg, &r, &x[t * p]);
    tcset s;
    RUN(tcset_make(s, G, p, cal, n_cal, tc_params(KVTC_TC_QUANT_GAUSSIAN, 2 * p, 0, 4, 16)));
    kvtc_cuda_tc_params gpp;
    memset(&gpp, 0, sizeof gpp);
    gpp.head_dim = p, gpp.n_layers = c.L, gpp.n_kv_heads = c.H;
    gplan gp;
    RUN(gplan_make(gp, gpp, s));
    size_t rb, wb;
    CHECK_OK(kvtc_cuda_tc_records_bytes(&gp.plan, n, &rb));
    CHECK_OK(kvtc_cuda_tc_workspace_bytes(&gp.plan, n, &wb));
    const int bs = 16, nb = (n + bs - 1) / bs;
    std::vector<int32_t> tab(nb);
    for (int i = 0; i < nb; ++i) tab[i] = nb - 1 - i;
    std::vector<uint16_t> kc((size_t)c.L * nb * bs * c.H * p), vc(kc.size());
    for (size_t i = 0; i < kc.size(); ++i) kc[i] = kvtc_f32_to_f16((float)kvtc_rng_gaussian(&r)), vc[i] = kvtc_f32_to_f16((float)kvtc_rng_gaussian(&r));
    dbuf dk(kc.size() * 2), dv(kc.size() * 2), dtab(nb * 4), drec(rb), drec2(rb), dws(wb), dk2(kc.size() * 2), dv2(kc.size() * 2);
    CUDA_OK(cudaMemcpy(dk.p, kc.data(), kc.size() * 2, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dv.p, vc.data(), kc.size() * 2, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dtab.p, tab.data(), nb * 4, cudaMemcpyHostToDevice));
    kvtc_cuda_tc_cache cc;
    memset(&cc, 0, sizeof cc);
    cc.d_k = dk.p, cc.d_v = dv.p, cc.block_size = bs, cc.n_blocks = nb, cc.d_block_table = (const int32_t *)dtab.p, cc.max_blocks = nb;
    kvtc_cuda_tc_cache cd = cc;
    cd.d_k = dk2.p, cd.d_v = dv2.p;
    cudaStream_t st;
    CUDA_OK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    kvtc_cuda_tc_timing tm;
    memset(&tm, 0, sizeof tm);
    for (int i = 0; i <= KVTC_CUDA_TC_MAX_STAGES; ++i) CUDA_OK(cudaEventCreate(&tm.events[i]));
    CHECK_OK(kvtc_cuda_tc_compress(&gp.plan, &cc, n, drec.p, rb, nullptr, dws.p, wb, &tm, st));
    CUDA_OK(cudaStreamSynchronize(st));
    float ms[KVTC_CUDA_TC_MAX_STAGES];
    CHECK(tm.n_stages == 5 && tm.decompress == 0);
    CHECK_OK(kvtc_cuda_tc_timing_read(&tm, ms, KVTC_CUDA_TC_MAX_STAGES));
    printf("  compress stages (ms):");
    for (int i = 0; i < tm.n_stages; ++i) {
        CHECK(ms[i] >= 0.0f);
        printf(" %s %.3f", kvtc_cuda_tc_stage_name(0, i), ms[i]);
    }
    CHECK_ST(kvtc_cuda_tc_timing_read(&tm, ms, 2), KVTC_ERR_SMALL);
    CHECK_OK(kvtc_cuda_tc_decompress(&gp.plan, drec.p, rb, n, &cd, nullptr, dws.p, wb, &tm, st));
    CUDA_OK(cudaStreamSynchronize(st));
    CHECK(tm.n_stages == 4 && tm.decompress == 1);
    CHECK_OK(kvtc_cuda_tc_timing_read(&tm, ms, KVTC_CUDA_TC_MAX_STAGES));
    printf("\n  decompress stages (ms):");
    for (int i = 0; i < tm.n_stages; ++i) printf(" %s %.3f", kvtc_cuda_tc_stage_name(1, i), ms[i]);
    printf("\n");
    std::vector<unsigned char> a(rb), b(rb);
    std::vector<uint16_t> k1(kc.size()), k2(kc.size());
    CUDA_OK(cudaMemcpy(a.data(), drec.p, rb, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(k1.data(), dk2.p, kc.size() * 2, cudaMemcpyDeviceToHost));
    /* the same two calls captured in a graph and replayed: same bytes */
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_OK(cudaMemset(dk2.p, 0, kc.size() * 2));
    CUDA_OK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    kvtc_status s1 = kvtc_cuda_tc_compress(&gp.plan, &cc, n, drec2.p, rb, nullptr, dws.p, wb, nullptr, st);
    kvtc_status s2 = kvtc_cuda_tc_decompress(&gp.plan, drec2.p, rb, n, &cd, nullptr, dws.p, wb, nullptr, st);
    CUDA_OK(cudaStreamEndCapture(st, &graph));
    CHECK_OK(s1);
    CHECK_OK(s2);
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_OK(cudaGraphLaunch(exec, st));
    CUDA_OK(cudaGraphLaunch(exec, st));
    CUDA_OK(cudaStreamSynchronize(st));
    CUDA_OK(cudaMemcpy(b.data(), drec2.p, rb, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(k2.data(), dk2.p, kc.size() * 2, cudaMemcpyDeviceToHost));
    CHECK(a == b);
    CHECK(k1 == k2);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    for (int i = 0; i <= KVTC_CUDA_TC_MAX_STAGES; ++i) cudaEventDestroy(tm.events[i]);
    cudaStreamDestroy(st);
    return T_PASS;
}

/* ---- kernels: no spills (no local memory) ----------------------------------------- */
static int test_no_spills(void) {
    NEED_DEVICE();
    struct k { const void *f; const char *name; };
    const k ks[] = {{(const void *)kvtc__k_tcg_prep_basis, "prep_basis"}, {(const void *)kvtc__k_tcg_geom, "geom"},
                    {(const void *)kvtc__k_tcg_rope_table, "rope_table"},
                    {(const void *)kvtc__k_tcg_gather<1>, "gather<1>"}, {(const void *)kvtc__k_tcg_gather<4>, "gather<4>"},
                    {(const void *)kvtc__k_tcg_padcols, "padcols"},
                    {(const void *)kvtc__k_tcg_rows, "rows"},
                    {(const void *)kvtc__k_tcg_gemm<0, 4>, "gemm<TF32X3,4>"}, {(const void *)kvtc__k_tcg_gemm<0, 2>, "gemm<TF32X3,2>"},
                    {(const void *)kvtc__k_tcg_gemm<1, 2>, "gemm<F16,2>"}, {(const void *)kvtc__k_tcg_gemm<1, 8>, "gemm<F16,8>"},
                    {(const void *)kvtc__k_tcg_gemm_exact, "gemm_exact"},
                    {(const void *)kvtc__k_tcg_fit, "fit"}, {(const void *)kvtc__k_tcg_pack, "pack"},
                    {(const void *)kvtc__k_tcg_fnv, "fnv"}, {(const void *)kvtc__k_tcg_fnv_final, "fnv_final"},
                    {(const void *)kvtc__k_tcg_check, "check"}, {(const void *)kvtc__k_tcg_unpack, "unpack"},
                    {(const void *)kvtc__k_tcg_scatter<1>, "scatter<1>"},
                    {(const void *)kvtc__k_tcg_scatter<4>, "scatter<4>"}, {(const void *)kvtc__k_tcg_status, "status"}};
    int bad = 0;
    for (const k &x : ks) {
        cudaFuncAttributes fa;
        CUDA_OK(cudaFuncGetAttributes(&fa, x.f));
        printf("  %-16s regs %3d  local %4zu B  static smem %6zu B\n", x.name, fa.numRegs, fa.localSizeBytes, fa.sharedSizeBytes);
        /* rope_table: the 40-byte frame is libdevice's double sin/cos argument reduction (ptxas: 0 spill
           stores/loads), taken only for huge angles; any other local memory would be a spill */
        const bool trig = !strcmp(x.name, "rope_table");
        bad += fa.localSizeBytes > (trig ? 64u : 0u);
    }
    CHECK(bad == 0);
    return T_PASS;
}

static const test_case tests[] = {
    {"tc_cuda_flat_exact", test_flat_exact},       {"tc_cuda_flat_tf32x3", test_flat_tf32x3},
    {"tc_cuda_flat_f16", test_flat_f16},           {"tc_cuda_paged_exact", test_paged_exact},
    {"tc_cuda_paged_tf32x3", test_paged_tf32x3},   {"tc_cuda_paged_f16", test_paged_f16},
    {"tc_cuda_real_smollm2", test_real_smollm2},   {"tc_cuda_bad_args", test_bad_args},
    {"tc_cuda_timing_graph", test_timing_graph},   {"tc_cuda_no_spills", test_no_spills},
};

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : nullptr;
    int pass = 0, fail = 0, skip = 0, n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
        snprintf(g_skip_reason, sizeof g_skip_reason, "no CUDA device (%s)", e != cudaSuccess ? cudaGetErrorString(e) : "count 0");
    else {
        cudaDeviceProp prop;
        cudaGetDeviceProperties(&prop, 0);
        printf("device: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);
        g_have_device = 1;
    }
    if (filter && strcmp(filter, "quick") == 0) g_quick = 1, filter = nullptr;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; ++i) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        printf("%s\n", tests[i].name);
        fflush(stdout);
        int rr = tests[i].fn();
        printf("  %s\n", rr == T_PASS ? "PASS" : rr == T_SKIP ? "SKIP" : "FAIL");
        fflush(stdout);
        *(rr == T_PASS ? &pass : rr == T_SKIP ? &skip : &fail) += 1;
    }
    printf("%d passed, %d failed, %d skipped\n", pass, fail, skip);
    return fail > 0;
}
