/* GPU codec throughput: fused compress into a paged cache, decompress, and decode-step latency, against a D2D copy.
 * nvcc -std=c++17 -O3 -arch=sm_90 -I. bench/bench_cuda_codec.cu -o build/bench_cuda_codec
 * ./build/bench_cuda_codec            (make gpu-bench runs it)
 * Each row is validated against kvtc.h on its first 4096 vectors before it is timed. Times are CUDA-event
 * medians of 30 runs after 5 warm-ups (p10/p90 beside); inputs are 256 MB, larger than L2, so L2 is not scrubbed. */
#include <stdio.h>
#define KVTC_IMPLEMENTATION
#define KVTC_CUDA_IMPLEMENTATION
#include "kvtc_cuda.cuh"
#include <algorithm>
#include <vector>

#define CK(call)                                                                                                       \
    do {                                                                                                               \
        cudaError_t e_ = (call);                                                                                       \
        if (e_ != cudaSuccess) {                                                                                       \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));                    \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)
#define KS(call)                                                                                                       \
    do {                                                                                                               \
        kvtc_status s_ = (call);                                                                                       \
        if (s_ != KVTC_OK) {                                                                                           \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, kvtc_status_string(s_));                    \
            exit(1);                                                                                                   \
        }                                                                                                              \
    } while (0)

struct stats { double med, p10, p90; };

template <class F> static stats time_it(F f, int reps = 30) {
    cudaEvent_t a, b;
    std::vector<double> t;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < 5; ++i) f();
    for (int i = 0; i < reps; ++i) {
        float ms;
        CK(cudaEventRecord(a));
        f();
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        CK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms * 1e3);
    }
    std::sort(t.begin(), t.end());
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return {t[t.size() / 2], t[t.size() / 10], t[t.size() * 9 / 10]};
}

/* Per-call GPU time of f with launch overhead excluded: `inner` calls captured in one CUDA graph on a
 * side stream (f takes the stream), median over reps launches of the graph, divided by inner. */
template <class F> static stats time_graph(F f, int inner = 20, int reps = 30) {
    cudaStream_t st;
    cudaGraph_t g;
    cudaGraphExec_t ge;
    cudaEvent_t a, b;
    std::vector<double> t;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    f(st); /* warm-up outside the graph */
    CK(cudaStreamSynchronize(st));
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
    for (int i = 0; i < inner; ++i) f(st);
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    for (int i = 0; i < reps + 3; ++i) {
        float ms;
        CK(cudaEventRecord(a, st));
        CK(cudaGraphLaunch(ge, st));
        CK(cudaEventRecord(b, st));
        CK(cudaEventSynchronize(b));
        CK(cudaEventElapsedTime(&ms, a, b));
        if (i >= 3) t.push_back(ms * 1e3 / inner);
    }
    std::sort(t.begin(), t.end());
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
    CK(cudaStreamDestroy(st));
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return {t[t.size() / 2], t[t.size() / 10], t[t.size() * 9 / 10]};
}

struct codec {
    kvtc_codec *h = nullptr;
    kvtc_cuda_codec d;
    void *mem = nullptr;
    explicit codec(kvtc_method m, int dim, int bits, kvtc_rotation_kind rot) {
        kvtc_codec_params p;
        size_t bytes;
        memset(&p, 0, sizeof p);
        p.method = m;
        p.head_dim = dim;
        p.bits = bits;
        p.rotation = rot;
        KS(kvtc_codec_create(&p, &h));
        KS(kvtc_cuda_codec_bytes(h, &bytes));
        CK(cudaMalloc(&mem, bytes));
        KS(kvtc_cuda_codec_init(h, mem, bytes, &d, 0));
        CK(cudaDeviceSynchronize());
    }
    ~codec() {
        kvtc_codec_destroy(h);
        cudaFree(mem);
    }
};

__global__ void fill_half(__half *x, size_t n, unsigned seed) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned h = (unsigned)i * 2654435761u ^ seed;
    h ^= h >> 13, h *= 0x5bd1e995u, h ^= h >> 15;
    x[i] = __float2half(((h & 0xffff) / 65536.0f - 0.5f) * 4.0f + ((i % 128) == 7 ? 6.0f : 0.0f));
}

/* GPU records of the first 4096 vectors against kvtc.h's: the fraction of cells (indices) that differ, and
 * of records that differ elsewhere too (with cells equal: norms, scales, sketches) */
struct parity { double cells, records; };
static parity validate(const codec &c, const __half *dx, const kvtc_cache_params &cp, const void *dcache, size_t page) {
    const int n = 4096, d = c.h->params.head_dim, cb = (int)(c.h->code_bytes * 8 / d), bs = cp.block_size;
    std::vector<__half> xh((size_t)n * d);
    std::vector<float> x((size_t)n * d);
    CK(cudaMemcpy(xh.data(), dx, xh.size() * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < x.size(); ++i) x[i] = __half2float(xh[i]);
    size_t flat;
    KS(kvtc_codec_encoded_bytes(c.h, bs, &flat));
    std::vector<unsigned char> ref(flat), got(page);
    std::vector<uint16_t> ir((size_t)bs * d), ig((size_t)bs * d);
    long long cells = 0, records = 0, n_rec = 0;
    for (int t0 = 0; t0 < n / cp.n_kv_heads; t0 += bs) { /* token t0.. block t0/bs, head 0 */
        std::vector<float> rows((size_t)bs * d);
        for (int j = 0; j < bs; ++j) memcpy(&rows[(size_t)j * d], &x[((size_t)(t0 + j) * cp.n_kv_heads) * d], d * 4);
        (void)kvtc_codec_encode(c.h, rows.data(), bs, ref.data(), flat);
        CK(cudaMemcpy(got.data(), (const unsigned char *)dcache + (size_t)(t0 / bs) * cp.n_kv_heads * page, page,
                      cudaMemcpyDeviceToHost));
        KS(kvtc_unpack(ref.data(), (size_t)bs * c.h->code_bytes, (size_t)bs * d, cb, ir.data(), ir.size()));
        KS(kvtc_unpack(got.data(), (size_t)bs * c.h->code_bytes, (size_t)bs * d, cb, ig.data(), ig.size()));
        for (size_t i = 0; i < ir.size(); ++i) cells += ir[i] != ig[i];
        records += memcmp(ref.data(), got.data(), flat) != 0 && memcmp(ir.data(), ig.data(), ir.size() * 2) == 0;
        ++n_rec;
    }
    return {(double)cells / ((double)n_rec * bs * d), (double)records / n_rec};
}

int main(void) {
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    printf("# kvtc GPU codec bench: %s, driver %d, runtime %d, %d SMs\n\n", prop.name, drv, rt, prop.multiProcessorCount);
    const size_t n_tok = 131072, heads = 8;
    size_t max_elems = n_tok * heads * 256;
    __half *dx, *dv, *dcopy;
    int64_t *dslots;
    CK(cudaMalloc(&dx, max_elems * 2));
    CK(cudaMalloc(&dv, max_elems * 2));
    CK(cudaMalloc(&dcopy, max_elems * 2));
    CK(cudaMalloc(&dslots, n_tok * 8));
    fill_half<<<(unsigned)((max_elems + 255) / 256), 256>>>(dx, max_elems, 1);
    fill_half<<<(unsigned)((max_elems + 255) / 256), 256>>>(dv, max_elems, 2);
    std::vector<int64_t> slots(n_tok);
    for (size_t i = 0; i < n_tok; ++i) slots[i] = (int64_t)i;
    CK(cudaMemcpy(dslots, slots.data(), n_tok * 8, cudaMemcpyHostToDevice));

    printf("## Compress 131072 tokens x 8 KV heads (1,048,576 vectors) from fp16 into a paged cache (block 16)\n\n");
    printf("| method | d | bits | rotation | time us (p10-p90) | GB/s (in+out) | copy of input us | vs copy BW | cells != CPU | "
           "other bytes != CPU |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    struct row { kvtc_method m; int d, bits; kvtc_rotation_kind rot; };
    const row rows[] = {{KVTC_METHOD_TQ_MSE, 128, 4, KVTC_ROTATION_HADAMARD}, {KVTC_METHOD_TQ_MSE, 128, 2, KVTC_ROTATION_HADAMARD},
                        {KVTC_METHOD_TQ_MSE, 128, 3, KVTC_ROTATION_HADAMARD}, {KVTC_METHOD_TQ_MSE, 128, 8, KVTC_ROTATION_HADAMARD},
                        {KVTC_METHOD_TQ_MSE, 64, 4, KVTC_ROTATION_HADAMARD},  {KVTC_METHOD_TQ_MSE, 96, 4, KVTC_ROTATION_HADAMARD},
                        {KVTC_METHOD_TQ_MSE, 256, 4, KVTC_ROTATION_HADAMARD}, {KVTC_METHOD_TQ_MSE, 128, 4, KVTC_ROTATION_DENSE},
                        {KVTC_METHOD_TQ_PROD, 128, 4, KVTC_ROTATION_HADAMARD}, {KVTC_METHOD_AFFINE, 128, 4, KVTC_ROTATION_DEFAULT}};
    for (const row &r : rows) {
        codec c(r.m, r.d, r.bits, r.rot);
        kvtc_cache_params cp = {(int)(n_tok / 16), 16, (int)heads};
        size_t page, total, in_bytes = n_tok * heads * r.d * 2;
        KS(kvtc_cache_bytes(c.h, &cp, &page, &total));
        void *cache;
        CK(cudaMalloc(&cache, total));
        KS(kvtc_cuda_cache_write(&c.d, nullptr, &cp, dx, nullptr, KVTC_DTYPE_F16, n_tok, dslots, cache, total, nullptr, 0, nullptr, 0));
        CK(cudaDeviceSynchronize());
        const parity par = validate(c, dx, cp, cache, page);
        stats t = time_it([&] {
            KS(kvtc_cuda_cache_write(&c.d, nullptr, &cp, dx, nullptr, KVTC_DTYPE_F16, n_tok, dslots, cache, total, nullptr, 0, nullptr, 0));
        });
        stats tc = time_it([&] { CK(cudaMemcpyAsync(dcopy, dx, in_bytes, cudaMemcpyDeviceToDevice)); });
        double gbs = (in_bytes + total) / (t.med * 1e3), copy_gbs = 2.0 * in_bytes / (tc.med * 1e3);
        printf("| %s | %d | %d | %s | %.1f (%.1f-%.1f) | %.0f | %.1f | %.0f%% | %.2g | %.2g |\n",
               r.m == KVTC_METHOD_TQ_MSE ? "tq-mse" : r.m == KVTC_METHOD_TQ_PROD ? "tq-prod" : "affine", r.d, r.bits,
               c.h->params.rotation == KVTC_ROTATION_HADAMARD ? "hadamard" : c.h->params.rotation == KVTC_ROTATION_DENSE ? "dense" : "none",
               t.med, t.p10, t.p90, gbs, tc.med, 100.0 * gbs / copy_gbs, par.cells, par.records);
        CK(cudaFree(cache));
    }

    printf("\n## Decode-step compress latency: K and V in one launch, 8 KV heads, d=128, K4/V4\n\n");
    printf("GPU time per call: 20 calls in one CUDA graph, median of 30 graph launches (launch overhead excluded);\n");
    printf("one call per event pair, as before, beside it.\n\n");
    printf("| tokens | GPU time us (p10-p90) | event-pair time us |\n|---|---|---|\n");
    {
        codec k(KVTC_METHOD_TQ_MSE, 128, 4, KVTC_ROTATION_HADAMARD), v(KVTC_METHOD_TQ_MSE, 128, 4, KVTC_ROTATION_HADAMARD);
        kvtc_cache_params cp = {(int)(n_tok / 16), 16, (int)heads};
        size_t page, total;
        KS(kvtc_cache_bytes(k.h, &cp, &page, &total));
        void *kc, *vc;
        CK(cudaMalloc(&kc, total));
        CK(cudaMalloc(&vc, total));
        for (size_t nt : {1, 16, 64, 256, 1024, 2048}) {
            stats t = time_it([&] {
                KS(kvtc_cuda_cache_write(&k.d, &v.d, &cp, dx, dv, KVTC_DTYPE_F16, nt, dslots, kc, total, vc, total, nullptr, 0));
            }, 100);
            stats tg = time_graph([&](cudaStream_t st) {
                KS(kvtc_cuda_cache_write(&k.d, &v.d, &cp, dx, dv, KVTC_DTYPE_F16, nt, dslots, kc, total, vc, total, nullptr, st));
            });
            printf("| %zu | %.2f (%.2f-%.2f) | %.1f |\n", nt, tg.med, tg.p10, tg.p90, t.med);
        }
        printf("\n## K and V together, 131072 tokens (2,097,152 vectors), d=128, K4/V4\n\n");
        stats t = time_it([&] {
            KS(kvtc_cuda_cache_write(&k.d, &v.d, &cp, dx, dv, KVTC_DTYPE_F16, n_tok, dslots, kc, total, vc, total, nullptr, 0));
        });
        size_t in_bytes = 2 * n_tok * heads * 128 * 2;
        stats tc = time_it([&] { CK(cudaMemcpyAsync(dcopy, dx, in_bytes / 2, cudaMemcpyDeviceToDevice)); });
        printf("%.1f us, %.0f GB/s (in+out); one copy of one tensor %.1f us\n", t.med, (in_bytes + 2 * total) / (t.med * 1e3), tc.med);

        printf("\n## Decompress 1,048,576 vectors to fp16, d=128, 4-bit\n\n");
        t = time_it([&] {
            KS(kvtc_cuda_cache_read(&k.d, &cp, kc, total, n_tok, dslots, dcopy, KVTC_DTYPE_F16, n_tok * heads * 128, 0));
        });
        size_t out_b = n_tok * heads * 128 * 2;
        const double copy_bw = (double)in_bytes / (tc.med * 1e3); /* one tensor's copy: read + write */
        printf("%.1f us (p10 %.1f, p90 %.1f), %.0f GB/s (in+out), %.0f%% of the copy's %.0f GB/s\n", t.med, t.p10, t.p90,
               (out_b + total) / (t.med * 1e3), 100.0 * (out_b + total) / (t.med * 1e3) / copy_bw, copy_bw);
        CK(cudaFree(kc));
        CK(cudaFree(vc));
    }
    CK(cudaFree(dx));
    CK(cudaFree(dv));
    CK(cudaFree(dcopy));
    CK(cudaFree(dslots));
    return 0;
}
