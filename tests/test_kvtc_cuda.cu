/* kvtc GPU tests: every kernel against kvtc.h's CPU reference.
 * nvcc -std=c++17 -O2 -arch=sm_90 -I. tests/test_kvtc_cuda.cu -o build/test_kvtc_cuda && ./build/test_kvtc_cuda [filter]
 * Without a CUDA device every test reports SKIP. Ends with "N passed, N failed, N skipped". */
#include <stdio.h>
#define KVTC_CUDA_LOG(call, err, file, line) fprintf(stderr, "  %s:%d: %s: %s\n", file, line, call, cudaGetErrorString(err))
#define KVTC_IMPLEMENTATION
#define KVTC_CUDA_IMPLEMENTATION
#include "kvtc_cuda.cuh"
#include "tests/test_common.h"
#include <algorithm>
#include <cmath>
#include <vector>

static int g_have_device = 0;
static char g_skip_reason[256];
static int g_quick = 0; /* "quick" filter: smaller sizes (for compute-sanitizer) */

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

/* A device buffer freed at scope exit. */
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

/* Host and device copies of a codec. */
struct gcodec {
    kvtc_codec *host = nullptr;
    kvtc_cuda_codec dev;
    dbuf *mem = nullptr;
    ~gcodec() {
        kvtc_codec_destroy(host);
        delete mem;
    }
};

static int gcodec_make(gcodec &g, const kvtc_codec_params &p) {
    size_t bytes;
    if (kvtc_codec_create(&p, &g.host) != KVTC_OK) return 0;
    if (kvtc_cuda_codec_bytes(g.host, &bytes) != KVTC_OK) return 0;
    g.mem = new dbuf(bytes);
    if (!g.mem->p) return 0;
    if (kvtc_cuda_codec_init(g.host, g.mem->p, bytes, &g.dev, 0) != KVTC_OK) return 0;
    return cudaStreamSynchronize(0) == cudaSuccess;
}

static kvtc_codec_params params_of(kvtc_method m, int d, int bits, kvtc_rotation_kind rot, uint64_t seed) {
    kvtc_codec_params p;
    memset(&p, 0, sizeof p);
    p.method = m;
    p.head_dim = d;
    p.bits = bits;
    p.rotation = rot;
    p.seed = seed;
    return p;
}

/* Round x to dtype and back, in place; fill the device-format bytes. */
static void to_dtype(std::vector<float> &x, kvtc_dtype t, std::vector<unsigned char> &bytes) {
    size_t n = x.size(), es = t == KVTC_DTYPE_F32 ? 4 : 2;
    bytes.resize(n * es);
    for (size_t i = 0; i < n; ++i) {
        if (t == KVTC_DTYPE_F32) {
            memcpy(&bytes[i * 4], &x[i], 4);
            continue;
        }
        uint16_t h = t == KVTC_DTYPE_BF16 ? kvtc_f32_to_bf16(x[i]) : kvtc_f32_to_f16(x[i]);
        x[i] = t == KVTC_DTYPE_BF16 ? kvtc_bf16_to_f32(h) : kvtc_f16_to_f32(h);
        memcpy(&bytes[i * 2], &h, 2);
    }
}

/* Whether the GPU's codes `got` of vector x differ from the CPU's `ref` only where the fp16/bf16 compress
 * kernel may (kvtc__k_compress_mma): each differing index is one cell off, and the CPU's rotated unit
 * coordinate lies within 1e-6 of the boundary between the two cells. Adds those coordinates to *ties. */
static bool ties_only(const kvtc_codec *c, const float *x, const unsigned char *ref, const unsigned char *got,
                      long long *ties) {
    const int d = c->params.head_dim, b = c->mse_bits;
    if (c->params.method != KVTC_METHOD_TQ_MSE) return false;
    std::vector<uint16_t> ir(d), ig(d);
    std::vector<float> u(d);
    double nn = 0;
    for (int j = 0; j < d; ++j) nn += (double)x[j] * x[j];
    for (int j = 0; j < d; ++j) u[j] = (float)(x[j] / sqrt(nn));
    if (kvtc_unpack(ref, c->code_bytes, d, b, ir.data(), d) != KVTC_OK ||
        kvtc_unpack(got, c->code_bytes, d, b, ig.data(), d) != KVTC_OK ||
        kvtc_rotation_apply(&c->rot, u.data(), 1, u.data(), d) != KVTC_OK)
        return false;
    long long n = 0;
    for (int j = 0; j < d; ++j) {
        if (ir[j] == ig[j]) continue;
        const int lo = ir[j] < ig[j] ? ir[j] : ig[j];
        if (abs((int)ir[j] - (int)ig[j]) != 1 || !(fabs(u[j] - c->boundaries[lo]) <= 1e-6)) return false;
        ++n;
    }
    *ties += n;
    return n > 0;
}
static long long g_ties = 0; /* coordinates ties_only accepted, over all cases */

/* One compress/decompress parity case on a paged cache: K with codec kp, V with vp. spread != 0 (fp32
 * or bf16 input): tokens t scaled by spread^((t % 3) - 1), so tiny and huge vectors take the scaled norm path. */
static int cache_case(const kvtc_codec_params &kp, const kvtc_codec_params &vp, kvtc_dtype dt, int n_tokens,
                      uint64_t seed, long long *records, long long *mismatched, float spread = 0.0f) {
    gcodec kc, vc;
    if (!gcodec_make(kc, kp) || !gcodec_make(vc, vp)) {
        printf("  codec setup failed (d=%d bits=%d/%d)\n", kp.head_dim, kp.bits, vp.bits);
        return T_FAIL;
    }
    const int d = kp.head_dim, H = 3, BS = 16;
    kvtc_cache_params cp;
    cp.block_size = BS;
    cp.n_kv_heads = H;
    cp.n_blocks = (n_tokens + BS - 1) / BS + 3;
    size_t kpage, vpage, ktot, vtot, n = (size_t)n_tokens * H * d;
    CHECK_OK(kvtc_cache_bytes(kc.host, &cp, &kpage, &ktot));
    CHECK_OK(kvtc_cache_bytes(vc.host, &cp, &vpage, &vtot));
    std::vector<float> k(n), v(n);
    std::vector<unsigned char> kb, vb;
    kvtc_rng r;
    kvtc_rng_seed(&r, seed);
    test_gaussian_fill(&r, k.data(), n);
    test_gaussian_fill(&r, v.data(), n);
    for (size_t i = 0; i < n; ++i) k[i] = k[i] * 0.5f + ((i % d) == 5 ? 8.0f : 0.0f); /* outlier channel */
    for (int j = 0; j < d; ++j) k[(size_t)1 * H * d + j] = 0.0f, v[(size_t)2 * H * d + d + j] = 0.0f; /* zero vectors */
    if (n_tokens > 4) k[(size_t)4 * H * d + 7] = NAN, v[(size_t)3 * H * d + 1] = INFINITY;
    if (spread != 0.0f)
        for (size_t i = 0; i < n; ++i) {
            const int t = (int)(i / ((size_t)H * d));
            const float f = t % 3 == 0 ? 1.0f / spread : t % 3 == 2 ? spread : 1.0f;
            k[i] *= f, v[i] *= f;
        }
    to_dtype(k, dt, kb);
    to_dtype(v, dt, vb);
    std::vector<int64_t> slots(n_tokens);
    std::vector<int> perm(cp.n_blocks * BS);
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = (int)i;
    for (size_t i = perm.size() - 1; i > 0; --i) std::swap(perm[i], perm[kvtc_rng_below(&r, i + 1)]);
    for (int t = 0; t < n_tokens; ++t) slots[t] = (t % 11 == 3) ? -1 : perm[t];
    /* CPU reference */
    std::vector<unsigned char> kc_cpu(ktot, 0), vc_cpu(vtot, 0), kc_gpu(ktot), vc_gpu(vtot);
    kvtc_status sk = kvtc_cache_write(kc.host, &cp, k.data(), n_tokens, slots.data(), kc_cpu.data(), ktot);
    kvtc_status sv = kvtc_cache_write(vc.host, &cp, v.data(), n_tokens, slots.data(), vc_cpu.data(), vtot);
    /* GPU */
    dbuf dk(kb.size()), dv(vb.size()), dkc(ktot), dvc(vtot), dslots(n_tokens * 8), dstatus(4), dout(n * 4);
    CHECK(dk.p && dv.p && dkc.p && dvc.p && dslots.p && dstatus.p && dout.p);
    CUDA_OK(cudaMemcpy(dk.p, kb.data(), kb.size(), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dv.p, vb.data(), vb.size(), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dslots.p, slots.data(), n_tokens * 8, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemset(dkc.p, 0, ktot));
    CUDA_OK(cudaMemset(dvc.p, 0, vtot));
    CUDA_OK(cudaMemset(dstatus.p, 0, 4));
    CHECK_OK(kvtc_cuda_cache_write(&kc.dev, &vc.dev, &cp, dk.p, dv.p, dt, n_tokens, (const int64_t *)dslots.p, dkc.p,
                                   ktot, dvc.p, vtot, (unsigned *)dstatus.p, 0));
    unsigned status = 0;
    CUDA_OK(cudaMemcpy(kc_gpu.data(), dkc.p, ktot, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(vc_gpu.data(), dvc.p, vtot, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(&status, dstatus.p, 4, cudaMemcpyDeviceToHost));
    /* the same status as the CPU, as flags */
    unsigned want = 0;
    if (sk == KVTC_ERR_NONFINITE || sv == KVTC_ERR_NONFINITE) want |= KVTC_CUDA_FLAG_NONFINITE;
    if (sk == KVTC_ERR_RANGE || sv == KVTC_ERR_RANGE) want |= KVTC_CUDA_FLAG_RANGE;
    if (n_tokens > 4) CHECK(want & KVTC_CUDA_FLAG_NONFINITE);
    if ((status & 3u) != want) printf("  status flags %u, CPU says %u\n", status, want);
    CHECK((status & 3u) == want);
    /* records: compare each slot's sections */
    for (int which = 0; which < 2; ++which) {
        const kvtc_codec *c = which ? vc.host : kc.host;
        std::vector<unsigned char> &cpu = which ? vc_cpu : kc_cpu, &gpu = which ? vc_gpu : kc_gpu;
        size_t page = which ? vpage : kpage;
        kvtc_layout l;
        kvtc_codec_layout(c, BS, &l);
        for (int t = 0; t < n_tokens; ++t) {
            if (slots[t] < 0) continue;
            for (int h = 0; h < H; ++h) {
                size_t base = ((size_t)(slots[t] / BS) * H + h) * page, o = (size_t)(slots[t] % BS);
                const unsigned char *rc = &cpu[base + l.codes + o * c->code_bytes], *gc = &gpu[base + l.codes + o * c->code_bytes];
                const float *xv = (which ? v.data() : k.data()) + ((size_t)t * H + h) * d;
                const bool tie = memcmp(rc, gc, c->code_bytes) != 0 && ties_only(c, xv, rc, gc, &g_ties);
                int same = (tie || memcmp(rc, gc, c->code_bytes) == 0) &&
                           (tie || memcmp(&cpu[base + l.scales + o * c->scale_bytes], &gpu[base + l.scales + o * c->scale_bytes], c->scale_bytes) == 0) &&
                           memcmp(&cpu[base + l.qjl + o * c->qjl_bytes], &gpu[base + l.qjl + o * c->qjl_bytes], c->qjl_bytes) == 0 &&
                           memcmp(&cpu[base + l.rnorms + o * c->rnorm_bytes], &gpu[base + l.rnorms + o * c->rnorm_bytes], c->rnorm_bytes) == 0;
                ++*records;
                *mismatched += !same;
            }
        }
        /* decompress the GPU's cache on the GPU, against the CPU reading the same bytes */
        std::vector<float> ref(n), got(n);
        CHECK_OK(kvtc_cache_read(c, &cp, gpu.data(), gpu.size(), n_tokens, slots.data(), ref.data(), n));
        CHECK_OK(kvtc_cuda_cache_read(which ? &vc.dev : &kc.dev, &cp, which ? dvc.p : dkc.p, page * cp.n_blocks * H, n_tokens,
                                      (const int64_t *)dslots.p, dout.p, KVTC_DTYPE_F32, n, 0));
        CUDA_OK(cudaMemcpy(got.data(), dout.p, n * 4, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < n; i += d) {
            double e = 0, s = 0;
            for (int j = 0; j < d; ++j) e += fabs(got[i + j] - ref[i + j]), s += fabs(ref[i + j]);
            if (!(e <= 1e-5 * s + 1e-30)) printf("  decode differs: vector %zu err %.3g of %.3g\n", i / d, e, s);
            CHECK(e <= 1e-5 * s + 1e-30);
        }
        /* fp16 and bf16 output: the same values rounded. Each element is within half an ulp (2^-11 or 2^-8 of
         * it; fp16 also 2^-25 absolute, its subnormal step) of a value within the 1e-5 of the vector's L1 sum
         * above; fp16 beyond its range (within that 1e-5) is Inf of the same sign */
        for (int o = 0; o < 2; ++o) {
            const kvtc_dtype odt = o ? KVTC_DTYPE_BF16 : KVTC_DTYPE_F16;
            std::vector<uint16_t> h(n);
            CHECK_OK(kvtc_cuda_cache_read(which ? &vc.dev : &kc.dev, &cp, which ? dvc.p : dkc.p, page * cp.n_blocks * H,
                                          n_tokens, (const int64_t *)dslots.p, dout.p, odt, n, 0));
            CUDA_OK(cudaMemcpy(h.data(), dout.p, n * 2, cudaMemcpyDeviceToHost));
            for (size_t i = 0; i < n; i += d) {
                double s = 0;
                for (int j = 0; j < d; ++j) s += fabs(ref[i + j]);
                for (int j = 0; j < d; ++j) {
                    const double r = ref[i + j], g = o ? kvtc_bf16_to_f32(h[i + j]) : kvtc_f16_to_f32(h[i + j]);
                    const double slack = 1e-5 * s + 1e-30, tol = (o ? 0x1p-8 : 0x1p-11) * (fabs(r) + slack) + slack + (o ? 0.0 : 0x1p-25);
                    const bool ok = !o && (std::isinf(g) || fabs(r) - slack >= 65520.0)
                                        ? std::isinf(g) && (g > 0) == (r > 0) && fabs(r) + slack >= 65504.0
                                        : fabs(g - r) <= tol;
                    if (!ok) printf("  %s decode differs: element %zu %.9g, reference %.9g\n", o ? "bf16" : "fp16", i + j, g, r);
                    CHECK(ok);
                }
            }
        }
    }
    return T_PASS;
}

static int test_cache_parity(void) {
    NEED_DEVICE();
    static const int dims[] = {64, 80, 96, 128, 192, 256, 512};
    struct mb { kvtc_method m; int bits; };
    static const mb kinds[] = {{KVTC_METHOD_TQ_MSE, 2}, {KVTC_METHOD_TQ_MSE, 3}, {KVTC_METHOD_TQ_MSE, 4},
                               {KVTC_METHOD_TQ_MSE, 8}, {KVTC_METHOD_TQ_PROD, 3}, {KVTC_METHOD_TQ_PROD, 4}};
    static const mb vkinds[] = {{KVTC_METHOD_TQ_MSE, 4}, {KVTC_METHOD_AFFINE, 2}, {KVTC_METHOD_AFFINE, 4},
                                {KVTC_METHOD_AFFINE, 8}, {KVTC_METHOD_TQ_MSE, 2}, {KVTC_METHOD_TQ_MSE, 3}};
    static const kvtc_dtype dts[] = {KVTC_DTYPE_F16, KVTC_DTYPE_BF16, KVTC_DTYPE_F32};
    long long records = 0, mism = 0;
    int cases = 0;
    for (int di = 0; di < 7; ++di)
        for (int ki = 0; ki < 6; ++ki) {
            int d = dims[di];
            kvtc_dtype dt = dts[(di + ki) % 3];
            kvtc_codec_params kp = params_of(kinds[ki].m, d, kinds[ki].bits, KVTC_ROTATION_DEFAULT, 10 + di);
            kvtc_codec_params vp = params_of(vkinds[ki].m, d, vkinds[ki].bits, KVTC_ROTATION_DEFAULT, 20 + di);
            if (g_quick && ki > 1) continue;
            if (cache_case(kp, vp, dt, g_quick ? 21 : 37, 1000 + di * 10 + ki, &records, &mism) != T_PASS) {
                printf("  failed: d=%d K %d/%d V %d/%d dtype %d\n", d, kp.method, kp.bits, vp.method, vp.bits, dt);
                return T_FAIL;
            }
            ++cases;
        }
    /* dense rotation, d not a multiple of 8, fp32 norms, 1 and 3 Hadamard rounds */
    {
        kvtc_codec_params a = params_of(KVTC_METHOD_TQ_MSE, 128, 4, KVTC_ROTATION_DENSE, 3);
        kvtc_codec_params b = params_of(KVTC_METHOD_AFFINE, 128, 4, KVTC_ROTATION_DEFAULT, 4);
        kvtc_codec_params b1 = params_of(KVTC_METHOD_TQ_PROD, 100, 3, KVTC_ROTATION_DEFAULT, 4);
        kvtc_codec_params b2 = params_of(KVTC_METHOD_TQ_MSE, 100, 2, KVTC_ROTATION_DEFAULT, 5);
        kvtc_codec_params c = params_of(KVTC_METHOD_TQ_MSE, 128, 3, KVTC_ROTATION_HADAMARD, 5);
        kvtc_codec_params e = params_of(KVTC_METHOD_TQ_MSE, 128, 4, KVTC_ROTATION_NONE, 6);
        c.rotation_rounds = 3;
        c.norm_type = KVTC_NORM_FP32;
        b1.norm_correction = -1;
        e.codebook = KVTC_CODEBOOK_GAUSSIAN;
        if (cache_case(a, b, KVTC_DTYPE_F16, 40, 7, &records, &mism) != T_PASS) return T_FAIL;
        if (cache_case(b1, b2, KVTC_DTYPE_BF16, 40, 9, &records, &mism) != T_PASS) return T_FAIL;
        if (cache_case(c, e, KVTC_DTYPE_F32, 40, 8, &records, &mism) != T_PASS) return T_FAIL;
        cases += 3;
    }
    /* the fast compress kernel (both codecs TQ_MSE, power-of-two d, one Hadamard block): 1 and 3 bits,
     * bf16 and fp32 inputs, fp32 norms, two rounds, norm correction off, and the scaled norm path with
     * vectors of norms ~1e-20 and ~1e20 (fp32 norms keep them) */
    {
        kvtc_codec_params f1 = params_of(KVTC_METHOD_TQ_MSE, 128, 1, KVTC_ROTATION_HADAMARD, 31);
        kvtc_codec_params f3 = params_of(KVTC_METHOD_TQ_MSE, 128, 3, KVTC_ROTATION_HADAMARD, 32);
        kvtc_codec_params g3 = params_of(KVTC_METHOD_TQ_MSE, 256, 3, KVTC_ROTATION_HADAMARD, 33);
        kvtc_codec_params g1 = params_of(KVTC_METHOD_TQ_MSE, 256, 1, KVTC_ROTATION_HADAMARD, 34);
        kvtc_codec_params h4 = params_of(KVTC_METHOD_TQ_MSE, 64, 4, KVTC_ROTATION_HADAMARD, 35);
        kvtc_codec_params h2 = params_of(KVTC_METHOD_TQ_MSE, 64, 2, KVTC_ROTATION_HADAMARD, 36);
        kvtc_codec_params s4 = params_of(KVTC_METHOD_TQ_MSE, 128, 4, KVTC_ROTATION_HADAMARD, 37);
        kvtc_codec_params s9 = params_of(KVTC_METHOD_TQ_MSE, 96, 4, KVTC_ROTATION_DEFAULT, 38); /* generic kernel */
        g3.norm_type = g1.norm_type = KVTC_NORM_FP32;
        h4.rotation_rounds = 2;
        h2.norm_correction = -1;
        s4.norm_type = s9.norm_type = KVTC_NORM_FP32;
        if (cache_case(f1, f3, KVTC_DTYPE_BF16, 37, 11, &records, &mism) != T_PASS) return T_FAIL;
        if (cache_case(g3, g1, KVTC_DTYPE_F32, 37, 12, &records, &mism) != T_PASS) return T_FAIL;
        if (cache_case(h4, h2, KVTC_DTYPE_F16, 37, 13, &records, &mism) != T_PASS) return T_FAIL;
        if (cache_case(s4, s4, KVTC_DTYPE_F32, 37, 14, &records, &mism, 1e20f) != T_PASS) return T_FAIL;
        if (cache_case(s9, s9, KVTC_DTYPE_F32, 37, 15, &records, &mism, 1e20f) != T_PASS) return T_FAIL;
        cases += 5;
    }
    /* the fp16/bf16 compress kernel (kvtc__k_compress_mma, one Hadamard round, launches of at least
     * KVTC__MMA_MIN_VECTORS = 8192 vectors: 2802-2805 tokens x 3 heads): d = 64, 128, 256, every width of keys
     * and values, fp32 norms, norm correction off, and bf16 vectors of norms ~1e-20 and ~1e20 */
    {
        static const int md[] = {64, 128, 256};
        for (int di = 0; di < 3; ++di)
            for (int b = 1; b <= 4; ++b) {
                kvtc_codec_params kp = params_of(KVTC_METHOD_TQ_MSE, md[di], b, KVTC_ROTATION_HADAMARD, 40 + 4 * di + b);
                kvtc_codec_params vp = params_of(KVTC_METHOD_TQ_MSE, md[di], 5 - b, KVTC_ROTATION_HADAMARD, 60 + 4 * di + b);
                if (b == 2) kp.norm_type = KVTC_NORM_FP32;
                if (b == 3) vp.norm_correction = -1;
                if (g_quick && b > 2) continue;
                if (cache_case(kp, vp, b & 1 ? KVTC_DTYPE_BF16 : KVTC_DTYPE_F16, 2801 + b, 20 + 4 * di + b, &records, &mism) !=
                    T_PASS) {
                    printf("  failed: mma kernel, d=%d K%d/V%d\n", md[di], b, 5 - b);
                    return T_FAIL;
                }
                ++cases;
            }
        /* 8-bit keys (kvtc__k_compress_fast's bucket table, bit-exact) beside 4- and 8-bit values at d = 64, 128
         * and 256, norm correction off, fp32 norms */
        for (int i = 0; i < 4; ++i) {
            const int d8 = i == 0 ? 64 : i < 3 ? 128 : 256;
            kvtc_codec_params kp = params_of(KVTC_METHOD_TQ_MSE, d8, 8, KVTC_ROTATION_HADAMARD, 80 + i);
            kvtc_codec_params vp = params_of(KVTC_METHOD_TQ_MSE, d8, i == 2 ? 8 : 4, KVTC_ROTATION_HADAMARD, 90 + i);
            if (i == 1) kp.norm_correction = -1;
            if (i == 2) kp.norm_type = KVTC_NORM_FP32;
            if (g_quick && i > 1) continue;
            if (cache_case(kp, vp, i & 1 ? KVTC_DTYPE_BF16 : KVTC_DTYPE_F16, 2803 + i, 90 + i, &records, &mism) != T_PASS) {
                printf("  failed: 8-bit keys, d=%d K8/V%d\n", d8, vp.bits);
                return T_FAIL;
            }
            ++cases;
        }
        kvtc_codec_params m4 = params_of(KVTC_METHOD_TQ_MSE, 128, 4, KVTC_ROTATION_HADAMARD, 70);
        m4.norm_type = KVTC_NORM_FP32;
        if (cache_case(m4, m4, KVTC_DTYPE_BF16, 2801, 16, &records, &mism, 1e20f) != T_PASS) return T_FAIL;
        ++cases;
    }
    printf("  %d cases, %lld records, %lld differ from the CPU's (rate %.2g); %lld coordinates take the other cell of a "
           "boundary they are within float rounding of\n", cases, records, mism, (double)mism / records, g_ties);
    CHECK(mism == 0);
    return T_PASS;
}

/* Large random parity run at d = 128, `bits` bits: the boundary-tie mismatch rate over 1M vectors. */
static int mismatch_rate_case(int bits) {
    const size_t nv = g_quick ? 4096 : 1u << 20, d = 128, cb = d * bits / 8;
    size_t bytes;
    gcodec g;
    CHECK(gcodec_make(g, params_of(KVTC_METHOD_TQ_MSE, 128, bits, KVTC_ROTATION_DEFAULT, 77)));
    std::vector<float> x(nv * d);
    std::vector<unsigned char> xb;
    kvtc_rng r;
    kvtc_rng_seed(&r, 5);
    test_gaussian_fill(&r, x.data(), x.size());
    to_dtype(x, KVTC_DTYPE_F16, xb);
    CHECK_OK(kvtc_codec_encoded_bytes(g.host, nv, &bytes));
    std::vector<unsigned char> cpu(bytes), gpu(bytes);
    (void)kvtc_codec_encode(g.host, x.data(), nv, cpu.data(), bytes);
    dbuf dx(xb.size()), dy(bytes), dz(nv * d * 4);
    CUDA_OK(cudaMemcpy(dx.p, xb.data(), xb.size(), cudaMemcpyHostToDevice));
    CHECK_OK(kvtc_cuda_encode(&g.dev, dx.p, KVTC_DTYPE_F16, nv, dy.p, bytes, nullptr, 0));
    CUDA_OK(cudaMemcpy(gpu.data(), dy.p, bytes, cudaMemcpyDeviceToHost));
    kvtc_layout l;
    kvtc_codec_layout(g.host, nv, &l);
    /* indices may differ within float rounding of a boundary (ties_only checks each); the norm (with its
     * correction, a function of the cells) must then be identical wherever the cells are */
    long long idx_diff = 0, norm_diff = 0, tie_vectors = 0, ties = 0;
    std::vector<uint16_t> ic(d), ig(d);
    for (size_t v = 0; v < nv; ++v) {
        const bool cells_same = memcmp(&cpu[v * cb], &gpu[v * cb], cb) == 0;
        if (!cells_same) {
            CHECK_OK(kvtc_unpack(&cpu[v * cb], cb, d, bits, ic.data(), d));
            CHECK_OK(kvtc_unpack(&gpu[v * cb], cb, d, bits, ig.data(), d));
            for (size_t j = 0; j < d; ++j) idx_diff += ic[j] != ig[j];
            ++tie_vectors;
            if (!ties_only(g.host, &x[v * d], &cpu[v * cb], &gpu[v * cb], &ties)) {
                printf("  vector %zu: cells differ beyond a boundary tie\n", v);
                return T_FAIL;
            }
        }
        if (cells_same && memcmp(&cpu[l.scales + v * 2], &gpu[l.scales + v * 2], 2) && ++norm_diff <= 3)
            printf("  vector %zu: norm cpu %.6g gpu %.6g\n", v,
                   kvtc_f16_to_f32((uint16_t)(cpu[l.scales + v * 2] | cpu[l.scales + v * 2 + 1] << 8)),
                   kvtc_f16_to_f32((uint16_t)(gpu[l.scales + v * 2] | gpu[l.scales + v * 2 + 1] << 8)));
    }
    printf("  %d bits, %zu vectors: %lld of %zu indices differ (rate %.2g), all one cell off within 1e-6 of the boundary, "
           "in %lld vectors; %lld norms differ where the cells agree\n", bits, nv, idx_diff, nv * d,
           (double)idx_diff / (nv * d), tie_vectors, norm_diff);
    CHECK(ties == idx_diff);
    CHECK((double)idx_diff / (nv * d) < 1e-5);
    CHECK(norm_diff == 0);
    /* flat decode parity */
    std::vector<float> ref(nv * d), got(nv * d);
    CHECK_OK(kvtc_codec_decode(g.host, gpu.data(), bytes, nv, ref.data(), ref.size())); /* the same bytes */
    CHECK_OK(kvtc_cuda_decode(&g.dev, dy.p, bytes, nv, dz.p, KVTC_DTYPE_F32, nv * d, 0));
    CUDA_OK(cudaMemcpy(got.data(), dz.p, nv * d * 4, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (size_t i = 0; i < nv * d; i += d) {
        double e = 0, s = 0;
        for (size_t j = 0; j < d; ++j) e += (got[i + j] - ref[i + j]) * (got[i + j] - ref[i + j]), s += ref[i + j] * ref[i + j];
        worst = fmax(worst, s > 0 ? sqrt(e / s) : sqrt(e));
    }
    printf("  decode: worst relative difference %.3g\n", worst);
    CHECK(worst < 1e-5);
    return T_PASS;
}
static int test_mismatch_rate_1m(void) {
    NEED_DEVICE();
    return mismatch_rate_case(4) == T_PASS && mismatch_rate_case(8) == T_PASS ? T_PASS : T_FAIL;
}

static int test_edge_flags(void) {
    NEED_DEVICE();
    gcodec g;
    CHECK(gcodec_make(g, params_of(KVTC_METHOD_TQ_MSE, 64, 4, KVTC_ROTATION_DEFAULT, 1)));
    kvtc_cache_params cp;
    cp.n_blocks = 2;
    cp.block_size = 4;
    cp.n_kv_heads = 1;
    size_t page, tot;
    CHECK_OK(kvtc_cache_bytes(g.host, &cp, &page, &tot));
    std::vector<float> x(4 * 64, 1.0f);
    for (int j = 0; j < 64; ++j) x[64 + j] = 1e30f; /* overflows the fp16 norm */
    std::vector<int64_t> slots = {0, 1, 8, -7};  /* 8 and -7 are invalid */
    dbuf dx(x.size() * 4), dc(tot), ds(32), dst(4);
    CUDA_OK(cudaMemcpy(dx.p, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(ds.p, slots.data(), 32, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemset(dst.p, 0, 4));
    CUDA_OK(cudaMemset(dc.p, 0xAB, tot));
    CHECK_OK(kvtc_cuda_cache_write(&g.dev, nullptr, &cp, dx.p, nullptr, KVTC_DTYPE_F32, 4, (const int64_t *)ds.p, dc.p, tot,
                                   nullptr, 0, (unsigned *)dst.p, 0));
    unsigned st = 0;
    std::vector<unsigned char> cache(tot);
    CUDA_OK(cudaMemcpy(&st, dst.p, 4, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(cache.data(), dc.p, tot, cudaMemcpyDeviceToHost));
    CHECK(st == (KVTC_CUDA_FLAG_RANGE | KVTC_CUDA_FLAG_BAD_SLOT));
    kvtc_layout l;
    kvtc_codec_layout(g.host, 4, &l);
    for (size_t i = 0; i < 32; ++i) CHECK(cache[32 + i] == 0); /* slot 1: zero record */
    CHECK(cache[l.scales + 2] == 0 && cache[l.scales + 3] == 0);
    CHECK(cache[page] == 0xAB); /* block 1 untouched */
    /* launcher argument checks */
    CHECK_ST(kvtc_cuda_cache_write(&g.dev, nullptr, &cp, dx.p, nullptr, KVTC_DTYPE_F32, 4, (const int64_t *)ds.p, dc.p, tot - 1,
                                   nullptr, 0, nullptr, 0), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_cuda_cache_write(&g.dev, nullptr, &cp, nullptr, nullptr, KVTC_DTYPE_F32, 4, (const int64_t *)ds.p, dc.p, tot,
                                   nullptr, 0, nullptr, 0), KVTC_ERR_NULL);
    CHECK_ST(kvtc_cuda_cache_write(&g.dev, nullptr, &cp, dx.p, nullptr, (kvtc_dtype)9, 4, (const int64_t *)ds.p, dc.p, tot,
                                   nullptr, 0, nullptr, 0), KVTC_ERR_ARG);
    CHECK_ST(kvtc_cuda_cache_read(&g.dev, &cp, dc.p, tot, 4, (const int64_t *)ds.p, dx.p, KVTC_DTYPE_F32, 4 * 64 - 1, 0), KVTC_ERR_SMALL);
    CHECK_ST(kvtc_cuda_encode(&g.dev, dx.p, KVTC_DTYPE_F32, 4, dc.p, 10, nullptr, 0), KVTC_ERR_SMALL);
    kvtc_cuda_codec blank;
    memset(&blank, 0, sizeof blank);
    blank.meta = g.dev.meta;
    CHECK_ST(kvtc_cuda_encode(&blank, dx.p, KVTC_DTYPE_F32, 4, dc.p, tot, nullptr, 0), KVTC_ERR_ARG);
    CHECK_ST(kvtc_cuda_codec_init(g.host, g.mem->p, 16, &blank, 0), KVTC_ERR_SMALL);
    CHECK_OK(kvtc_cuda_encode(&g.dev, nullptr, KVTC_DTYPE_F32, 0, nullptr, 0, nullptr, 0)); /* nothing to do */
    /* invalid slots read back as zeros */
    CHECK_OK(kvtc_cuda_cache_read(&g.dev, &cp, dc.p, tot, 4, (const int64_t *)ds.p, dx.p, KVTC_DTYPE_F32, 4 * 64, 0));
    CUDA_OK(cudaMemcpy(x.data(), dx.p, x.size() * 4, cudaMemcpyDeviceToHost));
    for (int j = 128; j < 256; ++j) CHECK(x[j] == 0.0f);
    CUDA_OK(cudaDeviceSynchronize());
    return T_PASS;
}


/* ---- fused decode attention ------------------------------------------------ */
struct attn_case_t {
    kvtc_method km; int kb; kvtc_method vm; int vb; int d, n_kv, gqa, n_split; bool graph;
    int block_size;  /* 0 = 16 */
    int spread;      /* 1: value norms spread over 1e-4 .. 1e3 and every 7th value vector zero */
    int rotated;     /* 1: ask for the output in the rotated domain (compared after P_v^T on the CPU) */
    int exact;       /* 1: up to 70 exact fp16 tokens per sequence, in 32-token chunks (one with an Inf key
                        element, one with a NaN value element: both masked) */
};

/* Natural-log sum-exp of one query head's scores, in double, over the keys decoded by kvtc_cache_read
 * (TQ_MSE keys: <q, k_hat> is then the kernel's score) and the valid exact keys: an independent check of
 * the kernels' LSE output. */
static double lse_reference(const float *qv, const float *kdec, int len, int n_kv, int kvh, const uint16_t *xk,
                            const uint16_t *xv, int n_x, int d, double scale) {
    std::vector<double> sc;
    for (int t = 0; t < len; ++t) {
        double dot = 0;
        for (int j = 0; j < d; ++j) dot += (double)qv[j] * kdec[((size_t)t * n_kv + kvh) * d + j];
        sc.push_back(dot * scale);
    }
    for (int t = 0; t < n_x; ++t) {
        double dot = 0;
        bool ok = true;
        for (int j = 0; j < d; ++j) {
            const float k = kvtc_f16_to_f32(xk[(size_t)t * d + j]);
            ok = ok && std::isfinite(k) && std::isfinite(kvtc_f16_to_f32(xv[(size_t)t * d + j]));
            dot += (double)qv[j] * k;
        }
        if (ok) sc.push_back(dot * scale);
    }
    if (sc.empty()) return -INFINITY;
    double m = *std::max_element(sc.begin(), sc.end()), l = 0;
    for (double x : sc) l += exp(x - m);
    return m + log(l);
}

/* Compress random K/V into paged caches (CPU), run GPU attention with `kernel`, compare
 * with kvtc_attn_decode. Returns the worst relative error, -1 on failure, -2 if unsupported. */
static double attn_gpu_case(const attn_case_t &ac, const std::vector<int> &lens, uint64_t seed,
                            kvtc_cuda_attn_kernel kernel = KVTC_CUDA_ATTN_DEFAULT) {
    gcodec kc, vc;
    kvtc_codec_params kp = params_of(ac.km, ac.d, ac.kb, KVTC_ROTATION_DEFAULT, seed);
    kvtc_codec_params vp = params_of(ac.vm, ac.d, ac.vb, KVTC_ROTATION_DEFAULT, seed + 1);
    if (!gcodec_make(kc, kp) || !gcodec_make(vc, vp)) return -1;
    const int n_seqs = (int)lens.size(), bs = ac.block_size ? ac.block_size : 16, d = ac.d, n_q = ac.n_kv * ac.gqa;
    int max_len = 1;
    for (int l : lens) max_len = std::max(max_len, l);
    const int max_blocks = (max_len + bs - 1) / bs;
    kvtc_cuda_attn_params p;
    memset(&p, 0, sizeof p);
    p.attn.cache.block_size = bs;
    p.attn.cache.n_kv_heads = ac.n_kv;
    p.attn.cache.n_blocks = n_seqs * max_blocks + 3;
    p.attn.n_seqs = n_seqs;
    p.attn.n_q_heads = n_q;
    p.attn.max_blocks_per_seq = max_blocks;
    p.n_split = ac.n_split;
    p.q_dtype = KVTC_DTYPE_F32;
    p.out_dtype = KVTC_DTYPE_F32;
    p.kernel = kernel;
    p.rotated_output = ac.rotated;
    if (kvtc_cuda_attn_supported(&kc.dev, &vc.dev, ac.gqa) != KVTC_OK) return -2;
    size_t kpage, vpage, ktot, vtot, ws;
    kvtc_cache_bytes(kc.host, &p.attn.cache, &kpage, &ktot);
    kvtc_cache_bytes(vc.host, &p.attn.cache, &vpage, &vtot);
    std::vector<unsigned char> kcache(ktot, 0), vcache(vtot, 0);
    std::vector<int32_t> bt((size_t)n_seqs * max_blocks, 0), perm(p.attn.cache.n_blocks);
    kvtc_rng r;
    kvtc_rng_seed(&r, seed);
    for (int i = 0; i < p.attn.cache.n_blocks; ++i) perm[i] = i;
    for (int i = p.attn.cache.n_blocks - 1; i > 0; --i) std::swap(perm[i], perm[kvtc_rng_below(&r, i + 1)]);
    for (size_t i = 0; i < bt.size(); ++i) bt[i] = perm[i];
    std::vector<float> x((size_t)bs * ac.n_kv * d);
    std::vector<int64_t> slots(bs);
    for (int b = 0; b < n_seqs; ++b)
        for (int blk = 0; blk * bs < lens[b]; ++blk) { /* one page of tokens at a time */
            for (int which = 0; which < 2; ++which) {
                test_gaussian_fill(&r, x.data(), x.size());
                if (!which)
                    for (size_t i = 0; i < x.size(); ++i) x[i] = x[i] * 1.5f + ((i % d) == 9 ? 5.0f : 0.0f);
                if (which && ac.spread)
                    for (int v = 0; v < bs * ac.n_kv; ++v) {
                        const float sc = v % 7 == 3 ? 0.0f : (float)pow(10.0, -4.0 + 7.0 * kvtc_rng_uniform(&r));
                        for (int j = 0; j < d; ++j) x[(size_t)v * d + j] *= sc;
                    }
                for (int t = 0; t < bs; ++t) slots[t] = blk * bs + t < lens[b] ? (int64_t)bt[b * max_blocks + blk] * bs + t : -1;
                if (kvtc_cache_write(which ? vc.host : kc.host, &p.attn.cache, x.data(), bs, slots.data(),
                                     which ? vcache.data() : kcache.data(), which ? vtot : ktot) != KVTC_OK)
                    return -1;
            }
        }
    std::vector<float> q((size_t)n_seqs * n_q * d), ref(q.size()), got(q.size()), lse(n_seqs * n_q);
    test_gaussian_fill(&r, q.data(), q.size());
    /* exact tokens [seq][kv head][NX][d] */
    const int NX = ac.exact ? 70 : 0;
    std::vector<uint16_t> xk((size_t)n_seqs * ac.n_kv * NX * d + 1), xv(xk.size());
    std::vector<int32_t> xl(n_seqs + 1, 0);
    for (size_t i = 0; i + 1 < xk.size(); ++i) {
        xk[i] = kvtc_f32_to_f16((float)(1.5 * kvtc_rng_gaussian(&r) + (i % d == 9 ? 5.0 : 0.0)));
        xv[i] = kvtc_f32_to_f16((float)kvtc_rng_gaussian(&r));
    }
    static const int32_t x_counts[6] = {3, 33, 70, 0, 1, 64}; /* 1 to 3 chunks, a partial and an empty one;
                                                                  sequence 3 has no tokens at all */
    for (int b = 0; ac.exact && b < n_seqs; ++b) xl[b] = x_counts[b % 6];
    if (ac.exact) {
        xk[(size_t)1 * d + 2] = 0x7c00;                              /* sequence 0, head 0, token 1: +Inf key */
        xv[((size_t)2 * ac.n_kv * NX + 40) * d + 7] = 0x7e00;        /* sequence 2, head 0, token 40: NaN value */
    }
    kvtc_attn_params host_attn = p.attn;
    host_attn.max_exact = NX;
    host_attn.exact_k = xk.data(), host_attn.exact_v = xv.data(), host_attn.exact_lens = xl.data();
    if (kvtc_attn_decode(kc.host, vc.host, &host_attn, q.data(), kcache.data(), ktot, vcache.data(), vtot, bt.data(),
                         lens.data(), ref.data(), ref.size()) != KVTC_OK)
        return -1;
    dbuf dxk(xk.size() * 2), dxv(xv.size() * 2), dxl(xl.size() * 4);
    if (cudaMemcpy(dxk.p, xk.data(), xk.size() * 2, cudaMemcpyHostToDevice) ||
        cudaMemcpy(dxv.p, xv.data(), xv.size() * 2, cudaMemcpyHostToDevice) ||
        cudaMemcpy(dxl.p, xl.data(), xl.size() * 4, cudaMemcpyHostToDevice))
        return -1;
    p.attn.max_exact = NX;
    p.attn.exact_k = (const uint16_t *)dxk.p, p.attn.exact_v = (const uint16_t *)dxv.p;
    p.attn.exact_lens = (const int32_t *)dxl.p;
    if (kvtc_cuda_attn_workspace_bytes(&kc.dev, &vc.dev, &p, &ws) != KVTC_OK) return -1;
    dbuf dq(q.size() * 4), dk(ktot), dv(vtot), dbt(bt.size() * 4 + 4), dl(lens.size() * 4), dout(q.size() * 4), dws(ws),
        dlse(lse.size() * 4);
    if (cudaMemcpy(dq.p, q.data(), q.size() * 4, cudaMemcpyHostToDevice) ||
        cudaMemcpy(dk.p, kcache.data(), ktot, cudaMemcpyHostToDevice) ||
        cudaMemcpy(dv.p, vcache.data(), vtot, cudaMemcpyHostToDevice) ||
        cudaMemcpy(dbt.p, bt.data(), bt.size() * 4, cudaMemcpyHostToDevice) ||
        cudaMemcpy(dl.p, lens.data(), lens.size() * 4, cudaMemcpyHostToDevice))
        return -1;
    cudaStream_t st;
    cudaStreamCreate(&st);
    kvtc_status s = KVTC_OK;
    if (ac.graph) { /* the whole call must be capturable: no sync, no host reads */
        cudaGraph_t g;
        cudaGraphExec_t ge;
        cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal);
        s = kvtc_cuda_attn_decode(&kc.dev, &vc.dev, &p, dq.p, dk.p, ktot, dv.p, vtot, (const int32_t *)dbt.p,
                                  (const int32_t *)dl.p, dout.p, q.size(), (float *)dlse.p, dws.p, ws, st);
        if (cudaStreamEndCapture(st, &g) != cudaSuccess || s != KVTC_OK) return -1;
        if (cudaGraphInstantiate(&ge, g, 0) != cudaSuccess) return -1;
        cudaGraphLaunch(ge, st);
        cudaGraphLaunch(ge, st); /* replays give the same result */
        cudaGraphExecDestroy(ge);
        cudaGraphDestroy(g);
    } else {
        s = kvtc_cuda_attn_decode(&kc.dev, &vc.dev, &p, dq.p, dk.p, ktot, dv.p, vtot, (const int32_t *)dbt.p,
                                  (const int32_t *)dl.p, dout.p, q.size(), (float *)dlse.p, dws.p, ws, st);
    }
    if (s == KVTC_ERR_UNSUPPORTED && kernel == KVTC_CUDA_ATTN_TENSOR) return -2; /* the launcher refused */
    if (s != KVTC_OK || cudaStreamSynchronize(st) != cudaSuccess) return -1;
    cudaStreamDestroy(st);
    cudaMemcpy(got.data(), dout.p, got.size() * 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(lse.data(), dlse.p, lse.size() * 4, cudaMemcpyDeviceToHost);
    if (ac.rotated && kvtc_rotation_apply_t(&vc.host->rot, got.data(), (size_t)n_seqs * n_q, got.data(), got.size()) != KVTC_OK)
        return -1;
    double worst = 0.0, worst_lse = 0.0;
    const double scale = 1.0 / sqrt((double)d);
    std::vector<float> kdec;
    for (int i = 0; i < n_seqs * n_q; ++i) {
        const int b = i / n_q, kvh = (i % n_q) / ac.gqa;
        double e = 0, n = 0;
        for (int j = 0; j < d; ++j) {
            double df = (double)got[(size_t)i * d + j] - ref[(size_t)i * d + j];
            e += df * df, n += (double)ref[(size_t)i * d + j] * ref[(size_t)i * d + j];
        }
        if (lens[b] == 0 && xl[b] == 0) { /* no tokens: zeros and an LSE of -inf */
            if (e != 0.0 || !(lse[i] == -INFINITY)) return 1.0;
            continue;
        }
        const double rel = sqrt(e / (n > 0 ? n : 1e-30));
        if (worst == worst && !(rel <= worst)) worst = rel; /* a NaN sticks */
        if (ac.km != KVTC_METHOD_TQ_MSE) continue; /* the LSE reference scores decoded keys */
        if (i % n_q == 0) { /* decode this sequence's keys once */
            std::vector<int64_t> sl(lens[b] + 1);
            for (int t = 0; t < lens[b]; ++t) sl[t] = (int64_t)bt[b * max_blocks + t / bs] * bs + t % bs;
            kdec.assign((size_t)(lens[b] + 1) * ac.n_kv * d, 0.0f);
            if (kvtc_cache_read(kc.host, &p.attn.cache, kcache.data(), ktot, lens[b], sl.data(), kdec.data(), kdec.size()) != KVTC_OK)
                return -1;
        }
        const double lr = lse_reference(q.data() + (size_t)i * d, kdec.data(), lens[b], ac.n_kv, kvh,
                                        xk.data() + ((size_t)b * ac.n_kv + kvh) * NX * d,
                                        xv.data() + ((size_t)b * ac.n_kv + kvh) * NX * d, xl[b], d, scale);
        const double el = fabs(lse[i] - lr) / std::max(1.0, fabs(lr));
        if (worst_lse == worst_lse && !(el <= worst_lse)) worst_lse = el;
    }
    if (!(worst_lse <= 1e-3)) {
        printf("  LSE relative error %.3g > 1e-3\n", worst_lse);
        return 1.0;
    }
    return worst;
}

/* Every case runs on the SCALAR kernel and on the TENSOR kernel where kvtc_cuda_attn_tensor_supported
 * says it applies (else on DEFAULT); both must be within 1e-3 of kvtc_attn_decode. */
static int attn_both(const attn_case_t &c, const std::vector<int> &lens, uint64_t seed) {
    gcodec kc, vc;
    CHECK(gcodec_make(kc, params_of(c.km, c.d, c.kb, KVTC_ROTATION_DEFAULT, seed)));
    CHECK(gcodec_make(vc, params_of(c.vm, c.d, c.vb, KVTC_ROTATION_DEFAULT, seed + 1)));
    const bool tc = kvtc_cuda_attn_tensor_supported(&kc.dev, &vc.dev, c.gqa, c.block_size ? c.block_size : 16) == KVTC_OK;
    const double es = attn_gpu_case(c, lens, seed, KVTC_CUDA_ATTN_SCALAR);
    const double et = attn_gpu_case(c, lens, seed, tc ? KVTC_CUDA_ATTN_TENSOR : KVTC_CUDA_ATTN_DEFAULT);
    printf("  K%s%d V%s%d d=%d kv=%d gqa=%d split=%d bs=%d%s%s%s%s: rel. error scalar %.2g, %s %.2g\n",
           c.km == KVTC_METHOD_TQ_PROD ? "prod" : "", c.kb, c.vm == KVTC_METHOD_AFFINE ? "aff" : "", c.vb, c.d, c.n_kv, c.gqa,
           c.n_split, c.block_size ? c.block_size : 16, c.graph ? " graph" : "", c.spread ? " spread-norms" : "",
           c.rotated ? " rotated-out" : "", c.exact ? " exact-tokens" : "", es, tc ? "tensor" : "default(scalar)", et);
    CHECK(es >= 0.0 && es <= 1e-3);
    CHECK(et >= 0.0 && et <= 1e-3);
    return T_PASS;
}

static int test_attention_parity(void) {
    NEED_DEVICE();
    typedef attn_case_t A;
    const kvtc_method M = KVTC_METHOD_TQ_MSE, P = KVTC_METHOD_TQ_PROD, F = KVTC_METHOD_AFFINE;
    static const A cases[] = {
        {M, 4, M, 4, 128, 2, 4, 1, false, 0, 0, 0},
        {M, 4, M, 4, 128, 2, 4, 0, false, 0, 0, 0},
        {M, 4, M, 2, 128, 1, 8, 3, true, 0, 0, 0},
        {M, 3, M, 3, 128, 2, 1, 2, false, 0, 0, 0},
        {M, 2, M, 2, 64, 3, 3, 0, false, 0, 0, 0},
        {M, 8, M, 4, 64, 1, 7, 1, false, 0, 0, 0},
        {P, 4, M, 4, 128, 1, 4, 2, false, 0, 0, 0},
        {M, 4, F, 4, 96, 2, 4, 0, true, 0, 0, 0},
        {M, 4, M, 4, 80, 1, 4, 2, false, 0, 0, 0},
        {M, 4, F, 2, 256, 1, 4, 0, false, 0, 0, 0},
        {M, 3, M, 4, 192, 1, 3, 1, false, 0, 0, 0},
        {M, 4, M, 2, 128, 2, 4, 0, false, 0, 0, 0},
        {M, 2, M, 2, 128, 2, 4, 2, false, 0, 0, 0},
        {M, 8, M, 4, 128, 1, 4, 0, true, 0, 0, 0},
        {M, 3, M, 3, 128, 2, 4, 1, false, 0, 0, 0},
        {M, 4, M, 4, 64, 3, 3, 0, false, 0, 0, 0},
        {M, 4, M, 4, 96, 2, 4, 2, false, 0, 0, 0},
        /* the tensor-core kernel: every gqa, head_dim 256, pages of 32 and 48 tokens, extreme value
         * norms and zero vectors, the rotated-domain output, graph capture */
        {M, 4, M, 4, 128, 8, 1, 0, false, 0, 0, 0},
        {M, 4, M, 4, 128, 2, 3, 0, false, 0, 0, 0},
        {M, 4, M, 4, 128, 1, 7, 5, false, 0, 0, 0},
        {M, 4, M, 4, 128, 1, 8, 0, true, 0, 0, 0},
        {M, 4, M, 4, 256, 2, 4, 0, false, 0, 0, 0},
        {M, 8, M, 4, 256, 1, 2, 1, false, 0, 0, 0},
        {M, 2, M, 2, 256, 1, 4, 0, false, 0, 0, 0},
        {M, 4, M, 2, 64, 2, 3, 0, false, 32, 0, 0},
        {M, 4, M, 4, 128, 2, 4, 0, false, 48, 0, 0},
        {M, 4, M, 4, 128, 2, 4, 0, false, 0, 1, 0},
        {M, 8, M, 2, 64, 1, 3, 2, false, 0, 1, 0},
        {M, 4, M, 4, 128, 2, 4, 0, false, 0, 0, 1},
        {M, 4, M, 4, 128, 2, 4, 3, true, 0, 0, 1},
        /* 16 splits (graph capture) and 12 (two query blocks, pages of 32): the merge kernel's warps take
         * 4 parts each */
        {M, 4, M, 4, 128, 2, 4, 16, true, 0, 0, 0},
        {M, 8, M, 4, 128, 1, 8, 12, false, 32, 0, 0},
        /* exact fp16 tokens (sinks / window) in the same softmax: one split and several, graph capture,
         * rotated output, affine and dense-rotated values, Prod keys, every tensor-core head_dim */
        {M, 4, M, 4, 128, 2, 4, 1, false, 0, 0, 0, 1},
        {M, 4, M, 4, 128, 2, 4, 3, true, 0, 0, 1, 1},
        {M, 4, M, 2, 64, 3, 3, 0, false, 0, 1, 0, 1},
        {M, 2, M, 2, 256, 1, 4, 0, false, 0, 0, 0, 1},
        {M, 8, M, 4, 128, 1, 8, 2, false, 0, 0, 0, 1},
        {P, 4, M, 4, 128, 1, 4, 2, false, 0, 0, 0, 1},
        {M, 4, F, 4, 96, 2, 4, 0, false, 0, 0, 0, 1},
        {M, 4, M, 4, 80, 1, 7, 1, false, 0, 0, 0, 1},
    };
    const std::vector<int> lens = {1, 17, 64, 0, 300, 133};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        if (g_quick && i > 3 && i < 17) continue;
        if (attn_both(cases[i], lens, 300 + i) != T_PASS) return T_FAIL;
    }
    /* one long sequence (131072 tokens) beside short ones, automatic split */
    if (!g_quick) {
        A lc = {M, 4, M, 4, 128, 1, 4, 0, false, 0, 0, 0};
        if (attn_both(lc, std::vector<int>{131072, 5}, 999) != T_PASS) return T_FAIL;
    }
    /* the tensor-core kernel on longer ragged contexts: 33-40 splits (more than 32 parts for the merge),
     * pages of 32, 64, 160 and 256 tokens, spread value norms, GQA 1/2/5/6/8, rotated output, graph capture */
    {
        static const A xc[] = {
            {M, 4, M, 4, 128, 1, 5, 37, false, 32, 1, 0},  {M, 8, M, 4, 256, 1, 6, 34, false, 64, 1, 0},
            {M, 2, M, 2, 64, 2, 8, 33, false, 32, 1, 0},   {M, 2, M, 2, 64, 2, 8, 0, false, 160, 1, 0},
            {M, 4, M, 2, 128, 1, 1, 0, false, 256, 1, 1},  {M, 4, M, 4, 256, 3, 2, 40, true, 16, 1, 0},
        };
        for (size_t i = 0; i < sizeof xc / sizeof xc[0]; ++i)
            if (attn_both(xc[i], std::vector<int>{3000, 1, 0, 777, 2049}, 77) != T_PASS) return T_FAIL;
    }
    /* unsupported combinations are refused, not run */
    {
        gcodec a, b, c;
        CHECK(gcodec_make(a, params_of(KVTC_METHOD_TQ_MSE, 80, 3, KVTC_ROTATION_DEFAULT, 1)));
        CHECK(gcodec_make(b, params_of(KVTC_METHOD_TQ_MSE, 80, 4, KVTC_ROTATION_DEFAULT, 1)));
        CHECK(gcodec_make(c, params_of(KVTC_METHOD_TQ_MSE, 128, 4, KVTC_ROTATION_DEFAULT, 1)));
        CHECK_ST(kvtc_cuda_attn_supported(&a.dev, &b.dev, 4), KVTC_ERR_UNSUPPORTED); /* 30-byte records */
        CHECK_ST(kvtc_cuda_attn_supported(&b.dev, &b.dev, 9), KVTC_ERR_UNSUPPORTED);
        CHECK_OK(kvtc_cuda_attn_supported(&b.dev, &b.dev, 8));
        CHECK_ST(kvtc_cuda_attn_tensor_supported(&b.dev, &b.dev, 4, 16), KVTC_ERR_UNSUPPORTED); /* d = 80 */
        CHECK_ST(kvtc_cuda_attn_tensor_supported(&c.dev, &c.dev, 4, 8), KVTC_ERR_UNSUPPORTED);  /* block 8 */
        CHECK_ST(kvtc_cuda_attn_tensor_supported(&c.dev, &c.dev, 9, 16), KVTC_ERR_UNSUPPORTED);
        CHECK_ST(kvtc_cuda_attn_tensor_supported(&c.dev, NULL, 4, 16), KVTC_ERR_NULL);
        CHECK_OK(kvtc_cuda_attn_tensor_supported(&c.dev, &c.dev, 4, 16));
        /* TENSOR on a combination it does not serve is refused by the launcher, DEFAULT falls back to SCALAR */
        A k3 = {M, 3, M, 3, 128, 1, 4, 0, false, 0, 0, 0};
        CHECK(attn_gpu_case(k3, std::vector<int>{40}, 5, KVTC_CUDA_ATTN_TENSOR) == -2);
        CHECK(attn_gpu_case(k3, std::vector<int>{40}, 5, KVTC_CUDA_ATTN_DEFAULT) >= 0.0);
        /* bad kernel and rotated_output values are argument errors, checked before any device memory is read */
        kvtc_cuda_attn_params bp;
        memset(&bp, 0, sizeof bp);
        bp.attn.cache.block_size = 16, bp.attn.cache.n_kv_heads = 1, bp.attn.cache.n_blocks = 1;
        bp.attn.n_seqs = 1, bp.attn.n_q_heads = 4, bp.attn.max_blocks_per_seq = 1;
        bp.kernel = (kvtc_cuda_attn_kernel)7;
        CHECK_ST(kvtc_cuda_attn_decode(&c.dev, &c.dev, &bp, NULL, NULL, 0, NULL, 0, NULL, NULL, NULL, 0, NULL, NULL, 0, 0),
                 KVTC_ERR_ARG);
        bp.kernel = KVTC_CUDA_ATTN_DEFAULT, bp.rotated_output = 2;
        CHECK_ST(kvtc_cuda_attn_decode(&c.dev, &c.dev, &bp, NULL, NULL, 0, NULL, 0, NULL, NULL, NULL, 0, NULL, NULL, 0, 0),
                 KVTC_ERR_ARG);
        /* exact tokens: a negative capacity is refused; one split plus the exact part needs a workspace */
        size_t wsb = 1;
        bp.rotated_output = 0, bp.n_split = 1;
        CHECK_OK(kvtc_cuda_attn_workspace_bytes(&c.dev, &c.dev, &bp, &wsb));
        CHECK(wsb == 0);
        bp.attn.max_exact = -1;
        CHECK_ST(kvtc_cuda_attn_workspace_bytes(&c.dev, &c.dev, &bp, &wsb), KVTC_ERR_ARG);
        CHECK_ST(kvtc_cuda_attn_decode(&c.dev, &c.dev, &bp, NULL, NULL, 0, NULL, 0, NULL, NULL, NULL, 0, NULL, NULL, 0, 0),
                 KVTC_ERR_ARG);
        bp.attn.max_exact = 4;
        CHECK_OK(kvtc_cuda_attn_workspace_bytes(&c.dev, &c.dev, &bp, &wsb));
        CHECK(wsb == (size_t)4 * 2 * (128 + 1) * sizeof(float));
        /* misaligned exact tokens are refused before any launch (the other pointers are never dereferenced) */
        void *fake = (void *)(uintptr_t)256;
        bp.attn.exact_k = (const uint16_t *)(uintptr_t)258, bp.attn.exact_v = (const uint16_t *)fake;
        bp.attn.exact_lens = (const int32_t *)fake;
        CHECK_ST(kvtc_cuda_attn_decode(&c.dev, &c.dev, &bp, fake, fake, SIZE_MAX, fake, SIZE_MAX, (const int32_t *)fake,
                                       (const int32_t *)fake, fake, SIZE_MAX, NULL, fake, SIZE_MAX, 0),
                 KVTC_ERR_UNSUPPORTED);
        bp.attn.max_exact = 65535 * 32 + 1; /* more chunks than grid z allows */
        CHECK_ST(kvtc_cuda_attn_workspace_bytes(&c.dev, &c.dev, &bp, &wsb), KVTC_ERR_UNSUPPORTED);
    }
    return T_PASS;
}

static const test_case tests[] = {
    {"cuda_cache_parity", test_cache_parity},
    {"cuda_mismatch_rate_1m", test_mismatch_rate_1m},
    {"cuda_edge_flags", test_edge_flags},
    {"cuda_attention_parity", test_attention_parity},
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
        *(rr == T_PASS ? &pass : rr == T_SKIP ? &skip : &fail) += 1;
    }
    printf("%d passed, %d failed, %d skipped\n", pass, fail, skip);
    return fail > 0;
}
