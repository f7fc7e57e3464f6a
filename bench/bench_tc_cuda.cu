/* bench_tc_cuda.cu: KVTC transform coding on the GPU (kvtc_cuda.cuh >>tc-gpu): per-stage compress/decompress times of a Llama-3-8B-shaped paged fp16 cache, GEMM TFLOP/s, ratio and cosine. */
/* build: nvcc -std=c++17 -O3 -arch=sm_90 -I. -DKVTC_CUDA_MINIMAL bench/bench_tc_cuda.cu -o build/bench_tc_cuda   (add -DBENCH_CUBLAS -lcublas for the cuBLAS GEMM column) */
/* run:   ./build/bench_tc_cuda [--quick] [--reps R] [--no-paper] [--budget-s S]   (--quick: the first three rows; rows past S seconds of wall time, default 100, are skipped and say so) */
/*
 * Cache: 32 layers x 8 KV heads x head_dim 128, keys and values, fp16, paged (block 16, pages of the
 * sequence in a shuffled order), keys with RoPE (rotate-half, theta 500000 as Llama 3) at positions
 * 0..n-1. Synthetic calibration (said so in every table): each head h of each layer and kind has its own
 * orthonormal basis, the rows of a randomly signed, permuted Walsh-Hadamard matrix, eigenvalues
 * lambda_i = s_h ((i+1)^-1.5 + 1e-3) with s_h in [2, 6], and a random mean; its tokens are drawn from
 * exactly that distribution (x = mu + D H y / sqrt(d), y_pi(i) = sqrt(lambda_i) g_i, g approximately
 * Gaussian: a sum of four uniforms). Per layer (p = 1024) the calibration is the exact one of the
 * concatenated heads (their eigenvectors embedded, eigenvalues merged). The KVTC paper's grouping
 * (keys and values of all layers and heads concatenated, p = 65536, rank r) gets its own cache whose
 * tokens lie in a random rank-r subspace (signed, permuted Hadamard of size 65536), lambda_i = 4 (i+1)^-1.2.
 * Coders: GAUSSIAN quantizer (widths > 8 fall back to UNIFORM), 4 sink tokens, no window (so that 8x
 * and more are reachable at 1024 tokens), budget B from the target ratio.
 *   1. validate (before any timing): on a subset of groups the GPU's records against kvtc_tc_encode
 *      (header, widths, sink bytes equal; indices: count of cells that differ; kvtc_tc_decode accepts
 *      every GPU record), and the GPU's decompression of the CPU's records against kvtc_tc_decode +
 *      kvtc_rope_apply (relative error); a row that fails is printed FAILED and not timed;
 *   2. time: 3 warm-up calls, then R (>= 20) compress + decompress pairs, each stage between CUDA
 *      events on the launchers' stream; median [p10-p90]. L2 is not scrubbed (the chunk's cache,
 *      67-537 MB, exceeds the 60 MB L2 except where noted). Baseline in the same run: cudaMemcpyAsync
 *      device to device of the chunk's fp16 K+V bytes.
 * Exit status 0 if every row validated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define KVTC_IMPLEMENTATION
#define KVTC_CUDA_IMPLEMENTATION
#include "kvtc_cuda.cuh"
#ifdef BENCH_CUBLAS
#include <cublas_v2.h>
#endif
#include <algorithm>
#include <string>
#include <vector>

#ifndef BENCH_COMMIT
#define BENCH_COMMIT "unknown"
#endif

#define CK(call)                                                                                                       \
    do {                                                                                                               \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess) {                                                                                       \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));                    \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)
#define ST(call)                                                                                                       \
    do {                                                                                                               \
        kvtc_status s_ = (call);                                                                                       \
        if (s_ != KVTC_OK) {                                                                                           \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, kvtc_status_string(s_));                    \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

static const int NL = 32, NH = 8, HD = 128, BS = 16;
static int g_reps = 30;
static double g_budget_s = 100.0; /* wall-clock budget for the timed rows */
static float g_h2f[65536]; /* fp16 bits -> float (kvtc_f16_to_f32), filled in main */
static std::vector<uint16_t> g_wantk, g_wantv, g_gk, g_gv; /* host scratch caches, reused */

struct stats {
    double med, p10, p90;
};
static stats stats_of(std::vector<double> v) {
    stats s = {0, 0, 0};
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[(size_t)std::min((double)v.size() - 1, q * (v.size() - 1) + 0.5)]; };
    s.med = at(0.5), s.p10 = at(0.1), s.p90 = at(0.9);
    return s;
}
static std::string fmt_us(const stats &s) {
    char b[96];
    snprintf(b, sizeof b, "%.1f [%.1f-%.1f]", s.med * 1e3, s.p10 * 1e3, s.p90 * 1e3); /* ms -> us */
    return b;
}
static double now_s() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* ---- synthetic data ------------------------------------------------------------------ */
struct fastrng {
    uint64_t s;
    uint32_t u32() {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        return (uint32_t)(s >> 11);
    }
    float gauss() { /* Irwin-Hall of 4 uniforms, unit variance */
        float a = (u32() & 0xffffff) + (float)(u32() & 0xffffff) + (float)(u32() & 0xffffff) + (float)(u32() & 0xffffff);
        return (a * (1.0f / 16777216.0f) - 2.0f) * 1.7320508f;
    }
};
static void fwht(float *x, int n) {
    for (int h = 1; h < n; h <<= 1)
        for (int i = 0; i < n; i += 2 * h)
            for (int j = i; j < i + h; ++j) {
                const float a = x[j], b = x[j + h];
                x[j] = a + b, x[j + h] = a - b;
            }
}
static inline float had(int row, int c) { return (__builtin_popcount((unsigned)(row & c)) & 1) ? -1.0f : 1.0f; }

struct model { /* one orthonormal signed-Hadamard basis and spectrum */
    int d, r;
    std::vector<float> sign, mu;
    std::vector<int> perm;
    std::vector<double> lam;
};
static void model_make(model &m, int d, int r, double s, double expo, double floor_, uint64_t seed) {
    kvtc_rng g;
    kvtc_rng_seed(&g, seed);
    m.d = d, m.r = r;
    m.sign.resize(d), m.mu.resize(d), m.perm.resize(d), m.lam.resize(r);
    for (int c = 0; c < d; ++c) m.sign[c] = (kvtc_rng_u64(&g) >> 63) ? -1.0f : 1.0f, m.mu[c] = (float)(0.2 * kvtc_rng_gaussian(&g));
    for (int i = 0; i < d; ++i) m.perm[i] = i;
    for (int i = d - 1; i > 0; --i) std::swap(m.perm[i], m.perm[kvtc_rng_below(&g, (uint64_t)i + 1)]);
    for (int i = 0; i < r; ++i) m.lam[i] = s * (pow(i + 1.0, -expo) + floor_);
}
static void model_sample(const model &m, fastrng &rg, float *x, std::vector<float> &y) {
    y.assign(m.d, 0.0f);
    for (int i = 0; i < m.r; ++i) y[m.perm[i]] = (float)sqrt(m.lam[i]) * rg.gauss();
    fwht(y.data(), m.d);
    const float sc = 1.0f / sqrtf((float)m.d);
    for (int c = 0; c < m.d; ++c) x[c] = m.mu[c] + m.sign[c] * y[c] * sc;
}
/* A calibration in one allocation (kvtc_tc_calib_destroy frees it), from per-part models laid side by side. */
struct comp_ref {
    int part, i;
    double lam;
};
static kvtc_tc_calib *calib_from_parts(const std::vector<const model *> &parts, int rank, uint64_t id) {
    const int hd = parts[0]->d, p = hd * (int)parts.size();
    std::vector<comp_ref> all;
    for (size_t q = 0; q < parts.size(); ++q)
        for (int i = 0; i < parts[q]->r; ++i) all.push_back({(int)q, i, parts[q]->lam[i]});
    std::stable_sort(all.begin(), all.end(), [](const comp_ref &a, const comp_ref &b) { return a.lam > b.lam; });
    if ((int)all.size() < rank) rank = (int)all.size();
    size_t bytes = sizeof(kvtc_tc_calib) + (size_t)rank * 8 + (size_t)p * 4 + (size_t)rank * p * 4;
    kvtc_tc_calib *c = (kvtc_tc_calib *)calloc(1, bytes);
    if (!c) return nullptr;
    c->dim = p, c->rank = rank, c->id = id, c->n_samples = 1000000;
    c->eigenvalues = (double *)(c + 1);
    c->mean = (float *)(c->eigenvalues + rank);
    c->basis = c->mean + p;
    double tv = 0;
    for (const comp_ref &a : all) tv += a.lam;
    c->total_variance = tv;
    for (size_t q = 0; q < parts.size(); ++q) memcpy(c->mean + q * hd, parts[q]->mu.data(), hd * 4);
    const float sc = 1.0f / sqrtf((float)hd);
    for (int k = 0; k < rank; ++k) {
        const model &m = *parts[all[k].part];
        c->eigenvalues[k] = all[k].lam;
        float *row = c->basis + (size_t)k * p + (size_t)all[k].part * hd;
        const int pr = m.perm[all[k].i];
        for (int j = 0; j < hd; ++j) row[j] = m.sign[j] * had(pr, j) * sc;
    }
    return c;
}

/* ---- the paged cache -------------------------------------------------------------------- */
struct hostcache {
    int n_tok, n_blocks;
    std::vector<int32_t> table;
    std::vector<uint16_t> k, v; /* [NL][n_blocks][BS][NH][HD] */
    size_t at(int layer, long long tok) const {
        return (((size_t)layer * n_blocks + table[tok / BS]) * BS + tok % BS) * NH * HD;
    }
};
static kvtc_rope_params llama_rope(int n_heads) {
    kvtc_rope_params r;
    memset(&r, 0, sizeof r);
    r.head_dim = HD, r.n_heads = n_heads, r.style = KVTC_ROPE_HALF, r.theta = 500000.0;
    return r;
}
/* fill(kind, layer, buf) writes the chunk's pre-RoPE tokens of one layer, [n_tok][NH][HD] floats. */
template <class F>
static void cache_build(hostcache &hc, int n_tok, F fill, uint64_t seed) {
    hc.n_tok = n_tok;
    const int pages = (n_tok + BS - 1) / BS;
    hc.n_blocks = pages + 3;
    std::vector<int32_t> perm(hc.n_blocks);
    for (int i = 0; i < hc.n_blocks; ++i) perm[i] = i;
    kvtc_rng g;
    kvtc_rng_seed(&g, seed);
    for (int i = hc.n_blocks - 1; i > 0; --i) std::swap(perm[i], perm[kvtc_rng_below(&g, (uint64_t)i + 1)]);
    hc.table.assign(perm.begin(), perm.begin() + pages);
    const size_t elems = (size_t)NL * hc.n_blocks * BS * NH * HD;
    hc.k.assign(elems, 0), hc.v.assign(elems, 0);
    const kvtc_rope_params rp = llama_rope(NH);
    std::vector<float> buf((size_t)n_tok * NH * HD);
    for (int kind = 0; kind < 2; ++kind)
        for (int l = 0; l < NL; ++l) {
            fill(kind, l, buf.data());
            if (kind == 0) kvtc_rope_apply(&rp, buf.data(), n_tok, nullptr);
            std::vector<uint16_t> &dst = kind ? hc.v : hc.k;
            for (int t = 0; t < n_tok; ++t)
                for (int i = 0; i < NH * HD; ++i) dst[hc.at(l, t) + i] = kvtc_f32_to_f16(buf[(size_t)t * NH * HD + i]);
        }
}

/* ---- grouping helpers --------------------------------------------------------------------- */
enum grouping { PER_HEAD, PER_LAYER, PAPER };
static kvtc_cuda_tc_params grouping_params(grouping gr, kvtc_cuda_tc_gemm gemm) {
    kvtc_cuda_tc_params p;
    memset(&p, 0, sizeof p);
    p.head_dim = HD, p.n_layers = NL, p.n_kv_heads = NH;
    p.group_layers = gr == PAPER ? NL : 1;
    p.group_heads = gr == PER_HEAD ? 1 : NH;
    p.kv = gr == PAPER ? KVTC_CUDA_TC_KV_CONCAT : KVTC_CUDA_TC_KV_SEPARATE;
    p.rope = llama_rope(1);
    p.gemm = gemm;
    return p;
}
/* (kind, layer, head) of part `part` of group g (documented order). */
static void part_of(grouping gr, int g, int part, int *kind, int *layer, int *head) {
    if (gr == PER_HEAD) *kind = g / (NL * NH), *layer = (g / NH) % NL, *head = g % NH;
    else if (gr == PER_LAYER) *kind = g / NL, *layer = g % NL, *head = part;
    else *kind = part / (NL * NH), *layer = (part / NH) % NL, *head = part % NH;
}
static int n_groups_of(grouping gr) { return gr == PER_HEAD ? 2 * NL * NH : gr == PER_LAYER ? 2 * NL : 1; }
static int dim_of(grouping gr) { return gr == PER_HEAD ? HD : gr == PER_LAYER ? NH * HD : 2 * NL * NH * HD; }

/* Budget B for a target ratio at n tokens, 4 sinks, no window, no side data. */
static int budget_for(double ratio, int p, int rank, int n, int max_bits) {
    const double total_bits = (double)n * p * 16.0 / ratio, fixed = 8.0 * (64 + rank + 2.0 * p * 4);
    long long b = (long long)((total_bits - fixed) / (n - 4));
    if (b > (long long)rank * max_bits) b = (long long)rank * max_bits;
    if (b < 1) b = 1;
    return (int)b;
}

/* ---- one configuration: coders, plan, validation, timing ------------------------------------ */
struct device_cache {
    void *k = nullptr, *v = nullptr, *k2 = nullptr, *v2 = nullptr, *table = nullptr;
    size_t bytes = 0;
    int n_blocks = 0, max_blocks = 0;
};
static void dcache_upload(device_cache &d, const hostcache &hc) {
    d.bytes = hc.k.size() * 2;
    CK(cudaMalloc(&d.k, d.bytes));
    CK(cudaMalloc(&d.v, d.bytes));
    CK(cudaMalloc(&d.k2, d.bytes));
    CK(cudaMalloc(&d.v2, d.bytes));
    CK(cudaMalloc(&d.table, hc.table.size() * 4));
    CK(cudaMemcpy(d.k, hc.k.data(), d.bytes, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.v, hc.v.data(), d.bytes, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d.table, hc.table.data(), hc.table.size() * 4, cudaMemcpyHostToDevice));
    d.n_blocks = hc.n_blocks, d.max_blocks = (int)hc.table.size();
}
static void dcache_free(device_cache &d) {
    cudaFree(d.k), cudaFree(d.v), cudaFree(d.k2), cudaFree(d.v2), cudaFree(d.table);
}

struct result {
    std::string name;
    int n = 0, n_val = 0, p = 0, G = 0, budget = 0;
    double ratio = 0, cos_gpu_all = 0, cos_gpu_sub = 0, cos_cpu_sub = 0, cell_rate = 0, rec_err = 0;
    long long cells = 0, cells_diff = 0;
    bool valid = false, timed = false;
    stats st_c[KVTC_CUDA_TC_MAX_STAGES], st_d[KVTC_CUDA_TC_MAX_STAGES], tot_c, tot_d, tot, copy;
    double proj_flop = 0, recon_flop = 0;
    kvtc_cuda_tc_gemm gemm;
    grouping gr;
};

/* Over the chunk's head vectors of the listed groups: mean cosine of b against a, and ||b - a|| / ||a||. */
static void compare_heads(grouping gr, const std::vector<int> &groups, const hostcache &hc, const std::vector<uint16_t> &ak,
                          const std::vector<uint16_t> &av, const std::vector<uint16_t> &bk, const std::vector<uint16_t> &bv,
                          int n, double *cosine, double *rel_err) {
    const int nparts = dim_of(gr) / HD;
    double cs = 0, e2 = 0, r2 = 0;
    long long used = 0;
    for (int g : groups)
        for (int part = 0; part < nparts; ++part) {
            int kind, layer, head;
            part_of(gr, g, part, &kind, &layer, &head);
            const std::vector<uint16_t> &a = kind ? av : ak, &b = kind ? bv : bk;
            for (int t = 0; t < n; ++t) {
                const size_t o = hc.at(layer, t) + (size_t)head * HD;
                double xy = 0, xx = 0, yy = 0;
                for (int j = 0; j < HD; ++j) {
                    const double x = g_h2f[a[o + j]], y = g_h2f[b[o + j]];
                    xy += x * y, xx += x * x, yy += y * y, e2 += (x - y) * (x - y);
                }
                r2 += xx;
                if (xx > 0 && yy > 0) cs += xy / sqrt(xx * yy), ++used;
            }
        }
    if (cosine) *cosine = used ? cs / used : 0;
    if (rel_err) *rel_err = sqrt(e2 / (r2 > 0 ? r2 : 1));
}

static result run_config(const char *name, grouping gr, kvtc_cuda_tc_gemm gemm, double target_ratio, int n,
                         int max_bits, const std::vector<kvtc_tc_calib *> &calibs, const hostcache &hc,
                         device_cache &dc, const std::vector<int> &sub, int n_val, bool time_it) {
    result R;
    R.name = name, R.n = n, R.n_val = n_val, R.gr = gr, R.gemm = gemm;
    const int G = n_groups_of(gr), p = dim_of(gr), nparts = p / HD;
    R.G = G, R.p = p;
    kvtc_tc_params tp;
    memset(&tp, 0, sizeof tp);
    tp.quantizer = KVTC_TC_QUANT_GAUSSIAN;
    tp.n_sink = 4;
    tp.n_window = KVTC_TC_NONE;
    tp.max_bits = max_bits;
    tp.budget_bits = budget_for(target_ratio, p, calibs[0]->rank, n, max_bits);
    R.budget = tp.budget_bits;
    std::vector<kvtc_tc *> tcs(G);
    for (int g = 0; g < G; ++g) ST(kvtc_tc_create(&tp, calibs[g], &tcs[g]));
    const kvtc_cuda_tc_params gpp = grouping_params(gr, gemm);
    size_t pb, ub;
    ST(kvtc_cuda_tc_plan_bytes(&gpp, tcs.data(), G, &pb, &ub));
    void *dplan, *dup;
    CK(cudaMalloc(&dplan, pb));
    CK(cudaMalloc(&dup, ub));
    kvtc_cuda_tc plan;
    ST(kvtc_cuda_tc_plan_init(&gpp, tcs.data(), G, dplan, pb, dup, ub, &plan, 0));
    CK(cudaDeviceSynchronize());
    CK(cudaFree(dup));
    cudaStream_t stream;
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    kvtc_cuda_tc_cache cc;
    memset(&cc, 0, sizeof cc);
    cc.d_k = dc.k, cc.d_v = dc.v, cc.dtype = KVTC_DTYPE_F16, cc.block_size = BS, cc.n_blocks = dc.n_blocks;
    cc.d_block_table = (const int32_t *)dc.table, cc.max_blocks = dc.max_blocks, cc.start = 0;
    kvtc_cuda_tc_cache cd = cc;
    cd.d_k = dc.k2, cd.d_v = dc.v2;
    size_t sc = 0;
    for (int g : sub) {
        size_t t2;
        ST(kvtc_tc_scratch_bytes(tcs[g], std::max(n, n_val), &t2));
        sc = std::max(sc, t2);
    }
    std::vector<double> scratch(sc / 8 + 2);
    /* ---- 1. validate at n_val tokens on the subset ---- */
    {
        const int nv = n_val;
        size_t rb, wb;
        ST(kvtc_cuda_tc_records_bytes(&plan, nv, &rb));
        ST(kvtc_cuda_tc_workspace_bytes(&plan, nv, &wb));
        std::vector<size_t> off(G), len(G);
        ST(kvtc_cuda_tc_record_offsets(&plan, nv, off.data(), len.data(), G));
        void *drec, *dws;
        CK(cudaMalloc(&drec, rb));
        CK(cudaMalloc(&dws, wb));
        ST(kvtc_cuda_tc_compress(&plan, &cc, nv, drec, rb, nullptr, dws, wb, nullptr, stream));
        CK(cudaStreamSynchronize(stream));
        std::vector<unsigned char> gpu(rb), cpu(rb, 0);
        CK(cudaMemcpy(gpu.data(), drec, rb, cudaMemcpyDeviceToHost));
        const kvtc_rope_params rp = llama_rope(1);
        std::vector<int64_t> pos(nv);
        for (int t = 0; t < nv; ++t) pos[t] = t;
        bool ok = true;
        long long cells = 0, diff = 0, wcells = 0, wdiff = 0; /* widths <= 8; wider (UNIFORM fallback) ones */
        double wmax = 0;                                         /* their largest |index difference| / 2^width */
        std::vector<float> X((size_t)nv * p), dec((size_t)nv * p);
        g_wantk.resize(hc.k.size()), g_wantv.resize(hc.v.size());
        std::vector<uint16_t> &wantk = g_wantk, &wantv = g_wantv;
        for (int g : sub) {
            for (int part = 0; part < nparts; ++part) { /* the CPU's view of the chunk: fp16 -> float, RoPE removed */
                int kind, layer, head;
                part_of(gr, g, part, &kind, &layer, &head);
                const std::vector<uint16_t> &src = kind ? hc.v : hc.k;
                std::vector<float> hv((size_t)nv * HD);
                for (int t = 0; t < nv; ++t)
                    for (int j = 0; j < HD; ++j) hv[(size_t)t * HD + j] = g_h2f[src[hc.at(layer, t) + (size_t)head * HD + j]];
                if (kind == 0) ST(kvtc_rope_remove(&rp, hv.data(), nv, pos.data()));
                for (int t = 0; t < nv; ++t) memcpy(&X[(size_t)t * p + (size_t)part * HD], &hv[(size_t)t * HD], HD * 4);
            }
            kvtc_status s1 = kvtc_tc_encode(tcs[g], X.data(), nv, &cpu[off[g]], len[g], scratch.data(), sc);
            /* the GPU record as kvtc_tc_decode checks it, without its (slow, CPU) reconstruction: header fields
               and the checksum (tests/test_tc_cuda.cu decodes GPU records in full) */
            kvtc_tc_chunk_header hh;
            kvtc_status s2 = kvtc_tc_chunk_info(&gpu[off[g]], len[g], &hh);
            if (s2 == KVTC_OK) {
                if (kvtc_tc_record_checksum(&gpu[off[g]], len[g]) != hh.checksum || hh.record_bytes != len[g] ||
                    hh.calib_id != tcs[g]->calib->id)
                    s2 = KVTC_ERR_CORRUPT;
            }
            if (s1 != KVTC_OK || s2 != KVTC_OK) {
                printf("  [%s] group %d: CPU encode %s, GPU record check %s\n", name, g, kvtc_status_string(s1),
                       kvtc_status_string(s2));
                ok = false;
            }
            if (memcmp(&cpu[off[g]], &gpu[off[g]], 48) != 0) ok = false;
            /* indices */
            const kvtc_tc *tc = tcs[g];
            size_t nu = 0;
            for (int i = 0; i < tc->calib->rank; ++i) nu += tc->widths[i] > 8;
            const size_t idx = 64 + tc->calib->rank + 8 * nu + 2 * (size_t)p * 4, m = nv - 4;
            if (memcmp(&cpu[off[g] + 64], &gpu[off[g] + 64], tc->calib->rank) != 0) ok = false; /* widths */
            if (memcmp(&cpu[off[g] + 64 + tc->calib->rank + 8 * nu], &gpu[off[g] + 64 + tc->calib->rank + 8 * nu], 2 * (size_t)p * 4) != 0)
                ok = false; /* sinks */
            std::vector<uint8_t> w(tc->n_active);
            for (int k = 0; k < tc->n_active; ++k) w[k] = tc->widths[tc->active[k]];
            std::vector<uint16_t> ia(m * tc->n_active), ib(ia.size());
            ST(kvtc_unpack_var(&cpu[off[g] + idx], len[g] - idx, m, w.data(), tc->n_active, ia.data(), ia.size()));
            ST(kvtc_unpack_var(&gpu[off[g] + idx], len[g] - idx, m, w.data(), tc->n_active, ib.data(), ib.size()));
            for (size_t i = 0; i < ia.size(); ++i) {
                const int wi = w[i % tc->n_active];
                if (wi <= 8) diff += ia[i] != ib[i], ++cells;
                else {
                    const double d = fabs((double)ia[i] - (double)ib[i]) / (double)(1u << wi);
                    wdiff += ia[i] != ib[i], ++wcells, wmax = std::max(wmax, d);
                }
            }
            /* the CPU's decode of its own record, RoPE'd back and rounded: what decompress must write */
            ST(kvtc_tc_decode(tcs[g], &cpu[off[g]], len[g], dec.data(), dec.size(), scratch.data(), sc));
            for (int part = 0; part < nparts; ++part) {
                int kind, layer, head;
                part_of(gr, g, part, &kind, &layer, &head);
                std::vector<float> hv((size_t)nv * HD);
                for (int t = 0; t < nv; ++t) memcpy(&hv[(size_t)t * HD], &dec[(size_t)t * p + (size_t)part * HD], HD * 4);
                if (kind == 0) ST(kvtc_rope_apply(&rp, hv.data(), nv, pos.data()));
                std::vector<uint16_t> &dst = kind ? wantv : wantk;
                for (int t = 0; t < nv; ++t)
                    for (int j = 0; j < HD; ++j) dst[hc.at(layer, t) + (size_t)head * HD + j] = kvtc_f32_to_f16(hv[(size_t)t * HD + j]);
            }
        }
        /* GPU decompress of the CPU's records (all groups present: others are the GPU's own) */
        std::vector<unsigned char> mixed = gpu;
        for (int g : sub) memcpy(&mixed[off[g]], &cpu[off[g]], len[g]);
        CK(cudaMemcpy(drec, mixed.data(), rb, cudaMemcpyHostToDevice));
        std::vector<int32_t> sts(G);
        int32_t *dst_;
        CK(cudaMalloc(&dst_, G * 4));
        ST(kvtc_cuda_tc_decompress(&plan, drec, rb, nv, &cd, dst_, dws, wb, nullptr, stream));
        CK(cudaStreamSynchronize(stream));
        CK(cudaMemcpy(sts.data(), dst_, G * 4, cudaMemcpyDeviceToHost));
        for (int g = 0; g < G; ++g) ok &= sts[g] == KVTC_OK;
        g_gk.resize(hc.k.size()), g_gv.resize(hc.v.size());
        std::vector<uint16_t> &gk = g_gk, &gv = g_gv;
        CK(cudaMemcpy(gk.data(), dc.k2, dc.bytes, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(gv.data(), dc.v2, dc.bytes, cudaMemcpyDeviceToHost));
        compare_heads(gr, sub, hc, wantk, wantv, gk, gv, nv, nullptr, &R.rec_err);
        compare_heads(gr, sub, hc, hc.k, hc.v, wantk, wantv, nv, &R.cos_cpu_sub, nullptr);
        R.cells = cells, R.cells_diff = diff, R.cell_rate = cells ? (double)diff / cells : 0;
        /* cells of more than 8 bits are narrower than F16's 2^-11 rounding: for them the bound is on the size of
           the difference (2^-7 of the component's range), not on how many differ */
        const double max_rate = gemm == KVTC_CUDA_TC_GEMM_F16 ? 5e-2 : 1e-3, max_err = gemm == KVTC_CUDA_TC_GEMM_F16 ? 1e-2 : 1e-3;
        if (R.cell_rate > max_rate || !(R.rec_err <= max_err)) ok = false;
        if (wcells && wmax > (gemm == KVTC_CUDA_TC_GEMM_F16 ? 1.0 / 128 : 1.0 / 4096)) ok = false;
        if (wcells)
            printf("  [%s] components wider than 8 bits: %lld of %lld indices differ (%.2e), largest difference %.2e of "
                   "the range\n", name, wdiff, wcells, (double)wdiff / wcells, wmax);
        R.valid = ok;
        printf("  [%s] validate (%zu groups, %d tokens): records header/widths/sinks %s, cells differ %lld/%lld (%.2e), "
               "GPU records pass kvtc_tc_decode's header and checksum checks: %s, decompressed CPU records rel err %.2e -> %s\n",
               name, sub.size(), nv, ok ? "equal" : "CHECK", diff, cells, R.cell_rate, ok ? "yes" : "see above", R.rec_err,
               ok ? "ok" : "FAILED");
        cudaFree(dst_), cudaFree(drec), cudaFree(dws);
    }
    /* ---- 2. the measured chunk: ratio, cosine (GPU path), timing ---- */
    if (R.valid) {
        size_t rb, wb;
        ST(kvtc_cuda_tc_records_bytes(&plan, n, &rb));
        ST(kvtc_cuda_tc_workspace_bytes(&plan, n, &wb));
        std::vector<size_t> len(G);
        ST(kvtc_cuda_tc_record_offsets(&plan, n, nullptr, len.data(), G));
        double rbytes = 0;
        for (size_t l : len) rbytes += (double)l;
        R.ratio = (double)G * n * p * 2.0 / rbytes;
        void *drec, *dws, *dcopy;
        const size_t chunk_bytes = (size_t)n * NL * NH * HD * 2 * 2;
        CK(cudaMalloc(&drec, rb));
        CK(cudaMalloc(&dws, wb));
        CK(cudaMalloc(&dcopy, chunk_bytes));
        ST(kvtc_cuda_tc_compress(&plan, &cc, n, drec, rb, nullptr, dws, wb, nullptr, stream));
        ST(kvtc_cuda_tc_decompress(&plan, drec, rb, n, &cd, nullptr, dws, wb, nullptr, stream));
        CK(cudaStreamSynchronize(stream));
        {
            g_gk.resize(hc.k.size()), g_gv.resize(hc.v.size());
            std::vector<uint16_t> &gk = g_gk, &gv = g_gv;
            CK(cudaMemcpy(gk.data(), dc.k2, dc.bytes, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(gv.data(), dc.v2, dc.bytes, cudaMemcpyDeviceToHost));
            std::vector<int> all(G);
            for (int g = 0; g < G; ++g) all[g] = g;
            compare_heads(gr, all, hc, hc.k, hc.v, gk, gv, n, &R.cos_gpu_all, nullptr);
            if (n == n_val) compare_heads(gr, sub, hc, hc.k, hc.v, gk, gv, n, &R.cos_gpu_sub, nullptr);
        }
        for (int g = 0; g < G; ++g) {
            const double m = n - 4;
            R.proj_flop += 2.0 * m * p * tcs[g]->n_active;
            R.recon_flop += 2.0 * m * p * tcs[g]->n_active;
        }
        if (time_it) {
            kvtc_cuda_tc_timing tc_, td_;
            for (int i = 0; i <= KVTC_CUDA_TC_MAX_STAGES; ++i) {
                CK(cudaEventCreate(&tc_.events[i]));
                CK(cudaEventCreate(&td_.events[i]));
            }
            cudaEvent_t c0, c1;
            CK(cudaEventCreate(&c0));
            CK(cudaEventCreate(&c1));
            std::vector<double> sc_[KVTC_CUDA_TC_MAX_STAGES], sd_[KVTC_CUDA_TC_MAX_STAGES], totc, totd, tot, cp;
            for (int rep = -3; rep < g_reps; ++rep) {
                ST(kvtc_cuda_tc_compress(&plan, &cc, n, drec, rb, nullptr, dws, wb, &tc_, stream));
                ST(kvtc_cuda_tc_decompress(&plan, drec, rb, n, &cd, nullptr, dws, wb, &td_, stream));
                CK(cudaEventRecord(c0, stream));
                CK(cudaMemcpyAsync(dcopy, dc.k, chunk_bytes / 2, cudaMemcpyDeviceToDevice, stream));
                CK(cudaMemcpyAsync((char *)dcopy + chunk_bytes / 2, dc.v, chunk_bytes / 2, cudaMemcpyDeviceToDevice, stream));
                CK(cudaEventRecord(c1, stream));
                CK(cudaStreamSynchronize(stream));
                if (rep < 0) continue;
                float ms[KVTC_CUDA_TC_MAX_STAGES], md[KVTC_CUDA_TC_MAX_STAGES], mc;
                ST(kvtc_cuda_tc_timing_read(&tc_, ms, KVTC_CUDA_TC_MAX_STAGES));
                ST(kvtc_cuda_tc_timing_read(&td_, md, KVTC_CUDA_TC_MAX_STAGES));
                CK(cudaEventElapsedTime(&mc, c0, c1));
                double a = 0, b = 0;
                for (int i = 0; i < tc_.n_stages; ++i) sc_[i].push_back(ms[i]), a += ms[i];
                for (int i = 0; i < td_.n_stages; ++i) sd_[i].push_back(md[i]), b += md[i];
                totc.push_back(a), totd.push_back(b), tot.push_back(a + b), cp.push_back(mc);
            }
            for (int i = 0; i < KVTC_CUDA_TC_MAX_STAGES; ++i) R.st_c[i] = stats_of(sc_[i]), R.st_d[i] = stats_of(sd_[i]);
            R.tot_c = stats_of(totc), R.tot_d = stats_of(totd), R.tot = stats_of(tot), R.copy = stats_of(cp);
            R.timed = true;
            for (int i = 0; i <= KVTC_CUDA_TC_MAX_STAGES; ++i) cudaEventDestroy(tc_.events[i]), cudaEventDestroy(td_.events[i]);
            cudaEventDestroy(c0), cudaEventDestroy(c1);
        }
        cudaFree(drec), cudaFree(dws), cudaFree(dcopy);
    }
    cudaStreamDestroy(stream);
    cudaFree(dplan);
    for (kvtc_tc *t : tcs) kvtc_tc_destroy(t);
    return R;
}

/* ---- GEMM alone: this kernel against cuBLAS on the paper's shapes ------------------------------- */
/* fp16 values in [-0.05, 0.05) from a hash of the index (random data, not zeros). */
__global__ void fill_half(unsigned short *p, long long n, unsigned seed) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed * 0x9e3779b9u;
        h ^= h >> 15, h *= 0x2c1b3c6du, h ^= h >> 12, h *= 0x297a2d39u, h ^= h >> 15;
        p[i] = __half_as_ushort(__float2half_rn(((h >> 8) * (1.0f / 16777216.0f) - 0.5f) * 0.1f));
    }
}
static void gemm_table(bool quick) {
    printf("\n## GEMM alone, fp16 operands, fp32 accumulation (KVTC paper grouping shapes, M = 1020 coded tokens)\n\n");
    printf("| shape | M x N x K | this kernel (F16) TFLOP/s | us | cuBLAS TFLOP/s | us | this / cuBLAS | share of 989 TFLOP/s dense peak |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    const int M = 1020, P = 65536;
    const int ranks[] = {2048, 4096, 8192};
#ifdef BENCH_CUBLAS
    cublasHandle_t h;
    bool have_cublas = cublasCreate(&h) == CUBLAS_STATUS_SUCCESS;
#endif
    for (int ri = 0; ri < 3; ++ri) {
        if (quick && ri != 1) continue;
        const int r = ranks[ri];
        for (int proj = 1; proj >= 0; --proj) {
            const int N = proj ? r : P, K = proj ? P : r;
            void *A, *B, *C, *grp;
            CK(cudaMalloc(&A, (size_t)M * K * 2));
            CK(cudaMalloc(&B, (size_t)N * K * 2));
            CK(cudaMalloc(&C, (size_t)M * N * 4));
            CK(cudaMalloc(&grp, sizeof(kvtc__tcg_group)));
            fill_half<<<4096, 256>>>((unsigned short *)A, (long long)M * K, 11u + ri);
            fill_half<<<4096, 256>>>((unsigned short *)B, (long long)N * K, 23u + ri);
            CK(cudaGetLastError());
            {
                kvtc__tcg_group gg;
                memset(&gg, 0, sizeof gg);
                gg.na = 1 << 30;
                CK(cudaMemcpy(grp, &gg, sizeof gg, cudaMemcpyHostToDevice));
            }
            kvtc__gemm_args ga;
            memset(&ga, 0, sizeof ga);
            ga.A = (const unsigned *)A, ga.B = (const unsigned *)B, ga.Blo = ga.B;
            ga.lda = ga.ldb = K / 2, ga.ldc = N, ga.M = M, ga.N = N, ga.Kw = K / 2, ga.epw = 2;
            ga.groups = (const kvtc__tcg_group *)grp, ga.C = (float *)C;
            const int smem = (3 * 128 + 3 * 256) * KVTC__TCG_LDS * 4;
            CK(cudaFuncSetAttribute(kvtc__k_tcg_gemm<1, 8>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
            const dim3 grid((M + 127) / 128, (N + 255) / 256, 1);
            cudaEvent_t e0, e1;
            CK(cudaEventCreate(&e0));
            CK(cudaEventCreate(&e1));
            std::vector<double> mine, theirs;
            for (int rep = -2; rep < 20; ++rep) {
                CK(cudaEventRecord(e0));
                kvtc__k_tcg_gemm<1, 8><<<grid, 256, smem>>>(ga);
                CK(cudaEventRecord(e1));
                CK(cudaEventSynchronize(e1));
                CK(cudaGetLastError());
                float ms;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                if (rep >= 0) mine.push_back(ms);
            }
            const double flop = 2.0 * M * N * K;
            const stats sm = stats_of(mine);
            std::string cub = "n/a (built without -DBENCH_CUBLAS)", cubus = "-", rel = "-";
#ifdef BENCH_CUBLAS
            if (have_cublas) {
                const float one = 1.0f, zero = 0.0f;
                for (int rep = -2; rep < 20; ++rep) {
                    CK(cudaEventRecord(e0));
                    cublasStatus_t cs = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, B, CUDA_R_16F, K, A, CUDA_R_16F,
                                                     K, &zero, C, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
                    CK(cudaEventRecord(e1));
                    CK(cudaEventSynchronize(e1));
                    if (cs != CUBLAS_STATUS_SUCCESS) break;
                    float ms;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    if (rep >= 0) theirs.push_back(ms);
                }
                if (!theirs.empty()) {
                    const stats sc = stats_of(theirs);
                    char b[64];
                    snprintf(b, sizeof b, "%.0f", flop / (sc.med * 1e-3) / 1e12);
                    cub = b;
                    snprintf(b, sizeof b, "%.0f", sc.med * 1e3);
                    cubus = b;
                    snprintf(b, sizeof b, "%.2f", sc.med / sm.med);
                    rel = b;
                }
            }
#endif
            printf("| %s r=%d | %d x %d x %d | %.0f | %.0f | %s | %s | %s | %.0f%% |\n", proj ? "project" : "reconstruct", r, M,
                   N, K, flop / (sm.med * 1e-3) / 1e12, sm.med * 1e3, cub.c_str(), cubus.c_str(), rel.c_str(),
                   100.0 * flop / (sm.med * 1e-3) / 989e12);
            cudaEventDestroy(e0), cudaEventDestroy(e1);
            cudaFree(A), cudaFree(B), cudaFree(C), cudaFree(grp);
        }
    }
#ifdef BENCH_CUBLAS
    if (have_cublas) cublasDestroy(h);
#endif
}

/* ---- main ------------------------------------------------------------------------------------------ */
int main(int argc, char **argv) {
    bool quick = false, paper = true;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--quick")) quick = true;
        else if (!strcmp(argv[i], "--no-paper")) paper = false;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = std::max(20, atoi(argv[++i]));
        else if (!strcmp(argv[i], "--budget-s") && i + 1 < argc) g_budget_s = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--reps R] [--no-paper] [--budget-s S]\n", argv[0]);
            return 2;
        }
    }
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("no CUDA device: nothing measured\n");
        return 0;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    time_t now = time(nullptr);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    std::string cmd;
    for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
    printf("# KVTC on the GPU: per-stage timing\n\n");
    printf("- date: %s\n- GPU: %s, %d SMs, %.0f MB L2, sm_%d%d\n- driver %d.%d, runtime %d.%d\n- commit: %s\n- command: `%s`\n",
           date, prop.name, prop.multiProcessorCount, prop.l2CacheSize / 1e6, prop.major, prop.minor, drv / 1000,
           (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10, BENCH_COMMIT, cmd.c_str());
    printf("- cache: %d layers x %d KV heads x %d, K and V, fp16, paged (block %d, shuffled pages); keys RoPE'd (half, "
           "theta 500000)\n- synthetic calibration (orthonormal signed-Hadamard bases, decaying eigenvalues; see the "
           "source's top comment); GAUSSIAN quantizer, 4 sink tokens, no window\n- %d repetitions after 3 warm-ups, "
           "median [p10-p90]; L2 not scrubbed\n\n",
           NL, NH, HD, BS, g_reps);
    fflush(stdout);
    for (unsigned h = 0; h < 65536; ++h) g_h2f[h] = kvtc_f16_to_f32((uint16_t)h);
    double t0 = now_s();
    /* per-head models and the main cache (4096 tokens; chunks are its first n tokens) */
    const int max_tok = quick ? 1024 : 4096;
    std::vector<model> heads((size_t)2 * NL * NH);
    for (int i = 0; i < 2 * NL * NH; ++i) {
        kvtc_rng g;
        kvtc_rng_seed(&g, 500 + i);
        model_make(heads[i], HD, HD, 2.0 + 4.0 * kvtc_rng_uniform(&g), 1.5, 1e-3, 1000 + i);
    }
    hostcache hc;
    {
        std::vector<fastrng> rgs(2 * NL * NH);
        for (int i = 0; i < 2 * NL * NH; ++i) rgs[i].s = 0x9e3779b97f4a7c15ull * (i + 1);
        std::vector<float> y;
        cache_build(
            hc, max_tok,
            [&](int kind, int l, float *buf) {
                for (int t = 0; t < max_tok; ++t)
                    for (int h = 0; h < NH; ++h) {
                        const int id = (kind * NL + l) * NH + h;
                        model_sample(heads[id], rgs[id], buf + ((size_t)t * NH + h) * HD, y);
                    }
            },
            7);
    }
    device_cache dc;
    dcache_upload(dc, hc);
    printf("setup: per-head cache of %d tokens built in %.1f s\n", max_tok, now_s() - t0);
    /* calibrations */
    std::vector<kvtc_tc_calib *> cal_head(2 * NL * NH), cal_layer(2 * NL);
    for (int g = 0; g < 2 * NL * NH; ++g) cal_head[g] = calib_from_parts({&heads[g]}, HD, 0x1000 + g);
    for (int g = 0; g < 2 * NL; ++g) {
        std::vector<const model *> parts;
        for (int h = 0; h < NH; ++h) parts.push_back(&heads[(size_t)g * NH + h]);
        cal_layer[g] = calib_from_parts(parts, NH * HD, 0x2000 + g);
    }
    std::vector<result> res;
    std::vector<int> sub_head, sub_layer = {0, 2 * NL - 1};
    for (int g = 0; g < 2 * NL * NH; g += 32) sub_head.push_back(g);
    /* the KVTC paper's grouping: its own cache (1024 tokens in a rank-4096 subspace of all K and V), built when
       its first row comes */
    const int P = 2 * NL * NH * HD, r_paper = 4096;
    model pm;
    hostcache hp;
    device_cache dp;
    std::vector<kvtc_tc_calib *> cal_paper;
    auto paper_setup = [&]() {
        if (!cal_paper.empty()) return;
        double t1 = now_s();
        model_make(pm, P, r_paper, 4.0, 1.2, 0.0, 4242);
        fastrng rg = {777};
        std::vector<float> y, X((size_t)1024 * P);
        for (int t = 0; t < 1024; ++t) model_sample(pm, rg, &X[(size_t)t * P], y);
        cache_build(
            hp, 1024,
            [&](int kind, int l, float *buf) {
                for (int t = 0; t < 1024; ++t)
                    memcpy(buf + (size_t)t * NH * HD, &X[(size_t)t * P + ((size_t)kind * NL + l) * NH * HD], NH * HD * 4);
            },
            8);
        dcache_upload(dp, hp);
        cal_paper.push_back(calib_from_parts({&pm}, r_paper, 0x3000));
        printf("setup: paper-grouping cache and rank-%d calibration in %.1f s\n", r_paper, now_s() - t1);
    };
    /* rows in order of importance; later ones are skipped if the time budget runs out */
    struct job {
        const char *name;
        grouping gr;
        kvtc_cuda_tc_gemm gemm;
        double ratio;
        int n, max_bits, n_val;
    };
    std::vector<job> jobs = {
        {"per head, TF32X3, 8x, 1024 tok", PER_HEAD, KVTC_CUDA_TC_GEMM_TF32X3, 8, 1024, 8, 1024},
        {"per layer, F16, 8x, 1024 tok", PER_LAYER, KVTC_CUDA_TC_GEMM_F16, 8, 1024, 8, 1024},
        {"paper (p=65536, r=4096), F16, 20x, 1024 tok", PAPER, KVTC_CUDA_TC_GEMM_F16, 20, 1024, 16, 8},
        {"per head, TF32X3, 8x, 512 tok", PER_HEAD, KVTC_CUDA_TC_GEMM_TF32X3, 8, 512, 8, 512},
        {"per head, TF32X3, 8x, 4096 tok", PER_HEAD, KVTC_CUDA_TC_GEMM_TF32X3, 8, 4096, 8, 1024},
        {"per head, TF32X3, 16x, 1024 tok", PER_HEAD, KVTC_CUDA_TC_GEMM_TF32X3, 16, 1024, 8, 1024},
        {"per head, TF32X3, 20x, 1024 tok", PER_HEAD, KVTC_CUDA_TC_GEMM_TF32X3, 20, 1024, 8, 1024},
        {"per layer, F16, 16x, 1024 tok", PER_LAYER, KVTC_CUDA_TC_GEMM_F16, 16, 1024, 8, 1024},
        {"per layer, F16, 20x, 1024 tok", PER_LAYER, KVTC_CUDA_TC_GEMM_F16, 20, 1024, 8, 1024},
        {"per head, F16, 8x, 1024 tok", PER_HEAD, KVTC_CUDA_TC_GEMM_F16, 8, 1024, 8, 1024},
        {"per layer, TF32X3, 8x, 1024 tok", PER_LAYER, KVTC_CUDA_TC_GEMM_TF32X3, 8, 1024, 8, 1024},
        {"per layer, F16, 8x, 4096 tok", PER_LAYER, KVTC_CUDA_TC_GEMM_F16, 8, 4096, 8, 1024},
        {"per head, EXACT, 8x, 1024 tok", PER_HEAD, KVTC_CUDA_TC_GEMM_EXACT, 8, 1024, 8, 1024},
        {"paper (p=65536, r=4096), F16, 16x, 1024 tok", PAPER, KVTC_CUDA_TC_GEMM_F16, 16, 1024, 16, 8},
    };
    bool gemm_done = false;
    for (size_t ji = 0; ji < jobs.size(); ++ji) {
        const job &j = jobs[ji];
        if (ji == 3 && !gemm_done) {
            gemm_table(quick);
            gemm_done = true;
            fflush(stdout);
        }
        if (quick && ji > 2) break;
        if (!paper && j.gr == PAPER) continue;
        if (j.n > max_tok) continue;
        if (now_s() - t0 > g_budget_s) {
            printf("  [%s] skipped: time budget of %.0f s used up\n", j.name, g_budget_s);
            continue;
        }
        if (j.gr == PAPER) paper_setup();
        const bool ph = j.gr == PAPER;
        result R = run_config(j.name, j.gr, j.gemm, j.ratio, j.n, j.max_bits,
                              ph ? cal_paper : j.gr == PER_HEAD ? cal_head : cal_layer, ph ? hp : hc, ph ? dp : dc,
                              ph ? std::vector<int>{0} : j.gr == PER_HEAD ? sub_head : sub_layer, j.n_val, true);
        if (R.timed)
            printf("  [%s] compress %s us, decompress %s us, both %.1f us (copy of the fp16 chunk %.1f us: %.1fx); "
                   "ratio %.2f, cosine %.5f (CPU path on the checked subset %.5f)\n",
                   j.name, fmt_us(R.tot_c).c_str(), fmt_us(R.tot_d).c_str(), R.tot.med * 1e3, R.copy.med * 1e3,
                   R.tot.med / R.copy.med, R.ratio, R.cos_gpu_all, R.cos_cpu_sub);
        fflush(stdout);
        res.push_back(R);
    }
    if (!gemm_done) gemm_table(quick);
    for (kvtc_tc_calib *c : cal_head) free(c);
    for (kvtc_tc_calib *c : cal_layer) free(c);
    for (kvtc_tc_calib *c : cal_paper) free(c);
    dcache_free(dc);
    if (!cal_paper.empty()) dcache_free(dp);
    /* ---- tables ---- */
    bool all_valid = true;
    for (const result &R : res) all_valid &= R.valid;
    printf("\n## Per-stage times, us (median [p10-p90])\n\n| config | G x p | B | ");
    for (int i = 0; i < 5; ++i) printf("%s | ", kvtc_cuda_tc_stage_name(0, i));
    for (int i = 0; i < 4; ++i) printf("%s | ", kvtc_cuda_tc_stage_name(1, i));
    printf("\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const result &R : res) {
        if (!R.timed) {
            printf("| %s | %d x %d | %d | %s |\n", R.name.c_str(), R.G, R.p, R.budget, R.valid ? "not timed" : "FAILED validation");
            continue;
        }
        printf("| %s | %d x %d | %d | ", R.name.c_str(), R.G, R.p, R.budget);
        for (int i = 0; i < 5; ++i) printf("%s | ", fmt_us(R.st_c[i]).c_str());
        for (int i = 0; i < 4; ++i) printf("%s | ", fmt_us(R.st_d[i]).c_str());
        printf("\n");
    }
    printf("\n## Totals and the same-run baseline (device-to-device copy of the chunk's fp16 K+V)\n\n");
    printf("| config | compress us | decompress us | both us | copy us | both / copy | project TFLOP/s | reconstruct TFLOP/s | <= 2 ms (5 ms paper) |\n|---|---|---|---|---|---|---|---|---|\n");
    for (const result &R : res) {
        if (!R.timed) continue;
        const double lim = R.gr == PAPER ? 5.0 : 2.0;
        printf("| %s | %s | %s | %s | %s | %.1f | %.0f | %.0f | %s |\n", R.name.c_str(), fmt_us(R.tot_c).c_str(),
               fmt_us(R.tot_d).c_str(), fmt_us(R.tot).c_str(), fmt_us(R.copy).c_str(), R.tot.med / R.copy.med,
               R.proj_flop / (R.st_c[1].med * 1e-3) / 1e12, R.recon_flop / (R.st_d[2].med * 1e-3) / 1e12,
               R.tot.med <= lim ? "yes" : "no");
    }
    printf("\n## Ratio and cosine (mean over head vectors of the decompressed cache against the original)\n\n");
    printf("| config | budget B | ratio vs fp16 | cosine, GPU, all groups | cosine GPU / CPU path, validated subset | cells differing from CPU | rel err of GPU decompression of CPU records |\n|---|---|---|---|---|---|---|\n");
    for (const result &R : res) {
        char sub[96];
        if (R.cos_gpu_sub > 0) snprintf(sub, sizeof sub, "%.5f / %.5f (|diff| %.1e)", R.cos_gpu_sub, R.cos_cpu_sub, fabs(R.cos_gpu_sub - R.cos_cpu_sub));
        else snprintf(sub, sizeof sub, "- / %.5f (CPU: %d-token check)", R.cos_cpu_sub, R.n_val);
        printf("| %s | %d | %.2f | %.5f | %s | %lld / %lld (%.1e) | %.1e |\n", R.name.c_str(), R.budget, R.ratio, R.cos_gpu_all,
               sub, R.cells_diff, R.cells, R.cell_rate, R.rec_err);
    }
    printf("\nrows: %zu, all validated: %s; total wall %.1f s\n", res.size(), all_valid ? "yes" : "NO", now_s() - t0);
    return all_valid ? 0 : 1;
}
